/*
 * clink pool: the cluster an aggregator talks to, one connection pool per peer.
 *
 * A cluster (struct clink_cluster) holds the peers a node calls (leaves and
 * other aggregators: MemSQL's ADD LEAF / ADD AGGREGATOR / REMOVE LEAF) and
 * one pool per peer. A pool keeps verified TLS connections to its peer:
 * min_conns warm, more under load up to max_conns, calls multiplexed on the
 * least busy one; idle extras closed, idle connections pinged, dead ones
 * retired at once (their calls fail promptly), reconnects with exponential
 * backoff and jitter, and a connection recycled (drained, closed, redialled
 * with a ticket: a resumed handshake) before its keys protect too many
 * records or when it is too old. While a peer is down its calls fail fast
 * with -CLINK_EUNAVAIL instead of queueing.
 *
 * Threads: every function is safe from any thread unless it says otherwise.
 * Picking a connection takes no lock (per-connection atomics); a mutex guards
 * only the slow paths (membership, waiting calls, opening and closing).
 * One manager thread per cluster does the timed work (dials, pings, trims,
 * recycling, deadlines of waiting calls). Call completions run on the
 * connection's worker, or on the manager thread for a call that never got a
 * connection (its deadline passed while it waited, or the peer went down);
 * either way never inside the function that started the call.
 */
#ifndef CLINK_POOL_H
#define CLINK_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "clink/error.h"
#include "clink/stream.h"
#include "clink/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

struct clink_cluster;
struct clink_pool;

enum clink_peer_role {
    CLINK_ROLE_LEAF = 0,
    CLINK_ROLE_AGGREGATOR,
};

/* Zero means default for every numeric field. */
struct clink_pool_opts {
    unsigned min_conns;           /* kept open; 0: 1 */
    unsigned max_conns;           /* never more; 0: 4, at most 64 */
    unsigned max_calls_per_conn;  /* in flight on one connection before another is opened; 0: 256 */
    unsigned max_waiting;         /* calls waiting for room when all is full; 0: 1024, then -CLINK_EAGAIN */
    uint32_t idle_timeout_ms;     /* an extra connection (above min) idle this long closes; 0: 30000 */
    uint32_t ping_interval_ms;    /* an idle connection is pinged this often; 0: 5000 */
    uint32_t ping_timeout_ms;     /* a ping not answered in time retires the connection; 0: 2000 */
    uint32_t connect_timeout_ms;  /* dial + handshake + login; 0: 5000 */
    uint32_t backoff_min_ms;      /* first reconnect delay; 0: 100 */
    uint32_t backoff_max_ms;      /* cap of the doubling delay (each delay is jittered 50-100%); 0: 5000 */
    uint64_t recycle_records;     /* recycle after this many TLS records in either direction; 0: 2^23 */
    uint32_t recycle_age_ms;      /* and after this age; 0: never */
    unsigned max_dials_in_flight; /* handshakes a pool runs at once (storm control); 0: 2 */
    enum clink_ktls_mode ktls;    /* kernel TLS for this pool's connections; 0: the node's */
    /*
     * A stream still open on a connection recycled for its record or age
     * limit (or a transport-security change) this long after the pool
     * stopped using it is ended with -CLINK_ERECYCLED (clink_pool_stream_open;
     * and with -CLINK_EUNAVAIL on a removed peer's); 0: 10000.
     */
    uint32_t recycle_grace_ms;
};

/* A peer of the cluster. Strings are copied. */
struct clink_peer {
    const char *name;          /* [in] unique in the cluster, e.g. "leaf1". Required. */
    enum clink_peer_role role; /* leaf (default) or aggregator */
    const char *host;          /* [in] IPv4/IPv6 literal or localhost. Required. */
    uint16_t port;
    const char *expected_name; /* [in] identity its certificate must carry; NULL: host */
    enum clink_ssl_mode ssl_mode;
    const char *user;                   /* [in] account to log in as (NULL: none) */
    const char *password;               /* [in] NULL: none (node-to-node accounts prove themselves by certificate) */
    const struct clink_pool_opts *pool; /* [in] NULL: the cluster's defaults */
};

/* Every pool default as a value (pool/defaults.c): copy it and override what you change. */
extern CLINK_API const struct clink_pool_opts clink_pool_opts_default;

struct clink_cluster_opts {
    struct clink_node *node;       /* [in] the node whose workers carry the connections. Required. */
    struct clink_pool_opts pool;   /* defaults for every peer */
    unsigned retry_budget_percent; /* retries allowed as a share of calls; 0: 10 */
    clink_log_fn log;              /* optional */
    void *log_user;
    enum clink_log_level log_level; /* 0: CLINK_LOG_WARN */
};

/*
 * Create a cluster and start its manager thread. [out] *out; free with
 * clink_cluster_free before clink_node_free (before or after
 * clink_node_shutdown: before, its pools close gracefully; after, their
 * connections are already closed). Returns 0, -CLINK_EINVAL, -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_cluster_new(const struct clink_cluster_opts *opts, struct clink_cluster **out);

/* Close every pool (gracefully: calls in flight finish) and stop the manager. Thread: any but a worker. */
CLINK_API void clink_cluster_free(struct clink_cluster *cl);

/*
 * ADD LEAF / ADD AGGREGATOR: add a peer; its pool starts dialling at once.
 * Returns 0, -EEXIST (name taken), -CLINK_EINVAL, -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_cluster_add(struct clink_cluster *cl, const struct clink_peer *peer);

/*
 * REMOVE LEAF / REMOVE AGGREGATOR: new calls to it fail with -CLINK_EUNAVAIL,
 * calls in flight finish, its connections close. Returns 0 or -ENOENT.
 */
CLINK_API CLINK_MUST_USE int clink_cluster_remove(struct clink_cluster *cl, const char *name);

/*
 * The pool of a peer, by name, with a reference (NULL if there is none):
 * drop it with clink_pool_release. A pool whose peer was removed stays valid
 * until released, and fails its calls with -CLINK_EUNAVAIL.
 */
CLINK_API struct clink_pool *clink_cluster_pool(struct clink_cluster *cl, const char *name);
CLINK_API void clink_pool_release(struct clink_pool *pool);

/* Mark a method idempotent: its calls may be retried on another connection after a connection loss, within
 * the cluster's retry budget and the call's deadline. Never by default. Thread: any. */
CLINK_API CLINK_MUST_USE int clink_cluster_idempotent(struct clink_cluster *cl, uint16_t method);

/*
 * A call through a pool. Embed it; it is borrowed from clink_pool_call_start until
 * its callback runs. Fill `call` as for clink_call_start (method, iov,
 * timeout_ms: the whole deadline, waiting included; cb, user).
 */
struct clink_pool_call {
    struct clink_call call;
    /* private */
    struct {
        struct clink_pool *pool;
        clink_call_cb cb;
        void *user;
        int slot;
        uint32_t gen;
        unsigned retries;
        int status;
        uint32_t timeout_ms; /* the caller's, restored before the callback: the struct can be reused */
        uint64_t deadline_ns;
        uint64_t start_ns; /* its latency through the pool (clink_pool_get_traffic) */
        struct clink_pool_call *next;
    } priv;
};

/*
 * Start a call on the pool's least busy connection. Returns 0 (cb will run
 * exactly once), or negative and cb will not run: -CLINK_EUNAVAIL (the peer
 * is down or removed), -CLINK_EAGAIN (too many calls waiting), -CLINK_EINVAL.
 * An application thread that wants the completion on its own thread binds
 * &pc->call to a completion queue first (clink_cq_bind, clink/cq.h).
 */
CLINK_API CLINK_MUST_USE int clink_pool_call_start(struct clink_pool *pool, struct clink_pool_call *pc);

/*
 * Blocking form for application threads. [out] resp as clink_call_sync
 * (cleared first: clink_msg_free is safe after any return). Thread: any but
 * a worker: there it returns -CLINK_EWOULDBLOCK at once (use
 * clink_pool_call_start).
 */
CLINK_API CLINK_MUST_USE int clink_pool_call_sync(struct clink_pool *pool, uint16_t method, const void *req, size_t len,
                                                  uint32_t timeout_ms, struct clink_msg *resp);

struct clink_pool_stats {
    unsigned conns_open, conns_idle, conns_busy, conns_connecting;
    unsigned calls_in_flight, calls_waiting; /* calls_in_flight counts open pool streams too (a link's load) */
    uint64_t calls_ok, calls_started;
    uint64_t failed_unavailable, failed_timeout, failed_closed, failed_remote, failed_other;
    uint64_t handshakes_full, handshakes_resumed, handshakes_failed;
    uint64_t reconnects, recycles, retries, pings_failed;
    /* streams (clink_pool_stream_open): opened, ended 0, resent after -CLINK_EGOAWAY, ended -CLINK_ERECYCLED */
    uint64_t streams_opened, streams_ok, streams_resent, streams_recycled;
    unsigned streams_open, streams_waiting;
    int up; /* the peer is reachable (a connection is open, or the last dial worked) */
};
CLINK_API void clink_pool_get_stats(struct clink_pool *pool, struct clink_pool_stats *out);

/*
 * What went through a pool since it was created, counted like its stats
 * (subtract two readings for an interval): the request and answer payload
 * bytes of its answered calls (ok or failed by the peer's handler; frame
 * headers and TLS not included), and the latency of every finished call
 * from clink_pool_call_start to its callback, waiting for a connection and
 * retries included (the buckets of struct clink_latency, clink/transport.h).
 * Thread: any (reads atomics).
 */
struct clink_pool_traffic {
    uint64_t bytes_out, bytes_in;
    struct clink_latency latency;
};
CLINK_API void clink_pool_get_traffic(struct clink_pool *pool, struct clink_pool_traffic *out);

/* A peer of the cluster and its pool's figures (clink_cluster_peers). */
struct clink_peer_info {
    char name[64];
    enum clink_peer_role role;
    char host[64];
    uint16_t port;
    char expected_name[256];
    struct clink_pool_stats stats;
};

/*
 * The cluster's peers in the order they were added: fills up to cap of
 * out, returns how many there are (may exceed cap). Thread: any (reads
 * atomics; does not block on workers).
 */
CLINK_API size_t clink_cluster_peers(struct clink_cluster *cl, struct clink_peer_info *out, size_t cap);

/*
 * Every pool's counters as text, one "Pool NAME: ..." block per peer in the
 * `Name: value` style of clink_conn_status_format. Returns the length
 * written (truncated to cap - 1). Thread: any (reads atomics; does not block).
 */
CLINK_API size_t clink_cluster_status_format(struct clink_cluster *cl, char *buf, size_t cap);

/* ---- fan-out ---- */

struct clink_fanout_result {
    char peer[64];
    int status;           /* 0, or a negative error for this peer */
    struct clink_msg msg; /* the answer (status 0) or the peer's error text (-CLINK_EREMOTE) */
};

/*
 * Send one request to every peer of a role (or the peers named in `names`,
 * NULL-terminated) and gather one result per peer, all within timeout_ms
 * (0: no deadline, as for every call). [out] *results, *n (set to NULL and 0
 * first, so clink_fanout_free is safe after any return): caller frees with
 * clink_fanout_free. Blocks: thread any but a worker. Returns 0 (each result
 * has its own status), -CLINK_EINVAL, -CLINK_ENOMEM, or -CLINK_EWOULDBLOCK
 * at once on a worker (use clink_cluster_fanout_start there).
 */
CLINK_API CLINK_MUST_USE int clink_cluster_fanout(struct clink_cluster *cl, enum clink_peer_role role,
                                                  const char *const *names, uint16_t method, const void *req,
                                                  size_t len, uint32_t timeout_ms, struct clink_fanout_result **results,
                                                  size_t *n);
CLINK_API void clink_fanout_free(struct clink_fanout_result *results, size_t n);

/*
 * The end of an asynchronous fan-out: one result per peer, in the order the
 * peers were added (results[i].peer names it), n of them (0 when no peer
 * matched). results and their messages are borrowed until cb returns: copy
 * what you keep. Runs once, on the worker that received the last answer, or
 * on the cluster's manager thread (when no answer came from a worker: every
 * peer down, none matched, or the last part failed before it was sent).
 * It may answer a request (clink_req_respond from any thread), start
 * another fan-out or call, but not free the cluster.
 */
typedef void (*clink_fanout_cb)(const struct clink_fanout_result *results, size_t n, void *user);

/*
 * The same fan-out without blocking: send req to every peer of a role (or
 * those named in `names`, NULL-terminated) with one deadline of timeout_ms
 * from now (0: none; shutdown still ends every call), and call cb once all
 * have answered, failed or timed out. req is copied, so a handler may pass
 * its request's payload and return. Thread: any, including a worker (a
 * handler that answers from cb never blocks its worker). cb never runs
 * inside this call. Returns 0 (cb will run exactly once), or negative and
 * cb will not run: -CLINK_EINVAL (no cluster or cb), -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_cluster_fanout_start(struct clink_cluster *cl, enum clink_peer_role role,
                                                        const char *const *names, uint16_t method, const void *req,
                                                        size_t len, uint32_t timeout_ms, clink_fanout_cb cb,
                                                        void *user);

/* ---- streams (clink/stream.h) through a pool ---- */

struct clink_pool_stream;

/*
 * Open a stream on the pool's least busy connection, as calls pick theirs
 * (o as for clink_stream_open: method, opening message (copied), end,
 * timeout_ms: the whole deadline, waiting and resends included; flags, cbs,
 * user). Streams count as calls in a connection's load (max_calls_per_conn);
 * when no connection has room the stream waits, like a call, for one
 * (bounded by max_waiting streams and by its deadline).
 *
 * Resending: a stream that ends with -CLINK_EGOAWAY (its REQUEST never
 * reached the peer's handler: the connection was going away or closed
 * before it left) is opened again on another connection of the pool, at
 * most 3 times and within its deadline, and the application hears nothing
 * of it, but only if nothing of it was exchanged: no on_msg, on_peer_end or
 * on_sent, no clink_pool_stream_send, no clink_pool_stream_cancel. Any other
 * ending, and -CLINK_EGOAWAY once something was exchanged, goes to on_end
 * as it is. A server-streaming stream (end = 1: the request is the opening
 * message) is therefore always resendable until its first message.
 *
 * Recycling: a connection recycled at its record or age limit (or moved by a
 * transport-security change) takes no new streams and is closed gracefully:
 * streams open on it go on (GOAWAY lets them finish), for up to
 * recycle_grace_ms; one still open then is cancelled (the peer sees
 * -CLINK_ECANCELED) and ends here with -CLINK_ERECYCLED (kind AGAIN: open it
 * again; the pool's other connections are fresh). A stream left open on a
 * removed peer (clink_cluster_remove, clink_cluster_free) ends the same way
 * after recycle_grace_ms, with -CLINK_EUNAVAIL: a stream with no deadline
 * holds neither a spent key nor clink_cluster_free for ever.
 *
 * Callbacks: the application's cbs, with its user, on the worker of the
 * connection of the current attempt; their stream argument is that attempt's
 * stream: use it as clink/stream.h says (send, consume, cancel) from inside
 * the callbacks. on_end runs exactly once, last, with the final status; its
 * stream is NULL when the stream never got a connection (it waited and its
 * deadline passed: -CLINK_ETIMEDOUT, the peer went down or was removed:
 * -CLINK_EUNAVAIL, it was cancelled while waiting: -CLINK_ECANCELED); it
 * then runs on the cluster's manager thread. on_end never runs inside this
 * call.
 *
 * [out] *out (may be NULL): the pool stream, valid until on_end returns;
 * unlike a stream pointer it stays the same across resends. Returns 0
 * (on_end will run exactly once), or negative and no callback runs:
 * -CLINK_EINVAL, -CLINK_EUNAVAIL (peer down or removed), -CLINK_EAGAIN (too
 * many streams waiting), -CLINK_ENOMEM, and what clink_stream_open returns
 * for a stream no connection would take (-CLINK_EVERSION,
 * -CLINK_EFRAMETOOBIG). Thread: any.
 */
CLINK_API CLINK_MUST_USE int clink_pool_stream_open(struct clink_pool *pool, const struct clink_stream_open_opts *o,
                                                    struct clink_pool_stream **out);

/*
 * clink_stream_send on the pool stream's current attempt (iov borrowed until
 * on_sent(tag)); after it the stream is never resent. Returns what
 * clink_stream_send returns, or -CLINK_EAGAIN while the stream still waits
 * for a connection, -CLINK_ECLOSED once it is over. Thread: any, until on_end
 * has returned.
 */
CLINK_API CLINK_MUST_USE int clink_pool_stream_send(struct clink_pool_stream *ps, const struct iovec *iov,
                                                    unsigned iovcnt, int end, void *tag);

/*
 * End the pool stream with -CLINK_ECANCELED (clink_stream_cancel on its
 * current attempt; a waiting one ends on the manager thread). Racy like
 * clink_stream_cancel. Returns 0, -CLINK_EINVAL, or what clink_stream_cancel
 * returns. Thread: any, until on_end has returned.
 */
CLINK_API CLINK_MUST_USE int clink_pool_stream_cancel(struct clink_pool_stream *ps);

/* ---- stream fan-out ---- */

struct clink_fanout_stream_cbs {
    /*
     * A whole message from results[idx].peer's stream (peer: its name), valid
     * during the callback. Runs on the worker of that peer's connection:
     * with several workers, messages of different peers arrive concurrently.
     */
    void (*on_msg)(size_t idx, const char *peer, const uint8_t *data, size_t len, void *user);
    /*
     * Every peer's stream has ended. status: 0 if all ended 0, else the first
     * error to end (in time), and failed its peer's index (n when status is
     * 0). results: one per peer, in the order the peers were added (status;
     * msg: the peer's text for -CLINK_EREMOTE), borrowed until this returns.
     * Runs once, on the worker that saw the last end, or on the cluster's
     * manager thread (every stream failed inside the start, or none matched).
     */
    void (*on_end)(int status, size_t failed, const struct clink_fanout_result *results, size_t n, void *user);
};

/*
 * Open one server-streaming stream (clink_pool_stream_open with end = 1: req
 * is the whole request, copied) to every peer of a role (or those named in
 * `names`, NULL-terminated), with one deadline of timeout_ms from now for all
 * of them (0: none), and call cbs->on_end once all have ended: a stream's
 * error does not end the others. Thread: any, including a worker; no
 * callback runs inside it. Returns 0 (on_end will run exactly once), or
 * negative and nothing runs: -CLINK_EINVAL (no cluster, cbs or on_end),
 * -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_cluster_fanout_stream_start(struct clink_cluster *cl, enum clink_peer_role role,
                                                               const char *const *names, uint16_t method,
                                                               const void *req, size_t len, uint32_t timeout_ms,
                                                               const struct clink_fanout_stream_cbs *cbs, void *user);

#ifdef __cplusplus
}
#endif
#endif
