/*
 * Logging: one line per call, written with a single write(2) so lines from
 * different threads never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>
#include "common/br.h"

/* Set again by a config reload while other threads log: read and written
 * atomically (relaxed: a line racing the reload may use either setting). */
static br_log_level_t log_level = BR_LOG_INFO;
static br_log_format_t log_format = BR_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void br_log_setup(br_log_level_t level, br_log_format_t format)
{
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
    __atomic_store_n(&log_format, format, __ATOMIC_RELAXED);
}

int br_log_enabled(br_log_level_t level)
{
    return level >= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

uint64_t br_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

uint64_t br_now(void)
{
    return br_now_ms() / 1000;
}

static size_t format_time(char *buf, size_t size)
{
    uint64_t ms = br_now_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, size - n, ".%03uZ", (unsigned)(ms % 1000));
    return n;
}

size_t br_json_escape(char *buf, size_t size, br_str_t s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len && n + 7 < size; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(buf + n, size - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    if (n < size)
        buf[n] = '\0';
    return n;
}

void br_log(br_log_level_t level, const char *fmt, ...)
{
    if (!br_log_enabled(level))
        return;
    char msg[2048], line[4608];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t n = 0;
    if (__atomic_load_n(&log_format, __ATOMIC_RELAXED) == BR_LOG_JSON) {
        n += (size_t)snprintf(line, sizeof(line), "{\"time\":\"");
        n += format_time(line + n, sizeof(line) - n);
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"level\":\"%s\",\"msg\":\"", level_names[level]);
        n += br_json_escape(line + n, sizeof(line) - n - 3, br_cstr(msg));
        n += (size_t)snprintf(line + n, sizeof(line) - n, "\"}");
    } else {
        n += format_time(line, sizeof(line));
        n += (size_t)snprintf(line + n, sizeof(line) - n, " %-5s %s", level_names[level], msg);
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    br_log_raw(line, n);
}

void br_log_raw(const char *line, size_t len)
{
    char buf[8192];
    if (len > sizeof(buf) - 1)
        len = sizeof(buf) - 1;
    memcpy(buf, line, len);
    buf[len] = '\n';
    ssize_t r = write(STDERR_FILENO, buf, len + 1);
    (void)r;
}
