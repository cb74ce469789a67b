/*
 * Internals shared by the transport's files: the node, its workers, their
 * inboxes and counters. A connection's own struct is in conn_int.h.
 *
 * Ownership: a connection belongs to one worker, and only that worker's
 * thread touches its I/O state. Other threads see a connection only through
 * its atomics (refs, open) and by posting messages to the owning worker.
 */
#ifndef CLINK_TRANSPORT_NODE_INT_H
#define CLINK_TRANSPORT_NODE_INT_H

#include <ck_ring.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "clink/http.h"
#include "clink/mysql.h"
#include "clink/stream.h"
#include "clink/transport.h"
#include "common/bytes.h"
#include "common/log_int.h"
#include "transport/idmap.h"
#include "transport/sessions.h"
#include "transport/timer.h"
#include "transport/tls.h"
#include "transport/wheel.h"

#if defined(__SANITIZE_THREAD__)
/* ck's inline atomics are invisible to TSan: state the hand-off explicitly. */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define CLINK_TSAN_RELEASE(p) __tsan_release(p)
#define CLINK_TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define CLINK_TSAN_RELEASE(p) ((void)(p))
#define CLINK_TSAN_ACQUIRE(p) ((void)(p))
#endif

struct clink_worker;

/* ---- io_uring user_data: a pointer (64-byte aligned) with the op in its low bits ---- */
enum clink__op {
    OP_RECV = 1,
    OP_SEND,
    OP_CONNECT,
    OP_SHUTDOWN,
    OP_CLOSE,
    OP_RECVMSG,      /* kTLS: a control record (its type comes in a cmsg) */
    OP_SENDMSG,      /* kTLS: close_notify as an alert record */
    OP_ACCEPT,       /* ptr: worker */
    OP_EVENTFD,      /* ptr: worker */
    OP_MSG_WAKE,     /* arrives on the target ring; ptr: target worker */
    OP_MSG_SENT,     /* the sender's own completion of a msg_ring; ptr: sending worker */
    OP_CANCEL,       /* ptr: worker */
    OP_ACCEPT_HTTPS, /* ptr: worker */
    OP_SEND_ZC,      /* ptr: struct clink__zc (its result, then its notification) */
};
#define CLINK_OP_MASK 0x3fULL

/* ---- timers ---- */
enum clink__timer_kind {
    TIMER_CALL = 1,  /* owner: struct clink_call (priv.timer) */
    TIMER_HANDSHAKE, /* owner: struct clink_conn (hs_timer) */
    TIMER_DRAIN,     /* owner: struct clink_worker (drain_timer) */
    TIMER_ACCEPT,    /* owner: struct clink_worker (accept_timer): re-arm accept after a failure */
    TIMER_HS_EVICT,  /* owner: struct clink_worker (hs_evict_timer): slot holders too slow while others wait */
    TIMER_BUDGET,    /* owner: struct clink_worker (budget_timer): the send budget, checked while full */
    TIMER_IDLE,      /* owner: struct clink_worker (idle_timer): the wait_timeout sweep of client sessions */
    TIMER_STREAM,    /* owner: struct clink_stream (timer): the opener's deadline, in the wheel */
};

/* ---- inbox messages ---- */
enum clink__msg_kind {
    MSG_CANCEL = 1, /* calls themselves travel as tagged pointers, see CLINK_MSG_CALL_TAG */
    MSG_CONNECT,
    MSG_ADOPT,
    MSG_SYNC,
    MSG_STOP,
    MSG_CLOSE,
    MSG_RESPOND,
    MSG_RECHECK, /* the node's TLS trust changed: re-verify the peers of this worker's links (conn_recheck.c) */
    MSG_STREAM,  /* an application thread's operation on a stream (streams_api.c) */
};

/* Header of every inbox message (calls carry one in their conn's call slot). */
struct clink__msg {
    int kind;
};

/* A struct clink_call posted to an inbox is tagged with this low bit. */
#define CLINK_MSG_CALL_TAG 1u

struct clink__msg_cancel {
    struct clink__msg hdr;
    struct clink_conn *conn;
    uint64_t id;
};

struct clink__msg_connect {
    struct clink__msg hdr;
    struct clink_connect_opts opts;
    char host[64];
    char name[256];
    char label[64];
    int verify; /* 0 none, 1 chain, 2 chain and name */
    clink_connect_cb cb;
    void *user;
    int login; /* a user was given */
    int no_resume;
    char login_user[65];
    int has_password;
    char password[256]; /* secret: wiped when the message is freed */
};

struct clink__msg_adopt {
    struct clink__msg hdr;
    int fd;
    int https; /* from the HTTPS port */
};

/* Runs fn on the worker and signals the waiting thread. */
struct clink__msg_sync {
    struct clink__msg hdr;
    void (*fn)(struct clink_worker *w, void *arg);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

struct clink__msg_stop {
    struct clink__msg hdr;
    uint32_t drain_ms;
};

struct clink__msg_close {
    struct clink__msg hdr;
    struct clink_conn *conn;
};

/* An answer given on another thread, copied, for the request's own worker to send. */
struct clink__msg_respond {
    struct clink__msg hdr;
    struct clink_req *req;
    uint8_t type; /* CLINK_FRAME_RESPONSE or CLINK_FRAME_ERROR */
    uint8_t extra[4];
    size_t extra_len;
    size_t len;
    uint8_t data[];
};

/* ---- per-worker counters: one writer (the worker), relaxed atomics so readers are race-free ---- */
struct clink__stats {
    _Atomic uint64_t conns_accepted, conns_dialed, conns_open, conns_refused;
    _Atomic uint64_t handshakes_ok, handshakes_failed;
    _Atomic uint64_t calls_started, calls_ok, calls_failed;
    _Atomic uint64_t requests_handled;
    _Atomic uint64_t bytes_in, bytes_out, bytes_copied, bytes_borrowed, zc_sends, zc_copied;
    _Atomic uint64_t inbox_full, protocol_errors, plaintext_fallbacks;
    _Atomic uint64_t logins_ok, logins_denied, logins_legacy_native_tls, tls_reloads, handshakes_resumed,
        handshakes_deferred;
    _Atomic uint64_t ktls_offloaded, ktls_rx_only, ktls_fallbacks;
    _Atomic uint64_t buffer_full; /* times the worker's buffers reached its share of max_buffered */
    _Atomic uint64_t mysql_logins, mysql_queries;
    _Atomic uint64_t https_requests, https_refused;
    _Atomic uint64_t calls_failed_timeout, calls_failed_remote, calls_failed_canceled, calls_failed_closed,
        calls_failed_other;
    _Atomic uint64_t refused_max_connections, refused_max_user_connections, refused_max_node_links, idle_closed;
    _Atomic uint64_t links_closed_revoked, links_closed_untrusted;
    _Atomic uint64_t streams_opened, streams_accepted, streams_ok, streams_failed, stream_frames_refused,
        flow_violations, chunks_out, chunks_in;
    _Atomic uint64_t call_latency[CLINK_LATENCY_BUCKETS]; /* clink_node_call_latency: 800 bytes a worker */
};
#define STAT_ADD(w, field, n)                                                                                          \
    atomic_store_explicit(&(w)->stats.field, atomic_load_explicit(&(w)->stats.field, memory_order_relaxed) + (n),      \
                          memory_order_relaxed)
/* inbox_full is bumped by other threads too */
#define STAT_ADD_SHARED(w, field, n) atomic_fetch_add_explicit(&(w)->stats.field, (n), memory_order_relaxed)

/* ---- connection ---- */
enum clink__conn_state {
    CS_CONNECTING = 1, /* client: connect in flight */
    CS_OPENING,        /* server: classifying the client; client: skipping the greeting */
    CS_HANDSHAKE,      /* TLS handshake */
    CS_HELLO,          /* waiting for the peer's HELLO */
    CS_OPEN,
    CS_DRAINING, /* GOAWAY sent or received: finishing what is in flight */
    CS_CLOSING,  /* sending what is left (close_notify), then shutdown + close */
    CS_CLOSED,
};

/* ---- worker ---- */
struct clink_worker {
    struct clink_node *node;
    unsigned idx;
    pthread_t thread;
    struct io_uring ring;
    int ring_fd;
    int efd;
    uint64_t efd_val;

    ck_ring_t inbox;
    ck_ring_buffer_t *inbox_buf;
    atomic_int sleeping;     /* the worker is (about to be) blocked in io_uring_enter */
    atomic_int wake_pending; /* a wake-up was sent and not yet seen */
    atomic_int producers;    /* threads between "check exited" and "enqueue done" */
    atomic_int exited;       /* the loop ended: no more messages are taken */

    struct clink__timers timers;
    struct clink__wheel wheel; /* call deadlines (wheel.h), stamped from now_ns */
    struct clink_conn *conns;
    unsigned nconns;
    struct clink_conn *dirty;
    /*
     * Calls cancelled on this worker by its own code, already off their
     * connection's books, whose callbacks the loop runs next (through
     * priv.next; each holds a reference on its connection): a callback
     * never runs inside clink_call_cancel.
     */
    struct clink_call *canceled, *canceled_tail;
    struct clink_stream *streams_ended, *streams_ended_tail; /* on_end to run from the loop (streams.c) */
    struct clink_req *free_reqs;
    int ktls_logged;           /* a kTLS fallback was logged (once per worker; all are counted) */
    struct clink_req *orphans; /* requests whose connection closed before the handler answered */
    /*
     * Memory budget: bytes in its connections' buffers (clink__bytes.acct;
     * atomic for the gauge readers), its share of max_buffered, and whether
     * some connection paused or held a call back because of it.
     */
    size_t buffered, budget;
    int budget_hit;
    struct clink__timer budget_timer;
    /*
     * Handshake admission, per port ([0] the node's, [1] the HTTPS port):
     * each has its own max_handshakes_per_worker slots, so a storm on one
     * cannot hold the other's logins back.
     */
    struct {
        unsigned handshaking;         /* accepted connections between accept and HELLO */
        struct clink_conn *wait_head; /* accepted, waiting for a handshake slot: newest first */
    } adm[2];
    struct clink__timer hs_evict_timer;
    /* Client sessions on this worker (conn_idle.c sweeps them while there are any) */
    unsigned client_sessions;
    struct clink__timer idle_timer;

    /*
     * The node's tls_gen this worker's links were last checked against
     * (conn_recheck.c), and its one MSG_RECHECK wake-up, posted at most once
     * at a time.
     */
    uint64_t tls_gen;
    atomic_int recheck_posted;
    struct clink__msg recheck_msg;

    int stopping;
    int drain_stage;
    struct clink__timer drain_timer;
    struct clink__timer accept_timer;
    uint64_t accept_failing_since; /* accept has failed since (ns; 0: it works), how many times */
    unsigned accept_failures;
    uint64_t refusal_sec; /* refusal log lines: the second they count, logged in it, left out since */
    unsigned refusal_logged, refusal_dropped;
    int listen_fd;
    int accept_armed;
    int https_fd; /* the HTTPS port (clink_node_listen_https), on the same worker */
    int https_armed;
    unsigned rr;

    struct clink_features feat;
    int zc_ok;     /* zero-copy sends work here (feat.send_zc, until a socket refuses one) */
    int zc_report; /* ... and their notifications say whether the kernel copied (6.2+) */
    struct clink__stats stats;
    /*
     * The clock as the loop last read it, when it woke and again after the
     * pass's completions and inbox (worker.c): calls started or ended on
     * this worker are timed with it (clink_node_call_latency), and call
     * deadlines are stamped and fired from the second read, two clock reads
     * a pass for all of them rather than several a call; a call's latency is
     * then late or early by at most the pass's own work.
     */
    uint64_t now_ns;
} __attribute__((aligned(64)));

struct clink_handler {
    clink_handler_fn fn;
    clink_stream_handler_fn stream_fn; /* a stream method (clink/stream.h) */
    void *user;
};

/*
 * Session counts, node-wide (conn_limits.c): atomics, taken once per login
 * and given back once per close, never on the data path. The per-account
 * counts (only with max_user_connections) are a small table under a mutex.
 */
struct clink__user_count {
    char account[160]; /* as clink_conn_status.account */
    uint32_t n;
};
struct clink__limits {
    _Atomic uint64_t clients, links;
    pthread_mutex_t mu;
    struct clink__user_count *users;
    size_t nusers, cap;
};

struct clink_node {
    struct clink_node_opts opts;
    struct clink_mysql_opts mysql_opts; /* opts.mysql points here when set */
    struct clink__logger log;
    /* Current identity. New handshakes take it under tls_mu (not a data path: once per connection), so a reload can
     * swap it. */
    pthread_mutex_t tls_mu;
    struct clink_tls_ctx *tls;
    _Atomic uint64_t tls_gen; /* bumped (under tls_mu) each time tls is replaced: workers re-check their links */
    struct clink_accounts *accounts;
    struct clink__sessions sessions; /* client-side tickets, per peer identity */
    struct clink__limits limits;
    struct clink_handler *handlers; /* indexed by method, 65536 entries */
    unsigned nworkers;
    struct clink_worker *workers;
    int listen_fd;
    uint16_t port;
    /* The HTTPS port: its certificate is swapped under tls_mu like the node's own */
    int https_fd;
    uint16_t https_port;
    struct clink_tls_ctx *https_tls;
    clink_handler_fn https_fn;
    void *https_user;
    atomic_int secure;         /* enum clink_secure_transport, never DEFAULT once created */
    pthread_mutex_t secure_mu; /* serializes clink_node_set_secure_transport */
    atomic_int started, stopping;
    uint64_t start_ns; /* when it started (MySQL's Uptime) */
    _Atomic uint64_t next_conn_id;
    atomic_uint next_worker;
    int ktls_ulp;
    pthread_barrier_t ready;
    int start_err;
};

extern _Thread_local struct clink_worker *clink__current_worker;

/* worker.c */
int clink__worker_start(struct clink_worker *w);
/* Post a message to w's inbox and wake it. Returns 0, -CLINK_EAGAIN (full) or -CLINK_ESHUTDOWN. */
int clink__worker_post(struct clink_worker *w, void *msg);
/* Run fn on w and wait for it (application threads only). */
int clink__worker_run_sync(struct clink_worker *w, void (*fn)(struct clink_worker *, void *), void *arg);
struct io_uring_sqe *clink__sqe(struct clink_worker *w);
void clink__mark_dirty(struct clink_conn *c);
/* The node's TLS identity exists (reload may add one to a node that started without). */
int clink__node_has_tls(struct clink_node *n);
/* The caller's options with every zero replaced by its default (transport/defaults.c). */
void clink__node_opts_resolve(struct clink_node_opts *o);

#endif
