/*
 * What the pool module's files share (pool.c, dial.c, maintain.c, cluster.c,
 * status.c, fanout.c, fanout_start.c, pool_stream.c, fanout_stream.c);
 * nothing outside pool/ sees it.
 *
 * The call path takes no lock: a caller scans the pool's slots (atomics),
 * announces itself on the chosen slot (`users`), re-reads the connection and
 * starts the call. The manager retires a slot by clearing its connection and
 * waiting for `users` to drain before it closes the connection, and reuses
 * the slot only once every call and ping on it has completed. Everything
 * timed (dials, backoff, pings, trims, recycling, waiting calls' deadlines)
 * runs on the cluster's manager thread under the pool's mutex.
 */
#ifndef CLINK_POOL_INT_H
#define CLINK_POOL_INT_H

#include "clink/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define MAX_SLOTS 64

enum slot_state {
    SLOT_EMPTY = 0,
    SLOT_CONNECTING,
    SLOT_OPEN,
    SLOT_RETIRING, /* no new calls; closed once users drain, reused once its calls and ping are done */
};

struct slot {
    _Atomic(struct clink_conn *) conn; /* set only while OPEN */
    atomic_int state;
    atomic_int users;    /* callers between reading conn and returning from clink_call_start */
    atomic_int inflight; /* pool calls started on this connection, not yet completed */
    atomic_int dead;     /* a completion or ping saw the connection fail: retire it */
    atomic_int probe;    /* a call missed its deadline: ping now to tell a slow handler from a dead peer */
    atomic_int ping_busy;
    atomic_int recycle; /* past its record or age budget: replace, then retire */
    _Atomic uint64_t last_used_ns;
    _Atomic uint64_t last_ping_ns; /* pings do not count as use: idle extras must still age out */
    _Atomic uint32_t gen;
    _Atomic uint64_t opened_ns, checked_ns; /* set by the dial's completion, read by the manager */
    struct clink_call ping;
    struct clink_pool *pool;
    int idx;
};

struct clink_pool {
    atomic_int refs;
    struct clink_cluster *cl;
    char name[64];
    enum clink_peer_role role;
    char host[64], expected[256], user[65], password[256];
    struct clink_connect_opts co;
    struct clink_pool_opts o;
    struct slot slots[MAX_SLOTS];
    atomic_int removed;
    atomic_int busy; /* completions running that may still touch the cluster: a drain waits for 0 */
    int dropped;     /* under mu: drained and gone from the cluster; nothing may wait here any more */
    atomic_int down; /* dials fail and nothing is open: calls fail fast */

    pthread_mutex_t mu; /* slow paths: dials, waiting calls, retiring */
    unsigned dials;
    unsigned fail_streak;
    unsigned recycle_debt; /* spent links retired whose replacement has not opened yet */
    uint64_t next_dial_ns;
    struct clink_pool_call *wait_head, *wait_tail;
    atomic_uint nwait;

    _Atomic uint64_t calls_started, calls_ok, f_unavail, f_timeout, f_closed, f_remote, f_other;
    _Atomic uint64_t hs_full, hs_resumed, hs_failed, reconnects, recycles, retries, pings_failed;
    _Atomic uint64_t bytes_out, bytes_in;            /* payloads: clink_pool_get_traffic */
    _Atomic uint64_t latency[CLINK_LATENCY_BUCKETS]; /* finished calls; 800 bytes */

    /* pool_stream.c: the streams opened through the pool and not over (under mu), how many are open and wait */
    struct clink_pool_stream *streams;
    atomic_uint streams_waiting, streams_open;
    _Atomic uint64_t streams_opened, streams_ok, streams_resent, streams_recycled;
};

struct clink_cluster {
    struct clink_cluster_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, kicked;
    struct clink_pool **pools;
    size_t npools, cap;
    pthread_t mgr;
    atomic_uchar idem[65536 / 8];
    atomic_int retry_tokens; /* in hundredths of a retry */
    atomic_int dials;        /* across pools: storm control */
    unsigned max_dials;
    /* under mu: fan-outs whose every part ended inside clink_cluster_fanout_start, finished by the manager */
    struct clink__fanout *fanouts_done;
    /* under mu: other work that ended inside its start, for the manager to finish (pool_stream.c) */
    struct clink__deferred *deferred;
};

/* A callback the manager runs once, outside every lock (clink__cluster_defer). */
struct clink__deferred {
    void (*fn)(struct clink__deferred *d);
    struct clink__deferred *next;
};

/* Inline: the call path reads the clock on every call. */
static inline uint64_t clink__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* pool.c: the pool object and its call path. */
void clink__pool_ref(struct clink_pool *p);
void clink__pool_destroy(struct clink_pool *p);
void clink__pool_log(struct clink_pool *p, enum clink_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line in the cluster's log (not about one pool). */
void clink__cluster_log(struct clink_cluster *cl, enum clink_log_level lvl, const char *msg);
/*
 * Take the least-loaded open connection of p for a call or a stream: counted
 * in its load (inflight) and pinned (users) until clink__pool_slot_started.
 * Returns its slot, -1 (none has room) or -2 (it changed meanwhile: pick
 * again); *conn and *gen are the slot's.
 */
int clink__pool_slot_take(struct clink_pool *p, struct clink_conn **conn, uint32_t *gen);
/*
 * The start on slot idx returned ret: unpinned; a failure no longer counts
 * in its load. Returns 1 when the start never left (the connection is
 * closing: marked dead, the manager woken), so try another; else 0.
 */
int clink__pool_slot_started(struct clink_pool *p, int idx, uint32_t gen, int ret);
int clink__pool_try_start(struct clink_pool *p, struct clink_pool_call *pc);
/* A fan-out's peers: role's, or those named (names NULL-terminated). */
int clink__pool_wanted(const struct clink_pool *p, enum clink_peer_role role, const char *const *names);
void clink__pool_call_finish(struct clink_pool_call *pc, int status, const uint8_t *resp, size_t len);
void clink__copy_msg(struct clink_msg *m, const uint8_t *p, size_t n);

/* dial.c: opening a connection in an empty slot. Called with p->mu held; returns 0 if a dial started. */
int clink__pool_dial(struct clink_pool *p);

/* maintain.c: one manager pass over a pool. Returns 1 once a removed pool has drained (now dropped). */
int clink__pool_tick(struct clink_pool *p, uint64_t now);

/* cluster.c: wake the manager now rather than at its next tick. */
void clink__cluster_kick(struct clink_cluster *cl);
/* cluster.c: have the manager run d->fn(d) soon (a callback must not run inside the call that started it). */
void clink__cluster_defer(struct clink_cluster *cl, struct clink__deferred *d);

/*
 * pool_stream.c: the manager's pass over a pool's streams (before the tick
 * takes the mutex): open waiting ones, end those whose wait is over, end
 * those left on a recycled link past recycle_grace_ms.
 */
void clink__pool_streams_tick(struct clink_pool *p, uint64_t now);

/*
 * fanout_start.c: the fan-out both calls share. cb borrows the results
 * (clink_cluster_fanout_start); take instead takes them and req is not
 * copied (clink_cluster_fanout, which waits for the end). Same returns as
 * clink_cluster_fanout_start.
 */
typedef void (*clink__fanout_take_cb)(struct clink_fanout_result *results, size_t n, void *user);
int clink__fanout_start(struct clink_cluster *cl, enum clink_peer_role role, const char *const *names, uint16_t method,
                        const void *req, size_t len, uint32_t timeout_ms, clink_fanout_cb cb,
                        clink__fanout_take_cb take, void *user);
/* Run a fan-out's callback and free it (the manager, for one that ended inside its start). */
struct clink__fanout;
void clink__fanout_finish(struct clink__fanout *f);
struct clink__fanout *clink__fanout_next(struct clink__fanout *f);

/* ---- defaults.c ---- */

/* The caller's options with every zero replaced by its default (clink_pool_opts_default). */
void clink__pool_opts_resolve(struct clink_pool_opts *o);
/* The same for a cluster, its pools' defaults included. */
void clink__cluster_opts_resolve(struct clink_cluster_opts *o);

#endif
