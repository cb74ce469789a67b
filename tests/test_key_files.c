/*
 * Secret files are refused when others could read or replace them (issue
 * 17): a TLS private key must belong to this user with mode 0600, or to
 * root with mode 0640 at most (PostgreSQL's rule), unless the caller opts
 * out for keys mounted read-only; a session ticket key file must be 0600
 * and belong to this user or root. The message names the file, its owner
 * and mode, and the fix.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clink/auth.h"
#include "clink/config.h"
#include "tests/support/support.h"

static struct ts_pki pki;
static char key[400];

static void setup(void)
{
    ts_pki_make(&pki);
    ts_pki_path(&pki, "copy-key.pem", key, sizeof(key));
    char cmd[1000];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", pki.node_key, key);
    cr_assert_eq(system(cmd), 0);
}

static void teardown(void)
{
    ts_pki_remove(&pki);
}

TestSuite(key_files, .init = setup, .fini = teardown, .timeout = 30);

static int node_ctx(int allow_open, char *err)
{
    struct clink_tls_opts o = {
        .cert_file = pki.node_cert, .key_file = key, .ca_file = pki.ca, .allow_open_key_file = allow_open};
    struct clink_tls_ctx *t = NULL;
    int ret = clink_tls_ctx_new(&o, &t, err, 512);
    clink_tls_ctx_free(t);
    return ret;
}

static int https_ctx(int allow_open, char *err)
{
    struct clink_tls_opts o = {.cert_file = pki.node_cert, .key_file = key, .allow_open_key_file = allow_open};
    struct clink_tls_ctx *t = NULL;
    int ret = clink_tls_ctx_new_https(&o, &t, err, 512);
    clink_tls_ctx_free(t);
    return ret;
}

Test(key_files, a_key_others_can_read_is_refused_with_the_reason)
{
    char err[512] = "";
    cr_assert_eq(chmod(key, 0600), 0);
    cr_assert_eq(node_ctx(0, err), 0, "%s", err);
    cr_assert_eq(https_ctx(0, err), 0, "%s", err);

    cr_assert_eq(chmod(key, 0644), 0);

    cr_assert_eq(node_ctx(0, err), -CLINK_ECONFIG);
    cr_assert(strstr(err, key) != NULL && strstr(err, "mode 0644") != NULL && strstr(err, "chmod 600") != NULL, "%s",
              err);
    cr_assert_eq(https_ctx(0, err), -CLINK_ECONFIG);
    cr_assert(strstr(err, "mode 0644") != NULL, "%s", err);
    /* The documented way out, for keys mounted read-only. */
    cr_assert_eq(node_ctx(1, err), 0, "%s", err);
    cr_assert_eq(https_ctx(1, err), 0, "%s", err);
}

Test(key_files, group_read_is_for_root_owned_keys_only)
{
    char err[512] = "";
    cr_assert_eq(chmod(key, 0640), 0);

    int ret = node_ctx(0, err);

    /* The tests run as root in CI (the key is root's: allowed); as another user it is that user's: refused. */
    cr_assert_eq(ret, geteuid() == 0 ? 0 : -CLINK_ECONFIG, "%s", err);
    cr_assert_eq(chmod(key, 0660), 0);
    cr_assert_eq(node_ctx(0, err), -CLINK_ECONFIG, "group write is never allowed");
}

Test(key_files, the_config_file_can_turn_the_check_off)
{
    char err[512] = "", text[2048];
    struct clink_config *cfg = malloc(sizeof(*cfg));
    struct clink_tls_opts o;
    cr_assert_not_null(cfg);
    snprintf(text, sizeof(text), "[server]\nssl_cert = %s\nssl_key = %s\nssl_ca = %s\n", pki.node_cert, key, pki.ca);
    cr_assert_eq(clink_config_parse(text, pki.dir, cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_config_tls_opts(cfg, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(o.allow_open_key_file, 0, "the check is on by default");

    strcat(text, "ssl_key_mode_check = OFF\n");
    cr_assert_eq(clink_config_parse(text, pki.dir, cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_config_tls_opts(cfg, &o, err, sizeof(err)), 0, "%s", err);

    cr_assert_eq(o.allow_open_key_file, 1);
    free(cfg);
}

Test(key_files, ticket_keys_of_another_user_are_refused)
{
    char path[400], err[512] = "";
    ts_pki_path(&pki, "tickets.key", path, sizeof(path));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 80; i++) {
        fputc('k', f);
    }
    fclose(f);
    cr_assert_eq(chmod(path, 0600), 0);
    struct clink_ticket_keys *k = NULL;
    cr_assert_eq(clink_ticket_keys_new(path, 0, &k, err, sizeof(err)), 0, "%s", err);
    clink_ticket_keys_free(k);
    if (geteuid() != 0) {
        cr_skip_test("changing a file's owner needs root");
    }

    cr_assert_eq(chown(path, 65534, 65534), 0);

    k = NULL;
    cr_assert_eq(clink_ticket_keys_new(path, 0, &k, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "owned by uid 65534") != NULL, "%s", err);
    cr_assert_null(k);
}
