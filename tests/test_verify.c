/*
 * Certificate verification, case by case (issue 3): every server certificate
 * problem against each client ssl_mode, and every client certificate problem
 * against each server client_cert rule. Certificates are made at run time.
 *
 * A refusal must carry the right code and say why in words: OpenSSL's reason
 * and which certificate it is about (depth in the peer's chain and subject),
 * on the side that refused (the dialler's err, or the server's REFUSED event
 * and log) and, where a clink node is refused, on the other side too.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"
#include "transport/frame.h"

static struct ts_pki pki;
static char ca_key[300];

static void file(const char *name, char *dst)
{
    ts_pki_path(&pki, name, dst, 300);
}

/* <name>.pem and <name>-key.pem in the PKI directory, issued by <issuer>.pem / <issuer>-key.pem. */
static void make_node(const char *name, const char *issuer, struct clink_cert_opts o)
{
    char cert[300], key[300], icert[300], ikey[300], err[512];
    char n[64];
    snprintf(n, sizeof(n), "%s.pem", name);
    file(n, cert);
    snprintf(n, sizeof(n), "%s-key.pem", name);
    file(n, key);
    snprintf(n, sizeof(n), "%s.pem", issuer);
    file(n, icert);
    snprintf(n, sizeof(n), "%s-key.pem", issuer);
    file(n, ikey);
    int ret = clink_cert_make_node(&o, icert, ikey, cert, key, 0, err, sizeof(err));
    cr_assert_eq(ret, 0, "%s: %s", name, err);
}

static void make_intermediate(const char *name, const char *issuer, struct clink_cert_opts o)
{
    char cert[300], key[300], icert[300], ikey[300], err[512];
    char n[64];
    snprintf(n, sizeof(n), "%s.pem", name);
    file(n, cert);
    snprintf(n, sizeof(n), "%s-key.pem", name);
    file(n, key);
    snprintf(n, sizeof(n), "%s.pem", issuer);
    file(n, icert);
    snprintf(n, sizeof(n), "%s-key.pem", issuer);
    file(n, ikey);
    int ret = clink_cert_make_intermediate(&o, icert, ikey, cert, key, 0, err, sizeof(err));
    cr_assert_eq(ret, 0, "%s: %s", name, err);
}

#define DAY ((int64_t)24 * 60 * 60)

/*
 * The PKI every case draws from. ca.pem signs node.pem (localhost, 127.0.0.1,
 * ::1) and other-ca.pem signs other.pem (ts_pki_make); here:
 *   int.pem            intermediate under ca.pem; leaf-int.pem is leaf + int.pem
 *   leaf-noint.pem     leaf-int.pem without the intermediate
 *   old-int.pem        an expired intermediate; leaf-old-int.pem signed by it
 *   expired, future    validity over / not begun
 *   self-signed.pem    a leaf signed by its own key
 *   dns-mismatch       DNS:leaf.example only; ip-mismatch: DNS:localhost, IP:192.0.2.7
 *   cn-only            CN=localhost, SAN DNS:other.example only
 *   revoked            listed in crl.pem (ca.pem's CRL)
 *   client-only        EKU clientAuth only; server-only: EKU serverAuth only
 */
static void setup(void)
{
    static const char *const localhost[] = {"localhost", NULL};
    static const char *const loopback[] = {"127.0.0.1", "::1", NULL};
    ts_pki_make(&pki);
    file("ca-key.pem", ca_key);

    make_intermediate("int", "ca", (struct clink_cert_opts){.common_name = "clink test intermediate"});
    make_node("leaf-int", "int",
              (struct clink_cert_opts){.common_name = "leaf-int", .dns_names = localhost, .ip_addrs = loopback});
    char a[300], b[300];
    file("leaf-int.pem", a);
    file("leaf-noint.pem", b);
    ts_pem_first_block(a, b);
    make_intermediate("old-int", "ca",
                      (struct clink_cert_opts){
                          .common_name = "expired intermediate", .not_before_offset_s = -3 * DAY, .valid_for_s = DAY});
    make_node("leaf-old-int", "old-int",
              (struct clink_cert_opts){.common_name = "leaf-old-int", .dns_names = localhost});
    make_node("expired", "ca",
              (struct clink_cert_opts){.common_name = "expired-leaf",
                                       .dns_names = localhost,
                                       .not_before_offset_s = -3 * DAY,
                                       .valid_for_s = DAY});
    make_node(
        "future", "ca",
        (struct clink_cert_opts){.common_name = "future-leaf", .dns_names = localhost, .not_before_offset_s = DAY});
    make_node("self", "ca", (struct clink_cert_opts){.common_name = "self-signed-leaf", .dns_names = localhost});
    char key[300];
    file("self.pem", a);
    file("self-key.pem", key);
    file("self-signed.pem", b);
    ts_self_signed_leaf(a, key, b);
    static const char *const leaf_example[] = {"leaf.example", NULL};
    make_node("dns-mismatch", "ca", (struct clink_cert_opts){.common_name = "dns-mismatch", .dns_names = leaf_example});
    static const char *const doc_ip[] = {"192.0.2.7", NULL};
    make_node("ip-mismatch", "ca",
              (struct clink_cert_opts){.common_name = "ip-mismatch", .dns_names = localhost, .ip_addrs = doc_ip});
    static const char *const other_example[] = {"other.example", NULL};
    make_node("cn-only", "ca", (struct clink_cert_opts){.common_name = "localhost", .dns_names = other_example});
    make_node("revoked", "ca", (struct clink_cert_opts){.common_name = "revoked-leaf", .dns_names = localhost});
    make_node("client-only", "ca",
              (struct clink_cert_opts){
                  .common_name = "client-only", .dns_names = localhost, .usage = CLINK_CERT_USAGE_CLIENT});
    make_node("server-only", "ca",
              (struct clink_cert_opts){
                  .common_name = "server-only", .dns_names = localhost, .usage = CLINK_CERT_USAGE_SERVER});
    char crl[300], err[512];
    file("revoked.pem", a);
    file("crl.pem", crl);
    const char *revoked[] = {a, NULL};
    cr_assert_eq(clink_cert_make_crl(pki.ca, ca_key, revoked, 0, crl, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
    ts_pki_remove(&pki);
}

TestSuite(verify, .init = setup, .fini = teardown, .timeout = 120);

/* ---- what the server saw: connection events and log lines ---- */

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int opened, refused;
static int refused_status;
static char refused_text[256], opened_verified[16], opened_subject[256];
static char server_log[4096];

static void on_conn(struct clink_conn *conn, enum clink_conn_event ev, int status, void *user)
{
    (void)user;
    struct clink_conn_status st;
    /* On the connection's own worker: a snapshot, no waiting. */
    cr_assert_eq(clink_conn_get_status(conn, &st), 0);
    pthread_mutex_lock(&seen_mu);
    if (ev == CLINK_CONN_OPENED) {
        snprintf(opened_verified, sizeof(opened_verified), "%s", st.verified);
        snprintf(opened_subject, sizeof(opened_subject), "%s", st.peer_subject);
        atomic_fetch_add(&opened, 1);
    } else if (ev == CLINK_CONN_REFUSED) {
        refused_status = status;
        snprintf(refused_text, sizeof(refused_text), "%s", st.last_error_text);
        atomic_fetch_add(&refused, 1);
    }
    pthread_mutex_unlock(&seen_mu);
}

static void capture_log(void *user, enum clink_log_level level, const char *module, uint64_t conn_id, const char *fmt,
                        va_list ap)
{
    (void)user;
    (void)module;
    (void)conn_id;
    if (level > CLINK_LOG_INFO) {
        return;
    }
    pthread_mutex_lock(&seen_mu);
    size_t n = strlen(server_log);
    if (n + 2 < sizeof(server_log)) {
        vsnprintf(server_log + n, sizeof(server_log) - n - 1, fmt, ap);
        strcat(server_log, "\n");
    }
    pthread_mutex_unlock(&seen_mu);
}

static void seen_reset(void)
{
    pthread_mutex_lock(&seen_mu);
    atomic_store(&opened, 0);
    atomic_store(&refused, 0);
    refused_status = 0;
    refused_text[0] = opened_verified[0] = opened_subject[0] = server_log[0] = '\0';
    pthread_mutex_unlock(&seen_mu);
}

/* Wait until the server reported the one connection a dial made, opened or refused. */
static void wait_server_event(void)
{
    for (unsigned i = 0; i < ts_ms(5000) / 5 && atomic_load(&opened) + atomic_load(&refused) == 0; i++) {
        usleep(5000);
    }
}

static struct clink_node *server(struct clink_tls_ctx *tls)
{
    struct clink_node_opts o = {
        .workers = 1, .tls = tls, .on_conn = on_conn, .log = capture_log, .log_level = CLINK_LOG_INFO};
    return ts_node_with(&o, ts_register_echo);
}

/* ---- the server's certificate, seen by a clink client in each ssl_mode ---- */

static const enum clink_ssl_mode client_modes[] = {CLINK_SSL_REQUIRED, CLINK_SSL_VERIFY_CA, CLINK_SSL_VERIFY_IDENTITY};
static const char *const client_mode_names[] = {"REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"};
static const char *const client_mode_verified[] = {"none", "ca", "identity"};

/*
 * MySQL semantics: REQUIRED accepts any certificate, VERIFY_CA refuses a
 * chain problem, VERIFY_IDENTITY refuses a name problem as well.
 */
enum problem {
    NONE,
    CHAIN, /* refused by VERIFY_CA and VERIFY_IDENTITY */
    NAME,  /* refused by VERIFY_IDENTITY only */
};

struct server_case {
    const char *name;
    const char *cert, *key; /* what the server presents, files in the PKI directory */
    const char *subject;    /* its subject, as the status reports it */
    const char *dial_name;  /* expected_name; NULL: the host dialled, 127.0.0.1 */
    int client_crl;         /* the client checks crl.pem */
    enum problem problem;
    const char *reason; /* what a refusal must say */
};

#define VERIFY_FAILED(why) "certificate verify failed: " why

static const struct server_case server_cases[] = {
    {"good chain", "node.pem", "node-key.pem", "CN=localhost", "localhost", 0, NONE, NULL},
    {"good chain, dialled by IP", "node.pem", "node-key.pem", "CN=localhost", NULL, 0, NONE, NULL},
    {"good chain through an intermediate", "leaf-int.pem", "leaf-int-key.pem", "CN=leaf-int", "localhost", 0, NONE,
     NULL},
    {"untrusted CA", "other.pem", "other-key.pem", "CN=localhost", "localhost", 0, CHAIN,
     VERIFY_FAILED("unable to get local issuer certificate (depth 0, CN=localhost)")},
    {"self-signed leaf", "self-signed.pem", "self-key.pem", "CN=self-signed-leaf", "localhost", 0, CHAIN,
     VERIFY_FAILED("self-signed certificate (depth 0, CN=self-signed-leaf)")},
    {"expired leaf", "expired.pem", "expired-key.pem", "CN=expired-leaf", "localhost", 0, CHAIN,
     VERIFY_FAILED("certificate has expired (depth 0, CN=expired-leaf)")},
    {"not yet valid leaf", "future.pem", "future-key.pem", "CN=future-leaf", "localhost", 0, CHAIN,
     VERIFY_FAILED("certificate is not yet valid (depth 0, CN=future-leaf)")},
    {"expired intermediate", "leaf-old-int.pem", "leaf-old-int-key.pem", "CN=leaf-old-int", "localhost", 0, CHAIN,
     VERIFY_FAILED("certificate has expired (depth 1, CN=expired intermediate)")},
    {"missing intermediate", "leaf-noint.pem", "leaf-int-key.pem", "CN=leaf-int", "localhost", 0, CHAIN,
     VERIFY_FAILED("unable to get local issuer certificate (depth 0, CN=leaf-int)")},
    {"DNS name mismatch", "dns-mismatch.pem", "dns-mismatch-key.pem", "CN=dns-mismatch", "localhost", 0, NAME,
     VERIFY_FAILED("hostname mismatch (depth 0, CN=dns-mismatch)")},
    {"IP mismatch", "ip-mismatch.pem", "ip-mismatch-key.pem", "CN=ip-mismatch", NULL, 0, NAME,
     VERIFY_FAILED("IP address mismatch (depth 0, CN=ip-mismatch)")},
    /* RFC 6125 6.4.4: with a DNS SAN present the CN is not a name; OpenSSL's default, asserted here. */
    {"CN matches but a SAN is present", "cn-only.pem", "cn-only-key.pem", "CN=localhost", "localhost", 0, NAME,
     VERIFY_FAILED("hostname mismatch (depth 0, CN=localhost)")},
    {"revoked, client has the CRL", "revoked.pem", "revoked-key.pem", "CN=revoked-leaf", "localhost", 1, CHAIN,
     VERIFY_FAILED("certificate revoked (depth 0, CN=revoked-leaf)")},
    {"no serverAuth usage", "client-only.pem", "client-only-key.pem", "CN=client-only", "localhost", 0, CHAIN,
     VERIFY_FAILED("unsuitable certificate purpose (depth 0, CN=client-only)")},
};

/*
 * Criterion hands parameters to a freshly started runner process, where
 * pointers into ours mean nothing: the parameter is an index into the table.
 */
#define NSERVER (sizeof(server_cases) / sizeof(server_cases[0]))
static int server_ix[NSERVER];

ParameterizedTestParameters(verify, server_certificate)
{
    for (size_t i = 0; i < NSERVER; i++) {
        server_ix[i] = (int)i;
    }
    return cr_make_param_array(int, server_ix, NSERVER);
}

ParameterizedTest(int *ix, verify, server_certificate)
{
    const struct server_case *c = &server_cases[*ix];
    char cert[300], key[300], crl[300], err[512];
    file(c->cert, cert);
    file(c->key, key);
    file("crl.pem", crl);
    struct clink_tls_ctx *stls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    ts_tls_serve_cert(stls, cert, key);
    struct clink_node *srv = server(stls);
    struct clink_tls_opts co = {.cert_file = pki.node_cert,
                                .key_file = pki.node_key,
                                .ca_file = pki.ca,
                                .crl_file = c->client_crl ? crl : NULL};
    struct clink_tls_ctx *ctls;
    cr_assert_eq(clink_tls_ctx_new(&co, &ctls, err, sizeof(err)), 0, "%s", err);
    struct clink_node *cli = ts_client(ctls, 1, 0);

    for (size_t m = 0; m < 3; m++) {
        struct clink_connect_opts o = {.host = "127.0.0.1",
                                       .port = clink_node_port(srv),
                                       .expected_name = c->dial_name,
                                       .ssl_mode = client_modes[m]};
        struct clink_conn *conn = NULL;
        err[0] = '\0';
        seen_reset();

        int ret = clink_connect_sync(cli, &o, &conn, err, sizeof(err));

        const char *mode = client_mode_names[m];
        int refuse = (c->problem == CHAIN && client_modes[m] != CLINK_SSL_REQUIRED) ||
                     (c->problem == NAME && client_modes[m] == CLINK_SSL_VERIFY_IDENTITY);
        if (!refuse) {
            cr_assert_eq(ret, 0, "%s, %s: must be accepted, got %s: %s", c->name, mode, clink_strerror(ret), err);
            struct clink_conn_status st;
            cr_assert_eq(clink_conn_get_status(conn, &st), 0);
            cr_assert_str_eq(st.verified, client_mode_verified[m], "%s, %s", c->name, mode);
            cr_assert_str_eq(st.peer_subject, c->subject, "%s, %s: talked to the wrong server", c->name, mode);
            struct clink_msg r;
            cr_assert_eq(clink_call_sync(conn, TS_ECHO, "x", 1, ts_ms(5000), &r), 0, "%s, %s", c->name, mode);
            clink_msg_free(&r);
            clink_conn_close(conn);
        } else {
            cr_assert_eq(ret, -CLINK_EVERIFY, "%s, %s: must be refused, got %s: %s", c->name, mode, clink_strerror(ret),
                         err);
            cr_assert_null(conn);
            cr_assert(strstr(err, c->reason) != NULL, "%s, %s: reason '%s', expected '%s'", c->name, mode, err,
                      c->reason);
        }
    }

    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(ctls);
    clink_tls_ctx_free(stls);
}

/* ---- the client's certificate, seen by a server with each client_cert rule ---- */

static const enum clink_client_cert server_rules[] = {CLINK_CLIENT_CERT_REQUIRED, CLINK_CLIENT_CERT_OPTIONAL,
                                                      CLINK_CLIENT_CERT_NONE};
static const char *const server_rule_names[] = {"required", "optional", "none"};

/*
 * A certificate that fails verification is refused whenever it is asked for
 * (required, and optional: "verified if presented"); none at all is refused
 * only when one is required; a server that asks for none accepts anything.
 */
struct client_case {
    const char *name;
    const char *cert, *key; /* what the client presents; NULL: no certificate */
    const char *subject;
    /*
     * Dial with a raw OpenSSL client: clink itself refuses to build a
     * context from a certificate that does not verify against its own CA
     * bundle, or from none.
     */
    int raw;
    int server_crl;          /* the server checks crl.pem */
    const char *reason;      /* what the server's refusal must say; NULL: a good certificate */
    const char *client_told; /* what a clink client that was refused is told */
};

static const struct client_case client_cases[] = {
    {"good certificate", "node.pem", "node-key.pem", "CN=localhost", 0, 0, NULL, NULL},
    {"good certificate through an intermediate", "leaf-int.pem", "leaf-int-key.pem", "CN=leaf-int", 0, 0, NULL, NULL},
    {"no certificate", NULL, NULL, "", 1, 0, "the client sent no certificate, and this node requires one", NULL},
    {"no clientAuth usage", "server-only.pem", "server-only-key.pem", "CN=server-only", 0, 0,
     VERIFY_FAILED("unsuitable certificate purpose (depth 0, CN=server-only)"),
     "peer rejected our certificate: unsupported certificate"},
    {"revoked, server has the CRL", "revoked.pem", "revoked-key.pem", "CN=revoked-leaf", 0, 1,
     VERIFY_FAILED("certificate revoked (depth 0, CN=revoked-leaf)"),
     "peer rejected our certificate: certificate revoked"},
    {"untrusted CA", "other.pem", "other-key.pem", "CN=localhost", 1, 0,
     VERIFY_FAILED("unable to get local issuer certificate (depth 0, CN=localhost)"), NULL},
    {"expired", "expired.pem", "expired-key.pem", "CN=expired-leaf", 1, 0,
     VERIFY_FAILED("certificate has expired (depth 0, CN=expired-leaf)"), NULL},
};

#define NCLIENT (sizeof(client_cases) / sizeof(client_cases[0]))
static int client_ix[NCLIENT];

ParameterizedTestParameters(verify, client_certificate)
{
    for (size_t i = 0; i < NCLIENT; i++) {
        client_ix[i] = (int)i;
    }
    return cr_make_param_array(int, client_ix, NCLIENT);
}

/* A raw client's outcome: 1 if the server answered its HELLO (accepted), 0 if it closed (refused). */
static int raw_dial(uint16_t port, const struct client_case *c)
{
    char cert[300], key[300];
    if (c->cert != NULL) {
        file(c->cert, cert);
        file(c->key, key);
    }
    struct ts_raw_opts ro = {.cert = c->cert ? cert : NULL, .key = c->cert ? key : NULL, .ca = pki.ca};
    struct tls_peer r;
    int accepted = 0;
    /* TLS 1.3: the client's handshake is over before the server has checked its certificate. */
    if (ts_raw_tls_with(&r, port, &ro) == 0) {
        uint8_t b[512]; /* room for any HELLO; the plain one is CLINK_HELLO_LEN bytes */
        struct clink_hello h = {.min_version = 1, .max_version = 1, .max_frame = 1 << 20};
        clink__hello_encode(b, &h);
        uint8_t back[CLINK_FRAME_HDR + CLINK_HELLO_LEN];
        accepted = ts_raw_frame(&r, CLINK_FRAME_HELLO, 0, 0, b, CLINK_HELLO_LEN, CLINK_HELLO_LEN) == 0 &&
                   ts_raw_read(&r, back, sizeof(back)) == (int)sizeof(back) && back[0] == CLINK_FRAME_HELLO;
    }
    tls_peer_free(&r);
    return accepted;
}

ParameterizedTest(int *ix, verify, client_certificate)
{
    const struct client_case *c = &client_cases[*ix];
    char crl[300], err[512];
    file("crl.pem", crl);

    for (size_t m = 0; m < 3; m++) {
        const char *rule = server_rule_names[m];
        struct clink_tls_opts so = {.cert_file = pki.node_cert,
                                    .key_file = pki.node_key,
                                    .ca_file = pki.ca,
                                    .client_cert = server_rules[m],
                                    .crl_file = c->server_crl ? crl : NULL};
        struct clink_tls_ctx *stls;
        cr_assert_eq(clink_tls_ctx_new(&so, &stls, err, sizeof(err)), 0, "%s", err);
        struct clink_node *srv = server(stls);
        seen_reset();
        err[0] = '\0';

        int accepted;
        int ret = 0;
        if (c->raw) {
            accepted = raw_dial(clink_node_port(srv), c);
        } else {
            char cert[300], key[300];
            file(c->cert, cert);
            file(c->key, key);
            struct clink_tls_ctx *ctls = ts_tls(cert, key, pki.ca);
            struct clink_node *cli = ts_client(ctls, 1, 0);
            struct clink_connect_opts o = {
                .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost"};
            struct clink_conn *conn = NULL;
            ret = clink_connect_sync(cli, &o, &conn, err, sizeof(err));
            accepted = ret == 0;
            if (conn != NULL) {
                clink_conn_close(conn);
            }
            clink_node_free(cli);
            clink_tls_ctx_free(ctls);
        }
        wait_server_event();

        int refuse = c->reason != NULL && (server_rules[m] == CLINK_CLIENT_CERT_REQUIRED ||
                                           (server_rules[m] == CLINK_CLIENT_CERT_OPTIONAL && c->cert != NULL));
        pthread_mutex_lock(&seen_mu);
        if (!refuse) {
            cr_assert(accepted, "%s, server %s: must be accepted: %s", c->name, rule, err);
            cr_assert_eq(atomic_load(&opened), 1, "%s, server %s", c->name, rule);
            int checked = c->cert != NULL && server_rules[m] != CLINK_CLIENT_CERT_NONE;
            cr_assert_str_eq(opened_verified, checked ? "client-cert" : "none", "%s, server %s", c->name, rule);
            cr_assert_str_eq(opened_subject, checked ? c->subject : "", "%s, server %s", c->name, rule);
        } else {
            cr_assert_not(accepted, "%s, server %s: must be refused", c->name, rule);
            cr_assert_eq(atomic_load(&refused), 1, "%s, server %s: no REFUSED event", c->name, rule);
            cr_assert_eq(refused_status, -CLINK_EVERIFY, "%s, server %s: %s", c->name, rule,
                         clink_strerror(refused_status));
            cr_assert(strstr(refused_text, c->reason) != NULL, "%s, server %s: reason '%s', expected '%s'", c->name,
                      rule, refused_text, c->reason);
            cr_assert(strstr(server_log, c->reason) != NULL, "%s, server %s: not logged:\n%s", c->name, rule,
                      server_log);
            if (!c->raw) {
                cr_assert_eq(ret, -CLINK_EVERIFY, "%s, server %s: client got %s: %s", c->name, rule,
                             clink_strerror(ret), err);
                cr_assert(strstr(err, c->client_told) != NULL, "%s, server %s: client told '%s', expected '%s'",
                          c->name, rule, err, c->client_told);
            }
        }
        pthread_mutex_unlock(&seen_mu);

        clink_node_free(srv);
        clink_tls_ctx_free(stls);
    }
}

/* ---- chains through an intermediate, from the files clink-certs writes ---- */

Test(verify, intermediate_chains_verify_both_ways_with_only_the_root_trusted)
{
    char cert[300], key[300];
    file("leaf-int.pem", cert);
    file("leaf-int-key.pem", key);
    /* Both ends present leaf + intermediate and trust only ca.pem. */
    struct clink_tls_ctx *tls = ts_tls(cert, key, pki.ca);
    seen_reset();
    struct clink_node *srv = server(tls);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost"};
    struct clink_conn *conn = NULL;
    char err[512];

    int ret = clink_connect_sync(cli, &o, &conn, err, sizeof(err));
    wait_server_event();

    cr_assert_eq(ret, 0, "%s", err);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(conn, &st), 0);
    cr_assert_str_eq(st.verified, "identity");
    cr_assert_str_eq(st.peer_subject, "CN=leaf-int");
    cr_assert_str_eq(st.peer_issuer, "CN=clink test intermediate");
    pthread_mutex_lock(&seen_mu);
    cr_assert_str_eq(opened_verified, "client-cert");
    cr_assert_str_eq(opened_subject, "CN=leaf-int");
    pthread_mutex_unlock(&seen_mu);
    clink_conn_close(conn);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(tls);
}

Test(verify, server_missing_its_intermediate_in_the_cert_file_sends_it_from_its_ca_bundle)
{
    /* OpenSSL's auto-chain: a leaf-only file still verifies when the server's ssl_ca holds the intermediate. */
    char leaf[300], key[300], inter[300], bundle[300];
    file("leaf-noint.pem", leaf);
    file("leaf-int-key.pem", key);
    file("int.pem", inter);
    file("bundle.pem", bundle);
    FILE *out = fopen(bundle, "w");
    cr_assert_not_null(out);
    const char *parts[] = {pki.ca, inter};
    for (size_t i = 0; i < 2; i++) {
        FILE *in = fopen(parts[i], "r");
        cr_assert_not_null(in);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
            cr_assert_eq(fwrite(buf, 1, n, out), n);
        }
        fclose(in);
    }
    cr_assert_eq(fclose(out), 0);
    struct clink_tls_ctx *stls = ts_tls(leaf, key, bundle);
    struct clink_node *srv = server(stls);
    struct clink_tls_ctx *ctls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_node *cli = ts_client(ctls, 1, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost"};
    struct clink_conn *conn = NULL;
    char err[512];

    int ret = clink_connect_sync(cli, &o, &conn, err, sizeof(err));

    cr_assert_eq(ret, 0, "%s", err);
    clink_conn_close(conn);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(ctls);
    clink_tls_ctx_free(stls);
}

/* ---- an unverified connection is not blamed on the certificate it did not check ---- */

Test(verify, required_mode_reports_the_servers_refusal_not_its_own_unchecked_chain)
{
    /* The server's certificate is from a CA we do not trust, and it trusts only that CA for clients. */
    struct clink_tls_ctx *stls = ts_tls(pki.other_cert, pki.other_key, pki.other_ca);
    seen_reset();
    struct clink_node *srv = server(stls);
    struct clink_tls_ctx *ctls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_node *cli = ts_client(ctls, 1, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1",
                                   .port = clink_node_port(srv),
                                   .expected_name = "localhost",
                                   .ssl_mode = CLINK_SSL_REQUIRED};
    struct clink_conn *conn = NULL;
    char err[512];

    int ret = clink_connect_sync(cli, &o, &conn, err, sizeof(err));
    wait_server_event();

    cr_assert_eq(ret, -CLINK_EVERIFY, "%s: %s", clink_strerror(ret), err);
    cr_assert(strstr(err, "peer rejected our certificate: unknown CA") != NULL, "reason: %s", err);
    cr_assert(strstr(err, "certificate verify failed") == NULL, "we did not verify, so we cannot blame it: %s", err);
    pthread_mutex_lock(&seen_mu);
    /* A clink node sends its chain up to the root it trusts (OpenSSL's auto-chain from ssl_ca). */
    cr_assert(strstr(refused_text,
                     VERIFY_FAILED("self-signed certificate in certificate chain (depth 1, CN=clink test CA)")) != NULL,
              "server: %s", refused_text);
    pthread_mutex_unlock(&seen_mu);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(ctls);
    clink_tls_ctx_free(stls);
}

Test(verify, a_handshake_failure_alert_is_not_blamed_on_our_certificate)
{
    /* No suite in common: the server answers handshake_failure, which says nothing about certificates. */
    struct clink_tls_opts so = {.cert_file = pki.node_cert,
                                .key_file = pki.node_key,
                                .ca_file = pki.ca,
                                .ciphersuites = "TLS_CHACHA20_POLY1305_SHA256"};
    struct clink_tls_opts co = {.cert_file = pki.node_cert,
                                .key_file = pki.node_key,
                                .ca_file = pki.ca,
                                .ciphersuites = "TLS_AES_128_GCM_SHA256"};
    struct clink_tls_ctx *stls, *ctls;
    char err[512];
    cr_assert_eq(clink_tls_ctx_new(&so, &stls, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_tls_ctx_new(&co, &ctls, err, sizeof(err)), 0, "%s", err);
    seen_reset();
    struct clink_node *srv = server(stls);
    struct clink_node *cli = ts_client(ctls, 1, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost"};
    struct clink_conn *conn = NULL;

    int ret = clink_connect_sync(cli, &o, &conn, err, sizeof(err));
    wait_server_event();

    cr_assert_eq(ret, -CLINK_ETLS, "%s: %s", clink_strerror(ret), err);
    cr_assert(strstr(err, "handshake failure") != NULL, "reason: %s", err);
    cr_assert(strstr(err, "certificate") == NULL, "reason: %s", err);
    pthread_mutex_lock(&seen_mu);
    cr_assert_eq(refused_status, -CLINK_ETLS);
    cr_assert(strstr(refused_text, "no shared cipher") != NULL, "server: %s", refused_text);
    pthread_mutex_unlock(&seen_mu);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(ctls);
    clink_tls_ctx_free(stls);
}
