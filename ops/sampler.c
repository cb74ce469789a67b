/*
 * The thread that feeds the ops page's charts (samples.h): once a second it
 * reads the node's counters (clink_node_get_stats, clink_node_call_latency:
 * sums of per-worker atomics) and each pool's (clink_cluster_peers,
 * clink_pool_get_traffic: atomics), none of which waits for a worker, and
 * records the tick. It is a thread of its own, not the ops thread, so that a
 * slow request there (a reload, a password hash, a large page) does not
 * delay the samples.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "clink/error.h"
#include "ops/samples.h"

struct clink__sampler {
    struct clink_node *node;
    struct clink__samples *samples;
    pthread_mutex_t mu; /* the cluster, stop; held for a whole tick */
    pthread_cond_t cv;  /* on CLOCK_MONOTONIC */
    struct clink_cluster *cluster;
    int stop;
    pthread_t thread;
    int started;
    /* clink_cluster_peers' output, kept between ticks: CLINK__SAMPLED_PEERS entries once a cluster is sampled */
    struct clink_peer_info *peers;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Calls finished: the histogram's total, so that calls/s and the p99 count
 * the same calls (calls_ok also counts pings; a pool's failures also count
 * calls refused inside clink_pool_call_start, which never ran).
 */
static uint64_t calls(const struct clink_latency *l)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < CLINK_LATENCY_BUCKETS; b++) {
        n += l->count[b];
    }
    return n;
}

static void read_node(struct clink_node *node, struct clink__reading *r)
{
    struct clink_node_stats st;
    clink_node_get_stats(node, &st);
    r->bytes_in = st.bytes_in;
    r->bytes_out = st.bytes_out;
    r->hs_resumed = st.handshakes_resumed;
    r->hs_full = st.handshakes_ok >= st.handshakes_resumed ? st.handshakes_ok - st.handshakes_resumed : 0;
    r->hs_failed = st.handshakes_failed;
    clink_node_call_latency(node, &r->latency);
    r->calls = calls(&r->latency);
}

static void read_pool(struct clink_cluster *cl, const struct clink_peer_info *pi, struct clink__reading *r)
{
    const struct clink_pool_stats *p = &pi->stats;
    r->hs_full = p->handshakes_full;
    r->hs_resumed = p->handshakes_resumed;
    r->hs_failed = p->handshakes_failed;
    struct clink_pool_traffic t;
    struct clink_pool *pool = clink_cluster_pool(cl, pi->name);
    clink_pool_get_traffic(pool, &t); /* zeros if the peer was removed in between */
    clink_pool_release(pool);
    r->bytes_in = t.bytes_in;
    r->bytes_out = t.bytes_out;
    r->latency = t.latency;
    r->calls = calls(&r->latency);
}

/* One tick; sp->mu held. */
static void tick(struct clink__sampler *sp)
{
    struct clink__samples *s = sp->samples;
    struct clink__reading r;
    size_t n = 0;
    if (sp->cluster != NULL && sp->peers == NULL) {
        sp->peers = calloc(CLINK__SAMPLED_PEERS, sizeof(*sp->peers));
    }
    if (sp->cluster != NULL && sp->peers != NULL) {
        n = clink_cluster_peers(sp->cluster, sp->peers, CLINK__SAMPLED_PEERS);
    }
    /* Read before taking the ring's lock: a page being drawn waits only for the recording. */
    read_node(sp->node, &r);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    clink__samples_begin(s, mono_ns(), (int64_t)wall.tv_sec);
    clink__samples_node(s, &r);
    for (size_t i = 0; i < n && i < CLINK__SAMPLED_PEERS; i++) {
        read_pool(sp->cluster, &sp->peers[i], &r);
        clink__samples_peer(s, sp->peers[i].name, &r);
    }
    s->peers_untracked += n > CLINK__SAMPLED_PEERS ? n - CLINK__SAMPLED_PEERS : 0;
    clink__samples_end(s);
}

static void *run(void *arg)
{
    struct clink__sampler *sp = arg;
    pthread_mutex_lock(&sp->mu);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!sp->stop) {
        tick(sp);
        next.tv_sec += 1;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec + 1) {
            next = now; /* far behind (a stopped process): start again from now; the ring fills the gap */
        }
        while (!sp->stop && pthread_cond_timedwait(&sp->cv, &sp->mu, &next) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

int clink__sampler_new(struct clink_node *node, struct clink__sampler **out)
{
    struct clink__sampler *sp = calloc(1, sizeof(*sp));
    if (sp == NULL) {
        return -CLINK_ENOMEM;
    }
    int ret = clink__samples_new(&sp->samples);
    if (ret < 0) {
        free(sp);
        return ret;
    }
    sp->node = node;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sp->cv, &ca);
    pthread_condattr_destroy(&ca);
    ret = -pthread_create(&sp->thread, NULL, run, sp);
    if (ret < 0) {
        clink__sampler_free(sp);
        return ret;
    }
    sp->started = 1;
    *out = sp;
    return 0;
}

void clink__sampler_free(struct clink__sampler *sp)
{
    if (sp == NULL) {
        return;
    }
    pthread_mutex_lock(&sp->mu);
    sp->stop = 1;
    pthread_cond_broadcast(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
    if (sp->started) {
        pthread_join(sp->thread, NULL);
    }
    pthread_cond_destroy(&sp->cv);
    pthread_mutex_destroy(&sp->mu);
    clink__samples_free(sp->samples);
    free(sp->peers);
    free(sp);
}

void clink__sampler_set_cluster(struct clink__sampler *sp, struct clink_cluster *cl)
{
    pthread_mutex_lock(&sp->mu);
    sp->cluster = cl;
    pthread_mutex_unlock(&sp->mu);
}

struct clink__samples *clink__sampler_samples(struct clink__sampler *sp)
{
    return sp->samples;
}

void clink__sampler_tick(struct clink__sampler *sp)
{
    pthread_mutex_lock(&sp->mu);
    tick(sp);
    pthread_mutex_unlock(&sp->mu);
}
