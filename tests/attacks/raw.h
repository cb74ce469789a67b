/*
 * The wire protocol by hand (docs/protocol.md), not through the library
 * under test: frames encoded byte by byte, and raw sockets that send
 * whatever an attacker would and report how the node answered.
 */
#ifndef CLINK_TESTS_ATTACKS_RAW_H
#define CLINK_TESTS_ATTACKS_RAW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/support/tls_peer.h"

#define ECHO_METHOD 1 /* clink-node's echo (clink/methods.h) */

/* docs/protocol.md: frame types, the plaintext magic, HELLO. */
#define FRAME_HDR      16
#define FRAME_HELLO    1
#define FRAME_REQUEST  2
#define FRAME_RESPONSE 3
#define FRAME_ERROR    4
#define PLAIN_MAGIC    "CLNK\x00\x01\r\n"
#define GREETING_MAX   1024

uint32_t get_be32(const uint8_t *p);
void frame_hdr(uint8_t h[FRAME_HDR], uint8_t type, uint16_t method, uint32_t len, uint64_t id);
/* A client HELLO: versions 1..1, max_frame 4 MiB, no login. */
size_t hello_frame(uint8_t out[FRAME_HDR + 12]);
/* An echo REQUEST frame for id (payload: 16 bytes derived from id), as bytes. */
size_t echo_request(uint8_t out[FRAME_HDR + 16], uint64_t id);

/* The same outcomes as the TLS peer's reads, so that either kind of read can be told apart the same way. */
enum {
    R_TIMEOUT = TLS_PEER_TIMEOUT,
    R_RESET = TLS_PEER_RESET,
};

/* A connected TCP socket to 127.0.0.1:port, or -errno. */
int tcp_connect(uint16_t port);
int send_all(int fd, const void *p, size_t n);
/* Read up to n bytes by the deadline: > 0 bytes, 0 EOF, R_TIMEOUT, R_RESET (or another error). */
ssize_t recv_some(int fd, void *buf, size_t n, double deadline);
/* Exactly n bytes: n, or what recv_some said when it stopped early. */
ssize_t recv_full(int fd, void *buf, size_t n, double deadline);
/* The node speaks first: a MySQL protocol-10 greeting (docs/protocol.md, "Opening"). */
int skip_greeting(int fd, double deadline);
/* Read and drop until the node closes: "EOF" or "reset", NULL on timeout. */
const char *wait_closed(int fd, double deadline);

#endif
