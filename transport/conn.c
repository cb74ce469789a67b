/*
 * One connection's birth and life on its worker: accepted or dialled, made
 * open once its protocol's handshake is done, timed, shown in status, and
 * freed. Everything here runs on the owning worker's thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/conn_int.h"
#include "transport/ktls.h"

/* The node port's connections start as native ones (classification may make one a MySQL client). */
static struct clink_conn *conn_new(struct clink_worker *w, int fd, int is_server, int https)
{
    struct clink_conn *c = aligned_alloc(64, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    c->w = w;
    c->node = w->node;
    c->id = atomic_fetch_add(&w->node->next_conn_id, 1);
    c->fd = fd;
    c->is_server = is_server;
    c->mode = CLINK_MODE_TLS;
    atomic_init(&c->refs, 1);
    atomic_init(&c->open, 0);
    atomic_init(&c->app_ref, 0);
    atomic_init(&c->goaway, 0);
    atomic_init(&c->next_call_id, 1);
    clink__timer_init(&c->hs_timer, TIMER_HANDSHAKE);
    c->close_msg.hdr.kind = MSG_CLOSE;
    c->close_msg.conn = c;
    /* The node's memory budget counts what waits to be sent: the buffers a peer that stops reading fills. */
    c->ptx.acct = c->tx.acct = c->txf.acct = &w->buffered;
    if ((https ? clink__https_start(c) : clink__native_start(c)) < 0) {
        c->proto->free(c);
        free(c);
        return NULL;
    }
    c->next = w->conns;
    if (w->conns) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->nconns++;
    uint32_t ms = w->node->opts.handshake_timeout_ms;
    CLINK_IGNORE(clink__timers_add(&w->timers, &c->hs_timer, clink__now_ns() + (uint64_t)ms * 1000000ull));
    return c;
}

/* The TLS state machine and its SSL go: the connection closed, or the kernel has both directions. */
void clink__conn_tls_free(struct clink_conn *c)
{
    if (c->tls != NULL) {
        clink__tls_free(c->tls);
        free(c->tls);
        c->tls = NULL;
    }
}

static void conn_free(struct clink_conn *c)
{
    c->proto->free(c);
    clink__conn_tls_free(c);
    clink__conn_dial_free(c);
    free(c->kio);
    free(c->peer_der);
    clink__bytes_free(&c->rx);
    clink__bytes_free(&c->prx);
    clink__bytes_free(&c->ptx);
    clink__bytes_free(&c->tx);
    clink__bytes_free(&c->txf);
    free(c);
}

void clink__conn_put(struct clink_conn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        conn_free(c);
    }
}

/* The dial's secrets are wiped: the password may still be there if the connection never opened. */
void clink__conn_dial_free(struct clink_conn *c)
{
    if (c->dial != NULL) {
        OPENSSL_cleanse(c->dial, sizeof(*c->dial));
        free(c->dial);
        c->dial = NULL;
    }
}

static void set_peer_str(struct clink_conn *c)
{
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (c->peer.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&c->peer;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(c->cache.peer_addr, sizeof(c->cache.peer_addr), "%s:%u", host, port);
    } else if (c->peer.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&c->peer;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(c->cache.peer_addr, sizeof(c->cache.peer_addr), "[%s]:%u", host, port);
    }
}

/* The peer's host for account matching and the refusal text: its address without the port. */
void clink__conn_peer_host(const struct clink_conn *c, char *out, size_t cap)
{
    const void *a = c->peer.ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)&c->peer)->sin6_addr
                                                  : (const void *)&((const struct sockaddr_in *)&c->peer)->sin_addr;
    int family = c->peer.ss_family;
    /* An IPv4 client of a listener on "::" arrives as ::ffff:a.b.c.d; accounts name it a.b.c.d, as MySQL does. */
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)a)) {
        a = (const uint8_t *)a + 12;
        family = AF_INET;
    }
    if (inet_ntop(family, a, out, (socklen_t)cap) == NULL) {
        snprintf(out, cap, "?");
    }
}

/*
 * TCP keepalive: a peer that vanished without a FIN or RST (power cut,
 * dropped route) would hold its socket, and a client session its slot,
 * until wait_timeout; node links, until a ping times out. Probes start after
 * tcp_keepalive_s without traffic, then every 10 s (or tcp_keepalive_s if
 * shorter), 6 times. Best effort: a socket that refuses still works.
 */
#define KEEPALIVE_INTVL_S 10
#define KEEPALIVE_CNT     6

void clink__socket_keepalive(struct clink_node *n, int fd)
{
    int one = 1, idle = (int)n->opts.tcp_keepalive_s, cnt = KEEPALIVE_CNT;
    int intvl = idle < KEEPALIVE_INTVL_S ? idle : KEEPALIVE_INTVL_S;
    CLINK_IGNORE(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0);
    CLINK_IGNORE(setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0);
    CLINK_IGNORE(setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) < 0);
    CLINK_IGNORE(setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0);
    if (n->opts.tcp_notsent_lowat > 0) {
        /* Less written-but-unsent data in the socket ahead of a small call (docs/protocol.md, "Chunks"). */
        int lowat = (int)n->opts.tcp_notsent_lowat;
        CLINK_IGNORE(setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat)) < 0);
    }
}

void clink__conn_adopt(struct clink_worker *w, int fd, int https)
{
    struct clink_conn *c = conn_new(w, fd, 1, https);
    if (c == NULL) {
        close(fd);
        return;
    }
    socklen_t sl = sizeof(c->peer);
    CLINK_IGNORE(getpeername(fd, (struct sockaddr *)&c->peer, &sl) < 0);
    set_peer_str(c);
    c->ktls_mode = c->node->opts.ktls ? c->node->opts.ktls : CLINK_KTLS_AUTO;
    int one = 1;
    CLINK_IGNORE(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0);
    clink__socket_keepalive(c->node, fd);
    if (https) {
        /* A browser speaks first and expects no greeting; its connection is never offloaded to kTLS. */
        c->ktls_mode = CLINK_KTLS_DISABLED;
    } else {
        uint8_t b[128];
        if (RAND_bytes(c->scramble, sizeof(c->scramble)) != 1) {
            /* A predictable challenge would let a recorded scramble answer be replayed: fail closed. */
            clink__conn_fail(c, -CLINK_EINTERNAL, "no random bytes for the login challenge");
            return;
        }
        /* The server speaks first (docs/protocol.md, "Opening"); native clients have already sent theirs. */
        size_t n = clink__opening_greeting(b, sizeof(b), (uint32_t)c->id, c->scramble);
        CLINK_IGNORE(clink__bytes_append(&c->tx, b, n) < 0);
    }
    c->state = CS_OPENING;
    c->exact = 1;
    c->want = CLINK_CLASSIFY_LEN;
    clink__mark_dirty(c); /* the greeting goes out at once either way */
    clink__conn_admit(c);
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *sl = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *sl = sizeof(*a6);
        return 0;
    }
    return -CLINK_EINVAL;
}

void clink__conn_dial(struct clink_worker *w, struct clink__msg_connect *m)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (resolve(m->host, m->opts.port, &ss, &sl) < 0) {
        m->cb(NULL, -CLINK_EINVAL, "host is not an IPv4 or IPv6 address (or localhost)", m->user);
        return;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = -errno;
        m->cb(NULL, e, clink_strerror(e), m->user);
        return;
    }
    struct clink__dial *d = calloc(1, sizeof(*d));
    struct clink_conn *c = d != NULL ? conn_new(w, fd, 0, 0) : NULL;
    if (c == NULL) {
        free(d);
        close(fd);
        m->cb(NULL, -CLINK_ENOMEM, clink_strerror(-CLINK_ENOMEM), m->user);
        return;
    }
    STAT_ADD(w, conns_dialed, 1);
    clink__socket_keepalive(c->node, fd);
    c->mode = m->opts.mode == CLINK_MODE_PLAIN ? CLINK_MODE_PLAIN : CLINK_MODE_TLS;
    c->connect_cb = m->cb;
    c->connect_user = m->user;
    c->dial = d;
    snprintf(c->dial->expected_name, sizeof(c->dial->expected_name), "%s", m->name);
    snprintf(c->cache.label, sizeof(c->cache.label), "%s", m->label);
    c->verify = m->verify;
    c->dial->login = m->login;
    c->dial->no_resume = m->no_resume;
    c->ktls_mode = m->opts.ktls ? m->opts.ktls : c->node->opts.ktls ? c->node->opts.ktls : CLINK_KTLS_AUTO;
    c->dial->has_password = m->has_password;
    snprintf(c->dial->login_user, sizeof(c->dial->login_user), "%s", m->login_user);
    memcpy(c->dial->password, m->password, sizeof(c->dial->password));
    snprintf(c->cache.account, sizeof(c->cache.account), "%s", m->login_user);
    c->peer = ss;
    set_peer_str(c);
    if (m->opts.timeout_ms) {
        CLINK_IGNORE(
            clink__timers_add(&w->timers, &c->hs_timer, clink__now_ns() + (uint64_t)m->opts.timeout_ms * 1000000ull));
    }
    c->state = CS_CONNECTING;
    struct io_uring_sqe *sqe = clink__sqe(w);
    /* The sockaddr must outlive the SQE: it lives in the conn. */
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->peer, sl);
    io_uring_sqe_set_data(sqe, clink__tag(c, OP_CONNECT));
    c->ops++;
}

/*
 * The protocol's handshake is done: the connection is open. What status
 * shows of it is kept now (a kTLS hand-off frees the SSL); the application
 * hears of it at once, or after the hand-off at this record boundary.
 */
void clink__conn_became_open(struct clink_conn *c)
{
    clink__conn_hs_release(c);
    c->state = CS_OPEN;
    c->exact = 0;
    clink__timers_del(&c->w->timers, &c->hs_timer);
    clink__conn_dial_free(c); /* the TLS name and the login were for the handshake */
    clink__conn_pick_send_path(c);
    struct clink_conn_status *st = &c->cache;
    st->is_server = c->is_server;
    st->mode = c->mode;
    if (c->has_tls) {
        clink__tls_status(c->tls, st);
        const char *v = c->verify == 2 ? "identity" : c->verify == 1 ? "ca" : "none";
        if (c->is_server) {
            v = st->peer_subject[0] ? "client-cert" : "none";
        }
        snprintf(st->verified, sizeof(st->verified), "%s", v);
    } else {
        snprintf(st->verified, sizeof(st->verified), "none");
    }
    if (!c->has_tls) {
        snprintf(st->ktls_reason, sizeof(st->ktls_reason), "plaintext connection");
    } else if (c->ktls_mode == CLINK_KTLS_DISABLED) {
        snprintf(st->ktls_reason, sizeof(st->ktls_reason), "kTLS disabled by configuration");
        clink__tls_wipe_secrets(c->tls);
    } else {
        /*
         * At this record boundary, once the input that opened us is
         * processed (on_recv): the application hears of the connection
         * after that, so that REQUIRED can still refuse it. (A MySQL client
         * waits for our OK before it sends a command, so its input ends at
         * a record boundary too.)
         */
        c->ktls_try = 1;
        snprintf(st->ktls_reason, sizeof(st->ktls_reason), "hand-over pending");
        return;
    }
    clink__conn_announce_open(c);
}

/* Tell the application: calls may start (client: connect callback; server: CLINK_CONN_OPENED). */
void clink__conn_announce_open(struct clink_conn *c)
{
    STAT_ADD(c->w, conns_open, 1);
    c->was_open = 1;
    if (!c->proto->app) {
        return; /* a MySQL client: it carries statements, not calls, and is not on_conn's */
    }
    atomic_store(&c->open, 1);
    if (c->is_server) {
        if (c->node->opts.on_conn) {
            c->node->opts.on_conn(c, CLINK_CONN_OPENED, 0, c->node->opts.on_conn_user);
        }
    } else {
        clink_connect_cb cb = c->connect_cb;
        c->connect_cb = NULL;
        atomic_fetch_add(&c->refs, 1); /* the application's reference */
        atomic_store(&c->app_ref, 1);
        cb(c, 0, "", c->connect_user);
    }
}

void clink__conn_timer(struct clink_worker *w, struct clink__timer *t)
{
    (void)w;
    if (t->kind == TIMER_STREAM) {
        clink__stream_timer(t);
        return;
    }
    if (t->kind == TIMER_HANDSHAKE) {
        struct clink_conn *c = (struct clink_conn *)((char *)t - offsetof(struct clink_conn, hs_timer));
        if (c->state == CS_CLOSING) {
            CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: peer did not take our last bytes in time: cut off",
                           clink__conn_peer(c));
            if (!c->proto->link) {
                STAT_ADD(c->w, https_refused, 1); /* an answer cut short */
            }
            clink__conn_force_close(c);
            return;
        }
        clink__conn_fail(c, -CLINK_EHANDSHAKE_TIMEOUT, "%s within %u ms", c->proto->deadline,
                         c->node->opts.handshake_timeout_ms);
        return;
    }
    struct clink_call *call = (struct clink_call *)((char *)t - offsetof(struct clink_call, priv.timer));
    struct clink_conn *c = call->priv.conn;
    clink__conn_detach_call(c, call);
    clink__call_finish(w, call, -CLINK_ETIMEDOUT, NULL, 0);
    clink__conn_maybe_drained(c);
}

static const char *state_name(int state)
{
    switch (state) {
    case CS_OPEN:
        return "open";
    case CS_DRAINING:
        return "draining";
    case CS_CLOSING:
        return "closing";
    case CS_CLOSED:
        return "closed";
    default:
        return "opening";
    }
}

void clink__conn_fill_status(struct clink_conn *c, struct clink_conn_status *st)
{
    *st = c->cache;
    st->open = atomic_load(&c->open);
    st->is_server = c->is_server;
    st->mode = c->mode;
    st->id = c->id;
    snprintf(st->state, sizeof(st->state), "%s", state_name(c->state));
    if (c->state != CS_CLOSED) {
        st->bytes_in = c->bytes_in;
        st->bytes_out = c->bytes_out;
        st->frames_in = c->frames_in;
        st->frames_out = c->frames_out;
        st->calls_in_flight = (uint32_t)clink__conn_calls_in_flight(c);
        st->requests_in_flight = c->nreqs;
        if (c->tls != NULL) {
            st->records_in = c->tls->rec_in;
            st->records_out = c->tls->rec_out;
        }
        if (c->has_tls) {
            /* Once the kernel has a direction, it counts: its sequence number is the records sent under the key. */
            uint64_t seq;
            if (c->ktls_rx && clink__ktls_rec_seq(c->fd, 0, &seq) == 0) {
                st->records_in = seq;
            }
            if (c->ktls_tx && clink__ktls_rec_seq(c->fd, 1, &seq) == 0) {
                st->records_out = seq;
            }
        }
        st->last_error = c->err;
    }
}

void clink__conn_apply_secure(struct clink_worker *w, enum clink_secure_transport state)
{
    for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
        if (!c->proto->link || c->state >= CS_CLOSING || c->state == CS_CONNECTING) {
            continue;
        }
        int plain = c->mode == CLINK_MODE_PLAIN;
        int banned = (state == CLINK_SECURE_REQUIRE_TLS && plain) || (state == CLINK_SECURE_PLAINTEXT && !plain);
        if (!banned || (c->state == CS_OPENING && c->is_server)) {
            continue; /* still classifying: the opening rule applies the new state */
        }
        CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: %s link closed gracefully: transport security is now %s",
                       clink__conn_peer(c), plain ? "plaintext" : "TLS", clink_secure_transport_name(state));
        clink__conn_begin_close(c, 0); /* an open link drains (GOAWAY); one still opening is refused */
    }
}

void clink__conn_shown_name(const char *name, char *out, size_t cap)
{
    /* The name comes from the network: quotes or spaces in it must not shape our log lines or refusals. */
    size_t i = 0;
    for (; i + 1 < cap && name[i] != '\0'; i++) {
        char ch = name[i];
        out[i] = (ch == '\'' || ch == '\\' || ch == ' ' || ch == '@') ? '?' : ch;
    }
    out[i] = '\0';
}
