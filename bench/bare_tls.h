/*
 * Bare OpenSSL TLS 1.3 handshake baseline for clink-bench: what the same
 * handshake costs in plain OpenSSL, with no io_uring, sockets or clink
 * state, so that clink's own handshake rate can be given as a share of it.
 *
 * Both ends run in the calling thread over a BIO pair, with SSL_CTXs set up
 * like clink's (auth/tls_ctx.c, build(): TLS 1.3 only, same options, suites,
 * verification, ALPN "clink/1", mutual TLS, 2 stateless tickets; OpenSSL's
 * own ticket key instead of clink's key ring). One handshake is what a dial
 * costs in OpenSSL: SSL_new for both ends, the handshake, the client reading
 * the server's tickets, SSL_free for both. No shutdown, no application data.
 */
#ifndef CLINK_BENCH_BARE_TLS_H
#define CLINK_BENCH_BARE_TLS_H

#include <stdint.h>

/* PEM files, as for a clink node; both ends trust ca; name is checked against the server certificate. */
struct bare_tls_files {
    const char *ca, *server_cert, *server_key, *client_cert, *client_key, *name;
};

struct bare_hs_result {
    uint64_t ok;          /* handshakes completed (in resumed mode: completed and resumed) */
    uint64_t failed;      /* handshakes that failed, or (resumed mode) did not resume */
    double secs;          /* wall time of the measured loop */
    double per_s;         /* ok / secs */
    double cpu_s;         /* CPU time of this thread over the loop (CLOCK_THREAD_CPUTIME_ID) */
    double cpu_us_per_hs; /* cpu_s / ok, in microseconds */
    char err[256];        /* first failure, with the first OpenSSL error; "" if none */
};

/*
 * [in] f, [out] out. Runs back-to-back handshakes in this thread for ms
 * milliseconds of wall time (at least one): full handshakes (resume 0), or
 * resumed ones (resume 1: one full handshake before the loop, then each
 * handshake offers the ticket the previous one received). Contexts and that
 * first handshake are not measured.
 * Returns 0 (out filled; failed > 0 leaves the first reason in out->err), or
 * -1 with out->err set when setup fails or no handshake succeeded.
 */
int bare_tls_handshakes(const struct bare_tls_files *f, int resume, unsigned ms, struct bare_hs_result *out);

/*
 * One of the contexts the baseline uses (server 1: the server end's), set
 * up like clink's: [in] f; returns a context the caller frees with
 * SSL_CTX_free, or NULL with err set. bare_loop.c uses it too.
 */
struct ssl_ctx_st *bare_tls_ctx(const struct bare_tls_files *f, int server, char *err, size_t errlen);

#endif
