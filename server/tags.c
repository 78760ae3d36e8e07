/*
 * GET /v2/<name>/tags/list and GET /v2/_catalog: ordered listings served from
 * the index with n/last pagination (a cursor seek, never a walk) and an RFC
 * 5988 Link header when more entries remain.
 */
#include <string.h>
#include "server/server.h"

/* Without n, a page is still bounded: memory per request has a ceiling. */
#define LIST_MAX 100000

/* The last page each thread rendered, reused while the index is unchanged:
 * tag lists are polled (CI jobs, image updaters) and a 10,000-tag page takes
 * ~0.2 ms to build. Keyed by the request path with its query and the index
 * version taken before the read, so a write committed meanwhile only makes
 * the entry miss. Only pages that are the same for every caller are kept
 * (not the catalog filtered by auth). */
#define CACHE_BODY_MAX (4u << 20)
typedef struct st_list_cache_t {
    uint64_t version;
    h2o_iovec_t key, body, link;
} list_cache_t;
static __thread list_cache_t cache;

void br_list_cache_clear(void)
{
    free(cache.key.base);
    free(cache.body.base);
    free(cache.link.base);
    memset(&cache, 0, sizeof(cache));
}

static h2o_iovec_t dup_iov(h2o_iovec_t v)
{
    return h2o_iovec_init(br_strndup(v.base, v.len), v.len);
}

static void cache_store(h2o_req_t *req, uint64_t version, h2o_iovec_t body, h2o_iovec_t link)
{
    if (version == 0 || body.len > CACHE_BODY_MAX)
        return;
    br_list_cache_clear();
    cache.key = dup_iov(req->path);
    cache.body = dup_iov(body);
    cache.link = dup_iov(link);
    cache.version = version;
}

/* Sends the cached page when it answers this request; returns 1 if sent. */
static int cache_send(h2o_req_t *req, uint64_t version)
{
    if (version == 0 || cache.version != version || !h2o_memis(cache.key.base, cache.key.len, req->path.base, req->path.len))
        return 0;
    if (cache.link.len != 0)
        br_add_header_token(req, H2O_TOKEN_LINK, h2o_strdup(&req->pool, cache.link.base, cache.link.len).base, cache.link.len);
    h2o_iovec_t body = h2o_strdup(&req->pool, cache.body.base, cache.body.len);
    br_send(req, 200, "application/json; charset=utf-8", body.base, body.len);
    return 1;
}

typedef struct st_list_ctx_t {
    br_buf_t buf;
    size_t count;
    size_t last_len; /* the last name listed, for the Link header */
    char last[BR_NAME_MAX + 1];
    /* The catalog with auth on lists only what the caller may pull, and counts
     * only that towards n: hidden names are skipped, never named (not even in
     * the Link). */
    const br_match_t *filter;
    size_t want;     /* n */
    int more;        /* filter: a visible name follows the page */
    size_t seen_len; /* filter: the last name scanned, visible or not */
    char seen[BR_NAME_MAX + 1];
} list_ctx_t;

/* A fixed copy, not a pool allocation per name: a page can hold 100,000. */
static size_t copy_name(char *dst, br_str_t name)
{
    size_t len = name.len <= BR_NAME_MAX ? name.len : BR_NAME_MAX;
    memcpy(dst, name.base, len);
    return len;
}

static int on_name(void *p, br_str_t name)
{
    list_ctx_t *c = p;
    if (c->filter != NULL) {
        c->seen_len = copy_name(c->seen, name);
        if (!br_may_pull(c->filter, name))
            return 0;
        if (c->count == c->want) { /* the look-ahead: one more visible name */
            c->more = 1;
            return 1;
        }
    }
    c->last_len = copy_name(c->last, name);
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

/* version: the index version the page was read at, to cache it (0: do not). */
static void send_page(h2o_req_t *req, list_ctx_t *c, int more, size_t n, const char *path, uint64_t version)
{
    h2o_iovec_t link = h2o_iovec_init("", 0);
    if (more && c->last_len != 0) {
        h2o_iovec_t last = br_url_encode(req, br_str(c->last, c->last_len));
        link = br_pool_printf(req, "<%s?n=%zu&last=%s>; rel=\"next\"", path, n, last.base);
        br_add_header_token(req, H2O_TOKEN_LINK, link.base, link.len);
    }
    h2o_iovec_t body = br_buf_to_pool(&c->buf, req);
    cache_store(req, version, body, link);
    br_send(req, 200, "application/json; charset=utf-8", body.base, body.len);
}

int br_handle_tags(h2o_req_t *req, const br_match_t *m)
{
    size_t n;
    br_str_t last;
    int has_n, more = 0;
    if (page_params(req, &n, &last, &has_n) != 0)
        return 0;
    uint64_t version = br_store_version(br_srv.store);
    if (cache_send(req, version))
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
    send_page(req, &c, more, n, path.base, version);
    (void)has_n;
    return 0;
}

/* The catalog as the caller may see it: up to c->want visible names after
 * last, then a look-ahead for one more (so a Link is only sent when another
 * visible name exists). Hidden names may be many, so the scan goes in slices,
 * each its own short read transaction, resuming after the last name seen. */
#define FILTER_SLICE 512
static int filtered_repo_list(list_ctx_t *c, br_str_t last, int *more)
{
    char from[BR_NAME_MAX + 1];
    int r, slice_more;
    *more = 0;
    for (;;) {
        c->seen_len = 0;
        if ((r = br_repo_list(br_srv.store, last, FILTER_SLICE, on_name, c, &slice_more)) != 0)
            return r;
        if (c->more || !slice_more || c->seen_len == 0)
            break;
        memcpy(from, c->seen, c->seen_len);
        last = br_str(from, c->seen_len);
    }
    *more = c->more;
    return 0;
}

int br_handle_catalog(h2o_req_t *req, const br_match_t *m)
{
    size_t n;
    br_str_t last;
    int has_n, more = 0;
    if (page_params(req, &n, &last, &has_n) != 0)
        return 0;
    /* With auth on the page depends on the caller: never from the cache. */
    uint64_t version = m->auth != NULL ? 0 : br_store_version(br_srv.store);
    if (cache_send(req, version))
        return 0;
    list_ctx_t c = {.filter = m->auth != NULL ? m : NULL, .want = n};
    br_buf_append(&c.buf, "{\"repositories\":[", 17);
    int r = 0;
    if (n != 0)
        r = c.filter != NULL ? filtered_repo_list(&c, last, &more) : br_repo_list(br_srv.store, last, n, on_name, &c, &more);
    if (r != 0) {
        free(c.buf.base);
        return br_send_error(req, r, NULL);
    }
    br_buf_append(&c.buf, "]}", 2);
    send_page(req, &c, more, n, "/v2/_catalog", version);
    (void)has_n;
    return 0;
}
