/*
 * Renewal without the key leaving the node (auth/cert_renew.c): the request
 * is for the identity the certificate has; the CA signs exactly that
 * identity (subject and subjectAltName from the current certificate), only
 * for a current certificate it issued, only a request signed by its own
 * key, and never one that asks for another name. RSA stays RSA.
 */
#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "clink/auth.h"
#include "tests/support/support.h"

static struct ts_pki pki;

static void setup(void)
{
    ts_pki_make(&pki);
}

static void teardown(void)
{
    ts_pki_remove(&pki);
}

TestSuite(cert_renew, .init = setup, .fini = teardown, .timeout = 30);

static char *file_text(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char *t = calloc(1, 1 << 16);
    fread(t, 1, (1 << 16) - 1, f);
    fclose(f);
    return t;
}

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    cr_assert_not_null(x);
    return x;
}

static char *san_text(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    int i = X509_get_ext_by_NID(x, NID_subject_alt_name, -1);
    cr_assert_geq(i, 0);
    X509V3_EXT_print(b, X509_get_ext(x, i), 0, 0);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void ca_paths(char *ca, char *key)
{
    ts_pki_path(&pki, "ca.pem", ca, 512);
    ts_pki_path(&pki, "ca-key.pem", key, 512);
}

static void free_key(char *k)
{
    if (k != NULL) {
        OPENSSL_cleanse(k, strlen(k));
    }
    free(k);
}

Test(cert_renew, the_new_certificate_has_the_identity_and_the_new_key)
{
    char *key = NULL, *csr = NULL, *out = NULL, err[512] = "", ca[512], cakey[512];
    ca_paths(ca, cakey);
    cr_assert_eq(clink_cert_renew_request(pki.node_cert, &key, &csr, err, sizeof(err)), 0, "%s", err);
    char *cur = file_text(pki.node_cert);
    cr_assert_eq(clink_cert_sign_renewal(ca, cakey, csr, cur, NULL, 30 * 86400, &out, err, sizeof(err)), 0, "%s", err);
    X509 *old = pem_cert(cur), *neu = pem_cert(out);
    cr_assert_eq(X509_NAME_cmp(X509_get_subject_name(old), X509_get_subject_name(neu)), 0);
    char *a = san_text(old), *b = san_text(neu);
    cr_assert_str_eq(a, b);
    cr_assert_neq(ASN1_INTEGER_cmp(X509_get0_serialNumber(old), X509_get0_serialNumber(neu)), 0);
    /* The new key is the one the request was made with, not the old one. */
    BIO *kb = BIO_new_mem_buf(key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    cr_assert_eq(X509_check_private_key(neu, k), 1);
    cr_assert_neq(X509_check_private_key(old, k), 1);
    /* 30 days, and it verifies against the CA. */
    int days = 0, secs = 0;
    cr_assert_eq(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(neu)), 1);
    cr_assert(days >= 29 && days <= 30, "%d days", days);
    X509_STORE *st = X509_STORE_new();
    X509_STORE_load_file(st, ca);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, st, neu, NULL);
    cr_assert_eq(X509_verify_cert(ctx), 1, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    EVP_PKEY_free(k);
    BIO_free(kb);
    X509_free(old);
    X509_free(neu);
    free(a);
    free(b);
    free(cur);
    free(out);
    free(csr);
    free_key(key);
}

Test(cert_renew, a_request_for_another_identity_is_refused)
{
    char *key = NULL, *csr = NULL, *out = NULL, err[512] = "", ca[512], cakey[512];
    ca_paths(ca, cakey);
    /* A request made from another certificate of the same CA (CN intruder), shown with this node's current one. */
    char c[512], k[512];
    ts_pki_path(&pki, "intruder.pem", c, sizeof(c));
    ts_pki_path(&pki, "intruder-key.pem", k, sizeof(k));
    const char *dns[] = {"intruder.example", NULL};
    struct clink_cert_opts o = {.common_name = "intruder", .dns_names = dns};
    cr_assert_eq(clink_cert_make_node(&o, ca, cakey, c, k, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_cert_renew_request(c, &key, &csr, err, sizeof(err)), 0, "%s", err);
    char *cur = file_text(pki.node_cert);
    cr_assert_eq(clink_cert_sign_renewal(ca, cakey, csr, cur, NULL, 0, &out, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert(strstr(err, "another subject or other names") != NULL, "%s", err);
    cr_assert_null(out);
    free(cur);
    free(csr);
    free_key(key);
}

Test(cert_renew, a_current_certificate_from_another_ca_is_refused)
{
    char *key = NULL, *csr = NULL, *out = NULL, err[512] = "", ca[512], cakey[512];
    ca_paths(ca, cakey);
    cr_assert_eq(clink_cert_renew_request(pki.other_cert, &key, &csr, err, sizeof(err)), 0, "%s", err);
    char *cur = file_text(pki.other_cert);
    cr_assert_eq(clink_cert_sign_renewal(ca, cakey, csr, cur, NULL, 0, &out, err, sizeof(err)), -CLINK_EVERIFY);
    cr_assert(strstr(err, "does not verify") != NULL, "%s", err);
    /* ... unless the trust file (a CA rollover's bundle) has its CA. */
    cr_assert_eq(clink_cert_sign_renewal(ca, cakey, csr, cur, pki.other_ca, 0, &out, err, sizeof(err)), 0, "%s", err);
    free(out);
    free(cur);
    free(csr);
    free_key(key);
}

Test(cert_renew, a_request_not_signed_by_its_key_is_refused)
{
    char *key = NULL, *csr = NULL, *out = NULL, err[512] = "", ca[512], cakey[512];
    ca_paths(ca, cakey);
    cr_assert_eq(clink_cert_renew_request(pki.node_cert, &key, &csr, err, sizeof(err)), 0, "%s", err);
    /*
     * One byte of the signature changed: a character in the middle of the
     * PEM's second-to-last base64 line (within the signature, which ends the
     * DER; a character next to the padding may carry only unused bits, so
     * changing one there changed nothing in about one run in four).
     */
    char *end = strstr(csr, "\n-----END");
    cr_assert_not_null(end);
    char *last = end - 1;
    while (last > csr && *last != '\n') {
        last--; /* the newline before the last line */
    }
    char *prev = last - 1;
    while (prev > csr && *prev != '\n') {
        prev--; /* the newline before the second-to-last line */
    }
    cr_assert_geq(last - prev, 33, "base64 lines too short");
    char *victim = prev + 32;
    *victim = *victim == 'A' ? 'B' : 'A';
    char *cur = file_text(pki.node_cert);
    cr_assert_lt(clink_cert_sign_renewal(ca, cakey, csr, cur, NULL, 0, &out, err, sizeof(err)), 0);
    cr_assert_null(out);
    free(cur);
    free(csr);
    free_key(key);
}

Test(cert_renew, an_rsa_identity_stays_rsa)
{
    char c[512], k[512], ca[512], cakey[512], err[512] = "";
    ca_paths(ca, cakey);
    ts_pki_path(&pki, "rsa.pem", c, sizeof(c));
    ts_pki_path(&pki, "rsa-key.pem", k, sizeof(k));
    const char *dns[] = {"rsa.example", NULL};
    struct clink_cert_opts o = {.common_name = "rsa", .dns_names = dns, .key_type = CLINK_KEY_RSA_2048};
    cr_assert_eq(clink_cert_make_node(&o, ca, cakey, c, k, 0, err, sizeof(err)), 0, "%s", err);
    char *key = NULL, *csr = NULL;
    cr_assert_eq(clink_cert_renew_request(c, &key, &csr, err, sizeof(err)), 0, "%s", err);
    cr_assert(strstr(key, "BEGIN PRIVATE KEY") != NULL);
    BIO *kb = BIO_new_mem_buf(key, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    cr_assert_eq(EVP_PKEY_get_base_id(pk), EVP_PKEY_RSA);
    EVP_PKEY_free(pk);
    BIO_free(kb);
    free(csr);
    free_key(key);
}
