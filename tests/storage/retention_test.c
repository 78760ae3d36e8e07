/*
 * Unit tests for retention (storage/gc.c's first phase) and tag push times:
 * a put sets the time, a re-push of the same digest renews it; the schema
 * 3 -> 4 upgrade keeps every tag, reading old rows with their manifest's
 * link time; keep_last, keep_days (with a later clock), protect and the keep
 * callback; a tag pushed again after the plan, or kept by the rule once the
 * index changed (before the execution, or between two of its batches), is
 * not deleted; the dry run's figures equal the real run's
 * (tags and the manifests they alone held); kill -9 during retention passes
 * leaves a store verify calls clean, and the next run finishes.
 */
#include "tests/storage/util.h"
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include "storage/internal.h"
#include "tests/tap.h"

static char root[256];
static br_store_t *s;
static br_store_options_t opts = {0, 1ULL << 30, 0};

#define R(lit) BR_STR(lit)
#define DAY_MS (86400ULL * 1000)

/* ---- the rules the tests give the collector ----------------------------------------- */

typedef struct {
    br_retention_rule_t rule; /* for every repository starting with prefix */
    const char *prefix;
    const char *protect;      /* one tag glob, or NULL */
    char lines[8192];         /* report lines, '\n' after each */
    /* after the plan (progress "plan" 4/4, the snapshot still open), and
     * after the first batch of tag deletions committed: */
    void (*after_plan)(void);
    void (*after_batch)(void);
} rules_t;

static rules_t rules;

static const br_retention_rule_t *on_rule(void *ctx, br_str_t repo)
{
    rules_t *r = ctx;
    size_t n = strlen(r->prefix);
    return repo.len >= n && memcmp(repo.base, r->prefix, n) == 0 ? &r->rule : NULL;
}

static int on_keep(void *ctx, br_str_t repo, br_str_t tag)
{
    rules_t *r = ctx;
    (void)repo;
    return r->protect != NULL && br_glob_match(r->protect, strlen(r->protect), tag.base, tag.len);
}

static void on_report(void *ctx, const char *line)
{
    rules_t *r = ctx;
    size_t n = strlen(r->lines);
    snprintf(r->lines + n, sizeof(r->lines) - n, "%s\n", line);
}

static int progress_fd = -1; /* a killed child says here that retention is under way */

static void on_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
    (void)ctx;
    if (progress_fd >= 0 && strcmp(phase, "retention") == 0 && done < total && write(progress_fd, "r", 1) != 1)
        _exit(7);
    if (strcmp(phase, "plan") == 0 && done == total && rules.after_plan != NULL) {
        rules.after_plan();
        rules.after_plan = NULL;
    }
    if (strcmp(phase, "retention") == 0 && done < total && rules.after_batch != NULL) {
        rules.after_batch();
        rules.after_batch = NULL;
    }
}

static br_gc_stats_t gc_at(br_store_t *st_s, int dry_run, int untagged_delete, uint64_t now_s)
{
    br_gc_options_t o;
    br_gc_stats_t st;
    memset(&o, 0, sizeof(o));
    o.untagged_delete = untagged_delete;
    o.dry_run = dry_run;
    o.wait = 1;
    o.now_s = now_s;
    o.progress = on_progress;
    o.retention_rule = on_rule;
    o.retention_keep = on_keep;
    o.retention_report = on_report;
    o.rctx = &rules;
    rules.lines[0] = '\0';
    int ret = br_store_gc(st_s, &o, &st);
    if (ret != 0)
        printf("# gc: %s\n", br_strerror(ret));
    return st;
}

static br_gc_stats_t gc(int dry_run, int untagged_delete)
{
    return gc_at(s, dry_run, untagged_delete, 0);
}

/* ---- raw tag rows ---------------------------------------------------------------------- */

/* The tags row of repo:tag (value bytes into val); its length, 0 when absent. */
static size_t tag_row(const char *repo, const char *tag, unsigned char *val)
{
    MDB_txn *txn;
    br_key_t key;
    br_key_init(&key, br_cstr(repo));
    br_key_add(&key, tag, strlen(tag));
    MDB_val k = br_key_val(&key), v;
    size_t n = 0;
    br_store_rtxn_begin(s, &txn);
    if (mdb_get(txn, s->db_tags, &k, &v) == 0 && v.mv_size <= BR_PDIGEST_MAX + 8) {
        n = v.mv_size;
        memcpy(val, v.mv_data, n);
    }
    br_store_rtxn_end(s, txn);
    return n;
}

static uint64_t tag_time(const char *repo, const char *tag)
{
    unsigned char val[BR_PDIGEST_MAX + 8];
    size_t n = tag_row(repo, tag, val);
    uint64_t t = 0;
    if (n == 33 + 8)
        memcpy(&t, val + 33, 8);
    return t;
}

/* Rewrites the tags row of repo:tag: its digest, then t (ms), or the digest
 * alone when t is 0 (a row from before schema 4). */
static void set_tag_row(const char *repo, const char *tag, uint64_t t)
{
    unsigned char val[BR_PDIGEST_MAX + 8];
    size_t n = tag_row(repo, tag, val);
    MDB_txn *txn;
    br_key_t key;
    br_key_init(&key, br_cstr(repo));
    br_key_add(&key, tag, strlen(tag));
    memcpy(val + 33, &t, 8);
    MDB_val k = br_key_val(&key), v = {t != 0 ? 33 + 8 : 33, val};
    ok(n >= 33, "raw: rewrite %s:%s", repo, tag);
    br_store_wtxn_begin(s, &txn);
    mdb_put(txn, s->db_tags, &k, &v, 0);
    br_store_wtxn_end(&txn, 0);
}

static int has_tag(const char *repo, const char *tag)
{
    br_manifest_rec_t rec;
    return br_manifest_get(s, br_cstr(repo), br_cstr(tag), &rec) == 0;
}

static br_digest_t push(const char *repo, const char *tag, const char *body)
{
    br_digest_t d;
    br_manifest_put_t m = mput(repo, body, tag, NULL, 0);
    int ret = br_manifest_put(s, &m, &d);
    if (ret != 0)
        printf("# put %s:%s: %s\n", repo, tag, br_strerror(ret));
    return d;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_push_times(void)
{
    uint64_t before = br_now_ms();
    push("t/a", "x", "{\"t\":1}");
    uint64_t t1 = tag_time("t/a", "x"), after = br_now_ms();
    ok(t1 >= before && t1 <= after, "a put records the tag's push time (%llu in [%llu, %llu])", (unsigned long long)t1,
       (unsigned long long)before, (unsigned long long)after);
    sleep_ms(5);
    push("t/a", "x", "{\"t\":1}");
    uint64_t t2 = tag_time("t/a", "x");
    ok(t2 > t1, "pushing the same digest to it again renews the time (%llu > %llu)", (unsigned long long)t2,
       (unsigned long long)t1);
    sleep_ms(5);
    push("t/a", "x", "{\"t\":2}");
    ok(tag_time("t/a", "x") > t2, "moving it to another manifest renews it too");
    store_consistent(s, "push times");
}

static void test_upgrade(void)
{
    br_digest_t d1 = push("up/r", "old1", "{\"up\":1}");
    push("up/r", "old2", "{\"up\":2}");
    push("up/r", "new", "{\"up\":3}");
    /* A schema 3 index: tags rows are the digest alone; old1's manifest was
     * put (linked) at a known time. */
    set_tag_row("up/r", "old1", 0);
    set_tag_row("up/r", "old2", 0);
    {
        MDB_txn *txn;
        br_key_t key;
        uint64_t linked = 1700000000, epoch = 1600000000;
        uint32_t v3 = 3;
        br_key_init(&key, R("up/r"));
        br_key_add_digest(&key, &d1);
        MDB_val k = br_key_val(&key), v = {sizeof(linked), &linked};
        MDB_val vk = {7, (void *)"version"}, vv = {sizeof(v3), &v3}, ek = {11, (void *)"links_epoch"}, ev = {8, &epoch};
        br_store_wtxn_begin(s, &txn);
        mdb_put(txn, s->db_links, &k, &v, 0);
        mdb_put(txn, s->db_meta, &vk, &vv, 0);
        mdb_put(txn, s->db_meta, &ek, &ev, 0);
        ok(br_store_wtxn_end(&txn, 0) == 0, "raw: version 3, two old tags rows, old1's link time 2023-11-14T22:13:20Z");
    }
    store_consistent(s, "old tags rows (verify accepts both forms)");
    br_store_close(s);
    is_int(br_store_open(&s, root, &opts), 0, "the version 3 store opens");
    {
        MDB_txn *txn;
        MDB_val vk = {7, (void *)"version"}, v;
        uint32_t version = 0;
        br_store_rtxn_begin(s, &txn);
        if (mdb_get(txn, s->db_meta, &vk, &v) == 0 && v.mv_size == 4)
            memcpy(&version, v.mv_data, 4);
        br_store_rtxn_end(s, txn);
        is_int(version, 4, "and is at version 4 after");
        is_int(s->links_epoch, 1600000000, "links_epoch kept from version 3 (the old links are as old as ever)");
    }
    ok(has_tag("up/r", "old1") && has_tag("up/r", "old2") && has_tag("up/r", "new"), "every tag survived the upgrade");
    store_consistent(s, "schema 3 -> 4 upgrade");

    rules = (rules_t){.rule = {"up/**", 1, 0}, .prefix = "up/"};
    br_gc_stats_t st = gc(1, 0);
    is_int(st.tags, 2, "dry run: keep_last 1 deletes the two older tags");
    ok(strstr(rules.lines, "retention: would delete up/r:old1 (pushed 2023-11-14T22:13:20Z, rule \"up/**\")\n") != NULL,
       "an old row's push time is its manifest's link time");
    sleep_ms(5);
    push("up/r", "old2", "{\"up\":2}");
    ok(tag_time("up/r", "old2") != 0, "a re-push writes the new row form");
    st = gc(0, 0);
    is_int(st.tags, 2, "real run: old1 and new go (old2 pushed again is the newest)");
    ok(!has_tag("up/r", "old1") && !has_tag("up/r", "new") && has_tag("up/r", "old2"), "only old2 is left");
    store_consistent(s, "retention after the upgrade");
}

static int count_tag(void *ctx, br_str_t tag)
{
    (void)tag;
    ++*(int *)ctx;
    return 0;
}

static int tags_in(const char *repo)
{
    int n = 0, more;
    br_tag_list(s, br_cstr(repo), br_str("", 0), 1000000, count_tag, &n, &more);
    return n;
}

static void test_policy(void)
{
    uint64_t now = br_now_ms();
    /* What the tests before left untagged goes first: the figures below are this test's. */
    rules = (rules_t){.rule = {"none", 0, 0}, .prefix = "none/"};
    gc(0, 1);
    /* p/a: pushed 20, 15, 10, 5 and 1 days ago; "latest" 30 days ago. */
    static const char *const names[] = {"d20", "d15", "d10", "d5", "d1", "latest"};
    static const int days[] = {20, 15, 10, 5, 1, 30};
    for (int i = 0; i < 6; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"p\":\"%s\"}", names[i]);
        push("p/a", names[i], body);
        set_tag_row("p/a", names[i], now - (uint64_t)days[i] * DAY_MS);
    }
    push("q/none", "t", "{\"q\":1}"); /* no rule */

    rules = (rules_t){.rule = {"p/**", 0, 7 * 86400}, .prefix = "p/", .protect = "lat*"};
    br_gc_stats_t st = gc(1, 0);
    is_int(st.tags, 3, "keep_days 7 alone: d20, d15 and d10 would go");
    ok(strstr(rules.lines, "p/a:d10 ") && strstr(rules.lines, "p/a:d15 ") && strstr(rules.lines, "p/a:d20 ") &&
           !strstr(rules.lines, "d5") && !strstr(rules.lines, "latest") && !strstr(rules.lines, "q/none"),
       "... exactly those: protect keeps latest, a repository without a rule is left alone");

    rules.rule.keep_last = 3;
    st = gc(1, 0);
    is_int(st.tags, 2, "keep_last 3 with keep_days 7: either keeps a tag (d10 is among the newest 3)");
    rules.rule.keep_s = 0;
    rules.rule.keep_last = 1;
    st = gc(1, 0);
    is_int(st.tags, 4, "keep_last 1 alone: all but d1 and the protected latest");
    rules.rule.keep_last = 0;
    rules.rule.keep_s = 7 * 86400;
    st = gc_at(s, 1, 0, now / 1000 + 3 * 86400);
    is_int(st.tags, 4, "three days later, keep_days 7 lets d5 go too (the collection's clock)");
    rules.protect = "*";
    st = gc(1, 0);
    is_int(st.tags, 0, "what the keep callback keeps (protect, immutable) is never deleted");
    rules.protect = "lat*";

    /* The real run, with untagged: delete: the dry run's figures, tags included. */
    br_gc_stats_t dry = gc(1, 1), real = gc(0, 1);
    ok(dry.tags == 3 && dry.tags == real.tags && dry.manifests == real.manifests && dry.blobs == real.blobs &&
           dry.bytes == real.bytes && dry.links == real.links,
       "dry run %llu tags/%llu manifests/%llu blobs/%llu bytes = real run %llu/%llu/%llu/%llu", (unsigned long long)dry.tags,
       (unsigned long long)dry.manifests, (unsigned long long)dry.blobs, (unsigned long long)dry.bytes,
       (unsigned long long)real.tags, (unsigned long long)real.manifests, (unsigned long long)real.blobs,
       (unsigned long long)real.bytes);
    is_int(real.manifests, 3, "the three manifests only those tags held are collected in the same run");
    ok(strstr(rules.lines, "retention: deleted p/a:d20 (pushed ") != NULL, "the real run reports 'deleted'");
    ok(!has_tag("p/a", "d20") && !has_tag("p/a", "d15") && !has_tag("p/a", "d10") && has_tag("p/a", "d5") &&
           has_tag("p/a", "d1") && has_tag("p/a", "latest") && has_tag("q/none", "t"),
       "tags left: d5, d1, latest (and q/none's)");
    br_gc_stats_t again = gc(1, 1);
    ok(again.tags == 0 && again.manifests == 0 && again.blobs == 0, "a dry run after finds nothing");
    store_consistent(s, "retention policy");

    /* untagged: keep: the manifest stays reachable by digest. */
    br_digest_t d = push("p/k", "old", "{\"k\":1}");
    push("p/k", "new", "{\"k\":2}");
    set_tag_row("p/k", "old", now - 30 * DAY_MS);
    real = gc(0, 0);
    ok(real.tags == 1 && real.manifests == 0, "untagged: keep deletes the tag, not its manifest");
    char hex[BR_DIGEST_MAX + 1];
    br_manifest_rec_t rec;
    is_int(br_manifest_get(s, R("p/k"), br_str(hex, br_digest_format(&d, hex)), &rec), 0, "... which still answers by digest");
}

static void repush_old(void)
{
    sleep_ms(2);
    push("r/a", "old", "{\"r\":\"old\"}");
}

static void delete_newest(void)
{
    br_tag_delete(s, R("r/b"), R("n3"));
    br_tag_delete(s, R("r/b"), R("n2"));
}

static void delete_c_newest(void)
{
    for (int i = 150; i < 200; i++) {
        char tag[16];
        snprintf(tag, sizeof(tag), "c%03d", i);
        br_tag_delete(s, R("r/c"), br_cstr(tag));
    }
}

static void test_after_plan(void)
{
    uint64_t now = br_now_ms();
    push("r/a", "old", "{\"r\":\"old\"}");
    push("r/a", "new", "{\"r\":\"new\"}");
    set_tag_row("r/a", "old", now - 10 * DAY_MS);
    rules = (rules_t){.rule = {"r/**", 1, 0}, .prefix = "r/a", .after_plan = repush_old};
    br_gc_stats_t st = gc(0, 1);
    ok(strstr(rules.lines, "r/a:old") == NULL && st.tags == 0, "a tag pushed again after the plan's snapshot is not deleted");
    ok(has_tag("r/a", "old") && has_tag("r/a", "new"), "both tags are there");

    /* The plan deletes n1 (keep_last 2 of n1 < n2 < n3); before the execution the
     * two newer go: the rule now keeps n1, and the execution re-decides. */
    push("r/b", "n1", "{\"b\":1}");
    push("r/b", "n2", "{\"b\":2}");
    push("r/b", "n3", "{\"b\":3}");
    set_tag_row("r/b", "n1", now - 3000);
    set_tag_row("r/b", "n2", now - 2000);
    set_tag_row("r/b", "n3", now - 1000);
    rules = (rules_t){.rule = {"r/**", 2, 0}, .prefix = "r/b", .after_plan = delete_newest};
    st = gc(0, 0);
    ok(st.tags == 0 && has_tag("r/b", "n1"), "a tag the rule keeps once the index changed is not deleted (re-decided in the write txn)");

    /* Between two batches of one repository: c000..c199, keep_last 100; the
     * first batch deletes c000..c063, then the 50 newest go elsewhere, so the
     * rule now keeps c050..c149 and the second batch must see that. */
    for (int i = 0; i < 200; i++) {
        char tag[16], body[32];
        snprintf(tag, sizeof(tag), "c%03d", i);
        snprintf(body, sizeof(body), "{\"c\":%d}", i);
        push("r/c", tag, body);
        set_tag_row("r/c", tag, now - 1000000 + (uint64_t)i * 1000);
    }
    rules = (rules_t){.rule = {"r/**", 100, 0}, .prefix = "r/c", .after_batch = delete_c_newest};
    st = gc(0, 0);
    int left = tags_in("r/c");
    ok(st.tags == 64 && left == 86 && !has_tag("r/c", "c063") && has_tag("r/c", "c064") && has_tag("r/c", "c149"),
       "a write between batches makes the next batch read the tags again (%llu deleted, %d left: c064..c149)",
       (unsigned long long)st.tags, left);
    store_consistent(s, "retention against concurrent pushes");
}

/* ---- kill -9 during retention ----------------------------------------------------------- */

static void child_gc(int wfd)
{
    br_store_t *cs;
    progress_fd = wfd;
    alarm(30);
    if (br_store_open(&cs, root, &opts) != 0)
        _exit(2);
    for (;;) {
        br_gc_stats_t st = gc_at(cs, 0, 1, 0);
        (void)st;
    }
}

static void test_kill(void)
{
    int rounds = 8, died = 0, ntags = 4800, midpass = 0;
    char tag[32], body[64];
    rules = (rules_t){.rule = {"k/**", 10, 0}, .prefix = "k/"};
    srand((unsigned)time(NULL));
    for (int r = 0; r < rounds; r++) {
        /* A fresh crop of tags each round, old enough for nothing but keep_last to keep. */
        for (int i = 0; i < ntags / rounds; i++) {
            snprintf(tag, sizeof(tag), "r%d-%04d", r, i);
            snprintf(body, sizeof(body), "{\"k\":\"%s\"}", tag);
            push("k/a", tag, body);
        }
        int fds[2];
        char c;
        if (pipe(fds) != 0)
            return;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            child_gc(fds[1]);
        }
        close(fds[1]);
        /* Once its first batch of tag deletions committed: mid-pass, somewhere. */
        if (read(fds[0], &c, 1) == 1)
            usleep((useconds_t)(rand() % 400));
        kill(pid, SIGKILL);
        close(fds[0]);
        int status;
        waitpid(pid, &status, 0);
        died += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        int left = tags_in("k/a");
        printf("# round %d: killed with %d tags left in k/a\n", r, left);
        midpass += left > 10 && left < (r + 1) * (ntags / rounds);
        char what[64];
        snprintf(what, sizeof(what), "retention killed with SIGKILL (round %d)", r);
        store_consistent(s, what);
    }
    is_int(died, rounds, "%d collectors killed mid-run", rounds);
    ok(midpass > 0, "%d of them with a retention pass half done (some tags of the round deleted, not all)", midpass);
    br_gc_stats_t st = gc(0, 1);
    (void)st;
    br_gc_stats_t again = gc(1, 1);
    ok(again.tags == 0 && again.manifests == 0 && again.blobs == 0, "the next collection finished the work");
    /* The newest 10: the last round's last ten. */
    int left = 0, newest = 0;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < ntags / rounds; i++) {
            snprintf(tag, sizeof(tag), "r%d-%04d", r, i);
            if (has_tag("k/a", tag)) {
                ++left;
                newest += r == rounds - 1 && i >= ntags / rounds - 10;
            }
        }
    ok(left == 10 && newest == 10, "exactly the newest 10 tags are left (%d left, %d of them the newest)", left, newest);
    store_consistent(s, "the collection after the kills");
}

int main(void)
{
    make_root(root, sizeof(root), "retention");
    int ret = br_store_open(&s, root, &opts);
    is_int(ret, 0, "store open");
    if (ret != 0)
        return tap_done();
    test_push_times();
    test_upgrade();
    test_policy();
    test_after_plan();
    test_kill();
    br_store_close(s);
    rm_tree(root);
    return tap_done();
}
