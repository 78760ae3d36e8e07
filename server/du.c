/*
 * berth du: bytes per repository (those only it holds, those shared with
 * other repositories), the store's total, and what a collection would
 * reclaim now (a dry run with the configured gc.grace and gc.untagged),
 * then the usage of each configured quota (computed from the links, so it
 * holds with or without a server).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "server/server.h"

static void usage_du(FILE *fp)
{
    fprintf(fp, "usage: berth du [-c FILE] [--root DIR] [REPO-GLOB]\n"
                "\n"
                "Prints the bytes each repository links (unique: held by it alone; shared: also\n"
                "by others), the store's total and what gc would reclaim now. REPO-GLOB selects\n"
                "repositories: '*' within a path component, '**' across (default: all). Then each\n"
                "quota of the config file: bytes used of its max_bytes.\n"
                "\n"
                "  -c, --config FILE     YAML config file (storage.root, gc.grace, gc.untagged, quotas)\n"
                "  -r, --root DIR        storage root (overrides the file)\n"
                "  -h, --help            this help\n");
}

static int on_match(void *ctx, br_str_t repo)
{
    const char *glob = ctx;
    return br_glob_match(glob, strlen(glob), repo.base, repo.len);
}

typedef struct st_du_sum_t {
    uint64_t repos;
} du_sum_t;

static int on_repo(void *ctx, const br_usage_t *u)
{
    du_sum_t *sum = ctx;
    sum->repos++;
    printf("%-40.*s %10" PRIu64 " %15" PRIu64 " %15" PRIu64 " %15" PRIu64 "\n", (int)u->repo.len, u->repo.base, u->blobs, u->bytes,
           u->unique_bytes, u->shared_bytes);
    return 0;
}

int br_cmd_du(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"root", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *root = NULL, *glob = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:r:h", opts, NULL)) != -1) {
        if (br_tool_opt(ch, &config_path, &root))
            continue;
        switch (ch) {
        case 'h':
            usage_du(stdout);
            return 0;
        default:
            usage_du(stderr);
            return 2;
        }
    }
    if (optind + 1 < argc) {
        fprintf(stderr, "berth du: unexpected argument '%s'\n", argv[optind + 1]);
        return 2;
    }
    if (optind < argc)
        glob = argv[optind];
    br_config_t c;
    br_store_t *s = NULL;
    int ret = 1, err;
    if (br_tool_open("du", config_path, root, &c, &s) != 0)
        goto Exit;
    du_sum_t sum = {0};
    br_usage_t total;
    printf("%-40s %10s %15s %15s %15s\n", "REPOSITORY", "BLOBS", "BYTES", "UNIQUE", "SHARED");
    if ((err = br_store_usage(s, glob != NULL ? on_match : NULL, (void *)glob, on_repo, &sum, &total)) != 0) {
        fprintf(stderr, "berth du: %s\n", br_strerror(err));
        goto Exit;
    }
    br_quota_t q[BR_CONFIG_MAX_QUOTAS];
    size_t nq = br_quota_list(&c, q);
    if ((err = br_store_quota_usage(s, q, nq)) != 0) {
        fprintf(stderr, "berth du: %s\n", br_strerror(err));
        goto Exit;
    }
    for (size_t i = 0; i < nq; i++) {
        double pct = q[i].max_bytes != 0 ? 100.0 * (double)q[i].used_bytes / (double)q[i].max_bytes : 100.0;
        if (q[i].glob[0] == '\0')
            printf("global quota: %" PRIu64 " bytes stored of %" PRIu64 " (%.1f%%)\n", q[i].used_bytes, q[i].max_bytes, pct);
        else
            printf("quota \"%s\": %" PRIu64 " bytes used of %" PRIu64 " (%.1f%%)\n", q[i].glob, q[i].used_bytes, q[i].max_bytes,
                   pct);
    }
    br_gc_options_t o = {.grace_s = c.gc.grace_s, .untagged_delete = c.gc.untagged_delete, .dry_run = 1};
    br_gc_stats_t st;
    if ((err = br_store_gc(s, &o, &st)) != 0) {
        fprintf(stderr, "berth du: %s\n", br_strerror(err));
        goto Exit;
    }
    printf("du: %" PRIu64 " repositories listed; store: %" PRIu64 " blobs, %" PRIu64 " bytes; reclaimable now: %" PRIu64
           " bytes\n",
           sum.repos, total.blobs, total.bytes, st.bytes);
    ret = 0;
Exit:
    br_store_close(s);
    br_config_dispose(&c);
    return ret;
}
