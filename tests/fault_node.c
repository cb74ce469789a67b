/*
 * The two ends of the fault tests (tests/faults.sh), as one plain program so
 * that each can run in its own network namespace and be killed for real:
 *
 *   fault_node leaf --listen IP:PORT --cert F --key F --ca F [--port-file F]
 *       Answers WORK (the request back) and counts every request it ran by
 *       the tag in its first 8 bytes: a tag seen twice is a call executed
 *       twice. COUNTS answers "executions duplicates". SIGTERM: exit 0.
 *
 *   fault_node load --peer IP:PORT --name NAME --cert F --key F --ca F
 *                   [--seconds S] [--window N] [--deadline-ms D] [--size B]
 *                   [--at SECS CMD]... [--recover-within SECS] [--max-fail-share X]
 *                   [--max-heap-growth-mib M]
 *       Keeps N calls in flight through a pool for S seconds and runs each
 *       CMD (a shell command: the fault) at its time. Then it checks what a
 *       database needs from its transport, and exits 1 if any fails:
 *         - every call completed exactly once: issued == ok + failed;
 *         - every answer is the request's own payload;
 *         - no call ended later than its deadline plus a little slack;
 *         - no call ran twice at the leaf (WORK is not marked idempotent,
 *           so the pool must never retry it);
 *         - after the last fault, every call issued once the recovery time
 *           has passed succeeded (and some did);
 *         - failures stay under the share allowed (0 by default);
 *         - this process's heap never grew by M MiB or more;
 *         - the median call took at least MS (so a delay fault really happened).
 *       One line of results on stdout (scenario figures and p50/p99).
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/pool.h"
#include "clink/transport.h"

#define M_WORK   20
#define M_COUNTS 21

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, const char *a)
{
    fprintf(stderr, "fault_node: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(2);
}

static int split_addr(const char *s, char *host, size_t cap, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= cap) {
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (uint16_t)atoi(colon + 1);
    return 0;
}

static struct clink_tls_ctx *load_tls(const char *cert, const char *key, const char *ca)
{
    struct clink_tls_opts o = {.cert_file = cert, .key_file = key, .ca_file = ca};
    struct clink_tls_ctx *t = NULL;
    char err[512];
    if (clink_tls_ctx_new(&o, &t, err, sizeof(err)) != 0) {
        die("TLS: %s", err);
    }
    return t;
}

/* ---- leaf ---- */

/* Tags seen, an open-addressing set (tags are never 0). Only the worker thread touches it: one worker. */
static uint64_t *seen;
static size_t seen_cap, seen_n;
static uint64_t execs, dups;

static int seen_add(uint64_t tag)
{
    if (2 * (seen_n + 1) > seen_cap) {
        size_t ncap = seen_cap ? 2 * seen_cap : 1u << 16;
        uint64_t *n = calloc(ncap, sizeof(*n));
        if (n == NULL) {
            return 0;
        }
        for (size_t i = 0; i < seen_cap; i++) {
            if (seen[i]) {
                size_t j = (size_t)(seen[i] * 0x9E3779B97F4A7C15ull) & (ncap - 1);
                while (n[j]) {
                    j = (j + 1) & (ncap - 1);
                }
                n[j] = seen[i];
            }
        }
        free(seen);
        seen = n;
        seen_cap = ncap;
    }
    size_t j = (size_t)(tag * 0x9E3779B97F4A7C15ull) & (seen_cap - 1);
    while (seen[j]) {
        if (seen[j] == tag) {
            return 1;
        }
        j = (j + 1) & (seen_cap - 1);
    }
    seen[j] = tag;
    seen_n++;
    return 0;
}

static void on_work(struct clink_req *req, void *user)
{
    (void)user;
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    uint64_t tag = 0;
    if (n >= 8) {
        memcpy(&tag, p, 8);
    }
    execs++;
    if (tag != 0 && seen_add(tag)) {
        dups++;
        fprintf(stderr, "fault_node leaf: call %016" PRIx64 " ran twice\n", tag);
    }
    struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

static void on_counts(struct clink_req *req, void *user)
{
    (void)user;
    char buf[64];
    int len = snprintf(buf, sizeof(buf), "%" PRIu64 " %" PRIu64, execs, dups);
    struct iovec iov = {.iov_base = buf, .iov_len = (size_t)len};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int run_leaf(const char *listen, const char *cert, const char *key, const char *ca, const char *port_file)
{
    char host[64];
    uint16_t port;
    if (listen == NULL || split_addr(listen, host, sizeof(host), &port) < 0) {
        die("leaf: --listen IP:PORT is required%s", "");
    }
    struct clink_tls_ctx *tls = load_tls(cert, key, ca);
    /* One worker: the tag set needs no lock, and it is the worker that runs every request. */
    struct clink_node_opts o = {.workers = 1, .tls = tls, .log = clink_log_stderr, .log_level = CLINK_LOG_WARN};
    struct clink_node *n = NULL;
    int ret = clink_node_new(&o, &n);
    if (ret == 0) {
        ret = clink_node_register(n, M_WORK, on_work, NULL);
    }
    if (ret == 0) {
        ret = clink_node_register(n, M_COUNTS, on_counts, NULL);
    }
    if (ret == 0) {
        ret = clink_node_listen(n, host, port);
    }
    if (ret == 0) {
        ret = clink_node_start(n);
    }
    if (ret != 0) {
        die("leaf: %s", clink_strerror(ret));
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (f) {
            fprintf(f, "%u\n", clink_node_port(n));
            fclose(f);
        }
    }
    while (!stop) {
        usleep(20000);
    }
    CLINK_IGNORE(clink_node_shutdown(n, 1000));
    clink_node_free(n);
    clink_tls_ctx_free(tls);
    free(seen);
    return 0;
}

/* ---- load ---- */

#define MAX_AT 8
struct at {
    double t;
    const char *cmd;
    int done;
};

struct slot {
    struct clink_pool_call pc;
    struct iovec iov;
    uint8_t *buf;
    size_t len;
    double t0;
    int busy;
};

static struct {
    double deadline_s, slack_s;
    _Atomic double recover_from; /* calls issued after this time must succeed (0: no such rule yet) */
    atomic_uint_fast64_t ok, failed, wrong, late, after_fail, after_ok, done;
    atomic_uint_fast64_t by_reason[8];
    /* latencies of successful calls, in microseconds */
    uint32_t *lat;
    atomic_size_t nlat;
    size_t lat_cap;
    atomic_int inflight;
    _Atomic double worst_over; /* the latest completion past its deadline, in seconds */
} L;

static int reason_index(int status)
{
    switch (status) {
    case -CLINK_ETIMEDOUT:
        return 1;
    case -CLINK_ECLOSED:
        return 2;
    case -CLINK_EUNAVAIL:
        return 3;
    case -CLINK_EAGAIN:
        return 4;
    case -CLINK_ETLS:
        return 5;
    default:
        return 6;
    }
}
static const char *const reason_names[8] = {"", "timeout", "closed", "unavailable", "busy", "tls", "other", ""};

static void on_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct slot *s = call->user;
    double t1 = now_s(), took = t1 - s->t0;
    if (took > L.deadline_s + L.slack_s) {
        atomic_fetch_add(&L.late, 1);
        double over = took - L.deadline_s;
        double prev = atomic_load(&L.worst_over);
        while (over > prev && !atomic_compare_exchange_weak(&L.worst_over, &prev, over)) {
        }
    }
    int after = L.recover_from > 0 && s->t0 >= L.recover_from;
    if (status == 0) {
        if (len != s->len || memcmp(resp, s->buf, len) != 0) {
            atomic_fetch_add(&L.wrong, 1);
        }
        atomic_fetch_add(&L.ok, 1);
        if (after) {
            atomic_fetch_add(&L.after_ok, 1);
        }
        size_t i = atomic_fetch_add(&L.nlat, 1);
        if (i < L.lat_cap) {
            L.lat[i] = (uint32_t)(took * 1e6);
        }
    } else {
        atomic_fetch_add(&L.failed, 1);
        if (atomic_fetch_add(&L.by_reason[reason_index(status)], 1) == 0 && reason_index(status) == 6) {
            fprintf(stderr, "fault_node load: first failure of another kind: %s\n", clink_strerror(status));
        }
        if (after) {
            atomic_fetch_add(&L.after_fail, 1);
            fprintf(stderr, "fault_node load: a call issued %.2f s after recovery was due failed: %s\n",
                    s->t0 - L.recover_from, clink_strerror(status));
        }
    }
    atomic_fetch_add(&L.done, 1);
    __atomic_store_n(&s->busy, 0, __ATOMIC_RELEASE);
    atomic_fetch_sub(&L.inflight, 1);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Heap in use, KiB: what the allocator has handed out and not had back. RSS
 * would measure ASan's quarantine of freed blocks instead; under ASan its own
 * count is the one that means this.
 */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));
static long heap_kib(void)
{
    if (__sanitizer_get_current_allocated_bytes) {
        return (long)(__sanitizer_get_current_allocated_bytes() / 1024);
    }
    struct mallinfo2 mi = mallinfo2();
    return (long)(mi.uordblks / 1024);
}

struct load_opts {
    const char *peer, *name, *cert, *key, *ca, *label;
    double seconds, recover_within, max_fail_share, min_p50_ms;
    unsigned window, deadline_ms, size;
    long max_heap_growth_mib;
    struct at at[MAX_AT];
    int nat;
};

static int run_load(struct load_opts *o)
{
    char host[64];
    uint16_t port;
    if (o->peer == NULL || split_addr(o->peer, host, sizeof(host), &port) < 0) {
        die("load: --peer IP:PORT is required%s", "");
    }
    struct clink_tls_ctx *tls = load_tls(o->cert, o->key, o->ca);
    struct clink_node_opts no = {.workers = 2, .tls = tls, .log = clink_log_stderr, .log_level = CLINK_LOG_WARN};
    struct clink_node *node = NULL;
    if (clink_node_new(&no, &node) != 0 || clink_node_start(node) != 0) {
        die("load: cannot start the client node%s", "");
    }
    struct clink_cluster_opts co = {.node = node,
                                    .log = clink_log_stderr,
                                    .log_level = CLINK_LOG_WARN,
                                    .pool = {.min_conns = 2,
                                             .max_conns = 4,
                                             .connect_timeout_ms = 1000,
                                             .ping_interval_ms = 500,
                                             .ping_timeout_ms = 500,
                                             .backoff_min_ms = 50,
                                             .backoff_max_ms = 400,
                                             .max_waiting = 4096}};
    struct clink_cluster *cl = NULL;
    if (clink_cluster_new(&co, &cl) != 0) {
        die("load: cluster%s", "");
    }
    struct clink_peer peer = {.name = "leaf", .host = host, .port = port, .expected_name = o->name};
    if (clink_cluster_add(cl, &peer) != 0) {
        die("load: cannot add %s", o->peer);
    }
    struct clink_pool *pool = clink_cluster_pool(cl, "leaf");

    /* Wait for the pool to come up before the clock starts: the scenario measures faults, not the first dial. */
    struct clink_pool_stats ps;
    for (int i = 0; i < 500; i++) {
        clink_pool_get_stats(pool, &ps);
        if (ps.conns_open > 0) {
            break;
        }
        usleep(10000);
    }
    if (ps.conns_open == 0) {
        die("load: the pool to %s never came up", o->peer);
    }

    L.deadline_s = o->deadline_ms / 1000.0;
    L.slack_s = 0.25 + L.deadline_s * 0.1;
    L.lat_cap = 4u << 20;
    L.lat = calloc(L.lat_cap, sizeof(uint32_t));
    struct slot *slots = calloc(o->window, sizeof(*slots));
    for (unsigned i = 0; i < o->window; i++) {
        slots[i].buf = malloc(o->size < 8 ? 8 : o->size);
    }
    malloc_trim(0);
    long heap0 = heap_kib(), heap_max = heap0;
    uint64_t issued = 0, seq = 0;
    double t0 = now_s(), end = t0 + o->seconds, last_fault = 0;
    uint64_t run_id = ((uint64_t)getpid() << 40) ^ ((uint64_t)(t0 * 1e3) << 20);
    while (now_s() < end) {
        double t = now_s() - t0;
        for (int k = 0; k < o->nat; k++) {
            if (!o->at[k].done && t >= o->at[k].t) {
                o->at[k].done = 1;
                int rc = system(o->at[k].cmd);
                if (rc != 0) {
                    fprintf(stderr, "fault_node load: fault command failed (%d): %s\n", rc, o->at[k].cmd);
                }
                last_fault = now_s();
                if (o->recover_within > 0) {
                    L.recover_from = last_fault + o->recover_within;
                }
            }
        }
        int issued_now = 0;
        for (unsigned i = 0; i < o->window; i++) {
            struct slot *s = &slots[i];
            if (__atomic_load_n(&s->busy, __ATOMIC_ACQUIRE)) {
                continue;
            }
            uint64_t tag = run_id + ++seq;
            s->len = o->size < 8 ? 8 : o->size;
            memcpy(s->buf, &tag, 8);
            for (size_t b = 8; b < s->len; b++) {
                s->buf[b] = (uint8_t)(tag + b);
            }
            s->iov = (struct iovec){.iov_base = s->buf, .iov_len = s->len};
            s->pc = (struct clink_pool_call){0};
            s->pc.call.method = M_WORK;
            s->pc.call.iov = &s->iov;
            s->pc.call.iovcnt = 1;
            s->pc.call.timeout_ms = o->deadline_ms;
            s->pc.call.cb = on_done;
            s->pc.call.user = s;
            s->t0 = now_s();
            s->busy = 1;
            atomic_fetch_add(&L.inflight, 1);
            int ret = clink_pool_call_start(pool, &s->pc);
            if (ret < 0) {
                /* Refused at once (peer down, too many waiting): a clean failure the caller sees now. */
                s->busy = 0;
                atomic_fetch_sub(&L.inflight, 1);
                atomic_fetch_add(&L.failed, 1);
                atomic_fetch_add(&L.by_reason[reason_index(ret)], 1);
                if (L.recover_from > 0 && s->t0 >= L.recover_from) {
                    atomic_fetch_add(&L.after_fail, 1);
                    fprintf(stderr, "fault_node load: a call issued after recovery was due was refused: %s\n",
                            clink_strerror(ret));
                }
                atomic_fetch_add(&L.done, 1);
            }
            issued++;
            issued_now++;
        }
        long r = heap_kib();
        heap_max = r > heap_max ? r : heap_max;
        usleep(issued_now ? 200 : 1000);
    }
    /* Every call in flight ends by its deadline: wait that long plus the slack, no more. */
    double drain_until = now_s() + L.deadline_s + L.slack_s + 1.0;
    while (atomic_load(&L.inflight) > 0 && now_s() < drain_until) {
        usleep(1000);
    }
    int stuck = atomic_load(&L.inflight);

    /* The leaf's own count: no call ran twice. */
    uint64_t lexecs = 0, ldups = UINT64_MAX;
    struct clink_msg m;
    if (clink_pool_call_sync(pool, M_COUNTS, NULL, 0, 3000, &m) == 0) {
        char buf[64] = "";
        memcpy(buf, m.data, m.len < 63 ? m.len : 63);
        if (sscanf(buf, "%" SCNu64 " %" SCNu64, &lexecs, &ldups) != 2) {
            ldups = UINT64_MAX;
        }
        clink_msg_free(&m);
    }
    struct clink_pool_stats st;
    clink_pool_get_stats(pool, &st);
    clink_pool_release(pool);
    clink_cluster_free(cl);
    CLINK_IGNORE(clink_node_shutdown(node, 500));
    clink_node_free(node);
    clink_tls_ctx_free(tls);

    size_t nl = atomic_load(&L.nlat);
    nl = nl < L.lat_cap ? nl : L.lat_cap;
    qsort(L.lat, nl, sizeof(uint32_t), cmp_u32);
    double p50 = nl ? L.lat[nl / 2] / 1000.0 : 0, p99 = nl ? L.lat[nl * 99 / 100] / 1000.0 : 0;
    double pmax = nl ? L.lat[nl - 1] / 1000.0 : 0;
    uint64_t ok = atomic_load(&L.ok), failed = atomic_load(&L.failed);
    printf("%-22s calls %6" PRIu64 "  ok %6" PRIu64 "  failed %5" PRIu64 " (", o->label, issued, ok, failed);
    for (int i = 1; i < 7; i++) {
        uint64_t n = atomic_load(&L.by_reason[i]);
        if (n) {
            printf(" %s %" PRIu64, reason_names[i], n);
        }
    }
    printf(" )  p50 %.1f ms  p99 %.1f ms  max %.1f ms  late %" PRIu64 "  leaf runs %" PRIu64 " dup %" PRIu64
           "  reconnects %" PRIu64 "  heap +%ld KiB peak\n",
           p50, p99, pmax, atomic_load(&L.late), lexecs, ldups == UINT64_MAX ? 0 : ldups, st.reconnects,
           heap_max - heap0);

    int bad = 0;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "FAIL %s: ", o->label);                                                                    \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
            bad = 1;                                                                                                   \
        }                                                                                                              \
    } while (0)
    CHECK(stuck == 0, "%d calls never completed", stuck);
    CHECK(issued == ok + failed, "issued %" PRIu64 " != ok %" PRIu64 " + failed %" PRIu64, issued, ok, failed);
    CHECK(atomic_load(&L.done) == issued, "%" PRIu64 " completions for %" PRIu64 " calls",
          (uint64_t)atomic_load(&L.done), issued);
    CHECK(atomic_load(&L.wrong) == 0, "%" PRIu64 " answers carried another call's payload",
          (uint64_t)atomic_load(&L.wrong));
    CHECK(atomic_load(&L.late) == 0, "%" PRIu64 " calls ended past deadline + %.2f s (worst %.2f s over)",
          (uint64_t)atomic_load(&L.late), L.slack_s, atomic_load(&L.worst_over));
    CHECK(ldups == 0, "the leaf ran %s calls twice", ldups == UINT64_MAX ? "(unknown: COUNTS failed)" : "some");
    CHECK(ok > 0, "no call succeeded");
    /* A delay that did not happen would make the scenario prove nothing. */
    CHECK(p50 >= o->min_p50_ms, "p50 %.1f ms: the fault's delay (%.0f ms) did not happen", p50, o->min_p50_ms);
    if (o->recover_within > 0) {
        CHECK(atomic_load(&L.after_fail) == 0, "%" PRIu64 " calls issued more than %.1f s after the last fault failed",
              (uint64_t)atomic_load(&L.after_fail), o->recover_within);
        CHECK(atomic_load(&L.after_ok) > 0, "nothing succeeded after recovery was due");
    }
    CHECK((double)failed <= o->max_fail_share * (double)issued,
          "%" PRIu64 " of %" PRIu64 " calls failed (allowed %.0f%%)", failed, issued, o->max_fail_share * 100);
    if (o->max_heap_growth_mib > 0) {
        CHECK(heap_max - heap0 < o->max_heap_growth_mib * 1024, "the heap grew by %ld KiB at its peak",
              heap_max - heap0);
    }
    for (unsigned i = 0; i < o->window; i++) {
        free(slots[i].buf);
    }
    free(slots);
    free(L.lat);
    return bad;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fault_node leaf --listen IP:PORT --cert F --key F --ca F [--port-file F]\n"
               "       fault_node load --peer IP:PORT --name NAME --cert F --key F --ca F [--label L]\n"
               "                       [--seconds S] [--window N] [--deadline-ms D] [--size B]\n"
               "                       [--at SECS CMD]... [--recover-within SECS] [--max-fail-share X]\n"
               "                       [--max-heap-growth-mib M] [--min-p50-ms MS]\n"
               "The two ends of tests/faults.sh: see the top of tests/fault_node.c.\n");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct load_opts o = {.name = "localhost",
                          .label = "load",
                          .seconds = 3,
                          .window = 32,
                          .deadline_ms = 1000,
                          .size = 256,
                          .max_fail_share = 0};
    const char *listen = NULL, *port_file = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            die("%s needs a value", a);
        }
        i++;
        if (!strcmp(a, "--listen")) {
            listen = v;
        } else if (!strcmp(a, "--port-file")) {
            port_file = v;
        } else if (!strcmp(a, "--cert")) {
            o.cert = v;
        } else if (!strcmp(a, "--key")) {
            o.key = v;
        } else if (!strcmp(a, "--ca")) {
            o.ca = v;
        } else if (!strcmp(a, "--peer")) {
            o.peer = v;
        } else if (!strcmp(a, "--name")) {
            o.name = v;
        } else if (!strcmp(a, "--label")) {
            o.label = v;
        } else if (!strcmp(a, "--seconds")) {
            o.seconds = atof(v);
        } else if (!strcmp(a, "--window")) {
            o.window = (unsigned)atoi(v);
        } else if (!strcmp(a, "--deadline-ms")) {
            o.deadline_ms = (unsigned)atoi(v);
        } else if (!strcmp(a, "--size")) {
            o.size = (unsigned)atoi(v);
        } else if (!strcmp(a, "--recover-within")) {
            o.recover_within = atof(v);
        } else if (!strcmp(a, "--min-p50-ms")) {
            o.min_p50_ms = atof(v);
        } else if (!strcmp(a, "--max-fail-share")) {
            o.max_fail_share = atof(v);
        } else if (!strcmp(a, "--max-heap-growth-mib")) {
            o.max_heap_growth_mib = atol(v);
        } else if (!strcmp(a, "--at")) {
            if (i + 1 >= argc || o.nat == MAX_AT) {
                die("--at needs SECS and a command (at most 8)%s", "");
            }
            o.at[o.nat].t = atof(v);
            o.at[o.nat++].cmd = argv[++i];
        } else {
            usage(stderr);
            die("unknown option %s", a);
        }
    }
    if (o.cert == NULL || o.key == NULL || o.ca == NULL) {
        die("--cert, --key and --ca are required%s", "");
    }
    if (o.window == 0 || o.deadline_ms == 0 || o.seconds <= 0) {
        die("--window, --deadline-ms and --seconds must be positive%s", "");
    }
    if (!strcmp(argv[1], "leaf")) {
        return run_leaf(listen, o.cert, o.key, o.ca, port_file);
    }
    if (!strcmp(argv[1], "load")) {
        return run_load(&o);
    }
    usage(stderr);
    return 2;
}
