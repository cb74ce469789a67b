/* Internal to auth/: how a TLS context hands its tickets to the keys. */
#ifndef CLINK_AUTH_TICKET_KEYS_H
#define CLINK_AUTH_TICKET_KEYS_H

#include <openssl/ssl.h>

#include "clink/auth.h"

/* Make k seal and open server's tickets; server holds a reference to k until it is freed. Returns 0 or
 * -CLINK_EINTERNAL. */
int clink__ticket_keys_attach(struct clink_ticket_keys *k, SSL_CTX *server);

/*
 * The ticket key callback attach installs (SSL_CTX_set_tlsext_ticket_key_evp_cb(3)): enc 1 seals under the first
 * key; enc 0 looks up the key named in a ticket a client sent and returns 2 (open, send a fresh ticket), 0 (unknown
 * key: full handshake) or -1. Exposed for fuzz/fuzz_ticket_keys.c.
 */
int clink__ticket_keys_cb(SSL *ssl, unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX *cctx,
                          EVP_MAC_CTX *hctx, int enc);

#endif
