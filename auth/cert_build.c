/*
 * A key and its certificate, built, signed and encoded as PEM in memory, to
 * the RFC 5280 profile: serial, validity, basicConstraints, key usages, key
 * identifiers and subjectAltName. Apart from certgen.c because none of it
 * touches a file: the API decides what to build and where it goes.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/cert_int.h"
#include "auth/errbuf.h"

#define DEFAULT_NOT_BEFORE_OFFSET_S (-60)
#define DEFAULT_VALID_FOR_S         ((int64_t)365 * 24 * 60 * 60)
/* 9999-12-31T23:59:59Z: the last instant a GeneralizedTime (RFC 5280 4.1.2.5.2) can carry. */
#define MAX_CERT_TIME ((int64_t)253402300799)
#define SERIAL_BYTES  16

CLINK_MUST_USE int clink__cert_gen_key(enum clink_key_type type, EVP_PKEY **out, char *err, size_t errlen)
{
    if (type == CLINK_KEY_RSA_2048) {
        *out = EVP_RSA_gen(2048);
    } else {
        *out = EVP_EC_gen("P-256");
    }
    if (*out == NULL) {
        return clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "key generation failed");
    }
    return 0;
}

static CLINK_MUST_USE int set_serial(X509 *x)
{
    unsigned char buf[SERIAL_BYTES];
    BIGNUM *bn = NULL;
    int ok = 0;

    if (RAND_bytes(buf, sizeof(buf)) != 1) {
        goto out;
    }
    /*
     * Top bit cleared: DER INTEGER is signed and RFC 5280 4.1.2.2 wants a
     * positive serial of at most 20 octets. The next bit set keeps it
     * non-zero and at a fixed 16-octet length.
     */
    buf[0] = (unsigned char)((buf[0] & 0x7f) | 0x40);
    bn = BN_bin2bn(buf, sizeof(buf), NULL);
    if (bn == NULL) {
        goto out;
    }
    ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
out:
    BN_free(bn);
    return ok ? 0 : -CLINK_EINTERNAL;
}

static CLINK_MUST_USE int set_validity(X509 *x, const struct clink_cert_opts *opts, char *err, size_t errlen)
{
    int64_t offset = opts->not_before_offset_s != 0 ? opts->not_before_offset_s : DEFAULT_NOT_BEFORE_OFFSET_S;
    int64_t valid = opts->valid_for_s != 0 ? opts->valid_for_s : DEFAULT_VALID_FOR_S;
    int64_t now = (int64_t)time(NULL);
    int64_t nb;
    int64_t na;

    if (__builtin_add_overflow(now, offset, &nb) || __builtin_add_overflow(nb, valid, &na) || nb < 0 ||
        na > MAX_CERT_TIME) {
        clink__set_err(err, errlen, "validity period out of range (not_before_offset_s %lld, valid_for_s %lld)",
                       (long long)opts->not_before_offset_s, (long long)opts->valid_for_s);
        return -CLINK_EINVAL;
    }
    if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL) {
        return clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot set validity");
    }
    return 0;
}

/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING, what OpenSSL's "hash" computes too. */
ASN1_OCTET_STRING *clink__cert_key_id(const X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ASN1_OCTET_STRING *id;

    if (X509_pubkey_digest(x, EVP_sha1(), md, &len) != 1) {
        return NULL;
    }
    id = ASN1_OCTET_STRING_new();
    if (id != NULL && ASN1_OCTET_STRING_set(id, md, (int)len) != 1) {
        ASN1_OCTET_STRING_free(id);
        id = NULL;
    }
    return id;
}

/* pathlen < 0: no pathLenConstraint. */
static CLINK_MUST_USE int add_basic_constraints(X509 *x, int is_ca, long pathlen)
{
    BASIC_CONSTRAINTS *bc = BASIC_CONSTRAINTS_new();
    int ok;

    if (bc == NULL) {
        return -CLINK_ENOMEM;
    }
    /* CA:FALSE is the DER default, so it encodes as an empty SEQUENCE; that is correct, not a missing value. */
    bc->ca = is_ca ? 0xff : 0;
    ok = 1;
    if (is_ca && pathlen >= 0) {
        ok = (bc->pathlen = ASN1_INTEGER_new()) != NULL && ASN1_INTEGER_set(bc->pathlen, pathlen) == 1;
    }
    ok = ok && X509_add1_ext_i2d(x, NID_basic_constraints, bc, 1, X509V3_ADD_DEFAULT) == 1;
    BASIC_CONSTRAINTS_free(bc);
    return ok ? 0 : -CLINK_EINTERNAL;
}

static CLINK_MUST_USE int add_key_usage(X509 *x, const int *bits, size_t nbits)
{
    ASN1_BIT_STRING *ku = ASN1_BIT_STRING_new();
    int ok = ku != NULL;

    for (size_t i = 0; ok && i < nbits; i++) {
        ok = ASN1_BIT_STRING_set_bit(ku, bits[i], 1) == 1;
    }
    if (ok) {
        ok = X509_add1_ext_i2d(x, NID_key_usage, ku, 1, X509V3_ADD_DEFAULT) == 1;
    }
    ASN1_BIT_STRING_free(ku);
    return ok ? 0 : -CLINK_EINTERNAL;
}

static CLINK_MUST_USE int add_ext_key_usage(X509 *x, enum clink_cert_usage usage)
{
    EXTENDED_KEY_USAGE *eku = sk_ASN1_OBJECT_new_null();
    int ok = eku != NULL;

    /* OBJ_nid2obj returns static objects: the stack borrows them and ASN1_OBJECT_free leaves them alone. */
    if (usage != CLINK_CERT_USAGE_CLIENT) {
        ok = ok && sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) > 0;
    }
    if (usage != CLINK_CERT_USAGE_SERVER) {
        ok = ok && sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)) > 0;
    }
    ok = ok && X509_add1_ext_i2d(x, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1;
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return ok ? 0 : -CLINK_EINTERNAL;
}

static CLINK_MUST_USE int add_key_ids(X509 *x, ASN1_OCTET_STRING *ski, const ASN1_OCTET_STRING *issuer_keyid)
{
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    int ok = akid != NULL;

    /* RFC 5280 4.2.1.1/4.2.1.2: both non-critical; the AKI carries only the keyid, not issuer+serial. */
    ok = ok && X509_add1_ext_i2d(x, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) == 1;
    ok = ok && (akid->keyid = ASN1_OCTET_STRING_dup(issuer_keyid)) != NULL;
    ok = ok && X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1;
    AUTHORITY_KEYID_free(akid);
    return ok ? 0 : -CLINK_EINTERNAL;
}

/* DNS names go into an IA5String: plain ASCII host-name characters, and '*' for wildcards. */
static int dns_name_ok(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 253) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_' || c == '*')) {
            return 0;
        }
    }
    return 1;
}

static CLINK_MUST_USE int push_name(GENERAL_NAMES *gens, int type, const void *data, int len)
{
    GENERAL_NAME *gen = GENERAL_NAME_new();
    ASN1_STRING *s = type == GEN_DNS ? ASN1_IA5STRING_new() : ASN1_OCTET_STRING_new();
    int ret = -CLINK_ENOMEM;

    if (gen == NULL || s == NULL || ASN1_STRING_set(s, data, len) != 1) {
        goto out;
    }
    GENERAL_NAME_set0_value(gen, type, s);
    s = NULL;
    if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
        goto out;
    }
    gen = NULL;
    ret = 0;
out:
    ASN1_STRING_free(s);
    GENERAL_NAME_free(gen);
    return ret;
}

static CLINK_MUST_USE int add_san(X509 *x, const struct clink_cert_opts *opts, char *err, size_t errlen)
{
    GENERAL_NAMES *gens = NULL;
    int ret = 0;

    if ((opts->dns_names == NULL || opts->dns_names[0] == NULL) &&
        (opts->ip_addrs == NULL || opts->ip_addrs[0] == NULL)) {
        /* RFC 5280 4.2.1.6 forbids an empty SAN, so no names means no extension. */
        return 0;
    }
    gens = GENERAL_NAMES_new();
    if (gens == NULL) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot build subjectAltName");
        goto out;
    }
    for (const char *const *d = opts->dns_names; d != NULL && *d != NULL; d++) {
        if (!dns_name_ok(*d)) {
            clink__set_err(err, errlen, "invalid DNS name '%s'", *d);
            ret = -CLINK_EINVAL;
            goto out;
        }
        if (push_name(gens, GEN_DNS, *d, (int)strlen(*d)) < 0) {
            ret = clink__cert_ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot build subjectAltName");
            goto out;
        }
    }
    for (const char *const *ip = opts->ip_addrs; ip != NULL && *ip != NULL; ip++) {
        unsigned char addr[16];
        int len = 4;

        /* inet_pton, unlike a2i_IPADDRESS, rejects surrounding spaces and trailing junk. */
        if (inet_pton(AF_INET, *ip, addr) != 1) {
            len = 16;
            if (inet_pton(AF_INET6, *ip, addr) != 1) {
                clink__set_err(err, errlen, "invalid IP address '%s'", *ip);
                ret = -CLINK_EINVAL;
                goto out;
            }
        }
        if (push_name(gens, GEN_IPADD, addr, len) < 0) {
            ret = clink__cert_ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot build subjectAltName");
            goto out;
        }
    }
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot add subjectAltName");
        goto out;
    }
out:
    GENERAL_NAMES_free(gens);
    return ret;
}

/* Build and sign the certificate for key: a self-signed root (iss->cert NULL), or issued by iss. */
CLINK_MUST_USE int clink__cert_build(const struct clink_cert_opts *opts, enum clink__cert_kind kind, EVP_PKEY *key,
                                     const struct clink__issuer *iss, X509 **out, char *err, size_t errlen)
{
    int is_root = kind == KIND_ROOT;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    ASN1_OCTET_STRING *ski = NULL;
    int ret = 0;

    if (x == NULL || name == NULL) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot allocate certificate");
        goto out;
    }
    if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)opts->common_name, -1,
                                   -1, 0) != 1) {
        /* The usual cause is a CN longer than ub-common-name (64 characters, RFC 5280 appendix A). */
        clink__set_err(err, errlen, "invalid common name '%s'", opts->common_name);
        clink__cert_append_ssl_err(err, errlen);
        ret = -CLINK_EINVAL;
        goto out;
    }
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) < 0 || X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, is_root ? name : X509_get_subject_name(iss->cert)) != 1 ||
        X509_set_pubkey(x, key) != 1) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot fill in certificate");
        goto out;
    }
    if ((ret = set_validity(x, opts, err, errlen)) < 0) {
        goto out;
    }
    ski = clink__cert_key_id(x);
    if (ski == NULL) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot compute subject key identifier");
        goto out;
    }
    if (kind != KIND_NODE) {
        static const int ca_bits[] = {5 /* keyCertSign */, 6 /* cRLSign */};
        /* RFC 5280 4.2.1.9: pathlen 0, an intermediate signs end-entity certificates only. */
        long pathlen = is_root ? -1 : 0;

        if (add_basic_constraints(x, 1, pathlen) < 0 || add_key_usage(x, ca_bits, 2) < 0 ||
            add_key_ids(x, ski, is_root ? ski : iss->keyid) < 0) {
            ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot add CA extensions");
            goto out;
        }
    } else {
        /*
         * keyEncipherment only for an RSA server key: TLS 1.2 RSA key exchange
         * encrypts to the server's key; EC keys cannot, and a client never
         * needs it (it only signs CertificateVerify).
         */
        static const int node_bits[] = {0 /* digitalSignature */, 2 /* keyEncipherment */};
        size_t nbits = opts->key_type == CLINK_KEY_RSA_2048 && opts->usage != CLINK_CERT_USAGE_CLIENT ? 2 : 1;

        if (add_basic_constraints(x, 0, -1) < 0 || add_key_usage(x, node_bits, nbits) < 0 ||
            add_ext_key_usage(x, opts->usage) < 0 || add_key_ids(x, ski, iss->keyid) < 0) {
            ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot add certificate extensions");
            goto out;
        }
    }
    if ((ret = add_san(x, opts, err, errlen)) < 0) {
        goto out;
    }
    if (X509_sign(x, is_root ? key : iss->key, EVP_sha256()) <= 0) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot sign certificate");
        goto out;
    }
    *out = x;
    x = NULL;
out:
    ASN1_OCTET_STRING_free(ski);
    X509_NAME_free(name);
    X509_free(x);
    return ret;
}

/*
 * PEM in memory before any file is opened. The key goes into a secure-memory
 * BIO, which wipes its buffer when freed.
 */
CLINK_MUST_USE int clink__cert_to_pem(X509 *x, STACK_OF(X509) * chain, EVP_PKEY *key, BIO **cert_pem, BIO **key_pem,
                                      char *err, size_t errlen)
{
    *cert_pem = BIO_new(BIO_s_mem());
    *key_pem = BIO_new(BIO_s_secmem());
    if (*cert_pem == NULL || *key_pem == NULL) {
        return clink__cert_ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot allocate PEM buffers");
    }
    /* OpenSSL 3 writes PKCS#8 ("BEGIN PRIVATE KEY") here; NULL cipher: unencrypted. */
    if (PEM_write_bio_X509(*cert_pem, x) != 1 ||
        PEM_write_bio_PrivateKey(*key_pem, key, NULL, NULL, 0, NULL, NULL) != 1) {
        return clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot encode PEM");
    }
    /* Leaf first, then its issuers: the order SSL_CTX_use_certificate_chain_file reads and TLS sends. */
    for (int i = 0; i < sk_X509_num(chain); i++) {
        if (PEM_write_bio_X509(*cert_pem, sk_X509_value(chain, i)) != 1) {
            return clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot encode PEM");
        }
    }
    return 0;
}
