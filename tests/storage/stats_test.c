/*
 * Unit tests for br_store_stats (the figures behind the store metrics): the
 * table counts follow every write, the running byte total of the blob rows
 * follows puts, repeated puts, mounts and the collector's removals, an index
 * without the total gets it summed once at open, and br_store_check_writable
 * says yes on a writable store.
 */
#pragma GCC diagnostic ignored "-Wunused-function" /* util.h helpers this test does not need */
#include "tests/storage/util.h"
#include <unistd.h>
#include "storage/internal.h"
#include "tests/tap.h"

static char root[256];
static br_store_t *s;
static br_store_options_t opts = {0, 1ULL << 30, 0};

#define R(lit) BR_STR(lit)

static br_store_stats_t stats(void)
{
    br_store_stats_t st;
    int ret = br_store_stats(s, &st);
    if (ret != 0)
        printf("# br_store_stats: %s\n", br_strerror(ret));
    return st;
}

int main(void)
{
    make_root(root, sizeof(root), "stats");
    int ret = br_store_open(&s, root, &opts);
    is_int(ret, 0, "store open");
    if (ret != 0)
        return tap_done();

    br_store_stats_t st = stats();
    ok(st.repositories == 0 && st.blobs == 0 && st.blob_bytes == 0 && st.manifests == 0 && st.tags == 0 && st.uploads == 0,
       "a new store: all zero");
    is_int(br_store_check_writable(s), 0, "a new store is writable");

    br_digest_t a, b, m;
    static const char layer[] = "layer bytes, 27 of them...", config[] = "{\"config\":1}";
    is_int(br_blob_put(s, R("x/one"), BR_ALG_SHA256, layer, sizeof(layer) - 1, &a), 0, "put a layer");
    is_int(br_blob_put(s, R("x/one"), BR_ALG_SHA256, config, sizeof(config) - 1, &b), 0, "put a config");
    st = stats();
    is_int((int)st.blobs, 2, "2 blobs");
    is_int((int)st.blob_bytes, (int)(sizeof(layer) - 1 + sizeof(config) - 1), "their bytes");
    is_int((int)st.repositories, 1, "1 repository");
    is_int(br_blob_put(s, R("x/two"), BR_ALG_SHA256, layer, sizeof(layer) - 1, &a), 0, "the same layer in another repository");
    uint64_t size;
    is_int(br_blob_mount(s, R("x/three"), R("x/one"), &b, &size), 0, "a mount");
    st = stats();
    is_int((int)st.blobs, 2, "still 2 blobs (content is stored once)");
    is_int((int)st.blob_bytes, (int)(sizeof(layer) - 1 + sizeof(config) - 1), "still their bytes");
    is_int((int)st.repositories, 3, "3 repositories");

    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":"
                     "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:%s\",\"size\":%zu},\"layers\":[{\"mediaType\":"
                     "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:%s\",\"size\":%zu}]}",
                     b.hex, sizeof(config) - 1, a.hex, sizeof(layer) - 1);
    br_digest_t refs[2] = {b, a};
    br_manifest_put_t mp = {.repo = R("x/one"),
                            .body = br_str(body, (size_t)n),
                            .alg = BR_ALG_SHA256,
                            .media_type = R("application/vnd.oci.image.manifest.v1+json"),
                            .tag = R("v1"),
                            .refs = refs,
                            .num_refs = 2};
    is_int(br_manifest_put(s, &mp, &m), 0, "a manifest tagged v1");
    mp.tag = R("v2");
    is_int(br_manifest_put(s, &mp, &m), 0, "the same manifest tagged v2");
    st = stats();
    is_int((int)st.blobs, 3, "3 blobs (the manifest body is one)");
    is_int((int)st.blob_bytes, (int)(sizeof(layer) - 1 + sizeof(config) - 1) + n, "bytes include the manifest body");
    is_int((int)st.manifests, 1, "1 manifest");
    is_int((int)st.tags, 2, "2 tags");

    br_upload_t *u;
    is_int(br_upload_start(s, R("x/one"), &u), 0, "an upload session");
    is_int((int)stats().uploads, 1, "1 upload session");
    br_upload_cancel(u);
    br_upload_destroy(u);
    is_int((int)stats().uploads, 0, "none after cancel");
    is_int(br_tag_delete(s, R("x/one"), R("v2")), 0, "delete tag v2");
    is_int((int)stats().tags, 1, "1 tag");

    /* The byte total survives an index that lacks it: summed once at open. */
    uint64_t want = stats().blob_bytes;
    MDB_txn *txn;
    MDB_val k = {10, (void *)"blob_bytes"};
    br_store_wtxn_begin(s, &txn);
    is_int(mdb_del(txn, s->db_meta, &k, NULL), 0, "remove the byte total from the index");
    br_store_wtxn_end(&txn, 0);
    is_int((int)stats().blob_bytes, 0, "(it reads as 0 then)");
    br_store_close(s);
    is_int(br_store_open(&s, root, &opts), 0, "reopen");
    is_int((int)stats().blob_bytes, (int)want, "the total is summed again at open");

    /* The collector's removals: everything goes, and the figures with it. */
    is_int(br_manifest_delete(s, R("x/one"), &m), 0, "delete the manifest");
    br_blob_unlink(s, R("x/one"), &a);
    br_blob_unlink(s, R("x/one"), &b);
    br_blob_unlink(s, R("x/two"), &a);
    br_blob_unlink(s, R("x/three"), &b);
    sleep(2); /* past a grace of 1 s, whichever side of a second boundary */
    br_gc_options_t o = {.grace_s = 1, .wait = 1};
    br_gc_stats_t g;
    br_store_stats_t before = stats();
    is_int(br_store_gc(s, &o, &g), 0, "gc");
    st = stats();
    ok(g.blobs == 3, "gc removed the 3 blobs (%llu)", (unsigned long long)g.blobs);
    is_int((int)st.blobs, 0, "0 blobs");
    is_int((int)st.blob_bytes, 0, "0 bytes");
    ok(before.blob_bytes - st.blob_bytes == g.bytes, "the total dropped by what gc reclaimed");
    is_int((int)st.manifests, 0, "0 manifests");
    is_int((int)st.tags, 0, "0 tags");
    store_consistent(s, "gc");

    br_store_close(s);
    rm_tree(root);
    return tap_done();
}
