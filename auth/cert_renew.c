/*
 * Renewing a node's certificate without its key leaving the node
 * (clink-admin rotate-certs): the node makes a new key and a signing
 * request for the identity its certificate has now; whoever holds the CA
 * signs it for exactly that identity and nothing else. The request's names
 * are only compared, never trusted: the subject and the subjectAltName
 * copied into the new certificate come from the current one, which must
 * verify against the CA.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "auth/cert_int.h"
#include "auth/errbuf.h"

/* A BIO's contents as a NUL-terminated malloc'd string. */
static char *bio_text(BIO *b)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s != NULL) {
        memcpy(s, p, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

static X509 *first_cert_of_text(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, clink__cert_no_password, NULL) : NULL;
    BIO_free(b);
    return x;
}

int clink_cert_renew_request(const char *cert_path, char **key_pem, char **csr_pem, char *err, size_t errlen)
{
    clink__set_err(err, errlen, "%s", "");
    if (cert_path == NULL || key_pem == NULL || csr_pem == NULL) {
        clink__set_err(err, errlen, "a certificate file and two outputs are needed");
        return -CLINK_EINVAL;
    }
    *key_pem = *csr_pem = NULL;
    X509 *cur = NULL;
    EVP_PKEY *key = NULL;
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    BIO *kb = BIO_new(BIO_s_secmem()), *cb = BIO_new(BIO_s_mem());
    int ret = clink__cert_read_file(cert_path, "the current certificate", &cur, err, errlen);
    if (ret < 0) {
        goto out;
    }
    ret = -CLINK_ENOMEM;
    if (req == NULL || exts == NULL || kb == NULL || cb == NULL) {
        goto out;
    }
    /* The same kind of key as now: an RSA identity stays RSA (a peer may pin the algorithm), else EC P-256. */
    const EVP_PKEY *old = X509_get0_pubkey(cur);
    int rsa = old != NULL && EVP_PKEY_get_base_id(old) == EVP_PKEY_RSA;
    if ((ret = clink__cert_gen_key(rsa ? CLINK_KEY_RSA_2048 : CLINK_KEY_EC_P256, &key, err, errlen)) < 0) {
        goto out;
    }
    int idx = X509_get_ext_by_NID(cur, NID_subject_alt_name, -1);
    X509_EXTENSION *san = idx >= 0 ? X509_get_ext(cur, idx) : NULL;
    if (X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_subject_name(req, X509_get_subject_name(cur)) != 1 ||
        X509_REQ_set_pubkey(req, key) != 1 || (san != NULL && sk_X509_EXTENSION_push(exts, san) <= 0) ||
        (san != NULL && X509_REQ_add_extensions(req, exts) != 1) || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
        PEM_write_bio_X509_REQ(cb, req) != 1 || PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot make the signing request");
        goto out;
    }
    if ((*key_pem = bio_text(kb)) == NULL || (*csr_pem = bio_text(cb)) == NULL) {
        if (*key_pem != NULL) {
            OPENSSL_cleanse(*key_pem, strlen(*key_pem));
        }
        free(*key_pem);
        *key_pem = NULL;
        ret = -CLINK_ENOMEM;
        goto out;
    }
    ret = 0;
out:
    sk_X509_EXTENSION_free(exts); /* the extension itself is cur's */
    BIO_free(kb);                 /* secure memory: wiped */
    BIO_free(cb);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    X509_free(cur);
    return ret;
}

/* The usage the current certificate's extendedKeyUsage gives: both (or none said) is the default. */
static enum clink_cert_usage usage_of(X509 *x)
{
    uint32_t f = X509_get_extension_flags(x), xku = X509_get_extended_key_usage(x);
    if ((f & EXFLAG_XKUSAGE) == 0) {
        return CLINK_CERT_USAGE_DEFAULT;
    }
    int server = (xku & XKU_SSL_SERVER) != 0, client = (xku & XKU_SSL_CLIENT) != 0;
    return server && !client ? CLINK_CERT_USAGE_SERVER : client && !server ? CLINK_CERT_USAGE_CLIENT : 0;
}

/* The request's subjectAltName, DER, or NULL when it has none. */
static unsigned char *req_san_der(X509_REQ *req, int *len)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    unsigned char *der = NULL;
    *len = 0;
    for (int i = 0; exts != NULL && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name) {
            *len = i2d_ASN1_OCTET_STRING(X509_EXTENSION_get_data(e), &der);
        }
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return der;
}

/* 0 when the request asks for exactly the subject and subjectAltName cur has. */
static int same_identity(X509_REQ *req, X509 *cur)
{
    if (X509_NAME_cmp(X509_REQ_get_subject_name(req), X509_get_subject_name(cur)) != 0) {
        return -1;
    }
    int rl = 0, cl = 0;
    unsigned char *rd = req_san_der(req, &rl), *cd = NULL;
    int idx = X509_get_ext_by_NID(cur, NID_subject_alt_name, -1);
    if (idx >= 0) {
        cl = i2d_ASN1_OCTET_STRING(X509_EXTENSION_get_data(X509_get_ext(cur, idx)), &cd);
    }
    int same = rl == cl && (rl == 0 || memcmp(rd, cd, (size_t)rl) == 0);
    OPENSSL_free(rd);
    OPENSSL_free(cd);
    return same ? 0 : -1;
}

/* cur verifies against the certificates in trust_file (the CA, or a bundle during a CA rollover). */
static int trusted(X509 *cur, const char *trust_file, char *err, size_t errlen)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = st != NULL && ctx != NULL && X509_STORE_load_file(st, trust_file) == 1 &&
             X509_STORE_CTX_init(ctx, st, cur, NULL) == 1;
    if (ok) {
        /* The issuing CA may be an intermediate named alone in trust_file. */
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
        ok = X509_verify_cert(ctx) == 1;
        if (!ok) {
            clink__set_err(err, errlen, "the node's current certificate does not verify against %s: %s", trust_file,
                           X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        }
    } else {
        clink__set_err(err, errlen, "%s: cannot read the CA certificates", trust_file);
    }
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return ok ? 0 : -1;
}

int clink_cert_sign_renewal(const char *ca_cert_path, const char *ca_key_path, const char *csr_pem,
                            const char *current_pem, const char *trust_file, int64_t valid_for_s, char **cert_pem,
                            char *err, size_t errlen)
{
    clink__set_err(err, errlen, "%s", "");
    if (ca_cert_path == NULL || ca_key_path == NULL || csr_pem == NULL || current_pem == NULL || cert_pem == NULL) {
        clink__set_err(err, errlen, "the CA, the request and the current certificate are needed");
        return -CLINK_EINVAL;
    }
    *cert_pem = NULL;
    BIO *rb = BIO_new_mem_buf(csr_pem, -1);
    X509_REQ *req = rb ? PEM_read_bio_X509_REQ(rb, NULL, NULL, NULL) : NULL;
    X509 *cur = first_cert_of_text(current_pem), *ca = NULL, *x = NULL;
    EVP_PKEY *ca_key = NULL, *pub = req ? X509_REQ_get_pubkey(req) : NULL;
    struct clink__issuer iss = {0};
    ASN1_OCTET_STRING *computed_id = NULL;
    BIO *out = BIO_new(BIO_s_mem());
    int ret = -CLINK_EINVAL;
    ERR_clear_error();
    if (req == NULL || pub == NULL || cur == NULL) {
        clink__set_err(err, errlen, "%s", req == NULL ? "not a PEM signing request" : "not a PEM certificate");
        goto out;
    }
    /* Proof that the node holds the new key: the request is signed with it. */
    if (X509_REQ_verify(req, pub) != 1) {
        clink__set_err(err, errlen, "the signing request's signature does not verify");
        goto out;
    }
    if (trusted(cur, trust_file ? trust_file : ca_cert_path, err, errlen) < 0) {
        ret = -CLINK_EVERIFY;
        goto out;
    }
    if (same_identity(req, cur) < 0) {
        clink__set_err(err, errlen,
                       "the request asks for another subject or other names than the node's "
                       "certificate has: renewal keeps the identity (make a new certificate instead)");
        goto out;
    }
    if ((ret = clink__cert_load_ca(ca_cert_path, ca_key_path, &ca, &ca_key, err, errlen)) < 0 ||
        (ret = clink__cert_issuer_chain(ca_cert_path, &iss.chain, err, errlen)) < 0) {
        goto out;
    }
    iss.cert = ca;
    iss.key = ca_key;
    iss.keyid = X509_get0_subject_key_id(ca);
    if (iss.keyid == NULL && (iss.keyid = computed_id = clink__cert_key_id(ca)) == NULL) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot compute CA key identifier");
        goto out;
    }
    struct clink_cert_opts o = {.common_name = "renewal", /* replaced below by the whole current subject */
                                .key_type = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA ? CLINK_KEY_RSA_2048 : 0,
                                .valid_for_s = valid_for_s,
                                .usage = usage_of(cur)};
    if ((ret = clink__cert_build(&o, KIND_NODE, pub, &iss, &x, err, errlen)) < 0) {
        goto out;
    }
    /* The identity as it is now, whole: every RDN of the subject (accounts' REQUIRE SUBJECT), the SAN as is. */
    int idx = X509_get_ext_by_NID(cur, NID_subject_alt_name, -1);
    if (X509_set_subject_name(x, X509_get_subject_name(cur)) != 1 ||
        (idx >= 0 && X509_add_ext(x, X509_get_ext(cur, idx), -1) != 1) || X509_sign(x, ca_key, EVP_sha256()) <= 0) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot sign the certificate");
        goto out;
    }
    int ok = out != NULL && PEM_write_bio_X509(out, x) == 1;
    for (int i = 0; ok && i < sk_X509_num(iss.chain); i++) {
        ok = PEM_write_bio_X509(out, sk_X509_value(iss.chain, i)) == 1;
    }
    if (!ok || (*cert_pem = bio_text(out)) == NULL) {
        ret = -CLINK_ENOMEM;
        goto out;
    }
    ret = 0;
out:
    ERR_clear_error();
    BIO_free(out);
    BIO_free(rb);
    X509_free(x);
    sk_X509_pop_free(iss.chain, X509_free);
    ASN1_OCTET_STRING_free(computed_id);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    EVP_PKEY_free(pub);
    X509_free(cur);
    X509_REQ_free(req);
    return ret;
}
