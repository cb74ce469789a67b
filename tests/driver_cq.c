/*
 * Completion queues under ThreadSanitizer (a plain program: Criterion's
 * runner aborts under TSan). Exit 0 on success, 1 on failure.
 *
 * Many producers, one consumer: 4 client workers complete calls on 8
 * connections into one queue, which the main thread drains (half the time
 * in clink_cq_next's wait, half in poll() on the fd), starting a new call
 * for each one it takes, until DRV_N calls (default 20000) have completed.
 * Every call must complete exactly once with its own payload.
 *
 * DRV_BENCH=1 also times the completion paths (see docs/threading.md):
 * one call at a time, clink_call_sync (a mutex and condvar per call)
 * against the queue; then WINDOW calls in flight, WINDOW threads in
 * clink_call_sync against one thread with the queue.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clink/cq.h"
#include "tests/support/support.h"

#define NCONN  8
#define WINDOW 32

static atomic_int failures;
#define EXPECT(cond, ...)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

struct op {
    struct clink_call call;
    struct clink_cq_op cqop;
    struct iovec iov;
    uint64_t seq; /* the payload: which call this is */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int start(struct clink_cq *cq, struct clink_conn *c, struct op *op, uint64_t seq)
{
    op->seq = seq;
    op->iov = (struct iovec){.iov_base = &op->seq, .iov_len = sizeof(op->seq)};
    op->call = (struct clink_call){.method = TS_ECHO, .iov = &op->iov, .iovcnt = 1, .timeout_ms = 30000};
    clink_cq_bind(cq, &op->cqop, &op->call, op);
    return clink_call_start(c, &op->call);
}

/* Keep `window` calls in flight over conns until total have completed; returns how many did. */
static long run_queue(struct clink_conn **conns, unsigned nconn, unsigned window, long total, int use_poll,
                      unsigned char *seen)
{
    struct clink_cq *cq;
    if (clink_cq_new(&cq) != 0) {
        return -1;
    }
    struct op *ops = calloc(window, sizeof(*ops));
    long started = 0, done = 0;
    for (unsigned i = 0; i < window && started < total; i++, started++) {
        EXPECT(start(cq, conns[i % nconn], &ops[i], (uint64_t)started) == 0, "start %ld", started);
    }
    struct clink_cq_op *got[64];
    while (done < started) {
        int n;
        if (use_poll && (done & 1024)) {
            struct pollfd p = {.fd = clink_cq_fd(cq), .events = POLLIN};
            if (poll(&p, 1, 10000) != 1) {
                EXPECT(0, "poll timed out with %ld of %ld done", done, started);
                break;
            }
            n = clink_cq_next(cq, got, 64, 0);
        } else {
            n = clink_cq_next(cq, got, 64, 10000);
            if (n == 0) {
                EXPECT(0, "wait timed out with %ld of %ld done", done, started);
                break;
            }
        }
        EXPECT(n >= 0, "next: %s", clink_strerror(n));
        for (int i = 0; i < n; i++) {
            struct op *op = got[i]->tag;
            EXPECT(got[i]->status == 0, "call %llu: %s", (unsigned long long)op->seq, clink_strerror(got[i]->status));
            EXPECT(got[i]->resp.len == sizeof(op->seq) && memcmp(got[i]->resp.data, &op->seq, sizeof(op->seq)) == 0,
                   "call %llu: wrong payload", (unsigned long long)op->seq);
            if (seen != NULL) {
                seen[op->seq]++;
            }
            clink_msg_free(&got[i]->resp);
            done++;
            if (started < total) {
                size_t idx = (size_t)(op - ops);
                EXPECT(start(cq, conns[idx % nconn], op, (uint64_t)started) == 0, "start %ld", started);
                started++;
            }
        }
    }
    free(ops);
    clink_cq_free(cq);
    return done;
}

struct sync_arg {
    struct clink_conn *conn;
    long n;
};

static void *sync_thread(void *arg)
{
    struct sync_arg *a = arg;
    for (long i = 0; i < a->n; i++) {
        struct clink_msg m;
        uint64_t v = (uint64_t)i;
        EXPECT(clink_call_sync(a->conn, TS_ECHO, &v, sizeof(v), 30000, &m) == 0, "sync call");
        clink_msg_free(&m);
    }
    return NULL;
}

static double run_sync(struct clink_conn **conns, unsigned nconn, unsigned threads, long total)
{
    pthread_t th[WINDOW];
    struct sync_arg args[WINDOW];
    double t0 = now_s();
    for (unsigned i = 0; i < threads; i++) {
        args[i] = (struct sync_arg){.conn = conns[i % nconn], .n = total / threads};
        pthread_create(&th[i], NULL, sync_thread, &args[i]);
    }
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    return now_s() - t0;
}

static void bench(struct clink_conn **conns, unsigned nconn, long total)
{
    for (int round = 0; round < 3; round++) {
        double ts1 = run_sync(conns, 1, 1, total);
        double t0 = now_s();
        long d = run_queue(conns, 1, 1, total, 0, NULL);
        double tq1 = now_s() - t0;
        double tsw = run_sync(conns, nconn, WINDOW, total);
        t0 = now_s();
        d += run_queue(conns, nconn, WINDOW, total, 0, NULL);
        double tqw = now_s() - t0;
        printf("{\"bench\":\"cq_vs_sync\",\"calls\":%ld,\"one_in_flight\":{\"sync_us\":%.1f,\"cq_us\":%.1f},"
               "\"window_%d\":{\"sync_threads_calls_per_s\":%.0f,\"cq_one_thread_calls_per_s\":%.0f},\"done\":%ld}\n",
               total, ts1 / (double)total * 1e6, tq1 / (double)total * 1e6, WINDOW, (double)total / tsw,
               (double)total / tqw, d);
    }
}

int main(void)
{
    long total = getenv("DRV_N") ? atol(getenv("DRV_N")) : 20000;
    struct ts_pki pki;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_node *srv = ts_node(tls, 4, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 4, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost"};
    struct clink_conn *conns[NCONN];
    for (int i = 0; i < NCONN; i++) {
        char err[256];
        int ret = clink_connect_sync(cli, &o, &conns[i], err, sizeof(err));
        if (ret != 0) {
            fprintf(stderr, "connect: %s\n", err);
            return 1;
        }
    }

    unsigned char *seen = calloc((size_t)total, 1);
    long done = run_queue(conns, NCONN, 128, total, 1, seen);
    EXPECT(done == total, "%ld of %ld completed", done, total);
    for (long i = 0; i < total; i++) {
        EXPECT(seen[i] == 1, "call %ld completed %u times", i, seen[i]);
        if (seen[i] != 1) {
            break;
        }
    }
    free(seen);
    if (getenv("DRV_BENCH") != NULL) {
        bench(conns, NCONN, total);
    }

    for (int i = 0; i < NCONN; i++) {
        clink_conn_close(conns[i]);
    }
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
    if (failures == 0) {
        printf("driver_cq: %ld calls through one queue from 4 workers: ok\n", total);
    }
    return failures ? 1 : 0;
}
