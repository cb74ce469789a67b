/* Bare OpenSSL dials over loopback sockets (see bare_tls_sock.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/bare_tls_sock.h"

#define HELLO_LEN 16 /* clink's HELLO: a 4-byte frame header and 12 bytes, each way */

static __attribute__((format(printf, 3, 4))) void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err[0] != '\0') {
        return; /* keep the first */
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_error();
    if (e != 0 && n >= 0 && (size_t)n < errlen) {
        char buf[160];
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err + n, errlen - (size_t)n, " (%s)", buf);
    }
}

/*
 * Whether an SSL call that returned r only waits for the peer; if so, waits
 * for its bytes (on loopback they are most often there already: the
 * sender's syscall delivers them). 1: call again, 0: a real failure.
 */
static int wait_peer(SSL *ssl, int r, int fd)
{
    int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    struct pollfd p = {.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
    return poll(&p, 1, 1000) == 1;
}

/* Reads exactly n bytes: 0, or -1. */
static int read_all(SSL *ssl, int fd, unsigned char *buf, size_t n)
{
    size_t have = 0;
    while (have < n) {
        size_t got = 0;
        int r = SSL_read_ex(ssl, buf + have, n - have, &got);
        if (r == 1) {
            have += got;
        } else if (!wait_peer(ssl, r, fd)) {
            return -1;
        }
    }
    return 0;
}

/* One SSL_do_handshake on one end: 0 (done or wants the peer), -1 on failure. */
static int step(SSL *ssl, int *done, const char *who, char *err, size_t errlen)
{
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        *done = 1;
        return 0;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    seterr(err, errlen, "%s handshake failed: SSL_get_error %d, verify: %s", who, e,
           X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    return -1;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    int one = 1;
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
                   setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0
               ? -1
               : 0;
}

/*
 * One dial: connect and accept, handshake, request and answer, orderly
 * close, both SSLs freed and both sockets closed. With sess != NULL it
 * offers *sess and replaces it with the newest ticket. *resumed: the client
 * resumed.
 */
static int dial(SSL_CTX *cctx, SSL_CTX *sctx, int lfd, const struct sockaddr_in *to, const char *name,
                SSL_SESSION **sess, int *resumed, char *err, size_t errlen)
{
    unsigned char buf[HELLO_LEN];
    memset(buf, 'h', sizeof(buf));
    size_t n = 0;
    SSL *c = NULL;
    SSL *s = NULL;
    int sfd = -1;
    int ret = -1;
    ERR_clear_error();
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    /* Blocking connect and accept: on loopback both are done when connect returns. */
    if (cfd < 0 || connect(cfd, (const struct sockaddr *)to, sizeof(*to)) < 0 || (sfd = accept(lfd, NULL, NULL)) < 0 ||
        set_nonblock(cfd) < 0 || set_nonblock(sfd) < 0) {
        seterr(err, errlen, "loopback connection: %s", strerror(errno));
        goto out;
    }
    if ((c = SSL_new(cctx)) == NULL || (s = SSL_new(sctx)) == NULL || SSL_set_fd(c, cfd) != 1 ||
        SSL_set_fd(s, sfd) != 1) {
        seterr(err, errlen, "SSL_new failed");
        goto out;
    }
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    /* Like clink for a DNS name: host check and SNI. */
    if (SSL_set1_host(c, name) != 1 ||
        SSL_ctrl(c, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)(uintptr_t)name) != 1) {
        seterr(err, errlen, "cannot set expected name %s", name);
        goto out;
    }
    if (sess != NULL && *sess != NULL && SSL_set_session(c, *sess) != 1) {
        seterr(err, errlen, "SSL_set_session failed");
        goto out;
    }
    /* As the memory loop steps its two ends; a round that leaves one waiting polls its socket once. */
    int cdone = 0;
    int sdone = 0;
    for (int round = 0; round < 16 && !(cdone && sdone); round++) {
        if ((!cdone && step(c, &cdone, "client", err, errlen) < 0) ||
            (!sdone && step(s, &sdone, "server", err, errlen) < 0)) {
            goto out;
        }
        if (!(cdone && sdone)) {
            struct pollfd p[2] = {{.fd = cfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
            (void)poll(p, 2, 1000);
        }
    }
    if (!cdone || !sdone) {
        seterr(err, errlen, "handshake did not finish");
        goto out;
    }
    /* The HELLO round trip: the client takes the server's tickets in while reading the answer. */
    if (SSL_write_ex(c, buf, sizeof(buf), &n) != 1 || read_all(s, sfd, buf, sizeof(buf)) < 0 ||
        SSL_write_ex(s, buf, sizeof(buf), &n) != 1 || read_all(c, cfd, buf, sizeof(buf)) < 0) {
        seterr(err, errlen, "request or answer failed");
        goto out;
    }
    *resumed = SSL_session_reused(c);
    if (sess != NULL) {
        SSL_SESSION *fresh = SSL_get1_session(c);
        if (fresh == NULL || fresh == *sess) {
            SSL_SESSION_free(fresh);
            seterr(err, errlen, "no new session ticket received");
            goto out;
        }
        SSL_SESSION_free(*sess);
        *sess = fresh;
    }
    /* The client's close_notify; the server reads it and answers with its own; the client reads that. */
    int r;
    if (SSL_shutdown(c) < 0) {
        seterr(err, errlen, "client close_notify failed");
        goto out;
    }
    while ((r = SSL_read_ex(s, buf, 1, &n)) != 1 && SSL_get_error(s, r) != SSL_ERROR_ZERO_RETURN) {
        if (!wait_peer(s, r, sfd)) {
            seterr(err, errlen, "server did not receive close_notify");
            goto out;
        }
    }
    if (r == 1 || SSL_shutdown(s) != 1) {
        seterr(err, errlen, "server close_notify failed");
        goto out;
    }
    while ((r = SSL_shutdown(c)) != 1) {
        if (r < 0 && !wait_peer(c, r, cfd)) {
            seterr(err, errlen, "client did not receive close_notify");
            goto out;
        }
        if (r == 0) {
            struct pollfd p = {.fd = cfd, .events = POLLIN};
            (void)poll(&p, 1, 1000);
        }
    }
    ret = 0;
out:
    SSL_free(c);
    SSL_free(s);
    if (sfd >= 0) {
        close(sfd);
    }
    if (cfd >= 0) {
        close(cfd);
    }
    ERR_clear_error();
    return ret;
}

static double secs_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

int bare_tls_sock_handshakes(const struct bare_tls_files *f, int resume, unsigned ms, struct bare_hs_result *out)
{
    memset(out, 0, sizeof(*out));
    ERR_clear_error();
    SSL_CTX *sctx = NULL;
    SSL_CTX *cctx = NULL;
    SSL_SESSION *sess = NULL;
    int ret = -1;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t tolen = sizeof(to);
    int lfd = -1;
    if ((sctx = bare_tls_ctx(f, 1, out->err, sizeof(out->err))) == NULL ||
        (cctx = bare_tls_ctx(f, 0, out->err, sizeof(out->err))) == NULL) {
        goto out;
    }
    if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 || bind(lfd, (struct sockaddr *)&to, sizeof(to)) < 0 ||
        listen(lfd, 64) < 0 || getsockname(lfd, (struct sockaddr *)&to, &tolen) < 0) {
        snprintf(out->err, sizeof(out->err), "loopback listener: %s", strerror(errno));
        goto out;
    }
    int resumed = 0;
    if (resume && dial(cctx, sctx, lfd, &to, f->name, &sess, &resumed, out->err, sizeof(out->err)) < 0) {
        goto out;
    }
    char err[sizeof(out->err)];
    struct timespec w0, c0, w1, c1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    do {
        err[0] = '\0';
        int r = dial(cctx, sctx, lfd, &to, f->name, resume ? &sess : NULL, &resumed, err, sizeof(err));
        if (r == 0 && resume && !resumed) {
            snprintf(err, sizeof(err), "dial was not resumed");
            r = -1;
        }
        if (r == 0) {
            out->ok++;
        } else if (out->failed++ == 0) {
            memcpy(out->err, err, sizeof(err));
        }
        clock_gettime(CLOCK_MONOTONIC, &w1);
    } while (secs_between(&w0, &w1) * 1e3 < (double)ms);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    out->secs = secs_between(&w0, &w1);
    out->cpu_s = secs_between(&c0, &c1);
    out->per_s = out->secs > 0 ? (double)out->ok / out->secs : 0;
    out->cpu_us_per_hs = out->ok ? out->cpu_s * 1e6 / (double)out->ok : 0;
    ret = out->ok > 0 ? 0 : -1;
out:
    if (lfd >= 0) {
        close(lfd);
    }
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    ERR_clear_error();
    return ret;
}
