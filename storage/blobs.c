/*
 * Blobs: the content files under blobs/, their index records, repository
 * links (and their reverse, holders) and reference counts.
 *
 * A blob's file is placed with link() from a fully written, fsynced source
 * file, so blobs/ never holds a partial file under a final name: link() is
 * atomic and fails with EEXIST instead of replacing. EEXIST means another
 * writer already placed the same content (the name is its hash), so it is
 * success. The directory is fsynced even then, because that other writer may
 * not have reached its own directory fsync yet, and our index commit must not
 * become durable before the name it points at.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/internal.h"

/* ---- files ----------------------------------------------------------------- */

static int byte_of(const br_digest_t *d)
{
    static const char hexdigits[] = "0123456789abcdef";
    return (int)(strchr(hexdigits, d->hex[0]) - hexdigits) << 4 | (int)(strchr(hexdigits, d->hex[1]) - hexdigits);
}

/* blobs/<alg>/<2 hex>, created on first use. Cached for the store's lifetime
 * (at most 512 descriptors) so a commit costs no open() of its directory. */
int br_blob_subdir(br_store_t *s, const br_digest_t *d, int *out)
{
    int b = byte_of(d), fd = __atomic_load_n(&s->sub_fd[d->alg][b], __ATOMIC_ACQUIRE);
    char name[3] = {d->hex[0], d->hex[1], '\0'};
    if (fd >= 0) {
        *out = fd;
        return 0;
    }
    int parent = s->blob_fd[d->alg];
    if (mkdirat(parent, name, 0755) == 0) {
        /* The new directory entry must be durable before any blob inside it. */
        if (s->fsync && fsync(parent) != 0)
            return errno;
    } else if (errno != EEXIST) {
        return errno;
    }
    if ((fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno;
    int expected = -1;
    if (!__atomic_compare_exchange_n(&s->sub_fd[d->alg][b], &expected, fd, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        close(fd);
        fd = expected;
    }
    *out = fd;
    return 0;
}

int br_blob_place(br_store_t *s, const br_digest_t *d, int srcfd, const char *srcname, uint64_t size)
{
    struct stat st;
    int dfd = -1, ret;
    if ((ret = br_blob_subdir(s, d, &dfd)) != 0)
        return ret;
    if (linkat(srcfd, srcname, dfd, d->hex, 0) != 0) {
        if (errno != EEXIST)
            return errno;
        /* Same name, so same content, unless something damaged the tree:
         * a size check is free and repairs the obvious case. */
        if (fstatat(dfd, d->hex, &st, 0) == 0 && (uint64_t)st.st_size != size) {
            br_error("storage: blob %s has %llu bytes on disk, want %llu; replacing", d->hex, (unsigned long long)st.st_size,
                     (unsigned long long)size);
            if (renameat(srcfd, srcname, dfd, d->hex) != 0)
                return errno;
        }
    }
    if (s->fsync && fsync(dfd) != 0)
        return errno;
    return 0;
}

void br_blob_path(br_store_t *s, const br_digest_t *d, char *buf, size_t size)
{
    snprintf(buf, size, "%s/blobs/%s/%.2s/%s", s->root, br_alg_name(d->alg), d->hex, d->hex);
}

/* ---- index helpers (inside a write txn) -------------------------------------- */

int br_blob_rec_read(const MDB_val *v, br_blob_rec_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    if (v->mv_size != sizeof(*rec) && v->mv_size != BR_BLOB_REC_V2)
        return BR_E_CORRUPT;
    memcpy(rec, v->mv_data, v->mv_size);
    return 0;
}

uint64_t br_link_time(const br_store_t *s, const MDB_val *v)
{
    uint64_t t;
    if (v->mv_size != sizeof(t))
        return s->links_epoch;
    memcpy(&t, v->mv_data, sizeof(t));
    return t;
}

int br_hash_fd(int fd, br_alg_t alg, volatile int *cancel, br_digest_t *out)
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
        if (cancel != NULL && *cancel) {
            ret = ECANCELED;
            goto Exit;
        }
        br_hash_update(&h, buf, (size_t)n);
    }
    br_hash_peek(&h, out);
Exit:
    free(buf);
    return ret;
}

static int write_blob_file(br_store_t *s, const br_digest_t *d, const void *p, size_t len, int replace);

/* Makes the fsynced file srcname blob d's file, replacing a bad one atomically. */
static int place_over(br_store_t *s, const br_digest_t *d, int srcfd, const char *srcname)
{
    int dfd, ret;
    if ((ret = br_blob_subdir(s, d, &dfd)) != 0)
        return ret;
    if (renameat(srcfd, srcname, dfd, d->hex) != 0)
        return errno;
    return s->fsync && fsync(dfd) != 0 ? errno : 0;
}

/* The file of a blob the index lacks (or is losing) must be there before the
 * txn that records it commits; the collector's removals happen inside its own
 * write txns, so what this sees holds until our commit. With replace (a
 * quarantined blob), the file there is bad: src replaces it. */
static int txn_blob_file_ensure(br_store_t *s, const br_digest_t *d, uint64_t size, const br_blob_src_t *src, int replace)
{
    struct stat st;
    int dfd, ret;
    if ((ret = br_blob_subdir(s, d, &dfd)) != 0)
        return ret;
    if (!replace && fstatat(dfd, d->hex, &st, 0) == 0 && (uint64_t)st.st_size == size)
        return 0;
    if (src == NULL)
        return BR_E_BLOB_UNKNOWN;
    br_info("storage: blob %s:%s was %s; placing it again", br_alg_name(d->alg), d->hex,
            replace ? "quarantined" : "collected meanwhile");
    if (src->name == NULL)
        return write_blob_file(s, d, src->buf, src->len, replace);
    return replace ? place_over(s, d, src->dirfd, src->name) : br_blob_place(s, d, src->dirfd, src->name, size);
}

int br_txn_blob_record(br_store_t *s, MDB_txn *txn, const br_digest_t *d, uint64_t size, const br_blob_src_t *src)
{
    unsigned char pd[BR_PDIGEST_MAX];
    br_blob_rec_t rec = {size, 0, br_now(), 0};
    MDB_val k = {br_pdigest_pack(d, pd), pd}, v;
    int rc, ret;
    br_blob_rec_t old = {0, 0, 0, 0};
    if ((rc = mdb_get(txn, s->db_blobs, &k, &v)) == 0) {
        if ((ret = br_blob_rec_read(&v, &old)) != 0)
            return ret;
        if (old.flags & BR_BLOB_QUARANTINED) {
            /* A good copy pushed again heals it; its references stay. */
            if ((ret = txn_blob_file_ensure(s, d, size, src, 1)) != 0)
                return ret;
            rec = old;
            rec.flags &= ~(uint64_t)BR_BLOB_QUARANTINED;
            goto Put;
        }
        if (!(old.flags & BR_BLOB_DYING))
            return 0;
    } else if (rc != MDB_NOTFOUND) {
        return br_store_mdb_err(rc, "read blob");
    }
    /* New bytes for the store (a revived dying row's are counted already). */
    if (size > old.size && (ret = br_txn_quota_store(s, txn, size - old.size)) != 0)
        return ret;
    if ((ret = txn_blob_file_ensure(s, d, size, src, 0)) != 0)
        return ret;
Put:
    v.mv_size = sizeof(rec);
    v.mv_data = &rec;
    if ((rc = mdb_put(txn, s->db_blobs, &k, &v, 0)) != 0)
        return br_store_mdb_err(rc, "record blob");
    /* a revived dying row was counted already (with its size) */
    return br_txn_blob_bytes_add(s, txn, (int64_t)size - (int64_t)old.size);
}

int br_txn_blob_ref(br_store_t *s, MDB_txn *txn, const unsigned char *pd, int64_t delta, int *counted, uint64_t when)
{
    MDB_val k = {br_pdigest_len(pd[0]), (void *)pd}, v;
    br_blob_rec_t rec;
    int rc, ret;
    if (counted != NULL)
        *counted = 0;
    if ((rc = mdb_get(txn, s->db_blobs, &k, &v)) == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return br_store_mdb_err(rc, "read blob");
    if ((ret = br_blob_rec_read(&v, &rec)) != 0)
        return ret;
    if ((rec.flags & BR_BLOB_DYING) || (delta > 0 && (rec.flags & BR_BLOB_QUARANTINED)))
        return 0; /* as good as absent: nothing may take a reference to it */
    if (delta < 0 && rec.refs < (uint64_t)-delta) {
        /* Never wrap: a wrapped count would keep garbage forever. */
        br_error("storage: reference count of a blob would go below zero");
        rec.refs = 0;
    } else {
        rec.refs += (uint64_t)delta;
    }
    rec.unref_at = rec.refs != 0 ? 0 : rec.unref_at != 0 ? rec.unref_at : when != 0 ? when : br_now();
    v.mv_size = sizeof(rec);
    v.mv_data = &rec;
    if ((rc = mdb_put(txn, s->db_blobs, &k, &v, 0)) != 0)
        return br_store_mdb_err(rc, "update blob");
    if (counted != NULL)
        *counted = 1;
    return 0;
}

static int txn_repo_create(br_store_t *s, MDB_txn *txn, br_str_t repo)
{
    MDB_val k = {repo.len, (void *)repo.base}, v = {0, NULL};
    int rc = mdb_put(txn, s->db_repos, &k, &v, MDB_NOOVERWRITE);
    if (rc != 0 && rc != MDB_KEYEXIST)
        return br_store_mdb_err(rc, "record repository");
    return 0;
}

int br_txn_link(br_store_t *s, MDB_txn *txn, br_str_t repo, const br_digest_t *d)
{
    br_key_t key;
    uint64_t now = br_now();
    MDB_val k, v;
    int rc, ret, existed;
    br_key_init(&key, repo);
    br_key_add_digest(&key, d);
    k = br_key_val(&key);
    if ((ret = txn_repo_create(s, txn, repo)) != 0)
        return ret;
    if ((rc = mdb_get(txn, s->db_links, &k, &v)) != 0 && rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "read link");
    existed = rc == 0;
    /* The time is renewed on every link, so a blob pushed again before its
     * manifest gets a whole grace period again. */
    v.mv_size = sizeof(now);
    v.mv_data = &now;
    if ((rc = mdb_put(txn, s->db_links, &k, &v, 0)) != 0)
        return br_store_mdb_err(rc, "link blob");
    if (existed)
        return 0;
    /* Before the holders row: the quota counts scan the other holders. */
    if ((ret = br_txn_quota_link(s, txn, repo, key.buf + repo.len + 1, 1)) != 0 ||
        (ret = br_txn_holder_put(s, txn, key.buf + repo.len + 1, repo)) != 0)
        return ret;
    return br_txn_blob_ref(s, txn, key.buf + repo.len + 1, 1, NULL, 0);
}

int br_txn_holder_put(br_store_t *s, MDB_txn *txn, const unsigned char *pd, br_str_t repo)
{
    br_key_t key;
    MDB_val k, v = {0, NULL};
    int rc;
    br_key_holder(&key, pd, repo);
    k = br_key_val(&key);
    if ((rc = mdb_put(txn, s->db_holders, &k, &v, 0)) != 0)
        return br_store_mdb_err(rc, "record blob holder");
    return 0;
}

int br_txn_unlink(br_store_t *s, MDB_txn *txn, br_str_t repo, const br_digest_t *d, uint64_t when)
{
    br_key_t key, hkey;
    MDB_val k;
    int rc;
    br_key_init(&key, repo);
    br_key_add_digest(&key, d);
    k = br_key_val(&key);
    if ((rc = mdb_del(txn, s->db_links, &k, NULL)) == MDB_NOTFOUND)
        return BR_E_BLOB_UNKNOWN;
    if (rc != 0)
        return br_store_mdb_err(rc, "unlink blob");
    br_key_holder(&hkey, key.buf + repo.len + 1, repo);
    k = br_key_val(&hkey);
    /* A missing holders row is damage br_store_verify reports; the unlink
     * still leaves the right state behind. */
    if ((rc = mdb_del(txn, s->db_holders, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "remove blob holder");
    if ((rc = br_txn_quota_link(s, txn, repo, key.buf + repo.len + 1, -1)) != 0)
        return rc;
    return br_txn_blob_ref(s, txn, key.buf + repo.len + 1, -1, NULL, when);
}

/* Reads the blob record of d, and (repo.len != 0) requires its link to repo. */
static int txn_blob_get(br_store_t *s, MDB_txn *txn, br_str_t repo, const br_digest_t *d, br_blob_rec_t *rec)
{
    br_key_t key;
    MDB_val k, v;
    int rc;
    if (repo.len != 0) {
        br_key_init(&key, repo);
        br_key_add_digest(&key, d);
        k = br_key_val(&key);
        if ((rc = mdb_get(txn, s->db_links, &k, &v)) == MDB_NOTFOUND)
            return BR_E_BLOB_UNKNOWN;
        if (rc != 0)
            return br_store_mdb_err(rc, "read link");
        k.mv_data = key.buf + repo.len + 1;
        k.mv_size -= repo.len + 1;
    } else {
        k.mv_data = key.buf;
        k.mv_size = br_pdigest_pack(d, key.buf);
    }
    if ((rc = mdb_get(txn, s->db_blobs, &k, &v)) == MDB_NOTFOUND)
        return BR_E_BLOB_UNKNOWN;
    if (rc != 0)
        return br_store_mdb_err(rc, "read blob");
    if ((rc = br_blob_rec_read(&v, rec)) != 0)
        return rc;
    /* A dying blob has no links; unlinked lookups must not find it either.
     * A quarantined one must never be served. */
    return rec->flags & (BR_BLOB_DYING | BR_BLOB_QUARANTINED) ? BR_E_BLOB_UNKNOWN : 0;
}

/* ---- public ------------------------------------------------------------------ */

static int blob_lookup(br_store_t *s, br_str_t repo, const br_digest_t *d, br_blob_rec_t *rec)
{
    MDB_txn *txn;
    int ret;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    ret = txn_blob_get(s, txn, repo, d, rec);
    br_store_rtxn_end(s, txn);
    return ret;
}

int br_blob_stat(br_store_t *s, br_str_t repo, const br_digest_t *d, uint64_t *size)
{
    br_blob_rec_t rec;
    int ret;
    if (repo.len == 0)
        return BR_E_BLOB_UNKNOWN;
    if ((ret = blob_lookup(s, repo, d, &rec)) == 0 && size != NULL)
        *size = rec.size;
    return ret;
}

int br_blob_stat_any(br_store_t *s, const br_digest_t *d, uint64_t *size)
{
    br_blob_rec_t rec;
    int ret;
    if ((ret = blob_lookup(s, br_str(NULL, 0), d, &rec)) == 0 && size != NULL)
        *size = rec.size;
    return ret;
}

int br_blob_refcount(br_store_t *s, const br_digest_t *d, uint64_t *count)
{
    br_blob_rec_t rec;
    int ret;
    if ((ret = blob_lookup(s, br_str(NULL, 0), d, &rec)) == 0)
        *count = rec.refs;
    return ret;
}

int br_blob_open(br_store_t *s, br_str_t repo, const br_digest_t *d, int *fd, uint64_t *size)
{
    br_blob_rec_t rec;
    char name[3 + 128 + 1];
    int ret;
    *fd = -1;
    if ((ret = br_blob_stat(s, repo, d, &rec.size)) != 0)
        return ret;
    snprintf(name, sizeof(name), "%.2s/%s", d->hex, d->hex);
    if ((*fd = openat(s->blob_fd[d->alg], name, O_RDONLY | O_CLOEXEC)) < 0) {
        ret = errno;
        /* The collector may have taken it since our lookup (link gone,
         * then the file): a 404 then, like a lookup a moment later. */
        if (ret == ENOENT && br_blob_stat(s, repo, d, NULL) == BR_E_BLOB_UNKNOWN)
            return BR_E_BLOB_UNKNOWN;
        if (ret == ENOENT) {
            /* The index promised this file: that is damage, not a 404. */
            br_error("storage: indexed blob %s:%s missing on disk", br_alg_name(d->alg), d->hex);
            ret = BR_E_CORRUPT;
        }
        return ret;
    }
    if (size != NULL)
        *size = rec.size;
    return 0;
}

/* The first holder of a blob that a mount predicate accepts. */
typedef struct st_holder_find_t {
    br_repo_pred_cb pred;
    void *ctx;
    size_t len;
    char name[BR_NAME_MAX];
} holder_find_t;

static int on_holder(void *p, br_str_t repo)
{
    holder_find_t *f = p;
    if (repo.len == 0 || repo.len > sizeof(f->name) || !f->pred(f->ctx, repo))
        return 0;
    memcpy(f->name, repo.base, repo.len);
    f->len = repo.len;
    return 1;
}

/* With pred, the source is the first repository holding d (in name order)
 * that pred accepts; without, from (any repository when empty). */
static int blob_mount(br_store_t *s, br_str_t repo, br_str_t from, const br_digest_t *d, br_repo_pred_cb pred, void *ctx,
                      uint64_t *size)
{
    MDB_txn *txn = NULL;
    br_blob_rec_t rec;
    holder_find_t f = {pred, ctx, 0, {0}};
    unsigned char pd[BR_PDIGEST_MAX];
    int more, ret;
    if (repo.len == 0)
        return BR_E_NAME_INVALID;
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    /* Check and link in one write txn, so an unlink from `from` racing with
     * the mount either happens before (mount fails) or after (both counted).
     * The holder is chosen in the same txn for the same reason: pred is
     * called with the writer lock held, which is why it must be cheap. */
    if (pred != NULL) {
        if ((ret = br_store_scan(txn, s->db_holders, pd, br_pdigest_pack(d, pd), br_str(NULL, 0), SIZE_MAX, on_holder, &f,
                                 &more)) != 0)
            goto Exit;
        if (f.len == 0) {
            ret = BR_E_BLOB_UNKNOWN;
            goto Exit;
        }
        from = br_str(f.name, f.len);
    }
    if ((ret = txn_blob_get(s, txn, from, d, &rec)) != 0 || (ret = br_txn_link(s, txn, repo, d)) != 0)
        goto Exit;
    ret = br_store_wtxn_end(&txn, 0);
    if (ret == 0 && size != NULL)
        *size = rec.size;
Exit:
    return br_store_wtxn_end(&txn, ret);
}

int br_blob_mount(br_store_t *s, br_str_t repo, br_str_t from, const br_digest_t *d, uint64_t *size)
{
    return blob_mount(s, repo, from, d, NULL, NULL, size);
}

int br_blob_mount_any(br_store_t *s, br_str_t repo, const br_digest_t *d, br_repo_pred_cb pred, void *ctx, uint64_t *size)
{
    return blob_mount(s, repo, br_str(NULL, 0), d, pred, ctx, size);
}

int br_blob_unlink(br_store_t *s, br_str_t repo, const br_digest_t *d)
{
    MDB_txn *txn = NULL;
    int ret;
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    ret = br_txn_unlink(s, txn, repo, d, 0);
    return br_store_wtxn_end(&txn, ret);
}

void br_blob_unplace(br_store_t *s, const br_digest_t *d)
{
    int trash_fd, removed;
    if (br_trash_open(s, &trash_fd) != 0)
        return;
    br_orphan_remove(s, trash_fd, d, &removed);
    close(trash_fd);
}

/* Writes p to a fresh file in uploads/ and places it as blob d. The temporary
 * carries a uuid name like a session's, so a crash leaves an orphan that
 * br_upload_purge() recognises and removes. */
static int write_blob_file(br_store_t *s, const br_digest_t *d, const void *p, size_t len, int replace)
{
    br_claim_t c;
    const char *name = c.uuid;
    int fd, ret;
    br_uuid_generate(c.uuid);
    /* Claimed, so purge's orphan sweep leaves the file alone while we write it. */
    if ((ret = br_store_claim(s, &c)) != 0)
        return ret;
    if ((fd = openat(s->uploads_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        ret = errno;
        br_store_unclaim(s, &c);
        return ret;
    }
    if ((ret = br_pwrite_all(fd, p, len, 0)) != 0)
        goto Exit;
    if (s->fsync && fdatasync(fd) != 0) {
        ret = errno;
        goto Exit;
    }
    ret = replace ? place_over(s, d, s->uploads_fd, name) : br_blob_place(s, d, s->uploads_fd, name, len);
Exit:
    close(fd);
    unlinkat(s->uploads_fd, name, 0);
    br_store_unclaim(s, &c);
    return ret;
}

int br_blob_store_buf(br_store_t *s, const br_digest_t *d, const void *p, size_t len)
{
    br_blob_rec_t rec;
    /* Already indexed: its file is in place and durable, and until the index
     * record goes (garbage collection, in a write txn) it stays. */
    if (blob_lookup(s, br_str(NULL, 0), d, &rec) == 0)
        return 0;
    return write_blob_file(s, d, p, len, 0);
}

int br_blob_put(br_store_t *s, br_str_t repo, br_alg_t alg, const void *p, size_t len, br_digest_t *out)
{
    MDB_txn *txn = NULL;
    br_digest_t d;
    int ret;
    if (repo.len == 0)
        return BR_E_NAME_INVALID;
    br_hash_buf(alg, p, len, &d);
    if ((ret = br_blob_store_buf(s, &d, p, len)) != 0)
        return ret;
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    br_blob_src_t src = {-1, NULL, p, len};
    if ((ret = br_txn_blob_record(s, txn, &d, len, &src)) != 0 || (ret = br_txn_link(s, txn, repo, &d)) != 0)
        goto Exit;
    ret = br_store_wtxn_end(&txn, 0);
    if (ret == 0 && out != NULL)
        *out = d;
Exit:
    ret = br_store_wtxn_end(&txn, ret);
    if (ret == BR_E_QUOTA)
        br_blob_unplace(s, &d);
    return ret;
}
