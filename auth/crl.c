/*
 * Certificate revocation lists, signed by a CA's key and written beside the
 * target, then renamed into place. Apart from certgen.c because a CRL is an
 * object with its own profile (RFC 5280 section 5); it shares only the CA
 * loading and the key identifier with the certificates.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/cert_int.h"
#include "auth/errbuf.h"

static CLINK_MUST_USE int revoke_one(X509_CRL *crl, const char *path, time_t now, char *err, size_t errlen)
{
    X509 *x = NULL;
    int rd = clink__cert_read_file(path, "certificate to revoke", &x, err, errlen);
    if (rd < 0) {
        return rd;
    }
    int ret = -CLINK_ENOMEM;
    X509_REVOKED *r = X509_REVOKED_new();
    ASN1_TIME *when = ASN1_TIME_set(NULL, now);
    if (r != NULL && when != NULL && X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(x)) == 1 &&
        X509_REVOKED_set_revocationDate(r, when) == 1 && X509_CRL_add0_revoked(crl, r) == 1) {
        r = NULL; /* owned by the CRL now */
        ret = 0;
    }
    X509_REVOKED_free(r);
    ASN1_TIME_free(when);
    X509_free(x);
    return ret;
}

int clink_cert_make_crl(const char *ca_cert_path, const char *ca_key_path, const char *const *revoked,
                        int64_t valid_for_s, const char *crl_path, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (ca_cert_path == NULL || ca_key_path == NULL || crl_path == NULL || valid_for_s < 0) {
        clink__set_err(err, errlen, "CA certificate, CA key and CRL path are required");
        return -CLINK_EINVAL;
    }
    ERR_clear_error();
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    X509_CRL *crl = NULL;
    ASN1_TIME *t = NULL;
    ASN1_OCTET_STRING *kid = NULL;
    AUTHORITY_KEYID *akid = NULL;
    FILE *f = NULL;
    char tmp[4096];
    int ret = clink__cert_load_ca(ca_cert_path, ca_key_path, &ca, &key, err, errlen);
    if (ret < 0) {
        goto out;
    }
    ret = -CLINK_ENOMEM;
    time_t now = time(NULL);
    crl = X509_CRL_new();
    t = ASN1_TIME_set(NULL, now);
    if (crl == NULL || t == NULL || X509_CRL_set_version(crl, 1) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 || X509_CRL_set1_lastUpdate(crl, t) != 1 ||
        ASN1_TIME_set(t, now + (time_t)(valid_for_s ? valid_for_s : 30 * 86400)) == NULL ||
        X509_CRL_set1_nextUpdate(crl, t) != 1) {
        goto out;
    }
    /* RFC 5280 5.2.1: the authority key identifier ties the CRL to the CA's key. */
    kid = clink__cert_key_id(ca);
    akid = AUTHORITY_KEYID_new();
    if (kid == NULL || akid == NULL) {
        goto out;
    }
    akid->keyid = kid;
    kid = NULL;
    if (X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) != 1) {
        goto out;
    }
    for (size_t i = 0; revoked != NULL && revoked[i] != NULL; i++) {
        if ((ret = revoke_one(crl, revoked[i], now, err, errlen)) < 0) {
            goto out;
        }
    }
    ret = -CLINK_ENOMEM;
    if (X509_CRL_sort(crl) != 1 || X509_CRL_sign(crl, key, EVP_sha256()) == 0) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot sign the CRL");
        goto out;
    }
    /* Write beside, then rename: readers never see half a CRL. */
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", crl_path) >= (int)sizeof(tmp) || (f = fopen(tmp, "we")) == NULL) {
        clink__set_err(err, errlen, "%s: cannot write: %s", crl_path, clink_strerror(-errno));
        ret = -CLINK_ECONFIG;
        goto out;
    }
    if (PEM_write_X509_CRL(f, crl) != 1 || fclose(f) != 0 || rename(tmp, crl_path) != 0) {
        f = NULL;
        unlink(tmp);
        clink__set_err(err, errlen, "%s: cannot write: %s", crl_path, clink_strerror(-errno));
        ret = -CLINK_ECONFIG;
        goto out;
    }
    f = NULL;
    ret = 0;
out:
    if (f != NULL) {
        fclose(f);
        unlink(tmp);
    }
    AUTHORITY_KEYID_free(akid);
    ASN1_OCTET_STRING_free(kid);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    EVP_PKEY_free(key);
    X509_free(ca);
    ERR_clear_error();
    return ret;
}
