/*
 * berth storage: content-addressed blobs in a filesystem tree, indexed by LMDB.
 *
 *   <root>/blobs/<alg>/<2 hex>/<hex>   immutable content (layers, configs, manifests)
 *   <root>/uploads/<uuid>              bytes of in-progress uploads
 *   <root>/tmp/                        request-body spill files (owned by server/)
 *   <root>/index/                      LMDB environment
 *
 * A blob becomes visible only through the index. Commit order: fsync the file,
 * link()/rename() it into blobs/, fsync the directory, then one LMDB write
 * transaction that records it and links it to the repository. A crash at any
 * point leaves either nothing visible or a complete, verified blob; files in
 * blobs/ that no index entry names are harmless and collected later.
 *
 * Threads: one br_store_t is shared by all event-loop threads; every function
 * here is thread-safe unless it says otherwise. Each call runs its own short
 * LMDB transaction; none is held across calls. br_upload_t handles are not
 * shared: one request uses one at a time (a second resume of the same upload
 * while the first handle lives gets BR_E_BUSY).
 *
 * Strings: repository names, tags and media types come in as br_str_t and are
 * validated by the caller (br_name_valid, br_tag_valid) before they get here;
 * storage never builds a path from them (paths come only from digests and
 * uuids it generated itself).
 *
 * Errors: 0, errno (> 0) for I/O failures, or BR_E_* (< 0). LMDB errors are
 * translated inside storage (MDB_MAP_FULL → ENOSPC, others → BR_E_INTERNAL,
 * logged).
 *
 * Processes: one server per store, any number of tools beside it.
 *   - The server (`berth serve`) opens with exclusive = 1: br_store_open takes
 *     flock(LOCK_EX | LOCK_NB) on <root>/berth.lock, before it creates anything
 *     else under the root, writes its PID there and holds the lock until
 *     br_store_close. A second exclusive open, in this or another process,
 *     fails with EBUSY and br_store_lock_owner() names the holder. The kernel
 *     drops the lock when the process dies, kill -9 included, so a stale file
 *     never blocks a restart (the PID in it is only a hint).
 *   - Tools that work on a live store (berth gc, fsck, du) open with
 *     exclusive = 0, take no lock, and may run while a server runs. They
 *     coordinate with it only through the LMDB index, which is multi-process
 *     safe: one write transaction at a time across all processes (LMDB's own
 *     lock in index/lock.mdb), and read transactions see a consistent snapshot.
 *     So a tool (1) makes every decision that must hold against the server's
 *     writes inside one write transaction, re-reading what it decides on there
 *     (a read-then-write in two transactions races the server); (2) keeps
 *     every transaction short: a long write transaction stalls every push, a
 *     long read transaction pins old pages and grows the map; (3) changes
 *     files only in the order the commit order above allows (an index entry
 *     goes before its file, never after), so the server never sees an index
 *     entry without its file; (4) leaves uploads/ and tmp/ alone: which upload
 *     sessions are in use (br_upload_resume's claims) and which spill files are
 *     open lives in the server's memory, and only the server purges them.
 *   - A tool that needs the store to itself (an offline repair) opens with
 *     exclusive = 1 and so refuses to run beside a server.
 */
#ifndef BR_STORAGE_H
#define BR_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include "common/br.h"

typedef struct st_br_store_t br_store_t;
typedef struct st_br_upload_t br_upload_t;

typedef struct st_br_store_options_t {
    int fsync;            /* 0 only for tests that measure nothing about durability */
    uint64_t map_size;    /* LMDB map size in bytes; 0 = default (64 GiB, sparse) */
    int exclusive;        /* 1: hold <root>/berth.lock while open (the server); 0: share a live store (tools) */
} br_store_options_t;

/* Opens (creating if needed) the store at root. Creates the directory tree and
 * the LMDB environment. On a store left by a crash, needs no repair: partial
 * files in uploads/ and tmp/ are either resumable or purged later. With
 * opts->exclusive, first locks the store (see "Processes" above): EBUSY when
 * another handle holds it, and then nothing below the root is created.
 * *out is owned by the caller; free with br_store_close(). */
int br_store_open(br_store_t **out, const char *root, const br_store_options_t *opts);
/* Closes the handle (releasing the exclusive lock, if it held one). */
void br_store_close(br_store_t *s);
/* The PID written in <root>/berth.lock by the last exclusive opener (after
 * br_store_open returned EBUSY: the process holding the store), or 0 when
 * there is none or the file does not hold one. */
long br_store_lock_owner(const char *root);
/* The process that holds <root>/berth.lock now (a serving berth), from the
 * kernel's lock table (/proc/locks); 0 when none does or it cannot be read.
 * Takes no lock itself. */
long br_store_server_pid(const char *root);

/* ---- the event queue (notifications; events.c) -------------------------
 * Events are opaque bytes with increasing sequence numbers (from 1). Each
 * endpoint has a persistent position: the last sequence it acknowledged. */

/* Appends n events in one write txn; then, while more than max are queued,
 * drops the oldest and adds them to the persistent dropped counter
 * (*dropped, may be NULL: how many this call dropped). 0 or an error. */
int br_store_events_append(br_store_t *s, const br_str_t *ev, size_t n, uint64_t max, uint64_t *dropped);
/* Calls cb for up to max queued events with sequence > after, in order,
 * inside one read txn (ev is valid during the call only); a non-zero return
 * from cb stops and is returned. */
typedef int (*br_event_cb)(void *ctx, uint64_t seq, br_str_t ev);
int br_store_events_read(br_store_t *s, uint64_t after, size_t max, br_event_cb cb, void *ctx);
/* The position of endpoint name (0 when none is stored). */
int br_store_events_pos(br_store_t *s, const char *name, uint64_t *seq);
/* In one write txn: sets name's position to seq (name may be NULL: none) and
 * deletes the queued events with sequence <= trim_upto (the caller passes
 * the lowest position of its endpoints). */
int br_store_events_ack(br_store_t *s, const char *name, uint64_t seq, uint64_t trim_upto);
/* Events queued now, and dropped for room since the store was made. */
int br_store_events_stats(br_store_t *s, uint64_t *queued, uint64_t *dropped);
/* "<root>/tmp", NUL-terminated; owned by s. */
const char *br_store_tmp_dir(br_store_t *s);

/* ---- figures (for metrics and probes) ------------------------------------- */

typedef struct st_br_store_stats_t {
    uint64_t repositories;
    uint64_t blobs;      /* blob rows, including rows the collector has marked dying */
    uint64_t blob_bytes; /* the sum of their sizes */
    uint64_t manifests;  /* (repository, manifest) pairs */
    uint64_t tags;
    uint64_t uploads;    /* upload sessions in the index (started, not finished or purged) */
} br_store_stats_t;
/* Fills *st from one read transaction, without a scan: the counts are the
 * entries LMDB keeps for each table, and blob_bytes is a running total in the
 * meta table that every write transaction adding or deleting a blob row
 * updates itself (built once by a scan when an index lacks it). Cheap enough
 * for every scrape. 0 or an error. */
int br_store_stats(br_store_t *s, br_store_stats_t *st);
/* 0 when the store takes writes now (a file can be made and written in
 * <root>/tmp, and the index is not read-only), else the errno (EROFS, ENOSPC,
 * EACCES...). A few system calls: for readiness probes. */
int br_store_check_writable(br_store_t *s);

/* ---- repositories -------------------------------------------------------- */

/* 1 when the repository exists (it has had a blob linked or a manifest put). */
int br_repo_exists(br_store_t *s, br_str_t repo);
/* The id of the last committed write transaction: any change to the index
 * changes it, so a result computed at version v is current while the version
 * is still v (0 when unknown: never equal to a real one). */
uint64_t br_store_version(br_store_t *s);

/* Calls cb for up to n repository names in lexical order strictly after last
 * (last.len == 0: from the start). *more is set to 1 when names remain after
 * the n-th. cb's string is valid only during the call; cb returns 0 to go on. */
typedef int (*br_name_cb)(void *ctx, br_str_t name);
int br_repo_list(br_store_t *s, br_str_t last, size_t n, br_name_cb cb, void *ctx, int *more);

/* ---- blobs --------------------------------------------------------------- */

/* Size of a blob linked to repo. BR_E_BLOB_UNKNOWN if not stored or not linked. */
int br_blob_stat(br_store_t *s, br_str_t repo, const br_digest_t *d, uint64_t *size);
/* Opens a blob linked to repo for reading; *fd is the caller's to close. */
int br_blob_open(br_store_t *s, br_str_t repo, const br_digest_t *d, int *fd, uint64_t *size);
/* Size of a blob stored under any repository. BR_E_BLOB_UNKNOWN otherwise. */
int br_blob_stat_any(br_store_t *s, const br_digest_t *d, uint64_t *size);
/* Links an existing blob into repo (cross-repository mount). With from.len != 0
 * the blob must be linked to from; with from.len == 0 it may be anywhere.
 * Creates repo if needed. BR_E_BLOB_UNKNOWN when it is not there. */
int br_blob_mount(br_store_t *s, br_str_t repo, br_str_t from, const br_digest_t *d, uint64_t *size);
/* Decides whether a mount may take its blob from repository repo: 1 yes, 0
 * no. Called inside a write transaction, with the index's writer lock held:
 * must be cheap (pure CPU, like br_auth_may) and must not call into storage.
 * repo is valid only during the call. */
typedef int (*br_repo_pred_cb)(void *ctx, br_str_t repo);
/* Automatic cross-repository mount: links d into repo from the first
 * repository holding it, in name order, for which pred(ctx, holder) returns 1
 * (repo itself counts as a holder when it already links d). The choice and
 * the link are one write transaction, so a racing unlink in the holder
 * cannot leave a link to a blob nobody holds. Creates repo if needed.
 * BR_E_BLOB_UNKNOWN when no holder is accepted (or d is stored nowhere). */
int br_blob_mount_any(br_store_t *s, br_str_t repo, const br_digest_t *d, br_repo_pred_cb pred, void *ctx, uint64_t *size);
/* Unlinks a blob from repo. BR_E_BLOB_UNKNOWN when not linked. The content
 * stays until garbage collection finds no reference to it. */
int br_blob_unlink(br_store_t *s, br_str_t repo, const br_digest_t *d);
/* Stores a small blob given whole in memory (manifests and tests): hashes,
 * writes, commits and links, as an upload would. *out gets its digest. */
int br_blob_put(br_store_t *s, br_str_t repo, br_alg_t alg, const void *p, size_t len, br_digest_t *out);
/* Path of the blob file (for tests and diagnostics); buf of PATH_MAX. */
void br_blob_path(br_store_t *s, const br_digest_t *d, char *buf, size_t size);

/* ---- uploads ------------------------------------------------------------- */

#define BR_UUID_LEN 36

/* Starts an upload session for repo: creates uploads/<uuid> and its index
 * record. *out is the caller's; br_upload_destroy() releases it (the session
 * stays). */
int br_upload_start(br_store_t *s, br_str_t repo, br_upload_t **out);
/* Reopens a session by uuid. BR_E_BLOB_UPLOAD_UNKNOWN when no such session
 * exists for repo (or uuid is malformed); BR_E_BUSY when another live handle
 * has it. If the file is longer than the recorded size (crash after a write
 * whose save never happened), it is truncated back to the recorded size. */
int br_upload_resume(br_store_t *s, br_str_t repo, br_str_t uuid, br_upload_t **out);
/* NUL-terminated uuid, owned by the handle. */
const char *br_upload_uuid(const br_upload_t *u);
/* Bytes received so far (the next write goes at this offset). */
uint64_t br_upload_size(const br_upload_t *u);
/* Seconds since the epoch when the session started. */
uint64_t br_upload_started(const br_upload_t *u);
/* Appends len bytes and updates the running hash (br_upload_append, then
 * br_upload_hash). Not durable until save or commit. Returns 0 or errno (then
 * the session stays at its previous size). */
int br_upload_write(br_upload_t *u, const void *p, size_t len);
/* The two halves of br_upload_write, for a caller that hashes on another
 * thread while it writes. append adds len bytes at the end of the content
 * (0 or errno; on an error nothing of them counts); hash adds bytes to the
 * running hash (0, or BR_E_BLOB_UPLOAD_UNKNOWN once the session is finished).
 * The caller hands hash the same bytes as append, in the same order. The two
 * may run at the same time on two threads (they share no state), but each on
 * one thread at a time, and no other call on the handle may overlap either
 * (the caller orders them, e.g. through a queue's lock). save and commit
 * refuse with BR_E_INTERNAL, saving and committing nothing, while the bytes
 * appended and hashed differ in number. br_upload_size counts appended bytes. */
int br_upload_append(br_upload_t *u, const void *p, size_t len);
int br_upload_hash(br_upload_t *u, const void *p, size_t len);
/* Makes everything written so far durable and records the size and hash state,
 * so the session survives a restart at this point. */
int br_upload_save(br_upload_t *u);
/* Finishes the upload: the content's digest must equal expected, else
 * BR_E_DIGEST_INVALID and the session is removed with nothing stored. On
 * success the blob is committed (see top), linked to the session's
 * repository, the session removed, and *size set. The handle must still be
 * destroyed by the caller. */
int br_upload_commit(br_upload_t *u, const br_digest_t *expected, uint64_t *size);
/* Removes the session and its file (upload cancelled). Handle still to destroy. */
int br_upload_cancel(br_upload_t *u);
void br_upload_destroy(br_upload_t *u);
/* Removes sessions started more than max_age_s seconds ago that no live handle
 * holds. Returns the number removed (>= 0) or an error. */
int br_upload_purge(br_store_t *s, uint64_t max_age_s);

/* ---- manifests and tags -------------------------------------------------- */

/* What storage keeps about one manifest in one repository. */
typedef struct st_br_manifest_rec_t {
    br_digest_t digest;
    uint64_t size;
    char media_type[256];
} br_manifest_rec_t;

/* A descriptor of a manifest that names a subject: kept to answer referrers. */
typedef struct st_br_referrer_t {
    br_digest_t digest;
    uint64_t size;
    br_str_t media_type;
    br_str_t artifact_type;   /* may be empty */
    br_str_t annotations;     /* JSON object text, or empty */
} br_referrer_t;

typedef struct st_br_manifest_put_t {
    br_str_t repo;
    br_str_t body;            /* exact bytes as received; stored as a blob */
    br_alg_t alg;             /* digest algorithm for the body */
    br_str_t media_type;
    br_str_t tag;             /* empty when pushed by digest */
    const br_digest_t *refs;  /* blobs and manifests it references (for refcounts) */
    size_t num_refs;
    const br_digest_t *subject; /* NULL when none */
    br_str_t artifact_type;   /* for the referrers index; may be empty */
    br_str_t annotations;     /* JSON object text for the referrers index; may be empty */
    int tag_immutable;        /* tag may be created, or set to the digest it has, never moved */
} br_manifest_put_t;

/* Stores the body as a blob, records the manifest in repo, points tag at it
 * (atomically replacing the old target), records it as a referrer of subject,
 * and counts a reference to each of refs. Idempotent for the same body.
 * *out gets the body's digest. Every one of refs (blobs, or the manifests an
 * index names) must be linked in repo when the put's write transaction runs,
 * else BR_E_MANIFEST_BLOB_UNKNOWN and nothing is stored: the caller's own
 * earlier check (br_blob_stat, br_manifest_get) can be overtaken by the
 * collector, this one cannot (see garbage collection below). */
int br_manifest_put(br_store_t *s, const br_manifest_put_t *m, br_digest_t *out);
/* With m->tag_immutable, a tag that names another manifest already makes the
 * put fail with BR_E_DENIED (decided in the put's write txn, so two racing
 * pushes of one immutable tag cannot both win). */
/* Looks up a manifest by tag or by digest ("<alg>:<hex>"). Fills *rec.
 * BR_E_MANIFEST_UNKNOWN when absent (BR_E_NAME_UNKNOWN is never returned:
 * an absent repository simply has no manifests). */
int br_manifest_get(br_store_t *s, br_str_t repo, br_str_t reference, br_manifest_rec_t *rec);
/* Deletes a manifest by digest from repo: every tag pointing at it, its
 * referrer entry, and its references' counts. BR_E_MANIFEST_UNKNOWN if absent. */
int br_manifest_delete(br_store_t *s, br_str_t repo, const br_digest_t *d);
/* As br_manifest_delete, but first calls keep(ctx, tag) for every tag naming
 * the manifest, in the delete's write txn: when one returns nonzero nothing is
 * deleted and the result is BR_E_DENIED (immutable tags). keep must be cheap
 * and must not call into storage; tag is valid during the call only. */
int br_manifest_delete_unless(br_store_t *s, br_str_t repo, const br_digest_t *d, br_name_cb keep, void *ctx);
/* Deletes one tag. BR_E_MANIFEST_UNKNOWN if the tag does not exist. */
int br_tag_delete(br_store_t *s, br_str_t repo, br_str_t tag);
/* Tags of repo in lexical order after last, at most n (as br_repo_list).
 * BR_E_NAME_UNKNOWN when the repository does not exist. */
int br_tag_list(br_store_t *s, br_str_t repo, br_str_t last, size_t n, br_name_cb cb, void *ctx, int *more);
/* Calls cb for each manifest in repo whose subject is the given digest. */
typedef int (*br_referrer_cb)(void *ctx, const br_referrer_t *r);
int br_referrers_list(br_store_t *s, br_str_t repo, const br_digest_t *subject, br_referrer_cb cb, void *ctx);

/* Reference count of a blob across all repositories' manifests and links
 * (for garbage collection and tests). */
int br_blob_refcount(br_store_t *s, const br_digest_t *d, uint64_t *count);

/* ---- diagnostics ------------------------------------------------------------ */

/* Checks the index against itself and the blob files: every blob record has
 * its file with the recorded size (with hash_content, also the right digest;
 * a blob the collector has marked dying may lack it, and must be
 * unreferenced), every reference count equals the links and manifest
 * references naming the blob, every link names a recorded (not dying) blob
 * and has its holders row (and every holders row its link), every manifest's
 * body is linked in its repository and each of its counted references has its
 * refby row (and every refby row such a reference), every tag points at a
 * manifest of its repository and has its reverse entry, every referrer entry
 * belongs to a manifest, every quota counter equals the usage its links give. Returns 0,
 * or BR_E_CORRUPT with the first problem described in detail (NUL-terminated,
 * truncated to detail_size), or another error. One long read txn over the
 * whole index: for tests and an offline fsck, never for request paths. */
int br_store_verify(br_store_t *s, int hash_content, char *detail, size_t detail_size);

typedef struct st_br_fsck_options_t {
    int repair; /* orphan files: re-index those a link or manifest names, remove the rest */
    /* Each problem, one line (NUL-terminated, valid during the call); may be NULL. */
    void (*problem)(void *ctx, const char *msg);
    void (*progress)(void *ctx, const char *phase, uint64_t done, uint64_t total);
    void *ctx;
} br_fsck_options_t;

typedef struct st_br_fsck_stats_t {
    uint64_t blobs, manifests; /* rows checked */
    uint64_t problems;         /* found, repaired ones included */
    uint64_t repaired;
} br_fsck_stats_t;

/* The checks of br_store_verify with hash_content, going on after a
 * problem, plus every file under blobs/ that no blob row names (an orphan) or
 * that has no blob name. Safe on a live store: holds the collectors' lock
 * (waiting for a running collection), checks the index in one read txn and
 * hashes files outside it. With repair, an orphan is hashed first: when its
 * content matches its name and a link or manifest names it, it is indexed
 * again (with that many references); otherwise it is removed (inside a write
 * txn, as the collector removes orphans); when it re-indexed one or found a
 * quota counter wrong, every quota counter is recomputed from the links (one
 * write txn). Other problems are only reported.
 * Returns 0 (st filled) or an error that stopped the check. */
int br_store_fsck(br_store_t *s, const br_fsck_options_t *o, br_fsck_stats_t *st);

/* ---- scrub ------------------------------------------------------------------------ */

/* Where a scrub goes on from: the last blob looked at (len 0: the start). */
typedef struct st_br_scrub_cursor_t {
    unsigned char key[65];
    size_t len;
} br_scrub_cursor_t;

typedef struct st_br_scrub_stats_t {
    uint64_t blobs, bytes, quarantined;
    int wrapped; /* reached the last blob: the cursor starts over */
} br_scrub_stats_t;

/* Re-hashes blobs after *c, in index order, until about budget bytes are
 * read (at least one blob) or the last blob is done; advances *c. A blob
 * whose content does not match its digest, or whose file is gone, is
 * quarantined (logged as an error): every lookup then treats it as absent (a
 * GET answers 404 BLOB_UNKNOWN, a manifest naming it is refused), so its
 * bytes are never served again; pushing the same content again replaces the
 * file and lifts the quarantine; fsck reports it. Files are read outside any
 * txn; *cancel (may be NULL) stops it between reads with ECANCELED. */
int br_store_scrub(br_store_t *s, br_scrub_cursor_t *c, uint64_t budget, volatile int *cancel, br_scrub_stats_t *st);

/* ---- usage ------------------------------------------------------------------------ */

typedef struct st_br_usage_t {
    br_str_t repo;         /* per repository only; valid during the callback */
    uint64_t blobs, bytes; /* blobs linked (the whole store: blobs stored) and their bytes */
    uint64_t unique_bytes; /* of those, held by this repository alone */
    uint64_t shared_bytes; /* held by other repositories too */
} br_usage_t;
typedef int (*br_usage_cb)(void *ctx, const br_usage_t *u);

/* Calls cb, in name order, for every repository that match (NULL = all)
 * accepts, with the bytes of the blobs it links (manifests included). *total
 * gets the blobs stored in the whole store, each counted once. One read txn;
 * cb returns 0 to go on and must not call into storage. */
int br_store_usage(br_store_t *s, br_repo_pred_cb match, void *mctx, br_usage_cb cb, void *ctx, br_usage_t *total);

/* ---- quotas ------------------------------------------------------------------------ *
 *
 * A quota scope is every repository its glob matches (br_glob_match); its
 * usage is the bytes of the distinct blobs linked into any of them (manifest
 * bodies included), each blob counted once however many of the scope's
 * repositories link it. The global limit (glob "") bounds the bytes stored in
 * the whole store, each blob once (br_store_stats' blob_bytes).
 *
 * The scope list lives in the index, written by the server
 * (br_store_quotas_set at start and reload), with one usage counter per
 * scope. Every process that links or unlinks (a server, berth gc, berth fsck
 * --repair) keeps the counters in the write txn that changes the links, so
 * no process's memory decides. In that txn a new link that would take any
 * scope matching its repository over its max_bytes, or a new blob that would
 * take the store over the global limit, fails with BR_E_QUOTA and nothing is
 * stored: two racing pushes cannot both pass. A push that adds no new bytes
 * to a scope (its blob already linked there) never fails on that scope, even
 * when the scope is already over a lowered limit.
 */
#define BR_QUOTA_MAX 64

typedef struct st_br_quota_t {
    char glob[BR_NAME_MAX + 1]; /* repository glob; "" = the global limit */
    uint64_t max_bytes;
    uint64_t used_bytes; /* filled by the calls below */
    uint64_t need_bytes; /* br_store_quota_explain: the bytes the push adds */
} br_quota_t;

/* Records the scope list q[0..n) (n <= BR_QUOTA_MAX, globs distinct, at most
 * one "") in the index, in one write txn: counters of scopes no longer listed
 * go, those of new scopes (of every scope with recompute_all) are computed
 * from the links, walking the matching repositories' links in that txn (so
 * it is as long as that walk: the server does it at start and reload only).
 * n 0 removes every quota. */
int br_store_quotas_set(br_store_t *s, const br_quota_t *q, size_t n, int recompute_all);
/* The list recorded in the index with each scope's counter (the global one:
 * the store's blob bytes) into out (cap entries); *n the number recorded. */
int br_store_quotas_get(br_store_t *s, br_quota_t *out, size_t cap, size_t *n);
/* Computes used_bytes of each of q[0..n) from the links in one read txn,
 * whatever the index records (berth du, tests). */
int br_store_quota_usage(br_store_t *s, br_quota_t *q, size_t n);
/* Why a push of blob d (size bytes, when the index lacks it) into repo gets
 * BR_E_QUOTA, as the index stands now: BR_E_QUOTA with *out the quota it
 * exceeds (need_bytes set), or 0 when none would refuse it now (the push
 * raced a delete). For the message of a refusal made by the write txn. */
int br_store_quota_explain(br_store_t *s, br_str_t repo, const br_digest_t *d, uint64_t size, br_quota_t *out);

/* ---- garbage collection ------------------------------------------------------- *
 *
 * What is garbage (grace = the collection's grace period):
 *   - with untagged_delete, a manifest no tag names, whose body was linked
 *     (pushed) more than grace ago, that no live manifest of its repository
 *     references (an index holding it), and whose subject, if it has one, is
 *     no live manifest of its repository. Collecting it is a manifest delete.
 *   - a link (repo, D) made more than grace ago (every link renews its time:
 *     an upload, a mount, a manifest put) where D is not the body of a live
 *     manifest of repo and no manifest of repo references D. This is what
 *     protects layers uploaded before their manifest: for grace after the
 *     upload the link stands on its own.
 *   - a blob with no links and no manifest references (reference count 0)
 *     for more than grace, or whose last references this collection took.
 *   - a file in blobs/ that no blob row names, older than grace (a commit
 *     interrupted between placing its file and recording it).
 * Reachability is the reference count: a tag names a manifest, a manifest
 * counts its config, layers and (index) child manifests, and links count too;
 * so a blob reachable from a tag or from any manifest not deleted has a count
 * above zero and is never taken.
 *
 * How it stays safe under concurrent pushes (no process's memory decides):
 *   1. Every decision is re-checked inside the write transaction that acts
 *      on it, from the index as it is then. The plan read from a snapshot
 *      only says where to look. LMDB runs one write txn at a time, across
 *      processes, so a push's txn runs wholly before or wholly after each of
 *      the collector's.
 *   2. A manifest put checks, inside its own write txn, that each reference
 *      is linked in its repository (br_manifest_put), and its refby rows are
 *      written in that same txn. If the collector's txn removing the link ran
 *      first, the put fails with BR_E_MANIFEST_BLOB_UNKNOWN; if the put ran
 *      first, the collector finds the refby row and keeps the link, hence the
 *      count, hence the blob. A committed manifest never names a removed blob.
 *   3. Removing a blob takes two txns: one marks the row dying (count still
 *      0, re-checked), the next moves the file out of blobs/ (into trash/) and
 *      deletes the row; trash/ is emptied after the commit. Index first, so a
 *      crash leaves either a dying row (finished by the next collection;
 *      fsck accepts a dying row without its file) or a file in trash/ (no
 *      index entry names it). A dying blob is absent to every lookup and
 *      takes no references.
 *   4. Writers place a blob's file before their txn. When their txn finds the
 *      row absent or dying it checks the file inside the txn and places it
 *      again if the collector moved it (br_txn_blob_record); the collector
 *      moves files only inside its write txns, so that check holds until the
 *      writer commits. Orphan files are moved the same way, inside a write
 *      txn that first sees no row.
 *   5. No request waits on the collector longer than one of its write txns:
 *      batches of at most 256 links, 32 manifests or 128 blobs.
 *
 * Between collectors: one collection at a time per store, by flock on
 * <root>/gc.lock (the server's periodic one skips a round when the lock is
 * held, `berth gc` waits). That is for tidy figures only; two collectors
 * would still be safe by 1-4. The store lock of a running server is not
 * needed: gc opens the store as a second process, as LMDB allows. On a shared
 * backend (several nodes, SQL index) the same rules hold with serializable
 * transactions, the lock becomes a lease row, and trash/ a prefix.
 *
 * Retention (a first phase, when the options give rules): for each
 * repository with a rule, its tags sorted by push time, newest first (equal
 * times: the greater name first). A tag stays when keep(repo, tag) says so
 * (the rule's protect globs, immutable tags), when it is among the newest
 * keep_last, or when it was pushed less than keep_s ago (or later than the
 * collection's clock: a clock step); every other tag is deleted, as a tag
 * DELETE would. The plan decides from its snapshot; the execution, in write
 * txns of at most 64 tags of one repository, decides each tag again from the
 * repository's tags as they are then, and deletes it only when its row is
 * still the one the plan saw (the same digest and push time: a tag pushed
 * again after the snapshot is never deleted). Tags retention deletes count as
 * absent in the plan's view of untagged manifests, so with untagged_delete
 * the manifests they alone held go in the same run, and a dry run's figures
 * include them. Push times are those of br_manifest_put (tags from before
 * schema 4: their manifest's link time, never older than the truth).
 *
 * Figures: blobs (rows and orphan files removed), manifests, links, bytes.
 * A dry run makes the plan only and reports what executing it would remove;
 * on a store nobody writes to meanwhile (and with nothing crossing the grace
 * boundary in between) the real run that follows removes exactly that.
 */
/* One retention rule as storage sees it (plain data: the caller keeps the
 * config and finds the rule). */
typedef struct st_br_retention_rule_t {
    const char *name;   /* names the rule in report lines (its repository glob) */
    uint64_t keep_last; /* the newest this many tags stay; 0: none for this reason */
    uint64_t keep_s;    /* tags pushed less than this many seconds ago stay; 0: none */
} br_retention_rule_t;

typedef struct st_br_gc_options_t {
    uint64_t grace_s;
    int untagged_delete;
    int dry_run;
    int wait;               /* another collection holds the lock: 1 wait, 0 BR_E_BUSY */
    volatile int *cancel;   /* checked between batches: ECANCELED when set */
    /* Called from the collecting thread as it goes; may be NULL. */
    void (*progress)(void *ctx, const char *phase, uint64_t done, uint64_t total);
    void *ctx;
    /* Retention (see above); retention_rule NULL: none. retention_rule gives
     * the rule for repo (NULL: its tags all stay; the pointer must stay valid
     * for the whole collection) and retention_keep 1 for a tag that stays
     * whatever the rule says. Both are called inside the collector's
     * transactions, also its write txns: cheap, pure CPU, no storage calls;
     * strings valid during the call only. retention_report (may be NULL) gets
     * one line per tag, "retention: would delete repo:tag (pushed
     * 2026-11-01T10:00:00Z, rule "glob")" in a dry run, "retention: deleted
     * ..." once the deleting txn committed. */
    const br_retention_rule_t *(*retention_rule)(void *rctx, br_str_t repo);
    int (*retention_keep)(void *rctx, br_str_t repo, br_str_t tag);
    void (*retention_report)(void *rctx, const char *line);
    void *rctx;
    uint64_t now_s; /* the collection's clock (ages, grace); 0: the real one (tests set it) */
} br_gc_options_t;

typedef struct st_br_gc_stats_t {
    uint64_t blobs, manifests, links, bytes;
    uint64_t tags; /* deleted by retention */
} br_gc_stats_t;

/* One collection as above. Runs in the calling thread, in short
 * transactions; safe while other threads and processes use the store.
 * Returns 0 (st filled), BR_E_BUSY, ECANCELED or another error (st then
 * holds what was done so far). */
int br_store_gc(br_store_t *s, const br_gc_options_t *o, br_gc_stats_t *st);

#endif
