/*
 * The chunked decoder berth's HTTP/1 connections run (picohttpparser's
 * phr_decode_chunked): strict framing, so that berth and any proxy in front of it
 * agree where a body ends. Each input is decoded twice, in one call and one byte
 * per call (the socket may split a chunk line anywhere).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "picohttpparser.h"
#include "tests/tap.h"

#define S(lit) lit, sizeof(lit) - 1

/* Decodes in one call; *out gets the decoded body. Returns what the decoder returned. */
static ssize_t decode_whole(const char *in, size_t len, char *out, size_t *outlen)
{
    struct phr_chunked_decoder dec;
    memset(&dec, 0, sizeof(dec));
    dec.consume_trailer = 1;
    memcpy(out, in, len);
    *outlen = len;
    return phr_decode_chunked(&dec, out, outlen);
}

/* Decodes one byte per call until the decoder stops asking for more. Returns its last
 * answer, or -2 if the input ran out first; for a complete body the number of bytes
 * after it is counted from the remaining input, as in the one-call case. */
static ssize_t decode_bytewise(const char *in, size_t len, char *out, size_t *outlen)
{
    struct phr_chunked_decoder dec;
    memset(&dec, 0, sizeof(dec));
    dec.consume_trailer = 1;
    *outlen = 0;
    for (size_t i = 0; i != len; ++i) {
        char c = in[i];
        size_t n = 1;
        ssize_t ret = phr_decode_chunked(&dec, &c, &n);
        if (n != 0)
            out[(*outlen)++] = c;
        if (ret == -1)
            return -1;
        if (ret >= 0)
            return ret + (ssize_t)(len - i - 1);
    }
    return -2;
}

static void good(const char *in, size_t len, const char *body, size_t bodylen, ssize_t extra, const char *name)
{
    char out[256];
    size_t outlen;
    ssize_t ret = decode_whole(in, len, out, &outlen);
    is_int(ret, extra, "%s: accepted, %zd bytes after the body", name, extra);
    ok(outlen == bodylen && memcmp(out, body, bodylen) == 0, "%s: body decoded", name);
    ret = decode_bytewise(in, len, out, &outlen);
    is_int(ret, extra, "%s, one byte per call: accepted", name);
    ok(outlen == bodylen && memcmp(out, body, bodylen) == 0, "%s, one byte per call: body decoded", name);
}

static void bad(const char *in, size_t len, const char *name)
{
    char out[256];
    size_t outlen;
    is_int(decode_whole(in, len, out, &outlen), -1, "%s: rejected", name);
    is_int(decode_bytewise(in, len, out, &outlen), -1, "%s, one byte per call: rejected", name);
}

int main(void)
{
    good(S("5\r\nhello\r\n0\r\n\r\n"), S("hello"), 0, "two chunks");
    good(S("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), S("hello world"), 0, "three chunks");
    good(S("5;name=value;x\r\nhello\r\n0;end\r\n\r\n"), S("hello"), 0, "chunk extensions");
    good(S("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"), S("0123456789abcdefghij"), 0, "upper and lower case hex");
    good(S("0000000000000005\r\nhello\r\n0\r\n\r\n"), S("hello"), 0, "16 hex digits");
    good(S("5\r\nhello\r\n0\r\nX-Trailer: a b\tc\r\nY: z\r\n\r\n"), S("hello"), 0, "trailer fields");
    good(S("0\r\n\r\n"), S(""), 0, "empty body");
    good(S("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), S("hello"), 16, "the next request is left alone");

    /* the size line: 1*HEXDIG, then ';' or CRLF */
    bad(S("0x5\r\nhello\r\n0\r\n\r\n"), "0x5");
    bad(S("5\0\r\nhello\r\n0\r\n\r\n"), "5 followed by NUL");
    bad(S("+5\r\nhello\r\n0\r\n\r\n"), "+5");
    bad(S("-1\r\nhello\r\n0\r\n\r\n"), "-1");
    bad(S(" 5\r\nhello\r\n0\r\n\r\n"), "space before the size");
    bad(S("5 \r\nhello\r\n0\r\n\r\n"), "space after the size");
    bad(S("5 ;a\r\nhello\r\n0\r\n\r\n"), "space before an extension");
    bad(S("5\t\r\nhello\r\n0\r\n\r\n"), "tab after the size");
    bad(S("0 5\r\nhello\r\n0\r\n\r\n"), "two numbers");
    bad(S("\r\nhello\r\n0\r\n\r\n"), "empty size line");
    bad(S("00000000000000005\r\nhello\r\n0\r\n\r\n"), "17 hex digits");
    bad(S("ffffffffffffffff0\r\n"), "size overflowing 64 bits");
    bad(S("5\nhello\r\n0\r\n\r\n"), "bare LF after the size");
    bad(S("5\r\r\nhello\r\n0\r\n\r\n"), "CR CR LF after the size");
    bad(S("5;a\0b\r\nhello\r\n0\r\n\r\n"), "NUL in an extension");
    bad(S("5;a\nhello\r\n0\r\n\r\n"), "bare LF after an extension");
    bad(S("5;a\rb\r\nhello\r\n0\r\n\r\n"), "bare CR in an extension");
    /* after the data: exactly CRLF */
    bad(S("5\r\nhello\n0\r\n\r\n"), "bare LF after the data");
    bad(S("5\r\nhello\r\r\n0\r\n\r\n"), "CR CR LF after the data");
    bad(S("5\r\nhelloX\r\n0\r\n\r\n"), "chunk longer than its size");
    /* trailers */
    bad(S("0\r\n\n"), "bare LF ends the trailers");
    bad(S("0\r\nX: y\n\r\n"), "bare LF ends a trailer field");
    bad(S("0\r\nX: \0\r\n\r\n"), "NUL in a trailer field");

    printf("1..%d\n", tap_count);
    return tap_failed != 0;
}
