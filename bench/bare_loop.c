/*
 * The bare-loop baseline (see bare_loop.h): a caller here, an echo or sink
 * server in a process of its own, one connection, io_uring and OpenSSL over
 * memory BIOs, nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bare_loop.h"

#define RX_CAP (256u << 10)

/* Bytes [off, len) of p. */
struct buf {
    uint8_t *p;
    size_t off, len, cap;
};

static int reserve(struct buf *b, size_t more)
{
    if (b->off > 0 && b->len + more > b->cap) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + more <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) {
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* One end of the connection. */
struct end {
    int fd;
    struct io_uring ring;
    SSL *ssl; /* NULL: plaintext */
    BIO *rbio, *wbio;
    uint8_t *rx;
    int recv_armed, send_busy, eof, failed;
    struct buf in;      /* plaintext received, not parsed yet */
    struct buf stage;   /* tls: plaintext of this turn's frames, one SSL_write */
    struct buf pending; /* bytes ready to send */
    struct buf sending; /* the send in flight: never moved while the kernel reads it */
};

static int frame(struct end *e, const uint8_t *payload, size_t n)
{
    struct buf *b = e->ssl ? &e->stage : &e->pending;
    if (reserve(b, 4 + n) < 0) {
        return -1;
    }
    uint32_t be = htonl((uint32_t)n);
    memcpy(b->p + b->len, &be, 4);
    if (n > 0) {
        memcpy(b->p + b->len + 4, payload, n);
    }
    b->len += 4 + n;
    return 0;
}

/* Staged frames: encrypted in one SSL_write, the records moved to pending; then a send if none is in flight. */
static int push(struct end *e)
{
    if (e->ssl != NULL && e->stage.len > e->stage.off) {
        size_t done = 0;
        ERR_clear_error();
        if (SSL_write_ex(e->ssl, e->stage.p + e->stage.off, e->stage.len - e->stage.off, &done) != 1) {
            return -1;
        }
        e->stage.off = e->stage.len = 0;
    }
    size_t n;
    while (e->ssl != NULL && (n = BIO_ctrl_pending(e->wbio)) > 0) {
        if (reserve(&e->pending, n) < 0) {
            return -1;
        }
        int got = BIO_read(e->wbio, e->pending.p + e->pending.len, (int)n);
        if (got <= 0) {
            return -1;
        }
        e->pending.len += (size_t)got;
    }
    if (!e->send_busy && e->pending.len > e->pending.off) {
        struct buf t = e->sending;
        e->sending = e->pending;
        e->pending = t;
        e->pending.off = e->pending.len = 0;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
        io_uring_prep_send(sqe, e->fd, e->sending.p + e->sending.off, e->sending.len - e->sending.off, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, 1);
        e->send_busy = 1;
    }
    if (!e->recv_armed && !e->eof) {
        uint8_t *to = e->rx;
        size_t cap = RX_CAP;
        if (e->ssl == NULL) { /* plaintext: straight into the parse buffer */
            if (reserve(&e->in, RX_CAP) < 0) {
                return -1;
            }
            to = e->in.p + e->in.len;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
        io_uring_prep_recv(sqe, e->fd, to, cap, 0);
        io_uring_sqe_set_data64(sqe, 2);
        e->recv_armed = 1;
    }
    return 0;
}

static int pull(struct end *e);

/* Wait for at least one completion and take all that are there; received bytes end up in e->in. */
static int turn(struct end *e)
{
    struct io_uring_cqe *cqe;
    int ret = io_uring_submit_and_wait(&e->ring, 1);
    if (ret < 0 && ret != -EINTR) {
        return -1;
    }
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&e->ring, head, cqe)
    {
        seen++;
        if (io_uring_cqe_get_data64(cqe) == 1) {
            if (cqe->res <= 0) {
                e->failed = 1;
                continue;
            }
            e->sending.off += (size_t)cqe->res;
            if (e->sending.off < e->sending.len) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
                io_uring_prep_send(sqe, e->fd, e->sending.p + e->sending.off, e->sending.len - e->sending.off,
                                   MSG_NOSIGNAL);
                io_uring_sqe_set_data64(sqe, 1);
            } else {
                e->sending.off = e->sending.len = 0;
                e->send_busy = 0;
            }
            continue;
        }
        e->recv_armed = 0;
        if (cqe->res <= 0) {
            e->eof = 1;
            e->failed |= cqe->res < 0;
            continue;
        }
        if (e->ssl == NULL) {
            e->in.len += (size_t)cqe->res;
        } else if (BIO_write(e->rbio, e->rx, cqe->res) != cqe->res) {
            e->failed = 1;
        }
    }
    io_uring_cq_advance(&e->ring, seen);
    return pull(e);
}

/* Decrypt what the read BIO holds into e->in. */
static int pull(struct end *e)
{
    while (e->ssl != NULL && !e->failed) {
        size_t got = 0;
        if (reserve(&e->in, 65536) < 0) {
            return -1;
        }
        ERR_clear_error();
        if (SSL_read_ex(e->ssl, e->in.p + e->in.len, e->in.cap - e->in.len, &got) != 1) {
            int err = SSL_get_error(e->ssl, 0);
            e->failed = err != SSL_ERROR_WANT_READ;
            break;
        }
        e->in.len += got;
    }
    return e->failed ? -1 : 0;
}

/* The next complete frame of e->in, or NULL. */
static const uint8_t *next_frame(struct end *e, size_t *n)
{
    size_t have = e->in.len - e->in.off;
    if (have < 4) {
        return NULL;
    }
    uint32_t be;
    memcpy(&be, e->in.p + e->in.off, 4);
    size_t len = ntohl(be);
    if (have < 4 + len) {
        return NULL;
    }
    const uint8_t *p = e->in.p + e->in.off + 4;
    e->in.off += 4 + len;
    *n = len;
    return p;
}

static void consumed(struct end *e)
{
    if (e->in.off == e->in.len) {
        e->in.off = e->in.len = 0;
    }
}

/* Blocking, before the loop: the handshake is not what this measures. */
static int handshake(struct end *e)
{
    uint8_t tmp[16384];
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(e->ssl);
        int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(e->ssl, r);
        int n;
        while ((n = BIO_read(e->wbio, tmp, sizeof(tmp))) > 0) {
            for (int off = 0; off < n;) {
                ssize_t w = send(e->fd, tmp + off, (size_t)(n - off), MSG_NOSIGNAL);
                if (w <= 0) {
                    return -1;
                }
                off += (int)w;
            }
        }
        if (r == 1) {
            return pull(e); /* what came with the last flight (the peer's first frames, tickets) */
        }
        if (err != SSL_ERROR_WANT_READ) {
            return -1;
        }
        ssize_t got = recv(e->fd, tmp, sizeof(tmp), 0);
        if (got <= 0 || BIO_write(e->rbio, tmp, (int)got) != (int)got) {
            return -1;
        }
    }
}

static int end_init(struct end *e, int fd, SSL_CTX *ctx, int server, const char *name)
{
    memset(e, 0, sizeof(*e));
    e->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as clink's sockets */
    if (io_uring_queue_init(64, &e->ring, 0) < 0) {
        return -1;
    }
    e->rx = malloc(RX_CAP);
    if (e->rx == NULL) {
        return -1;
    }
    if (ctx == NULL) {
        return 0;
    }
    e->ssl = SSL_new(ctx);
    e->rbio = BIO_new(BIO_s_mem());
    e->wbio = BIO_new(BIO_s_mem());
    if (e->ssl == NULL || e->rbio == NULL || e->wbio == NULL) {
        return -1;
    }
    BIO_set_mem_eof_return(e->rbio, -1);
    SSL_set_bio(e->ssl, e->rbio, e->wbio);
    if (server) {
        SSL_set_accept_state(e->ssl);
    } else {
        SSL_set_connect_state(e->ssl);
        if (SSL_set1_host(e->ssl, name) != 1 ||
            SSL_ctrl(e->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)(uintptr_t)name) != 1) {
            return -1;
        }
    }
    return handshake(e);
}

static void end_free(struct end *e)
{
    SSL_free(e->ssl); /* frees both BIOs */
    if (e->rx != NULL) {
        io_uring_queue_exit(&e->ring);
    }
    free(e->rx);
    free(e->in.p);
    free(e->stage.p);
    free(e->pending.p);
    free(e->sending.p);
}

/* ---- the server process ---- */

/* argv: --bare-server FD TLS ECHO CA CERT KEY */
int bare_loop_server_main(int argc, char **argv)
{
    if (argc != 8) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int fd = atoi(argv[2]), tls = atoi(argv[3]), echo = atoi(argv[4]);
    struct bare_tls_files f = {
        .ca = argv[5], .server_cert = argv[6], .server_key = argv[7], .client_cert = argv[6], .client_key = argv[7]};
    char err[256];
    SSL_CTX *ctx = tls ? bare_tls_ctx(&f, 1, err, sizeof(err)) : NULL;
    struct end e;
    int ret = 1;
    if ((tls && ctx == NULL) || end_init(&e, fd, ctx, 1, NULL) < 0) {
        goto out;
    }
    while (!e.eof) {
        /* Parse first: the handshake's last read may have brought the first calls. */
        const uint8_t *p;
        size_t n;
        while ((p = next_frame(&e, &n)) != NULL) {
            if (frame(&e, p, echo ? n : 0) < 0) {
                goto out;
            }
        }
        consumed(&e);
        if (push(&e) < 0 || turn(&e) < 0) {
            break;
        }
    }
    ret = 0;
out:
    end_free(&e);
    SSL_CTX_free(ctx);
    close(fd);
    return ret;
}

/* ---- the caller ---- */

struct caller {
    struct end e;
    const struct bare_loop_spec *sp;
    uint8_t *payload;
    uint64_t *t0; /* start times of the calls in flight, oldest first (answers come in order) */
    unsigned head, inflight;
    int issuing;
    struct hist *hist;
    uint64_t issued, ok, failed;
};

static int issue(struct caller *c, uint64_t now)
{
    c->t0[(c->head + c->inflight) % c->sp->inflight] = now;
    c->inflight++;
    c->issued++;
    return frame(&c->e, c->payload, c->sp->req);
}

/* Keep sp->inflight calls going until end_ns, then let the last ones finish. */
static int phase(struct caller *c, uint64_t end_ns)
{
    c->issuing = 1;
    for (unsigned i = 0; i < c->sp->inflight; i++) {
        if (issue(c, now_ns()) < 0) {
            return -1;
        }
    }
    while (c->inflight > 0) {
        if (push(&c->e) < 0 || turn(&c->e) < 0) {
            return -1;
        }
        const uint8_t *p;
        size_t n;
        while ((p = next_frame(&c->e, &n)) != NULL) {
            uint64_t t = now_ns();
            if (c->inflight == 0) {
                return -1; /* an answer to nothing */
            }
            hist_add(c->hist, t - c->t0[c->head]);
            c->head = (c->head + 1) % c->sp->inflight;
            c->inflight--;
            *(n == c->sp->resp ? &c->ok : &c->failed) += 1;
            if (c->issuing && t >= end_ns) {
                c->issuing = 0;
            }
            if (c->issuing && issue(c, t) < 0) {
                return -1;
            }
        }
        consumed(&c->e);
        if (c->e.eof) {
            return -1;
        }
    }
    return 0;
}

static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Connect this end, accept the other, start the server process on the accepted socket. */
static pid_t start_server(const struct bare_tls_files *f, const struct bare_loop_spec *sp, int *cfd)
{
    uint16_t port;
    int lfd = listen_loopback(&port);
    if (lfd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    *cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int sfd = -1;
    if (*cfd < 0 || connect(*cfd, (struct sockaddr *)&a, sizeof(a)) < 0 || (sfd = accept(lfd, NULL, NULL)) < 0) {
        close(lfd);
        return -1;
    }
    close(lfd);
    char fds[16], tls[4], echo[4];
    snprintf(fds, sizeof(fds), "%d", sfd);
    snprintf(tls, sizeof(tls), "%d", sp->tls);
    snprintf(echo, sizeof(echo), "%d", sp->resp > 0);
    pid_t pid = fork();
    if (pid == 0) {
        /* A fresh process: this one has clink's threads, whose locks a forked copy could inherit held. */
        char prog[] = "clink-bench", flag[] = "--bare-server";
        char *args[] = {prog,
                        flag,
                        fds,
                        tls,
                        echo,
                        (char *)(uintptr_t)f->ca,
                        (char *)(uintptr_t)f->server_cert,
                        (char *)(uintptr_t)f->server_key,
                        NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(sfd);
    return pid;
}

int bare_loop_run(struct cfg *cfg, enum placement pl, const struct bare_tls_files *f, const struct bare_loop_spec *sp,
                  struct result *r)
{
    struct caller c = {.sp = sp};
    SSL_CTX *ctx = NULL;
    int cfd = -1, ret = -1;
    char err[256] = "";
    c.payload = calloc(1, sp->req ? sp->req : 1);
    c.t0 = calloc(sp->inflight, sizeof(*c.t0));
    c.hist = calloc(1, sizeof(*c.hist));
    if (c.payload == NULL || c.t0 == NULL || c.hist == NULL) {
        snprintf(r->skipped, sizeof(r->skipped), "bare loop: out of memory");
        goto out_mem;
    }
    memset(c.payload, 0xa5, sp->req ? sp->req : 1);
    if (sp->tls && (ctx = bare_tls_ctx(f, 0, err, sizeof(err))) == NULL) {
        snprintf(r->skipped, sizeof(r->skipped), "bare loop: %s", err);
        goto out_mem;
    }
    pid_t pid = start_server(f, sp, &cfd);
    if (pid < 0) {
        snprintf(r->skipped, sizeof(r->skipped), "bare loop: cannot start the server: %s", strerror(errno));
        goto out_mem;
    }
    /* Pinned as the leaves are, with them, for the time it runs. */
    char why[256];
    int npids = cfg->npids;
    if (cfg->npids < MAX_TARGETS) {
        cfg->pids[cfg->npids++] = pid;
    }
    CLINK_IGNORE(place(cfg, pl, why, sizeof(why)));
    if (end_init(&c.e, cfd, ctx, 0, f->name) < 0) {
        ERR_error_string_n(ERR_peek_error(), err, sizeof(err));
        snprintf(r->skipped, sizeof(r->skipped), "bare loop: connection or handshake failed (%s)", err);
        goto out;
    }
    if (c.e.ssl != NULL) {
        snprintf(r->cipher, sizeof(r->cipher), "%s", SSL_get_cipher_name(c.e.ssl));
        snprintf(r->tls_version, sizeof(r->tls_version), "%s", SSL_get_version(c.e.ssl));
    }
    if (phase(&c, now_ns() + (uint64_t)sp->warmup_ms * 1000000ull) < 0) {
        snprintf(r->skipped, sizeof(r->skipped), "bare loop: the connection failed in the warm-up");
        goto out;
    }
    memset(c.hist, 0, sizeof(*c.hist));
    c.issued = c.ok = c.failed = 0;
    double cc0 = cpu_self_s(), cs0 = cpu_pids_s(&pid, 1);
    uint64_t t0 = now_ns();
    if (phase(&c, t0 + (uint64_t)sp->ms * 1000000ull) < 0) {
        snprintf(r->skipped, sizeof(r->skipped), "bare loop: the connection failed");
        goto out;
    }
    r->secs = (double)(now_ns() - t0) / 1e9;
    r->cpu_client_s = cpu_self_s() - cc0;
    r->cpu_server_s = cpu_pids_s(&pid, 1) - cs0;
    r->cpu_s = r->cpu_client_s + r->cpu_server_s;
    r->issued = c.issued;
    r->ok = c.ok;
    r->failed = c.failed;
    r->ops = (double)c.ok / r->secs;
    r->bps = (double)c.ok * (double)sp->req / r->secs;
    r->p50 = hist_pct_us(c.hist, 0.50);
    r->p99 = hist_pct_us(c.hist, 0.99);
    r->p999 = hist_pct_us(c.hist, 0.999);
    r->connections = 1;
    r->concurrency = sp->inflight;
    r->msg = sp->req;
    r->workers = 1;
    ret = 0;
out:
    end_free(&c.e);
    if (cfd >= 0) {
        close(cfd); /* the server reads EOF and exits */
    }
    waitpid(pid, NULL, 0);
    cfg->npids = npids;
out_mem:
    SSL_CTX_free(ctx);
    free(c.payload);
    free(c.t0);
    free(c.hist);
    return ret;
}
