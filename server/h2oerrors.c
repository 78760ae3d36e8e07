/*
 * Errors h2o answers by itself, before a request reaches berth's router: a
 * malformed chunked body (400 "broken chunked-encoding": a bad chunk-size
 * line, see server/h1chunk.c), an unknown Transfer-Encoding (400), a body over
 * max_request_entity_size (413), an unknown Expect (417). h2o binds such a
 * request to the host's fallback path and sends a text/plain body. The filter
 * here, registered on that path, swaps the body for the OCI error body every
 * other answer of berth carries, so clients parse one format. The status,
 * `Connection: close` and the closing of the connection stay h2o's.
 */
#include <string.h>
#include "server/server.h"

typedef struct st_json_ostream_t {
    h2o_ostream_t super;
    int done;
} json_ostream_t;

/* The status decides the code; h2o's own text ("broken chunked-encoding",
 * "unknown transfer-encoding", "request entity is too large", ...) becomes the
 * detail. It arrives only here, in the one call in which h2o_send_inline sends
 * it (none for HEAD), and the headers are written on the next ostream's first
 * call, so Content-Length can still be set now. */
static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    json_ostream_t *o = (json_ostream_t *)self;
    if (o->done) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    o->done = 1;
    char detail[128] = "";
    size_t n = 0;
    for (size_t i = 0; i < bufcnt; i++)
        for (size_t k = 0; k < bufs[i].len && n + 1 < sizeof(detail); k++)
            detail[n++] = bufs[i].base[k];
    detail[n] = '\0';
    int too_large = req->res.status == 413;
    h2o_iovec_t body = br_error_body(req, too_large ? "SIZE_INVALID" : "UNSUPPORTED",
                                     too_large ? "request body too large" : "bad request", n != 0 ? detail : NULL);
    req->res.content_length = body.len;
    h2o_ostream_send_next(self, req, &body, bufcnt != 0 ? 1 : 0, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    h2o_iovec_t type = ct != -1 ? req->res.headers.entries[ct].value : h2o_iovec_init(NULL, 0);
    if (req->res.status >= 400 && type.len >= 10 && memcmp(type.base, "text/plain", 10) == 0) {
        json_ostream_t *o = (json_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = on_send;
        o->done = 0;
        req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json; charset=utf-8"));
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void br_h2o_errors_register(h2o_hostconf_t *hostconf)
{
    h2o_filter_t *f = h2o_create_filter(&hostconf->fallback_path, sizeof(*f));
    f->on_setup_ostream = on_setup_ostream;
}
