/*
 * Handshakes between nodes on loopback (real OpenSSL, real io_uring): what
 * each end verifies, what it refuses and in which words, and the TLS policy
 * (ALPN, versions, revocation, the records the kTLS hand-off counts on).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"
#include "transport/frame.h"

TestSuite(handshake, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

Test(handshake, tls_handshake_and_echo)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));
    cr_assert_eq(ret, 0, "connect: %s", err);
    struct clink_msg resp;
    ret = clink_call_sync(c, TS_ECHO, "hello", 5, ts_ms(5000), &resp);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);

    cr_assert_eq(ret, 0, "call: %s", clink_strerror(ret));
    cr_assert_eq(resp.len, 5);
    cr_assert_arr_eq(resp.data, "hello", 5);
    cr_assert_str_eq(st.tls_version, "TLSv1.3");
    cr_assert(strcmp(st.cipher, "TLS_AES_128_GCM_SHA256") == 0 || strcmp(st.cipher, "TLS_AES_256_GCM_SHA384") == 0 ||
                  strcmp(st.cipher, "TLS_CHACHA20_POLY1305_SHA256") == 0,
              "cipher %s", st.cipher);
    cr_assert_str_eq(st.alpn, "clink/1");
    cr_assert_str_eq(st.peer_subject, "CN=localhost");
    cr_assert_str_eq(st.peer_issuer, "CN=clink test CA");
    cr_assert_gt(st.peer_not_after, 0);
    struct clink_features f;
    clink_node_features(cli, &f);
    if (f.ktls) { /* the kernel took both directions over (and carried this very call) */
        cr_assert_eq(st.ktls_tx, CLINK_KTLS_ON, "%s", st.ktls_reason);
        cr_assert_eq(st.ktls_rx, CLINK_KTLS_ON, "%s", st.ktls_reason);
    } else {
        cr_assert_eq(st.ktls_tx, CLINK_KTLS_OFF);
        cr_assert_str_eq(st.ktls_reason, "this kernel offers no kTLS (no 'tls' in tcp_available_ulp)");
    }
    cr_assert_eq(st.open, 1);
    cr_assert_eq(st.proto_version, 2);
    cr_assert_geq(st.frames_out, 3); /* HELLO, SETTINGS, request */
    clink_msg_free(&resp);

    ret = clink_call_sync(c, TS_FAIL, "x", 1, ts_ms(5000), &resp);
    cr_assert_eq(ret, -CLINK_EREMOTE);
    cr_assert_eq(resp.len, 4);
    cr_assert_arr_eq(resp.data, "nope", 4);
    clink_msg_free(&resp);

    ret = clink_call_sync(c, 77, "x", 1, ts_ms(5000), &resp);
    cr_assert_eq(ret, -CLINK_ENOMETHOD);
    clink_msg_free(&resp);

    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(handshake, untrusted_ca_is_refused_with_reason)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_tls_ctx *other = ts_tls(pki.other_cert, pki.other_key, pki.other_ca);
    struct clink_node *cli = ts_client(other, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_EVERIFY, "got %d %s", ret, clink_strerror(ret));
    cr_assert_null(c);
    /* OpenSSL's words for it depend on the chain sent: either names the untrusted issuer. */
    cr_assert(strstr(err, "certificate verify failed: unable to get local issuer certificate") != NULL ||
                  strstr(err, "certificate verify failed: self-signed certificate in certificate chain") != NULL,
              "reason: %s", err);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(other);
}

Test(handshake, hostname_mismatch_is_refused)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "leaf-7.example");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_EVERIFY, "got %s", clink_strerror(ret));
    cr_assert(strstr(err, "certificate verify failed: hostname mismatch") != NULL, "reason: %s", err);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(handshake, server_refuses_client_from_another_ca)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    /* clink itself refuses a context whose own certificate does not chain to its CA bundle... */
    struct clink_tls_opts o2 = {.cert_file = pki.other_cert, .key_file = pki.other_key, .ca_file = pki.ca};
    struct clink_tls_ctx *bad = NULL;
    char err[512];
    cr_assert_eq(clink_tls_ctx_new(&o2, &bad, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "does not verify against ssl_ca") != NULL, "%s", err);
    /* ...so a raw client plays the stranger: it trusts our CA but shows another CA's certificate. */
    struct tls_peer r;
    struct clink_node_stats st;

    int hs = ts_raw_tls_as(&r, clink_node_port(srv), pki.other_cert, pki.other_key, pki.ca);
    uint8_t b[64];
    int n = hs == 0 ? ts_raw_read(&r, b, sizeof(b)) : 0;
    for (int i = 0; i < 400; i++) {
        clink_node_get_stats(srv, &st);
        if (st.handshakes_failed > 0) {
            break;
        }
        usleep(5000);
    }

    cr_assert_eq(n, 0, "the server must not talk to it");
    cr_assert_eq(st.handshakes_failed, 1);
    cr_assert_eq(st.conns_open, 0);
    tls_peer_free(&r);
    ts_expect_echo_works(tls, srv);
    clink_node_free(srv);
}

Test(handshake, revoked_client_certificate_is_refused)
{
    char ca_key[512], agg[512], agg_key[512], crl[512], err[512];
    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", pki.dir);
    snprintf(agg, sizeof(agg), "%s/agg.pem", pki.dir);
    snprintf(agg_key, sizeof(agg_key), "%s/agg-key.pem", pki.dir);
    snprintf(crl, sizeof(crl), "%s/crl.pem", pki.dir);
    struct clink_cert_opts co = {.common_name = "agg"};
    cr_assert_eq(clink_cert_make_node(&co, pki.ca, ca_key, agg, agg_key, 0, err, sizeof(err)), 0, "%s", err);
    const char *revoked[] = {agg, NULL};
    cr_assert_eq(clink_cert_make_crl(pki.ca, ca_key, revoked, 0, crl, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_opts so = {
        .cert_file = pki.node_cert, .key_file = pki.node_key, .ca_file = pki.ca, .crl_file = crl};
    struct clink_tls_ctx *stls;
    cr_assert_eq(clink_tls_ctx_new(&so, &stls, err, sizeof(err)), 0, "%s", err);
    struct clink_node *srv = ts_node(stls, 1, 0, ts_register_echo);
    struct clink_tls_ctx *agg_tls = ts_tls(agg, agg_key, pki.ca);
    struct clink_node *revoked_cli = ts_client(agg_tls, 1, 0);
    struct clink_node *good_cli = ts_client(tls, 1, 0);
    struct clink_conn_status st;

    int bad = ts_dial_mode(revoked_cli, srv, "localhost", CLINK_SSL_DEFAULT, &st, err, sizeof(err));
    int good = ts_dial_mode(good_cli, srv, "localhost", CLINK_SSL_DEFAULT, &st, err, sizeof(err));

    cr_assert_eq(bad, -CLINK_EVERIFY, "a revoked certificate must be refused: %s", clink_strerror(bad));
    cr_assert_eq(good, 0, "%s", err);
    clink_node_free(revoked_cli);
    clink_node_free(good_cli);
    clink_node_free(srv);
    clink_tls_ctx_free(agg_tls);
    clink_tls_ctx_free(stls);
    unlink(agg);
    unlink(agg_key);
    unlink(crl);
}

/* ---- TLS policy: ALPN required, TLS 1.2 only where configured ---- */

Test(handshake, client_without_alpn_is_refused)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct tls_peer r;
    struct ts_raw_opts o = {.cert = pki.node_cert, .key = pki.node_key, .ca = pki.ca, .no_alpn = 1};

    int hs = ts_raw_tls_with(&r, clink_node_port(srv), &o);

    cr_assert_neq(hs, 0, "a client that does not speak clink/1 must not complete the handshake");
    struct clink_node_stats st;
    for (int i = 0; i < 400; i++) {
        clink_node_get_stats(srv, &st);
        if (st.handshakes_failed > 0) {
            break;
        }
        usleep(5000);
    }
    cr_assert_eq(st.handshakes_failed, 1);
    tls_peer_free(&r);
    clink_node_free(srv);
}

Test(handshake, tls12_refused_by_default_accepted_when_configured)
{
    struct clink_node *srv13 = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_tls_opts o12 = {
        .cert_file = pki.node_cert, .key_file = pki.node_key, .ca_file = pki.ca, .min_version = CLINK_TLS_1_2};
    struct clink_tls_ctx *tls12;
    cr_assert_eq(clink_tls_ctx_new(&o12, &tls12, NULL, 0), 0);
    struct clink_node *srv12 = ts_node(tls12, 1, 0, ts_register_echo);
    struct ts_raw_opts ro = {.cert = pki.node_cert, .key = pki.node_key, .ca = pki.ca, .max_version = TLS1_2_VERSION};
    struct tls_peer a, b;

    int refused = ts_raw_tls_with(&a, clink_node_port(srv13), &ro);
    int accepted = ts_raw_tls_with(&b, clink_node_port(srv12), &ro);

    cr_assert_neq(refused, 0, "a TLS 1.3-only node must refuse a TLS 1.2 client");
    cr_assert_eq(accepted, 0, "TLS 1.2 where configured");
    cr_assert_str_eq(SSL_get_version(b.ssl), "TLSv1.2");
    ts_raw_hello(&b, 1, 1);
    uint8_t hdr[CLINK_FRAME_HDR + CLINK_HELLO_LEN];
    cr_assert_eq(ts_raw_read(&b, hdr, sizeof(hdr)), (int)sizeof(hdr), "frames flow over TLS 1.2");
    tls_peer_free(&a);
    tls_peer_free(&b);
    clink_node_free(srv13);
    clink_node_free(srv12);
    clink_tls_ctx_free(tls12);
}

/* ---- the TLS details the kTLS hand-off will rely on ---- */

Test(handshake, server_counts_ticket_records_before_its_first_frame)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);

    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);

    /*
     * Two NewSessionTicket records, then one with the HELLO and SETTINGS
     * frames (protocol 2): all under the server's application key. The
     * client wrote its HELLO, then its SETTINGS once the server's HELLO said
     * version 2 (encrypted in the same loop pass that opened the connection,
     * so the status may come before or after it).
     */
    cr_assert_eq(st.records_in, 3, "client read %llu records", (unsigned long long)st.records_in);
    cr_assert(st.records_out == 1 || st.records_out == 2, "client wrote %llu records",
              (unsigned long long)st.records_out);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}
