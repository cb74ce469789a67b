#include "tests/attacks/harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/attacks/raw.h"

struct settings cfg = {.hs_timeout_ms = 2000, .workers = 2, .hs_cap = 32, .storm = 2000, .scale = 1};

int strict;
struct clink_node *client;
int attacks_failed, attacks_known;
atomic_ulong bystander_failures;

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

double sc(double s)
{
    return s * cfg.scale;
}

/* ---- the bystander ---- */

struct window {
    unsigned long calls, failed;
    double p50_ms, p99_ms, max_ms;
};

uint32_t bystander_deadline_ms(void)
{
    return 500 * cfg.scale;
}

int dial(uint16_t port, uint32_t timeout_ms, struct clink_conn **out, char *err, size_t errlen)
{
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = port, .expected_name = "localhost", .timeout_ms = timeout_ms};
    return clink_connect_sync(client, &o, out, err, errlen);
}

int echo_once(struct clink_conn *conn, uint64_t n, uint32_t deadline_ms, char *err, size_t errlen)
{
    uint8_t req[32];
    for (size_t i = 0; i < sizeof(req); i++) {
        req[i] = (uint8_t)(n >> (8 * (i % 8))) ^ (uint8_t)i;
    }
    struct clink_msg resp;
    int ret = clink_call_sync(conn, ECHO_METHOD, req, sizeof(req), deadline_ms, &resp);
    if (ret != 0) {
        snprintf(err, errlen, "echo: %s", clink_strerror(ret));
        return -1;
    }
    int same = resp.len == sizeof(req) && memcmp(resp.data, req, sizeof(req)) == 0;
    clink_msg_free(&resp);
    if (!same) {
        snprintf(err, errlen, "echo: wrong answer");
        return -1;
    }
    return 0;
}

static void *bystander_main(void *arg)
{
    struct bystander *b = arg;
    uint32_t deadline = bystander_deadline_ms();
    for (uint64_t i = 0; !atomic_load(&b->stop); i++) {
        char err[200] = "";
        double t0 = now_s();
        int ok = b->conn != NULL && echo_once(b->conn, i, deadline, err, sizeof(err)) == 0;
        double dt = now_s() - t0;
        pthread_mutex_lock(&b->mu);
        b->calls++;
        if (ok) {
            if (b->n == b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 4096;
                uint32_t *p = realloc(b->lat_us, cap * sizeof(*p));
                if (p != NULL) {
                    b->lat_us = p;
                    b->cap = cap;
                }
            }
            if (b->n < b->cap) {
                b->lat_us[b->n++] = (uint32_t)(dt * 1e6);
            }
        } else {
            b->failed++;
            atomic_fetch_add(&bystander_failures, 1);
            if (b->first_error[0] == '\0') {
                snprintf(b->first_error, sizeof(b->first_error), "%s", b->conn ? err : "not connected");
            }
        }
        pthread_mutex_unlock(&b->mu);
        atomic_fetch_add(&b->seq, 1);
        if (!ok) {
            /* Keep measuring: a lost connection is redialled (each failed call above counted). */
            sleep_s(0.02);
            if (b->conn == NULL || !clink_conn_is_open(b->conn)) {
                if (b->conn != NULL) {
                    clink_conn_close(b->conn);
                    b->conn = NULL;
                }
                CLINK_IGNORE(dial(b->port, deadline, &b->conn, err, sizeof(err)));
            }
        }
    }
    return NULL;
}

int bystander_start(struct bystander *b, const char *node, uint16_t port)
{
    memset(b, 0, sizeof(*b));
    b->node = node;
    b->port = port;
    pthread_mutex_init(&b->mu, NULL);
    char err[256] = "";
    int ret = dial(port, (uint32_t)(sc(5) * 1000), &b->conn, err, sizeof(err));
    if (ret != 0) {
        fprintf(stderr, "attacks: bystander cannot connect to the %s node (port %u): %s\n", node, port, err);
        return -1;
    }
    if (pthread_create(&b->thread, NULL, bystander_main, b) != 0) {
        return -1;
    }
    b->running = 1;
    return 0;
}

void bystander_stop(struct bystander *b)
{
    if (b->running) {
        atomic_store(&b->stop, 1);
        pthread_join(b->thread, NULL);
        b->running = 0;
    }
    if (b->conn != NULL) {
        clink_conn_close(b->conn);
        b->conn = NULL;
    }
    free(b->lat_us);
    b->lat_us = NULL;
    pthread_mutex_destroy(&b->mu);
}

static void window_begin(struct bystander *b)
{
    pthread_mutex_lock(&b->mu);
    b->n = 0;
    b->calls = 0;
    b->failed = 0;
    pthread_mutex_unlock(&b->mu);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The window's figures, once the call in flight at the end of the attack has finished too. */
static void window_end(struct bystander *b, struct window *w)
{
    unsigned long seq = atomic_load(&b->seq);
    double limit = now_s() + bystander_deadline_ms() / 1000.0 + sc(1);
    while (atomic_load(&b->seq) == seq && now_s() < limit) {
        sleep_s(0.001);
    }
    pthread_mutex_lock(&b->mu);
    w->calls = b->calls;
    w->failed = b->failed;
    w->p50_ms = w->p99_ms = w->max_ms = 0;
    if (b->n > 0) {
        qsort(b->lat_us, b->n, sizeof(b->lat_us[0]), cmp_u32);
        w->p50_ms = b->lat_us[(b->n - 1) / 2] / 1000.0;
        w->p99_ms = b->lat_us[(size_t)((double)(b->n - 1) * 0.99)] / 1000.0;
        w->max_ms = b->lat_us[b->n - 1] / 1000.0;
    }
    pthread_mutex_unlock(&b->mu);
}

/* ---- running attacks and the report ---- */

void run(struct bystander *b, const char *name, attack_fn fn)
{
    if (cfg.only != NULL && strstr(name, cfg.only) == NULL) {
        return;
    }
    char obs[1024] = "";
    window_begin(b);
    double t0 = now_s();
    enum verdict v = fn(obs, sizeof(obs));
    double took = now_s() - t0;
    /* The aftermath counts too: a crash or a stall the attack set off shows up in its own line. */
    sleep_s(0.2);
    struct window w;
    window_end(b, &w);
    const char *tag = v == V_OK ? "ok" : v == V_KNOWN ? "KNOWN FAILURE" : "FAIL";
    if (w.failed > 0) {
        tag = "FAIL (bystander)";
    }
    printf(
        "%-16s %s [%s node] | %s | bystander: %lu calls, %lu failed, p50 %.2f ms, p99 %.2f ms, max %.2f ms | %.1f s\n",
        tag, name, b->node, obs, w.calls, w.failed, w.p50_ms, w.p99_ms, w.max_ms, took);
    if (w.failed > 0) {
        pthread_mutex_lock(&b->mu);
        printf("                 bystander's first error: %s\n", b->first_error);
        pthread_mutex_unlock(&b->mu);
    }
    fflush(stdout);
    if (v == V_FAIL || (v == V_KNOWN && strict)) {
        attacks_failed++;
    } else if (v == V_KNOWN) {
        attacks_known++;
    }
}

void obs_add(char *obs, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(obs);
    if (n + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(obs + n, cap - n, fmt, ap);
    va_end(ap);
}
