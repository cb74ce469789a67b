#include "tests/attacks/peer.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

#include "tests/attacks/harness.h"

static int greeting(struct tls_peer *m, double deadline)
{
    if (skip_greeting(m->fd, deadline) < 0) {
        snprintf(m->err, sizeof(m->err), "no greeting from the node");
        return -1;
    }
    return 0;
}

int peer_prepare(struct tls_peer *m, const struct peer_opts *o)
{
    static const unsigned char alpn[] = "\x07"
                                        "clink/1";
    struct tls_peer_opts to = {
        .min_version = o->min_version ? o->min_version : TLS1_3_VERSION,
        .max_version = o->max_version ? o->max_version : TLS1_3_VERSION,
        .ciphers = o->ciphers,
        .cert = o->cert,
        .key = o->key,
        .ca = cfg.ca,
        .host = "localhost",
        .sni = "localhost",
        .alpn = alpn,
        .alpn_len = sizeof(alpn) - 1,
        .preamble = greeting,
    };
    return tls_peer_new(m, &to, -1);
}

int peer_connect(struct tls_peer *m, uint16_t port)
{
    m->fd = tcp_connect(port);
    if (m->fd < 0) {
        snprintf(m->err, sizeof(m->err), "connect: %s", strerror(-m->fd));
        return -1;
    }
    return 0;
}

int peer_read_frame(struct tls_peer *m, struct frame *f, double deadline)
{
    uint8_t h[FRAME_HDR];
    if (tls_peer_read(m, h, sizeof(h), NULL, deadline) < 0) {
        return -1;
    }
    f->type = h[0];
    f->len = get_be32(h + 4);
    f->id = (uint64_t)get_be32(h + 8) << 32 | get_be32(h + 12);
    uint32_t left = f->len;
    size_t off = 0;
    while (left > 0) {
        uint8_t tmp[512];
        size_t k = left < sizeof(tmp) ? left : sizeof(tmp);
        if (tls_peer_read(m, tmp, k, NULL, deadline) < 0) {
            return -1;
        }
        if (off < sizeof(f->payload)) {
            size_t c = k < sizeof(f->payload) - off ? k : sizeof(f->payload) - off;
            memcpy(f->payload + off, tmp, c);
            off += c;
        }
        left -= (uint32_t)k;
    }
    return 0;
}

int peer_hello(struct tls_peer *m, double deadline)
{
    uint8_t h[FRAME_HDR + 12];
    size_t n = hello_frame(h);
    if (tls_peer_write(m, h, n) < 0) {
        return -1;
    }
    struct frame f;
    if (peer_read_frame(m, &f, deadline) < 0) {
        return -1;
    }
    if (f.type != FRAME_HELLO || f.len < 12) {
        snprintf(m->err, sizeof(m->err), "the node answered HELLO with frame type %u", f.type);
        return -1;
    }
    return 0;
}

/* Read frames until the answer to id: 0 if it is the right echo. */
static int peer_echo_answer(struct tls_peer *m, uint64_t id, double deadline)
{
    uint8_t want[FRAME_HDR + 16];
    echo_request(want, id);
    for (;;) {
        struct frame f;
        if (peer_read_frame(m, &f, deadline) < 0) {
            return -1;
        }
        if (f.id != id) {
            continue;
        }
        if (f.type != FRAME_RESPONSE || f.len != 16 || memcmp(f.payload, want + FRAME_HDR, 16) != 0) {
            snprintf(m->err, sizeof(m->err), "wrong answer to the echo (frame type %u)", f.type);
            return -1;
        }
        return 0;
    }
}

int peer_echo(struct tls_peer *m, uint64_t id, double deadline)
{
    uint8_t req[FRAME_HDR + 16];
    size_t n = echo_request(req, id);
    if (tls_peer_write(m, req, n) < 0) {
        return -1;
    }
    return peer_echo_answer(m, id, deadline);
}

int peer_open(struct tls_peer *m, uint16_t port, const struct peer_opts *o, double deadline)
{
    if (peer_prepare(m, o) < 0 || peer_connect(m, port) < 0 || tls_peer_handshake(m, deadline) < 0 ||
        peer_hello(m, deadline) < 0 || peer_echo(m, 1, deadline) < 0) {
        return -1;
    }
    return 0;
}

double peer_wait_closed(struct tls_peer *m, double t0, double deadline, char *obs, size_t cap)
{
    while (!m->closed) {
        uint8_t buf[4096];
        size_t k;
        ERR_clear_error();
        int r = SSL_read_ex(m->ssl, buf, sizeof(buf), &k);
        ERR_clear_error();
        tls_peer_drop_pending(m); /* nothing more from us: not even an answer to its alert */
        if (r == 1) {
            continue;
        }
        if (tls_peer_pump(m, deadline) == TLS_PEER_TIMEOUT) {
            obs_add(obs, cap, "still open after %.2f s", now_s() - t0);
            return -1;
        }
    }
    double t = now_s() - t0;
    obs_add(obs, cap, "%s%s%s, closed (%s) after %.2f s", m->alert[0] ? "alert: " : "no alert",
            m->alert[0] ? m->alert : "", m->alert[0] && !m->alert_fatal ? " (warning)" : "",
            m->closed == 1 ? "EOF" : "reset", t);
    return t;
}
