/*
 * A relay cannot log in with a client's password proof (docs/SECURITY.md,
 * "Logins a relay cannot use"). A native client that does not verify the
 * server by name (VERIFY_CA, REQUIRED) dials a relay: the relay forwards the
 * real node's greeting, so the client answers the real node's scramble, and
 * then replays the client's 20-byte answer to the real node, on its native
 * port and through its MySQL front door. The answer is bound to the
 * client's TLS session with the relay, so both replays fail; the client's
 * own logins keep working, and an account with legacy_native_tls is the
 * documented exception for MySQL clients that send an unbound answer.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "clink/mysql.h"
#include "clink/transport.h"
#include "tests/support/support.h"
#include "transport/frame.h"
#include "transport/mysql_proto.h"
#include "transport/opening.h"

static struct ts_pki pki;
static struct clink_tls_ctx *tls;
static struct clink_accounts *acc;

static const unsigned char alpn_clink[] = "\x07"
                                          "clink/1";

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    char err[256] = "";
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    /* native_password: the client below does not verify the relay by name, so it sends a bound scramble answer. */
    struct clink_account_spec app = {.user = "app", .password = "secret", .require = "SSL", .native_password = "ON"};
    struct clink_account_spec old = {.user = "old", .password = "oldpw", .require = "SSL", .legacy_native_tls = "ON"};
    cr_assert_eq(clink_accounts_add(acc, &app, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_add(acc, &old, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
    clink_accounts_free(acc);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

TestSuite(relay, .init = setup, .fini = teardown, .timeout = 60);

/* The real node: TLS, the accounts above, MySQL clients served. */
static struct clink_node *real_node(void)
{
    static const struct clink_mysql_opts mysql = {0};
    struct clink_node_opts o = {.workers = 1, .tls = tls, .accounts = acc, .mysql = &mysql};
    return ts_node_with(&o, ts_register_echo);
}

static int listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t sl = sizeof(a);
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 4) == 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int accept_one(int lfd)
{
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, (int)ts_ms(5000)), 1, "the client never dialled the relay");
    int fd = accept(lfd, NULL, NULL);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = ts_ms(5000) / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* A node's greeting (before TLS): [out] its bytes, their length and the scramble in it. */
static void read_greeting(int fd, uint8_t *g, size_t *len, uint8_t scramble[20])
{
    cr_assert_eq(ts_read_full(fd, g, 5), 0, "no greeting");
    int n = clink__opening_greeting_len(g);
    cr_assert(n > 0 && (size_t)n + 4 <= CLINK_GREETING_MAX, "greeting length %d", n);
    cr_assert_eq(ts_read_full(fd, g + 5, (size_t)n - 1), 0);
    cr_assert_eq(clink__opening_greeting_scramble(g + 5, (size_t)n - 1, scramble), 0); /* past the version byte */
    *len = (size_t)n + 4;
}

static int select_clink(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                        unsigned int inlen, void *arg)
{
    (void)ssl, (void)arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, alpn_clink, sizeof(alpn_clink) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Read one frame: header into h, payload into p (cap). 0, or -1 when the connection ended first. */
static int read_frame(struct tls_peer *t, struct clink_frame_hdr *h, uint8_t *p, size_t cap)
{
    uint8_t hdr[CLINK_FRAME_HDR];
    double dl = tls_peer_now() + ts_ms(5000) / 1000.0;
    if (tls_peer_read(t, hdr, sizeof(hdr), NULL, dl) < 0) {
        return -1;
    }
    cr_assert_eq(clink__frame_decode(hdr, 1u << 20, 1, h), 0);
    cr_assert_leq(h->length, cap);
    return tls_peer_read(t, p, h->length, NULL, dl);
}

/*
 * The client's side of the relay: it dials the relay as `app` with ssl_mode
 * mode, the relay shows it cert/key and the real node's greeting. [out] the
 * HELLO the client sent, and the real node's greeting (for the scramble).
 */
struct victim {
    struct clink_node *node;
    atomic_int status; /* 1: pending; else the connect's status */
};

static void victim_done(struct clink_conn *c, int status, const char *reason, void *user)
{
    (void)reason;
    struct victim *v = user;
    if (c != NULL) {
        clink_conn_close(c);
    }
    atomic_store(&v->status, status);
}

/* Returns the relay's connection to the real node, its greeting read and passed on: the replay goes there. */
static int relay_capture(uint16_t real_port, enum clink_ssl_mode mode, const char *cert, const char *key,
                         struct clink_hello *hello)
{
    uint16_t rport;
    int lfd = listen_any(&rport);
    struct victim v = {.node = ts_client(tls, 1, 0)};
    atomic_init(&v.status, 1);
    struct clink_connect_opts co = {.host = "127.0.0.1",
                                    .port = rport,
                                    .expected_name = "localhost",
                                    .ssl_mode = mode,
                                    .user = "app",
                                    .password = "secret",
                                    .timeout_ms = ts_ms(5000)};
    cr_assert_eq(clink_connect(v.node, &co, victim_done, &v), 0);
    int vfd = accept_one(lfd);

    /* The real node's greeting, passed on: the client answers the real node's scramble. */
    int nfd = ts_tcp_connect(real_port);
    uint8_t g[CLINK_GREETING_MAX], scramble[20];
    size_t glen;
    read_greeting(nfd, g, &glen, scramble);
    cr_assert_eq(write(vfd, g, glen), (ssize_t)glen);

    struct tls_peer t;
    struct tls_peer_opts to = {.server = 1, .cert = cert, .key = key};
    cr_assert_eq(tls_peer_new(&t, &to, vfd), 0, "%s", t.err);
    SSL_CTX_set_alpn_select_cb(t.ctx, select_clink, NULL);
    cr_assert_eq(tls_peer_handshake(&t, tls_peer_now() + ts_ms(5000) / 1000.0), 0, "%s", t.err);
    struct clink_frame_hdr h;
    uint8_t p[CLINK_HELLO_MAX];
    cr_assert_eq(read_frame(&t, &h, p, sizeof(p)), 0, "the client sent no HELLO: %s", t.err);
    cr_assert_eq(h.type, CLINK_FRAME_HELLO);
    cr_assert_eq(clink__hello_decode(p, h.length, hello), 0);
    tls_peer_free(&t); /* the client is left waiting: its login never completes */
    close(lfd);
    for (unsigned i = 0; i < 500 && atomic_load(&v.status) == 1; i++) {
        usleep(10000);
    }
    cr_assert_neq(atomic_load(&v.status), 0, "the client logged in to the relay");
    clink_node_free(v.node);
    return nfd;
}

/*
 * Replay a login on the real node's native port, on the connection whose
 * greeting the client answered, over TLS (the relay holds a cluster
 * certificate: the worst case).
 */
static int replay_native(int fd, const struct clink_hello *stolen, uint8_t method, char *msg, size_t cap)
{
    struct tls_peer t;
    struct tls_peer_opts to = {.cert = pki.node_cert,
                               .key = pki.node_key,
                               .ca = pki.ca,
                               .host = "localhost",
                               .alpn = alpn_clink,
                               .alpn_len = sizeof(alpn_clink) - 1};
    cr_assert_eq(tls_peer_new(&t, &to, fd), 0, "%s", t.err);
    cr_assert_eq(tls_peer_handshake(&t, tls_peer_now() + ts_ms(5000) / 1000.0), 0, "%s", t.err);
    struct clink_hello h = *stolen;
    h.method = method;
    h.min_version = h.max_version = CLINK_PROTO_MAX;
    uint8_t b[CLINK_HELLO_MAX];
    size_t n = clink__hello_encode(b, &h);
    cr_assert_eq(ts_raw_frame(&t, CLINK_FRAME_HELLO, 0, 0, b, (uint32_t)n, (uint32_t)n), 0);
    struct clink_frame_hdr fh;
    uint8_t p[512];
    int ret = read_frame(&t, &fh, p, sizeof(p));
    tls_peer_free(&t);
    cr_assert_eq(ret, 0, "the node said nothing to the replay");
    if (fh.type == CLINK_FRAME_ERROR) {
        snprintf(msg, cap, "%.*s", (int)fh.length - 4, (const char *)p + 4);
        return -(int)clink__get_u32(p);
    }
    cr_assert_eq(fh.type, CLINK_FRAME_HELLO, "frame type %u", fh.type);
    snprintf(msg, cap, "logged in");
    return 0;
}

/* One MySQL packet out through TLS. */
static void my_send(struct tls_peer *t, uint8_t seq, const uint8_t *p, size_t n)
{
    uint8_t b[512];
    cr_assert_leq(n + 4, sizeof(b));
    b[0] = (uint8_t)n, b[1] = (uint8_t)(n >> 8), b[2] = (uint8_t)(n >> 16), b[3] = seq;
    memcpy(b + 4, p, n);
    cr_assert_eq(tls_peer_write(t, b, n + 4), 0, "%s", t->err);
}

/* One MySQL packet in: [out] its payload; returns its length, -1 when the connection ended. */
static int my_recv(struct tls_peer *t, uint8_t *p, size_t cap)
{
    uint8_t hdr[4];
    double dl = tls_peer_now() + ts_ms(5000) / 1000.0;
    if (tls_peer_read(t, hdr, 4, NULL, dl) < 0) {
        return -1;
    }
    size_t n = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16;
    cr_assert_leq(n, cap);
    return tls_peer_read(t, p, n, NULL, dl) < 0 ? -1 : (int)n;
}

static size_t my_fixed(uint8_t *b, uint32_t caps)
{
    memset(b, 0, 32);
    b[0] = (uint8_t)caps, b[1] = (uint8_t)(caps >> 8), b[2] = (uint8_t)(caps >> 16), b[3] = (uint8_t)(caps >> 24);
    b[6] = 0x01; /* max packet 64 KiB */
    b[8] = 45;   /* utf8mb4 */
    return 32;
}

/*
 * A MySQL client's login inside TLS to the real node: SSL request, TLS, then
 * a handshake response naming mysql_native_password with a 20-byte answer.
 * fd: a connection whose greeting was read, and answer the bytes to send;
 * or fd -1: a new connection, and the answer made by make from its
 * greeting's scramble. Returns the first byte of the node's reply (0x00 OK,
 * 0xfe AuthSwitch, 0xff ERR); after an AuthSwitch, answered with the same 20
 * bytes, [out] *second is the first byte of the next reply.
 */
static int mysql_login(uint16_t port, int fd, const char *user, const uint8_t *answer,
                       void (*make)(const uint8_t scramble[20], uint8_t out[20]), int *second)
{
    uint8_t ans[20];
    if (fd < 0) {
        uint8_t g[CLINK_GREETING_MAX], scramble[20];
        size_t glen;
        fd = ts_tcp_connect(port);
        read_greeting(fd, g, &glen, scramble);
        make(scramble, ans);
    } else {
        memcpy(ans, answer, 20);
    }
    const uint32_t caps = CLINK_MY_PROTOCOL_41 | CLINK_MY_SSL | CLINK_MY_SECURE_CONNECTION | CLINK_MY_PLUGIN_AUTH |
                          CLINK_MY_LONG_PASSWORD | CLINK_MY_TRANSACTIONS;
    uint8_t b[256];
    size_t n = my_fixed(b, caps);
    uint8_t hdr[4] = {(uint8_t)n, 0, 0, 1};
    cr_assert_eq(write(fd, hdr, 4), 4);
    cr_assert_eq(write(fd, b, n), (ssize_t)n);

    struct tls_peer t;
    struct tls_peer_opts to = {.ca = pki.ca, .host = "localhost"};
    cr_assert_eq(tls_peer_new(&t, &to, fd), 0, "%s", t.err);
    cr_assert_eq(tls_peer_handshake(&t, tls_peer_now() + ts_ms(5000) / 1000.0), 0, "%s", t.err);
    n = my_fixed(b, caps);
    size_t ul = strlen(user);
    memcpy(b + n, user, ul + 1);
    n += ul + 1;
    b[n++] = 20;
    memcpy(b + n, ans, 20);
    n += 20;
    memcpy(b + n, "mysql_native_password", 22);
    n += 22;
    my_send(&t, 2, b, n);
    uint8_t r[512];
    int rn = my_recv(&t, r, sizeof(r));
    cr_assert_gt(rn, 0, "no answer to the login: %s", t.err);
    int first = r[0];
    *second = -1;
    if (first == 0xfe) {
        my_send(&t, 4, ans, 20); /* a relay holds nothing else to answer with */
        int m = my_recv(&t, r, sizeof(r));
        *second = m > 0 ? r[0] : -1;
    }
    tls_peer_free(&t);
    return first;
}

static void app_unbound(const uint8_t scramble[20], uint8_t out[20])
{
    cr_assert_eq(clink_login_scramble("secret", scramble, out), 0);
}

static void old_unbound(const uint8_t scramble[20], uint8_t out[20])
{
    cr_assert_eq(clink_login_scramble("oldpw", scramble, out), 0);
}

static void relay_cannot_log_in(enum clink_ssl_mode mode, const char *cert, const char *key)
{
    struct clink_node *real = real_node();
    uint16_t port = clink_node_port(real);
    struct clink_hello stolen;
    char msg[256];
    int second;

    /* Three captures, each replayed on the connection whose greeting (and scramble) the client answered. */
    int fd = relay_capture(port, mode, cert, key, &stolen);
    /* The client sent an answer bound to its session with the relay, never the unbound one. */
    cr_assert_str_eq(stolen.user, "app");
    cr_assert_eq(stolen.method, CLINK_LOGIN_SCRAMBLE_BOUND, "method %u", stolen.method);
    cr_assert_eq(stolen.auth_len, 20);
    /* Replayed as it came, on the native port: another TLS session, another binding. */
    cr_assert_eq(replay_native(fd, &stolen, CLINK_LOGIN_SCRAMBLE_BOUND, msg, sizeof(msg)), -CLINK_EACCESS, "%s", msg);
    cr_assert_str_eq(msg, "Access denied for user 'app'@'127.0.0.1'");
    /* Replayed as the unbound form: refused inside TLS. */
    fd = relay_capture(port, mode, cert, key, &stolen);
    cr_assert_eq(replay_native(fd, &stolen, CLINK_LOGIN_SCRAMBLE, msg, sizeof(msg)), -CLINK_EACCESS, "%s", msg);
    /* Through the MySQL door: switched to caching_sha2_password, then asked for the password itself. */
    fd = relay_capture(port, mode, cert, key, &stolen);
    cr_assert_eq(mysql_login(port, fd, "app", stolen.auth, NULL, &second), 0xfe, "the MySQL door took the replay");
    cr_assert_eq(second, 0x01, "after the switch: %d, not a request for the password", second);

    struct clink_node_stats ns;
    clink_node_get_stats(real, &ns);
    cr_assert_eq(ns.logins_ok, 0);
    cr_assert_eq(ns.logins_legacy_native_tls, 0);
    clink_node_free(real);
}

Test(relay, with_a_cluster_certificate_to_a_verify_ca_client_gains_nothing)
{
    relay_cannot_log_in(CLINK_SSL_VERIFY_CA, pki.node_cert, pki.node_key);
}

Test(relay, with_another_cas_certificate_to_a_required_client_gains_nothing)
{
    relay_cannot_log_in(CLINK_SSL_REQUIRED, pki.other_cert, pki.other_key);
}

Test(relay, the_clients_own_logins_still_work)
{
    struct clink_node *real = real_node();
    struct clink_node *cli = ts_client(tls, 1, 0);
    enum clink_ssl_mode modes[] = {CLINK_SSL_VERIFY_CA, CLINK_SSL_REQUIRED, CLINK_SSL_VERIFY_IDENTITY};
    for (size_t i = 0; i < 3; i++) {
        struct clink_connect_opts co = {.host = "127.0.0.1",
                                        .port = clink_node_port(real),
                                        .expected_name = "localhost",
                                        .ssl_mode = modes[i],
                                        .user = "app",
                                        .password = "secret",
                                        .timeout_ms = ts_ms(5000)};
        struct clink_conn *c;
        char err[256] = "";
        cr_assert_eq(clink_connect_sync(cli, &co, &c, err, sizeof(err)), 0, "mode %d: %s", modes[i], err);
        struct clink_msg r;
        cr_assert_eq(clink_call_sync(c, TS_ECHO, "hi", 2, ts_ms(5000), &r), 0);
        clink_msg_free(&r);
        clink_conn_close(c);
    }
    struct clink_node_stats ns;
    clink_node_get_stats(real, &ns);
    cr_assert_eq(ns.logins_ok, 3);
    cr_assert_eq(ns.logins_denied, 0);
    clink_node_free(cli);
    clink_node_free(real);
}

Test(relay, legacy_native_tls_is_the_documented_exception)
{
    struct clink_node *real = real_node();
    uint16_t port = clink_node_port(real);
    int second;

    /* An old MySQL client's unbound answer, right password: refused for app (switched), taken for old. */
    cr_assert_eq(mysql_login(port, -1, "app", NULL, app_unbound, &second), 0xfe);
    cr_assert_eq(second, 0x01);
    cr_assert_eq(mysql_login(port, -1, "old", NULL, old_unbound, &second), 0x00, "legacy_native_tls login refused");

    struct clink_node_stats ns;
    clink_node_get_stats(real, &ns);
    cr_assert_eq(ns.logins_ok, 1);
    cr_assert_eq(ns.logins_legacy_native_tls, 1);
    cr_assert_eq(clink_accounts_legacy_native_tls(acc, "old", "127.0.0.1"), 1);
    cr_assert_eq(clink_accounts_legacy_native_tls(acc, "app", "127.0.0.1"), 0);
    clink_node_free(real);
}

static void old_wrong(const uint8_t scramble[20], uint8_t out[20])
{
    cr_assert_eq(clink_login_scramble("guess", scramble, out), 0);
}

/*
 * Issue 17: the native port and the MySQL door pass the accounts'
 * failed-login throttle (test_throttle has its rates): 11 guesses checked,
 * the rest refused before any check, and then the right password waits too.
 */
Test(relay, guessing_on_the_native_port_and_the_mysql_door_is_throttled)
{
    struct clink_login_throttle slow = {.delay_step_ms = 60000};
    cr_assert_eq(clink_accounts_set_throttle(acc, &slow), 0);
    struct clink_node *real = real_node();
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts co = {.host = "127.0.0.1",
                                    .port = clink_node_port(real),
                                    .expected_name = "localhost",
                                    .user = "app",
                                    .password = "guess",
                                    .timeout_ms = ts_ms(5000)};
    struct clink_conn *c;
    char err[256] = "";
    for (int i = 0; i < 15; i++) {
        cr_assert_neq(clink_connect_sync(cli, &co, &c, err, sizeof(err)), 0, "guess %d logged in", i);
    }
    struct clink_login_stats st;
    clink_accounts_login_stats(acc, &st);
    cr_assert_eq(st.failures, 11, "%llu checked", (unsigned long long)st.failures);
    cr_assert_eq(st.throttled, 4, "%llu throttled", (unsigned long long)st.throttled);
    co.password = "secret";
    cr_assert_neq(clink_connect_sync(cli, &co, &c, err, sizeof(err)), 0, "the right password was checked");

    cr_assert_eq(clink_accounts_set_throttle(acc, &slow), 0); /* a fresh count for the other door */
    struct clink_login_stats before;
    clink_accounts_login_stats(acc, &before);
    int second;
    for (int i = 0; i < 15; i++) {
        cr_assert_eq(mysql_login(clink_node_port(real), -1, "old", NULL, old_wrong, &second), 0xff, "guess %d", i);
    }
    clink_accounts_login_stats(acc, &st);
    cr_assert_eq(st.failures - before.failures, 11, "%llu checked",
                 (unsigned long long)(st.failures - before.failures));
    cr_assert_eq(st.throttled - before.throttled, 4, "%llu throttled",
                 (unsigned long long)(st.throttled - before.throttled));
    cr_assert_eq(mysql_login(clink_node_port(real), -1, "old", NULL, old_unbound, &second), 0xff,
                 "the right password was checked");
    clink_node_free(cli);
    clink_node_free(real);
}
