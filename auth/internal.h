/*
 * Shared inside auth/ only: the state behind br_auth_t and the helpers the
 * files of the module call in each other. Never included from another folder.
 */
#ifndef BR_AUTH_INTERNAL_H
#define BR_AUTH_INTERNAL_H

#include <pthread.h>
#include <sys/stat.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "auth/auth.h"

#define BR_JWT_MAX 8192        /* whole compact token */
#define BR_JWT_HEADER_MAX 4096 /* decoded header: room for an x5c of an RSA certificate or two EC ones */
#define BR_BASIC_MAX 1024      /* decoded user:password */

/* ---- access rules (acl.c) ------------------------------------------------ */

typedef struct st_br_auth_rule_t {
    char *glob;
    size_t literal; /* non-'*' characters: specificity */
    int dstar;      /* has '**' */
    char **users;
    size_t num_users;
    char **groups;
    size_t num_groups;
    unsigned actions;
} br_auth_rule_t;

typedef struct st_br_auth_acl_t {
    br_auth_rule_t *rules, *anonymous;
    size_t num_rules, num_anonymous;
    br_config_group_t *groups; /* own deep copy */
    size_t num_groups;
    char *admin_group;
} br_auth_acl_t;

void br_auth__acl_init(br_auth_acl_t *acl, const br_config_t *cfg);
void br_auth__acl_dispose(br_auth_acl_t *acl);
/* 1 when glob matches name (both len-delimited). */
/* Actions user (NULL = anonymous) may do on repository, anonymous grants included. */
unsigned br_auth__acl_actions(const br_auth_acl_t *acl, const char *user, br_str_t repository);
/* 1 when user may read the catalog (signed in, or anonymous with any anonymous rule). */
int br_auth__acl_catalog(const br_auth_acl_t *acl, const char *user);

/* ---- htpasswd, Basic credentials, back-off (basic.c) --------------------- */

typedef struct st_br_auth_user_t {
    char *name;
    char *hash;
} br_auth_user_t;

/* An immutable snapshot of the htpasswd file; readers hold a reference, a
 * reload swaps in a new one. */
typedef struct st_br_auth_htpasswd_t {
    int refs; /* __atomic */
    uint64_t generation;
    br_auth_user_t *users; /* sorted by name */
    size_t num_users;
} br_auth_htpasswd_t;

#define BR_BACKOFF_SLOTS 4096 /* a failure takes up to 4: address, user, and their shares */
#define BR_BACKOFF_PROBE 8
#define BR_BACKOFF_KEY 16
#define BR_CRED_CACHE_SLOTS 256
#define BR_CRED_CACHE_MS 60000

typedef struct st_br_backoff_slot_t {
    unsigned char key[BR_BACKOFF_KEY]; /* keyed hash of what is counted; all zero = free */
    uint32_t failures;
    uint64_t window; /* address, user: id of the current window; share: of the parent's window it counts in */
    uint64_t first_ms, last_ms, blocked_until_ms;
} br_backoff_slot_t;

typedef struct st_br_auth_basic_t {
    char *path; /* NULL = no htpasswd: no Basic users */
    pthread_mutex_t lock;  /* guards cur, the stat fields, the cache and the back-off table */
    br_auth_htpasswd_t *cur;
    struct stat st;
    uint64_t last_check_ms, check_interval_ms;
    uint64_t generation;
    char dummy_hash[128]; /* run for unknown users, so timing does not tell them apart */
    unsigned char cache_key[32];
    struct {
        unsigned char mac[32];
        uint64_t expires_ms, generation;
    } cache[BR_CRED_CACHE_SLOTS];
    unsigned max_failures;
    uint64_t window_ms;
    unsigned char backoff_key[32];
    uint64_t next_window;
    br_backoff_slot_t backoff[BR_BACKOFF_SLOTS];
} br_auth_basic_t;

/* Loads path into a new snapshot. Returns 0 or BR_E_CONFIG with "path:line: msg". */
int br_auth__htpasswd_load(const char *path, br_auth_htpasswd_t **out, char *err, size_t errsize);
void br_auth__htpasswd_release(br_auth_htpasswd_t *h);
int br_auth__basic_init(br_auth_basic_t *b, const br_config_t *cfg, char *err, size_t errsize);
void br_auth__basic_dispose(br_auth_basic_t *b);
/* Parses "Basic <base64>" into user (NUL-terminated, at most BR_AUTH_USER_MAX)
 * and pass (NUL-terminated, pass_size bytes). Returns 0 or BR_E_UNAUTHORIZED. */
int br_auth__basic_parse(br_str_t header, char *user, char *pass, size_t pass_size);
/* Checks user/pass against the current htpasswd (reloading it when changed).
 * Returns 0 when they match, BR_E_UNAUTHORIZED when not. */
int br_auth__basic_verify(br_auth_basic_t *b, const char *user, const char *pass);
/* One login with the back-off around it: user NULL when the credentials could
 * not be read (a failure of the address only). Returns 0, BR_E_UNAUTHORIZED,
 * or BR_E_TOO_MANY (address or user blocked, *retry_s set, nothing checked). */
int br_auth__basic_login(br_auth_basic_t *b, const char *client, const char *user, const char *pass, unsigned *retry_s);
/* Fingerprint of user's current htpasswd entry (16 base64url chars) into out
 * (>= 24 bytes). Returns 0, or BR_E_UNAUTHORIZED when the user is gone. */
int br_auth__user_fingerprint(br_auth_basic_t *b, const char *user, char *out);
/* Back-off for failed logins, per client address and per user name (either
 * may be NULL: unknown). blocked: 1 (and *retry_s) when the address or the
 * user must wait. failed: one more failure for both. succeeded: takes back
 * only the failures of that user from that address (nothing without a user). */
int br_auth__backoff_blocked(br_auth_basic_t *b, const char *client, const char *user, uint64_t now_ms, unsigned *retry_s);
void br_auth__backoff_failed(br_auth_basic_t *b, const char *client, const char *user, uint64_t now_ms);
void br_auth__backoff_succeeded(br_auth_basic_t *b, const char *client, const char *user);

/* ---- JWT (jwt.c) ---------------------------------------------------------- */

typedef enum { BR_JWT_NONE = 0, BR_JWT_ES256, BR_JWT_RS256 } br_jwt_alg_t;

typedef struct st_br_jwt_key_t {
    EVP_PKEY *pkey;
    br_jwt_alg_t alg;
    int own; /* berth's own signing key */
    char kid[64];
} br_jwt_key_t;

typedef struct st_br_auth_token_t {
    char *realm, *path, *service, *issuer;
    uint64_t expiration_s, leeway_s;
    br_jwt_key_t sign;      /* pkey NULL: no issuer */
    char *x5c_json;         /* "[\"...\",...]" or NULL */
    X509_STORE *trusted;    /* NULL: no x5c from external issuers */
    br_jwt_key_t *verify;   /* own public key first, then trusted certificates, then JWKS */
    size_t num_verify;
} br_auth_token_t;

typedef struct st_br_jwt_claims_t {
    char sub[BR_AUTH_USER_MAX + 1];
    int own;     /* verified with berth's own key */
    int refresh; /* a berth refresh token */
    char pwh[32];
    int catalog;
    size_t num_grants;
    struct {
        char name[BR_NAME_MAX + 1];
        unsigned actions;
    } grants[BR_AUTH_MAX_GRANTS];
} br_jwt_claims_t;

int br_auth__token_init(br_auth_token_t *t, const br_config_t *cfg, char *err, size_t errsize);
void br_auth__token_dispose(br_auth_token_t *t);
/* Value of one base64 character (62 and 63 are last2[0] and last2[1]: "+/" or
 * "-_"), or -1. */
int br_auth__b64_value(char ch, const char *last2);
/* Strict unpadded base64url. Returns decoded length, or -1. out needs len*3/4+1. */
long br_b64url_decode(const char *in, size_t len, unsigned char *out);
/* Appends unpadded base64url of p to a new heap string. */
char *br_b64url_encode(const void *p, size_t n);
/* libtrust key id of pkey into kid (>= 60 bytes). */
void br_jwt_kid(EVP_PKEY *pkey, char *kid);
/* Verifies a compact JWT at time now (seconds). 0, or BR_E_UNAUTHORIZED with a
 * static reason in *why (never token content). */
int br_jwt_verify(const br_auth_token_t *t, br_str_t token, uint64_t now, br_jwt_claims_t *out, const char **why);
/* Signs claims (borrowed) with t->sign into a new heap compact JWT, or NULL. */
char *br_jwt_sign(const br_auth_token_t *t, json_t *claims);
/* Strict JSON object from bytes (duplicates refused), or NULL. */
json_t *br_json_strict(const void *p, size_t n);

/* ---- the handle (auth.c) --------------------------------------------------- */

struct st_br_auth_t {
    int enabled;
    char *realm;
    br_auth_acl_t acl;
    br_auth_basic_t basic;
    br_auth_token_t token; /* token.realm NULL: Basic only */
};

/* Grant entries from an "access" list, for br_auth_may and the issuer. */
unsigned br_auth__parse_actions(const char *s, size_t len); /* "pull,push" / "*"; 0 if none known */

#endif
