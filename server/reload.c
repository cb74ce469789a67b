/*
 * Reload: read the file again, build and check everything that can change
 * live, and only if all of it is good swap it in; say what changed, what
 * was applied and what waits for a restart. Also the two reloads the server
 * starts itself: POST /reload on the ops port and a MySQL client's ALTER
 * INSTANCE RELOAD TLS.
 */
#include "server/server_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a running node can take without a restart. */
#define LIVE                                                                                                           \
    (CLINK_SERVER_TLS | CLINK_SERVER_HTTPS | CLINK_SERVER_TICKETS | CLINK_SERVER_ACCOUNTS | CLINK_SERVER_THROTTLE |    \
     CLINK_SERVER_SECURITY | CLINK_SERVER_SQL)

const char *clink_server_part_name(enum clink_server_part part)
{
    switch (part) {
    case CLINK_SERVER_TLS:
        return "TLS";
    case CLINK_SERVER_HTTPS:
        return "HTTPS certificate";
    case CLINK_SERVER_TICKETS:
        return "session ticket keys";
    case CLINK_SERVER_ACCOUNTS:
        return "accounts";
    case CLINK_SERVER_THROTTLE:
        return "failed-login throttle";
    case CLINK_SERVER_SECURITY:
        return "require_secure_transport";
    case CLINK_SERVER_LISTEN:
        return "bind_address/port";
    case CLINK_SERVER_WORKERS:
        return "workers";
    case CLINK_SERVER_OPS:
        return "ops/ops_port/name";
    case CLINK_SERVER_PEERS:
        return "[leaf]/[aggregator] peers";
    case CLINK_SERVER_LIMITS:
        return "session limits, timeouts, max_frame, windows, ktls, mysql";
    case CLINK_SERVER_FILES:
        return "accounts_file/ssl_session_ticket_key";
    case CLINK_SERVER_SQL:
        return "grant_creates_user";
    }
    return "?";
}

static void add(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

#define DIFF(f) (memcmp(&a->f, &b->f, sizeof(a->f)) != 0)

/* Which parts' settings differ between what runs (a) and what the file now says (b). */
static unsigned diff(const struct clink_config *a, const struct clink_config *b, enum clink_secure_transport now)
{
    unsigned d = 0;
    if (strcmp(a->ssl_cert, b->ssl_cert) || strcmp(a->ssl_key, b->ssl_key) || strcmp(a->ssl_ca, b->ssl_ca) ||
        strcmp(a->ssl_crl, b->ssl_crl) || DIFF(tls_version) || strcmp(a->ssl_cipher, b->ssl_cipher) ||
        strcmp(a->tls_ciphersuites, b->tls_ciphersuites) || DIFF(ssl_client_cert) || DIFF(ssl_key_mode_check) ||
        DIFF(ssl_x509_strict)) {
        d |= CLINK_SERVER_TLS;
    }
    if (strcmp(a->ops_ssl_cert, b->ops_ssl_cert) || strcmp(a->ops_ssl_key, b->ops_ssl_key)) {
        d |= CLINK_SERVER_HTTPS;
    }
    if (DIFF(login_free_failures) || DIFF(login_delay_step_ms) || DIFF(login_max_delay_ms) ||
        DIFF(login_throttle_entries)) {
        d |= CLINK_SERVER_THROTTLE;
    }
    if ((enum clink_secure_transport)b->secure_transport != now) {
        d |= CLINK_SERVER_SECURITY;
    }
    if (strcmp(a->bind_address, b->bind_address) || DIFF(port)) {
        d |= CLINK_SERVER_LISTEN;
    }
    if (DIFF(workers)) {
        d |= CLINK_SERVER_WORKERS;
    }
    if (DIFF(ops) || DIFF(ops_port) || strcmp(a->name, b->name)) {
        d |= CLINK_SERVER_OPS;
    }
    if (DIFF(npeers) || memcmp(a->peers, b->peers, a->npeers * sizeof(a->peers[0])) != 0) {
        d |= CLINK_SERVER_PEERS;
    }
    if (DIFF(handshake_timeout_ms) || DIFF(max_frame) || DIFF(max_message) || DIFF(conn_window) ||
        DIFF(stream_window) || DIFF(tcp_notsent_lowat) || DIFF(zerocopy_send) || DIFF(ktls) || DIFF(mysql) ||
        DIFF(max_connections) || DIFF(max_node_links) || DIFF(max_user_connections) || DIFF(wait_timeout) ||
        DIFF(tcp_keepalive_idle)) {
        d |= CLINK_SERVER_LIMITS;
    }
    if (strcmp(a->accounts_file, b->accounts_file) || strcmp(a->ssl_session_ticket_key, b->ssl_session_ticket_key)) {
        d |= CLINK_SERVER_FILES;
    }
    if (DIFF(grant_creates_user)) {
        d |= CLINK_SERVER_SQL;
    }
    return d;
}

/* What a reload builds before it swaps anything. */
struct staged {
    struct clink_config *cfg;
    struct clink_tls_ctx *tls, *https;
    int security; /* move the transport-security state */
    int check;    /* only checked (clink__server_check): no warnings about the certificates */
};

static void unstage(struct staged *s)
{
    clink_tls_ctx_free(s->tls);
    clink_tls_ctx_free(s->https);
    free(s->cfg);
}

/* Build and check every live part; the first failure goes to rep->why. */
static int stage(struct clink_server *srv, struct staged *s, struct clink_server_report *rep)
{
    char err[400];
    const struct clink_config *cfg = s->cfg;
    int ret;
    if (!clink__server_plain_start(cfg) &&
        (ret = clink__server_tls_checked(srv, cfg, &s->tls, !s->check, err, sizeof(err))) < 0) {
        snprintf(rep->why, sizeof(rep->why), "TLS: %s; keeping the credentials in use.", err);
        return ret;
    }
    if (srv->ops != NULL && (ret = clink__server_https(srv, cfg, &s->https, err, sizeof(err))) < 0) {
        snprintf(rep->why, sizeof(rep->why), "HTTPS certificate: %s; keeping the one in use.", err);
        return ret;
    }
    if (srv->cfg->ssl_session_ticket_key[0]) {
        struct clink_ticket_keys *k = NULL;
        ret = clink_ticket_keys_new(srv->cfg->ssl_session_ticket_key, 0, &k, err, sizeof(err));
        clink_ticket_keys_free(k);
        if (ret < 0) {
            snprintf(rep->why, sizeof(rep->why), "ticket keys: %s; keeping the keys in use.", err);
            return ret;
        }
    }
    if (srv->acc != NULL) {
        struct clink_accounts *a = NULL;
        ret = clink_accounts_load(srv->cfg->accounts_file, &a, err, sizeof(err));
        clink_accounts_free(a);
        if (ret < 0) {
            snprintf(rep->why, sizeof(rep->why), "accounts: %s; keeping the accounts in use.", err);
            return ret;
        }
    }
    if (rep->changed & CLINK_SERVER_SECURITY) {
        struct clink_tls_ctx *have = clink_node_tls(srv->node, 0);
        clink_tls_ctx_free(have);
        if (cfg->secure_transport != CLINK_SECURE_PLAINTEXT && s->tls == NULL && have == NULL) {
            snprintf(rep->why, sizeof(rep->why),
                     "require_secure_transport %s: refused (a TLS state needs ssl_cert, ssl_key and ssl_ca).",
                     clink_secure_transport_name((enum clink_secure_transport)cfg->secure_transport));
            return -CLINK_ECONFIG;
        }
        s->security = 1;
    }
    return 0;
}

/* Swap what was staged, in the order clink-node always did; a swap that still fails is said. */
static void swap(struct clink_server *srv, struct staged *s, struct clink_server_report *rep)
{
    char err[400];
    int e;
    const struct clink_config *cfg = s->cfg;
    if (s->tls != NULL) {
        e = clink_node_reload_tls(srv->node, s->tls);
        add(rep->text, sizeof(rep->text), "TLS credentials %s. ", e == 0 ? "replaced" : clink_strerror(e));
        rep->applied |= e == 0 ? CLINK_SERVER_TLS : 0;
        rep->status = e < 0 && rep->status == 0 ? e : rep->status;
    }
    if (s->https != NULL) {
        e = clink_node_reload_https(srv->node, s->https);
        add(rep->text, sizeof(rep->text), "HTTPS certificate %s. ", e == 0 ? "replaced" : clink_strerror(e));
        rep->applied |= e == 0 ? CLINK_SERVER_HTTPS : 0;
        rep->status = e < 0 && rep->status == 0 ? e : rep->status;
    }
    if (s->security) {
        enum clink_secure_transport st = (enum clink_secure_transport)cfg->secure_transport;
        e = clink_node_set_secure_transport(srv->node, st);
        add(rep->text, sizeof(rep->text), "require_secure_transport %s: %s. ", clink_secure_transport_name(st),
            e == 0 ? "now in effect" : "refused (a TLS state needs ssl_cert, ssl_key and ssl_ca)");
        rep->applied |= e == 0 ? CLINK_SERVER_SECURITY : 0;
        rep->status = e < 0 && rep->status == 0 ? e : rep->status;
    }
    if (rep->changed & CLINK_SERVER_SQL) {
        /* Workers read it at each GRANT (mysql_accounts.c): an atomic store, no lock on their side. */
        __atomic_store_n(&srv->sql.no_auto_create_user, !cfg->grant_creates_user, __ATOMIC_RELAXED);
        add(rep->text, sizeof(rep->text), "grant_creates_user %s: now in effect. ",
            cfg->grant_creates_user ? "ON" : "OFF");
        rep->applied |= CLINK_SERVER_SQL;
    }
    if (srv->cfg->ssl_session_ticket_key[0]) {
        e = clink_ticket_keys_reload(srv->tickets, err, sizeof(err));
        if (e < 0) {
            add(rep->text, sizeof(rep->text), "ticket keys: %s; keeping the keys in use. ", err);
        } else {
            add(rep->text, sizeof(rep->text), "Session ticket keys read from %s. ", srv->cfg->ssl_session_ticket_key);
        }
        rep->applied |= e == 0 ? CLINK_SERVER_TICKETS : 0;
        rep->status = e < 0 && rep->status == 0 ? e : rep->status;
    }
    if (srv->acc != NULL) {
        e = clink_accounts_reload(srv->acc, err, sizeof(err));
        if (e < 0) {
            add(rep->text, sizeof(rep->text), "accounts: %s; keeping the accounts in use. ", err);
        } else {
            add(rep->text, sizeof(rep->text), "%zu account(s). ", clink_accounts_count(srv->acc));
        }
        rep->applied |= e == 0 ? CLINK_SERVER_ACCOUNTS : 0;
        rep->status = e < 0 && rep->status == 0 ? e : rep->status;
        if (rep->changed & CLINK_SERVER_THROTTLE) {
            struct clink_login_throttle t = {.free_failures = cfg->login_free_failures,
                                             .delay_step_ms = cfg->login_delay_step_ms,
                                             .max_delay_ms = cfg->login_max_delay_ms,
                                             .entries = cfg->login_throttle_entries};
            e = clink_accounts_set_throttle(srv->acc, &t);
            add(rep->text, sizeof(rep->text), "Failed-login throttle %s. ", e == 0 ? "replaced" : clink_strerror(e));
            rep->applied |= e == 0 ? CLINK_SERVER_THROTTLE : 0;
        }
    }
}

/* What runs now: the live parts from the new settings, the rest as the node was built. */
static void keep_live(struct clink_config *run, const struct clink_config *b)
{
    memcpy(run->ssl_cert, b->ssl_cert, sizeof(run->ssl_cert));
    memcpy(run->ssl_key, b->ssl_key, sizeof(run->ssl_key));
    memcpy(run->ssl_ca, b->ssl_ca, sizeof(run->ssl_ca));
    memcpy(run->ssl_crl, b->ssl_crl, sizeof(run->ssl_crl));
    memcpy(run->ssl_cipher, b->ssl_cipher, sizeof(run->ssl_cipher));
    memcpy(run->tls_ciphersuites, b->tls_ciphersuites, sizeof(run->tls_ciphersuites));
    memcpy(run->ops_ssl_cert, b->ops_ssl_cert, sizeof(run->ops_ssl_cert));
    memcpy(run->ops_ssl_key, b->ops_ssl_key, sizeof(run->ops_ssl_key));
    run->tls_version = b->tls_version;
    run->ssl_client_cert = b->ssl_client_cert;
    run->ssl_key_mode_check = b->ssl_key_mode_check;
    run->ssl_x509_strict = b->ssl_x509_strict;
    run->secure_transport = b->secure_transport;
    run->require_secure_transport = b->require_secure_transport;
    run->login_free_failures = b->login_free_failures;
    run->login_delay_step_ms = b->login_delay_step_ms;
    run->login_max_delay_ms = b->login_max_delay_ms;
    run->login_throttle_entries = b->login_throttle_entries;
    run->grant_creates_user = b->grant_creates_user;
}

static void say_restart(struct clink_server_report *rep)
{
    if (rep->restart == 0) {
        return;
    }
    add(rep->text, sizeof(rep->text), "Changed, applied at the next restart:");
    for (unsigned i = 0; i < CLINK_SERVER_PARTS; i++) {
        if (rep->restart & (1u << i)) {
            add(rep->text, sizeof(rep->text), " %s;", clink_server_part_name((enum clink_server_part)(1u << i)));
        }
    }
    size_t n = strlen(rep->text);
    rep->text[n - 1] = '.';
}

int clink_server_reload(struct clink_server *srv, struct clink_server_report *rep)
{
    struct clink_server_report scratch;
    rep = rep ? rep : &scratch;
    memset(rep, 0, sizeof(*rep));
    if (srv == NULL) {
        rep->status = -CLINK_EINVAL;
        snprintf(rep->why, sizeof(rep->why), "no server");
        snprintf(rep->text, sizeof(rep->text), "%s", rep->why);
        return rep->status;
    }
    if (clink_thread_is_worker()) {
        /* It waits for every worker (the transport-security state); a worker never waits for a worker. */
        rep->status = -CLINK_EWOULDBLOCK;
        snprintf(rep->why, sizeof(rep->why), "clink_server_reload waits for the workers: call it off a worker");
        snprintf(rep->text, sizeof(rep->text), "%s", rep->why);
        return rep->status;
    }
    struct staged s = {.cfg = malloc(sizeof(struct clink_config))};
    pthread_mutex_lock(&srv->mu);
    char err[400];
    int ret = s.cfg == NULL ? -CLINK_ENOMEM : 0;
    if (ret < 0) {
        snprintf(rep->why, sizeof(rep->why), "out of memory");
    } else if (srv->stopped) {
        ret = -CLINK_ESHUTDOWN;
        snprintf(rep->why, sizeof(rep->why), "the server is stopping");
    } else if ((ret = clink__server_settings(srv, s.cfg, err, sizeof(err))) < 0) {
        snprintf(rep->why, sizeof(rep->why), "config: %s; keeping everything in use.", err);
    } else {
        rep->changed = diff(srv->cfg, s.cfg, clink_node_secure_transport(srv->node));
        rep->restart = rep->changed & ~(unsigned)LIVE;
        ret = stage(srv, &s, rep);
    }
    if (ret < 0) {
        rep->status = ret;
        snprintf(rep->text, sizeof(rep->text), "%s Nothing was changed.", rep->why);
    } else {
        swap(srv, &s, rep);
        keep_live(srv->cfg, s.cfg);
        say_restart(rep);
        size_t n = strlen(rep->text);
        while (n > 0 && rep->text[n - 1] == ' ') {
            rep->text[--n] = '\0';
        }
        if (n == 0) {
            snprintf(rep->text, sizeof(rep->text), "Nothing to reload (no credentials, accounts or key files).");
        }
    }
    pthread_mutex_unlock(&srv->mu);
    unstage(&s);
    return rep->status;
}

int clink__server_check(struct clink_server *srv, const struct clink__optfile_swap *swaps, size_t nswaps,
                        struct clink_server_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    struct staged s = {.cfg = malloc(sizeof(struct clink_config)), .check = 1};
    char err[400];
    int ret = s.cfg == NULL ? -CLINK_ENOMEM : 0;
    pthread_mutex_lock(&srv->mu);
    if (ret < 0) {
        snprintf(rep->why, sizeof(rep->why), "out of memory");
    } else if (srv->stopped) {
        ret = -CLINK_ESHUTDOWN;
        snprintf(rep->why, sizeof(rep->why), "the server is stopping");
    } else if ((ret = clink__server_settings_swapped(srv, swaps, nswaps, s.cfg, err, sizeof(err))) < 0) {
        snprintf(rep->why, sizeof(rep->why), "%s", err);
    } else {
        rep->changed = diff(srv->cfg, s.cfg, clink_node_secure_transport(srv->node));
        rep->restart = rep->changed & ~(unsigned)LIVE;
        ret = stage(srv, &s, rep);
    }
    pthread_mutex_unlock(&srv->mu);
    unstage(&s);
    rep->status = ret;
    return ret;
}

static void told(struct clink_server *srv, const char *source, const struct clink_server_report *rep)
{
    if (srv->o.on_reload != NULL) {
        srv->o.on_reload(srv->o.on_reload_user, source, rep);
    }
}

int clink__server_ops_reload(void *user, char *msg, size_t cap)
{
    struct clink_server *srv = user;
    struct clink_server_report *rep = malloc(sizeof(*rep));
    if (rep == NULL) {
        snprintf(msg, cap, "out of memory");
        return -CLINK_ENOMEM;
    }
    int ret = clink_server_reload(srv, rep);
    snprintf(msg, cap, "%s", rep->text);
    told(srv, "POST /reload", rep);
    free(rep);
    return ret;
}

/* ALTER INSTANCE RELOAD TLS (on a worker): the certificate, key and CA files again, nothing else. */
int clink__server_sql_reload_tls(void *user, char *err, size_t errlen)
{
    struct clink_server *srv = user;
    struct clink_config *cfg = malloc(sizeof(*cfg));
    struct clink_tls_ctx *tls = NULL;
    int ret = cfg == NULL ? -CLINK_ENOMEM : 0;
    if (ret < 0) {
        snprintf(err, errlen, "out of memory");
    } else if ((ret = clink__server_settings(srv, cfg, err, errlen)) == 0 &&
               (ret = clink__server_tls(srv, cfg, &tls, err, errlen)) == 0) {
        ret = clink_node_reload_tls(srv->node, tls);
        clink_tls_ctx_free(tls);
        if (ret < 0) {
            snprintf(err, errlen, "%s", clink_strerror(ret));
        }
    }
    free(cfg);
    if (ret == 0) {
        struct clink_server_report rep = {.applied = CLINK_SERVER_TLS};
        snprintf(rep.text, sizeof(rep.text), "TLS credentials replaced");
        told(srv, "ALTER INSTANCE RELOAD TLS", &rep);
    }
    return ret < 0 ? -1 : 0;
}
