/*
 * Clients that never finish a handshake, or too many at once: the node
 * cuts off the silent and the garbled, and queues a storm without refusing it.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clink/http.h"
#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"
#include "transport/timer.h"

TestSuite(handshake_limits, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

Test(handshake_limits, silent_client_is_cut_off_by_handshake_timeout)
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

Test(handshake_limits, garbage_instead_of_client_hello)
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
    clink_node_get_stats(srv, &st);
    cr_assert_eq(st.handshakes_failed, 1);
    close(fd);
    ts_expect_echo_works(tls, srv);
    clink_node_free(srv);
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

Test(handshake_limits, a_handshake_storm_queues_beyond_the_per_worker_cap)
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
    clink_node_get_stats(srv, &s);
    cr_assert_eq(atomic_load(&a.ok), 60, "every dial got through, in turn");
    cr_assert_gt(s.handshakes_deferred, 0, "some waited for a slot");
    cr_assert_eq(s.handshakes_ok, 60);
    clink_node_free(cli);
    clink_node_free(srv);
}

static void http_unused(struct clink_req *req, void *user)
{
    (void)user;
    CLINK_IGNORE(clink_req_fail(req, "not in this test"));
}

/*
 * Issue 17: stalled connections on the HTTPS port took the worker's
 * handshake slots, and a cluster login waited for them to be cut off. Each
 * port now has slots of its own: with the HTTPS port's all held by
 * connections that never speak, and eviction a long way off (a quarter of a
 * 60 s handshake timeout), a node-port client still gets in at once.
 */
Test(handshake_limits, a_storm_on_the_https_port_leaves_the_cluster_port_alone)
{
    struct clink_node_opts o = {
        .workers = 1, .tls = tls, .max_handshakes_per_worker = 2, .handshake_timeout_ms = ts_ms(60000)};
    struct clink_node *srv;
    struct clink_tls_ctx *https = NULL;
    struct clink_tls_opts ho = {.cert_file = pki.node_cert, .key_file = pki.node_key};
    char err[256] = "";
    cr_assert_eq(clink_tls_ctx_new_https(&ho, &https, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_node_new(&o, &srv), 0);
    ts_register_echo(srv);
    cr_assert_eq(clink_node_listen(srv, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_listen_https(srv, "127.0.0.1", 0, https, http_unused, NULL), 0);
    cr_assert_eq(clink_node_start(srv), 0);
    int stalled[6];
    for (int i = 0; i < 6; i++) {
        stalled[i] = ts_tcp_connect(clink_node_https_port(srv)); /* and never a byte */
    }
    struct clink_node_stats s;
    for (int i = 0; i < 200; i++) { /* until the last of them has been accepted and queued */
        clink_node_get_stats(srv, &s);
        if (s.handshakes_deferred >= 4) {
            break;
        }
        usleep(10000);
    }
    cr_assert_eq(s.handshakes_deferred, 4, "the HTTPS port's 2 slots are taken, 4 wait");

    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts co = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost", .timeout_ms = ts_ms(5000)};
    struct clink_conn *c = NULL;
    int ret = clink_connect_sync(cli, &co, &c, err, sizeof(err));

    cr_assert_eq(ret, 0, "the cluster port waited behind the HTTPS port's storm: %s", err);
    clink_node_get_stats(srv, &s);
    cr_assert_eq(s.handshakes_deferred, 4, "the cluster login waited for a slot");
    clink_conn_close(c);
    for (int i = 0; i < 6; i++) {
        close(stalled[i]);
    }
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(https);
}
