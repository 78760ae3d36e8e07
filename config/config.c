/*
 * Embedded defaults and the value parsers shared by the YAML file, the
 * environment and the command line.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"

void br_config_init(br_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->listen[0].host = br_strndup("", 0);
    c->listen[0].port = 5000;
    c->num_listen = 1;
    c->threads = 0;
    c->storage.root = br_strndup("./berth-data", strlen("./berth-data"));
    c->storage.delete_enabled = 1;
    c->storage.upload_purge_age_s = 24 * 3600;
    c->storage.fsync = 1;
    c->limits.max_body_size = 64ULL << 30;
    c->limits.max_manifest_size = 4 << 20;
    c->limits.request_deadline_ms = 3600 * 1000;
    c->limits.header_size = 64 << 10;
    c->limits.max_connections = 4096;
    c->limits.max_connections_per_client = 256;
    c->limits.idle_timeout_ms = 60 * 1000;
    c->limits.drain_timeout_ms = 30 * 1000;
    c->log.level = BR_LOG_INFO;
    c->log.format = BR_LOG_TEXT;
    c->log.access_log = 1;
    c->http2 = 1;
}

void br_config_dispose(br_config_t *c)
{
    for (size_t i = 0; i < c->num_listen; i++)
        free(c->listen[i].host);
    free(c->storage.root);
    free(c->tls.certificate);
    free(c->tls.key);
    free(c->tls.client_ca);
    memset(c, 0, sizeof(*c));
}

int br_config_parse_listen(br_listen_t *l, const char *s, char *err, size_t errsize)
{
    const char *host, *colon;
    size_t hostlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errsize, "'%s' must be [ipv6]:port", s);
            return BR_E_CONFIG;
        }
        host = s + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
            snprintf(err, errsize, "'%s' must be host:port (IPv6 as [addr]:port)", s);
            return BR_E_CONFIG;
        }
        host = s;
        hostlen = (size_t)(colon - s);
    }
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port == 0 || port > 65535 || !isdigit((unsigned char)colon[1])) {
        snprintf(err, errsize, "'%s': port must be 1-65535", s);
        return BR_E_CONFIG;
    }
    l->host = br_strndup(host, hostlen);
    l->port = (uint16_t)port;
    return 0;
}

/* Parses a non-negative decimal integer followed by a unit from table. */
struct unit {
    const char *name;
    uint64_t mult;
};

static int parse_with_units(const char *s, const struct unit *units, uint64_t *out)
{
    if (!isdigit((unsigned char)s[0]))
        return BR_E_CONFIG;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return BR_E_CONFIG;
    while (*end == ' ')
        end++;
    for (const struct unit *u = units; u->name != NULL; u++) {
        if (strcasecmp(end, u->name) == 0) {
            if (u->mult != 0 && v > UINT64_MAX / u->mult)
                return BR_E_CONFIG;
            *out = v * u->mult;
            return 0;
        }
    }
    return BR_E_CONFIG;
}

int br_config_parse_size(const char *s, uint64_t *out)
{
    static const struct unit units[] = {{"", 1},          {"b", 1},           {"k", 1ULL << 10},  {"kib", 1ULL << 10},
                                        {"m", 1ULL << 20}, {"mib", 1ULL << 20}, {"g", 1ULL << 30},  {"gib", 1ULL << 30},
                                        {"t", 1ULL << 40}, {"tib", 1ULL << 40}, {"kb", 1000ULL},    {"mb", 1000000ULL},
                                        {"gb", 1000000000ULL}, {"tb", 1000000000000ULL}, {NULL, 0}};
    return parse_with_units(s, units, out);
}

int br_config_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct unit units[] = {{"", 1000},         {"ms", 1},           {"s", 1000}, {"m", 60 * 1000},
                                        {"h", 3600 * 1000}, {"d", 86400 * 1000}, {NULL, 0}};
    return parse_with_units(s, units, out);
}
