/*
 * Calls made from the wrong thread: a handler (on a worker) that calls a
 * blocking helper gets -CLINK_EWOULDBLOCK at once instead of waiting for a
 * completion only its own worker could deliver. On a 1-worker node each of
 * these used to hang the node for good.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clink/cq.h"
#include "clink/pool.h"
#include "clink/transport.h"
#include "tests/support/calls.h"
#include "tests/support/fixture.h"

/* A hang would otherwise end only at Criterion's timeout: that is the failure. */
TestSuite(misuse, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

#define NEST 30

/* What the handler needs: set before the first request, read on the worker. */
static struct clink_cluster *g_cluster;
static struct clink_pool *g_pool;
static struct clink_node *g_agg;
static uint16_t g_leaf_port;
static struct clink_cq *g_cq;

enum { ST_POOL, ST_FANOUT, ST_CONNECT, ST_CALL, ST_CQ_WAIT, ST_LINKS, ST_SECURE, ST_SHUTDOWN, ST_N };
static atomic_int g_cq_poll = 1;
static atomic_int g_status[ST_N];
static atomic_int g_zeroed; /* every out-parameter was cleared */
static atomic_int g_handled;

static void nest_handler(struct clink_req *req, void *user)
{
    (void)user;
    int zeroed = 1;
    uint8_t junk = 0;

    struct clink_msg m = {.data = &junk, .len = 1};
    atomic_store(&g_status[ST_POOL], clink_pool_call_sync(g_pool, TS_ECHO, "x", 1, 500, &m));
    zeroed &= m.data == NULL && m.len == 0;

    struct clink_fanout_result *res = (struct clink_fanout_result *)&junk;
    size_t n = 7;
    atomic_store(&g_status[ST_FANOUT],
                 clink_cluster_fanout(g_cluster, CLINK_ROLE_LEAF, NULL, TS_ECHO, "x", 1, 500, &res, &n));
    zeroed &= res == NULL && n == 0;

    struct clink_connect_opts o = {.host = "127.0.0.1", .port = g_leaf_port, .expected_name = "localhost"};
    struct clink_conn *c = (struct clink_conn *)&junk;
    char err[256] = "";
    atomic_store(&g_status[ST_CONNECT], clink_connect_sync(g_agg, &o, &c, err, sizeof(err)));
    zeroed &= c == NULL && strstr(err, "clink_connect") != NULL;

    m = (struct clink_msg){.data = &junk, .len = 1};
    atomic_store(&g_status[ST_CALL], clink_call_sync(clink_req_conn(req), TS_ECHO, "x", 1, 500, &m));
    zeroed &= m.data == NULL && m.len == 0;

    struct clink_cq_op *ops[1];
    atomic_store(&g_status[ST_CQ_WAIT], clink_cq_next(g_cq, ops, 1, 500));
    atomic_store(&g_cq_poll, clink_cq_next(g_cq, ops, 1, 0)); /* a poll does not block: allowed */

    /* Calls that wait for every worker, this one included. */
    struct clink_conn_status *links = NULL;
    size_t nlinks = 0;
    atomic_store(&g_status[ST_LINKS], clink_node_links(g_agg, &links, &nlinks));
    free(links);
    atomic_store(&g_status[ST_SECURE], clink_node_set_secure_transport(g_agg, CLINK_SECURE_REQUIRE_TLS));
    atomic_store(&g_status[ST_SHUTDOWN], clink_node_shutdown(g_agg, 0));

    atomic_store(&g_zeroed, zeroed);
    atomic_fetch_add(&g_handled, 1);
    CLINK_IGNORE(clink_req_respond(req, NULL, 0));
}

/* What the node and the cluster logged: each refusal names the call to use instead. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char logged[4096];

static void capture(void *user, enum clink_log_level level, const char *module, uint64_t conn_id, const char *fmt,
                    va_list ap)
{
    (void)user;
    (void)level;
    (void)module;
    (void)conn_id;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof(logged) - n, "%s\n", line);
    pthread_mutex_unlock(&log_mu);
}

static void register_nest(struct clink_node *n)
{
    cr_assert_eq(clink_node_register(n, NEST, nest_handler, NULL), 0);
}

Test(misuse, blocking_calls_on_a_worker_return_at_once)
{
    struct clink_node *leaf = ts_node(tls, 1, 0, ts_register_echo);
    g_leaf_port = clink_node_port(leaf);
    struct clink_node_opts ao = {.workers = 1, .tls = tls, .log = capture};
    g_agg = ts_node_with(&ao, register_nest);
    struct clink_cluster_opts co = {.node = g_agg, .log = capture};
    cr_assert_eq(clink_cluster_new(&co, &g_cluster), 0);
    struct clink_peer p = {.name = "leaf1", .host = "127.0.0.1", .port = g_leaf_port, .expected_name = "localhost"};
    cr_assert_eq(clink_cluster_add(g_cluster, &p), 0);
    g_pool = clink_cluster_pool(g_cluster, "leaf1");
    cr_assert_not_null(g_pool);
    struct clink_msg warm;
    cr_assert_eq(clink_pool_call_sync(g_pool, TS_ECHO, "w", 1, ts_ms(5000), &warm), 0, "the pool is up");
    clink_msg_free(&warm);
    cr_assert_eq(clink_cq_new(&g_cq), 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(g_agg, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);

    struct clink_msg resp;
    int ret = clink_call_sync(c, NEST, NULL, 0, ts_ms(5000), &resp);

    cr_assert_eq(ret, 0, "the handler answered: %s", clink_strerror(ret));
    cr_assert_eq(atomic_load(&g_handled), 1);
    const char *names[ST_N] = {"clink_pool_call_sync",
                               "clink_cluster_fanout",
                               "clink_connect_sync",
                               "clink_call_sync",
                               "clink_cq_next waiting",
                               "clink_node_links",
                               "clink_node_set_secure_transport",
                               "clink_node_shutdown"};
    for (int i = 0; i < ST_N; i++) {
        cr_assert_eq(atomic_load(&g_status[i]), -CLINK_EWOULDBLOCK, "%s on a worker: %s", names[i],
                     clink_strerror(atomic_load(&g_status[i])));
    }
    cr_assert_eq(atomic_load(&g_cq_poll), 0);
    pthread_mutex_lock(&log_mu);
    cr_assert_not_null(
        strstr(logged, "clink_pool_call_sync called on a worker thread: refused, use clink_pool_call_start"), "%s",
        logged);
    cr_assert_not_null(strstr(logged, "use clink_cluster_fanout_start"), "%s", logged);
    cr_assert_not_null(strstr(logged, "use clink_connect"), "%s", logged);
    cr_assert_not_null(strstr(logged, "use clink_call_start"), "%s", logged);
    pthread_mutex_unlock(&log_mu);
    cr_assert_eq(atomic_load(&g_zeroed), 1, "out-parameters cleared before the check");
    cr_assert_eq(clink_err_kind_of(-CLINK_EWOULDBLOCK), CLINK_KIND_USAGE);
    cr_assert_not_null(strstr(clink_strerror(-CLINK_EWOULDBLOCK), "clink_pool_call_start"));
    cr_assert_not_null(strstr(clink_strerror(-CLINK_EWOULDBLOCK), "clink_cluster_fanout_start"));
    cr_assert_eq(clink_thread_is_worker(), 0);
    clink_msg_free(&resp);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_pool_release(g_pool);
    clink_cluster_free(g_cluster);
    clink_node_free(g_agg);
    clink_node_free(leaf);
    clink_cq_free(g_cq);
}
