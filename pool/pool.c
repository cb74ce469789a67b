/*
 * The per-peer pool object and its call path (include/clink/pool.h): picking
 * a connection, waiting for room, completing and retrying calls. Built on the
 * public transport API only; the structures and the locking rules are in
 * pool/pool_int.h.
 */
#include "pool/pool_int.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void log_line(struct clink_cluster *cl, enum clink_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(struct clink_cluster *cl, enum clink_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl->o.log(cl->o.log_user, lvl, "pool", 0, fmt, ap);
    va_end(ap);
}

void clink__cluster_log(struct clink_cluster *cl, enum clink_log_level lvl, const char *msg)
{
    enum clink_log_level min = cl->o.log_level;
    if (cl->o.log != NULL && lvl <= min) {
        log_line(cl, lvl, "%s", msg);
    }
}

void clink__pool_log(struct clink_pool *p, enum clink_log_level lvl, const char *fmt, ...)
{
    struct clink_cluster *cl = p->cl;
    enum clink_log_level min = cl->o.log_level;
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

void clink__pool_ref(struct clink_pool *p)
{
    atomic_fetch_add(&p->refs, 1);
}

void clink__pool_destroy(struct clink_pool *p)
{
    pthread_mutex_destroy(&p->mu);
    OPENSSL_cleanse(p->password, sizeof(p->password));
    free(p);
}

void clink_pool_release(struct clink_pool *p)
{
    if (p != NULL && atomic_fetch_sub(&p->refs, 1) == 1) {
        clink__pool_destroy(p);
    }
}

/* ---- the call path ---- */

static int is_conn_loss(int status)
{
    return status == -CLINK_ECLOSED || status == -CLINK_EGOAWAY || status == -CLINK_ESHUTDOWN ||
           status == -CLINK_EPROTO || status == -CLINK_ETLS; /* a reset or broken pipe arrives as ECLOSED */
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

/* Complete a pool call to its owner at now (the clock, read once by the caller). */
static void finish_at(struct clink_pool_call *pc, int status, const uint8_t *resp, size_t len, uint64_t now)
{
    struct clink_pool *p = pc->priv.pool;
    uint64_t took = now > pc->priv.start_ns ? now - pc->priv.start_ns : 0;
    /* The charts count the application's calls, not clink's own (the ops page's status calls to each peer). */
    int counted = pc->call.method <= CLINK_METHOD_MAX_USER;
    if (counted) {
        atomic_fetch_add_explicit(&p->latency[clink_latency_bucket(took)], 1, memory_order_relaxed);
    }
    if (counted && (status == 0 || status == -CLINK_EREMOTE)) {
        /* Answered: the request went and an answer came back (clink_pool_traffic counts these payloads). */
        size_t out = 0;
        for (unsigned i = 0; i < pc->call.iovcnt; i++) {
            out += pc->call.iov[i].iov_len;
        }
        atomic_fetch_add_explicit(&p->bytes_out, out, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->bytes_in, len, memory_order_relaxed);
    }
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

/* Complete a pool call to its owner (never from inside clink_pool_call_start). */
void clink__pool_call_finish(struct clink_pool_call *pc, int status, const uint8_t *resp, size_t len)
{
    finish_at(pc, status, resp, len, clink__now_ns());
}

static void on_call_done(struct clink_call *call, int status, const uint8_t *resp, size_t len);

/*
 * Pick the least busy open connection with room and start the call on it.
 * Returns 0 (started), 1 (no room now), or a negative error for the caller.
 */
int clink__pool_slot_take(struct clink_pool *p, struct clink_conn **conn, uint32_t *gen)
{
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
        return -1;
    }
    struct slot *s = &p->slots[best];
    atomic_fetch_add(&s->users, 1);
    *gen = atomic_load(&s->gen);
    *conn = atomic_load(&s->conn);
    if (*conn == NULL || atomic_load(&s->state) != SLOT_OPEN) {
        atomic_fetch_sub(&s->users, 1);
        return -2;
    }
    atomic_fetch_add(&s->inflight, 1);
    return best;
}

int clink__pool_slot_started(struct clink_pool *p, int idx, uint32_t gen, int ret)
{
    struct slot *s = &p->slots[idx];
    atomic_fetch_sub(&s->users, 1);
    if (ret == 0) {
        return 0;
    }
    atomic_fetch_sub(&s->inflight, 1);
    if (ret == -CLINK_ECLOSED || ret == -CLINK_ESHUTDOWN || ret == -CLINK_EGOAWAY) {
        if (atomic_load(&s->gen) == gen) {
            atomic_store(&s->dead, 1); /* never started: try another connection */
        }
        clink__cluster_kick(p->cl);
        return 1;
    }
    return 0;
}

int clink__pool_try_start(struct clink_pool *p, struct clink_pool_call *pc)
{
    uint64_t now = clink__now_ns();
    if (pc->priv.deadline_ns && now >= pc->priv.deadline_ns) {
        return -CLINK_ETIMEDOUT;
    }
    for (int attempt = 0; attempt < 4; attempt++) {
        struct clink_conn *conn;
        uint32_t gen;
        int best = clink__pool_slot_take(p, &conn, &gen);
        if (best == -1) {
            return 1;
        }
        if (best < 0) {
            continue;
        }
        pc->priv.slot = best;
        pc->priv.gen = gen;
        pc->call.cb = on_call_done;
        pc->call.timeout_ms = 0;
        if (pc->priv.deadline_ns) {
            uint64_t left = (pc->priv.deadline_ns - now) / 1000000u;
            pc->call.timeout_ms = left ? (uint32_t)(left > UINT32_MAX ? UINT32_MAX : left) : 1;
        }
        atomic_store(&p->slots[best].last_used_ns, now);
        int ret = clink_call_start(conn, &pc->call);
        if (ret != 0) {
            pc->call.cb = pc->priv.cb;
        }
        if (clink__pool_slot_started(p, best, gen, ret)) {
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
    clink__cluster_kick(p->cl);
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
            clink__cluster_kick(p->cl);
        } else if (status == -CLINK_ETIMEDOUT) {
            atomic_store(&s->probe, 1);
            clink__cluster_kick(p->cl);
        }
    }
    uint64_t now = clink__now_ns(); /* the slot's last use, and the call's end (its latency) */
    atomic_store(&s->last_used_ns, now);
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
        int ret = clink__pool_try_start(p, pc);
        if (ret == 0 || ((ret == 1 || ret == -CLINK_EAGAIN) && enqueue(p, pc) == 0)) {
            atomic_fetch_sub(&p->busy, 1);
            return; /* on another connection now, or waiting for one (a reconnect) within its deadline */
        }
        status = ret == 1 ? status : ret;
    } else if (is_conn_loss(status) && idempotent(cl, pc->call.method)) {
        atomic_fetch_add(&cl->retry_tokens, 100); /* no budget: give back what we took */
    }
    atomic_fetch_sub(&p->busy, 1); /* finish touches the pool, never the cluster */
    finish_at(pc, status, resp, len, now);
}

int clink_pool_call_start(struct clink_pool *p, struct clink_pool_call *pc)
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
    pc->priv.start_ns = clink__now_ns();
    pc->priv.deadline_ns = pc->call.timeout_ms ? pc->priv.start_ns + (uint64_t)pc->call.timeout_ms * 1000000ull : 0;
    /* Every idempotent call earns a little retry budget (capped at 10 retries' worth); others cost nothing here. */
    if (idempotent(cl, pc->call.method)) {
        unsigned pct = cl->o.retry_budget_percent;
        if (atomic_fetch_add(&cl->retry_tokens, (int)pct) > 1000) {
            atomic_fetch_sub(&cl->retry_tokens, (int)pct);
        }
    }
    clink__pool_ref(p);
    atomic_fetch_add(&p->calls_started, 1);
    int ret = clink__pool_try_start(p, pc);
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

void clink__copy_msg(struct clink_msg *m, const uint8_t *p, size_t n)
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
        clink__copy_msg(w->resp, resp, len);
    }
    w->status = status;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int clink_pool_call_sync(struct clink_pool *p, uint16_t method, const void *req, size_t len, uint32_t timeout_ms,
                         struct clink_msg *resp)
{
    if (resp != NULL) {
        memset(resp, 0, sizeof(*resp));
    }
    if (clink_thread_is_worker()) {
        /*
         * The answer comes back on a worker, and the deadline's timer lives
         * on one: waiting here could wait for this very thread, for good.
         */
        if (p != NULL) {
            clink__pool_log(p, CLINK_LOG_WARN,
                            "clink_pool_call_sync called on a worker thread: refused, use "
                            "clink_pool_call_start");
        }
        return -CLINK_EWOULDBLOCK;
    }
    if (resp == NULL) {
        return -CLINK_EINVAL;
    }
    struct sync_wait w = {.resp = resp};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)req, .iov_len = len};
    struct clink_pool_call pc = {
        .call = {
            .method = method, .iov = &iov, .iovcnt = len ? 1 : 0, .timeout_ms = timeout_ms, .cb = sync_cb, .user = &w}};
    int ret = clink_pool_call_start(p, &pc);
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
