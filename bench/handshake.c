/*
 * clink-bench handshake scenario: dials per second and CPU per dial, with
 * both ends in this process so that getrusage sees all of the cost.
 * For ECDSA P-256 and for RSA 2048 it makes a throw-away CA and node
 * certificates, starts a leaf node on loopback, and has several threads
 * dial it: plaintext (TCP + HELLO), full TLS 1.3, resumed TLS 1.3. Two bare
 * OpenSSL loops run in the same run with the same certificates and
 * settings: over memory BIOs (bare_tls.c: no sockets, no clink) and over
 * loopback sockets with connect, a HELLO-sized round trip and an orderly
 * close (bare_tls_sock.c); clink's handshakes per CPU-second are compared
 * with both.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bare_tls.h"
#include "bench/bare_tls_sock.h"
#include "bench/bench.h"

struct keyset {
    const char *label;
    enum clink_key_type type;
    char dir[64];
    char ca[96], ca_key[96], srv[96], srv_key[96], cli[96], cli_key[96];
};

static int make_certs(struct keyset *k, char *err, size_t cap)
{
    snprintf(k->dir, sizeof(k->dir), "/tmp/clink-bench-hs-XXXXXX");
    if (mkdtemp(k->dir) == NULL) {
        snprintf(err, cap, "mkdtemp: %s", strerror(errno));
        return -1;
    }
#define PATH(f, n) snprintf(k->f, sizeof(k->f), "%s/" n, k->dir)
    PATH(ca, "ca.pem");
    PATH(ca_key, "ca-key.pem");
    PATH(srv, "leaf.pem");
    PATH(srv_key, "leaf-key.pem");
    PATH(cli, "agg.pem");
    PATH(cli_key, "agg-key.pem");
#undef PATH
    const char *dns[] = {"localhost", NULL}, *ips[] = {"127.0.0.1", NULL};
    struct clink_cert_opts ca = {.common_name = "clink-bench CA", .key_type = k->type};
    struct clink_cert_opts srv = {.common_name = "leaf", .dns_names = dns, .ip_addrs = ips, .key_type = k->type};
    struct clink_cert_opts cli = {.common_name = "agg", .dns_names = dns, .key_type = k->type};
    if (clink_cert_make_ca(&ca, k->ca, k->ca_key, 0, err, cap) < 0 ||
        clink_cert_make_node(&srv, k->ca, k->ca_key, k->srv, k->srv_key, 0, err, cap) < 0 ||
        clink_cert_make_node(&cli, k->ca, k->ca_key, k->cli, k->cli_key, 0, err, cap) < 0) {
        return -1;
    }
    return 0;
}

static void remove_certs(struct keyset *k)
{
    const char *files[] = {k->ca, k->ca_key, k->srv, k->srv_key, k->cli, k->cli_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        unlink(files[i]);
    }
    rmdir(k->dir);
}

static struct clink_node *start_node(const char *cert, const char *key, const char *ca, int listen, char *err,
                                     size_t cap)
{
    struct clink_tls_opts to = {.cert_file = cert, .key_file = key, .ca_file = ca};
    struct clink_tls_ctx *tls = NULL;
    if (clink_tls_ctx_new(&to, &tls, err, cap) < 0) {
        return NULL;
    }
    /*
     * Plaintext dials are client sessions, given back only once the server has closed them: under churn more
     * than hs_inflight are counted at once, and max_connections' default (151) would refuse some.
     */
    struct clink_node_opts o = {
        .workers = 1, .tls = tls, .allow_plaintext = 1, .max_handshakes_per_worker = 256, .max_connections = 100000};
    struct clink_node *n = NULL;
    int ret = clink_node_new(&o, &n);
    clink_tls_ctx_free(tls); /* the node holds its own reference */
    if (ret == 0 && listen) {
        ret = clink_node_listen(n, "127.0.0.1", 0);
    }
    if (ret == 0) {
        ret = clink_node_start(n);
    }
    if (ret < 0) {
        snprintf(err, cap, "cannot start a node: %s", clink_strerror(ret));
        clink_node_free(n);
        return NULL;
    }
    return n;
}

/*
 * Dials run as chains, like a pool's: each completion closes the connection
 * and starts the next dial from the worker's callback, so no application
 * thread sits between dials (the bare loop has none either). cfg->hs_inflight
 * chains run at once: that many handshakes in flight.
 */
struct dialers {
    struct clink_node *client;
    struct clink_connect_opts opts;
    atomic_int stop;
    atomic_int active; /* chains still running */
    atomic_uint_fast64_t ok, failed;
    pthread_mutex_t mu;
    struct hist hist;
    char err[256];
};

struct chain {
    struct dialers *d;
    uint64_t t0;
};

static void chain_end(struct dialers *d)
{
    atomic_fetch_sub(&d->active, 1);
}

static void on_dialed(struct clink_conn *conn, int status, const char *reason, void *user)
{
    struct chain *ch = user;
    struct dialers *d = ch->d;
    uint64_t t = now_ns();
    if (status == 0) {
        atomic_fetch_add(&d->ok, 1);
        pthread_mutex_lock(&d->mu);
        hist_add(&d->hist, t - ch->t0);
        pthread_mutex_unlock(&d->mu);
        clink_conn_close(conn);
    } else if (atomic_fetch_add(&d->failed, 1) == 0) {
        snprintf(d->err, sizeof(d->err), "%s", reason ? reason : clink_strerror(status));
    }
    if (atomic_load(&d->stop)) {
        chain_end(d);
        return;
    }
    ch->t0 = t;
    if (clink_connect(d->client, &d->opts, on_dialed, ch) < 0) {
        atomic_fetch_add(&d->failed, 1);
        chain_end(d);
    }
}

/* Dial for the warm-up, then for the measured time, with cfg->hs_inflight handshakes in flight. */
static void dial_for(struct cfg *cfg, struct dialers *d, struct result *res)
{
    unsigned n = cfg->hs_inflight;
    struct chain *chains = calloc(n, sizeof(*chains));
    if (chains == NULL) {
        snprintf(res->skipped, sizeof(res->skipped), "out of memory");
        return;
    }
    for (int phase = 0; phase < 2; phase++) {
        atomic_store(&d->stop, 0);
        atomic_store(&d->ok, 0);
        atomic_store(&d->failed, 0);
        memset(&d->hist, 0, sizeof(d->hist));
        double cpu0 = cpu_self_s();
        uint64_t t0 = now_ns();
        atomic_store(&d->active, (int)n);
        for (unsigned i = 0; i < n; i++) {
            chains[i] = (struct chain){.d = d, .t0 = now_ns()};
            if (clink_connect(d->client, &d->opts, on_dialed, &chains[i]) < 0) {
                atomic_fetch_add(&d->failed, 1);
                chain_end(d);
            }
        }
        usleep((phase == 0 ? cfg->warmup_ms : cfg->duration_ms) * 1000u);
        atomic_store(&d->stop, 1);
        while (atomic_load(&d->active) > 0) {
            usleep(1000);
        }
        if (phase == 1) {
            res->secs = (double)(now_ns() - t0) / 1e9;
            res->cpu_client_s = cpu_self_s() - cpu0; /* both ends: they live in this process */
            res->cpu_s = res->cpu_client_s;
            res->ok = atomic_load(&d->ok);
            res->failed = atomic_load(&d->failed);
            res->issued = res->ok + res->failed;
            res->ops = (double)res->ok / res->secs;
            res->p50 = hist_pct_us(&d->hist, 0.50);
            res->p99 = hist_pct_us(&d->hist, 0.99);
            res->p999 = hist_pct_us(&d->hist, 0.999);
            res->concurrency = n;
        }
    }
    free(chains);
    if (res->ok == 0) {
        snprintf(res->skipped, sizeof(res->skipped), "no dial succeeded: %s", d->err);
    }
}

static double per_cpu_s(const struct result *r)
{
    return r->cpu_s > 0 ? (double)r->ok / r->cpu_s : 0;
}

/* clink's handshakes per CPU-second over a bare loop's, 0 if either did not run. */
static double ratio(const struct result *clink, const struct result *bare)
{
    return clink->skipped[0] || bare->skipped[0] || per_cpu_s(bare) <= 0 ? 0 : per_cpu_s(clink) / per_cpu_s(bare);
}

/* One bare OpenSSL loop's line: over memory BIOs (sockets 0) or loopback sockets (1). */
static struct result bare_line(struct cfg *cfg, const struct bare_tls_files *files, const char *label,
                               const struct result *base, int resume, int sockets)
{
    struct bare_hs_result b = {0};
    progress(cfg, "handshake %s bare OpenSSL %s %s", label, sockets ? "sockets" : "memory",
             resume ? "resumed" : "full");
    int ret = sockets ? bare_tls_sock_handshakes(files, resume, cfg->duration_ms, &b)
                      : bare_tls_handshakes(files, resume, cfg->duration_ms, &b);
    struct result br = *base;
    br.mode = sockets ? (resume ? "sock-resumed" : "sock-full") : (resume ? "bare-resumed" : "bare-full");
    if (ret < 0) {
        snprintf(br.skipped, sizeof(br.skipped), "bare OpenSSL %s loop: %s", sockets ? "socket" : "memory", b.err);
        return br;
    }
    br.ok = b.ok;
    br.failed = b.failed;
    br.issued = b.ok + b.failed;
    br.secs = b.secs;
    br.ops = b.per_s;
    br.cpu_s = br.cpu_client_s = b.cpu_s;
    br.concurrency = 1;
    snprintf(br.note, sizeof(br.note), "%s: %s; %.0f us CPU per %s", label,
             sockets ? "one thread, loopback TCP, HELLO-sized round trip, close_notify both ways"
                     : "one thread, memory BIOs",
             b.cpu_us_per_hs, sockets ? "dial" : "handshake");
    return br;
}

static void one_keyset(struct cfg *cfg, struct keyset *k, const char *where, int *failures)
{
    char err[256];
    struct result base = {
        .scenario = "handshake", .key_type = k->label, .workers = 1, .connections = 1, .placement = where};
    if (make_certs(k, err, sizeof(err)) < 0) {
        struct result r = base;
        r.mode = "tls-full";
        snprintf(r.skipped, sizeof(r.skipped), "%s certificates: %s", k->label, err);
        *failures += report_line(cfg, &r, 0, NULL);
        remove_certs(k);
        return;
    }
    struct clink_node *leaf = start_node(k->srv, k->srv_key, k->ca, 1, err, sizeof(err));
    struct clink_node *agg = leaf ? start_node(k->cli, k->cli_key, k->ca, 0, err, sizeof(err)) : NULL;
    struct bare_tls_files files = {.ca = k->ca,
                                   .server_cert = k->srv,
                                   .server_key = k->srv_key,
                                   .client_cert = k->cli,
                                   .client_key = k->cli_key,
                                   .name = "localhost"};
    double plain_ops = 0;
    for (int mi = 0; mi < 3; mi++) {
        const char *mode = mi == 0 ? "plain" : mi == 1 ? "tls-full" : "tls-resumed";
        if ((mi == 0 && !cfg->modes_plain) || (mi > 0 && !cfg->modes_tls) ||
            (mi == 0 && k->type == CLINK_KEY_RSA_2048)) {
            continue; /* a plaintext dial has no key: measured once */
        }
        struct result r = base;
        r.mode = mode;
        if (agg == NULL) {
            snprintf(r.skipped, sizeof(r.skipped), "%s", err);
            *failures += report_line(cfg, &r, 0, NULL);
            continue;
        }
        progress(cfg, "handshake %s %s", k->label, mode);
        struct dialers *d = calloc(1, sizeof(*d));
        if (d == NULL) {
            continue;
        }
        d->client = agg;
        d->opts = (struct clink_connect_opts){.host = "127.0.0.1",
                                              .port = clink_node_port(leaf),
                                              .expected_name = "localhost",
                                              .mode = mi == 0 ? CLINK_MODE_PLAIN : CLINK_MODE_TLS,
                                              .no_resume = mi != 2};
        pthread_mutex_init(&d->mu, NULL);
        dial_for(cfg, d, &r);
        pthread_mutex_destroy(&d->mu);
        free(d);
        if (mi == 0) {
            plain_ops = r.ops;
            snprintf(r.note, sizeof(r.note), "TCP + HELLO; %.0f us CPU per dial (both ends)",
                     r.ok ? r.cpu_s / (double)r.ok * 1e6 : 0.0);
            *failures += report_line(cfg, &r, 0, NULL);
            continue;
        }
        /* The bare OpenSSL loops with the same files, same run: the references for handshakes per CPU-second. */
        struct result br = bare_line(cfg, &files, k->label, &base, mi == 2, 0);
        struct result bs = bare_line(cfg, &files, k->label, &base, mi == 2, 1);
        r.baseline_ratio = ratio(&r, &br);
        r.sock_ratio = ratio(&r, &bs);
        snprintf(r.note, sizeof(r.note), "%s; %.0f us CPU per dial (both ends)", k->label,
                 r.ok ? r.cpu_s / (double)r.ok * 1e6 : 0.0);
        *failures += report_line(cfg, &r, plain_ops > 0 ? r.ops / plain_ops : 0, plain_ops > 0 ? "plain dial" : NULL);
        *failures += report_line(cfg, &br, 0, NULL);
        *failures += report_line(cfg, &bs, 0, NULL);
        if (k->type != CLINK_KEY_RSA_2048 && !r.skipped[0]) {
            *(mi == 1 ? &cfg->sum.hs_full : &cfg->sum.hs_resumed) = r.ops;
            *(mi == 1 ? &cfg->sum.hs_bare_full : &cfg->sum.hs_bare_resumed) = r.baseline_ratio;
            *(mi == 1 ? &cfg->sum.hs_sock_full : &cfg->sum.hs_sock_resumed) = r.sock_ratio;
        }
    }
    if (agg) {
        CLINK_IGNORE(clink_node_shutdown(agg, 2000));
    }
    clink_node_free(agg);
    if (leaf) {
        CLINK_IGNORE(clink_node_shutdown(leaf, 2000));
    }
    clink_node_free(leaf);
    remove_certs(k);
}

int run_handshake_scenario(struct cfg *cfg, int *failures)
{
    struct keyset sets[2] = {{.label = "ECDSA P-256", .type = CLINK_KEY_EC_P256},
                             {.label = "RSA 2048", .type = CLINK_KEY_RSA_2048}};
    /*
     * Both ends on one CPU, like the bare loop: per CPU-second, like for
     * like. Spread over CPUs, OpenSSL 3.0's shared locks (its name map and
     * provider store take a read lock thousands of times per handshake)
     * bounce between cores and cost clink and any other threaded server about
     * a fifth more CPU per handshake; the README shows both.
     */
    char why[256];
    const char *where = "same";
    if (place(cfg, PLACE_SAME, why, sizeof(why)) < 0) {
        printf("  (placement same: %s; running unpinned)\n", why);
        CLINK_IGNORE(place(cfg, PLACE_ANY, why, sizeof(why)));
        where = "any";
    }
    for (int i = 0; i < 2; i++) {
        one_keyset(cfg, &sets[i], where, failures);
    }
    return 0;
}
