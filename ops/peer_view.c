/*
 * Each peer as it sees itself, for an aggregator's page: every 10 seconds a
 * thread of its own asks each peer that is up where its ops port is (its
 * answer to the status method, over the pool's verified link), then reads
 * that port's GET /status over HTTPS, verified against this node's own
 * CAs and the peer's configured name, and keeps a few facts: its transport
 * security, its plaintext links, its certificate's expiry. Never on a
 * worker, never on the ops thread (a slow peer does not slow the page), at
 * most CLINK__PEER_VIEWS peers, each fetch within 2 s.
 */
#include <cjson/cJSON.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clink/http.h"
#include "ops/ops_int.h"

#define REFRESH_S 10
#define FETCH_MS  2000

struct clink__peer_views {
    struct clink_node *node;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;  /* on CLOCK_MONOTONIC */
    struct clink_cluster *cluster;
    int stop, started;
    int busy; /* a round is reading the cluster: set_cluster waits for it */
    pthread_t thread;
    struct clink__peer_view v[CLINK__PEER_VIEWS];
    size_t n;
};

/* The facts kept from a peer's /status. */
static void read_status(struct clink__peer_view *v, const char *body)
{
    cJSON *root = cJSON_Parse(body);
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(root, "node");
    const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(node, "secure_transport"));
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(node, "plaintext_links");
    if (st == NULL) {
        snprintf(v->why, sizeof(v->why), "its /status has no node.secure_transport");
        cJSON_Delete(root);
        return;
    }
    v->ok = 1;
    snprintf(v->secure, sizeof(v->secure), "%s", st);
    v->plaintext_links = cJSON_IsNumber(pl) ? (unsigned long)pl->valuedouble : 0;
    /* Its own certificate: the node's, kind own, the earliest to expire. */
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "certificates"))
    {
        const char *use = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "use"));
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "kind"));
        /* expires_in_s from its clock, made a time on ours (not_after is text) */
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(c, "expires_in_s");
        int64_t at = cJSON_IsNumber(in) ? (int64_t)time(NULL) + (int64_t)in->valuedouble : 0;
        if (use && kind && !strcmp(use, "node") && !strcmp(kind, "own") && at != 0 &&
            (v->cert_not_after == 0 || at < v->cert_not_after)) {
            v->cert_not_after = at;
        }
    }
    cJSON_Delete(root);
}

/* A client context that trusts what this node trusts (its store, CRL included); no certificate of ours. */
static SSL_CTX *client_ctx(struct clink_node *node)
{
    struct clink_tls_ctx *tls = clink_node_tls(node, 0);
    SSL_CTX *mine = tls ? clink_tls_ctx_client(tls) : NULL, *ctx = NULL;
    X509_STORE *store = mine ? SSL_CTX_get_cert_store(mine) : NULL;
    if (store != NULL && (ctx = SSL_CTX_new(TLS_client_method())) != NULL && X509_STORE_up_ref(store) == 1) {
        SSL_CTX_set_cert_store(ctx, store);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    }
    clink_tls_ctx_free(tls);
    return ctx;
}

static void refresh(struct clink__peer_views *pv, struct clink_cluster *cl)
{
    struct clink_peer_info *peers = calloc(CLINK__PEER_VIEWS, sizeof(*peers));
    struct clink__peer_view *v = calloc(CLINK__PEER_VIEWS, sizeof(*v));
    const char **names = calloc(CLINK__PEER_VIEWS + 1, sizeof(*names));
    SSL_CTX *ctx = client_ctx(pv->node);
    struct clink_admin *http = ctx ? clink__admin_anonymous(ctx, FETCH_MS) : NULL;
    size_t n = peers && v && names ? clink_cluster_peers(cl, peers, CLINK__PEER_VIEWS) : 0, k = 0;
    n = n > CLINK__PEER_VIEWS ? CLINK__PEER_VIEWS : n;
    for (size_t i = 0; i < n; i++) {
        if (peers[i].stats.up) {
            names[k++] = peers[i].name;
        }
    }
    struct clink_fanout_result *res = NULL;
    size_t nres = 0;
    if (k > 0 &&
        clink_cluster_fanout(cl, CLINK_ROLE_LEAF, names, CLINK_METHOD_STATUS, NULL, 0, FETCH_MS, &res, &nres) < 0) {
        nres = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct clink__peer_view *x = &v[i];
        snprintf(x->name, sizeof(x->name), "%s", peers[i].name);
        x->at = (int64_t)time(NULL);
        for (size_t r = 0; r < nres; r++) {
            if (res[r].status == 0 && strcmp(res[r].peer, x->name) == 0) {
                x->ops_port = (uint16_t)clink__ops_port_of_status(&res[r].msg);
            }
        }
        if (!peers[i].stats.up) {
            snprintf(x->why, sizeof(x->why), "down");
            continue;
        }
        if (x->ops_port == 0) {
            snprintf(x->why, sizeof(x->why), "runs no ops endpoint");
            continue;
        }
        if (http == NULL) {
            snprintf(x->why, sizeof(x->why), "this node has no TLS trust to verify it with");
            continue;
        }
        /* Its address as configured, verified by the name its certificate must carry (as the pool dials it). */
        char *body = NULL, err[160];
        int status = 0;
        const char *name = peers[i].expected_name[0] ? peers[i].expected_name : peers[i].host;
        if (clink__admin_get(http, peers[i].host, x->ops_port, name, "/status", &status, &body, err, sizeof(err)) < 0) {
            snprintf(x->why, sizeof(x->why), "%s", err);
        } else if (status != 200) {
            snprintf(x->why, sizeof(x->why), "GET /status answered %d", status);
        } else {
            read_status(x, body);
        }
        free(body);
    }
    clink_fanout_free(res, nres);
    clink_admin_free(http);
    SSL_CTX_free(ctx);
    pthread_mutex_lock(&pv->mu);
    if (v != NULL && pv->cluster == cl) {
        memcpy(pv->v, v, n * sizeof(*v));
        pv->n = n;
    }
    pthread_mutex_unlock(&pv->mu);
    free(names);
    free(v);
    free(peers);
}

static void *run(void *arg)
{
    struct clink__peer_views *pv = arg;
    pthread_mutex_lock(&pv->mu);
    while (!pv->stop) {
        struct clink_cluster *cl = pv->cluster;
        if (cl != NULL) {
            /* Without the lock (the page copies the views meanwhile); set_cluster waits for the round to end. */
            pv->busy = 1;
            pthread_mutex_unlock(&pv->mu);
            refresh(pv, cl);
            pthread_mutex_lock(&pv->mu);
            pv->busy = 0;
            pthread_cond_broadcast(&pv->cv);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += cl != NULL && pv->n == 0 ? 1 : REFRESH_S; /* no peer seen yet: look again soon */
        while (!pv->stop && pthread_cond_timedwait(&pv->cv, &pv->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&pv->mu);
    return NULL;
}

struct clink__peer_views *clink__peer_views_start(struct clink_node *node)
{
    struct clink__peer_views *pv = calloc(1, sizeof(*pv));
    if (pv == NULL) {
        return NULL;
    }
    pv->node = node;
    pthread_mutex_init(&pv->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pv->cv, &ca);
    pthread_condattr_destroy(&ca);
    pv->started = pthread_create(&pv->thread, NULL, run, pv) == 0;
    if (!pv->started) {
        clink__peer_views_stop(pv);
        return NULL;
    }
    return pv;
}

void clink__peer_views_set_cluster(struct clink__peer_views *pv, struct clink_cluster *cl)
{
    if (pv == NULL) {
        return;
    }
    pthread_mutex_lock(&pv->mu);
    pv->cluster = cl;
    while (pv->busy) { /* a round may still read the cluster being taken away */
        pthread_cond_wait(&pv->cv, &pv->mu);
    }
    pv->n = cl == NULL ? 0 : pv->n;
    pthread_cond_broadcast(&pv->cv);
    pthread_mutex_unlock(&pv->mu);
}

size_t clink__peer_views_copy(struct clink__peer_views *pv, struct clink__peer_view *out, size_t cap)
{
    if (pv == NULL) {
        return 0;
    }
    pthread_mutex_lock(&pv->mu);
    size_t n = pv->n < cap ? pv->n : cap;
    memcpy(out, pv->v, n * sizeof(*out));
    pthread_mutex_unlock(&pv->mu);
    return n;
}

void clink__peer_views_stop(struct clink__peer_views *pv)
{
    if (pv == NULL) {
        return;
    }
    pthread_mutex_lock(&pv->mu);
    pv->stop = 1;
    pthread_cond_broadcast(&pv->cv);
    pthread_mutex_unlock(&pv->mu);
    if (pv->started) {
        pthread_join(pv->thread, NULL);
    }
    pthread_mutex_destroy(&pv->mu);
    pthread_cond_destroy(&pv->cv);
    free(pv);
}
