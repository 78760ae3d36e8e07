/*
 * Background threads of the server that are no event loop (the collector,
 * the scrub): started after the store opens, stopped (promptly: their long
 * work checks w->stop) before it closes.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include "server/server.h"

void br_worker_start(br_worker_t *w, void *(*fn)(void *), const char *what)
{
    if (w->running)
        return;
    w->stop = 0;
    if (pthread_create(&w->tid, NULL, fn, NULL) != 0) {
        br_error("%s: cannot start its thread: %s", what, strerror(errno));
        return;
    }
    w->running = 1;
}

void br_worker_stop(br_worker_t *w)
{
    if (!w->running)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->tid, NULL);
    w->running = 0;
}

int br_worker_wait(br_worker_t *w, uint64_t ms, const int *also)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (!w->stop && (also == NULL || !*also) && pthread_cond_timedwait(&w->wake, &w->lock, &until) != ETIMEDOUT)
        ;
    return w->stop;
}
