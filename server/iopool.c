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
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

static pthread_mutex_t io_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t io_wake = PTHREAD_COND_INITIALIZER;
static br_io_job_t *queue_head, **queue_tail = &queue_head; /* FIFO, under io_lock */
static int io_stopping;
static pthread_t *io_tids;
static size_t num_io_threads;
static unsigned io_jobs; /* submitted and not yet destroyed (atomic), for the metrics */

unsigned br_io_jobs(void)
{
    return __atomic_load_n(&io_jobs, __ATOMIC_RELAXED);
}

static void job_destroy(br_io_job_t *j)
{
    br_snapshot_t *snap = j->_snap;
    j->destroy(j);
    br_snapshot_release(snap);
    __atomic_sub_fetch(&io_jobs, 1, __ATOMIC_RELAXED);
}

/* Pool thread: runs jobs in arrival order and hands each back to its owner. */
static void *io_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&io_lock);
    for (;;) {
        while (queue_head == NULL && !io_stopping)
            pthread_cond_wait(&io_wake, &io_lock);
        br_io_job_t *j = queue_head;
        if (j == NULL)
            break; /* stopping, and nothing left to run */
        if ((queue_head = j->_next) == NULL)
            queue_tail = &queue_head;
        pthread_mutex_unlock(&io_lock);
        j->run(j);
        pthread_mutex_lock(&io_lock);
        br_thread_t *t = j->_owner;
        j->_next = t->io_done;
        t->io_done = j;
        pthread_mutex_unlock(&io_lock);
        br_thread_wake(t);
        pthread_mutex_lock(&io_lock);
    }
    pthread_mutex_unlock(&io_lock);
    return NULL;
}

void br_io_start(unsigned n)
{
    num_io_threads = n != 0 ? n : 1;
    io_tids = br_calloc(num_io_threads, sizeof(*io_tids));
    for (size_t i = 0; i < num_io_threads; i++) {
        int err = pthread_create(&io_tids[i], NULL, io_main, NULL);
        if (err != 0) {
            br_error("cannot start I/O thread: %s", strerror(err));
            abort();
        }
    }
}

void br_io_stop(br_thread_t *threads, size_t n)
{
    if (io_tids == NULL)
        return;
    pthread_mutex_lock(&io_lock);
    io_stopping = 1;
    pthread_cond_broadcast(&io_wake);
    pthread_mutex_unlock(&io_lock);
    for (size_t i = 0; i < num_io_threads; i++)
        pthread_join(io_tids[i], NULL);
    free(io_tids);
    io_tids = NULL;
    /* Answers no loop is left to send (a drain that hit its deadline): the
     * work is done, only the job is freed; its request is never touched. */
    for (size_t i = 0; i < n; i++) {
        br_io_job_t *j = threads[i].io_done;
        threads[i].io_done = NULL;
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

void br_io_submit(h2o_req_t *req, br_io_job_t *j)
{
    br_thread_t *t = br_thread;
    j->_owner = t;
    j->_req = req;
    j->_slot = NULL;
    if (req != NULL) {
        j->_slot = h2o_mem_alloc_shared(&req->pool, sizeof(*j->_slot), on_req_dispose);
        *j->_slot = j;
    }
    j->_snap = t != NULL ? t->snap : NULL;
    if (j->_snap != NULL)
        __atomic_add_fetch(&j->_snap->_refs, 1, __ATOMIC_ACQ_REL);
    j->_next = NULL;
    __atomic_add_fetch(&io_jobs, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&io_lock);
    if (io_stopping || t == NULL) {
        /* A job without a request (a clean-up) made while the pool stops, or
         * off a loop: run it here. */
        pthread_mutex_unlock(&io_lock);
        j->run(j);
        job_destroy(j);
        return;
    }
    *queue_tail = j;
    queue_tail = &j->_next;
    pthread_cond_signal(&io_wake);
    pthread_mutex_unlock(&io_lock);
}

void br_io_complete(br_thread_t *t)
{
    pthread_mutex_lock(&io_lock);
    br_io_job_t *list = t->io_done, *rev = NULL;
    t->io_done = NULL;
    pthread_mutex_unlock(&io_lock);
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
