/*
 * Manifest parsing and validation (see manifest.h for the contract).
 *
 * The document is loaded once with jansson in strict mode and kept alive in
 * m->_json for the lifetime of the result, so every br_str_t we hand out can
 * point straight into jansson's strings instead of being copied. The only
 * string we own is the re-serialized "annotations" object (m->_strings).
 *
 * Validation follows the OCI image-spec (manifest.md, image-index.md,
 * descriptor.md) and Docker's v2 schema 2 document: unknown properties are
 * ignored as the specs require, but every property we rely on later (digests
 * and sizes the server checks for presence, the subject the referrers index is
 * keyed on) must be well formed, or the push is refused with a message that
 * names the field.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "manifests/manifest.h"

/* Parsing context: the caller's error buffer. Only the first error is kept,
 * because later ones are usually consequences of it. */
typedef struct st_parse_ctx_t {
    char *err;
    size_t errsize;
} parse_ctx_t;

static int fail(parse_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(parse_ctx_t *ctx, const char *fmt, ...)
{
    if (ctx->err != NULL && ctx->errsize != 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, ctx->errsize, fmt, ap);
        va_end(ap);
    }
    return BR_E_MANIFEST_INVALID;
}

/* A short, printable rendering of client-supplied text for error messages:
 * the message may end up in logs and in a JSON error body, so control bytes and
 * non-ASCII are replaced and long values cut. */
typedef struct st_preview_t {
    char s[80];
} preview_t;

static preview_t preview(br_str_t v)
{
    preview_t p;
    size_t max = sizeof(p.s) - 4, n = v.len < max ? v.len : max, i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v.base[i];
        p.s[i] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
    }
    if (v.len > max) {
        memcpy(p.s + i, "...", 3);
        i += 3;
    }
    p.s[i] = '\0';
    return p;
}

static br_str_t json_str(const json_t *v)
{
    return br_str(json_string_value(v), json_string_length(v));
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

static int is_restricted_name_char(unsigned char c, int first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return !first && strchr("!#$&-^_.+", c) != NULL && c != '\0';
}

/* RFC 6838 4.2 "type/subtype" (what the image-spec's JSON schema enforces for
 * mediaType), optionally followed by ";parameters" of printable ASCII: some
 * tools in the wild add parameters, and nothing here depends on them, but
 * control characters must never reach a header or a log line. */
static int media_type_valid(br_str_t mt)
{
    size_t i = 0, part_len = 0;
    int part = 0; /* 0: type, 1: subtype */
    for (; i < mt.len; i++) {
        unsigned char c = (unsigned char)mt.base[i];
        if (c == '/' && part == 0 && part_len != 0) {
            part = 1;
            part_len = 0;
            continue;
        }
        if (c == ';' && part == 1 && part_len != 0)
            break;
        if (!is_restricted_name_char(c, part_len == 0) || ++part_len > 127)
            return 0;
    }
    if (part != 1 || part_len == 0)
        return 0;
    for (; i < mt.len; i++)
        if ((unsigned char)mt.base[i] < 0x20 || (unsigned char)mt.base[i] >= 0x7f)
            return 0;
    return 1;
}

/* An optional string-valued media type field (artifactType). */
static int parse_opt_media_type(parse_ctx_t *ctx, const json_t *obj, const char *key, const char *path, br_str_t *out)
{
    const json_t *v = json_object_get(obj, key);
    *out = br_str("", 0);
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return fail(ctx, "%s%s%s: must be a string, not %s", path, *path ? "." : "", key, json_type_name(v));
    if (!media_type_valid(json_str(v)))
        return fail(ctx, "%s%s%s: invalid media type '%s'", path, *path ? "." : "", key, preview(json_str(v)).s);
    *out = json_str(v);
    return 0;
}

/* "annotations": an object whose values are all strings. */
static int check_annotations(parse_ctx_t *ctx, const json_t *v, const char *path)
{
    const char *key;
    json_t *value;
    if (!json_is_object(v))
        return fail(ctx, "%s: must be an object of strings, not %s", path, json_type_name(v));
    json_object_foreach((json_t *)v, key, value) {
        if (!json_is_string(value))
            return fail(ctx, "%s['%s']: must be a string, not %s", path, preview(br_cstr(key)).s, json_type_name(value));
    }
    return 0;
}

/* A content descriptor (descriptor.md). path names it in messages, e.g.
 * "layers[2]". Fields we do not use (platform, data, artifactType) are only
 * type-checked where a wrong type would mean a broken client. */
static int parse_descriptor(parse_ctx_t *ctx, const json_t *v, const char *path, br_descriptor_t *d)
{
    const json_t *mt, *digest, *size, *urls, *annotations, *platform;
    json_int_t n;

    memset(d, 0, sizeof(*d));
    if (!json_is_object(v))
        return fail(ctx, "%s: must be a descriptor object, not %s", path, json_type_name(v));

    if ((mt = json_object_get(v, "mediaType")) == NULL)
        return fail(ctx, "%s.mediaType: missing", path);
    if (!json_is_string(mt))
        return fail(ctx, "%s.mediaType: must be a string, not %s", path, json_type_name(mt));
    if (!media_type_valid(json_str(mt)))
        return fail(ctx, "%s.mediaType: invalid media type '%s'", path, preview(json_str(mt)).s);
    d->media_type = json_str(mt);

    if ((digest = json_object_get(v, "digest")) == NULL)
        return fail(ctx, "%s.digest: missing", path);
    if (!json_is_string(digest))
        return fail(ctx, "%s.digest: must be a string, not %s", path, json_type_name(digest));
    if (br_digest_parse(&d->digest, json_str(digest)) != 0)
        return fail(ctx, "%s.digest: invalid digest '%s' (want sha256:<64 hex> or sha512:<128 hex>, lowercase)", path,
                    preview(json_str(digest)).s);

    /* jansson refuses integers beyond json_int_t (int64) at load time, so an
     * integer here always fits; fractions and exponents arrive as reals. */
    if ((size = json_object_get(v, "size")) == NULL)
        return fail(ctx, "%s.size: missing", path);
    if (!json_is_integer(size))
        return fail(ctx, "%s.size: must be an integer, not %s", path, json_type_name(size));
    if ((n = json_integer_value(size)) < 0)
        return fail(ctx, "%s.size: must not be negative (%lld)", path, (long long)n);
    d->size = (uint64_t)n;

    if ((urls = json_object_get(v, "urls")) != NULL) {
        size_t i;
        json_t *u;
        if (!json_is_array(urls))
            return fail(ctx, "%s.urls: must be an array of strings, not %s", path, json_type_name(urls));
        json_array_foreach(urls, i, u) {
            if (!json_is_string(u))
                return fail(ctx, "%s.urls[%zu]: must be a string, not %s", path, i, json_type_name(u));
        }
        d->has_urls = json_array_size(urls) != 0;
    }
    if ((annotations = json_object_get(v, "annotations")) != NULL) {
        char sub[96];
        snprintf(sub, sizeof(sub), "%s.annotations", path);
        int ret = check_annotations(ctx, annotations, sub);
        if (ret != 0)
            return ret;
    }
    if ((platform = json_object_get(v, "platform")) != NULL && !json_is_object(platform))
        return fail(ctx, "%s.platform: must be an object, not %s", path, json_type_name(platform));
    return 0;
}

/* An array of descriptors under key; *out is allocated (possibly empty). */
static int parse_descriptor_array(parse_ctx_t *ctx, const json_t *doc, const char *key, br_descriptor_t **out, size_t *num)
{
    const json_t *arr = json_object_get(doc, key);
    size_t i;
    json_t *v;
    int ret;

    if (arr == NULL)
        return fail(ctx, "%s: missing", key);
    if (!json_is_array(arr))
        return fail(ctx, "%s: must be an array, not %s", key, json_type_name(arr));
    *out = br_calloc(json_array_size(arr), sizeof(**out));
    *num = json_array_size(arr);
    json_array_foreach(arr, i, v) {
        char path[64];
        snprintf(path, sizeof(path), "%s[%zu]", key, i);
        if ((ret = parse_descriptor(ctx, v, path, &(*out)[i])) != 0)
            return ret;
    }
    return 0;
}

/* The Content-Type without parameters and surrounding whitespace, matched
 * case-insensitively (media types are) against the manifest types. Returns the
 * canonical static spelling, or an empty string when it is not one of them. */
static br_str_t canonical_content_type(br_str_t ct, int *is_schema1)
{
    static const char *const known[] = {BR_MT_OCI_MANIFEST, BR_MT_OCI_INDEX, BR_MT_DOCKER_MANIFEST, BR_MT_DOCKER_LIST};
    size_t b = 0, e = ct.len;
    const char *semi;

    *is_schema1 = 0;
    if (ct.len == 0)
        return br_str("", 0);
    if ((semi = memchr(ct.base, ';', ct.len)) != NULL)
        e = semi - ct.base;
    while (b < e && (ct.base[b] == ' ' || ct.base[b] == '\t'))
        b++;
    while (e > b && (ct.base[e - 1] == ' ' || ct.base[e - 1] == '\t'))
        e--;
    br_str_t bare = br_str(ct.base + b, e - b);
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (bare.len == strlen(known[i]) && strncasecmp(bare.base, known[i], bare.len) == 0)
            return br_cstr(known[i]);
    if ((bare.len == strlen(BR_MT_DOCKER_V1) && strncasecmp(bare.base, BR_MT_DOCKER_V1, bare.len) == 0) ||
        (bare.len == strlen(BR_MT_DOCKER_V1_SIGNED) && strncasecmp(bare.base, BR_MT_DOCKER_V1_SIGNED, bare.len) == 0))
        *is_schema1 = 1;
    return br_str("", 0);
}

static int is_schema1_type(br_str_t mt)
{
    return br_str_eq(mt, BR_STR(BR_MT_DOCKER_V1)) || br_str_eq(mt, BR_STR(BR_MT_DOCKER_V1_SIGNED));
}

static const char schema1_msg[] =
    "Docker schema 1 manifests are not supported; push with a client that produces schema 2 or OCI";

/* Decides the effective media type (see manifest.h) and from it the kind. */
static int resolve_media_type(parse_ctx_t *ctx, const json_t *doc, br_str_t content_type, br_manifest_t *m)
{
    const json_t *body_mt = json_object_get(doc, "mediaType");
    int ct_schema1;
    br_str_t ct = canonical_content_type(content_type, &ct_schema1);

    if (ct_schema1)
        return fail(ctx, "%s", schema1_msg);
    if (body_mt != NULL) {
        if (!json_is_string(body_mt))
            return fail(ctx, "mediaType: must be a string, not %s", json_type_name(body_mt));
        m->media_type = json_str(body_mt);
        if (is_schema1_type(m->media_type))
            return fail(ctx, "%s", schema1_msg);
        if (ct.len != 0 && !br_str_eq(ct, m->media_type))
            return fail(ctx, "mediaType: '%s' does not match the Content-Type '%s'", preview(m->media_type).s,
                        preview(ct).s);
    } else if (ct.len != 0) {
        m->media_type = ct;
    } else if (json_is_array(json_object_get(doc, "manifests"))) {
        m->media_type = BR_STR(BR_MT_OCI_INDEX);
    } else if (json_object_get(doc, "config") != NULL && json_object_get(doc, "layers") != NULL) {
        m->media_type = BR_STR(BR_MT_OCI_MANIFEST);
    } else {
        return fail(ctx, "mediaType: missing, and neither the Content-Type '%s' nor the document's shape names a manifest type",
                    preview(content_type).s);
    }

    if (br_str_eq(m->media_type, BR_STR(BR_MT_OCI_MANIFEST)) || br_str_eq(m->media_type, BR_STR(BR_MT_DOCKER_MANIFEST)))
        m->kind = BR_MANIFEST_IMAGE;
    else if (br_str_eq(m->media_type, BR_STR(BR_MT_OCI_INDEX)) || br_str_eq(m->media_type, BR_STR(BR_MT_DOCKER_LIST)))
        m->kind = BR_MANIFEST_INDEX;
    else
        return fail(ctx, "mediaType: unsupported manifest media type '%s'", preview(m->media_type).s);
    return 0;
}

static int parse_image(parse_ctx_t *ctx, const json_t *doc, br_manifest_t *m)
{
    const json_t *config = json_object_get(doc, "config");
    int ret;

    /* A document that is both a manifest and an index could be read
     * differently by different clients (CVE-2021-41190); refuse it. */
    if (json_object_get(doc, "manifests") != NULL)
        return fail(ctx, "manifests: not allowed in an image manifest (%s)", preview(m->media_type).s);
    if (config == NULL)
        return fail(ctx, "config: missing");
    if ((ret = parse_descriptor(ctx, config, "config", &m->config)) != 0)
        return ret;
    m->has_config = 1;
    if ((ret = parse_descriptor_array(ctx, doc, "layers", &m->blobs, &m->num_blobs)) != 0)
        return ret;

    /* Referrers report an artifactType for every image manifest: the explicit
     * one, else the config descriptor's mediaType, whatever it is (distribution
     * spec, "Pushing Manifests with Subject"). */
    if (m->artifact_type.len == 0)
        m->artifact_type = m->config.media_type;
    return 0;
}

static int parse_index(parse_ctx_t *ctx, const json_t *doc, br_manifest_t *m)
{
    if (json_object_get(doc, "config") != NULL || json_object_get(doc, "layers") != NULL)
        return fail(ctx, "%s: not allowed in an index (%s)", json_object_get(doc, "config") != NULL ? "config" : "layers",
                    preview(m->media_type).s);
    return parse_descriptor_array(ctx, doc, "manifests", &m->manifests, &m->num_manifests);
}

static int parse_document(parse_ctx_t *ctx, const json_t *doc, br_str_t content_type, br_manifest_t *m)
{
    const json_t *sv = json_object_get(doc, "schemaVersion"), *subject, *annotations;
    int ret;

    if (!json_is_object(doc))
        return fail(ctx, "manifest must be a JSON object, not %s", json_type_name(doc));
    /* Schema 1 first, so its users get the explanation instead of a complaint
     * about some field schema 1 spells differently. */
    if (json_is_integer(sv) && json_integer_value(sv) == 1)
        return fail(ctx, "%s", schema1_msg);
    if (sv == NULL)
        return fail(ctx, "schemaVersion: missing");
    if (!json_is_integer(sv))
        return fail(ctx, "schemaVersion: must be the integer 2, not %s", json_type_name(sv));
    if (json_integer_value(sv) != 2)
        return fail(ctx, "schemaVersion: must be 2, not %lld", (long long)json_integer_value(sv));
    if ((ret = resolve_media_type(ctx, doc, content_type, m)) != 0)
        return ret;
    if ((ret = parse_opt_media_type(ctx, doc, "artifactType", "", &m->artifact_type)) != 0)
        return ret;
    if ((ret = m->kind == BR_MANIFEST_IMAGE ? parse_image(ctx, doc, m) : parse_index(ctx, doc, m)) != 0)
        return ret;

    if ((subject = json_object_get(doc, "subject")) != NULL) {
        if ((ret = parse_descriptor(ctx, subject, "subject", &m->subject)) != 0)
            return ret;
        m->has_subject = 1;
    }
    if ((annotations = json_object_get(doc, "annotations")) != NULL) {
        if ((ret = check_annotations(ctx, annotations, "annotations")) != 0)
            return ret;
        m->_strings = json_dumps(annotations, JSON_COMPACT | JSON_SORT_KEYS);
        if (m->_strings == NULL) {
            fprintf(stderr, "berth: out of memory serializing manifest annotations\n");
            abort();
        }
        m->annotations = br_cstr(m->_strings);
    }
    return 0;
}

int br_manifest_parse(br_manifest_t *m, br_str_t body, br_str_t content_type, size_t max_size, char *err, size_t errsize)
{
    parse_ctx_t ctx = {err, errsize};
    json_error_t jerr;
    json_t *doc;
    int ret;

    memset(m, 0, sizeof(*m));
    if (err != NULL && errsize != 0)
        err[0] = '\0';
    if (body.len > max_size) {
        if (err != NULL && errsize != 0)
            snprintf(err, errsize, "manifest is %zu bytes, more than the limit of %zu", body.len, max_size);
        ret = BR_E_TOO_LARGE;
        goto Exit;
    }
    if (body.len == 0) {
        ret = fail(&ctx, "manifest body is empty");
        goto Exit;
    }
    /* Default flags already refuse trailing data after the value, "\u0000" in
     * strings and invalid UTF-8; integers beyond int64 fail to load. */
    doc = json_loadb(body.base, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        ret = fail(&ctx, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        goto Exit;
    }
    m->_json = doc;
    ret = parse_document(&ctx, doc, content_type, m);

Exit:
    if (ret != 0) {
        /* jansson's "near '...'" quotes raw input; keep the message printable. */
        for (char *p = err; p != NULL && errsize != 0 && *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        br_manifest_dispose(m);
    }
    return ret;
}

void br_manifest_dispose(br_manifest_t *m)
{
    json_decref((json_t *)m->_json);
    free(m->_strings); /* from json_dumps, i.e. jansson's default malloc */
    free(m->blobs);
    free(m->manifests);
    memset(m, 0, sizeof(*m));
}

int br_manifest_type_known(br_str_t media_type)
{
    return br_str_eq(media_type, BR_STR(BR_MT_OCI_MANIFEST)) || br_str_eq(media_type, BR_STR(BR_MT_OCI_INDEX)) ||
           br_str_eq(media_type, BR_STR(BR_MT_DOCKER_MANIFEST)) || br_str_eq(media_type, BR_STR(BR_MT_DOCKER_LIST));
}
