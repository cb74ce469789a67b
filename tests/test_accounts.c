/*
 * Accounts: verifiers (never the password), MySQL's REQUIRE grammar, host
 * patterns, the exact refusal text, and a file written back atomically.
 * No sockets here: logins over real connections are in test_login.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/accounts_int.h"
#include "clink/accounts.h"
#include "tests/support/support.h"

static struct ts_pki pki;
static X509 *node_cert, *other_cert;
static char node_subject[256], node_issuer[256];

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(x);
    return x;
}

static void setup(void)
{
    ts_pki_make(&pki);
    node_cert = read_cert(pki.node_cert);
    other_cert = read_cert(pki.other_cert);
    X509_NAME_oneline(X509_get_subject_name(node_cert), node_subject, sizeof(node_subject));
    X509_NAME_oneline(X509_get_issuer_name(node_cert), node_issuer, sizeof(node_issuer));
}

static void teardown(void)
{
    X509_free(node_cert);
    X509_free(other_cert);
    ts_pki_remove(&pki);
}

TestSuite(accounts, .init = setup, .fini = teardown, .timeout = 30);

static struct clink_accounts *mem_spec(const struct clink_account_spec *s)
{
    struct clink_accounts *acc;
    char err[256] = "";
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    cr_assert_eq(clink_accounts_add(acc, s, err, sizeof(err)), 0, "%s", err);
    return acc;
}

static struct clink_accounts *mem_with(const char *user, const char *host, const char *pw, const char *require)
{
    return mem_spec(&(struct clink_account_spec){.user = user, .host = host, .password = pw, .require = require});
}

/* A TLS login with a verified certificate and no password, from 127.0.0.1. */
static struct clink_login tls_login(const char *user)
{
    return (struct clink_login){.user = user,
                                .host = "127.0.0.1",
                                .tls = 1,
                                .cipher = "TLS_AES_256_GCM_SHA384",
                                .peer_cert = node_cert,
                                .peer_verified = 1};
}

static int check(struct clink_accounts *acc, const struct clink_login *l, char *why)
{
    return clink_accounts_check(acc, l, NULL, 0, why, 256);
}

Test(accounts, access_denied_text_is_exactly_mysqls)
{
    char buf[128];
    size_t n = clink_access_denied("root", "10.0.0.7", buf, sizeof(buf));
    cr_assert_str_eq(buf, "Access denied for user 'root'@'10.0.0.7'");
    cr_assert_eq(n, strlen(buf));
}

Test(accounts, cleartext_password_inside_tls_only)
{
    struct clink_accounts *acc = mem_with("app", "%", "s3cret!", "SSL");
    struct clink_login l = tls_login("app");
    char why[256], matched[128];
    l.method = CLINK_LOGIN_CLEARTEXT;
    l.auth = (const uint8_t *)"s3cret!";
    l.auth_len = 7;

    cr_assert_eq(clink_accounts_check(acc, &l, matched, sizeof(matched), why, sizeof(why)), 0, "%s", why);
    cr_assert_str_eq(matched, "app@%");

    l.auth = (const uint8_t *)"s3cret?";
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "wrong password") != NULL, "%s", why);

    l.auth = (const uint8_t *)"s3cret!";
    l.auth_len = 6; /* a prefix of the password is not the password */
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);

    l.auth_len = 7;
    l.tls = 0;
    l.cipher = NULL;
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "outside TLS") != NULL, "%s", why);

    l.tls = 1;
    l.method = CLINK_LOGIN_NONE;
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "needs a password") != NULL, "%s", why);
    clink_accounts_free(acc);
}

Test(accounts, scramble_login_proves_the_password_without_sending_it)
{
    struct clink_accounts *acc =
        mem_spec(&(struct clink_account_spec){.user = "app", .password = "pa55", .native_password = "ON"});
    uint8_t scramble[CLINK_SCRAMBLE_LEN], ans[20];
    for (int i = 0; i < CLINK_SCRAMBLE_LEN; i++) {
        scramble[i] = (uint8_t)(i * 7 + 1);
    }
    cr_assert_eq(clink_login_scramble("pa55", scramble, ans), 0);
    struct clink_login l = {.user = "app",
                            .host = "127.0.0.1",
                            .method = CLINK_LOGIN_SCRAMBLE,
                            .auth = ans,
                            .auth_len = 20,
                            .scramble = scramble};
    char why[256];

    cr_assert_eq(check(acc, &l, why), 0, "%s", why);

    scramble[0] ^= 1; /* an answer to another challenge: a replay */
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    scramble[0] ^= 1;
    cr_assert_eq(clink_login_scramble("pa56", scramble, ans), 0);
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    l.auth_len = 19;
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    clink_accounts_free(acc);
}

Test(accounts, a_bound_scramble_holds_only_for_its_tls_session)
{
    struct clink_accounts *acc = mem_spec(
        &(struct clink_account_spec){.user = "app", .password = "pa55", .require = "SSL", .native_password = "ON"});
    uint8_t scramble[CLINK_SCRAMBLE_LEN], cb[CLINK_BINDING_LEN], ans[20];
    memset(scramble, 7, sizeof(scramble));
    memset(cb, 0x5a, sizeof(cb));
    cr_assert_eq(clink_login_scramble_bound("pa55", scramble, cb, ans), 0);
    struct clink_login l = tls_login("app");
    l.method = CLINK_LOGIN_SCRAMBLE_BOUND;
    l.auth = ans;
    l.auth_len = 20;
    l.scramble = scramble;
    l.binding = cb;
    char why[256];

    cr_assert_eq(check(acc, &l, why), 0, "%s", why);

    cb[31] ^= 1; /* the same answer on another TLS session: a relay's */
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cb[31] ^= 1;
    l.binding = NULL; /* no binding (plaintext, or a TLS 1.2 session without the extended master secret) */
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "without a TLS channel binding") != NULL, "%s", why);
    l.binding = cb;
    l.method = CLINK_LOGIN_SCRAMBLE; /* the bound answer is no unbound one, and the unbound form is refused in TLS */
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "legacy_native_tls") != NULL, "%s", why);
    cr_assert_eq(clink_login_scramble_bound("pa55", scramble, NULL, ans), -CLINK_EINVAL);
    clink_accounts_free(acc);
}

Test(accounts, localhost_is_the_loopback_addresses)
{
    /* plaintext_no_password: 'localhost' is a literal host, and the logins below have no certificate. */
    struct clink_accounts *acc = mem_spec(&(struct clink_account_spec){
        .user = "admin", .host = "localhost", .require = "NONE", .plaintext_no_password = "ON"});
    struct clink_login l = {.user = "admin", .host = "127.0.0.1"};
    char why[256], matched[128];

    cr_assert_eq(clink_accounts_check(acc, &l, matched, sizeof(matched), why, sizeof(why)), 0, "%s", why);
    cr_assert_str_eq(matched, "admin@localhost");
    l.host = "::1";
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    l.host = "127.0.0.2";
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    l.host = "10.0.0.1";
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    l.host = "::2";
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    clink_accounts_free(acc);
}

Test(accounts, account_without_password_refuses_one)
{
    struct clink_accounts *acc = mem_with("node", "%", NULL, "X509");
    struct clink_login l = tls_login("node");
    char why[256];
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    l.method = CLINK_LOGIN_CLEARTEXT;
    l.auth = (const uint8_t *)"x";
    l.auth_len = 1;
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    clink_accounts_free(acc);
}

Test(accounts, require_ssl_x509_subject_issuer_cipher)
{
    char why[256], req[700];
    struct clink_login l = tls_login("n");

    /* plaintext_no_password: the plaintext login below is refused by REQUIRE SSL, not for want of a certificate. */
    l.host = "10.0.0.7";
    struct clink_accounts *acc = mem_spec(&(struct clink_account_spec){
        .user = "n", .host = "10.0.0.7", .require = "REQUIRE SSL", .plaintext_no_password = "ON"});
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    l.tls = 0;
    l.peer_cert = NULL;
    l.cipher = NULL;
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS, "plaintext login to a REQUIRE SSL account");
    cr_assert(strstr(why, "requires SSL") != NULL, "%s", why);
    clink_accounts_free(acc);

    l = tls_login("n");
    acc = mem_with("n", "%", NULL, "x509");
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    l.peer_verified = 0;
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS, "an unverified certificate is no X509");
    l.peer_verified = 1;
    l.peer_cert = NULL;
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    clink_accounts_free(acc);

    l = tls_login("n");
    snprintf(req, sizeof(req), "SUBJECT '%s' AND ISSUER '%s'", node_subject, node_issuer);
    acc = mem_with("n", "%", NULL, req);
    cr_assert_eq(check(acc, &l, why), 0, "%s: %s", req, why);
    l.peer_cert = other_cert; /* same CN, other CA: the issuer differs */
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "issuer") != NULL, "%s", why);
    clink_accounts_free(acc);

    l = tls_login("n");
    acc = mem_with("n", "%", NULL, "SUBJECT '/CN=somebody else'");
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "subject") != NULL, "%s", why);
    clink_accounts_free(acc);

    acc = mem_with("n", "%", NULL, "CIPHER 'TLS_AES_256_GCM_SHA384'");
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    l.cipher = "TLS_AES_128_GCM_SHA256";
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "cipher") != NULL, "%s", why);
    clink_accounts_free(acc);

    l = tls_login("n");
    l.tls = 0;
    acc = mem_with("n", "%", NULL, "NONE");
    cr_assert_eq(check(acc, &l, why), 0, "REQUIRE NONE takes plaintext: %s", why);
    clink_accounts_free(acc);
}

Test(accounts, bad_require_is_refused_with_the_reason)
{
    static const char *const bad[] = {
        "SSL SSL",
        "SUBJECT",
        "SUBJECT '/CN=a",
        "SUBJECT '/CN=a' SUBJECT '/CN=b'",
        "ISSUER ''",
        "CIPHER foo",
        "SOMETHING",
        "NONE SSL",
        "REQUIRE REQUIRE",
        "NONE AND SSL",
        "SUBJECT '/CN=a\n[evil@%]'",
        "SUBJECT '/CN=a ;comment'",
        "SUBJECT '/CN=agg1 '", /* the file would lose the space (fuzz/regressions/accounts) */
        "ISSUER ' /CN=ca'",
    };
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        struct clink_account_spec s = {.user = "u", .require = bad[i]};
        cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), -CLINK_EINVAL, "%s was taken", bad[i]);
        cr_assert(err[0] != '\0', "no reason for %s", bad[i]);
    }
    cr_assert_eq(clink_accounts_count(acc), 0);
    clink_accounts_free(acc);
}

Test(accounts, the_most_specific_host_wins)
{
    struct clink_accounts *acc;
    char err[256] = "", why[256], matched[128];
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    struct clink_account_spec any = {.user = "u", .host = "%", .require = "NONE"};
    struct clink_account_spec net = {.user = "u", .host = "10.0.%", .require = "SSL"};
    struct clink_account_spec one = {.user = "u", .host = "10.0.0.7", .require = "X509"};
    cr_assert_eq(clink_accounts_add(acc, &any, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_add(acc, &net, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_add(acc, &one, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_add(acc, &one, err, sizeof(err)), -EEXIST);

    /* A verified certificate (the password-less accounts' proof) over plaintext: only REQUIRE tells them apart. */
    struct clink_login l = {.user = "u", .host = "10.0.0.7", .peer_cert = node_cert, .peer_verified = 1};
    cr_assert_eq(clink_accounts_check(acc, &l, matched, sizeof(matched), why, sizeof(why)), -CLINK_EACCESS,
                 "10.0.0.7 must get its own account (X509), not %%");
    l.host = "10.0.3.1";
    cr_assert_eq(clink_accounts_check(acc, &l, matched, sizeof(matched), why, sizeof(why)), -CLINK_EACCESS,
                 "10.0.% requires SSL");
    l.host = "192.168.1.1";
    cr_assert_eq(clink_accounts_check(acc, &l, matched, sizeof(matched), why, sizeof(why)), 0, "%s", why);
    cr_assert_str_eq(matched, "u@%");
    l.user = "v";
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "no account matches") != NULL, "%s", why);

    cr_assert_eq(clink_accounts_drop(acc, "u", "10.0.0.7", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_drop(acc, "u", "10.0.0.7", err, sizeof(err)), -ENOENT);
    cr_assert_eq(clink_accounts_count(acc), 2);
    clink_accounts_free(acc);
}

Test(accounts, bad_names_are_refused)
{
    struct clink_accounts *acc;
    char err[256];
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    static const char *const users[] = {"with space", "quote'", "br]acket", "new\nline",
                                        "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        struct clink_account_spec s = {.user = users[i]};
        cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), -CLINK_EINVAL, "%s", users[i]);
    }
    struct clink_account_spec s = {.user = "ok", .host = "a@b"};
    cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), -CLINK_EINVAL);
    /* 50 bytes as [user@host]: libinih would cut the section to 49 (fuzz/regressions/accounts). */
    s = (struct clink_account_spec){.user = "012345678901234567890123", .host = "0123456789012345678901234"};
    cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert(strstr(err, "user@host longer than 49 bytes") != NULL, "%s", err);
    s.host = "012345678901234567890123";
    cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), 0, "49 bytes fit: %s", err);
    clink_accounts_free(acc);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(accounts, file_keeps_verifiers_only_and_round_trips)
{
    char path[400], err[256] = "", why[256];
    snprintf(path, sizeof(path), "%s/accounts.cnf", pki.dir);
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_new(path, &acc), 0);
    char req[400];
    snprintf(req, sizeof(req), "SUBJECT '%s'", node_subject);
    struct clink_account_spec root = {.user = "root", .require = req};
    struct clink_account_spec app = {
        .user = "app", .host = "127.0.0.%", .password = "password", .require = "SSL", .native_password = "ON"};
    cr_assert_eq(clink_accounts_add(acc, &root, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_add(acc, &app, err, sizeof(err)), 0, "%s", err);

    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    const char *text = slurp(path);
    cr_assert(strstr(text, "[root@%]") != NULL, "%s", text);
    /* MySQL's own verifier for "password": the value in mysql.user. */
    cr_assert(strstr(text, "mysql_native_password = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19") != NULL, "%s", text);
    cr_assert(strstr(text, "caching_sha2_password = $5$") != NULL, "%s", text);
    cr_assert(strstr(text, "= password") == NULL && strstr(text, "'password'") == NULL, "%s", text);
    clink_accounts_free(acc);

    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_count(acc), 2);
    struct clink_login l = tls_login("root");
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    l = tls_login("app");
    l.method = CLINK_LOGIN_CLEARTEXT;
    l.auth = (const uint8_t *)"password";
    l.auth_len = 8;
    cr_assert_eq(check(acc, &l, why), 0, "SHA-256 crypt verifier read back: %s", why);

    /* alter: a new password replaces both verifiers (native_password stays on); the old one stops working. */
    struct clink_account_spec change = {.user = "app", .host = "127.0.0.%", .password = "n3w"};
    cr_assert_eq(clink_accounts_alter(acc, &change, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    l.auth = (const uint8_t *)"n3w";
    l.auth_len = 3;
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    l.tls = 0; /* the requirement was kept */
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    clink_accounts_free(acc);

    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "%s", err);
    l.tls = 1;
    cr_assert_eq(check(acc, &l, why), 0, "the change was written back: %s", why);
    clink_accounts_free(acc);
}

Test(accounts, a_change_that_cannot_be_saved_is_not_made)
{
    char path[400], err[256] = "";
    snprintf(path, sizeof(path), "%s/no-such-folder/accounts.cnf", pki.dir);
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_new(path, &acc), 0);
    struct clink_account_spec s = {.user = "root", .require = "X509"};
    int ret = clink_accounts_add(acc, &s, err, sizeof(err));
    cr_assert_eq(ret, -ENOENT, "%d %s", ret, err);
    cr_assert(strstr(err, "no-such-folder") != NULL, "%s", err);
    cr_assert_eq(clink_accounts_count(acc), 0);
    clink_accounts_free(acc);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(accounts, bad_files_name_the_line_and_reason)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"[root@%]\nrequire = X509\npassword = x\n", ":3: [root@%] password: unknown key"},
        {"[root@%]\nrequire = X509\n[root@%]\nrequire = SSL\n", "account listed twice"},
        {"[root@%]\nrequire = X509\n[empty@%]\n", "every [user@host] needs"},
        {"[root]\nrequire = X509\n", "a section is one account"},
        {"[root@%]\nrequire = SUBJECT\n", "SUBJECT needs a quoted value"},
        {"[root@%]\nrequire = X509\nmysql_native_password = abc\n", "not a verifier"},
        {"[root@%]\nrequire = X509\ncaching_sha2_password = plain\n", "not a SHA-256 crypt verifier"},
        {"[root@%]\nrequire = X509\nrequire = SSL\n", "given twice"},
        {"require = X509\n", "a section is one account"},
        {"[root@%]\nrequire = SUBJECT ' /CN=a'\n", "SUBJECT value: a leading or trailing space cannot be stored"},
        {"[root@%]\nrequire_cipher = ;x\n", "no ';' or '#'"},
        {"[0123456789012345678901234567890123456789012345678@%]\nrequire = NONE\n", "longer than 49 bytes"},
        /* libinih would read the end of this comment as a key of [root@%]: a cipher requirement no reader sees. */
        {"[root@%]\nrequire = NONE\n# "
         "01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"
         "789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"
         "require_cipher = X\n",
         ":3: a line longer than 198 bytes"},
    };
    char path[400], err[512];
    snprintf(path, sizeof(path), "%s/bad.cnf", pki.dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(path, cases[i].text);
        struct clink_accounts *acc = NULL;
        err[0] = '\0';
        cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), -CLINK_ECONFIG, "case %zu loaded", i);
        cr_assert(strstr(err, cases[i].want) != NULL, "case %zu: want '%s' in '%s'", i, cases[i].want, err);
        cr_assert(strstr(err, path) != NULL, "case %zu: the file is named: %s", i, err);
    }
    snprintf(path, sizeof(path), "%s/missing.cnf", pki.dir);
    cr_assert_eq(clink_accounts_load(path, &(struct clink_accounts *){NULL}, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "No such file") != NULL, "%s", err);
}

Test(accounts, reload_keeps_the_old_accounts_when_the_file_is_bad)
{
    char path[400], err[512], why[256];
    snprintf(path, sizeof(path), "%s/acc.cnf", pki.dir);
    write_file(path, "[node@%]\nrequire = X509\n");
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "%s", err);
    struct clink_login l = tls_login("node");
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);

    write_file(path, "[node@%]\nrequire = X509\n[broken\n");
    cr_assert_eq(clink_accounts_reload(acc, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert_eq(check(acc, &l, why), 0, "old accounts still in use: %s", why);

    write_file(path, "[other@%]\nrequire = SSL\n");
    cr_assert_eq(clink_accounts_reload(acc, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS, "node was dropped by the new file");
    clink_accounts_free(acc);
}

Test(accounts, mysql_grammar_combinations_and_long_names_round_trip)
{
    char path[400], err[512] = "", why[256];
    snprintf(path, sizeof(path), "%s/long.cnf", pki.dir);
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_new(path, &acc), 0);
    /* Two 170-byte names: longer together than a line libinih reads, so they are stored one per key. */
    char dn1[171], dn2[171], req[512];
    memset(dn1, 'a', 170);
    memset(dn2, 'b', 170);
    dn1[0] = dn2[0] = '/';
    dn1[1] = dn2[1] = 'O';
    dn1[2] = dn2[2] = '=';
    dn1[170] = dn2[170] = '\0';
    snprintf(req, sizeof(req),
             "REQUIRE SSL AND X509 AND SUBJECT '%s' AND ISSUER '%s' AND CIPHER 'TLS_AES_256_GCM_SHA384'", dn1, dn2);
    struct clink_account_spec s = {.user = "long", .require = req};
    cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), 0, "%s", err);
    clink_accounts_free(acc);
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "written, read back: %s", err);
    cr_assert_eq(clink_accounts_count(acc), 1);
    struct clink_login l = tls_login("long");
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert(strstr(why, "requires subject '/O=aaa") != NULL, "%s", why);

    char big[300];
    memset(big, 'c', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(req, sizeof(req), "SUBJECT '/CN=%s'", big);
    s = (struct clink_account_spec){.user = "big", .require = req};
    cr_assert_eq(clink_accounts_add(acc, &s, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert(strstr(err, "longer than 180 bytes") != NULL, "%s", err);
    clink_accounts_free(acc);
}

Test(accounts, a_longer_name_never_matches_its_prefix)
{
    /* 300 bytes of subject: a fixed 256-byte buffer would have compared only its start. */
    X509 *x = X509_new();
    X509_NAME *n = X509_get_subject_name(x);
    char ou[40];
    for (int i = 0; i < 10; i++) {
        snprintf(ou, sizeof(ou), "unit-%02d-xxxxxxxxxxxxxxxxxxx", i);
        X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_ASC, (const unsigned char *)ou, -1, -1, 0);
    }
    char *full = X509_NAME_oneline(n, NULL, 0);
    cr_assert_gt(strlen(full), 255);
    char prefix[181];
    snprintf(prefix, sizeof(prefix), "%.180s", full);
    char req[256];
    snprintf(req, sizeof(req), "SUBJECT '%s'", prefix);
    struct clink_accounts *acc = mem_with("p", "%", NULL, req);
    struct clink_login l = tls_login("p");
    l.peer_cert = x;
    char why[256];
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS, "a prefix is not the name");
    OPENSSL_free(full);
    X509_free(x);
    clink_accounts_free(acc);
}

Test(accounts, concurrent_writers_lose_no_change)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/shared.cnf", pki.dir);
    /* Eight processes, like eight clink-accounts runs, each adding its own account to the same file. */
    pid_t kids[8];
    for (int i = 0; i < 8; i++) {
        kids[i] = fork();
        cr_assert_geq(kids[i], 0);
        if (kids[i] == 0) {
            struct clink_accounts *acc;
            char user[16], err[256];
            snprintf(user, sizeof(user), "user%d", i);
            struct clink_account_spec s = {.user = user, .require = "X509"};
            int ok = clink_accounts_new(path, &acc) == 0 && clink_accounts_add(acc, &s, err, sizeof(err)) == 0;
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < 8; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d", i);
    }
    struct clink_accounts *acc;
    char err[256];
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_count(acc), 8, "every writer's account is in the file");
    clink_accounts_free(acc);
}

/*
 * Issue 17: a failed cleartext login took 0.1 ms for an account holding only
 * a mysql_native_password verifier and 2-3 ms for one with a SHA-256 crypt
 * verifier, telling them apart (and telling a name that exists from one that
 * does not, outside TLS). Every cleartext check now runs exactly one crypt.
 */
Test(accounts, every_failed_cleartext_login_costs_one_crypt)
{
    char path[400], err[256] = "", why[256];
    ts_pki_path(&pki, "native-only.cnf", path, sizeof(path));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    /* MySQL's verifier for "password", and no caching_sha2_password: as copied from mysql.user. */
    fputs("[old@%]\nrequire = NONE\nmysql_native_password = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19\n"
          "[new@%]\nrequire = NONE\nmysql_native_password = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19\n"
          "[none@%]\nrequire = NONE\n",
          f);
    fclose(f);
    struct clink_accounts *acc;
    cr_assert_eq(clink_accounts_load(path, &acc, err, sizeof(err)), 0, "%s", err);
    struct clink_account_spec pw = {.user = "new", .password = "password"};
    cr_assert_eq(clink_accounts_alter(acc, &pw, err, sizeof(err)), 0, "%s", err);
    struct clink_login l = tls_login("old");
    l.method = CLINK_LOGIN_CLEARTEXT;
    l.auth = (const uint8_t *)"wrong";
    l.auth_len = 5;
    const char *users[] = {"old", "new", "none", "nobody"};

    for (int i = 0; i < 4; i++) {
        l.user = users[i];
        unsigned long before = clink__sha2_crypts;
        cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
        cr_assert_eq(clink__sha2_crypts - before, 1, "'%s': %lu crypts", users[i], clink__sha2_crypts - before);
    }
    l.user = "old";
    l.tls = 0; /* refused before any password is looked at: hashed all the same */
    unsigned long before = clink__sha2_crypts;
    cr_assert_eq(check(acc, &l, why), -CLINK_EACCESS);
    cr_assert_eq(clink__sha2_crypts - before, 1);
    /* The right password still logs in where only the native verifier is kept. */
    l.tls = 1;
    l.auth = (const uint8_t *)"password";
    l.auth_len = 8;
    cr_assert_eq(check(acc, &l, why), 0, "%s", why);
    clink_accounts_free(acc);
}

Test(accounts, replace_issuer_moves_the_accounts_that_named_the_old_ca)
{
    struct clink_accounts *acc = NULL;
    char err[256] = "";
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    struct clink_account_spec a = {.user = "a", .require = "ISSUER '/CN=old CA'"};
    struct clink_account_spec b = {.user = "b", .require = "SUBJECT '/CN=b' AND ISSUER '/CN=old CA'"};
    struct clink_account_spec c = {.user = "c", .require = "ISSUER '/CN=other CA'"};
    cr_assert_eq(clink_accounts_add(acc, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_add(acc, &b, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_add(acc, &c, err, sizeof(err)), 0, "%s", err);
    unsigned n = 99;
    cr_assert_eq(clink_accounts_replace_issuer(acc, "/CN=old CA", "/CN=new CA", &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 2);
    struct clink_account_info i;
    cr_assert_eq(clink_accounts_get(acc, "a", NULL, &i), 0);
    cr_assert_str_eq(i.issuer, "/CN=new CA");
    cr_assert_eq(clink_accounts_get(acc, "b", NULL, &i), 0);
    cr_assert_str_eq(i.issuer, "/CN=new CA");
    cr_assert_str_eq(i.subject, "/CN=b");
    cr_assert_eq(clink_accounts_get(acc, "c", NULL, &i), 0);
    cr_assert_str_eq(i.issuer, "/CN=other CA");
    /* None names it any more: nothing to change. A name REQUIRE ISSUER could not hold is refused. */
    cr_assert_eq(clink_accounts_replace_issuer(acc, "/CN=old CA", "/CN=new CA", &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(clink_accounts_replace_issuer(acc, "/CN=new CA", "/CN=it's", &n, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert_eq(clink_accounts_replace_issuer(acc, "", "/CN=x", &n, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert_eq(clink_accounts_get(acc, "a", NULL, &i), 0);
    cr_assert_str_eq(i.issuer, "/CN=new CA");
    clink_accounts_free(acc);
}
