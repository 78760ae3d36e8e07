/*
 * Unit tests for manifests/: br_manifest_parse on valid and invalid OCI and
 * Docker documents, br_manifest_type_known, br_accept_matches.
 */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tests/tap.h"
#include "manifests/manifest.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define D_A "sha256:" HEX_A
#define D_B "sha256:" HEX_B
#define D_C "sha256:" HEX_C
#define D_512 "sha512:" HEX_C HEX_C

#define MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar.gzip"

#define DESC(mt, d, sz) "{\"mediaType\":\"" mt "\",\"digest\":\"" d "\",\"size\":" #sz "}"
#define CONFIG DESC(MT_CONFIG, D_A, 7023)
#define LAYER DESC(MT_LAYER, D_B, 32654)

/* An OCI image manifest with extra top-level members spliced in. */
#define OCI_IMAGE(extra)                                                                                                       \
    "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"config\":" CONFIG ",\"layers\":[" LAYER "]" extra "}"

#define MAX (1 << 20)

static char err[512];

static int parse(br_manifest_t *m, const char *body, const char *ct)
{
    return br_manifest_parse(m, br_cstr(body), br_cstr(ct), MAX, err, sizeof(err));
}

static int str_is(br_str_t s, const char *want)
{
    return br_str_eq(s, br_cstr(want));
}

/* Expects body to be refused with BR_E_MANIFEST_INVALID and a message that
 * contains want (naming the field). */
static void invalid(const char *body, const char *ct, const char *want, const char *name)
{
    br_manifest_t m;
    err[0] = '\0';
    int ret = parse(&m, body, ct);
    is_int(ret, BR_E_MANIFEST_INVALID, "invalid: %s", name);
    printf("#   %s\n", err);
    ok(strstr(err, want) != NULL, "invalid: %s: message names it", name);
    if (strstr(err, want) == NULL)
        printf("#   message '%s', want it to contain '%s'\n", err, want);
    ok(m._json == NULL && m.blobs == NULL && m.manifests == NULL && m._strings == NULL, "invalid: %s: nothing left to free", name);
}

static void test_oci_image(void)
{
    br_manifest_t m;
    const char *body =
        "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"config\":" CONFIG ",\"layers\":[" LAYER "," DESC(
            MT_LAYER, D_C, 0) ",{\"mediaType\":\"" MT_LAYER "\",\"digest\":\"" D_512 "\",\"size\":16,\"urls\":[\"https://x/y\"],"
                              "\"annotations\":{\"k\":\"v\"}}]}";
    is_int(parse(&m, body, BR_MT_OCI_MANIFEST), 0, "oci image: parses");
    is_int(m.kind, BR_MANIFEST_IMAGE, "oci image: kind");
    ok(str_is(m.media_type, BR_MT_OCI_MANIFEST), "oci image: media type");
    ok(str_is(m.artifact_type, BR_MT_OCI_CONFIG), "oci image: artifact type is the config media type");
    ok(m.has_config, "oci image: has config");
    is_str(m.config.digest.hex, HEX_A, "oci image: config digest");
    is_int(m.config.size, 7023, "oci image: config size");
    ok(str_is(m.config.media_type, MT_CONFIG), "oci image: config media type");
    is_int(m.num_blobs, 3, "oci image: three layers");
    is_str(m.blobs[0].digest.hex, HEX_B, "oci image: layer 0 digest");
    is_int(m.blobs[0].size, 32654, "oci image: layer 0 size");
    is_int(m.blobs[1].size, 0, "oci image: layer 1 size 0");
    is_int(m.blobs[2].digest.alg, BR_ALG_SHA512, "oci image: sha512 layer");
    ok(!m.blobs[0].has_urls && m.blobs[2].has_urls, "oci image: urls flag only on the foreign layer");
    is_int(m.num_manifests, 0, "oci image: no child manifests");
    ok(!m.has_subject, "oci image: no subject");
    ok(m.annotations.len == 0, "oci image: no annotations");
    br_manifest_dispose(&m);
    ok(m._json == NULL && m.blobs == NULL, "dispose clears");
    br_manifest_dispose(&m); /* twice is harmless */

    /* No mediaType in the body: the Content-Type decides; without either,
     * the shape does. */
    body = "{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[]}";
    is_int(parse(&m, body, BR_MT_OCI_MANIFEST), 0, "oci image without mediaType: parses");
    ok(str_is(m.media_type, BR_MT_OCI_MANIFEST), "oci image without mediaType: from Content-Type");
    is_int(m.num_blobs, 0, "oci image: empty layers allowed");
    br_manifest_dispose(&m);
    is_int(parse(&m, body, "application/vnd.oci.image.manifest.v1+json; charset=utf-8"), 0, "Content-Type with parameters");
    ok(str_is(m.media_type, BR_MT_OCI_MANIFEST), "Content-Type with parameters: parameters dropped");
    br_manifest_dispose(&m);
    is_int(parse(&m, body, ""), 0, "oci image inferred from shape: parses");
    ok(str_is(m.media_type, BR_MT_OCI_MANIFEST), "oci image inferred from shape: type");
    br_manifest_dispose(&m);
    is_int(parse(&m, body, "application/json"), 0, "unrelated Content-Type: shape decides");
    ok(str_is(m.media_type, BR_MT_OCI_MANIFEST), "unrelated Content-Type: type");
    br_manifest_dispose(&m);

    /* A body mediaType with a non-manifest Content-Type is fine. */
    is_int(parse(&m, OCI_IMAGE(""), "application/octet-stream"), 0, "body mediaType, octet-stream Content-Type");
    br_manifest_dispose(&m);

    /* Unknown members are ignored, as the spec requires. */
    is_int(parse(&m, OCI_IMAGE(",\"x-vendor\":{\"a\":[1,2,{}]}"), ""), 0, "unknown members ignored");
    br_manifest_dispose(&m);

    /* Too large is a different error from invalid. */
    is_int(br_manifest_parse(&m, br_cstr(OCI_IMAGE("")), br_str("", 0), 100, err, sizeof(err)), BR_E_TOO_LARGE, "too large");
    ok(m._json == NULL, "too large: nothing allocated");
    size_t len = strlen(OCI_IMAGE(""));
    is_int(br_manifest_parse(&m, br_cstr(OCI_IMAGE("")), br_str("", 0), len, err, sizeof(err)), 0, "exactly max_size ok");
    br_manifest_dispose(&m);

    /* err may be NULL. */
    is_int(br_manifest_parse(&m, br_cstr("[]"), br_str("", 0), MAX, NULL, 0), BR_E_MANIFEST_INVALID, "NULL err buffer");
}

static void test_docker(void)
{
    br_manifest_t m;
    const char *body = "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_DOCKER_MANIFEST "\",\"config\":" DESC(
        MT_DOCKER_CONFIG, D_A, 1469) ",\"layers\":[" DESC(MT_DOCKER_LAYER, D_B, 2818413) ",{\"mediaType\":\"application/"
                                     "vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\"digest\":\"" D_C "\",\"size\":1,"
                                     "\"urls\":[\"https://mcr.microsoft.com/v2/x\"]}]}";
    is_int(parse(&m, body, BR_MT_DOCKER_MANIFEST), 0, "docker v2s2: parses");
    is_int(m.kind, BR_MANIFEST_IMAGE, "docker v2s2: kind");
    ok(str_is(m.media_type, BR_MT_DOCKER_MANIFEST), "docker v2s2: media type");
    ok(str_is(m.artifact_type, BR_MT_DOCKER_CONFIG), "docker v2s2: artifact type is the config media type");
    is_int(m.num_blobs, 2, "docker v2s2: two layers");
    ok(m.blobs[1].has_urls, "docker v2s2: foreign layer");
    br_manifest_dispose(&m);

    body = "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_DOCKER_LIST "\",\"manifests\":[{\"mediaType\":\"" BR_MT_DOCKER_MANIFEST
           "\",\"digest\":\"" D_A "\",\"size\":528,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
           "{\"mediaType\":\"" BR_MT_DOCKER_MANIFEST "\",\"digest\":\"" D_B "\",\"size\":528,\"platform\":{\"architecture\":"
           "\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}}]}";
    is_int(parse(&m, body, BR_MT_DOCKER_LIST), 0, "docker list: parses");
    is_int(m.kind, BR_MANIFEST_INDEX, "docker list: kind");
    ok(str_is(m.media_type, BR_MT_DOCKER_LIST), "docker list: media type");
    is_int(m.num_manifests, 2, "docker list: two entries");
    is_str(m.manifests[1].digest.hex, HEX_B, "docker list: entry digest");
    ok(!m.has_config && m.num_blobs == 0, "docker list: no config, no layers");
    br_manifest_dispose(&m);
}

static void test_oci_index(void)
{
    br_manifest_t m;
    const char *body = "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_INDEX "\",\"manifests\":[" DESC(
        BR_MT_OCI_MANIFEST, D_A, 7143) "," DESC(BR_MT_OCI_INDEX, D_B, 300) "],\"annotations\":{\"com.example.key1\":\"value1\"}}";
    is_int(parse(&m, body, BR_MT_OCI_INDEX), 0, "oci index: parses");
    is_int(m.kind, BR_MANIFEST_INDEX, "oci index: kind");
    is_int(m.num_manifests, 2, "oci index: two entries");
    ok(str_is(m.manifests[1].media_type, BR_MT_OCI_INDEX), "oci index: nested index entry");
    ok(str_is(m.annotations, "{\"com.example.key1\":\"value1\"}"), "oci index: annotations kept");
    br_manifest_dispose(&m);

    /* Inferred from the shape. */
    is_int(parse(&m, "{\"schemaVersion\":2,\"manifests\":[]}", ""), 0, "index inferred from shape: parses");
    ok(str_is(m.media_type, BR_MT_OCI_INDEX), "index inferred from shape: type");
    is_int(m.num_manifests, 0, "empty index");
    br_manifest_dispose(&m);

    /* An index may carry a subject and an artifactType (OCI 1.1). */
    body = "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_INDEX "\",\"artifactType\":\"application/vnd.example.sbom\","
           "\"manifests\":[" DESC(BR_MT_OCI_MANIFEST, D_A, 10) "],\"subject\":" DESC(BR_MT_OCI_MANIFEST, D_C, 99) "}";
    is_int(parse(&m, body, ""), 0, "index with subject: parses");
    ok(str_is(m.artifact_type, "application/vnd.example.sbom"), "index with subject: artifact type");
    ok(m.has_subject, "index with subject: has subject");
    is_str(m.subject.digest.hex, HEX_C, "index with subject: subject digest");
    br_manifest_dispose(&m);
}

static void test_artifacts(void)
{
    br_manifest_t m;
    const char *body;

    /* Artifact the 1.1 way: empty config, explicit artifactType, subject. */
    body = "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"artifactType\":\"application/vnd.example+type\","
           "\"config\":{\"mediaType\":\"" BR_MT_OCI_EMPTY "\",\"digest\":\"sha256:"
           "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\",\"size\":2,\"data\":\"e30=\"},"
           "\"layers\":[" DESC(BR_MT_OCI_EMPTY, D_A, 2) "],\"subject\":" DESC(BR_MT_OCI_MANIFEST, D_B,
                                                                                 1234) ",\"annotations\":{\"z\":\"1\","
                                                                                       "\"org.opencontainers.image.created\":"
                                                                                       "\"2023-01-02T03:04:05Z\"}}";
    is_int(parse(&m, body, BR_MT_OCI_MANIFEST), 0, "artifact with artifactType: parses");
    ok(str_is(m.artifact_type, "application/vnd.example+type"), "artifact with artifactType: artifact type");
    ok(m.has_subject, "artifact: has subject");
    is_str(m.subject.digest.hex, HEX_B, "artifact: subject digest");
    is_int(m.subject.size, 1234, "artifact: subject size");
    ok(str_is(m.subject.media_type, BR_MT_OCI_MANIFEST), "artifact: subject media type");
    ok(str_is(m.annotations, "{\"org.opencontainers.image.created\":\"2023-01-02T03:04:05Z\",\"z\":\"1\"}"),
       "artifact: annotations compact and sorted");
    br_manifest_dispose(&m);

    /* Artifact the pre-1.1 way: custom config type becomes the artifact type. */
    body = "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"config\":" DESC(
        "application/vnd.cncf.helm.config.v1+json", D_A, 100) ",\"layers\":[" DESC("application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                                                                                   D_B, 3000) "]}";
    is_int(parse(&m, body, ""), 0, "artifact with custom config type: parses");
    ok(str_is(m.artifact_type, "application/vnd.cncf.helm.config.v1+json"), "custom config type is the artifact type");
    br_manifest_dispose(&m);

    /* Empty config without artifactType: the empty media type stands in. */
    body = "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"config\":" DESC(BR_MT_OCI_EMPTY, D_A,
                                                                                            2) ",\"layers\":[" LAYER "]}";
    is_int(parse(&m, body, ""), 0, "empty config descriptor: parses");
    ok(str_is(m.artifact_type, BR_MT_OCI_EMPTY), "empty config descriptor: artifact type is the empty media type");
    br_manifest_dispose(&m);

    /* artifactType wins over the config type. */
    body = "{\"schemaVersion\":2,\"artifactType\":\"application/x.a\",\"config\":" DESC("application/x.b", D_A,
                                                                                          2) ",\"layers\":[]}";
    is_int(parse(&m, body, BR_MT_OCI_MANIFEST), 0, "artifactType and custom config: parses");
    ok(str_is(m.artifact_type, "application/x.a"), "artifactType wins over config type");
    br_manifest_dispose(&m);

    /* Empty annotations object. */
    is_int(parse(&m, OCI_IMAGE(",\"annotations\":{}"), ""), 0, "empty annotations: parses");
    ok(str_is(m.annotations, "{}"), "empty annotations: {}");
    br_manifest_dispose(&m);
}

static void test_invalid_json(void)
{
    invalid("", "", "empty", "empty body");
    invalid("not json", "", "invalid JSON", "not JSON");
    invalid(OCI_IMAGE("") " x", "", "invalid JSON", "trailing garbage");
    invalid(OCI_IMAGE("") "{}", "", "invalid JSON", "two documents");
    invalid("{\"schemaVersion\":2,\"schemaVersion\":2,\"manifests\":[]}", "", "duplicate", "duplicate top-level key");
    invalid("{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"config\":{\"mediaType\":\"" MT_CONFIG
            "\",\"digest\":\"" D_A "\",\"digest\":\"" D_B "\",\"size\":1},\"layers\":[]}",
            "", "duplicate", "duplicate nested key");
    invalid("[" OCI_IMAGE("") "]", "", "JSON object", "array at top level");
    invalid("\"x\"", "", "invalid JSON", "string at top level");
    invalid("{\"schemaVersion\":2,\"manifests\":[],\"x\":\"a\\u0000b\"}", "", "invalid JSON", "NUL escape in a string");
    invalid("{\"schemaVersion\":2,\"manifests\":[],\"x\":\"\xff\"}", "", "invalid JSON", "invalid UTF-8");
    invalid("{\"schemaVersion\":2,\"manifests\":[]", "", "invalid JSON", "truncated");

    /* A NUL byte inside the body (not an escape) must not end the document. */
    br_manifest_t m;
    const char body[] = "{\"schemaVersion\":2,\"manifests\":[]}\0garbage";
    is_int(br_manifest_parse(&m, br_str(body, sizeof(body) - 1), br_str("", 0), MAX, err, sizeof(err)), BR_E_MANIFEST_INVALID,
           "NUL byte then garbage after the document");
}

static void test_invalid_schema(void)
{
    const char *s1 = "Docker schema 1 manifests are not supported";
    invalid("{\"schemaVersion\":1,\"name\":\"x\",\"tag\":\"y\",\"fsLayers\":[]}", "", s1, "schemaVersion 1");
    invalid("{\"schemaVersion\":1,\"fsLayers\":[]}", BR_MT_DOCKER_V1_SIGNED, s1, "schema 1 signed Content-Type");
    invalid("{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_DOCKER_V1 "\",\"config\":" CONFIG ",\"layers\":[]}", "", s1,
            "schema 1 body mediaType");
    invalid("{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[]}", BR_MT_DOCKER_V1, s1, "schema 1 Content-Type");
    invalid("{\"schemaVersion\":\"2\",\"manifests\":[]}", "", "schemaVersion", "schemaVersion \"2\"");
    invalid("{\"schemaVersion\":2.0,\"manifests\":[]}", "", "schemaVersion", "schemaVersion 2.0");
    invalid("{\"schemaVersion\":3,\"manifests\":[]}", "", "schemaVersion", "schemaVersion 3");
    invalid("{\"manifests\":[]}", "", "schemaVersion: missing", "schemaVersion missing");

    invalid(OCI_IMAGE(""), BR_MT_OCI_INDEX, "does not match the Content-Type", "mediaType differs from Content-Type");
    invalid(OCI_IMAGE(""), BR_MT_DOCKER_MANIFEST, "does not match the Content-Type", "OCI body, Docker Content-Type");
    invalid("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.example+json\",\"config\":" CONFIG ",\"layers\":[]}", "",
            "unsupported manifest media type", "unknown body mediaType");
    invalid("{\"schemaVersion\":2,\"mediaType\":7,\"manifests\":[]}", "", "mediaType: must be a string", "mediaType not a string");
    invalid("{\"schemaVersion\":2,\"layers\":[]}", "", "mediaType: missing", "type cannot be determined");
    invalid("{\"schemaVersion\":2,\"config\":" CONFIG ",\"layers\":[]}", BR_MT_OCI_INDEX, "config: not allowed",
            "image shape sent as index");
    invalid("{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"config\":" CONFIG ",\"layers\":[],\"manifests\":[]}",
            "", "manifests: not allowed", "ambiguous manifest with manifests");
}

static void test_invalid_image(void)
{
#define IMG(cfg, layers) "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\"" cfg ",\"layers\":" layers "}"
#define WITH_LAYER(l) IMG(",\"config\":" CONFIG, "[" LAYER "," l "]")
    invalid(IMG("", "[]"), "", "config: missing", "missing config");
    invalid("{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"config\":" CONFIG "}", "", "layers: missing",
            "missing layers");
    invalid(IMG(",\"config\":" CONFIG, "{}"), "", "layers: must be an array", "layers not an array");
    invalid(IMG(",\"config\":[]", "[]"), "", "config: must be a descriptor", "config not an object");
    invalid(WITH_LAYER("7"), "", "layers[1]: must be a descriptor", "layer not an object");
    invalid(WITH_LAYER(DESC(MT_LAYER, "sha256:" HEX_A "0", 1)), "", "layers[1].digest: invalid digest", "digest too long");
    invalid(WITH_LAYER(DESC(MT_LAYER, "sha256:abc", 1)), "", "layers[1].digest: invalid digest 'sha256:abc'", "digest too short");
    invalid(WITH_LAYER(DESC(MT_LAYER, "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1)), "",
            "layers[1].digest", "uppercase hex digest");
    invalid(WITH_LAYER(DESC(MT_LAYER, "md5:d41d8cd98f00b204e9800998ecf8427e", 1)), "", "layers[1].digest", "unknown algorithm");
    invalid(WITH_LAYER(DESC(MT_LAYER, "sha384:" HEX_A, 1)), "", "layers[1].digest", "sha384 not accepted");
    invalid(WITH_LAYER(DESC(MT_LAYER, HEX_A, 1)), "", "layers[1].digest", "digest without algorithm");
    invalid(WITH_LAYER("{\"mediaType\":\"" MT_LAYER "\",\"size\":1}"), "", "layers[1].digest: missing", "missing digest");
    invalid(WITH_LAYER("{\"mediaType\":\"" MT_LAYER "\",\"digest\":5,\"size\":1}"), "", "layers[1].digest: must be a string",
            "digest not a string");
    invalid(WITH_LAYER(DESC(MT_LAYER, D_A, -1)), "", "layers[1].size: must not be negative", "negative size");
    invalid(WITH_LAYER(DESC(MT_LAYER, D_A, 1.5)), "", "layers[1].size: must be an integer", "float size");
    invalid(WITH_LAYER(DESC(MT_LAYER, D_A, 1e3)), "", "layers[1].size: must be an integer", "exponent size");
    invalid(WITH_LAYER(DESC(MT_LAYER, D_A, "12")), "", "layers[1].size: must be an integer", "string size");
    invalid(WITH_LAYER(DESC(MT_LAYER, D_A, 9223372036854775808)), "", "invalid JSON", "size beyond int64");
    invalid(WITH_LAYER(DESC(MT_LAYER, D_A, 99999999999999999999999)), "", "invalid JSON", "huge size");
    invalid(WITH_LAYER("{\"mediaType\":\"" MT_LAYER "\",\"digest\":\"" D_A "\"}"), "", "layers[1].size: missing", "missing size");
    invalid(WITH_LAYER("{\"digest\":\"" D_A "\",\"size\":1}"), "", "layers[1].mediaType: missing", "missing mediaType");
    invalid(WITH_LAYER(DESC("notatype", D_A, 1)), "", "layers[1].mediaType: invalid media type", "mediaType without slash");
    invalid(WITH_LAYER(DESC("a/b\\nX-Injected: 1", D_A, 1)), "", "layers[1].mediaType: invalid media type",
            "mediaType with a newline");
    invalid(WITH_LAYER("{\"mediaType\":\"" MT_LAYER "\",\"digest\":\"" D_A "\",\"size\":1,\"urls\":\"http://x\"}"), "",
            "layers[1].urls", "urls not an array");
    invalid(WITH_LAYER("{\"mediaType\":\"" MT_LAYER "\",\"digest\":\"" D_A "\",\"size\":1,\"annotations\":{\"a\":1}}"), "",
            "layers[1].annotations['a']", "descriptor annotation not a string");
    invalid(IMG(",\"config\":" DESC(MT_CONFIG, "sha256:xyz", 1), "[]"), "", "config.digest: invalid digest 'sha256:xyz'",
            "bad config digest");
    invalid(OCI_IMAGE(",\"subject\":{\"mediaType\":\"" BR_MT_OCI_MANIFEST "\",\"size\":1}"), "", "subject.digest: missing",
            "subject without digest");
    invalid(OCI_IMAGE(",\"subject\":\"" D_A "\""), "", "subject: must be a descriptor", "subject not an object");
    invalid(OCI_IMAGE(",\"annotations\":{\"a\":\"1\",\"b\":2}"), "", "annotations['b']: must be a string",
            "annotation value not a string");
    invalid(OCI_IMAGE(",\"annotations\":[]"), "", "annotations: must be an object", "annotations an array");
    invalid(OCI_IMAGE(",\"artifactType\":5"), "", "artifactType: must be a string", "artifactType not a string");
    invalid(OCI_IMAGE(",\"artifactType\":\"\""), "", "artifactType: invalid media type", "artifactType empty");
#undef WITH_LAYER
#undef IMG
}

static void test_invalid_index(void)
{
    const char *pre = "{\"schemaVersion\":2,\"mediaType\":\"" BR_MT_OCI_INDEX "\",";
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s\"manifests\":[%s,{\"mediaType\":\"%s\",\"size\":5}]}", pre, DESC(BR_MT_OCI_MANIFEST, D_A, 1),
             BR_MT_OCI_MANIFEST);
    invalid(buf, "", "manifests[1].digest: missing", "index entry missing digest");
    snprintf(buf, sizeof(buf), "%s\"manifests\":{}}", pre);
    invalid(buf, "", "manifests: must be an array", "manifests not an array");
    snprintf(buf, sizeof(buf), "%s\"x\":1}", pre);
    invalid(buf, "", "manifests: missing", "index without manifests");
    snprintf(buf, sizeof(buf), "%s\"manifests\":[],\"layers\":[]}", pre);
    invalid(buf, "", "layers: not allowed", "ambiguous index with layers");
    snprintf(buf, sizeof(buf), "%s\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,\"platform\":\"linux\"}]}",
             pre, BR_MT_OCI_MANIFEST, D_A);
    invalid(buf, "", "manifests[0].platform", "platform not an object");
}

static void test_error_preview(void)
{
    /* Client text in messages is cut and made printable. */
    char body[4096];
    char longdigest[1500];
    memset(longdigest, 'q', sizeof(longdigest) - 1);
    longdigest[sizeof(longdigest) - 1] = '\0';
    snprintf(body, sizeof(body), OCI_IMAGE(",\"subject\":{\"mediaType\":\"a/b\",\"digest\":\"%s\",\"size\":1}"), longdigest);
    invalid(body, "", "subject.digest: invalid digest 'qqqq", "long digest in message");
    ok(strstr(err, "...") != NULL && strlen(err) < 300, "long value shortened in message");
    invalid(OCI_IMAGE(",\"subject\":{\"mediaType\":\"a/b\",\"digest\":\"x\\u001by\",\"size\":1}"), "", "'x?y'",
            "control byte replaced in message");

    /* A small err buffer is filled, truncated and terminated. */
    br_manifest_t m;
    char small[8];
    memset(small, 'X', sizeof(small));
    br_manifest_parse(&m, br_cstr("[]"), br_str("", 0), MAX, small, sizeof(small));
    ok(memchr(small, '\0', sizeof(small)) != NULL, "small err buffer terminated");
}

static void test_type_known(void)
{
    ok(br_manifest_type_known(BR_STR(BR_MT_OCI_MANIFEST)), "known: oci manifest");
    ok(br_manifest_type_known(BR_STR(BR_MT_OCI_INDEX)), "known: oci index");
    ok(br_manifest_type_known(BR_STR(BR_MT_DOCKER_MANIFEST)), "known: docker manifest");
    ok(br_manifest_type_known(BR_STR(BR_MT_DOCKER_LIST)), "known: docker list");
    ok(!br_manifest_type_known(BR_STR(BR_MT_DOCKER_V1)), "not known: docker v1");
    ok(!br_manifest_type_known(BR_STR(BR_MT_OCI_EMPTY)), "not known: empty");
    ok(!br_manifest_type_known(BR_STR("")), "not known: empty string");
    ok(!br_manifest_type_known(BR_STR("application/vnd.oci.image.manifest.v1+jso")), "not known: prefix");
}

static void test_accept(void)
{
    br_str_t oci = BR_STR(BR_MT_OCI_MANIFEST), idx = BR_STR(BR_MT_OCI_INDEX), dck = BR_STR(BR_MT_DOCKER_MANIFEST);
#define ACC(a, mt) br_accept_matches(BR_STR(a), mt)
    ok(ACC("", oci), "accept: empty accepts all");
    ok(ACC("  ", oci), "accept: blank accepts all");
    ok(ACC(" , ,", oci), "accept: only separators accepts all");
    ok(ACC(BR_MT_OCI_MANIFEST, oci), "accept: exact");
    ok(!ACC(BR_MT_OCI_MANIFEST, idx), "accept: exact, other type refused");
    ok(ACC(BR_MT_DOCKER_MANIFEST ", " BR_MT_OCI_MANIFEST, oci), "accept: second of list");
    ok(ACC(BR_MT_DOCKER_MANIFEST "," BR_MT_OCI_MANIFEST, oci), "accept: list without spaces");
    ok(ACC(BR_MT_DOCKER_MANIFEST ",\t" BR_MT_OCI_MANIFEST " ;q=0.5", oci), "accept: with q=0.5 and whitespace");
    ok(ACC(" " BR_MT_OCI_MANIFEST " ; q=0.9 ; charset=utf-8 ", oci), "accept: several parameters");
    ok(!ACC(BR_MT_OCI_MANIFEST ";q=0", oci), "accept: q=0 refuses");
    ok(!ACC(BR_MT_OCI_MANIFEST "; Q=0.000", oci), "accept: Q=0.000 refuses");
    ok(!ACC(BR_MT_OCI_MANIFEST ";q=\"0\"", oci), "accept: quoted q=0 refuses");
    ok(ACC(BR_MT_OCI_MANIFEST ";q=0.001", oci), "accept: q=0.001 accepts");
    ok(ACC(BR_MT_OCI_MANIFEST ";q=bogus", oci), "accept: malformed q ignored");
    ok(ACC("*/*", oci), "accept: */*");
    ok(ACC("text/html, */*;q=0.8", dck), "accept: browser-like");
    ok(ACC("application/*", oci), "accept: application/*");
    ok(!ACC("text/*", oci), "accept: text/* refuses");
    ok(!ACC("application/json", oci), "accept: application/json refuses");
    ok(!ACC("*/*;q=0", oci), "accept: */*;q=0 refuses");
    ok(!ACC("*/*, " BR_MT_OCI_INDEX ";q=0", idx), "accept: specific q=0 beats */*");
    ok(ACC("*/*, " BR_MT_OCI_INDEX ";q=0", oci), "accept: specific q=0 leaves others");
    ok(ACC("*/*;q=0, " BR_MT_OCI_MANIFEST, oci), "accept: specific beats */*;q=0");
    ok(!ACC("application/*;q=0, */*", oci), "accept: application/*;q=0 beats */*");
    ok(ACC("APPLICATION/VND.OCI.IMAGE.MANIFEST.V1+JSON", oci), "accept: case-insensitive");
    ok(!ACC(BR_MT_OCI_MANIFEST "x", oci), "accept: longer type refuses");
    ok(!ACC("application/vnd.oci.image.manifest.v1", oci), "accept: prefix refuses");
    ok(ACC(BR_MT_DOCKER_MANIFEST "," BR_MT_DOCKER_LIST "," BR_MT_OCI_MANIFEST "," BR_MT_OCI_INDEX, idx),
       "accept: docker CLI style list");
    ok(!ACC(";q=1", oci), "accept: parameters without range refuse");
    ok(!ACC("/*", oci), "accept: '/*' is not a wildcard for all");
#undef ACC
}

int main(void)
{
    test_oci_image();
    test_docker();
    test_oci_index();
    test_artifacts();
    test_invalid_json();
    test_invalid_schema();
    test_invalid_image();
    test_invalid_index();
    test_error_preview();
    test_type_known();
    test_accept();
    return tap_done();
}
