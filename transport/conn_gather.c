/*
 * Sending from the caller's buffers. Where the kernel takes our bytes as
 * they are (plaintext, or kTLS TX: the kernel encrypts), a stream message's
 * chunks go out without clink's staging copy: each chunk's 16-byte header is
 * staged in tx as usual, and its payload is a run (struct clink__txref) that
 * the send gathers in place, a sendmsg with an iovec per piece. The owner
 * (a stream message, outq.c) keeps its memory until the kernel lets go of
 * every run of it:
 *
 * - a gathering send (path "gather"): when the send that carried the run
 *   completes, since the kernel copied it into the socket (or encrypted it)
 *   during the call;
 * - a zero-copy send (path "zerocopy", IORING_OP_SENDMSG_ZC, plaintext only:
 *   attaching the tls ULP takes zero-copy away from a socket): when its
 *   notification comes, since the kernel sent straight from the pages and
 *   held them until the peer acknowledged them. Such a send keeps its
 *   staged bytes too (struct clink__zc), so tx and txf carry on meanwhile.
 *
 * With user-space TLS none of this applies: OpenSSL encrypts from clink's
 * staging buffer (ptx), so payloads are copied there (path "copy").
 */
#include <errno.h>
#include <netinet/in.h>

#include "transport/conn_int.h"

#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3) /* kernel 6.2: the notification says whether the kernel copied */
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

#define GATHER_IOV 64 /* pieces per send: 32 runs with the headers between them */

struct clink__gio {
    struct msghdr mh;
    struct iovec iov[GATHER_IOV];
};

struct clink__zc {
    struct clink_conn *c;
    struct clink__zc *next;
    struct clink__bytes buf;   /* its staged bytes (the kernel reads them until the notification) */
    struct clink__txrefs refs; /* its runs */
    unsigned notifs;           /* notifications still to come (one per submission that promised one) */
    int sending;               /* bytes of it not yet taken by the kernel */
    int sent_any;              /* some of it went: it cannot fall back to a gathering send */
    struct clink__gio gio;
} __attribute__((aligned(64)));

int clink__conn_can_borrow(const struct clink_conn *c)
{
    return c->fd >= 0 && c->state <= CS_DRAINING && (!c->has_tls || c->ktls_tx);
}

static int loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static enum clink_send_path pick(const struct clink_conn *c)
{
    if (c->has_tls && !c->ktls_tx) {
        return CLINK_SEND_COPY;
    }
    /*
     * Zero-copy pays for pinning pages and a notification per send; over
     * loopback the kernel copies at delivery anyway (the notification says
     * so: zc_copied), so AUTO keeps it for links that leave the host.
     */
    enum clink_zerocopy z = c->node->opts.zerocopy;
    int zc =
        !c->has_tls && c->w->zc_ok && (z == CLINK_ZEROCOPY_ON || (z == CLINK_ZEROCOPY_AUTO && !loopback(&c->peer)));
    return zc ? CLINK_SEND_ZEROCOPY : CLINK_SEND_GATHER;
}

void clink__conn_pick_send_path(struct clink_conn *c)
{
    c->send_path = pick(c);
    c->cache.send_path = (enum clink_send_path)c->send_path;
}

static int refs_room(struct clink__txrefs *r, unsigned more)
{
    if (r->n + more <= r->cap) {
        return 0;
    }
    unsigned cap = r->cap ? r->cap : 16;
    while (cap < r->n + more) {
        cap *= 2;
    }
    struct clink__txref *v = realloc(r->v, cap * sizeof(*v));
    if (v == NULL) {
        return -1;
    }
    r->v = v;
    r->cap = cap;
    return 0;
}

int clink__conn_borrow(struct clink_conn *c, const uint8_t *p, size_t n, struct clink__txhold *h)
{
    struct clink__txrefs *r = &c->txr;
    if (refs_room(r, 1) < 0) {
        return -1;
    }
    r->v[r->n++] = (struct clink__txref){.at = clink__bytes_len(&c->tx), .p = p, .len = n, .hold = h};
    r->bytes += n;
    h->refs++;
    STAT_ADD(c->w, bytes_borrowed, n);
    return 0;
}

static void let_go(struct clink__txhold *h)
{
    if (--h->refs == 0) {
        h->release(h);
    }
}

/* The runs of r from its cursor on (or all of them), let go unsent; r is emptied. */
static void refs_clear(struct clink__txrefs *r, int from_start)
{
    for (unsigned i = from_start ? 0 : r->i; i < r->n; i++) {
        let_go(r->v[i].hold);
    }
    r->n = r->i = 0;
    r->off = r->staged_sent = r->bytes = 0;
}

static void refs_free(struct clink__txrefs *r)
{
    free(r->v);
    *r = (struct clink__txrefs){0};
}

int clink__conn_txf_left(const struct clink_conn *c)
{
    return clink__bytes_len(&c->txf) > 0 || c->txfr.i < c->txfr.n;
}

/* The iovecs of what is left of buf with its runs, at most max; returns how many. */
static unsigned build_iov(const struct clink__bytes *buf, const struct clink__txrefs *r, struct iovec *iov,
                          unsigned max)
{
    uint8_t *sp = clink__bytes_data(buf);
    size_t spos = r->staged_sent; /* staged bytes before sp */
    unsigned k = 0, i = r->i;
    for (; i < r->n && k + 2 <= max; i++) {
        size_t gap = r->v[i].at - spos;
        if (gap > 0) {
            iov[k++] = (struct iovec){.iov_base = sp, .iov_len = gap};
            sp += gap;
            spos += gap;
        }
        size_t off = i == r->i ? r->off : 0;
        iov[k++] = (struct iovec){.iov_base = (void *)(uintptr_t)(r->v[i].p + off), .iov_len = r->v[i].len - off};
    }
    size_t tail = clink__bytes_len(buf) - (spos - r->staged_sent);
    if (i == r->n && tail > 0 && k < max) {
        iov[k++] = (struct iovec){.iov_base = sp, .iov_len = tail};
    }
    return k;
}

/* n bytes of buf with its runs were sent: move the cursor, and let go of the runs done if release. */
static void consume(struct clink__bytes *buf, struct clink__txrefs *r, size_t n, int release)
{
    while (n > 0) {
        size_t k;
        if (r->i < r->n) {
            k = r->v[r->i].at - r->staged_sent;
            k = k < n ? k : n;
            clink__bytes_consume(buf, k);
            r->staged_sent += k;
            n -= k;
            if (n == 0) {
                break;
            }
            struct clink__txref *v = &r->v[r->i];
            k = v->len - r->off < n ? v->len - r->off : n;
            r->off += k;
            r->bytes -= k;
            n -= k;
            if (r->off == v->len) {
                if (release) {
                    let_go(v->hold);
                }
                r->i++;
                r->off = 0;
            }
        } else {
            clink__bytes_consume(buf, n);
            r->staged_sent += n;
            n = 0;
        }
    }
    if (release && r->i == r->n && clink__bytes_len(buf) == 0) {
        r->n = r->i = 0;
        r->off = r->staged_sent = r->bytes = 0;
    }
}

static void prep(struct clink_conn *c, struct clink__gio *g, const struct clink__bytes *buf,
                 const struct clink__txrefs *r, int zc, void *tag)
{
    g->mh = (struct msghdr){.msg_iov = g->iov, .msg_iovlen = build_iov(buf, r, g->iov, GATHER_IOV)};
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    if (zc) {
        io_uring_prep_sendmsg_zc(sqe, c->fd, &g->mh, MSG_NOSIGNAL);
        if (c->w->zc_report) {
            sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
        }
        STAT_ADD(c->w, zc_sends, 1);
    } else {
        io_uring_prep_sendmsg(sqe, c->fd, &g->mh, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data(sqe, tag);
    c->send_armed = 1;
    c->ops++;
}

static void zc_submit(struct clink__zc *z)
{
    prep(z->c, &z->gio, &z->buf, &z->refs, 1, clink__tag(z, OP_SEND_ZC));
}

void clink__conn_send_gather(struct clink_conn *c)
{
    if (c->send_path == CLINK_SEND_ZEROCOPY) {
        /* The send takes txf's bytes and runs with it: they stay put until its notification. */
        struct clink__zc *z = aligned_alloc(64, sizeof(*z));
        if (z != NULL) {
            *z = (struct clink__zc){.c = c, .buf = c->txf, .refs = c->txfr, .sending = 1};
            c->txf = (struct clink__bytes){.acct = z->buf.acct};
            c->txfr = (struct clink__txrefs){0};
            struct clink__zc **at = &c->zc_head;
            while (*at != NULL) {
                at = &(*at)->next;
            }
            *at = z;
            zc_submit(z);
            return;
        }
        c->send_path = CLINK_SEND_GATHER; /* out of memory: this connection gathers from now on */
    }
    if (c->gio == NULL && (c->gio = malloc(sizeof(*c->gio))) == NULL) {
        clink__conn_fail(c, -CLINK_ENOMEM, "out of memory");
        return;
    }
    prep(c, c->gio, &c->txf, &c->txfr, 0, clink__tag(c, OP_SEND));
}

void clink__conn_gather_sent(struct clink_conn *c, size_t res)
{
    consume(&c->txf, &c->txfr, res, 1);
}

void clink__conn_drop_borrowed(struct clink_conn *c, int txf_too)
{
    if (c->txr.n > 0) {
        /* tx's bytes are headers of chunks whose payloads these were: they go nowhere now either */
        clink__bytes_consume(&c->tx, clink__bytes_len(&c->tx));
        refs_clear(&c->txr, 1);
    }
    if (txf_too) {
        clink__bytes_consume(&c->txf, clink__bytes_len(&c->txf));
        refs_clear(&c->txfr, 0);
    }
}

void clink__conn_free_borrowed(struct clink_conn *c)
{
    clink__conn_drop_borrowed(c, 1);
    refs_free(&c->txr);
    refs_free(&c->txfr);
    free(c->gio);
    c->gio = NULL;
}

static void zc_maybe_free(struct clink__zc *z)
{
    if (z->sending || z->notifs > 0) {
        return;
    }
    struct clink_conn *c = z->c;
    for (struct clink__zc **at = &c->zc_head; *at != NULL; at = &(*at)->next) {
        if (*at == z) {
            *at = z->next;
            break;
        }
    }
    refs_clear(&z->refs, 1); /* now the kernel has let go of them all */
    refs_free(&z->refs);
    clink__bytes_free(&z->buf);
    free(z);
}

void clink__conn_zc_complete(struct clink_worker *w, void *ptr, int res, unsigned flags)
{
    struct clink__zc *z = ptr;
    struct clink_conn *c = z->c;
    if (flags & IORING_CQE_F_NOTIF) {
        if (w->zc_report && (res & IORING_NOTIF_USAGE_ZC_COPIED)) {
            STAT_ADD(w, zc_copied, 1);
        }
        z->notifs--;
        c->ops--;
        zc_maybe_free(z);
        clink__conn_after_op(c);
        return;
    }
    if (flags & IORING_CQE_F_MORE) {
        z->notifs++; /* the op stays counted until its notification */
    } else {
        c->ops--;
    }
    c->send_armed = 0;
    if (res == -EINVAL && w->zc_report && !z->sent_any) {
        w->zc_report = 0; /* a kernel before 6.2: no usage report, the send itself works */
        zc_submit(z);
        return;
    }
    if ((res == -EINVAL || res == -EOPNOTSUPP) && !z->sent_any && c->state <= CS_DRAINING) {
        /* This socket or kernel refuses zero-copy sends: gather instead, here and on this worker's next links. */
        CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: zero-copy send refused (%s): sending with copies", clink__conn_peer(c),
                       clink_strerror(res));
        w->zc_ok = 0;
        c->send_path = CLINK_SEND_GATHER;
        c->txf = z->buf; /* txf is empty while a send is armed */
        c->txfr = z->refs;
        z->buf = (struct clink__bytes){0};
        z->refs = (struct clink__txrefs){0};
        z->sending = 0;
        zc_maybe_free(z);
        clink__conn_send_gather(c);
        return;
    }
    if (res < 0) {
        z->sending = 0;
        zc_maybe_free(z);
        clink__conn_send_failed(c, res);
        return;
    }
    z->sent_any = 1;
    consume(&z->buf, &z->refs, (size_t)res, 0);
    if (clink__bytes_len(&z->buf) > 0 || z->refs.i < z->refs.n) {
        c->bytes_out += (uint64_t)res;
        STAT_ADD(w, bytes_out, (uint64_t)res);
        zc_submit(z); /* short send: the rest goes next */
        return;
    }
    z->sending = 0;
    zc_maybe_free(z);
    clink__conn_sent(c, res);
}
