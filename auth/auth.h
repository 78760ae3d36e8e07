// berth authentication and authorization: Basic auth against an htpasswd file
// (bcrypt), Bearer tokens (JWT, Docker registry token spec) issued by berth
// itself or by an external issuer, and one set of access rules from the config
// that drives both. Plain C over libc, OpenSSL 3, jansson and libcrypt: no h2o.
//
// Configuration (config/config.h holds the struct; every key optional):
//
//   auth:                    # absent = auth off, every request allowed
//     realm: berth           # Basic realm
//     htpasswd: FILE         # "user:$2y$..." lines; re-read when its mtime changes
//     bcrypt_cost: 10        # cost of hashes made by br_auth_hash_password (4-31)
//     max_failures: 5        # failed logins per client address (4x that per
//     failure_window: 1m     #   user name) within failure_window before 429
//     admin_group: admins    # every action on every repository, and the catalog
//     groups: {admins: [alice], ci: [buildbot]}
//     anonymous:             # what a request without credentials may do
//       - {repository: "public/**", actions: [pull]}
//     rules:
//       - {repository: "team/**", users: [bob], groups: [ci], actions: [pull, push]}
//       - {repository: "**", groups: [ci], actions: [pull]}
//     token:                 # absent = Basic only
//       realm: URL           # Bearer realm: where clients fetch tokens
//       path: /token         # berth's own issuer (unset = none; needs key)
//       service: NAME        # the token audience ("aud"), the "service" parameter
//       issuer: berth        # "iss" written, and the only one accepted
//       key: FILE            # ES256 (P-256) or RS256 (>= 2048 bits) private key PEM
//       certificate: FILE    # optional: its certificate (chain), sent as "x5c"
//       expiration: 5m
//       trusted_certificates: FILE   # optional: PEM bundle of external issuers
//       jwks: FILE                   # optional: JWKS of external issuers
//       leeway: 60s          # clock skew allowed on exp / nbf
//
// Access rules. A repository glob has '*' (any characters but '/') and '**'
// (any characters, '/' included). For a repository, among the
// rules whose glob matches, the most specific glob decides: most literal
// (non-'*') characters, then one without '**', then the earlier rule. All
// rules with exactly that glob apply (their union); less specific globs do not,
// so a specific rule can narrow a broad one ("secret/**" with no users shadows
// "**" for everyone but admins). The anonymous list is matched the same way,
// and its grant applies to every caller, signed in or not. Members of
// admin_group may do everything. The catalog ("registry:catalog:*") is open to
// every signed-in caller and, when any anonymous rule exists, to anonymous
// callers; the server filters it with br_auth_may() (pull).
//
// Basic: bcrypt only ($2y$, $2b$); other hashes are refused when the file is
// loaded, with file and line. A verified user:password pair is remembered for
// a minute (HMAC under a per-process random key, never the password), because
// registry clients send Basic credentials on every request and bcrypt costs
// tens of milliseconds. Failed logins are counted per client address and per
// user name in a fixed-size table; an address with max_failures failures
// within failure_window, or a user name with 4 * max_failures (from any
// addresses), gets 429 for 2^(failures - limit) seconds (at most
// failure_window), before any password is checked. A good login takes back
// only that user's own failures from that address, never those recorded
// against other user names (so one valid account buys no guesses at another).
// Other addresses and users are unaffected, and the table evicts its least
// valuable entry when full, so memory stays bounded (it keeps keyed hashes,
// never the user names).
//
// Bearer: tokens are JWS compact JWTs, alg ES256 or RS256 only, and the alg
// must match the type of the key found for them (never "none", never HS*).
// The verification key is, in order: berth's own key when "kid" names it; a
// key of trusted_certificates or jwks with that "kid"; or the leaf of an
// "x5c" chain that verifies against trusted_certificates. "kid" is computed as
// docker/libtrust does (the first 240 bits of the SHA-256 of the DER
// SubjectPublicKeyInfo, base32, in 12 colon-separated groups of 4), so keys and
// certificates shared with docker_auth or registry:2 match without a JWKS.
// Claims: "iss" must equal token.issuer, "aud" (string or list) must contain
// token.service, "exp" is required, "exp"/"nbf" are checked with leeway,
// "access" lists the grants. Sizes are bounded (token 8 KiB, header 4 KiB, room
// for an x5c);
// base64url must be unpadded and canonical; JSON must be strict with no
// duplicate keys. Refresh tokens are JWTs signed by berth, marked as such,
// bound to the user's current htpasswd entry, and never accepted as access
// tokens.
//
// Threads: br_auth_create runs before threads start; every other call is
// thread-safe. Nothing here logs a password, a token or an Authorization value.
//
// (Line comments here: the globs above contain a slash and a star, which
// inside a block comment trip -Wcomment.)
#ifndef BR_AUTH_H
#define BR_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include "common/br.h"
#include "config/config.h"

typedef struct st_br_auth_t br_auth_t;

/* Action bits of a request; the same values as the BR_ACTION_* of rules. */
#define BR_AUTH_PULL BR_ACTION_PULL
#define BR_AUTH_PUSH BR_ACTION_PUSH
#define BR_AUTH_DELETE BR_ACTION_DELETE
#define BR_AUTH_CATALOG 8u /* registry:catalog:* (repository must be empty) */

#define BR_AUTH_USER_MAX 128
#define BR_AUTH_CHALLENGE_MAX 1024
#define BR_AUTH_MAX_GRANTS 32 /* access entries kept from one token */

/* Builds the auth state from cfg->auth: loads the htpasswd file, the signing
 * key and certificate, trusted certificates and JWKS. With cfg->auth.enabled
 * == 0 the handle allows everything. Call before threads start. Returns 0, or
 * BR_E_CONFIG with "file[:line]: message" in err (errsize bytes, always
 * NUL-terminated). *out is freed with br_auth_destroy. cfg may be freed after. */
int br_auth_create(br_auth_t **out, const br_config_t *cfg, char *err, size_t errsize);
void br_auth_destroy(br_auth_t *a);
/* 1 when authentication is configured. */
int br_auth_enabled(const br_auth_t *a);

/* One request to decide. Strings need not be NUL-terminated except client. */
typedef struct st_br_auth_request_t {
    br_str_t authorization; /* Authorization header value, or empty */
    const char *client;     /* remote address, for the failed-login back-off; may be NULL */
    br_str_t repository;    /* empty for /v2/ and the catalog */
    unsigned actions;       /* BR_AUTH_* bits needed; 0 = only "who are you" (GET /v2/) */
    br_str_t from;          /* cross-mount source repository (needs pull), or empty */
} br_auth_request_t;

/* The decision. Plain data, no heap: lives on the caller's stack. */
typedef struct st_br_auth_result_t {
    int allowed;                                /* 1: go on */
    int status;                                 /* 200, or 401, 403, 429 */
    int err;                                    /* 0, BR_E_UNAUTHORIZED, BR_E_DENIED, BR_E_TOO_MANY */
    const char *code;                           /* OCI code: NULL, "UNAUTHORIZED", "DENIED", "TOOMANYREQUESTS" */
    const char *message;                        /* static human text for the error body */
    const char *detail;                         /* static "detail" for the error body, or NULL */
    char www_authenticate[BR_AUTH_CHALLENGE_MAX]; /* header value to send, "" for none */
    unsigned retry_after;                       /* seconds, with 429 */
    char user[BR_AUTH_USER_MAX + 1];            /* authenticated user ("" = anonymous), for logs */
    int from_allowed;                           /* with a from: may pull it (else: no mount, plain upload) */
    /* private: who the caller is, for br_auth_may */
    int _kind;
    int _own; /* a token berth issued: its subject's rules count in br_auth_may */
    int _catalog;
    size_t _num_grants;
    struct {
        char name[BR_NAME_MAX + 1];
        unsigned actions;
    } _grants[BR_AUTH_MAX_GRANTS];
} br_auth_result_t;

/* Authenticates the request and checks that it may do r->actions on
 * r->repository. Always fills *out; returns 0 when allowed, else out->err.
 * When auth is off, everything is allowed. A caller without (valid)
 * credentials, or with a token issued to nobody, gets 401 + challenge and
 * "authentication required"; a signed-in Basic user without the access gets
 * 403 DENIED; a valid token of a user without the scope gets 401 with
 * error="insufficient_scope"; an invalid one 401 with error="invalid_token";
 * an address in back-off gets 429 (retry_after set). GET /v2/ (actions 0)
 * without credentials is 401, so that clients learn the scheme. Thread-safe;
 * may block for one bcrypt (tens of ms) when a Basic pair is not cached. */
int br_auth_check(br_auth_t *a, const br_auth_request_t *r, br_auth_result_t *out);

/* 1 when the caller behind res (filled by br_auth_check) may do actions on
 * repository: for the catalog filter and automatic cross-mounts. Basic and
 * anonymous callers go through the rules; tokens through their grants, plus
 * the rules of their subject when berth issued them. Thread-safe. */
int br_auth_may(br_auth_t *a, const br_auth_result_t *res, br_str_t repository, unsigned actions);

/* ---- token issuer (auth.token.path) ------------------------------------- */

typedef struct st_br_auth_token_request_t {
    int post;               /* 0: GET with query; 1: POST with form body (OAuth2) */
    br_str_t query;         /* GET: raw query string after '?' (percent-encoded) */
    br_str_t body;          /* POST: application/x-www-form-urlencoded body */
    br_str_t authorization; /* GET: Basic credentials, or empty for anonymous */
    const char *client;     /* remote address, for the back-off */
} br_auth_token_request_t;

typedef struct st_br_auth_token_response_t {
    int status;                                 /* 200, 400, 401, 404, 429 */
    char *body;                                 /* JSON, heap: free() it */
    size_t len;
    char www_authenticate[BR_AUTH_CHALLENGE_MAX]; /* Basic challenge with a 401, else "" */
    unsigned retry_after;                       /* with 429 */
    char user[BR_AUTH_USER_MAX + 1];            /* for logs */
} br_auth_token_response_t;

/* Answers a token request. GET: ?service=&scope=...&scope=...&account=
 * &offline_token=true&client_id=, with Basic credentials or none (anonymous
 * token). POST: grant_type=password (username, password) or
 * grant_type=refresh_token (refresh_token), with service, scope (space
 * separated), client_id, access_type=offline. The token grants each requested
 * scope intersected with the rules (less than asked is not an error). The body
 * has token, access_token, expires_in, issued_at (RFC 3339) and refresh_token
 * when asked for. Errors: 400 (bad request, unknown service; OAuth form:
 * {"error":"invalid_request"|"invalid_grant"|"unsupported_grant_type"}), 401
 * bad credentials, 404 no issuer configured, 429 back-off. Always fills *out
 * (free out->body). Returns 0 or the BR_E* matching the status. Thread-safe. */
int br_auth_issue(br_auth_t *a, const br_auth_token_request_t *r, br_auth_token_response_t *out);

/* The longest query string or form body br_auth_issue reads (longer is a bad
 * request); the server reads no more of a token POST's body than this. */
#define BR_AUTH_FORM_MAX (64u << 10)

/* ---- helpers for the command line --------------------------------------- */

/* Writes a bcrypt "$2y$" hash of pw (random salt, cost 4-31, 0 = 10) into out
 * (at least 64 bytes; size given). Returns 0, EINVAL (bad cost, pw longer than
 * bcrypt's 72 bytes), ERANGE (out too small), or errno from libcrypt. */
int br_auth_hash_password(const char *pw, unsigned cost, char *out, size_t size);

/* Writes a new private key PEM to path (created with mode 0600, must not
 * exist): alg "ES256" (P-256) or "RS256" (3072-bit RSA). Returns 0, EINVAL
 * (unknown alg), EEXIST, errno, or BR_E_INTERNAL (OpenSSL). */
int br_auth_gen_key(const char *path, const char *alg);

#endif
