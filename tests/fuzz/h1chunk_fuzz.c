/*
 * Fuzz target: server/h1chunk.c, the strict chunked-body decoder of the
 * system-library build. The first input byte picks consume_trailer (bit 0) and
 * a read size (the other bits, 0 = all at once); the rest is the body. The
 * streaming decoder, fed in reads of that size, must agree with a simple
 * line-by-line reference of the grammar on the result, the decoded bytes and
 * the bytes left over after the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/fuzz/fuzz.h"
#include "server/h1chunk.c"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "h1chunk_fuzz: invariant violated: %s\n", what);
        abort();
    }
}

/* The reference: whole input at once, one line at a time. Returns what
 * phr_decode_chunked() must (-2, -1 or bytes left over); data to out. */
static ssize_t ref_decode(const unsigned char *in, size_t len, int consume_trailer, unsigned char *out, size_t *outlen)
{
    size_t p = 0;
    *outlen = 0;
    for (;;) {
        size_t k = 0, size = 0;
        while (p + k < len && hexval(in[p + k]) >= 0 && k <= MAX_SIZE_DIGITS) {
            size = size * 16 + (size_t)hexval(in[p + k]);
            k++;
        }
        if (k > MAX_SIZE_DIGITS)
            return -1;
        if (p + k == len)
            return -2;
        if (k == 0)
            return -1;
        p += k;
        if (in[p] == ';')
            for (p++; p < len && in[p] != '\r'; p++)
                if (is_ctl(in[p]))
                    return -1;
        if (p == len || p + 1 == len)
            return p < len && in[p] != '\r' ? -1 : -2;
        if (in[p] != '\r' || in[p + 1] != '\n')
            return -1;
        p += 2;
        if (size == 0)
            break;
        size_t n = len - p < size ? len - p : size;
        memcpy(out + *outlen, in + p, n);
        *outlen += n;
        p += n;
        if (n < size || p == len)
            return -2;
        if (in[p] != '\r')
            return -1;
        if (p + 1 == len)
            return -2;
        if (in[p + 1] != '\n')
            return -1;
        p += 2;
    }
    if (!consume_trailer)
        return (ssize_t)(len - p);
    for (;;) {
        if (p == len)
            return -2;
        if (in[p] == '\r') {
            if (p + 1 == len)
                return -2;
            return in[p + 1] == '\n' ? (ssize_t)(len - p - 2) : -1;
        }
        size_t q = p;
        while (q < len && is_tchar(in[q]))
            q++;
        if (q == len)
            return -2;
        if (q == p || in[q] != ':')
            return -1;
        for (q++; q < len && in[q] != '\r'; q++)
            if (is_ctl(in[q]) && in[q] != '\t')
                return -1;
        if (q == len || q + 1 == len)
            return -2;
        if (in[q + 1] != '\n')
            return -1;
        p = q + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int consume_trailer = data[0] & 1;
    size_t step = data[0] >> 1;
    const unsigned char *in = data + 1;
    size_t len = size - 1;
    if (step == 0)
        step = len;

    unsigned char *want = malloc(len + 1), *got = malloc(len + 1);
    size_t want_len, got_len = 0, off = 0;
    ssize_t want_ret = ref_decode(in, len, consume_trailer, want, &want_len), ret = -2, total = -2;

    struct phr_chunked_decoder d;
    memset(&d, 0, sizeof(d));
    d.consume_trailer = (char)consume_trailer;
    while (off < len && ret == -2) {
        size_t n = len - off < step ? len - off : step, sz = n;
        char *buf = malloc(n);
        memcpy(buf, in + off, n);
        ret = phr_decode_chunked(&d, buf, &sz);
        check(sz <= n, "decoded no more than it was given");
        memcpy(got + got_len, buf, sz);
        got_len += sz;
        if (ret >= 0) {
            check((size_t)ret <= n - sz, "left over fits in the read");
            /* what is left over: the rest of this read, then the reads not made */
            total = ret + (ssize_t)(len - off - n);
            check(want_ret >= 0 && memcmp(buf + sz, in + len - want_ret, (size_t)ret) == 0, "left over bytes follow the data");
        } else {
            total = ret;
        }
        free(buf);
        off += n;
    }
    check(total == want_ret, "same result as the reference");
    if (ret != -1)
        check(got_len == want_len && memcmp(got, want, got_len) == 0, "same data as the reference");
    free(want);
    free(got);
    return 0;
}
