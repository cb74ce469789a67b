/*
 * clink-bench: RPC rate, latency and one-way throughput against clink nodes,
 * in each transport mode (plaintext, user-space TLS, kTLS where the host has
 * it), measured in one run so the ratios between modes survive a noisy host.
 *
 * It plays the aggregator: it dials every --target (leaves running
 * clink-node), keeps --concurrency calls in flight over --connections
 * connections per target, and prints a table plus one JSON object per result
 * line (--json FILE).
 *
 * Handshakes: dials per second and CPU per dial, plaintext (TCP + HELLO) vs a
 * full TLS 1.3 handshake vs a resumed one. Storm: an in-process leaf with N
 * pooled connections restarts; how long until every pool is whole again, and
 * which share of the reconnects resumed.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "clink/clink.h"
#include "tools/methods.h"

#define MAX_TARGETS 16
#define MAX_SIZES   16

/* ---- latency histogram: log2 buckets with 32 linear sub-buckets (~3% error) ---- */
#define SUB     32
#define OCTAVES 40
struct hist {
    uint64_t n[OCTAVES * SUB];
    uint64_t count;
};

static unsigned bucket(uint64_t ns)
{
    if (ns < SUB) {
        return (unsigned)ns;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned shift = msb - 5; /* keep 6 significant bits: 32..63 */
    unsigned idx = (shift + 1) * SUB + (unsigned)((ns >> shift) - SUB);
    return idx < OCTAVES * SUB ? idx : OCTAVES * SUB - 1;
}

static uint64_t bucket_value(unsigned idx)
{
    if (idx < SUB) {
        return idx;
    }
    unsigned shift = idx / SUB - 1;
    return ((uint64_t)(idx % SUB) + SUB) << shift;
}

static void hist_add(struct hist *h, uint64_t ns)
{
    h->n[bucket(ns)]++;
    h->count++;
}

static void hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < OCTAVES * SUB; i++) {
        dst->n[i] += src->n[i];
    }
    dst->count += src->count;
}

static double hist_pct_us(const struct hist *h, double p)
{
    if (h->count == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)ceil(p * (double)h->count);
    uint64_t seen = 0;
    for (unsigned i = 0; i < OCTAVES * SUB; i++) {
        seen += h->n[i];
        if (seen >= want) {
            return (double)bucket_value(i) / 1000.0;
        }
    }
    return 0;
}

/* ---- one run ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct run;

/* One call slot: a chain of calls, each started from the previous one's callback. */
struct slot {
    struct clink_call call;
    struct clink_pool_call pcall; /* the pool scenario's call */
    struct clink_pool *pool;
    struct iovec iov;
    struct run *run;
    struct clink_conn *conn;
    uint64_t t0;
    struct hist hist;
    uint64_t issued, ok, failed, bytes;
    int stopped;
};

struct run {
    atomic_int stop;
    atomic_int active;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t msg;
    int one_way;
    uint8_t *payload;
};

static void slot_done(struct slot *s)
{
    struct run *r = s->run;
    pthread_mutex_lock(&r->mu);
    if (atomic_fetch_sub(&r->active, 1) == 1) {
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct slot *s = (struct slot *)call;
    (void)resp;
    uint64_t t = now_ns();
    size_t want = s->run->one_way ? 0 : s->run->msg;
    if (status == 0 && len == want) {
        s->ok++;
        s->bytes += s->run->msg;
        hist_add(&s->hist, t - s->t0);
    } else {
        s->failed++;
    }
    if (atomic_load_explicit(&s->run->stop, memory_order_relaxed)) {
        slot_done(s);
        return;
    }
    s->t0 = t;
    s->issued++;
    int ret = clink_call_start(s->conn, &s->call);
    if (ret < 0) {
        /* Counted as issued and failed: nothing is dropped from the books. */
        s->failed++;
        slot_done(s);
    }
}

struct result {
    const char *scenario, *mode;
    size_t msg;
    unsigned concurrency, connections, workers;
    double secs, ops, bps, p50, p99, p999, cpu_s;
    uint64_t issued, ok, failed;
    char cipher[64], tls_version[16];
    char skipped[512];
    double resumed_share; /* storm: resumed share of the reconnects */
};

static double cpu_seconds(const pid_t *pids, int npids)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double s =
        (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < npids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* Fields 14 and 15 (utime, stime) follow the parenthesised command name. */
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
            s += (double)(ut + st) / (double)hz;
        }
    }
    return s;
}

struct cfg {
    char hosts[MAX_TARGETS][128];
    uint16_t ports[MAX_TARGETS];
    int ntargets;
    const char *name, *cert, *key, *ca, *json, *user, *plain_user;
    size_t sizes[MAX_SIZES];
    int nsizes;
    unsigned concurrency, connections, workers, duration_ms, warmup_ms;
    int modes_plain, modes_tls, modes_ktls;
    int scen_rpc, scen_throughput, scen_handshake, scen_storm, scen_pool, scen_ceiling;
    /* for the closing ratios */
    double thr_plain, thr_tls, ceiling_aes, hs_full, hs_resumed, pool_direct, pool_pooled;
    size_t thr_size;
    char stunnel_host[128];
    uint16_t stunnel_port;
    int use_stunnel; /* run_one dials the stunnel client instead of the targets */
    double thr_stunnel;
    unsigned storm_conns;
    pid_t pids[MAX_TARGETS];
    int npids;
    FILE *jf;
    char kernel[128], cpu[128];
    const char *build;
};

/* Let the chains of calls run for ms, then stop them and wait until every slot has finished its last call. */
static void run_for(struct run *r, unsigned ms)
{
    usleep(ms * 1000u);
    atomic_store(&r->stop, 1);
    pthread_mutex_lock(&r->mu);
    while (atomic_load(&r->active) > 0) {
        pthread_cond_wait(&r->cv, &r->mu);
    }
    pthread_mutex_unlock(&r->mu);
}

/* One result line from the slots of a measured phase that started at t0 with cpu0 CPU-seconds spent. */
static void tally(const struct cfg *cfg, const struct slot *slots, size_t msg, uint64_t t0, double cpu0,
                  struct result *res)
{
    uint64_t t1 = now_ns();
    struct hist *h = calloc(1, sizeof(*h));
    memset(res, 0, offsetof(struct result, cipher));
    for (unsigned i = 0; i < cfg->concurrency; i++) {
        hist_merge(h, &slots[i].hist);
        res->issued += slots[i].issued;
        res->ok += slots[i].ok;
        res->failed += slots[i].failed;
    }
    res->secs = (double)(t1 - t0) / 1e9;
    res->ops = (double)res->ok / res->secs;
    res->bps = (double)res->ok * (double)msg / res->secs;
    res->p50 = hist_pct_us(h, 0.50);
    res->p99 = hist_pct_us(h, 0.99);
    res->p999 = hist_pct_us(h, 0.999);
    res->cpu_s = cpu_seconds(cfg->pids, cfg->npids) - cpu0;
    free(h);
}

/* The pool scenario: the same chain of calls, each through a pool instead of a fixed connection. */
static void on_pool_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct slot *s = call->user;
    (void)resp;
    uint64_t t = now_ns();
    if (status == 0 && len == s->run->msg) {
        s->ok++;
        hist_add(&s->hist, t - s->t0);
    } else {
        s->failed++;
    }
    if (atomic_load_explicit(&s->run->stop, memory_order_relaxed)) {
        slot_done(s);
        return;
    }
    s->t0 = t;
    s->issued++;
    if (clink_pool_call(s->pool, &s->pcall) < 0) {
        s->failed++;
        slot_done(s);
    }
}

static int run_pool(struct cfg *cfg, struct clink_node *node, size_t msg, struct result *res)
{
    struct clink_cluster_opts co = {.node = node,
                                    .pool = {.min_conns = cfg->connections,
                                             .max_conns = cfg->connections,
                                             .max_calls_per_conn = 1u << 20,
                                             .max_waiting = 1u << 20}};
    struct clink_cluster *cl = NULL;
    if (clink_cluster_new(&co, &cl) < 0) {
        return -CLINK_ENOMEM;
    }
    struct clink_pool *pools[MAX_TARGETS] = {0};
    int ret = 0;
    for (int t = 0; t < cfg->ntargets && ret == 0; t++) {
        char name[24];
        snprintf(name, sizeof(name), "target%d", t);
        struct clink_peer p = {
            .name = name, .host = cfg->hosts[t], .port = cfg->ports[t], .expected_name = cfg->name, .user = cfg->user};
        ret = clink_cluster_add(cl, &p);
        pools[t] = ret == 0 ? clink_cluster_pool(cl, name) : NULL;
    }
    /* Warm: every pool has its connections before anything is measured. */
    for (int t = 0; t < cfg->ntargets && ret == 0; t++) {
        struct clink_pool_stats s;
        uint64_t end = now_ns() + 10000000000ull;
        do {
            clink_pool_stats(pools[t], &s);
            usleep(1000);
        } while (s.conns_open < cfg->connections && now_ns() < end);
        if (s.conns_open < cfg->connections) {
            snprintf(res->skipped, sizeof(res->skipped), "pool to target %d did not open", t);
            ret = -CLINK_EUNAVAIL;
        }
    }
    struct slot *slots = calloc(cfg->concurrency, sizeof(*slots));
    struct run r = {.msg = msg};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    r.payload = calloc(1, msg ? msg : 1);
    for (int phase = 0; phase < 2 && ret == 0; phase++) {
        unsigned ms = phase == 0 ? cfg->warmup_ms : cfg->duration_ms;
        atomic_store(&r.stop, 0);
        atomic_store(&r.active, (int)cfg->concurrency);
        for (unsigned i = 0; i < cfg->concurrency; i++) {
            struct slot *s = &slots[i];
            memset(s, 0, sizeof(*s));
            s->run = &r;
            s->pool = pools[i % (unsigned)cfg->ntargets];
            s->iov = (struct iovec){.iov_base = r.payload, .iov_len = msg};
            s->pcall.call = (struct clink_call){.method = CLINK_TOOL_ECHO,
                                                .iov = &s->iov,
                                                .iovcnt = 1,
                                                .timeout_ms = 30000,
                                                .cb = on_pool_done,
                                                .user = s};
        }
        double cpu0 = cpu_seconds(cfg->pids, cfg->npids);
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < cfg->concurrency; i++) {
            struct slot *s = &slots[i];
            s->t0 = now_ns();
            s->issued++;
            if (clink_pool_call(s->pool, &s->pcall) < 0) {
                s->failed++;
                slot_done(s);
            }
        }
        run_for(&r, ms);
        if (phase == 1) {
            tally(cfg, slots, msg, t0, cpu0, res);
        }
    }
    for (int t = 0; t < cfg->ntargets; t++) {
        clink_pool_release(pools[t]);
    }
    clink_cluster_free(cl);
    free(slots);
    free(r.payload);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return ret;
}

static int run_one(struct cfg *cfg, struct clink_node *node, enum clink_conn_mode mode, const char *scenario,
                   size_t msg, struct result *res)
{
    int one_way = strcmp(scenario, "throughput") == 0;
    unsigned nconn = cfg->connections * (unsigned)cfg->ntargets;
    struct clink_conn **conns = calloc(nconn, sizeof(*conns));
    struct slot *slots = calloc(cfg->concurrency, sizeof(*slots));
    struct run r = {.msg = msg, .one_way = one_way};
    int ret = 0;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    r.payload = malloc(msg ? msg : 1);
    memset(r.payload, 0xa5, msg ? msg : 1);

    for (unsigned i = 0; i < nconn; i++) {
        int t = (int)(i % (unsigned)cfg->ntargets);
        /* The stunnel baseline: a plaintext clink stream through an stunnel client/server pair to the first leaf. */
        int via_stunnel = cfg->use_stunnel;
        struct clink_connect_opts o = {.host = via_stunnel ? cfg->stunnel_host : cfg->hosts[t],
                                       .port = via_stunnel ? cfg->stunnel_port : cfg->ports[t],
                                       .expected_name = cfg->name,
                                       .mode = mode,
                                       .user =
                                           mode == CLINK_MODE_PLAIN && cfg->plain_user ? cfg->plain_user : cfg->user};
        char err[256];
        if ((ret = clink_connect_sync(node, &o, &conns[i], err, sizeof(err))) < 0) {
            snprintf(res->skipped, sizeof(res->skipped), "cannot connect to %s:%u: %s", cfg->hosts[t], cfg->ports[t],
                     err);
            goto out;
        }
    }
    struct clink_conn_status st;
    if (clink_conn_status(conns[0], &st) == 0) {
        snprintf(res->cipher, sizeof(res->cipher), "%s", mode == CLINK_MODE_PLAIN ? "-" : st.cipher);
        snprintf(res->tls_version, sizeof(res->tls_version), "%s", mode == CLINK_MODE_PLAIN ? "-" : st.tls_version);
    }
    /* Warm up, then measure: slots run from start to stop, counting only what completes after t_start. */
    for (int phase = 0; phase < 2; phase++) {
        unsigned ms = phase == 0 ? cfg->warmup_ms : cfg->duration_ms;
        if (ms == 0) {
            continue;
        }
        atomic_store(&r.stop, 0);
        atomic_store(&r.active, (int)cfg->concurrency);
        for (unsigned i = 0; i < cfg->concurrency; i++) {
            struct slot *s = &slots[i];
            memset(s, 0, sizeof(*s));
            s->run = &r;
            s->conn = conns[i % nconn];
            s->iov = (struct iovec){.iov_base = r.payload, .iov_len = msg};
            s->call = (struct clink_call){.method = one_way ? CLINK_TOOL_SINK : CLINK_TOOL_ECHO,
                                          .iov = &s->iov,
                                          .iovcnt = 1,
                                          .timeout_ms = 30000,
                                          .cb = on_done};
        }
        double cpu0 = cpu_seconds(cfg->pids, cfg->npids);
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < cfg->concurrency; i++) {
            struct slot *s = &slots[i];
            s->t0 = now_ns();
            s->issued++;
            while ((ret = clink_call_start(s->conn, &s->call)) == -CLINK_EAGAIN) {
                usleep(100);
            }
            if (ret < 0) {
                s->failed++;
                slot_done(s);
            }
        }
        run_for(&r, ms);
        if (phase == 1) {
            tally(cfg, slots, msg, t0, cpu0, res);
        }
    }
    ret = 0;
out:
    for (unsigned i = 0; i < nconn; i++) {
        if (conns[i]) {
            clink_conn_close(conns[i]);
        }
    }
    free(conns);
    free(slots);
    free(r.payload);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return ret;
}

/* ---- ceiling: this core's AEAD rate, in process, the bound no TLS transport can pass ---- */

static double aead_rate(const EVP_CIPHER *c, size_t len, unsigned ms)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    unsigned char key[32] = {1}, iv[12] = {2}, tag[16];
    unsigned char *in = calloc(1, len), *out = malloc(len + 16);
    double rate = 0;
    int outl = 0;
    if (x != NULL && in != NULL && out != NULL) {
        uint64_t t0 = now_ns(), end = t0 + (uint64_t)ms * 1000000ull, n = 0;
        while (now_ns() < end) {
            for (int k = 0; k < 16; k++) {
                iv[0] = (unsigned char)n;
                if (EVP_EncryptInit_ex(x, c, NULL, key, iv) != 1 ||
                    EVP_EncryptUpdate(x, out, &outl, in, (int)len) != 1 ||
                    EVP_EncryptFinal_ex(x, out + outl, &outl) != 1 ||
                    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1) {
                    goto out;
                }
                n++;
            }
        }
        rate = (double)n * (double)len / ((double)(now_ns() - t0) / 1e9);
    }
out:
    EVP_CIPHER_CTX_free(x);
    free(in);
    free(out);
    return rate;
}

/* ---- handshakes: dial, log in, close, as fast as `threads` threads can ---- */

struct hs_run {
    struct cfg *cfg;
    struct clink_node *node;
    enum clink_conn_mode mode;
    int resume;
    atomic_int stop;
    atomic_uint_fast64_t ok, failed;
    struct hist hist[8];
    char err[256];
};

struct hs_thread {
    struct hs_run *run;
    int idx;
};

static void *hs_loop(void *arg)
{
    struct hs_thread *th = arg;
    struct hs_run *r = th->run;
    struct cfg *cfg = r->cfg;
    for (unsigned i = (unsigned)th->idx; !atomic_load(&r->stop); i++) {
        int t = (int)(i % (unsigned)cfg->ntargets);
        struct clink_connect_opts o = {
            .host = cfg->hosts[t],
            .port = cfg->ports[t],
            .expected_name = cfg->name,
            .mode = r->mode,
            .user = r->mode == CLINK_MODE_PLAIN && cfg->plain_user ? cfg->plain_user : cfg->user,
            .no_resume = !r->resume,
        };
        struct clink_conn *c;
        char err[256];
        uint64_t t0 = now_ns();
        int ret = clink_connect_sync(r->node, &o, &c, err, sizeof(err));
        if (ret == 0) {
            hist_add(&r->hist[th->idx], now_ns() - t0);
            atomic_fetch_add(&r->ok, 1);
            clink_conn_close(c);
        } else {
            if (atomic_fetch_add(&r->failed, 1) == 0) {
                snprintf(r->err, sizeof(r->err), "%s", err);
            }
        }
    }
    return NULL;
}

static int run_handshakes(struct cfg *cfg, struct clink_node *node, enum clink_conn_mode mode, int resume,
                          struct result *res)
{
    unsigned threads = cfg->concurrency < 4 ? cfg->concurrency : 4;
    struct hs_run *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -CLINK_ENOMEM;
    }
    r->cfg = cfg;
    r->node = node;
    r->mode = mode;
    r->resume = resume;
    struct hs_thread th[8];
    pthread_t tid[8];
    for (int phase = 0; phase < 2; phase++) {
        atomic_store(&r->stop, 0);
        atomic_store(&r->ok, 0);
        atomic_store(&r->failed, 0);
        memset(r->hist, 0, sizeof(r->hist));
        double cpu0 = cpu_seconds(cfg->pids, cfg->npids);
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < threads; i++) {
            th[i] = (struct hs_thread){.run = r, .idx = (int)i};
            pthread_create(&tid[i], NULL, hs_loop, &th[i]);
        }
        usleep((phase == 0 ? cfg->warmup_ms : cfg->duration_ms) * 1000u);
        atomic_store(&r->stop, 1);
        for (unsigned i = 0; i < threads; i++) {
            pthread_join(tid[i], NULL);
        }
        if (phase == 1) {
            struct hist *h = calloc(1, sizeof(*h));
            for (unsigned i = 0; i < threads; i++) {
                hist_merge(h, &r->hist[i]);
            }
            res->secs = (double)(now_ns() - t0) / 1e9;
            res->ok = atomic_load(&r->ok);
            res->failed = atomic_load(&r->failed);
            res->issued = res->ok + res->failed;
            res->ops = (double)res->ok / res->secs;
            res->p50 = hist_pct_us(h, 0.50);
            res->p99 = hist_pct_us(h, 0.99);
            res->p999 = hist_pct_us(h, 0.999);
            res->cpu_s = cpu_seconds(cfg->pids, cfg->npids) - cpu0;
            res->concurrency = threads;
            free(h);
        }
    }
    if (res->ok == 0) {
        snprintf(res->skipped, sizeof(res->skipped), "no dial succeeded: %s", r->err);
    }
    free(r);
    return 0;
}

/* ---- restart storm: an in-process leaf with many pooled connections goes away and comes back ---- */

static struct clink_node *storm_leaf(struct clink_tls_ctx *tls, uint16_t port)
{
    struct clink_node_opts o = {.workers = 1, .tls = tls};
    struct clink_node *n = NULL;
    if (clink_node_new(&o, &n) < 0) {
        return NULL;
    }
    if (clink_node_listen(n, "127.0.0.1", port) < 0 || clink_node_start(n) < 0) {
        clink_node_free(n);
        return NULL;
    }
    return n;
}

static void storm_totals(struct clink_cluster *cl, unsigned npools, struct clink_pool_stats *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (unsigned i = 0; i < npools; i++) {
        char name[16];
        snprintf(name, sizeof(name), "storm%u", i);
        struct clink_pool *p = clink_cluster_pool(cl, name);
        if (p == NULL) {
            continue;
        }
        struct clink_pool_stats s;
        clink_pool_stats(p, &s);
        clink_pool_release(p);
        sum->conns_open += s.conns_open;
        sum->handshakes_full += s.handshakes_full;
        sum->handshakes_resumed += s.handshakes_resumed;
        sum->handshakes_failed += s.handshakes_failed;
    }
}

static int storm_wait_open(struct clink_cluster *cl, unsigned npools, unsigned want, unsigned ms)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
    struct clink_pool_stats s;
    do {
        storm_totals(cl, npools, &s);
        if (s.conns_open >= want) {
            return 0;
        }
        usleep(1000);
    } while (now_ns() < end);
    return -1;
}

static int run_storm(struct cfg *cfg, struct clink_node *node, struct clink_tls_ctx *tls, struct result *res,
                     double *resumed_share)
{
    unsigned per = 32, npools = (cfg->storm_conns + per - 1) / per, total = npools * per;
    struct clink_node *leaf = storm_leaf(tls, 0);
    if (leaf == NULL) {
        snprintf(res->skipped, sizeof(res->skipped), "cannot start the in-process leaf");
        return -1;
    }
    uint16_t port = clink_node_port(leaf);
    struct clink_cluster_opts co = {
        .node = node,
        .pool = {
            .min_conns = per, .max_conns = per, .backoff_min_ms = 20, .backoff_max_ms = 500, .max_dials_in_flight = 8}};
    struct clink_cluster *cl = NULL;
    int ret = clink_cluster_new(&co, &cl);
    for (unsigned i = 0; ret == 0 && i < npools; i++) {
        char name[16];
        snprintf(name, sizeof(name), "storm%u", i);
        struct clink_peer p = {.name = name, .host = "127.0.0.1", .port = port, .expected_name = cfg->name};
        ret = clink_cluster_add(cl, &p);
    }
    if (ret < 0 || storm_wait_open(cl, npools, total, 20000) < 0) {
        snprintf(res->skipped, sizeof(res->skipped), "the %u connections did not open", total);
        clink_cluster_free(cl);
        clink_node_free(leaf);
        return -1;
    }
    usleep(200000); /* every connection's tickets have arrived */
    struct clink_pool_stats before;
    storm_totals(cl, npools, &before);
    clink_node_free(leaf); /* the leaf goes away: every connection dies at once */
    struct clink_pool_stats cur;
    for (int i = 0; i < 10000 && (storm_totals(cl, npools, &cur), cur.conns_open > 0); i++) {
        usleep(1000);
    }
    double cpu0 = cpu_seconds(cfg->pids, cfg->npids);
    uint64_t t0 = now_ns();
    leaf = storm_leaf(tls, port); /* back, with the same ticket keys: a restart that keeps its key file */
    ret = leaf ? storm_wait_open(cl, npools, total, 30000) : -1;
    uint64_t t1 = now_ns();
    struct clink_pool_stats after;
    storm_totals(cl, npools, &after);
    res->cpu_s = cpu_seconds(cfg->pids, cfg->npids) - cpu0;
    res->secs = (double)(t1 - t0) / 1e9;
    res->ok = after.conns_open;
    res->issued = total;
    res->ops = (double)total / res->secs;
    uint64_t full = after.handshakes_full - before.handshakes_full;
    uint64_t resumed = after.handshakes_resumed - before.handshakes_resumed;
    *resumed_share = full + resumed ? (double)resumed / (double)(full + resumed) : 0;
    if (ret < 0) {
        snprintf(res->skipped, sizeof(res->skipped), "only %u of %u connections came back in 30 s", after.conns_open,
                 total);
    }
    res->concurrency = total;
    clink_cluster_free(cl);
    clink_node_free(leaf);
    return ret;
}

static void emit_json(struct cfg *cfg, const struct result *r)
{
    if (cfg->jf == NULL) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "scenario", r->scenario);
    cJSON_AddStringToObject(o, "mode", r->mode);
    cJSON_AddNumberToObject(o, "msg_size", (double)r->msg);
    cJSON_AddNumberToObject(o, "concurrency", r->concurrency);
    cJSON_AddNumberToObject(o, "connections", r->connections);
    cJSON_AddNumberToObject(o, "workers", r->workers);
    if (r->skipped[0]) {
        cJSON_AddStringToObject(o, "skipped", r->skipped);
    } else {
        cJSON_AddNumberToObject(o, "ops_per_s", round(r->ops));
        cJSON_AddNumberToObject(o, "bytes_per_s", round(r->bps));
        cJSON_AddNumberToObject(o, "p50_us", r->p50);
        cJSON_AddNumberToObject(o, "p99_us", r->p99);
        cJSON_AddNumberToObject(o, "p999_us", r->p999);
        cJSON_AddNumberToObject(o, "cpu_s", r->cpu_s);
        cJSON_AddNumberToObject(o, "seconds", r->secs);
        cJSON_AddNumberToObject(o, "issued", (double)r->issued);
        cJSON_AddNumberToObject(o, "ok", (double)r->ok);
        cJSON_AddNumberToObject(o, "failed", (double)r->failed);
        if (r->ok > 0) {
            cJSON_AddNumberToObject(o, "cpu_us_per_op", r->cpu_s / (double)r->ok * 1e6);
        }
        if (strcmp(r->scenario, "storm") == 0) {
            cJSON_AddNumberToObject(o, "resumed_share", r->resumed_share);
        }
    }
    cJSON_AddStringToObject(o, "cipher", r->cipher[0] ? r->cipher : "-");
    cJSON_AddStringToObject(o, "tls_version", r->tls_version[0] ? r->tls_version : "-");
    cJSON_AddStringToObject(o, "kernel", cfg->kernel);
    cJSON_AddStringToObject(o, "cpu_model", cfg->cpu);
    cJSON_AddStringToObject(o, "build_type", cfg->build);
    char *s = cJSON_PrintUnformatted(o);
    fprintf(cfg->jf, "%s\n", s);
    fflush(cfg->jf);
    cJSON_free(s);
    cJSON_Delete(o);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: clink-bench --target HOST:PORT [--target ...] --cert FILE --key FILE --ca FILE [options]\n"
               "\n"
               "Measure RPC rate, latency and one-way throughput against clink nodes (clink-node)\n"
               "in each transport mode, all in one run, and report each mode against plaintext.\n"
               "\n"
               "Options:\n"
               "  --target HOST:PORT     a node to call (repeat for several leaves)\n"
               "  --name NAME            name the nodes' certificates carry (default: the host)\n"
               "  --cert/--key/--ca FILE this client's certificate, key and trusted CAs\n"
               "  --user NAME            account to log in as (nodes with accounts; by certificate)\n"
               "  --plain-user NAME      account for the plaintext baseline (default: --user)\n"
               "  --modes LIST           plain,tls,ktls (default: all; a mode that cannot run says why)\n"
               "  --scenarios LIST       ceiling,rpc,throughput,handshake,storm,pool (default: all)\n"
               "  --storm-conns N        pooled connections in the restart storm (default 256; --quick 64)\n"
               "  --stunnel HOST:PORT    an stunnel client whose server side leads to a target's plaintext port:\n"
               "                         the throughput scenario adds mode 'stunnel' (the sidecar users would deploy)\n"
               "  --sizes LIST           message sizes in bytes (default: 64,1024,16384,65536,262144,1048576)\n"
               "  --concurrency N        calls in flight (default 64)\n"
               "  --connections N        connections per target (default 2)\n"
               "  --workers N            client worker threads (default 2)\n"
               "  --duration-ms N        measured time per result line (default 3000)\n"
               "  --warmup-ms N          unmeasured time before each (default 500)\n"
               "  --quick                short run: sizes 64,16384, 1000 ms each, 200 ms warm-up\n"
               "  --json FILE            append one JSON object per result line\n"
               "  --measure-pid PID      add this process's CPU time to cpu_s (repeat; e.g. the leaves)\n"
               "  -h, --help             this text\n");
}

static int parse_list(const char *s, size_t *out, int max)
{
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) {
        char *end;
        unsigned long v = strtoul(t, &end, 10);
        if (*end != '\0' || v > (16u << 20)) {
            free(copy);
            return -1;
        }
        out[n++] = v;
    }
    free(copy);
    return n;
}

static void host_info(struct cfg *cfg)
{
    struct utsname u;
    snprintf(cfg->kernel, sizeof(cfg->kernel), "%s", uname(&u) == 0 ? u.release : "?");
    snprintf(cfg->cpu, sizeof(cfg->cpu), "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 2;
                p[strcspn(p, "\n")] = '\0';
                snprintf(cfg->cpu, sizeof(cfg->cpu), "%s", p);
            }
            break;
        }
    }
    if (f) {
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"target", required_argument, NULL, 'T'},
        {"name", required_argument, NULL, 'n'},
        {"user", required_argument, NULL, 'u'},
        {"plain-user", required_argument, NULL, 'U'},
        {"storm-conns", required_argument, NULL, 'S'},
        {"stunnel", required_argument, NULL, 'X'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"modes", required_argument, NULL, 'm'},
        {"scenarios", required_argument, NULL, 's'},
        {"sizes", required_argument, NULL, 'z'},
        {"concurrency", required_argument, NULL, 'C'},
        {"connections", required_argument, NULL, 'N'},
        {"workers", required_argument, NULL, 'w'},
        {"duration-ms", required_argument, NULL, 'd'},
        {"warmup-ms", required_argument, NULL, 'W'},
        {"quick", no_argument, NULL, 'q'},
        {"json", required_argument, NULL, 'j'},
        {"measure-pid", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cfg cfg = {.concurrency = 64,
                      .connections = 2,
                      .workers = 2,
                      .duration_ms = 3000,
                      .warmup_ms = 500,
                      .modes_plain = 1,
                      .modes_tls = 1,
                      .modes_ktls = 1,
                      .scen_rpc = 1,
                      .scen_throughput = 1,
                      .scen_handshake = 1,
                      .scen_storm = 1,
                      .scen_pool = 1,
                      .scen_ceiling = 1};
    cfg.nsizes = parse_list("64,1024,16384,65536,262144,1048576", cfg.sizes, MAX_SIZES);
    int ch, quick = 0;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'T':
            if (cfg.ntargets == MAX_TARGETS ||
                clink_tool_hostport(optarg, cfg.hosts[cfg.ntargets], sizeof(cfg.hosts[0]), &cfg.ports[cfg.ntargets]) <
                    0) {
                fprintf(stderr, "clink-bench: --target: expected HOST:PORT, got '%s'\n", optarg);
                return 2;
            }
            cfg.ntargets++;
            break;
        case 'n':
            cfg.name = optarg;
            break;
        case 'u':
            cfg.user = optarg;
            break;
        case 'U':
            cfg.plain_user = optarg;
            break;
        case 'c':
            cfg.cert = optarg;
            break;
        case 'k':
            cfg.key = optarg;
            break;
        case 'a':
            cfg.ca = optarg;
            break;
        case 'm':
            cfg.modes_plain = strstr(optarg, "plain") != NULL;
            cfg.modes_ktls = strstr(optarg, "ktls") != NULL;
            cfg.modes_tls = strstr(optarg, "tls,") != NULL || strcmp(optarg, "tls") == 0 ||
                            (strlen(optarg) >= 4 && strcmp(optarg + strlen(optarg) - 4, ",tls") == 0);
            break;
        case 's':
            cfg.scen_rpc = strstr(optarg, "rpc") != NULL;
            cfg.scen_throughput = strstr(optarg, "throughput") != NULL;
            cfg.scen_handshake = strstr(optarg, "handshake") != NULL;
            cfg.scen_storm = strstr(optarg, "storm") != NULL;
            cfg.scen_pool = strstr(optarg, "pool") != NULL;
            cfg.scen_ceiling = strstr(optarg, "ceiling") != NULL;
            break;
        case 'X':
            if (clink_tool_hostport(optarg, cfg.stunnel_host, sizeof(cfg.stunnel_host), &cfg.stunnel_port) < 0 ||
                cfg.stunnel_port == 0) {
                fprintf(stderr, "clink-bench: --stunnel: expected HOST:PORT, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'S':
            cfg.storm_conns = (unsigned)strtoul(optarg, NULL, 10);
            if (cfg.storm_conns == 0 || cfg.storm_conns > 4096) {
                fprintf(stderr, "clink-bench: --storm-conns: expected 1 to 4096\n");
                return 2;
            }
            break;
        case 'z':
            if ((cfg.nsizes = parse_list(optarg, cfg.sizes, MAX_SIZES)) <= 0) {
                fprintf(stderr, "clink-bench: --sizes: expected a comma-separated list of byte counts\n");
                return 2;
            }
            break;
        case 'C':
            cfg.concurrency = (unsigned)atoi(optarg);
            break;
        case 'N':
            cfg.connections = (unsigned)atoi(optarg);
            break;
        case 'w':
            cfg.workers = (unsigned)atoi(optarg);
            break;
        case 'd':
            cfg.duration_ms = (unsigned)atoi(optarg);
            break;
        case 'W':
            cfg.warmup_ms = (unsigned)atoi(optarg);
            break;
        case 'q':
            quick = 1;
            break;
        case 'j':
            cfg.json = optarg;
            break;
        case 'p':
            if (cfg.npids < MAX_TARGETS) {
                cfg.pids[cfg.npids++] = (pid_t)atoi(optarg);
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (quick) {
        cfg.nsizes = parse_list("64,16384", cfg.sizes, MAX_SIZES);
        cfg.duration_ms = 1000;
        cfg.warmup_ms = 200;
    }
    if (cfg.storm_conns == 0) {
        cfg.storm_conns = quick ? 64 : 256;
    }
    if (optind != argc || cfg.ntargets == 0 || !cfg.cert || !cfg.key || !cfg.ca || cfg.concurrency == 0 ||
        cfg.connections == 0 || cfg.duration_ms == 0 || (!cfg.modes_plain && !cfg.modes_tls && !cfg.modes_ktls) ||
        (!cfg.scen_rpc && !cfg.scen_throughput && !cfg.scen_handshake && !cfg.scen_storm && !cfg.scen_pool &&
         !cfg.scen_ceiling)) {
        fprintf(stderr, "clink-bench: need --target, --cert, --key, --ca, and non-zero counts\n"
                        "Run 'clink-bench --help' for usage.\n");
        return 2;
    }
    host_info(&cfg);
#ifdef NDEBUG
    cfg.build = "release";
#else
    cfg.build = "debug";
#endif
    if (cfg.json && (cfg.jf = fopen(cfg.json, "a")) == NULL) {
        fprintf(stderr, "clink-bench: %s: %s\n", cfg.json, strerror(errno));
        return 1;
    }
    struct clink_tls_opts to = {.cert_file = cfg.cert, .key_file = cfg.key, .ca_file = cfg.ca};
    struct clink_tls_ctx *tls = NULL;
    char err[512];
    if (clink_tls_ctx_new(&to, &tls, err, sizeof(err)) < 0) {
        fprintf(stderr, "clink-bench: TLS configuration: %s\n", err);
        return 1;
    }
    struct clink_node_opts no = {.workers = cfg.workers, .tls = tls, .allow_plaintext = cfg.modes_plain};
    struct clink_node *node = NULL;
    int ret = clink_node_new(&no, &node);
    if (ret == 0) {
        ret = clink_node_start(node);
    }
    if (ret < 0) {
        fprintf(stderr, "clink-bench: %s\n", clink_strerror(ret));
        return 1;
    }
    struct clink_features feat;
    clink_node_features(node, &feat);
    printf("clink-bench: %d target(s), %u connections each, %u in flight, %u client workers, %s build\n", cfg.ntargets,
           cfg.connections, cfg.concurrency, cfg.workers, cfg.build);
    printf("host: kernel %s, %s; io_uring %s; kTLS ULP %s\n", cfg.kernel, cfg.cpu,
           feat.defer_taskrun ? "SINGLE_ISSUER|DEFER_TASKRUN" : "basic", feat.ktls ? "present" : "absent");
    printf("\n%-10s %-5s %8s %12s %12s %9s %9s %9s %7s %9s  %s\n", "scenario", "mode", "size", "ops/s", "MB/s",
           "p50 us", "p99 us", "p999 us", "cpu s", "vs plain", "cipher");

    int failures = 0;
    int tty = isatty(STDERR_FILENO); /* progress only where someone watches */
    /* Ceiling first: one core's AEAD rate on 16 KiB records, the bound for any user-space TLS. */
    for (int ci = 0; cfg.scen_ceiling && ci < 2; ci++) {
        struct result r = {.scenario = "ceiling",
                           .mode = ci == 0 ? "aes128gcm" : "chacha20",
                           .msg = 16384,
                           .concurrency = 1,
                           .workers = 1};
        r.bps = aead_rate(ci == 0 ? EVP_aes_128_gcm() : EVP_chacha20_poly1305(), 16384, cfg.duration_ms / 2);
        r.ops = r.bps / 16384;
        r.secs = cfg.duration_ms / 2 / 1e3;
        r.ok = r.issued = (uint64_t)(r.ops * r.secs);
        snprintf(r.cipher, sizeof(r.cipher), "%s", ci == 0 ? "AES-128-GCM" : "ChaCha20-Poly1305");
        emit_json(&cfg, &r);
        printf("%-10s %-9s %6d %12.0f %12.1f %9s %9s %9s %7s %9s  one core, in process (OpenSSL EVP)\n", r.scenario,
               r.mode, 16384, r.ops, r.bps / 1e6, "-", "-", "-", "-", "-");
        if (ci == 0) {
            cfg.ceiling_aes = r.bps;
        }
    }
    const char *scen[2] = {"rpc", "throughput"};
    for (int si = 0; si < 2; si++) {
        if ((si == 0 && !cfg.scen_rpc) || (si == 1 && !cfg.scen_throughput)) {
            continue;
        }
        for (int zi = 0; zi < cfg.nsizes; zi++) {
            double plain_ops = 0;
            for (int mi = 0; mi < 4; mi++) {
                const char *mname = mi == 0 ? "plain" : mi == 1 ? "tls" : mi == 2 ? "ktls" : "stunnel";
                if ((mi == 0 && !cfg.modes_plain) || (mi == 1 && !cfg.modes_tls) || (mi == 2 && !cfg.modes_ktls) ||
                    (mi == 3 && (cfg.stunnel_port == 0 || si != 1))) {
                    continue;
                }
                struct result r = {0};
                if (mi == 2) {
                    snprintf(r.skipped, sizeof(r.skipped), "%s",
                             feat.ktls ? "kTLS offload is not implemented in this build yet"
                                       : "this kernel offers no kTLS (no 'tls' in tcp_available_ulp)");
                } else {
                    if (tty) {
                        fprintf(stderr, "  running %s %s %zu B ...\r", scen[si], mname, cfg.sizes[zi]);
                        fflush(stderr);
                    }
                    cfg.use_stunnel = mi == 3;
                    ret = run_one(&cfg, node, mi == 1 ? CLINK_MODE_TLS : CLINK_MODE_PLAIN, scen[si], cfg.sizes[zi], &r);
                    cfg.use_stunnel = 0;
                    if (ret < 0 && !r.skipped[0]) {
                        snprintf(r.skipped, sizeof(r.skipped), "%s", clink_strerror(ret));
                    }
                }
                r.scenario = scen[si];
                r.mode = mname;
                r.msg = cfg.sizes[zi];
                r.concurrency = cfg.concurrency;
                r.connections = cfg.connections * (unsigned)cfg.ntargets;
                r.workers = cfg.workers;
                emit_json(&cfg, &r);
                if (r.skipped[0]) {
                    printf("%-10s %-5s %8zu  skipped: %s\n", r.scenario, r.mode, r.msg, r.skipped);
                    if (mi < 2) {
                        failures++;
                    }
                    continue;
                }
                if (mi == 0) {
                    plain_ops = r.ops;
                }
                if (si == 1 && r.msg >= cfg.thr_size) { /* the closing ratios use the largest size measured */
                    cfg.thr_size = r.msg;
                    *(mi == 0 ? &cfg.thr_plain : mi == 1 ? &cfg.thr_tls : &cfg.thr_stunnel) = r.bps;
                }
                char ratio[16] = "-";
                if (mi > 0 && plain_ops > 0) {
                    snprintf(ratio, sizeof(ratio), "%.2fx", r.ops / plain_ops);
                }
                printf("%-10s %-5s %8zu %12.0f %12.1f %9.1f %9.1f %9.1f %7.2f %9s  %s\n", r.scenario, r.mode, r.msg,
                       r.ops, r.bps / 1e6, r.p50, r.p99, r.p999, r.cpu_s, ratio, r.cipher);
                if (r.failed > 0 || r.ok + r.failed != r.issued) {
                    printf("  !! %llu of %llu calls failed\n", (unsigned long long)r.failed,
                           (unsigned long long)r.issued);
                    failures++;
                }
            }
        }
    }
    /* Handshakes: plaintext dial vs full TLS 1.3 vs resumed, one run, same targets. */
    double plain_hs = 0;
    for (int mi = 0; cfg.scen_handshake && mi < 3; mi++) {
        const char *mname = mi == 0 ? "plain" : mi == 1 ? "tls" : "resumed";
        if ((mi == 0 && !cfg.modes_plain) || (mi > 0 && !cfg.modes_tls)) {
            continue;
        }
        if (tty) {
            fprintf(stderr, "  running handshake %s ...          \r", mname);
            fflush(stderr);
        }
        struct result r = {.scenario = "handshake", .mode = mname, .workers = cfg.workers, .connections = 1};
        ret = run_handshakes(&cfg, node, mi == 0 ? CLINK_MODE_PLAIN : CLINK_MODE_TLS, mi == 2, &r);
        emit_json(&cfg, &r);
        if (r.skipped[0] || ret < 0) {
            printf("%-10s %-7s %6s  skipped: %s\n", r.scenario, r.mode, "-", r.skipped);
            failures++;
            continue;
        }
        if (mi == 0) {
            plain_hs = r.ops;
        }
        if (mi > 0) {
            *(mi == 1 ? &cfg.hs_full : &cfg.hs_resumed) = r.ops;
        }
        char ratio[16] = "-";
        if (mi > 0 && plain_hs > 0) {
            snprintf(ratio, sizeof(ratio), "%.2fx", r.ops / plain_hs);
        }
        printf("%-10s %-7s %6s %12.0f %12s %9.1f %9.1f %9.1f %7.2f %9s  %.0f us CPU per dial (both ends)\n", r.scenario,
               r.mode, "-", r.ops, "-", r.p50, r.p99, r.p999, r.cpu_s, ratio,
               r.ok ? r.cpu_s / (double)r.ok * 1e6 : 0.0);
        if (r.failed > 0) {
            printf("  !! %llu of %llu dials failed\n", (unsigned long long)r.failed, (unsigned long long)r.issued);
            failures++;
        }
    }
    /* Pool overhead: 64-byte calls over the same connections, direct vs through a pool, back to back. */
    if (cfg.scen_pool && cfg.modes_tls) {
        struct result direct = {.scenario = "pool", .mode = "direct", .workers = cfg.workers};
        struct result pooled = {.scenario = "pool", .mode = "pooled", .workers = cfg.workers};
        if (tty) {
            fprintf(stderr, "  running pool overhead ...          \r");
            fflush(stderr);
        }
        int r1 = run_one(&cfg, node, CLINK_MODE_TLS, "rpc", 64, &direct);
        int r2 = run_pool(&cfg, node, 64, &pooled);
        struct result *rs[2] = {&direct, &pooled};
        for (int i = 0; i < 2; i++) {
            struct result *r = rs[i];
            r->scenario = "pool";
            r->mode = i == 0 ? "direct" : "pooled";
            r->msg = 64;
            r->concurrency = cfg.concurrency;
            r->connections = cfg.connections * (unsigned)cfg.ntargets;
            r->workers = cfg.workers;
            if ((i == 0 ? r1 : r2) < 0 && !r->skipped[0]) {
                snprintf(r->skipped, sizeof(r->skipped), "%s", clink_strerror(i == 0 ? r1 : r2));
            }
            emit_json(&cfg, r);
            if (r->skipped[0]) {
                printf("%-10s %-7s %6d  skipped: %s\n", r->scenario, r->mode, 64, r->skipped);
                failures++;
                continue;
            }
            char ratio[16] = "-";
            if (i == 1 && direct.ops > 0) {
                snprintf(ratio, sizeof(ratio), "%.2fx", r->ops / direct.ops);
            }
            *(i == 0 ? &cfg.pool_direct : &cfg.pool_pooled) = r->ops;
            printf("%-10s %-7s %6d %12.0f %12.1f %9.1f %9.1f %9.1f %7.2f %9s  %s\n", r->scenario, r->mode, 64, r->ops,
                   r->bps / 1e6, r->p50, r->p99, r->p999, r->cpu_s, ratio,
                   i == 0 ? "fixed connections" : "vs direct: pick + bookkeeping per call");
            if (r->failed > 0) {
                printf("  !! %llu of %llu calls failed\n", (unsigned long long)r->failed,
                       (unsigned long long)r->issued);
                failures++;
            }
        }
    }
    if (cfg.scen_storm && cfg.modes_tls) {
        if (tty) {
            fprintf(stderr, "  running restart storm ...          \r");
            fflush(stderr);
        }
        struct result r = {.scenario = "storm", .mode = "tls", .workers = cfg.workers};
        double share = 0;
        ret = run_storm(&cfg, node, tls, &r, &share);
        r.resumed_share = share;
        emit_json(&cfg, &r);
        if (r.skipped[0]) {
            printf("%-10s %-7s %6u  skipped: %s\n", r.scenario, r.mode, cfg.storm_conns, r.skipped);
            failures++;
        } else {
            printf("%-10s %-7s %6u %12.0f %12s %9s %9s %9s %7.2f %9s  %u connections back in %.0f ms, %.0f%% "
                   "resumed\n",
                   r.scenario, r.mode, r.concurrency, r.ops, "-", "-", "-", "-", r.cpu_s, "-", r.concurrency,
                   r.secs * 1e3, share * 100);
        }
    }
    if (tty) {
        fprintf(stderr, "%60s\r", "");
    }
    /* The ratios a reader wants first, all from this run. */
    printf("\nratios (this run):\n");
    if (cfg.thr_plain > 0 && cfg.thr_tls > 0) {
        printf("  tls/plain         %.2fx  throughput, %zu B messages\n", cfg.thr_tls / cfg.thr_plain, cfg.thr_size);
    }
    if (cfg.thr_tls > 0 && cfg.ceiling_aes > 0) {
        printf("  tls/ceiling       %.2fx  throughput vs one core's AES-128-GCM rate\n", cfg.thr_tls / cfg.ceiling_aes);
    }
    printf("  ktls/tls          -      kTLS offload is not built yet\n");
    if (cfg.thr_tls > 0 && cfg.thr_stunnel > 0) {
        printf("  clink tls/stunnel %.2fx  throughput, %zu B messages (plaintext clink through an stunnel pair)\n",
               cfg.thr_tls / cfg.thr_stunnel, cfg.thr_size);
    }
    if (cfg.hs_full > 0 && cfg.hs_resumed > 0) {
        printf("  resumed/full      %.2fx  handshakes per second\n", cfg.hs_resumed / cfg.hs_full);
    }
    if (cfg.pool_direct > 0 && cfg.pool_pooled > 0) {
        printf("  pooled/direct     %.2fx  64 B calls\n", cfg.pool_pooled / cfg.pool_direct);
    }
    CLINK_IGNORE(clink_node_shutdown(node, 2000));
    clink_node_free(node);
    clink_tls_ctx_free(tls);
    if (cfg.jf) {
        fclose(cfg.jf);
    }
    return failures ? 1 : 0;
}
