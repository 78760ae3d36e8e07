/*
 * br_store_verify: recomputes what the index derives (reference counts, the
 * reverse tag and link tables, body links) from what it records, and checks
 * blob files. links and holders are compared both ways: each links row looks
 * up its holders row and each holders row its links row, so the two tables
 * are equal when both walks pass.
 *
 * Reference counts are recomputed by collecting every packed digest that
 * holds a reference (link rows and counted manifest refs) into one sorted
 * array, then looking each blob up in it: O(n log n), one read txn, no
 * per-blob index walks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/internal.h"

typedef struct st_verify_t {
    br_store_t *s;
    MDB_txn *txn;
    br_pd_t *refs;
    size_t nrefs, cap;
    int hash_content;
    char *detail;
    size_t detail_size;
} verify_t;

__attribute__((format(printf, 2, 3))) static int fail(verify_t *v, const char *fmt, ...)
{
    va_list ap;
    if (v->detail_size != 0) {
        va_start(ap, fmt);
        vsnprintf(v->detail, v->detail_size, fmt, ap);
        va_end(ap);
    }
    return BR_E_CORRUPT;
}

static void add_ref(verify_t *v, const unsigned char *pd)
{
    if (v->nrefs == v->cap) {
        v->cap = v->cap != 0 ? 2 * v->cap : 256;
        v->refs = br_realloc(v->refs, v->cap * sizeof(*v->refs));
    }
    br_pd_set(&v->refs[v->nrefs++], pd);
}

static int has_key(verify_t *v, MDB_dbi dbi, const void *p, size_t len)
{
    MDB_val k = {len, (void *)p}, d;
    return mdb_get(v->txn, dbi, &k, &d) == 0;
}

/* Calls fn on every row of dbi. */
static int each(verify_t *v, MDB_dbi dbi, int (*fn)(verify_t *, MDB_val *, MDB_val *))
{
    MDB_cursor *cur;
    MDB_val k, d;
    int rc, ret = 0;
    if ((rc = mdb_cursor_open(v->txn, dbi, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && ret == 0; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT))
        ret = fn(v, &k, &d);
    if (ret == 0 && rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    mdb_cursor_close(cur);
    return ret;
}

static int on_link(verify_t *v, MDB_val *k, MDB_val *d)
{
    br_str_t repo;
    const unsigned char *pd;
    size_t n;
    br_key_t key;
    br_blob_rec_t rec;
    MDB_val bk, bv;
    if (!br_key_split(k, &repo, &pd, &n) || n == 0 || br_pdigest_len(pd[0]) != n)
        return fail(v, "malformed link key");
    if (d->mv_size != 0 && d->mv_size != sizeof(uint64_t))
        return fail(v, "malformed link value in %.*s", (int)repo.len, repo.base);
    bk.mv_size = n;
    bk.mv_data = (void *)pd;
    if (mdb_get(v->txn, v->s->db_blobs, &bk, &bv) != 0)
        return fail(v, "link in %.*s names an unrecorded blob", (int)repo.len, repo.base);
    if (br_blob_rec_read(&bv, &rec) != 0 || (rec.flags & BR_BLOB_DYING))
        return fail(v, "link in %.*s names a blob being collected", (int)repo.len, repo.base);
    if (!has_key(v, v->s->db_repos, repo.base, repo.len))
        return fail(v, "link in unrecorded repository %.*s", (int)repo.len, repo.base);
    br_key_holder(&key, pd, repo);
    if (!has_key(v, v->s->db_holders, key.buf, key.len))
        return fail(v, "link in %.*s lacks its holders row", (int)repo.len, repo.base);
    add_ref(v, pd);
    return 0;
}

static int on_holder(verify_t *v, MDB_val *k, MDB_val *d)
{
    const unsigned char *pd = k->mv_data;
    size_t n = k->mv_size != 0 ? br_pdigest_len(pd[0]) : 0;
    br_str_t repo;
    br_key_t key;
    (void)d;
    if (n == 0 || k->mv_size <= n)
        return fail(v, "malformed holders key");
    repo = br_str((const char *)pd + n, k->mv_size - n);
    br_key_init(&key, repo);
    br_key_add(&key, pd, n);
    if (repo.len > BR_NAME_MAX || !has_key(v, v->s->db_links, key.buf, key.len))
        return fail(v, "holders row for %.*s without its link", (int)repo.len, repo.base);
    return 0;
}

static int on_manifest(verify_t *v, MDB_val *k, MDB_val *d)
{
    br_str_t repo;
    const unsigned char *pd;
    size_t n;
    br_mani_view_t m;
    if (!br_key_split(k, &repo, &pd, &n) || n == 0 || br_pdigest_len(pd[0]) != n)
        return fail(v, "malformed manifest key");
    if (br_mani_parse(d->mv_data, d->mv_size, &m) != 0)
        return fail(v, "malformed manifest row in %.*s", (int)repo.len, repo.base);
    if (!has_key(v, v->s->db_links, k->mv_data, k->mv_size))
        return fail(v, "manifest body not linked in %.*s", (int)repo.len, repo.base);
    for (const unsigned char *r = m.refs; r < (const unsigned char *)d->mv_data + d->mv_size; r += br_pdigest_len(r[0])) {
        br_key_t key;
        br_key_init(&key, repo);
        br_key_add(&key, r, br_pdigest_len(r[0]));
        br_key_add(&key, pd, n);
        if (!has_key(v, v->s->db_refby, key.buf, key.len))
            return fail(v, "manifest reference in %.*s lacks its refby row", (int)repo.len, repo.base);
        add_ref(v, r);
    }
    return 0;
}

/* Each refby row names a manifest of its repository that counts the reference. */
static int on_refby(verify_t *v, MDB_val *k, MDB_val *d)
{
    br_str_t repo;
    const unsigned char *rest, *man;
    size_t n, rl;
    br_key_t key;
    br_mani_view_t m;
    MDB_val mk, mv;
    (void)d;
    if (!br_key_split(k, &repo, &rest, &n) || n == 0 || (rl = br_pdigest_len(rest[0])) == 0 || rl >= n ||
        br_pdigest_len(rest[rl]) != n - rl)
        return fail(v, "malformed refby key");
    man = rest + rl;
    br_key_init(&key, repo);
    br_key_add(&key, man, n - rl);
    mk = br_key_val(&key);
    if (mdb_get(v->txn, v->s->db_manifests, &mk, &mv) != 0 || br_mani_parse(mv.mv_data, mv.mv_size, &m) != 0)
        return fail(v, "refby row in %.*s without its manifest", (int)repo.len, repo.base);
    for (const unsigned char *r = m.refs; r < (const unsigned char *)mv.mv_data + mv.mv_size; r += br_pdigest_len(r[0]))
        if (br_pdigest_len(r[0]) == rl && memcmp(r, rest, rl) == 0)
            return 0;
    return fail(v, "refby row in %.*s names a reference its manifest lacks", (int)repo.len, repo.base);
}

static int hash_file(int fd, br_alg_t alg, br_digest_t *out)
{
    enum { CHUNK = 256 << 10 };
    char *buf = br_malloc(CHUNK);
    br_hash_t h;
    ssize_t n;
    int ret = 0;
    br_hash_init(&h, alg);
    while ((n = read(fd, buf, CHUNK)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = errno;
            goto Exit;
        }
        br_hash_update(&h, buf, (size_t)n);
    }
    br_hash_peek(&h, out);
Exit:
    free(buf);
    return ret;
}

static int on_blob(verify_t *v, MDB_val *k, MDB_val *d)
{
    br_digest_t dg, got;
    br_blob_rec_t rec;
    br_pd_t key;
    struct stat st;
    char name[3 + 128 + 1];
    int ret = 0, fd = -1;
    if (br_pdigest_unpack(k->mv_data, k->mv_size, &dg) != k->mv_size || br_blob_rec_read(d, &rec) != 0)
        return fail(v, "malformed blob row");
    br_pd_set(&key, k->mv_data);
    size_t want = br_pd_count(v->refs, v->nrefs, &key);
    if (rec.flags & BR_BLOB_DYING) {
        /* Being collected: its file may be gone already (the next collection
         * finishes it); nothing may reference it. */
        if (rec.refs != 0 || want != 0)
            return fail(v, "%s:%s is being collected but referenced", br_alg_name(dg.alg), dg.hex);
        return 0;
    }
    if ((rec.refs == 0) != (rec.unref_at != 0))
        return fail(v, "%s:%s refcount %llu but unreferenced since %llu", br_alg_name(dg.alg), dg.hex,
                    (unsigned long long)rec.refs, (unsigned long long)rec.unref_at);
    if (rec.refs != want)
        return fail(v, "%s:%s refcount %llu, references %zu", br_alg_name(dg.alg), dg.hex, (unsigned long long)rec.refs, want);
    snprintf(name, sizeof(name), "%.2s/%s", dg.hex, dg.hex);
    if ((fd = openat(v->s->blob_fd[dg.alg], name, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
        ret = fail(v, "%s:%s: file: %s", br_alg_name(dg.alg), dg.hex, strerror(errno));
        goto Exit;
    }
    if ((uint64_t)st.st_size != rec.size) {
        ret = fail(v, "%s:%s: %llu bytes on disk, %llu recorded", br_alg_name(dg.alg), dg.hex, (unsigned long long)st.st_size,
                   (unsigned long long)rec.size);
        goto Exit;
    }
    if (v->hash_content) {
        if ((ret = hash_file(fd, dg.alg, &got)) != 0)
            goto Exit;
        if (!br_digest_eq(&got, &dg))
            ret = fail(v, "%s:%s: content hashes to %s", br_alg_name(dg.alg), dg.hex, got.hex);
    }
Exit:
    if (fd >= 0)
        close(fd);
    return ret;
}

static int on_tag(verify_t *v, MDB_val *k, MDB_val *d)
{
    br_str_t repo;
    const unsigned char *tag;
    size_t tag_len;
    br_key_t key;
    if (!br_key_split(k, &repo, &tag, &tag_len) || tag_len == 0 || tag_len > BR_TAG_MAX)
        return fail(v, "malformed tag key");
    if (d->mv_size == 0 || br_pdigest_len(((unsigned char *)d->mv_data)[0]) != d->mv_size)
        return fail(v, "malformed tag value");
    br_key_init(&key, repo);
    br_key_add(&key, d->mv_data, d->mv_size);
    if (!has_key(v, v->s->db_manifests, key.buf, key.len))
        return fail(v, "tag %.*s:%.*s points at no manifest", (int)repo.len, repo.base, (int)tag_len, tag);
    br_key_add(&key, tag, tag_len);
    if (!has_key(v, v->s->db_mtags, key.buf, key.len))
        return fail(v, "tag %.*s:%.*s lacks its reverse entry", (int)repo.len, repo.base, (int)tag_len, tag);
    return 0;
}

static int on_mtag(verify_t *v, MDB_val *k, MDB_val *d)
{
    br_str_t repo;
    const unsigned char *rest;
    size_t n, pl;
    br_key_t key;
    MDB_val tv;
    (void)d;
    if (!br_key_split(k, &repo, &rest, &n) || n == 0 || (pl = br_pdigest_len(rest[0])) == 0 || pl >= n)
        return fail(v, "malformed reverse tag key");
    br_key_init(&key, repo);
    br_key_add(&key, rest + pl, n - pl);
    MDB_val kk = br_key_val(&key);
    if (mdb_get(v->txn, v->s->db_tags, &kk, &tv) != 0 || tv.mv_size != pl || memcmp(tv.mv_data, rest, pl) != 0)
        return fail(v, "reverse tag entry in %.*s without its tag", (int)repo.len, repo.base);
    return 0;
}

static int on_referrer(verify_t *v, MDB_val *k, MDB_val *d)
{
    br_str_t repo;
    const unsigned char *rest;
    size_t n, sl;
    br_key_t key;
    (void)d;
    if (!br_key_split(k, &repo, &rest, &n) || n == 0 || (sl = br_pdigest_len(rest[0])) == 0 || sl >= n ||
        br_pdigest_len(rest[sl]) != n - sl)
        return fail(v, "malformed referrer key");
    br_key_init(&key, repo);
    br_key_add(&key, rest + sl, n - sl);
    if (!has_key(v, v->s->db_manifests, key.buf, key.len))
        return fail(v, "referrer entry in %.*s without its manifest", (int)repo.len, repo.base);
    return 0;
}

int br_store_verify(br_store_t *s, int hash_content, char *detail, size_t detail_size)
{
    verify_t v = {s, NULL, NULL, 0, 0, hash_content, detail, detail_size};
    int ret;
    if (detail_size != 0)
        detail[0] = '\0';
    if ((ret = br_store_rtxn_begin(s, &v.txn)) != 0)
        return ret;
    if ((ret = each(&v, s->db_links, on_link)) != 0 || (ret = each(&v, s->db_holders, on_holder)) != 0 ||
        (ret = each(&v, s->db_manifests, on_manifest)) != 0 || (ret = each(&v, s->db_refby, on_refby)) != 0)
        goto Exit;
    qsort(v.refs, v.nrefs, sizeof(*v.refs), br_pd_cmp);
    if ((ret = each(&v, s->db_blobs, on_blob)) != 0 || (ret = each(&v, s->db_tags, on_tag)) != 0 ||
        (ret = each(&v, s->db_mtags, on_mtag)) != 0 || (ret = each(&v, s->db_referrers, on_referrer)) != 0)
        goto Exit;
Exit:
    br_store_rtxn_end(s, v.txn);
    free(v.refs);
    return ret;
}
