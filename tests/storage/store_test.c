/*
 * Unit tests for storage/: blobs, links and their reverse (holders), mounts
 * (from a repository, and automatic ones through a predicate), uploads (incl.
 * restart, truncation, purge), manifests, tags, referrers, listings, exact
 * reference counts (checked after every operation, both one by one and by
 * br_store_verify recomputing them from the whole index), and the schema 1 ->
 * 2 upgrade (with raw LMDB edits of a closed store, for states no API makes).
 */
#include "tests/storage/util.h"
#include <dirent.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/time.h>
#include "storage/internal.h"
#include "tests/tap.h"

static char root[256];
static br_store_t *s;
static br_store_options_t opts = {.fsync = 1, .map_size = 1ULL << 30};

#define R(lit) BR_STR(lit)

static void reopen(void)
{
    br_store_close(s);
    s = NULL;
    int ret = br_store_open(&s, root, &opts);
    if (ret != 0) {
        printf("Bail out! reopen: %s\n", br_strerror(ret));
        exit(1);
    }
}

/* The whole index must agree with itself after every operation. */
static long long refs(const br_digest_t *d)
{
    uint64_t n;
    return br_blob_refcount(s, d, &n) == 0 ? (long long)n : -1;
}

static br_str_t dstr(const br_digest_t *d, char *buf)
{
    return br_str(buf, br_digest_format(d, buf));
}

/* A mount predicate that accepts one repository (or none) and notes every
 * repository it is offered, comma-separated, in index order. */
typedef struct {
    const char *accept;
    char seen[1024];
} pick_t;

static int on_pick(void *ctx, br_str_t repo)
{
    pick_t *p = ctx;
    size_t n = strlen(p->seen);
    snprintf(p->seen + n, sizeof(p->seen) - n, "%s%.*s", n != 0 ? "," : "", (int)repo.len, repo.base);
    return p->accept != NULL && br_str_eq(repo, br_cstr(p->accept));
}

/* The repositories holding d, as br_blob_mount_any offers them to a
 * predicate that refuses all ("error" if the mount did not fail cleanly). */
static const char *holders(const br_digest_t *d, char *buf, size_t size)
{
    pick_t p = {NULL, ""};
    int ret = br_blob_mount_any(s, R("never"), d, on_pick, &p, NULL);
    snprintf(buf, size, "%s", ret == BR_E_BLOB_UNKNOWN ? p.seen : "error");
    return buf;
}

static int upload_exists_on_disk(const char *uuid)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/uploads/%s", root, uuid);
    return stat(path, &st) == 0;
}

static long long upload_file_size(const char *uuid)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/uploads/%s", root, uuid);
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* ---- blobs ------------------------------------------------------------------ */

static void test_blobs(void)
{
    br_digest_t d, want = digest_of(BR_ALG_SHA256, "hello", 5), unknown = digest_of(BR_ALG_SHA256, "nope", 4);
    uint64_t size = 0;
    char path[4096], buf[16], hb[1024];
    int fd = -1;

    is_int(br_blob_put(s, R("a"), BR_ALG_SHA256, "hello", 5, &d), 0, "blob put");
    ok(br_digest_eq(&d, &want), "blob put returns the content's digest");
    is_int(br_blob_stat(s, R("a"), &d, &size), 0, "stat in its repo");
    is_int(size, 5, "stat size");
    is_int(br_blob_stat(s, R("b"), &d, &size), BR_E_BLOB_UNKNOWN, "stat in another repo: unknown");
    is_int(br_blob_stat(s, R("a"), &unknown, &size), BR_E_BLOB_UNKNOWN, "stat of an unstored blob: unknown");
    is_int(br_blob_stat_any(s, &d, &size), 0, "stat_any");
    is_int(br_blob_stat_any(s, &unknown, &size), BR_E_BLOB_UNKNOWN, "stat_any of an unstored blob");
    ok(br_repo_exists(s, R("a")), "repo a exists after a link");
    ok(!br_repo_exists(s, R("b")), "repo b does not exist");
    is_int(refs(&d), 1, "refcount 1 after put");
    is_str(holders(&d, hb, sizeof(hb)), "a", "holders after put: a");
    ok(!br_repo_exists(s, R("never")), "a refused automatic mount creates no repo");
    store_consistent(s, "blob put");

    is_int(br_blob_open(s, R("a"), &d, &fd, &size), 0, "open");
    ok(fd >= 0 && read(fd, buf, sizeof(buf)) == 5 && memcmp(buf, "hello", 5) == 0, "open reads the content");
    if (fd >= 0)
        close(fd);
    is_int(br_blob_open(s, R("b"), &d, &fd, &size), BR_E_BLOB_UNKNOWN, "open in an unlinked repo: unknown");
    ok(fd < 0, "no fd on failure");
    br_blob_path(s, &d, path, sizeof(path));
    char want_path[4096];
    snprintf(want_path, sizeof(want_path), "%s/blobs/sha256/%.2s/%s", root, d.hex, d.hex);
    is_str(path, want_path, "blob path layout");
    ok(access(path, R_OK) == 0, "blob file exists");

    is_int(br_blob_put(s, R("a"), BR_ALG_SHA256, "hello", 5, &d), 0, "same put again");
    is_int(refs(&d), 1, "refcount unchanged by a repeated put");

    is_int(br_blob_mount(s, R("b"), R("a"), &d, &size), 0, "mount b from a");
    is_int(size, 5, "mount size");
    is_int(refs(&d), 2, "refcount 2 after mount");
    is_int(br_blob_mount(s, R("b"), R("a"), &d, &size), 0, "mount again");
    is_int(refs(&d), 2, "refcount unchanged by a repeated mount");
    is_int(br_blob_mount(s, R("c"), R("nowhere"), &d, &size), BR_E_BLOB_UNKNOWN, "mount from a repo without it: unknown");
    ok(!br_repo_exists(s, R("c")), "failed mount creates no repo");
    is_int(br_blob_mount(s, R("d"), br_str(NULL, 0), &d, &size), 0, "mount without from");
    is_int(refs(&d), 3, "refcount 3 after mount without from");
    is_int(br_blob_mount(s, R("d"), br_str(NULL, 0), &unknown, &size), BR_E_BLOB_UNKNOWN, "mount of an unstored blob");
    is_str(holders(&d, hb, sizeof(hb)), "a,b,d", "holders after mounts: a,b,d");
    store_consistent(s, "mounts");

    is_int(br_blob_unlink(s, R("d"), &d), 0, "unlink from d");
    is_int(refs(&d), 2, "refcount 2 after unlink");
    is_int(br_blob_unlink(s, R("d"), &d), BR_E_BLOB_UNKNOWN, "second unlink: unknown");
    is_int(refs(&d), 2, "refcount unchanged by a failed unlink");
    is_int(br_blob_stat(s, R("d"), &d, &size), BR_E_BLOB_UNKNOWN, "stat after unlink: unknown");
    is_int(br_blob_stat(s, R("a"), &d, &size), 0, "other links survive");
    is_str(holders(&d, hb, sizeof(hb)), "a,b", "holders after unlink: a,b");
    store_consistent(s, "unlink");

    /* sha512 */
    br_digest_t d5, want5 = digest_of(BR_ALG_SHA512, "hello", 5);
    is_int(br_blob_put(s, R("a"), BR_ALG_SHA512, "hello", 5, &d5), 0, "sha512 put");
    ok(br_digest_eq(&d5, &want5) && d5.alg == BR_ALG_SHA512 && d5.hex_len == 128, "sha512 digest");
    br_blob_path(s, &d5, path, sizeof(path));
    ok(strstr(path, "/blobs/sha512/") != NULL && access(path, R_OK) == 0, "sha512 file under blobs/sha512");
    is_int(br_blob_stat(s, R("a"), &d5, &size), 0, "sha512 stat");
    is_int(refs(&d5), 1, "sha512 refcount");
    is_int(refs(&d), 2, "sha256 of the same bytes is a different blob");
    is_str(holders(&d5, hb, sizeof(hb)), "a", "sha512 holders: a");
    store_consistent(s, "sha512 put");
}

static void test_mount_any(void)
{
    br_digest_t d = digest_of(BR_ALG_SHA256, "hello", 5), unknown = digest_of(BR_ALG_SHA256, "nope", 4);
    pick_t p = {"b", ""};
    uint64_t size = 0;
    char hb[1024];

    /* test_blobs left "hello" in a and b */
    is_int(br_blob_mount_any(s, R("e"), &d, on_pick, &p, &size), 0, "automatic mount accepting only b");
    is_str(p.seen, "a,b", "a offered and refused, then b accepted");
    is_int(size, 5, "automatic mount size");
    is_int(br_blob_stat(s, R("e"), &d, NULL), 0, "the blob is in e");
    is_int(refs(&d), 3, "refcount 3 after the automatic mount");
    is_str(holders(&d, hb, sizeof(hb)), "a,b,e", "holders: a,b,e");
    store_consistent(s, "automatic mount");

    p = (pick_t){"zzz", ""};
    is_int(br_blob_mount_any(s, R("f"), &d, on_pick, &p, &size), BR_E_BLOB_UNKNOWN, "no holder accepted: unknown");
    is_str(p.seen, "a,b,e", "every holder was offered");
    ok(!br_repo_exists(s, R("f")), "no repo created");
    is_int(refs(&d), 3, "refcount unchanged");
    p = (pick_t){"a", ""};
    is_int(br_blob_mount_any(s, R("f"), &unknown, on_pick, &p, &size), BR_E_BLOB_UNKNOWN, "unstored blob: unknown");
    is_str(p.seen, "", "predicate never called for an unstored blob");
    p = (pick_t){"e", ""};
    is_int(br_blob_mount_any(s, R("e"), &d, on_pick, &p, &size), 0, "automatic mount into a repo that holds it");
    is_int(refs(&d), 3, "refcount unchanged by it");
    is_int(br_blob_mount_any(s, br_str(NULL, 0), &d, on_pick, &p, &size), BR_E_NAME_INVALID, "empty target repo");

    /* Holders are a prefix scan by packed digest: the sha512 blob of the same
     * bytes has its own list. */
    br_digest_t d5 = digest_of(BR_ALG_SHA512, "hello", 5);
    p = (pick_t){"a", ""};
    is_int(br_blob_mount_any(s, R("e"), &d5, on_pick, &p, &size), 0, "sha512 automatic mount from a");
    is_str(p.seen, "a", "only the sha512 blob's holder offered");
    is_int(br_blob_unlink(s, R("e"), &d5), 0, "unlink sha512 from e");
    is_int(br_blob_unlink(s, R("e"), &d), 0, "unlink from e");
    is_str(holders(&d, hb, sizeof(hb)), "a,b", "holders after unlink: a,b");
    store_consistent(s, "automatic mount cases");
}

/* ---- uploads ---------------------------------------------------------------- */

static void test_uploads(void)
{
    br_upload_t *u = NULL, *u2 = NULL;
    br_digest_t d, wrong;
    uint64_t size = 0;
    char uuid[BR_UUID_LEN + 1];
    static unsigned char data[20 << 20];
    fill_bytes(data, sizeof(data), 42);

    /* start / write / save / busy / resume / wrong digest */
    is_int(br_upload_start(s, R("up"), &u), 0, "upload start");
    snprintf(uuid, sizeof(uuid), "%s", br_upload_uuid(u));
    is_int(strlen(uuid), BR_UUID_LEN, "uuid length");
    ok(uuid[8] == '-' && uuid[13] == '-' && uuid[18] == '-' && uuid[23] == '-' && uuid[14] == '4', "uuid v4 format");
    ok(br_upload_started(u) != 0 && br_upload_started(u) <= br_now(), "start time");
    is_int(br_upload_size(u), 0, "fresh upload is empty");
    ok(upload_exists_on_disk(uuid), "upload file created");
    is_int(br_upload_write(u, data, 1000), 0, "write 1");
    is_int(br_upload_write(u, data + 1000, 2000), 0, "write 2");
    is_int(br_upload_size(u), 3000, "size after writes");
    is_int(br_upload_save(u), 0, "save");
    is_int(br_upload_resume(s, R("up"), br_cstr(uuid), &u2), BR_E_BUSY, "second resume while live: busy");
    ok(u2 == NULL, "no handle on busy");
    br_upload_destroy(u);
    is_int(br_upload_resume(s, R("other"), br_cstr(uuid), &u2), BR_E_BLOB_UPLOAD_UNKNOWN, "resume under another repo");
    is_int(br_upload_resume(s, R("up"), br_cstr(uuid), &u), 0, "resume after destroy");
    is_int(br_upload_size(u), 3000, "resumed size");
    is_int(br_upload_write(u, data + 3000, 1000), 0, "write 3");
    d = digest_of(BR_ALG_SHA256, data, 4000);
    wrong = digest_of(BR_ALG_SHA256, data, 3999);
    is_int(br_upload_commit(u, &wrong, &size), BR_E_DIGEST_INVALID, "commit with a wrong digest");
    is_int(br_blob_stat_any(s, &wrong, &size), BR_E_BLOB_UNKNOWN, "nothing stored under the wrong digest");
    is_int(br_blob_stat_any(s, &d, &size), BR_E_BLOB_UNKNOWN, "nothing stored under the real digest");
    ok(!upload_exists_on_disk(uuid), "upload file removed after a mismatch");
    is_int(br_upload_write(u, data, 1), BR_E_BLOB_UPLOAD_UNKNOWN, "write after a failed commit");
    br_upload_destroy(u);
    is_int(br_upload_resume(s, R("up"), br_cstr(uuid), &u), BR_E_BLOB_UPLOAD_UNKNOWN, "session gone after a mismatch");
    ok(!br_repo_exists(s, R("up")), "no repo created by a failed upload");
    store_consistent(s, "failed upload");

    /* a large upload, committed (crosses the writeback threshold) */
    is_int(br_upload_start(s, R("up"), &u), 0, "start large");
    snprintf(uuid, sizeof(uuid), "%s", br_upload_uuid(u));
    int wret = 0;
    for (size_t off = 0; off < sizeof(data) && wret == 0; off += 1 << 20)
        wret = br_upload_write(u, data + off, 1 << 20);
    is_int(wret, 0, "20 MiB written");
    d = digest_of(BR_ALG_SHA256, data, sizeof(data));
    is_int(br_upload_commit(u, &d, &size), 0, "commit large");
    is_int(size, sizeof(data), "committed size");
    is_int(br_upload_commit(u, &d, &size), BR_E_BLOB_UPLOAD_UNKNOWN, "second commit on the same handle");
    br_upload_destroy(u);
    ok(!upload_exists_on_disk(uuid), "upload file gone after commit");
    is_int(br_upload_resume(s, R("up"), br_cstr(uuid), &u), BR_E_BLOB_UPLOAD_UNKNOWN, "session gone after commit");
    is_int(br_blob_stat(s, R("up"), &d, &size), 0, "committed blob linked to the session's repo");
    is_int(refs(&d), 1, "refcount 1 after commit");
    int fd = -1;
    br_digest_t got;
    ok(br_blob_open(s, R("up"), &d, &fd, &size) == 0 && hash_fd(fd, BR_ALG_SHA256, &got) == 0 && br_digest_eq(&got, &d),
       "committed content hashes to its digest");
    if (fd >= 0)
        close(fd);
    store_consistent(s, "large commit");

    /* the same content committed again through another upload: EEXIST path */
    is_int(br_upload_start(s, R("up2"), &u), 0, "start duplicate");
    is_int(br_upload_write(u, data, sizeof(data)), 0, "write duplicate in one go");
    is_int(br_upload_commit(u, &d, &size), 0, "commit duplicate content");
    br_upload_destroy(u);
    is_int(refs(&d), 2, "refcount 2: linked in two repos");
    store_consistent(s, "duplicate commit");

    /* restart: save, close the store, reopen, resume */
    is_int(br_upload_start(s, R("up"), &u), 0, "start before restart");
    snprintf(uuid, sizeof(uuid), "%s", br_upload_uuid(u));
    is_int(br_upload_write(u, data, 5000), 0, "write before restart");
    is_int(br_upload_save(u), 0, "save before restart");
    br_upload_destroy(u);
    reopen();
    is_int(br_upload_resume(s, R("up"), br_cstr(uuid), &u), 0, "resume after restart");
    is_int(u != NULL ? (long long)br_upload_size(u) : -1, 5000, "size survives restart");
    if (u != NULL) {
        is_int(br_upload_write(u, data + 5000, 7000), 0, "write after restart");
        d = digest_of(BR_ALG_SHA256, data, 12000);
        is_int(br_upload_commit(u, &d, &size), 0, "commit after restart (hash state restored)");
        br_upload_destroy(u);
    }
    store_consistent(s, "restart");

    /* truncation: bytes written after the last save are dropped on resume */
    is_int(br_upload_start(s, R("up"), &u), 0, "start truncation case");
    snprintf(uuid, sizeof(uuid), "%s", br_upload_uuid(u));
    is_int(br_upload_write(u, data, 4096), 0, "write saved part");
    is_int(br_upload_save(u), 0, "save");
    is_int(br_upload_write(u, data + 4096, 999), 0, "write unsaved part");
    br_upload_destroy(u); /* as if the process died before saving */
    is_int(upload_file_size(uuid), 4096 + 999, "file is longer than the saved size");
    is_int(br_upload_resume(s, R("up"), br_cstr(uuid), &u), 0, "resume");
    is_int(u != NULL ? (long long)br_upload_size(u) : -1, 4096, "resume reports the saved size");
    is_int(upload_file_size(uuid), 4096, "file truncated back to the saved size");
    if (u != NULL) {
        is_int(br_upload_write(u, data + 4096, 10), 0, "write after truncation");
        d = digest_of(BR_ALG_SHA256, data, 4106);
        is_int(br_upload_commit(u, &d, &size), 0, "commit after truncation");
        br_upload_destroy(u);
    }
    store_consistent(s, "truncation");

    /* sha512 commit (hash recomputed from the file) */
    is_int(br_upload_start(s, R("up"), &u), 0, "start sha512");
    is_int(br_upload_write(u, data, 300000), 0, "write sha512");
    wrong = digest_of(BR_ALG_SHA512, data, 299999);
    d = digest_of(BR_ALG_SHA512, data, 300000);
    is_int(br_upload_commit(u, &d, &size), 0, "commit sha512");
    br_upload_destroy(u);
    is_int(br_blob_stat(s, R("up"), &d, &size), 0, "sha512 blob stored");
    is_int(br_upload_start(s, R("up"), &u), 0, "start wrong sha512");
    is_int(br_upload_write(u, data, 300000), 0, "write wrong sha512");
    is_int(br_upload_commit(u, &wrong, &size), BR_E_DIGEST_INVALID, "wrong sha512 rejected");
    br_upload_destroy(u);
    is_int(br_blob_stat_any(s, &wrong, &size), BR_E_BLOB_UNKNOWN, "nothing stored for the wrong sha512");
    store_consistent(s, "sha512 uploads");

    /* cancel */
    is_int(br_upload_start(s, R("up"), &u), 0, "start cancel case");
    snprintf(uuid, sizeof(uuid), "%s", br_upload_uuid(u));
    is_int(br_upload_write(u, data, 10), 0, "write before cancel");
    is_int(br_upload_cancel(u), 0, "cancel");
    br_upload_destroy(u);
    ok(!upload_exists_on_disk(uuid), "cancel removes the file");
    is_int(br_upload_resume(s, R("up"), br_cstr(uuid), &u), BR_E_BLOB_UPLOAD_UNKNOWN, "cancelled session is unknown");

    /* malformed uuids never reach the file system */
    static const char *bad[] = {
        "../x", "", "0123", "../../../../../../../../../../../etc", "0123456789abcdef0123456789abcdef0123",
        "01234567-89ab-cdef-0123-456789abcdeF", "01234567-89ab-cdef-0123-456789abcde", "01234567-89ab-cdef-0123-456789abcdef0",
        "01234567_89ab-cdef-0123-456789abcdef", "0123456789-ab-cdef-0123-456789abcdef", "01234567-89ab-cdef-0123-456789abc/ef",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        u = NULL;
        is_int(br_upload_resume(s, R("up"), br_cstr(bad[i]), &u), BR_E_BLOB_UPLOAD_UNKNOWN, "malformed uuid '%s' rejected", bad[i]);
        ok(u == NULL, "no handle for '%s'", bad[i]);
    }
    is_int(br_upload_resume(s, R("up"), br_cstr("01234567-89ab-4def-8123-456789abcdef"), &u), BR_E_BLOB_UPLOAD_UNKNOWN,
           "well-formed unknown uuid");
    store_consistent(s, "cancel and malformed uuids");
}

/* ---- uploads through append + hash (hashing on another thread) ------------- */

typedef struct st_hasher_t {
    br_upload_t *u;
    const unsigned char *data;
    size_t len, step;
    int fails;
} hasher_t;

static void *hash_main(void *arg)
{
    hasher_t *h = arg;
    for (size_t off = 0; off < h->len; off += h->step)
        h->fails += br_upload_hash(h->u, h->data + off, h->len - off < h->step ? h->len - off : h->step) != 0;
    return NULL;
}

static void test_split_uploads(void)
{
    static unsigned char data[8 << 20];
    br_upload_t *u = NULL;
    br_digest_t d;
    uint64_t size = 0;
    char uuid[BR_UUID_LEN + 1];
    fill_bytes(data, sizeof(data), 7);

    /* append on this thread while another hashes the same bytes */
    is_int(br_upload_start(s, R("split"), &u), 0, "split: start");
    hasher_t h = {u, data, sizeof(data), 300000, 0};
    pthread_t tid;
    pthread_create(&tid, NULL, hash_main, &h);
    int fails = 0;
    for (size_t off = 0; off < sizeof(data); off += 1 << 20)
        fails += br_upload_append(u, data + off, 1 << 20) != 0;
    pthread_join(tid, NULL);
    is_int(fails + h.fails, 0, "split: 8 MiB appended and hashed concurrently");
    is_int(br_upload_size(u), sizeof(data), "split: size counts appended bytes");
    d = digest_of(BR_ALG_SHA256, data, sizeof(data));
    is_int(br_upload_commit(u, &d, &size), 0, "split: commit with the digest of the content");
    br_upload_destroy(u);
    is_int(br_blob_stat(s, R("split"), &d, &size), 0, "split: blob stored");

    /* out of step: appended but not hashed */
    is_int(br_upload_start(s, R("split"), &u), 0, "out of step: start");
    snprintf(uuid, sizeof(uuid), "%s", br_upload_uuid(u));
    is_int(br_upload_write(u, data, 4096), 0, "out of step: write");
    is_int(br_upload_save(u), 0, "out of step: save while in step");
    is_int(br_upload_append(u, data + 4096, 1000), 0, "out of step: append without hash");
    is_int(br_upload_save(u), BR_E_INTERNAL, "out of step: save refused");
    d = digest_of(BR_ALG_SHA256, data, 5096);
    is_int(br_upload_commit(u, &d, &size), BR_E_INTERNAL, "out of step: commit refused");
    d = digest_of(BR_ALG_SHA256, data, 4096);
    is_int(br_upload_commit(u, &d, &size), BR_E_INTERNAL, "out of step: commit of the hashed part refused too");
    is_int(br_blob_stat_any(s, &d, &size), BR_E_BLOB_UNKNOWN, "out of step: nothing stored");
    /* hashed more than appended */
    is_int(br_upload_hash(u, data + 4096, 1000), 0, "out of step: hash catches up");
    is_int(br_upload_hash(u, data + 5096, 10), 0, "out of step: hash ahead of the file");
    is_int(br_upload_save(u), BR_E_INTERNAL, "out of step: save refused when hash is ahead");
    br_upload_destroy(u); /* as if the process died here */
    /* the record is the last good save: resume is consistent with it */
    is_int(br_upload_resume(s, R("split"), br_cstr(uuid), &u), 0, "out of step: resume");
    is_int(u != NULL ? (long long)br_upload_size(u) : -1, 4096, "out of step: resumed at the last save");
    is_int(upload_file_size(uuid), 4096, "out of step: unsaved bytes cut back");
    if (u != NULL) {
        is_int(br_upload_append(u, data + 4096, 5000), 0, "after resume: append");
        is_int(br_upload_hash(u, data + 4096, 5000), 0, "after resume: hash");
        is_int(br_upload_save(u), 0, "after resume: save in step");
        d = digest_of(BR_ALG_SHA256, data, 9096);
        is_int(br_upload_commit(u, &d, &size), 0, "after resume: commit (hash state restored)");
        is_int(size, 9096, "after resume: committed size");
        br_upload_destroy(u);
    }
    store_consistent(s, "split uploads");
}

static void test_purge(void)
{
    br_upload_t *old = NULL, *live = NULL, *young = NULL, *u = NULL;
    char old_id[BR_UUID_LEN + 1], live_id[BR_UUID_LEN + 1], young_id[BR_UUID_LEN + 1], orphan[BR_UUID_LEN + 1 + 512];
    char path[512];

    /* Clear what earlier tests left (none of it is live). */
    ok(br_upload_purge(s, 1000000) >= 0, "purge with a large age works");

    is_int(br_upload_start(s, R("pg"), &old), 0, "start old");
    snprintf(old_id, sizeof(old_id), "%s", br_upload_uuid(old));
    br_upload_write(old, "abc", 3);
    br_upload_save(old);
    br_upload_destroy(old);
    is_int(br_upload_start(s, R("pg"), &live), 0, "start old but live");
    snprintf(live_id, sizeof(live_id), "%s", br_upload_uuid(live));

    /* An orphan file (a crash between index and unlink), dated long ago,
     * and an unrelated file that purge must not touch. */
    snprintf(orphan, sizeof(orphan), "%s/uploads/%s", root, "89abcdef-0123-4567-89ab-cdef01234567");
    int fd = open(orphan, O_WRONLY | O_CREAT, 0644);
    ok(fd >= 0, "create orphan");
    if (fd >= 0)
        close(fd);
    struct timeval tv[2] = {{1000, 0}, {1000, 0}};
    utimes(orphan, tv);
    snprintf(path, sizeof(path), "%s/uploads/keep.txt", root);
    fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0)
        close(fd);
    utimes(path, tv);

    sleep(2); /* start times have one-second resolution */
    is_int(br_upload_start(s, R("pg"), &young), 0, "start young");
    snprintf(young_id, sizeof(young_id), "%s", br_upload_uuid(young));
    br_upload_destroy(young);

    is_int(br_upload_purge(s, 1), 2, "purge removes the old session and the orphan");
    is_int(br_upload_resume(s, R("pg"), br_cstr(old_id), &u), BR_E_BLOB_UPLOAD_UNKNOWN, "old session purged");
    ok(!upload_exists_on_disk(old_id), "old session's file purged");
    ok(access(orphan, F_OK) != 0, "orphan file purged");
    ok(access(path, F_OK) == 0, "non-session file kept");
    ok(upload_exists_on_disk(live_id), "live session's file kept");
    is_int(br_upload_resume(s, R("pg"), br_cstr(young_id), &u), 0, "young session kept");
    br_upload_destroy(u);
    is_int(br_upload_write(live, "x", 1), 0, "live handle still writes");
    br_upload_destroy(live);
    is_int(br_upload_purge(s, 1), 1, "once released, the old session is purged");
    is_int(br_upload_resume(s, R("pg"), br_cstr(live_id), &u), BR_E_BLOB_UPLOAD_UNKNOWN, "formerly live session purged");
    unlink(path);
    store_consistent(s, "purge");
}

/* ---- manifests, tags, referrers -------------------------------------------------- */

typedef struct {
    char names[64][BR_TAG_MAX + BR_NAME_MAX + 2];
    size_t n;
} names_t;

static int on_name(void *ctx, br_str_t name)
{
    names_t *l = ctx;
    if (l->n < 64)
        snprintf(l->names[l->n++], sizeof(l->names[0]), "%.*s", (int)name.len, name.base);
    return 0;
}

typedef struct {
    volatile int stop, reads;
    int unknown_seen;
} reader_t;

static void *retag_reader(void *arg)
{
    reader_t *r = arg;
    br_manifest_rec_t rec;
    while (!r->stop) {
        if (br_manifest_get(s, R("m"), R("v1"), &rec) != 0)
            ++r->unknown_seen;
        ++r->reads;
    }
    return NULL;
}

static void test_manifests(void)
{
    br_digest_t cfg, layer, d1, d2, got, refs2[3];
    br_manifest_rec_t rec;
    br_manifest_put_t m;
    char dbuf[BR_DIGEST_MAX + 1], hb[1024];
    names_t l;
    int more;

    is_int(br_blob_put(s, R("m"), BR_ALG_SHA256, "config", 6, &cfg), 0, "put config");
    is_int(br_blob_put(s, R("m"), BR_ALG_SHA256, "layer", 5, &layer), 0, "put layer");
    br_digest_t refs1[2] = {cfg, layer};
    const char *body1 = "{\"schemaVersion\":2,\"body\":1}";
    m = mput("m", body1, "v1", refs1, 2);
    is_int(br_manifest_put(s, &m, &d1), 0, "manifest put by tag");
    got = digest_of(BR_ALG_SHA256, body1, strlen(body1));
    ok(br_digest_eq(&d1, &got), "manifest digest is the body's");
    is_int(refs(&cfg), 2, "config: link + manifest ref");
    is_int(refs(&layer), 2, "layer: link + manifest ref");
    is_int(refs(&d1), 1, "manifest body: its link");
    is_int(br_blob_stat(s, R("m"), &d1, NULL), 0, "manifest body served as a blob of its repo");
    is_str(holders(&d1, hb, sizeof(hb)), "m", "manifest body held by m");
    store_consistent(s, "manifest put");

    memset(&rec, 0, sizeof(rec));
    is_int(br_manifest_get(s, R("m"), R("v1"), &rec), 0, "get by tag");
    ok(br_digest_eq(&rec.digest, &d1), "get by tag: digest");
    is_int(rec.size, strlen(body1), "get by tag: size");
    is_str(rec.media_type, "application/vnd.oci.image.manifest.v1+json", "get by tag: media type");
    memset(&rec, 0, sizeof(rec));
    is_int(br_manifest_get(s, R("m"), dstr(&d1, dbuf), &rec), 0, "get by digest");
    ok(br_digest_eq(&rec.digest, &d1), "get by digest: digest");
    is_int(br_manifest_get(s, R("m"), R("v2"), &rec), BR_E_MANIFEST_UNKNOWN, "unknown tag");
    is_int(br_manifest_get(s, R("m"), R("sha256:zz"), &rec), BR_E_DIGEST_INVALID, "malformed digest reference");
    is_int(br_manifest_get(s, R("other"), dstr(&d1, dbuf), &rec), BR_E_MANIFEST_UNKNOWN, "digest in another repo: unknown");
    is_int(br_manifest_get(s, R("m"), dstr(&cfg, dbuf), &rec), BR_E_MANIFEST_UNKNOWN, "a plain blob is no manifest");

    /* idempotence */
    is_int(br_manifest_put(s, &m, &got), 0, "same manifest again");
    is_int(refs(&cfg), 2, "config count unchanged");
    is_int(refs(&d1), 1, "body count unchanged");
    m = mput("m", body1, "latest", refs1, 2);
    is_int(br_manifest_put(s, &m, &got), 0, "same manifest, another tag");
    is_int(refs(&layer), 2, "layer count unchanged by a second tag");
    store_consistent(s, "idempotent put");

    /* the same body in a second repository counts again */
    is_int(br_blob_mount(s, R("m2"), R("m"), &cfg, NULL), 0, "mount config into m2");
    is_int(br_blob_mount(s, R("m2"), R("m"), &layer, NULL), 0, "mount layer into m2");
    m = mput("m2", body1, "", refs1, 2);
    is_int(br_manifest_put(s, &m, &got), 0, "manifest put by digest into m2");
    is_int(refs(&cfg), 4, "config: two links, two manifest refs");
    is_int(refs(&d1), 2, "body linked in two repos");
    is_str(holders(&d1, hb, sizeof(hb)), "m,m2", "manifest body held by m and m2");
    is_str(holders(&cfg, hb, sizeof(hb)), "m,m2", "mounted config held by m and m2");
    is_int(br_manifest_get(s, R("m2"), R("v1"), &rec), BR_E_MANIFEST_UNKNOWN, "tags are per repository");
    store_consistent(s, "second repo");

    /* retag: v1 moves to body2, atomically for concurrent readers */
    const char *body2 = "{\"schemaVersion\":2,\"body\":2}";
    refs2[0] = cfg;
    refs2[1] = cfg; /* a digest referenced twice counts twice */
    refs2[2] = digest_of(BR_ALG_SHA256, "never stored", 12);
    m = mput("m", body2, "v1", refs2, 3);
    is_int(br_manifest_put(s, &m, &d2), BR_E_MANIFEST_BLOB_UNKNOWN, "a reference to an unstored blob: refused");
    is_int(br_manifest_get(s, R("m"), R("v1"), &rec), 0, "v1 unchanged by the refused put");
    ok(br_digest_eq(&rec.digest, &d1), "... still at body1");
    is_int(refs(&cfg), 4, "... and no count taken");
    refs2[2] = layer;
    m = mput("m2", body2, "", refs2, 3);
    is_int(br_manifest_put(s, &m, &d2), 0, "references mounted into m2: accepted");
    is_int(br_manifest_delete(s, R("m2"), &d2), 0, "take that one away again");
    m = mput("m3", body2, "", refs2, 3);
    is_int(br_manifest_put(s, &m, &d2), BR_E_MANIFEST_BLOB_UNKNOWN, "references linked in other repositories only: refused");
    m = mput("m", body2, "v1", refs2, 2);
    is_int(br_manifest_put(s, &m, &d2), 0, "put body2 as v1");
    is_int(br_manifest_get(s, R("m"), R("v1"), &rec), 0, "v1 resolves");
    ok(br_digest_eq(&rec.digest, &d2), "v1 moved to body2");
    is_int(br_manifest_get(s, R("m"), R("latest"), &rec), 0, "latest still resolves");
    ok(br_digest_eq(&rec.digest, &d1), "latest still at body1");
    is_int(refs(&cfg), 6, "config counted twice more by body2");
    store_consistent(s, "retag");

    reader_t r = {0, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, retag_reader, &r);
    int put_fail = 0;
    int i;
    /* Retag at least 200 times and until the reader has overlapped many of them. */
    for (i = 0; (i < 200 || r.reads < 2000) && i < 200000; i++) {
        m = mput("m", i % 2 ? body2 : body1, "v1", i % 2 ? refs2 : refs1, 2);
        put_fail += br_manifest_put(s, &m, &got) != 0;
    }
    r.stop = 1;
    pthread_join(th, NULL);
    m = mput("m", body2, "v1", refs2, 2); /* the loop may end on either body */
    put_fail += br_manifest_put(s, &m, &got) != 0;
    is_int(put_fail, 0, "%d retags", i);
    ok(r.reads >= 2000, "reader ran (%d reads)", r.reads);
    is_int(r.unknown_seen, 0, "a concurrent reader never saw the tag missing");
    is_int(refs(&cfg), 6, "retags do not change counts");
    store_consistent(s, "retag race");

    /* tag list */
    memset(&l, 0, sizeof(l));
    is_int(br_tag_list(s, R("m"), br_str(NULL, 0), 100, on_name, &l, &more), 0, "tag list");
    ok(l.n == 2 && strcmp(l.names[0], "latest") == 0 && strcmp(l.names[1], "v1") == 0 && more == 0, "tags: latest, v1");

    /* tag delete */
    is_int(br_tag_delete(s, R("m"), R("latest")), 0, "delete tag latest");
    is_int(br_manifest_get(s, R("m"), R("latest"), &rec), BR_E_MANIFEST_UNKNOWN, "deleted tag is unknown");
    is_int(br_tag_delete(s, R("m"), R("latest")), BR_E_MANIFEST_UNKNOWN, "deleting it again: unknown");
    is_int(br_manifest_get(s, R("m"), dstr(&d1, dbuf), &rec), 0, "manifest stays after its tag goes");
    is_int(refs(&d1), 2, "tag delete does not touch counts");
    store_consistent(s, "tag delete");

    /* manifest delete: takes its tags, refs and body link with it */
    m = mput("m", body2, "also", refs2, 2);
    is_int(br_manifest_put(s, &m, &got), 0, "second tag on body2");
    is_int(br_manifest_delete(s, R("m"), &d2), 0, "delete body2");
    is_int(br_manifest_get(s, R("m"), R("v1"), &rec), BR_E_MANIFEST_UNKNOWN, "its tag v1 is gone");
    is_int(br_manifest_get(s, R("m"), R("also"), &rec), BR_E_MANIFEST_UNKNOWN, "its tag also is gone");
    is_int(br_manifest_get(s, R("m"), dstr(&d2, dbuf), &rec), BR_E_MANIFEST_UNKNOWN, "gone by digest");
    is_int(refs(&cfg), 4, "config counts given back");
    is_int(refs(&d2), 0, "body2 unreferenced");
    is_int(br_blob_stat(s, R("m"), &d2, NULL), BR_E_BLOB_UNKNOWN, "body2 no longer linked");
    is_str(holders(&d2, hb, sizeof(hb)), "", "body2 held by nobody");
    is_int(br_manifest_delete(s, R("m"), &d2), BR_E_MANIFEST_UNKNOWN, "delete again: unknown");
    memset(&l, 0, sizeof(l));
    is_int(br_tag_list(s, R("m"), br_str(NULL, 0), 100, on_name, &l, &more), 0, "tag list after delete");
    is_int(l.n, 0, "no tags left in m");
    store_consistent(s, "manifest delete");

    is_int(br_manifest_delete(s, R("m2"), &d1), 0, "delete body1 from m2");
    is_int(refs(&d1), 1, "body1 still linked in m");
    is_int(refs(&cfg), 3, "m2's manifest refs given back");
    is_int(br_manifest_get(s, R("m"), dstr(&d1, dbuf), &rec), 0, "m's copy untouched");
    is_str(holders(&d1, hb, sizeof(hb)), "m", "body1 held by m only");
    store_consistent(s, "delete in one of two repos");
}

typedef struct {
    br_referrer_t r[8];
    char mt[8][64], at[8][64], ann[8][64];
    size_t n;
} refs_t;

static int on_ref(void *ctx, const br_referrer_t *r)
{
    refs_t *l = ctx;
    if (l->n < 8) {
        l->r[l->n] = *r;
        snprintf(l->mt[l->n], 64, "%.*s", (int)r->media_type.len, r->media_type.base);
        snprintf(l->at[l->n], 64, "%.*s", (int)r->artifact_type.len, r->artifact_type.base);
        snprintf(l->ann[l->n], 64, "%.*s", (int)r->annotations.len, r->annotations.base);
        l->n++;
    }
    return 0;
}

static int find_ref(const refs_t *l, const br_digest_t *d)
{
    for (size_t i = 0; i < l->n; i++)
        if (br_digest_eq(&l->r[i].digest, d))
            return (int)i;
    return -1;
}

static void test_referrers(void)
{
    br_digest_t subj, other, r1, r2, r3;
    refs_t l;
    br_manifest_put_t m;
    const char *b1 = "{\"sig\":1}", *b2 = "{\"sbom\":1}", *b3 = "{\"sig\":3}";

    m = mput("rf", "{\"subject\":true}", "", NULL, 0);
    is_int(br_manifest_put(s, &m, &subj), 0, "subject manifest");
    m = mput("rf", "{\"other\":true}", "", NULL, 0);
    is_int(br_manifest_put(s, &m, &other), 0, "other manifest");

    m = mput("rf", b1, "", NULL, 0);
    m.subject = &subj;
    m.artifact_type = R("application/x-sig");
    m.annotations = R("{\"a\":\"b\"}");
    is_int(br_manifest_put(s, &m, &r1), 0, "referrer 1");
    m = mput("rf", b2, "", NULL, 0);
    m.subject = &subj;
    m.media_type = R("application/vnd.oci.artifact.manifest.v1+json");
    m.artifact_type = R("application/x-sbom");
    is_int(br_manifest_put(s, &m, &r2), 0, "referrer 2");
    m = mput("rf", b3, "", NULL, 0);
    m.subject = &other;
    is_int(br_manifest_put(s, &m, &r3), 0, "referrer of another subject");
    store_consistent(s, "referrers put");

    memset(&l, 0, sizeof(l));
    is_int(br_referrers_list(s, R("rf"), &subj, on_ref, &l), 0, "list referrers");
    is_int(l.n, 2, "two referrers of the subject");
    int i1 = find_ref(&l, &r1), i2 = find_ref(&l, &r2);
    ok(i1 >= 0 && i2 >= 0 && find_ref(&l, &r3) < 0, "the right two");
    if (i1 >= 0 && i2 >= 0) {
        is_int(l.r[i1].size, strlen(b1), "referrer 1 size");
        is_str(l.mt[i1], "application/vnd.oci.image.manifest.v1+json", "referrer 1 media type");
        is_str(l.at[i1], "application/x-sig", "referrer 1 artifact type");
        is_str(l.ann[i1], "{\"a\":\"b\"}", "referrer 1 annotations");
        is_str(l.mt[i2], "application/vnd.oci.artifact.manifest.v1+json", "referrer 2 media type");
        is_str(l.at[i2], "application/x-sbom", "referrer 2 artifact type");
        is_str(l.ann[i2], "", "referrer 2 no annotations");
    }
    memset(&l, 0, sizeof(l));
    is_int(br_referrers_list(s, R("elsewhere"), &subj, on_ref, &l), 0, "referrers in another repo");
    is_int(l.n, 0, "none there");

    is_int(br_manifest_delete(s, R("rf"), &r1), 0, "delete referrer 1");
    memset(&l, 0, sizeof(l));
    is_int(br_referrers_list(s, R("rf"), &subj, on_ref, &l), 0, "list after delete");
    ok(l.n == 1 && find_ref(&l, &r2) == 0, "only referrer 2 left");
    m = mput("rf", b2, "", NULL, 0);
    m.subject = &subj;
    is_int(br_manifest_put(s, &m, &r2), 0, "referrer 2 again (idempotent)");
    memset(&l, 0, sizeof(l));
    br_referrers_list(s, R("rf"), &subj, on_ref, &l);
    is_int(l.n, 1, "still one entry");
    store_consistent(s, "referrer delete");
}

static int stop_after_one(void *ctx, br_str_t name)
{
    (void)name;
    ++*(int *)ctx;
    return 1;
}

static void test_listings(void)
{
    names_t all, page;
    char tag[16], last[BR_TAG_MAX + 1];
    br_manifest_put_t m;
    br_digest_t d;
    int more, failed = 0;

    for (int i = 24; i >= 0; i--) {
        snprintf(tag, sizeof(tag), "t%02d", i);
        m = mput("p/q", "{\"p\":1}", tag, NULL, 0);
        failed += br_manifest_put(s, &m, &d) != 0;
    }
    m = mput("p/q", "{\"p\":1}", "A", NULL, 0);
    failed += br_manifest_put(s, &m, &d) != 0;
    m = mput("p/q", "{\"p\":1}", "t1", NULL, 0);
    failed += br_manifest_put(s, &m, &d) != 0;
    /* A repository whose name extends p/q: its tags must not leak into p/q. */
    m = mput("p/q2", "{\"p\":1}", "zzz", NULL, 0);
    failed += br_manifest_put(s, &m, &d) != 0;
    m = mput("p", "{\"p\":1}", "zzz", NULL, 0);
    failed += br_manifest_put(s, &m, &d) != 0;
    is_int(failed, 0, "tagged 29 times");

    memset(&all, 0, sizeof(all));
    is_int(br_tag_list(s, R("p/q"), br_str(NULL, 0), 1000, on_name, &all, &more), 0, "full tag list");
    is_int(all.n, 27, "27 tags");
    is_int(more, 0, "no more");
    int sorted = 1;
    for (size_t i = 1; i < all.n; i++)
        sorted &= strcmp(all.names[i - 1], all.names[i]) < 0;
    ok(sorted, "tags in lexical order");
    ok(all.n == 27 && strcmp(all.names[0], "A") == 0 && strcmp(all.names[1], "t00") == 0 && strcmp(all.names[2], "t01") == 0 &&
           strcmp(all.names[3], "t02") == 0 && strcmp(all.names[11], "t1") == 0,
       "byte order: A < t00 < t01 < ... < t09 < t1 < t10");

    /* pages of 10 concatenate to the full list */
    size_t total = 0;
    int pages = 0, order_ok = 1;
    last[0] = '\0';
    do {
        memset(&page, 0, sizeof(page));
        if (br_tag_list(s, R("p/q"), br_cstr(last), 10, on_name, &page, &more) != 0)
            break;
        for (size_t i = 0; i < page.n; i++)
            order_ok &= total + i < all.n && strcmp(page.names[i], all.names[total + i]) == 0;
        total += page.n;
        ++pages;
        if (page.n != 0)
            snprintf(last, sizeof(last), "%s", page.names[page.n - 1]);
        if (more && page.n != 10)
            order_ok = 0;
    } while (more && pages < 10);
    is_int(pages, 3, "three pages of 10");
    is_int(total, 27, "pages cover every tag");
    ok(order_ok, "pages match the full list");

    memset(&page, 0, sizeof(page));
    is_int(br_tag_list(s, R("p/q"), R("t22"), 2, on_name, &page, &more), 0, "exactly the last two");
    ok(page.n == 2 && strcmp(page.names[0], "t23") == 0 && strcmp(page.names[1], "t24") == 0 && more == 0, "t23, t24, no more");
    memset(&page, 0, sizeof(page));
    is_int(br_tag_list(s, R("p/q"), R("t015"), 1, on_name, &page, &more), 0, "last between two tags");
    ok(page.n == 1 && strcmp(page.names[0], "t02") == 0 && more == 1, "starts at the next tag");
    memset(&page, 0, sizeof(page));
    is_int(br_tag_list(s, R("p/q"), R("zzzz"), 5, on_name, &page, &more), 0, "last after all tags");
    ok(page.n == 0 && more == 0, "empty page");
    memset(&page, 0, sizeof(page));
    is_int(br_tag_list(s, R("p/q"), br_str(NULL, 0), 0, on_name, &page, &more), 0, "n = 0");
    ok(page.n == 0 && more == 1, "n = 0: nothing, more");
    int calls = 0;
    is_int(br_tag_list(s, R("p/q"), br_str(NULL, 0), 10, stop_after_one, &calls, &more), 0, "callback stops the walk");
    is_int(calls, 1, "one call");

    memset(&page, 0, sizeof(page));
    is_int(br_tag_list(s, R("p"), br_str(NULL, 0), 100, on_name, &page, &more), 0, "tags of p");
    ok(page.n == 1 && strcmp(page.names[0], "zzz") == 0, "p's tags do not include p/q's");
    is_int(br_tag_list(s, R("nosuch"), br_str(NULL, 0), 10, on_name, &page, &more), BR_E_NAME_UNKNOWN, "tags of unknown repo");
    memset(&page, 0, sizeof(page));
    is_int(br_tag_list(s, R("a"), br_str(NULL, 0), 10, on_name, &page, &more), 0, "tags of a repo with only blobs");
    is_int(page.n, 0, "none");

    /* catalog */
    memset(&all, 0, sizeof(all));
    is_int(br_repo_list(s, br_str(NULL, 0), 1000, on_name, &all, &more), 0, "repo list");
    sorted = 1;
    for (size_t i = 1; i < all.n; i++)
        sorted &= strcmp(all.names[i - 1], all.names[i]) < 0;
    ok(sorted && all.n >= 8, "repos in lexical order (%zu)", all.n);
    int has_pq = 0, has_c = 0;
    for (size_t i = 0; i < all.n; i++) {
        has_pq |= strcmp(all.names[i], "p/q") == 0;
        has_c |= strcmp(all.names[i], "c") == 0;
    }
    ok(has_pq && !has_c, "catalog has p/q, not the never-created c");
    total = 0;
    pages = 0;
    order_ok = 1;
    last[0] = '\0';
    do {
        memset(&page, 0, sizeof(page));
        if (br_repo_list(s, br_cstr(last), 3, on_name, &page, &more) != 0)
            break;
        for (size_t i = 0; i < page.n; i++)
            order_ok &= total + i < all.n && strcmp(page.names[i], all.names[total + i]) == 0;
        total += page.n;
        if (page.n != 0)
            snprintf(last, sizeof(last), "%s", page.names[page.n - 1]);
    } while (more && ++pages < 100);
    is_int(total, all.n, "catalog pages of 3 cover every repo");
    ok(order_ok, "catalog pages match the full list");
    store_consistent(s, "listings");
}

/* ---- concurrency smoke test ---------------------------------------------------------- */

static void *worker(void *arg)
{
    long id = (long)arg;
    unsigned char buf[70000];
    char repo[32];
    int *fails = br_calloc(1, sizeof(int));
    snprintf(repo, sizeof(repo), "w%ld", id % 2);
    for (int i = 0; i < 40; i++) {
        br_upload_t *u;
        br_digest_t d;
        uint64_t size;
        size_t n = 1000 + (size_t)(i * 1500);
        fill_bytes(buf, n, (uint64_t)(id * 1000 + i % 10)); /* threads share content: EEXIST paths */
        d = digest_of(BR_ALG_SHA256, buf, n);
        if (br_upload_start(s, br_cstr(repo), &u) != 0) {
            ++*fails;
            continue;
        }
        *fails += br_upload_write(u, buf, n / 2) != 0;
        *fails += br_upload_save(u) != 0;
        *fails += br_upload_write(u, buf + n / 2, n - n / 2) != 0;
        *fails += br_upload_commit(u, &d, &size) != 0;
        br_upload_destroy(u);
        if (i % 3 == 0)
            *fails += br_blob_unlink(s, br_cstr(repo), &d) != 0 && br_blob_stat(s, br_cstr(repo), &d, NULL) == 0;
        /* races the other thread's unlinks of the same content */
        pick_t p = {repo, ""};
        int r = br_blob_mount_any(s, R("wm"), &d, on_pick, &p, NULL);
        *fails += r != 0 && r != BR_E_BLOB_UNKNOWN;
        br_digest_t pd;
        *fails += br_blob_put(s, br_cstr(repo), BR_ALG_SHA256, buf, 100, &pd) != 0;
    }
    return fails;
}

static void test_threads(void)
{
    pthread_t th[4];
    int fails = 0;
    for (long i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, worker, (void *)i);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        fails += *(int *)r;
        free(r);
    }
    is_int(fails, 0, "4 threads of uploads, commits, unlinks, automatic mounts and puts");
    store_consistent(s, "threads");
}

/* ---- raw index edits and the schema upgrade ------------------------------------------ */

typedef struct {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, holders, refby;
} raw_t;

/* Closes the store and opens its index with plain LMDB, for damage and old
 * schemas that no storage function makes. raw_end commits and reopens the
 * store, returning br_store_open's result. */
static void raw_begin(raw_t *r)
{
    char path[512];
    br_store_close(s);
    s = NULL;
    snprintf(path, sizeof(path), "%s/index", root);
    if (mdb_env_create(&r->env) != 0 || mdb_env_set_maxdbs(r->env, 16) != 0 || mdb_env_open(r->env, path, MDB_NOTLS, 0644) != 0 ||
        mdb_txn_begin(r->env, NULL, 0, &r->txn) != 0 || mdb_dbi_open(r->txn, "meta", 0, &r->meta) != 0 ||
        mdb_dbi_open(r->txn, "holders", 0, &r->holders) != 0 || mdb_dbi_open(r->txn, "refby", 0, &r->refby) != 0) {
        printf("Bail out! raw LMDB open of %s\n", path);
        exit(1);
    }
}

static int raw_end(raw_t *r)
{
    int rc = mdb_txn_commit(r->txn);
    mdb_env_close(r->env);
    ok(rc == 0, "raw index edit committed");
    return br_store_open(&s, root, &opts);
}

static int raw_holder(raw_t *r, const br_digest_t *d, const char *repo, int add)
{
    unsigned char pd[BR_PDIGEST_MAX];
    br_key_t key;
    MDB_val k, v = {0, NULL};
    br_pdigest_pack(d, pd);
    br_key_holder(&key, pd, br_cstr(repo));
    k = br_key_val(&key);
    return add ? mdb_put(r->txn, r->holders, &k, &v, 0) : mdb_del(r->txn, r->holders, &k, NULL);
}

static void raw_set_version(raw_t *r, uint32_t version)
{
    MDB_val k = {7, (void *)"version"}, v = {sizeof(version), &version};
    is_int(mdb_put(r->txn, r->meta, &k, &v, 0), 0, "raw: schema version set to %u", version);
}

static long long raw_version(void)
{
    raw_t r;
    MDB_val k = {7, (void *)"version"}, v;
    uint32_t version = 0;
    raw_begin(&r);
    if (mdb_get(r.txn, r.meta, &k, &v) == 0 && v.mv_size == sizeof(version))
        memcpy(&version, v.mv_data, sizeof(version));
    is_int(raw_end(&r), 0, "store reopens after reading the version");
    return version;
}

static void expect_corrupt(const char *what, const char *want)
{
    char detail[512];
    int ret = br_store_verify(s, 0, detail, sizeof(detail));
    is_int(ret, BR_E_CORRUPT, "verify finds %s", what);
    ok(strstr(detail, want) != NULL, "... and says so: %.300s", detail);
}

static void test_holders_damage_and_upgrade(void)
{
    br_digest_t d = digest_of(BR_ALG_SHA256, "hello", 5);
    pick_t p = {"b", ""};
    char hb[1024];
    raw_t r;

    is_str(holders(&d, hb, sizeof(hb)), "a,b", "hello held by a and b");
    raw_begin(&r);
    is_int(raw_holder(&r, &d, "a", 0), 0, "raw: delete the holders row of a");
    is_int(raw_end(&r), 0, "store reopens");
    expect_corrupt("a link without its holders row", "link in a lacks its holders row");
    raw_begin(&r);
    is_int(raw_holder(&r, &d, "a", 1), 0, "raw: put it back");
    is_int(raw_holder(&r, &d, "ghost", 1), 0, "raw: add a holders row without a link");
    is_int(raw_end(&r), 0, "store reopens");
    expect_corrupt("a holders row without its link", "holders row for ghost without its link");
    raw_begin(&r);
    is_int(raw_holder(&r, &d, "ghost", 0), 0, "raw: remove it");
    is_int(raw_end(&r), 0, "store reopens");
    store_consistent(s, "holders repaired");

    /* A version 1 index has no holders rows; one stray row stands for any
     * leftover, which the rebuild from links must drop. */
    raw_begin(&r);
    is_int(mdb_drop(r.txn, r.holders, 0), 0, "raw: empty holders");
    is_int(raw_holder(&r, &d, "ghost", 1), 0, "raw: one stray holders row");
    raw_set_version(&r, 1);
    is_int(raw_end(&r), 0, "a version 1 store opens");
    is_int(raw_version(), 4, "and is at version 4 after");
    store_consistent(s, "schema 1 -> 4 upgrade");
    is_str(holders(&d, hb, sizeof(hb)), "a,b", "holders rebuilt: a,b (no ghost)");
    is_int(br_blob_mount_any(s, R("upgraded"), &d, on_pick, &p, NULL), 0, "automatic mount after the upgrade");
    is_str(p.seen, "a,b", "... offered a, took b");
    is_int(br_blob_unlink(s, R("upgraded"), &d), 0, "unlink it again");
    store_consistent(s, "automatic mount after the upgrade");

    /* Version 2 had no refby rows: the upgrade builds them from the manifests. */
    raw_begin(&r);
    is_int(mdb_drop(r.txn, r.refby, 0), 0, "raw: empty refby");
    raw_set_version(&r, 2);
    is_int(raw_end(&r), 0, "a version 2 store opens");
    is_int(raw_version(), 4, "and is at version 4 after");
    store_consistent(s, "schema 2 -> 4 upgrade (refby rebuilt)");

    raw_begin(&r);
    raw_set_version(&r, 5);
    is_int(raw_end(&r), BR_E_CORRUPT, "a store from a newer berth (version 5) is refused");
    ok(s == NULL, "no store handle then");
    raw_begin(&r);
    raw_set_version(&r, 4);
    is_int(raw_end(&r), 0, "version 4 opens again");
}

/* The exclusive lock: one holder at a time, the PID in berth.lock, shared
 * opens beside it, and a refused open creates nothing under the root. */
static void test_lock(void)
{
    char lroot[256], path[300];
    br_store_options_t ex = {.map_size = 1ULL << 30, .exclusive = 1}, shared = {.map_size = 1ULL << 30};
    br_store_t *a = NULL, *b = NULL, *c = NULL;

    make_root(lroot, sizeof(lroot), "lock");
    /* Someone else holds the lock file: the open is refused before anything
     * else is created. */
    snprintf(path, sizeof(path), "%s/berth.lock", lroot);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ok(fd >= 0 && flock(fd, LOCK_EX) == 0 && write(fd, "4242\n", 5) == 5, "lock file held by hand");
    is_int(br_store_open(&a, lroot, &ex), EBUSY, "exclusive open of a locked store: EBUSY");
    ok(a == NULL, "... and no handle");
    is_int((int)br_store_lock_owner(lroot), 4242, "br_store_lock_owner reads the holder's PID");
    snprintf(path, sizeof(path), "%s/index", lroot);
    ok(access(path, F_OK) != 0, "... and nothing was created under the root");
    close(fd);

    is_int(br_store_open(&a, lroot, &ex), 0, "exclusive open once the holder is gone");
    is_int((int)br_store_lock_owner(lroot), (int)getpid(), "berth.lock names this process");
    is_int(br_store_open(&b, lroot, &ex), EBUSY, "a second exclusive handle in the same process: EBUSY");
    is_int(br_store_open(&c, lroot, &shared), 0, "a shared open beside the exclusive one");
    br_digest_t d;
    is_int(br_blob_put(a, R("lock/r"), BR_ALG_SHA256, "x", 1, &d), 0, "the holder writes");
    is_int(br_blob_stat(c, R("lock/r"), &d, NULL), 0, "the shared handle sees it");
    br_store_close(c);
    br_store_close(a);
    is_int((int)br_store_lock_owner(lroot), 0, "closing empties berth.lock");
    is_int(br_store_open(&b, lroot, &ex), 0, "exclusive open after close");
    br_store_close(b);
    rm_tree(lroot);
}

/* ---- immutable tags ---------------------------------------------------------------- */

static int keep_v(void *ctx, br_str_t tag)
{
    ++*(int *)ctx;
    return tag.len != 0 && tag.base[0] == 'v';
}

static void test_immutable(void)
{
    br_digest_t d1, d2, got;
    br_manifest_rec_t rec;
    int asked = 0;
    br_manifest_put_t m = mput("im", "{\"im\":1}", "v1", NULL, 0);
    m.tag_immutable = 1;
    is_int(br_manifest_put(s, &m, &d1), 0, "an immutable tag is created");
    is_int(br_manifest_put(s, &m, &got), 0, "and set again to the same manifest");
    m = mput("im", "{\"im\":2}", "v1", NULL, 0);
    m.tag_immutable = 1;
    is_int(br_manifest_put(s, &m, &d2), BR_E_DENIED, "moving it to another manifest: BR_E_DENIED");
    is_int(br_manifest_get(s, R("im"), R("v1"), &rec), 0, "it still resolves");
    ok(br_digest_eq(&rec.digest, &d1), "... to the first manifest");
    m.tag_immutable = 0;
    m.tag = R("latest");
    is_int(br_manifest_put(s, &m, &d2), 0, "the second manifest under another tag");
    is_int(br_manifest_delete_unless(s, R("im"), &d1, keep_v, &asked), BR_E_DENIED, "deleting v1's manifest while keep says no");
    ok(asked == 1, "keep was asked about its one tag");
    is_int(br_manifest_get(s, R("im"), R("v1"), &rec), 0, "nothing was deleted");
    asked = 0;
    is_int(br_manifest_delete_unless(s, R("im"), &d2, keep_v, &asked), 0, "a manifest whose tags keep lets go is deleted");
    is_int(br_manifest_get(s, R("im"), R("latest"), &rec), BR_E_MANIFEST_UNKNOWN, "with its tag");
    store_consistent(s, "immutable tags");
}

int main(void)
{
    int ret;
    make_root(root, sizeof(root), "store");
    ret = br_store_open(&s, root, &opts);
    is_int(ret, 0, "store open");
    if (ret != 0)
        return tap_done();
    char want[300];
    snprintf(want, sizeof(want), "%s/tmp", root);
    is_str(br_store_tmp_dir(s), want, "tmp dir");
    ok(access(want, W_OK) == 0, "tmp dir exists");

    test_blobs();
    test_mount_any();
    test_uploads();
    test_split_uploads();
    test_purge();
    /* Durable commits were exercised above; the index logic below does not
     * depend on them and runs hundreds of transactions. */
    opts.fsync = 0;
    reopen();
    test_manifests();
    test_referrers();
    test_listings();
    test_threads();
    test_holders_damage_and_upgrade();
    test_immutable();
    test_lock();

    /* Everything survives a restart, with the default map size. */
    opts.map_size = 0;
    reopen();
    br_digest_t d = digest_of(BR_ALG_SHA256, "hello", 5);
    is_int(br_blob_stat(s, R("a"), &d, NULL), 0, "blob still there after reopen");
    is_int(refs(&d), 2, "refcount persisted");
    store_consistent(s, "final reopen");

    br_store_close(s);
    rm_tree(root);
    return tap_done();
}
