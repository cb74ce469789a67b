/*
 * The client's ssl modes (the mysql client's names) against real nodes:
 * how much each one verifies, and when it may fall back to plaintext.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"

TestSuite(ssl_modes, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

Test(ssl_modes, verify_ca_skips_the_name_verify_identity_does_not)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;
    char err[256];

    int ca = ts_dial_mode(cli, srv, "leaf-9.example", CLINK_SSL_VERIFY_CA, &st, err, sizeof(err));
    cr_assert_eq(ca, 0, "%s", err);
    cr_assert_str_eq(st.verified, "ca");
    int id = ts_dial_mode(cli, srv, "leaf-9.example", CLINK_SSL_VERIFY_IDENTITY, &st, err, sizeof(err));
    cr_assert_eq(id, -CLINK_EVERIFY);
    int def = ts_dial_mode(cli, srv, "localhost", CLINK_SSL_DEFAULT, &st, err, sizeof(err));
    cr_assert_eq(def, 0, "%s", err);
    cr_assert_str_eq(st.verified, "identity", "the default verifies the identity");

    clink_node_free(cli);
    clink_node_free(srv);
}

Test(ssl_modes, required_encrypts_without_verifying)
{
    /* A server with a certificate from a CA the client does not trust, asking no client certificate. */
    struct clink_tls_opts so = {.cert_file = pki.other_cert,
                                .key_file = pki.other_key,
                                .ca_file = pki.other_ca,
                                .client_cert = CLINK_CLIENT_CERT_NONE};
    struct clink_tls_ctx *stls;
    cr_assert_eq(clink_tls_ctx_new(&so, &stls, NULL, 0), 0);
    struct clink_node *srv = ts_node(stls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;
    char err[256];

    int req = ts_dial_mode(cli, srv, "localhost", CLINK_SSL_REQUIRED, &st, err, sizeof(err));
    cr_assert_eq(req, 0, "%s", err);
    cr_assert_str_eq(st.tls_version, "TLSv1.3");
    cr_assert_str_eq(st.verified, "none");
    int ca = ts_dial_mode(cli, srv, "localhost", CLINK_SSL_VERIFY_CA, &st, err, sizeof(err));
    cr_assert_eq(ca, -CLINK_EVERIFY, "%s", err);

    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(stls);
}

Test(ssl_modes, preferred_without_tls_identity_is_logged_and_counted)
{
    struct clink_node *srv = ts_node(tls, 1, 1, ts_register_echo);
    struct clink_node *plain_cli = ts_client(NULL, 1, 1);
    struct clink_node *tls_cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;
    char err[256];
    struct clink_node_stats ns;

    cr_assert_eq(ts_dial_mode(plain_cli, srv, NULL, CLINK_SSL_PREFERRED, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(st.mode, CLINK_MODE_PLAIN);
    clink_node_get_stats(plain_cli, &ns);
    cr_assert_eq(ns.plaintext_fallbacks, 1);
    cr_assert_eq(ts_dial_mode(tls_cli, srv, NULL, CLINK_SSL_PREFERRED, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(st.tls_version, "TLSv1.3", "PREFERRED uses TLS when it can");
    cr_assert_eq(ts_dial_mode(tls_cli, srv, NULL, CLINK_SSL_DISABLED, &st, err, sizeof(err)), -CLINK_EPLAINTEXT,
                 "DISABLED needs a node that allows plaintext");
    cr_assert_eq(ts_dial_mode(plain_cli, srv, NULL, CLINK_SSL_DISABLED, &st, err, sizeof(err)), 0);
    cr_assert_eq(st.mode, CLINK_MODE_PLAIN);

    clink_node_free(plain_cli);
    clink_node_free(tls_cli);
    clink_node_free(srv);
}
