/*
 * The node's lifecycle: creation with its defaults, handlers, start and
 * shutdown of the workers, and free. The rest of the public node API sits
 * beside it by concern: node_listen.c, node_tls.c, node_secure.c,
 * node_stats.c, node_links.c, and the entry points that hand work to the
 * owning worker from another thread, conn_api.c and calls_api.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "transport/conn_int.h"
#include "transport/frame.h"

#define MAX_FRAME_CEILING  (64u << 20)
#define MAX_WAIT_TIMEOUT_S 31536000 /* a year, MySQL's ceiling */
#define MAX_KEEPALIVE_S    32767    /* the kernel's ceiling for TCP_KEEPIDLE */

static int probe_ktls_ulp(void)
{
    /* Only a hint for status and bench output; kTLS itself is a later step (issue: kTLS offload). */
    int fd = open("/proc/sys/net/ipv4/tcp_available_ulp", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \n", &save); tok != NULL; tok = strtok_r(NULL, " \n", &save)) {
        if (strcmp(tok, "tls") == 0) {
            return 1;
        }
    }
    return 0;
}

int clink_node_new(const struct clink_node_opts *opts, struct clink_node **out)
{
    if (opts == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    if (opts->tls == NULL && !opts->allow_plaintext) {
        return -CLINK_EINVAL; /* no way to speak at all */
    }
    if (opts->tls != NULL && clink_tls_ctx_client(opts->tls) == NULL) {
        return -CLINK_EINVAL; /* an HTTPS-only context (clink_tls_ctx_new_https) */
    }
    enum clink_secure_transport secure = opts->secure_transport;
    if (secure == CLINK_SECURE_DEFAULT) {
        secure = opts->tls == NULL       ? CLINK_SECURE_PLAINTEXT
                 : opts->allow_plaintext ? CLINK_SECURE_PREFER_TLS
                                         : CLINK_SECURE_REQUIRE_TLS;
    }
    if (secure > CLINK_SECURE_REQUIRE_TLS || (secure != CLINK_SECURE_PLAINTEXT && opts->tls == NULL) ||
        (secure != CLINK_SECURE_REQUIRE_TLS && !opts->allow_plaintext)) {
        return -CLINK_EINVAL;
    }
    if (opts->max_frame != 0 && (opts->max_frame < CLINK_MAX_FRAME_FLOOR || opts->max_frame > MAX_FRAME_CEILING)) {
        return -CLINK_EINVAL;
    }
    if (opts->inbox_size != 0 && (opts->inbox_size < 4 || (opts->inbox_size & (opts->inbox_size - 1)) != 0)) {
        return -CLINK_EINVAL;
    }
    if (opts->wait_timeout_s > MAX_WAIT_TIMEOUT_S || opts->tcp_keepalive_s > MAX_KEEPALIVE_S ||
        opts->tcp_notsent_lowat > (1u << 30) || (unsigned)opts->zerocopy > CLINK_ZEROCOPY_ON) {
        return -CLINK_EINVAL;
    }
    struct clink_node_opts resolved = *opts;
    clink__node_opts_resolve(&resolved); /* transport/defaults.c: every default, as values */
    /* What SETTINGS announces must be what a peer accepts (frame.c: clink__settings_decode). */
    struct clink_settings st = {resolved.max_message, resolved.conn_window, resolved.stream_window};
    uint8_t sb[CLINK_SETTINGS_LEN];
    clink__settings_encode(sb, &st);
    if (clink__settings_decode(sb, &st) < 0 || resolved.proto_max < CLINK_PROTO_MIN ||
        resolved.proto_max > CLINK_PROTO_MAX) {
        return -CLINK_EINVAL;
    }
    /* A budget of a few buffers per worker would keep connections from ever opening. */
    if (opts->max_buffered != 0 && resolved.max_buffered / resolved.workers < (1u << 20)) {
        return -CLINK_EINVAL;
    }
    struct clink_node *n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return -CLINK_ENOMEM;
    }
    n->opts = resolved;
    if (opts->mysql != NULL) {
        /* Copied: the caller's struct may be gone after this call. */
        n->mysql_opts = *opts->mysql;
        n->opts.mysql = &n->mysql_opts;
    }
    pthread_mutex_init(&n->tls_mu, NULL);
    pthread_mutex_init(&n->secure_mu, NULL);
    pthread_mutex_init(&n->limits.mu, NULL);
    clink__sessions_init(&n->sessions);
    n->log.fn = n->opts.log;
    n->log.user = n->opts.log_user;
    n->log.level = n->opts.log_level;
    n->listen_fd = -1;
    n->https_fd = -1;
    atomic_init(&n->secure, (int)secure);
    atomic_init(&n->next_conn_id, 1);
    n->ktls_ulp = probe_ktls_ulp();
    n->nworkers = n->opts.workers;
    n->handlers = calloc(65536, sizeof(*n->handlers));
    n->workers = aligned_alloc(64, sizeof(*n->workers) * n->nworkers);
    if (n->handlers == NULL || n->workers == NULL) {
        free(n->handlers);
        free(n->workers);
        free(n);
        return -CLINK_ENOMEM;
    }
    memset(n->workers, 0, sizeof(*n->workers) * n->nworkers);
    int ret = 0;
    for (unsigned i = 0; i < n->nworkers; i++) {
        struct clink_worker *w = &n->workers[i];
        w->node = n;
        w->idx = i;
        w->recheck_msg.kind = MSG_RECHECK;
        w->listen_fd = -1;
        w->https_fd = -1;
        w->efd = -1;
        w->budget = (size_t)(n->opts.max_buffered / n->nworkers);
        clink__timer_init(&w->drain_timer, TIMER_DRAIN);
        clink__timer_init(&w->accept_timer, TIMER_ACCEPT);
        clink__timer_init(&w->hs_evict_timer, TIMER_HS_EVICT);
        clink__timer_init(&w->budget_timer, TIMER_BUDGET);
        clink__timer_init(&w->idle_timer, TIMER_IDLE);
        w->inbox_buf = calloc(n->opts.inbox_size, sizeof(*w->inbox_buf));
        w->efd = eventfd(0, EFD_CLOEXEC);
        if (w->inbox_buf == NULL || w->efd < 0) {
            ret = w->inbox_buf == NULL ? -CLINK_ENOMEM : -errno;
            n->nworkers = i + 1;
            break;
        }
        ck_ring_init(&w->inbox, n->opts.inbox_size);
    }
    if (ret < 0) {
        clink_node_free(n);
        return ret;
    }
    if (n->opts.tls) {
        n->tls = n->opts.tls;
        clink_tls_ctx_ref(n->tls);
        clink__tls_prepare_ctx(clink_tls_ctx_server(n->tls));
        clink__tls_prepare_ctx(clink_tls_ctx_client(n->tls));
        if (n->ktls_ulp) {
            clink__tls_keep_secrets(clink_tls_ctx_server(n->tls));
            clink__tls_keep_secrets(clink_tls_ctx_client(n->tls));
        }
    }
    if (n->opts.accounts) {
        n->accounts = n->opts.accounts;
        clink_accounts_ref(n->accounts);
    }
    *out = n;
    return 0;
}

int clink_node_register(struct clink_node *node, uint16_t method, clink_handler_fn fn, void *user)
{
    if (node == NULL || fn == NULL || method > CLINK_METHOD_MAX_USER || atomic_load(&node->started)) {
        return -CLINK_EINVAL;
    }
    if (node->handlers[method].fn != NULL) {
        return -CLINK_EINVAL;
    }
    node->handlers[method].fn = fn;
    node->handlers[method].user = user;
    return 0;
}

unsigned clink_node_workers(const struct clink_node *node)
{
    return node ? node->nworkers : 0;
}

int clink_node_start(struct clink_node *node)
{
    if (node == NULL) {
        return -CLINK_EINVAL;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&node->started, &expected, 1)) {
        return -CLINK_EINVAL;
    }
    node->start_ns = clink__now_ns();
    /* Worker 0 accepts and deals connections out to all workers (msg_ring hand-off). */
    node->workers[0].listen_fd = node->listen_fd;
    node->listen_fd = -1;
    node->workers[0].https_fd = node->https_fd;
    node->https_fd = -1;
    if (pthread_barrier_init(&node->ready, NULL, node->nworkers + 1) != 0) {
        return -CLINK_ENOMEM;
    }
    unsigned started = 0;
    int ret = 0;
    for (unsigned i = 0; i < node->nworkers; i++) {
        if ((ret = clink__worker_start(&node->workers[i])) < 0) {
            break;
        }
        started++;
    }
    if (ret < 0) {
        /* The barrier counts every worker: stand in for those that never started. */
        node->start_err = ret;
        for (unsigned i = started; i < node->nworkers; i++) {
            atomic_store(&node->workers[i].exited, 1);
        }
        for (unsigned i = started; i < node->nworkers + 1; i++) {
            pthread_barrier_wait(&node->ready);
        }
    } else {
        pthread_barrier_wait(&node->ready);
    }
    if (node->start_err < 0) {
        for (unsigned i = 0; i < started; i++) {
            pthread_join(node->workers[i].thread, NULL);
        }
        node->nworkers = started > 0 ? started : node->nworkers;
        atomic_store(&node->stopping, 2);
        return node->start_err;
    }
    return 0;
}

int clink_node_shutdown(struct clink_node *node, uint32_t drain_ms)
{
    if (node == NULL) {
        return -CLINK_EINVAL;
    }
    if (clink__current_worker != NULL) {
        return -CLINK_EWOULDBLOCK; /* it waits for every worker, this one included */
    }
    int expected = 0;
    if (!atomic_load(&node->started)) {
        return 0;
    }
    if (!atomic_compare_exchange_strong(&node->stopping, &expected, 1)) {
        /* Someone else is stopping it: return only once the workers are joined. */
        while (atomic_load(&node->stopping) != 2) {
            usleep(1000);
        }
        return 0;
    }
    struct clink__msg_stop *msgs = calloc(node->nworkers, sizeof(*msgs));
    for (unsigned i = 0; i < node->nworkers; i++) {
        struct clink__msg_stop local = {.hdr.kind = MSG_STOP, .drain_ms = drain_ms};
        struct clink__msg_stop *m = msgs ? &msgs[i] : &local;
        *m = local;
        /* A stop must get through: wait for room rather than fail. */
        while (clink__worker_post(&node->workers[i], m) == -CLINK_EAGAIN) {
            usleep(1000);
        }
        if (msgs == NULL) {
            /* Without memory for messages, stop workers one at a time (local lives only this iteration). */
            pthread_join(node->workers[i].thread, NULL);
        }
    }
    if (msgs != NULL) {
        for (unsigned i = 0; i < node->nworkers; i++) {
            pthread_join(node->workers[i].thread, NULL);
        }
        free(msgs);
    }
    atomic_store(&node->stopping, 2);
    return 0;
}

void clink_node_free(struct clink_node *node)
{
    if (node == NULL) {
        return;
    }
    CLINK_IGNORE(clink_node_shutdown(node, 0) < 0);
    if (atomic_load(&node->started)) {
        pthread_barrier_destroy(&node->ready);
    }
    for (unsigned i = 0; i < node->nworkers; i++) {
        struct clink_worker *w = &node->workers[i];
        if (w->efd >= 0) {
            close(w->efd);
        }
        if (w->listen_fd >= 0) {
            close(w->listen_fd);
        }
        if (w->https_fd >= 0) {
            close(w->https_fd);
        }
        free(w->inbox_buf);
        clink__timers_free(&w->timers);
        struct clink_req *lists[2] = {w->free_reqs, w->orphans};
        for (int l = 0; l < 2; l++) {
            while (lists[l] != NULL) {
                struct clink_req *r = lists[l];
                lists[l] = r->next;
                free(r);
            }
        }
    }
    if (node->listen_fd >= 0) {
        close(node->listen_fd);
    }
    if (node->https_fd >= 0) {
        close(node->https_fd);
    }
    clink_tls_ctx_free(node->tls);
    clink_tls_ctx_free(node->https_tls);
    clink_accounts_free(node->accounts);
    pthread_mutex_destroy(&node->tls_mu);
    pthread_mutex_destroy(&node->secure_mu);
    clink__limits_free(&node->limits);
    clink__sessions_free(&node->sessions);
    free(node->workers);
    free(node->handlers);
    free(node);
}

void clink_node_features(const struct clink_node *node, struct clink_features *out)
{
    /* Written by worker 0 before the start barrier; read after it. */
    *out = node->workers[0].feat;
}
