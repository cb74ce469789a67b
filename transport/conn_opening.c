/*
 * From accept or connect to the protocol's first message: the node port's
 * opening rule (a native clink client, plaintext or TLS, or a MySQL client:
 * docs/protocol.md, "Opening"), the client's reading of the server's
 * greeting, and the TLS handshake in both roles.
 */
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "transport/conn_int.h"

static unsigned peer_port(const struct clink_conn *c)
{
    return ntohs(c->peer.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)&c->peer)->sin6_port
                                               : ((const struct sockaddr_in *)&c->peer)->sin_port);
}

/*
 * The connection's TLS state machine, allocated: a kTLS hand-off of both
 * directions gives it back (clink__conn_tls_free). Returns 0 or an error,
 * with nothing left allocated.
 */
static int tls_new(struct clink_conn *c, SSL_CTX *ctx, int is_server, const char *name, int verify)
{
    struct clink__tls *t = malloc(sizeof(*t));
    if (t == NULL) {
        return -CLINK_ENOMEM;
    }
    int ret = clink__tls_init(t, ctx, is_server, name, verify, &c->rx, &c->tx);
    if (ret < 0) {
        clink__tls_free(t); /* an SSL made before a later step failed */
        free(t);
        return ret;
    }
    c->tls = t;
    c->tls_gen = atomic_load(&c->node->tls_gen); /* the callers hold tls_mu: the trust this SSL's context has */
    c->has_tls = 1;                              /* clink__conn_tls_free cleans up from here, whatever happens next */
    return 0;
}

/*
 * Server TLS with the node's context in *ctx (its own, or the HTTPS port's),
 * read under tls_mu: a reload may swap it, and SSL_new takes its own
 * reference. Returns 0, -CLINK_EPLAINTEXT (no identity) or another error.
 */
int clink__conn_server_tls(struct clink_conn *c, struct clink_tls_ctx *const *ctx)
{
    pthread_mutex_lock(&c->node->tls_mu);
    int ret = *ctx == NULL ? -CLINK_EPLAINTEXT : tls_new(c, clink_tls_ctx_server(*ctx), 1, NULL, 0);
    pthread_mutex_unlock(&c->node->tls_mu);
    return ret;
}

void clink__conn_step_handshake(struct clink_conn *c)
{
    int r = clink__tls_handshake(c->tls);
    if (r < 0) {
        clink__conn_fail(c, r, "%s", c->tls->err);
        return;
    }
    if (r == 0) {
        c->want = c->tls->want ? c->tls->want : 1;
        return;
    }
    CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "TLS handshake done: %s %s", SSL_get_version(c->tls->ssl),
                   SSL_CIPHER_get_name(SSL_get_current_cipher(c->tls->ssl)));
    c->state = CS_HELLO;
    c->proto->opened(c);
}

void clink__conn_classify(struct clink_conn *c)
{
    enum clink_opening_kind k = clink__opening_classify(clink__bytes_data(&c->rx), clink__bytes_len(&c->rx));
    CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "opening: %zu bytes, kind %d", clink__bytes_len(&c->rx), (int)k);
    if (c->proto->opening != NULL && k != CLINK_OPENING_MORE) {
        c->proto->opening(c, k); /* the HTTPS port's own rule */
        return;
    }
    switch (k) {
    case CLINK_OPENING_MORE:
        c->want = CLINK_PLAIN_MAGIC_LEN - clink__bytes_len(&c->rx);
        return;
    case CLINK_OPENING_TLS: {
        if (atomic_load(&c->node->secure) == CLINK_SECURE_PLAINTEXT) {
            clink__conn_fail(c, -CLINK_EPLAINTEXT, "TLS client, but this node accepts plaintext only (PLAINTEXT)");
            return;
        }
        int ret = clink__conn_server_tls(c, &c->node->tls);
        if (ret == -CLINK_EPLAINTEXT) {
            clink__conn_fail(c, ret, "TLS client, but this node has no TLS identity");
            return;
        }
        if (ret < 0) {
            clink__conn_fail(c, ret, "TLS setup failed");
            return;
        }
        c->mode = CLINK_MODE_TLS;
        c->state = CS_HANDSHAKE;
        clink__conn_step_handshake(c);
        return;
    }
    case CLINK_OPENING_PLAIN:
        clink__bytes_consume(&c->rx, CLINK_PLAIN_MAGIC_LEN);
        c->mode = CLINK_MODE_PLAIN;
        if (!c->node->opts.allow_plaintext || atomic_load(&c->node->secure) == CLINK_SECURE_REQUIRE_TLS) {
            clink__conn_emit_error(c, 0, CLINK_EPLAINTEXT, "plaintext connections are not allowed on this node");
            clink__conn_refuse(c, -CLINK_EPLAINTEXT, "plaintext client refused");
            return;
        }
        c->state = CS_HELLO;
        c->exact = 0;
        return;
    case CLINK_OPENING_OTHER: {
        if (c->node->opts.mysql != NULL && c->node->accounts != NULL) {
            /* A MySQL-protocol client (transport/mysql.c): its packets from here, no kTLS hand-over. */
            c->exact = 0;
            c->state = CS_HELLO;
            /* kTLS is tried once logged in; where it cannot be, the client stays in user-space TLS (never refused). */
            c->ktls_mode = c->ktls_mode == CLINK_KTLS_DISABLED ? CLINK_KTLS_DISABLED : CLINK_KTLS_AUTO;
            c->mode = CLINK_MODE_PLAIN; /* until its SSL request, if it sends one (mysql.c) */
            c->proto->free(c);          /* it was taken for a native client until now */
            clink__mysql_start(c);
            return;
        }
        /* A MySQL-protocol client where this node does not serve them: tell it so in its own protocol. */
        uint8_t b[128];
        size_t n = clink__opening_mysql_refusal(b, sizeof(b), 2);
        CLINK_IGNORE(clink__bytes_append(&c->tx, b, n) < 0);
        clink__conn_refuse(c, -CLINK_ENOTSUP, "MySQL-protocol client refused: protocol not served");
        return;
    }
    }
}

void clink__conn_greeting(struct clink_conn *c)
{
    if (!c->greet_hdr_done) {
        if (clink__bytes_len(&c->rx) < 5) {
            c->want = 5 - clink__bytes_len(&c->rx);
            return;
        }
        int len = clink__opening_greeting_len(clink__bytes_data(&c->rx));
        if (len < 0) {
            clink__conn_fail(c, -CLINK_EPROTO, "%s did not greet like a clink node", clink__conn_peer(c));
            return;
        }
        c->greet_hdr_done = 1;
        c->greet_left = (size_t)len - 1;
        clink__bytes_consume(&c->rx, 5);
    }
    /* The whole greeting (at most CLINK_GREETING_MAX bytes) is read: its scramble is the login challenge. */
    size_t have = clink__bytes_len(&c->rx);
    if (have < c->greet_left) {
        c->want = c->greet_left - have;
        return;
    }
    c->have_scramble = clink__opening_greeting_scramble(clink__bytes_data(&c->rx), c->greet_left, c->scramble) == 0;
    clink__bytes_consume(&c->rx, c->greet_left);
    c->greet_left = 0;
    if (c->dial->hello_deferred) {
        if (!c->have_scramble) {
            clink__conn_fail(c, -CLINK_EPROTO, "%s sent no login challenge in its greeting", clink__conn_peer(c));
            return;
        }
        c->dial->hello_deferred = 0;
        clink__native_send_hello(c, CLINK_PROTO_MIN, CLINK_PROTO_MAX);
        clink__mark_dirty(c);
    }
    if (c->has_tls) {
        c->state = CS_HANDSHAKE;
        c->want = c->tls->want ? c->tls->want : 5;
    } else {
        c->state = CS_HELLO;
        c->exact = 0;
    }
}

void clink__conn_on_connect(struct clink_conn *c, int res)
{
    if (c->state != CS_CONNECTING) {
        return; /* timed out or shut down while connecting: already closing */
    }
    if (res < 0) {
        clink__conn_fail(c, res, "connect to %s: %s", clink__conn_peer(c), clink_strerror(res));
        return;
    }
    int one = 1;
    CLINK_IGNORE(setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0);
    CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "connected to %s", clink__conn_peer(c));
    c->state = CS_OPENING;
    c->exact = 1;
    c->want = 5;
    if (c->mode == CLINK_MODE_PLAIN) {
        clink__native_plain_hello(c);
    } else {
        pthread_mutex_lock(&c->node->tls_mu);
        int ret = tls_new(c, clink_tls_ctx_client(c->node->tls), 0, c->dial->expected_name, c->verify);
        /* The ticket generation that goes with this context (a reload bumps it after swapping the context). */
        uint64_t gen = clink__sessions_gen(&c->node->sessions);
        pthread_mutex_unlock(&c->node->tls_mu);
        if (ret == 0 && !c->dial->no_resume) {
            /* Tickets are filed per identity: what we verify (level, name) and which port serves it. */
            char key[CLINK_SESSION_KEY_MAX];
            snprintf(key, sizeof(key), "v%d|%s|%u", c->verify, c->dial->expected_name, peer_port(c));
            clink__tls_use_sessions(c->tls, &c->node->sessions, key, gen);
        }
        if (ret < 0) {
            clink__conn_fail(c, ret, "TLS setup failed for expected name '%s'", c->dial->expected_name);
            return;
        }
        /* Produces the ClientHello in tx; the server's greeting is read first, then the handshake goes on. */
        int r = clink__tls_handshake(c->tls);
        if (r < 0) {
            clink__conn_fail(c, r, "%s", c->tls->err);
            return;
        }
    }
    clink__mark_dirty(c);
    clink__conn_arm_recv(c);
}
