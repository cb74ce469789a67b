/*
 * The fan-out both calls share (the blocking clink_cluster_fanout waits on
 * it): one call per peer with one deadline, one callback once every part
 * has ended. A part ends on the worker that owns
 * its connection (or on the manager, for a call that never got one); the
 * part that ends last runs the callback there. When the start itself would
 * be last (every part failed at once, or answered before the start
 * returned), the manager runs it instead: a callback never runs inside the
 * call that started it.
 */
#include "pool/pool_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fanout_part {
    struct clink_pool_call pc;
    struct iovec iov;
    struct clink__fanout *f;
    struct clink_pool *pool; /* a reference, dropped when the fan-out is freed */
    size_t idx;
};

struct clink__fanout {
    struct clink_cluster *cl;
    clink_fanout_cb cb;         /* the caller's: it borrows the results */
    clink__fanout_take_cb take; /* or the blocking call's: it takes them */
    void *user;
    int borrowed;       /* payload is the caller's (it waits for the end), not a copy */
    atomic_size_t left; /* parts not ended, + 1 held by the start until every part is started */
    size_t n;
    struct clink_fanout_result *results;
    uint8_t *payload;
    struct clink__fanout *next; /* in cl->fanouts_done */
    struct fanout_part parts[];
};

int clink__pool_wanted(const struct clink_pool *p, enum clink_peer_role role, const char *const *names)
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

struct clink__fanout *clink__fanout_next(struct clink__fanout *f)
{
    return f->next;
}

void clink__fanout_finish(struct clink__fanout *f)
{
    for (size_t i = 0; i < f->n; i++) {
        clink_pool_release(f->parts[i].pool);
    }
    if (f->take != NULL) {
        f->take(f->results, f->n, f->user);
    } else {
        f->cb(f->results, f->n, f->user);
        clink_fanout_free(f->results, f->n);
    }
    if (!f->borrowed) {
        free(f->payload);
    }
    free(f);
}

static void part_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct fanout_part *p = call->user;
    struct clink_fanout_result *r = &p->f->results[p->idx];
    r->status = status;
    if (status == 0 || status == -CLINK_EREMOTE) {
        clink__copy_msg(&r->msg, resp, len);
    }
    if (atomic_fetch_sub(&p->f->left, 1) == 1) {
        clink__fanout_finish(p->f);
    }
}

/* The start was last: hand the callback to the manager thread. */
static void defer(struct clink__fanout *f)
{
    struct clink_cluster *cl = f->cl;
    pthread_mutex_lock(&cl->mu);
    f->next = cl->fanouts_done;
    cl->fanouts_done = f;
    cl->kicked = 1;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

int clink__fanout_start(struct clink_cluster *cl, enum clink_peer_role role, const char *const *names, uint16_t method,
                        const void *req, size_t len, uint32_t timeout_ms, clink_fanout_cb cb,
                        clink__fanout_take_cb take, void *user)
{
    if (cl == NULL || (cb == NULL && take == NULL) || (req == NULL && len > 0)) {
        return -CLINK_EINVAL;
    }
    pthread_mutex_lock(&cl->mu);
    size_t cnt = 0;
    for (size_t i = 0; i < cl->npools; i++) {
        cnt += !atomic_load(&cl->pools[i]->removed) && clink__pool_wanted(cl->pools[i], role, names);
    }
    struct clink__fanout *f = calloc(1, sizeof(*f) + cnt * sizeof(f->parts[0]));
    struct clink_fanout_result *res = calloc(cnt ? cnt : 1, sizeof(*res));
    /* The blocking call's request outlives the fan-out: no copy. */
    uint8_t *payload = take != NULL ? (uint8_t *)(uintptr_t)req : malloc(len ? len : 1);
    if (f == NULL || res == NULL || (payload == NULL && take == NULL)) {
        pthread_mutex_unlock(&cl->mu);
        free(f);
        free(res);
        if (take == NULL) {
            free(payload);
        }
        return -CLINK_ENOMEM;
    }
    for (size_t i = 0; i < cl->npools && f->n < cnt; i++) {
        struct clink_pool *p = cl->pools[i];
        if (!atomic_load(&p->removed) && clink__pool_wanted(p, role, names)) {
            clink__pool_ref(p);
            f->parts[f->n].pool = p;
            snprintf(res[f->n].peer, sizeof(res[f->n].peer), "%s", p->name);
            f->n++;
        }
    }
    pthread_mutex_unlock(&cl->mu);
    if (take == NULL && len > 0) {
        memcpy(payload, req, len);
    }
    f->cl = cl;
    f->cb = cb;
    f->take = take;
    f->borrowed = take != NULL;
    f->user = user;
    f->results = res;
    f->payload = payload;
    atomic_init(&f->left, f->n + 1);
    /* Every part gets the same timeout from (nearly) the same instant: one deadline for the whole. */
    for (size_t i = 0; i < f->n; i++) {
        struct fanout_part *p = &f->parts[i];
        p->f = f;
        p->idx = i;
        p->iov = (struct iovec){.iov_base = payload, .iov_len = len};
        p->pc.call = (struct clink_call){.method = method,
                                         .iov = &p->iov,
                                         .iovcnt = len ? 1 : 0,
                                         .timeout_ms = timeout_ms,
                                         .cb = part_done,
                                         .user = p};
        int ret = clink_pool_call_start(p->pool, &p->pc);
        if (ret < 0) { /* its callback will not run: the part ends here */
            res[i].status = ret;
            atomic_fetch_sub(&f->left, 1);
        }
    }
    if (atomic_fetch_sub(&f->left, 1) == 1) {
        defer(f);
    }
    return 0;
}

int clink_cluster_fanout_start(struct clink_cluster *cl, enum clink_peer_role role, const char *const *names,
                               uint16_t method, const void *req, size_t len, uint32_t timeout_ms, clink_fanout_cb cb,
                               void *user)
{
    if (cb == NULL) {
        return -CLINK_EINVAL;
    }
    return clink__fanout_start(cl, role, names, method, req, len, timeout_ms, cb, NULL, user);
}
