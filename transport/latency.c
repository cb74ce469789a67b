/*
 * Call latency histograms (clink_node_call_latency): fixed log-linear
 * buckets, so that recording is one relaxed add on the completing worker's
 * own counter and a reader (the ops endpoint's sampler, once a second) can
 * subtract two readings for any interval's percentiles without a lock.
 */
#include <string.h>

#include "transport/node_int.h"

/*
 * Microseconds 0-3 get a bucket each; from 4 on, each doubling [2^e, 2^(e+1))
 * is cut in four equal parts, so a percentile read as its bucket's upper
 * bound is at most 25% high. 100 buckets reach 2^26 us, about 67 s.
 */
unsigned clink_latency_bucket(uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us < 4) {
        return (unsigned)us;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(us);
    unsigned b = 4 * (e - 1) + (unsigned)((us >> (e - 2)) & 3);
    return b < CLINK_LATENCY_BUCKETS ? b : CLINK_LATENCY_BUCKETS - 1;
}

uint64_t clink_latency_bucket_us(unsigned b)
{
    if (b < 4) {
        return b;
    }
    unsigned e = b / 4 + 1;
    return (uint64_t)(4 + b % 4) << (e - 2);
}

void clink_node_call_latency(const struct clink_node *node, struct clink_latency *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; node != NULL && i < node->nworkers; i++) {
        const struct clink__stats *s = &node->workers[i].stats;
        for (unsigned b = 0; b < CLINK_LATENCY_BUCKETS; b++) {
            out->count[b] += atomic_load_explicit(&s->call_latency[b], memory_order_relaxed);
        }
    }
}
