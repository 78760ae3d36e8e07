/*
 * The one table of configuration keys, and the setter both front ends use.
 *
 * Adding a key: add the field to br_config_t, its default to br_config_init,
 * one row here, and the key to berth.example.yaml (a test loads that file and
 * checks it names every row). The YAML key and the BERTH_* variable follow from
 * the row, so they cannot drift apart.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "config/internal.h"

#define F(field) offsetof(br_config_t, field)
#define NO_MAX UINT64_MAX

const br_config_key_t br_config_keys[BR_CONFIG_NUM_KEYS + 1] = {
    {NULL, "listen", BR_CK_LISTEN, F(listen), 0, 0},
    /* More threads than this is a typo, not a machine. */
    {NULL, "threads", BR_CK_UINT, F(threads), 0, 1024},
    /* At least one: every commit runs there. */
    {NULL, "io_threads", BR_CK_UINT, F(io_threads), 1, 1024},
    {"storage", "root", BR_CK_STRING, F(storage.root), 0, 0},
    {"storage", "delete", BR_CK_BOOL, F(storage.delete_enabled), 0, 0},
    /* Stored in seconds: anything under a second would purge uploads in flight. */
    {"storage", "upload_purge_age", BR_CK_DURATION_S, F(storage.upload_purge_age_s), 1000, NO_MAX},
    {"storage", "fsync", BR_CK_BOOL, F(storage.fsync), 0, 0},
    {"limits", "max_body_size", BR_CK_SIZE, F(limits.max_body_size), 1, NO_MAX},
    {"limits", "max_manifest_size", BR_CK_SIZE, F(limits.max_manifest_size), 1, NO_MAX},
    {"limits", "request_deadline", BR_CK_DURATION_MS, F(limits.request_deadline_ms), 1, NO_MAX},
    /* A request line plus a bearer token does not fit in less than 1KiB. */
    {"limits", "header_size", BR_CK_SIZE, F(limits.header_size), 1024, 1ULL << 30},
    {"limits", "max_connections", BR_CK_UINT, F(limits.max_connections), 1, 1000000},
    {"limits", "max_connections_per_client", BR_CK_UINT, F(limits.max_connections_per_client), 1, 1000000},
    {"limits", "idle_timeout", BR_CK_DURATION_MS, F(limits.idle_timeout_ms), 1, NO_MAX},
    /* 0 is meaningful here: close at once on SIGTERM. */
    {"limits", "drain_timeout", BR_CK_DURATION_MS, F(limits.drain_timeout_ms), 0, NO_MAX},
    {"log", "level", BR_CK_LOG_LEVEL, F(log.level), 0, 0},
    {"log", "format", BR_CK_LOG_FORMAT, F(log.format), 0, 0},
    {"log", "access_log", BR_CK_BOOL, F(log.access_log), 0, 0},
    {NULL, "http2", BR_CK_BOOL, F(http2), 0, 0},
    {NULL, "immutable", BR_CK_IMMUTABLE, F(immutable), 0, 0},
    {NULL, "retention", BR_CK_RETENTION, F(retention), 0, 0},
    {NULL, "quotas", BR_CK_QUOTAS, F(quotas), 0, 0},
    /* 0 = no periodic collection. */
    {"gc", "interval", BR_CK_DURATION_S, F(gc.interval_s), 0, NO_MAX},
    {"gc", "grace", BR_CK_DURATION_S, F(gc.grace_s), 0, NO_MAX},
    {"gc", "untagged", BR_CK_GC_UNTAGGED, F(gc.untagged_delete), 0, 0},
    /* Unset = no metrics listener: nothing opens by default. */
    {"metrics", "listen", BR_CK_OPT_ADDR, F(metrics.listen), 0, 0},
    {"health", "on_main", BR_CK_BOOL, F(health.on_main), 0, 0},
    /* 0 = no scrub. */
    {"scrub", "rate", BR_CK_RATE, F(scrub.rate), 0, NO_MAX},
    {"tls", "certificate", BR_CK_OPT_STRING, F(tls.certificate), 0, 0},
    {"tls", "key", BR_CK_OPT_STRING, F(tls.key), 0, 0},
    {"tls", "client_ca", BR_CK_OPT_STRING, F(tls.client_ca), 0, 0},
    {"auth", "realm", BR_CK_STRING, F(auth.realm), 0, 0},
    {"auth", "htpasswd", BR_CK_OPT_STRING, F(auth.htpasswd), 0, 0},
    /* bcrypt's own bounds; each step doubles the cost of every login. */
    {"auth", "bcrypt_cost", BR_CK_UINT, F(auth.bcrypt_cost), 4, 31},
    {"auth", "max_failures", BR_CK_UINT, F(auth.max_failures), 0, 1000},
    {"auth", "failure_window", BR_CK_DURATION_MS, F(auth.failure_window_ms), 1000, NO_MAX},
    {"auth", "admin_group", BR_CK_OPT_STRING, F(auth.admin_group), 0, 0},
    {"auth", "groups", BR_CK_GROUPS, F(auth.groups), 0, 0},
    {"auth", "anonymous", BR_CK_ANON_RULES, F(auth.anonymous), 0, 0},
    {"auth", "rules", BR_CK_RULES, F(auth.rules), 0, 0},
    {"auth.token", "realm", BR_CK_OPT_STRING, F(auth.token.realm), 0, 0},
    {"auth.token", "path", BR_CK_OPT_STRING, F(auth.token.path), 0, 0},
    {"auth.token", "service", BR_CK_OPT_STRING, F(auth.token.service), 0, 0},
    {"auth.token", "issuer", BR_CK_STRING, F(auth.token.issuer), 0, 0},
    {"auth.token", "key", BR_CK_OPT_STRING, F(auth.token.key), 0, 0},
    {"auth.token", "certificate", BR_CK_OPT_STRING, F(auth.token.certificate), 0, 0},
    /* Tokens are re-fetched by clients as needed; a day is already generous. */
    {"auth.token", "expiration", BR_CK_DURATION_S, F(auth.token.expiration_s), 1000, 86400 * 1000},
    {"auth.token", "trusted_certificates", BR_CK_OPT_STRING, F(auth.token.trusted_certificates), 0, 0},
    {"auth.token", "jwks", BR_CK_OPT_STRING, F(auth.token.jwks), 0, 0},
    {"auth.token", "leeway", BR_CK_DURATION_S, F(auth.token.leeway_s), 0, 3600 * 1000},
    {"notifications", "endpoints", BR_CK_ENDPOINTS, F(notifications.endpoints), 0, 0},
    {"notifications", "queue_size", BR_CK_UINT, F(notifications.queue_size), 1, 10000000},
    {NULL, NULL, 0, 0, 0, 0},
};

static int name_eq(const char *a, const char *b, size_t blen)
{
    return strlen(a) == blen && memcmp(a, b, blen) == 0;
}

const br_config_key_t *br_config__find(const char *section, const char *name, size_t namelen)
{
    for (const br_config_key_t *k = br_config_keys; k->name != NULL; k++) {
        int same_section = section == NULL ? k->section == NULL : k->section != NULL && strcmp(k->section, section) == 0;
        if (same_section && name_eq(k->name, name, namelen))
            return k;
    }
    return NULL;
}

int br_config__is_section(const char *name, size_t namelen)
{
    for (const br_config_key_t *k = br_config_keys; k->name != NULL; k++)
        if (k->section != NULL && name_eq(k->section, name, namelen))
            return 1;
    return 0;
}

const char *br_config__display(const br_config_key_t *k, char *buf, size_t bufsize)
{
    if (k->section != NULL)
        snprintf(buf, bufsize, "%s.%s", k->section, k->name);
    else
        snprintf(buf, bufsize, "%s", k->name);
    return buf;
}

const char *br_config__env_name(const br_config_key_t *k, char *buf, size_t bufsize)
{
    char display[128];
    br_config__display(k, display, sizeof(display));
    snprintf(buf, bufsize, "BERTH_%s", display);
    for (char *p = buf; *p != '\0'; p++)
        *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    return buf;
}

/* Human form of a byte count or duration bound for messages: exact units only,
 * so "at least 1024 bytes" reads as "at least 1KiB". */
static void format_size(uint64_t v, char *buf, size_t bufsize)
{
    static const char *const names[] = {"", "KiB", "MiB", "GiB", "TiB"};
    size_t i = 0;
    while (i + 1 < sizeof(names) / sizeof(names[0]) && v != 0 && v % 1024 == 0) {
        v /= 1024;
        i++;
    }
    snprintf(buf, bufsize, "%" PRIu64 "%s", v, i == 0 ? " bytes" : names[i]);
}

static void format_duration(uint64_t ms, char *buf, size_t bufsize)
{
    if (ms % 1000 != 0)
        snprintf(buf, bufsize, "%" PRIu64 "ms", ms);
    else
        snprintf(buf, bufsize, "%" PRIu64 "s", ms / 1000);
}

int br_config__type_error(const br_config_key_t *k, char *err, size_t errsize)
{
    char name[128], lo[32], hi[32];
    br_config__display(k, name, sizeof(name));
    switch (k->type) {
    case BR_CK_LISTEN:
        snprintf(err, errsize, "'%s' must be host:port, [ipv6]:port or :port (port 1-65535), or a list of them", name);
        break;
    case BR_CK_UINT:
        snprintf(err, errsize, "'%s' must be an integer %" PRIu64 "-%" PRIu64, name, k->min, k->max);
        break;
    case BR_CK_BOOL:
        snprintf(err, errsize, "'%s' must be a boolean (true/false, yes/no, on/off)", name);
        break;
    case BR_CK_SIZE:
        format_size(k->min, lo, sizeof(lo));
        if (k->max == NO_MAX && k->min <= 1) {
            snprintf(err, errsize, "'%s' must be a size%s (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)", name,
                     k->min == 1 ? " above 0" : "");
        } else if (k->max == NO_MAX) {
            snprintf(err, errsize, "'%s' must be a size of at least %s (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)", name, lo);
        } else {
            format_size(k->max, hi, sizeof(hi));
            snprintf(err, errsize, "'%s' must be a size from %s to %s (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)", name, lo, hi);
        }
        break;
    case BR_CK_DURATION_MS:
    case BR_CK_DURATION_S:
        if (k->max != NO_MAX) {
            format_duration(k->min, lo, sizeof(lo));
            format_duration(k->max, hi, sizeof(hi));
            snprintf(err, errsize, "'%s' must be a duration from %s to %s (ms, s, m, h, d; plain number = seconds)", name, lo, hi);
        } else if (k->min == 0) {
            snprintf(err, errsize, "'%s' must be a duration (ms, s, m, h, d; plain number = seconds)", name);
        } else {
            format_duration(k->min, lo, sizeof(lo));
            snprintf(err, errsize, "'%s' must be a duration of at least %s (ms, s, m, h, d; plain number = seconds)", name, lo);
        }
        break;
    case BR_CK_STRING:
        snprintf(err, errsize, "'%s' must be a non-empty string", name);
        break;
    case BR_CK_OPT_STRING:
        snprintf(err, errsize, "'%s' must be a string", name);
        break;
    case BR_CK_LOG_LEVEL:
        snprintf(err, errsize, "'%s' must be one of debug, info, warn, error", name);
        break;
    case BR_CK_LOG_FORMAT:
        snprintf(err, errsize, "'%s' must be text or json", name);
        break;
    case BR_CK_GC_UNTAGGED:
        snprintf(err, errsize, "'%s' must be keep or delete", name);
        break;
    case BR_CK_OPT_ADDR:
        snprintf(err, errsize, "'%s' must be host:port, [ipv6]:port or :port (port 1-65535), or empty for none", name);
        break;
    case BR_CK_RATE:
        snprintf(err, errsize, "'%s' must be a rate: a size per second such as 50MB/s (0 = off)", name);
        break;
    case BR_CK_GROUPS:
        snprintf(err, errsize, "'%s' must be a mapping of group names to lists of user names", name);
        break;
    case BR_CK_RULES:
        snprintf(err, errsize, "'%s' must be a list of {repository, users, groups, actions} mappings", name);
        break;
    case BR_CK_ANON_RULES:
        snprintf(err, errsize, "'%s' must be a list of {repository, actions} mappings", name);
        break;
    case BR_CK_IMMUTABLE:
        snprintf(err, errsize, "'%s' must be a list of {repository, tags} mappings", name);
        break;
    case BR_CK_RETENTION:
        snprintf(err, errsize, "'%s' must be a list of {repository, keep_last, keep_days, protect} mappings", name);
        break;
    case BR_CK_ENDPOINTS:
        snprintf(err, errsize, "'%s' must be a list of {name, url, ...} mappings", name);
        break;
    case BR_CK_QUOTAS:
        snprintf(err, errsize, "'%s' must be a list of {repository, max_bytes} mappings", name);
        break;
    }
    return BR_E_CONFIG;
}

unsigned br_config__action(const char *s, size_t len)
{
    static const struct {
        const char *name;
        unsigned bits;
    } actions[] = {{"pull", BR_ACTION_PULL}, {"push", BR_ACTION_PUSH}, {"delete", BR_ACTION_DELETE}, {"*", BR_ACTION_ALL}};
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (name_eq(actions[i].name, s, len))
            return actions[i].bits;
    return 0;
}

int br_config__glob_valid(const char *s, size_t len)
{
    if (len == 0 || len > BR_NAME_MAX)
        return 0;
    size_t stars = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '*') {
            /* "***" has no meaning of its own; refusing it keeps the matcher simple. */
            if (++stars > 2)
                return 0;
            continue;
        }
        stars = 0;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-' || ch == '/'))
            return 0;
        /* An empty path component can match no repository name. */
        if (ch == '/' && (i == 0 || i + 1 == len || s[i + 1] == '/'))
            return 0;
    }
    return 1;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void br_config__rules_free(br_config_rule_t *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rules[i].repository);
        free_strv(rules[i].users, rules[i].num_users);
        free_strv(rules[i].groups, rules[i].num_groups);
        free_strv(rules[i].tags, rules[i].num_tags);
    }
    free(rules);
}

void br_config__groups_free(br_config_group_t *groups, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(groups[i].name);
        free_strv(groups[i].members, groups[i].num_members);
    }
    free(groups);
}

void br_config__quotas_free(br_config_quota_t *q, size_t n)
{
    for (size_t i = 0; q != NULL && i < n; i++)
        free(q[i].repository);
    free(q);
}

void br_config__endpoints_free(br_config_endpoint_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].url);
        free_strv(e[i].headers, e[i].num_headers);
        free_strv(e[i].ignored_media_types, e[i].num_ignored_media_types);
    }
    free(e);
}

/* Strict decimal: digits only, no sign, no spaces, no overflow. */
static int parse_uint(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)s[0]))
        return BR_E_CONFIG;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return BR_E_CONFIG;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return BR_E_CONFIG;
}

static int parse_choice(const char *s, const char *const *names, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return BR_E_CONFIG;
}

int br_config__listen_add(br_config_listen_list_t *list, const char *s, size_t len, char *err, size_t errsize)
{
    char scratch[256];
    br_listen_t l;
    if (list->n == BR_CONFIG_MAX_LISTEN) {
        snprintf(err, errsize, "'listen' has more than %d addresses", BR_CONFIG_MAX_LISTEN);
        return BR_E_CONFIG;
    }
    char *copy = br_strndup(s, len);
    int ret = strlen(copy) == len ? br_config_parse_listen(&l, copy, scratch, sizeof(scratch)) : BR_E_CONFIG;
    if (ret != 0) {
        snprintf(err, errsize, "'listen' must be host:port, [ipv6]:port or :port (port 1-65535), not '%s'", copy);
        goto Exit;
    }
    /* The same address twice would bind twice under SO_REUSEPORT and split
     * connections between two sockets of one thread set: refuse it. */
    for (size_t i = 0; i < list->n; i++) {
        if (list->items[i].port == l.port && strcmp(list->items[i].host, l.host) == 0) {
            snprintf(err, errsize, "'listen' has '%s' twice", copy);
            free(l.host);
            ret = BR_E_CONFIG;
            goto Exit;
        }
    }
    list->items[list->n++] = l;
Exit:
    free(copy);
    return ret;
}

int br_config__listen_commit(br_config_t *c, br_config_listen_list_t *list, char *err, size_t errsize)
{
    if (list->n == 0) {
        snprintf(err, errsize, "'listen' must name at least one address");
        return BR_E_CONFIG;
    }
    for (size_t i = 0; i < c->num_listen; i++)
        free(c->listen[i].host);
    memcpy(c->listen, list->items, list->n * sizeof(list->items[0]));
    c->num_listen = list->n;
    list->n = 0;
    return 0;
}

void br_config__listen_clear(br_config_listen_list_t *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i].host);
    list->n = 0;
}

static int set_listen(br_config_t *c, const char *value, char *err, size_t errsize)
{
    br_config_listen_list_t list = {.n = 0};
    int ret = 0;
    for (const char *p = value;;) {
        const char *comma = strchr(p, ','), *end = comma != NULL ? comma : p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if ((ret = br_config__listen_add(&list, b, (size_t)(e - b), err, errsize)) != 0)
            goto Exit;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    ret = br_config__listen_commit(c, &list, err, errsize);
Exit:
    br_config__listen_clear(&list);
    return ret;
}

int br_config__set(br_config_t *c, const br_config_key_t *k, const char *value, size_t len, int is_null, char *err, size_t errsize)
{
    void *field = (char *)c + k->offset;
    uint64_t v;
    int b;

    /* Values reach us as C strings below; an embedded NUL would silently cut
     * a path short. */
    if (memchr(value, '\0', len) != NULL)
        return br_config__type_error(k, err, errsize);
    if (k->type == BR_CK_GROUPS || k->type == BR_CK_RULES || k->type == BR_CK_ANON_RULES || k->type == BR_CK_IMMUTABLE ||
        k->type == BR_CK_RETENTION || k->type == BR_CK_ENDPOINTS || k->type == BR_CK_QUOTAS) {
        char name[128];
        snprintf(err, errsize, "'%s' can only be set in the YAML file", br_config__display(k, name, sizeof(name)));
        return BR_E_CONFIG;
    }
    if (is_null || (k->type == BR_CK_OPT_ADDR && len == 0)) {
        if (k->type == BR_CK_OPT_ADDR) {
            br_listen_t *l = field;
            free(l->host);
            *l = (br_listen_t){NULL, 0};
            return 0;
        }
        if (k->type != BR_CK_OPT_STRING)
            return br_config__type_error(k, err, errsize);
        free(*(char **)field);
        *(char **)field = NULL;
        return 0;
    }

    /* Any auth key, from either front end, turns authentication on: a lone
     * BERTH_AUTH_HTPASSWD must not be silently ignored. */
    if (k->section != NULL && strncmp(k->section, "auth", 4) == 0)
        c->auth.enabled = 1;

    switch (k->type) {
    case BR_CK_LISTEN:
        return set_listen(c, value, err, errsize);
    case BR_CK_OPT_ADDR: {
        br_listen_t l, *dst = field;
        if (br_config_parse_listen(&l, value, err, errsize) != 0)
            return br_config__type_error(k, err, errsize);
        free(dst->host);
        *dst = l;
        return 0;
    }
    case BR_CK_UINT:
        if (parse_uint(value, &v) != 0 || v < k->min || v > k->max)
            return br_config__type_error(k, err, errsize);
        *(unsigned *)field = (unsigned)v;
        return 0;
    case BR_CK_BOOL:
        if (parse_bool(value, &b) != 0)
            return br_config__type_error(k, err, errsize);
        *(int *)field = b;
        return 0;
    case BR_CK_SIZE:
        if (br_config_parse_size(value, &v) != 0 || v < k->min || v > k->max)
            return br_config__type_error(k, err, errsize);
        *(uint64_t *)field = v;
        return 0;
    case BR_CK_RATE: {
        char num[64];
        if (len >= 2 && memcmp(value + len - 2, "/s", 2) == 0)
            len -= 2;
        if (len == 0 || len >= sizeof(num))
            return br_config__type_error(k, err, errsize);
        memcpy(num, value, len);
        num[len] = '\0';
        if (br_config_parse_size(num, &v) != 0 || v < k->min || v > k->max)
            return br_config__type_error(k, err, errsize);
        *(uint64_t *)field = v;
        return 0;
    }
    case BR_CK_DURATION_MS:
    case BR_CK_DURATION_S:
        if (br_config_parse_duration_ms(value, &v) != 0 || v < k->min || v > k->max)
            return br_config__type_error(k, err, errsize);
        *(uint64_t *)field = k->type == BR_CK_DURATION_S ? v / 1000 : v;
        return 0;
    case BR_CK_STRING:
    case BR_CK_OPT_STRING:
        if (len == 0) {
            if (k->type == BR_CK_STRING)
                return br_config__type_error(k, err, errsize);
            free(*(char **)field);
            *(char **)field = NULL;
            return 0;
        }
        free(*(char **)field);
        *(char **)field = br_strndup(value, len);
        return 0;
    case BR_CK_LOG_LEVEL: {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        if (parse_choice(value, names, 4, &b) != 0)
            return br_config__type_error(k, err, errsize);
        *(br_log_level_t *)field = (br_log_level_t)(BR_LOG_DEBUG + b);
        return 0;
    }
    case BR_CK_LOG_FORMAT: {
        static const char *const names[] = {"text", "json"};
        if (parse_choice(value, names, 2, &b) != 0)
            return br_config__type_error(k, err, errsize);
        *(br_log_format_t *)field = (br_log_format_t)(BR_LOG_TEXT + b);
        return 0;
    }
    case BR_CK_GC_UNTAGGED: {
        static const char *const names[] = {"keep", "delete"};
        if (parse_choice(value, names, 2, &b) != 0)
            return br_config__type_error(k, err, errsize);
        *(int *)field = (int)b;
        return 0;
    }
    case BR_CK_GROUPS:
    case BR_CK_RULES:
    case BR_CK_ANON_RULES:
    case BR_CK_IMMUTABLE:
    case BR_CK_RETENTION:
    case BR_CK_ENDPOINTS:
    case BR_CK_QUOTAS:
        break; /* refused above */
    }
    return br_config__type_error(k, err, errsize);
}

static const br_config_group_t *find_group(const br_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->auth.num_groups; i++)
        if (strcmp(c->auth.groups[i].name, name) == 0)
            return &c->auth.groups[i];
    return NULL;
}

/* The first auth.token string key other than realm (and issuer, which has a
 * default) that is set, or NULL. */
static const char *first_token_key_set(const br_config_t *c)
{
    for (const br_config_key_t *k = br_config_keys; k->name != NULL; k++) {
        if (k->section == NULL || strcmp(k->section, "auth.token") != 0 || k->type != BR_CK_OPT_STRING ||
            strcmp(k->name, "realm") == 0)
            continue;
        if (*(char *const *)((const char *)c + k->offset) != NULL)
            return k->name;
    }
    return NULL;
}

/* Cross-field checks of the auth section: a misspelt group name or a half
 * configured token section would otherwise show up only as refused logins. */
static int check_auth(const br_config_t *c, const char **culprit_section, const char **culprit, char *err, size_t errsize)
{
    const typeof(c->auth.token) *t = &c->auth.token;
    const char *present = NULL, *missing = NULL;

    *culprit_section = "auth";
    if (c->auth.admin_group != NULL && find_group(c, c->auth.admin_group) == NULL) {
        *culprit = "admin_group";
        snprintf(err, errsize, "'auth.admin_group' names group '%s', which 'auth.groups' does not define", c->auth.admin_group);
        return BR_E_CONFIG;
    }
    for (size_t i = 0; i < c->auth.num_rules; i++) {
        for (size_t j = 0; j < c->auth.rules[i].num_groups; j++) {
            if (find_group(c, c->auth.rules[i].groups[j]) == NULL) {
                *culprit = "rules";
                snprintf(err, errsize, "'auth.rules' names group '%s', which 'auth.groups' does not define",
                         c->auth.rules[i].groups[j]);
                return BR_E_CONFIG;
            }
        }
    }

    *culprit_section = "auth.token";
    if (t->realm != NULL && t->service == NULL)
        present = "realm", missing = "service";
    else if (t->realm != NULL && t->key == NULL && t->trusted_certificates == NULL && t->jwks == NULL)
        present = "realm", missing = "key";
    else if (t->realm == NULL && (present = first_token_key_set(c)) != NULL)
        missing = "realm";
    else if (t->path != NULL && t->key == NULL)
        present = "path", missing = "key";
    else if (t->certificate != NULL && t->key == NULL)
        present = "certificate", missing = "key";
    else if (t->path != NULL && t->path[0] != '/') {
        *culprit = "path";
        snprintf(err, errsize, "'auth.token.path' must start with '/'");
        return BR_E_CONFIG;
    }
    if (present == NULL)
        return 0;
    *culprit = present;
    snprintf(err, errsize, "'auth.token.%s' is set but 'auth.token.%s' is not", present, missing);
    return BR_E_CONFIG;
}

int br_config__check(const br_config_t *c, const br_config_key_t **culprit, char *err, size_t errsize)
{
    const char *missing = NULL, *present = NULL;
    const char *auth_section, *auth_key;
    if (check_auth(c, &auth_section, &auth_key, err, errsize) != 0) {
        *culprit = br_config__find(auth_section, auth_key, strlen(auth_key));
        return BR_E_CONFIG;
    }
    if (c->tls.certificate != NULL && c->tls.key == NULL) {
        present = "certificate";
        missing = "key";
    } else if (c->tls.key != NULL && c->tls.certificate == NULL) {
        present = "key";
        missing = "certificate";
    } else if (c->tls.client_ca != NULL && c->tls.certificate == NULL) {
        present = "client_ca";
        missing = "certificate";
    }
    if (present == NULL)
        return 0;
    *culprit = br_config__find("tls", present, strlen(present));
    snprintf(err, errsize, "'tls.%s' is set but 'tls.%s' is not", present, missing);
    return BR_E_CONFIG;
}
