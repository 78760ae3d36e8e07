/*
 * Usage per repository (berth du): the links of each repository, with their
 * blobs' sizes, split into bytes only that repository holds and bytes shared
 * with others (the holders table says which). One read txn: a consistent
 * snapshot, read-only, for a tool.
 */
#include <string.h>
#include "storage/internal.h"

/* Number of repositories holding packed digest pd, counting up to 2. */
static int holders_upto2(MDB_txn *txn, br_store_t *s, const unsigned char *pd, size_t len, int *n)
{
    MDB_cursor *cur;
    MDB_val k = {len, (void *)pd}, v;
    int rc;
    *n = 0;
    if ((rc = mdb_cursor_open(txn, s->db_holders, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && *n < 2; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= len || memcmp(k.mv_data, pd, len) != 0)
            break;
        ++*n;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : br_store_mdb_err(rc, "cursor walk");
}

int br_store_usage(br_store_t *s, br_repo_pred_cb match, void *mctx, br_usage_cb cb, void *ctx, br_usage_t *total)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    br_usage_t cur_repo;
    char name[BR_NAME_MAX];
    int rc, ret, in_group = 0, matched = 0;
    memset(total, 0, sizeof(*total));
    memset(&cur_repo, 0, sizeof(cur_repo));
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_cursor_open(txn, s->db_blobs, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "cursor open");
        goto Exit;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        br_blob_rec_t rec;
        if (br_blob_rec_read(&v, &rec) != 0 || (rec.flags & BR_BLOB_DYING))
            continue;
        total->blobs++;
        total->bytes += rec.size;
    }
    if (rc != MDB_NOTFOUND) {
        ret = br_store_mdb_err(rc, "cursor walk");
        goto Exit;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = mdb_cursor_open(txn, s->db_links, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "cursor open");
        goto Exit;
    }
    /* links are ordered by repository: one repository's rows are consecutive. */
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        br_str_t repo = br_str(NULL, 0);
        const unsigned char *pd = NULL;
        size_t n = 0;
        if (rc == 0 && (!br_key_split(&k, &repo, &pd, &n) || n == 0 || br_pdigest_len(pd[0]) != n || repo.len > sizeof(name)))
            continue;
        if (in_group && (rc != 0 || !br_str_eq(repo, cur_repo.repo))) {
            if (matched && (ret = cb(ctx, &cur_repo)) != 0)
                goto Exit;
            in_group = 0;
        }
        if (rc != 0)
            break;
        if (!in_group) {
            memcpy(name, repo.base, repo.len);
            memset(&cur_repo, 0, sizeof(cur_repo));
            cur_repo.repo = br_str(name, repo.len);
            in_group = 1;
            matched = match == NULL || match(mctx, cur_repo.repo);
        }
        if (!matched)
            continue;
        MDB_val bk = {n, (void *)pd}, bv;
        br_blob_rec_t rec;
        int holders;
        if (mdb_get(txn, s->db_blobs, &bk, &bv) != 0 || br_blob_rec_read(&bv, &rec) != 0)
            continue; /* damage: fsck's to report */
        if ((ret = holders_upto2(txn, s, pd, n, &holders)) != 0)
            goto Exit;
        cur_repo.blobs++;
        cur_repo.bytes += rec.size;
        if (holders > 1)
            cur_repo.shared_bytes += rec.size;
        else
            cur_repo.unique_bytes += rec.size;
    }
    if (rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
Exit:
    if (cur != NULL)
        mdb_cursor_close(cur);
    br_store_rtxn_end(s, txn);
    return ret;
}
