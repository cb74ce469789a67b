/*
 * clink-bench scale scenario (issue 20): one aggregator fans out to N leaves.
 *
 * The leaves are N clink nodes of one worker each, all in one process of
 * their own (clink-bench started again with --scale-leaf-server), each on
 * its own loopback port with the bench's certificate and an echo handler;
 * they share one TLS context, so a leaf started again keeps its ticket keys
 * (as a restart that keeps its ticket key file does). The aggregator is a
 * node of one worker in this process with one pool per leaf, one connection
 * each. For each N:
 *
 *   fanout        SCALE_CALLERS chains of fan-outs (64 B to every leaf,
 *                 done when all have answered: clink_cluster_fanout_start)
 *                 for the warm-up, then the measured time: fan-outs/s, leaf
 *                 calls/s, fan-out latency; then, idle, the aggregator's
 *                 heap in use and RSS growth per leaf since before the pools
 *                 existed (the leaves' memory is in their own process).
 *   restart-leaf  leaf 0 is freed and a new node listens on its port: time
 *                 until its pool has a connection again, full or resumed.
 *   restart-pools the aggregator's cluster is freed and made again on the
 *                 same node, which keeps its client tickets: all N pools.
 *   restart-agg   the aggregator's node and cluster are freed and made
 *                 again, as a process restart does (no tickets): all N pools.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "clink/methods.h"

#define SCALE_CALLERS     16
#define SCALE_MSG         64
#define FANOUT_TIMEOUT_MS 10000
#define WHOLE_WAIT_MS     20000

/* ---- the leaves' process ---- */

static void echo(struct clink_req *req, void *user)
{
    (void)user;
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

static struct clink_node *leaf_start(struct clink_tls_ctx *tls, uint16_t port)
{
    struct clink_node_opts o = {.workers = 1, .tls = tls};
    struct clink_node *n = NULL;
    if (clink_node_new(&o, &n) < 0) {
        return NULL;
    }
    if (clink_node_register(n, CLINK_TOOL_ECHO, echo, NULL) < 0 || clink_node_listen(n, "127.0.0.1", port) < 0 ||
        clink_node_start(n) < 0) {
        clink_node_free(n);
        return NULL;
    }
    return n;
}

/*
 * argv: --scale-leaf-server N CMD_FD REPLY_FD CA CERT KEY. Writes each
 * leaf's port on a line of its own, then answers each "restart I" line with
 * "ok" or "fail"; on EOF frees every leaf and exits.
 */
int scale_leaf_server_main(int argc, char **argv)
{
    if (argc != 8) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    unsigned n = (unsigned)atoi(argv[2]);
    FILE *in = fdopen(atoi(argv[3]), "r"), *out = fdopen(atoi(argv[4]), "w");
    struct clink_tls_opts to = {.ca_file = argv[5], .cert_file = argv[6], .key_file = argv[7]};
    struct clink_tls_ctx *tls = NULL;
    struct clink_node **leaves = calloc(n ? n : 1, sizeof(*leaves));
    char err[256], line[64];
    int ret = 1;
    if (in == NULL || out == NULL || leaves == NULL || clink_tls_ctx_new(&to, &tls, err, sizeof(err)) < 0) {
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        if ((leaves[i] = leaf_start(tls, 0)) == NULL) {
            fprintf(out, "fail\n");
            goto out;
        }
        fprintf(out, "%u\n", (unsigned)clink_node_port(leaves[i]));
    }
    fflush(out);
    while (fgets(line, sizeof(line), in) != NULL) {
        unsigned i;
        int ok = 0;
        if (sscanf(line, "restart %u", &i) == 1 && i < n) {
            uint16_t port = clink_node_port(leaves[i]);
            clink_node_free(leaves[i]); /* shuts it down first: GOAWAY, close_notify, no drain */
            leaves[i] = leaf_start(tls, port);
            ok = leaves[i] != NULL;
        }
        fprintf(out, ok ? "ok\n" : "fail\n");
        fflush(out);
    }
    ret = 0;
out:
    for (unsigned i = 0; leaves && i < n; i++) {
        clink_node_free(leaves[i]);
    }
    free(leaves);
    clink_tls_ctx_free(tls);
    if (in) {
        fclose(in);
    }
    if (out) {
        fclose(out);
    }
    return ret;
}

/* ---- this side: the leaves' process, seen from here ---- */

struct leaves {
    pid_t pid;
    FILE *cmd, *reply;
    uint16_t *ports;
    unsigned n;
};

static void leaves_stop(struct leaves *lv)
{
    if (lv->cmd) {
        fclose(lv->cmd); /* EOF: the process frees its leaves and exits */
    }
    if (lv->reply) {
        fclose(lv->reply);
    }
    if (lv->pid > 0) {
        waitpid(lv->pid, NULL, 0);
    }
    free(lv->ports);
    memset(lv, 0, sizeof(*lv));
}

static int leaves_start(const struct cfg *cfg, unsigned n, struct leaves *lv, char *err, size_t cap)
{
    int cmd[2] = {-1, -1}, rep[2] = {-1, -1};
    memset(lv, 0, sizeof(*lv));
    lv->n = n;
    lv->ports = calloc(n, sizeof(*lv->ports));
    if (lv->ports == NULL || pipe2(cmd, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
        snprintf(err, cap, "cannot make pipes: %s", strerror(errno));
        goto fail;
    }
    char ns[16], cfd[16], rfd[16];
    snprintf(ns, sizeof(ns), "%u", n);
    snprintf(cfd, sizeof(cfd), "%d", cmd[0]);
    snprintf(rfd, sizeof(rfd), "%d", rep[1]);
    char prog[] = "clink-bench", flag[] = "--scale-leaf-server";
    char *args[] = {
        prog, flag, ns, cfd, rfd, (char *)(uintptr_t)cfg->ca, (char *)(uintptr_t)cfg->cert, (char *)(uintptr_t)cfg->key,
        NULL};
    lv->pid = fork();
    if (lv->pid == 0) {
        /* A fresh process: this one has clink's threads, whose locks a forked copy could inherit held. */
        if (fcntl(cmd[0], F_SETFD, 0) == 0 && fcntl(rep[1], F_SETFD, 0) == 0) {
            execv("/proc/self/exe", args);
        }
        _exit(127);
    }
    close(cmd[0]);
    close(rep[1]);
    cmd[0] = rep[1] = -1;
    if (lv->pid < 0) {
        snprintf(err, cap, "fork: %s", strerror(errno));
        goto fail;
    }
    lv->cmd = fdopen(cmd[1], "w");
    lv->reply = fdopen(rep[0], "r");
    if (lv->cmd == NULL || lv->reply == NULL) {
        snprintf(err, cap, "fdopen: %s", strerror(errno));
        goto fail;
    }
    cmd[1] = rep[0] = -1;
    for (unsigned i = 0; i < n; i++) {
        char line[32];
        unsigned port;
        if (fgets(line, sizeof(line), lv->reply) == NULL || sscanf(line, "%u", &port) != 1 || port == 0 ||
            port > 65535) {
            snprintf(err, cap, "the leaves' process did not start its %u leaves", n);
            goto fail;
        }
        lv->ports[i] = (uint16_t)port;
    }
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (cmd[i] >= 0) {
            close(cmd[i]);
        }
        if (rep[i] >= 0) {
            close(rep[i]);
        }
    }
    leaves_stop(lv);
    return -1;
}

static int leaves_restart(struct leaves *lv, unsigned i)
{
    char line[16];
    if (fprintf(lv->cmd, "restart %u\n", i) < 0 || fflush(lv->cmd) != 0 ||
        fgets(line, sizeof(line), lv->reply) == NULL) {
        return -1;
    }
    return strcmp(line, "ok\n") == 0 ? 0 : -1;
}

/* ---- the aggregator ---- */

struct agg {
    struct clink_node *node;
    struct clink_cluster *cl;
    struct clink_pool **pools;
    unsigned n;
};

/* The node (unless one is kept) and an empty cluster. */
static int agg_new(const struct cfg *cfg, struct clink_node *keep, struct agg *a)
{
    int ret = 0;
    a->node = keep;
    if (a->node == NULL) {
        struct clink_node_opts no = {.workers = 1, .tls = cfg->tls};
        if ((ret = clink_node_new(&no, &a->node)) == 0 && (ret = clink_node_start(a->node)) < 0) {
            clink_node_free(a->node);
            a->node = NULL;
        }
        if (ret < 0) {
            return ret;
        }
    }
    /* One connection per leaf, never more: the fan-outs in flight all share it. */
    struct clink_cluster_opts co = {.node = a->node, .pool = {.min_conns = 1, .max_conns = 1, .max_waiting = 1u << 16}};
    return clink_cluster_new(&co, &a->cl);
}

/* A pool per leaf: they start dialling at once. */
static int agg_add(const struct cfg *cfg, const struct leaves *lv, struct agg *a)
{
    a->n = lv->n;
    a->pools = calloc(lv->n, sizeof(*a->pools));
    if (a->pools == NULL) {
        return -CLINK_ENOMEM;
    }
    for (unsigned i = 0; i < lv->n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "leaf%u", i);
        struct clink_peer p = {.name = name, .host = "127.0.0.1", .port = lv->ports[i], .expected_name = cfg->name};
        int ret = clink_cluster_add(a->cl, &p);
        if (ret < 0) {
            return ret;
        }
        a->pools[i] = clink_cluster_pool(a->cl, name);
    }
    return 0;
}

static void agg_free_pools(struct agg *a)
{
    for (unsigned i = 0; a->pools && i < a->n; i++) {
        if (a->pools[i]) {
            clink_pool_release(a->pools[i]);
        }
    }
    free(a->pools);
    a->pools = NULL;
    clink_cluster_free(a->cl);
    a->cl = NULL;
}

static void agg_free(struct agg *a)
{
    agg_free_pools(a);
    if (a->node) {
        CLINK_IGNORE(clink_node_shutdown(a->node, 0));
        clink_node_free(a->node);
        a->node = NULL;
    }
}

/* The pools [first, first + count): connections open and handshakes (full + resumed) so far. */
static void agg_stats(const struct agg *a, unsigned first, unsigned count, unsigned *open, uint64_t *full,
                      uint64_t *resumed)
{
    *open = 0;
    *full = *resumed = 0;
    for (unsigned i = first; i < first + count; i++) {
        struct clink_pool_stats s;
        clink_pool_get_stats(a->pools[i], &s);
        *open += s.conns_open > 0;
        *full += s.handshakes_full;
        *resumed += s.handshakes_resumed;
    }
}

/*
 * Wait until each of the pools [first, first + count) has its connection
 * and, together, more than hs_before handshakes were made (a pool that has
 * not yet seen its connection die still counts it open). Returns how many
 * are whole.
 */
static unsigned wait_whole(const struct agg *a, unsigned first, unsigned count, uint64_t hs_before, unsigned ms)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000ull, full, resumed;
    unsigned open;
    do {
        agg_stats(a, first, count, &open, &full, &resumed);
        if (open == count && full + resumed > hs_before) {
            break;
        }
        usleep(500);
    } while (now_ns() < end);
    return open;
}

/* ---- the load: chains of fan-outs ---- */

struct fan_run;

struct fan_slot {
    struct fan_run *run;
    uint64_t t0;
    struct hist hist;
    uint64_t issued, ok, failed;
};

struct fan_run {
    struct clink_cluster *cl;
    size_t leaves;
    atomic_int stop;
    atomic_int active;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t req[SCALE_MSG];
    char err[120];
};

static void fan_done(const struct clink_fanout_result *r, size_t n, void *user);

static int fan_start(struct fan_slot *s)
{
    struct fan_run *run = s->run;
    s->t0 = now_ns();
    s->issued++;
    return clink_cluster_fanout_start(run->cl, CLINK_ROLE_LEAF, NULL, CLINK_TOOL_ECHO, run->req, SCALE_MSG,
                                      FANOUT_TIMEOUT_MS, fan_done, s);
}

static void fan_slot_done(struct fan_slot *s)
{
    struct fan_run *run = s->run;
    pthread_mutex_lock(&run->mu);
    if (atomic_fetch_sub(&run->active, 1) == 1) {
        pthread_cond_signal(&run->cv);
    }
    pthread_mutex_unlock(&run->mu);
}

/* Runs on the aggregator's worker (or its cluster's manager thread): count it, start the next one. */
static void fan_done(const struct clink_fanout_result *r, size_t n, void *user)
{
    struct fan_slot *s = user;
    struct fan_run *run = s->run;
    uint64_t t = now_ns();
    int whole = n == run->leaves;
    for (size_t i = 0; i < n && whole; i++) {
        whole = r[i].status == 0 && r[i].msg.len == SCALE_MSG;
        if (!whole) {
            pthread_mutex_lock(&run->mu);
            if (run->err[0] == '\0') {
                snprintf(run->err, sizeof(run->err), "%s: %s", r[i].peer,
                         r[i].status < 0 ? clink_strerror(r[i].status) : "wrong answer");
            }
            pthread_mutex_unlock(&run->mu);
        }
    }
    if (whole) {
        s->ok++;
        hist_add(&s->hist, t - s->t0);
    } else {
        s->failed++;
    }
    if (atomic_load_explicit(&run->stop, memory_order_relaxed)) {
        fan_slot_done(s);
        return;
    }
    if (fan_start(s) < 0) {
        s->failed++; /* issued and failed: nothing is dropped from the books */
        fan_slot_done(s);
    }
}

/* Both phases; fills res (fan-outs) from the measured one. */
static int fan_load(struct cfg *cfg, struct agg *a, pid_t leaves_pid, struct result *res)
{
    struct fan_slot *slots = calloc(SCALE_CALLERS, sizeof(*slots));
    struct fan_run run = {.cl = a->cl, .leaves = a->n};
    if (slots == NULL) {
        return -CLINK_ENOMEM;
    }
    memset(run.req, 0xa5, sizeof(run.req));
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    for (int phase = 0; phase < 2; phase++) {
        atomic_store(&run.stop, 0);
        atomic_store(&run.active, SCALE_CALLERS);
        memset(slots, 0, SCALE_CALLERS * sizeof(*slots));
        double cc0 = cpu_self_s(), cs0 = cpu_pids_s(&leaves_pid, 1);
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < SCALE_CALLERS; i++) {
            slots[i].run = &run;
            if (fan_start(&slots[i]) < 0) {
                slots[i].failed++;
                fan_slot_done(&slots[i]);
            }
        }
        usleep((phase == 0 ? cfg->warmup_ms : cfg->duration_ms) * 1000u);
        atomic_store(&run.stop, 1);
        pthread_mutex_lock(&run.mu);
        while (atomic_load(&run.active) > 0) {
            pthread_cond_wait(&run.cv, &run.mu);
        }
        pthread_mutex_unlock(&run.mu);
        if (phase == 1) {
            res->secs = (double)(now_ns() - t0) / 1e9;
            res->cpu_client_s = cpu_self_s() - cc0;
            res->cpu_server_s = cpu_pids_s(&leaves_pid, 1) - cs0;
            res->cpu_s = res->cpu_client_s + res->cpu_server_s;
        }
    }
    struct hist *h = calloc(1, sizeof(*h));
    for (unsigned i = 0; h && i < SCALE_CALLERS; i++) {
        hist_merge(h, &slots[i].hist);
        res->issued += slots[i].issued;
        res->ok += slots[i].ok;
        res->failed += slots[i].failed;
    }
    res->ops = (double)res->ok / res->secs;
    res->leaf_ops = res->ops * (double)a->n;
    res->bps = res->leaf_ops * SCALE_MSG;
    if (h) {
        res->p50 = hist_pct_us(h, 0.50);
        res->p99 = hist_pct_us(h, 0.99);
        res->p999 = hist_pct_us(h, 0.999);
    }
    if (res->failed > 0) {
        snprintf(res->note, sizeof(res->note), "first failure: %s", run.err);
    }
    free(h);
    free(slots);
    pthread_cond_destroy(&run.cv);
    pthread_mutex_destroy(&run.mu);
    return 0;
}

/* ---- one N ---- */

static void restart_result(struct result *r, const char *mode, unsigned leaves, unsigned pools, unsigned whole,
                           uint64_t t0, uint64_t full, uint64_t resumed)
{
    r->mode = mode;
    r->leaves = leaves;
    r->connections = pools;
    r->secs = (double)(now_ns() - t0) / 1e9;
    r->issued = pools;
    r->ok = whole;
    r->failed = pools - whole;
    r->ops = (double)whole / r->secs;
    r->hs_full = full;
    r->hs_resumed = resumed;
    r->resumed_share = full + resumed ? (double)resumed / (double)(full + resumed) : 0;
    if (whole < pools) {
        snprintf(r->skipped, sizeof(r->skipped), "%u of %u pools whole again after %u s", whole, pools,
                 WHOLE_WAIT_MS / 1000);
    }
}

/* Make the aggregator's pools again, on keep or on a new node, and time it until every pool is whole. */
static void agg_restart(const struct cfg *cfg, const struct leaves *lv, struct agg *a, struct clink_node *keep,
                        struct result *r, const char *mode)
{
    uint64_t t0 = now_ns(), full = 0, resumed = 0;
    unsigned open = 0;
    int ret = agg_new(cfg, keep, a);
    if (ret == 0) {
        ret = agg_add(cfg, lv, a);
    }
    if (ret == 0) {
        wait_whole(a, 0, lv->n, 0, WHOLE_WAIT_MS);
        agg_stats(a, 0, lv->n, &open, &full, &resumed);
    }
    restart_result(r, mode, lv->n, lv->n, open, t0, full, resumed);
    if (ret < 0) {
        snprintf(r->skipped, sizeof(r->skipped), "cannot make the aggregator's pools again: %s", clink_strerror(ret));
    }
}

/*
 * The four lines for N leaves: res[0] fan-outs, res[1] a leaf's restart,
 * res[2] the pools' restart (node kept), res[3] the aggregator's. Lines that
 * did not run stay with mode NULL, or say why in skipped.
 */
static void scale_one(struct cfg *cfg, unsigned n, struct result res[4])
{
    struct leaves lv;
    struct agg a = {0};
    char err[256];
    struct result *f = &res[0];
    f->mode = "fanout";
    f->leaves = n;
    f->connections = n;
    f->concurrency = SCALE_CALLERS;
    f->msg = SCALE_MSG;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 8 * (rlim_t)n + 256) {
        snprintf(f->skipped, sizeof(f->skipped), "the open files limit (%llu) is short for %u leaves",
                 (unsigned long long)rl.rlim_cur, n);
        return;
    }
    if (leaves_start(cfg, n, &lv, err, sizeof(err)) < 0) {
        snprintf(f->skipped, sizeof(f->skipped), "%s", err);
        return;
    }
    int ret = agg_new(cfg, NULL, &a);
    /* What the aggregator holds per leaf: from here (node and empty cluster made) to warm and idle pools. */
    usleep(50000);
    malloc_trim(0);
    struct mallinfo2 m0 = mallinfo2();
    long r0 = rss_kib(0);
    uint64_t full, resumed;
    unsigned open;
    if (ret == 0) {
        ret = agg_add(cfg, &lv, &a);
    }
    if (ret < 0 || wait_whole(&a, 0, n, 0, WHOLE_WAIT_MS) < n) {
        snprintf(f->skipped, sizeof(f->skipped), "the aggregator's %u pools did not open: %s", n,
                 ret < 0 ? clink_strerror(ret) : "timed out");
        goto out;
    }
    progress(cfg, "scale %u leaves: fan-outs", n);
    if ((ret = fan_load(cfg, &a, lv.pid, f)) < 0) {
        snprintf(f->skipped, sizeof(f->skipped), "%s", clink_strerror(ret));
        goto out;
    }
    usleep(100000); /* idle: the last burst's buffers given back */
    malloc_trim(0);
    struct mallinfo2 m1 = mallinfo2();
    long r1 = rss_kib(0);
    f->heap_kib_client = ((double)m1.uordblks - (double)m0.uordblks) / 1024 / n;
    f->kib_client = r0 >= 0 && r1 >= 0 ? (double)(r1 - r0) / n : 0;
    if (f->failed == 0) {
        snprintf(f->note, sizeof(f->note),
                 "%u leaves: %.0f leaf calls/s; aggregator per leaf: heap %.1f KiB, RSS %.1f KiB", n, f->leaf_ops,
                 f->heap_kib_client, f->kib_client);
    }

    /* A leaf restarts: its pool sees the connection go, redials with backoff, and resumes with a ticket. */
    progress(cfg, "scale %u leaves: restart of a leaf", n);
    agg_stats(&a, 0, 1, &open, &full, &resumed);
    uint64_t t0 = now_ns();
    if (leaves_restart(&lv, 0) < 0) {
        res[1].mode = "restart-leaf";
        snprintf(res[1].skipped, sizeof(res[1].skipped), "the leaves' process could not restart leaf 0");
        goto out;
    }
    open = wait_whole(&a, 0, 1, full + resumed, WHOLE_WAIT_MS);
    uint64_t full1, resumed1;
    agg_stats(&a, 0, 1, &open, &full1, &resumed1);
    restart_result(&res[1], "restart-leaf", n, 1, open, t0, full1 - full, resumed1 - resumed);
    snprintf(res[1].note, sizeof(res[1].note), "leaf 0 of %u freed, a new one on its port: pool whole in %.0f ms, %s",
             n, res[1].secs * 1e3, resumed1 > resumed ? "resumed" : "full handshake");

    /* The pools restart on the same node: its client tickets are kept. */
    progress(cfg, "scale %u leaves: restart of the pools", n);
    struct clink_node *node = a.node;
    agg_free_pools(&a);
    agg_restart(cfg, &lv, &a, node, &res[2], "restart-pools");
    snprintf(res[2].note, sizeof(res[2].note),
             "cluster freed and made again, node kept (its tickets): %u pools whole in %.0f ms, %.0f%% resumed",
             (unsigned)res[2].ok, res[2].secs * 1e3, res[2].resumed_share * 100);

    /* The aggregator restarts: a new node knows no tickets, so every handshake is full. */
    progress(cfg, "scale %u leaves: restart of the aggregator", n);
    agg_free(&a);
    agg_restart(cfg, &lv, &a, NULL, &res[3], "restart-agg");
    snprintf(res[3].note, sizeof(res[3].note),
             "node and cluster freed and made again (no tickets): %u pools whole in %.0f ms, %.0f%% resumed",
             (unsigned)res[3].ok, res[3].secs * 1e3, res[3].resumed_share * 100);
out:
    agg_free(&a);
    leaves_stop(&lv);
}

int run_scale(struct cfg *cfg)
{
    int failures = 0;
    signal(SIGPIPE, SIG_IGN); /* a leaves' process that died fails a write, not the bench */
    for (int k = 0; k < cfg->nscale_leaves; k++) {
        unsigned n = (unsigned)cfg->scale_leaves[k];
        struct result res[4];
        memset(res, 0, sizeof(res));
        progress(cfg, "scale %u leaves: starting them", n);
        scale_one(cfg, n, res);
        for (int i = 0; i < 4; i++) {
            if (res[i].mode == NULL) {
                continue;
            }
            res[i].scenario = "scale";
            res[i].placement = "any";
            res[i].workers = 1;
            res[i].leaves = n;
            failures += report_line(cfg, &res[i], 0, NULL);
        }
    }
    return failures;
}
