/*
 * Revocation while links are open: a certificate revoked with
 * clink_cert_revoke, the CRL reloaded on the other side, closes the
 * established link that uses it gracefully (GOAWAY: a call in flight
 * finishes), counts it and refuses the next handshake saying why; the
 * client's certificate (the server re-checks its accepted links) and the
 * server's (the client re-checks its dialled ones). A reload that revokes
 * nobody on a link closes nothing; a CA taken out of the trust closes its
 * links too. And the CRL tools' library calls: entries kept, numbers
 * growing, a stranger's certificate refused.
 */
#include <criterion/criterion.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clink/auth.h"
#include "clink/transport.h"
#include "tests/support/support.h"

static struct ts_pki pki;
static char ca_key[300], crl[300];
static char srv_cert[300], srv_key[300], cli_cert[300], cli_key[300];

static const char *dns[] = {"localhost", NULL};
static const char *ips[] = {"127.0.0.1", NULL};

static void make_cert(const char *name, char *cert, char *key)
{
    char err[256];
    snprintf(cert, 300, "%s/%s.pem", pki.dir, name);
    snprintf(key, 300, "%s/%s-key.pem", pki.dir, name);
    struct clink_cert_opts o = {.common_name = name, .dns_names = dns, .ip_addrs = ips};
    cr_assert_eq(clink_cert_make_node(&o, pki.ca, ca_key, cert, key, 1, err, sizeof(err)), 0, "%s", err);
}

static void setup(void)
{
    ts_pki_make(&pki);
    ts_pki_path(&pki, "ca-key.pem", ca_key, sizeof(ca_key));
    ts_pki_path(&pki, "crl.pem", crl, sizeof(crl));
    make_cert("srv", srv_cert, srv_key);
    make_cert("cli", cli_cert, cli_key);
    char err[512];
    /* Every node checks a CRL from the start, as a deployment that may revoke does. */
    cr_assert_eq(clink_cert_crl_reissue(pki.dir, NULL, 0, NULL, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
    ts_pki_remove(&pki);
}

TestSuite(revoke, .init = setup, .fini = teardown, .timeout = 60);

static struct clink_tls_ctx *ctx(const char *cert, const char *key, const char *ca)
{
    struct clink_tls_opts o = {.cert_file = cert, .key_file = key, .ca_file = ca, .crl_file = crl};
    struct clink_tls_ctx *t = NULL;
    char err[512];
    cr_assert_eq(clink_tls_ctx_new(&o, &t, err, sizeof(err)), 0, "%s", err);
    return t;
}

static void revoke_cert(const char *cert)
{
    struct clink_revoke_opts o = {.cert_file = cert, .reason = "keyCompromise"};
    char err[512];
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &o, NULL, err, sizeof(err)), 0, "%s", err);
}

/* Method 3 holds its request until the test answers it: a call in flight across the reload. */
#define HOLD 3
static _Atomic(struct clink_req *) held;
static char held_payload[] = "held", late_answer[] = "late answer";

static void hold(struct clink_req *req, void *user)
{
    (void)user;
    atomic_store(&held, req);
}

static void reg(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, HOLD, hold, NULL), 0);
}

static struct clink_node *server(struct clink_tls_ctx *t)
{
    struct clink_node_opts o = {.workers = 2, .tls = t};
    return ts_node_with(&o, reg);
}

static int dial(struct clink_node *cli, struct clink_node *srv, struct clink_conn **c, char *err, size_t cap)
{
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost", .timeout_ms = ts_ms(5000)};
    err[0] = '\0';
    *c = NULL;
    return clink_connect_sync(cli, &o, c, err, cap);
}

static void echo_ok(struct clink_conn *c)
{
    struct clink_msg r;
    int ret = clink_call_sync(c, TS_ECHO, "ping", 4, ts_ms(5000), &r);
    cr_assert_eq(ret, 0, "call: %s", clink_strerror(ret));
    cr_assert_eq(r.len, 4);
    clink_msg_free(&r);
}

struct pending {
    struct clink_call call;
    struct iovec iov;
    atomic_int done;
    int status;
    char answer[16];
};

static void on_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct pending *p = call->user;
    p->status = status;
    if (status == 0 && len < sizeof(p->answer)) {
        memcpy(p->answer, resp, len);
        p->answer[len] = '\0';
    }
    atomic_store(&p->done, 1);
}

/* A call the server holds: started, and seen by the handler. */
static void start_held(struct clink_conn *c, struct pending *p)
{
    memset(p, 0, sizeof(*p));
    atomic_store(&held, NULL);
    p->iov = (struct iovec){.iov_base = held_payload, .iov_len = 4};
    p->call = (struct clink_call){
        .method = HOLD, .iov = &p->iov, .iovcnt = 1, .timeout_ms = ts_ms(10000), .cb = on_done, .user = p};
    cr_assert_eq(clink_call_start(c, &p->call), 0);
    for (int i = 0; i < 500 && atomic_load(&held) == NULL; i++) {
        usleep(10000);
    }
    cr_assert_not_null(atomic_load(&held), "the held call never reached the server");
}

static void answer_held(struct pending *p)
{
    struct iovec iov = {.iov_base = late_answer, .iov_len = 11};
    cr_assert_eq(clink_req_respond(atomic_exchange(&held, NULL), &iov, 1), 0);
    for (int i = 0; i < 500 && !atomic_load(&p->done); i++) {
        usleep(10000);
    }
    cr_assert(atomic_load(&p->done), "the call in flight never completed");
    cr_assert_eq(p->status, 0, "the call in flight failed: %s", clink_strerror(p->status));
    cr_assert_str_eq(p->answer, "late answer");
}

static int wait_not_open(struct clink_conn *c)
{
    for (int i = 0; i < 500; i++) {
        if (!clink_conn_is_open(c)) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

static int wait_closed(struct clink_conn *c)
{
    struct clink_conn_status st;
    for (int i = 0; i < 500; i++) {
        if (clink_conn_get_status(c, &st) == 0 && !st.open && strcmp(st.peer_addr, "") != 0) {
            /* open is 0 from the GOAWAY on: closed is when it has nothing in flight either */
            if (st.calls_in_flight == 0 && st.requests_in_flight == 0) {
                return 1;
            }
        }
        usleep(10000);
    }
    return 0;
}

Test(revoke, a_revoked_client_certificate_closes_its_accepted_link_after_the_servers_reload)
{
    struct clink_tls_ctx *st = ctx(srv_cert, srv_key, pki.ca);
    struct clink_tls_ctx *ct = ctx(cli_cert, cli_key, pki.ca);
    struct clink_node *srv = server(st);
    struct clink_node *cli = ts_client(ct, 1, 0);
    struct clink_conn *c, *again;
    char err[512];
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "%s", err);
    echo_ok(c);
    struct pending p;
    start_held(c, &p);

    revoke_cert(cli_cert);
    struct clink_tls_ctx *st2 = ctx(srv_cert, srv_key, pki.ca);
    cr_assert_eq(clink_node_reload_tls(srv, st2), 0);

    cr_assert(wait_not_open(c), "the revoked client's link is still open after the server's reload");
    answer_held(&p); /* GOAWAY, not a cut: the call in flight still gets its answer */
    cr_assert(wait_closed(c), "the link did not finish closing");
    struct clink_node_stats ss;
    clink_node_get_stats(srv, &ss);
    cr_assert_eq(ss.links_closed_revoked, 1);
    cr_assert_eq(ss.links_closed_untrusted, 0);
    int ret = dial(cli, srv, &again, err, sizeof(err));
    cr_assert_lt(ret, 0, "a revoked client dialled in again");
    cr_assert_null(again);
    cr_assert(strstr(err, "revoked") != NULL, "the refusal does not say revoked: %s", err);

    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(st2);
    clink_tls_ctx_free(st);
    clink_tls_ctx_free(ct);
}

Test(revoke, a_revoked_server_certificate_closes_the_dialled_link_after_the_clients_reload)
{
    struct clink_tls_ctx *st = ctx(srv_cert, srv_key, pki.ca);
    struct clink_tls_ctx *ct = ctx(cli_cert, cli_key, pki.ca);
    struct clink_node *srv = server(st);
    struct clink_node *cli = ts_client(ct, 2, 0);
    struct clink_conn *c, *other, *again;
    char err[512];
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(dial(cli, srv, &other, err, sizeof(err)), 0, "%s", err); /* on the client's other worker */
    echo_ok(c);
    struct pending p;
    start_held(c, &p);

    revoke_cert(srv_cert);
    struct clink_tls_ctx *ct2 = ctx(cli_cert, cli_key, pki.ca);
    cr_assert_eq(clink_node_reload_tls(cli, ct2), 0);

    cr_assert(wait_not_open(c), "the link to the revoked server is still open after the client's reload");
    cr_assert(wait_not_open(other), "the second link (other worker) is still open");
    answer_held(&p);
    cr_assert(wait_closed(c));
    struct clink_node_stats cs;
    clink_node_get_stats(cli, &cs);
    cr_assert_eq(cs.links_closed_revoked, 2);
    struct clink_conn_status status;
    cr_assert_eq(clink_conn_get_status(c, &status), 0);
    cr_assert(strstr(status.last_error_text, "revoked") != NULL, "status: %s", status.last_error_text);
    int ret = dial(cli, srv, &again, err, sizeof(err));
    cr_assert_eq(ret, -CLINK_EVERIFY, "%s: %s", clink_strerror(ret), err);
    cr_assert(strstr(err, "certificate revoked") != NULL, "the refusal does not say revoked: %s", err);

    clink_conn_close(c);
    clink_conn_close(other);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(ct2);
    clink_tls_ctx_free(st);
    clink_tls_ctx_free(ct);
}

Test(revoke, a_reload_that_revokes_nobody_on_a_link_closes_nothing)
{
    struct clink_tls_ctx *st = ctx(srv_cert, srv_key, pki.ca);
    struct clink_tls_ctx *ct = ctx(cli_cert, cli_key, pki.ca);
    struct clink_node *srv = server(st);
    struct clink_node *cli = ts_client(ct, 2, 0);
    struct clink_conn *c[4];
    char err[512];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(dial(cli, srv, &c[i], err, sizeof(err)), 0, "%s", err);
    }
    /* Another certificate of the same CA, and a serial nobody has. */
    char third[300], third_key[300];
    make_cert("third", third, third_key);
    revoke_cert(third);
    struct clink_revoke_opts o = {.serial_hex = "0x0123456789abcdef", .reason = "superseded"};
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &o, NULL, err, sizeof(err)), 0, "%s", err);

    struct clink_tls_ctx *st2 = ctx(srv_cert, srv_key, pki.ca);
    struct clink_tls_ctx *ct2 = ctx(cli_cert, cli_key, pki.ca);
    cr_assert_eq(clink_node_reload_tls(srv, st2), 0);
    cr_assert_eq(clink_node_reload_tls(cli, ct2), 0);
    usleep(ts_ms(300) * 1000);

    for (int i = 0; i < 4; i++) {
        cr_assert(clink_conn_is_open(c[i]), "link %d closed by a reload that revoked nobody on it", i);
        echo_ok(c[i]);
        clink_conn_close(c[i]);
    }
    struct clink_node_stats ss, cs;
    clink_node_get_stats(srv, &ss);
    clink_node_get_stats(cli, &cs);
    cr_assert_eq(ss.links_closed_revoked + ss.links_closed_untrusted, 0);
    cr_assert_eq(cs.links_closed_revoked + cs.links_closed_untrusted, 0);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(st2);
    clink_tls_ctx_free(ct2);
    clink_tls_ctx_free(st);
    clink_tls_ctx_free(ct);
}

Test(revoke, a_ca_taken_out_of_the_trust_closes_its_links_and_leaves_plaintext_alone)
{
    struct clink_tls_ctx *st = ctx(srv_cert, srv_key, pki.ca);
    struct clink_tls_ctx *ct = ctx(cli_cert, cli_key, pki.ca);
    struct clink_node_opts so = {.workers = 1, .tls = st, .allow_plaintext = 1};
    struct clink_node *srv = ts_node_with(&so, reg);
    struct clink_node *cli = ts_client(ct, 1, 1);
    struct clink_conn *c, *plain;
    char err[512];
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "%s", err);
    echo_ok(c);
    /* A link with no certificate to check: the reload has nothing to say about it. */
    struct clink_connect_opts po = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .mode = CLINK_MODE_PLAIN, .timeout_ms = ts_ms(5000)};
    cr_assert_eq(clink_connect_sync(cli, &po, &plain, err, sizeof(err)), 0, "%s", err);
    echo_ok(plain);

    /* The server moves to another CA and trusts only it: the client's CA is gone. */
    struct clink_tls_opts o = {.cert_file = pki.other_cert, .key_file = pki.other_key, .ca_file = pki.other_ca};
    struct clink_tls_ctx *st2 = NULL;
    cr_assert_eq(clink_tls_ctx_new(&o, &st2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_node_reload_tls(srv, st2), 0);

    cr_assert(wait_not_open(c), "a link from a CA no longer trusted is still open");
    struct clink_node_stats ss;
    clink_node_get_stats(srv, &ss);
    cr_assert_eq(ss.links_closed_untrusted, 1);
    cr_assert_eq(ss.links_closed_revoked, 0);
    cr_assert(clink_conn_is_open(plain), "the reload closed a plaintext link");
    echo_ok(plain);
    clink_conn_close(plain);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(st2);
    clink_tls_ctx_free(st);
    clink_tls_ctx_free(ct);
}

/* ---- the library calls behind clink-certs revoke and crl ---- */

static X509_CRL *read_crl(void)
{
    FILE *f = fopen(crl, "r");
    cr_assert_not_null(f);
    X509_CRL *x = PEM_read_X509_CRL(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(x);
    return x;
}

Test(revoke, the_crl_keeps_its_entries_and_its_number_grows)
{
    struct clink_crl_info info;
    char err[512];
    struct clink_revoke_opts a = {.cert_file = srv_cert};
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &a, &info, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(info.number, 2, "the empty CRL was number 1");
    cr_assert_eq(info.revoked, 1);
    cr_assert_str_eq(info.subject, "CN=srv");
    struct clink_revoke_opts b = {.serial_hex = "1f:2E", .reason = "cessationOfOperation"};
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &b, &info, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(info.serial, "1F2E");
    cr_assert_eq(info.number, 3);
    cr_assert_eq(info.revoked, 2);

    /* Again: not an error, and nothing written. */
    struct stat before, after;
    cr_assert_eq(stat(crl, &before), 0);
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &a, &info, err, sizeof(err)), 1, "%s", err);
    cr_assert_eq(stat(crl, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino);
    cr_assert_eq(info.number, 3);

    int64_t now = (int64_t)time(NULL);
    cr_assert_eq(clink_cert_crl_reissue(pki.dir, NULL, 3 * 86400, &info, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(info.number, 4);
    cr_assert_eq(info.revoked, 2);
    cr_assert(info.next_update >= now + 3 * 86400 - 5 && info.next_update <= now + 3 * 86400 + 5);
    cr_assert_eq(stat(crl, &after), 0);
    cr_assert_eq(after.st_mode & 0777, 0644);

    X509_CRL *x = read_crl();
    cr_assert_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)), 2);
    X509_REVOKED *r = NULL;
    ASN1_INTEGER *serial = ASN1_INTEGER_new();
    cr_assert_eq(ASN1_INTEGER_set(serial, 0x1f2e), 1);
    cr_assert_eq(X509_CRL_get0_by_serial(x, &r, serial), 1);
    ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
    cr_assert_not_null(reason);
    cr_assert_eq(ASN1_ENUMERATED_get(reason), CRL_REASON_CESSATION_OF_OPERATION);
    ASN1_ENUMERATED_free(reason);
    ASN1_INTEGER_free(serial);
    X509_CRL_free(x);

    /* The lint says when it lapses within a week, on the CA's entry. */
    struct clink_tls_ctx *t = ctx(cli_cert, cli_key, pki.ca); /* srv's is revoked: a context refuses it */
    struct clink_cert_warning w[8];
    size_t n = clink_tls_ctx_lint(t, NULL, now, w, 8);
    int said = 0;
    for (size_t i = 0; i < n && i < 8; i++) {
        said |= w[i].kind == CLINK_CERT_CA && strstr(w[i].text, "CRL (ssl_crl) expires in 3 days") != NULL &&
                strstr(w[i].text, "clink-certs crl") != NULL;
    }
    cr_assert(said, "no CRL expiry warning among %zu: %s", n, n ? w[0].text : "");
    n = clink_tls_ctx_lint(t, NULL, now - 5 * 86400, w, 8); /* eight days' notice: nothing to say */
    for (size_t i = 0; i < n && i < 8; i++) {
        cr_assert_null(strstr(w[i].text, "CRL"), "%s", w[i].text);
    }
    clink_tls_ctx_free(t);
}

Test(revoke, a_certificate_of_another_ca_or_a_stranger_crl_is_refused)
{
    struct clink_crl_info info;
    char err[512];
    struct clink_revoke_opts o = {.cert_file = pki.other_cert};
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &o, &info, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "was not issued by the CA in") != NULL, "%s", err);
    struct clink_revoke_opts bad = {.serial_hex = "xyz"};
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &bad, &info, err, sizeof(err)), -CLINK_EINVAL);
    struct clink_revoke_opts reason = {.serial_hex = "12", .reason = "certificateHold"};
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &reason, &info, err, sizeof(err)), -CLINK_EINVAL);
    cr_assert(strstr(err, "keyCompromise") != NULL, "%s", err);
    struct clink_revoke_opts both = {.serial_hex = "12", .cert_file = srv_cert};
    cr_assert_eq(clink_cert_revoke(pki.dir, NULL, &both, &info, err, sizeof(err)), -CLINK_EINVAL);

    /* A CRL signed by another CA at the path is not carried over. */
    char other_dir[300], other_crl[320];
    snprintf(other_dir, sizeof(other_dir), "%s/other", pki.dir);
    cr_assert_eq(mkdir(other_dir, 0700), 0);
    snprintf(other_crl, sizeof(other_crl), "%s/ca.pem", other_dir);
    struct clink_cert_opts co = {.common_name = "other"};
    char other_key[320];
    snprintf(other_key, sizeof(other_key), "%s/ca-key.pem", other_dir);
    cr_assert_eq(clink_cert_make_ca(&co, other_crl, other_key, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_cert_crl_reissue(other_dir, crl, 0, &info, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "not a CRL signed by this CA") != NULL, "%s", err);
}

/*
 * What an expired CRL does (docs/config.md, "Revoking a certificate"): past
 * its nextUpdate OpenSSL refuses every certificate it covers, so new
 * handshakes fail both ways and a context (a start, a reload) that loads it
 * is refused, its own certificate failing first. Links already open run on.
 */
Test(revoke, an_expired_crl_refuses_every_new_handshake_and_every_new_context)
{
    char err[512];
    /* Long enough for the first dial on a slow machine (the kTLS VM emulates its CPU: scale 10). */
    int64_t life = 2 * (int64_t)ts_scale();
    cr_assert_eq(clink_cert_crl_reissue(pki.dir, NULL, life, NULL, err, sizeof(err)), 0, "%s", err);
    time_t until = time(NULL) + (time_t)life;
    struct clink_tls_ctx *st = ctx(srv_cert, srv_key, pki.ca);
    struct clink_tls_ctx *ct = ctx(cli_cert, cli_key, pki.ca);
    struct clink_node *srv = server(st);
    struct clink_node *cli = ts_client(ct, 1, 0);
    struct clink_conn *c, *again;
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_lt(time(NULL), until, "the machine was too slow: the CRL expired before the test could use it");
    while (time(NULL) <= until + 1) {
        usleep(100000);
    }

    int ret = dial(cli, srv, &again, err, sizeof(err));
    cr_assert_lt(ret, 0, "a handshake under an expired CRL went through");
    cr_assert(strstr(err, "CRL has expired") != NULL, "%s", err);
    echo_ok(c);
    struct clink_tls_opts o = {.cert_file = srv_cert, .key_file = srv_key, .ca_file = pki.ca, .crl_file = crl};
    struct clink_tls_ctx *t = NULL;
    cr_assert_eq(clink_tls_ctx_new(&o, &t, err, sizeof(err)), -CLINK_ECONFIG);
    cr_assert(strstr(err, "CRL has expired") != NULL, "%s", err);

    /* Re-issued, it works again after a reload. */
    cr_assert_eq(clink_cert_crl_reissue(pki.dir, NULL, 0, NULL, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_ctx *st2 = ctx(srv_cert, srv_key, pki.ca);
    struct clink_tls_ctx *ct2 = ctx(cli_cert, cli_key, pki.ca);
    cr_assert_eq(clink_node_reload_tls(srv, st2), 0);
    cr_assert_eq(clink_node_reload_tls(cli, ct2), 0);
    cr_assert_eq(dial(cli, srv, &again, err, sizeof(err)), 0, "%s", err);
    echo_ok(again);
    echo_ok(c);
    clink_conn_close(again);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(st2);
    clink_tls_ctx_free(ct2);
    clink_tls_ctx_free(st);
    clink_tls_ctx_free(ct);
}

/*
 * Links whose records the kernel took over (kTLS both ways): the SSL is
 * freed at the hand-over, so the peer's certificates are kept apart for
 * this check. Skipped without kTLS unless CLINK_EXPECT_KTLS is set (the
 * kTLS VM in CI, scripts/test.sh).
 */
static void ktls_link_closes(int revoke_server)
{
    struct clink_tls_ctx *st = ctx(srv_cert, srv_key, pki.ca);
    struct clink_tls_ctx *ct = ctx(cli_cert, cli_key, pki.ca);
    struct clink_node_opts so = {.workers = 1, .tls = st, .ktls = CLINK_KTLS_REQUIRED};
    struct clink_node *srv = ts_node_with(&so, reg);
    struct clink_features f;
    clink_node_features(srv, &f);
    if (!f.ktls) {
        cr_assert(getenv("CLINK_EXPECT_KTLS") == NULL, "CLINK_EXPECT_KTLS is set but this kernel offers no kTLS");
        clink_node_free(srv);
        clink_tls_ctx_free(st);
        clink_tls_ctx_free(ct);
        cr_skip_test("no kTLS on this kernel (run under ../shared/ktls-vm/run)");
    }
    struct clink_node_opts co = {.workers = 1, .tls = ct, .ktls = CLINK_KTLS_REQUIRED};
    struct clink_node *cli = ts_node_with(&co, NULL);
    struct clink_conn *c, *again;
    char err[512];
    cr_assert_eq(dial(cli, srv, &c, err, sizeof(err)), 0, "%s", err);
    echo_ok(c);
    struct clink_conn_status status;
    cr_assert_eq(clink_conn_get_status(c, &status), 0);
    cr_assert(status.ktls_tx == CLINK_KTLS_ON && status.ktls_rx == CLINK_KTLS_ON, "not handed to the kernel: %s",
              status.ktls_reason);
    struct pending p;
    start_held(c, &p);

    revoke_cert(revoke_server ? srv_cert : cli_cert);
    struct clink_node *reloads = revoke_server ? cli : srv;
    struct clink_tls_ctx *t2 = revoke_server ? ctx(cli_cert, cli_key, pki.ca) : ctx(srv_cert, srv_key, pki.ca);
    cr_assert_eq(clink_node_reload_tls(reloads, t2), 0);

    cr_assert(wait_not_open(c), "the kTLS link is still open after the reload");
    answer_held(&p);
    struct clink_node_stats s;
    clink_node_get_stats(reloads, &s);
    cr_assert_eq(s.links_closed_revoked, 1);
    cr_assert_lt(dial(cli, srv, &again, err, sizeof(err)), 0);
    cr_assert(strstr(err, "revoked") != NULL, "%s", err);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(t2);
    clink_tls_ctx_free(st);
    clink_tls_ctx_free(ct);
}

Test(revoke, a_ktls_link_from_a_revoked_client_closes_after_the_servers_reload)
{
    ktls_link_closes(0);
}

Test(revoke, a_ktls_link_to_a_revoked_server_closes_after_the_clients_reload)
{
    ktls_link_closes(1);
}
