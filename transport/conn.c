/*
 * One connection's life on its worker: dial or adopt, the opening step,
 * the TLS handshake, the HELLO exchange, framed calls and requests, drain
 * and close. Everything here runs on the owning worker's thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(CLINK_HAVE_VALGRIND)
#include <valgrind/memcheck.h>
#define MARK_DEFINED(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define MARK_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#include "clink/accounts.h"
#include "transport/frame.h"
#include "transport/http.h"
#include "transport/ktls.h"
#include "transport/node_int.h"
#include "transport/opening.h"

#define STREAM_READ     65536                   /* recv size once the handshake is done */
#define KEEP_IDLE       65536                   /* buffers above this are released when empty */
#define IDLE_READ       512                     /* recv size of a connection whose recent reads were all small */
#define SMALL_READ      4096                    /* a read below this counts toward idle */
#define IDLE_AFTER      4                       /* small reads in a row before a connection counts as idle */
#define TLS_CHUNK       16384                   /* plaintext per SSL_write: one full record */
#define CLINK_LINGER_NS (2000ull * 1000000ull)  /* longest a closing connection may take to send its last bytes */
#define HTTPS_ANSWER_NS (60000ull * 1000000ull) /* longest an HTTPS answer may take to leave, however it trickles */

enum call_state { CALL_PENDING = 1, CALL_SENT };

static void *tag(void *p, enum clink__op op)
{
    return (void *)((uintptr_t)p | (uintptr_t)op);
}

static void arm_recv(struct clink_conn *c);
static void budget_relief(struct clink_worker *w, int deep);
static void fail_conn(struct clink_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void maybe_finish_drain(struct clink_conn *c);
static void finish_close(struct clink_conn *c);

/* ---- lifetime ---- */

static struct clink_conn *conn_new(struct clink_worker *w, int fd, int is_server)
{
    struct clink_conn *c = aligned_alloc(64, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->node = w->node;
    c->id = atomic_fetch_add(&w->node->next_conn_id, 1);
    c->fd = fd;
    c->is_server = is_server;
    c->mode = CLINK_MODE_TLS;
    atomic_init(&c->refs, 1);
    atomic_init(&c->open, 0);
    atomic_init(&c->app_ref, 0);
    atomic_init(&c->goaway, 0);
    atomic_init(&c->next_call_id, 1);
    clink__idmap_init(&c->calls);
    clink__timer_init(&c->hs_timer, TIMER_HANDSHAKE);
    c->peer_max_frame = CLINK_MAX_FRAME_FLOOR;
    c->close_msg.hdr.kind = MSG_CLOSE;
    c->close_msg.conn = c;
    /* The node's memory budget counts what waits to be sent: the buffers a peer that stops reading fills. */
    c->ptx.acct = c->tx.acct = c->txf.acct = &w->buffered;
    c->next = w->conns;
    if (w->conns) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->nconns++;
    uint32_t ms = w->node->opts.handshake_timeout_ms;
    CLINK_IGNORE(clink__timers_add(&w->timers, &c->hs_timer, clink__now_ns() + (uint64_t)ms * 1000000ull));
    return c;
}

static void conn_free(struct clink_conn *c)
{
    clink__mysql_free(c);
    if (c->http != NULL) {
        OPENSSL_cleanse(c->http, sizeof(*c->http)); /* its Authorization header */
        free(c->http);
    }
    clink__bytes_free(&c->rx);
    clink__bytes_free(&c->prx);
    clink__bytes_free(&c->ptx);
    clink__bytes_free(&c->tx);
    clink__bytes_free(&c->txf);
    clink__idmap_free(&c->calls);
    OPENSSL_cleanse(c->password, sizeof(c->password));
    free(c);
}

void clink__conn_put(struct clink_conn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        conn_free(c);
    }
}

static void set_peer_str(struct clink_conn *c)
{
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (c->peer.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&c->peer;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(c->peer_str, sizeof(c->peer_str), "%s:%u", host, port);
    } else if (c->peer.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&c->peer;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(c->peer_str, sizeof(c->peer_str), "[%s]:%u", host, port);
    }
}

/* ---- output ---- */

/* Where frames go: staged for encryption (TLS) or straight to the socket buffer. */
static struct clink__bytes *frame_out(struct clink_conn *c)
{
    return c->has_tls && !c->ktls_tx ? &c->ptx : &c->tx; /* with kTLS TX the kernel encrypts what we send */
}

static int emit(struct clink_conn *c, uint8_t type, uint16_t method, uint64_t id, const struct iovec *iov,
                unsigned iovcnt, const void *extra, size_t extra_len)
{
    size_t len = extra_len;
    for (unsigned i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    if (len > c->peer_max_frame) {
        return -CLINK_EFRAMETOOBIG;
    }
    struct clink__bytes *out = frame_out(c);
    if (clink__bytes_reserve(out, CLINK_FRAME_HDR + len) < 0) {
        return -CLINK_ENOMEM;
    }
    struct clink_frame_hdr h = {.type = type, .method = method, .length = (uint32_t)len, .id = id};
    clink__frame_encode(out->base + out->tail, &h);
    out->tail += CLINK_FRAME_HDR;
    if (extra_len) {
        memcpy(out->base + out->tail, extra, extra_len);
        out->tail += extra_len;
    }
    for (unsigned i = 0; i < iovcnt; i++) {
        memcpy(out->base + out->tail, iov[i].iov_base, iov[i].iov_len);
        out->tail += iov[i].iov_len;
    }
    /* The payload copy into the staging buffer is the one copy userspace framing costs. */
    STAT_ADD(c->w, bytes_copied, len);
    c->frames_out++;
    clink__mark_dirty(c);
    return 0;
}

static void emit_error(struct clink_conn *c, uint64_t id, int code, const char *msg)
{
    uint8_t b[4];
    clink__put_u32(b, (uint32_t)(code < 0 ? -code : code));
    size_t ml = strlen(msg);
    if (ml > 1024) {
        ml = 1024;
    }
    struct iovec iov = {.iov_base = (void *)(uintptr_t)msg, .iov_len = ml};
    CLINK_IGNORE(emit(c, CLINK_FRAME_ERROR, 0, id, &iov, 1, b, sizeof(b)) < 0);
}

static size_t queued_bytes(const struct clink_conn *c)
{
    return clink__bytes_len(&c->ptx) + clink__bytes_len(&c->tx) + clink__bytes_len(&c->txf);
}

/*
 * The budget counts send buffers' capacity (cheap: it changes only when a
 * buffer grows or is freed). Empty ones cost nothing to give back, so they
 * are, before the budget is called full and while it is: what stays counted
 * is what waits to be sent.
 */
static void trim_idle_send_buffers(struct clink_worker *w)
{
    for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
        if (c->state < CS_CLOSED && !c->wipe_ptx) { /* a password still in ptx is wiped before it is freed */
            clink__bytes_trim(&c->ptx, 0);
            clink__bytes_trim(&c->tx, 0);
            clink__bytes_trim(&c->txf, 0);
        }
    }
}

#define BUDGET_CHECK_NS (10 * 1000000ull)

/*
 * The worker's send buffers (all its connections') are at its share of
 * max_buffered: hold back what would add to them until they are below 7/8
 * of it (budget_relief, at each send and close and every 10 ms meanwhile).
 */
static int worker_full(struct clink_worker *w)
{
    if (w->budget_hit) {
        return 1;
    }
    if (__atomic_load_n(&w->buffered, __ATOMIC_RELAXED) < w->budget) {
        return 0;
    }
    trim_idle_send_buffers(w);
    if (__atomic_load_n(&w->buffered, __ATOMIC_RELAXED) < w->budget) {
        return 0;
    }
    w->budget_hit = 1;
    STAT_ADD(w, buffer_full, 1);
    CLINK_LOG(&w->node->log, CLINK_LOG_WARN, "transport", 0,
              "worker %u: send buffers hold %zu bytes, its share of max_buffered: reads of requests pause and "
              "new calls wait until they drain",
              w->idx, __atomic_load_n(&w->buffered, __ATOMIC_RELAXED));
    CLINK_IGNORE(clink__timers_add(&w->timers, &w->budget_timer, clink__now_ns() + BUDGET_CHECK_NS));
    return 1;
}

static void submit_send(struct clink_conn *c)
{
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    io_uring_prep_send(sqe, c->fd, clink__bytes_data(&c->txf), clink__bytes_len(&c->txf), MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, tag(c, OP_SEND));
    c->send_armed = 1;
    c->ops++;
}

static int serialize_call(struct clink_conn *c, struct clink_call *call)
{
    if (call->priv.ping) {
        uint8_t payload[CLINK_PING_LEN] = {0};
        clink__put_u64(payload, call->priv.id);
        return emit(c, CLINK_FRAME_PING, 0, call->priv.id, NULL, 0, payload, sizeof(payload));
    }
    return emit(c, CLINK_FRAME_REQUEST, call->method, call->priv.id, call->iov, call->iovcnt, NULL, 0);
}

/* Move calls that waited for write-buffer room into the output. */
static void release_pending(struct clink_conn *c)
{
    uint32_t limit = c->node->opts.max_write_buffer;
    while (c->pend_head != NULL && queued_bytes(c) < limit && !worker_full(c->w)) {
        struct clink_call *call = c->pend_head;
        c->pend_head = call->priv.next;
        if (c->pend_head == NULL) {
            c->pend_tail = NULL;
        }
        call->priv.next = NULL;
        call->priv.state = CALL_SENT;
        int ret = serialize_call(c, call);
        if (ret < 0) {
            clink__idmap_del(&c->calls, call->priv.id);
            clink__timers_del(&c->w->timers, &call->priv.timer);
            clink__call_finish(c->w, call, ret, NULL, 0);
        }
    }
}

/* Encrypt staged frames into tx. Returns 0, or -1 after failing the connection. */
static int encrypt_pending(struct clink_conn *c)
{
    /* Waiting for kTLS TX: the staged frames go to the kernel as plaintext once OpenSSL's records have left. */
    while (c->has_tls && !c->ktls_tx && !c->ktls_tx_pending && clink__bytes_len(&c->ptx) > 0) {
        size_t n = clink__bytes_len(&c->ptx);
        if (n > TLS_CHUNK * 4) {
            n = TLS_CHUNK * 4;
        }
        int ret = clink__tls_write(&c->tls, clink__bytes_data(&c->ptx), n);
        if (ret < 0) {
            fail_conn(c, ret, "%s", c->tls.err);
            return -1;
        }
        clink__bytes_consume(&c->ptx, n);
    }
    if (c->wipe_ptx && c->ptx.base != NULL) {
        /* A HELLO with a password went through this buffer: leave no copy behind. */
        OPENSSL_cleanse(c->ptx.base, c->ptx.cap);
        c->wipe_ptx = 0;
    }
    return 0;
}

static void ktls_try_tx(struct clink_conn *c);

void clink__conn_flush(struct clink_conn *c)
{
    if (c->state == CS_CLOSED || c->fd < 0) {
        return;
    }
    release_pending(c);
    if (c->ktls_tx_pending) {
        ktls_try_tx(c);
    }
    if (encrypt_pending(c) < 0) {
        return;
    }
    if (!c->send_armed && clink__bytes_len(&c->tx) > 0) {
        struct clink__bytes tmp = c->txf;
        c->txf = c->tx;
        c->tx = tmp;
        submit_send(c);
    }
    if (c->state == CS_CLOSING && !c->send_armed) {
        finish_close(c);
    }
}

/* ---- calls ---- */

void clink__call_finish(struct clink_worker *w, struct clink_call *call, int status, const uint8_t *p, size_t n)
{
    call->priv.state = 0;
    if (status == 0) {
        STAT_ADD(w, calls_ok, 1);
    } else {
        STAT_ADD(w, calls_failed, 1);
        /* By reason, for operators (clink_calls_total{result=...}): each failure counted once, here. */
        switch (status) {
        case -CLINK_ETIMEDOUT:
            STAT_ADD(w, calls_failed_timeout, 1);
            break;
        case -CLINK_EREMOTE:
            STAT_ADD(w, calls_failed_remote, 1);
            break;
        case -CLINK_ECANCELED:
            STAT_ADD(w, calls_failed_canceled, 1);
            break;
        case -CLINK_ECLOSED:
        case -CLINK_EGOAWAY:
        case -CLINK_ESHUTDOWN:
            STAT_ADD(w, calls_failed_closed, 1);
            break;
        default:
            STAT_ADD(w, calls_failed_other, 1);
        }
    }
    call->cb(call, status, p, n);
}

int clink__conn_check_call(struct clink_conn *c, struct clink_call *call)
{
    if (c->state != CS_OPEN) {
        /* Draining, by either side's GOAWAY: the call was never sent, and says so (safe to send elsewhere). */
        return c->w->stopping ? -CLINK_ESHUTDOWN : c->state == CS_DRAINING ? -CLINK_EGOAWAY : -CLINK_ECLOSED;
    }
    if (!call->priv.ping) {
        size_t len = 0;
        for (unsigned i = 0; i < call->iovcnt; i++) {
            len += call->iov[i].iov_len;
        }
        if (len > c->peer_max_frame) {
            return -CLINK_EFRAMETOOBIG;
        }
    }
    return 0;
}

int clink__conn_start_call(struct clink_conn *c, struct clink_call *call, int inline_caller)
{
    int ret = clink__conn_check_call(c, call);
    call->priv.next = NULL;
    if (ret == 0 && (c->pend_head != NULL || queued_bytes(c) >= c->node->opts.max_write_buffer || worker_full(c->w))) {
        /* Bounded memory: the call's own struct waits in line, nothing is copied yet. */
        call->priv.state = CALL_PENDING;
    } else if (ret == 0) {
        call->priv.state = CALL_SENT;
        ret = serialize_call(c, call);
    }
    if (ret == 0 && clink__idmap_put(&c->calls, call->priv.id, call) < 0) {
        /* A frame already staged for a call we cannot track is harmless: its answer is dropped as unknown. */
        ret = -CLINK_ENOMEM;
    }
    if (ret < 0) {
        /* Started from the owner's own code: the error is returned, no callback runs inside the start. */
        if (!inline_caller) {
            /*
             * Posted from another thread, it found the connection closed
             * since: it never left, which EGOAWAY says (a pool sends it
             * again on another connection; ECLOSED would mean "lost").
             */
            clink__call_finish(c->w, call, ret == -CLINK_ECLOSED ? -CLINK_EGOAWAY : ret, NULL, 0);
        }
        return ret;
    }
    if (call->priv.state == CALL_PENDING) {
        if (c->pend_tail) {
            c->pend_tail->priv.next = call;
        } else {
            c->pend_head = call;
        }
        c->pend_tail = call;
    }
    STAT_ADD(c->w, calls_started, 1);
    clink__timer_init(&call->priv.timer, TIMER_CALL);
    if (call->timeout_ms > 0) {
        uint64_t dl = clink__now_ns() + (uint64_t)call->timeout_ms * 1000000ull;
        CLINK_IGNORE(clink__timers_add(&c->w->timers, &call->priv.timer, dl));
    }
    return 0;
}

static void unlink_pending(struct clink_conn *c, struct clink_call *call)
{
    struct clink_call **pp = &c->pend_head;
    struct clink_call *prev = NULL;
    while (*pp != NULL && *pp != call) {
        prev = *pp;
        pp = &(*pp)->priv.next;
    }
    if (*pp == call) {
        *pp = call->priv.next;
        if (c->pend_tail == call) {
            c->pend_tail = prev;
        }
    }
    call->priv.next = NULL;
}

/* Take a call out of the connection's books (it is about to complete). */
static void detach_call(struct clink_conn *c, struct clink_call *call)
{
    clink__idmap_del(&c->calls, call->priv.id);
    clink__timers_del(&c->w->timers, &call->priv.timer);
    if (call->priv.state == CALL_PENDING) {
        unlink_pending(c, call);
    }
}

void clink__conn_cancel_call(struct clink_conn *c, uint64_t id)
{
    struct clink_call *call = clink__idmap_get(&c->calls, id);
    if (call == NULL) {
        return; /* already completed */
    }
    int sent = call->priv.state == CALL_SENT;
    detach_call(c, call);
    if (sent && c->state <= CS_DRAINING) {
        /* Advisory: the peer may skip the work; its answer, if any, is dropped here. */
        CLINK_IGNORE(emit(c, CLINK_FRAME_CANCEL, 0, id, NULL, 0, NULL, 0) < 0);
    }
    clink__call_finish(c->w, call, -CLINK_ECANCELED, NULL, 0);
    maybe_finish_drain(c);
}

/* Fail every call we own on this connection. */
static void fail_calls(struct clink_conn *c, int err)
{
    if (c->calls.count == 0) {
        return;
    }
    /*
     * Take the whole table out of the books first (callbacks may start calls,
     * which the closing connection refuses), then walk the detached slots:
     * no allocation, so no call can be lost to an out-of-memory.
     */
    struct clink__idmap old = c->calls;
    clink__idmap_init(&c->calls);
    c->pend_head = c->pend_tail = NULL;
    for (size_t i = 0; i <= old.mask; i++) {
        if (old.slots[i].key != 0) {
            struct clink_call *call = old.slots[i].val;
            clink__timers_del(&c->w->timers, &call->priv.timer);
            call->priv.next = NULL;
            /*
             * After the peer's GOAWAY, a request above the last id it had
             * seen was on the wire when it closed: it never ran there, so
             * it fails as safe to retry (pools send it again), not as lost.
             */
            int e = err == -CLINK_ECLOSED && c->goaway_recv && old.slots[i].key > c->goaway_last ? -CLINK_EGOAWAY : err;
            clink__call_finish(c->w, call, e, NULL, 0);
        }
    }
    clink__idmap_free(&old);
}

/* ---- requests (the peer's calls) ---- */

static struct clink_req *req_new(struct clink_conn *c)
{
    struct clink_worker *w = c->w;
    struct clink_req *r = w->free_reqs;
    if (r != NULL) {
        w->free_reqs = r->next;
    } else if ((r = malloc(sizeof(*r))) == NULL) {
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    r->w = w;
    r->conn = c;
    r->next = c->reqs;
    if (c->reqs) {
        c->reqs->prev = r;
    }
    c->reqs = r;
    c->nreqs++;
    return r;
}

static void req_free(struct clink_req *r)
{
    struct clink_conn *c = r->conn;
    /* A live request is on its connection's list; an orphan on its worker's. */
    struct clink_req **head = c != NULL ? &c->reqs : &r->w->orphans;
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        *head = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    if (c != NULL) {
        c->nreqs--;
    }
    r->next = r->w->free_reqs;
    r->w->free_reqs = r;
}

/*
 * The connection is gone but its handlers still hold requests: they become
 * the worker's orphans, answered into the void (-CLINK_ECLOSED) or freed
 * with the node.
 */
static void orphan_reqs(struct clink_conn *c)
{
    struct clink_req *last = NULL;
    for (struct clink_req *r = c->reqs; r != NULL; r = r->next) {
        r->conn = NULL;
        last = r;
    }
    if (last != NULL) {
        last->next = c->w->orphans;
        if (c->w->orphans) {
            c->w->orphans->prev = last;
        }
        c->w->orphans = c->reqs;
    }
    c->reqs = NULL;
    c->nreqs = 0;
}

const uint8_t *clink_req_data(const struct clink_req *req, size_t *len)
{
    *len = req->len;
    return req->data;
}

uint16_t clink_req_method(const struct clink_req *req)
{
    return req->method;
}

struct clink_conn *clink_req_conn(const struct clink_req *req)
{
    return req->conn;
}

static int http_answer(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt);

static int answer(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt, const void *extra,
                  size_t extra_len)
{
    struct clink_conn *c = req->conn;
    int ret = -CLINK_ECLOSED;
    if (c != NULL && c->https) {
        return http_answer(req, type, iov, iovcnt);
    }
    if (c != NULL && c->state <= CS_DRAINING) {
        ret = emit(c, type, 0, req->id, iov, iovcnt, extra, extra_len);
        if (ret == -CLINK_EFRAMETOOBIG) {
            emit_error(c, req->id, CLINK_EFRAMETOOBIG, "response larger than the caller accepts");
        }
    }
    req_free(req);
    if (c != NULL) {
        STAT_ADD(c->w, requests_handled, 1);
        if (c->recv_paused) {
            arm_recv(c);
        }
        maybe_finish_drain(c);
    }
    return ret;
}

/*
 * Answered on another thread (an aggregator's handler that waits for its
 * leaves' answers, which arrive on other workers): copy the answer and let
 * the request's worker send it. The req stays untouched here: only its
 * worker reads or frees it. On an error the req was not handed over.
 */
static int answer_elsewhere(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt,
                            const void *extra, size_t extra_len)
{
    size_t len = 0;
    for (unsigned i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    struct clink__msg_respond *m = malloc(sizeof(*m) + len);
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    *m = (struct clink__msg_respond){.hdr = {.kind = MSG_RESPOND}, .req = req, .type = type, .len = len};
    if (extra_len > 0) {
        memcpy(m->extra, extra, extra_len);
    }
    m->extra_len = extra_len;
    len = 0;
    for (unsigned i = 0; i < iovcnt; i++) {
        memcpy(m->data + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    int ret = clink__worker_post(req->w, m);
    if (ret < 0) {
        free(m);
    }
    return ret;
}

void clink__conn_respond_msg(struct clink__msg_respond *m, int live)
{
    if (live) {
        struct iovec iov = {.iov_base = m->data, .iov_len = m->len};
        CLINK_IGNORE(answer(m->req, m->type, &iov, 1, m->extra_len ? m->extra : NULL, m->extra_len) < 0);
    }
    free(m); /* not live: the worker is gone, and its requests go with the node */
}

static int answer_any(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt, const void *extra,
                      size_t extra_len)
{
    if (clink__current_worker == req->w) {
        return answer(req, type, iov, iovcnt, extra, extra_len);
    }
    return answer_elsewhere(req, type, iov, iovcnt, extra, extra_len);
}

int clink_req_respond(struct clink_req *req, const struct iovec *iov, unsigned iovcnt)
{
    if (req == NULL || (iovcnt > 0 && iov == NULL)) {
        return -CLINK_EINVAL;
    }
    return answer_any(req, CLINK_FRAME_RESPONSE, iov, iovcnt, NULL, 0);
}

int clink_req_fail(struct clink_req *req, const char *msg)
{
    if (req == NULL) {
        return -CLINK_EINVAL;
    }
    uint8_t b[4];
    clink__put_u32(b, CLINK_EREMOTE);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)(msg ? msg : ""), .iov_len = msg ? strlen(msg) : 0};
    if (iov.iov_len > 1024) {
        iov.iov_len = 1024;
    }
    return answer_any(req, CLINK_FRAME_ERROR, &iov, 1, b, sizeof(b));
}

/* ---- opening, hello, close ---- */

/*
 * The client's HELLO carries its login: the password as is inside TLS, or in
 * plaintext only its answer to the server's scramble. The password is wiped
 * as soon as it is encoded (and the staging buffer once it is encrypted).
 */
static void send_hello(struct clink_conn *c, uint16_t minv, uint16_t maxv)
{
    struct clink_hello h = {.min_version = minv, .max_version = maxv, .max_frame = c->node->opts.max_frame};
    uint8_t b[CLINK_HELLO_MAX];
    if (!c->is_server && c->login) {
        h.flags = CLINK_HELLO_LOGIN;
        snprintf(h.user, sizeof(h.user), "%s", c->login_user);
        if (c->has_password && c->has_tls && c->verify == 2) {
            h.method = CLINK_LOGIN_CLEARTEXT;
            h.auth_len = (uint8_t)strlen(c->password);
            memcpy(h.auth, c->password, h.auth_len);
            c->wipe_ptx = 1;
        } else if (c->has_password) {
            /* Plaintext, or a server we did not verify (ssl_mode REQUIRED/PREFERRED): never the password itself. */
            h.method = CLINK_LOGIN_SCRAMBLE;
            h.auth_len = 20;
            CLINK_IGNORE(clink_login_scramble(c->password, c->scramble, h.auth) < 0);
        }
        OPENSSL_cleanse(c->password, sizeof(c->password));
    }
    size_t n = clink__hello_encode(b, &h);
    CLINK_IGNORE(emit(c, CLINK_FRAME_HELLO, 0, 0, NULL, 0, b, n) < 0);
    OPENSSL_cleanse(&h, sizeof(h));
    OPENSSL_cleanse(b, sizeof(b));
}

static void hs_release(struct clink_conn *c);
static void announce_open(struct clink_conn *c);

static void became_open(struct clink_conn *c)
{
    if (c->mode == CLINK_MODE_PLAIN && atomic_load(&c->node->secure) == CLINK_SECURE_REQUIRE_TLS) {
        /* Opening while the node moved to REQUIRE_TLS (clink__conn_apply_secure skips what is still opening). */
        fail_conn(c, -CLINK_EPLAINTEXT, "plaintext link refused: transport security is now REQUIRE_TLS");
        return;
    }
    hs_release(c);
    CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "open: %s, protocol %u", c->peer_str, c->version);
    c->state = CS_OPEN;
    c->exact = 0;
    clink__timers_del(&c->w->timers, &c->hs_timer);
    /* Keep what does not change for status after close. */
    struct clink_conn_status *st = &c->cache;
    st->is_server = c->is_server;
    st->mode = c->mode;
    snprintf(st->peer_addr, sizeof(st->peer_addr), "%s", c->peer_str);
    st->proto_version = c->version;
    snprintf(st->account, sizeof(st->account), "%s", c->account);
    if (c->has_tls) {
        clink__tls_status(&c->tls, st);
        const char *v = c->verify == 2 ? "identity" : c->verify == 1 ? "ca" : "none";
        if (c->is_server) {
            v = st->peer_subject[0] ? "client-cert" : "none";
        }
        snprintf(st->verified, sizeof(st->verified), "%s", v);
    } else {
        snprintf(st->verified, sizeof(st->verified), "none");
    }
    if (c->mode == CLINK_MODE_PLAIN) {
        snprintf(st->ktls_reason, sizeof(st->ktls_reason), "plaintext connection");
    } else if (c->ktls_mode == CLINK_KTLS_DISABLED) {
        snprintf(st->ktls_reason, sizeof(st->ktls_reason), "kTLS disabled by configuration");
        clink__tls_wipe_secrets(&c->tls);
    } else {
        /*
         * At this record boundary, once the input that opened us is
         * processed (on_recv): the application hears of the connection
         * after that, so that REQUIRED can still refuse it.
         */
        c->ktls_try = 1;
        snprintf(st->ktls_reason, sizeof(st->ktls_reason), "hand-over pending");
        return;
    }
    announce_open(c);
}

/* Tell the application: calls may start (client: connect callback; server: CLINK_CONN_OPENED). */
static void announce_open(struct clink_conn *c)
{
    STAT_ADD(c->w, conns_open, 1);
    c->was_open = 1;
    if (c->my != NULL) {
        return; /* a MySQL client: it carries statements, not calls, and is not on_conn's */
    }
    atomic_store(&c->open, 1);
    if (c->is_server) {
        if (c->node->opts.on_conn) {
            c->node->opts.on_conn(c, CLINK_CONN_OPENED, 0, c->node->opts.on_conn_user);
        }
    } else {
        clink_connect_cb cb = c->connect_cb;
        c->connect_cb = NULL;
        atomic_fetch_add(&c->refs, 1); /* the application's reference */
        atomic_store(&c->app_ref, 1);
        cb(c, 0, "", c->connect_user);
    }
}

static void set_error(struct clink_conn *c, int err, const char *fmt, va_list ap)
{
    if (c->err != 0) {
        return;
    }
    c->err = err;
    vsnprintf(c->errtext, sizeof(c->errtext), fmt, ap);
}

/*
 * Refusals (failed handshakes, denied logins) are logged at WARN, but an
 * unauthenticated peer must not be able to flood the log: at most
 * REFUSAL_LOG_PER_S lines per worker per second, and how many were left out
 * is said with the next one logged. The counters (conns_refused,
 * handshakes_failed, logins_denied) count them all.
 */
#define REFUSAL_LOG_PER_S 10
/* Say how many refusals were left out, once their second is over. */
static void refusal_log_flush(struct clink_worker *w, uint64_t sec)
{
    if (w->refusal_dropped > 0 && sec != w->refusal_sec) {
        CLINK_LOG(&w->node->log, CLINK_LOG_WARN, "transport", 0,
                  "worker %u: %u more refused connections were not logged (at most %d a second)", w->idx,
                  w->refusal_dropped, REFUSAL_LOG_PER_S);
        w->refusal_dropped = 0;
    }
}

static int refusal_log_ok(struct clink_worker *w)
{
    uint64_t sec = clink__now_ns() / 1000000000ull;
    if (sec != w->refusal_sec) {
        refusal_log_flush(w, sec);
        w->refusal_sec = sec;
        w->refusal_logged = 0;
    }
    if (w->refusal_logged < REFUSAL_LOG_PER_S) {
        w->refusal_logged++;
        return 1;
    }
    if (w->refusal_dropped++ == 0 && w->budget_timer.idx == CLINK_TIMER_NONE) {
        /* The count goes out when this second is over even if no refusal follows (clink__conn_budget_tick). */
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->budget_timer, (sec + 1) * 1000000000ull + 1000000ull));
    }
    return 0;
}

/*
 * Enter CLOSING. err 0: orderly (close_notify follows). keep_output: what is
 * already queued (a refusal the peer should read) still goes out; otherwise
 * a failed connection owes the peer nothing and its output is dropped.
 */
static void close_now(struct clink_conn *c, int err, int keep_output)
{
    int old = c->state;
    int was_open = c->was_open; /* announced to the application (a kTLS hand-over may still refuse it) */
    c->state = CS_CLOSING;
    hs_release(c);
    atomic_store(&c->open, 0);
    if (err != 0 && err != -CLINK_ESHUTDOWN && c->errtext[0]) {
        /* A refused handshake is a security event: the operator sees why without -v. Logins log their own. */
        int refused = !was_open && c->is_server && err != -CLINK_EACCESS && clink_err_kind(err) == CLINK_KIND_TLS;
        if (!refused) {
            CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: %s", c->peer_str, c->errtext);
        } else if (refusal_log_ok(c->w)) {
            CLINK_CONN_LOG(c, CLINK_LOG_WARN, "%s: %s", c->peer_str, c->errtext);
        }
    }
    fail_calls(c, err ? (c->err ? c->err : err) : -CLINK_ECLOSED);
    orphan_reqs(c);
    if (c->https) {
        /* An HTTPS exchange is not a link: neither opened nor refused as one (https_refused counts failures). */
        if (err != 0) {
            STAT_ADD(c->w, https_refused, 1);
        }
    } else if (!was_open) {
        /* An orderly close (a GOAWAY) before the application heard of the connection is still a refusal. */
        int status = err ? err : -CLINK_ECLOSED;
        if (old >= CS_HANDSHAKE) {
            STAT_ADD(c->w, handshakes_failed, 1);
        }
        STAT_ADD(c->w, conns_refused, 1);
        if (c->is_server) {
            if (c->node->opts.on_conn && c->my == NULL) { /* MySQL clients are not on_conn's (mysql.c) */
                c->node->opts.on_conn(c, CLINK_CONN_REFUSED, status, c->node->opts.on_conn_user);
            }
        } else if (c->connect_cb) {
            clink_connect_cb cb = c->connect_cb;
            c->connect_cb = NULL;
            cb(NULL, status, c->errtext[0] ? c->errtext : clink_strerror(status), c->connect_user);
        }
    } else if (c->is_server && c->node->opts.on_conn && c->my == NULL) {
        c->node->opts.on_conn(c, CLINK_CONN_CLOSED, err, c->node->opts.on_conn_user);
    }
    if (c->ktls_tx_pending) {
        /* Closing before the send side was handed over: OpenSSL keeps it, and says close_notify. */
        c->ktls_tx_pending = 0;
        clink__tls_wipe_secrets(&c->tls);
    }
    if (err == 0 && c->has_tls && c->ktls_tx) {
        c->ktls_cn_pending = 1; /* sent as an alert record once the queued frames are out (finish_close) */
    } else if (err == 0 && c->has_tls) {
        /* close_notify must follow the frames still staged (GOAWAY, last answers), not overtake them. */
        if (encrypt_pending(c) == 0) {
            clink__tls_close_notify(&c->tls);
        }
    }
    if (err != 0 && !keep_output) {
        /*
         * Frames not yet encrypted are dropped; what is already in tx still
         * goes: above all the TLS alert OpenSSL just wrote, which tells the
         * peer why (bad certificate, no ALPN). The linger timer bounds it.
         */
        clink__bytes_consume(&c->ptx, clink__bytes_len(&c->ptx));
    }
    /* However it ends, CLOSING is bounded: a peer that stops reading cannot hold the socket. */
    CLINK_IGNORE(clink__timers_add(&c->w->timers, &c->hs_timer, clink__now_ns() + CLINK_LINGER_NS));
    clink__mark_dirty(c);
}

static void vfail(struct clink_conn *c, int err, int keep_output, const char *fmt, va_list ap)
{
    if (c->state >= CS_CLOSING) {
        return;
    }
    set_error(c, err, fmt, ap);
    if (clink_err_kind(err) == CLINK_KIND_PROTO) {
        STAT_ADD(c->w, protocol_errors, 1);
    }
    close_now(c, err, keep_output);
}

static void fail_conn(struct clink_conn *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, err, 0, fmt, ap);
    va_end(ap);
}

/* Like fail_conn, but the refusal frame staged for the peer is still sent. */
static void refuse(struct clink_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(struct clink_conn *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, err, 1, fmt, ap);
    va_end(ap);
}

/* A connection stuck in CLOSING (a peer that stopped reading) is cut off. */
static void force_close(struct clink_conn *c)
{
    clink__bytes_consume(&c->tx, clink__bytes_len(&c->tx));
    clink__bytes_consume(&c->ptx, clink__bytes_len(&c->ptx));
    if (!c->shutdown_done && c->fd >= 0) {
        c->shutdown_done = 1;
        struct io_uring_sqe *sqe = clink__sqe(c->w);
        io_uring_prep_shutdown(sqe, c->fd, SHUT_RDWR);
        io_uring_sqe_set_data(sqe, tag(c, OP_SHUTDOWN));
        c->ops++;
    }
}

void clink__conn_begin_close(struct clink_conn *c, int err)
{
    if (c->state >= CS_CLOSING) {
        if (err == -CLINK_ECLOSED && c->state == CS_CLOSING) {
            force_close(c); /* the linger after a drain deadline is over */
        }
        return;
    }
    if (err != 0) {
        fail_conn(c, err, "%s", clink_strerror(err));
        return;
    }
    if (c->state < CS_OPEN) {
        fail_conn(c, c->w->stopping ? -CLINK_ESHUTDOWN : -CLINK_ECLOSED, "closed before the connection opened");
        return;
    }
    if (c->my != NULL) {
        clink__mysql_shutdown(c);
        close_now(c, 0, 1);
        return;
    }
    if (!c->goaway_sent) {
        uint8_t b[CLINK_GOAWAY_LEN];
        clink__put_u64(b, c->last_peer_id);
        CLINK_IGNORE(emit(c, CLINK_FRAME_GOAWAY, 0, 0, NULL, 0, b, sizeof(b)) < 0);
        c->goaway_sent = 1;
    }
    c->state = CS_DRAINING;
    atomic_store(&c->open, 0);
    maybe_finish_drain(c);
}

static void maybe_finish_drain(struct clink_conn *c)
{
    if (c->state == CS_DRAINING && c->calls.count == 0 && c->nreqs == 0) {
        close_now(c, 0, 1);
    }
}

static void ktls_send_close_notify(struct clink_conn *c);
static void on_control_record(struct clink_conn *c, int res);

static void finish_close(struct clink_conn *c)
{
    if (c->send_armed || clink__bytes_len(&c->tx) > 0 || clink__bytes_len(&c->ptx) > 0) {
        return; /* the last bytes (close_notify, a refusal) go out first; on_send brings us back */
    }
    if (c->ktls_cn_pending && c->fd >= 0 && !c->shutdown_done) {
        ktls_send_close_notify(c);
        return;
    }
    if (!c->shutdown_done) {
        /* Shut the socket down through the ring: a pending recv then completes and we can close. */
        c->shutdown_done = 1;
        struct io_uring_sqe *sqe = clink__sqe(c->w);
        io_uring_prep_shutdown(sqe, c->fd, SHUT_RDWR);
        io_uring_sqe_set_data(sqe, tag(c, OP_SHUTDOWN));
        c->ops++;
        return;
    }
    if (c->ops == 0 && c->fd >= 0) {
        uint64_t seq; /* the kernel's record counts, while its socket still answers */
        if (c->ktls_rx && clink__ktls_rec_seq(c->fd, 0, &seq) == 0) {
            c->tls.rec_in = seq;
        }
        if (c->ktls_tx && clink__ktls_rec_seq(c->fd, 1, &seq) == 0) {
            c->tls.rec_out = seq;
        }
        struct io_uring_sqe *sqe = clink__sqe(c->w);
        io_uring_prep_close(sqe, c->fd);
        io_uring_sqe_set_data(sqe, tag(c, OP_CLOSE));
        c->fd = -1;
        c->ops++;
    }
}

static void closed(struct clink_conn *c)
{
    struct clink_worker *w = c->w;
    clink__timers_del(&w->timers, &c->hs_timer);
    if (c->was_open) {
        STAT_ADD(w, conns_open, (uint64_t)-1);
    }
    c->state = CS_CLOSED;
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    w->nconns--;
    /* Final counters into the cache for status after close. */
    c->cache.bytes_in = c->bytes_in;
    c->cache.bytes_out = c->bytes_out;
    c->cache.frames_in = c->frames_in;
    c->cache.frames_out = c->frames_out;
    if (c->has_tls) {
        c->cache.records_in = c->tls.rec_in;
        c->cache.records_out = c->tls.rec_out;
        clink__tls_free(&c->tls);
        c->has_tls = 0;
    }
    c->cache.last_error = c->err;
    snprintf(c->cache.last_error_text, sizeof(c->cache.last_error_text), "%s", c->errtext);
    clink__bytes_free(&c->rx);
    clink__bytes_free(&c->prx);
    clink__bytes_free(&c->ptx);
    clink__bytes_free(&c->tx);
    clink__bytes_free(&c->txf);
    clink__conn_put(c);  /* the worker's reference */
    budget_relief(w, 0); /* a peer that stopped reading may have held most of the budget */
}

void clink__conn_timer(struct clink_worker *w, struct clink__timer *t)
{
    (void)w;
    if (t->kind == TIMER_HANDSHAKE) {
        struct clink_conn *c = (struct clink_conn *)((char *)t - offsetof(struct clink_conn, hs_timer));
        if (c->state == CS_CLOSING) {
            CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: peer did not take our last bytes in time: cut off", c->peer_str);
            if (c->https) {
                STAT_ADD(c->w, https_refused, 1); /* an answer cut short */
            }
            force_close(c);
            return;
        }
        fail_conn(c, -CLINK_EHANDSHAKE_TIMEOUT,
                  c->https ? "HTTPS request not read and answered within %u ms"
                           : "no complete opening handshake within %u ms",
                  c->node->opts.handshake_timeout_ms);
        return;
    }
    struct clink_call *call = (struct clink_call *)((char *)t - offsetof(struct clink_call, priv.timer));
    struct clink_conn *c = call->priv.conn;
    detach_call(c, call);
    clink__call_finish(w, call, -CLINK_ETIMEDOUT, NULL, 0);
    maybe_finish_drain(c);
}

/* ---- frames in ---- */

static unsigned peer_port(const struct clink_conn *c)
{
    return ntohs(c->peer.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)&c->peer)->sin6_port
                                               : ((const struct sockaddr_in *)&c->peer)->sin_port);
}

/* The peer's host for account matching and the refusal text: its address without the port. */
static void peer_host(const struct clink_conn *c, char *out, size_t cap)
{
    const void *a = c->peer.ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)&c->peer)->sin6_addr
                                                  : (const void *)&((const struct sockaddr_in *)&c->peer)->sin_addr;
    int family = c->peer.ss_family;
    /* An IPv4 client of a listener on "::" arrives as ::ffff:a.b.c.d; accounts name it a.b.c.d, as MySQL does. */
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
        a = (const uint8_t *)a + 12;
        family = AF_INET;
    }
    if (inet_ntop(family, a, out, (socklen_t)cap) == NULL) {
        snprintf(out, cap, "?");
    }
}

/*
 * Server: the login step. With accounts configured every client logs in (no
 * login part = the anonymous user ''); the client learns only "Access
 * denied", the log says why.
 */
static int check_login(struct clink_conn *c, const struct clink_hello *h)
{
    if (c->node->accounts == NULL) {
        return 0;
    }
    char host[INET6_ADDRSTRLEN];
    peer_host(c, host, sizeof(host));
    const X509 *cert = c->has_tls ? SSL_get0_peer_certificate(c->tls.ssl) : NULL;
    struct clink_login l = {
        .user = h->user,
        .host = host,
        .tls = c->has_tls,
        .cipher = c->has_tls ? SSL_CIPHER_get_name(SSL_get_current_cipher(c->tls.ssl)) : NULL,
        .peer_cert = cert,
        .peer_verified = cert != NULL && SSL_get_verify_result(c->tls.ssl) == X509_V_OK,
        .method = (enum clink_login_method)h->method,
        .auth = h->auth,
        .auth_len = h->auth_len,
        .scramble = c->scramble,
    };
    char why[256] = "";
    int ret = clink_accounts_check(c->node->accounts, &l, c->account, sizeof(c->account), why, sizeof(why));
    if (ret < 0) {
        char shown[sizeof(h->user)], msg[160];
        clink__conn_shown_name(h->user, shown, sizeof(shown));
        clink_access_denied(shown, host, msg, sizeof(msg));
        STAT_ADD(c->w, logins_denied, 1);
        if (refusal_log_ok(c->w)) {
            CLINK_CONN_LOG(c, CLINK_LOG_WARN, "%s: %s (%s)", c->peer_str, msg, why);
        }
        emit_error(c, 0, CLINK_EACCESS, msg);
        refuse(c, -CLINK_EACCESS, "%s: %s", msg, why);
        return ret;
    }
    STAT_ADD(c->w, logins_ok, 1);
    return 0;
}

static int hello_agreed(struct clink_conn *c, const struct clink_hello *theirs)
{
    struct clink_hello ours = {.min_version = CLINK_PROTO_MIN, .max_version = CLINK_PROTO_MAX};
    int v = clink__hello_pick(&ours, theirs);
    if (v < 0) {
        if (c->is_server) {
            char msg[96];
            snprintf(msg, sizeof(msg), "no common protocol version: server speaks %u..%u, client %u..%u",
                     CLINK_PROTO_MIN, CLINK_PROTO_MAX, theirs->min_version, theirs->max_version);
            emit_error(c, 0, CLINK_EVERSION, msg);
            refuse(c, v, "%s", msg);
        } else {
            fail_conn(c, v, "server chose version %u..%u, we speak %u..%u", theirs->min_version, theirs->max_version,
                      CLINK_PROTO_MIN, CLINK_PROTO_MAX);
        }
        return v;
    }
    c->version = (uint16_t)v;
    c->peer_max_frame = theirs->max_frame;
    if (c->is_server) {
        int ret = check_login(c, theirs);
        if (ret < 0) {
            return ret;
        }
        send_hello(c, (uint16_t)v, (uint16_t)v);
    }
    STAT_ADD(c->w, handshakes_ok, 1);
    if (c->has_tls && SSL_session_reused(c->tls.ssl)) {
        STAT_ADD(c->w, handshakes_resumed, 1);
    }
    became_open(c);
    return 0;
}

static int on_hello(struct clink_conn *c, const uint8_t *p, size_t n)
{
    struct clink_hello theirs;
    int ret = clink__hello_decode(p, n, &theirs);
    /* The payload may hold a password: wipe it in our receive buffer now, and the decoded copy after use. */
    OPENSSL_cleanse((void *)(uintptr_t)p, n);
    if (ret < 0) {
        fail_conn(c, ret, "malformed HELLO");
    } else {
        ret = hello_agreed(c, &theirs);
    }
    OPENSSL_cleanse(&theirs, sizeof(theirs));
    return ret;
}

static void on_response(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p)
{
    struct clink_call *call = clink__idmap_get(&c->calls, h->id);
    if (call == NULL || call->priv.state != CALL_SENT) {
        return; /* canceled or timed out: the late answer is dropped */
    }
    int is_pong = h->type == CLINK_FRAME_PONG;
    if (is_pong != call->priv.ping) {
        fail_conn(c, -CLINK_EPROTO, "answer of the wrong kind for call %llu", (unsigned long long)h->id);
        return;
    }
    detach_call(c, call);
    if (h->type == CLINK_FRAME_ERROR) {
        uint32_t code = clink__get_u32(p);
        int status = (code > CLINK_EFIRST_ && code < CLINK_ELAST_) ? -(int)code : -CLINK_EREMOTE;
        clink__call_finish(c->w, call, status, p + 4, h->length - 4);
    } else if (is_pong) {
        clink__call_finish(c->w, call, 0, NULL, 0);
    } else {
        clink__call_finish(c->w, call, 0, p, h->length);
    }
    maybe_finish_drain(c);
}

/* CLINK_METHOD_STATUS: this connection as we see it, then the node's counters. */
static void answer_status(struct clink_conn *c, uint64_t id)
{
    struct clink_conn_status st;
    struct clink_node_stats ns;
    char text[4096];
    clink__conn_fill_status(c, &st);
    clink_node_stats(c->node, &ns);
    size_t n = clink_conn_status_format(&st, text, sizeof(text));
    int m = snprintf(
        text + n, sizeof(text) - n,
        "\nNode workers: %u\nConnections open: %llu\nConnections accepted: %llu\nConnections dialed: %llu\n"
        "Connections refused: %llu\nHandshakes: %llu ok, %llu failed\nLogins: %llu ok, %llu denied\n"
        "Calls: %llu started, %llu ok, %llu failed\nRequests handled: %llu\nTLS reloads: %llu\n"
        "Plaintext fallbacks: %llu\nProtocol errors: %llu\n",
        clink_node_workers(c->node), (unsigned long long)ns.conns_open, (unsigned long long)ns.conns_accepted,
        (unsigned long long)ns.conns_dialed, (unsigned long long)ns.conns_refused, (unsigned long long)ns.handshakes_ok,
        (unsigned long long)ns.handshakes_failed, (unsigned long long)ns.logins_ok,
        (unsigned long long)ns.logins_denied, (unsigned long long)ns.calls_started, (unsigned long long)ns.calls_ok,
        (unsigned long long)ns.calls_failed, (unsigned long long)ns.requests_handled,
        (unsigned long long)ns.tls_reloads, (unsigned long long)ns.plaintext_fallbacks,
        (unsigned long long)ns.protocol_errors);
    if (m > 0) {
        n += (size_t)m < sizeof(text) - n ? (size_t)m : sizeof(text) - n - 1;
    }
    STAT_ADD(c->w, requests_handled, 1);
    CLINK_IGNORE(emit(c, CLINK_FRAME_RESPONSE, 0, id, NULL, 0, text, n) < 0);
}

static void on_request(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p)
{
    /*
     * Ids are unique among a caller's calls in flight but not increasing:
     * several application threads number their calls before the owning
     * worker sends them.
     */
    if (h->id == 0) {
        fail_conn(c, -CLINK_EPROTO, "request id 0");
        return;
    }
    if (h->id > c->last_peer_id) {
        c->last_peer_id = h->id;
    }
    if (c->goaway_sent) {
        /* Not executed, so the caller may safely retry elsewhere. */
        emit_error(c, h->id, CLINK_EGOAWAY, "node is going away");
        return;
    }
    if (h->method == CLINK_METHOD_STATUS) {
        answer_status(c, h->id);
        return;
    }
    struct clink_handler *hd = &c->node->handlers[h->method];
    if (hd->fn == NULL) {
        char msg[64];
        snprintf(msg, sizeof(msg), "no handler for method %u", h->method);
        emit_error(c, h->id, CLINK_ENOMETHOD, msg);
        return;
    }
    struct clink_req *r = req_new(c);
    if (r == NULL) {
        emit_error(c, h->id, CLINK_ENOMEM, "out of memory");
        return;
    }
    r->id = h->id;
    r->method = h->method;
    r->data = p;
    r->len = h->length;
    hd->fn(r, hd->user);
}

static void on_frame(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p)
{
    c->frames_in++;
    if (c->state == CS_HELLO) {
        if (h->type == CLINK_FRAME_HELLO) {
            CLINK_IGNORE(on_hello(c, p, h->length) < 0);
        } else if (h->type == CLINK_FRAME_ERROR && h->id == 0) {
            uint32_t code = clink__get_u32(p);
            int err = (code > CLINK_EFIRST_ && code < CLINK_ELAST_) ? -(int)code : -CLINK_EPROTO;
            if (err == -CLINK_EACCESS) {
                /* Exactly what the server said ("Access denied for user 'x'@'h'"), nothing added. */
                fail_conn(c, err, "%.*s", (int)(h->length - 4), (const char *)p + 4);
            } else {
                fail_conn(c, err, "peer refused: %.*s", (int)(h->length - 4), (const char *)p + 4);
            }
        } else {
            fail_conn(c, -CLINK_EPROTO, "frame type %u before HELLO", h->type);
        }
        return;
    }
    switch (h->type) {
    case CLINK_FRAME_HELLO:
        fail_conn(c, -CLINK_EPROTO, "second HELLO");
        break;
    case CLINK_FRAME_REQUEST:
        on_request(c, h, p);
        break;
    case CLINK_FRAME_RESPONSE:
    case CLINK_FRAME_PONG:
        on_response(c, h, p);
        break;
    case CLINK_FRAME_ERROR:
        if (h->id == 0) {
            fail_conn(c, -CLINK_EPROTO, "peer error: %.*s", (int)(h->length - 4), (const char *)p + 4);
        } else {
            on_response(c, h, p);
        }
        break;
    case CLINK_FRAME_PING:
        CLINK_IGNORE(emit(c, CLINK_FRAME_PONG, 0, h->id, NULL, 0, p, h->length) < 0);
        break;
    case CLINK_FRAME_GOAWAY: {
        c->goaway_recv = 1;
        c->goaway_last = h->length >= CLINK_GOAWAY_LEN ? clink__get_u64(p) : UINT64_MAX;
        atomic_store(&c->goaway, 1);
        /* Draining first, so a callback below that retries on this connection is refused, not queued. */
        if (c->state == CS_OPEN) {
            c->state = CS_DRAINING;
            atomic_store(&c->open, 0);
        }
        /* Calls not yet written were never seen by the peer: fail them as safe to retry. */
        while (c->pend_head != NULL) {
            struct clink_call *call = c->pend_head;
            detach_call(c, call);
            clink__call_finish(c->w, call, -CLINK_EGOAWAY, NULL, 0);
        }
        maybe_finish_drain(c);
        break;
    }
    case CLINK_FRAME_CANCEL:
        /* Advisory; handlers run to completion and the caller drops the late answer. */
        break;
    }
}

/* ---- the HTTPS port: one HTTP/1.1 request per connection ---- */

/* Answer an HTTP request that never reaches the handler (malformed, or no room), then close. */
static void http_refuse(struct clink_conn *c, int status, const char *why)
{
    char b[512];
    int n = snprintf(b, sizeof(b),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "%sConnection: close\r\n\r\n%s\n",
                     status, clink__http_reason(status), strlen(why) + 1,
                     status == 405 ? "Allow: GET, HEAD, POST\r\n" : "", why);
    CLINK_IGNORE(clink__bytes_append(frame_out(c), b, (size_t)n) < 0);
    refuse(c, -CLINK_EPROTO, "HTTPS request refused: %d %s", status, why);
}

static void http_input(struct clink_conn *c, struct clink__bytes *buf)
{
    if (c->http_taken) {
        clink__bytes_consume(buf, clink__bytes_len(buf)); /* one request per connection: the rest is not read */
        return;
    }
    /*
     * Parse only when it can end differently: once the head is whole, or
     * past its size limit, or the body has all arrived. A client sending
     * its request in one-byte records must not make every record cost a
     * parse of everything before it.
     */
    const uint8_t *b = clink__bytes_data(buf);
    size_t len = clink__bytes_len(buf);
    if (c->http_need > 0 && len < c->http_need) {
        return;
    }
    const uint8_t *end = NULL;
    if (c->http_need == 0) {
        size_t from = c->http_scan > 3 ? c->http_scan - 3 : 0;
        end = from < len ? memmem(b + from, len - from, "\r\n\r\n", 4) : NULL;
        if (end == NULL && len < CLINK_HTTP_MAX_HEAD && c->http_scan > 0) {
            c->http_scan = len;
            return;
        }
        c->http_scan = len; /* the first bytes are parsed at once: garbage is refused early */
    }
    struct clink_http_request hr;
    int status = 0;
    const char *why = "";
    int n = clink__http_parse(b, len, &hr, &status, &why);
    if (n == 0) {
        if (end != NULL) {
            c->http_need = (size_t)(end - b) + 4 + hr.body_len; /* the head is whole: only its body is missing */
        }
        return;
    }
    if (n < 0) {
        http_refuse(c, status, why);
        return;
    }
    struct clink_req *r = NULL;
    if ((c->http = malloc(sizeof(*c->http))) == NULL || (r = req_new(c)) == NULL) {
        http_refuse(c, 503, "out of memory");
        return;
    }
    *c->http = hr;
    c->http_taken = 1;
    hs_release(c); /* the handshake slot: the handler's time is not a handshake's */
    STAT_ADD(c->w, https_requests, 1);
    r->id = 1;
    r->method = CLINK_METHOD_HTTP;
    r->data = clink__bytes_data(buf);
    r->len = (size_t)n;
    clink__tls_status(&c->tls, &c->cache); /* the cipher, for a login's REQUIRE CIPHER */
    c->node->https_fn(r, c->node->https_user);
    /* The request may carry credentials: the handler copied what it needs. */
    OPENSSL_cleanse(&hr, sizeof(hr));
    OPENSSL_cleanse(clink__bytes_data(buf), clink__bytes_len(buf));
    clink__bytes_consume(buf, clink__bytes_len(buf));
}

/* The handler's answer: the whole HTTP response, sent as is; then close_notify and close. */
static int http_answer(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt)
{
    struct clink_conn *c = req->conn;
    req_free(req);
    if (c->state >= CS_CLOSING) {
        return -CLINK_ECLOSED;
    }
    if (type != CLINK_FRAME_RESPONSE) {
        http_refuse(c, 500, "the handler failed the request");
        return 0;
    }
    for (unsigned i = 0; i < iovcnt; i++) {
        if (clink__bytes_append(frame_out(c), iov[i].iov_base, iov[i].iov_len) < 0) {
            fail_conn(c, -CLINK_ENOMEM, "out of memory for an HTTPS response");
            return -CLINK_ENOMEM;
        }
    }
    c->http_answer_until = clink__now_ns() + HTTPS_ANSWER_NS;
    close_now(c, 0, 1);
    return 0;
}

const struct clink_http_request *clink_req_http(const struct clink_req *req)
{
    return req != NULL && req->method == CLINK_METHOD_HTTP && req->conn != NULL ? req->conn->http : NULL;
}

/* Parse and dispatch every complete frame in buf. */
static void dispatch(struct clink_conn *c, struct clink__bytes *buf)
{
    if (c->my != NULL) {
        clink__mysql_input(c, buf); /* MySQL packets, not frames */
        return;
    }
    if (c->https) {
        http_input(c, buf);
        return;
    }
    uint32_t max = c->node->opts.max_frame;
    while (c->state >= CS_HELLO && c->state <= CS_DRAINING && clink__bytes_len(buf) >= CLINK_FRAME_HDR) {
        struct clink_frame_hdr h;
        int ret = clink__frame_decode(clink__bytes_data(buf), max, &h);
        if (ret < 0) {
            fail_conn(c, ret,
                      ret == -CLINK_EFRAMETOOBIG ? "frame of %u bytes exceeds max_frame %u"
                                                 : "malformed frame header (type %u, length %u)",
                      ret == -CLINK_EFRAMETOOBIG ? h.length : h.type, ret == -CLINK_EFRAMETOOBIG ? max : h.length);
            return;
        }
        if (clink__bytes_len(buf) < CLINK_FRAME_HDR + (size_t)h.length) {
            break;
        }
        const uint8_t *payload = clink__bytes_data(buf) + CLINK_FRAME_HDR;
        /* payload stays valid through on_frame: handlers write to other buffers, and closing frees none. */
        on_frame(c, &h, payload);
        clink__bytes_consume(buf, CLINK_FRAME_HDR + h.length);
        if (c->ktls_try) {
            break; /* the frame that opened the connection: nothing after it until the kTLS hand-over (on_recv) */
        }
    }
}

/* ---- bytes in ---- */

static void step_handshake(struct clink_conn *c)
{
    int r = clink__tls_handshake(&c->tls);
    if (r < 0) {
        fail_conn(c, r, "%s", c->tls.err);
        return;
    }
    if (r == 0) {
        c->want = c->tls.want ? c->tls.want : 1;
        return;
    }
    CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "TLS handshake done: %s %s", SSL_get_version(c->tls.ssl),
                   SSL_CIPHER_get_name(SSL_get_current_cipher(c->tls.ssl)));
    c->state = CS_HELLO;
    if (c->https) {
        c->exact = 0; /* HTTP from here (dispatch); never handed to the kernel */
        return;
    }
    /*
     * Where kTLS may take over, keep reading exactly what OpenSSL asks (a
     * record header, then its body) until the connection opens: the kernel
     * must get the stream at a record boundary with nothing read ahead.
     */
    c->exact = c->ktls_mode != CLINK_KTLS_DISABLED && c->node->ktls_ulp && c->my == NULL;
    c->want = 5;
    if (!c->is_server) {
        send_hello(c, CLINK_PROTO_MIN, CLINK_PROTO_MAX);
    }
}

static void read_tls(struct clink_conn *c)
{
    dispatch(c, &c->prx); /* frames left behind at the kTLS hand-over point, if it fell back */
    for (;;) {
        if (c->ktls_try || c->state >= CS_CLOSING) {
            return;
        }
        if (clink__bytes_reserve(&c->prx, TLS_CHUNK) < 0) {
            fail_conn(c, -CLINK_ENOMEM, "out of memory");
            return;
        }
        int n = clink__tls_read(&c->tls, c->prx.base + c->prx.tail, c->prx.cap - c->prx.tail);
        if (n == 0) {
            c->want = c->tls.want ? c->tls.want : 5; /* exact reads (HELLO phase before kTLS): what OpenSSL asks */
            return;
        }
        if (n < 0) {
            if (n == -CLINK_ECLOSED && c->https && c->http_taken) {
                /*
                 * close_notify after the request (TLS 1.3 half-close): the
                 * answer still goes out, and nothing more is read (OpenSSL
                 * would leave it all in rx, where a client could pile it up).
                 */
                c->http_rdshut = 1;
                clink__bytes_consume(&c->rx, clink__bytes_len(&c->rx));
                return;
            }
            if (n == -CLINK_ECLOSED) {
                /* close_notify: orderly if we had nothing left to do, otherwise calls fail as closed. */
                if (c->state == CS_DRAINING && c->calls.count == 0) {
                    close_now(c, 0, 1);
                } else {
                    fail_conn(c, -CLINK_ECLOSED, "peer closed the connection (close_notify)");
                }
            } else {
                fail_conn(c, n, "%s", c->tls.err);
            }
            return;
        }
        c->prx.tail += (size_t)n;
        dispatch(c, &c->prx);
    }
}

static void server_classify(struct clink_conn *c)
{
    enum clink_opening_kind k = clink__opening_classify(clink__bytes_data(&c->rx), clink__bytes_len(&c->rx));
    CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "opening: %zu bytes, kind %d", clink__bytes_len(&c->rx), (int)k);
    if (c->https && k != CLINK_OPENING_MORE) {
        if (k != CLINK_OPENING_TLS) {
            /* Plain HTTP (or anything else) on the HTTPS port: said in HTTP, never served. */
            http_refuse(c, 400, "this port speaks HTTPS only: use https://");
            return;
        }
        pthread_mutex_lock(&c->node->tls_mu);
        int ret = clink__tls_init(&c->tls, clink_tls_ctx_server(c->node->https_tls), 1, NULL, 0, &c->rx, &c->tx);
        pthread_mutex_unlock(&c->node->tls_mu);
        c->tls.other = 1; /* ALPN http/1.1 or none, not clink's */
        if (ret < 0) {
            fail_conn(c, ret, "TLS setup failed");
            return;
        }
        c->has_tls = 1;
        c->state = CS_HANDSHAKE;
        step_handshake(c);
        return;
    }
    switch (k) {
    case CLINK_OPENING_MORE:
        c->want = CLINK_PLAIN_MAGIC_LEN - clink__bytes_len(&c->rx);
        return;
    case CLINK_OPENING_TLS: {
        if (atomic_load(&c->node->secure) == CLINK_SECURE_PLAINTEXT) {
            fail_conn(c, -CLINK_EPLAINTEXT, "TLS client, but this node accepts plaintext only (PLAINTEXT)");
            return;
        }
        /* Under tls_mu: a reload may swap the context; SSL_new takes its own reference to it. */
        pthread_mutex_lock(&c->node->tls_mu);
        int ret = c->node->tls == NULL
                      ? -CLINK_EPLAINTEXT
                      : clink__tls_init(&c->tls, clink_tls_ctx_server(c->node->tls), 1, NULL, 0, &c->rx, &c->tx);
        pthread_mutex_unlock(&c->node->tls_mu);
        if (ret == -CLINK_EPLAINTEXT) {
            fail_conn(c, ret, "TLS client, but this node has no TLS identity");
            return;
        }
        if (ret < 0) {
            fail_conn(c, ret, "TLS setup failed");
            return;
        }
        c->has_tls = 1;
        c->mode = CLINK_MODE_TLS;
        c->state = CS_HANDSHAKE;
        step_handshake(c);
        return;
    }
    case CLINK_OPENING_PLAIN:
        clink__bytes_consume(&c->rx, CLINK_PLAIN_MAGIC_LEN);
        c->mode = CLINK_MODE_PLAIN;
        if (!c->node->opts.allow_plaintext || atomic_load(&c->node->secure) == CLINK_SECURE_REQUIRE_TLS) {
            emit_error(c, 0, CLINK_EPLAINTEXT, "plaintext connections are not allowed on this node");
            refuse(c, -CLINK_EPLAINTEXT, "plaintext client refused");
            return;
        }
        c->state = CS_HELLO;
        c->exact = 0;
        return;
    case CLINK_OPENING_OTHER: {
        if (c->node->opts.mysql != NULL && c->node->accounts != NULL) {
            /* A MySQL-protocol client (transport/mysql.c): its packets from here, no kTLS hand-over. */
            c->exact = 0;
            c->state = CS_HELLO;
            /* kTLS is tried once logged in; where it cannot be, the client stays in user-space TLS (never refused). */
            c->ktls_mode = c->ktls_mode == CLINK_KTLS_DISABLED ? CLINK_KTLS_DISABLED : CLINK_KTLS_AUTO;
            c->mode = CLINK_MODE_PLAIN; /* until its SSL request, if it sends one (clink__conn_mysql_tls) */
            clink__mysql_start(c);
            return;
        }
        /* A MySQL-protocol client where this node does not serve them: tell it so in its own protocol. */
        uint8_t b[128];
        size_t n = clink__opening_mysql_refusal(b, sizeof(b), 2);
        CLINK_IGNORE(clink__bytes_append(&c->tx, b, n) < 0);
        refuse(c, -CLINK_ENOTSUP, "MySQL-protocol client refused: protocol not served");
        return;
    }
    }
}

static void client_greeting(struct clink_conn *c)
{
    if (!c->greet_hdr_done) {
        if (clink__bytes_len(&c->rx) < 5) {
            c->want = 5 - clink__bytes_len(&c->rx);
            return;
        }
        int len = clink__opening_greeting_len(clink__bytes_data(&c->rx));
        if (len < 0) {
            fail_conn(c, -CLINK_EPROTO, "%s did not greet like a clink node", c->peer_str);
            return;
        }
        c->greet_hdr_done = 1;
        c->greet_left = (size_t)len - 1;
        clink__bytes_consume(&c->rx, 5);
    }
    /* The whole greeting (at most CLINK_GREETING_MAX bytes) is read: its scramble is the login challenge. */
    size_t have = clink__bytes_len(&c->rx);
    if (have < c->greet_left) {
        c->want = c->greet_left - have;
        return;
    }
    c->have_scramble = clink__opening_greeting_scramble(clink__bytes_data(&c->rx), c->greet_left, c->scramble) == 0;
    clink__bytes_consume(&c->rx, c->greet_left);
    c->greet_left = 0;
    if (c->hello_deferred) {
        if (!c->have_scramble) {
            fail_conn(c, -CLINK_EPROTO, "%s sent no login challenge in its greeting", c->peer_str);
            return;
        }
        c->hello_deferred = 0;
        send_hello(c, CLINK_PROTO_MIN, CLINK_PROTO_MAX);
        clink__mark_dirty(c);
    }
    if (c->has_tls) {
        c->state = CS_HANDSHAKE;
        c->want = c->tls.want ? c->tls.want : 5;
    } else {
        c->state = CS_HELLO;
        c->exact = 0;
    }
}

static void on_input(struct clink_conn *c)
{
    /* Loop: one state's bytes may complete it and leave input for the next state. */
    for (;;) {
        int before = c->state;
        switch (c->state) {
        case CS_OPENING:
            if (c->is_server) {
                server_classify(c);
            } else {
                client_greeting(c);
            }
            break;
        case CS_HANDSHAKE:
            if (clink__bytes_len(&c->rx) > 0) {
                step_handshake(c);
            }
            break;
        case CS_HELLO:
        case CS_OPEN:
        case CS_DRAINING:
            if (c->has_tls && !c->ktls_rx) {
                read_tls(c);
            } else {
                dispatch(c, &c->rx); /* plaintext, or decrypted by the kernel */
            }
            break;
        default:
            return;
        }
        if (c->state == before || c->state >= CS_CLOSING) {
            return;
        }
        if (c->state == CS_HANDSHAKE && clink__bytes_len(&c->rx) == 0) {
            return;
        }
    }
}

/*
 * Backpressure: stop reading while what we owe the peer (answers, PONGs)
 * exceeds the write budget, or while its requests fill our handlers. A peer
 * that sends without reading then stalls itself, not our memory.
 * A side with its own calls in flight keeps reading up to a hard cap: those
 * answers are what drains both queues, and two sides that both stopped
 * reading would wait for each other forever. Our own requests never count
 * much here: beyond the budget they wait, unserialized, in the pending list.
 */
static int must_pause(const struct clink_conn *c)
{
    if (c->exact) {
        return 0;
    }
    size_t limit = c->node->opts.max_write_buffer;
    size_t hard = 4 * limit + 2 * (size_t)c->node->opts.max_frame;
    size_t q = queued_bytes(c);
    /*
     * Over the worker's budget, as over our own limit: only open connections
     * pause (a HELLO is always read), and not those waiting for our calls'
     * answers.
     */
    return c->nreqs >= c->node->opts.max_requests_per_conn || (q > limit && c->calls.count == 0) || q > hard ||
           (c->state >= CS_OPEN && c->calls.count == 0 && worker_full(c->w));
}

/*
 * Back under 7/8 of the worker's budget: re-arm the reads and calls it held
 * back, on every connection. deep: give back empty buffers first (the
 * 10 ms check; sends and closes look only at the count).
 */
static void budget_relief(struct clink_worker *w, int deep)
{
    if (!w->budget_hit) {
        return;
    }
    if (deep && __atomic_load_n(&w->buffered, __ATOMIC_RELAXED) > w->budget / 8 * 7) {
        trim_idle_send_buffers(w);
    }
    if (__atomic_load_n(&w->buffered, __ATOMIC_RELAXED) > w->budget / 8 * 7) {
        return;
    }
    w->budget_hit = 0;
    clink__timers_del(&w->timers, &w->budget_timer);
    CLINK_LOG(&w->node->log, CLINK_LOG_INFO, "transport", 0, "worker %u: send buffers below 7/8 of its budget again",
              w->idx);
    for (struct clink_conn *c = w->conns; c != NULL && !w->budget_hit; c = c->next) {
        if (c->state > CS_DRAINING) {
            continue;
        }
        if (c->pend_head != NULL) {
            release_pending(c);
            clink__mark_dirty(c);
        }
        if (c->recv_paused) {
            arm_recv(c);
        }
    }
}

/*
 * Free empty buffers: above KEEP_IDLE always (a burst's memory), all of them
 * once the connection is idle, so that what a quiet connection costs is its
 * struct and its TLS state.
 */
static void give_back(struct clink_conn *c)
{
    size_t keep = c->small_reads >= IDLE_AFTER ? 0 : KEEP_IDLE;
    clink__bytes_trim(&c->prx, keep);
    clink__bytes_trim(&c->ptx, keep);
    clink__bytes_trim(&c->tx, keep);
    clink__bytes_trim(&c->txf, keep);
}

static void arm_recv(struct clink_conn *c)
{
    if (c->recv_armed || c->state >= CS_CLOSING || c->state == CS_CONNECTING || c->fd < 0 || c->http_rdshut) {
        return;
    }
    if (must_pause(c)) {
        c->recv_paused = 1;
        return;
    }
    c->recv_paused = 0;
    size_t n = c->exact ? c->want : STREAM_READ;
    if (n == 0) {
        n = 1;
    }
    if (!c->exact && c->small_reads >= IDLE_AFTER && clink__bytes_len(&c->rx) == 0 &&
        !(c->rx_full && c->rx_req > IDLE_READ)) {
        /*
         * Only small reads lately: a small buffer waits for the next bytes,
         * so thousands of quiet connections do not each pin a streaming
         * buffer. Tiny reads (pings, the odd call) get 512 bytes, small
         * batches 4 KiB; a read that fills its buffer moves the next one up
         * a size, and a full 4 KiB read brings the streaming buffer back.
         */
        size_t tier = c->last_read < IDLE_READ && !c->rx_full ? IDLE_READ : SMALL_READ;
        if (c->rx.cap > tier) {
            clink__bytes_free(&c->rx);
        }
        n = tier;
    }
    if (clink__bytes_reserve(&c->rx, n) < 0) {
        fail_conn(c, -CLINK_ENOMEM, "out of memory");
        return;
    }
    if (!c->exact) {
        n = c->rx.cap - c->rx.tail;
    }
    c->rx_req = c->exact ? 0 : n; /* a read that fills what was asked means more is coming */
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    io_uring_prep_recv(sqe, c->fd, c->rx.base + c->rx.tail, n, 0);
    io_uring_sqe_set_data(sqe, tag(c, OP_RECV));
    c->recv_armed = 1;
    c->ops++;
}

static void ktls_begin(struct clink_conn *c);
static void ktls_read_control(struct clink_conn *c);

static void on_recv(struct clink_conn *c, int res)
{
    c->recv_armed = 0;
    if (c->state >= CS_CLOSING) {
        return;
    }
    if (res == -EIO && c->ktls_rx) {
        ktls_read_control(c); /* a record that is not application data: read it with its type */
        return;
    }
    if (res == -EBADMSG && c->ktls_rx) {
        /*
         * The kernel could not authenticate a record: it was changed on the
         * way (or the keys disagree). RFC 8446 6.2 asks for a bad_record_mac
         * alert, but the kernel has set the error on the socket (tls_err_abort)
         * and refuses every send after it: the peer sees the connection end.
         */
        fail_conn(c, -CLINK_ETLS, "a record from %s failed authentication (tampered or corrupted): connection aborted",
                  c->peer_str);
        return;
    }
    if (res == 0 && c->https && c->http_taken) {
        c->http_rdshut = 1;
        return; /* the client shut its side after its request: its answer still goes out */
    }
    if (res <= 0) {
        if (res == 0) {
            int orderly = c->state == CS_DRAINING && c->calls.count == 0 && !c->has_tls;
            if (orderly) {
                close_now(c, 0, 1);
            } else {
                fail_conn(c, -CLINK_ECLOSED, "%s closed the connection%s", c->peer_str,
                          c->has_tls ? " without close_notify" : "");
            }
        } else {
            fail_conn(c, res, "recv from %s: %s", c->peer_str, clink_strerror(res));
        }
        return;
    }
    /* Bytes the kernel wrote through io_uring are invisible to Valgrind: say they are defined. */
    MARK_DEFINED(c->rx.base + c->rx.tail, (size_t)res);
    c->rx.tail += (size_t)res;
    c->small_reads = (size_t)res >= SMALL_READ ? 0 : c->small_reads + 1;
    c->rx_full = (size_t)res == c->rx_req; /* more is likely waiting: the next read gets a bigger buffer */
    c->last_read = (size_t)res;
    c->bytes_in += (uint64_t)res;
    STAT_ADD(c->w, bytes_in, (uint64_t)res);
    on_input(c);
    if (c->ktls_try && c->state == CS_OPEN) {
        ktls_begin(c); /* before the next recv: the kernel must see the stream from this record boundary */
        if (c->state < CS_CLOSING) {
            on_input(c); /* what arrived past the boundary (only if it fell back to user-space TLS) */
        }
    }
    if (clink__bytes_len(&c->tx) > 0) {
        clink__mark_dirty(c); /* the TLS handshake writes through the BIO, not through emit() */
    }
    if (c->state < CS_CLOSING) {
        if (c->exact && c->state == CS_OPEN) {
            c->exact = 0;
        }
        arm_recv(c);
        give_back(c);
    }
}

static void on_send(struct clink_conn *c, int res)
{
    c->send_armed = 0;
    if (res < 0) {
        clink__bytes_consume(&c->txf, clink__bytes_len(&c->txf));
        if (c->state < CS_CLOSING) {
            fail_conn(c, res, "send to %s: %s", c->peer_str, clink_strerror(res));
        }
        clink__mark_dirty(c);
        return;
    }
    c->bytes_out += (uint64_t)res;
    STAT_ADD(c->w, bytes_out, (uint64_t)res);
    clink__bytes_consume(&c->txf, (size_t)res);
    if (c->https && c->state == CS_CLOSING && res > 0 && clink__now_ns() < c->http_answer_until) {
        /*
         * An HTTPS answer may be large and its reader slow: the linger bounds
         * silence, and HTTPS_ANSWER_NS the whole, so a reader that takes a
         * byte now and then cannot hold the connection for ever.
         */
        CLINK_IGNORE(clink__timers_add(&c->w->timers, &c->hs_timer, clink__now_ns() + CLINK_LINGER_NS));
    }
    if (clink__bytes_len(&c->txf) > 0) {
        submit_send(c); /* short send: the rest goes next */
        return;
    }
    give_back(c);
    if (c->ktls_tx_pending) {
        ktls_try_tx(c);
    }
    clink__mark_dirty(c);
    if (c->recv_paused) {
        arm_recv(c);
    }
    budget_relief(c->w, 0);
}

static void on_connect(struct clink_conn *c, int res)
{
    if (c->state != CS_CONNECTING) {
        return; /* timed out or shut down while connecting: already closing */
    }
    if (res < 0) {
        fail_conn(c, res, "connect to %s: %s", c->peer_str, clink_strerror(res));
        return;
    }
    int one = 1;
    CLINK_IGNORE(setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0);
    CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "connected to %s", c->peer_str);
    c->state = CS_OPENING;
    c->exact = 1;
    c->want = 5;
    if (c->mode == CLINK_MODE_PLAIN) {
        /*
         * Magic and HELLO go out at once, unless a password must answer the
         * greeting's scramble: then the HELLO waits for the greeting.
         */
        CLINK_IGNORE(clink__bytes_append(&c->tx, CLINK_PLAIN_MAGIC, CLINK_PLAIN_MAGIC_LEN) < 0);
        c->peer_max_frame = CLINK_MAX_FRAME_FLOOR;
        if (c->has_password) {
            c->hello_deferred = 1;
        } else {
            send_hello(c, CLINK_PROTO_MIN, CLINK_PROTO_MAX);
        }
    } else {
        pthread_mutex_lock(&c->node->tls_mu);
        int ret = clink__tls_init(&c->tls, clink_tls_ctx_client(c->node->tls), 0, c->expected_name, c->verify, &c->rx,
                                  &c->tx);
        /* The ticket generation that goes with this context (a reload bumps it after swapping the context). */
        uint64_t gen = clink__sessions_gen(&c->node->sessions);
        pthread_mutex_unlock(&c->node->tls_mu);
        if (ret == 0 && !c->no_resume) {
            /* Tickets are filed per identity: what we verify (level, name) and which port serves it. */
            char key[CLINK_SESSION_KEY_MAX];
            snprintf(key, sizeof(key), "v%d|%s|%u", c->verify, c->expected_name, peer_port(c));
            clink__tls_use_sessions(&c->tls, &c->node->sessions, key, gen);
        }
        if (ret < 0) {
            fail_conn(c, ret, "TLS setup failed for expected name '%s'", c->expected_name);
            return;
        }
        c->has_tls = 1;
        /* Produces the ClientHello in tx; the server's greeting is read first, then the handshake goes on. */
        int r = clink__tls_handshake(&c->tls);
        if (r < 0) {
            fail_conn(c, r, "%s", c->tls.err);
            return;
        }
    }
    clink__mark_dirty(c);
    arm_recv(c);
}

/* ---- kTLS: hand an open TLS 1.3 connection's record layer to the kernel ---- */

/* Stay in user-space TLS for the direction(s) not handed over, and say why (REQUIRED: fail). */
static void ktls_fallback(struct clink_conn *c, const char *why)
{
    c->ktls_try = 0;
    c->ktls_tx_pending = 0;
    clink__tls_wipe_secrets(&c->tls);
    snprintf(c->cache.ktls_reason, sizeof(c->cache.ktls_reason), "%s%s", c->ktls_rx ? "send side: " : "", why);
    STAT_ADD(c->w, ktls_fallbacks, c->ktls_rx ? 0 : 1);
    STAT_ADD(c->w, ktls_rx_only, c->ktls_rx ? 1 : 0);
    if (!c->w->ktls_logged) { /* once per worker: every connection counts, the log says it once */
        c->w->ktls_logged = 1;
        CLINK_CONN_LOG(c, c->ktls_mode == CLINK_KTLS_REQUIRED ? CLINK_LOG_WARN : CLINK_LOG_INFO,
                       "%s: kTLS not used: %s (counted in ktls_fallbacks; status says why per connection)", c->peer_str,
                       c->cache.ktls_reason);
    }
    if (c->ktls_mode == CLINK_KTLS_REQUIRED && c->is_server && !c->was_open) {
        /* Refused before it was announced: the client is told why (this still goes out through OpenSSL). */
        char msg[160];
        snprintf(msg, sizeof(msg), "kTLS required by the server: %s", c->cache.ktls_reason);
        emit_error(c, 0, CLINK_EKTLS, msg);
        refuse(c, -CLINK_EKTLS, "%s", msg);
    } else if (c->ktls_mode == CLINK_KTLS_REQUIRED) {
        fail_conn(c, -CLINK_EKTLS, "kTLS required: %s", c->cache.ktls_reason);
    } else if (c->state == CS_OPEN && !c->was_open) {
        announce_open(c);
    }
}

/* Install one direction. Returns 0, or -1 with why. */
static int ktls_install(struct clink_conn *c, int tx, char *why, size_t cap)
{
    struct clink__ktls_info info;
    int ret = clink__tls_ktls_info(&c->tls, tx, &info);
    if (ret < 0) {
        snprintf(why, cap, "%s",
                 c->tls.key_updated ? "the keys were updated (KeyUpdate) before the hand-over"
                 : tx               ? "no TLS 1.3 traffic secret for the send side"
                                    : "no TLS 1.3 traffic secret for the receive side");
    } else {
        ret = clink__ktls_install(c->fd, tx, &info, &c->ktls_ulp, why, cap);
    }
    clink__ktls_info_wipe(&info);
    return ret < 0 ? -1 : 0;
}

/*
 * RX first, at the record boundary where the connection opened: the client
 * has read the server's tickets and HELLO, the server the client's HELLO,
 * each through OpenSSL with exact-length reads, so nothing beyond that
 * record has left the socket. Then TX, once OpenSSL's last records are out.
 */
static void ktls_begin(struct clink_conn *c)
{
    c->ktls_try = 0;
    char why[96];
    if (!c->node->ktls_ulp) {
        ktls_fallback(c, "this kernel offers no kTLS (no 'tls' in tcp_available_ulp)");
        return;
    }
    if (!clink__tls_rx_idle(&c->tls) || clink__bytes_len(&c->prx) > 0) {
        ktls_fallback(c, "bytes past the hand-over point were already read");
        return;
    }
    if (ktls_install(c, 0, why, sizeof(why)) < 0) {
        ktls_fallback(c, why);
        return;
    }
    c->ktls_rx = 1;
    c->cache.ktls_rx = CLINK_KTLS_ON;
    clink__tls_drop_buffers(&c->tls);
    /*
     * What was staged before this point (the server's HELLO) is sealed by
     * OpenSSL now, as a record of its own: the peer reads it at its own
     * hand-over point, and nothing sent after the announcement may share it.
     */
    if (encrypt_pending(c) < 0) {
        return;
    }
    c->ktls_tx_pending = 1;
    ktls_try_tx(c);
    if (c->state == CS_OPEN && !c->was_open) {
        announce_open(c);
    }
}

static void ktls_try_tx(struct clink_conn *c)
{
    if (!c->ktls_tx_pending || c->send_armed || clink__bytes_len(&c->tx) > 0 || clink__bytes_len(&c->txf) > 0) {
        return;
    }
    c->ktls_tx_pending = 0;
    char why[96];
    if (ktls_install(c, 1, why, sizeof(why)) < 0) {
        ktls_fallback(c, why); /* RX stays with the kernel, OpenSSL keeps sending: a valid mix */
        return;
    }
    c->ktls_tx = 1;
    c->cache.ktls_tx = CLINK_KTLS_ON;
    c->cache.ktls_reason[0] = '\0';
    /*
     * Both directions are the kernel's: OpenSSL's per-connection state (the
     * SSL, its session and the peer's certificate; the status was copied when
     * the connection opened, and the client filed its tickets already) is
     * needed no more. Freed, with the secrets.
     */
    clink__tls_free(&c->tls);
    STAT_ADD(c->w, ktls_offloaded, 1);
    /* What was staged while we waited is plaintext for the kernel to encrypt: it becomes the output (tx is empty). */
    struct clink__bytes tmp = c->tx;
    c->tx = c->ptx;
    c->ptx = tmp;
    clink__mark_dirty(c);
}

static void ktls_read_control(struct clink_conn *c)
{
    /* Into rx, after whatever partial frame it holds: a record's plaintext is at most 16 KiB. */
    if (clink__bytes_reserve(&c->rx, 16384 + 1) < 0) {
        fail_conn(c, -CLINK_ENOMEM, "out of memory");
        return;
    }
    memset(&c->ktls_rmsg, 0, sizeof(c->ktls_rmsg));
    c->ktls_riov = (struct iovec){.iov_base = c->rx.base + c->rx.tail, .iov_len = c->rx.cap - c->rx.tail};
    c->ktls_rmsg.msg_iov = &c->ktls_riov;
    c->ktls_rmsg.msg_iovlen = 1;
    c->ktls_rmsg.msg_control = c->ktls_rcmsg;
    c->ktls_rmsg.msg_controllen = CMSG_SPACE(1);
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    io_uring_prep_recvmsg(sqe, c->fd, &c->ktls_rmsg, 0);
    io_uring_sqe_set_data(sqe, tag(c, OP_RECVMSG));
    c->recv_armed = 1; /* no other recv while this one is out */
    c->ops++;
}

/* A control record under kTLS RX: close_notify ends the connection, any other alert or a KeyUpdate aborts it. */
static void on_control_record(struct clink_conn *c, int res)
{
    c->recv_armed = 0;
    if (c->state >= CS_CLOSING) {
        return;
    }
    if (res == -EBADMSG) {
        fail_conn(c, -CLINK_ETLS, "a record from %s failed authentication (tampered or corrupted): connection aborted",
                  c->peer_str);
        return;
    }
    if (res < 0) {
        fail_conn(c, res, "recvmsg from %s: %s", c->peer_str, clink_strerror(res));
        return;
    }
    /* The whole record, with its type (the body stays past rx's tail: it is not frame data). */
    const uint8_t *body = c->rx.base + c->rx.tail;
    MARK_DEFINED(body, (size_t)res);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&c->ktls_rmsg);
    if (res == 0 || (c->ktls_rmsg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || !(c->ktls_rmsg.msg_flags & MSG_EOR) ||
        cm == NULL || cm->cmsg_level != SOL_TLS || cm->cmsg_type != TLS_GET_RECORD_TYPE || cm->cmsg_len < CMSG_LEN(1)) {
        fail_conn(c, res == 0 ? -CLINK_ECLOSED : -CLINK_ETLS, "%s: %s", c->peer_str,
                  res == 0 ? "closed the connection without close_notify" : "unreadable kTLS control record");
        return;
    }
    uint8_t type = *CMSG_DATA(cm);
    if (type == 21 && res == 2 && body[1] == 0) { /* alert: close_notify */
        c->tls.orderly = 1;
        if (c->state == CS_DRAINING && c->calls.count == 0) {
            close_now(c, 0, 1);
        } else {
            fail_conn(c, -CLINK_ECLOSED, "peer closed the connection (close_notify)");
        }
        return;
    }
    if (type == 21) {
        fail_conn(c, -CLINK_ETLS, "peer sent TLS alert %u (%s)", res == 2 ? body[1] : 0u,
                  res == 2 ? SSL_alert_desc_string_long(body[1]) : "malformed");
        return;
    }
    if (type == 22 && body[0] == 4) { /* a late NewSessionTicket: not for us to keep */
        arm_recv(c);
        return;
    }
    if (type == 22 && body[0] == 24) {
        fail_conn(c, -CLINK_ETLS, "peer sent a TLS KeyUpdate, which a kTLS socket on this kernel cannot follow");
        return;
    }
    fail_conn(c, -CLINK_EPROTO, "unexpected TLS record type %u under kTLS", type);
}

/* close_notify, as the kernel sends it: an alert record (warning, close_notify). */
static void ktls_send_close_notify(struct clink_conn *c)
{
    static uint8_t alert[2] = {1, 0};
    memset(&c->ktls_smsg, 0, sizeof(c->ktls_smsg));
    c->ktls_siov = (struct iovec){.iov_base = alert, .iov_len = sizeof(alert)};
    c->ktls_smsg.msg_iov = &c->ktls_siov;
    c->ktls_smsg.msg_iovlen = 1;
    c->ktls_smsg.msg_control = c->ktls_scmsg;
    c->ktls_smsg.msg_controllen = CMSG_SPACE(1);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&c->ktls_smsg);
    cm->cmsg_level = SOL_TLS;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(cm) = 21;
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    io_uring_prep_sendmsg(sqe, c->fd, &c->ktls_smsg, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, tag(c, OP_SENDMSG));
    c->send_armed = 1;
    c->ops++;
}

void clink__conn_complete(struct clink_worker *w, struct clink_conn *c, int op, int res)
{
    (void)w;
    c->ops--;
    switch (op) {
    case OP_RECV:
        on_recv(c, res);
        break;
    case OP_SEND:
        on_send(c, res);
        break;
    case OP_CONNECT:
        on_connect(c, res);
        break;
    case OP_SHUTDOWN:
        break;
    case OP_RECVMSG:
        on_control_record(c, res);
        break;
    case OP_SENDMSG:
        c->send_armed = 0;
        c->ktls_cn_pending = 0; /* sent or not, the connection is closing */
        break;
    case OP_CLOSE:
        closed(c);
        return;
    }
    if (c->state == CS_CLOSING && !c->send_armed) {
        finish_close(c);
    }
}

/* ---- birth ---- */

/*
 * Handshake slots (storm control, docs/protocol.md). Connections past the
 * per-worker limit wait unread, newest first: after a flood, the slot that
 * frees goes to whoever came last (most likely a real client behind it),
 * not to the oldest of the flood.
 */
static uint64_t hs_slot_time(const struct clink_node *n)
{
    return (uint64_t)n->opts.handshake_timeout_ms * 1000000ull / 4;
}

static void hs_take_slot(struct clink_conn *c)
{
    c->w->handshaking++;
    c->hs_counted = 1;
    c->hs_slot_ns = clink__now_ns();
}

static void hs_wait_push(struct clink_worker *w, struct clink_conn *c)
{
    atomic_fetch_add(&c->refs, 1);
    c->hs_prev = NULL;
    c->hs_next = w->hs_wait_head;
    if (w->hs_wait_head != NULL) {
        w->hs_wait_head->hs_prev = c;
    }
    w->hs_wait_head = c;
    c->hs_waiting = 1;
    if (w->hs_evict_timer.idx == CLINK_TIMER_NONE) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->hs_evict_timer, clink__now_ns() + hs_slot_time(w->node) / 2));
    }
}

static void hs_wait_unlink(struct clink_worker *w, struct clink_conn *c)
{
    if (c->hs_prev != NULL) {
        c->hs_prev->hs_next = c->hs_next;
    } else {
        w->hs_wait_head = c->hs_next;
    }
    if (c->hs_next != NULL) {
        c->hs_next->hs_prev = c->hs_prev;
    }
    c->hs_next = c->hs_prev = NULL;
    c->hs_waiting = 0;
}

void clink__conn_adopt(struct clink_worker *w, int fd, int https)
{
    struct clink_conn *c = conn_new(w, fd, 1);
    if (c == NULL) {
        close(fd);
        return;
    }
    socklen_t sl = sizeof(c->peer);
    CLINK_IGNORE(getpeername(fd, (struct sockaddr *)&c->peer, &sl) < 0);
    set_peer_str(c);
    c->ktls_mode = c->node->opts.ktls ? c->node->opts.ktls : CLINK_KTLS_AUTO;
    int one = 1;
    CLINK_IGNORE(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0);
    if (https) {
        /* A browser speaks first and expects no greeting; its connection is never offloaded to kTLS. */
        c->https = 1;
        c->ktls_mode = CLINK_KTLS_DISABLED;
    } else {
        uint8_t b[128];
        if (RAND_bytes(c->scramble, sizeof(c->scramble)) != 1) {
            /* A predictable challenge would let a recorded scramble answer be replayed: fail closed. */
            fail_conn(c, -CLINK_EINTERNAL, "no random bytes for the login challenge");
            return;
        }
        /* The server speaks first (docs/protocol.md, "Opening"); native clients have already sent theirs. */
        size_t n = clink__opening_greeting(b, sizeof(b), (uint32_t)c->id, c->scramble);
        CLINK_IGNORE(clink__bytes_append(&c->tx, b, n) < 0);
    }
    c->state = CS_OPENING;
    c->exact = 1;
    c->want = CLINK_CLASSIFY_LEN;
    clink__mark_dirty(c); /* the greeting goes out at once either way */
    if (w->handshaking >= c->node->opts.max_handshakes_per_worker) {
        /* Storm control: read nothing from it until a handshake slot frees (its deadline still runs). */
        hs_wait_push(w, c);
        STAT_ADD(w, handshakes_deferred, 1);
        return;
    }
    hs_take_slot(c);
    arm_recv(c);
}

/* A server connection left its handshake (opened or failed): its slot goes to the newest one waiting. */
static void hs_release(struct clink_conn *c)
{
    struct clink_worker *w = c->w;
    if (c->hs_waiting) {
        /* Closed while waiting (its deadline passed): it leaves the list now, not when its turn would come. */
        hs_wait_unlink(w, c);
        clink__conn_put(c);
        return;
    }
    if (!c->hs_counted) {
        return;
    }
    c->hs_counted = 0;
    w->handshaking--;
    while (w->hs_wait_head != NULL && w->handshaking < c->node->opts.max_handshakes_per_worker) {
        struct clink_conn *n = w->hs_wait_head;
        hs_wait_unlink(w, n);
        hs_take_slot(n);
        arm_recv(n);
        clink__conn_put(n);
    }
}

/*
 * A slot holder that has not finished within a quarter of the handshake
 * timeout while others wait is cut off: a flood of connections that never
 * finish must not keep the slots until their own deadlines, or whoever
 * comes after them waits as long and times out too.
 */
void clink__conn_hs_evict(struct clink_worker *w)
{
    if (w->hs_wait_head == NULL) {
        return;
    }
    uint64_t now = clink__now_ns(), slot = hs_slot_time(w->node);
    /* One slot per connection waiting, oldest holder first: a slow holder nobody waits for stays. */
    while (w->hs_wait_head != NULL) {
        struct clink_conn *oldest = NULL;
        for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
            /* (a holder admitted during this pass has hs_slot_ns > now: never expired) */
            if (c->hs_counted && c->state < CS_CLOSING && c->hs_slot_ns + slot < now &&
                (oldest == NULL || c->hs_slot_ns < oldest->hs_slot_ns)) {
                oldest = c;
            }
        }
        if (oldest == NULL) {
            break;
        }
        /* close_now releases its slot to the newest waiting connection */
        fail_conn(oldest, -CLINK_EHANDSHAKE_TIMEOUT,
                  "no complete opening handshake within %llu ms of its turn, while others waited",
                  (unsigned long long)(slot / 1000000));
    }
    if (w->hs_wait_head != NULL) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->hs_evict_timer, now + slot / 2));
    }
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *sl = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *sl = sizeof(*a6);
        return 0;
    }
    return -CLINK_EINVAL;
}

void clink__conn_dial(struct clink_worker *w, struct clink__msg_connect *m)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (resolve(m->host, m->opts.port, &ss, &sl) < 0) {
        m->cb(NULL, -CLINK_EINVAL, "host is not an IPv4 or IPv6 address (or localhost)", m->user);
        return;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = -errno;
        m->cb(NULL, e, clink_strerror(e), m->user);
        return;
    }
    struct clink_conn *c = conn_new(w, fd, 0);
    if (c == NULL) {
        close(fd);
        m->cb(NULL, -CLINK_ENOMEM, clink_strerror(-CLINK_ENOMEM), m->user);
        return;
    }
    STAT_ADD(w, conns_dialed, 1);
    c->mode = m->opts.mode == CLINK_MODE_PLAIN ? CLINK_MODE_PLAIN : CLINK_MODE_TLS;
    c->connect_cb = m->cb;
    c->connect_user = m->user;
    snprintf(c->expected_name, sizeof(c->expected_name), "%s", m->name);
    snprintf(c->label, sizeof(c->label), "%s", m->label);
    c->verify = m->verify;
    c->login = m->login;
    c->no_resume = m->no_resume;
    c->ktls_mode = m->opts.ktls ? m->opts.ktls : c->node->opts.ktls ? c->node->opts.ktls : CLINK_KTLS_AUTO;
    c->has_password = m->has_password;
    snprintf(c->login_user, sizeof(c->login_user), "%s", m->login_user);
    memcpy(c->password, m->password, sizeof(c->password));
    snprintf(c->account, sizeof(c->account), "%s", m->login_user);
    c->peer = ss;
    set_peer_str(c);
    if (m->opts.timeout_ms) {
        CLINK_IGNORE(
            clink__timers_add(&w->timers, &c->hs_timer, clink__now_ns() + (uint64_t)m->opts.timeout_ms * 1000000ull));
    }
    c->state = CS_CONNECTING;
    struct io_uring_sqe *sqe = clink__sqe(w);
    /* The sockaddr must outlive the SQE: it lives in the conn. */
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->peer, sl);
    io_uring_sqe_set_data(sqe, tag(c, OP_CONNECT));
    c->ops++;
}

static const char *state_name(int state)
{
    switch (state) {
    case CS_OPEN:
        return "open";
    case CS_DRAINING:
        return "draining";
    case CS_CLOSING:
        return "closing";
    case CS_CLOSED:
        return "closed";
    default:
        return "opening";
    }
}

void clink__conn_fill_status(struct clink_conn *c, struct clink_conn_status *st)
{
    *st = c->cache;
    st->open = atomic_load(&c->open);
    st->is_server = c->is_server;
    st->mode = c->mode;
    st->id = c->id;
    snprintf(st->state, sizeof(st->state), "%s", state_name(c->state));
    snprintf(st->label, sizeof(st->label), "%s", c->label);
    snprintf(st->peer_addr, sizeof(st->peer_addr), "%s", c->peer_str);
    if (c->state != CS_CLOSED) {
        st->bytes_in = c->bytes_in;
        st->bytes_out = c->bytes_out;
        st->frames_in = c->frames_in;
        st->frames_out = c->frames_out;
        st->calls_in_flight = (uint32_t)c->calls.count;
        st->requests_in_flight = c->nreqs;
        if (c->has_tls) {
            st->records_in = c->tls.rec_in;
            st->records_out = c->tls.rec_out;
            /* Once the kernel has a direction, it counts: its sequence number is the records sent under the key. */
            uint64_t seq;
            if (c->ktls_rx && clink__ktls_rec_seq(c->fd, 0, &seq) == 0) {
                st->records_in = seq;
            }
            if (c->ktls_tx && clink__ktls_rec_seq(c->fd, 1, &seq) == 0) {
                st->records_out = seq;
            }
        }
        st->last_error = c->err;
        snprintf(st->last_error_text, sizeof(st->last_error_text), "%s", c->errtext);
    }
}

/* ---- for the MySQL-protocol front door (transport/mysql.c) ---- */

struct clink__bytes *clink__conn_out(struct clink_conn *c)
{
    return frame_out(c);
}

void clink__conn_refuse(struct clink_conn *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, err, 1, fmt, ap);
    va_end(ap);
}

void clink__conn_close_orderly(struct clink_conn *c)
{
    if (c->state < CS_CLOSING) {
        close_now(c, 0, 1);
    }
}

void clink__conn_peer_host(const struct clink_conn *c, char *out, size_t cap)
{
    peer_host(c, out, cap);
}

int clink__conn_refusal_log_ok(struct clink_conn *c)
{
    return refusal_log_ok(c->w);
}

int clink__conn_mysql_tls(struct clink_conn *c)
{
    pthread_mutex_lock(&c->node->tls_mu);
    int ret = c->node->tls == NULL
                  ? -CLINK_EPLAINTEXT
                  : clink__tls_init(&c->tls, clink_tls_ctx_server(c->node->tls), 1, NULL, 0, &c->rx, &c->tx);
    pthread_mutex_unlock(&c->node->tls_mu);
    if (ret == -CLINK_EPLAINTEXT) {
        return ret;
    }
    if (ret == 0) {
        c->has_tls = 1; /* clink__tls_free cleans up from here, whatever happens next */
        ret = clink__tls_serve_other(&c->tls, "clink-mysql");
    }
    if (ret < 0) {
        return ret;
    }
    c->mode = CLINK_MODE_TLS;
    c->state = CS_HANDSHAKE; /* the ClientHello follows the SSL request: on_input steps the handshake */
    c->want = 5;
    return 0;
}

void clink__conn_mysql_opened(struct clink_conn *c)
{
    hs_release(c);
    c->state = CS_OPEN;
    c->exact = 0;
    clink__timers_del(&c->w->timers, &c->hs_timer);
    struct clink_conn_status *st = &c->cache;
    st->is_server = 1;
    st->mode = c->mode;
    st->mysql = 1;
    snprintf(st->peer_addr, sizeof(st->peer_addr), "%s", c->peer_str);
    snprintf(st->account, sizeof(st->account), "%s", c->account);
    if (c->has_tls) {
        clink__tls_status(&c->tls, st);
        snprintf(st->verified, sizeof(st->verified), "%s", st->peer_subject[0] ? "client-cert" : "none");
    } else {
        snprintf(st->verified, sizeof(st->verified), "none");
    }
    if (c->has_tls && c->ktls_mode != CLINK_KTLS_DISABLED) {
        /*
         * The client waits for our OK before it sends a command, so this
         * input ended at a record boundary: on_recv hands the connection to
         * the kernel after it (ktls_begin), as for a native HELLO.
         */
        c->ktls_try = 1;
        snprintf(st->ktls_reason, sizeof(st->ktls_reason), "hand-over pending");
        return;
    }
    clink__tls_wipe_secrets(&c->tls);
    snprintf(st->ktls_reason, sizeof(st->ktls_reason), "%s",
             !c->has_tls ? "plaintext connection" : "kTLS disabled by configuration");
    announce_open(c); /* counted as open; not announced to on_conn (statements, not calls) */
}

void clink__conn_apply_secure(struct clink_worker *w, enum clink_secure_transport state)
{
    for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
        if (c->https || c->state >= CS_CLOSING || c->state == CS_CONNECTING) {
            continue;
        }
        int plain = c->mode == CLINK_MODE_PLAIN;
        int banned = (state == CLINK_SECURE_REQUIRE_TLS && plain) || (state == CLINK_SECURE_PLAINTEXT && !plain);
        if (!banned || (c->state == CS_OPENING && c->is_server)) {
            continue; /* still classifying: the opening rule applies the new state */
        }
        CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: %s link closed gracefully: transport security is now %s", c->peer_str,
                       plain ? "plaintext" : "TLS", clink_secure_transport_name(state));
        clink__conn_begin_close(c, 0); /* an open link drains (GOAWAY); one still opening is refused */
    }
}

/*
 * TIMER_BUDGET: while the send budget is full, check it every 10 ms (nothing
 * else may wake the worker); and say how many refusals were not logged.
 */
void clink__conn_budget_tick(struct clink_worker *w)
{
    budget_relief(w, 1);
    uint64_t now = clink__now_ns();
    refusal_log_flush(w, now / 1000000000ull);
    if (w->budget_hit) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->budget_timer, now + BUDGET_CHECK_NS));
    } else if (w->refusal_dropped > 0) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->budget_timer, (now / 1000000000ull + 1) * 1000000000ull));
    }
}

void clink__conn_shown_name(const char *name, char *out, size_t cap)
{
    /* The name comes from the network: quotes or spaces in it must not shape our log lines or refusals. */
    size_t i = 0;
    for (; i + 1 < cap && name[i] != '\0'; i++) {
        char ch = name[i];
        out[i] = (ch == '\'' || ch == '\\' || ch == ' ' || ch == '@') ? '?' : ch;
    }
    out[i] = '\0';
}
