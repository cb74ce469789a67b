/*
 * Transport security: whether the node dials and accepts plaintext, TLS or
 * both (enum clink_secure_transport), and changing that at run time, applied
 * on every worker to the connections it owns.
 */
#include "transport/conn_int.h"

int clink_node_dial_plaintext(const struct clink_node *node, enum clink_conn_mode mode, enum clink_ssl_mode ssl_mode)
{
    if (mode == CLINK_MODE_PLAIN || ssl_mode == CLINK_SSL_DISABLED) {
        return 1;
    }
    if (ssl_mode == CLINK_SSL_PREFERRED && node->opts.allow_plaintext &&
        !clink__node_has_tls((struct clink_node *)(uintptr_t)node)) {
        return 1; /* PREFERRED without a TLS identity of ours: plaintext (clink_connect logs and counts it) */
    }
    if (mode == CLINK_MODE_TLS || ssl_mode != CLINK_SSL_DEFAULT) {
        return 0;
    }
    int s = atomic_load(&node->secure);
    return s == CLINK_SECURE_PLAINTEXT || s == CLINK_SECURE_ACCEPT_BOTH;
}

enum clink_secure_transport clink_node_secure_transport(const struct clink_node *node)
{
    return (enum clink_secure_transport)atomic_load(&node->secure);
}

const char *clink_secure_transport_name(enum clink_secure_transport state)
{
    switch (state) {
    case CLINK_SECURE_PLAINTEXT:
        return "PLAINTEXT";
    case CLINK_SECURE_ACCEPT_BOTH:
        return "ACCEPT_BOTH";
    case CLINK_SECURE_PREFER_TLS:
        return "PREFER_TLS";
    case CLINK_SECURE_REQUIRE_TLS:
        return "REQUIRE_TLS";
    case CLINK_SECURE_DEFAULT:
        break;
    }
    return "DEFAULT";
}

static void apply_secure_on_worker(struct clink_worker *w, void *arg)
{
    (void)arg;
    /* The state now, not the one asked for: of two changes racing, every worker ends with the last. */
    clink__conn_apply_secure(w, (enum clink_secure_transport)atomic_load(&w->node->secure));
}

int clink_node_set_secure_transport(struct clink_node *node, enum clink_secure_transport state)
{
    if (node == NULL || state == CLINK_SECURE_DEFAULT || state > CLINK_SECURE_REQUIRE_TLS ||
        (state != CLINK_SECURE_PLAINTEXT && !clink__node_has_tls(node)) ||
        (state != CLINK_SECURE_REQUIRE_TLS && !node->opts.allow_plaintext)) {
        return -CLINK_EINVAL;
    }
    if (clink__current_worker != NULL) {
        return -CLINK_EWOULDBLOCK; /* before anything changes: it waits for every worker to apply it */
    }
    pthread_mutex_lock(&node->secure_mu); /* one change at a time, applied in order */
    int old = atomic_exchange(&node->secure, (int)state);
    if (old != (int)state) {
        CLINK_LOG(&node->log, CLINK_LOG_WARN, "transport", 0, "transport security: %s -> %s",
                  clink_secure_transport_name((enum clink_secure_transport)old), clink_secure_transport_name(state));
    }
    int ret = 0;
    for (unsigned i = 0; i < node->nworkers && atomic_load(&node->started) && ret == 0; i++) {
        ret = clink__worker_run_sync(&node->workers[i], apply_secure_on_worker, NULL);
        ret = ret == -CLINK_ESHUTDOWN ? 0 : ret;
    }
    pthread_mutex_unlock(&node->secure_mu);
    return ret;
}
