/*
 * One port, every kind of client (docs/protocol.md, "Opening"): TLS,
 * plaintext where allowed, and a MySQL-protocol client.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"

TestSuite(opening, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

Test(opening, plaintext_client_served_where_allowed)
{
    struct clink_node *srv = ts_node(tls, 1, 1, ts_register_echo);
    struct clink_node *cli = ts_client(NULL, 1, 1);
    struct clink_connect_opts o = ts_dial(srv, NULL);
    o.mode = CLINK_MODE_PLAIN;
    struct clink_conn *c;
    char err[256];

    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "plain", 5, ts_ms(5000), &r), 0);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);

    cr_assert_eq(r.len, 5);
    cr_assert_eq(st.mode, CLINK_MODE_PLAIN);
    cr_assert_str_eq(st.tls_version, "");
    cr_assert_str_eq(st.cipher, "");
    clink_msg_free(&r);
    /* The same port still serves TLS clients. */
    ts_expect_echo_works(tls, srv);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(opening, plaintext_client_refused_by_tls_only_node)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(NULL, 1, 1);
    struct clink_connect_opts o = ts_dial(srv, NULL);
    o.mode = CLINK_MODE_PLAIN;
    struct clink_conn *c = NULL;

    int ret = clink_connect_sync(cli, &o, &c, NULL, 0);

    cr_assert_eq(ret, -CLINK_EPLAINTEXT, "%s", clink_strerror(ret));
    cr_assert_null(c);
    struct clink_node_stats st;
    clink_node_get_stats(srv, &st);
    cr_assert_eq(st.conns_refused, 1);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(opening, node_without_plaintext_permission_cannot_dial_plaintext)
{
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = 9, .mode = CLINK_MODE_PLAIN};
    struct clink_conn *c = NULL;

    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), -CLINK_EPLAINTEXT);
    clink_node_free(cli);
}

Test(opening, mysql_protocol_client_gets_greeting_then_mysql_error)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    int fd = ts_tcp_connect(clink_node_port(srv));

    /* A MySQL client waits for the server: the greeting must come unprompted. */
    uint8_t g[512];
    cr_assert_eq(ts_read_full(fd, g, 4), 0);
    size_t glen = g[0] | (g[1] << 8) | ((size_t)g[2] << 16);
    cr_assert_lt(glen, sizeof(g));
    cr_assert_eq(ts_read_full(fd, g + 4, glen), 0);
    cr_assert_eq(g[3], 0);
    cr_assert_eq(g[4], 10, "protocol version 10");
    cr_assert(strstr((char *)g + 5, "clink") != NULL, "version string says clink: %s", (char *)g + 5);
    /* A HandshakeResponse41-shaped packet (length 36, sequence 1). */
    uint8_t resp[40] = {36, 0, 0, 1, 0x85, 0xa6, 0x03, 0};
    cr_assert_eq(send(fd, resp, sizeof(resp), 0), (ssize_t)sizeof(resp));
    uint8_t e[256];
    cr_assert_eq(ts_read_full(fd, e, 4), 0);
    size_t elen = e[0] | (e[1] << 8);
    cr_assert_eq(ts_read_full(fd, e + 4, elen), 0);

    cr_assert_eq(e[4], 0xff, "ERR packet");
    cr_assert_eq(e[5] | (e[6] << 8), 1105);
    cr_assert_eq(ts_read_full(fd, e, 1), -1, "then the connection closes");
    close(fd);
    ts_expect_echo_works(tls, srv);
    clink_node_free(srv);
}
