/*
 * Basic credentials: the htpasswd file (bcrypt only), its reload when it
 * changes, a short-lived cache of verified pairs, and the back-off for failed
 * logins (per address and per user name).
 *
 * Reload is a pointer swap under b->lock: readers take a reference to the
 * current snapshot and run bcrypt without any lock held, so a slow login never
 * blocks a reload, and a reload never frees a table in use.
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "auth/internal.h"

#define HTPASSWD_MAX (16u << 20) /* a larger file is a mistake, not a user list */
#define LINE_MAX_LEN 4096

/* "$2y$NN$" + 22 salt + 31 hash characters of bcrypt's base64 alphabet. */
static int is_bcrypt(const char *h)
{
    if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' || (h[2] != 'y' && h[2] != 'b') || h[3] != '$' || h[6] != '$')
        return 0;
    if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || (h[4] - '0') * 10 + (h[5] - '0') < 4 ||
        (h[4] - '0') * 10 + (h[5] - '0') > 31)
        return 0;
    for (size_t i = 7; i < 60; i++)
        if (strchr("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", h[i]) == NULL)
            return 0;
    return 1;
}

static const char *hash_kind(const char *h)
{
    if (strncmp(h, "$apr1$", 6) == 0)
        return "MD5 ($apr1$)";
    if (strncmp(h, "{SHA}", 5) == 0)
        return "SHA-1 ({SHA})";
    if (strncmp(h, "$2a$", 4) == 0)
        return "bcrypt $2a$";
    if (strncmp(h, "$1$", 3) == 0 || strncmp(h, "$5$", 3) == 0 || strncmp(h, "$6$", 3) == 0)
        return "crypt(3) MD5/SHA";
    return "an unknown or malformed hash";
}

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const br_auth_user_t *)a)->name, ((const br_auth_user_t *)b)->name);
}

static void htpasswd_free(br_auth_htpasswd_t *h)
{
    for (size_t i = 0; i < h->num_users; i++) {
        free(h->users[i].name);
        /* The hashes are not secret in the usual sense, but no need to leave them lying around. */
        OPENSSL_cleanse(h->users[i].hash, strlen(h->users[i].hash));
        free(h->users[i].hash);
    }
    free(h->users);
    free(h);
}

void br_auth__htpasswd_release(br_auth_htpasswd_t *h)
{
    if (h != NULL && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0)
        htpasswd_free(h);
}

int br_auth__htpasswd_load(const char *path, br_auth_htpasswd_t **out, char *err, size_t errsize)
{
    br_auth_htpasswd_t *h = br_calloc(1, sizeof(*h));
    size_t cap = 0, lineno = 0, total = 0;
    char line[LINE_MAX_LEN + 2];
    int ret = 0;
    FILE *fp;

    h->refs = 1;
    *out = NULL;
    if ((fp = fopen(path, "r")) == NULL) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        ret = BR_E_CONFIG;
        goto Exit;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        size_t len = strlen(line);
        lineno++;
        if ((total += len) > HTPASSWD_MAX) {
            snprintf(err, errsize, "%s: larger than %u bytes", path, HTPASSWD_MAX);
            ret = BR_E_CONFIG;
            goto Exit;
        }
        if (len > LINE_MAX_LEN) {
            snprintf(err, errsize, "%s:%zu: line too long", path, lineno);
            ret = BR_E_CONFIG;
            goto Exit;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line || colon - line > BR_AUTH_USER_MAX) {
            snprintf(err, errsize, "%s:%zu: expected user:hash (user 1-%d bytes)", path, lineno, BR_AUTH_USER_MAX);
            ret = BR_E_CONFIG;
            goto Exit;
        }
        *colon = '\0';
        const char *hash = colon + 1;
        if (!is_bcrypt(hash)) {
            /* Only bcrypt: MD5, SHA-1 and crypt hashes are fast to brute-force. */
            snprintf(err, errsize, "%s:%zu: user '%s' has %s; only bcrypt ($2y$ or $2b$, htpasswd -B) is accepted", path, lineno,
                     line, hash_kind(hash));
            ret = BR_E_CONFIG;
            goto Exit;
        }
        for (const char *p = line; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x21 || *p == 0x7f) {
                snprintf(err, errsize, "%s:%zu: user names must not contain spaces or control characters", path, lineno);
                ret = BR_E_CONFIG;
                goto Exit;
            }
        }
        if (h->num_users == cap)
            h->users = br_realloc(h->users, (cap = cap == 0 ? 16 : cap * 2) * sizeof(*h->users));
        h->users[h->num_users].name = br_strndup(line, strlen(line));
        h->users[h->num_users].hash = br_strndup(hash, strlen(hash));
        h->num_users++;
    }
    if (ferror(fp)) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        ret = BR_E_CONFIG;
        goto Exit;
    }
    qsort(h->users, h->num_users, sizeof(*h->users), user_cmp);
    for (size_t i = 1; i < h->num_users; i++) {
        if (strcmp(h->users[i - 1].name, h->users[i].name) == 0) {
            snprintf(err, errsize, "%s: user '%s' appears twice", path, h->users[i].name);
            ret = BR_E_CONFIG;
            goto Exit;
        }
    }
    *out = h;
    h = NULL;
Exit:
    if (fp != NULL)
        fclose(fp);
    if (h != NULL)
        htpasswd_free(h);
    return ret;
}

int br_auth__basic_init(br_auth_basic_t *b, const br_config_t *cfg, char *err, size_t errsize)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    b->check_interval_ms = 1000;
    b->max_failures = cfg->auth.max_failures;
    b->window_ms = cfg->auth.failure_window_ms;
    if (RAND_bytes(b->cache_key, sizeof(b->cache_key)) != 1 || RAND_bytes(b->backoff_key, sizeof(b->backoff_key)) != 1) {
        snprintf(err, errsize, "no random bytes for the credential cache");
        return BR_E_CONFIG;
    }
    /* A hash at the configured cost, checked for unknown users. */
    char pw[33];
    unsigned char rnd[16];
    RAND_bytes(rnd, sizeof(rnd));
    for (size_t i = 0; i < 16; i++)
        snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
    if (br_auth_hash_password(pw, cfg->auth.bcrypt_cost, b->dummy_hash, sizeof(b->dummy_hash)) != 0) {
        snprintf(err, errsize, "libcrypt cannot make bcrypt hashes");
        return BR_E_CONFIG;
    }
    if (cfg->auth.htpasswd == NULL)
        return 0;
    b->path = br_strndup(cfg->auth.htpasswd, strlen(cfg->auth.htpasswd));
    if (stat(b->path, &b->st) != 0) {
        snprintf(err, errsize, "%s: %s", b->path, strerror(errno));
        return BR_E_CONFIG;
    }
    int ret = br_auth__htpasswd_load(b->path, &b->cur, err, errsize);
    if (ret == 0)
        b->cur->generation = ++b->generation;
    b->last_check_ms = br_now_ms();
    return ret;
}

void br_auth__basic_dispose(br_auth_basic_t *b)
{
    br_auth__htpasswd_release(b->cur);
    free(b->path);
    pthread_mutex_destroy(&b->lock);
    OPENSSL_cleanse(b, sizeof(*b));
}

/* Re-reads the file when its stat changed (checked at most every
 * check_interval_ms), then returns a reference to the current table (NULL
 * without a file). A file that no longer loads keeps the old table. */
static br_auth_htpasswd_t *acquire(br_auth_basic_t *b)
{
    br_auth_htpasswd_t *h, *fresh = NULL, *old = NULL;
    struct stat st;
    uint64_t now = br_now_ms();
    int check = 0;
    char err[512];

    if (b->path == NULL)
        return NULL;
    pthread_mutex_lock(&b->lock);
    if (now - b->last_check_ms >= b->check_interval_ms) {
        b->last_check_ms = now;
        check = 1;
    }
    pthread_mutex_unlock(&b->lock);

    /* stat and parse outside the lock; a racing reload only wastes work. */
    if (check && stat(b->path, &st) == 0 &&
        (st.st_mtim.tv_sec != b->st.st_mtim.tv_sec || st.st_mtim.tv_nsec != b->st.st_mtim.tv_nsec || st.st_size != b->st.st_size ||
         st.st_ino != b->st.st_ino)) {
        if (br_auth__htpasswd_load(b->path, &fresh, err, sizeof(err)) != 0)
            br_warn("auth: keeping the previous users: %s", err);
        else
            br_info("auth: reloaded %s (%zu users)", b->path, fresh->num_users);
        pthread_mutex_lock(&b->lock);
        b->st = st; /* a broken file is reported once, not on every request */
        if (fresh != NULL) {
            fresh->generation = ++b->generation;
            old = b->cur;
            b->cur = fresh;
        }
        pthread_mutex_unlock(&b->lock);
        br_auth__htpasswd_release(old);
    }

    pthread_mutex_lock(&b->lock);
    h = b->cur;
    __atomic_add_fetch(&h->refs, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&b->lock);
    return h;
}

static const br_auth_user_t *find_user(const br_auth_htpasswd_t *h, const char *user)
{
    br_auth_user_t key = {(char *)user, NULL};
    return h == NULL ? NULL : bsearch(&key, h->users, h->num_users, sizeof(*h->users), user_cmp);
}

static int bcrypt_eq(const char *pass, const char *hash)
{
    struct crypt_data *data = br_calloc(1, sizeof(*data));
    const char *out = crypt_rn(pass, hash, data, (int)sizeof(*data));
    int eq = out != NULL && out[0] != '*' && br_secret_eq(br_cstr(out), br_cstr(hash));
    OPENSSL_cleanse(data, sizeof(*data));
    free(data);
    return eq;
}

static void cache_mac(const br_auth_basic_t *b, const char *user, const char *pass, unsigned char *mac)
{
    /* user and password with their lengths, so "a:bc" and "ab:c" differ. */
    unsigned char buf[BR_AUTH_USER_MAX + BR_BASIC_MAX + 16];
    size_t ul = strlen(user), pl = strlen(pass), n = 0;
    unsigned int maclen = 32;
    memcpy(buf + n, &ul, sizeof(ul)), n += sizeof(ul);
    memcpy(buf + n, user, ul), n += ul;
    memcpy(buf + n, pass, pl), n += pl;
    HMAC(EVP_sha256(), b->cache_key, sizeof(b->cache_key), buf, n, mac, &maclen);
    OPENSSL_cleanse(buf, sizeof(buf));
}

int br_auth__basic_verify(br_auth_basic_t *b, const char *user, const char *pass)
{
    unsigned char mac[32];
    br_auth_htpasswd_t *h = acquire(b);
    const br_auth_user_t *u;
    int ret = BR_E_UNAUTHORIZED, hit = 0;
    uint64_t now = br_now_ms();

    if (strlen(user) > BR_AUTH_USER_MAX || strlen(pass) > BR_BASIC_MAX)
        goto Exit;
    cache_mac(b, user, pass, mac);
    size_t slot = mac[0] | (size_t)mac[1] << 8;
    slot %= BR_CRED_CACHE_SLOTS;
    pthread_mutex_lock(&b->lock);
    hit = h != NULL && b->cache[slot].generation == h->generation && b->cache[slot].expires_ms > now &&
          br_secret_eq(br_str((const char *)b->cache[slot].mac, 32), br_str((const char *)mac, 32));
    pthread_mutex_unlock(&b->lock);
    if (hit) {
        ret = 0;
        goto Exit;
    }
    u = find_user(h, user);
    /* Unknown users cost one bcrypt too, so timing does not reveal who exists. */
    if (bcrypt_eq(pass, u != NULL ? u->hash : b->dummy_hash) && u != NULL) {
        ret = 0;
        pthread_mutex_lock(&b->lock);
        memcpy(b->cache[slot].mac, mac, 32);
        b->cache[slot].expires_ms = now + BR_CRED_CACHE_MS;
        b->cache[slot].generation = h->generation;
        pthread_mutex_unlock(&b->lock);
    }
Exit:
    OPENSSL_cleanse(mac, sizeof(mac));
    br_auth__htpasswd_release(h);
    return ret;
}

int br_auth__user_fingerprint(br_auth_basic_t *b, const char *user, char *out)
{
    br_auth_htpasswd_t *h = acquire(b);
    const br_auth_user_t *u = find_user(h, user);
    int ret = BR_E_UNAUTHORIZED;
    if (u != NULL) {
        /* A changed password (a new hash) changes the fingerprint, which
         * revokes refresh tokens made before the change. */
        unsigned char md[32];
        SHA256((const unsigned char *)u->hash, strlen(u->hash), md);
        char *s = br_b64url_encode(md, 12);
        memcpy(out, s, strlen(s) + 1);
        free(s);
        ret = 0;
    }
    br_auth__htpasswd_release(h);
    return ret;
}

int br_auth__basic_parse(br_str_t header, char *user, char *pass, size_t pass_size)
{
    static const char scheme[] = "basic ";
    unsigned char buf[BR_BASIC_MAX + 4];
    size_t i = sizeof(scheme) - 1, n = 0, pad = 0;
    int ret = BR_E_UNAUTHORIZED;
    uint32_t acc = 0;
    int bits = 0;

    if (header.len < i || strncasecmp(header.base, scheme, i) != 0)
        return ret;
    while (i < header.len && header.base[i] == ' ')
        i++;
    size_t b64len = header.len - i;
    if (b64len == 0 || b64len % 4 != 0 || b64len / 4 * 3 > BR_BASIC_MAX)
        return ret;
    /* Standard base64 with padding, as RFC 7617 uses; anything else is refused. */
    for (; i < header.len; i++) {
        char ch = header.base[i];
        int v = br_auth__b64_value(ch, "+/");
        if (ch == '=') {
            if (++pad > 2)
                goto Exit;
            continue;
        }
        if (pad != 0 || v < 0)
            goto Exit;
        acc = acc << 6 | (uint32_t)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) /* non-canonical trailing bits */
        goto Exit;
    unsigned char *colon = memchr(buf, ':', n);
    if (colon == NULL || colon == buf || (size_t)(colon - buf) > BR_AUTH_USER_MAX || memchr(buf, '\0', n) != NULL)
        goto Exit;
    size_t ul = (size_t)(colon - buf), pl = n - ul - 1;
    if (pl + 1 > pass_size)
        goto Exit;
    for (size_t k = 0; k < ul; k++)
        if (buf[k] < 0x21 || buf[k] == 0x7f)
            goto Exit;
    memcpy(user, buf, ul);
    user[ul] = '\0';
    memcpy(pass, colon + 1, pl);
    pass[pl] = '\0';
    ret = 0;
Exit:
    OPENSSL_cleanse(buf, sizeof(buf));
    return ret;
}

/* ---- back-off -------------------------------------------------------------
 * Failed logins are counted per client address and per user name. A success
 * must never clear failures recorded against someone else (else an attacker
 * with one valid account interleaves its logins with guesses at another
 * account and is never slowed down), so each failure also counts in two
 * "share" slots, (address, user)'s part of the address count and of the user
 * count; a user's success subtracts exactly its own shares. Failures without a
 * user name (an unreadable Authorization value) count for the address only.
 *
 * The user limit is BR_BACKOFF_USER_FACTOR times max_failures: it catches
 * guesses at one account spread over many addresses, while one address alone
 * (its own limit reached first) cannot lock a user out everywhere.
 *
 * One fixed table holds all slots, found by a keyed hash of what they count
 * (a per-process random key: nobody can aim at a slot, and no user name,
 * which is often a password typed into the wrong field, stays in memory) and
 * a short linear probe. A full probe window evicts its least valuable slot: a
 * flood can only make the table forget (less protection), never block an
 * address or user that did not fail itself, and memory never grows. */

#define BR_BACKOFF_USER_FACTOR 4

enum { KEY_ADDRESS = 'A', KEY_USER = 'U', KEY_ADDRESS_SHARE = 'a', KEY_USER_SHARE = 'u' };

static void backoff_key(const br_auth_basic_t *b, int kind, const char *client, const char *user, unsigned char *key)
{
    unsigned char buf[1 + 64 + 1 + BR_AUTH_USER_MAX + 1], md[32];
    size_t n = 0, cl = client != NULL ? strnlen(client, 64) : 0, ul = user != NULL ? strnlen(user, BR_AUTH_USER_MAX) : 0;
    unsigned int mdlen = sizeof(md);
    buf[n++] = (unsigned char)kind;
    memcpy(buf + n, client != NULL ? client : "", cl), n += cl;
    buf[n++] = '\0';
    memcpy(buf + n, user != NULL ? user : "", ul), n += ul;
    HMAC(EVP_sha256(), b->backoff_key, sizeof(b->backoff_key), buf, n, md, &mdlen);
    memcpy(key, md, BR_BACKOFF_KEY);
    key[0] |= 1; /* an all-zero key marks a free slot */
    OPENSSL_cleanse(buf, sizeof(buf));
}

static br_backoff_slot_t *find_slot(br_auth_basic_t *b, const unsigned char *key, int create, uint64_t now_ms)
{
    size_t start = ((size_t)key[1] << 16 | (size_t)key[2] << 8 | key[3]) % BR_BACKOFF_SLOTS;
    br_backoff_slot_t *victim = NULL;
    int victim_class = 0;
    for (size_t i = 0; i < BR_BACKOFF_PROBE; i++) {
        br_backoff_slot_t *s = &b->backoff[(start + i) % BR_BACKOFF_SLOTS];
        if (memcmp(s->key, key, BR_BACKOFF_KEY) == 0)
            return s;
        /* Evict in this order: free, stale (window over, not blocked),
         * counting, blocked; the least recently failed first within a class. */
        int cls = s->key[0] == 0                                                              ? 0
                  : now_ms >= s->blocked_until_ms && now_ms - s->first_ms >= b->window_ms ? 1
                  : now_ms >= s->blocked_until_ms                                         ? 2
                                                                                          : 3;
        if (victim == NULL || cls < victim_class || (cls == victim_class && s->last_ms < victim->last_ms)) {
            victim = s;
            victim_class = cls;
        }
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->key, key, BR_BACKOFF_KEY);
    victim->first_ms = now_ms;
    victim->window = ++b->next_window;
    return victim;
}

/* 1 (and the wait in *until) when the slot for key is blocked at now_ms. */
static int slot_blocked(br_auth_basic_t *b, const unsigned char *key, uint64_t now_ms, uint64_t *until)
{
    br_backoff_slot_t *s = find_slot(b, key, 0, now_ms);
    if (s == NULL || s->blocked_until_ms <= now_ms)
        return 0;
    if (s->blocked_until_ms > *until)
        *until = s->blocked_until_ms;
    return 1;
}

int br_auth__backoff_blocked(br_auth_basic_t *b, const char *client, const char *user, uint64_t now_ms, unsigned *retry_s)
{
    unsigned char ka[BR_BACKOFF_KEY], ku[BR_BACKOFF_KEY];
    uint64_t until = 0;
    int blocked = 0;
    if (b->max_failures == 0 || (client == NULL && user == NULL))
        return 0;
    if (client != NULL)
        backoff_key(b, KEY_ADDRESS, client, NULL, ka);
    if (user != NULL)
        backoff_key(b, KEY_USER, NULL, user, ku);
    pthread_mutex_lock(&b->lock);
    if (client != NULL)
        blocked |= slot_blocked(b, ka, now_ms, &until);
    if (user != NULL)
        blocked |= slot_blocked(b, ku, now_ms, &until);
    pthread_mutex_unlock(&b->lock);
    if (blocked)
        *retry_s = (unsigned)((until - now_ms + 999) / 1000);
    return blocked;
}

/* One more failure for the address or user behind key, blocked for
 * 2^(failures - limit) seconds (at most the window) from the limit on;
 * returns its slot. */
static br_backoff_slot_t *count_failure(br_auth_basic_t *b, const unsigned char *key, unsigned limit, uint64_t now_ms)
{
    br_backoff_slot_t *s = find_slot(b, key, 1, now_ms);
    if (now_ms - s->first_ms >= b->window_ms && now_ms >= s->blocked_until_ms) {
        s->failures = 0; /* a new window */
        s->first_ms = now_ms;
        s->window = ++b->next_window;
    }
    s->last_ms = now_ms;
    if (++s->failures >= limit) {
        unsigned over = s->failures - limit;
        uint64_t delay = over >= 30 ? b->window_ms : 1000ULL << over;
        if (delay > b->window_ms)
            delay = b->window_ms;
        s->blocked_until_ms = now_ms + delay;
    }
    return s;
}

/* Records that one failure counted in the parent slot's window came from
 * (client, user). Takes the parent's fields by value: making the share's slot
 * may evict the parent's (that count is then forgotten, as any evicted one). */
static void count_share(br_auth_basic_t *b, const unsigned char *key, uint64_t window, uint64_t first_ms, uint64_t now_ms)
{
    br_backoff_slot_t *s = find_slot(b, key, 1, now_ms);
    if (s->window != window) { /* shares of an older window no longer count */
        s->failures = 0;
        s->window = window;
    }
    s->failures++;
    s->first_ms = first_ms;
    s->last_ms = now_ms;
}

/* The four slots one login touches: the address, the user, and the shares. */
typedef struct st_backoff_keys_t {
    unsigned char address[BR_BACKOFF_KEY], user[BR_BACKOFF_KEY], address_share[BR_BACKOFF_KEY], user_share[BR_BACKOFF_KEY];
} backoff_keys_t;

static void backoff_keys(const br_auth_basic_t *b, const char *client, const char *user, backoff_keys_t *k)
{
    backoff_key(b, KEY_ADDRESS, client, NULL, k->address);
    backoff_key(b, KEY_USER, NULL, user, k->user);
    backoff_key(b, KEY_ADDRESS_SHARE, client, user, k->address_share);
    backoff_key(b, KEY_USER_SHARE, client, user, k->user_share);
}

void br_auth__backoff_failed(br_auth_basic_t *b, const char *client, const char *user, uint64_t now_ms)
{
    backoff_keys_t k;
    if (b->max_failures == 0 || (client == NULL && user == NULL))
        return;
    backoff_keys(b, client, user, &k);
    pthread_mutex_lock(&b->lock);
    if (client != NULL) {
        const br_backoff_slot_t *a = count_failure(b, k.address, b->max_failures, now_ms);
        if (user != NULL)
            count_share(b, k.address_share, a->window, a->first_ms, now_ms);
    }
    if (user != NULL) {
        const br_backoff_slot_t *u = count_failure(b, k.user, b->max_failures * BR_BACKOFF_USER_FACTOR, now_ms);
        count_share(b, k.user_share, u->window, u->first_ms, now_ms);
    }
    pthread_mutex_unlock(&b->lock);
}

/* Takes back the failures the share slot recorded in the parent's current window. */
static void uncount_share(br_auth_basic_t *b, const unsigned char *kparent, const unsigned char *kshare, unsigned limit)
{
    br_backoff_slot_t *s = find_slot(b, kshare, 0, 0), *p = find_slot(b, kparent, 0, 0);
    if (s == NULL)
        return;
    if (p != NULL && p->window == s->window) {
        p->failures -= s->failures < p->failures ? s->failures : p->failures;
        if (p->failures < limit)
            p->blocked_until_ms = 0; /* what blocked it was this user's own doing */
    }
    memset(s, 0, sizeof(*s));
}

void br_auth__backoff_succeeded(br_auth_basic_t *b, const char *client, const char *user)
{
    backoff_keys_t k;
    if (b->max_failures == 0 || user == NULL)
        return;
    backoff_keys(b, client, user, &k);
    pthread_mutex_lock(&b->lock);
    if (client != NULL)
        uncount_share(b, k.address, k.address_share, b->max_failures);
    uncount_share(b, k.user, k.user_share, b->max_failures * BR_BACKOFF_USER_FACTOR);
    pthread_mutex_unlock(&b->lock);
}

int br_auth__basic_login(br_auth_basic_t *b, const char *client, const char *user, const char *pass, unsigned *retry_s)
{
    uint64_t now = br_now_ms();
    /* Before any bcrypt: a blocked address or user costs us nothing. */
    if (br_auth__backoff_blocked(b, client, user, now, retry_s))
        return BR_E_TOO_MANY;
    int ret = user != NULL ? br_auth__basic_verify(b, user, pass) : BR_E_UNAUTHORIZED;
    if (ret != 0)
        br_auth__backoff_failed(b, client, user, now);
    else
        br_auth__backoff_succeeded(b, client, user);
    return ret;
}

int br_auth_hash_password(const char *pw, unsigned cost, char *out, size_t size)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    unsigned char rnd[16];
    int ret = 0;
    struct crypt_data *data = NULL;

    if (cost == 0)
        cost = 10;
    if (cost < 4 || cost > 31 || strlen(pw) > 72)
        return EINVAL;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return EIO;
    if (crypt_gensalt_rn("$2y$", cost, (const char *)rnd, sizeof(rnd), setting, sizeof(setting)) == NULL) {
        ret = errno != 0 ? errno : EINVAL;
        goto Exit;
    }
    data = br_calloc(1, sizeof(*data));
    const char *h = crypt_rn(pw, setting, data, (int)sizeof(*data));
    if (h == NULL || h[0] == '*') {
        ret = errno != 0 ? errno : EINVAL;
        goto Exit;
    }
    if (strlen(h) + 1 > size) {
        ret = ERANGE;
        goto Exit;
    }
    memcpy(out, h, strlen(h) + 1);
Exit:
    if (data != NULL) {
        OPENSSL_cleanse(data, sizeof(*data));
        free(data);
    }
    return ret;
}
