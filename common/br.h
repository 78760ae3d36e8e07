/*
 * berth — shared vocabulary of every module: the error space, byte strings,
 * digests, repository names and references, logging.
 *
 * Plain C over libc and OpenSSL; no h2o here, so storage/, manifests/, auth/ and
 * config/ can use it and be tested without sockets.
 */
#ifndef BR_H
#define BR_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/sha.h>

/* ---- errors ------------------------------------------------------------
 * One int space across berth: 0 is success, > 0 is an errno value, < 0 is one
 * of the BR_E* domain codes below. br_strerror() names either kind.
 */
enum {
    BR_E_DIGEST_INVALID = -1000, /* malformed digest, or content does not match it */
    BR_E_BLOB_UNKNOWN,           /* blob not stored, or not linked to that repository */
    BR_E_BLOB_UPLOAD_INVALID,    /* upload exists but the request cannot apply to it */
    BR_E_BLOB_UPLOAD_UNKNOWN,    /* no such upload session (for that repository) */
    BR_E_MANIFEST_INVALID,       /* manifest failed validation */
    BR_E_MANIFEST_UNKNOWN,       /* no such manifest (tag or digest) */
    BR_E_MANIFEST_BLOB_UNKNOWN,  /* manifest references a blob the repository lacks */
    BR_E_NAME_INVALID,           /* repository name fails the spec's grammar */
    BR_E_NAME_UNKNOWN,           /* repository does not exist */
    BR_E_SIZE_INVALID,           /* content length does not match what was declared */
    BR_E_TAG_INVALID,            /* reference is neither a valid tag nor a digest */
    BR_E_UNSUPPORTED,            /* operation disabled or not supported */
    BR_E_UNAUTHORIZED,           /* authentication required */
    BR_E_DENIED,                 /* authenticated, but not allowed */
    BR_E_RANGE_INVALID,          /* Range / Content-Range unusable (416) */
    BR_E_TOO_LARGE,              /* a client-controlled size exceeds its limit (413) */
    BR_E_TOO_MANY,               /* a per-client or global limit was hit (429) */
    BR_E_BUSY,                   /* resource in use by another request (e.g. same upload) */
    BR_E_CORRUPT,                /* on-disk state is inconsistent with the index */
    BR_E_CONFIG,                 /* configuration error; detail in caller's buffer */
    BR_E_INTERNAL,               /* anything else that is our fault */
    BR_E_QUOTA,                  /* the push would take a quota over its limit (403 DENIED) */
    BR_E__END
};

/* Returns a static description of err (errno or BR_E*). Never NULL. */
const char *br_strerror(int err);

/* Out of memory is fatal: these never return NULL. */
void *br_malloc(size_t n);
void *br_calloc(size_t n, size_t size);
void *br_realloc(void *p, size_t n);
char *br_strndup(const char *s, size_t n);

/* A byte string that crosses module boundaries: pointer + length, not
 * necessarily NUL-terminated (same shape as h2o_iovec_t). */
typedef struct st_br_str_t {
    const char *base;
    size_t len;
} br_str_t;

#define BR_STR(lit) ((br_str_t){(lit), sizeof(lit) - 1})
static inline br_str_t br_str(const char *base, size_t len)
{
    br_str_t s = {base, len};
    return s;
}
br_str_t br_cstr(const char *s); /* s may be NULL → empty */
int br_str_eq(br_str_t a, br_str_t b);

/* Constant-time comparison of two secrets: 1 when equal. Time depends only on
 * the lengths, never on the contents. */
int br_secret_eq(br_str_t a, br_str_t b);

/* ---- digests ----------------------------------------------------------- */

typedef enum { BR_ALG_SHA256 = 1, BR_ALG_SHA512 = 2 } br_alg_t;

#define BR_DIGEST_MAX 135 /* "sha512:" + 128 hex */

/* A parsed, validated digest. hex is lowercase and NUL-terminated. */
typedef struct st_br_digest_t {
    br_alg_t alg;
    unsigned char hex_len; /* 64 or 128 */
    char hex[129];
} br_digest_t;

/* Parses "<alg>:<hex>" per the OCI grammar. Only sha256 (64 lowercase hex) and
 * sha512 (128 lowercase hex) are accepted. Returns 0 or BR_E_DIGEST_INVALID. */
int br_digest_parse(br_digest_t *d, br_str_t s);
/* Writes "<alg>:<hex>\0" into buf (at least BR_DIGEST_MAX + 1 bytes); returns its length. */
size_t br_digest_format(const br_digest_t *d, char *buf);
const char *br_alg_name(br_alg_t alg);
int br_digest_eq(const br_digest_t *a, const br_digest_t *b);

/* Incremental hashing. The state is plain data and may be saved as bytes and
 * restored later (upload sessions keep it between PATCH requests). */
typedef struct st_br_hash_t {
    br_alg_t alg;
    union {
        SHA256_CTX s256;
        SHA512_CTX s512;
    } u;
} br_hash_t;

void br_hash_init(br_hash_t *h, br_alg_t alg);
void br_hash_update(br_hash_t *h, const void *p, size_t n);
/* Finishes a copy of h, so h itself may keep being updated. */
void br_hash_peek(const br_hash_t *h, br_digest_t *out);
/* One-shot digest of a buffer. */
void br_hash_buf(br_alg_t alg, const void *p, size_t n, br_digest_t *out);

/* ---- names and references ---------------------------------------------- */

#define BR_NAME_MAX 255 /* repository name, as clients limit host + name */
#define BR_TAG_MAX 128

/* Repository name per the distribution spec:
 * [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 * and at most BR_NAME_MAX bytes. Returns 1 when valid. */
int br_name_valid(br_str_t name);
/* Tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. Returns 1 when valid. */
int br_tag_valid(br_str_t tag);
/* 1 when name matches the repository glob: '*' any run of bytes but '/',
 * '**' any run including '/', everything else itself. O(glen * nlen). */
int br_glob_match(const char *glob, size_t glen, const char *name, size_t nlen);

/* ---- request targets ---------------------------------------------------- */

/* Splits an HTTP/1.1 absolute-form request target (RFC 9112 §3.2.2), e.g.
 * "http://host:5000/v2/x?n=1", into its authority ("host:5000") and what an
 * origin-form target would hold ("/v2/x?n=1"); both point into target. The
 * origin part is empty or starts with '?' when the URI has no path (its path
 * is then "/"). Accepts only the http and https schemes (any case), a
 * non-empty host (reg-name, IPv4 or [IPv6]) with an optional numeric port, no
 * userinfo (RFC 9110 §4.2.4 says to treat it as an error), no fragment, no
 * byte below 0x21 or above 0x7e. Returns 0, or EINVAL for anything else. */
int br_target_split(br_str_t target, br_str_t *authority, br_str_t *origin);

/* ---- logging ------------------------------------------------------------
 * Thread-safe; one line per call, to stderr. Level and format are set once at
 * start-up (before threads), from the config. Never pass secrets.
 */
typedef enum { BR_LOG_DEBUG = 0, BR_LOG_INFO, BR_LOG_WARN, BR_LOG_ERROR } br_log_level_t;
typedef enum { BR_LOG_TEXT = 0, BR_LOG_JSON } br_log_format_t;

void br_log_setup(br_log_level_t level, br_log_format_t format);
int br_log_enabled(br_log_level_t level);
void br_log(br_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes one preformatted line (already JSON or text, without newline) as is. */
void br_log_raw(const char *line, size_t len);

#define br_debug(...) (br_log_enabled(BR_LOG_DEBUG) ? br_log(BR_LOG_DEBUG, __VA_ARGS__) : (void)0)
#define br_info(...) br_log(BR_LOG_INFO, __VA_ARGS__)
#define br_warn(...) br_log(BR_LOG_WARN, __VA_ARGS__)
#define br_error(...) br_log(BR_LOG_ERROR, __VA_ARGS__)

/* Writes s into buf as the inside of a JSON string (quotes, backslashes and
 * control characters escaped), stopping early rather than overflowing size;
 * NUL-terminates when room is left. Returns the bytes written. A buffer of
 * 6 * s.len + 8 bytes always holds all of s. */
size_t br_json_escape(char *buf, size_t size, br_str_t s);

/* Current wall-clock time in seconds / milliseconds since the epoch. */
uint64_t br_now(void);
uint64_t br_now_ms(void);

#endif
