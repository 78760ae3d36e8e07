/*
 * The store: directory tree, LMDB environment, shared helpers, repositories,
 * and the consistency check.
 *
 * Index schema (one LMDB environment in <root>/index, named sub-databases).
 * D is a packed digest (internal.h: algorithm byte + raw hash, 33 or 65
 * bytes); repository names never contain NUL, so "repo\0" is an exact prefix.
 *
 *   meta       "version"                → u32 schema version (4)
 *              "links_epoch"            → u64 when the index became version 3
 *   repos      repo                     → empty          catalog, ordered by name
 *   blobs      D                        → {u64 size, u64 refs, u64 unref_at, u64 flags}
 *                                          (24 bytes, no flags, when written before 3)
 *   links      repo \0 D                → u64 linked_at  repo may serve blob D (empty
 *                                                        before 3: links_epoch)
 *   holders    D repo                   → empty          reverse of links: the
 *                                                        repositories holding D are
 *                                                        a prefix scan (automatic
 *                                                        cross-repository mount)
 *   manifests  repo \0 D                → {u64 size, u32 nrefs, u16 mt_len, u8 subj_len, u8 0}
 *                                          media type, subject D, counted refs D...
 *   tags       repo \0 tag              → D u64 pushed_ms  tag list = prefix scan; when a
 *                                                        manifest put last named the tag
 *                                                        (D alone before 4: br_tag_val_read)
 *   mtags      repo \0 D tag            → empty          reverse of tags, so deleting a
 *                                                        manifest finds its tags by seek
 *   referrers  repo \0 D(subject) D     → {u64 size, u16 mt_len, u16 at_len, u32 ann_len}
 *                                          media type, artifactType, annotations JSON
 *   refby      repo \0 D(ref) D(man)    → empty          manifest D(man) of repo counts
 *                                                        a reference to D(ref)
 *   uploads    uuid (36 chars)          → {u64 started, u64 size, u16 repo_len, u16 hash_len}
 *                                          repo, br_hash_t bytes
 *   meta       "quotas"                 → u32 n, then n × {u64 max_bytes, u16 glob_len, glob}
 *                                          the quota scopes the server configured
 *                                          (glob_len 0: the global limit, whose usage
 *                                          is "blob_bytes"); absent = no quotas
 *   qusage     glob                     → u64 bytes      usage of each scope of "quotas":
 *                                                        the distinct blobs linked into
 *                                                        the repositories it matches
 *
 * quotas and qusage are derived, not history: br_store_quotas_set rewrites
 * them (the server, at every start and reload) and recomputes the counters
 * from links, so they need no schema version; between those, br_txn_link
 * and br_txn_unlink keep qusage exact in every process (quota.c).
 *
 * Schema history: 1 had no holders; opening a version 1 index builds holders
 * from links and sets version 2 in the same write transaction (open_dbs), so
 * a crash during it leaves version 1 and the next open starts over. 2 had no
 * refby, link times or blob flags; the upgrade to 3 builds refby from the
 * manifests rows the same way and records links_epoch; old links and blob
 * rows are read as they are (see br_link_time, br_blob_rec_read). 3 had no
 * tag push times (retention sorts tags by them); the upgrade to 4 only sets
 * the version, in the same kind of single write txn: old tags rows (the
 * digest alone) stay and read with the time of their manifest's link as
 * their push time (so links_epoch for links older than 3), never a time
 * before the manifest was last put, so retention cannot take a tag for older
 * than it is; every put naming the tag writes the new form. An index at 4
 * refuses to open in a berth that reads 3 (it would misread the tag values).
 * Every
 * links row has exactly one holders row: both change only in br_txn_link and
 * br_txn_unlink, in one transaction.
 *
 * Reference counts (blobs.refs) = number of links rows naming D + number of
 * times D appears in the counted refs of manifests rows. A manifest put links
 * its own body into its repository (one link, so one count), and a manifest
 * delete takes that link away again. Every change to links or manifests
 * adjusts refs in the same write transaction, so the count is exact at every
 * commit; br_store_verify() recomputes it from scratch.
 *
 * Values are native-endian: the index is local to one machine and rebuilt by
 * nobody else. LMDB only aligns values to 2 bytes, so they are read with memcpy.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "storage/internal.h"

#define BR_SCHEMA_VERSION 4
#define BR_DEFAULT_MAP_SIZE (64ULL << 30)

/* ---- packed digests and keys ---------------------------------------------- */

size_t br_pdigest_len(unsigned char alg_byte)
{
    return alg_byte == BR_ALG_SHA256 ? 33 : alg_byte == BR_ALG_SHA512 ? 65 : 0;
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

size_t br_pdigest_pack(const br_digest_t *d, unsigned char *out)
{
    out[0] = (unsigned char)d->alg;
    for (size_t i = 0; i < d->hex_len / 2u; i++)
        out[1 + i] = (unsigned char)(hexval(d->hex[2 * i]) << 4 | hexval(d->hex[2 * i + 1]));
    return 1 + d->hex_len / 2u;
}

size_t br_pdigest_unpack(const unsigned char *p, size_t len, br_digest_t *d)
{
    static const char hexdigits[] = "0123456789abcdef";
    size_t n = len != 0 ? br_pdigest_len(p[0]) : 0;
    if (n == 0 || n > len)
        return 0;
    d->alg = (br_alg_t)p[0];
    for (size_t i = 0; i < n - 1; i++) {
        d->hex[2 * i] = hexdigits[p[1 + i] >> 4];
        d->hex[2 * i + 1] = hexdigits[p[1 + i] & 15];
    }
    d->hex_len = (unsigned char)(2 * (n - 1));
    d->hex[d->hex_len] = '\0';
    return n;
}

void br_key_init(br_key_t *k, br_str_t repo)
{
    /* Callers validated repo (br_name_valid), so it fits; clamp anyway so a
     * bad caller gets a wrong key, never an overflow. */
    size_t n = repo.len <= BR_NAME_MAX ? repo.len : BR_NAME_MAX;
    memcpy(k->buf, repo.base, n);
    k->buf[n] = '\0';
    k->len = n + 1;
}

void br_key_add(br_key_t *k, const void *p, size_t len)
{
    if (len > sizeof(k->buf) - k->len)
        len = sizeof(k->buf) - k->len;
    if (len != 0) /* empty strings may come with a NULL base */
        memcpy(k->buf + k->len, p, len);
    k->len += len;
}

void br_key_add_digest(br_key_t *k, const br_digest_t *d)
{
    unsigned char pd[BR_PDIGEST_MAX];
    br_key_add(k, pd, br_pdigest_pack(d, pd));
}

void br_key_holder(br_key_t *k, const unsigned char *pd, br_str_t repo)
{
    k->len = 0;
    br_key_add(k, pd, br_pdigest_len(pd[0]));
    br_key_add(k, repo.base, repo.len);
}

int br_key_split(const MDB_val *k, br_str_t *repo, const unsigned char **rest, size_t *rest_len)
{
    const char *nul = k->mv_size != 0 ? memchr(k->mv_data, '\0', k->mv_size) : NULL;
    if (nul == NULL)
        return 0;
    *repo = br_str(k->mv_data, (size_t)(nul - (const char *)k->mv_data));
    *rest = (const unsigned char *)nul + 1;
    *rest_len = k->mv_size - repo->len - 1;
    return 1;
}

int br_mani_parse(const void *p, size_t len, br_mani_view_t *m)
{
    const unsigned char *c = p, *end = c + len;
    if (len < sizeof(m->h))
        return BR_E_CORRUPT;
    memcpy(&m->h, c, sizeof(m->h));
    c += sizeof(m->h);
    if ((size_t)(end - c) < (size_t)m->h.mt_len + m->h.subj_len)
        return BR_E_CORRUPT;
    m->media_type = (const char *)c;
    c += m->h.mt_len;
    m->subject = m->h.subj_len != 0 ? c : NULL;
    if (m->subject != NULL && br_pdigest_len(c[0]) != m->h.subj_len)
        return BR_E_CORRUPT;
    c += m->h.subj_len;
    m->refs = c;
    for (uint32_t i = 0; i < m->h.nrefs; i++) {
        size_t n = c < end ? br_pdigest_len(c[0]) : 0;
        if (n == 0 || (size_t)(end - c) < n)
            return BR_E_CORRUPT;
        c += n;
    }
    return c == end ? 0 : BR_E_CORRUPT;
}

void br_pd_set(br_pd_t *p, const unsigned char *pd)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->b, pd, br_pdigest_len(pd[0]));
}

void br_pd_push(br_pd_t **v, size_t *n, size_t *cap, const unsigned char *pd)
{
    if (*n == *cap) {
        *cap = *cap != 0 ? 2 * *cap : 256;
        *v = br_realloc(*v, *cap * sizeof(**v));
    }
    br_pd_set(&(*v)[(*n)++], pd);
}

int br_pd_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(br_pd_t));
}

size_t br_pd_count(const br_pd_t *v, size_t n, const br_pd_t *key)
{
    size_t lo = 0, hi = n, c = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (br_pd_cmp(&v[mid], key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo + c < n && br_pd_cmp(&v[lo + c], key) == 0)
        ++c;
    return c;
}

/* ---- uuids ----------------------------------------------------------------- */

void br_uuid_generate(char *buf)
{
    static const char hexdigits[] = "0123456789abcdef";
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* No entropy source means no unguessable session ids; carrying on
             * with predictable ones would let clients hijack uploads. */
            br_error("storage: getrandom: %s", strerror(errno));
            abort();
        }
        got += (size_t)n;
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[o++] = '-';
        buf[o++] = hexdigits[r[i] >> 4];
        buf[o++] = hexdigits[r[i] & 15];
    }
    buf[o] = '\0';
}

int br_uuid_valid(br_str_t s)
{
    if (s.len != BR_UUID_LEN)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.base[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int br_pwrite_all(int fd, const void *p, size_t len, uint64_t off)
{
    const char *c = p;
    while (len != 0) {
        ssize_t n = pwrite(fd, c, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        c += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* ---- LMDB plumbing -------------------------------------------------------- */

int br_store_mdb_err(int rc, const char *what)
{
    if (rc == MDB_MAP_FULL) {
        br_error("storage: %s: index map full (raise storage map size)", what);
        return ENOSPC;
    }
    br_error("storage: %s: %s", what, mdb_strerror(rc));
    /* Disk-level failures keep their errno so the server can say 507/500
     * honestly; everything else from LMDB is a bug or corruption on our side. */
    if (rc == ENOSPC || rc == EDQUOT || rc == EIO)
        return rc;
    return BR_E_INTERNAL;
}

int br_store_rtxn_begin(br_store_t *s, MDB_txn **txn)
{
    MDB_txn *t = NULL;
    int rc;
    pthread_mutex_lock(&s->lock);
    if (s->rtxn_count != 0)
        t = s->rtxn_pool[--s->rtxn_count];
    pthread_mutex_unlock(&s->lock);
    /* MDB_NOTLS makes a reset read txn renewable from any thread. */
    if (t != NULL) {
        if ((rc = mdb_txn_renew(t)) != 0) {
            mdb_txn_abort(t);
            return br_store_mdb_err(rc, "renew read txn");
        }
    } else if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) != 0) {
        return br_store_mdb_err(rc, "begin read txn");
    }
    *txn = t;
    return 0;
}

void br_store_rtxn_end(br_store_t *s, MDB_txn *txn)
{
    /* Reset drops the snapshot at once, so pooled txns pin no old pages. */
    mdb_txn_reset(txn);
    pthread_mutex_lock(&s->lock);
    if (s->rtxn_count < BR_RTXN_POOL) {
        s->rtxn_pool[s->rtxn_count++] = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (txn != NULL)
        mdb_txn_abort(txn);
}

int br_store_wtxn_begin(br_store_t *s, MDB_txn **txn)
{
    int rc = mdb_txn_begin(s->env, NULL, 0, txn);
    return rc == 0 ? 0 : br_store_mdb_err(rc, "begin write txn");
}

int br_store_wtxn_end(MDB_txn **txn, int ret)
{
    int rc;
    if (*txn == NULL)
        return ret;
    if (ret != 0) {
        mdb_txn_abort(*txn);
    } else if ((rc = mdb_txn_commit(*txn)) != 0) {
        ret = br_store_mdb_err(rc, "commit");
    }
    *txn = NULL;
    return ret;
}

/* ---- claims (live upload handles) ------------------------------------------ */

static size_t claim_bucket(const char *uuid)
{
    /* uuids are random: their first hex digits are already a good hash. */
    size_t h = 0;
    for (int i = 0; i < 4; i++)
        h = h << 4 | (size_t)hexval(uuid[i]);
    return h % BR_CLAIM_BUCKETS;
}

int br_store_claim(br_store_t *s, br_claim_t *c)
{
    size_t b = claim_bucket(c->uuid);
    int ret = 0;
    pthread_mutex_lock(&s->lock);
    for (br_claim_t *p = s->claims[b]; p != NULL; p = p->next) {
        if (memcmp(p->uuid, c->uuid, BR_UUID_LEN) == 0) {
            ret = BR_E_BUSY;
            goto Exit;
        }
    }
    c->next = s->claims[b];
    s->claims[b] = c;
Exit:
    pthread_mutex_unlock(&s->lock);
    return ret;
}

void br_store_unclaim(br_store_t *s, br_claim_t *c)
{
    size_t b = claim_bucket(c->uuid);
    pthread_mutex_lock(&s->lock);
    for (br_claim_t **p = &s->claims[b]; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- open / close ------------------------------------------------------------ */

static int mkdir_at(int dirfd, const char *name, int *fd)
{
    if (mkdirat(dirfd, name, 0755) != 0 && errno != EEXIST)
        return errno;
    if ((*fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno;
    return 0;
}

/* Schema 1 -> 2: holders rebuilt from links. Runs in open_dbs' write txn,
 * which also sets the new version: all of it commits, or none. Emptied first,
 * so a half-built table can never be taken for a whole one. LMDB caps the
 * pages one write txn may dirty (2^17); at some dozens of rows a page that
 * is millions of links. An index beyond that fails to open (MDB_TXN_FULL,
 * logged) and stays at version 1, unharmed. */
static int build_holders(br_store_t *s, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    br_str_t repo;
    const unsigned char *pd;
    size_t n, count = 0;
    int rc, ret = 0;
    if ((rc = mdb_drop(txn, s->db_holders, 0)) != 0)
        return br_store_mdb_err(rc, "empty holders");
    if ((rc = mdb_cursor_open(txn, s->db_links, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!br_key_split(&k, &repo, &pd, &n) || n == 0 || br_pdigest_len(pd[0]) != n) {
            br_error("storage: malformed link key in the index");
            ret = BR_E_CORRUPT;
            goto Exit;
        }
        if ((ret = br_txn_holder_put(s, txn, pd, repo)) != 0)
            goto Exit;
        ++count;
    }
    if (rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    else
        br_info("storage: indexed the holders of %zu links", count);
Exit:
    mdb_cursor_close(cur);
    return ret;
}

/* Schema 2 -> 3: refby rebuilt from the manifests rows' counted references,
 * in open_dbs' write txn like build_holders (same limits). */
static int build_refby(br_store_t *s, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v, e = {0, NULL};
    br_str_t repo;
    const unsigned char *pd;
    br_mani_view_t m;
    size_t n, count = 0;
    int rc, ret = 0;
    if ((rc = mdb_drop(txn, s->db_refby, 0)) != 0)
        return br_store_mdb_err(rc, "empty refby");
    if ((rc = mdb_cursor_open(txn, s->db_manifests, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!br_key_split(&k, &repo, &pd, &n) || n == 0 || br_pdigest_len(pd[0]) != n || br_mani_parse(v.mv_data, v.mv_size, &m) != 0) {
            br_error("storage: malformed manifest row in the index");
            ret = BR_E_CORRUPT;
            goto Exit;
        }
        for (const unsigned char *r = m.refs; r < (const unsigned char *)v.mv_data + v.mv_size; r += br_pdigest_len(r[0])) {
            br_key_t key;
            br_key_init(&key, repo);
            br_key_add(&key, r, br_pdigest_len(r[0]));
            br_key_add(&key, pd, n);
            MDB_val rk = br_key_val(&key);
            if ((rc = mdb_put(txn, s->db_refby, &rk, &e, 0)) != 0) {
                ret = br_store_mdb_err(rc, "write refby");
                goto Exit;
            }
            ++count;
        }
    }
    if (rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    else
        br_info("storage: indexed %zu manifest references", count);
Exit:
    mdb_cursor_close(cur);
    return ret;
}

#define BR_META_BLOB_BYTES "blob_bytes"

int br_txn_blob_bytes_add(br_store_t *s, MDB_txn *txn, int64_t delta)
{
    MDB_val k = {sizeof(BR_META_BLOB_BYTES) - 1, (void *)BR_META_BLOB_BYTES}, v;
    uint64_t total = 0;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    if (rc == 0 && v.mv_size == sizeof(total))
        memcpy(&total, v.mv_data, sizeof(total));
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "read blob bytes");
    total = delta < 0 && total < (uint64_t)-delta ? 0 : total + (uint64_t)delta;
    v.mv_size = sizeof(total);
    v.mv_data = &total;
    if ((rc = mdb_put(txn, s->db_meta, &k, &v, 0)) != 0)
        return br_store_mdb_err(rc, "write blob bytes");
    return 0;
}

int br_txn_blob_bytes(br_store_t *s, MDB_txn *txn, uint64_t *total)
{
    MDB_val k = {sizeof(BR_META_BLOB_BYTES) - 1, (void *)BR_META_BLOB_BYTES}, v;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    *total = 0;
    if (rc == 0 && v.mv_size == sizeof(*total))
        memcpy(total, v.mv_data, sizeof(*total));
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "read blob bytes");
    return 0;
}

/* The running total of blob bytes, summed once from the blob rows when the
 * index has none (a new index, or one from before the total existed), in
 * open_dbs' write txn. */
static int init_blob_bytes(br_store_t *s, MDB_txn *txn)
{
    MDB_val k = {sizeof(BR_META_BLOB_BYTES) - 1, (void *)BR_META_BLOB_BYTES}, v;
    MDB_cursor *cur = NULL;
    uint64_t total = 0;
    int rc = mdb_get(txn, s->db_meta, &k, &v), ret = 0;
    if (rc != MDB_NOTFOUND)
        return rc == 0 ? 0 : br_store_mdb_err(rc, "read blob bytes");
    if ((rc = mdb_cursor_open(txn, s->db_blobs, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        br_blob_rec_t rec;
        if (br_blob_rec_read(&v, &rec) == 0)
            total += rec.size;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "cursor walk");
    if ((ret = br_txn_blob_bytes_add(s, txn, (int64_t)total)) != 0)
        return ret;
    return 0;
}

int br_store_stats(br_store_t *s, br_store_stats_t *st)
{
    MDB_txn *txn;
    MDB_stat ms;
    int ret;
    memset(st, 0, sizeof(*st));
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    const struct {
        MDB_dbi dbi;
        uint64_t *out;
    } tables[] = {{s->db_repos, &st->repositories}, {s->db_blobs, &st->blobs},   {s->db_manifests, &st->manifests},
                  {s->db_tags, &st->tags},          {s->db_uploads, &st->uploads}};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]) && ret == 0; i++) {
        int rc = mdb_stat(txn, tables[i].dbi, &ms);
        if (rc != 0)
            ret = br_store_mdb_err(rc, "table stat");
        else
            *tables[i].out = (uint64_t)ms.ms_entries;
    }
    MDB_val k = {sizeof(BR_META_BLOB_BYTES) - 1, (void *)BR_META_BLOB_BYTES}, v;
    if (ret == 0 && mdb_get(txn, s->db_meta, &k, &v) == 0 && v.mv_size == sizeof(st->blob_bytes))
        memcpy(&st->blob_bytes, v.mv_data, sizeof(st->blob_bytes));
    br_store_rtxn_end(s, txn);
    return ret;
}

int br_store_check_writable(br_store_t *s)
{
    unsigned flags = 0;
    if (mdb_env_get_flags(s->env, &flags) == 0 && (flags & MDB_RDONLY))
        return EROFS;
    int fd = open(s->tmp_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600), ret = 0;
    if (fd < 0)
        return errno;
    if (write(fd, "", 1) != 1)
        ret = errno != 0 ? errno : EIO;
    close(fd);
    return ret;
}

static int open_dbs(br_store_t *s)
{
    static const struct {
        const char *name;
        size_t off;
    } dbs[] = {
        {"meta", offsetof(br_store_t, db_meta)},           {"repos", offsetof(br_store_t, db_repos)},
        {"blobs", offsetof(br_store_t, db_blobs)},         {"links", offsetof(br_store_t, db_links)},
        {"holders", offsetof(br_store_t, db_holders)},     {"manifests", offsetof(br_store_t, db_manifests)},
        {"tags", offsetof(br_store_t, db_tags)},           {"mtags", offsetof(br_store_t, db_mtags)},
        {"referrers", offsetof(br_store_t, db_referrers)}, {"uploads", offsetof(br_store_t, db_uploads)},
        {"refby", offsetof(br_store_t, db_refby)},         {"events", offsetof(br_store_t, db_events)},
        {"qusage", offsetof(br_store_t, db_qusage)},
    };
    MDB_txn *txn = NULL;
    int rc, ret;
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        if ((rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, (MDB_dbi *)((char *)s + dbs[i].off))) != 0) {
            ret = br_store_mdb_err(rc, "open sub-database");
            goto Exit;
        }
    }
    if ((ret = init_blob_bytes(s, txn)) != 0)
        goto Exit;
    /* The schema version makes a format change detectable instead of
     * silently misreading old records. No row: a new index. */
    MDB_val k = {7, (void *)"version"}, ek = {11, (void *)"links_epoch"}, v;
    uint32_t have = 0, version = BR_SCHEMA_VERSION;
    uint64_t epoch = br_now();
    if ((rc = mdb_get(txn, s->db_meta, &k, &v)) != 0 && rc != MDB_NOTFOUND) {
        ret = br_store_mdb_err(rc, "read schema version");
        goto Exit;
    }
    if (rc == 0) {
        memcpy(&have, v.mv_data, v.mv_size < sizeof(have) ? v.mv_size : sizeof(have));
        if (have == BR_SCHEMA_VERSION) {
            if (mdb_get(txn, s->db_meta, &ek, &v) == 0 && v.mv_size == sizeof(epoch))
                memcpy(&s->links_epoch, v.mv_data, sizeof(epoch));
            goto Exit;
        }
        if (have < 1 || have > 3) {
            br_error("storage: index schema version %u, this berth reads %u", have, BR_SCHEMA_VERSION);
            ret = BR_E_CORRUPT;
            goto Exit;
        }
        br_info("storage: upgrading the index from schema version %u to %u", have, BR_SCHEMA_VERSION);
        if ((have == 1 && (ret = build_holders(s, txn)) != 0) || (have <= 2 && (ret = build_refby(s, txn)) != 0))
            goto Exit;
        /* From 3, links_epoch stays what it is: the links it dates are as old as ever. */
        if (have == 3 && mdb_get(txn, s->db_meta, &ek, &v) == 0 && v.mv_size == sizeof(epoch))
            memcpy(&epoch, v.mv_data, sizeof(epoch));
    }
    s->links_epoch = epoch;
    v.mv_size = sizeof(epoch);
    v.mv_data = &epoch;
    if ((rc = mdb_put(txn, s->db_meta, &ek, &v, 0)) != 0) {
        ret = br_store_mdb_err(rc, "write links epoch");
        goto Exit;
    }
    v.mv_size = sizeof(version);
    v.mv_data = &version;
    if ((rc = mdb_put(txn, s->db_meta, &k, &v, 0)) != 0)
        ret = br_store_mdb_err(rc, "write schema version");
Exit:
    return br_store_wtxn_end(&txn, ret);
}

#define BR_LOCK_FILE "berth.lock"

/* Takes the store's exclusive lock (storage.h, "Processes"). flock rather than
 * fcntl locks: an flock lock belongs to the open file, so a second open in the
 * same process conflicts too, and no unrelated close() of the file elsewhere
 * in the process can drop it. The PID is a hint for the error message. */
static int lock_store(br_store_t *s)
{
    int fd = openat(s->root_fd, BR_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644), ret;
    if (fd < 0)
        return errno;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ret = errno == EWOULDBLOCK ? EBUSY : errno;
        close(fd);
        return ret;
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    ret = ftruncate(fd, 0) != 0 ? errno : br_pwrite_all(fd, pid, (size_t)n, 0);
    if (ret != 0) {
        close(fd);
        return ret;
    }
    s->lock_fd = fd;
    return 0;
}

long br_store_lock_owner(const char *root)
{
    char path[PATH_MAX], buf[32];
    snprintf(path, sizeof(path), "%s/" BR_LOCK_FILE, root);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && (*end == '\n' || *end == '\0') ? pid : 0;
}

long br_store_server_pid(const char *root)
{
    /* The kernel's table of locks, not the PID in the file: after a kill -9
     * the file still names a process that is gone, or by now another
     * program. Reading the table takes no lock, so a server starting at the
     * same moment is not disturbed. */
    char path[PATH_MAX], line[256], type[16];
    struct stat st;
    snprintf(path, sizeof(path), "%s/" BR_LOCK_FILE, root);
    if (stat(path, &st) != 0)
        return 0;
    FILE *fp = fopen("/proc/locks", "re");
    if (fp == NULL)
        return 0;
    long pid = 0, p;
    unsigned maj, min;
    unsigned long ino;
    while (pid == 0 && fgets(line, sizeof(line), fp) != NULL) {
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", type, &p, &maj, &min, &ino) == 5 && strcmp(type, "FLOCK") == 0 &&
            maj == major(st.st_dev) && min == minor(st.st_dev) && ino == (unsigned long)st.st_ino && p > 0)
            pid = p;
    }
    fclose(fp);
    return pid;
}

int br_store_open(br_store_t **out, const char *root, const br_store_options_t *opts)
{
    br_store_t *s = br_calloc(1, sizeof(*s));
    char path[PATH_MAX];
    int rc, ret = 0, fd = -1;

    s->fsync = opts == NULL || opts->fsync;
    s->root_fd = s->uploads_fd = s->lock_fd = -1;
    for (int a = 0; a < 3; a++) {
        s->blob_fd[a] = -1;
        for (int i = 0; i < 256; i++)
            s->sub_fd[a][i] = -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->root = br_strndup(root, strlen(root));
    size_t rl = strlen(root);
    s->tmp_dir = br_malloc(rl + 5);
    memcpy(s->tmp_dir, root, rl);
    memcpy(s->tmp_dir + rl, "/tmp", 5);

    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        ret = errno;
        goto Exit;
    }
    if ((s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        ret = errno;
        goto Exit;
    }
    if (opts != NULL && opts->exclusive && (ret = lock_store(s)) != 0)
        goto Exit;
    /* Directories are opened once and everything below is reached with *at()
     * calls: no path building per request, and the root path length does not
     * matter after this. */
    if ((ret = mkdir_at(s->root_fd, "blobs", &fd)) != 0 || (ret = mkdir_at(fd, "sha256", &s->blob_fd[BR_ALG_SHA256])) != 0 ||
        (ret = mkdir_at(fd, "sha512", &s->blob_fd[BR_ALG_SHA512])) != 0)
        goto Exit;
    if (s->fsync && fsync(fd) != 0) {
        ret = errno;
        goto Exit;
    }
    close(fd);
    fd = -1;
    if ((ret = mkdir_at(s->root_fd, "uploads", &s->uploads_fd)) != 0 || (ret = mkdir_at(s->root_fd, "tmp", &fd)) != 0)
        goto Exit;
    close(fd);
    fd = -1;
    if ((ret = mkdir_at(s->root_fd, "index", &fd)) != 0)
        goto Exit;
    close(fd);
    fd = -1;
    if (s->fsync && fsync(s->root_fd) != 0) {
        ret = errno;
        goto Exit;
    }

    if ((rc = mdb_env_create(&s->env)) != 0) {
        ret = br_store_mdb_err(rc, "env create");
        goto Exit;
    }
    mdb_env_set_maxdbs(s->env, 16);
    /* Every event-loop thread may hold a few short readers at once, plus the
     * pool; the default 126 slots are too few for a large machine. */
    mdb_env_set_maxreaders(s->env, 1024);
    /* The map is sparse: 64 GiB of address space costs nothing until used,
     * and running out of it is an ENOSPC we would rather never see. */
    mdb_env_set_mapsize(s->env, opts != NULL && opts->map_size != 0 ? opts->map_size : BR_DEFAULT_MAP_SIZE);
    snprintf(path, sizeof(path), "%s/index", root);
    /* NOTLS: read txns are not bound to threads (pooled, renewed anywhere).
     * NOSYNC only when the caller asked for no fsync at all (tests). */
    if ((rc = mdb_env_open(s->env, path, MDB_NOTLS | (s->fsync ? 0 : MDB_NOSYNC), 0644)) != 0) {
        ret = br_store_mdb_err(rc, "env open");
        goto Exit;
    }
    /* Slots left by a crashed process would pin old pages forever. */
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if ((ret = open_dbs(s)) != 0)
        goto Exit;

Exit:
    if (fd >= 0)
        close(fd);
    if (ret != 0) {
        br_store_close(s);
        s = NULL;
    }
    *out = s;
    return ret;
}

void br_store_close(br_store_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->rtxn_count; i++)
        mdb_txn_abort(s->rtxn_pool[i]);
    if (s->env != NULL)
        mdb_env_close(s->env);
    for (int a = 0; a < 3; a++) {
        if (s->blob_fd[a] >= 0)
            close(s->blob_fd[a]);
        for (int i = 0; i < 256; i++)
            if (s->sub_fd[a][i] >= 0)
                close(s->sub_fd[a][i]);
    }
    if (s->uploads_fd >= 0)
        close(s->uploads_fd);
    if (s->root_fd >= 0)
        close(s->root_fd);
    /* Last: no other process may take the store while this one still has it
     * open. The emptied file names no process that has gone. */
    if (s->lock_fd >= 0) {
        if (ftruncate(s->lock_fd, 0) != 0)
            br_warn("storage: cannot empty %s/" BR_LOCK_FILE ": %s", s->root, strerror(errno));
        close(s->lock_fd);
    }
    pthread_mutex_destroy(&s->lock);
    free(s->root);
    free(s->tmp_dir);
    free(s);
}

const char *br_store_tmp_dir(br_store_t *s)
{
    return s->tmp_dir;
}

uint64_t br_store_version(br_store_t *s)
{
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) != 0)
        return 0;
    return (uint64_t)info.me_last_txnid;
}

/* ---- repositories ------------------------------------------------------------ */

int br_repo_exists(br_store_t *s, br_str_t repo)
{
    MDB_txn *txn;
    MDB_val k = {repo.len, (void *)repo.base}, v;
    if (repo.len == 0 || br_store_rtxn_begin(s, &txn) != 0)
        return 0;
    int found = mdb_get(txn, s->db_repos, &k, &v) == 0;
    br_store_rtxn_end(s, txn);
    return found;
}

/* memcmp order of k against the concatenation a‖b, as LMDB orders keys. */
static int cmp_concat(const MDB_val *k, const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = k->mv_size < alen ? k->mv_size : alen;
    int c = n != 0 ? memcmp(k->mv_data, a, n) : 0;
    if (c != 0 || k->mv_size <= alen)
        return c != 0 ? c : k->mv_size < alen + blen ? -1 : 0;
    size_t rest = k->mv_size - alen, m = rest < blen ? rest : blen;
    if ((c = memcmp((const char *)k->mv_data + alen, b, m)) != 0)
        return c;
    return rest < blen ? -1 : rest > blen ? 1 : 0;
}

int br_store_scan(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t prefix_len, br_str_t last, size_t n, br_name_cb cb,
                  void *ctx, int *more)
{
    MDB_cursor *cur = NULL;
    unsigned char seek[511]; /* LMDB's longest key */
    MDB_val k, v;
    int rc, ret = 0;
    size_t done = 0;

    *more = 0;
    /* Pagination is a seek to "prefix last", never a walk from the start. A
     * client's last may be longer than any key; seek to its longest possible
     * prefix and step over what still sorts at or before it. */
    k.mv_size = prefix_len + last.len < sizeof(seek) ? prefix_len + last.len : sizeof(seek);
    if (prefix_len != 0) /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(seek, prefix, prefix_len);
    if (k.mv_size > prefix_len)
        memcpy(seek + prefix_len, last.base, k.mv_size - prefix_len);
    k.mv_data = seek;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "cursor open");
        goto Exit;
    }
    rc = mdb_cursor_get(cur, &k, &v, k.mv_size == 0 ? MDB_FIRST : MDB_SET_RANGE);
    while (rc == 0 && last.len != 0 && cmp_concat(&k, prefix, prefix_len, last.base, last.len) <= 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (prefix_len != 0 && (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0))
            break;
        if (done == n) {
            *more = 1;
            break;
        }
        ++done;
        if (cb(ctx, br_str((const char *)k.mv_data + prefix_len, k.mv_size - prefix_len)) != 0)
            break;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
Exit:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return ret;
}

int br_repo_list(br_store_t *s, br_str_t last, size_t n, br_name_cb cb, void *ctx, int *more)
{
    MDB_txn *txn;
    int ret;
    *more = 0;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    ret = br_store_scan(txn, s->db_repos, NULL, 0, last, n, cb, ctx, more);
    br_store_rtxn_end(s, txn);
    return ret;
}
