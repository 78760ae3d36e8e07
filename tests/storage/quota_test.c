/*
 * Unit tests for quotas (storage.h, quota.c): a blob counts once per scope
 * however many of the scope's repositories link it; a put, a mount or a
 * manifest put that would take a scope over its limit fails with BR_E_QUOTA
 * inside its write txn and stores nothing, one that adds no new bytes to the
 * scope never does; the global limit bounds the store's bytes; unlinks and
 * the collector give bytes back; a second process's unlinks keep the same
 * counters; two processes racing for the last bytes cannot both pass; and
 * the counters kept link by link equal those recomputed from the links,
 * also for a scope added later; verify reports a wrong counter and fsck
 * --repair recounts it.
 */
#pragma GCC diagnostic ignored "-Wunused-function" /* util.h helpers this test does not need */
#include "tests/storage/util.h"
#include <sys/wait.h>
#include "storage/internal.h"
#include "tests/tap.h"

static char root[256];
static br_store_t *s;
static br_store_options_t opts = {0, 1ULL << 30, 0};

#define R(lit) BR_STR(lit)

static br_quota_t quota(const char *glob, uint64_t max)
{
    br_quota_t q;
    memset(&q, 0, sizeof(q));
    snprintf(q.glob, sizeof(q.glob), "%s", glob);
    q.max_bytes = max;
    return q;
}

/* The counter the index keeps for glob (UINT64_MAX when not listed). */
static uint64_t used(const char *glob)
{
    br_quota_t q[BR_QUOTA_MAX];
    size_t n;
    if (br_store_quotas_get(s, q, BR_QUOTA_MAX, &n) != 0)
        return UINT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (strcmp(q[i].glob, glob) == 0)
            return q[i].used_bytes;
    return UINT64_MAX;
}

/* Every recorded counter equals the one recomputed from the links. */
static void check_counts(const char *after)
{
    br_quota_t kept[BR_QUOTA_MAX], fresh[BR_QUOTA_MAX];
    size_t n;
    int same = br_store_quotas_get(s, kept, BR_QUOTA_MAX, &n) == 0;
    memcpy(fresh, kept, sizeof(kept[0]) * n);
    same = same && br_store_quota_usage(s, fresh, n) == 0;
    for (size_t i = 0; same && i < n; i++) {
        if (kept[i].used_bytes != fresh[i].used_bytes) {
            printf("#   %s: kept %llu, recomputed %llu\n", kept[i].glob, (unsigned long long)kept[i].used_bytes,
                   (unsigned long long)fresh[i].used_bytes);
            same = 0;
        }
    }
    ok(same && n != 0, "counters equal the recount from links after %s", after);
    store_consistent(s, after);
}

static br_digest_t seeded(size_t len, uint64_t seed)
{
    unsigned char *p = br_malloc(len);
    fill_bytes(p, len, seed);
    br_digest_t d = digest_of(BR_ALG_SHA256, p, len);
    free(p);
    return d;
}

static br_digest_t put(const char *repo, size_t len, uint64_t seed, int *ret)
{
    unsigned char *p = br_malloc(len);
    br_digest_t d;
    fill_bytes(p, len, seed);
    *ret = br_blob_put(s, br_cstr(repo), BR_ALG_SHA256, p, len, &d);
    d = digest_of(BR_ALG_SHA256, p, len);
    free(p);
    return d;
}

/* A child process: opens the store itself, puts a blob, exits 0 / 1 (quota) / 2. */
/* Counts fsck's quota problems. */
static void on_problem(void *ctx, const char *msg)
{
    printf("# fsck: %s\n", msg);
    *(int *)ctx += strncmp(msg, "quota ", 6) == 0;
}

static pid_t child_put(const char *repo, size_t len, uint64_t seed)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    br_store_t *cs;
    unsigned char *p = br_malloc(len);
    alarm(30);
    if (br_store_open(&cs, root, &opts) != 0)
        _exit(2);
    fill_bytes(p, len, seed);
    int ret = br_blob_put(cs, br_cstr(repo), BR_ALG_SHA256, p, len, NULL);
    br_store_close(cs);
    _exit(ret == 0 ? 0 : ret == BR_E_QUOTA ? 1 : 2);
}

static int child_status(pid_t pid)
{
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(void)
{
    make_root(root, sizeof(root), "quota");
    int ret = br_store_open(&s, root, &opts);
    is_int(ret, 0, "store open");
    if (ret != 0)
        return tap_done();

    br_quota_t list[] = {quota("team/**", 1000), quota("x/*", 100000), quota("", 5000)};
    is_int(br_store_quotas_set(s, list, 3, 1), 0, "record 3 quotas (team/** 1000, x/* 100000, global 5000)");
    is_int((long long)used("team/**"), 0, "team/** starts empty");

    /* ---- counted once per scope ---- */
    br_digest_t a = put("team/a", 400, 1, &ret);
    is_int(ret, 0, "team/a: put A (400)");
    put("team/b", 400, 1, &ret);
    is_int(ret, 0, "team/b: put A again");
    is_int((long long)used("team/**"), 400, "team/**: A counted once for two repositories");
    br_digest_t b = put("team/a", 500, 2, &ret);
    is_int(ret, 0, "team/a: put B (500)");
    is_int((long long)used("team/**"), 900, "team/**: 900");
    is_int((long long)used("x/*"), 0, "x/*: untouched");

    /* ---- refusals, decided in the write txn ---- */
    br_digest_t c = put("team/c", 200, 3, &ret);
    is_int(ret, BR_E_QUOTA, "team/c: put C (200) over 1000: BR_E_QUOTA");
    is_int(br_blob_stat(s, R("team/c"), &c, NULL), BR_E_BLOB_UNKNOWN, "... C not linked in team/c");
    is_int(br_blob_stat_any(s, &c, NULL), BR_E_BLOB_UNKNOWN, "... nor recorded at all (the whole txn aborted)");
    char path[512];
    struct stat sb;
    br_blob_path(s, &c, path, sizeof(path));
    ok(stat(path, &sb) != 0 && errno == ENOENT, "... and its file, placed before the txn, taken back (no orphan)");
    is_int((long long)used("team/**"), 900, "... usage unchanged");
    put("team/b", 500, 2, &ret);
    is_int(ret, 0, "team/b: put B (new to team/b, in the scope already): accepted");
    put("team/a", 400, 1, &ret);
    is_int(ret, 0, "team/a: put A again (linked already): accepted");
    put("x/one", 200, 3, &ret);
    is_int(ret, 0, "x/one: put C (outside team/**)");
    is_int(br_blob_mount(s, R("team/z"), R("x/one"), &c, NULL), BR_E_QUOTA, "mount C from x/one into team/z: BR_E_QUOTA");
    is_int(br_blob_stat(s, R("team/z"), &c, NULL), BR_E_BLOB_UNKNOWN, "... C not linked in team/z");
    is_int(br_blob_mount(s, R("team/z"), R("team/a"), &a, NULL), 0, "mount A (in the scope) into team/z: fine");
    is_int(br_blob_mount(s, R("x/two"), R("team/a"), &b, NULL), 0, "mount B into x/two: x/* has room");
    is_int((long long)used("x/*"), 700, "x/*: C and B");

    br_quota_t why;
    is_int(br_store_quota_explain(s, R("team/z"), &c, 0, &why), BR_E_QUOTA, "explain the refused mount");
    ok(strcmp(why.glob, "team/**") == 0 && why.used_bytes == 900 && why.max_bytes == 1000 && why.need_bytes == 200,
       "... team/**: 900 used of 1000, needs 200 (got %s %llu %llu %llu)", why.glob, (unsigned long long)why.used_bytes,
       (unsigned long long)why.max_bytes, (unsigned long long)why.need_bytes);
    is_int(br_store_quota_explain(s, R("team/z"), &a, 0, &why), 0, "explain a push of A into team/z: nothing refuses it");

    char body[400];
    memset(body, ' ', sizeof(body));
    int n = snprintf(body, sizeof(body), "{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:%s\"}}", a.hex);
    body[n] = ' ';
    body[sizeof(body) - 1] = '\0';
    br_manifest_put_t mp = mput("team/a", body, "v1", &a, 1);
    is_int(br_manifest_put(s, &mp, NULL), BR_E_QUOTA, "team/a: a manifest whose %zu-byte body would exceed: BR_E_QUOTA",
           sizeof(body) - 1);
    br_manifest_rec_t rec;
    is_int(br_manifest_get(s, R("team/a"), R("v1"), &rec), BR_E_MANIFEST_UNKNOWN, "... nothing stored");
    check_counts("puts, refusals and mounts");

    /* ---- global limit ---- */
    put("x/big", 4000, 4, &ret);
    is_int(ret, BR_E_QUOTA, "x/big: 4000 more bytes in a store of 1100, limit 5000: BR_E_QUOTA");
    br_digest_t big = seeded(4000, 4);
    is_int(br_store_quota_explain(s, R("x/big"), &big, 4000, &why), BR_E_QUOTA, "explain it");
    ok(why.glob[0] == '\0' && why.used_bytes == 1100 && why.max_bytes == 5000, "... the global limit, 1100 of 5000");
    put("x/big", 3900, 4, &ret);
    is_int(ret, 0, "x/big: 3900 fits exactly");
    is_int((long long)used(""), 5000, "global: 5000 stored");

    /* ---- unlinks give back, only when the scope's last holder goes ---- */
    is_int(br_blob_unlink(s, R("team/a"), &a), 0, "unlink A from team/a");
    is_int((long long)used("team/**"), 900, "team/**: team/b and team/z still hold A");
    is_int(br_blob_unlink(s, R("team/b"), &a), 0, "unlink A from team/b");
    is_int(br_blob_unlink(s, R("team/z"), &a), 0, "unlink A from team/z");
    is_int((long long)used("team/**"), 500, "team/**: A's 400 given back");
    check_counts("unlinks");

    /* ---- a second process unlinks ---- */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        br_store_t *cs;
        alarm(30);
        if (br_store_open(&cs, root, &opts) != 0)
            _exit(2);
        int r = br_blob_unlink(cs, R("team/a"), &b) || br_blob_unlink(cs, R("team/b"), &b);
        br_store_close(cs);
        _exit(r);
    }
    is_int(child_status(pid), 0, "another process unlinks B from team/a and team/b");
    is_int((long long)used("team/**"), 0, "team/**: 0, as that process counted");
    is_int((long long)used("x/*"), 4600, "x/*: x/two still holds B");
    check_counts("a second process's unlinks");

    /* ---- the collector ---- */
    br_gc_options_t o;
    br_gc_stats_t st;
    memset(&o, 0, sizeof(o));
    o.wait = 1;
    is_int(br_store_gc(s, &o, &st), 0, "collect with grace 0");
    is_int((long long)used("team/**"), 0, "team/**: the collector's unlinks gave everything back");
    is_int((long long)used("x/*"), 0, "x/*: too");
    is_int((long long)used(""), 0, "global: nothing stored");
    check_counts("a collection");

    /* ---- racing processes for the last bytes ---- */
    pid_t p1 = child_put("team/r1", 600, 10), p2 = child_put("team/r2", 600, 11);
    int s1 = child_status(p1), s2 = child_status(p2);
    ok((s1 == 0 && s2 == 1) || (s1 == 1 && s2 == 0), "two processes put 600 bytes each into 1000: one passes, one BR_E_QUOTA (%d %d)",
       s1, s2);
    is_int((long long)used("team/**"), 600, "team/**: 600");
    check_counts("racing puts");

    /* ---- scope changes: recomputed equals incremental ---- */
    for (int i = 0; i < 40; i++) {
        static const char *const repos[] = {"team/a", "team/b", "team/c/d", "x/one", "x/two", "solo"};
        put(repos[i % 6], 10 + (size_t)(i % 7) * 3, (uint64_t)(100 + i % 9), &ret);
        if (ret != 0)
            break;
    }
    is_int(ret, 0, "40 puts of 9 distinct blobs across 6 repositories");
    br_quota_t list2[] = {quota("team/**", 1000), quota("team/*", 1000), quota("**", 1000000), quota("", 5000)};
    is_int(br_store_quotas_set(s, list2, 4, 0), 0, "record a changed list: team/* and ** new, x/* gone");
    is_int((long long)used("x/*"), (long long)UINT64_MAX, "x/* no longer listed");
    check_counts("the list changed (new scopes recomputed, kept ones incremental)");
    for (int i = 0; i < 20; i++) {
        static const char *const repos[] = {"team/a", "team/c/d", "solo", "x/one"};
        br_digest_t d = put(repos[i % 4], 10 + (size_t)(i % 7) * 3, (uint64_t)(100 + i % 9), &ret);
        if (i % 3 == 0)
            br_blob_unlink(s, br_cstr(repos[(i + 1) % 4]), &d);
    }
    check_counts("puts and unlinks under the new list");
    uint64_t before[4];
    for (int i = 0; i < 4; i++)
        before[i] = used(list2[i].glob);
    is_int(br_store_quotas_set(s, list2, 4, 1), 0, "recompute every counter");
    ok(used("team/**") == before[0] && used("team/*") == before[1] && used("**") == before[2] && used("") == before[3],
       "recomputed counters equal the incremental ones");

    /* ---- a damaged counter: verify reports it, fsck --repair recounts ---- */
    MDB_txn *txn;
    uint64_t wrong = before[0] + 12345;
    MDB_val k = {7, (void *)"team/**"}, v = {sizeof(wrong), &wrong};
    ok(mdb_txn_begin(s->env, NULL, 0, &txn) == 0 && mdb_put(txn, s->db_qusage, &k, &v, 0) == 0 && mdb_txn_commit(txn) == 0,
       "damage team/**'s counter");
    char detail[512];
    is_int(br_store_verify(s, 0, detail, sizeof(detail)), BR_E_CORRUPT, "verify: BR_E_CORRUPT");
    ok(strstr(detail, "quota \"team/**\": the index counts") != NULL, "... naming the quota (%.200s)", detail);
    br_fsck_options_t fo;
    br_fsck_stats_t fst;
    memset(&fo, 0, sizeof(fo));
    int quota_problems = 0;
    fo.problem = on_problem;
    fo.ctx = &quota_problems;
    is_int(br_store_fsck(s, &fo, &fst), 0, "fsck runs");
    is_int(quota_problems, 1, "fsck: one quota problem");
    is_int((long long)fst.problems, 1, "... and no other (refused puts, the racing one too, left no orphan file)");
    is_int((long long)used("team/**"), (long long)wrong, "... left as it was without --repair");
    fo.repair = 1;
    is_int(br_store_fsck(s, &fo, &fst), 0, "fsck --repair runs");
    is_int((long long)used("team/**"), (long long)before[0], "... and recounts the counter");
    check_counts("fsck --repair");

    is_int(br_store_quotas_set(s, NULL, 0, 0), 0, "remove every quota");
    put("big/one", 6000, 99, &ret);
    is_int(ret, 0, "without quotas 6000 bytes go in");

    br_store_close(s);
    rm_tree(root);
    return tap_done();
}
