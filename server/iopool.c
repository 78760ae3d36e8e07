/*
 * The I/O thread pool: store calls that wait for the disk (an upload's commit
 * with its file fsync, directory fsync and LMDB sync; an upload's save; every
 * other LMDB write transaction, whose commit syncs) run here, never on an
 * event-loop thread. A loop that ran them itself would keep every other
 * request on that thread waiting behind the disk, and would have at most one
 * commit in flight; here io_threads commits proceed at once while the loops
 * keep serving. Durability is unchanged: the response is sent only once the
 * store call has returned, i.e. after its syncs.
 *
 * A job crosses threads twice and touches h2o only on its owner loop thread:
 *   1. the handler fills a malloc'd job (plain data copied out of the request:
 *      the request and its pool may be gone before the job runs) and submits
 *      it; the pool's hook in req->pool notes when the request is disposed;
 *   2. a pool thread runs job->run, which calls storage only;
 *   3. the job is queued back to its owner thread, whose eventfd (the one
 *      deferred work and evictions use) wakes it; there job->done sends the
 *      response, unless the request went away meanwhile (client reset or
 *      disconnect, HTTP/2 RST_STREAM), in which case nothing of the request
 *      is touched; then job->destroy frees the job.
 * The owner's loop thread is the only one that reads or writes _req and the
 * hook's back pointer, so those need no lock.
 *
 * Each job holds a reference to its thread's config snapshot, so what run
 * reads from the config (an immutable-tag rule) stays valid even if a reload
 * moves the loop to a newer one meanwhile.
 *
 * Shutdown: the loops drain (a request whose job is in flight keeps its
 * connection, so its loop waits for the answer), then br_io_stop lets the
 * pool threads finish what is queued and destroys jobs whose loop is gone,
 * before the store closes.
 *
 * A second pool of the same kind, the hash pool (br_hash_submit), hashes
 * upload pieces beside the loop (uploads.c). It has its own queue and
 * threads (one per CPU the event loops leave; none when they fill every CPU)
 * so a hash job never waits behind fsync-bound jobs; its jobs come
 * back through the same per-thread completion list. It takes no hook in
 * req->pool (an upload submits one job per piece, and the pool's shared
 * entries would pile up for the request's lifetime): its caller reports the
 * request's end with br_io_forget.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

/* A queue and the threads that run it. */
typedef struct st_pool_t {
    const char *what;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    br_io_job_t *head, **tail; /* FIFO, under lock */
    int stopping;
    pthread_t *tids;
    size_t num_threads;
} pool_t;

static pool_t io_pool = {"I/O", PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &io_pool.head, 0, NULL, 0};
static pool_t hash_pool = {"hash", PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &hash_pool.head, 0, NULL, 0};
/* Guards every thread's io_done list (both pools complete into it). */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned io_jobs; /* I/O jobs submitted and not yet destroyed (atomic), for the metrics */

unsigned br_io_jobs(void)
{
    return __atomic_load_n(&io_jobs, __ATOMIC_RELAXED);
}

static void job_destroy(br_io_job_t *j)
{
    br_snapshot_t *snap = j->_snap;
    int counted = j->_pool == &io_pool;
    j->destroy(j);
    br_snapshot_release(snap);
    if (counted)
        __atomic_sub_fetch(&io_jobs, 1, __ATOMIC_RELAXED);
}

/* Pool thread: runs jobs in arrival order and hands each back to its owner. */
static void *pool_main(void *arg)
{
    pool_t *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->wake, &p->lock);
        br_io_job_t *j = p->head;
        if (j == NULL)
            break; /* stopping, and nothing left to run */
        if ((p->head = j->_next) == NULL)
            p->tail = &p->head;
        pthread_mutex_unlock(&p->lock);
        j->run(j);
        br_thread_t *t = j->_owner;
        pthread_mutex_lock(&done_lock);
        j->_next = t->io_done;
        t->io_done = j;
        pthread_mutex_unlock(&done_lock);
        br_thread_wake(t);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void pool_start(pool_t *p, unsigned n)
{
    p->num_threads = n != 0 ? n : 1;
    p->stopping = 0;
    p->tids = br_calloc(p->num_threads, sizeof(*p->tids));
    for (size_t i = 0; i < p->num_threads; i++) {
        int err = pthread_create(&p->tids[i], NULL, pool_main, p);
        if (err != 0) {
            br_error("cannot start %s thread: %s", p->what, strerror(err));
            abort();
        }
    }
}

/* Lets p's threads finish what is queued, then joins them. */
static void pool_stop(pool_t *p)
{
    if (p->tids == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->num_threads; i++)
        pthread_join(p->tids[i], NULL);
    free(p->tids);
    p->tids = NULL;
}

void br_io_start(unsigned io_threads, unsigned hash_threads)
{
    pool_start(&io_pool, io_threads);
    if (hash_threads != 0)
        pool_start(&hash_pool, hash_threads);
}

int br_hash_pool_running(void)
{
    return hash_pool.tids != NULL;
}

void br_io_stop(br_thread_t *threads, size_t n)
{
    if (io_pool.tids == NULL)
        return;
    /* The hash pool first: a hash job's destroy may submit an I/O job (the
     * cancel of a session its request left behind). */
    pool_stop(&hash_pool);
    pool_stop(&io_pool);
    /* Answers no loop is left to send (a drain that hit its deadline): the
     * work is done, only the job is freed; its request is never touched. A
     * job that destroy submits now runs at once (the pool is stopping). */
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&done_lock);
        br_io_job_t *j = threads[i].io_done;
        threads[i].io_done = NULL;
        pthread_mutex_unlock(&done_lock);
        while (j != NULL) {
            br_io_job_t *next = j->_next;
            job_destroy(j);
            j = next;
        }
    }
}

/* req->pool's hook: the request goes away before its job came back. */
static void on_req_dispose(void *p)
{
    br_io_job_t **slot = p;
    if (*slot != NULL)
        (*slot)->_req = NULL;
}

static void submit(pool_t *p, h2o_req_t *req, br_io_job_t *j)
{
    br_thread_t *t = br_thread;
    j->_owner = t;
    j->_req = req;
    j->_pool = p;
    j->_snap = t != NULL ? t->snap : NULL;
    if (j->_snap != NULL)
        __atomic_add_fetch(&j->_snap->_refs, 1, __ATOMIC_ACQ_REL);
    j->_next = NULL;
    if (p == &io_pool)
        __atomic_add_fetch(&io_jobs, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&p->lock);
    if (p->stopping || t == NULL) {
        /* A job without a request (a clean-up) made while the pool stops, or
         * off a loop: run it here. */
        pthread_mutex_unlock(&p->lock);
        j->run(j);
        job_destroy(j);
        return;
    }
    *p->tail = j;
    p->tail = &j->_next;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void br_io_submit(h2o_req_t *req, br_io_job_t *j)
{
    j->_slot = NULL;
    if (req != NULL) {
        j->_slot = h2o_mem_alloc_shared(&req->pool, sizeof(*j->_slot), on_req_dispose);
        *j->_slot = j;
    }
    submit(&io_pool, req, j);
}

void br_hash_submit(h2o_req_t *req, br_io_job_t *j)
{
    j->_slot = NULL;
    submit(&hash_pool, req, j);
}

void br_io_forget(br_io_job_t *j)
{
    j->_req = NULL;
}

void br_io_complete(br_thread_t *t)
{
    pthread_mutex_lock(&done_lock);
    br_io_job_t *list = t->io_done, *rev = NULL;
    t->io_done = NULL;
    pthread_mutex_unlock(&done_lock);
    /* in completion order */
    while (list != NULL) {
        br_io_job_t *next = list->_next;
        list->_next = rev;
        rev = list;
        list = next;
    }
    while (rev != NULL) {
        br_io_job_t *j = rev, *next = j->_next;
        if (j->_req != NULL) {
            if (j->_slot != NULL)
                *j->_slot = NULL;
            j->done(j, j->_req);
        }
        job_destroy(j);
        rev = next;
    }
}

br_str_t br_io_copy(char **cursor, br_str_t s)
{
    br_str_t out = br_str(*cursor, s.len);
    if (s.len != 0)
        memcpy(*cursor, s.base, s.len);
    *cursor += s.len;
    return out;
}

void br_io_free(br_io_job_t *j)
{
    free(j);
}
