/*
 * Unit tests for common/: digests (parse, format, hashing against published
 * SHA-2 vectors), repository names and tags per the distribution spec, the
 * constant-time comparison and the error names.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "tests/tap.h"
#include "common/br.h"

#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA256_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define SHA256_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define SHA512_EMPTY                                                                                                           \
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
#define SHA512_ABC                                                                                                             \
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
#define SHA512_896                                                                                                             \
    "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909"
#define MSG_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define MSG_896                                                                                                                \
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"

static void test_digest_parse(void)
{
    static const char *const good[] = {
        "sha256:" SHA256_ABC,
        "sha256:" SHA256_EMPTY,
        "sha512:" SHA512_ABC,
    };
    static const char *const bad[] = {
        "",
        "sha256",
        "sha256:",
        ":" SHA256_ABC,
        SHA256_ABC,
        "SHA256:" SHA256_ABC,
        "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", /* uppercase hex */
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",   /* 63 */
        "sha256:" SHA256_ABC "0",                                                   /* 65 */
        "sha256:" SHA256_ABC "\n",
        " sha256:" SHA256_ABC,
        "sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha256::a7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha512:" SHA256_ABC,  /* sha512 with 64 hex */
        "sha256:" SHA512_ABC,  /* sha256 with 128 hex */
        "sha384:" SHA256_ABC SHA256_ABC,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
    };
    br_digest_t d;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        is_int(br_digest_parse(&d, br_cstr(good[i])), 0, "digest valid: %.20s...", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(br_digest_parse(&d, br_cstr(bad[i])), BR_E_DIGEST_INVALID, "digest invalid #%zu: '%.24s'", i, bad[i]);

    /* A NUL inside is not the end of the string. */
    char nul[] = "sha256:" SHA256_ABC;
    nul[20] = '\0';
    is_int(br_digest_parse(&d, br_str(nul, sizeof(nul) - 1)), BR_E_DIGEST_INVALID, "digest with embedded NUL");
    /* Only len bytes are read: a valid prefix of a longer buffer. */
    is_int(br_digest_parse(&d, br_str("sha256:" SHA256_ABC "trailing", 71)), 0, "digest bounded by length");

    is_int(br_digest_parse(&d, br_cstr("sha512:" SHA512_EMPTY)), 0, "sha512 parses");
    is_int(d.alg, BR_ALG_SHA512, "sha512 alg");
    is_int(d.hex_len, 128, "sha512 hex_len");
    is_str(d.hex, SHA512_EMPTY, "sha512 hex NUL-terminated");
}

static void test_digest_format(void)
{
    static const char *const inputs[] = {"sha256:" SHA256_ABC, "sha512:" SHA512_ABC};
    br_digest_t d, d2;
    char buf[BR_DIGEST_MAX + 1];
    for (size_t i = 0; i < 2; i++) {
        br_digest_parse(&d, br_cstr(inputs[i]));
        size_t n = br_digest_format(&d, buf);
        is_int(n, strlen(inputs[i]), "format length %zu", i);
        is_str(buf, inputs[i], "format round trip %zu", i);
        is_int(br_digest_parse(&d2, br_str(buf, n)), 0, "formatted digest parses %zu", i);
        ok(br_digest_eq(&d, &d2), "round trip equal %zu", i);
    }
    br_digest_parse(&d, br_cstr("sha256:" SHA256_ABC));
    br_digest_parse(&d2, br_cstr("sha256:" SHA256_EMPTY));
    ok(!br_digest_eq(&d, &d2), "different digests differ");
    is_str(br_alg_name(BR_ALG_SHA256), "sha256", "alg name sha256");
    is_str(br_alg_name(BR_ALG_SHA512), "sha512", "alg name sha512");
    /* The longest digest fills the documented buffer exactly. */
    br_digest_parse(&d, br_cstr("sha512:" SHA512_ABC));
    is_int(br_digest_format(&d, buf), BR_DIGEST_MAX, "sha512 formats to BR_DIGEST_MAX");
}

static void check_hash(br_alg_t alg, const void *p, size_t n, const char *want, const char *name)
{
    br_digest_t d;
    br_hash_buf(alg, p, n, &d);
    is_str(d.hex, want, "%s", name);
    is_int(d.alg, alg, "%s: alg", name);
}

static void test_hash(void)
{
    check_hash(BR_ALG_SHA256, "", 0, SHA256_EMPTY, "sha256('')");
    check_hash(BR_ALG_SHA256, "abc", 3, SHA256_ABC, "sha256('abc')");
    check_hash(BR_ALG_SHA256, MSG_448, strlen(MSG_448), SHA256_448, "sha256(448-bit message)");
    check_hash(BR_ALG_SHA512, "", 0, SHA512_EMPTY, "sha512('')");
    check_hash(BR_ALG_SHA512, "abc", 3, SHA512_ABC, "sha512('abc')");
    check_hash(BR_ALG_SHA512, MSG_896, strlen(MSG_896), SHA512_896, "sha512(896-bit message)");

    /* A million 'a' in uneven slices, peeking along the way. */
    br_hash_t h;
    br_digest_t d;
    char chunk[7919];
    memset(chunk, 'a', sizeof(chunk));
    br_hash_init(&h, BR_ALG_SHA256);
    size_t left = 1000000;
    while (left != 0) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        br_hash_update(&h, chunk, n);
        left -= n;
        if (left == 500000 - 500000 % sizeof(chunk))
            br_hash_peek(&h, &d); /* must not disturb h */
    }
    br_hash_peek(&h, &d);
    is_str(d.hex, SHA256_MILLION_A, "sha256(million 'a') in slices with a peek");

    /* The state survives being saved as bytes mid-stream and resumed (as
     * upload sessions do between PATCH requests), for both algorithms. */
    for (int alg = BR_ALG_SHA256; alg <= BR_ALG_SHA512; alg++) {
        unsigned char saved[sizeof(br_hash_t)];
        br_hash_t a, b;
        br_hash_init(&a, alg);
        br_hash_update(&a, MSG_896, 50);
        memcpy(saved, &a, sizeof(a));
        memset(&a, 0xee, sizeof(a)); /* the original is gone */
        memcpy(&b, saved, sizeof(b));
        br_hash_update(&b, MSG_896 + 50, strlen(MSG_896) - 50);
        br_hash_peek(&b, &d);
        br_digest_t want;
        br_hash_buf(alg, MSG_896, strlen(MSG_896), &want);
        ok(br_digest_eq(&d, &want), "%s state saved mid-stream and resumed", br_alg_name(alg));
        /* And a copy may diverge from its source. */
        br_hash_t c = b;
        br_hash_update(&c, "x", 1);
        br_hash_peek(&b, &d);
        ok(br_digest_eq(&d, &want), "%s: copy diverging leaves the source alone", br_alg_name(alg));
    }
    br_hash_init(&h, BR_ALG_SHA512);
    br_hash_update(&h, "ab", 2);
    br_hash_peek(&h, &d);
    br_hash_update(&h, "c", 1);
    br_hash_peek(&h, &d);
    is_str(d.hex, SHA512_ABC, "sha512: peek then continue");
}

static void test_names(void)
{
    static const char *const good[] = {"a",     "a/b",   "a__b",  "a---b",         "a.b",       "a_b",   "a-b",
                                       "0",     "a0/b1", "a/b/c", "library/ubuntu", "my-org/my.repo_x", "a-b.c__d/e"};
    static const char *const bad[] = {"",    "A",     "a/",   "/a",   "a//b", "a_-b", "a___b", "-a",  "a.",
                                      "a..b", "a b",   "a:b",  "Ab/c", "a/B",  "_a",   "a/.b",  "a@b", "a/b/"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ok(br_name_valid(br_cstr(good[i])), "name valid: '%s'", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(!br_name_valid(br_cstr(bad[i])), "name invalid: '%s'", bad[i]);

    char name[300];
    memset(name, 'a', sizeof(name));
    name[100] = '/';
    ok(br_name_valid(br_str(name, BR_NAME_MAX)), "name of %d bytes valid", BR_NAME_MAX);
    ok(!br_name_valid(br_str(name, 256)), "name of 256 bytes invalid");
    char nul[] = "ab\0c";
    ok(!br_name_valid(br_str(nul, 4)), "name with embedded NUL invalid");
    ok(br_name_valid(br_str("abc/def", 3)), "name bounded by length");
}

static void test_tags(void)
{
    static const char *const good[] = {"latest", "v1.0.0", "1", "_", "_a", "A", "v1.0-rc_1", "a.-_b", "Z9"};
    static const char *const bad[] = {"", ".a", "-a", "a/b", "a:b", "a b", "a+b", "a@sha256"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ok(br_tag_valid(br_cstr(good[i])), "tag valid: '%s'", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(!br_tag_valid(br_cstr(bad[i])), "tag invalid: '%s'", bad[i]);
    char tag[200];
    memset(tag, 'x', sizeof(tag));
    ok(br_tag_valid(br_str(tag, 128)), "tag of 128 bytes valid");
    ok(!br_tag_valid(br_str(tag, 129)), "tag of 129 bytes invalid");
    ok(!br_tag_valid(br_str("a\0b", 3)), "tag with embedded NUL invalid");
}

static void test_secret_eq(void)
{
    ok(br_secret_eq(BR_STR("hunter2"), BR_STR("hunter2")), "secret equal");
    ok(!br_secret_eq(BR_STR("hunter2"), BR_STR("hunter3")), "secret differs in last byte");
    ok(!br_secret_eq(BR_STR("hunter2"), BR_STR("Hunter2")), "secret differs in first byte");
    ok(!br_secret_eq(BR_STR("hunter2"), BR_STR("hunter")), "secret is a prefix");
    ok(!br_secret_eq(BR_STR("hunter"), BR_STR("hunter2")), "secret is longer");
    ok(!br_secret_eq(BR_STR("a\0"), BR_STR("a")), "trailing NUL counts");
    ok(br_secret_eq(br_str("", 0), br_str(NULL, 0)), "both empty");
    ok(!br_secret_eq(br_str("", 0), BR_STR("x")), "empty vs non-empty");
}

static void test_strings(void)
{
    ok(br_cstr(NULL).len == 0, "br_cstr(NULL) is empty");
    ok(br_str_eq(br_cstr("abc"), BR_STR("abc")), "br_str_eq equal");
    ok(!br_str_eq(br_cstr("abc"), BR_STR("abd")), "br_str_eq differs");
    ok(br_str_eq(br_str(NULL, 0), BR_STR("")), "br_str_eq empty vs NULL");
    char *p = br_strndup("abcdef", 3);
    is_str(p, "abc", "br_strndup");
    free(p);
}

static void test_strerror(void)
{
    for (int e = BR_E_DIGEST_INVALID; e < BR_E__END; e++) {
        const char *s = br_strerror(e);
        ok(s != NULL && *s != '\0' && strcmp(s, "unknown error") != 0, "br_strerror(%d) = '%s'", e, s ? s : "(null)");
    }
    is_str(br_strerror(0), "success", "br_strerror(0)");
    ok(br_strerror(ENOENT) != NULL && strlen(br_strerror(ENOENT)) != 0, "br_strerror(ENOENT)");
    ok(br_strerror(-1) != NULL, "br_strerror(-1) not NULL");
    ok(br_strerror(BR_E__END) != NULL, "br_strerror(BR_E__END) not NULL");
    ok(br_strerror(-100000) != NULL, "br_strerror(-100000) not NULL");
    ok(br_strerror(1000000) != NULL, "br_strerror(1000000) not NULL");
}

static void test_target_split(void)
{
    static const struct {
        const char *target, *authority, *origin;
    } good[] = {
        {"http://127.0.0.1:5000/v2/", "127.0.0.1:5000", "/v2/"},
        {"http://127.0.0.1:5000/v2/a/tags/list?n=1&last=x", "127.0.0.1:5000", "/v2/a/tags/list?n=1&last=x"},
        {"HTTPS://Registry.Example/v2/", "Registry.Example", "/v2/"},
        {"hTtP://h", "h", ""},
        {"http://h?x=1", "h", "?x=1"},
        {"http://h:/v2/", "h:", "/v2/"},
        {"http://[::1]:5000/v2/", "[::1]:5000", "/v2/"},
        {"http://[2001:db8::1]/v2/", "[2001:db8::1]", "/v2/"},
        {"http://a%41b.c-d_e~f/v2/", "a%41b.c-d_e~f", "/v2/"},
        {"http://h/v2/%2e%2e/x", "h", "/v2/%2e%2e/x"},
    };
    static const char *const bad[] = {
        "",
        "/v2/",
        "*",
        "v2/",
        "http:/v2/",
        "http:v2/",
        "http//h/v2/",
        "ftp://h/v2/",
        "httpx://h/v2/",
        "http://",
        "http:///v2/",
        "http://:5000/v2/",
        "http://u@h/v2/",
        "http://u:p@h/v2/",
        "http://h/v2/#frag",
        "http://h:65536x/v2/",
        "http://h:123456/v2/",
        "http://h:1:2/v2/",
        "http://[::1/v2/",
        "http://[]/v2/",
        "http://[::g]/v2/",
        "http://[::1]x/v2/",
        "http://h%4/v2/",
        "http://h%zz/v2/",
        "http://h\\x/v2/",
        "http://h\"/v2/",
        "http://h/v2/ x",
        "http://h/v2/\x7f",
        "http://h/v2/\x80",
        "http://h/v2/\t",
    };
    br_str_t a, o;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int r = br_target_split(br_cstr(good[i].target), &a, &o);
        ok(r == 0 && br_str_eq(a, br_cstr(good[i].authority)) && br_str_eq(o, br_cstr(good[i].origin)),
           "absolute target '%s' -> '%s' + '%s'", good[i].target, good[i].authority, good[i].origin);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(br_target_split(br_cstr(bad[i]), &a, &o), EINVAL, "not an absolute target #%zu: '%s'", i, bad[i]);
    const char nul[] = "http://h/v2/\0x";
    is_int(br_target_split(br_str(nul, sizeof(nul) - 1), &a, &o), EINVAL, "a NUL inside fails");
}

int main(void)
{
    test_digest_parse();
    test_digest_format();
    test_hash();
    test_names();
    test_tags();
    test_secret_eq();
    test_strings();
    test_strerror();
    test_target_split();
    return tap_done();
}
