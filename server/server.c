/*
 * A whole node from a config file or options: what clink-node used to build
 * by hand, in the same order (ticket keys, TLS, HTTPS identity, accounts,
 * node, port, ops endpoint; the cluster once the workers run), and the
 * graceful stop in reverse.
 */
#include "server/server_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/mysql.h"

static void say(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *copy_str(const char *s, int *oom)
{
    char *d = s ? strdup(s) : NULL;
    *oom |= s != NULL && d == NULL;
    return d;
}

/* The options, owned: strings and peers copied, the defaults that are values filled in. */
static int copy_opts(struct clink_server *srv, const struct clink_server_opts *in)
{
    struct clink_server_opts *o = &srv->o;
    int oom = 0;
    *o = in ? *in : (struct clink_server_opts){0};
    o->listen = copy_str(o->listen, &oom);
    o->cert_file = copy_str(o->cert_file, &oom);
    o->key_file = copy_str(o->key_file, &oom);
    o->ca_file = copy_str(o->ca_file, &oom);
    o->crl_file = copy_str(o->crl_file, &oom);
    o->accounts_file = copy_str(o->accounts_file, &oom);
    o->ticket_key_file = copy_str(o->ticket_key_file, &oom);
    o->name = copy_str(o->name, &oom);
    if (o->npeers > 0 && (srv->peers = malloc(o->npeers * sizeof(*srv->peers))) != NULL) {
        memcpy(srv->peers, in->peers, o->npeers * sizeof(*srv->peers));
    }
    oom |= o->npeers > 0 && srv->peers == NULL;
    o->peers = srv->peers;
    o->drain_ms = o->drain_ms ? o->drain_ms : clink_server_opts_default.drain_ms;
    o->log_level = o->log_level ? o->log_level : clink_server_opts_default.log_level;
    return oom ? -CLINK_ENOMEM : 0;
}

static void free_opts(struct clink_server_opts *o)
{
    free((char *)(uintptr_t)o->listen);
    free((char *)(uintptr_t)o->cert_file);
    free((char *)(uintptr_t)o->key_file);
    free((char *)(uintptr_t)o->ca_file);
    free((char *)(uintptr_t)o->crl_file);
    free((char *)(uintptr_t)o->accounts_file);
    free((char *)(uintptr_t)o->ticket_key_file);
    free((char *)(uintptr_t)o->name);
}

/* The credentials and the accounts, each checked as it is made. */
static int make_identity(struct clink_server *srv, struct clink_tls_ctx **tls, struct clink_tls_ctx **https, char *err,
                         size_t errlen)
{
    struct clink_config *cfg = srv->cfg;
    char why[512];
    int ret, plain = clink__server_plain_start(cfg);
    const char *tk = cfg->ssl_session_ticket_key[0] ? cfg->ssl_session_ticket_key : NULL;
    if ((ret = clink_ticket_keys_new(tk, 0, &srv->tickets, why, sizeof(why))) < 0) {
        say(err, errlen, "ssl_session_ticket_key: %s", why);
        return ret;
    }
    if (!plain && (ret = clink__server_tls(srv, cfg, tls, why, sizeof(why))) < 0) {
        say(err, errlen, "TLS configuration: %s", why);
        return ret;
    }
    if (cfg->ops && (ret = clink__server_https(srv, cfg, https, why, sizeof(why))) < 0) {
        if (!plain) {
            say(err, errlen, "ops endpoint: %s (ops = OFF runs without it)", why);
            return ret;
        }
        /* A plaintext node with no certificate yet: it runs, without the endpoint (a restart brings it). */
        clink__server_log(srv, CLINK_LOG_WARN, "ops endpoint off: %s", why);
        cfg->ops = 0;
    }
    if (cfg->accounts_file[0] && (ret = clink_accounts_load(cfg->accounts_file, &srv->acc, why, sizeof(why))) < 0) {
        say(err, errlen, "accounts: %s", why);
        return ret;
    }
    struct clink_login_throttle throttle = {.free_failures = cfg->login_free_failures,
                                            .delay_step_ms = cfg->login_delay_step_ms,
                                            .max_delay_ms = cfg->login_max_delay_ms,
                                            .entries = cfg->login_throttle_entries};
    if (srv->acc != NULL && (ret = clink_accounts_set_throttle(srv->acc, &throttle)) < 0) {
        say(err, errlen, "the failed-login throttle: %s", clink_strerror(ret));
        return ret;
    }
    return 0;
}

static int make_node(struct clink_server *srv, struct clink_tls_ctx *tls, char *err, size_t errlen)
{
    const struct clink_config *cfg = srv->cfg;
    srv->sql = (struct clink_mysql_builtin_opts){.reload_tls = clink__server_sql_reload_tls,
                                                 .reload_user = srv,
                                                 .no_auto_create_user = !cfg->grant_creates_user};
    srv->mysql = (struct clink_mysql_opts){.query = clink_mysql_builtin, .query_user = &srv->sql};
    struct clink_node_opts no = {
        .workers = cfg->workers,
        .tls = tls,
        /*
         * Plaintext is possible at all only where a file lets the transport-security state move (a
         * reload or POST /secure-transport may go down to ACCEPT_BOTH); the state says what is allowed now.
         */
        .allow_plaintext =
            srv->path != NULL || srv->o.allow_plaintext ||
            (srv->o.secure_transport != CLINK_SECURE_DEFAULT && srv->o.secure_transport != CLINK_SECURE_REQUIRE_TLS),
        .secure_transport = (enum clink_secure_transport)cfg->secure_transport,
        .handshake_timeout_ms = cfg->handshake_timeout_ms,
        .max_frame = cfg->max_frame,
        .max_message = cfg->max_message,
        .conn_window = cfg->conn_window,
        .stream_window = cfg->stream_window,
        .tcp_notsent_lowat = cfg->tcp_notsent_lowat,
        .zerocopy = (enum clink_zerocopy)cfg->zerocopy_send,
        .max_connections = cfg->max_connections,
        .max_node_links = cfg->max_node_links,
        .max_user_connections = cfg->max_user_connections,
        .wait_timeout_s = cfg->wait_timeout,
        .tcp_keepalive_s = cfg->tcp_keepalive_idle,
        .ktls = (enum clink_ktls_mode)cfg->ktls,
        .log = srv->o.log,
        .log_user = srv->o.log_user,
        .log_level = srv->o.log_level,
        .accounts = srv->acc,
        .mysql = srv->acc != NULL && cfg->mysql ? &srv->mysql : NULL,
    };
    int ret = clink_node_new(&no, &srv->node);
    if (ret < 0) {
        say(err, errlen, "%s", clink_strerror(ret));
        return ret;
    }
    if (srv->o.tool_methods && (ret = clink__server_tool_methods(srv)) < 0) {
        say(err, errlen, "cannot register methods");
        return ret;
    }
    if ((ret = clink_node_listen(srv->node, cfg->bind_address, cfg->port)) < 0) {
        say(err, errlen, "listen on %s port %u: %s", cfg->bind_address, cfg->port, clink_strerror(ret));
        return ret;
    }
    if (cfg->name[0]) {
        snprintf(srv->name, sizeof(srv->name), "%s", cfg->name);
    } else {
        char hn[48] = "localhost";
        CLINK_IGNORE(gethostname(hn, sizeof(hn) - 1) < 0);
        hn[sizeof(hn) - 1] = '\0';
        snprintf(srv->name, sizeof(srv->name), "%s:%u", hn, clink_node_port(srv->node));
    }
    return 0;
}

static int make_ops(struct clink_server *srv, struct clink_tls_ctx *https, char *err, size_t errlen)
{
    const struct clink_config *cfg = srv->cfg;
    struct clink_ops_opts oo = {.node = srv->node,
                                .addr = cfg->bind_address,
                                .port = cfg->ops_port,
                                .tls = https,
                                .accounts = srv->acc,
                                .reload = clink__server_ops_reload,
                                .reload_user = srv,
                                .config = srv->path != NULL ? clink__server_ops_config : NULL,
                                .config_user = srv,
                                .restart = srv->o.on_restart != NULL ? clink__server_ops_restart : NULL,
                                .restart_user = srv,
                                .renew = clink__server_ops_renew,
                                .renew_user = srv,
                                .issuer = srv->acc != NULL ? clink__server_ops_issuer : NULL,
                                .issuer_user = srv,
                                .name = srv->name,
                                .log = srv->o.log,
                                .log_user = srv->o.log_user,
                                .log_level = srv->o.log_level < CLINK_LOG_INFO ? srv->o.log_level : CLINK_LOG_INFO};
    int ret = clink_ops_new(&oo, &srv->ops);
    if (ret < 0) {
        say(err, errlen, "ops endpoint on %s port %u: %s (set ops_port, or ops = OFF)", cfg->bind_address,
            cfg->ops_port, clink_strerror(ret));
    }
    return ret;
}

static int build(const char *path, const struct clink_server_opts *opts, struct clink_server **out, char *err,
                 size_t errlen)
{
    char scratch[8];
    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    if (out == NULL || (opts != NULL && opts->npeers > 0 && opts->peers == NULL)) {
        say(err, errlen, "server: no place for the server, or peers missing");
        return -CLINK_EINVAL;
    }
    *out = NULL;
    struct clink_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return -CLINK_ENOMEM;
    }
    pthread_mutex_init(&srv->mu, NULL);
    struct clink_tls_ctx *tls = NULL, *https = NULL;
    int ret = copy_opts(srv, opts);
    if (ret == 0 && path != NULL && (srv->path = strdup(path)) == NULL) {
        ret = -CLINK_ENOMEM;
    }
    if (ret == 0 && (srv->cfg = malloc(sizeof(*srv->cfg))) == NULL) {
        ret = -CLINK_ENOMEM;
    }
    if (ret < 0) {
        say(err, errlen, "out of memory");
        goto out;
    }
    if ((ret = clink__server_settings(srv, srv->cfg, err, errlen)) < 0 ||
        (ret = make_identity(srv, &tls, &https, err, errlen)) < 0 || (ret = make_node(srv, tls, err, errlen)) < 0 ||
        (srv->cfg->ops && (ret = make_ops(srv, https, err, errlen)) < 0)) {
        goto out;
    }
    *out = srv;
out:
    clink_tls_ctx_free(https); /* the node holds its own references */
    clink_tls_ctx_free(tls);
    if (ret < 0) {
        clink_server_free(srv);
    }
    return ret;
}

int clink_server_new_from_config(const char *path, const struct clink_server_opts *opts, struct clink_server **out,
                                 char *err, size_t errlen)
{
    if (path == NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "server: no config file");
        }
        return -CLINK_EINVAL;
    }
    return build(path, opts, out, err, errlen);
}

int clink_server_new(const struct clink_server_opts *opts, struct clink_server **out, char *err, size_t errlen)
{
    return build(NULL, opts, out, err, errlen);
}

int clink_server_register(struct clink_server *srv, uint16_t method, clink_handler_fn fn, void *user)
{
    if (srv == NULL) {
        return -CLINK_EINVAL;
    }
    return clink_node_register(srv->node, method, fn, user);
}

/* An aggregator: one pool per [leaf]/[aggregator] peer, kept warm from now on. */
static int make_cluster(struct clink_server *srv, char *err, size_t errlen)
{
    const struct clink_config *cfg = srv->cfg;
    struct clink_cluster_opts clo = {.node = srv->node,
                                     .log = srv->o.log,
                                     .log_user = srv->o.log_user,
                                     .log_level =
                                         srv->o.log_level < CLINK_LOG_INFO ? srv->o.log_level : CLINK_LOG_INFO};
    struct clink_cluster *cl = NULL;
    int ret = clink_cluster_new(&clo, &cl), first = 0;
    if (ret < 0) {
        say(err, errlen, "cluster: %s", clink_strerror(ret));
        return ret;
    }
    for (size_t i = 0; i < cfg->npeers; i++) {
        const struct clink_config_peer *cp = &cfg->peers[i];
        struct clink_pool_opts pool = {.ktls = (enum clink_ktls_mode)cp->ktls}; /* 0 for the rest: defaults */
        struct clink_peer peer = {.name = cp->name,
                                  .role = cp->aggregator ? CLINK_ROLE_AGGREGATOR : CLINK_ROLE_LEAF,
                                  .host = cp->host,
                                  .port = cp->port,
                                  .expected_name = cp->ssl_server_name[0] ? cp->ssl_server_name : NULL,
                                  .ssl_mode = (enum clink_ssl_mode)cp->ssl_mode,
                                  .user = cp->user[0] ? cp->user : NULL,
                                  .pool = &pool};
        if ((ret = clink_cluster_add(cl, &peer)) < 0 && first == 0) {
            first = ret;
            say(err, errlen, "[%s %s]: %s", cp->aggregator ? "aggregator" : "leaf", cp->name, clink_strerror(ret));
        }
    }
    atomic_store_explicit(&srv->cluster, cl, memory_order_release);
    clink_ops_set_cluster(srv->ops, cl);
    return first;
}

int clink_server_start(struct clink_server *srv, char *err, size_t errlen)
{
    char scratch[8];
    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    if (srv == NULL || srv->started) {
        return -CLINK_EINVAL;
    }
    int ret = clink_node_start(srv->node);
    if (ret < 0) {
        say(err, errlen, "start: %s", clink_strerror(ret));
        return ret;
    }
    srv->started = 1;
    return srv->cfg->npeers > 0 ? make_cluster(srv, err, errlen) : 0;
}

void clink_server_stop(struct clink_server *srv)
{
    if (srv == NULL || srv->node == NULL) {
        return;
    }
    if (clink_thread_is_worker()) {
        clink__server_log(srv, CLINK_LOG_ERROR, "clink_server_stop on a worker: refused (it waits for the workers)");
        return;
    }
    /*
     * Once no reload is under way (they check `stopped` under the lock), stop without holding it: a POST /reload
     * waiting for the lock on the ops thread would otherwise keep clink_ops_free from joining that thread.
     */
    pthread_mutex_lock(&srv->mu);
    int was = srv->stopped;
    srv->stopped = 1;
    pthread_mutex_unlock(&srv->mu);
    if (was) {
        return;
    }
    CLINK_IGNORE(clink_node_shutdown(srv->node, srv->o.drain_ms));
    clink_ops_free(srv->ops); /* after the workers stopped, before the node is freed (clink/ops.h) */
    srv->ops = NULL;
    /* After the workers stopped: no handler can read it; its connections are closed already. */
    clink_cluster_free(atomic_exchange(&srv->cluster, NULL));
}

void clink_server_free(struct clink_server *srv)
{
    if (srv == NULL) {
        return;
    }
    if (clink_thread_is_worker()) {
        clink__server_log(srv, CLINK_LOG_ERROR, "clink_server_free on a worker: refused (it waits for the workers)");
        return;
    }
    clink_server_stop(srv);
    clink__server_renew_forget(srv); /* a key made for a renewal that never came: wiped */
    clink_node_free(srv->node);
    clink_accounts_free(srv->acc);
    clink_ticket_keys_free(srv->tickets);
    free(srv->cfg);
    free(srv->path);
    free(srv->peers);
    free_opts(&srv->o);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

struct clink_node *clink_server_node(struct clink_server *srv)
{
    return srv ? srv->node : NULL;
}

struct clink_cluster *clink_server_cluster(struct clink_server *srv)
{
    return srv ? atomic_load_explicit(&srv->cluster, memory_order_acquire) : NULL;
}

struct clink_ops *clink_server_ops(struct clink_server *srv)
{
    return srv ? srv->ops : NULL;
}

struct clink_accounts *clink_server_accounts(struct clink_server *srv)
{
    return srv ? srv->acc : NULL;
}

uint16_t clink_server_port(const struct clink_server *srv)
{
    return srv && srv->node ? clink_node_port(srv->node) : 0;
}

uint16_t clink_server_ops_port(const struct clink_server *srv)
{
    return srv && srv->ops ? clink_node_https_port(srv->node) : 0;
}

size_t clink_server_describe(const struct clink_server *srv, char *buf, size_t cap)
{
    if (srv == NULL || buf == NULL || cap == 0) {
        return 0;
    }
    const struct clink_config *cfg = srv->cfg;
    size_t n = 0;
    if (srv->stopped) {
        struct clink_node_stats s;
        clink_node_get_stats(srv->node, &s);
        n = (size_t)snprintf(buf, cap, "stopped: %llu connections accepted, %llu refused, %llu requests handled\n",
                             (unsigned long long)s.conns_accepted, (unsigned long long)s.conns_refused,
                             (unsigned long long)s.requests_handled);
        return n < cap ? n : cap - 1;
    }
    n += (size_t)snprintf(buf, cap, "listening on %s port %u, %u workers, transport security %s\n", cfg->bind_address,
                          clink_node_port(srv->node), clink_node_workers(srv->node),
                          clink_secure_transport_name(clink_node_secure_transport(srv->node)));
    if (n < cap && srv->ops != NULL) {
        n += (size_t)snprintf(buf + n, cap - n, "ops endpoint: https://%s:%u/ (/metrics, /status)\n", cfg->bind_address,
                              clink_node_https_port(srv->node));
    }
    if (n < cap) {
        n += (size_t)snprintf(buf + n, cap - n, "%s\n",
                              srv->acc ? "clients log in as accounts"
                                       : "no accounts file: a verified certificate is all a client proves");
    }
    if (n < cap && cfg->npeers > 0) {
        n += (size_t)snprintf(buf + n, cap - n, "aggregator of %zu peer(s)\n", cfg->npeers);
    }
    return n < cap ? n : cap - 1;
}
