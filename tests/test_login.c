/*
 * The login step over real connections: accounts checked right after TLS (or
 * the plaintext magic), "Access denied for user 'NAME'@'HOST'" and nothing
 * else for the client, the native status request, and TLS reload under load.
 */
#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "clink/transport.h"
#include "tests/support/support.h"

static struct ts_pki pki;
static struct clink_tls_ctx *tls;
static char node_subject[256];

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    FILE *f = fopen(pki.node_cert, "r");
    cr_assert_not_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(x);
    X509_NAME_oneline(X509_get_subject_name(x), node_subject, sizeof(node_subject));
    X509_free(x);
}

static void teardown(void)
{
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

TestSuite(login, .init = setup, .fini = teardown, .timeout = 60);

static struct clink_accounts *accounts(const struct clink_account_spec *specs, size_t n)
{
    struct clink_accounts *acc;
    char err[256] = "";
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(clink_accounts_add(acc, &specs[i], err, sizeof(err)), 0, "%s", err);
    }
    return acc;
}

static struct clink_node *server(struct clink_accounts *acc, int allow_plain)
{
    struct clink_node_opts o = {
        .workers = 1, .tls = tls, .allow_plaintext = allow_plain, .accounts = acc, .handshake_timeout_ms = ts_ms(5000)};
    struct clink_node *n;
    cr_assert_eq(clink_node_new(&o, &n), 0);
    ts_register_echo(n);
    cr_assert_eq(clink_node_listen(n, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_start(n), 0);
    return n;
}

static int dial(struct clink_node *cli, struct clink_node *srv, const char *user, const char *pw, int plain,
                struct clink_conn **out, char *err)
{
    struct clink_connect_opts co = {.host = "127.0.0.1",
                                    .port = clink_node_port(srv),
                                    .user = user,
                                    .password = pw,
                                    .mode = plain ? CLINK_MODE_PLAIN : CLINK_MODE_DEFAULT,
                                    .timeout_ms = ts_ms(5000)};
    return clink_connect_sync(cli, &co, out, err, 256);
}

static void echo_ok(struct clink_conn *c)
{
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "hi", 2, ts_ms(5000), &r), 0);
    cr_assert_eq(r.len, 2);
    clink_msg_free(&r);
}

Test(login, certificate_login_and_the_status_request)
{
    char req[400];
    snprintf(req, sizeof(req), "SUBJECT '%s'", node_subject);
    struct clink_account_spec s[] = {{.user = "root", .require = req}};
    struct clink_accounts *acc = accounts(s, 1);
    struct clink_node *srv = server(acc, 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c;
    char err[256] = "";

    cr_assert_eq(dial(cli, srv, "root", NULL, 0, &c, err), 0, "%s", err);
    echo_ok(c);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_str_eq(st.account, "root");

    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, CLINK_METHOD_STATUS, NULL, 0, ts_ms(5000), &r), 0);
    char text[4096];
    snprintf(text, sizeof(text), "%.*s", (int)r.len, (const char *)r.data);
    clink_msg_free(&r);
    cr_assert(strstr(text, "Current user: root@%\n") != NULL, "%s", text);
    cr_assert(strstr(text, "Role: server\n") != NULL, "%s", text);
    cr_assert(strstr(text, "SSL: Cipher in use is TLS_") != NULL, "%s", text);
    cr_assert(strstr(text, "Logins: 1 ok, 0 denied\n") != NULL, "%s", text);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_accounts_free(acc);
}

Test(login, refusals_say_access_denied_and_nothing_else)
{
    struct clink_account_spec s[] = {{.user = "root", .require = "SUBJECT '/CN=not this node'"},
                                     {.user = "app", .password = "right", .require = "SSL"}};
    struct clink_accounts *acc = accounts(s, 2);
    struct clink_node *srv = server(acc, 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = NULL;
    char err[256];

    static const struct {
        const char *user, *pw;
    } bad[] = {{"root", NULL}, {"nobody", NULL}, {"app", "wrong"}, {"app", NULL}, {NULL, NULL}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int ret = dial(cli, srv, bad[i].user, bad[i].pw, 0, &c, err);
        char want[128];
        snprintf(want, sizeof(want), "Access denied for user '%s'@'127.0.0.1'", bad[i].user ? bad[i].user : "");
        cr_assert_eq(ret, -CLINK_EACCESS, "case %zu: %d %s", i, ret, err);
        cr_assert_str_eq(err, want, "case %zu", i);
    }
    struct clink_node_stats ns;
    clink_node_get_stats(srv, &ns);
    cr_assert_eq(ns.logins_denied, 5);
    cr_assert_eq(ns.logins_ok, 0);

    cr_assert_eq(dial(cli, srv, "app", "right", 0, &c, err), 0, "cleartext password inside TLS: %s", err);
    echo_ok(c);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_accounts_free(acc);
}

Test(login, plaintext_login_to_a_require_ssl_account_is_denied)
{
    struct clink_account_spec s[] = {{.user = "secure", .password = "pw1", .require = "SSL"},
                                     {.user = "legacy", .password = "pw2", .require = "NONE", .native_password = "ON"}};
    struct clink_accounts *acc = accounts(s, 2);
    struct clink_node *srv = server(acc, 1);
    struct clink_node *cli = ts_client(NULL, 1, 1);
    struct clink_conn *c = NULL;
    char err[256] = "";

    int ret = dial(cli, srv, "secure", "pw1", 1, &c, err);
    cr_assert_eq(ret, -CLINK_EACCESS, "%d %s", ret, err);
    cr_assert_str_eq(err, "Access denied for user 'secure'@'127.0.0.1'");

    /* In plaintext the password never crosses the wire: the scramble answer does. */
    cr_assert_eq(dial(cli, srv, "legacy", "pw2", 1, &c, err), 0, "%s", err);
    echo_ok(c);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.mode, CLINK_MODE_PLAIN);
    clink_conn_close(c);
    cr_assert_eq(dial(cli, srv, "legacy", "pw3", 1, &c, err), -CLINK_EACCESS);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_accounts_free(acc);
}

Test(login, require_cipher_checks_the_negotiated_suite)
{
    struct clink_node *plain_srv = server(NULL, 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c;
    char err[256] = "";
    cr_assert_eq(dial(cli, plain_srv, NULL, NULL, 0, &c, err), 0, "no accounts: no login checked: %s", err);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    clink_conn_close(c);
    clink_node_free(plain_srv);

    char good[128];
    snprintf(good, sizeof(good), "CIPHER '%s'", st.cipher);
    const char *other = strcmp(st.cipher, "TLS_AES_128_GCM_SHA256") ? "CIPHER 'TLS_AES_128_GCM_SHA256'"
                                                                    : "CIPHER 'TLS_AES_256_GCM_SHA384'";
    struct clink_account_spec s[] = {{.user = "a", .require = good}, {.user = "b", .require = other}};
    struct clink_accounts *acc = accounts(s, 2);
    struct clink_node *srv = server(acc, 0);
    cr_assert_eq(dial(cli, srv, "a", NULL, 0, &c, err), 0, "%s: %s", good, err);
    clink_conn_close(c);
    cr_assert_eq(dial(cli, srv, "b", NULL, 0, &c, err), -CLINK_EACCESS, "%s", other);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_accounts_free(acc);
}

/* ---- certificate rotation under load ---- */

struct load {
    struct clink_conn *c;
    atomic_int stop;
    atomic_long ok, failed;
};

static void *caller(void *arg)
{
    struct load *l = arg;
    while (!atomic_load(&l->stop)) {
        struct clink_msg r;
        int ret = clink_call_sync(l->c, TS_ECHO, "x", 1, ts_ms(5000), &r);
        if (ret == 0) {
            clink_msg_free(&r);
            atomic_fetch_add(&l->ok, 1);
        } else {
            atomic_fetch_add(&l->failed, 1);
        }
    }
    return NULL;
}

Test(login, rotation_under_load_keeps_calls_and_new_conns_see_the_new_certificate)
{
    struct clink_node *srv = server(NULL, 0);
    struct clink_node *cli = ts_client(tls, 2, 0);
    struct clink_conn *c;
    char err[256] = "";
    cr_assert_eq(dial(cli, srv, NULL, NULL, 0, &c, err), 0, "%s", err);
    struct clink_conn_status before;
    cr_assert_eq(clink_conn_get_status(c, &before), 0);

    struct load l = {.c = c};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, caller, &l), 0);
    }
    /* A second node certificate from the same CA, valid for a different span: its expiry tells it apart. */
    char cert2[400], key2[400];
    snprintf(cert2, sizeof(cert2), "%s/node2.pem", pki.dir);
    snprintf(key2, sizeof(key2), "%s/node2-key.pem", pki.dir);
    static const char *const dns[] = {"localhost", NULL};
    static const char *const ips[] = {"127.0.0.1", "::1", NULL};
    struct clink_cert_opts co = {.common_name = "node2", .dns_names = dns, .ip_addrs = ips, .valid_for_s = 30 * 86400};
    char ca_key[400];
    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", pki.dir);
    cr_assert_eq(clink_cert_make_node(&co, pki.ca, ca_key, cert2, key2, 0, err, sizeof(err)), 0, "%s", err);

    for (int round = 0; round < 20; round++) {
        struct clink_tls_ctx *next = ts_tls(round % 2 ? pki.node_cert : cert2, round % 2 ? pki.node_key : key2, pki.ca);
        cr_assert_eq(clink_node_reload_tls(srv, next), 0);
        clink_tls_ctx_free(next);
        usleep(20000);
    }
    struct clink_tls_ctx *last = ts_tls(cert2, key2, pki.ca);
    cr_assert_eq(clink_node_reload_tls(srv, last), 0);
    clink_tls_ctx_free(last);
    usleep(50000);
    atomic_store(&l.stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    cr_assert_eq(atomic_load(&l.failed), 0, "no call fails because of a reload");
    cr_assert_gt(atomic_load(&l.ok), 100, "calls kept flowing (%ld)", atomic_load(&l.ok));

    struct clink_conn *c2;
    cr_assert_eq(dial(cli, srv, NULL, NULL, 0, &c2, err), 0, "%s", err);
    struct clink_conn_status after;
    cr_assert_eq(clink_conn_get_status(c2, &after), 0);
    cr_assert(strstr(after.peer_subject, "CN=node2") != NULL, "new connections see the new certificate: %s",
              after.peer_subject);
    cr_assert_neq(after.peer_not_after, before.peer_not_after);
    struct clink_node_stats ns;
    clink_node_get_stats(srv, &ns);
    cr_assert_eq(ns.tls_reloads, 21);
    echo_ok(c); /* the old connection still runs on the old credentials */
    clink_conn_close(c);
    clink_conn_close(c2);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(login, an_ipv4_client_of_a_dual_stack_listener_matches_ipv4_accounts)
{
    struct clink_account_spec s[] = {{.user = "u", .host = "127.0.0.1", .require = "SSL"}};
    struct clink_accounts *acc = accounts(s, 1);
    struct clink_node_opts o = {.workers = 1, .tls = tls, .accounts = acc, .handshake_timeout_ms = ts_ms(5000)};
    struct clink_node *srv;
    cr_assert_eq(clink_node_new(&o, &srv), 0);
    ts_register_echo(srv);
    cr_assert_eq(clink_node_listen(srv, "::", 0), 0);
    cr_assert_eq(clink_node_start(srv), 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c;
    char err[256] = "";
    cr_assert_eq(dial(cli, srv, "u", NULL, 0, &c, err), 0, "::ffff:127.0.0.1 is 127.0.0.1: %s", err);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_accounts_free(acc);
}

Test(login, the_password_itself_goes_only_to_a_verified_server)
{
    /* An account with a SHA-256 crypt verifier only: a login passes only if the password itself arrives. */
    char path[400], err[256] = "";
    snprintf(path, sizeof(path), "%s/acc.cnf", pki.dir);
    struct clink_accounts *full;
    cr_assert_eq(clink_accounts_new(path, &full), 0);
    struct clink_account_spec s = {.user = "app", .password = "pw", .require = "SSL"};
    cr_assert_eq(clink_accounts_add(full, &s, err, sizeof(err)), 0, "%s", err);
    clink_accounts_free(full);
    FILE *f = fopen(path, "r");
    char text[2048] = "", line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "mysql_native_password", 21) != 0) {
            strcat(text, line);
        }
    }
    fclose(f);
    f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "%s", err);
    struct clink_node *srv = server(acc, 0);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c;

    cr_assert_eq(dial(cli, srv, "app", "pw", 0, &c, err), 0, "VERIFY_IDENTITY: the password is sent: %s", err);
    clink_conn_close(c);
    struct clink_connect_opts co = {.host = "127.0.0.1",
                                    .port = clink_node_port(srv),
                                    .ssl_mode = CLINK_SSL_REQUIRED,
                                    .user = "app",
                                    .password = "pw",
                                    .timeout_ms = ts_ms(5000)};
    cr_assert_eq(clink_connect_sync(cli, &co, &c, err, sizeof(err)), -CLINK_EACCESS,
                 "REQUIRED (server unverified): only a scramble answer, which this account cannot check");
    co.user = NULL;
    cr_assert_eq(clink_connect_sync(cli, &co, &c, err, sizeof(err)), -CLINK_EINVAL, "a password needs a user");
    clink_node_free(cli);
    clink_node_free(srv);
    clink_accounts_free(acc);
}
