/*
 * The account rules of issue 17 (items 3 and 5): an account without a
 * password stands only on a verified client certificate, on every path,
 * unless it is plaintext_no_password (a literal host only); and the unsalted
 * mysql_native_password verifier is kept only for an account that chose
 * native_password, which is what a scramble login needs. Checked through
 * clink_accounts_check, through the file, and over real connections: native
 * clients and the MySQL front door.
 */
#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "clink/mysql.h"
#include "clink/transport.h"
#include "tests/support/support.h"
#include "transport/mysql_proto.h"
#include "transport/opening.h"

static struct ts_pki pki;
static struct clink_tls_ctx *tls;
static X509 *cert;

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    FILE *f = fopen(pki.node_cert, "r");
    cr_assert_not_null(f);
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(cert);
}

static void teardown(void)
{
    X509_free(cert);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

TestSuite(account_rules, .init = setup, .fini = teardown, .timeout = 60);

static struct clink_accounts *with(const char *path, const struct clink_account_spec *specs, size_t n)
{
    struct clink_accounts *acc;
    char err[256] = "";
    cr_assert_eq(clink_accounts_new(path, &acc), 0);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(clink_accounts_add(acc, &specs[i], err, sizeof(err)), 0, "%s", err);
    }
    return acc;
}

static char *slurp(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- item 3: no password, no certificate, no login ---- */

Test(account_rules, a_password_less_account_takes_only_a_verified_certificate)
{
    struct clink_account_spec s = {.user = "node", .require = "NONE"};
    struct clink_accounts *acc = with(NULL, &s, 1);
    char why[256] = "";
    /* What a MySQL client without a certificate and a plaintext native client give: method NONE, no certificate. */
    struct clink_login l = {.user = "node", .host = "10.0.0.7"};

    cr_assert_eq(clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why)), -CLINK_EACCESS, "plaintext");
    cr_assert(strstr(why, "no verified client certificate") != NULL, "%s", why);
    l.tls = 1;
    l.cipher = "TLS_AES_256_GCM_SHA384";
    cr_assert_eq(clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why)), -CLINK_EACCESS, "TLS, no certificate");
    l.peer_cert = cert;
    cr_assert_eq(clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why)), -CLINK_EACCESS, "an unverified one");
    l.peer_verified = 1;
    cr_assert_eq(clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why)), 0, "a verified one: %s", why);
    clink_accounts_free(acc);
}

Test(account_rules, plaintext_no_password_with_a_literal_host_takes_a_login_without_one)
{
    struct clink_account_spec s[] = {
        {.user = "baseline", .host = "127.0.0.1", .require = "NONE", .plaintext_no_password = "ON"},
        {.user = "local", .host = "localhost", .require = "NONE", .plaintext_no_password = "ON"},
    };
    struct clink_accounts *acc = with(NULL, s, 2);
    char why[256] = "", matched[128] = "";
    struct clink_login l = {.user = "baseline", .host = "127.0.0.1"};

    cr_assert_eq(clink_accounts_check(acc, &l, matched, sizeof(matched), why, sizeof(why)), 0, "%s", why);
    cr_assert_str_eq(matched, "baseline@127.0.0.1");
    l.tls = 1;
    cr_assert_eq(clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why)), 0, "TLS without a certificate: %s", why);
    l.user = "local";
    cr_assert_eq(clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why)), 0, "localhost is literal: %s", why);
    l.host = "10.0.0.7";
    cr_assert_eq(clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why)), -CLINK_EACCESS, "another host");
    clink_accounts_free(acc);
}

Test(account_rules, plaintext_no_password_with_a_pattern_host_is_refused_at_add_alter_and_load)
{
    char path[400], err[512] = "";
    ts_pki_path(&pki, "acc.cnf", path, sizeof(path));
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_new(path, &acc), 0);
    static const char *const patterns[] = {NULL, "%", "127.0.0.%", "10.0.0._"};
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        struct clink_account_spec s = {.user = "u", .host = patterns[i], .plaintext_no_password = "ON"};
        err[0] = '\0';

        cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), -CLINK_EINVAL, "host %s", patterns[i]);

        cr_assert(strstr(err, "plaintext_no_password needs a literal host") != NULL, "%s", err);
    }
    struct clink_account_spec net = {.user = "u", .host = "127.0.0.%", .require = "X509"};
    cr_assert_eq(clink_accounts_add(acc, &net, err, sizeof(err)), 0, "%s", err);
    net.plaintext_no_password = "ON";
    cr_assert_eq(clink_accounts_alter(acc, &net, err, sizeof(err)), -CLINK_EINVAL, "alter");
    cr_assert(strstr(err, "literal host") != NULL, "%s", err);
    struct clink_account_spec bad = {.user = "u", .host = "127.0.0.1", .plaintext_no_password = "MAYBE"};
    cr_assert_eq(clink_accounts_add(acc, &bad, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert(strstr(err, "ON or OFF") != NULL, "%s", err);
    clink_accounts_free(acc);

    write_file(path, "[u@127.0.0.%]\nrequire = NONE\nplaintext_no_password = ON\n");
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), -CLINK_ECONFIG, "a file with one");
    cr_assert(strstr(err, "[u@127.0.0.%] plaintext_no_password: only for a literal host") != NULL, "%s", err);
    write_file(path, "[u@127.0.0.1]\nrequire = NONE\nplaintext_no_password = ON\n");
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "a literal host: %s", err);
    clink_accounts_free(acc);
}

/* ---- item 5: the unsalted SHA1(SHA1(pw)) only for an account that chose it ---- */

Test(account_rules, a_password_account_keeps_no_mysql_native_password_verifier_unless_it_chooses_to)
{
    char path[400], err[256] = "";
    ts_pki_path(&pki, "acc.cnf", path, sizeof(path));
    struct clink_account_spec s[] = {
        {.user = "app", .password = "password", .require = "SSL"},
        {.user = "twin", .password = "password", .require = "SSL"},
    };
    struct clink_accounts *acc = with(path, s, 2);

    const char *text = slurp(path);
    cr_assert(strstr(text, "mysql_native_password") == NULL, "%s", text);
    /* MySQL's verifier for "password": equal passwords would show as equal strings. */
    cr_assert(strstr(text, "2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19") == NULL, "%s", text);
    cr_assert(strstr(text, "caching_sha2_password = $5$") != NULL, "%s", text);

    struct clink_account_spec old = {.user = "old", .password = "password", .native_password = "ON"};
    cr_assert_eq(clink_accounts_add(acc, &old, err, sizeof(err)), 0, "%s", err);
    text = slurp(path);
    cr_assert(strstr(text, "mysql_native_password = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19") != NULL, "%s", text);
    cr_assert(strstr(text, "\nnative_password = ON\n") != NULL, "%s", text);
    struct clink_account_spec legacy = {.user = "legacy", .password = "x", .legacy_native_tls = "ON"};
    cr_assert_eq(clink_accounts_add(acc, &legacy, err, sizeof(err)), 0, "%s", err);
    cr_assert(strstr(slurp(path), "[legacy@%]\nrequire = NONE\nmysql_native_password = *") != NULL,
              "legacy_native_tls implies it: %s", slurp(path));
    clink_accounts_free(acc);
}

static int scramble_login(struct clink_accounts *acc, const char *user, const char *pw, int bound, char *why)
{
    uint8_t scramble[CLINK_SCRAMBLE_LEN], cb[CLINK_BINDING_LEN], ans[20];
    memset(scramble, 3, sizeof(scramble));
    memset(cb, 9, sizeof(cb));
    if (bound) {
        cr_assert_eq(clink_login_scramble_bound(pw, scramble, cb, ans), 0);
    } else {
        cr_assert_eq(clink_login_scramble(pw, scramble, ans), 0);
    }
    struct clink_login l = {.user = user,
                            .host = "127.0.0.1",
                            .tls = bound,
                            .method = bound ? CLINK_LOGIN_SCRAMBLE_BOUND : CLINK_LOGIN_SCRAMBLE,
                            .auth = ans,
                            .auth_len = 20,
                            .scramble = scramble,
                            .binding = bound ? cb : NULL};
    return clink_accounts_check(acc, &l, NULL, 0, why, 256);
}

Test(account_rules, a_scramble_login_works_only_with_native_password)
{
    struct clink_account_spec s[] = {
        {.user = "new", .password = "pw"},
        {.user = "chose", .password = "pw", .native_password = "ON"},
    };
    struct clink_accounts *acc = with(NULL, s, 2);
    char why[256] = "";

    cr_assert_eq(scramble_login(acc, "new", "pw", 0, why), -CLINK_EACCESS, "plaintext scramble");
    cr_assert(strstr(why, "native_password is off") != NULL, "%s", why);
    cr_assert_eq(scramble_login(acc, "new", "pw", 1, why), -CLINK_EACCESS, "bound scramble");
    cr_assert(strstr(why, "native_password is off") != NULL, "%s", why);

    cr_assert_eq(scramble_login(acc, "chose", "pw", 0, why), 0, "%s", why);
    cr_assert_eq(scramble_login(acc, "chose", "pw", 1, why), 0, "%s", why);
    clink_accounts_free(acc);
}

Test(account_rules, alter_keeps_drops_or_asks_for_the_password)
{
    char path[400], err[512] = "", why[256] = "";
    ts_pki_path(&pki, "acc.cnf", path, sizeof(path));
    struct clink_account_spec s = {.user = "app", .password = "pw1"};
    struct clink_accounts *acc = with(path, &s, 1);

    /* On without a password: there is nothing to make the verifier from. */
    struct clink_account_spec on = {.user = "app", .native_password = "ON"};
    cr_assert_eq(clink_accounts_alter(acc, &on, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert(strstr(err, "give the password with it") != NULL, "%s", err);
    struct clink_account_spec legacy = {.user = "app", .legacy_native_tls = "ON"};
    cr_assert_eq(clink_accounts_alter(acc, &legacy, err, sizeof(err)), -CLINK_EINVAL, "legacy implies it");
    cr_assert(strstr(slurp(path), "mysql_native_password") == NULL, "nothing changed: %s", slurp(path));

    on.password = "pw2";
    cr_assert_eq(clink_accounts_alter(acc, &on, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(scramble_login(acc, "app", "pw2", 0, why), 0, "%s", why);
    /* A new password keeps the choice: the verifier is made again. */
    struct clink_account_spec pw = {.user = "app", .password = "pw3"};
    cr_assert_eq(clink_accounts_alter(acc, &pw, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(scramble_login(acc, "app", "pw3", 0, why), 0, "%s", why);

    struct clink_account_spec off = {.user = "app", .native_password = "OFF"};
    cr_assert_eq(clink_accounts_alter(acc, &off, err, sizeof(err)), 0, "%s", err);
    cr_assert(strstr(slurp(path), "mysql_native_password") == NULL, "dropped: %s", slurp(path));
    cr_assert_eq(scramble_login(acc, "app", "pw3", 0, why), -CLINK_EACCESS);
    struct clink_login l = {.user = "app",
                            .host = "127.0.0.1",
                            .tls = 1,
                            .method = CLINK_LOGIN_CLEARTEXT,
                            .auth = (const uint8_t *)"pw3",
                            .auth_len = 3};
    cr_assert_eq(clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why)), 0, "the password stays: %s", why);
    clink_accounts_free(acc);
}

Test(account_rules, an_old_file_with_a_mysql_native_password_line_still_logs_in)
{
    char path[400], err[512] = "", why[256] = "";
    ts_pki_path(&pki, "old.cnf", path, sizeof(path));
    /* As clink wrote it before native_password existed; and one copied from mysql.user (no SHA-256 crypt). */
    write_file(path, "[app@%]\nrequire = NONE\nmysql_native_password = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19\n"
                     "caching_sha2_password = $5$rounds=5000$clinkclinkclink$UAWxXUyA.yyL6BzxBlQ3MF7iZlCY9Mm0Ej3SsSp/"
                     "R.9\n"
                     "[copied@%]\nrequire = NONE\nmysql_native_password = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19\n");
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "%s", err);

    cr_assert_eq(scramble_login(acc, "app", "password", 0, why), 0, "%s", why);
    cr_assert_eq(scramble_login(acc, "copied", "password", 1, why), 0, "%s", why);
    /* A change elsewhere in the account keeps the verifier, and the file now says why it is there. */
    struct clink_account_spec g = {.user = "app", .grant = "ALL"};
    cr_assert_eq(clink_accounts_alter(acc, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(scramble_login(acc, "app", "password", 0, why), 0, "%s", why);
    cr_assert(strstr(slurp(path), "native_password = ON") != NULL, "%s", slurp(path));
    /* Turning it off where it is the only verifier would leave no password: refused. */
    struct clink_account_spec off = {.user = "copied", .native_password = "OFF"};
    cr_assert_eq(clink_accounts_alter(acc, &off, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert(strstr(err, "without a password") != NULL, "%s", err);
    clink_accounts_free(acc);

    write_file(path, "[app@%]\nrequire = NONE\nnative_password = OFF\n"
                     "mysql_native_password = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19\n");
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), -CLINK_ECONFIG, "OFF with the line");
    cr_assert(strstr(err, "native_password = OFF, but a mysql_native_password verifier") != NULL, "%s", err);
}

/* ---- over real connections ---- */

static struct clink_node *server(struct clink_accounts *acc)
{
    static const struct clink_mysql_opts mysql = {0};
    struct clink_node_opts o = {.workers = 1,
                                .tls = tls,
                                .allow_plaintext = 1,
                                .accounts = acc,
                                .mysql = &mysql,
                                .handshake_timeout_ms = ts_ms(5000)};
    return ts_node_with(&o, ts_register_echo);
}

static int dial(struct clink_node *cli, struct clink_node *srv, const char *user, const char *pw, int plain)
{
    struct clink_connect_opts co = {.host = "127.0.0.1",
                                    .port = clink_node_port(srv),
                                    .user = user,
                                    .password = pw,
                                    .mode = plain ? CLINK_MODE_PLAIN : CLINK_MODE_DEFAULT,
                                    .timeout_ms = ts_ms(5000)};
    struct clink_conn *c = NULL;
    char err[256] = "";
    int ret = clink_connect_sync(cli, &co, &c, err, sizeof(err));
    if (ret == 0) {
        clink_conn_close(c);
    }
    return ret;
}

Test(account_rules, native_clients_follow_the_same_rules)
{
    struct clink_account_spec s[] = {
        {.user = "nopw", .require = "NONE"},
        {.user = "baseline", .host = "127.0.0.1", .require = "NONE", .plaintext_no_password = "ON"},
        {.user = "new", .password = "pw"},
        {.user = "chose", .password = "pw", .native_password = "ON"},
    };
    struct clink_accounts *acc = with(NULL, s, 4);
    struct clink_node *srv = server(acc);
    struct clink_node *plain = ts_client(NULL, 1, 1), *mtls = ts_client(tls, 1, 0);

    cr_assert_eq(dial(plain, srv, "nopw", NULL, 1), -CLINK_EACCESS, "plaintext, no certificate");
    cr_assert_eq(dial(mtls, srv, "nopw", NULL, 0), 0, "TLS with the client's verified certificate");
    cr_assert_eq(dial(plain, srv, "baseline", NULL, 1), 0, "plaintext_no_password");
    /* In plaintext a native client sends mysql_native_password's scramble answer. */
    cr_assert_eq(dial(plain, srv, "new", "pw", 1), -CLINK_EACCESS, "no native_password");
    cr_assert_eq(dial(plain, srv, "chose", "pw", 1), 0, "native_password");
    cr_assert_eq(dial(mtls, srv, "new", "pw", 0), 0, "verified by name: the password itself, the SHA-256 crypt");
    clink_node_free(plain);
    clink_node_free(mtls);
    clink_node_free(srv);
    clink_accounts_free(acc);
}

/*
 * A MySQL client's login with no password: plaintext, or TLS with the given
 * client certificate (NULL: none). Returns 0 for the node's OK, the error
 * code of its ERR (1045: Access denied), or -1 when it answered nothing.
 */
static int mysql_no_password(uint16_t port, int use_tls, const char *cert_path, const char *key_path, const char *user)
{
    int fd = ts_tcp_connect(port);
    uint8_t g[CLINK_GREETING_MAX], scramble[20];
    cr_assert_eq(ts_read_full(fd, g, 5), 0, "no greeting");
    int gl = clink__opening_greeting_len(g);
    cr_assert(gl > 0 && (size_t)gl + 4 <= CLINK_GREETING_MAX);
    cr_assert_eq(ts_read_full(fd, g + 5, (size_t)gl - 1), 0);
    cr_assert_eq(clink__opening_greeting_scramble(g + 5, (size_t)gl - 1, scramble), 0);
    uint32_t caps = CLINK_MY_PROTOCOL_41 | CLINK_MY_SECURE_CONNECTION | CLINK_MY_PLUGIN_AUTH | CLINK_MY_LONG_PASSWORD |
                    CLINK_MY_TRANSACTIONS | (use_tls ? CLINK_MY_SSL : 0);
    uint8_t b[256] = {0};
    b[0] = (uint8_t)caps, b[1] = (uint8_t)(caps >> 8), b[2] = (uint8_t)(caps >> 16), b[3] = (uint8_t)(caps >> 24);
    b[6] = 0x01; /* max packet 64 KiB */
    b[8] = 45;   /* utf8mb4 */
    size_t n = 32;
    struct tls_peer t;
    int have_tls = 0;
    uint8_t seq = 1;
    if (use_tls) {
        uint8_t hdr[4] = {(uint8_t)n, 0, 0, seq++};
        cr_assert_eq(write(fd, hdr, 4), 4);
        cr_assert_eq(write(fd, b, n), (ssize_t)n);
        struct tls_peer_opts to = {.ca = pki.ca, .host = "localhost", .cert = cert_path, .key = key_path};
        cr_assert_eq(tls_peer_new(&t, &to, fd), 0, "%s", t.err);
        cr_assert_eq(tls_peer_handshake(&t, tls_peer_now() + ts_ms(5000) / 1000.0), 0, "%s", t.err);
        have_tls = 1;
    }
    size_t ul = strlen(user);
    memcpy(b + n, user, ul + 1);
    n += ul + 1;
    b[n++] = 0; /* no auth bytes: no password */
    memcpy(b + n, "caching_sha2_password", 22);
    n += 22;
    uint8_t pkt[300] = {(uint8_t)n, 0, 0, seq};
    memcpy(pkt + 4, b, n);
    uint8_t r[512];
    int first = -1;
    if (have_tls) {
        cr_assert_eq(tls_peer_write(&t, pkt, n + 4), 0, "%s", t.err);
        double dl = tls_peer_now() + ts_ms(5000) / 1000.0;
        if (tls_peer_read(&t, r, 7, NULL, dl) == 0) {
            first = r[4] == 0xff ? r[5] | r[6] << 8 : r[4];
        }
        tls_peer_free(&t);
    } else {
        cr_assert_eq(write(fd, pkt, n + 4), (ssize_t)(n + 4));
        if (ts_read_full(fd, r, 7) == 0) {
            first = r[4] == 0xff ? r[5] | r[6] << 8 : r[4];
        }
        close(fd);
    }
    return first;
}

Test(account_rules, mysql_clients_follow_the_same_rules)
{
    struct clink_account_spec s[] = {
        {.user = "nopw", .require = "NONE"},
        {.user = "baseline", .host = "127.0.0.1", .require = "NONE", .plaintext_no_password = "ON"},
    };
    struct clink_accounts *acc = with(NULL, s, 2);
    struct clink_node *srv = server(acc);
    uint16_t port = clink_node_port(srv);

    cr_assert_eq(mysql_no_password(port, 0, NULL, NULL, "nopw"), 1045, "plaintext");
    cr_assert_eq(mysql_no_password(port, 1, NULL, NULL, "nopw"), 1045, "TLS without a certificate");
    cr_assert_eq(mysql_no_password(port, 1, pki.node_cert, pki.node_key, "nopw"), 0x00, "a verified certificate");
    cr_assert_eq(mysql_no_password(port, 0, NULL, NULL, "baseline"), 0x00, "plaintext_no_password");
    cr_assert_eq(mysql_no_password(port, 1, NULL, NULL, "baseline"), 0x00, "plaintext_no_password, TLS");
    clink_node_free(srv);
    clink_accounts_free(acc);
}
