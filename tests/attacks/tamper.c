/*
 * Records tampered with on an open TLS 1.3 connection (flipped, cut,
 * misframed, oversized, a flipped Finished), and a frame header claiming
 * 4 GiB: the node must close that connection, and only that one.
 */
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "clink/clink.h"
#include "tests/attacks/attacks.h"
#include "tests/attacks/peer.h"
#include "tests/attacks/raw.h"

enum tamper {
    T_FLIP,        /* one ciphertext byte flipped */
    T_CUT_FIN,     /* half a record, then our FIN */
    T_CUT_NEXT,    /* half a record, then a whole one: misframed */
    T_HUGE_LENGTH, /* a record header claiming 65535 bytes (> 2^14 + 256) */
    T_FINISHED,    /* our Finished flipped, during the handshake */
};

static enum verdict tamper(enum tamper how, char *obs, size_t cap)
{
    struct tls_peer m;
    struct peer_opts o = {.cert = cfg.cert, .key = cfg.key};
    double deadline = now_s() + sc(3);
    enum verdict v = V_FAIL;
    if (how == T_FINISHED) {
        if (peer_prepare(&m, &o) < 0 || peer_connect(&m, cfg.port) < 0) {
            snprintf(obs, cap, "setup: %s", m.err);
            goto out;
        }
        /* Flush the ClientHello, read the node's flight, then flip a byte of what answers it. */
        for (;;) {
            ERR_clear_error();
            int r = SSL_do_handshake(m.ssl);
            uint8_t *p;
            size_t n = tls_peer_pending(&m, &p);
            if (r == 1) {
                if (n < 30) {
                    snprintf(obs, cap, "no Finished to tamper with");
                    goto out;
                }
                p[n - 10] ^= 0x01; /* inside the last record: our encrypted Finished */
                break;
            }
            if (tls_peer_flush(&m) < 0 || SSL_get_error(m.ssl, r) != SSL_ERROR_WANT_READ ||
                tls_peer_pump(&m, deadline) <= 0) {
                snprintf(obs, cap, "handshake: %s", m.err);
                goto out;
            }
        }
        double t0 = now_s();
        if (tls_peer_flush(&m) < 0) {
            snprintf(obs, cap, "send: %s", m.err);
            goto out;
        }
        /* The HELLO would come next; the node must never send its own. */
        v = peer_wait_closed(&m, t0, deadline, obs, cap) >= 0 ? V_OK : V_FAIL;
        goto out;
    }
    if (peer_open(&m, cfg.port, &o, deadline) < 0) {
        snprintf(obs, cap, "could not open a connection: %s", m.err);
        goto out;
    }
    uint8_t req[FRAME_HDR + 16];
    size_t rn = echo_request(req, 2);
    ERR_clear_error();
    size_t done;
    if (SSL_write_ex(m.ssl, req, rn, &done) != 1) {
        snprintf(obs, cap, "SSL_write failed");
        goto out;
    }
    uint8_t *p;
    size_t n = tls_peer_pending(&m, &p); /* one record: 5-byte header, ciphertext, 16-byte tag */
    uint8_t rec[512];
    if (n < 30 || n > sizeof(rec)) {
        snprintf(obs, cap, "unexpected record size %zu", n);
        goto out;
    }
    memcpy(rec, p, n);
    tls_peer_drop_pending(&m);
    double t0 = now_s();
    int sent = 0;
    switch (how) {
    case T_FLIP:
        rec[5 + 3] ^= 0x20;
        sent = send_all(m.fd, rec, n);
        break;
    case T_CUT_FIN:
        sent = send_all(m.fd, rec, n / 2);
        shutdown(m.fd, SHUT_WR);
        break;
    case T_CUT_NEXT: {
        /* The next record, whole: the node reads its first bytes as the rest of the cut one. */
        uint8_t req2[FRAME_HDR + 16];
        size_t rn2 = echo_request(req2, 3);
        ERR_clear_error();
        if (SSL_write_ex(m.ssl, req2, rn2, &done) != 1) {
            snprintf(obs, cap, "SSL_write failed");
            goto out;
        }
        sent = send_all(m.fd, rec, n / 2);
        sent = sent < 0 ? sent : tls_peer_flush(&m);
        break;
    }
    case T_HUGE_LENGTH:
        rec[3] = 0xff;
        rec[4] = 0xff;
        sent = send_all(m.fd, rec, n);
        break;
    case T_FINISHED:
        break;
    }
    if (sent < 0) {
        /* The node may already have closed (a reset on our send is fine); read what it said. */
        obs_add(obs, cap, "send failed (%s); ", strerror(errno));
    }
    v = peer_wait_closed(&m, t0, deadline, obs, cap) >= 0 ? V_OK : V_FAIL;
out:
    tls_peer_free(&m);
    return v;
}

enum verdict atk_flip(char *obs, size_t cap)
{
    return tamper(T_FLIP, obs, cap);
}

enum verdict atk_cut_fin(char *obs, size_t cap)
{
    return tamper(T_CUT_FIN, obs, cap);
}

enum verdict atk_cut_next(char *obs, size_t cap)
{
    return tamper(T_CUT_NEXT, obs, cap);
}

enum verdict atk_huge_record(char *obs, size_t cap)
{
    return tamper(T_HUGE_LENGTH, obs, cap);
}

enum verdict atk_finished(char *obs, size_t cap)
{
    return tamper(T_FINISHED, obs, cap);
}

/* A frame header claiming 4 GiB - 1 after a real handshake and HELLO. */
enum verdict atk_frame_4g(char *obs, size_t cap)
{
    struct tls_peer m;
    struct peer_opts o = {.cert = cfg.cert, .key = cfg.key};
    double deadline = now_s() + sc(3);
    enum verdict v = V_FAIL;
    if (peer_open(&m, cfg.port, &o, deadline) < 0) {
        snprintf(obs, cap, "could not open a connection: %s", m.err);
        goto out;
    }
    uint8_t h[FRAME_HDR];
    frame_hdr(h, FRAME_REQUEST, ECHO_METHOD, 0xffffffffu, 5);
    double t0 = now_s();
    if (tls_peer_write(&m, h, sizeof(h)) < 0) {
        snprintf(obs, cap, "send: %s", m.err);
        goto out;
    }
    struct frame f;
    if (peer_read_frame(&m, &f, deadline) == 0) {
        if (f.type == FRAME_ERROR && f.len >= 4) {
            obs_add(obs, cap, "ERROR frame %s '%.*s', ", clink_strerror(-(int)get_be32(f.payload)),
                    (int)(f.len - 4 < 200 ? f.len - 4 : 200), (const char *)f.payload + 4);
        } else {
            obs_add(obs, cap, "frame type %u, ", f.type);
        }
    }
    v = peer_wait_closed(&m, t0, deadline, obs, cap) >= 0 ? V_OK : V_FAIL;
out:
    tls_peer_free(&m);
    return v;
}
