/*
 * Repository names and tags, validated by hand-written scanners that follow the
 * distribution spec's regular expressions exactly (no regex engine on the
 * request path, and no backtracking to exploit).
 */
#include <string.h>
#include "common/br.h"

static int is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static int component_valid(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_alnum_lower(p[0]))
        return 0;
    while (i < n) {
        while (i < n && is_alnum_lower(p[i]))
            i++;
        if (i == n)
            return 1;
        /* a separator: ".", "_", "__" or one or more "-" */
        if (p[i] == '.') {
            i++;
        } else if (p[i] == '_') {
            i++;
            if (i < n && p[i] == '_')
                i++;
        } else if (p[i] == '-') {
            while (i < n && p[i] == '-')
                i++;
        } else {
            return 0;
        }
        if (i == n || !is_alnum_lower(p[i]))
            return 0;
    }
    return 1;
}

int br_name_valid(br_str_t name)
{
    if (name.len == 0 || name.len > BR_NAME_MAX)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= name.len; i++) {
        if (i == name.len || name.base[i] == '/') {
            if (!component_valid(name.base + start, i - start))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

int br_tag_valid(br_str_t tag)
{
    if (tag.len == 0 || tag.len > BR_TAG_MAX)
        return 0;
    for (size_t i = 0; i < tag.len; i++) {
        char c = tag.base[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 (i != 0 && (c == '.' || c == '-'));
        if (!ok)
            return 0;
    }
    return 1;
}

int br_glob_match(const char *glob, size_t glen, const char *name, size_t nlen)
{
    /* Dynamic programming over (glob position, name position) rather than
     * backtracking, so a glob full of stars costs O(glen * nlen), never more.
     * row[j]: the glob so far matches the first j bytes of name. */
    unsigned char row[BR_NAME_MAX + 2];
    if (nlen > BR_NAME_MAX)
        return 0;
    memset(row, 0, nlen + 1);
    row[0] = 1;
    for (size_t i = 0; i < glen;) {
        if (glob[i] == '*') {
            int dstar = i + 1 < glen && glob[i + 1] == '*';
            /* A star extends a match over any run of bytes ('/' only for "**"). */
            for (size_t j = 1; j <= nlen; j++)
                row[j] = row[j] || (row[j - 1] && (dstar || name[j - 1] != '/'));
            i += dstar ? 2 : 1;
        } else {
            for (size_t j = nlen; j > 0; j--)
                row[j] = row[j - 1] && name[j - 1] == glob[i];
            row[0] = 0;
            i++;
        }
    }
    return row[nlen];
}
