/*
 * Unit tests for config/: value parsers, the YAML loader (every error class with
 * its exact file:line:col), the environment loader, cross-field validation, and
 * the example file (which must load to exactly the defaults).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "config/config.h"
#include "config/internal.h"
#include "tests/tap.h"

static char tmpdir[] = "/tmp/berth-config-test-XXXXXX";
static char yaml_path[256];

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL || fwrite(text, 1, len, fp) != len || fclose(fp) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

/* Initialises c to the defaults and loads yaml (as berth.yaml in the temp dir) over it. */
static int load_n(br_config_t *c, const char *yaml, size_t len, char *err, size_t errsize)
{
    br_config_init(c);
    write_file(yaml_path, yaml, len);
    return br_config_load_file(c, yaml_path, err, errsize);
}

static int load(br_config_t *c, const char *yaml, char *err, size_t errsize)
{
    return load_n(c, yaml, strlen(yaml), err, errsize);
}

/* Name of the first field where a and b differ, or NULL when equal. */
static const char *config_diff(const br_config_t *a, const br_config_t *b)
{
#define STR_DIFF(x, y) (((x) == NULL) != ((y) == NULL) || ((x) != NULL && strcmp((x), (y)) != 0))
    if (a->num_listen != b->num_listen)
        return "num_listen";
    for (size_t i = 0; i < a->num_listen; i++)
        if (STR_DIFF(a->listen[i].host, b->listen[i].host) || a->listen[i].port != b->listen[i].port)
            return "listen";
    if (a->threads != b->threads)
        return "threads";
    if (STR_DIFF(a->storage.root, b->storage.root))
        return "storage.root";
    if (a->storage.delete_enabled != b->storage.delete_enabled)
        return "storage.delete";
    if (a->storage.upload_purge_age_s != b->storage.upload_purge_age_s)
        return "storage.upload_purge_age";
    if (a->storage.fsync != b->storage.fsync)
        return "storage.fsync";
    if (a->limits.max_body_size != b->limits.max_body_size)
        return "limits.max_body_size";
    if (a->limits.max_manifest_size != b->limits.max_manifest_size)
        return "limits.max_manifest_size";
    if (a->limits.request_deadline_ms != b->limits.request_deadline_ms)
        return "limits.request_deadline";
    if (a->limits.header_size != b->limits.header_size)
        return "limits.header_size";
    if (a->limits.max_connections != b->limits.max_connections)
        return "limits.max_connections";
    if (a->limits.max_connections_per_client != b->limits.max_connections_per_client)
        return "limits.max_connections_per_client";
    if (a->limits.idle_timeout_ms != b->limits.idle_timeout_ms)
        return "limits.idle_timeout";
    if (a->limits.drain_timeout_ms != b->limits.drain_timeout_ms)
        return "limits.drain_timeout";
    if (a->log.level != b->log.level)
        return "log.level";
    if (a->log.format != b->log.format)
        return "log.format";
    if (a->log.access_log != b->log.access_log)
        return "log.access_log";
    if (a->scrub.rate != b->scrub.rate)
        return "scrub.rate";
    if (a->gc.interval_s != b->gc.interval_s)
        return "gc.interval";
    if (a->gc.grace_s != b->gc.grace_s)
        return "gc.grace";
    if (a->gc.untagged_delete != b->gc.untagged_delete)
        return "gc.untagged";
    if (a->num_quotas != b->num_quotas)
        return "quotas";
    for (size_t i = 0; i < a->num_quotas; i++)
        if (STR_DIFF(a->quotas[i].repository, b->quotas[i].repository) || a->quotas[i].max_bytes != b->quotas[i].max_bytes)
            return "quotas";
    if (a->http2 != b->http2)
        return "http2";
    if (STR_DIFF(a->tls.certificate, b->tls.certificate))
        return "tls.certificate";
    if (STR_DIFF(a->tls.key, b->tls.key))
        return "tls.key";
    if (STR_DIFF(a->tls.client_ca, b->tls.client_ca))
        return "tls.client_ca";
    if (a->auth.enabled != b->auth.enabled)
        return "auth.enabled";
    for (const br_config_key_t *k = br_config_keys; k->name != NULL; k++) {
        if (k->section == NULL || strncmp(k->section, "auth", 4) != 0)
            continue;
        const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
        int differ = 0;
        switch (k->type) {
        case BR_CK_STRING:
        case BR_CK_OPT_STRING:
            differ = STR_DIFF(*(char *const *)pa, *(char *const *)pb);
            break;
        case BR_CK_UINT:
            differ = *(const unsigned *)pa != *(const unsigned *)pb;
            break;
        case BR_CK_DURATION_MS:
        case BR_CK_DURATION_S:
            differ = *(const uint64_t *)pa != *(const uint64_t *)pb;
            break;
        default: /* lists: compare counts here, contents in test_auth */
            differ = *(const size_t *)(pa + sizeof(void *)) != *(const size_t *)(pb + sizeof(void *));
            break;
        }
        if (differ)
            return k->name;
    }
    return NULL;
#undef STR_DIFF
}

static int is_default(const br_config_t *c)
{
    br_config_t d;
    br_config_init(&d);
    const char *diff = config_diff(c, &d);
    br_config_dispose(&d);
    if (diff != NULL)
        printf("#   differs from defaults in %s\n", diff);
    return diff == NULL;
}

/* Loads yaml, expects failure with "berth.yaml-path:<where_msg>" and the config
 * left at its defaults (a failed load must not half-apply). */
static void expect_error_n(const char *yaml, size_t len, const char *where_msg, const char *name)
{
    br_config_t c;
    char err[512], want[1024];
    int ret = load_n(&c, yaml, len, err, sizeof(err));
    snprintf(want, sizeof(want), "%s:%s", yaml_path, where_msg);
    is_int(ret, BR_E_CONFIG, "%s: fails", name);
    is_str(err, want, "%s: message", name);
    ok(is_default(&c), "%s: config unchanged", name);
    br_config_dispose(&c);
}

static void expect_error(const char *yaml, const char *where_msg, const char *name)
{
    expect_error_n(yaml, strlen(yaml), where_msg, name);
}

static void test_defaults(void)
{
    br_config_t c;
    br_config_init(&c);
    is_int(c.num_listen, 1, "default: one listener");
    is_str(c.listen[0].host, "", "default: any host");
    is_int(c.listen[0].port, 5000, "default: port 5000");
    is_int(c.threads, 0, "default: threads 0");
    is_str(c.storage.root, "./berth-data", "default: storage.root");
    is_int(c.storage.delete_enabled, 1, "default: delete on");
    is_int(c.storage.upload_purge_age_s, 86400, "default: purge age 24h");
    is_int(c.limits.max_body_size, 64ULL << 30, "default: max_body_size 64GiB");
    is_int(c.limits.max_manifest_size, 4 << 20, "default: max_manifest_size 4MiB");
    ok(c.tls.certificate == NULL && c.tls.key == NULL && c.tls.client_ca == NULL, "default: no TLS");
    char err[256] = "";
    is_int(br_config_validate(&c, err, sizeof(err)), 0, "default: validates");
    br_config_dispose(&c);
}

static void test_parse_listen(void)
{
    static const struct {
        const char *in, *host;
        int port;
    } good[] = {{":5000", "", 5000},
                {"0.0.0.0:5000", "0.0.0.0", 5000},
                {"[::1]:5001", "::1", 5001},
                {"localhost:80", "localhost", 80},
                {"[::]:1", "::", 1},
                {"[fe80::1%eth0]:65535", "fe80::1%eth0", 65535},
                {"registry.example-1.com:443", "registry.example-1.com", 443}};
    static const char *const bad[] = {"5000",
                                      "",
                                      "host:",
                                      "host:0",
                                      "host:65536",
                                      "::1:5000",
                                      "[::1]5000",
                                      "[::1",
                                      "[]:80",
                                      "a b:80",
                                      "host:+80",
                                      "host:80x",
                                      "host: 80",
                                      "[::1]:",
                                      ":",
                                      "[::g]:80",
                                      "[%eth0]:80",
                                      "h/x:80",
                                      "host:99999999999999999999"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        br_listen_t l = {NULL, 0};
        char err[256];
        int ret = br_config_parse_listen(&l, good[i].in, err, sizeof(err));
        is_int(ret, 0, "listen '%s' parses", good[i].in);
        if (ret == 0) {
            is_str(l.host, good[i].host, "listen '%s' host", good[i].in);
            is_int(l.port, good[i].port, "listen '%s' port", good[i].in);
        }
        free(l.host);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        br_listen_t l = {NULL, 0};
        char err[256] = "";
        is_int(br_config_parse_listen(&l, bad[i], err, sizeof(err)), BR_E_CONFIG, "listen '%s' refused", bad[i]);
        ok(err[0] != '\0' && l.host == NULL, "listen '%s' gives a message and no host", bad[i]);
    }
}

static void test_parse_size(void)
{
    static const struct {
        const char *in;
        uint64_t want;
    } good[] = {{"4MiB", 4ULL << 20},
                {"64GiB", 64ULL << 30},
                {"1KB", 1000},
                {"12", 12},
                {"0", 0},
                {"1KiB", 1024},
                {"2TiB", 2ULL << 40},
                {"3mb", 3000000},
                {"5 GB", 5000000000ULL},
                {"7b", 7},
                {"16777215TiB", 16777215ULL << 40},
                {"18446744073709551615", UINT64_MAX}};
    static const char *const bad[] = {
        "-1", "1XB", "", "KiB", "1.5MiB", " 1", "+1", "0x10", "16777216TiB", "18446744073709551616", "1 MiB x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 0;
        is_int(br_config_parse_size(good[i].in, &v), 0, "size '%s' parses", good[i].in);
        ok(v == good[i].want, "size '%s' = %llu", good[i].in, (unsigned long long)good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 0;
        is_int(br_config_parse_size(bad[i], &v), BR_E_CONFIG, "size '%s' refused", bad[i]);
    }
}

static void test_parse_duration(void)
{
    static const struct {
        const char *in;
        uint64_t want;
    } good[] = {{"500ms", 500},    {"30s", 30000}, {"5m", 300000}, {"1h", 3600000},
                {"2d", 172800000}, {"90", 90000},  {"0", 0},       {"0ms", 0}};
    static const char *const bad[] = {"-1s", "1w", "1.5h", "", "s", "18446744073709551615", "18446744073709552s", "1 h x"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 1;
        is_int(br_config_parse_duration_ms(good[i].in, &v), 0, "duration '%s' parses", good[i].in);
        ok(v == good[i].want, "duration '%s' = %llums", good[i].in, (unsigned long long)good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 0;
        is_int(br_config_parse_duration_ms(bad[i], &v), BR_E_CONFIG, "duration '%s' refused", bad[i]);
    }
}

/* Loads a file that sets every key to a non-default value into *c (left
 * initialised for test_env, which must reach the same values). */
static void test_every_key(br_config_t *out)
{
    static const char yaml[] = "listen: [\"127.0.0.1:6000\", \"[::1]:6001\"]\n"
                               "threads: 8\n"
                               "storage:\n"
                               "  root: /var/lib/berth\n"
                               "  delete: no\n"
                               "  upload_purge_age: 90m\n"
                               "  fsync: off\n"
                               "limits:\n"
                               "  max_body_size: 1GB\n"
                               "  max_manifest_size: 1MiB\n"
                               "  request_deadline: 2h\n"
                               "  header_size: 16KiB\n"
                               "  max_connections: 100\n"
                               "  max_connections_per_client: 10\n"
                               "  idle_timeout: 1500ms\n"
                               "  drain_timeout: 0\n"
                               "log:\n"
                               "  level: debug\n"
                               "  format: json\n"
                               "  access_log: False\n"
                               "http2: OFF\n"
                               "immutable:\n"
                               "  - {repository: \"**\", tags: [\"v*\", \"release-*\"]}\n"
                               "  - {repository: \"scratch/**\", tags: []}\n"
                               "retention:\n"
                               "  - {repository: \"ci/**\", keep_last: 20, keep_days: 14, protect: [latest, \"v*\"]}\n"
                               "  - {repository: \"tmp/**\", keep_days: 0}\n"
                               "scrub:\n"
                               "  rate: 50MB/s\n"
                               "gc:\n"
                               "  interval: 10m\n"
                               "  grace: 0\n"
                               "  untagged: delete\n"
                               "tls:\n"
                               "  certificate: /etc/berth/cert.pem\n"
                               "  key: '/etc/berth/key.pem'\n"
                               "  client_ca: \"/etc/berth/ca.pem\"\n";
    br_config_t c;
    char err[512] = "";
    is_int(load(&c, yaml, err, sizeof(err)), 0, "every key: loads");
    if (err[0] != '\0')
        printf("#   %s\n", err);
    is_int(c.num_listen, 2, "listen: list replaces the default");
    is_str(c.listen[0].host, "127.0.0.1", "listen[0] host");
    is_int(c.listen[0].port, 6000, "listen[0] port");
    is_str(c.listen[1].host, "::1", "listen[1] host");
    is_int(c.listen[1].port, 6001, "listen[1] port");
    is_int(c.threads, 8, "threads");
    is_str(c.storage.root, "/var/lib/berth", "storage.root");
    is_int(c.storage.delete_enabled, 0, "storage.delete");
    is_int(c.storage.upload_purge_age_s, 5400, "storage.upload_purge_age in seconds");
    is_int(c.storage.fsync, 0, "storage.fsync");
    is_int(c.limits.max_body_size, 1000000000, "limits.max_body_size");
    is_int(c.limits.max_manifest_size, 1 << 20, "limits.max_manifest_size");
    is_int(c.limits.request_deadline_ms, 7200000, "limits.request_deadline");
    is_int(c.limits.header_size, 16384, "limits.header_size");
    is_int(c.limits.max_connections, 100, "limits.max_connections");
    is_int(c.limits.max_connections_per_client, 10, "limits.max_connections_per_client");
    is_int(c.limits.idle_timeout_ms, 1500, "limits.idle_timeout");
    is_int(c.limits.drain_timeout_ms, 0, "limits.drain_timeout (0 allowed)");
    is_int(c.log.level, BR_LOG_DEBUG, "log.level");
    is_int(c.log.format, BR_LOG_JSON, "log.format");
    is_int(c.log.access_log, 0, "log.access_log");
    is_int(c.http2, 0, "http2");
    ok(c.num_immutable == 2 && strcmp(c.immutable[0].repository, "**") == 0 && c.immutable[0].num_tags == 2 &&
           strcmp(c.immutable[0].tags[1], "release-*") == 0 && c.immutable[1].num_tags == 0,
       "immutable: two rules, the second with no tags");
    br_config_t copy;
    br_config__copy(&copy, &c);
    ok(copy.num_immutable == 2 && copy.immutable != c.immutable && copy.immutable[0].tags != c.immutable[0].tags &&
           strcmp(copy.immutable[0].tags[0], "v*") == 0,
       "immutable: deep copy");
    ok(c.num_retention == 2 && strcmp(c.retention[0].repository, "ci/**") == 0 && c.retention[0].keep_last == 20 &&
           c.retention[0].keep_days == 14 && c.retention[0].num_tags == 2 && strcmp(c.retention[0].tags[1], "v*") == 0 &&
           c.retention[1].keep_last == 0 && c.retention[1].keep_days == 0 && c.retention[1].num_tags == 0,
       "retention: two rules (protect in tags; an omitted keep is 0)");
    ok(copy.num_retention == 2 && copy.retention != c.retention && copy.retention[0].keep_days == 14 &&
           strcmp(copy.retention[0].tags[0], "latest") == 0,
       "retention: deep copy");
    br_config_dispose(&copy);
    is_int(c.scrub.rate, 50000000, "scrub.rate: 50MB/s");
    is_int(c.gc.interval_s, 600, "gc.interval");
    is_int(c.gc.grace_s, 0, "gc.grace (0 allowed)");
    is_int(c.gc.untagged_delete, 1, "gc.untagged: delete");
    is_str(c.tls.certificate, "/etc/berth/cert.pem", "tls.certificate");
    is_str(c.tls.key, "/etc/berth/key.pem", "tls.key");
    is_str(c.tls.client_ca, "/etc/berth/ca.pem", "tls.client_ca");
    is_int(br_config_validate(&c, err, sizeof(err)), 0, "every key: validates");
    *out = c;
}

static void test_value_forms(void)
{
    br_config_t c;
    char err[512];

    is_int(load(&c, "", err, sizeof(err)), 0, "empty file loads");
    ok(is_default(&c), "empty file = defaults");
    br_config_dispose(&c);
    is_int(load(&c, "# only a comment\n\n", err, sizeof(err)), 0, "comment-only file loads");
    ok(is_default(&c), "comment-only file = defaults");
    br_config_dispose(&c);
    is_int(load(&c, "---\n", err, sizeof(err)), 0, "empty document loads");
    br_config_dispose(&c);
    is_int(load(&c, "storage:\ntls:\nlog: ~\n", err, sizeof(err)), 0, "null sections are empty sections");
    ok(is_default(&c), "null sections = defaults");
    br_config_dispose(&c);

    is_int(load(&c, "listen: localhost:80\n", err, sizeof(err)), 0, "listen: one string");
    ok(c.num_listen == 1 && strcmp(c.listen[0].host, "localhost") == 0 && c.listen[0].port == 80, "listen: one string value");
    br_config_dispose(&c);
    is_int(load(&c, "listen:\n  - ':5000'\n  - 0.0.0.0:5001\n  - '[::1]:5002'\n", err, sizeof(err)), 0, "listen: block list");
    ok(c.num_listen == 3 && c.listen[2].port == 5002 && strcmp(c.listen[2].host, "::1") == 0, "listen: block list values");
    br_config_dispose(&c);

    const char *bools[] = {"true", "yes", "on", "True", "YES", "false", "no", "off", "False", "OFF"};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        char yaml[64];
        snprintf(yaml, sizeof(yaml), "http2: %s\n", bools[i]);
        is_int(load(&c, yaml, err, sizeof(err)), 0, "bool '%s' loads", bools[i]);
        is_int(c.http2, i < 5, "bool '%s' value", bools[i]);
        br_config_dispose(&c);
    }

    /* Anchors and aliases resolve like any YAML. */
    is_int(load(&c, "threads: &n 12\nlimits:\n  max_connections: *n\n", err, sizeof(err)), 0, "alias loads");
    ok(c.threads == 12 && c.limits.max_connections == 12, "alias value");
    br_config_dispose(&c);

    /* A null optional string unsets a value set earlier (file over file). */
    br_config_init(&c);
    write_file(yaml_path, "tls:\n  certificate: /c\n  key: /k\n", strlen("tls:\n  certificate: /c\n  key: /k\n"));
    is_int(br_config_load_file(&c, yaml_path, err, sizeof(err)), 0, "tls set");
    write_file(yaml_path, "tls:\n  certificate: ~\n  key: ''\n", strlen("tls:\n  certificate: ~\n  key: ''\n"));
    is_int(br_config_load_file(&c, yaml_path, err, sizeof(err)), 0, "second file loads over the first");
    ok(c.tls.certificate == NULL && c.tls.key == NULL, "null and '' unset tls strings");
    br_config_dispose(&c);

    /* Strings replace strings without leaking (ASan checks the free). */
    is_int(load(&c, "storage:\n  root: /a\n", err, sizeof(err)), 0, "storage.root replaced");
    is_str(c.storage.root, "/a", "storage.root value");
    br_config_dispose(&c);

    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing.yaml", tmpdir);
    br_config_init(&c);
    is_int(br_config_load_file(&c, missing, err, sizeof(err)), BR_E_CONFIG, "missing file fails");
    char want[600];
    snprintf(want, sizeof(want), "%s: No such file or directory", missing);
    is_str(err, want, "missing file message");
    br_config_dispose(&c);
}

static void test_errors(void)
{
    /* unknown keys at every level */
    expect_error("threads: 1\nfoo: 1\n", "2:1: unknown key 'foo'", "unknown top-level key");
    expect_error("storage:\n  root: /x\n  rot: 1\n", "3:3: unknown key 'rot' in 'storage'", "unknown key in storage");
    expect_error("limits:\n    max_body: 1\n", "2:5: unknown key 'max_body' in 'limits'", "unknown key in limits");
    expect_error("log:\n  colour: yes\n", "2:3: unknown key 'colour' in 'log'", "unknown key in log");
    expect_error("tls:\n  cert: /c\n", "2:3: unknown key 'cert' in 'tls'", "unknown key in tls");
    expect_error("root: /x\n", "1:1: unknown key 'root'", "section key at top level");
    expect_error("storage:\n  storage: {}\n", "2:3: unknown key 'storage' in 'storage'", "section inside section");

    /* wrong types */
    expect_error("storage: 5\n", "1:10: 'storage' must be a mapping", "section given a scalar");
    expect_error("limits: [1]\n", "1:9: 'limits' must be a mapping", "section given a sequence");
    expect_error("threads:\n  a: 1\n", "2:3: 'threads' must be an integer 0-1024", "scalar key given a mapping");
    expect_error("http2: [yes]\n", "1:8: 'http2' must be a boolean (true/false, yes/no, on/off)", "bool given a sequence");
    expect_error("listen: {a: 1}\n", "1:9: 'listen' must be host:port, [ipv6]:port or :port (port 1-65535), or a list of them",
                 "listen given a mapping");
    expect_error("listen:\n  - [':5000']\n", "2:5: 'listen' items must be host:port strings", "listen item given a sequence");
    expect_error("- threads\n", "1:1: the top level must be a mapping of keys", "top level is a sequence");
    expect_error("hello\n", "1:1: the top level must be a mapping of keys", "top level is a scalar");
    expect_error("? [a]\n: 1\n", "1:3: keys must be plain strings", "sequence as a key");

    /* bad values */
    expect_error("listen: ':5000'\nthreads: many\n", "2:10: 'threads' must be an integer 0-1024", "threads not a number");
    expect_error("threads: 1025\n", "1:10: 'threads' must be an integer 0-1024", "threads too large");
    expect_error("threads: -1\n", "1:10: 'threads' must be an integer 0-1024", "threads negative");
    expect_error("threads: 99999999999999999999999\n", "1:10: 'threads' must be an integer 0-1024", "threads overflow");
    expect_error("listen: 'x:0'\n", "1:9: 'listen' must be host:port, [ipv6]:port or :port (port 1-65535), not 'x:0'",
                 "listen port 0");
    expect_error("listen:\n  - ':5000'\n  - ':65536'\n",
                 "3:5: 'listen' must be host:port, [ipv6]:port or :port (port 1-65535), not ':65536'",
                 "listen port too big in list");
    expect_error("listen: 5000\n", "1:9: 'listen' must be host:port, [ipv6]:port or :port (port 1-65535), not '5000'",
                 "listen without colon");
    expect_error("listen: []\n", "1:9: 'listen' must name at least one address", "listen empty list");
    expect_error("listen: [':5000', ':5000']\n", "1:19: 'listen' has ':5000' twice", "listen duplicate address");
    expect_error("limits:\n  max_body_size: 1XB\n",
                 "2:18: 'limits.max_body_size' must be a size above 0 (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)",
                 "size unit unknown");
    expect_error("limits:\n  max_manifest_size: 0\n",
                 "2:22: 'limits.max_manifest_size' must be a size above 0 (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)",
                 "size zero");
    expect_error("limits:\n  max_body_size: -1\n",
                 "2:18: 'limits.max_body_size' must be a size above 0 (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)",
                 "size negative");
    expect_error("limits:\n  max_body_size: 99999999999TiB\n",
                 "2:18: 'limits.max_body_size' must be a size above 0 (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)",
                 "size overflow");
    expect_error("limits:\n  header_size: 512\n",
                 "2:16: 'limits.header_size' must be a size from 1KiB to 1GiB (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)",
                 "header_size too small");
    expect_error("limits:\n  idle_timeout: 5w\n",
                 "2:17: 'limits.idle_timeout' must be a duration of at least 1ms (ms, s, m, h, d; plain number = seconds)",
                 "duration unit unknown");
    expect_error("limits:\n  request_deadline: 0s\n",
                 "2:21: 'limits.request_deadline' must be a duration of at least 1ms (ms, s, m, h, d; plain number = seconds)",
                 "duration zero");
    expect_error("limits:\n  drain_timeout: soon\n",
                 "2:18: 'limits.drain_timeout' must be a duration (ms, s, m, h, d; plain number = seconds)", "duration word");
    expect_error("storage:\n  upload_purge_age: 500ms\n",
                 "2:21: 'storage.upload_purge_age' must be a duration of at least 1s (ms, s, m, h, d; plain number = seconds)",
                 "purge age under a second");
    expect_error("limits:\n  max_connections: 0\n", "2:20: 'limits.max_connections' must be an integer 1-1000000",
                 "max_connections zero");
    expect_error("limits:\n  max_connections_per_client: 1.5\n",
                 "2:31: 'limits.max_connections_per_client' must be an integer 1-1000000", "per-client not an integer");
    expect_error("log:\n  level: loud\n", "2:10: 'log.level' must be one of debug, info, warn, error", "log.level unknown");
    expect_error("log:\n  format: xml\n", "2:11: 'log.format' must be text or json", "log.format unknown");
    expect_error("http2: maybe\n", "1:8: 'http2' must be a boolean (true/false, yes/no, on/off)", "bool word");
    expect_error("storage:\n  fsync: 1\n", "2:10: 'storage.fsync' must be a boolean (true/false, yes/no, on/off)", "bool as 1");
    expect_error("log:\n  access_log:\n", "2:14: 'log.access_log' must be a boolean (true/false, yes/no, on/off)", "bool null");
    expect_error("storage:\n  root: ''\n", "2:9: 'storage.root' must be a non-empty string", "root empty");
    expect_error("storage:\n  root: ~\n", "2:9: 'storage.root' must be a non-empty string", "root null");
    expect_error("storage:\n  root: \"/a\\0b\"\n", "2:9: 'storage.root' must be a non-empty string", "root with NUL");
    expect_error("tls:\n  certificate: [a]\n", "2:16: 'tls.certificate' must be a string", "tls.certificate a sequence");

    /* duplicate keys */
    expect_error("threads: 1\nthreads: 2\n", "2:1: duplicate key 'threads' (first at line 1)", "duplicate top-level key");
    expect_error("storage:\n  root: /a\n  fsync: yes\n  root: /b\n", "4:3: duplicate key 'root' in 'storage' (first at line 2)",
                 "duplicate key in section");
    expect_error("log:\n  level: info\nlog:\n  format: json\n", "3:1: duplicate key 'log' (first at line 1)", "duplicate section");

    /* too many listen entries: the 17th item is the one at fault */
    char yaml[1024] = "listen:\n";
    for (int i = 0; i < BR_CONFIG_MAX_LISTEN + 1; i++)
        snprintf(yaml + strlen(yaml), sizeof(yaml) - strlen(yaml), "  - ':%d'\n", 5000 + i);
    expect_error(yaml, "18:5: 'listen' has more than 16 addresses", "more than BR_CONFIG_MAX_LISTEN listen entries");
    is_int(strlen(yaml) > 0, 1, "17-entry listen list built");

    /* exactly 16 is fine */
    char yaml16[1024] = "listen:\n";
    for (int i = 0; i < BR_CONFIG_MAX_LISTEN; i++)
        snprintf(yaml16 + strlen(yaml16), sizeof(yaml16) - strlen(yaml16), "  - ':%d'\n", 5000 + i);
    br_config_t c;
    char err[512];
    is_int(load(&c, yaml16, err, sizeof(err)), 0, "16 listen entries load");
    is_int(c.num_listen, 16, "16 listen entries kept");
    br_config_dispose(&c);

    /* YAML syntax errors point at libyaml's problem mark */
    expect_error("storage:\n  root: [unclosed\n", "3:1: did not find expected ',' or ']' while parsing a flow sequence",
                 "unclosed flow sequence");
    expect_error("storage:\n  root: /a\n fsync: yes\n", "3:2: did not find expected key while parsing a block mapping",
                 "bad indentation");
    expect_error("threads: 1\n\tlisten: ':5000'\n",
                 "2:1: found a tab character that violates indentation while scanning a plain scalar", "tab indentation");
    expect_error("threads: *nope\n", "1:10: found undefined alias", "undefined alias");
    expect_error("threads: 'open\n", "2:1: found unexpected end of stream while scanning a quoted scalar", "unterminated quote");
    expect_error_n("threads: \xff\n", 11, "1:10: invalid leading UTF-8 octet", "invalid UTF-8");
    expect_error_n("storage:\n  root: /d\xc3\xa9j\xc3\n", 24, "2:14: invalid trailing UTF-8 octet", "truncated UTF-8");
    expect_error_n("threads: 1\n\x01\n", 13, "2:1: control characters are not allowed", "control character");
    expect_error("threads: 1\n---\nthreads: 2\n", "3:1: only one YAML document is allowed", "two documents");

    /* tls pairs */
    expect_error("tls:\n  certificate: /c.pem\n", "2:3: 'tls.certificate' is set but 'tls.key' is not", "certificate without key");
    expect_error("tls:\n  key: /k.pem\n", "2:3: 'tls.key' is set but 'tls.certificate' is not", "key without certificate");
    expect_error("tls:\n  client_ca: /ca.pem\n", "2:3: 'tls.client_ca' is set but 'tls.certificate' is not",
                 "client_ca without certificate");
}

static void test_env(const br_config_t *from_yaml)
{
    br_config_t c;
    char err[512];

    /* Every documented variable, with the values test_every_key wrote in YAML
     * (some spelt differently): both front ends must land on the same config. */
    const char *all[] = {"PATH=/usr/bin",
                         "BERTH_CONFIG=/etc/berth.yaml",
                         "BERTH_LISTEN=127.0.0.1:6000, [::1]:6001",
                         "BERTH_THREADS=8",
                         "BERTH_STORAGE_ROOT=/var/lib/berth",
                         "BERTH_STORAGE_DELETE=false",
                         "BERTH_STORAGE_UPLOAD_PURGE_AGE=5400s",
                         "BERTH_STORAGE_FSYNC=no",
                         "BERTH_LIMITS_MAX_BODY_SIZE=1000000000",
                         "BERTH_LIMITS_MAX_MANIFEST_SIZE=1024KiB",
                         "BERTH_LIMITS_REQUEST_DEADLINE=120m",
                         "BERTH_LIMITS_HEADER_SIZE=16KiB",
                         "BERTH_LIMITS_MAX_CONNECTIONS=100",
                         "BERTH_LIMITS_MAX_CONNECTIONS_PER_CLIENT=10",
                         "BERTH_LIMITS_IDLE_TIMEOUT=1500ms",
                         "BERTH_LIMITS_DRAIN_TIMEOUT=0",
                         "BERTH_LOG_LEVEL=debug",
                         "BERTH_LOG_FORMAT=json",
                         "BERTH_LOG_ACCESS_LOG=off",
                         "BERTH_HTTP2=no",
                         "BERTH_GC_INTERVAL=600",
                         "BERTH_SCRUB_RATE=50000000",
                         "BERTH_GC_GRACE=0s",
                         "BERTH_GC_UNTAGGED=delete",
                         "BERTH_TLS_CERTIFICATE=/etc/berth/cert.pem",
                         "BERTH_TLS_KEY=/etc/berth/key.pem",
                         "BERTH_TLS_CLIENT_CA=/etc/berth/ca.pem",
                         "BERTH=/usr/bin/berth",
                         "NOEQUALS",
                         NULL};
    br_config_init(&c);
    err[0] = 'x';
    is_int(br_config_load_env(&c, (char **)all, err, sizeof(err)), 0, "env: every variable loads");
    if (err[0] != '\0')
        printf("#   %s\n", err);
    const char *diff = config_diff(&c, from_yaml);
    ok(diff == NULL, "env: every variable reaches the same field as its YAML key");
    if (diff != NULL)
        printf("#   differs in %s\n", diff);
    br_config_dispose(&c);

    /* env over a file */
    const char *over[] = {"BERTH_THREADS=16", "BERTH_LIMITS_MAX_BODY_SIZE=1TiB", "BERTH_LISTEN=:9000", NULL};
    is_int(load(&c, "threads: 4\nlisten: [':5000', ':5001']\nlimits:\n  max_body_size: 1GiB\n  max_connections: 7\n", err,
                sizeof(err)),
           0, "env over file: file loads");
    is_int(br_config_load_env(&c, (char **)over, err, sizeof(err)), 0, "env over file: env loads");
    is_int(c.threads, 16, "env overrides file threads");
    is_int(c.limits.max_body_size, 1ULL << 40, "env overrides file size");
    ok(c.num_listen == 1 && c.listen[0].port == 9000, "env listen replaces file listen");
    is_int(c.limits.max_connections, 7, "file value kept where env is silent");
    br_config_dispose(&c);

    /* errors; a failed env load leaves c unchanged */
    static const struct {
        const char *var, *msg;
    } bad[] = {
        {"BERTH_STORAGE_ROT=/x",
         "BERTH_STORAGE_ROT: unknown variable (berth reads BERTH_<SECTION>_<KEY>, e.g. BERTH_STORAGE_ROOT)"},
        {"BERTH_=1", "BERTH_: unknown variable (berth reads BERTH_<SECTION>_<KEY>, e.g. BERTH_STORAGE_ROOT)"},
        {"BERTH_threads=1", "BERTH_threads: unknown variable (berth reads BERTH_<SECTION>_<KEY>, e.g. BERTH_STORAGE_ROOT)"},
        {"BERTH_STORAGE=1", "BERTH_STORAGE: unknown variable (berth reads BERTH_<SECTION>_<KEY>, e.g. BERTH_STORAGE_ROOT)"},
        {"BERTH_THREADS=x", "BERTH_THREADS: 'threads' must be an integer 0-1024"},
        {"BERTH_THREADS=", "BERTH_THREADS: 'threads' must be an integer 0-1024"},
        {"BERTH_LISTEN=:5000,", "BERTH_LISTEN: 'listen' must be host:port, [ipv6]:port or :port (port 1-65535), not ''"},
        {"BERTH_LISTEN=:5000,:5000", "BERTH_LISTEN: 'listen' has ':5000' twice"},
        {"BERTH_LIMITS_MAX_BODY_SIZE=1XB",
         "BERTH_LIMITS_MAX_BODY_SIZE: 'limits.max_body_size' must be a size above 0 (bytes, or KiB/MiB/GiB/TiB, "
         "KB/MB/GB/TB)"},
        {"BERTH_LOG_LEVEL=trace", "BERTH_LOG_LEVEL: 'log.level' must be one of debug, info, warn, error"},
        {"BERTH_HTTP2=2", "BERTH_HTTP2: 'http2' must be a boolean (true/false, yes/no, on/off)"},
        {"BERTH_STORAGE_ROOT=", "BERTH_STORAGE_ROOT: 'storage.root' must be a non-empty string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *envp[] = {"BERTH_THREADS=2", bad[i].var, NULL};
        br_config_init(&c);
        is_int(br_config_load_env(&c, (char **)envp, err, sizeof(err)), BR_E_CONFIG, "env '%s' fails", bad[i].var);
        is_str(err, bad[i].msg, "env '%s' message", bad[i].var);
        ok(is_default(&c), "env '%s' leaves config unchanged", bad[i].var);
        br_config_dispose(&c);
    }

    br_config_init(&c);
    is_int(br_config_load_env(&c, NULL, err, sizeof(err)), 0, "env: NULL envp is nothing to do");
    ok(is_default(&c), "env: NULL envp leaves defaults");
    br_config_dispose(&c);

    /* an empty value unsets an optional string from the file */
    const char *unset[] = {"BERTH_TLS_KEY=", NULL};
    is_int(load(&c, "tls:\n  certificate: /c\n  key: /k\n", err, sizeof(err)), 0, "tls from file");
    is_int(br_config_load_env(&c, (char **)unset, err, sizeof(err)), 0, "BERTH_TLS_KEY= loads");
    ok(c.tls.key == NULL, "BERTH_TLS_KEY= unsets tls.key");
    is_int(br_config_validate(&c, err, sizeof(err)), BR_E_CONFIG, "validate: certificate left without key");
    is_str(err, "'tls.certificate' is set but 'tls.key' is not", "validate message");
    br_config_dispose(&c);

    /* the pair may come half from the environment */
    const char *pair[] = {"BERTH_TLS_CERTIFICATE=/c", "BERTH_TLS_KEY=/k", NULL};
    br_config_init(&c);
    is_int(br_config_load_env(&c, (char **)pair, err, sizeof(err)), 0, "tls pair from env");
    is_int(br_config_validate(&c, err, sizeof(err)), 0, "tls pair validates");
    br_config_dispose(&c);
    const char *ca_only[] = {"BERTH_TLS_CLIENT_CA=/ca", NULL};
    br_config_init(&c);
    is_int(br_config_load_env(&c, (char **)ca_only, err, sizeof(err)), 0, "client_ca alone loads from env");
    is_int(br_config_validate(&c, err, sizeof(err)), BR_E_CONFIG, "client_ca alone fails validation");
    is_str(err, "'tls.client_ca' is set but 'tls.certificate' is not", "client_ca validate message");
    br_config_dispose(&c);
}

/* Every key of the table has a row and an environment name; the test above
 * covers each variable, and this catches a row added without one. */
static void test_table(void)
{
    size_t n = 0;
    for (const br_config_key_t *k = br_config_keys; k->name != NULL; k++)
        n++;
    is_int(n, BR_CONFIG_NUM_KEYS, "table has BR_CONFIG_NUM_KEYS rows");
    char buf[128];
    is_str(br_config__env_name(br_config__find("limits", "max_connections_per_client", 26), buf, sizeof(buf)),
           "BERTH_LIMITS_MAX_CONNECTIONS_PER_CLIENT", "env name derived from section and key");
    is_str(br_config__env_name(br_config__find(NULL, "http2", 5), buf, sizeof(buf)), "BERTH_HTTP2", "env name of a top-level key");
}

static void test_example(void)
{
    const char *srcdir = getenv("top_srcdir");
    char path[1024], err[512];
    if (srcdir != NULL) {
        snprintf(path, sizeof(path), "%s/config/berth.example.yaml", srcdir);
    } else {
        /* Run by hand: find the source tree from this file's path. */
        snprintf(path, sizeof(path), "%s", __FILE__);
        char *slash = strstr(path, "tests/config/config_test.c");
        snprintf(slash != NULL ? slash : path, sizeof(path) - (size_t)((slash != NULL ? slash : path) - path),
                 "config/berth.example.yaml");
    }
    br_config_t c;
    br_config_init(&c);
    int ret = br_config_load_file(&c, path, err, sizeof(err));
    is_int(ret, 0, "example file loads");
    if (ret != 0)
        printf("#   %s\n", err);
    ok(is_default(&c), "example file = defaults");
    br_config_dispose(&c);

    /* ... and names every key, so it documents the whole table. */
    FILE *fp = fopen(path, "rb");
    char text[16384];
    size_t len = fp != NULL ? fread(text, 1, sizeof(text) - 1, fp) : 0;
    text[len] = '\0';
    if (fp != NULL)
        fclose(fp);
    for (const br_config_key_t *k = br_config_keys; k->name != NULL; k++) {
        char needle[128];
        const char *at = text;
        if (k->section != NULL && strncmp(k->section, "auth", 4) == 0) {
            /* The auth section is documented commented out (it is off by default). */
            at = strstr(text, "\n# auth:\n");
            if (at != NULL && strcmp(k->section, "auth.token") == 0)
                at = strstr(at, "\n#   token:\n");
            snprintf(needle, sizeof(needle), "\n#%*s%s:", strcmp(k->section, "auth") == 0 ? 3 : 5, "", k->name);
        } else if (k->section != NULL) {
            snprintf(needle, sizeof(needle), "\n%s:\n", k->section);
            at = strstr(text, needle);
            snprintf(needle, sizeof(needle), "\n  %s:", k->name);
        } else {
            snprintf(needle, sizeof(needle), "\n%s:", k->name);
        }
        const char *found = at != NULL ? strstr(at, needle) : NULL;
        char name[128];
        ok(found != NULL, "example file names '%s'", br_config__display(k, name, sizeof(name)));
    }
}

/* The auth section: every key, the rule lists, errors with positions, the
 * environment, and the cross-field checks. */
static void test_auth(void)
{
    static const char yaml[] = "auth:\n"
                               "  realm: reg\n"
                               "  htpasswd: /etc/berth/htpasswd\n"
                               "  bcrypt_cost: 12\n"
                               "  max_failures: 3\n"
                               "  failure_window: 30s\n"
                               "  admin_group: admins\n"
                               "  groups:\n"
                               "    admins: [alice]\n"
                               "    ci: buildbot\n"
                               "    empty:\n"
                               "  anonymous: [{repository: \"public/**\", actions: [pull]}]\n"
                               "  rules:\n"
                               "    - {repository: \"team/**\", users: [bob], groups: [ci], actions: [pull, push]}\n"
                               "    - repository: \"**\"\n"
                               "      groups: [ci]\n"
                               "      actions: ['*']\n"
                               "    - {repository: \"secret/*\", actions: []}\n"
                               "  token:\n"
                               "    realm: https://r.example/token\n"
                               "    path: /token\n"
                               "    service: r.example\n"
                               "    issuer: me\n"
                               "    key: /k.pem\n"
                               "    certificate: /c.pem\n"
                               "    expiration: 10m\n"
                               "    trusted_certificates: /ca.pem\n"
                               "    jwks: /jwks.json\n"
                               "    leeway: 5s\n";
    br_config_t c, copy;
    char err[512] = "";
    is_int(load(&c, yaml, err, sizeof(err)), 0, "auth: every key loads");
    if (err[0] != '\0')
        printf("#   %s\n", err);
    is_int(c.auth.enabled, 1, "auth: enabled by the section");
    is_str(c.auth.realm, "reg", "auth.realm");
    is_str(c.auth.htpasswd, "/etc/berth/htpasswd", "auth.htpasswd");
    is_int(c.auth.bcrypt_cost, 12, "auth.bcrypt_cost");
    is_int(c.auth.max_failures, 3, "auth.max_failures");
    is_int(c.auth.failure_window_ms, 30000, "auth.failure_window");
    is_str(c.auth.admin_group, "admins", "auth.admin_group");
    is_int(c.auth.num_groups, 3, "auth.groups: three");
    ok(c.auth.num_groups == 3 && c.auth.groups[1].num_members == 1 && strcmp(c.auth.groups[1].members[0], "buildbot") == 0,
       "auth.groups: one string is a one-member list");
    ok(c.auth.num_groups == 3 && c.auth.groups[2].num_members == 0, "auth.groups: null is empty");
    ok(c.auth.num_anonymous == 1 && strcmp(c.auth.anonymous[0].repository, "public/**") == 0 &&
           c.auth.anonymous[0].actions == BR_ACTION_PULL,
       "auth.anonymous");
    is_int(c.auth.num_rules, 3, "auth.rules: three");
    ok(c.auth.num_rules == 3 && c.auth.rules[0].num_users == 1 && c.auth.rules[0].num_groups == 1 &&
           c.auth.rules[0].actions == (BR_ACTION_PULL | BR_ACTION_PUSH),
       "auth.rules[0]");
    ok(c.auth.num_rules == 3 && c.auth.rules[1].actions == BR_ACTION_ALL && c.auth.rules[1].num_users == 0, "auth.rules[1]: *");
    ok(c.auth.num_rules == 3 && c.auth.rules[2].actions == 0, "auth.rules[2]: no actions");
    is_str(c.auth.token.realm, "https://r.example/token", "auth.token.realm");
    is_str(c.auth.token.path, "/token", "auth.token.path");
    is_str(c.auth.token.service, "r.example", "auth.token.service");
    is_str(c.auth.token.issuer, "me", "auth.token.issuer");
    is_str(c.auth.token.key, "/k.pem", "auth.token.key");
    is_str(c.auth.token.certificate, "/c.pem", "auth.token.certificate");
    is_int(c.auth.token.expiration_s, 600, "auth.token.expiration");
    is_str(c.auth.token.trusted_certificates, "/ca.pem", "auth.token.trusted_certificates");
    is_str(c.auth.token.jwks, "/jwks.json", "auth.token.jwks");
    is_int(c.auth.token.leeway_s, 5, "auth.token.leeway");
    is_int(br_config_validate(&c, err, sizeof(err)), 0, "auth: validates");
    br_config__copy(&copy, &c);
    ok(config_diff(&copy, &c) == NULL && copy.auth.rules != c.auth.rules && strcmp(copy.auth.rules[0].users[0], "bob") == 0,
       "auth: deep copy");
    br_config_dispose(&copy);

    /* the environment sets the scalars, and refuses the lists */
    const char *envp[] = {"BERTH_AUTH_TOKEN_LEEWAY=7s", "BERTH_AUTH_REALM=env", NULL};
    is_int(br_config_load_env(&c, (char **)envp, err, sizeof(err)), 0, "auth: env over file");
    ok(c.auth.token.leeway_s == 7 && strcmp(c.auth.realm, "env") == 0 && c.auth.num_rules == 3, "auth: env values, lists kept");
    br_config_dispose(&c);
    const char *rules_env[] = {"BERTH_AUTH_RULES=x", NULL};
    br_config_init(&c);
    is_int(br_config_load_env(&c, (char **)rules_env, err, sizeof(err)), BR_E_CONFIG, "auth: BERTH_AUTH_RULES refused");
    is_str(err, "BERTH_AUTH_RULES: 'auth.rules' can only be set in the YAML file", "auth: BERTH_AUTH_RULES message");
    br_config_dispose(&c);
    const char *ret_env[] = {"BERTH_RETENTION=x", NULL};
    br_config_init(&c);
    is_int(br_config_load_env(&c, (char **)ret_env, err, sizeof(err)), BR_E_CONFIG, "BERTH_RETENTION refused");
    is_str(err, "BERTH_RETENTION: 'retention' can only be set in the YAML file", "BERTH_RETENTION message");
    br_config_dispose(&c);
    const char *one_env[] = {"BERTH_AUTH_HTPASSWD=/h", NULL};
    br_config_init(&c);
    is_int(c.auth.enabled, 0, "auth: off by default");
    is_int(br_config_load_env(&c, (char **)one_env, err, sizeof(err)), 0, "auth: BERTH_AUTH_HTPASSWD loads");
    is_int(c.auth.enabled, 1, "auth: any BERTH_AUTH_ variable turns auth on");
    br_config_dispose(&c);

    is_int(load(&c, "auth: {}\n", err, sizeof(err)), 0, "auth: empty mapping loads");
    is_int(c.auth.enabled, 1, "auth: empty mapping turns auth on");
    br_config_dispose(&c);
    is_int(load(&c, "auth:\n", err, sizeof(err)), 0, "auth: null section loads");
    ok(is_default(&c), "auth: null section is no section");
    br_config_dispose(&c);

    expect_error("auth:\n  relm: x\n", "2:3: unknown key 'relm' in 'auth'", "auth: unknown key");
    expect_error("auth:\n  token:\n    rlm: x\n", "3:5: unknown key 'rlm' in 'auth.token'", "auth.token: unknown key");
    expect_error("token:\n  realm: x\n", "1:1: unknown key 'token'", "auth.token at top level");
    expect_error("auth:\n  token: 5\n", "2:10: 'auth.token' must be a mapping", "auth.token a scalar");
    expect_error("auth:\n  bcrypt_cost: 3\n", "2:16: 'auth.bcrypt_cost' must be an integer 4-31", "auth.bcrypt_cost too small");
    expect_error("auth:\n  token:\n    expiration: 2d\n",
                 "3:17: 'auth.token.expiration' must be a duration from 1s to 86400s (ms, s, m, h, d; plain number = seconds)",
                 "auth.token.expiration too long");
    expect_error("auth:\n  rules: 5\n", "2:10: 'auth.rules' must be a list of {repository, users, groups, actions} mappings",
                 "auth.rules a scalar");
    expect_error("auth:\n  rules: [5]\n", "2:11: 'auth.rules' items must be mappings", "auth.rules item a scalar");
    expect_error("immutable:\n  - {repository: a}\n", "2:5: 'immutable' item needs 'tags'", "immutable rule without tags");
    expect_error("immutable:\n  - {repository: a, tags: [v*], actions: [pull]}\n", "2:33: unknown key 'actions' in 'immutable' item",
                 "immutable rule with actions");
    expect_error("immutable:\n  - {repository: a, tags: [\"v/1\"]}\n",
                 "2:27: 'tags' must be tag globs ([A-Za-z0-9_.-] and '*', at most 128), not 'v/1'", "immutable: a bad tag glob");
    expect_error("scrub:\n  rate: fast\n", "2:9: 'scrub.rate' must be a rate: a size per second such as 50MB/s (0 = off)",
                 "scrub.rate not a rate");
    expect_error("retention:\n  - {repository: a, protect: [v*]}\n",
                 "2:5: 'retention' item needs 'keep_last' or 'keep_days' (with neither, the rule would keep every tag)",
                 "retention rule with neither keep");
    expect_error("retention:\n  - {repository: a, keep_last: 2.5}\n", "2:32: 'keep_last' must be a whole number from 0 to 1000000000",
                 "retention keep_last not a whole number");
    expect_error("retention:\n  - {repository: a, keep_days: 36501}\n", "2:32: 'keep_days' must be a whole number from 0 to 36500",
                 "retention keep_days beyond 100 years");
    expect_error("retention:\n  - {repository: a, keep_last: 1, tags: [v*]}\n", "2:35: unknown key 'tags' in 'retention' item",
                 "retention takes protect, not tags");
    expect_error("retention:\n  - {repository: a, keep_last: 1, protect: [\"v/1\"]}\n",
                 "2:44: 'protect' must be tag globs ([A-Za-z0-9_.-] and '*', at most 128), not 'v/1'", "retention: a bad protect glob");
    expect_error("immutable: v*\n", "1:12: 'immutable' must be a list of {repository, tags} mappings", "immutable a scalar");
    expect_error("auth:\n  rules:\n    - {actions: [pull]}\n", "3:7: 'auth.rules' item needs 'repository'", "rule without repository");
    expect_error("auth:\n  rules:\n    - {repository: a}\n", "3:7: 'auth.rules' item needs 'actions'", "rule without actions");
    expect_error("auth:\n  rules:\n    - {repository: a, actions: [pull, pul]}\n",
                 "3:32: 'actions' must be pull, push, delete or *, not 'pul'", "rule with a bad action");
    expect_error("auth:\n  rules:\n    - {repository: A, actions: [pull]}\n",
                 "3:20: 'repository' must be a repository glob ([a-z0-9._/-], '*' within a path component, '**' across)",
                 "rule with a bad glob");
    expect_error("auth:\n  rules:\n    - {repository: 'a/***', actions: [pull]}\n",
                 "3:20: 'repository' must be a repository glob ([a-z0-9._/-], '*' within a path component, '**' across)",
                 "rule with ***");
    expect_error("auth:\n  rules:\n    - {repository: a, actions: [pull], user: [x]}\n",
                 "3:40: unknown key 'user' in 'auth.rules' item", "rule with an unknown key");
    expect_error("auth:\n  rules:\n    - {repository: a, repository: b, actions: [pull]}\n",
                 "3:23: duplicate key 'repository' in 'auth.rules' item (first at line 3)", "rule with a duplicate key");
    expect_error("auth:\n  rules:\n    - {repository: a, users: [[x]], actions: [pull]}\n",
                 "3:31: 'users' must be a non-empty string or a list of them", "rule with a nested user list");
    expect_error("auth:\n  anonymous:\n    - {repository: a, users: [x], actions: [pull]}\n",
                 "3:23: unknown key 'users' in 'auth.anonymous' item", "anonymous rule with users");
    expect_error("auth:\n  groups: [a]\n", "2:11: 'auth.groups' must be a mapping of group names to lists of user names",
                 "groups a sequence");
    expect_error("auth:\n  groups:\n    a: [x]\n    a: [y]\n", "4:5: duplicate group 'a' in 'auth.groups' (first at line 3)",
                 "duplicate group");
    expect_error("auth:\n  admin_group: admins\n", "2:3: 'auth.admin_group' names group 'admins', which 'auth.groups' does not define",
                 "admin_group undefined");
    expect_error("auth:\n  groups: {a: [x]}\n  rules:\n    - {repository: a, groups: [b], actions: [pull]}\n",
                 "3:3: 'auth.rules' names group 'b', which 'auth.groups' does not define", "rule group undefined");
    expect_error("auth:\n  token:\n    realm: https://x/t\n    key: /k\n",
                 "3:5: 'auth.token.realm' is set but 'auth.token.service' is not", "token realm without service");
    expect_error("auth:\n  token:\n    realm: https://x/t\n    service: x\n",
                 "3:5: 'auth.token.realm' is set but 'auth.token.key' is not", "token realm without any key");
    expect_error("auth:\n  token:\n    key: /k\n", "3:5: 'auth.token.key' is set but 'auth.token.realm' is not",
                 "token key without realm");
    expect_error("auth:\n  token:\n    realm: https://x/t\n    service: x\n    jwks: /j\n    path: /t\n",
                 "6:5: 'auth.token.path' is set but 'auth.token.key' is not", "token path without key");
    expect_error("auth:\n  token:\n    realm: https://x/t\n    service: x\n    key: /k\n    path: token\n",
                 "6:5: 'auth.token.path' must start with '/'", "token path relative");
}

/* br_config_check_files: every file key opens, the root can be made, and the
 * message points at where the value came from (file position, variable, flag,
 * default). Nothing is created. */
static void test_check_files(void)
{
    char err[1024], want[1024], path[300], root[300];
    br_config_t c;
    snprintf(path, sizeof(path), "%s/present.pem", tmpdir);
    write_file(path, "x\n", 2);
    snprintf(root, sizeof(root), "%s/store", tmpdir);

    char yaml[1024];
    snprintf(yaml, sizeof(yaml), "storage:\n  root: %s\ntls:\n  certificate: %s\n  key: %s/absent.pem\n", root, path, tmpdir);
    is_int(load(&c, yaml, err, sizeof(err)), 0, "check_files: config loads (files are not opened by the loader)");
    is_int(br_config_check_files(&c, err, sizeof(err)), BR_E_CONFIG, "check_files: a missing tls.key is refused");
    snprintf(want, sizeof(want), "%s:5:3: tls.key: %s/absent.pem: No such file or directory", yaml_path, tmpdir);
    is_str(err, want, "check_files: file:line:col of the key, key, path, OS reason");

    char var[400], *envp[] = {var, NULL};
    snprintf(var, sizeof(var), "BERTH_TLS_KEY=%s", path);
    is_int(br_config_load_env(&c, envp, err, sizeof(err)), 0, "check_files: the environment overrides the key");
    is_int(br_config_check_files(&c, err, sizeof(err)), 0, "check_files: every named file opens, the root can be made");
    ok(access(root, F_OK) != 0, "check_files: the root was not created");

    snprintf(var, sizeof(var), "BERTH_TLS_CLIENT_CA=%s", tmpdir);
    is_int(br_config_load_env(&c, envp, err, sizeof(err)), 0, "check_files: client_ca from the environment");
    is_int(br_config_check_files(&c, err, sizeof(err)), BR_E_CONFIG, "check_files: a directory is no file");
    snprintf(want, sizeof(want), "BERTH_TLS_CLIENT_CA: tls.client_ca: %s: Is a directory", tmpdir);
    is_str(err, want, "check_files: the variable names the source");
    free(c.tls.client_ca);
    c.tls.client_ca = NULL;

    free(c.storage.root);
    snprintf(root, sizeof(root), "%s/no/store", tmpdir);
    c.storage.root = strdup(root);
    br_config_set_origin(&c, "storage", "root", BR_CONFIG_FROM_FLAG);
    is_int(br_config_check_files(&c, err, sizeof(err)), BR_E_CONFIG, "check_files: a root whose parent is missing");
    snprintf(want, sizeof(want), "command line: storage.root: %s: No such file or directory", root);
    is_str(err, want, "check_files: a flag names the command line");
    free(c.storage.root);
    c.storage.root = strdup(path);
    c.origin[br_config__find("storage", "root", 4) - br_config_keys].source = BR_CONFIG_FROM_DEFAULT;
    is_int(br_config_check_files(&c, err, sizeof(err)), BR_E_CONFIG, "check_files: a root that is a file");
    snprintf(want, sizeof(want), "storage.root: %s: Not a directory", path);
    is_str(err, want, "check_files: a default is named by its key alone");
    br_config_dispose(&c);
    unlink(path);
}

/* br_config_keep_restart_keys: what a reload may not change is reported with
 * its position and put back; everything else stays as the new file says. */
static char restart_report[8][256];
static size_t restart_reports;
static void on_restart(void *ctx, const char *where)
{
    (void)ctx;
    if (restart_reports < 8)
        snprintf(restart_report[restart_reports++], sizeof(restart_report[0]), "%s", where);
}

static void test_restart_keys(void)
{
    char err[1024], want[600];
    br_config_t old, nw;
    is_int(load(&old, "listen: \"127.0.0.1:5000\"\nstorage:\n  root: /a\n  delete: true\nlimits:\n  max_body_size: 1GiB\n", err,
                sizeof(err)),
           0, "restart keys: old config loads");
    is_int(load(&nw,
                "listen: [\"127.0.0.1:5000\", \":5001\"]\nstorage:\n  root: /b\n  delete: false\nlimits:\n  max_body_size: 2GiB\n"
                "log:\n  level: warn\n",
                err, sizeof(err)),
           0, "restart keys: new config loads");
    restart_reports = 0;
    is_int((int)br_config_keep_restart_keys(&old, &nw, on_restart, NULL), 3, "restart keys: three changed");
    is_int((int)restart_reports, 3, "restart keys: each reported once");
    snprintf(want, sizeof(want), "%s:1:1: listen", yaml_path);
    is_str(restart_report[0], want, "restart keys: listen, with its position in the new file");
    snprintf(want, sizeof(want), "%s:3:3: storage.root", yaml_path);
    is_str(restart_report[1], want, "restart keys: storage.root");
    snprintf(want, sizeof(want), "%s:6:3: limits.max_body_size", yaml_path);
    is_str(restart_report[2], want, "restart keys: limits.max_body_size");
    ok(nw.num_listen == 1 && nw.listen[0].port == 5000 && strcmp(nw.listen[0].host, "127.0.0.1") == 0,
       "restart keys: listen put back");
    is_str(nw.storage.root, "/a", "restart keys: storage.root put back");
    ok(nw.limits.max_body_size == 1ULL << 30, "restart keys: max_body_size put back");
    ok(nw.storage.delete_enabled == 0 && nw.log.level == BR_LOG_WARN, "restart keys: reloadable keys keep their new values");
    restart_reports = 0;
    is_int((int)br_config_keep_restart_keys(&old, &nw, on_restart, NULL), 0, "restart keys: nothing left to report");
    br_config_dispose(&old);
    br_config_dispose(&nw);
}

/* notifications.endpoints: every field, the defaults, and errors at their position. */
static void test_endpoints(void)
{
    char err[1024], want[600];
    br_config_t c;
    is_int(load(&c,
                "notifications:\n"
                "  queue_size: 5\n"
                "  endpoints:\n"
                "    - name: a\n"
                "      url: http://127.0.0.1:9/x\n"
                "      headers: {Authorization: [Bearer t, two], X-One: v}\n"
                "      timeout: 250ms\n"
                "      threshold: 3\n"
                "      backoff: 2s\n"
                "      format: cloudevents\n"
                "      disabled: true\n"
                "      ignoredmediatypes: [m1]\n"
                "      ignore: {mediatypes: m2, actions: [pull, mount]}\n"
                "    - {name: b, url: \"https://h/\"}\n",
                err, sizeof(err)),
           0, "endpoints: every field loads");
    br_config_endpoint_t *e = c.notifications.endpoints;
    ok(c.notifications.num_endpoints == 2 && c.notifications.queue_size == 5, "endpoints: two, queue_size 5");
    is_str(e[0].name, "a", "endpoints: name");
    is_str(e[0].url, "http://127.0.0.1:9/x", "endpoints: url");
    ok(e[0].num_headers == 3 && strcmp(e[0].headers[0], "Authorization: Bearer t") == 0 &&
           strcmp(e[0].headers[1], "Authorization: two") == 0 && strcmp(e[0].headers[2], "X-One: v") == 0,
       "endpoints: headers, a list giving one line each");
    ok(e[0].timeout_ms == 250 && e[0].threshold == 3 && e[0].backoff_ms == 2000 && e[0].cloudevents && e[0].disabled,
       "endpoints: timeout, threshold, backoff, format, disabled");
    ok(e[0].num_ignored_media_types == 2 && strcmp(e[0].ignored_media_types[1], "m2") == 0 &&
           e[0].ignored_actions == (BR_EVENT_PULL | BR_EVENT_MOUNT),
       "endpoints: ignoredmediatypes and ignore together");
    ok(e[1].timeout_ms == 1000 && e[1].threshold == 10 && e[1].backoff_ms == 1000 && !e[1].cloudevents && !e[1].disabled &&
           e[1].num_headers == 0,
       "endpoints: defaults");
    br_config_t copy;
    br_config__copy(&copy, &c);
    ok(copy.notifications.endpoints != e && strcmp(copy.notifications.endpoints[0].headers[2], "X-One: v") == 0,
       "endpoints: deep copy");
    br_config_dispose(&copy);
    br_config_dispose(&c);

    static const struct {
        const char *yaml, *msg;
    } bad[] = {
        {"notifications:\n  endpoints:\n    - {name: a}\n", "3:7: 'notifications.endpoints' item needs 'url'"},
        {"notifications:\n  endpoints:\n    - {url: \"http://h/\"}\n", "3:7: 'notifications.endpoints' item needs 'name'"},
        {"notifications:\n  endpoints:\n    - {name: a, url: \"ftp://h/\"}\n", "3:22: 'url' must be an http:// or https:// URL"},
        {"notifications:\n  endpoints:\n    - {name: a, url: \"https:///x\"}\n", "3:22: 'url' must be an http:// or https:// URL"},
        {"notifications:\n  endpoints:\n    - {name: a, url: \"http://h/\", format: xml}\n",
         "3:43: 'format' must be distribution or cloudevents"},
        {"notifications:\n  endpoints:\n    - {name: a, url: \"http://h/\"}\n    - {name: a, url: \"http://i/\"}\n",
         "4:7: duplicate endpoint name 'a'"},
        {"notifications:\n  endpoints:\n    - {name: a, url: \"http://h/\", ignore: {actions: [fetch]}}\n",
         "3:53: 'ignore.actions' must be push, pull, delete or mount, not 'fetch'"},
        {"notifications:\n  endpoints:\n    - {name: a, url: \"http://h/\", retries: 3}\n",
         "3:35: unknown key 'retries' in 'notifications.endpoints' item"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        is_int(load(&c, bad[i].yaml, err, sizeof(err)), BR_E_CONFIG, "endpoints: bad item %zu fails", i);
        snprintf(want, sizeof(want), "%s:%s", yaml_path, bad[i].msg);
        is_str(err, want, "endpoints: bad item %zu: message and position", i);
        ok(c.notifications.num_endpoints == 0, "endpoints: bad item %zu: config unchanged", i);
        br_config_dispose(&c);
    }
    char *envp[] = {(char *)"BERTH_NOTIFICATIONS_ENDPOINTS=x", NULL};
    br_config_init(&c);
    is_int(br_config_load_env(&c, envp, err, sizeof(err)), BR_E_CONFIG, "endpoints: not from the environment");
    br_config_dispose(&c);
}

/* quotas: {repository, max_bytes} items, one without repository (the global
 * limit); sizes as the other size keys; bad items refused with positions. */
static void test_quotas(void)
{
    br_config_t c, copy;
    char err[512] = "";
    is_int(load(&c,
                "quotas:\n"
                "  - {repository: \"team/**\", max_bytes: 50GiB}\n"
                "  - repository: ci/*\n"
                "    max_bytes: 1500MB\n"
                "  - {max_bytes: 1TiB}\n",
                err, sizeof(err)),
           0, "quotas: loads");
    ok(c.num_quotas == 3 && strcmp(c.quotas[0].repository, "team/**") == 0 && c.quotas[0].max_bytes == 50ULL << 30 &&
           strcmp(c.quotas[1].repository, "ci/*") == 0 && c.quotas[1].max_bytes == 1500000000ULL && c.quotas[2].repository == NULL &&
           c.quotas[2].max_bytes == 1ULL << 40,
       "quotas: three items, the last the global limit");
    br_config__copy(&copy, &c);
    ok(copy.num_quotas == 3 && copy.quotas != c.quotas && copy.quotas[0].repository != c.quotas[0].repository &&
           strcmp(copy.quotas[1].repository, "ci/*") == 0 && copy.quotas[2].repository == NULL,
       "quotas: deep copy");
    br_config_dispose(&copy);
    br_config_dispose(&c);
    expect_error("quotas: 5\n", "1:9: 'quotas' must be a list of {repository, max_bytes} mappings", "quotas a scalar");
    expect_error("quotas: [5]\n", "1:10: 'quotas' items must be mappings", "quotas item a scalar");
    expect_error("quotas:\n  - {repository: a}\n", "2:5: 'quotas' item needs 'max_bytes'", "quota without max_bytes");
    expect_error("quotas:\n  - {repository: a, max_bytes: lots}\n",
                 "2:32: 'max_bytes' must be a size (bytes, or KiB/MiB/GiB/TiB, KB/MB/GB/TB)", "quota with a bad size");
    expect_error("quotas:\n  - {repository: \"A/b\", max_bytes: 1}\n",
                 "2:18: 'repository' must be a repository glob ([a-z0-9._/-], '*' within a path component, '**' across)",
                 "quota with a bad glob");
    expect_error("quotas:\n  - {repository: a, max_bytes: 1, tags: [x]}\n", "2:35: unknown key 'tags' in 'quotas' item",
                 "quota with an unknown key");
    expect_error("quotas:\n  - {max_bytes: 1}\n  - {max_bytes: 2}\n",
                 "3:5: a second global quota (an item without 'repository')", "two global quotas");
    expect_error("quotas:\n  - {repository: a, max_bytes: 1}\n  - {repository: a, max_bytes: 2}\n",
                 "3:5: a second quota for repository 'a'", "two quotas for one glob");
    char env_err[256];
    const char *envp[] = {"BERTH_QUOTAS=x", NULL};
    br_config_init(&c);
    is_int(br_config_load_env(&c, (char **)envp, env_err, sizeof(env_err)), BR_E_CONFIG, "BERTH_QUOTAS: refused (YAML only)");
    br_config_dispose(&c);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(yaml_path, sizeof(yaml_path), "%s/berth.yaml", tmpdir);

    test_defaults();
    test_parse_listen();
    test_parse_size();
    test_parse_duration();
    br_config_t every;
    test_every_key(&every);
    test_value_forms();
    test_errors();
    test_env(&every);
    br_config_dispose(&every);
    test_table();
    test_example();
    test_auth();
    test_check_files();
    test_restart_keys();
    test_endpoints();
    test_quotas();

    unlink(yaml_path);
    rmdir(tmpdir);
    return tap_done();
}
