/*
 * Memory a peer can make a worker hold: each connection's send queue is
 * bounded (max_write_buffer), and all of a worker's together (its share of
 * max_buffered). Past either, reads of the peer's requests pause and our
 * new calls wait unserialized, until sends drain it.
 */
#include "transport/native.h"

#define BUDGET_CHECK_NS (10 * 1000000ull)

size_t clink__conn_queued(const struct clink_conn *c)
{
    /* Borrowed runs count too: the caller's memory, but bytes this connection has yet to send. */
    return clink__bytes_len(&c->ptx) + clink__bytes_len(&c->tx) + clink__bytes_len(&c->txf) + c->txr.bytes +
           c->txfr.bytes;
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

/*
 * The worker's send buffers (all its connections') are at its share of
 * max_buffered: hold back what would add to them until they are below 7/8
 * of it (budget_relief, at each send and close and every 10 ms meanwhile).
 */
int clink__worker_full(struct clink_worker *w)
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

/*
 * Backpressure: stop reading while what we owe the peer (answers, PONGs)
 * exceeds the write budget, or while its requests fill our handlers. A peer
 * that sends without reading then stalls itself, not our memory.
 * A side with its own calls in flight keeps reading up to a hard cap: those
 * answers are what drains both queues, and two sides that both stopped
 * reading would wait for each other forever. Our own requests never count
 * much here: beyond the budget they wait, unserialized, in the pending list.
 */
int clink__conn_must_pause(const struct clink_conn *c)
{
    if (c->exact) {
        return 0;
    }
    size_t limit = c->node->opts.max_write_buffer;
    size_t hard = 4 * limit + 2 * (size_t)c->node->opts.max_frame;
    size_t q = clink__conn_queued(c);
    /*
     * Over the worker's budget, as over our own limit: only open connections
     * pause (a HELLO is always read), and not those waiting for our calls'
     * answers.
     */
    return c->nreqs >= c->node->opts.max_requests_per_conn || (q > limit && clink__conn_calls_in_flight(c) == 0) ||
           q > hard || (c->state >= CS_OPEN && clink__conn_calls_in_flight(c) == 0 && clink__worker_full(c->w));
}

/*
 * Back under 7/8 of the worker's budget: re-arm the reads and calls it held
 * back, on every connection. deep: give back empty buffers first (the
 * 10 ms check; sends and closes look only at the count).
 */
void clink__conn_budget_relief(struct clink_worker *w, int deep)
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
        if (c->proto == &clink__proto_native && c->nat->pend_head != NULL) {
            clink__conn_release_pending(c);
            clink__mark_dirty(c);
        }
        if (c->recv_paused) {
            clink__conn_arm_recv(c);
        }
    }
}

/*
 * TIMER_BUDGET: while the send budget is full, check it every 10 ms (nothing
 * else may wake the worker); and say how many refusals were not logged.
 */
void clink__conn_budget_tick(struct clink_worker *w)
{
    clink__conn_budget_relief(w, 1);
    uint64_t now = clink__now_ns();
    clink__refusal_log_flush(w, now / 1000000000ull);
    if (w->budget_hit) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->budget_timer, now + BUDGET_CHECK_NS));
    } else if (w->refusal_dropped > 0) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->budget_timer, (now / 1000000000ull + 1) * 1000000000ull));
    }
}
