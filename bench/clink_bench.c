/*
 * clink-bench: TLS throughput, streams, RPC rate and latency (alone and
 * beside a stream on the same connection), handshake cost, restart storms
 * and idle-connection memory, in each transport mode (plaintext,
 * user-space TLS, kTLS where the host has it), against baselines measured in
 * the same run (one core's AEAD rate, an stunnel pair, a bare OpenSSL
 * handshake loop), so that the ratios survive a noisy host.
 *
 * It plays the caller: it dials every --target (leaves running clink-node,
 * or an aggregator), prints a table and the ratios, checks them against the
 * targets, and writes one JSON object per result line (--json FILE). The
 * scale scenario (scale.c) brings its own aggregator and leaves instead.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bench/bare_loop.h"
#include "bench/bench.h"
#include "clink/methods.h"

/* ---- ceiling: this core's AEAD rate, in process, the bound no user-space TLS can pass ---- */

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

static void run_ceiling(struct cfg *cfg)
{
    for (int ci = 0; ci < 2; ci++) {
        struct result r = {.scenario = "ceiling",
                           .mode = ci == 0 ? "aes128gcm" : "chacha20",
                           .msg = 16384,
                           .concurrency = 1,
                           .workers = 1};
        progress(cfg, "ceiling %s", r.mode);
        double cpu0 = cpu_self_s();
        r.bps = aead_rate(ci == 0 ? EVP_aes_128_gcm() : EVP_chacha20_poly1305(), 16384, cfg->duration_ms / 2);
        r.cpu_s = r.cpu_client_s = cpu_self_s() - cpu0;
        r.ops = r.bps / 16384;
        r.secs = cfg->duration_ms / 2 / 1e3;
        r.ok = r.issued = (uint64_t)(r.ops * r.secs);
        snprintf(r.cipher, sizeof(r.cipher), "%s", ci == 0 ? "AES-128-GCM" : "ChaCha20-Poly1305");
        snprintf(r.note, sizeof(r.note), "%s, one core, in process (OpenSSL EVP)", r.cipher);
        CLINK_IGNORE(report_line(cfg, &r, 0, NULL));
        if (ci == 0) {
            cfg->sum.ceiling_aes = r.bps;
        }
    }
}

/* ---- calls: one result line per mode, each compared with plaintext's ---- */

enum { M_PLAIN, M_TLS, M_KTLS, M_STUNNEL, M_COUNT };
static const char *const mode_names[M_COUNT] = {"plain", "tls", "ktls", "stunnel"};

static const char *ktls_why(void)
{
    return "this kernel offers no kTLS (no 'tls' in /proc/sys/net/ipv4/tcp_available_ulp)";
}

/* Where the kernel has no kTLS, say once per scenario why the ktls lines are missing, in the table and the JSON. */
static void ktls_skipped(struct cfg *cfg, const char *scenario)
{
    if (!cfg->modes_ktls || cfg->feat.ktls) {
        return;
    }
    struct result r = {.scenario = scenario, .mode = "ktls", .workers = cfg->workers};
    snprintf(r.skipped, sizeof(r.skipped), "%s", ktls_why());
    emit_json(cfg, &r);
    print_skipped(&r);
}

static int mode_wanted(const struct cfg *cfg, int m, int stunnel_ok)
{
    return (m == M_PLAIN && cfg->modes_plain) || (m == M_TLS && cfg->modes_tls) ||
           (m == M_KTLS && cfg->modes_ktls && cfg->feat.ktls) ||
           (m == M_STUNNEL && stunnel_ok && cfg->stunnel_port != 0 && cfg->modes_tls);
}

/*
 * The bare loop for a plain or tls line of rpc or throughput: same payload,
 * calls in flight and placement, one connection, no clink. Its own line,
 * printed before the clink line that is compared with it.
 */
static int bare_line(struct cfg *cfg, const struct call_spec *sp, enum placement pl, int tls, struct result *b)
{
    memset(b, 0, sizeof(*b));
    struct bare_tls_files f = {.ca = cfg->ca,
                               .server_cert = cfg->cert,
                               .server_key = cfg->key,
                               .client_cert = cfg->cert,
                               .client_key = cfg->key,
                               .name = cfg->name ? cfg->name : cfg->hosts[0]};
    int one_way = strcmp(sp->scenario, "throughput") == 0;
    struct bare_loop_spec bs = {.tls = tls,
                                .req = sp->msg,
                                .resp = one_way ? 0 : sp->msg,
                                .inflight = sp->callers,
                                .warmup_ms = cfg->warmup_ms,
                                .ms = cfg->duration_ms};
    progress(cfg, "%s bare-%s %zu B, %u callers, %s", sp->scenario, tls ? "tls" : "plain", sp->msg, sp->callers,
             placement_name(pl));
    CLINK_IGNORE(bare_loop_run(cfg, pl, &f, &bs, b));
    b->scenario = sp->scenario;
    b->mode = tls ? "bare-tls" : "bare-plain";
    b->placement = placement_name(pl);
    b->msg = sp->msg;
    b->concurrency = sp->callers;
    snprintf(b->note, sizeof(b->note), "bare loop: 1 connection, io_uring%s, no clink", tls ? " + OpenSSL" : "");
    return report_line(cfg, b, 0, NULL);
}

/*
 * Run spec in each wanted mode, print and record the lines. out[m] gets each
 * mode's result (zeroed when it did not run). Returns the failures.
 */
static int calls_modes(struct cfg *cfg, struct call_spec sp, enum placement pl, int stunnel_ok,
                       struct result out[M_COUNT])
{
    int failures = 0;
    memset(out, 0, sizeof(struct result) * M_COUNT);
    for (int m = 0; m < M_COUNT; m++) {
        if (!mode_wanted(cfg, m, stunnel_ok)) {
            continue;
        }
        struct result *r = &out[m];
        struct result bare = {0};
        int with_bare =
            (m == M_PLAIN || m == M_TLS) && (strcmp(sp.scenario, "rpc") == 0 || strcmp(sp.scenario, "throughput") == 0);
        if (with_bare) {
            failures += bare_line(cfg, &sp, pl, m == M_TLS, &bare);
        }
        sp.mode = m == M_PLAIN || m == M_STUNNEL ? CLINK_MODE_PLAIN : CLINK_MODE_TLS;
        /* tls: OpenSSL does the records at this end; ktls: the kernel must (a connection it cannot take fails). */
        sp.ktls = m == M_KTLS ? CLINK_KTLS_REQUIRED : CLINK_KTLS_DISABLED;
        sp.via_stunnel = m == M_STUNNEL;
        progress(cfg, "%s %s %zu B, %u conns, %u callers, %s", sp.scenario, mode_names[m], sp.msg,
                 sp.conns_per_target * (unsigned)sp.ntargets, sp.callers, placement_name(pl));
        int ret = run_calls(cfg, &sp, r);
        r->scenario = sp.scenario;
        r->mode = mode_names[m];
        r->placement = placement_name(pl);
        r->workers = cfg->workers;
        if (m == M_STUNNEL) {
            snprintf(r->cipher, sizeof(r->cipher), "(stunnel)");
            snprintf(r->note, sizeof(r->note), "plaintext clink through an stunnel pair to the first target");
        }
        if (ret < 0 && !r->skipped[0]) {
            snprintf(r->skipped, sizeof(r->skipped), "%s", clink_strerror(ret));
        }
        if (with_bare && !bare.skipped[0] && !r->skipped[0] && bare.ops > 0 && bare.cpu_s > 0 && r->cpu_s > 0) {
            r->bare_ratio = r->ops / bare.ops;
            r->bare_cpu_ratio = ((double)r->ok / r->cpu_s) / ((double)bare.ok / bare.cpu_s);
        }
        double plain = out[M_PLAIN].ops;
        failures += report_line(cfg, r, m != M_PLAIN && plain > 0 ? r->ops / plain : 0,
                                m != M_PLAIN && plain > 0 ? "plain" : NULL);
    }
    return failures;
}

/* Pin threads for a group of lines; on failure say why and run unpinned. Returns the placement used. */
static enum placement use_placement(struct cfg *cfg, enum placement want)
{
    char why[256];
    if (place(cfg, want, why, sizeof(why)) == 0) {
        return want;
    }
    printf("  (placement %s: %s; running unpinned)\n", placement_name(want), why);
    CLINK_IGNORE(place(cfg, PLACE_ANY, why, sizeof(why)));
    return PLACE_ANY;
}

/* throughput: one connection, then every target's --connections, streaming one way. */
static int run_throughput(struct cfg *cfg)
{
    int failures = 0;
    enum placement pl = use_placement(cfg, cfg->ncpus > 1 ? PLACE_SPLIT : PLACE_ANY);
    unsigned all = cfg->connections * (unsigned)cfg->ntargets;
    for (int ci = 0; ci < 2; ci++) {
        if (ci == 1 && all == 1) {
            break;
        }
        for (int zi = 0; zi < cfg->nsizes; zi++) {
            /*
             * A stream keeps a window of bytes in flight, not a number of
             * messages: 64 messages of 1 MiB would be 64 MiB queued, and what
             * no cache holds costs more than it gains (4 MiB in flight ran
             * 25% slower than 1 MiB here). At least two per connection: the
             * next message is queued while one is on the wire.
             */
            unsigned nconn = ci == 0 ? 1 : cfg->connections * (unsigned)cfg->ntargets;
            size_t per = cfg->window * nconn / cfg->sizes[zi];
            struct call_spec sp = {.scenario = "throughput",
                                   .conns_per_target = ci == 0 ? 1 : cfg->connections,
                                   .ntargets = ci == 0 ? 1 : cfg->ntargets,
                                   .callers = per < 2 * nconn          ? 2 * nconn
                                              : per > cfg->concurrency ? cfg->concurrency
                                                                       : (unsigned)per,
                                   .msg = cfg->sizes[zi]};
            struct result out[M_COUNT];
            failures += calls_modes(cfg, sp, pl, 1, out);
            /* The closing ratios: one connection, 64 KiB if measured, else the largest size. */
            size_t z = cfg->sizes[zi];
            struct summary *s = &cfg->sum;
            for (int m = 0; ci == 0 && m < M_COUNT; m++) { /* for the stream lines' ratios */
                s->thr1[m][zi] = out[m].bps;
                if (m <= M_TLS && out[m].bare_ratio > 0 && out[m].bare_cpu_ratio > 0 && out[m].cpu_s > 0) {
                    s->thr1_bare[m][zi] = out[m].bps / out[m].bare_ratio;
                    s->thr1_bare_cpu[m][zi] = out[m].bps * out[m].secs / out[m].cpu_s / out[m].bare_cpu_ratio;
                }
            }
            if (ci == 0 && (s->thr_size != 65536 && (z == 65536 || z > s->thr_size))) {
                s->thr_size = z;
                s->thr_plain = out[M_PLAIN].bps;
                s->thr_tls = out[M_TLS].bps;
                s->thr_stunnel = out[M_STUNNEL].bps;
                s->thr_ktls = out[M_KTLS].bps;
                s->thr_bare = out[M_TLS].bare_ratio;
                double gb = out[M_TLS].bps * out[M_TLS].secs / 1e9;
                s->thr_gb_cpu_client = gb > 0 ? out[M_TLS].cpu_client_s / gb : 0;
                s->thr_gb_cpu_server = gb > 0 ? out[M_TLS].cpu_server_s / gb : 0;
            }
        }
    }
    ktls_skipped(cfg, "throughput");
    return failures;
}

/*
 * stream: one server-streaming call per mode (streams.c), compared with the
 * throughput line of its message size from this run (1 connection, same
 * mode; the bytes flow the other way there: this process sends) and with that
 * line's bare loop. Plaintext runs again from the second target when there is
 * one: the main job starts leaf2 with zerocopy_send = on, so the two plain
 * lines compare the leaf's gathering sends with its zero-copy ones.
 */
static int stream_line(struct cfg *cfg, int m, int target, enum placement pl, int zi)
{
    struct summary *s = &cfg->sum;
    struct result r = {0};
    char path[32] = "?";
    progress(cfg, "stream %s from target %d, %llu MiB in %zu B messages", mode_names[m], target + 1,
             (unsigned long long)(cfg->stream_bytes >> 20), cfg->stream_msg);
    int ret = run_stream(cfg, m == M_PLAIN ? CLINK_MODE_PLAIN : CLINK_MODE_TLS,
                         m == M_KTLS ? CLINK_KTLS_REQUIRED : CLINK_KTLS_DISABLED, target, &r, path, sizeof(path));
    r.scenario = "stream";
    r.mode = m == M_PLAIN && strcmp(path, "zerocopy") == 0 ? "plain-zc" : mode_names[m];
    r.placement = placement_name(pl);
    r.workers = cfg->workers;
    if (ret < 0 && !r.skipped[0]) {
        snprintf(r.skipped, sizeof(r.skipped), "%s", clink_strerror(ret));
    }
    double thr = zi >= 0 ? s->thr1[m][zi] : 0, gb = r.bps * r.secs / 1e9;
    if (zi >= 0 && m <= M_TLS && s->thr1_bare[m][zi] > 0 && r.cpu_s > 0) {
        r.bare_ratio = r.bps / s->thr1_bare[m][zi];
        r.bare_cpu_ratio = r.bps * r.secs / r.cpu_s / s->thr1_bare_cpu[m][zi];
    }
    if (!r.note[0] && gb > 0) {
        char leaf[48] = "";
        if (r.peak_kib_server >= 0) {
            snprintf(leaf, sizeof(leaf), ", leaf +%.1f", r.peak_kib_server / 1024);
        }
        snprintf(r.note, sizeof(r.note),
                 "%llu MiB; leaf %d sends by %.8s; CPU-s/GB here %.2f, leaf %.2f; RSS peak MiB: here +%.1f%.24s",
                 (unsigned long long)(cfg->stream_bytes >> 20), target + 1, path, r.cpu_client_s / gb,
                 r.cpu_server_s / gb, r.peak_kib_client / 1024, leaf);
    }
    int failures = report_line(cfg, &r, thr > 0 && r.bps > 0 ? r.bps / thr : 0, "throughput");
    if (m == M_TLS && !r.skipped[0] && gb > 0) {
        s->stream_tls = r.bps;
        s->stream_vs_thr = thr > 0 ? r.bps / thr : 0;
        s->stream_gb_cpu_client = r.cpu_client_s / gb;
        s->stream_gb_cpu_server = r.cpu_server_s / gb;
    }
    if (m == M_PLAIN && !r.skipped[0] && gb > 0) {
        *(strcmp(path, "zerocopy") == 0 ? &s->stream_plain_zc : &s->stream_plain_gather) = r.bps;
    }
    return failures;
}

static int run_stream_lines(struct cfg *cfg)
{
    int failures = 0;
    enum placement pl = use_placement(cfg, cfg->ncpus > 1 ? PLACE_SPLIT : PLACE_ANY);
    int zi = -1;
    for (int i = 0; cfg->scen_throughput && i < cfg->nsizes; i++) {
        zi = cfg->sizes[i] == cfg->stream_msg ? i : zi;
    }
    for (int m = M_PLAIN; m <= M_KTLS; m++) {
        if (!mode_wanted(cfg, m, 0)) {
            continue;
        }
        failures += stream_line(cfg, m, 0, pl, zi);
        if (m == M_PLAIN && cfg->ntargets > 1) {
            failures += stream_line(cfg, m, 1, pl, zi);
        }
    }
    ktls_skipped(cfg, "stream");
    return failures;
}

/* A sysctl's value as text ("?" if unreadable), tabs as spaces. */
static void sysctl_text(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    snprintf(out, cap, "?");
    if (f != NULL && fgets(out, (int)cap, f) != NULL) {
        out[strcspn(out, "\n")] = '\0';
        for (char *p = out; *p; p++) {
            *p = *p == '\t' ? ' ' : *p;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
}

/* mixed: small calls against a stream on their connection (streams.c), after what the sockets are set to. */
static int run_mixed_lines(struct cfg *cfg)
{
    int failures = 0;
    enum placement pl = use_placement(cfg, cfg->ncpus > 1 ? PLACE_SPLIT : PLACE_ANY);
    char lowat[32], wmem[64], rmem[64];
    sysctl_text("/proc/sys/net/ipv4/tcp_notsent_lowat", lowat, sizeof(lowat));
    sysctl_text("/proc/sys/net/ipv4/tcp_wmem", wmem, sizeof(wmem));
    sysctl_text("/proc/sys/net/ipv4/tcp_rmem", rmem, sizeof(rmem));
    printf("  (mixed: 1 connection, 1 worker per end for it, echo 64 B with 1 and 16 in flight, stream of %zu B "
           "messages;\n   windows this end grants: connection %u KiB, stream %u KiB%s; TCP_NOTSENT_LOWAT not set "
           "(clink has no option for it): net.ipv4.tcp_notsent_lowat %s%s, tcp_wmem %s, tcp_rmem %s)\n",
           cfg->stream_msg, CLINK_DEFAULT_CONN_WINDOW >> 10,
           (cfg->stream_window ? cfg->stream_window : CLINK_DEFAULT_STREAM_WINDOW) >> 10,
           cfg->stream_window ? " (--stream-window)" : " (the defaults)", lowat,
           strcmp(lowat, "4294967295") == 0 ? " (no limit)" : "", wmem, rmem);
    CLINK_IGNORE(run_mixed(cfg, pl, &failures));
    return failures;
}

/* The 64 B, 64 callers tls line's clink / bare loop, kept for the targets by placement. */
static void bare_ratio_at(struct cfg *cfg, enum placement pl, double ratio)
{
    if (pl == PLACE_SAME) {
        cfg->sum.rpc64_bare_same = ratio;
    } else if (pl == PLACE_SPLIT) {
        cfg->sum.rpc64_bare_split = ratio;
    }
}

/*
 * rpc 64 B, 64 callers, tls in the bare loop's own layout: one leaf, one
 * connection (through a pool of one), against a bare loop line run just
 * before it. The target is taken here: the other rpc lines spread their
 * calls over every leaf and several connections, so on two CPUs their
 * processes take turns that the bare loop's two never do.
 */
static int rpc_bare_layout(struct cfg *cfg, enum placement pl)
{
    struct call_spec sp = {
        .scenario = "rpc", .pooled = 1, .conns_per_target = 1, .ntargets = 1, .callers = 64, .msg = 64};
    struct result bare, r = {0};
    int failures = bare_line(cfg, &sp, pl, 1, &bare);
    sp.mode = CLINK_MODE_TLS;
    sp.ktls = CLINK_KTLS_DISABLED;
    progress(cfg, "rpc tls 64 B, 1 conn to 1 leaf, 64 callers, %s", placement_name(pl));
    int ret = run_calls(cfg, &sp, &r);
    r.scenario = "rpc";
    r.mode = "tls";
    r.placement = placement_name(pl);
    r.workers = cfg->workers;
    snprintf(r.note, sizeof(r.note), "the bare loop's layout: 1 leaf, 1 connection (the target's line)");
    if (ret < 0 && !r.skipped[0]) {
        snprintf(r.skipped, sizeof(r.skipped), "%s", clink_strerror(ret));
    }
    if (!bare.skipped[0] && !r.skipped[0] && bare.ops > 0 && bare.cpu_s > 0 && r.cpu_s > 0) {
        r.bare_ratio = r.ops / bare.ops;
        r.bare_cpu_ratio = ((double)r.ok / r.cpu_s) / ((double)bare.ok / bare.cpu_s);
        bare_ratio_at(cfg, pl, r.bare_ratio);
    }
    return failures + report_line(cfg, &r, 0, NULL);
}

/* rpc: echo through pools. Sizes at --concurrency callers; then 64 B with 1..256 callers per placement. */
static int run_rpc(struct cfg *cfg)
{
    int failures = 0;
    enum placement pl = use_placement(cfg, cfg->places[0]);
    for (int zi = 0; zi < cfg->nrpc_sizes; zi++) {
        struct call_spec sp = {.scenario = "rpc",
                               .pooled = 1,
                               .conns_per_target = cfg->connections,
                               .ntargets = cfg->ntargets,
                               .callers = cfg->concurrency,
                               .msg = cfg->rpc_sizes[zi]};
        struct result out[M_COUNT];
        failures += calls_modes(cfg, sp, pl, 0, out);
        if (sp.msg == 64 && sp.callers == 64) {
            cfg->sum.rpc64_plain = out[M_PLAIN].ops;
            cfg->sum.rpc64_tls = out[M_TLS].ops;
        }
    }
    for (int pi = 0; pi < cfg->nplaces; pi++) {
        pl = use_placement(cfg, cfg->places[pi]);
        for (int k = 0; k < cfg->ncallers; k++) {
            struct call_spec sp = {.scenario = "rpc",
                                   .pooled = 1,
                                   .conns_per_target = cfg->connections,
                                   .ntargets = cfg->ntargets,
                                   .callers = (unsigned)cfg->callers[k],
                                   .msg = 64};
            if (sp.callers == cfg->concurrency && pi == 0 && cfg->rpc_sizes[0] == 64) {
                continue; /* measured above */
            }
            struct result out[M_COUNT];
            failures += calls_modes(cfg, sp, pl, 0, out);
            if (pi == 0 && sp.callers == 1) {
                cfg->sum.rpc1_plain = out[M_PLAIN].p50;
                cfg->sum.rpc1_tls = out[M_TLS].p50;
                cfg->sum.rpc_place = placement_name(pl);
            }
            if (pi == 0 && sp.callers == 64) {
                cfg->sum.rpc64_plain = out[M_PLAIN].ops;
                cfg->sum.rpc64_tls = out[M_TLS].ops;
            }
        }
        if (mode_wanted(cfg, M_TLS, 0)) {
            failures += rpc_bare_layout(cfg, pl);
        }
    }
    ktls_skipped(cfg, "rpc");
    return failures;
}

/* pool: 64-byte calls over the same number of connections, direct vs through a pool, back to back. */
static int run_pool_overhead(struct cfg *cfg)
{
    int failures = 0;
    enum placement pl = use_placement(cfg, cfg->places[0]);
    struct result rs[2];
    for (int i = 0; i < 2; i++) {
        struct call_spec sp = {.scenario = "pool",
                               .mode = CLINK_MODE_TLS,
                               .pooled = i == 1,
                               .conns_per_target = cfg->connections,
                               .ntargets = cfg->ntargets,
                               .callers = cfg->concurrency,
                               .msg = 64};
        struct result *r = &rs[i];
        memset(r, 0, sizeof(*r));
        progress(cfg, "pool %s", i == 0 ? "direct" : "pooled");
        int ret = run_calls(cfg, &sp, r);
        r->scenario = "pool";
        r->mode = i == 0 ? "direct" : "pooled";
        r->placement = placement_name(pl);
        r->workers = cfg->workers;
        if (ret < 0 && !r->skipped[0]) {
            snprintf(r->skipped, sizeof(r->skipped), "%s", clink_strerror(ret));
        }
        snprintf(r->note, sizeof(r->note), "%s", i == 0 ? "fixed connections" : "pick + bookkeeping per call");
        failures += report_line(cfg, r, i == 1 && rs[0].ops > 0 ? r->ops / rs[0].ops : 0, i == 1 ? "direct" : NULL);
        if (!r->skipped[0]) {
            *(i == 0 ? &cfg->sum.pool_direct : &cfg->sum.pool_pooled) = r->ops;
        }
    }
    return failures;
}

/* fanout: calls to the aggregator, which asks every leaf and answers when all have: a query's path. */
static int run_fanout(struct cfg *cfg)
{
    int failures = 0;
    enum placement pl = use_placement(cfg, cfg->places[0]);
    size_t sizes[2] = {64, 16384};
    unsigned callers[2] = {1, cfg->concurrency};
    for (int zi = 0; zi < 2; zi++) {
        for (int ci = 0; ci < 2; ci++) {
            struct call_spec sp = {.scenario = "fanout",
                                   .mode = CLINK_MODE_TLS,
                                   .via_aggregator = 1,
                                   .conns_per_target = cfg->connections,
                                   .ntargets = 1,
                                   .callers = callers[ci],
                                   .msg = sizes[zi]};
            struct result r = {0};
            progress(cfg, "fanout %zu B, %u callers", sp.msg, sp.callers);
            int ret = run_calls(cfg, &sp, &r);
            r.scenario = "fanout";
            r.mode = "tls";
            r.placement = placement_name(pl);
            r.workers = cfg->workers;
            if (ret < 0 && !r.skipped[0]) {
                snprintf(r.skipped, sizeof(r.skipped), "%s", clink_strerror(ret));
            }
            snprintf(r.note, sizeof(r.note), "bench -> aggregator -> every leaf (echo) -> answer");
            failures += report_line(cfg, &r, 0, NULL);
        }
    }
    return failures;
}

static int run_storm_line(struct cfg *cfg)
{
    CLINK_IGNORE(use_placement(cfg, PLACE_ANY));
    progress(cfg, "restart storm, %u connections", cfg->storm_conns);
    struct result r = {.scenario = "storm", .mode = "tls", .workers = cfg->workers, .placement = "any"};
    CLINK_IGNORE(run_storm(cfg, &r));
    return report_line(cfg, &r, 0, NULL);
}

static int run_memory_lines(struct cfg *cfg)
{
    int failures = 0;
    CLINK_IGNORE(use_placement(cfg, PLACE_ANY));
    /* The biggest first: memory a mode freed must not hide the next one's cost. */
    static const int order[] = {M_TLS, M_KTLS, M_PLAIN};
    for (int k = 0; k < 3; k++) {
        int m = order[k];
        if (!mode_wanted(cfg, m, 0)) {
            continue;
        }
        struct result r = {.scenario = "memory", .mode = mode_names[m], .workers = cfg->workers, .placement = "any"};
        CLINK_IGNORE(run_memory(cfg, m == M_PLAIN ? CLINK_MODE_PLAIN : CLINK_MODE_TLS,
                                m == M_KTLS ? CLINK_KTLS_REQUIRED : CLINK_KTLS_DISABLED, &r));
        failures += report_line(cfg, &r, 0, NULL);
        if (r.skipped[0]) {
            continue;
        }
        if (m == M_TLS) {
            cfg->sum.mem_client = r.kib_client;
            cfg->sum.mem_server = r.kib_server;
            cfg->sum.mem_conns = r.connections;
        } else if (m == M_KTLS) {
            cfg->sum.mem_ktls_client = r.kib_client;
            cfg->sum.mem_ktls_server = r.kib_server;
        }
    }
    ktls_skipped(cfg, "memory");
    return failures;
}

/* ---- the closing summary: ratios, then the targets they are held to ---- */

static void target_line(const char *what, double got, double want, int at_least, const char *unit)
{
    if (got <= 0) {
        printf("  %-52s %10s  not measured\n", what, "-");
        return;
    }
    int met = at_least ? got >= want : got <= want;
    printf("  %-52s %9.3f%s  %s (target %s %.2f%s)\n", what, got, unit, met ? "met   " : "MISSED",
           at_least ? ">=" : "<=", want, unit);
}

static void summary(const struct cfg *cfg)
{
    const struct summary *s = &cfg->sum;
    printf("\nratios (this run):\n");
    if (s->thr_plain > 0 && s->thr_tls > 0) {
        printf("  tls/plain          %.2fx  throughput, 1 connection, %zu B messages\n", s->thr_tls / s->thr_plain,
               s->thr_size);
    }
    if (s->thr_ktls > 0 && s->thr_tls > 0) {
        printf("  ktls/tls           %.2fx  throughput, 1 connection, %zu B messages\n", s->thr_ktls / s->thr_tls,
               s->thr_size);
    } else if (!cfg->feat.ktls) {
        printf("  ktls/tls           -      %s\n", ktls_why());
    }
    if (s->thr_tls > 0 && s->ceiling_aes > 0) {
        printf("  tls/ceiling        %.2fx  vs one core's AES-128-GCM rate\n", s->thr_tls / s->ceiling_aes);
    }
    if (s->thr_tls > 0 && s->thr_stunnel > 0) {
        printf("  clink tls/stunnel  %.2fx  throughput, 1 connection, %zu B messages\n", s->thr_tls / s->thr_stunnel,
               s->thr_size);
    }
    if (s->hs_full > 0 && s->hs_resumed > 0) {
        printf("  resumed/full       %.2fx  handshakes per second (ECDSA P-256)\n", s->hs_resumed / s->hs_full);
    }
    if (s->hs_bare_resumed > 0) {
        printf("  resumed/memory     %.2fx  per CPU-s, clink vs bare OpenSSL over memory BIOs (ECDSA P-256)\n",
               s->hs_bare_resumed);
    }
    if (s->hs_sock_full > 0) {
        printf("  full/sockets       %.2fx  per CPU-s, clink vs bare OpenSSL over loopback sockets (ECDSA P-256)\n",
               s->hs_sock_full);
    }
    if (s->pool_direct > 0 && s->pool_pooled > 0) {
        printf("  pooled/direct      %.2fx  64 B calls\n", s->pool_pooled / s->pool_direct);
    }
    if (s->stream_vs_thr > 0) {
        printf("  stream/throughput  %.2fx  tls, 1 connection, %zu B messages (one stream vs calls)\n",
               s->stream_vs_thr, cfg->stream_msg);
    }
    if (s->stream_tls > 0) {
        printf("  stream tls         %.1f MB/s; CPU-s per GB: %.2f receiving (this process), %.2f sending (the leaf)\n",
               s->stream_tls / 1e6, s->stream_gb_cpu_client, s->stream_gb_cpu_server);
    }
    if (s->stream_plain_gather > 0 && s->stream_plain_zc > 0) {
        printf("  zerocopy/gather    %.2fx  stream plain: the leaf's zero-copy sends vs its gathering ones (loopback: "
               "the kernel copies at delivery anyway)\n",
               s->stream_plain_zc / s->stream_plain_gather);
    }
    for (int k = 0; k < 2; k++) {
        if (s->mixed_paced_ratio[k] > 0) {
            printf("  mixed paced/idle   %.2fx  p99 of 64 B calls, %d in flight, under the stream at half rate\n",
                   s->mixed_paced_ratio[k], k == 0 ? 1 : 16);
        }
    }
    printf("\ntargets (set for the 2-core development machine; ratios from this run):\n");
    target_line("throughput 1 conn, tls / stunnel", s->thr_stunnel > 0 ? s->thr_tls / s->thr_stunnel : 0, 5, 1, "x");
    target_line("throughput 1 conn, tls / plain", s->thr_plain > 0 ? s->thr_tls / s->thr_plain : 0, 0.3, 1, "x");
    target_line("throughput tls, CPU-s per GB, sender (this process)", s->thr_gb_cpu_client, 0.5, 0, "");
    target_line("throughput tls, CPU-s per GB, receiver (the leaves)", s->thr_gb_cpu_server, 0.5, 0, "");
    target_line("rpc 64 B, 1 caller: tls p50 / plain p50", s->rpc1_plain > 0 ? s->rpc1_tls / s->rpc1_plain : 0, 1.35, 0,
                "x");
    target_line("rpc 64 B, 64 callers: tls / plain calls per s", s->rpc64_plain > 0 ? s->rpc64_tls / s->rpc64_plain : 0,
                0.65, 1, "x");
    target_line("throughput 1 conn 64 KiB, tls: clink / bare loop", s->thr_size == 65536 ? s->thr_bare : 0, 0.9, 1,
                "x");
    target_line("rpc 64 B, 64 callers, tls, same, 1 conn: clink / bare", s->rpc64_bare_same, 0.8, 1, "x");
    target_line("rpc 64 B, 64 callers, tls, split, 1 conn: clink / bare", s->rpc64_bare_split, 0.8, 1, "x");
    target_line("stream tls / throughput tls, 1 conn, same size", s->stream_vs_thr, 0.9, 1, "x");
    target_line("mixed 64 B, 1 in flight: p99 under a stream / idle", s->mixed_p99_ratio[0], 3, 0, "x");
    target_line("mixed 64 B, 16 in flight: p99 under a stream / idle", s->mixed_p99_ratio[1], 3, 0, "x");
    target_line("handshake full: clink / bare OpenSSL per CPU-s", s->hs_bare_full, 0.8, 1, "x");
    target_line("handshake resumed: clink / bare OpenSSL sockets per CPU-s", s->hs_sock_resumed, 0.8, 1, "x");
    target_line("handshake resumed / full per s", s->hs_full > 0 ? s->hs_resumed / s->hs_full : 0, 1.8, 1, "x");
    target_line("idle tls connection, KiB RSS, this end", s->mem_client, 40, 0, "");
    target_line("idle tls connection, KiB RSS, leaf end", s->mem_server, 40, 0, "");
    if (cfg->feat.ktls) {
        target_line("idle ktls connection, KiB RSS, this end", s->mem_ktls_client, 8, 0, "");
        target_line("idle ktls connection, KiB RSS, leaf end", s->mem_ktls_server, 8, 0, "");
    }
    if (s->rpc_place) {
        printf("  (rpc targets at placement '%s'; memory with %u connections)\n", s->rpc_place, s->mem_conns);
    }
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f, "Usage: clink-bench --target HOST:PORT [--target ...] --cert FILE --key FILE --ca FILE [options]\n"
               "\n"
               "Measure TLS throughput, streams, RPC rate and latency (alone and beside a stream),\n"
               "handshake cost, restart storms and idle-connection memory against clink nodes\n"
               "(clink-node; stream and mixed call the first target's produce method), in each transport mode,\n"
               "with baselines measured in the same run, and check the ratios against targets.\n"
               "The scale scenario starts its own aggregator and leaves (it dials no --target).\n"
               "\n"
               "Targets and identity:\n"
               "  --target HOST:PORT     a node to call (repeat for several leaves)\n"
               "  --name NAME            name the nodes' certificates carry (default: the host)\n"
               "  --cert/--key/--ca FILE this client's certificate, key and trusted CAs\n"
               "  --user NAME            account to log in as (nodes with accounts; by certificate)\n"
               "  --plain-user NAME      account for the plaintext baseline (default: --user)\n"
               "  --measure-pid PID      count this process's CPU as the server side's and pin it with\n"
               "                         --placement (repeat; the first must be the first target's)\n"
               "  --stunnel HOST:PORT    an stunnel client whose server side leads to the first target's\n"
               "                         plaintext port: throughput adds mode 'stunnel'\n"
               "  --aggregator HOST:PORT a clink-node aggregator of the targets: the fanout scenario calls\n"
               "                         its fan-out method (every leaf answers each call)\n"
               "What to run:\n"
               "  --modes LIST           plain,tls,ktls (default: all; a mode that cannot run says why)\n"
               "  --scenarios LIST       ceiling,throughput,stream,rpc,pool,fanout,mixed,handshake,storm,\n"
               "                         memory,scale (default: all; fanout needs --aggregator; mixed runs tls)\n"
               "  --sizes LIST           throughput message sizes (default: 64,1024,16384,65536,262144,1048576)\n"
               "  --rpc-sizes LIST       rpc message sizes (default: 64,1024,16384,65536)\n"
               "  --callers LIST         rpc callers (calls in flight) for 64 B (default: 1,4,16,64,256)\n"
               "  --placement LIST       rpc thread placement: split (client and server on different CPUs),\n"
               "                         same (one CPU), any (default: split,same)\n"
               "  --concurrency N        calls in flight for rpc sizes and pool, at most for throughput (default 64)\n"
               "  --window BYTES         throughput: bytes in flight per connection (default 1048576):\n"
               "                         window / size messages, from 2 per connection to --concurrency\n"
               "  --stream-bytes N       stream: bytes per line (suffix k, m, g; default 1g, --quick 128m)\n"
               "  --stream-msg N         stream and mixed: the stream's message size (default 64k)\n"
               "  --stream-window N      the credit this end grants each stream (its node's stream_window;\n"
               "                         default clink's, 4m): what may queue ahead of a call in mixed\n"
               "  --connections N        connections per target (default 2)\n"
               "  --workers N            client worker threads (default 2)\n"
               "  --handshakes N         handshakes in flight at once in the handshake scenario (default 4)\n"
               "  --storm-conns N        pooled connections in the restart storm (default 256)\n"
               "  --scale-leaves LIST    scale: leaves one aggregator fans out to, in a process of their own\n"
               "                         (default 1,4,16,64; at most 128 each)\n"
               "  --idle-conns N         idle connections in the memory scenario (default 5000)\n"
               "  --duration-ms N        measured time per result line (default 2000)\n"
               "  --warmup-ms N          unmeasured time before each (default 300)\n"
               "  --quick                under a minute: fewer sizes and callers, 500 ms lines,\n"
               "                         64 storm and 1000 idle connections, 128 MiB streams\n"
               "Output:\n"
               "  --json FILE            append one JSON object per result line\n"
               "  -h, --help             this text\n"
               "\n"
               "Exit status: 0 if every line ran and no call failed (missed targets are reported,\n"
               "not failures), 1 otherwise, 2 for bad usage.\n");
}

/* Split a comma list of names; each must be known. Returns a bit per name, or -1. */
static int parse_names(const char *s, const char *const *names, int n)
{
    int bits = 0;
    char *copy = strdup(s), *save = NULL;
    if (copy == NULL) {
        return -1;
    }
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < n && strcmp(t, names[i]) != 0) {
            i++;
        }
        if (i == n) {
            free(copy);
            return -1;
        }
        bits |= 1 << i;
    }
    free(copy);
    return bits;
}

static int parse_count(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end != '\0' || end == s || v < lo || v > hi) {
        fprintf(stderr, "clink-bench: --%s: expected a number from %u to %u, got '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static const char *const scen_names[] = {"ceiling", "throughput", "rpc",   "pool",   "handshake", "storm",
                                         "memory",  "fanout",     "scale", "stream", "mixed"};
static const char *const place_names[] = {"any", "split", "same"};

/* A byte count: digits, then optionally k, m or g (KiB, MiB, GiB). */
static int parse_bytes(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = *end == 'k' ? 10 : *end == 'm' ? 20 : *end == 'g' ? 30 : 0;
    if (shift > 0) {
        end++;
    }
    if (errno || *end != '\0' || end == s || s[0] == '-' || v > (hi >> shift) || (v << shift) < lo) {
        fprintf(stderr, "clink-bench: --%s: expected bytes from %llu to %llu (suffix k, m or g allowed), got '%s'\n",
                opt, (unsigned long long)lo, (unsigned long long)hi, s);
        return -1;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_args(int argc, char **argv, struct cfg *cfg)
{
    static const struct option lo[] = {
        {"target", required_argument, NULL, 'T'},
        {"name", required_argument, NULL, 'n'},
        {"user", required_argument, NULL, 'u'},
        {"plain-user", required_argument, NULL, 'U'},
        {"storm-conns", required_argument, NULL, 'S'},
        {"idle-conns", required_argument, NULL, 'I'},
        {"stunnel", required_argument, NULL, 'X'},
        {"aggregator", required_argument, NULL, 'A'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"modes", required_argument, NULL, 'm'},
        {"scenarios", required_argument, NULL, 's'},
        {"sizes", required_argument, NULL, 'z'},
        {"rpc-sizes", required_argument, NULL, 'r'},
        {"callers", required_argument, NULL, 'L'},
        {"scale-leaves", required_argument, NULL, 'l'},
        {"placement", required_argument, NULL, 'P'},
        {"concurrency", required_argument, NULL, 'C'},
        {"connections", required_argument, NULL, 'N'},
        {"workers", required_argument, NULL, 'w'},
        {"handshakes", required_argument, NULL, 'H'},
        {"duration-ms", required_argument, NULL, 'd'},
        {"warmup-ms", required_argument, NULL, 'W'},
        {"window", required_argument, NULL, 'B'},
        {"stream-bytes", required_argument, NULL, 'Y'},
        {"stream-msg", required_argument, NULL, 'G'},
        {"stream-window", required_argument, NULL, 'V'},
        {"quick", no_argument, NULL, 'q'},
        {"json", required_argument, NULL, 'j'},
        {"measure-pid", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch, quick = 0, set_stream = 0, set_sizes = 0, set_rpc = 0, set_callers = 0, set_storm = 0, set_idle = 0,
            set_dur = 0, set_warm = 0, bits;
    unsigned v;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'T':
            if (cfg->ntargets == MAX_TARGETS ||
                clink_tool_hostport(optarg, cfg->hosts[cfg->ntargets], sizeof(cfg->hosts[0]),
                                    &cfg->ports[cfg->ntargets]) < 0) {
                fprintf(stderr, "clink-bench: --target: expected HOST:PORT, got '%s'\n", optarg);
                return -1;
            }
            cfg->ntargets++;
            break;
        case 'n':
            cfg->name = optarg;
            break;
        case 'u':
            cfg->user = optarg;
            break;
        case 'U':
            cfg->plain_user = optarg;
            break;
        case 'c':
            cfg->cert = optarg;
            break;
        case 'k':
            cfg->key = optarg;
            break;
        case 'a':
            cfg->ca = optarg;
            break;
        case 'm':
            if ((bits = parse_names(optarg, mode_names, 3)) <= 0) {
                fprintf(stderr, "clink-bench: --modes: expected a list of plain, tls, ktls\n");
                return -1;
            }
            cfg->modes_plain = (bits & 1) != 0;
            cfg->modes_tls = (bits & 2) != 0;
            cfg->modes_ktls = (bits & 4) != 0;
            break;
        case 's':
            if ((bits = parse_names(optarg, scen_names, 11)) <= 0) {
                fprintf(stderr, "clink-bench: --scenarios: expected a list of ceiling, throughput, rpc, pool, "
                                "handshake, storm, memory, fanout, scale, stream, mixed\n");
                return -1;
            }
            cfg->scen_ceiling = (bits & 1) != 0;
            cfg->scen_throughput = (bits & 2) != 0;
            cfg->scen_rpc = (bits & 4) != 0;
            cfg->scen_pool = (bits & 8) != 0;
            cfg->scen_handshake = (bits & 16) != 0;
            cfg->scen_storm = (bits & 32) != 0;
            cfg->scen_memory = (bits & 64) != 0;
            cfg->scen_fanout = (bits & 128) != 0;
            cfg->scen_scale = (bits & 256) != 0;
            cfg->scen_stream = (bits & 512) != 0;
            cfg->scen_mixed = (bits & 1024) != 0;
            break;
        case 'P': {
            char *copy = strdup(optarg), *save = NULL;
            cfg->nplaces = 0;
            for (char *t = strtok_r(copy, ",", &save); t && cfg->nplaces < 3; t = strtok_r(NULL, ",", &save)) {
                int b = parse_names(t, place_names, 3);
                if (b <= 0) {
                    cfg->nplaces = 0;
                    break;
                }
                cfg->places[cfg->nplaces++] = (enum placement)__builtin_ctz((unsigned)b);
            }
            free(copy);
            if (cfg->nplaces == 0) {
                fprintf(stderr, "clink-bench: --placement: expected a list of split, same, any\n");
                return -1;
            }
            break;
        }
        case 'X':
        case 'A': {
            int agg = ch == 'A';
            if (clink_tool_hostport(optarg, agg ? cfg->agg_host : cfg->stunnel_host, sizeof(cfg->agg_host),
                                    agg ? &cfg->agg_port : &cfg->stunnel_port) < 0 ||
                (agg ? cfg->agg_port : cfg->stunnel_port) == 0) {
                fprintf(stderr, "clink-bench: --%s: expected HOST:PORT, got '%s'\n", agg ? "aggregator" : "stunnel",
                        optarg);
                return -1;
            }
            break;
        }
        case 'z':
        case 'r':
        case 'L':
        case 'l': {
            size_t *list = ch == 'z'   ? cfg->sizes
                           : ch == 'r' ? cfg->rpc_sizes
                           : ch == 'L' ? cfg->callers
                                       : cfg->scale_leaves;
            int *n = ch == 'z'   ? &cfg->nsizes
                     : ch == 'r' ? &cfg->nrpc_sizes
                     : ch == 'L' ? &cfg->ncallers
                                 : &cfg->nscale_leaves;
            if ((*n = parse_list(optarg, list, MAX_LIST)) <= 0) {
                fprintf(stderr, "clink-bench: %s: expected a comma-separated list of up to %d numbers\n",
                        argv[optind - 1], MAX_LIST);
                return -1;
            }
            for (int i = 0; i < *n; i++) {
                if (list[i] == 0 || (ch == 'L' && list[i] > 4096) || (ch == 'l' && list[i] > 128)) {
                    fprintf(stderr, "clink-bench: %s: %zu is out of range\n", argv[optind - 1], list[i]);
                    return -1;
                }
            }
            if (ch != 'l') {
                *(ch == 'z' ? &set_sizes : ch == 'r' ? &set_rpc : &set_callers) = 1;
            }
            break;
        }
        case 'S':
        case 'I':
        case 'C':
        case 'N':
        case 'w':
        case 'H':
        case 'd':
        case 'W': {
            const struct {
                int ch;
                const char *name;
                unsigned lo, hi;
                unsigned *out;
                int *set;
            } counts[] = {
                {'S', "storm-conns", 1, 4096, &cfg->storm_conns, &set_storm},
                {'I', "idle-conns", 1, 100000, &cfg->idle_conns, &set_idle},
                {'C', "concurrency", 1, 4096, &cfg->concurrency, NULL},
                {'N', "connections", 1, 64, &cfg->connections, NULL},
                {'w', "workers", 1, 64, &cfg->workers, NULL},
                {'H', "handshakes", 1, 64, &cfg->hs_inflight, NULL},
                {'d', "duration-ms", 1, 600000, &cfg->duration_ms, &set_dur},
                {'W', "warmup-ms", 0, 600000, &cfg->warmup_ms, &set_warm},
            };
            for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
                if (counts[i].ch == ch) {
                    if (parse_count(counts[i].name, optarg, counts[i].lo, counts[i].hi, &v) < 0) {
                        return -1;
                    }
                    *counts[i].out = v;
                    if (counts[i].set) {
                        *counts[i].set = 1;
                    }
                }
            }
            break;
        }
        case 'B':
            if (parse_count("window", optarg, 64, 1u << 30, &v) < 0) {
                return -1;
            }
            cfg->window = v;
            break;
        case 'Y':
            if (parse_bytes("stream-bytes", optarg, 1, 1ull << 40, &cfg->stream_bytes) < 0) {
                return -1;
            }
            set_stream = 1;
            break;
        case 'G': {
            uint64_t b;
            if (parse_bytes("stream-msg", optarg, 1, CLINK_DEFAULT_MAX_MESSAGE * 3 / 4, &b) < 0) {
                return -1;
            }
            cfg->stream_msg = (size_t)b;
            break;
        }
        case 'V': {
            uint64_t b;
            if (parse_bytes("stream-window", optarg, 65536, 1u << 30, &b) < 0) {
                return -1;
            }
            cfg->stream_window = (uint32_t)b;
            break;
        }
        case 'q':
            quick = 1;
            break;
        case 'j':
            cfg->json = optarg;
            break;
        case 'p':
            if (cfg->npids == MAX_TARGETS || parse_count("measure-pid", optarg, 1, 1u << 30, &v) < 0) {
                return -1;
            }
            cfg->pids[cfg->npids++] = (pid_t)v;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    /* --quick picks smaller defaults; options given explicitly win. */
    if (!set_sizes) {
        cfg->nsizes = parse_list(quick ? "64,16384,65536" : "64,1024,16384,65536,262144,1048576", cfg->sizes, MAX_LIST);
    }
    if (!set_rpc) {
        cfg->nrpc_sizes = parse_list(quick ? "64,16384" : "64,1024,16384,65536", cfg->rpc_sizes, MAX_LIST);
    }
    if (!set_callers) {
        cfg->ncallers = parse_list(quick ? "1,64" : "1,4,16,64,256", cfg->callers, MAX_LIST);
    }
    if (cfg->nscale_leaves == 0) {
        cfg->nscale_leaves = parse_list("1,4,16,64", cfg->scale_leaves, MAX_LIST);
    }
    if (!set_storm) {
        cfg->storm_conns = quick ? 64 : 256;
    }
    if (!set_stream) {
        cfg->stream_bytes = quick ? 128ull << 20 : 1ull << 30;
    }
    if (!set_idle) {
        cfg->idle_conns = quick ? 1000 : 5000;
    }
    if (!set_dur) {
        cfg->duration_ms = quick ? 500 : 2000;
    }
    if (!set_warm) {
        cfg->warmup_ms = quick ? 100 : 300;
    }
    if (optind != argc) {
        fprintf(stderr, "clink-bench: unexpected argument '%s'\nRun 'clink-bench --help' for usage.\n", argv[optind]);
        return -1;
    }
    if (cfg->ntargets == 0 || !cfg->cert || !cfg->key || !cfg->ca) {
        fprintf(stderr, "clink-bench: need --target, --cert, --key and --ca\nRun 'clink-bench --help' for usage.\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--bare-server") == 0) {
        return bare_loop_server_main(argc, argv); /* the bare loop's server process (bare_loop.c) */
    }
    if (argc > 1 && strcmp(argv[1], "--scale-leaf-server") == 0) {
        return scale_leaf_server_main(argc, argv); /* the scale scenario's leaves (scale.c) */
    }
    struct cfg cfg = {.concurrency = 64,
                      .connections = 2,
                      .workers = 2,
                      .hs_inflight = 4,
                      .window = 1u << 20,
                      .stream_msg = 65536,
                      .modes_plain = 1,
                      .modes_tls = 1,
                      .modes_ktls = 1,
                      .scen_rpc = 1,
                      .scen_throughput = 1,
                      .scen_handshake = 1,
                      .scen_storm = 1,
                      .scen_pool = 1,
                      .scen_ceiling = 1,
                      .scen_memory = 1,
                      .scen_fanout = 1,
                      .scen_scale = 1,
                      .scen_stream = 1,
                      .scen_mixed = 1,
                      .places = {PLACE_SPLIT, PLACE_SAME},
                      .nplaces = 2};
    if (parse_args(argc, argv, &cfg) < 0) {
        return 2;
    }
    host_info(&cfg);
#ifdef NDEBUG
    cfg.build = "release";
#else
    cfg.build = "debug";
#endif
    cfg.tty = isatty(STDERR_FILENO); /* progress only where someone watches */
    char why[256];
    if (place(&cfg, PLACE_ANY, why, sizeof(why)) < 0) { /* learns the CPUs we may use */
        fprintf(stderr, "clink-bench: %s\n", why);
        return 1;
    }
    if (cfg.json && (cfg.jf = fopen(cfg.json, "a")) == NULL) {
        fprintf(stderr, "clink-bench: %s: %s\n", cfg.json, strerror(errno));
        return 1;
    }
    struct clink_tls_opts to = {.cert_file = cfg.cert, .key_file = cfg.key, .ca_file = cfg.ca};
    char err[512];
    if (clink_tls_ctx_new(&to, &cfg.tls, err, sizeof(err)) < 0) {
        fprintf(stderr, "clink-bench: TLS configuration: %s\n", err);
        return 1;
    }
    struct clink_node_opts no = {
        .workers = cfg.workers, .tls = cfg.tls, .allow_plaintext = cfg.modes_plain, .stream_window = cfg.stream_window};
    int ret = clink_node_new(&no, &cfg.node);
    if (ret == 0) {
        ret = clink_node_start(cfg.node);
    }
    if (ret < 0) {
        fprintf(stderr, "clink-bench: %s\n", clink_strerror(ret));
        return 1;
    }
    clink_node_features(cfg.node, &cfg.feat);
    printf("clink-bench: %d target(s), %u connections each, %u in flight, %u client workers, %s build\n", cfg.ntargets,
           cfg.connections, cfg.concurrency, cfg.workers, cfg.build);
    printf("host: kernel %s, %s, %d CPUs; io_uring %s; kTLS ULP %s\n", cfg.kernel, cfg.cpu, cfg.ncpus,
           cfg.feat.defer_taskrun ? "SINGLE_ISSUER|DEFER_TASKRUN" : "basic", cfg.feat.ktls ? "present" : "absent");
    printf("placement: split = this process on one CPU, the measured server processes on another; same = all on one\n");
    if (cfg.feat.ktls) {
        /* The server decides for its own end: the tls lines are not user-space TLS at both ends here. */
        printf("modes: tls = OpenSSL at this end, ktls = the kernel at this end; the servers offload by their own "
               "ktls setting in both\n");
    }
    print_header();

    int failures = 0;
    if (cfg.scen_memory) {
        failures += run_memory_lines(&cfg); /* first, while every process is fresh (see memory.c) */
    }
    if (cfg.scen_ceiling) {
        run_ceiling(&cfg);
    }
    if (cfg.scen_throughput) {
        failures += run_throughput(&cfg);
    }
    if (cfg.scen_stream) {
        failures += run_stream_lines(&cfg); /* after throughput: its lines are the ratios' base */
    }
    if (cfg.scen_rpc) {
        failures += run_rpc(&cfg);
    }
    if (cfg.scen_pool && cfg.modes_tls) {
        failures += run_pool_overhead(&cfg);
    }
    if (cfg.scen_fanout && cfg.agg_port != 0 && cfg.modes_tls) {
        failures += run_fanout(&cfg);
    }
    if (cfg.scen_mixed && cfg.modes_tls) {
        failures += run_mixed_lines(&cfg);
    }
    if (cfg.scen_handshake) {
        CLINK_IGNORE(run_handshake_scenario(&cfg, &failures));
    }
    if (cfg.scen_storm && cfg.modes_tls) {
        failures += run_storm_line(&cfg);
    }
    if (cfg.scen_scale && cfg.modes_tls) {
        CLINK_IGNORE(use_placement(&cfg, PLACE_ANY));
        uint64_t t0 = now_ns();
        failures += run_scale(&cfg);
        printf("  (scale: %.1f s for %d leaf counts)\n", (double)(now_ns() - t0) / 1e9, cfg.nscale_leaves);
    }
    CLINK_IGNORE(place(&cfg, PLACE_ANY, why, sizeof(why))); /* leave the servers as we found them */
    progress(&cfg, "%s", "");
    summary(&cfg);
    CLINK_IGNORE(clink_node_shutdown(cfg.node, 2000));
    clink_node_free(cfg.node);
    clink_tls_ctx_free(cfg.tls);
    if (cfg.jf) {
        fclose(cfg.jf);
    }
    return failures ? 1 : 0;
}
