/*
 * The event queue of notifications: events wait in the index (sub-database
 * "events", key = 8-byte big-endian sequence number, value = the event as the
 * server wrote it) until every endpoint has taken them, so they survive a
 * restart and a kill -9 (LMDB commits are durable). Each endpoint's position
 * (the last sequence it acknowledged), the last sequence given out and the
 * count of events dropped for room are rows of "meta" ("ev.pos.<name>",
 * "ev.last", "ev.dropped"), written in the same transactions, so a position
 * never points past what was written and a number is never given twice.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "storage/internal.h"

static void put_be64(unsigned char *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static int meta_u64(MDB_txn *txn, br_store_t *s, const char *key, uint64_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    *out = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return br_store_mdb_err(rc, "read event counter");
    if (v.mv_size == 8)
        *out = get_be64(v.mv_data);
    return 0;
}

static int put_meta_u64(MDB_txn *txn, br_store_t *s, const char *key, uint64_t val)
{
    unsigned char b[8];
    put_be64(b, val);
    MDB_val k = {strlen(key), (void *)key}, v = {8, b};
    int rc = mdb_put(txn, s->db_meta, &k, &v, 0);
    return rc != 0 ? br_store_mdb_err(rc, "write event counter") : 0;
}

int br_store_events_append(br_store_t *s, const br_str_t *ev, size_t n, uint64_t max, uint64_t *dropped)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char key[8];
    uint64_t next, last, count, gone = 0, total;
    int rc, ret;
    if (dropped != NULL)
        *dropped = 0;
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_cursor_open(txn, s->db_events, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "open events cursor");
        goto Exit;
    }
    /* Sequence numbers never repeat, also once the queue is trimmed empty:
     * the positions of the endpoints refer to them. */
    if ((ret = meta_u64(txn, s, "ev.last", &last)) != 0)
        goto Exit;
    next = last + 1;
    if ((rc = mdb_cursor_get(cur, &k, &v, MDB_LAST)) == 0 && k.mv_size == 8 && get_be64(k.mv_data) >= next)
        next = get_be64(k.mv_data) + 1;
    for (size_t i = 0; i < n; i++, next++) {
        put_be64(key, next);
        k = (MDB_val){8, key};
        v = (MDB_val){ev[i].len, (void *)ev[i].base};
        if ((rc = mdb_put(txn, s->db_events, &k, &v, MDB_APPEND)) != 0) {
            ret = br_store_mdb_err(rc, "append event");
            goto Exit;
        }
    }
    if ((ret = put_meta_u64(txn, s, "ev.last", next - 1)) != 0)
        goto Exit;
    MDB_stat st;
    mdb_stat(txn, s->db_events, &st);
    count = st.ms_entries;
    /* Full: the oldest go first, so that what is delivered late is at
     * least the most recent history. */
    while (count > max && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if ((rc = mdb_cursor_del(cur, 0)) != 0) {
            ret = br_store_mdb_err(rc, "drop event");
            goto Exit;
        }
        count--;
        gone++;
    }
    if (gone != 0) {
        if ((ret = meta_u64(txn, s, "ev.dropped", &total)) != 0 || (ret = put_meta_u64(txn, s, "ev.dropped", total + gone)) != 0)
            goto Exit;
        if (dropped != NULL)
            *dropped = gone;
    }
Exit:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return br_store_wtxn_end(&txn, ret);
}

int br_store_events_read(br_store_t *s, uint64_t after, size_t max, br_event_cb cb, void *ctx)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    unsigned char key[8];
    int rc, ret;
    if ((ret = br_store_rtxn_begin(s, &txn)) != 0)
        return ret;
    if ((rc = mdb_cursor_open(txn, s->db_events, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "open events cursor");
        goto Exit;
    }
    put_be64(key, after + 1);
    MDB_val k = {8, key}, v;
    for (size_t i = 0; i < max && (rc = mdb_cursor_get(cur, &k, &v, i == 0 ? MDB_SET_RANGE : MDB_NEXT)) == 0; i++)
        if (k.mv_size == 8 && (ret = cb(ctx, get_be64(k.mv_data), br_str(v.mv_data, v.mv_size))) != 0)
            break;
    if (rc != 0 && rc != MDB_NOTFOUND)
        ret = br_store_mdb_err(rc, "read events");
Exit:
    if (cur != NULL)
        mdb_cursor_close(cur);
    br_store_rtxn_end(s, txn);
    return ret;
}

int br_store_events_pos(br_store_t *s, const char *name, uint64_t *seq)
{
    MDB_txn *txn = NULL;
    char key[128];
    snprintf(key, sizeof(key), "ev.pos.%s", name);
    int ret = br_store_rtxn_begin(s, &txn);
    if (ret != 0)
        return ret;
    ret = meta_u64(txn, s, key, seq);
    br_store_rtxn_end(s, txn);
    return ret;
}

int br_store_events_ack(br_store_t *s, const char *name, uint64_t seq, uint64_t trim_upto)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    char key[128];
    int rc, ret;
    snprintf(key, sizeof(key), "ev.pos.%s", name != NULL ? name : "");
    if ((ret = br_store_wtxn_begin(s, &txn)) != 0)
        return ret;
    if (name != NULL && (ret = put_meta_u64(txn, s, key, seq)) != 0)
        goto Exit;
    if ((rc = mdb_cursor_open(txn, s->db_events, &cur)) != 0) {
        ret = br_store_mdb_err(rc, "open events cursor");
        goto Exit;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 && k.mv_size == 8 && get_be64(k.mv_data) <= trim_upto)
        if ((rc = mdb_cursor_del(cur, 0)) != 0) {
            ret = br_store_mdb_err(rc, "trim events");
            goto Exit;
        }
Exit:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return br_store_wtxn_end(&txn, ret);
}

int br_store_events_stats(br_store_t *s, uint64_t *queued, uint64_t *dropped)
{
    MDB_txn *txn = NULL;
    int ret = br_store_rtxn_begin(s, &txn);
    if (ret != 0)
        return ret;
    MDB_stat st;
    mdb_stat(txn, s->db_events, &st);
    *queued = st.ms_entries;
    ret = meta_u64(txn, s, "ev.dropped", dropped);
    br_store_rtxn_end(s, txn);
    return ret;
}
