/*
 * TLS 1.3 session resumption: tickets kept per peer identity and used once,
 * server ticket keys (in memory, or an operator's file shared across a
 * restart), a resumed session still proving the expected identity, and
 * tickets surviving a connection that did not end in an orderly way.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clink/transport.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"
#include "transport/conn_int.h"

TestSuite(resume, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

static struct clink_node *server_on(struct clink_tls_ctx *t, uint16_t port)
{
    struct clink_node_opts o = {.workers = 1, .tls = t, .handshake_timeout_ms = ts_ms(5000)};
    struct clink_node *n;
    cr_assert_eq(clink_node_new(&o, &n), 0);
    ts_register_echo(n);
    cr_assert_eq(clink_node_listen(n, "127.0.0.1", port), 0);
    cr_assert_eq(clink_node_start(n), 0);
    return n;
}

/* Dial, check the echo, return whether the session was resumed. */
static int dial_once(struct clink_node *cli, uint16_t port, const char *name, int *status_out)
{
    struct clink_connect_opts co = {
        .host = "127.0.0.1", .port = port, .expected_name = name, .timeout_ms = ts_ms(5000)};
    struct clink_conn *c;
    char err[256] = "";
    int ret = clink_connect_sync(cli, &co, &c, err, sizeof(err));
    if (status_out != NULL) {
        *status_out = ret;
    }
    if (ret != 0) {
        return -1;
    }
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "x", 1, ts_ms(5000), &r), 0);
    clink_msg_free(&r);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    clink_conn_close(c);
    return st.resumed;
}

static void key_of(char *key, size_t cap, const char *name, uint16_t port)
{
    snprintf(key, cap, "v2|%s|%u", name, port);
}

/* Tickets arrive after the handshake; wait until the client has filed n of them. */
static void wait_tickets(struct clink_node *cli, const char *key, size_t n)
{
    for (int i = 0; i < 500 && clink__sessions_count(&cli->sessions, key) < n; i++) {
        usleep(2000);
    }
    cr_assert_geq(clink__sessions_count(&cli->sessions, key), n, "tickets for %s", key);
}

Test(resume, reconnect_resumes_and_each_ticket_is_used_once)
{
    struct clink_node *srv = server_on(tls, 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    uint16_t port = clink_node_port(srv);
    char key[128];
    key_of(key, sizeof(key), "localhost", port);

    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 0, "first dial: full handshake");
    wait_tickets(cli, key, 2);
    size_t before = clink__sessions_count(&cli->sessions, key);
    SSL_SESSION *peek = clink__sessions_take(&cli->sessions, key);
    cr_assert_not_null(peek);
    /* Tickets are told apart by their bytes: a freed session's address may well come back for another. */
    const unsigned char *tick;
    size_t peek_len;
    SSL_SESSION_get0_ticket(peek, &tick, &peek_len);
    cr_assert_gt(peek_len, 0);
    unsigned char *peek_ticket = malloc(peek_len);
    memcpy(peek_ticket, tick, peek_len);
    clink__sessions_put(&cli->sessions, key, peek, clink__sessions_gen(&cli->sessions));

    for (int i = 0; i < 5; i++) {
        size_t have = clink__sessions_count(&cli->sessions, key);
        cr_assert_eq(dial_once(cli, port, "localhost", NULL), 1, "dial %d resumes (%zu tickets before)", i, have);
    }
    struct clink_node_stats s, c;
    clink_node_get_stats(srv, &s);
    clink_node_get_stats(cli, &c);
    cr_assert_eq(s.handshakes_resumed, 5);
    cr_assert_eq(c.handshakes_resumed, 5);
    cr_assert_eq(s.handshakes_ok, 6);
    /* Used once: the ticket taken first is gone, replaced by the new ones each resumption brought. */
    cr_assert_geq(cli->sessions.taken, 5);
    cr_assert_geq(before, 2);
    SSL_SESSION *x;
    while ((x = clink__sessions_take(&cli->sessions, key)) != NULL) {
        size_t len;
        SSL_SESSION_get0_ticket(x, &tick, &len);
        cr_assert(len != peek_len || memcmp(tick, peek_ticket, len) != 0,
                  "a ticket handed out is never handed out again");
        SSL_SESSION_free(x);
    }
    free(peek_ticket);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(resume, other_ports_and_names_do_not_share_tickets)
{
    struct clink_node *a = server_on(tls, 0), *b = server_on(tls, 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    char key[128];
    key_of(key, sizeof(key), "localhost", clink_node_port(a));
    cr_assert_eq(dial_once(cli, clink_node_port(a), "localhost", NULL), 0);
    wait_tickets(cli, key, 1);
    cr_assert_eq(dial_once(cli, clink_node_port(b), "localhost", NULL), 0, "b has its own keys and tickets");
    cr_assert_eq(dial_once(cli, clink_node_port(a), "127.0.0.1", NULL), 0, "another expected name: full");
    cr_assert_eq(dial_once(cli, clink_node_port(a), "localhost", NULL), 1);
    clink_node_free(cli);
    clink_node_free(a);
    clink_node_free(b);
}

Test(resume, a_resumed_session_must_still_match_the_expected_name)
{
    struct clink_node *srv = server_on(tls, 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    uint16_t port = clink_node_port(srv);
    char good[128], bad[128];
    key_of(good, sizeof(good), "localhost", port);
    key_of(bad, sizeof(bad), "leaf9.example", port);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 0);
    wait_tickets(cli, good, 1);
    /* File a valid ticket of this server under an identity its certificate does not carry. */
    SSL_SESSION *sess = clink__sessions_take(&cli->sessions, good);
    cr_assert_not_null(sess);
    clink__sessions_put(&cli->sessions, bad, sess, clink__sessions_gen(&cli->sessions));

    int status = 0;
    struct clink_connect_opts co = {
        .host = "127.0.0.1", .port = port, .expected_name = "leaf9.example", .timeout_ms = ts_ms(5000)};
    struct clink_conn *c;
    char err[256] = "";
    status = clink_connect_sync(cli, &co, &c, err, sizeof(err));
    cr_assert_eq(status, -CLINK_EVERIFY, "%d %s", status, err);
    /* The chain was verified under this trust already, so it is not verified again; the name still is. */
    cr_assert(strstr(err, "resumed session's certificate does not match 'leaf9.example'") != NULL, "%s", err);
    clink_node_free(cli);
    clink_node_free(srv);
}

static void write_key_file(const char *path)
{
    unsigned char k[80];
    cr_assert_eq(RAND_bytes(k, sizeof(k)), 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, k, sizeof(k)), (ssize_t)sizeof(k));
    close(fd);
}

Test(resume, a_shared_ticket_key_file_resumes_across_a_restart)
{
    char path[400], err[256] = "";
    snprintf(path, sizeof(path), "%s/ticket.key", pki.dir);
    write_key_file(path);
    struct clink_ticket_keys *keys;
    cr_assert_eq(clink_ticket_keys_new(path, 0, &keys, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_opts to = {
        .cert_file = pki.node_cert, .key_file = pki.node_key, .ca_file = pki.ca, .ticket_keys = keys};
    struct clink_tls_ctx *t1, *t2;
    cr_assert_eq(clink_tls_ctx_new(&to, &t1, err, sizeof(err)), 0, "%s", err);

    struct clink_node *srv = server_on(t1, 0);
    uint16_t port = clink_node_port(srv);
    struct clink_node *cli = ts_client(tls, 1, 0);
    char key[128];
    key_of(key, sizeof(key), "localhost", port);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 0);
    wait_tickets(cli, key, 2);
    clink_node_free(srv); /* the "process" goes away */
    clink_tls_ctx_free(t1);
    clink_ticket_keys_free(keys);

    /* A new process: new contexts, keys read from the same file. */
    cr_assert_eq(clink_ticket_keys_new(path, 0, &keys, err, sizeof(err)), 0, "%s", err);
    to.ticket_keys = keys;
    cr_assert_eq(clink_tls_ctx_new(&to, &t2, err, sizeof(err)), 0, "%s", err);
    srv = server_on(t2, port);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 1, "resumed after the restart");
    struct clink_ticket_stats ts;
    clink_ticket_keys_stats(keys, &ts);
    cr_assert_eq(ts.opened, 1);
    cr_assert_eq(ts.keys, 1);
    clink_node_free(srv);
    clink_tls_ctx_free(t2);

    /* Without the file (keys in memory) the same restart resumes nothing. */
    struct clink_tls_ctx *t3 = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    srv = server_on(t3, port);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 0, "in-memory keys: a restart means full handshakes");
    clink_node_free(srv);
    clink_tls_ctx_free(t3);
    clink_ticket_keys_free(keys);
    clink_node_free(cli);
}

Test(resume, key_file_errors_are_clear)
{
    char path[400], err[256];
    struct clink_ticket_keys *k;
    snprintf(path, sizeof(path), "%s/short.key", pki.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_eq(write(fd, "0123456789", 10), 10);
    close(fd);
    cr_assert_eq(clink_ticket_keys_new(path, 0, &k, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "10 bytes: expected 1 to 16 keys of 80 bytes") != NULL, "%s", err);

    snprintf(path, sizeof(path), "%s/open.key", pki.dir);
    write_key_file(path);
    chmod(path, 0644);
    cr_assert_eq(clink_ticket_keys_new(path, 0, &k, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "mode 644") != NULL, "%s", err);

    snprintf(path, sizeof(path), "%s/none.key", pki.dir);
    cr_assert_eq(clink_ticket_keys_new(path, 0, &k, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "No such file") != NULL, "%s", err);
}

Test(resume, tickets_survive_a_connection_that_died)
{
    struct clink_node *srv = server_on(tls, 0);
    uint16_t port = clink_node_port(srv);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts co = {
        .host = "127.0.0.1", .port = port, .expected_name = "localhost", .timeout_ms = ts_ms(5000)};
    struct clink_conn *c;
    char err[256] = "", key[128];
    key_of(key, sizeof(key), "localhost", port);
    cr_assert_eq(clink_connect_sync(cli, &co, &c, err, sizeof(err)), 0, "%s", err);
    wait_tickets(cli, key, 2);
    /* The server vanishes without close_notify: the client's connection fails. */
    clink_node_free(srv);
    struct clink_msg r;
    cr_assert_neq(clink_call_sync(c, TS_ECHO, "x", 1, ts_ms(2000), &r), 0);
    clink_conn_close(c);
    cr_assert_geq(clink__sessions_count(&cli->sessions, key), 1);

    /* Same keys (same context) on the same port: the tickets still resume. */
    srv = server_on(tls, port);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 1);
    clink_node_free(srv);
    clink_node_free(cli);
}

Test(resume, a_certificate_revoked_after_the_session_cannot_resume)
{
    char err[256] = "", ca_key[400], cert[400], key[400], crl0[400], crl1[400];
    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", pki.dir);
    snprintf(cert, sizeof(cert), "%s/agg.pem", pki.dir);
    snprintf(key, sizeof(key), "%s/agg-key.pem", pki.dir);
    snprintf(crl0, sizeof(crl0), "%s/empty.crl", pki.dir);
    snprintf(crl1, sizeof(crl1), "%s/revoked.crl", pki.dir);
    static const char *const dns[] = {"localhost", NULL};
    struct clink_cert_opts co = {.common_name = "agg", .dns_names = dns};
    cr_assert_eq(clink_cert_make_node(&co, pki.ca, ca_key, cert, key, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_cert_make_crl(pki.ca, ca_key, NULL, 0, crl0, err, sizeof(err)), 0, "%s", err);
    const char *revoked[] = {cert, NULL};
    cr_assert_eq(clink_cert_make_crl(pki.ca, ca_key, revoked, 0, crl1, err, sizeof(err)), 0, "%s", err);

    /* The server's ticket keys outlive its reload, as clink-node's do. */
    struct clink_ticket_keys *keys;
    cr_assert_eq(clink_ticket_keys_new(NULL, 0, &keys, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_opts so = {
        .cert_file = pki.node_cert, .key_file = pki.node_key, .ca_file = pki.ca, .crl_file = crl0, .ticket_keys = keys};
    struct clink_tls_ctx *before, *after, *client_tls;
    cr_assert_eq(clink_tls_ctx_new(&so, &before, err, sizeof(err)), 0, "%s", err);
    so.crl_file = crl1;
    cr_assert_eq(clink_tls_ctx_new(&so, &after, err, sizeof(err)), 0, "%s", err);
    client_tls = ts_tls(cert, key, pki.ca);

    struct clink_node *srv = server_on(before, 0);
    uint16_t port = clink_node_port(srv);
    struct clink_node *cli = ts_client(client_tls, 1, 0);
    char k[128];
    key_of(k, sizeof(k), "localhost", port);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 0);
    wait_tickets(cli, k, 2);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 1, "resumes while the certificate is good");
    wait_tickets(cli, k, 1);

    cr_assert_eq(clink_node_reload_tls(srv, after), 0);
    int status = 0;
    cr_assert_lt(dial_once(cli, port, "localhost", &status), 0, "a resumed session of a revoked certificate");
    cr_assert_neq(status, 0);
    cr_assert_lt(dial_once(cli, port, "localhost", &status), 0, "and a full handshake");

    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(before);
    clink_tls_ctx_free(after);
    clink_tls_ctx_free(client_tls);
    clink_ticket_keys_free(keys);
}

Test(resume, a_session_made_under_another_client_certificate_rule_does_not_resume)
{
    char err[256] = "";
    struct clink_ticket_keys *keys;
    cr_assert_eq(clink_ticket_keys_new(NULL, 0, &keys, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_opts so = {.cert_file = pki.node_cert,
                                .key_file = pki.node_key,
                                .ca_file = pki.ca,
                                .client_cert = CLINK_CLIENT_CERT_OPTIONAL,
                                .ticket_keys = keys};
    struct clink_tls_ctx *optional, *required;
    cr_assert_eq(clink_tls_ctx_new(&so, &optional, err, sizeof(err)), 0, "%s", err);
    so.client_cert = CLINK_CLIENT_CERT_REQUIRED;
    cr_assert_eq(clink_tls_ctx_new(&so, &required, err, sizeof(err)), 0, "%s", err);
    struct clink_node *srv = server_on(optional, 0);
    uint16_t port = clink_node_port(srv);
    struct clink_node *cli = ts_client(tls, 1, 0);
    char k[128];
    key_of(k, sizeof(k), "localhost", port);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 0);
    wait_tickets(cli, k, 2);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 1, "same rule: resumes");
    wait_tickets(cli, k, 1);
    /* Certificates become required: a session from the optional days must not stand in for one. */
    cr_assert_eq(clink_node_reload_tls(srv, required), 0);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 0, "another rule: a full handshake, certificate checked");
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(optional);
    clink_tls_ctx_free(required);
    clink_ticket_keys_free(keys);
}

Test(resume, a_filed_ticket_carries_its_trust_mark_and_survives_duplication)
{
    struct clink_node *srv = server_on(tls, 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    uint16_t port = clink_node_port(srv);
    char key[128];
    key_of(key, sizeof(key), "localhost", port);
    cr_assert_eq(dial_once(cli, port, "localhost", NULL), 0);
    wait_tickets(cli, key, 1);
    SSL_SESSION *sess = clink__sessions_take(&cli->sessions, key);
    cr_assert_not_null(sess);
    void *data = NULL;
    size_t len = 0;
    cr_assert_eq(SSL_SESSION_get0_ticket_appdata(sess, &data, &len), 1);
    cr_assert_eq(len, sizeof(struct clink__tls_mark), "the client files the mark with its ticket");
    /* OpenSSL duplicates a session for each new ticket: the copy must own its mark (ASan checks the frees). */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    cr_assert_not_null(copy);
    SSL_SESSION_free(sess);
    cr_assert_eq(SSL_SESSION_get0_ticket_appdata(copy, &data, &len), 1);
    cr_assert_eq(len, sizeof(struct clink__tls_mark));
    SSL_SESSION_free(copy);
    clink_node_free(cli);
    clink_node_free(srv);
}
