/*
 * server/ internals: the process-wide server, event-loop threads, the route
 * table and the helpers every handler file shares. Only server/ includes h2o.
 */
#ifndef BR_SERVER_H
#define BR_SERVER_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <h2o.h>
#include "common/br.h"
#include "auth/auth.h"
#include "config/config.h"
#include "storage/storage.h"

/* ---- process-wide state (built before threads start, then read-only) ----- */

/* What a reload replaces as one: the config and the auth state built from it.
 * Never changed once published. Each event-loop thread holds a reference to
 * the snapshot it serves with and moves to a newer one only between requests
 * (at each loop iteration and as a request starts, see br_snapshot_update),
 * so a request sees one snapshot from start to end as long as it keeps no
 * pointer into it across loop iterations (nothing does: handlers read
 * br_cfg() when they need a value). The last reference frees it, on whichever
 * thread drops it (config and auth hold no h2o objects). */
typedef struct st_br_snapshot_t {
    br_config_t config;
    br_auth_t *auth; /* allows everything when the config has no auth section */
    unsigned generation;
    unsigned _refs; /* atomic */
} br_snapshot_t;

typedef struct st_br_server_t {
    br_snapshot_t *snapshot; /* the newest; replaced by thread 0 under snapshot_lock */
    pthread_mutex_t snapshot_lock;
    unsigned generation; /* of snapshot; read without the lock to notice a reload */
    br_store_t *store;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;
    SSL_CTX *ssl_ctx; /* NULL for plain HTTP; replaced on SIGHUP under tls_lock */
    pthread_mutex_t tls_lock;
    unsigned tls_generation;                /* bumped on each successful reload */
    volatile sig_atomic_t reload_requested; /* SIGHUP */
    volatile sig_atomic_t shutdown_requested;
    uint64_t started_at_ms;
    h2o_hostconf_t *main_hosts[2];    /* {hostconf, NULL}: what the main listeners serve */
    h2o_hostconf_t *metrics_hosts[2]; /* {metrics hostconf, NULL} when metrics.listen is set */
} br_server_t;

extern br_server_t br_srv;

/* One event-loop thread: its own loop, context and listening sockets, all
 * created and destroyed on that thread (see thread_start in main.c). */
typedef struct st_br_thread_t {
    size_t index;
    pthread_t tid;
    int started; /* tid is valid (threads 1..N-1) */
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listeners[BR_CONFIG_MAX_LISTEN];
    size_t num_listeners;
    /* metrics.listen: stays open while the main listeners drain, so /readyz
     * can say 503; closed in thread_stop. NULL when not configured. */
    h2o_socket_t *metrics_listener;
    h2o_accept_ctx_t metrics_accept_ctx;
    struct st_br_mthread_t *metrics; /* this thread's counters; NULL when metrics are off */
    h2o_timeout_t lag_timeout;       /* event-loop lag probe (metrics.c) */
    h2o_timeout_entry_t lag_entry;
    uint64_t lag_armed_ns;
    h2o_socket_t *kick_sock; /* eventfd: wakes the loop to run deferred work (see br_defer) */
    int kick_fd;             /* its fd, for other threads' wake-ups (-1 once closed; listen.c's lock) */
    h2o_linklist_t evictions; /* idle connections other threads had this one close (listen.c's lock) */
    h2o_linklist_t deferred;
    h2o_timeout_t sweep_timeout; /* once a second: idle-connection sweep, shutdown progress */
    h2o_timeout_entry_t sweep_entry;
    h2o_linklist_t conns; /* br_conn_t of this thread */
    h2o_linklist_t idle_checks; /* br_conn_t that just sent a response (see br_conns_check_idle) */
    size_t num_conns;
    uint64_t drain_deadline_ms; /* set when shutdown starts */
    unsigned tls_generation;    /* of the SSL_CTX in accept_ctx (this thread holds a reference) */
    br_snapshot_t *snap;        /* config and auth this thread serves with (holds a reference) */
    struct st_br_io_job_t *io_done; /* jobs the I/O threads finished for this one (iopool.c's lock) */
} br_thread_t;

extern __thread br_thread_t *br_thread;

/* The snapshot the calling code runs under: its loop thread's, else (the main
 * thread before the loops start and after they end) the newest. Other threads
 * (the collector) must not call it. Valid until the caller returns to the
 * loop. */
static inline const br_snapshot_t *br_snap(void)
{
    return br_thread != NULL ? br_thread->snap : br_srv.snapshot;
}
static inline const br_config_t *br_cfg(void)
{
    return &br_snap()->config;
}
/* Moves thread t to the newest snapshot if a reload published one (main.c). */
void br_snapshot_update(br_thread_t *t);
/* A reference to the newest snapshot, for a thread without a loop (the
 * event deliverer); give it back with br_snapshot_release. */
br_snapshot_t *br_snapshot_acquire(void);
void br_snapshot_release(br_snapshot_t *snap);

/* ---- events (events.c) ------------------------------------------------------ */

/* One thing that happened, for notifications.endpoints. */
typedef struct st_br_event_t {
    unsigned action;          /* BR_EVENT_PUSH, _PULL, _DELETE, _MOUNT */
    br_str_t repository;
    const br_digest_t *digest; /* NULL: none (a tag delete) */
    const char *media_type;   /* NULL: a blob (application/octet-stream) */
    uint64_t size;
    int manifest; /* the target is a manifest (its URL is under manifests/) */
    br_str_t tag;  /* empty: none */
    br_str_t from; /* mount source repository */
} br_event_t;

/* Queues ev, made by req, for delivery when any endpoint is configured: the
 * event is written to the store's queue by the deliverer thread within
 * milliseconds, never by the caller, which only takes a mutex. */
void br_event_emit(h2o_req_t *req, const br_event_t *ev);
/* The deliverer thread: start after the store opens, stop before it closes. */
void br_events_start(void);
void br_events_stop(void);

/* ---- listeners and connections (listen.c) ---------------------------------- */

/* Binds one listening socket per configured address, before the threads
 * start (main thread). Returns 0, or errno with a message logged (EADDRINUSE
 * when another process listens there). */
int br_listeners_bind(void);
/* Closes the sockets of br_listeners_bind (once every thread has its dup). */
void br_listeners_unbind(void);
/* On thread t: polls its own dup of each bound socket. 0 or errno (logged). */
int br_listeners_open(br_thread_t *t);
/* Closes the main listeners (at the start of the drain). */
void br_listeners_close(br_thread_t *t);
/* Closes the metrics listener (in thread_stop, after the drain). */
void br_listeners_close_metrics(br_thread_t *t);
/* Counts a finished request on its connection (requests served, and HTTP/2
 * seen) for the connection metrics. On the connection's thread. */
void br_conn_request_done(h2o_req_t *req);
/* Moves req's connection to the HTTP/2 count (req->version >= 0x200). */
void br_conn_is_h2(h2o_req_t *req);
/* Starts the once-a-second sweep (idle connections, shutdown drain). */
void br_sweep_start(br_thread_t *t);
/* Runs the sweep at once (used when shutdown starts, to close idle keep-alive
 * connections instead of waiting for them). */
void br_sweep_now(br_thread_t *t);
/* Number of open connections across all threads. */
unsigned br_conn_count(void);
/* Registers the per-request hook that tracks idle keep-alive connections (for
 * the connection caps); before the threads start. */
void br_conns_register(h2o_pathconf_t *pathconf);
/* After each loop pass (thread t): marks the HTTP/1 connections that sent a
 * response in it and now wait for a next request as idle. */
void br_conns_check_idle(br_thread_t *t);
/* Called as each request reaches the handler (router.c). */
void br_conns_request_started(h2o_req_t *req);

/* Deferred work: cb runs on the current thread at its next loop iteration,
 * after pending I/O is handled. Long work (hashing a large body) runs as a
 * chain of such steps so the loop keeps serving other connections. h2o's
 * zero-millisecond timeout cannot do this in 2.2.5: an entry re-linked from
 * its own callback runs again in the same pass. */
typedef struct st_br_deferred_t {
    h2o_linklist_t link;
    void (*cb)(struct st_br_deferred_t *d);
} br_deferred_t;
void br_defer_init(br_thread_t *t);
void br_defer_dispose(br_thread_t *t);
void br_defer(br_deferred_t *d);
void br_defer_cancel(br_deferred_t *d);
/* Wakes t's loop from any thread (its deferred work, evictions and I/O
 * completions run then); a no-op once t's loop is gone. */
void br_thread_wake(br_thread_t *t);

/* ---- I/O thread pool (iopool.c) --------------------------------------------- */

/* A store call that waits for the disk, run off the event loop. The caller
 * mallocs the job (it must outlive the request, which may be disposed while
 * the job runs), fills run, done and destroy and the data they use, copied
 * out of the request, and hands it to br_io_submit. */
typedef struct st_br_io_job_t {
    /* An I/O thread: the store calls, on the job's own data only (no h2o, no
     * request, no br_cfg()). */
    void (*run)(struct st_br_io_job_t *j);
    /* The submitting loop thread, when req is still there: the response. */
    void (*done)(struct st_br_io_job_t *j, h2o_req_t *req);
    /* Frees the job and what it owns (no h2o: the request may be gone); on
     * the loop thread, or the main thread at shutdown. Always called. */
    void (*destroy)(struct st_br_io_job_t *j);
    struct st_br_io_job_t *_next;
    br_thread_t *_owner;
    h2o_req_t *_req; /* NULL once the request is disposed (owner thread) */
    struct st_br_io_job_t **_slot;
    struct st_pool_t *_pool;
    br_snapshot_t *_snap;
} br_io_job_t;
/* Starts / stops the pools (main thread: after the store opens, and after the
 * loop threads ended, before it closes): io_threads for I/O jobs (at least
 * 1), hash_threads for hash jobs (0: no hash pool). Stop runs what is queued,
 * then destroys the jobs of the n threads that no loop answered any more. */
void br_io_start(unsigned io_threads, unsigned hash_threads);
/* 1 when the hash pool runs (br_hash_submit may be used). */
int br_hash_pool_running(void);
void br_io_stop(br_thread_t *threads, size_t n);
/* Queues j for an I/O thread (loop thread of req). The handler returns and
 * answers in j->done. req NULL: a job nobody waits for (a clean-up); done is
 * never called. */
void br_io_submit(h2o_req_t *req, br_io_job_t *j);
/* Queues j for a hash thread (loop thread of req, which must not be NULL):
 * CPU work only, which never waits behind the I/O jobs' syncs. No hook is put
 * in req->pool (a job may be submitted again each time it came back): the
 * caller calls br_io_forget(j) if req is disposed while j is queued or
 * running, and then done is not called. */
void br_hash_submit(h2o_req_t *req, br_io_job_t *j);
/* The request of j (in flight) goes away: done will not be called, destroy
 * will. Loop thread of req. */
void br_io_forget(br_io_job_t *j);
/* On thread t's wake-up: the finished jobs' done and destroy. */
void br_io_complete(br_thread_t *t);
/* A destroy for a job that owns nothing but itself: frees it. */
void br_io_free(br_io_job_t *j);
/* Copies s to *cursor (a job's own buffer, sized by the caller) and moves
 * *cursor past it; returns the copy. For packing request data into a job. */
br_str_t br_io_copy(char **cursor, br_str_t s);
/* Jobs submitted and not yet finished with (for the metrics). */
unsigned br_io_jobs(void);

/* ---- routes (router.c) ----------------------------------------------------- */

typedef enum {
    BR_ROUTE_BASE = 1,      /* /v2/ */
    BR_ROUTE_CATALOG,       /* /v2/_catalog */
    BR_ROUTE_BLOB,          /* /v2/<name>/blobs/<digest> */
    BR_ROUTE_UPLOAD_START,  /* /v2/<name>/blobs/uploads/ */
    BR_ROUTE_UPLOAD,        /* /v2/<name>/blobs/uploads/<uuid> */
    BR_ROUTE_MANIFEST,      /* /v2/<name>/manifests/<reference> */
    BR_ROUTE_TAGS,          /* /v2/<name>/tags/list */
    BR_ROUTE_REFERRERS,     /* /v2/<name>/referrers/<digest> */
} br_route_id_t;

/* The access a request needs; auth plugs in here (one place for all routes). */
typedef enum { BR_ACCESS_NONE = 0, BR_ACCESS_PULL, BR_ACCESS_PUSH, BR_ACCESS_DELETE, BR_ACCESS_CATALOG } br_access_t;

/* What the router found in the path. Strings point into req->path. */
typedef struct st_br_match_t {
    br_route_id_t route;
    br_access_t access;
    br_str_t name;      /* repository, validated */
    br_str_t reference; /* digest, tag or uuid, as in the path (not yet validated) */
    const br_auth_result_t *auth; /* who is asking; NULL when auth is off */
} br_match_t;

/* 1 when the caller of m may pull repository name (always, with auth off). */
int br_may_pull(const br_match_t *m, br_str_t name);

typedef int (*br_handler_fn)(h2o_req_t *req, const br_match_t *m);

/* The h2o handler for everything under the host: routes, checks, dispatches. */
int br_on_req(h2o_handler_t *self, h2o_req_t *req);
/* globalconf.stream_request_body of the patched h2o (server/h2o/0002): always
 * 1, so every request with a body reaches br_on_req before its body is read;
 * uploads take the body in pieces as it arrives, every other route has it
 * collected up to the route's own limit (see "request bodies" in router.c). */
int br_wants_body_stream(h2o_req_t *req);

/* ---- access log and request ids (accesslog.c) ------------------------------- */

#define BR_REQUEST_ID_MAX 128

/* Route groups, the "route" label of the request metrics. */
typedef enum {
    BR_MROUTE_OTHER = 0, /* no route: 404s, and requests h2o answered itself */
    BR_MROUTE_BASE,
    BR_MROUTE_CATALOG,
    BR_MROUTE_BLOB,
    BR_MROUTE_UPLOAD,
    BR_MROUTE_MANIFEST,
    BR_MROUTE_TAGS,
    BR_MROUTE_REFERRERS,
    BR_MROUTE_TOKEN,
    BR_MROUTE_HEALTH,
    BR_MROUTE_NUM
} br_mroute_t;

/* What the router notes about a request for the access log and the metrics
 * (in req->pool, found through the request's environment). */
typedef struct st_br_req_note_t {
    struct timespec start; /* CLOCK_REALTIME when the router first saw it */
    unsigned char route;   /* br_mroute_t */
} br_req_note_t;

/* Gives req its id: the client's X-Request-Id when br_request_id_valid, else
 * a new one unique to this process; echoes it as X-Request-Id and keeps it for
 * the access log. Call once, before the response starts. Returns the
 * request's note (route BR_MROUTE_OTHER), owned by req->pool. */
br_req_note_t *br_request_id(h2o_req_t *req);
/* The note of br_request_id, or NULL when the router never saw req. */
br_req_note_t *br_req_note(h2o_req_t *req);
/* Seconds from the start of req (see accesslog.c) to now (>= 0). */
double br_request_seconds(h2o_req_t *req, const struct timespec *now);
/* 1 when id is 1-BR_REQUEST_ID_MAX characters of [A-Za-z0-9._:+/=-]. */
int br_request_id_valid(br_str_t id);
/* Names the authenticated subject of req in its access-log line ("" or NULL:
 * nobody; the line shows "-"). Never pass credentials. */
void br_access_subject(h2o_req_t *req, const char *user);
/* The id br_request_id gave req ("-" before it ran), and the subject
 * br_access_subject named ("" for nobody); both in req->pool. */
br_str_t br_request_id_of(h2o_req_t *req);
br_str_t br_request_subject(h2o_req_t *req);
/* The h2o logger: one line per request, text or JSON (log.format). */
void br_access_log(h2o_logger_t *self, h2o_req_t *req);

/* ---- responses (router.c) ------------------------------------------------ */

/* Sends the OCI error body for err (errno or BR_E*) with its status and code.
 * detail (may be NULL) becomes the "detail" member (a JSON string). */
int br_send_error(h2o_req_t *req, int err, const char *detail);
/* Same, but with an explicit HTTP status and registered code. */
int br_send_error_code(h2o_req_t *req, int status, const char *code, const char *message, const char *detail);
/* The OCI error body {"errors":[{code, message, detail}]} in req->pool
 * (detail may be NULL). */
h2o_iovec_t br_error_body(h2o_req_t *req, const char *code, const char *message, const char *detail);
/* Registers the filter that gives the errors h2o sends by itself (bad chunked
 * framing, body too large, ...) the OCI error body (h2oerrors.c). */
void br_h2o_errors_register(h2o_hostconf_t *hostconf);
/* Sends a complete response with the given body (copied? no: body must live in
 * req->pool or static storage). Sets Content-Length. HEAD sends no body. */
void br_send(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);
/* Adds a response header (name and value are copied into req->pool). */
void br_add_header(h2o_req_t *req, const char *name, const char *value, size_t len);
void br_add_header_token(h2o_req_t *req, const h2o_token_t *token, const char *value, size_t len);
/* Formats into req->pool; returns the iovec. */
h2o_iovec_t br_pool_printf(h2o_req_t *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- request helpers (router.c) ---------------------------------------- */

/* Value of the first request header with that token / name, or len == 0. */
br_str_t br_req_header(h2o_req_t *req, const h2o_token_t *token);
br_str_t br_req_header_str(h2o_req_t *req, const char *lcname);
/* Value of query parameter key, percent-decoded into req->pool. Returns 1 when
 * present (value may be empty), 0 when absent, -1 when malformed. */
int br_query_param(h2o_req_t *req, const char *key, br_str_t *out);
/* Parses a query parameter as an unsigned integer in [0, max]; returns 1/0/-1
 * as br_query_param (-1 also for non-numbers and out of range). */
int br_query_uint(h2o_req_t *req, const char *key, uint64_t max, uint64_t *out);
int br_is_head(h2o_req_t *req);
/* Parses the decimal digits at *p (stopping at end or the first non-digit)
 * into *out, advancing *p. Returns 1 when at least one digit was read, 0 when
 * none, -1 on overflow. */
int br_parse_u64(const char **p, const char *end, uint64_t *out);

/* A growable byte buffer for JSON responses (router.c). */
typedef struct st_br_buf_t {
    char *base;
    size_t len, cap;
} br_buf_t;
void br_buf_append(br_buf_t *b, const char *p, size_t n);
void br_buf_printf(br_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted JSON string. */
void br_buf_json_str(br_buf_t *b, br_str_t s);
/* Moves the buffer into req->pool (freeing b's heap memory) and returns it. */
h2o_iovec_t br_buf_to_pool(br_buf_t *b, h2o_req_t *req);
/* Percent-encodes s for use in a query string into req->pool. */
h2o_iovec_t br_url_encode(h2o_req_t *req, br_str_t s);

/* ---- handler files ---------------------------------------------------------- */

int br_handle_base(h2o_req_t *req, const br_match_t *m);
int br_handle_blob(h2o_req_t *req, const br_match_t *m);          /* blobs.c */
int br_handle_upload_start(h2o_req_t *req, const br_match_t *m);  /* uploads.c */
int br_handle_upload(h2o_req_t *req, const br_match_t *m);        /* uploads.c */
int br_handle_manifest(h2o_req_t *req, const br_match_t *m);      /* manifests.c */
/* Frees this thread's cached listing page (at thread exit). */
void br_list_cache_clear(void);
int br_handle_tags(h2o_req_t *req, const br_match_t *m);          /* tags.c */
int br_handle_catalog(h2o_req_t *req, const br_match_t *m);       /* catalog.c */
int br_handle_referrers(h2o_req_t *req, const br_match_t *m);     /* referrers.c */

/* Sends a blob file (fd owned by the callee from here on) as the response:
 * honours HEAD and Range, sets Content-Length, Docker-Content-Digest, ETag,
 * Accept-Ranges and Content-Type. (blobs.c; manifests use it too.) */
void br_send_blob_fd(h2o_req_t *req, int fd, uint64_t size, const br_digest_t *d, const char *content_type, int allow_range);

/* Adds the Docker-Content-Digest header (and ETag when etag != 0). */
void br_add_digest_headers(h2o_req_t *req, const br_digest_t *d, int etag);

/* A background thread that is no event loop (worker.c): the collector, the
 * scrub. Its data goes under lock; stop asks it to end (its work checks
 * stop) and joins it. */
typedef struct st_br_worker_t {
    pthread_t tid;
    int running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    volatile int stop;
} br_worker_t;
#define BR_WORKER_INIT {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER}
void br_worker_start(br_worker_t *w, void *(*fn)(void *), const char *what);
void br_worker_stop(br_worker_t *w);
/* With w->lock held: waits until ms have passed, w->wake is signalled with
 * *also (may be NULL) set, or stop is asked; returns w->stop. */
int br_worker_wait(br_worker_t *w, uint64_t ms, const int *also);

/* The scrub thread (scrub.c): br_store_scrub at config scrub.rate (none when
 * 0). Start after the store opens, stop before it closes; reconfigure on a
 * reload (thread 0). */
void br_scrub_start(const br_config_t *c);
void br_scrub_stop(void);
void br_scrub_reconfigure(const br_config_t *c);

/* Immutable tags (immutable.c): the rule of c deciding for repo (the most
 * specific matching repository glob), or NULL; and the tag glob of rule r
 * that tag matches, or NULL (r may be NULL; for a retention rule: its
 * protect globs). Both point into c. br_rule_for is that lookup over any
 * rule list of the config (immutable, retention). */
const br_config_rule_t *br_rule_for(const br_config_rule_t *rules, size_t n, br_str_t repo);
const br_config_rule_t *br_immutable_rule(const br_config_t *c, br_str_t repo);
const char *br_immutable_glob(const br_config_rule_t *r, br_str_t tag);

/* Quotas (quota.c). br_quota_list fills q (BR_CONFIG_MAX_QUOTAS entries)
 * from c's quotas; returns how many. br_quota_sync records them in the
 * store's index (at start with recompute_all, at reload without: counters of
 * unchanged scopes stay); logs and returns the error. br_send_quota_denied
 * answers a push that got BR_E_QUOTA: 403 DENIED naming the quota, with
 * its figures (d and size as br_store_quota_explain). br_quota_human writes
 * "49.9 GiB". */
size_t br_quota_list(const br_config_t *c, br_quota_t *q);
int br_quota_sync(const br_config_t *c, int recompute_all);
int br_send_quota_denied(h2o_req_t *req, br_str_t repo, const br_digest_t *d, uint64_t size);
void br_quota_human(uint64_t v, char *buf, size_t size);

/* The periodic collector (gc.c): a thread running br_store_gc every
 * gc.interval (none when 0). Start after the store opens; stop (it cancels a
 * collection between batches) before the store closes. */
void br_gc_start(const br_config_t *c);
void br_gc_stop(void);
/* After a reload (thread 0): the collector takes c's gc settings (copied);
 * a changed interval counts from now; interval 0 stops it, a first non-zero
 * one starts it. */
void br_gc_reconfigure(const br_config_t *c);
/* Commands (gc.c): `berth gc`; argv[0] is the command name. Exit status. */
int br_cmd_gc(int argc, char **argv);
/* Config as serve loads it (file, environment, --root), for commands: 0, or
 * 1 after printing the error (c is initialised either way). main.c. */
int br_cli_load_config(br_config_t *c, const char *path, const char *root);
/* Progress lines of a command on a terminal (stderr): one per phase, redrawn
 * at most every 100 ms. ctx is a br_cli_progress_t; end with a newline when
 * last_phase is set. gc.c. */
typedef struct st_br_cli_progress_t {
    const char *tool;
    const char *last_phase;
    uint64_t last_ms;
} br_cli_progress_t;
void br_cli_progress(void *ctx, const char *phase, uint64_t done, uint64_t total);
/* `berth fsck` (fsck.c), `berth du` (du.c). */
int br_cmd_fsck(int argc, char **argv);
int br_cmd_du(int argc, char **argv);
/* The options every store command takes, -c/--config FILE and -r/--root
 * DIR, from getopt's ch and optarg: 1 when ch was one of them. gc.c. */
int br_tool_opt(int ch, const char **config_path, const char **root);
/* For a command: loads the config (br_cli_load_config), sets up logging and
 * opens the existing store without the server's lock. 0, or 1 after printing
 * the error; *c is initialised either way (dispose it), *out is NULL or the
 * store to close. gc.c. */
int br_tool_open(const char *tool, const char *config_path, const char *root, br_config_t *c, br_store_t **out);

/* ---- metrics and health (metrics.c) --------------------------------------------- */

/* Allocates the per-thread counters when metrics.listen is set (main thread,
 * before the threads start); a no-op otherwise. */
void br_metrics_init(size_t num_threads);
void br_metrics_dispose(void);
/* On thread t, in thread_start / thread_stop: points t at its counters and
 * starts / stops its event-loop lag probe (an h2o timer of t's loop). */
void br_metrics_thread_start(br_thread_t *t);
void br_metrics_thread_stop(br_thread_t *t);
/* The h2o handler of the metrics listener: /metrics, /healthz, /readyz. */
int br_metrics_on_req(h2o_handler_t *self, h2o_req_t *req);
/* The h2o logger that counts each request of the main listeners. */
void br_metrics_log(h2o_logger_t *self, h2o_req_t *req);
/* /healthz and /readyz (also on the main listeners with health.on_main). */
int br_health_handle(h2o_req_t *req, br_str_t path);
/* 1 when path is /healthz or /readyz. */
int br_health_path(br_str_t path);
/* Counters the hot paths bump on their own thread (no-ops with metrics off). */
typedef enum { BR_CLOSE_NORMAL = 0, BR_CLOSE_IDLE, BR_CLOSE_CAP, BR_CLOSE_SLOWLORIS, BR_CLOSE_DRAIN, BR_CLOSE_ERROR, BR_CLOSE_NUM } br_close_reason_t;
void br_metrics_conn_open(int tls, int h2, int delta);
void br_metrics_conn_closed(br_close_reason_t reason);
/* One authorization outcome: the status br_auth_check gave, and whether the
 * request carried credentials (401 with: failed; without: challenged). */
void br_metrics_auth(int status, int had_credentials);
void br_metrics_upload_in_flight(int delta);
/* One run of the server's collector (gc.c): err as br_store_gc returned it. */
void br_metrics_gc_run(int err, const br_gc_stats_t *st);

/* Upload sessions abandoned longer than the configured age are purged
 * periodically: thread 0 hands the purge to an I/O thread (uploads.c). */
void br_uploads_maybe_purge(void);

/* Request bodies whose buffer would reach this size move from the heap to a
 * file mapping under <root>/tmp (h2o's buffer spill). The setting is global
 * in h2o 2.2.5: it also applies to each HTTP/2 connection's socket input
 * buffer. Measured here (one PATCH, quiet 2-core machine), 1 MiB instead of
 * 32 MiB made HTTP/1 uploads 1.5-2x faster (h2o's heap phase copies the body
 * twice: 64 MiB in 0.53 s instead of 1.2 s) and kept RssAnon at 1-2 MiB; it
 * stays at 32 MiB until its effect on HTTP/2 connections (whose socket input
 * then spills too) has been measured under load. */
#ifndef BR_SPILL_THRESHOLD
#define BR_SPILL_THRESHOLD (32u * 1024 * 1024)
#endif

/* Process a long body in slices on the loop thread (uploads.c). */
#define BR_SLICE_SIZE (1u << 20)

#endif
