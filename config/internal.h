/*
 * Shared inside config/ only: the one table of configuration keys that both
 * front ends (YAML file in yaml.c, environment in env.c) read, and the setter
 * that turns a scalar string into a field. Because both front ends go through
 * this table and this setter, a key cannot parse or validate differently
 * depending on where it came from.
 */
#ifndef BR_CONFIG_INTERNAL_H
#define BR_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "config/config.h"

typedef enum {
    BR_CK_LISTEN,      /* br_config_t.listen/num_listen: "host:port" list */
    BR_CK_UINT,        /* unsigned, decimal, in [min, max] */
    BR_CK_BOOL,        /* int: true/false/yes/no/on/off */
    BR_CK_SIZE,        /* uint64_t bytes, br_config_parse_size, in [min, max] */
    BR_CK_DURATION_MS, /* uint64_t milliseconds, br_config_parse_duration_ms, in [min, max] ms */
    BR_CK_DURATION_S,  /* uint64_t seconds; parsed as a duration, min/max in ms */
    BR_CK_STRING,      /* char *, heap-owned, must not be empty */
    BR_CK_OPT_STRING,  /* char *, heap-owned; null/empty means unset (NULL) */
    BR_CK_LOG_LEVEL,   /* br_log_level_t */
    BR_CK_LOG_FORMAT,  /* br_log_format_t */
    BR_CK_GC_UNTAGGED, /* int: keep = 0, delete = 1 */
    BR_CK_OPT_ADDR,    /* br_listen_t: one "host:port"; null/empty = off (host NULL, port 0) */
    BR_CK_RATE,        /* uint64_t bytes per second: a size, optionally followed by "/s" */
    /* Structured values, YAML only (the environment refuses them). The field is
     * the array pointer, immediately followed by its size_t count. */
    BR_CK_GROUPS,     /* br_config_group_t[]: mapping of group name to list of users */
    BR_CK_RULES,      /* br_config_rule_t[]: list of {repository, users, groups, actions} */
    BR_CK_ANON_RULES, /* br_config_rule_t[]: list of {repository, actions} */
    BR_CK_IMMUTABLE,  /* br_config_rule_t[]: list of {repository, tags} */
    BR_CK_RETENTION,  /* br_config_rule_t[]: list of {repository, keep_last, keep_days, protect} */
    BR_CK_ENDPOINTS,  /* br_config_endpoint_t[]: list of webhook endpoint mappings */
    BR_CK_QUOTAS,     /* br_config_quota_t[]: list of {repository, max_bytes} mappings */
} br_config_type_t;

typedef struct st_br_config_key_t {
    const char *section; /* NULL for a top-level key; "a.b" for a section inside section a */
    const char *name;    /* key inside its section */
    br_config_type_t type;
    size_t offset; /* offsetof(br_config_t, field) */
    uint64_t min, max;
} br_config_key_t;

/* The table, terminated by an entry whose name is NULL. Its size is fixed so
 * that front ends can keep per-key arrays; a row too many fails to compile. */
#define BR_CONFIG_NUM_KEYS 52
extern const br_config_key_t br_config_keys[BR_CONFIG_NUM_KEYS + 1];

_Static_assert(BR_CONFIG_NUM_KEYS <= BR_CONFIG_MAX_KEYS, "br_config_t.origin needs room for every key");

/* Looks up a key by section (NULL = top level) and name; NULL when unknown. */
const br_config_key_t *br_config__find(const char *section, const char *name, size_t namelen);
/* 1 when name is the full name of a section (a key whose value is a mapping),
 * e.g. "tls" or "auth.token". */
int br_config__is_section(const char *name, size_t namelen);
/* Writes "section.name" (or "name") into buf; returns buf. */
const char *br_config__display(const br_config_key_t *k, char *buf, size_t bufsize);
/* Writes "BERTH_SECTION_NAME" into buf; returns buf. */
const char *br_config__env_name(const br_config_key_t *k, char *buf, size_t bufsize);

/* Sets the field of k in c from the scalar value (len bytes, may contain NUL,
 * which is refused). is_null says the source wrote an explicit null (YAML ~,
 * null, or nothing); only BR_CK_OPT_STRING accepts it. Replaced strings are
 * freed. Returns 0, or BR_E_CONFIG with "'name' must be ..." in err and c
 * unchanged. A BR_CK_LISTEN value is a comma-separated list that replaces the
 * whole listen list. */
int br_config__set(br_config_t *c, const br_config_key_t *k, const char *value, size_t len, int is_null, char *err, size_t errsize);
/* Writes the type error for k ("'name' must be ...") into err; returns BR_E_CONFIG. */
int br_config__type_error(const br_config_key_t *k, char *err, size_t errsize);

/* Parses one action name (pull, push, delete, or * for all three) into its
 * BR_ACTION_* bits; 0 when unknown. */
unsigned br_config__action(const char *s, size_t len);
/* 1 when s (len bytes) is a usable repository glob: repository-name characters
 * [a-z0-9._/-] and '*', no "***", not empty, no empty path component. */
int br_config__glob_valid(const char *s, size_t len);
/* Frees a rule/group array and its strings. */
void br_config__rules_free(br_config_rule_t *rules, size_t n);
void br_config__groups_free(br_config_group_t *groups, size_t n);
void br_config__endpoints_free(br_config_endpoint_t *e, size_t n);
void br_config__quotas_free(br_config_quota_t *q, size_t n);

/* Builds a listen list one address at a time (YAML sequences report each bad
 * item at its own position), then installs it with br_config__listen_commit,
 * which takes ownership of the hosts. br_config__listen_clear frees what is
 * left after an error. */
typedef struct st_br_config_listen_list_t {
    br_listen_t items[BR_CONFIG_MAX_LISTEN];
    size_t n;
} br_config_listen_list_t;

int br_config__listen_add(br_config_listen_list_t *list, const char *s, size_t len, char *err, size_t errsize);
int br_config__listen_commit(br_config_t *c, br_config_listen_list_t *list, char *err, size_t errsize);
void br_config__listen_clear(br_config_listen_list_t *list);

/* Cross-field checks; on error also sets *culprit to the key at fault so the
 * YAML front end can point at it. */
int br_config__check(const br_config_t *c, const br_config_key_t **culprit, char *err, size_t errsize);

/* Deep copy: dst receives its own heap strings. Both loaders work on a copy
 * and swap it in only on success, so a failed load leaves c as it was. */
void br_config__copy(br_config_t *dst, const br_config_t *src);

#endif
