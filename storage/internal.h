/*
 * storage/ internals shared by store.c, blobs.c, uploads.c and manifests.c.
 * Never included from another folder.
 */
#ifndef BR_STORAGE_INTERNAL_H
#define BR_STORAGE_INTERNAL_H

#include <pthread.h>
#include <sys/stat.h>
#include <lmdb.h>
#include "storage/storage.h"

/* A digest as it sits inside index keys and values: one algorithm byte
 * (BR_ALG_SHA256 or BR_ALG_SHA512) followed by the raw hash. Half the size of
 * the hex form, which keeps the longest key (referrers: repo, NUL, two
 * digests) under LMDB's 511-byte key limit, and its length is implied by the
 * first byte, so keys need no separator after it. */
#define BR_PDIGEST_MAX 65
size_t br_pdigest_len(unsigned char alg_byte); /* 0 when the byte is no algorithm */
size_t br_pdigest_pack(const br_digest_t *d, unsigned char *out);
/* Returns the packed length consumed, 0 when p does not start with a packed digest. */
size_t br_pdigest_unpack(const unsigned char *p, size_t len, br_digest_t *d);

/* Longest key any sub-database uses: repo NUL digest digest, or repo NUL digest tag. */
#define BR_KEY_MAX (BR_NAME_MAX + 1 + 2 * BR_PDIGEST_MAX)

/* Index keys are built in caller-provided buffers (no allocation). */
typedef struct st_br_key_t {
    unsigned char buf[BR_KEY_MAX];
    size_t len;
} br_key_t;
void br_key_init(br_key_t *k, br_str_t repo);              /* "repo\0" */
void br_key_add(br_key_t *k, const void *p, size_t len);    /* append raw bytes */
void br_key_add_digest(br_key_t *k, const br_digest_t *d); /* append packed digest */
/* "D repo": the holders key, the reverse of the links key "repo\0D" (pd is a
 * packed digest). */
void br_key_holder(br_key_t *k, const unsigned char *pd, br_str_t repo);
/* Splits a key "repo\0<rest>"; 0 when it has no NUL. */
int br_key_split(const MDB_val *k, br_str_t *repo, const unsigned char **rest, size_t *rest_len);
static inline MDB_val br_key_val(br_key_t *k)
{
    MDB_val v = {k->len, k->buf};
    return v;
}

/* Value of the blobs sub-database. unref_at is when refs last became 0
 * (seconds since the epoch), 0 while referenced: the collector's grace period
 * starts there, so a blob that just lost its last reference, or was just
 * stored and is about to be referenced, is not removed under a push. The
 * collector's own unlinks set it to BR_UNREF_STALE (their grace has already
 * passed). flags BR_BLOB_DYING: the collector has decided to remove it (see
 * storage.h); its file may be gone. Rows written before schema 3 are 24 bytes
 * (no flags): read them with br_blob_rec_read. */
typedef struct st_br_blob_rec_t {
    uint64_t size;
    uint64_t refs;
    uint64_t unref_at;
    uint64_t flags;
} br_blob_rec_t;
#define BR_BLOB_DYING 1u
/* Scrub found the file's bytes not matching the digest (or the file gone):
 * lookups treat the blob as absent until a push of the same content places
 * a good file (br_txn_blob_record) and clears the flag; the counts stay. */
#define BR_BLOB_QUARANTINED 2u
#define BR_UNREF_STALE 1u
#define BR_BLOB_REC_V2 24u
/* 0, or BR_E_CORRUPT when v is no blob row. */
int br_blob_rec_read(const MDB_val *v, br_blob_rec_t *rec);

/* A packed digest in a fixed buffer, zero padded: memcmp order is the index
 * order (sorted lists of digests in verify and the collector). */
typedef struct st_br_pd_t {
    unsigned char b[BR_PDIGEST_MAX];
} br_pd_t;
void br_pd_set(br_pd_t *p, const unsigned char *pd);
/* Appends pd to the growable array *v of *n entries and *cap slots (both
 * zero for an empty one; the caller frees *v). */
void br_pd_push(br_pd_t **v, size_t *n, size_t *cap, const unsigned char *pd);
int br_pd_cmp(const void *a, const void *b);
/* Number of entries of sorted v[0..n) equal to key. */
size_t br_pd_count(const br_pd_t *v, size_t n, const br_pd_t *key);

/* Value of a links row: when the link was last made (seconds since the
 * epoch). Rows from before schema 3 are empty and read as s->links_epoch,
 * the moment the index was upgraded: never older than the truth. */
uint64_t br_link_time(const br_store_t *s, const MDB_val *v);

/* Value of a tags row: the packed digest the tag names, then (schema 4) when
 * a manifest put last named the tag, u64 milliseconds since the epoch (every
 * put naming it sets it, the same digest again included). Rows from before 4
 * are the digest alone. Reads v: *pd_len the digest's length, *pushed_ms the
 * time, 0 for an old row. 0 or BR_E_CORRUPT. */
int br_tag_val_read(const MDB_val *v, size_t *pd_len, uint64_t *pushed_ms);
/* Removes tag (whose target is the packed digest pd) from tags and mtags. */
int br_txn_tag_drop(br_store_t *s, MDB_txn *txn, br_str_t repo, br_str_t tag, const unsigned char *pd);

/* Rows of the manifests and referrers sub-databases (layout in store.c). */
typedef struct st_br_mani_hdr_t {
    uint64_t size;
    uint32_t nrefs;
    uint16_t mt_len;
    uint8_t subj_len;
    uint8_t _pad;
} br_mani_hdr_t;

typedef struct st_br_ref_hdr_t {
    uint64_t size;
    uint16_t mt_len;
    uint16_t at_len;
    uint32_t ann_len;
} br_ref_hdr_t;

/* A manifest row, pointing into the buffer it was parsed from. */
typedef struct st_br_mani_view_t {
    br_mani_hdr_t h;
    const char *media_type;
    const unsigned char *subject; /* NULL when none */
    const unsigned char *refs;    /* nrefs packed digests, back to back */
} br_mani_view_t;

/* Validates a manifests row and points m into it. 0 or BR_E_CORRUPT. */
int br_mani_parse(const void *p, size_t len, br_mani_view_t *m);

/* Live upload handles, by uuid: the claim that gives BR_E_BUSY and keeps purge away. */
typedef struct st_br_claim_t {
    struct st_br_claim_t *next;
    char uuid[BR_UUID_LEN + 1];
} br_claim_t;
#define BR_CLAIM_BUCKETS 1024

#define BR_RTXN_POOL 64

struct st_br_store_t {
    MDB_env *env;
    MDB_dbi db_meta, db_repos, db_blobs, db_links, db_holders, db_manifests, db_tags, db_mtags, db_referrers, db_uploads,
        db_refby, db_events, db_qusage;
    uint64_t links_epoch; /* meta "links_epoch": see br_link_time */
    int fsync;
    int root_fd, blob_fd[3], uploads_fd; /* blob_fd indexed by br_alg_t */
    int lock_fd;                         /* <root>/berth.lock, flock()ed; -1 when not exclusive */
    int sub_fd[3][256];                  /* blobs/<alg>/<2 hex>, opened lazily; -1 until then */
    char *root;
    char *tmp_dir;
    pthread_mutex_t lock; /* guards claims and the read-txn pool */
    br_claim_t *claims[BR_CLAIM_BUCKETS];
    MDB_txn *rtxn_pool[BR_RTXN_POOL];
    size_t rtxn_count;
};

/* Translates an LMDB (or errno) failure into berth's error space, logging it. */
int br_store_mdb_err(int rc, const char *what);

/* Read transactions come from a small pool of reset ones (renew is cheaper than
 * begin, which mallocs and takes the reader-table lock). */
int br_store_rtxn_begin(br_store_t *s, MDB_txn **txn);
void br_store_rtxn_end(br_store_t *s, MDB_txn *txn);
int br_store_wtxn_begin(br_store_t *s, MDB_txn **txn);
/* Ends *txn if it is open: commits when ret is 0, else aborts; sets *txn to
 * NULL. Returns ret, or the commit's error. Every write path ends with it,
 * so no path can leave a write txn (and LMDB's writer lock) behind. */
int br_store_wtxn_end(MDB_txn **txn, int ret);

/* Calls cb with the rest of each key of dbi that starts with prefix and sorts
 * strictly after prefix‖last, at most n of them (*more as br_repo_list). */
int br_store_scan(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t prefix_len, br_str_t last, size_t n, br_name_cb cb,
                  void *ctx, int *more);

/* Claims a uuid for one holder; 0, or BR_E_BUSY when it is held. */
int br_store_claim(br_store_t *s, br_claim_t *c);
void br_store_unclaim(br_store_t *s, br_claim_t *c);

/* ---- helpers inside write transactions (blobs.c) ---- */

/* Where a writer's blob content can be placed from again: a file (dirfd,
 * name) that stays until the writer's txn ends, or bytes in memory. */
typedef struct st_br_blob_src_t {
    int dirfd;
    const char *name; /* NULL: use buf, len */
    const void *buf;
    size_t len;
} br_blob_src_t;

/* Records a stored blob if the index lacks it (refs 0). When the index lacks
 * it or the collector has marked it dying, the file's presence is checked
 * here, inside the write txn, and the file placed again from src when it is
 * gone: the collector removes files only inside its own write txns (see
 * storage.h), so this check and its removal are serialised. */
int br_txn_blob_record(br_store_t *s, MDB_txn *txn, const br_digest_t *d, uint64_t size, const br_blob_src_t *src);
/* Adds delta to a blob's reference count. A blob absent from the index (or
 * dying) is left alone and *counted (if given) set to 0, so callers can
 * remember which references they really took. When the count reaches 0,
 * unref_at becomes when (0 = now). */
int br_txn_blob_ref(br_store_t *s, MDB_txn *txn, const unsigned char *pd, int64_t delta, int *counted, uint64_t when);
/* Links d into repo (and creates repo); counts a reference only when the link
 * is new. An existing link gets its time renewed. */
int br_txn_link(br_store_t *s, MDB_txn *txn, br_str_t repo, const br_digest_t *d);
/* Removes the link; BR_E_BLOB_UNKNOWN when there was none. when as br_txn_blob_ref. */
int br_txn_unlink(br_store_t *s, MDB_txn *txn, br_str_t repo, const br_digest_t *d, uint64_t when);
/* Deletes manifest pd of repo (row, counted refs and their refby rows,
 * referrer row, tags, body link) inside txn; when as br_txn_blob_ref.
 * BR_E_MANIFEST_UNKNOWN when absent. */
int br_txn_manifest_delete(br_store_t *s, MDB_txn *txn, br_str_t repo, const unsigned char *pd, uint64_t when);
/* 1 when dbi has a key starting with prefix (len bytes), 0 when not, or an error < 0. */
int br_txn_has_prefix(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t len);
/* The cached descriptor of blobs/<alg>/<2 hex> for d, created on first use. */
int br_blob_subdir(br_store_t *s, const br_digest_t *d, int *fd);
/* Records repo as a holder of packed digest pd (the holders row of a links
 * row). br_txn_link calls it; so does the schema 1 -> 2 migration. */
int br_txn_holder_put(br_store_t *s, MDB_txn *txn, const unsigned char *pd, br_str_t repo);

/* Makes the file srcname (in directory srcfd, already fsynced) the content of
 * blob d: link()s it into blobs/ and fsyncs the directory. */
int br_blob_place(br_store_t *s, const br_digest_t *d, int srcfd, const char *srcname, uint64_t size);
/* Hashes fd from its current offset to the end; ECANCELED when *cancel (may
 * be NULL) becomes set. 0 or errno. */
int br_hash_fd(int fd, br_alg_t alg, volatile int *cancel, br_digest_t *out);

/* Makes sure blob d's file holds p (writing and placing it unless the index
 * already records d). Does not touch the index. */
int br_blob_store_buf(br_store_t *s, const br_digest_t *d, const void *p, size_t len);

/* Calls cb for every entry of blobs/<alg>/<2 hex>/ (dir is the 2 hex), with
 * d the digest its name spells, or NULL when the name is no digest of that
 * directory or the entry no regular file. cb returns 0 to go on. */
typedef int (*br_blob_file_cb)(void *ctx, br_alg_t alg, const char *dir, const char *name, const br_digest_t *d,
                               const struct stat *st);
int br_blob_files_walk(br_store_t *s, br_blob_file_cb cb, void *ctx);

/* The collectors' lock, flock on <root>/gc.lock (storage.h): 0 and *fd to
 * close to release it, or BR_E_BUSY when !wait and another holds it. */
int br_gc_lock(br_store_t *s, int wait, int *fd);
/* Opens (creating) <root>/trash/; *fd is the caller's to close. */
int br_trash_open(br_store_t *s, int *fd);
/* Removes the file of d from blobs/ when no blob row names it, deciding
 * inside a write txn as the collector does (storage.h, 4). *removed says
 * whether a file went. */
int br_orphan_remove(br_store_t *s, int trash_fd, const br_digest_t *d, int *removed);
/* After a writer's txn was refused (BR_E_QUOTA): takes back the file of d it
 * placed before that txn, unless a blob row names it (br_orphan_remove's
 * rule, so a racing writer of the same content places it again), so a
 * refused push leaves no orphan for fsck to report. Best effort. */
void br_blob_unplace(br_store_t *s, const br_digest_t *d);
/* Adds delta to the meta row "blob_bytes" (br_store_stats), inside the write
 * txn that adds (delta = size) or deletes (-size) a blob row. */
int br_txn_blob_bytes_add(br_store_t *s, MDB_txn *txn, int64_t delta);
/* The meta row "blob_bytes" (0 when absent). */
int br_txn_blob_bytes(br_store_t *s, MDB_txn *txn, uint64_t *total);

/* ---- quotas (quota.c), inside write txns -------------------------------------- */

/* Keeps the usage counters of the quota scopes recorded in the index
 * (br_store_quotas_set) right when the link (repo, pd) is made (delta +1:
 * before its holders row is written) or removed (-1: after its holders row
 * is gone). A new link that would take a scope over its limit fails with
 * BR_E_QUOTA (the txn must then be aborted). br_txn_link and br_txn_unlink
 * call it. */
int br_txn_quota_link(br_store_t *s, MDB_txn *txn, br_str_t repo, const unsigned char *pd, int delta);
/* Before the blob bytes of the store grow by add (a blob row recorded):
 * BR_E_QUOTA when that takes the store over its global limit. */
int br_txn_quota_store(br_store_t *s, MDB_txn *txn, uint64_t add);
/* For each recorded scope: cb with its counter and its usage recomputed from
 * the links (txn may be a read txn). A nonzero return of cb stops the walk
 * and is returned (verify). */
typedef int (*br_quota_check_cb)(void *ctx, br_str_t glob, uint64_t kept, uint64_t actual);
int br_txn_quota_each(br_store_t *s, MDB_txn *txn, br_quota_check_cb cb, void *ctx);
/* Recomputes every recorded scope's counter from the links, in one write
 * txn (fsck --repair, after it re-indexed blobs or found a counter wrong). */
int br_store_quotas_recount(br_store_t *s);

/* Fills buf (BR_UUID_LEN + 1) with a fresh random v4 uuid. */
void br_uuid_generate(char *buf);
int br_uuid_valid(br_str_t s);

/* Full write at offset, retrying short writes and EINTR. 0 or errno. */
int br_pwrite_all(int fd, const void *p, size_t len, uint64_t off);

#endif
