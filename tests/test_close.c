/*
 * How connections and nodes close: shutdown with calls in flight, GOAWAY
 * then close_notify, and connections closed by a handler or as they open.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"
#include "transport/timer.h"

TestSuite(close, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

Test(close, client_shutdown_with_calls_in_flight_completes_each_once)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_hang);
    struct clink_node *cli = ts_client(tls, 2, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    enum { N = 100 };
    struct clink_call calls[N];
    for (int i = 0; i < N; i++) {
        calls[i] = (struct clink_call){.method = TS_HANG, .cb = ts_count_cb};
        cr_assert_eq(clink_call_start(c, &calls[i]), 0);
    }
    cr_assert_eq(ts_wait_count(&ts_hang_seen, N, ts_ms(3000)), N);

    uint64_t t0 = clink__now_ns();
    cr_assert_eq(clink_node_shutdown(cli, 100), 0);
    uint64_t ms = (clink__now_ns() - t0) / 1000000;

    cr_assert_eq(atomic_load(&ts_cb_count), N);
    cr_assert_eq(atomic_load(&ts_cb_status), -CLINK_ESHUTDOWN);
    cr_assert_geq(ms, 100);
    struct clink_call late = {.method = TS_ECHO, .cb = ts_count_cb};
    int ret = clink_call_start(c, &late);
    cr_assert(ret == -CLINK_ESHUTDOWN || ret == -CLINK_ECLOSED, "%s", clink_strerror(ret));
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(close, server_shutdown_drains_answered_calls)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_hold);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "a", 1, ts_ms(5000), &r), 0);
    clink_msg_free(&r);

    cr_assert_eq(clink_node_shutdown(srv, ts_ms(2000)), 0);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    for (int i = 0; i < 200 && st.open; i++) {
        usleep(5000);
        cr_assert_eq(clink_conn_get_status(c, &st), 0);
    }

    cr_assert_eq(st.open, 0, "client still sees the connection open after the server's GOAWAY");
    struct clink_call late = {.method = TS_ECHO, .cb = ts_count_cb};
    int ret = clink_call_start(c, &late);
    cr_assert(ret == -CLINK_ECLOSED || ret == -CLINK_EGOAWAY, "%s", clink_strerror(ret));
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

Test(close, orderly_close_sends_goaway_then_close_notify)
{
    struct clink_node_opts no = {.workers = 1, .tls = tls, .on_conn = on_conn};
    struct clink_node *srv;
    cr_assert_eq(clink_node_new(&no, &srv), 0);
    ts_register_echo(srv);
    cr_assert_eq(clink_node_listen(srv, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_start(srv), 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "z", 1, ts_ms(5000), &r), 0);
    clink_msg_free(&r);

    clink_conn_close(c);
    int n = ts_wait_count(&closed_events, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    cr_assert_eq(atomic_load(&closed_status), 0, "server saw %s", clink_strerror(atomic_load(&closed_status)));
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- handlers that close their own connection ---- */

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

Test(close, handler_may_close_its_own_connection)
{
    struct clink_node *srv = ts_node(tls, 1, 0, reg_close_me);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;

    int ret = clink_call_sync(c, CLOSE_ME, NULL, 0, ts_ms(5000), &r);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    for (int i = 0; i < 400 && st.open; i++) {
        usleep(5000);
        cr_assert_eq(clink_conn_get_status(c, &st), 0);
    }

    cr_assert_eq(ret, 0, "the answer given after the close still arrives: %s", clink_strerror(ret));
    cr_assert_eq(r.len, 3);
    clink_msg_free(&r);
    cr_assert_eq(st.open, 0, "then the server's GOAWAY closes it");
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
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

Test(close, a_connection_closed_as_it_opens_is_never_a_success_without_a_connection)
{
    struct clink_node_opts o = {.workers = 1, .tls = tls, .on_conn = close_on_open};
    struct clink_node *srv = ts_node_with(&o, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    int ok = 0, refused = 0;
    for (int i = 0; i < 30; i++) {
        struct clink_connect_opts co = ts_dial(srv, "localhost");
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
