/*
 * A pool's traffic (clink_pool_get_traffic): payload bytes and call
 * latencies, counted with relaxed atomic adds where calls finish (on any
 * worker, no lock) and read here for the ops endpoint's per-second charts.
 */
#include "pool/pool_int.h"

#include <stdatomic.h>
#include <string.h>

void clink_pool_get_traffic(struct clink_pool *p, struct clink_pool_traffic *out)
{
    memset(out, 0, sizeof(*out));
    if (p == NULL) {
        return;
    }
    out->bytes_out = atomic_load_explicit(&p->bytes_out, memory_order_relaxed);
    out->bytes_in = atomic_load_explicit(&p->bytes_in, memory_order_relaxed);
    for (unsigned b = 0; b < CLINK_LATENCY_BUCKETS; b++) {
        out->latency.count[b] = atomic_load_explicit(&p->latency[b], memory_order_relaxed);
    }
}
