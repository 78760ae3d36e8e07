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

/* A manifest put on an I/O thread (its blob write and index commit sync). */
typedef struct st_put_job_t {
    br_io_job_t io;
    br_manifest_put_t put; /* its strings point into the job */
    const br_config_rule_t *rule; /* immutable rule and glob: in the job's snapshot */
    const char *glob;
    int err, has_subject;
    br_digest_t subject, stored, digest; /* digest: the body's, as computed before the put */
    br_digest_t refs[]; /* then the strings */
} put_job_t;

static void do_put(br_io_job_t *io)
{
    put_job_t *j = (put_job_t *)io;
    j->err = br_manifest_put(br_srv.store, &j->put, &j->stored);
}

static void on_put_done(br_io_job_t *io, h2o_req_t *req)
{
    put_job_t *j = (put_job_t *)io;
    br_str_t repo = j->put.repo;
    if (j->err == BR_E_DENIED) {
        send_immutable(req, j->rule, j->glob, j->put.tag, "names another manifest; pushing a different one to it");
        return;
    }
    if (j->err == BR_E_QUOTA) {
        br_send_quota_denied(req, repo, &j->digest, j->put.body.len);
        return;
    }
    if (j->err != 0) {
        br_send_error(req, j->err, NULL);
        return;
    }
    br_event_t e = {.action = BR_EVENT_PUSH, .repository = repo, .digest = &j->stored, .size = j->put.body.len, .manifest = 1,
                    .media_type = h2o_strdup(&req->pool, j->put.media_type.base, j->put.media_type.len).base, .tag = j->put.tag};
    br_event_emit(req, &e);
    if (j->has_subject) {
        char sub[BR_DIGEST_MAX + 1];
        size_t n = br_digest_format(&j->subject, sub);
        br_add_header(req, "OCI-Subject", sub, n);
    }
    char dig[BR_DIGEST_MAX + 1];
    br_digest_format(&j->stored, dig);
    h2o_iovec_t loc = br_pool_printf(req, "/v2/%.*s/manifests/%s", (int)repo.len, repo.base, dig);
    br_add_header_token(req, H2O_TOKEN_LOCATION, loc.base, loc.len);
    br_add_digest_headers(req, &j->stored, 0);
    br_send(req, 201, NULL, "", 0);
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
    br_str_t tag = is_digest == 1 ? br_str("", 0) : m->reference;
    /* The job owns copies of everything the put reads: the request may be
     * gone before it runs. */
    put_job_t *j = br_calloc(1, sizeof(*j) + num_refs * sizeof(br_digest_t) + m->name.len + body.len + man.media_type.len +
                                    tag.len + man.artifact_type.len + man.annotations.len);
    char *cur = (char *)(j->refs + num_refs);
    j->io.run = do_put;
    j->io.done = on_put_done;
    j->io.destroy = br_io_free;
    memcpy(j->refs, refs, num_refs * sizeof(br_digest_t));
    j->has_subject = man.has_subject;
    if (man.has_subject)
        j->subject = man.subject.digest;
    j->rule = rule;
    j->glob = glob;
    j->digest = d;
    j->put = (br_manifest_put_t){
        .repo = br_io_copy(&cur, m->name),
        .body = br_io_copy(&cur, body),
        .alg = d.alg,
        .media_type = br_io_copy(&cur, man.media_type),
        .tag = br_io_copy(&cur, tag),
        .refs = j->refs,
        .num_refs = num_refs,
        .subject = man.has_subject ? &j->subject : NULL,
        .artifact_type = br_io_copy(&cur, man.artifact_type),
        .annotations = br_io_copy(&cur, man.annotations),
        .tag_immutable = glob != NULL,
    };
    br_manifest_dispose(&man);
    br_io_submit(req, &j->io);
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

/* A manifest or tag delete on an I/O thread (its index commit syncs). */
typedef struct st_del_job_t {
    br_io_job_t io;
    br_str_t repo, reference; /* in buf */
    int by_digest, err;
    br_digest_t digest;
    keep_tag_t keep; /* its rule is in the job's snapshot */
    char buf[];
} del_job_t;

static void do_delete(br_io_job_t *io)
{
    del_job_t *j = (del_job_t *)io;
    j->err = j->by_digest ? br_manifest_delete_unless(br_srv.store, j->repo, &j->digest, j->keep.rule != NULL ? on_keep_tag : NULL,
                                                      &j->keep)
                          : br_tag_delete(br_srv.store, j->repo, j->reference);
}

static void on_delete_done(br_io_job_t *io, h2o_req_t *req)
{
    del_job_t *j = (del_job_t *)io;
    if (j->err == BR_E_DENIED) {
        send_immutable(req, j->keep.rule, j->keep.glob, br_cstr(j->keep.tag), "deleting the manifest it names");
        return;
    }
    if (j->err != 0) {
        br_send_error(req, j->err, NULL);
        return;
    }
    br_event_t e = {.action = BR_EVENT_DELETE, .repository = j->repo, .digest = j->by_digest ? &j->digest : NULL, .manifest = 1,
                    .media_type = "", .tag = j->by_digest ? br_str("", 0) : j->reference};
    br_event_emit(req, &e);
    br_send(req, 202, NULL, "", 0);
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
    del_job_t *j = br_calloc(1, sizeof(*j) + m->name.len + m->reference.len);
    char *cur = j->buf;
    j->io.run = do_delete;
    j->io.done = on_delete_done;
    j->io.destroy = br_io_free;
    j->repo = br_io_copy(&cur, m->name);
    j->reference = br_io_copy(&cur, m->reference);
    j->by_digest = by_digest;
    j->digest = d;
    j->keep = keep;
    br_io_submit(req, &j->io);
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
