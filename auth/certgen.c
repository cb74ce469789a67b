/*
 * Certificate generation for tools, tests and demos: a self-signed CA,
 * intermediate CAs and node certificates that pass OpenSSL 3.0 verification
 * with X509_V_FLAG_X509_STRICT (RFC 5280 profile checks).
 *
 * Everything is built and serialised in memory first (cert_build.c), so an
 * OpenSSL failure never touches the file system; only then are the two
 * files written (cert_write.c), and a failure while writing removes whatever
 * this call wrote. This file is the API: it checks the options, loads the
 * issuing CA and its chain, and runs those steps in that order. Revocation
 * lists are in crl.c.
 */
#include "clink/auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/cert_int.h"
#include "auth/errbuf.h"

/*
 * Append the oldest queued OpenSSL error: it is the root cause, later entries
 * are the callers' wrappers. The queue is drained so that it does not leak
 * into the caller's next OpenSSL call.
 */
void clink__cert_append_ssl_err(char *err, size_t errlen)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    size_t len;

    ERR_clear_error();
    if (err == NULL || errlen == 0 || e == 0) {
        return;
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    len = strlen(err);
    if (len + 1 < errlen) {
        snprintf(err + len, errlen - len, " (%s)", buf);
    }
}

CLINK_MUST_USE int clink__cert_ssl_fail(char *err, size_t errlen, int code, const char *what)
{
    clink__set_err(err, errlen, "%s", what);
    clink__cert_append_ssl_err(err, errlen);
    return code;
}

/* An encrypted CA key must fail, not block on a terminal prompt (OpenSSL's default callback reads the tty). */
int clink__cert_read_file(const char *path, const char *what, X509 **out, char *err, size_t errlen)
{
    FILE *in = fopen(path, "re");
    if (in == NULL) {
        clink__set_err(err, errlen, "%s: cannot open %s: %s", path, what, clink_strerror(-errno));
        return -CLINK_ECONFIG;
    }
    *out = PEM_read_X509(in, NULL, clink__cert_no_password, NULL);
    fclose(in);
    if (*out == NULL) {
        ERR_clear_error();
        clink__set_err(err, errlen, "%s: no PEM certificate", path);
        return -CLINK_ECONFIG;
    }
    return 0;
}

int clink__cert_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static CLINK_MUST_USE int check_opts(const struct clink_cert_opts *opts, char *err, size_t errlen)
{
    if (opts == NULL || opts->common_name == NULL || opts->common_name[0] == '\0') {
        clink__set_err(err, errlen, "common_name is required");
        return -CLINK_EINVAL;
    }
    if (opts->key_type != CLINK_KEY_DEFAULT && opts->key_type != CLINK_KEY_EC_P256 &&
        opts->key_type != CLINK_KEY_RSA_2048) {
        clink__set_err(err, errlen, "unknown key_type %d", (int)opts->key_type);
        return -CLINK_EINVAL;
    }
    if (opts->valid_for_s < 0) {
        clink__set_err(err, errlen, "valid_for_s is negative (%lld)", (long long)opts->valid_for_s);
        return -CLINK_EINVAL;
    }
    if (opts->usage != CLINK_CERT_USAGE_DEFAULT && opts->usage != CLINK_CERT_USAGE_SERVER &&
        opts->usage != CLINK_CERT_USAGE_CLIENT) {
        clink__set_err(err, errlen, "unknown usage %d", (int)opts->usage);
        return -CLINK_EINVAL;
    }
    return 0;
}

/* An EKU on a CA would constrain every certificate below it in OpenSSL; usage is for node certificates. */
static CLINK_MUST_USE int check_ca_opts(const struct clink_cert_opts *opts, char *err, size_t errlen)
{
    int ret = check_opts(opts, err, errlen);

    if (ret == 0 && opts->usage != CLINK_CERT_USAGE_DEFAULT) {
        clink__set_err(err, errlen, "usage applies to node certificates only, not to a CA");
        ret = -CLINK_EINVAL;
    }
    return ret;
}

/* Generate a key and certificate for opts, issued by iss (or self-signed), and write the pair. */
static CLINK_MUST_USE int make_pair(const struct clink_cert_opts *opts, enum clink__cert_kind kind,
                                    const struct clink__issuer *iss, const char *cert_path, const char *key_path,
                                    int overwrite, char *err, size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    BIO *cert_pem = NULL;
    BIO *key_pem = NULL;
    int ret;

    if ((ret = clink__cert_gen_key(opts->key_type, &key, err, errlen)) < 0) {
        goto out;
    }
    if ((ret = clink__cert_build(opts, kind, key, iss, &x, err, errlen)) < 0) {
        goto out;
    }
    if ((ret = clink__cert_to_pem(x, iss->chain, key, &cert_pem, &key_pem, err, errlen)) < 0) {
        goto out;
    }
    ret = clink__cert_write_pair(cert_pem, key_pem, cert_path, key_path, overwrite, err, errlen);
out:
    BIO_free(key_pem);
    BIO_free(cert_pem);
    X509_free(x);
    EVP_PKEY_free(key);
    return ret;
}

static CLINK_MUST_USE int check_paths(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    if (cert_path == NULL || key_path == NULL || cert_path[0] == '\0' || key_path[0] == '\0') {
        clink__set_err(err, errlen, "certificate and key paths are required");
        return -CLINK_EINVAL;
    }
    if (strcmp(cert_path, key_path) == 0) {
        clink__set_err(err, errlen, "certificate and key paths are the same file '%s'", cert_path);
        return -CLINK_EINVAL;
    }
    return 0;
}

int clink_cert_make_ca(const struct clink_cert_opts *opts, const char *cert_path, const char *key_path, int overwrite,
                       char *err, size_t errlen)
{
    struct clink__issuer self = {0};
    int ret;

    clink__set_err(err, errlen, "%s", "");
    ERR_clear_error();
    if ((ret = check_ca_opts(opts, err, errlen)) < 0 || (ret = check_paths(cert_path, key_path, err, errlen)) < 0) {
        return ret;
    }
    return make_pair(opts, KIND_ROOT, &self, cert_path, key_path, overwrite, err, errlen);
}

CLINK_MUST_USE int clink__cert_load_ca(const char *cert_path, const char *key_path, X509 **cert, EVP_PKEY **key,
                                       char *err, size_t errlen)
{
    FILE *in = NULL;
    int ret = -CLINK_ECONFIG;

    in = fopen(cert_path, "re");
    if (in == NULL) {
        clink__set_err(err, errlen, "%s: cannot open CA certificate: %s", cert_path, clink_strerror(-errno));
        goto out;
    }
    *cert = PEM_read_X509(in, NULL, clink__cert_no_password, NULL);
    if (*cert == NULL) {
        clink__set_err(err, errlen, "%s: no PEM certificate", cert_path);
        clink__cert_append_ssl_err(err, errlen);
        goto out;
    }
    fclose(in);
    in = fopen(key_path, "re");
    if (in == NULL) {
        clink__set_err(err, errlen, "%s: cannot open CA key: %s", key_path, clink_strerror(-errno));
        goto out;
    }
    *key = PEM_read_PrivateKey(in, NULL, clink__cert_no_password, NULL);
    if (*key == NULL) {
        clink__set_err(err, errlen, "%s: no unencrypted PEM private key", key_path);
        clink__cert_append_ssl_err(err, errlen);
        goto out;
    }
    /* EXFLAG_CA is set only by basicConstraints CA:TRUE; X509_check_ca would also accept v1 roots and KU-only certs. */
    if ((X509_get_extension_flags(*cert) & EXFLAG_CA) == 0) {
        clink__set_err(err, errlen, "%s: not a CA certificate (no basicConstraints CA:TRUE)", cert_path);
        goto out;
    }
    if ((X509_get_extension_flags(*cert) & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(*cert) & KU_KEY_CERT_SIGN) == 0) {
        clink__set_err(err, errlen, "%s: CA key usage does not allow certificate signing", cert_path);
        goto out;
    }
    if (X509_check_private_key(*cert, *key) != 1) {
        clink__set_err(err, errlen, "%s: CA key does not match CA certificate %s", key_path, cert_path);
        ERR_clear_error();
        goto out;
    }
    ret = 0;
out:
    if (in != NULL) {
        fclose(in);
    }
    return ret;
}

/*
 * The certificates of the issuer's file that a peer trusting only the root
 * needs to see: the issuer itself when it is an intermediate, and the
 * intermediates right after it, up to the first self-signed certificate. A
 * root is never included: a peer must hold its own copy of a root, so
 * sending one proves nothing. A root CA's file therefore adds nothing.
 */
CLINK_MUST_USE int clink__cert_issuer_chain(const char *path, STACK_OF(X509) * *out, char *err, size_t errlen)
{
    BIO *in = BIO_new_file(path, "r");
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *x = NULL;
    int ret = -CLINK_ENOMEM;

    if (in == NULL) {
        clink__set_err(err, errlen, "%s: cannot read CA certificate chain", path);
        ret = -CLINK_ECONFIG;
        goto out;
    }
    if (chain == NULL) {
        clink__set_err(err, errlen, "out of memory");
        goto out;
    }
    while ((x = PEM_read_bio_X509(in, NULL, clink__cert_no_password, NULL)) != NULL) {
        if ((X509_get_extension_flags(x) & EXFLAG_SS) != 0) {
            X509_free(x);
            break;
        }
        if (sk_X509_push(chain, x) <= 0) {
            X509_free(x);
            goto out;
        }
    }
    ERR_clear_error(); /* the loop ends on "no start line" */
    *out = chain;
    chain = NULL;
    ret = 0;
out:
    sk_X509_pop_free(chain, X509_free);
    BIO_free(in);
    return ret;
}

/* A certificate issued by the CA in ca_cert_path/ca_key_path: a node certificate or an intermediate. */
static CLINK_MUST_USE int make_issued(const struct clink_cert_opts *opts, enum clink__cert_kind kind,
                                      const char *ca_cert_path, const char *ca_key_path, const char *cert_path,
                                      const char *key_path, int overwrite, char *err, size_t errlen)
{
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    ASN1_OCTET_STRING *computed_id = NULL;
    struct clink__issuer iss = {0};
    int ret;

    clink__set_err(err, errlen, "%s", "");
    ERR_clear_error();
    ret = kind == KIND_NODE ? check_opts(opts, err, errlen) : check_ca_opts(opts, err, errlen);
    if (ret < 0 || (ret = check_paths(cert_path, key_path, err, errlen)) < 0) {
        goto out;
    }
    if (ca_cert_path == NULL || ca_key_path == NULL) {
        clink__set_err(err, errlen, "CA certificate and key paths are required");
        ret = -CLINK_EINVAL;
        goto out;
    }
    if ((ret = clink__cert_load_ca(ca_cert_path, ca_key_path, &ca, &ca_key, err, errlen)) < 0) {
        goto out;
    }
    /* X509_get_pathlen: -1 when unlimited. OpenSSL would refuse the new CA's chain at the first handshake. */
    if (kind == KIND_INTERMEDIATE && X509_get_pathlen(ca) == 0) {
        clink__set_err(err, errlen, "%s: this CA has pathlen 0 and may not issue CA certificates", ca_cert_path);
        ret = -CLINK_ECONFIG;
        goto out;
    }
    if ((ret = clink__cert_issuer_chain(ca_cert_path, &iss.chain, err, errlen)) < 0) {
        goto out;
    }
    iss.cert = ca;
    iss.key = ca_key;
    iss.keyid = X509_get0_subject_key_id(ca);
    if (iss.keyid == NULL) {
        /* A CA without an SKI (RFC 5280 requires one) still gets a usable AKI: the same hash its SKI would hold. */
        computed_id = clink__cert_key_id(ca);
        if (computed_id == NULL) {
            ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot compute CA key identifier");
            goto out;
        }
        iss.keyid = computed_id;
    }
    ret = make_pair(opts, kind, &iss, cert_path, key_path, overwrite, err, errlen);
out:
    sk_X509_pop_free(iss.chain, X509_free);
    ASN1_OCTET_STRING_free(computed_id);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return ret;
}

int clink_cert_make_node(const struct clink_cert_opts *opts, const char *ca_cert_path, const char *ca_key_path,
                         const char *cert_path, const char *key_path, int overwrite, char *err, size_t errlen)
{
    return make_issued(opts, KIND_NODE, ca_cert_path, ca_key_path, cert_path, key_path, overwrite, err, errlen);
}

int clink_cert_make_intermediate(const struct clink_cert_opts *opts, const char *parent_cert_path,
                                 const char *parent_key_path, const char *cert_path, const char *key_path,
                                 int overwrite, char *err, size_t errlen)
{
    return make_issued(opts, KIND_INTERMEDIATE, parent_cert_path, parent_key_path, cert_path, key_path, overwrite, err,
                       errlen);
}
