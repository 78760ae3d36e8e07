/*
 * GET / HEAD / DELETE /v2/<name>/blobs/<digest>
 *
 * Blob bodies are streamed from the file with pread() in slices as the client
 * drains them (h2o's proceed callback), so a slow reader costs one buffer, not
 * the blob. h2o 2.2.5's own file sender ignores Range and HEAD, hence this.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/server.h"

#define SEND_BUF_MAX (256 * 1024)
#define SMALL_BLOB_MAX (64 * 1024)

typedef struct st_blob_sender_t {
    h2o_generator_t super;
    h2o_req_t *req;
    int fd;
    uint64_t off, remaining;
    size_t bufsize;
    char *buf;
} blob_sender_t;

static void on_sender_dispose(void *p)
{
    blob_sender_t *s = p;
    if (s->fd != -1)
        close(s->fd);
    free(s->buf);
}

static void do_send(blob_sender_t *s)
{
    size_t want = s->remaining < s->bufsize ? (size_t)s->remaining : s->bufsize;
    ssize_t n;
    while ((n = pread(s->fd, s->buf, want, (off_t)s->off)) == -1 && errno == EINTR)
        ;
    if (n <= 0) {
        /* The file is immutable and its size known, so a short read means the
         * disk failed under us: end the response as broken, not as complete. */
        br_error("reading blob: %s", n == 0 ? "unexpected end of file" : strerror(errno));
        h2o_send(s->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    s->off += (uint64_t)n;
    s->remaining -= (uint64_t)n;
    h2o_iovec_t vec = h2o_iovec_init(s->buf, (size_t)n);
    h2o_send(s->req, &vec, 1, s->remaining == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    (void)req;
    do_send((blob_sender_t *)g);
}

/* Parses a single-range "bytes=" spec against size. Returns 1 with [*first,
 * *last] for a satisfiable range, 0 to ignore the header (serve it all), -1
 * for unsatisfiable (416). RFC 9110 §14: several ranges may be ignored, and
 * so may a syntactically invalid one. */
static int parse_range(br_str_t v, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (v.len < 6 || memcmp(v.base, "bytes=", 6) != 0)
        return 0;
    const char *p = v.base + 6, *end = v.base + v.len;
    if (memchr(p, ',', (size_t)(end - p)) != NULL)
        return 0;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    const char *dash = memchr(p, '-', (size_t)(end - p));
    if (dash == NULL)
        return 0;
    uint64_t a, b;
    const char *q = p;
    int have_a = br_parse_u64(&q, dash, &a);
    if (have_a < 0 || q != dash)
        return 0;
    q = dash + 1;
    int have_b = br_parse_u64(&q, end, &b);
    if (have_b < 0 || q != end)
        return 0;
    if (!have_a && !have_b)
        return 0;
    if (!have_a) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (have_b && b < a)
        return 0; /* invalid, so ignored */
    if (a >= size)
        return -1;
    *first = a;
    *last = have_b && b < size ? b : size - 1;
    return 1;
}

void br_send_blob_fd(h2o_req_t *req, int fd, uint64_t size, const br_digest_t *d, const char *content_type, int allow_range)
{
    uint64_t first = 0, last = size == 0 ? 0 : size - 1, len = size;
    int status = 200;
    br_add_digest_headers(req, d, 1);
    if (allow_range) {
        br_add_header_token(req, H2O_TOKEN_ACCEPT_RANGES, "bytes", 5);
        br_str_t range = br_req_header(req, H2O_TOKEN_RANGE);
        br_str_t if_range = br_req_header(req, H2O_TOKEN_IF_RANGE);
        if (range.len != 0 && if_range.len != 0) {
            /* Only a strong ETag match keeps the Range in force. */
            char etag[BR_DIGEST_MAX + 3];
            etag[0] = '"';
            size_t n = br_digest_format(d, etag + 1);
            etag[n + 1] = '"';
            if (!br_str_eq(if_range, br_str(etag, n + 2)))
                range.len = 0;
        }
        if (range.len != 0) {
            int r = parse_range(range, size, &first, &last);
            if (r < 0) {
                close(fd);
                h2o_iovec_t cr = br_pool_printf(req, "bytes */%llu", (unsigned long long)size);
                br_add_header_token(req, H2O_TOKEN_CONTENT_RANGE, cr.base, cr.len);
                br_send_error_code(req, 416, "BLOB_UNKNOWN", "requested range not satisfiable", NULL);
                return;
            }
            if (r > 0) {
                status = 206;
                len = last - first + 1;
                h2o_iovec_t cr = br_pool_printf(req, "bytes %llu-%llu/%llu", (unsigned long long)first,
                                                (unsigned long long)last, (unsigned long long)size);
                br_add_header_token(req, H2O_TOKEN_CONTENT_RANGE, cr.base, cr.len);
            }
        }
    }
    if (br_is_head(req) || len == 0 || len <= SMALL_BLOB_MAX) {
        char *body = NULL;
        if (!br_is_head(req) && len != 0) {
            body = h2o_mem_alloc_pool(&req->pool, (size_t)len);
            ssize_t n = pread(fd, body, (size_t)len, (off_t)first);
            if (n != (ssize_t)len) {
                close(fd);
                br_send_error(req, n < 0 ? errno : BR_E_CORRUPT, "cannot read blob");
                return;
            }
        }
        close(fd);
        br_send(req, status, content_type, body, (size_t)len);
        return;
    }
    blob_sender_t *s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), on_sender_dispose);
    memset(s, 0, sizeof(*s));
    s->super.proceed = on_proceed;
    s->req = req;
    s->fd = fd;
    s->off = first;
    s->remaining = len;
    s->bufsize = len < SEND_BUF_MAX ? (size_t)len : SEND_BUF_MAX;
    s->buf = br_malloc(s->bufsize);
    req->res.status = status;
    req->res.reason = status == 206 ? "Partial Content" : "OK";
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_start_response(req, &s->super);
    do_send(s);
}

/* A blob DELETE on an I/O thread (its index commit syncs). */
typedef struct st_unlink_job_t {
    br_io_job_t io;
    br_str_t repo; /* in buf */
    br_digest_t digest;
    int err;
    char buf[];
} unlink_job_t;

static void do_unlink(br_io_job_t *io)
{
    unlink_job_t *j = (unlink_job_t *)io;
    j->err = br_blob_unlink(br_srv.store, j->repo, &j->digest);
}

static void on_unlink_done(br_io_job_t *io, h2o_req_t *req)
{
    unlink_job_t *j = (unlink_job_t *)io;
    if (j->err != 0) {
        br_send_error(req, j->err, NULL);
        return;
    }
    br_event_t e = {.action = BR_EVENT_DELETE, .repository = j->repo, .digest = &j->digest, .media_type = ""};
    br_event_emit(req, &e);
    br_add_digest_headers(req, &j->digest, 0);
    br_send(req, 202, NULL, "", 0);
}

int br_handle_blob(h2o_req_t *req, const br_match_t *m)
{
    br_digest_t d;
    if (br_digest_parse(&d, m->reference) != 0)
        return br_send_error(req, BR_E_DIGEST_INVALID, "invalid digest in path");
    br_store_t *st = br_srv.store;

    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
        if (!br_cfg()->storage.delete_enabled)
            return br_send_error(req, BR_E_UNSUPPORTED, "deletes are disabled on this registry");
        unlink_job_t *j = br_calloc(1, sizeof(*j) + m->name.len);
        char *cur = j->buf;
        j->io.run = do_unlink;
        j->io.done = on_unlink_done;
        j->io.destroy = br_io_free;
        j->repo = br_io_copy(&cur, m->name);
        j->digest = d;
        br_io_submit(req, &j->io);
        return 0;
    }

    int fd;
    uint64_t size;
    int err = br_blob_open(st, m->name, &d, &fd, &size);
    if (err != 0)
        return br_send_error(req, err, NULL);
    if (!br_is_head(req)) {
        br_event_t e = {.action = BR_EVENT_PULL, .repository = m->name, .digest = &d, .size = size};
        br_event_emit(req, &e);
    }
    br_send_blob_fd(req, fd, size, &d, "application/octet-stream", 1);
    return 0;
}
