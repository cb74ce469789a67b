#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "clink/auth.h"
#include "clink/error.h"

#define DAY_S ((int64_t)24 * 60 * 60)

static char dir[PATH_MAX];
static char ca_pem[PATH_MAX];
static char ca_key[PATH_MAX];
static char node_pem[PATH_MAX];
static char node_key[PATH_MAX];
static char errbuf[256];

static void path_in_dir(char *out, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

    cr_assert(n > 0 && n < PATH_MAX, "path too long");
}

/* Criterion forks per test, so each test gets its own directory and cannot see another's files. */
static void setup(void)
{
    const char *base = getenv("CLINK_TEST_TMP");

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    /* ctest points CLINK_TEST_TMP at the build tree, which may not exist yet. */
    if (mkdir(base, 0755) != 0) {
        cr_assert_eq(errno, EEXIST, "mkdir %s: %s", base, strerror(errno));
    }
    cr_assert(snprintf(dir, sizeof(dir), "%s/certgen-XXXXXX", base) < (int)sizeof(dir));
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
    path_in_dir(ca_pem, "ca.pem");
    path_in_dir(ca_key, "ca-key.pem");
    path_in_dir(node_pem, "node.pem");
    path_in_dir(node_key, "node-key.pem");
    /* Fixed umask so mode assertions do not depend on the caller's shell. */
    umask(022);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    if (dir[0] != '\0') {
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
}

TestSuite(certgen, .init = setup, .fini = teardown);

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x;

    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(x, "%s: no certificate", path);
    return x;
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;

    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(k, "%s: no private key", path);
    return k;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    cr_assert_not_null(buf);
    n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Returns X509_V_OK or the verification error, as a TLS peer with strict RFC 5280 checks would see it. */
static int verify(X509 *ca, X509 *leaf, int purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc;

    cr_assert_not_null(store);
    cr_assert_not_null(ctx);
    cr_assert_eq(X509_STORE_add_cert(store, ca), 1);
    cr_assert_eq(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
    cr_assert_eq(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
    rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

static void make_ca(enum clink_key_type type)
{
    struct clink_cert_opts o = {.common_name = "test CA", .key_type = type};
    int rc = clink_cert_make_ca(&o, ca_pem, ca_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "make_ca: %d %s", rc, errbuf);
}

static int ext_critical(X509 *x, int nid)
{
    int i = X509_get_ext_by_NID(x, nid, -1);

    cr_assert_geq(i, 0, "extension %s missing", OBJ_nid2sn(nid));
    return X509_EXTENSION_get_critical(X509_get_ext(x, i));
}

static mode_t file_mode(const char *path)
{
    struct stat st;

    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

Test(certgen, ca_and_node_verify_strictly_as_server_and_client)
{
    static const char *const dns[] = {"node1.example", NULL};
    static const char *const ips[] = {"192.0.2.7", NULL};
    struct clink_cert_opts o = {.common_name = "node1", .dns_names = dns, .ip_addrs = ips};
    X509 *ca;
    X509 *leaf;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "make_node: %d %s", rc, errbuf);
    cr_assert_str_empty(errbuf);
    ca = load_cert(ca_pem);
    leaf = load_cert(node_pem);
    rc = verify(ca, leaf, X509_PURPOSE_SSL_SERVER);
    cr_assert_eq(rc, X509_V_OK, "as server: %s", X509_verify_cert_error_string(rc));
    rc = verify(ca, leaf, X509_PURPOSE_SSL_CLIENT);
    cr_assert_eq(rc, X509_V_OK, "as client: %s", X509_verify_cert_error_string(rc));
    X509_free(leaf);
    X509_free(ca);
}

Test(certgen, ca_has_rfc5280_ca_profile)
{
    X509 *ca;
    const ASN1_OCTET_STRING *akid;
    const ASN1_OCTET_STRING *skid;

    make_ca(CLINK_KEY_DEFAULT);

    ca = load_cert(ca_pem);
    akid = X509_get0_authority_key_id(ca);
    skid = X509_get0_subject_key_id(ca);

    cr_assert_eq(X509_get_version(ca), X509_VERSION_3);
    cr_assert_eq(X509_check_ca(ca), 1);
    cr_assert(ext_critical(ca, NID_basic_constraints));
    cr_assert(ext_critical(ca, NID_key_usage));
    cr_assert_eq(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    cr_assert_not_null(skid);
    cr_assert_not_null(akid);
    cr_assert_eq(ASN1_OCTET_STRING_cmp(akid, skid), 0, "self-signed AKI must equal SKI");
    cr_assert_eq(X509_NAME_cmp(X509_get_subject_name(ca), X509_get_issuer_name(ca)), 0);
    cr_assert_eq(X509_verify(ca, X509_get0_pubkey(ca)), 1, "not self-signed");
    X509_free(ca);
}

Test(certgen, serial_is_positive_and_large)
{
    X509 *ca;
    BIGNUM *bn;

    make_ca(CLINK_KEY_DEFAULT);

    ca = load_cert(ca_pem);
    bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(ca), NULL);

    cr_assert_not_null(bn);
    cr_assert_not(BN_is_negative(bn));
    cr_assert_geq(BN_num_bits(bn), 120, "serial has only %d bits", BN_num_bits(bn));
    cr_assert_leq(BN_num_bits(bn), 159, "serial exceeds 20 octets");
    BN_free(bn);
    X509_free(ca);
}

Test(certgen, node_has_leaf_profile)
{
    static const char *const dns[] = {"node1.example", NULL};
    struct clink_cert_opts o = {.common_name = "node1", .dns_names = dns};
    X509 *ca;
    X509 *leaf;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    ca = load_cert(ca_pem);
    leaf = load_cert(node_pem);
    cr_assert_eq(X509_get_version(leaf), X509_VERSION_3);
    cr_assert_eq(X509_check_ca(leaf), 0);
    cr_assert(ext_critical(leaf, NID_basic_constraints));
    cr_assert(ext_critical(leaf, NID_key_usage));
    cr_assert_eq(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE, "EC key: digitalSignature only");
    cr_assert_eq(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    cr_assert_not_null(X509_get0_subject_key_id(leaf));
    cr_assert_eq(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf), X509_get0_subject_key_id(ca)), 0);
    cr_assert_eq(X509_check_issued(ca, leaf), X509_V_OK);
    cr_assert_eq(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
    X509_free(leaf);
    X509_free(ca);
}

Test(certgen, san_matches_dns_and_ips_only)
{
    static const char *const dns[] = {"node1.example", "alt.example", NULL};
    static const char *const ips[] = {"192.0.2.7", "2001:db8::7", NULL};
    struct clink_cert_opts o = {.common_name = "node1", .dns_names = dns, .ip_addrs = ips};
    X509 *leaf;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    leaf = load_cert(node_pem);
    cr_assert_eq(X509_check_host(leaf, "node1.example", 0, 0, NULL), 1);
    cr_assert_eq(X509_check_host(leaf, "alt.example", 0, 0, NULL), 1);
    cr_assert_eq(X509_check_ip_asc(leaf, "192.0.2.7", 0), 1);
    cr_assert_eq(X509_check_ip_asc(leaf, "2001:db8:0:0::7", 0), 1);
    cr_assert_eq(X509_check_host(leaf, "other.example", 0, 0, NULL), 0);
    cr_assert_eq(X509_check_host(leaf, "node1", 0, 0, NULL), 0, "a SAN present means the CN is not a host name");
    cr_assert_eq(X509_check_ip_asc(leaf, "192.0.2.8", 0), 0);
    cr_assert_eq(X509_check_ip_asc(leaf, "2001:db8::8", 0), 0);
    X509_free(leaf);
}

Test(certgen, rsa_ca_and_node_verify)
{
    static const char *const dns[] = {"rsa.example", NULL};
    struct clink_cert_opts o = {.common_name = "rsa", .dns_names = dns, .key_type = CLINK_KEY_RSA_2048};
    X509 *ca;
    X509 *leaf;
    EVP_PKEY *key;
    int rc;
    make_ca(CLINK_KEY_RSA_2048);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    ca = load_cert(ca_pem);
    leaf = load_cert(node_pem);
    key = load_key(node_key);
    cr_assert_eq(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
    cr_assert_eq(EVP_PKEY_get_bits(key), 2048);
    cr_assert_eq(X509_check_private_key(leaf, key), 1);
    cr_assert_eq(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
    cr_assert_eq(X509_get_signature_nid(leaf), NID_sha256WithRSAEncryption);
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    EVP_PKEY_free(key);
    X509_free(leaf);
    X509_free(ca);
}

Test(certgen, ec_key_is_p256_pkcs8)
{
    EVP_PKEY *key;
    char *pem;
    char group[32] = "";

    make_ca(CLINK_KEY_DEFAULT);

    key = load_key(ca_key);
    pem = read_file(ca_key);

    cr_assert_eq(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    cr_assert_eq(EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), NULL), 1);
    cr_assert_str_eq(group, "prime256v1");
    cr_assert_not_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"), "not unencrypted PKCS#8:\n%s", pem);
    free(pem);
    EVP_PKEY_free(key);
}

Test(certgen, key_files_are_0600_and_certs_0644)
{
    struct clink_cert_opts o = {.common_name = "node1"};
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    cr_assert_eq(file_mode(ca_key), 0600);
    cr_assert_eq(file_mode(node_key), 0600);
    cr_assert_eq(file_mode(ca_pem), 0644);
    cr_assert_eq(file_mode(node_pem), 0644);
}

Test(certgen, existing_key_without_overwrite_is_eexist_and_untouched)
{
    struct clink_cert_opts o = {.common_name = "test CA"};
    FILE *f = fopen(ca_key, "w");
    char *after;
    int rc;
    cr_assert_not_null(f);
    fputs("precious\n", f);
    fclose(f);

    rc = clink_cert_make_ca(&o, ca_pem, ca_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -EEXIST);
    cr_assert_not_null(strstr(errbuf, ca_key), "message does not name the file: %s", errbuf);
    after = read_file(ca_key);
    cr_assert_str_eq(after, "precious\n");
    cr_assert_not(exists(ca_pem), "a half pair was left behind");
    free(after);
}

Test(certgen, existing_cert_without_overwrite_is_eexist_and_removes_new_key)
{
    struct clink_cert_opts o = {.common_name = "node1"};
    FILE *f;
    char *after;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);
    f = fopen(node_pem, "w");
    cr_assert_not_null(f);
    fputs("precious\n", f);
    fclose(f);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -EEXIST);
    cr_assert_not_null(strstr(errbuf, node_pem), "message does not name the file: %s", errbuf);
    after = read_file(node_pem);
    cr_assert_str_eq(after, "precious\n");
    cr_assert_not(exists(node_key), "the key this call created was left behind");
    free(after);
}

Test(certgen, overwrite_replaces_pair_and_tightens_key_mode)
{
    struct clink_cert_opts o = {.common_name = "test CA"};
    X509 *ca;
    EVP_PKEY *key;
    FILE *f = fopen(ca_key, "w");
    int rc;
    cr_assert_not_null(f);
    fputs("old\n", f);
    fclose(f);
    cr_assert_eq(chmod(ca_key, 0644), 0);
    f = fopen(ca_pem, "w");
    cr_assert_not_null(f);
    fputs("old\n", f);
    fclose(f);

    rc = clink_cert_make_ca(&o, ca_pem, ca_key, 1, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    cr_assert_eq(file_mode(ca_key), 0600);
    ca = load_cert(ca_pem);
    key = load_key(ca_key);
    cr_assert_eq(X509_check_private_key(ca, key), 1);
    EVP_PKEY_free(key);
    X509_free(ca);
}

Test(certgen, write_failure_leaves_no_half_pair)
{
    struct clink_cert_opts o = {.common_name = "test CA"};
    /* The EC key PEM (about 240 bytes) fits, the certificate does not: the failure hits the second file. */
    struct rlimit lim = {.rlim_cur = 300, .rlim_max = 300};
    int rc;
    cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);

    rc = clink_cert_make_ca(&o, ca_pem, ca_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -EFBIG, "%d %s", rc, errbuf);
    cr_assert_not_null(strstr(errbuf, ca_pem), "message does not name the file: %s", errbuf);
    cr_assert_not(exists(ca_pem), "half-written certificate left behind");
    cr_assert_not(exists(ca_key), "key of a failed pair left behind");
}

Test(certgen, overwrite_refuses_non_regular_file)
{
    struct clink_cert_opts o = {.common_name = "test CA"};
    struct stat st;
    int reader;
    int rc;
    cr_assert_eq(mkfifo(ca_key, 0644), 0);
    /* With a reader the open succeeds, so the regular-file check itself must refuse. */
    reader = open(ca_key, O_RDONLY | O_NONBLOCK);
    cr_assert_geq(reader, 0, "%s", strerror(errno));

    rc = clink_cert_make_ca(&o, ca_pem, ca_key, 1, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_EINVAL, "%d %s", rc, errbuf);
    cr_assert_not_null(strstr(errbuf, "not a regular file"), "%s", errbuf);
    cr_assert_eq(lstat(ca_key, &st), 0, "the FIFO was removed");
    cr_assert(S_ISFIFO(st.st_mode));
    cr_assert_eq(st.st_mode & 07777, 0644, "the FIFO's mode was changed");
    cr_assert_not(exists(ca_pem));
    close(reader);
}

Test(certgen, fifo_without_reader_fails_without_blocking)
{
    struct clink_cert_opts o = {.common_name = "test CA"};
    int rc;
    cr_assert_eq(mkfifo(ca_key, 0644), 0);

    rc = clink_cert_make_ca(&o, ca_pem, ca_key, 1, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_EINVAL, "%d %s", rc, errbuf);
    cr_assert_not_null(strstr(errbuf, "not a regular file"), "%s", errbuf);
    cr_assert(exists(ca_key), "the FIFO was removed");
    cr_assert_not(exists(ca_pem));
}

/* Issue 17: with overwrite, a symbolic link planted at the key's path received the new private key. */
Test(certgen, overwrite_never_writes_through_a_symbolic_link)
{
    struct clink_cert_opts o = {.common_name = "test CA"};
    char victim[PATH_MAX + 16];
    struct stat st;
    int rc;
    snprintf(victim, sizeof(victim), "%s.victim", ca_key);
    FILE *f = fopen(victim, "w");
    cr_assert_not_null(f);
    fputs("the attacker's file\n", f);
    fclose(f);
    cr_assert_eq(chmod(victim, 0644), 0);
    cr_assert_eq(symlink(victim, ca_key), 0);

    rc = clink_cert_make_ca(&o, ca_pem, ca_key, 1, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_EINVAL, "%d %s", rc, errbuf);
    cr_assert_not_null(strstr(errbuf, "a symbolic link"), "%s", errbuf);
    char *after = read_file(victim);
    cr_assert_str_eq(after, "the attacker's file\n", "the key went through the link");
    free(after);
    cr_assert_eq(lstat(ca_key, &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link was replaced");
    cr_assert_not(exists(ca_pem));
}

/* Nothing but the pair is left in the folder: the temporary files are gone, whatever happened. */
Test(certgen, no_temporary_file_is_left_behind)
{
    struct clink_cert_opts o = {.common_name = "test CA"};
    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), -EEXIST);
    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, ca_key, 1, errbuf, sizeof(errbuf)), 0, "%s", errbuf);

    /* The temporary files are named after the target: "<name>.XXXXXX". */
    char folder[PATH_MAX];
    snprintf(folder, sizeof(folder), "%s", ca_key);
    *strrchr(folder, '/') = '\0';
    const char *kb = strrchr(ca_key, '/') + 1, *cb = strrchr(ca_pem, '/') + 1;
    DIR *d = opendir(folder);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t kl = strlen(kb), cl = strlen(cb);
        n += (strncmp(e->d_name, kb, kl) == 0 && e->d_name[kl] == '.') ||
             (strncmp(e->d_name, cb, cl) == 0 && e->d_name[cl] == '.');
    }
    closedir(d);
    cr_assert_eq(n, 0, "%d temporary files left", n);
}

Test(certgen, expired_node_fails_verification)
{
    struct clink_cert_opts o = {.common_name = "old", .not_before_offset_s = -2 * DAY_S, .valid_for_s = DAY_S};
    X509 *ca;
    X509 *leaf;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    ca = load_cert(ca_pem);
    leaf = load_cert(node_pem);
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_SERVER), X509_V_ERR_CERT_HAS_EXPIRED);
    X509_free(leaf);
    X509_free(ca);
}

Test(certgen, not_yet_valid_node_fails_verification)
{
    struct clink_cert_opts o = {.common_name = "future", .not_before_offset_s = DAY_S};
    X509 *ca;
    X509 *leaf;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    ca = load_cert(ca_pem);
    leaf = load_cert(node_pem);
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_SERVER), X509_V_ERR_CERT_NOT_YET_VALID);
    X509_free(leaf);
    X509_free(ca);
}

Test(certgen, default_validity_is_now_minus_60s_for_365_days)
{
    time_t before = time(NULL);
    X509 *ca;
    int days = -1;
    int secs = -1;

    make_ca(CLINK_KEY_DEFAULT);

    ca = load_cert(ca_pem);
    cr_assert_eq(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca), X509_get0_notAfter(ca)), 1);
    cr_assert_eq(days, 365);
    cr_assert_eq(secs, 0);
    cr_assert_eq(X509_cmp_time(X509_get0_notBefore(ca), &(time_t){before - 60 - 5}), 1, "not_before too early");
    cr_assert_eq(X509_cmp_time(X509_get0_notBefore(ca), &(time_t){before - 60 + 5}), -1, "not_before too late");
    X509_free(ca);
}

Test(certgen, bad_ip_is_einval_with_message)
{
    static const char *const ips[] = {"192.0.2.7", "300.1.2.3", NULL};
    struct clink_cert_opts o = {.common_name = "node1", .ip_addrs = ips};
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_EINVAL);
    cr_assert_not_null(strstr(errbuf, "300.1.2.3"), "message does not name the address: %s", errbuf);
    cr_assert_not(exists(node_pem));
    cr_assert_not(exists(node_key));
}

Test(certgen, ip_with_trailing_junk_is_einval)
{
    static const char *const ips[] = {"192.0.2.7 ", NULL};
    struct clink_cert_opts o = {.common_name = "node1", .ip_addrs = ips};
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_EINVAL);
}

Test(certgen, bad_dns_name_is_einval)
{
    static const char *const dns[] = {"bad name.example", NULL};
    struct clink_cert_opts o = {.common_name = "node1", .dns_names = dns};
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_EINVAL);
    cr_assert_not_null(strstr(errbuf, "bad name.example"), "%s", errbuf);
    cr_assert_not(exists(node_pem));
}

Test(certgen, node_cert_as_ca_is_econfig)
{
    char other_pem[PATH_MAX];
    char other_key[PATH_MAX];
    struct clink_cert_opts o = {.common_name = "node1"};
    int rc;
    make_ca(CLINK_KEY_DEFAULT);
    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));
    cr_assert_eq(rc, 0, "%s", errbuf);
    path_in_dir(other_pem, "other.pem");
    path_in_dir(other_key, "other-key.pem");

    rc = clink_cert_make_node(&o, node_pem, node_key, other_pem, other_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_ECONFIG);
    cr_assert_not_null(strstr(errbuf, "not a CA"), "%s", errbuf);
    cr_assert_not(exists(other_pem));
    cr_assert_not(exists(other_key));
}

Test(certgen, mismatched_ca_key_is_econfig)
{
    char ca2_pem[PATH_MAX];
    char ca2_key[PATH_MAX];
    struct clink_cert_opts ca2 = {.common_name = "other CA"};
    struct clink_cert_opts o = {.common_name = "node1"};
    int rc;
    make_ca(CLINK_KEY_DEFAULT);
    path_in_dir(ca2_pem, "ca2.pem");
    path_in_dir(ca2_key, "ca2-key.pem");
    rc = clink_cert_make_ca(&ca2, ca2_pem, ca2_key, 0, errbuf, sizeof(errbuf));
    cr_assert_eq(rc, 0, "%s", errbuf);

    rc = clink_cert_make_node(&o, ca_pem, ca2_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_ECONFIG);
    cr_assert_not_null(strstr(errbuf, "does not match"), "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, ca2_key), "%s", errbuf);
    cr_assert_not(exists(node_pem));
    cr_assert_not(exists(node_key));
}

Test(certgen, missing_ca_file_is_econfig)
{
    char missing[PATH_MAX];
    struct clink_cert_opts o = {.common_name = "node1"};
    int rc;
    path_in_dir(missing, "missing.pem");

    rc = clink_cert_make_node(&o, missing, missing, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_ECONFIG);
    cr_assert_not_null(strstr(errbuf, missing), "%s", errbuf);
    cr_assert_not(exists(node_pem));
    cr_assert_not(exists(node_key));
}

Test(certgen, garbage_ca_file_is_econfig)
{
    struct clink_cert_opts o = {.common_name = "node1"};
    FILE *f = fopen(ca_pem, "w");
    int rc;
    cr_assert_not_null(f);
    fputs("not a certificate\n", f);
    fclose(f);

    rc = clink_cert_make_node(&o, ca_pem, ca_pem, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_ECONFIG);
    cr_assert_not_null(strstr(errbuf, ca_pem), "%s", errbuf);
}

Test(certgen, bad_arguments_are_einval)
{
    struct clink_cert_opts o = {.common_name = "x"};
    struct clink_cert_opts no_cn = {.common_name = NULL};
    struct clink_cert_opts empty_cn = {.common_name = ""};
    struct clink_cert_opts neg = {.common_name = "x", .valid_for_s = -1};
    struct clink_cert_opts bad_type = {.common_name = "x", .key_type = (enum clink_key_type)42};

    cr_assert_eq(clink_cert_make_ca(NULL, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_ca(&no_cn, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_ca(&empty_cn, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_ca(&neg, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_ca(&bad_type, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_ca(&o, NULL, ca_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, NULL, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, ca_pem, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_node(&o, NULL, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_node(&o, ca_pem, NULL, node_pem, node_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_node(&no_cn, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf)),
                 -CLINK_EINVAL);
    cr_assert_eq(clink_cert_make_node(&o, ca_pem, ca_key, NULL, node_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);
    cr_assert_not(exists(ca_pem));
    cr_assert_not(exists(ca_key));
}

Test(certgen, overlong_common_name_is_einval)
{
    char cn[80];
    struct clink_cert_opts o = {.common_name = cn};
    memset(cn, 'a', sizeof(cn) - 1);
    cn[sizeof(cn) - 1] = '\0';

    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);

    cr_assert_not(exists(ca_key));
}

Test(certgen, validity_out_of_range_is_einval)
{
    struct clink_cert_opts o = {.common_name = "x", .valid_for_s = INT64_MAX};

    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, ca_key, 0, errbuf, sizeof(errbuf)), -CLINK_EINVAL);

    cr_assert_not(exists(ca_key));
}

Test(certgen, missing_directory_is_enoent)
{
    char path[PATH_MAX];
    struct clink_cert_opts o = {.common_name = "x"};
    path_in_dir(path, "no/such/dir/key.pem");

    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, path, 0, errbuf, sizeof(errbuf)), -ENOENT);

    cr_assert_not(exists(ca_pem));
}

Test(certgen, null_err_buffer_is_allowed)
{
    static const char *const ips[] = {"nope", NULL};
    struct clink_cert_opts o = {.common_name = "x", .ip_addrs = ips};

    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, ca_key, 0, NULL, 0), -CLINK_EINVAL);
    o.ip_addrs = NULL;
    cr_assert_eq(clink_cert_make_ca(&o, ca_pem, ca_key, 0, NULL, 0), 0);
}

/* ---- usage: server, client or both ---- */

Test(certgen, server_usage_is_server_only)
{
    struct clink_cert_opts o = {.common_name = "srv", .key_type = CLINK_KEY_RSA_2048, .usage = CLINK_CERT_USAGE_SERVER};
    X509 *ca;
    X509 *leaf;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    ca = load_cert(ca_pem);
    leaf = load_cert(node_pem);
    cr_assert_eq(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
    cr_assert_eq(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT, "an RSA server keeps RSA kx");
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_INVALID_PURPOSE);
    X509_free(leaf);
    X509_free(ca);
}

Test(certgen, client_usage_is_client_only)
{
    struct clink_cert_opts o = {.common_name = "cli", .key_type = CLINK_KEY_RSA_2048, .usage = CLINK_CERT_USAGE_CLIENT};
    X509 *ca;
    X509 *leaf;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    ca = load_cert(ca_pem);
    leaf = load_cert(node_pem);
    cr_assert_eq(X509_get_extended_key_usage(leaf), XKU_SSL_CLIENT);
    cr_assert_eq(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE, "a client only signs, even with RSA");
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_SERVER), X509_V_ERR_INVALID_PURPOSE);
    X509_free(leaf);
    X509_free(ca);
}

Test(certgen, bad_usage_is_einval)
{
    struct clink_cert_opts bad = {.common_name = "x", .usage = (enum clink_cert_usage)9};
    struct clink_cert_opts ca_with_usage = {.common_name = "x", .usage = CLINK_CERT_USAGE_SERVER};
    make_ca(CLINK_KEY_DEFAULT);
    char int_pem[PATH_MAX];
    char int_key[PATH_MAX];
    path_in_dir(int_pem, "int.pem");
    path_in_dir(int_key, "int-key.pem");

    cr_assert_eq(clink_cert_make_node(&bad, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf)),
                 -CLINK_EINVAL);
    cr_assert_not_null(strstr(errbuf, "usage"), "%s", errbuf);
    cr_assert_eq(
        clink_cert_make_intermediate(&ca_with_usage, ca_pem, ca_key, int_pem, int_key, 0, errbuf, sizeof(errbuf)),
        -CLINK_EINVAL);
    cr_assert_not_null(strstr(errbuf, "node certificates only"), "%s", errbuf);
    cr_assert_not(exists(node_pem));
    cr_assert_not(exists(int_pem));
    cr_assert_not(exists(int_key));
}

/* ---- intermediate CAs ---- */

static int count_certs(const char *path)
{
    char *pem = read_file(path);
    int n = 0;
    for (const char *p = pem; (p = strstr(p, "-----BEGIN CERTIFICATE-----")) != NULL; p++) {
        n++;
    }
    free(pem);
    return n;
}

/* The n-th certificate (0-based) of a PEM file. */
static X509 *load_nth_cert(const char *path, int n)
{
    FILE *f = fopen(path, "r");
    X509 *x = NULL;

    cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
    for (int i = 0; i <= n; i++) {
        X509_free(x);
        x = PEM_read_X509(f, NULL, NULL, NULL);
        cr_assert_not_null(x, "%s: no certificate %d", path, i);
    }
    fclose(f);
    return x;
}

/* As a TLS peer trusting only `root` sees `leaf` with the chain its file carries. */
static int verify_chain(X509 *root, const char *leaf_file, int purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509 *leaf = load_nth_cert(leaf_file, 0);
    int total = count_certs(leaf_file);
    int rc;

    for (int i = 1; i < total; i++) {
        cr_assert_gt(sk_X509_push(untrusted, load_nth_cert(leaf_file, i)), 0);
    }
    cr_assert_eq(X509_STORE_add_cert(store, root), 1);
    cr_assert_eq(X509_STORE_CTX_init(ctx, store, leaf, untrusted), 1);
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
    cr_assert_eq(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
    rc = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_pop_free(untrusted, X509_free);
    X509_free(leaf);
    return rc;
}

Test(certgen, intermediate_has_ca_profile_with_pathlen_0)
{
    struct clink_cert_opts io = {.common_name = "test intermediate"};
    char int_pem[PATH_MAX];
    char int_key[PATH_MAX];
    X509 *ca;
    X509 *inter;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);
    path_in_dir(int_pem, "int.pem");
    path_in_dir(int_key, "int-key.pem");

    rc = clink_cert_make_intermediate(&io, ca_pem, ca_key, int_pem, int_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    cr_assert_eq(count_certs(int_pem), 1, "a root is never written into the chain");
    cr_assert_eq(file_mode(int_key), 0600);
    ca = load_cert(ca_pem);
    inter = load_cert(int_pem);
    cr_assert_eq(X509_check_ca(inter), 1);
    cr_assert(ext_critical(inter, NID_basic_constraints));
    cr_assert_eq(X509_get_pathlen(inter), 0);
    cr_assert(ext_critical(inter, NID_key_usage));
    cr_assert_eq(X509_get_key_usage(inter), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    cr_assert_eq(X509_get_extension_flags(inter) & EXFLAG_XKUSAGE, 0, "no EKU on a CA");
    cr_assert_eq(X509_NAME_cmp(X509_get_issuer_name(inter), X509_get_subject_name(ca)), 0);
    cr_assert_eq(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(inter), X509_get0_subject_key_id(ca)), 0);
    cr_assert_eq(X509_check_issued(ca, inter), X509_V_OK);
    cr_assert_eq(verify(ca, inter, X509_PURPOSE_ANY), X509_V_OK);
    X509_free(inter);
    X509_free(ca);
}

Test(certgen, node_under_intermediate_carries_the_chain_and_verifies_against_the_root)
{
    static const char *const dns[] = {"node1.example", NULL};
    struct clink_cert_opts io = {.common_name = "test intermediate"};
    struct clink_cert_opts o = {.common_name = "node1", .dns_names = dns};
    char int_pem[PATH_MAX];
    char int_key[PATH_MAX];
    X509 *ca;
    X509 *inter;
    X509 *second;
    X509 *leaf;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);
    path_in_dir(int_pem, "int.pem");
    path_in_dir(int_key, "int-key.pem");
    rc = clink_cert_make_intermediate(&io, ca_pem, ca_key, int_pem, int_key, 0, errbuf, sizeof(errbuf));
    cr_assert_eq(rc, 0, "%s", errbuf);

    rc = clink_cert_make_node(&o, int_pem, int_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    cr_assert_eq(count_certs(node_pem), 2, "leaf, then the intermediate");
    ca = load_cert(ca_pem);
    inter = load_cert(int_pem);
    leaf = load_nth_cert(node_pem, 0);
    second = load_nth_cert(node_pem, 1);
    cr_assert_eq(X509_cmp(second, inter), 0);
    cr_assert_eq(X509_check_issued(inter, leaf), X509_V_OK);
    cr_assert_eq(verify_chain(ca, node_pem, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    cr_assert_eq(verify_chain(ca, node_pem, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    cr_assert_eq(verify(ca, leaf, X509_PURPOSE_SSL_SERVER), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                 "without the intermediate the root alone does not vouch for it");
    X509_free(second);
    X509_free(leaf);
    X509_free(inter);
    X509_free(ca);
}

Test(certgen, node_under_root_has_no_chain)
{
    struct clink_cert_opts o = {.common_name = "node1"};
    int rc;
    make_ca(CLINK_KEY_DEFAULT);

    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    cr_assert_eq(count_certs(node_pem), 1);
}

Test(certgen, intermediate_cannot_issue_another_ca)
{
    struct clink_cert_opts io = {.common_name = "test intermediate"};
    char int_pem[PATH_MAX];
    char int_key[PATH_MAX];
    char sub_pem[PATH_MAX];
    char sub_key[PATH_MAX];
    int rc;
    make_ca(CLINK_KEY_DEFAULT);
    path_in_dir(int_pem, "int.pem");
    path_in_dir(int_key, "int-key.pem");
    path_in_dir(sub_pem, "sub.pem");
    path_in_dir(sub_key, "sub-key.pem");
    rc = clink_cert_make_intermediate(&io, ca_pem, ca_key, int_pem, int_key, 0, errbuf, sizeof(errbuf));
    cr_assert_eq(rc, 0, "%s", errbuf);

    rc = clink_cert_make_intermediate(&io, int_pem, int_key, sub_pem, sub_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_ECONFIG);
    cr_assert_not_null(strstr(errbuf, "pathlen 0"), "%s", errbuf);
    cr_assert_not_null(strstr(errbuf, int_pem), "%s", errbuf);
    cr_assert_not(exists(sub_pem));
    cr_assert_not(exists(sub_key));
}

Test(certgen, intermediate_from_a_node_cert_is_econfig)
{
    struct clink_cert_opts o = {.common_name = "node1"};
    char int_pem[PATH_MAX];
    char int_key[PATH_MAX];
    int rc;
    make_ca(CLINK_KEY_DEFAULT);
    rc = clink_cert_make_node(&o, ca_pem, ca_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));
    cr_assert_eq(rc, 0, "%s", errbuf);
    path_in_dir(int_pem, "int.pem");
    path_in_dir(int_key, "int-key.pem");

    rc = clink_cert_make_intermediate(&o, node_pem, node_key, int_pem, int_key, 0, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, -CLINK_ECONFIG);
    cr_assert_not_null(strstr(errbuf, "not a CA"), "%s", errbuf);
    cr_assert_not(exists(int_pem));
}

Test(certgen, crl_signed_by_an_intermediate_revokes_its_node)
{
    struct clink_cert_opts io = {.common_name = "test intermediate"};
    struct clink_cert_opts o = {.common_name = "node1"};
    char int_pem[PATH_MAX];
    char int_key[PATH_MAX];
    char crl_pem[PATH_MAX];
    const char *revoked[] = {node_pem, NULL};
    X509 *inter;
    X509 *leaf;
    X509_CRL *crl;
    X509_REVOKED *entry = NULL;
    FILE *f;
    int rc;
    make_ca(CLINK_KEY_DEFAULT);
    path_in_dir(int_pem, "int.pem");
    path_in_dir(int_key, "int-key.pem");
    path_in_dir(crl_pem, "crl.pem");
    rc = clink_cert_make_intermediate(&io, ca_pem, ca_key, int_pem, int_key, 0, errbuf, sizeof(errbuf));
    cr_assert_eq(rc, 0, "%s", errbuf);
    rc = clink_cert_make_node(&o, int_pem, int_key, node_pem, node_key, 0, errbuf, sizeof(errbuf));
    cr_assert_eq(rc, 0, "%s", errbuf);

    rc = clink_cert_make_crl(int_pem, int_key, revoked, 0, crl_pem, errbuf, sizeof(errbuf));

    cr_assert_eq(rc, 0, "%s", errbuf);
    inter = load_cert(int_pem);
    leaf = load_cert(node_pem);
    f = fopen(crl_pem, "r");
    cr_assert_not_null(f);
    crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(crl);
    cr_assert_eq(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(inter)), 0);
    cr_assert_eq(X509_CRL_verify(crl, X509_get0_pubkey(inter)), 1);
    cr_assert_eq(X509_CRL_get0_by_cert(crl, &entry, leaf), 1, "the node is listed");
    X509_CRL_free(crl);
    X509_free(leaf);
    X509_free(inter);
}
