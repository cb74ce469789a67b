/*
 * The ops page's charts: the latency buckets hold their bounds, the ring of
 * per-second samples wraps and its memory stays what samples.h says, and on
 * real sockets an aggregator's page draws a chart per metric for itself and
 * for its peer whose points move once calls are made and a tick passes, a
 * calls/s sparkline on each row of the nodes table, and a timeline that lists
 * every certificate in use.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/clink.h"
#include "ops/ops_int.h"
#include "ops/samples.h"
#include "tests/support/support.h"

/* ---- the latency buckets ---- */

Test(ops_charts_units, latency_buckets_hold_their_bounds)
{
    unsigned prev = 0;
    for (uint64_t us = 0; us < 70000000; us = us < 100 ? us + 1 : us + us / 7) {
        unsigned b = clink_latency_bucket(us * 1000 + 999);
        cr_assert(b < CLINK_LATENCY_BUCKETS, "%llu us: bucket %u", (unsigned long long)us, b);
        cr_assert(b >= prev, "buckets go down at %llu us", (unsigned long long)us);
        prev = b;
        if (b < CLINK_LATENCY_BUCKETS - 1) {
            cr_assert(clink_latency_bucket_us(b) <= us && us < clink_latency_bucket_us(b + 1),
                      "%llu us in bucket %u [%llu, %llu)", (unsigned long long)us, b,
                      (unsigned long long)clink_latency_bucket_us(b),
                      (unsigned long long)clink_latency_bucket_us(b + 1));
            /* Four buckets a doubling: a bucket's upper bound is at most 25% above its lower. */
            cr_assert(b < 4 || clink_latency_bucket_us(b + 1) * 4 <= clink_latency_bucket_us(b) * 5);
        }
    }
    cr_assert_eq(clink_latency_bucket(UINT64_MAX), CLINK_LATENCY_BUCKETS - 1);
    cr_assert_eq(clink_latency_bucket_us(CLINK_LATENCY_BUCKETS), 67108864, "the last bucket ends at 2^26 us");
}

Test(ops_charts_units, p99_of_a_histogram)
{
    struct clink_latency d = {0};
    cr_assert(isnan(clink__latency_p99_us(&d)), "no calls: no p99");
    d.count[clink_latency_bucket(100000)] = 99;  /* 99 calls of 100 us */
    d.count[clink_latency_bucket(50000000)] = 1; /* and one of 50 ms */
    double p = clink__latency_p99_us(&d);
    cr_assert(p >= 100 && p <= 125, "99 of 100 calls took 100 us: p99 %g", p);
    d.count[clink_latency_bucket(50000000)] = 2; /* two slow ones in 101: the 100th is slow */
    p = clink__latency_p99_us(&d);
    cr_assert(p >= 50000 && p <= 62500, "2 of 101 calls took 50 ms: p99 %g", p);
}

/* ---- the ring ---- */

static struct clink__reading reading(uint64_t i)
{
    struct clink__reading r = {.calls = 10 * i,
                               .bytes_in = 1000 * i,
                               .bytes_out = 2000 * i,
                               .hs_full = i,
                               .hs_resumed = 2 * i,
                               .hs_failed = 0};
    r.latency.count[clink_latency_bucket(200000)] = 10 * i; /* every call 200 us */
    return r;
}

Test(ops_charts_units, the_ring_wraps_and_stays_bounded)
{
    struct clink__samples *s = NULL;
    cr_assert_eq(clink__samples_new(&s), 0);
    uint64_t ns = 1000000000ull;
    size_t bytes0 = clink__samples_bytes(s);
    cr_assert_eq(bytes0, sizeof(struct clink__samples));

    /* 1000 ticks a second apart: 999 samples written into 900 places. */
    for (uint64_t i = 0; i < 1000; i++) {
        struct clink__reading r = reading(i);
        clink__samples_begin(s, ns + i * 1000000000ull, 1700000000 + (int64_t)i);
        clink__samples_node(s, &r);
        clink__samples_end(s);
    }
    cr_assert_eq(s->node.n, CLINK__SAMPLES, "%u samples", s->node.n);
    cr_assert_eq(clink__samples_bytes(s), bytes0, "the node's ring grew");
    for (unsigned k = 0; k < CLINK__SAMPLES; k++) {
        cr_assert_float_eq(clink__samples_at(s, &s->node, CLINK__S_CALLS, k), 10.0, 1e-3, "age %u", k);
        cr_assert_float_eq(clink__samples_at(s, &s->node, CLINK__S_BYTES_OUT, k), 2000.0, 1e-3);
        cr_assert_float_eq(clink__samples_at(s, &s->node, CLINK__S_HS_RESUMED, k), 2.0, 1e-3);
        float p = clink__samples_at(s, &s->node, CLINK__S_P99, k);
        cr_assert(p >= 200 && p <= 250, "p99 %g", p);
    }

    /* A tick 5 s late fills the 5 seconds with the average; a counter that restarted gives 0, not a negative. */
    uint64_t t = ns + 999 * 1000000000ull;
    struct clink__reading r = reading(1049); /* 50 more calls a second for 5 s: 100/s */
    r.calls = 10 * 999 + 500;
    r.hs_full = 3; /* below 999: restarted */
    clink__samples_begin(s, t + 5000000000ull, 0);
    clink__samples_node(s, &r);
    clink__samples_end(s);
    for (unsigned k = 0; k < 5; k++) {
        cr_assert_float_eq(clink__samples_at(s, &s->node, CLINK__S_CALLS, k), 100.0, 1e-3, "age %u", k);
        cr_assert_float_eq(clink__samples_at(s, &s->node, CLINK__S_HS_FULL, k), 0.0, 1e-6);
    }
    cr_assert_float_eq(clink__samples_at(s, &s->node, CLINK__S_CALLS, 5), 10.0, 1e-3, "before the gap");
    t += 5000000000ull;

    /* 300 peers: the first 256 get a history, the rest are counted as not charted. */
    char name[64];
    for (int round = 0; round < 3; round++) {
        t += 1000000000ull;
        clink__samples_begin(s, t, 0);
        clink__samples_node(s, &r);
        for (int p = 0; p < 300; p++) {
            struct clink__reading pr = reading((uint64_t)round);
            snprintf(name, sizeof(name), "leaf%d", p);
            clink__samples_peer(s, name, &pr);
        }
        clink__samples_end(s);
    }
    cr_assert_eq(s->peers_untracked, 300 - CLINK__SAMPLED_PEERS);
    size_t full = sizeof(struct clink__samples) + CLINK__SAMPLED_PEERS * sizeof(struct clink__history);
    cr_assert_eq(clink__samples_bytes(s), full, "%zu bytes, expected %zu", clink__samples_bytes(s), full);
    const struct clink__history *h = clink__samples_find(s, "leaf7");
    cr_assert_not_null(h);
    cr_assert_eq(h->n, 2, "a new peer's first reading only sets where counting starts: %u", h->n);
    cr_assert_float_eq(clink__samples_at(s, h, CLINK__S_CALLS, 0), 10.0, 1e-3);
    cr_assert_null(clink__samples_find(s, "leaf299"));

    /* The peers leave and others come: their slots (and memory) are reused, never more. */
    for (int round = 0; round < 2; round++) {
        t += 1000000000ull;
        clink__samples_begin(s, t, 0);
        for (int p = 0; p < 300; p++) {
            struct clink__reading pr = reading(0);
            snprintf(name, sizeof(name), "other%d", p);
            clink__samples_peer(s, name, &pr);
        }
        clink__samples_end(s);
    }
    cr_assert_null(clink__samples_find(s, "leaf7"), "a removed peer kept its history");
    cr_assert_not_null(clink__samples_find(s, "other0"));
    cr_assert_eq(clink__samples_bytes(s), full);
    /* What docs/ops.md states: about 26 KB a history, 6.7 MB at most. */
    cr_log_info("ring: %zu bytes for the node, %zu a peer, %zu at most", sizeof(struct clink__samples),
                sizeof(struct clink__history), full);
    cr_assert(full < 7 * 1000 * 1000, "%zu bytes", full);
    clink__samples_free(s);
}

/* ---- an aggregator's page on real sockets ---- */

static struct ts_pki pki;
static struct clink_tls_ctx *tls, *https_tls;
static struct clink_node *leaf, *agg;
static struct clink_cluster *cl;
static struct clink_ops *ops;
/* A peer name that would break the page if printed as it is. */
static const char *const peer_name = "leaf<1>&\"x\"";

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    char err[256];
    struct clink_tls_opts ho = {.cert_file = pki.node_cert, .key_file = pki.node_key};
    cr_assert_eq(clink_tls_ctx_new_https(&ho, &https_tls, err, sizeof(err)), 0, "%s", err);
    leaf = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node_opts o = {.workers = 2, .tls = tls, .handshake_timeout_ms = ts_ms(5000)};
    cr_assert_eq(clink_node_new(&o, &agg), 0);
    struct clink_ops_opts oo = {.node = agg, .tls = https_tls, .name = "agg-under-test"};
    cr_assert_eq(clink_ops_new(&oo, &ops), 0);
    cr_assert_eq(clink_node_start(agg), 0);
    struct clink_cluster_opts co = {.node = agg};
    cr_assert_eq(clink_cluster_new(&co, &cl), 0);
    struct clink_peer p = {
        .name = peer_name, .host = "127.0.0.1", .port = clink_node_port(leaf), .expected_name = "localhost"};
    cr_assert_eq(clink_cluster_add(cl, &p), 0);
    clink_ops_set_cluster(ops, cl);
}

static void teardown(void)
{
    clink_ops_set_cluster(ops, NULL);
    clink_cluster_free(cl);
    CLINK_IGNORE(clink_node_shutdown(agg, 0));
    clink_ops_free(ops);
    clink_node_free(agg);
    clink_node_free(leaf);
    clink_tls_ctx_free(tls);
    clink_tls_ctx_free(https_tls);
    ts_pki_remove(&pki);
}

TestSuite(ops_charts, .init = setup, .fini = teardown, .timeout = 120);

static char *page(void)
{
    char *out = NULL;
    size_t len = 0;
    cr_assert_eq(clink_ops_render(ops, "page", &out, &len), 0);
    cr_assert_eq(strlen(out), len);
    return out;
}

/* The <figure id="id"> ... </figure> of a page, copied (caller frees); fails the test if missing. */
static char *figure(const char *html, const char *id)
{
    char key[128];
    snprintf(key, sizeof(key), "<figure class=\"chart\" id=\"%s\">", id);
    const char *a = strstr(html, key);
    cr_assert_not_null(a, "no chart %s in the page", id);
    const char *e = strstr(a, "</figure>");
    cr_assert_not_null(e);
    return strndup(a, (size_t)(e - a));
}

/* Every polyline's points of a chart, concatenated (caller frees). */
static char *points(const char *fig)
{
    size_t cap = strlen(fig) + 1, n = 0;
    char *out = calloc(1, cap);
    for (const char *p = strstr(fig, "points=\""); p != NULL; p = strstr(p, "points=\"")) {
        p += 8;
        const char *q = strchr(p, '"');
        memcpy(out + n, p, (size_t)(q - p));
        n += (size_t)(q - p);
        out[n++] = '|';
    }
    return out;
}

/* The points of the chart with that id in html (caller frees). */
static char *chart_points(const char *html, const char *id)
{
    char *f = figure(html, id);
    char *p = points(f);
    free(f);
    return p;
}

static void wait_peer_up(void)
{
    struct clink_pool *p = clink_cluster_pool(cl, peer_name);
    cr_assert_not_null(p);
    struct clink_pool_stats st;
    for (int i = 0; i < 500; i++) {
        clink_pool_get_stats(p, &st);
        if (st.conns_open > 0) {
            break;
        }
        usleep(10000);
    }
    cr_assert(st.conns_open > 0, "the pool did not connect");
    clink_pool_release(p);
}

static void calls(unsigned n)
{
    struct clink_pool *p = clink_cluster_pool(cl, peer_name);
    for (unsigned i = 0; i < n; i++) {
        struct clink_msg m;
        cr_assert_eq(clink_pool_call_sync(p, TS_ECHO, "ping-pong", 9, ts_ms(5000), &m), 0);
        cr_assert_eq(m.len, 9);
        clink_msg_free(&m);
    }
    clink_pool_release(p);
}

static atomic_uint done;

static void call_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)call;
    (void)resp;
    cr_assert_eq(status, 0);
    cr_assert_eq(len, 9);
    atomic_fetch_add(&done, 1);
}

/* n calls through the pool, in batches of 50 in flight (their completions race, as in real traffic). */
static void calls_in_flight(unsigned n)
{
    struct clink_pool *p = clink_cluster_pool(cl, peer_name);
    static char payload[] = "ping-pong";
    static struct iovec iov = {.iov_base = payload, .iov_len = 9};
    static struct clink_pool_call pc[50];
    for (unsigned sent = 0; sent < n; sent += 50) {
        atomic_store(&done, 0);
        for (unsigned i = 0; i < 50; i++) {
            memset(&pc[i], 0, sizeof(pc[i]));
            pc[i].call = (struct clink_call){
                .method = TS_ECHO, .iov = &iov, .iovcnt = 1, .timeout_ms = ts_ms(5000), .cb = call_done};
            cr_assert_eq(clink_pool_call_start(p, &pc[i]), 0);
        }
        for (int w = 0; w < 5000 && atomic_load(&done) < 50; w++) {
            usleep(1000);
        }
        cr_assert_eq(atomic_load(&done), 50);
    }
    clink_pool_release(p);
}

static uint64_t total(const struct clink_latency *l)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < CLINK_LATENCY_BUCKETS; b++) {
        n += l->count[b];
    }
    return n;
}

Test(ops_charts, the_histograms_count_each_call_once)
{
    wait_peer_up();
    struct clink_pool *p = clink_cluster_pool(cl, peer_name);
    struct clink_latency n0, n1;
    struct clink_pool_traffic t0, t1;
    clink_node_call_latency(agg, &n0);
    clink_pool_get_traffic(p, &t0);

    calls(100);
    calls_in_flight(3000);

    clink_node_call_latency(agg, &n1);
    clink_pool_get_traffic(p, &t1);
    clink_pool_release(p);
    struct clink_latency dn, dp;
    for (unsigned b = 0; b < CLINK_LATENCY_BUCKETS; b++) {
        cr_assert(n1.count[b] >= n0.count[b] && t1.latency.count[b] >= t0.latency.count[b], "bucket %u went down", b);
        dn.count[b] = n1.count[b] - n0.count[b];
        dp.count[b] = t1.latency.count[b] - t0.latency.count[b];
    }
    /* Pings are not calls: the pool's idle pings may run meanwhile, and must not show. */
    cr_assert_eq(total(&dn), 3100, "the node counted %llu calls", (unsigned long long)total(&dn));
    cr_assert_eq(total(&dp), 3100, "the pool counted %llu calls", (unsigned long long)total(&dp));
    cr_assert_eq(t1.bytes_out - t0.bytes_out, 3100 * 9);
    cr_assert_eq(t1.bytes_in - t0.bytes_in, 3100 * 9);
    /* Each call's time on its connection lies within its time through the pool: so do their p99s. */
    double pn = clink__latency_p99_us(&dn), pp = clink__latency_p99_us(&dp);
    /* A TLS round trip between two nodes' workers takes tens of microseconds: a clock that stood still shows. */
    cr_assert(pn >= 8 && pn <= pp, "p99 on the connection %g us, through the pool %g us", pn, pp);
}

static const char *const kinds[] = {"calls", "bytes", "p99", "handshakes"};

Test(ops_charts, the_page_draws_charts_that_move)
{
    wait_peer_up();
    struct clink__sampler *sp = clink__ops_sampler(ops);
    clink__sampler_tick(sp); /* where counting starts, for the node and the peer (if the thread had not yet) */
    usleep(200000);
    clink__sampler_tick(sp);

    char *before = page();
    char id[64];
    for (int k = 0; k < 4; k++) {
        snprintf(id, sizeof(id), "chart-node-%s", kinds[k]);
        char *f = figure(before, id);
        cr_assert(strstr(f, "<svg class=\"chart\""), "%s has no svg: %s", id, f);
        cr_assert(strstr(f, "class=\"axis-max\">"), "%s: the axis maximum is not labelled", id);
        cr_assert(strstr(f, "now <span class=\"now\">"), "%s: no current value: %s", id, f);
        free(f);
        snprintf(id, sizeof(id), "chart-peer-0-%s", kinds[k]);
        free(figure(before, id));
    }
    char *f = figure(before, "chart-node-handshakes");
    cr_assert(strstr(f, "<span class=\"k0\">full</span>") && strstr(f, "<span class=\"k1\">resumed</span>") &&
                  strstr(f, "<span class=\"k2\">failed</span>"),
              "handshakes: three series named: %s", f);
    cr_assert(strstr(f, "<polyline class=\"s2\""), "handshakes: the failed series is drawn: %s", f);
    free(f);
    f = figure(before, "chart-node-p99");
    cr_assert(strstr(f, "calls this node made"), "p99 says whose calls: %s", f);
    free(f);
    char *calls_before = chart_points(before, "chart-node-calls");
    cr_assert(calls_before[0] != '\0', "no polyline in the node's calls/s chart");
    char *peer_before = chart_points(before, "chart-peer-0-calls");

    /* The peer's name is escaped wherever it is printed, and its row has a calls/s sparkline. */
    cr_assert_null(strstr(before, peer_name), "the peer's name was printed unescaped");
    cr_assert(strstr(before, "leaf&lt;1&gt;&amp;&quot;x&quot;"), "the peer's escaped name is missing");
    cr_assert(strstr(before, "<figure class=\"chart\" id=\"spark-node\">"), "the node's row has no sparkline");
    cr_assert(strstr(before, "<figure class=\"chart\" id=\"spark-peer-0\">"), "the peer's row has no sparkline");
    cr_assert_null(strstr(before, "<script"), "the page has a script");

    /* Calls, then a tick: the lines move and the numbers say so. */
    calls(200);
    usleep(300000);
    clink__sampler_tick(sp);
    char *after = page();
    char *calls_after = chart_points(after, "chart-node-calls");
    char *peer_after = chart_points(after, "chart-peer-0-calls");
    cr_assert_str_neq(calls_before, calls_after, "the node's calls/s chart did not move: %s", calls_after);
    cr_assert_str_neq(peer_before, peer_after, "the peer's calls/s chart did not move: %s", peer_after);
    f = figure(after, "chart-peer-0-p99");
    cr_assert(strstr(f, "<polyline class=\"s0\""), "no p99 line after 200 calls: %s", f);
    cr_assert_null(strstr(f, "no call finished"), "%s", f);
    free(f);
    f = figure(after, "chart-peer-0-bytes");
    cr_assert_null(strstr(f, "now <span class=\"now\"><span class=\"k0\">in</span> 0 B/s"), "%s", f);
    free(f);

    /* The thread ticks on its own, once a second. */
    struct clink__samples *s = clink__sampler_samples(sp);
    pthread_mutex_lock(&s->mu);
    unsigned n0 = s->node.n;
    pthread_mutex_unlock(&s->mu);
    usleep(2200000);
    pthread_mutex_lock(&s->mu);
    unsigned n1 = s->node.n;
    pthread_mutex_unlock(&s->mu);
    cr_assert(n1 >= n0 + 1, "the sampler's thread did not tick: %u then %u", n0, n1);

    free(calls_before);
    free(calls_after);
    free(peer_before);
    free(peer_after);
    free(before);
    free(after);
}

Test(ops_charts, the_expiry_timeline_lists_every_certificate)
{
    wait_peer_up();
    /* A renewed node certificate that expires in 10 days: inside the warning window. */
    char cert[300], key[300], cakey[300], err[256];
    ts_pki_path(&pki, "short.pem", cert, sizeof(cert));
    ts_pki_path(&pki, "short-key.pem", key, sizeof(key));
    ts_pki_path(&pki, "ca-key.pem", cakey, sizeof(cakey));
    const char *dns[] = {"localhost", NULL}, *ips[] = {"127.0.0.1", NULL};
    struct clink_cert_opts co = {.common_name = "short", .dns_names = dns, .ip_addrs = ips, .valid_for_s = 10 * 86400};
    cr_assert_eq(clink_cert_make_node(&co, pki.ca, cakey, cert, key, 1, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_ctx *renewed = ts_tls(cert, key, pki.ca);
    cr_assert_eq(clink_node_reload_tls(agg, renewed), 0);
    clink_tls_ctx_free(renewed);

    char *html = page();
    const char *tl = strstr(html, "<svg class=\"timeline\" id=\"expiry-timeline\"");
    cr_assert_not_null(tl, "no timeline");
    const char *end = strstr(tl, "</svg>");
    char *svg = strndup(tl, (size_t)(end - tl));
    /* One row per certificate the table lists (node: own and CA; https: own; peer: the leaf's). */
    unsigned rows = 0, table = 0;
    for (const char *p = strstr(svg, "<g class=\"tl-cert"); p; p = strstr(p + 1, "<g class=\"tl-cert")) {
        rows++;
    }
    for (const char *p = strstr(html, "<tr class=\"cert"); p; p = strstr(p + 1, "<tr class=\"cert")) {
        table++;
    }
    cr_assert(table >= 4, "%u certificates in the table", table);
    cr_assert_eq(rows, table, "the timeline has %u rows, the table %u certificates", rows, table);
    cr_assert(strstr(svg, "<g class=\"tl-cert tl-expiring\"><title>CN=short (node, own)"),
              "the 10-day certificate is not marked: %s", svg);
    cr_assert(strstr(svg, "CN=clink test CA (node, ca)"), "the CA is missing: %s", svg);
    cr_assert(strstr(svg, "(peer leaf&lt;1&gt;&amp;&quot;x&quot;"), "the peer's certificate is missing: %s", svg);
    cr_assert(strstr(svg, "<rect class=\"tl-warn\""), "the warning window is not shaded");
    /* Soonest first: the 10-day certificate is the first row. */
    cr_assert(strstr(svg, "<g class=\"tl-cert") == strstr(svg, "<g class=\"tl-cert tl-expiring\"><title>CN=short"));
    free(svg);
    free(html);
}
