/*
 * Prometheus metrics and health probes.
 *
 * With metrics.listen set, a listener of its own (plain HTTP, served by the
 * same event-loop threads through a second h2o host: see setup_globalconf)
 * answers /metrics in the Prometheus text format (version 0.0.4), /healthz
 * and /readyz. Off by default: then nothing here runs on a request path (no
 * logger is installed, every counter hook returns at its first test).
 *
 * Cost on the hot path: each thread has its own block of counters, written
 * only by that thread with plain (relaxed) loads and stores — no lock, no
 * atomic read-modify-write, no shared cache line — and a scrape sums the
 * blocks of all threads. A scrape may see a thread's counter a moment old;
 * it never sees a torn or decreasing one. Histograms have fixed buckets.
 * Store figures come from LMDB's own table counts plus a running byte total
 * the write transactions keep (br_store_stats), so a scrape costs one read
 * transaction, never a scan.
 *
 * Counters from other threads (the collector's gc runs) are rare and use
 * atomics.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "berth_config.h"
#include "server/server.h"

#define NUM_METHODS 7 /* GET HEAD PUT POST PATCH DELETE other */
#define NUM_STATUS 6  /* 1xx..5xx, and none (the client left before a response) */
#define LAG_INTERVAL_MS 1000

/* Upper bounds of the latency buckets, in nanoseconds (+Inf implied). */
static const uint64_t buckets_ns[] = {
    100000,    250000,    500000,     1000000,    2500000,     5000000,     10000000,
    25000000,  50000000,  100000000,  250000000,  500000000,   1000000000,  2500000000,
    5000000000, 10000000000, 30000000000, 60000000000, 300000000000,
};
#define NUM_BUCKETS (sizeof(buckets_ns) / sizeof(buckets_ns[0]) + 1)

static const char *const route_names[BR_MROUTE_NUM] = {
    [BR_MROUTE_OTHER] = "other",         [BR_MROUTE_BASE] = "base",      [BR_MROUTE_CATALOG] = "catalog",
    [BR_MROUTE_BLOB] = "blob",           [BR_MROUTE_UPLOAD] = "upload",  [BR_MROUTE_MANIFEST] = "manifest",
    [BR_MROUTE_TAGS] = "tags",           [BR_MROUTE_REFERRERS] = "referrers", [BR_MROUTE_TOKEN] = "token",
    [BR_MROUTE_HEALTH] = "health",
};
static const char *const method_names[NUM_METHODS] = {"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "other"};
static const char *const status_names[NUM_STATUS] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const close_names[BR_CLOSE_NUM] = {
    [BR_CLOSE_NORMAL] = "normal", [BR_CLOSE_IDLE] = "idle",   [BR_CLOSE_CAP] = "cap",
    [BR_CLOSE_SLOWLORIS] = "slowloris", [BR_CLOSE_DRAIN] = "drain", [BR_CLOSE_ERROR] = "error",
};
enum { AUTH_OK, AUTH_FAILED, AUTH_CHALLENGED, AUTH_DENIED, AUTH_THROTTLED, AUTH_NUM };
static const char *const auth_names[AUTH_NUM] = {"ok", "failed", "challenged", "denied", "throttled"};

/* One thread's counters. Written by that thread only (see top). */
typedef struct st_br_mthread_t {
    uint64_t requests[BR_MROUTE_NUM][NUM_METHODS][NUM_STATUS];
    uint64_t latency[BR_MROUTE_NUM][NUM_METHODS][NUM_BUCKETS]; /* per bucket, not cumulative */
    uint64_t latency_ns[BR_MROUTE_NUM][NUM_METHODS];
    uint64_t received[BR_MROUTE_NUM], sent[BR_MROUTE_NUM];
    int64_t uploads_in_flight;
    int64_t conns_open[2][2]; /* [tls][h2] */
    uint64_t conns_closed[BR_CLOSE_NUM];
    uint64_t auth[AUTH_NUM];
    uint64_t lag_ns; /* how late the last lag probe ran */
} br_mthread_t;

static br_mthread_t *mthreads;
static size_t num_mthreads;
static struct {
    uint64_t runs_ok, runs_busy, runs_failed, blobs, manifests, bytes, last_ok, tags;
} gc_figures;

/* The owner thread's update of its own counter: a relaxed load and store
 * compile to a plain add, and a scrape on another thread reads it whole. */
#define M_ADD(field, n) __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define M_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

void br_metrics_init(size_t num_threads)
{
    if (br_cfg()->metrics.listen.port == 0)
        return;
    mthreads = br_calloc(num_threads, sizeof(*mthreads));
    num_mthreads = num_threads;
}

void br_metrics_dispose(void)
{
    free(mthreads);
    mthreads = NULL;
    num_mthreads = 0;
}

static inline br_mthread_t *mine(void)
{
    return br_thread != NULL ? br_thread->metrics : NULL;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The lag probe: a timer due every LAG_INTERVAL_MS; how much later than due
 * it runs is how long the loop was busy with other work (or blocked). */
static void on_lag(h2o_timeout_entry_t *entry)
{
    br_thread_t *t = H2O_STRUCT_FROM_MEMBER(br_thread_t, lag_entry, entry);
    uint64_t now = mono_ns(), due = t->lag_armed_ns + (uint64_t)LAG_INTERVAL_MS * 1000000u;
    __atomic_store_n(&t->metrics->lag_ns, now > due ? now - due : 0, __ATOMIC_RELAXED);
    t->lag_armed_ns = now;
    h2o_timeout_link(t->loop, &t->lag_timeout, &t->lag_entry);
}

void br_metrics_thread_start(br_thread_t *t)
{
    if (mthreads == NULL)
        return;
    t->metrics = &mthreads[t->index];
    h2o_timeout_init(t->loop, &t->lag_timeout, LAG_INTERVAL_MS);
    t->lag_entry.cb = on_lag;
    t->lag_armed_ns = mono_ns();
    h2o_timeout_link(t->loop, &t->lag_timeout, &t->lag_entry);
}

void br_metrics_thread_stop(br_thread_t *t)
{
    if (t->metrics == NULL)
        return;
    if (h2o_timeout_is_linked(&t->lag_entry))
        h2o_timeout_unlink(&t->lag_entry);
    h2o_timeout_dispose(t->loop, &t->lag_timeout);
    t->metrics = NULL;
}

/* ---- hooks on the request paths ----------------------------------------------- */

static unsigned method_index(h2o_iovec_t m)
{
    for (unsigned i = 0; i < NUM_METHODS - 1; i++)
        if (h2o_memis(m.base, m.len, method_names[i], strlen(method_names[i])))
            return i;
    return NUM_METHODS - 1;
}

/* Request body bytes: a streamed body (patched h2o) counts what arrived. */
static size_t body_bytes(h2o_req_t *req)
{
#if BR_PATCHED_H2O
    if (req->body_stream != NULL)
        return req->body_stream->received;
#endif
    return req->entity.base != NULL ? req->entity.len : 0;
}

void br_metrics_log(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    br_mthread_t *m = mine();
    br_conn_request_done(req);
    if (m == NULL)
        return;
    br_req_note_t *note = br_req_note(req);
    unsigned route = note != NULL ? note->route : BR_MROUTE_OTHER;
    unsigned method = method_index(req->input.method.base != NULL ? req->input.method : req->method);
    int st = req->res.status;
    unsigned status = st >= 100 && st < 600 ? (unsigned)st / 100 : 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ns = (uint64_t)(br_request_seconds(req, &now) * 1e9);
    size_t b = 0;
    while (b < NUM_BUCKETS - 1 && ns > buckets_ns[b])
        b++;
    M_ADD(m->requests[route][method][status], 1);
    M_ADD(m->latency[route][method][b], 1);
    M_ADD(m->latency_ns[route][method], ns);
    M_ADD(m->received[route], body_bytes(req));
    M_ADD(m->sent[route], req->bytes_sent);
    if (route == BR_MROUTE_UPLOAD)
        M_ADD(m->uploads_in_flight, -1);
}

void br_metrics_upload_in_flight(int delta)
{
    br_mthread_t *m = mine();
    if (m != NULL)
        M_ADD(m->uploads_in_flight, delta);
}

void br_metrics_conn_open(int tls, int h2, int delta)
{
    br_mthread_t *m = mine();
    if (m != NULL)
        M_ADD(m->conns_open[tls != 0][h2 != 0], delta);
}

void br_metrics_conn_closed(br_close_reason_t reason)
{
    br_mthread_t *m = mine();
    if (m != NULL)
        M_ADD(m->conns_closed[reason], 1);
}

void br_metrics_auth(int status, int had_credentials)
{
    br_mthread_t *m = mine();
    if (m == NULL)
        return;
    unsigned o = status < 400 ? AUTH_OK
                 : status == 429 ? AUTH_THROTTLED
                 : status == 403 ? AUTH_DENIED
                 : had_credentials ? AUTH_FAILED
                                   : AUTH_CHALLENGED;
    M_ADD(m->auth[o], 1);
}

void br_metrics_gc_run(int err, const br_gc_stats_t *st)
{
    if (err == 0) {
        __atomic_add_fetch(&gc_figures.runs_ok, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&gc_figures.last_ok, br_now(), __ATOMIC_RELAXED);
    } else if (err == BR_E_BUSY) {
        __atomic_add_fetch(&gc_figures.runs_busy, 1, __ATOMIC_RELAXED);
        return;
    } else {
        __atomic_add_fetch(&gc_figures.runs_failed, 1, __ATOMIC_RELAXED);
    }
    /* A failed or cancelled run still reclaimed what it did before. */
    __atomic_add_fetch(&gc_figures.blobs, st->blobs, __ATOMIC_RELAXED);
    __atomic_add_fetch(&gc_figures.manifests, st->manifests, __ATOMIC_RELAXED);
    __atomic_add_fetch(&gc_figures.bytes, st->bytes, __ATOMIC_RELAXED);
    __atomic_add_fetch(&gc_figures.tags, st->tags, __ATOMIC_RELAXED);
}

/* ---- the scrape ---------------------------------------------------------------- */

static void header(br_buf_t *b, const char *name, const char *type, const char *help)
{
    br_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_requests(br_buf_t *b)
{
    /* Summed over threads: one thread's block at a time, into a heap copy. */
    br_mthread_t *sum = br_calloc(1, sizeof(*sum));
    for (size_t t = 0; t < num_mthreads; t++) {
        const br_mthread_t *m = &mthreads[t];
        for (unsigned r = 0; r < BR_MROUTE_NUM; r++) {
            for (unsigned me = 0; me < NUM_METHODS; me++) {
                for (unsigned s = 0; s < NUM_STATUS; s++)
                    sum->requests[r][me][s] += M_GET(m->requests[r][me][s]);
                for (unsigned k = 0; k < NUM_BUCKETS; k++)
                    sum->latency[r][me][k] += M_GET(m->latency[r][me][k]);
                sum->latency_ns[r][me] += M_GET(m->latency_ns[r][me]);
            }
            sum->received[r] += M_GET(m->received[r]);
            sum->sent[r] += M_GET(m->sent[r]);
        }
        sum->uploads_in_flight += M_GET(m->uploads_in_flight);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                sum->conns_open[i][j] += M_GET(m->conns_open[i][j]);
        for (unsigned i = 0; i < BR_CLOSE_NUM; i++)
            sum->conns_closed[i] += M_GET(m->conns_closed[i]);
        for (unsigned i = 0; i < AUTH_NUM; i++)
            sum->auth[i] += M_GET(m->auth[i]);
    }

    header(b, "berth_http_requests_total", "counter", "Requests answered on the main listeners, by route group, method and status class.");
    for (unsigned r = 0; r < BR_MROUTE_NUM; r++)
        for (unsigned me = 0; me < NUM_METHODS; me++)
            for (unsigned s = 0; s < NUM_STATUS; s++)
                if (sum->requests[r][me][s] != 0)
                    br_buf_printf(b, "berth_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %" PRIu64 "\n",
                                  route_names[r], method_names[me], status_names[s], sum->requests[r][me][s]);
    header(b, "berth_http_request_duration_seconds", "histogram",
           "Time from the start of a request to the end of its response, by route group and method.");
    for (unsigned r = 0; r < BR_MROUTE_NUM; r++) {
        for (unsigned me = 0; me < NUM_METHODS; me++) {
            uint64_t cum = 0;
            for (unsigned k = 0; k < NUM_BUCKETS; k++)
                cum += sum->latency[r][me][k];
            if (cum == 0)
                continue;
            cum = 0;
            for (unsigned k = 0; k < NUM_BUCKETS; k++) {
                cum += sum->latency[r][me][k];
                if (k < NUM_BUCKETS - 1)
                    br_buf_printf(b, "berth_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                                  route_names[r], method_names[me], (double)buckets_ns[k] / 1e9, cum);
                else
                    br_buf_printf(b, "berth_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
                                  route_names[r], method_names[me], cum);
            }
            br_buf_printf(b, "berth_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.9f\n", route_names[r],
                          method_names[me], (double)sum->latency_ns[r][me] / 1e9);
            br_buf_printf(b, "berth_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %" PRIu64 "\n", route_names[r],
                          method_names[me], cum);
        }
    }
    header(b, "berth_http_received_bytes_total", "counter", "Request body bytes received, by route group.");
    for (unsigned r = 0; r < BR_MROUTE_NUM; r++)
        br_buf_printf(b, "berth_http_received_bytes_total{route=\"%s\"} %" PRIu64 "\n", route_names[r], sum->received[r]);
    header(b, "berth_http_sent_bytes_total", "counter", "Response body bytes sent, by route group.");
    for (unsigned r = 0; r < BR_MROUTE_NUM; r++)
        br_buf_printf(b, "berth_http_sent_bytes_total{route=\"%s\"} %" PRIu64 "\n", route_names[r], sum->sent[r]);
    header(b, "berth_http_uploads_in_flight", "gauge", "Upload requests (POST, PATCH, PUT of blob uploads) being handled now.");
    br_buf_printf(b, "berth_http_uploads_in_flight %" PRId64 "\n", sum->uploads_in_flight > 0 ? sum->uploads_in_flight : 0);
    header(b, "berth_connections_open", "gauge",
           "Client connections open on the main listeners, by protocol (h1 until a request shows h2) and TLS.");
    for (int tls = 0; tls < 2; tls++)
        for (int h2 = 0; h2 < 2; h2++)
            br_buf_printf(b, "berth_connections_open{protocol=\"%s\",tls=\"%s\"} %" PRId64 "\n", h2 ? "h2" : "h1",
                          tls ? "true" : "false", sum->conns_open[tls][h2] > 0 ? sum->conns_open[tls][h2] : 0);
    header(b, "berth_connections_closed_total", "counter",
           "Client connections closed, by reason: idle, cap (refused over limits.max_connections*), slowloris "
           "(headers too slow), drain (shutdown), error (closed before any answer), normal.");
    for (unsigned i = 0; i < BR_CLOSE_NUM; i++)
        br_buf_printf(b, "berth_connections_closed_total{reason=\"%s\"} %" PRIu64 "\n", close_names[i], sum->conns_closed[i]);
    header(b, "berth_auth_requests_total", "counter",
           "Authorization decisions and token requests, by outcome: ok, failed (bad credentials), challenged (none "
           "given), denied (403), throttled (429).");
    for (unsigned i = 0; i < AUTH_NUM; i++)
        br_buf_printf(b, "berth_auth_requests_total{outcome=\"%s\"} %" PRIu64 "\n", auth_names[i], sum->auth[i]);
    free(sum);

    header(b, "berth_event_loop_lag_seconds", "gauge", "How late the event-loop thread ran its last once-a-second timer.");
    for (size_t t = 0; t < num_mthreads; t++)
        br_buf_printf(b, "berth_event_loop_lag_seconds{thread=\"%zu\"} %.6f\n", t, (double)M_GET(mthreads[t].lag_ns) / 1e9);
}

static void render_store(br_buf_t *b)
{
    br_store_stats_t st;
    int err = br_store_stats(br_srv.store, &st);
    if (err != 0) {
        br_warn("metrics: store figures: %s", br_strerror(err));
        return;
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } rows[] = {
        {"berth_store_repositories", "Repositories in the index.", offsetof(br_store_stats_t, repositories)},
        {"berth_store_blobs", "Blobs in the index (layers, configs and manifest bodies).", offsetof(br_store_stats_t, blobs)},
        {"berth_store_blobs_bytes", "Total size of the blobs in the index.", offsetof(br_store_stats_t, blob_bytes)},
        {"berth_store_manifests", "Manifests, counted once per repository holding them.", offsetof(br_store_stats_t, manifests)},
        {"berth_store_tags", "Tags.", offsetof(br_store_stats_t, tags)},
        {"berth_store_upload_sessions", "Upload sessions started and not yet finished, cancelled or purged.",
         offsetof(br_store_stats_t, uploads)},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        header(b, rows[i].name, "gauge", rows[i].help);
        br_buf_printf(b, "%s %" PRIu64 "\n", rows[i].name, *(const uint64_t *)((const char *)&st + rows[i].off));
    }
    br_quota_t q[BR_QUOTA_MAX];
    size_t nq;
    if ((err = br_store_quotas_get(br_srv.store, q, BR_QUOTA_MAX, &nq)) != 0)
        br_warn("metrics: quota figures: %s", br_strerror(err));
    else if (nq != 0) {
        /* The global limit has no quota label (quota=""). */
        for (int limit = 0; limit < 2; limit++) {
            const char *name = limit ? "berth_quota_limit_bytes" : "berth_quota_used_bytes";
            header(b, name, "gauge",
                   limit ? "max_bytes of each quota (quota: its repository glob; none: the global limit)."
                         : "Bytes each quota counts: distinct blobs linked into its repositories (none: stored in all).");
            for (size_t i = 0; i < nq; i++)
                br_buf_printf(b, "%s%s%s%s %" PRIu64 "\n", name, q[i].glob[0] != '\0' ? "{quota=\"" : "", q[i].glob,
                              q[i].glob[0] != '\0' ? "\"}" : "", limit ? q[i].max_bytes : q[i].used_bytes);
        }
    }
    uint64_t queued, dropped;
    if ((err = br_store_events_stats(br_srv.store, &queued, &dropped)) != 0) {
        br_warn("metrics: event queue figures: %s", br_strerror(err));
        return;
    }
    header(b, "berth_notifications_events_queued", "gauge", "Events in the store's queue not yet taken by every endpoint.");
    br_buf_printf(b, "berth_notifications_events_queued %" PRIu64 "\n", queued);
    header(b, "berth_notifications_events_dropped_total", "counter",
           "Events dropped from a full queue (notifications.queue_size), since the store was made.");
    br_buf_printf(b, "berth_notifications_events_dropped_total %" PRIu64 "\n", dropped);
}

static void render_gc(br_buf_t *b)
{
    header(b, "berth_gc_runs_total", "counter", "Collections by the server's collector (gc.interval), by result.");
    br_buf_printf(b, "berth_gc_runs_total{result=\"ok\"} %" PRIu64 "\n", M_GET(gc_figures.runs_ok));
    br_buf_printf(b, "berth_gc_runs_total{result=\"busy\"} %" PRIu64 "\n", M_GET(gc_figures.runs_busy));
    br_buf_printf(b, "berth_gc_runs_total{result=\"error\"} %" PRIu64 "\n", M_GET(gc_figures.runs_failed));
    header(b, "berth_gc_reclaimed_bytes_total", "counter", "Bytes of blobs the server's collector removed.");
    br_buf_printf(b, "berth_gc_reclaimed_bytes_total %" PRIu64 "\n", M_GET(gc_figures.bytes));
    header(b, "berth_gc_removed_blobs_total", "counter", "Blobs (and orphan files) the server's collector removed.");
    br_buf_printf(b, "berth_gc_removed_blobs_total %" PRIu64 "\n", M_GET(gc_figures.blobs));
    header(b, "berth_gc_removed_manifests_total", "counter", "Untagged manifests the server's collector removed.");
    br_buf_printf(b, "berth_gc_removed_manifests_total %" PRIu64 "\n", M_GET(gc_figures.manifests));
    header(b, "berth_gc_retention_deleted_tags_total", "counter", "Tags the server's collector deleted by retention rules.");
    br_buf_printf(b, "berth_gc_retention_deleted_tags_total %" PRIu64 "\n", M_GET(gc_figures.tags));
    header(b, "berth_gc_last_success_timestamp_seconds", "gauge", "When the server's collector last finished a run (0: never).");
    br_buf_printf(b, "berth_gc_last_success_timestamp_seconds %" PRIu64 "\n", M_GET(gc_figures.last_ok));
}

static int handle_metrics(h2o_req_t *req)
{
    br_buf_t b = {NULL, 0, 0};
    header(&b, "berth_build_info", "gauge", "Version of berth and of the libraries it was built with (value 1).");
    br_buf_printf(&b, "berth_build_info{version=\"%s\",h2o=\"%s\",openssl=\"%s\"} 1\n", PACKAGE_VERSION, H2O_VERSION,
                  OpenSSL_version(OPENSSL_VERSION_STRING));
    header(&b, "berth_start_time_seconds", "gauge", "When the server started, in seconds since the epoch.");
    br_buf_printf(&b, "berth_start_time_seconds %.3f\n", (double)br_srv.started_at_ms / 1000.0);
    header(&b, "berth_threads", "gauge", "Event-loop threads.");
    br_buf_printf(&b, "berth_threads %zu\n", num_mthreads);
    header(&b, "berth_io_jobs", "gauge", "Store writes handed to the I/O threads and not yet answered (queued or running).");
    br_buf_printf(&b, "berth_io_jobs %u\n", br_io_jobs());
    render_requests(&b);
    render_store(&b);
    render_gc(&b);
    h2o_iovec_t body = br_buf_to_pool(&b, req);
    br_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", body.base, body.len);
    return 0;
}

/* ---- probes --------------------------------------------------------------------- */

int br_health_path(br_str_t path)
{
    return br_str_eq(path, BR_STR("/healthz")) || br_str_eq(path, BR_STR("/readyz"));
}

int br_health_handle(h2o_req_t *req, br_str_t path)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) && !br_is_head(req)) {
        br_add_header_token(req, H2O_TOKEN_ALLOW, "GET, HEAD", 9);
        br_send(req, 405, "text/plain; charset=utf-8", "method not allowed\n", 19);
        return 0;
    }
    br_add_header_token(req, H2O_TOKEN_CACHE_CONTROL, "no-store", 8);
    if (br_str_eq(path, BR_STR("/healthz"))) {
        br_send(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
        return 0;
    }
    /* Not ready while draining (a load balancer should stop sending now), or
     * when a push could not be stored. */
    if (br_srv.shutdown_requested) {
        br_send(req, 503, "text/plain; charset=utf-8", "shutting down\n", 14);
        return 0;
    }
    int err = br_srv.store != NULL ? br_store_check_writable(br_srv.store) : ENODEV;
    if (err != 0) {
        h2o_iovec_t msg = br_pool_printf(req, "store not writable: %s\n", br_strerror(err));
        br_send(req, 503, "text/plain; charset=utf-8", msg.base, msg.len);
        return 0;
    }
    br_send(req, 200, "text/plain; charset=utf-8", "ready\n", 6);
    return 0;
}

int br_metrics_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    /* While draining, each answer closes its connection, so the drain does
     * not wait on a scraper's keep-alive. */
    if (br_srv.shutdown_requested)
        req->http1_is_persistent = 0;
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    br_str_t path = br_str(req->path.base, plen);
    if (br_health_path(path))
        return br_health_handle(req, path);
    if (br_str_eq(path, BR_STR("/metrics"))) {
        if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) && !br_is_head(req)) {
            br_add_header_token(req, H2O_TOKEN_ALLOW, "GET, HEAD", 9);
            br_send(req, 405, "text/plain; charset=utf-8", "method not allowed\n", 19);
            return 0;
        }
        return handle_metrics(req);
    }
    br_send(req, 404, "text/plain; charset=utf-8", "not found: try /metrics, /healthz or /readyz\n", 46);
    return 0;
}
