/*
 * Dialling: a new connection in an empty slot, and what its completion
 * decides (the slot opens, or the peer's failure streak, backoff and "down"
 * state grow). The manager calls clink__pool_dial under the pool's mutex;
 * the completion runs on a transport worker.
 */
#include "pool/pool_int.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

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
    int resumed = conn != NULL && clink_conn_get_status(conn, &st) == 0 && st.resumed;
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
            clink__pool_log(p, CLINK_LOG_INFO, "peer back after %u failed dial(s)", p->fail_streak);
        }
        p->fail_streak = 0;
        atomic_store(&p->down, 0);
        uint64_t t = clink__now_ns();
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
        p->next_dial_ns = clink__now_ns() + backoff_ns(p);
        int connecting = 0;
        if (open_count(p, &connecting) == 0 && connecting <= 1) {
            atomic_store(&p->down, 1);
        }
        clink__pool_log(p, p->fail_streak == 1 ? CLINK_LOG_WARN : CLINK_LOG_DEBUG,
                        "dial %s:%u failed (%u in a row): %s", p->host, p->co.port, p->fail_streak, reason);
        atomic_store(&s->state, SLOT_EMPTY);
    } else {
        atomic_store(&s->state, SLOT_EMPTY);
    }
    pthread_mutex_unlock(&p->mu);
    if (conn != NULL) {
        clink_conn_close(conn); /* the peer was removed while we dialled */
    }
    clink__cluster_kick(p->cl);
    atomic_fetch_sub(&p->busy, 1); /* after the last use of p->cl */
    clink_pool_release(p);
    free(d);
}

/* Called with p->mu held. Returns 0 if a dial started. */
int clink__pool_dial(struct clink_pool *p)
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
    clink__pool_ref(p);
    int ret = clink_connect(p->cl->o.node, &p->co, on_connect, d);
    if (ret < 0) {
        p->dials--;
        atomic_fetch_sub(&p->cl->dials, 1);
        atomic_store(&s->state, SLOT_EMPTY);
        p->fail_streak++;
        p->next_dial_ns = clink__now_ns() + backoff_ns(p);
        clink__pool_log(p, CLINK_LOG_WARN, "cannot dial %s:%u: %s", p->host, p->co.port, clink_strerror(ret));
        atomic_fetch_sub(&p->refs, 1); /* the cluster still holds one: never the last */
        free(d);
        return -1;
    }
    return 0;
}
