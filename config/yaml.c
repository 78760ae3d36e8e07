/*
 * YAML front end of the configuration: libyaml's document API builds the node
 * graph, and we walk it against the key table (internal.h). The document API
 * rather than events because every node keeps its start mark, which is what an
 * error message points at, and because duplicate keys are easy to see in a
 * finished mapping. Aliases are resolved by libyaml into shared nodes; the walk
 * is bounded by the schema (sections, then at most rule lists of mappings of
 * scalar lists), so an alias bomb costs nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "config/internal.h"

struct st_yaml_ctx_t {
    const char *path;
    yaml_document_t *doc;
    br_config_t *c;
    char *err;
    size_t errsize;
    /* Where each key of the table was set in this file, for cross-field errors. */
    yaml_mark_t key_marks[BR_CONFIG_NUM_KEYS];
    int key_seen[BR_CONFIG_NUM_KEYS];
};

/* Writes "path:line:col: message" (libyaml marks are 0-based) and returns BR_E_CONFIG. */
__attribute__((format(printf, 3, 4))) static int fail_at(struct st_yaml_ctx_t *ctx, yaml_mark_t mark, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ctx->err, ctx->errsize, "%s:%zu:%zu: %s", ctx->path, mark.line + 1, mark.column + 1, msg);
    return BR_E_CONFIG;
}

static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static int apply_listen_sequence(struct st_yaml_ctx_t *ctx, const yaml_node_t *v)
{
    br_config_listen_list_t list = {.n = 0};
    char msg[256];
    int ret = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        const yaml_node_t *item = yaml_document_get_node(ctx->doc, *it);
        if (item->type != YAML_SCALAR_NODE) {
            ret = fail_at(ctx, item->start_mark, "'listen' items must be host:port strings");
            goto Exit;
        }
        if (br_config__listen_add(&list, (const char *)item->data.scalar.value, item->data.scalar.length, msg, sizeof(msg)) != 0) {
            ret = fail_at(ctx, item->start_mark, "%s", msg);
            goto Exit;
        }
    }
    if (br_config__listen_commit(ctx->c, &list, msg, sizeof(msg)) != 0)
        ret = fail_at(ctx, v->start_mark, "%s", msg);
Exit:
    br_config__listen_clear(&list);
    return ret;
}

/* The earlier key of map equal to the key of pair p, or NULL: later keys would
 * silently win, and a duplicate is nearly always a merge mistake. */
static const yaml_node_t *earlier_key(struct st_yaml_ctx_t *ctx, const yaml_node_t *map, const yaml_node_pair_t *p)
{
    const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
    for (yaml_node_pair_t *prev = map->data.mapping.pairs.start; prev < p; prev++) {
        const yaml_node_t *pk = yaml_document_get_node(ctx->doc, prev->key);
        if (pk->type == YAML_SCALAR_NODE && key->type == YAML_SCALAR_NODE && pk->data.scalar.length == key->data.scalar.length &&
            memcmp(pk->data.scalar.value, key->data.scalar.value, key->data.scalar.length) == 0)
            return pk;
    }
    return NULL;
}

static int scalar_is(const yaml_node_t *n, const char *s)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) && memcmp(n->data.scalar.value, s, strlen(s)) == 0;
}

/* A non-empty scalar string without NUL. */
static int is_word(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && !is_null(n) && n->data.scalar.length != 0 &&
           memchr(n->data.scalar.value, '\0', n->data.scalar.length) == NULL;
}

/* Reads one string or a list of strings (null = empty list) into a new
 * NULL-terminated vector; what names the list in messages. */
static int read_words(struct st_yaml_ctx_t *ctx, const char *what, const yaml_node_t *v, char ***out, size_t *n)
{
    const yaml_node_t *one[1] = {v};
    size_t count = v->type == YAML_SEQUENCE_NODE ? (size_t)(v->data.sequence.items.top - v->data.sequence.items.start)
                   : is_null(v)                  ? 0
                                                 : 1;
    char **words = br_calloc(count + 1, sizeof(*words));
    int ret = 0;
    *n = 0;
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item = v->type == YAML_SEQUENCE_NODE ? yaml_document_get_node(ctx->doc, v->data.sequence.items.start[i])
                                                                : one[0];
        if (!is_word(item)) {
            ret = fail_at(ctx, item->start_mark, "'%s' must be a non-empty string or a list of them", what);
            goto Exit;
        }
        words[(*n)++] = br_strndup((const char *)item->data.scalar.value, item->data.scalar.length);
    }
Exit:
    if (ret != 0) {
        for (size_t i = 0; i < *n; i++)
            free(words[i]);
        free(words);
        words = NULL;
        *n = 0;
    }
    *out = words;
    return ret;
}

/* A tag glob: tag characters and '*' (which then matches any run of them). */
static int tag_glob_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BR_TAG_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '.' || s[i] == '-' || s[i] == '*'))
            return 0;
    return 1;
}

/* A retention count (keep_last, keep_days): a plain decimal in [0, max]. */
static int read_count(struct st_yaml_ctx_t *ctx, const yaml_node_t *v, const char *what, uint64_t max, uint64_t *out)
{
    const char *s = v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : "";
    size_t n = v->type == YAML_SCALAR_NODE ? v->data.scalar.length : 0, i = 0;
    uint64_t x = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9' && x <= max; i++)
        x = x * 10 + (uint64_t)(s[i] - '0');
    if (n == 0 || i != n || x > max)
        return fail_at(ctx, v->start_mark, "'%s' must be a whole number from 0 to %llu", what, (unsigned long long)max);
    *out = x;
    return 0;
}

/* One item of auth.rules, auth.anonymous (type BR_CK_ANON_RULES), immutable
 * (BR_CK_IMMUTABLE) or retention (BR_CK_RETENTION) into r (fields owned by r,
 * also on error). A retention rule's protect globs go in r->tags. */
static int read_rule(struct st_yaml_ctx_t *ctx, const char *list, int type, const yaml_node_t *item, br_config_rule_t *r)
{
    int anonymous = type == BR_CK_ANON_RULES, retention = type == BR_CK_RETENTION;
    int immutable = type == BR_CK_IMMUTABLE || retention; /* no users, groups or actions */
    const char *tags_key = retention ? "protect" : "tags";
    const yaml_node_t *seen_actions = NULL, *seen_tags = NULL, *seen_keep = NULL;
    char **actions = NULL;
    size_t num_actions = 0;
    int ret = 0;

    if (item->type != YAML_MAPPING_NODE)
        return fail_at(ctx, item->start_mark, "'%s' items must be mappings", list);
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key), *v = yaml_document_get_node(ctx->doc, p->value);
        const yaml_node_t *prev = earlier_key(ctx, item, p);
        if (key->type != YAML_SCALAR_NODE)
            return fail_at(ctx, key->start_mark, "keys must be plain strings");
        if (prev != NULL)
            return fail_at(ctx, key->start_mark, "duplicate key '%s' in '%s' item (first at line %zu)",
                           (const char *)key->data.scalar.value, list, prev->start_mark.line + 1);
        if (scalar_is(key, "repository")) {
            if (!is_word(v) || !br_config__glob_valid((const char *)v->data.scalar.value, v->data.scalar.length))
                return fail_at(ctx, v->start_mark,
                               "'repository' must be a repository glob ([a-z0-9._/-], '*' within a path component, '**' across)");
            r->repository = br_strndup((const char *)v->data.scalar.value, v->data.scalar.length);
        } else if (immutable && scalar_is(key, tags_key)) {
            if ((ret = read_words(ctx, tags_key, v, &r->tags, &r->num_tags)) != 0)
                return ret;
            seen_tags = v;
            for (size_t i = 0; i < r->num_tags; i++)
                if (!tag_glob_valid(r->tags[i]))
                    return fail_at(ctx, v->start_mark, "'%s' must be tag globs ([A-Za-z0-9_.-] and '*', at most 128), not '%s'",
                                   tags_key, r->tags[i]);
        } else if (retention && scalar_is(key, "keep_last")) {
            if ((ret = read_count(ctx, v, "keep_last", 1000000000, &r->keep_last)) != 0)
                return ret;
            seen_keep = v;
        } else if (retention && scalar_is(key, "keep_days")) {
            /* 100 years: beyond it a rule keeps everything anyway, and the
             * milliseconds stay far from overflowing. */
            if ((ret = read_count(ctx, v, "keep_days", 36500, &r->keep_days)) != 0)
                return ret;
            seen_keep = v;
        } else if (!anonymous && !immutable && scalar_is(key, "users")) {
            if ((ret = read_words(ctx, "users", v, &r->users, &r->num_users)) != 0)
                return ret;
        } else if (!anonymous && !immutable && scalar_is(key, "groups")) {
            if ((ret = read_words(ctx, "groups", v, &r->groups, &r->num_groups)) != 0)
                return ret;
        } else if (!immutable && scalar_is(key, "actions")) {
            if ((ret = read_words(ctx, "actions", v, &actions, &num_actions)) != 0)
                return ret;
            seen_actions = v;
            for (size_t i = 0; i < num_actions && ret == 0; i++) {
                unsigned bits = br_config__action(actions[i], strlen(actions[i]));
                if (bits == 0)
                    ret = fail_at(ctx, v->start_mark, "'actions' must be pull, push, delete or *, not '%s'", actions[i]);
                r->actions |= bits;
            }
            for (size_t i = 0; i < num_actions; i++)
                free(actions[i]);
            free(actions);
            if (ret != 0)
                return ret;
        } else {
            return fail_at(ctx, key->start_mark, "unknown key '%s' in '%s' item", (const char *)key->data.scalar.value, list);
        }
    }
    if (r->repository == NULL)
        return fail_at(ctx, item->start_mark, "'%s' item needs 'repository'", list);
    if (retention && seen_keep == NULL)
        return fail_at(ctx, item->start_mark,
                       "'%s' item needs 'keep_last' or 'keep_days' (with neither, the rule would keep every tag)", list);
    if (immutable && !retention && seen_tags == NULL)
        return fail_at(ctx, item->start_mark, "'%s' item needs 'tags'", list);
    if (!immutable && seen_actions == NULL)
        return fail_at(ctx, item->start_mark, "'%s' item needs 'actions'", list);
    if (r->users == NULL)
        r->users = br_calloc(1, sizeof(char *));
    if (r->groups == NULL)
        r->groups = br_calloc(1, sizeof(char *));
    return 0;
}

/* auth.rules / auth.anonymous: a list of rule mappings, replacing the list. */
static int apply_rules(struct st_yaml_ctx_t *ctx, const br_config_key_t *k, const yaml_node_t *v)
{
    char name[128], msg[256];
    br_config__display(k, name, sizeof(name));
    if (v->type != YAML_SEQUENCE_NODE && !is_null(v)) {
        br_config__type_error(k, msg, sizeof(msg));
        return fail_at(ctx, v->start_mark, "%s", msg);
    }
    size_t count = is_null(v) ? 0 : (size_t)(v->data.sequence.items.top - v->data.sequence.items.start), n = 0;
    br_config_rule_t *rules = br_calloc(count + 1, sizeof(*rules));
    int ret = 0;
    for (; n < count; n++) {
        const yaml_node_t *item = yaml_document_get_node(ctx->doc, v->data.sequence.items.start[n]);
        if ((ret = read_rule(ctx, name, (int)k->type, item, &rules[n])) != 0) {
            n++; /* the half-read rule is freed too */
            goto Exit;
        }
    }
    br_config_rule_t **field = (br_config_rule_t **)((char *)ctx->c + k->offset);
    size_t *num = (size_t *)(field + 1);
    br_config__rules_free(*field, *num);
    *field = rules;
    *num = n;
    rules = NULL;
Exit:
    if (rules != NULL)
        br_config__rules_free(rules, n);
    return ret;
}

/* auth.groups: a mapping of group name to a list of user names. */
static int apply_groups(struct st_yaml_ctx_t *ctx, const br_config_key_t *k, const yaml_node_t *v)
{
    char msg[256];
    if (v->type != YAML_MAPPING_NODE && !is_null(v)) {
        br_config__type_error(k, msg, sizeof(msg));
        return fail_at(ctx, v->start_mark, "%s", msg);
    }
    size_t count = is_null(v) ? 0 : (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start), n = 0;
    br_config_group_t *groups = br_calloc(count + 1, sizeof(*groups));
    int ret = 0;
    for (; n < count; n++) {
        yaml_node_pair_t *p = v->data.mapping.pairs.start + n;
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key), *members = yaml_document_get_node(ctx->doc, p->value);
        const yaml_node_t *prev = earlier_key(ctx, v, p);
        if (!is_word(key)) {
            ret = fail_at(ctx, key->start_mark, "group names must be non-empty strings");
            goto Exit;
        }
        if (prev != NULL) {
            ret = fail_at(ctx, key->start_mark, "duplicate group '%s' in 'auth.groups' (first at line %zu)",
                          (const char *)key->data.scalar.value, prev->start_mark.line + 1);
            goto Exit;
        }
        groups[n].name = br_strndup((const char *)key->data.scalar.value, key->data.scalar.length);
        if ((ret = read_words(ctx, "auth.groups", members, &groups[n].members, &groups[n].num_members)) != 0) {
            n++;
            goto Exit;
        }
    }
    br_config__groups_free(ctx->c->auth.groups, ctx->c->auth.num_groups);
    ctx->c->auth.groups = groups;
    ctx->c->auth.num_groups = n;
    groups = NULL;
Exit:
    if (groups != NULL)
        br_config__groups_free(groups, n);
    return ret;
}

/* A duration scalar (br_config_parse_duration_ms) of an endpoint item. */
static int read_duration(struct st_yaml_ctx_t *ctx, const char *what, const yaml_node_t *v, uint64_t *out)
{
    char buf[64];
    if (!is_word(v) || v->data.scalar.length >= sizeof(buf))
        return fail_at(ctx, v->start_mark, "'%s' must be a duration (e.g. 500ms, 5s)", what);
    memcpy(buf, v->data.scalar.value, v->data.scalar.length);
    buf[v->data.scalar.length] = '\0';
    if (br_config_parse_duration_ms(buf, out) != 0 || *out == 0)
        return fail_at(ctx, v->start_mark, "'%s' must be a duration (e.g. 500ms, 5s)", what);
    return 0;
}

/* Appends the words of v (one string or a list) to *list. */
static int add_words(struct st_yaml_ctx_t *ctx, const char *what, const yaml_node_t *v, char ***list, size_t *n)
{
    char **more;
    size_t m;
    int ret = read_words(ctx, what, v, &more, &m);
    if (ret != 0)
        return ret;
    *list = br_realloc(*list, (*n + m + 1) * sizeof(**list));
    memcpy(*list + *n, more, m * sizeof(*more));
    *n += m;
    (*list)[*n] = NULL;
    free(more);
    return 0;
}

/* Action names of ignore.actions into BR_EVENT_* bits. */
static int read_event_actions(struct st_yaml_ctx_t *ctx, const yaml_node_t *v, unsigned *bits)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"push", BR_EVENT_PUSH}, {"pull", BR_EVENT_PULL}, {"delete", BR_EVENT_DELETE}, {"mount", BR_EVENT_MOUNT}};
    char **words;
    size_t n;
    int ret = read_words(ctx, "ignore.actions", v, &words, &n);
    for (size_t i = 0; i < n && ret == 0; i++) {
        size_t j = 0;
        while (j < 4 && strcmp(words[i], names[j].name) != 0)
            j++;
        if (j == 4)
            ret = fail_at(ctx, v->start_mark, "'ignore.actions' must be push, pull, delete or mount, not '%s'", words[i]);
        else
            *bits |= names[j].bit;
    }
    for (size_t i = 0; i < n; i++)
        free(words[i]);
    free(words);
    return ret;
}

/* One item of notifications.endpoints into e (fields owned by e, also on error). */
static int read_endpoint(struct st_yaml_ctx_t *ctx, const yaml_node_t *item, br_config_endpoint_t *e)
{
    int ret = 0;
    e->timeout_ms = 1000;
    e->threshold = 10;
    e->backoff_ms = 1000;
    if (item->type != YAML_MAPPING_NODE)
        return fail_at(ctx, item->start_mark, "'notifications.endpoints' items must be mappings");
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top && ret == 0; p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key), *v = yaml_document_get_node(ctx->doc, p->value);
        const yaml_node_t *prev = earlier_key(ctx, item, p);
        if (key->type != YAML_SCALAR_NODE)
            return fail_at(ctx, key->start_mark, "keys must be plain strings");
        if (prev != NULL)
            return fail_at(ctx, key->start_mark, "duplicate key '%s' in 'notifications.endpoints' item (first at line %zu)",
                           (const char *)key->data.scalar.value, prev->start_mark.line + 1);
        const char *sv = (const char *)v->data.scalar.value;
        if (scalar_is(key, "name")) {
            size_t len = is_word(v) ? v->data.scalar.length : 0;
            if (len == 0 || len > 64 || strspn(sv, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len)
                return fail_at(ctx, v->start_mark, "'name' must be 1-64 characters of [A-Za-z0-9._-]");
            e->name = br_strndup(sv, len);
        } else if (scalar_is(key, "url")) {
            size_t skip = is_word(v) && strncmp(sv, "https://", 8) == 0 ? 8 : is_word(v) && strncmp(sv, "http://", 7) == 0 ? 7 : 0;
            if (skip == 0 || v->data.scalar.length <= skip || sv[skip] == '/' || strpbrk(sv, " \t\r\n") != NULL)
                return fail_at(ctx, v->start_mark, "'url' must be an http:// or https:// URL");
            e->url = br_strndup(sv, v->data.scalar.length);
        } else if (scalar_is(key, "headers")) {
            if (v->type != YAML_MAPPING_NODE && !is_null(v))
                return fail_at(ctx, v->start_mark, "'headers' must be a mapping of header names to values (or lists of them)");
            for (yaml_node_pair_t *h = is_null(v) ? NULL : v->data.mapping.pairs.start; h != NULL && h < v->data.mapping.pairs.top;
                 h++) {
                const yaml_node_t *hk = yaml_document_get_node(ctx->doc, h->key), *hv = yaml_document_get_node(ctx->doc, h->value);
                size_t hl = is_word(hk) ? hk->data.scalar.length : 0;
                if (hl == 0 || strspn((const char *)hk->data.scalar.value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != hl)
                    return fail_at(ctx, hk->start_mark, "header names must be tokens ([A-Za-z0-9_-])");
                char **vals;
                size_t nv;
                if ((ret = read_words(ctx, "headers", hv, &vals, &nv)) != 0)
                    return ret;
                for (size_t i = 0; i < nv; i++) {
                    if (strpbrk(vals[i], "\r\n") == NULL) {
                        char line[4096];
                        snprintf(line, sizeof(line), "%s: %s", (const char *)hk->data.scalar.value, vals[i]);
                        e->headers = br_realloc(e->headers, (e->num_headers + 2) * sizeof(*e->headers));
                        e->headers[e->num_headers++] = br_strndup(line, strlen(line));
                        e->headers[e->num_headers] = NULL;
                    } else {
                        ret = fail_at(ctx, hv->start_mark, "header values must be one line");
                    }
                    free(vals[i]);
                }
                free(vals);
                if (ret != 0)
                    return ret;
            }
        } else if (scalar_is(key, "timeout")) {
            ret = read_duration(ctx, "timeout", v, &e->timeout_ms);
        } else if (scalar_is(key, "backoff")) {
            ret = read_duration(ctx, "backoff", v, &e->backoff_ms);
        } else if (scalar_is(key, "threshold")) {
            char *end;
            unsigned long t = is_word(v) ? strtoul(sv, &end, 10) : 0;
            if (!is_word(v) || *end != '\0' || sv[0] < '0' || sv[0] > '9' || t > 1000)
                return fail_at(ctx, v->start_mark, "'threshold' must be a number from 0 to 1000");
            e->threshold = (unsigned)t;
        } else if (scalar_is(key, "format")) {
            if (scalar_is(v, "cloudevents"))
                e->cloudevents = 1;
            else if (!scalar_is(v, "distribution"))
                return fail_at(ctx, v->start_mark, "'format' must be distribution or cloudevents");
        } else if (scalar_is(key, "disabled")) {
            if (scalar_is(v, "true"))
                e->disabled = 1;
            else if (!scalar_is(v, "false"))
                return fail_at(ctx, v->start_mark, "'disabled' must be true or false");
        } else if (scalar_is(key, "ignoredmediatypes")) {
            ret = add_words(ctx, "ignoredmediatypes", v, &e->ignored_media_types, &e->num_ignored_media_types);
        } else if (scalar_is(key, "ignore")) {
            if (v->type != YAML_MAPPING_NODE && !is_null(v))
                return fail_at(ctx, v->start_mark, "'ignore' must be a mapping {mediatypes, actions}");
            for (yaml_node_pair_t *q = is_null(v) ? NULL : v->data.mapping.pairs.start; q != NULL && q < v->data.mapping.pairs.top && ret == 0;
                 q++) {
                const yaml_node_t *ik = yaml_document_get_node(ctx->doc, q->key), *iv = yaml_document_get_node(ctx->doc, q->value);
                if (scalar_is(ik, "mediatypes"))
                    ret = add_words(ctx, "ignore.mediatypes", iv, &e->ignored_media_types, &e->num_ignored_media_types);
                else if (scalar_is(ik, "actions"))
                    ret = read_event_actions(ctx, iv, &e->ignored_actions);
                else
                    return fail_at(ctx, ik->start_mark, "unknown key in 'ignore' (mediatypes, actions)");
            }
        } else {
            return fail_at(ctx, key->start_mark, "unknown key '%s' in 'notifications.endpoints' item",
                           (const char *)key->data.scalar.value);
        }
    }
    if (ret != 0)
        return ret;
    if (e->name == NULL)
        return fail_at(ctx, item->start_mark, "'notifications.endpoints' item needs 'name'");
    if (e->url == NULL)
        return fail_at(ctx, item->start_mark, "'notifications.endpoints' item needs 'url'");
    if (e->headers == NULL)
        e->headers = br_calloc(1, sizeof(char *));
    if (e->ignored_media_types == NULL)
        e->ignored_media_types = br_calloc(1, sizeof(char *));
    return 0;
}

/* notifications.endpoints: a list of endpoint mappings, replacing the list. */
static int apply_endpoints(struct st_yaml_ctx_t *ctx, const br_config_key_t *k, const yaml_node_t *v)
{
    char msg[256];
    if (v->type != YAML_SEQUENCE_NODE && !is_null(v)) {
        br_config__type_error(k, msg, sizeof(msg));
        return fail_at(ctx, v->start_mark, "%s", msg);
    }
    size_t count = is_null(v) ? 0 : (size_t)(v->data.sequence.items.top - v->data.sequence.items.start), n = 0;
    br_config_endpoint_t *eps = br_calloc(count + 1, sizeof(*eps));
    int ret = 0;
    for (; n < count; n++) {
        const yaml_node_t *item = yaml_document_get_node(ctx->doc, v->data.sequence.items.start[n]);
        if ((ret = read_endpoint(ctx, item, &eps[n])) != 0) {
            n++; /* the half-read endpoint is freed too */
            goto Exit;
        }
        for (size_t i = 0; i < n; i++)
            if (strcmp(eps[i].name, eps[n].name) == 0) {
                ret = fail_at(ctx, item->start_mark, "duplicate endpoint name '%s'", eps[n].name);
                n++;
                goto Exit;
            }
    }
    br_config__endpoints_free(ctx->c->notifications.endpoints, ctx->c->notifications.num_endpoints);
    ctx->c->notifications.endpoints = eps;
    ctx->c->notifications.num_endpoints = n;
    eps = NULL;
Exit:
    if (eps != NULL)
        br_config__endpoints_free(eps, n);
    return ret;
}

/* quotas: a list of {repository, max_bytes} mappings, replacing the list; an
 * item without repository is the global limit (at most one, and no glob
 * twice: each names one counter). */
static int apply_quotas(struct st_yaml_ctx_t *ctx, const br_config_key_t *k, const yaml_node_t *v)
{
    char msg[256];
    if (v->type != YAML_SEQUENCE_NODE && !is_null(v)) {
        br_config__type_error(k, msg, sizeof(msg));
        return fail_at(ctx, v->start_mark, "%s", msg);
    }
    size_t count = is_null(v) ? 0 : (size_t)(v->data.sequence.items.top - v->data.sequence.items.start), n = 0;
    if (count > BR_CONFIG_MAX_QUOTAS)
        return fail_at(ctx, v->start_mark, "'quotas' may have at most %d items", BR_CONFIG_MAX_QUOTAS);
    br_config_quota_t *q = br_calloc(count + 1, sizeof(*q));
    int ret = 0;
    for (; n < count && ret == 0; n++) {
        const yaml_node_t *item = yaml_document_get_node(ctx->doc, v->data.sequence.items.start[n]);
        const yaml_node_t *seen_max = NULL;
        if (item->type != YAML_MAPPING_NODE) {
            ret = fail_at(ctx, item->start_mark, "'quotas' items must be mappings");
            break;
        }
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top && ret == 0; p++) {
            const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key), *val = yaml_document_get_node(ctx->doc, p->value);
            const yaml_node_t *prev = earlier_key(ctx, item, p);
            const char *sv = (const char *)val->data.scalar.value;
            if (key->type != YAML_SCALAR_NODE)
                ret = fail_at(ctx, key->start_mark, "keys must be plain strings");
            else if (prev != NULL)
                ret = fail_at(ctx, key->start_mark, "duplicate key '%s' in 'quotas' item (first at line %zu)",
                              (const char *)key->data.scalar.value, prev->start_mark.line + 1);
            else if (scalar_is(key, "repository") && (!is_word(val) || !br_config__glob_valid(sv, val->data.scalar.length)))
                ret = fail_at(ctx, val->start_mark,
                              "'repository' must be a repository glob ([a-z0-9._/-], '*' within a path component, '**' across)");
            else if (scalar_is(key, "repository"))
                q[n].repository = br_strndup(sv, val->data.scalar.length);
            else if (scalar_is(key, "max_bytes") && (!is_word(val) || br_config_parse_size(sv, &q[n].max_bytes) != 0))
                ret = fail_at(ctx, val->start_mark, "'max_bytes' must be a size (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)");
            else if (scalar_is(key, "max_bytes"))
                seen_max = val;
            else
                ret = fail_at(ctx, key->start_mark, "unknown key '%s' in 'quotas' item", (const char *)key->data.scalar.value);
        }
        if (ret == 0 && seen_max == NULL)
            ret = fail_at(ctx, item->start_mark, "'quotas' item needs 'max_bytes'");
        for (size_t i = 0; i < n && ret == 0; i++) {
            if (q[i].repository == NULL && q[n].repository == NULL)
                ret = fail_at(ctx, item->start_mark, "a second global quota (an item without 'repository')");
            else if (q[i].repository != NULL && q[n].repository != NULL && strcmp(q[i].repository, q[n].repository) == 0)
                ret = fail_at(ctx, item->start_mark, "a second quota for repository '%s'", q[n].repository);
        }
    }
    if (ret != 0) {
        br_config__quotas_free(q, n);
        return ret;
    }
    br_config__quotas_free(ctx->c->quotas, ctx->c->num_quotas);
    ctx->c->quotas = q;
    ctx->c->num_quotas = n;
    return 0;
}

static int apply_value(struct st_yaml_ctx_t *ctx, const br_config_key_t *k, const yaml_node_t *key, const yaml_node_t *v)
{
    char msg[512];
    size_t idx = (size_t)(k - br_config_keys);
    ctx->key_marks[idx] = key->start_mark;
    ctx->key_seen[idx] = 1;

    if (k->type == BR_CK_LISTEN && v->type == YAML_SEQUENCE_NODE)
        return apply_listen_sequence(ctx, v);
    if (k->type == BR_CK_RULES || k->type == BR_CK_ANON_RULES || k->type == BR_CK_IMMUTABLE || k->type == BR_CK_RETENTION)
        return apply_rules(ctx, k, v);
    if (k->type == BR_CK_GROUPS)
        return apply_groups(ctx, k, v);
    if (k->type == BR_CK_ENDPOINTS)
        return apply_endpoints(ctx, k, v);
    if (k->type == BR_CK_QUOTAS)
        return apply_quotas(ctx, k, v);
    if (v->type != YAML_SCALAR_NODE) {
        br_config__type_error(k, msg, sizeof(msg));
        return fail_at(ctx, v->start_mark, "%s", msg);
    }
    if (br_config__set(ctx->c, k, (const char *)v->data.scalar.value, v->data.scalar.length, is_null(v), msg, sizeof(msg)) != 0)
        return fail_at(ctx, v->start_mark, "%s", msg);
    return 0;
}

/* Walks one mapping: the top level (section == NULL) or one section. */
static int walk_mapping(struct st_yaml_ctx_t *ctx, const char *section, const yaml_node_t *map)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key), *v = yaml_document_get_node(ctx->doc, p->value);
        if (key->type != YAML_SCALAR_NODE)
            return fail_at(ctx, key->start_mark, "keys must be plain strings");
        const char *name = (const char *)key->data.scalar.value;
        size_t namelen = key->data.scalar.length;
        const char *in = section != NULL ? " in '" : "", *sec = section != NULL ? section : "", *q = section != NULL ? "'" : "";

        const yaml_node_t *pk = earlier_key(ctx, map, p);
        if (pk != NULL)
            return fail_at(ctx, key->start_mark, "duplicate key '%.*s'%s%s%s (first at line %zu)", (int)namelen, name, in, sec, q,
                           pk->start_mark.line + 1);

        /* Sections nest one level more under auth ("auth.token"). */
        char full[128];
        snprintf(full, sizeof(full), "%s%s%.*s", sec, section != NULL ? "." : "", (int)namelen, name);
        if (namelen < 64 && memchr(name, '.', namelen) == NULL && br_config__is_section(full, strlen(full))) {
            if (is_null(v)) /* "tls:" with every line below commented out */
                continue;
            if (v->type != YAML_MAPPING_NODE)
                return fail_at(ctx, v->start_mark, "'%s' must be a mapping", full);
            /* An auth mapping, even an empty one, turns authentication on. */
            if (strcmp(full, "auth") == 0)
                ctx->c->auth.enabled = 1;
            int ret = walk_mapping(ctx, full, v);
            if (ret != 0)
                return ret;
            continue;
        }
        const br_config_key_t *k = br_config__find(section, name, namelen);
        if (k == NULL)
            return fail_at(ctx, key->start_mark, "unknown key '%.*s'%s%s%s", (int)namelen, name, in, sec, q);
        int ret = apply_value(ctx, k, key, v);
        if (ret != 0)
            return ret;
    }
    return 0;
}

/* libyaml reports reader errors (bad UTF-8, control characters) as a byte
 * offset only, with its marks still at wherever the scanner was. Recount the
 * line and column (in characters, as libyaml's marks are) from the file. */
static yaml_mark_t offset_to_mark(FILE *fp, size_t offset)
{
    yaml_mark_t mark = {0, 0, 0};
    int ch;
    rewind(fp);
    for (size_t i = 0; i < offset && (ch = getc(fp)) != EOF; i++) {
        if (ch == '\n') {
            mark.line++;
            mark.column = 0;
        } else if ((ch & 0xc0) != 0x80) {
            mark.column++;
        }
    }
    mark.index = offset;
    return mark;
}

static int parse_error(struct st_yaml_ctx_t *ctx, const yaml_parser_t *parser, FILE *fp)
{
    const char *problem = parser->problem != NULL ? parser->problem : "syntax error";
    if (parser->error == YAML_MEMORY_ERROR) {
        fprintf(stderr, "berth: out of memory parsing %s\n", ctx->path);
        abort();
    }
    if (parser->error == YAML_READER_ERROR)
        return fail_at(ctx, offset_to_mark(fp, parser->problem_offset), "%s", problem);
    if (parser->context != NULL)
        return fail_at(ctx, parser->problem_mark, "%s %s", problem, parser->context);
    return fail_at(ctx, parser->problem_mark, "%s", problem);
}

int br_config_load_file(br_config_t *c, const char *path, char *err, size_t errsize)
{
    struct st_yaml_ctx_t ctx = {.path = path, .err = err, .errsize = errsize};
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    const yaml_node_t *root, *extra_root;
    const br_config_key_t *culprit = NULL;
    int have_parser = 0, have_doc = 0, ret = 0;
    br_config_t work, old;
    char msg[256];
    FILE *fp;

    err[0] = '\0';
    /* Work on a copy so that a failed load leaves c exactly as it was. */
    br_config__copy(&work, c);
    ctx.c = &work;

    if ((fp = fopen(path, "rb")) == NULL) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        ret = BR_E_CONFIG;
        goto Exit;
    }
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "berth: out of memory\n");
        abort();
    }
    have_parser = 1;
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        ret = parse_error(&ctx, &parser, fp);
        goto Exit;
    }
    have_doc = 1;
    ctx.doc = &doc;

    /* A second document would be silently ignored otherwise. */
    if (!yaml_parser_load(&parser, &extra)) {
        ret = parse_error(&ctx, &parser, fp);
        goto Exit;
    }
    if ((extra_root = yaml_document_get_root_node(&extra)) != NULL)
        ret = fail_at(&ctx, extra_root->start_mark, "only one YAML document is allowed");
    yaml_document_delete(&extra);
    if (ret != 0)
        goto Exit;

    /* An empty file, or one with only comments, means all defaults. */
    root = yaml_document_get_root_node(&doc);
    if (root != NULL && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            ret = fail_at(&ctx, root->start_mark, "the top level must be a mapping of keys");
            goto Exit;
        }
        if ((ret = walk_mapping(&ctx, NULL, root)) != 0)
            goto Exit;
        if (br_config__check(&work, &culprit, msg, sizeof(msg)) != 0) {
            size_t idx = (size_t)(culprit - br_config_keys);
            ret = fail_at(&ctx, ctx.key_seen[idx] ? ctx.key_marks[idx] : root->start_mark, "%s", msg);
            goto Exit;
        }
    }

    /* Positions only once the whole file loaded: a failed load changes nothing. */
    for (size_t i = 0; i < BR_CONFIG_NUM_KEYS; i++)
        if (ctx.key_seen[i])
            work.origin[i] = (br_config_origin_t){BR_CONFIG_FROM_FILE, (unsigned)ctx.key_marks[i].line + 1,
                                                  (unsigned)ctx.key_marks[i].column + 1};
    free(work.source_file);
    work.source_file = br_strndup(path, strlen(path));
    old = *c;
    *c = work;
    work = old; /* the replaced values are disposed below */
Exit:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    if (fp != NULL)
        fclose(fp);
    br_config_dispose(&work);
    return ret;
}
