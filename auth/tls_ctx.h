/* Internal: what the transport tells a TLS context's callbacks about one SSL. */
#ifndef CLINK_AUTH_TLS_CTX_H
#define CLINK_AUTH_TLS_CTX_H

#include <openssl/ssl.h>
#include <stdint.h>

/*
 * A MySQL-protocol client's SSL (transport/mysql.c) carries this as its app
 * data: such clients offer no ALPN, and the server's ClientHello hook must
 * not refuse them for it (native clients must offer clink's).
 */
extern char clink__ssl_mysql_marker[];
#define CLINK__SSL_MYSQL ((void *)clink__ssl_mysql_marker)

/* An X.509 name as RFC 2253 text into dst ("" when it cannot be printed). */
void clink__name_rfc2253(const X509_NAME *name, char *dst, size_t cap);
/* A certificate's serial number as hex into dst ("" when it cannot be printed). */
void clink__cert_serial_hex(const X509 *x, char *dst, size_t cap);
/* An ASN.1 time as unix seconds; 0 when t is NULL or unreadable. */
int64_t clink__asn1_unix(const ASN1_TIME *t);

#endif
