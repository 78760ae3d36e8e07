/*
 * Minimal TAP producer for C unit tests: plan at the end ("1..N"), one
 * "ok N - name" / "not ok N - name" line per check, exit status 1 if any failed.
 * Header-only so each test program includes it once.
 */
#ifndef BR_TAP_H
#define BR_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;

static inline int tap_ok(int cond, const char *file, int line, const char *name)
{
    ++tap_count;
    printf("%sok %d - %s\n", cond ? "" : "not ", tap_count, name);
    if (!cond) {
        ++tap_failed;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return cond;
}

#define ok(cond, ...)                                                                                                          \
    do {                                                                                                                       \
        char tap_name_[512];                                                                                                   \
        snprintf(tap_name_, sizeof(tap_name_), __VA_ARGS__);                                                                   \
        tap_ok(!!(cond), __FILE__, __LINE__, tap_name_);                                                                       \
    } while (0)

#define is_int(got, want, ...)                                                                                                 \
    do {                                                                                                                       \
        long long g_ = (long long)(got), w_ = (long long)(want);                                                               \
        char tap_name_[512];                                                                                                   \
        snprintf(tap_name_, sizeof(tap_name_), __VA_ARGS__);                                                                   \
        if (!tap_ok(g_ == w_, __FILE__, __LINE__, tap_name_))                                                                  \
            printf("#   got %lld, want %lld\n", g_, w_);                                                                   \
    } while (0)

#define is_str(got, want, ...)                                                                                                 \
    do {                                                                                                                       \
        const char *g_ = (got), *w_ = (want);                                                                                  \
        char tap_name_[512];                                                                                                   \
        snprintf(tap_name_, sizeof(tap_name_), __VA_ARGS__);                                                                   \
        if (!tap_ok(g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0, __FILE__, __LINE__, tap_name_))                           \
            printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");                                  \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed != 0;
}

#endif
