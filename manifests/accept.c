/*
 * Accept header matching for manifest GET/HEAD (RFC 9110 12.5.1), reduced to
 * the question a registry asks: may this stored manifest type be served?
 *
 * When several ranges match, the most specific one decides (an exact type over
 * "type/any" over "any/any" wildcards), so "<any/any>, <index type>;q=0" refuses
 * indexes. Only q=0 refuses; other weights do not matter here because
 * a manifest exists in exactly one type and is never converted.
 */
#include <string.h>
#include <strings.h>
#include "manifests/manifest.h"

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static br_str_t trim(br_str_t s)
{
    while (s.len != 0 && is_ows(s.base[0])) {
        s.base++;
        s.len--;
    }
    while (s.len != 0 && is_ows(s.base[s.len - 1]))
        s.len--;
    return s;
}

/* Splits *rest at the first sep: returns the part before it (trimmed) and
 * leaves *rest after it. */
static br_str_t next_token(br_str_t *rest, char sep)
{
    const char *p = rest->len != 0 ? memchr(rest->base, sep, rest->len) : NULL;
    br_str_t tok;
    if (p == NULL) {
        tok = *rest;
        *rest = br_str("", 0);
    } else {
        tok = br_str(rest->base, p - rest->base);
        *rest = br_str(p + 1, rest->len - tok.len - 1);
    }
    return trim(tok);
}

static int ieq(br_str_t a, br_str_t b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.base, b.base, a.len) == 0);
}

/* 1 when a q parameter value is zero: "0", "0.", "0.000" (quoted or not). A
 * malformed weight is ignored, i.e. counts as 1, as for an unknown parameter. */
static int q_is_zero(br_str_t v)
{
    if (v.len >= 2 && v.base[0] == '"' && v.base[v.len - 1] == '"')
        v = br_str(v.base + 1, v.len - 2);
    if (v.len == 0 || v.base[0] != '0')
        return 0;
    if (v.len == 1)
        return 1;
    if (v.base[1] != '.')
        return 0;
    for (size_t i = 2; i < v.len; i++)
        if (v.base[i] != '0')
            return 0;
    return 1;
}

/* How specifically range matches media_type: 0 not at all, 1 for the
 * any/any wildcard, 2 for type/any, 3 exactly. Media types compare case-insensitively. */
static int match_level(br_str_t range, br_str_t media_type)
{
    if (br_str_eq(range, BR_STR("*/*")) || br_str_eq(range, BR_STR("*")))
        return 1;
    if (range.len >= 2 && range.base[range.len - 2] == '/' && range.base[range.len - 1] == '*') {
        br_str_t type = br_str(range.base, range.len - 1); /* "type/" */
        return media_type.len > type.len && ieq(br_str(media_type.base, type.len), type) ? 2 : 0;
    }
    return ieq(range, media_type) ? 3 : 0;
}

int br_accept_matches(br_str_t accept, br_str_t media_type)
{
    br_str_t rest = accept;
    int any = 0, best_level = 0, best_ok = 0;

    while (rest.len != 0) {
        br_str_t item = next_token(&rest, ','), range;
        int level, zero = 0;
        if (item.len == 0)
            continue;
        any = 1;
        range = next_token(&item, ';');
        while (item.len != 0) {
            br_str_t param = next_token(&item, ';'), name = next_token(&param, '=');
            if (ieq(name, BR_STR("q")))
                zero = q_is_zero(trim(param));
        }
        if ((level = match_level(range, media_type)) == 0)
            continue;
        if (level > best_level) {
            best_level = level;
            best_ok = !zero;
        } else if (level == best_level) {
            best_ok |= !zero;
        }
    }
    return !any || (best_level != 0 && best_ok);
}
