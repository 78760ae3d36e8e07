/*
 * The route table, request checks that apply to every route, and the one place
 * that turns berth's error codes into HTTP statuses and OCI error bodies.
 *
 * Paths are matched on the raw request path (never percent-decoded): nothing a
 * route accepts — repository names, digests, tags, uuids — may contain '%',
 * so an encoded '/' or '.' simply fails validation instead of being decoded
 * into something that could reach the store.
 */
#include "berth_config.h"
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

/* ---- errors ------------------------------------------------------------ */

typedef struct st_err_map_t {
    int err;
    int status;
    const char *code;
    const char *message;
} err_map_t;

static const err_map_t err_map[] = {
    {BR_E_DIGEST_INVALID, 400, "DIGEST_INVALID", "provided digest did not match uploaded content"},
    {BR_E_BLOB_UNKNOWN, 404, "BLOB_UNKNOWN", "blob unknown to registry"},
    {BR_E_BLOB_UPLOAD_INVALID, 400, "BLOB_UPLOAD_INVALID", "blob upload invalid"},
    {BR_E_BLOB_UPLOAD_UNKNOWN, 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"},
    {BR_E_MANIFEST_INVALID, 400, "MANIFEST_INVALID", "manifest invalid"},
    {BR_E_MANIFEST_UNKNOWN, 404, "MANIFEST_UNKNOWN", "manifest unknown"},
    {BR_E_MANIFEST_BLOB_UNKNOWN, 400, "MANIFEST_BLOB_UNKNOWN", "manifest references a blob unknown to the repository"},
    {BR_E_NAME_INVALID, 400, "NAME_INVALID", "invalid repository name"},
    {BR_E_NAME_UNKNOWN, 404, "NAME_UNKNOWN", "repository name not known to registry"},
    {BR_E_SIZE_INVALID, 400, "SIZE_INVALID", "provided length did not match content length"},
    /* The OCI spec registers no TAG_INVALID (distribution's own code). */
    {BR_E_TAG_INVALID, 400, "MANIFEST_INVALID", "invalid tag or reference"},
    {BR_E_UNSUPPORTED, 405, "UNSUPPORTED", "the operation is unsupported"},
    {BR_E_UNAUTHORIZED, 401, "UNAUTHORIZED", "authentication required"},
    {BR_E_DENIED, 403, "DENIED", "requested access to the resource is denied"},
    {BR_E_QUOTA, 403, "DENIED", "quota exceeded"},
    {BR_E_RANGE_INVALID, 416, "BLOB_UPLOAD_INVALID", "requested range not satisfiable"},
    {BR_E_TOO_LARGE, 413, "SIZE_INVALID", "request body too large"},
    {BR_E_TOO_MANY, 429, "TOOMANYREQUESTS", "too many requests"},
    {BR_E_BUSY, 409, "BLOB_UPLOAD_INVALID", "upload is in use by another request"},
};

static const char *status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 507: return "Insufficient Storage";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

/* Appends s as a JSON string (with quotes) to buf; returns bytes written. */
static size_t json_quote(char *buf, size_t size, const char *s)
{
    size_t n = 0;
    buf[n++] = '"';
    n += br_json_escape(buf + n, size - n - 2, br_cstr(s));
    buf[n++] = '"';
    buf[n] = '\0';
    return n;
}

h2o_iovec_t br_error_body(h2o_req_t *req, const char *code, const char *message, const char *detail)
{
    size_t cap = 256 + strlen(message) * 6 + (detail != NULL ? strlen(detail) * 6 : 0);
    char *body = h2o_mem_alloc_pool(&req->pool, cap);
    size_t n = (size_t)snprintf(body, cap, "{\"errors\":[{\"code\":\"%s\",\"message\":", code);
    n += json_quote(body + n, cap - n, message);
    if (detail != NULL) {
        n += (size_t)snprintf(body + n, cap - n, ",\"detail\":");
        n += json_quote(body + n, cap - n, detail);
    }
    n += (size_t)snprintf(body + n, cap - n, "}]}");
    return h2o_iovec_init(body, n);
}

int br_send_error_code(h2o_req_t *req, int status, const char *code, const char *message, const char *detail)
{
    h2o_iovec_t body = br_error_body(req, code, message, detail);
    br_send(req, status, "application/json; charset=utf-8", body.base, body.len);
    return 0;
}

int br_send_error(h2o_req_t *req, int err, const char *detail)
{
    for (size_t i = 0; i < sizeof(err_map) / sizeof(err_map[0]); i++)
        if (err_map[i].err == err)
            return br_send_error_code(req, err_map[i].status, err_map[i].code, err_map[i].message, detail);
    /* errno values and internal errors: our fault, not the client's. */
    if (err == ENOSPC)
        return br_send_error_code(req, 507, "UNKNOWN", "insufficient storage", detail);
    br_warn("internal error on %.*s %.*s: %s", (int)req->method.len, req->method.base, (int)req->path.len, req->path.base,
            br_strerror(err));
    return br_send_error_code(req, 500, "UNKNOWN", "internal server error", br_strerror(err));
}

/* ---- responses -------------------------------------------------------------- */

int br_is_head(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

void br_send(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    req->res.status = status;
    req->res.reason = status_reason(status);
    req->res.content_length = len;
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_start_response(req, &generator);
    h2o_iovec_t buf = h2o_iovec_init(body, br_is_head(req) ? 0 : len);
    h2o_send(req, &buf, buf.len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}

void br_add_header(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    /* HTTP/2 requires lower-case names on the wire; HTTP/1 gets the original
     * case, which some clients' logs and tests expect. */
    size_t nlen = strlen(name);
    h2o_iovec_t lc = h2o_strdup(&req->pool, name, nlen);
    h2o_strtolower(lc.base, nlen);
    h2o_add_header_by_str(&req->pool, &req->res.headers, lc.base, nlen, 0, name, h2o_strdup(&req->pool, value, len).base, len);
}

void br_add_header_token(h2o_req_t *req, const h2o_token_t *token, const char *value, size_t len)
{
    h2o_add_header(&req->pool, &req->res.headers, token, NULL, h2o_strdup(&req->pool, value, len).base, len);
}

h2o_iovec_t br_pool_printf(h2o_req_t *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = h2o_mem_alloc_pool(&req->pool, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return h2o_iovec_init(p, (size_t)n);
}

void br_add_digest_headers(h2o_req_t *req, const br_digest_t *d, int etag)
{
    char buf[BR_DIGEST_MAX + 3];
    size_t n = br_digest_format(d, buf + 1);
    br_add_header(req, "Docker-Content-Digest", buf + 1, n);
    if (etag) {
        buf[0] = '"';
        buf[n + 1] = '"';
        br_add_header_token(req, H2O_TOKEN_ETAG, buf, n + 2);
    }
}

/* ---- request helpers ---------------------------------------------------------- */

br_str_t br_req_header(h2o_req_t *req, const h2o_token_t *token)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    if (i == -1)
        return br_str("", 0);
    return br_str(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

br_str_t br_req_header_str(h2o_req_t *req, const char *lcname)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, lcname, strlen(lcname), -1);
    if (i == -1)
        return br_str("", 0);
    return br_str(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int br_query_param(h2o_req_t *req, const char *key, br_str_t *out)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t klen = strlen(key);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq != NULL ? eq : pe;
        if ((size_t)(ke - p) == klen && memcmp(p, key, klen) == 0) {
            const char *v = eq != NULL ? eq + 1 : pe;
            char *dst = h2o_mem_alloc_pool(&req->pool, (size_t)(pe - v) + 1);
            size_t n = 0;
            for (const char *s = v; s < pe; s++) {
                if (*s == '%') {
                    int hi, lo;
                    if (pe - s < 3 || (hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0)
                        return -1;
                    dst[n++] = (char)(hi * 16 + lo);
                    s += 2;
                } else if (*s == '+') {
                    dst[n++] = ' ';
                } else {
                    dst[n++] = *s;
                }
            }
            dst[n] = '\0';
            if (memchr(dst, '\0', n) != NULL)
                return -1;
            *out = br_str(dst, n);
            return 1;
        }
        p = pe + 1;
    }
    return 0;
}

int br_parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *q = *p;
    uint64_t v = 0;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*q - '0');
    }
    int got = q != *p;
    *p = q;
    *out = v;
    return got;
}

int br_query_uint(h2o_req_t *req, const char *key, uint64_t max, uint64_t *out)
{
    br_str_t v;
    int r = br_query_param(req, key, &v);
    if (r != 1)
        return r;
    if (v.len == 0 || v.len > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v.base[i] - '0');
    }
    if (n > max)
        return -1;
    *out = n;
    return 1;
}

/* ---- request smuggling -------------------------------------------------------
 * h2o 2.2.5 keeps Content-Length and Transfer-Encoding out of req->headers and,
 * given two Content-Length headers, or one with Transfer-Encoding, picks one
 * and carries on, so the rest of the body would be read as a next request. For
 * HTTP/1 the request's raw header block still sits at the start of the
 * socket's input buffer while the handler runs (h2o lower-cases the names in
 * place), so count those headers there; refuse and close the connection.
 * The other smuggling route, lenient chunk-size lines (`0x5`, `5<NUL>`, bare
 * LF), never reaches a handler: server/h1chunk.c replaces h2o's decoder in the
 * system-library build, and h2o answers 400 and closes. */
static int is_smuggling_attempt(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL || sock->input->size == 0)
        return 0;
    const char *p = sock->input->bytes, *end = p + sock->input->size;
    int num_cl = 0, num_te = 0;
    /* Header lines start after "\n"; the block ends at an empty line. */
    const char *line = memchr(p, '\n', (size_t)(end - p));
    while (line != NULL && ++line < end) {
        if (*line == '\n' || (*line == '\r' && line + 1 < end && line[1] == '\n'))
            break;
        size_t left = (size_t)(end - line);
        if (left >= 15 && memcmp(line, "content-length:", 15) == 0)
            num_cl++;
        else if (left >= 18 && memcmp(line, "transfer-encoding:", 18) == 0)
            num_te++;
        line = memchr(line, '\n', (size_t)(end - line));
    }
    return num_cl > 1 || num_te > 1 || (num_cl != 0 && num_te != 0);
}

/* ---- routing ------------------------------------------------------------------ */

static int method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static int send_method_not_allowed(h2o_req_t *req, const char *allow)
{
    br_add_header_token(req, H2O_TOKEN_ALLOW, allow, strlen(allow));
    return br_send_error_code(req, 405, "UNSUPPORTED", "method not allowed", NULL);
}

/* A path that is no route: 404, with a code the spec registers. */
static int send_not_found(h2o_req_t *req)
{
    return br_send_error_code(req, 404, "UNSUPPORTED", "no such endpoint", NULL);
}

int br_handle_base(h2o_req_t *req, const br_match_t *m)
{
    (void)m;
    br_send(req, 200, "application/json; charset=utf-8", "{}", 2);
    return 0;
}

/* Splits "<name>/<kind>/<ref>" (the path after "/v2/", without the query). */
static int match_route(br_str_t p, br_match_t *m)
{
    memset(m, 0, sizeof(*m));
    if (p.len == 0) {
        m->route = BR_ROUTE_BASE;
        return 0;
    }
    if (br_str_eq(p, BR_STR("_catalog"))) {
        m->route = BR_ROUTE_CATALOG;
        m->access = BR_ACCESS_CATALOG;
        return 0;
    }
    /* Find the last three segments: .../<z>/<y>/<x> */
    const char *end = p.base + p.len;
    const char *s1 = end; /* start of x */
    while (s1 > p.base && s1[-1] != '/')
        s1--;
    if (s1 == p.base)
        return 1; /* a single segment is no route */
    const char *s2 = s1 - 1; /* start of y */
    while (s2 > p.base && s2[-1] != '/')
        s2--;
    br_str_t x = br_str(s1, (size_t)(end - s1)), y = br_str(s2, (size_t)(s1 - 1 - s2));
    br_str_t z = br_str("", 0);
    const char *s3 = s2;
    if (s2 > p.base) {
        s3 = s2 - 1;
        while (s3 > p.base && s3[-1] != '/')
            s3--;
        z = br_str(s3, (size_t)(s2 - 1 - s3));
    }
    const char *name_end;
    if (br_str_eq(y, BR_STR("uploads")) && br_str_eq(z, BR_STR("blobs")) && s3 > p.base) {
        m->route = x.len == 0 ? BR_ROUTE_UPLOAD_START : BR_ROUTE_UPLOAD;
        name_end = s3 - 1;
    } else if (br_str_eq(x, BR_STR("uploads")) && br_str_eq(y, BR_STR("blobs"))) {
        /* POST /v2/<name>/blobs/uploads without the trailing slash */
        m->route = BR_ROUTE_UPLOAD_START;
        x = br_str("", 0);
        name_end = s2 - 1;
    } else if (br_str_eq(y, BR_STR("blobs"))) {
        m->route = BR_ROUTE_BLOB;
        name_end = s2 - 1;
    } else if (br_str_eq(y, BR_STR("manifests"))) {
        m->route = BR_ROUTE_MANIFEST;
        name_end = s2 - 1;
    } else if (br_str_eq(y, BR_STR("tags")) && br_str_eq(x, BR_STR("list"))) {
        m->route = BR_ROUTE_TAGS;
        x = br_str("", 0);
        name_end = s2 - 1;
    } else if (br_str_eq(y, BR_STR("referrers"))) {
        m->route = BR_ROUTE_REFERRERS;
        name_end = s2 - 1;
    } else {
        return 1; /* no such route */
    }
    if (name_end <= p.base)
        return BR_E_NAME_INVALID;
    m->name = br_str(p.base, (size_t)(name_end - p.base));
    m->reference = x;
    if (!br_name_valid(m->name))
        return BR_E_NAME_INVALID;
    return 0;
}

static const struct {
    br_handler_fn fn;
    const char *methods; /* for Allow and 405 */
} routes[] = {
    [BR_ROUTE_BASE] = {br_handle_base, "GET, HEAD"},
    [BR_ROUTE_CATALOG] = {br_handle_catalog, "GET, HEAD"},
    [BR_ROUTE_BLOB] = {br_handle_blob, "GET, HEAD, DELETE"},
    [BR_ROUTE_UPLOAD_START] = {br_handle_upload_start, "POST"},
    [BR_ROUTE_UPLOAD] = {br_handle_upload, "GET, PATCH, PUT, DELETE"},
    [BR_ROUTE_MANIFEST] = {br_handle_manifest, "GET, HEAD, PUT, DELETE"},
    [BR_ROUTE_TAGS] = {br_handle_tags, "GET, HEAD"},
    [BR_ROUTE_REFERRERS] = {br_handle_referrers, "GET, HEAD"},
};

/* 1 when the request's method is in the comma-separated list. */
static int method_allowed(h2o_req_t *req, const char *list)
{
    size_t n = req->method.len;
    for (const char *p = list; *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, req->method.base, n) == 0)
            return 1;
        if (e == NULL)
            break;
        p = e + 2;
    }
    return 0;
}

/* The client's address as text, in req->pool (for the failed-login back-off). */
static const char *peer_address(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    char *buf = h2o_mem_alloc_pool(&req->pool, NI_MAXHOST);
    if (len == 0 || h2o_socket_getnumerichost((struct sockaddr *)&ss, len, buf) == SIZE_MAX)
        strcpy(buf, "-");
    return buf;
}

static void send_auth_headers(h2o_req_t *req, const char *www_authenticate, unsigned retry_after)
{
    if (www_authenticate[0] != '\0')
        br_add_header_token(req, H2O_TOKEN_WWW_AUTHENTICATE, www_authenticate, strlen(www_authenticate));
    if (retry_after != 0) {
        h2o_iovec_t v = br_pool_printf(req, "%u", retry_after);
        br_add_header_token(req, H2O_TOKEN_RETRY_AFTER, v.base, v.len);
    }
}

/* The one place every route is authorized: asks auth/ for the access the
 * route needs. Returns 0 to go on, or -1 after sending the refusal. */
static int authorize(h2o_req_t *req, br_match_t *m)
{
    static const unsigned actions[] = {
        [BR_ACCESS_NONE] = 0,
        [BR_ACCESS_PULL] = BR_AUTH_PULL,
        /* registry:2 asks for both on writes, and clients expect "pull,push" */
        [BR_ACCESS_PUSH] = BR_AUTH_PULL | BR_AUTH_PUSH,
        [BR_ACCESS_DELETE] = BR_AUTH_DELETE,
        [BR_ACCESS_CATALOG] = BR_AUTH_CATALOG,
    };
    br_auth_request_t ar = {
        .authorization = br_req_header(req, H2O_TOKEN_AUTHORIZATION),
        .client = peer_address(req),
        .repository = m->route == BR_ROUTE_CATALOG ? br_str("", 0) : m->name,
        .actions = actions[m->access],
    };
    if (m->route == BR_ROUTE_UPLOAD_START) {
        br_str_t from;
        if (br_query_param(req, "from", &from) == 1 && br_name_valid(from))
            ar.from = from;
    }
    br_auth_result_t *res = h2o_mem_alloc_pool(&req->pool, sizeof(*res));
    int denied = br_auth_check(br_snap()->auth, &ar, res) != 0 || !res->allowed;
    br_metrics_auth(denied ? res->status : 200, ar.authorization.len != 0);
    br_access_subject(req, res->user);
    if (denied) {
        send_auth_headers(req, res->www_authenticate, res->retry_after);
        br_send_error_code(req, res->status, res->code != NULL ? res->code : "UNAUTHORIZED",
                           res->message != NULL ? res->message : "authentication required", res->detail);
        return -1;
    }
    m->auth = res;
    return 0;
}

int br_may_pull(const br_match_t *m, br_str_t name)
{
    return m->auth == NULL || br_auth_may(br_snap()->auth, m->auth, name, BR_AUTH_PULL);
}

/* GET/POST on the configured token path: berth's own token issuer (the
 * router has answered any other method). */
static int handle_token(h2o_req_t *req, const br_match_t *m)
{
    (void)m;
    int post = method_is(req, "POST");
    br_auth_token_request_t tr = {
        .post = post,
        .query = req->query_at != SIZE_MAX ? br_str(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)
                                           : br_str("", 0),
        .body = req->entity.base != NULL ? br_str(req->entity.base, req->entity.len) : br_str("", 0),
        .authorization = br_req_header(req, H2O_TOKEN_AUTHORIZATION),
        .client = peer_address(req),
    };
    br_auth_token_response_t *resp = h2o_mem_alloc_pool(&req->pool, sizeof(*resp));
    br_auth_issue(br_snap()->auth, &tr, resp);
    br_metrics_auth(resp->status, tr.authorization.len != 0);
    br_access_subject(req, resp->user);
    send_auth_headers(req, resp->www_authenticate, resp->retry_after);
    br_add_header_token(req, H2O_TOKEN_CACHE_CONTROL, "no-store", 8);
    h2o_iovec_t body = h2o_strdup(&req->pool, resp->body != NULL ? resp->body : "", resp->body != NULL ? resp->len : 0);
    free(resp->body);
    br_send(req, resp->status, "application/json", body.base, body.len);
    return 0;
}

/* ---- absolute-form targets ----------------------------------------------------
 * RFC 9112 §3.2.2: a server MUST accept "GET http://host/v2/... HTTP/1.1".
 * h2o 2.2.5 leaves such a target in req->path as sent (authority from Host),
 * so it is rewritten here, before anything reads the path, to the origin form
 * it carries: routing, auth and the handlers then see exactly what the same
 * request in origin form shows them. The access log keeps the target as sent
 * (req->input.path). HTTP/2's :path is origin-form only (RFC 9113 §8.3.1);
 * "*" (OPTIONS, RFC 9112 §3.2.4) is left to the 404/405 paths.
 * Returns 0, or -1 for a target that is none of these. */
static int to_origin_form(h2o_req_t *req)
{
    if (req->path.len != 0 && (req->path.base[0] == '/' || h2o_memis(req->path.base, req->path.len, H2O_STRLIT("*"))))
        return 0;
    br_str_t authority, origin;
    if (req->version >= 0x200 || br_target_split(br_str(req->path.base, req->path.len), &authority, &origin) != 0)
        return -1;
    if (origin.len == 0 || origin.base[0] == '?') {
        /* no path: it is "/" (RFC 9110 §4.2.3) */
        h2o_iovec_t p = br_pool_printf(req, "/%.*s", (int)origin.len, origin.base);
        origin = br_str(p.base, p.len);
    }
    const char *q = memchr(origin.base, '?', origin.len);
    req->path = h2o_iovec_init(origin.base, origin.len);
    req->query_at = q != NULL ? (size_t)(q - origin.base) : SIZE_MAX;
    /* the target's authority replaces Host (RFC 9112 §3.2.2) */
    req->authority = h2o_iovec_init(authority.base, authority.len);
    return 0;
}

/* 1 when the route takes its body in pieces as it arrives (the uploads). */
static int streams_body(h2o_req_t *req, const br_match_t *m)
{
    if (m->route == BR_ROUTE_UPLOAD_START)
        return method_is(req, "POST");
    return m->route == BR_ROUTE_UPLOAD && (method_is(req, "PATCH") || method_is(req, "PUT"));
}

#if BR_PATCHED_H2O
/* streams_body, decided from the head as sent, before to_origin_form: an
 * absolute-form target is looked at in the origin form it carries. */
static int is_upload_body(h2o_req_t *req)
{
    br_str_t target = br_str(req->input.path.base, req->input.path.len), authority;
    if ((target.len == 0 || target.base[0] != '/') && (req->version >= 0x200 || br_target_split(target, &authority, &target) != 0))
        return 0;
    const char *q = memchr(target.base, '?', target.len);
    size_t plen = q != NULL ? (size_t)(q - target.base) : target.len;
    if (plen <= 4 || memcmp(target.base, "/v2/", 4) != 0)
        return 0;
    br_match_t m;
    return match_route(br_str(target.base + 4, plen - 4), &m) == 0 && streams_body(req, &m);
}
#endif

/* ---- request bodies ---------------------------------------------------------
 * In the patched build (server/h2o/0002, 0004, 0005) every request with a body
 * reaches br_on_req once its head has arrived, before any of the body is read
 * (an HTTP/1 request with a body is never upgraded to h2c: 0005). The uploads
 * take theirs in pieces (server/uploads.c). Any other route gets its body
 * collected here, up to the route's own limit (0 for
 * a route that takes none), into req->entity as h2o's buffered path would hand
 * it over, and then its handler runs unchanged. So a request refused on its
 * head (400, 401, 403, 404, 405, 431) is answered without reading its body, a
 * body declared (Content-Length) or received (chunked, HTTP/2 DATA) past its
 * limit is answered 413 at once, and no request holds more than its route's
 * limit: the buffered path would read up to limits.max_body_size, in RAM and
 * above 32 MiB in a spill file under <root>/tmp, before anything answered.
 * After such an early answer h2o closes the HTTP/1 connection (the unread
 * body cannot be told from a next request) or resets the HTTP/2 stream with
 * NO_ERROR. Except for a short body (declared, up to BR_SHORT_BODY): it is
 * read first, and everything else then runs as for a buffered body, so a
 * refusal comes after it, as clients that send the body right behind the head
 * expect: the HTTP/1 connection stays open, and an HTTP/2 stream is not reset
 * while the client still sends (curl 7.88 reports such a reset as an error,
 * not the answer it got). The system-h2o build keeps h2o's buffering. */

/* The longest body read before anything answers: the token form's limit. */
#define BR_SHORT_BODY ((size_t)BR_AUTH_FORM_MAX)

/* The match of a request that names no route (probes, token, before routing). */
static const br_match_t no_match;

int br_wants_body_stream(h2o_req_t *req)
{
    (void)req;
    return 1;
}

#if BR_PATCHED_H2O
typedef struct st_body_job_t {
    h2o_req_t *req;
    br_match_t m;
    br_handler_fn fn;
    size_t limit;
    const char *detail; /* of the 413 */
    char *buf;          /* heap: freed with the request */
    size_t len, cap;
} body_job_t;

static void on_body_job_dispose(void *p)
{
    free(((body_job_t *)p)->buf);
}

static void on_body_piece(void *ctx, h2o_iovec_t piece, h2o_req_body_state_t state)
{
    body_job_t *j = ctx;
    h2o_req_t *req = j->req;

    if (state == H2O_REQ_BODY_ABORTED)
        return; /* the request is disposed next, and the job with it */
    if (state == H2O_REQ_BODY_INVALID) {
        /* the answers h2o gives a buffered body (server/h2oerrors.c) */
        if (req->body_stream->status == 413)
            br_send_error(req, BR_E_TOO_LARGE, j->detail);
        else
            br_send_error_code(req, 400, "UNSUPPORTED", "bad request",
                               req->version >= 0x200 ? "body length differs from content-length" : "broken chunked-encoding");
        return;
    }
    if (piece.len > j->limit - j->len) {
        br_send_error(req, BR_E_TOO_LARGE, j->detail);
        return;
    }
    if (piece.len > j->cap - j->len) {
        size_t cap = j->cap != 0 ? j->cap : 16384;
        while (cap < j->len + piece.len)
            cap *= 2;
        j->cap = cap < j->limit ? cap : j->limit;
        j->buf = br_realloc(j->buf, j->cap);
    }
    if (piece.len != 0)
        memcpy(j->buf + j->len, piece.base, piece.len);
    j->len += piece.len;
    if (state == H2O_REQ_BODY_MORE) {
        h2o_req_proceed_body(req);
        return;
    }
    req->entity = h2o_iovec_init(j->buf != NULL ? j->buf : "", j->len);
    j->fn(req, &j->m);
}
#endif

/* Runs fn(req, m) with the request's body, of at most limit bytes, in
 * req->entity (see above); a longer one gets 413 with detail. */
static int with_body(h2o_req_t *req, const br_match_t *m, br_handler_fn fn, size_t limit, const char *detail)
{
#if BR_PATCHED_H2O
    h2o_req_body_stream_t *bs = req->body_stream;
    if (bs != NULL && req->entity.base != NULL) { /* read already, as a short body */
        if (req->entity.len > limit)
            return br_send_error(req, BR_E_TOO_LARGE, detail);
    } else if (bs != NULL) {
        if (bs->length != SIZE_MAX && bs->length > limit)
            return br_send_error(req, BR_E_TOO_LARGE, detail);
        body_job_t *j = h2o_mem_alloc_shared(&req->pool, sizeof(*j), on_body_job_dispose);
        *j = (body_job_t){.req = req, .m = *m, .fn = fn, .limit = limit, .detail = detail};
        if (bs->length != SIZE_MAX) {
            j->cap = bs->length;
            j->buf = br_malloc(j->cap);
        }
        h2o_req_read_body(req, on_body_piece, j);
        return 0;
    }
#else
    (void)limit;
    (void)detail;
#endif
    return fn(req, m);
}

static int handle_health(h2o_req_t *req, const br_match_t *m)
{
    (void)m;
    return br_health_handle(req, br_str(req->path.base, req->query_at != SIZE_MAX ? req->query_at : req->path.len));
}

/* The metrics' route group of each route. */
static const unsigned char route_groups[] = {
    [BR_ROUTE_BASE] = BR_MROUTE_BASE,          [BR_ROUTE_CATALOG] = BR_MROUTE_CATALOG,
    [BR_ROUTE_BLOB] = BR_MROUTE_BLOB,          [BR_ROUTE_UPLOAD_START] = BR_MROUTE_UPLOAD,
    [BR_ROUTE_UPLOAD] = BR_MROUTE_UPLOAD,      [BR_ROUTE_MANIFEST] = BR_MROUTE_MANIFEST,
    [BR_ROUTE_TAGS] = BR_MROUTE_TAGS,          [BR_ROUTE_REFERRERS] = BR_MROUTE_REFERRERS,
};

static int route(h2o_req_t *req, const br_match_t *unused);

int br_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    br_conns_request_started(req);
    /* A reload applies from the next request, also on a connection that is
     * already open and on a thread still blocked in poll when it happened. */
    br_snapshot_update(br_thread);
    br_request_id(req);
    if (req->version >= 0x200 && br_thread->metrics != NULL)
        br_conn_is_h2(req);
    br_add_header(req, "Docker-Distribution-API-Version", "registry/2.0", strlen("registry/2.0"));

    /* before a body is read: the check looks at the raw head in the input */
    if (is_smuggling_attempt(req)) {
        req->http1_is_persistent = 0;
        br_add_header_token(req, H2O_TOKEN_CONNECTION, "close", 5);
        return br_send_error_code(req, 400, "UNSUPPORTED", "bad request",
                                  "conflicting Content-Length / Transfer-Encoding headers");
    }

    /* h2o 2.2.5 bounds a request head only by its compile-time H2O_MAX_REQLEN;
     * the configured limit is applied here. */
    size_t head = req->path.len + req->method.len;
    for (size_t i = 0; i < req->headers.size; i++)
        head += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (head > br_cfg()->limits.header_size) {
        req->http1_is_persistent = 0;
        return br_send_error_code(req, 431, "SIZE_INVALID", "request header fields too large", NULL);
    }
#if BR_PATCHED_H2O
    /* A short body is read before anything answers (see "request bodies"). */
    if (req->body_stream != NULL && req->body_stream->length <= BR_SHORT_BODY && !is_upload_body(req))
        return with_body(req, &no_match, route, BR_SHORT_BODY, NULL);
#endif
    return route(req, NULL);
}

/* Everything after the checks of the head: routes and answers req. */
static int route(h2o_req_t *req, const br_match_t *unused)
{
    (void)unused;
    br_req_note_t *note = br_req_note(req);
    if (to_origin_form(req) != 0)
        return br_send_error_code(req, 400, "UNSUPPORTED", "bad request", "malformed request target");

    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    br_str_t path = br_str(req->path.base, plen);
    /* The probes answer before auth: a load balancer has no credentials. */
    if (br_cfg()->health.on_main && br_health_path(path)) {
        note->route = BR_MROUTE_HEALTH;
        if (!method_is(req, "GET") && !br_is_head(req))
            return handle_health(req, &no_match); /* its own 405 */
        return with_body(req, &no_match, handle_health, 0, "this request takes no body");
    }
    const char *token_path = br_cfg()->auth.token.path;
    if (token_path != NULL && token_path[0] != '\0' && br_str_eq(path, br_cstr(token_path))) {
        note->route = BR_MROUTE_TOKEN;
        if (method_is(req, "POST"))
            return with_body(req, &no_match, handle_token, BR_AUTH_FORM_MAX, "token request form too large");
        if (method_is(req, "GET"))
            return with_body(req, &no_match, handle_token, 0, "this request takes no body");
        return send_method_not_allowed(req, "GET, POST");
    }
    if (!(path.len >= 4 && memcmp(path.base, "/v2/", 4) == 0) && !br_str_eq(path, BR_STR("/v2")))
        return send_not_found(req);
    br_str_t rest = path.len > 4 ? br_str(path.base + 4, path.len - 4) : br_str("", 0);

    br_match_t m;
    int err = match_route(rest, &m);
    if (err == BR_E_NAME_INVALID)
        return br_send_error(req, BR_E_NAME_INVALID, NULL);
    if (err != 0)
        return send_not_found(req);
    note->route = route_groups[m.route];
    if (note->route == BR_MROUTE_UPLOAD)
        br_metrics_upload_in_flight(1); /* taken back by br_metrics_log */

    if (!method_allowed(req, routes[m.route].methods))
        return send_method_not_allowed(req, routes[m.route].methods);
    if (m.access == BR_ACCESS_NONE && m.route != BR_ROUTE_BASE) {
        if (method_is(req, "GET") || method_is(req, "HEAD"))
            m.access = BR_ACCESS_PULL;
        else if (method_is(req, "DELETE") && m.route != BR_ROUTE_UPLOAD)
            m.access = BR_ACCESS_DELETE;
        else
            m.access = BR_ACCESS_PUSH;
    }
    if (br_auth_enabled(br_snap()->auth) && authorize(req, &m) != 0)
        return 0;
    if (streams_body(req, &m))
        return routes[m.route].fn(req, &m);
    if (m.route == BR_ROUTE_MANIFEST && method_is(req, "PUT")) {
        uint64_t max = br_cfg()->limits.max_manifest_size;
        return with_body(req, &m, routes[m.route].fn, max > SIZE_MAX ? SIZE_MAX : (size_t)max, "manifest exceeds the size limit");
    }
    return with_body(req, &m, routes[m.route].fn, 0, "this request takes no body");
}

/* ---- JSON response buffers ---------------------------------------------------- */

/* Makes room for n more bytes and a NUL. */
static void buf_reserve(br_buf_t *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap == 0 ? 1024 : b->cap;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->base = br_realloc(b->base, cap);
    b->cap = cap;
}

void br_buf_append(br_buf_t *b, const char *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->base + b->len, p, n);
    b->len += n;
    b->base[b->len] = '\0';
}

void br_buf_printf(br_buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        br_buf_append(b, tmp, (size_t)n);
        return;
    }
    char *big = br_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    br_buf_append(b, big, (size_t)n);
    free(big);
}

void br_buf_json_str(br_buf_t *b, br_str_t s)
{
    /* Names and tags (the long listings) never need escaping: copy them. */
    size_t i = 0;
    while (i < s.len && (unsigned char)s.base[i] >= 0x20 && s.base[i] != '"' && s.base[i] != '\\')
        i++;
    if (i == s.len) {
        buf_reserve(b, s.len + 2);
        b->base[b->len++] = '"';
        memcpy(b->base + b->len, s.base, s.len);
        b->len += s.len;
        b->base[b->len++] = '"';
        b->base[b->len] = '\0';
        return;
    }
    size_t cap = 6 * s.len + 8;
    buf_reserve(b, cap + 2);
    b->base[b->len++] = '"';
    b->len += br_json_escape(b->base + b->len, cap, s);
    b->base[b->len++] = '"';
    b->base[b->len] = '\0';
}

h2o_iovec_t br_buf_to_pool(br_buf_t *b, h2o_req_t *req)
{
    h2o_iovec_t v = h2o_strdup(&req->pool, b->base != NULL ? b->base : "", b->len);
    free(b->base);
    memset(b, 0, sizeof(*b));
    return v;
}

h2o_iovec_t br_url_encode(h2o_req_t *req, br_str_t s)
{
    char *p = h2o_mem_alloc_pool(&req->pool, s.len * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            p[n++] = (char)c;
        } else {
            n += (size_t)sprintf(p + n, "%%%02X", c);
        }
    }
    p[n] = '\0';
    return h2o_iovec_init(p, n);
}
