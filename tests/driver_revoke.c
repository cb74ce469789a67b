/*
 * A leaf's certificate revoked while an aggregator calls it, as a plain
 * program so that it runs under ThreadSanitizer (docs/config.md,
 * "Revoking a certificate").
 *
 * An aggregator with a pool to each of two leaves; four threads call both
 * all along, half of the calls answered by the leaf 100 ms later from a
 * thread of its own, so that links always have calls in flight. Then
 * leaf2's certificate is revoked (clink_cert_revoke) and every node
 * reloaded with the new CRL (clink_node_reload_tls with new contexts;
 * leaf2's own reload is refused: its certificate is revoked, and it keeps
 * the context it has, as a server's reload would). Asserted: no call to
 * leaf1 fails; the aggregator closes its links to leaf2 with GOAWAY (counted
 * as revoked) and the calls in flight on them (their answers held until
 * then) are answered after the reloads, no call to leaf2
 * failing with anything but "unavailable" (the pool down, which is the
 * point); leaf2's pool goes down and stays down; and every peer refuses
 * leaf2 afterwards, both ways, saying revoked. Exit 0 or 1 with a one-line
 * summary. DRV_LOG=1 logs the nodes to stderr.
 */
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
#define SLOW    3   /* method: answered SLOW_MS later from the leaf's responder thread */
#define SLOW_MS 100 /* long enough that the reloads find calls on the wire */

static const char *const leaf_name[LEAVES] = {"leaf1", "leaf2"};
static struct ts_pki pki;
static char ca_key[300], crl[300], cert[3][300], key[3][300]; /* agg, leaf1, leaf2 */
static struct clink_node *agg, *leaf[LEAVES];
static struct clink_pool *pool[LEAVES];
static atomic_int stop, revoked_now, reloaded, printed;
static atomic_ullong ok[LEAVES], failed[LEAVES], unavailable_after;
static atomic_ullong across; /* calls to leaf2 started before the revocation, answered after the reloads */
static int bad;

static void check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int cond, const char *fmt, ...)
{
    if (cond) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
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

/* ---- the leaves' slow method: handlers queue, a thread answers ---- */

struct held {
    struct clink_req *req;
    uint64_t at;
};
struct responder {
    pthread_t th;
    pthread_mutex_t mu;
    struct held q[4096];
    size_t head, tail; /* q[head..tail) waits */
    int quit;
    int paused; /* answer nothing (but at quit) */
};
static struct responder resp[LEAVES];

static void slow(struct clink_req *req, void *user)
{
    struct responder *r = user;
    pthread_mutex_lock(&r->mu);
    if (r->tail - r->head < sizeof(r->q) / sizeof(r->q[0])) {
        r->q[r->tail++ % (sizeof(r->q) / sizeof(r->q[0]))] = (struct held){req, now_ms()};
        req = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (req != NULL) {
        CLINK_IGNORE(clink_req_fail(req, "responder queue full")); /* the test's bound, seen as a failed call */
    }
}

static void *responder_main(void *arg)
{
    struct responder *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int quit = r->quit;
        struct held h = {NULL, 0};
        if (r->head < r->tail &&
            (quit || (!r->paused && r->q[r->head % (sizeof(r->q) / sizeof(r->q[0]))].at + SLOW_MS <= now_ms()))) {
            h = r->q[r->head++ % (sizeof(r->q) / sizeof(r->q[0]))];
        }
        pthread_mutex_unlock(&r->mu);
        if (h.req != NULL) {
            size_t n;
            const uint8_t *p = clink_req_data(h.req, &n);
            (void)p;
            /* The request's data is only the handler's: the answer says which leaf, the caller checks it. */
            struct iovec iov = {.iov_base = (void *)(uintptr_t) "slow", .iov_len = 4};
            while (clink_req_respond(h.req, &iov, 1) == -CLINK_EAGAIN) {
                usleep(1000);
            }
            continue;
        }
        if (quit) {
            return NULL;
        }
        usleep(2000);
    }
}

static struct responder *reg_target;
static void reg(struct clink_node *n)
{
    ts_register_echo(n);
    TS_REQUIRE(clink_node_register(n, SLOW, slow, reg_target) == 0, "register");
}

/* ---- load ---- */

static void *caller(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (unsigned long i = 0; !atomic_load(&stop); i++) {
        int l = (int)((i + (unsigned long)id) % LEAVES);
        int slow_call = (i / LEAVES) % 2 == 0;
        char buf[64];
        int len = snprintf(buf, sizeof(buf), "%s from %d, call %lu", leaf_name[l], id, i);
        int after = atomic_load(&revoked_now);
        struct clink_msg r;
        int ret = clink_pool_call_sync(pool[l], slow_call ? SLOW : TS_ECHO, buf, (size_t)len, ts_ms(5000), &r);
        int match = ret == 0 && (slow_call ? r.len == 4 && memcmp(r.data, "slow", 4) == 0
                                           : r.len == (size_t)len && memcmp(r.data, buf, r.len) == 0);
        clink_msg_free(&r);
        if (match) {
            atomic_fetch_add(&ok[l], 1);
            if (l == 1 && !after && atomic_load(&reloaded)) {
                atomic_fetch_add(&across, 1);
            }
            continue;
        }
        /* After the revocation, leaf2's pool going down is the point: its calls may fail as unavailable. */
        if (l == 1 && after && ret == -CLINK_EUNAVAIL) {
            atomic_fetch_add(&unavailable_after, 1);
            usleep(1000); /* a pool failing fast must not spin */
            continue;
        }
        atomic_fetch_add(&failed[l], 1);
        if (atomic_fetch_add(&printed, 1) < 20) {
            fprintf(stderr, "FAIL: thread %d, call %lu to %s (%s): %s\n", id, i, leaf_name[l],
                    after ? "after the revocation" : "before", ret == 0 ? "wrong answer" : clink_strerror(ret));
        }
        usleep(1000);
    }
    return NULL;
}

/* ---- the PKI and nodes ---- */

static const char *dns[] = {"localhost", NULL};
static const char *ips[] = {"127.0.0.1", NULL};
static const char *const names[3] = {"agg", "leaf1", "leaf2"};

static struct clink_tls_ctx *make_ctx(int who, char *err, size_t cap)
{
    struct clink_tls_opts o = {.cert_file = cert[who], .key_file = key[who], .ca_file = pki.ca, .crl_file = crl};
    struct clink_tls_ctx *t = NULL;
    return clink_tls_ctx_new(&o, &t, err, cap) == 0 ? t : NULL;
}

static int dial(struct clink_node *from, struct clink_node *to, char *err, size_t cap)
{
    struct clink_connect_opts o = {.host = "127.0.0.1",
                                   .port = clink_node_port(to),
                                   .expected_name = "localhost",
                                   .no_resume = 1,
                                   .timeout_ms = ts_ms(5000)};
    struct clink_conn *c = NULL;
    err[0] = '\0';
    int ret = clink_connect_sync(from, &o, &c, err, cap);
    if (c != NULL) {
        clink_conn_close(c);
    }
    return ret;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    ts_pki_make(&pki);
    ts_pki_path(&pki, "ca-key.pem", ca_key, sizeof(ca_key));
    ts_pki_path(&pki, "crl.pem", crl, sizeof(crl));
    char err[512];
    for (int i = 0; i < 3; i++) {
        snprintf(cert[i], sizeof(cert[i]), "%s/%s.pem", pki.dir, names[i]);
        snprintf(key[i], sizeof(key[i]), "%s/%s-key.pem", pki.dir, names[i]);
        struct clink_cert_opts o = {.common_name = names[i], .dns_names = dns, .ip_addrs = ips};
        TS_REQUIRE(clink_cert_make_node(&o, pki.ca, ca_key, cert[i], key[i], 1, err, sizeof(err)) == 0, "%s", err);
    }
    TS_REQUIRE(clink_cert_crl_reissue(pki.dir, NULL, 0, NULL, err, sizeof(err)) == 0, "%s", err);
    struct clink_tls_ctx *ctx[3], *ctx2[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        ctx[i] = make_ctx(i, err, sizeof(err));
        TS_REQUIRE(ctx[i] != NULL, "%s", err);
    }
    struct clink_node_opts ao = {.workers = 2, .tls = ctx[0]};
    if (getenv("DRV_LOG")) {
        ao.log = clink_log_stderr;
        ao.log_level = CLINK_LOG_INFO;
    }
    agg = ts_node_with(&ao, ts_register_echo); /* listens too: leaf2 must be refused dialling it */
    for (int l = 0; l < LEAVES; l++) {
        pthread_mutex_init(&resp[l].mu, NULL);
        TS_REQUIRE(pthread_create(&resp[l].th, NULL, responder_main, &resp[l]) == 0, "responder");
        struct clink_node_opts lo = ao;
        lo.tls = ctx[1 + l];
        reg_target = &resp[l];
        leaf[l] = ts_node_with(&lo, reg);
    }
    struct clink_cluster_opts co = {
        .node = agg,
        .log = ao.log,
        .log_level = CLINK_LOG_INFO,
        .pool = {.min_conns = 2, .max_conns = 4, .backoff_min_ms = 20, .backoff_max_ms = 200, .max_waiting = 100000}};
    struct clink_cluster *cl;
    TS_REQUIRE(clink_cluster_new(&co, &cl) == 0, "cluster");
    for (int l = 0; l < LEAVES; l++) {
        struct clink_peer peer = {
            .name = leaf_name[l], .host = "127.0.0.1", .port = clink_node_port(leaf[l]), .expected_name = "localhost"};
        TS_REQUIRE(clink_cluster_add(cl, &peer) == 0, "add %s", leaf_name[l]);
        pool[l] = clink_cluster_pool(cl, leaf_name[l]);
    }

    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        TS_REQUIRE(pthread_create(&th[t], NULL, caller, (void *)(intptr_t)t) == 0, "caller");
    }
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 1000 || atomic_load(&ok[1]) < 20) {
        usleep(20000);
        TS_REQUIRE(now_ms() - t0 < ts_ms(60000), "no calls reached leaf2 before the revocation");
    }
    /*
     * Revoke while leaf2's links carry calls: its responder holds their
     * answers until the aggregator has closed those links (GOAWAY), so that
     * they finish across the reloads whatever the timing.
     */
    pthread_mutex_lock(&resp[1].mu);
    resp[1].paused = 1;
    pthread_mutex_unlock(&resp[1].mu);
    size_t held = 0;
    for (uint64_t t = now_ms(); held == 0 && now_ms() - t < ts_ms(10000); usleep(1000)) {
        pthread_mutex_lock(&resp[1].mu);
        held = resp[1].tail - resp[1].head;
        pthread_mutex_unlock(&resp[1].mu);
    }
    TS_REQUIRE(held > 0, "no call to leaf2 in flight to hold");
    struct clink_pool_stats before;
    clink_pool_get_stats(pool[1], &before);
    unsigned long long ok_before = atomic_load(&ok[1]);

    /* Revoke leaf2, then reload every node with the new CRL, as `clink-admin reload --all` would. */
    struct clink_revoke_opts ro = {.cert_file = cert[2], .reason = "keyCompromise"};
    TS_REQUIRE(clink_cert_revoke(pki.dir, NULL, &ro, NULL, err, sizeof(err)) == 0, "revoke: %s", err);
    atomic_store(&revoked_now, 1);
    struct clink_node *by_ctx[3] = {agg, leaf[0], leaf[1]};
    for (int i = 0; i < 3; i++) {
        ctx2[i] = make_ctx(i, err, sizeof(err));
        if (i == 2) {
            /* The revoked node refuses its own certificate: it keeps the context it has (its reload fails). */
            check(ctx2[i] == NULL && strstr(err, "revoked") != NULL, "leaf2's own reload: %s",
                  ctx2[i] ? "accepted" : err);
            continue;
        }
        TS_REQUIRE(ctx2[i] != NULL, "%s", err);
        TS_REQUIRE(clink_node_reload_tls(by_ctx[i], ctx2[i]) == 0, "reload %s", names[i]);
    }
    atomic_store(&reloaded, 1);
    struct clink_node_stats gs;
    for (uint64_t t = now_ms(); now_ms() - t < ts_ms(10000); usleep(1000)) {
        clink_node_get_stats(agg, &gs);
        if (gs.links_closed_revoked > 0) {
            break;
        }
    }
    pthread_mutex_lock(&resp[1].mu);
    resp[1].paused = 0; /* the held answers now cross links the aggregator is draining */
    pthread_mutex_unlock(&resp[1].mu);

    /* Leaf2's pool goes down: its links drain and close, and no new one verifies. */
    struct clink_pool_stats s;
    uint64_t t1 = now_ms();
    do {
        usleep(20000);
        clink_pool_get_stats(pool[1], &s);
    } while ((s.conns_open > 0 || s.up) && now_ms() - t1 < ts_ms(10000));
    check(s.conns_open == 0 && !s.up, "leaf2's pool still has %u open links (up %d) %llu ms after the reloads",
          s.conns_open, s.up, (unsigned long long)(now_ms() - t1));
    unsigned long long ok1_mid = atomic_load(&ok[0]);
    usleep(ts_ms(1000) * 1000); /* ... and stays down, while leaf1 goes on */
    clink_pool_get_stats(pool[1], &s);
    check(s.conns_open == 0, "leaf2's pool came back: %u open links", s.conns_open);
    check(atomic_load(&ok[0]) > ok1_mid, "leaf1 carried no calls after the reloads");

    atomic_store(&stop, 1);
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }

    /* Every peer refuses leaf2, both ways, and says why. */
    int r1 = dial(agg, leaf[1], err, sizeof(err));
    check(r1 == -CLINK_EVERIFY && strstr(err, "revoked") != NULL, "agg -> leaf2: %s: %s", clink_strerror(r1), err);
    int r2 = dial(leaf[0], leaf[1], err, sizeof(err));
    check(r2 == -CLINK_EVERIFY && strstr(err, "revoked") != NULL, "leaf1 -> leaf2: %s: %s", clink_strerror(r2), err);
    int r3 = dial(leaf[1], agg, err, sizeof(err));
    check(r3 < 0 && strstr(err, "revoked") != NULL, "leaf2 -> agg: %s: %s", clink_strerror(r3), err);
    int r4 = dial(leaf[1], leaf[0], err, sizeof(err));
    check(r4 < 0 && strstr(err, "revoked") != NULL, "leaf2 -> leaf1: %s: %s", clink_strerror(r4), err);
    int r5 = dial(agg, leaf[0], err, sizeof(err));
    check(r5 == 0, "agg -> leaf1 after the reloads: %s: %s", clink_strerror(r5), err);

    struct clink_node_stats as, l1s;
    clink_node_get_stats(agg, &as);
    clink_node_get_stats(leaf[0], &l1s);
    check(as.links_closed_revoked >= 1, "the aggregator closed no link as revoked");
    check(as.links_closed_untrusted == 0 && l1s.links_closed_revoked == 0 && l1s.links_closed_untrusted == 0,
          "links closed that were not leaf2's: agg %llu untrusted, leaf1 %llu revoked %llu untrusted",
          (unsigned long long)as.links_closed_untrusted, (unsigned long long)l1s.links_closed_revoked,
          (unsigned long long)l1s.links_closed_untrusted);
    check(atomic_load(&failed[0]) == 0, "%llu calls to leaf1 failed", atomic_load(&failed[0]));
    check(atomic_load(&failed[1]) == 0, "%llu calls to leaf2 failed with something else than unavailable",
          atomic_load(&failed[1]));
    check(atomic_load(&across) > 0, "no call to leaf2 in flight at the revocation was answered after the reloads");

    printf("driver_revoke: leaf1 %llu ok %llu failed; leaf2 %llu ok (%llu after the revocation) %llu unavailable "
           "%llu failed; %zu held in flight at the revocation, %llu answered after the reloads; agg closed %llu "
           "link(s) as revoked: %s\n",
           atomic_load(&ok[0]), atomic_load(&failed[0]), atomic_load(&ok[1]), atomic_load(&ok[1]) - ok_before,
           atomic_load(&unavailable_after), atomic_load(&failed[1]), held, atomic_load(&across),
           (unsigned long long)as.links_closed_revoked, bad ? "FAILED" : "ok");

    /* What the responders still hold is answered while its leaf lives. */
    for (int l = 0; l < LEAVES; l++) {
        pthread_mutex_lock(&resp[l].mu);
        resp[l].quit = 1;
        pthread_mutex_unlock(&resp[l].mu);
        pthread_join(resp[l].th, NULL);
        pthread_mutex_destroy(&resp[l].mu);
    }
    clink_pool_release(pool[0]);
    clink_pool_release(pool[1]);
    clink_cluster_free(cl);
    clink_node_free(agg);
    for (int l = 0; l < LEAVES; l++) {
        clink_node_free(leaf[l]);
    }
    for (int i = 0; i < 3; i++) {
        clink_tls_ctx_free(ctx[i]);
        clink_tls_ctx_free(ctx2[i]);
    }
    ts_pki_remove(&pki);
    return bad ? 1 : 0;
}
