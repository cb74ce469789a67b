/*
 * Transport tests on real loopback sockets, real OpenSSL and real io_uring.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

static struct ts_pki pki;
static struct clink_tls_ctx *tls;

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
}

static void teardown(void)
{
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

TestSuite(transport, .init = setup, .fini = teardown, .timeout = 60);

static struct clink_connect_opts dial(struct clink_node *srv, const char *name)
{
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = name};
    return o;
}

Test(transport, tls_handshake_and_echo)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));
    cr_assert_eq(ret, 0, "connect: %s", err);
    struct clink_msg resp;
    ret = clink_call_sync(c, TS_ECHO, "hello", 5, ts_ms(5000), &resp);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_status(c, &st), 0);

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
    cr_assert_eq(st.ktls_tx, CLINK_KTLS_OFF);
    cr_assert_neq(st.ktls_reason[0], '\0');
    cr_assert_eq(st.open, 1);
    cr_assert_eq(st.proto_version, 1);
    cr_assert_geq(st.frames_out, 2); /* HELLO + request */
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

Test(transport, untrusted_ca_is_refused_with_reason)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_tls_ctx *other = ts_tls(pki.other_cert, pki.other_key, pki.other_ca);
    struct clink_node *cli = ts_client(other, 1, 0);
    struct clink_connect_opts o = dial(srv, "localhost");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_EVERIFY, "got %d %s", ret, clink_strerror(ret));
    cr_assert_null(c);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(other);
}

Test(transport, hostname_mismatch_is_refused)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = dial(srv, "leaf-7.example");
    struct clink_conn *c = NULL;
    char err[256];

    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_EVERIFY, "got %s", clink_strerror(ret));
    clink_node_free(cli);
    clink_node_free(srv);
}
