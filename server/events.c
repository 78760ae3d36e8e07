/*
 * Notifications: push, pull, delete and mount events sent to webhook
 * endpoints (notifications.endpoints), in distribution's format (an envelope
 * {"events":[...]}, so receivers written for registry:2 keep working) or as
 * CloudEvents 1.0 (structured mode, one event per request).
 *
 * Two halves. A handler calls br_event_emit, which formats the event as
 * distribution's JSON object and appends it to a small in-memory list under a
 * mutex: no request waits for the store, the network or an endpoint. The
 * deliverer thread moves that list into the store's event queue (one write
 * transaction per batch, storage/events.c), then sends each endpoint what
 * lies after its position and advances the position once the endpoint answers
 * 2xx. So an event survives a restart or a kill -9 from the moment its batch
 * is committed (milliseconds after the response); an endpoint that is down
 * gets everything queued when it is back, with back-off meanwhile; a full
 * queue drops its oldest events and counts them. The deliverer is plain C,
 * sockets and OpenSSL (https:// endpoints, verified against the system's
 * trust store): no h2o object crosses into it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "berth_config.h"
#include "server/server.h"

#define STAGE_MAX 4096 /* events waiting for the deliverer; beyond, the oldest go */
#define BATCH_MAX 64   /* events per envelope */

static struct {
    pthread_t tid;
    int running;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    char **staged; /* ring of formatted events */
    size_t head, count;
    uint64_t dropped_staged;
    char instance[37]; /* source.instanceID */
    unsigned char id_base[16]; /* event ids: this, plus a counter (unique without a syscall per event) */
    uint64_t id_seq;
    char hostname[200]; /* source.addr's host */
} ev = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* ---- the request side ------------------------------------------------------- */

static void random_bytes(unsigned char r[16])
{
    if (getrandom(r, 16, 0) != 16) {
        uint64_t t = br_now_ms() ^ (uint64_t)getpid() << 32;
        memcpy(r, &t, 8);
        memcpy(r + 8, &t, 8);
    }
}

/* r as a version-4 UUID string. */
static void format_uuid(char out[37], const unsigned char in[16])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[16];
    memcpy(r, in, 16);
    r[6] = (r[6] & 0x0f) | 0x40; /* version 4 */
    r[8] = (r[8] & 0x3f) | 0x80;
    size_t n = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        out[n++] = hex[r[i] >> 4];
        out[n++] = hex[r[i] & 15];
    }
    out[n] = '\0';
}

static const char *action_name(unsigned a)
{
    return a == BR_EVENT_PUSH ? "push" : a == BR_EVENT_PULL ? "pull" : a == BR_EVENT_DELETE ? "delete" : "mount";
}

/* "host:port" of a socket address, or "-". */
static void sockaddr_text(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (len == 0 || getnameinfo(sa, len, host, sizeof(host), port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, size, "-");
        return;
    }
    snprintf(buf, size, strchr(host, ':') != NULL ? "[%s]:%s" : "%s:%s", host, port);
}

void br_event_emit(h2o_req_t *req, const br_event_t *e)
{
    if (br_cfg()->notifications.num_endpoints == 0 || !ev.running)
        return;
    char id[37], ts[40], dig[BR_DIGEST_MAX + 1] = "", peer[NI_MAXHOST + 16], self[NI_MAXHOST + 16], host[256];
    unsigned char idb[16];
    uint64_t n = __atomic_add_fetch(&ev.id_seq, 1, __ATOMIC_RELAXED);
    memcpy(idb, ev.id_base, 16);
    for (int i = 15; i >= 9 && n != 0; i--, n >>= 8) /* the low bytes count; byte 8 keeps the variant */
        idb[i] ^= (unsigned char)n;
    format_uuid(id, idb);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t tn = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tn, sizeof(ts) - tn, ".%03ldZ", now.tv_nsec / 1000000);
    if (e->digest != NULL)
        br_digest_format(e->digest, dig);
    struct sockaddr_storage ss;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    sockaddr_text((struct sockaddr *)&ss, sl, peer, sizeof(peer));
    sl = req->conn->callbacks->get_sockname(req->conn, (struct sockaddr *)&ss);
    char port[NI_MAXSERV] = "";
    if (sl != 0)
        getnameinfo((struct sockaddr *)&ss, sl, NULL, 0, port, sizeof(port), NI_NUMERICSERV);
    snprintf(self, sizeof(self), "%s:%s", ev.hostname, port);
    snprintf(host, sizeof(host), "%.*s", (int)(req->authority.len < 200 ? req->authority.len : 200), req->authority.base);
    const char *scheme = req->scheme == &H2O_URL_SCHEME_HTTPS ? "https" : "http";

    br_buf_t b = {NULL, 0, 0};
    br_buf_printf(&b, "{\"id\":\"%s\",\"timestamp\":\"%s\",\"action\":\"%s\",\"target\":{", id, ts, action_name(e->action));
    /* A delete names what went (digest or tag), as distribution's does. */
    int content = e->digest != NULL && e->action != BR_EVENT_DELETE;
    if (content) {
        br_buf_append(&b, "\"mediaType\":", 12);
        br_buf_json_str(&b, br_cstr(e->media_type != NULL ? e->media_type : "application/octet-stream"));
        br_buf_printf(&b, ",\"size\":%" PRIu64 ",", e->size);
    }
    if (e->digest != NULL)
        br_buf_printf(&b, "\"digest\":\"%s\",", dig);
    if (content)
        br_buf_printf(&b, "\"length\":%" PRIu64 ",", e->size);
    br_buf_append(&b, "\"repository\":", 13);
    br_buf_json_str(&b, e->repository);
    if (content) {
        br_buf_append(&b, ",\"url\":", 7);
        char url[1024];
        snprintf(url, sizeof(url), "%s://%s/v2/%.*s/%s/%s", scheme, host, (int)e->repository.len, e->repository.base,
                 e->manifest ? "manifests" : "blobs", dig);
        br_buf_json_str(&b, br_cstr(url));
    }
    if (e->tag.len != 0) {
        br_buf_append(&b, ",\"tag\":", 7);
        br_buf_json_str(&b, e->tag);
    }
    if (e->from.len != 0) {
        br_buf_append(&b, ",\"fromRepository\":", 18);
        br_buf_json_str(&b, e->from);
    }
    br_buf_append(&b, "},\"request\":{\"id\":", 18);
    br_buf_json_str(&b, br_request_id_of(req));
    br_buf_append(&b, ",\"addr\":", 8);
    br_buf_json_str(&b, br_cstr(peer));
    br_buf_append(&b, ",\"host\":", 8);
    br_buf_json_str(&b, br_cstr(host));
    br_buf_append(&b, ",\"method\":", 10);
    br_buf_json_str(&b, br_str(req->method.base, req->method.len));
    br_buf_append(&b, ",\"useragent\":", 13);
    br_buf_json_str(&b, br_req_header(req, H2O_TOKEN_USER_AGENT));
    br_buf_append(&b, "},\"actor\":{", 11);
    br_str_t who = br_request_subject(req);
    if (who.len != 0) {
        br_buf_append(&b, "\"name\":", 7);
        br_buf_json_str(&b, who);
    }
    br_buf_append(&b, "},\"source\":{\"addr\":", 19);
    br_buf_json_str(&b, br_cstr(self));
    br_buf_printf(&b, ",\"instanceID\":\"%s\"}}", ev.instance);

    pthread_mutex_lock(&ev.lock);
    if (ev.count == STAGE_MAX) { /* the deliverer is far behind (a stalled disk): drop the oldest */
        free(ev.staged[ev.head]);
        ev.head = (ev.head + 1) % STAGE_MAX;
        ev.count--;
        ev.dropped_staged++;
    }
    ev.staged[(ev.head + ev.count) % STAGE_MAX] = b.base;
    /* The deliverer takes everything staged when it wakes and looks again
     * before it sleeps, so only the first event needs to wake it. */
    if (ev.count++ == 0)
        pthread_cond_signal(&ev.wake);
    pthread_mutex_unlock(&ev.lock);
}

/* ---- the deliverer: a small HTTP/1.1 client (http:// and https://) --------------- */

/* Waits until fd is ready for events or the deadline passes. 0, or ETIMEDOUT / errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = br_now_ms();
        if (now >= deadline)
            return ETIMEDOUT;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r > 0)
            return 0;
        if (r == 0)
            return ETIMEDOUT;
        if (errno != EINTR)
            return errno;
    }
}

/* One connection to an endpoint: plain, or TLS over the same socket. */
typedef struct st_wconn_t {
    int fd;
    SSL *ssl;
    uint64_t deadline;
} wconn_t;

/* The deliverer's client context: the system's trust store (OpenSSL's
 * default paths, which SSL_CERT_FILE / SSL_CERT_DIR override), TLS 1.2+,
 * the peer verified. Made once, on the deliverer thread. */
static SSL_CTX *tls_client; /* freed when the deliverer ends */

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = tls_client;
    if (ctx == NULL) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_default_verify_paths(ctx);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        tls_client = ctx;
    }
    return ctx;
}

/* Runs one SSL_* step (ret its return) to completion or the deadline: 1 done,
 * 0 retry it, -1 failed. */
static int tls_step(wconn_t *c, int ret)
{
    if (ret > 0)
        return 1;
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return wait_fd(c->fd, POLLIN, c->deadline) == 0 ? 0 : -1;
    case SSL_ERROR_WANT_WRITE:
        return wait_fd(c->fd, POLLOUT, c->deadline) == 0 ? 0 : -1;
    default:
        return -1;
    }
}

/* Writes all of buf; 0 or -1. */
static int wconn_write(wconn_t *c, const char *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        if (c->ssl != NULL) {
            int n = SSL_write(c->ssl, buf + off, (int)(len - off > INT32_MAX ? INT32_MAX : len - off)), r;
            if ((r = tls_step(c, n)) < 0)
                return -1;
            if (r == 1)
                off += (size_t)n;
            continue;
        }
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        else if (wait_fd(c->fd, POLLOUT, c->deadline) != 0)
            return -1;
    }
    return 0;
}

/* Reads some bytes: > 0, 0 at the end, -1 on an error or the deadline. */
static ssize_t wconn_read(wconn_t *c, char *buf, size_t size)
{
    for (;;) {
        if (c->ssl != NULL) {
            int n = SSL_read(c->ssl, buf, (int)size), r;
            if (n <= 0 && SSL_get_error(c->ssl, n) == SSL_ERROR_ZERO_RETURN)
                return 0;
            if ((r = tls_step(c, n)) < 0)
                return -1;
            if (r == 1)
                return n;
            continue;
        }
        ssize_t n = recv(c->fd, buf, size, 0);
        if (n >= 0)
            return n;
        if ((errno != EAGAIN && errno != EINTR) || wait_fd(c->fd, POLLIN, c->deadline) != 0)
            return -1;
    }
}

/* Why the last TLS call failed, emptying OpenSSL's queue (this thread's). */
static void tls_why(char *why, size_t size, const char *what)
{
    unsigned long e = ERR_get_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(why, size, "%s: %s", what, reason != NULL ? reason : "timed out or connection closed");
    ERR_clear_error();
}

/* POSTs body to the endpoint's URL (http:// or https://) with Connection:
 * close; *status is the answer's status code. 0, or -1 with why set. */
static int http_post(const br_config_endpoint_t *e, const char *ctype, const char *body, size_t len, int *status, char *why,
                     size_t whysize)
{
    int tls = strncmp(e->url, "https://", 8) == 0;
    char hostport[512], host[512], port[16], path[2048];
    const char *u = e->url + (tls ? 8 : 7), *slash = strchr(u, '/');
    size_t hl = slash != NULL ? (size_t)(slash - u) : strlen(u);
    snprintf(port, sizeof(port), "%s", tls ? "443" : "80");
    if (hl == 0 || hl >= sizeof(hostport)) {
        snprintf(why, whysize, "bad URL");
        return -1;
    }
    memcpy(hostport, u, hl);
    hostport[hl] = '\0';
    char authority[512];
    memcpy(authority, hostport, hl + 1); /* the Host header: as the URL writes it */
    snprintf(path, sizeof(path), "%s", slash != NULL ? slash : "/");
    char *colon = hostport[0] == '[' ? strstr(hostport, "]:") : strrchr(hostport, ':');
    if (colon != NULL && hostport[0] == '[')
        colon++;
    if (colon != NULL) {
        snprintf(port, sizeof(port), "%s", colon + 1);
        *colon = '\0';
    }
    snprintf(host, sizeof(host), "%s", hostport[0] == '[' ? hostport + 1 : hostport);
    if (host[0] != '\0' && host[strlen(host) - 1] == ']')
        host[strlen(host) - 1] = '\0';

    wconn_t c = {.fd = -1, .deadline = br_now_ms() + e->timeout_ms};
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0) {
        snprintf(why, whysize, "cannot resolve %s", host);
        return -1;
    }
    int err = ECONNREFUSED, ret = -1;
    for (struct addrinfo *a = res; a != NULL && c.fd < 0; a = a->ai_next) {
        c.fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c.fd < 0)
            continue;
        if (connect(c.fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            err = errno;
            close(c.fd);
            c.fd = -1;
            continue;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if ((err = wait_fd(c.fd, POLLOUT, c.deadline)) != 0 || getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
            (err = soerr) != 0) {
            close(c.fd);
            c.fd = -1;
        }
    }
    freeaddrinfo(res);
    if (c.fd < 0) {
        snprintf(why, whysize, "%s", strerror(err));
        return -1;
    }
    if (tls) {
        c.ssl = SSL_new(client_ctx());
        SSL_set_fd(c.ssl, c.fd);
        struct in6_addr ip;
        if (inet_pton(AF_INET, host, &ip) == 1 || inet_pton(AF_INET6, host, &ip) == 1) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c.ssl), host);
        } else {
            SSL_set_tlsext_host_name(c.ssl, host);
            SSL_set1_host(c.ssl, host);
        }
        int r;
        while ((r = tls_step(&c, SSL_connect(c.ssl))) == 0)
            ;
        if (r < 0) {
            tls_why(why, whysize, "TLS handshake");
            goto Exit;
        }
    }

    br_buf_t req = {NULL, 0, 0};
    br_buf_printf(&req,
                  "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth/%s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n",
                  path, authority, PACKAGE_VERSION, ctype, len);
    for (size_t i = 0; i < e->num_headers; i++)
        br_buf_printf(&req, "%s\r\n", e->headers[i]);
    br_buf_append(&req, "\r\n", 2);
    br_buf_append(&req, body, len);
    int werr = wconn_write(&c, req.base, req.len);
    free(req.base);
    if (werr != 0) {
        if (c.ssl != NULL)
            tls_why(why, whysize, "TLS write");
        else
            snprintf(why, whysize, "send: %s", errno != 0 ? strerror(errno) : "timed out");
        goto Exit;
    }
    char resp[256];
    size_t got = 0;
    while (got < sizeof(resp) - 1 && memchr(resp, '\n', got) == NULL) {
        ssize_t n = wconn_read(&c, resp + got, sizeof(resp) - 1 - got);
        if (n <= 0) {
            snprintf(why, whysize, "%s", n == 0 ? "connection closed before an answer" : "no answer (timed out or reset)");
            goto Exit;
        }
        got += (size_t)n;
    }
    resp[got] = '\0';
    if (sscanf(resp, "HTTP/1.%*1d %3d", status) != 1) {
        snprintf(why, whysize, "not an HTTP answer");
        goto Exit;
    }
    ret = 0;
Exit:
    if (c.ssl != NULL) {
        SSL_free(c.ssl);
        ERR_clear_error();
    }
    close(c.fd);
    return ret;
}

/* ---- the deliverer: queue and endpoints --------------------------------------- */

typedef struct st_endpoint_state_t {
    char name[80];
    unsigned failures;
    uint64_t next_try_ms;
} endpoint_state_t;

typedef struct st_batch_t {
    const br_config_endpoint_t *e;
    uint64_t seq[BATCH_MAX];
    char *json[BATCH_MAX];
    size_t n;
    uint64_t last; /* last sequence read, delivered or ignored */
} batch_t;

static int ignored(const br_config_endpoint_t *e, json_t *event)
{
    const char *action = json_string_value(json_object_get(event, "action"));
    const char *mt = json_string_value(json_object_get(json_object_get(event, "target"), "mediaType"));
    static const struct {
        const char *name;
        unsigned bit;
    } acts[] = {{"push", BR_EVENT_PUSH}, {"pull", BR_EVENT_PULL}, {"delete", BR_EVENT_DELETE}, {"mount", BR_EVENT_MOUNT}};
    for (size_t i = 0; i < 4 && action != NULL; i++)
        if (strcmp(action, acts[i].name) == 0 && (e->ignored_actions & acts[i].bit) != 0)
            return 1;
    for (size_t i = 0; i < e->num_ignored_media_types && mt != NULL; i++)
        if (strcmp(mt, e->ignored_media_types[i]) == 0)
            return 1;
    return 0;
}

static int on_event(void *ctx, uint64_t seq, br_str_t text)
{
    batch_t *b = ctx;
    b->last = seq;
    if (b->e->ignored_actions != 0 || b->e->num_ignored_media_types != 0) {
        json_t *j = json_loadb(text.base, text.len, JSON_REJECT_DUPLICATES, NULL);
        int skip = j == NULL || ignored(b->e, j);
        json_decref(j);
        if (skip)
            return 0;
    }
    b->seq[b->n] = seq;
    b->json[b->n++] = br_strndup(text.base, text.len);
    return 0;
}

/* The CloudEvents 1.0 structured form of one stored event. */
static char *to_cloudevent(const char *stored)
{
    json_t *d = json_loads(stored, 0, NULL);
    if (d == NULL)
        return NULL;
    json_t *target = json_object_get(d, "target");
    const char *action = json_string_value(json_object_get(d, "action")), *repo = json_string_value(json_object_get(target, "repository"));
    const char *tag = json_string_value(json_object_get(target, "tag")), *dig = json_string_value(json_object_get(target, "digest"));
    char type[64], subject[600], source[64];
    snprintf(type, sizeof(type), "dev.berth.registry.%s", action != NULL ? action : "unknown");
    snprintf(subject, sizeof(subject), "%s%s%s", repo != NULL ? repo : "", tag != NULL ? ":" : dig != NULL ? "@" : "",
             tag != NULL ? tag : dig != NULL ? dig : "");
    snprintf(source, sizeof(source), "/berth/%s", ev.instance);
    json_t *ce = json_pack("{s:s, s:O, s:s, s:s, s:s, s:O, s:s, s:O}", "specversion", "1.0", "id", json_object_get(d, "id"),
                           "source", source, "type", type, "subject", subject, "time", json_object_get(d, "timestamp"),
                           "datacontenttype", "application/json", "data", d);
    char *out = ce != NULL ? json_dumps(ce, JSON_COMPACT) : NULL;
    json_decref(ce);
    json_decref(d);
    return out;
}

/* Sends b (all or, for CloudEvents, one by one); returns how many of b's
 * events were delivered, with *why set on a failure. */
static size_t send_batch(const batch_t *b, char *why, size_t whysize)
{
    const br_config_endpoint_t *e = b->e;
    int status = 0, err;
    if (!e->cloudevents) {
        br_buf_t env = {NULL, 0, 0};
        br_buf_append(&env, "{\"events\":[", 11);
        for (size_t i = 0; i < b->n; i++) {
            if (i != 0)
                br_buf_append(&env, ",", 1);
            br_buf_append(&env, b->json[i], strlen(b->json[i]));
        }
        br_buf_append(&env, "]}", 2);
        err = http_post(e, "application/vnd.docker.distribution.events.v1+json", env.base, env.len, &status, why, whysize);
        free(env.base);
        if (err == 0 && status >= 200 && status < 300)
            return b->n;
        if (err == 0)
            snprintf(why, whysize, "HTTP status %d", status);
        return 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        char *ce = to_cloudevent(b->json[i]);
        if (ce == NULL)
            continue; /* cannot happen for what br_event_emit wrote; skip rather than stall */
        err = http_post(e, "application/cloudevents+json", ce, strlen(ce), &status, why, whysize);
        free(ce);
        if (err != 0 || status < 200 || status >= 300) {
            if (err == 0)
                snprintf(why, whysize, "HTTP status %d", status);
            return i;
        }
    }
    return b->n;
}

/* The lowest position of the enabled endpoints: everything at or below it
 * has been taken by all of them. */
static uint64_t lowest_position(const br_config_t *c)
{
    uint64_t low = UINT64_MAX, pos;
    for (size_t i = 0; i < c->notifications.num_endpoints; i++) {
        if (c->notifications.endpoints[i].disabled)
            continue;
        if (br_store_events_pos(br_srv.store, c->notifications.endpoints[i].name, &pos) != 0)
            return 0;
        if (pos < low)
            low = pos;
    }
    return low == UINT64_MAX ? 0 : low;
}

/* One delivery attempt to endpoint e; returns 1 when it took a full batch
 * (more may be waiting). */
static int deliver(const br_config_t *c, const br_config_endpoint_t *e, endpoint_state_t *st)
{
    uint64_t pos;
    if (br_store_events_pos(br_srv.store, e->name, &pos) != 0)
        return 0;
    batch_t b = {.e = e, .last = pos};
    if (br_store_events_read(br_srv.store, pos, BATCH_MAX, on_event, &b) != 0 || b.last == pos)
        return 0;
    char why[256] = "";
    size_t sent = b.n != 0 ? send_batch(&b, why, sizeof(why)) : 0;
    int more = 0;
    if (sent == b.n) {
        if (st->failures != 0)
            br_info("notifications: endpoint %s: delivered again after %u failures", e->name, st->failures);
        st->failures = 0;
        st->next_try_ms = 0;
        /* the position first, then the trim reads every position */
        br_store_events_ack(br_srv.store, e->name, b.last, 0);
        br_store_events_ack(br_srv.store, NULL, 0, lowest_position(c));
        more = 1;
    } else {
        if (sent != 0)
            br_store_events_ack(br_srv.store, e->name, b.seq[sent - 1], 0);
        st->failures++;
        /* threshold failures in a row at the configured back-off, then it
         * doubles (up to 64 times the back-off) */
        unsigned shift = st->failures > e->threshold ? st->failures - e->threshold : 0;
        st->next_try_ms = br_now_ms() + (e->backoff_ms << (shift > 6 ? 6 : shift));
        if (st->failures == 1 || st->failures == e->threshold)
            br_warn("notifications: endpoint %s: delivery failed (%s); %u failures in a row, retrying", e->name, why,
                    st->failures);
    }
    for (size_t i = 0; i < b.n; i++)
        free(b.json[i]);
    return more;
}

static endpoint_state_t *state_of(endpoint_state_t **states, size_t *num, const char *name)
{
    for (size_t i = 0; i < *num; i++)
        if (strcmp((*states)[i].name, name) == 0)
            return &(*states)[i];
    *states = br_realloc(*states, (*num + 1) * sizeof(**states));
    endpoint_state_t *st = &(*states)[(*num)++];
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", name);
    return st;
}

static void *deliverer_main(void *arg)
{
    (void)arg;
    endpoint_state_t *states = NULL;
    size_t num_states = 0;
    char **batch = br_calloc(STAGE_MAX, sizeof(*batch));
    int more = 1; /* at start: whatever the queue kept from before */
    pthread_mutex_lock(&ev.lock);
    for (;;) {
        if (ev.count == 0 && !more && !ev.stop) {
            /* sleep until an event, the next retry, or a second (a reload) */
            uint64_t wait_ms = 1000, now = br_now_ms();
            for (size_t i = 0; i < num_states; i++)
                if (states[i].next_try_ms > now && states[i].next_try_ms - now < wait_ms)
                    wait_ms = states[i].next_try_ms - now;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)(wait_ms / 1000);
            until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&ev.wake, &ev.lock, &until);
        }
        int stopping = ev.stop; /* what is staged is still written to the queue */
        size_t n = 0;
        while (ev.count != 0) {
            batch[n++] = ev.staged[ev.head];
            ev.head = (ev.head + 1) % STAGE_MAX;
            ev.count--;
        }
        uint64_t lost = ev.dropped_staged;
        ev.dropped_staged = 0;
        pthread_mutex_unlock(&ev.lock);

        br_snapshot_t *snap = br_snapshot_acquire();
        const br_config_t *c = &snap->config;
        if (lost != 0)
            br_warn("notifications: %" PRIu64 " events dropped before they reached the queue (the store is behind)", lost);
        if (n != 0) {
            br_str_t *v = br_malloc(n * sizeof(*v));
            for (size_t i = 0; i < n; i++)
                v[i] = br_cstr(batch[i]);
            uint64_t dropped = 0;
            int err = br_store_events_append(br_srv.store, v, n, c->notifications.queue_size, &dropped);
            if (err != 0)
                br_error("notifications: cannot queue %zu events: %s", n, br_strerror(err));
            else if (dropped != 0) {
                uint64_t queued = 0, total = 0;
                br_store_events_stats(br_srv.store, &queued, &total);
                br_warn("notifications: queue full (notifications.queue_size %u): dropped the %" PRIu64
                        " oldest events (%" PRIu64 " in all)",
                        c->notifications.queue_size, dropped, total);
            }
            free(v);
            for (size_t i = 0; i < n; i++)
                free(batch[i]);
        }
        more = 0;
        uint64_t now = br_now_ms();
        for (size_t i = 0; i < c->notifications.num_endpoints && !stopping; i++) {
            const br_config_endpoint_t *e = &c->notifications.endpoints[i];
            endpoint_state_t *st = state_of(&states, &num_states, e->name);
            if (!e->disabled && st->next_try_ms <= now)
                more |= deliver(c, e, st);
        }
        br_snapshot_release(snap);
        pthread_mutex_lock(&ev.lock);
        if (stopping)
            break;
    }
    pthread_mutex_unlock(&ev.lock);
    free(states);
    free(batch);
    SSL_CTX_free(tls_client);
    tls_client = NULL;
    return NULL;
}

void br_events_start(void)
{
    unsigned char r[16];
    random_bytes(r);
    format_uuid(ev.instance, r);
    random_bytes(ev.id_base);
    if (gethostname(ev.hostname, sizeof(ev.hostname) - 1) != 0 || ev.hostname[0] == '\0')
        snprintf(ev.hostname, sizeof(ev.hostname), "localhost");
    ev.staged = br_calloc(STAGE_MAX, sizeof(*ev.staged));
    ev.stop = 0;
    if (pthread_create(&ev.tid, NULL, deliverer_main, NULL) != 0) {
        br_error("notifications: cannot start the delivery thread: %s", strerror(errno));
        return;
    }
    ev.running = 1;
}

void br_events_stop(void)
{
    if (ev.running) {
        pthread_mutex_lock(&ev.lock);
        ev.stop = 1;
        pthread_cond_signal(&ev.wake);
        pthread_mutex_unlock(&ev.lock);
        pthread_join(ev.tid, NULL);
        ev.running = 0;
    }
    /* staged after the deliverer's last pass (requests end before it stops) */
    for (; ev.count != 0; ev.count--, ev.head = (ev.head + 1) % STAGE_MAX)
        free(ev.staged[ev.head]);
    free(ev.staged);
    ev.staged = NULL;
}
