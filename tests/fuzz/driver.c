/*
 * Standalone replay driver for the fuzz targets, so `make check` runs them
 * with any compiler: every file named on the command line (or found in a named
 * directory) is fed to LLVMFuzzerTestOneInput whole, then as each of its
 * prefixes, which walks the parser through every truncation of a good input.
 * With no arguments it replays $top_srcdir/tests/fuzz/corpus/<BR_FUZZ_NAME>.
 * Output is TAP, one line per file; a crash or abort fails the test run.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/br.h"
#include "tests/tap.h"
#include "tests/fuzz/fuzz.h"

#ifndef BR_FUZZ_NAME
#error "define BR_FUZZ_NAME as the name of the target's corpus directory"
#endif

static int read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = 4096, n = 0, r;
    int ret = -1;

    *data = NULL;
    if (fp == NULL)
        goto Exit;
    *data = br_malloc(cap);
    while ((r = fread(*data + n, 1, cap - n, fp)) != 0) {
        n += r;
        if (n == cap)
            *data = br_realloc(*data, cap *= 2);
    }
    if (ferror(fp))
        goto Exit;
    *size = n;
    ret = 0;
Exit:
    if (fp != NULL)
        fclose(fp);
    if (ret != 0) {
        free(*data);
        *data = NULL;
    }
    return ret;
}

static void replay_file(const char *path)
{
    uint8_t *data, *copy;
    size_t size;

    if (read_file(path, &data, &size) != 0) {
        ok(0, "read %s", path);
        return;
    }
    /* Each run gets an exact-size heap copy, so ASan sees any overread. */
    for (size_t n = 0; n <= size; n++) {
        copy = br_malloc(n);
        memcpy(copy, data, n);
        LLVMFuzzerTestOneInput(copy, n);
        free(copy);
    }
    ok(1, "%s (%zu bytes, %zu runs)", path, size, size + 1);
    free(data);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_path(const char *path)
{
    struct stat st;
    DIR *dir;
    struct dirent *e;
    char **names = NULL;
    size_t num = 0;

    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        replay_file(path);
        return;
    }
    if ((dir = opendir(path)) == NULL) {
        ok(0, "open %s", path);
        return;
    }
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = br_realloc(names, (num + 1) * sizeof(*names));
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[num] = br_malloc(len);
        snprintf(names[num++], len, "%s/%s", path, e->d_name);
    }
    closedir(dir);
    /* Sorted, so TAP numbering is stable across runs. */
    qsort(names, num, sizeof(*names), by_name);
    for (size_t i = 0; i < num; i++) {
        replay_file(names[i]);
        free(names[i]);
    }
    free(names);
    ok(num != 0, "%s has seeds", path);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            replay_path(argv[i]);
    } else {
        const char *top = getenv("top_srcdir");
        char path[4096];
        snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/%s", top != NULL ? top : ".", BR_FUZZ_NAME);
        replay_path(path);
    }
    return tap_done();
}
