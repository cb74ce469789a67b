/*
 * One connection's TLS state machine over a custom BIO: bytes in, bytes out.
 * It knows no sockets and no io_uring: the worker appends received
 * ciphertext to `in` and sends whatever appears in `out`.
 *
 * During the handshake the BIO records how many bytes OpenSSL asked for when
 * `in` ran dry (`want`), so the worker can read exactly that much and never
 * past a record boundary: the kTLS hand-off depends on it (docs/ktls.md).
 * Records are counted per direction from the moment each direction switches
 * to the application traffic keys (that side's Finished), for the same reason.
 */
#ifndef CLINK_TRANSPORT_TLS_H
#define CLINK_TRANSPORT_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "clink/transport.h"
#include "common/bytes.h"
#include "transport/sessions.h"

/* What a session's peer chain was verified under (see "trust epochs" in tls.c). */
struct clink__tls_mark {
    uint8_t epoch[16];
    int64_t until; /* seconds since the epoch: the first lapse of a certificate or CRL in it */
};

struct clink__tls {
    SSL *ssl;
    struct clink__bytes *in;  /* ciphertext received, not yet consumed by OpenSSL */
    struct clink__bytes *out; /* ciphertext produced, not yet sent */
    size_t want;              /* bytes OpenSSL last asked for when `in` was empty */
    int is_server;
    int app_in, app_out;      /* direction runs under application keys */
    uint64_t rec_in, rec_out; /* records since that switch */
    int orderly;              /* close_notify exchanged: the session may be resumed */
    /*
     * The first certificate verification failure, as the verify callback saw
     * it: which certificate (depth in the peer's chain, 0 = the peer's own,
     * and its subject), so that the reason names it. 0: none.
     */
    int verify_err;
    int verify_depth;
    char verify_subject[128];
    char verify_cn[72];   /* a name mismatch with a certificate named by its CN only: that CN, to say what to set */
    int verify_cn_unused; /* ... and the context never takes the CN as a name (strict) */
    char err[256];
    /* client: what the peer must prove (also when a ticket resumes), and where its tickets go */
    int verify;
    char expected[256];
    struct clink__sessions *sessions;
    char sess_key[CLINK_SESSION_KEY_MAX];
    int offered;       /* a ticket was offered */
    uint64_t sess_gen; /* the ticket cache's generation when this connection chose its context */
    int have_mark;     /* client: the peer chain was verified under `mark` (copied to the tickets it gets) */
    /* application traffic secrets, kept until kTLS takes the direction over (clink__tls_wipe_secrets) */
    uint8_t secret_in[48], secret_out[48];
    size_t secret_in_len, secret_out_len;
    int key_updated; /* a KeyUpdate went by: the secrets above are stale */
    int other;       /* server side of another protocol than clink's frames: clink's ALPN is not required */
    struct clink__tls_mark mark;
};

/*
 * A trust mark read back from a session's ticket app data (data, len: as
 * SSL_SESSION_get0_ticket_appdata gives them). Returns 1, with [out] *out,
 * when it is a mark made under ctx's epoch that has not lapsed; else 0.
 */
int clink__tls_mark_read(SSL_CTX *ctx, const void *data, size_t len, struct clink__tls_mark *out);

/*
 * Server: this SSL serves another protocol than clink's frames on the node's
 * own port (no ALPN expected, a client certificate checked if sent but not
 * asked for), its sessions kept under sid_ctx, apart from native ones.
 * 0 or negative.
 */
int clink__tls_serve_other(struct clink__tls *t, const char *sid_ctx);

/* Install the new-ticket hooks and the trust epoch on an SSL_CTX (idempotent). */
void clink__tls_prepare_ctx(SSL_CTX *ctx);

/*
 * Install the key-log hook that keeps each connection's application
 * traffic secrets for a kTLS hand-over (idempotent; before the context is
 * shared). Only where kTLS may be used (the node found the kernel's tls
 * ULP): OpenSSL pays for formatting the key log on every handshake. Without
 * it the secrets stay empty and a hand-over falls back to user-space TLS.
 */
void clink__tls_keep_secrets(SSL_CTX *ctx);

/* verify (client side): 0 encryption only, 1 chain, 2 chain and expected_name. */
/* expected_name: DNS name or IP literal the peer's certificate must match (client side). */
int clink__tls_init(struct clink__tls *t, SSL_CTX *ctx, int is_server, const char *expected_name, int verify,
                    struct clink__bytes *in, struct clink__bytes *out);

/*
 * Client: resume with a ticket for key from sessions if there is one (used
 * once), and keep the tickets this server sends under key. Call after
 * clink__tls_init, before the first handshake step.
 */
void clink__tls_use_sessions(struct clink__tls *t, struct clink__sessions *sessions, const char *key, uint64_t gen);

/*
 * Returns 1 done, 0 needs more input, or a negative error. t->err says why in
 * words, e.g. "TLS handshake: certificate verify failed: certificate has
 * expired (depth 0, CN=leaf)" or "TLS read: peer rejected our certificate:
 * certificate revoked".
 */
int clink__tls_handshake(struct clink__tls *t);

/*
 * Decrypt into dst. Returns bytes (> 0), 0 if more input is needed,
 * -CLINK_ECLOSED on close_notify, or a negative error.
 */
int clink__tls_read(struct clink__tls *t, uint8_t *dst, size_t cap);

/*
 * This session's channel binding (RFC 9266 tls-exporter): CLINK_BINDING_LEN
 * bytes of the exporter with label "EXPORTER-Channel-Binding" and no
 * context, once the handshake is done. Over TLS 1.2 only with the extended
 * master secret (RFC 7627): without it, a man in the middle can give two
 * sessions the same value (the triple handshake). 0 or -CLINK_ETLS.
 */
int clink__tls_channel_binding(struct clink__tls *t, uint8_t *out);

/* Encrypt src into out. Returns 0 or a negative error. */
int clink__tls_write(struct clink__tls *t, const void *src, size_t n);

/* Queue close_notify into out. */
void clink__tls_close_notify(struct clink__tls *t);

void clink__tls_status(const struct clink__tls *t, struct clink_conn_status *st);

void clink__tls_free(struct clink__tls *t);

/* ---- kTLS hand-over (transport/ktls.h) ---- */
struct clink__ktls_info;
/* One direction's kernel crypto info: its secret, the suite, records so far under it. 0 or -CLINK_EINVAL. */
int clink__tls_ktls_info(struct clink__tls *t, int tx, struct clink__ktls_info *out);
/* 1 if OpenSSL holds no received bytes (a partial record, a record not yet read) and `in` is empty. */
int clink__tls_rx_idle(const struct clink__tls *t);
void clink__tls_wipe_secrets(struct clink__tls *t);
/* Free OpenSSL's (empty) record buffers: the kernel has the record layer now. */
void clink__tls_drop_buffers(struct clink__tls *t);

#endif
