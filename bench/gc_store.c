/*
 * Builds a large store for the garbage collection measurement (bench/gc.sh)
 * directly through the storage API, much faster than through HTTP:
 *
 *   gc_store ROOT MANIFESTS LAYERS_PER_MANIFEST REPOS LIVE_LIST
 *
 * Each manifest has a config and LAYERS_PER_MANIFEST layers of its own (1-4
 * KiB of pseudo-random bytes), is tagged, and lives in one of REPOS
 * repositories. Every other manifest is deleted again, so half the blobs are
 * garbage. LIVE_LIST gets "repo tag manifest-digest layer-digest" for each
 * live manifest (what the load generator fetches). fsync is off: the store
 * is for a measurement, not for keeping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storage/storage.h"

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: gc_store ROOT MANIFESTS LAYERS_PER_MANIFEST REPOS LIVE_LIST\n");
        return 2;
    }
    const char *root = argv[1];
    long nman = atol(argv[2]), nlayers = atol(argv[3]), nrepos = atol(argv[4]);
    FILE *live = fopen(argv[5], "w");
    br_store_options_t opts = {0, 0, 0};
    br_store_t *s;
    int err;
    if (live == NULL || nman <= 0 || nlayers <= 0 || nlayers > 64 || nrepos <= 0) {
        fprintf(stderr, "gc_store: bad arguments\n");
        return 2;
    }
    if ((err = br_store_open(&s, root, &opts)) != 0) {
        fprintf(stderr, "gc_store: %s: %s\n", root, br_strerror(err));
        return 1;
    }
    static unsigned char buf[4096];
    char body[16384], repo[32], tag[32], dg[BR_DIGEST_MAX + 1], ldg[BR_DIGEST_MAX + 1];
    br_digest_t refs[65], man;
    for (long m = 0; m < nman; m++) {
        snprintf(repo, sizeof(repo), "bench/r%03ld", m % nrepos);
        snprintf(tag, sizeof(tag), "t%ld", m);
        size_t o = 0;
        for (long l = 0; l <= nlayers; l++) {
            size_t n = 1024 + (size_t)((m * 131 + l * 7919) % 3072);
            fill(buf, n, (uint64_t)m << 8 | (uint64_t)l);
            if ((err = br_blob_put(s, br_cstr(repo), BR_ALG_SHA256, buf, n, &refs[l])) != 0) {
                fprintf(stderr, "gc_store: blob: %s\n", br_strerror(err));
                return 1;
            }
            br_digest_format(&refs[l], dg);
            if (l == 0)
                o += (size_t)snprintf(body + o, sizeof(body) - o,
                                      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                                      "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
                                      "\"size\":%zu},\"layers\":[",
                                      dg, n);
            else
                o += (size_t)snprintf(body + o, sizeof(body) - o,
                                      "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":%zu}",
                                      l > 1 ? "," : "", dg, n);
            if (l == 1)
                memcpy(ldg, dg, sizeof(dg));
        }
        o += (size_t)snprintf(body + o, sizeof(body) - o, "]}");
        br_manifest_put_t p = {
            .repo = br_cstr(repo),
            .body = br_str(body, o),
            .alg = BR_ALG_SHA256,
            .media_type = BR_STR("application/vnd.oci.image.manifest.v1+json"),
            .tag = br_cstr(tag),
            .refs = refs,
            .num_refs = (size_t)nlayers + 1,
        };
        if ((err = br_manifest_put(s, &p, &man)) != 0) {
            fprintf(stderr, "gc_store: manifest: %s\n", br_strerror(err));
            return 1;
        }
        if (m % 2 == 1) {
            if ((err = br_manifest_delete(s, br_cstr(repo), &man)) != 0) {
                fprintf(stderr, "gc_store: delete: %s\n", br_strerror(err));
                return 1;
            }
        } else {
            br_digest_format(&man, dg);
            fprintf(live, "%s %s %s %s\n", repo, tag, dg, ldg);
        }
        if (m % 1000 == 999)
            fprintf(stderr, "\rgc_store: %ld/%ld manifests", m + 1, nman);
    }
    fprintf(stderr, "\n");
    fclose(live);
    br_store_close(s);
    return 0;
}
