/*
 * Manifests, tags and referrers (schema in store.c).
 *
 * A manifest row keeps the references it counted, not the ones it was given:
 * a reference to a blob the index does not know is not counted, and delete
 * gives back exactly what put took, so counts stay exact even when a caller
 * passes something odd. Putting the same body again into the same repository
 * finds the row and counts nothing (idempotent); the same body in another
 * repository is another row and counts again, as deleting it there will
 * uncount.
 *
 * Every counted reference also has a refby row "repo \0 D(ref) D(manifest)",
 * so "does a manifest of repo reference D" is one prefix seek: the collector
 * asks it (inside its write txns) before it takes a link away. A reference
 * must be linked in the manifest's repository when the put's write txn runs,
 * else the put fails with BR_E_MANIFEST_BLOB_UNKNOWN: the collector removes
 * links and blobs in write txns too, so the put either sees the link (and its
 * refby row then keeps it) or fails cleanly; it never commits a reference to a
 * blob removed between the caller's check and the commit.
 *
 * Tags are kept twice, tags (repo, tag → D) for lookups and listings, and
 * mtags (repo, D, tag) so a manifest delete finds its tags with one seek
 * instead of scanning every tag of the repository. Both change in the same
 * transaction.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "storage/internal.h"

/* ---- tags ------------------------------------------------------------------ */

static void mtag_key(br_key_t *k, br_str_t repo, const unsigned char *pd, br_str_t tag)
{
    br_key_init(k, repo);
    br_key_add(k, pd, br_pdigest_len(pd[0]));
    br_key_add(k, tag.base, tag.len);
}

int br_tag_val_read(const MDB_val *v, size_t *pd_len, uint64_t *pushed_ms)
{
    size_t n = v->mv_size != 0 ? br_pdigest_len(((const unsigned char *)v->mv_data)[0]) : 0;
    *pd_len = n;
    *pushed_ms = 0;
    if (n == 0 || (v->mv_size != n && v->mv_size != n + sizeof(*pushed_ms)))
        return BR_E_CORRUPT;
    if (v->mv_size > n)
        memcpy(pushed_ms, (const unsigned char *)v->mv_data + n, sizeof(*pushed_ms));
    return 0;
}

int br_txn_tag_drop(br_store_t *s, MDB_txn *txn, br_str_t repo, br_str_t tag, const unsigned char *old_pd)
{
    br_key_t key;
    MDB_val k;
    int rc;
    mtag_key(&key, repo, old_pd, tag);
    k = br_key_val(&key);
    if ((rc = mdb_del(txn, s->db_mtags, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "delete tag index");
    br_key_init(&key, repo);
    br_key_add(&key, tag.base, tag.len);
    k = br_key_val(&key);
    if ((rc = mdb_del(txn, s->db_tags, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "delete tag");
    return 0;
}

/* Points tag at pd, moving it off its old target, inside the caller's txn:
 * readers see the old target or the new one, never neither. The push time
 * is renewed also when the target stays (a CI re-push keeps a tag young). */
static int txn_tag_set(br_store_t *s, MDB_txn *txn, br_str_t repo, br_str_t tag, const unsigned char *pd)
{
    unsigned char old[BR_PDIGEST_MAX], val[BR_PDIGEST_MAX + sizeof(uint64_t)];
    size_t pd_len = br_pdigest_len(pd[0]), old_len;
    uint64_t pushed = br_now_ms();
    br_key_t key;
    MDB_val k, v;
    int rc, ret;
    br_key_init(&key, repo);
    br_key_add(&key, tag.base, tag.len);
    k = br_key_val(&key);
    if ((rc = mdb_get(txn, s->db_tags, &k, &v)) == 0) {
        if (br_tag_val_read(&v, &old_len, &(uint64_t){0}) != 0)
            return BR_E_CORRUPT;
        memcpy(old, v.mv_data, old_len);
        if (!(old_len == pd_len && memcmp(old, pd, pd_len) == 0) && (ret = br_txn_tag_drop(s, txn, repo, tag, old)) != 0)
            return ret;
    } else if (rc != MDB_NOTFOUND) {
        return br_store_mdb_err(rc, "read tag");
    }
    memcpy(val, pd, pd_len);
    memcpy(val + pd_len, &pushed, sizeof(pushed));
    v.mv_size = pd_len + sizeof(pushed);
    v.mv_data = val;
    if ((rc = mdb_put(txn, s->db_tags, &k, &v, 0)) != 0)
        return br_store_mdb_err(rc, "write tag");
    mtag_key(&key, repo, pd, tag);
    k = br_key_val(&key);
    v.mv_size = 0;
    v.mv_data = NULL;
    if ((rc = mdb_put(txn, s->db_mtags, &k, &v, 0)) != 0)
        return br_store_mdb_err(rc, "write tag index");
    return 0;
}

/* ---- put ------------------------------------------------------------------- */

/* Appends s at *p (empty strings may have a NULL base, which memcpy must not see). */
static void put_str(unsigned char **p, br_str_t s)
{
    if (s.len != 0)
        memcpy(*p, s.base, s.len);
    *p += s.len;
}

/* Counts refs and writes the manifest row and its referrer row. */
static int txn_manifest_new(br_store_t *s, MDB_txn *txn, const br_manifest_put_t *m, MDB_val *mkey, const unsigned char *pd)
{
    unsigned char subj[BR_PDIGEST_MAX], one[BR_PDIGEST_MAX];
    size_t subj_len = m->subject != NULL ? br_pdigest_pack(m->subject, subj) : 0;
    size_t cap = sizeof(br_mani_hdr_t) + m->media_type.len + subj_len + m->num_refs * BR_PDIGEST_MAX;
    size_t rcap = sizeof(br_ref_hdr_t) + m->media_type.len + m->artifact_type.len + m->annotations.len;
    unsigned char *buf = br_malloc(cap > rcap ? cap : rcap), *p;
    br_mani_hdr_t h;
    MDB_val v;
    int rc, ret = 0, counted;

    memset(&h, 0, sizeof(h));
    h.size = m->body.len;
    h.mt_len = (uint16_t)m->media_type.len;
    h.subj_len = (uint8_t)subj_len;
    p = buf + sizeof(h);
    put_str(&p, m->media_type);
    memcpy(p, subj, subj_len);
    p += subj_len;
    for (size_t i = 0; i < m->num_refs; i++) {
        size_t n = br_pdigest_pack(&m->refs[i], one);
        br_key_t lk;
        MDB_val lv;
        br_key_init(&lk, m->repo);
        br_key_add(&lk, one, n);
        MDB_val lkv = br_key_val(&lk);
        if ((rc = mdb_get(txn, s->db_links, &lkv, &lv)) != 0) {
            ret = rc == MDB_NOTFOUND ? BR_E_MANIFEST_BLOB_UNKNOWN : br_store_mdb_err(rc, "read link");
            goto Exit;
        }
        if ((ret = br_txn_blob_ref(s, txn, one, 1, &counted, 0)) != 0)
            goto Exit;
        if (!counted) { /* linked but unrecorded: damage; refuse like a missing link */
            ret = BR_E_MANIFEST_BLOB_UNKNOWN;
            goto Exit;
        }
        memcpy(p, one, n);
        p += n;
        ++h.nrefs;
        br_key_add(&lk, pd, br_pdigest_len(pd[0]));
        lkv = br_key_val(&lk);
        lv.mv_size = 0;
        lv.mv_data = NULL;
        if ((rc = mdb_put(txn, s->db_refby, &lkv, &lv, 0)) != 0) {
            ret = br_store_mdb_err(rc, "write refby");
            goto Exit;
        }
    }
    memcpy(buf, &h, sizeof(h));
    v.mv_size = (size_t)(p - buf);
    v.mv_data = buf;
    if ((rc = mdb_put(txn, s->db_manifests, mkey, &v, 0)) != 0) {
        ret = br_store_mdb_err(rc, "write manifest");
        goto Exit;
    }
    if (m->subject != NULL) {
        br_ref_hdr_t r = {m->body.len, (uint16_t)m->media_type.len, (uint16_t)m->artifact_type.len, (uint32_t)m->annotations.len};
        br_key_t key;
        br_key_init(&key, m->repo);
        br_key_add(&key, subj, subj_len);
        br_key_add(&key, pd, br_pdigest_len(pd[0]));
        MDB_val k = br_key_val(&key);
        p = buf;
        memcpy(p, &r, sizeof(r));
        p += sizeof(r);
        put_str(&p, m->media_type);
        put_str(&p, m->artifact_type);
        put_str(&p, m->annotations);
        v.mv_size = (size_t)(p - buf);
        v.mv_data = buf;
        if ((rc = mdb_put(txn, s->db_referrers, &k, &v, 0)) != 0) {
            ret = br_store_mdb_err(rc, "write referrer");
            goto Exit;
        }
    }
Exit:
    free(buf);
    return ret;
}

int br_manifest_put(br_store_t *s, const br_manifest_put_t *m, br_digest_t *out)
{
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_txn *txn = NULL;
    br_digest_t d;
    br_key_t key;
    MDB_val k, v;
    int rc, ret;

    if (m->repo.len == 0 || m->repo.len > BR_NAME_MAX)
        return BR_E_NAME_INVALID;
    if (m->tag.len > BR_TAG_MAX)
        return BR_E_TAG_INVALID;
    if (m->media_type.len > 255 || m->artifact_type.len > UINT16_MAX || m->annotations.len > UINT32_MAX)
        return BR_E_MANIFEST_INVALID;
    br_hash_buf(m->alg, m->body.base, m->body.len, &d);
    /* The body file is written and durable before the txn that names it. */
    if ((ret = br_blob_store_buf(s, &d, m->body.base, m->body.len)) != 0)
        return ret;
    br_pdigest_pack(&d, pd);
    br_key_init(&key, m->repo);
    br_key_add_digest(&key, &d);
    k = br_key_val(&key);

    /* Blob, link, manifest row, counts, referrer and tag: one transaction. */
    br_blob_src_t src = {-1, NULL, m->body.base, m->body.len};
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if ((ret = br_txn_blob_record(s, txn, &d, m->body.len, &src)) != 0 || (ret = br_txn_link(s, txn, m->repo, &d)) != 0)
        goto Exit;
    if ((rc = mdb_get(txn, s->db_manifests, &k, &v)) == MDB_NOTFOUND) {
        if ((ret = txn_manifest_new(s, txn, m, &k, pd)) != 0)
            goto Exit;
    } else if (rc != 0) {
        ret = br_store_mdb_err(rc, "read manifest");
        goto Exit;
    }
    if (m->tag.len != 0 && m->tag_immutable) {
        br_key_t tk;
        br_key_init(&tk, m->repo);
        br_key_add(&tk, m->tag.base, m->tag.len);
        MDB_val tkv = br_key_val(&tk), tv;
        size_t pl = br_pdigest_len(pd[0]), tl;
        uint64_t pushed;
        if ((rc = mdb_get(txn, s->db_tags, &tkv, &tv)) == 0 &&
            (br_tag_val_read(&tv, &tl, &pushed) != 0 || !(tl == pl && memcmp(tv.mv_data, pd, pl) == 0))) {
            ret = BR_E_DENIED;
            goto Exit;
        }
        if (rc != 0 && rc != MDB_NOTFOUND) {
            ret = br_store_mdb_err(rc, "read tag");
            goto Exit;
        }
    }
    if (m->tag.len != 0 && (ret = txn_tag_set(s, txn, m->repo, m->tag, pd)) != 0)
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

/* ---- get ------------------------------------------------------------------- */

int br_manifest_get(br_store_t *s, br_str_t repo, br_str_t reference, br_manifest_rec_t *rec)
{
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_txn *txn;
    br_digest_t d;
    br_key_t key;
    br_mani_view_t mv;
    MDB_val k, v;
    int rc, ret, by_digest = reference.len != 0 && memchr(reference.base, ':', reference.len) != NULL;

    if (by_digest) {
        if ((ret = br_digest_parse(&d, reference)) != 0)
            return ret;
        br_pdigest_pack(&d, pd);
    } else if (reference.len == 0 || reference.len > BR_TAG_MAX) {
        return BR_E_MANIFEST_UNKNOWN; /* can name no stored tag */
    }
    if (repo.len == 0 || repo.len > BR_NAME_MAX)
        return BR_E_MANIFEST_UNKNOWN;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    if (!by_digest) {
        br_key_init(&key, repo);
        br_key_add(&key, reference.base, reference.len);
        k = br_key_val(&key);
        if ((rc = mdb_get(txn, s->db_tags, &k, &v)) != 0) {
            ret = rc == MDB_NOTFOUND ? BR_E_MANIFEST_UNKNOWN : br_store_mdb_err(rc, "read tag");
            goto Exit;
        }
        size_t pl;
        uint64_t pushed;
        if (br_tag_val_read(&v, &pl, &pushed) != 0 || br_pdigest_unpack(v.mv_data, pl, &d) != pl) {
            ret = BR_E_CORRUPT;
            goto Exit;
        }
        memcpy(pd, v.mv_data, pl);
    }
    br_key_init(&key, repo);
    br_key_add(&key, pd, br_pdigest_len(pd[0]));
    k = br_key_val(&key);
    if ((rc = mdb_get(txn, s->db_manifests, &k, &v)) != 0) {
        ret = rc == MDB_NOTFOUND ? BR_E_MANIFEST_UNKNOWN : br_store_mdb_err(rc, "read manifest");
        goto Exit;
    }
    if ((ret = br_mani_parse(v.mv_data, v.mv_size, &mv)) != 0)
        goto Exit;
    rec->digest = d;
    rec->size = mv.h.size;
    memcpy(rec->media_type, mv.media_type, mv.h.mt_len);
    rec->media_type[mv.h.mt_len] = '\0';
Exit:
    br_store_rtxn_end(s, txn);
    return ret;
}

/* ---- delete ------------------------------------------------------------------ */

/* Removes every tag that points at pd in repo. Re-seeks after each delete
 * rather than trusting a cursor across deletes in other tables. */
static int txn_tags_drop_all(br_store_t *s, MDB_txn *txn, br_str_t repo, const unsigned char *pd)
{
    char tag[BR_TAG_MAX];
    br_key_t prefix;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, ret = 0;
    br_key_init(&prefix, repo);
    br_key_add(&prefix, pd, br_pdigest_len(pd[0]));
    if ((rc = mdb_cursor_open(txn, s->db_mtags, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (;;) {
        k = br_key_val(&prefix);
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) == MDB_NOTFOUND)
            break;
        if (rc != 0) {
            ret = br_store_mdb_err(rc, "cursor seek");
            goto Exit;
        }
        if (k.mv_size <= prefix.len || memcmp(k.mv_data, prefix.buf, prefix.len) != 0)
            break;
        size_t n = k.mv_size - prefix.len;
        if (n > sizeof(tag)) {
            ret = BR_E_CORRUPT;
            goto Exit;
        }
        memcpy(tag, (const char *)k.mv_data + prefix.len, n);
        if ((ret = br_txn_tag_drop(s, txn, repo, br_str(tag, n), pd)) != 0)
            goto Exit;
    }
Exit:
    mdb_cursor_close(cur);
    return ret;
}

int br_txn_has_prefix(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t len)
{
    MDB_cursor *cur;
    MDB_val k = {len, (void *)prefix}, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return br_store_mdb_err(rc, "cursor open");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return br_store_mdb_err(rc, "cursor seek");
    return k.mv_size >= len && memcmp(k.mv_data, prefix, len) == 0;
}

int br_txn_manifest_delete(br_store_t *s, MDB_txn *txn, br_str_t repo, const unsigned char *pd, uint64_t when)
{
    unsigned char *row = NULL;
    size_t pl = br_pdigest_len(pd[0]);
    br_digest_t d;
    br_key_t key;
    br_mani_view_t mv;
    MDB_val k, v;
    int rc, ret;

    br_pdigest_unpack(pd, pl, &d);
    br_key_init(&key, repo);
    br_key_add(&key, pd, pl);
    k = br_key_val(&key);
    if ((rc = mdb_get(txn, s->db_manifests, &k, &v)) != 0)
        return rc == MDB_NOTFOUND ? BR_E_MANIFEST_UNKNOWN : br_store_mdb_err(rc, "read manifest");
    /* Data returned inside a write txn moves when the txn writes: copy it. */
    size_t row_len = v.mv_size;
    row = br_malloc(row_len);
    memcpy(row, v.mv_data, row_len);
    if ((ret = br_mani_parse(row, row_len, &mv)) != 0)
        goto Exit;
    if ((rc = mdb_del(txn, s->db_manifests, &k, NULL)) != 0) {
        ret = br_store_mdb_err(rc, "delete manifest");
        goto Exit;
    }
    for (const unsigned char *r = mv.refs; r < row + row_len; r += br_pdigest_len(r[0])) {
        br_key_t rb;
        br_key_init(&rb, repo);
        br_key_add(&rb, r, br_pdigest_len(r[0]));
        br_key_add(&rb, pd, pl);
        MDB_val rbk = br_key_val(&rb);
        /* A digest referenced twice has one refby row: the second delete finds none. */
        if ((rc = mdb_del(txn, s->db_refby, &rbk, NULL)) != 0 && rc != MDB_NOTFOUND) {
            ret = br_store_mdb_err(rc, "delete refby");
            goto Exit;
        }
        if ((ret = br_txn_blob_ref(s, txn, r, -1, NULL, when)) != 0)
            goto Exit;
    }
    if (mv.subject != NULL) {
        br_key_t rkey;
        br_key_init(&rkey, repo);
        br_key_add(&rkey, mv.subject, mv.h.subj_len);
        br_key_add(&rkey, pd, pl);
        MDB_val rk = br_key_val(&rkey);
        if ((rc = mdb_del(txn, s->db_referrers, &rk, NULL)) != 0 && rc != MDB_NOTFOUND) {
            ret = br_store_mdb_err(rc, "delete referrer");
            goto Exit;
        }
    }
    if ((ret = txn_tags_drop_all(s, txn, repo, pd)) != 0)
        goto Exit;
    /* put linked the body into the repository; the manifest going takes that
     * link with it, so the body's count can reach zero for the collector. */
    if ((ret = br_txn_unlink(s, txn, repo, &d, when)) == BR_E_BLOB_UNKNOWN)
        ret = 0;
Exit:
    free(row);
    return ret;
}

/* BR_E_DENIED when keep accepts a tag naming manifest pd of repo. */
static int txn_tags_keep(br_store_t *s, MDB_txn *txn, br_str_t repo, const unsigned char *pd, br_name_cb keep, void *ctx)
{
    br_key_t prefix;
    MDB_cursor *cur;
    br_key_init(&prefix, repo);
    br_key_add(&prefix, pd, br_pdigest_len(pd[0]));
    MDB_val k = br_key_val(&prefix), v;
    int rc, ret = 0;
    if ((rc = mdb_cursor_open(txn, s->db_mtags, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= prefix.len || memcmp(k.mv_data, prefix.buf, prefix.len) != 0)
            break;
        if (keep(ctx, br_str((const char *)k.mv_data + prefix.len, k.mv_size - prefix.len)) != 0) {
            ret = BR_E_DENIED;
            break;
        }
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    mdb_cursor_close(cur);
    return ret;
}

int br_manifest_delete_unless(br_store_t *s, br_str_t repo, const br_digest_t *d, br_name_cb keep, void *ctx)
{
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_txn *txn = NULL;
    int ret;

    if (repo.len == 0 || repo.len > BR_NAME_MAX)
        return BR_E_MANIFEST_UNKNOWN;
    br_pdigest_pack(d, pd);
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if (keep == NULL || (ret = txn_tags_keep(s, txn, repo, pd, keep, ctx)) == 0)
        ret = br_txn_manifest_delete(s, txn, repo, pd, 0);
    return br_store_wtxn_end(&txn, ret);
}

int br_manifest_delete(br_store_t *s, br_str_t repo, const br_digest_t *d)
{
    return br_manifest_delete_unless(s, repo, d, NULL, NULL);
}

int br_tag_delete(br_store_t *s, br_str_t repo, br_str_t tag)
{
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_txn *txn = NULL;
    br_key_t key;
    MDB_val k, v;
    int rc, ret;
    if (repo.len == 0 || repo.len > BR_NAME_MAX || tag.len == 0 || tag.len > BR_TAG_MAX)
        return BR_E_MANIFEST_UNKNOWN;
    br_key_init(&key, repo);
    br_key_add(&key, tag.base, tag.len);
    k = br_key_val(&key);
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_get(txn, s->db_tags, &k, &v)) != 0) {
        ret = rc == MDB_NOTFOUND ? BR_E_MANIFEST_UNKNOWN : br_store_mdb_err(rc, "read tag");
        goto Exit;
    }
    size_t pl;
    uint64_t pushed;
    if (br_tag_val_read(&v, &pl, &pushed) != 0) {
        ret = BR_E_CORRUPT;
        goto Exit;
    }
    memcpy(pd, v.mv_data, pl);
    ret = br_txn_tag_drop(s, txn, repo, tag, pd);
Exit:
    return br_store_wtxn_end(&txn, ret);
}

/* ---- listings ---------------------------------------------------------------- */

int br_tag_list(br_store_t *s, br_str_t repo, br_str_t last, size_t n, br_name_cb cb, void *ctx, int *more)
{
    MDB_txn *txn;
    br_key_t prefix;
    MDB_val k = {repo.len, (void *)repo.base}, v;
    int rc, ret;
    *more = 0;
    if (repo.len == 0 || repo.len > BR_NAME_MAX)
        return BR_E_NAME_UNKNOWN;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_get(txn, s->db_repos, &k, &v)) != 0) {
        ret = rc == MDB_NOTFOUND ? BR_E_NAME_UNKNOWN : br_store_mdb_err(rc, "read repository");
        goto Exit;
    }
    br_key_init(&prefix, repo);
    ret = br_store_scan(txn, s->db_tags, prefix.buf, prefix.len, last, n, cb, ctx, more);
Exit:
    br_store_rtxn_end(s, txn);
    return ret;
}

int br_referrers_list(br_store_t *s, br_str_t repo, const br_digest_t *subject, br_referrer_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    br_key_t prefix;
    MDB_val k, v;
    int rc, ret;
    if (repo.len == 0 || repo.len > BR_NAME_MAX)
        return 0;
    br_key_init(&prefix, repo);
    br_key_add_digest(&prefix, subject);
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_cursor_open(txn, s->db_referrers, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "cursor open");
        goto Exit;
    }
    k = br_key_val(&prefix);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        br_referrer_t r;
        br_ref_hdr_t h;
        if (k.mv_size <= prefix.len || memcmp(k.mv_data, prefix.buf, prefix.len) != 0)
            break;
        size_t tail = k.mv_size - prefix.len;
        if (br_pdigest_unpack((const unsigned char *)k.mv_data + prefix.len, tail, &r.digest) != tail || v.mv_size < sizeof(h)) {
            ret = BR_E_CORRUPT;
            goto Exit;
        }
        memcpy(&h, v.mv_data, sizeof(h));
        if (v.mv_size != sizeof(h) + h.mt_len + h.at_len + (size_t)h.ann_len) {
            ret = BR_E_CORRUPT;
            goto Exit;
        }
        const char *p = (const char *)v.mv_data + sizeof(h);
        r.size = h.size;
        r.media_type = br_str(p, h.mt_len);
        r.artifact_type = br_str(p + h.mt_len, h.at_len);
        r.annotations = br_str(p + h.mt_len + h.at_len, h.ann_len);
        if (cb(ctx, &r) != 0)
            break;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
Exit:
    if (cur != NULL)
        mdb_cursor_close(cur);
    br_store_rtxn_end(s, txn);
    return ret;
}
