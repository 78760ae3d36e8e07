/*
 * GET /v2/<name>/referrers/<digest>[?artifactType=...]: an OCI image index of
 * the manifests whose subject is <digest>, filtered by artifactType when
 * asked (and then saying so in OCI-Filters-Applied). A subject with no
 * referrers, or that does not exist, gets an empty index, as the spec asks.
 */
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

typedef struct st_ref_ctx_t {
    br_buf_t buf;
    size_t count;
    int filter;
    br_str_t artifact_type;
} ref_ctx_t;

static int on_referrer(void *p, const br_referrer_t *r)
{
    ref_ctx_t *c = p;
    if (c->filter && !br_str_eq(r->artifact_type, c->artifact_type))
        return 0;
    char dig[BR_DIGEST_MAX + 1];
    size_t n = br_digest_format(&r->digest, dig);
    if (c->count++ != 0)
        br_buf_append(&c->buf, ",", 1);
    br_buf_append(&c->buf, "{\"mediaType\":", 13);
    br_buf_json_str(&c->buf, r->media_type);
    br_buf_append(&c->buf, ",\"digest\":", 10);
    br_buf_json_str(&c->buf, br_str(dig, n));
    br_buf_printf(&c->buf, ",\"size\":%llu", (unsigned long long)r->size);
    if (r->artifact_type.len != 0) {
        br_buf_append(&c->buf, ",\"artifactType\":", 16);
        br_buf_json_str(&c->buf, r->artifact_type);
    }
    if (r->annotations.len != 0) {
        /* Stored as compact JSON object text by the manifest parser. */
        br_buf_append(&c->buf, ",\"annotations\":", 15);
        br_buf_append(&c->buf, r->annotations.base, r->annotations.len);
    }
    br_buf_append(&c->buf, "}", 1);
    return 0;
}

int br_handle_referrers(h2o_req_t *req, const br_match_t *m)
{
    br_digest_t d;
    if (br_digest_parse(&d, m->reference) != 0)
        return br_send_error(req, BR_E_DIGEST_INVALID, "invalid digest in path");
    ref_ctx_t c = {.filter = 0};
    int f = br_query_param(req, "artifactType", &c.artifact_type);
    if (f < 0)
        return br_send_error_code(req, 400, "UNSUPPORTED", "invalid artifactType parameter", NULL);
    c.filter = f == 1;
    br_buf_append(&c.buf, "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[", 86);
    int r = br_referrers_list(br_srv.store, m->name, &d, on_referrer, &c);
    if (r != 0 && r != BR_E_NAME_UNKNOWN) {
        free(c.buf.base);
        return br_send_error(req, r, NULL);
    }
    br_buf_append(&c.buf, "]}", 2);
    if (c.filter)
        br_add_header(req, "OCI-Filters-Applied", "artifactType", strlen("artifactType"));
    h2o_iovec_t body = br_buf_to_pool(&c.buf, req);
    br_send(req, 200, "application/vnd.oci.image.index.v1+json", body.base, body.len);
    return 0;
}
