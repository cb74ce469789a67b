/*
 * Our calls on a native connection: started (serialized at once, or
 * waiting unserialized for write-buffer room), answered, timed out,
 * canceled, or failed with the connection, each completed exactly once.
 */
#include "transport/frame.h"
#include "transport/native.h"

static int serialize_call(struct clink_conn *c, struct clink_call *call)
{
    c->nat->last_call_ns = c->w->now_ns; /* our streams' grants shrink while calls share the connection */
    if (call->priv.ping) {
        uint8_t payload[CLINK_PING_LEN] = {0};
        clink__put_u64(payload, call->priv.id);
        return clink__conn_emit(c, CLINK_FRAME_PING, 0, call->priv.id, NULL, 0, payload, sizeof(payload));
    }
    if (c->nat->version >= 2) {
        size_t len = 0;
        for (unsigned i = 0; i < call->iovcnt; i++) {
            len += call->iov[i].iov_len;
        }
        if (len > clink__chunk_max(c)) {
            /* In chunks, from the caller's buffers (borrowed until the callback), between other calls' frames. */
            return clink__outq_unary(c, CLINK_FRAME_REQUEST, call->method, call->priv.id, call->iov, call->iovcnt, NULL,
                                     len);
        }
    }
    return clink__conn_emit(c, CLINK_FRAME_REQUEST, call->method, call->priv.id, call->iov, call->iovcnt, NULL, 0);
}

/* Move calls that waited for write-buffer room into the output. */
void clink__conn_release_pending(struct clink_conn *c)
{
    if (c->proto != &clink__proto_native) {
        return; /* calls are native only */
    }
    clink__outq_pump(c); /* chunks first: they were waiting before these calls */
    uint32_t limit = c->node->opts.max_write_buffer;
    while (c->nat->pend_head != NULL && clink__conn_queued(c) < limit && !clink__worker_full(c->w)) {
        struct clink_call *call = c->nat->pend_head;
        c->nat->pend_head = call->priv.next;
        if (c->nat->pend_head == NULL) {
            c->nat->pend_tail = NULL;
        }
        call->priv.next = NULL;
        call->priv.state = CALL_SENT;
        int ret = serialize_call(c, call);
        if (ret < 0) {
            clink__idmap_del(&c->nat->calls, call->priv.id);
            clink__wheel_del(&c->w->wheel, &call->priv.timer);
            clink__call_finish(c->w, call, ret, NULL, 0);
        }
    }
}

void clink__call_finish(struct clink_worker *w, struct clink_call *call, int status, const uint8_t *p, size_t n)
{
    call->priv.state = 0;
    if (call->priv.start_ns != 0) {
        /* An application thread's clock read may be newer than this pass's: such a call took no time. */
        uint64_t took = w->now_ns > call->priv.start_ns ? w->now_ns - call->priv.start_ns : 0;
        unsigned b = clink_latency_bucket(took); /* once: STAT_ADD names its field twice */
        STAT_ADD(w, call_latency[b], 1);
    }
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
        /* Version 2 cuts a large message into chunks: what bounds it is the peer's max_message. */
        size_t max = c->nat->version >= 2
                         ? (c->nat->settings_recv ? c->nat->peer.max_message : CLINK_DEFAULT_MAX_MESSAGE)
                         : c->nat->peer_max_frame;
        if (len > max) {
            return -CLINK_EFRAMETOOBIG;
        }
    }
    return 0;
}

int clink__conn_start_call(struct clink_conn *c, struct clink_call *call, int inline_caller)
{
    int ret = clink__conn_check_call(c, call);
    call->priv.next = NULL;
    if (ret == 0 && (c->nat->pend_head != NULL || clink__conn_queued(c) >= c->node->opts.max_write_buffer ||
                     clink__worker_full(c->w))) {
        /* Bounded memory: the call's own struct waits in line, nothing is copied yet. */
        call->priv.state = CALL_PENDING;
    } else if (ret == 0) {
        call->priv.state = CALL_SENT;
        ret = serialize_call(c, call);
    }
    if (ret == 0 && clink__idmap_put(&c->nat->calls, call->priv.id, call) < 0) {
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
        if (c->nat->pend_tail) {
            c->nat->pend_tail->priv.next = call;
        } else {
            c->nat->pend_head = call;
        }
        c->nat->pend_tail = call;
    }
    STAT_ADD(c->w, calls_started, 1);
    clink__timer_init(&call->priv.timer, TIMER_CALL);
    if (call->timeout_ms > 0) {
        /* No clock read per call: the worker's next read stamps it, and that read comes after this start. */
        clink__wheel_add(&c->w->wheel, &call->priv.timer, (uint64_t)call->timeout_ms * 1000000ull);
    }
    return 0;
}

static void unlink_pending(struct clink_conn *c, struct clink_call *call)
{
    struct clink_call **pp = &c->nat->pend_head;
    struct clink_call *prev = NULL;
    while (*pp != NULL && *pp != call) {
        prev = *pp;
        pp = &(*pp)->priv.next;
    }
    if (*pp == call) {
        *pp = call->priv.next;
        if (c->nat->pend_tail == call) {
            c->nat->pend_tail = prev;
        }
    }
    call->priv.next = NULL;
}

/* Take a call out of the connection's books (it is about to complete). */
void clink__conn_detach_call(struct clink_conn *c, struct clink_call *call)
{
    clink__idmap_del(&c->nat->calls, call->priv.id);
    clink__wheel_del(&c->w->wheel, &call->priv.timer);
    if (call->priv.state == CALL_PENDING) {
        unlink_pending(c, call);
    }
    if (c->nat->ready_head != NULL || c->nat->wait_head != NULL) {
        /*
         * A request still going out in chunks borrows the caller's buffers:
         * it stops here. If part of it left, CANCEL tells the peer to drop
         * what it gathered (and give its credit back).
         */
        if (clink__outq_drop_unary(c, call->priv.id) && c->state <= CS_DRAINING) {
            CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_CANCEL, 0, call->priv.id, NULL, 0, NULL, 0) < 0);
        }
    }
    /* An answer half gathered is not dropped here: its last chunk completes it (then dropped), so credit balances. */
}

void clink__conn_cancel_call(struct clink_conn *c, uint64_t id, int defer)
{
    struct clink_call *call = clink__idmap_get(&c->nat->calls, id);
    if (call == NULL) {
        return; /* already completed */
    }
    int sent = call->priv.state == CALL_SENT;
    clink__conn_detach_call(c, call);
    if (sent && c->state <= CS_DRAINING) {
        /* Advisory: the peer may skip the work; its answer, if any, is dropped here. */
        CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_CANCEL, 0, id, NULL, 0, NULL, 0) < 0);
    }
    if (defer) {
        /*
         * Off the books now (a response arriving meanwhile is dropped as
         * unknown, a connection loss no longer sees it), completed from the
         * loop: a caller holding a lock or in the middle of its own state
         * never sees its callback run inside clink_call_cancel (libuv's rule).
         */
        call->priv.next = NULL;
        atomic_fetch_add(&c->refs, 1);
        if (c->w->canceled_tail != NULL) {
            c->w->canceled_tail->priv.next = call;
        } else {
            c->w->canceled = call;
        }
        c->w->canceled_tail = call;
    } else {
        clink__call_finish(c->w, call, -CLINK_ECANCELED, NULL, 0);
    }
    clink__conn_maybe_drained(c);
}

void clink__worker_run_canceled(struct clink_worker *w)
{
    /* Take the list first: a callback may cancel more, which the next pass runs. */
    struct clink_call *call = w->canceled;
    w->canceled = w->canceled_tail = NULL;
    while (call != NULL) {
        struct clink_call *next = call->priv.next;
        struct clink_conn *c = call->priv.conn;
        call->priv.next = NULL;
        clink__call_finish(w, call, -CLINK_ECANCELED, NULL, 0);
        clink__conn_put(c);
        call = next;
    }
}

/* Fail every call we own on this connection. */
void clink__conn_fail_calls(struct clink_conn *c, int err)
{
    if (c->nat->calls.count == 0) {
        return;
    }
    /*
     * Take the whole table out of the books first (callbacks may start calls,
     * which the closing connection refuses), then walk the detached slots:
     * no allocation, so no call can be lost to an out-of-memory.
     */
    struct clink__idmap old = c->nat->calls;
    clink__idmap_init(&c->nat->calls);
    c->nat->pend_head = c->nat->pend_tail = NULL;
    for (size_t i = 0; i <= old.mask; i++) {
        if (old.slots[i].key != 0) {
            struct clink_call *call = old.slots[i].val;
            clink__wheel_del(&c->w->wheel, &call->priv.timer);
            call->priv.next = NULL;
            /*
             * After the peer's GOAWAY, a request above the last id it had
             * seen was on the wire when it closed: it never ran there, so
             * it fails as safe to retry (pools send it again), not as lost.
             */
            int e = err == -CLINK_ECLOSED && c->nat->goaway_recv && old.slots[i].key > c->nat->goaway_last
                        ? -CLINK_EGOAWAY
                        : err;
            clink__call_finish(c->w, call, e, NULL, 0);
        }
    }
    clink__idmap_free(&old);
}

/* The peer's GOAWAY: calls not yet written were never seen by the peer: they fail as safe to retry. */
void clink__conn_goaway_pending(struct clink_conn *c)
{
    while (c->nat->pend_head != NULL) {
        struct clink_call *call = c->nat->pend_head;
        clink__conn_detach_call(c, call);
        clink__call_finish(c->w, call, -CLINK_EGOAWAY, NULL, 0);
    }
}
