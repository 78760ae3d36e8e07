/*
 * Crash test for storage/: a child process pushes blobs (through uploads with
 * saves, and whole), manifests with tags, and deliberately unfinished or
 * wrong uploads, reporting each result through a pipe once the call has
 * returned. The parent SIGKILLs it at a random moment, reopens the store and
 * checks: every reported blob is stored, linked and hashes to its digest;
 * every reported tag resolves; nothing of the unfinished uploads is visible;
 * every saved session either resumes at or after its saved size and can be
 * completed, or is gone; and br_store_verify() (hashing every blob) finds the
 * index consistent. Several rounds on the same store, bounded in time.
 */
#include "tests/storage/util.h"
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>
#include "tests/tap.h"

#define ROUNDS 8
#define MAX_BLOB (256 << 10)

static br_store_options_t opts = {.fsync = 1, .map_size = 1ULL << 30};

/* ---- child ---------------------------------------------------------------------- */

static void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int fd, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One write of less than PIPE_BUF: the parent sees whole lines or none. */
    if (write(fd, line, (size_t)n) != n)
        _exit(3);
}

static void child(const char *root, int round, int wfd)
{
    static unsigned char buf[MAX_BLOB];
    br_store_t *s;
    br_digest_t last = digest_of(BR_ALG_SHA256, "", 0), d;
    char repo[16], dbuf[BR_DIGEST_MAX + 1];
    alarm(30); /* never outlive a parent that died */
    if (br_store_open(&s, root, &opts) != 0)
        _exit(2);
    snprintf(repo, sizeof(repo), "c%d", round % 3);
    for (uint64_t i = 0;; i++) {
        uint64_t seed = (uint64_t)round << 32 | i;
        size_t n = 1 + (size_t)((seed * 2654435761u) % MAX_BLOB);
        uint64_t size;
        br_upload_t *u;
        fill_bytes(buf, n, seed);
        d = digest_of(BR_ALG_SHA256, buf, n);
        br_digest_format(&d, dbuf);
        switch (i % 5) {
        case 0:
        case 1: /* upload in three writes with two saves, then commit */
            if (br_upload_start(s, br_cstr(repo), &u) != 0)
                _exit(4);
            if (br_upload_write(u, buf, n / 3) != 0 || br_upload_save(u) != 0)
                _exit(5);
            report(wfd, "S %s %llu %zu %zu\n", br_upload_uuid(u), (unsigned long long)seed, n, n / 3);
            if (br_upload_write(u, buf + n / 3, n / 3) != 0 || br_upload_save(u) != 0 ||
                br_upload_write(u, buf + 2 * (n / 3), n - 2 * (n / 3)) != 0)
                _exit(6);
            if (br_upload_commit(u, &d, &size) != 0 || size != n)
                _exit(7);
            br_upload_destroy(u);
            report(wfd, "B %s %s\n", repo, dbuf);
            last = d;
            break;
        case 2: /* whole blob */
            if (br_blob_put(s, br_cstr(repo), BR_ALG_SHA256, buf, n % 4096, &d) != 0)
                _exit(8);
            br_digest_format(&d, dbuf);
            report(wfd, "B %s %s\n", repo, dbuf);
            break;
        case 3: { /* manifest referencing the last blob, tagged */
            char body[256], tag[32];
            br_manifest_put_t m;
            memset(&m, 0, sizeof(m));
            snprintf(body, sizeof(body), "{\"round\":%d,\"i\":%llu}", round, (unsigned long long)i);
            snprintf(tag, sizeof(tag), "r%d-%llu", round, (unsigned long long)i);
            m.repo = br_cstr(repo);
            m.body = br_cstr(body);
            m.alg = BR_ALG_SHA256;
            m.media_type = BR_STR("application/vnd.oci.image.manifest.v1+json");
            m.tag = br_cstr(tag);
            m.refs = &last;
            m.num_refs = 1;
            if (br_manifest_put(s, &m, &d) != 0)
                _exit(9);
            br_digest_format(&d, dbuf);
            report(wfd, "M %s %s %s\n", repo, tag, dbuf);
            break;
        }
        case 4: /* content that must never become visible */
            report(wfd, "U %s\n", dbuf);
            if (br_upload_start(s, br_cstr(repo), &u) != 0 || br_upload_write(u, buf, n) != 0)
                _exit(10);
            if (i % 2) {
                br_digest_t wrong = digest_of(BR_ALG_SHA256, buf, n - 1);
                if (br_upload_commit(u, &wrong, &size) != BR_E_DIGEST_INVALID)
                    _exit(11);
            } else if (br_upload_save(u) != 0) {
                _exit(12);
            }
            br_upload_destroy(u);
            break;
        }
    }
}

/* ---- parent ----------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} text_t;

static void text_add(text_t *t, const char *p, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = br_realloc(t->p, t->cap);
    }
    memcpy(t->p + t->len, p, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs one child for about ms milliseconds, kills it, returns what it reported. */
static int run_child(const char *root, int round, unsigned ms, text_t *out)
{
    int fds[2];
    char buf[4096];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        child(root, round, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    uint64_t end = now_ms() + ms;
    for (uint64_t t = now_ms(); t < end; t = now_ms()) {
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, (int)(end - t)) > 0) {
            ssize_t n = read(fds[0], buf, sizeof(buf));
            if (n <= 0)
                break; /* child died on its own: reported below */
            text_add(out, buf, (size_t)n);
        }
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0)
        text_add(out, buf, (size_t)n);
    close(fds[0]);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct {
    int blobs, blob_bad, tags, tag_bad, hidden, hidden_bad, sessions, sessions_resumed, session_bad;
} tally_t;

static void check_blob(br_store_t *s, const char *repo, const char *dstr, tally_t *t)
{
    br_digest_t d, got;
    uint64_t size;
    int fd = -1;
    ++t->blobs;
    if (br_digest_parse(&d, br_cstr(dstr)) != 0 || br_blob_open(s, br_cstr(repo), &d, &fd, &size) != 0 ||
        hash_fd(fd, d.alg, &got) != 0 || !br_digest_eq(&got, &d)) {
        ++t->blob_bad;
        printf("# blob %s in %s missing or wrong\n", dstr, repo);
    }
    if (fd >= 0)
        close(fd);
}

static void check_tag(br_store_t *s, const char *repo, const char *tag, const char *dstr, tally_t *t)
{
    br_manifest_rec_t rec;
    br_digest_t d;
    ++t->tags;
    if (br_digest_parse(&d, br_cstr(dstr)) != 0 || br_manifest_get(s, br_cstr(repo), br_cstr(tag), &rec) != 0 ||
        !br_digest_eq(&rec.digest, &d) || br_blob_stat(s, br_cstr(repo), &d, NULL) != 0) {
        ++t->tag_bad;
        printf("# tag %s:%s does not resolve to %s\n", repo, tag, dstr);
    }
}

static void check_hidden(br_store_t *s, const char *dstr, tally_t *t)
{
    br_digest_t d;
    uint64_t size;
    ++t->hidden;
    if (br_digest_parse(&d, br_cstr(dstr)) != 0 || br_blob_stat_any(s, &d, &size) != BR_E_BLOB_UNKNOWN) {
        ++t->hidden_bad;
        printf("# unfinished upload %s is visible\n", dstr);
    }
}

/* A saved session must come back at or after its saved size (or be gone, if
 * it was committed), with a file of exactly that size, and finish correctly. */
static void check_session(br_store_t *s, const char *root, int round, const char *uuid, uint64_t seed, size_t n, size_t saved,
                          tally_t *t)
{
    static unsigned char buf[MAX_BLOB];
    char repo[16], path[512];
    br_upload_t *u = NULL;
    struct stat st;
    uint64_t size;
    ++t->sessions;
    snprintf(repo, sizeof(repo), "c%d", round % 3);
    int ret = br_upload_resume(s, br_cstr(repo), br_cstr(uuid), &u);
    if (ret == BR_E_BLOB_UPLOAD_UNKNOWN)
        return;
    ++t->sessions_resumed;
    snprintf(path, sizeof(path), "%s/uploads/%s", root, uuid);
    fill_bytes(buf, n, seed);
    br_digest_t d = digest_of(BR_ALG_SHA256, buf, n);
    uint64_t at = ret == 0 ? br_upload_size(u) : 0;
    if (ret != 0 || at < saved || at > n || stat(path, &st) != 0 || (uint64_t)st.st_size != at ||
        br_upload_write(u, buf + at, n - at) != 0 || br_upload_commit(u, &d, &size) != 0) {
        ++t->session_bad;
        printf("# session %s (saved %zu of %zu) did not resume and finish: %s\n", uuid, saved, n, br_strerror(ret));
    }
    br_upload_destroy(u);
}

int main(void)
{
    char root[256], detail[512];
    text_t all = {NULL, 0, 0};
    tally_t t;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    uint64_t started = now_ms();

    srand(seed);
    printf("# random seed %u\n", seed);
    make_root(root, sizeof(root), "crash");
    for (int round = 0; round < ROUNDS; round++) {
        text_t got = {NULL, 0, 0};
        unsigned ms = 150 + (unsigned)rand() % 900;
        int status = run_child(root, round, ms, &got);
        is_int(status, 0, "round %d: child killed after %u ms (not failed on its own)", round, ms);
        if (got.len != 0)
            text_add(&all, got.p, got.len);

        br_store_t *s = NULL;
        int ret = br_store_open(&s, root, &opts);
        is_int(ret, 0, "round %d: store reopens after kill -9", round);
        if (ret != 0) {
            free(got.p);
            break;
        }
        /* Everything reported in any round so far must be there; the
         * sessions of this round are resumed and finished. */
        memset(&t, 0, sizeof(t));
        char *save = NULL;
        for (char *line = all.p != NULL ? strtok_r(all.p, "\n", &save) : NULL; line != NULL; line = strtok_r(NULL, "\n", &save)) {
            char a[160], b[160], c[160];
            if (sscanf(line, "B %159s %159s", a, b) == 2)
                check_blob(s, a, b, &t);
            else if (sscanf(line, "M %159s %159s %159s", a, b, c) == 3)
                check_tag(s, a, b, c, &t);
            else if (sscanf(line, "U %159s", a) == 1)
                check_hidden(s, a, &t);
        }
        /* strtok_r wrote NULs over the newlines: restore them. */
        for (size_t i = 0; i < all.len; i++)
            if (all.p[i] == '\0')
                all.p[i] = '\n';
        save = NULL;
        for (char *line = got.p != NULL ? strtok_r(got.p, "\n", &save) : NULL; line != NULL; line = strtok_r(NULL, "\n", &save)) {
            char uuid[64];
            unsigned long long sd;
            size_t n, saved;
            if (sscanf(line, "S %63s %llu %zu %zu", uuid, &sd, &n, &saved) == 4)
                check_session(s, root, round, uuid, sd, n, saved, &t);
        }
        ok(t.blobs > 0 || round == 0, "round %d: %d blobs reported so far", round, t.blobs);
        is_int(t.blob_bad, 0, "round %d: every reported blob is stored, linked and hashes to its digest", round);
        is_int(t.tag_bad, 0, "round %d: every reported tag (%d) resolves", round, t.tags);
        is_int(t.hidden_bad, 0, "round %d: no unfinished upload (%d) is visible", round, t.hidden);
        is_int(t.session_bad, 0, "round %d: saved sessions (%d, %d still open) resume and finish", round, t.sessions,
               t.sessions_resumed);
        ret = br_store_verify(s, 1, detail, sizeof(detail));
        is_int(ret, 0, "round %d: index consistent, every blob hashes to its digest", round);
        if (ret != 0)
            printf("#   %s\n", detail);
        br_store_close(s);
        free(got.p);
        if (now_ms() - started > 15000) {
            printf("# time budget reached after %d rounds\n", round + 1);
            break;
        }
    }
    ok(all.len != 0, "children reported work (%zu bytes of reports)", all.len);
    free(all.p);
    rm_tree(root);
    return tap_done();
}
