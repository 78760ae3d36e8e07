/*
 * berth manifests: parsing and validation of OCI image manifests and indexes
 * and Docker v2 schema 2 manifests and manifest lists. Plain C over jansson;
 * no h2o, no storage: the caller checks that referenced blobs and manifests
 * exist, using the lists this module returns.
 *
 * JSON is parsed strictly (duplicate keys rejected, one top-level value). The
 * body is never re-serialized: its digest is that of the bytes as sent.
 */
#ifndef BR_MANIFEST_H
#define BR_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "common/br.h"

#define BR_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define BR_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define BR_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define BR_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define BR_MT_DOCKER_V1 "application/vnd.docker.distribution.manifest.v1+json"
#define BR_MT_DOCKER_V1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define BR_MT_OCI_EMPTY "application/vnd.oci.empty.v1+json"
/* Image config types: a config of any other type makes the manifest an artifact. */
#define BR_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define BR_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

typedef enum {
    BR_MANIFEST_IMAGE = 1, /* OCI image manifest or Docker v2s2 manifest: config + layers */
    BR_MANIFEST_INDEX = 2  /* OCI index or Docker manifest list: manifests */
} br_manifest_kind_t;

typedef struct st_br_descriptor_t {
    br_digest_t digest;
    uint64_t size;
    br_str_t media_type;  /* points into the parsed body; valid while the manifest lives */
    int has_urls;         /* non-distributable ("foreign") layer with urls: need not be present */
} br_descriptor_t;

typedef struct st_br_manifest_t {
    br_manifest_kind_t kind;
    br_str_t media_type;     /* effective media type: body's mediaType, or Content-Type when the body has none */
    br_str_t artifact_type;  /* artifactType, or for an image the config media type; may be empty for an index */
    int has_config;
    br_descriptor_t config;  /* images only */
    br_descriptor_t *blobs;  /* images: layers (config not included) */
    size_t num_blobs;
    br_descriptor_t *manifests; /* indexes: child manifests */
    size_t num_manifests;
    int has_subject;
    br_descriptor_t subject;
    br_str_t annotations;    /* compact JSON text of the "annotations" object, or empty */
    void *_json;             /* internal: parsed document */
    char *_strings;          /* internal: owned copies of strings above */
} br_manifest_t;

/* Parses and validates body as a manifest. content_type is the request's
 * Content-Type (may be empty). Checks: strict JSON object; size <= max_size
 * (else BR_E_TOO_LARGE); schemaVersion == 2; media type known (Docker schema 1
 * refused with a clear message); body mediaType, when present, equal to
 * content_type when that is a manifest type; descriptors with valid digest,
 * non-negative size and mediaType; index entries are manifests; layers and
 * config present for images. On failure returns BR_E_MANIFEST_INVALID (or
 * BR_E_TOO_LARGE) and writes a human message into err (NUL-terminated).
 * On success *m must be released with br_manifest_dispose().
 *
 * Details: when the body has no mediaType and the Content-Type is not a
 * manifest type, the shape decides ("manifests" array: OCI index; "config" and
 * "layers": OCI manifest). Content-Type parameters are ignored. An image with
 * "manifests", or an index with "config" or "layers", is refused as ambiguous.
 * Descriptor media types are checked for RFC 6838 syntax only: index entries
 * may name any type (the caller looks them up as manifests). On failure *m is
 * zeroed (nothing to dispose, disposing it anyway is harmless) and err holds
 * printable ASCII naming the field, e.g. "layers[2].digest: invalid digest ...".
 * Thread-safe; no global state. */
int br_manifest_parse(br_manifest_t *m, br_str_t body, br_str_t content_type, size_t max_size, char *err,
                      size_t errsize);
void br_manifest_dispose(br_manifest_t *m);

/* 1 when media_type names one of the four manifest types above. */
int br_manifest_type_known(br_str_t media_type);

/* 1 when the Accept header value (comma-separated list, with parameters and
 * wildcards, possibly several headers joined by ",") accepts media_type. An
 * empty Accept accepts everything. */
int br_accept_matches(br_str_t accept, br_str_t media_type);

#endif
