/*
 * A connection, as the transport's files share it: the core every
 * connection needs (socket I/O through the ring, TLS over memory BIOs, the
 * kTLS hand-off, admission, close), and the protocol it speaks once its
 * opening is classified, behind one small interface (struct clink__proto):
 * clink's native frames (native.c, with our calls in calls.c), a MySQL
 * client (mysql.c) or one HTTP request on the HTTPS port (https.c). Each
 * protocol keeps its state behind one pointer.
 *
 * Files: conn.c (birth, opening to open, status), conn_opening.c (the
 * opening step and the TLS handshake), conn_io.c (recv, send, completions),
 * conn_close.c (failing, draining, closing), conn_budget.c (the worker's
 * send budget and backpressure), conn_admit.c (handshake slots), conn_ktls.c
 * (handing the record layer to the kernel), conn_recheck.c (the peer checked
 * again after a TLS reload), reqs.c (the peer's requests and their answers).
 *
 * Everything here runs on the connection's worker thread, except what
 * node_int.h says other threads may read (refs, open, goaway).
 */
#ifndef CLINK_TRANSPORT_CONN_INT_H
#define CLINK_TRANSPORT_CONN_INT_H

#include <sys/socket.h>

#include "transport/node_int.h"
#include "transport/opening.h"

#if defined(CLINK_HAVE_VALGRIND)
#include <valgrind/memcheck.h>
/* Valgrind cannot see bytes the kernel writes through io_uring: say they are defined. */
#define CLINK_MARK_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define CLINK_MARK_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#define CLINK_TLS_CHUNK 16384                  /* plaintext per SSL_write: one full record */
#define CLINK_LINGER_NS (2000ull * 1000000ull) /* longest a closing connection may take to send its last bytes */

/*
 * Sending from borrowed buffers (conn_gather.c): a run of the caller's bytes
 * that goes on the wire in place of a copy, between the bytes staged in tx.
 * Its owner (a stream message) holds the memory still; the core tells it,
 * through its hold, when the kernel no longer reads it.
 */
struct clink__txhold {
    unsigned refs;                            /* runs of it not yet let go by the kernel */
    void (*release)(struct clink__txhold *h); /* refs fell to 0 (on the worker) */
};
struct clink__txref {
    size_t at; /* staged bytes of its buffer that go before it */
    const uint8_t *p;
    size_t len;
    struct clink__txhold *hold;
};
/* The runs of one send buffer (tx or txf), in order; i and off: what is sent of them. */
struct clink__txrefs {
    struct clink__txref *v;
    unsigned n, cap, i;
    size_t off;         /* bytes of v[i] sent */
    size_t staged_sent; /* bytes of the buffer's staged part sent */
    size_t bytes;       /* bytes of the runs not yet sent */
};
struct clink__zc; /* a zero-copy send whose notification has not come (conn_gather.c) */

/* A call's place on its connection (clink__call_priv.state). */
enum clink__call_state { CALL_PENDING = 1, CALL_SENT };

/* io_uring user_data: the connection's address (64-byte aligned) with the op in its low bits. */
static inline void *clink__tag(void *p, enum clink__op op)
{
    return (void *)((uintptr_t)p | (uintptr_t)op);
}

/* ---- the protocols a connection speaks ---- */

/*
 * What the core asks of the protocol on a connection. The core moves bytes
 * (plain or through TLS or the kernel), bounds time and memory and closes;
 * the protocol parses what arrives and decides what to answer. Every
 * function runs on the connection's worker.
 */
struct clink__proto {
    const char *name;
    /* A link of the node: counted and shown as one, subject to transport security (the HTTPS exchange is not). */
    int link;
    /* The application's: on_conn hears of it, and calls may start on it once open. */
    int app;
    /* What the handshake deadline bounds, for the error that ends a connection past it. */
    const char *deadline;
    /* The port's own opening rule instead of the node port's classification (the HTTPS port). NULL: none. */
    void (*opening)(struct clink_conn *c, enum clink_opening_kind kind);
    /* The channel below is ready (TLS handshake done): set how to read, send a first message. */
    void (*opened)(struct clink_conn *c);
    /* Plaintext bytes (decrypted, or plain) in buf: act on what is whole and consume it. */
    void (*input)(struct clink_conn *c, struct clink__bytes *buf);
    /* The peer closed its side: 1 if an answer is still owed (reading stops, the answer goes out), else 0. */
    int (*half_closed)(struct clink_conn *c);
    /* Asked to close gracefully: say goodbye in the protocol; 1 to drain what is in flight first, 0 to close now. */
    int (*closing)(struct clink_conn *c);
    /* The connection enters CLOSING (err 0: orderly): fail what it still owes the application. May be NULL. */
    void (*ended)(struct clink_conn *c, int err);
    /* Answer one of its requests (a clink_req): frames, or the HTTP response. Frees req. NULL: it has none. */
    int (*answer)(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt, const void *extra,
                  size_t extra_len);
    /* Release its state (the connection is being freed). */
    void (*free)(struct clink_conn *c);
};

extern const struct clink__proto clink__proto_native; /* native.c */
extern const struct clink__proto clink__proto_mysql;  /* mysql.c */
extern const struct clink__proto clink__proto_https;  /* https.c */

struct clink__native; /* native.c: frames, HELLO, our calls, GOAWAY */
struct clink__mysql;  /* mysql.c */
struct clink__https;  /* https.c */

/* A client's dial, needed until the connection opens (then wiped and freed): the TLS name, the login. */
struct clink__dial {
    char expected_name[256];
    int no_resume;
    int login, has_password, hello_deferred;
    char login_user[65];
    char password[256]; /* secret: wiped once the HELLO is out, and with this struct */
};

/* The kTLS control-record I/O, allocated when the kernel takes the receive side. */
struct clink__ktls_io {
    /* one for reading a control record (into rx), one for sending close_notify: both may be out at once */
    struct msghdr rmsg, smsg;
    struct iovec riov, siov;
    _Alignas(struct cmsghdr) uint8_t rcmsg[32]; /* >= CMSG_SPACE(1); cmsghdr ends in a flexible array */
    _Alignas(struct cmsghdr) uint8_t scmsg[32];
};

struct clink_req {
    struct clink_conn *conn; /* NULL once the connection is gone */
    struct clink_worker *w;
    struct clink_req *next, *prev;
    uint64_t id;
    uint16_t method;
    const uint8_t *data;
    size_t len;
};

struct clink_conn {
    struct clink_worker *w;
    struct clink_node *node;
    uint64_t id;
    int fd;
    int state;
    int is_server;
    enum clink_conn_mode mode;
    atomic_int refs;    /* the worker's (until CLOSED) + the application's + queued messages' */
    atomic_int open;    /* 1 while calls may start; read by application threads */
    atomic_int app_ref; /* 1 while the application holds the reference clink_connect gave it */
    atomic_int goaway;  /* the peer sent GOAWAY (read by application threads) */
    _Atomic uint64_t next_call_id;

    /* What it speaks, and that protocol's state (which pointer is meant: proto says). */
    const struct clink__proto *proto;
    union {
        struct clink__native *nat;
        struct clink__mysql *my;
        struct clink__https *http;
    };

    /* I/O: at most one recv and one send in flight; tx fills while txf is on the wire. */
    struct clink__bytes rx;         /* received bytes (ciphertext with TLS) */
    struct clink__bytes prx;        /* decrypted plaintext (TLS only) */
    struct clink__bytes ptx;        /* plaintext staged for encryption (TLS only) */
    struct clink__bytes tx;         /* bytes to send next */
    struct clink__bytes txf;        /* bytes being sent */
    struct clink__txrefs txr, txfr; /* borrowed runs between tx's and txf's bytes (plaintext and kTLS TX) */
    struct clink__gio *gio;         /* the msghdr of a gathering send (allocated on first use) */
    int send_path;                  /* enum clink_send_path: how its borrowed runs go (set when it opens) */
    struct clink__zc *zc_head;      /* zero-copy sends still held by the kernel, oldest first */
    int recv_armed, send_armed, shutdown_done;
    int linger_read; /* an orderly close: after our FIN, read (and drop) until the peer's, so close sends no RST */
    int linger_eof;  /* ... the peer's FIN (or an error) came */
    int recv_paused; /* backpressure: the peer's answers or requests are piling up */
    int rd_shut;     /* the peer closed its side while an answer is owed: read no more */
    int was_open;
    int wipe_ptx;         /* a secret went through ptx: wipe the buffer once it is encrypted */
    unsigned ops;         /* SQEs in flight that name this conn */
    unsigned small_reads; /* recvs in a row that brought less than SMALL_READ: idle or small requests */
    size_t rx_req;        /* bytes the armed recv asked for (0: an exact read) */
    int rx_full;          /* the last recv filled what it asked for: more is waiting */
    size_t last_read;     /* bytes the last recv brought */
    int exact;            /* read exactly `want` bytes: opening and handshake */
    size_t want;
    uint64_t linger_until; /* closing: a large answer may keep moving until then (0: the linger alone bounds it) */
    size_t greet_left;     /* client: greeting bytes still to read */
    int greet_hdr_done;
    uint8_t scramble[20]; /* the login challenge: server sent it, client read it from the greeting */
    int have_scramble;

    /* server: handshake admission (conn_admit.c) */
    int hs_counted;      /* holds one of the worker's handshake slots */
    uint64_t hs_slot_ns; /* ... since then */
    int hs_waiting;      /* in the worker's wait list for a slot (which holds a reference) */
    struct clink_conn *hs_next, *hs_prev;

    int has_tls;
    struct clink__tls *tls; /* NULL once the kernel has both directions (or without TLS): its SSL is freed */
    uint64_t tls_gen;       /* the node's tls_gen when its SSL was made: the trust its peer was verified under */
    /*
     * The peer's certificate then its chain as sent, DER, kept when the SSL
     * is freed at a kTLS hand-off (only for a peer that was verified), so
     * that a reload can check it again (conn_recheck.c). NULL otherwise.
     */
    uint8_t *peer_der;
    size_t peer_der_len;

    /*
     * kTLS (docs/ktls.md): the kernel owns a direction once installed. RX is
     * installed when the connection opens, at a record boundary; TX once the
     * ciphertext OpenSSL produced has left (frames wait, plaintext, in ptx).
     */
    enum clink_ktls_mode ktls_mode;
    int ktls_try;         /* opened: hand over at the next record boundary */
    int ktls_rx, ktls_tx; /* the kernel has the direction */
    int ktls_tx_pending;  /* RX done, TX waits for the user-space ciphertext to leave */
    int ktls_ulp;         /* TCP_ULP "tls" is set on the socket */
    int ktls_cn_pending;  /* orderly close: close_notify still to send as an alert record */
    struct clink__ktls_io *kio;

    /* the peer's requests, waiting for our handlers (reqs.c) */
    struct clink_req *reqs;
    uint32_t nreqs;

    struct clink__timer hs_timer;
    struct sockaddr_storage peer;

    /* server: what its login counts against (conn_limits.c), given back once when it closes */
    int session;         /* enum clink__session */
    int user_counted;    /* also one of its account's max_user_connections */
    int idle_closing;    /* closed for wait_timeout: its protocol says so */
    uint64_t idle_mark;  /* bytes in + out when the idle sweep last saw it move (conn_idle.c) */
    uint64_t idle_since; /* ... and since when (ns) */

    /* client */
    clink_connect_cb connect_cb;
    void *connect_user;
    int verify;               /* 0 none, 1 chain, 2 chain and name */
    struct clink__dial *dial; /* until open */

    struct clink__msg_close close_msg;

    /*
     * Its status, kept after close: the peer's address, the account, the
     * label and the error text live only here; TLS facts are copied when it
     * opens (the SSL may be gone after a kTLS hand-off).
     */
    struct clink_conn_status cache;
    uint64_t bytes_in, bytes_out, frames_in, frames_out;
    int err;

    struct clink_conn *next, *prev; /* worker's list */
    struct clink_conn *dirty_next;
    int dirty;
} __attribute__((aligned(64)));

#define CLINK_CONN_LOG(c, lvl, ...) CLINK_LOG(&(c)->node->log, (lvl), "transport", (c)->id, __VA_ARGS__)

/* The peer's "host:port" as shown in logs and status. */
static inline const char *clink__conn_peer(const struct clink_conn *c)
{
    return c->cache.peer_addr;
}

/* What a server connection's login counts against (conn_limits.c). */
enum clink__session {
    SESSION_NONE = 0, /* not logged in, dialled, or the HTTPS port */
    SESSION_CLIENT,   /* max_connections (and max_user_connections) */
    SESSION_LINK,     /* max_node_links: a native login by a verified certificate, no password */
};

/* Which limit refused a login (clink__conn_limits_admit). */
enum clink__limit {
    LIMIT_OK = 0,
    LIMIT_CONNECTIONS,
    LIMIT_USER,
    LIMIT_LINKS,
};

/* ---- what the node and its workers call (node.c, worker.c) ---- */
void clink__conn_adopt(struct clink_worker *w, int fd, int https);
void clink__conn_dial(struct clink_worker *w, struct clink__msg_connect *m);
void clink__conn_complete(struct clink_worker *w, struct clink_conn *c, int op, int res);
void clink__conn_flush(struct clink_conn *c);
/* inline_caller: started by the owner's own code, so an error is returned and no callback runs. */
int clink__conn_start_call(struct clink_conn *c, struct clink_call *call, int inline_caller);
/* Validate and stage a call started on its owner worker. Returns 0 or a negative error (no callback). */
int clink__conn_check_call(struct clink_conn *c, struct clink_call *call);
/*
 * Cancel call `id` if it is still in flight. defer: the caller is the
 * application's code on this worker (clink_call_cancel), so the callback is
 * queued for the loop (clink__worker_run_canceled) instead of run here.
 */
void clink__conn_cancel_call(struct clink_conn *c, uint64_t id, int defer);
/* Run the callbacks of the calls cancelled on this worker since the last pass. */
void clink__worker_run_canceled(struct clink_worker *w);
/* Run on_end of the streams that ended on this worker since the last pass (streams.c). */
void clink__streams_run_ended(struct clink_worker *w);
void clink__stream_timer(struct clink__timer *t);
void clink__stream_msg(struct clink__msg *m, int live); /* MSG_STREAM (streams_api.c) */
void clink__call_finish(struct clink_worker *w, struct clink_call *call, int status, const uint8_t *p, size_t n);
void clink__conn_begin_close(struct clink_conn *c, int err);
void clink__conn_timer(struct clink_worker *w, struct clink__timer *t);
void clink__conn_put(struct clink_conn *c);
void clink__conn_respond_msg(struct clink__msg_respond *m, int live);
void clink__conn_fill_status(struct clink_conn *c, struct clink_conn_status *st);
/* The node moved to another transport-security state: close what it no longer allows (on each worker). */
void clink__conn_apply_secure(struct clink_worker *w, enum clink_secure_transport state);
/* TIMER_HS_EVICT: close slot holders too slow to finish while others wait for a slot. */
void clink__conn_hs_evict(struct clink_worker *w);
/* TIMER_BUDGET: relieve a full send budget once it drained; say how many refusals were not logged. */
void clink__conn_budget_tick(struct clink_worker *w);
/* TIMER_IDLE: close client sessions idle for wait_timeout_s (conn_idle.c). */
void clink__conn_idle_sweep(struct clink_worker *w);
/* TCP keepalive on a new socket (conn.c), as tcp_keepalive_s says. */
void clink__socket_keepalive(struct clink_node *n, int fd);

/* ---- what the protocols call ---- */
struct clink__bytes *clink__conn_out(struct clink_conn *c); /* where plaintext output goes (then mark dirty) */
/* Fail the connection: its output not yet encrypted is dropped. */
void clink__conn_fail(struct clink_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/*
 * The error a socket failure ends a connection with: -CLINK_ECLOSED for the
 * ways a link is lost (reset, broken pipe, keepalive timeout, unreachable),
 * whichever the kernel said (the caller keeps its errno in the text), so
 * that one event is one error and CLINK_KIND_CLOSED catches it; else res.
 */
int clink__conn_lost_err(int res);
/* Like clink__conn_fail, but the refusal staged for the peer is still sent. */
void clink__conn_refuse(struct clink_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Enter CLOSING (err 0: orderly, close_notify follows); keep_output: what is queued still goes out. */
void clink__conn_close_now(struct clink_conn *c, int err, int keep_output);
void clink__conn_close_orderly(struct clink_conn *c);
void clink__conn_maybe_drained(struct clink_conn *c); /* DRAINING with nothing in flight: close */
void clink__conn_peer_host(const struct clink_conn *c, char *out, size_t cap);
void clink__conn_shown_name(const char *name, char *out, size_t cap); /* a client's user name, safe to print */
int clink__conn_refusal_log_ok(struct clink_conn *c);
/* A login gave an unbound scramble answer inside TLS (its account allows legacy_native_tls): counted and logged. */
void clink__conn_legacy_login(struct clink_conn *c);
/*
 * A server connection logged in (its account is in cache.account): count it
 * as a client session or, link = 1, a node link. LIMIT_OK, or which limit
 * refuses it (counted and logged; the protocol refuses it in its own words).
 */
enum clink__limit clink__conn_limits_admit(struct clink_conn *c, int link);
/*
 * A logged-in client session becomes `account`'s (MySQL's COM_CHANGE_USER):
 * its max_user_connections slot moves to that account. LIMIT_OK
 * (cache.account is `account` now), or LIMIT_USER (counted and logged;
 * nothing changed). max_connections is not asked again: the session stays one.
 */
enum clink__limit clink__conn_limits_move(struct clink_conn *c, const char *account);
void clink__conn_became_open(struct clink_conn *c);   /* the protocol's handshake is done */
void clink__conn_announce_open(struct clink_conn *c); /* tell the application (after any kTLS hand-off) */
void clink__conn_hs_release(struct clink_conn *c);    /* leave the handshake slot (conn_admit.c) */
void clink__conn_arm_recv(struct clink_conn *c);
int clink__conn_server_tls(struct clink_conn *c, struct clink_tls_ctx *const *ctx); /* the node's *ctx */
void clink__conn_step_handshake(struct clink_conn *c);
int clink__conn_calls_in_flight(const struct clink_conn *c); /* ours, waiting for answers (native only) */

/* ---- between the core's files ---- */
/* conn.c */
void clink__conn_dial_free(struct clink_conn *c);
void clink__conn_tls_free(struct clink_conn *c);
/* conn_opening.c */
void clink__conn_classify(struct clink_conn *c);
void clink__conn_greeting(struct clink_conn *c);
void clink__conn_on_connect(struct clink_conn *c, int res);
/* conn_io.c */
int clink__conn_encrypt_pending(struct clink_conn *c); /* 0, or -1 after failing the connection */
/* conn_close.c */
void clink__conn_finish_close(struct clink_conn *c);
void clink__conn_force_close(struct clink_conn *c);
void clink__conn_closed(struct clink_conn *c);
void clink__refusal_log_flush(struct clink_worker *w, uint64_t sec);
/* conn_budget.c */
size_t clink__conn_queued(const struct clink_conn *c); /* bytes waiting to be sent */
int clink__worker_full(struct clink_worker *w);
int clink__conn_must_pause(const struct clink_conn *c);
void clink__conn_budget_relief(struct clink_worker *w, int deep);

/* ---- sending from borrowed buffers (conn_gather.c) ---- */
/* May output to c take borrowed runs (plaintext, or kTLS TX: the kernel copies or encrypts them)? */
int clink__conn_can_borrow(const struct clink_conn *c);
/* Put n borrowed bytes at p next in the output, held by h until sent. 0, or -1 (out of memory). */
int clink__conn_borrow(struct clink_conn *c, const uint8_t *p, size_t n, struct clink__txhold *h);
/* Anything left to send in txf (bytes or runs)? */
int clink__conn_txf_left(const struct clink_conn *c);
/* Send txf with its runs: a gathering sendmsg, or a zero-copy one. */
void clink__conn_send_gather(struct clink_conn *c);
/* A gathering send wrote res bytes: consume them, let go of the runs they finished. */
void clink__conn_gather_sent(struct clink_conn *c, size_t res);
/* Let go of tx's runs unsent, with tx's bytes; txf_too: txf's as well (no send of them in flight). */
void clink__conn_drop_borrowed(struct clink_conn *c, int txf_too);
/* ... all of them, and free what held them (the connection is freed). */
void clink__conn_free_borrowed(struct clink_conn *c);
/* A send completed res bytes (all of what it was given is consumed): on to the next, or done. */
void clink__conn_sent(struct clink_conn *c, int res);
/* A send failed with res: the connection fails, what it was sending is dropped. */
void clink__conn_send_failed(struct clink_conn *c, int res);
/* An op of c completed: a closing connection may go on closing. */
void clink__conn_after_op(struct clink_conn *c);
/* A zero-copy send's completion or notification (OP_SEND_ZC; ptr: its struct clink__zc). */
void clink__conn_zc_complete(struct clink_worker *w, void *zc, int res, unsigned flags);
/* Decide the connection's send path once it opens. */
void clink__conn_pick_send_path(struct clink_conn *c);

/* conn_admit.c */
void clink__conn_admit(struct clink_conn *c); /* an accepted connection: a handshake slot, or wait for one */
/* conn_limits.c */
void clink__conn_limits_release(struct clink_conn *c); /* it closed: give back what its login counted */
void clink__limits_free(struct clink__limits *l);
/* conn_idle.c */
void clink__conn_idle_watch(struct clink_conn *c); /* a client session began: sweep its worker */
/* conn_recheck.c: the node's trust changed (a TLS reload) */
void clink__conn_keep_peer(struct clink_conn *c);        /* before a kTLS hand-off frees the SSL */
void clink__conn_recheck_worker(struct clink_worker *w); /* re-verify this worker's open links, if trust changed */
int clink__conn_recheck_opening(struct clink_conn *c);   /* made under older trust: check now; -1 if failed */
/* conn_ktls.c */
void clink__conn_ktls_begin(struct clink_conn *c);
void clink__conn_ktls_try_tx(struct clink_conn *c);
void clink__conn_ktls_read_control(struct clink_conn *c);
void clink__conn_ktls_on_control(struct clink_conn *c, int res);
void clink__conn_ktls_send_close_notify(struct clink_conn *c);
/* reqs.c */
struct clink_req *clink__req_new(struct clink_conn *c);
void clink__req_free(struct clink_req *r);
void clink__conn_orphan_reqs(struct clink_conn *c);
/* native.c: clink's frames */
int clink__native_start(struct clink_conn *c); /* speaks clink's frames from here: 0 or -CLINK_ENOMEM */
int clink__conn_emit(struct clink_conn *c, uint8_t type, uint16_t method, uint64_t id, const struct iovec *iov,
                     unsigned iovcnt, const void *extra, size_t extra_len);
void clink__conn_emit_error(struct clink_conn *c, uint64_t id, int code, const char *msg);
void clink__native_send_hello(struct clink_conn *c, uint16_t minv, uint16_t maxv);
void clink__native_plain_hello(struct clink_conn *c); /* client, plaintext: HELLO now or after the greeting */
/* calls.c: ours */
void clink__conn_release_pending(struct clink_conn *c);
void clink__conn_detach_call(struct clink_conn *c, struct clink_call *call);
void clink__conn_fail_calls(struct clink_conn *c, int err);
void clink__conn_goaway_pending(struct clink_conn *c); /* the peer's GOAWAY: calls not yet written never left */
/* mysql.c */
void clink__mysql_start(struct clink_conn *c); /* classified as a MySQL client */
/* https.c */
int clink__https_start(struct clink_conn *c); /* accepted on the HTTPS port: 0 or -CLINK_ENOMEM */

#endif
