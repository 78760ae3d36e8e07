/*
 * Repository names and tags, validated by hand-written scanners that follow the
 * distribution spec's regular expressions exactly (no regex engine on the
 * request path, and no backtracking to exploit).
 */
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
