/*
 * Calls over real connections: thousands in flight at once, answers out
 * of order or from another thread, pings, and a full inbox reported to the
 * caller rather than dropped.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"

TestSuite(calls, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

/* ---- many calls in flight ---- */

#define TOTAL 10000
#define NCONN 8

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

Test(calls, ten_thousand_calls_in_flight_across_four_workers)
{
    struct clink_node *srv = ts_node(tls, 4, 0, ts_register_hold);
    struct clink_node *cli = ts_client(tls, 4, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
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
        m->call = (struct clink_call){
            .method = TS_HOLD, .iov = &m->iov, .iovcnt = 1, .cb = many_cb, .timeout_ms = ts_ms(30000)};
        int ret;
        while ((ret = clink_call_start(conns[i % NCONN], &m->call)) == -CLINK_EAGAIN) {
            usleep(100);
        }
        cr_assert_eq(ret, 0, "start %d: %s", i, clink_strerror(ret));
    }
    /* Every request is now held by the server and none answered: all 10,000 are in flight at once. */
    for (int spin = 0; atomic_load(&ts_server_held) < TOTAL && spin < 3000; spin++) {
        usleep(10000);
    }
    int peak = atomic_load(&ts_server_held);
    int answered_before_release = atomic_load(&done_total);
    struct clink_msg r;
    for (int i = 0; i < NCONN; i++) {
        cr_assert_eq(clink_call_sync(conns[i], TS_RELEASE, NULL, 0, ts_ms(10000), &r), 0);
    }
    for (int spin = 0; atomic_load(&done_total) < TOTAL && spin < 3000; spin++) {
        usleep(10000);
    }

    cr_assert_eq(peak, TOTAL, "server held %d", peak);
    cr_assert_eq(answered_before_release, 0);
    cr_assert_eq(atomic_load(&done_ok), TOTAL, "ok %d bad %d", atomic_load(&done_ok), atomic_load(&done_bad));
    cr_assert_eq(atomic_load(&done_bad), 0);
    struct clink_node_stats st;
    clink_node_get_stats(cli, &st);
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

Test(calls, responses_arrive_out_of_order)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_hold_reverse);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call calls[3];
    uint8_t b = 0;
    struct iovec iov = {.iov_base = &b, .iov_len = 1};

    for (int i = 0; i < 3; i++) {
        calls[i] = (struct clink_call){.method = i < 2 ? TS_HOLD : TS_RELEASE,
                                       .iov = &iov,
                                       .iovcnt = 1,
                                       .cb = order_cb,
                                       .user = (void *)(intptr_t)i};
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

Test(calls, ping_pong)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call call = {.cb = ts_count_cb};

    cr_assert_eq(clink_conn_ping(c, &call), 0);
    int n = ts_wait_count(&ts_cb_count, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    cr_assert_eq(atomic_load(&ts_cb_status), 0);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- a full inbox is reported, never dropped ---- */

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

Test(calls, full_inbox_is_reported_to_the_caller)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node_opts no = {.workers = 1, .tls = tls, .inbox_size = 4};
    struct clink_node *cli;
    cr_assert_eq(clink_node_new(&no, &cli), 0);
    cr_assert_eq(clink_node_start(cli), 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    sem_init(&unblock, 0, 0);
    struct clink_call first = {.method = TS_ECHO, .cb = blocking_cb};
    cr_assert_eq(clink_call_start(c, &first), 0);
    cr_assert_eq(ts_wait_count(&blocked_in_cb, 1, ts_ms(3000)), 1);

    struct clink_call calls[16];
    int accepted = 0, refused = 0;
    for (int i = 0; i < 16; i++) {
        calls[i] = (struct clink_call){.method = TS_ECHO, .cb = ts_count_cb};
        int ret = clink_call_start(c, &calls[i]);
        if (ret == 0) {
            accepted++;
        } else {
            cr_assert_eq(ret, -CLINK_EAGAIN, "%s", clink_strerror(ret));
            refused++;
        }
    }
    struct clink_node_stats st;
    clink_node_get_stats(cli, &st);
    sem_post(&unblock);
    int done = ts_wait_count(&ts_cb_count, accepted, ts_ms(3000));

    cr_assert_eq(accepted, 3, "a ring of 4 holds 3");
    cr_assert_eq(refused, 13);
    cr_assert_eq(st.inbox_full, 13);
    cr_assert_eq(done, accepted, "every accepted call completes");
    cr_assert_eq(atomic_load(&ts_cb_status), 0);
    clink_conn_close(c);
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

Test(calls, a_request_answered_from_another_thread_arrives)
{
    struct clink_node *srv = ts_node(tls, 2, 0, reg_later);
    struct clink_node *cli = ts_client(tls, 2, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, answer_later, NULL), 0);
    struct clink_conn *conns[4];
    for (int i = 0; i < 4; i++) { /* connections spread over both server workers */
        struct clink_connect_opts o = ts_dial(srv, "localhost");
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
    int done = ts_wait_count(&tripled_done, LATER_N, ts_ms(25000));
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
