/*
 * clink-bench storm scenario: an in-process leaf with many pooled
 * connections goes away and comes back (with the same ticket keys, as a
 * restart that keeps its key file does). How long until every pool is whole
 * again, and which share of the reconnects resumed.
 */
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"

#define PER_POOL 32

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

static void totals(struct clink_cluster *cl, unsigned npools, struct clink_pool_stats *sum)
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
        clink_pool_get_stats(p, &s);
        clink_pool_release(p);
        sum->conns_open += s.conns_open;
        sum->handshakes_full += s.handshakes_full;
        sum->handshakes_resumed += s.handshakes_resumed;
        sum->handshakes_failed += s.handshakes_failed;
    }
}

static int wait_open(struct clink_cluster *cl, unsigned npools, unsigned want, unsigned ms)
{
    uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
    struct clink_pool_stats s;
    do {
        totals(cl, npools, &s);
        if (s.conns_open >= want) {
            return 0;
        }
        usleep(1000);
    } while (now_ns() < end);
    return -1;
}

int run_storm(struct cfg *cfg, struct result *res)
{
    unsigned npools = (cfg->storm_conns + PER_POOL - 1) / PER_POOL, total = npools * PER_POOL;
    struct clink_node *leaf = storm_leaf(cfg->tls, 0);
    res->concurrency = total;
    res->connections = total;
    if (leaf == NULL) {
        snprintf(res->skipped, sizeof(res->skipped), "cannot start the in-process leaf");
        return -1;
    }
    uint16_t port = clink_node_port(leaf);
    struct clink_cluster_opts co = {.node = cfg->node,
                                    .pool = {.min_conns = PER_POOL,
                                             .max_conns = PER_POOL,
                                             .backoff_min_ms = 20,
                                             .backoff_max_ms = 500,
                                             .max_dials_in_flight = 8}};
    struct clink_cluster *cl = NULL;
    int ret = clink_cluster_new(&co, &cl);
    for (unsigned i = 0; ret == 0 && i < npools; i++) {
        char name[16];
        snprintf(name, sizeof(name), "storm%u", i);
        struct clink_peer p = {.name = name, .host = "127.0.0.1", .port = port, .expected_name = cfg->name};
        ret = clink_cluster_add(cl, &p);
    }
    if (ret < 0 || wait_open(cl, npools, total, 20000) < 0) {
        snprintf(res->skipped, sizeof(res->skipped), "the %u connections did not open", total);
        clink_cluster_free(cl);
        clink_node_free(leaf);
        return -1;
    }
    usleep(200000); /* every connection's tickets have arrived */
    struct clink_pool_stats before, cur;
    totals(cl, npools, &before);
    clink_node_free(leaf); /* the leaf goes away: every connection dies at once */
    for (int i = 0; i < 10000 && (totals(cl, npools, &cur), cur.conns_open > 0); i++) {
        usleep(1000);
    }
    double cpu0 = cpu_self_s();
    uint64_t t0 = now_ns();
    leaf = storm_leaf(cfg->tls, port);
    ret = leaf ? wait_open(cl, npools, total, 30000) : -1;
    uint64_t t1 = now_ns();
    struct clink_pool_stats after;
    totals(cl, npools, &after);
    res->cpu_s = res->cpu_client_s = cpu_self_s() - cpu0; /* both ends: the leaf is in this process */
    res->secs = (double)(t1 - t0) / 1e9;
    res->ok = after.conns_open < total ? after.conns_open : total;
    res->issued = total;
    res->failed = total - res->ok;
    res->ops = (double)res->ok / res->secs;
    uint64_t full = after.handshakes_full - before.handshakes_full;
    uint64_t resumed = after.handshakes_resumed - before.handshakes_resumed;
    res->resumed_share = full + resumed ? (double)resumed / (double)(full + resumed) : 0;
    snprintf(res->note, sizeof(res->note), "%u connections back in %.0f ms, %.0f%% resumed", (unsigned)res->ok,
             res->secs * 1e3, res->resumed_share * 100);
    if (ret < 0) {
        snprintf(res->skipped, sizeof(res->skipped), "only %u of %u connections came back in 30 s", after.conns_open,
                 total);
    }
    clink_cluster_free(cl);
    clink_node_free(leaf);
    return ret;
}
