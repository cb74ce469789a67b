/*
 * Internal to auth/: what the certificate files share. certgen.c holds the
 * API (options, the issuing CA, the order of the steps); cert_build.c builds,
 * signs and encodes a key and certificate in memory; cert_write.c writes the
 * pair to its files; crl.c makes revocation lists. Nothing outside auth/
 * includes this (tests and fuzz targets aside).
 */
#ifndef CLINK_AUTH_CERT_INT_H
#define CLINK_AUTH_CERT_INT_H

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

#include "clink/auth.h"

enum clink__cert_kind {
    KIND_ROOT,         /* self-signed CA */
    KIND_INTERMEDIATE, /* CA with pathlen 0, issued by another CA */
    KIND_NODE,         /* TLS leaf */
};

/* What an issued certificate needs from its CA. All NULL for a self-signed CA, which uses its own key and SKI. */
struct clink__issuer {
    X509 *cert;
    EVP_PKEY *key;
    const ASN1_OCTET_STRING *keyid;
    /* Written after the new certificate in its file: the issuer's intermediates, never a root. NULL: none. */
    STACK_OF(X509) * chain;
};

/* ---- certgen.c ---- */

/* Append the oldest queued OpenSSL error to err, and drain the queue. */
void clink__cert_append_ssl_err(char *err, size_t errlen);
/* what, and the OpenSSL error, into err; returns code. */
CLINK_MUST_USE int clink__cert_ssl_fail(char *err, size_t errlen, int code, const char *what);
/* The first PEM certificate of path into *out (caller frees); else -CLINK_ECONFIG with "path: cannot open what" or "no
 * PEM certificate". */
CLINK_MUST_USE int clink__cert_read_file(const char *path, const char *what, X509 **out, char *err, size_t errlen);
/* A pem_password_cb that refuses: an encrypted key fails instead of prompting. */
int clink__cert_no_password(char *buf, int size, int rwflag, void *u);
/* The CA certificate and its unencrypted key, checked as an issuer (CA:TRUE, keyCertSign, matching key). */
CLINK_MUST_USE int clink__cert_load_ca(const char *cert_path, const char *key_path, X509 **cert, EVP_PKEY **key,
                                       char *err, size_t errlen);

/*
 * The certificates of the issuer's file that go after an issued
 * certificate: the issuer itself when it is an intermediate, and the
 * intermediates after it, never a root. *out: caller frees.
 */
CLINK_MUST_USE int clink__cert_issuer_chain(const char *path, STACK_OF(X509) * *out, char *err, size_t errlen);

/* ---- cert_build.c ---- */

/* A new key, RSA 2048 or (the default) EC P-256, into *out (caller frees). */
CLINK_MUST_USE int clink__cert_gen_key(enum clink_key_type type, EVP_PKEY **out, char *err, size_t errlen);
/* The key identifier of x's public key (caller frees), or NULL. */
ASN1_OCTET_STRING *clink__cert_key_id(const X509 *x);
/* The certificate for key, self-signed (kind KIND_ROOT) or issued by iss, into *out (caller frees). */
CLINK_MUST_USE int clink__cert_build(const struct clink_cert_opts *opts, enum clink__cert_kind kind, EVP_PKEY *key,
                                     const struct clink__issuer *iss, X509 **out, char *err, size_t errlen);
/* x, then chain, and key as PEM in two memory BIOs (caller frees both, also on failure). */
CLINK_MUST_USE int clink__cert_to_pem(X509 *x, STACK_OF(X509) * chain, EVP_PKEY *key, BIO **cert_pem, BIO **key_pem,
                                      char *err, size_t errlen);

/* ---- cert_write.c ---- */

/* The two PEM buffers into their files, both or neither. 0, or a negative CLINK_E* or -errno with the reason in err. */
CLINK_MUST_USE int clink__cert_write_pair(BIO *cert_pem, BIO *key_pem, const char *cert_path, const char *key_path,
                                          int overwrite, char *err, size_t errlen);

#endif
