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
        {"[server]\nport = 1\nssl_ca = missing.pem\n", "config:3: ssl_ca: cannot read /tmp/missing.pem"},
        {"[server]\nthis is not ini\n", "config:2: this is not ini: unknown key"},
        {"[server\nport = 1\n", "config:1: '[' without ']'"},
        {"port = 1\n[server]\n", "config:1: a key before any [section]"},
        {"[server]\n= 1\n", "config:2: a value without a key"},
        {"[server]\nport\n", "config:2: port: needs a value"},
        {"[server]\n!include\n", "config:2: !include needs a path"},
        {"[server]\n!source x.cnf\n", "config:2: unknown directive"},
        {"[server]\n!include /nonexistent/x.cnf\n", "config:2: !include /nonexistent/x.cnf: No such file"},
        {"[server]\n!includedir /nonexistent\n", "config:2: !includedir /nonexistent: No such file"},
        {"[server] port = 1\n", "config:1: text after [section]"},
        {"[server]\n!include /dev/null\n", "config:2: !include /dev/null: not a regular file"},
        {"[server]\n\n!include /tmp\n", "config:3: !include /tmp: not a regular file"},
        {"[server]\nmax_frame = 10\n", "max_frame: '10'"},
        {"[server]\nmax_message = 100\n", "max_message: '100' is not a size in bytes from 16368"},
        {"[server]\nstream_window = 4096\n", "stream_window: '4096' is not a size in bytes from 65472"},
        {"[server]\nconn_window = 2147483648\n", "conn_window: '2147483648'"},
        {"[server]\ntcp_notsent_lowat = lots\n", "tcp_notsent_lowat: 'lots' is not a size in bytes"},
        {"[server]\nmax_message = 8388608\nconn_window = 8388608\n",
         "max_message 8388608 is more than three quarters of conn_window 8388608"},
        {"[server]\nktls = sometimes\n", "ktls: 'sometimes' is not one of auto, off, required"},
        {"[server]\nzerocopy_send = maybe\n", "zerocopy_send: 'maybe' is not one of off, auto, on"},
        {"[server]\nmax_connections = 0\n", "max_connections: '0' is not a number of connections from 1"},
        {"[server]\nmax_node_links = -5\n", "max_node_links: '-5'"},
        {"[server]\nmax_user_connections = many\n", "max_user_connections: 'many'"},
        {"[server]\nwait_timeout = 31536001\n", "wait_timeout: '31536001' is not a number of seconds"},
        {"[server]\ntcp_keepalive_idle = 32768\n", "tcp_keepalive_idle: '32768' is not a number of seconds"},
        {"[leaf l1]\nhost = a\nport = 1\nktls = on\n", "ktls: [l1]: 'on' is not one of auto, off, required"},
        /* a peer's name is at most 63 bytes: refused, never cut (fuzz/regressions/config) */
        {"[leaf 0123456789012345678901234567890123456789012345678901234567890123]\nhost = a\nport = 1\n",
         ":2: host: [leaf 0123456789012345678901234567890123456789012345678901234567890123]: a peer needs a name"},
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
    cr_assert_eq(clink_config_parse("[server]\nmax_message = 1048576\nconn_window = 2097152\nstream_window = "
                                    "1048576\ntcp_notsent_lowat = 131072\n",
                                    "/tmp", &c, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(c.max_message, 1u << 20);
    cr_assert_eq(c.conn_window, 2u << 20);
    cr_assert_eq(c.stream_window, 1u << 20);
    cr_assert_eq(c.tcp_notsent_lowat, 131072);
    const char *zc[] = {"OFF", "auto", "on"};
    for (int i = 0; i < 3; i++) {
        char text[64];
        snprintf(text, sizeof(text), "[server]\nzerocopy_send = %s\n", zc[i]);
        cr_assert_eq(clink_config_parse(text, "/tmp", &c, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(c.zerocopy_send, CLINK_ZEROCOPY_OFF + i, "%s: the values of enum clink_zerocopy", zc[i]);
    }
    cr_assert_eq(clink_config_parse("[server]\n", "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.zerocopy_send, CLINK_ZEROCOPY_DEFAULT);
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
    cr_assert(c.max_connections == 151 && c.max_node_links == 16384 && c.max_user_connections == 0 &&
                  c.wait_timeout == 28800 && c.tcp_keepalive_idle == 60,
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

/* grant_creates_user: ON unless said (MySQL 5.x's and MemSQL's GRANT), a switch like mysql and ops. */
Test(config, grant_creates_user_is_on_by_default_and_a_switch)
{
    struct clink_config c;
    char err[512] = "";

    cr_assert_eq(clink_config_parse("[server]\n", "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.grant_creates_user, 1, "unset: ON");
    cr_assert_eq(clink_config_parse("[server]\ngrant_creates_user = OFF\n", "/tmp", &c, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(c.grant_creates_user, 0);
    cr_assert_eq(clink_config_parse("[server]\nskip-grant-creates-user\n", "/tmp", &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.grant_creates_user, 0, "skip- is OFF");
    cr_assert_eq(
        clink_config_parse("[server]\ngrant_creates_user = OFF\ngrant-creates-user\n", "/tmp", &c, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(c.grant_creates_user, 1, "bare is ON, and the later value wins");
    cr_assert_eq(clink_config_parse("[server]\ngrant_creates_user = sometimes\n", "/tmp", &c, err, sizeof(err)),
                 -CLINK_ECONFIG);
    cr_assert(strstr(err, "config:2: grant_creates_user: 'sometimes' is not ON or OFF") != NULL, "%s", err);
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

/* A file as MySQL and MemSQL write one (issue 19, item 2): everything mysqld reads, and the node starts. */
Test(config, memsql_cnf_as_mysql_writes_it)
{
    char path[512], dir[512], file[600];
    snprintf(path, sizeof(path), "%s/memsql.cnf", pki.dir);
    snprintf(dir, sizeof(dir), "%s/conf.d", pki.dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(file, sizeof(file), "%s/extra.cnf", pki.dir);
    write_file(file, "[server]\nssl_ca = \"ca.pem\"   # quoted, then a comment\n");
    snprintf(file, sizeof(file), "%s/conf.d/20-late.cnf", pki.dir);
    write_file(file, "[server]\nwait_timeout = 700\n");
    snprintf(file, sizeof(file), "%s/conf.d/10-early.cnf", pki.dir);
    write_file(file, "[server]\nwait_timeout = 600\nmax_connections = 300\n");
    snprintf(file, sizeof(file), "%s/conf.d/30-not-read.txt", pki.dir);
    write_file(file, "[server]\nnot a key of ours\n");
    write_file(path, "# written by memsql-admin\n"
                     "[client]\n"
                     "port = 3306\n"
                     "socket = /var/run/memsql.sock\n"
                     "[mysqld]\n"
                     "skip-external-locking\n"
                     "sql_mode = \"STRICT_ALL_TABLES,NO_ZERO_DATE\"\n"
                     "init-connect='SET NAMES utf8mb4' # mysqld only\n"
                     "[mysqldump]\n"
                     "quick\n"
                     "max_allowed_packet = 16M\n"
                     "[server]\n"
                     "; the node\n"
                     "skip-name-resolve\n"
                     "master-aggregator\n"
                     "redundancy_level = 2\n"
                     "datadir = /var/lib/memsql/data\n"
                     "core_file\n"
                     "loose-memsql_new_feature = 1\n"
                     "ssl_cert = 'node.pem'\n"
                     "ssl-key = node-key.pem#no space needed before it\n"
                     "!include extra.cnf\n"
                     "port = 3306\n"
                     "port = 7001 ; a ';' after a value is not a comment, so this is refused if read: later wins\n"
                     "name = \"agg\\\\1\"\n"
                     "ssl_key_mode_check\n"
                     "loose-max-connections = 200\n"
                     "!includedir conf.d\n"
                     "skip-name-resolve\n");
    struct clink_config c;
    char err[512];

    int ret = clink_config_load(path, &c, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_ECONFIG, "the ';' line is a value");
    cr_assert(strstr(err, "memsql.cnf:24: port: '7001 ; a ';'") != NULL, "%s", err);
    /* now without that line */
    char text[4096];
    FILE *f = fopen(path, "r");
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    char *semi = strstr(text, "port = 7001 ;");
    memcpy(semi + 11, "  ", 2);
    memset(semi + 13, ' ', strchr(semi, '\n') - (semi + 13));
    write_file(path, text);

    ret = clink_config_load(path, &c, err, sizeof(err));

    cr_assert_eq(ret, 0, "%s", err);
    char want[600];
    snprintf(want, sizeof(want), "%s/node.pem", pki.dir);
    cr_assert_str_eq(c.ssl_cert, want, "single quotes removed: %s", c.ssl_cert);
    snprintf(want, sizeof(want), "%s/node-key.pem", pki.dir);
    cr_assert_str_eq(c.ssl_key, want, "# after a value is a comment");
    snprintf(want, sizeof(want), "%s/ca.pem", pki.dir);
    cr_assert_str_eq(c.ssl_ca, want, "from !include extra.cnf, relative to the including file");
    cr_assert_eq(c.port, 7001, "the later value wins");
    cr_assert_str_eq(c.name, "agg\\1", "\\\\ is a backslash, as in mysqld");
    cr_assert_eq(c.ssl_key_mode_check, 1, "a bare switch is ON");
    cr_assert_eq(c.max_connections, 300, "loose- on a known key is the key; conf.d came later");
    cr_assert_eq(c.wait_timeout, 700, "conf.d read in name order, *.cnf only");
    cr_assert(strstr(c.warnings, "skip-name-resolve (") != NULL, "%s", c.warnings);
    cr_assert(strstr(c.warnings, "memsql.cnf:14)") != NULL, "where first seen: %s", c.warnings);
    cr_assert(strstr(c.warnings, "master-aggregator") && strstr(c.warnings, "redundancy_level") &&
                  strstr(c.warnings, "datadir") && strstr(c.warnings, "core_file") &&
                  strstr(c.warnings, "loose-memsql_new_feature"),
              "%s", c.warnings);
    cr_assert_null(strstr(strstr(c.warnings, "skip-name-resolve") + 1, "skip-name-resolve"), "once: %s", c.warnings);
    cr_assert_null(strstr(c.warnings, "sql_mode"), "other groups are not warned about: %s", c.warnings);
    struct clink_tls_opts to;
    cr_assert_eq(clink_config_tls_opts(&c, &to, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_ctx *t = NULL;
    cr_assert_eq(clink_tls_ctx_new(&to, &t, err, sizeof(err)), 0, "%s", err);
    clink_tls_ctx_free(t);
}

/* A typo in an ssl_ key must not drop revocation: an error naming the file and line, even with loose-. */
Test(config, unknown_ssl_and_require_keys_are_never_passed_over)
{
    char path[512], inc[512];
    snprintf(path, sizeof(path), "%s/memsql.cnf", pki.dir);
    snprintf(inc, sizeof(inc), "%s/tls.cnf", pki.dir);
    static const struct {
        const char *line;
        const char *expect;
    } cases[] = {
        {"ssl_clr = crl.pem", "tls.cnf:3: ssl_clr: unknown key"},
        {"loose-ssl_clr = crl.pem", "tls.cnf:3: loose-ssl_clr: unknown key (an ssl_ or require_ key is never"},
        {"loose-ssl-clr", "tls.cnf:3: loose-ssl-clr: unknown key"},
        {"require_secure_transprot = ON", "tls.cnf:3: require_secure_transprot: unknown key"},
        {"ssl_clr = crl.pem", "tls.cnf:3: ssl_clr: unknown key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[server]\n# TLS\n%s\n", cases[i].line);
        write_file(inc, text);
        write_file(path, "[mysqld]\nskip-ssl\n[server]\nskip-name-resolve\n!include tls.cnf\n");
        struct clink_config c;
        char err[512] = "";

        int ret = clink_config_load(path, &c, err, sizeof(err));

        cr_assert_eq(ret, -CLINK_ECONFIG, "%s accepted", cases[i].line);
        cr_assert(strstr(err, cases[i].expect) != NULL, "got '%s', want '%s'", err, cases[i].expect);
    }
}

/* libinih reported a key's error with the line of an earlier syntax error (a bare key MySQL allows). */
Test(config, an_error_names_its_own_line)
{
    struct clink_config c;
    char err[512] = "";

    int ret = clink_config_parse("[mysqld]\nskip-external-locking\n[server]\nskip-name-resolve\n\nssl_sert = x.pem\n",
                                 "/tmp", &c, err, sizeof(err));

    cr_assert_eq(ret, -CLINK_ECONFIG);
    cr_assert(strstr(err, "config:6: ssl_sert: unknown key") != NULL, "%s", err);
}

Test(config, include_depth_and_cycles_are_refused)
{
    char path[512], text[512];
    struct clink_config c;
    char err[1024] = "";
    /* a chain of 12 files: memsql.cnf includes 1.cnf, which includes 2.cnf, ... */
    for (int i = 1; i <= 12; i++) {
        snprintf(path, sizeof(path), "%s/%d.cnf", pki.dir, i);
        snprintf(text, sizeof(text), "[server]\nport = %d\n!include %d.cnf\n", i, i + 1);
        write_file(path, i == 12 ? "[server]\n" : text);
    }
    snprintf(path, sizeof(path), "%s/memsql.cnf", pki.dir);
    write_file(path, "[server]\n!include 1.cnf\n");

    int deep = clink_config_load(path, &c, err, sizeof(err));

    cr_assert_eq(deep, -CLINK_ECONFIG);
    cr_assert(strstr(err, "10.cnf:3: !include 11.cnf: includes nested deeper than 10") != NULL, "%s", err);

    snprintf(path, sizeof(path), "%s/9.cnf", pki.dir);
    write_file(path, "[server]\n");
    snprintf(path, sizeof(path), "%s/memsql.cnf", pki.dir);
    cr_assert_eq(clink_config_load(path, &c, err, sizeof(err)), 0, "nine levels are fine: %s", err);
    cr_assert_eq(c.port, 8, "the last value read");

    snprintf(path, sizeof(path), "%s/3.cnf", pki.dir);
    write_file(path, "[server]\n\n!include 1.cnf\n");
    snprintf(path, sizeof(path), "%s/memsql.cnf", pki.dir);

    int cycle = clink_config_load(path, &c, err, sizeof(err));

    cr_assert_eq(cycle, -CLINK_ECONFIG);
    cr_assert(strstr(err, "3.cnf:3: !include 1.cnf: a cycle") != NULL, "%s", err);

    snprintf(path, sizeof(path), "%s/1.cnf", pki.dir);
    write_file(path, "[server]\n");
    snprintf(path, sizeof(path), "%s/memsql.cnf", pki.dir);
    snprintf(text, sizeof(text), "[server]\n!includedir %s\n", pki.dir);
    write_file(path, text);
    cr_assert_eq(clink_config_load(path, &c, err, sizeof(err)), -CLINK_ECONFIG, "its own folder holds memsql.cnf");
    cr_assert(strstr(err, "memsql.cnf:2: !include") != NULL && strstr(err, "a cycle") != NULL, "%s", err);
}

/* Peer sections take the later value too; a ';' comment line and a long one are inert. */
Test(config, later_values_win_and_comments_are_inert)
{
    struct clink_config c;
    char err[512] = "";
    char text[1024];
    snprintf(text, sizeof(text),
             "[server]\nport = 1\nport = 2\nwait_timeout = 1\nwait-timeout = 9\n"
             "# %0300d ssl_ca = /etc/passwd\n"
             "[leaf l1]\nhost = a\nport = 1\nport = 3\n",
             0);

    cr_assert_eq(clink_config_parse(text, "/tmp", &c, err, sizeof(err)), 0, "%s", err);

    cr_assert_eq(c.port, 2);
    cr_assert_eq(c.wait_timeout, 9);
    cr_assert_str_eq(c.ssl_ca, "");
    cr_assert_eq(c.peers[0].port, 3);
    cr_assert_str_eq(c.warnings, "");
}

/* mysqld's switch syntax on clink's ON/OFF keys: bare is ON; skip-, disable- OFF; enable- ON; the last one wins. */
Test(config, switches_take_mysqlds_prefixes)
{
    struct clink_config c;
    char err[512] = "";

    cr_assert_eq(clink_config_parse("[server]\nskip-ops\ndisable_mysql\nssl_key_mode_check = OFF\n"
                                    "enable-ssl-key-mode-check\nrequire_secure_transport = OFF\n"
                                    "loose-skip-require-secure-transport\n",
                                    "/tmp", &c, err, sizeof(err)),
                 0, "%s", err);

    cr_assert_eq(c.ops, 0);
    cr_assert_eq(c.mysql, 0);
    cr_assert_eq(c.ssl_key_mode_check, 1);
    cr_assert_eq(c.secure_transport, CLINK_SECURE_PREFER_TLS, "skip- is OFF");
    cr_assert_str_eq(c.warnings, "");
    cr_assert_eq(clink_config_parse("[server]\nrequire_secure_transport\n", "/tmp", &c, err, sizeof(err)), 0);
    cr_assert_eq(c.secure_transport, CLINK_SECURE_REQUIRE_TLS, "bare is ON");
    cr_assert_eq(clink_config_parse("[server]\nskip-ops = 1\n", "/tmp", &c, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "config:2: skip-ops: takes no value") != NULL, "%s", err);
    cr_assert_eq(clink_config_parse("[server]\nskip-ssl\n", "/tmp", &c, err, sizeof(err)), -CLINK_ECONFIG,
                 "clink has no ssl switch: mysqld's skip-ssl is refused, never taken as 'no TLS'");
    cr_assert(strstr(err, "config:2: skip-ssl: unknown key") != NULL, "%s", err);
    cr_assert_eq(clink_config_parse("[server]\nskip-port\n", "/tmp", &c, err, sizeof(err)), -CLINK_ECONFIG);
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
