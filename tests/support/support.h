/*
 * Test helpers (never linked into the library): certificates made at run
 * time, nodes on loopback, and a raw blocking client that can send any bytes
 * a hostile peer would.
 */
#ifndef CLINK_TESTS_SUPPORT_H
#define CLINK_TESTS_SUPPORT_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "clink/auth.h"
#include "clink/transport.h"
#include "tests/support/tls_peer.h"

/* Helpers fail loudly (message, then abort) so they serve Criterion tests and plain drivers alike. */
void ts_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
#define TS_REQUIRE(cond, ...)                                                                                          \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            ts_fail(__FILE__, __LINE__, __VA_ARGS__);                                                                  \
        }                                                                                                              \
    } while (0)

/* Every network wait in tests is multiplied by $CLINK_TEST_TIMEOUT_SCALE (sanitizers, the kTLS VM). */
unsigned ts_scale(void);
unsigned ts_ms(unsigned ms);

/* A fresh directory with: ca.pem ca-key.pem, node.pem node-key.pem (localhost, 127.0.0.1, ::1),
 * other-ca.pem other-ca-key.pem, other.pem other-key.pem (same names, signed by other-ca). */
struct ts_pki {
    char dir[256];
    char ca[300], node_cert[300], node_key[300];
    char other_ca[300], other_cert[300], other_key[300];
};
void ts_pki_make(struct ts_pki *p);
/* Removes the directory and everything in it, including files tests added. */
void ts_pki_remove(struct ts_pki *p);
/* dst = p->dir + "/" + name. */
void ts_pki_path(const struct ts_pki *p, const char *name, char *dst, size_t cap);

/* Copy only the first PEM block of src to dst: a leaf without the intermediates its file carries. */
void ts_pem_first_block(const char *src, const char *dst);
/*
 * Write to cert_out the certificate in cert re-signed by its own key (key): a
 * self-signed leaf (CA:FALSE, issuer = subject, no authority key id).
 */
void ts_self_signed_leaf(const char *cert, const char *key, const char *cert_out);
/*
 * Make a TLS context's server side present exactly the chain in cert (key:
 * its key), with no chain built from its CA bundle (SSL_MODE_NO_AUTO_CHAIN).
 * clink_tls_ctx_new refuses a certificate that does not verify (expired, not
 * yet valid, from another CA); this plays a server whose certificate went
 * bad while it ran, or one misconfigured by other means.
 */
void ts_tls_serve_cert(struct clink_tls_ctx *tls, const char *cert, const char *key);

/* TLS context from files (aborts the test on failure). */
struct clink_tls_ctx *ts_tls(const char *cert, const char *key, const char *ca);

/* Node listening on 127.0.0.1:0 with `workers` workers; started. */
struct clink_node *ts_node(struct clink_tls_ctx *tls, unsigned workers, int allow_plain,
                           void (*reg)(struct clink_node *));
/* Node from o (workers, tls, on_conn, log...) listening on 127.0.0.1:0; started. Zero handshake timeout: 5 s scaled. */
struct clink_node *ts_node_with(const struct clink_node_opts *o, void (*reg)(struct clink_node *));
/* Node with no listener (a client); started. */
struct clink_node *ts_client(struct clink_tls_ctx *tls, unsigned workers, int allow_plain);

/* Handlers used by many tests. Method 1: echo. Method 2: fail with "nope". */
#define TS_ECHO 1
#define TS_FAIL 2
void ts_register_echo(struct clink_node *n);

/* Blocking TCP connect to 127.0.0.1:port with a receive timeout; returns fd. */
int ts_tcp_connect(uint16_t port);
/* Read exactly n bytes (or fail the test). Returns 0 on success, -1 on EOF/timeout. */
int ts_read_full(int fd, void *buf, size_t n);
/* Skip the server's greeting packet. */
void ts_skip_greeting(int fd);

/*
 * A raw clink client: the test TLS peer (tls_peer.h) on a socket from
 * ts_tcp_connect, after the node's greeting, offering clink/1 and verifying
 * "localhost"; the handshake done, frames not yet. 0, or -1 if it failed.
 * Write with tls_peer_write, free with tls_peer_free.
 */
int ts_raw_tls(struct tls_peer *r, uint16_t port, const struct ts_pki *p);
/* The same with any certificate, key and trusted CAs (e.g. a certificate from another CA). */
int ts_raw_tls_as(struct tls_peer *r, uint16_t port, const char *cert, const char *key, const char *ca);
/* Full control: alpn NULL offers none; max_version 0 means TLS 1.3. */
struct ts_raw_opts {
    const char *cert, *key, *ca; /* cert NULL: present no client certificate */
    int no_alpn;
    int max_version; /* e.g. TLS1_2_VERSION */
};
int ts_raw_tls_with(struct tls_peer *r, uint16_t port, const struct ts_raw_opts *o);
/* Read until n bytes, the end of the connection or 5 s (scaled); returns bytes read. */
int ts_raw_read(struct tls_peer *r, void *buf, size_t n);
/* Send a frame header + payload. */
int ts_raw_frame(struct tls_peer *r, uint8_t type, uint16_t method, uint64_t id, const void *p, uint32_t len,
                 uint32_t claimed_len);

/*
 * The byte at offset i of a checked stream of data named by seed: data that
 * is lost, repeated, reordered or mixed with another stream's cannot pass
 * ts_check. ts_fill writes bytes off..off+n of it to p.
 */
uint8_t ts_pattern(uint64_t seed, uint64_t i);
void ts_fill(uint8_t *p, size_t n, uint64_t seed, uint64_t off);
int ts_check(const uint8_t *p, size_t n, uint64_t seed, uint64_t off); /* 1 if p holds those bytes */

#endif
