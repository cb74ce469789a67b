/*
 * clink's native protocol on a connection (docs/protocol.md): frames out
 * and in, the HELLO exchange with the login it carries, the status method,
 * GOAWAY. The connection core (conn*.c) moves the bytes.
 */
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/accounts.h"
#include "transport/frame.h"
#include "transport/native.h"

int clink__conn_emit(struct clink_conn *c, uint8_t type, uint16_t method, uint64_t id, const struct iovec *iov,
                     unsigned iovcnt, const void *extra, size_t extra_len)
{
    if (c->proto != &clink__proto_native) {
        return -CLINK_EINVAL; /* frames on a MySQL or HTTPS connection would be garbage to its peer */
    }
    size_t len = extra_len;
    for (unsigned i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    if (len > c->nat->peer_max_frame) {
        return -CLINK_EFRAMETOOBIG;
    }
    struct clink__bytes *out = clink__conn_out(c);
    if (clink__bytes_reserve(out, CLINK_FRAME_HDR + len) < 0) {
        return -CLINK_ENOMEM;
    }
    struct clink_frame_hdr h = {.type = type, .method = method, .length = (uint32_t)len, .id = id};
    clink__frame_encode(out->base + out->tail, &h);
    out->tail += CLINK_FRAME_HDR;
    if (extra_len) {
        memcpy(out->base + out->tail, extra, extra_len);
        out->tail += extra_len;
    }
    for (unsigned i = 0; i < iovcnt; i++) {
        memcpy(out->base + out->tail, iov[i].iov_base, iov[i].iov_len);
        out->tail += iov[i].iov_len;
    }
    /* The payload copy into the staging buffer is the one copy userspace framing costs. */
    STAT_ADD(c->w, bytes_copied, len);
    c->frames_out++;
    clink__mark_dirty(c);
    return 0;
}

void clink__conn_emit_error(struct clink_conn *c, uint64_t id, int code, const char *msg)
{
    uint8_t b[4];
    clink__put_u32(b, (uint32_t)(code < 0 ? -code : code));
    size_t ml = strlen(msg);
    if (ml > 1024) {
        ml = 1024;
    }
    struct iovec iov = {.iov_base = (void *)(uintptr_t)msg, .iov_len = ml};
    CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_ERROR, 0, id, &iov, 1, b, sizeof(b)) < 0);
}

int clink__conn_emit_flags(struct clink_conn *c, uint8_t type, uint8_t flags, uint64_t id, const void *p, size_t n)
{
    struct clink__bytes *out = clink__conn_out(c);
    if (clink__bytes_reserve(out, CLINK_FRAME_HDR + n) < 0) {
        return -CLINK_ENOMEM;
    }
    struct clink_frame_hdr h = {.type = type, .flags = flags, .length = (uint32_t)n, .id = id};
    clink__frame_encode(out->base + out->tail, &h);
    out->tail += CLINK_FRAME_HDR;
    memcpy(out->base + out->tail, p, n);
    out->tail += n;
    c->frames_out++;
    clink__mark_dirty(c);
    return 0;
}

/* Version 2: what we take in, said once right after the HELLO exchange (the peer's first frame must be its own). */
static void send_settings(struct clink_conn *c)
{
    struct clink__native *nat = c->nat;
    nat->ours = (struct clink_settings){.max_message = c->node->opts.max_message,
                                        .conn_window = c->node->opts.conn_window,
                                        .stream_window = c->node->opts.stream_window};
    nat->recv_allowed = nat->ours.conn_window;
    uint8_t b[CLINK_SETTINGS_LEN];
    clink__settings_encode(b, &nat->ours);
    CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_SETTINGS, 0, 0, NULL, 0, b, sizeof(b)) < 0);
}

static void on_settings(struct clink_conn *c, const uint8_t *p)
{
    struct clink__native *nat = c->nat;
    if (nat->settings_recv) {
        clink__conn_fail(c, -CLINK_EPROTO, "second SETTINGS");
        return;
    }
    if (clink__settings_decode(p, &nat->peer) < 0) {
        clink__conn_fail(c, -CLINK_EPROTO, "SETTINGS out of bounds (max_message %u, windows %u and %u)",
                         nat->peer.max_message, nat->peer.conn_window, nat->peer.stream_window);
        return;
    }
    nat->settings_recv = 1;
    nat->send_credit = nat->peer.conn_window;
    clink__outq_credit(c); /* chunked messages queued before it (a server's own calls) may start */
}

/*
 * The client's HELLO carries its login: the password as is inside TLS, or in
 * plaintext only its answer to the server's scramble. The password is wiped
 * as soon as it is encoded (and the staging buffer once it is encrypted).
 */
void clink__native_send_hello(struct clink_conn *c, uint16_t minv, uint16_t maxv)
{
    struct clink_hello h = {.min_version = minv, .max_version = maxv, .max_frame = c->node->opts.max_frame};
    uint8_t b[CLINK_HELLO_MAX];
    if (!c->is_server && c->dial->login) {
        h.flags = CLINK_HELLO_LOGIN;
        snprintf(h.user, sizeof(h.user), "%s", c->dial->login_user);
        if (c->dial->has_password && c->has_tls && c->verify == 2) {
            h.method = CLINK_LOGIN_CLEARTEXT;
            h.auth_len = (uint8_t)strlen(c->dial->password);
            memcpy(h.auth, c->dial->password, h.auth_len);
            c->wipe_ptx = 1;
        } else if (c->dial->has_password && c->has_tls) {
            /*
             * A server we did not verify by name (VERIFY_CA, REQUIRED,
             * PREFERRED): never the password, and never an answer another
             * session could use. The greeting (and its scramble) came before
             * TLS, from whoever answered: bound to this session, a relay's
             * answer is worthless at the real node.
             */
            uint8_t cb[CLINK_BINDING_LEN];
            int ret = clink__tls_channel_binding(c->tls, cb);
            if (ret == 0) {
                h.method = CLINK_LOGIN_SCRAMBLE_BOUND;
                h.auth_len = 20;
                ret = clink_login_scramble_bound(c->dial->password, c->scramble, cb, h.auth);
            }
            OPENSSL_cleanse(cb, sizeof(cb));
            if (ret < 0) {
                OPENSSL_cleanse(c->dial->password, sizeof(c->dial->password));
                OPENSSL_cleanse(&h, sizeof(h));
                clink__conn_fail(c, -CLINK_ETLS,
                                 "cannot bind the login to this TLS session (TLS 1.2 without the extended master "
                                 "secret): the password's proof is not sent");
                return;
            }
        } else if (c->dial->has_password) {
            /* Plaintext: never the password itself; the answer cannot be bound to anything (docs/SECURITY.md). */
            h.method = CLINK_LOGIN_SCRAMBLE;
            h.auth_len = 20;
            CLINK_IGNORE(clink_login_scramble(c->dial->password, c->scramble, h.auth) < 0);
        }
        OPENSSL_cleanse(c->dial->password, sizeof(c->dial->password));
    }
    size_t n = clink__hello_encode(b, &h);
    CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_HELLO, 0, 0, NULL, 0, b, n) < 0);
    OPENSSL_cleanse(&h, sizeof(h));
    OPENSSL_cleanse(b, sizeof(b));
}

/*
 * Server: the login step. With accounts configured every client logs in (no
 * login part = the anonymous user ''); the client learns only "Access
 * denied", the log says why.
 */
static int check_login(struct clink_conn *c, const struct clink_hello *h)
{
    if (c->node->accounts == NULL) {
        return 0;
    }
    char host[INET6_ADDRSTRLEN];
    clink__conn_peer_host(c, host, sizeof(host));
    const X509 *cert = c->has_tls ? SSL_get0_peer_certificate(c->tls->ssl) : NULL;
    uint8_t cb[CLINK_BINDING_LEN];
    int bound = c->has_tls && clink__tls_channel_binding(c->tls, cb) == 0;
    struct clink_login l = {
        .user = h->user,
        .host = host,
        .tls = c->has_tls,
        .cipher = c->has_tls ? SSL_CIPHER_get_name(SSL_get_current_cipher(c->tls->ssl)) : NULL,
        .peer_cert = cert,
        .peer_verified = cert != NULL && SSL_get_verify_result(c->tls->ssl) == X509_V_OK,
        .method = (enum clink_login_method)h->method,
        .auth = h->auth,
        .auth_len = h->auth_len,
        .scramble = c->scramble,
        .binding = bound ? cb : NULL,
    };
    char why[256] = "";
    int ret = clink_accounts_check(c->node->accounts, &l, c->cache.account, sizeof(c->cache.account), why, sizeof(why));
    OPENSSL_cleanse(cb, sizeof(cb));
    if (ret == 0 && l.method == CLINK_LOGIN_SCRAMBLE && l.tls) {
        clink__conn_legacy_login(c); /* an account that allows it: counted and logged */
    }
    if (ret < 0) {
        char shown[sizeof(h->user)], msg[160];
        clink__conn_shown_name(h->user, shown, sizeof(shown));
        clink_access_denied(shown, host, msg, sizeof(msg));
        STAT_ADD(c->w, logins_denied, 1);
        if (clink__conn_refusal_log_ok(c)) {
            CLINK_CONN_LOG(c, CLINK_LOG_WARN, "%s: %s (%s)", clink__conn_peer(c), msg, why);
        }
        clink__conn_emit_error(c, 0, CLINK_EACCESS, msg);
        clink__conn_refuse(c, -CLINK_EACCESS, "%s: %s", msg, why);
        return ret;
    }
    STAT_ADD(c->w, logins_ok, 1);
    return 0;
}

/*
 * Server: count the login against the node's session limits (conn_limits.c).
 * A node link is a login proven by a client certificate the node verified,
 * with no password: another node, a pool. A refusal is an error frame the
 * client reads, as a denied login is.
 */
static int admit(struct clink_conn *c, const struct clink_hello *h)
{
    int link = c->has_tls && h->method == CLINK_LOGIN_NONE && SSL_get0_peer_certificate(c->tls->ssl) != NULL &&
               SSL_get_verify_result(c->tls->ssl) == X509_V_OK;
    enum clink__limit lim = clink__conn_limits_admit(c, link);
    if (lim == LIMIT_OK) {
        return 0;
    }
    char msg[256];
    if (lim == LIMIT_USER) {
        snprintf(msg, sizeof(msg), "User %s already has more than 'max_user_connections' active connections",
                 c->cache.account);
    } else {
        snprintf(msg, sizeof(msg), "%s", lim == LIMIT_LINKS ? "Too many node links" : "Too many connections");
    }
    clink__conn_emit_error(c, 0, CLINK_ETOOMANY, msg);
    clink__conn_refuse(c, -CLINK_ETOOMANY, "%s", msg);
    return -CLINK_ETOOMANY;
}

static int hello_agreed(struct clink_conn *c, const struct clink_hello *theirs)
{
    struct clink_hello ours = {.min_version = CLINK_PROTO_MIN, .max_version = c->node->opts.proto_max};
    int v = clink__hello_pick(&ours, theirs);
    if (v < 0) {
        if (c->is_server) {
            char msg[96];
            snprintf(msg, sizeof(msg), "no common protocol version: server speaks %u..%u, client %u..%u",
                     CLINK_PROTO_MIN, c->node->opts.proto_max, theirs->min_version, theirs->max_version);
            clink__conn_emit_error(c, 0, CLINK_EVERSION, msg);
            clink__conn_refuse(c, v, "%s", msg);
        } else {
            clink__conn_fail(c, v, "server chose version %u..%u, we speak %u..%u", theirs->min_version,
                             theirs->max_version, CLINK_PROTO_MIN, c->node->opts.proto_max);
        }
        return v;
    }
    c->nat->version = (uint16_t)v;
    c->nat->peer_max_frame = theirs->max_frame;
    if (clink__conn_recheck_opening(c) < 0) {
        return 0; /* its handshake ran under trust a reload has replaced since, and the peer fails the new one */
    }
    if (c->is_server) {
        int ret = check_login(c, theirs);
        if (ret == 0) {
            ret = admit(c, theirs);
        }
        if (ret < 0) {
            return ret;
        }
        clink__native_send_hello(c, (uint16_t)v, (uint16_t)v);
    }
    if (v >= 2) {
        send_settings(c);
    }
    STAT_ADD(c->w, handshakes_ok, 1);
    if (c->has_tls && SSL_session_reused(c->tls->ssl)) {
        STAT_ADD(c->w, handshakes_resumed, 1);
    }
    if (c->mode == CLINK_MODE_PLAIN && atomic_load(&c->node->secure) == CLINK_SECURE_REQUIRE_TLS) {
        /* Opening while the node moved to REQUIRE_TLS (clink__conn_apply_secure skips what is still opening). */
        clink__conn_fail(c, -CLINK_EPLAINTEXT, "plaintext link refused: transport security is now REQUIRE_TLS");
        return 0;
    }
    c->cache.proto_version = c->nat->version;
    if (!c->is_server && v >= 2) {
        return 0; /* open once the server's SETTINGS (its next frame) says what it takes */
    }
    CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "open: %s, protocol %u", clink__conn_peer(c), c->nat->version);
    clink__conn_became_open(c);
    return 0;
}

static int on_hello(struct clink_conn *c, const uint8_t *p, size_t n)
{
    struct clink_hello theirs;
    int ret = clink__hello_decode(p, n, &theirs);
    /* The payload may hold a password: wipe it in our receive buffer now, and the decoded copy after use. */
    OPENSSL_cleanse((void *)(uintptr_t)p, n);
    if (ret < 0) {
        clink__conn_fail(c, ret, "malformed HELLO");
    } else {
        ret = hello_agreed(c, &theirs);
    }
    OPENSSL_cleanse(&theirs, sizeof(theirs));
    return ret;
}

static void on_response(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p)
{
    size_t len = h->length;
    struct clink__partial *pm = NULL;
    if (h->type == CLINK_FRAME_RESPONSE && c->nat->version >= 2) {
        int r = clink__reasm_take(c, h, p, &pm);
        if (r <= 0) {
            return; /* more to come, or the connection failed */
        }
        if (r == 1) {
            p = pm->buf;
            len = pm->len;
        }
    }
    struct clink_call *call = clink__idmap_get(&c->nat->calls, h->id);
    if (call == NULL || call->priv.state != CALL_SENT) {
        if (call == NULL && h->type == CLINK_FRAME_ERROR && c->nat->streams_mine.count > 0) {
            struct clink_stream *s = clink__idmap_get(&c->nat->streams_mine, h->id);
            if (s != NULL) {
                uint32_t code = clink__get_u32(p);
                int status = (code > CLINK_EFIRST_ && code < CLINK_ELAST_) ? -(int)code : -CLINK_EREMOTE;
                clink__stream_on_error(c, s, status, p + 4, len - 4);
            }
        }
        if (pm != NULL) {
            clink__reasm_done(c, pm);
        }
        return; /* canceled or timed out: the late answer is dropped */
    }
    int is_pong = h->type == CLINK_FRAME_PONG;
    if (is_pong != call->priv.ping) {
        if (pm != NULL) {
            clink__reasm_done(c, pm);
        }
        clink__conn_fail(c, -CLINK_EPROTO, "answer of the wrong kind for call %llu", (unsigned long long)h->id);
        return;
    }
    clink__conn_detach_call(c, call);
    if (h->type == CLINK_FRAME_ERROR) {
        uint32_t code = clink__get_u32(p);
        int status = (code > CLINK_EFIRST_ && code < CLINK_ELAST_) ? -(int)code : -CLINK_EREMOTE;
        clink__call_finish(c->w, call, status, p + 4, len - 4);
    } else if (is_pong) {
        clink__call_finish(c->w, call, 0, NULL, 0);
    } else {
        clink__call_finish(c->w, call, 0, p, len);
    }
    if (pm != NULL) {
        clink__reasm_done(c, pm);
    }
    clink__conn_maybe_drained(c);
}

/* CLINK_METHOD_STATUS: this connection as we see it, then the node's counters. */
static void answer_status(struct clink_conn *c, uint64_t id)
{
    struct clink_conn_status st;
    struct clink_node_stats ns;
    char text[4096];
    clink__conn_fill_status(c, &st);
    clink_node_get_stats(c->node, &ns);
    size_t n = clink_conn_status_format(&st, text, sizeof(text));
    int m = snprintf(
        text + n, sizeof(text) - n,
        "\nNode workers: %u\nConnections open: %llu\nConnections accepted: %llu\nConnections dialed: %llu\n"
        "Connections refused: %llu\nHandshakes: %llu ok, %llu failed\nLogins: %llu ok, %llu denied\n"
        "Calls: %llu started, %llu ok, %llu failed\nRequests handled: %llu\nTLS reloads: %llu\n"
        "Plaintext fallbacks: %llu\nProtocol errors: %llu\nNode HTTPS port: %u\n",
        clink_node_workers(c->node), (unsigned long long)ns.conns_open, (unsigned long long)ns.conns_accepted,
        (unsigned long long)ns.conns_dialed, (unsigned long long)ns.conns_refused, (unsigned long long)ns.handshakes_ok,
        (unsigned long long)ns.handshakes_failed, (unsigned long long)ns.logins_ok,
        (unsigned long long)ns.logins_denied, (unsigned long long)ns.calls_started, (unsigned long long)ns.calls_ok,
        (unsigned long long)ns.calls_failed, (unsigned long long)ns.requests_handled,
        (unsigned long long)ns.tls_reloads, (unsigned long long)ns.plaintext_fallbacks,
        (unsigned long long)ns.protocol_errors, (unsigned)clink_node_https_port(c->node));
    if (m > 0) {
        n += (size_t)m < sizeof(text) - n ? (size_t)m : sizeof(text) - n - 1;
    }
    m = snprintf(text + n, sizeof(text) - n,
                 "Stream data sent: %llu bytes copied, %llu from the application's buffers\n"
                 "Zero-copy sends: %llu (%llu the kernel copied after all)\n",
                 (unsigned long long)ns.bytes_copied, (unsigned long long)ns.bytes_borrowed,
                 (unsigned long long)ns.zc_sends, (unsigned long long)ns.zc_copied);
    if (m > 0) {
        n += (size_t)m < sizeof(text) - n ? (size_t)m : sizeof(text) - n - 1;
    }
    STAT_ADD(c->w, requests_handled, 1);
    CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_RESPONSE, 0, id, NULL, 0, text, n) < 0);
}

static void on_request(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p)
{
    /*
     * Ids are unique among a caller's calls in flight but not increasing:
     * several application threads number their calls before the owning
     * worker sends them.
     */
    if (h->id == 0) {
        clink__conn_fail(c, -CLINK_EPROTO, "request id 0");
        return;
    }
    size_t len = h->length;
    uint8_t flags = h->flags;
    uint16_t method = h->method;
    struct clink__partial *pm = NULL;
    if (c->nat->version >= 2) {
        int r = clink__reasm_take(c, h, p, &pm);
        if (r <= 0) {
            return; /* more to come, or the connection failed */
        }
        if (r == 1) {
            p = pm->buf;
            len = pm->len;
            flags = pm->flags;
            method = pm->method;
        }
    }
    if ((flags & CLINK_FLAG_END) && !(flags & CLINK_FLAG_STREAM)) {
        if (pm != NULL) {
            clink__reasm_done(c, pm);
        }
        clink__conn_fail(c, -CLINK_EPROTO, "END on request %llu, which opens no stream", (unsigned long long)h->id);
        return;
    }
    if (h->id > c->nat->last_peer_id) {
        c->nat->last_peer_id = h->id;
    }
    struct clink_frame_hdr whole = *h;
    whole.flags = flags;
    whole.method = method;
    whole.length = (uint32_t)len;
    if (c->nat->goaway_sent) {
        /* Not executed, so the caller may safely retry elsewhere. */
        clink__conn_emit_error(c, h->id, CLINK_EGOAWAY, "node is going away");
    } else if (flags & CLINK_FLAG_STREAM) {
        CLINK_IGNORE(clink__stream_on_request(c, &whole, p, len) < 0);
    } else if (method == CLINK_METHOD_STATUS) {
        answer_status(c, h->id);
    } else if (c->node->handlers[method].fn == NULL) {
        char msg[64];
        snprintf(msg, sizeof(msg), "no handler for method %u", method);
        clink__conn_emit_error(c, h->id, CLINK_ENOMETHOD, msg);
    } else {
        struct clink_handler *hd = &c->node->handlers[method];
        struct clink_req *r = clink__req_new(c);
        if (r == NULL) {
            clink__conn_emit_error(c, h->id, CLINK_ENOMEM, "out of memory");
        } else {
            r->id = h->id;
            r->method = method;
            r->data = p;
            r->len = len;
            hd->fn(r, hd->user);
        }
    }
    if (pm != NULL) {
        clink__reasm_done(c, pm); /* the handler had it for its call only */
    }
}

static void on_frame(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p)
{
    c->frames_in++;
    if (c->nat->version >= 2 && !c->nat->settings_recv && h->type != CLINK_FRAME_SETTINGS &&
        !(h->type == CLINK_FRAME_ERROR && h->id == 0)) {
        clink__conn_fail(c, -CLINK_EPROTO, "frame type %u before SETTINGS", h->type);
        return;
    }
    if (c->state == CS_HELLO && h->type == CLINK_FRAME_SETTINGS && c->nat->version >= 2) {
        on_settings(c, p); /* client: the server's, after its HELLO: now the connection is open */
        if (c->state == CS_HELLO) {
            CLINK_CONN_LOG(c, CLINK_LOG_DEBUG, "open: %s, protocol %u", clink__conn_peer(c), c->nat->version);
            clink__conn_became_open(c);
        }
        return;
    }
    if (c->state == CS_HELLO) {
        if (h->type == CLINK_FRAME_HELLO) {
            CLINK_IGNORE(on_hello(c, p, h->length) < 0);
        } else if (h->type == CLINK_FRAME_ERROR && h->id == 0) {
            uint32_t code = clink__get_u32(p);
            int err = (code > CLINK_EFIRST_ && code < CLINK_ELAST_) ? -(int)code : -CLINK_EPROTO;
            if (err == -CLINK_EACCESS) {
                /* Exactly what the server said ("Access denied for user 'x'@'h'"), nothing added. */
                clink__conn_fail(c, err, "%.*s", (int)(h->length - 4), (const char *)p + 4);
            } else {
                clink__conn_fail(c, err, "peer refused: %.*s", (int)(h->length - 4), (const char *)p + 4);
            }
        } else {
            clink__conn_fail(c, -CLINK_EPROTO, "frame type %u before HELLO", h->type);
        }
        return;
    }
    switch (h->type) {
    case CLINK_FRAME_HELLO:
        clink__conn_fail(c, -CLINK_EPROTO, "second HELLO");
        break;
    case CLINK_FRAME_REQUEST:
        on_request(c, h, p);
        break;
    case CLINK_FRAME_RESPONSE:
    case CLINK_FRAME_PONG:
        on_response(c, h, p);
        break;
    case CLINK_FRAME_ERROR:
        if (h->id == 0) {
            clink__conn_fail(c, -CLINK_EPROTO, "peer error: %.*s", (int)(h->length - 4), (const char *)p + 4);
        } else {
            on_response(c, h, p);
        }
        break;
    case CLINK_FRAME_PING:
        CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_PONG, 0, h->id, NULL, 0, p, h->length) < 0);
        break;
    case CLINK_FRAME_GOAWAY: {
        c->nat->goaway_recv = 1;
        c->nat->goaway_last = h->length >= CLINK_GOAWAY_LEN ? clink__get_u64(p) : UINT64_MAX;
        atomic_store(&c->goaway, 1);
        /* Draining first, so a callback below that retries on this connection is refused, not queued. */
        if (c->state == CS_OPEN) {
            c->state = CS_DRAINING;
            atomic_store(&c->open, 0);
        }
        clink__conn_goaway_pending(c);
        clink__conn_maybe_drained(c);
        break;
    }
    case CLINK_FRAME_CANCEL:
        /* Advisory for calls (handlers run to completion, the caller drops the late answer); ends a stream. */
        clink__reasm_drop(c, &c->nat->rin_req, h->id);
        clink__stream_on_cancel(c, h->id);
        break;
    case CLINK_FRAME_SETTINGS:
        on_settings(c, p);
        break;
    case CLINK_FRAME_DATA:
        clink__stream_on_data(c, h, p);
        break;
    case CLINK_FRAME_CREDIT:
        clink__stream_on_credit(c, h, clink__get_u32(p));
        break;
    }
}

/* Parse and dispatch every complete frame in buf. */
static void native_input(struct clink_conn *c, struct clink__bytes *buf)
{
    uint32_t max = c->node->opts.max_frame;
    while (c->state >= CS_HELLO && c->state <= CS_DRAINING && clink__bytes_len(buf) >= CLINK_FRAME_HDR) {
        struct clink_frame_hdr h;
        int ret = clink__frame_decode(clink__bytes_data(buf), max, c->nat->version, &h);
        if (ret < 0) {
            clink__conn_fail(c, ret,
                             ret == -CLINK_EFRAMETOOBIG ? "frame of %u bytes exceeds max_frame %u"
                                                        : "malformed frame header (type %u, length %u)",
                             ret == -CLINK_EFRAMETOOBIG ? h.length : h.type,
                             ret == -CLINK_EFRAMETOOBIG ? max : h.length);
            return;
        }
        if (clink__bytes_len(buf) < CLINK_FRAME_HDR + (size_t)h.length) {
            break;
        }
        const uint8_t *payload = clink__bytes_data(buf) + CLINK_FRAME_HDR;
        /* payload stays valid through on_frame: handlers write to other buffers, and closing frees none. */
        on_frame(c, &h, payload);
        clink__bytes_consume(buf, CLINK_FRAME_HDR + h.length);
        if (c->ktls_try) {
            break; /* the frame that opened the connection: nothing after it until the kTLS hand-over (on_recv) */
        }
    }
}

/* The TLS handshake is done: read exactly (up to a record boundary) where kTLS may take over; a client says HELLO. */
static void native_opened(struct clink_conn *c)
{
    /*
     * Where kTLS may take over, keep reading exactly what OpenSSL asks (a
     * record header, then its body) until the connection opens: the kernel
     * must get the stream at a record boundary with nothing read ahead.
     */
    c->exact = c->ktls_mode != CLINK_KTLS_DISABLED && c->node->ktls_ulp;
    c->want = 5;
    if (!c->is_server) {
        clink__native_send_hello(c, CLINK_PROTO_MIN, c->node->opts.proto_max);
    }
}

/* Plaintext client: the magic and HELLO at once, unless a password must answer the greeting's scramble first. */
void clink__native_plain_hello(struct clink_conn *c)
{
    CLINK_IGNORE(clink__bytes_append(&c->tx, CLINK_PLAIN_MAGIC, CLINK_PLAIN_MAGIC_LEN) < 0);
    c->nat->peer_max_frame = CLINK_MAX_FRAME_FLOOR;
    if (c->dial->has_password) {
        c->dial->hello_deferred = 1;
    } else {
        clink__native_send_hello(c, CLINK_PROTO_MIN, c->node->opts.proto_max);
    }
}

static int native_half_closed(struct clink_conn *c)
{
    (void)c;
    return 0; /* nothing is owed to a peer that stopped sending: the connection ends */
}

/* GOAWAY once, naming the last request we saw: what is in flight finishes, nothing new starts. */
static int native_closing(struct clink_conn *c)
{
    if (!c->nat->goaway_sent) {
        /*
         * Our requests still waiting in the chunk queue, not one byte of them
         * written, would go out behind the GOAWAY, and a peer with nothing
         * else in flight may close before they arrive: they never left, so
         * they end now as safe to send elsewhere (-CLINK_EGOAWAY).
         */
        clink__outq_goaway(c);
        uint8_t b[CLINK_GOAWAY_LEN];
        clink__put_u64(b, c->nat->last_peer_id);
        CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_GOAWAY, 0, 0, NULL, 0, b, sizeof(b)) < 0);
        c->nat->goaway_sent = 1;
    }
    return 1;
}

static void native_ended(struct clink_conn *c, int err)
{
    clink__conn_fail_calls(c, err);
    clink__streams_fail(c, err);
}

/* A handler's answer, as a frame (or an error frame when it is larger than the caller accepts). */
static int native_answer(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt,
                         const void *extra, size_t extra_len)
{
    struct clink_conn *c = req->conn;
    int ret = -CLINK_ECLOSED;
    size_t len = extra_len;
    for (unsigned i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    if (c->state <= CS_DRAINING && c->nat->version >= 2 && type == CLINK_FRAME_RESPONSE && len > clink__chunk_max(c)) {
        /* Chunked, behind nothing: a copy (the caller's buffers are its own again when this returns). */
        ret = len > c->nat->peer.max_message ? -CLINK_EFRAMETOOBIG : 0;
        uint8_t *copy = ret == 0 ? malloc(len) : NULL;
        if (ret == 0 && copy == NULL) {
            ret = -CLINK_ENOMEM;
        }
        if (copy != NULL) {
            size_t off = 0;
            for (unsigned i = 0; i < iovcnt; i++) {
                memcpy(copy + off, iov[i].iov_base, iov[i].iov_len);
                off += iov[i].iov_len;
            }
            ret = clink__outq_unary(c, type, 0, req->id, NULL, 0, copy, len);
            if (ret < 0) {
                free(copy);
            }
        }
        if (ret == -CLINK_EFRAMETOOBIG) {
            clink__conn_emit_error(c, req->id, CLINK_EFRAMETOOBIG, "response larger than the caller accepts");
        } else if (ret == -CLINK_ENOMEM) {
            clink__conn_emit_error(c, req->id, CLINK_ENOMEM, "out of memory");
        }
    } else if (c->state <= CS_DRAINING) {
        ret = clink__conn_emit(c, type, 0, req->id, iov, iovcnt, extra, extra_len);
        if (ret == -CLINK_EFRAMETOOBIG) {
            clink__conn_emit_error(c, req->id, CLINK_EFRAMETOOBIG, "response larger than the caller accepts");
        }
    }
    clink__req_free(req);
    STAT_ADD(c->w, requests_handled, 1);
    if (c->recv_paused) {
        clink__conn_arm_recv(c);
    }
    clink__conn_maybe_drained(c);
    return ret;
}

static void native_free(struct clink_conn *c)
{
    if (c->nat != NULL) {
        clink__outq_free(c);
        clink__reasm_free(c);
        clink__streams_free(c);
        clink__idmap_free(&c->nat->calls);
        free(c->nat);
        c->nat = NULL;
    }
}

int clink__native_start(struct clink_conn *c)
{
    c->proto = &clink__proto_native;
    if ((c->nat = calloc(1, sizeof(*c->nat))) == NULL) {
        return -CLINK_ENOMEM;
    }
    clink__idmap_init(&c->nat->calls);
    clink__idmap_init(&c->nat->rin_req);
    clink__idmap_init(&c->nat->rin_resp);
    clink__idmap_init(&c->nat->streams_mine);
    clink__idmap_init(&c->nat->streams_theirs);
    c->nat->peer_max_frame = CLINK_MAX_FRAME_FLOOR;
    return 0;
}

int clink__conn_calls_in_flight(const struct clink_conn *c)
{
    /* Streams count as calls, and so do the peer's requests still arriving in chunks: a drain waits for them. */
    return c->proto == &clink__proto_native && c->nat != NULL
               ? (int)(c->nat->calls.count + c->nat->streams_mine.count + c->nat->streams_theirs.count +
                       c->nat->rin_req.count)
               : 0;
}

const struct clink__proto clink__proto_native = {
    .name = "native",
    .link = 1,
    .app = 1,
    .deadline = "no complete opening handshake",
    .opened = native_opened,
    .input = native_input,
    .half_closed = native_half_closed,
    .closing = native_closing,
    .ended = native_ended,
    .answer = native_answer,
    .free = native_free,
};
