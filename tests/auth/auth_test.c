/*
 * Unit tests for auth/: globs and rule precedence, every decision path of
 * br_auth_check (off, anonymous, Basic, Bearer), the htpasswd file (reload,
 * refused hashes), the back-off, the token issuer (GET and OAuth2 POST,
 * refresh and anonymous tokens), JWT verification against every malformed or
 * hostile token we know of, and external issuers (trusted certificates, x5c
 * chains, JWKS). Keys and certificates are generated here; none is committed.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include "auth/internal.h"
#include "config/config.h"
#include "tests/tap.h"

static char tmpdir[] = "/tmp/berth-auth-test-XXXXXX";
static char path_buf[8][512];

static const char *tmp_path(int slot, const char *name)
{
    snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s", tmpdir, name);
    return path_buf[slot];
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL || fwrite(text, 1, strlen(text), fp) != strlen(text) || fclose(fp) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

/* ---- keys and certificates, made fresh for each run ------------------------- */

static EVP_PKEY *ec_key, *rsa_key, *ext_key, *ca_key, *leaf_key, *jwks_key, *stranger_key;
static X509 *ec_cert, *ext_cert, *ca_cert, *leaf_cert;

static void write_key(EVP_PKEY *k, const char *path)
{
    FILE *fp = fopen(path, "w");
    PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL);
    fclose(fp);
}

static void write_certs(const char *path, X509 *a, X509 *b)
{
    FILE *fp = fopen(path, "w");
    PEM_write_X509(fp, a);
    if (b != NULL)
        PEM_write_X509(fp, b);
    fclose(fp);
}

static X509 *make_cert(EVP_PKEY *k, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int ca)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
    if (ca) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, issuer_key != NULL ? issuer_key : k, EVP_sha256());
    return x;
}

static void make_keys(void)
{
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ext_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    jwks_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    stranger_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec_cert = make_cert(ec_key, "berth token", NULL, NULL, 0);
    ext_cert = make_cert(ext_key, "external issuer", NULL, NULL, 0);
    ca_cert = make_cert(ca_key, "issuer ca", NULL, NULL, 1);
    leaf_cert = make_cert(leaf_key, "issuer leaf", ca_cert, ca_key, 0);
    write_key(ec_key, tmp_path(0, "ec.key"));
    write_key(rsa_key, tmp_path(0, "rsa.key"));
    write_certs(tmp_path(0, "ec.crt"), ec_cert, NULL);
    write_certs(tmp_path(0, "trusted.pem"), ext_cert, ca_cert);

    /* A JWKS with the RSA key under kid "jwks-1". */
    BIGNUM *n = NULL, *e = NULL;
    EVP_PKEY_get_bn_param(jwks_key, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(jwks_key, OSSL_PKEY_PARAM_RSA_E, &e);
    unsigned char nb[512], eb[8];
    int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
    char *n64 = br_b64url_encode(nb, (size_t)nl), *e64 = br_b64url_encode(eb, (size_t)el);
    char jwks[2048];
    snprintf(jwks, sizeof(jwks),
             "{\"keys\":[{\"kty\":\"EC\",\"use\":\"enc\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"},"
             "{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"jwks-1\",\"n\":\"%s\",\"e\":\"%s\"}]}",
             n64, e64);
    write_file(tmp_path(0, "jwks.json"), jwks);
    free(n64);
    free(e64);
    BN_free(n);
    BN_free(e);
}

/* ---- config and handle -------------------------------------------------------- */

static char hash_alice[128], hash_bob[128], hash_bot[128];

static void write_htpasswd(const char *extra)
{
    char text[2048];
    snprintf(text, sizeof(text), "# users\nalice:%s\nbob:%s\n\nbuildbot:%s\n%s", hash_alice, hash_bob, hash_bot, extra);
    write_file(tmp_path(1, "htpasswd"), text);
}

static const char *rules_yaml = "  bcrypt_cost: 4\n"
                                "  max_failures: 3\n"
                                "  failure_window: 10s\n"
                                "  admin_group: admins\n"
                                "  groups:\n"
                                "    admins: [alice]\n"
                                "    ci: [buildbot]\n"
                                "  anonymous:\n"
                                "    - {repository: \"public/**\", actions: [pull]}\n"
                                "  rules:\n"
                                "    - {repository: \"team/**\", users: [bob], groups: [ci], actions: [pull, push]}\n"
                                "    - {repository: \"team/private\", users: [bob], actions: [pull]}\n"
                                "    - {repository: \"**\", groups: [ci], actions: [pull]}\n"
                                "    - {repository: \"secret/**\", actions: []}\n"
                                "    - {repository: \"bob/*\", users: [bob], actions: ['*']}\n";

/* Builds a handle from YAML (the auth section body after "auth:\n"). */
static br_auth_t *make_auth(const char *auth_body, char *err, size_t errsize)
{
    br_config_t cfg;
    br_auth_t *a = NULL;
    size_t len = strlen(auth_body) + 16;
    char *yaml = malloc(len);
    snprintf(yaml, len, "auth:\n%s", auth_body);
    write_file(tmp_path(2, "berth.yaml"), yaml);
    free(yaml);
    br_config_init(&cfg);
    int ret = br_config_load_file(&cfg, tmp_path(2, "berth.yaml"), err, errsize);
    if (ret == 0)
        ret = br_config_validate(&cfg, err, errsize);
    if (ret == 0)
        ret = br_auth_create(&a, &cfg, err, errsize);
    br_config_dispose(&cfg);
    return ret == 0 ? a : NULL;
}

static br_auth_t *basic_auth(void)
{
    char body[4096], err[512];
    snprintf(body, sizeof(body), "  htpasswd: %s\n%s", tmp_path(1, "htpasswd"), rules_yaml);
    br_auth_t *a = make_auth(body, err, sizeof(err));
    if (a == NULL)
        printf("# make_auth: %s\n", err);
    return a;
}

static br_auth_t *token_auth(const char *key, const char *extra)
{
    char body[8192], err[512];
    snprintf(body, sizeof(body),
             "  htpasswd: %s\n%s"
             "  token:\n"
             "    realm: https://reg.example/token\n"
             "    path: /token\n"
             "    service: reg.example\n"
             "    issuer: berth-test\n"
             "    key: %s\n"
             "    expiration: 5m\n"
             "%s",
             tmp_path(1, "htpasswd"), rules_yaml, key, extra);
    br_auth_t *a = make_auth(body, err, sizeof(err));
    if (a == NULL)
        printf("# make_auth: %s\n", err);
    return a;
}

static char auth_hdr[1024];

static br_str_t basic(const char *user, const char *pass)
{
    char raw[512];
    unsigned char b64[800];
    int n = snprintf(raw, sizeof(raw), "%s:%s", user, pass);
    EVP_EncodeBlock(b64, (const unsigned char *)raw, n);
    snprintf(auth_hdr, sizeof(auth_hdr), "Basic %s", b64);
    return br_cstr(auth_hdr);
}

static int check(br_auth_t *a, br_str_t authz, const char *client, const char *repo, unsigned actions, br_auth_result_t *res)
{
    br_auth_request_t r = {authz, client, br_cstr(repo), actions, {NULL, 0}};
    return br_auth_check(a, &r, res);
}

/* ---- globs and rules ------------------------------------------------------------ */

static void test_glob(void)
{
    static const struct {
        const char *glob, *name;
        int match;
    } cases[] = {
        {"**", "a", 1},           {"**", "a/b/c", 1},         {"*", "a", 1},           {"*", "a/b", 0},
        {"team/**", "team/a", 1}, {"team/**", "team/a/b", 1}, {"team/**", "team", 0},  {"team/**", "teams/a", 0},
        {"team/*", "team/a", 1},  {"team/*", "team/a/b", 0},  {"a*c", "abc", 1},       {"a*c", "ac", 1},
        {"a*c", "ab/c", 0},       {"a**c", "ab/c", 1},        {"*/x", "a/x", 1},       {"*/x", "a/b/x", 0},
        {"**/x", "a/b/x", 1},     {"a/*/c", "a/b/c", 1},      {"a/*/c", "a/b/b/c", 0}, {"abc", "abc", 1},
        {"abc", "abcd", 0},       {"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_int(br_glob_match(cases[i].glob, strlen(cases[i].glob), cases[i].name, strlen(cases[i].name)), cases[i].match,
               "glob '%s' vs '%s'", cases[i].glob, cases[i].name);
}

static void test_acl(br_auth_t *a)
{
    const br_auth_acl_t *acl = &a->acl;
#define ACL(user, repo) br_auth__acl_actions(acl, user, br_cstr(repo))
    is_int(ACL("bob", "team/app"), BR_ACTION_PULL | BR_ACTION_PUSH, "bob: team/** pull,push");
    is_int(ACL("bob", "team/private"), BR_ACTION_PULL, "bob: the exact glob is more specific than team/**");
    is_int(ACL("buildbot", "team/private"), 0, "ci: team/private shadows team/** (no rule for ci there)");
    is_int(ACL("buildbot", "team/app"), BR_ACTION_PULL | BR_ACTION_PUSH, "ci via group: team/**");
    is_int(ACL("buildbot", "other/app"), BR_ACTION_PULL, "ci: ** pull");
    is_int(ACL("buildbot", "secret/x"), 0, "ci: secret/** (no users) shadows **");
    is_int(ACL("bob", "other/app"), 0, "bob: nothing on other/");
    is_int(ACL("bob", "bob/app"), BR_ACTION_ALL, "bob: '*' is every action");
    is_int(ACL("bob", "bob/a/b"), 0, "bob/* stays within one component");
    is_int(ACL("alice", "secret/x"), BR_ACTION_ALL, "admin group: everything");
    is_int(ACL(NULL, "public/x/y"), BR_ACTION_PULL, "anonymous: public/** pull");
    is_int(ACL(NULL, "team/app"), 0, "anonymous: nothing else");
    is_int(ACL("bob", "public/x"), BR_ACTION_PULL, "anonymous grants apply to users too");
    is_int(ACL("nobody", "public/x"), BR_ACTION_PULL, "an unknown user gets the anonymous grants");
    ok(br_auth__acl_catalog(acl, NULL) && br_auth__acl_catalog(acl, "bob"), "catalog: anonymous (rules exist) and users");
#undef ACL
}

/* ---- Basic --------------------------------------------------------------------- */

static void test_off(void)
{
    br_config_t cfg;
    br_auth_t *a;
    br_auth_result_t res;
    char err[256];
    br_config_init(&cfg);
    is_int(br_auth_create(&a, &cfg, err, sizeof(err)), 0, "off: create without an auth section");
    ok(!br_auth_enabled(a), "off: not enabled");
    is_int(check(a, BR_STR(""), "1.1.1.1", "x", BR_AUTH_PUSH | BR_AUTH_DELETE, &res), 0, "off: push allowed");
    ok(res.allowed == 1 && res.status == 200, "off: allowed, status 200");
    ok(br_auth_may(a, &res, BR_STR("anything"), BR_AUTH_PULL), "off: may pull anything");
    br_auth_destroy(a);
    br_config_dispose(&cfg);
}

static void test_basic(br_auth_t *a)
{
    br_auth_result_t res;

    is_int(check(a, BR_STR(""), "10.0.0.1", "", 0, &res), BR_E_UNAUTHORIZED, "anonymous GET /v2/: 401");
    is_str(res.www_authenticate, "Basic realm=\"berth\"", "anonymous: Basic challenge");
    is_int(res.status, 401, "anonymous: status");
    is_str(res.code, "UNAUTHORIZED", "anonymous: code");
    is_int(check(a, BR_STR(""), "10.0.0.1", "public/app", BR_AUTH_PULL, &res), 0, "anonymous pull public/app allowed");
    is_str(res.user, "", "anonymous: no user");
    is_int(check(a, BR_STR(""), "10.0.0.1", "public/app", BR_AUTH_PUSH, &res), BR_E_UNAUTHORIZED, "anonymous push public: 401");
    is_int(check(a, BR_STR(""), "10.0.0.1", "team/app", BR_AUTH_PULL, &res), BR_E_UNAUTHORIZED, "anonymous pull team: 401");
    is_int(check(a, BR_STR(""), "10.0.0.1", "", BR_AUTH_CATALOG, &res), 0, "anonymous catalog allowed (anonymous rules)");
    ok(br_auth_may(a, &res, BR_STR("public/a"), BR_AUTH_PULL) && !br_auth_may(a, &res, BR_STR("team/a"), BR_AUTH_PULL),
       "anonymous catalog filter");

    is_int(check(a, basic("bob", "bob-pw"), "10.0.0.2", "team/app", BR_AUTH_PULL | BR_AUTH_PUSH, &res), 0, "bob push team/app");
    ok(res.allowed && res.status == 200, "bob: allowed, 200");
    is_str(res.user, "bob", "bob: user name");
    is_int(check(a, basic("bob", "bob-pw"), "10.0.0.2", "", 0, &res), 0, "bob GET /v2/");
    is_int(check(a, basic("bob", "bob-pw"), "10.0.0.2", "team/app", BR_AUTH_DELETE, &res), BR_E_DENIED, "bob delete team/app: denied");
    is_int(res.status, 403, "denied: 403");
    is_str(res.code, "DENIED", "denied: code");
    is_str(res.www_authenticate, "", "denied: no challenge");
    is_str(res.user, "bob", "denied: user still named for the log");
    ok(br_auth_may(a, &res, BR_STR("team/x"), BR_AUTH_PULL) && !br_auth_may(a, &res, BR_STR("other/x"), BR_AUTH_PULL),
       "bob: catalog filter by rules");
    is_int(check(a, basic("alice", "alice-pw"), "10.0.0.2", "", BR_AUTH_CATALOG, &res), 0, "alice: catalog");
    is_int(check(a, basic("alice", "alice-pw"), "10.0.0.2", "x/y", BR_AUTH_DELETE, &res), 0, "alice (admin): delete anywhere");

    /* cross-mount: pull on from decides whether to mount, not whether to go on */
    br_auth_request_t r = {basic("bob", "bob-pw"), "10.0.0.2", BR_STR("team/app"), BR_AUTH_PULL | BR_AUTH_PUSH, BR_STR("public/base")};
    is_int(br_auth_check(a, &r, &res), 0, "mount from public/base: allowed");
    is_int(res.from_allowed, 1, "mount from public/base: from allowed");
    r.from = BR_STR("other/base");
    is_int(br_auth_check(a, &r, &res), 0, "mount from other/base: upload still allowed");
    is_int(res.from_allowed, 0, "mount from other/base: no mount");

    /* failures */
    is_int(check(a, basic("bob", "wrong"), "10.0.0.3", "team/app", BR_AUTH_PULL, &res), BR_E_UNAUTHORIZED, "bad password: 401");
    is_str(res.www_authenticate, "Basic realm=\"berth\"", "bad password: challenge");
    is_str(res.user, "", "bad password: no user");
    is_int(check(a, basic("mallory", "x"), "10.0.0.4", "team/app", BR_AUTH_PULL, &res), BR_E_UNAUTHORIZED, "unknown user: 401");
    static const char *const malformed[] = {
        "Basic",          "Basic ",         "Basic !!!!",    "Basic Ym9i",        "Basic Ym9iLWJvYi1wdw==", /* no colon */
        "Basic Ym9iOg=",  "Basic ==Ym9i",   "Basic Ym9iOmJvYi1wdw===", "Digest abc", "Basic Ym9i Om",
        "Basic OmJvYi1wdw==", /* empty user */
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        char client[32];
        snprintf(client, sizeof(client), "10.1.0.%zu", i);
        is_int(check(a, br_cstr(malformed[i]), client, "team/app", BR_AUTH_PULL, &res), BR_E_UNAUTHORIZED, "malformed '%s': 401",
               malformed[i]);
    }
    char huge[6000] = "Basic ";
    memset(huge + 6, 'A', sizeof(huge) - 7);
    huge[sizeof(huge) - 1] = '\0';
    is_int(check(a, br_cstr(huge), "10.1.1.1", "team/app", BR_AUTH_PULL, &res), BR_E_UNAUTHORIZED, "huge Basic header: 401");
    char user[BR_AUTH_USER_MAX + 1], pass[BR_BASIC_MAX + 1];
    is_int(br_auth__basic_parse(BR_STR("basic   Ym9iOmEgYjpj"), user, pass, sizeof(pass)), 0, "scheme is case-insensitive");
    ok(strcmp(user, "bob") == 0 && strcmp(pass, "a b:c") == 0, "password may hold spaces and colons");
    is_int(br_auth__basic_parse(BR_STR("Basic Ym9iOmE="), user, pass, sizeof(pass)), 0, "padded base64");
    is_int(br_auth__basic_parse(BR_STR("Basic Ym9iOmF="), user, pass, sizeof(pass)), BR_E_UNAUTHORIZED, "non-canonical base64 refused");
    is_int(br_auth__basic_parse(BR_STR("Basic Ym9iOgBh"), user, pass, sizeof(pass)), BR_E_UNAUTHORIZED, "NUL in password refused");
}

static void test_backoff(br_auth_t *a)
{
    br_auth_result_t res;
    /* max_failures 3 in the config (and 12 per user name), failure_window 10s */
    for (int i = 0; i < 3; i++)
        check(a, basic("bob", "guess"), "192.0.2.1", "team/app", BR_AUTH_PULL, &res);
    is_int(check(a, basic("bob", "bob-pw"), "192.0.2.1", "team/app", BR_AUTH_PULL, &res), BR_E_TOO_MANY,
           "after 3 failures: 429 even with the right password");
    ok(res.status == 429 && strcmp(res.code, "TOOMANYREQUESTS") == 0 && res.retry_after >= 1, "429 with Retry-After");
    is_int(check(a, basic("bob", "bob-pw"), "192.0.2.2", "team/app", BR_AUTH_PULL, &res), 0, "another address is unaffected");
    is_int(check(a, BR_STR(""), "192.0.2.1", "public/x", BR_AUTH_PULL, &res), 0, "anonymous pull from a blocked address still works");

    /* One valid account does not buy guesses at another: alice's successes
     * from the same address do not clear bob's failures. */
    int round = 0, r = 0;
    for (round = 1; round <= 6; round++) {
        check(a, basic("alice", "alice-pw"), "192.0.2.10", "", 0, &res);
        if ((r = check(a, basic("bob", "guess"), "192.0.2.10", "team/app", BR_AUTH_PULL, &res)) == BR_E_TOO_MANY)
            break;
    }
    is_int(round, 4, "alice's good logins interleaved with guesses at bob: bob's 4th guess is 429");
    is_int(check(a, basic("bob", "bob-pw"), "192.0.2.10", "team/app", BR_AUTH_PULL, &res), BR_E_TOO_MANY,
           "... and so is his right password from there");
    /* Rotating user names from one address, with good logins in between. */
    const char *names[] = {"bob", "mallory", "buildbot"};
    for (int i = 0; i < 3; i++) {
        is_int(check(a, basic("alice", "alice-pw"), "192.0.2.11", "", 0, &res), 0, "rotation: alice's good login %d", i + 1);
        check(a, basic(names[i], "guess"), "192.0.2.11", "", 0, &res);
    }
    is_int(check(a, basic("alice", "alice-pw"), "192.0.2.11", "", 0, &res), BR_E_TOO_MANY,
           "rotation: three guesses at three names block the address");
    /* Guesses at one user spread over addresses: 12 from 12 addresses block that user only. */
    char addr[32];
    for (int i = 0; i < 12; i++) {
        snprintf(addr, sizeof(addr), "192.0.2.%d", 100 + i);
        check(a, basic("buildbot", "guess"), addr, "", 0, &res);
    }
    is_int(check(a, basic("buildbot", "bot-pw"), "192.0.2.200", "", 0, &res), BR_E_TOO_MANY,
           "12 guesses at buildbot from 12 addresses: buildbot is blocked from a fresh address");
    is_int(check(a, basic("alice", "alice-pw"), "192.0.2.200", "", 0, &res), 0, "... alice from that address is not");
    is_int(check(a, basic("alice", "alice-pw"), "192.0.2.111", "", 0, &res), 0, "... nor from one of those addresses");

    /* the same logic with explicit times */
    br_auth_basic_t *b = &a->basic;
    unsigned retry = 0;
    uint64_t t0 = 1000000;
    const char *x = "198.51.100.7";
    for (int i = 0; i < 3; i++)
        br_auth__backoff_failed(b, x, "u1", t0);
    ok(br_auth__backoff_blocked(b, x, NULL, t0 + 500, &retry) && retry == 1, "blocked for 1s after the 3rd failure");
    ok(br_auth__backoff_blocked(b, x, "u2", t0 + 500, &retry), "... whatever the user name");
    ok(!br_auth__backoff_blocked(b, "198.51.100.8", "u1", t0 + 500, &retry), "... but u1 elsewhere is not (3 < 12)");
    ok(!br_auth__backoff_blocked(b, x, "u1", t0 + 1000, &retry), "free again after 1s");
    br_auth__backoff_failed(b, x, "u1", t0 + 1000);
    ok(br_auth__backoff_blocked(b, x, "u1", t0 + 2500, &retry), "4th failure: 2s");
    ok(!br_auth__backoff_blocked(b, x, "u1", t0 + 3000, &retry), "... and free after 2s");
    for (int i = 0; i < 20; i++)
        br_auth__backoff_failed(b, x, "u1", t0 + 3000);
    ok(br_auth__backoff_blocked(b, x, NULL, t0 + 3000 + 9999, &retry) &&
           !br_auth__backoff_blocked(b, x, NULL, t0 + 3000 + 10000, &retry),
       "the delay is capped at failure_window");
    ok(br_auth__backoff_blocked(b, NULL, "u1", t0 + 3001, &retry), "u1 (24 failures) is blocked as a user too");
    br_auth__backoff_succeeded(b, x, "u2");
    ok(br_auth__backoff_blocked(b, x, NULL, t0 + 3001, &retry), "u2's success clears nothing of u1's");
    br_auth__backoff_succeeded(b, x, "u1");
    ok(!br_auth__backoff_blocked(b, x, "u1", t0 + 3001, &retry), "u1's success clears u1's failures from that address");

    /* a success takes back only that user's own failures */
    const char *y = "198.51.100.9";
    br_auth__backoff_failed(b, y, "bob", t0);
    br_auth__backoff_failed(b, y, "bob", t0);
    br_auth__backoff_failed(b, y, "alice", t0);
    ok(br_auth__backoff_blocked(b, y, "alice", t0 + 1, &retry), "2 failures of bob + 1 of alice block the address");
    br_auth__backoff_succeeded(b, y, "alice");
    ok(!br_auth__backoff_blocked(b, y, NULL, t0 + 2, &retry), "alice's success takes back her failure (2 left: free)");
    br_auth__backoff_failed(b, y, "carol", t0 + 3);
    ok(br_auth__backoff_blocked(b, y, NULL, t0 + 4, &retry), "bob's 2 failures still count: one more blocks");
    br_auth__backoff_succeeded(b, y, "bob");
    ok(!br_auth__backoff_blocked(b, y, NULL, t0 + 5, &retry), "bob's success takes back his 2 (1 left: free)");
    br_auth__backoff_failed(b, y, NULL, t0 + 6);
    br_auth__backoff_succeeded(b, y, NULL);
    br_auth__backoff_failed(b, y, "dave", t0 + 7);
    ok(br_auth__backoff_blocked(b, y, NULL, t0 + 8, &retry), "a failure without a user name is never taken back");

    /* shares of an old window are not taken back from a new one */
    const char *z = "198.51.100.10";
    br_auth__backoff_failed(b, z, "bob", t0);
    br_auth__backoff_failed(b, z, "eve", t0 + 10000);
    br_auth__backoff_failed(b, z, "eve", t0 + 10000);
    br_auth__backoff_succeeded(b, z, "bob");
    br_auth__backoff_failed(b, z, "eve", t0 + 10001);
    ok(br_auth__backoff_blocked(b, z, NULL, t0 + 10002, &retry),
       "bob's failure of the last window does not cancel eve's in this one");

    /* floods never block an address or user that did not fail, and the table stays its size */
    for (int i = 0; i < 3; i++)
        br_auth__backoff_failed(b, "203.0.113.9", NULL, t0);
    for (int i = 0; i < 12; i++)
        br_auth__backoff_failed(b, NULL, "victim-of-guessing", t0);
    char user[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        snprintf(user, sizeof(user), "user%d", i);
        br_auth__backoff_failed(b, addr, i % 2 ? user : NULL, t0);
    }
    ok(!br_auth__backoff_blocked(b, "203.0.113.10", "innocent", t0, &retry), "flood: an innocent address and user are not blocked");
    ok(br_auth__backoff_blocked(b, "203.0.113.9", NULL, t0, &retry),
       "flood: a blocked address stays blocked (blocked slots evicted last)");
    ok(br_auth__backoff_blocked(b, NULL, "victim-of-guessing", t0, &retry), "flood: a blocked user stays blocked");
    memset(b->backoff, 0, sizeof(b->backoff));
}

static void test_htpasswd(void)
{
    char err[512];
    br_auth_htpasswd_t *h = NULL;
    br_auth_result_t res;

    write_file(tmp_path(3, "bad.htpasswd"), "ok:$2y$04$abcdefghijklmnopqrstuuMRVVyBUmJOLzt0tqTLUj9FN8fK14zL6\n"
                                            "carol:$apr1$salt$abcdefghijklmnopqrstuv\n");
    is_int(br_auth__htpasswd_load(tmp_path(3, "bad.htpasswd"), &h, err, sizeof(err)), BR_E_CONFIG, "MD5 hash refused at load");
    char want[700];
    snprintf(want, sizeof(want), "%s:2: user 'carol' has MD5 ($apr1$); only bcrypt ($2y$ or $2b$, htpasswd -B) is accepted",
             tmp_path(3, "bad.htpasswd"));
    is_str(err, want, "refusal names file, line and user");
    write_file(tmp_path(3, "bad.htpasswd"), "dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n");
    is_int(br_auth__htpasswd_load(tmp_path(3, "bad.htpasswd"), &h, err, sizeof(err)), BR_E_CONFIG, "SHA-1 hash refused");
    write_file(tmp_path(3, "bad.htpasswd"), "nocolon\n");
    is_int(br_auth__htpasswd_load(tmp_path(3, "bad.htpasswd"), &h, err, sizeof(err)), BR_E_CONFIG, "line without colon refused");
    char dup[512];
    snprintf(dup, sizeof(dup), "bob:%s\nbob:%s\n", hash_bob, hash_bob);
    write_file(tmp_path(3, "bad.htpasswd"), dup);
    is_int(br_auth__htpasswd_load(tmp_path(3, "bad.htpasswd"), &h, err, sizeof(err)), BR_E_CONFIG, "duplicate user refused");

    /* the whole handle refuses to start on a bad file */
    char body[4096];
    snprintf(body, sizeof(body), "  htpasswd: %s\n", tmp_path(3, "bad.htpasswd"));
    write_file(tmp_path(3, "bad.htpasswd"), "eve:$6$salt$hash\n");
    ok(make_auth(body, err, sizeof(err)) == NULL && strstr(err, ":1: user 'eve' has crypt(3) MD5/SHA") != NULL,
       "br_auth_create fails on a non-bcrypt file");

    /* reload on change */
    br_auth_t *a = basic_auth();
    a->basic.check_interval_ms = 0;
    is_int(check(a, basic("bob", "bob-pw"), "10.2.0.1", "team/app", BR_AUTH_PULL, &res), 0, "before reload: bob");
    char newbob[128], carol[128], extra[512];
    br_auth_hash_password("new-pw", 4, newbob, sizeof(newbob));
    br_auth_hash_password("carol-pw", 4, carol, sizeof(carol));
    snprintf(extra, sizeof(extra), "carol:%s\n", carol);
    char text[1024];
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\n%s", hash_alice, newbob, extra);
    write_file(tmp_path(1, "htpasswd"), text);
    struct timespec ts[2] = {{0, UTIME_NOW}, {12345, 0}};
    utimensat(AT_FDCWD, tmp_path(1, "htpasswd"), ts, 0);
    is_int(check(a, basic("carol", "carol-pw"), "10.2.0.1", "public/x", BR_AUTH_PULL, &res), 0, "after reload: new user carol");
    is_int(check(a, basic("bob", "bob-pw"), "10.2.0.1", "team/app", BR_AUTH_PULL, &res), BR_E_UNAUTHORIZED,
           "after reload: bob's old password is gone (cache too)");
    is_int(check(a, basic("bob", "new-pw"), "10.2.0.1", "team/app", BR_AUTH_PULL, &res), 0, "after reload: bob's new password");
    write_file(tmp_path(1, "htpasswd"), "broken line\n");
    ts[1].tv_sec = 23456;
    utimensat(AT_FDCWD, tmp_path(1, "htpasswd"), ts, 0);
    is_int(check(a, basic("carol", "carol-pw"), "10.2.0.1", "public/x", BR_AUTH_PULL, &res), 0,
           "a broken file keeps the previous users");
    br_auth_destroy(a);
    write_htpasswd("");
}

static void test_hash_and_keys(void)
{
    char h[128];
    is_int(br_auth_hash_password("s3cret", 0, h, sizeof(h)), 0, "hash_password, default cost");
    ok(strncmp(h, "$2y$10$", 7) == 0 && strlen(h) == 60, "hash is $2y$10$ and 60 bytes");
    struct crypt_data cd;
    memset(&cd, 0, sizeof(cd));
    ok(strcmp(crypt_r("s3cret", h, &cd), h) == 0, "hash verifies with crypt");
    char h2[128];
    br_auth_hash_password("s3cret", 4, h2, sizeof(h2));
    ok(strncmp(h2, "$2y$04$", 7) == 0 && strcmp(h, h2) != 0, "cost 4, and a fresh salt");
    is_int(br_auth_hash_password("x", 3, h2, sizeof(h2)), EINVAL, "cost 3 refused");
    is_int(br_auth_hash_password("x", 4, h2, 20), ERANGE, "small buffer refused");

    struct stat st;
    const char *algs[] = {"ES256", "RS256"};
    for (size_t i = 0; i < 2; i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/gen-%s.key", tmpdir, algs[i]);
        is_int(br_auth_gen_key(path, algs[i]), 0, "gen_key %s", algs[i]);
        ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "gen_key %s: mode 0600", algs[i]);
        FILE *fp = fopen(path, "r");
        EVP_PKEY *k = fp != NULL ? PEM_read_PrivateKey(fp, NULL, NULL, NULL) : NULL;
        if (fp != NULL)
            fclose(fp);
        ok(k != NULL && EVP_PKEY_is_a(k, i == 0 ? "EC" : "RSA"), "gen_key %s: loads as a private key", algs[i]);
        EVP_PKEY_free(k);
        is_int(br_auth_gen_key(path, algs[i]), EEXIST, "gen_key %s: never overwrites", algs[i]);
    }
    is_int(br_auth_gen_key(tmp_path(3, "x.key"), "HS256"), EINVAL, "gen_key HS256 refused");
}

/* ---- tokens ------------------------------------------------------------------- */

typedef struct {
    int status;
    json_t *body;
    char www[BR_AUTH_CHALLENGE_MAX];
} issued_t;

static void issue(br_auth_t *a, int post, const char *params, br_str_t authz, issued_t *out)
{
    br_auth_token_request_t r = {post, post ? BR_STR("") : br_cstr(params), post ? br_cstr(params) : BR_STR(""), authz, "172.16.0.1"};
    br_auth_token_response_t resp;
    br_auth_issue(a, &r, &resp);
    json_error_t jerr;
    out->status = resp.status;
    out->body = resp.body != NULL ? json_loadb(resp.body, resp.len, 0, &jerr) : NULL;
    snprintf(out->www, sizeof(out->www), "%s", resp.www_authenticate);
    free(resp.body);
}

static char bearer_buf[BR_JWT_MAX + 64];

static br_str_t bearer(const char *token)
{
    snprintf(bearer_buf, sizeof(bearer_buf), "Bearer %s", token != NULL ? token : "");
    return br_cstr(bearer_buf);
}

static const char *body_str(const issued_t *is, const char *key)
{
    return json_string_value(json_object_get(is->body, key));
}

/* Decodes one segment of a compact token into JSON (test side, lenient). */
static json_t *segment(const char *token, int index)
{
    const char *p = token;
    for (int i = 0; i < index; i++)
        p = strchr(p, '.') + 1;
    size_t len = strcspn(p, ".");
    unsigned char buf[BR_JWT_MAX];
    long n = br_b64url_decode(p, len, buf);
    json_error_t jerr;
    return n > 0 ? json_loadb((char *)buf, (size_t)n, 0, &jerr) : NULL;
}

static void test_issue(br_auth_t *a)
{
    issued_t is;
    br_auth_result_t res;

    issue(a, 0, "service=reg.example&scope=repository%3Ateam%2Fapp%3Apull%2Cpush%2Cdelete&scope=repository:other/x:pull&account=bob",
          basic("bob", "bob-pw"), &is);
    is_int(is.status, 200, "GET token for bob: 200");
    const char *tok = body_str(&is, "token");
    ok(tok != NULL && body_str(&is, "access_token") != NULL && strcmp(tok, body_str(&is, "access_token")) == 0,
       "token and access_token are the same");
    is_int(json_integer_value(json_object_get(is.body, "expires_in")), 300, "expires_in 300");
    regex_t re;
    regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$", REG_EXTENDED | REG_NOSUB);
    ok(body_str(&is, "issued_at") != NULL && regexec(&re, body_str(&is, "issued_at"), 0, NULL, 0) == 0, "issued_at is RFC 3339");
    regfree(&re);
    ok(json_object_get(is.body, "refresh_token") == NULL, "no refresh token unless asked");

    json_t *h = segment(tok, 0), *c = segment(tok, 1);
    is_str(json_string_value(json_object_get(h, "alg")), "ES256", "header alg ES256");
    is_str(json_string_value(json_object_get(h, "typ")), "JWT", "header typ JWT");
    regcomp(&re, "^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$", REG_EXTENDED | REG_NOSUB);
    ok(json_string_value(json_object_get(h, "kid")) != NULL && regexec(&re, json_string_value(json_object_get(h, "kid")), 0, NULL, 0) == 0,
       "kid in libtrust form");
    regfree(&re);
    char kid[64];
    br_jwt_kid(ec_key, kid);
    is_str(json_string_value(json_object_get(h, "kid")), kid, "kid is the signing key's");
    ok(json_is_array(json_object_get(h, "x5c")) && json_array_size(json_object_get(h, "x5c")) == 1, "x5c with the certificate");
    is_str(json_string_value(json_object_get(c, "iss")), "berth-test", "iss");
    is_str(json_string_value(json_object_get(c, "sub")), "bob", "sub");
    is_str(json_string_value(json_object_get(c, "aud")), "reg.example", "aud");
    ok(json_is_integer(json_object_get(c, "exp")) && json_is_integer(json_object_get(c, "nbf")) &&
           json_is_integer(json_object_get(c, "iat")) && json_string_value(json_object_get(c, "jti")) != NULL,
       "exp, nbf, iat, jti");
    json_t *access = json_object_get(c, "access");
    is_int(json_array_size(access), 1, "access: other/x refused, team/app granted");
    json_t *e0 = json_array_get(access, 0);
    ok(strcmp(json_string_value(json_object_get(e0, "type")), "repository") == 0 &&
           strcmp(json_string_value(json_object_get(e0, "name")), "team/app") == 0 &&
           json_array_size(json_object_get(e0, "actions")) == 2,
       "access: team/app pull,push (delete not granted: less than asked)");
    json_decref(h);
    json_decref(c);

    /* using it */
    is_int(check(a, bearer(tok), "172.16.0.2", "team/app", BR_AUTH_PULL | BR_AUTH_PUSH, &res), 0, "bearer: push team/app");
    is_str(res.user, "bob", "bearer: user from sub");
    is_int(check(a, bearer(tok), "172.16.0.2", "", 0, &res), 0, "bearer: GET /v2/");
    is_int(check(a, bearer(tok), "172.16.0.2", "team/app", BR_AUTH_DELETE, &res), BR_E_UNAUTHORIZED, "bearer: delete not in token");
    is_str(res.www_authenticate,
           "Bearer realm=\"https://reg.example/token\",service=\"reg.example\",scope=\"repository:team/app:delete\","
           "error=\"insufficient_scope\"",
           "insufficient_scope challenge");
    is_int(check(a, bearer(tok), "172.16.0.2", "team/other", BR_AUTH_PULL, &res), BR_E_UNAUTHORIZED, "bearer: other repository");
    ok(br_auth_may(a, &res, BR_STR("team/other"), BR_AUTH_PULL), "may: berth's own token widens to the subject's rules");
    br_auth_request_t mr = {bearer(tok), "172.16.0.2", BR_STR("team/app"), BR_AUTH_PULL | BR_AUTH_PUSH, BR_STR("team/base")};
    is_int(br_auth_check(a, &mr, &res), 0, "bearer mount: allowed");
    is_int(res.from_allowed, 0, "bearer mount: from not in the token, no mount");
    json_decref(is.body);

    /* anonymous tokens */
    issue(a, 0, "service=reg.example&scope=repository:public/app:pull,push&scope=registry:catalog:*", BR_STR(""), &is);
    is_int(is.status, 200, "anonymous token: 200");
    c = segment(body_str(&is, "token"), 1);
    is_str(json_string_value(json_object_get(c, "sub")), "", "anonymous token: empty sub");
    access = json_object_get(c, "access");
    is_int(json_array_size(access), 2, "anonymous token: public pull and catalog");
    is_int(json_array_size(json_object_get(json_array_get(access, 0), "actions")), 1, "anonymous token: pull only");
    json_decref(c);
    is_int(check(a, bearer(body_str(&is, "token")), "172.16.0.2", "", BR_AUTH_CATALOG, &res), 0, "anonymous token: catalog");
    ok(br_auth_may(a, &res, BR_STR("public/x"), BR_AUTH_PULL) && !br_auth_may(a, &res, BR_STR("team/x"), BR_AUTH_PULL),
       "anonymous token: catalog filter");
    /* pushing with it: answered as without credentials, not insufficient_scope */
    is_int(check(a, bearer(body_str(&is, "token")), "172.16.0.2", "public/app", BR_AUTH_PULL | BR_AUTH_PUSH, &res),
           BR_E_UNAUTHORIZED, "anonymous token: push refused");
    ok(res.status == 401 && strcmp(res.code, "UNAUTHORIZED") == 0 && strcmp(res.message, "authentication required") == 0,
       "anonymous token: 401 UNAUTHORIZED \"authentication required\"");
    is_str(res.www_authenticate,
           "Bearer realm=\"https://reg.example/token\",service=\"reg.example\",scope=\"repository:public/app:pull,push\"",
           "anonymous token: a challenge without error=");
    json_decref(is.body);

    /* catalog for a user, the challenge for it */
    is_int(check(a, BR_STR(""), "172.16.0.2", "team/app", BR_AUTH_PULL | BR_AUTH_PUSH, &res), BR_E_UNAUTHORIZED, "no token: 401");
    is_str(res.www_authenticate,
           "Bearer realm=\"https://reg.example/token\",service=\"reg.example\",scope=\"repository:team/app:pull,push\"",
           "Bearer challenge with scope");
    br_auth_request_t cr = {BR_STR(""), "172.16.0.2", BR_STR("team/app"), BR_AUTH_PULL | BR_AUTH_PUSH, BR_STR("public/base")};
    br_auth_check(a, &cr, &res);
    is_str(res.www_authenticate,
           "Bearer realm=\"https://reg.example/token\",service=\"reg.example\","
           "scope=\"repository:team/app:pull,push repository:public/base:pull\"",
           "challenge names the mount source too");
    br_auth_request_t cat = {BR_STR("Bearer"), NULL, BR_STR(""), BR_AUTH_CATALOG, BR_STR("")};
    br_auth_check(a, &cat, &res);
    is_str(res.www_authenticate,
           "Bearer realm=\"https://reg.example/token\",service=\"reg.example\",scope=\"registry:catalog:*\",error=\"invalid_token\"",
           "catalog challenge, invalid token");

    /* errors */
    issue(a, 0, "service=reg.example&scope=repository:team/app:pull", basic("bob", "nope"), &is);
    is_int(is.status, 401, "GET with a bad password: 401");
    is_str(is.www, "Basic realm=\"berth\"", "GET 401: Basic challenge");
    json_decref(is.body);
    issue(a, 0, "service=other.example", BR_STR(""), &is);
    is_int(is.status, 400, "unknown service: 400");
    json_decref(is.body);
    issue(a, 0, "service=reg.example&service=reg.example", BR_STR(""), &is);
    is_int(is.status, 400, "repeated service: 400");
    json_decref(is.body);
    issue(a, 0, "scope=%zz", BR_STR(""), &is);
    is_int(is.status, 400, "bad percent-encoding: 400");
    json_decref(is.body);

    /* OAuth2 POST */
    issue(a, 1, "grant_type=password&username=bob&password=bob-pw&service=reg.example&client_id=test&access_type=offline"
                "&scope=repository%3Ateam%2Fapp%3Apull+repository%3Abob%2Fx%3Apush",
          BR_STR(""), &is);
    is_int(is.status, 200, "POST password grant: 200");
    c = segment(body_str(&is, "access_token"), 1);
    is_int(json_array_size(json_object_get(c, "access")), 2, "POST: space-separated scopes");
    json_decref(c);
    const char *refresh = body_str(&is, "refresh_token");
    ok(refresh != NULL, "POST access_type=offline: refresh_token");
    char *refresh_copy = refresh != NULL ? strdup(refresh) : strdup("");
    json_decref(is.body);
    is_int(check(a, bearer(refresh_copy), "172.16.0.2", "team/app", BR_AUTH_PULL, &res), BR_E_UNAUTHORIZED,
           "a refresh token is not an access token");
    ok(strstr(res.www_authenticate, "error=\"invalid_token\"") != NULL, "refresh as bearer: invalid_token");

    char form[4096];
    snprintf(form, sizeof(form), "grant_type=refresh_token&refresh_token=%s&service=reg.example&scope=repository:team/app:pull",
             refresh_copy);
    issue(a, 1, form, BR_STR(""), &is);
    is_int(is.status, 200, "POST refresh grant: 200");
    c = segment(body_str(&is, "access_token"), 1);
    is_str(json_string_value(json_object_get(c, "sub")), "bob", "refresh grant: sub bob");
    json_decref(c);
    json_decref(is.body);
    issue(a, 1, "grant_type=refresh_token&refresh_token=abc.def.ghi", BR_STR(""), &is);
    ok(is.status == 400 && strcmp(body_str(&is, "error"), "invalid_grant") == 0, "bad refresh token: invalid_grant");
    json_decref(is.body);
    issue(a, 1, "grant_type=password&username=bob&password=bad", BR_STR(""), &is);
    ok(is.status == 400 && strcmp(body_str(&is, "error"), "invalid_grant") == 0, "bad password: invalid_grant");
    json_decref(is.body);
    issue(a, 1, "grant_type=client_credentials", BR_STR(""), &is);
    ok(is.status == 400 && strcmp(body_str(&is, "error"), "unsupported_grant_type") == 0, "unsupported_grant_type");
    json_decref(is.body);
    issue(a, 1, "username=bob", BR_STR(""), &is);
    ok(is.status == 400 && strcmp(body_str(&is, "error"), "invalid_request") == 0, "no grant_type: invalid_request");
    json_decref(is.body);

    /* GET offline_token, and a refresh token revoked by a password change */
    issue(a, 0, "service=reg.example&offline_token=true", basic("alice", "alice-pw"), &is);
    ok(is.status == 200 && body_str(&is, "refresh_token") != NULL, "GET offline_token=true: refresh_token");
    snprintf(form, sizeof(form), "grant_type=refresh_token&refresh_token=%s", body_str(&is, "refresh_token"));
    json_decref(is.body);
    char newalice[128], text[1024];
    br_auth_hash_password("changed", 4, newalice, sizeof(newalice));
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", newalice, hash_bob);
    write_file(tmp_path(1, "htpasswd"), text);
    struct timespec ts[2] = {{0, UTIME_NOW}, {34567, 0}};
    utimensat(AT_FDCWD, tmp_path(1, "htpasswd"), ts, 0);
    a->basic.check_interval_ms = 0;
    issue(a, 1, form, BR_STR(""), &is);
    is_int(is.status, 400, "refresh token refused after a password change");
    json_decref(is.body);
    write_htpasswd("");
    ts[1].tv_sec = 45678;
    utimensat(AT_FDCWD, tmp_path(1, "htpasswd"), ts, 0);
    free(refresh_copy);

    /* back-off on the token endpoint */
    for (int i = 0; i < 3; i++) {
        issue(a, 1, "grant_type=password&username=bob&password=x", BR_STR(""), &is);
        json_decref(is.body);
    }
    issue(a, 1, "grant_type=password&username=bob&password=bob-pw", BR_STR(""), &is);
    is_int(is.status, 429, "token endpoint: 429 after 3 failures");
    json_decref(is.body);
    memset(a->basic.backoff, 0, sizeof(a->basic.backoff));
    /* alice's good logins (POST and GET) between guesses at bob do not reset bob's count */
    int round, st = 0;
    for (round = 1; round <= 6 && st != 429; round++) {
        issue(a, round % 2, round % 2 ? "grant_type=password&username=alice&password=alice-pw" : "service=reg.example",
              round % 2 ? BR_STR("") : basic("alice", "alice-pw"), &is);
        json_decref(is.body);
        issue(a, round % 2, round % 2 ? "grant_type=password&username=bob&password=x" : "service=reg.example",
              round % 2 ? BR_STR("") : basic("bob", "x"), &is);
        st = is.status;
        json_decref(is.body);
    }
    is_int(round - 1, 4, "token endpoint: alice's good logins between guesses at bob: the 4th guess is 429");
    issue(a, 0, "service=reg.example", basic("bob", "bob-pw"), &is);
    is_int(is.status, 429, "token endpoint: ... and so is bob's right password from there");
    json_decref(is.body);
    memset(a->basic.backoff, 0, sizeof(a->basic.backoff));
}

/* Builds header.claims.signature by hand. alg_override replaces the header alg. */
static char *craft(const char *header, const char *claims, EVP_PKEY *key, int raw_es)
{
    char *h = br_b64url_encode(header, strlen(header)), *c = br_b64url_encode(claims, strlen(claims));
    size_t len = strlen(h) + strlen(c) + 1;
    char *input = malloc(len + 1);
    snprintf(input, len + 1, "%s.%s", h, c);
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key);
    EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, len);
    EVP_MD_CTX_free(md);
    if (raw_es) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
        const BIGNUM *r, *s;
        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, sig, 32);
        BN_bn2binpad(s, sig + 32, 32);
        siglen = 64;
        ECDSA_SIG_free(es);
    }
    char *s64 = br_b64url_encode(sig, siglen);
    char *out = malloc(len + strlen(s64) + 2);
    sprintf(out, "%s.%s", input, s64);
    free(h);
    free(c);
    free(input);
    free(s64);
    return out;
}

static char *claims_json(const char *iss, const char *aud, long exp_delta, long nbf_delta)
{
    char *buf = malloc(1024);
    long now = (long)br_now();
    snprintf(buf, 1024,
             "{\"iss\":\"%s\",\"sub\":\"bob\",\"aud\":%s,\"exp\":%ld,\"nbf\":%ld,\"iat\":%ld,\"jti\":\"x\","
             "\"access\":[{\"type\":\"repository\",\"name\":\"team/app\",\"actions\":[\"pull\"]}]}",
             iss, aud, now + exp_delta, now + nbf_delta, now);
    return buf;
}

static int accepts(br_auth_t *a, const char *token)
{
    br_auth_result_t res;
    return check(a, bearer(token), "172.16.9.9", "team/app", BR_AUTH_PULL, &res) == 0;
}

static void expect_token(br_auth_t *a, const char *token, int good, const char *name)
{
    ok(accepts(a, token) == good, "%s: %s", name, good ? "accepted" : "refused");
}

static void test_verify(br_auth_t *a, EVP_PKEY *own, const char *own_alg)
{
    char kid[64], header[512];
    br_jwt_kid(own, kid);
    int es = strcmp(own_alg, "ES256") == 0;
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", own_alg, kid);
    char *cl, *t;

#define TRY(hdr, claims, key, raw, good, name)                                                                                 \
    do {                                                                                                                       \
        cl = (claims);                                                                                                         \
        t = craft((hdr), cl, (key), (raw));                                                                                    \
        expect_token(a, t, (good), "%s %s", own_alg, (name));                                                                  \
        free(t);                                                                                                               \
        free(cl);                                                                                                              \
    } while (0)
#define expect_token(a, t, good, fmt, ...)                                                                                     \
    do {                                                                                                                       \
        char n_[256];                                                                                                          \
        snprintf(n_, sizeof(n_), fmt, __VA_ARGS__);                                                                            \
        ok(accepts((a), (t)) == (good), "%s: %s", n_, (good) ? "accepted" : "refused");                                        \
    } while (0)

    TRY(header, claims_json("berth-test", "\"reg.example\"", 300, 0), own, es, 1, "valid");
    TRY(header, claims_json("berth-test", "[\"x\",\"reg.example\"]", 300, 0), own, es, 1, "aud as a list");
    TRY(header, claims_json("berth-test", "\"reg.example\"", -120, -400), own, es, 0, "expired");
    TRY(header, claims_json("berth-test", "\"reg.example\"", -30, -400), own, es, 1, "expired within leeway");
    TRY(header, claims_json("berth-test", "\"reg.example\"", 600, 120), own, es, 0, "not yet valid");
    TRY(header, claims_json("berth-test", "\"reg.example\"", 600, 30), own, es, 1, "nbf within leeway");
    TRY(header, claims_json("berth-test", "\"other\"", 300, 0), own, es, 0, "wrong audience");
    TRY(header, claims_json("berth-test", "[]", 300, 0), own, es, 0, "empty audience");
    TRY(header, claims_json("evil", "\"reg.example\"", 300, 0), own, es, 0, "wrong issuer");
    TRY(header, claims_json("berth-test", "\"reg.example\"", 300, 0), stranger_key, 1, 0, "unknown key with our kid");
    if (es)
        TRY(header, claims_json("berth-test", "\"reg.example\"", 300, 0), own, 0, 0, "DER signature instead of r||s");

    /* no exp; a string exp; duplicate keys in the claims */
    char buf[1024];
    snprintf(buf, sizeof(buf), "{\"iss\":\"berth-test\",\"aud\":\"reg.example\",\"sub\":\"bob\"}");
    TRY(header, strdup(buf), own, es, 0, "no exp");
    snprintf(buf, sizeof(buf), "{\"iss\":\"berth-test\",\"aud\":\"reg.example\",\"exp\":\"%lu\"}", (unsigned long)br_now() + 300);
    TRY(header, strdup(buf), own, es, 0, "exp as a string");
    snprintf(buf, sizeof(buf), "{\"iss\":\"berth-test\",\"aud\":\"reg.example\",\"exp\":%lu,\"iss\":\"berth-test\"}",
             (unsigned long)br_now() + 300);
    TRY(header, strdup(buf), own, es, 0, "duplicate key in claims");

    /* headers */
    char h2[512];
    snprintf(h2, sizeof(h2), "{\"alg\":\"%s\",\"kid\":\"%s\",\"alg\":\"%s\"}", own_alg, kid, own_alg);
    TRY(h2, claims_json("berth-test", "\"reg.example\"", 300, 0), own, es, 0, "duplicate key in header");
    snprintf(h2, sizeof(h2), "{\"alg\":\"%s\",\"kid\":\"%s\"}", es ? "RS256" : "ES256", kid);
    TRY(h2, claims_json("berth-test", "\"reg.example\"", 300, 0), own, es, 0, "alg not matching the key type");
    snprintf(h2, sizeof(h2), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\",\"crit\":[\"exp\"]}", own_alg, kid);
    TRY(h2, claims_json("berth-test", "\"reg.example\"", 300, 0), own, es, 0, "crit header");
    snprintf(h2, sizeof(h2), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", own_alg);
    TRY(h2, claims_json("berth-test", "\"reg.example\"", 300, 0), own, es, 0, "no kid, no x5c");

    /* tampered claims: sign one payload, send another */
    cl = claims_json("berth-test", "\"reg.example\"", 300, 0);
    t = craft(header, cl, own, es);
    char *evil = claims_json("berth-test", "\"reg.example\"", 300, 0);
    char *pos = strstr(evil, "\"pull\"");
    memcpy(pos, "\"push\"", 6);
    char *e64 = br_b64url_encode(evil, strlen(evil));
    char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
    char tampered[BR_JWT_MAX];
    snprintf(tampered, sizeof(tampered), "%.*s.%s%s", (int)(d1 - t), t, e64, d2);
    expect_token(a, tampered, 0, "%s tampered claims", own_alg);
    free(e64);
    free(evil);
    /* bad signature: flip one character of it */
    char flipped[BR_JWT_MAX];
    snprintf(flipped, sizeof(flipped), "%s", t);
    char *last = flipped + strlen(flipped) - 5;
    *last = *last == 'A' ? 'B' : 'A';
    expect_token(a, flipped, 0, "%s bad signature", own_alg);
    /* malformed shapes */
    char shape[BR_JWT_MAX + 100];
    snprintf(shape, sizeof(shape), "%.*s", (int)(d2 - t), t);
    expect_token(a, shape, 0, "%s two segments", own_alg);
    snprintf(shape, sizeof(shape), "%s.AAAA", t);
    expect_token(a, shape, 0, "%s four segments", own_alg);
    snprintf(shape, sizeof(shape), "%s=", t);
    expect_token(a, shape, 0, "%s padding", own_alg);
    snprintf(shape, sizeof(shape), "%s", t);
    shape[3] = '+';
    expect_token(a, shape, 0, "%s '+' (not base64url)", own_alg);
    snprintf(shape, sizeof(shape), "%.*s..%s", (int)(d1 - t), t, d2 + 1);
    expect_token(a, shape, 0, "%s empty claims", own_alg);
    snprintf(shape, sizeof(shape), "bm90IGpzb24%s", d1);
    expect_token(a, shape, 0, "%s non-JSON header", own_alg);
    memset(shape, 'A', sizeof(shape));
    memcpy(shape, t, strlen(t));
    shape[BR_JWT_MAX + 1] = '\0';
    expect_token(a, shape, 0, "%s huge", own_alg);
    expect_token(a, t, 1, "%s the untouched token", own_alg);
    free(t);
    free(cl);

    /* alg none, and HS256 keyed with the public key (the confusion attack) */
    cl = claims_json("berth-test", "\"reg.example\"", 300, 0);
    char none_hdr[256];
    snprintf(none_hdr, sizeof(none_hdr), "{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    char *nh = br_b64url_encode(none_hdr, strlen(none_hdr)), *nc = br_b64url_encode(cl, strlen(cl));
    snprintf(shape, sizeof(shape), "%s.%s.", nh, nc);
    expect_token(a, shape, 0, "%s alg none, empty signature", own_alg);
    snprintf(shape, sizeof(shape), "%s.%s.AAAA", nh, nc);
    expect_token(a, shape, 0, "%s alg none, some signature", own_alg);
    free(nh);

    unsigned char *pub = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, own);
    long publen = BIO_get_mem_data(bio, &pub);
    char hs_hdr[256];
    snprintf(hs_hdr, sizeof(hs_hdr), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    char *hh = br_b64url_encode(hs_hdr, strlen(hs_hdr));
    char input[4096];
    snprintf(input, sizeof(input), "%s.%s", hh, nc);
    unsigned char mac[32];
    unsigned int maclen = 32;
    HMAC(EVP_sha256(), pub, (int)publen, (unsigned char *)input, strlen(input), mac, &maclen);
    char *m64 = br_b64url_encode(mac, 32);
    snprintf(shape, sizeof(shape), "%s.%s", input, m64);
    expect_token(a, shape, 0, "%s HS256 keyed with the public key", own_alg);
    BIO_free(bio);
    free(hh);
    free(m64);
    free(nc);
    free(cl);
#undef TRY
#undef expect_token
}

/* Signs claims with an external key through br_jwt_sign. */
static char *sign_external(EVP_PKEY *key, const char *kid, X509 *x5c_leaf, int with_kid)
{
    br_auth_token_t t;
    memset(&t, 0, sizeof(t));
    t.sign.pkey = key;
    t.sign.alg = EVP_PKEY_is_a(key, "RSA") ? BR_JWT_RS256 : BR_JWT_ES256;
    if (with_kid && kid != NULL)
        snprintf(t.sign.kid, sizeof(t.sign.kid), "%s", kid);
    else if (with_kid)
        br_jwt_kid(key, t.sign.kid);
    else
        snprintf(t.sign.kid, sizeof(t.sign.kid), "no-such-kid");
    if (x5c_leaf != NULL) {
        unsigned char *der = NULL;
        int len = i2d_X509(x5c_leaf, &der);
        char *b64 = malloc((size_t)len * 2 + 8);
        EVP_EncodeBlock((unsigned char *)b64, der, len);
        t.x5c_json = malloc(strlen(b64) + 8);
        sprintf(t.x5c_json, "[\"%s\"]", b64);
        free(b64);
        OPENSSL_free(der);
    }
    char *cl = claims_json("berth-test", "\"reg.example\"", 300, 0);
    json_error_t jerr;
    json_t *claims = json_loads(cl, 0, &jerr);
    char *tok = br_jwt_sign(&t, claims);
    json_decref(claims);
    free(cl);
    free(t.x5c_json);
    return tok;
}

static void test_external(void)
{
    char extra[4096];
    snprintf(extra, sizeof(extra), "    trusted_certificates: %s\n    jwks: %s\n", tmp_path(4, "trusted.pem"), tmp_path(5, "jwks.json"));
    br_auth_t *a = token_auth(tmp_path(0, "ec.key"), extra);
    ok(a != NULL, "external issuers: handle");
    if (a == NULL)
        return;
    char *t;
    br_auth_result_t res;
    t = sign_external(ext_key, NULL, NULL, 1);
    expect_token(a, t, 1, "trusted certificate key, by libtrust kid");
    check(a, bearer(t), "1.2.3.4", "team/app", BR_AUTH_PULL, &res);
    ok(!br_auth_may(a, &res, BR_STR("team/other"), BR_AUTH_PULL), "external token: no widening to the rules");
    free(t);
    t = sign_external(leaf_key, NULL, leaf_cert, 0);
    expect_token(a, t, 1, "x5c chain to a trusted CA");
    free(t);
    X509 *self = make_cert(stranger_key, "stranger", NULL, NULL, 0);
    t = sign_external(stranger_key, NULL, self, 0);
    expect_token(a, t, 0, "x5c of an untrusted certificate");
    free(t);
    X509_free(self);
    t = sign_external(stranger_key, NULL, leaf_cert, 0);
    expect_token(a, t, 0, "x5c of a trusted leaf, signed with another key");
    free(t);
    t = sign_external(jwks_key, "jwks-1", NULL, 1);
    expect_token(a, t, 1, "JWKS key by kid");
    free(t);
    t = sign_external(jwks_key, "jwks-2", NULL, 1);
    expect_token(a, t, 0, "JWKS key under an unknown kid");
    free(t);
    t = sign_external(stranger_key, NULL, NULL, 1);
    expect_token(a, t, 0, "an unknown key");
    free(t);
    br_auth_destroy(a);

    /* verification only (no issuer of our own) */
    char body[4096], err[512];
    snprintf(body, sizeof(body),
             "  token:\n    realm: https://auth.example/token\n    service: reg.example\n    issuer: berth-test\n"
             "    jwks: %s\n",
             tmp_path(0, "jwks.json"));
    a = make_auth(body, err, sizeof(err));
    ok(a != NULL, "verification-only handle");
    if (a != NULL) {
        t = sign_external(jwks_key, "jwks-1", NULL, 1);
        expect_token(a, t, 1, "verification-only: JWKS token");
        free(t);
        issued_t is;
        issue(a, 0, "service=reg.example", BR_STR(""), &is);
        is_int(is.status, 404, "verification-only: no issuer, 404");
        json_decref(is.body);
        br_auth_destroy(a);
    }

    /* configuration errors */
    write_file(tmp_path(3, "bad.jwks"), "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}");
    snprintf(body, sizeof(body),
             "  token:\n    realm: https://a/t\n    service: s\n    jwks: %s\n", tmp_path(3, "bad.jwks"));
    ok(make_auth(body, err, sizeof(err)) == NULL && strstr(err, "key 0 is not a usable") != NULL, "JWKS with a P-384 key refused");
    snprintf(body, sizeof(body), "  token:\n    realm: https://a/t\n    service: s\n    key: %s\n", tmp_path(0, "ec.crt"));
    ok(make_auth(body, err, sizeof(err)) == NULL && strstr(err, "not a PEM private key") != NULL, "a certificate as key refused");
    snprintf(body, sizeof(body), "  token:\n    realm: https://a/t\n    service: s\n    key: %s\n    certificate: %s\n",
             tmp_path(4, "rsa.key"), tmp_path(5, "ec.crt"));
    ok(make_auth(body, err, sizeof(err)) == NULL && strstr(err, "not for auth.token.key") != NULL, "certificate of another key refused");
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    make_keys();
    br_auth_hash_password("alice-pw", 4, hash_alice, sizeof(hash_alice));
    br_auth_hash_password("bob-pw", 4, hash_bob, sizeof(hash_bob));
    br_auth_hash_password("bot-pw", 4, hash_bot, sizeof(hash_bot));
    write_htpasswd("");

    test_glob();
    test_off();
    br_auth_t *a = basic_auth();
    ok(a != NULL, "Basic handle");
    if (a != NULL) {
        test_acl(a);
        test_basic(a);
        test_backoff(a);
        br_auth_destroy(a);
    }
    test_htpasswd();
    test_hash_and_keys();

    char extra[4096];
    snprintf(extra, sizeof(extra), "    certificate: %s\n", tmp_path(0, "ec.crt"));
    a = token_auth(tmp_path(0, "ec.key"), extra);
    ok(a != NULL, "ES256 token handle");
    if (a != NULL) {
        test_issue(a);
        test_verify(a, ec_key, "ES256");
        br_auth_destroy(a);
    }
    a = token_auth(tmp_path(0, "rsa.key"), "");
    ok(a != NULL, "RS256 token handle");
    if (a != NULL) {
        issued_t is;
        issue(a, 0, "service=reg.example&scope=repository:team/app:pull", basic("bob", "bob-pw"), &is);
        json_t *h = segment(body_str(&is, "token"), 0);
        ok(is.status == 200 && strcmp(json_string_value(json_object_get(h, "alg")), "RS256") == 0 &&
               json_object_get(h, "x5c") == NULL,
           "RS256 token, no x5c without a certificate");
        expect_token(a, body_str(&is, "token"), 1, "RS256 issued token");
        json_decref(h);
        json_decref(is.body);
        test_verify(a, rsa_key, "RS256");
        br_auth_destroy(a);
    }
    test_external();

    EVP_PKEY *keys[] = {ec_key, rsa_key, ext_key, ca_key, leaf_key, jwks_key, stranger_key};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    X509 *certs[] = {ec_cert, ext_cert, ca_cert, leaf_cert};
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", tmpdir);
    return tap_done();
}
