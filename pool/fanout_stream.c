/*
 * The stream fan-out (clink_cluster_fanout_stream_start): one
 * server-streaming pool stream per peer (pool_stream.c), one deadline for
 * all, the application's messages named by peer, and one end once every
 * stream has ended. The stream that ends last runs the end on its worker;
 * when the start itself would be last (every stream failed inside it, or no
 * peer matched), the manager runs it: a callback never runs inside the call
 * that started it.
 */
#include "pool/pool_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fstream_part {
    struct clink__fstream *f;
    size_t idx;
    struct clink_pool *pool; /* a reference until its stream is opened (the pool stream holds its own) */
};

struct clink__fstream {
    struct clink__deferred later; /* first: the manager hands it back */
    struct clink_fanout_stream_cbs cbs;
    void *user;
    atomic_size_t left; /* streams not ended, + 1 held by the start until every stream is opened */
    pthread_mutex_t mu; /* the first error */
    int status;
    size_t failed;
    size_t n;
    struct clink_fanout_result *results;
    struct fstream_part parts[];
};

static void fs_finish(struct clink__fstream *f)
{
    f->cbs.on_end(f->status, f->status == 0 ? f->n : f->failed, f->results, f->n, f->user);
    clink_fanout_free(f->results, f->n);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static void fs_later(struct clink__deferred *d)
{
    fs_finish((struct clink__fstream *)d);
}

/* One stream ended (or never opened): its result, the first error, and the end if it was the last. */
static void part_over(struct fstream_part *pt, int status, const char *msg, size_t len)
{
    struct clink__fstream *f = pt->f;
    struct clink_fanout_result *r = &f->results[pt->idx];
    r->status = status;
    if (status == -CLINK_EREMOTE && msg != NULL) {
        clink__copy_msg(&r->msg, (const uint8_t *)msg, len);
    }
    if (status != 0) {
        pthread_mutex_lock(&f->mu);
        if (f->status == 0) {
            f->status = status;
            f->failed = pt->idx;
        }
        pthread_mutex_unlock(&f->mu);
    }
    if (atomic_fetch_sub(&f->left, 1) == 1) {
        fs_finish(f);
    }
}

static void part_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct fstream_part *pt = user;
    if (pt->f->cbs.on_msg != NULL) {
        pt->f->cbs.on_msg(pt->idx, pt->f->results[pt->idx].peer, data, len, pt->f->user);
    }
}

static void part_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s;
    part_over(user, status, msg, len);
}

int clink_cluster_fanout_stream_start(struct clink_cluster *cl, enum clink_peer_role role, const char *const *names,
                                      uint16_t method, const void *req, size_t len, uint32_t timeout_ms,
                                      const struct clink_fanout_stream_cbs *cbs, void *user)
{
    if (cl == NULL || cbs == NULL || cbs->on_end == NULL || (req == NULL && len > 0)) {
        return -CLINK_EINVAL;
    }
    uint64_t start = clink__now_ns();
    pthread_mutex_lock(&cl->mu);
    size_t cnt = 0;
    for (size_t i = 0; i < cl->npools; i++) {
        cnt += !atomic_load(&cl->pools[i]->removed) && clink__pool_wanted(cl->pools[i], role, names);
    }
    struct clink__fstream *f = calloc(1, sizeof(*f) + cnt * sizeof(f->parts[0]));
    struct clink_fanout_result *res = calloc(cnt ? cnt : 1, sizeof(*res));
    if (f == NULL || res == NULL) {
        pthread_mutex_unlock(&cl->mu);
        free(f);
        free(res);
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
    f->later.fn = fs_later;
    f->cbs = *cbs;
    f->user = user;
    f->results = res;
    pthread_mutex_init(&f->mu, NULL);
    atomic_init(&f->left, f->n + 1);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)req, .iov_len = len};
    for (size_t i = 0; i < f->n; i++) {
        struct fstream_part *pt = &f->parts[i];
        pt->f = f;
        pt->idx = i;
        /* One deadline for all: each stream gets what is left of it when it opens. */
        uint32_t t = 0;
        if (timeout_ms > 0) {
            uint64_t spent = (clink__now_ns() - start) / 1000000u;
            t = spent >= timeout_ms ? 1 : timeout_ms - (uint32_t)spent;
        }
        struct clink_stream_open_opts o = {
            .method = method,
            .iov = &iov,
            .iovcnt = len > 0 ? 1 : 0,
            .end = 1,
            .timeout_ms = t,
            .cbs = {.on_msg = part_msg, .on_end = part_end},
            .user = pt,
        };
        struct clink_pool *p = pt->pool;
        int ret = clink_pool_stream_open(p, &o, NULL);
        clink_pool_release(p);
        if (ret < 0) { /* its on_end will not run: it ends here */
            part_over(pt, ret, NULL, 0);
        }
    }
    if (atomic_fetch_sub(&f->left, 1) == 1) {
        clink__cluster_defer(cl, &f->later);
    }
    return 0;
}
