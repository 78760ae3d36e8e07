/*
 * Scrub: re-hashes stored blobs, one at a time, in index order from a cursor
 * the caller keeps (the server's scrub thread; storage.h). A blob whose file
 * no longer hashes to its digest, or whose file is gone, is quarantined: its
 * row gets BR_BLOB_QUARANTINED and every lookup treats it as absent, so it is
 * never served again (a GET is 404 BLOB_UNKNOWN and clients push it again,
 * which heals it). The file is hashed outside any txn; the quarantine txn
 * checks that the row is still the one hashed and that the file is still the
 * same inode, size and mtime, so a blob a writer placed again meanwhile is
 * not quarantined for the old file's faults.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "storage/internal.h"

/* The next blob row after the cursor (the first when it is empty). 1 found,
 * 0 at the end, or an error < 0. */
static int next_row(br_store_t *s, br_scrub_cursor_t *c, br_digest_t *d, br_blob_rec_t *rec)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k = {c->len, c->key}, v;
    int rc, ret;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_cursor_open(txn, s->db_blobs, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "cursor open");
        goto Exit;
    }
    rc = mdb_cursor_get(cur, &k, &v, c->len == 0 ? MDB_FIRST : MDB_SET_RANGE);
    if (rc == 0 && c->len != 0 && k.mv_size == c->len && memcmp(k.mv_data, c->key, c->len) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size > sizeof(c->key) || br_pdigest_unpack(k.mv_data, k.mv_size, d) != k.mv_size || br_blob_rec_read(&v, rec) != 0)
            continue; /* damage: fsck's to report */
        memcpy(c->key, k.mv_data, k.mv_size);
        c->len = k.mv_size;
        ret = 1;
        goto Exit;
    }
    ret = rc == MDB_NOTFOUND ? 0 : br_store_mdb_err(rc, "cursor walk");
Exit:
    if (cur != NULL)
        mdb_cursor_close(cur);
    br_store_rtxn_end(s, txn);
    return ret;
}

/* Quarantines d if its row and file are still those hashed (st; NULL: the
 * file was missing and must still be). */
static int quarantine(br_store_t *s, const br_digest_t *d, const struct stat *st, int *done)
{
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_txn *txn = NULL;
    MDB_val k = {br_pdigest_pack(d, pd), pd}, v;
    br_blob_rec_t rec;
    struct stat now;
    int rc, ret, dfd, have;
    *done = 0;
    if ((ret = br_blob_subdir(s, d, &dfd)) != 0 || (ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_get(txn, s->db_blobs, &k, &v)) != 0 || br_blob_rec_read(&v, &rec) != 0 ||
        (rec.flags & (BR_BLOB_DYING | BR_BLOB_QUARANTINED)))
        goto Exit;
    have = fstatat(dfd, d->hex, &now, 0) == 0;
    if (st == NULL ? have
                   : !have || now.st_ino != st->st_ino || now.st_size != st->st_size || now.st_mtim.tv_sec != st->st_mtim.tv_sec ||
                         now.st_mtim.tv_nsec != st->st_mtim.tv_nsec)
        goto Exit; /* placed again meanwhile: the next pass looks at the new file */
    rec.flags |= BR_BLOB_QUARANTINED;
    v.mv_size = sizeof(rec);
    v.mv_data = &rec;
    if ((rc = mdb_put(txn, s->db_blobs, &k, &v, 0)) != 0)
        ret = br_store_mdb_err(rc, "quarantine blob");
    else
        *done = 1;
Exit:
    ret = br_store_wtxn_end(&txn, ret);
    if (ret != 0)
        *done = 0;
    return ret;
}

int br_store_scrub(br_store_t *s, br_scrub_cursor_t *c, uint64_t budget, volatile int *cancel, br_scrub_stats_t *st)
{
    int ret = 0;
    memset(st, 0, sizeof(*st));
    while (st->bytes < budget || st->blobs == 0) {
        br_digest_t d, got;
        br_blob_rec_t rec;
        struct stat fst;
        char name[3 + 128 + 1];
        int fd, done, found;
        if (cancel != NULL && *cancel)
            return ECANCELED;
        if ((found = next_row(s, c, &d, &rec)) < 0)
            return found;
        if (found == 0) {
            c->len = 0;
            st->wrapped = 1;
            break;
        }
        if (rec.flags & (BR_BLOB_DYING | BR_BLOB_QUARANTINED))
            continue;
        snprintf(name, sizeof(name), "%.2s/%s", d.hex, d.hex);
        if ((fd = openat(s->blob_fd[d.alg], name, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &fst) != 0) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            if (err != ENOENT)
                continue; /* not the blob's fault: next pass */
            if ((ret = quarantine(s, &d, NULL, &done)) != 0)
                return ret;
            if (done) {
                br_error("scrub: blob %s:%s: file missing; quarantined (a push of it heals it)", br_alg_name(d.alg), d.hex);
                st->quarantined++;
            }
            continue;
        }
        ret = br_hash_fd(fd, d.alg, cancel, &got);
        close(fd);
        if (ret != 0)
            return ret == ECANCELED ? ret : 0; /* a read error: not a verdict on the content */
        st->blobs++;
        st->bytes += rec.size;
        if (br_digest_eq(&got, &d) && (uint64_t)fst.st_size == rec.size)
            continue;
        if ((ret = quarantine(s, &d, &fst, &done)) != 0)
            return ret;
        if (done) {
            br_error("scrub: blob %s:%s: content hashes to %s; quarantined, never served again (a push of it heals it)",
                     br_alg_name(d.alg), d.hex, got.hex);
            st->quarantined++;
        }
    }
    return 0;
}
