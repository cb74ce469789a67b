/*
 * A node's client-side TLS 1.3 session tickets, per peer identity.
 *
 * Each ticket a server sends is kept under the identity it was issued to
 * (verification level, expected name, port) and handed out once: TLS 1.3
 * tickets are single use (RFC 8446 appendix C.4; OpenSSL sends two per full
 * handshake for that reason). Expired or non-resumable tickets are dropped
 * when met. Taken under a mutex once per dial, never on the data path.
 */
#ifndef CLINK_TRANSPORT_SESSIONS_H
#define CLINK_TRANSPORT_SESSIONS_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define CLINK_SESSIONS_PER_PEER 8
#define CLINK_SESSION_KEY_MAX   300

struct clink__session_peer;

struct clink__sessions {
    pthread_mutex_t mu;
    struct clink__session_peer *peers;
    size_t npeers, cap;
    uint64_t stored, taken, dropped; /* dropped: expired, not resumable, or over the per-peer cap */
    uint64_t gen;                    /* bumped by clear: tickets of an older generation are not kept */
};

void clink__sessions_init(struct clink__sessions *s);
void clink__sessions_free(struct clink__sessions *s);
/* Forget every ticket (e.g. our own certificate changed: a resumed session would present the old one). */
void clink__sessions_clear(struct clink__sessions *s);

/*
 * Keep sess (the caller's reference moves in) under key, unless gen (read
 * when the connection chose its TLS context) is older than the cache's: a
 * ticket of a connection that started before a clear is dropped. The
 * oldest goes when the peer has too many.
 */
void clink__sessions_put(struct clink__sessions *s, const char *key, SSL_SESSION *sess, uint64_t gen);

/* The current generation. */
uint64_t clink__sessions_gen(struct clink__sessions *s);

/* A usable ticket for key, removed from the cache (the caller owns the reference), or NULL. */
SSL_SESSION *clink__sessions_take(struct clink__sessions *s, const char *key);

/* Tickets held for key (tests). */
size_t clink__sessions_count(struct clink__sessions *s, const char *key);

#endif
