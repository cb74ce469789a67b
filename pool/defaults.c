/*
 * Every default of a pool and a cluster, as values, in one place
 * (include/clink/pool.h documents each field; zero in a caller's options
 * means the value here). clink__pool_opts_resolve and
 * clink__cluster_opts_resolve are the only places a caller's zeros become
 * them.
 */
#include "pool/pool_int.h"

const struct clink_pool_opts clink_pool_opts_default = {
    .min_conns = 1,
    .max_conns = 4, /* at most MAX_SLOTS */
    .max_calls_per_conn = 256,
    .max_waiting = 1024,
    .idle_timeout_ms = 30000,
    .ping_interval_ms = 5000,
    .ping_timeout_ms = 2000,
    .connect_timeout_ms = 5000,
    .backoff_min_ms = 100,
    .backoff_max_ms = 5000,
    /* RFC 8446 5.5: about 2^24.5 records per AES-GCM key; recycle at a quarter of that. */
    .recycle_records = 1ull << 23,
    .recycle_age_ms = 0, /* never */
    .max_dials_in_flight = 2,
    .ktls = 0, /* the node's */
    .recycle_grace_ms = 10000,
};

#define FILL(o, d, field)                                                                                              \
    do {                                                                                                               \
        if ((o)->field == 0) {                                                                                         \
            (o)->field = (d)->field;                                                                                   \
        }                                                                                                              \
    } while (0)

void clink__pool_opts_resolve(struct clink_pool_opts *o)
{
    const struct clink_pool_opts *d = &clink_pool_opts_default;
    FILL(o, d, min_conns);
    FILL(o, d, max_conns);
    FILL(o, d, max_calls_per_conn);
    FILL(o, d, max_waiting);
    FILL(o, d, idle_timeout_ms);
    FILL(o, d, ping_interval_ms);
    FILL(o, d, ping_timeout_ms);
    FILL(o, d, connect_timeout_ms);
    FILL(o, d, backoff_min_ms);
    FILL(o, d, backoff_max_ms);
    FILL(o, d, recycle_records);
    FILL(o, d, max_dials_in_flight);
    FILL(o, d, recycle_grace_ms);
    if (o->max_conns > MAX_SLOTS) {
        o->max_conns = MAX_SLOTS;
    }
    if (o->min_conns > o->max_conns) {
        o->min_conns = o->max_conns;
    }
}

void clink__cluster_opts_resolve(struct clink_cluster_opts *o)
{
    clink__pool_opts_resolve(&o->pool);
    if (o->retry_budget_percent == 0) {
        o->retry_budget_percent = 10;
    }
    if (o->log_level == 0) {
        o->log_level = CLINK_LOG_WARN;
    }
}
