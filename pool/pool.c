/*
 * Per-peer connection pools and the cluster that holds them
 * (include/clink/pool.h). Built on the public transport API only.
 *
 * The call path takes no lock: a caller scans the pool's slots (atomics),
 * announces itself on the chosen slot (`users`), re-reads the connection and
 * starts the call. The manager retires a slot by clearing its connection and
 * waiting for `users` to drain before it closes the connection, and reuses
 * the slot only once every call and ping on it has completed. Everything
 * timed (dials, backoff, pings, trims, recycling, waiting calls' deadlines)
 * runs on the cluster's manager thread under the pool's mutex.
 */
#include "clink/pool.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SLOTS 64
#define TICK_MS   20

enum slot_state {
    SLOT_EMPTY = 0,
    SLOT_CONNECTING,
    SLOT_OPEN,
    SLOT_RETIRING, /* no new calls; closed once users drain, reused once its calls and ping are done */
};

struct slot {
    _Atomic(struct clink_conn *) conn; /* set only while OPEN */
    atomic_int state;
    atomic_int users;    /* callers between reading conn and returning from clink_call_start */
    atomic_int inflight; /* pool calls started on this connection, not yet completed */
    atomic_int dead;     /* a completion or ping saw the connection fail: retire it */
    atomic_int probe;    /* a call missed its deadline: ping now to tell a slow handler from a dead peer */
    atomic_int ping_busy;
    atomic_int recycle; /* past its record or age budget: replace, then retire */
    _Atomic uint64_t last_used_ns;
    _Atomic uint64_t last_ping_ns; /* pings do not count as use: idle extras must still age out */
    _Atomic uint32_t gen;
    _Atomic uint64_t opened_ns, checked_ns; /* set by the dial's completion, read by the manager */
    struct clink_call ping;
    struct clink_pool *pool;
    int idx;
};

struct clink_pool {
    atomic_int refs;
    struct clink_cluster *cl;
    char name[64];
    enum clink_peer_role role;
    char host[64], expected[256], user[65], password[256];
    struct clink_connect_opts co;
    struct clink_pool_opts o;
    struct slot slots[MAX_SLOTS];
    atomic_int removed;
    atomic_int busy; /* completions running that may still touch the cluster: a drain waits for 0 */
    int dropped;     /* under mu: drained and gone from the cluster; nothing may wait here any more */
    atomic_int down; /* dials fail and nothing is open: calls fail fast */

    pthread_mutex_t mu; /* slow paths: dials, waiting calls, retiring */
    unsigned dials;
    unsigned fail_streak;
    unsigned recycle_debt; /* spent links retired whose replacement has not opened yet */
    uint64_t next_dial_ns;
    struct clink_pool_call *wait_head, *wait_tail;
    atomic_uint nwait;

    _Atomic uint64_t calls_started, calls_ok, f_unavail, f_timeout, f_closed, f_remote, f_other;
    _Atomic uint64_t hs_full, hs_resumed, hs_failed, reconnects, recycles, retries, pings_failed;
};

struct clink_cluster {
    struct clink_cluster_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, kicked;
    struct clink_pool **pools;
    size_t npools, cap;
    pthread_t mgr;
    atomic_uchar idem[65536 / 8];
    atomic_int retry_tokens; /* in hundredths of a retry */
    atomic_int dials;        /* across pools: storm control */
    unsigned max_dials;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void log_line(struct clink_cluster *cl, enum clink_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(struct clink_cluster *cl, enum clink_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl->o.log(cl->o.log_user, lvl, "pool", 0, fmt, ap);
    va_end(ap);
}

static void plog(struct clink_pool *p, enum clink_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void plog(struct clink_pool *p, enum clink_log_level lvl, const char *fmt, ...)
{
    struct clink_cluster *cl = p->cl;
    enum clink_log_level min = cl->o.log_level ? cl->o.log_level : CLINK_LOG_WARN;
    if (cl->o.log == NULL || lvl > min) {
        return;
    }
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_line(cl, lvl, "pool %s: %s", p->name, msg);
}

static void kick(struct clink_cluster *cl)
{
    pthread_mutex_lock(&cl->mu);
    cl->kicked = 1;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

static void pool_ref(struct clink_pool *p)
{
    atomic_fetch_add(&p->refs, 1);
}

static void pool_destroy(struct clink_pool *p)
{
    pthread_mutex_destroy(&p->mu);
    OPENSSL_cleanse(p->password, sizeof(p->password));
    free(p);
}

void clink_pool_release(struct clink_pool *p)
{
    if (p != NULL && atomic_fetch_sub(&p->refs, 1) == 1) {
        pool_destroy(p);
    }
}

/* ---- the call path ---- */

static int is_conn_loss(int status)
{
    return status == -CLINK_ECLOSED || status == -CLINK_EGOAWAY || status == -CLINK_ESHUTDOWN ||
           status == -CLINK_EPROTO || status == -CLINK_ETLS || status == -ECONNRESET || status == -EPIPE;
}

static void count_failure(struct clink_pool *p, int status)
{
    if (status == -CLINK_EUNAVAIL) {
        atomic_fetch_add(&p->f_unavail, 1);
    } else if (status == -CLINK_ETIMEDOUT) {
        atomic_fetch_add(&p->f_timeout, 1);
    } else if (is_conn_loss(status)) {
        atomic_fetch_add(&p->f_closed, 1);
    } else if (status == -CLINK_EREMOTE || status == -CLINK_ENOMETHOD) {
        atomic_fetch_add(&p->f_remote, 1);
    } else {
        atomic_fetch_add(&p->f_other, 1);
    }
}

/* Complete a pool call to its owner (never from inside clink_pool_call). */
static void finish(struct clink_pool_call *pc, int status, const uint8_t *resp, size_t len)
{
    struct clink_pool *p = pc->priv.pool;
    if (status == 0) {
        atomic_fetch_add(&p->calls_ok, 1);
    } else {
        count_failure(p, status);
    }
    pc->call.cb = pc->priv.cb;
    pc->call.user = pc->priv.user;
    pc->call.timeout_ms = pc->priv.timeout_ms;
    pc->call.cb(&pc->call, status, resp, len);
    clink_pool_release(p);
}

static int try_start(struct clink_pool *p, struct clink_pool_call *pc);
static void on_call_done(struct clink_call *call, int status, const uint8_t *resp, size_t len);

static int open_count(struct clink_pool *p, int *connecting)
{
    int n = 0, c = 0;
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        int st = atomic_load(&p->slots[i].state);
        n += st == SLOT_OPEN && !atomic_load(&p->slots[i].dead);
        c += st == SLOT_CONNECTING;
    }
    if (connecting) {
        *connecting = c;
    }
    return n;
}

/*
 * Pick the least busy open connection with room and start the call on it.
 * Returns 0 (started), 1 (no room now), or a negative error for the caller.
 */
static int try_start(struct clink_pool *p, struct clink_pool_call *pc)
{
    uint64_t now = now_ns();
    if (pc->priv.deadline_ns && now >= pc->priv.deadline_ns) {
        return -CLINK_ETIMEDOUT;
    }
    for (int attempt = 0; attempt < 4; attempt++) {
        int best = -1, load = 0;
        for (unsigned i = 0; i < p->o.max_conns; i++) {
            struct slot *s = &p->slots[i];
            if (atomic_load(&s->state) != SLOT_OPEN || atomic_load(&s->dead)) {
                continue;
            }
            int l = atomic_load(&s->inflight);
            if (l < (int)p->o.max_calls_per_conn && (best < 0 || l < load)) {
                best = (int)i;
                load = l;
            }
        }
        if (best < 0) {
            return 1;
        }
        struct slot *s = &p->slots[best];
        atomic_fetch_add(&s->users, 1);
        uint32_t gen = atomic_load(&s->gen);
        struct clink_conn *conn = atomic_load(&s->conn);
        if (conn == NULL || atomic_load(&s->state) != SLOT_OPEN) {
            atomic_fetch_sub(&s->users, 1);
            continue;
        }
        atomic_fetch_add(&s->inflight, 1);
        pc->priv.slot = best;
        pc->priv.gen = atomic_load(&s->gen);
        pc->call.cb = on_call_done;
        pc->call.timeout_ms = 0;
        if (pc->priv.deadline_ns) {
            uint64_t left = (pc->priv.deadline_ns - now) / 1000000u;
            pc->call.timeout_ms = left ? (uint32_t)(left > UINT32_MAX ? UINT32_MAX : left) : 1;
        }
        atomic_store(&s->last_used_ns, now);
        int ret = clink_call_start(conn, &pc->call);
        atomic_fetch_sub(&s->users, 1);
        if (ret == 0) {
            return 0;
        }
        atomic_fetch_sub(&s->inflight, 1);
        pc->call.cb = pc->priv.cb;
        if (ret == -CLINK_ECLOSED || ret == -CLINK_ESHUTDOWN || ret == -CLINK_EGOAWAY) {
            if (atomic_load(&s->gen) == gen) {
                atomic_store(&s->dead, 1); /* never started: try another connection */
            }
            kick(p->cl);
            continue;
        }
        return ret;
    }
    return 1;
}

static int idempotent(struct clink_cluster *cl, uint16_t m)
{
    return (atomic_load(&cl->idem[m / 8]) >> (m % 8)) & 1;
}

/* Queue a call until a connection has room (bounded by max_waiting). Returns 0, -CLINK_EAGAIN or -CLINK_EUNAVAIL. */
static int enqueue(struct clink_pool *p, struct clink_pool_call *pc)
{
    pthread_mutex_lock(&p->mu);
    if (p->dropped || atomic_load(&p->removed)) {
        pthread_mutex_unlock(&p->mu); /* nobody would ever complete it */
        return -CLINK_EUNAVAIL;
    }
    if (atomic_load(&p->nwait) >= p->o.max_waiting) {
        pthread_mutex_unlock(&p->mu);
        return -CLINK_EAGAIN;
    }
    pc->call.cb = pc->priv.cb;
    pc->priv.next = NULL;
    if (p->wait_tail) {
        p->wait_tail->priv.next = pc;
    } else {
        p->wait_head = pc;
    }
    p->wait_tail = pc;
    atomic_fetch_add(&p->nwait, 1);
    pthread_mutex_unlock(&p->mu);
    kick(p->cl);
    return 0;
}

static void on_call_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct clink_pool_call *pc = (struct clink_pool_call *)call;
    struct clink_pool *p = pc->priv.pool;
    atomic_fetch_add(&p->busy, 1); /* before inflight drops: a drain that sees the slot empty sees this */
    struct slot *s = &p->slots[pc->priv.slot];
    if (atomic_load(&s->gen) == pc->priv.gen) {
        if (is_conn_loss(status) && status != -CLINK_EGOAWAY) {
            atomic_store(&s->dead, 1);
            kick(p->cl);
        } else if (status == -CLINK_ETIMEDOUT) {
            atomic_store(&s->probe, 1);
            kick(p->cl);
        }
    }
    atomic_store(&s->last_used_ns, now_ns());
    atomic_fetch_sub(&s->inflight, 1);
    /*
     * Retry a lost call only for idempotent methods, within the budget and
     * the deadline: never by default. A call the peer refused with GOAWAY
     * was never started there (it came after the peer's last id), so any
     * method goes again, on another connection, a few times at most.
     */
    struct clink_cluster *cl = p->cl;
    int never_ran = status == -CLINK_EGOAWAY && pc->priv.retries < 3;
    if (never_ran ||
        (is_conn_loss(status) && idempotent(cl, pc->call.method) && atomic_fetch_sub(&cl->retry_tokens, 100) >= 100)) {
        pc->priv.retries++;
        atomic_fetch_add(&p->retries, 1);
        pc->call.cb = pc->priv.cb;
        int ret = try_start(p, pc);
        if (ret == 0 || ((ret == 1 || ret == -CLINK_EAGAIN) && enqueue(p, pc) == 0)) {
            atomic_fetch_sub(&p->busy, 1);
            return; /* on another connection now, or waiting for one (a reconnect) within its deadline */
        }
        status = ret == 1 ? status : ret;
    } else if (is_conn_loss(status) && idempotent(cl, pc->call.method)) {
        atomic_fetch_add(&cl->retry_tokens, 100); /* no budget: give back what we took */
    }
    atomic_fetch_sub(&p->busy, 1); /* finish touches the pool, never the cluster */
    finish(pc, status, resp, len);
}

int clink_pool_call(struct clink_pool *p, struct clink_pool_call *pc)
{
    if (p == NULL || pc == NULL || pc->call.cb == NULL) {
        return -CLINK_EINVAL;
    }
    if (atomic_load(&p->removed) || atomic_load(&p->down)) {
        atomic_fetch_add(&p->f_unavail, 1);
        return -CLINK_EUNAVAIL;
    }
    struct clink_cluster *cl = p->cl;
    memset(&pc->priv, 0, sizeof(pc->priv));
    pc->priv.pool = p;
    pc->priv.cb = pc->call.cb;
    pc->priv.user = pc->call.user;
    pc->priv.timeout_ms = pc->call.timeout_ms;
    pc->priv.deadline_ns = pc->call.timeout_ms ? now_ns() + (uint64_t)pc->call.timeout_ms * 1000000ull : 0;
    /* Every idempotent call earns a little retry budget (capped at 10 retries' worth); others cost nothing here. */
    if (idempotent(cl, pc->call.method)) {
        unsigned pct = cl->o.retry_budget_percent ? cl->o.retry_budget_percent : 10;
        if (atomic_fetch_add(&cl->retry_tokens, (int)pct) > 1000) {
            atomic_fetch_sub(&cl->retry_tokens, (int)pct);
        }
    }
    pool_ref(p);
    atomic_fetch_add(&p->calls_started, 1);
    int ret = try_start(p, pc);
    if (ret == 0) {
        return 0;
    }
    if (ret < 0) {
        pc->call.cb = pc->priv.cb;
        count_failure(p, ret);
        clink_pool_release(p);
        return ret;
    }
    /* No room: wait (bounded) for the manager to open a connection or for calls to finish. */
    int eq = enqueue(p, pc);
    if (eq < 0) {
        pc->call.cb = pc->priv.cb;
        count_failure(p, eq);
        clink_pool_release(p);
        return eq;
    }
    return 0;
}

struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    struct clink_msg *resp;
};

static void copy_msg(struct clink_msg *m, const uint8_t *p, size_t n)
{
    m->data = n ? malloc(n) : NULL;
    m->len = m->data ? n : 0;
    if (m->data) {
        memcpy(m->data, p, n);
    }
}

static void sync_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct sync_wait *w = call->user;
    pthread_mutex_lock(&w->mu);
    if (status == 0 || status == -CLINK_EREMOTE) {
        copy_msg(w->resp, resp, len);
    }
    w->status = status;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int clink_pool_call_sync(struct clink_pool *p, uint16_t method, const void *req, size_t len, uint32_t timeout_ms,
                         struct clink_msg *resp)
{
    if (resp == NULL) {
        return -CLINK_EINVAL;
    }
    memset(resp, 0, sizeof(*resp));
    struct sync_wait w = {.resp = resp};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)req, .iov_len = len};
    struct clink_pool_call pc = {
        .call = {
            .method = method, .iov = &iov, .iovcnt = len ? 1 : 0, .timeout_ms = timeout_ms, .cb = sync_cb, .user = &w}};
    int ret = clink_pool_call(p, &pc);
    if (ret == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        ret = w.status;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return ret;
}

/* ---- dials ---- */

struct dial {
    struct clink_pool *pool;
    int idx;
    uint32_t gen;
};

static uint64_t backoff_ns(struct clink_pool *p)
{
    unsigned shift = p->fail_streak > 16 ? 16 : p->fail_streak;
    uint64_t ms = (uint64_t)p->o.backoff_min_ms << (shift ? shift - 1 : 0);
    if (ms > p->o.backoff_max_ms) {
        ms = p->o.backoff_max_ms;
    }
    /* Jitter 50-100%: peers that lost the same leaf do not come back in lockstep. */
    uint16_t r = 0;
    CLINK_IGNORE(RAND_bytes((unsigned char *)&r, sizeof(r)) != 1);
    return (ms * 1000000ull / 2) + (ms * 1000000ull / 2) * r / 65535u;
}

static void on_connect(struct clink_conn *conn, int status, const char *reason, void *user)
{
    struct dial *d = user;
    struct clink_pool *p = d->pool;
    atomic_fetch_add(&p->busy, 1);
    struct slot *s = &p->slots[d->idx];
    struct clink_conn_status st;
    int resumed = conn != NULL && clink_conn_status(conn, &st) == 0 && st.resumed;
    pthread_mutex_lock(&p->mu);
    p->dials--;
    atomic_fetch_sub(&p->cl->dials, 1);
    if (status == 0 && !atomic_load(&p->removed)) {
        atomic_fetch_add(resumed ? &p->hs_resumed : &p->hs_full, 1);
        if (p->recycle_debt > 0) {
            p->recycle_debt--; /* a replacement: the next spent link may go */
        }
        if (p->fail_streak > 0) {
            atomic_fetch_add(&p->reconnects, 1);
            plog(p, CLINK_LOG_INFO, "peer back after %u failed dial(s)", p->fail_streak);
        }
        p->fail_streak = 0;
        atomic_store(&p->down, 0);
        uint64_t t = now_ns();
        atomic_store(&s->opened_ns, t);
        atomic_store(&s->checked_ns, t);
        atomic_store(&s->last_used_ns, t);
        atomic_store(&s->dead, 0);
        atomic_store(&s->probe, 0);
        atomic_store(&s->recycle, 0);
        atomic_store(&s->conn, conn);
        atomic_store(&s->state, SLOT_OPEN);
        conn = NULL;
    } else if (status != 0) {
        atomic_fetch_add(&p->hs_failed, 1);
        p->fail_streak++;
        p->next_dial_ns = now_ns() + backoff_ns(p);
        int connecting = 0;
        if (open_count(p, &connecting) == 0 && connecting <= 1) {
            atomic_store(&p->down, 1);
        }
        plog(p, p->fail_streak == 1 ? CLINK_LOG_WARN : CLINK_LOG_DEBUG, "dial %s:%u failed (%u in a row): %s", p->host,
             p->co.port, p->fail_streak, reason);
        atomic_store(&s->state, SLOT_EMPTY);
    } else {
        atomic_store(&s->state, SLOT_EMPTY);
    }
    pthread_mutex_unlock(&p->mu);
    if (conn != NULL) {
        clink_conn_close(conn); /* the peer was removed while we dialled */
    }
    kick(p->cl);
    atomic_fetch_sub(&p->busy, 1); /* after the last use of p->cl */
    clink_pool_release(p);
    free(d);
}

/* Called with p->mu held. Returns 0 if a dial started. */
static int dial(struct clink_pool *p)
{
    int idx = -1;
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        if (atomic_load(&p->slots[i].state) == SLOT_EMPTY) {
            idx = (int)i;
            break;
        }
    }
    struct dial *d = idx >= 0 ? malloc(sizeof(*d)) : NULL;
    if (d == NULL) {
        return -1;
    }
    struct slot *s = &p->slots[idx];
    d->pool = p;
    d->idx = idx;
    d->gen = atomic_fetch_add(&s->gen, 1) + 1;
    atomic_store(&s->state, SLOT_CONNECTING);
    p->dials++;
    atomic_fetch_add(&p->cl->dials, 1);
    pool_ref(p);
    int ret = clink_connect(p->cl->o.node, &p->co, on_connect, d);
    if (ret < 0) {
        p->dials--;
        atomic_fetch_sub(&p->cl->dials, 1);
        atomic_store(&s->state, SLOT_EMPTY);
        p->fail_streak++;
        p->next_dial_ns = now_ns() + backoff_ns(p);
        plog(p, CLINK_LOG_WARN, "cannot dial %s:%u: %s", p->host, p->co.port, clink_strerror(ret));
        atomic_fetch_sub(&p->refs, 1); /* the cluster still holds one: never the last */
        free(d);
        return -1;
    }
    return 0;
}

/* ---- the manager ---- */

static void on_ping(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)resp;
    (void)len;
    struct slot *s = call->user;
    if (status != 0) {
        atomic_fetch_add(&s->pool->pings_failed, 1);
        atomic_store(&s->dead, 1);
        plog(s->pool, CLINK_LOG_WARN, "connection %llu failed a ping: %s", (unsigned long long)s->idx,
             clink_strerror(status));
        kick(s->pool->cl);
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
    plog(p, CLINK_LOG_INFO, "retiring connection in slot %d: %s", s->idx, why);
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
        int ret = *fail_status ? *fail_status : try_start(p, pc);
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
        if (dial(p) < 0) {
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

static void *manager(void *arg)
{
    struct clink_cluster *cl = arg;
    pthread_mutex_lock(&cl->mu);
    for (;;) {
        /* Snapshot the pools with references, then work without the cluster lock. */
        size_t n = cl->npools;
        struct clink_pool **list = n ? malloc(n * sizeof(*list)) : NULL;
        for (size_t i = 0; list && i < n; i++) {
            list[i] = cl->pools[i];
            pool_ref(list[i]);
        }
        int stop = cl->stop;
        pthread_mutex_unlock(&cl->mu);
        uint64_t now = now_ns();
        for (size_t i = 0; list && i < n; i++) {
            struct clink_pool *p = list[i];
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
                finish(pc, pc->priv.status, NULL, 0);
            }
            if (drained) {
                pthread_mutex_lock(&cl->mu);
                for (size_t j = 0; j < cl->npools; j++) {
                    if (cl->pools[j] == p) {
                        cl->pools[j] = cl->pools[--cl->npools];
                        clink_pool_release(p); /* the cluster's reference */
                        break;
                    }
                }
                pthread_mutex_unlock(&cl->mu);
            }
            clink_pool_release(p);
        }
        free(list);
        pthread_mutex_lock(&cl->mu);
        if (stop && cl->npools == 0) {
            break;
        }
        if (!cl->kicked) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += TICK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&cl->cv, &cl->mu, &ts);
        }
        cl->kicked = 0;
    }
    pthread_mutex_unlock(&cl->mu);
    return NULL;
}

/* ---- cluster ---- */

static void defaults(struct clink_pool_opts *o)
{
    o->min_conns = o->min_conns ? o->min_conns : 1;
    o->max_conns = o->max_conns ? o->max_conns : 4;
    if (o->max_conns > MAX_SLOTS) {
        o->max_conns = MAX_SLOTS;
    }
    if (o->min_conns > o->max_conns) {
        o->min_conns = o->max_conns;
    }
    o->max_calls_per_conn = o->max_calls_per_conn ? o->max_calls_per_conn : 256;
    o->max_waiting = o->max_waiting ? o->max_waiting : 1024;
    o->idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 30000;
    o->ping_interval_ms = o->ping_interval_ms ? o->ping_interval_ms : 5000;
    o->ping_timeout_ms = o->ping_timeout_ms ? o->ping_timeout_ms : 2000;
    o->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 5000;
    o->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 100;
    o->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 5000;
    /* RFC 8446 5.5: about 2^24.5 records per AES-GCM key; recycle at a quarter of that. */
    o->recycle_records = o->recycle_records ? o->recycle_records : (1ull << 23);
    o->max_dials_in_flight = o->max_dials_in_flight ? o->max_dials_in_flight : 2;
}

int clink_cluster_new(const struct clink_cluster_opts *opts, struct clink_cluster **out)
{
    if (opts == NULL || opts->node == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    struct clink_cluster *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        return -CLINK_ENOMEM;
    }
    cl->o = *opts;
    defaults(&cl->o.pool);
    pthread_mutex_init(&cl->mu, NULL);
    pthread_cond_init(&cl->cv, NULL);
    atomic_init(&cl->retry_tokens, 1000);
    unsigned w = clink_node_workers(opts->node);
    cl->max_dials = 4 * (w ? w : 1) > 8 ? 4 * (w ? w : 1) : 8;
    if (pthread_create(&cl->mgr, NULL, manager, cl) != 0) {
        pthread_mutex_destroy(&cl->mu);
        pthread_cond_destroy(&cl->cv);
        free(cl);
        return -CLINK_ENOMEM;
    }
    *out = cl;
    return 0;
}

void clink_cluster_free(struct clink_cluster *cl)
{
    if (cl == NULL) {
        return;
    }
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->npools; i++) {
        atomic_store(&cl->pools[i]->removed, 1);
    }
    cl->stop = 1;
    cl->kicked = 1;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    pthread_join(cl->mgr, NULL);
    free(cl->pools);
    pthread_mutex_destroy(&cl->mu);
    pthread_cond_destroy(&cl->cv);
    free(cl);
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    if (src == NULL) {
        dst[0] = '\0';
        return 0;
    }
    if (strlen(src) >= cap) {
        return -CLINK_EINVAL;
    }
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

int clink_cluster_add(struct clink_cluster *cl, const struct clink_peer *peer)
{
    if (cl == NULL || peer == NULL || peer->name == NULL || peer->name[0] == '\0' || peer->host == NULL ||
        peer->port == 0) {
        return -CLINK_EINVAL;
    }
    struct clink_pool *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -CLINK_ENOMEM;
    }
    if (copy_str(p->name, sizeof(p->name), peer->name) < 0 || copy_str(p->host, sizeof(p->host), peer->host) < 0 ||
        copy_str(p->expected, sizeof(p->expected), peer->expected_name ? peer->expected_name : peer->host) < 0 ||
        copy_str(p->user, sizeof(p->user), peer->user) < 0 ||
        copy_str(p->password, sizeof(p->password), peer->password) < 0) {
        free(p);
        return -CLINK_EINVAL;
    }
    atomic_init(&p->refs, 1); /* the cluster's */
    p->cl = cl;
    p->role = peer->role;
    p->o = peer->pool ? *peer->pool : cl->o.pool;
    defaults(&p->o);
    pthread_mutex_init(&p->mu, NULL);
    for (unsigned i = 0; i < MAX_SLOTS; i++) {
        p->slots[i].pool = p;
        p->slots[i].idx = (int)i;
    }
    p->co = (struct clink_connect_opts){
        .host = p->host,
        .port = peer->port,
        .expected_name = p->expected,
        .ssl_mode = peer->ssl_mode,
        .timeout_ms = p->o.connect_timeout_ms,
        .user = peer->user ? p->user : NULL,
        .password = peer->password ? p->password : NULL,
        .ktls = p->o.ktls,
        .label = p->name,
    };
    pthread_mutex_lock(&cl->mu);
    int ret = cl->stop ? -CLINK_ESHUTDOWN : 0;
    for (size_t i = 0; ret == 0 && i < cl->npools; i++) {
        if (strcmp(cl->pools[i]->name, p->name) == 0 && !atomic_load(&cl->pools[i]->removed)) {
            ret = -EEXIST;
        }
    }
    if (ret == 0 && cl->npools == cl->cap) {
        size_t cap = cl->cap ? cl->cap * 2 : 8;
        struct clink_pool **np = realloc(cl->pools, cap * sizeof(*np));
        if (np == NULL) {
            ret = -CLINK_ENOMEM;
        } else {
            cl->pools = np;
            cl->cap = cap;
        }
    }
    if (ret == 0) {
        cl->pools[cl->npools++] = p;
        cl->kicked = 1;
        pthread_cond_signal(&cl->cv);
    }
    pthread_mutex_unlock(&cl->mu);
    if (ret < 0) {
        pool_destroy(p);
    }
    return ret;
}

int clink_cluster_remove(struct clink_cluster *cl, const char *name)
{
    int ret = -ENOENT;
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; name != NULL && i < cl->npools; i++) {
        if (strcmp(cl->pools[i]->name, name) == 0 && !atomic_load(&cl->pools[i]->removed)) {
            atomic_store(&cl->pools[i]->removed, 1);
            ret = 0;
        }
    }
    cl->kicked = 1;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
    return ret;
}

struct clink_pool *clink_cluster_pool(struct clink_cluster *cl, const char *name)
{
    struct clink_pool *p = NULL;
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; name != NULL && i < cl->npools; i++) {
        if (strcmp(cl->pools[i]->name, name) == 0 && !atomic_load(&cl->pools[i]->removed)) {
            p = cl->pools[i];
            pool_ref(p);
            break;
        }
    }
    pthread_mutex_unlock(&cl->mu);
    return p;
}

int clink_cluster_idempotent(struct clink_cluster *cl, uint16_t method)
{
    if (cl == NULL) {
        return -CLINK_EINVAL;
    }
    atomic_fetch_or(&cl->idem[method / 8], (unsigned char)(1u << (method % 8)));
    return 0;
}

void clink_pool_stats(struct clink_pool *p, struct clink_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        struct slot *s = &p->slots[i];
        int st = atomic_load(&s->state);
        int inflight = atomic_load(&s->inflight);
        out->calls_in_flight += (unsigned)(inflight > 0 ? inflight : 0);
        if (st == SLOT_OPEN) {
            out->conns_open++;
            if (inflight > 0) {
                out->conns_busy++;
            } else {
                out->conns_idle++;
            }
        } else if (st == SLOT_CONNECTING) {
            out->conns_connecting++;
        }
    }
    out->calls_waiting = atomic_load(&p->nwait);
    out->calls_started = atomic_load(&p->calls_started);
    out->calls_ok = atomic_load(&p->calls_ok);
    out->failed_unavailable = atomic_load(&p->f_unavail);
    out->failed_timeout = atomic_load(&p->f_timeout);
    out->failed_closed = atomic_load(&p->f_closed);
    out->failed_remote = atomic_load(&p->f_remote);
    out->failed_other = atomic_load(&p->f_other);
    out->handshakes_full = atomic_load(&p->hs_full);
    out->handshakes_resumed = atomic_load(&p->hs_resumed);
    out->handshakes_failed = atomic_load(&p->hs_failed);
    out->reconnects = atomic_load(&p->reconnects);
    out->recycles = atomic_load(&p->recycles);
    out->retries = atomic_load(&p->retries);
    out->pings_failed = atomic_load(&p->pings_failed);
    out->up = !atomic_load(&p->down) && !atomic_load(&p->removed);
}

size_t clink_cluster_peers(struct clink_cluster *cl, struct clink_peer_info *out, size_t cap)
{
    if (cl == NULL) {
        return 0;
    }
    pthread_mutex_lock(&cl->mu);
    size_t n = 0;
    for (size_t i = 0; i < cl->npools; i++) {
        struct clink_pool *p = cl->pools[i];
        if (atomic_load(&p->removed)) {
            continue;
        }
        if (n < cap) {
            struct clink_peer_info *pi = &out[n];
            memset(pi, 0, sizeof(*pi));
            snprintf(pi->name, sizeof(pi->name), "%s", p->name);
            pi->role = p->role;
            snprintf(pi->host, sizeof(pi->host), "%s", p->host);
            pi->port = p->co.port;
            snprintf(pi->expected_name, sizeof(pi->expected_name), "%s", p->expected);
            clink_pool_stats(p, &pi->stats);
        }
        n++;
    }
    pthread_mutex_unlock(&cl->mu);
    return n;
}

size_t clink_cluster_status_format(struct clink_cluster *cl, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0) {
        return 0;
    }
    buf[0] = '\0';
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->npools; i++) {
        struct clink_pool *p = cl->pools[i];
        struct clink_pool_stats s;
        clink_pool_stats(p, &s);
        int m = snprintf(buf + n, cap - n,
                         "Pool %s: %s %s:%u, %s\n"
                         "  Connections: %u open (%u idle, %u busy), %u connecting\n"
                         "  Calls: %u in flight, %u waiting, %llu started, %llu ok\n"
                         "  Calls failed: %llu unavailable, %llu timeout, %llu closed, %llu remote, %llu other\n"
                         "  Handshakes: %llu full, %llu resumed, %llu failed\n"
                         "  Reconnects: %llu, recycles: %llu, retries: %llu, failed pings: %llu\n",
                         p->name, p->role == CLINK_ROLE_AGGREGATOR ? "aggregator" : "leaf", p->host, p->co.port,
                         atomic_load(&p->removed) ? "removed"
                         : s.up                   ? "up"
                                                  : "down",
                         s.conns_open, s.conns_idle, s.conns_busy, s.conns_connecting, s.calls_in_flight,
                         s.calls_waiting, (unsigned long long)s.calls_started, (unsigned long long)s.calls_ok,
                         (unsigned long long)s.failed_unavailable, (unsigned long long)s.failed_timeout,
                         (unsigned long long)s.failed_closed, (unsigned long long)s.failed_remote,
                         (unsigned long long)s.failed_other, (unsigned long long)s.handshakes_full,
                         (unsigned long long)s.handshakes_resumed, (unsigned long long)s.handshakes_failed,
                         (unsigned long long)s.reconnects, (unsigned long long)s.recycles,
                         (unsigned long long)s.retries, (unsigned long long)s.pings_failed);
        if (m < 0 || (size_t)m >= cap - n) {
            n = cap - 1;
            break;
        }
        n += (size_t)m;
    }
    pthread_mutex_unlock(&cl->mu);
    return n;
}

/* ---- fan-out ---- */

struct fanout {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t left;
};

struct fanout_call {
    struct clink_pool_call pc;
    struct fanout *f;
    struct clink_fanout_result *r;
    struct iovec iov;
};

static void fanout_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct fanout_call *fc = call->user;
    fc->r->status = status;
    if (status == 0 || status == -CLINK_EREMOTE) {
        copy_msg(&fc->r->msg, resp, len);
    }
    struct fanout *f = fc->f;
    pthread_mutex_lock(&f->mu);
    if (--f->left == 0) {
        pthread_cond_signal(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
}

static int wanted(const struct clink_pool *p, enum clink_peer_role role, const char *const *names)
{
    if (names == NULL) {
        return p->role == role;
    }
    for (; *names != NULL; names++) {
        if (strcmp(*names, p->name) == 0) {
            return 1;
        }
    }
    return 0;
}

int clink_cluster_fanout(struct clink_cluster *cl, enum clink_peer_role role, const char *const *names, uint16_t method,
                         const void *req, size_t len, uint32_t timeout_ms, struct clink_fanout_result **results,
                         size_t *n)
{
    if (cl == NULL || results == NULL || n == NULL || timeout_ms == 0) {
        return -CLINK_EINVAL;
    }
    pthread_mutex_lock(&cl->mu);
    size_t cnt = 0;
    struct clink_pool **ps = malloc((cl->npools ? cl->npools : 1) * sizeof(*ps));
    for (size_t i = 0; ps != NULL && i < cl->npools; i++) {
        if (!atomic_load(&cl->pools[i]->removed) && wanted(cl->pools[i], role, names)) {
            ps[cnt++] = cl->pools[i];
            pool_ref(cl->pools[i]);
        }
    }
    pthread_mutex_unlock(&cl->mu);
    struct clink_fanout_result *res = calloc(cnt ? cnt : 1, sizeof(*res));
    struct fanout_call *fcs = calloc(cnt ? cnt : 1, sizeof(*fcs));
    if (ps == NULL || res == NULL || fcs == NULL) {
        for (size_t i = 0; ps && i < cnt; i++) {
            clink_pool_release(ps[i]);
        }
        free(ps);
        free(res);
        free(fcs);
        return -CLINK_ENOMEM;
    }
    struct fanout f = {.left = cnt};
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv, NULL);
    /* One deadline for the whole: every call gets the same absolute end. */
    for (size_t i = 0; i < cnt; i++) {
        struct fanout_call *fc = &fcs[i];
        snprintf(res[i].peer, sizeof(res[i].peer), "%s", ps[i]->name);
        fc->f = &f;
        fc->r = &res[i];
        fc->iov = (struct iovec){.iov_base = (void *)(uintptr_t)req, .iov_len = len};
        fc->pc.call = (struct clink_call){.method = method,
                                          .iov = &fc->iov,
                                          .iovcnt = len ? 1 : 0,
                                          .timeout_ms = timeout_ms,
                                          .cb = fanout_cb,
                                          .user = fc};
        int ret = clink_pool_call(ps[i], &fc->pc);
        if (ret < 0) {
            res[i].status = ret;
            pthread_mutex_lock(&f.mu);
            f.left--;
            pthread_mutex_unlock(&f.mu);
        }
    }
    pthread_mutex_lock(&f.mu);
    while (f.left > 0) {
        pthread_cond_wait(&f.cv, &f.mu);
    }
    pthread_mutex_unlock(&f.mu);
    pthread_mutex_destroy(&f.mu);
    pthread_cond_destroy(&f.cv);
    for (size_t i = 0; i < cnt; i++) {
        clink_pool_release(ps[i]);
    }
    free(ps);
    free(fcs);
    *results = res;
    *n = cnt;
    return 0;
}

void clink_fanout_free(struct clink_fanout_result *results, size_t n)
{
    for (size_t i = 0; results != NULL && i < n; i++) {
        clink_msg_free(&results[i].msg);
    }
    free(results);
}
