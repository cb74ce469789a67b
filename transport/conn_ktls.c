/*
 * kTLS: hand an open TLS 1.3 connection's record layer to the kernel
 * (docs/ktls.md), receive side first at a record boundary, then the send
 * side once OpenSSL's last records are out; read control records (alerts,
 * late tickets) and send close_notify the way a kTLS socket must.
 */
#include <errno.h>
#include <linux/tls.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/conn_int.h"
#include "transport/ktls.h"

/* Stay in user-space TLS for the direction(s) not handed over, and say why (REQUIRED: fail). */
static void ktls_fallback(struct clink_conn *c, const char *why)
{
    c->ktls_try = 0;
    c->ktls_tx_pending = 0;
    clink__tls_wipe_secrets(c->tls);
    snprintf(c->cache.ktls_reason, sizeof(c->cache.ktls_reason), "%s%s", c->ktls_rx ? "send side: " : "", why);
    STAT_ADD(c->w, ktls_fallbacks, c->ktls_rx ? 0 : 1);
    STAT_ADD(c->w, ktls_rx_only, c->ktls_rx ? 1 : 0);
    if (!c->w->ktls_logged) { /* once per worker: every connection counts, the log says it once */
        c->w->ktls_logged = 1;
        CLINK_CONN_LOG(c, c->ktls_mode == CLINK_KTLS_REQUIRED ? CLINK_LOG_WARN : CLINK_LOG_INFO,
                       "%s: kTLS not used: %s (counted in ktls_fallbacks; status says why per connection)",
                       clink__conn_peer(c), c->cache.ktls_reason);
    }
    if (c->ktls_mode == CLINK_KTLS_REQUIRED && c->is_server && !c->was_open) {
        /* Refused before it was announced: the client is told why (this still goes out through OpenSSL). */
        char msg[160];
        snprintf(msg, sizeof(msg), "kTLS required by the server: %s", c->cache.ktls_reason);
        clink__conn_emit_error(c, 0, CLINK_EKTLS, msg);
        clink__conn_refuse(c, -CLINK_EKTLS, "%s", msg);
    } else if (c->ktls_mode == CLINK_KTLS_REQUIRED) {
        clink__conn_fail(c, -CLINK_EKTLS, "kTLS required: %s", c->cache.ktls_reason);
    } else if (c->state == CS_OPEN && !c->was_open) {
        clink__conn_announce_open(c);
    }
}

/* Install one direction. Returns 0, or -1 with why. */
static int ktls_install(struct clink_conn *c, int tx, char *why, size_t cap)
{
    struct clink__ktls_info info;
    int ret = clink__tls_ktls_info(c->tls, tx, &info);
    if (ret < 0) {
        snprintf(why, cap, "%s",
                 c->tls->key_updated ? "the keys were updated (KeyUpdate) before the hand-over"
                 : tx                ? "no TLS 1.3 traffic secret for the send side"
                                     : "no TLS 1.3 traffic secret for the receive side");
    } else {
        ret = clink__ktls_install(c->fd, tx, &info, &c->ktls_ulp, why, cap);
    }
    clink__ktls_info_wipe(&info);
    return ret < 0 ? -1 : 0;
}

/*
 * RX first, at the record boundary where the connection opened: the client
 * has read the server's tickets and HELLO, the server the client's HELLO,
 * each through OpenSSL with exact-length reads, so nothing beyond that
 * record has left the socket. Then TX, once OpenSSL's last records are out.
 */
void clink__conn_ktls_begin(struct clink_conn *c)
{
    c->ktls_try = 0;
    char why[96];
    if (!c->node->ktls_ulp) {
        ktls_fallback(c, "this kernel offers no kTLS (no 'tls' in tcp_available_ulp)");
        return;
    }
    if (!clink__tls_rx_idle(c->tls) || clink__bytes_len(&c->prx) > 0) {
        ktls_fallback(c, "bytes past the hand-over point were already read");
        return;
    }
    /* Before RX goes to the kernel, which cannot be undone: reading its control records needs these. */
    if (c->kio == NULL && (c->kio = calloc(1, sizeof(*c->kio))) == NULL) {
        ktls_fallback(c, "out of memory");
        return;
    }
    if (ktls_install(c, 0, why, sizeof(why)) < 0) {
        ktls_fallback(c, why);
        return;
    }
    c->ktls_rx = 1;
    c->cache.ktls_rx = CLINK_KTLS_ON;
    clink__tls_drop_buffers(c->tls);
    /*
     * What was staged before this point (the server's HELLO) is sealed by
     * OpenSSL now, as a record of its own: the peer reads it at its own
     * hand-over point, and nothing sent after the announcement may share it.
     */
    if (clink__conn_encrypt_pending(c) < 0) {
        return;
    }
    c->ktls_tx_pending = 1;
    clink__conn_ktls_try_tx(c);
    if (c->state == CS_OPEN && !c->was_open) {
        clink__conn_announce_open(c);
    }
}

void clink__conn_ktls_try_tx(struct clink_conn *c)
{
    if (!c->ktls_tx_pending || c->send_armed || clink__bytes_len(&c->tx) > 0 || clink__bytes_len(&c->txf) > 0) {
        return;
    }
    c->ktls_tx_pending = 0;
    char why[96];
    if (ktls_install(c, 1, why, sizeof(why)) < 0) {
        ktls_fallback(c, why); /* RX stays with the kernel, OpenSSL keeps sending: a valid mix */
        return;
    }
    c->ktls_tx = 1;
    c->cache.ktls_tx = CLINK_KTLS_ON;
    clink__conn_pick_send_path(c); /* the kernel encrypts: stream data goes from the caller's buffers */
    c->cache.ktls_reason[0] = '\0';
    /*
     * Both directions are the kernel's: OpenSSL's per-connection state (the
     * SSL, its session and the peer's certificate; the status was copied when
     * the connection opened, and the client filed its tickets already) is
     * needed no more. Freed, with the secrets; the peer's certificates are
     * kept (DER) for a reload to check again.
     */
    clink__conn_keep_peer(c);
    clink__conn_tls_free(c);
    STAT_ADD(c->w, ktls_offloaded, 1);
    /* What was staged while we waited is plaintext for the kernel to encrypt: it becomes the output (tx is empty). */
    struct clink__bytes tmp = c->tx;
    c->tx = c->ptx;
    c->ptx = tmp;
    clink__mark_dirty(c);
}

void clink__conn_ktls_read_control(struct clink_conn *c)
{
    /* Into rx, after whatever partial frame it holds: a record's plaintext is at most 16 KiB. */
    if (clink__bytes_reserve(&c->rx, 16384 + 1) < 0) {
        clink__conn_fail(c, -CLINK_ENOMEM, "out of memory");
        return;
    }
    memset(&c->kio->rmsg, 0, sizeof(c->kio->rmsg));
    c->kio->riov = (struct iovec){.iov_base = c->rx.base + c->rx.tail, .iov_len = c->rx.cap - c->rx.tail};
    c->kio->rmsg.msg_iov = &c->kio->riov;
    c->kio->rmsg.msg_iovlen = 1;
    c->kio->rmsg.msg_control = c->kio->rcmsg;
    c->kio->rmsg.msg_controllen = CMSG_SPACE(1);
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    io_uring_prep_recvmsg(sqe, c->fd, &c->kio->rmsg, 0);
    io_uring_sqe_set_data(sqe, clink__tag(c, OP_RECVMSG));
    c->recv_armed = 1; /* no other recv while this one is out */
    c->ops++;
}

/* A control record under kTLS RX: close_notify ends the connection, any other alert or a KeyUpdate aborts it. */
void clink__conn_ktls_on_control(struct clink_conn *c, int res)
{
    c->recv_armed = 0;
    if (c->state >= CS_CLOSING) {
        return;
    }
    if (res == -EBADMSG) {
        clink__conn_fail(c, -CLINK_ETLS,
                         "a record from %s failed authentication (tampered or corrupted): connection aborted",
                         clink__conn_peer(c));
        return;
    }
    if (res < 0) {
        clink__conn_fail(c, clink__conn_lost_err(res), "recvmsg from %s: %s", clink__conn_peer(c), clink_strerror(res));
        return;
    }
    /* The whole record, with its type (the body stays past rx's tail: it is not frame data). */
    const uint8_t *body = c->rx.base + c->rx.tail;
    CLINK_MARK_DEFINED(body, (size_t)res);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&c->kio->rmsg);
    if (res == 0 || (c->kio->rmsg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || !(c->kio->rmsg.msg_flags & MSG_EOR) ||
        cm == NULL || cm->cmsg_level != SOL_TLS || cm->cmsg_type != TLS_GET_RECORD_TYPE || cm->cmsg_len < CMSG_LEN(1)) {
        clink__conn_fail(c, res == 0 ? -CLINK_ECLOSED : -CLINK_ETLS, "%s: %s", clink__conn_peer(c),
                         res == 0 ? "closed the connection without close_notify" : "unreadable kTLS control record");
        return;
    }
    uint8_t type = *CMSG_DATA(cm);
    if (type == 21 && res == 2 && body[1] == 0) { /* alert: close_notify */
        if (c->tls != NULL) {
            c->tls->orderly = 1; /* the receive side alone is the kernel's: OpenSSL's session may be resumed */
        }
        if (c->state == CS_DRAINING && clink__conn_calls_in_flight(c) == 0) {
            clink__conn_close_now(c, 0, 1);
        } else {
            clink__conn_fail(c, -CLINK_ECLOSED, "peer closed the connection (close_notify)");
        }
        return;
    }
    if (type == 21) {
        clink__conn_fail(c, -CLINK_ETLS, "peer sent TLS alert %u (%s)", res == 2 ? body[1] : 0u,
                         res == 2 ? SSL_alert_desc_string_long(body[1]) : "malformed");
        return;
    }
    if (type == 22 && body[0] == 4) { /* a late NewSessionTicket: not for us to keep */
        clink__conn_arm_recv(c);
        return;
    }
    if (type == 22 && body[0] == 24) {
        clink__conn_fail(c, -CLINK_ETLS, "peer sent a TLS KeyUpdate, which a kTLS socket on this kernel cannot follow");
        return;
    }
    clink__conn_fail(c, -CLINK_EPROTO, "unexpected TLS record type %u under kTLS", type);
}

/* close_notify, as the kernel sends it: an alert record (warning, close_notify). */
void clink__conn_ktls_send_close_notify(struct clink_conn *c)
{
    static uint8_t alert[2] = {1, 0};
    memset(&c->kio->smsg, 0, sizeof(c->kio->smsg));
    c->kio->siov = (struct iovec){.iov_base = alert, .iov_len = sizeof(alert)};
    c->kio->smsg.msg_iov = &c->kio->siov;
    c->kio->smsg.msg_iovlen = 1;
    c->kio->smsg.msg_control = c->kio->scmsg;
    c->kio->smsg.msg_controllen = CMSG_SPACE(1);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&c->kio->smsg);
    cm->cmsg_level = SOL_TLS;
    cm->cmsg_type = TLS_SET_RECORD_TYPE;
    cm->cmsg_len = CMSG_LEN(1);
    *CMSG_DATA(cm) = 21;
    struct io_uring_sqe *sqe = clink__sqe(c->w);
    io_uring_prep_sendmsg(sqe, c->fd, &c->kio->smsg, MSG_NOSIGNAL);
    io_uring_sqe_set_data(sqe, clink__tag(c, OP_SENDMSG));
    c->send_armed = 1;
    c->ops++;
}
