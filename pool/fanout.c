/*
 * Fan-out: one call to many peers of the cluster with one deadline, waiting
 * for every answer.
 */
#include "pool/pool_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        clink__copy_msg(&fc->r->msg, resp, len);
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
    if (results != NULL) {
        *results = NULL;
    }
    if (n != NULL) {
        *n = 0;
    }
    if (clink_thread_is_worker()) {
        /* The answers, and the deadline's timers, need the workers: this one could be waiting for itself. */
        if (cl != NULL) {
            clink__cluster_log(
                cl, CLINK_LOG_WARN,
                "clink_cluster_fanout called on a worker thread: refused, use clink_cluster_fanout_start");
        }
        return -CLINK_EWOULDBLOCK;
    }
    if (cl == NULL || results == NULL || n == NULL) {
        return -CLINK_EINVAL;
    }
    pthread_mutex_lock(&cl->mu);
    size_t cnt = 0;
    struct clink_pool **ps = malloc((cl->npools ? cl->npools : 1) * sizeof(*ps));
    for (size_t i = 0; ps != NULL && i < cl->npools; i++) {
        if (!atomic_load(&cl->pools[i]->removed) && wanted(cl->pools[i], role, names)) {
            ps[cnt++] = cl->pools[i];
            clink__pool_ref(cl->pools[i]);
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
    /* One deadline for the whole: every call gets the same absolute end (0: none, as for every call). */
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
        int ret = clink_pool_call_start(ps[i], &fc->pc);
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
