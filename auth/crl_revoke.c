/*
 * Revoking a certificate in a CA directory, and re-issuing its CRL. The CRL
 * itself is the record of what is revoked: it is read, its entries kept, the
 * new one added, its number bumped (RFC 5280 5.2.3: a CRL issuer's numbers
 * only grow) and the whole re-signed. Apart from crl.c, which makes a CRL
 * from certificate files in one go, because this one edits what exists.
 *
 * Two writers at once (two operators, a script) would each read the same
 * CRL and the second rename would drop the first one's entry: a lock file
 * beside the CRL orders them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/cert_int.h"
#include "auth/errbuf.h"
#include "auth/tls_ctx.h"

#define PATH_CAP 4096

/* RFC 5280 5.3.1's names, as `openssl ca -crl_reason` spells them. certificateHold is not a revocation. */
static const struct {
    const char *name;
    int code;
} reasons[] = {
    {"unspecified", CRL_REASON_UNSPECIFIED},
    {"keyCompromise", CRL_REASON_KEY_COMPROMISE},
    {"CACompromise", CRL_REASON_CA_COMPROMISE},
    {"affiliationChanged", CRL_REASON_AFFILIATION_CHANGED},
    {"superseded", CRL_REASON_SUPERSEDED},
    {"cessationOfOperation", CRL_REASON_CESSATION_OF_OPERATION},
    {"privilegeWithdrawn", CRL_REASON_PRIVILEGE_WITHDRAWN},
    {"AACompromise", CRL_REASON_AA_COMPROMISE},
};

struct ca_paths {
    char cert[PATH_CAP], key[PATH_CAP], crl[PATH_CAP], lock[PATH_CAP + 8];
};

static CLINK_MUST_USE int make_paths(const char *ca_dir, const char *crl_path, struct ca_paths *p, char *err,
                                     size_t errlen)
{
    int a = snprintf(p->cert, sizeof(p->cert), "%s/ca.pem", ca_dir);
    int b = snprintf(p->key, sizeof(p->key), "%s/ca-key.pem", ca_dir);
    int c = crl_path != NULL ? snprintf(p->crl, sizeof(p->crl), "%s", crl_path)
                             : snprintf(p->crl, sizeof(p->crl), "%s/crl.pem", ca_dir);
    int d = snprintf(p->lock, sizeof(p->lock), "%s.lock", p->crl);
    if (a < 0 || b < 0 || c < 0 || d < 0 || (size_t)a >= sizeof(p->cert) || (size_t)b >= sizeof(p->key) ||
        (size_t)c >= sizeof(p->crl) || (size_t)d >= sizeof(p->lock)) {
        clink__set_err(err, errlen, "%s: path too long", ca_dir);
        return -CLINK_EINVAL;
    }
    return 0;
}

/* The reasonCode for name, -1 for none (NULL), or -CLINK_EINVAL with the names in err. */
static int reason_code(const char *name, char *err, size_t errlen)
{
    if (name == NULL) {
        return -1;
    }
    char names[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (strcmp(name, reasons[i].name) == 0) {
            return reasons[i].code;
        }
        int n = snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", reasons[i].name);
        len += n > 0 && (size_t)n < sizeof(names) - len ? (size_t)n : 0;
    }
    clink__set_err(err, errlen, "unknown revocation reason '%s' (RFC 5280: %s)", name, names);
    return -CLINK_EINVAL;
}

/* Hex digits, optionally "0x" first and ':' between bytes (as openssl x509 -serial and our status print them). */
static CLINK_MUST_USE int parse_serial(const char *hex, ASN1_INTEGER **out, char *err, size_t errlen)
{
    char digits[2 * 20 + 1]; /* RFC 5280 4.1.2.2: at most 20 octets */
    size_t n = 0;
    const char *s = hex;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
    }
    for (; *s != '\0'; s++) {
        if (*s == ':') {
            continue;
        }
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')) ||
            n + 1 >= sizeof(digits)) {
            clink__set_err(err, errlen, "serial '%s' is not a hex number of at most 20 bytes", hex);
            return -CLINK_EINVAL;
        }
        digits[n++] = *s;
    }
    digits[n] = '\0';
    BIGNUM *bn = NULL;
    if (n == 0 || BN_hex2bn(&bn, digits) == 0 || BN_is_zero(bn)) {
        BN_free(bn);
        clink__set_err(err, errlen, "serial '%s' is not a positive hex number", hex);
        return -CLINK_EINVAL;
    }
    *out = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    return *out != NULL ? 0 : -CLINK_ENOMEM;
}

static void serial_text(const ASN1_INTEGER *serial, char *out, size_t cap)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(out, cap, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

/* The certificate to revoke, which must be this CA's: revoking another CA's serial here would revoke a stranger. */
static CLINK_MUST_USE int cert_serial(const char *path, X509 *ca, const char *ca_dir, ASN1_INTEGER **serial,
                                      char *subject, size_t subject_cap, char *err, size_t errlen)
{
    X509 *x = NULL;
    int rd = clink__cert_read_file(path, "certificate to revoke", &x, err, errlen);
    if (rd < 0) {
        return rd;
    }
    char xsub[256], xiss[256], casub[256];
    clink__name_rfc2253(X509_get_subject_name(x), xsub, sizeof(xsub));
    clink__name_rfc2253(X509_get_issuer_name(x), xiss, sizeof(xiss));
    clink__name_rfc2253(X509_get_subject_name(ca), casub, sizeof(casub));
    EVP_PKEY *capub = X509_get0_pubkey(ca);
    int ret = 0;
    if (X509_check_issued(ca, x) != X509_V_OK || capub == NULL || X509_verify(x, capub) != 1) {
        clink__set_err(err, errlen,
                       "%s (%s) was not issued by the CA in %s (%s): its issuer is %s; revoke it with the CA that "
                       "issued it",
                       path, xsub, ca_dir, casub, xiss);
        ret = -CLINK_ECONFIG;
    } else if ((*serial = ASN1_INTEGER_dup(X509_get0_serialNumber(x))) == NULL) {
        ret = -CLINK_ENOMEM;
    } else {
        snprintf(subject, subject_cap, "%s", xsub);
    }
    X509_free(x);
    ERR_clear_error();
    return ret;
}

/* The CRL now at path, if any (*out NULL: none yet), checked to be this CA's. */
static CLINK_MUST_USE int read_crl(const char *path, X509 *ca, EVP_PKEY *key, X509_CRL **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *in = fopen(path, "re");
    if (in == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        clink__set_err(err, errlen, "%s: cannot open CRL: %s", path, clink_strerror(-errno));
        return -CLINK_ECONFIG;
    }
    X509_CRL *crl = PEM_read_X509_CRL(in, NULL, NULL, NULL);
    fclose(in);
    if (crl == NULL) {
        clink__set_err(err, errlen, "%s: no PEM CRL in file (move it away to start a new one)", path);
        ERR_clear_error();
        return -CLINK_ECONFIG;
    }
    /* Its entries are copied into what we sign: they must be this CA's word, not whatever sits at the path. */
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 || X509_CRL_verify(crl, key) != 1) {
        X509_CRL_free(crl);
        ERR_clear_error();
        clink__set_err(err, errlen, "%s: not a CRL signed by this CA; refusing to carry its entries over", path);
        return -CLINK_ECONFIG;
    }
    *out = crl;
    return 0;
}

static int already_revoked(X509_CRL *crl, const ASN1_INTEGER *serial)
{
    STACK_OF(X509_REVOKED) *list = crl != NULL ? X509_CRL_get_REVOKED(crl) : NULL;
    for (int i = 0; i < sk_X509_REVOKED_num(list); i++) {
        if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(list, i)), serial) == 0) {
            return 1;
        }
    }
    return 0;
}

static CLINK_MUST_USE int new_entry(const ASN1_INTEGER *serial, time_t when, int reason, X509_REVOKED **out)
{
    X509_REVOKED *r = X509_REVOKED_new();
    ASN1_TIME *t = ASN1_TIME_set(NULL, when);
    ASN1_ENUMERATED *code = reason >= 0 ? ASN1_ENUMERATED_new() : NULL;
    int ok = r != NULL && t != NULL && X509_REVOKED_set_serialNumber(r, (ASN1_INTEGER *)(uintptr_t)serial) == 1 &&
             X509_REVOKED_set_revocationDate(r, t) == 1 &&
             (reason < 0 || (code != NULL && ASN1_ENUMERATED_set(code, reason) == 1 &&
                             X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, code, 0, 0) == 1));
    ASN1_ENUMERATED_free(code);
    ASN1_TIME_free(t);
    if (!ok) {
        X509_REVOKED_free(r);
        return -CLINK_ENOMEM;
    }
    *out = r;
    return 0;
}

/*
 * A new CRL: old's entries, then add (owned by the call), its number one
 * past old's, valid from now for valid_for_s, signed. [out] *out.
 */
static CLINK_MUST_USE int build(X509 *ca, EVP_PKEY *key, X509_CRL *old, X509_REVOKED *add, int64_t valid_for_s,
                                X509_CRL **out, char *err, size_t errlen)
{
    int ret = -CLINK_ENOMEM;
    time_t now = time(NULL);
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_set(NULL, now);
    ASN1_OCTET_STRING *kid = clink__cert_key_id(ca);
    AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
    ASN1_INTEGER *num = old != NULL ? X509_CRL_get_ext_d2i(old, NID_crl_number, NULL, NULL) : NULL;
    BIGNUM *bn = num != NULL ? ASN1_INTEGER_to_BN(num, NULL) : BN_new();
    if (crl == NULL || t == NULL || kid == NULL || akid == NULL || bn == NULL || X509_CRL_set_version(crl, 1) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1 || X509_CRL_set1_lastUpdate(crl, t) != 1 ||
        ASN1_TIME_set(t, now + (time_t)(valid_for_s ? valid_for_s : 30 * 86400)) == NULL ||
        X509_CRL_set1_nextUpdate(crl, t) != 1) {
        goto out;
    }
    /* RFC 5280 5.2.1 and 5.2.3: the CA's key identifier, and a number that grows with every CRL. */
    akid->keyid = kid;
    kid = NULL;
    ASN1_INTEGER_free(num);
    num = NULL;
    if (X509_CRL_add1_ext_i2d(crl, NID_authority_key_identifier, akid, 0, 0) != 1 || BN_add_word(bn, 1) != 1 ||
        (num = BN_to_ASN1_INTEGER(bn, NULL)) == NULL || X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1) {
        goto out;
    }
    STACK_OF(X509_REVOKED) *list = old != NULL ? X509_CRL_get_REVOKED(old) : NULL;
    for (int i = 0; i < sk_X509_REVOKED_num(list); i++) {
        X509_REVOKED *r = X509_REVOKED_dup(sk_X509_REVOKED_value(list, i));
        if (r == NULL || X509_CRL_add0_revoked(crl, r) != 1) {
            X509_REVOKED_free(r);
            goto out;
        }
    }
    if (add != NULL) {
        if (X509_CRL_add0_revoked(crl, add) != 1) {
            goto out;
        }
        add = NULL;
    }
    if (X509_CRL_sort(crl) != 1 || X509_CRL_sign(crl, key, EVP_sha256()) == 0) {
        ret = clink__cert_ssl_fail(err, errlen, -CLINK_EINTERNAL, "cannot sign the CRL");
        goto out;
    }
    *out = crl;
    crl = NULL;
    ret = 0;
out:
    X509_REVOKED_free(add);
    BN_free(bn);
    ASN1_INTEGER_free(num);
    AUTHORITY_KEYID_free(akid);
    ASN1_OCTET_STRING_free(kid);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    return ret;
}

/* Beside, mode 0644 whatever the umask (every node reads it), synced, then renamed: readers never see half. */
static CLINK_MUST_USE int write_crl(X509_CRL *crl, const char *path, char *err, size_t errlen)
{
    char tmp[PATH_CAP + 16];
    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
        clink__set_err(err, errlen, "%s: path too long", path);
        return -CLINK_EINVAL;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        clink__set_err(err, errlen, "%s: cannot write: %s", path, clink_strerror(-errno));
        return -CLINK_ECONFIG;
    }
    FILE *f = fdopen(fd, "w");
    int ok = f != NULL && fchmod(fd, 0644) == 0 && PEM_write_X509_CRL(f, crl) == 1 && fflush(f) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (f != NULL) {
        ok = fclose(f) == 0 && ok;
    } else {
        close(fd);
    }
    if (!ok || rename(tmp, path) != 0) {
        saved = ok ? errno : saved;
        unlink(tmp);
        clink__set_err(err, errlen, "%s: cannot write: %s", path, clink_strerror(-(saved ? saved : EIO)));
        return -CLINK_ECONFIG;
    }
    return 0;
}

static void fill_info(X509_CRL *crl, struct clink_crl_info *info)
{
    if (info == NULL || crl == NULL) {
        return;
    }
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    info->number = 0;
    if (num != NULL) {
        uint64_t v = 0;
        info->number = ASN1_INTEGER_get_uint64(&v, num) == 1 ? v : 0;
        ASN1_INTEGER_free(num);
    }
    int n = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)); /* -1: no list at all, an empty CRL */
    info->revoked = n > 0 ? (size_t)n : 0;
    info->next_update = clink__asn1_unix(X509_CRL_get0_nextUpdate(crl));
}

/* Revoke (serial non-NULL) or re-issue: the CA, the lock, the old CRL, the new one written. */
static int edit(const char *ca_dir, const char *crl_path, const struct clink_revoke_opts *ro, int reason,
                int64_t valid_for_s, struct clink_crl_info *info, char *err, size_t errlen)
{
    struct ca_paths p;
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    X509_CRL *old = NULL, *crl = NULL;
    ASN1_INTEGER *serial = NULL;
    X509_REVOKED *entry = NULL;
    int lock = -1;
    int ret = make_paths(ca_dir, crl_path, &p, err, errlen);
    if (ret < 0 || (ret = clink__cert_load_ca(p.cert, p.key, &ca, &key, err, errlen)) < 0) {
        goto out;
    }
    if (ro != NULL) {
        ret = ro->cert_file != NULL
                  ? cert_serial(ro->cert_file, ca, ca_dir, &serial, info->subject, sizeof(info->subject), err, errlen)
                  : parse_serial(ro->serial_hex, &serial, err, errlen);
        if (ret < 0) {
            goto out;
        }
        serial_text(serial, info->serial, sizeof(info->serial));
    }
    lock = open(p.lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) {
        clink__set_err(err, errlen, "%s: cannot lock: %s", p.lock, clink_strerror(-errno));
        ret = -CLINK_ECONFIG;
        goto out;
    }
    if ((ret = read_crl(p.crl, ca, key, &old, err, errlen)) < 0) {
        goto out;
    }
    if (ro != NULL && already_revoked(old, serial)) {
        fill_info(old, info);
        ret = 1; /* nothing to change: the CRL on disk already says so */
        goto out;
    }
    if (ro != NULL && (ret = new_entry(serial, time(NULL), reason, &entry)) < 0) {
        goto out;
    }
    ret = build(ca, key, old, entry, valid_for_s, &crl, err, errlen);
    entry = NULL; /* build owns it, whatever it returned */
    if (ret < 0 || (ret = write_crl(crl, p.crl, err, errlen)) < 0) {
        goto out;
    }
    fill_info(crl, info);
    ret = 0;
out:
    if (lock >= 0) {
        close(lock); /* and the lock with it */
    }
    X509_REVOKED_free(entry);
    ASN1_INTEGER_free(serial);
    X509_CRL_free(crl);
    X509_CRL_free(old);
    EVP_PKEY_free(key);
    X509_free(ca);
    ERR_clear_error();
    return ret;
}

int clink_cert_revoke(const char *ca_dir, const char *crl_path, const struct clink_revoke_opts *opts,
                      struct clink_crl_info *info, char *err, size_t errlen)
{
    struct clink_crl_info scratch;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    info = info != NULL ? info : &scratch;
    memset(info, 0, sizeof(*info));
    if (ca_dir == NULL || opts == NULL || (opts->cert_file == NULL) == (opts->serial_hex == NULL) ||
        opts->valid_for_s < 0) {
        clink__set_err(err, errlen, "a CA directory and one of a certificate file or a serial are required");
        return -CLINK_EINVAL;
    }
    int reason = reason_code(opts->reason, err, errlen);
    if (reason == -CLINK_EINVAL) {
        return reason;
    }
    return edit(ca_dir, crl_path, opts, reason, opts->valid_for_s, info, err, errlen);
}

int clink_cert_crl_reissue(const char *ca_dir, const char *crl_path, int64_t valid_for_s, struct clink_crl_info *info,
                           char *err, size_t errlen)
{
    struct clink_crl_info scratch;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    info = info != NULL ? info : &scratch;
    memset(info, 0, sizeof(*info));
    if (ca_dir == NULL || valid_for_s < 0) {
        clink__set_err(err, errlen, "a CA directory is required");
        return -CLINK_EINVAL;
    }
    return edit(ca_dir, crl_path, NULL, -1, valid_for_s, info, err, errlen);
}
