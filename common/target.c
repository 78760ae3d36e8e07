/*
 * Absolute-form request targets (RFC 9112 §3.2.2). h2o 2.2.5 hands them to the
 * handler as the path unchanged ("http://host/v2/..."), so the router takes the
 * origin part from here and routes and authorizes it like any other path. The
 * grammar is RFC 3986's absolute-URI cut down to what an http(s) request may
 * carry; anything else is refused rather than guessed at, since a lenient
 * split here would let the route the router sees differ from the one a proxy
 * in front checked.
 */
#include <errno.h>
#include <string.h>
#include "common/br.h"

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 1 when s starts with the lower-case ASCII prefix p, ignoring case. */
static int has_prefix_nocase(br_str_t s, const char *p)
{
    size_t n = strlen(p);
    if (s.len < n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.base[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)p[i])
            return 0;
    }
    return 1;
}

/* host = IP-literal / IPv4address / reg-name (RFC 3986 §3.2.2), non-empty.
 * reg-name is unreserved / pct-encoded / sub-delims, which leaves out '@'
 * (userinfo), '/', '?', '#' and ':'. IP-literal is checked only for its
 * alphabet (hex, ':', '.'); no IPvFuture. */
static int host_valid(br_str_t h)
{
    if (h.len == 0)
        return 0;
    if (h.base[0] == '[') {
        if (h.len < 3 || h.base[h.len - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < h.len; i++)
            if (!is_hex((unsigned char)h.base[i]) && h.base[i] != ':' && h.base[i] != '.')
                return 0;
        return 1;
    }
    for (size_t i = 0; i < h.len; i++) {
        unsigned char c = (unsigned char)h.base[i];
        if (c == '%') {
            if (i + 2 >= h.len || !is_hex((unsigned char)h.base[i + 1]) || !is_hex((unsigned char)h.base[i + 2]))
                return 0;
            i += 2;
        } else if (!is_alnum(c) && strchr("-._~!$&'()*+,;=", c) == NULL) {
            return 0;
        }
    }
    return 1;
}

int br_target_split(br_str_t target, br_str_t *authority, br_str_t *origin)
{
    size_t i;
    if (has_prefix_nocase(target, "http://"))
        i = 7;
    else if (has_prefix_nocase(target, "https://"))
        i = 8;
    else
        return EINVAL;
    for (size_t k = 0; k < target.len; k++) {
        unsigned char c = (unsigned char)target.base[k];
        if (c <= 0x20 || c >= 0x7f || c == '#')
            return EINVAL;
    }

    size_t start = i;
    while (i < target.len && target.base[i] != '/' && target.base[i] != '?')
        i++;
    br_str_t auth = br_str(target.base + start, i - start);
    size_t host_len = auth.len;
    if (auth.len != 0 && auth.base[0] == '[') {
        const char *close = memchr(auth.base, ']', auth.len);
        if (close == NULL)
            return EINVAL;
        host_len = (size_t)(close - auth.base) + 1;
    } else {
        const char *colon = memchr(auth.base, ':', auth.len);
        if (colon != NULL)
            host_len = (size_t)(colon - auth.base);
    }
    if (!host_valid(br_str(auth.base, host_len)))
        return EINVAL;
    if (host_len < auth.len) {
        /* ":" port, port = *DIGIT (RFC 3986 allows it empty) */
        if (auth.base[host_len] != ':' || auth.len - host_len - 1 > 5)
            return EINVAL;
        for (size_t k = host_len + 1; k < auth.len; k++)
            if (auth.base[k] < '0' || auth.base[k] > '9')
                return EINVAL;
    }
    *authority = auth;
    *origin = br_str(target.base + i, target.len - i);
    return 0;
}
