/*
 * wait_timeout (docs/config.md): a logged-in client session that stays idle
 * that long is closed, so idle sessions cannot hold the node's slots and
 * descriptors for ever. Node links are exempt (pools ping theirs).
 *
 * No clock on the data path: while a worker has client sessions, a sweep
 * every quarter of wait_timeout (at most a minute) compares each session's
 * byte counters with what it saw the time before. A session whose counters
 * have not moved, with nothing in flight, since a sweep at least
 * wait_timeout ago is closed gracefully. Activity is seen late by up to a
 * period, never early: a session is never closed sooner than wait_timeout
 * after its last bytes.
 */
#include "transport/conn_int.h"

#define SWEEP_MAX_NS (60ull * 1000000000ull)

static uint64_t sweep_period(const struct clink_node *n)
{
    uint64_t p = (uint64_t)n->opts.wait_timeout_s * 1000000000ull / 4;
    return p < SWEEP_MAX_NS ? p : SWEEP_MAX_NS;
}

static uint64_t activity(const struct clink_conn *c)
{
    return c->bytes_in + c->bytes_out;
}

/* Calls or requests in flight, or bytes still to send: waiting on us or on the network, not idle. */
static int busy(const struct clink_conn *c)
{
    return c->nreqs > 0 || clink__conn_calls_in_flight(c) > 0 || clink__conn_queued(c) > 0;
}

void clink__conn_idle_watch(struct clink_conn *c)
{
    struct clink_worker *w = c->w;
    c->idle_mark = activity(c);
    c->idle_since = clink__now_ns();
    if (w->idle_timer.idx == CLINK_TIMER_NONE) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->idle_timer, c->idle_since + sweep_period(c->node)));
    }
}

void clink__conn_idle_sweep(struct clink_worker *w)
{
    uint64_t now = clink__now_ns();
    uint64_t limit = (uint64_t)w->node->opts.wait_timeout_s * 1000000000ull;
    for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
        if (c->session != SESSION_CLIENT || c->state != CS_OPEN) {
            continue;
        }
        uint64_t mark = activity(c);
        if (mark != c->idle_mark || busy(c)) {
            c->idle_mark = mark;
            c->idle_since = now;
            continue;
        }
        if (now - c->idle_since < limit) {
            continue;
        }
        CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: %s idle for %u s (wait_timeout): closed", clink__conn_peer(c),
                       c->cache.account[0] ? c->cache.account : "''", w->node->opts.wait_timeout_s);
        STAT_ADD(w, idle_closed, 1);
        c->idle_closing = 1;
        clink__conn_begin_close(c, 0); /* native: GOAWAY (nothing in flight: closes at once); MySQL: error 4031 */
    }
    if (w->client_sessions > 0 && !w->stopping) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->idle_timer, now + sweep_period(w->node)));
    }
}
