/*
 * Digests: parsing per the OCI grammar, formatting, and incremental hashing.
 *
 * The low-level SHA256_ and SHA512_ functions are deprecated in OpenSSL 3, but
 * their state is plain data that can be saved between requests and restored
 * after a restart, which EVP_MD_CTX cannot; upload sessions depend on that.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <string.h>
#include "common/br.h"

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int br_digest_parse(br_digest_t *d, br_str_t s)
{
    const char *colon = s.len != 0 ? memchr(s.base, ':', s.len) : NULL;
    if (colon == NULL)
        return BR_E_DIGEST_INVALID;
    br_str_t alg = br_str(s.base, colon - s.base), hex = br_str(colon + 1, s.len - alg.len - 1);
    size_t want;
    if (br_str_eq(alg, BR_STR("sha256"))) {
        d->alg = BR_ALG_SHA256;
        want = 64;
    } else if (br_str_eq(alg, BR_STR("sha512"))) {
        d->alg = BR_ALG_SHA512;
        want = 128;
    } else {
        return BR_E_DIGEST_INVALID;
    }
    if (hex.len != want)
        return BR_E_DIGEST_INVALID;
    for (size_t i = 0; i < hex.len; i++)
        if (!is_lower_hex(hex.base[i]))
            return BR_E_DIGEST_INVALID;
    memcpy(d->hex, hex.base, hex.len);
    d->hex[hex.len] = '\0';
    d->hex_len = (unsigned char)hex.len;
    return 0;
}

const char *br_alg_name(br_alg_t alg)
{
    return alg == BR_ALG_SHA512 ? "sha512" : "sha256";
}

size_t br_digest_format(const br_digest_t *d, char *buf)
{
    const char *name = br_alg_name(d->alg);
    size_t n = strlen(name);
    memcpy(buf, name, n);
    buf[n++] = ':';
    memcpy(buf + n, d->hex, d->hex_len);
    n += d->hex_len;
    buf[n] = '\0';
    return n;
}

int br_digest_eq(const br_digest_t *a, const br_digest_t *b)
{
    return a->alg == b->alg && a->hex_len == b->hex_len && memcmp(a->hex, b->hex, a->hex_len) == 0;
}

void br_hash_init(br_hash_t *h, br_alg_t alg)
{
    memset(h, 0, sizeof(*h));
    h->alg = alg;
    if (alg == BR_ALG_SHA512)
        SHA512_Init(&h->u.s512);
    else
        SHA256_Init(&h->u.s256);
}

void br_hash_update(br_hash_t *h, const void *p, size_t n)
{
    if (h->alg == BR_ALG_SHA512)
        SHA512_Update(&h->u.s512, p, n);
    else
        SHA256_Update(&h->u.s256, p, n);
}

static void to_hex(const unsigned char *md, size_t n, br_digest_t *out)
{
    static const char hexdigits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out->hex[2 * i] = hexdigits[md[i] >> 4];
        out->hex[2 * i + 1] = hexdigits[md[i] & 15];
    }
    out->hex[2 * n] = '\0';
    out->hex_len = (unsigned char)(2 * n);
}

void br_hash_peek(const br_hash_t *h, br_digest_t *out)
{
    br_hash_t copy = *h;
    unsigned char md[SHA512_DIGEST_LENGTH];
    out->alg = h->alg;
    if (h->alg == BR_ALG_SHA512) {
        SHA512_Final(md, &copy.u.s512);
        to_hex(md, SHA512_DIGEST_LENGTH, out);
    } else {
        SHA256_Final(md, &copy.u.s256);
        to_hex(md, SHA256_DIGEST_LENGTH, out);
    }
}

void br_hash_buf(br_alg_t alg, const void *p, size_t n, br_digest_t *out)
{
    br_hash_t h;
    br_hash_init(&h, alg);
    br_hash_update(&h, p, n);
    br_hash_peek(&h, out);
}
