/*
 * clink-bench: chains of calls for a measured time, over fixed connections
 * or through pools. rpc (echo: request and answer of the same size),
 * throughput (sink: the answer is empty, so bytes flow one way), pool (the
 * same echo, direct vs pooled) and fanout (the aggregator's method: echo on
 * every leaf) all run here.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "clink/methods.h"

struct run;

/* One caller: a chain of calls, each started from the previous one's callback. */
struct slot {
    struct clink_call call;       /* over a fixed connection */
    struct clink_pool_call pcall; /* through a pool */
    struct clink_conn *conn;
    struct clink_pool *pool;
    struct iovec iov;
    struct run *run;
    uint64_t t0;
    struct hist hist;
    uint64_t issued, ok, failed;
};

struct run {
    atomic_int stop;
    atomic_int active;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t msg;
    int one_way, pooled;
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

static int start(struct slot *s)
{
    s->t0 = now_ns();
    s->issued++;
    return s->run->pooled ? clink_pool_call_start(s->pool, &s->pcall) : clink_call_start(s->conn, &s->call);
}

static void on_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct slot *s = call->user;
    (void)resp;
    uint64_t t = now_ns();
    if (status == 0 && len == (s->run->one_way ? 0 : s->run->msg)) {
        s->ok++;
        hist_add(&s->hist, t - s->t0);
    } else {
        s->failed++;
    }
    if (atomic_load_explicit(&s->run->stop, memory_order_relaxed)) {
        slot_done(s);
        return;
    }
    if (start(s) < 0) {
        s->failed++; /* issued and failed: nothing is dropped from the books */
        slot_done(s);
    }
}

/* Let the chains run for ms, then stop them and wait until every caller has finished its last call. */
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

static void tally(const struct slot *slots, unsigned n, size_t msg, struct result *res)
{
    struct hist *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        hist_merge(h, &slots[i].hist);
        res->issued += slots[i].issued;
        res->ok += slots[i].ok;
        res->failed += slots[i].failed;
    }
    res->ops = (double)res->ok / res->secs;
    res->bps = (double)res->ok * (double)msg / res->secs;
    res->p50 = hist_pct_us(h, 0.50);
    res->p99 = hist_pct_us(h, 0.99);
    res->p999 = hist_pct_us(h, 0.999);
    free(h);
}

void describe_conn(struct clink_conn *c, struct result *res)
{
    struct clink_conn_status st;
    if (!clink_conn_plaintext(c) && clink_conn_get_status(c, &st) == 0) {
        snprintf(res->cipher, sizeof(res->cipher), "%s", st.cipher);
        snprintf(res->tls_version, sizeof(res->tls_version), "%s", st.tls_version);
    }
}

/* The cipher and version a mode negotiates: the given connection's, or from one dial to the first target. */
static void describe(struct cfg *cfg, const struct call_spec *sp, struct result *res)
{
    if (sp->mode == CLINK_MODE_PLAIN) {
        return;
    }
    if (sp->conn != NULL) {
        describe_conn(sp->conn, res);
        return;
    }
    struct clink_connect_opts o = {
        .host = cfg->hosts[0], .port = cfg->ports[0], .expected_name = cfg->name, .mode = sp->mode, .user = cfg->user};
    struct clink_conn *c;
    if (clink_connect_sync(cfg->node, &o, &c, NULL, 0) == 0) {
        describe_conn(c, res);
        clink_conn_close(c);
    }
}

/* Pools of exactly conns_per_target connections to each target, opened before anything is measured. */
static int open_pools(struct cfg *cfg, const struct call_spec *sp, struct clink_cluster **out,
                      struct clink_pool **pools, struct result *res)
{
    struct clink_cluster_opts co = {.node = cfg->node,
                                    .pool = {.min_conns = sp->conns_per_target,
                                             .max_conns = sp->conns_per_target,
                                             .max_calls_per_conn = 1u << 20,
                                             .max_waiting = 1u << 20,
                                             .ktls = sp->ktls}};
    int ret = clink_cluster_new(&co, out);
    for (int t = 0; t < sp->ntargets && ret == 0; t++) {
        char name[24];
        snprintf(name, sizeof(name), "target%d", t);
        struct clink_peer p = {.name = name,
                               .host = cfg->hosts[t],
                               .port = cfg->ports[t],
                               .expected_name = cfg->name,
                               .ssl_mode = sp->mode == CLINK_MODE_PLAIN ? CLINK_SSL_DISABLED : CLINK_SSL_DEFAULT,
                               .user = sp->mode == CLINK_MODE_PLAIN && cfg->plain_user ? cfg->plain_user : cfg->user};
        ret = clink_cluster_add(*out, &p);
        pools[t] = ret == 0 ? clink_cluster_pool(*out, name) : NULL;
    }
    for (int t = 0; t < sp->ntargets && ret == 0; t++) {
        struct clink_pool_stats s;
        uint64_t end = now_ns() + 10000000000ull;
        do {
            clink_pool_get_stats(pools[t], &s);
            usleep(1000);
        } while (s.conns_open < sp->conns_per_target && now_ns() < end);
        if (s.conns_open < sp->conns_per_target) {
            snprintf(res->skipped, sizeof(res->skipped), "the pool to %s:%u did not open in 10 s", cfg->hosts[t],
                     cfg->ports[t]);
            ret = -CLINK_EUNAVAIL;
        }
    }
    return ret;
}

int open_conns(struct cfg *cfg, const struct call_spec *sp, struct clink_conn **conns, unsigned n, struct result *res)
{
    for (unsigned i = 0; i < n; i++) {
        int t = sp->target + (int)(i % (unsigned)sp->ntargets);
        struct clink_connect_opts o = {.host = sp->via_stunnel      ? cfg->stunnel_host
                                               : sp->via_aggregator ? cfg->agg_host
                                                                    : cfg->hosts[t],
                                       .port = sp->via_stunnel      ? cfg->stunnel_port
                                               : sp->via_aggregator ? cfg->agg_port
                                                                    : cfg->ports[t],
                                       .expected_name = cfg->name,
                                       .mode = sp->mode,
                                       .ktls = sp->ktls,
                                       .user = sp->mode == CLINK_MODE_PLAIN && cfg->plain_user ? cfg->plain_user
                                                                                               : cfg->user};
        char err[256];
        int ret = clink_connect_sync(cfg->node, &o, &conns[i], err, sizeof(err));
        if (ret < 0) {
            snprintf(res->skipped, sizeof(res->skipped), "cannot connect to %s:%u: %s", o.host, o.port, err);
            return ret;
        }
    }
    return 0;
}

int run_calls(struct cfg *cfg, const struct call_spec *sp, struct result *res)
{
    unsigned nconn = sp->conn != NULL ? 1 : sp->conns_per_target * (unsigned)sp->ntargets;
    struct clink_conn **conns = calloc(nconn, sizeof(*conns));
    struct slot *slots = calloc(sp->callers, sizeof(*slots));
    struct clink_pool *pools[MAX_TARGETS] = {0};
    struct clink_cluster *cl = NULL;
    struct run r = {.msg = sp->msg, .one_way = strcmp(sp->scenario, "throughput") == 0, .pooled = sp->pooled};
    uint8_t *payload = malloc(sp->msg ? sp->msg : 1);
    int ret = -CLINK_ENOMEM;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    res->connections = nconn;
    res->concurrency = sp->callers;
    res->msg = sp->msg;
    if (conns == NULL || slots == NULL || payload == NULL) {
        goto out;
    }
    memset(payload, 0xa5, sp->msg ? sp->msg : 1);
    if (sp->conn != NULL) {
        conns[0] = sp->conn;
        ret = 0;
    } else {
        ret = sp->pooled ? open_pools(cfg, sp, &cl, pools, res) : open_conns(cfg, sp, conns, nconn, res);
    }
    if (ret < 0) {
        goto out;
    }
    describe(cfg, sp, res);
    /* Warm up, then measure. Each phase starts every caller and ends when all have stopped. */
    for (int phase = 0; phase < 2; phase++) {
        unsigned ms = phase == 0 ? cfg->warmup_ms : cfg->duration_ms;
        atomic_store(&r.stop, 0);
        atomic_store(&r.active, (int)sp->callers);
        for (unsigned i = 0; i < sp->callers; i++) {
            struct slot *s = &slots[i];
            memset(s, 0, sizeof(*s));
            s->run = &r;
            s->conn = conns[i % nconn];
            s->pool = pools[i % (unsigned)sp->ntargets];
            s->iov = (struct iovec){.iov_base = payload, .iov_len = sp->msg};
            s->call = (struct clink_call){.method = r.one_way            ? CLINK_TOOL_SINK
                                                    : sp->via_aggregator ? CLINK_TOOL_FANOUT
                                                                         : CLINK_TOOL_ECHO,
                                          .iov = &s->iov,
                                          .iovcnt = 1,
                                          .timeout_ms = 30000,
                                          .cb = on_done,
                                          .user = s};
            s->pcall.call = s->call;
        }
        double cc0 = cpu_self_s(), cs0 = cpu_pids_s(cfg->pids, cfg->npids);
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < sp->callers; i++) {
            struct slot *s = &slots[i];
            while ((ret = start(s)) == -CLINK_EAGAIN) { /* a full inbox at start-up: wait, do not count */
                s->issued--;
                usleep(100);
            }
            if (ret < 0) {
                s->failed++;
                slot_done(s);
            }
        }
        run_for(&r, ms);
        if (phase == 1) {
            res->secs = (double)(now_ns() - t0) / 1e9;
            res->cpu_client_s = cpu_self_s() - cc0;
            res->cpu_server_s = cpu_pids_s(cfg->pids, cfg->npids) - cs0;
            res->cpu_s = res->cpu_client_s + res->cpu_server_s;
            tally(slots, sp->callers, sp->msg, res);
        }
    }
    ret = 0;
out:
    for (int t = 0; t < sp->ntargets; t++) {
        if (pools[t]) {
            clink_pool_release(pools[t]);
        }
    }
    clink_cluster_free(cl);
    for (unsigned i = 0; conns && sp->conn == NULL && i < nconn; i++) {
        if (conns[i]) {
            clink_conn_close(conns[i]);
        }
    }
    free(conns);
    free(slots);
    free(payload);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return ret;
}
