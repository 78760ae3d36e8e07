/*
 * The handle and the per-request decision: who is calling (anonymous, a Basic
 * user, a token holder), may they do what the route needs, and if not, which
 * status and challenge tell the client what to do next.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "auth/internal.h"

enum { KIND_OPEN = 0, KIND_ANONYMOUS, KIND_USER, KIND_TOKEN };

int br_auth_create(br_auth_t **out, const br_config_t *cfg, char *err, size_t errsize)
{
    br_auth_t *a = br_calloc(1, sizeof(*a));
    int ret = 0;

    err[0] = '\0';
    *out = NULL;
    a->enabled = cfg->auth.enabled;
    a->realm = br_strndup(cfg->auth.realm, strlen(cfg->auth.realm));
    br_auth__acl_init(&a->acl, cfg);
    if ((ret = br_auth__basic_init(&a->basic, cfg, err, errsize)) != 0)
        goto Exit;
    if ((ret = br_auth__token_init(&a->token, cfg, err, errsize)) != 0)
        goto Exit;
    *out = a;
    a = NULL;
Exit:
    if (a != NULL)
        br_auth_destroy(a);
    return ret;
}

void br_auth_destroy(br_auth_t *a)
{
    if (a == NULL)
        return;
    br_auth__acl_dispose(&a->acl);
    br_auth__basic_dispose(&a->basic);
    br_auth__token_dispose(&a->token);
    free(a->realm);
    free(a);
}

int br_auth_enabled(const br_auth_t *a)
{
    return a != NULL && a->enabled;
}

unsigned br_auth__parse_actions(const char *s, size_t len)
{
    unsigned bits = 0;
    for (size_t i = 0; i < len;) {
        const char *comma = memchr(s + i, ',', len - i);
        size_t n = comma != NULL ? (size_t)(comma - (s + i)) : len - i;
        if (n == 4 && memcmp(s + i, "pull", 4) == 0)
            bits |= BR_AUTH_PULL;
        else if (n == 4 && memcmp(s + i, "push", 4) == 0)
            bits |= BR_AUTH_PUSH;
        else if (n == 6 && memcmp(s + i, "delete", 6) == 0)
            bits |= BR_AUTH_DELETE;
        else if (n == 1 && s[i] == '*')
            bits |= BR_ACTION_ALL;
        i += n + 1;
    }
    return bits;
}

/* ---- challenges ---------------------------------------------------------- */

static void append(char *buf, size_t size, const char *fmt, const char *s, size_t len)
{
    size_t used = strlen(buf);
    if (used < size)
        snprintf(buf + used, size - used, fmt, (int)len, s);
}

/* Appends s as the inside of a quoted-string: '"' and '\' escaped, controls dropped. */
static void append_quoted(char *buf, size_t size, const char *s, size_t len)
{
    size_t used = strlen(buf);
    for (size_t i = 0; i < len && used + 3 < size; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            continue;
        if (s[i] == '"' || s[i] == '\\')
            buf[used++] = '\\';
        buf[used++] = s[i];
    }
    buf[used] = '\0';
}

static void append_actions(char *buf, size_t size, unsigned actions)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{BR_AUTH_PULL, "pull"}, {BR_AUTH_PUSH, "push"}, {BR_AUTH_DELETE, "delete"}};
    int first = 1;
    for (size_t i = 0; i < 3; i++) {
        if (actions & names[i].bit) {
            append(buf, size, first ? "%.*s" : ",%.*s", names[i].name, strlen(names[i].name));
            first = 0;
        }
    }
}

static void challenge(const br_auth_t *a, const br_auth_request_t *r, const char *error, char *buf, size_t size)
{
    buf[0] = '\0';
    if (a->token.realm == NULL) {
        append(buf, size, "%.*s", "Basic realm=\"", 13);
        append_quoted(buf, size, a->realm, strlen(a->realm));
        append(buf, size, "%.*s", "\"", 1);
        return;
    }
    append(buf, size, "%.*s", "Bearer realm=\"", 14);
    append_quoted(buf, size, a->token.realm, strlen(a->token.realm));
    append(buf, size, "%.*s", "\",service=\"", 11);
    append_quoted(buf, size, a->token.service, strlen(a->token.service));
    append(buf, size, "%.*s", "\"", 1);
    unsigned repo_actions = r->actions & BR_ACTION_ALL;
    if ((r->actions & BR_AUTH_CATALOG) != 0) {
        append(buf, size, "%.*s", ",scope=\"registry:catalog:*\"", 27);
    } else if (repo_actions != 0 && r->repository.len != 0) {
        /* The names were validated by the router; quote anyway. */
        append(buf, size, "%.*s", ",scope=\"repository:", 19);
        append_quoted(buf, size, r->repository.base, r->repository.len);
        append(buf, size, "%.*s", ":", 1);
        append_actions(buf, size, repo_actions);
        if (r->from.len != 0) {
            append(buf, size, "%.*s", " repository:", 12);
            append_quoted(buf, size, r->from.base, r->from.len);
            append(buf, size, "%.*s", ":pull", 5);
        }
        append(buf, size, "%.*s", "\"", 1);
    }
    if (error != NULL) {
        append(buf, size, "%.*s", ",error=\"", 8);
        append(buf, size, "%.*s", error, strlen(error));
        append(buf, size, "%.*s", "\"", 1);
    }
}

static int deny(br_auth_result_t *out, int status, int err, const char *code, const char *message)
{
    out->allowed = 0;
    out->status = status;
    out->err = err;
    out->code = code;
    out->message = message;
    return err;
}

/* A caller without credentials: a challenge without error= (RFC 6750 3.1:
 * none for a request without authentication) and "authentication required",
 * which docker prints as "unauthorized: authentication required" (it makes
 * "denied" of insufficient_scope, which sent users searching). The detail
 * matters too: docker's client turns an error body whose message is just its
 * code's standard text into the bare code, which it retries five times (~35
 * s) and then prints as "unauthorized". */
static int deny_anonymous(const br_auth_t *a, const br_auth_request_t *r, br_auth_result_t *out)
{
    challenge(a, r, NULL, out->www_authenticate, sizeof(out->www_authenticate));
    deny(out, 401, BR_E_UNAUTHORIZED, "UNAUTHORIZED", "authentication required");
    out->detail = "anonymous access is not enough: sign in";
    return out->err;
}

/* ---- decisions --------------------------------------------------------------- */

static unsigned token_grant(const br_auth_result_t *res, br_str_t repository)
{
    unsigned actions = 0;
    for (size_t i = 0; i < res->_num_grants; i++)
        if (br_str_eq(br_cstr(res->_grants[i].name), repository))
            actions |= res->_grants[i].actions;
    return actions;
}

/* What the caller may do, by the rules only for Basic and anonymous callers,
 * by the grants only for tokens (plus, with widen, the rules of the subject of
 * a berth-issued token). */
static int may(br_auth_t *a, const br_auth_result_t *res, br_str_t repository, unsigned actions, int widen)
{
    const char *user = res->_kind == KIND_ANONYMOUS || res->user[0] == '\0' ? NULL : res->user;
    unsigned have = 0;
    int catalog = 0;

    if (!a->enabled || res->_kind == KIND_OPEN)
        return 1;
    if (res->_kind == KIND_TOKEN) {
        catalog = res->_catalog;
        if (repository.len != 0)
            have = token_grant(res, repository);
    }
    if (res->_kind != KIND_TOKEN || (widen && res->_own)) {
        catalog |= br_auth__acl_catalog(&a->acl, user);
        if (repository.len != 0)
            have |= br_auth__acl_actions(&a->acl, user, repository);
    }
    if ((actions & BR_AUTH_CATALOG) != 0 && !catalog)
        return 0;
    return (have & actions & BR_ACTION_ALL) == (actions & BR_ACTION_ALL);
}

int br_auth_may(br_auth_t *a, const br_auth_result_t *res, br_str_t repository, unsigned actions)
{
    return may(a, res, repository, actions, 1);
}

static int check_basic(br_auth_t *a, const br_auth_request_t *r, br_auth_result_t *out)
{
    char user[BR_AUTH_USER_MAX + 1], pass[BR_BASIC_MAX + 1];
    int ret = br_auth__basic_parse(r->authorization, user, pass, sizeof(pass));

    ret = br_auth__basic_login(&a->basic, r->client, ret == 0 ? user : NULL, pass, &out->retry_after);
    /* The user name of a failed login is not logged: it is often a password
     * typed into the wrong field. */
    OPENSSL_cleanse(pass, sizeof(pass));
    if (ret == BR_E_TOO_MANY)
        return deny(out, 429, BR_E_TOO_MANY, "TOOMANYREQUESTS", "too many failed logins; retry later");
    if (ret != 0) {
        challenge(a, r, NULL, out->www_authenticate, sizeof(out->www_authenticate));
        return deny(out, 401, BR_E_UNAUTHORIZED, "UNAUTHORIZED", "authentication failed");
    }
    out->_kind = KIND_USER;
    snprintf(out->user, sizeof(out->user), "%s", user);
    if (!may(a, out, r->repository, r->actions, 0))
        return deny(out, 403, BR_E_DENIED, "DENIED", "requested access to the resource is denied");
    return 0;
}

static int check_bearer(br_auth_t *a, const br_auth_request_t *r, br_auth_result_t *out)
{
    br_jwt_claims_t *c = br_calloc(1, sizeof(*c));
    br_str_t tok = br_str(r->authorization.base + 6, r->authorization.len - 6);
    const char *why;
    int ret = 0;

    while (tok.len != 0 && tok.base[0] == ' ')
        tok.base++, tok.len--;
    if (a->token.realm == NULL || br_jwt_verify(&a->token, tok, br_now(), c, &why) != 0 || c->refresh) {
        challenge(a, r, "invalid_token", out->www_authenticate, sizeof(out->www_authenticate));
        ret = deny(out, 401, BR_E_UNAUTHORIZED, "UNAUTHORIZED", "invalid or expired token");
        goto Exit;
    }
    out->_kind = KIND_TOKEN;
    snprintf(out->user, sizeof(out->user), "%s", c->sub);
    out->_own = c->own;
    out->_catalog = c->catalog;
    out->_num_grants = c->num_grants;
    memcpy(out->_grants, c->grants, c->num_grants * sizeof(c->grants[0]));
    if (!may(a, out, r->repository, r->actions, 0)) {
        if (c->sub[0] == '\0') {
            /* A token issued to nobody (clients fetch one before any login)
             * tells who the caller is no more than no token. */
            ret = deny_anonymous(a, r, out);
        } else {
            challenge(a, r, "insufficient_scope", out->www_authenticate, sizeof(out->www_authenticate));
            ret = deny(out, 401, BR_E_UNAUTHORIZED, "UNAUTHORIZED", "the token does not grant the requested access");
        }
    }
Exit:
    free(c);
    return ret;
}

/* "Basic Og==" is base64(":"): no user and no password. containers/image
 * (skopeo, podman, buildah) sends it when it holds no credentials for a
 * registry that challenged with Basic. It means anonymous, not a failed login
 * (which would also count towards the back-off). */
static int is_empty_basic(br_str_t h)
{
    br_str_t v = br_str(h.base + 6, h.len - 6);
    while (v.len != 0 && v.base[0] == ' ')
        v.base++, v.len--;
    while (v.len != 0 && v.base[v.len - 1] == ' ')
        v.len--;
    return br_str_eq(v, BR_STR("Og==")) || br_str_eq(v, BR_STR("Og"));
}

int br_auth_check(br_auth_t *a, const br_auth_request_t *r, br_auth_result_t *out)
{
    int ret;
    memset(out, 0, offsetof(br_auth_result_t, _grants));
    out->status = 200;
    out->from_allowed = 1;
    out->allowed = 1;
    if (!br_auth_enabled(a))
        return 0;

    br_str_t h = r->authorization;
    if (h.len >= 6 && strncasecmp(h.base, "basic ", 6) == 0 && is_empty_basic(h))
        h = br_str("", 0);
    if (h.len == 0) {
        out->_kind = KIND_ANONYMOUS;
        /* GET /v2/ without credentials must answer 401: that is how clients
         * learn that this registry wants them to sign in, and how. */
        if (r->actions == 0 || !may(a, out, r->repository, r->actions, 0))
            return deny_anonymous(a, r, out);
        ret = 0;
    } else if (h.len >= 6 && strncasecmp(h.base, "basic ", 6) == 0) {
        ret = check_basic(a, r, out);
    } else if (h.len >= 6 && strncasecmp(h.base, "bearer", 6) == 0 && (h.len == 6 || h.base[6] == ' ')) {
        ret = check_bearer(a, r, out);
    } else {
        challenge(a, r, NULL, out->www_authenticate, sizeof(out->www_authenticate));
        return deny(out, 401, BR_E_UNAUTHORIZED, "UNAUTHORIZED", "unsupported authorization scheme");
    }
    if (ret == 0 && r->from.len != 0)
        out->from_allowed = may(a, out, r->from, BR_AUTH_PULL, 0);
    return ret;
}
