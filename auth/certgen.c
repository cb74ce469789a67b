/*
 * Certificate generation for tools, tests and demos: a self-signed CA,
 * intermediate CAs and node certificates that pass OpenSSL 3.0 verification
 * with X509_V_FLAG_X509_STRICT (RFC 5280 profile checks).
 *
 * Everything is built and serialised in memory first, so an OpenSSL failure
 * never touches the file system; only then are the two files written, and a
 * failure while writing removes whatever this call wrote.
 */
#include "clink/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DEFAULT_NOT_BEFORE_OFFSET_S (-60)
#define DEFAULT_VALID_FOR_S         ((int64_t)365 * 24 * 60 * 60)
/* 9999-12-31T23:59:59Z: the last instant a GeneralizedTime (RFC 5280 4.1.2.5.2) can carry. */
#define MAX_CERT_TIME ((int64_t)253402300799)
#define SERIAL_BYTES  16

enum cert_kind {
    KIND_ROOT,         /* self-signed CA */
    KIND_INTERMEDIATE, /* CA with pathlen 0, issued by another CA */
    KIND_NODE,         /* TLS leaf */
};

/* What an issued certificate needs from its CA. All NULL for a self-signed CA, which uses its own key and SKI. */
struct issuer {
    X509 *cert;
    EVP_PKEY *key;
    const ASN1_OCTET_STRING *keyid;
    /* Written after the new certificate in its file: the issuer's intermediates, never a root. NULL: none. */
    STACK_OF(X509) * chain;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*
 * Append the oldest queued OpenSSL error: it is the root cause, later entries
 * are the callers' wrappers. The queue is drained so that it does not leak
 * into the caller's next OpenSSL call.
 */
static void append_ssl_err(char *err, size_t errlen)
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

static CLINK_MUST_USE int ssl_fail(char *err, size_t errlen, int code, const char *what)
{
    set_err(err, errlen, "%s", what);
    append_ssl_err(err, errlen);
    return code;
}

/* An encrypted CA key must fail, not block on a terminal prompt (OpenSSL's default callback reads the tty). */
static int no_password(char *buf, int size, int rwflag, void *u)
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
        set_err(err, errlen, "common_name is required");
        return -CLINK_EINVAL;
    }
    if (opts->key_type != CLINK_KEY_DEFAULT && opts->key_type != CLINK_KEY_EC_P256 &&
        opts->key_type != CLINK_KEY_RSA_2048) {
        set_err(err, errlen, "unknown key_type %d", (int)opts->key_type);
        return -CLINK_EINVAL;
    }
    if (opts->valid_for_s < 0) {
        set_err(err, errlen, "valid_for_s is negative (%lld)", (long long)opts->valid_for_s);
        return -CLINK_EINVAL;
    }
    if (opts->usage != CLINK_CERT_USAGE_DEFAULT && opts->usage != CLINK_CERT_USAGE_SERVER &&
        opts->usage != CLINK_CERT_USAGE_CLIENT) {
        set_err(err, errlen, "unknown usage %d", (int)opts->usage);
        return -CLINK_EINVAL;
    }
    return 0;
}

/* An EKU on a CA would constrain every certificate below it in OpenSSL; usage is for node certificates. */
static CLINK_MUST_USE int check_ca_opts(const struct clink_cert_opts *opts, char *err, size_t errlen)
{
    int ret = check_opts(opts, err, errlen);

    if (ret == 0 && opts->usage != CLINK_CERT_USAGE_DEFAULT) {
        set_err(err, errlen, "usage applies to node certificates only, not to a CA");
        ret = -CLINK_EINVAL;
    }
    return ret;
}

static CLINK_MUST_USE int gen_key(enum clink_key_type type, EVP_PKEY **out, char *err, size_t errlen)
{
    if (type == CLINK_KEY_RSA_2048) {
        *out = EVP_RSA_gen(2048);
    } else {
        *out = EVP_EC_gen("P-256");
    }
    if (*out == NULL) {
        return ssl_fail(err, errlen, -CLINK_EINTERNAL, "key generation failed");
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
        set_err(err, errlen, "validity period out of range (not_before_offset_s %lld, valid_for_s %lld)",
                (long long)opts->not_before_offset_s, (long long)opts->valid_for_s);
        return -CLINK_EINVAL;
    }
    if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL) {
        return ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot set validity");
    }
    return 0;
}

/* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING, what OpenSSL's "hash" computes too. */
static ASN1_OCTET_STRING *key_id_of(const X509 *x)
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
        ret = ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot build subjectAltName");
        goto out;
    }
    for (const char *const *d = opts->dns_names; d != NULL && *d != NULL; d++) {
        if (!dns_name_ok(*d)) {
            set_err(err, errlen, "invalid DNS name '%s'", *d);
            ret = -CLINK_EINVAL;
            goto out;
        }
        if (push_name(gens, GEN_DNS, *d, (int)strlen(*d)) < 0) {
            ret = ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot build subjectAltName");
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
                set_err(err, errlen, "invalid IP address '%s'", *ip);
                ret = -CLINK_EINVAL;
                goto out;
            }
        }
        if (push_name(gens, GEN_IPADD, addr, len) < 0) {
            ret = ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot build subjectAltName");
            goto out;
        }
    }
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1) {
        ret = ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot add subjectAltName");
        goto out;
    }
out:
    GENERAL_NAMES_free(gens);
    return ret;
}

/* Build and sign the certificate for key: a self-signed root (iss->cert NULL), or issued by iss. */
static CLINK_MUST_USE int build_cert(const struct clink_cert_opts *opts, enum cert_kind kind, EVP_PKEY *key,
                                     const struct issuer *iss, X509 **out, char *err, size_t errlen)
{
    int is_root = kind == KIND_ROOT;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    ASN1_OCTET_STRING *ski = NULL;
    int ret = 0;

    if (x == NULL || name == NULL) {
        ret = ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot allocate certificate");
        goto out;
    }
    if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)opts->common_name, -1,
                                   -1, 0) != 1) {
        /* The usual cause is a CN longer than ub-common-name (64 characters, RFC 5280 appendix A). */
        set_err(err, errlen, "invalid common name '%s'", opts->common_name);
        append_ssl_err(err, errlen);
        ret = -CLINK_EINVAL;
        goto out;
    }
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) < 0 || X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, is_root ? name : X509_get_subject_name(iss->cert)) != 1 ||
        X509_set_pubkey(x, key) != 1) {
        ret = ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot fill in certificate");
        goto out;
    }
    if ((ret = set_validity(x, opts, err, errlen)) < 0) {
        goto out;
    }
    ski = key_id_of(x);
    if (ski == NULL) {
        ret = ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot compute subject key identifier");
        goto out;
    }
    if (kind != KIND_NODE) {
        static const int ca_bits[] = {5 /* keyCertSign */, 6 /* cRLSign */};
        /* RFC 5280 4.2.1.9: pathlen 0, an intermediate signs end-entity certificates only. */
        long pathlen = is_root ? -1 : 0;

        if (add_basic_constraints(x, 1, pathlen) < 0 || add_key_usage(x, ca_bits, 2) < 0 ||
            add_key_ids(x, ski, is_root ? ski : iss->keyid) < 0) {
            ret = ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot add CA extensions");
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
            ret = ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot add certificate extensions");
            goto out;
        }
    }
    if ((ret = add_san(x, opts, err, errlen)) < 0) {
        goto out;
    }
    if (X509_sign(x, is_root ? key : iss->key, EVP_sha256()) <= 0) {
        ret = ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot sign certificate");
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
static CLINK_MUST_USE int to_pem(X509 *x, STACK_OF(X509) * chain, EVP_PKEY *key, BIO **cert_pem, BIO **key_pem,
                                 char *err, size_t errlen)
{
    *cert_pem = BIO_new(BIO_s_mem());
    *key_pem = BIO_new(BIO_s_secmem());
    if (*cert_pem == NULL || *key_pem == NULL) {
        return ssl_fail(err, errlen, -CLINK_ENOMEM, "cannot allocate PEM buffers");
    }
    /* OpenSSL 3 writes PKCS#8 ("BEGIN PRIVATE KEY") here; NULL cipher: unencrypted. */
    if (PEM_write_bio_X509(*cert_pem, x) != 1 ||
        PEM_write_bio_PrivateKey(*key_pem, key, NULL, NULL, 0, NULL, NULL) != 1) {
        return ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot encode PEM");
    }
    /* Leaf first, then its issuers: the order SSL_CTX_use_certificate_chain_file reads and TLS sends. */
    for (int i = 0; i < sk_X509_num(chain); i++) {
        if (PEM_write_bio_X509(*cert_pem, sk_X509_value(chain, i)) != 1) {
            return ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot encode PEM");
        }
    }
    return 0;
}

struct out_file {
    const char *path;
    int fd;
    int written; /* opened for writing by this call: its old contents, if any, are gone */
};

static CLINK_MUST_USE int open_out(struct out_file *f, mode_t mode, int overwrite, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO at the path fails (ENXIO) or is refused below instead of blocking; files ignore it. */
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | (overwrite ? O_TRUNC : O_EXCL);
    struct stat st;
    int e;

    f->fd = open(f->path, flags, mode);
    if (f->fd < 0 || fstat(f->fd, &st) != 0) {
        e = errno;
        set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
        return -e;
    }
    /* Overwriting /dev/null or the like would chmod it to 0600 and, on failure, unlink it. */
    if (!S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", f->path);
        return -CLINK_EINVAL;
    }
    f->written = 1;
    return 0;
}

static CLINK_MUST_USE int write_out(struct out_file *f, BIO *pem, char *err, size_t errlen)
{
    char *data = NULL;
    long len = BIO_get_mem_data(pem, &data);
    int fd = f->fd;

    while (len > 0) {
        ssize_t n = write(fd, data, (size_t)len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            /* write() returning 0 for a regular file has no errno; treat it like a full disk. */
            int e = n < 0 ? errno : ENOSPC;

            set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
            return -e;
        }
        data += n;
        len -= n;
    }
    f->fd = -1;
    /* close() is where NFS and quota errors surface; a silent failure there would leave a short file. */
    if (close(fd) != 0) {
        int e = errno;

        set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
        return -e;
    }
    return 0;
}

/*
 * Two names for one file (a hard link, "./x" and "x") would interleave key
 * and certificate in it; with overwrite it has been truncated already.
 */
static CLINK_MUST_USE int check_distinct(const struct out_file *key, const struct out_file *cert, char *err,
                                         size_t errlen)
{
    struct stat a;
    struct stat b;

    if (fstat(key->fd, &a) != 0 || fstat(cert->fd, &b) != 0) {
        int e = errno;

        set_err(err, errlen, "%s: %s", key->path, clink_strerror(-e));
        return -e;
    }
    if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        set_err(err, errlen, "certificate path '%s' and key path '%s' are the same file", cert->path, key->path);
        return -CLINK_EINVAL;
    }
    return 0;
}

static CLINK_MUST_USE int write_pair(BIO *cert_pem, BIO *key_pem, const char *cert_path, const char *key_path,
                                     int overwrite, char *err, size_t errlen)
{
    struct out_file key = {.path = key_path, .fd = -1};
    struct out_file cert = {.path = cert_path, .fd = -1};
    int ret;

    if ((ret = open_out(&key, 0600, overwrite, err, errlen)) < 0) {
        goto out;
    }
    /* O_CREAT's mode only applies to a new file; an overwritten key file may have been readable by others. */
    if (overwrite && fchmod(key.fd, 0600) != 0) {
        ret = -errno;
        set_err(err, errlen, "%s: chmod: %s", key.path, clink_strerror(ret));
        goto out;
    }
    if ((ret = open_out(&cert, 0644, overwrite, err, errlen)) < 0) {
        goto out;
    }
    if ((ret = check_distinct(&key, &cert, err, errlen)) < 0) {
        goto out;
    }
    if ((ret = write_out(&key, key_pem, err, errlen)) < 0) {
        goto out;
    }
    ret = write_out(&cert, cert_pem, err, errlen);
out:
    if (key.fd >= 0) {
        close(key.fd);
    }
    if (cert.fd >= 0) {
        close(cert.fd);
    }
    /* Never leave half a pair: a failure removes every file this call created or truncated. */
    if (ret < 0 && cert.written) {
        unlink(cert.path);
    }
    if (ret < 0 && key.written) {
        unlink(key.path);
    }
    return ret;
}

/* Generate a key and certificate for opts, issued by iss (or self-signed), and write the pair. */
static CLINK_MUST_USE int make_pair(const struct clink_cert_opts *opts, enum cert_kind kind, const struct issuer *iss,
                                    const char *cert_path, const char *key_path, int overwrite, char *err,
                                    size_t errlen)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    BIO *cert_pem = NULL;
    BIO *key_pem = NULL;
    int ret;

    if ((ret = gen_key(opts->key_type, &key, err, errlen)) < 0) {
        goto out;
    }
    if ((ret = build_cert(opts, kind, key, iss, &x, err, errlen)) < 0) {
        goto out;
    }
    if ((ret = to_pem(x, iss->chain, key, &cert_pem, &key_pem, err, errlen)) < 0) {
        goto out;
    }
    ret = write_pair(cert_pem, key_pem, cert_path, key_path, overwrite, err, errlen);
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
        set_err(err, errlen, "certificate and key paths are required");
        return -CLINK_EINVAL;
    }
    if (strcmp(cert_path, key_path) == 0) {
        set_err(err, errlen, "certificate and key paths are the same file '%s'", cert_path);
        return -CLINK_EINVAL;
    }
    return 0;
}

int clink_cert_make_ca(const struct clink_cert_opts *opts, const char *cert_path, const char *key_path, int overwrite,
                       char *err, size_t errlen)
{
    struct issuer self = {0};
    int ret;

    set_err(err, errlen, "%s", "");
    ERR_clear_error();
    if ((ret = check_ca_opts(opts, err, errlen)) < 0 || (ret = check_paths(cert_path, key_path, err, errlen)) < 0) {
        return ret;
    }
    return make_pair(opts, KIND_ROOT, &self, cert_path, key_path, overwrite, err, errlen);
}

static CLINK_MUST_USE int load_ca(const char *cert_path, const char *key_path, X509 **cert, EVP_PKEY **key, char *err,
                                  size_t errlen)
{
    FILE *in = NULL;
    int ret = -CLINK_ECONFIG;

    in = fopen(cert_path, "re");
    if (in == NULL) {
        set_err(err, errlen, "%s: cannot open CA certificate: %s", cert_path, clink_strerror(-errno));
        goto out;
    }
    *cert = PEM_read_X509(in, NULL, no_password, NULL);
    if (*cert == NULL) {
        set_err(err, errlen, "%s: no PEM certificate", cert_path);
        append_ssl_err(err, errlen);
        goto out;
    }
    fclose(in);
    in = fopen(key_path, "re");
    if (in == NULL) {
        set_err(err, errlen, "%s: cannot open CA key: %s", key_path, clink_strerror(-errno));
        goto out;
    }
    *key = PEM_read_PrivateKey(in, NULL, no_password, NULL);
    if (*key == NULL) {
        set_err(err, errlen, "%s: no unencrypted PEM private key", key_path);
        append_ssl_err(err, errlen);
        goto out;
    }
    /* EXFLAG_CA is set only by basicConstraints CA:TRUE; X509_check_ca would also accept v1 roots and KU-only certs. */
    if ((X509_get_extension_flags(*cert) & EXFLAG_CA) == 0) {
        set_err(err, errlen, "%s: not a CA certificate (no basicConstraints CA:TRUE)", cert_path);
        goto out;
    }
    if ((X509_get_extension_flags(*cert) & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(*cert) & KU_KEY_CERT_SIGN) == 0) {
        set_err(err, errlen, "%s: CA key usage does not allow certificate signing", cert_path);
        goto out;
    }
    if (X509_check_private_key(*cert, *key) != 1) {
        set_err(err, errlen, "%s: CA key does not match CA certificate %s", key_path, cert_path);
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
static CLINK_MUST_USE int load_issuer_chain(const char *path, STACK_OF(X509) * *out, char *err, size_t errlen)
{
    BIO *in = BIO_new_file(path, "r");
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *x = NULL;
    int ret = -CLINK_ENOMEM;

    if (in == NULL) {
        set_err(err, errlen, "%s: cannot read CA certificate chain", path);
        ret = -CLINK_ECONFIG;
        goto out;
    }
    if (chain == NULL) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    while ((x = PEM_read_bio_X509(in, NULL, no_password, NULL)) != NULL) {
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
static CLINK_MUST_USE int make_issued(const struct clink_cert_opts *opts, enum cert_kind kind, const char *ca_cert_path,
                                      const char *ca_key_path, const char *cert_path, const char *key_path,
                                      int overwrite, char *err, size_t errlen)
{
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    ASN1_OCTET_STRING *computed_id = NULL;
    struct issuer iss = {0};
    int ret;

    set_err(err, errlen, "%s", "");
    ERR_clear_error();
    ret = kind == KIND_NODE ? check_opts(opts, err, errlen) : check_ca_opts(opts, err, errlen);
    if (ret < 0 || (ret = check_paths(cert_path, key_path, err, errlen)) < 0) {
        goto out;
    }
    if (ca_cert_path == NULL || ca_key_path == NULL) {
        set_err(err, errlen, "CA certificate and key paths are required");
        ret = -CLINK_EINVAL;
        goto out;
    }
    if ((ret = load_ca(ca_cert_path, ca_key_path, &ca, &ca_key, err, errlen)) < 0) {
        goto out;
    }
    /* X509_get_pathlen: -1 when unlimited. OpenSSL would refuse the new CA's chain at the first handshake. */
    if (kind == KIND_INTERMEDIATE && X509_get_pathlen(ca) == 0) {
        set_err(err, errlen, "%s: this CA has pathlen 0 and may not issue CA certificates", ca_cert_path);
        ret = -CLINK_ECONFIG;
        goto out;
    }
    if ((ret = load_issuer_chain(ca_cert_path, &iss.chain, err, errlen)) < 0) {
        goto out;
    }
    iss.cert = ca;
    iss.key = ca_key;
    iss.keyid = X509_get0_subject_key_id(ca);
    if (iss.keyid == NULL) {
        /* A CA without an SKI (RFC 5280 requires one) still gets a usable AKI: the same hash its SKI would hold. */
        computed_id = key_id_of(ca);
        if (computed_id == NULL) {
            ret = ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot compute CA key identifier");
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

/* ---- certificate revocation lists ---- */

static CLINK_MUST_USE int revoke_one(X509_CRL *crl, const char *path, time_t now, char *err, size_t errlen)
{
    FILE *in = fopen(path, "re");
    if (in == NULL) {
        set_err(err, errlen, "%s: cannot open certificate to revoke: %s", path, clink_strerror(-errno));
        return -CLINK_ECONFIG;
    }
    X509 *x = PEM_read_X509(in, NULL, no_password, NULL);
    fclose(in);
    if (x == NULL) {
        set_err(err, errlen, "%s: no PEM certificate", path);
        return -CLINK_ECONFIG;
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
        set_err(err, errlen, "CA certificate, CA key and CRL path are required");
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
    int ret = load_ca(ca_cert_path, ca_key_path, &ca, &key, err, errlen);
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
    kid = key_id_of(ca);
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
        ret = ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot sign the CRL");
        goto out;
    }
    /* Write beside, then rename: readers never see half a CRL. */
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", crl_path) >= (int)sizeof(tmp) || (f = fopen(tmp, "we")) == NULL) {
        set_err(err, errlen, "%s: cannot write: %s", crl_path, clink_strerror(-errno));
        ret = -CLINK_ECONFIG;
        goto out;
    }
    if (PEM_write_X509_CRL(f, crl) != 1 || fclose(f) != 0 || rename(tmp, crl_path) != 0) {
        f = NULL;
        unlink(tmp);
        set_err(err, errlen, "%s: cannot write: %s", crl_path, clink_strerror(-errno));
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
