/*
 * Embedded defaults and the value parsers shared by the YAML file, the
 * environment and the command line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include "config/internal.h"

void br_config_init(br_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->listen[0].host = br_strndup("", 0);
    c->listen[0].port = 5000;
    c->num_listen = 1;
    c->threads = 0;
    c->io_threads = 4;
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
    c->gc.interval_s = 3600;
    c->gc.grace_s = 3600;
    c->gc.untagged_delete = 0;
    c->notifications.queue_size = 10000;
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
        out[i].tags = rules[i].tags != NULL ? copy_strv(rules[i].tags, rules[i].num_tags) : NULL;
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
    free(c->metrics.listen.host);
    free(c->source_file);
    auth_strings(c, NULL);
    br_config__groups_free(c->auth.groups, c->auth.num_groups);
    br_config__rules_free(c->auth.anonymous, c->auth.num_anonymous);
    br_config__rules_free(c->auth.rules, c->auth.num_rules);
    br_config__rules_free(c->immutable, c->num_immutable);
    br_config__rules_free(c->retention, c->num_retention);
    br_config__endpoints_free(c->notifications.endpoints, c->notifications.num_endpoints);
    br_config__quotas_free(c->quotas, c->num_quotas);
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
    dst->metrics.listen.host = dup_or_null(src->metrics.listen.host);
    dst->source_file = dup_or_null(src->source_file);
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
    dst->immutable = copy_rules(src->immutable, src->num_immutable);
    dst->retention = copy_rules(src->retention, src->num_retention);
    dst->quotas = br_calloc(src->num_quotas + 1, sizeof(*dst->quotas));
    for (size_t i = 0; i < src->num_quotas; i++)
        dst->quotas[i] = (br_config_quota_t){dup_or_null(src->quotas[i].repository), src->quotas[i].max_bytes};
    size_t ne = src->notifications.num_endpoints;
    dst->notifications.endpoints = br_calloc(ne + 1, sizeof(*dst->notifications.endpoints));
    for (size_t i = 0; i < ne; i++) {
        const br_config_endpoint_t *e = &src->notifications.endpoints[i];
        br_config_endpoint_t *d = &dst->notifications.endpoints[i];
        *d = *e;
        d->name = dup_or_null(e->name);
        d->url = dup_or_null(e->url);
        d->headers = copy_strv(e->headers, e->num_headers);
        d->ignored_media_types = copy_strv(e->ignored_media_types, e->num_ignored_media_types);
    }
}

int br_config_validate(const br_config_t *c, char *err, size_t errsize)
{
    const br_config_key_t *culprit;
    return br_config__check(c, &culprit, err, errsize);
}

void br_config_set_origin(br_config_t *c, const char *section, const char *name, br_config_source_t source)
{
    const br_config_key_t *k = br_config__find(section, name, strlen(name));
    if (k != NULL)
        c->origin[k - br_config_keys] = (br_config_origin_t){source, 0, 0};
}

/* "where: key" for messages about k's value: its position in the file, its
 * environment variable, or just its name. */
static void describe_key(const br_config_t *c, const br_config_key_t *k, char *buf, size_t size)
{
    char name[128], env[128];
    const br_config_origin_t *o = &c->origin[k - br_config_keys];
    br_config__display(k, name, sizeof(name));
    switch (o->source) {
    case BR_CONFIG_FROM_FILE:
        snprintf(buf, size, "%s:%u:%u: %s", c->source_file != NULL ? c->source_file : "(config)", o->line, o->col, name);
        break;
    case BR_CONFIG_FROM_ENV:
        snprintf(buf, size, "%s: %s", br_config__env_name(k, env, sizeof(env)), name);
        break;
    case BR_CONFIG_FROM_FLAG:
        snprintf(buf, size, "command line: %s", name);
        break;
    default:
        snprintf(buf, size, "%s", name);
        break;
    }
}

/* 0 when path opens for reading and is no directory, else the errno. Non-
 * blocking, so that a FIFO named by mistake cannot hang the check. */
static int file_problem(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC), ret = 0;
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0)
        ret = errno;
    else if (S_ISDIR(st.st_mode))
        ret = EISDIR;
    close(fd);
    return ret;
}

/* 0 when the store can live at root: an existing directory berth may use, or
 * a new one in an existing directory (the store makes the root, not its
 * parents). */
static int root_problem(const char *root)
{
    struct stat st;
    if (stat(root, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return ENOTDIR;
        return access(root, R_OK | W_OK | X_OK) != 0 ? errno : 0;
    }
    if (errno != ENOENT)
        return errno;
    char *copy = br_strndup(root, strlen(root));
    const char *parent = dirname(copy);
    int ret = stat(parent, &st) != 0 ? ENOENT : !S_ISDIR(st.st_mode) ? ENOTDIR : access(parent, W_OK | X_OK) != 0 ? errno : 0;
    free(copy);
    return ret;
}

int br_config_check_files(const br_config_t *c, char *err, size_t errsize)
{
    /* Every key whose value is a file berth reads at start or on reload. */
    static const char *const files[][2] = {
        {"tls", "certificate"},      {"tls", "key"},         {"tls", "client_ca"},
        {"auth", "htpasswd"},        {"auth.token", "key"},  {"auth.token", "certificate"},
        {"auth.token", "trusted_certificates"}, {"auth.token", "jwks"},
    };
    char where[512];
    err[0] = '\0';
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const br_config_key_t *k = br_config__find(files[i][0], files[i][1], strlen(files[i][1]));
        const char *path = *(char *const *)((const char *)c + k->offset);
        int e;
        if (path == NULL || (e = file_problem(path)) == 0)
            continue;
        describe_key(c, k, where, sizeof(where));
        snprintf(err, errsize, "%s: %s: %s", where, path, strerror(e));
        return BR_E_CONFIG;
    }
    int e = root_problem(c->storage.root);
    if (e != 0) {
        describe_key(c, br_config__find("storage", "root", 4), where, sizeof(where));
        snprintf(err, errsize, "%s: %s: %s", where, c->storage.root, strerror(e));
        return BR_E_CONFIG;
    }
    return 0;
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

/* Keys whose value is built into something made once at start: the listening
 * sockets, the threads, the open store, and what h2o copies into each
 * thread's context (body limit, HTTP/1 deadline, HTTP/2 idle and shutdown
 * timers, h2c). A reload cannot change them without a restart. */
static const struct {
    const char *section, *name;
} restart_keys[] = {
    {NULL, "listen"},
    {NULL, "threads"},
    {NULL, "io_threads"},
    {NULL, "http2"},
    {"storage", "root"},
    {"storage", "fsync"},
    {"limits", "max_body_size"},
    {"limits", "request_deadline"},
    {"limits", "idle_timeout"},
    {"limits", "drain_timeout"},
    {"metrics", "listen"},
};

static int opt_str_eq(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* 1 when k has the same value in a and b (types of restart_keys only). */
static int key_value_eq(const br_config_key_t *k, const br_config_t *a, const br_config_t *b)
{
    const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
    switch (k->type) {
    case BR_CK_LISTEN:
        if (a->num_listen != b->num_listen)
            return 0;
        for (size_t i = 0; i < a->num_listen; i++)
            if (a->listen[i].port != b->listen[i].port || strcmp(a->listen[i].host, b->listen[i].host) != 0)
                return 0;
        return 1;
    case BR_CK_UINT:
        return *(const unsigned *)pa == *(const unsigned *)pb;
    case BR_CK_BOOL:
        return *(const int *)pa == *(const int *)pb;
    case BR_CK_SIZE:
    case BR_CK_DURATION_MS:
    case BR_CK_DURATION_S:
        return *(const uint64_t *)pa == *(const uint64_t *)pb;
    case BR_CK_STRING:
    case BR_CK_OPT_STRING:
        return opt_str_eq(*(char *const *)pa, *(char *const *)pb);
    case BR_CK_OPT_ADDR: {
        const br_listen_t *la = (const br_listen_t *)pa, *lb = (const br_listen_t *)pb;
        return la->port == lb->port && opt_str_eq(la->host, lb->host);
    }
    default:
        abort(); /* a restart key of a type added to the table without a case here */
    }
}

/* Copies k's value from src into dst (strings duplicated, dst's freed). */
static void key_value_copy(const br_config_key_t *k, br_config_t *dst, const br_config_t *src)
{
    char *pd = (char *)dst + k->offset;
    const char *ps = (const char *)src + k->offset;
    switch (k->type) {
    case BR_CK_LISTEN:
        for (size_t i = 0; i < dst->num_listen; i++)
            free(dst->listen[i].host);
        for (size_t i = 0; i < src->num_listen; i++) {
            dst->listen[i].port = src->listen[i].port;
            dst->listen[i].host = br_strndup(src->listen[i].host, strlen(src->listen[i].host));
        }
        dst->num_listen = src->num_listen;
        break;
    case BR_CK_UINT:
        *(unsigned *)pd = *(const unsigned *)ps;
        break;
    case BR_CK_BOOL:
        *(int *)pd = *(const int *)ps;
        break;
    case BR_CK_SIZE:
    case BR_CK_DURATION_MS:
    case BR_CK_DURATION_S:
        *(uint64_t *)pd = *(const uint64_t *)ps;
        break;
    case BR_CK_STRING:
    case BR_CK_OPT_STRING: {
        const char *s = *(char *const *)ps;
        free(*(char **)pd);
        *(char **)pd = s != NULL ? br_strndup(s, strlen(s)) : NULL;
        break;
    }
    case BR_CK_OPT_ADDR: {
        br_listen_t *ld = (br_listen_t *)pd;
        const br_listen_t *ls = (const br_listen_t *)ps;
        free(ld->host);
        ld->host = ls->host != NULL ? br_strndup(ls->host, strlen(ls->host)) : NULL;
        ld->port = ls->port;
        break;
    }
    default:
        abort();
    }
}

size_t br_config_keep_restart_keys(const br_config_t *old, br_config_t *nw, void (*report)(void *ctx, const char *where),
                                   void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(restart_keys) / sizeof(restart_keys[0]); i++) {
        const br_config_key_t *k = br_config__find(restart_keys[i].section, restart_keys[i].name, strlen(restart_keys[i].name));
        if (k == NULL || key_value_eq(k, old, nw))
            continue;
        char where[1200];
        describe_key(nw, k, where, sizeof(where));
        report(ctx, where);
        key_value_copy(k, nw, old);
        n++;
    }
    return n;
}
