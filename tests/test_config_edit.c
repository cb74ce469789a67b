/*
 * clink_server_set_config on a server built from a real file (and the test
 * PKI): the line that holds the effective value is the one rewritten (the
 * later of two, the one in an !include'd file), its spelling and comment
 * kept; a key no line sets is added to the last [server] section, or a new
 * one; a bare switch (skip-ops) becomes key = value; the whole result is
 * checked first (a refusal leaves the bytes and writes no backup); the
 * backup holds the old bytes; a node without a file refuses.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/server.h"
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

TestSuite(config_edit, .init = setup, .fini = teardown, .timeout = 60);

static void write_file(const char *name, const char *text)
{
    char path[512];
    ts_pki_path(&pki, name, path, sizeof(path));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static char *read_file(const char *name)
{
    char path[512];
    ts_pki_path(&pki, name, path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static struct clink_server *server_from(const char *name)
{
    char path[512], err[512] = "";
    ts_pki_path(&pki, name, path, sizeof(path));
    struct clink_server *srv = NULL;
    struct clink_server_opts o = {.ops = CLINK_SERVER_OFF};
    cr_assert_eq(clink_server_new_from_config(path, &o, &srv, err, sizeof(err)), 0, "%s", err);
    return srv;
}

static void expect_file(const char *name, const char *want)
{
    char *got = read_file(name);
    cr_assert_not_null(got, "%s missing", name);
    cr_assert_str_eq(got, want);
    free(got);
}

Test(config_edit, the_later_line_is_rewritten_with_its_spelling_and_comment)
{
    const char *before = "# a node\n[client]\nssl-ca = elsewhere.pem\n\n[server]\nssl_cert = node.pem\n"
                         "ssl_key = node-key.pem\nloose-ssl-ca = nothing.pem\n  ssl-ca = ca.pem   # the CA\nport = 0\n"
                         "workers = 1\n";
    write_file("a.cnf", before);
    char *ca = read_file("ca.pem");
    write_file("ca2.pem", ca);
    free(ca);
    struct clink_server *srv = server_from("a.cnf");
    struct clink_server_edit e = {0};
    cr_assert_eq(clink_server_set_config(srv, "SSL_CA", "ca2.pem", "test", &e), 0, "%s", e.why);
    cr_assert_eq(e.outcome, CLINK_SERVER_EDIT_APPLIED, "%d %s", e.outcome, e.why);
    cr_assert_str_eq(e.key, "ssl_ca");
    cr_assert_eq(e.line, 9);
    expect_file("a.cnf", "# a node\n[client]\nssl-ca = elsewhere.pem\n\n[server]\nssl_cert = node.pem\n"
                         "ssl_key = node-key.pem\nloose-ssl-ca = nothing.pem\n  ssl-ca = ca2.pem   # the CA\nport = 0\n"
                         "workers = 1\n");
    expect_file("a.cnf.bak", before);
    /* The same value again: nothing written. */
    cr_assert_eq(clink_server_set_config(srv, "ssl-ca", "ca2.pem", "test", &e), 0);
    cr_assert_eq(e.outcome, CLINK_SERVER_EDIT_UNCHANGED);
    clink_server_free(srv);
}

Test(config_edit, a_key_in_an_included_file_is_changed_there)
{
    write_file("main.cnf", "[server]\nport = 0\nworkers = 1\n!include tls.cnf\n");
    write_file("tls.cnf", "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem");
    struct clink_server *srv = server_from("main.cnf");
    struct clink_server_edit e = {0};
    cr_assert_eq(clink_server_set_config(srv, "ssl_ca", "./ca.pem", NULL, &e), 0, "%s", e.why);
    cr_assert(strstr(e.file, "/tls.cnf") != NULL, "%s", e.file);
    expect_file("tls.cnf", "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ./ca.pem");
    expect_file("main.cnf", "[server]\nport = 0\nworkers = 1\n!include tls.cnf\n");
    clink_server_free(srv);
}

Test(config_edit, a_new_key_goes_into_server_and_needs_a_restart)
{
    write_file("b.cnf", "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem\nport = 0\n"
                        "workers = 1\n# end of server\n\n[leaf x]\nhost = 127.0.0.1\nport = 9\n");
    struct clink_server *srv = server_from("b.cnf");
    struct clink_server_edit e = {0};
    cr_assert_eq(clink_server_set_config(srv, "max-connections", "300", NULL, &e), 0, "%s", e.why);
    cr_assert_eq(e.outcome, CLINK_SERVER_EDIT_RESTART);
    cr_assert_eq(e.line, 7);
    expect_file("b.cnf",
                "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem\nport = 0\n"
                "workers = 1\nmax_connections = 300\n# end of server\n\n[leaf x]\nhost = 127.0.0.1\nport = 9\n");
    /* A bare switch set: the line becomes key = value (skip-ops would take no value). */
    write_file("c.cnf", "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem\nport = 0\n"
                        "workers = 1\nskip-ops\n");
    struct clink_server *srv2 = server_from("c.cnf");
    cr_assert_eq(clink_server_set_config(srv2, "ops", "OFF", NULL, &e), 0, "%s", e.why);
    char *c = read_file("c.cnf");
    cr_assert(strstr(c, "\nops = OFF\n") != NULL, "%s", c);
    free(c);
    clink_server_free(srv2);
    clink_server_free(srv);
}

Test(config_edit, a_value_the_node_would_refuse_writes_nothing)
{
    const char *before =
        "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem\nport = 0\nworkers = 1\n";
    write_file("d.cnf", before);
    struct clink_server *srv = server_from("d.cnf");
    struct clink_server_edit e = {0};
    cr_assert_lt(clink_server_set_config(srv, "ssl_ca", "missing.pem", NULL, &e), 0);
    cr_assert_eq(e.outcome, CLINK_SERVER_EDIT_REFUSED);
    cr_assert(strstr(e.why, "missing.pem") != NULL, "%s", e.why);
    cr_assert_lt(clink_server_set_config(srv, "ssl_key", "ca.pem", NULL, &e), 0, "a CA file is no key");
    cr_assert_lt(clink_server_set_config(srv, "ssl_sert", "x", NULL, &e), 0);
    cr_assert(strstr(e.why, "not a [server] key") != NULL, "%s", e.why);
    cr_assert_lt(clink_server_set_config(srv, "workers", "2\nport = 1", NULL, &e), 0, "a value is one line");
    cr_assert_lt(clink_server_set_config(srv, "workers", "many", NULL, &e), 0);
    expect_file("d.cnf", before);
    cr_assert_null(read_file("d.cnf.bak"));
    /* A path with a space, '#' and a quote is quoted so that it reads back whole. */
    char *ca = read_file("ca.pem");
    write_file("ca #2 \"x\".pem", ca);
    free(ca);
    cr_assert_eq(clink_server_set_config(srv, "ssl_ca", "ca #2 \"x\".pem", NULL, &e), 0, "%s", e.why);
    char *d = read_file("d.cnf");
    cr_assert(strstr(d, "\nssl_ca = \"ca #2 \\\"x\\\".pem\"\n") != NULL, "%s", d);
    free(d);
    clink_server_free(srv);
}

Test(config_edit, a_server_without_a_file_refuses)
{
    char cert[512], key[512], ca[512];
    ts_pki_path(&pki, "node.pem", cert, sizeof(cert));
    ts_pki_path(&pki, "node-key.pem", key, sizeof(key));
    ts_pki_path(&pki, "ca.pem", ca, sizeof(ca));
    struct clink_server_opts o = {
        .listen = "127.0.0.1:0", .cert_file = cert, .key_file = key, .ca_file = ca, .ops = CLINK_SERVER_OFF};
    struct clink_server *srv = NULL;
    char err[256];
    cr_assert_eq(clink_server_new(&o, &srv, err, sizeof(err)), 0, "%s", err);
    struct clink_server_edit e = {0};
    cr_assert_eq(clink_server_set_config(srv, "workers", "2", NULL, &e), -CLINK_EINVAL);
    cr_assert(strstr(e.why, "not a config file") != NULL, "%s", e.why);
    clink_server_free(srv);
}

Test(config_edit, keys_in_two_files_are_one_change)
{
    /* The certificate's line is in the included file, the key's in the main one: both change, or neither. */
    write_file("m.cnf", "[server]\nport = 0\nworkers = 1\nssl_key = node-key.pem\n!include t.cnf\n");
    write_file("t.cnf", "[server]\nssl_cert = node.pem\nssl_ca = ca.pem\n");
    struct clink_server *srv = server_from("m.cnf");
    struct clink_server_edit e = {0};
    /* Alone, a certificate of another key is refused: nothing written anywhere. */
    const char *k1[] = {"ssl_cert"}, *v1[] = {"other.pem"};
    cr_assert_lt(clink_server_set_configs(srv, 1, k1, v1, NULL, &e), 0);
    cr_assert(strstr(e.why, "match") != NULL || strstr(e.why, "other") != NULL, "%s", e.why);
    expect_file("t.cnf", "[server]\nssl_cert = node.pem\nssl_ca = ca.pem\n");
    /* other.pem chains to another CA: with ssl_ca moved to a bundle of both, all three keys are one change. */
    char *a = read_file("ca.pem"), *b = read_file("other-ca.pem");
    cr_assert(a && b);
    char *both = malloc(strlen(a) + strlen(b) + 1);
    strcpy(both, a);
    strcat(both, b);
    write_file("both.pem", both);
    free(both);
    free(a);
    free(b);
    const char *k3[] = {"ssl_cert", "ssl-key", "ssl_ca"}, *v3[] = {"other.pem", "other-key.pem", "both.pem"};
    cr_assert_eq(clink_server_set_configs(srv, 3, k3, v3, "test", &e), 0, "%s", e.why);
    cr_assert_eq(e.outcome, CLINK_SERVER_EDIT_APPLIED);
    expect_file("t.cnf", "[server]\nssl_cert = other.pem\nssl_ca = both.pem\n");
    expect_file("m.cnf", "[server]\nport = 0\nworkers = 1\nssl_key = other-key.pem\n!include t.cnf\n");
    expect_file("m.cnf.bak", "[server]\nport = 0\nworkers = 1\nssl_key = node-key.pem\n!include t.cnf\n");
    expect_file("t.cnf.bak", "[server]\nssl_cert = node.pem\nssl_ca = ca.pem\n");
    /* A key twice in one change is refused. */
    const char *k2[] = {"ssl_ca", "ssl-ca"}, *v2[] = {"ca.pem", "both.pem"};
    cr_assert_eq(clink_server_set_configs(srv, 2, k2, v2, NULL, &e), -CLINK_EINVAL);
    cr_assert(strstr(e.why, "twice") != NULL, "%s", e.why);
    clink_server_free(srv);
}
