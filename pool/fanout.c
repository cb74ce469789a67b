/*
 * The blocking fan-out: one call to many peers of the cluster with one
 * deadline, waiting for every answer. It waits on the fan-out that does not
 * block (fanout_start.c), which hands it the results.
 */
#include "pool/pool_int.h"

#include <pthread.h>
#include <stdlib.h>

/* The caller waits here for the shared fan-out (fanout_start.c) to hand it the results. */
struct fanout_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    struct clink_fanout_result *results;
    size_t n;
};

static void take(struct clink_fanout_result *results, size_t n, void *user)
{
    struct fanout_wait *w = user;
    pthread_mutex_lock(&w->mu);
    w->results = results;
    w->n = n;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
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
    struct fanout_wait w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    /* One deadline for the whole (0: none, as for every call). */
    int ret = clink__fanout_start(cl, role, names, method, req, len, timeout_ms, NULL, take, &w);
    pthread_mutex_lock(&w.mu);
    while (ret == 0 && !w.done) {
        pthread_cond_wait(&w.cv, &w.mu);
    }
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (ret < 0) {
        return ret;
    }
    *results = w.results;
    *n = w.n;
    return 0;
}

void clink_fanout_free(struct clink_fanout_result *results, size_t n)
{
    for (size_t i = 0; results != NULL && i < n; i++) {
        clink_msg_free(&results[i].msg);
    }
    free(results);
}
