/*
 * The application's handle on a connection: dialing (clink_connect, and
 * clink_connect_sync that waits for it), what any thread may ask of a
 * connection, and clink_conn_close, which hands the application's reference
 * to the owning worker.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "transport/conn_int.h"

/* ---- connect ---- */

int clink_connect(struct clink_node *node, const struct clink_connect_opts *opts, clink_connect_cb cb, void *user)
{
    if (node == NULL || opts == NULL || opts->host == NULL || cb == NULL || opts->port == 0 ||
        opts->mode > CLINK_MODE_PLAIN || opts->ssl_mode > CLINK_SSL_VERIFY_IDENTITY) {
        return -CLINK_EINVAL;
    }
    if (!atomic_load(&node->started) || atomic_load(&node->stopping)) {
        return -CLINK_ESHUTDOWN;
    }
    enum clink_ssl_mode sm = opts->ssl_mode == CLINK_SSL_DEFAULT ? CLINK_SSL_VERIFY_IDENTITY : opts->ssl_mode;
    if (opts->mode == CLINK_MODE_PLAIN && opts->ssl_mode != CLINK_SSL_DEFAULT && opts->ssl_mode != CLINK_SSL_DISABLED) {
        return -CLINK_EINVAL; /* plaintext and a TLS mode at once */
    }
    int has_tls = clink__node_has_tls(node);
    int plain = clink_node_dial_plaintext(node, opts->mode, opts->ssl_mode);
    if (sm == CLINK_SSL_PREFERRED && !has_tls && node->opts.allow_plaintext) {
        /* Never silent: a preferred-TLS dial that goes out in plaintext is logged and counted. */
        plain = 1;
        STAT_ADD_SHARED(&node->workers[0], plaintext_fallbacks, 1);
        CLINK_LOG(&node->log, CLINK_LOG_WARN, "transport", 0,
                  "ssl_mode PREFERRED to %s:%u: this node has no TLS identity, connecting in plaintext", opts->host,
                  opts->port);
    }
    if (plain && (!node->opts.allow_plaintext || atomic_load(&node->secure) == CLINK_SECURE_REQUIRE_TLS)) {
        return -CLINK_EPLAINTEXT;
    }
    if (!plain && !has_tls) {
        return -CLINK_EINVAL;
    }
    const char *name = opts->expected_name ? opts->expected_name : opts->host;
    if (strlen(opts->host) >= sizeof(((struct clink__msg_connect *)0)->host) ||
        strlen(name) >= sizeof(((struct clink__msg_connect *)0)->name) ||
        (opts->user != NULL && strlen(opts->user) > CLINK_USER_MAX) ||
        (opts->password != NULL && strlen(opts->password) > CLINK_PASSWORD_MAX) ||
        (opts->password != NULL && opts->password[0] != '\0' && opts->user == NULL)) {
        return -CLINK_EINVAL;
    }
    struct clink__msg_connect *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    m->hdr.kind = MSG_CONNECT;
    m->opts = *opts;
    snprintf(m->host, sizeof(m->host), "%s", opts->host);
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->label, sizeof(m->label), "%s", opts->label ? opts->label : "");
    m->opts.label = m->label;
    m->opts.host = m->host;
    m->opts.expected_name = m->name;
    m->opts.mode = plain ? CLINK_MODE_PLAIN : CLINK_MODE_TLS;
    m->verify = sm == CLINK_SSL_VERIFY_IDENTITY ? 2 : sm == CLINK_SSL_VERIFY_CA ? 1 : 0;
    m->opts.user = m->opts.password = NULL; /* the copies below are used */
    m->no_resume = opts->no_resume;
    if (opts->user != NULL) {
        m->login = 1;
        snprintf(m->login_user, sizeof(m->login_user), "%s", opts->user);
    }
    if (opts->password != NULL && opts->password[0] != '\0') {
        m->has_password = 1;
        snprintf(m->password, sizeof(m->password), "%s", opts->password);
    }
    m->cb = cb;
    m->user = user;
    unsigned i = atomic_fetch_add(&node->next_worker, 1) % node->nworkers;
    int ret = clink__worker_post(&node->workers[i], m);
    if (ret < 0) {
        OPENSSL_cleanse(m->password, sizeof(m->password));
        free(m);
    }
    return ret;
}

struct connect_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    struct clink_conn *conn;
    char reason[256];
};

static void connect_sync_cb(struct clink_conn *conn, int status, const char *reason, void *user)
{
    struct connect_wait *cw = user;
    pthread_mutex_lock(&cw->mu);
    snprintf(cw->reason, sizeof(cw->reason), "%s", reason);
    cw->conn = conn;
    cw->status = status;
    cw->done = 1;
    pthread_cond_signal(&cw->cv);
    pthread_mutex_unlock(&cw->mu);
}

int clink_connect_sync(struct clink_node *node, const struct clink_connect_opts *opts, struct clink_conn **out,
                       char *err, size_t errlen)
{
    if (err && errlen) {
        err[0] = '\0';
    }
    if (out != NULL) {
        *out = NULL;
    }
    if (clink__current_worker != NULL) {
        /* It would wait for a callback only a worker runs: if this one, never. */
        if (err && errlen) {
            snprintf(err, errlen, "clink_connect_sync on a worker thread would block it: use clink_connect");
        }
        if (node != NULL) {
            CLINK_LOG(&node->log, CLINK_LOG_WARN, "transport", 0,
                      "clink_connect_sync called on a worker thread: refused, use clink_connect");
        }
        return -CLINK_EWOULDBLOCK;
    }
    if (out == NULL) {
        return -CLINK_EINVAL;
    }
    struct connect_wait cw = {.status = 0};
    pthread_mutex_init(&cw.mu, NULL);
    pthread_cond_init(&cw.cv, NULL);
    int ret = clink_connect(node, opts, connect_sync_cb, &cw);
    if (ret == 0) {
        pthread_mutex_lock(&cw.mu);
        while (!cw.done) {
            pthread_cond_wait(&cw.cv, &cw.mu);
        }
        pthread_mutex_unlock(&cw.mu);
        ret = cw.status;
    }
    pthread_cond_destroy(&cw.cv);
    pthread_mutex_destroy(&cw.mu);
    if (ret == 0) {
        *out = cw.conn;
    } else if (err && errlen) {
        snprintf(err, errlen, "%s", cw.reason[0] ? cw.reason : clink_strerror(ret));
    }
    return ret;
}

/* ---- connections ---- */

int clink_conn_is_open(const struct clink_conn *conn)
{
    return conn != NULL && atomic_load(&conn->open);
}

uint64_t clink_conn_id(const struct clink_conn *conn)
{
    return conn ? conn->id : 0;
}

int clink_conn_plaintext(const struct clink_conn *conn)
{
    return conn != NULL && conn->mode == CLINK_MODE_PLAIN;
}

void clink_conn_close(struct clink_conn *conn)
{
    if (conn == NULL) {
        return;
    }
    /* Only a dialled connection carries an application reference; an accepted one is the worker's alone. */
    int had_ref = atomic_exchange(&conn->app_ref, 0);
    if (clink__current_worker == conn->w) {
        clink__conn_begin_close(conn, 0);
        if (had_ref) {
            clink__conn_put(conn);
        }
        return;
    }
    if (!had_ref) {
        return; /* a second close, or an accepted connection from another thread (not allowed) */
    }
    /* The application's reference travels with the message; wait for room rather than leave it open. */
    int ret;
    while ((ret = clink__worker_post(conn->w, &conn->close_msg)) == -CLINK_EAGAIN && clink__current_worker == NULL) {
        usleep(100);
    }
    if (ret < 0) {
        /* The worker is gone (it closed everything at shutdown) or is another worker's full inbox. */
        clink__conn_put(conn);
    }
}
