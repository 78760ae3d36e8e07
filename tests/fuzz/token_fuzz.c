/*
 * Fuzz target: the parsers auth/ runs on network input. The first byte picks
 * the entry point, the rest is the input:
 *   0: Authorization header value into br_auth_check (Basic and Bearer parsing,
 *      JWT decoding and verification) against a handle with a real ES256 key;
 *   1: query string of a GET token request (anonymous) into br_auth_issue;
 *   2: form body of a POST token request into br_auth_issue;
 *   3: strict base64url, which must round-trip exactly.
 * The handle is built once, from files in a temporary directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "auth/internal.h"
#include "tests/fuzz/fuzz.h"

static br_auth_t *auth;

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "token_fuzz: invariant violated: %s\n", what);
        abort();
    }
}

static void setup(void)
{
    static char dir[] = "/tmp/berth-token-fuzz-XXXXXX";
    char key[128], ht[128], yaml[128], text[1024], err[512], hash[128];
    br_config_t cfg;
    FILE *fp;

    check(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(key, sizeof(key), "%s/token.key", dir);
    snprintf(ht, sizeof(ht), "%s/htpasswd", dir);
    snprintf(yaml, sizeof(yaml), "%s/berth.yaml", dir);
    check(br_auth_gen_key(key, "ES256") == 0, "gen_key");
    check(br_auth_hash_password("pw", 4, hash, sizeof(hash)) == 0, "hash");
    fp = fopen(ht, "w");
    fprintf(fp, "bob:%s\n", hash);
    fclose(fp);
    snprintf(text, sizeof(text),
             "auth:\n  htpasswd: %s\n  max_failures: 0\n"
             "  anonymous: [{repository: \"public/**\", actions: [pull]}]\n"
             "  rules: [{repository: \"**\", users: [bob], actions: [pull, push]}]\n"
             "  token:\n    realm: https://r/token\n    path: /token\n    service: r\n    key: %s\n",
             ht, key);
    fp = fopen(yaml, "w");
    fputs(text, fp);
    fclose(fp);
    br_config_init(&cfg);
    check(br_config_load_file(&cfg, yaml, err, sizeof(err)) == 0, err);
    check(br_auth_create(&auth, &cfg, err, sizeof(err)) == 0, err);
    br_config_dispose(&cfg);
    unlink(key);
    unlink(ht);
    unlink(yaml);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (auth == NULL)
        setup();
    if (size == 0)
        return 0;
    br_str_t in = br_str((const char *)data + 1, size - 1);

    switch (data[0] & 3) {
    case 0: {
        br_auth_result_t res;
        br_auth_request_t r = {in, "fuzz", BR_STR("public/x"), BR_AUTH_PULL, BR_STR("team/x")};
        int ret = br_auth_check(auth, &r, &res);
        check((ret == 0) == (res.status == 200), "status agrees with the return");
        check(ret == 0 || res.code != NULL, "a refusal has a code");
        check(strlen(res.www_authenticate) < sizeof(res.www_authenticate), "challenge bounded");
        break;
    }
    case 1:
    case 2: {
        br_auth_token_request_t r = {(data[0] & 3) == 2, in, in, BR_STR(""), "fuzz"};
        br_auth_token_response_t resp;
        br_auth_issue(auth, &r, &resp);
        check(resp.body != NULL && resp.len == strlen(resp.body), "a body always");
        json_t *j = br_json_strict(resp.body, resp.len);
        check(j != NULL, "the body is a JSON object");
        json_decref(j);
        free(resp.body);
        break;
    }
    case 3: {
        unsigned char *buf = br_malloc(in.len + 1);
        long n = br_b64url_decode(in.base, in.len, buf);
        if (n >= 0) {
            char *back = br_b64url_encode(buf, (size_t)n);
            check(strlen(back) == in.len && memcmp(back, in.base, in.len) == 0, "base64url round trip");
            free(back);
        }
        free(buf);
        break;
    }
    }
    return 0;
}
