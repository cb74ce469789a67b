/*
 * The ops page's history (docs/ops.md, "Charts"): once a second the sampler
 * (sampler.c, a thread of its own) reads the node's counters and each pool's,
 * and the ring (samples.c) keeps the differences as per-second values for
 * the last 15 minutes: calls, bytes in and out, the call p99, and handshakes
 * (full, resumed, failed), for the node and for each peer. The memory is
 * fixed: a ring of CLINK__SAMPLES values per series, one set for the node
 * and one for each of at most CLINK__SAMPLED_PEERS peers, allocated when a
 * peer is first seen and reused after it goes. Readers (the page) hold the
 * ring's mutex while they draw; nothing on a worker ever touches it.
 */
#ifndef CLINK_OPS_SAMPLES_H
#define CLINK_OPS_SAMPLES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "clink/pool.h"
#include "clink/transport.h"

#define CLINK__SAMPLES 900 /* seconds kept: 15 minutes */
/* Peers charted: a cluster from a config file has at most CLINK_CONFIG_MAX_PEERS (clink/config.h), 256. */
#define CLINK__SAMPLED_PEERS 256

enum clink__series {
    CLINK__S_CALLS,     /* calls finished per second (ok or failed) */
    CLINK__S_BYTES_IN,  /* bytes per second: the node's on the wire, a pool's payloads */
    CLINK__S_BYTES_OUT, /* ... */
    CLINK__S_P99,       /* microseconds; NaN: no call finished in that second */
    CLINK__S_HS_FULL,   /* handshakes per second */
    CLINK__S_HS_RESUMED,
    CLINK__S_HS_FAILED,
    CLINK__S_COUNT
};

/* Cumulative counters of a node or a pool at one moment; the ring keeps their differences. */
struct clink__reading {
    uint64_t calls, bytes_in, bytes_out, hs_full, hs_resumed, hs_failed;
    struct clink_latency latency;
};

/* The history of the node or of one peer. v[series][i] is valid for the n ring positions ending at head. */
struct clink__history {
    char name[64]; /* a peer's name; "" for a free slot */
    unsigned n;    /* valid samples, <= CLINK__SAMPLES */
    int has_last;  /* last holds a reading: the next one gives a sample */
    int seen;      /* recorded in the tick under way */
    struct clink__reading last;
    float v[CLINK__S_COUNT][CLINK__SAMPLES];
};

struct clink__samples {
    pthread_mutex_t mu;
    unsigned head;    /* ring position of the newest sample, the same for every history */
    unsigned step;    /* seconds the tick under way writes (a late tick fills the seconds it missed) */
    uint64_t last_ns; /* monotonic time of the last tick; 0: none yet */
    int64_t last_unix;
    double elapsed_s; /* of the tick under way */
    struct clink__history node;
    struct clink__history *peers[CLINK__SAMPLED_PEERS]; /* NULL until first needed */
    size_t peers_untracked; /* peers in the last tick beyond CLINK__SAMPLED_PEERS: not charted */
};

/* [out] a ring with no samples. Returns 0 or -CLINK_ENOMEM. */
int clink__samples_new(struct clink__samples **out);
void clink__samples_free(struct clink__samples *s);

/*
 * One tick, in three steps under the ring's mutex (a reader sees a whole
 * tick or none): begin (now: monotonic ns and unix seconds), the node's
 * reading, each peer's reading by name, end. A tick that comes k seconds
 * after the last writes its rates into k positions (at most CLINK__SAMPLES);
 * the first reading of the node or of a peer only sets where counting starts.
 * Peers not recorded in a tick lose their history (the peer was removed).
 */
void clink__samples_begin(struct clink__samples *s, uint64_t now_ns, int64_t now_unix);
void clink__samples_node(struct clink__samples *s, const struct clink__reading *r);
void clink__samples_peer(struct clink__samples *s, const char *name, const struct clink__reading *r);
void clink__samples_end(struct clink__samples *s);

/* The value k seconds before the newest (k < h->n) of a history. */
static inline float clink__samples_at(const struct clink__samples *s, const struct clink__history *h,
                                      enum clink__series series, unsigned k)
{
    return h->v[series][(s->head + CLINK__SAMPLES - k) % CLINK__SAMPLES];
}

/* A peer's history by name, or NULL. Under the mutex. */
const struct clink__history *clink__samples_find(const struct clink__samples *s, const char *name);

/* Bytes the ring holds now: at most sizeof(struct clink__samples) + CLINK__SAMPLED_PEERS histories. */
size_t clink__samples_bytes(const struct clink__samples *s);

/* The p99, in microseconds, of the calls in a latency difference (the bucket's upper bound); NaN if none. */
double clink__latency_p99_us(const struct clink_latency *d);

/* ---- sampler.c: the thread that ticks once a second ---- */

struct clink__sampler;

/* [out] a sampler of node's counters, ticking every second. Returns 0, -CLINK_ENOMEM or -errno. */
int clink__sampler_new(struct clink_node *node, struct clink__sampler **out);
/* Stop the thread and free everything. */
void clink__sampler_free(struct clink__sampler *sp);
/* The cluster whose pools to sample (NULL: none); once it returns, the sampler no longer uses the old one. */
void clink__sampler_set_cluster(struct clink__sampler *sp, struct clink_cluster *cl);
/* Its ring (lock its mu to read). */
struct clink__samples *clink__sampler_samples(struct clink__sampler *sp);
/* Take a tick now, off schedule (tests: a chart moves without waiting for the thread). */
void clink__sampler_tick(struct clink__sampler *sp);

#endif
