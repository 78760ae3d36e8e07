/*
 * Quotas (config 'quotas', storage.h): the server records the configured
 * scopes in the index at start and at each reload, where every process's
 * write txns enforce them and keep their counters; this file turns the
 * config into that list and a refusal into its 403.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "server/server.h"

_Static_assert(BR_CONFIG_MAX_QUOTAS <= BR_QUOTA_MAX, "the index must hold every configured quota");

size_t br_quota_list(const br_config_t *c, br_quota_t *q)
{
    for (size_t i = 0; i < c->num_quotas; i++) {
        const char *glob = c->quotas[i].repository != NULL ? c->quotas[i].repository : "";
        memset(&q[i], 0, sizeof(q[i]));
        snprintf(q[i].glob, sizeof(q[i].glob), "%s", glob);
        q[i].max_bytes = c->quotas[i].max_bytes;
    }
    return c->num_quotas;
}

int br_quota_sync(const br_config_t *c, int recompute_all)
{
    br_quota_t q[BR_CONFIG_MAX_QUOTAS];
    size_t n = br_quota_list(c, q);
    int err = br_store_quotas_set(br_srv.store, q, n, recompute_all);
    if (err != 0)
        br_error("quotas: cannot record them in the index: %s", br_strerror(err));
    else if (n != 0)
        br_info("quotas: %zu in force", n);
    return err;
}

void br_quota_human(uint64_t v, char *buf, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (v < 1024) {
        snprintf(buf, size, "%" PRIu64 " bytes", v);
        return;
    }
    double x = (double)v / 1024;
    size_t u = 0;
    while (x >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        x /= 1024;
        u++;
    }
    /* exact amounts (a configured 50GiB) without a decimal */
    if (v % (1ULL << (10 * (u + 1))) == 0)
        snprintf(buf, size, "%.0f %s", x, units[u]);
    else
        snprintf(buf, size, "%.1f %s", x, units[u]);
}

int br_send_quota_denied(h2o_req_t *req, br_str_t repo, const br_digest_t *d, uint64_t size)
{
    br_quota_t q;
    char used[32], max[32], need[32];
    /* The txn that refused has ended: explain reads the index as it is now,
     * so a delete in between leaves the refusal without its figures. */
    if (br_store_quota_explain(br_srv.store, repo, d, size, &q) != BR_E_QUOTA)
        return br_send_error_code(req, 403, "DENIED", "quota exceeded", NULL);
    br_quota_human(q.used_bytes, used, sizeof(used));
    br_quota_human(q.max_bytes, max, sizeof(max));
    br_quota_human(q.need_bytes, need, sizeof(need));
    h2o_iovec_t msg = q.glob[0] == '\0'
                          ? br_pool_printf(req, "global quota exceeded: %s stored of %s, this needs %s more", used, max, need)
                          : br_pool_printf(req, "quota \"%s\" exceeded: %s used of %s, this needs %s more", q.glob, used, max, need);
    return br_send_error_code(req, 403, "DENIED", msg.base, NULL);
}
