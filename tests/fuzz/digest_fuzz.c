/*
 * Fuzz target: br_digest_parse (with a format round trip), br_name_valid,
 * br_tag_valid and br_target_split (absolute-form request targets), each fed
 * the raw input and checked against a slow reference of the properties that
 * must hold.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "common/br.h"
#include "tests/fuzz/fuzz.h"

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "digest_fuzz: invariant violated: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    br_str_t s = br_str((const char *)data, size);
    br_digest_t d;

    if (br_digest_parse(&d, s) == 0) {
        char buf[BR_DIGEST_MAX + 1];
        size_t n = br_digest_format(&d, buf);
        check(n == size && memcmp(buf, data, size) == 0, "digest formats back to its input");
        check(d.hex_len == (d.alg == BR_ALG_SHA512 ? 128 : 64), "hex length matches algorithm");
    }

    if (br_name_valid(s)) {
        check(size != 0 && size <= BR_NAME_MAX, "name length");
        for (size_t i = 0; i < size; i++) {
            char c = (char)data[i];
            check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c != '\0' && strchr("._-/", c) != NULL),
                  "name alphabet");
        }
        check(data[0] != '/' && data[size - 1] != '/' && memmem(data, size, "//", 2) == NULL, "name slashes");
        check(memmem(data, size, "___", 3) == NULL && memmem(data, size, "..", 2) == NULL, "name separators");
    }

    if (br_tag_valid(s)) {
        check(size != 0 && size <= BR_TAG_MAX, "tag length");
        check(data[0] != '.' && data[0] != '-', "tag first character");
        for (size_t i = 0; i < size; i++)
            check(data[i] != '/' && data[i] != ':' && data[i] != '@' && data[i] != '\0', "tag alphabet");
    }

    br_str_t authority, origin;
    if (br_target_split(s, &authority, &origin) == 0) {
        /* "<scheme>://" authority origin, all pointing into the input */
        check(authority.base >= s.base && origin.base == authority.base + authority.len &&
                  origin.base + origin.len == s.base + size,
              "target parts tile the input");
        size_t scheme = (size_t)(authority.base - s.base);
        check((scheme == 7 && strncasecmp((const char *)data, "http://", 7) == 0) ||
                  (scheme == 8 && strncasecmp((const char *)data, "https://", 8) == 0),
              "target scheme is http or https");
        check(authority.len != 0 && authority.base[0] != ':', "target has a host");
        check(origin.len == 0 || origin.base[0] == '/' || origin.base[0] == '?', "origin part is a path or a query");
        for (size_t i = 0; i < authority.len; i++)
            check(strchr("@/?#\\\"", authority.base[i]) == NULL && authority.base[i] > 0x20, "authority alphabet");
        for (size_t i = 0; i < size; i++)
            check(data[i] > 0x20 && data[i] < 0x7f && data[i] != '#', "target bytes");
    }
    return 0;
}
