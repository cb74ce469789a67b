/*
 * Soak: connections and calls churned across 4 workers at each end for a
 * while (CLINK_SOAK_SECONDS, default 10; CI runs a minute under ASan+UBSan
 * and under TSan), as a plain program because Criterion cannot run under
 * TSan. At once:
 *   - 4 threads call through a pool (echo, 0 to 64 KiB, payload checked);
 *   - 2 threads dial and close connections, TLS and plaintext, some with
 *     calls still in flight, some with calls cancelled or left to expire;
 *   - 1 thread reloads the server's TLS context every 200 ms.
 * Then everything is shut down and the books must balance: every call got
 * exactly one completion; the nodes' counters agree (started == ok +
 * failed, nothing open); the server handled at least every call that
 * succeeded. Leaks: LeakSanitizer at exit (ASan build). Races: TSan.
 * Exit 0 on success.
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double until;
static struct clink_pool *pool;
static struct clink_node *srv, *cli;
static struct ts_pki pki;
static atomic_ulong pool_ok, pool_failed, wrong, churn_conns, churn_calls, cb_runs, cb_expected, twice, cancels;

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)(seed + i * 131);
    }
}

static void *pool_caller(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u;
    uint8_t *buf = malloc(65536);
    while (now_s() < until) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 8) % 4 == 0 ? (seed >> 12) % 65536 : (seed >> 12) % 512;
        fill(buf, n, seed);
        struct clink_msg r;
        int ret = clink_pool_call_sync(pool, TS_ECHO, buf, n, ts_ms(5000), &r);
        if (ret == 0) {
            if (r.len != n || (n && memcmp(r.data, buf, n) != 0)) {
                atomic_fetch_add(&wrong, 1);
            }
            clink_msg_free(&r);
            atomic_fetch_add(&pool_ok, 1);
        } else {
            atomic_fetch_add(&pool_failed, 1);
        }
    }
    free(buf);
    return NULL;
}

/* An async call whose completion is counted: exactly one per accepted start. */
struct counted {
    struct clink_call call;
    struct iovec iov;
    uint8_t data[64];
    atomic_int done;
};

static void counted_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)status;
    (void)resp;
    (void)len;
    struct counted *c = (struct counted *)call;
    if (atomic_fetch_add(&c->done, 1) != 0) {
        atomic_fetch_add(&twice, 1);
    }
    atomic_fetch_add(&cb_runs, 1);
}

static void *churner(void *arg)
{
    int id = (int)(uintptr_t)arg;
    unsigned seed = 17u + (unsigned)id;
    enum { N = 8 };
    struct counted *calls = calloc(N, sizeof(*calls));
    while (now_s() < until) {
        seed = seed * 1103515245u + 12345u;
        int plain = (seed >> 9) % 4 == 0;
        struct clink_connect_opts o = {.host = "127.0.0.1",
                                       .port = clink_node_port(srv),
                                       .expected_name = "localhost",
                                       .ssl_mode = plain ? CLINK_SSL_DISABLED : CLINK_SSL_VERIFY_IDENTITY};
        struct clink_conn *c = NULL;
        char err[256];
        if (clink_connect_sync(cli, &o, &c, err, sizeof(err)) != 0) {
            continue; /* a reload in progress, a full queue: the books only count what started */
        }
        atomic_fetch_add(&churn_conns, 1);
        int started = 0;
        for (int i = 0; i < N; i++) {
            struct counted *k = &calls[i];
            memset(k, 0, sizeof(*k));
            fill(k->data, sizeof(k->data), seed + (unsigned)i);
            k->iov = (struct iovec){.iov_base = k->data, .iov_len = sizeof(k->data)};
            k->call = (struct clink_call){.method = TS_ECHO,
                                          .iov = &k->iov,
                                          .iovcnt = 1,
                                          .cb = counted_cb,
                                          /* some expire before they can be answered */
                                          .timeout_ms = (seed >> 4) % 5 == 0 ? 1 : ts_ms(5000)};
            if (clink_call_start(c, &k->call) == 0) {
                atomic_fetch_add(&cb_expected, 1);
                started++;
            } else {
                atomic_store(&k->done, 1); /* not started: no completion is owed */
            }
        }
        atomic_fetch_add(&churn_calls, (unsigned long)started);
        switch ((seed >> 16) % 3) {
        case 0: /* close at once, calls in flight */
            break;
        case 1: /* cancel some */
            for (int i = 0; i < N; i += 2) {
                if (clink_call_cancel(&calls[i].call) == 0) {
                    atomic_fetch_add(&cancels, 1);
                }
            }
            break;
        default: /* let them finish */
            for (int i = 0; i < N; i++) {
                for (int k = 0; k < 5000 && !atomic_load(&calls[i].done); k++) {
                    usleep(1000);
                }
            }
            break;
        }
        clink_conn_close(c);
        /* The calls' memory is ours again only after each completion ran. */
        for (int i = 0; i < N; i++) {
            for (int k = 0; k < 10000 && !atomic_load(&calls[i].done); k++) {
                usleep(1000);
            }
            TS_REQUIRE(atomic_load(&calls[i].done), "a call on a closed connection never completed");
        }
    }
    free(calls);
    return NULL;
}

static void *reloader(void *arg)
{
    (void)arg;
    while (now_s() < until) {
        struct clink_tls_ctx *t = ts_tls(pki.node_cert, pki.node_key, pki.ca);
        TS_REQUIRE(clink_node_reload_tls(srv, t) == 0, "reload");
        clink_tls_ctx_free(t);
        usleep(200000);
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    double secs = getenv("CLINK_SOAK_SECONDS") ? atof(getenv("CLINK_SOAK_SECONDS")) : 10;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    srv = ts_node(tls, 4, 1, ts_register_echo);
    cli = ts_client(tls, 4, 1);
    struct clink_cluster_opts co = {
        .node = cli, .pool = {.min_conns = 2, .max_conns = 6, .max_calls_per_conn = 4, .max_waiting = 100000}};
    struct clink_cluster *cl;
    TS_REQUIRE(clink_cluster_new(&co, &cl) == 0, "cluster");
    struct clink_peer peer = {
        .name = "leaf", .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost"};
    TS_REQUIRE(clink_cluster_add(cl, &peer) == 0, "add");
    pool = clink_cluster_pool(cl, "leaf");

    until = now_s() + secs;
    pthread_t th[7];
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, pool_caller, (void *)(uintptr_t)(i + 1));
    }
    pthread_create(&th[4], NULL, churner, (void *)(uintptr_t)1);
    pthread_create(&th[5], NULL, churner, (void *)(uintptr_t)2);
    pthread_create(&th[6], NULL, reloader, NULL);
    for (int i = 0; i < 7; i++) {
        pthread_join(th[i], NULL);
    }

    struct clink_pool_stats ps;
    clink_pool_get_stats(pool, &ps);
    clink_pool_release(pool);
    clink_cluster_free(cl);
    /* Every connection of ours is closed: the server must see none left open. */
    struct clink_node_stats ss, cs;
    for (int i = 0; i < 500; i++) {
        clink_node_get_stats(srv, &ss);
        if (ss.conns_open == 0) {
            break;
        }
        usleep(10000);
    }
    clink_node_get_stats(cli, &cs);
    TS_REQUIRE(clink_node_shutdown(cli, 1000) == 0, "client shutdown");
    TS_REQUIRE(clink_node_shutdown(srv, 1000) == 0, "server shutdown");
    clink_node_get_stats(cli, &cs);

    unsigned long ok = atomic_load(&pool_ok), failed = atomic_load(&pool_failed);
    printf("soak %.0f s: pool calls %lu ok, %lu failed; churn %lu connections, %lu calls (%lu cancelled); "
           "client calls %llu = %llu ok + %llu failed; server handled %llu, reloads %llu, resumed %llu\n",
           secs, ok, failed, atomic_load(&churn_conns), atomic_load(&churn_calls), atomic_load(&cancels),
           (unsigned long long)cs.calls_started, (unsigned long long)cs.calls_ok, (unsigned long long)cs.calls_failed,
           (unsigned long long)ss.requests_handled, (unsigned long long)ss.tls_reloads,
           (unsigned long long)ss.handshakes_resumed);
    int bad = 0;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                                                     \
            fprintf(stderr, "\n");                                                                                     \
            bad = 1;                                                                                                   \
        }                                                                                                              \
    } while (0)
    CHECK(atomic_load(&wrong) == 0, "%lu answers carried the wrong payload", atomic_load(&wrong));
    CHECK(atomic_load(&twice) == 0, "%lu calls completed twice", atomic_load(&twice));
    CHECK(atomic_load(&cb_runs) == atomic_load(&cb_expected), "%lu completions for %lu calls started",
          atomic_load(&cb_runs), atomic_load(&cb_expected));
    CHECK(failed == 0, "%lu pool calls failed with nothing wrong with the leaf", failed);
    CHECK(ok > 0 && atomic_load(&churn_conns) > 0, "nothing ran");
    CHECK(cs.calls_started == cs.calls_ok + cs.calls_failed, "client node: %llu started != %llu ok + %llu failed",
          (unsigned long long)cs.calls_started, (unsigned long long)cs.calls_ok, (unsigned long long)cs.calls_failed);
    CHECK(cs.calls_ok >= ok, "client node counts %llu ok calls, the callers saw %lu", (unsigned long long)cs.calls_ok,
          ok);
    CHECK(ss.requests_handled >= cs.calls_ok, "the server handled %llu requests, the client got %llu answers",
          (unsigned long long)ss.requests_handled, (unsigned long long)cs.calls_ok);
    CHECK(ss.conns_open == 0, "the server still has %llu connections open", (unsigned long long)ss.conns_open);
    CHECK(cs.conns_open == 0, "the client still has %llu connections open", (unsigned long long)cs.conns_open);
    CHECK(ps.calls_started == ps.calls_ok + ps.failed_unavailable + ps.failed_timeout + ps.failed_closed +
                                  ps.failed_remote + ps.failed_other + ps.calls_in_flight + ps.calls_waiting,
          "pool: %llu started, %llu ok, failures and in flight do not add up", (unsigned long long)ps.calls_started,
          (unsigned long long)ps.calls_ok);
    CHECK(ss.tls_reloads > 0, "no reload happened");

    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
    printf("%s\n", bad ? "soak: FAILED" : "soak: ok");
    return bad;
}
