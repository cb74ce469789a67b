/*
 * A running cluster moved from plaintext to TLS and back with no restart and
 * no failed call (docs/config.md, "Moving a cluster from plaintext to TLS"),
 * as a plain program so that it runs under ThreadSanitizer.
 *
 * Two leaves (echo) and an aggregator whose cluster has both as peers
 * (ssl_mode DEFAULT: the node's transport-security state decides how its
 * pools dial). Leaf 1 and the aggregator start with a TLS identity in
 * PLAINTEXT; leaf 2 starts with none and gains one by clink_node_reload_tls.
 * Four threads call both leaves through the pools all along while every node
 * goes PLAINTEXT -> ACCEPT_BOTH -> PREFER_TLS -> (no plaintext link left) ->
 * REQUIRE_TLS, then back PREFER_TLS -> ACCEPT_BOTH -> (no TLS link left) ->
 * PLAINTEXT. Asserted: no call fails or comes back wrong, each step carried
 * calls to both leaves, no pool fell below min_conns open links while its
 * links were replaced, the links are in the mode each step says (labels and
 * verified identities on the aggregator's), plaintext dials are refused under
 * REQUIRE_TLS, and clink_node_set_secure_transport refuses what it must.
 * Each step prints its calls, its slowest 100 ms and the links left.
 * Exit 0 on success, 1 on failure. DRV_LOG=1 logs the nodes to stderr.
 */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/pool.h"
#include "tests/support/support.h"

#define THREADS 4
#define LEAVES  2
#define NODES   (LEAVES + 1)
/* Calls each step must have carried to each leaf: about a second of load makes hundreds even under TSan. */
#define MIN_OK_PER_LEAF 10
#define STEP_LOAD_MS    1000
#define WATCHDOG_S      240 /* below ctest's 300 s: a hang says where it is */
#define MIN_CONNS       2

static const char *const leaf_name[LEAVES] = {"leaf1", "leaf2"};
static struct clink_node *leaf[LEAVES], *agg;
static struct clink_node *nodes[NODES]; /* agg, leaf1, leaf2 */
static const char *const node_name[NODES] = {"agg", "leaf1", "leaf2"};
static uint16_t leaf_port[LEAVES];
static struct clink_pool *pool[LEAVES];

static atomic_int stop, finished, printed_failures;
static _Atomic(const char *) step_name = "setup";
static int bad;

static void check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int cond, const char *fmt, ...)
{
    if (cond) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL [%s]: ", atomic_load(&step_name));
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    bad = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- load ---- */

/*
 * Half the threads make blocking calls; the others keep WINDOW asynchronous
 * calls in flight each, so that the links a step replaces or closes have
 * calls on them (and calls wait in the pools for room) when it happens.
 */
#define WINDOW 8

struct caller;
struct acall {
    struct clink_pool_call pc;
    struct iovec iov;
    char buf[64];
    size_t len;
    int leaf;
    unsigned long seq;
    struct caller *owner;
    int done, status, match; /* under owner->mu */
};

struct caller {
    pthread_t th;
    int id;
    atomic_ullong issued, ok[LEAVES], failed, wrong;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct acall a[WINDOW];
};
static struct caller callers[THREADS];

static void record(struct caller *c, int leaf_idx, unsigned long seq, int status, int match)
{
    if (status == 0 && match) {
        atomic_fetch_add(&c->ok[leaf_idx], 1);
        return;
    }
    atomic_fetch_add(status == 0 ? &c->wrong : &c->failed, 1);
    if (atomic_fetch_add(&printed_failures, 1) < 20) {
        fprintf(stderr, "FAIL [%s]: thread %d, call %lu to %s: %s\n", atomic_load(&step_name), c->id, seq,
                leaf_name[leaf_idx], status == 0 ? "wrong answer" : clink_strerror(status));
    }
    usleep(1000); /* a pool failing fast must not spin */
}

static void *sync_loop(struct caller *c)
{
    for (unsigned long i = 0; !atomic_load(&stop); i++) {
        int l = (int)((i + (unsigned long)c->id) % LEAVES);
        char buf[64];
        int len = snprintf(buf, sizeof(buf), "%s from thread %d, call %lu", leaf_name[l], c->id, i);
        struct clink_msg r;
        atomic_fetch_add(&c->issued, 1);
        int ret = clink_pool_call_sync(pool[l], TS_ECHO, buf, (size_t)len, ts_ms(5000), &r);
        record(c, l, i, ret, ret == 0 && r.len == (size_t)len && memcmp(r.data, buf, r.len) == 0);
        clink_msg_free(&r);
    }
    return NULL;
}

static void on_async_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct acall *a = call->user;
    int match = status == 0 && len == a->len && memcmp(resp, a->buf, len) == 0;
    pthread_mutex_lock(&a->owner->mu);
    a->status = status;
    a->match = match;
    a->done = 1;
    pthread_cond_signal(&a->owner->cv);
    pthread_mutex_unlock(&a->owner->mu);
}

/* Start a's next call (a->seq set); returns 0 or the error of a call that never started. */
static int async_start(struct acall *a)
{
    a->leaf = (int)((a->seq + (unsigned long)a->owner->id) % LEAVES);
    a->len = (size_t)snprintf(a->buf, sizeof(a->buf), "%s from thread %d, call %lu", leaf_name[a->leaf], a->owner->id,
                              a->seq);
    a->iov = (struct iovec){.iov_base = a->buf, .iov_len = a->len};
    a->pc = (struct clink_pool_call){
        .call = {
            .method = TS_ECHO, .iov = &a->iov, .iovcnt = 1, .timeout_ms = ts_ms(5000), .cb = on_async_done, .user = a}};
    atomic_fetch_add(&a->owner->issued, 1);
    return clink_pool_call_start(pool[a->leaf], &a->pc);
}

/* a->done: 0 in flight, 1 completed (not yet looked at), 2 free. */
static void *async_loop(struct caller *c)
{
    unsigned long next = 0;
    int inflight = 0;
    pthread_mutex_lock(&c->mu);
    for (int k = 0; k < WINDOW; k++) {
        c->a[k].owner = c;
        c->a[k].done = 2;
    }
    for (;;) {
        int progressed = 0;
        for (int k = 0; k < WINDOW; k++) {
            struct acall *a = &c->a[k];
            if (a->done == 1) {
                a->done = 2;
                inflight--;
                progressed = 1;
                int leaf_idx = a->leaf, status = a->status, match = a->match;
                unsigned long seq = a->seq;
                pthread_mutex_unlock(&c->mu);
                record(c, leaf_idx, seq, status, match);
                pthread_mutex_lock(&c->mu);
            }
            if (a->done == 2 && !atomic_load(&stop)) {
                a->done = 0;
                a->seq = next++;
                inflight++;
                progressed = 1;
                pthread_mutex_unlock(&c->mu);
                int ret = async_start(a);
                if (ret != 0) {
                    record(c, a->leaf, a->seq, ret, 0);
                }
                pthread_mutex_lock(&c->mu);
                if (ret != 0) {
                    a->done = 2;
                    inflight--;
                }
            }
        }
        if (atomic_load(&stop) && inflight == 0) {
            break;
        }
        if (!progressed) {
            pthread_cond_wait(&c->cv, &c->mu);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void *call_loop(void *arg)
{
    struct caller *c = arg;
    return c->id % 2 == 0 ? sync_loop(c) : async_loop(c);
}

struct totals {
    unsigned long long issued, ok[LEAVES], failed, wrong;
};

static struct totals totals(void)
{
    struct totals t = {0};
    for (int i = 0; i < THREADS; i++) {
        t.issued += atomic_load(&callers[i].issued);
        t.failed += atomic_load(&callers[i].failed);
        t.wrong += atomic_load(&callers[i].wrong);
        for (int l = 0; l < LEAVES; l++) {
            t.ok[l] += atomic_load(&callers[i].ok[l]);
        }
    }
    return t;
}

/* ---- links, as an operator sees them ---- */

static int live(const struct clink_conn_status *st)
{
    return strcmp(st->state, "open") == 0 || strcmp(st->state, "draining") == 0;
}

struct census {
    size_t plain, tls;         /* live links (open or draining) */
    size_t out_plain, out_tls; /* of which dialled by this node */
};

static struct census census_of(struct clink_node *n)
{
    struct clink_conn_status *v = NULL;
    size_t k = 0;
    int ret = clink_node_links(n, &v, &k);
    TS_REQUIRE(ret == 0, "clink_node_links: %s", clink_strerror(ret));
    struct census c = {0};
    for (size_t i = 0; i < k; i++) {
        if (!live(&v[i])) {
            continue;
        }
        int plain = v[i].mode == CLINK_MODE_PLAIN;
        c.plain += plain;
        c.tls += !plain;
        c.out_plain += plain && !v[i].is_server;
        c.out_tls += !plain && !v[i].is_server;
    }
    free(v);
    return c;
}

/* What an operator watches before requiring TLS (the ops port's clink_plaintext_links). */
static size_t plaintext_links(struct clink_node *n)
{
    return census_of(n).plain;
}

static size_t all_plaintext_links(void)
{
    size_t s = 0;
    for (int i = 0; i < NODES; i++) {
        s += plaintext_links(nodes[i]);
    }
    return s;
}

static size_t all_tls_links(void)
{
    size_t s = 0;
    for (int i = 0; i < NODES; i++) {
        s += census_of(nodes[i]).tls;
    }
    return s;
}

/*
 * Every live link on every node is in `want` mode (TLS: with a TLS version
 * and our certificate's expiry; plaintext: neither), and the aggregator's own
 * links carry their pool's peer name as label, go to that peer's port (TLS:
 * its identity verified), and each pool has one.
 */
static void check_links(enum clink_conn_mode want)
{
    const char *mode = want == CLINK_MODE_TLS ? "TLS" : "plaintext";
    for (int i = 0; i < NODES; i++) {
        struct clink_conn_status *v = NULL;
        size_t k = 0;
        int ret = clink_node_links(nodes[i], &v, &k);
        TS_REQUIRE(ret == 0, "clink_node_links: %s", clink_strerror(ret));
        size_t per_leaf[LEAVES] = {0}, nlive = 0;
        for (size_t j = 0; j < k; j++) {
            const struct clink_conn_status *st = &v[j];
            if (!live(st)) {
                continue;
            }
            nlive++;
            check(st->mode == want, "%s: link %llu (%s, %s, %s) is not %s", node_name[i], (unsigned long long)st->id,
                  st->is_server ? "accepted" : "dialled", st->peer_addr, st->state, mode);
            if (want == CLINK_MODE_TLS) {
                check(st->tls_version[0] != '\0' && st->local_not_after > 0,
                      "%s: TLS link %llu: tls_version '%s', local_not_after %lld", node_name[i],
                      (unsigned long long)st->id, st->tls_version, (long long)st->local_not_after);
            } else {
                check(st->tls_version[0] == '\0', "%s: plaintext link %llu has tls_version '%s'", node_name[i],
                      (unsigned long long)st->id, st->tls_version);
            }
            if (nodes[i] != agg) {
                check(st->is_server, "%s: leaf dialled link %llu", node_name[i], (unsigned long long)st->id);
                continue;
            }
            check(!st->is_server, "agg: accepted link %llu from %s", (unsigned long long)st->id, st->peer_addr);
            int l = 0;
            while (l < LEAVES && strcmp(st->label, leaf_name[l]) != 0) {
                l++;
            }
            if (l == LEAVES) {
                check(0, "agg: link %llu to %s has label '%s', not a peer's name", (unsigned long long)st->id,
                      st->peer_addr, st->label);
                continue;
            }
            per_leaf[l]++;
            char addr[64];
            snprintf(addr, sizeof(addr), "127.0.0.1:%u", leaf_port[l]);
            check(strcmp(st->peer_addr, addr) == 0, "agg: link %llu labelled %s goes to %s, not %s",
                  (unsigned long long)st->id, st->label, st->peer_addr, addr);
            if (want == CLINK_MODE_TLS) {
                check(strcmp(st->verified, "identity") == 0 && st->peer_subject[0] != '\0',
                      "agg: TLS link %llu to %s: verified '%s', peer '%s'", (unsigned long long)st->id, st->label,
                      st->verified, st->peer_subject);
            }
        }
        free(v);
        check(nlive > 0, "%s has no live link", node_name[i]);
        for (int l = 0; nodes[i] == agg && l < LEAVES; l++) {
            check(per_leaf[l] > 0, "agg has no live link to %s", leaf_name[l]);
        }
    }
}

/* ---- steps ---- */

/*
 * The monitor thread, every 5 ms: the fewest open links each pool had during
 * the step (a pool keeps min_conns open: replacing links must not take it
 * below), and the fewest calls completed in any 100 ms of the step (a stall
 * shows there, for the log). Also the watchdog.
 */
#define MONITOR_MS 5
#define WINDOW_MS  100
static pthread_mutex_t mon_mu = PTHREAD_MUTEX_INITIALIZER; /* the step's figures below */
static unsigned min_open[LEAVES];
static unsigned long long slowest_window, win_ok0;
static uint64_t win_t0;
static atomic_int pools_ready; /* pool[] is set (and not yet released) */

static unsigned long long ok_total(void)
{
    struct totals t = totals();
    return t.ok[0] + t.ok[1];
}

static void *monitor(void *arg)
{
    (void)arg;
    uint64_t start = now_ms();
    while (!atomic_load(&finished)) {
        usleep(MONITOR_MS * 1000);
        uint64_t now = now_ms();
        if (now - start > WATCHDOG_S * 1000ull) {
            fprintf(stderr, "FAIL: hung for %d s, in step '%s'\n", WATCHDOG_S, atomic_load(&step_name));
            abort();
        }
        pthread_mutex_lock(&mon_mu);
        for (int l = 0; l < LEAVES && atomic_load(&pools_ready); l++) {
            struct clink_pool_stats s;
            clink_pool_get_stats(pool[l], &s);
            min_open[l] = s.conns_open < min_open[l] ? s.conns_open : min_open[l];
        }
        if (now - win_t0 >= WINDOW_MS) {
            unsigned long long ok = ok_total();
            slowest_window = ok - win_ok0 < slowest_window ? ok - win_ok0 : slowest_window;
            win_t0 = now;
            win_ok0 = ok;
        }
        pthread_mutex_unlock(&mon_mu);
    }
    return NULL;
}

static struct {
    uint64_t t0;
    struct totals at;
    int links_may_drop;       /* REQUIRE_TLS straight from ACCEPT_BOTH closes every plaintext link at once */
    unsigned open_at[LEAVES]; /* each pool's open links when the step began */
} cur;

static void step_begin(const char *name)
{
    atomic_store(&step_name, name);
    cur.t0 = now_ms();
    cur.at = totals();
    for (int l = 0; l < LEAVES && atomic_load(&pools_ready); l++) {
        struct clink_pool_stats ps;
        clink_pool_get_stats(pool[l], &ps);
        cur.open_at[l] = ps.conns_open;
    }
    pthread_mutex_lock(&mon_mu);
    for (int l = 0; l < LEAVES; l++) {
        min_open[l] = UINT_MAX;
    }
    slowest_window = ULLONG_MAX;
    win_t0 = cur.t0;
    win_ok0 = cur.at.ok[0] + cur.at.ok[1];
    pthread_mutex_unlock(&mon_mu);
}

/* Load kept running for ms: the calls that ran while a step took effect. */
static void load_for(unsigned ms)
{
    usleep(ms * 1000u);
}

static void step_end(void)
{
    struct totals t = totals();
    pthread_mutex_lock(&mon_mu);
    unsigned fewest[LEAVES];
    for (int l = 0; l < LEAVES; l++) {
        fewest[l] = min_open[l];
    }
    unsigned long long slow = slowest_window;
    pthread_mutex_unlock(&mon_mu);
    unsigned long long ok = 0;
    for (int l = 0; l < LEAVES; l++) {
        unsigned long long d = t.ok[l] - cur.at.ok[l];
        ok += d;
        check(d >= MIN_OK_PER_LEAF, "only %llu calls to %s completed during the step", d, leaf_name[l]);
        /* Replacing links (plaintext -> TLS and back) keeps min_conns open: calls never wait for a dial. */
        check(cur.links_may_drop || fewest[l] >= MIN_CONNS, "pool %s fell to %u open links (min_conns %d)",
              leaf_name[l], fewest[l], MIN_CONNS);
        /* Rolling: replaced one at a time, a pool serves with at most one link less than it had. */
        check(cur.links_may_drop || fewest[l] + 1 >= cur.open_at[l], "pool %s fell from %u to %u open links",
              leaf_name[l], cur.open_at[l], fewest[l]);
    }
    unsigned long long failed = t.failed - cur.at.failed + t.wrong - cur.at.wrong;
    check(failed == 0, "%llu calls failed or came back wrong during the step", failed);
    printf("migration: %-40s %s/%s/%s: %llu ok (slowest %d ms: %lld), %llu failed; fewest open per pool %u/%u; "
           "live links: %zu plaintext, %zu TLS; %.2f s\n",
           atomic_load(&step_name), clink_secure_transport_name(clink_node_secure_transport(agg)),
           clink_secure_transport_name(clink_node_secure_transport(leaf[0])),
           clink_secure_transport_name(clink_node_secure_transport(leaf[1])), ok, WINDOW_MS,
           slow == ULLONG_MAX ? -1ll : (long long)slow, failed, fewest[0], fewest[1], all_plaintext_links(),
           all_tls_links(), (double)(now_ms() - cur.t0) / 1000.0);
}

static void set_state(struct clink_node *n, enum clink_secure_transport s)
{
    int ret = clink_node_set_secure_transport(n, s);
    check(ret == 0, "set %s: %s", clink_secure_transport_name(s), clink_strerror(ret));
    check(clink_node_secure_transport(n) == s, "state is %s, not %s",
          clink_secure_transport_name(clink_node_secure_transport(n)), clink_secure_transport_name(s));
}

/* Leaves first: what they accept must be wider before the aggregator dials in the new way. */
static void set_all(enum clink_secure_transport s, int agg_first)
{
    if (agg_first) {
        set_state(agg, s);
    }
    for (int l = 0; l < LEAVES; l++) {
        set_state(leaf[l], s);
    }
    if (!agg_first) {
        set_state(agg, s);
    }
}

/* Wait (bounded) until count() is 0; returns the last count. */
static size_t wait_zero(size_t (*count)(void), unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    size_t n;
    while ((n = count()) != 0 && now_ms() < end) {
        usleep(50000);
    }
    return n;
}

static size_t agg_tls_links(void)
{
    return census_of(agg).out_tls;
}

/* ---- refusals ---- */

static void check_plaintext_refused(struct clink_node *plain_cli)
{
    struct clink_conn *c = NULL;
    char err[256];
    /* The aggregator names plaintext explicitly: refused before any byte goes out. */
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = leaf_port[0], .mode = CLINK_MODE_PLAIN, .timeout_ms = ts_ms(5000)};
    int ret = clink_connect_sync(agg, &o, &c, err, sizeof(err));
    check(ret == -CLINK_EPLAINTEXT, "agg's plaintext dial under REQUIRE_TLS: %d (%s), not -CLINK_EPLAINTEXT", ret,
          ret == 0 ? "connected" : err);
    if (ret == 0) {
        clink_conn_close(c);
    }
    /* A default dial from the aggregator goes out in TLS and works. */
    o.mode = CLINK_MODE_DEFAULT;
    ret = clink_connect_sync(agg, &o, &c, err, sizeof(err));
    check(ret == 0, "agg's default dial under REQUIRE_TLS: %s", err);
    if (ret == 0) {
        check(!clink_conn_plaintext(c), "agg's default dial under REQUIRE_TLS went out in plaintext");
        clink_conn_close(c);
    }
    /* A node without a TLS identity dials in plaintext: every leaf refuses it. */
    for (int l = 0; l < LEAVES; l++) {
        struct clink_node_stats before, after;
        clink_node_get_stats(leaf[l], &before);
        o.port = leaf_port[l];
        c = NULL;
        ret = clink_connect_sync(plain_cli, &o, &c, err, sizeof(err));
        check(ret == -CLINK_EPLAINTEXT,
              "plaintext client dialling %s under REQUIRE_TLS: %d (%s), not -CLINK_EPLAINTEXT", leaf_name[l], ret,
              ret == 0 ? "connected" : err);
        if (ret == 0) {
            clink_conn_close(c);
        }
        clink_node_get_stats(leaf[l], &after);
        check(after.conns_refused > before.conns_refused, "%s did not count the plaintext client it refused",
              leaf_name[l]);
    }
}

static void check_einval(struct clink_node *n, const char *what, enum clink_secure_transport s)
{
    enum clink_secure_transport was = clink_node_secure_transport(n);
    int ret = clink_node_set_secure_transport(n, s);
    check(ret == -CLINK_EINVAL, "%s: set state %d: %d, not -CLINK_EINVAL", what, (int)s, ret);
    check(clink_node_secure_transport(n) == was, "%s: a refused state %d changed the state to %s", what, (int)s,
          clink_secure_transport_name(clink_node_secure_transport(n)));
}

static void check_refused_states(struct clink_node *plain_cli, struct clink_tls_ctx *tls)
{
    /* No TLS identity: no TLS state. */
    check_einval(plain_cli, "no TLS identity", CLINK_SECURE_ACCEPT_BOTH);
    check_einval(plain_cli, "no TLS identity", CLINK_SECURE_PREFER_TLS);
    check_einval(plain_cli, "no TLS identity", CLINK_SECURE_REQUIRE_TLS);
    check_einval(plain_cli, "no TLS identity", CLINK_SECURE_DEFAULT);
    check_einval(plain_cli, "no TLS identity", (enum clink_secure_transport)(CLINK_SECURE_REQUIRE_TLS + 1));
    check(clink_node_set_secure_transport(plain_cli, CLINK_SECURE_PLAINTEXT) == 0,
          "no TLS identity: PLAINTEXT refused");
    /* A node with both: DEFAULT is only a starting value, and unknown states are unknown. */
    check_einval(leaf[0], "leaf1", CLINK_SECURE_DEFAULT);
    check_einval(leaf[0], "leaf1", (enum clink_secure_transport)(CLINK_SECURE_REQUIRE_TLS + 1));
    check_einval(leaf[0], "leaf1", (enum clink_secure_transport)99);
    check_einval(leaf[0], "leaf1", (enum clink_secure_transport) - 1);
    /* TLS only (no allow_plaintext): no state that accepts or dials plaintext. */
    struct clink_node *tls_only = ts_client(tls, 1, 0);
    check(clink_node_secure_transport(tls_only) == CLINK_SECURE_REQUIRE_TLS, "TLS-only node starts in %s",
          clink_secure_transport_name(clink_node_secure_transport(tls_only)));
    check_einval(tls_only, "no allow_plaintext", CLINK_SECURE_PLAINTEXT);
    check_einval(tls_only, "no allow_plaintext", CLINK_SECURE_ACCEPT_BOTH);
    check_einval(tls_only, "no allow_plaintext", CLINK_SECURE_PREFER_TLS);
    clink_node_free(tls_only);
}

/* ---- the scenario ---- */

static struct clink_node *make_node(struct clink_tls_ctx *tls, int listen_echo)
{
    struct clink_node_opts o = {.workers = 2,
                                .tls = tls,
                                .allow_plaintext = 1,
                                .secure_transport = CLINK_SECURE_PLAINTEXT,
                                .log = getenv("DRV_LOG") ? clink_log_stderr : NULL,
                                .log_level = CLINK_LOG_INFO};
    struct clink_node *n = ts_node_with(&o, listen_echo ? ts_register_echo : NULL);
    TS_REQUIRE(clink_node_secure_transport(n) == CLINK_SECURE_PLAINTEXT, "starting state");
    return n;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* in order with the log on stderr */
    pthread_t mon;
    TS_REQUIRE(pthread_create(&mon, NULL, monitor, NULL) == 0, "monitor");
    uint64_t t_start = now_ms();

    struct ts_pki pki;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_tls_ctx *tls2 = ts_tls(pki.node_cert, pki.node_key, pki.ca); /* leaf 2's, given later */

    /* 1. Leaf 1 and the aggregator with a TLS identity, leaf 2 without; all PLAINTEXT. */
    leaf[0] = make_node(tls, 1);
    leaf[1] = make_node(NULL, 1);
    agg = make_node(tls, 0);
    nodes[0] = agg;
    nodes[1] = leaf[0];
    nodes[2] = leaf[1];
    for (int l = 0; l < LEAVES; l++) {
        leaf_port[l] = clink_node_port(leaf[l]);
    }
    struct clink_tls_ctx *none = clink_node_tls(leaf[1], 0);
    TS_REQUIRE(none == NULL, "leaf 2 has a TLS identity");
    struct clink_cluster_opts co = {.node = agg,
                                    .log = getenv("DRV_LOG") ? clink_log_stderr : NULL,
                                    .log_level = CLINK_LOG_INFO,
                                    .pool = {.min_conns = MIN_CONNS,
                                             .max_conns = 4,
                                             .max_calls_per_conn = 4,
                                             .backoff_min_ms = 20,
                                             .backoff_max_ms = 200,
                                             .connect_timeout_ms = ts_ms(5000)}};
    struct clink_cluster *cl;
    TS_REQUIRE(clink_cluster_new(&co, &cl) == 0, "cluster");
    for (int l = 0; l < LEAVES; l++) {
        /* No expected_name: the certificates carry 127.0.0.1. ssl_mode DEFAULT: the node's state decides. */
        struct clink_peer peer = {.name = leaf_name[l], .host = "127.0.0.1", .port = leaf_port[l]};
        TS_REQUIRE(clink_cluster_add(cl, &peer) == 0, "add %s", leaf_name[l]);
        pool[l] = clink_cluster_pool(cl, leaf_name[l]);
        TS_REQUIRE(pool[l] != NULL, "pool %s", leaf_name[l]);
    }
    /* Echo is not marked idempotent: no call is retried, so none may be lost. */
    atomic_store(&pools_ready, 1);
    uint64_t end = now_ms() + ts_ms(10000);
    for (int l = 0; l < LEAVES; l++) {
        struct clink_pool_stats s;
        do {
            usleep(10000);
            clink_pool_get_stats(pool[l], &s);
        } while (s.conns_open < MIN_CONNS && now_ms() < end);
        TS_REQUIRE(s.conns_open >= MIN_CONNS, "pool %s opened %u links", leaf_name[l], s.conns_open);
    }

    /* 2. Load on both leaves from here to the end. */
    for (int i = 0; i < THREADS; i++) {
        callers[i].id = i;
        pthread_mutex_init(&callers[i].mu, NULL);
        pthread_cond_init(&callers[i].cv, NULL);
        TS_REQUIRE(pthread_create(&callers[i].th, NULL, call_loop, &callers[i]) == 0, "thread");
    }

    /* 3. Up to TLS. */
    step_begin("PLAINTEXT, as started");
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_PLAIN);
    check_einval(leaf[1], "leaf2 before its reload", CLINK_SECURE_ACCEPT_BOTH);
    step_end();

    step_begin("leaf2 gains a TLS identity");
    check(clink_node_reload_tls(leaf[1], tls2) == 0, "reload_tls on leaf2 (no TLS identity yet)");
    struct clink_tls_ctx *got = clink_node_tls(leaf[1], 0);
    check(got != NULL, "leaf2 has no TLS identity after its reload");
    clink_tls_ctx_free(got);
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_PLAIN); /* nothing uses it in PLAINTEXT */
    step_end();

    step_begin("ACCEPT_BOTH (leaves, then agg)");
    set_all(CLINK_SECURE_ACCEPT_BOTH, 0);
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_PLAIN); /* ACCEPT_BOTH still dials plaintext: no link moves */
    step_end();

    step_begin("PREFER_TLS (leaves, then agg)");
    set_all(CLINK_SECURE_PREFER_TLS, 0);
    uint64_t t = now_ms();
    size_t left = wait_zero(all_plaintext_links, ts_ms(10000));
    check(left == 0, "%zu plaintext links still live %.1f s after PREFER_TLS", left, (double)(now_ms() - t) / 1000.0);
    printf("migration: plaintext links reached %zu in %.2f s\n", left, (double)(now_ms() - t) / 1000.0);
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_TLS);
    step_end();

    step_begin("REQUIRE_TLS (leaves, then agg)");
    set_all(CLINK_SECURE_REQUIRE_TLS, 0);
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_TLS);
    step_end();

    /* 4. Plaintext refused under REQUIRE_TLS (and a client without TLS, for step 6). */
    step_begin("REQUIRE_TLS refuses plaintext dials");
    struct clink_node *plain_cli = ts_client(NULL, 1, 1);
    check(clink_node_secure_transport(plain_cli) == CLINK_SECURE_PLAINTEXT, "a node without TLS starts in %s",
          clink_secure_transport_name(clink_node_secure_transport(plain_cli)));
    check_plaintext_refused(plain_cli);
    load_for(STEP_LOAD_MS / 2);
    check_links(CLINK_MODE_TLS);
    step_end();

    /* 5. Back down, under load. */
    step_begin("back to PREFER_TLS (leaves, then agg)");
    set_all(CLINK_SECURE_PREFER_TLS, 0);
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_TLS); /* PREFER_TLS dials TLS: nothing moves */
    step_end();

    step_begin("back to ACCEPT_BOTH (leaves, then agg)");
    set_all(CLINK_SECURE_ACCEPT_BOTH, 0);
    t = now_ms();
    left = wait_zero(agg_tls_links, ts_ms(10000));
    check(left == 0, "%zu of agg's TLS links still live %.1f s after ACCEPT_BOTH", left,
          (double)(now_ms() - t) / 1000.0);
    printf("migration: agg's TLS links reached %zu in %.2f s\n", left, (double)(now_ms() - t) / 1000.0);
    /* The leaves' ends of those links close as the aggregator's do. */
    left = wait_zero(all_tls_links, ts_ms(10000));
    check(left == 0, "%zu TLS links still live on the nodes", left);
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_PLAIN);
    step_end();

    step_begin("back to PLAINTEXT (agg, then leaves)");
    set_all(CLINK_SECURE_PLAINTEXT, 1);
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_PLAIN);
    step_end();

    /*
     * 5b. An operator who skips PREFER_TLS: from ACCEPT_BOTH straight to
     * REQUIRE_TLS, the aggregator first. Its plaintext links are closed
     * under load (GOAWAY): calls that were on the wire and never ran at the
     * leaf come back as not started and the pool sends them again on the
     * TLS links that replace them; still no call fails.
     */
    step_begin("abrupt: ACCEPT_BOTH, then REQUIRE_TLS (agg first)");
    cur.links_may_drop = 1; /* calls wait for the new links, within their deadline */
    set_all(CLINK_SECURE_ACCEPT_BOTH, 1);
    load_for(STEP_LOAD_MS / 2);
    set_all(CLINK_SECURE_REQUIRE_TLS, 1);
    t = now_ms();
    left = wait_zero(all_plaintext_links, ts_ms(10000));
    check(left == 0, "%zu plaintext links still live %.1f s after REQUIRE_TLS", left, (double)(now_ms() - t) / 1000.0);
    load_for(STEP_LOAD_MS);
    check_links(CLINK_MODE_TLS);
    step_end();

    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) {
        pthread_join(callers[i].th, NULL);
        pthread_mutex_destroy(&callers[i].mu);
        pthread_cond_destroy(&callers[i].cv);
    }

    /* 6. States a node cannot take. */
    step_begin("refused states");
    check_refused_states(plain_cli, tls);
    clink_node_free(plain_cli);

    struct totals tt = totals();
    check(tt.failed == 0 && tt.wrong == 0, "%llu calls failed, %llu came back wrong", tt.failed, tt.wrong);
    check(tt.ok[0] + tt.ok[1] + tt.failed + tt.wrong == tt.issued, "%llu issued, %llu accounted for", tt.issued,
          tt.ok[0] + tt.ok[1] + tt.failed + tt.wrong);
    for (int l = 0; l < LEAVES; l++) {
        struct clink_pool_stats s;
        clink_pool_get_stats(pool[l], &s);
        printf("migration: pool %s: %llu calls ok, %llu recycles, %llu full + %llu resumed handshakes, %llu failed "
               "dials, %llu retries\n",
               leaf_name[l], (unsigned long long)s.calls_ok, (unsigned long long)s.recycles,
               (unsigned long long)s.handshakes_full, (unsigned long long)s.handshakes_resumed,
               (unsigned long long)s.handshakes_failed, (unsigned long long)s.retries);
        /* Its links were replaced twice: plaintext -> TLS, TLS -> plaintext. */
        check(s.recycles >= 2 * co.pool.min_conns, "pool %s: %llu recycles", leaf_name[l],
              (unsigned long long)s.recycles);
        check(s.failed_unavailable + s.failed_timeout + s.failed_closed + s.failed_remote + s.failed_other == 0,
              "pool %s counted failed calls", leaf_name[l]);
    }
    struct clink_node_stats ns;
    clink_node_get_stats(leaf[1], &ns);
    check(ns.tls_reloads == 1, "leaf2: %llu TLS reloads", (unsigned long long)ns.tls_reloads);

    atomic_store(&finished, 1);
    pthread_join(mon, NULL);
    for (int l = 0; l < LEAVES; l++) {
        clink_pool_release(pool[l]);
    }
    clink_cluster_free(cl);
    clink_node_free(agg);
    for (int l = 0; l < LEAVES; l++) {
        clink_node_free(leaf[l]);
    }
    clink_tls_ctx_free(tls);
    clink_tls_ctx_free(tls2);
    ts_pki_remove(&pki);
    printf("migration driver: %llu calls, %llu failed, %.1f s: %s\n", tt.issued, tt.failed + tt.wrong,
           (double)(now_ms() - t_start) / 1000.0, bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
