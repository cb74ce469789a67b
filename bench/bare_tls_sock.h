/*
 * The second bare OpenSSL handshake baseline for clink-bench: the memory-BIO
 * loop (bare_tls.h) pays none of what a real dial costs around the
 * handshake, so this one does it over loopback TCP, as a dial does:
 * connect and accept, the handshake (same contexts: bare_tls_ctx), a
 * 16-byte request and a 16-byte answer standing for clink's HELLO round
 * trip (the client takes the tickets in while reading the answer), then an
 * orderly close: the client sends close_notify, the server answers with its
 * own, both close their sockets. Both ends run in the calling thread, as in
 * the memory loop (one dial at a time, each SSL over its own non-blocking
 * TCP_NODELAY socket, a poll only when an end waits for bytes not yet
 * there), so it pays no thread switches: on one CPU, a server thread of its
 * own made the same dial cost a third more CPU.
 */
#ifndef CLINK_BENCH_BARE_TLS_SOCK_H
#define CLINK_BENCH_BARE_TLS_SOCK_H

#include "bench/bare_tls.h"

/*
 * [in] f, [out] out. Dials back to back for ms milliseconds of wall time (at
 * least one): full handshakes (resume 0) or resumed ones (resume 1: one
 * unmeasured full dial first, then each dial offers the newest ticket the
 * previous one received). out->cpu_s is this thread's CPU time over the
 * loop: both ends and the kernel's work for their sockets.
 * Returns 0 (out filled; failed > 0 leaves the first reason in out->err), or
 * -1 with out->err set when setup fails or no dial succeeded.
 */
int bare_tls_sock_handshakes(const struct bare_tls_files *f, int resume, unsigned ms, struct bare_hs_result *out);

#endif
