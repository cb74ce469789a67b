/* Internal: what the transport tells a TLS context's callbacks about one SSL. */
#ifndef CLINK_AUTH_TLS_CTX_H
#define CLINK_AUTH_TLS_CTX_H

#include <openssl/ssl.h>
#include <stdint.h>

/*
 * A server SSL that the transport marks with this app data serves another
 * protocol than clink's frames on the node's port: the ClientHello hook does
 * not refuse it for offering no ALPN, and ALPN selection leaves it alone
 * (native clients must offer clink's).
 */
extern char clink__ssl_other_marker[];
#define CLINK__SSL_OTHER ((void *)clink__ssl_other_marker)

/* An X.509 name as RFC 2253 text into dst ("" when it cannot be printed). */
void clink__name_rfc2253(const X509_NAME *name, char *dst, size_t cap);
/* A certificate's serial number as hex into dst ("" when it cannot be printed). */
void clink__cert_serial_hex(const X509 *x, char *dst, size_t cap);
/*
 * A certificate named by its CN only (no DNS or IP subjectAltName): returns
 * 1 with the CN in cn (UTF-8, cut to cap), else 0. Peers that dial it by
 * another name are told what to set.
 */
int clink__cert_cn_only(const X509 *x, char *cn, size_t cap);
/* An ASN.1 time as unix seconds; 0 when t is NULL or unreadable. */
int64_t clink__asn1_unix(const ASN1_TIME *t);

#endif
