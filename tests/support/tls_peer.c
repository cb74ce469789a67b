#include "tests/support/tls_peer.h"

#include <errno.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double tls_peer_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tls_peer_ssl_err(struct tls_peer *p, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[200] = "";
    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
    }
    snprintf(p->err, sizeof(p->err), "%s%s%s", what, e ? ": " : "", buf);
    ERR_clear_error();
}

static void on_info(const SSL *ssl, int where, int ret)
{
    struct tls_peer *p = SSL_get_app_data(ssl);
    /* Only what the other end sent: SSL_CB_READ_ALERT and SSL_CB_WRITE_ALERT share the SSL_CB_ALERT bit. */
    if ((where & SSL_CB_ALERT) && (where & SSL_CB_READ) && p != NULL) {
        const char *name = SSL_alert_desc_string_long(ret);
        if (strcmp(name, "unknown") == 0 && (ret & 0xff) == 116) {
            name = "certificate required"; /* RFC 8446; OpenSSL 3.0 has no name for it */
        }
        if (strcmp(name, "unknown") == 0) {
            snprintf(p->alert, sizeof(p->alert), "%d", ret & 0xff);
        } else {
            snprintf(p->alert, sizeof(p->alert), "%s", name);
        }
        p->alert_fatal = (ret >> 8) == SSL3_AL_FATAL;
    }
}

static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    struct tls_peer *p = SSL_get_app_data(ssl);
    if (!write_p && p != NULL && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        ((const uint8_t *)buf)[0] == SSL3_MT_KEY_UPDATE) {
        p->key_updates_in++;
    }
}

static int configure(SSL_CTX *ctx, const struct tls_peer_opts *o)
{
    if (o->min_version != 0 && o->min_version < TLS1_2_VERSION) {
        /* OpenSSL 3 offers TLS 1.0/1.1 only at security level 0 (they sign with SHA-1). */
        SSL_CTX_set_security_level(ctx, 0);
    }
    if ((o->min_version != 0 && SSL_CTX_set_min_proto_version(ctx, o->min_version) != 1) ||
        (o->max_version != 0 && SSL_CTX_set_max_proto_version(ctx, o->max_version) != 1) ||
        (o->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) ||
        (o->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1) ||
        (o->ca != NULL && SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) ||
        (o->cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
                             SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1)) ||
        (o->alpn != NULL && SSL_CTX_set_alpn_protos(ctx, o->alpn, (unsigned)o->alpn_len) != 0)) {
        return -1;
    }
    if (o->ca != NULL) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

int tls_peer_new(struct tls_peer *p, const struct tls_peer_opts *o, int fd)
{
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->preamble = o->preamble;
    p->ctx = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
    if (p->ctx == NULL) {
        tls_peer_ssl_err(p, "SSL_CTX_new");
        return -1;
    }
    if (configure(p->ctx, o) < 0) {
        tls_peer_ssl_err(p, o->server ? "server context" : "client context");
        return -1;
    }
    p->ssl = SSL_new(p->ctx);
    p->rb = BIO_new(BIO_s_mem());
    p->wb = BIO_new(BIO_s_mem());
    if (p->ssl == NULL || p->rb == NULL || p->wb == NULL) {
        BIO_free(p->rb);
        BIO_free(p->wb);
        p->rb = p->wb = NULL;
        tls_peer_ssl_err(p, "SSL_new");
        return -1;
    }
    SSL_set_bio(p->ssl, p->rb, p->wb);
    SSL_set_app_data(p->ssl, p);
    SSL_set_info_callback(p->ssl, on_info);
    SSL_set_msg_callback(p->ssl, on_msg);
    if (o->server) {
        SSL_set_accept_state(p->ssl);
    } else {
        SSL_set_connect_state(p->ssl);
    }
    if ((o->host != NULL && SSL_set1_host(p->ssl, o->host) != 1) ||
        (o->sni != NULL && SSL_set_tlsext_host_name(p->ssl, o->sni) != 1)) {
        tls_peer_ssl_err(p, "server name");
        return -1;
    }
    return 0;
}

void tls_peer_free(struct tls_peer *p)
{
    if (p->ssl != NULL) {
        SSL_free(p->ssl); /* frees the BIOs */
    }
    if (p->ctx != NULL) {
        SSL_CTX_free(p->ctx);
    }
    if (p->fd >= 0) {
        close(p->fd);
    }
    memset(p, 0, sizeof(*p));
    p->fd = -1;
}

size_t tls_peer_pending(struct tls_peer *p, uint8_t **out)
{
    char *data;
    long n = BIO_get_mem_data(p->wb, &data);
    *out = (uint8_t *)data;
    return n > 0 ? (size_t)n : 0;
}

void tls_peer_drop_pending(struct tls_peer *p)
{
    (void)BIO_reset(p->wb);
}

static int send_all(int fd, const uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int tls_peer_flush(struct tls_peer *p)
{
    if (p->fd < 0) {
        return 0; /* no socket: the bytes wait for the test to move them */
    }
    uint8_t *b;
    size_t n = tls_peer_pending(p, &b);
    int ret = n > 0 ? send_all(p->fd, b, n) : 0;
    tls_peer_drop_pending(p);
    if (ret < 0) {
        snprintf(p->err, sizeof(p->err), "send: %s", strerror(errno));
    }
    return ret;
}

/* Up to n bytes by the deadline: > 0, 0 EOF, TLS_PEER_TIMEOUT or TLS_PEER_RESET. */
static ssize_t recv_some(int fd, void *buf, size_t n, double deadline)
{
    for (;;) {
        double left = deadline - tls_peer_now();
        if (left <= 0) {
            return TLS_PEER_TIMEOUT;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r <= 0) {
            continue; /* EINTR, or the deadline: checked above */
        }
        ssize_t got = recv(fd, buf, n, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        return got < 0 ? TLS_PEER_RESET : got;
    }
}

ssize_t tls_peer_pump(struct tls_peer *p, double deadline)
{
    if (p->fd < 0) {
        snprintf(p->err, sizeof(p->err), "no socket to read from");
        return TLS_PEER_TIMEOUT;
    }
    if (p->preamble != NULL) {
        int (*preamble)(struct tls_peer *, double) = p->preamble;
        p->preamble = NULL;
        if (preamble(p, deadline) < 0) {
            p->closed = 2;
            return TLS_PEER_RESET;
        }
    }
    uint8_t buf[16384];
    ssize_t r = recv_some(p->fd, buf, sizeof(buf), deadline);
    if (r > 0) {
        BIO_write(p->rb, buf, (int)r);
    } else if (r == 0 || r == TLS_PEER_RESET) {
        p->closed = r == 0 ? 1 : 2;
    }
    return r;
}

static const char *ended(ssize_t r)
{
    return r == 0 ? "EOF" : r == TLS_PEER_TIMEOUT ? "timeout" : "reset";
}

int tls_peer_handshake(struct tls_peer *p, double deadline)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(p->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(p->ssl, r);
        if (e == SSL_ERROR_SSL || e == SSL_ERROR_SYSCALL) {
            tls_peer_ssl_err(p, "handshake");
        }
        /* Our flight, or our alert. */
        if (tls_peer_flush(p) < 0) {
            return -1;
        }
        if (r == 1) {
            return 0;
        }
        if (e != SSL_ERROR_WANT_READ) {
            if (p->err[0] == '\0') {
                snprintf(p->err, sizeof(p->err), "handshake: SSL error %d", e);
            }
            return -1;
        }
        ssize_t n = tls_peer_pump(p, deadline);
        if (n <= 0) {
            if (p->err[0] == '\0') {
                snprintf(p->err, sizeof(p->err), "%s during the handshake", ended(n));
            }
            return -1;
        }
    }
}

static void move_bytes(struct tls_peer *from, struct tls_peer *to)
{
    uint8_t *b;
    size_t n = tls_peer_pending(from, &b);
    if (n > 0) {
        BIO_write(to->rb, b, (int)n);
    }
    tls_peer_drop_pending(from);
}

int tls_peer_handshake_pair(struct tls_peer *client, struct tls_peer *server)
{
    /* The error queue is left as it is: the caller may print why. */
    int cdone = 0, sdone = 0;
    for (int i = 0; i < 100 && !(cdone && sdone); i++) {
        cdone = cdone || SSL_do_handshake(client->ssl) == 1;
        move_bytes(client, server);
        sdone = sdone || SSL_do_handshake(server->ssl) == 1;
        move_bytes(server, client);
    }
    return cdone && sdone ? 0 : -1;
}

int tls_peer_write(struct tls_peer *p, const void *buf, size_t n)
{
    size_t done = 0;
    ERR_clear_error();
    if (SSL_write_ex(p->ssl, buf, n, &done) != 1) {
        tls_peer_ssl_err(p, "SSL_write");
        return -1;
    }
    return tls_peer_flush(p);
}

int tls_peer_read(struct tls_peer *p, void *buf, size_t n, size_t *got, double deadline)
{
    size_t have = 0;
    int ret = -1;
    while (have < n) {
        size_t k = 0;
        ERR_clear_error();
        int r = SSL_read_ex(p->ssl, (uint8_t *)buf + have, n - have, &k);
        if (r == 1) {
            have += k;
            continue;
        }
        int e = SSL_get_error(p->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN) {
            snprintf(p->err, sizeof(p->err), "close_notify");
            goto out;
        }
        if (e != SSL_ERROR_WANT_READ) {
            tls_peer_ssl_err(p, "SSL_read");
            (void)tls_peer_flush(p); /* our alert, if OpenSSL made one */
            goto out;
        }
        if (tls_peer_flush(p) < 0) { /* a KeyUpdate answer, for instance */
            goto out;
        }
        ssize_t m = tls_peer_pump(p, deadline);
        if (m <= 0) {
            if (p->err[0] == '\0') {
                snprintf(p->err, sizeof(p->err), "%s", ended(m));
            }
            goto out;
        }
    }
    ret = 0;
out:
    if (got != NULL) {
        *got = have;
    }
    return ret;
}
