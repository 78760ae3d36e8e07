/*
 * berth fsck: checks a store (storage's br_store_fsck), also while a server
 * uses it, and prints each problem, then the figures.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "server/server.h"

static void usage_fsck(FILE *fp)
{
    fprintf(fp, "usage: berth fsck [-c FILE] [--root DIR] [--repair]\n"
                "\n"
                "Checks the store: every indexed blob is there with its size and digest (re-hashed),\n"
                "every file under blobs/ is indexed, references, counts, links, holders and tags agree.\n"
                "Exit status 0 when no problem remains, 1 when one does.\n"
                "\n"
                "  -c, --config FILE     YAML config file (storage.root)\n"
                "  -r, --root DIR        storage root (overrides the file)\n"
                "      --repair          orphan files: re-index those the index names, remove the rest\n"
                "  -h, --help            this help\n");
}

typedef struct st_fsck_out_t {
    br_cli_progress_t prog;
} fsck_out_t;

static void on_problem(void *ctx, const char *msg)
{
    fsck_out_t *o = ctx;
    if (o->prog.last_phase != NULL) { /* keep problems off the progress line */
        fputc('\n', stderr);
        o->prog.last_phase = NULL;
    }
    printf("fsck: %s\n", msg);
    fflush(stdout);
}

int br_cmd_fsck(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"root", required_argument, NULL, 'r'},
                                         {"repair", no_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config_path = NULL, *root = NULL;
    int ch, repair = 0;
    while ((ch = getopt_long(argc, argv, "c:r:h", opts, NULL)) != -1) {
        if (br_tool_opt(ch, &config_path, &root))
            continue;
        switch (ch) {
        case 'R':
            repair = 1;
            break;
        case 'h':
            usage_fsck(stdout);
            return 0;
        default:
            usage_fsck(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "berth fsck: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    br_config_t c;
    br_store_t *s = NULL;
    int ret = 1;
    if (br_tool_open("fsck", config_path, root, &c, &s) != 0)
        goto Exit;
    fsck_out_t out = {{"fsck", NULL, 0}};
    br_fsck_options_t o = {
        .repair = repair,
        .problem = on_problem,
        .progress = isatty(STDERR_FILENO) ? br_cli_progress : NULL,
        .ctx = &out,
    };
    br_fsck_stats_t st;
    int err = br_store_fsck(s, &o, &st);
    if (out.prog.last_phase != NULL)
        fputc('\n', stderr);
    if (err != 0) {
        fprintf(stderr, "berth fsck: %s\n", br_strerror(err));
        goto Exit;
    }
    if (repair)
        printf("fsck: %" PRIu64 " problems repaired\n", st.repaired);
    printf("fsck: %" PRIu64 " blobs, %" PRIu64 " manifests checked, %" PRIu64 " problems\n", st.blobs, st.manifests, st.problems);
    ret = st.problems > st.repaired ? 1 : 0;
Exit:
    br_store_close(s);
    br_config_dispose(&c);
    return ret;
}
