/*
 * Bare-loop baseline for clink-bench's rpc and throughput lines: what the
 * same calls cost with no clink layers. One loopback TCP connection between
 * this thread and a server process (clink-bench started again with
 * --bare-server, so the layout is clink's: caller here, server in another
 * process, pinned like the leaves), each end one io_uring and, for TLS,
 * OpenSSL over memory BIOs with contexts like clink's (bare_tls.c: TLS 1.3,
 * the same suites and server preference, so the same cipher). A call is a
 * length-prefixed frame (4 bytes, big-endian) with its payload; the server
 * answers each with a frame of the same payload (echo) or an empty one
 * (sink, for throughput). Each end, per loop turn: every received byte is
 * decrypted and parsed, every answer or new call of the turn goes into one
 * SSL_write, and one send carries what is ready (at most one in flight).
 *
 * What it does not have: frame types, call ids, method dispatch, a call
 * table, deadlines, callbacks, pools, several connections or workers,
 * provided buffer rings, flow control, accounting. The caller reads the clock
 * twice per call for the latency histogram, as clink-bench's callers do.
 */
#ifndef CLINK_BENCH_BARE_LOOP_H
#define CLINK_BENCH_BARE_LOOP_H

#include "bench/bare_tls.h"
#include "bench/bench.h"

struct bare_loop_spec {
    int tls;           /* 0: plaintext TCP */
    size_t req, resp;  /* payload bytes of a call and of its answer (0: an empty frame) */
    unsigned inflight; /* calls in flight, kept there */
    unsigned warmup_ms, ms;
};

/*
 * [in] cfg (placement: the server process joins cfg->pids while it runs and
 * is pinned as the leaves are, for placement pl), [in] f (both ends' files),
 * [in] sp, [out] r: ops, bps, latency percentiles, CPU of this process and
 * of the server process, issued/ok/failed, cipher. Returns 0, or -1 with
 * r->skipped set.
 */
int bare_loop_run(struct cfg *cfg, enum placement pl, const struct bare_tls_files *f, const struct bare_loop_spec *sp,
                  struct result *r);

/* The server process: main() calls this when argv[1] is "--bare-server". Returns the exit status. */
int bare_loop_server_main(int argc, char **argv);

#endif
