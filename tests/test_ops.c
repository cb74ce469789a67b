/*
 * The ops endpoint on real sockets: HTTPS served by the node's workers,
 * read by a blocking OpenSSL client that verifies the certificate like a
 * browser does. Metrics and status must say what is really open (a TLS link
 * and a plaintext link), the expiry gauge must follow a reload, and only an
 * administrator may change anything.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "clink/clink.h"
#include "tests/support/support.h"

/* ---- a small HTTPS client ---- */

struct resp {
    int status;
    char *raw; /* the whole response */
    const char *body;
};

static void resp_free(struct resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof(*r));
}

/* The client certificate https() presents; NULL: none, as a browser. */
static const char *https_cert, *https_key;

/* One request over TLS to 127.0.0.1:port verifying "localhost" against ca; -1 if the handshake failed. */
static int https(uint16_t port, const char *ca, const char *request, struct resp *out)
{
    memset(out, 0, sizeof(*out));
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    struct tls_peer_opts o = {.ca = ca,
                              .host = "localhost",
                              .sni = "localhost",
                              .alpn = alpn,
                              .alpn_len = sizeof(alpn) - 1,
                              .cert = https_cert,
                              .key = https_key};
    struct tls_peer p;
    cr_assert_eq(tls_peer_new(&p, &o, ts_tcp_connect(port)), 0, "%s", p.err);
    int ret = -1;
    if (tls_peer_handshake(&p, tls_peer_now() + ts_ms(5000) / 1000.0) == 0) {
        cr_assert_eq(tls_peer_write(&p, request, strlen(request)), 0);
        double deadline = tls_peer_now() + ts_ms(5000) / 1000.0;
        size_t cap = 1 << 16, n = 0;
        char *buf = malloc(cap);
        for (;;) {
            if (n + 1 >= cap) {
                cap *= 2;
                buf = realloc(buf, cap);
            }
            size_t k = 0;
            int r = tls_peer_read(&p, buf + n, cap - n - 1, &k, deadline);
            n += k;
            if (r < 0) {
                break;
            }
        }
        buf[n] = '\0';
        out->raw = buf;
        cr_assert(sscanf(buf, "HTTP/1.1 %d", &out->status) == 1, "no status line in: %.200s", buf);
        char *b = strstr(buf, "\r\n\r\n");
        out->body = b ? b + 4 : "";
        ret = 0;
    }
    tls_peer_free(&p);
    return ret;
}

static void get(uint16_t port, const char *ca, const char *path, struct resp *out)
{
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test_ops\r\n\r\n", path);
    cr_assert_eq(https(port, ca, req, out), 0, "HTTPS handshake to the ops port failed");
}

/* The value of the first sample line starting with prefix, or -1e300 if none. */
static double metric(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, prefix, n) == 0) {
            /* The value follows the last space of the line (label values may hold spaces). */
            const char *end = strchr(l, '\n'), *sp = NULL;
            for (const char *q = l; end ? q < end : *q != '\0'; q++) {
                sp = *q == ' ' ? q : sp;
            }
            return sp ? strtod(sp + 1, NULL) : -1e300;
        }
    }
    return -1e300;
}

/* ---- fixture: a server node with ops, a client node dialling it ---- */

static struct ts_pki pki;
static struct clink_tls_ctx *tls, *https_tls;
static struct clink_node *server, *client;
static struct clink_ops *ops;
static struct clink_accounts *acc;
static atomic_int reloads;
static uint16_t ops_port;

static int reload_cb(void *user, char *msg, size_t cap)
{
    (void)user;
    atomic_fetch_add(&reloads, 1);
    snprintf(msg, cap, "reloaded %d time(s)", atomic_load(&reloads));
    return 0;
}

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    char err[256];
    /* With the CA: the port asks for (never requires) a client certificate, which can log an operator in. */
    struct clink_tls_opts ho = {.cert_file = pki.node_cert, .key_file = pki.node_key, .client_ca_file = pki.ca};
    cr_assert_eq(clink_tls_ctx_new_https(&ho, &https_tls, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    struct clink_account_spec admin = {.user = "admin", .password = "s3cret", .grant = "ALL"};
    struct clink_account_spec viewer = {.user = "viewer", .password = "look"};
    cr_assert_eq(clink_accounts_add(acc, &admin, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_accounts_add(acc, &viewer, err, sizeof(err)), 0, "%s", err);
    struct clink_node_opts o = {.workers = 2, .tls = tls, .allow_plaintext = 1, .handshake_timeout_ms = ts_ms(5000)};
    cr_assert_eq(clink_node_new(&o, &server), 0);
    ts_register_echo(server);
    cr_assert_eq(clink_node_listen(server, "127.0.0.1", 0), 0);
    struct clink_ops_opts oo = {
        .node = server, .tls = https_tls, .accounts = acc, .reload = reload_cb, .name = "leaf-under-test"};
    cr_assert_eq(clink_ops_new(&oo, &ops), 0);
    cr_assert_eq(clink_node_start(server), 0);
    ops_port = clink_node_https_port(server);
    cr_assert_neq(ops_port, 0);
    client = ts_client(tls, 1, 1);
    atomic_store(&reloads, 0);
    https_cert = https_key = NULL;
}

static void teardown(void)
{
    clink_node_free(client);
    CLINK_IGNORE(clink_node_shutdown(server, 0));
    clink_ops_free(ops);
    clink_node_free(server);
    clink_tls_ctx_free(tls);
    clink_tls_ctx_free(https_tls);
    clink_accounts_free(acc);
    ts_pki_remove(&pki);
}

TestSuite(ops, .init = setup, .fini = teardown, .timeout = 60);

static struct clink_conn *dial(enum clink_conn_mode mode)
{
    struct clink_connect_opts co = {
        .host = "127.0.0.1", .port = clink_node_port(server), .mode = mode, .expected_name = "localhost"};
    struct clink_conn *c = NULL;
    char err[256];
    cr_assert_eq(clink_connect_sync(client, &co, &c, err, sizeof(err)), 0, "%s", err);
    return c;
}

Test(ops, metrics_and_status_show_a_tls_and_a_plaintext_link)
{
    struct clink_conn *t = dial(CLINK_MODE_TLS), *p = dial(CLINK_MODE_PLAIN);
    /* Where the kernel has kTLS (the ktls-vm stage), the TLS link is the kernel's: its mode says so. */
    struct clink_features f;
    clink_node_features(server, &f);
    const char *tls_mode = f.ktls ? "ktls" : "tls", *other = f.ktls ? "tls" : "ktls";
    cr_assert(f.ktls || getenv("CLINK_EXPECT_KTLS") == NULL, "kTLS expected here but the kernel has none");
    char in_tls[128], in_other[128];
    snprintf(in_tls, sizeof(in_tls), "clink_connections{direction=\"in\",state=\"open\",mode=\"%s\"}", tls_mode);
    snprintf(in_other, sizeof(in_other), "clink_connections{direction=\"in\",state=\"open\",mode=\"%s\"}", other);
    struct resp r;
    int seen = 0;
    for (int i = 0; i < 100 && !seen; i++) { /* the kernel takes a link over just after it opens */
        get(ops_port, pki.ca, "/metrics", &r);
        seen = metric(r.body, in_tls) == 1;
        if (!seen) {
            resp_free(&r);
            usleep(20000);
        }
    }
    cr_assert_eq(r.status, 200, "%.300s", r.raw);
    cr_assert(strstr(r.raw, "Content-Type: text/plain; version=0.0.4"), "%.300s", r.raw);
    cr_assert_eq(metric(r.body, in_tls), 1, "%s", r.body);
    cr_assert_eq(metric(r.body, "clink_connections{direction=\"in\",state=\"open\",mode=\"plain\"}"), 1);
    cr_assert_eq(metric(r.body, in_other), 0);
    cr_assert_eq(metric(r.body, "clink_plaintext_links"), 1);
    cr_assert_eq(metric(r.body, "clink_secure_transport{state=\"PREFER_TLS\"}"), 1);
    double own = metric(r.body, "clink_cert_expiry_seconds{use=\"node\",kind=\"own\"");
    cr_assert(own > 364 * 86400.0 && own <= 365 * 86400.0, "own certificate expires in %g s", own);
    cr_assert(metric(r.body, "clink_cert_expiry_seconds{use=\"node\",kind=\"ca\"") > 0, "%s", r.body);
    cr_assert(metric(r.body, "clink_cert_expiry_seconds{use=\"peer\"") > 0, "the client's certificate is missing");
    cr_assert(metric(r.body, "clink_handshakes_total{result=\"full\"}") >= 1);
    resp_free(&r);

    get(ops_port, pki.ca, "/status", &r);
    cr_assert_eq(r.status, 200);
    cJSON *root = cJSON_Parse(r.body);
    cr_assert_not_null(root, "not JSON: %.300s", r.body);
    cJSON *links = cJSON_GetObjectItem(root, "links");
    cr_assert_eq(cJSON_GetArraySize(links), 2);
    int seen_tls = 0, seen_plain = 0;
    cJSON *l;
    cJSON_ArrayForEach(l, links)
    {
        const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(l, "mode"));
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "direction")), "in");
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "state")), "open");
        if (!strcmp(mode, tls_mode)) {
            seen_tls++;
            cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(l, "ktls_tx")) == (f.ktls != 0));
            cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "tls_version")), "TLSv1.3");
            cr_assert_str_neq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "cipher")), "");
            cr_assert_not_null(cJSON_GetStringValue(cJSON_GetObjectItem(l, "peer_cert_not_after")));
            cr_assert_not_null(cJSON_GetStringValue(cJSON_GetObjectItem(l, "local_cert_not_after")));
        } else {
            seen_plain++;
            cr_assert_str_eq(mode, "plain");
            cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "tls_version")), "");
        }
    }
    cr_assert(seen_tls == 1 && seen_plain == 1);
    cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "node"), "plaintext_links")), 1);
    cJSON_Delete(root);
    resp_free(&r);

    /* Calls fail by reason: the peer's handler refuses one (remote). */
    struct clink_msg m;
    cr_assert_eq(clink_call_sync(t, TS_FAIL, "x", 1, ts_ms(5000), &m), -CLINK_EREMOTE);
    clink_msg_free(&m);
    struct clink_node_stats cs;
    clink_node_get_stats(client, &cs);
    cr_assert(cs.calls_failed == 1 && cs.calls_failed_remote == 1 && cs.calls_failed_timeout == 0,
              "failed %llu, remote %llu", (unsigned long long)cs.calls_failed,
              (unsigned long long)cs.calls_failed_remote);
    get(ops_port, pki.ca, "/metrics", &r);
    cr_assert_eq(metric(r.body, "clink_calls_total{result=\"remote\"}"), 0, "the server made no call");
    resp_free(&r);

    /* The plaintext link closes: the count an operator waits on drops to 0. */
    clink_conn_close(p);
    int zero = 0;
    for (int i = 0; i < 200 && !zero; i++) {
        get(ops_port, pki.ca, "/metrics", &r);
        zero = metric(r.body, "clink_plaintext_links") == 0;
        resp_free(&r);
        usleep(20000);
    }
    cr_assert(zero, "clink_plaintext_links did not drop to 0 after the plaintext link closed");
    clink_conn_close(t);
}

Test(ops, expiry_gauge_follows_a_reload)
{
    struct resp r;
    get(ops_port, pki.ca, "/metrics", &r);
    double before = metric(r.body, "clink_cert_expiry_seconds{use=\"node\",kind=\"own\"");
    resp_free(&r);
    cr_assert(before > 300 * 86400.0);
    /* A renewed certificate that expires in 10 days, from the same CA. */
    char cert[300], key[300], err[256], cakey[300];
    ts_pki_path(&pki, "short.pem", cert, sizeof(cert));
    ts_pki_path(&pki, "short-key.pem", key, sizeof(key));
    ts_pki_path(&pki, "ca-key.pem", cakey, sizeof(cakey));
    const char *dns[] = {"localhost", NULL}, *ips[] = {"127.0.0.1", NULL};
    struct clink_cert_opts co = {.common_name = "short", .dns_names = dns, .ip_addrs = ips, .valid_for_s = 10 * 86400};
    cr_assert_eq(clink_cert_make_node(&co, pki.ca, cakey, cert, key, 1, err, sizeof(err)), 0, "%s", err);
    struct clink_tls_ctx *renewed = ts_tls(cert, key, pki.ca);
    cr_assert_eq(clink_node_reload_tls(server, renewed), 0);
    clink_tls_ctx_free(renewed);
    get(ops_port, pki.ca, "/metrics", &r);
    double after = metric(r.body, "clink_cert_expiry_seconds{use=\"node\",kind=\"own\"");
    cr_assert(after < 10 * 86400.0 + 120 && after > 9 * 86400.0, "after the reload: %g s", after);
    cr_assert_eq(metric(r.body, "clink_tls_reloads_total"), 1);
    resp_free(&r);
    /* The page highlights it (under 30 days). */
    get(ops_port, pki.ca, "/", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "<tr class=\"cert expiring\"><td>node</td><td>own</td><td>CN=short"), "%s", r.body);
    resp_free(&r);
    /* The HTTPS port's certificate is reloaded on its own. */
    struct clink_tls_ctx *h = NULL;
    struct clink_tls_opts ho = {.cert_file = cert, .key_file = key, .ca_file = pki.ca};
    cr_assert_eq(clink_tls_ctx_new_https(&ho, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_node_reload_https(server, h), 0);
    clink_tls_ctx_free(h);
    get(ops_port, pki.ca, "/metrics", &r);
    double https_own = metric(r.body, "clink_cert_expiry_seconds{use=\"https\",kind=\"own\"");
    cr_assert(https_own < 10 * 86400.0 + 120, "the HTTPS port's certificate: %g s", https_own);
    resp_free(&r);
}

static void post(const char *path, const char *auth, const char *type, const char *body, struct resp *r)
{
    char req[1024];
    char authz[256] = "";
    if (auth != NULL) {
        unsigned char b64[200];
        EVP_EncodeBlock(b64, (const unsigned char *)auth, (int)strlen(auth));
        snprintf(authz, sizeof(authz), "Authorization: Basic %s\r\n", b64);
    }
    snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: localhost\r\n%s%s%s%sContent-Length: %zu\r\n\r\n%s", path,
             authz, type ? "Content-Type: " : "", type ? type : "", type ? "\r\n" : "", strlen(body), body);
    cr_assert_eq(https(ops_port, pki.ca, req, r), 0);
}

Test(ops, only_an_administrator_changes_anything)
{
    struct resp r;
    post("/reload", NULL, "application/json", "{}", &r);
    cr_assert_eq(r.status, 401, "%.300s", r.raw);
    cr_assert(strstr(r.raw, "WWW-Authenticate: Basic realm=\"clink ops\""));
    resp_free(&r);
    post("/reload", "admin:wrong", "application/json", "{}", &r);
    cr_assert_eq(r.status, 401);
    resp_free(&r);
    post("/reload", "viewer:look", "application/json", "{}", &r);
    cr_assert_eq(r.status, 403);
    resp_free(&r);
    /* A cross-site form could send this with the browser's cached credentials: refused for its type. */
    post("/reload", "admin:s3cret", "application/x-www-form-urlencoded", "a=b", &r);
    cr_assert_eq(r.status, 415);
    resp_free(&r);
    cr_assert_eq(atomic_load(&reloads), 0, "a refused request reloaded");
    /* Password guessing is throttled: a burst of wrong passwords ends in 429, before any is checked. */
    int throttled = 0, guesses = 0;
    for (; guesses < 40 && !throttled; guesses++) {
        post("/reload", "admin:guess", "application/json", "{}", &r);
        cr_assert(r.status == 401 || r.status == 429, "%d", r.status);
        throttled = r.status == 429;
        resp_free(&r);
    }
    /*
     * The accounts' throttle (auth/throttle.h): 10 failures free, one spent
     * above, then each adds 100 ms to the wait, so a guesser meets 429 (later
     * where guesses are slow, as in the kTLS VM's emulated CPU).
     */
    cr_assert(throttled && guesses >= 9, "no throttling after %d wrong passwords", guesses);
    usleep(4000 * 1000); /* the wait has passed: the right password is checked, and accepted */
    post("/reload", "admin:s3cret", "application/json", "{}", &r);
    cr_assert_eq(r.status, 200, "%.300s", r.raw);
    resp_free(&r);
    cr_assert_eq(atomic_load(&reloads), 1);
    get(ops_port, pki.ca, "/status", &r);
    cr_assert(strstr(r.body, "\"last_reload\":{") && strstr(r.body, "reloaded 1 time(s) (by 'admin'@'127.0.0.1')"),
              "%s", r.body);
    resp_free(&r);

    /* Transport security from HTTPS: REQUIRE_TLS closes the plaintext link, gracefully. */
    struct clink_conn *p = dial(CLINK_MODE_PLAIN);
    post("/secure-transport", "viewer:look", "application/json", "{\"state\":\"REQUIRE_TLS\"}", &r);
    cr_assert_eq(r.status, 403);
    resp_free(&r);
    post("/secure-transport", "admin:s3cret", "application/json", "{\"state\":\"SOMETHING\"}", &r);
    cr_assert_eq(r.status, 400);
    resp_free(&r);
    cr_assert_eq(clink_node_secure_transport(server), CLINK_SECURE_PREFER_TLS);
    post("/secure-transport", "admin:s3cret", "application/json", "{\"state\": \"REQUIRE_TLS\"}", &r);
    cr_assert_eq(r.status, 200, "%.300s", r.raw);
    resp_free(&r);
    cr_assert_eq(clink_node_secure_transport(server), CLINK_SECURE_REQUIRE_TLS);
    int closed = 0;
    for (int i = 0; i < 200 && !closed; i++) {
        closed = !clink_conn_is_open(p);
        usleep(10000);
    }
    cr_assert(closed, "the plaintext link stayed open under REQUIRE_TLS");
    clink_conn_close(p);
    struct clink_connect_opts co = {.host = "127.0.0.1", .port = clink_node_port(server), .mode = CLINK_MODE_PLAIN};
    struct clink_conn *c = NULL;
    char err[256];
    cr_assert_neq(clink_connect_sync(client, &co, &c, err, sizeof(err)), 0, "a plaintext dial was accepted");
}

/* The same client (without ALPN or SNI), writing its request one byte per TLS record. */
static int https_bytewise(uint16_t port, const char *ca, const char *request, struct resp *out)
{
    memset(out, 0, sizeof(*out));
    struct tls_peer_opts o = {.ca = ca, .host = "localhost"};
    struct tls_peer p;
    cr_assert_eq(tls_peer_new(&p, &o, ts_tcp_connect(port)), 0, "%s", p.err);
    cr_assert_eq(tls_peer_handshake(&p, tls_peer_now() + ts_ms(5000) / 1000.0), 0, "%s", p.err);
    for (size_t i = 0; request[i] != '\0'; i++) {
        cr_assert_eq(tls_peer_write(&p, request + i, 1), 0, "the node stopped reading at byte %zu", i);
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    tls_peer_read(&p, buf, cap - 1, &n, tls_peer_now() + ts_ms(5000) / 1000.0);
    buf[n] = '\0';
    out->raw = buf;
    out->status = sscanf(buf, "HTTP/1.1 %d", &out->status) == 1 ? out->status : -1;
    char *b = strstr(buf, "\r\n\r\n");
    out->body = b ? b + 4 : "";
    tls_peer_free(&p);
    return 0;
}

Test(ops, a_request_sent_one_byte_per_record_is_answered)
{
    /* About 6 KiB of head and a JSON body, one TLS record per byte (what a slow or hostile client may do). */
    char req[8192];
    int n = snprintf(req, sizeof(req), "POST /secure-transport HTTP/1.1\r\nHost: localhost\r\n");
    for (int i = 0; i < 100; i++) {
        n += snprintf(req + n, sizeof(req) - (size_t)n, "X-Filler-%02d: %050d\r\n", i, i);
    }
    const char *body = "{\"state\": \"ACCEPT_BOTH\"}";
    unsigned char b64[64];
    EVP_EncodeBlock(b64, (const unsigned char *)"admin:s3cret", 12);
    snprintf(req + n, sizeof(req) - (size_t)n,
             "Authorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", b64,
             strlen(body), body);
    struct resp r;
    https_bytewise(ops_port, pki.ca, req, &r);
    cr_assert_eq(r.status, 200, "%.300s", r.raw);
    resp_free(&r);
    cr_assert_eq(clink_node_secure_transport(server), CLINK_SECURE_ACCEPT_BOTH);
}

Test(ops, hostile_and_wrong_requests)
{
    /* Plain HTTP on the HTTPS port: told so, in HTTP. */
    int fd = ts_tcp_connect(ops_port);
    const char *plain = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, plain, strlen(plain)), (ssize_t)strlen(plain));
    char buf[512] = "";
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    cr_assert(n > 0 && strncmp(buf, "HTTP/1.1 400", 12) == 0, "%zd: %s", n, buf);
    close(fd);

    struct resp r;
    cr_assert_eq(https(ops_port, pki.ca, "BREW /pot HTTP/1.1\r\n\r\n", &r), 0);
    cr_assert(r.status == 405 || r.status == 501, "%d", r.status);
    resp_free(&r);
    cr_assert_eq(https(ops_port, pki.ca, "GET / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n", &r),
                 0);
    cr_assert_eq(r.status, 501);
    resp_free(&r);
    get(ops_port, pki.ca, "/nope", &r);
    cr_assert_eq(r.status, 404);
    resp_free(&r);
    cr_assert_eq(https(ops_port, pki.ca, "HEAD /nope HTTP/1.1\r\nHost: localhost\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(r.body, "", "HEAD of a 404 answered with a body");
    resp_free(&r);
    cr_assert_eq(https(ops_port, pki.ca, "PUT / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 405);
    cr_assert(strstr(r.raw, "\r\nAllow: GET, HEAD, POST\r\n"), "%s", r.raw);
    resp_free(&r);
    cr_assert_eq(https(ops_port, pki.ca, "HEAD /status HTTP/1.1\r\nHost: localhost\r\n\r\n", &r), 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "", "HEAD answered with a body");
    resp_free(&r);
    /* A client that trusts another CA refuses the page: the certificate is checked, never waved through. */
    cr_assert_eq(https(ops_port, pki.other_ca, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", &r), -1);
    /* The node still serves. */
    get(ops_port, pki.ca, "/", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, "<span id=\"node-name\">leaf-under-test</span>"));
    resp_free(&r);
    struct clink_node_stats st;
    clink_node_get_stats(server, &st);
    cr_assert(st.https_requests >= 3, "%llu", (unsigned long long)st.https_requests);
    cr_assert(st.https_refused >= 3, "%llu", (unsigned long long)st.https_refused);
    cr_assert_eq(st.conns_refused, 0, "HTTPS exchanges counted as refused links");
}

static void get_as(const char *path, const char *auth, struct resp *r)
{
    char req[768], authz[256] = "";
    if (auth != NULL) {
        unsigned char b64[200];
        EVP_EncodeBlock(b64, (const unsigned char *)auth, (int)strlen(auth));
        snprintf(authz, sizeof(authz), "Authorization: Basic %s\r\n", b64);
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n", path, authz);
    cr_assert_eq(https(ops_port, pki.ca, req, r), 0);
}

/* The one inbound link of /status, [out] its peer, account and client certificate subject. */
static void inbound(const struct resp *r, char *peer, char *account, char *subject)
{
    cJSON *root = cJSON_Parse(r->body);
    cr_assert_not_null(root, "not JSON: %.300s", r->body);
    cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "links"), 0);
    cr_assert_not_null(l);
    cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(l, "direction")), "in");
    snprintf(peer, 64, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(l, "peer")));
    snprintf(account, 160, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(l, "account")));
    snprintf(subject, 256, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(l, "peer_subject")));
    cJSON_Delete(root);
}

/* Issue 17: GET /status showed every logged-in client's address, account and certificate to anyone. */
Test(ops, who_is_connected_is_shown_to_administrators_only)
{
    struct clink_conn *t = dial(CLINK_MODE_TLS);
    struct resp r;
    char peer[64], account[160], subject[256];

    get_as("/status", "admin:s3cret", &r);
    cr_assert_eq(r.status, 200, "%.300s", r.raw);
    inbound(&r, peer, account, subject);
    cr_assert(strncmp(peer, "127.0.0.1:", 10) == 0, "%s", peer);
    cr_assert_str_neq(subject, "");
    resp_free(&r);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", peer);
    get_as("/?full=1", "admin:s3cret", &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, addr) != NULL, "the administrator's page lacks the client %s", addr);
    resp_free(&r);

    get_as("/status", NULL, &r);
    cr_assert_eq(r.status, 200, "%.300s", r.raw);
    inbound(&r, peer, account, subject);
    cr_assert_str_eq(peer, "-");
    cr_assert_str_eq(subject, "");
    resp_free(&r);
    get_as("/", NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body, addr) == NULL, "the page shows the client's address %s to anyone", addr);
    resp_free(&r);

    /* Asking for it prompts a login; a wrong one or one without grant ALL gets nothing. */
    get_as("/?full=1", NULL, &r);
    cr_assert_eq(r.status, 401);
    cr_assert(strstr(r.raw, "WWW-Authenticate: Basic realm=\"clink ops\""));
    resp_free(&r);
    get_as("/status", "admin:wrong", &r);
    cr_assert_eq(r.status, 401);
    resp_free(&r);
    get_as("/status", "viewer:look", &r);
    cr_assert_eq(r.status, 403);
    resp_free(&r);
    get_as("/metrics", "admin:wrong", &r);
    cr_assert_eq(r.status, 200, "metrics name no client: credentials are not looked at");
    resp_free(&r);
    clink_conn_close(t);
}

/*
 * Issue 17: a guesser locks every password login of an account out for a
 * while (the accounts' throttle), the administrator included; a client
 * certificate logs an operator in all the same, since nothing in it can be
 * guessed. A certificate from another CA logs nobody in.
 */
Test(ops, a_certificate_logs_an_operator_in_while_passwords_are_throttled)
{
    char err[256], subject[256], require[300];
    FILE *f = fopen(pki.node_cert, "r");
    cr_assert_not_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    cr_assert_not_null(x);
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    X509_free(x);
    snprintf(require, sizeof(require), "SUBJECT '%s'", subject);
    struct clink_account_spec certadmin = {.user = "certadmin", .require = require, .grant = "ALL"};
    cr_assert_eq(clink_accounts_add(acc, &certadmin, err, sizeof(err)), 0, "%s", err);

    /* Waits that outlast this test (the default's first ones are 100 ms, shorter than a request here). */
    struct clink_login_throttle slow = {.delay_step_ms = 60000};
    cr_assert_eq(clink_accounts_set_throttle(acc, &slow), 0);
    struct resp r;
    int throttled = 0;
    for (int i = 0; i < 60 && !throttled; i++) {
        post("/reload", "admin:guess", "application/json", "{}", &r);
        throttled = r.status == 429;
        resp_free(&r);
    }
    cr_assert(throttled, "no 429 after 60 wrong passwords");
    post("/reload", "admin:s3cret", "application/json", "{}", &r);
    cr_assert_eq(r.status, 429, "the right password was checked while the account had to wait: %d", r.status);
    resp_free(&r);

    /* No certificate: the password-less account is nobody. */
    post("/reload", "certadmin:", "application/json", "{}", &r);
    cr_assert_eq(r.status, 401, "%.300s", r.raw);
    resp_free(&r);
    /* A certificate from another CA (same subject): not verified, not used. */
    https_cert = pki.other_cert;
    https_key = pki.other_key;
    post("/reload", "certadmin:", "application/json", "{}", &r);
    cr_assert_eq(r.status, 401, "%.300s", r.raw);
    resp_free(&r);
    /* The cluster's certificate: in, while passwords still wait. */
    https_cert = pki.node_cert;
    https_key = pki.node_key;
    post("/reload", "certadmin:", "application/json", "{}", &r);
    cr_assert_eq(r.status, 200, "%.300s", r.raw);
    resp_free(&r);
    cr_assert_eq(atomic_load(&reloads), 1);

    get(ops_port, pki.ca, "/metrics", &r);
    cr_assert_geq(metric(r.body, "clink_logins_throttled_total "), 1, "%.2000s", r.body);
    cr_assert_geq(metric(r.body, "clink_login_failures_total "), 10);
    cr_assert_eq(metric(r.body, "clink_sessions_refused_total{limit=\"max_connections\"} "), 0, "%.3000s", r.body);
    cr_assert_geq(metric(r.body, "clink_client_sessions "), 0);
    resp_free(&r);
    get(ops_port, pki.ca, "/status", &r);
    cr_assert(strstr(r.body, "\"logins_throttled\":") && strstr(r.body, "\"client_sessions\":"), "%.2000s", r.body);
    resp_free(&r);
}
