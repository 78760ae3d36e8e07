/*
 * The scrub thread of `berth serve` (config scrub.rate): re-hashes stored
 * blobs with br_store_scrub, about rate bytes each second, forever; storage
 * quarantines a blob whose bytes no longer match its digest. The rate is a
 * long-run bound: after each second's budget the thread sleeps out the rest
 * of the second (longer after a blob bigger than the budget).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "server/server.h"

static struct {
    br_worker_t w;
    uint64_t rate; /* under w.lock: a reload frees the config */
} scrub = {.w = BR_WORKER_INIT};

static void *scrub_main(void *arg)
{
    br_scrub_cursor_t cur = {{0}, 0};
    uint64_t pass_blobs = 0, pass_bytes = 0, pass_quarantined = 0, pass_start = br_now_ms();
    (void)arg;
    pthread_mutex_lock(&scrub.w.lock);
    while (!scrub.w.stop) {
        uint64_t rate = scrub.rate, t0 = br_now_ms();
        pthread_mutex_unlock(&scrub.w.lock);
        br_scrub_stats_t st;
        int err = br_store_scrub(br_srv.store, &cur, rate, &scrub.w.stop, &st);
        if (err != 0 && err != ECANCELED)
            br_error("scrub: %s", br_strerror(err));
        pass_blobs += st.blobs;
        pass_bytes += st.bytes;
        pass_quarantined += st.quarantined;
        if (st.wrapped) {
            if (pass_blobs != 0)
                br_info("scrub: pass done: %" PRIu64 " blobs, %" PRIu64 " bytes re-hashed in %" PRIu64 " s, %" PRIu64
                        " quarantined",
                        pass_blobs, pass_bytes, (br_now_ms() - pass_start) / 1000, pass_quarantined);
            pass_blobs = pass_bytes = pass_quarantined = 0;
            pass_start = br_now_ms();
        }
        /* Sleep out the time this many bytes are worth at the rate (a
         * second for an empty store, so an idle scrub costs nothing). */
        uint64_t due = rate != 0 && st.bytes != 0 ? st.bytes * 1000 / rate : 1000, spent = br_now_ms() - t0;
        pthread_mutex_lock(&scrub.w.lock);
        if (br_worker_wait(&scrub.w, due > spent ? due - spent : 0, NULL))
            break;
    }
    pthread_mutex_unlock(&scrub.w.lock);
    return NULL;
}

void br_scrub_start(const br_config_t *c)
{
    scrub.rate = c->scrub.rate;
    if (c->scrub.rate != 0)
        br_worker_start(&scrub.w, scrub_main, "scrub");
}

void br_scrub_stop(void)
{
    br_worker_stop(&scrub.w);
}

void br_scrub_reconfigure(const br_config_t *c)
{
    if (c->scrub.rate == 0 || !scrub.w.running) {
        br_scrub_stop();
        br_scrub_start(c);
        return;
    }
    pthread_mutex_lock(&scrub.w.lock);
    scrub.rate = c->scrub.rate;
    pthread_mutex_unlock(&scrub.w.lock);
}
