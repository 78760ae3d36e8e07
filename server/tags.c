/*
 * GET /v2/<name>/tags/list and GET /v2/_catalog: ordered listings served from
 * the index with n/last pagination (a cursor seek, never a walk) and an RFC
 * 5988 Link header when more entries remain.
 */
#include <string.h>
#include "server/server.h"

/* Without n, a page is still bounded: memory per request has a ceiling. */
#define LIST_MAX 100000

typedef struct st_list_ctx_t {
    br_buf_t buf;
    size_t count;
    size_t last_len; /* the last name seen, for the Link header */
    char last[BR_NAME_MAX + 1];
    const br_match_t *filter; /* catalog with auth on: only what the caller may pull */
} list_ctx_t;

static int on_name(void *p, br_str_t name)
{
    list_ctx_t *c = p;
    /* Pagination goes on after hidden names too. A fixed copy, not a pool
     * allocation per name: a page can hold 100,000 of them. */
    c->last_len = name.len <= BR_NAME_MAX ? name.len : BR_NAME_MAX;
    memcpy(c->last, name.base, c->last_len);
    if (c->filter != NULL && !br_may_pull(c->filter, name))
        return 0;
    if (c->count++ != 0)
        br_buf_append(&c->buf, ",", 1);
    br_buf_json_str(&c->buf, name);
    return 0;
}

/* Reads n and last; returns 0 or sends a 400 and returns -1. */
static int page_params(h2o_req_t *req, size_t *n, br_str_t *last, int *has_n)
{
    uint64_t v;
    int r = br_query_uint(req, "n", LIST_MAX, &v);
    if (r < 0) {
        br_send_error_code(req, 400, "UNSUPPORTED", "invalid number of results requested", "n must be an integer from 0 to 100000");
        return -1;
    }
    *has_n = r == 1;
    *n = r == 1 ? (size_t)v : LIST_MAX;
    *last = br_str("", 0);
    if (br_query_param(req, "last", last) < 0) {
        br_send_error_code(req, 400, "UNSUPPORTED", "invalid last parameter", NULL);
        return -1;
    }
    return 0;
}

static void send_page(h2o_req_t *req, list_ctx_t *c, int more, size_t n, const char *path)
{
    if (more && c->last_len != 0) {
        h2o_iovec_t last = br_url_encode(req, br_str(c->last, c->last_len));
        h2o_iovec_t link = br_pool_printf(req, "<%s?n=%zu&last=%s>; rel=\"next\"", path, n, last.base);
        br_add_header_token(req, H2O_TOKEN_LINK, link.base, link.len);
    }
    h2o_iovec_t body = br_buf_to_pool(&c->buf, req);
    br_send(req, 200, "application/json; charset=utf-8", body.base, body.len);
}

int br_handle_tags(h2o_req_t *req, const br_match_t *m)
{
    size_t n;
    br_str_t last;
    int has_n, more = 0;
    if (page_params(req, &n, &last, &has_n) != 0)
        return 0;
    list_ctx_t c = {.filter = NULL};
    br_buf_append(&c.buf, "{\"name\":", 8);
    br_buf_json_str(&c.buf, m->name);
    br_buf_append(&c.buf, ",\"tags\":[", 9);
    int r = n == 0 ? (br_repo_exists(br_srv.store, m->name) ? 0 : BR_E_NAME_UNKNOWN)
                   : br_tag_list(br_srv.store, m->name, last, n, on_name, &c, &more);
    if (r != 0) {
        free(c.buf.base);
        return br_send_error(req, r, NULL);
    }
    br_buf_append(&c.buf, "]}", 2);
    h2o_iovec_t path = br_pool_printf(req, "/v2/%.*s/tags/list", (int)m->name.len, m->name.base);
    send_page(req, &c, more, n, path.base);
    (void)has_n;
    return 0;
}

int br_handle_catalog(h2o_req_t *req, const br_match_t *m)
{
    size_t n;
    br_str_t last;
    int has_n, more = 0;
    if (page_params(req, &n, &last, &has_n) != 0)
        return 0;
    list_ctx_t c = {.filter = m->auth != NULL ? m : NULL};
    br_buf_append(&c.buf, "{\"repositories\":[", 17);
    int r = n == 0 ? 0 : br_repo_list(br_srv.store, last, n, on_name, &c, &more);
    if (r != 0) {
        free(c.buf.base);
        return br_send_error(req, r, NULL);
    }
    br_buf_append(&c.buf, "]}", 2);
    send_page(req, &c, more, n, "/v2/_catalog");
    (void)has_n;
    return 0;
}
