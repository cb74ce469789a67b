/*
 * clink transport: nodes, connections and multiplexed RPC calls.
 *
 * A node runs W worker threads. Each worker owns one io_uring and the
 * connections assigned to it; everything about a connection (its socket, TLS
 * state, calls in flight) is touched only by that worker, so the data path
 * takes no locks. Application threads reach a worker through its inbox (a
 * concurrencykit ring plus an eventfd the ring watches); workers reach each
 * other with io_uring msg_ring.
 *
 * Completion callbacks run on the connection's worker thread, never inside
 * the call that started the operation, and must not block. Every call that
 * clink_call_start accepted gets exactly one completion: a response or an
 * error (deadline, cancel, connection loss, shutdown). An application
 * thread can take completions on its own thread instead, many at a time,
 * from a completion queue (clink/cq.h).
 *
 * Wire protocol and the port's opening rule: docs/protocol.md.
 * Threading contract of every function: docs/threading.md.
 */
#ifndef CLINK_TRANSPORT_H
#define CLINK_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "clink/auth.h"
#include "clink/error.h"
#include "clink/log.h"

#ifdef __cplusplus
extern "C" {
#endif

struct clink_node;
struct x509_st; /* OpenSSL's X509 */
struct clink_conn;
struct clink_req;
struct clink_call;
struct clink_mysql_opts; /* clink/mysql.h */

/* Protocol versions this build speaks (negotiated in the HELLO exchange). */
#define CLINK_PROTO_MIN 1
#define CLINK_PROTO_MAX 2

/* Method ids 0xFF00..0xFFFF are reserved for clink itself. */
#define CLINK_METHOD_MAX_USER 0xFEFF
/*
 * Answered by every node itself: text, one "Name: value" per line, the
 * connection as the node sees it (clink_conn_status_format) then a blank
 * line and the node's counters. Empty request.
 */
#define CLINK_METHOD_STATUS 0xFF00

enum clink_conn_mode {
    CLINK_MODE_DEFAULT = 0, /* = TLS */
    CLINK_MODE_TLS,
    CLINK_MODE_PLAIN, /* only where the node's options allow plaintext */
};

/* ---- node ---- */

/* Server-side notification of accepted connections. Runs on the conn's worker. */
enum clink_conn_event {
    CLINK_CONN_OPENED = 1, /* opening, handshake and HELLO done */
    CLINK_CONN_REFUSED,    /* failed before it opened; status says why */
    CLINK_CONN_CLOSED,     /* an opened connection ended; status 0 if orderly */
};
typedef void (*clink_conn_event_fn)(struct clink_conn *conn, enum clink_conn_event ev, int status, void *user);

/*
 * Kernel TLS offload: once a TLS 1.3 connection is open, the kernel encrypts
 * and decrypts its records (io_uring then moves plaintext). Needs the "tls"
 * ULP (Linux >= 5.11 for all three suites); without it, or when a
 * connection cannot be handed over, it stays in user-space TLS: counted
 * (ktls_fallbacks) and said in its status, never silently.
 */
enum clink_ktls_mode {
    CLINK_KTLS_DEFAULT = 0, /* connect options: the node's; node options: AUTO */
    CLINK_KTLS_AUTO,        /* offload where the kernel can */
    CLINK_KTLS_DISABLED,    /* never: user-space TLS */
    CLINK_KTLS_REQUIRED,    /* a connection that cannot be offloaded fails (-CLINK_EKTLS) */
};

/*
 * Transport security, the way a cluster moves from plaintext to TLS (and
 * back) with no restart and no failed call (docs/config.md,
 * require_secure_transport): every node to ACCEPT_BOTH, then every node to
 * PREFER_TLS (pools replace their plaintext links with TLS ones), then, once
 * no plaintext link is left anywhere, REQUIRE_TLS.
 */
enum clink_secure_transport {
    CLINK_SECURE_DEFAULT = 0, /* REQUIRE_TLS; PREFER_TLS with allow_plaintext; PLAINTEXT with no TLS identity */
    CLINK_SECURE_PLAINTEXT,   /* plaintext only: dials in plaintext, refuses TLS clients */
    CLINK_SECURE_ACCEPT_BOTH, /* accepts both; dials in plaintext */
    CLINK_SECURE_PREFER_TLS,  /* accepts both; dials in TLS (pools replace their plaintext links) */
    CLINK_SECURE_REQUIRE_TLS, /* TLS only: plaintext clients refused, plaintext links closed gracefully */
};

/*
 * How stream data leaves on links where the kernel takes bytes as they are
 * (plaintext, or kTLS: the kernel encrypts): always from the caller's
 * buffers, without clink's staging copy (path "gather": the kernel copies or
 * encrypts during the send). Zero-copy (path "zerocopy",
 * IORING_OP_SENDMSG_ZC, plaintext only: a kTLS socket refuses it) also
 * spares the kernel's copy: the pages go to the network card and stay
 * pinned until the peer acknowledges them. That can pay only for large sends
 * through a network card; over loopback the kernel copies at delivery anyway
 * and the bench measured zero-copy at 0.3x to 0.6x of gather's rate. Off unless
 * asked: measure it on your network (clink-bench's plain-zc stream line).
 */
enum clink_zerocopy {
    CLINK_ZEROCOPY_DEFAULT = 0, /* = OFF */
    CLINK_ZEROCOPY_OFF,         /* never: gather */
    CLINK_ZEROCOPY_AUTO,        /* zero-copy on plaintext links to another host, where the kernel has it */
    CLINK_ZEROCOPY_ON,          /* on every plaintext link, loopback too (measuring, testing) */
};
/* The path a connection's stream data takes (clink_conn_status.send_path). */
enum clink_send_path {
    CLINK_SEND_COPY = 0, /* user-space TLS: copied into the buffer OpenSSL encrypts from */
    CLINK_SEND_GATHER,   /* from the caller's buffers; the kernel copies (plaintext) or encrypts (kTLS) them */
    CLINK_SEND_ZEROCOPY, /* from the caller's buffers without a copy (plaintext, IORING_OP_SENDMSG_ZC) */
};
/* "copy", "gather", "zerocopy". Thread: any. */
CLINK_API const char *clink_send_path_name(enum clink_send_path p);

/* Zero means default for every field. */
struct clink_accounts;

struct clink_node_opts {
    unsigned workers;              /* worker threads; 0: one per online CPU */
    struct clink_tls_ctx *tls;     /* [in] TLS identity; the node takes a reference. NULL only with allow_plaintext */
    int allow_plaintext;           /* 1: accept native plaintext clients and allow CLINK_MODE_PLAIN dials */
    uint32_t max_frame;            /* largest frame payload accepted, bytes; 0: 4 MiB */
    uint32_t handshake_timeout_ms; /* accept/dial until HELLO done; 0: 10 s */
    uint32_t inbox_size;           /* messages per worker inbox, power of two; 0: 8192 */
    uint32_t max_write_buffer; /* per conn: bytes queued for the socket before calls wait and reads pause; 0: 4 MiB */
    uint32_t max_requests_per_conn; /* per conn: the peer's requests in our handlers before reads pause; 0: 4096 */
    /*
     * Accepted connections one worker takes through opening, TLS handshake
     * and HELLO at once, per port (the HTTPS port has as many of its own);
     * the rest wait their turn unread (still within handshake_timeout_ms),
     * so a reconnect storm queues instead of flattening the node. 0: 32.
     */
    uint32_t max_handshakes_per_worker;
    clink_conn_event_fn on_conn; /* optional: server-side connection events */
    void *on_conn_user;
    clink_log_fn log; /* optional: NULL means silent */
    void *log_user;
    enum clink_log_level log_level; /* 0: CLINK_LOG_WARN */
    /*
     * [in] Accounts every accepted connection must log in as (the node takes
     * a reference; see clink/accounts.h). NULL: no login step is checked and
     * a client's TLS certificate (or allow_plaintext) is all it proves.
     */
    struct clink_accounts *accounts;
    enum clink_ktls_mode ktls; /* for accepted connections and the default for dials; 0: AUTO */
    /*
     * All connections' send buffers together, bytes (split evenly over the
     * workers; at least 1 MiB each, else -CLINK_EINVAL). A worker at its
     * share stops reading requests on open connections and holds new calls
     * back, unserialized, until sends drain it below 7/8 of it; HELLOs and
     * responses to our own calls are still read. The per-connection bound is
     * max_write_buffer. 0: a quarter of physical memory.
     */
    uint64_t max_buffered;
    /*
     * [in] MySQL-protocol clients on this port (clink/mysql.h,
     * docs/mysql.md): set, they are served (they log in as `accounts`, which
     * must be set; plaintext logins only where allow_plaintext) and their
     * statements go to its hook; NULL answers them with a MySQL error.
     * Copied by clink_node_new.
     */
    const struct clink_mysql_opts *mysql;
    /*
     * The starting state (clink_node_set_secure_transport changes it). A
     * state other than PLAINTEXT needs tls; PLAINTEXT, ACCEPT_BOTH and
     * PREFER_TLS need allow_plaintext.
     */
    enum clink_secure_transport secure_transport;
    /*
     * Session limits, node-wide across workers (docs/config.md). A client
     * session is an accepted connection that logged in: a MySQL client, or a
     * native one that is not a node link. A node link is a native login
     * proven by a verified client certificate with no password (another
     * node, a pool that logs in by certificate): links have their own budget,
     * so such a pool never competes with clients for slots; a pool that also
     * sends a password counts as a client session. Dialled connections are
     * never counted.
     *
     * max_connections: client sessions at once. Past it a login is refused
     * (-CLINK_ETOOMANY on the native port, MySQL error 1040 "Too many
     * connections"), except that one more is kept for an account with grant
     * ALL (clink_accounts_is_admin), as MySQL keeps one for SUPER: an
     * administrator gets in while others hold every slot. Without accounts
     * nobody holds grant ALL. 0: CLINK_DEFAULT_MAX_CONNECTIONS.
     */
    uint32_t max_connections;
    /* Node links at once; past it a link is refused (-CLINK_ETOOMANY). 0: CLINK_DEFAULT_MAX_NODE_LINKS. */
    uint32_t max_node_links;
    /*
     * Client sessions of one account ('user'@'host' as matched) at once, the
     * same bound for every account (MySQL's global max_user_connections);
     * past it the login is refused (-CLINK_ETOOMANY, MySQL error 1203). Node
     * links are not counted, nor sessions of a node without accounts. 0: no
     * limit.
     */
    uint32_t max_user_connections;
    /*
     * Seconds a client session may stay idle (nothing received or sent, no
     * call or request in flight) before the node closes it (MySQL's
     * wait_timeout; a MySQL client is told with error 4031, a native one
     * gets GOAWAY). Node links are exempt: pools ping their links. Checked by
     * a sweep every quarter of it (at most a minute): a session is closed at
     * the earliest wait_timeout_s after its last activity. At most 31536000.
     * 0: CLINK_DEFAULT_WAIT_TIMEOUT_S.
     */
    uint32_t wait_timeout_s;
    /*
     * TCP keepalive on every accepted and dialled socket: seconds without
     * traffic before the kernel probes the peer (then every 10 s, 6 times,
     * or every tcp_keepalive_s if shorter), so a peer that vanished without
     * a FIN or RST frees its socket. At most 32767 (the kernel's limit).
     * 0: CLINK_DEFAULT_TCP_KEEPALIVE_S.
     */
    uint32_t tcp_keepalive_s;
    /*
     * Protocol version 2 (chunked messages and streams, docs/protocol.md),
     * announced to each peer in SETTINGS. max_message: the largest message
     * reassembled from chunks (a unary request or answer, or one message of
     * a stream); 0: 4 MiB (CLINK_DEFAULT_MAX_MESSAGE). conn_window: bytes of
     * chunked messages and stream data a peer may have sent us and we not
     * yet consumed, per connection (at least 4/3 of max_message); 0: 16 MiB.
     * stream_window: the same per stream (at least 64 KiB); 0: 4 MiB. These
     * bound what a peer can make a connection hold beyond one frame.
     */
    uint32_t max_message, conn_window, stream_window;
    /* Highest protocol version to speak (1 or 2; 1 turns chunking and streams off). 0: CLINK_PROTO_MAX. */
    uint16_t proto_max;
    /*
     * TCP_NOTSENT_LOWAT on every socket, bytes: how much written but unsent
     * data the kernel keeps ahead of a new frame (a small call behind a
     * stream waits for it). 0: the kernel's default (no limit). At most 2^30.
     */
    uint32_t tcp_notsent_lowat;
    /* Zero-copy sends of stream data on plaintext links (enum clink_send_path says what else applies). 0: OFF. */
    enum clink_zerocopy zerocopy;
};

/* The defaults of the session limits above (MySQL's max_connections and wait_timeout). */
#define CLINK_DEFAULT_MAX_CONNECTIONS 151
#define CLINK_DEFAULT_MAX_NODE_LINKS  16384
#define CLINK_DEFAULT_WAIT_TIMEOUT_S  28800
#define CLINK_DEFAULT_TCP_KEEPALIVE_S 60
#define CLINK_DEFAULT_MAX_MESSAGE     (4u << 20)
#define CLINK_DEFAULT_CONN_WINDOW     (16u << 20)
#define CLINK_DEFAULT_STREAM_WINDOW   (4u << 20)

/*
 * Every default as a value (transport/defaults.c): copy it and override
 * what you change. A zero field in any options struct means the value here;
 * workers (one per online CPU) and max_buffered (a quarter of physical
 * memory) are zero here too, computed when the node is made.
 */
extern CLINK_API const struct clink_node_opts clink_node_opts_default;

/*
 * Create a node (no threads yet). [out] *out; free with clink_node_free.
 * Thread: any. Returns 0, -CLINK_EINVAL (e.g. no TLS and no plaintext), -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_node_new(const struct clink_node_opts *opts, struct clink_node **out);

/*
 * Handler for incoming requests of one method. Runs on the connection's
 * worker. The request payload is valid only during the handler; the handler
 * must answer exactly once with clink_req_respond or clink_req_fail, now or
 * later (from the same worker).
 */
typedef void (*clink_handler_fn)(struct clink_req *req, void *user);

/* Register a handler. Thread: before start. Returns 0, -CLINK_EINVAL (method reserved or taken). */
CLINK_API CLINK_MUST_USE int clink_node_register(struct clink_node *node, uint16_t method, clink_handler_fn fn,
                                                 void *user);

/*
 * Listen on addr ("127.0.0.1", "::1", "0.0.0.0"...) and port (0: ephemeral,
 * see clink_node_port). Thread: before start. Returns 0 or -errno / -CLINK_EINVAL.
 */
CLINK_API CLINK_MUST_USE int clink_node_listen(struct clink_node *node, const char *addr, uint16_t port);

/* The bound port after clink_node_listen, else 0. Thread: any. */
CLINK_API uint16_t clink_node_port(const struct clink_node *node);

/* Start the workers (and accepting, if listening). Thread: any, once. */
CLINK_API CLINK_MUST_USE int clink_node_start(struct clink_node *node);

/*
 * Graceful shutdown: stop accepting, send GOAWAY on every connection, let
 * calls in flight finish for up to drain_ms, then fail what is left with
 * -CLINK_ESHUTDOWN, close every connection (close_notify) and join the
 * workers. Blocks. Thread: any but a worker (which gets -CLINK_EWOULDBLOCK).
 * Returns 0 or -CLINK_EINVAL.
 */
CLINK_API CLINK_MUST_USE int clink_node_shutdown(struct clink_node *node, uint32_t drain_ms);

/* Free a node; shuts it down first (drain 0) if still running. Thread: any but a worker. */
CLINK_API void clink_node_free(struct clink_node *node);

/*
 * 1 if the calling thread is a worker of any clink node (it runs handlers
 * and completion callbacks), else 0. The blocking calls (clink_call_sync,
 * clink_connect_sync, the pool's) check it and return -CLINK_EWOULDBLOCK at
 * once: on a worker they would wait for a completion that only a worker can
 * deliver, and if it is that one, never. Thread: any.
 */
CLINK_API int clink_thread_is_worker(void);

/* Number of workers. Thread: any. */
CLINK_API unsigned clink_node_workers(const struct clink_node *node);

/* Counters summed over workers (each worker writes its own; no locks). */
struct clink_node_stats {
    uint64_t conns_accepted, conns_dialed, conns_open, conns_refused;
    uint64_t handshakes_ok, handshakes_failed;
    uint64_t calls_started, calls_ok, calls_failed;
    uint64_t requests_handled;
    uint64_t bytes_in, bytes_out; /* on the wire */
    uint64_t bytes_copied;        /* plaintext copied into staging buffers */
    uint64_t bytes_borrowed;      /* stream data sent from the caller's buffers, without that copy */
    uint64_t zc_sends;            /* zero-copy sends (clink_zerocopy) */
    uint64_t zc_copied;           /* ... that the kernel said it copied after all (loopback; kernel 6.2+ says) */
    uint64_t inbox_full;          /* hand-offs refused because an inbox was full */
    uint64_t protocol_errors;
    uint64_t plaintext_fallbacks; /* PREFERRED dials that went out in plaintext */
    uint64_t logins_ok, logins_denied;
    uint64_t logins_legacy_native_tls; /* of logins_ok: an unbound scramble answer inside TLS (legacy_native_tls) */
    uint64_t tls_reloads;
    uint64_t handshakes_resumed;  /* of handshakes_ok: resumed from a ticket (both roles) */
    uint64_t handshakes_deferred; /* accepted connections that waited for a handshake slot */
    uint64_t ktls_offloaded;      /* TLS connections whose two directions the kernel took over */
    uint64_t ktls_rx_only;        /* ... whose receive side only (user-space TLS sends) */
    uint64_t ktls_fallbacks;      /* TLS connections that stayed in user-space TLS (status says why) */
    uint64_t buffered;            /* bytes held in all connections' send buffers now (a gauge) */
    uint64_t buffer_full;         /* times a worker's buffers reached its share of max_buffered */
    uint64_t mysql_logins;        /* MySQL-protocol clients logged in (also in logins_ok) */
    uint64_t mysql_queries;       /* their statements (COM_QUERY) */
    uint64_t https_requests;      /* requests on the HTTPS port handed to its handler */
    uint64_t https_refused;       /* HTTPS connections that failed (TLS, malformed request, timeout) */
    /* calls_failed by reason: deadline, the peer's handler failed it, cancelled, the link closed/went away, other */
    uint64_t calls_failed_timeout, calls_failed_remote, calls_failed_canceled, calls_failed_closed, calls_failed_other;
    /*
     * Session limits (clink_node_opts.max_connections...): sessions counted
     * now (gauges, node-wide atomics taken at login), then logins refused by
     * each limit (they passed the account check: also in logins_ok).
     */
    uint64_t client_sessions, node_links;
    uint64_t refused_max_connections, refused_max_user_connections, refused_max_node_links;
    uint64_t idle_closed; /* client sessions closed after wait_timeout_s idle */
    /*
     * Established TLS links closed gracefully (GOAWAY) by a TLS reload because
     * the peer's certificate no longer verifies under the new trust: revoked
     * by a CRL, or anything else (its CA removed from ssl_ca, ...).
     */
    uint64_t links_closed_revoked, links_closed_untrusted;
    /*
     * Streams (clink/stream.h): opened here, accepted by a handler here,
     * ended (each side counts its own) well or not; frames of streams no
     * longer known (late after a cancel, or a hostile peer's: dropped);
     * peers that sent past the window they were given (closed with
     * CLINK_EPROTO); chunks of chunked messages and stream data sent and
     * received.
     */
    uint64_t streams_opened, streams_accepted, streams_ok, streams_failed, stream_frames_refused;
    uint64_t flow_violations, chunks_out, chunks_in;
};
/* Thread: any (values may be a moment old). */
CLINK_API void clink_node_get_stats(const struct clink_node *node, struct clink_node_stats *out);

/*
 * Call latencies as a histogram, counted since the node started like the
 * other counters (take two and subtract them for an interval): bucket b
 * counts the calls that took from clink_latency_bucket_us(b) up to
 * clink_latency_bucket_us(b + 1) microseconds, four buckets to each doubling
 * (a bucket's bounds are within 25% of each other), the last one everything
 * from about a minute on. A call's latency runs from clink_call_start to its
 * callback, failures included (a call that timed out counts its deadline);
 * pings are not calls here. On a worker both ends are read from the clock
 * its loop read when it last woke (no clock read per call), so a latency
 * is off by at most the work of one pass of that loop.
 */
#define CLINK_LATENCY_BUCKETS 100
struct clink_latency {
    uint64_t count[CLINK_LATENCY_BUCKETS];
};
/* The bucket a latency of ns nanoseconds falls in (below CLINK_LATENCY_BUCKETS). Thread: any. */
CLINK_API unsigned clink_latency_bucket(uint64_t ns);
/* The lowest latency (microseconds) of bucket b; b = CLINK_LATENCY_BUCKETS: the end of the last. Thread: any. */
CLINK_API uint64_t clink_latency_bucket_us(unsigned b);
/* [out] the calls this node made (pools' calls included), every worker summed. Thread: any (a moment old). */
CLINK_API void clink_node_call_latency(const struct clink_node *node, struct clink_latency *out);

/*
 * Rotate the node's TLS identity and trust without a restart (like MySQL's
 * ALTER INSTANCE RELOAD TLS): new handshakes use ctx, established
 * connections keep theirs and no call fails. Each worker then checks the
 * peer certificate of every TLS link it owns (accepted with a client
 * certificate, or dialled with verification) against ctx's trust (CAs,
 * CRLs, strictness; not the name, checked at the dial): a link whose peer
 * no longer verifies (revoked, its CA removed) is closed gracefully with
 * GOAWAY, its calls in flight finishing, logged once and counted
 * (links_closed_revoked, links_closed_untrusted); a handshake still under
 * way is checked when it opens. ctx was validated by
 * clink_tls_ctx_new (key matches, chain verifies, not expired); the node
 * takes a reference. A node started without TLS (allow_plaintext, state
 * PLAINTEXT) gains its identity here, the first step of moving it to TLS
 * with no restart (clink_node_set_secure_transport). Thread: any. Returns 0
 * or -CLINK_EINVAL (no ctx, or an HTTPS-only one).
 */
CLINK_API CLINK_MUST_USE int clink_node_reload_tls(struct clink_node *node, struct clink_tls_ctx *ctx);

/*
 * Move the node to another transport-security state, at once and for good
 * (until the next call): new accepted connections follow it, dials that do
 * not name a mode (CLINK_MODE_DEFAULT with CLINK_SSL_DEFAULT) go out in
 * plaintext in PLAINTEXT and ACCEPT_BOTH and in TLS otherwise, and the links
 * the new state no longer allows (plaintext ones under REQUIRE_TLS, TLS ones
 * under PLAINTEXT) are closed gracefully (GOAWAY: their calls finish). Pools
 * replace their links whose mode no longer matches. Thread: any but a
 * worker (waits for every worker to have applied it; a worker gets
 * -CLINK_EWOULDBLOCK). Returns 0 or -CLINK_EINVAL (a TLS state without a TLS identity, PLAINTEXT/ACCEPT_BOTH/
 * PREFER_TLS without allow_plaintext, an unknown state).
 */
CLINK_API CLINK_MUST_USE int clink_node_set_secure_transport(struct clink_node *node,
                                                             enum clink_secure_transport state);
CLINK_API enum clink_secure_transport clink_node_secure_transport(const struct clink_node *node);
/* The name of a state as the config file spells it: "PLAINTEXT", "ACCEPT_BOTH", "PREFER_TLS", "REQUIRE_TLS". */
CLINK_API const char *clink_secure_transport_name(enum clink_secure_transport state);

/*
 * The node's current TLS identity with a reference (drop it with
 * clink_tls_ctx_free), NULL if it has none; https: the HTTPS port's instead.
 * For certificate expiry monitoring (clink_tls_ctx_certs). Thread: any.
 */
CLINK_API struct clink_tls_ctx *clink_node_tls(struct clink_node *node, int https);

/* Which ring setup each worker got, for tests and bench output. */
struct clink_features {
    int single_issuer; /* IORING_SETUP_SINGLE_ISSUER accepted */
    int defer_taskrun; /* IORING_SETUP_DEFER_TASKRUN accepted */
    int ext_arg;       /* IORING_FEAT_EXT_ARG (timeouts without an SQE) */
    int msg_ring;
    int ktls;    /* the kernel offers the "tls" ULP: TLS 1.3 connections are handed to it (clink_ktls_mode) */
    int send_zc; /* IORING_OP_SENDMSG_ZC (6.0+): plaintext links may send stream data zero-copy (clink_zerocopy) */
};
/* Thread: any, after start. */
CLINK_API void clink_node_features(const struct clink_node *node, struct clink_features *out);

/* ---- connections ---- */

/* How a client checks the server, with the mysql client's --ssl-mode names and meanings. */
enum clink_ssl_mode {
    CLINK_SSL_DEFAULT = 0,     /* = CLINK_SSL_VERIFY_IDENTITY (PREFERRED is never a default) */
    CLINK_SSL_DISABLED,        /* plaintext; only where this node allows plaintext */
    CLINK_SSL_PREFERRED,       /* TLS, unverified, if this node has a TLS identity; else plaintext, logged, counted */
    CLINK_SSL_REQUIRED,        /* TLS, encryption only: the server's certificate is not verified */
    CLINK_SSL_VERIFY_CA,       /* TLS, the chain is verified against our CAs, the name is not checked */
    CLINK_SSL_VERIFY_IDENTITY, /* TLS, chain and name (expected_name, else host) verified */
};

struct clink_connect_opts {
    const char *host; /* [in] IPv4/IPv6 literal or "localhost". Required. */
    uint16_t port;
    const char *expected_name; /* [in] name (DNS or IP) the peer certificate must carry; NULL: host */
    enum clink_conn_mode mode; /* CLINK_MODE_PLAIN is the same as ssl_mode DISABLED */
    enum clink_ssl_mode ssl_mode;
    uint32_t timeout_ms; /* connect + opening + handshake; 0: node's handshake_timeout_ms */
    /*
     * [in] Log in as this account (NULL: the anonymous user ''). The password
     * (NULL: none) goes inside TLS as is, and in plaintext only as the answer
     * to the server's scramble (mysql_native_password). Both are copied and
     * the copy is wiped once sent.
     */
    const char *user;
    const char *password;
    int no_resume;             /* 1: neither offer nor keep a session ticket (full handshake; for measurements) */
    enum clink_ktls_mode ktls; /* 0: the node's */
    const char *label;         /* [in] shown in its status (pools: the peer's name); copied, at most 63 bytes */
};

/*
 * Whether a dial with this mode and ssl_mode would go out in plaintext now
 * (1) or in TLS (0), as clink_connect decides it. Thread: any.
 */
CLINK_API int clink_node_dial_plaintext(const struct clink_node *node, enum clink_conn_mode mode,
                                        enum clink_ssl_mode ssl_mode);

/*
 * Dial a peer. cb runs on the worker that owns the new connection, with
 * status 0 and a conn the caller now holds a reference to (drop it with
 * clink_conn_close), or with a negative status, conn NULL and `reason`: why,
 * in words (e.g. "certificate verify failed: Hostname mismatch"), valid only
 * during the callback.
 * Thread: any, after start. Returns 0 (cb will run) or negative (cb will not).
 */
typedef void (*clink_connect_cb)(struct clink_conn *conn, int status, const char *reason, void *user);
CLINK_API CLINK_MUST_USE int clink_connect(struct clink_node *node, const struct clink_connect_opts *opts,
                                           clink_connect_cb cb, void *user);

/*
 * Blocking dial for application threads. [out] *out on success (set to NULL
 * first). [out] err gets the reason on failure (e.g. the certificate
 * verification error), may be NULL. Thread: any but a worker: there it
 * returns -CLINK_EWOULDBLOCK at once (use clink_connect).
 */
CLINK_API CLINK_MUST_USE int clink_connect_sync(struct clink_node *node, const struct clink_connect_opts *opts,
                                                struct clink_conn **out, char *err, size_t errlen);

/*
 * Close gracefully (GOAWAY, let calls in flight finish, close_notify) and
 * drop the caller's reference: conn must not be used afterwards.
 * Thread: any, for a connection from clink_connect. An accepted connection
 * (from on_conn or clink_req_conn) holds no application reference: close it
 * only on its worker; the pointer stays valid until its CLINK_CONN_CLOSED
 * event (or, from clink_req_conn, during the handler).
 */
CLINK_API void clink_conn_close(struct clink_conn *conn);

/*
 * 1 while calls can be started on conn (opened, not draining or closed): a
 * lock-free snapshot for pools and health checks. Thread: any.
 */
CLINK_API int clink_conn_is_open(const struct clink_conn *conn);

/* Connection id (unique within the node), for logs. Thread: any. */
CLINK_API uint64_t clink_conn_id(const struct clink_conn *conn);

/*
 * The peer's certificate if it sent one and its chain verified against this
 * node's CAs, else NULL; the caller owns a reference (X509_free). For a
 * handler that logs a request in by certificate (the ops port). Thread: the
 * connection's worker (a handler); any other gets NULL.
 */
CLINK_API struct x509_st *clink_conn_peer_cert(struct clink_conn *conn);

/* 1 if the connection is in plaintext (fixed once dialled or classified). Thread: any. */
CLINK_API int clink_conn_plaintext(const struct clink_conn *conn);

enum clink_ktls_state {
    CLINK_KTLS_OFF = 0,
    CLINK_KTLS_ON,
};

struct clink_conn_status {
    int open;      /* 1 while calls can be made */
    int is_server; /* accepted (1) or dialed (0) */
    enum clink_conn_mode mode;
    char peer_addr[64];     /* "127.0.0.1:4000" */
    uint16_t proto_version; /* negotiated clink protocol version */
    char tls_version[16];   /* "TLSv1.3", "" in plaintext */
    char cipher[64];        /* as SSL_CIPHER_get_name, e.g. "TLS_AES_256_GCM_SHA384" */
    char alpn[16];
    char peer_subject[256]; /* RFC 2253, "" if no certificate */
    char peer_issuer[256];
    int64_t peer_not_after; /* unix seconds, 0 if no certificate */
    int resumed;            /* TLS session resumed */
    enum clink_ktls_state ktls_tx, ktls_rx;
    char ktls_reason[96];         /* why kTLS is off */
    char verified[16];            /* client: "identity", "ca" or "none"; server: "client-cert" or "none" */
    uint64_t bytes_in, bytes_out; /* on the wire */
    uint64_t frames_in, frames_out;
    uint64_t records_in, records_out; /* TLS records under the application keys */
    uint32_t calls_in_flight;         /* ours, waiting for the peer */
    uint32_t requests_in_flight;      /* the peer's, waiting for our handlers */
    char account[160];                /* server: 'user'@'host' of the account logged in; client: the user sent */
    int last_error;                   /* 0 or the error that closed/refused it */
    char last_error_text[256];        /* detail: OpenSSL reason, verification error */
    int mysql;                        /* server: a MySQL-protocol client (clink/mysql.h) */
    uint64_t id;                      /* clink_conn_id */
    char state[12];                   /* "opening", "open", "draining", "closing" or "closed" */
    char label[64];                   /* client: clink_connect_opts.label */
    int64_t local_not_after;          /* our certificate on this connection, unix seconds; 0 if none */
    char peer_serial[64];             /* the peer certificate's serial number, hex; "" if none */
    enum clink_send_path send_path;   /* how its stream data leaves (see enum clink_zerocopy) */
};

/*
 * Every link of the node as a status snapshot: dialled and accepted
 * connections from their opening to their close (not the HTTPS port's).
 * [out] *out (caller frees with free()) and *n. Thread: any but a worker
 * (waits for each worker in turn; a worker gets -CLINK_EWOULDBLOCK).
 * Returns 0, -CLINK_EINVAL or -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_node_links(struct clink_node *node, struct clink_conn_status **out, size_t *n);

/*
 * Snapshot of a connection. Thread: any application thread (it waits for the
 * worker), or the connection's own worker; another worker gets
 * -CLINK_EWOULDBLOCK (a worker never blocks on a worker).
 */
CLINK_API CLINK_MUST_USE int clink_conn_get_status(struct clink_conn *conn, struct clink_conn_status *out);

/*
 * Format a status as "key: value" lines (the cipher as OpenSSL and the
 * mysql client name it, TLS version, kTLS, resumed, peer certificate, bytes).
 * Returns the length written (truncated to cap - 1). Thread: any.
 */
CLINK_API size_t clink_conn_status_format(const struct clink_conn_status *st, char *buf, size_t cap);

/* ---- calls ---- */

/*
 * Completion of a call. status 0: resp/len is the response payload. status
 * -CLINK_EREMOTE: resp/len is the peer handler's error message. Other
 * negative status: no payload. resp is valid only during the callback.
 */
typedef void (*clink_call_cb)(struct clink_call *call, int status, const uint8_t *resp, size_t len);

/* A link in one of a worker's timer wheel lists (private to clink). */
struct clink__tlink {
    struct clink__tlink *next, *prev;
};

/* A deadline in a worker's timer heap or, for calls, its timer wheel (private to clink). */
struct clink__timer {
    struct clink__tlink link; /* first: the wheel's lists hold links */
    uint64_t deadline_ns;
    size_t idx;
    int kind;
};

/* Private part of a call. Do not touch; its layout may change. */
struct clink__call_priv {
    struct clink_call *next; /* FIFO of calls waiting for write-buffer room */
    struct clink_conn *conn;
    uint64_t id;
    struct clink__timer timer;
    int ping;
    int state;
    uint64_t start_ns; /* when clink_call_start took it: its latency (clink_node_call_latency) */
};

/*
 * One RPC. Caller-owned: embed it anywhere; it and the request buffers are
 * borrowed by clink from clink_call_start until the callback runs.
 */
struct clink_call {
    uint16_t method;         /* [in] method id */
    const struct iovec *iov; /* [in] request payload; borrowed until cb */
    unsigned iovcnt;
    uint32_t timeout_ms; /* [in] deadline from start; 0: none (shutdown still ends it) */
    clink_call_cb cb;    /* [in] required */
    void *user;          /* [in] for the caller */
    struct clink__call_priv priv;
};

/*
 * Start a call. Thread: any (from an application thread the call is handed
 * to the conn's worker). Returns 0 (cb will run exactly once), or negative
 * and cb will not run: -CLINK_EINVAL, -CLINK_ECLOSED, -CLINK_ESHUTDOWN,
 * -CLINK_EFRAMETOOBIG (larger than the peer accepts), -CLINK_EAGAIN (the
 * worker's inbox is full).
 */
CLINK_API CLINK_MUST_USE int clink_call_start(struct clink_conn *conn, struct clink_call *call);

/*
 * Send a PING; call completes when the PONG arrives (method and payload are
 * ignored). Same contract as clink_call_start.
 */
CLINK_API CLINK_MUST_USE int clink_conn_ping(struct clink_conn *conn, struct clink_call *call);

/*
 * Ask for a call to end with -CLINK_ECANCELED. Asynchronous and racy by
 * nature: if the response wins, the call completes normally. Must be called
 * before the call's callback has returned. The callback never runs inside
 * this function: on the call's own worker (from a handler or callback) the
 * call is taken off the connection at once and its callback runs from the
 * worker's loop right after the current callback returns; from another
 * thread the worker does both. Thread: any. Returns 0, -CLINK_EINVAL,
 * -CLINK_ENOMEM or -CLINK_EAGAIN (the worker's inbox is full).
 */
CLINK_API CLINK_MUST_USE int clink_call_cancel(struct clink_call *call);

/* Owned response of clink_call_sync; free with clink_msg_free. */
struct clink_msg {
    uint8_t *data;
    size_t len;
};
CLINK_API void clink_msg_free(struct clink_msg *msg);

/*
 * Blocking call for application threads. [out] resp: response (status 0) or
 * the peer's error message (-CLINK_EREMOTE); caller frees with
 * clink_msg_free. resp is cleared before any check, so clink_msg_free is
 * safe after any return. Thread: any but a worker: there it returns
 * -CLINK_EWOULDBLOCK at once (use clink_call_start, or clink_cq for
 * application threads that want many calls in flight).
 */
CLINK_API CLINK_MUST_USE int clink_call_sync(struct clink_conn *conn, uint16_t method, const void *req, size_t len,
                                             uint32_t timeout_ms, struct clink_msg *resp);

/* ---- handlers' side ---- */

/* Request payload, valid only during the handler. Thread: owner worker. */
CLINK_API const uint8_t *clink_req_data(const struct clink_req *req, size_t *len);
CLINK_API uint16_t clink_req_method(const struct clink_req *req);
/* The connection the request came on (borrowed). */
CLINK_API struct clink_conn *clink_req_conn(const struct clink_req *req);

/*
 * Answer a request (exactly once; the req is freed). The payload is copied.
 * Thread: any. On the request's own worker the answer is queued at once and
 * this returns 0, or -CLINK_ECLOSED if the connection is gone (the req is
 * freed all the same), -CLINK_EFRAMETOOBIG (the caller gets an error frame).
 * On any other thread (e.g. in the callback of a call this handler made to
 * another node) the answer is copied and handed to that worker, which sends
 * it; returns 0 then, or without having taken the req: -CLINK_EAGAIN (that
 * worker's inbox is full: try again), -CLINK_ENOMEM; or -CLINK_ESHUTDOWN (the
 * node is stopping; the req goes with it).
 */
CLINK_API CLINK_MUST_USE int clink_req_respond(struct clink_req *req, const struct iovec *iov, unsigned iovcnt);

/* Answer with an error; the caller sees -CLINK_EREMOTE and msg. Same contract. */
CLINK_API CLINK_MUST_USE int clink_req_fail(struct clink_req *req, const char *msg);

#ifdef __cplusplus
}
#endif
#endif
