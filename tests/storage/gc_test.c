/*
 * Unit tests for the collector (storage/gc.c), one rule at a time: what is
 * reachable stays, the grace period protects fresh links and unreferenced
 * blobs, a deleted manifest's blobs go, a dry run's figures equal the real
 * run's, untagged manifests (kept, or collected with indexes, referrers and
 * subjects in the right order), orphan files, a writer re-placing a file the
 * collector took, the dying state a killed collection leaves, the race of a
 * manifest put against the collector (threads), the lock between collectors,
 * and kill -9 of a collecting process while another pushes. Then fsck
 * (br_store_fsck): a clean store, a corrupted blob, a missing file, orphans,
 * stray files, and --repair's re-index and removal.
 */
#include "tests/storage/util.h"
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include "storage/internal.h"
#include "tests/tap.h"

static char root[256];
static br_store_t *s;
static br_store_options_t opts = {0, 1ULL << 30, 0};

#define R(lit) BR_STR(lit)

static int file_exists(const br_digest_t *d)
{
    char path[4096];
    struct stat st;
    br_blob_path(s, d, path, sizeof(path));
    return stat(path, &st) == 0;
}

static br_gc_stats_t gc(uint64_t grace, int untagged_delete, int dry_run)
{
    br_gc_options_t o;
    br_gc_stats_t st;
    memset(&o, 0, sizeof(o));
    o.grace_s = grace;
    o.untagged_delete = untagged_delete;
    o.dry_run = dry_run;
    o.wait = 1;
    int ret = br_store_gc(s, &o, &st);
    if (ret != 0)
        printf("# gc: %s\n", br_strerror(ret));
    return st;
}

/* A dry run, then the real run: both must report the same figures. */
static br_gc_stats_t gc_both(uint64_t grace, int untagged_delete, const char *what)
{
    br_gc_stats_t dry = gc(grace, untagged_delete, 1), real = gc(grace, untagged_delete, 0);
    ok(dry.blobs == real.blobs && dry.manifests == real.manifests && dry.bytes == real.bytes && dry.links == real.links,
       "%s: dry run %llu/%llu/%llu/%llu = real run %llu/%llu/%llu/%llu (blobs/manifests/links/bytes)", what,
       (unsigned long long)dry.blobs, (unsigned long long)dry.manifests, (unsigned long long)dry.links,
       (unsigned long long)dry.bytes, (unsigned long long)real.blobs, (unsigned long long)real.manifests,
       (unsigned long long)real.links, (unsigned long long)real.bytes);
    return real;
}

/* Rewrites the time of link (repo, d) to t (raw, inside a write txn). */
static void age_link(const char *repo, const br_digest_t *d, uint64_t t)
{
    MDB_txn *txn;
    br_key_t key;
    br_key_init(&key, br_cstr(repo));
    br_key_add_digest(&key, d);
    MDB_val k = br_key_val(&key), v = {sizeof(t), &t};
    br_store_wtxn_begin(s, &txn);
    mdb_put(txn, s->db_links, &k, &v, 0);
    br_store_wtxn_end(&txn, 0);
}

static void test_reachable_and_grace(void)
{
    br_digest_t cfg, layer, man, fresh;
    br_gc_stats_t st;
    is_int(br_blob_put(s, R("a"), BR_ALG_SHA256, "config-a", 8, &cfg), 0, "put config");
    is_int(br_blob_put(s, R("a"), BR_ALG_SHA256, "layer-a", 7, &layer), 0, "put layer");
    br_digest_t refs[2] = {cfg, layer};
    br_manifest_put_t m = mput("a", "{\"m\":\"a\"}", "v1", refs, 2);
    is_int(br_manifest_put(s, &m, &man), 0, "put tagged manifest");

    st = gc_both(0, 1, "tagged image, grace 0");
    ok(st.blobs == 0 && st.manifests == 0 && st.links == 0, "a tagged image loses nothing, even untagged=delete");
    ok(file_exists(&cfg) && file_exists(&layer) && file_exists(&man), "its files are all there");

    is_int(br_blob_put(s, R("a"), BR_ALG_SHA256, "fresh-layer", 11, &fresh), 0, "a layer uploaded before its manifest");
    st = gc_both(3600, 0, "fresh layer, grace 1h");
    ok(st.blobs == 0 && st.links == 0, "the grace period keeps it");
    is_int(br_blob_stat(s, R("a"), &fresh, NULL), 0, "still linked");
    age_link("a", &fresh, br_now() - 7200);
    st = gc_both(3600, 0, "the same layer two hours later");
    ok(st.blobs == 1 && st.links == 1 && st.bytes == 11, "its link and blob are collected (%llu blobs, %llu bytes)",
       (unsigned long long)st.blobs, (unsigned long long)st.bytes);
    ok(!file_exists(&fresh), "file gone");
    is_int(br_blob_stat(s, R("a"), &fresh, NULL), BR_E_BLOB_UNKNOWN, "no longer served");
    br_digest_t again[1] = {fresh};
    m = mput("a", "{\"m\":\"late\"}", "late", again, 1);
    is_int(br_manifest_put(s, &m, NULL), BR_E_MANIFEST_BLOB_UNKNOWN, "a manifest put naming it fails cleanly");
    store_consistent(s, "grace");
    st = gc_both(0, 0, "after the refused put");
    ok(st.blobs == 1 && st.bytes == 12, "the refused put's body file was an orphan; collected with grace 0");
}

static void test_deleted_manifest(void)
{
    br_digest_t cfg, layer, shared, man, man2;
    br_gc_stats_t st;
    is_int(br_blob_put(s, R("d"), BR_ALG_SHA256, "config-d", 8, &cfg), 0, "put config");
    is_int(br_blob_put(s, R("d"), BR_ALG_SHA256, "layer-d", 7, &layer), 0, "put layer");
    is_int(br_blob_put(s, R("d"), BR_ALG_SHA256, "shared", 6, &shared), 0, "put shared layer");
    is_int(br_blob_put(s, R("e"), BR_ALG_SHA256, "shared", 6, &shared), 0, "the same layer pushed to e");
    br_digest_t refs[3] = {cfg, layer, shared}, refs2[1] = {shared};
    const char *body = "{\"m\":\"d\"}";
    br_manifest_put_t m = mput("d", body, "v1", refs, 3);
    is_int(br_manifest_put(s, &m, &man), 0, "put manifest in d");
    m = mput("e", "{\"m\":\"e\"}", "v1", refs2, 1);
    is_int(br_manifest_put(s, &m, &man2), 0, "put manifest in e using shared");
    is_int(br_manifest_delete(s, R("d"), &man), 0, "delete d's manifest");
    st = gc_both(0, 0, "deleted manifest, grace 0");
    ok(st.blobs == 3 && st.manifests == 0, "config, layer and body collected (%llu blobs)", (unsigned long long)st.blobs);
    is_int(st.bytes, 8 + 7 + strlen(body), "bytes reclaimed: config + layer + body");
    ok(!file_exists(&cfg) && !file_exists(&layer) && !file_exists(&man), "their files are gone");
    ok(file_exists(&shared), "the layer e's manifest uses stays");
    is_int(br_blob_stat(s, R("e"), &shared, NULL), 0, "and e serves it");
    is_int(br_blob_stat(s, R("d"), &shared, NULL), BR_E_BLOB_UNKNOWN, "d's link to it went (nothing in d uses it)");
    st = gc_both(0, 0, "second run");
    ok(st.blobs == 0 && st.links == 0, "a second run finds nothing");
    store_consistent(s, "deleted manifest collected");
}

static void test_untagged(void)
{
    br_digest_t layer, child, idx, untagged, subj, ref, orphan_ref, gone_subj;
    br_gc_stats_t st;
    br_manifest_put_t m;
    is_int(br_blob_put(s, R("u"), BR_ALG_SHA256, "layer-u", 7, &layer), 0, "put layer");
    br_digest_t lrefs[1] = {layer};
    m = mput("u", "{\"child\":1}", "", lrefs, 1);
    is_int(br_manifest_put(s, &m, &child), 0, "child manifest by digest");
    br_digest_t crefs[1] = {child};
    m = mput("u", "{\"index\":1}", "latest", crefs, 1);
    m.media_type = R("application/vnd.oci.image.index.v1+json");
    is_int(br_manifest_put(s, &m, &idx), 0, "tagged index holding it");
    m = mput("u", "{\"untagged\":1}", "", lrefs, 1);
    is_int(br_manifest_put(s, &m, &untagged), 0, "an untagged manifest");
    m = mput("u", "{\"subject\":1}", "s", NULL, 0);
    is_int(br_manifest_put(s, &m, &subj), 0, "a tagged subject");
    m = mput("u", "{\"sig\":1}", "", NULL, 0);
    m.subject = &subj;
    is_int(br_manifest_put(s, &m, &ref), 0, "its untagged referrer");
    gone_subj = digest_of(BR_ALG_SHA256, "never pushed", 12);
    m = mput("u", "{\"sig\":2}", "", NULL, 0);
    m.subject = &gone_subj;
    is_int(br_manifest_put(s, &m, &orphan_ref), 0, "a referrer of a subject that is not there");

    st = gc_both(0, 0, "untagged: keep");
    is_int(st.manifests, 0, "untagged: keep collects no manifest");
    st = gc_both(3600, 1, "untagged: delete, within grace");
    is_int(st.manifests, 0, "freshly pushed untagged manifests are kept for the grace period");
    st = gc_both(0, 1, "untagged: delete");
    is_int(st.manifests, 2, "the untagged manifest and the referrer without subject go");
    br_manifest_rec_t rec;
    char buf[BR_DIGEST_MAX + 1];
    is_int(br_manifest_get(s, R("u"), br_str(buf, br_digest_format(&untagged, buf)), &rec), BR_E_MANIFEST_UNKNOWN, "untagged gone");
    is_int(br_manifest_get(s, R("u"), br_str(buf, br_digest_format(&orphan_ref, buf)), &rec), BR_E_MANIFEST_UNKNOWN,
           "subjectless referrer gone");
    is_int(br_manifest_get(s, R("u"), br_str(buf, br_digest_format(&child, buf)), &rec), 0, "child of a tagged index kept");
    is_int(br_manifest_get(s, R("u"), br_str(buf, br_digest_format(&ref, buf)), &rec), 0, "referrer of a live subject kept");
    ok(file_exists(&layer), "the layer the child uses is kept");

    /* Untag the index and the subject: everything goes in one run, index
     * before child and subject before referrer. */
    is_int(br_tag_delete(s, R("u"), R("latest")), 0, "untag the index");
    is_int(br_tag_delete(s, R("u"), R("s")), 0, "untag the subject");
    st = gc_both(0, 1, "untagged index and subject");
    is_int(st.manifests, 4, "index, child, subject and referrer collected");
    ok(!file_exists(&layer) && !file_exists(&idx) && !file_exists(&child), "their files are gone");
    store_consistent(s, "untagged collection");
}

/* What a collection killed after its first txn leaves: the row marked dying. */
static void mark_dying(const br_digest_t *d)
{
    MDB_txn *txn;
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_val k = {br_pdigest_pack(d, pd), pd}, v;
    br_blob_rec_t rec;
    br_store_wtxn_begin(s, &txn);
    mdb_get(txn, s->db_blobs, &k, &v);
    br_blob_rec_read(&v, &rec);
    rec.flags |= BR_BLOB_DYING;
    v.mv_size = sizeof(rec);
    v.mv_data = &rec;
    mdb_put(txn, s->db_blobs, &k, &v, 0);
    br_store_wtxn_end(&txn, 0);
}

static void test_orphans_and_dying(void)
{
    br_digest_t d = digest_of(BR_ALG_SHA256, "orphan!", 7), e;
    char path[4096], other[4200];
    br_gc_stats_t st;
    br_blob_path(s, &d, path, sizeof(path));
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
    FILE *f = fopen(path, "w");
    fputs("orphan!", f);
    fclose(f);
    snprintf(other, sizeof(other), "%.*s/not-a-digest", (int)(slash - path), path);
    f = fopen(other, "w");
    fclose(f);
    st = gc_both(3600, 0, "fresh orphan");
    is_int(st.blobs, 0, "a fresh unrecorded file may be a commit in flight: kept");
    st = gc_both(0, 0, "orphan, grace 0");
    ok(st.blobs == 1 && st.bytes == 7, "the orphan file is collected");
    ok(!file_exists(&d), "gone");
    ok(access(other, F_OK) == 0, "a file that is no blob name is left alone");
    unlink(other);

    /* A collection killed between marking and removing leaves dying rows,
     * some with their file already in the trash. */
    is_int(br_blob_put(s, R("x"), BR_ALG_SHA256, "dying", 5, &e), 0, "put a blob");
    is_int(br_blob_unlink(s, R("x"), &e), 0, "unlink it");
    mark_dying(&e);
    br_blob_path(s, &e, path, sizeof(path));
    unlink(path);
    store_consistent(s, "a dying row without its file (a killed collection)");
    is_int(br_blob_stat_any(s, &e, NULL), BR_E_BLOB_UNKNOWN, "a dying blob is unknown");
    is_int(br_blob_mount(s, R("y"), br_str("", 0), &e, NULL), BR_E_BLOB_UNKNOWN, "and cannot be mounted");
    /* A writer pushing the same content now must place the file again. */
    is_int(br_blob_put(s, R("y"), BR_ALG_SHA256, "dying", 5, &e), 0, "push the same content");
    ok(file_exists(&e), "its file is back");
    is_int(br_blob_stat(s, R("y"), &e, NULL), 0, "and served");
    store_consistent(s, "a dying blob pushed again");
    is_int(br_blob_unlink(s, R("y"), &e), 0, "unlink it again");
    mark_dying(&e);
    st = gc_both(3600, 0, "a dying blob, whatever the grace");
    is_int(st.blobs, 1, "the next collection finishes it");
    is_int(br_blob_stat_any(s, &e, NULL), BR_E_BLOB_UNKNOWN, "row gone");
    ok(!file_exists(&e), "file gone");
    store_consistent(s, "dying finished");
}

static void test_lock(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/gc.lock", root);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    ok(fd >= 0 && flock(fd, LOCK_EX) == 0, "another collector holds the lock");
    br_gc_options_t o;
    br_gc_stats_t st;
    memset(&o, 0, sizeof(o));
    is_int(br_store_gc(s, &o, &st), BR_E_BUSY, "a collection that may not wait: busy");
    o.dry_run = 1;
    is_int(br_store_gc(s, &o, &st), 0, "a dry run needs no lock");
    close(fd);
    o.dry_run = 0;
    is_int(br_store_gc(s, &o, &st), 0, "lock released: runs");
}

/* ---- the race: pushes against a collector with grace 0 ------------------------ */

typedef struct {
    volatile int stop;
    int pushed, refused, bad;
} pusher_t;

static void *pusher(void *arg)
{
    pusher_t *p = arg;
    unsigned char buf[512];
    char body[128];
    for (int i = 0; !p->stop; i++) {
        br_digest_t layers[3], man;
        for (int j = 0; j < 3; j++) {
            /* Half the layers are the same few blobs again and again: those
             * are the ones a collection and a push fight over. */
            fill_bytes(buf, sizeof(buf), j == 0 ? (uint64_t)(i % 4) : (uint64_t)i * 3 + (uint64_t)j + 100);
            int r = br_blob_put(s, R("race"), BR_ALG_SHA256, buf, sizeof(buf), &layers[j]);
            if (r != 0) {
                printf("# blob put: %s\n", br_strerror(r));
                p->bad++;
            }
        }
        char tag[32];
        snprintf(body, sizeof(body), "{\"race\":%d}", i);
        snprintf(tag, sizeof(tag), "t%d", i);
        /* Tagged: an untagged one is garbage at once with grace 0. */
        br_manifest_put_t m = mput("race", body, tag, layers, 3);
        int ret = br_manifest_put(s, &m, &man);
        if (ret == BR_E_MANIFEST_BLOB_UNKNOWN) {
            p->refused++;
            continue;
        }
        if (ret != 0) {
            printf("# manifest put: %s\n", br_strerror(ret));
            p->bad++;
            continue;
        }
        p->pushed++;
        /* Committed: every layer must be there and stay (the manifest holds it). */
        for (int j = 0; j < 3; j++) {
            int fd;
            uint64_t size;
            br_digest_t got;
            int r = br_blob_open(s, R("race"), &layers[j], &fd, &size);
            if (r != 0) {
                printf("# blob open after commit: %s\n", br_strerror(r));
                p->bad++;
                continue;
            }
            if (hash_fd(fd, BR_ALG_SHA256, &got) != 0 || !br_digest_eq(&got, &layers[j]))
                p->bad++;
            close(fd);
        }
        if (i % 2 == 0 && br_manifest_delete(s, R("race"), &man) != 0) {
            printf("# manifest delete failed\n");
            p->bad++;
        }
    }
    return NULL;
}

static void test_race(void)
{
    pusher_t p = {0, 0, 0, 0};
    pthread_t th;
    int runs = 0, failed = 0;
    br_gc_stats_t total = {0, 0, 0, 0, 0};
    pthread_create(&th, NULL, pusher, &p);
    for (time_t end = time(NULL) + 3; time(NULL) < end || runs < 20; runs++) {
        br_gc_options_t o;
        br_gc_stats_t st;
        memset(&o, 0, sizeof(o));
        o.wait = 1;
        o.untagged_delete = runs % 2;
        failed += br_store_gc(s, &o, &st) != 0;
        total.blobs += st.blobs;
    }
    p.stop = 1;
    pthread_join(th, NULL);
    is_int(failed, 0, "%d collections with grace 0 during pushes", runs);
    /* On a loaded machine back-to-back collections with grace 0 may refuse
     * every manifest; what must hold is below (nothing bad), and that the two
     * really ran against each other. */
    ok(p.pushed + p.refused > 0 && total.blobs > 0, "manifest puts ran (%d committed, %d refused) and blobs were collected (%llu)",
       p.pushed, p.refused, (unsigned long long)total.blobs);
    printf("# %d manifest puts refused cleanly with MANIFEST_BLOB_UNKNOWN\n", p.refused);
    is_int(p.bad, 0, "no committed manifest lost a layer; nothing failed otherwise");
    store_consistent(s, "pushes racing collections");
}

/* ---- kill -9 during collections ------------------------------------------------- */

static void child_gc(void)
{
    br_store_t *cs;
    alarm(30);
    if (br_store_open(&cs, root, &opts) != 0)
        _exit(2);
    for (;;) {
        br_gc_options_t o;
        br_gc_stats_t st;
        memset(&o, 0, sizeof(o));
        o.wait = 1;
        o.untagged_delete = 1;
        if (br_store_gc(cs, &o, &st) != 0)
            _exit(3);
    }
}

static void child_push(int round, int wfd)
{
    br_store_t *cs;
    unsigned char buf[4096];
    char body[128], line[256];
    alarm(30);
    if (br_store_open(&cs, root, &opts) != 0)
        _exit(2);
    for (int i = 0;; i++) {
        br_digest_t layers[2], man;
        for (int j = 0; j < 2; j++) {
            fill_bytes(buf, sizeof(buf), (uint64_t)round << 32 | (uint64_t)(i * 2 + j));
            if (br_blob_put(cs, R("k"), BR_ALG_SHA256, buf, sizeof(buf), &layers[j]) != 0)
                _exit(4);
        }
        snprintf(body, sizeof(body), "{\"round\":%d,\"i\":%d}", round, i);
        char tag[32];
        snprintf(tag, sizeof(tag), "r%d-%d", round, i);
        br_manifest_put_t m = mput("k", body, i % 3 == 0 ? tag : "", layers, 2);
        int ret = br_manifest_put(cs, &m, &man);
        if (ret == BR_E_MANIFEST_BLOB_UNKNOWN)
            continue;
        if (ret != 0)
            _exit(5);
        if (i % 3 == 0) {
            char dg[BR_DIGEST_MAX + 1];
            br_digest_format(&man, dg);
            int n = snprintf(line, sizeof(line), "%s %s\n", tag, dg);
            if (write(wfd, line, (size_t)n) != n)
                _exit(6);
        }
    }
}

static void test_kill(void)
{
    int fds[2], rounds = 12, died = 0;
    char *reported = NULL;
    size_t rlen = 0;
    if (pipe(fds) != 0)
        return;
    fflush(stdout);
    pid_t pusher_pid = fork();
    if (pusher_pid == 0) {
        close(fds[0]);
        child_push(1, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    srand((unsigned)time(NULL));
    for (int r = 0; r < rounds; r++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0)
            child_gc();
        usleep(20000 + (useconds_t)(rand() % 200000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        died += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    }
    kill(pusher_pid, SIGKILL);
    waitpid(pusher_pid, NULL, 0);
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
        reported = br_realloc(reported, rlen + (size_t)n + 1);
        memcpy(reported + rlen, buf, (size_t)n);
        rlen += (size_t)n;
    }
    close(fds[0]);
    is_int(died, rounds, "%d collectors killed with SIGKILL mid-run", rounds);
    store_consistent(s, "collectors killed during pushes");
    br_gc_stats_t st = gc(0, 1, 0);
    (void)st;
    br_gc_stats_t again = gc(0, 1, 1);
    ok(again.blobs == 0 && again.manifests == 0 && again.links == 0, "the next collection finished the work (a dry run after finds nothing)");
    store_consistent(s, "the collection after the kills");
    /* Every tagged push that was reported survived all of it. */
    int tags = 0, bad = 0;
    for (char *line = reported, *next; line != NULL && line < reported + rlen; line = next) {
        char tag[64], dg[BR_DIGEST_MAX + 1];
        br_manifest_rec_t rec;
        next = memchr(line, '\n', (size_t)(reported + rlen - line));
        if (next == NULL)
            break;
        *next++ = '\0';
        if (sscanf(line, "%63s %135s", tag, dg) != 2)
            continue;
        ++tags;
        if (br_manifest_get(s, R("k"), br_cstr(tag), &rec) != 0 || (br_digest_format(&rec.digest, dg), 0))
            ++bad;
        else {
            int fd;
            uint64_t size;
            if (br_blob_open(s, R("k"), &rec.digest, &fd, &size) != 0)
                ++bad;
            else
                close(fd);
        }
    }
    ok(tags > 0, "the pusher committed %d tagged manifests", tags);
    is_int(bad, 0, "each of them resolves and its body is served");
    free(reported);
}

/* ---- fsck ------------------------------------------------------------------------ */

typedef struct {
    char lines[4096];
} problems_t;

static void on_problem(void *ctx, const char *msg)
{
    problems_t *p = ctx;
    size_t n = strlen(p->lines);
    snprintf(p->lines + n, sizeof(p->lines) - n, "%s\n", msg);
}

/* The reported problems as TAP diagnostics. */
static void diag_lines(const problems_t *p)
{
    for (const char *l = p->lines, *e; *l != '\0'; l = e + 1) {
        if ((e = strchr(l, '\n')) == NULL)
            break;
        printf("#   %.*s\n", (int)(e - l), l);
    }
}

static br_fsck_stats_t fsck(int repair, problems_t *p)
{
    br_fsck_options_t o = {repair, on_problem, NULL, p};
    br_fsck_stats_t st;
    p->lines[0] = '\0';
    int ret = br_store_fsck(s, &o, &st);
    if (ret != 0)
        printf("# fsck: %s\n", br_strerror(ret));
    return st;
}

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs(content, f);
        fclose(f);
    }
}

static void test_fsck(void)
{
    br_digest_t a, b, orphan = digest_of(BR_ALG_SHA256, "an orphan", 9), bad_orphan = digest_of(BR_ALG_SHA256, "lies", 4);
    char path[4096], stray[4200];
    problems_t p;
    br_fsck_stats_t st;
    gc(0, 1, 0); /* start from a collected store */
    is_int(br_blob_put(s, R("f"), BR_ALG_SHA256, "fsck blob a", 11, &a), 0, "put a");
    is_int(br_blob_put(s, R("f"), BR_ALG_SHA256, "fsck blob b", 11, &b), 0, "put b");
    br_digest_t refs[1] = {a};
    br_manifest_put_t m = mput("f", "{\"f\":1}", "v1", refs, 1);
    is_int(br_manifest_put(s, &m, NULL), 0, "put a manifest");
    st = fsck(0, &p);
    ok(st.problems == 0 && st.blobs >= 3 && st.manifests >= 1, "a sound store: 0 problems (%llu blobs, %llu manifests)",
       (unsigned long long)st.blobs, (unsigned long long)st.manifests);

    /* Same size, other bytes: only re-hashing finds it. */
    br_blob_path(s, &a, path, sizeof(path));
    write_file(path, "fsck blob A");
    br_blob_path(s, &b, path, sizeof(path));
    unlink(path);
    st = fsck(0, &p);
    is_int(st.problems, 2, "a corrupted blob and a missing file: 2 problems");
    ok(strstr(p.lines, "content hashes to") != NULL && strstr(p.lines, "No such file") != NULL, "named in the report");
    diag_lines(&p);
    br_blob_path(s, &a, path, sizeof(path));
    write_file(path, "fsck blob a");
    br_blob_path(s, &b, path, sizeof(path));
    write_file(path, "fsck blob b");

    br_blob_path(s, &orphan, path, sizeof(path));
    write_file(path, "an orphan");
    br_blob_path(s, &bad_orphan, path, sizeof(path));
    write_file(path, "not what the name says");
    snprintf(stray, sizeof(stray), "%.*s/core", (int)(strrchr(path, '/') - path), path);
    write_file(stray, "x");
    st = fsck(0, &p);
    is_int(st.problems, 3, "two orphans and a stray file: 3 problems");
    ok(strstr(p.lines, "orphan file") != NULL && strstr(p.lines, "stray file") != NULL, "named in the report");
    diag_lines(&p);
    st = fsck(1, &p);
    ok(st.problems == 3 && st.repaired == 2, "--repair removes both orphans, leaves the stray file (%llu repaired)",
       (unsigned long long)st.repaired);
    ok(!file_exists(&orphan) && !file_exists(&bad_orphan), "orphans gone");
    ok(strstr(p.lines, "does not match its name") != NULL, "the lying one is named so");
    unlink(stray);

    /* A blob row lost while its file and its links stay: --repair indexes it again. */
    MDB_txn *txn;
    unsigned char pd[BR_PDIGEST_MAX];
    MDB_val k = {br_pdigest_pack(&a, pd), pd};
    br_store_wtxn_begin(s, &txn);
    mdb_del(txn, s->db_blobs, &k, NULL);
    br_store_wtxn_end(&txn, 0);
    st = fsck(0, &p);
    ok(st.problems >= 2, "a lost blob row: its link and its file are reported (%llu problems)", (unsigned long long)st.problems);
    st = fsck(1, &p);
    ok(strstr(p.lines, "re-indexed (2 references") != NULL, "--repair re-indexes it with its 2 references");
    diag_lines(&p);
    st = fsck(0, &p);
    is_int(st.problems, 0, "then fsck finds nothing");
    store_consistent(s, "fsck --repair");
    is_int(br_blob_stat(s, R("f"), &a, NULL), 0, "and the blob is served again");
}

/* ---- scrub ------------------------------------------------------------------------- */

static void test_scrub(void)
{
    br_digest_t a, b;
    br_scrub_cursor_t cur = {{0}, 0};
    br_scrub_stats_t st;
    char path[4096];
    is_int(br_blob_put(s, R("sc"), BR_ALG_SHA256, "scrub blob a", 12, &a), 0, "put a");
    is_int(br_blob_put(s, R("sc"), BR_ALG_SHA256, "scrub blob b", 12, &b), 0, "put b");
    br_blob_path(s, &a, path, sizeof(path));
    write_file(path, "SCRUB BLOB A");
    uint64_t q = 0, n = 0;
    int wrapped = 0;
    /* One blob a call: a pass takes as many calls as the store has blob rows
     * (earlier sections leave a number that depends on the machine's speed). */
    br_store_stats_t ss;
    is_int(br_store_stats(s, &ss), 0, "store figures before the scrub pass");
    for (uint64_t i = 0; i < ss.blobs + 2 && !wrapped; i++) {
        if (br_store_scrub(s, &cur, 1, NULL, &st) != 0)
            break;
        q += st.quarantined;
        n += st.blobs;
        wrapped = st.wrapped;
    }
    ok(wrapped && n >= 2, "a scrub pass, one blob at a time, reaches the end (%llu of %llu blobs)", (unsigned long long)n,
       (unsigned long long)ss.blobs);
    is_int(q, 1, "it quarantines exactly the corrupted blob");
    is_int(br_blob_stat(s, R("sc"), &a, NULL), BR_E_BLOB_UNKNOWN, "a quarantined blob is unknown");
    int fd = -1;
    is_int(br_blob_open(s, R("sc"), &a, &fd, NULL), BR_E_BLOB_UNKNOWN, "and is never opened for serving");
    is_int(br_blob_stat(s, R("sc"), &b, NULL), 0, "the sound one is served");
    br_digest_t refs[1] = {a};
    br_manifest_put_t m = mput("sc", "{\"sc\":1}", "v1", refs, 1);
    is_int(br_manifest_put(s, &m, NULL), BR_E_MANIFEST_BLOB_UNKNOWN, "a manifest naming it is refused");
    problems_t p;
    br_fsck_stats_t fst = fsck(0, &p);
    /* (and the refused put's body file, an orphan) */
    ok(fst.problems == 2 && strstr(p.lines, "quarantined by the scrub") != NULL, "fsck reports it");
    diag_lines(&p);
    is_int(br_blob_put(s, R("sc"), BR_ALG_SHA256, "scrub blob a", 12, &a), 0, "push the same content again");
    is_int(br_blob_stat(s, R("sc"), &a, NULL), 0, "healed: served again");
    is_int(br_blob_open(s, R("sc"), &a, &fd, NULL), 0, "open it");
    br_digest_t got;
    ok(fd >= 0 && hash_fd(fd, BR_ALG_SHA256, &got) == 0 && br_digest_eq(&got, &a), "with its true bytes");
    if (fd >= 0)
        close(fd);
    is_int(br_manifest_put(s, &m, NULL), 0, "the manifest is accepted now");
    store_consistent(s, "scrub, quarantine and heal");
    memset(&cur, 0, sizeof(cur));
    is_int(br_store_scrub(s, &cur, UINT64_MAX, NULL, &st), 0, "a whole pass");
    ok(st.wrapped && st.quarantined == 0, "finds nothing more");
}

int main(void)
{
    make_root(root, sizeof(root), "gc");
    int ret = br_store_open(&s, root, &opts);
    is_int(ret, 0, "store open");
    if (ret != 0)
        return tap_done();
    test_reachable_and_grace();
    test_deleted_manifest();
    test_untagged();
    test_orphans_and_dying();
    test_lock();
    test_race();
    test_kill();
    test_fsck();
    test_scrub();
    br_store_close(s);
    rm_tree(root);
    return tap_done();
}
