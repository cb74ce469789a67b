/*
 * clink-bench internals: what the scenarios share. The scenarios live in
 * their own files (calls.c: rpc, throughput, pool and fanout; streams.c:
 * stream and mixed; handshake.c with bare_tls.c, its OpenSSL baseline;
 * storm.c; memory.c; scale.c); util.c holds
 * the histogram, clocks, CPU and RSS readers and thread placement; bare_loop.c
 * is the rpc and throughput lines' baseline; report.c
 * prints the table and the JSON lines.
 */
#ifndef CLINK_BENCH_H
#define CLINK_BENCH_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "clink/clink.h"

#define MAX_TARGETS 16
#define MAX_LIST    16

/* ---- latency histogram: log2 buckets with 32 linear sub-buckets (~3% error) ---- */
#define HIST_SUB     32
#define HIST_OCTAVES 40
struct hist {
    uint64_t n[HIST_OCTAVES * HIST_SUB];
    uint64_t count;
};
void hist_add(struct hist *h, uint64_t ns);
void hist_merge(struct hist *dst, const struct hist *src);
double hist_pct_us(const struct hist *h, double p);

uint64_t now_ns(void);

/*
 * Where threads run. The bench's own threads are "the client"; the processes
 * given with --measure-pid (the leaves, the stunnel pair) are "the server".
 * split: client on one CPU, server on another; same: both on one CPU;
 * any: wherever the scheduler puts them.
 */
enum placement { PLACE_ANY = 0, PLACE_SPLIT, PLACE_SAME };
const char *placement_name(enum placement p);

/* One line of results. ok + failed == issued, always. */
struct result {
    const char *scenario, *mode, *placement;
    size_t msg;
    unsigned concurrency, connections, workers;
    double secs, ops, bps, p50, p99, p999;
    double cpu_s, cpu_client_s, cpu_server_s; /* cpu_s = client + server */
    uint64_t issued, ok, failed;
    char cipher[64], tls_version[16];
    char skipped[512];                 /* set: the line could not run, and this says why */
    char note[160];                    /* a few words shown at the end of the table row */
    double resumed_share;              /* storm, scale restarts: resumed share of the reconnects */
    uint64_t hs_full, hs_resumed;      /* scale restarts: the handshakes that made the pools whole */
    unsigned leaves;                   /* scale: leaves the aggregator fans out to */
    double leaf_ops;                   /* scale: leaf calls per second (fan-outs per second x leaves) */
    double baseline_ratio;             /* handshake: clink per CPU-second / bare OpenSSL's over memory BIOs */
    double sock_ratio;                 /* handshake: clink per CPU-second / bare OpenSSL's over loopback sockets */
    double bare_ratio, bare_cpu_ratio; /* rpc, throughput: clink / the bare loop, per second and per CPU-second */
    double kib_client, kib_server;     /* memory: RSS per idle connection and end; scale: per leaf, the aggregator */
    double heap_kib_client;            /* memory: heap in use per idle connection, this end; scale: per leaf */
    const char *key_type;              /* handshake: "ECDSA P-256" or "RSA 2048" */
    double peak_kib_client, peak_kib_server; /* stream: the most RSS grew while it ran, each side (-1: unread) */
    double stream_bps;                       /* mixed: the stream's bytes per second on the calls' connection */
    double p99_vs_idle;                      /* mixed: p99 / the same calls' p99 on the idle connection */
};

/* What the closing summary compares, gathered as the scenarios run. 0: not measured. */
struct summary {
    double ceiling_aes;
    size_t thr_size;                                  /* the throughput ratios' message size */
    double thr_plain, thr_tls, thr_stunnel, thr_ktls; /* bytes/s, one connection */
    double thr_gb_cpu_client, thr_gb_cpu_server;      /* tls: CPU-seconds per GB on each side */
    double rpc1_plain, rpc1_tls;                      /* p50 us, 64 B, one caller */
    double rpc64_plain, rpc64_tls;                    /* calls/s, 64 B, 64 callers */
    double rpc64_bare_split, rpc64_bare_same;         /* tls, 64 B, 64 callers: clink / bare loop calls per s */
    double thr_bare;                                  /* tls, 1 connection: clink / bare loop bytes per s */
    const char *rpc_place;                            /* the placement of those four */
    double hs_full, hs_resumed;                       /* per second, ECDSA */
    double hs_bare_full, hs_bare_resumed;             /* clink per CPU-second / bare OpenSSL's, ECDSA */
    double hs_sock_full, hs_sock_resumed;             /* the same against bare OpenSSL over sockets */
    double pool_direct, pool_pooled;
    double mem_client, mem_server; /* KiB per idle TLS connection */
    unsigned mem_conns;
    double mem_ktls_client, mem_ktls_server; /* KiB per idle kTLS connection (hosts with kTLS) */
    /* throughput, 1 connection, per size index of cfg->sizes: bytes/s by mode (plain, tls, ktls, stunnel) */
    double thr1[4][MAX_LIST];
    double thr1_bare[2][MAX_LIST], thr1_bare_cpu[2][MAX_LIST]; /* its bare loop (plain, tls): bytes/s, per CPU-s */
    double stream_tls, stream_vs_thr;            /* stream tls: bytes/s, and / throughput's tls line of its size */
    double stream_plain_gather, stream_plain_zc; /* stream plain from a leaf that gathers, one that sends zero-copy */
    double stream_gb_cpu_client, stream_gb_cpu_server;
    double mixed_p99_ratio[2], mixed_paced_ratio[2]; /* mixed, 1 and 16 callers: p99 under the stream / idle */
};

struct cfg {
    char hosts[MAX_TARGETS][128];
    uint16_t ports[MAX_TARGETS];
    int ntargets;
    const char *name, *cert, *key, *ca, *json, *user, *plain_user;
    size_t sizes[MAX_LIST], rpc_sizes[MAX_LIST], callers[MAX_LIST], scale_leaves[MAX_LIST];
    int nsizes, nrpc_sizes, ncallers, nscale_leaves;
    enum placement places[3];
    int nplaces;
    unsigned concurrency, connections, workers, duration_ms, warmup_ms;
    unsigned storm_conns, idle_conns, hs_inflight;
    size_t window; /* throughput: bytes in flight per connection (callers = window / size, 1..concurrency) */
    int modes_plain, modes_tls, modes_ktls;
    int scen_rpc, scen_throughput, scen_handshake, scen_storm, scen_pool, scen_ceiling, scen_memory, scen_fanout,
        scen_scale;
    int scen_stream, scen_mixed;
    uint64_t stream_bytes;  /* stream: bytes per line */
    size_t stream_msg;      /* stream and mixed: the stream's message size */
    uint32_t stream_window; /* the client node's stream_window (0: clink's default) */
    char stunnel_host[128];
    uint16_t stunnel_port;
    char agg_host[128];
    uint16_t agg_port;
    pid_t pids[MAX_TARGETS];
    int npids;
    FILE *jf;
    int tty; /* progress lines on stderr */
    char kernel[128], cpu[128];
    const char *build;
    int ncpus;
    struct clink_features feat;
    struct clink_tls_ctx *tls;
    struct clink_node *node; /* the client node ("the aggregator") */
    struct summary sum;
};

/* What a measured phase of calls ran against. */
struct call_spec {
    const char *scenario; /* "rpc", "throughput", "pool", "fanout" */
    enum clink_conn_mode mode;
    enum clink_ktls_mode ktls; /* this end's records: DISABLED (OpenSSL) or REQUIRED (the kernel) */
    int via_stunnel;           /* dial the stunnel client instead of the targets */
    int via_aggregator;        /* call the aggregator's fan-out method instead of the targets' echo */
    int pooled;                /* through clink_pool_call_start instead of fixed connections */
    unsigned conns_per_target;
    int ntargets;     /* the first ntargets targets (from `target` on) */
    int target;       /* the first of them (0: the first --target) */
    unsigned callers; /* calls in flight */
    size_t msg;
    struct clink_conn *conn; /* set: every call on this connection (the caller's: not opened, not closed here) */
};
int run_calls(struct cfg *cfg, const struct call_spec *spec, struct result *res);
/* Dial n connections for sp (round robin over its targets, or its stunnel or aggregator). res->skipped says why not. */
int open_conns(struct cfg *cfg, const struct call_spec *sp, struct clink_conn **conns, unsigned n, struct result *res);
/* res's cipher and TLS version: c's (nothing for plaintext). */
void describe_conn(struct clink_conn *c, struct result *res);

int run_handshake_scenario(struct cfg *cfg, int *failures);
int run_storm(struct cfg *cfg, struct result *res);
int run_memory(struct cfg *cfg, enum clink_conn_mode mode, enum clink_ktls_mode ktls, struct result *res);
/* scale.c: every --scale-leaves N, four lines each (fan-outs, a leaf's, the pools' and the aggregator's restart);
 * returns the failures. */
int run_scale(struct cfg *cfg);
/* The leaves' process: main() calls this when argv[1] is "--scale-leaf-server". Returns the exit status. */
int scale_leaf_server_main(int argc, char **argv);

/*
 * streams.c: one stream line from target `target` (res gets everything but
 * the ratios; path: how the leaf sent it, "copy", "gather" or "zerocopy", as
 * its status says), and the mixed lines (reported there).
 */
int run_stream(struct cfg *cfg, enum clink_conn_mode mode, enum clink_ktls_mode ktls, int target, struct result *res,
               char *path, size_t path_cap);
int run_mixed(struct cfg *cfg, enum placement pl, int *failures);

/* util.c */
double cpu_self_s(void);
double cpu_pids_s(const pid_t *pids, int npids);
long rss_kib(pid_t pid); /* 0: this process. -1 if unreadable */
int place(struct cfg *cfg, enum placement p, char *why, size_t cap);
void host_info(struct cfg *cfg);
int parse_list(const char *s, size_t *out, int max);
void progress(const struct cfg *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* report.c */
void emit_json(const struct cfg *cfg, const struct result *r);
void print_header(void);
void print_row(const struct result *r, double vs, const char *vs_what);
void print_skipped(const struct result *r);
/*
 * One result line: its JSON object, then its table row (vs: a ratio to show,
 * 0 for none) or why it was skipped. Returns 1 if it counts as a failure
 * (skipped, a call failed, or ok + failed != issued), else 0.
 */
int report_line(const struct cfg *cfg, const struct result *r, double vs, const char *vs_what);

#endif
