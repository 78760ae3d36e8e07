/*
 * Unit tests for server/h1chunk.c, the strict chunked-body decoder that
 * replaces h2o 2.2.5's in the system-library build: valid bodies decode the
 * same whether they arrive whole, byte by byte or split at any point, and
 * every malformed size line fails instead of ending the body early (which is
 * what let a smuggled request after `0x5` run).
 */
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "server/h1chunk.c"

#define NEXT "DELETE /v2/a/blobs/sha256:00 HTTP/1.1\r\nHost: x\r\n\r\n"

typedef struct {
    ssize_t ret;    /* last return value */
    char out[4096]; /* decoded data, then the leftover */
    size_t outlen;
    size_t left; /* leftover bytes when ret >= 0 */
} result_t;

/* Feeds in[0, len) in pieces of at most `step` bytes (0: whole), the way h2o
 * does: each call sees only new bytes; decoded data accumulates. Stops at the
 * first result that is not -2. */
static void decode(const char *in, size_t len, size_t step, int consume_trailer, result_t *r)
{
    struct phr_chunked_decoder d;
    memset(&d, 0, sizeof(d));
    d.consume_trailer = (char)consume_trailer;
    memset(r, 0, sizeof(*r));
    r->ret = -2;
    size_t off = 0;
    if (step == 0)
        step = len == 0 ? 1 : len;
    while (off < len && r->ret == -2) {
        size_t n = len - off < step ? len - off : step;
        char *buf = malloc(n); /* exact size so ASan sees any overrun */
        memcpy(buf, in + off, n);
        size_t sz = n;
        r->ret = phr_decode_chunked(&d, buf, &sz);
        memcpy(r->out + r->outlen, buf, sz);
        r->outlen += sz;
        if (r->ret >= 0) {
            r->left = (size_t)r->ret + (len - off - n);
            memcpy(r->out + r->outlen, buf + sz, (size_t)r->ret);
            memcpy(r->out + r->outlen + r->ret, in + off + n, len - off - n);
        }
        free(buf);
        off += n;
    }
}

static void test_valid(void)
{
    static const struct {
        const char *in, *data, *after;
        int consume_trailer;
    } cases[] = {
        {"5\r\nhello\r\n0\r\n\r\n", "hello", "", 1},
        {"5\r\nhello\r\n0\r\n\r\n" NEXT, "hello", NEXT, 1},
        {"3\r\nabc\r\n3\r\ndef\r\n1\r\ng\r\n0\r\n\r\n", "abcdefg", "", 1},
        {"A\r\n0123456789\r\n0\r\n\r\n", "0123456789", "", 1},
        {"a\r\n0123456789\r\n000\r\n\r\n", "0123456789", "", 1},
        {"0000000000000005\r\nhello\r\n0\r\n\r\n", "hello", "", 1}, /* 16 digits */
        {"5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello", "", 1},
        {"5;a=\"quoted; \\\"x\\\"\"\r\nhello\r\n0\r\n\r\n", "hello", "", 1},
        {"5\r\nhello\r\n0\r\nDigest: sha-256=:x:\r\nX-Other:\tv v\r\n\r\n" NEXT, "hello", NEXT, 1},
        {"5\r\nhe\r\nl\r\n0\r\n\r\n", "he\r\nl", "", 1}, /* CRLF inside data is data */
        {"0\r\n\r\n", "", "", 1},
        {"0\r\nTrailer: x\r\n\r\n", "", "Trailer: x\r\n\r\n", 0}, /* trailers left to the caller */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].in), dlen = strlen(cases[i].data), alen = strlen(cases[i].after);
        for (size_t step = 0; step <= len; step++) {
            result_t r;
            decode(cases[i].in, len, step, cases[i].consume_trailer, &r);
            int good = r.ret >= 0 && r.outlen == dlen && memcmp(r.out, cases[i].data, dlen) == 0 && r.left == alen &&
                       memcmp(r.out + dlen, cases[i].after, alen) == 0;
            if (!good || step == 0 || step == 1)
                ok(good, "valid #%zu decodes in pieces of %zu (ret %zd)", i, step, r.ret);
            if (!good)
                break;
        }
    }
}

/* Every split of the input into two reads gives the same result. */
static void test_splits(void)
{
    const char *in = "1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\nrest";
    size_t len = strlen(in);
    int all = 1;
    for (size_t cut = 0; cut <= len; cut++) {
        struct phr_chunked_decoder d;
        memset(&d, 0, sizeof(d));
        d.consume_trailer = 1;
        char buf[256], out[256];
        memcpy(buf, in, len);
        size_t sz = cut, n = 0;
        ssize_t r = cut == 0 ? -2 : phr_decode_chunked(&d, buf, &sz), left = -1;
        n = cut == 0 ? 0 : sz;
        memcpy(out, buf, n);
        if (r >= 0) {
            /* ended inside the first read: the rest of it and the second read are left */
            left = r + (ssize_t)(len - cut);
        } else if (r == -2) {
            sz = len - cut;
            memmove(buf, in + cut, sz);
            r = phr_decode_chunked(&d, buf, &sz);
            memcpy(out + n, buf, sz);
            n += sz;
            left = r;
        }
        if (r == left && left == 4 && memcmp(buf + sz, "rest", 4) != 0)
            left = -3;
        if (left != 4 || n != 42 || memcmp(out, "abcdefghijklmnopqrstuvwxyz0123456789abcdef", 42) != 0) {
            all = 0;
            ok(0, "split at %zu: ret %zd, %zu bytes", cut, r, n);
        }
    }
    ok(all, "a body split into two reads at any of %zu points decodes the same", len + 1);
}

/* A string literal with its length, so inputs may hold NUL bytes. */
#define LIT(s) {s, sizeof(s) - 1}

static void test_invalid(void)
{
    static const struct {
        const char *in;
        size_t len;
    } bad[] = {
        LIT("0x5\r\nhello\r\n0\r\n\r\n"),               /* the smuggling case: "0" then junk */
        LIT("0x0\r\n\r\n"),                             /* */
        LIT("5\0\r\nhello\r\n0\r\n\r\n"),               /* NUL after the size */
        LIT("0\0\r\n\r\n"),                             /* */
        LIT("+5\r\nhello\r\n0\r\n\r\n"),                /* sign */
        LIT("-0\r\n\r\n"),                              /* */
        LIT(" 5\r\nhello\r\n0\r\n\r\n"),                /* leading space */
        LIT("5 \r\nhello\r\n0\r\n\r\n"),                /* trailing space */
        LIT("0 \r\n\r\n"),                              /* */
        LIT("5\t\r\nhello\r\n0\r\n\r\n"),               /* trailing tab */
        LIT("5 ;x\r\nhello\r\n0\r\n\r\n"),              /* space before ';' */
        LIT("5\nhello\r\n0\r\n\r\n"),                   /* bare LF on the size line */
        LIT("0\n\r\n"),                                 /* */
        LIT("5\r\nhello\n0\r\n\r\n"),                   /* bare LF after the data */
        LIT("5\r\nhello\r\n0\r\n\n"),                   /* bare LF ending the trailers */
        LIT("5\r\nhello\r\n0\r\nT: v\n\r\n"),           /* bare LF ending a trailer */
        LIT("5\rhello\r\n0\r\n\r\n"),                   /* bare CR */
        LIT("5\r\r\nhello\r\n0\r\n\r\n"),               /* */
        LIT("00000000000000005\r\nhello\r\n0\r\n\r\n"), /* 17 digits */
        LIT("10000000000000000\r\n"),                   /* 17 digits, 2^64 */
        LIT("\r\nhello\r\n0\r\n\r\n"),                  /* no digits */
        LIT(";x\r\n"),                                  /* */
        LIT("g\r\n"),                                   /* not hex */
        LIT("5;a\x01" "b\r\nhello\r\n0\r\n\r\n"),       /* CTL in an extension */
        LIT("5;a\x7f\r\nhello\r\n0\r\n\r\n"),           /* DEL in an extension */
        LIT("5;a\tb\r\nhello\r\n0\r\n\r\n"),            /* */
        LIT("5\r\nhelloX\r\n0\r\n\r\n"),                /* data longer than its size */
        LIT("5\r\nhello0\r\n\r\n"),                     /* no CRLF after the data */
        LIT("0\r\n T: v\r\n\r\n"),                      /* obs-fold in the trailers */
        LIT("0\r\nT v\r\n\r\n"),                        /* trailer without ':' */
        LIT("0\r\n: v\r\n\r\n"),                        /* trailer without a name */
        LIT("0\r\nT: a\0b\r\n\r\n"),                    /* NUL in a trailer */
        LIT("0\r\nT: a\rb\r\n\r\n"),                    /* bare CR in a trailer */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* followed by the request a lax parser would serve next */
        char in[512];
        size_t len = bad[i].len;
        memcpy(in, bad[i].in, len);
        memcpy(in + len, NEXT, strlen(NEXT));
        len += strlen(NEXT);
        result_t whole, bytes;
        decode(in, len, 0, 1, &whole);
        decode(in, len, 1, 1, &bytes);
        ok(whole.ret == -1 && bytes.ret == -1, "invalid #%zu fails whole (%zd) and byte by byte (%zd)", i, whole.ret,
           bytes.ret);
    }

    /* After a failure the decoder stays failed. */
    struct phr_chunked_decoder d;
    memset(&d, 0, sizeof(d));
    char b1[] = "0x5\r\n", b2[] = "0\r\n\r\n";
    size_t sz = 5;
    is_int(phr_decode_chunked(&d, b1, &sz), -1, "0x5 fails");
    sz = 5;
    is_int(phr_decode_chunked(&d, b2, &sz), -1, "and a good last chunk after it fails too");
}

static void test_in_data(void)
{
    struct phr_chunked_decoder d;
    memset(&d, 0, sizeof(d));
    d.consume_trailer = 1;
    char b[] = "a\r\n01234";
    size_t sz = strlen(b);
    is_int(phr_decode_chunked(&d, b, &sz), -2, "partial chunk is incomplete");
    is_int(sz, 5, "its 5 data bytes are decoded");
    ok(phr_decode_chunked_is_in_data(&d), "the decoder is in chunk data");
    char c[] = "56789\r\n";
    sz = strlen(c);
    is_int(phr_decode_chunked(&d, c, &sz), -2, "chunk end is still incomplete");
    ok(!phr_decode_chunked_is_in_data(&d), "the decoder is between chunks");
    char e[] = "0\r\n\r\n";
    sz = strlen(e);
    is_int(phr_decode_chunked(&d, e, &sz), 0, "last chunk ends the body");
    char f[] = "GET";
    sz = 3;
    is_int(phr_decode_chunked(&d, f, &sz), 3, "bytes after the end are all left over");
    is_int(sz, 0, "and none decoded");
}

int main(void)
{
    test_valid();
    test_splits();
    test_invalid();
    test_in_data();
    return tap_done();
}
