/*
 * Ending a connection: failing it with a reason (logged, bounded so an
 * unauthenticated peer cannot flood the log), draining it after a GOAWAY,
 * the orderly close (close_notify, shutdown, close through the ring) and
 * the cut-off of a peer that stops reading.
 */
#include <errno.h>
#include <stdio.h>

#include "transport/conn_int.h"
#include "transport/ktls.h"

/*
 * Refusals (failed handshakes, denied logins) are logged at WARN, but an
 * unauthenticated peer must not be able to flood the log: at most
 * REFUSAL_LOG_PER_S lines per worker per second, and how many were left out
 * is said with the next one logged. The counters (conns_refused,
 * handshakes_failed, logins_denied) count them all.
 */
#define REFUSAL_LOG_PER_S 10

static void set_error(struct clink_conn *c, int err, const char *fmt, va_list ap)
{
    if (c->err != 0) {
        return;
    }
    c->err = err;
    vsnprintf(c->cache.last_error_text, sizeof(c->cache.last_error_text), fmt, ap);
}

/* Say how many refusals were left out, once their second is over. */
void clink__refusal_log_flush(struct clink_worker *w, uint64_t sec)
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
        clink__refusal_log_flush(w, sec);
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
void clink__conn_close_now(struct clink_conn *c, int err, int keep_output)
{
    int old = c->state;
    int was_open = c->was_open; /* announced to the application (a kTLS hand-over may still refuse it) */
    c->state = CS_CLOSING;
    clink__conn_hs_release(c);
    atomic_store(&c->open, 0);
    if (err != 0 && err != -CLINK_ESHUTDOWN && c->cache.last_error_text[0]) {
        /* A refused handshake is a security event: the operator sees why without -v. Logins log their own. */
        int refused = !was_open && c->is_server && err != -CLINK_EACCESS && clink_err_kind_of(err) == CLINK_KIND_TLS;
        if (!refused) {
            CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: %s", clink__conn_peer(c), c->cache.last_error_text);
        } else if (clink__conn_refusal_log_ok(c)) {
            CLINK_CONN_LOG(c, CLINK_LOG_WARN, "%s: %s", clink__conn_peer(c), c->cache.last_error_text);
        }
    }
    if (c->proto->ended != NULL) {
        c->proto->ended(c, err ? (c->err ? c->err : err) : -CLINK_ECLOSED);
    }
    clink__conn_orphan_reqs(c);
    if (!c->proto->link) {
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
            if (c->node->opts.on_conn && c->proto->app) { /* MySQL clients are not on_conn's (mysql.c) */
                c->node->opts.on_conn(c, CLINK_CONN_REFUSED, status, c->node->opts.on_conn_user);
            }
        } else if (c->connect_cb) {
            clink_connect_cb cb = c->connect_cb;
            c->connect_cb = NULL;
            cb(NULL, status, c->cache.last_error_text[0] ? c->cache.last_error_text : clink_strerror(status),
               c->connect_user);
        }
    } else if (c->is_server && c->node->opts.on_conn && c->proto->app) {
        c->node->opts.on_conn(c, CLINK_CONN_CLOSED, err, c->node->opts.on_conn_user);
    }
    if (c->ktls_tx_pending) {
        /* Closing before the send side was handed over: OpenSSL keeps it, and says close_notify. */
        c->ktls_tx_pending = 0;
        clink__tls_wipe_secrets(c->tls);
    }
    if (err == 0 && c->has_tls && c->ktls_tx) {
        c->ktls_cn_pending = 1; /* sent as an alert record once the queued frames are out (finish_close) */
    } else if (err == 0 && c->has_tls) {
        /* close_notify must follow the frames still staged (GOAWAY, last answers), not overtake them. */
        if (clink__conn_encrypt_pending(c) == 0) {
            clink__tls_close_notify(c->tls);
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
    /*
     * An orderly close lingers: our side is shut for writing once the last
     * bytes are out, and what the peer still sends (credit, pings, a request
     * that crossed our GOAWAY) is read and dropped until its own FIN. Closing
     * with unread bytes would send an RST, and an RST can destroy what we
     * sent before it that the peer has not read yet (a stream's last data).
     */
    c->linger_read = err == 0 && c->fd >= 0;
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
    if (clink_err_kind_of(err) == CLINK_KIND_PROTO) {
        STAT_ADD(c->w, protocol_errors, 1);
    }
    clink__conn_close_now(c, err, keep_output);
}

int clink__conn_lost_err(int res)
{
    switch (-res) {
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ENOTCONN:
    case ETIMEDOUT: /* keepalive probes went unanswered */
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETRESET:
    case ENETDOWN:
    case EHOSTDOWN:
        return -CLINK_ECLOSED;
    default:
        return res;
    }
}

void clink__conn_fail(struct clink_conn *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, err, 0, fmt, ap);
    va_end(ap);
}

void clink__conn_refuse(struct clink_conn *c, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, err, 1, fmt, ap);
    va_end(ap);
}

/* A connection stuck in CLOSING (a peer that stopped reading) is cut off. */
void clink__conn_force_close(struct clink_conn *c)
{
    clink__conn_drop_borrowed(c, 0); /* txf's runs may be in a send still: let go when it completes */
    clink__bytes_consume(&c->tx, clink__bytes_len(&c->tx));
    clink__bytes_consume(&c->ptx, clink__bytes_len(&c->ptx));
    if (c->fd >= 0 && (!c->shutdown_done || (c->linger_read && !c->linger_eof))) {
        /* Both directions now: a recv lingering for the peer's FIN completes at once. */
        c->shutdown_done = 1;
        c->linger_read = 0;
        struct io_uring_sqe *sqe = clink__sqe(c->w);
        io_uring_prep_shutdown(sqe, c->fd, SHUT_RDWR);
        io_uring_sqe_set_data(sqe, clink__tag(c, OP_SHUTDOWN));
        c->ops++;
    }
}

void clink__conn_begin_close(struct clink_conn *c, int err)
{
    if (c->state >= CS_CLOSING) {
        if (err == -CLINK_ECLOSED && c->state == CS_CLOSING) {
            clink__conn_force_close(c); /* the linger after a drain deadline is over */
        }
        return;
    }
    if (err != 0) {
        clink__conn_fail(c, err, "%s", clink_strerror(err));
        return;
    }
    if (c->state < CS_OPEN) {
        clink__conn_fail(c, c->w->stopping ? -CLINK_ESHUTDOWN : -CLINK_ECLOSED, "closed before the connection opened");
        return;
    }
    if (!c->proto->closing(c)) {
        clink__conn_close_now(c, 0, 1); /* said goodbye in its protocol (a MySQL error), nothing to drain */
        return;
    }
    c->state = CS_DRAINING;
    atomic_store(&c->open, 0);
    clink__conn_maybe_drained(c);
}

void clink__conn_maybe_drained(struct clink_conn *c)
{
    if (c->state == CS_DRAINING && clink__conn_calls_in_flight(c) == 0 && c->nreqs == 0) {
        clink__conn_close_now(c, 0, 1);
    }
}

void clink__conn_finish_close(struct clink_conn *c)
{
    if (c->send_armed || clink__bytes_len(&c->tx) > 0 || clink__bytes_len(&c->ptx) > 0) {
        return; /* the last bytes (close_notify, a refusal) go out first; on_send brings us back */
    }
    if (c->ktls_cn_pending && c->fd >= 0 && !c->shutdown_done) {
        clink__conn_ktls_send_close_notify(c);
        return;
    }
    if (!c->shutdown_done) {
        /* Shut the socket down through the ring: a pending recv then completes (unless we linger) and we can close. */
        c->shutdown_done = 1;
        struct io_uring_sqe *sqe = clink__sqe(c->w);
        io_uring_prep_shutdown(sqe, c->fd, c->linger_read ? SHUT_WR : SHUT_RDWR);
        io_uring_sqe_set_data(sqe, clink__tag(c, OP_SHUTDOWN));
        c->ops++;
        return;
    }
    if (c->linger_read && !c->linger_eof) {
        /* Read and drop until the peer's FIN; the linger timer (hs_timer) bounds the wait. */
        if (!c->recv_armed && c->fd >= 0 && clink__bytes_reserve(&c->rx, 4096) == 0) {
            clink__bytes_consume(&c->rx, clink__bytes_len(&c->rx));
            struct io_uring_sqe *sqe = clink__sqe(c->w);
            io_uring_prep_recv(sqe, c->fd, c->rx.base + c->rx.tail, c->rx.cap - c->rx.tail, 0);
            io_uring_sqe_set_data(sqe, clink__tag(c, OP_RECV));
            c->recv_armed = 1;
            c->ops++;
            return;
        }
        if (c->recv_armed) {
            return;
        }
        c->linger_eof = 1; /* no buffer to read into: close now */
    }
    if (c->ops == 0 && c->fd >= 0) {
        uint64_t seq; /* the kernel's record counts, while its socket still answers */
        if (c->ktls_rx && clink__ktls_rec_seq(c->fd, 0, &seq) == 0) {
            c->cache.records_in = seq;
        }
        if (c->ktls_tx && clink__ktls_rec_seq(c->fd, 1, &seq) == 0) {
            c->cache.records_out = seq;
        }
        struct io_uring_sqe *sqe = clink__sqe(c->w);
        io_uring_prep_close(sqe, c->fd);
        io_uring_sqe_set_data(sqe, clink__tag(c, OP_CLOSE));
        c->fd = -1;
        c->ops++;
    }
}

void clink__conn_closed(struct clink_conn *c)
{
    struct clink_worker *w = c->w;
    clink__timers_del(&w->timers, &c->hs_timer);
    if (c->was_open) {
        STAT_ADD(w, conns_open, (uint64_t)-1);
    }
    clink__conn_limits_release(c); /* its slot is free once its descriptor is */
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
    if (c->tls != NULL) {
        /* The directions OpenSSL kept (the kernel's were counted in clink__conn_finish_close). */
        if (!c->ktls_rx) {
            c->cache.records_in = c->tls->rec_in;
        }
        if (!c->ktls_tx) {
            c->cache.records_out = c->tls->rec_out;
        }
    }
    clink__conn_tls_free(c);
    c->has_tls = 0;
    c->cache.last_error = c->err;
    clink__bytes_free(&c->rx);
    clink__bytes_free(&c->prx);
    clink__bytes_free(&c->ptx);
    clink__conn_free_borrowed(c); /* no send in flight now: the lenders get their buffers back */
    clink__bytes_free(&c->tx);
    clink__bytes_free(&c->txf);
    clink__conn_put(c);              /* the worker's reference */
    clink__conn_budget_relief(w, 0); /* a peer that stopped reading may have held most of the budget */
}

int clink__conn_refusal_log_ok(struct clink_conn *c)
{
    return refusal_log_ok(c->w);
}

void clink__conn_legacy_login(struct clink_conn *c)
{
    STAT_ADD(c->w, logins_legacy_native_tls, 1);
    /* Every one, at WARN: the operator opted in and should see how often the relayable form is still used. */
    if (clink__conn_refusal_log_ok(c)) {
        CLINK_CONN_LOG(c, CLINK_LOG_WARN,
                       "%s: %s logged in with an unbound mysql_native_password answer inside TLS "
                       "(legacy_native_tls): a server the client did not verify could have relayed it",
                       clink__conn_peer(c), c->cache.account);
    }
}

void clink__conn_close_orderly(struct clink_conn *c)
{
    if (c->state < CS_CLOSING) {
        clink__conn_close_now(c, 0, 1);
    }
}
