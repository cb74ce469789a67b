/*
 * Many application threads calling through one pool at once, as a plain
 * program so that it runs under ThreadSanitizer: 6 threads x N sync calls
 * while the pool grows, then the leaf restarts under load (calls fail or
 * succeed, each exactly once, and the pool comes back). Exit 0 on success.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/pool.h"
#include "tests/support/support.h"

#define THREADS 6
#define PER     (getenv("DRV_N") ? atoi(getenv("DRV_N")) : 1500)

static struct clink_pool *pool;
static atomic_int ok, failed, wrong, stop;

static void *caller(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n && !atomic_load(&stop); i++) {
        char buf[16];
        int len = snprintf(buf, sizeof(buf), "%d", i);
        struct clink_msg r;
        int ret = clink_pool_call_sync(pool, TS_ECHO, buf, (size_t)len, ts_ms(5000), &r);
        if (ret == 0) {
            if (r.len != (size_t)len || memcmp(r.data, buf, r.len) != 0) {
                fprintf(stderr, "FAIL: wrong answer\n");
                atomic_fetch_add(&wrong, 1);
            }
            clink_msg_free(&r);
            atomic_fetch_add(&ok, 1);
        } else {
            atomic_fetch_add(&failed, 1);
        }
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* in order with the log on stderr */
    struct ts_pki pki;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_node *leaf = ts_node(tls, 2, 0, ts_register_echo);
    uint16_t port = clink_node_port(leaf);
    struct clink_node *agg = ts_client(tls, 3, 0);
    struct clink_cluster_opts co = {.node = agg,
                                    .log = getenv("DRV_LOG") ? clink_log_stderr : NULL,
                                    .log_level = CLINK_LOG_INFO,
                                    .pool = {.min_conns = 1,
                                             .max_conns = 4,
                                             .max_calls_per_conn = 2,
                                             .backoff_min_ms = 10,
                                             .backoff_max_ms = 50,
                                             .max_waiting = 100000}};
    struct clink_cluster *cl;
    TS_REQUIRE(clink_cluster_new(&co, &cl) == 0, "cluster");
    struct clink_peer peer = {.name = "leaf1", .host = "127.0.0.1", .port = port, .expected_name = "localhost"};
    TS_REQUIRE(clink_cluster_add(cl, &peer) == 0, "add");
    TS_REQUIRE(clink_cluster_idempotent(cl, TS_ECHO) == 0, "idempotent");
    pool = clink_cluster_pool(cl, "leaf1");

    /* 1: steady, many threads. */
    int per = PER;
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        pthread_create(&th[t], NULL, caller, &per);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    struct clink_pool_stats s;
    clink_pool_get_stats(pool, &s);
    int bad = atomic_load(&failed) != 0 || atomic_load(&ok) != THREADS * per || s.conns_open > 4 ||
              s.handshakes_full + s.handshakes_resumed > 4; /* no churn: one handshake per connection */
    printf("pool driver 1: %d calls from %d threads, %u connections, %llu handshakes (%llu recycles, %llu failed "
           "pings, %llu reconnects)\n",
           atomic_load(&ok), THREADS, s.conns_open, (unsigned long long)(s.handshakes_full + s.handshakes_resumed),
           (unsigned long long)s.recycles, (unsigned long long)s.pings_failed, (unsigned long long)s.reconnects);

    /* 2: the leaf restarts while the threads call. */
    atomic_store(&ok, 0);
    atomic_store(&failed, 0);
    int forever = 1 << 30;
    for (int t = 0; t < THREADS; t++) {
        pthread_create(&th[t], NULL, caller, &forever);
    }
    /*
     * Whether a call is on the wire at the instant the leaf goes is timing:
     * up to three restarts, until one caught calls in flight (they must be
     * retried) and the pool recovered from each.
     */
    int recovered = 1;
    for (int round = 0; round < 3 && recovered && (round == 0 || s.retries == 0); round++) {
        usleep(100000);
        clink_node_free(leaf);
        usleep(100000);
        struct clink_node_opts lo = {.workers = 2, .tls = tls, .handshake_timeout_ms = ts_ms(5000)};
        TS_REQUIRE(clink_node_new(&lo, &leaf) == 0, "leaf again");
        ts_register_echo(leaf);
        TS_REQUIRE(clink_node_listen(leaf, "127.0.0.1", port) == 0, "listen again");
        TS_REQUIRE(clink_node_start(leaf) == 0, "start again");
        int before = atomic_load(&ok);
        for (int i = 0; i < 200 && atomic_load(&ok) < before + 500; i++) {
            usleep(20000);
        }
        recovered = atomic_load(&ok) >= before + 500;
        clink_pool_get_stats(pool, &s);
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    clink_pool_get_stats(pool, &s);
    printf("pool driver 2: leaf restarted under load: %d ok, %d failed, recovered %s, %llu resumed of %llu "
           "handshakes, %llu idempotent calls retried\n",
           atomic_load(&ok), atomic_load(&failed), recovered ? "yes" : "NO", (unsigned long long)s.handshakes_resumed,
           (unsigned long long)(s.handshakes_full + s.handshakes_resumed), (unsigned long long)s.retries);
    /* Echo is marked idempotent: the calls in flight when the leaf went away were retried. */
    bad = bad || !recovered || atomic_load(&wrong) != 0 || s.retries == 0;

    clink_pool_release(pool);
    clink_cluster_free(cl);
    clink_node_free(agg);
    clink_node_free(leaf);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
    printf("%s\n", bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
