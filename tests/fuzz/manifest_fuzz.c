/*
 * Fuzz target: br_manifest_parse and br_accept_matches.
 *
 * Input layout: the first byte picks the Content-Type from a small table (so
 * the mediaType/Content-Type rules get exercised); the rest is the body. The
 * whole input is also tried as an Accept header. On success the result's
 * invariants are checked, so a parse that "succeeds" with garbage aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "manifests/manifest.h"
#include "tests/fuzz/fuzz.h"

static const char *const content_types[] = {
    "",
    BR_MT_OCI_MANIFEST,
    BR_MT_OCI_INDEX,
    BR_MT_DOCKER_MANIFEST,
    BR_MT_DOCKER_LIST,
    BR_MT_DOCKER_V1_SIGNED,
    "application/json",
    BR_MT_OCI_MANIFEST "; charset=utf-8",
};

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "manifest_fuzz: invariant violated: %s\n", what);
        abort();
    }
}

static void check_descriptor(const br_descriptor_t *d)
{
    char buf[BR_DIGEST_MAX + 1];
    br_digest_t again;
    size_t n = br_digest_format(&d->digest, buf);
    check(br_digest_parse(&again, br_str(buf, n)) == 0 && br_digest_eq(&again, &d->digest), "descriptor digest round trip");
    check(d->size <= (uint64_t)INT64_MAX, "descriptor size fits int64");
    check(d->media_type.len != 0 && memchr(d->media_type.base, '\n', d->media_type.len) == NULL, "descriptor media type");
}

static void check_result(const br_manifest_t *m)
{
    check(br_manifest_type_known(m->media_type), "effective media type is a manifest type");
    check(m->kind == BR_MANIFEST_IMAGE || m->kind == BR_MANIFEST_INDEX, "kind");
    if (m->kind == BR_MANIFEST_IMAGE) {
        check(m->has_config && m->num_manifests == 0, "image has config, no children");
        check_descriptor(&m->config);
    } else {
        check(!m->has_config && m->num_blobs == 0, "index has children only");
    }
    for (size_t i = 0; i < m->num_blobs; i++)
        check_descriptor(&m->blobs[i]);
    for (size_t i = 0; i < m->num_manifests; i++)
        check_descriptor(&m->manifests[i]);
    if (m->has_subject)
        check_descriptor(&m->subject);
    if (m->annotations.len != 0) {
        json_t *a = json_loadb(m->annotations.base, m->annotations.len, JSON_REJECT_DUPLICATES, NULL);
        check(json_is_object(a), "annotations re-parse as an object");
        json_decref(a);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    br_manifest_t m;

    if (size == 0)
        return 0;
    br_str_t ct = br_cstr(content_types[data[0] % (sizeof(content_types) / sizeof(content_types[0]))]);
    br_str_t body = br_str((const char *)data + 1, size - 1);
    int ret = br_manifest_parse(&m, body, ct, 1 << 20, err, sizeof(err));
    if (ret == 0) {
        check_result(&m);
        br_manifest_dispose(&m);
    } else {
        check(ret == BR_E_MANIFEST_INVALID || ret == BR_E_TOO_LARGE, "error code");
        check(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0', "error message present");
        check(m._json == NULL && m.blobs == NULL && m.manifests == NULL && m._strings == NULL, "failure frees everything");
    }

    br_str_t accept = br_str((const char *)data, size);
    br_accept_matches(accept, BR_STR(BR_MT_OCI_MANIFEST));
    br_accept_matches(accept, BR_STR(BR_MT_DOCKER_LIST));
    /* An empty or wildcard-only header accepts any type at all. */
    check(br_accept_matches(BR_STR(""), accept), "empty Accept accepts");
    check(br_accept_matches(BR_STR(" */* "), accept), "*/* accepts");
    return 0;
}
