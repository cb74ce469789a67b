/*
 * Certificates an operator brings, made the way MySQL's and MemSQL's
 * documents make them with plain openssl commands: a CA with no keyUsage
 * (OpenSSL 3's `req -x509`) and a v1 server certificate with no extensions,
 * named by its CN only, shared by every node. `openssl verify` accepts them,
 * so clink does by default (issue 19); ssl_x509_strict refuses them; the
 * warnings and a failed name check say what to do instead.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/support/calls.h"
#include "tests/support/support.h"

#define SUBJ      "/C=US/ST=CA/L=San Francisco/O=MemSQL/CN="
#define SERVER_CN "memsql.ssl.test.server"

static char dir[64];
static char ca[128], cert[128], key[128];
static int have_openssl;

/* The document's commands, verbatim but for the directory; stderr to a log. */
static void make_document_certs(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && { "
             "openssl genrsa 2048 > ca-key.pem && "
             "openssl req -new -x509 -nodes -days 3600 -key ca-key.pem -out ca-cert.pem -subj '" SUBJ
             "memsql.ssl.test.ca' && "
             "openssl req -newkey rsa:2048 -days 3600 -nodes -keyout server-key.pem -out server-req.pem -subj '" SUBJ
                 SERVER_CN "' && "
             "openssl rsa -in server-key.pem -out server-key.pem && "
             "openssl x509 -req -in server-req.pem -days 3600 -CA ca-cert.pem -CAkey ca-key.pem -set_serial 01 "
             "-out server-cert.pem && "
             "openssl verify -CAfile ca-cert.pem server-cert.pem; } > openssl.log 2>&1",
             dir);
    cr_assert_eq(system(cmd), 0, "the document's openssl commands failed (see %s/openssl.log)", dir);
}

static void setup(void)
{
    have_openssl = system("command -v openssl > /dev/null 2>&1") == 0;
    if (!have_openssl) {
        return;
    }
    snprintf(dir, sizeof(dir), "/tmp/clink-brought-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
    snprintf(cert, sizeof(cert), "%s/server-cert.pem", dir);
    snprintf(key, sizeof(key), "%s/server-key.pem", dir);
    make_document_certs();
}

static void teardown(void)
{
    if (have_openssl && dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
    }
}

#define NEED_OPENSSL()                                                                                                 \
    do {                                                                                                               \
        if (!have_openssl) {                                                                                           \
            cr_skip_test("no openssl command: cannot make the document's certificates");                               \
        }                                                                                                              \
    } while (0)

TestSuite(brought_certs, .init = setup, .fini = teardown, .timeout = 60);

static int make_ctx(int strict, struct clink_tls_ctx **out, char *err, size_t errlen)
{
    /* The key's mode is checked too: `openssl req -keyout` writes it 0600. */
    struct clink_tls_opts o = {.cert_file = cert, .key_file = key, .ca_file = ca, .x509_strict = strict};
    return clink_tls_ctx_new(&o, out, err, errlen);
}

Test(brought_certs, the_documents_certificates_make_a_context)
{
    NEED_OPENSSL();
    struct clink_tls_ctx *tls = NULL;
    char err[512];
    cr_assert_eq(make_ctx(0, &tls, err, sizeof(err)), 0, "%s", err);
    clink_tls_ctx_free(tls);
}

Test(brought_certs, strict_refuses_them_with_the_rfc_5280_reason)
{
    NEED_OPENSSL();
    struct clink_tls_ctx *tls = NULL;
    char err[512];
    cr_assert_eq(make_ctx(1, &tls, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert_null(tls);
    cr_assert(strstr(err, "certificate does not verify against ssl_ca") != NULL, "%s", err);
    cr_assert(strstr(err, "CA cert does not include key usage extension") != NULL, "%s", err);
}

Test(brought_certs, a_node_serves_a_client_that_verifies_the_ca)
{
    NEED_OPENSSL();
    struct clink_tls_ctx *tls = NULL;
    char err[512];
    cr_assert_eq(make_ctx(0, &tls, err, sizeof(err)), 0, "%s", err);
    /* Both ends hold the one shared certificate, as the document's nodes do. */
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;

    cr_assert_eq(ts_dial_mode(cli, srv, NULL, CLINK_SSL_VERIFY_CA, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(st.verified, "ca");

    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(tls);
}

Test(brought_certs, verify_identity_by_ip_says_what_to_set)
{
    NEED_OPENSSL();
    struct clink_tls_ctx *tls = NULL;
    char err[512];
    cr_assert_eq(make_ctx(0, &tls, err, sizeof(err)), 0, "%s", err);
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;

    /* No expected name: the host, 127.0.0.1, which a CN-only certificate cannot match. */
    int ret = ts_dial_mode(cli, srv, NULL, CLINK_SSL_VERIFY_IDENTITY, &st, err, sizeof(err));
    cr_assert_eq(ret, -CLINK_EVERIFY, "%s", err);
    cr_assert(strstr(err, "IP address mismatch") != NULL, "%s", err);
    cr_assert(strstr(err, "ssl_server_name = " SERVER_CN) != NULL, "%s", err);
    cr_assert(strstr(err, "ssl_mode = VERIFY_CA") != NULL, "%s", err);

    /* What the message says to set works. */
    ret = ts_dial_mode(cli, srv, SERVER_CN, CLINK_SSL_VERIFY_IDENTITY, &st, err, sizeof(err));
    cr_assert_eq(ret, 0, "%s", err);
    cr_assert_str_eq(st.verified, "identity");

    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(tls);
}

static int warned(const struct clink_cert_warning *w, size_t n, enum clink_cert_kind kind, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (w[i].kind == kind && strstr(w[i].text, what) != NULL && strstr(w[i].text, "clink-certs ") != NULL) {
            return 1;
        }
    }
    return 0;
}

Test(brought_certs, the_warnings_name_what_is_weak_and_the_command_for_better)
{
    NEED_OPENSSL();
    struct clink_tls_ctx *tls = NULL;
    char err[512];
    cr_assert_eq(make_ctx(0, &tls, err, sizeof(err)), 0, "%s", err);
    struct clink_cert_warning w[16];
    size_t n = clink_tls_ctx_lint(tls, "127.0.0.1", (int64_t)time(NULL), w, 16);
    cr_assert_leq(n, 16);

    cr_assert(warned(w, n, CLINK_CERT_OWN, "X.509 v1"), "no v1 warning among %zu", n);
    cr_assert(warned(w, n, CLINK_CERT_OWN, "no subjectAltName"), "no SAN warning among %zu", n);
    cr_assert(warned(w, n, CLINK_CERT_OWN, "ssl_server_name = " SERVER_CN));
    cr_assert(warned(w, n, CLINK_CERT_OWN, "shared by every node"), "no shared-certificate warning");
    cr_assert(warned(w, n, CLINK_CERT_CA, "without keyUsage"), "no keyUsage warning among %zu", n);
    for (size_t i = 0; i < n; i++) {
        cr_assert(strstr(w[i].subject, "memsql.ssl.test.") != NULL, "%s", w[i].subject);
    }
    /* Nothing expires within 30 days of now; 3590 days on, both do. */
    cr_assert_not(warned(w, n, CLINK_CERT_OWN, "expires in"));
    n = clink_tls_ctx_lint(tls, NULL, (int64_t)time(NULL) + 3590LL * 86400, w, 16);
    cr_assert(warned(w, n, CLINK_CERT_OWN, "expires in"));
    cr_assert(warned(w, n, CLINK_CERT_CA, "expires in"));
    cr_assert_not(warned(w, n, CLINK_CERT_OWN, "shared by every node"), "host NULL: not checked");
    clink_tls_ctx_free(tls);
}

Test(brought_certs, clink_certs_certificates_draw_no_warning)
{
    struct ts_pki pki;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_cert_warning w[16];
    size_t n = clink_tls_ctx_lint(tls, "127.0.0.1", (int64_t)time(NULL), w, 16);
    cr_assert_eq(n, 0, "%zu warnings, the first: %s", n, n > 0 ? w[0].text : "");
    /* A per-node certificate (it has SANs) dialled by name is not taken for a shared one on another address. */
    n = clink_tls_ctx_lint(tls, "10.9.8.7", (int64_t)time(NULL), w, 16);
    cr_assert_eq(n, 0, "%zu warnings, the first: %s", n, n > 0 ? w[0].text : "");
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

/*
 * Under ssl_x509_strict the CN is never a name (RFC 6125): a v3 certificate
 * that passes RFC 5280's profile but has no subjectAltName verifies its
 * chain and fails its identity, which by default its CN gives it.
 */
Test(brought_certs, strict_takes_names_from_the_subject_alt_name_only)
{
    NEED_OPENSSL();
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && { "
             "openssl req -new -x509 -nodes -days 3600 -key ca-key.pem -out v3-ca.pem -subj '" SUBJ
             "memsql.ssl.test.ca' -addext keyUsage=critical,keyCertSign,cRLSign && "
             "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature,keyEncipherment\\n"
             "extendedKeyUsage=serverAuth,clientAuth\\nsubjectKeyIdentifier=hash\\n"
             "authorityKeyIdentifier=keyid\\n' > v3.ext && "
             "openssl x509 -req -in server-req.pem -days 3600 -CA v3-ca.pem -CAkey ca-key.pem -set_serial 02 "
             "-extfile v3.ext -out v3-cert.pem; } >> openssl.log 2>&1",
             dir);
    cr_assert_eq(system(cmd), 0, "openssl failed (see %s/openssl.log)", dir);
    char v3ca[128], v3cert[128], err[512];
    snprintf(v3ca, sizeof(v3ca), "%s/v3-ca.pem", dir);
    snprintf(v3cert, sizeof(v3cert), "%s/v3-cert.pem", dir);

    for (int strict = 0; strict <= 1; strict++) {
        struct clink_tls_opts o = {
            .cert_file = v3cert, .key_file = key, .ca_file = v3ca, .allow_open_key_file = 1, .x509_strict = strict};
        struct clink_tls_ctx *tls = NULL;
        cr_assert_eq(clink_tls_ctx_new(&o, &tls, err, sizeof(err)), 0, "strict %d: %s", strict, err);
        struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
        struct clink_node *cli = ts_client(tls, 1, 0);
        struct clink_conn_status st;
        int ret = ts_dial_mode(cli, srv, SERVER_CN, CLINK_SSL_VERIFY_IDENTITY, &st, err, sizeof(err));
        if (strict) {
            cr_assert_eq(ret, -CLINK_EVERIFY, "strict: the CN must not be a name");
            cr_assert(strstr(err, "hostname mismatch") != NULL, "%s", err);
            cr_assert(strstr(err, "ssl_x509_strict = ON its CN is no name") != NULL, "%s", err);
            cr_assert(strstr(err, "ssl_server_name") == NULL, "no advice that cannot work: %s", err);
        } else {
            cr_assert_eq(ret, 0, "%s", err);
        }
        cr_assert_eq(ts_dial_mode(cli, srv, NULL, CLINK_SSL_VERIFY_CA, &st, err, sizeof(err)), 0, "%s", err);
        clink_node_free(cli);
        clink_node_free(srv);
        clink_tls_ctx_free(tls);
    }
}
