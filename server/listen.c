/*
 * Listeners and connection accounting.
 *
 * One listening socket per configured address, bound before the threads start;
 * each thread polls its own dup of it (so the kernel hands each connection to
 * one thread, and a second process cannot bind the address).
 *
 * berth accepts its own sockets, so it decides how many it holds: a global cap
 * and a cap per client address, checked at accept. Over a cap, the oldest idle
 * keep-alive connection is closed to make room; with none idle, the new socket
 * is closed at once, before h2o sees it (see "idle keep-alive connections"
 * below). Once a second each thread sweeps its connections and shuts down
 * those that are idle (no byte in or out for idle_timeout while no request is
 * in progress) or stuck sending HTTP/1 headers (slowloris: headers not
 * complete within BR_HEADER_TIMEOUT_MS).
 *
 * A connection is never freed behind h2o's back: the sweep and evictions only
 * call shutdown(2) on the fd; h2o then sees EOF or an error and closes the
 * connection itself, which calls on_close_conn() below.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include "server/server.h"
#include <h2o/http1.h> /* after h2o.h, which it needs */

#define BR_HEADER_TIMEOUT_MS 10000

struct st_client_t;

typedef struct st_br_conn_t {
    h2o_linklist_t link; /* in thread->conns (owner thread only) */
    br_thread_t *thread;
    h2o_socket_t *sock;
    int fd; /* the socket's, for reading across threads without touching h2o's socket */
    unsigned char addr[16];
    size_t last_read, last_written;
    uint64_t last_active_ms;
    uint64_t header_since_ms;
    h2o_linklist_t check_link; /* in thread->idle_checks after a response (owner thread) */
    /* Under clients_lock: */
    struct st_client_t *client;
    h2o_linklist_t idle_link;        /* in idle_conns while idle; in thread->evictions once evicted */
    h2o_linklist_t client_idle_link; /* in client->idle while idle */
    int counted;                     /* counts against the caps (not once evicted) */
    int evicted;
    /* for the metrics: how the connection is counted, why it closes (set
     * before the sweep shuts it down), requests finished on it */
    unsigned char tls, h2, metrics_listener, reason;
    unsigned requests;
    /* An HTTP/1 request reached the handler and has not ended (owner thread).
     * With berth's patched h2o a streamed body is read with h2o's
     * request-reading callback and leaves the input empty between pieces, so
     * without this the sweep took an upload in progress for a connection
     * waiting for its next request (and closed it at once on SIGTERM) or, with
     * a partial chunk line buffered, for one still sending headers. */
    unsigned char in_request;
} br_conn_t;

/* Per-client counts: a small chained hash under one mutex. Accept and close
 * are rare next to requests, and idle tracking takes the lock twice per
 * keep-alive request, so contention is not a concern. */
typedef struct st_client_t {
    struct st_client_t *next;
    unsigned char addr[16];
    unsigned count;     /* connections counted against the caps */
    unsigned refs;      /* br_conn_t pointing here, counted or evicted */
    h2o_linklist_t idle; /* this client's idle connections, oldest first */
} client_t;

#define CLIENT_BUCKETS 1024
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static client_t *clients[CLIENT_BUCKETS];
static unsigned total_conns;
/* Every idle keep-alive connection, oldest first (under clients_lock). */
static h2o_linklist_t idle_conns = {&idle_conns, &idle_conns};
/* h2o's HTTP/1 read callback (set while a connection waits for or reads a
 * request) tells an HTTP/1 connection from anything else. Captured once at
 * start-up from a throw-away connection, so TLS-only servers know it too. */
static h2o_socket_cb h1_read_cb;

unsigned br_conn_count(void)
{
    pthread_mutex_lock(&clients_lock);
    unsigned n = total_conns;
    pthread_mutex_unlock(&clients_lock);
    return n;
}

static size_t addr_bucket(const unsigned char *a)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 16777619u;
    return h % CLIENT_BUCKETS;
}

/* ---- idle keep-alive connections and the caps --------------------------------
 *
 * When a cap is reached, a new connection takes the place of the oldest idle
 * keep-alive connection (the client's own for the per-client cap, anyone's for
 * the global cap); only when none is idle is it refused. Idle means: an
 * HTTP/1 connection whose last response is sent, waiting for its next request
 * with nothing received (h2o 2.2.5 keeps a request's bytes in sock->input
 * until its response is sent, so an empty input with h2o's request-reading
 * callback installed is that state, once no request has started since the
 * response: br_conns_request_started). HTTP/2 connections are never
 * taken for idle: h2o keeps their stream state private.
 *
 * The owning thread decides idleness and is the only one to touch the
 * connection's h2o objects: after each response it checks the state (on the
 * next loop pass) and, when idle, puts the connection on the idle lists and
 * routes its next read through on_idle_read, which takes it off them again
 * before h2o sees a byte. The accepting thread, under clients_lock, moves an
 * idle connection to its owner's eviction list, takes it off the counts and
 * wakes the owner, which shuts it down (shutdown(2), as the sweep does). A
 * connection evicted that way is closed even if bytes arrive before its owner
 * gets to it: they reach h2o only through on_idle_read, which then closes it
 * unread, so no request is half-served. This is the race every keep-alive
 * server has with a client that sends just as the server closes, which
 * clients handle by retrying on a new connection. */

static void on_idle_read(h2o_socket_t *sock, const char *err);
static void on_close_conn(void *data);

static void conn_unidle_locked(br_conn_t *c)
{
    if (h2o_linklist_is_linked(&c->idle_link))
        h2o_linklist_unlink(&c->idle_link);
    if (h2o_linklist_is_linked(&c->client_idle_link))
        h2o_linklist_unlink(&c->client_idle_link);
}

/* Wakes t's loop from any thread (clients_lock held, so t's eventfd is open). */
static void kick_locked(br_thread_t *t)
{
    uint64_t one = 1;
    if (t->kick_fd != -1) {
        ssize_t r = write(t->kick_fd, &one, sizeof(one));
        (void)r; /* EAGAIN means a wake-up is already pending */
    }
}

/* Bytes waiting in the kernel for fd; reading it from another thread is
 * harmless even if the owner has just closed it (a wrong answer only skips
 * a candidate). */
static int has_unread(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) != 0 || n > 0;
}

/* Takes the oldest idle connection on list (linked by the member at offset)
 * off the counts and hands it to its thread to close. 1 when one was found. */
static int evict_oldest_locked(h2o_linklist_t *list, size_t offset)
{
    for (h2o_linklist_t *l = list->next; l != list; l = l->next) {
        br_conn_t *c = (br_conn_t *)((char *)l - offset);
        if (has_unread(c->fd))
            continue;
        conn_unidle_locked(c);
        c->evicted = 1;
        c->counted = 0;
        c->client->count--;
        total_conns--;
        h2o_linklist_insert(&c->thread->evictions, &c->idle_link);
        kick_locked(c->thread);
        return 1;
    }
    return 0;
}

static void log_refusal(const unsigned char *addr, const char *cap, unsigned limit)
{
    static uint64_t last_ms;
    static unsigned suppressed;
    uint64_t now = br_now_ms();
    pthread_mutex_lock(&clients_lock);
    int say = now - last_ms >= 1000;
    unsigned n = suppressed;
    if (say) {
        last_ms = now;
        suppressed = 0;
    } else {
        suppressed++;
    }
    pthread_mutex_unlock(&clients_lock);
    if (!say)
        return;
    char host[INET6_ADDRSTRLEN] = "?";
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr, v4mapped, 12) == 0)
        inet_ntop(AF_INET, addr + 12, host, sizeof(host));
    else
        inet_ntop(AF_INET6, addr, host, sizeof(host));
    br_warn("connection from %s refused: %s (%u) reached and no idle connection to close (%u more refused since the "
            "last such line)",
            host, cap, limit, n);
}

/* Counts a new connection from addr against the caps, making room by
 * evicting idle connections; the client record, or NULL when refused. */
static client_t *conn_admit(const unsigned char *addr)
{
    const br_config_t *cfg = br_cfg();
    const char *cap = NULL;
    unsigned limit = 0;
    pthread_mutex_lock(&clients_lock);
    client_t **slot = &clients[addr_bucket(addr)], *c;
    for (c = *slot; c != NULL; c = c->next)
        if (memcmp(c->addr, addr, 16) == 0)
            break;
    if (c == NULL) {
        c = br_calloc(1, sizeof(*c));
        memcpy(c->addr, addr, 16);
        h2o_linklist_init_anchor(&c->idle);
        c->next = *slot;
        *slot = c;
    }
    if (c->count >= cfg->limits.max_connections_per_client &&
        !evict_oldest_locked(&c->idle, offsetof(br_conn_t, client_idle_link))) {
        cap = "limits.max_connections_per_client";
        limit = cfg->limits.max_connections_per_client;
    } else if (total_conns >= cfg->limits.max_connections && !evict_oldest_locked(&idle_conns, offsetof(br_conn_t, idle_link))) {
        cap = "limits.max_connections";
        limit = cfg->limits.max_connections;
    } else {
        c->count++;
        c->refs++;
        total_conns++;
    }
    if (cap != NULL && c->refs == 0) {
        *slot = c->next; /* it was just made for this connection */
        free(c);
        c = NULL;
    }
    pthread_mutex_unlock(&clients_lock);
    if (cap != NULL) {
        log_refusal(addr, cap, limit);
        return NULL;
    }
    return c;
}

static void conn_release(br_conn_t *conn)
{
    pthread_mutex_lock(&clients_lock);
    client_t *c = conn->client;
    conn_unidle_locked(conn);
    if (conn->counted) {
        c->count--;
        total_conns--;
    }
    if (--c->refs == 0) {
        for (client_t **slot = &clients[addr_bucket(c->addr)]; *slot != NULL; slot = &(*slot)->next)
            if (*slot == c) {
                *slot = c->next;
                break;
            }
        free(c);
    }
    pthread_mutex_unlock(&clients_lock);
}

/* After a response, once the loop pass is over (owning thread): when the
 * connection now waits for its next request with nothing received, it is
 * idle until its next read. */
static void check_idle(br_conn_t *c)
{
    h2o_socket_t *sock = c->sock;
    h2o_socket_cb h1 = __atomic_load_n(&h1_read_cb, __ATOMIC_RELAXED);
    if (h1 == NULL || c->in_request || sock->_cb.read != h1 || (sock->input != NULL && sock->input->size != 0) ||
        has_unread(c->fd) || br_srv.shutdown_requested)
        return;
    sock->_cb.read = on_idle_read;
    pthread_mutex_lock(&clients_lock);
    if (!c->evicted) {
        h2o_linklist_insert(&idle_conns, &c->idle_link);
        h2o_linklist_insert(&c->client->idle, &c->client_idle_link);
    }
    pthread_mutex_unlock(&clients_lock);
}

/* The read callback of an idle connection: off the idle lists, then h2o's
 * own callback, or (evicted meanwhile) a close without reading. */
static void on_idle_read(h2o_socket_t *sock, const char *err)
{
    br_conn_t *c = sock->on_close.data;
    pthread_mutex_lock(&clients_lock);
    conn_unidle_locked(c);
    int evicted = c->evicted;
    pthread_mutex_unlock(&clients_lock);
    if (evicted)
        c->reason = BR_CLOSE_CAP; /* shed to admit a connection over the caps */
    h2o_socket_cb h1 = __atomic_load_n(&h1_read_cb, __ATOMIC_RELAXED);
    sock->_cb.read = h1;
    h1(sock, evicted ? "closed to admit a newer connection" : err);
}

/* Owner thread, on wake-up: shuts down the connections other threads evicted. */
static void run_evictions(br_thread_t *t)
{
    pthread_mutex_lock(&clients_lock);
    while (!h2o_linklist_is_empty(&t->evictions)) {
        br_conn_t *c = H2O_STRUCT_FROM_MEMBER(br_conn_t, idle_link, t->evictions.next);
        h2o_linklist_unlink(&c->idle_link);
        c->reason = BR_CLOSE_CAP;
        shutdown(c->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&clients_lock);
}

void br_conns_check_idle(br_thread_t *t)
{
    while (!h2o_linklist_is_empty(&t->idle_checks)) {
        br_conn_t *c = H2O_STRUCT_FROM_MEMBER(br_conn_t, check_link, t->idle_checks.next);
        h2o_linklist_unlink(&c->check_link);
        check_idle(c);
    }
}

/* The connection of an HTTP/1 request that berth accepted, else NULL. */
static br_conn_t *h1_conn_of(h2o_req_t *req)
{
    if (req->version >= 0x200)
        return NULL;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    return sock != NULL && sock->on_close.cb == on_close_conn ? sock->on_close.data : NULL;
}

/* Every request's end (a logger, so it runs for every response): an HTTP/1
 * connection may be idle once its response is out (h2o finishes sending it
 * later in the same loop pass); br_conns_check_idle looks after the pass. */
static void on_request_done(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    br_conn_t *c = h1_conn_of(req);
    if (c == NULL)
        return;
    c->in_request = 0;
    if (!h2o_linklist_is_linked(&c->check_link))
        h2o_linklist_insert(&c->thread->idle_checks, &c->check_link);
}

/* A request reaches the handler: when it came in the same loop pass as the
 * previous response's end (pipelined), the idle check queued for that
 * response must not look: with berth's patched h2o a streamed body may
 * already have been handed over whole, leaving the input empty and h2o
 * reading as between requests. */
void br_conns_request_started(h2o_req_t *req)
{
    br_conn_t *c = h1_conn_of(req);
    if (c == NULL)
        return;
    c->in_request = 1;
    if (h2o_linklist_is_linked(&c->check_link))
        h2o_linklist_unlink(&c->check_link);
}

void br_conns_register(h2o_pathconf_t *pathconf)
{
    h2o_logger_t *logger = h2o_create_logger(pathconf, sizeof(*logger));
    logger->log_access = on_request_done;
}

static void addr_key(const struct sockaddr *sa, unsigned char *key)
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else if (sa->sa_family == AF_INET) {
        key[10] = key[11] = 0xff; /* v4-mapped form, so one client is one key */
        memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    }
}

static void on_close_conn(void *data)
{
    br_conn_t *c = data;
    if (!c->metrics_listener) {
        br_metrics_conn_open(c->tls, c->h2, -1);
        /* Not closed by us and nothing answered: a failed TLS handshake, a
         * request h2o refused as malformed, or a client that gave up. */
        br_metrics_conn_closed(c->reason != BR_CLOSE_NORMAL ? c->reason : c->requests == 0 ? BR_CLOSE_ERROR : BR_CLOSE_NORMAL);
    }
    h2o_linklist_unlink(&c->link);
    if (h2o_linklist_is_linked(&c->check_link))
        h2o_linklist_unlink(&c->check_link);
    c->thread->num_conns--;
    conn_release(c);
    free(c);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    br_thread_t *t = br_thread;
    if (err != NULL)
        return;
    /* Drain the backlog a bounded number at a time so one busy listener cannot
     * starve the loop. */
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        unsigned char key[16] = {0};
        if (getpeername(h2o_socket_get_fd(sock), (struct sockaddr *)&ss, &len) == 0)
            addr_key((struct sockaddr *)&ss, key);
        /* The metrics listener stays open while the server drains. */
        int is_metrics = listener == t->metrics_listener;
        client_t *client = br_srv.shutdown_requested && !is_metrics ? NULL : conn_admit(key);
        if (client == NULL) {
            if (!br_srv.shutdown_requested)
                br_metrics_conn_closed(BR_CLOSE_CAP);
            h2o_socket_close(sock);
            continue;
        }
        br_conn_t *c = br_calloc(1, sizeof(*c));
        c->metrics_listener = (unsigned char)is_metrics;
        c->tls = !is_metrics && t->accept_ctx.ssl_ctx != NULL;
        if (!is_metrics)
            br_metrics_conn_open(c->tls, 0, 1);
        c->thread = t;
        c->sock = sock;
        c->fd = h2o_socket_get_fd(sock);
        c->client = client;
        c->counted = 1;
        memcpy(c->addr, key, 16);
        c->last_active_ms = br_now_ms();
        h2o_linklist_insert(&t->conns, &c->link);
        t->num_conns++;
        sock->on_close.cb = on_close_conn;
        sock->on_close.data = c;
        h2o_accept(is_metrics ? &t->metrics_accept_ctx : &t->accept_ctx, sock);
    }
}

/* One listening socket per configured address, bound once for the process and
 * shared by the threads (each polls its own dup). No SO_REUSEPORT: a second
 * berth on the same address must fail with EADDRINUSE instead of silently
 * splitting connections with this one. SO_REUSEADDR only lets a restart bind
 * over connections left in TIME_WAIT. */
static int listen_fds[BR_CONFIG_MAX_LISTEN];
static size_t num_listen_fds;
static int metrics_fd = -1;

static int open_listener(const br_listen_t *l)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", l->port);
    int gai = getaddrinfo(l->host[0] != '\0' ? l->host : NULL, port, &hints, &res);
    if (gai != 0) {
        br_error("listen %s:%u: %s", l->host, l->port, gai_strerror(gai));
        errno = EADDRNOTAVAIL;
        return -1;
    }
    /* With no host, prefer IPv4 any (as registry:2 and docker expect :5000 to
     * work over 127.0.0.1). */
    struct addrinfo *ai = res;
    for (struct addrinfo *p = res; l->host[0] == '\0' && p != NULL; p = p->ai_next)
        if (p->ai_family == AF_INET) {
            ai = p;
            break;
        }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), on = 1;
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, 1024) != 0) {
        int e = errno;
        br_error("listen %s%s%s:%u: %s", strchr(l->host, ':') != NULL ? "[" : "", l->host[0] ? l->host : "*",
                 strchr(l->host, ':') != NULL ? "]" : "", l->port, strerror(e));
        if (fd != -1)
            close(fd);
        freeaddrinfo(res);
        errno = e;
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

int br_listeners_bind(void)
{
    for (size_t i = 0; i < br_cfg()->num_listen; i++) {
        int fd = open_listener(&br_cfg()->listen[i]);
        if (fd == -1) {
            int err = errno;
            br_listeners_unbind();
            return err;
        }
        listen_fds[num_listen_fds++] = fd;
    }
    if (br_cfg()->metrics.listen.port != 0 && (metrics_fd = open_listener(&br_cfg()->metrics.listen)) == -1) {
        int err = errno;
        br_listeners_unbind();
        return err;
    }
    return 0;
}

void br_listeners_unbind(void)
{
    for (size_t i = 0; i < num_listen_fds; i++)
        close(listen_fds[i]);
    num_listen_fds = 0;
    if (metrics_fd != -1)
        close(metrics_fd);
    metrics_fd = -1;
}

int br_listeners_open(br_thread_t *t)
{
    for (size_t i = 0; i < num_listen_fds; i++) {
        int fd = fcntl(listen_fds[i], F_DUPFD_CLOEXEC, 0);
        if (fd == -1) {
            br_error("listener for thread %zu: %s", t->index, strerror(errno));
            return errno;
        }
        h2o_socket_t *sock = h2o_evloop_socket_create(t->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        sock->data = t;
        t->listeners[t->num_listeners++] = sock;
        h2o_socket_read_start(sock, on_accept);
    }
    if (metrics_fd != -1) {
        int fd = fcntl(metrics_fd, F_DUPFD_CLOEXEC, 0);
        if (fd == -1) {
            br_error("metrics listener for thread %zu: %s", t->index, strerror(errno));
            return errno;
        }
        t->metrics_listener = h2o_evloop_socket_create(t->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        t->metrics_listener->data = t;
        h2o_socket_read_start(t->metrics_listener, on_accept);
    }
    return 0;
}

void br_listeners_close(br_thread_t *t)
{
    for (size_t i = 0; i < t->num_listeners; i++) {
        h2o_socket_read_stop(t->listeners[i]);
        h2o_socket_close(t->listeners[i]);
    }
    t->num_listeners = 0;
}

void br_listeners_close_metrics(br_thread_t *t)
{
    if (t->metrics_listener == NULL)
        return;
    h2o_socket_read_stop(t->metrics_listener);
    h2o_socket_close(t->metrics_listener);
    t->metrics_listener = NULL;
}

static br_conn_t *conn_of(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return sock != NULL && sock->on_close.cb == on_close_conn ? sock->on_close.data : NULL;
}

void br_conn_request_done(h2o_req_t *req)
{
    br_conn_t *c = conn_of(req);
    if (c != NULL)
        c->requests++;
}

void br_conn_is_h2(h2o_req_t *req)
{
    br_conn_t *c = conn_of(req);
    /* A connection counts as HTTP/1 until a request shows it is HTTP/2 (h2c
     * with prior knowledge, or h2 chosen in the TLS handshake). */
    if (c != NULL && !c->h2 && !c->metrics_listener) {
        br_metrics_conn_open(c->tls, 0, -1);
        br_metrics_conn_open(c->tls, 1, 1);
        c->h2 = 1;
    }
}

/* 1 when buf holds the end of an HTTP/1 header block. */
static int has_header_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\n' && (p[i + 1] == '\n' || (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')))
            return 1;
    return 0;
}

/* Milliseconds since the kernel last received or sent data on fd, or
 * UINT64_MAX when unknown. h2o 2.2.5's sock->bytes_read / bytes_written hold
 * the size of the LAST read / write, not running totals, so a client that
 * trickles bytes at a steady rate (or an upload whose reads all fill the
 * buffer) looks idle through them and would be cut mid-request. */
static uint64_t tcp_quiet_ms(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || len < offsetof(struct tcp_info, tcpi_last_ack_recv))
        return UINT64_MAX;
    return ti.tcpi_last_data_recv < ti.tcpi_last_data_sent ? ti.tcpi_last_data_recv : ti.tcpi_last_data_sent;
}

/* A request body above the spill threshold arrives in a file-backed shared
 * mapping (h2o_buffer_t with _fd != -1). The bytes are safe in the file, so
 * the pages received so far are unmapped from the process (MADV_DONTNEED on a
 * shared file mapping drops only the mapping; a later read faults them back
 * from the page cache). This keeps RSS bounded while a multi-GiB body arrives;
 * h2o gives no hook during reception, so the sweep does it. The first page
 * (the buffer header) is left alone. */
static void release_spilled_input(h2o_socket_t *sock)
{
    h2o_buffer_t *b = sock->input;
    if (b == NULL || b->_fd == -1 || b->size == 0)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)b + page) & ~(page - 1);
    uintptr_t end = ((uintptr_t)b->bytes + b->size) & ~(page - 1);
    if (end > start)
        madvise((void *)start, end - start, MADV_DONTNEED);
}

static void on_sweep(h2o_timeout_entry_t *entry)
{
    br_thread_t *t = H2O_STRUCT_FROM_MEMBER(br_thread_t, sweep_entry, entry);
    uint64_t now = br_now_ms(), idle = br_cfg()->limits.idle_timeout_ms;
    h2o_socket_cb h1 = __atomic_load_n(&h1_read_cb, __ATOMIC_RELAXED);
    for (h2o_linklist_t *l = t->conns.next; l != &t->conns; l = l->next) {
        br_conn_t *c = H2O_STRUCT_FROM_MEMBER(br_conn_t, link, l);
        h2o_socket_t *sock = c->sock;
        uint64_t quiet = tcp_quiet_ms(h2o_socket_get_fd(sock));
        if (quiet != UINT64_MAX) {
            if (quiet < now && now - quiet > c->last_active_ms)
                c->last_active_ms = now - quiet;
        } else if (sock->bytes_read != c->last_read || sock->bytes_written != c->last_written) {
            c->last_read = sock->bytes_read;
            c->last_written = sock->bytes_written;
            c->last_active_ms = now;
        }
        /* An HTTP/1 connection between requests reads with h2o's callback; with
         * bytes buffered but no complete header block, it is still sending
         * headers. */
        int in_headers = h1 != NULL && !c->in_request && sock->_cb.read == h1 && sock->input != NULL && sock->input->size != 0 &&
                         !has_header_end(sock->input->bytes, sock->input->size);
        if (!in_headers)
            c->header_since_ms = 0;
        else if (c->header_since_ms == 0)
            c->header_since_ms = now;
        int waiting = h1 != NULL && !c->in_request && (sock->_cb.read == h1 || sock->_cb.read == on_idle_read) &&
                      (sock->input == NULL || sock->input->size == 0);
        /* On shutdown, HTTP/1 keep-alive connections waiting for a request are
         * closed now (h2o only stops keep-alive after a next request). */
        if (br_srv.shutdown_requested && waiting) {
            c->reason = BR_CLOSE_DRAIN;
            shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
            continue;
        }
        release_spilled_input(sock);
        int stale = now - c->last_active_ms >= idle && (sock->_cb.read != NULL || sock->input == NULL || sock->input->size == 0);
        int slow_headers = c->header_since_ms != 0 && now - c->header_since_ms >= BR_HEADER_TIMEOUT_MS;
        if (stale || slow_headers) {
            c->reason = slow_headers ? BR_CLOSE_SLOWLORIS : BR_CLOSE_IDLE;
            shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
        }
    }
    h2o_timeout_link(t->loop, &t->sweep_timeout, &t->sweep_entry);
}

void br_sweep_now(br_thread_t *t)
{
    if (h2o_timeout_is_linked(&t->sweep_entry))
        h2o_timeout_unlink(&t->sweep_entry);
    on_sweep(&t->sweep_entry);
}

/* Hands one end of a socket pair to h2o's HTTP/1 protocol, reads the read
 * callback it installs, and closes the other end: h2o sees end-of-stream on
 * the loop's first pass and frees its connection. */
static void capture_h1_read_cb(br_thread_t *t)
{
    int sv[2];
    if (__atomic_load_n(&h1_read_cb, __ATOMIC_RELAXED) != NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_create(t->loop, sv[0], 0);
    struct timeval now;
    gettimeofday(&now, NULL);
    h2o_http1_accept(&t->accept_ctx, sock, now);
    if (sock->_cb.read != NULL)
        __atomic_store_n(&h1_read_cb, sock->_cb.read, __ATOMIC_RELAXED);
    close(sv[1]);
}

void br_sweep_start(br_thread_t *t)
{
    capture_h1_read_cb(t);
    h2o_timeout_init(t->loop, &t->sweep_timeout, 1000);
    t->sweep_entry.cb = on_sweep;
    h2o_timeout_link(t->loop, &t->sweep_timeout, &t->sweep_entry);
}

/* ---- deferred work ---------------------------------------------------------- */

static void on_kick(h2o_socket_t *sock, const char *err)
{
    br_thread_t *t = sock->data;
    if (err != NULL) {
        br_error("event loop wake-up socket failed: %s", err);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    run_evictions(t);
    br_io_complete(t);
    /* Run only what was queued before this pass; steps queued now wait for the
     * next one, after the loop has looked at the network again. */
    h2o_linklist_t batch;
    h2o_linklist_init_anchor(&batch);
    h2o_linklist_insert_list(&batch, &t->deferred);
    while (!h2o_linklist_is_empty(&batch)) {
        br_deferred_t *d = H2O_STRUCT_FROM_MEMBER(br_deferred_t, link, batch.next);
        h2o_linklist_unlink(&d->link);
        d->cb(d);
    }
}

void br_defer_init(br_thread_t *t)
{
    h2o_linklist_init_anchor(&t->deferred);
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd == -1) {
        br_error("eventfd: %s", strerror(errno));
        abort();
    }
    h2o_linklist_init_anchor(&t->evictions);
    pthread_mutex_lock(&clients_lock);
    t->kick_fd = fd;
    pthread_mutex_unlock(&clients_lock);
    t->kick_sock = h2o_evloop_socket_create(t->loop, fd, 0);
    t->kick_sock->data = t;
    h2o_socket_read_start(t->kick_sock, on_kick);
}

void br_defer_dispose(br_thread_t *t)
{
    if (t->kick_sock != NULL) {
        /* no other thread may wake this one any more */
        pthread_mutex_lock(&clients_lock);
        t->kick_fd = -1;
        pthread_mutex_unlock(&clients_lock);
        h2o_socket_read_stop(t->kick_sock);
        h2o_socket_close(t->kick_sock);
        t->kick_sock = NULL;
    }
}

void br_defer(br_deferred_t *d)
{
    br_thread_t *t = br_thread;
    if (h2o_linklist_is_empty(&t->deferred)) {
        uint64_t one = 1;
        ssize_t r = write(h2o_socket_get_fd(t->kick_sock), &one, sizeof(one));
        (void)r; /* EAGAIN means a wake-up is already pending */
    }
    h2o_linklist_insert(&t->deferred, &d->link);
}

void br_thread_wake(br_thread_t *t)
{
    pthread_mutex_lock(&clients_lock);
    kick_locked(t);
    pthread_mutex_unlock(&clients_lock);
}

void br_defer_cancel(br_deferred_t *d)
{
    if (h2o_linklist_is_linked(&d->link))
        h2o_linklist_unlink(&d->link);
}
