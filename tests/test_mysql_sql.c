/*
 * The MySQL door's account statements on real sockets (issue 19, item 4):
 * a MySQL client written out here logs in over TLS (a password through
 * caching_sha2_password's full authentication, or a client certificate and
 * no password) or in plaintext, and sends statements to clink_mysql_builtin.
 * GRANT to a missing account makes it (MySQL 5.x, MemSQL), password-less
 * and so standing on a client certificate, unless no_auto_create_user keeps
 * MySQL 8's 1410; SHOW GRANTS tells an account as a GRANT statement that
 * makes it again; FLUSH PRIVILEGES reads the accounts file again; and the
 * server's grant_creates_user key reaches the door, live at a reload.
 *
 * COM_CHANGE_USER (issue 21): a whole login again on the same connection,
 * as the first: the new account's statements, a new session, the
 * database; a wrong password is 1045, counted by the throttle, and closes
 * the connection; REQUIRE X509 is checked against this connection's
 * certificate; the session's max_user_connections slot moves. And a client
 * without CLIENT_PLUGIN_AUTH (the `mysql` Node package) inside TLS: in only
 * where legacy_native_tls allows its unbound answer.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "clink/mysql.h"
#include "clink/server.h"
#include "clink/transport.h"
#include "tests/support/support.h"
#include "transport/mysql_proto.h"
#include "transport/opening.h"

static struct ts_pki pki;
static struct clink_tls_ctx *tls;
static struct clink_accounts *acc;
static char acc_path[400];

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    ts_pki_path(&pki, "accounts.cnf", acc_path, sizeof(acc_path));
    /* admin manages accounts; app may not. Both log in over TLS with a password. */
    struct clink_account_spec s[] = {{.user = "admin", .password = "adminpw", .require = "SSL", .grant = "ALL"},
                                     {.user = "app", .password = "apppw", .require = "SSL"}};
    char err[256] = "";
    cr_assert_eq(clink_accounts_new(acc_path, &acc), 0);
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        cr_assert_eq(clink_accounts_add(acc, &s[i], err, sizeof(err)), 0, "%s", err);
    }
}

static void teardown(void)
{
    clink_accounts_free(acc);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

TestSuite(mysql_sql, .init = setup, .fini = teardown, .timeout = 60);

static struct clink_mysql_builtin_opts sql_opts; /* the hook's options: no_auto_create_user per test */

/* A node serving MySQL clients with the built-in hook, TLS and (for the plaintext checks) plaintext logins. */
static struct clink_node *node(void)
{
    static struct clink_mysql_opts mysql = {.query = clink_mysql_builtin, .query_user = &sql_opts};
    struct clink_node_opts o = {.workers = 1, .tls = tls, .accounts = acc, .mysql = &mysql, .allow_plaintext = 1};
    return ts_node_with(&o, NULL);
}

/* ---- a MySQL client ---- */

struct my {
    int fd;
    int tls; /* t is in use */
    struct tls_peer t;
};

static void my_send(struct my *m, uint8_t seq, const void *p, size_t n)
{
    uint8_t h[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), seq};
    if (m->tls) {
        uint8_t b[4 + 2048];
        cr_assert_leq(n, sizeof(b) - 4);
        memcpy(b, h, 4);
        memcpy(b + 4, p, n);
        cr_assert_eq(tls_peer_write(&m->t, b, 4 + n), 0, "%s", m->t.err);
        return;
    }
    cr_assert_eq(write(m->fd, h, 4), 4);
    cr_assert_eq(write(m->fd, p, n), (ssize_t)n);
}

static int my_read(struct my *m, void *p, size_t n)
{
    if (m->tls) {
        return tls_peer_read(&m->t, p, n, NULL, tls_peer_now() + ts_ms(5000) / 1000.0);
    }
    return ts_read_full(m->fd, p, n);
}

/* One packet's payload into p (cap); its length, or -1 when the connection ended. */
static int my_recv(struct my *m, uint8_t *p, size_t cap)
{
    uint8_t h[4];
    if (my_read(m, h, 4) < 0) {
        return -1;
    }
    size_t n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16;
    cr_assert_leq(n, cap);
    return n == 0 ? 0 : my_read(m, p, n) < 0 ? -1 : (int)n;
}

/* What a statement or a login got: an OK (code 0, its info), an ERR (code, message) or rows (code 0). */
struct reply {
    int code; /* -1: neither */
    char msg[512];
    char info[512];
    unsigned ncols, nrows;
    char col[256];     /* the first column's name */
    char cell[2][512]; /* the first column of the first two rows */
    uint16_t status;   /* an OK's or the last EOF's status flags */
    char cols[8][256]; /* the first 8 columns' names */
    char row0[8][512]; /* and the first row's cells ("NULL" for SQL NULL) */
};

static size_t lenenc_str(const uint8_t *p, size_t n, char *out, size_t cap)
{
    uint64_t len;
    size_t used = clink__mysql_lenenc_get(p, n, &len);
    cr_assert(used > 0 && used + len <= n, "a bad length-encoded string");
    snprintf(out, cap, "%.*s", (int)len, (const char *)p + used);
    return used + (size_t)len;
}

static struct reply parse_first(struct my *m, const uint8_t *p, int n)
{
    struct reply r = {.code = -1};
    if (n > 0 && p[0] == 0x00) {
        r.code = 0;
        size_t k = 1;
        uint64_t v;
        k += clink__mysql_lenenc_get(p + k, (size_t)n - k, &v); /* affected rows */
        k += clink__mysql_lenenc_get(p + k, (size_t)n - k, &v); /* last insert id */
        r.status = (uint16_t)(p[k] | p[k + 1] << 8);
        k += 4; /* status, warnings */
        if (k < (size_t)n) {
            lenenc_str(p + k, (size_t)n - k, r.info, sizeof(r.info));
        }
    } else if (n >= 9 && p[0] == 0xff) {
        r.code = p[1] | p[2] << 8;
        snprintf(r.msg, sizeof(r.msg), "%.*s", n - 9, (const char *)p + 9); /* after '#' and the SQLSTATE */
    } else if (n > 0 && p[0] != 0xfe) {
        /* A result set: the column count, the definitions, EOF, the rows, EOF. */
        uint64_t ncols;
        cr_assert_gt(clink__mysql_lenenc_get(p, (size_t)n, &ncols), 0);
        r.code = 0;
        r.ncols = (unsigned)ncols;
        uint8_t b[2048];
        for (unsigned i = 0; i < r.ncols; i++) {
            int k = my_recv(m, b, sizeof(b));
            cr_assert_gt(k, 0);
            size_t at = 0;
            char skip[256];
            for (int f = 0; f < 4; f++) { /* catalog, schema, table, org_table */
                at += lenenc_str(b + at, (size_t)k - at, skip, sizeof(skip));
            }
            if (i == 0) {
                lenenc_str(b + at, (size_t)k - at, r.col, sizeof(r.col));
            }
            if (i < 8) {
                lenenc_str(b + at, (size_t)k - at, r.cols[i], sizeof(r.cols[i]));
            }
        }
        int k = my_recv(m, b, sizeof(b));
        cr_assert(k > 0 && b[0] == 0xfe, "no EOF after the columns");
        while ((k = my_recv(m, b, sizeof(b))) > 0 && !(b[0] == 0xfe && k < 9)) {
            if (r.nrows < 2 && b[0] != 0xfb) {
                lenenc_str(b, (size_t)k, r.cell[r.nrows], sizeof(r.cell[0]));
            }
            for (size_t i = 0, at = 0; r.nrows == 0 && i < r.ncols && i < 8; i++) {
                if (b[at] == 0xfb) { /* SQL NULL */
                    snprintf(r.row0[i], sizeof(r.row0[i]), "NULL");
                    at++;
                } else {
                    at += lenenc_str(b + at, (size_t)k - at, r.row0[i], sizeof(r.row0[i]));
                }
            }
            r.nrows++;
        }
        cr_assert_gt(k, 0, "no EOF after the rows");
        r.status = (uint16_t)(b[3] | b[4] << 8);
    }
    return r;
}

static struct reply my_reply(struct my *m)
{
    uint8_t p[2048];
    int n = my_recv(m, p, sizeof(p));
    return parse_first(m, p, n);
}

static size_t fixed_part(uint8_t *b, uint32_t caps)
{
    memset(b, 0, 32);
    b[0] = (uint8_t)caps, b[1] = (uint8_t)(caps >> 8), b[2] = (uint8_t)(caps >> 16), b[3] = (uint8_t)(caps >> 24);
    b[6] = 0x01; /* max packet 64 KiB */
    b[8] = 45;   /* utf8mb4 */
    return 32;
}

/*
 * Log in as user. tls: an SSL request and TLS first, presenting cert/key
 * (NULL: no client certificate); then password (NULL: none) through
 * caching_sha2_password's full authentication, the password itself inside
 * TLS. In plaintext only password-less logins here. [out] m: the
 * connection (close with my_close, whatever the reply).
 */
static struct reply my_login(struct my *m, uint16_t port, int tls_on, const char *cert, const char *key,
                             const char *user, const char *password)
{
    memset(m, 0, sizeof(*m));
    m->fd = ts_tcp_connect(port);
    ts_skip_greeting(m->fd);
    uint32_t caps = CLINK_MY_PROTOCOL_41 | CLINK_MY_SECURE_CONNECTION | CLINK_MY_PLUGIN_AUTH | CLINK_MY_LONG_PASSWORD |
                    (tls_on ? CLINK_MY_SSL : 0);
    uint8_t b[256];
    uint8_t seq = 1;
    if (tls_on) {
        my_send(m, seq++, b, fixed_part(b, caps));
        struct tls_peer_opts to = {.ca = pki.ca, .host = "localhost", .cert = cert, .key = key};
        cr_assert_eq(tls_peer_new(&m->t, &to, m->fd), 0, "%s", m->t.err);
        m->tls = 1;
        cr_assert_eq(tls_peer_handshake(&m->t, tls_peer_now() + ts_ms(5000) / 1000.0), 0, "%s", m->t.err);
    }
    size_t n = fixed_part(b, caps), ul = strlen(user);
    memcpy(b + n, user, ul + 1);
    n += ul + 1;
    if (password != NULL) {
        b[n++] = 32;
        memset(b + n, 0x5a, 32); /* a fast-path answer the node never has the cache to check */
        n += 32;
    } else {
        b[n++] = 0;
    }
    memcpy(b + n, "caching_sha2_password", 22);
    n += 22;
    my_send(m, seq++, b, n);
    uint8_t r[512];
    int rn = my_recv(m, r, sizeof(r));
    if (password != NULL && rn == 2 && r[0] == 0x01 && r[1] == 0x04) {
        my_send(m, (uint8_t)(seq + 1), password, strlen(password) + 1); /* perform_full_authentication */
        rn = my_recv(m, r, sizeof(r));
    }
    return parse_first(m, r, rn);
}

static void my_close(struct my *m)
{
    if (m->tls) {
        tls_peer_free(&m->t); /* closes fd */
    } else {
        close(m->fd);
    }
}

static struct reply my_query(struct my *m, const char *sql)
{
    uint8_t b[2048];
    size_t n = strlen(sql);
    cr_assert_lt(n + 1, sizeof(b));
    b[0] = CLINK_MY_COM_QUERY;
    memcpy(b + 1, sql, n);
    my_send(m, 0, b, n + 1);
    return my_reply(m);
}

/* A statement as admin, on a fresh connection. */
static struct reply as_admin(uint16_t port, const char *sql)
{
    struct my m;
    struct reply r = my_login(&m, port, 1, NULL, NULL, "admin", "adminpw");
    cr_assert_eq(r.code, 0, "admin's login: %d %s", r.code, r.msg);
    r = my_query(&m, sql);
    my_close(&m);
    return r;
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

static const char note[] = "Note: the account has no password: it logs in only with a verified client certificate";

/* ---- GRANT makes a missing account ---- */

Test(mysql_sql, grant_makes_a_missing_account_that_stands_on_a_client_certificate)
{
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct my m;

    struct reply r = as_admin(port, "grant all on *.* to 'user'@'%' REQUIRE SSL;");

    cr_assert_eq(r.code, 0, "MySQL 5.x and MemSQL make the account: %d %s", r.code, r.msg);
    cr_assert_str_eq(r.info, note, "and the OK says how it logs in");
    cr_assert(strstr(slurp(acc_path), "[user@%]\nrequire = SSL\ngrant = ALL\n") != NULL, "saved: %s", slurp(acc_path));
    struct clink_account_info a;
    cr_assert_eq(clink_accounts_get(acc, "user", "%", &a), 0);
    cr_assert(a.grant_all && a.require_ssl && !a.require_x509 && !a.has_password);
    /* No password: TLS without a certificate is refused, and so is plaintext; a verified certificate logs in. */
    r = my_login(&m, port, 1, NULL, NULL, "user", NULL);
    my_close(&m);
    cr_assert_eq(r.code, 1045, "TLS, no certificate: %d %s", r.code, r.msg);
    cr_assert_str_eq(r.msg, "Access denied for user 'user'@'127.0.0.1' (using password: NO)");
    r = my_login(&m, port, 0, NULL, NULL, "user", NULL);
    my_close(&m);
    cr_assert_eq(r.code, 1045, "plaintext: %d %s", r.code, r.msg);
    r = my_login(&m, port, 1, pki.node_cert, pki.node_key, "user", NULL);
    cr_assert_eq(r.code, 0, "a verified client certificate: %d %s", r.code, r.msg);
    r = my_query(&m, "SHOW GRANTS");
    my_close(&m);
    cr_assert_str_eq(r.cell[0], "GRANT ALL PRIVILEGES ON *.* TO 'user'@'%' REQUIRE SSL");
    clink_node_free(srv);
}

Test(mysql_sql, grant_identified_by_makes_an_account_with_that_password)
{
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct my m;

    struct reply r = as_admin(port, "GRANT USAGE ON *.* TO 'pw'@'%' IDENTIFIED BY 'pwpw' REQUIRE SSL");
    struct reply in = my_login(&m, port, 1, NULL, NULL, "pw", "pwpw");
    my_close(&m);
    struct reply wrong = my_login(&m, port, 1, NULL, NULL, "pw", "nope");
    my_close(&m);

    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    cr_assert_str_eq(r.info, "", "a password account: no note");
    cr_assert_eq(in.code, 0, "%d %s", in.code, in.msg);
    cr_assert_eq(wrong.code, 1045);
    struct clink_account_info a;
    cr_assert_eq(clink_accounts_get(acc, "pw", "%", &a), 0);
    cr_assert(!a.grant_all && a.has_password && a.require_ssl);
    clink_node_free(srv);
}

Test(mysql_sql, no_auto_create_user_keeps_mysql_8s_refusal)
{
    sql_opts.no_auto_create_user = 1;
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct clink_account_info a;

    struct reply r = as_admin(port, "GRANT ALL ON *.* TO 'ghost'@'%' REQUIRE SSL");
    struct reply existing = as_admin(port, "GRANT ALL ON *.* TO 'app'@'%' REQUIRE SSL");

    cr_assert_eq(r.code, 1410, "%d %s", r.code, r.msg);
    cr_assert_str_eq(r.msg, "You are not allowed to create a user with GRANT");
    cr_assert_eq(clink_accounts_get(acc, "ghost", "%", &a), -ENOENT, "no account made");
    cr_assert(strstr(slurp(acc_path), "ghost") == NULL);
    cr_assert_eq(existing.code, 0, "an existing account is still granted: %d %s", existing.code, existing.msg);
    cr_assert_eq(clink_accounts_get(acc, "app", "%", &a), 0);
    cr_assert(a.grant_all);
    clink_node_free(srv);
}

Test(mysql_sql, only_an_administrator_grants_and_a_refused_grant_makes_nothing)
{
    struct clink_node *srv = node();
    struct my m;
    struct reply r = my_login(&m, clink_node_port(srv), 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);

    r = my_query(&m, "GRANT ALL ON *.* TO 'sneaky'@'%'");
    my_close(&m);

    cr_assert_eq(r.code, 1227, "%d %s", r.code, r.msg);
    struct clink_account_info a;
    cr_assert_eq(clink_accounts_get(acc, "sneaky", "%", &a), -ENOENT);
    clink_node_free(srv);
}

/* ---- SHOW GRANTS ---- */

Test(mysql_sql, show_grants_of_the_session_in_mysqls_columns)
{
    struct clink_node *srv = node();
    struct my m;
    struct reply r = my_login(&m, clink_node_port(srv), 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    const char *forms[] = {"SHOW GRANTS",
                           "show grants;",
                           "SHOW GRANTS FOR CURRENT_USER",
                           "SHOW GRANTS FOR CURRENT_USER()",
                           "SHOW GRANTS FOR 'app'@'%'",
                           "SHOW GRANTS FOR app"};

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        r = my_query(&m, forms[i]);

        cr_assert_eq(r.code, 0, "%s: %d %s", forms[i], r.code, r.msg);
        cr_assert_eq(r.ncols, 1, "%s", forms[i]);
        cr_assert_eq(r.nrows, 1, "%s", forms[i]);
        cr_assert_str_eq(r.col, "Grants for app@%", "%s", forms[i]);
        cr_assert_str_eq(r.cell[0], "GRANT USAGE ON *.* TO 'app'@'%' REQUIRE SSL", "%s", forms[i]);
    }
    r = my_query(&m, "SHOW GRANTS FOR");
    cr_assert_eq(r.code, 1064, "%d %s", r.code, r.msg);
    my_close(&m);
    clink_node_free(srv);
}

Test(mysql_sql, show_grants_for_another_account_needs_grant_all_and_names_no_such_grant)
{
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct my m;
    struct reply r = my_login(&m, port, 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);

    struct reply other = my_query(&m, "SHOW GRANTS FOR 'admin'@'%'");
    struct reply missing = my_query(&m, "SHOW GRANTS FOR 'nobody'@'%'");
    my_close(&m);
    struct reply admin_sees = as_admin(port, "SHOW GRANTS FOR 'app'@'%'");
    struct reply admin_missing = as_admin(port, "SHOW GRANTS FOR nobody@'10.0.%'");

    /* MySQL 5.7's answer: SHOW GRANTS of another account wants SELECT on the mysql schema. Existence is not told. */
    cr_assert_eq(other.code, 1044, "%d %s", other.code, other.msg);
    cr_assert_str_eq(other.msg, "Access denied for user 'app'@'127.0.0.1' to database 'mysql'");
    cr_assert_eq(missing.code, 1044, "%d %s", missing.code, missing.msg);
    cr_assert_eq(admin_sees.code, 0, "%d %s", admin_sees.code, admin_sees.msg);
    cr_assert_str_eq(admin_sees.cell[0], "GRANT USAGE ON *.* TO 'app'@'%' REQUIRE SSL");
    cr_assert_eq(admin_missing.code, 1141, "%d %s", admin_missing.code, admin_missing.msg);
    cr_assert_str_eq(admin_missing.msg, "There is no such grant defined for user 'nobody' on host '10.0.%'");
    clink_node_free(srv);
}

/* Each REQUIRE as MySQL writes it, names quoted so that the line, run again, makes the same account. */
Test(mysql_sql, show_grants_writes_require_and_quotes_names_so_the_line_runs_again)
{
    struct clink_account_spec s[] = {
        {.user = "none", .require = "NONE", .password = "x"},
        {.user = "cert", .host = "10.0.%", .require = "X509"},
        {.user = "named", .require = "SUBJECT '/CN=o''brien\\\\x' AND ISSUER '/CN=clink CA'", .grant = "ALL"},
        {.user = "suite", .require = "CIPHER 'TLS_AES_256_GCM_SHA384'", .password = "x"},
    };
    const char *want[] = {
        "GRANT USAGE ON *.* TO 'none'@'%'",
        "GRANT USAGE ON *.* TO 'cert'@'10.0.%' REQUIRE X509",
        "GRANT ALL PRIVILEGES ON *.* TO 'named'@'%' REQUIRE ISSUER '/CN=clink CA' AND SUBJECT '/CN=o\\'brien\\\\x'",
        "GRANT USAGE ON *.* TO 'suite'@'%' REQUIRE CIPHER 'TLS_AES_256_GCM_SHA384'",
    };
    char err[256] = "", sql[600];
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(clink_accounts_add(acc, &s[i], err, sizeof(err)), 0, "%s", err);
    }
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);

    for (size_t i = 0; i < 4; i++) {
        snprintf(sql, sizeof(sql), "SHOW GRANTS FOR '%s'@'%s'", s[i].user, s[i].host ? s[i].host : "%");
        struct reply r = as_admin(port, sql);
        cr_assert_eq(r.code, 0, "%s: %d %s", sql, r.code, r.msg);
        cr_assert_str_eq(r.cell[0], want[i]);

        /* The account dropped, the line makes it again (without its password, which no line shows). */
        struct clink_account_info before, after;
        cr_assert_eq(clink_accounts_get(acc, s[i].user, s[i].host, &before), 0);
        cr_assert_eq(clink_accounts_drop(acc, s[i].user, s[i].host, err, sizeof(err)), 0, "%s", err);
        struct reply again = as_admin(port, r.cell[0]);
        cr_assert_eq(again.code, 0, "%s: %d %s", r.cell[0], again.code, again.msg);
        cr_assert_eq(clink_accounts_get(acc, s[i].user, s[i].host, &after), 0);
        before.has_password = 0;
        cr_assert_eq(memcmp(&before, &after, sizeof(before)), 0, "%s did not make the account again", r.cell[0]);
    }
    clink_node_free(srv);
}

/* ---- FLUSH PRIVILEGES ---- */

Test(mysql_sql, flush_privileges_reads_the_file_again_and_keeps_the_accounts_when_it_is_bad)
{
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct my m;
    char err[256] = "";
    /* Another writer (clink-accounts, say) adds an account to the file behind the node's back. */
    struct clink_accounts *other;
    cr_assert_eq(clink_accounts_load(acc_path, &other, err, sizeof(err)), 0, "%s", err);
    struct clink_account_spec late = {.user = "late", .password = "latepw", .require = "SSL"};
    cr_assert_eq(clink_accounts_add(other, &late, err, sizeof(err)), 0, "%s", err);
    clink_accounts_free(other);
    struct reply before = my_login(&m, port, 1, NULL, NULL, "late", "latepw");
    my_close(&m);
    struct reply r = my_login(&m, port, 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0);
    struct reply refused = my_query(&m, "FLUSH PRIVILEGES");
    my_close(&m);

    struct reply flushed = as_admin(port, "flush privileges;");
    struct reply after = my_login(&m, port, 1, NULL, NULL, "late", "latepw");
    my_close(&m);

    cr_assert_eq(before.code, 1045, "not loaded yet: %d", before.code);
    cr_assert_eq(refused.code, 1227, "%d %s", refused.code, refused.msg);
    cr_assert_str_eq(refused.msg,
                     "Access denied; you need (at least one of) the RELOAD privilege(s) for this operation");
    cr_assert_eq(flushed.code, 0, "%d %s", flushed.code, flushed.msg);
    cr_assert_eq(after.code, 0, "read again: %d %s", after.code, after.msg);

    /* A file that does not load: an error that says why, and the accounts in use stay. */
    FILE *f = fopen(acc_path, "a");
    cr_assert_not_null(f);
    fputs("[broken@%]\nrequire = SOMETIMES\n", f);
    fclose(f);
    struct reply bad = as_admin(port, "FLUSH LOCAL PRIVILEGES");
    cr_assert_eq(bad.code, 1105, "%d %s", bad.code, bad.msg);
    cr_assert(strstr(bad.msg, "FLUSH PRIVILEGES: the accounts file did not load; the accounts in use are kept: ") ==
                  bad.msg,
              "%s", bad.msg);
    cr_assert(strstr(bad.msg, "broken@%") != NULL, "names the section: %s", bad.msg);
    cr_assert_eq(clink_accounts_count(acc), 3);
    clink_node_free(srv);
}

/* ---- the server's grant_creates_user, live at a reload ---- */

static void write_config(const char *path, const char *extra)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem\nport = 0\nworkers = 1\n"
            "ops = OFF\naccounts_file = accounts.cnf\n%s",
            extra);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(path, 0600), 0);
}

Test(mysql_sql, grant_creates_user_from_the_config_and_live_at_a_reload)
{
    char path[400], err[512] = "";
    ts_pki_path(&pki, "node.cnf", path, sizeof(path));
    write_config(path, "grant_creates_user = OFF\n");
    struct clink_server *srv = NULL;
    cr_assert_eq(clink_server_new_from_config(path, NULL, &srv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_server_start(srv, err, sizeof(err)), 0, "%s", err);
    uint16_t port = clink_server_port(srv);
    struct clink_server_report rep;

    struct reply off = as_admin(port, "GRANT USAGE ON *.* TO 'u1'@'%' REQUIRE SSL");
    write_config(path, "grant_creates_user = ON\n");
    int ret = clink_server_reload(srv, &rep);
    struct reply on = as_admin(port, "GRANT USAGE ON *.* TO 'u1'@'%' REQUIRE SSL");
    int ret2 = clink_server_reload(srv, &rep);
    struct reply shown = as_admin(port, "SHOW GRANTS FOR u1");

    cr_assert_eq(off.code, 1410, "%d %s", off.code, off.msg);
    cr_assert_eq(ret, 0, "%s", rep.text);
    cr_assert_eq(on.code, 0, "%d %s", on.code, on.msg);
    cr_assert_str_eq(on.info, note);
    cr_assert_eq(ret2, 0, "%s", rep.text);
    cr_assert_eq(shown.code, 0, "%d %s", shown.code, shown.msg);
    cr_assert_str_eq(shown.cell[0], "GRANT USAGE ON *.* TO 'u1'@'%' REQUIRE SSL");
    cr_assert_eq(rep.changed & CLINK_SERVER_SQL, 0, "the second reload changed nothing: %s", rep.text);
    clink_server_free(srv);
}

Test(mysql_sql, a_reload_reports_grant_creates_user_applied_live)
{
    char path[400], err[512] = "";
    ts_pki_path(&pki, "node.cnf", path, sizeof(path));
    write_config(path, "");
    struct clink_server *srv = NULL;
    cr_assert_eq(clink_server_new_from_config(path, NULL, &srv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_server_start(srv, err, sizeof(err)), 0, "%s", err);
    struct clink_server_report rep;
    write_config(path, "grant_creates_user = OFF\n");

    int ret = clink_server_reload(srv, &rep);
    struct reply r = as_admin(clink_server_port(srv), "GRANT USAGE ON *.* TO 'u2'@'%'");

    cr_assert_eq(ret, 0, "%s", rep.text);
    cr_assert_eq(rep.changed & CLINK_SERVER_SQL, CLINK_SERVER_SQL, "%x", rep.changed);
    cr_assert_eq(rep.applied & CLINK_SERVER_SQL, CLINK_SERVER_SQL, "%x", rep.applied);
    cr_assert_eq(rep.restart, 0, "no restart: %s", rep.text);
    cr_assert(strstr(rep.text, "grant_creates_user OFF: now in effect.") != NULL, "%s", rep.text);
    cr_assert_eq(r.code, 1410, "%d %s", r.code, r.msg);
    clink_server_free(srv);
}

/* clink-admin update-config (clink_server_set_config) writes the key and the node applies it without a restart. */
Test(mysql_sql, update_config_applies_grant_creates_user_without_a_restart)
{
    char path[400], err[512] = "";
    ts_pki_path(&pki, "node.cnf", path, sizeof(path));
    write_config(path, "");
    struct clink_server *srv = NULL;
    cr_assert_eq(clink_server_new_from_config(path, NULL, &srv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_server_start(srv, err, sizeof(err)), 0, "%s", err);
    struct clink_server_edit e = {0};

    int ret = clink_server_set_config(srv, "grant-creates-user", "OFF", "test", &e);
    struct reply r = as_admin(clink_server_port(srv), "GRANT USAGE ON *.* TO 'u3'@'%'");

    cr_assert_eq(ret, 0, "%s", e.why);
    cr_assert_eq(e.outcome, CLINK_SERVER_EDIT_APPLIED, "%s: %s", clink_server_edit_outcome_name(e.outcome), e.why);
    cr_assert_eq(r.code, 1410, "%d %s", r.code, r.msg);
    cr_assert(strstr(slurp(path), "\ngrant_creates_user = OFF\n") != NULL, "%s", slurp(path));
    clink_server_free(srv);
}

/* ---- what drivers send on connect (issue 21): the door's own answers ---- */

/* A logged-in TLS session as app. */
static void app_session(struct my *m, uint16_t port)
{
    struct reply r = my_login(m, port, 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "app's login: %d %s", r.code, r.msg);
}

/* A command other than COM_QUERY: its first reply packet into p; its length. */
static int my_command(struct my *m, uint8_t com, const void *arg, size_t n, uint8_t *p, size_t cap)
{
    uint8_t b[256];
    cr_assert_lt(n + 1, sizeof(b));
    b[0] = com;
    memcpy(b + 1, arg, n);
    my_send(m, 0, b, n + 1);
    return my_recv(m, p, cap);
}

Test(mysql_sql, a_drivers_select_list_with_aliases_names_columns_as_mysql_does)
{
    struct clink_node *srv = node();
    struct my m;
    app_session(&m, clink_node_port(srv));

    struct reply r = my_query(&m, "SELECT @@version, DATABASE(), CONNECTION_ID() AS id, "
                                  "@@SESSION.transaction_isolation, @@system_time_zone stz, 'it''s\\t\\%', 1, NULL");

    my_close(&m);
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    cr_assert_eq(r.ncols, 8);
    cr_assert_eq(r.nrows, 1);
    const char *names[] = {"@@version", "DATABASE()", "id", "@@SESSION.transaction_isolation",
                           "stz",       "it's\t\\%",  "1",  "NULL"};
    for (int i = 0; i < 8; i++) {
        cr_assert_str_eq(r.cols[i], names[i], "column %d", i);
    }
    cr_assert_str_eq(r.row0[0], "8.0.0-clink-0.1.0", "the version the greeting announced");
    cr_assert_str_eq(r.row0[1], "NULL", "no database: NULL");
    cr_assert(atoi(r.row0[2]) > 0, "a connection id: %s", r.row0[2]);
    cr_assert_str_eq(r.row0[3], "REPEATABLE-READ", "MySQL 8.0's default");
    cr_assert_str_eq(r.row0[5], "it's\t\\%",
                     "a doubled quote, \\t, and \\% keeping its backslash, as MySQL reads them");
    cr_assert_str_eq(r.row0[6], "1", "a number comes back as text (typed results are later work)");
    clink_node_free(srv);
}

Test(mysql_sql, set_is_remembered_per_connection_and_com_reset_connection_forgets_it)
{
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct my m, other;
    app_session(&m, port);
    app_session(&other, port);
    uint8_t p[512];

    struct reply set = my_query(&m, "SET autocommit=0, NAMES latin1, @@session.sql_mode = 'ansi_quotes', "
                                    "SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    struct reply seen = my_query(&m, "SELECT @@autocommit, @@character_set_client, @@collation_connection, "
                                     "@@sql_mode, @@tx_isolation");
    struct reply elsewhere = my_query(&other, "SELECT @@autocommit, @@character_set_client");
    int n = my_command(&m, CLINK_MY_COM_RESET_CONNECTION, "", 0, p, sizeof(p));
    struct reply after = my_query(&m, "SELECT @@autocommit, @@character_set_client, @@sql_mode");

    my_close(&m);
    my_close(&other);
    cr_assert_eq(set.code, 0, "%d %s", set.code, set.msg);
    cr_assert_eq(set.status & CLINK_MY_STATUS_AUTOCOMMIT, 0, "the OK of SET autocommit=0 says autocommit is off");
    cr_assert_str_eq(seen.row0[0], "0");
    cr_assert_str_eq(seen.row0[1], "latin1");
    cr_assert_str_eq(seen.row0[2], "latin1_swedish_ci", "SET NAMES without COLLATE: the set's default collation");
    cr_assert_str_eq(seen.row0[3], "ANSI_QUOTES");
    cr_assert_str_eq(seen.row0[4], "READ-COMMITTED", "tx_isolation is transaction_isolation");
    cr_assert_str_eq(elsewhere.row0[0], "1", "another connection keeps the defaults");
    cr_assert_str_eq(elsewhere.row0[1], "utf8mb4");
    cr_assert(n > 0 && p[0] == 0x00, "COM_RESET_CONNECTION: OK (got %d bytes, 0x%02x)", n, p[0]);
    cr_assert_str_eq(after.row0[0], "1");
    cr_assert_str_eq(after.row0[1], "utf8mb4");
    cr_assert_str_eq(after.row0[2], "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                                    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION");
    cr_assert(after.status & CLINK_MY_STATUS_AUTOCOMMIT, "autocommit again after the reset");
    clink_node_free(srv);
}

Test(mysql_sql, a_refused_set_says_why_in_mysqls_words_and_changes_nothing)
{
    struct clink_node *srv = node();
    struct my m;
    app_session(&m, clink_node_port(srv));
    char sql[1024];

    struct reply ro = my_query(&m, "SET autocommit = 0, lower_case_table_names = 1");
    struct reply still = my_query(&m, "SELECT @@autocommit");
    struct reply global = my_query(&m, "SET GLOBAL wait_timeout = 5");
    struct reply bad = my_query(&m, "SET autocommit = 'maybe'");
    struct reply packet = my_query(&m, "SET max_allowed_packet = 5");
    struct reply unknown = my_query(&m, "SELECT @@no_such_variable");
    struct reply user_var = my_query(&m, "SET @x = 1");
    int at = 0;
    struct reply r = {0};
    for (int i = 0; i < 40 && r.code == 0; i++) { /* unknown names are kept too, up to the bound */
        snprintf(sql, sizeof(sql), "SET v%d = 'value %d'", i, i);
        r = my_query(&m, sql);
        at = i;
    }
    struct reply kept = my_query(&m, "SELECT @@v0");

    my_close(&m);
    cr_assert_eq(ro.code, 1238, "%d %s", ro.code, ro.msg);
    cr_assert_str_eq(ro.msg, "Variable 'lower_case_table_names' is a read only variable");
    cr_assert_str_eq(still.cell[0], "1", "all or nothing: autocommit did not change");
    cr_assert_eq(global.code, 1227, "%d %s", global.code, global.msg);
    cr_assert_eq(bad.code, 1231, "%d %s", bad.code, bad.msg);
    cr_assert_str_eq(bad.msg, "Variable 'autocommit' can't be set to the value of 'maybe'");
    cr_assert_eq(packet.code, 1621, "%d %s", packet.code, packet.msg);
    cr_assert_eq(unknown.code, 1193, "%d %s", unknown.code, unknown.msg);
    cr_assert_eq(user_var.code, 1064, "user variables are not kept: %d %s", user_var.code, user_var.msg);
    cr_assert_eq(r.code, 1105, "past 32 variables: %d %s", r.code, r.msg);
    cr_assert_eq(at, 32, "the 33rd is refused");
    cr_assert_str_eq(kept.cell[0], "value 0");
    clink_node_free(srv);
}

Test(mysql_sql, show_variables_like_show_warnings_and_transactions)
{
    struct clink_node *srv = node();
    struct my m;
    app_session(&m, clink_node_port(srv));

    struct reply set = my_query(&m, "SET SESSION sql_auto_is_null = 1");
    struct reply vars = my_query(&m, "SHOW VARIABLES LIKE 'sql\\_auto%'");
    struct reply all = my_query(&m, "SHOW SESSION VARIABLES");
    struct reply lower = my_query(&m, "SHOW VARIABLES LIKE 'lower_case_table_names'");
    struct reply warnings = my_query(&m, "SHOW WARNINGS LIMIT 10");
    const char *tx[] = {"BEGIN", "START TRANSACTION READ ONLY", "COMMIT", "ROLLBACK WORK", "begin work;"};
    struct reply txr[5];
    for (int i = 0; i < 5; i++) {
        txr[i] = my_query(&m, tx[i]);
    }

    my_close(&m);
    cr_assert_eq(set.code, 0, "%d %s", set.code, set.msg);
    cr_assert_eq(vars.nrows, 1);
    cr_assert_str_eq(vars.cols[0], "Variable_name");
    cr_assert_str_eq(vars.cols[1], "Value");
    cr_assert_str_eq(vars.row0[0], "sql_auto_is_null");
    cr_assert_str_eq(vars.row0[1], "ON", "SHOW VARIABLES spells a boolean ON/OFF");
    cr_assert_geq(all.nrows, 30);
    cr_assert_str_eq(all.cell[0], "auto_increment_increment", "sorted by name");
    cr_assert_str_eq(lower.row0[1], "0");
    cr_assert_eq(warnings.code, 0);
    cr_assert_eq(warnings.ncols, 3);
    cr_assert_eq(warnings.nrows, 0);
    cr_assert_str_eq(warnings.cols[2], "Message");
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(txr[i].code, 0, "%s: %d %s", tx[i], txr[i].code, txr[i].msg);
    }
    clink_node_free(srv);
}

Test(mysql_sql, commands_ping_statistics_set_option_field_list)
{
    struct clink_node *srv = node();
    struct my m;
    app_session(&m, clink_node_port(srv));
    uint8_t p[512];
    const uint8_t on[2] = {0, 0}, bad[2] = {7, 0};

    int ping = my_command(&m, CLINK_MY_COM_PING, "", 0, p, sizeof(p));
    cr_assert(ping > 0 && p[0] == 0x00, "COM_PING: OK");
    int stats = my_command(&m, CLINK_MY_COM_STATISTICS, "", 0, p, sizeof(p));
    cr_assert(stats > 8 && memcmp(p, "Uptime: ", 8) == 0, "COM_STATISTICS: %.*s", stats, (char *)p);
    cr_assert(strstr((char *)p, "Threads: ") != NULL && strstr((char *)p, "Questions: ") != NULL);
    int opt = my_command(&m, CLINK_MY_COM_SET_OPTION, on, 2, p, sizeof(p));
    cr_assert(opt == 5 && p[0] == 0xfe, "COM_SET_OPTION: EOF, as MySQL answers it (%d bytes)", opt);
    int unknown = my_command(&m, CLINK_MY_COM_SET_OPTION, bad, 2, p, sizeof(p));
    cr_assert(unknown > 3 && p[0] == 0xff && (p[1] | p[2] << 8) == 1047, "an unknown option: 1047");
    int nodb = my_command(&m, CLINK_MY_COM_FIELD_LIST, "t\0", 2, p, sizeof(p));
    cr_assert(nodb > 3 && p[0] == 0xff && (p[1] | p[2] << 8) == 1046, "no database: 1046");
    int init = my_command(&m, CLINK_MY_COM_INIT_DB, "shop", 4, p, sizeof(p));
    cr_assert(init > 0 && p[0] == 0x00, "COM_INIT_DB: OK");
    int list = my_command(&m, CLINK_MY_COM_FIELD_LIST, "t\0", 2, p, sizeof(p));
    struct reply db = my_query(&m, "SELECT DATABASE()");

    my_close(&m);
    cr_assert(list > 9 && p[0] == 0xff && (p[1] | p[2] << 8) == 1146, "COM_FIELD_LIST: 1146");
    cr_assert(memmem(p, (size_t)list, "Table 'shop.t' doesn't exist", 28) != NULL, "%.*s", list - 9, (char *)p + 9);
    cr_assert_str_eq(db.cell[0], "shop");
    clink_node_free(srv);
}

/* An embedder's hook: answers @@version its own way and one statement it refuses; leaves the rest to the door. */
static void embedder(struct clink_mysql_stmt *st, const char *sql, size_t len, void *user)
{
    (void)user;
    if (len == 16 && strncasecmp(sql, "SELECT @@version", 16) == 0) {
        static const char *const names[] = {"@@version"}, *const cells[] = {"embedder 1.0"};
        CLINK_IGNORE(clink_mysql_rows(st, 1, names, 1, cells));
    } else if (len >= 8 && strncasecmp(sql, "ROLLBACK", 8) == 0) {
        CLINK_IGNORE(clink_mysql_error(st, 1180, "HY000", "Got error during ROLLBACK"));
    }
}

Test(mysql_sql, the_embedders_hook_comes_first_and_the_door_answers_what_it_leaves)
{
    static struct clink_mysql_opts mysql = {.query = embedder};
    struct clink_node_opts o = {.workers = 1, .tls = tls, .accounts = acc, .mysql = &mysql};
    struct clink_node *srv = ts_node_with(&o, NULL);
    struct my m;
    app_session(&m, clink_node_port(srv));

    struct reply version = my_query(&m, "SELECT @@version");
    struct reply rollback = my_query(&m, "ROLLBACK");
    struct reply set = my_query(&m, "SET autocommit = 0");
    struct reply autocommit = my_query(&m, "SELECT @@autocommit");
    struct reply other = my_query(&m, "DELETE FROM t");

    my_close(&m);
    cr_assert_str_eq(version.cell[0], "embedder 1.0", "the hook's answer");
    cr_assert_eq(rollback.code, 1180, "the hook's error stands");
    cr_assert_eq(set.code, 0, "left to the door: %d %s", set.code, set.msg);
    cr_assert_str_eq(autocommit.cell[0], "0");
    cr_assert_eq(other.code, 1105, "neither knows it: %d %s", other.code, other.msg);
    clink_node_free(srv);
}

/* ---- COM_CHANGE_USER ---- */

/* A node as node() makes, with max_user_connections. */
static struct clink_node *node_limited(uint32_t max_user_connections)
{
    static struct clink_mysql_opts mysql = {.query = clink_mysql_builtin, .query_user = &sql_opts};
    struct clink_node_opts o = {.workers = 1,
                                .tls = tls,
                                .accounts = acc,
                                .mysql = &mysql,
                                .allow_plaintext = 1,
                                .max_user_connections = max_user_connections};
    return ts_node_with(&o, NULL);
}

/*
 * COM_CHANGE_USER as mysql2's changeUser sends it: mysql_native_password
 * named, a 20-byte answer (here one the node never checks inside TLS), then
 * whatever the node asks: an AuthSwitchRequest to caching_sha2_password is
 * answered with 32 bytes, the full authentication's request with the
 * password. db: the database to set ("" none).
 */
static struct reply my_change_user(struct my *m, const char *user, const char *password, const char *db)
{
    uint8_t b[512];
    size_t n = 0;
    b[n++] = 0x11;
    memcpy(b + n, user, strlen(user) + 1);
    n += strlen(user) + 1;
    b[n++] = 20;
    memset(b + n, 0x3c, 20);
    n += 20;
    memcpy(b + n, db, strlen(db) + 1);
    n += strlen(db) + 1;
    b[n++] = 45; /* utf8mb4 */
    b[n++] = 0;
    memcpy(b + n, "mysql_native_password", 22);
    n += 22;
    uint8_t seq = 0;
    my_send(m, seq, b, n);
    uint8_t r[512];
    int rn = my_recv(m, r, sizeof(r));
    seq += 2;
    if (rn > 1 && r[0] == 0xfe) { /* AuthSwitchRequest */
        memset(b, 0x5a, 32);
        my_send(m, seq, b, 32);
        rn = my_recv(m, r, sizeof(r));
        seq += 2;
    }
    if (rn == 2 && r[0] == 0x01 && r[1] == 0x04) { /* perform_full_authentication */
        my_send(m, seq, password, strlen(password) + 1);
        rn = my_recv(m, r, sizeof(r));
    }
    return parse_first(m, r, rn);
}

/* After a refusal the node closes the connection: nothing more comes, whatever is sent. */
static int closed_by_node(struct my *m)
{
    uint8_t b[64];
    b[0] = CLINK_MY_COM_PING;
    if (m->tls) {
        CLINK_IGNORE(tls_peer_write(&m->t, (const uint8_t[]){1, 0, 0, 0, CLINK_MY_COM_PING}, 5) != 0);
    } else {
        CLINK_IGNORE(write(m->fd, (const uint8_t[]){1, 0, 0, 0, CLINK_MY_COM_PING}, 5) != 5);
    }
    return my_recv(m, b, sizeof(b)) < 0;
}

/* The account the node's status shows for its one MySQL connection (clink_node_links). */
static void account_shown(struct clink_node *srv, char *out, size_t cap)
{
    struct clink_conn_status *v = NULL;
    size_t k = 0;
    out[0] = '\0';
    cr_assert_eq(clink_node_links(srv, &v, &k), 0);
    for (size_t i = 0; i < k; i++) {
        if (v[i].mysql && strcmp(v[i].state, "open") == 0) {
            snprintf(out, cap, "%s", v[i].account);
        }
    }
    free(v);
}

Test(mysql_sql, change_user_to_another_account_runs_as_it_with_a_new_session)
{
    struct clink_node *srv = node();
    struct my m;
    struct reply r = my_login(&m, clink_node_port(srv), 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    r = my_query(&m, "SET autocommit = 0");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    char shown[160];

    r = my_change_user(&m, "admin", "adminpw", "shop");

    cr_assert_eq(r.code, 0, "the change: %d %s", r.code, r.msg);
    r = my_query(&m, "SELECT CURRENT_USER(), USER(), DATABASE(), @@autocommit");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    cr_assert_str_eq(r.row0[0], "admin@%");
    cr_assert_str_eq(r.row0[1], "admin@127.0.0.1");
    cr_assert_str_eq(r.row0[2], "shop", "the database the change named");
    cr_assert_str_eq(r.row0[3], "1", "the session variables are back to their defaults");
    r = my_query(&m, "SHOW GRANTS");
    cr_assert_str_eq(r.cell[0], "GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' REQUIRE SSL");
    account_shown(srv, shown, sizeof(shown));
    cr_assert_str_eq(shown, "admin@%", "the node's status shows the new account");
    r = my_change_user(&m, "app", "apppw", "");
    cr_assert_eq(r.code, 0, "and back: %d %s", r.code, r.msg);
    r = my_query(&m, "SELECT CURRENT_USER(), DATABASE()");
    cr_assert_str_eq(r.row0[0], "app@%");
    cr_assert_str_eq(r.row0[1], "NULL");
    my_close(&m);
    clink_node_free(srv);
}

Test(mysql_sql, change_user_with_a_wrong_password_is_denied_closed_and_throttled)
{
    struct clink_node *srv = node();
    struct my m;
    struct reply r = my_login(&m, clink_node_port(srv), 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    struct clink_login_stats before, after;
    struct clink_node_stats ns;
    clink_accounts_login_stats(acc, &before);

    r = my_change_user(&m, "admin", "wrong", "");

    cr_assert_eq(r.code, 1045, "%d %s", r.code, r.msg);
    cr_assert_str_eq(r.msg, "Access denied for user 'admin'@'127.0.0.1' (using password: YES)");
    cr_assert(closed_by_node(&m), "MySQL closes the connection after a failed COM_CHANGE_USER");
    clink_accounts_login_stats(acc, &after);
    cr_assert_eq(after.failures, before.failures + 1, "the throttle counted the failure");
    clink_node_get_stats(srv, &ns);
    cr_assert_eq(ns.logins_denied, 1);
    my_close(&m);
    clink_node_free(srv);
}

Test(mysql_sql, change_user_checks_require_x509_against_this_connection)
{
    char err[256] = "";
    struct clink_account_spec s = {.user = "certy", .password = "certypw", .require = "X509"};
    cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), 0, "%s", err);
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct my bare, withcert;
    struct reply r = my_login(&bare, port, 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    r = my_login(&withcert, port, 1, pki.node_cert, pki.node_key, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);

    struct reply no = my_change_user(&bare, "certy", "certypw", "");
    struct reply yes = my_change_user(&withcert, "certy", "certypw", "");

    cr_assert_eq(no.code, 1045, "no client certificate on this connection: %d %s", no.code, no.msg);
    cr_assert(closed_by_node(&bare));
    cr_assert_eq(yes.code, 0, "a verified client certificate on this one: %d %s", yes.code, yes.msg);
    r = my_query(&withcert, "SELECT CURRENT_USER()");
    cr_assert_str_eq(r.row0[0], "certy@%");
    my_close(&bare);
    my_close(&withcert);
    clink_node_free(srv);
}

Test(mysql_sql, change_user_moves_the_session_between_accounts_counts)
{
    struct clink_node *srv = node_limited(1);
    uint16_t port = clink_node_port(srv);
    struct my a, b, c, d;
    struct reply r = my_login(&a, port, 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);

    r = my_change_user(&a, "admin", "adminpw", "");

    cr_assert_eq(r.code, 0, "admin has no session yet: %d %s", r.code, r.msg);
    struct reply app_again = my_login(&b, port, 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(app_again.code, 0, "app's slot was given back: %d %s", app_again.code, app_again.msg);
    struct reply admin_again = my_login(&c, port, 1, NULL, NULL, "admin", "adminpw");
    my_close(&c);
    cr_assert_eq(admin_again.code, 1203, "admin's slot is taken by the changed session: %d %s", admin_again.code,
                 admin_again.msg);
    /* The limit of the target account: app (in b) changing to admin, which holds its one session in a. */
    r = my_change_user(&b, "admin", "adminpw", "");
    cr_assert_eq(r.code, 1203, "%d %s", r.code, r.msg);
    cr_assert_str_eq(r.msg, "User admin already has more than 'max_user_connections' active connections");
    cr_assert(closed_by_node(&b), "and the connection is closed, as after any failed change");
    /* b's close gave app's slot back; admin's is still a's. */
    r = my_login(&d, port, 1, NULL, NULL, "app", "apppw");
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    struct clink_node_stats ns;
    clink_node_get_stats(srv, &ns);
    cr_assert_eq(ns.refused_max_user_connections, 2);
    my_close(&a);
    my_close(&b);
    my_close(&d);
    clink_node_free(srv);
}

/* ---- clients without CLIENT_PLUGIN_AUTH (the `mysql` Node package) ---- */

/*
 * Log in as the `mysql` package does: SSL request (tls_on), then a
 * handshake response without CLIENT_PLUGIN_AUTH or CONNECT_ATTRS, whose
 * 20-byte answer is mysql_native_password's to the greeting's scramble, and
 * no plugin name. [out] scramble_out (may be NULL): the greeting's scramble.
 */
static struct reply my_login_old(struct my *m, uint16_t port, int tls_on, const char *user, const char *password,
                                 uint8_t *scramble_out)
{
    memset(m, 0, sizeof(*m));
    m->fd = ts_tcp_connect(port);
    uint8_t g[CLINK_GREETING_MAX + 5], scramble[20];
    cr_assert_eq(ts_read_full(m->fd, g, 5), 0);
    int len = clink__opening_greeting_len(g);
    cr_assert_gt(len, 0);
    cr_assert_eq(ts_read_full(m->fd, g + 5, (size_t)len - 1), 0);
    cr_assert_eq(clink__opening_greeting_scramble(g + 5, (size_t)len - 1, scramble), 0);
    if (scramble_out != NULL) {
        memcpy(scramble_out, scramble, 20);
    }
    uint32_t caps = CLINK_MY_PROTOCOL_41 | CLINK_MY_SECURE_CONNECTION | CLINK_MY_LONG_PASSWORD |
                    CLINK_MY_CONNECT_WITH_DB | (tls_on ? CLINK_MY_SSL : 0);
    uint8_t b[256];
    uint8_t seq = 1;
    if (tls_on) {
        my_send(m, seq++, b, fixed_part(b, caps));
        struct tls_peer_opts to = {.ca = pki.ca, .host = "localhost"};
        cr_assert_eq(tls_peer_new(&m->t, &to, m->fd), 0, "%s", m->t.err);
        m->tls = 1;
        cr_assert_eq(tls_peer_handshake(&m->t, tls_peer_now() + ts_ms(5000) / 1000.0), 0, "%s", m->t.err);
    }
    size_t n = fixed_part(b, caps);
    memcpy(b + n, user, strlen(user) + 1);
    n += strlen(user) + 1;
    b[n++] = 20;
    cr_assert_eq(clink_login_scramble(password, scramble, b + n), 0);
    n += 20;
    b[n++] = 0; /* the database: none */
    my_send(m, seq, b, n);
    return my_reply(m);
}

/* COM_CHANGE_USER as the `mysql` package's changeUser sends it: the native answer, no plugin name. */
static struct reply my_change_user_old(struct my *m, const char *user, const char *password, const uint8_t *scramble)
{
    uint8_t b[256];
    size_t n = 0;
    b[n++] = 0x11;
    memcpy(b + n, user, strlen(user) + 1);
    n += strlen(user) + 1;
    b[n++] = 20;
    cr_assert_eq(clink_login_scramble(password, scramble, b + n), 0);
    n += 20;
    b[n++] = 0;  /* the database: none */
    b[n++] = 33; /* utf8_general_ci, the package's default */
    b[n++] = 0;
    my_send(m, 0, b, n);
    return my_reply(m);
}

Test(mysql_sql, a_client_without_plugin_auth_logs_in_over_tls_only_where_legacy_native_tls_allows)
{
    char err[256] = "";
    struct clink_account_spec s[] = {
        {.user = "old", .password = "oldpw", .require = "SSL", .native_password = "ON", .legacy_native_tls = "ON"},
        {.user = "strict", .password = "strictpw", .require = "SSL", .native_password = "ON"}};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(clink_accounts_add(acc, &s[i], err, sizeof(err)), 0, "%s", err);
    }
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct my m;
    struct clink_node_stats ns;

    struct reply old = my_login_old(&m, port, 1, "old", "oldpw", NULL);
    struct reply q = old.code == 0 ? my_query(&m, "SELECT CURRENT_USER()") : old;
    my_close(&m);
    struct reply strict = my_login_old(&m, port, 1, "strict", "strictpw", NULL);
    my_close(&m);

    cr_assert_eq(old.code, 0, "legacy_native_tls = ON: %d %s", old.code, old.msg);
    cr_assert_str_eq(q.row0[0], "old@%");
    cr_assert_eq(strict.code, 1045, "without it: %d %s", strict.code, strict.msg);
    cr_assert_str_eq(strict.msg, "Access denied for user 'strict'@'127.0.0.1' (using password: YES)");
    clink_node_get_stats(srv, &ns);
    cr_assert_eq(ns.logins_legacy_native_tls, 1);
    clink_node_free(srv);
}

Test(mysql_sql, change_user_from_an_old_client_follows_the_first_logins_rules)
{
    char err[256] = "";
    struct clink_account_spec s[] = {
        {.user = "old", .password = "oldpw", .require = "SSL", .native_password = "ON", .legacy_native_tls = "ON"},
        {.user = "old2", .password = "old2pw", .native_password = "ON", .legacy_native_tls = "ON"},
        {.user = "strict", .password = "strictpw", .require = "SSL", .native_password = "ON"},
        {.user = "plain", .password = "plainpw", .native_password = "ON"}};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        cr_assert_eq(clink_accounts_add(acc, &s[i], err, sizeof(err)), 0, "%s", err);
    }
    struct clink_node *srv = node();
    uint16_t port = clink_node_port(srv);
    struct my tls_m, plain_m;
    uint8_t tls_scramble[20], plain_scramble[20];
    struct reply r = my_login_old(&tls_m, port, 1, "old", "oldpw", tls_scramble);
    cr_assert_eq(r.code, 0, "%d %s", r.code, r.msg);
    r = my_login_old(&plain_m, port, 0, "old2", "old2pw", plain_scramble);
    cr_assert_eq(r.code, 0, "plaintext: %d %s", r.code, r.msg);
    struct clink_node_stats ns;

    struct reply in_tls = my_change_user_old(&tls_m, "old2", "old2pw", tls_scramble);
    struct reply in_plain = my_change_user_old(&plain_m, "plain", "plainpw", plain_scramble);
    struct reply q = my_query(&plain_m, "SELECT CURRENT_USER()");
    struct reply refused = my_change_user_old(&tls_m, "strict", "strictpw", tls_scramble);

    cr_assert_eq(in_tls.code, 0, "inside TLS, to another legacy_native_tls account: %d %s", in_tls.code, in_tls.msg);
    cr_assert_eq(in_plain.code, 0, "in plaintext, the scramble answer: %d %s", in_plain.code, in_plain.msg);
    cr_assert_str_eq(q.row0[0], "plain@%");
    cr_assert_eq(refused.code, 1045, "inside TLS, to an account without legacy_native_tls: %d %s", refused.code,
                 refused.msg);
    cr_assert(closed_by_node(&tls_m));
    clink_node_get_stats(srv, &ns);
    cr_assert_eq(ns.logins_legacy_native_tls, 2, "the first login and the change inside TLS");
    my_close(&tls_m);
    my_close(&plain_m);
    clink_node_free(srv);
}
