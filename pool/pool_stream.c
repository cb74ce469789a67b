/*
 * Streams through a pool (include/clink/pool.h, clink_pool_stream_open):
 * a stream is opened on a connection picked the way calls pick theirs,
 * opened again elsewhere when it ended with -CLINK_EGOAWAY before anything
 * of it was exchanged, waits for a connection when none has room, and is
 * ended with -CLINK_ERECYCLED when it outlives its recycled connection's
 * grace. Built on clink/stream.h only: the pool wraps the application's
 * callbacks (their user is the pool stream) and hands them on.
 *
 * Locks: ps->mu (recursive: an application's on_sent may send again from
 * inside clink_stream_send) guards the current attempt, so an application
 * thread never uses a stream its worker has just ended; it may be held while
 * taking the pool's mutex, never the other way round. Nothing under either
 * waits for a worker: clink_stream_open, _send and _cancel only post.
 */
#include "pool/pool_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESENDS 3

enum ps_state {
    PS_WAITING = 1, /* no connection had room: the manager opens it */
    PS_OPEN,        /* an attempt is in progress (cur) */
    PS_OVER,        /* on_end is running or has run */
};

struct clink_pool_stream {
    struct clink_pool *pool; /* a reference, dropped when the pool stream is freed */
    atomic_int refs;         /* its life (until on_end has returned) + the manager's while it looks at it */
    pthread_mutex_t mu;
    struct clink_stream *cur; /* under mu: the attempt in progress, valid until its on_end */
    atomic_int state;         /* enum ps_state; changed under mu */
    int canceled;             /* under mu: the application cancelled it */
    int fail;                 /* under mu: a waiting stream's ending, for the manager to deliver */
    int recycled;             /* under mu: cancelled by the pool: 1 its link recycled, 2 its peer removed */
    atomic_int exchanged;     /* a message, an end or a send went either way: never resent */
    struct clink_stream_cbs cbs;
    void *user;
    uint16_t method;
    int end;
    unsigned flags;
    uint8_t *open; /* the opening message, for resends */
    size_t len;
    uint64_t deadline_ns; /* 0: none */
    int slot;             /* of the current attempt */
    uint32_t gen;
    unsigned resends;
    uint64_t recycled_seen_ns;             /* manager: when it first saw the attempt's link recycled */
    struct clink_pool_stream *prev, *next; /* in pool->streams, under pool->mu */
    int listed;                            /* under pool->mu */
};

static void ps_put(struct clink_pool_stream *ps)
{
    if (atomic_fetch_sub(&ps->refs, 1) != 1) {
        return;
    }
    pthread_mutex_destroy(&ps->mu);
    free(ps->open);
    clink_pool_release(ps->pool);
    free(ps);
}

static int is_conn_loss(int status)
{
    return status == -CLINK_ECLOSED || status == -CLINK_ESHUTDOWN || status == -CLINK_EPROTO || status == -CLINK_ETLS;
}

/* ---- the wrappers of the application's callbacks ---- */

static void w_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    struct clink_pool_stream *ps = user;
    atomic_store(&ps->exchanged, 1);
    if (ps->cbs.on_msg != NULL) {
        ps->cbs.on_msg(s, data, len, ps->user);
    }
}

static void w_peer_end(struct clink_stream *s, void *user)
{
    struct clink_pool_stream *ps = user;
    atomic_store(&ps->exchanged, 1);
    if (ps->cbs.on_peer_end != NULL) {
        ps->cbs.on_peer_end(s, ps->user);
    }
}

static void w_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    struct clink_pool_stream *ps = user;
    atomic_store(&ps->exchanged, 1);
    if (ps->cbs.on_sent != NULL) {
        ps->cbs.on_sent(s, tag, status, ps->user);
    }
}

static void w_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user);

/* Out of the pool's books, its one on_end, and its life's reference. */
static void finish(struct clink_pool_stream *ps, struct clink_stream *s, int status, const char *msg, size_t len)
{
    struct clink_pool *p = ps->pool;
    pthread_mutex_lock(&p->mu);
    if (ps->listed) {
        ps->listed = 0;
        if (ps->prev != NULL) {
            ps->prev->next = ps->next;
        } else {
            p->streams = ps->next;
        }
        if (ps->next != NULL) {
            ps->next->prev = ps->prev;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (status == 0) {
        atomic_fetch_add(&p->streams_ok, 1);
    } else if (status == -CLINK_ERECYCLED) {
        atomic_fetch_add(&p->streams_recycled, 1);
    }
    ps->cbs.on_end(s, status, msg, len, ps->user);
    ps_put(ps);
}

/*
 * Open the stream on the least busy open connection with room, with what is
 * left of its deadline. Called with ps->mu held. Returns 0 (opened: cur
 * set), 1 (no room now), or a negative error for the stream.
 */
static int try_open(struct clink_pool_stream *ps, uint64_t now)
{
    struct clink_pool *p = ps->pool;
    uint32_t timeout_ms = 0;
    if (ps->deadline_ns) {
        if (now >= ps->deadline_ns) {
            return -CLINK_ETIMEDOUT;
        }
        uint64_t left = (ps->deadline_ns - now) / 1000000u;
        timeout_ms = left ? (uint32_t)(left > UINT32_MAX ? UINT32_MAX : left) : 1;
    }
    for (int attempt = 0; attempt < 4; attempt++) {
        struct clink_conn *conn;
        uint32_t gen;
        int best = clink__pool_slot_take(p, &conn, &gen); /* counted like a call: the link's load */
        if (best == -1) {
            return 1;
        }
        if (best < 0) {
            continue;
        }
        ps->slot = best;
        ps->gen = gen;
        ps->recycled_seen_ns = 0;
        atomic_store(&p->slots[best].last_used_ns, now);
        struct iovec iov = {.iov_base = ps->open, .iov_len = ps->len};
        struct clink_stream_open_opts o = {
            .method = ps->method,
            .iov = &iov,
            .iovcnt = ps->len > 0 ? 1 : 0,
            .end = ps->end,
            .timeout_ms = timeout_ms,
            .flags = ps->flags,
            .cbs = {.on_msg = w_msg, .on_peer_end = w_peer_end, .on_sent = w_sent, .on_end = w_end},
            .user = ps,
        };
        struct clink_stream *st = NULL;
        int ret = clink_stream_open(conn, &o, &st);
        if (ret == 0) {
            ps->cur = st;
            atomic_store(&ps->state, PS_OPEN);
            atomic_fetch_add(&p->streams_opened, 1);
        }
        if (clink__pool_slot_started(p, best, gen, ret)) {
            continue;
        }
        return ret;
    }
    return 1;
}

/* No room: the stream waits for the manager (bounded by max_waiting). Called with ps->mu held. */
static int wait_for_room(struct clink_pool_stream *ps)
{
    struct clink_pool *p = ps->pool;
    pthread_mutex_lock(&p->mu);
    int ret = 0;
    if (p->dropped || atomic_load(&p->removed) || atomic_load(&p->down)) {
        ret = -CLINK_EUNAVAIL;
    } else if (atomic_load(&p->streams_waiting) >= p->o.max_waiting) {
        ret = -CLINK_EAGAIN;
    } else {
        atomic_store(&ps->state, PS_WAITING);
        atomic_fetch_add(&p->streams_waiting, 1);
    }
    pthread_mutex_unlock(&p->mu);
    if (ret == 0) {
        clink__cluster_kick(p->cl);
    }
    return ret;
}

static void w_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    struct clink_pool_stream *ps = user;
    struct clink_pool *p = ps->pool;
    atomic_fetch_add(&p->busy, 1); /* before inflight drops: a drain that sees the slot empty sees this */
    pthread_mutex_lock(&ps->mu);   /* before the attempt's slot is read: a resend sets it under mu */
    struct slot *sl = &p->slots[ps->slot];
    if (atomic_load(&sl->gen) == ps->gen && is_conn_loss(status)) {
        atomic_store(&sl->dead, 1);
        clink__cluster_kick(p->cl);
    }
    uint64_t now = clink__now_ns();
    atomic_store(&sl->last_used_ns, now);
    atomic_fetch_sub(&sl->inflight, 1);
    ps->cur = NULL;
    atomic_fetch_sub(&p->streams_open, 1);
    if (ps->recycled && status == -CLINK_ECANCELED) {
        static const char recycled[] = "connection recycled at its key-usage or age limit";
        static const char removed[] = "peer removed from the cluster";
        status = ps->recycled == 1 ? -CLINK_ERECYCLED : -CLINK_EUNAVAIL;
        msg = ps->recycled == 1 ? recycled : removed;
        len = ps->recycled == 1 ? sizeof(recycled) - 1 : sizeof(removed) - 1;
    }
    /*
     * -CLINK_EGOAWAY: the peer's handler never saw it. Opened again only if
     * the application has seen and done nothing with it: no message, no
     * end, no send (its buffers are its own again), no cancel.
     */
    if (status == -CLINK_EGOAWAY && !atomic_load(&ps->exchanged) && !ps->canceled && ps->resends < MAX_RESENDS) {
        ps->resends++;
        int ret = try_open(ps, now);
        if (ret == 1) {
            ret = wait_for_room(ps);
        }
        if (ret == 0) {
            atomic_fetch_add(&p->streams_resent, 1); /* opened again, or waiting for a connection to be */
            if (atomic_load(&ps->state) == PS_OPEN) {
                atomic_fetch_add(&p->streams_open, 1);
            }
            pthread_mutex_unlock(&ps->mu);
            atomic_fetch_sub(&p->busy, 1);
            return;
        }
        if (ret == -CLINK_ETIMEDOUT || ret == -CLINK_EUNAVAIL) {
            status = ret; /* EAGAIN or a refusal: the GOAWAY says more (retry later) */
            msg = NULL;
            len = 0;
        }
    }
    atomic_store(&ps->state, PS_OVER);
    pthread_mutex_unlock(&ps->mu);
    atomic_fetch_sub(&p->busy, 1); /* finish touches the pool, never the cluster */
    finish(ps, s, status, msg, len);
}

/* ---- the API ---- */

int clink_pool_stream_open(struct clink_pool *p, const struct clink_stream_open_opts *o, struct clink_pool_stream **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (p == NULL || o == NULL || o->cbs.on_end == NULL || (o->iovcnt > 0 && o->iov == NULL) ||
        o->method > CLINK_METHOD_MAX_USER) {
        return -CLINK_EINVAL;
    }
    if (atomic_load(&p->removed) || atomic_load(&p->down)) {
        return -CLINK_EUNAVAIL;
    }
    size_t len = 0;
    for (unsigned i = 0; i < o->iovcnt; i++) {
        len += o->iov[i].iov_len;
    }
    struct clink_pool_stream *ps = calloc(1, sizeof(*ps));
    uint8_t *copy = len > 0 ? malloc(len) : NULL;
    if (ps == NULL || (len > 0 && copy == NULL)) {
        free(ps);
        free(copy);
        return -CLINK_ENOMEM;
    }
    for (size_t i = 0, off = 0; i < o->iovcnt; i++) {
        memcpy(copy + off, o->iov[i].iov_base, o->iov[i].iov_len);
        off += o->iov[i].iov_len;
    }
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&ps->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    atomic_init(&ps->refs, 1);
    clink__pool_ref(p);
    ps->pool = p;
    ps->cbs = o->cbs;
    ps->user = o->user;
    ps->method = o->method;
    ps->end = o->end;
    ps->flags = o->flags;
    ps->open = copy;
    ps->len = len;
    uint64_t now = clink__now_ns();
    ps->deadline_ns = o->timeout_ms ? now + (uint64_t)o->timeout_ms * 1000000ull : 0;

    pthread_mutex_lock(&ps->mu);
    pthread_mutex_lock(&p->mu);
    int ret = p->dropped ? -CLINK_EUNAVAIL : 0;
    if (ret == 0) {
        ps->listed = 1;
        ps->next = p->streams;
        if (p->streams != NULL) {
            p->streams->prev = ps;
        }
        p->streams = ps;
    }
    pthread_mutex_unlock(&p->mu);
    if (ret == 0) {
        ret = try_open(ps, now);
        if (ret == 0) {
            atomic_fetch_add(&p->streams_open, 1);
        } else if (ret == 1) {
            ret = wait_for_room(ps);
        }
    }
    if (ret < 0) {
        /* No callback will run: out of the books and gone, as if never opened. */
        atomic_store(&ps->state, PS_OVER);
        pthread_mutex_unlock(&ps->mu);
        pthread_mutex_lock(&p->mu);
        if (ps->listed) {
            if (ps->prev != NULL) {
                ps->prev->next = ps->next;
            } else {
                p->streams = ps->next;
            }
            if (ps->next != NULL) {
                ps->next->prev = ps->prev;
            }
            ps->listed = 0;
        }
        pthread_mutex_unlock(&p->mu);
        ps_put(ps);
        return ret;
    }
    if (out != NULL) {
        *out = ps;
    }
    pthread_mutex_unlock(&ps->mu);
    return 0;
}

int clink_pool_stream_send(struct clink_pool_stream *ps, const struct iovec *iov, unsigned iovcnt, int end, void *tag)
{
    if (ps == NULL) {
        return -CLINK_EINVAL;
    }
    pthread_mutex_lock(&ps->mu);
    int ret;
    if (ps->cur != NULL) {
        atomic_store(&ps->exchanged, 1);
        ret = clink_stream_send(ps->cur, iov, iovcnt, end, tag);
    } else {
        ret = atomic_load(&ps->state) == PS_WAITING ? -CLINK_EAGAIN : -CLINK_ECLOSED;
    }
    pthread_mutex_unlock(&ps->mu);
    return ret;
}

int clink_pool_stream_cancel(struct clink_pool_stream *ps)
{
    if (ps == NULL) {
        return -CLINK_EINVAL;
    }
    int ret = 0;
    pthread_mutex_lock(&ps->mu);
    ps->canceled = 1;
    if (ps->cur != NULL) {
        ret = clink_stream_cancel(ps->cur);
    } else if (atomic_load(&ps->state) == PS_WAITING) {
        ps->fail = -CLINK_ECANCELED;
        clink__cluster_kick(ps->pool->cl);
    }
    pthread_mutex_unlock(&ps->mu);
    return ret;
}

/* ---- the manager's pass ---- */

/* A waiting stream: opened, still waiting, or ended here (on the manager thread). */
static void tick_waiting(struct clink_pool_stream *ps, uint64_t now)
{
    struct clink_pool *p = ps->pool;
    int status = ps->fail;
    if (status == 0 && (atomic_load(&p->removed) || atomic_load(&p->down))) {
        status = -CLINK_EUNAVAIL;
    }
    if (status == 0) {
        int ret = try_open(ps, now);
        if (ret == 1 && !(ps->deadline_ns && now >= ps->deadline_ns)) {
            return; /* still no room */
        }
        if (ret == 0) {
            atomic_fetch_sub(&p->streams_waiting, 1);
            atomic_fetch_add(&p->streams_open, 1);
            return;
        }
        status = ret == 1 ? -CLINK_ETIMEDOUT : ret;
    }
    atomic_fetch_sub(&p->streams_waiting, 1);
    atomic_store(&ps->state, PS_OVER);
    pthread_mutex_unlock(&ps->mu);
    finish(ps, NULL, status, NULL, 0);
    pthread_mutex_lock(&ps->mu); /* the caller unlocks; its reference keeps ps */
}

/*
 * An open stream on a link the pool recycled (record or age limit, or a
 * transport-security change) or retired with its removed peer: the link
 * takes nothing new and closes once its streams are over (GOAWAY); one
 * still open recycle_grace_ms after the pool first saw it so is cancelled,
 * and ends -CLINK_ERECYCLED, or -CLINK_EUNAVAIL for a removed peer (w_end):
 * a stream with no deadline cannot hold a spent key, or clink_cluster_free,
 * for ever.
 */
static void tick_open(struct clink_pool_stream *ps, uint64_t now)
{
    struct clink_pool *p = ps->pool;
    struct slot *s = &p->slots[ps->slot];
    int recycle = atomic_load(&s->recycle) != 0;
    if (ps->cur == NULL || ps->recycled || atomic_load(&s->gen) != ps->gen || atomic_load(&s->state) != SLOT_RETIRING ||
        (!recycle && !atomic_load(&p->removed))) {
        return;
    }
    if (ps->recycled_seen_ns == 0) {
        ps->recycled_seen_ns = now;
        return;
    }
    if (now - ps->recycled_seen_ns < (uint64_t)p->o.recycle_grace_ms * 1000000ull) {
        return;
    }
    clink__pool_log(p, CLINK_LOG_INFO, "ending a stream of method %u left on a %s connection for %u ms", ps->method,
                    recycle ? "recycled" : "removed peer's", p->o.recycle_grace_ms);
    ps->recycled = recycle ? 1 : 2;
    if (clink_stream_cancel(ps->cur) < 0) {
        ps->recycled = 0; /* the worker's inbox was full: next pass */
    }
}

void clink__pool_streams_tick(struct clink_pool *p, uint64_t now)
{
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    for (struct clink_pool_stream *ps = p->streams; ps != NULL; ps = ps->next) {
        n++;
    }
    struct clink_pool_stream **all = n > 0 ? malloc(n * sizeof(*all)) : NULL;
    size_t k = 0;
    for (struct clink_pool_stream *ps = p->streams; all != NULL && ps != NULL; ps = ps->next) {
        atomic_fetch_add(&ps->refs, 1);
        all[k++] = ps;
    }
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < k; i++) {
        struct clink_pool_stream *ps = all[i];
        pthread_mutex_lock(&ps->mu);
        int st = atomic_load(&ps->state);
        if (st == PS_WAITING) {
            tick_waiting(ps, now);
        } else if (st == PS_OPEN) {
            tick_open(ps, now);
        }
        pthread_mutex_unlock(&ps->mu);
        ps_put(ps);
    }
    free(all);
}
