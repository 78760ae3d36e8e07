/*
 * berth configuration: one YAML file (libyaml) read into one struct before any
 * thread starts, then never changed (a reload reads a new struct; the server
 * swaps it in whole). Every value has a default, so berth runs
 * with no file at all. Environment variables BERTH_<SECTION>_<KEY> (upper case,
 * e.g. BERTH_STORAGE_ROOT, BERTH_LIMITS_MAX_BODY_SIZE) override the file.
 *
 * The YAML shape (all keys optional):
 *
 *   listen: ["0.0.0.0:5000", "[::1]:5001"]   # or one string
 *   threads: 0                              # 0 = one per core
 *   io_threads: 4                           # run commits (fsync) off the event loops
 *   storage:
 *     root: ./berth-data
 *     delete: true                          # allow DELETE of blobs, manifests, tags
 *     upload_purge_age: 24h                 # abandoned uploads are removed after this
 *     fsync: true
 *   limits:
 *     max_body_size: 64GiB                  # largest request body (one PATCH/PUT)
 *     max_manifest_size: 4MiB
 *     request_deadline: 1h                  # HTTP/1: headers + whole body must arrive by then
 *     header_size: 64KiB
 *     max_connections: 4096                 # whole server
 *     max_connections_per_client: 256       # per remote address
 *     idle_timeout: 60s
 *     drain_timeout: 30s                    # on SIGTERM, in-flight requests get this long
 *   log:
 *     level: info                           # debug | info | warn | error
 *     format: text                          # text | json
 *     access_log: true
 *   http2: true                             # h2 via ALPN on TLS; h2c prior knowledge on plain
 *   immutable:                              # tags that never move once pushed
 *     - {repository: "**", tags: ["v*"]}
 *   retention:                              # the collection deletes the tags a rule does not keep
 *     - {repository: "**", keep_last: 20, keep_days: 14, protect: ["latest", "v*"]}
 *   scrub:
 *     rate: 0                               # re-hash stored blobs at this rate (e.g. 50MB/s); 0 = off
 *   gc:                                     # garbage collection (storage/storage.h has the rules)
 *     interval: 1h                          # the server collects this often; 0 = never
 *     grace: 1h                             # what was linked or unreferenced more recently stays
 *     untagged: keep                        # keep | delete: manifests no tag or index holds
 *   metrics:
 *     listen: 127.0.0.1:9100                # /metrics, /healthz, /readyz (plain HTTP); unset = off
 *   health:
 *     on_main: false                        # also answer /healthz and /readyz on the main listeners, without auth
 *   notifications:                          # webhooks (server/events.c)
 *     queue_size: 10000                     # events kept for delivery; the oldest go beyond it
 *     endpoints:
 *       - {name: ci, url: "http://ci/hook", headers: {Authorization: [Bearer x]}, timeout: 1s,
 *          threshold: 10, backoff: 1s, format: distribution, disabled: false,
 *          ignoredmediatypes: [], ignore: {mediatypes: [], actions: [pull]}}
 *   tls:
 *     certificate: /path/cert.pem
 *     key: /path/key.pem
 *     client_ca: /path/ca.pem               # optional: verify client certificates
 *
 *   auth:                                   # absent = no authentication (everything allowed)
 *     realm: berth                          # Basic realm
 *     htpasswd: /etc/berth/htpasswd         # bcrypt ($2y$/$2b$) user:hash lines
 *     bcrypt_cost: 10                       # for `berth hash-password`
 *     max_failures: 5                       # failed logins per client address (x4 per user) before back-off
 *     failure_window: 1m
 *     admin_group: admins                   # every action on every repository
 *     groups: {admins: [alice], ci: [buildbot]}
 *     anonymous: [{repository: "public-**", actions: [pull]}]
 *     rules:
 *       - {repository: "**", users: [bob], groups: [ci], actions: [pull, push]}
 *     token:                                # absent = Basic only
 *       realm: https://registry.example.com/token
 *       path: /token                        # berth's own issuer; empty = none
 *       service: registry.example.com
 *       issuer: berth
 *       key: /etc/berth/token.key           # ES256 or RS256 private key (PEM)
 *       certificate: ~                      # x5c
 *       expiration: 5m
 *       trusted_certificates: ~             # PEM bundle of external issuers
 *       jwks: ~                             # JWKS file of external issuers
 *       leeway: 60s
 * (auth/auth.h documents the meaning of each auth key.)
 *
 * Sizes accept plain bytes or KiB/MiB/GiB/TiB (and KB/MB/GB = powers of 1000);
 * durations accept ms, s, m, h, d or plain seconds.
 */
#ifndef BR_CONFIG_H
#define BR_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "common/br.h"

#define BR_CONFIG_MAX_LISTEN 16

typedef struct st_br_listen_t {
    char *host; /* literal address, no brackets; "" means any (0.0.0.0) */
    uint16_t port;
} br_listen_t;

/* Actions an access rule grants (auth/). */
#define BR_ACTION_PULL 1u
#define BR_ACTION_PUSH 2u
#define BR_ACTION_DELETE 4u
#define BR_ACTION_ALL (BR_ACTION_PULL | BR_ACTION_PUSH | BR_ACTION_DELETE)

/* One rule for the repositories matching a glob. An auth rule: who (users,
 * groups; both empty in the anonymous list) may do which actions. An
 * immutable rule: which tags (globs, as repository globs but within a tag)
 * may not move or go; users, groups and actions are empty then. */
typedef struct st_br_config_rule_t {
    char *repository; /* glob: '*' within a path component, '**' across */
    char **users;
    size_t num_users;
    char **groups;
    size_t num_groups;
    unsigned actions; /* BR_ACTION_* */
    char **tags;      /* immutable rules; retention rules: protect */
    size_t num_tags;
    uint64_t keep_last, keep_days; /* retention rules only (0: keeps nothing for this reason) */
} br_config_rule_t;

typedef struct st_br_config_group_t {
    char *name;
    char **members;
    size_t num_members;
} br_config_group_t;

/* One item of 'quotas': the distinct blobs linked into the repositories the
 * glob matches may hold at most max_bytes; with no repository (NULL), the
 * bytes stored in the whole store. */
#define BR_CONFIG_MAX_QUOTAS 64
typedef struct st_br_config_quota_t {
    char *repository; /* NULL: the global limit */
    uint64_t max_bytes;
} br_config_quota_t;

/* Event actions (notifications): what endpoints can ignore. */
#define BR_EVENT_PUSH 1u
#define BR_EVENT_PULL 2u
#define BR_EVENT_DELETE 4u
#define BR_EVENT_MOUNT 8u

/* One webhook endpoint of notifications.endpoints (distribution's shape). */
typedef struct st_br_config_endpoint_t {
    char *name;     /* unique; names its delivery position in the store */
    char *url;      /* http://host[:port]/path */
    char **headers; /* "Name: value" lines, sent with every request */
    size_t num_headers;
    uint64_t timeout_ms;
    unsigned threshold;  /* failures in a row before the back-off grows */
    uint64_t backoff_ms; /* wait after a failed delivery */
    int cloudevents;     /* format: cloudevents (one CloudEvents 1.0 event per request) */
    int disabled;
    char **ignored_media_types; /* ignoredmediatypes and ignore.mediatypes together */
    size_t num_ignored_media_types;
    unsigned ignored_actions; /* BR_EVENT_* */
} br_config_endpoint_t;

/* Room for the key table (config/internal.h; keys.c checks that it fits). */
#define BR_CONFIG_MAX_KEYS 64

/* Where one key got its value, so that checks made after loading
 * (br_config_check_files) can point at it. */
typedef enum {
    BR_CONFIG_FROM_DEFAULT = 0,
    BR_CONFIG_FROM_FILE, /* line and col: the key in source_file */
    BR_CONFIG_FROM_ENV,  /* its BERTH_<SECTION>_<KEY> variable */
    BR_CONFIG_FROM_FLAG, /* a command-line flag (set by its caller) */
} br_config_source_t;

typedef struct st_br_config_origin_t {
    br_config_source_t source;
    unsigned line, col; /* 1-based, with BR_CONFIG_FROM_FILE */
} br_config_origin_t;

typedef struct st_br_config_t {
    br_listen_t listen[BR_CONFIG_MAX_LISTEN];
    size_t num_listen;
    unsigned threads; /* 0 = number of online CPUs (resolved by the server) */
    unsigned io_threads; /* threads that run the store's commits (fsync, LMDB sync) */

    struct {
        char *root;
        int delete_enabled;
        uint64_t upload_purge_age_s;
        int fsync;
    } storage;

    struct {
        uint64_t max_body_size;
        uint64_t max_manifest_size;
        uint64_t request_deadline_ms;
        uint64_t header_size;
        unsigned max_connections;
        unsigned max_connections_per_client;
        uint64_t idle_timeout_ms;
        uint64_t drain_timeout_ms;
    } limits;

    struct {
        br_log_level_t level;
        br_log_format_t format;
        int access_log;
    } log;

    int http2;

    /* immutable: the most specific repository glob decides (as in auth.rules). */
    br_config_rule_t *immutable;
    size_t num_immutable;

    /* retention (storage.h, retention): the most specific glob decides too. */
    br_config_rule_t *retention;
    size_t num_retention;

    /* quotas: every item whose glob matches a repository holds (storage.h). */
    br_config_quota_t *quotas;
    size_t num_quotas;

    struct {
        uint64_t rate; /* bytes re-hashed per second; 0 = no scrub */
    } scrub;

    struct {
        uint64_t interval_s; /* 0 = no periodic collection */
        uint64_t grace_s;
        int untagged_delete; /* untagged: delete */
    } gc;

    struct {
        br_listen_t listen; /* host NULL and port 0: no metrics listener */
    } metrics;

    struct {
        int on_main; /* /healthz and /readyz also on the main listeners */
    } health;

    struct {
        char *certificate; /* NULL = plain HTTP */
        char *key;
        char *client_ca;
    } tls;

    struct {
        int enabled; /* an 'auth' mapping in the file, or any BERTH_AUTH_* variable */
        char *realm;
        char *htpasswd;
        unsigned bcrypt_cost;
        unsigned max_failures; /* 0 = no back-off */
        uint64_t failure_window_ms;
        char *admin_group;
        br_config_group_t *groups;
        size_t num_groups;
        br_config_rule_t *anonymous;
        size_t num_anonymous;
        br_config_rule_t *rules;
        size_t num_rules;
        struct {
            char *realm; /* NULL = Basic only */
            char *path;
            char *service;
            char *issuer;
            char *key;
            char *certificate;
            uint64_t expiration_s;
            char *trusted_certificates;
            char *jwks;
            uint64_t leeway_s;
        } token;
    } auth;

    struct {
        br_config_endpoint_t *endpoints;
        size_t num_endpoints;
        unsigned queue_size; /* events kept for delivery; the oldest are dropped beyond it */
    } notifications;

    /* Where each key of the key table was last set (indexed like the table),
     * and the YAML file the positions refer to (the last one loaded; heap,
     * NULL when none). */
    br_config_origin_t origin[BR_CONFIG_MAX_KEYS];
    char *source_file;
} br_config_t;

/* Fills c with the embedded defaults. Strings in c are heap-allocated; free with
 * br_config_dispose(). */
void br_config_init(br_config_t *c);
void br_config_dispose(br_config_t *c);

/* Reads the YAML file at path over the current values of c (call
 * br_config_init first). On error returns BR_E_CONFIG and writes
 * "path:line:col: message" into err (errsize bytes, always NUL-terminated);
 * unknown keys, wrong types and bad values are all errors. */
int br_config_load_file(br_config_t *c, const char *path, char *err, size_t errsize);

/* Applies BERTH_<SECTION>_<KEY> environment variables from envp (NULL-terminated,
 * as environ). Unknown BERTH_ variables are errors. Returns 0 or BR_E_CONFIG with
 * "BERTH_X: message" in err. */
int br_config_load_env(br_config_t *c, char **envp, char *err, size_t errsize);

/* Cross-field checks that only make sense once every source has been applied:
 * tls.certificate and tls.key come as a pair, and tls.client_ca needs them;
 * auth.token needs a service, an issuer and something to verify tokens with,
 * its own issuer (path) needs a key, and named groups must exist.
 * Call it after br_config_init, br_config_load_file and br_config_load_env, and
 * before using c. Returns 0, or BR_E_CONFIG with a message (no position: the
 * values may come from the file, the environment or both) in err (errsize
 * bytes, always NUL-terminated). Reads c only. */
int br_config_validate(const br_config_t *c, char *err, size_t errsize);

/* Checks, after br_config_validate, what the values name on disk, so that a
 * config that passes here does not fail at start: every file berth reads
 * (tls.certificate, tls.key, tls.client_ca, auth.htpasswd, auth.token.key,
 * auth.token.certificate, auth.token.trusted_certificates, auth.token.jwks)
 * opens for reading and is no directory, and storage.root is a directory or
 * can be made in an existing one. Creates nothing. Returns 0, or BR_E_CONFIG
 * with "where: key: path: reason" in err (where: "file:line:col" of the key,
 * its BERTH_* variable, or nothing for a default; reason: the OS's, e.g. "No
 * such file or directory"). Opens the files as the calling user. */
int br_config_check_files(const br_config_t *c, char *err, size_t errsize);

/* Records that the key named section.name (section NULL for a top-level key)
 * was set from source (for flags that override the config). */
void br_config_set_origin(br_config_t *c, const char *section, const char *name, br_config_source_t source);

/* For a reload: each key that takes effect only at start (listen, threads,
 * http2, storage.root, storage.fsync, limits.max_body_size,
 * limits.request_deadline, limits.idle_timeout, limits.drain_timeout) whose
 * value in nw differs from old gets old's value back in nw, after
 * report(ctx, where) with where = "file:line:col: key" (or the variable, or
 * the key name; as br_config_check_files). Returns how many were reset. */
size_t br_config_keep_restart_keys(const br_config_t *old, br_config_t *nw, void (*report)(void *ctx, const char *where),
                                   void *ctx);

/* Parses "host:port", "[v6]:port" or ":port" into l (l->host heap-allocated).
 * Returns 0 or BR_E_CONFIG with a message in err. */
int br_config_parse_listen(br_listen_t *l, const char *s, char *err, size_t errsize);

/* Size and duration parsers shared by the file and environment loaders and the
 * command line. Return 0 or BR_E_CONFIG. */
int br_config_parse_size(const char *s, uint64_t *out);
int br_config_parse_duration_ms(const char *s, uint64_t *out);

#endif
