/*
 * A strict HTTP/1.1 chunked-body decoder with picohttpparser's ABI, for the
 * build against Debian's unpatched libh2o-evloop (server/h1chunk.c; the build
 * with berth's patched h2o fixes the parser inside the library and must not
 * link that file, or the symbols would be defined twice).
 *
 * Why it exists: h2o 2.2.5's bundled decoder stops reading a chunk size at the
 * first non-hex byte and skips to the next LF, so `0x5`, `5<NUL>` or `5 junk`
 * read as a zero-size last chunk and the bytes after it are served as a new
 * request on the same connection (request smuggling behind any proxy that
 * parses chunk sizes correctly). libh2o-evloop.so calls phr_decode_chunked()
 * through its PLT, so the definition in berth's executable takes precedence
 * (ELF symbol interposition) and h2o's chunked-body reader runs this decoder.
 * On -1, h2o answers "400 broken chunked-encoding" with `Connection: close`,
 * stops reading and closes once it is sent, so nothing after the bad line is
 * ever parsed as a request.
 */
#ifndef BR_H1CHUNK_H
#define BR_H1CHUNK_H

#include <stddef.h>
#include <sys/types.h>

/* Same layout as picohttpparser's struct (libh2o-evloop allocates it and
 * zero-fills it; only consume_trailer is set by the caller). */
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk; /* the chunk size while it is read, then the data still to come */
    char consume_trailer;       /* 1: read through the trailer section; 0: stop after the last-chunk line */
    char _hex_count;            /* digits of the chunk size read so far */
    char _state;
};

/*
 * Decodes the chunked body in buf[0, *bufsz) in place: chunk framing is
 * removed and the data is moved to the front; *bufsz becomes the length of the
 * data decoded by this call. Every input byte is consumed into the decoder's
 * state, so the next call gets only new bytes. Returns -2 if the body is not
 * complete yet, -1 on any syntax error (the decoder then stays failed), or,
 * when the body ends, the number of bytes after it, which are moved to
 * buf[*bufsz, *bufsz + ret).
 * Accepted grammar: chunk-size = 1..16 HEXDIG; then an optional ";" extension
 * of any bytes but CTLs; then CRLF; data; CRLF. Trailer lines must be
 * token ":" value (no CTL but HTAB in the value) each ending in CRLF. Bare LF,
 * bare CR, whitespace around the size, signs, "0x" prefixes all fail.
 */
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

/* 1 when the decoder is inside chunk data (h2o's HTTP client asks this when
 * the peer closes). */
int phr_decode_chunked_is_in_data(struct phr_chunked_decoder *decoder);

#endif
