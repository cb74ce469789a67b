/*
 * The maintenance tick: what the cluster's manager thread does to one pool
 * each pass (pool/cluster.c calls clink__pool_tick every TICK_MS, or sooner
 * when kicked). Each policy is one function below; the tick runs them in a
 * fixed order, and the order matters: links are marked spent before the
 * pass, broken links are retired before anything counts them, spent links
 * are replaced before idle ones are trimmed, and waiting calls are served
 * before growth decides whether they still need a dial.
 *
 * Everything but the limit checks runs under the pool's mutex; connections
 * retired during the pass are closed, and waiting calls that failed are
 * completed, only after it is released.
 */
#include "pool/pool_int.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/*
 * Connections to close once the pool's mutex is released: closing may wait
 * for room in a worker's inbox, and that worker may be waiting for the mutex
 * (a dial completing). Nothing that can wait on a worker runs under it.
 */
struct closing {
    struct clink_conn *c[MAX_SLOTS];
    int n;
};

/* One pass over one pool: what the slot survey found, for the policies after it. */
struct tick {
    uint64_t now;
    int removed;
    int open;            /* serving links, spent ones not counted until the recycle policy adds them */
    int connecting;      /* dials in flight */
    int busy;            /* every serving link is at least 3/4 full */
    int recycle_pending; /* some open link is spent */
    struct closing closing;
};

static void on_ping(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)resp;
    (void)len;
    struct slot *s = call->user;
    if (status != 0) {
        atomic_fetch_add(&s->pool->pings_failed, 1);
        atomic_store(&s->dead, 1);
        clink__pool_log(s->pool, CLINK_LOG_WARN, "connection %llu failed a ping: %s", (unsigned long long)s->idx,
                        clink_strerror(status));
        clink__cluster_kick(s->pool->cl);
    }
    atomic_store(&s->ping_busy, 0);
}

/* Stop new calls on s; its connection closes once no caller is between reading it and starting a call. */
static void retire(struct clink_pool *p, struct slot *s, const char *why, struct closing *out)
{
    clink__pool_log(p, CLINK_LOG_INFO, "retiring connection in slot %d: %s", s->idx, why);
    struct clink_conn *conn = atomic_exchange(&s->conn, NULL);
    atomic_store(&s->state, SLOT_RETIRING);
    while (atomic_load(&s->users) > 0) {
        sched_yield();
    }
    if (conn != NULL) {
        out->c[out->n++] = conn;
    }
}

/* Callers stamp last use with their own clock reading, which may be later than the manager's `now`. */
static uint64_t idle_ns(struct slot *s, uint64_t now)
{
    uint64_t last = atomic_load(&s->last_used_ns);
    return last >= now ? 0 : now - last;
}

/* ---- before the pass, without the mutex: which links are spent ---- */

/*
 * Transport security moved (clink_node_set_secure_transport): a link in the
 * other mode is replaced at once, by the rolling recycle below, so the pool
 * keeps serving through the change. Returns 1 if s was marked.
 */
static int mark_wrong_mode(struct slot *s, struct clink_conn *conn, int plain)
{
    if (atomic_load(&s->state) == SLOT_OPEN && conn != NULL && !atomic_load(&s->recycle) &&
        clink_conn_plaintext(conn) != plain) {
        atomic_store(&s->recycle, 2);
        return 1;
    }
    return 0;
}

/*
 * Key-usage and age limits: a link that has carried recycle_records records
 * either way (RFC 8446 5.5 bounds records per AES-GCM key) or lived
 * recycle_age_ms is replaced. Asked about once a second per link, since the
 * status call is a round trip to the link's worker.
 */
static void mark_spent(struct clink_pool *p, struct slot *s, struct clink_conn *conn, uint64_t now)
{
    if (atomic_load(&s->state) != SLOT_OPEN || conn == NULL || atomic_load(&s->recycle) ||
        now - atomic_load(&s->checked_ns) < 1000000000ull || now < atomic_load(&s->checked_ns)) {
        return;
    }
    atomic_store(&s->checked_ns, now);
    struct clink_conn_status cs;
    if (clink_conn_get_status(conn, &cs) == 0 &&
        (cs.records_in >= p->o.recycle_records || cs.records_out >= p->o.recycle_records ||
         (p->o.recycle_age_ms && now - atomic_load(&s->opened_ns) >= (uint64_t)p->o.recycle_age_ms * 1000000ull))) {
        atomic_store(&s->recycle, 1);
    }
}

/*
 * Runs without the pool's mutex: the status call waits for the connection's
 * worker, which may be waiting for the mutex to complete a dial (the
 * deadlock of 68aafd7). Only the manager retires connections, so conn stays
 * valid here.
 */
static void check_limits(struct clink_pool *p, uint64_t now)
{
    int plain = clink_node_dial_plaintext(p->cl->o.node, p->co.mode, p->co.ssl_mode);
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        struct slot *s = &p->slots[i];
        struct clink_conn *conn = atomic_load(&s->conn);
        if (mark_wrong_mode(s, conn, plain)) {
            continue;
        }
        mark_spent(p, s, conn, now);
    }
}

/* ---- the slot survey: per slot, in slot order ---- */

/*
 * A retiring slot is reused only once no call, caller or ping still touches
 * it; the new generation tells late completions of its old link to leave
 * the slot alone.
 */
static void reuse_if_drained(struct slot *s)
{
    if (atomic_load(&s->inflight) == 0 && atomic_load(&s->users) == 0 && !atomic_load(&s->ping_busy)) {
        atomic_fetch_add(&s->gen, 1);
        atomic_store(&s->state, SLOT_EMPTY);
    }
}

/*
 * A link whose peer was removed, that a call, ping or read saw fail, or that
 * the transport closed takes no new calls: callers fail over to another link
 * (or wait for a redial) instead of timing out on a dead one. Returns 1 if
 * it retired s.
 */
static int retire_if_broken(struct clink_pool *p, struct slot *s, struct clink_conn *conn, struct tick *t)
{
    if (t->removed || atomic_load(&s->dead) || !clink_conn_is_open(conn)) {
        retire(p, s,
               t->removed              ? "peer removed"
               : atomic_load(&s->dead) ? "connection failed (a call, ping or read)"
                                       : "connection closed",
               &t->closing);
        return 1;
    }
    return 0;
}

/*
 * Health checks. A link idle for ping_interval_ms (and not pinged for as
 * long: pings do not count as use, so idle extras still age out) is pinged,
 * so a dead peer is found before a call needs it; a call that missed its
 * deadline asks for a ping at once (probe), to tell a slow handler from a
 * dead peer. Spent links are still pinged and probed: one to a dead peer
 * must not keep the pool "up". Returns -1 if the ping could not even start
 * (the link is now dead), else 0.
 */
static int ping_if_due(struct clink_pool *p, struct slot *s, struct clink_conn *conn, uint64_t now, uint64_t idle,
                       int inflight)
{
    uint64_t since_ping = now - atomic_load(&s->last_ping_ns);
    if ((atomic_load(&s->probe) || (inflight == 0 && idle >= (uint64_t)p->o.ping_interval_ms * 1000000ull &&
                                    since_ping >= (uint64_t)p->o.ping_interval_ms * 1000000ull)) &&
        !atomic_load(&s->ping_busy)) {
        atomic_store(&s->probe, 0);
        atomic_store(&s->ping_busy, 1);
        s->ping = (struct clink_call){.timeout_ms = p->o.ping_timeout_ms, .cb = on_ping, .user = s};
        int pr = clink_conn_ping(conn, &s->ping);
        if (pr != 0) {
            atomic_store(&s->ping_busy, 0);
            if (pr != -CLINK_EAGAIN) { /* a full inbox is the worker being busy, not the peer being dead */
                atomic_store(&s->dead, 1);
                return -1;
            }
        }
        atomic_store(&s->last_ping_ns, now);
    }
    return 0;
}

/*
 * One walk over the slots, applying the per-slot policies in this order and
 * counting what serves. A slot retired or found dead here is not counted; a
 * spent one is counted by the recycle policy, once it knows whether a
 * replacement is open.
 */
static void survey(struct clink_pool *p, struct tick *t)
{
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        struct slot *s = &p->slots[i];
        int st = atomic_load(&s->state);
        if (st == SLOT_RETIRING) {
            reuse_if_drained(s);
            continue;
        }
        if (st == SLOT_CONNECTING) {
            t->connecting++;
            continue;
        }
        if (st != SLOT_OPEN) {
            continue;
        }
        struct clink_conn *conn = atomic_load(&s->conn);
        if (retire_if_broken(p, s, conn, t)) {
            continue;
        }
        uint64_t idle = idle_ns(s, t->now);
        int inflight = atomic_load(&s->inflight);
        if (ping_if_due(p, s, conn, t->now, idle, inflight) < 0) {
            continue;
        }
        if (atomic_load(&s->recycle)) {
            t->recycle_pending = 1;
            continue;
        }
        t->open++;
        if (inflight * 4 < (int)p->o.max_calls_per_conn * 3) {
            t->busy = 0;
        }
    }
}

/* ---- pool-wide policies, after the survey ---- */

/*
 * Recycling, rolling: a spent connection (record or age limit, or the
 * wrong mode after a transport-security change) keeps serving while a
 * replacement is dialled; one spent connection is retired per pass, and
 * only once a good one is open, no dial is in flight (the replacement
 * has opened) and min_conns stay serving. When a change spends every
 * connection at once, the pool serves with at most one less than before
 * while they are replaced one by one (7089739: retired all at once, a pool
 * of four fell to one; 018d084: retiring the next before the last one's
 * replacement had opened, it still fell to two). If every slot holds a spent
 * connection, one is retired to make room.
 * Returns the number of links wanted, raised by one for the replacement.
 */
static int recycle_rolling(struct clink_pool *p, struct tick *t, int want)
{
    if (!t->recycle_pending) {
        p->recycle_debt = 0;
        return want;
    }
    int spent = 0, room = 0;
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        int st = atomic_load(&p->slots[i].state);
        spent += st == SLOT_OPEN && atomic_load(&p->slots[i].recycle);
        room += st == SLOT_EMPTY || st == SLOT_RETIRING; /* a retiring slot is room soon: never make more */
    }
    int floor = p->o.min_conns > 1 ? (int)p->o.min_conns : 1;
    int make_room = room == 0 && t->connecting == 0;
    for (unsigned i = 0; i < p->o.max_conns && spent > 0; i++) {
        struct slot *s = &p->slots[i];
        if (atomic_load(&s->state) != SLOT_OPEN || !atomic_load(&s->recycle)) {
            continue;
        }
        /* With max_conns 1 there is no room for a replacement: retire, and calls wait briefly for the redial. */
        /* Not while a link retired here still waits for its replacement to open. */
        int covered = t->open > 0 && p->recycle_debt == 0 && t->open + spent - 1 >= floor;
        if (covered || make_room || p->o.max_conns == 1) {
            spent--;
            p->recycle_debt++;
            atomic_fetch_add(&p->recycles, 1);
            retire(p, s,
                   atomic_load(&s->recycle) == 2 ? "recycled (transport security changed its mode)"
                                                 : "recycled (record or age limit)",
                   &t->closing);
            break; /* one per pass: the next waits for its replacement */
        }
    }
    if (spent > 0) {
        t->open += spent; /* they serve until replaced */
        want = want > t->open + 1 ? want : t->open + 1;
    }
    return want;
}

/*
 * Idle extras above min_conns close after idle_timeout_ms, so a burst's
 * growth does not hold links (and the peer's memory) for ever. Spent links
 * are left to the recycle policy.
 */
static void trim_idle(struct clink_pool *p, struct tick *t)
{
    for (unsigned i = 0; i < p->o.max_conns && t->open > (int)p->o.min_conns; i++) {
        struct slot *s = &p->slots[i];
        if (atomic_load(&s->state) == SLOT_OPEN && atomic_load(&s->inflight) == 0 && !atomic_load(&s->recycle) &&
            idle_ns(s, t->now) >= (uint64_t)p->o.idle_timeout_ms * 1000000ull) {
            retire(p, s, "idle", &t->closing);
            t->open--;
        }
    }
}

/*
 * Waiting calls: start what fits, expire what is late, fail all if the peer
 * is down or removed (-CLINK_EUNAVAIL at once rather than at each deadline).
 * Returns the failed ones, to complete once the mutex is released.
 */
static struct clink_pool_call *serve_waiting(struct clink_pool *p, struct tick *t)
{
    struct clink_pool_call *done = NULL;
    int down = t->removed || (t->open == 0 && p->fail_streak > 0 && t->connecting == 0);
    int fail_status = t->removed || atomic_load(&p->down) || down ? -CLINK_EUNAVAIL : 0;
    struct clink_pool_call **pp = &p->wait_head, *last = NULL;
    while (*pp != NULL) {
        struct clink_pool_call *pc = *pp;
        /* Once started, pc belongs to its completion (which may already have run): unlink it first. */
        struct clink_pool_call *next = pc->priv.next;
        int ret = fail_status ? fail_status : clink__pool_try_start(p, pc);
        if (ret == 1 && pc->priv.deadline_ns && t->now >= pc->priv.deadline_ns) {
            ret = -CLINK_ETIMEDOUT;
        }
        if (ret == 1) {
            last = pc;
            pp = &pc->priv.next;
            continue;
        }
        *pp = next;
        atomic_fetch_sub(&p->nwait, 1);
        if (ret < 0) {
            pc->call.cb = pc->priv.cb;
            pc->priv.status = ret;
            pc->priv.next = done;
            done = pc;
        }
    }
    p->wait_tail = last;
    return done;
}

/*
 * Growth: one link more than open and dialling when every open link is 3/4
 * full (load) or calls still wait with no dial on, never above max_conns.
 * Returns the number of links wanted.
 */
static int grow(struct clink_pool *p, struct tick *t, int want)
{
    if (!t->removed && ((t->open > 0 && t->busy) || (atomic_load(&p->nwait) > 0 && t->connecting == 0)) &&
        t->open + t->connecting >= want) {
        want = t->open + t->connecting + 1;
    }
    if (want > (int)p->o.max_conns) {
        want = (int)p->o.max_conns;
    }
    return want;
}

/*
 * Dial toward `want`, with reconnect backoff and storm control: no dial
 * before next_dial_ns (jittered exponential backoff after failed dials, see
 * pool/dial.c), at most max_dials_in_flight per pool and the cluster's
 * max_dials across its pools (storm control: when many peers come back at
 * once, this node's workers are not flooded with handshakes). A removed pool
 * dials nothing.
 */
static void dial_toward(struct clink_pool *p, struct tick *t, int want)
{
    while (!t->removed && t->open + t->connecting < want && p->dials < p->o.max_dials_in_flight &&
           t->now >= p->next_dial_ns && (unsigned)atomic_load(&p->cl->dials) < p->cl->max_dials) {
        if (clink__pool_dial(p) < 0) {
            break;
        }
        t->connecting++;
    }
}

/* Called with p->mu held; returns waiting calls to complete outside it. */
static struct clink_pool_call *maintain(struct clink_pool *p, struct tick *t)
{
    t->removed = atomic_load(&p->removed);
    survey(p, t);
    /* Warm-up: min_conns links open at all times, dialled before any call needs them. */
    int want = (int)p->o.min_conns;
    want = recycle_rolling(p, t, want);
    trim_idle(p, t);
    struct clink_pool_call *done = serve_waiting(p, t);
    want = grow(p, t, want);
    dial_toward(p, t, want);
    return done;
}

static int pool_drained(struct clink_pool *p)
{
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        if (atomic_load(&p->slots[i].state) != SLOT_EMPTY) {
            return 0;
        }
    }
    return p->dials == 0 && p->wait_head == NULL && atomic_load(&p->busy) == 0;
}

int clink__pool_tick(struct clink_pool *p, uint64_t now)
{
    struct tick t = {.now = now, .busy = 1, .closing = {.n = 0}};
    check_limits(p, now);
    clink__pool_streams_tick(p, now);
    pthread_mutex_lock(&p->mu);
    struct clink_pool_call *done = maintain(p, &t);
    int drained = atomic_load(&p->removed) && pool_drained(p);
    if (drained) {
        p->dropped = 1; /* under mu: enqueue refuses from now on */
    }
    pthread_mutex_unlock(&p->mu);
    for (int k = 0; k < t.closing.n; k++) {
        clink_conn_close(t.closing.c[k]); /* graceful: calls in flight finish; a dead one fails them now */
    }
    while (done != NULL) {
        struct clink_pool_call *pc = done;
        done = pc->priv.next;
        clink__pool_call_finish(pc, pc->priv.status, NULL, 0);
    }
    return drained;
}
