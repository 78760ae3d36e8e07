/*
 * Helpers shared by the storage tests: temporary store roots and file checks.
 */
#ifndef BR_TESTS_STORAGE_UTIL_H
#define BR_TESTS_STORAGE_UTIL_H

#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/storage.h"
#include "tests/tap.h"

static inline int on_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* One TAP check: br_store_verify (with the content hashed) finds st sound;
 * on failure its reason is printed as a diagnostic. */
static inline void store_consistent(br_store_t *st, const char *after)
{
    char detail[512];
    int ret = br_store_verify(st, 1, detail, sizeof(detail));
    ok(ret == 0, "index consistent after %s", after);
    if (ret != 0)
        printf("#   %s: %s\n", br_strerror(ret), detail);
}

static inline void rm_tree(const char *path)
{
    nftw(path, on_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates a fresh directory under /tmp; buf holds its path. */
static inline void make_root(char *buf, size_t size, const char *tag)
{
    snprintf(buf, size, "/tmp/berth-%s-XXXXXX", tag);
    if (mkdtemp(buf) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
}

/* Hashes the whole file at fd from its start; 0 or errno. */
static inline int hash_fd(int fd, br_alg_t alg, br_digest_t *out)
{
    char buf[65536];
    br_hash_t h;
    ssize_t n;
    br_hash_init(&h, alg);
    if (lseek(fd, 0, SEEK_SET) != 0)
        return errno;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        br_hash_update(&h, buf, (size_t)n);
    if (n < 0)
        return errno;
    br_hash_peek(&h, out);
    return 0;
}

/* Deterministic pseudo-random bytes from a seed (xorshift). */
static inline void fill_bytes(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

static inline br_digest_t digest_of(br_alg_t alg, const void *p, size_t n)
{
    br_digest_t d;
    br_hash_buf(alg, p, n, &d);
    return d;
}

/* An image manifest put of body into repo (tag may be ""), referencing refs. */
static inline br_manifest_put_t mput(const char *repo, const char *body, const char *tag, const br_digest_t *refs, size_t nrefs)
{
    br_manifest_put_t m;
    memset(&m, 0, sizeof(m));
    m.repo = br_cstr(repo);
    m.body = br_cstr(body);
    m.alg = BR_ALG_SHA256;
    m.media_type = BR_STR("application/vnd.oci.image.manifest.v1+json");
    m.tag = br_cstr(tag);
    m.refs = refs;
    m.num_refs = nrefs;
    return m;
}

#endif
