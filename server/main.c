/*
 * berth — command line, start-up and shutdown.
 *
 *   berth                         serve with embedded defaults
 *   berth serve [-c FILE] [--listen HOST:PORT]... [--root DIR]
 *   berth check-config -c FILE
 *   berth reload [-c FILE] [--root DIR]
 *   berth version
 *
 * Start-up order matters: config (file, then environment, then flags), then
 * logging, then the store, then the one h2o_globalconf_t, then the threads.
 * Nothing global changes after the threads start, except what a reload
 * (SIGHUP) swaps in whole: the config snapshot, the TLS context, the log
 * level and format, the collector's settings.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "berth_config.h"
#include "server/server.h"

extern char **environ;

br_server_t br_srv;
__thread br_thread_t *br_thread;

static br_thread_t *threads;
static size_t num_threads;

static void usage_main(FILE *fp)
{
    /* The first line names every command (tests/pkg/docs.sh checks it against
     * the list below and against berth(1)). */
    fprintf(fp, "usage: berth [serve | check-config | reload | version | hash-password | gen-key | gc | fsck | du] [options]\n"
                "\n"
                "  berth                      serve with the embedded defaults (listen :5000, store ./berth-data)\n"
                "  berth serve [options]      serve, optionally with a config file\n"
                "  berth check-config -c FILE validate a config file and exit (1 on any error)\n"
                "  berth reload [options]     make the berth serving the store re-read its config (SIGHUP)\n"
                "  berth version              print the version\n"
                "  berth hash-password [USER] bcrypt a password (from stdin) for the htpasswd file\n"
                "  berth gen-key PATH [ALG]   write a new token signing key (ES256 or RS256)\n"
                "  berth gc [options]         collect garbage in the store (also while serving)\n"
                "  berth fsck [options]       check the store (blobs re-hashed); 1 when damaged\n"
                "  berth du [options] [GLOB]  bytes per repository, total, reclaimable now\n"
                "\n"
                "Run 'berth COMMAND --help' for a command's options.\n");
}

static void usage_serve(FILE *fp)
{
    fprintf(fp, "usage: berth serve [-c FILE] [--listen HOST:PORT]... [--root DIR]\n"
                "\n"
                "  -c, --config FILE     YAML config file (default: none, or $BERTH_CONFIG)\n"
                "  -l, --listen ADDR     listen address host:port or [v6]:port (repeatable; replaces the file's)\n"
                "  -r, --root DIR        storage root (overrides the file)\n"
                "  -h, --help            this help\n"
                "\n"
                "Environment variables BERTH_<SECTION>_<KEY> override the file; flags override both.\n");
}

static void usage_check(FILE *fp)
{
    fprintf(fp, "usage: berth check-config -c FILE\n"
                "\n"
                "Reads FILE (and BERTH_* environment variables) and reports the first error as\n"
                "file:line:col: message, exiting 1; prints 'ok' and exits 0 when valid.\n");
}

/* Loads config: file (if any), environment, then command-line overrides.
 * Returns 0, or 1 with the error in err (errsize bytes). */
static int load_config(br_config_t *c, const char *path, char **listen, size_t num_listen, const char *root, char *err,
                       size_t errsize)
{
    br_config_init(c);
    if (path == NULL)
        path = getenv("BERTH_CONFIG");
    if (path != NULL && br_config_load_file(c, path, err, errsize) != 0)
        return 1;
    if (br_config_load_env(c, environ, err, errsize) != 0)
        return 1;
    if (num_listen != 0) {
        for (size_t i = 0; i < c->num_listen; i++)
            free(c->listen[i].host);
        c->num_listen = 0;
        for (size_t i = 0; i < num_listen; i++) {
            char why[512];
            if (br_config_parse_listen(&c->listen[i], listen[i], why, sizeof(why)) != 0) {
                snprintf(err, errsize, "--listen: %s", why);
                return 1;
            }
            c->num_listen++;
        }
    }
    if (num_listen != 0)
        br_config_set_origin(c, NULL, "listen", BR_CONFIG_FROM_FLAG);
    if (root != NULL) {
        free(c->storage.root);
        c->storage.root = br_strndup(root, strlen(root));
        br_config_set_origin(c, "storage", "root", BR_CONFIG_FROM_FLAG);
    }
    if (br_config_validate(c, err, errsize) != 0 || br_config_check_files(c, err, errsize) != 0)
        return 1;
    return 0;
}

/* load_config, printing the error. */
static int load_config_or_print(br_config_t *c, const char *path, char **listen, size_t num_listen, const char *root)
{
    char err[1024];
    if (load_config(c, path, listen, num_listen, root, err, sizeof(err)) == 0)
        return 0;
    fprintf(stderr, "%s\n", err);
    return 1;
}

/* 1 when every address host resolves to is a loopback address ("" = any). */
static int host_is_loopback(const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    if (host[0] == '\0' || getaddrinfo(host, NULL, &hints, &res) != 0)
        return 0;
    int loopback = 1;
    for (struct addrinfo *p = res; p != NULL && loopback; p = p->ai_next) {
        if (p->ai_family == AF_INET) {
            loopback = (ntohl(((struct sockaddr_in *)p->ai_addr)->sin_addr.s_addr) >> 24) == 127;
        } else if (p->ai_family == AF_INET6) {
            const struct in6_addr *a = &((struct sockaddr_in6 *)p->ai_addr)->sin6_addr;
            loopback = IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
        } else {
            loopback = 0;
        }
    }
    freeaddrinfo(res);
    return loopback;
}

/* The embedded defaults serve everyone on every address, deletes included.
 * That is right for a first try on a laptop and wrong anywhere else, so say
 * it once, with the key that changes it. Writes the warning into buf and
 * returns 1, or returns 0 when auth is on or only loopback is served. */
static int open_access_warning(const br_config_t *c, char *buf, size_t size)
{
    if (c->auth.enabled)
        return 0;
    for (size_t i = 0; i < c->num_listen; i++) {
        const br_listen_t *l = &c->listen[i];
        if (host_is_loopback(l->host))
            continue;
        int v6 = strchr(l->host, ':') != NULL;
        snprintf(buf, size,
                 "no authentication configured and listening on %s%s%s:%u: anyone who can reach it may pull, push%s; "
                 "set 'auth:' in the config (auth.htpasswd or auth.token) to require logins",
                 v6 ? "[" : "", l->host[0] != '\0' ? l->host : "0.0.0.0", v6 ? "]" : "", l->port,
                 c->storage.delete_enabled ? " and delete" : "");
        return 1;
    }
    return 0;
}

int br_cli_load_config(br_config_t *c, const char *path, const char *root)
{
    return load_config_or_print(c, path, NULL, 0, root);
}

static void on_signal(int signo)
{
    if (signo == SIGHUP)
        br_srv.reload_requested = 1;
    else
        br_srv.shutdown_requested = 1;
}

/* Why the last OpenSSL call failed, and empties OpenSSL's error queue. A file
 * that does not open is queued as a system error whose reason OpenSSL 3 does
 * not name: that one gets the OS's text. */
static const char *ssl_failure(char *buf, size_t size)
{
    const char *why = NULL;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (why != NULL)
            continue;
        if (ERR_SYSTEM_ERROR(e))
            why = strerror((int)ERR_GET_REASON(e));
        else if ((why = ERR_reason_error_string(e)) == NULL) {
            ERR_error_string_n(e, buf, size);
            why = buf;
        }
    }
    return why != NULL ? why : "unknown error";
}

/* A new server SSL_CTX from the certificate, key and client CA files, or NULL
 * (logged). Called at start and again on SIGHUP. */
static SSL_CTX *build_ssl_ctx(const br_config_t *c)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls.certificate) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, c->tls.key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        br_error("tls: cannot load certificate %s / key %s: %s", c->tls.certificate, c->tls.key, ssl_failure(why, sizeof(why)));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (c->tls.client_ca != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, c->tls.client_ca, NULL) != 1) {
            br_error("tls: cannot load client CA %s: %s", c->tls.client_ca, ssl_failure(why, sizeof(why)));
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    if (c->http2) {
        /* h2o's own list has only h2 (and drafts): a client offering only
         * http/1.1 would get no ALPN answer at all. h2o accepts a connection
         * whose selected protocol is not h2 as HTTP/1. */
        static const h2o_iovec_t h2_h1[] = {{(char *)"h2", 2}, {(char *)"http/1.1", 8}, {NULL, 0}};
        h2o_ssl_register_alpn_protocols(ctx, h2_h1);
    } else {
        static const h2o_iovec_t h1_only[] = {{(char *)"http/1.1", 8}, {NULL, 0}};
        h2o_ssl_register_alpn_protocols(ctx, h1_only);
    }
    ERR_clear_error();
    return ctx;
}

static int setup_tls(br_config_t *c)
{
    pthread_mutex_init(&br_srv.tls_lock, NULL);
    if (c->tls.certificate == NULL)
        return 0;
    return (br_srv.ssl_ctx = build_ssl_ctx(c)) != NULL ? 0 : 1;
}

/* check-config: loads what serve would load from the files the config names
 * (htpasswd, token keys and certificates, the TLS certificate and key), so a
 * file that opens but does not parse fails here, not at start. Returns 0, or
 * 1 after printing the problem. */
static int check_contents(const br_config_t *c)
{
    char err[1024];
    br_auth_t *auth = NULL;
    if (br_auth_create(&auth, c, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    br_auth_destroy(auth);
    if (c->tls.certificate == NULL)
        return 0;
    SSL_CTX *ctx = build_ssl_ctx(c); /* logs why it failed */
    SSL_CTX_free(ctx);
    return ctx == NULL;
}

/* What serve was started with, so that a reload reads the same sources. */
static struct {
    const char *path;
    char **listen;
    size_t num_listen;
    const char *root;
} sources;

void br_snapshot_release(br_snapshot_t *snap)
{
    if (snap == NULL || __atomic_sub_fetch(&snap->_refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (snap->auth != NULL)
        br_auth_destroy(snap->auth);
    br_config_dispose(&snap->config);
    free(snap);
}

br_snapshot_t *br_snapshot_acquire(void)
{
    pthread_mutex_lock(&br_srv.snapshot_lock);
    br_snapshot_t *snap = br_srv.snapshot;
    __atomic_add_fetch(&snap->_refs, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&br_srv.snapshot_lock);
    return snap;
}

void br_snapshot_update(br_thread_t *t)
{
    if (__atomic_load_n(&br_srv.generation, __ATOMIC_ACQUIRE) == t->snap->generation)
        return;
    br_snapshot_t *old = t->snap;
    t->snap = br_snapshot_acquire();
    br_snapshot_release(old);
}

static void on_restart_key(void *ctx, const char *where)
{
    (void)ctx;
    br_warn("reload: %s: changed, needs restart; keeping the running value", where);
}

/* SIGHUP (thread 0): reads the config again from the sources serve started
 * with and, when all of it loads (the file, the environment, every file it
 * names, the auth state, the TLS certificate), publishes it as one new
 * snapshot; each thread moves to it before its next request. Anything
 * invalid changes nothing. Keys that need a restart keep their running
 * values (logged). */
static void reload(void)
{
    br_srv.reload_requested = 0;
    br_snapshot_t *cur = br_srv.snapshot; /* only this thread replaces it */
    br_snapshot_t *nw = br_calloc(1, sizeof(*nw));
    SSL_CTX *ssl_ctx = NULL;
    char err[1024];
    if (load_config(&nw->config, sources.path, sources.listen, sources.num_listen, sources.root, err, sizeof(err)) != 0 ||
        br_auth_create(&nw->auth, &nw->config, err, sizeof(err)) != 0) {
        br_error("reload: %s", err);
        goto Fail;
    }
    if ((cur->config.tls.certificate == NULL) != (nw->config.tls.certificate == NULL)) {
        br_warn("reload: tls: turned %s, needs restart; keeping it %s", cur->config.tls.certificate == NULL ? "on" : "off",
                cur->config.tls.certificate == NULL ? "off" : "on");
        char *keep[] = {cur->config.tls.certificate, cur->config.tls.key, cur->config.tls.client_ca};
        char **to[] = {&nw->config.tls.certificate, &nw->config.tls.key, &nw->config.tls.client_ca};
        for (size_t i = 0; i < 3; i++) {
            free(*to[i]);
            *to[i] = keep[i] != NULL ? br_strndup(keep[i], strlen(keep[i])) : NULL;
        }
    }
    if (nw->config.tls.certificate != NULL && (ssl_ctx = build_ssl_ctx(&nw->config)) == NULL) {
        br_error("tls: reload failed; keeping the current certificate");
        goto Fail;
    }
    br_config_keep_restart_keys(&cur->config, &nw->config, on_restart_key, NULL);

    nw->_refs = 1; /* br_srv.snapshot's */
    pthread_mutex_lock(&br_srv.snapshot_lock);
    nw->generation = cur->generation + 1;
    br_srv.snapshot = nw;
    __atomic_store_n(&br_srv.generation, nw->generation, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&br_srv.snapshot_lock);
    br_snapshot_release(cur);

    br_log_setup(nw->config.log.level, nw->config.log.format);
    br_gc_reconfigure(&nw->config);
    br_scrub_reconfigure(&nw->config);
    br_quota_sync(&nw->config, 0);
    if (ssl_ctx != NULL) {
        pthread_mutex_lock(&br_srv.tls_lock);
        SSL_CTX *old = br_srv.ssl_ctx;
        br_srv.ssl_ctx = ssl_ctx;
        br_srv.tls_generation++;
        pthread_mutex_unlock(&br_srv.tls_lock);
        SSL_CTX_free(old); /* threads and live connections hold their own references */
        br_info("tls: certificate and key reloaded");
    }
    char warning[512];
    if (open_access_warning(&nw->config, warning, sizeof(warning)))
        br_warn("%s", warning);
    br_info("reload: config reloaded (generation %u)", nw->generation);
    return;

Fail:
    br_error("reload: nothing changed");
    if (nw->auth != NULL)
        br_auth_destroy(nw->auth);
    br_config_dispose(&nw->config);
    free(nw);
}

/* Picks up a reloaded SSL_CTX for new connections; connections already open
 * keep the context they were accepted with (SSL objects hold a reference). */
static void thread_update_tls(br_thread_t *t)
{
    if (t->accept_ctx.ssl_ctx == NULL || __atomic_load_n(&br_srv.tls_generation, __ATOMIC_RELAXED) == t->tls_generation)
        return;
    pthread_mutex_lock(&br_srv.tls_lock);
    SSL_CTX *ctx = br_srv.ssl_ctx;
    SSL_CTX_up_ref(ctx);
    t->tls_generation = br_srv.tls_generation;
    pthread_mutex_unlock(&br_srv.tls_lock);
    SSL_CTX_free(t->accept_ctx.ssl_ctx);
    t->accept_ctx.ssl_ctx = ctx;
}

/* The one h2o_globalconf_t: limits and timeouts from the config. */
/* h2o frees a socket's input buffer whenever it has been read to the end and
 * allocates a new one (doubling up to the read burst, or a stream window) for
 * the next bytes. With glibc's adaptive thresholds those buffers are mapped and
 * unmapped, or trimmed off the top of a thread's heap, so every refill of an
 * upload faults its pages in again: a 1 GiB upload over TLS took 870,000
 * minor faults and a third of berth's CPU time went with them. Fixed
 * thresholds keep freed blocks below 32 MiB in the heap and give memory back
 * to the kernel only above 64 MiB of free top: the same 1 GiB then takes a few
 * hundred faults, a third less CPU, and the same peak RSS. An operator's own
 * GLIBC_TUNABLES malloc settings win. */
static void keep_freed_buffers(void)
{
    const char *t = getenv("GLIBC_TUNABLES");
    if (t != NULL && strstr(t, "glibc.malloc.") != NULL)
        return;
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

static void setup_globalconf(br_config_t *c)
{
    h2o_globalconf_t *g = &br_srv.globalconf;
    h2o_config_init(g);
    g->server_name = h2o_iovec_init(H2O_STRLIT("berth"));
    g->max_request_entity_size = c->limits.max_body_size > SIZE_MAX ? SIZE_MAX : (size_t)c->limits.max_body_size;
#if BR_PATCHED_H2O
    /* Upload bodies are hashed and written as they arrive (server/h2o/0002);
     * other routes read at most their own limit (router.c). */
    g->stream_request_body = br_wants_body_stream;
#endif
    /* In h2o 2.2.5 this is a deadline for headers + whole body, not an idle
     * timeout, so it must cover the slowest upload berth accepts. */
    g->http1.req_timeout = c->limits.request_deadline_ms;
    g->http1.upgrade_to_http2 = c->http2; /* h2c with prior knowledge on plain listeners */
    g->http2.idle_timeout = c->limits.idle_timeout_ms;
    g->http2.graceful_shutdown_timeout = c->limits.drain_timeout_ms;
    g->handshake_timeout = 10 * 1000;
    br_srv.hostconf = h2o_config_register_host(g, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(br_srv.hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = br_on_req;
    br_conns_register(pathconf);
    /* Requests h2o refuses before routing (a bad chunk size, a body over the
     * limit) run on the fallback path: OCI error bodies, and logged too. */
    br_h2o_errors_register(br_srv.hostconf);
    /* always there: it checks log.access_log, which a reload may change */
    h2o_logger_t *logger = h2o_create_logger(pathconf, sizeof(*logger));
    logger->log_access = br_access_log;
    logger = h2o_create_logger(&br_srv.hostconf->fallback_path, sizeof(*logger));
    logger->log_access = br_access_log;
    /* Each listener serves exactly one host of the one globalconf (h2o takes
     * the only host of a connection's list whatever its Host header says), so
     * no Host header reaches /metrics through a main listener, and the
     * metrics listener serves nothing else. */
    br_srv.main_hosts[0] = br_srv.hostconf;
    if (c->metrics.listen.port != 0) {
        h2o_logger_t *counter = h2o_create_logger(pathconf, sizeof(*counter));
        counter->log_access = br_metrics_log;
        counter = h2o_create_logger(&br_srv.hostconf->fallback_path, sizeof(*counter));
        counter->log_access = br_metrics_log;
        h2o_hostconf_t *mh = h2o_config_register_host(g, h2o_iovec_init(H2O_STRLIT("berth-metrics.invalid")), 65535);
        h2o_handler_t *mhandler = h2o_create_handler(h2o_config_register_path(mh, "/", 0), sizeof(*mhandler));
        mhandler->on_req = br_metrics_on_req;
        br_srv.metrics_hosts[0] = mh;
    }

    /* Large request bodies spill to a file on the storage volume
     * instead of RAM (h2o maps it); the template is global to h2o. */
    snprintf(h2o_socket_buffer_mmap_settings.fn_template, sizeof(h2o_socket_buffer_mmap_settings.fn_template),
             "%s/h2o.body.XXXXXX", br_store_tmp_dir(br_srv.store));
    h2o_socket_buffer_mmap_settings.threshold = BR_SPILL_THRESHOLD;
    keep_freed_buffers();
}

/* Frees the chunks h2o keeps on this thread's socket-buffer recycle list (a
 * thread-local free list it never empties itself), so nothing is left behind
 * when the thread ends. Each chunk starts with the link to the next. */
static void drain_recycled_buffers(void)
{
    h2o_mem_recycle_t *r = &h2o_socket_buffer_prototype.allocator;
    while (r->_link != NULL) {
        void **chunk = (void **)r->_link;
        r->_link = *chunk;
        r->cnt--;
        free(chunk);
    }
}

/* Start-up barrier. Every thread creates its own loop, context, wake-up
 * socket, listeners and timers, and destroys them itself: h2o's socket buffers
 * and memory pools come from the calling thread's free lists (thread-local and
 * unlocked), so an object made on one thread and used on another corrupts the
 * heap under load. The threads then wait here until all have reported, so a
 * start-up error still makes serve() fail before anything is served. */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static size_t start_reported;
static int start_failed;

/* Reports one thread's start (failed != 0: it could not start); with wait,
 * blocks until every thread has reported. Returns 1 when all started. */
static int start_report(int failed, int wait)
{
    pthread_mutex_lock(&start_lock);
    start_reported++;
    start_failed |= failed;
    pthread_cond_broadcast(&start_cond);
    while (wait && start_reported < num_threads)
        pthread_cond_wait(&start_cond, &start_lock);
    int ok = !start_failed;
    pthread_mutex_unlock(&start_lock);
    return ok;
}

static int thread_start(br_thread_t *t)
{
    t->snap = br_snapshot_acquire();
    t->loop = h2o_evloop_create();
    h2o_context_init(&t->ctx, t->loop, &br_srv.globalconf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = br_srv.main_hosts;
    t->metrics_accept_ctx.ctx = &t->ctx;
    t->metrics_accept_ctx.hosts = br_srv.metrics_hosts;
    pthread_mutex_lock(&br_srv.tls_lock);
    t->accept_ctx.ssl_ctx = br_srv.ssl_ctx;
    if (t->accept_ctx.ssl_ctx != NULL)
        SSL_CTX_up_ref(t->accept_ctx.ssl_ctx);
    t->tls_generation = br_srv.tls_generation;
    pthread_mutex_unlock(&br_srv.tls_lock);
    h2o_linklist_init_anchor(&t->conns);
    h2o_linklist_init_anchor(&t->idle_checks);
    br_defer_init(t);
    br_metrics_thread_start(t);
    return br_listeners_open(t);
}

/* Frees what thread_start made, on the same thread. A context with live
 * connections cannot be disposed safely; after the drain deadline the process
 * exits with them open. */
static void thread_stop(br_thread_t *t)
{
    br_listeners_close(t);
    br_listeners_close_metrics(t);
    if (t->num_conns == 0) {
        br_metrics_thread_stop(t);
        if (t->accept_ctx.ssl_ctx != NULL) {
            SSL_CTX_free(t->accept_ctx.ssl_ctx);
            t->accept_ctx.ssl_ctx = NULL;
        }
        if (h2o_timeout_is_linked(&t->sweep_entry))
            h2o_timeout_unlink(&t->sweep_entry);
        if (t->sweep_timeout._link.next != NULL)
            h2o_timeout_dispose(t->loop, &t->sweep_timeout);
        /* h2o_context_request_shutdown() arms HTTP/2's second GOAWAY one
         * second ahead; when the last connection closed sooner, it is still
         * linked and h2o_context_dispose() would assert. */
        if (h2o_timeout_is_linked(&t->ctx.http2._graceful_shutdown_timeout))
            h2o_timeout_unlink(&t->ctx.http2._graceful_shutdown_timeout);
        br_defer_dispose(t);
        h2o_context_dispose(&t->ctx);
        /* h2o 2.2.5's h2o_multithread_destroy_queue (evloop build) closes the
         * queue but never frees it. */
        free(t->ctx.queue);
        t->ctx.queue = NULL;
        /* the loop asserts that every timeout is gone; it frees the closed
         * sockets */
        h2o_evloop_destroy(t->loop);
        t->loop = NULL;
    }
    br_list_cache_clear();
    drain_recycled_buffers();
    br_snapshot_release(t->snap);
    t->snap = NULL;
}

static void log_listening(void)
{
    const br_config_t *c = br_cfg();
    for (size_t i = 0; i < c->num_listen; i++)
        br_info("berth %s listening on %s%s%s:%u (%s, %zu threads), store %s", PACKAGE_VERSION,
                strchr(c->listen[i].host, ':') != NULL ? "[" : "", c->listen[i].host[0] ? c->listen[i].host : "0.0.0.0",
                strchr(c->listen[i].host, ':') != NULL ? "]" : "", c->listen[i].port, br_srv.ssl_ctx ? "https" : "http",
                num_threads, c->storage.root);
    if (c->metrics.listen.port != 0)
        br_info("metrics on http://%s%s%s:%u/metrics", strchr(c->metrics.listen.host, ':') != NULL ? "[" : "",
                c->metrics.listen.host[0] ? c->metrics.listen.host : "0.0.0.0", strchr(c->metrics.listen.host, ':') != NULL ? "]" : "",
                c->metrics.listen.port);
}

static void *thread_main(void *arg)
{
    br_thread_t *t = arg;
    br_thread = t;
    if (!start_report(thread_start(t) != 0, 1)) {
        thread_stop(t);
        br_thread = NULL;
        return NULL;
    }
    br_sweep_start(t);
    if (t->index == 0) {
        /* Every thread polls its own dup of each listening socket now. */
        br_listeners_unbind();
        log_listening();
    }
    while (!br_srv.shutdown_requested || t->num_conns != 0) {
        if (br_srv.shutdown_requested && t->num_listeners != 0) {
            /* Stop accepting, ask HTTP/2 peers to go away, let requests in flight finish. */
            br_listeners_close(t);
            h2o_context_request_shutdown(&t->ctx);
            t->drain_deadline_ms = br_now_ms() + br_cfg()->limits.drain_timeout_ms;
            br_sweep_now(t);
        }
        if (t->drain_deadline_ms != 0 && br_now_ms() >= t->drain_deadline_ms)
            break;
        h2o_evloop_run(t->loop, 100);
        br_conns_check_idle(t);
        if (t->index == 0) {
            br_uploads_maybe_purge();
            if (br_srv.reload_requested)
                reload();
        }
        br_snapshot_update(t);
        thread_update_tls(t);
    }
    thread_stop(t);
    br_thread = NULL; /* its snapshot is released: br_snap() is br_srv's again */
    return NULL;
}

/* Serves with snap (its config loaded; serve owns it from here). */
static int serve(br_snapshot_t *snap)
{
    int ret = 1;
    br_config_t *c = &snap->config;
    pthread_mutex_init(&br_srv.snapshot_lock, NULL);
    snap->_refs = 1;
    snap->generation = br_srv.generation = 1;
    br_srv.snapshot = snap;
    br_srv.started_at_ms = br_now_ms();
    br_log_setup(c->log.level, c->log.format);

    /* Whatever reads the files the config names comes before the store, so
     * that nothing is created on disk (no root, no index) by a start that
     * fails on the config. */
    char aerr[1024];
    int err;
    if ((err = br_auth_create(&snap->auth, c, aerr, sizeof(aerr))) != 0) {
        br_error("%s", aerr);
        goto Exit;
    }
    if (setup_tls(c) != 0)
        goto Exit;
    /* One server per store (storage.h, "Processes"). */
    br_store_options_t opts = {.fsync = c->storage.fsync, .exclusive = 1};
    if ((err = br_store_open(&br_srv.store, c->storage.root, &opts)) != 0) {
        long pid = err == EBUSY ? br_store_lock_owner(c->storage.root) : 0;
        if (pid != 0)
            br_error("cannot open store at %s: another berth serves it (process %ld holds %s/berth.lock)", c->storage.root, pid,
                     c->storage.root);
        else if (err == EBUSY) /* the holder has not written its PID yet */
            br_error("cannot open store at %s: another berth serves it (it holds %s/berth.lock)", c->storage.root,
                     c->storage.root);
        else
            br_error("cannot open store at %s: %s", c->storage.root, br_strerror(err));
        goto Exit;
    }
    if (br_quota_sync(c, 1) != 0)
        goto Exit;
    setup_globalconf(c);
    char warning[512];
    if (open_access_warning(c, warning, sizeof(warning)))
        br_warn("%s", warning);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    num_threads = c->threads;
    if (num_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        num_threads = n > 0 ? (size_t)n : 1;
    }
    threads = br_calloc(num_threads, sizeof(*threads));
    br_metrics_init(num_threads);
    if (br_listeners_bind() != 0)
        goto Exit;
    br_gc_start(c);
    br_events_start();
    br_scrub_start(c);
    /* Hash threads take the cores the event loops leave: where the loops
     * already fill every core (the default), handing a hash to another
     * thread only adds a copy and a cross-core handoff, so uploads hash
     * inline (measured on 2 cores: 5-10% slower with the handoff). Only
     * streamed pieces go to them: the system-h2o build starts none. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned hash_threads = cpus > (long)num_threads ? (unsigned)(cpus - (long)num_threads) : 0;
    if (!BR_PATCHED_H2O)
        hash_threads = 0;
    br_io_start(c->io_threads, hash_threads);
    /* Thread 0 is this one; it runs after the others are started. */
    for (size_t i = 1; i < num_threads; i++) {
        threads[i].index = i;
        if ((err = pthread_create(&threads[i].tid, NULL, thread_main, &threads[i])) != 0) {
            br_error("cannot start thread %zu: %s", i, strerror(err));
            start_report(1, 0);
        } else {
            threads[i].started = 1;
        }
    }
    thread_main(&threads[0]);
    for (size_t i = 1; i < num_threads; i++)
        if (threads[i].started)
            pthread_join(threads[i].tid, NULL);
    br_listeners_unbind();
    if (!start_failed) {
        br_info("shutting down");
        ret = 0;
    }

Exit:
    br_io_stop(threads, threads != NULL ? num_threads : 0);
    br_events_stop();
    br_gc_stop();
    br_scrub_stop();
    br_metrics_dispose();
    br_store_close(br_srv.store);
    br_srv.store = NULL;
    return ret;
}

/* berth reload [-c FILE] [--root DIR]: checks the config as serve would load
 * it and sends SIGHUP to the berth that serves its storage root, found by the
 * lock it holds on <root>/berth.lock (no PID file to configure or go stale).
 * The server reads the file again itself, with its own environment; its log
 * says what the reload did. */
static int cmd_reload(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"root", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *path = NULL, *root = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:r:h", opts, NULL)) != -1) {
        if (ch == 'c' || ch == 'r') {
            *(ch == 'c' ? &path : &root) = optarg;
            continue;
        }
        fprintf(ch == 'h' ? stdout : stderr, "usage: berth reload [-c FILE] [--root DIR]\n"
                                             "\n"
                                             "Checks FILE and sends SIGHUP to the berth serving its storage root (or DIR),\n"
                                             "which then re-reads its config; keys that need a restart keep their values.\n");
        return ch == 'h' ? 0 : 2;
    }
    if (optind != argc) {
        fprintf(stderr, "berth: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    br_config_t c;
    int ret = 1;
    if (load_config_or_print(&c, path, NULL, 0, root) != 0 || check_contents(&c) != 0)
        goto Exit;
    long pid = br_store_server_pid(c.storage.root);
    if (pid == 0) {
        fprintf(stderr, "berth: no berth serves %s (nobody holds %s/berth.lock)\n", c.storage.root, c.storage.root);
        goto Exit;
    }
    if (kill((pid_t)pid, SIGHUP) != 0) {
        fprintf(stderr, "berth: cannot signal process %ld: %s\n", pid, strerror(errno));
        goto Exit;
    }
    printf("sent SIGHUP to berth (process %ld) serving %s\n", pid, c.storage.root);
    ret = 0;
Exit:
    br_config_dispose(&c);
    return ret;
}

/* berth hash-password [USER]: reads a password from standard input (one
 * line; without echo on a terminal) and prints a bcrypt hash, or a
 * "USER:hash" htpasswd line. */
static int cmd_hash_password(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        int help = argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        fprintf(help ? stdout : stderr, "usage: berth hash-password [USER] < password\n"
                                        "\n"
                                        "Prints a bcrypt ($2y$) hash of the password read from standard input, or an\n"
                                        "htpasswd line USER:hash when USER is given. The cost is auth.bcrypt_cost (10).\n");
        return help ? 0 : 2;
    }
    const char *user = argc == 2 ? argv[1] : NULL;
    if (user != NULL && (strchr(user, ':') != NULL || user[0] == '\0')) {
        fprintf(stderr, "berth: user name must be non-empty and contain no ':'\n");
        return 2;
    }
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "Password: ");
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    char pw[1024];
    char *got = fgets(pw, sizeof(pw), stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &old);
        fprintf(stderr, "\n");
    }
    if (got == NULL) {
        fprintf(stderr, "berth: no password on standard input\n");
        return 1;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    br_config_t c;
    br_config_init(&c);
    char hash[256];
    int err = br_auth_hash_password(pw, c.auth.bcrypt_cost, hash, sizeof(hash));
    OPENSSL_cleanse(pw, sizeof(pw));
    br_config_dispose(&c);
    if (err != 0) {
        fprintf(stderr, "berth: cannot hash password: %s\n", br_strerror(err));
        return 1;
    }
    if (user != NULL)
        printf("%s:%s\n", user, hash);
    else
        printf("%s\n", hash);
    return 0;
}

/* berth gen-key PATH [ES256|RS256]: writes a new token signing key. */
static int cmd_gen_key(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        int help = argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        fprintf(help ? stdout : stderr, "usage: berth gen-key PATH [ES256|RS256]\n"
                                        "\n"
                                        "Writes a new private key for signing tokens (auth.token.key) to PATH, mode\n"
                                        "0600; never overwrites an existing file. Default algorithm: ES256.\n");
        return help ? 0 : 2;
    }
    const char *alg = argc == 3 ? argv[2] : "ES256";
    int err = br_auth_gen_key(argv[1], alg);
    if (err != 0) {
        fprintf(stderr, "berth: gen-key %s: %s\n", argv[1], br_strerror(err));
        return 1;
    }
    printf("wrote %s key to %s\n", alg, argv[1]);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"root", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *cmd = "serve";
    if (argc >= 2 && argv[1][0] != '-') {
        cmd = argv[1];
        argv++;
        argc--;
    } else if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage_main(stdout);
        return 0;
    } else if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        cmd = "version";
    }

    if (strcmp(cmd, "hash-password") == 0)
        return cmd_hash_password(argc, argv);
    if (strcmp(cmd, "gen-key") == 0)
        return cmd_gen_key(argc, argv);
    if (strcmp(cmd, "gc") == 0)
        return br_cmd_gc(argc, argv);
    if (strcmp(cmd, "fsck") == 0)
        return br_cmd_fsck(argc, argv);
    if (strcmp(cmd, "du") == 0)
        return br_cmd_du(argc, argv);
    if (strcmp(cmd, "reload") == 0)
        return cmd_reload(argc, argv);
    if (strcmp(cmd, "version") == 0) {
        /* "patched": berth's own h2o build (server/h2o/), whose features tests look for */
        printf("berth %s (h2o %s %s, %s)\n", PACKAGE_VERSION, H2O_VERSION, BR_PATCHED_H2O ? "patched" : "system",
               OpenSSL_version(OPENSSL_VERSION));
        return 0;
    }
    int is_serve = strcmp(cmd, "serve") == 0, is_check = strcmp(cmd, "check-config") == 0;
    if (!is_serve && !is_check) {
        fprintf(stderr, "berth: unknown command '%s'\n", cmd);
        usage_main(stderr);
        return 2;
    }

    const char *config_path = NULL, *root = NULL;
    char *listen[BR_CONFIG_MAX_LISTEN];
    size_t num_listen = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, is_serve ? "c:l:r:h" : "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            if (num_listen == BR_CONFIG_MAX_LISTEN) {
                fprintf(stderr, "berth: at most %d --listen addresses\n", BR_CONFIG_MAX_LISTEN);
                return 2;
            }
            listen[num_listen++] = optarg;
            break;
        case 'r':
            root = optarg;
            break;
        case 'h':
            (is_serve ? usage_serve : usage_check)(stdout);
            return 0;
        default:
            (is_serve ? usage_serve : usage_check)(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "berth: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    br_config_t config;
    if (is_check) {
        if (config_path == NULL) {
            usage_check(stderr);
            return 2;
        }
        int bad = load_config_or_print(&config, config_path, NULL, 0, NULL) || check_contents(&config);
        char warning[512];
        if (!bad && open_access_warning(&config, warning, sizeof(warning)))
            fprintf(stderr, "%s: warning: %s\n", config_path, warning);
        if (!bad)
            printf("%s: ok\n", config_path);
        br_config_dispose(&config);
        return bad ? 1 : 0;
    }
    br_snapshot_t *snap = br_calloc(1, sizeof(*snap));
    if (load_config_or_print(&snap->config, config_path, listen, num_listen, root) != 0) {
        br_config_dispose(&snap->config);
        free(snap);
        return 1;
    }
    sources.path = config_path;
    sources.listen = listen;
    sources.num_listen = num_listen;
    sources.root = root;
    int ret = serve(snap);
    if (br_srv.ssl_ctx != NULL)
        SSL_CTX_free(br_srv.ssl_ctx);
    free(threads);
    br_snapshot_release(br_srv.snapshot);
    br_srv.snapshot = NULL;
    return ret;
}
