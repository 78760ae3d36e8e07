/*
 * The collector (the argument for its safety is in storage.h).
 *
 * Two halves. The plan reads one snapshot (one read txn) and decides, with
 * the rules below, which untagged manifests, links and blobs are garbage and
 * which files in blobs/ no index row names; it changes nothing, and a dry run
 * stops there. The execution walks the plan in short write txns (a batch of
 * items each) and re-checks every item inside its txn with the same rules
 * read from the index as it is then, so a plan made stale by a concurrent
 * push costs only a skipped item, never a wrong removal. Without concurrent
 * writes, the execution removes exactly the plan: dry-run figures and the
 * real run's agree.
 *
 * Retention comes first in both halves: the plan picks the tags its rules
 * delete (and treats them as gone when it judges untagged manifests), the
 * execution deletes them before any manifest, re-deciding each in its write
 * txn (storage.h).
 *
 * The plan's lists hold only garbage (keys in one arena), so memory grows
 * with what is collected, not with the store (retention also holds the tags
 * of one repository at a time).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "storage/internal.h"

#define BATCH_MANIFESTS 32
#define BATCH_LINKS 256
#define BATCH_BLOBS 128
#define BATCH_TAGS 64

typedef struct st_ent_t {
    size_t off;     /* key bytes in gc_t.arena */
    uint32_t len;
    uint32_t vlen;  /* retention: the tags row value, after the key in the arena */
    int collected;  /* manifest candidates: chosen for collection; retention: deleted */
    uint64_t size;  /* blobs and orphans: bytes; retention: push time (ms) */
} ent_t;

/* One tag of the repository retention is deciding on (copied: a write txn
 * moves the data it returns). */
typedef struct st_rtag_t {
    size_t off;           /* in gc_t.rbuf: the key (repo \0 tag), then the value */
    uint32_t klen, vlen;
    uint64_t pushed_ms;
    int del;
} rtag_t;

typedef struct st_list_t {
    ent_t *v;
    size_t n, cap;
} list_t;

typedef struct st_gc_t {
    br_store_t *s;
    const br_gc_options_t *o;
    br_gc_stats_t *st;
    uint64_t now;
    MDB_txn *txn; /* the plan's snapshot, or the current write txn */
    unsigned char *arena;
    size_t alen, acap;
    list_t cands;   /* untagged manifests with an old body link, in key order */
    list_t mans;    /* manifests to collect, in execution order */
    list_t links;   /* links to remove */
    list_t blobs;   /* blob rows to remove */
    list_t orphans; /* files no row names (key: packed digest) */
    br_pd_t *dec;   /* references the plan takes away, sorted */
    size_t ndec, deccap;
    int trash_fd;
    uint64_t now_ms;
    list_t rets;    /* retention: tags to delete (key, then the row value), in key order */
    list_t rmtags;  /* the same tags as mtags keys (repo \0 D tag), sorted: the plan's view */
    unsigned char *rbuf; /* retention: one repository's tags */
    size_t rlen, rcap;
    rtag_t *rtags;
    size_t nrtags, rtagcap;
} gc_t;

static int old_enough(const gc_t *g, uint64_t t)
{
    return t <= g->now && g->now - t >= g->o->grace_s;
}

static ent_t *list_grow(list_t *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap != 0 ? 2 * l->cap : 64;
        l->v = br_realloc(l->v, l->cap * sizeof(*l->v));
    }
    return &l->v[l->n++];
}

static ent_t *list_add(gc_t *g, list_t *l, const void *key, size_t len)
{
    if (g->alen + len > g->acap) {
        g->acap = g->acap != 0 ? 2 * g->acap + len : 4096 + len;
        g->arena = br_realloc(g->arena, g->acap);
    }
    memcpy(g->arena + g->alen, key, len);
    ent_t *e = list_grow(l);
    memset(e, 0, sizeof(*e));
    e->off = g->alen;
    e->len = (uint32_t)len;
    g->alen += len;
    return e;
}

/* Adds an entry for key bytes already in the arena (no copy: a pointer into
 * the arena would not survive the realloc of a copy). */
static void list_ref(list_t *l, const ent_t *from)
{
    *list_grow(l) = *from;
}

static MDB_val ent_key(const gc_t *g, const ent_t *e)
{
    MDB_val k = {e->len, g->arena + e->off};
    return k;
}

/* LMDB's default key order: bytes, then shorter first. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* The entry of l (in key order) with this key, or NULL. */
static ent_t *list_find(gc_t *g, list_t *l, const void *key, size_t len)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        ent_t *e = &l->v[mid];
        int c = key_cmp(g->arena + e->off, e->len, key, len);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The candidate with this key, or NULL. */
static ent_t *cand_find(gc_t *g, const void *key, size_t len)
{
    return list_find(g, &g->cands, key, len);
}

/* 1 when some tag names manifest key (repo \0 M); with the plan's view, the
 * tags retention deletes do not count. */
static int tagged(gc_t *g, const unsigned char *key, size_t len, int planned)
{
    MDB_cursor *cur;
    MDB_val k = {len, (void *)key}, v;
    int rc, ret = 0;
    if (!planned || g->rmtags.n == 0)
        return br_txn_has_prefix(g->txn, g->s->db_mtags, key, len);
    if ((rc = mdb_cursor_open(g->txn, g->s->db_mtags, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= len || memcmp(k.mv_data, key, len) != 0)
            break;
        if (list_find(g, &g->rmtags, k.mv_data, k.mv_size) == NULL) { /* not one retention deletes */
            ret = 1;
            break;
        }
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    mdb_cursor_close(cur);
    return ret;
}

static void dec_add(gc_t *g, const unsigned char *pd)
{
    br_pd_push(&g->dec, &g->ndec, &g->deccap, pd);
}

static void progress(gc_t *g, const char *phase, uint64_t done, uint64_t total)
{
    if (g->o->progress != NULL)
        g->o->progress(g->o->ctx, phase, done, total);
}

/* ---- the rules, read from g->txn (the snapshot or a write txn) ---------------- */

/* 1: key (repo \0 D) is live in the manifests table; with the plan's view, a
 * candidate chosen for collection counts as gone. */
static int manifest_live(gc_t *g, const void *key, size_t len, int planned)
{
    MDB_val k = {len, (void *)key}, v;
    int rc = mdb_get(g->txn, g->s->db_manifests, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return br_store_mdb_err(rc, "read manifest");
    if (planned) {
        ent_t *e = cand_find(g, key, len);
        if (e != NULL && e->collected)
            return 0;
    }
    return 1;
}

/* 1 when some manifest of the repository (live, in the plan's view) counts a
 * reference to the digest that ends prefix (repo \0 D): a refby prefix seek. */
static int referenced(gc_t *g, const unsigned char *prefix, size_t len, int planned)
{
    MDB_cursor *cur;
    MDB_val k = {len, (void *)prefix}, v;
    br_key_t mk;
    int rc, ret = 0;
    if (!planned)
        return br_txn_has_prefix(g->txn, g->s->db_refby, prefix, len);
    if ((rc = mdb_cursor_open(g->txn, g->s->db_refby, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= len || memcmp(k.mv_data, prefix, len) != 0)
            break;
        /* repo \0 + the referencing manifest */
        const unsigned char *nul = memchr(prefix, '\0', len);
        size_t rl = (size_t)(nul - prefix) + 1;
        mk.len = 0;
        br_key_add(&mk, prefix, rl);
        br_key_add(&mk, (const unsigned char *)k.mv_data + len, k.mv_size - len);
        ent_t *e = cand_find(g, mk.buf, mk.len);
        if (e == NULL || !e->collected) {
            ret = 1;
            break;
        }
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    mdb_cursor_close(cur);
    return ret;
}

/* Time of the link with this key; 0 when there is none. */
static int link_time(gc_t *g, const void *key, size_t len, uint64_t *t, int *found)
{
    MDB_val k = {len, (void *)key}, v;
    int rc = mdb_get(g->txn, g->s->db_links, &k, &v);
    *found = rc == 0;
    *t = rc == 0 ? br_link_time(g->s, &v) : 0;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : br_store_mdb_err(rc, "read link");
}

/* 1 when manifest key (repo \0 M) may be collected as untagged: no tag names
 * it, its body link is older than the grace period, no live manifest of the
 * repository references it (an index holding it), and its subject, if any,
 * is no live manifest of the repository. */
static int manifest_collectable(gc_t *g, const unsigned char *key, size_t len, int planned)
{
    MDB_val k = {len, (void *)key}, v;
    br_mani_view_t m;
    uint64_t t;
    int rc, ret, found;
    if ((rc = mdb_get(g->txn, g->s->db_manifests, &k, &v)) != 0)
        return rc == MDB_NOTFOUND ? 0 : br_store_mdb_err(rc, "read manifest");
    if ((ret = br_mani_parse(v.mv_data, v.mv_size, &m)) != 0)
        return ret;
    if ((ret = tagged(g, key, len, planned)) != 0)
        return ret > 0 ? 0 : ret;
    if ((ret = link_time(g, key, len, &t, &found)) != 0)
        return ret;
    if (found && !old_enough(g, t))
        return 0;
    if (m.subject != NULL) {
        br_key_t sk;
        const unsigned char *nul = memchr(key, '\0', len);
        sk.len = 0;
        br_key_add(&sk, key, (size_t)(nul - key) + 1);
        br_key_add(&sk, m.subject, m.h.subj_len);
        if ((ret = manifest_live(g, sk.buf, sk.len, planned)) != 0)
            return ret > 0 ? 0 : ret;
    }
    if ((ret = referenced(g, key, len, planned)) != 0)
        return ret > 0 ? 0 : ret;
    return 1;
}

/* 1 when link key (repo \0 D) may go: older than the grace period, not the
 * body of a live manifest of its repository, and no live manifest there
 * references D. */
static int link_collectable(gc_t *g, const unsigned char *key, size_t len, uint64_t t, int planned)
{
    int ret;
    if (!old_enough(g, t))
        return 0;
    if ((ret = manifest_live(g, key, len, planned)) != 0)
        return ret > 0 ? 0 : ret;
    if ((ret = referenced(g, key, len, planned)) != 0)
        return ret > 0 ? 0 : ret;
    return 1;
}

/* ---- retention ------------------------------------------------------------------- */

static int ent_cmp(const void *a, const void *b, void *ctx)
{
    const gc_t *g = ctx;
    const ent_t *x = a, *y = b;
    return key_cmp(g->arena + x->off, x->len, g->arena + y->off, y->len);
}

static const unsigned char *rtag_key(const gc_t *g, const rtag_t *r)
{
    return g->rbuf + r->off;
}

/* Newest first; equal times: the greater name first (keys share the repo prefix). */
static int rtag_cmp(const void *a, const void *b, void *ctx)
{
    const gc_t *g = ctx;
    const rtag_t *x = a, *y = b;
    if (x->pushed_ms != y->pushed_ms)
        return x->pushed_ms > y->pushed_ms ? -1 : 1;
    return -key_cmp(rtag_key(g, x), x->klen, rtag_key(g, y), y->klen);
}

static int rtag_key_cmp(const void *a, const void *b, void *ctx)
{
    const gc_t *g = ctx;
    const rtag_t *x = a, *y = b;
    return key_cmp(rtag_key(g, x), x->klen, rtag_key(g, y), y->klen);
}

/* Reads every tag of repo (prefix "repo \0") from g->txn into g->rtags, in
 * key order, with its push time (an old row: its manifest's link time). */
static int load_repo_tags(gc_t *g, const br_key_t *prefix)
{
    MDB_cursor *cur;
    MDB_val k = {prefix->len, (void *)prefix->buf}, v;
    int rc, ret = 0;
    g->rlen = 0;
    g->nrtags = 0;
    if ((rc = mdb_cursor_open(g->txn, g->s->db_tags, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t pl;
        uint64_t pushed;
        if (k.mv_size <= prefix->len || memcmp(k.mv_data, prefix->buf, prefix->len) != 0)
            break;
        if (br_tag_val_read(&v, &pl, &pushed) != 0)
            continue; /* damage: fsck's to report; the tag stays */
        if (pushed == 0) {
            br_key_t lk;
            uint64_t t;
            int found;
            lk.len = 0;
            br_key_add(&lk, prefix->buf, prefix->len);
            br_key_add(&lk, v.mv_data, pl);
            if ((ret = link_time(g, lk.buf, lk.len, &t, &found)) != 0)
                break;
            pushed = (found ? t : g->s->links_epoch) * 1000;
        }
        if (g->rlen + k.mv_size + v.mv_size > g->rcap) {
            g->rcap = 2 * g->rcap + k.mv_size + v.mv_size + 4096;
            g->rbuf = br_realloc(g->rbuf, g->rcap);
        }
        if (g->nrtags == g->rtagcap) {
            g->rtagcap = g->rtagcap != 0 ? 2 * g->rtagcap : 256;
            g->rtags = br_realloc(g->rtags, g->rtagcap * sizeof(*g->rtags));
        }
        rtag_t *r = &g->rtags[g->nrtags++];
        r->off = g->rlen;
        r->klen = (uint32_t)k.mv_size;
        r->vlen = (uint32_t)v.mv_size;
        r->pushed_ms = pushed;
        r->del = 0;
        memcpy(g->rbuf + g->rlen, k.mv_data, k.mv_size);
        memcpy(g->rbuf + g->rlen + k.mv_size, v.mv_data, v.mv_size);
        g->rlen += k.mv_size + v.mv_size;
    }
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    mdb_cursor_close(cur);
    return ret;
}

/* Applies rule to the loaded tags of repo: sets del on each tag it deletes
 * (storage.h). Leaves g->rtags in key order. */
static void retention_decide(gc_t *g, const br_retention_rule_t *rule, br_str_t repo)
{
    if (g->nrtags == 0)
        return;
    qsort_r(g->rtags, g->nrtags, sizeof(*g->rtags), rtag_cmp, g);
    for (size_t i = 0; i < g->nrtags; i++) {
        rtag_t *r = &g->rtags[i];
        const unsigned char *key = rtag_key(g, r);
        br_str_t tag = br_str((const char *)key + repo.len + 1, r->klen - repo.len - 1);
        int young = r->pushed_ms > g->now_ms || g->now_ms - r->pushed_ms < rule->keep_s * 1000;
        r->del = i >= rule->keep_last && !young && !g->o->retention_keep(g->o->rctx, repo, tag);
    }
    qsort_r(g->rtags, g->nrtags, sizeof(*g->rtags), rtag_key_cmp, g);
}

/* One report line for a tag retention deletes (or would). */
static void retention_report(gc_t *g, const ent_t *e, const br_retention_rule_t *rule)
{
    const char *key = (const char *)g->arena + e->off, *nul = memchr(key, '\0', e->len);
    char when[32] = "?", line[BR_NAME_MAX + BR_TAG_MAX + 512];
    time_t secs = (time_t)(e->size / 1000);
    struct tm tm;
    if (g->o->retention_report == NULL)
        return;
    if (gmtime_r(&secs, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(line, sizeof(line), "retention: %s %.*s:%.*s (pushed %s, rule \"%s\")", g->o->dry_run ? "would delete" : "deleted",
             (int)(nul - key), key, (int)(e->len - (size_t)(nul - key) - 1), nul + 1, when, rule != NULL ? rule->name : "?");
    g->o->retention_report(g->o->rctx, line);
}

static int plan_retention(gc_t *g)
{
    MDB_cursor *cur;
    MDB_val k, v;
    br_key_t seek, prefix;
    int rc, ret = 0;
    if ((rc = mdb_cursor_open(g->txn, g->s->db_tags, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;) {
        br_str_t repo;
        const unsigned char *rest;
        size_t n;
        if (!br_key_split(&k, &repo, &rest, &n) || repo.len == 0 || repo.len > BR_NAME_MAX) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        br_key_init(&prefix, repo);
        repo = br_str((const char *)prefix.buf, prefix.len - 1);
        const br_retention_rule_t *rule = g->o->retention_rule(g->o->rctx, repo);
        if (rule != NULL) {
            if ((ret = load_repo_tags(g, &prefix)) != 0)
                goto Exit;
            retention_decide(g, rule, repo);
            for (size_t i = 0; i < g->nrtags; i++) {
                rtag_t *r = &g->rtags[i];
                if (!r->del)
                    continue;
                const unsigned char *key = rtag_key(g, r);
                br_key_t mk;
                ent_t *e = list_add(g, &g->rets, key, r->klen + r->vlen);
                e->len = r->klen;
                e->vlen = r->vlen;
                e->size = r->pushed_ms;
                /* the mtags key: repo \0 D tag */
                br_key_init(&mk, repo);
                br_key_add(&mk, key + r->klen, br_pdigest_len(key[r->klen]));
                br_key_add(&mk, key + prefix.len, r->klen - prefix.len);
                list_add(g, &g->rmtags, mk.buf, mk.len);
                if (g->o->dry_run)
                    retention_report(g, e, rule);
            }
        }
        /* On to the next repository: every key of this one sorts before "repo \1". */
        seek = prefix;
        seek.buf[seek.len - 1] = 1;
        k = br_key_val(&seek);
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    if (rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    if (g->rmtags.n != 0)
        qsort_r(g->rmtags.v, g->rmtags.n, sizeof(*g->rmtags.v), ent_cmp, g);
Exit:
    mdb_cursor_close(cur);
    return ret;
}

/* ---- plan ------------------------------------------------------------------------ */

static int plan_manifests(gc_t *g)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t t;
    int rc, ret = 0, found, changed;
    if ((rc = mdb_cursor_open(g->txn, g->s->db_manifests, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((ret = tagged(g, k.mv_data, k.mv_size, 1)) != 0) {
            if (ret < 0)
                goto Exit;
            ret = 0;
            continue;
        }
        if ((ret = link_time(g, k.mv_data, k.mv_size, &t, &found)) != 0)
            goto Exit;
        if (!found || old_enough(g, t))
            list_add(g, &g->cands, k.mv_data, k.mv_size);
    }
    if (rc != MDB_NOTFOUND) {
        ret = br_store_mdb_err(rc, "cursor walk");
        goto Exit;
    }
    /* An index goes before the manifests it holds, a subject before its
     * referrers: each pass collects what the previous ones freed, and the
     * execution follows the same order. */
    do {
        changed = 0;
        for (size_t i = 0; i < g->cands.n; i++) {
            ent_t *e = &g->cands.v[i];
            if (e->collected)
                continue;
            if ((ret = manifest_collectable(g, g->arena + e->off, e->len, 1)) < 0)
                goto Exit;
            if (ret == 1) {
                e->collected = 1;
                changed = 1;
                list_ref(&g->mans, e);
            }
            ret = 0;
        }
    } while (changed);
Exit:
    mdb_cursor_close(cur);
    return ret;
}

static int plan_links(gc_t *g)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;
    if ((rc = mdb_cursor_open(g->txn, g->s->db_links, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        /* The body link of a manifest being collected goes with it. */
        ent_t *e = cand_find(g, k.mv_data, k.mv_size);
        if (e != NULL && e->collected)
            continue;
        if ((ret = link_collectable(g, k.mv_data, k.mv_size, br_link_time(g->s, &v), 1)) < 0)
            goto Exit;
        if (ret == 1)
            list_add(g, &g->links, k.mv_data, k.mv_size);
        ret = 0;
    }
    if (rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
Exit:
    mdb_cursor_close(cur);
    return ret;
}

/* The digest at the end of a key "repo \0 D". */
static const unsigned char *key_digest(const unsigned char *key, size_t len)
{
    const unsigned char *nul = memchr(key, '\0', len);
    return nul != NULL ? nul + 1 : key;
}

static int plan_blobs(gc_t *g)
{
    MDB_cursor *cur;
    MDB_val k, v;
    br_blob_rec_t rec;
    br_pd_t key;
    int rc, ret = 0;
    /* What the collected manifests and links hold now is given back. */
    for (size_t i = 0; i < g->mans.n; i++) {
        MDB_val mk = ent_key(g, &g->mans.v[i]), mv;
        br_mani_view_t m;
        int found;
        uint64_t t;
        if ((rc = mdb_get(g->txn, g->s->db_manifests, &mk, &mv)) != 0 || br_mani_parse(mv.mv_data, mv.mv_size, &m) != 0)
            return rc != 0 ? br_store_mdb_err(rc, "read manifest") : BR_E_CORRUPT;
        for (const unsigned char *r = m.refs; r < (const unsigned char *)mv.mv_data + mv.mv_size; r += br_pdigest_len(r[0]))
            dec_add(g, r);
        if ((ret = link_time(g, mk.mv_data, mk.mv_size, &t, &found)) != 0)
            return ret;
        if (found)
            dec_add(g, key_digest(mk.mv_data, mk.mv_size));
    }
    for (size_t i = 0; i < g->links.n; i++)
        dec_add(g, key_digest(g->arena + g->links.v[i].off, g->links.v[i].len));
    if (g->ndec != 0) /* qsort of NULL is undefined even for 0 elements */
        qsort(g->dec, g->ndec, sizeof(*g->dec), br_pd_cmp);

    if ((rc = mdb_cursor_open(g->txn, g->s->db_blobs, &cur)) != 0)
        return br_store_mdb_err(rc, "cursor open");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == 0 || br_pdigest_len(((unsigned char *)k.mv_data)[0]) != k.mv_size || br_blob_rec_read(&v, &rec) != 0)
            continue; /* damage: fsck's to report, not ours to remove */
        br_pd_set(&key, k.mv_data);
        size_t c = br_pd_count(g->dec, g->ndec, &key);
        int take;
        if (rec.flags & BR_BLOB_DYING)
            take = 1; /* a collection stopped half-way: finish it */
        else if (rec.refs != c)
            take = 0;
        else if (c != 0)
            take = 1; /* this collection takes its last references: their grace is over */
        else
            take = rec.unref_at != 0 && old_enough(g, rec.unref_at);
        if (take)
            list_add(g, &g->blobs, k.mv_data, k.mv_size)->size = rec.size;
    }
    if (rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "cursor walk");
    mdb_cursor_close(cur);
    return ret;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A file name in blobs/<alg>/<xx>/ as a digest: lowercase hex of the right
 * length, starting with xx. 0 when it is none. */
static int name_digest(br_alg_t alg, const char *xx, const char *name, br_digest_t *d)
{
    size_t n = strlen(name), want = alg == BR_ALG_SHA256 ? 64 : 128;
    if (n != want || name[0] != xx[0] || name[1] != xx[1])
        return 0;
    for (size_t i = 0; i < n; i++)
        if (hexval((unsigned char)name[i]) < 0)
            return 0;
    d->alg = alg;
    memcpy(d->hex, name, n + 1);
    d->hex_len = (unsigned char)n;
    return 1;
}

int br_blob_files_walk(br_store_t *s, br_blob_file_cb cb, void *ctx)
{
    static const br_alg_t algs[] = {BR_ALG_SHA256, BR_ALG_SHA512};
    static const char hexdigits[] = "0123456789abcdef";
    int ret = 0;
    for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]) && ret == 0; a++) {
        for (int b = 0; b < 256 && ret == 0; b++) {
            char xx[3] = {hexdigits[b >> 4], hexdigits[b & 15], '\0'};
            /* Its own descriptor: a directory stream's offset must not be shared. */
            int fd = openat(s->blob_fd[algs[a]], xx, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            DIR *dir;
            struct dirent *e;
            if (fd < 0)
                continue;
            if ((dir = fdopendir(fd)) == NULL) {
                close(fd);
                continue;
            }
            while (ret == 0 && (e = readdir(dir)) != NULL) {
                br_digest_t d;
                struct stat st;
                if (e->d_name[0] == '.')
                    continue;
                if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                    continue;
                if (!name_digest(algs[a], xx, e->d_name, &d) || !S_ISREG(st.st_mode))
                    ret = cb(ctx, algs[a], xx, e->d_name, NULL, &st);
                else
                    ret = cb(ctx, algs[a], xx, e->d_name, &d, &st);
            }
            closedir(dir);
        }
    }
    return ret;
}

static int on_plan_file(void *ctx, br_alg_t alg, const char *dir, const char *name, const br_digest_t *d, const struct stat *st)
{
    gc_t *g = ctx;
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_val k, v;
    int rc;
    (void)alg;
    (void)dir;
    (void)name;
    if (d == NULL)
        return 0; /* not a blob name: fsck reports it, nobody removes it */
    k.mv_size = br_pdigest_pack(d, pd);
    k.mv_data = pd;
    if ((rc = mdb_get(g->txn, g->s->db_blobs, &k, &v)) == 0)
        return 0;
    if (rc != MDB_NOTFOUND)
        return br_store_mdb_err(rc, "read blob");
    /* Files land in blobs/ before the txn that records them: only an old
     * unrecorded file is an orphan (and the removal re-checks in a txn). */
    if (st->st_mtime >= 0 && old_enough(g, (uint64_t)st->st_mtime))
        list_add(g, &g->orphans, pd, k.mv_size)->size = (uint64_t)st->st_size;
    return 0;
}

static int plan(gc_t *g)
{
    int ret;
    if ((ret = br_store_rtxn_begin(g->s, &g->txn)) != 0)
        return ret;
    progress(g, "plan", 0, 4);
    if (g->o->retention_rule != NULL && (ret = plan_retention(g)) != 0)
        goto Exit;
    if (g->o->untagged_delete && (ret = plan_manifests(g)) != 0)
        goto Exit;
    progress(g, "plan", 1, 4);
    if ((ret = plan_links(g)) != 0)
        goto Exit;
    progress(g, "plan", 2, 4);
    if ((ret = plan_blobs(g)) != 0)
        goto Exit;
    progress(g, "plan", 3, 4);
    ret = br_blob_files_walk(g->s, on_plan_file, g);
    progress(g, "plan", 4, 4);
Exit:
    br_store_rtxn_end(g->s, g->txn);
    g->txn = NULL;
    return ret;
}

/* ---- execution ----------------------------------------------------------------- */

static int cancelled(gc_t *g)
{
    return g->o->cancel != NULL && *g->o->cancel;
}

/* The loaded tag with this key, or NULL (g->rtags in key order). */
static rtag_t *rtag_find(gc_t *g, const void *key, size_t len)
{
    size_t lo = 0, hi = g->nrtags;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        rtag_t *r = &g->rtags[mid];
        int c = key_cmp(rtag_key(g, r), r->klen, key, len);
        if (c == 0)
            return r;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Deletes the planned tags, a batch of one repository per write txn, each
 * decided again there (storage.h). The repository's tags are read again in
 * each txn unless no other writer has committed since this one's last txn
 * (LMDB's txn ids are global to the environment): then what was read is
 * still the index, less the tags deleted here, and deleting tags ranked
 * beyond keep_last moves no other tag into it. So a pass over N tags costs
 * O(N) reads on a quiet store, not one read of all of them per batch. */
static int run_retention(gc_t *g)
{
    br_key_t loaded; /* the repository whose tags g->rtags holds */
    size_t last_id = 0; /* the last txn id that committed with g->rtags current */
    int ret = 0;
    loaded.len = 0;
    for (size_t i = 0; i < g->rets.n && ret == 0;) {
        const unsigned char *first = g->arena + g->rets.v[i].off, *nul = memchr(first, '\0', g->rets.v[i].len);
        br_key_t prefix;
        br_str_t repo;
        size_t start = i;
        uint64_t done = 0;
        if (cancelled(g))
            return ECANCELED;
        br_key_init(&prefix, br_str((const char *)first, (size_t)(nul - first)));
        repo = br_str((const char *)prefix.buf, prefix.len - 1);
        const br_retention_rule_t *rule = g->o->retention_rule(g->o->rctx, repo);
        if ((ret = br_store_wtxn_begin(g->s, &g->txn)) != 0)
            return ret;
        size_t id = mdb_txn_id(g->txn);
        int current = loaded.len == prefix.len && memcmp(loaded.buf, prefix.buf, prefix.len) == 0 && id == last_id + 1;
        if (rule != NULL && !current) {
            loaded.len = 0;
            if ((ret = load_repo_tags(g, &prefix)) == 0) {
                retention_decide(g, rule, repo);
                loaded = prefix;
            }
        }
        for (size_t end = i + BATCH_TAGS; i < g->rets.n && i < end; i++) {
            ent_t *e = &g->rets.v[i];
            const unsigned char *key = g->arena + e->off;
            if (e->len < prefix.len || memcmp(key, prefix.buf, prefix.len) != 0)
                break; /* the next repository: its own txn */
            rtag_t *r = ret == 0 && rule != NULL ? rtag_find(g, key, e->len) : NULL;
            /* Still the row the plan saw (not pushed again) and still deleted by the rule. */
            if (r == NULL || !r->del || r->vlen != e->vlen || memcmp(rtag_key(g, r) + r->klen, key + e->len, e->vlen) != 0)
                continue;
            ret = br_txn_tag_drop(g->s, g->txn, repo, br_str((const char *)key + prefix.len, e->len - prefix.len), key + e->len);
            e->collected = ret == 0;
            ++done;
        }
        /* A txn that changed nothing commits no id of its own. */
        last_id = done != 0 ? id : id - 1;
        if ((ret = br_store_wtxn_end(&g->txn, ret)) != 0)
            break;
        g->st->tags += done;
        for (size_t j = start; j < i; j++)
            if (g->rets.v[j].collected)
                retention_report(g, &g->rets.v[j], rule);
        progress(g, "retention", i, g->rets.n);
    }
    return ret;
}

static int run_manifests(gc_t *g)
{
    int ret = 0;
    for (size_t i = 0; i < g->mans.n && ret == 0;) {
        if (cancelled(g))
            return ECANCELED;
        if ((ret = br_store_wtxn_begin(g->s, &g->txn)) != 0)
            return ret;
        uint64_t done = 0;
        for (size_t end = i + BATCH_MANIFESTS; i < g->mans.n && i < end && ret == 0; i++) {
            const unsigned char *key = g->arena + g->mans.v[i].off;
            size_t len = g->mans.v[i].len;
            const unsigned char *pd = key_digest(key, len);
            if ((ret = manifest_collectable(g, key, len, 0)) <= 0)
                continue;
            ret = br_txn_manifest_delete(g->s, g->txn, br_str((const char *)key, (size_t)(pd - key) - 1), pd, BR_UNREF_STALE);
            ++done;
        }
        if ((ret = br_store_wtxn_end(&g->txn, ret)) == 0)
            g->st->manifests += done;
        progress(g, "manifests", i, g->mans.n);
    }
    return ret;
}

static int run_links(gc_t *g)
{
    int ret = 0;
    for (size_t i = 0; i < g->links.n && ret == 0;) {
        if (cancelled(g))
            return ECANCELED;
        if ((ret = br_store_wtxn_begin(g->s, &g->txn)) != 0)
            return ret;
        uint64_t done = 0;
        for (size_t end = i + BATCH_LINKS; i < g->links.n && i < end && ret == 0; i++) {
            const unsigned char *key = g->arena + g->links.v[i].off;
            size_t len = g->links.v[i].len;
            const unsigned char *pd = key_digest(key, len);
            uint64_t t;
            int found;
            br_digest_t d;
            if ((ret = link_time(g, key, len, &t, &found)) != 0 || !found)
                continue;
            if ((ret = link_collectable(g, key, len, t, 0)) <= 0)
                continue;
            br_pdigest_unpack(pd, len - (size_t)(pd - key), &d);
            ret = br_txn_unlink(g->s, g->txn, br_str((const char *)key, (size_t)(pd - key) - 1), &d, BR_UNREF_STALE);
            ++done;
        }
        if ((ret = br_store_wtxn_end(&g->txn, ret)) == 0)
            g->st->links += done;
        progress(g, "links", i, g->links.n);
    }
    return ret;
}

/* Moves blob d's file to the trash (inside the caller's write txn). 0 also
 * when it is already gone; *moved says whether a trash entry was made. */
static int trash_file(gc_t *g, const br_digest_t *d, char *name, int *moved)
{
    int dfd, ret;
    *moved = 0;
    if ((ret = br_blob_subdir(g->s, d, &dfd)) != 0)
        return ret;
    br_uuid_generate(name);
    if (renameat(dfd, d->hex, g->trash_fd, name) == 0) {
        *moved = 1;
        return 0;
    }
    if (errno == ENOENT)
        return 0;
    if (errno != EXDEV)
        return errno;
    /* trash/ on another file system: remove in place (slower, still in the txn). */
    return unlinkat(dfd, d->hex, 0) == 0 || errno == ENOENT ? 0 : errno;
}

static void trash_empty(gc_t *g, char (*names)[BR_UUID_LEN + 1], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i][0] != '\0')
            unlinkat(g->trash_fd, names[i], 0);
}

/* Blobs: a txn marks the batch dying (re-checked), a second moves each file
 * out of blobs/ and deletes its row, then the trash is emptied outside any txn. */
static int run_blobs(gc_t *g)
{
    char (*names)[BR_UUID_LEN + 1] = br_malloc(BATCH_BLOBS * sizeof(*names));
    unsigned char keep[BATCH_BLOBS];
    int ret = 0;
    for (size_t i = 0; i < g->blobs.n && ret == 0;) {
        size_t first = i, end = i + BATCH_BLOBS < g->blobs.n ? i + BATCH_BLOBS : g->blobs.n;
        if (cancelled(g)) {
            ret = ECANCELED;
            break;
        }
        if ((ret = br_store_wtxn_begin(g->s, &g->txn)) != 0)
            break;
        for (; i < end && ret == 0; i++) {
            MDB_val k = ent_key(g, &g->blobs.v[i]), v;
            br_blob_rec_t rec;
            int rc;
            keep[i - first] = 0;
            if ((rc = mdb_get(g->txn, g->s->db_blobs, &k, &v)) != 0) {
                ret = rc == MDB_NOTFOUND ? 0 : br_store_mdb_err(rc, "read blob");
                continue;
            }
            if (br_blob_rec_read(&v, &rec) != 0)
                continue;
            if (!(rec.flags & BR_BLOB_DYING)) {
                if (rec.refs != 0 || rec.unref_at == 0 || !old_enough(g, rec.unref_at))
                    continue;
                rec.flags |= BR_BLOB_DYING;
                v.mv_size = sizeof(rec);
                v.mv_data = &rec;
                if ((rc = mdb_put(g->txn, g->s->db_blobs, &k, &v, 0)) != 0) {
                    ret = br_store_mdb_err(rc, "mark blob");
                    continue;
                }
            }
            keep[i - first] = 1;
        }
        if ((ret = br_store_wtxn_end(&g->txn, ret)) != 0)
            break;
        /* Committed: from here a writer of the same content places its file
         * again in its own txn (br_txn_blob_record), so the moves below
         * cannot take a file a commit relies on. */
        uint64_t nb = 0, bytes = 0;
        if ((ret = br_store_wtxn_begin(g->s, &g->txn)) != 0)
            break;
        for (size_t j = first; j < end; j++) {
            MDB_val k = ent_key(g, &g->blobs.v[j]), v;
            br_blob_rec_t rec;
            br_digest_t d;
            int rc, moved;
            names[j - first][0] = '\0';
            if (!keep[j - first] || ret != 0)
                continue;
            if ((rc = mdb_get(g->txn, g->s->db_blobs, &k, &v)) != 0 || br_blob_rec_read(&v, &rec) != 0 ||
                !(rec.flags & BR_BLOB_DYING))
                continue;
            br_pdigest_unpack(k.mv_data, k.mv_size, &d);
            if ((ret = trash_file(g, &d, names[j - first], &moved)) != 0)
                continue;
            if (!moved)
                names[j - first][0] = '\0';
            if ((rc = mdb_del(g->txn, g->s->db_blobs, &k, NULL)) != 0) {
                ret = br_store_mdb_err(rc, "delete blob");
                continue;
            }
            if ((ret = br_txn_blob_bytes_add(g->s, g->txn, -(int64_t)rec.size)) != 0)
                continue;
            ++nb;
            bytes += rec.size;
        }
        if ((ret = br_store_wtxn_end(&g->txn, ret)) == 0) {
            g->st->blobs += nb;
            g->st->bytes += bytes;
        }
        /* Also after a failed commit: the rows stay dying and their files
         * are no longer needed by anyone. */
        trash_empty(g, names, end - first);
        progress(g, "blobs", i, g->blobs.n);
    }
    free(names);
    return ret;
}

static int run_orphans(gc_t *g)
{
    char (*names)[BR_UUID_LEN + 1] = br_malloc(BATCH_BLOBS * sizeof(*names));
    int ret = 0;
    for (size_t i = 0; i < g->orphans.n && ret == 0;) {
        size_t first = i, end = i + BATCH_BLOBS < g->orphans.n ? i + BATCH_BLOBS : g->orphans.n;
        uint64_t nb = 0, bytes = 0;
        if (cancelled(g)) {
            ret = ECANCELED;
            break;
        }
        if ((ret = br_store_wtxn_begin(g->s, &g->txn)) != 0)
            break;
        for (; i < end; i++) {
            MDB_val k = ent_key(g, &g->orphans.v[i]), v;
            br_digest_t d;
            int rc, moved;
            names[i - first][0] = '\0';
            if (ret != 0)
                continue;
            /* Recorded meanwhile: a writer placed it and committed. */
            if ((rc = mdb_get(g->txn, g->s->db_blobs, &k, &v)) != MDB_NOTFOUND) {
                ret = rc == 0 ? 0 : br_store_mdb_err(rc, "read blob");
                continue;
            }
            br_pdigest_unpack(k.mv_data, k.mv_size, &d);
            if ((ret = trash_file(g, &d, names[i - first], &moved)) != 0 || !moved) {
                names[i - first][0] = '\0';
                continue;
            }
            ++nb;
            bytes += g->orphans.v[i].size;
        }
        /* The moves happened under the writer lock whether or not this
         * commits: count them either way. */
        ret = br_store_wtxn_end(&g->txn, ret);
        g->st->blobs += nb;
        g->st->bytes += bytes;
        trash_empty(g, names, end - first);
        progress(g, "orphans", i, g->orphans.n);
    }
    free(names);
    return ret;
}

int br_trash_open(br_store_t *s, int *fd)
{
    if (mkdirat(s->root_fd, "trash", 0755) != 0 && errno != EEXIST)
        return errno;
    return (*fd = openat(s->root_fd, "trash", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ? errno : 0;
}

int br_orphan_remove(br_store_t *s, int trash_fd, const br_digest_t *d, int *removed)
{
    unsigned char pd[BR_PDIGEST_MAX];
    char name[BR_UUID_LEN + 1];
    MDB_txn *txn = NULL;
    MDB_val k = {br_pdigest_pack(d, pd), pd}, v;
    int rc, ret, dfd;
    *removed = 0;
    if ((ret = br_blob_subdir(s, d, &dfd)) != 0 || (ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_get(txn, s->db_blobs, &k, &v)) != MDB_NOTFOUND) {
        ret = rc == 0 ? 0 : br_store_mdb_err(rc, "read blob");
        goto Exit;
    }
    br_uuid_generate(name);
    if (renameat(dfd, d->hex, trash_fd, name) == 0)
        *removed = 1;
    else if (errno != ENOENT)
        ret = errno;
Exit:
    /* Nothing to commit: the txn only kept writers out while the file moved. */
    mdb_txn_abort(txn);
    if (*removed)
        unlinkat(trash_fd, name, 0);
    return ret;
}

/* trash/ holds only files already out of the index; whatever a stopped
 * collection left there goes first. */
static int trash_open(gc_t *g)
{
    DIR *dir;
    struct dirent *e;
    int fd, ret;
    if ((ret = br_trash_open(g->s, &g->trash_fd)) != 0)
        return ret;
    if ((fd = openat(g->s->root_fd, "trash", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return errno;
    if ((dir = fdopendir(fd)) == NULL) {
        close(fd);
        return errno;
    }
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            unlinkat(g->trash_fd, e->d_name, 0);
    closedir(dir);
    return 0;
}

int br_gc_lock(br_store_t *s, int wait, int *fd)
{
    if ((*fd = openat(s->root_fd, "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return errno;
    while (flock(*fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EINTR)
            continue;
        int err = errno;
        close(*fd);
        *fd = -1;
        return err == EWOULDBLOCK ? BR_E_BUSY : err;
    }
    return 0;
}

int br_store_gc(br_store_t *s, const br_gc_options_t *o, br_gc_stats_t *st)
{
    gc_t g;
    int ret, lock_fd = -1;
    memset(&g, 0, sizeof(g));
    memset(st, 0, sizeof(*st));
    g.s = s;
    g.o = o;
    g.st = st;
    g.trash_fd = -1;
    if (!o->dry_run && (ret = br_gc_lock(s, o->wait, &lock_fd)) != 0)
        return ret;
    if (!o->dry_run && (ret = trash_open(&g)) != 0)
        goto Exit;
    g.now_ms = o->now_s != 0 ? o->now_s * 1000 : br_now_ms();
    g.now = g.now_ms / 1000;
    if ((ret = plan(&g)) != 0)
        goto Exit;
    if (o->dry_run) {
        st->tags = g.rets.n;
        st->manifests = g.mans.n;
        st->links = g.links.n;
        st->blobs = g.blobs.n + g.orphans.n;
        for (size_t i = 0; i < g.blobs.n; i++)
            st->bytes += g.blobs.v[i].size;
        for (size_t i = 0; i < g.orphans.n; i++)
            st->bytes += g.orphans.v[i].size;
        goto Exit;
    }
    if ((ret = run_retention(&g)) != 0 || (ret = run_manifests(&g)) != 0 || (ret = run_links(&g)) != 0 || (ret = run_blobs(&g)) != 0 ||
        (ret = run_orphans(&g)) != 0)
        goto Exit;
Exit:
    if (g.txn != NULL)
        mdb_txn_abort(g.txn);
    if (g.trash_fd >= 0)
        close(g.trash_fd);
    if (lock_fd >= 0)
        close(lock_fd); /* releases the flock */
    free(g.arena);
    free(g.cands.v);
    free(g.mans.v);
    free(g.links.v);
    free(g.blobs.v);
    free(g.orphans.v);
    free(g.dec);
    free(g.rets.v);
    free(g.rmtags.v);
    free(g.rbuf);
    free(g.rtags);
    return ret;
}
