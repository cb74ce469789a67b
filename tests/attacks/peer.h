/*
 * The attacks' TLS client: the shared test TLS peer (tests/support/tls_peer.h)
 * set up as a clink client of the nodes under attack, with the wire protocol
 * spoken over it by hand, so that a record can be flipped or cut before it
 * reaches the socket.
 */
#ifndef CLINK_TESTS_ATTACKS_PEER_H
#define CLINK_TESTS_ATTACKS_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "tests/attacks/raw.h"
#include "tests/support/tls_peer.h"

struct peer_opts {
    int min_version, max_version; /* 0: TLS 1.3 */
    const char *ciphers;          /* TLS 1.2 and older: OpenSSL cipher list; NULL: OpenSSL's default */
    const char *cert, *key;       /* NULL: no client certificate */
};

/* Context and SSL object, trusting --ca, offering clink/1 to "localhost"; no socket yet. 0, or -1 (m->err). */
int peer_prepare(struct tls_peer *m, const struct peer_opts *o);
/* Connect it to the node on port; the node's greeting is skipped before the first TLS byte is read. */
int peer_connect(struct tls_peer *m, uint16_t port);

/* A frame: header fields and up to cap payload bytes (the rest is dropped). */
struct frame {
    uint8_t type;
    uint32_t len;
    uint64_t id;
    uint8_t payload[512];
};
int peer_read_frame(struct tls_peer *m, struct frame *f, double deadline);
/* The clink HELLO exchange after the handshake: 0 when the node answered with its HELLO. */
int peer_hello(struct tls_peer *m, double deadline);
/* One echo call (id), its answer checked: 0, or -1 with m->err. */
int peer_echo(struct tls_peer *m, uint64_t id, double deadline);
/* Connect, handshake, HELLO, one echo: a connection in the state a real client has. */
int peer_open(struct tls_peer *m, uint16_t port, const struct peer_opts *o, double deadline);
/*
 * After an attack on m: read (through OpenSSL, to see alerts) until the node
 * closes. Describes how into obs; returns seconds from t0 to the close, or
 * -1 if the connection was still open at the deadline.
 */
double peer_wait_closed(struct tls_peer *m, double t0, double deadline, char *obs, size_t cap);

#endif
