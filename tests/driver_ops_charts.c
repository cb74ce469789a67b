/*
 * The ops page's charts under ThreadSanitizer, as a plain program: four
 * application threads call through a pool (their completions count
 * latencies on the workers and in the pool), one thread draws the page over
 * and over, the sampler thread ticks each second and a test thread ticks
 * off schedule, while the cluster is taken away from the endpoint and
 * given back. At the end the page's charts must show the calls. Exit 0 on
 * success.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/ops.h"
#include "clink/pool.h"
#include "ops/ops_int.h"
#include "ops/samples.h"
#include "tests/support/support.h"

#define CALLERS 4

static struct clink_cluster *cl;
static struct clink_ops *ops;
static atomic_int stop, calls_ok, pages;

static void *caller(void *arg)
{
    (void)arg;
    struct clink_pool *p = clink_cluster_pool(cl, "leaf1");
    TS_REQUIRE(p != NULL, "no pool");
    while (!atomic_load(&stop)) {
        struct clink_msg r;
        if (clink_pool_call_sync(p, TS_ECHO, "abc", 3, ts_ms(5000), &r) == 0) {
            atomic_fetch_add(&calls_ok, 1);
        }
        clink_msg_free(&r);
    }
    clink_pool_release(p);
    return NULL;
}

static void *drawer(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        char *page = NULL;
        size_t len = 0;
        TS_REQUIRE(clink_ops_render(ops, "page", &page, &len) == 0, "render");
        TS_REQUIRE(strstr(page, "id=\"chart-node-calls\"") != NULL, "no chart");
        free(page);
        atomic_fetch_add(&pages, 1);
        usleep(20000);
    }
    return NULL;
}

static void *ticker(void *arg)
{
    (void)arg;
    for (int i = 0; !atomic_load(&stop); i++) {
        clink__sampler_tick(clink__ops_sampler(ops));
        if (i % 10 == 5) {
            clink_ops_set_cluster(ops, NULL); /* the sampler lets go of it, the peers' histories go */
            usleep(30000);
            clink_ops_set_cluster(ops, cl);
        }
        usleep(150000);
    }
    return NULL;
}

int main(void)
{
    struct ts_pki pki;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca), *https = NULL;
    char err[256];
    struct clink_tls_opts ho = {.cert_file = pki.node_cert, .key_file = pki.node_key};
    TS_REQUIRE(clink_tls_ctx_new_https(&ho, &https, err, sizeof(err)) == 0, "%s", err);
    struct clink_node *leaf = ts_node(tls, 2, 0, ts_register_echo), *agg = NULL;
    struct clink_node_opts o = {.workers = 2, .tls = tls, .handshake_timeout_ms = ts_ms(5000)};
    TS_REQUIRE(clink_node_new(&o, &agg) == 0, "agg");
    struct clink_ops_opts oo = {.node = agg, .tls = https, .name = "agg"};
    TS_REQUIRE(clink_ops_new(&oo, &ops) == 0, "ops");
    TS_REQUIRE(clink_node_start(agg) == 0, "start");
    struct clink_cluster_opts co = {.node = agg};
    TS_REQUIRE(clink_cluster_new(&co, &cl) == 0, "cluster");
    struct clink_peer peer = {
        .name = "leaf1", .host = "127.0.0.1", .port = clink_node_port(leaf), .expected_name = "localhost"};
    TS_REQUIRE(clink_cluster_add(cl, &peer) == 0, "add");
    clink_ops_set_cluster(ops, cl);

    pthread_t t[CALLERS + 2];
    for (int i = 0; i < CALLERS; i++) {
        pthread_create(&t[i], NULL, caller, NULL);
    }
    pthread_create(&t[CALLERS], NULL, drawer, NULL);
    pthread_create(&t[CALLERS + 1], NULL, ticker, NULL);
    sleep(4);
    atomic_store(&stop, 1);
    for (int i = 0; i < CALLERS + 2; i++) {
        pthread_join(t[i], NULL);
    }
    clink__sampler_tick(clink__ops_sampler(ops));

    struct clink__samples *s = clink__sampler_samples(clink__ops_sampler(ops));
    pthread_mutex_lock(&s->mu);
    double sum = 0;
    for (unsigned k = 0; k < s->node.n; k++) {
        sum += clink__samples_at(s, &s->node, CLINK__S_CALLS, k);
    }
    unsigned n = s->node.n;
    pthread_mutex_unlock(&s->mu);
    int ok = atomic_load(&calls_ok);
    printf("driver_ops_charts: %d calls, %d pages drawn, %u samples, %.0f calls in the node's ring\n", ok,
           atomic_load(&pages), n, sum);
    TS_REQUIRE(ok > 100 && atomic_load(&pages) > 10 && n >= 4, "too little happened");
    /*
     * Every call finished inside the sampled window, so the ring's seconds
     * add up to them (pings are not calls); about, not exactly: a tick that
     * comes 1.3 s after the last writes one second of count / 1.3.
     */
    TS_REQUIRE(sum >= ok * 0.75 && sum <= ok * 1.25 + CALLERS, "the ring counted %.0f calls of %d", sum, ok);

    clink_ops_set_cluster(ops, NULL);
    clink_cluster_free(cl);
    TS_REQUIRE(clink_node_shutdown(agg, 0) == 0, "shutdown");
    clink_ops_free(ops);
    clink_node_free(agg);
    clink_node_free(leaf);
    clink_tls_ctx_free(tls);
    clink_tls_ctx_free(https);
    ts_pki_remove(&pki);
    printf("driver_ops_charts: ok\n");
    return 0;
}
