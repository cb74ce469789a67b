/*
 * The maintenance tick: what the cluster's manager thread does to one pool
 * each pass (pool/cluster.c calls clink__pool_tick every TICK_MS, or sooner
 * when kicked).
 */
#include "pool/pool_int.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

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

/*
 * Connections to close once the pool's mutex is released: closing may wait
 * for room in a worker's inbox, and that worker may be waiting for the mutex
 * (a dial completing). Nothing that can wait on a worker runs under it.
 */
struct closing {
    struct clink_conn *c[MAX_SLOTS];
    int n;
};

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

/*
 * Key-usage and age limits, checked about once a second per connection,
 * without the pool's mutex: the status call waits for the connection's
 * worker. Only the manager retires connections, so conn stays valid here.
 */
static void check_limits(struct clink_pool *p, uint64_t now)
{
    /* Transport security moved (clink_node_set_secure_transport): a link in the other mode is replaced at once. */
    int plain = clink_node_dial_plaintext(p->cl->o.node, p->co.mode, p->co.ssl_mode);
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        struct slot *s = &p->slots[i];
        struct clink_conn *conn = atomic_load(&s->conn);
        if (atomic_load(&s->state) == SLOT_OPEN && conn != NULL && !atomic_load(&s->recycle) &&
            clink_conn_plaintext(conn) != plain) {
            atomic_store(&s->recycle, 2);
            continue;
        }
        if (atomic_load(&s->state) != SLOT_OPEN || conn == NULL || atomic_load(&s->recycle) ||
            now - atomic_load(&s->checked_ns) < 1000000000ull || now < atomic_load(&s->checked_ns)) {
            continue;
        }
        atomic_store(&s->checked_ns, now);
        struct clink_conn_status cs;
        if (clink_conn_status(conn, &cs) == 0 &&
            (cs.records_in >= p->o.recycle_records || cs.records_out >= p->o.recycle_records ||
             (p->o.recycle_age_ms && now - atomic_load(&s->opened_ns) >= (uint64_t)p->o.recycle_age_ms * 1000000ull))) {
            atomic_store(&s->recycle, 1);
        }
    }
}

/* Callers stamp last use with their own clock reading, which may be later than the manager's `now`. */
static uint64_t idle_ns(struct slot *s, uint64_t now)
{
    uint64_t last = atomic_load(&s->last_used_ns);
    return last >= now ? 0 : now - last;
}

/* Called with p->mu held; returns waiting calls to complete outside it. */
static struct clink_pool_call *maintain(struct clink_pool *p, uint64_t now, int *fail_status, struct closing *cl)
{
    int removed = atomic_load(&p->removed);
    int open = 0, connecting = 0, busy = 1, recycle_pending = 0;
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        struct slot *s = &p->slots[i];
        int st = atomic_load(&s->state);
        if (st == SLOT_RETIRING) {
            if (atomic_load(&s->inflight) == 0 && atomic_load(&s->users) == 0 && !atomic_load(&s->ping_busy)) {
                atomic_fetch_add(&s->gen, 1);
                atomic_store(&s->state, SLOT_EMPTY);
            }
            continue;
        }
        if (st == SLOT_CONNECTING) {
            connecting++;
            continue;
        }
        if (st != SLOT_OPEN) {
            continue;
        }
        struct clink_conn *conn = atomic_load(&s->conn);
        if (removed || atomic_load(&s->dead) || !clink_conn_is_open(conn)) {
            retire(p, s,
                   removed                 ? "peer removed"
                   : atomic_load(&s->dead) ? "connection failed (a call, ping or read)"
                                           : "connection closed",
                   cl);
            continue;
        }
        uint64_t idle = idle_ns(s, now);
        int inflight = atomic_load(&s->inflight);
        /* Spent links are still pinged and probed: one to a dead peer must not keep the pool "up". */
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
                    continue;
                }
            }
            atomic_store(&s->last_ping_ns, now);
        }
        if (atomic_load(&s->recycle)) {
            recycle_pending = 1;
            continue; /* decided below, once we know whether a replacement is open */
        }
        open++;
        if (inflight * 4 < (int)p->o.max_calls_per_conn * 3) {
            busy = 0;
        }
    }
    /*
     * Recycling, rolling: a spent connection (record or age limit, or the
     * wrong mode after a transport-security change) keeps serving while a
     * replacement is dialled; one spent connection is retired per pass, and
     * only once a good one is open, no dial is in flight (the replacement
     * has opened) and min_conns stay serving. When a change spends every
     * connection at once, the pool serves with at most one less than before
     * while they are replaced one by one. If every slot holds a spent
     * connection, one is retired to make room.
     */
    int want = (int)p->o.min_conns;
    if (!recycle_pending) {
        p->recycle_debt = 0;
    }
    if (recycle_pending) {
        int spent = 0, room = 0;
        for (unsigned i = 0; i < p->o.max_conns; i++) {
            int st = atomic_load(&p->slots[i].state);
            spent += st == SLOT_OPEN && atomic_load(&p->slots[i].recycle);
            room += st == SLOT_EMPTY || st == SLOT_RETIRING; /* a retiring slot is room soon: never make more */
        }
        int floor = p->o.min_conns > 1 ? (int)p->o.min_conns : 1;
        int make_room = room == 0 && connecting == 0;
        for (unsigned i = 0; i < p->o.max_conns && spent > 0; i++) {
            struct slot *s = &p->slots[i];
            if (atomic_load(&s->state) != SLOT_OPEN || !atomic_load(&s->recycle)) {
                continue;
            }
            /* With max_conns 1 there is no room for a replacement: retire, and calls wait briefly for the redial. */
            /* Not while a link retired here still waits for its replacement to open. */
            int covered = open > 0 && p->recycle_debt == 0 && open + spent - 1 >= floor;
            if (covered || make_room || p->o.max_conns == 1) {
                spent--;
                p->recycle_debt++;
                atomic_fetch_add(&p->recycles, 1);
                retire(p, s,
                       atomic_load(&s->recycle) == 2 ? "recycled (transport security changed its mode)"
                                                     : "recycled (record or age limit)",
                       cl);
                break; /* one per pass: the next waits for its replacement */
            }
        }
        if (spent > 0) {
            open += spent; /* they serve until replaced */
            want = want > open + 1 ? want : open + 1;
        }
    }
    /* Idle extras above the minimum close. */
    for (unsigned i = 0; i < p->o.max_conns && open > (int)p->o.min_conns; i++) {
        struct slot *s = &p->slots[i];
        if (atomic_load(&s->state) == SLOT_OPEN && atomic_load(&s->inflight) == 0 && !atomic_load(&s->recycle) &&
            idle_ns(s, now) >= (uint64_t)p->o.idle_timeout_ms * 1000000ull) {
            retire(p, s, "idle", cl);
            open--;
        }
    }
    struct clink_pool_call *done = NULL;
    /* Waiting calls: start what fits, expire what is late, fail all if the peer is down or removed. */
    int down = removed || (open == 0 && p->fail_streak > 0 && connecting == 0);
    *fail_status = removed || atomic_load(&p->down) || down ? -CLINK_EUNAVAIL : 0;
    struct clink_pool_call **pp = &p->wait_head, *last = NULL;
    while (*pp != NULL) {
        struct clink_pool_call *pc = *pp;
        /* Once started, pc belongs to its completion (which may already have run): unlink it first. */
        struct clink_pool_call *next = pc->priv.next;
        int ret = *fail_status ? *fail_status : clink__pool_try_start(p, pc);
        if (ret == 1 && pc->priv.deadline_ns && now >= pc->priv.deadline_ns) {
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
    /* Grow: to the minimum, under load (every open connection 3/4 full), or for calls waiting with no dial on. */
    if (!removed && ((open > 0 && busy) || (atomic_load(&p->nwait) > 0 && connecting == 0)) &&
        open + connecting >= want) {
        want = open + connecting + 1;
    }
    if (want > (int)p->o.max_conns) {
        want = (int)p->o.max_conns;
    }
    while (!removed && open + connecting < want && p->dials < p->o.max_dials_in_flight && now >= p->next_dial_ns &&
           (unsigned)atomic_load(&p->cl->dials) < p->cl->max_dials) {
        if (clink__pool_dial(p) < 0) {
            break;
        }
        connecting++;
    }
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
    int status = 0;
    struct closing closing = {.n = 0};
    check_limits(p, now);
    pthread_mutex_lock(&p->mu);
    struct clink_pool_call *done = maintain(p, now, &status, &closing);
    int drained = atomic_load(&p->removed) && pool_drained(p);
    if (drained) {
        p->dropped = 1; /* under mu: enqueue refuses from now on */
    }
    pthread_mutex_unlock(&p->mu);
    for (int k = 0; k < closing.n; k++) {
        clink_conn_close(closing.c[k]); /* graceful: calls in flight finish; a dead one fails them now */
    }
    while (done != NULL) {
        struct clink_pool_call *pc = done;
        done = pc->priv.next;
        clink__pool_call_finish(pc, pc->priv.status, NULL, 0);
    }
    return drained;
}
