/*
 * Quotas (storage.h): the scope list in meta "quotas", one usage counter per
 * scope in qusage, both kept by the write txns that change links.
 *
 * Counting each blob once per scope: when (repo, D) is linked, every scope
 * matching repo gains D's size unless another repository of that scope
 * already holds D (the holders rows of D, read before repo's own is
 * written); an unlink gives it back unless another holder in the scope
 * remains (read after repo's row is gone). A blob's size is that of its
 * blob row, which stays the same while any link names it: rows are deleted
 * only at reference count 0 (no links), and a dying row, the only kind that
 * is revived with new content, has no links either. So the counters equal
 * what scope_usage computes from the links, at every commit.
 */
#include <stdlib.h>
#include <string.h>
#include "storage/internal.h"

#define BR_META_QUOTAS "quotas"

typedef struct st_scope_t {
    uint64_t max;
    br_str_t glob; /* into quota_list_t.raw */
} scope_t;

static MDB_val quotas_key(void)
{
    MDB_val k = {sizeof(BR_META_QUOTAS) - 1, (void *)BR_META_QUOTAS};
    return k;
}

/* The recorded list, copied out of the txn: LMDB's pointers into a write
 * txn's pages last only until its next write. */
#define QUOTAS_ROW_MAX (sizeof(uint32_t) + BR_QUOTA_MAX * (sizeof(uint64_t) + sizeof(uint16_t) + BR_NAME_MAX))
typedef struct st_quota_list_t {
    scope_t q[BR_QUOTA_MAX];
    size_t n;
    unsigned char raw[QUOTAS_ROW_MAX];
} quota_list_t;

static int quotas_read(br_store_t *s, MDB_txn *txn, quota_list_t *l, size_t *n)
{
    MDB_val k = quotas_key(), v;
    uint32_t count;
    scope_t *q = l->q;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    l->n = *n = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return br_store_mdb_err(rc, "read quotas");
    if (v.mv_size < sizeof(count) || v.mv_size > sizeof(l->raw))
        goto Corrupt;
    memcpy(l->raw, v.mv_data, v.mv_size);
    const unsigned char *p = l->raw, *end = p + v.mv_size;
    memcpy(&count, p, sizeof(count));
    p += sizeof(count);
    if (count > BR_QUOTA_MAX)
        goto Corrupt;
    for (uint32_t i = 0; i < count; i++) {
        uint16_t len;
        if ((size_t)(end - p) < sizeof(uint64_t) + sizeof(len))
            goto Corrupt;
        memcpy(&q[i].max, p, sizeof(uint64_t));
        memcpy(&len, p + sizeof(uint64_t), sizeof(len));
        p += sizeof(uint64_t) + sizeof(len);
        if ((size_t)(end - p) < len || len > BR_NAME_MAX)
            goto Corrupt;
        q[i].glob = br_str((const char *)p, len);
        p += len;
    }
    if (p != end)
        goto Corrupt;
    l->n = *n = count;
    return 0;
Corrupt:
    br_error("storage: malformed quota list in the index");
    return BR_E_CORRUPT;
}

static int usage_get(br_store_t *s, MDB_txn *txn, br_str_t glob, uint64_t *used, int *found)
{
    MDB_val k = {glob.len, (void *)glob.base}, v;
    int rc = mdb_get(txn, s->db_qusage, &k, &v);
    *used = 0;
    if (found != NULL)
        *found = rc == 0;
    if (rc == 0 && v.mv_size == sizeof(*used))
        memcpy(used, v.mv_data, sizeof(*used));
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "read quota usage");
    return 0;
}

static int usage_put(br_store_t *s, MDB_txn *txn, br_str_t glob, uint64_t used)
{
    MDB_val k = {glob.len, (void *)glob.base}, v = {sizeof(used), &used};
    int rc = mdb_put(txn, s->db_qusage, &k, &v, 0);
    return rc == 0 ? 0 : br_store_mdb_err(rc, "write quota usage");
}

/* The size a link of pd adds to a scope: its blob row's (0 when it has none
 * or is dying: then no link can name it). *stored says whether it has a live
 * row. */
static int blob_size(br_store_t *s, MDB_txn *txn, const unsigned char *pd, uint64_t *size, int *stored)
{
    MDB_val k = {br_pdigest_len(pd[0]), (void *)pd}, v;
    br_blob_rec_t rec;
    int rc = mdb_get(txn, s->db_blobs, &k, &v), ret;
    *size = 0;
    *stored = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return br_store_mdb_err(rc, "read blob");
    if ((ret = br_blob_rec_read(&v, &rec)) != 0)
        return ret;
    if (!(rec.flags & BR_BLOB_DYING)) {
        *size = rec.size;
        *stored = 1;
    }
    return 0;
}

static void deny_fill(br_quota_t *deny, br_str_t glob, uint64_t max, uint64_t used, uint64_t need)
{
    if (deny == NULL)
        return;
    memcpy(deny->glob, glob.base, glob.len);
    deny->glob[glob.len] = '\0';
    deny->max_bytes = max;
    deny->used_bytes = used;
    deny->need_bytes = need;
}

static int over(uint64_t used, uint64_t add, uint64_t max)
{
    return add > max || used > max - add;
}

/* The scopes matching repo that a link of pd (size bytes) into it changes:
 * those no other holder of pd in the scope already counts. With delta +1
 * checks each limit (BR_E_QUOTA, *deny filled); with write, stores the new
 * counts. */
static int scopes_apply(br_store_t *s, MDB_txn *txn, br_str_t repo, const unsigned char *pd, uint64_t size, int delta,
                        int write, br_quota_t *deny)
{
    quota_list_t l;
    scope_t *q = l.q;
    unsigned char pending[BR_QUOTA_MAX];
    size_t n, left = 0, plen = br_pdigest_len(pd[0]);
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, ret;
    if (size == 0)
        return 0;
    if ((ret = quotas_read(s, txn, &l, &n)) != 0 || n == 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        pending[i] = q[i].glob.len != 0 && br_glob_match(q[i].glob.base, q[i].glob.len, repo.base, repo.len);
        left += pending[i];
    }
    if (left == 0)
        return 0;
    if ((rc = mdb_cursor_open(txn, s->db_holders, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    k.mv_size = plen;
    k.mv_data = (void *)pd;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && left != 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= plen || memcmp(k.mv_data, pd, plen) != 0)
            break;
        br_str_t h = br_str((const char *)k.mv_data + plen, k.mv_size - plen);
        if (br_str_eq(h, repo))
            continue;
        for (size_t i = 0; i < n; i++) {
            if (pending[i] && br_glob_match(q[i].glob.base, q[i].glob.len, h.base, h.len)) {
                pending[i] = 0;
                --left;
            }
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "cursor walk");
    for (size_t i = 0; i < n && left != 0; i++) {
        uint64_t used;
        if (!pending[i])
            continue;
        if ((ret = usage_get(s, txn, q[i].glob, &used, NULL)) != 0)
            return ret;
        if (delta > 0 && over(used, size, q[i].max)) {
            deny_fill(deny, q[i].glob, q[i].max, used, size);
            return BR_E_QUOTA;
        }
        used = delta > 0 ? used + size : used > size ? used - size : 0;
        if (write && (ret = usage_put(s, txn, q[i].glob, used)) != 0)
            return ret;
    }
    return 0;
}

int br_txn_quota_link(br_store_t *s, MDB_txn *txn, br_str_t repo, const unsigned char *pd, int delta)
{
    uint64_t size;
    int stored, ret;
    MDB_val k = quotas_key(), v;
    /* The common case, no quotas, costs one lookup. */
    if (mdb_get(txn, s->db_meta, &k, &v) == MDB_NOTFOUND)
        return 0;
    if ((ret = blob_size(s, txn, pd, &size, &stored)) != 0)
        return ret;
    return scopes_apply(s, txn, repo, pd, size, delta, 1, NULL);
}

/* The global limit of the recorded list: BR_E_QUOTA when add more bytes take
 * the store over it. */
static int store_check(br_store_t *s, MDB_txn *txn, uint64_t add, br_quota_t *deny)
{
    quota_list_t l;
    scope_t *q = l.q;
    size_t n;
    uint64_t used;
    int ret;
    if (add == 0)
        return 0;
    if ((ret = quotas_read(s, txn, &l, &n)) != 0)
        return ret;
    for (size_t i = 0; i < n; i++) {
        if (q[i].glob.len != 0)
            continue;
        if ((ret = br_txn_blob_bytes(s, txn, &used)) != 0)
            return ret;
        if (over(used, add, q[i].max)) {
            deny_fill(deny, q[i].glob, q[i].max, used, add);
            return BR_E_QUOTA;
        }
    }
    return 0;
}

int br_txn_quota_store(br_store_t *s, MDB_txn *txn, uint64_t add)
{
    return store_check(s, txn, add, NULL);
}

/* ---- recomputing ------------------------------------------------------------ */

/* Bytes of the distinct blobs linked into the repositories glob matches:
 * the repositories from the catalog, their links a prefix scan each. */
static int scope_usage(br_store_t *s, MDB_txn *txn, br_str_t glob, uint64_t *used)
{
    MDB_cursor *rc_cur = NULL, *lc = NULL;
    MDB_val k, v;
    br_pd_t *pds = NULL;
    size_t npd = 0, cap = 0;
    int rc, ret = 0;
    *used = 0;
    if ((rc = mdb_cursor_open(txn, s->db_repos, &rc_cur)) != 0 || (rc = mdb_cursor_open(txn, s->db_links, &lc)) != 0) {
        ret = br_store_mdb_err(rc, "cursor open");
        goto Exit;
    }
    for (rc = mdb_cursor_get(rc_cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(rc_cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size > BR_NAME_MAX || !br_glob_match(glob.base, glob.len, k.mv_data, k.mv_size))
            continue;
        br_key_t key;
        br_key_init(&key, br_str(k.mv_data, k.mv_size));
        MDB_val lk = br_key_val(&key), lv;
        int lrc;
        for (lrc = mdb_cursor_get(lc, &lk, &lv, MDB_SET_RANGE); lrc == 0; lrc = mdb_cursor_get(lc, &lk, &lv, MDB_NEXT)) {
            if (lk.mv_size <= key.len || memcmp(lk.mv_data, key.buf, key.len) != 0)
                break;
            const unsigned char *pd = (const unsigned char *)lk.mv_data + key.len;
            if (br_pdigest_len(pd[0]) == lk.mv_size - key.len)
                br_pd_push(&pds, &npd, &cap, pd);
        }
        if (lrc != 0 && lrc != MDB_NOTFOUND) {
            ret = br_store_mdb_err(lrc, "cursor walk");
            goto Exit;
        }
    }
    if (rc != MDB_NOTFOUND) {
        ret = br_store_mdb_err(rc, "cursor walk");
        goto Exit;
    }
    if (npd != 0)
        qsort(pds, npd, sizeof(*pds), br_pd_cmp);
    for (size_t i = 0; i < npd; i++) {
        uint64_t size;
        int stored;
        if (i != 0 && br_pd_cmp(&pds[i - 1], &pds[i]) == 0)
            continue;
        if ((ret = blob_size(s, txn, pds[i].b, &size, &stored)) != 0)
            goto Exit;
        *used += size;
    }
Exit:
    if (lc != NULL)
        mdb_cursor_close(lc);
    if (rc_cur != NULL)
        mdb_cursor_close(rc_cur);
    free(pds);
    return ret;
}

static int listed(const br_quota_t *q, size_t n, br_str_t glob)
{
    for (size_t i = 0; i < n; i++)
        if (br_str_eq(br_cstr(q[i].glob), glob))
            return 1;
    return 0;
}

int br_store_quotas_set(br_store_t *s, const br_quota_t *q, size_t n, int recompute_all)
{
    quota_list_t ol;
    scope_t *old = ol.q;
    unsigned char recompute[BR_QUOTA_MAX];
    size_t nold, len = sizeof(uint32_t);
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char *buf = NULL;
    int rc, ret;
    if (n > BR_QUOTA_MAX)
        return BR_E_CONFIG;
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if ((ret = quotas_read(s, txn, &ol, &nold)) != 0)
        goto Exit;
    /* Decided before anything is written: old's globs point into pages
     * the writes below may move. */
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < nold && !found; j++)
            found = br_str_eq(old[j].glob, br_cstr(q[i].glob));
        recompute[i] = q[i].glob[0] != '\0' && (recompute_all || !found);
    }
    if ((rc = mdb_cursor_open(txn, s->db_qusage, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "cursor open");
        goto Exit;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!listed(q, n, br_str(k.mv_data, k.mv_size)) && (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        ret = br_store_mdb_err(rc, "remove quota usage");
        goto Exit;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t used;
        int found;
        br_str_t glob = br_cstr(q[i].glob);
        len += sizeof(uint64_t) + sizeof(uint16_t) + glob.len;
        if (glob.len == 0)
            continue;
        /* A listed scope without its counter is recomputed too. */
        if (!recompute[i] && ((ret = usage_get(s, txn, glob, &used, &found)) != 0 || found))
            continue;
        if ((ret = scope_usage(s, txn, glob, &used)) != 0 || (ret = usage_put(s, txn, glob, used)) != 0)
            goto Exit;
    }
    k = quotas_key();
    if (n == 0) {
        if ((rc = mdb_del(txn, s->db_meta, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
            ret = br_store_mdb_err(rc, "remove quotas");
        goto Exit;
    }
    buf = br_malloc(len);
    unsigned char *p = buf;
    uint32_t count = (uint32_t)n;
    memcpy(p, &count, sizeof(count));
    p += sizeof(count);
    for (size_t i = 0; i < n; i++) {
        uint16_t gl = (uint16_t)strlen(q[i].glob);
        memcpy(p, &q[i].max_bytes, sizeof(uint64_t));
        memcpy(p + sizeof(uint64_t), &gl, sizeof(gl));
        p += sizeof(uint64_t) + sizeof(gl);
        memcpy(p, q[i].glob, gl);
        p += gl;
    }
    v.mv_size = len;
    v.mv_data = buf;
    if ((rc = mdb_put(txn, s->db_meta, &k, &v, 0)) != 0)
        ret = br_store_mdb_err(rc, "write quotas");
Exit:
    free(buf);
    return br_store_wtxn_end(&txn, ret);
}

int br_txn_quota_each(br_store_t *s, MDB_txn *txn, br_quota_check_cb cb, void *ctx)
{
    quota_list_t l;
    scope_t *q = l.q;
    size_t n;
    int ret = quotas_read(s, txn, &l, &n);
    for (size_t i = 0; i < n && ret == 0; i++) {
        uint64_t kept, actual;
        if (q[i].glob.len == 0)
            continue; /* the store's byte total: verified with the blob rows */
        if ((ret = usage_get(s, txn, q[i].glob, &kept, NULL)) != 0 || (ret = scope_usage(s, txn, q[i].glob, &actual)) != 0)
            break;
        ret = cb(ctx, q[i].glob, kept, actual);
    }
    return ret;
}

int br_store_quotas_recount(br_store_t *s)
{
    quota_list_t l;
    scope_t *q = l.q;
    MDB_txn *txn = NULL;
    size_t n;
    int ret;
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if ((ret = quotas_read(s, txn, &l, &n)) != 0)
        goto Exit;
    for (size_t i = 0; i < n && ret == 0; i++) {
        uint64_t used;
        if (q[i].glob.len != 0 && (ret = scope_usage(s, txn, q[i].glob, &used)) == 0)
            ret = usage_put(s, txn, q[i].glob, used);
    }
Exit:
    return br_store_wtxn_end(&txn, ret);
}

int br_store_quotas_get(br_store_t *s, br_quota_t *out, size_t cap, size_t *n)
{
    quota_list_t l;
    scope_t *q = l.q;
    MDB_txn *txn;
    size_t count = 0;
    int ret;
    *n = 0;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    if ((ret = quotas_read(s, txn, &l, &count)) != 0)
        goto Exit;
    for (size_t i = 0; i < count && i < cap && ret == 0; i++) {
        deny_fill(&out[i], q[i].glob, q[i].max, 0, 0);
        ret = q[i].glob.len == 0 ? br_txn_blob_bytes(s, txn, &out[i].used_bytes)
                                 : usage_get(s, txn, q[i].glob, &out[i].used_bytes, NULL);
    }
    *n = count;
Exit:
    br_store_rtxn_end(s, txn);
    return ret;
}

int br_store_quota_usage(br_store_t *s, br_quota_t *q, size_t n)
{
    MDB_txn *txn;
    int ret;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    for (size_t i = 0; i < n && ret == 0; i++)
        ret = q[i].glob[0] == '\0' ? br_txn_blob_bytes(s, txn, &q[i].used_bytes)
                                   : scope_usage(s, txn, br_cstr(q[i].glob), &q[i].used_bytes);
    br_store_rtxn_end(s, txn);
    return ret;
}

int br_store_quota_explain(br_store_t *s, br_str_t repo, const br_digest_t *d, uint64_t size, br_quota_t *out)
{
    unsigned char pd[BR_PDIGEST_MAX];
    br_key_t key;
    MDB_txn *txn;
    MDB_val k, v;
    uint64_t have;
    int stored, rc, ret;
    br_pdigest_pack(d, pd);
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    /* The checks of a push's write txn, in its order, writing nothing. */
    if ((ret = blob_size(s, txn, pd, &have, &stored)) != 0 || (!stored && (ret = store_check(s, txn, size, out)) != 0))
        goto Exit;
    br_key_init(&key, repo);
    br_key_add(&key, pd, br_pdigest_len(pd[0]));
    k = br_key_val(&key);
    if ((rc = mdb_get(txn, s->db_links, &k, &v)) == 0)
        goto Exit; /* linked already: adds nothing */
    ret = scopes_apply(s, txn, repo, pd, stored ? have : size, 1, 0, out);
Exit:
    br_store_rtxn_end(s, txn);
    return ret;
}
