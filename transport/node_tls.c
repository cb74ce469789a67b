/*
 * The node's TLS identities: the context it dials and accepts with and the
 * HTTPS one, read under tls_mu by whoever opens a connection, and swapped at
 * run time (clink_node_reload_tls, clink_node_reload_https) while the
 * connections made with the old ones run on.
 */
#include "transport/node_int.h"

struct clink_tls_ctx *clink_node_tls(struct clink_node *node, int https)
{
    if (node == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&node->tls_mu);
    struct clink_tls_ctx *t = https ? node->https_tls : node->tls;
    if (t != NULL) {
        clink_tls_ctx_ref(t);
    }
    pthread_mutex_unlock(&node->tls_mu);
    return t;
}

int clink__node_has_tls(struct clink_node *n)
{
    pthread_mutex_lock(&n->tls_mu);
    int has = n->tls != NULL;
    pthread_mutex_unlock(&n->tls_mu);
    return has;
}

/*
 * A node that started in plaintext may gain a TLS identity here (the first
 * step of moving a cluster to TLS without a restart): nothing uses it until
 * the node leaves the PLAINTEXT state.
 */
int clink_node_reload_tls(struct clink_node *node, struct clink_tls_ctx *ctx)
{
    if (node == NULL || ctx == NULL || clink_tls_ctx_client(ctx) == NULL) {
        return -CLINK_EINVAL; /* an HTTPS-only context (clink_tls_ctx_new_https) cannot dial */
    }
    clink_tls_ctx_ref(ctx);
    clink__tls_prepare_ctx(clink_tls_ctx_server(ctx));
    clink__tls_prepare_ctx(clink_tls_ctx_client(ctx));
    if (node->ktls_ulp) {
        clink__tls_keep_secrets(clink_tls_ctx_server(ctx));
        clink__tls_keep_secrets(clink_tls_ctx_client(ctx));
    }
    pthread_mutex_lock(&node->tls_mu);
    struct clink_tls_ctx *old = node->tls;
    node->tls = ctx;
    atomic_fetch_add_explicit(&node->tls_gen, 1, memory_order_release);
    pthread_mutex_unlock(&node->tls_mu);
    /*
     * Connections made with the old context hold their own OpenSSL
     * references and run on, but the new trust may refuse their peers: each
     * worker checks its own links (conn_recheck.c). A wake-up per worker,
     * never a wait: this may run on a worker. One whose inbox is full is
     * awake, and its loop sees the new generation anyway.
     */
    for (unsigned i = 0; i < node->nworkers && atomic_load(&node->started); i++) {
        struct clink_worker *w = &node->workers[i];
        if (atomic_exchange(&w->recheck_posted, 1) == 0 && clink__worker_post(w, &w->recheck_msg) < 0) {
            atomic_store(&w->recheck_posted, 0);
        }
    }
    clink_tls_ctx_free(old);
    /* Our tickets carry our old client certificate: resuming one would present it again. */
    clink__sessions_clear(&node->sessions);
    STAT_ADD_SHARED(&node->workers[0], tls_reloads, 1);
    CLINK_LOG(&node->log, CLINK_LOG_INFO, "transport", 0, "TLS credentials reloaded: new handshakes use them");
    return 0;
}

int clink_node_reload_https(struct clink_node *node, struct clink_tls_ctx *tls)
{
    if (node == NULL || tls == NULL || node->https_tls == NULL) {
        return -CLINK_EINVAL;
    }
    clink_tls_ctx_ref(tls);
    pthread_mutex_lock(&node->tls_mu);
    struct clink_tls_ctx *old = node->https_tls;
    node->https_tls = tls;
    pthread_mutex_unlock(&node->tls_mu);
    clink_tls_ctx_free(old);
    CLINK_LOG(&node->log, CLINK_LOG_INFO, "transport", 0, "HTTPS certificate reloaded: new connections use it");
    return 0;
}
