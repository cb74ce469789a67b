/*
 * Transport tests on real loopback sockets, real OpenSSL and real io_uring.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

static struct ts_pki pki;
static struct clink_tls_ctx *tls;

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
}

static void teardown(void)
{
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

TestSuite(transport, .init = setup, .fini = teardown, .timeout = 60);

static void expect_echo_works(struct clink_node *srv);

static struct clink_connect_opts dial(struct clink_node *srv, const char *name)
{
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = name};
    return o;
}

Test(transport, tls_handshake_and_echo)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));
    cr_assert_eq(ret, 0, "connect: %s", err);
    struct clink_msg resp;
    ret = clink_call_sync(c, TS_ECHO, "hello", 5, ts_ms(5000), &resp);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_status(c, &st), 0);

    cr_assert_eq(ret, 0, "call: %s", clink_strerror(ret));
    cr_assert_eq(resp.len, 5);
    cr_assert_arr_eq(resp.data, "hello", 5);
    cr_assert_str_eq(st.tls_version, "TLSv1.3");
    cr_assert(strcmp(st.cipher, "TLS_AES_128_GCM_SHA256") == 0 || strcmp(st.cipher, "TLS_AES_256_GCM_SHA384") == 0 ||
                  strcmp(st.cipher, "TLS_CHACHA20_POLY1305_SHA256") == 0,
              "cipher %s", st.cipher);
    cr_assert_str_eq(st.alpn, "clink/1");
    cr_assert_str_eq(st.peer_subject, "CN=localhost");
    cr_assert_str_eq(st.peer_issuer, "CN=clink test CA");
    cr_assert_gt(st.peer_not_after, 0);
    struct clink_features f;
    clink_node_features(cli, &f);
    if (f.ktls) { /* the kernel took both directions over (and carried this very call) */
        cr_assert_eq(st.ktls_tx, CLINK_KTLS_ON, "%s", st.ktls_reason);
        cr_assert_eq(st.ktls_rx, CLINK_KTLS_ON, "%s", st.ktls_reason);
    } else {
        cr_assert_eq(st.ktls_tx, CLINK_KTLS_OFF);
        cr_assert_str_eq(st.ktls_reason, "this kernel offers no kTLS (no 'tls' in tcp_available_ulp)");
    }
    cr_assert_eq(st.open, 1);
    cr_assert_eq(st.proto_version, 1);
    cr_assert_geq(st.frames_out, 2); /* HELLO + request */
    clink_msg_free(&resp);

    ret = clink_call_sync(c, TS_FAIL, "x", 1, ts_ms(5000), &resp);
    cr_assert_eq(ret, -CLINK_EREMOTE);
    cr_assert_eq(resp.len, 4);
    cr_assert_arr_eq(resp.data, "nope", 4);
    clink_msg_free(&resp);

    ret = clink_call_sync(c, 77, "x", 1, ts_ms(5000), &resp);
    cr_assert_eq(ret, -CLINK_ENOMETHOD);
    clink_msg_free(&resp);

    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(transport, untrusted_ca_is_refused_with_reason)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_tls_ctx *other = ts_tls(pki.other_cert, pki.other_key, pki.other_ca);
    struct clink_node *cli = ts_client(other, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_EVERIFY, "got %d %s", ret, clink_strerror(ret));
    cr_assert_null(c);
    /* OpenSSL's words for it depend on the chain sent: either names the untrusted issuer. */
    cr_assert(strstr(err, "certificate verify failed: unable to get local issuer certificate") != NULL ||
                  strstr(err, "certificate verify failed: self-signed certificate in certificate chain") != NULL,
              "reason: %s", err);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(other);
}

Test(transport, hostname_mismatch_is_refused)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "leaf-7.example");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_EVERIFY, "got %s", clink_strerror(ret));
    cr_assert(strstr(err, "certificate verify failed: hostname mismatch") != NULL, "reason: %s", err);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- many calls in flight ---- */

#define HOLD    10
#define RELEASE 11
#define TOTAL   10000
#define NCONN   8

struct held {
    struct clink_req *req;
    uint8_t payload[16];
    size_t len;
};
static _Thread_local struct held *held;
static _Thread_local size_t nheld, capheld;
static atomic_int server_held;

static void hold(struct clink_req *req, void *user)
{
    (void)user;
    if (nheld == capheld) {
        capheld = capheld ? capheld * 2 : 1024;
        held = realloc(held, capheld * sizeof(*held));
    }
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    cr_assert_leq(n, sizeof(held[0].payload));
    held[nheld].req = req;
    held[nheld].len = n;
    memcpy(held[nheld].payload, p, n); /* the payload is only ours during the handler */
    nheld++;
    atomic_fetch_add(&server_held, 1);
}

static void release(struct clink_req *req, void *user)
{
    (void)user;
    for (size_t i = 0; i < nheld; i++) {
        struct iovec iov = {.iov_base = held[i].payload, .iov_len = held[i].len};
        cr_assert_eq(clink_req_respond(held[i].req, &iov, 1), 0);
    }
    nheld = capheld = 0;
    free(held);
    held = NULL;
    cr_assert_eq(clink_req_respond(req, NULL, 0), 0);
}

static void reg_hold(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, HOLD, hold, NULL), 0);
    cr_assert_eq(clink_node_register(n, RELEASE, release, NULL), 0);
}

struct many {
    struct clink_call call;
    struct iovec iov;
    uint64_t payload[2];
};
static atomic_int done_ok, done_bad, done_total;

static void many_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct many *m = (struct many *)call;
    if (status == 0 && len == sizeof(m->payload) && memcmp(resp, m->payload, len) == 0) {
        atomic_fetch_add(&done_ok, 1);
    } else {
        atomic_fetch_add(&done_bad, 1);
    }
    atomic_fetch_add(&done_total, 1);
}

Test(transport, ten_thousand_calls_in_flight_across_four_workers)
{
    struct clink_node *srv = ts_node(tls, 4, 0, reg_hold);
    struct clink_node *cli = ts_client(tls, 4, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *conns[NCONN];
    for (int i = 0; i < NCONN; i++) {
        char err[256];
        cr_assert_eq(clink_connect_sync(cli, &o, &conns[i], err, sizeof(err)), 0, "%s", err);
    }
    struct many *calls = calloc(TOTAL, sizeof(*calls));

    for (int i = 0; i < TOTAL; i++) {
        struct many *m = &calls[i];
        m->payload[0] = (uint64_t)i;
        m->payload[1] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
        m->iov.iov_base = m->payload;
        m->iov.iov_len = sizeof(m->payload);
        m->call =
            (struct clink_call){.method = HOLD, .iov = &m->iov, .iovcnt = 1, .cb = many_cb, .timeout_ms = ts_ms(30000)};
        int ret;
        while ((ret = clink_call_start(conns[i % NCONN], &m->call)) == -CLINK_EAGAIN) {
            usleep(100);
        }
        cr_assert_eq(ret, 0, "start %d: %s", i, clink_strerror(ret));
    }
    /* Every request is now held by the server and none answered: all 10,000 are in flight at once. */
    for (int spin = 0; atomic_load(&server_held) < TOTAL && spin < 3000; spin++) {
        usleep(10000);
    }
    int peak = atomic_load(&server_held);
    int answered_before_release = atomic_load(&done_total);
    struct clink_msg r;
    for (int i = 0; i < NCONN; i++) {
        cr_assert_eq(clink_call_sync(conns[i], RELEASE, NULL, 0, ts_ms(10000), &r), 0);
    }
    for (int spin = 0; atomic_load(&done_total) < TOTAL && spin < 3000; spin++) {
        usleep(10000);
    }

    cr_assert_eq(peak, TOTAL, "server held %d", peak);
    cr_assert_eq(answered_before_release, 0);
    cr_assert_eq(atomic_load(&done_ok), TOTAL, "ok %d bad %d", atomic_load(&done_ok), atomic_load(&done_bad));
    cr_assert_eq(atomic_load(&done_bad), 0);
    struct clink_node_stats st;
    clink_node_stats(cli, &st);
    cr_assert_eq(st.calls_ok, TOTAL + NCONN);
    for (int i = 0; i < NCONN; i++) {
        clink_conn_close(conns[i]);
    }
    clink_node_free(cli);
    clink_node_free(srv);
    free(calls);
}

/* ---- responses out of order ---- */

static int order[3];
static atomic_int norder;

static void order_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)resp;
    (void)len;
    cr_assert_eq(status, 0);
    order[atomic_fetch_add(&norder, 1)] = (int)(intptr_t)call->user;
}

static void release_reverse(struct clink_req *req, void *user)
{
    (void)user;
    while (nheld > 0) {
        struct held *h = &held[--nheld];
        struct iovec iov = {.iov_base = h->payload, .iov_len = h->len};
        cr_assert_eq(clink_req_respond(h->req, &iov, 1), 0);
    }
    capheld = 0;
    free(held);
    held = NULL;
    cr_assert_eq(clink_req_respond(req, NULL, 0), 0);
}

static void reg_reverse(struct clink_node *n)
{
    cr_assert_eq(clink_node_register(n, HOLD, hold, NULL), 0);
    cr_assert_eq(clink_node_register(n, RELEASE, release_reverse, NULL), 0);
}

Test(transport, responses_arrive_out_of_order)
{
    struct clink_node *srv = ts_node(tls, 1, 0, reg_reverse);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call calls[3];
    uint8_t b = 0;
    struct iovec iov = {.iov_base = &b, .iov_len = 1};

    for (int i = 0; i < 3; i++) {
        calls[i] = (struct clink_call){
            .method = i < 2 ? HOLD : RELEASE, .iov = &iov, .iovcnt = 1, .cb = order_cb, .user = (void *)(intptr_t)i};
        cr_assert_eq(clink_call_start(c, &calls[i]), 0);
    }
    for (int spin = 0; atomic_load(&norder) < 3 && spin < 500; spin++) {
        usleep(10000);
    }

    cr_assert_eq(atomic_load(&norder), 3);
    cr_assert_eq(order[0], 1); /* the second call's answer first */
    cr_assert_eq(order[1], 0);
    cr_assert_eq(order[2], 2);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- hostile or broken peers ---- */

#include <signal.h>
#include <sys/wait.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "transport/frame.h"
#include "transport/timer.h"

Test(transport, server_refuses_client_from_another_ca)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    /* clink itself refuses a context whose own certificate does not chain to its CA bundle... */
    struct clink_tls_opts o2 = {.cert_file = pki.other_cert, .key_file = pki.other_key, .ca_file = pki.ca};
    struct clink_tls_ctx *bad = NULL;
    char err[512];
    cr_assert_eq(clink_tls_ctx_new(&o2, &bad, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "does not verify against ssl_ca") != NULL, "%s", err);
    /* ...so a raw client plays the stranger: it trusts our CA but shows another CA's certificate. */
    struct tls_peer r;
    struct clink_node_stats st;

    int hs = ts_raw_tls_as(&r, clink_node_port(srv), pki.other_cert, pki.other_key, pki.ca);
    uint8_t b[64];
    int n = hs == 0 ? ts_raw_read(&r, b, sizeof(b)) : 0;
    for (int i = 0; i < 400; i++) {
        clink_node_stats(srv, &st);
        if (st.handshakes_failed > 0) {
            break;
        }
        usleep(5000);
    }

    cr_assert_eq(n, 0, "the server must not talk to it");
    cr_assert_eq(st.handshakes_failed, 1);
    cr_assert_eq(st.conns_open, 0);
    tls_peer_free(&r);
    expect_echo_works(srv);
    clink_node_free(srv);
}

static void expect_echo_works(struct clink_node *srv)
{
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "ok", 2, ts_ms(5000), &r), 0);
    clink_msg_free(&r);
    clink_conn_close(c);
    clink_node_free(cli);
}

static void raw_hello(struct tls_peer *r, uint16_t minv, uint16_t maxv)
{
    uint8_t b[CLINK_HELLO_MAX];
    struct clink_hello h = {.min_version = minv, .max_version = maxv, .max_frame = 1 << 20};
    size_t n = clink__hello_encode(b, &h);
    cr_assert_eq(ts_raw_frame(r, CLINK_FRAME_HELLO, 0, 0, b, (uint32_t)n, (uint32_t)n), 0);
}

Test(transport, oversized_frame_closes_only_that_connection)
{
    struct clink_node *srv = ts_node(tls, 2, 0, ts_register_echo);
    struct tls_peer r;
    cr_assert_eq(ts_raw_tls(&r, clink_node_port(srv), &pki), 0);
    raw_hello(&r, 1, 1);
    uint8_t hdr[CLINK_FRAME_HDR + CLINK_HELLO_LEN];
    cr_assert_eq(ts_raw_read(&r, hdr, sizeof(hdr)), (int)sizeof(hdr), "no HELLO back");
    cr_assert_eq(hdr[0], CLINK_FRAME_HELLO);

    /* 4 MiB + 1 claimed: the server must refuse before reading the body. */
    cr_assert_eq(ts_raw_frame(&r, CLINK_FRAME_REQUEST, TS_ECHO, 1, NULL, 0, (4u << 20) + 1), 0);
    uint8_t rest[64];
    int n = ts_raw_read(&r, rest, sizeof(rest));

    cr_assert_eq(n, 0, "connection should be closed, read %d", n);
    struct clink_node_stats st;
    clink_node_stats(srv, &st);
    cr_assert_eq(st.protocol_errors, 1);
    expect_echo_works(srv);
    tls_peer_free(&r);
    clink_node_free(srv);
}

Test(transport, malformed_frame_type_closes_connection)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct tls_peer r;
    cr_assert_eq(ts_raw_tls(&r, clink_node_port(srv), &pki), 0);
    raw_hello(&r, 1, 1);
    uint8_t hdr[CLINK_FRAME_HDR + CLINK_HELLO_LEN];
    cr_assert_eq(ts_raw_read(&r, hdr, sizeof(hdr)), (int)sizeof(hdr));

    cr_assert_eq(ts_raw_frame(&r, 99, 0, 1, NULL, 0, 0), 0);
    uint8_t rest[64];
    int n = ts_raw_read(&r, rest, sizeof(rest));

    cr_assert_eq(n, 0);
    expect_echo_works(srv);
    tls_peer_free(&r);
    clink_node_free(srv);
}

Test(transport, protocol_version_mismatch_is_refused_with_error_frame)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct tls_peer r;
    cr_assert_eq(ts_raw_tls(&r, clink_node_port(srv), &pki), 0);

    raw_hello(&r, 7, 9);
    uint8_t b[CLINK_FRAME_HDR + 256];
    int n = ts_raw_read(&r, b, sizeof(b));

    cr_assert_gt(n, CLINK_FRAME_HDR + 4, "got %d bytes", n);
    struct clink_frame_hdr h;
    cr_assert_eq(clink__frame_decode(b, 1 << 20, &h), 0);
    cr_assert_eq(h.type, CLINK_FRAME_ERROR);
    cr_assert_eq(h.id, 0);
    cr_assert_eq(clink__get_u32(b + CLINK_FRAME_HDR), CLINK_EVERSION);
    cr_assert(memmem(b, (size_t)n, "no common protocol version", 26) != NULL);
    tls_peer_free(&r);
    clink_node_free(srv);
}

#define HANG 20
static atomic_int hang_seen;
static void hang(struct clink_req *req, void *user)
{
    (void)user;
    (void)req; /* never answered: the test decides how the call ends */
    atomic_fetch_add(&hang_seen, 1);
}

static void reg_hang(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, HANG, hang, NULL), 0);
}

static atomic_int cb_count, cb_status;
static void count_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)call;
    (void)resp;
    (void)len;
    atomic_store(&cb_status, status);
    atomic_fetch_add(&cb_count, 1);
}

static int wait_count(atomic_int *v, int want, unsigned ms)
{
    for (unsigned i = 0; i < ms / 5 && atomic_load(v) < want; i++) {
        usleep(5000);
    }
    return atomic_load(v);
}

Test(transport, peer_killed_mid_call_fails_the_call)
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct clink_node *srv = ts_node(tls, 1, 0, reg_hang);
        uint16_t port = clink_node_port(srv);
        CLINK_IGNORE(write(pfd[1], &port, sizeof(port)) < 0);
        while (atomic_load(&hang_seen) == 0) {
            usleep(1000);
        }
        CLINK_IGNORE(write(pfd[1], "x", 1) < 0);
        pause();
        _exit(0);
    }
    uint16_t port;
    cr_assert_eq(read(pfd[0], &port, sizeof(port)), (ssize_t)sizeof(port));
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = port, .expected_name = "localhost"};
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call call = {.method = HANG, .cb = count_cb};
    cr_assert_eq(clink_call_start(c, &call), 0);
    char x;
    cr_assert_eq(read(pfd[0], &x, 1), 1);

    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int n = wait_count(&cb_count, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    int st = atomic_load(&cb_status);
    cr_assert(st == -CLINK_ECLOSED || st == -ECONNRESET, "status %s", clink_strerror(st));
    struct clink_call again = {.method = TS_ECHO, .cb = count_cb};
    cr_assert_eq(clink_call_start(c, &again), -CLINK_ECLOSED);
    clink_conn_close(c);
    clink_node_free(cli);
}

Test(transport, deadline_expires)
{
    struct clink_node *srv = ts_node(tls, 1, 0, reg_hang);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;

    uint64_t t0 = clink__now_ns();
    int ret = clink_call_sync(c, HANG, "x", 1, 200, &r);
    uint64_t ms = (clink__now_ns() - t0) / 1000000;

    cr_assert_eq(ret, -CLINK_ETIMEDOUT);
    cr_assert_geq(ms, 200);
    cr_assert_lt(ms, ts_ms(2000));
    /* The connection is still good after a deadline. */
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "y", 1, ts_ms(5000), &r), 0);
    clink_msg_free(&r);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(transport, cancel_completes_call_once)
{
    struct clink_node *srv = ts_node(tls, 1, 0, reg_hang);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call call = {.method = HANG, .cb = count_cb};
    cr_assert_eq(clink_call_start(c, &call), 0);
    cr_assert_eq(wait_count(&hang_seen, 1, ts_ms(3000)), 1);

    cr_assert_eq(clink_call_cancel(&call), 0);
    int n = wait_count(&cb_count, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    cr_assert_eq(atomic_load(&cb_status), -CLINK_ECANCELED);
    usleep(50000);
    cr_assert_eq(atomic_load(&cb_count), 1);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(transport, ping_pong)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call call = {.cb = count_cb};

    cr_assert_eq(clink_conn_ping(c, &call), 0);
    int n = wait_count(&cb_count, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    cr_assert_eq(atomic_load(&cb_status), 0);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(transport, client_shutdown_with_calls_in_flight_completes_each_once)
{
    struct clink_node *srv = ts_node(tls, 1, 0, reg_hang);
    struct clink_node *cli = ts_client(tls, 2, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    enum { N = 100 };
    struct clink_call calls[N];
    for (int i = 0; i < N; i++) {
        calls[i] = (struct clink_call){.method = HANG, .cb = count_cb};
        cr_assert_eq(clink_call_start(c, &calls[i]), 0);
    }
    cr_assert_eq(wait_count(&hang_seen, N, ts_ms(3000)), N);

    uint64_t t0 = clink__now_ns();
    cr_assert_eq(clink_node_shutdown(cli, 100), 0);
    uint64_t ms = (clink__now_ns() - t0) / 1000000;

    cr_assert_eq(atomic_load(&cb_count), N);
    cr_assert_eq(atomic_load(&cb_status), -CLINK_ESHUTDOWN);
    cr_assert_geq(ms, 100);
    struct clink_call late = {.method = TS_ECHO, .cb = count_cb};
    int ret = clink_call_start(c, &late);
    cr_assert(ret == -CLINK_ESHUTDOWN || ret == -CLINK_ECLOSED, "%s", clink_strerror(ret));
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(transport, server_shutdown_drains_answered_calls)
{
    struct clink_node *srv = ts_node(tls, 1, 0, reg_hold);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "a", 1, ts_ms(5000), &r), 0);
    clink_msg_free(&r);

    cr_assert_eq(clink_node_shutdown(srv, ts_ms(2000)), 0);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_status(c, &st), 0);
    for (int i = 0; i < 200 && st.open; i++) {
        usleep(5000);
        cr_assert_eq(clink_conn_status(c, &st), 0);
    }

    cr_assert_eq(st.open, 0, "client still sees the connection open after the server's GOAWAY");
    struct clink_call late = {.method = TS_ECHO, .cb = count_cb};
    int ret = clink_call_start(c, &late);
    cr_assert(ret == -CLINK_ECLOSED || ret == -CLINK_EGOAWAY, "%s", clink_strerror(ret));
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- one port, every kind of client (docs/protocol.md, "Opening") ---- */

Test(transport, plaintext_client_served_where_allowed)
{
    struct clink_node *srv = ts_node(tls, 1, 1, ts_register_echo);
    struct clink_node *cli = ts_client(NULL, 1, 1);
    struct clink_connect_opts o = dial(srv, NULL);
    o.mode = CLINK_MODE_PLAIN;
    struct clink_conn *c;
    char err[256];

    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "plain", 5, ts_ms(5000), &r), 0);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_status(c, &st), 0);

    cr_assert_eq(r.len, 5);
    cr_assert_eq(st.mode, CLINK_MODE_PLAIN);
    cr_assert_str_eq(st.tls_version, "");
    cr_assert_str_eq(st.cipher, "");
    clink_msg_free(&r);
    /* The same port still serves TLS clients. */
    expect_echo_works(srv);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(transport, plaintext_client_refused_by_tls_only_node)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(NULL, 1, 1);
    struct clink_connect_opts o = dial(srv, NULL);
    o.mode = CLINK_MODE_PLAIN;
    struct clink_conn *c = NULL;

    int ret = clink_connect_sync(cli, &o, &c, NULL, 0);

    cr_assert_eq(ret, -CLINK_EPLAINTEXT, "%s", clink_strerror(ret));
    cr_assert_null(c);
    struct clink_node_stats st;
    clink_node_stats(srv, &st);
    cr_assert_eq(st.conns_refused, 1);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(transport, node_without_plaintext_permission_cannot_dial_plaintext)
{
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = 9, .mode = CLINK_MODE_PLAIN};
    struct clink_conn *c = NULL;

    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), -CLINK_EPLAINTEXT);
    clink_node_free(cli);
}

Test(transport, mysql_protocol_client_gets_greeting_then_mysql_error)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    int fd = ts_tcp_connect(clink_node_port(srv));

    /* A MySQL client waits for the server: the greeting must come unprompted. */
    uint8_t g[512];
    cr_assert_eq(ts_read_full(fd, g, 4), 0);
    size_t glen = g[0] | (g[1] << 8) | ((size_t)g[2] << 16);
    cr_assert_lt(glen, sizeof(g));
    cr_assert_eq(ts_read_full(fd, g + 4, glen), 0);
    cr_assert_eq(g[3], 0);
    cr_assert_eq(g[4], 10, "protocol version 10");
    cr_assert(strstr((char *)g + 5, "clink") != NULL, "version string says clink: %s", (char *)g + 5);
    /* A HandshakeResponse41-shaped packet (length 36, sequence 1). */
    uint8_t resp[40] = {36, 0, 0, 1, 0x85, 0xa6, 0x03, 0};
    cr_assert_eq(send(fd, resp, sizeof(resp), 0), (ssize_t)sizeof(resp));
    uint8_t e[256];
    cr_assert_eq(ts_read_full(fd, e, 4), 0);
    size_t elen = e[0] | (e[1] << 8);
    cr_assert_eq(ts_read_full(fd, e + 4, elen), 0);

    cr_assert_eq(e[4], 0xff, "ERR packet");
    cr_assert_eq(e[5] | (e[6] << 8), 1105);
    cr_assert_eq(ts_read_full(fd, e, 1), -1, "then the connection closes");
    close(fd);
    expect_echo_works(srv);
    clink_node_free(srv);
}

Test(transport, silent_client_is_cut_off_by_handshake_timeout)
{
    struct clink_node_opts no = {.workers = 1, .tls = tls, .handshake_timeout_ms = 300};
    struct clink_node *srv;
    cr_assert_eq(clink_node_new(&no, &srv), 0);
    ts_register_echo(srv);
    cr_assert_eq(clink_node_listen(srv, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_start(srv), 0);
    int fd = ts_tcp_connect(clink_node_port(srv));
    ts_skip_greeting(fd);

    uint64_t t0 = clink__now_ns();
    uint8_t b;
    int r = ts_read_full(fd, &b, 1);
    uint64_t ms = (clink__now_ns() - t0) / 1000000;

    cr_assert_eq(r, -1);
    cr_assert_geq(ms, 250);
    cr_assert_lt(ms, ts_ms(3000));
    close(fd);
    clink_node_free(srv);
}

Test(transport, garbage_instead_of_client_hello)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    int fd = ts_tcp_connect(clink_node_port(srv));

    /* TLS record header, then nonsense. */
    static const uint8_t junk[] = {0x16, 0x03, 0x01, 0x00, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    cr_assert_eq(send(fd, junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
    ts_skip_greeting(fd);
    uint8_t b[256];
    ssize_t n;
    while ((n = recv(fd, b, sizeof(b), 0)) > 0) {
    }

    cr_assert_eq(n, 0, "closed");
    struct clink_node_stats st;
    clink_node_stats(srv, &st);
    cr_assert_eq(st.handshakes_failed, 1);
    close(fd);
    expect_echo_works(srv);
    clink_node_free(srv);
}

/* ---- the TLS details the kTLS hand-off will rely on ---- */

Test(transport, server_counts_ticket_records_before_its_first_frame)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);

    struct clink_conn_status st;
    cr_assert_eq(clink_conn_status(c, &st), 0);

    /* Two NewSessionTicket records, then the HELLO frame: all under the server's application key. */
    cr_assert_eq(st.records_in, 3, "client read %llu records", (unsigned long long)st.records_in);
    cr_assert_eq(st.records_out, 1, "client wrote %llu records", (unsigned long long)st.records_out);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

static atomic_int closed_events, closed_status = 12345;
static void on_conn(struct clink_conn *conn, enum clink_conn_event ev, int status, void *user)
{
    (void)conn;
    (void)user;
    if (ev == CLINK_CONN_CLOSED) {
        atomic_store(&closed_status, status);
        atomic_fetch_add(&closed_events, 1);
    }
}

Test(transport, orderly_close_sends_goaway_then_close_notify)
{
    struct clink_node_opts no = {.workers = 1, .tls = tls, .on_conn = on_conn};
    struct clink_node *srv;
    cr_assert_eq(clink_node_new(&no, &srv), 0);
    ts_register_echo(srv);
    cr_assert_eq(clink_node_listen(srv, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_start(srv), 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "z", 1, ts_ms(5000), &r), 0);
    clink_msg_free(&r);

    clink_conn_close(c);
    int n = wait_count(&closed_events, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    cr_assert_eq(atomic_load(&closed_status), 0, "server saw %s", clink_strerror(atomic_load(&closed_status)));
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- a full inbox is reported, never dropped ---- */

#include <semaphore.h>

static sem_t unblock;
static atomic_int blocked_in_cb;

static void blocking_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)call;
    (void)status;
    (void)resp;
    (void)len;
    /* Holds the worker hostage (against the rules, on purpose) so its inbox fills up. */
    atomic_store(&blocked_in_cb, 1);
    sem_wait(&unblock);
}

Test(transport, full_inbox_is_reported_to_the_caller)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node_opts no = {.workers = 1, .tls = tls, .inbox_size = 4};
    struct clink_node *cli;
    cr_assert_eq(clink_node_new(&no, &cli), 0);
    cr_assert_eq(clink_node_start(cli), 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    sem_init(&unblock, 0, 0);
    struct clink_call first = {.method = TS_ECHO, .cb = blocking_cb};
    cr_assert_eq(clink_call_start(c, &first), 0);
    cr_assert_eq(wait_count(&blocked_in_cb, 1, ts_ms(3000)), 1);

    struct clink_call calls[16];
    int accepted = 0, refused = 0;
    for (int i = 0; i < 16; i++) {
        calls[i] = (struct clink_call){.method = TS_ECHO, .cb = count_cb};
        int ret = clink_call_start(c, &calls[i]);
        if (ret == 0) {
            accepted++;
        } else {
            cr_assert_eq(ret, -CLINK_EAGAIN, "%s", clink_strerror(ret));
            refused++;
        }
    }
    struct clink_node_stats st;
    clink_node_stats(cli, &st);
    sem_post(&unblock);
    int done = wait_count(&cb_count, accepted, ts_ms(3000));

    cr_assert_eq(accepted, 3, "a ring of 4 holds 3");
    cr_assert_eq(refused, 13);
    cr_assert_eq(st.inbox_full, 13);
    cr_assert_eq(done, accepted, "every accepted call completes");
    cr_assert_eq(atomic_load(&cb_status), 0);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- handlers that close their own connection; peers that send without reading ---- */

#define CLOSE_ME 30
static void close_me(struct clink_req *req, void *user)
{
    (void)user;
    /* An accepted connection holds no application reference: closing it here must not free it under us. */
    clink_conn_close(clink_req_conn(req));
    struct iovec iov = {.iov_base = (void *)(uintptr_t) "bye", .iov_len = 3};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

static void reg_close_me(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, CLOSE_ME, close_me, NULL), 0);
}

Test(transport, handler_may_close_its_own_connection)
{
    struct clink_node *srv = ts_node(tls, 1, 0, reg_close_me);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;

    int ret = clink_call_sync(c, CLOSE_ME, NULL, 0, ts_ms(5000), &r);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_status(c, &st), 0);
    for (int i = 0; i < 400 && st.open; i++) {
        usleep(5000);
        cr_assert_eq(clink_conn_status(c, &st), 0);
    }

    cr_assert_eq(ret, 0, "the answer given after the close still arrives: %s", clink_strerror(ret));
    cr_assert_eq(r.len, 3);
    clink_msg_free(&r);
    cr_assert_eq(st.open, 0, "then the server's GOAWAY closes it");
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f != NULL) {
        cr_assert_eq(fscanf(f, "%ld %ld", &pages, &rss), 2);
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

Test(transport, peer_that_never_reads_cannot_grow_our_memory)
{
    struct clink_node_opts no = {.workers = 1, .tls = tls, .max_write_buffer = 256 * 1024};
    struct clink_node *srv;
    cr_assert_eq(clink_node_new(&no, &srv), 0);
    ts_register_echo(srv);
    cr_assert_eq(clink_node_listen(srv, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_start(srv), 0);
    struct tls_peer r;
    cr_assert_eq(ts_raw_tls(&r, clink_node_port(srv), &pki), 0);
    raw_hello(&r, 1, 1);
    struct timeval tv = {.tv_sec = 1};
    setsockopt(r.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    long before = rss_kib();

    /* 64 MiB of PINGs, never reading a PONG: the server must stop reading long before. */
    enum { BATCH = 4096 };
    static uint8_t batch[BATCH * (CLINK_FRAME_HDR + CLINK_PING_LEN)];
    for (int i = 0; i < BATCH; i++) {
        struct clink_frame_hdr h = {.type = CLINK_FRAME_PING, .length = CLINK_PING_LEN, .id = (uint64_t)i + 1};
        clink__frame_encode(batch + i * (CLINK_FRAME_HDR + CLINK_PING_LEN), &h);
    }
    size_t sent = 0;
    while (sent < (64u << 20) && tls_peer_write(&r, batch, sizeof(batch)) == 0) {
        sent += sizeof(batch);
    }
    long grown = rss_kib() - before;

    cr_assert_lt(sent, 64u << 20, "the server kept reading: %zu bytes taken", sent);
    cr_assert_lt(grown, 24 * 1024, "memory grew by %ld KiB", grown);
    tls_peer_free(&r);
    expect_echo_works(srv);
    clink_node_free(srv);
}

/* Write PINGs without reading until the server stops taking them (the write blocks past its timeout). */
static size_t ping_until_blocked(struct tls_peer *r)
{
    enum { BATCH = 4096 };
    static uint8_t batch[BATCH * (CLINK_FRAME_HDR + CLINK_PING_LEN)];
    for (int i = 0; i < BATCH; i++) {
        struct clink_frame_hdr h = {.type = CLINK_FRAME_PING, .length = CLINK_PING_LEN, .id = (uint64_t)i + 1};
        clink__frame_encode(batch + i * (CLINK_FRAME_HDR + CLINK_PING_LEN), &h);
    }
    struct timeval tv = {.tv_usec = 300000};
    setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t sent = 0;
    while (sent < (64u << 20) && tls_peer_write(r, batch, sizeof(batch)) == 0) {
        sent += sizeof(batch);
    }
    return sent;
}

/*
 * Six peers that never read, each allowed 4 MiB of answers by the
 * per-connection bound: the node-wide budget (2 MiB here) holds them all to
 * it together, a bystander's requests wait meanwhile, and once the hogs are
 * gone the bystander is served on the same connection.
 */
Test(transport, the_node_budget_bounds_many_peers_that_never_read, .timeout = 60)
{
    struct clink_node_opts no = {.workers = 1, .tls = tls, .max_buffered = 2u << 20};
    struct clink_node *srv = ts_node_with(&no, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *by;
    cr_assert_eq(clink_connect_sync(cli, &o, &by, NULL, 0), 0);

    enum { HOGS = 6 };
    struct tls_peer r[HOGS];
    size_t sent[HOGS];
    for (int i = 0; i < HOGS; i++) {
        cr_assert_eq(ts_raw_tls(&r[i], clink_node_port(srv), &pki), 0);
        raw_hello(&r[i], 1, 1);
        sent[i] = ping_until_blocked(&r[i]);
        cr_assert_lt(sent[i], 64u << 20, "hog %d: the server kept reading", i);
    }
    struct clink_node_stats st;
    clink_node_stats(srv, &st);
    /*
     * The budget counts buffer capacity, checked before each read: one read's
     * answers per connection may go past it, and a buffer may double once.
     * Without it the six would hold 6 x 4 MiB.
     */
    cr_assert_lt(st.buffered, 6u << 20, "the server buffers %llu bytes for peers that do not read",
                 (unsigned long long)st.buffered);
    cr_assert_geq(st.buffer_full, 1);
    /*
     * Meanwhile the bystander's requests wait (the worker reads no more
     * requests) and meet their deadline. Its first may still be answered:
     * a read armed before the budget ran out completes.
     */
    struct clink_msg m;
    int first = clink_call_sync(by, TS_ECHO, "wait", 4, 300, &m);
    if (first == 0) {
        clink_msg_free(&m);
    }
    cr_assert_eq(clink_call_sync(by, TS_ECHO, "wait", 4, 300, &m), -CLINK_ETIMEDOUT);

    for (int i = 0; i < HOGS; i++) {
        tls_peer_free(&r[i]);
    }
    /* Their buffers go with them: the same connection is served again. */
    int ret = -1;
    for (int i = 0; i < 50 && ret != 0; i++) {
        ret = clink_call_sync(by, TS_ECHO, "again", 5, ts_ms(2000), &m);
        if (ret == 0) {
            cr_assert_eq(m.len, 5);
            clink_msg_free(&m);
        }
    }
    cr_assert_eq(ret, 0, "after the hogs left: %s", clink_strerror(ret));
    /* The budget let go at 7/8; the hogs' last buffers go as each closing connection finishes (bounded by linger). */
    for (int i = 0; i < 500; i++) {
        clink_node_stats(srv, &st);
        if (st.buffered < (1u << 20)) {
            break;
        }
        usleep(10000);
    }
    cr_assert_lt(st.buffered, 1u << 20, "%llu bytes still buffered", (unsigned long long)st.buffered);
    clink_conn_close(by);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- TLS policy: ALPN required, TLS 1.2 only where configured ---- */

Test(transport, client_without_alpn_is_refused)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct tls_peer r;
    struct ts_raw_opts o = {.cert = pki.node_cert, .key = pki.node_key, .ca = pki.ca, .no_alpn = 1};

    int hs = ts_raw_tls_with(&r, clink_node_port(srv), &o);

    cr_assert_neq(hs, 0, "a client that does not speak clink/1 must not complete the handshake");
    struct clink_node_stats st;
    for (int i = 0; i < 400; i++) {
        clink_node_stats(srv, &st);
        if (st.handshakes_failed > 0) {
            break;
        }
        usleep(5000);
    }
    cr_assert_eq(st.handshakes_failed, 1);
    tls_peer_free(&r);
    clink_node_free(srv);
}

Test(transport, tls12_refused_by_default_accepted_when_configured)
{
    struct clink_node *srv13 = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_tls_opts o12 = {
        .cert_file = pki.node_cert, .key_file = pki.node_key, .ca_file = pki.ca, .min_version = CLINK_TLS_1_2};
    struct clink_tls_ctx *tls12;
    cr_assert_eq(clink_tls_ctx_new(&o12, &tls12, NULL, 0), 0);
    struct clink_node *srv12 = ts_node(tls12, 1, 0, ts_register_echo);
    struct ts_raw_opts ro = {.cert = pki.node_cert, .key = pki.node_key, .ca = pki.ca, .max_version = TLS1_2_VERSION};
    struct tls_peer a, b;

    int refused = ts_raw_tls_with(&a, clink_node_port(srv13), &ro);
    int accepted = ts_raw_tls_with(&b, clink_node_port(srv12), &ro);

    cr_assert_neq(refused, 0, "a TLS 1.3-only node must refuse a TLS 1.2 client");
    cr_assert_eq(accepted, 0, "TLS 1.2 where configured");
    cr_assert_str_eq(SSL_get_version(b.ssl), "TLSv1.2");
    raw_hello(&b, 1, 1);
    uint8_t hdr[CLINK_FRAME_HDR + CLINK_HELLO_LEN];
    cr_assert_eq(ts_raw_read(&b, hdr, sizeof(hdr)), (int)sizeof(hdr), "frames flow over TLS 1.2");
    tls_peer_free(&a);
    tls_peer_free(&b);
    clink_node_free(srv13);
    clink_node_free(srv12);
    clink_tls_ctx_free(tls12);
}

/* ---- ssl modes (the mysql client's names) ---- */

static int dial_mode(struct clink_node *cli, struct clink_node *srv, const char *name, enum clink_ssl_mode m,
                     struct clink_conn_status *st, char *err, size_t errlen)
{
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = name, .ssl_mode = m};
    struct clink_conn *c = NULL;
    int ret = clink_connect_sync(cli, &o, &c, err, errlen);
    if (ret == 0) {
        cr_assert_eq(clink_conn_status(c, st), 0);
        clink_conn_close(c);
    }
    return ret;
}

Test(transport, verify_ca_skips_the_name_verify_identity_does_not)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;
    char err[256];

    int ca = dial_mode(cli, srv, "leaf-9.example", CLINK_SSL_VERIFY_CA, &st, err, sizeof(err));
    cr_assert_eq(ca, 0, "%s", err);
    cr_assert_str_eq(st.verified, "ca");
    int id = dial_mode(cli, srv, "leaf-9.example", CLINK_SSL_VERIFY_IDENTITY, &st, err, sizeof(err));
    cr_assert_eq(id, -CLINK_EVERIFY);
    int def = dial_mode(cli, srv, "localhost", CLINK_SSL_DEFAULT, &st, err, sizeof(err));
    cr_assert_eq(def, 0, "%s", err);
    cr_assert_str_eq(st.verified, "identity", "the default verifies the identity");

    clink_node_free(cli);
    clink_node_free(srv);
}

Test(transport, required_encrypts_without_verifying)
{
    /* A server with a certificate from a CA the client does not trust, asking no client certificate. */
    struct clink_tls_opts so = {.cert_file = pki.other_cert,
                                .key_file = pki.other_key,
                                .ca_file = pki.other_ca,
                                .client_cert = CLINK_CLIENT_CERT_NONE};
    struct clink_tls_ctx *stls;
    cr_assert_eq(clink_tls_ctx_new(&so, &stls, NULL, 0), 0);
    struct clink_node *srv = ts_node(stls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;
    char err[256];

    int req = dial_mode(cli, srv, "localhost", CLINK_SSL_REQUIRED, &st, err, sizeof(err));
    cr_assert_eq(req, 0, "%s", err);
    cr_assert_str_eq(st.tls_version, "TLSv1.3");
    cr_assert_str_eq(st.verified, "none");
    int ca = dial_mode(cli, srv, "localhost", CLINK_SSL_VERIFY_CA, &st, err, sizeof(err));
    cr_assert_eq(ca, -CLINK_EVERIFY, "%s", err);

    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(stls);
}

Test(transport, preferred_without_tls_identity_is_logged_and_counted)
{
    struct clink_node *srv = ts_node(tls, 1, 1, ts_register_echo);
    struct clink_node *plain_cli = ts_client(NULL, 1, 1);
    struct clink_node *tls_cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;
    char err[256];
    struct clink_node_stats ns;

    cr_assert_eq(dial_mode(plain_cli, srv, NULL, CLINK_SSL_PREFERRED, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.mode, CLINK_MODE_PLAIN);
    clink_node_stats(plain_cli, &ns);
    cr_assert_eq(ns.plaintext_fallbacks, 1);
    cr_assert_eq(dial_mode(tls_cli, srv, NULL, CLINK_SSL_PREFERRED, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(st.tls_version, "TLSv1.3", "PREFERRED uses TLS when it can");
    cr_assert_eq(dial_mode(tls_cli, srv, NULL, CLINK_SSL_DISABLED, &st, err, sizeof(err)), -CLINK_EPLAINTEXT,
                 "DISABLED needs a node that allows plaintext");
    cr_assert_eq(dial_mode(plain_cli, srv, NULL, CLINK_SSL_DISABLED, &st, err, sizeof(err)), 0);
    cr_assert_eq(st.mode, CLINK_MODE_PLAIN);

    clink_node_free(plain_cli);
    clink_node_free(tls_cli);
    clink_node_free(srv);
}

/* ---- large answers both ways must not deadlock on backpressure ---- */

static atomic_int big_ok, big_done;
static void big_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)call;
    if (status == 0 && len == (1u << 20) && resp[0] == 0xab && resp[len - 1] == 0xab) {
        atomic_fetch_add(&big_ok, 1);
    }
    atomic_fetch_add(&big_done, 1);
}

Test(transport, many_one_mebibyte_calls_in_flight_complete)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    size_t n = 1u << 20;
    uint8_t *payload = malloc(n);
    memset(payload, 0xab, n);
    struct iovec iov = {.iov_base = payload, .iov_len = n};
    enum { N = 32 };
    struct clink_call calls[N];

    /* 32 MiB each way, eight times the write budget: both sides must keep reading. */
    for (int i = 0; i < N; i++) {
        calls[i] =
            (struct clink_call){.method = TS_ECHO, .iov = &iov, .iovcnt = 1, .cb = big_cb, .timeout_ms = ts_ms(20000)};
        cr_assert_eq(clink_call_start(c, &calls[i]), 0);
    }
    int done = wait_count(&big_done, N, ts_ms(25000));

    cr_assert_eq(done, N);
    cr_assert_eq(atomic_load(&big_ok), N);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    free(payload);
}

/* ---- revocation ---- */

Test(transport, revoked_client_certificate_is_refused)
{
    char ca_key[512], agg[512], agg_key[512], crl[512], err[512];
    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", pki.dir);
    snprintf(agg, sizeof(agg), "%s/agg.pem", pki.dir);
    snprintf(agg_key, sizeof(agg_key), "%s/agg-key.pem", pki.dir);
    snprintf(crl, sizeof(crl), "%s/crl.pem", pki.dir);
    struct clink_cert_opts co = {.common_name = "agg"};
    cr_assert_eq(clink_cert_make_node(&co, pki.ca, ca_key, agg, agg_key, 0, err, sizeof(err)), 0, "%s", err);
    const char *revoked[] = {agg, NULL};
    cr_assert_eq(clink_cert_make_crl(pki.ca, ca_key, revoked, 0, crl, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_opts so = {
        .cert_file = pki.node_cert, .key_file = pki.node_key, .ca_file = pki.ca, .crl_file = crl};
    struct clink_tls_ctx *stls;
    cr_assert_eq(clink_tls_ctx_new(&so, &stls, err, sizeof(err)), 0, "%s", err);
    struct clink_node *srv = ts_node(stls, 1, 0, ts_register_echo);
    struct clink_tls_ctx *agg_tls = ts_tls(agg, agg_key, pki.ca);
    struct clink_node *revoked_cli = ts_client(agg_tls, 1, 0);
    struct clink_node *good_cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;

    int bad = dial_mode(revoked_cli, srv, "localhost", CLINK_SSL_DEFAULT, &st, err, sizeof(err));
    int good = dial_mode(good_cli, srv, "localhost", CLINK_SSL_DEFAULT, &st, err, sizeof(err));

    cr_assert_eq(bad, -CLINK_EVERIFY, "a revoked certificate must be refused: %s", clink_strerror(bad));
    cr_assert_eq(good, 0, "%s", err);
    clink_node_free(revoked_cli);
    clink_node_free(good_cli);
    clink_node_free(srv);
    clink_tls_ctx_free(agg_tls);
    clink_tls_ctx_free(stls);
    unlink(agg);
    unlink(agg_key);
    unlink(crl);
}

struct storm_arg {
    struct clink_node *cli;
    uint16_t port;
    atomic_int ok;
};

static void *storm_dial(void *arg)
{
    struct storm_arg *a = arg;
    for (int i = 0; i < 5; i++) {
        struct clink_connect_opts o = {
            .host = "127.0.0.1", .port = a->port, .expected_name = "localhost", .timeout_ms = ts_ms(10000)};
        struct clink_conn *c;
        if (clink_connect_sync(a->cli, &o, &c, NULL, 0) == 0) {
            atomic_fetch_add(&a->ok, 1);
            clink_conn_close(c);
        }
    }
    return NULL;
}

Test(transport, a_handshake_storm_queues_beyond_the_per_worker_cap)
{
    struct clink_node_opts o = {
        .workers = 1, .tls = tls, .max_handshakes_per_worker = 2, .handshake_timeout_ms = ts_ms(10000)};
    struct clink_node *srv;
    cr_assert_eq(clink_node_new(&o, &srv), 0);
    cr_assert_eq(clink_node_listen(srv, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_start(srv), 0);
    struct clink_node *cli = ts_client(tls, 2, 0);
    struct storm_arg a = {.cli = cli, .port = clink_node_port(srv)};
    pthread_t th[12];
    for (int i = 0; i < 12; i++) {
        pthread_create(&th[i], NULL, storm_dial, &a);
    }
    for (int i = 0; i < 12; i++) {
        pthread_join(th[i], NULL);
    }
    struct clink_node_stats s;
    clink_node_stats(srv, &s);
    cr_assert_eq(atomic_load(&a.ok), 60, "every dial got through, in turn");
    cr_assert_gt(s.handshakes_deferred, 0, "some waited for a slot");
    cr_assert_eq(s.handshakes_ok, 60);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- idle connections keep small buffers; a burst after a quiet spell still arrives whole ---- */

static void idle_then_burst(struct clink_conn *c)
{
    size_t big = 3u << 20; /* several times the 64 KiB streaming read */
    uint8_t *payload = malloc(big);
    for (size_t i = 0; i < big; i++) {
        payload[i] = (uint8_t)(i * 131u);
    }
    for (int round = 0; round < 3; round++) {
        struct clink_msg r;
        for (int i = 0; i < 8; i++) { /* small calls: the connection turns idle (4 KiB reads) */
            cr_assert_eq(clink_call_sync(c, TS_ECHO, "tick", 4, ts_ms(5000), &r), 0);
            cr_assert_eq(r.len, 4);
            clink_msg_free(&r);
        }
        size_t n = round == 0 ? 4097 : round == 1 ? 65536 + 5 : big; /* just over, over, far over */
        cr_assert_eq(clink_call_sync(c, TS_ECHO, payload, n, ts_ms(10000), &r), 0);
        cr_assert_eq(r.len, n);
        cr_assert_arr_eq(r.data, payload, n);
        clink_msg_free(&r);
    }
    free(payload);
}

Test(transport, burst_after_idle_arrives_whole_tls_and_plain)
{
    struct clink_node *srv = ts_node(tls, 1, 1, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 1);
    for (int plain = 0; plain < 2; plain++) {
        struct clink_connect_opts o = dial(srv, "localhost");
        o.mode = plain ? CLINK_MODE_PLAIN : CLINK_MODE_TLS;
        struct clink_conn *c;
        char err[256];
        cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
        idle_then_burst(c);
        clink_conn_close(c);
    }
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- answering from another thread: an aggregator answers when its leaves have ---- */

#define LATER 40
enum { LATER_N = 2000 };
static struct clink_req *later_reqs[LATER_N];
static uint64_t later_vals[LATER_N];
static atomic_int later_n;

static void later(struct clink_req *req, void *user)
{
    (void)user;
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    int i = atomic_fetch_add(&later_n, 1);
    cr_assert_lt(i, LATER_N);
    cr_assert_eq(n, sizeof(uint64_t));
    memcpy(&later_vals[i], p, sizeof(uint64_t));
    /* Publish the req last: the answering thread waits for it (release/acquire). */
    __atomic_store_n(&later_reqs[i], req, __ATOMIC_RELEASE);
}

static void reg_later(struct clink_node *n)
{
    cr_assert_eq(clink_node_register(n, LATER, later, NULL), 0);
}

static void *answer_later(void *arg)
{
    (void)arg;
    for (int i = 0; i < LATER_N; i++) {
        struct clink_req *req;
        while ((req = __atomic_load_n(&later_reqs[i], __ATOMIC_ACQUIRE)) == NULL) {
            usleep(100);
        }
        uint64_t v = later_vals[i] * 3;
        struct iovec iov = {.iov_base = &v, .iov_len = sizeof(v)};
        int ret;
        while ((ret = clink_req_respond(req, &iov, 1)) == -CLINK_EAGAIN) {
            usleep(100);
        }
        cr_assert_eq(ret, 0, "%s", clink_strerror(ret));
    }
    return NULL;
}

struct tripled {
    struct clink_call call;
    struct iovec iov;
    uint64_t v;
};
static atomic_int tripled_ok, tripled_done;

static void tripled_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct tripled *t = (struct tripled *)call;
    uint64_t got = 0;
    if (status == 0 && len == sizeof(got)) {
        memcpy(&got, resp, sizeof(got));
        if (got == t->v * 3) {
            atomic_fetch_add(&tripled_ok, 1);
        }
    }
    atomic_fetch_add(&tripled_done, 1);
}

Test(transport, a_request_answered_from_another_thread_arrives)
{
    struct clink_node *srv = ts_node(tls, 2, 0, reg_later);
    struct clink_node *cli = ts_client(tls, 2, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, answer_later, NULL), 0);
    struct clink_conn *conns[4];
    for (int i = 0; i < 4; i++) { /* connections spread over both server workers */
        struct clink_connect_opts o = dial(srv, "localhost");
        cr_assert_eq(clink_connect_sync(cli, &o, &conns[i], NULL, 0), 0);
    }
    struct tripled *calls = calloc(LATER_N, sizeof(*calls));
    for (int i = 0; i < LATER_N; i++) {
        calls[i].v = (uint64_t)i + 1000;
        calls[i].iov = (struct iovec){.iov_base = &calls[i].v, .iov_len = sizeof(uint64_t)};
        calls[i].call = (struct clink_call){
            .method = LATER, .iov = &calls[i].iov, .iovcnt = 1, .cb = tripled_cb, .timeout_ms = ts_ms(20000)};
        int ret;
        while ((ret = clink_call_start(conns[i % 4], &calls[i].call)) == -CLINK_EAGAIN) {
            usleep(100);
        }
        cr_assert_eq(ret, 0);
    }
    int done = wait_count(&tripled_done, LATER_N, ts_ms(25000));
    pthread_join(th, NULL);

    cr_assert_eq(done, LATER_N);
    cr_assert_eq(atomic_load(&tripled_ok), LATER_N);
    for (int i = 0; i < 4; i++) {
        clink_conn_close(conns[i]);
    }
    clink_node_free(cli);
    clink_node_free(srv);
    free(calls);
}

/* ---- a server that closes a connection the moment it opens ---- */

static void close_on_open(struct clink_conn *conn, enum clink_conn_event ev, int status, void *user)
{
    (void)status;
    (void)user;
    if (ev == CLINK_CONN_OPENED) {
        clink_conn_close(conn); /* on its worker: allowed for an accepted connection */
    }
}

Test(transport, a_connection_closed_as_it_opens_is_never_a_success_without_a_connection)
{
    struct clink_node_opts o = {.workers = 1, .tls = tls, .on_conn = close_on_open};
    struct clink_node *srv = ts_node_with(&o, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    int ok = 0, refused = 0;
    for (int i = 0; i < 30; i++) {
        struct clink_connect_opts co = dial(srv, "localhost");
        struct clink_conn *c = NULL;
        char err[256] = "";
        int ret = clink_connect_sync(cli, &co, &c, err, sizeof(err));
        if (ret == 0) {
            cr_assert_not_null(c, "dial %d: success without a connection", i);
            clink_conn_close(c);
            ok++;
        } else {
            cr_assert_null(c);
            refused++;
        }
    }
    cr_assert_eq(ok + refused, 30);
    clink_node_free(cli);
    clink_node_free(srv);
}
