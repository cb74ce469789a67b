/*
 * The port's opening rule (docs/protocol.md, "Opening"): pure functions, no
 * I/O, so the rule can be fuzzed and replaced in one place.
 *
 * The server sends a greeting at once, shaped as a MySQL protocol-10
 * handshake packet so that MySQL clients (who wait for the server) can be
 * served on the same port later. Native clients do not wait for it: they send
 * their first bytes immediately (a TLS ClientHello, or the plaintext magic),
 * then read and skip the greeting, so they pay no extra round trip.
 */
#ifndef CLINK_TRANSPORT_OPENING_H
#define CLINK_TRANSPORT_OPENING_H

#include <stddef.h>
#include <stdint.h>

/* What a native plaintext client sends first (8 bytes). */
#define CLINK_PLAIN_MAGIC     "CLNK\x00\x01\r\n"
#define CLINK_PLAIN_MAGIC_LEN 8

/* Bytes the server reads before it can classify a client. */
#define CLINK_CLASSIFY_LEN 5

/* Largest greeting a native client accepts (4-byte header + payload). */
#define CLINK_GREETING_MAX 1024

enum clink_opening_kind {
    CLINK_OPENING_MORE = 0, /* read up to CLINK_PLAIN_MAGIC_LEN bytes in total, then ask again */
    CLINK_OPENING_TLS,      /* a TLS record header: these bytes start the handshake */
    CLINK_OPENING_PLAIN,    /* the native plaintext magic, complete */
    CLINK_OPENING_OTHER,    /* anything else: a MySQL-protocol client */
};

/* Classify the first n bytes a client sent (n >= CLINK_CLASSIFY_LEN). */
enum clink_opening_kind clink__opening_classify(const uint8_t *b, size_t n);

/*
 * Write the greeting packet for connection conn_id into out (cap >= 128).
 * scramble: 20 random bytes (the MySQL auth challenge). Returns its length.
 */
size_t clink__opening_greeting(uint8_t *out, size_t cap, uint32_t conn_id, const uint8_t scramble[20]);

/*
 * Client side: given the greeting's first 4 bytes and its first payload byte,
 * return the payload length to skip, or -CLINK_EPROTO if this is not a clink
 * or MySQL-protocol server greeting.
 */
int clink__opening_greeting_len(const uint8_t hdr[5]);

/*
 * Client side: the 20-byte scramble (the login challenge) from a greeting's
 * payload after its first byte (the protocol number 10). Returns 0 or
 * -CLINK_EPROTO when the payload is too short or malformed.
 */
int clink__opening_greeting_scramble(const uint8_t *p, size_t n, uint8_t out[20]);

/*
 * The MySQL ERR packet sent to a MySQL-protocol client while this node does
 * not serve the MySQL protocol. Returns its length (cap >= 128).
 */
size_t clink__opening_mysql_refusal(uint8_t *out, size_t cap, uint8_t seq);

#endif
