/*
 * Certificate faults while a cluster runs: a server certificate that
 * expires under open connections (they go on; every new handshake, a
 * resumed one included, is refused and says why), and a CA rotated in
 * three steps (trust both, move identities, retire the old CA) with no
 * failed call and no failed dial, after which the old CA's certificates are
 * refused and a link still between them is closed gracefully.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/auth.h"
#include "clink/transport.h"
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

TestSuite(cert_faults, .init = setup, .fini = teardown, .timeout = 60);

static const char *dns[] = {"localhost", NULL};
static const char *ips[] = {"127.0.0.1", NULL};

static void make_node_cert(const char *ca, const char *ca_key, const char *name, int64_t valid_for_s)
{
    char cert[300], key[300], err[256];
    snprintf(cert, sizeof(cert), "%s/%s.pem", pki.dir, name);
    snprintf(key, sizeof(key), "%s/%s-key.pem", pki.dir, name);
    struct clink_cert_opts o = {.common_name = "localhost",
                                .dns_names = dns,
                                .ip_addrs = ips,
                                .not_before_offset_s = valid_for_s ? -1 : 0,
                                .valid_for_s = valid_for_s};
    cr_assert_eq(clink_cert_make_node(&o, ca, ca_key, cert, key, 1, err, sizeof(err)), 0, "%s", err);
}

static struct clink_node *server(struct clink_tls_ctx *t)
{
    struct clink_node_opts o = {.workers = 1, .tls = t};
    return ts_node_with(&o, ts_register_echo);
}

static int dial(struct clink_node *cli, struct clink_node *srv, struct clink_conn **c, char *err, size_t cap)
{
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost", .timeout_ms = ts_ms(5000)};
    err[0] = '\0';
    return clink_connect_sync(cli, &o, c, err, cap);
}

static void echo_ok(struct clink_conn *c)
{
    struct clink_msg r;
    int ret = clink_call_sync(c, TS_ECHO, "ping", 4, ts_ms(5000), &r);
    cr_assert_eq(ret, 0, "call: %s", clink_strerror(ret));
    cr_assert_eq(r.len, 4);
    clink_msg_free(&r);
}

static int resumed(struct clink_conn *c)
{
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    return st.resumed;
}

Test(cert_faults, a_certificate_that_expires_under_open_connections)
{
    char ca_key[300], cert[300], key[300], err[256];
    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", pki.dir);
    make_node_cert(pki.ca, ca_key, "short", 5); /* valid from 1 s ago for 5 s */
    snprintf(cert, sizeof(cert), "%s/short.pem", pki.dir);
    snprintf(key, sizeof(key), "%s/short-key.pem", pki.dir);
    time_t until = time(NULL) + 4;

    struct clink_tls_ctx *st = ts_tls(cert, key, pki.ca);
    struct clink_tls_ctx *ct = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_node *srv = server(st);
    struct clink_node *cli = ts_client(ct, 1, 0);
    struct clink_conn *open1, *c;
    cr_assert_eq(dial(cli, srv, &open1, err, sizeof(err)), 0, "%s", err);
    echo_ok(open1);
    /* While valid, a ticket from that handshake resumes. */
    int was_resumed = 0;
    for (int i = 0; i < 50 && !was_resumed; i++) {
        cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "%s", err);
        was_resumed = resumed(c);
        clink_conn_close(c);
        usleep(10000);
    }
    cr_assert(was_resumed, "no resumption while the certificate was valid");
    cr_assert_lt(time(NULL), until, "the machine was too slow: the certificate expired before the test could use it");
    while (time(NULL) <= until + 1) {
        usleep(100000);
    }

    /* Established: it goes on (docs/SECURITY.md: pools bound its age with recycle_age_ms). */
    echo_ok(open1);
    /* New handshakes: refused, resumed ones first (the client offers its last ticket), and say why. */
    for (int i = 0; i < 3; i++) {
        c = NULL;
        int ret = dial(cli, srv, &c, err, sizeof(err));
        cr_assert_eq(ret, -CLINK_EVERIFY, "dial %d after expiry: %s (%s)", i, clink_strerror(ret), err);
        cr_assert_null(c);
        cr_assert(strstr(err, "certificate has expired") != NULL, "dial %d: %s", i, err);
    }
    struct clink_node_stats cs;
    clink_node_get_stats(cli, &cs);
    cr_assert_geq(cs.handshakes_failed, 3);

    /* The operator renews it; a reload serves the new one, with no restart. */
    make_node_cert(pki.ca, ca_key, "renewed", 0);
    snprintf(cert, sizeof(cert), "%s/renewed.pem", pki.dir);
    snprintf(key, sizeof(key), "%s/renewed-key.pem", pki.dir);
    struct clink_tls_ctx *renewed = ts_tls(cert, key, pki.ca);
    cr_assert_eq(clink_node_reload_tls(srv, renewed), 0);
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "after the renewal: %s", err);
    echo_ok(c);
    clink_conn_close(c);
    echo_ok(open1);
    clink_conn_close(open1);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(renewed);
    clink_tls_ctx_free(st);
    clink_tls_ctx_free(ct);
}

Test(cert_faults, a_ca_rotated_in_three_steps_fails_nothing)
{
    char ca2[300], ca2_key[300], ca1_key[300], both[300], cert2[300], key2[300], err[256];
    snprintf(ca1_key, sizeof(ca1_key), "%s/ca-key.pem", pki.dir);
    snprintf(ca2, sizeof(ca2), "%s/ca2.pem", pki.dir);
    snprintf(ca2_key, sizeof(ca2_key), "%s/ca2-key.pem", pki.dir);
    snprintf(both, sizeof(both), "%s/both.pem", pki.dir);
    snprintf(cert2, sizeof(cert2), "%s/node2.pem", pki.dir);
    snprintf(key2, sizeof(key2), "%s/node2-key.pem", pki.dir);
    struct clink_cert_opts cao = {.common_name = "clink test CA 2"};
    cr_assert_eq(clink_cert_make_ca(&cao, ca2, ca2_key, 0, err, sizeof(err)), 0, "%s", err);
    make_node_cert(ca2, ca2_key, "node2", 0);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s'", pki.ca, ca2, both);
    cr_assert_eq(system(cmd), 0);

    /* Before: everything under CA 1. */
    struct clink_tls_ctx *t1 = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_node *srv = server(t1);
    struct clink_node *cli = ts_client(t1, 1, 0);
    struct clink_conn *open1, *c;
    cr_assert_eq(dial(cli, srv, &open1, err, sizeof(err)), 0, "%s", err);
    echo_ok(open1);

    /* Step 1: every node trusts both CAs (identities unchanged). */
    struct clink_tls_ctx *trust_both = ts_tls(pki.node_cert, pki.node_key, both);
    cr_assert_eq(clink_node_reload_tls(srv, trust_both), 0);
    cr_assert_eq(clink_node_reload_tls(cli, trust_both), 0);
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "step 1: %s", err);
    echo_ok(c);
    clink_conn_close(c);
    echo_ok(open1);

    /* Step 2: identities move to CA 2, one node after the other: the mix verifies both ways. */
    struct clink_tls_ctx *new_id = ts_tls(cert2, key2, both);
    cr_assert_eq(clink_node_reload_tls(srv, new_id), 0);
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "step 2, server moved: %s", err);
    echo_ok(c);
    clink_conn_close(c);
    cr_assert_eq(clink_node_reload_tls(cli, new_id), 0);
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "step 2, both moved: %s", err);
    echo_ok(c);
    clink_conn_close(c);
    echo_ok(open1);

    /*
     * Step 3: CA 1 retired. Dials keep working, including the first one,
     * which may offer a ticket from a session CA 1 vouched for: a reload
     * starts a new trust epoch, so it is verified again, not trusted.
     */
    struct clink_tls_ctx *only2 = ts_tls(cert2, key2, ca2);
    cr_assert_eq(clink_node_reload_tls(srv, only2), 0);
    cr_assert_eq(clink_node_reload_tls(cli, only2), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "step 3, dial %d: %s", i, err);
        echo_ok(c);
        clink_conn_close(c);
    }
    /*
     * Established under CA 1, whose certificates nothing trusts now: the
     * reload closed it gracefully (GOAWAY, counted as untrusted), so a pool
     * would have moved its calls to a link made under CA 2 and failed none.
     */
    for (int i = 0; i < 500 && clink_conn_is_open(open1); i++) {
        usleep(10000);
    }
    cr_assert_not(clink_conn_is_open(open1), "a link between CA 1 certificates outlived CA 1's retirement");
    struct clink_node_stats ss, cs;
    clink_node_get_stats(srv, &ss);
    clink_node_get_stats(cli, &cs);
    cr_assert_geq(ss.links_closed_untrusted + cs.links_closed_untrusted, 1);
    cr_assert_eq(ss.links_closed_revoked + cs.links_closed_revoked, 0);

    /* A node still on CA 1 is now refused, and the refusal names it. */
    struct clink_node *stale = server(t1);
    c = NULL;
    int ret = dial(cli, stale, &c, err, sizeof(err));
    cr_assert_eq(ret, -CLINK_EVERIFY, "%s (%s)", clink_strerror(ret), err);
    cr_assert(strstr(err, "certificate verify failed") != NULL && strstr(err, "CN=clink test CA)") != NULL, "%s",
              err); /* names the retired CA */

    clink_conn_close(open1);
    clink_node_free(stale);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(only2);
    clink_tls_ctx_free(new_id);
    clink_tls_ctx_free(trust_both);
    clink_tls_ctx_free(t1);
}
