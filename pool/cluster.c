/*
 * The cluster: its pools (one per leaf or aggregator, added and removed by
 * name), the idempotent-method set behind retries, and the manager thread
 * that runs every pool's maintenance tick (pool/maintain.c) and finishes the
 * fan-outs that ended inside their start (pool/fanout_start.c).
 */
#include "pool/pool_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS 20

void clink__cluster_defer(struct clink_cluster *cl, struct clink__deferred *d)
{
    pthread_mutex_lock(&cl->mu);
    d->next = cl->deferred;
    cl->deferred = d;
    cl->kicked = 1;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

void clink__cluster_kick(struct clink_cluster *cl)
{
    pthread_mutex_lock(&cl->mu);
    cl->kicked = 1;
    pthread_cond_signal(&cl->cv);
    pthread_mutex_unlock(&cl->mu);
}

/*
 * The manager thread: every TICK_MS, or at once when kicked (a dead link, a
 * waiting call, a dial's end), one maintenance pass over each pool; a removed
 * pool that has drained leaves the cluster here.
 */
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
            clink__pool_ref(list[i]);
        }
        int stop = cl->stop;
        pthread_mutex_unlock(&cl->mu);
        uint64_t now = clink__now_ns();
        for (size_t i = 0; list && i < n; i++) {
            struct clink_pool *p = list[i];
            int drained = clink__pool_tick(p, now);
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
        struct clink__fanout *done = cl->fanouts_done;
        cl->fanouts_done = NULL;
        struct clink__deferred *later = cl->deferred;
        cl->deferred = NULL;
        pthread_mutex_unlock(&cl->mu);
        while (later != NULL) {
            struct clink__deferred *d = later;
            later = d->next;
            d->fn(d);
        }
        while (done != NULL) {
            struct clink__fanout *next = clink__fanout_next(done);
            clink__fanout_finish(done);
            done = next;
        }
        pthread_mutex_lock(&cl->mu);
        if (stop && cl->npools == 0 && cl->fanouts_done == NULL && cl->deferred == NULL) {
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
    clink__cluster_opts_resolve(&cl->o); /* pool/defaults.c */
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
    clink__pool_opts_resolve(&p->o);
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
        clink__pool_destroy(p);
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
            clink__pool_ref(p);
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
