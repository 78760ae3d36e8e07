/*
 * Strict chunked-body decoder for the build against Debian's unpatched
 * libh2o-evloop ONLY: it replaces h2o 2.2.5's bundled phr_decode_chunked() by
 * ELF interposition (why, and the contract: server/h1chunk.h). A build that
 * links berth's patched h2o must leave this file out (duplicate symbols).
 *
 * Written from the contract, as a byte-at-a-time state machine for the framing
 * and a block move for the data, so a chunk-size line split across reads at
 * any byte decodes the same as in one piece. The whole state must fit in the
 * fields of picohttpparser's struct: h2o allocates it with that size.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/h1chunk.h"

_Static_assert(sizeof(struct phr_chunked_decoder) == 2 * sizeof(size_t) &&
                   offsetof(struct phr_chunked_decoder, consume_trailer) == sizeof(size_t) &&
                   offsetof(struct phr_chunked_decoder, _state) == sizeof(size_t) + 2,
               "struct phr_chunked_decoder must keep picohttpparser's layout");

/* At most 16 hex digits (the bound and RFC 9112's practical one);
 * leading zeros count, so "00000000000000005" is refused like any 17 digits. */
#define MAX_SIZE_DIGITS 16

enum {
    S_SIZE = 0,      /* in the chunk size (zero-filled decoder starts here) */
    S_EXT,           /* after ';': extension bytes up to CR */
    S_SIZE_LF,       /* CR of the size line seen */
    S_DATA,          /* bytes_left_in_chunk data bytes to go */
    S_DATA_CR,       /* data done, CR expected */
    S_DATA_LF,       /* LF after the data expected */
    S_TRAILER,       /* at the start of a trailer line (or of the final CRLF) */
    S_TRAILER_NAME,  /* in a trailer field name */
    S_TRAILER_VALUE, /* after ':' */
    S_TRAILER_LF,    /* CR of a trailer line seen */
    S_END_LF,        /* CR of the empty line ending the trailers seen */
    S_DONE,          /* the body has ended: every later byte is left over */
    S_FAILED,        /* a syntax error was seen: every later call fails */
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* RFC 9110 tchar */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

ssize_t phr_decode_chunked(struct phr_chunked_decoder *d, char *buf, size_t *bufsz)
{
    size_t src = 0, dst = 0, len = *bufsz;

    if (d->_state == S_FAILED)
        goto Fail;
    if (d->_state == S_DONE)
        goto Done;
    while (src < len) {
        if (d->_state == S_DATA) {
            size_t n = len - src < d->bytes_left_in_chunk ? len - src : d->bytes_left_in_chunk;
            memmove(buf + dst, buf + src, n);
            src += n;
            dst += n;
            if ((d->bytes_left_in_chunk -= n) == 0)
                d->_state = S_DATA_CR;
            continue;
        }
        unsigned char c = (unsigned char)buf[src++];
        int v;
        switch (d->_state) {
        case S_SIZE:
            if ((v = hexval(c)) >= 0) {
                if (d->_hex_count == MAX_SIZE_DIGITS || d->bytes_left_in_chunk > SIZE_MAX >> 4)
                    goto Fail;
                d->bytes_left_in_chunk = d->bytes_left_in_chunk * 16 + (size_t)v;
                d->_hex_count++;
            } else if (d->_hex_count != 0 && c == ';') {
                d->_state = S_EXT;
            } else if (d->_hex_count != 0 && c == '\r') {
                d->_state = S_SIZE_LF;
            } else {
                goto Fail;
            }
            break;
        case S_EXT:
            if (c == '\r')
                d->_state = S_SIZE_LF;
            else if (is_ctl(c))
                goto Fail;
            break;
        case S_SIZE_LF:
            if (c != '\n')
                goto Fail;
            d->_hex_count = 0;
            if (d->bytes_left_in_chunk != 0)
                d->_state = S_DATA;
            else if (d->consume_trailer)
                d->_state = S_TRAILER;
            else
                goto Done;
            break;
        case S_DATA_CR:
            if (c != '\r')
                goto Fail;
            d->_state = S_DATA_LF;
            break;
        case S_DATA_LF:
            if (c != '\n')
                goto Fail;
            d->_state = S_SIZE;
            break;
        case S_TRAILER:
            /* no obs-fold: a line starting with whitespace fails here */
            if (c == '\r')
                d->_state = S_END_LF;
            else if (is_tchar(c))
                d->_state = S_TRAILER_NAME;
            else
                goto Fail;
            break;
        case S_TRAILER_NAME:
            if (c == ':')
                d->_state = S_TRAILER_VALUE;
            else if (!is_tchar(c))
                goto Fail;
            break;
        case S_TRAILER_VALUE:
            if (c == '\r')
                d->_state = S_TRAILER_LF;
            else if (is_ctl(c) && c != '\t')
                goto Fail;
            break;
        case S_TRAILER_LF:
            if (c != '\n')
                goto Fail;
            d->_state = S_TRAILER;
            break;
        case S_END_LF:
            if (c != '\n')
                goto Fail;
            goto Done;
        default: /* corrupt state */
            goto Fail;
        }
    }
    *bufsz = dst;
    return -2;

Done:
    d->_state = S_DONE;
    memmove(buf + dst, buf + src, len - src);
    *bufsz = dst;
    return (ssize_t)(len - src);
Fail:
    d->_state = S_FAILED;
    *bufsz = dst;
    return -1;
}

int phr_decode_chunked_is_in_data(struct phr_chunked_decoder *d)
{
    return d->_state == S_DATA;
}

/*
 * The interposition only works while this definition is in the executable's
 * dynamic symbol table (the linker puts it there because libh2o-evloop also
 * defines it). If a build change ever lost that, h2o would quietly go back to
 * its own decoder; refuse to start instead. dlsym() finds the first definition
 * in the global scope, i.e. the one h2o's PLT calls bind to; NULL means no
 * loaded library has one (the unit test and fuzz programs).
 */
__attribute__((constructor)) static void check_interposed(void)
{
    void *bound = dlsym(RTLD_DEFAULT, "phr_decode_chunked");
    void *mine = (void *)phr_decode_chunked;
    if (bound != NULL && bound != mine) {
        fprintf(stderr, "berth: h2o's chunked-body decoder is not replaced by berth's strict one (server/h1chunk.c); "
                        "refusing to run with a request-smuggling hole\n");
        exit(70);
    }
}
