/* Internal to auth/: how a TLS context hands its tickets to the keys. */
#ifndef CLINK_AUTH_TICKET_KEYS_H
#define CLINK_AUTH_TICKET_KEYS_H

#include <openssl/ssl.h>

#include "clink/auth.h"

/* Make k seal and open server's tickets; server holds a reference to k until it is freed. Returns 0 or
 * -CLINK_EINTERNAL. */
int clink__ticket_keys_attach(struct clink_ticket_keys *k, SSL_CTX *server);

#endif
