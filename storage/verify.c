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
 *
 * br_store_fsck runs the same checks but goes on after a problem, counting
 * and reporting each; it checks the index in one read txn (fast), then
 * re-hashes the blob files outside it (slow, so no snapshot is pinned that
 * long), then walks blobs/ for files the index does not name. It holds the
 * collectors' lock throughout, so no collection removes a file it is about to
 * look at; pushes may go on (they only add files, before their commit).
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

typedef struct st_blob_ent_t {
    br_pd_t pd;
    uint64_t size;
} blob_ent_t;

typedef struct st_verify_t {
    br_store_t *s;
    MDB_txn *txn;
    br_pd_t *refs;
    size_t nrefs, cap;
    int hash_content;
    char *detail;
    size_t detail_size;
    /* fsck only: */
    const br_fsck_options_t *fsck;
    br_fsck_stats_t *st;
    int recount;       /* a quota counter is wrong or a blob was re-indexed */
    blob_ent_t *blobs; /* to hash after the index pass */
    size_t nblobs, blobs_cap;
    int trash_fd;
} verify_t;

/* One problem: for verify, the first ends the check (BR_E_CORRUPT with its
 * detail); for fsck, it is counted and reported and the check goes on. */
__attribute__((format(printf, 2, 3))) static int fail(verify_t *v, const char *fmt, ...)
{
    va_list ap;
    if (v->fsck != NULL) {
        char msg[1024];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        v->st->problems++;
        if (v->fsck->problem != NULL)
            v->fsck->problem(v->fsck->ctx, msg);
        return 0;
    }
    if (v->detail_size != 0) {
        va_start(ap, fmt);
        vsnprintf(v->detail, v->detail_size, fmt, ap);
        va_end(ap);
    }
    return BR_E_CORRUPT;
}

static void add_ref(verify_t *v, const unsigned char *pd)
{
    br_pd_push(&v->refs, &v->nrefs, &v->cap, pd);
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
    /* Counted first: fsck goes on after a problem and may re-index the blob. */
    add_ref(v, pd);
    bk.mv_size = n;
    bk.mv_data = (void *)pd;
    if (mdb_get(v->txn, v->s->db_blobs, &bk, &bv) != 0) {
        br_digest_t dg;
        br_pdigest_unpack(pd, n, &dg);
        return fail(v, "link in %.*s names an unrecorded blob %s:%s", (int)repo.len, repo.base, br_alg_name(dg.alg), dg.hex);
    }
    if (br_blob_rec_read(&bv, &rec) != 0 || (rec.flags & BR_BLOB_DYING))
        return fail(v, "link in %.*s names a blob being collected", (int)repo.len, repo.base);
    if (!has_key(v, v->s->db_repos, repo.base, repo.len))
        return fail(v, "link in unrecorded repository %.*s", (int)repo.len, repo.base);
    br_key_holder(&key, pd, repo);
    if (!has_key(v, v->s->db_holders, key.buf, key.len))
        return fail(v, "link in %.*s lacks its holders row", (int)repo.len, repo.base);
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
    if (v->st != NULL)
        v->st->manifests++;
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

static int on_blob(verify_t *v, MDB_val *k, MDB_val *d)
{
    br_digest_t dg, got;
    br_blob_rec_t rec;
    br_pd_t key;
    struct stat st;
    char name[3 + 128 + 1];
    int ret = 0, fd = -1;
    if (v->st != NULL)
        v->st->blobs++;
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
    if (rec.flags & BR_BLOB_QUARANTINED) /* the scrub's verdict; the file is not read again */
        return fail(v, "%s:%s: quarantined by the scrub (its content did not match its digest): push it again",
                    br_alg_name(dg.alg), dg.hex);
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
    if (v->fsck != NULL) { /* hashed after the index pass */
        if (v->nblobs == v->blobs_cap) {
            v->blobs_cap = v->blobs_cap != 0 ? 2 * v->blobs_cap : 256;
            v->blobs = br_realloc(v->blobs, v->blobs_cap * sizeof(*v->blobs));
        }
        v->blobs[v->nblobs].pd = key;
        v->blobs[v->nblobs++].size = rec.size;
    } else if (v->hash_content) {
        if ((ret = br_hash_fd(fd, dg.alg, NULL, &got)) != 0)
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
    size_t pl;
    uint64_t pushed;
    /* Both forms: the digest alone (before schema 4) or with its push time. */
    if (br_tag_val_read(d, &pl, &pushed) != 0)
        return fail(v, "malformed tag value");
    br_key_init(&key, repo);
    br_key_add(&key, d->mv_data, pl);
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
    size_t tl;
    uint64_t pushed;
    if (mdb_get(v->txn, v->s->db_tags, &kk, &tv) != 0 || br_tag_val_read(&tv, &tl, &pushed) != 0 || tl != pl ||
        memcmp(tv.mv_data, rest, pl) != 0)
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

/* Every check that reads only the index (and stats blob files), in one read txn. */
static int on_quota(void *ctx, br_str_t glob, uint64_t kept, uint64_t actual)
{
    verify_t *v = ctx;
    if (kept == actual)
        return 0;
    v->recount = 1;
    return fail(v, "quota \"%.*s\": the index counts %llu bytes, its repositories' links hold %llu%s", (int)glob.len, glob.base,
                (unsigned long long)kept, (unsigned long long)actual, v->fsck != NULL && v->fsck->repair ? " (recounted)" : "");
}

static int index_pass(verify_t *v)
{
    br_store_t *s = v->s;
    int ret;
    if ((ret = br_store_rtxn_begin(s, &v->txn)) != 0)
        return ret;
    if ((ret = each(v, s->db_links, on_link)) != 0 || (ret = each(v, s->db_holders, on_holder)) != 0 ||
        (ret = each(v, s->db_manifests, on_manifest)) != 0 || (ret = each(v, s->db_refby, on_refby)) != 0)
        goto Exit;
    if (v->nrefs != 0)
        qsort(v->refs, v->nrefs, sizeof(*v->refs), br_pd_cmp);
    if ((ret = each(v, s->db_blobs, on_blob)) != 0 || (ret = each(v, s->db_tags, on_tag)) != 0 ||
        (ret = each(v, s->db_mtags, on_mtag)) != 0 || (ret = each(v, s->db_referrers, on_referrer)) != 0 ||
        (ret = br_txn_quota_each(s, v->txn, on_quota, v)) != 0)
        goto Exit;
Exit:
    br_store_rtxn_end(s, v->txn);
    v->txn = NULL;
    return ret;
}

int br_store_verify(br_store_t *s, int hash_content, char *detail, size_t detail_size)
{
    verify_t v;
    memset(&v, 0, sizeof(v));
    v.s = s;
    v.hash_content = hash_content;
    v.detail = detail;
    v.detail_size = detail_size;
    if (detail_size != 0)
        detail[0] = '\0';
    int ret = index_pass(&v);
    free(v.refs);
    return ret;
}

/* ---- fsck ------------------------------------------------------------------------ */

static void fsck_progress(verify_t *v, const char *phase, uint64_t done, uint64_t total)
{
    if (v->fsck->progress != NULL)
        v->fsck->progress(v->fsck->ctx, phase, done, total);
}

static int hash_pass(verify_t *v)
{
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < v->nblobs; i++)
        total += v->blobs[i].size;
    for (size_t i = 0; i < v->nblobs; i++) {
        br_digest_t d, got;
        char name[3 + 128 + 1];
        int fd, ret;
        br_pdigest_unpack(v->blobs[i].pd.b, sizeof(v->blobs[i].pd.b), &d);
        snprintf(name, sizeof(name), "%.2s/%s", d.hex, d.hex);
        if ((fd = openat(v->s->blob_fd[d.alg], name, O_RDONLY | O_CLOEXEC)) < 0) {
            fail(v, "%s:%s: file: %s", br_alg_name(d.alg), d.hex, strerror(errno));
            continue;
        }
        ret = br_hash_fd(fd, d.alg, NULL, &got);
        close(fd);
        if (ret != 0)
            fail(v, "%s:%s: read: %s", br_alg_name(d.alg), d.hex, strerror(ret));
        else if (!br_digest_eq(&got, &d))
            fail(v, "%s:%s: content hashes to %s", br_alg_name(d.alg), d.hex, got.hex);
        done += v->blobs[i].size;
        fsck_progress(v, "hash", done, total);
    }
    return 0;
}

static int recorded(br_store_t *s, const br_digest_t *d, int *yes)
{
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_txn *txn;
    MDB_val k = {br_pdigest_pack(d, pd), pd}, v;
    int rc, ret;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    rc = mdb_get(txn, s->db_blobs, &k, &v);
    br_store_rtxn_end(s, txn);
    *yes = rc == 0;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : br_store_mdb_err(rc, "read blob");
}

/* An orphan the index needs (a link or manifest names it) and whose content
 * matches its name goes back into the index. */
static int reindex(verify_t *v, const br_digest_t *d, uint64_t size, uint64_t refs)
{
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_txn *txn = NULL;
    br_blob_rec_t rec = {size, refs, refs != 0 ? 0 : br_now(), 0};
    MDB_val k = {br_pdigest_pack(d, pd), pd}, val = {sizeof(rec), &rec};
    int rc, ret;
    if ((ret = br_store_wtxn_begin(v->s, &txn)) != 0)
        return ret;
    if ((rc = mdb_put(txn, v->s->db_blobs, &k, &val, MDB_NOOVERWRITE)) == 0)
        ret = br_txn_blob_bytes_add(v->s, txn, (int64_t)size); /* br_store_stats */
    else if (rc != MDB_KEYEXIST)
        ret = br_store_mdb_err(rc, "record blob");
    return br_store_wtxn_end(&txn, ret);
}

static int on_fsck_file(void *ctx, br_alg_t alg, const char *dir, const char *name, const br_digest_t *d, const struct stat *st)
{
    verify_t *v = ctx;
    unsigned char pd[BR_PDIGEST_MAX];
    char path[3 + 128 + 1];
    br_digest_t got;
    br_pd_t key;
    int ret, yes, fd, removed;
    if (d == NULL) /* not a blob name: not ours to remove */
        return fail(v, "stray file blobs/%s/%s/%s (no blob name)", br_alg_name(alg), dir, name);
    if ((ret = recorded(v->s, d, &yes)) != 0 || yes)
        return ret;
    if (!v->fsck->repair)
        return fail(v, "%s:%s: orphan file (%llu bytes) that no index entry names", br_alg_name(alg), d->hex,
                    (unsigned long long)st->st_size);
    /* --repair decides on the content, never on the name alone. */
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((fd = openat(v->s->blob_fd[alg], path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0; /* gone meanwhile */
    ret = br_hash_fd(fd, alg, NULL, &got);
    close(fd);
    if (ret != 0)
        return ret;
    br_pdigest_pack(d, pd);
    br_pd_set(&key, pd);
    size_t refs = br_pd_count(v->refs, v->nrefs, &key);
    if (br_digest_eq(&got, d) && refs != 0) {
        if ((ret = reindex(v, d, (uint64_t)st->st_size, refs)) != 0)
            return ret;
        v->st->repaired++;
        v->recount = 1; /* its links counted no bytes for their quotas */
        return fail(v, "%s:%s: orphan file re-indexed (%zu references name it)", br_alg_name(alg), d->hex, refs);
    }
    if ((ret = br_orphan_remove(v->s, v->trash_fd, d, &removed)) != 0)
        return ret;
    v->st->repaired += removed != 0;
    return fail(v, "%s:%s: orphan file removed (%s)", br_alg_name(alg), d->hex,
                br_digest_eq(&got, d) ? "nothing references it" : "its content does not match its name");
}

int br_store_fsck(br_store_t *s, const br_fsck_options_t *o, br_fsck_stats_t *st)
{
    verify_t v;
    int ret, lock_fd = -1;
    memset(&v, 0, sizeof(v));
    memset(st, 0, sizeof(*st));
    v.s = s;
    v.fsck = o;
    v.st = st;
    v.trash_fd = -1;
    if ((ret = br_gc_lock(s, 1, &lock_fd)) != 0)
        return ret;
    if (o->repair && (ret = br_trash_open(s, &v.trash_fd)) != 0)
        goto Exit;
    fsck_progress(&v, "index", 0, 1);
    if ((ret = index_pass(&v)) != 0)
        goto Exit;
    fsck_progress(&v, "index", 1, 1);
    if ((ret = hash_pass(&v)) != 0)
        goto Exit;
    fsck_progress(&v, "files", 0, 1);
    ret = br_blob_files_walk(s, on_fsck_file, &v);
    fsck_progress(&v, "files", 1, 1);
    if (ret == 0 && o->repair && v.recount)
        ret = br_store_quotas_recount(s);
Exit:
    if (v.trash_fd >= 0)
        close(v.trash_fd);
    close(lock_fd);
    free(v.refs);
    free(v.blobs);
    return ret;
}
