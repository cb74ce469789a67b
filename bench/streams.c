/*
 * clink-bench: the stream scenarios, against the first target's produce
 * method (CLINK_TOOL_PRODUCE: a server-streaming call, clink/methods.h).
 *
 * stream: one stream moves --stream-bytes in --stream-msg messages over a
 * connection of its own; bytes per second, CPU per GB on each side, and how
 * far each side's RSS rose while it ran (the windows should bound it).
 *
 * mixed: 64 B echo calls (1, then 16 in flight) on one connection, first
 * idle, then while a stream runs on the same connection flat out, then while
 * it runs paced to half that rate: this end gives the stream's credit back
 * at that rate (CLINK_STREAM_MANUAL_CREDIT), as a consumer that keeps up
 * with only half of what the producer could send would.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "clink/methods.h"
#include "clink/stream.h"

#define MIXED_MSG    64
#define ENDLESS      (1ull << 50) /* a mixed stream's total: it is canceled long before */
#define PACE_TICK_US 1000

/* This end of one produce stream. */
struct sread {
    pthread_mutex_t mu;     /* orders on_end against cancel and consume from other threads */
    struct clink_stream *s; /* NULL once on_end has run (the stream is freed) */
    size_t msg;
    _Atomic uint64_t got, msgs, bad;
    _Atomic uint64_t t_end;
    atomic_int ended;
    int status;
    char why[160];
};

static void sr_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct sread *r = user;
    /* Byte k of every message is (uint8_t)k: check both ends and the middle, where a misplaced chunk would show. */
    if (len == 0 || len > r->msg || data[0] != 0 || data[len - 1] != (uint8_t)(len - 1) ||
        data[len / 2] != (uint8_t)(len / 2)) {
        atomic_fetch_add_explicit(&r->bad, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&r->got, len, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->msgs, 1, memory_order_relaxed);
}

static void sr_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s;
    struct sread *r = user;
    atomic_store(&r->t_end, now_ns());
    pthread_mutex_lock(&r->mu);
    r->status = status;
    if (status < 0) {
        snprintf(r->why, sizeof(r->why), "%s%s%.*s", clink_strerror(status), len ? ": " : "", (int)len, msg ? msg : "");
    }
    r->s = NULL;
    atomic_store(&r->ended, 1);
    pthread_mutex_unlock(&r->mu);
}

static void sr_init(struct sread *r, size_t msg)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->msg = msg;
}

/* Open a produce stream of total bytes in r->msg messages on c; r is fresh from sr_init. */
static int sr_open(struct clink_conn *c, struct sread *r, uint64_t total, unsigned flags, uint32_t timeout_ms)
{
    uint8_t req[CLINK_TOOL_PRODUCE_LEN];
    clink_tool_produce_req(req, total, (uint32_t)r->msg);
    struct iovec iov = {.iov_base = req, .iov_len = sizeof(req)};
    struct clink_stream_open_opts o = {.method = CLINK_TOOL_PRODUCE,
                                       .iov = &iov,
                                       .iovcnt = 1,
                                       .end = 1,
                                       .timeout_ms = timeout_ms,
                                       .flags = flags,
                                       .cbs = {.on_msg = sr_msg, .on_end = sr_end},
                                       .user = r};
    struct clink_stream *s;
    pthread_mutex_lock(&r->mu); /* on_end may run before r->s is set */
    int ret = clink_stream_open(c, &o, &s);
    if (ret == 0 && !atomic_load(&r->ended)) {
        r->s = s;
    }
    pthread_mutex_unlock(&r->mu);
    return ret;
}

/* Wait until the stream has ended; with sample set, call it every 10 ms meanwhile. Returns 1 if it ended. */
static int sr_wait(struct sread *r, unsigned ms, void (*sample)(void *), void *arg)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
    while (!atomic_load(&r->ended) && now_ns() < end) {
        usleep(10000);
        if (sample) {
            sample(arg);
        }
    }
    return atomic_load(&r->ended);
}

/* Cancel (if still running) and wait for on_end. */
static void sr_cancel(struct sread *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->s != NULL && clink_stream_cancel(r->s) == -CLINK_EAGAIN) {
        usleep(100);
    }
    pthread_mutex_unlock(&r->mu);
    CLINK_IGNORE(sr_wait(r, 10000, NULL, NULL));
}

/* Free r, unless its stream never reported its end even after a cancel: then it may still call back (leaked). */
static void sr_free(struct sread *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    int live = r->s != NULL;
    pthread_mutex_unlock(&r->mu);
    if (!live) {
        pthread_mutex_destroy(&r->mu);
        free(r);
    }
}

static void sr_consume(struct sread *r, size_t n)
{
    pthread_mutex_lock(&r->mu);
    while (r->s != NULL && clink_stream_consume(r->s, n) == -CLINK_EAGAIN) {
        usleep(100);
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- stream: one line ---- */

struct peaks {
    pid_t server;
    long client0, server0, client, server_;
};

static void sample_rss(void *arg)
{
    struct peaks *p = arg;
    long c = rss_kib(0), s = p->server ? rss_kib(p->server) : -1;
    p->client = c > p->client ? c : p->client;
    p->server_ = s > p->server_ ? s : p->server_;
}

/* How the peer sends on c, from its status of the connection ("Send path: ..."); "?" if it does not say. */
static void peer_send_path(struct clink_conn *c, char *out, size_t cap)
{
    struct clink_msg m;
    snprintf(out, cap, "?");
    if (clink_call_sync(c, CLINK_METHOD_STATUS, NULL, 0, 5000, &m) == 0) {
        char text[8192];
        snprintf(text, sizeof(text), "%.*s", (int)m.len, (const char *)m.data);
        const char *p = strstr(text, "Send path: ");
        if (p != NULL) {
            p += strlen("Send path: ");
            snprintf(out, cap, "%.*s", (int)strcspn(p, "\n"), p);
        }
    }
    clink_msg_free(&m);
}

int run_stream(struct cfg *cfg, enum clink_conn_mode mode, enum clink_ktls_mode ktls, int target, struct result *res,
               char *path, size_t path_cap)
{
    struct call_spec sp = {
        .scenario = "stream", .mode = mode, .ktls = ktls, .ntargets = 1, .target = target, .conns_per_target = 1};
    struct clink_conn *c = NULL;
    res->msg = cfg->stream_msg;
    res->connections = 1;
    res->concurrency = 1;
    int ret = open_conns(cfg, &sp, &c, 1, res);
    if (ret < 0) {
        return ret;
    }
    describe_conn(c, res);
    /* At least 10 MB/s, or the stream is stuck: its deadline ends it (and the line says so). */
    uint32_t timeout_ms = (uint32_t)(30000 + cfg->stream_bytes / 10000);
    struct sread *r = calloc(1, sizeof(*r));
    ret = -CLINK_ENOMEM;
    if (r == NULL) {
        goto out;
    }
    sr_init(r, cfg->stream_msg);
    /* RSS from before the connection's first stream: what its buffers grew to is the windows' cost. */
    struct peaks pk = {.server = cfg->npids > 0 ? cfg->pids[0] : 0};
    pk.client0 = pk.client = rss_kib(0);
    pk.server0 = pk.server_ = pk.server ? rss_kib(pk.server) : -1;
    /* Warm up: a sixteenth of the bytes on the same connection (TCP's windows grow, caches fill). */
    if ((ret = sr_open(c, r, cfg->stream_bytes / 16, 0, timeout_ms)) < 0) {
        goto out;
    }
    if (!sr_wait(r, timeout_ms + 5000, sample_rss, &pk)) {
        snprintf(res->skipped, sizeof(res->skipped), "the warm-up stream did not end in %u ms", timeout_ms + 5000);
        sr_cancel(r);
        ret = -CLINK_ETIMEDOUT;
        goto out;
    }
    if (r->status < 0) {
        snprintf(res->skipped, sizeof(res->skipped), "warm-up stream: %s", r->why);
        ret = r->status;
        goto out;
    }
    pthread_mutex_destroy(&r->mu);
    sr_init(r, cfg->stream_msg);
    double cc0 = cpu_self_s(), cs0 = cpu_pids_s(cfg->pids, cfg->npids);
    uint64_t t0 = now_ns();
    if ((ret = sr_open(c, r, cfg->stream_bytes, 0, timeout_ms)) < 0) {
        goto out;
    }
    if (!sr_wait(r, timeout_ms + 5000, sample_rss, &pk)) {
        snprintf(res->skipped, sizeof(res->skipped), "the stream did not end in %u ms (%llu of %llu bytes)",
                 timeout_ms + 5000, (unsigned long long)atomic_load(&r->got), (unsigned long long)cfg->stream_bytes);
        sr_cancel(r);
        ret = -CLINK_ETIMEDOUT;
        goto out;
    }
    res->secs = (double)(atomic_load(&r->t_end) - t0) / 1e9;
    res->cpu_client_s = cpu_self_s() - cc0;
    res->cpu_server_s = cpu_pids_s(cfg->pids, cfg->npids) - cs0;
    res->cpu_s = res->cpu_client_s + res->cpu_server_s;
    uint64_t got = atomic_load(&r->got), msgs = atomic_load(&r->msgs), bad = atomic_load(&r->bad);
    res->issued = (cfg->stream_bytes + cfg->stream_msg - 1) / cfg->stream_msg;
    res->ok = r->status == 0 && got == cfg->stream_bytes && msgs <= res->issued ? msgs - bad : 0;
    res->failed = res->issued - res->ok;
    res->ops = (double)msgs / res->secs;
    res->bps = (double)got / res->secs;
    res->peak_kib_client = (double)(pk.client - pk.client0);
    res->peak_kib_server = pk.server0 >= 0 ? (double)(pk.server_ - pk.server0) : -1;
    if (r->status < 0) {
        snprintf(res->note, sizeof(res->note), "the stream failed: %.120s", r->why);
    }
    peer_send_path(c, path, path_cap);
    ret = 0;
out:
    sr_free(r);
    clink_conn_close(c);
    return ret;
}

/* ---- mixed ---- */

/* Gives the stream's credit back at bps: what a consumer doing half the work per second would. */
struct pacer {
    struct sread *r;
    double bps;
    atomic_int stop;
    pthread_t th;
};

static void *pace(void *arg)
{
    struct pacer *p = arg;
    uint64_t t0 = now_ns(), given = 0;
    while (!atomic_load(&p->stop)) {
        usleep(PACE_TICK_US);
        uint64_t allowed = (uint64_t)((double)(now_ns() - t0) / 1e9 * p->bps);
        uint64_t got = atomic_load_explicit(&p->r->got, memory_order_relaxed);
        uint64_t upto = allowed < got ? allowed : got;
        if (upto > given) {
            sr_consume(p->r, (size_t)(upto - given));
            given = upto;
        }
    }
    return NULL;
}

enum { PH_IDLE, PH_STREAM, PH_PACED };

/* One mixed line: calls on c, with no stream, a stream flat out, or one paced to pace_bps. */
static int mixed_line(struct cfg *cfg, struct clink_conn *c, int phase, unsigned callers, double pace_bps,
                      struct result *res)
{
    struct call_spec sp = {.scenario = "mixed",
                           .mode = CLINK_MODE_TLS,
                           .ntargets = 1,
                           .conns_per_target = 1,
                           .callers = callers,
                           .msg = MIXED_MSG,
                           .conn = c};
    struct sread *r = calloc(1, sizeof(*r));
    struct pacer p = {.r = r, .bps = pace_bps};
    int ret = -CLINK_ENOMEM, pacing = 0;
    if (r == NULL) {
        return ret;
    }
    sr_init(r, cfg->stream_msg);
    if (phase != PH_IDLE) {
        ret = sr_open(c, r, ENDLESS, phase == PH_PACED ? CLINK_STREAM_MANUAL_CREDIT : 0, 0);
        if (ret < 0) {
            snprintf(res->skipped, sizeof(res->skipped), "cannot open the stream: %s", clink_strerror(ret));
            goto out;
        }
        for (int i = 0; i < 1000 && atomic_load(&r->got) == 0 && !atomic_load(&r->ended); i++) {
            usleep(1000); /* flowing before the calls start */
        }
        if (phase == PH_PACED) {
            pacing = pthread_create(&p.th, NULL, pace, &p) == 0;
        }
    }
    uint64_t b0 = atomic_load(&r->got), t0 = now_ns();
    ret = run_calls(cfg, &sp, res);
    uint64_t b1 = atomic_load(&r->got), t1 = now_ns();
    if (pacing) {
        atomic_store(&p.stop, 1);
        pthread_join(p.th, NULL);
    }
    if (phase != PH_IDLE) {
        res->stream_bps = (double)(b1 - b0) / ((double)(t1 - t0) / 1e9);
        if (atomic_load(&r->ended) && ret == 0) {
            snprintf(res->skipped, sizeof(res->skipped), "the stream ended during the calls: %s", r->why);
            ret = -CLINK_ECLOSED;
        }
        sr_cancel(r);
        if (!atomic_load(&r->ended) && ret == 0) {
            snprintf(res->skipped, sizeof(res->skipped), "the stream did not end 10 s after its cancel");
            ret = -CLINK_ETIMEDOUT;
        }
        if (atomic_load(&r->bad) > 0 && ret == 0) {
            snprintf(res->skipped, sizeof(res->skipped), "%llu stream messages were not what was sent",
                     (unsigned long long)atomic_load(&r->bad));
            ret = -CLINK_EPROTO;
        }
    }
out:
    sr_free(r);
    return ret;
}

int run_mixed(struct cfg *cfg, enum placement pl, int *failures)
{
    static const unsigned callers[2] = {1, 16};
    static const char *const phase_names[3] = {"tls idle", "tls stream", "tls paced"};
    struct call_spec sp = {.scenario = "mixed", .mode = CLINK_MODE_TLS, .ntargets = 1, .conns_per_target = 1};
    struct result fail = {.scenario = "mixed", .mode = "tls", .placement = placement_name(pl), .workers = cfg->workers};
    struct clink_conn *c = NULL;
    progress(cfg, "mixed: dialling");
    if (open_conns(cfg, &sp, &c, 1, &fail) < 0) {
        *failures += report_line(cfg, &fail, 0, NULL);
        return -1;
    }
    for (int k = 0; k < 2; k++) {
        double idle_p99 = 0, flat_bps = 0;
        for (int ph = PH_IDLE; ph <= PH_PACED; ph++) {
            struct result r = {.scenario = "mixed", .mode = phase_names[ph], .placement = placement_name(pl)};
            progress(cfg, "mixed %s, 64 B, %u callers", phase_names[ph], callers[k]);
            int ret = mixed_line(cfg, c, ph, callers[k], flat_bps / 2, &r);
            r.scenario = "mixed";
            r.mode = phase_names[ph];
            r.placement = placement_name(pl);
            r.workers = cfg->workers;
            if (ret < 0 && !r.skipped[0]) {
                snprintf(r.skipped, sizeof(r.skipped), "%s", clink_strerror(ret));
            }
            if (ph == PH_IDLE) {
                idle_p99 = r.p99;
                snprintf(r.note, sizeof(r.note), "tls, 1 connection, no stream");
            } else {
                snprintf(r.note, sizeof(r.note), "%s stream of %zu B messages at %.0f MB/s on the same connection",
                         ph == PH_STREAM ? "a" : "paced:", cfg->stream_msg, r.stream_bps / 1e6);
            }
            if (ph == PH_STREAM) {
                flat_bps = r.stream_bps;
            }
            if (ph != PH_IDLE && idle_p99 > 0 && r.p99 > 0 && !r.skipped[0]) {
                r.p99_vs_idle = r.p99 / idle_p99;
                (ph == PH_STREAM ? cfg->sum.mixed_p99_ratio : cfg->sum.mixed_paced_ratio)[k] = r.p99_vs_idle;
            }
            *failures += report_line(cfg, &r, r.p99_vs_idle, r.p99_vs_idle > 0 ? "idle p99" : NULL);
            if (ph == PH_STREAM && flat_bps <= 0) {
                break; /* nothing to pace */
            }
        }
    }
    clink_conn_close(c);
    return 0;
}
