/*
 * PUT / GET / HEAD / DELETE /v2/<name>/manifests/<reference>
 *
 * The body is validated by manifests/ and stored byte for byte (its digest is
 * that of the bytes as sent). Every blob an image references, and every
 * manifest an index references, must already be in the repository.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "manifests/manifest.h"
#include "server/server.h"

/* Resolves a reference: 1 = digest (in *d), 0 = tag, or an error code. */
static int parse_reference(br_str_t ref, br_digest_t *d)
{
    if (memchr(ref.base, ':', ref.len) != NULL)
        return br_digest_parse(d, ref) == 0 ? 1 : BR_E_DIGEST_INVALID;
    return br_tag_valid(ref) ? 0 : BR_E_TAG_INVALID;
}

/* GET, HEAD and DELETE only look a manifest up: one whose reference is
 * neither a tag nor a digest cannot exist, so it is unknown (404), as the
 * conformance suite expects. Only a PUT, which names a new manifest, is told
 * that its reference is invalid (400). */
static int send_no_such_reference(h2o_req_t *req)
{
    return br_send_error(req, BR_E_MANIFEST_UNKNOWN, "the reference is neither a valid tag nor a digest");
}

static int check_references(h2o_req_t *req, br_str_t repo, const br_manifest_t *man, br_digest_t *refs, size_t *num_refs)
{
    br_store_t *st = br_srv.store;
    char dig[BR_DIGEST_MAX + 1];
    uint64_t size;
    *num_refs = 0;
    if (man->kind == BR_MANIFEST_IMAGE) {
        if (man->has_config) {
            if (br_blob_stat(st, repo, &man->config.digest, &size) != 0) {
                br_digest_format(&man->config.digest, dig);
                br_send_error_code(req, 400, "MANIFEST_BLOB_UNKNOWN", "manifest references a blob unknown to the repository",
                                   br_pool_printf(req, "config %s", dig).base);
                return -1;
            }
            refs[(*num_refs)++] = man->config.digest;
        }
        for (size_t i = 0; i < man->num_blobs; i++) {
            if (man->blobs[i].has_urls)
                continue; /* non-distributable layer: lives elsewhere */
            if (br_blob_stat(st, repo, &man->blobs[i].digest, &size) != 0) {
                br_digest_format(&man->blobs[i].digest, dig);
                br_send_error_code(req, 400, "MANIFEST_BLOB_UNKNOWN", "manifest references a blob unknown to the repository",
                                   br_pool_printf(req, "layers[%zu] %s", i, dig).base);
                return -1;
            }
            refs[(*num_refs)++] = man->blobs[i].digest;
        }
    } else {
        for (size_t i = 0; i < man->num_manifests; i++) {
            br_manifest_rec_t rec;
            size_t n = br_digest_format(&man->manifests[i].digest, dig);
            if (br_manifest_get(st, repo, br_str(dig, n), &rec) != 0) {
                /* registry:2 answers MANIFEST_BLOB_UNKNOWN here too: the child
                 * manifest is a blob the index references. */
                br_send_error_code(req, 400, "MANIFEST_BLOB_UNKNOWN", "index references a manifest unknown to the repository",
                                   br_pool_printf(req, "manifests[%zu] %s", i, dig).base);
                return -1;
            }
            refs[(*num_refs)++] = man->manifests[i].digest;
        }
    }
    return 0;
}

/* 403 DENIED naming the immutable rule that refused what was asked of tag. */
static int send_immutable(h2o_req_t *req, const br_config_rule_t *rule, const char *glob, br_str_t tag, const char *what)
{
    return br_send_error(req, BR_E_DENIED,
                         br_pool_printf(req, "tag '%.*s' is immutable (immutable rule: repository '%s', tags '%s'): %s is refused",
                                        (int)tag.len, tag.base, rule->repository, glob, what)
                             .base);
}

typedef struct st_keep_tag_t {
    const br_config_rule_t *rule;
    const char *glob;
    char tag[BR_TAG_MAX + 1];
} keep_tag_t;

/* Called in the delete's write txn for each tag of the manifest. */
static int on_keep_tag(void *ctx, br_str_t tag)
{
    keep_tag_t *k = ctx;
    if ((k->glob = br_immutable_glob(k->rule, tag)) == NULL || tag.len > BR_TAG_MAX)
        return 0;
    memcpy(k->tag, tag.base, tag.len);
    k->tag[tag.len] = '\0';
    return 1;
}

static int handle_put(h2o_req_t *req, const br_match_t *m)
{
    br_digest_t ref_digest;
    int is_digest = parse_reference(m->reference, &ref_digest);
    if (is_digest < 0)
        return br_send_error(req, is_digest, "invalid reference");
    br_str_t body = req->entity.base != NULL ? br_str(req->entity.base, req->entity.len) : br_str("", 0);
    if (body.len > br_cfg()->limits.max_manifest_size)
        return br_send_error(req, BR_E_TOO_LARGE, "manifest exceeds the size limit");

    br_manifest_t man;
    char err[512];
    int r = br_manifest_parse(&man, body, br_req_header(req, H2O_TOKEN_CONTENT_TYPE), br_cfg()->limits.max_manifest_size,
                              err, sizeof(err));
    if (r != 0)
        return br_send_error(req, r, err);

    br_digest_t d;
    br_hash_buf(is_digest == 1 ? ref_digest.alg : BR_ALG_SHA256, body.base, body.len, &d);
    if (is_digest == 1 && !br_digest_eq(&d, &ref_digest)) {
        br_manifest_dispose(&man);
        return br_send_error(req, BR_E_DIGEST_INVALID, "manifest digest does not match the reference");
    }

    size_t max_refs = 1 + man.num_blobs + man.num_manifests, num_refs;
    br_digest_t *refs = h2o_mem_alloc_pool(&req->pool, sizeof(*refs) * max_refs);
    if (check_references(req, m->name, &man, refs, &num_refs) != 0) {
        br_manifest_dispose(&man);
        return 0;
    }

    const br_config_rule_t *rule = br_immutable_rule(br_cfg(), m->name);
    const char *glob = is_digest == 1 ? NULL : br_immutable_glob(rule, m->reference);
    br_manifest_put_t put = {
        .repo = m->name,
        .body = body,
        .alg = d.alg,
        .media_type = man.media_type,
        .tag = is_digest == 1 ? br_str("", 0) : m->reference,
        .refs = refs,
        .num_refs = num_refs,
        .subject = man.has_subject ? &man.subject.digest : NULL,
        .artifact_type = man.artifact_type,
        .annotations = man.annotations,
        .tag_immutable = glob != NULL,
    };
    br_digest_t stored;
    r = br_manifest_put(br_srv.store, &put, &stored);
    if (r == 0) {
        br_event_t e = {.action = BR_EVENT_PUSH, .repository = m->name, .digest = &stored, .size = body.len, .manifest = 1,
                        .media_type = h2o_strdup(&req->pool, man.media_type.base, man.media_type.len).base, .tag = put.tag};
        br_event_emit(req, &e);
    }
    if (r == 0 && man.has_subject) {
        char sub[BR_DIGEST_MAX + 1];
        size_t n = br_digest_format(&man.subject.digest, sub);
        br_add_header(req, "OCI-Subject", sub, n);
    }
    br_manifest_dispose(&man);
    if (r == BR_E_DENIED)
        return send_immutable(req, rule, glob, m->reference, "names another manifest; pushing a different one to it");
    if (r == BR_E_QUOTA)
        return br_send_quota_denied(req, m->name, &d, body.len);
    if (r != 0)
        return br_send_error(req, r, NULL);

    char dig[BR_DIGEST_MAX + 1];
    br_digest_format(&stored, dig);
    h2o_iovec_t loc = br_pool_printf(req, "/v2/%.*s/manifests/%s", (int)m->name.len, m->name.base, dig);
    br_add_header_token(req, H2O_TOKEN_LOCATION, loc.base, loc.len);
    br_add_digest_headers(req, &stored, 0);
    br_send(req, 201, NULL, "", 0);
    return 0;
}

/* All Accept header lines joined with ", ": containers/image sends one line
 * per media type, dockerd in no fixed order. */
static br_str_t accept_header(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    if (i == -1)
        return br_str("", 0);
    ssize_t next = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, i);
    if (next == -1)
        return br_str(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    br_buf_t b = {NULL, 0, 0};
    for (; i != -1; i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, i)) {
        if (b.len != 0)
            br_buf_append(&b, ", ", 2);
        br_buf_append(&b, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    }
    h2o_iovec_t v = br_buf_to_pool(&b, req);
    return br_str(v.base, v.len);
}

static int handle_get(h2o_req_t *req, const br_match_t *m)
{
    br_digest_t d;
    int r = parse_reference(m->reference, &d), by_digest = r == 1;
    if (r < 0)
        return send_no_such_reference(req);
    br_manifest_rec_t rec;
    if ((r = br_manifest_get(br_srv.store, m->name, m->reference, &rec)) != 0)
        return br_send_error(req, r, NULL);
    br_str_t mt = br_cstr(rec.media_type);
    /* Never convert: a client that does not accept the stored type is told so. */
    if (!br_accept_matches(accept_header(req), mt))
        return br_send_error_code(req, 404, "MANIFEST_UNKNOWN", "manifest unknown",
                                  br_pool_printf(req, "manifest is %s, which the Accept header does not allow", rec.media_type).base);
    int fd;
    uint64_t size;
    if ((r = br_blob_open(br_srv.store, m->name, &rec.digest, &fd, &size)) != 0)
        return br_send_error(req, r == BR_E_BLOB_UNKNOWN ? BR_E_MANIFEST_UNKNOWN : r, NULL);
    if (!br_is_head(req)) {
        br_event_t e = {.action = BR_EVENT_PULL, .repository = m->name, .digest = &rec.digest, .size = size, .manifest = 1,
                        .media_type = rec.media_type, .tag = by_digest ? br_str("", 0) : m->reference};
        br_event_emit(req, &e);
    }
    br_send_blob_fd(req, fd, size, &rec.digest, h2o_strdup(&req->pool, rec.media_type, mt.len).base, 0);
    return 0;
}

static int handle_delete(h2o_req_t *req, const br_match_t *m)
{
    if (!br_cfg()->storage.delete_enabled)
        return br_send_error(req, BR_E_UNSUPPORTED, "deletes are disabled on this registry");
    br_digest_t d;
    int r = parse_reference(m->reference, &d);
    if (r < 0)
        return send_no_such_reference(req);
    int by_digest = r == 1;
    keep_tag_t keep = {br_immutable_rule(br_cfg(), m->name), NULL, ""};
    if (r == 0 && (keep.glob = br_immutable_glob(keep.rule, m->reference)) != NULL)
        return send_immutable(req, keep.rule, keep.glob, m->reference, "deleting it");
    r = by_digest ? br_manifest_delete_unless(br_srv.store, m->name, &d, keep.rule != NULL ? on_keep_tag : NULL, &keep)
                  : br_tag_delete(br_srv.store, m->name, m->reference);
    if (r == BR_E_DENIED)
        return send_immutable(req, keep.rule, keep.glob, br_cstr(keep.tag), "deleting the manifest it names");
    if (r != 0)
        return br_send_error(req, r, NULL);
    br_event_t e = {.action = BR_EVENT_DELETE, .repository = m->name, .digest = by_digest ? &d : NULL, .manifest = 1,
                    .media_type = "", .tag = by_digest ? br_str("", 0) : m->reference};
    br_event_emit(req, &e);
    br_send(req, 202, NULL, "", 0);
    return 0;
}

int br_handle_manifest(h2o_req_t *req, const br_match_t *m)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT")))
        return handle_put(req, m);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE")))
        return handle_delete(req, m);
    return handle_get(req, m);
}
