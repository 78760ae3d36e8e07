/*
 * Embedded defaults and the value parsers shared by the YAML file, the
 * environment and the command line.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "config/internal.h"

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
    c->auth.realm = br_strndup("berth", 5);
    c->auth.bcrypt_cost = 10;
    c->auth.max_failures = 5;
    c->auth.failure_window_ms = 60 * 1000;
    c->auth.token.issuer = br_strndup("berth", 5);
    c->auth.token.expiration_s = 300;
    c->auth.token.leeway_s = 60;
}

/* Frees or copies every string field of the auth section (the OPT/STRING rows
 * of the key table under auth), so a new string key needs no code here. */
static void auth_strings(br_config_t *dst, const br_config_t *src)
{
    for (const br_config_key_t *k = br_config_keys; k->name != NULL; k++) {
        if (k->section == NULL || strncmp(k->section, "auth", 4) != 0 || (k->type != BR_CK_STRING && k->type != BR_CK_OPT_STRING))
            continue;
        char **d = (char **)((char *)dst + k->offset);
        if (src == NULL) {
            free(*d);
        } else {
            const char *v = *(char *const *)((const char *)src + k->offset);
            *d = v != NULL ? br_strndup(v, strlen(v)) : NULL;
        }
    }
}

static char **copy_strv(char *const *v, size_t n)
{
    char **out = br_calloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = br_strndup(v[i], strlen(v[i]));
    return out;
}

static br_config_rule_t *copy_rules(const br_config_rule_t *rules, size_t n)
{
    br_config_rule_t *out = br_calloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        out[i] = rules[i];
        out[i].repository = br_strndup(rules[i].repository, strlen(rules[i].repository));
        out[i].users = copy_strv(rules[i].users, rules[i].num_users);
        out[i].groups = copy_strv(rules[i].groups, rules[i].num_groups);
    }
    return out;
}

void br_config_dispose(br_config_t *c)
{
    for (size_t i = 0; i < c->num_listen; i++)
        free(c->listen[i].host);
    free(c->storage.root);
    free(c->tls.certificate);
    free(c->tls.key);
    free(c->tls.client_ca);
    auth_strings(c, NULL);
    br_config__groups_free(c->auth.groups, c->auth.num_groups);
    br_config__rules_free(c->auth.anonymous, c->auth.num_anonymous);
    br_config__rules_free(c->auth.rules, c->auth.num_rules);
    memset(c, 0, sizeof(*c));
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? br_strndup(s, strlen(s)) : NULL;
}

void br_config__copy(br_config_t *dst, const br_config_t *src)
{
    *dst = *src;
    for (size_t i = 0; i < src->num_listen; i++)
        dst->listen[i].host = dup_or_null(src->listen[i].host);
    dst->storage.root = dup_or_null(src->storage.root);
    dst->tls.certificate = dup_or_null(src->tls.certificate);
    dst->tls.key = dup_or_null(src->tls.key);
    dst->tls.client_ca = dup_or_null(src->tls.client_ca);
    auth_strings(dst, src);
    dst->auth.groups = br_calloc(src->auth.num_groups + 1, sizeof(*dst->auth.groups));
    for (size_t i = 0; i < src->auth.num_groups; i++) {
        const br_config_group_t *g = &src->auth.groups[i];
        dst->auth.groups[i].name = dup_or_null(g->name);
        dst->auth.groups[i].members = copy_strv(g->members, g->num_members);
        dst->auth.groups[i].num_members = g->num_members;
    }
    dst->auth.anonymous = copy_rules(src->auth.anonymous, src->auth.num_anonymous);
    dst->auth.rules = copy_rules(src->auth.rules, src->auth.num_rules);
}

int br_config_validate(const br_config_t *c, char *err, size_t errsize)
{
    const br_config_key_t *culprit;
    return br_config__check(c, &culprit, err, errsize);
}

/* A host between brackets must look like an IPv6 literal (optionally with a
 * %zone); a bare host is a name or IPv4 literal. Checking the characters here
 * turns "0.0.0.0 :5000" or "[]:5000" into a config error at start-up instead of
 * a resolver error, or a silent bind to every address. */
static int host_valid(const char *host, size_t len, int bracketed)
{
    if (bracketed && len == 0)
        return 0;
    int in_zone = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)host[i];
        int ok;
        if (in_zone)
            ok = isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
        else if (bracketed)
            ok = isxdigit(ch) || ch == ':' || ch == '.' || (ch == '%' && i != 0);
        else
            ok = isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
        if (!ok)
            return 0;
        in_zone |= bracketed && ch == '%';
    }
    return 1;
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
    if (!host_valid(host, hostlen, s[0] == '[')) {
        snprintf(err, errsize, "'%s': host must be a name, an IPv4 address or [ipv6]", s);
        return BR_E_CONFIG;
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
