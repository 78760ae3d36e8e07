/*
 * Garbage collection from the server and the command line: the periodic
 * collector thread of `berth serve` (config gc.interval) and `berth gc`.
 * Both run storage's br_store_gc (storage.h has the rules and why they are
 * safe while requests run); the collector has its own thread because a
 * collection takes seconds on a large store, and no event loop may wait for
 * it. It shares the store with the loops (LMDB transactions are per call);
 * a `berth gc` in another process coordinates through the index and
 * <root>/gc.lock.
 *
 * Retention rules reach storage as plain data (storage knows no config):
 * the rule for a repository and whether a tag stays whatever the rule says
 * (its protect globs, or an immutable rule's tags: those cannot be deleted).
 * A tag retention deletes emits no notification: events are built from a
 * request (server/events.c) and the collector has none.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "server/server.h"

/* ---- retention rules for storage --------------------------------------------------- */

typedef struct st_retention_t {
    const br_config_t *c;
    br_retention_rule_t *rules; /* one per c->retention */
    int print;                  /* berth gc: report lines on stdout; the server logs them */
} retention_t;

static const br_retention_rule_t *on_retention_rule(void *ctx, br_str_t repo)
{
    retention_t *r = ctx;
    const br_config_rule_t *rule = br_rule_for(r->c->retention, r->c->num_retention, repo);
    return rule != NULL ? &r->rules[rule - r->c->retention] : NULL;
}

static int on_retention_keep(void *ctx, br_str_t repo, br_str_t tag)
{
    retention_t *r = ctx;
    return br_immutable_glob(br_rule_for(r->c->retention, r->c->num_retention, repo), tag) != NULL ||
           br_immutable_glob(br_immutable_rule(r->c, repo), tag) != NULL;
}

static void on_retention_report(void *ctx, const char *line)
{
    retention_t *r = ctx;
    if (r->print)
        printf("%s\n", line);
    else
        br_info("%s", line);
}

/* Points o's retention at c's rules (none when c has none); free with retention_dispose. */
static void retention_init(retention_t *r, const br_config_t *c, int print, br_gc_options_t *o)
{
    r->c = c;
    r->print = print;
    r->rules = br_calloc(c->num_retention + 1, sizeof(*r->rules));
    for (size_t i = 0; i < c->num_retention; i++) {
        r->rules[i].name = c->retention[i].repository;
        r->rules[i].keep_last = c->retention[i].keep_last;
        r->rules[i].keep_s = c->retention[i].keep_days * 86400;
    }
    if (c->num_retention != 0) {
        o->retention_rule = on_retention_rule;
        o->retention_keep = on_retention_keep;
        o->retention_report = on_retention_report;
        o->rctx = r;
    }
}

static void retention_dispose(retention_t *r)
{
    free(r->rules);
}

/* ---- the periodic collector (berth serve) ---------------------------------------- */

static struct {
    br_worker_t w;
    int reconfigured; /* settings changed: the wait starts again with the new interval */
    /* its own copy of the gc settings (under w.lock): a reload frees the config */
    uint64_t interval_s, grace_s;
    int untagged_delete;
} collector = {.w = BR_WORKER_INIT};

static void *collector_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&collector.w.lock);
    while (!collector.w.stop) {
        collector.reconfigured = 0;
        if (br_worker_wait(&collector.w, collector.interval_s * 1000, &collector.reconfigured))
            break;
        if (collector.reconfigured)
            continue;
        br_gc_options_t o = {.grace_s = collector.grace_s, .untagged_delete = collector.untagged_delete, .cancel = &collector.w.stop};
        pthread_mutex_unlock(&collector.w.lock);
        /* The rules of the newest config, held for the whole collection. */
        br_snapshot_t *snap = br_snapshot_acquire();
        retention_t rt;
        retention_init(&rt, &snap->config, 0, &o);
        br_gc_stats_t st = {0, 0, 0, 0, 0};
        uint64_t t0 = br_now_ms();
        int err = br_store_gc(br_srv.store, &o, &st);
        retention_dispose(&rt);
        br_snapshot_release(snap);
        br_metrics_gc_run(err, &st);
        if (err == 0)
            br_info("gc: %" PRIu64 " blobs, %" PRIu64 " manifests, %" PRIu64 " bytes reclaimed, %" PRIu64
                    " tags deleted by retention in %" PRIu64 " ms",
                    st.blobs, st.manifests, st.bytes, st.tags, br_now_ms() - t0);
        else if (err == BR_E_BUSY)
            br_info("gc: another collection is running; skipping this one");
        else if (err != ECANCELED)
            br_error("gc: %s", br_strerror(err));
        pthread_mutex_lock(&collector.w.lock);
    }
    pthread_mutex_unlock(&collector.w.lock);
    return NULL;
}

void br_gc_start(const br_config_t *c)
{
    collector.interval_s = c->gc.interval_s;
    collector.grace_s = c->gc.grace_s;
    collector.untagged_delete = c->gc.untagged_delete;
    if (c->gc.interval_s != 0)
        br_worker_start(&collector.w, collector_main, "gc");
}

void br_gc_stop(void)
{
    br_worker_stop(&collector.w);
}

void br_gc_reconfigure(const br_config_t *c)
{
    if (c->gc.interval_s == 0 || !collector.w.running) {
        br_gc_stop();
        br_gc_start(c);
        return;
    }
    pthread_mutex_lock(&collector.w.lock);
    /* An unchanged interval keeps its schedule: frequent reloads must not
     * postpone collections for ever. */
    collector.reconfigured = collector.interval_s != c->gc.interval_s;
    collector.interval_s = c->gc.interval_s;
    collector.grace_s = c->gc.grace_s;
    collector.untagged_delete = c->gc.untagged_delete;
    pthread_cond_signal(&collector.w.wake);
    pthread_mutex_unlock(&collector.w.lock);
}

/* ---- berth gc --------------------------------------------------------------------- */

static void usage_gc(FILE *fp)
{
    fprintf(fp, "usage: berth gc [-c FILE] [--root DIR] [--dry-run] [--grace DURATION]\n"
                "\n"
                "Runs one garbage collection on the store, also while a server uses it. Retention\n"
                "rules (config 'retention') first delete the tags they do not keep, one line each.\n"
                "\n"
                "  -c, --config FILE     YAML config file (gc.grace, gc.untagged, retention, immutable, storage.root)\n"
                "  -r, --root DIR        storage root (overrides the file)\n"
                "  -n, --dry-run         report what would be reclaimed; change nothing\n"
                "  -g, --grace DURATION  keep what was linked or unreferenced more recently (default gc.grace)\n"
                "  -h, --help            this help\n");
}

void br_cli_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
    br_cli_progress_t *p = ctx;
    uint64_t now = br_now_ms();
    /* One line per phase on a terminal, redrawn at most every 100 ms. */
    if (p->last_phase == phase && now - p->last_ms < 100 && done != total)
        return;
    if (p->last_phase != NULL && p->last_phase != phase)
        fputc('\n', stderr);
    fprintf(stderr, "\r%s: %s %" PRIu64 "/%" PRIu64, p->tool, phase, done, total);
    fflush(stderr);
    p->last_phase = phase;
    p->last_ms = now;
}

int br_tool_opt(int ch, const char **config_path, const char **root)
{
    if (ch == 'c')
        *config_path = optarg;
    else if (ch == 'r')
        *root = optarg;
    return ch == 'c' || ch == 'r';
}

int br_tool_open(const char *tool, const char *config_path, const char *root, br_config_t *c, br_store_t **out)
{
    struct stat st;
    char path[4096];
    *out = NULL;
    if (br_cli_load_config(c, config_path, root) != 0)
        return 1;
    br_log_setup(c->log.level, c->log.format);
    /* The store must exist: a typo in --root must not create an empty store
     * and report it clean. */
    snprintf(path, sizeof(path), "%s/index", c->storage.root);
    if (stat(path, &st) != 0) {
        fprintf(stderr, "berth %s: no store at %s\n", tool, c->storage.root);
        return 1;
    }
    br_store_options_t opts = {.fsync = c->storage.fsync};
    int err = br_store_open(out, c->storage.root, &opts);
    if (err != 0) {
        fprintf(stderr, "berth %s: cannot open the store at %s: %s\n", tool, c->storage.root, br_strerror(err));
        return 1;
    }
    return 0;
}

int br_cmd_gc(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'}, {"root", required_argument, NULL, 'r'},
                                         {"dry-run", no_argument, NULL, 'n'},       {"grace", required_argument, NULL, 'g'},
                                         {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *root = NULL, *grace = NULL;
    int ch, dry_run = 0;
    while ((ch = getopt_long(argc, argv, "c:r:ng:h", opts, NULL)) != -1) {
        if (br_tool_opt(ch, &config_path, &root))
            continue;
        switch (ch) {
        case 'n':
            dry_run = 1;
            break;
        case 'g':
            grace = optarg;
            break;
        case 'h':
            usage_gc(stdout);
            return 0;
        default:
            usage_gc(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "berth gc: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    uint64_t grace_ms = 0;
    if (grace != NULL && br_config_parse_duration_ms(grace, &grace_ms) != 0) {
        fprintf(stderr, "berth gc: --grace: '%s' is no duration (ms, s, m, h, d; plain number = seconds)\n", grace);
        return 2;
    }
    br_config_t c;
    br_store_t *s = NULL;
    int ret = 1;
    if (br_tool_open("gc", config_path, root, &c, &s) != 0)
        goto Exit;
    br_cli_progress_t prog = {"gc", NULL, 0};
    br_gc_options_t o = {
        .grace_s = grace != NULL ? grace_ms / 1000 : c.gc.grace_s,
        .untagged_delete = c.gc.untagged_delete,
        .dry_run = dry_run,
        .wait = 1,
        .progress = isatty(STDERR_FILENO) ? br_cli_progress : NULL,
        .ctx = &prog,
    };
    retention_t rt;
    retention_init(&rt, &c, 1, &o);
    br_gc_stats_t st;
    int err = br_store_gc(s, &o, &st);
    retention_dispose(&rt);
    if (prog.last_phase != NULL)
        fputc('\n', stderr);
    if (err != 0) {
        fprintf(stderr, "berth gc: %s\n", br_strerror(err));
        goto Exit;
    }
    if (dry_run)
        printf("gc (dry run): %" PRIu64 " blobs, %" PRIu64 " manifests, %" PRIu64 " bytes would be reclaimed\n", st.blobs,
               st.manifests, st.bytes);
    else
        printf("gc: %" PRIu64 " blobs, %" PRIu64 " manifests, %" PRIu64 " bytes reclaimed\n", st.blobs, st.manifests, st.bytes);
    ret = 0;
Exit:
    br_store_close(s);
    br_config_dispose(&c);
    return ret;
}
