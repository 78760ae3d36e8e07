/*
 * The access log and request ids.
 *
 * One line per request, written by an h2o logger when h2o disposes the
 * request, so a streamed response is logged once it has been sent whole. The
 * router gives every request it sees an id (br_request_id) and tells the log
 * who was authenticated (br_access_subject); both travel in the request's h2o
 * environment (h2o_req_getenv), which lives in req->pool like the request.
 *
 * Duration: to a fresh clock_gettime when the line is written, from the
 * start of the request. h2o's timestamps come from a per-context cache that
 * is refreshed only when the loop's millisecond clock has moved, which is why
 * a small request used to show 0.000ms (its end was the same cached value as
 * its start). Its request_begin_at (the cached clock when the first bytes of
 * the request were read; for HTTP/2, its HEADERS frame) still covers what
 * happened before the router ran, the body's arrival included, but may be up
 * to a millisecond early. So: when the request was read and routed in one
 * loop iteration (request_begin_at == processed_at, the same cached value),
 * the start is the precise clock the router read (br_request_id); when it
 * took longer, request_begin_at.
 *
 * Nothing from the request's headers is written except a validated
 * X-Request-Id: they may carry credentials.
 */
#include "berth_config.h"
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "server/server.h"

#define ENV_ID "BERTH_REQUEST_ID"
#define ENV_SUBJECT "BERTH_SUBJECT"
#define ENV_START "BERTH_START" /* a br_req_note_t in req->pool */

/* ---- request ids ---------------------------------------------------------- */

/* A generated id: 16 hex digits fixed per process (random, so ids of two
 * runs do not collide in one log), then the thread and a per-thread counter. */
static char id_prefix[17];
static pthread_once_t id_once = PTHREAD_ONCE_INIT;
static __thread uint64_t id_seq;

static void init_id_prefix(void)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[8];
    uint64_t fallback = br_now_ms() ^ ((uint64_t)getpid() << 40);
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        memcpy(r, &fallback, sizeof(r)); /* unique enough for a log; ids are no secret */
    for (size_t i = 0; i < sizeof(r); i++) {
        id_prefix[2 * i] = hex[r[i] >> 4];
        id_prefix[2 * i + 1] = hex[r[i] & 15];
    }
}

int br_request_id_valid(br_str_t id)
{
    if (id.len == 0 || id.len > BR_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < id.len; i++) {
        char c = id.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == ':' || c == '+' || c == '/' || c == '='))
            return 0;
    }
    return 1;
}

br_req_note_t *br_request_id(h2o_req_t *req)
{
    br_str_t theirs = br_req_header_str(req, "x-request-id");
    h2o_iovec_t id;
    if (br_request_id_valid(theirs)) {
        id = h2o_strdup(&req->pool, theirs.base, theirs.len);
    } else {
        pthread_once(&id_once, init_id_prefix);
        uint64_t thread = br_thread != NULL ? (uint64_t)br_thread->index : 0;
        id = br_pool_printf(req, "%s%04" PRIx64 "%012" PRIx64, id_prefix, thread & 0xffff, (uint64_t)(++id_seq & 0xffffffffffffu));
    }
    *h2o_req_getenv(req, H2O_STRLIT(ENV_ID), 1) = id;
    br_add_header(req, "X-Request-Id", id.base, id.len);
    br_req_note_t *note = h2o_mem_alloc_pool(&req->pool, sizeof(*note));
    clock_gettime(CLOCK_REALTIME, &note->start);
    note->route = BR_MROUTE_OTHER;
    *h2o_req_getenv(req, H2O_STRLIT(ENV_START), 1) = h2o_iovec_init(note, sizeof(*note));
    return note;
}

br_req_note_t *br_req_note(h2o_req_t *req)
{
    h2o_iovec_t *v = h2o_req_getenv(req, H2O_STRLIT(ENV_START), 0);
    return v != NULL ? (br_req_note_t *)v->base : NULL;
}

double br_request_seconds(h2o_req_t *req, const struct timespec *now)
{
    const struct timeval *begin = &req->timestamps.request_begin_at;
    br_req_note_t *note = br_req_note(req);
    struct timespec start = {begin->tv_sec, begin->tv_usec * 1000L};
    if (note != NULL && (begin->tv_sec == 0 || timercmp(begin, &req->processed_at.at, ==)))
        start = note->start;
    if (start.tv_sec == 0)
        return 0;
    double s = (double)(now->tv_sec - start.tv_sec) + (double)(now->tv_nsec - start.tv_nsec) / 1e9;
    return s > 0 ? s : 0; /* < 0: the wall clock was stepped back */
}

void br_access_subject(h2o_req_t *req, const char *user)
{
    if (user != NULL && user[0] != '\0')
        *h2o_req_getenv(req, H2O_STRLIT(ENV_SUBJECT), 1) = h2o_strdup(&req->pool, user, strlen(user));
}

/* ---- the log line ---------------------------------------------------------- */

/* Copies s into buf (size > 0) for a log line: bytes outside printable ASCII,
 * spaces, quotes and backslashes become '?', so that a field can neither
 * break the text format's columns nor the JSON (invalid UTF-8 included) nor
 * forge a line. Returns the length written (NUL-terminated). */
static size_t clean_field(char *buf, size_t size, br_str_t s)
{
    size_t n = 0;
    for (; n < s.len && n + 1 < size; n++) {
        unsigned char c = (unsigned char)s.base[n];
        buf[n] = c > 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    buf[n] = '\0';
    return n;
}

static br_str_t env_value(h2o_req_t *req, const char *name, size_t len)
{
    h2o_iovec_t *v = h2o_req_getenv(req, name, len, 0);
    return v != NULL && v->len != 0 ? br_str(v->base, v->len) : br_str("-", 1);
}

br_str_t br_request_id_of(h2o_req_t *req)
{
    return env_value(req, H2O_STRLIT(ENV_ID));
}

br_str_t br_request_subject(h2o_req_t *req)
{
    h2o_iovec_t *v = h2o_req_getenv(req, H2O_STRLIT(ENV_SUBJECT), 0);
    return v != NULL ? br_str(v->base, v->len) : br_str("", 0);
}

void br_access_log(h2o_logger_t *self, h2o_req_t *req)
{
    (void)self;
    /* The logger is always registered, so that a reload can turn it on. */
    if (!br_cfg()->log.access_log)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double ms = br_request_seconds(req, &now) * 1000.0;
    char time[32];
    struct tm tm;
    time_t secs = now.tv_sec;
    gmtime_r(&secs, &tm);
    size_t tn = strftime(time, sizeof(time), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(time + tn, sizeof(time) - tn, ".%03ldZ", now.tv_nsec / 1000000);

    char peer[NI_MAXHOST] = "-";
    struct sockaddr_storage ss;
    socklen_t sslen = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sslen != 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, sslen, peer) == SIZE_MAX)
        strcpy(peer, "-");

    char method[17], path[1025], user[BR_AUTH_USER_MAX + 1], id[BR_REQUEST_ID_MAX + 1];
    clean_field(method, sizeof(method), br_str(req->input.method.base, req->input.method.len));
    clean_field(path, sizeof(path), br_str(req->input.path.base, req->input.path.len));
    clean_field(user, sizeof(user), env_value(req, H2O_STRLIT(ENV_SUBJECT)));
    br_str_t rid = env_value(req, H2O_STRLIT(ENV_ID));
    if (rid.len == 1 && rid.base[0] == '-') {
        /* h2o answered before the router saw the request (a malformed
         * request line, a body over the limit): the client's id, if usable. */
        br_str_t theirs = br_req_header_str(req, "x-request-id");
        if (br_request_id_valid(theirs))
            rid = theirs;
    }
    clean_field(id, sizeof(id), rid);
    const char *proto = req->version >= 0x200 ? "HTTP/2" : req->version == 0x101 ? "HTTP/1.1" : "HTTP/1.0";
    size_t in = req->entity.base != NULL ? req->entity.len : 0;
#if BR_PATCHED_H2O
    if (req->body_stream != NULL) /* a body taken in pieces (server/h2o/0002) */
        in = req->body_stream->received;
#endif

    char line[2048];
    int n;
    if (br_cfg()->log.format == BR_LOG_JSON)
        n = snprintf(line, sizeof(line),
                     "{\"time\":\"%s\",\"type\":\"access\",\"peer\":\"%s\",\"user\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
                     "\"proto\":\"%s\",\"status\":%d,\"bytes_in\":%zu,\"bytes_out\":%zu,\"ms\":%.3f,\"id\":\"%s\"}",
                     time, peer, user, method, path, proto, req->res.status, in, req->bytes_sent, ms, id);
    else
        n = snprintf(line, sizeof(line), "%s access %s %s \"%s %s %s\" %d %zu %zu %.3fms %s", time, peer, user, method, path,
                     proto, req->res.status, in, req->bytes_sent, ms, id);
    if (n > 0)
        br_log_raw(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}
