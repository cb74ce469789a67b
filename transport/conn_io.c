/*
 * A connection's bytes through its worker's ring: at most one recv and one
 * send in flight, reads sized to what is expected (exact during the
 * opening, small while idle, large while streaming), TLS records in and
 * out, and the completions that drive everything else.
 */
#include <errno.h>
#include <openssl/crypto.h>

#include "transport/conn_int.h"

#define STREAM_READ 65536 /* recv size once the handshake is done */
#define KEEP_IDLE   65536 /* buffers above this are released when empty */
#define IDLE_READ   512   /* recv size of a connection whose recent reads were all small */
#define SMALL_READ  4096  /* a read below this counts toward idle */
#define IDLE_AFTER  4     /* small reads in a row before a connection counts as idle */

/* Where a protocol's output goes: staged for encryption (TLS) or straight to the socket buffer. */
struct clink__bytes *clink__conn_out(struct clink_conn *c)
{
    return c->has_tls && !c->ktls_tx ? &c->ptx : &c->tx; /* with kTLS TX the kernel encrypts what we send */
}

/* Send what is left of txf: one plain send, or a gathering one when it has borrowed runs (conn_gather.c). */
static void submit_send(struct clink_conn *c)
{
    if (c->txfr.n > 0) {
        clink__conn_send_gather(c);
        return;
    }
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    io_uring_prep_send(sqe, c->fd, clink__bytes_data(&c->txf), clink__bytes_len(&c->txf), MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, clink__tag(c, OP_SEND));
    c->send_armed = 1;
    c->ops++;
}

/* Encrypt staged frames into tx. Returns 0, or -1 after failing the connection. */
int clink__conn_encrypt_pending(struct clink_conn *c)
{
    /* Waiting for kTLS TX: the staged frames go to the kernel as plaintext once OpenSSL's records have left. */
    while (c->has_tls && !c->ktls_tx && !c->ktls_tx_pending && clink__bytes_len(&c->ptx) > 0) {
        size_t n = clink__bytes_len(&c->ptx);
        if (n > CLINK_TLS_CHUNK * 4) {
            n = CLINK_TLS_CHUNK * 4;
        }
        int ret = clink__tls_write(c->tls, clink__bytes_data(&c->ptx), n);
        if (ret < 0) {
            clink__conn_fail(c, ret, "%s", c->tls->err);
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

void clink__conn_flush(struct clink_conn *c)
{
    if (c->state == CS_CLOSED || c->fd < 0) {
        return;
    }
    clink__conn_release_pending(c);
    if (c->ktls_tx_pending) {
        clink__conn_ktls_try_tx(c);
    }
    if (clink__conn_encrypt_pending(c) < 0) {
        return;
    }
    if (!c->send_armed && clink__bytes_len(&c->tx) > 0) {
        struct clink__bytes tmp = c->txf;
        c->txf = c->tx;
        c->tx = tmp;
        struct clink__txrefs rt = c->txfr; /* empty, like txf: its array is kept for tx */
        c->txfr = c->txr;
        c->txr = rt;
        submit_send(c);
    }
    if (c->state == CS_CLOSING && !c->send_armed) {
        clink__conn_finish_close(c);
    }
}

static void read_tls(struct clink_conn *c)
{
    c->proto->input(c, &c->prx); /* frames left behind at the kTLS hand-over point, if it fell back */
    for (;;) {
        if (c->ktls_try || c->state >= CS_CLOSING) {
            return;
        }
        if (clink__bytes_reserve(&c->prx, CLINK_TLS_CHUNK) < 0) {
            clink__conn_fail(c, -CLINK_ENOMEM, "out of memory");
            return;
        }
        int n = clink__tls_read(c->tls, c->prx.base + c->prx.tail, c->prx.cap - c->prx.tail);
        if (n == 0) {
            c->want = c->tls->want ? c->tls->want : 5; /* exact reads (HELLO phase before kTLS): what OpenSSL asks */
            return;
        }
        if (n < 0) {
            if (n == -CLINK_ECLOSED && c->proto->half_closed(c)) {
                /*
                 * close_notify after a request (TLS 1.3 half-close): the
                 * answer still goes out, and nothing more is read (OpenSSL
                 * would leave it all in rx, where a client could pile it up).
                 */
                c->rd_shut = 1;
                clink__bytes_consume(&c->rx, clink__bytes_len(&c->rx));
                return;
            }
            if (n == -CLINK_ECLOSED) {
                /* close_notify: orderly if we had nothing left to do, otherwise calls fail as closed. */
                if (c->state == CS_DRAINING && clink__conn_calls_in_flight(c) == 0) {
                    clink__conn_close_now(c, 0, 1);
                } else {
                    clink__conn_fail(c, -CLINK_ECLOSED, "peer closed the connection (close_notify)");
                }
            } else {
                clink__conn_fail(c, n, "%s", c->tls->err);
            }
            return;
        }
        c->prx.tail += (size_t)n;
        c->proto->input(c, &c->prx);
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
                clink__conn_classify(c);
            } else {
                clink__conn_greeting(c);
            }
            break;
        case CS_HANDSHAKE:
            if (clink__bytes_len(&c->rx) > 0) {
                clink__conn_step_handshake(c);
            }
            break;
        case CS_HELLO:
        case CS_OPEN:
        case CS_DRAINING:
            if (c->has_tls && !c->ktls_rx) {
                read_tls(c);
            } else {
                c->proto->input(c, &c->rx); /* plaintext, or decrypted by the kernel */
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

void clink__conn_arm_recv(struct clink_conn *c)
{
    if (c->recv_armed || c->state >= CS_CLOSING || c->state == CS_CONNECTING || c->fd < 0 || c->rd_shut) {
        return;
    }
    if (clink__conn_must_pause(c)) {
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
        clink__conn_fail(c, -CLINK_ENOMEM, "out of memory");
        return;
    }
    if (!c->exact) {
        n = c->rx.cap - c->rx.tail;
    }
    c->rx_req = c->exact ? 0 : n; /* a read that fills what was asked means more is coming */
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    io_uring_prep_recv(sqe, c->fd, c->rx.base + c->rx.tail, n, 0);
    io_uring_sqe_set_data(sqe, clink__tag(c, OP_RECV));
    c->recv_armed = 1;
    c->ops++;
}

static void on_recv(struct clink_conn *c, int res)
{
    c->recv_armed = 0;
    if (c->state >= CS_CLOSING) {
        if (res <= 0) {
            c->linger_eof = 1; /* the peer's FIN, or the connection is gone: a lingering close may end */
        }
        return; /* what arrives while closing is dropped */
    }
    if (res == -EIO && c->ktls_rx) {
        clink__conn_ktls_read_control(c); /* a record that is not application data: read it with its type */
        return;
    }
    if (res == -EBADMSG && c->ktls_rx) {
        /*
         * The kernel could not authenticate a record: it was changed on the
         * way (or the keys disagree). RFC 8446 6.2 asks for a bad_record_mac
         * alert, but the kernel has set the error on the socket (tls_err_abort)
         * and refuses every send after it: the peer sees the connection end.
         */
        clink__conn_fail(c, -CLINK_ETLS,
                         "a record from %s failed authentication (tampered or corrupted): connection aborted",
                         clink__conn_peer(c));
        return;
    }
    if (res == 0 && c->proto->half_closed(c)) {
        c->rd_shut = 1;
        return; /* the client shut its side after its request: its answer still goes out */
    }
    if (res <= 0) {
        if (res == 0) {
            int orderly = c->state == CS_DRAINING && clink__conn_calls_in_flight(c) == 0 && !c->has_tls;
            if (orderly) {
                clink__conn_close_now(c, 0, 1);
            } else {
                clink__conn_fail(c, -CLINK_ECLOSED, "%s closed the connection%s", clink__conn_peer(c),
                                 c->has_tls ? " without close_notify" : "");
            }
        } else {
            clink__conn_fail(c, clink__conn_lost_err(res), "recv from %s: %s", clink__conn_peer(c),
                             clink_strerror(res));
        }
        return;
    }
    /* Bytes the kernel wrote through io_uring are invisible to Valgrind: say they are defined. */
    CLINK_MARK_DEFINED(c->rx.base + c->rx.tail, (size_t)res);
    c->rx.tail += (size_t)res;
    c->small_reads = (size_t)res >= SMALL_READ ? 0 : c->small_reads + 1;
    c->rx_full = (size_t)res == c->rx_req; /* more is likely waiting: the next read gets a bigger buffer */
    c->last_read = (size_t)res;
    c->bytes_in += (uint64_t)res;
    STAT_ADD(c->w, bytes_in, (uint64_t)res);
    on_input(c);
    if (c->ktls_try && c->state == CS_OPEN) {
        clink__conn_ktls_begin(c); /* before the next recv: the kernel must see the stream from this record boundary */
        if (c->state < CS_CLOSING) {
            on_input(c); /* what arrived past the boundary (only if it fell back to user-space TLS) */
        }
    }
    if (clink__bytes_len(&c->tx) > 0) {
        clink__mark_dirty(c); /* the TLS handshake writes through the BIO, not through clink__conn_emit() */
    }
    if (c->state < CS_CLOSING) {
        if (c->exact && c->state == CS_OPEN) {
            c->exact = 0;
        }
        clink__conn_arm_recv(c);
        give_back(c);
    }
}

void clink__conn_send_failed(struct clink_conn *c, int res)
{
    clink__bytes_consume(&c->txf, clink__bytes_len(&c->txf));
    if (c->state < CS_CLOSING) {
        clink__conn_fail(c, clink__conn_lost_err(res), "send to %s: %s", clink__conn_peer(c), clink_strerror(res));
    }
    clink__conn_drop_borrowed(c, 1); /* after the failure: the streams that lent them have ended */
    clink__mark_dirty(c);
}

void clink__conn_sent(struct clink_conn *c, int res)
{
    c->bytes_out += (uint64_t)res;
    STAT_ADD(c->w, bytes_out, (uint64_t)res);
    if (c->state == CS_CLOSING && res > 0 && clink__now_ns() < c->linger_until) {
        /*
         * An answer may be large and its reader slow (HTTPS): the linger
         * bounds silence, and linger_until the whole, so a reader that takes
         * a byte now and then cannot hold the connection for ever.
         */
        CLINK_IGNORE(clink__timers_add(&c->w->timers, &c->hs_timer, clink__now_ns() + CLINK_LINGER_NS));
    }
    if (clink__conn_txf_left(c)) {
        submit_send(c); /* short send: the rest goes next */
        return;
    }
    give_back(c);
    if (c->ktls_tx_pending) {
        clink__conn_ktls_try_tx(c);
    }
    clink__mark_dirty(c);
    if (c->recv_paused) {
        clink__conn_arm_recv(c);
    }
    clink__conn_budget_relief(c->w, 0);
}

static void on_send(struct clink_conn *c, int res)
{
    c->send_armed = 0;
    if (res < 0) {
        clink__conn_send_failed(c, res);
        return;
    }
    if (c->txfr.n > 0) {
        clink__conn_gather_sent(c, (size_t)res);
    } else {
        clink__bytes_consume(&c->txf, (size_t)res);
    }
    clink__conn_sent(c, res);
}

void clink__conn_after_op(struct clink_conn *c)
{
    if (c->state == CS_CLOSING && !c->send_armed) {
        clink__conn_finish_close(c);
    }
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
        clink__conn_on_connect(c, res);
        break;
    case OP_SHUTDOWN:
        break;
    case OP_RECVMSG:
        clink__conn_ktls_on_control(c, res);
        break;
    case OP_SENDMSG:
        c->send_armed = 0;
        c->ktls_cn_pending = 0; /* sent or not, the connection is closing */
        break;
    case OP_CLOSE:
        clink__conn_closed(c);
        return;
    }
    clink__conn_after_op(c);
}
