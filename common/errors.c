/*
 * The error space (see br.h) and the allocation wrappers: out of memory is
 * fatal, so no caller in berth checks for NULL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/br.h"

static const char *const domain_errors[] = {
    "digest invalid",           /* BR_E_DIGEST_INVALID */
    "blob unknown",             /* BR_E_BLOB_UNKNOWN */
    "blob upload invalid",      /* BR_E_BLOB_UPLOAD_INVALID */
    "blob upload unknown",      /* BR_E_BLOB_UPLOAD_UNKNOWN */
    "manifest invalid",         /* BR_E_MANIFEST_INVALID */
    "manifest unknown",         /* BR_E_MANIFEST_UNKNOWN */
    "manifest blob unknown",    /* BR_E_MANIFEST_BLOB_UNKNOWN */
    "repository name invalid",  /* BR_E_NAME_INVALID */
    "repository name unknown",  /* BR_E_NAME_UNKNOWN */
    "size invalid",             /* BR_E_SIZE_INVALID */
    "tag invalid",              /* BR_E_TAG_INVALID */
    "unsupported",              /* BR_E_UNSUPPORTED */
    "authentication required",  /* BR_E_UNAUTHORIZED */
    "access denied",            /* BR_E_DENIED */
    "range not satisfiable",    /* BR_E_RANGE_INVALID */
    "too large",                /* BR_E_TOO_LARGE */
    "too many requests",        /* BR_E_TOO_MANY */
    "resource busy",            /* BR_E_BUSY */
    "store corrupt",            /* BR_E_CORRUPT */
    "configuration error",      /* BR_E_CONFIG */
    "internal error",           /* BR_E_INTERNAL */
    "quota exceeded",           /* BR_E_QUOTA */
};

_Static_assert(sizeof(domain_errors) / sizeof(domain_errors[0]) == BR_E__END - BR_E_DIGEST_INVALID,
               "domain_errors must name every BR_E code");

const char *br_strerror(int err)
{
    if (err == 0)
        return "success";
    if (err > 0)
        return strerror(err);
    if (err >= BR_E_DIGEST_INVALID && err < BR_E__END)
        return domain_errors[err - BR_E_DIGEST_INVALID];
    return "unknown error";
}

static void oom(size_t n)
{
    fprintf(stderr, "berth: out of memory allocating %zu bytes\n", n);
    abort();
}

void *br_malloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL)
        oom(n);
    return p;
}

void *br_calloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *br_realloc(void *p, size_t n)
{
    void *q = realloc(p, n == 0 ? 1 : n);
    if (q == NULL)
        oom(n);
    return q;
}

char *br_strndup(const char *s, size_t n)
{
    char *p = br_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

br_str_t br_cstr(const char *s)
{
    return s == NULL ? br_str("", 0) : br_str(s, strlen(s));
}

int br_str_eq(br_str_t a, br_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

int br_secret_eq(br_str_t a, br_str_t b)
{
    /* Walk the longer length always, so timing reveals only the lengths. */
    size_t n = a.len > b.len ? a.len : b.len;
    unsigned char diff = a.len != b.len;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < a.len ? (unsigned char)a.base[i] : 0;
        unsigned char y = i < b.len ? (unsigned char)b.base[i] : 0;
        diff |= x ^ y;
    }
    return diff == 0;
}
