/*
 * Upload sessions: bytes in uploads/<uuid>, size and hash state in the
 * uploads sub-database.
 *
 * Appending and hashing are two steps (br_upload_append, br_upload_hash) so a
 * server can hash on another thread while it writes: they touch disjoint
 * fields (fd, size, flushed / hash, hashed) and may run at the same time on
 * two threads; save and commit check that both covered the same bytes, so an
 * out-of-step caller gets an error, never a wrong digest or a record whose
 * hash does not match its size. br_upload_write does both, in one thread.
 *
 * Durability is staged. write() only appends and hashes; every few MiB it
 * starts writeback (sync_file_range WRITE, which does not wait) so that the
 * fdatasync in save/commit finds little left to do: the server runs these on
 * its I/O threads, where a commit held for seconds behind a gigabyte of dirty
 * pages would occupy one of them for that long.
 * save() fdatasyncs and then records size + hash state; the record is the
 * truth on restart, and a longer file (written after the last save) is cut
 * back on resume, so file and hash state always agree.
 *
 * The running hash is SHA-256, the digest nearly every client uses. The
 * algorithm is known only at commit; for a sha512 commit the file is hashed
 * again from disk (rare, and bounded by the file size).
 *
 * A session's uuid is claimed in the store's in-memory set for as long as a
 * handle lives; resume of a claimed uuid is BR_E_BUSY, and purge claims a
 * session before removing it, so it can never pull a file from under a
 * request. Files in uploads/ with a uuid name but no record are orphans of a
 * crash (or of a cancel/commit interrupted between index and unlink); purge
 * removes them too, under the same claim.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/internal.h"

/* Start writeback after this many unsynced bytes. */
#define BR_UPLOAD_WRITEBACK (8u << 20)

struct st_br_upload_t {
    br_claim_t claim; /* claim.uuid is the session id */
    br_store_t *store;
    int fd;
    int finished;   /* committed or cancelled: the session is gone */
    int dir_synced; /* uploads/ fsynced since the file was created */
    uint64_t size, started, flushed;
    br_hash_t hash;
    uint64_t hashed; /* bytes in hash (equal to size whenever the handle is consistent) */
    size_t repo_len;
    char repo[BR_NAME_MAX + 1];
};

/* Fixed part of an uploads record; repo and hash bytes follow. */
typedef struct st_upload_hdr_t {
    uint64_t started;
    uint64_t size;
    uint16_t repo_len;
    uint16_t hash_len;
    uint32_t _pad;
} upload_hdr_t;

#define UPLOAD_REC_MAX (sizeof(upload_hdr_t) + BR_NAME_MAX + sizeof(br_hash_t))

static MDB_val uuid_key(const br_upload_t *u)
{
    MDB_val k = {BR_UUID_LEN, (void *)u->claim.uuid};
    return k;
}

static int put_record(br_upload_t *u, MDB_txn *txn, unsigned flags)
{
    unsigned char buf[UPLOAD_REC_MAX];
    upload_hdr_t h;
    memset(&h, 0, sizeof(h));
    h.started = u->started;
    h.size = u->size;
    h.repo_len = (uint16_t)u->repo_len;
    h.hash_len = (uint16_t)sizeof(br_hash_t);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), u->repo, u->repo_len);
    memcpy(buf + sizeof(h) + u->repo_len, &u->hash, sizeof(br_hash_t));
    MDB_val k = uuid_key(u), v = {sizeof(h) + u->repo_len + sizeof(br_hash_t), buf};
    int rc = mdb_put(txn, u->store->db_uploads, &k, &v, flags);
    return rc == 0 ? 0 : br_store_mdb_err(rc, "record upload");
}

/* Loads the record into u; BR_E_BLOB_UPLOAD_UNKNOWN unless it exists for repo. */
static int get_record(br_upload_t *u, br_str_t repo)
{
    MDB_txn *txn;
    MDB_val k = uuid_key(u), v;
    upload_hdr_t h;
    int rc, ret;
    if ((ret = br_store_rtxn_begin(u->store, &txn)) != 0)
        return ret;
    if ((rc = mdb_get(txn, u->store->db_uploads, &k, &v)) != 0) {
        ret = rc == MDB_NOTFOUND ? BR_E_BLOB_UPLOAD_UNKNOWN : br_store_mdb_err(rc, "read upload");
        goto Exit;
    }
    if (v.mv_size < sizeof(h)) {
        ret = BR_E_CORRUPT;
        goto Exit;
    }
    memcpy(&h, v.mv_data, sizeof(h));
    /* A hash state of another size comes from another build of the hash
     * library: unusable, so the session is as good as unknown. */
    if (v.mv_size != sizeof(h) + h.repo_len + h.hash_len || h.hash_len != sizeof(br_hash_t)) {
        ret = BR_E_BLOB_UPLOAD_UNKNOWN;
        goto Exit;
    }
    const char *p = (const char *)v.mv_data + sizeof(h);
    if (!br_str_eq(br_str(p, h.repo_len), repo)) {
        ret = BR_E_BLOB_UPLOAD_UNKNOWN;
        goto Exit;
    }
    u->started = h.started;
    u->size = u->flushed = u->hashed = h.size;
    memcpy(&u->hash, p + h.repo_len, sizeof(br_hash_t));
    ret = 0;
Exit:
    br_store_rtxn_end(u->store, txn);
    return ret;
}

/* Removes record and file. The record goes first: a crash in between leaves
 * an orphan file for purge, never a record whose bytes are gone. */
static int session_remove(br_upload_t *u)
{
    MDB_txn *txn = NULL;
    MDB_val k = uuid_key(u);
    int rc, ret;
    if ((ret = br_store_wtxn_begin(u->store, &txn)) != 0)
        return ret;
    if ((rc = mdb_del(txn, u->store->db_uploads, &k, NULL)) != 0 && rc != MDB_NOTFOUND) {
        ret = br_store_mdb_err(rc, "delete upload");
        goto Exit;
    }
    ret = br_store_wtxn_end(&txn, 0);
    if (ret == 0)
        unlinkat(u->store->uploads_fd, u->claim.uuid, 0);
Exit:
    return br_store_wtxn_end(&txn, ret);
}

static br_upload_t *handle_create(br_store_t *s, br_str_t repo)
{
    br_upload_t *u = br_calloc(1, sizeof(*u));
    u->store = s;
    u->fd = -1;
    u->repo_len = repo.len;
    memcpy(u->repo, repo.base, repo.len);
    return u;
}

int br_upload_start(br_store_t *s, br_str_t repo, br_upload_t **out)
{
    br_upload_t *u = NULL;
    MDB_txn *txn = NULL;
    int ret, claimed = 0;

    *out = NULL;
    if (repo.len == 0 || repo.len > BR_NAME_MAX)
        return BR_E_NAME_INVALID;
    u = handle_create(s, repo);
    br_uuid_generate(u->claim.uuid);
    if ((ret = br_store_claim(s, &u->claim)) != 0)
        goto Exit;
    claimed = 1;
    u->started = br_now();
    br_hash_init(&u->hash, BR_ALG_SHA256);
    /* File before record: a record then always had a file (a crash can still
     * lose the file's directory entry before any save; resume recreates an
     * empty one). */
    if ((u->fd = openat(s->uploads_fd, u->claim.uuid, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        ret = errno;
        goto Exit;
    }
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0 || (ret = put_record(u, txn, MDB_NOOVERWRITE)) != 0)
        goto Exit;
Exit:
    ret = br_store_wtxn_end(&txn, ret);
    if (ret != 0 && u != NULL) {
        if (u->fd >= 0) {
            close(u->fd);
            unlinkat(s->uploads_fd, u->claim.uuid, 0);
        }
        if (claimed)
            br_store_unclaim(s, &u->claim);
        free(u);
        u = NULL;
    }
    *out = u;
    return ret;
}

int br_upload_resume(br_store_t *s, br_str_t repo, br_str_t uuid, br_upload_t **out)
{
    br_upload_t *u = NULL;
    struct stat st;
    int ret, claimed = 0;

    *out = NULL;
    /* The uuid becomes a file name below: only our own format gets that far. */
    if (!br_uuid_valid(uuid) || repo.len == 0 || repo.len > BR_NAME_MAX)
        return BR_E_BLOB_UPLOAD_UNKNOWN;
    u = handle_create(s, repo);
    memcpy(u->claim.uuid, uuid.base, BR_UUID_LEN);
    /* Claim before reading the record, so a concurrent commit/cancel/purge
     * cannot remove it between our read and our use. */
    if ((ret = br_store_claim(s, &u->claim)) != 0)
        goto Exit;
    claimed = 1;
    if ((ret = get_record(u, repo)) != 0)
        goto Exit;
    u->dir_synced = u->size != 0; /* a save happened, and it synced the directory */
    int flags = O_RDWR | O_CLOEXEC | (u->size == 0 ? O_CREAT : 0);
    if ((u->fd = openat(s->uploads_fd, u->claim.uuid, flags, 0644)) < 0) {
        ret = errno;
        if (ret != ENOENT)
            goto Exit;
        st.st_size = 0;
    } else if (fstat(u->fd, &st) != 0) {
        ret = errno;
        goto Exit;
    }
    if ((uint64_t)st.st_size > u->size) {
        /* Bytes written after the last save: the saved hash state does not
         * cover them, so they are dropped and the client resumes from size. */
        if (ftruncate(u->fd, (off_t)u->size) != 0) {
            ret = errno;
            goto Exit;
        }
    } else if ((uint64_t)st.st_size < u->size) {
        /* Saved bytes are gone (store copied without its uploads, or fsync
         * off): the session cannot continue. */
        br_warn("storage: upload %s lost data (%llu of %llu bytes); removing it", u->claim.uuid,
                (unsigned long long)st.st_size, (unsigned long long)u->size);
        session_remove(u);
        ret = BR_E_BLOB_UPLOAD_UNKNOWN;
        goto Exit;
    }
    ret = 0;
Exit:
    if (ret != 0) {
        if (u->fd >= 0)
            close(u->fd);
        if (claimed)
            br_store_unclaim(s, &u->claim);
        free(u);
        u = NULL;
    }
    *out = u;
    return ret;
}

const char *br_upload_uuid(const br_upload_t *u)
{
    return u->claim.uuid;
}

uint64_t br_upload_size(const br_upload_t *u)
{
    return u->size;
}

uint64_t br_upload_started(const br_upload_t *u)
{
    return u->started;
}

int br_upload_append(br_upload_t *u, const void *p, size_t len)
{
    int ret;
    if (u->finished)
        return BR_E_BLOB_UPLOAD_UNKNOWN;
    if ((ret = br_pwrite_all(u->fd, p, len, u->size)) != 0) {
        /* Keep the file at the size recorded so far: drop whatever part did
         * get written. */
        if (ftruncate(u->fd, (off_t)u->size) != 0)
            br_warn("storage: upload %s: truncate after failed write: %s", u->claim.uuid, strerror(errno));
        return ret;
    }
    u->size += len;
    if (u->store->fsync && u->size - u->flushed >= BR_UPLOAD_WRITEBACK) {
        /* Failures here resurface at the fdatasync that matters. */
        (void)sync_file_range(u->fd, (off_t)u->flushed, (off_t)(u->size - u->flushed), SYNC_FILE_RANGE_WRITE);
        u->flushed = u->size;
    }
    return 0;
}

int br_upload_hash(br_upload_t *u, const void *p, size_t len)
{
    if (u->finished)
        return BR_E_BLOB_UPLOAD_UNKNOWN;
    br_hash_update(&u->hash, p, len);
    u->hashed += len;
    return 0;
}

int br_upload_write(br_upload_t *u, const void *p, size_t len)
{
    int ret;
    if ((ret = br_upload_append(u, p, len)) != 0)
        return ret;
    return br_upload_hash(u, p, len);
}

/* Appended and hashed bytes differ: a caller bug, which must never become a
 * saved hash state or a committed digest that does not describe the file. */
static int check_in_step(br_upload_t *u)
{
    if (u->hashed == u->size)
        return 0;
    br_error("storage: upload %s: %llu bytes written but %llu hashed; refusing to save", u->claim.uuid,
             (unsigned long long)u->size, (unsigned long long)u->hashed);
    return BR_E_INTERNAL;
}

static int sync_data(br_upload_t *u)
{
    if (!u->store->fsync)
        return 0;
    if (fdatasync(u->fd) != 0)
        return errno;
    if (!u->dir_synced) {
        if (fsync(u->store->uploads_fd) != 0)
            return errno;
        u->dir_synced = 1;
    }
    return 0;
}

int br_upload_save(br_upload_t *u)
{
    MDB_txn *txn = NULL;
    int ret;
    if (u->finished)
        return BR_E_BLOB_UPLOAD_UNKNOWN;
    if ((ret = check_in_step(u)) != 0)
        return ret;
    /* Data before record: the record must never claim bytes a crash can lose. */
    if ((ret = sync_data(u)) != 0)
        return ret;
    if ((ret = br_store_wtxn_begin(u->store, &txn)) != 0)
        return ret;
    ret = put_record(u, txn, 0);
    return br_store_wtxn_end(&txn, ret);
}

/* Digest of the upload's content under alg. */
static int upload_digest(br_upload_t *u, br_alg_t alg, br_digest_t *out)
{
    enum { CHUNK = 256 << 10 };
    br_hash_t h;
    char *buf;
    uint64_t off = 0;
    int ret = 0;
    if (alg == u->hash.alg) {
        br_hash_peek(&u->hash, out);
        return 0;
    }
    buf = br_malloc(CHUNK);
    br_hash_init(&h, alg);
    while (off < u->size) {
        size_t want = u->size - off < CHUNK ? (size_t)(u->size - off) : CHUNK;
        ssize_t n = pread(u->fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? errno : EIO;
            goto Exit;
        }
        br_hash_update(&h, buf, (size_t)n);
        off += (uint64_t)n;
    }
    br_hash_peek(&h, out);
Exit:
    free(buf);
    return ret;
}

int br_upload_commit(br_upload_t *u, const br_digest_t *expected, uint64_t *size)
{
    br_store_t *s = u->store;
    MDB_txn *txn = NULL;
    br_digest_t got;
    MDB_val k = uuid_key(u);
    br_str_t repo = br_str(u->repo, u->repo_len);
    int rc, ret;

    if (u->finished)
        return BR_E_BLOB_UPLOAD_UNKNOWN;
    if ((ret = check_in_step(u)) != 0)
        return ret;
    if ((ret = upload_digest(u, expected->alg, &got)) != 0)
        return ret;
    if (!br_digest_eq(&got, expected)) {
        if ((ret = session_remove(u)) != 0)
            return ret;
        u->finished = 1;
        return BR_E_DIGEST_INVALID;
    }
    if ((ret = sync_data(u)) != 0 || (ret = br_blob_place(s, expected, s->uploads_fd, u->claim.uuid, u->size)) != 0)
        return ret;
    /* One transaction: the blob appears, is linked and the session vanishes
     * together, so a crash shows either the session or the linked blob. */
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    br_blob_src_t src = {s->uploads_fd, u->claim.uuid, NULL, 0};
    if ((ret = br_txn_blob_record(s, txn, expected, u->size, &src)) != 0 || (ret = br_txn_link(s, txn, repo, expected)) != 0)
        goto Exit;
    if ((rc = mdb_del(txn, s->db_uploads, &k, NULL)) != 0 && rc != MDB_NOTFOUND) {
        ret = br_store_mdb_err(rc, "delete upload");
        goto Exit;
    }
    ret = br_store_wtxn_end(&txn, 0);
    if (ret != 0)
        goto Exit;
    unlinkat(s->uploads_fd, u->claim.uuid, 0);
    u->finished = 1;
    if (size != NULL)
        *size = u->size;
Exit:
    ret = br_store_wtxn_end(&txn, ret);
    /* The session stays: the client may commit again once there is room. */
    if (ret == BR_E_QUOTA)
        br_blob_unplace(s, expected);
    return ret;
}

int br_upload_cancel(br_upload_t *u)
{
    int ret;
    if (u->finished)
        return BR_E_BLOB_UPLOAD_UNKNOWN;
    if ((ret = session_remove(u)) == 0)
        u->finished = 1;
    return ret;
}

void br_upload_destroy(br_upload_t *u)
{
    if (u == NULL)
        return;
    if (u->fd >= 0)
        close(u->fd);
    br_store_unclaim(u->store, &u->claim);
    free(u);
}

/* ---- purge ------------------------------------------------------------------- */

typedef struct st_purge_list_t {
    br_claim_t *v;
    size_t n, cap;
} purge_list_t;

static void purge_add(purge_list_t *l, const char *uuid)
{
    if (l->n == l->cap) {
        l->cap = l->cap != 0 ? 2 * l->cap : 64;
        l->v = br_realloc(l->v, l->cap * sizeof(*l->v));
    }
    memset(&l->v[l->n], 0, sizeof(l->v[0]));
    memcpy(l->v[l->n++].uuid, uuid, BR_UUID_LEN);
}

/* Sessions older than the cutoff, from one read txn (no write lock held while scanning). */
static int purge_collect(br_store_t *s, uint64_t now, uint64_t max_age_s, purge_list_t *l)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    upload_hdr_t h;
    int rc, ret;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_cursor_open(txn, s->db_uploads, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "cursor open");
        goto Exit;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != BR_UUID_LEN || v.mv_size < sizeof(h))
            continue;
        memcpy(&h, v.mv_data, sizeof(h));
        if (now > h.started && now - h.started > max_age_s)
            purge_add(l, k.mv_data);
    }
    if (rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
Exit:
    if (cur != NULL)
        mdb_cursor_close(cur);
    br_store_rtxn_end(s, txn);
    return ret;
}

static int upload_recorded(br_store_t *s, const char *uuid)
{
    MDB_txn *txn;
    MDB_val k = {BR_UUID_LEN, (void *)uuid}, v;
    if (br_store_rtxn_begin(s, &txn) != 0)
        return 1; /* when in doubt, keep the file */
    int rc = mdb_get(txn, s->db_uploads, &k, &v);
    br_store_rtxn_end(s, txn);
    return rc != MDB_NOTFOUND;
}

/* Files named like sessions that no record names, older than the cutoff. */
static int purge_orphans(br_store_t *s, uint64_t now, uint64_t max_age_s)
{
    /* Its own descriptor: a directory stream's offset must not be shared. */
    int fd = openat(s->root_fd, "uploads", O_RDONLY | O_DIRECTORY | O_CLOEXEC), removed = 0;
    DIR *dir;
    struct dirent *e;
    struct stat st;
    br_claim_t c;
    if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    while ((e = readdir(dir)) != NULL) {
        if (!br_uuid_valid(br_cstr(e->d_name)) || fstatat(s->uploads_fd, e->d_name, &st, 0) != 0)
            continue;
        if (!((uint64_t)st.st_mtime < now && now - (uint64_t)st.st_mtime > max_age_s))
            continue;
        memset(&c, 0, sizeof(c));
        memcpy(c.uuid, e->d_name, BR_UUID_LEN);
        if (br_store_claim(s, &c) != 0)
            continue;
        if (!upload_recorded(s, c.uuid) && unlinkat(s->uploads_fd, c.uuid, 0) == 0)
            ++removed;
        br_store_unclaim(s, &c);
    }
    closedir(dir);
    return removed;
}

int br_upload_purge(br_store_t *s, uint64_t max_age_s)
{
    purge_list_t l = {NULL, 0, 0};
    MDB_txn *txn = NULL;
    uint64_t now = br_now();
    int rc, ret, removed = 0;
    size_t i;

    if ((ret = purge_collect(s, now, max_age_s, &l)) != 0)
        goto Exit;
    /* Claim each candidate (skipping live ones), then delete all their
     * records in one write txn, then their files. */
    for (i = 0; i < l.n; i++)
        if (br_store_claim(s, &l.v[i]) != 0)
            l.v[i].uuid[0] = '\0';
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        goto Exit;
    for (i = 0; i < l.n; i++) {
        MDB_val k = {BR_UUID_LEN, l.v[i].uuid};
        if (l.v[i].uuid[0] == '\0')
            continue;
        if ((rc = mdb_del(txn, s->db_uploads, &k, NULL)) == MDB_NOTFOUND) {
            l.v[i].uuid[BR_UUID_LEN] = 'x'; /* gone meanwhile: not ours to count */
            continue;
        }
        if (rc != 0) {
            ret = br_store_mdb_err(rc, "delete upload");
            goto Exit;
        }
    }
    ret = br_store_wtxn_end(&txn, 0);
    if (ret != 0)
        goto Exit;
    for (i = 0; i < l.n; i++) {
        if (l.v[i].uuid[0] == '\0' || l.v[i].uuid[BR_UUID_LEN] != '\0')
            continue;
        unlinkat(s->uploads_fd, l.v[i].uuid, 0);
        ++removed;
    }
    removed += purge_orphans(s, now, max_age_s);
Exit:
    ret = br_store_wtxn_end(&txn, ret);
    for (i = 0; i < l.n; i++)
        if (l.v[i].uuid[0] != '\0')
            br_store_unclaim(s, &l.v[i]);
    free(l.v);
    return ret != 0 ? ret : removed;
}
