/*
 * JSON Web Tokens as the Docker token spec uses them: compact JWS, ES256 or
 * RS256, over OpenSSL 3 EVP only. Keys: berth's own signing key, certificates
 * of trusted issuers, and JWKS keys, each with a libtrust-style key id.
 *
 * Everything that reads a token is strict on purpose: a lenient parser in
 * front of a signature check is where confusion attacks live (alg "none",
 * HS256 keyed with a public key, padding or duplicate-key ambiguities).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include "auth/internal.h"

#define X5C_MAX 4 /* certificates in one x5c chain */

/* ---- base64url ------------------------------------------------------------ */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *br_b64url_encode(const void *p, size_t n)
{
    const unsigned char *in = p;
    char *out = br_malloc(n / 3 * 4 + 5), *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64url[v >> 18], *o++ = b64url[(v >> 12) & 63], *o++ = b64url[(v >> 6) & 63], *o++ = b64url[v & 63];
    }
    if (n - i == 1) {
        *o++ = b64url[in[i] >> 2], *o++ = b64url[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        *o++ = b64url[v >> 10], *o++ = b64url[(v >> 4) & 63], *o++ = b64url[(v & 15) << 2];
    }
    *o = '\0';
    return out;
}

int br_auth__b64_value(char ch, const char *last2)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch != '\0' && ch == last2[0])
        return 62;
    if (ch != '\0' && ch == last2[1])
        return 63;
    return -1;
}

long br_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long n = 0;
    /* A length of 1 mod 4 cannot come from any byte string. */
    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = br_auth__b64_value(in[i], "-_");
        if (v < 0)
            return -1; /* '=', '+', '/', whitespace: not unpadded base64url */
        acc = acc << 6 | (uint32_t)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    /* Leftover bits must be zero: one token, one encoding. */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return n;
}

json_t *br_json_strict(const void *p, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* ---- keys ------------------------------------------------------------------ */

static br_jwt_alg_t key_alg(EVP_PKEY *k)
{
    if (EVP_PKEY_is_a(k, "EC")) {
        char group[64];
        size_t len = 0;
        if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &len) == 1 &&
            strcmp(group, "prime256v1") == 0)
            return BR_JWT_ES256;
        return BR_JWT_NONE;
    }
    if (EVP_PKEY_is_a(k, "RSA") && EVP_PKEY_get_bits(k) >= 2048)
        return BR_JWT_RS256;
    return BR_JWT_NONE;
}

static const char *alg_name(br_jwt_alg_t alg)
{
    return alg == BR_JWT_ES256 ? "ES256" : alg == BR_JWT_RS256 ? "RS256" : "none";
}

void br_jwt_kid(EVP_PKEY *pkey, char *kid)
{
    /* libtrust: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits,
     * base32 (RFC 4648, no padding: 48 characters), in groups of 4 with ':'. */
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char *der = NULL, md[32];
    int len = i2d_PUBKEY(pkey, &der);
    SHA256(der, len > 0 ? (size_t)len : 0, md);
    OPENSSL_free(der);
    char enc[49];
    for (size_t i = 0; i < 48; i++) {
        size_t bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)md[byte] << 8 | (byte + 1 < 30 ? md[byte + 1] : 0);
        enc[i] = b32[(v >> (11 - shift)) & 31];
    }
    size_t o = 0;
    for (size_t i = 0; i < 48; i++) {
        if (i != 0 && i % 4 == 0)
            kid[o++] = ':';
        kid[o++] = enc[i];
    }
    kid[o] = '\0';
}

static void add_verify_key(br_auth_token_t *t, EVP_PKEY *pkey, br_jwt_alg_t alg, const char *kid, int own)
{
    t->verify = br_realloc(t->verify, (t->num_verify + 1) * sizeof(*t->verify));
    br_jwt_key_t *k = &t->verify[t->num_verify++];
    memset(k, 0, sizeof(*k));
    k->pkey = pkey;
    k->alg = alg;
    k->own = own;
    if (kid != NULL)
        snprintf(k->kid, sizeof(k->kid), "%s", kid);
    else
        br_jwt_kid(pkey, k->kid);
}

static int load_sign_key(br_auth_token_t *t, const char *path, char *err, size_t errsize)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        return BR_E_CONFIG;
    }
    t->sign.pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    if (t->sign.pkey == NULL) {
        snprintf(err, errsize, "%s: not a PEM private key", path);
        return BR_E_CONFIG;
    }
    if ((t->sign.alg = key_alg(t->sign.pkey)) == BR_JWT_NONE) {
        snprintf(err, errsize, "%s: the token key must be EC P-256 (ES256) or RSA of at least 2048 bits (RS256)", path);
        return BR_E_CONFIG;
    }
    br_jwt_kid(t->sign.pkey, t->sign.kid);
    t->sign.own = 1;
    EVP_PKEY_up_ref(t->sign.pkey);
    add_verify_key(t, t->sign.pkey, t->sign.alg, t->sign.kid, 1);
    return 0;
}

/* Reads every certificate of a PEM file; NULL with a message when none. */
static STACK_OF(X509) *read_certs(const char *path, char *err, size_t errsize)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    X509 *x;
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        sk_X509_free(certs);
        return NULL;
    }
    while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL)
        sk_X509_push(certs, x);
    ERR_clear_error(); /* the end of the file shows up as an error */
    fclose(fp);
    if (sk_X509_num(certs) == 0) {
        snprintf(err, errsize, "%s: no PEM certificate", path);
        sk_X509_free(certs);
        return NULL;
    }
    return certs;
}

static int load_x5c(br_auth_token_t *t, const char *path, char *err, size_t errsize)
{
    STACK_OF(X509) *certs = read_certs(path, err, errsize);
    json_t *arr = json_array();
    int ret = 0;
    if (certs == NULL) {
        ret = BR_E_CONFIG;
        goto Exit;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(certs, 0)), t->sign.pkey) != 1) {
        snprintf(err, errsize, "%s: the first certificate is not for auth.token.key", path);
        ret = BR_E_CONFIG;
        goto Exit;
    }
    for (int i = 0; i < sk_X509_num(certs) && i < X5C_MAX; i++) {
        unsigned char *der = NULL;
        int len = i2d_X509(sk_X509_value(certs, i), &der);
        char *b64 = br_malloc((size_t)len / 3 * 4 + 8);
        EVP_EncodeBlock((unsigned char *)b64, der, len);
        json_array_append_new(arr, json_string(b64));
        free(b64);
        OPENSSL_free(der);
    }
    t->x5c_json = json_dumps(arr, JSON_COMPACT);
    if (strlen(t->x5c_json) > BR_JWT_HEADER_MAX - 256) {
        snprintf(err, errsize, "%s: the certificate chain is too large for a token header", path);
        ret = BR_E_CONFIG;
    }
Exit:
    json_decref(arr);
    if (certs != NULL)
        sk_X509_pop_free(certs, X509_free);
    return ret;
}

static int load_trusted(br_auth_token_t *t, const char *path, char *err, size_t errsize)
{
    STACK_OF(X509) *certs = read_certs(path, err, errsize);
    if (certs == NULL)
        return BR_E_CONFIG;
    t->trusted = X509_STORE_new();
    /* A trusted certificate is an anchor by itself (the issuer's own
     * self-signed certificate is the usual bundle), not only via a root. */
    X509_STORE_set_flags(t->trusted, X509_V_FLAG_PARTIAL_CHAIN);
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);
        X509_STORE_add_cert(t->trusted, x);
        EVP_PKEY *pkey = X509_get_pubkey(x);
        br_jwt_alg_t alg = pkey != NULL ? key_alg(pkey) : BR_JWT_NONE;
        if (alg == BR_JWT_NONE)
            EVP_PKEY_free(pkey); /* an anchor for chains only */
        else
            add_verify_key(t, pkey, alg, NULL, 0);
    }
    sk_X509_pop_free(certs, X509_free);
    return 0;
}

static unsigned char *b64_member(json_t *o, const char *key, size_t want, size_t *len)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL || strlen(s) > 2048)
        return NULL;
    unsigned char *buf = br_malloc(strlen(s) * 3 / 4 + 4);
    long n = br_b64url_decode(s, strlen(s), buf);
    if (n <= 0 || (want != 0 && (size_t)n != want)) {
        free(buf);
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

static EVP_PKEY *jwk_key(json_t *k)
{
    const char *kty = json_string_value(json_object_get(k, "kty"));
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    unsigned char *x = NULL, *y = NULL;
    BIGNUM *n = NULL, *e = NULL;
    size_t xl, yl;

    if (kty != NULL && strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(k, "crv"));
        if (crv == NULL || strcmp(crv, "P-256") != 0 || (x = b64_member(k, "x", 32, &xl)) == NULL ||
            (y = b64_member(k, "y", 32, &yl)) == NULL)
            goto Exit;
        unsigned char pub[65] = {4};
        memcpy(pub + 1, x, 32);
        memcpy(pub + 33, y, 32);
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
    } else if (kty != NULL && strcmp(kty, "RSA") == 0) {
        if ((x = b64_member(k, "n", 0, &xl)) == NULL || (y = b64_member(k, "e", 0, &yl)) == NULL)
            goto Exit;
        n = BN_bin2bn(x, (int)xl, NULL);
        e = BN_bin2bn(y, (int)yl, NULL);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    } else {
        goto Exit;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, kty, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
Exit:
    free(x);
    free(y);
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static int load_jwks(br_auth_token_t *t, const char *path, char *err, size_t errsize)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), *keys;
    int ret = BR_E_CONFIG;
    size_t i;
    if (doc == NULL) {
        snprintf(err, errsize, "%s:%d: %s", path, jerr.line, jerr.text);
        return BR_E_CONFIG;
    }
    if (!json_is_array(keys = json_object_get(doc, "keys"))) {
        snprintf(err, errsize, "%s: a JWKS needs a \"keys\" list", path);
        goto Exit;
    }
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *use = json_string_value(json_object_get(k, "use")), *alg = json_string_value(json_object_get(k, "alg"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        if (use != NULL && strcmp(use, "sig") != 0)
            continue; /* encryption keys are not ours to use */
        EVP_PKEY *pkey = jwk_key(k);
        br_jwt_alg_t kalg = pkey != NULL ? key_alg(pkey) : BR_JWT_NONE;
        if (kalg == BR_JWT_NONE || (alg != NULL && strcmp(alg, alg_name(kalg)) != 0) || (kid != NULL && strlen(kid) >= 64)) {
            EVP_PKEY_free(pkey);
            snprintf(err, errsize, "%s: key %zu is not a usable ES256 (P-256) or RS256 (>= 2048 bits) signing key", path, i);
            goto Exit;
        }
        add_verify_key(t, pkey, kalg, kid, 0);
    }
    ret = 0;
Exit:
    json_decref(doc);
    return ret;
}

int br_auth__token_init(br_auth_token_t *t, const br_config_t *cfg, char *err, size_t errsize)
{
    const typeof(cfg->auth.token) *c = &cfg->auth.token;
    int ret = 0;
    memset(t, 0, sizeof(*t));
    if (c->realm == NULL)
        return 0;
    t->realm = br_strndup(c->realm, strlen(c->realm));
    t->service = br_strndup(c->service, strlen(c->service));
    t->issuer = br_strndup(c->issuer, strlen(c->issuer));
    t->path = c->path != NULL ? br_strndup(c->path, strlen(c->path)) : NULL;
    t->expiration_s = c->expiration_s;
    t->leeway_s = c->leeway_s;
    if (c->key != NULL && (ret = load_sign_key(t, c->key, err, errsize)) != 0)
        return ret;
    if (c->certificate != NULL && (ret = load_x5c(t, c->certificate, err, errsize)) != 0)
        return ret;
    if (c->trusted_certificates != NULL && (ret = load_trusted(t, c->trusted_certificates, err, errsize)) != 0)
        return ret;
    if (c->jwks != NULL && (ret = load_jwks(t, c->jwks, err, errsize)) != 0)
        return ret;
    return 0;
}

void br_auth__token_dispose(br_auth_token_t *t)
{
    free(t->realm);
    free(t->path);
    free(t->service);
    free(t->issuer);
    EVP_PKEY_free(t->sign.pkey);
    free(t->x5c_json);
    X509_STORE_free(t->trusted);
    for (size_t i = 0; i < t->num_verify; i++)
        EVP_PKEY_free(t->verify[i].pkey);
    free(t->verify);
    memset(t, 0, sizeof(*t));
}

/* ---- signing --------------------------------------------------------------- */

char *br_jwt_sign(const br_auth_token_t *t, json_t *claims)
{
    json_t *header = json_pack("{s:s, s:s, s:s}", "typ", "JWT", "alg", alg_name(t->sign.alg), "kid", t->sign.kid);
    char *hs = NULL, *cs = NULL, *h64 = NULL, *c64 = NULL, *s64 = NULL, *out = NULL;
    unsigned char *sig = NULL, raw[64];
    size_t siglen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ECDSA_SIG *es = NULL;

    if (t->x5c_json != NULL) {
        json_error_t jerr;
        json_object_set_new(header, "x5c", json_loads(t->x5c_json, 0, &jerr));
    }
    hs = json_dumps(header, JSON_COMPACT);
    cs = json_dumps(claims, JSON_COMPACT);
    h64 = br_b64url_encode(hs, strlen(hs));
    c64 = br_b64url_encode(cs, strlen(cs));
    size_t inlen = strlen(h64) + 1 + strlen(c64);
    char *input = br_malloc(inlen + 1);
    snprintf(input, inlen + 1, "%s.%s", h64, c64);
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, t->sign.pkey) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (unsigned char *)input, inlen) != 1)
        goto Exit;
    sig = br_malloc(siglen);
    if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, inlen) != 1)
        goto Exit;
    if (t->sign.alg == BR_JWT_ES256) {
        /* OpenSSL signs in DER; JWS wants r || s, 32 bytes each. */
        const unsigned char *p = sig;
        const BIGNUM *r, *s;
        if ((es = d2i_ECDSA_SIG(NULL, &p, (long)siglen)) == NULL)
            goto Exit;
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32)
            goto Exit;
        s64 = br_b64url_encode(raw, 64);
    } else {
        s64 = br_b64url_encode(sig, siglen);
    }
    size_t outlen = inlen + 1 + strlen(s64);
    out = br_malloc(outlen + 1);
    snprintf(out, outlen + 1, "%s.%s", input, s64);
Exit:
    free(input);
    json_decref(header);
    free(hs);
    free(cs);
    free(h64);
    free(c64);
    free(s64);
    free(sig);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return out;
}

/* ---- verification ------------------------------------------------------------ */

/* The leaf key of an x5c chain that verifies against the trusted store
 * (new reference), or NULL. */
static EVP_PKEY *x5c_key(const br_auth_token_t *t, json_t *x5c)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *leaf = NULL;
    X509_STORE_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    size_t n = json_array_size(x5c);

    if (t->trusted == NULL || n == 0 || n > X5C_MAX)
        goto Exit;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(x5c, i));
        size_t len = s != NULL ? strlen(s) : 0;
        if (len == 0 || len % 4 != 0 || len > BR_JWT_HEADER_MAX)
            goto Exit;
        unsigned char *der = br_malloc(len / 4 * 3 + 1);
        int dl = EVP_DecodeBlock(der, (const unsigned char *)s, (int)len);
        const unsigned char *p = der;
        X509 *x = dl > 0 ? d2i_X509(NULL, &p, dl) : NULL;
        free(der);
        if (x == NULL)
            goto Exit;
        if (i == 0)
            leaf = x;
        else
            sk_X509_push(chain, x);
    }
    ctx = X509_STORE_CTX_new();
    if (X509_STORE_CTX_init(ctx, t->trusted, leaf, chain) == 1 && X509_verify_cert(ctx) == 1)
        pkey = X509_get_pubkey(leaf);
Exit:
    X509_STORE_CTX_free(ctx);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    return pkey;
}

static int verify_sig(EVP_PKEY *pkey, br_jwt_alg_t alg, const char *input, size_t inlen, const unsigned char *sig, size_t siglen)
{
    unsigned char *der = NULL;
    int derlen = 0, ok = 0;
    ECDSA_SIG *es = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    if (alg == BR_JWT_ES256) {
        if (siglen != 64)
            goto Exit;
        es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
            goto Exit;
        sig = der;
        siglen = (size_t)derlen;
    } else if (siglen != (size_t)EVP_PKEY_get_size(pkey)) {
        goto Exit;
    }
    ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
         EVP_DigestVerify(md, sig, siglen, (const unsigned char *)input, inlen) == 1;
Exit:
    ERR_clear_error();
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    return ok;
}

static int aud_has(json_t *aud, const char *service)
{
    size_t i;
    json_t *v;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), service) == 0;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), service) == 0)
            return 1;
    }
    return 0;
}

static void read_access(json_t *access, br_jwt_claims_t *out)
{
    size_t i;
    json_t *e;
    json_array_foreach(access, i, e)
    {
        const char *type = json_string_value(json_object_get(e, "type")), *name = json_string_value(json_object_get(e, "name"));
        json_t *actions = json_object_get(e, "actions"), *a;
        unsigned bits = 0;
        size_t j;
        if (type == NULL || name == NULL || !json_is_array(actions))
            continue;
        json_array_foreach(actions, j, a)
        {
            if (json_is_string(a))
                bits |= br_auth__parse_actions(json_string_value(a), strlen(json_string_value(a)));
        }
        if (strcmp(type, "registry") == 0 && strcmp(name, "catalog") == 0) {
            for (j = 0; j < json_array_size(actions); j++)
                if (json_is_string(json_array_get(actions, j)) && strcmp(json_string_value(json_array_get(actions, j)), "*") == 0)
                    out->catalog = 1;
        } else if (strcmp(type, "repository") == 0 && bits != 0 && br_name_valid(br_cstr(name)) &&
                   out->num_grants < BR_AUTH_MAX_GRANTS) {
            /* Beyond the bound, grants are dropped: less access, never more. */
            snprintf(out->grants[out->num_grants].name, sizeof(out->grants[0].name), "%s", name);
            out->grants[out->num_grants++].actions = bits;
        }
    }
}

int br_jwt_verify(const br_auth_token_t *t, br_str_t token, uint64_t now, br_jwt_claims_t *out, const char **why)
{
    const char *dot1, *dot2, *end = token.base + token.len;
    unsigned char *buf = NULL;
    json_t *header = NULL, *claims = NULL, *x5c;
    EVP_PKEY *chain_key = NULL;
    const br_jwt_key_t *key = NULL;
    int ret = BR_E_UNAUTHORIZED;

    memset(out, 0, sizeof(*out));
    *why = "malformed token";
    if (token.len == 0 || token.len > BR_JWT_MAX)
        goto Exit;
    if ((dot1 = memchr(token.base, '.', token.len)) == NULL || (dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1))) == NULL ||
        memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL || dot1 == token.base || dot2 == dot1 + 1 || dot2 + 1 == end)
        goto Exit;
    buf = br_malloc(token.len);
    long n = br_b64url_decode(token.base, (size_t)(dot1 - token.base), buf);
    if (n <= 0 || n > BR_JWT_HEADER_MAX || (header = br_json_strict(buf, (size_t)n)) == NULL)
        goto Exit;

    /* The header: an allow-listed alg that must also match the key found. */
    const char *alg = json_string_value(json_object_get(header, "alg")), *kid = json_string_value(json_object_get(header, "kid"));
    json_t *typ = json_object_get(header, "typ");
    br_jwt_alg_t want = alg == NULL ? BR_JWT_NONE : strcmp(alg, "ES256") == 0 ? BR_JWT_ES256 : strcmp(alg, "RS256") == 0 ? BR_JWT_RS256 : BR_JWT_NONE;
    *why = "algorithm not allowed";
    if (want == BR_JWT_NONE)
        goto Exit;
    *why = "malformed token";
    if ((typ != NULL && (!json_is_string(typ) || strcmp(json_string_value(typ), "JWT") != 0)) || json_object_get(header, "crit") != NULL ||
        (json_object_get(header, "kid") != NULL && kid == NULL))
        goto Exit;
    *why = "unknown signing key";
    for (size_t i = 0; kid != NULL && i < t->num_verify && key == NULL; i++)
        if (strcmp(t->verify[i].kid, kid) == 0)
            key = &t->verify[i];
    br_jwt_alg_t key_type = key != NULL ? key->alg : BR_JWT_NONE;
    if (key == NULL && json_is_array(x5c = json_object_get(header, "x5c"))) {
        if ((chain_key = x5c_key(t, x5c)) == NULL)
            goto Exit;
        key_type = key_alg(chain_key);
    }
    if (key == NULL && chain_key == NULL)
        goto Exit;
    *why = "algorithm does not match the key";
    if (key_type != want)
        goto Exit;

    *why = "bad signature";
    n = br_b64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), buf);
    if (n <= 0 || !verify_sig(key != NULL ? key->pkey : chain_key, want, token.base, (size_t)(dot2 - token.base), buf, (size_t)n))
        goto Exit;

    /* Signed by a key we trust: now the claims. */
    *why = "malformed claims";
    n = br_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf);
    if (n <= 0 || (claims = br_json_strict(buf, (size_t)n)) == NULL)
        goto Exit;
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf"), *sub = json_object_get(claims, "sub");
    json_t *access = json_object_get(claims, "access");
    if ((sub != NULL && (!json_is_string(sub) || strlen(json_string_value(sub)) > BR_AUTH_USER_MAX)) ||
        (access != NULL && !json_is_array(access)) || (nbf != NULL && !json_is_integer(nbf)))
        goto Exit;
    *why = "wrong issuer";
    if (iss == NULL || strcmp(iss, t->issuer) != 0)
        goto Exit;
    *why = "wrong audience";
    if (!aud_has(json_object_get(claims, "aud"), t->service))
        goto Exit;
    *why = "expired";
    if (!json_is_integer(exp) || json_integer_value(exp) < 0 || (uint64_t)json_integer_value(exp) + t->leeway_s < now)
        goto Exit;
    *why = "not yet valid";
    if (nbf != NULL && json_integer_value(nbf) > 0 && (uint64_t)json_integer_value(nbf) > now + t->leeway_s)
        goto Exit;

    out->own = key != NULL && key->own;
    if (sub != NULL)
        snprintf(out->sub, sizeof(out->sub), "%s", json_string_value(sub));
    if (json_is_true(json_object_get(claims, "berth_refresh"))) {
        const char *pwh = json_string_value(json_object_get(claims, "pwh"));
        out->refresh = 1;
        snprintf(out->pwh, sizeof(out->pwh), "%s", pwh != NULL ? pwh : "");
    }
    read_access(access, out);
    *why = NULL;
    ret = 0;
Exit:
    free(buf);
    json_decref(header);
    json_decref(claims);
    EVP_PKEY_free(chain_key);
    return ret;
}

/* ---- key generation (CLI) ------------------------------------------------------ */

int br_auth_gen_key(const char *path, const char *alg)
{
    EVP_PKEY *pkey = NULL;
    FILE *fp = NULL;
    int fd = -1, ret = 0, created = 0;

    if (strcmp(alg, "ES256") == 0)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    else if (strcmp(alg, "RS256") == 0)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    else
        return EINVAL;
    if (pkey == NULL)
        return BR_E_INTERNAL;
    /* O_EXCL: never overwrite a key, which would silently invalidate every
     * token already issued and any certificate made for it. */
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        ret = errno;
        goto Exit;
    }
    created = 1;
    if ((fp = fdopen(fd, "w")) == NULL) {
        ret = errno;
        goto Exit;
    }
    fd = -1;
    if (PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) != 1)
        ret = BR_E_INTERNAL;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
        ret = ret != 0 ? ret : errno;
Exit:
    if (fp != NULL && fclose(fp) != 0 && ret == 0)
        ret = errno;
    if (fd >= 0)
        close(fd);
    if (ret != 0 && created)
        unlink(path); /* no half-written key left behind */
    EVP_PKEY_free(pkey);
    return ret;
}
