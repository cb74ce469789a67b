/*
 * Status for operations: every link of the node (clink_node_links), one
 * connection's (clink_conn_status), each gathered on the owning worker, and
 * the text form of a status (clink_conn_status_format).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "transport/conn_int.h"

struct links {
    struct clink_conn_status *v;
    size_t n, cap;
    int err;
};

static void links_on_worker(struct clink_worker *w, void *arg)
{
    struct links *l = arg;
    for (struct clink_conn *c = w->conns; c != NULL && l->err == 0; c = c->next) {
        if (!c->proto->link || c->state == CS_CLOSED) {
            continue;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 64;
            struct clink_conn_status *v = realloc(l->v, cap * sizeof(*v));
            if (v == NULL) {
                l->err = -CLINK_ENOMEM;
                return;
            }
            l->v = v;
            l->cap = cap;
        }
        clink__conn_fill_status(c, &l->v[l->n++]);
    }
}

int clink_node_links(struct clink_node *node, struct clink_conn_status **out, size_t *n)
{
    if (node == NULL || out == NULL || n == NULL) {
        return -CLINK_EINVAL;
    }
    if (clink__current_worker != NULL) {
        return -CLINK_EWOULDBLOCK; /* it waits for every worker */
    }
    struct links l = {0};
    for (unsigned i = 0; i < node->nworkers && l.err == 0 && atomic_load(&node->started); i++) {
        int ret = clink__worker_run_sync(&node->workers[i], links_on_worker, &l);
        if (ret < 0 && ret != -CLINK_ESHUTDOWN) {
            l.err = ret;
        }
    }
    if (l.err < 0) {
        free(l.v);
        return l.err;
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

static void status_on_worker(struct clink_worker *w, void *arg)
{
    (void)w;
    void **a = arg;
    clink__conn_fill_status(a[0], a[1]);
}

int clink_conn_get_status(struct clink_conn *conn, struct clink_conn_status *out)
{
    if (conn == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    if (clink__current_worker == conn->w) {
        clink__conn_fill_status(conn, out);
        return 0;
    }
    void *arg[2] = {conn, out};
    int ret = clink__worker_run_sync(conn->w, status_on_worker, arg);
    if (ret == -CLINK_ESHUTDOWN) {
        /* The worker is gone, so nobody writes the conn any more: its closed state is final. */
        clink__conn_fill_status(conn, out);
        return 0;
    }
    return ret;
}

struct x509_st *clink_conn_peer_cert(struct clink_conn *conn)
{
    if (conn == NULL || clink__current_worker != conn->w || !conn->has_tls || conn->tls == NULL) {
        return NULL;
    }
    X509 *x = SSL_get1_peer_certificate(conn->tls->ssl);
    if (x != NULL && SSL_get_verify_result(conn->tls->ssl) != X509_V_OK) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

const char *clink_send_path_name(enum clink_send_path p)
{
    switch (p) {
    case CLINK_SEND_COPY:
        return "copy";
    case CLINK_SEND_GATHER:
        return "gather";
    case CLINK_SEND_ZEROCOPY:
        return "zerocopy";
    }
    return "?";
}

size_t clink_conn_status_format(const struct clink_conn_status *st, char *buf, size_t cap)
{
    char when[32] = "-";
    if (st->peer_not_after > 0) {
        time_t t = (time_t)st->peer_not_after;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    }
    int tls = st->mode != CLINK_MODE_PLAIN;
    char ssl[96], ktls[128];
    /* The mysql client's wording, so people and scripts that read its `status` read ours. */
    if (tls) {
        snprintf(ssl, sizeof(ssl), "Cipher in use is %s", st->cipher);
    } else {
        snprintf(ssl, sizeof(ssl), "Not in use");
    }
    if (st->ktls_tx == CLINK_KTLS_ON || st->ktls_rx == CLINK_KTLS_ON) {
        snprintf(ktls, sizeof(ktls), "tx=%s rx=%s", st->ktls_tx == CLINK_KTLS_ON ? "on" : "off",
                 st->ktls_rx == CLINK_KTLS_ON ? "on" : "off");
    } else {
        snprintf(ktls, sizeof(ktls), "off (%s)", st->ktls_reason);
    }
    int n = snprintf(buf, cap,
                     "Connection: %s via TCP/IP\n"
                     "Role: %s\n"
                     "State: %s\n"
                     "Protocol: clink/%u\n"
                     "Current user: %s\n"
                     "SSL: %s\n"
                     "TLS version: %s\n"
                     "ALPN: %s\n"
                     "Verification: %s\n"
                     "Session: %s\n"
                     "kTLS: %s\n"
                     "Send path: %s\n"
                     "Peer certificate subject: %s\n"
                     "Peer certificate issuer: %s\n"
                     "Peer certificate expires: %s\n"
                     "Bytes received: %llu\n"
                     "Bytes sent: %llu\n"
                     "Frames received: %llu\n"
                     "Frames sent: %llu\n"
                     "Calls in flight: %u\n",
                     st->peer_addr, st->is_server ? "server" : "client", st->open ? "open" : "closed",
                     st->proto_version, st->account[0] ? st->account : "-", ssl, tls ? st->tls_version : "-",
                     tls ? st->alpn : "-", tls ? st->verified : "-",
                     !tls          ? "-"
                     : st->resumed ? "resumed"
                                   : "full handshake",
                     ktls, clink_send_path_name(st->send_path), st->peer_subject[0] ? st->peer_subject : "-",
                     st->peer_issuer[0] ? st->peer_issuer : "-", when, (unsigned long long)st->bytes_in,
                     (unsigned long long)st->bytes_out, (unsigned long long)st->frames_in,
                     (unsigned long long)st->frames_out, st->calls_in_flight);
    if (n < 0) {
        return 0;
    }
    return (size_t)n < cap ? (size_t)n : cap ? cap - 1 : 0;
}
