/*
 * Blob uploads: POST /v2/<name>/blobs/uploads/ (start, monolithic, mount) and
 * GET / PATCH / PUT / DELETE /v2/<name>/blobs/uploads/<uuid>.
 *
 * With berth's patched h2o (server/h2o/0002, 0004) an upload body is taken
 * in pieces as it arrives: each piece is written and hashed, then h2o reads
 * more (back-pressure: nothing more is read while a piece is being written), so
 * receiving, hashing and writing overlap and memory stays flat.
 *
 * Where the event loops leave cores free (main.c starts the hash pool only
 * then), hashing (SHA-256, about twice the time of the write) runs beside the
 * loop: a piece of at least HASH_OFFLOAD_MIN bytes is copied into the upload's
 * hasher buffer and handed to a hash thread (iopool.c's hash pool); the loop
 * writes the piece from h2o's buffer meanwhile and lets h2o read on at once.
 * At most one slice (HASH_SLICE bytes) per upload is being hashed: the next
 * piece waits, unread further, until that hash job is back. The hash thread
 * never touches h2o memory, which HTTP/2 frees on a reset and HTTP/1 on a
 * disconnect before berth could wait for anything. The body's end waits for
 * the last hash before the save or commit. When the request goes away while
 * a hash job runs, the hasher outlives it and the job's destroy lets go of
 * the session (iopool.c's orphan pattern).
 * A piece held across loop turns (while the previous hash job runs) stays
 * put: over HTTP/1 h2o stops reading the socket until proceed; over HTTP/2
 * DATA arriving meanwhile waits in a second buffer (server/h2o/0004).
 *
 * Everything that waits for the disk (the session's start, save, commit and
 * cancel, and mounts) runs on the I/O threads (iopool.c); the loop answers
 * when the job comes back.
 *
 * Otherwise (Debian's h2o 2.2.5, `--with-system-h2o`; the patched build
 * streams every body, Upgrade requests included since patch 0005) h2o
 * hands the handler the whole body at once (in RAM, or above 32 MiB in a
 * mapped spill file under <root>/tmp). A layer body can be gigabytes, so it is written and hashed in
 * BR_SLICE_SIZE steps, one per loop iteration (br_defer), and the pages
 * already written are released from the mapping as we go. The body is never
 * handed to another thread: HTTP/2 frees it when the stream is reset, which
 * disposes the job below first.
 */
#include "berth_config.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "server/server.h"

/* Clients should send chunks of at least this size (except the last). */
#define CHUNK_MIN_LENGTH "1048576"

typedef enum { OP_MONOLITHIC, OP_PATCH, OP_PUT } op_t;

struct st_hasher_t;

typedef struct st_upload_job_t {
    br_deferred_t defer;
    h2o_req_t *req;
    br_upload_t *up;
    op_t op;
    br_str_t name;
    br_digest_t digest;
    const char *body;
    size_t len, done, released;
    uint64_t range_len; /* a streamed body's length per Content-Range, or UINT64_MAX */
#if BR_PATCHED_H2O
    struct st_hasher_t *hasher; /* NULL until the first piece hashed beside the loop */
    h2o_iovec_t piece;          /* the streamed piece being taken (valid until h2o_req_proceed_body) */
    size_t piece_off;           /* of it written so far */
    h2o_req_body_state_t piece_state;
    int fail_err; /* a write or hash failed: answered once the hash job in flight is back */
#endif
} upload_job_t;

/* A session cancel on an I/O thread (it commits to the index). Answers the
 * request when there is one (DELETE), else nobody waits for it. */
typedef struct st_cancel_job_t {
    br_io_job_t io;
    br_upload_t *up;
    int err;
} cancel_job_t;

static void do_cancel(br_io_job_t *io)
{
    cancel_job_t *c = (cancel_job_t *)io;
    c->err = br_upload_cancel(c->up);
    br_upload_destroy(c->up);
    c->up = NULL;
}

static void on_cancel_done(br_io_job_t *io, h2o_req_t *req)
{
    cancel_job_t *c = (cancel_job_t *)io;
    if (c->err != 0)
        br_send_error(req, c->err, NULL);
    else
        br_send(req, 204, NULL, "", 0);
}

/* Cancels up (taking it) off the loop; req answers when not NULL. */
static void cancel_upload(h2o_req_t *req, br_upload_t *up)
{
    cancel_job_t *c = br_calloc(1, sizeof(*c));
    c->io.run = do_cancel;
    c->io.done = on_cancel_done;
    c->io.destroy = br_io_free;
    c->up = up;
    br_io_submit(req, &c->io);
}

/* Lets go of a session; one its request created (monolithic) goes with it,
 * so an upload that never completed leaves no trace. */
static void release_upload(br_upload_t *up, op_t op)
{
    if (op == OP_MONOLITHIC)
        cancel_upload(NULL, up);
    else
        br_upload_destroy(up);
}

#if BR_PATCHED_H2O
/* Pieces (or slices of a larger piece) at least this long are hashed on a
 * hash thread; shorter ones inline, where a handoff would cost more than the
 * hash. */
#define HASH_OFFLOAD_MIN (64u << 10)
/* The most one hash job takes: an HTTP/1 piece is at most a 512 KiB read
 * burst (server/h2o/0003); an HTTP/2 piece is what the stream's window held,
 * up to 16 MiB, and goes in slices of this size. */
#define HASH_SLICE (512u << 10)

/* The part of a streamed upload that hash threads use. Loop thread only,
 * except buf and up, which the one job in flight reads on a hash thread. */
typedef struct st_hasher_t {
    br_upload_t *up;                /* the session hashed into */
    upload_job_t *owner;            /* NULL once the request is gone */
    struct st_hash_job_t *current;  /* the job queued or running, or NULL */
    int drop;                       /* the request went while current ran: its destroy releases up */
    op_t op;
    unsigned refs;                  /* owner's and current's */
    char buf[HASH_SLICE];           /* the slice being hashed, copied out of h2o's buffer */
} hasher_t;

typedef struct st_hash_job_t {
    br_io_job_t io;
    hasher_t *h;
    size_t len;
    int err;
} hash_job_t;

static void hasher_unref(hasher_t *h)
{
    if (--h->refs == 0)
        free(h);
}
#endif

static void drop_upload(upload_job_t *j)
{
    if (j->up == NULL)
        return;
#if BR_PATCHED_H2O
    if (j->hasher != NULL && j->hasher->current != NULL) {
        /* the request goes while a hash thread still hashes into it */
        j->hasher->drop = 1;
        j->up = NULL;
        return;
    }
#endif
    release_upload(j->up, j->op);
    j->up = NULL;
}

static void on_job_dispose(void *p)
{
    upload_job_t *j = p;
    br_defer_cancel(&j->defer);
    drop_upload(j);
#if BR_PATCHED_H2O
    if (j->hasher != NULL) {
        hasher_t *h = j->hasher;
        if (h->current != NULL)
            br_io_forget(&h->current->io);
        h->owner = NULL;
        j->hasher = NULL;
        hasher_unref(h);
    }
#endif
}

static void add_upload_headers_of(h2o_req_t *req, br_str_t name, const char *uuid, uint64_t size)
{
    h2o_iovec_t loc = br_pool_printf(req, "/v2/%.*s/blobs/uploads/%s", (int)name.len, name.base, uuid);
    br_add_header_token(req, H2O_TOKEN_LOCATION, loc.base, loc.len);
    /* An empty upload reports "0-0", as registry:2 does and clients expect. */
    h2o_iovec_t range = br_pool_printf(req, "0-%llu", (unsigned long long)(size == 0 ? 0 : size - 1));
    br_add_header_token(req, H2O_TOKEN_RANGE, range.base, range.len);
    br_add_header(req, "Docker-Upload-UUID", uuid, strlen(uuid));
}

static void add_upload_headers(h2o_req_t *req, br_str_t name, br_upload_t *up)
{
    add_upload_headers_of(req, name, br_upload_uuid(up), br_upload_size(up));
}

static void send_created(h2o_req_t *req, br_str_t name, const br_digest_t *d)
{
    char dig[BR_DIGEST_MAX + 1];
    br_digest_format(d, dig);
    h2o_iovec_t loc = br_pool_printf(req, "/v2/%.*s/blobs/%s", (int)name.len, name.base, dig);
    br_add_header_token(req, H2O_TOKEN_LOCATION, loc.base, loc.len);
    br_add_digest_headers(req, d, 0);
    br_send(req, 201, NULL, "", 0);
}

/* Gives back the pages of a mapped body that are already written: the data is
 * in the upload file now, so neither RSS nor the spill file needs to keep it. */
static void release_written(upload_job_t *j)
{
    /* Below the spill threshold the body is on the heap: never madvise it. */
    if (j->len < BR_SPILL_THRESHOLD)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)j->body + j->released + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t end = ((uintptr_t)j->body + j->done) & ~(uintptr_t)(page - 1);
    if (end <= start)
        return;
    /* Punch the spill file's blocks out; where the filesystem cannot, at least
     * drop the pages from this process. */
    if (madvise((void *)start, end - start, MADV_REMOVE) != 0)
        madvise((void *)start, end - start, MADV_DONTNEED);
    j->released = (size_t)(end - (uintptr_t)j->body);
}

/* The save (PATCH) or commit (PUT, monolithic POST) of a finished body, on an
 * I/O thread (iopool.c): both fsync. */
typedef struct st_commit_job_t {
    br_io_job_t io;
    br_upload_t *up;
    op_t op;
    int err;
    br_digest_t digest;
    uint64_t size, received; /* received: the session's size before the commit */
    char uuid[BR_UUID_LEN + 1];
    size_t name_len;
    char name[]; /* the repository, copied: the request may go first */
} commit_job_t;

static void do_commit(br_io_job_t *io)
{
    commit_job_t *c = (commit_job_t *)io;
    c->received = br_upload_size(c->up);
    if (c->op == OP_PATCH)
        c->err = br_upload_save(c->up);
    else
        c->err = br_upload_commit(c->up, &c->digest, &c->size);
    snprintf(c->uuid, sizeof(c->uuid), "%s", br_upload_uuid(c->up));
    c->size = c->op == OP_PATCH ? br_upload_size(c->up) : c->size;
    /* The session is released before the response goes out: a client may send
     * its next request (the final PUT) the moment it sees this one's answer,
     * possibly to another thread, and must not find the upload busy. A
     * session refused by a quota stays for a retry, unless this request made
     * it (monolithic): then nobody knows where it is. */
    if (c->err == BR_E_QUOTA && c->op == OP_MONOLITHIC)
        br_upload_cancel(c->up);
    br_upload_destroy(c->up);
    c->up = NULL;
}

static void on_commit_done(br_io_job_t *io, h2o_req_t *req)
{
    commit_job_t *c = (commit_job_t *)io;
    br_str_t name = br_str(c->name, c->name_len);
    if (c->err == BR_E_QUOTA) {
        br_send_quota_denied(req, name, &c->digest, c->received);
    } else if (c->err != 0) {
        br_send_error(req, c->err, c->err == BR_E_DIGEST_INVALID ? "digest of the uploaded content does not match" : NULL);
    } else if (c->op != OP_PATCH) {
        br_event_t e = {.action = BR_EVENT_PUSH, .repository = name, .digest = &c->digest, .size = c->size};
        br_event_emit(req, &e);
        send_created(req, name, &c->digest);
    } else {
        add_upload_headers_of(req, name, c->uuid, c->size);
        br_send(req, 202, NULL, "", 0);
    }
}

/* Hands the session to an I/O thread for its save or commit; the response
 * follows from there. */
static void finish_job(upload_job_t *j)
{
    commit_job_t *c = br_calloc(1, sizeof(*c) + j->name.len);
    c->io.run = do_commit;
    c->io.done = on_commit_done;
    c->io.destroy = br_io_free;
    c->up = j->up;
    j->up = NULL;
    c->op = j->op;
    c->digest = j->digest;
    memcpy(c->name, j->name.base, j->name.len);
    c->name_len = j->name.len;
    br_io_submit(j->req, &c->io);
}

static void run_slice(br_deferred_t *d)
{
    upload_job_t *j = H2O_STRUCT_FROM_MEMBER(upload_job_t, defer, d);
    size_t n = j->len - j->done < BR_SLICE_SIZE ? j->len - j->done : BR_SLICE_SIZE;
    if (n != 0) {
        int err = br_upload_write(j->up, j->body + j->done, n);
        if (err != 0) {
            br_upload_destroy(j->up);
            j->up = NULL;
            br_send_error(j->req, err, "cannot write upload");
            return;
        }
        j->done += n;
        release_written(j);
    }
    if (j->done < j->len)
        br_defer(&j->defer);
    else
        finish_job(j);
}

#if BR_PATCHED_H2O
static void pump(upload_job_t *j);

/* Hash thread: the slice's bytes into the session's running hash. */
static void do_hash(br_io_job_t *io)
{
    hash_job_t *hj = (hash_job_t *)io;
    hj->err = br_upload_hash(hj->h->up, hj->h->buf, hj->len);
}

/* Back on the loop, the request still there: take the piece on. */
static void on_hash_done(br_io_job_t *io, h2o_req_t *req)
{
    hash_job_t *hj = (hash_job_t *)io;
    upload_job_t *j = hj->h->owner;
    (void)req;
    hj->h->current = NULL;
    if (j->up == NULL)
        return; /* let go of (destroy releases it) */
    if (hj->err != 0 && j->fail_err == 0)
        j->fail_err = hj->err;
    pump(j);
}

/* Always, after done or instead of it (the request went away): the hash
 * thread is finished with the hasher, so a session let go of meanwhile is
 * released now. */
static void on_hash_destroy(br_io_job_t *io)
{
    hash_job_t *hj = (hash_job_t *)io;
    hasher_t *h = hj->h;
    if (h->current == hj)
        h->current = NULL;
    if (h->drop && h->current == NULL) {
        h->drop = 0;
        release_upload(h->up, h->op);
    }
    hasher_unref(h);
    free(hj);
}

/* Hands a copy of p to a hash thread (none may be in flight). */
static void hash_beside(upload_job_t *j, const char *p, size_t n)
{
    hasher_t *h = j->hasher;
    if (h == NULL) {
        /* not calloc: the buffer is overwritten before it is read */
        h = j->hasher = br_malloc(sizeof(*h));
        h->up = j->up;
        h->owner = j;
        h->current = NULL;
        h->drop = 0;
        h->op = j->op;
        h->refs = 1;
    }
    hash_job_t *hj = br_calloc(1, sizeof(*hj));
    hj->io.run = do_hash;
    hj->io.done = on_hash_done;
    hj->io.destroy = on_hash_destroy;
    hj->h = h;
    hj->len = n;
    memcpy(h->buf, p, n);
    ++h->refs;
    h->current = hj;
    br_hash_submit(j->req, &hj->io);
}

/* Takes the current piece on from where it stands: hashes (beside the loop,
 * or inline when short) and writes it slice by slice, one hash job at a time,
 * then lets h2o read more. At the body's end, on a failure and on an invalid
 * body it first waits for the last hash job: the save or commit needs every
 * byte hashed, and an error answer goes out only once the session is
 * released (a client may retry at once and must not find it busy). Returns
 * early while a hash job runs; its done calls again. */
static void pump(upload_job_t *j)
{
    h2o_req_t *req = j->req;
    int err;

    while (j->fail_err == 0 && j->piece_off < j->piece.len) {
        if (j->hasher != NULL && j->hasher->current != NULL)
            return; /* pieces are hashed in order: the last slice's hash comes first */
        size_t n = j->piece.len - j->piece_off < HASH_SLICE ? j->piece.len - j->piece_off : HASH_SLICE;
        const char *p = j->piece.base + j->piece_off;
        if (n >= HASH_OFFLOAD_MIN && br_hash_pool_running())
            hash_beside(j, p, n);
        else if ((err = br_upload_hash(j->up, p, n)) != 0)
            j->fail_err = err;
        if (j->fail_err == 0 && (err = br_upload_append(j->up, p, n)) != 0)
            j->fail_err = err;
        j->piece_off += n;
    }
    if (j->fail_err == 0 && j->piece_state == H2O_REQ_BODY_MORE) {
        /* h2o may hand the next piece from within proceed */
        j->piece = h2o_iovec_init(NULL, 0);
        j->piece_off = 0;
        h2o_req_proceed_body(req);
        return;
    }
    if (j->hasher != NULL && j->hasher->current != NULL)
        return;
    if (j->fail_err != 0) {
        drop_upload(j);
        br_send_error(req, j->fail_err, "cannot write upload");
        return;
    }
    if (j->piece_state == H2O_REQ_BODY_INVALID) {
        drop_upload(j);
        /* the answers h2o gives a buffered body (server/h2oerrors.c) */
        if (req->body_stream->status == 413)
            br_send_error(req, BR_E_TOO_LARGE, NULL);
        else
            br_send_error_code(req, 400, "UNSUPPORTED", "bad request",
                               req->version >= 0x200 ? "body length differs from content-length" : "broken chunked-encoding");
        return;
    }
    /* A chunked body's length is known only now; what it wrote past a wrong
     * Content-Range is not saved, so the session stays where it was. */
    if (j->range_len != UINT64_MAX && req->body_stream->received != 0 && req->body_stream->received != j->range_len) {
        drop_upload(j);
        br_send_error(req, BR_E_RANGE_INVALID, "Content-Range does not match the body");
        return;
    }
    finish_job(j);
}

/* One piece of a streamed body (see h2o_req_body_state_t). h2o reads
 * nothing more until pump proceeds, so pieces never overlap. */
static void on_body_piece(void *ctx, h2o_iovec_t piece, h2o_req_body_state_t state)
{
    upload_job_t *j = ctx;
    if (state == H2O_REQ_BODY_ABORTED)
        return; /* the request is disposed next, and the job with it */
    j->piece = state == H2O_REQ_BODY_INVALID ? h2o_iovec_init(NULL, 0) : piece;
    j->piece_off = 0;
    j->piece_state = state;
    pump(j);
}
#endif

/* Takes ownership of up: the job destroys it when done or when the request
 * goes away. range_len: the body's length per Content-Range, or UINT64_MAX. */
static void start_job(h2o_req_t *req, br_str_t name, br_upload_t *up, op_t op, const br_digest_t *d, uint64_t range_len)
{
    upload_job_t *j = h2o_mem_alloc_shared(&req->pool, sizeof(*j), on_job_dispose);
    memset(j, 0, sizeof(*j));
    j->defer.cb = run_slice;
    j->req = req;
    j->up = up;
    j->op = op;
    j->name = name;
    j->range_len = range_len;
    if (d != NULL)
        j->digest = *d;
#if BR_PATCHED_H2O
    if (req->body_stream != NULL) {
        h2o_req_read_body(req, on_body_piece, j);
        return;
    }
#endif
    j->body = req->entity.base;
    j->len = req->entity.base != NULL ? req->entity.len : 0;
    run_slice(&j->defer);
}

/* 1 when the request carries a body (streamed bodies are never empty). */
static int has_body(h2o_req_t *req)
{
#if BR_PATCHED_H2O
    if (req->body_stream != NULL)
        return 1;
#endif
    return req->entity.base != NULL && req->entity.len != 0;
}

/* The body's length when known before it is read (0 when there is none),
 * else UINT64_MAX (a streamed chunked body). */
static uint64_t body_length(h2o_req_t *req)
{
#if BR_PATCHED_H2O
    if (req->body_stream != NULL)
        return req->body_stream->length == SIZE_MAX ? UINT64_MAX : req->body_stream->length;
#endif
    return req->entity.base != NULL ? req->entity.len : 0;
}

/* Parses "<start>-<end>" (optionally after "bytes " or "bytes=", optionally
 * followed by "/<total>", which must then cover the range). */
static int parse_content_range(br_str_t v, uint64_t *start, uint64_t *end)
{
    const char *p = v.base, *e = v.base + v.len;
    if (v.len >= 6 && (memcmp(p, "bytes ", 6) == 0 || memcmp(p, "bytes=", 6) == 0))
        p += 6;
    uint64_t a, b, total;
    if (br_parse_u64(&p, e, &a) != 1 || p == e || *p++ != '-' || br_parse_u64(&p, e, &b) != 1 || b < a)
        return -1;
    if (p != e && (*p++ != '/' || br_parse_u64(&p, e, &total) != 1 || p != e || total <= b))
        return -1;
    *start = a;
    *end = b;
    return 0;
}

/* Checks an optional Content-Range against the upload's size and the body;
 * *range_len gets the length it gives (UINT64_MAX without one), for a body
 * whose length is known only at its end. */
static int check_content_range(h2o_req_t *req, br_upload_t *up, uint64_t *range_len)
{
    *range_len = UINT64_MAX;
    br_str_t cr = br_req_header(req, H2O_TOKEN_CONTENT_RANGE);
    if (cr.len == 0)
        return 0;
    uint64_t start, end, len = body_length(req);
    if (parse_content_range(cr, &start, &end) != 0)
        return BR_E_RANGE_INVALID;
    if (start != br_upload_size(up))
        return BR_E_RANGE_INVALID; /* out of order or overlapping chunk */
    if (len != 0 && len != UINT64_MAX && end - start + 1 != len)
        return BR_E_RANGE_INVALID;
    *range_len = end - start + 1;
    return 0;
}

/* Digest from "?digest=": 1 with *d filled, 0 when absent, or an error. */
static int query_digest(h2o_req_t *req, const char *key, br_digest_t *d)
{
    br_str_t v;
    int r = br_query_param(req, key, &v);
    if (r == 0)
        return 0;
    if (r < 0 || br_digest_parse(d, v) != 0)
        return BR_E_DIGEST_INVALID;
    return 1;
}

/* Automatic mount with auth on: a repository the caller may take the blob
 * from. br_may_pull is pure CPU (rules and token grants), as storage needs:
 * it runs under the index's writer lock. */
static int on_may_pull(void *ctx, br_str_t repo)
{
    return br_may_pull(ctx, repo);
}

/* What POST .../blobs/uploads/ does to the store, on an I/O thread: a mount
 * (?mount=), else a new session (both commit to the index). */
typedef struct st_start_job_t {
    br_io_job_t io;
    int mount;         /* try the mount first */
    int mount_err;     /* its outcome (0: mounted) */
    int has_from;      /* from names the source (else any repository) */
    int digest_param;  /* ?digest=: 1 monolithic, 0 none */
    int err;           /* of br_upload_start */
    br_digest_t mount_digest, digest;
    br_upload_t *up;   /* the new session, until done takes it */
    br_str_t name, from; /* in buf */
    char buf[];
} start_job_t;

static void do_start(br_io_job_t *io)
{
    start_job_t *j = (start_job_t *)io;
    if (j->mount) {
        j->mount_err = br_blob_mount(br_srv.store, j->name, j->has_from ? j->from : br_str("", 0), &j->mount_digest, NULL);
        /* A mount the quota refuses is refused: an upload instead would only
         * be refused at its end, after the client sent every byte. */
        if (j->mount_err == 0 || j->mount_err == BR_E_QUOTA)
            return;
    }
    if (j->digest_param >= 0)
        j->err = br_upload_start(br_srv.store, j->name, &j->up);
}

static void on_start_done(br_io_job_t *io, h2o_req_t *req)
{
    start_job_t *j = (start_job_t *)io;
    /* the request's own copy: the upload job keeps it past this job */
    br_str_t name = br_str(h2o_strdup(&req->pool, j->name.base, j->name.len).base, j->name.len);
    if (j->mount && j->mount_err == 0) {
        br_event_t e = {.action = BR_EVENT_MOUNT, .repository = name, .digest = &j->mount_digest, .from = j->from};
        br_blob_stat_any(br_srv.store, &j->mount_digest, &e.size);
        br_event_emit(req, &e);
        send_created(req, name, &j->mount_digest);
        return;
    }
    if (j->mount && j->mount_err == BR_E_QUOTA) {
        br_send_quota_denied(req, name, &j->mount_digest, 0);
        return;
    }
    if (j->digest_param < 0) {
        br_send_error(req, j->digest_param, "invalid digest");
        return;
    }
    if (j->err != 0) {
        br_send_error(req, j->err, NULL);
        return;
    }
    br_upload_t *up = j->up;
    j->up = NULL;
    if (j->digest_param == 1) {
        /* Monolithic upload: the whole blob in this one request. */
        start_job(req, name, up, OP_MONOLITHIC, &j->digest, UINT64_MAX);
        return;
    }
    if (has_body(req)) {
        /* A body without a digest is taken as the first chunk. */
        start_job(req, name, up, OP_PATCH, NULL, UINT64_MAX);
        return;
    }
    add_upload_headers(req, name, up);
    br_add_header(req, "OCI-Chunk-Min-Length", CHUNK_MIN_LENGTH, strlen(CHUNK_MIN_LENGTH));
    br_upload_destroy(up);
    br_send(req, 202, NULL, "", 0);
}

static void on_start_destroy(br_io_job_t *io)
{
    start_job_t *j = (start_job_t *)io;
    /* The request went away before it got its session: a monolithic one
     * leaves no trace; a plain one is the client's to resume (it never learnt
     * the uuid, so the purge removes it). */
    if (j->up != NULL) {
        if (j->digest_param == 1) {
            cancel_upload(NULL, j->up);
        } else {
            br_upload_destroy(j->up);
        }
    }
    free(j);
}

int br_handle_upload_start(h2o_req_t *req, const br_match_t *m)
{
    br_digest_t d, md;
    br_str_t from = {NULL, 0};
    int r, mount, has_from = 0;
    memset(&md, 0, sizeof(md));

    /* Cross-repository mount: 201 when the blob can be linked, else fall back
     * to an ordinary upload session (202), as the spec asks. */
    if ((mount = query_digest(req, "mount", &md)) < 0)
        return br_send_error(req, mount, "invalid mount digest");
    if ((r = query_digest(req, "digest", &d)) < 0 && mount == 0)
        return br_send_error(req, r, "invalid digest");
    if (mount == 1) {
        if (br_query_param(req, "from", &from) == 1) {
            has_from = 1;
            /* with auth on, the router checked pull on from */
            if (!br_name_valid(from) || (m->auth != NULL && !m->auth->from_allowed))
                mount = 0;
        } else if (m->auth != NULL) {
            /* No from, auth on: any repository holding the blob that the
             * caller may pull, so a mount never reads what a pull could not.
             * The choice reads the request's grants (in its pool), so it runs
             * here, on the loop, not on an I/O thread. */
            int err = br_blob_mount_any(br_srv.store, m->name, &md, on_may_pull, (void *)m, NULL);
            if (err == BR_E_QUOTA)
                return br_send_quota_denied(req, m->name, &md, 0);
            if (err == 0) {
                br_event_t e = {.action = BR_EVENT_MOUNT, .repository = m->name, .digest = &md};
                br_blob_stat_any(br_srv.store, &md, &e.size);
                br_event_emit(req, &e);
                send_created(req, m->name, &md);
                return 0;
            }
            mount = 0;
        }
    }
    if (r < 0 && mount == 0)
        return br_send_error(req, r, "invalid digest");
    start_job_t *j = br_calloc(1, sizeof(*j) + m->name.len + from.len);
    char *cur = j->buf;
    j->io.run = do_start;
    j->io.done = on_start_done;
    j->io.destroy = on_start_destroy;
    j->mount = mount == 1;
    j->mount_digest = md;
    j->has_from = has_from;
    j->digest_param = r;
    if (r == 1)
        j->digest = d;
    j->name = br_io_copy(&cur, m->name);
    j->from = br_io_copy(&cur, from);
    br_io_submit(req, &j->io);
    return 0;
}

int br_handle_upload(h2o_req_t *req, const br_match_t *m)
{
    br_store_t *st = br_srv.store;
    br_upload_t *up;
    int err;

    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
        if ((err = br_upload_resume(st, m->name, m->reference, &up)) != 0)
            return br_send_error(req, err, NULL);
        cancel_upload(req, up);
        return 0;
    }

    br_digest_t d;
    int has_digest = 0;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT"))) {
        if ((has_digest = query_digest(req, "digest", &d)) <= 0)
            return br_send_error(req, BR_E_DIGEST_INVALID, has_digest == 0 ? "digest parameter missing" : "invalid digest");
    }
    if ((err = br_upload_resume(st, m->name, m->reference, &up)) != 0)
        return br_send_error(req, err, NULL);

    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        add_upload_headers(req, m->name, up);
        br_upload_destroy(up);
        br_send(req, 204, NULL, "", 0);
        return 0;
    }
    uint64_t range_len;
    if ((err = check_content_range(req, up, &range_len)) != 0) {
        /* Tell the client where the upload really stands so it can resume. */
        add_upload_headers(req, m->name, up);
        br_upload_destroy(up);
        return br_send_error(req, err, "Content-Range does not continue the upload");
    }
    start_job(req, m->name, up, has_digest ? OP_PUT : OP_PATCH, has_digest ? &d : NULL, range_len);
    return 0;
}

/* The purge of abandoned sessions, on an I/O thread (it commits to the
 * index); nobody waits for it. */
typedef struct st_purge_job_t {
    br_io_job_t io;
    uint64_t age_s;
} purge_job_t;

static void do_purge(br_io_job_t *io)
{
    int n = br_upload_purge(br_srv.store, ((purge_job_t *)io)->age_s);
    if (n > 0)
        br_info("purged %d abandoned upload%s", n, n == 1 ? "" : "s");
    else if (n < 0)
        br_warn("purging abandoned uploads: %s", br_strerror(n));
}

void br_uploads_maybe_purge(void)
{
    static uint64_t next_ms;
    uint64_t now = br_now_ms();
    if (now < next_ms)
        return;
    next_ms = now + 60 * 1000;
    purge_job_t *j = br_calloc(1, sizeof(*j));
    j->io.run = do_purge;
    j->io.destroy = br_io_free;
    j->age_s = br_cfg()->storage.upload_purge_age_s;
    br_io_submit(NULL, &j->io);
}
