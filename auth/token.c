/*
 * The token issuer (Docker registry token spec, and its OAuth2 POST form):
 * authenticate the caller, intersect each requested scope with the rules,
 * and sign a short-lived JWT; optionally a refresh token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>
#include "auth/internal.h"

#define MAX_SCOPES 32
#define REFRESH_TTL_S (7 * 86400)

typedef struct st_form_t {
    char *service, *account, *grant_type, *username, *password, *refresh_token, *offline_token, *access_type, *client_id;
    char *scopes[MAX_SCOPES];
    size_t num_scopes;
    int too_many, malformed;
} form_t;

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* application/x-www-form-urlencoded decoding ('+' is a space); NULL when malformed. */
static char *decode(const char *s, size_t len)
{
    char *out = br_malloc(len + 1), *o = out;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1, lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) { /* truncated, not hex, or a NUL */
                free(out);
                return NULL;
            }
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static void set_once(form_t *f, char **field, char *value)
{
    if (*field != NULL) /* a repeated parameter is ambiguous: refuse the request */
        f->malformed = 1;
    free(*field);
    *field = value;
}

static void add_scopes(form_t *f, const char *v)
{
    /* One parameter may hold several scopes separated by spaces (OAuth2). */
    for (const char *p = v; *p != '\0';) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == 0)
            break;
        if (f->num_scopes == MAX_SCOPES)
            f->too_many = 1;
        else
            f->scopes[f->num_scopes++] = br_strndup(p, n);
        p += n;
    }
}

static void parse_form(form_t *f, br_str_t in)
{
    static const struct {
        const char *name;
        size_t offset;
    } fields[] = {{"service", offsetof(form_t, service)},           {"account", offsetof(form_t, account)},
                  {"grant_type", offsetof(form_t, grant_type)},     {"username", offsetof(form_t, username)},
                  {"password", offsetof(form_t, password)},         {"refresh_token", offsetof(form_t, refresh_token)},
                  {"offline_token", offsetof(form_t, offline_token)}, {"access_type", offsetof(form_t, access_type)},
                  {"client_id", offsetof(form_t, client_id)}};
    memset(f, 0, sizeof(*f));
    if (in.len > BR_AUTH_FORM_MAX) {
        f->malformed = 1;
        return;
    }
    for (size_t i = 0; i < in.len;) {
        const char *amp = memchr(in.base + i, '&', in.len - i);
        size_t n = amp != NULL ? (size_t)(amp - (in.base + i)) : in.len - i;
        const char *eq = memchr(in.base + i, '=', n);
        if (n != 0 && eq != NULL) {
            size_t klen = (size_t)(eq - (in.base + i));
            char *key = decode(in.base + i, klen), *val = decode(eq + 1, n - klen - 1);
            if (key == NULL || val == NULL) {
                f->malformed = 1;
                free(val);
            } else if (strcmp(key, "scope") == 0) {
                add_scopes(f, val);
                free(val);
            } else {
                size_t k = 0;
                for (; k < sizeof(fields) / sizeof(fields[0]) && strcmp(fields[k].name, key) != 0; k++)
                    ;
                if (k < sizeof(fields) / sizeof(fields[0]))
                    set_once(f, (char **)((char *)f + fields[k].offset), val);
                else
                    free(val); /* unknown parameters are ignored, as the spec allows extensions */
            }
            free(key);
        }
        i += n + 1;
    }
}

static void free_form(form_t *f)
{
    if (f->password != NULL)
        OPENSSL_cleanse(f->password, strlen(f->password));
    if (f->refresh_token != NULL)
        OPENSSL_cleanse(f->refresh_token, strlen(f->refresh_token));
    char **fields[] = {&f->service,     &f->account,       &f->grant_type,  &f->username, &f->password,
                       &f->refresh_token, &f->offline_token, &f->access_type, &f->client_id};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        free(*fields[i]);
    for (size_t i = 0; i < f->num_scopes; i++)
        free(f->scopes[i]);
}

static void respond(br_auth_token_response_t *out, int status, json_t *body)
{
    out->status = status;
    out->body = json_dumps(body, JSON_COMPACT);
    out->len = strlen(out->body);
    json_decref(body);
}

static int oci_error(br_auth_token_response_t *out, int status, const char *code, const char *message)
{
    respond(out, status, json_pack("{s:[{s:s, s:s}]}", "errors", "code", code, "message", message));
    return status == 401 ? BR_E_UNAUTHORIZED : status == 429 ? BR_E_TOO_MANY : status == 404 ? BR_E_UNSUPPORTED : BR_E_DENIED;
}

static int oauth_error(br_auth_token_response_t *out, const char *error, const char *description)
{
    respond(out, 400, json_pack("{s:s, s:s}", "error", error, "error_description", description));
    return BR_E_UNAUTHORIZED;
}

/* The access entry for one requested scope, or NULL when nothing is granted
 * (unknown types, invalid names and refused actions all grant nothing). */
static json_t *grant(br_auth_t *a, const char *user, const char *scope)
{
    const char *c1 = strchr(scope, ':'), *c2 = strrchr(scope, ':');
    if (c1 == NULL || c1 == c2)
        return NULL;
    br_str_t type = br_str(scope, (size_t)(c1 - scope)), name = br_str(c1 + 1, (size_t)(c2 - c1 - 1));
    const char *actions = c2 + 1;
    if (br_str_eq(type, BR_STR("registry")) && br_str_eq(name, BR_STR("catalog")) && strcmp(actions, "*") == 0)
        return br_auth__acl_catalog(&a->acl, user) ? json_pack("{s:s, s:s, s:[s]}", "type", "registry", "name", "catalog",
                                                               "actions", "*")
                                                   : NULL;
    if (!br_str_eq(type, BR_STR("repository")) || !br_name_valid(name))
        return NULL;
    unsigned want = br_auth__parse_actions(actions, strlen(actions));
    unsigned have = want & br_auth__acl_actions(&a->acl, user, name);
    if (have == 0)
        return NULL;
    json_t *list = json_array();
    if (have & BR_AUTH_PULL)
        json_array_append_new(list, json_string("pull"));
    if (have & BR_AUTH_PUSH)
        json_array_append_new(list, json_string("push"));
    if (have & BR_AUTH_DELETE)
        json_array_append_new(list, json_string("delete"));
    return json_pack("{s:s, s:s%, s:o}", "type", "repository", "name", name.base, name.len, "actions", list);
}

static char *random_id(void)
{
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return NULL;
    return br_b64url_encode(rnd, sizeof(rnd));
}

/* Signs claims (stolen) with the common fields added; NULL on failure. */
static char *sign_claims(br_auth_t *a, json_t *claims, const char *user, uint64_t now, uint64_t ttl)
{
    char *jti = random_id(), *jwt = NULL;
    if (jti != NULL) {
        json_object_set_new(claims, "iss", json_string(a->token.issuer));
        json_object_set_new(claims, "sub", json_string(user != NULL ? user : ""));
        json_object_set_new(claims, "aud", json_string(a->token.service));
        json_object_set_new(claims, "exp", json_integer((json_int_t)(now + ttl)));
        json_object_set_new(claims, "nbf", json_integer((json_int_t)now));
        json_object_set_new(claims, "iat", json_integer((json_int_t)now));
        json_object_set_new(claims, "jti", json_string(jti));
        jwt = br_jwt_sign(&a->token, claims);
    }
    free(jti);
    json_decref(claims);
    return jwt;
}

/* Who is asking: 0 with *user (NULL = anonymous), or an error already in out. */
static int authenticate(br_auth_t *a, const br_auth_token_request_t *r, form_t *f, char *user, br_auth_token_response_t *out)
{
    char pass[BR_BASIC_MAX + 1];
    uint64_t now = br_now_ms();
    int have_user = 0, ret;

    if (!r->post && r->authorization.len == 0)
        return 0; /* anonymous token */
    if (!r->post || (f->grant_type != NULL && strcmp(f->grant_type, "password") == 0)) {
        if (r->post) {
            if (f->username == NULL || f->password == NULL || strlen(f->username) > BR_AUTH_USER_MAX ||
                strlen(f->password) > BR_BASIC_MAX) {
                /* no login tried: no failure counted, but a blocked address is told so */
                if (br_auth__backoff_blocked(&a->basic, r->client, NULL, now, &out->retry_after))
                    return oci_error(out, 429, "TOOMANYREQUESTS", "too many failed logins; retry later");
                return oauth_error(out, "invalid_request", "username and password are required");
            }
            snprintf(user, BR_AUTH_USER_MAX + 1, "%s", f->username);
            snprintf(pass, sizeof(pass), "%s", f->password);
            ret = 0;
        } else {
            ret = br_auth__basic_parse(r->authorization, user, pass, sizeof(pass));
        }
        ret = br_auth__basic_login(&a->basic, r->client, ret == 0 ? user : NULL, pass, &out->retry_after);
        OPENSSL_cleanse(pass, sizeof(pass));
        if (ret == BR_E_TOO_MANY)
            return oci_error(out, 429, "TOOMANYREQUESTS", "too many failed logins; retry later");
        if (ret != 0) {
            if (r->post)
                return oauth_error(out, "invalid_grant", "invalid username or password");
            snprintf(out->www_authenticate, sizeof(out->www_authenticate), "Basic realm=\"%s\"", a->realm);
            return oci_error(out, 401, "UNAUTHORIZED", "authentication failed");
        }
        have_user = 1;
    } else if (f->grant_type != NULL && strcmp(f->grant_type, "refresh_token") == 0) {
        br_jwt_claims_t *c = br_calloc(1, sizeof(*c));
        const char *why;
        char pwh[32];
        /* Only berth's own refresh tokens, for a user whose password has not
         * changed since (the fingerprint of the htpasswd entry). */
        ret = f->refresh_token == NULL || br_jwt_verify(&a->token, br_cstr(f->refresh_token), br_now(), c, &why) != 0 ||
              !c->own || !c->refresh || c->sub[0] == '\0' || br_auth__user_fingerprint(&a->basic, c->sub, pwh) != 0 ||
              strcmp(pwh, c->pwh) != 0;
        snprintf(user, BR_AUTH_USER_MAX + 1, "%s", c->sub);
        free(c);
        if (ret)
            return oauth_error(out, "invalid_grant", "invalid or expired refresh token");
        have_user = 1;
    } else if (f->grant_type == NULL) {
        return oauth_error(out, "invalid_request", "grant_type is required");
    } else {
        return oauth_error(out, "unsupported_grant_type", "grant_type must be password or refresh_token");
    }
    return have_user ? 0 : BR_E_UNAUTHORIZED;
}

static void rfc3339(uint64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int br_auth_issue(br_auth_t *a, const br_auth_token_request_t *r, br_auth_token_response_t *out)
{
    char user[BR_AUTH_USER_MAX + 1] = "", issued[32];
    form_t f;
    int ret;
    uint64_t now = br_now();
    char *token = NULL, *refresh = NULL;

    memset(out, 0, sizeof(*out));
    parse_form(&f, r->post ? r->body : r->query);
    if (!br_auth_enabled(a) || a->token.realm == NULL || a->token.sign.pkey == NULL) {
        ret = oci_error(out, 404, "UNSUPPORTED", "this registry issues no tokens");
        goto Exit;
    }
    if (f.malformed || f.too_many) {
        ret = r->post ? oauth_error(out, "invalid_request", "malformed or repeated parameters, or too many scopes")
                      : oci_error(out, 400, "UNSUPPORTED", "malformed or repeated parameters, or too many scopes");
        goto Exit;
    }
    if (f.service != NULL && strcmp(f.service, a->token.service) != 0) {
        ret = r->post ? oauth_error(out, "invalid_request", "unknown service")
                      : oci_error(out, 400, "UNSUPPORTED", "unknown service");
        goto Exit;
    }
    if ((ret = authenticate(a, r, &f, user, out)) != 0)
        goto Exit;
    snprintf(out->user, sizeof(out->user), "%s", user);
    const char *who = user[0] != '\0' ? user : NULL;

    /* Less than asked is not an error (spec): the client finds out on use. */
    json_t *access = json_array();
    for (size_t i = 0; i < f.num_scopes; i++) {
        json_t *g = grant(a, who, f.scopes[i]);
        if (g != NULL)
            json_array_append_new(access, g);
    }
    json_t *claims = json_object();
    json_object_set_new(claims, "access", access);
    token = sign_claims(a, claims, who, now, a->token.expiration_s);

    int offline = (f.offline_token != NULL && strcmp(f.offline_token, "true") == 0) ||
                  (f.access_type != NULL && strcmp(f.access_type, "offline") == 0);
    if (token != NULL && offline && who != NULL) {
        char pwh[32];
        if (br_auth__user_fingerprint(&a->basic, who, pwh) == 0)
            refresh = sign_claims(a, json_pack("{s:b, s:s}", "berth_refresh", 1, "pwh", pwh), who, now, REFRESH_TTL_S);
    }
    if (token == NULL || (offline && who != NULL && refresh == NULL)) {
        br_error("auth: cannot sign a token");
        ret = oci_error(out, 500, "UNKNOWN", "cannot sign a token");
        ret = BR_E_INTERNAL;
        goto Exit;
    }
    rfc3339(now, issued, sizeof(issued));
    json_t *body = json_pack("{s:s, s:s, s:I, s:s}", "token", token, "access_token", token, "expires_in",
                             (json_int_t)a->token.expiration_s, "issued_at", issued);
    if (refresh != NULL)
        json_object_set_new(body, "refresh_token", json_string(refresh));
    respond(out, 200, body);
    ret = 0;
Exit:
    if (token != NULL)
        OPENSSL_cleanse(token, strlen(token));
    free(token);
    if (refresh != NULL)
        OPENSSL_cleanse(refresh, strlen(refresh));
    free(refresh);
    free_form(&f);
    return ret;
}
