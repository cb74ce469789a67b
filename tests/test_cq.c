/*
 * Completion queues: an application thread with many calls in flight takes
 * their completions from one queue, waiting in poll() on its eventfd or in
 * clink_cq_next; responses, peer errors, dials and pool calls all arrive,
 * each exactly once, oldest first within a batch.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "clink/cq.h"
#include "clink/pool.h"
#include "tests/support/calls.h"
#include "tests/support/fixture.h"

TestSuite(cq, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

#define NCALLS 64

struct op {
    struct clink_call call;
    struct clink_cq_op cqop;
    struct iovec iov;
    uint32_t v;
};

/* Take `want` operations, sleeping in poll() on the queue's fd between batches. */
static int drain_with_poll(struct clink_cq *cq, struct clink_cq_op **got, int want)
{
    int n = 0;
    while (n < want) {
        struct pollfd p = {.fd = clink_cq_fd(cq), .events = POLLIN};
        if (poll(&p, 1, (int)ts_ms(5000)) != 1) {
            break;
        }
        int k = clink_cq_next(cq, got + n, (unsigned)(want - n), 0);
        cr_assert_geq(k, 0, "%s", clink_strerror(k));
        n += k;
    }
    return n;
}

Test(cq, many_calls_in_flight_complete_through_the_fd)
{
    struct clink_node *srv = ts_node(tls, 2, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 2, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_cq *cq;
    cr_assert_eq(clink_cq_new(&cq), 0);
    static struct op ops[NCALLS];
    for (uint32_t i = 0; i < NCALLS; i++) {
        ops[i].v = i * 7919u;
        ops[i].iov = (struct iovec){.iov_base = &ops[i].v, .iov_len = sizeof(ops[i].v)};
        ops[i].call = (struct clink_call){.method = i == 5 ? TS_FAIL : TS_ECHO, .iov = &ops[i].iov, .iovcnt = 1};
        clink_cq_bind(cq, &ops[i].cqop, &ops[i].call, &ops[i]);
        cr_assert_eq(clink_call_start(c, &ops[i].call), 0);
    }
    struct clink_cq_op *got[NCALLS + 1];

    int n = drain_with_poll(cq, got, NCALLS);

    cr_assert_eq(n, NCALLS);
    int seen[NCALLS] = {0};
    for (int i = 0; i < n; i++) {
        struct op *op = got[i]->tag;
        cr_assert_eq(got[i], &op->cqop);
        int idx = (int)(op - ops);
        seen[idx]++;
        if (idx == 5) {
            cr_assert_eq(got[i]->status, -CLINK_EREMOTE);
            cr_assert_eq(got[i]->resp.len, 4);
            cr_assert_eq(memcmp(got[i]->resp.data, "nope", 4), 0);
        } else {
            cr_assert_eq(got[i]->status, 0, "%d: %s", idx, clink_strerror(got[i]->status));
            cr_assert_eq(got[i]->resp.len, sizeof(uint32_t));
            cr_assert_eq(memcmp(got[i]->resp.data, &op->v, sizeof(uint32_t)), 0);
        }
        clink_msg_free(&got[i]->resp);
    }
    for (int i = 0; i < NCALLS; i++) {
        cr_assert_eq(seen[i], 1, "call %d completed %d times", i, seen[i]);
    }
    cr_assert_eq(clink_cq_next(cq, got, 1, 0), 0, "nothing more");
    clink_cq_free(cq);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(cq, a_partial_batch_leaves_the_fd_readable_and_keeps_the_order)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_cq *cq;
    cr_assert_eq(clink_cq_new(&cq), 0);
    static struct op ops[3];
    for (uint32_t i = 0; i < 3; i++) {
        ops[i].v = i;
        ops[i].iov = (struct iovec){.iov_base = &ops[i].v, .iov_len = sizeof(ops[i].v)};
        ops[i].call = (struct clink_call){.method = TS_ECHO, .iov = &ops[i].iov, .iovcnt = 1};
        clink_cq_bind(cq, &ops[i].cqop, &ops[i].call, &ops[i]);
        cr_assert_eq(clink_call_start(c, &ops[i].call), 0);
    }
    /* One connection, one worker: the answers come in the order of the requests. */
    usleep(ts_ms(300) * 1000); /* all three have completed */
    struct clink_cq_op *got[3];
    int readable[2];

    /* After the last one the fd may be readable once more (clink/cq.h): only the first two are checked. */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(clink_cq_next(cq, got + i, 1, 0), 1, "one at a time");
        struct pollfd p = {.fd = clink_cq_fd(cq), .events = POLLIN};
        if (i < 2) {
            readable[i] = poll(&p, 1, 0);
        }
    }

    cr_assert_eq(readable[0], 1, "two left: the fd stays readable");
    cr_assert_eq(readable[1], 1, "one left: the fd stays readable");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(got[i]->tag, &ops[i], "completion order");
        clink_msg_free(&got[i]->resp);
    }
    cr_assert_eq(clink_cq_next(cq, got, 3, 50), 0, "the wait times out empty");
    clink_cq_free(cq);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(cq, dials_and_pool_calls_complete_through_the_queue)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_cq *cq;
    cr_assert_eq(clink_cq_new(&cq), 0);
    struct clink_connect_opts good = ts_dial(srv, "localhost");
    struct clink_connect_opts wrong = ts_dial(srv, "not-this-node.example");
    static char tag_good[] = "good", tag_wrong[] = "wrong", tag_pool[] = "pool", body[] = "pool";
    struct clink_cq_op d1, d2;
    cr_assert_eq(clink_cq_connect(cli, &good, cq, &d1, tag_good), 0);
    cr_assert_eq(clink_cq_connect(cli, &wrong, cq, &d2, tag_wrong), 0);
    struct clink_cluster_opts co = {.node = cli};
    struct clink_cluster *cl;
    cr_assert_eq(clink_cluster_new(&co, &cl), 0);
    struct clink_peer p = {
        .name = "leaf1", .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost"};
    cr_assert_eq(clink_cluster_add(cl, &p), 0);
    struct clink_pool *pool = clink_cluster_pool(cl, "leaf1");
    struct iovec iov = {.iov_base = body, .iov_len = 4};
    struct clink_pool_call pc = {.call = {.method = TS_ECHO, .iov = &iov, .iovcnt = 1, .timeout_ms = ts_ms(5000)}};
    struct clink_cq_op pop;
    clink_cq_bind(cq, &pop, &pc.call, tag_pool);
    cr_assert_eq(clink_pool_call_start(pool, &pc), 0);
    struct clink_cq_op *got[4];

    int n = 0;
    while (n < 3) {
        int k = clink_cq_next(cq, got + n, 4 - n, (int)ts_ms(5000));
        cr_assert_gt(k, 0, "timed out after %d", n);
        n += k;
    }

    cr_assert_eq(n, 3);
    cr_assert_eq(d1.status, 0, "%s", clink_strerror(d1.status));
    cr_assert_not_null(d1.conn);
    cr_assert_eq(d2.status, -CLINK_EVERIFY, "%s", clink_strerror(d2.status));
    cr_assert_null(d2.conn);
    cr_assert_gt(d2.resp.len, 1, "the reason in words");
    cr_assert_eq(pop.status, 0, "%s", clink_strerror(pop.status));
    cr_assert_eq(pop.resp.len, 4);
    cr_assert_eq(memcmp(pop.resp.data, "pool", 4), 0);
    clink_msg_free(&d2.resp);
    clink_msg_free(&pop.resp);
    clink_conn_close(d1.conn);
    clink_pool_release(pool);
    clink_cluster_free(cl);
    clink_cq_free(cq);
    clink_node_free(cli);
    clink_node_free(srv);
}
