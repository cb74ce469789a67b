/*
 * The config file: [server] keys, relative paths against the base
 * directory, and one clear error (file, line, key, reason) for bad input.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clink/config.h"
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

TestSuite(config, .init = setup, .fini = teardown, .timeout = 30);

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(config, relative_paths_resolve_against_the_config_folder)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/memsql.cnf", pki.dir);
    write_file(path, "; a node\n"
                     "[client]\nuser = root\n"
                     "[server]\n"
                     "ssl_cert = node.pem\n"
                     "ssl-key = node-key.pem\n"
                     "ssl_ca = ca.pem\n"
                     "tls_version = TLSv1.2,TLSv1.3\n"
                     "port = 7001\n"
                     "require_secure_transport = OFF\n"
                     "ssl_client_cert = optional\n"
                     "workers = 3\n");
    struct clink_config c;
    char err[512];

    int ret = clink_config_load(path, &c, err, sizeof(err));

    cr_assert_eq(ret, 0, "%s", err);
    char want[512];
    snprintf(want, sizeof(want), "%s/node.pem", pki.dir);
    cr_assert_str_eq(c.ssl_cert, want);
    cr_assert_str_eq(c.basedir, pki.dir);
    cr_assert_eq(c.port, 7001);
    cr_assert_eq(c.tls_version, CLINK_TLS_1_2);
    cr_assert_eq(c.require_secure_transport, 0);
    cr_assert_eq(c.ssl_client_cert, CLINK_CLIENT_CERT_OPTIONAL);
    cr_assert_eq(c.workers, 3);
    struct clink_tls_opts to;
    cr_assert_eq(clink_config_tls_opts(&c, &to, err, sizeof(err)), 0);
    struct clink_tls_ctx *t = NULL;
    cr_assert_eq(clink_tls_ctx_new(&to, &t, err, sizeof(err)), 0, "%s", err);
    clink_tls_ctx_free(t);
    unlink(path);
}

Test(config, defaults_are_strict)
{
    struct clink_config c;

    cr_assert_eq(clink_config_parse("[server]\n", "/", &c, NULL, 0), 0);

    cr_assert_eq(c.require_secure_transport, 1);
    cr_assert_eq(c.tls_version, CLINK_TLS_1_3);
    cr_assert_eq(c.ssl_client_cert, CLINK_CLIENT_CERT_REQUIRED);
    cr_assert_str_eq(c.bind_address, "127.0.0.1");
    char err[256];
    struct clink_tls_opts to;
    cr_assert_eq(clink_config_tls_opts(&c, &to, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "ssl_cert is not set") != NULL, "%s", err);
}

Test(config, basedir_key_moves_relative_paths)
{
    char text[1024];
    snprintf(text, sizeof(text), "[server]\nbasedir = %s\nssl_ca = ca.pem\n", pki.dir);
    struct clink_config c;
    char err[256];

    cr_assert_eq(clink_config_parse(text, "/nowhere", &c, err, sizeof(err)), 0, "%s", err);

    char want[512];
    snprintf(want, sizeof(want), "%s/ca.pem", pki.dir);
    cr_assert_str_eq(c.ssl_ca, want);
}

Test(config, accounts_file_is_a_path_like_the_others)
{
    char text[1024], path[400];
    snprintf(path, sizeof(path), "%s/accounts.cnf", pki.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    snprintf(text, sizeof(text), "[server]\nbasedir = %s\naccounts-file = accounts.cnf\n", pki.dir);
    struct clink_config c;
    char err[256];

    cr_assert_eq(clink_config_parse(text, "/nowhere", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.accounts_file, path);

    snprintf(text, sizeof(text), "[server]\nbasedir = %s\naccounts_file = missing.cnf\n", pki.dir);
    cr_assert_eq(clink_config_parse(text, "/nowhere", &c, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "accounts_file: cannot read") != NULL, "%s", err);
}

struct bad {
    const char *text;
    const char *expect; /* substring of the error */
};

Test(config, bad_input_fails_with_line_key_and_reason)
{
    static const struct bad cases[] = {
        {"[server]\nport = 3306\nssl_sert = x.pem\n", ":3: ssl_sert: unknown key"},
        {"[server]\ntls_version = TLSv1.1\n", "tls_version: 'TLSv1.1' is not supported"},
        {"[server]\ntls_version = TLSv1.2\n", "TLSv1.3 must be allowed"},
        {"[server]\ntls_version = SSLv3\n", "unknown TLS version 'SSLv3'"},
        {"[server]\nrequire_secure_transport = maybe\n",
         "require_secure_transport: 'maybe' is not ON, OFF, PLAINTEXT, ACCEPT_BOTH, PREFER_TLS or REQUIRE_TLS"},
        {"[server]\nops = sometimes\n", "ops: 'sometimes' is not ON or OFF"},
        {"[server]\nops_port = 99999\n", "ops_port: '99999' is not a port number"},
        {"[server]\nops_ssl_cert = /etc/hostname\n", "ops_ssl_cert and ops_ssl_key go together"},
        {"[server]\nport = 70000\n", "port: '70000' is not a port number"},
        {"[server]\nport = -1\n", "port: '-1'"},
        {"[server]\nssl_client_cert = sometimes\n", "not one of none, optional, required"},
        {"[server]\nport = 1\nport = 2\n", ":3: port: given twice"},
        {"[server]\nssl_ca = missing.pem\n", "ssl_ca: cannot read /tmp/missing.pem"},
        {"[server]\nthis is not ini\n", ":2: syntax error"},
        {"[server]\nmax_frame = 10\n", "max_frame: '10'"},
        {"[server]\nktls = sometimes\n", "ktls: 'sometimes' is not one of auto, off, required"},
        {"[server]\nmax_connections = 0\n", "max_connections: '0' is not a number of connections from 1"},
        {"[server]\nmax_node_links = -5\n", "max_node_links: '-5'"},
        {"[server]\nmax_user_connections = many\n", "max_user_connections: 'many'"},
        {"[server]\nwait_timeout = 31536001\n", "wait_timeout: '31536001' is not a number of seconds"},
        {"[server]\ntcp_keepalive_idle = 32768\n", "tcp_keepalive_idle: '32768' is not a number of seconds"},
        {"[server]\nwait_timeout = 1\nwait-timeout = 2\n", ":3: wait_timeout: given twice"},
        {"[leaf l1]\nhost = a\nport = 1\nktls = on\n", "ktls: [l1]: 'on' is not one of auto, off, required"},
        /* libinih would keep 49 bytes of the name (fuzz/regressions/config) */
        {"[leaf 012345678901234567890123456789012345678901234]\nhost = a\nport = 1\n",
         ":1: [leaf 012345678901234567890123456789012345678901234]: section name longer than 49 bytes"},
        /* libinih would read the end of the comment as a line of its own: ssl_ca = /etc/passwd */
        {"[server]\n# "
         "01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"
         "789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456"
         "ssl_ca = /etc/passwd\n",
         ":2: line longer than 198 bytes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct clink_config c;
        char err[512] = "";

        int ret = clink_config_parse(cases[i].text, "/tmp", &c, err, sizeof(err));

        cr_assert_eq(ret, -CLINK_ECONFIG, "case %zu accepted: %s", i, cases[i].text);
        cr_assert(strstr(err, cases[i].expect) != NULL, "case %zu: got '%s', want '%s'", i, err, cases[i].expect);
    }
}

Test(config, transport_security_states_and_ops_keys)
{
    static const struct {
        const char *value;
        enum clink_secure_transport want;
    } cases[] = {
        {"ON", CLINK_SECURE_REQUIRE_TLS},        {"OFF", CLINK_SECURE_PREFER_TLS},
        {"plaintext", CLINK_SECURE_PLAINTEXT},   {"ACCEPT_BOTH", CLINK_SECURE_ACCEPT_BOTH},
        {"Prefer_TLS", CLINK_SECURE_PREFER_TLS}, {"REQUIRE_TLS", CLINK_SECURE_REQUIRE_TLS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct clink_config c;
        char text[128], err[512] = "";
        snprintf(text, sizeof(text), "[server]\nrequire_secure_transport = %s\n", cases[i].value);
        cr_assert_eq(clink_config_parse(text, "/tmp", &c, err, sizeof(err)), 0, "%s: %s", cases[i].value, err);
        cr_assert_eq(c.secure_transport, (int)cases[i].want, "%s", cases[i].value);
        cr_assert_eq(c.require_secure_transport, cases[i].want == CLINK_SECURE_REQUIRE_TLS);
    }
    struct clink_config c;
    char err[512] = "";
    cr_assert_eq(clink_config_parse("[server]\n", "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.secure_transport, CLINK_SECURE_REQUIRE_TLS, "the default is to require TLS");
    cr_assert(c.ops && c.ops_port == 9001 && c.ops_ssl_cert[0] == '\0', "ops defaults: on, port 9001, the node's pair");
    cr_assert_eq(clink_config_parse("[server]\nops = off\nops_port = 0\nops_ssl_cert = /etc/hostname\n"
                                    "ops_ssl_key = /etc/hostname\n",
                                    "/tmp", &c, err, sizeof(err)),
                 0, "%s", err);
    cr_assert(!c.ops && c.ops_port == 0);
    cr_assert_str_eq(c.ops_ssl_cert, "/etc/hostname");
}

Test(config, missing_file_is_named)
{
    struct clink_config c;
    char err[512];

    cr_assert_eq(clink_config_load("/nonexistent/memsql.cnf", &c, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "/nonexistent/memsql.cnf: cannot open config file") != NULL, "%s", err);
}

Test(config, crl_revokes_and_a_revoked_own_certificate_fails_at_start)
{
    char ca_key[512], agg[512], agg_key[512], crl[512], crl_self[512], err[512];
    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", pki.dir);
    snprintf(agg, sizeof(agg), "%s/agg.pem", pki.dir);
    snprintf(agg_key, sizeof(agg_key), "%s/agg-key.pem", pki.dir);
    snprintf(crl, sizeof(crl), "%s/crl.pem", pki.dir);
    snprintf(crl_self, sizeof(crl_self), "%s/crl-self.pem", pki.dir);
    struct clink_cert_opts co = {.common_name = "agg"};
    cr_assert_eq(clink_cert_make_node(&co, pki.ca, ca_key, agg, agg_key, 0, err, sizeof(err)), 0, "%s", err);
    const char *revoke_agg[] = {agg, NULL};
    const char *revoke_self[] = {pki.node_cert, NULL};
    cr_assert_eq(clink_cert_make_crl(pki.ca, ca_key, revoke_agg, 0, crl, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_cert_make_crl(pki.ca, ca_key, revoke_self, 0, crl_self, err, sizeof(err)), 0, "%s", err);
    char text[2048];
    snprintf(text, sizeof(text),
             "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem\nssl_crl = crl.pem\n");
    struct clink_config c;
    struct clink_tls_opts to;
    struct clink_tls_ctx *t = NULL;

    cr_assert_eq(clink_config_parse(text, pki.dir, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_config_tls_opts(&c, &to, err, sizeof(err)), 0);
    cr_assert_str_eq(to.crl_file, crl);
    int ok = clink_tls_ctx_new(&to, &t, err, sizeof(err));
    to.crl_file = crl_self;
    struct clink_tls_ctx *t2 = NULL;
    int self = clink_tls_ctx_new(&to, &t2, err, sizeof(err));
    to.crl_file = pki.ca; /* a file with no CRL in it */
    char err2[512];
    int none = clink_tls_ctx_new(&to, &t2, err2, sizeof(err2));

    cr_assert_eq(ok, 0);
    cr_assert_eq(self, -CLINK_ECONFIG);
    cr_assert(strstr(err, "certificate revoked") != NULL, "%s", err);
    cr_assert_eq(none, -CLINK_ECONFIG);
    cr_assert(strstr(err2, "no PEM CRL") != NULL, "%s", err2);
    clink_tls_ctx_free(t);
    unlink(agg);
    unlink(agg_key);
    unlink(crl);
    unlink(crl_self);
}

Test(config, key_not_matching_certificate_is_named)
{
    struct clink_tls_opts o = {.cert_file = pki.node_cert, .key_file = pki.other_key, .ca_file = pki.ca};
    struct clink_tls_ctx *t = NULL;
    char err[512];

    cr_assert_eq(clink_tls_ctx_new(&o, &t, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "key does not match certificate") != NULL, "%s", err);
    cr_assert(strstr(err, pki.other_key) != NULL, "names the file: %s", err);
}

Test(config, expired_own_certificate_is_refused_at_start)
{
    char ca_key[512], cert[512], key[512], err[512];
    snprintf(ca_key, sizeof(ca_key), "%s/ca-key.pem", pki.dir);
    snprintf(cert, sizeof(cert), "%s/old.pem", pki.dir);
    snprintf(key, sizeof(key), "%s/old-key.pem", pki.dir);
    static const char *dns[] = {"localhost", NULL};
    struct clink_cert_opts co = {
        .common_name = "old", .dns_names = dns, .not_before_offset_s = -7200, .valid_for_s = 3600};
    cr_assert_eq(clink_cert_make_node(&co, pki.ca, ca_key, cert, key, 0, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_opts o = {.cert_file = cert, .key_file = key, .ca_file = pki.ca};
    struct clink_tls_ctx *t = NULL;

    int ret = clink_tls_ctx_new(&o, &t, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_ECONFIG);
    cr_assert(strstr(err, "certificate has expired") != NULL, "%s", err);
    unlink(cert);
    unlink(key);
}

Test(config, certificate_from_another_ca_is_refused_at_start)
{
    struct clink_tls_opts o = {.cert_file = pki.other_cert, .key_file = pki.other_key, .ca_file = pki.ca};
    struct clink_tls_ctx *t = NULL;
    char err[512];

    cr_assert_eq(clink_tls_ctx_new(&o, &t, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "does not verify against ssl_ca") != NULL, "%s", err);
    cr_assert(strstr(err, pki.other_cert) != NULL, "names the file: %s", err);
}

Test(config, unknown_cipher_names_the_key)
{
    char text[2048], err[512];
    snprintf(text, sizeof(text),
             "[server]\nssl_cert = %s\nssl_key = %s\nssl_ca = %s\ntls_ciphersuites = TLS_AES_512_GCM_SHA1024\n",
             pki.node_cert, pki.node_key, pki.ca);
    struct clink_config c;
    cr_assert_eq(clink_config_parse(text, "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_opts o;
    cr_assert_eq(clink_config_tls_opts(&c, &o, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_ctx *t = NULL;

    cr_assert_eq(clink_tls_ctx_new(&o, &t, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "tls_ciphersuites: unknown TLS 1.3 ciphersuite in 'TLS_AES_512_GCM_SHA1024'") != NULL, "%s",
              err);

    snprintf(text, sizeof(text),
             "[server]\nssl_cert = %s\nssl_key = %s\nssl_ca = %s\ntls_version = TLSv1.2,TLSv1.3\nssl_cipher = NOPE\n",
             pki.node_cert, pki.node_key, pki.ca);
    cr_assert_eq(clink_config_parse(text, "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_config_tls_opts(&c, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_tls_ctx_new(&o, &t, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "ssl_cipher: no known TLS 1.2 cipher in 'NOPE'") != NULL, "%s", err);
}

Test(config, cluster_peers_from_leaf_and_aggregator_sections)
{
    const char *text = "[server]\nport = 0\n"
                       "[leaf leaf1]\nhost = 10.0.0.1\nport = 3306\nuser = root\n"
                       "[leaf leaf2]\nhost = ::1\nport = 3307\nssl_server_name = leaf2.db\nssl_mode = VERIFY_CA\n"
                       "[aggregator agg2]\nhost = 10.0.0.9\nport = 3306\n"
                       "[client]\nhost = ignored\n";
    struct clink_config c;
    char err[512];
    cr_assert_eq(clink_config_parse(text, "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.npeers, 3);
    cr_assert_str_eq(c.peers[0].name, "leaf1");
    cr_assert_eq(c.peers[0].aggregator, 0);
    cr_assert_str_eq(c.peers[0].host, "10.0.0.1");
    cr_assert_eq(c.peers[0].port, 3306);
    cr_assert_str_eq(c.peers[0].user, "root");
    cr_assert_eq(c.peers[0].ssl_mode, 0, "default: VERIFY_IDENTITY");
    cr_assert_str_eq(c.peers[1].ssl_server_name, "leaf2.db");
    cr_assert_eq(c.peers[1].ssl_mode, 4, "VERIFY_CA");
    cr_assert_eq(c.peers[2].aggregator, 1);

    static const struct bad cases[] = {
        {"[leaf leaf1]\nhost = a\n", "[leaf leaf1]: host and port are required"},
        {"[leaf leaf1]\nhost = a\nport = 0\n", "'0' is not a port number"},
        {"[leaf leaf1]\nhost = a\nport = 1\nweight = 3\n", "[leaf1]: unknown key"},
        {"[leaf leaf1]\nhost = a\nport = 1\n[aggregator leaf1]\nhost = b\n", "both a leaf and an aggregator"},
        {"[leaf leaf1]\nhost = a\nport = 1\nssl_mode = SOMETIMES\n", "'SOMETIMES' is not one of DISABLED"},
        {"[leaf leaf1]\nhost = a\nport = 1\nport = 2\n", "given twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int ret = clink_config_parse(cases[i].text, "/tmp", &c, err, sizeof(err));
        cr_assert_eq(ret, -CLINK_ECONFIG, "case %zu accepted", i);
        cr_assert(strstr(err, cases[i].expect) != NULL, "case %zu: got '%s', want '%s'", i, err, cases[i].expect);
    }
}

Test(config, ktls_in_server_and_per_peer)
{
    struct clink_config c;
    char err[512] = "";
    const char *text = "[server]\nktls = required\n[leaf l1]\nhost = 10.0.0.1\nport = 3306\nktls = off\n"
                       "[leaf l2]\nhost = 10.0.0.2\nport = 3306\n";
    cr_assert_eq(clink_config_parse(text, "/", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.ktls, CLINK_KTLS_REQUIRED);
    cr_assert_eq(c.peers[0].ktls, CLINK_KTLS_DISABLED);
    cr_assert_eq(c.peers[1].ktls, 0, "unset: the node's");
    cr_assert_eq(clink_config_parse("[server]\n", "/", &c, NULL, 0), 0);
    cr_assert_eq(c.ktls, CLINK_KTLS_AUTO, "unset: auto (server/defaults.c)");
}

Test(config, session_limit_keys)
{
    struct clink_config c;
    char err[512] = "";

    cr_assert_eq(clink_config_parse("[server]\n", "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert(c.max_connections == CLINK_DEFAULT_MAX_CONNECTIONS && c.max_node_links == CLINK_DEFAULT_MAX_NODE_LINKS &&
                  c.max_user_connections == 0 && c.wait_timeout == CLINK_DEFAULT_WAIT_TIMEOUT_S &&
                  c.tcp_keepalive_idle == CLINK_DEFAULT_TCP_KEEPALIVE_S,
              "unset: the defaults as values (server/defaults.c)");
    cr_assert_eq(clink_config_parse("[server]\nmax_connections = 500\nmax-node-links = 20000\n"
                                    "max_user_connections = 40\nwait_timeout = 600\ntcp_keepalive_idle = 30\n",
                                    "/tmp", &c, err, sizeof(err)),
                 0, "%s", err);

    cr_assert_eq(c.max_connections, 500);
    cr_assert_eq(c.max_node_links, 20000);
    cr_assert_eq(c.max_user_connections, 40);
    cr_assert_eq(c.wait_timeout, 600);
    cr_assert_eq(c.tcp_keepalive_idle, 30);
}

/* The failed-login throttle under MySQL's connection_control names (dashes as my.cnf allows), and their limits. */
Test(config, login_throttle_keys_keep_mysqls_names)
{
    struct clink_config c;
    char err[512] = "";
    cr_assert_eq(clink_config_parse("[server]\n", "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert(c.login_free_failures == 0 && c.login_delay_step_ms == 0 && c.login_max_delay_ms == 0,
              "unset: the throttle's defaults");
    cr_assert_eq(clink_config_parse("[server]\nconnection_control_failed_connections_threshold = 3\n"
                                    "connection-control-min-connection-delay = 1000\n"
                                    "connection_control_max_connection_delay = 60000\nlogin_throttle_entries = 100\n",
                                    "/tmp", &c, err, sizeof(err)),
                 0, "%s", err);
    cr_assert(c.login_free_failures == 3 && c.login_delay_step_ms == 1000 && c.login_max_delay_ms == 60000 &&
              c.login_throttle_entries == 100);
    cr_assert_neq(clink_config_parse("[server]\nconnection_control_failed_connections_threshold = 0\n", "/tmp", &c, err,
                                     sizeof(err)),
                  0, "0 would turn MySQL's plugin off; clink's throttle has no off switch");
    cr_assert(strstr(err, "cannot be turned off"), "%s", err);
    cr_assert_neq(clink_config_parse("[server]\nlogin_throttle_entries = 3\n", "/tmp", &c, err, sizeof(err)), 0);
}

Test(config, ssl_x509_strict_is_off_by_default_and_reaches_the_tls_options)
{
    struct clink_config c;
    struct clink_tls_opts to;
    char text[1200], err[512] = "";
    for (int on = 0; on <= 2; on++) {
        snprintf(text, sizeof(text), "[server]\nssl_cert = %s\nssl_key = %s\nssl_ca = %s\n%s", pki.node_cert,
                 pki.node_key, pki.ca,
                 on == 0   ? ""
                 : on == 1 ? "ssl_x509_strict = ON\n"
                           : "ssl_x509_strict = OFF\n");
        cr_assert_eq(clink_config_parse(text, "/tmp", &c, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(clink_config_tls_opts(&c, &to, err, sizeof(err)), 0, "%s", err);
        /* Default OFF: certificates are verified as openssl verify does. */
        cr_assert_eq(to.x509_strict, on == 1, "case %d", on);
    }
    cr_assert_eq(clink_config_parse("[server]\nssl_x509_strict = very\n", "/tmp", &c, err, sizeof(err)),
                 -CLINK_ECONFIG);
    cr_assert(strstr(err, "ssl_x509_strict: 'very' is not ON or OFF") != NULL, "%s", err);
}
