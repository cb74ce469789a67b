/*
 * The server layer on real sockets: leaves and an aggregator built from
 * config files, a handler that fans out without blocking its worker, the
 * reload report (changed, applied live, needs a restart), a bad reload that
 * keeps what runs, a clean stop, the certificate warnings logged at start
 * and at each reload, and the produce stream method (clink/methods.h).
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clink/methods.h"
#include "clink/server.h"
#include "clink/stream.h"
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

TestSuite(server, .init = setup, .fini = teardown, .timeout = 60);

static void write_file(const char *name, const char *text)
{
    char path[512];
    ts_pki_path(&pki, name, path, sizeof(path));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(path, 0600), 0);
}

/* [server] with the test PKI, on any port, one worker; extra lines after it (keys given there win, or sections). */
static void write_config(const char *name, const char *extra)
{
    char text[4096], lines[2048];
    snprintf(lines, sizeof(lines), "\n%s", extra); /* a key at a line's start, in [server] (before any section) */
    char *section = strstr(lines, "\n[");
    if (section != NULL) {
        *section = '\0';
    }
    snprintf(text, sizeof(text), "[server]\nssl_cert = node.pem\nssl_ca = ca.pem\n%s%s%s%s",
             strstr(lines, "\nssl_key") ? "" : "ssl_key = node-key.pem\n", strstr(lines, "\nport") ? "" : "port = 0\n",
             strstr(lines, "\nworkers") ? "" : "workers = 1\n", extra);
    write_file(name, text);
}

static struct clink_server *server_from(const char *name, const struct clink_server_opts *o)
{
    char path[512], err[512] = "";
    ts_pki_path(&pki, name, path, sizeof(path));
    struct clink_server *srv = NULL;
    int ret = clink_server_new_from_config(path, o, &srv, err, sizeof(err));
    cr_assert_eq(ret, 0, "%s: %s (%s)", name, err, clink_strerror(ret));
    return srv;
}

static void start(struct clink_server *srv)
{
    char err[512] = "";
    cr_assert_eq(clink_server_start(srv, err, sizeof(err)), 0, "%s", err);
}

/* A client node and a verified connection to port. */
struct client {
    struct clink_tls_ctx *tls;
    struct clink_node *node;
    struct clink_conn *conn;
};

static int client_open_as(struct client *c, uint16_t port, const char *user)
{
    c->tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    c->node = ts_client(c->tls, 1, 0);
    struct clink_connect_opts co = {.host = "127.0.0.1", .port = port, .expected_name = "localhost", .user = user};
    return clink_connect_sync(c->node, &co, &c->conn, NULL, 0);
}

static int client_open(struct client *c, uint16_t port)
{
    return client_open_as(c, port, NULL);
}

static void client_close(struct client *c)
{
    if (c->conn != NULL) {
        clink_conn_close(c->conn);
    }
    clink_node_free(c->node);
    clink_tls_ctx_free(c->tls);
}

/* ---- the aggregator's query, from a handler ---- */

#define METHOD_QUERY 100

static atomic_int handler_returned, done_ran, done_saw_handler_returned;

/* Runs where the last leaf's answer arrived: with one worker, the handler's own worker, after it returned. */
static void query_done(const struct clink_fanout_result *r, size_t n, void *user)
{
    struct clink_req *req = user;
    atomic_fetch_add(&done_ran, 1);
    atomic_store(&done_saw_handler_returned, atomic_load(&handler_returned));
    char text[512];
    size_t len = (size_t)snprintf(text, sizeof(text), "%zu:", n);
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(text + len, sizeof(text) - len, " %s=%d/%.*s", r[i].peer, r[i].status,
                                (int)r[i].msg.len, r[i].msg.data ? (const char *)r[i].msg.data : "");
    }
    struct iovec iov = {.iov_base = text, .iov_len = len};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

static void query(struct clink_req *req, void *user)
{
    atomic_store(&handler_returned, 0); /* per request: a retried call must not see the last one's 1 */
    size_t len;
    const uint8_t *data = clink_req_data(req, &len);
    int ret = clink_cluster_fanout_start(clink_server_cluster(user), CLINK_ROLE_LEAF, NULL, CLINK_TOOL_ECHO, data, len,
                                         ts_ms(5000), query_done, req);
    if (ret < 0) {
        CLINK_IGNORE(clink_req_fail(req, clink_strerror(ret)));
    }
    atomic_store(&handler_returned, 1);
}

/* A call that may meet pools still dialling: retried for a while. */
static int call_until_ok(struct clink_conn *c, uint16_t method, const char *req, struct clink_msg *resp)
{
    int ret = -1;
    for (int i = 0; i < 100 && ret != 0; i++) {
        ret = clink_call_sync(c, method, req, strlen(req), ts_ms(5000), resp);
        if (ret != 0) {
            clink_msg_free(resp);
            usleep(20000);
        }
    }
    return ret;
}

Test(server, an_aggregator_fans_out_to_its_leaves_from_a_handler_without_blocking)
{
    struct clink_server_opts leaf_opts = {.tool_methods = 1};
    write_config("leaf1.cnf", "ops = OFF\nname = leaf1\n");
    write_config("leaf2.cnf", "ops = OFF\nname = leaf2\n");
    struct clink_server *leaf1 = server_from("leaf1.cnf", &leaf_opts);
    struct clink_server *leaf2 = server_from("leaf2.cnf", &leaf_opts);
    start(leaf1);
    start(leaf2);
    char peers[1024];
    snprintf(peers, sizeof(peers),
             "ops = OFF\n[leaf leaf1]\nhost = 127.0.0.1\nport = %u\nssl_server_name = localhost\n"
             "[leaf leaf2]\nhost = 127.0.0.1\nport = %u\nssl_server_name = localhost\n",
             clink_server_port(leaf1), clink_server_port(leaf2));
    write_config("agg.cnf", peers);
    /* One worker: a handler that waited for the leaves would wait for itself, and the call would time out. */
    struct clink_server_opts agg_opts = {.tool_methods = 1, .workers = 1};
    struct clink_server *agg = server_from("agg.cnf", &agg_opts);
    cr_assert_eq(clink_server_register(agg, METHOD_QUERY, query, agg), 0);
    start(agg);
    cr_assert_not_null(clink_server_cluster(agg));
    struct client c = {0};
    cr_assert_eq(client_open(&c, clink_server_port(agg)), 0);
    struct clink_msg resp = {0};

    int ret = call_until_ok(c.conn, METHOD_QUERY, "q1", &resp);

    cr_assert_eq(ret, 0, "%s: %.*s", clink_strerror(ret), (int)resp.len, (const char *)resp.data);
    cr_assert_eq(resp.len, strlen("2: leaf1=0/q1 leaf2=0/q1"));
    cr_assert_eq(memcmp(resp.data, "2: leaf1=0/q1 leaf2=0/q1", resp.len), 0, "%.*s", (int)resp.len, resp.data);
    cr_assert_geq(atomic_load(&done_ran), 1);
    cr_assert_eq(atomic_load(&done_saw_handler_returned), 1, "the callback ran after the handler returned");
    clink_msg_free(&resp);
    /* clink-node's fan-out method, on the same call. */
    cr_assert_eq(clink_call_sync(c.conn, CLINK_TOOL_FANOUT, "q2", 2, ts_ms(5000), &resp), 0);
    cr_assert_eq(resp.len, 2);
    cr_assert_eq(memcmp(resp.data, "q2", 2), 0);
    clink_msg_free(&resp);

    /* A leaf gone: the query still answers, naming it, within the deadline. */
    clink_server_free(leaf2);
    int failed = 0;
    for (int i = 0; i < 100 && !failed; i++) {
        cr_assert_eq(clink_call_sync(c.conn, METHOD_QUERY, "q3", 2, ts_ms(10000), &resp), 0);
        failed = memmem(resp.data, resp.len, "leaf2=-", 7) != NULL;
        clink_msg_free(&resp);
    }
    cr_assert(failed, "leaf2's failure is in the results");
    client_close(&c);
    clink_server_free(agg);
    clink_server_free(leaf1);
}

static atomic_int cb_runs;
static _Thread_local int in_start;
static atomic_int cb_inside_start;

static void count_done(const struct clink_fanout_result *r, size_t n, void *user)
{
    (void)r;
    (void)user;
    atomic_store(&cb_inside_start, in_start);
    cr_assert_eq(n, 0);
    atomic_fetch_add(&cb_runs, 1);
}

Test(server, a_fanout_to_no_peer_completes_later_not_inside_its_start)
{
    write_config("n.cnf", "ops = OFF\n");
    struct clink_server *srv = server_from("n.cnf", NULL);
    start(srv);
    struct clink_cluster_opts co = {.node = clink_server_node(srv)};
    struct clink_cluster *cl = NULL;
    cr_assert_eq(clink_cluster_new(&co, &cl), 0);

    in_start = 1;
    int ret = clink_cluster_fanout_start(cl, CLINK_ROLE_LEAF, NULL, CLINK_TOOL_ECHO, "x", 1, 1000, count_done, NULL);
    int runs_during_start = atomic_load(&cb_runs);
    in_start = 0;

    cr_assert_eq(ret, 0);
    cr_assert_eq(runs_during_start, 0);
    for (int i = 0; i < 200 && atomic_load(&cb_runs) == 0; i++) {
        usleep(5000);
    }
    cr_assert_eq(atomic_load(&cb_runs), 1);
    cr_assert_eq(atomic_load(&cb_inside_start), 0);
    cr_assert_eq(clink_cluster_fanout_start(cl, CLINK_ROLE_LEAF, NULL, 1, NULL, 0, 0, NULL, NULL), -CLINK_EINVAL);
    clink_cluster_free(cl);
    clink_server_free(srv);
}

/* ---- reload ---- */

Test(server, reload_says_what_changed_what_applied_live_and_what_needs_a_restart)
{
    write_file("acc.cnf", "[root@%]\nrequire = X509\n");
    write_config("r.cnf", "ops_port = 0\naccounts_file = acc.cnf\n");
    struct clink_server *srv = server_from("r.cnf", NULL);
    start(srv);
    uint16_t port = clink_server_port(srv);
    cr_assert_neq(clink_server_ops_port(srv), 0);
    struct clink_server_report rep;

    cr_assert_eq(clink_server_reload(srv, &rep), 0, "%s", rep.text);

    cr_assert_eq(rep.changed, 0, "nothing changed: %x", rep.changed);
    cr_assert_eq(rep.restart, 0);
    cr_assert_eq(rep.applied & (CLINK_SERVER_TLS | CLINK_SERVER_HTTPS | CLINK_SERVER_ACCOUNTS),
                 CLINK_SERVER_TLS | CLINK_SERVER_HTTPS | CLINK_SERVER_ACCOUNTS, "credentials are re-read");
    cr_assert_not_null(strstr(rep.text, "1 account(s)"), "%s", rep.text);

    /* The port, the workers, an account and the throttle change. */
    write_file("acc.cnf", "[root@%]\nrequire = X509\n\n[ops@127.0.0.1]\nrequire = X509\n");
    write_config("r.cnf", "ops_port = 0\naccounts_file = acc.cnf\nworkers = 2\nport = 1\n"
                          "connection_control_failed_connections_threshold = 3\n");

    cr_assert_eq(clink_server_reload(srv, &rep), 0, "%s", rep.text);

    cr_assert_eq(rep.restart, CLINK_SERVER_LISTEN | CLINK_SERVER_WORKERS, "%x: %s", rep.restart, rep.text);
    cr_assert_eq(rep.changed, CLINK_SERVER_LISTEN | CLINK_SERVER_WORKERS | CLINK_SERVER_THROTTLE, "%x", rep.changed);
    cr_assert(rep.applied & CLINK_SERVER_ACCOUNTS);
    cr_assert(rep.applied & CLINK_SERVER_THROTTLE);
    cr_assert_not_null(strstr(rep.text, "2 account(s)"), "%s", rep.text);
    cr_assert_not_null(strstr(rep.text, "applied at the next restart: bind_address/port; workers."), "%s", rep.text);
    cr_assert_eq(clink_accounts_count(clink_server_accounts(srv)), 2);
    cr_assert_eq(clink_server_port(srv), port, "still on the port it bound");
    struct client c = {0};
    cr_assert_eq(client_open_as(&c, port, "ops"), 0, "the new account logs in");
    client_close(&c);
    clink_server_free(srv);
}

Test(server, a_bad_reload_keeps_everything_in_use_and_says_why)
{
    write_config("b.cnf", "ops = OFF\n");
    struct clink_server_opts o = {.tool_methods = 1};
    struct clink_server *srv = server_from("b.cnf", &o);
    start(srv);
    struct clink_server_report rep;
    /* A key that does not match the certificate: TLS fails, and with it the whole reload. */
    write_config("b.cnf", "ops = OFF\nssl_key = other-key.pem\nrequire_secure_transport = ACCEPT_BOTH\n");

    int ret = clink_server_reload(srv, &rep);

    cr_assert_lt(ret, 0);
    cr_assert_eq(rep.status, ret);
    cr_assert_eq(rep.applied, 0);
    cr_assert_eq(strncmp(rep.why, "TLS: ", 5), 0, "%s", rep.why);
    cr_assert_not_null(strstr(rep.text, "keeping the credentials in use"), "%s", rep.text);
    cr_assert_not_null(strstr(rep.text, "Nothing was changed."), "%s", rep.text);
    cr_assert_eq(clink_node_secure_transport(clink_server_node(srv)), CLINK_SECURE_REQUIRE_TLS,
                 "the state did not move either");

    /* A file that does not parse. */
    write_config("b.cnf", "ops = OFF\nno_such_key = 1\n");

    ret = clink_server_reload(srv, &rep);

    cr_assert_eq(ret, -CLINK_ECONFIG);
    cr_assert_eq(strncmp(rep.why, "config: ", 8), 0, "%s", rep.why);
    cr_assert_not_null(strstr(rep.why, "no_such_key"), "%s", rep.why);
    struct client c = {0};
    cr_assert_eq(client_open(&c, clink_server_port(srv)), 0, "still serving");
    struct clink_msg resp;
    cr_assert_eq(clink_call_sync(c.conn, CLINK_TOOL_ECHO, "hi", 2, ts_ms(5000), &resp), 0);
    clink_msg_free(&resp);
    client_close(&c);
    clink_server_free(srv);
}

static atomic_int reload_on_worker = 1;

static void reload_here(struct clink_req *req, void *srv)
{
    struct clink_server_report rep;
    atomic_store(&reload_on_worker, clink_server_reload(srv, &rep));
    CLINK_IGNORE(clink_req_respond(req, NULL, 0));
}

Test(server, a_reload_on_a_worker_is_refused_at_once)
{
    write_config("w.cnf", "ops = OFF\n");
    struct clink_server *srv = server_from("w.cnf", NULL);
    cr_assert_eq(clink_server_register(srv, 101, reload_here, srv), 0);
    start(srv);
    struct client c = {0};
    cr_assert_eq(client_open(&c, clink_server_port(srv)), 0);
    struct clink_msg resp;

    cr_assert_eq(clink_call_sync(c.conn, 101, "", 0, ts_ms(5000), &resp), 0);

    cr_assert_eq(atomic_load(&reload_on_worker), -CLINK_EWOULDBLOCK);
    clink_msg_free(&resp);
    client_close(&c);
    clink_server_free(srv);
}

Test(server, a_plaintext_node_gains_its_identity_by_reload)
{
    write_file("p.cnf", "[server]\nrequire_secure_transport = PLAINTEXT\nport = 0\nworkers = 1\nops_port = 0\n");
    struct clink_server *srv = server_from("p.cnf", NULL);
    start(srv);
    cr_assert_eq(clink_server_ops_port(srv), 0, "no certificate yet: no HTTPS endpoint");
    cr_assert_eq(clink_node_secure_transport(clink_server_node(srv)), CLINK_SECURE_PLAINTEXT);
    write_config("p.cnf", "require_secure_transport = ACCEPT_BOTH\nops_port = 0\n");
    struct clink_server_report rep;

    cr_assert_eq(clink_server_reload(srv, &rep), 0, "%s", rep.text);

    cr_assert(rep.applied & CLINK_SERVER_TLS);
    cr_assert(rep.applied & CLINK_SERVER_SECURITY, "%s", rep.text);
    cr_assert(rep.restart & CLINK_SERVER_OPS, "the endpoint comes with a restart: %s", rep.text);
    cr_assert_eq(clink_node_secure_transport(clink_server_node(srv)), CLINK_SECURE_ACCEPT_BOTH);
    struct client c = {0};
    cr_assert_eq(client_open(&c, clink_server_port(srv)), 0, "TLS now");
    client_close(&c);
    clink_server_free(srv);
}

/* ---- building and stopping ---- */

Test(server, a_bad_file_fails_closed_with_one_message)
{
    write_config("bad.cnf", "ops = OFF\nssl_key = other-key.pem\n");
    char path[512], err[512] = "";
    ts_pki_path(&pki, "bad.cnf", path, sizeof(path));
    struct clink_server *srv = (struct clink_server *)&pki; /* not NULL: the call must clear it */

    int ret = clink_server_new_from_config(path, NULL, &srv, err, sizeof(err));

    cr_assert_lt(ret, 0);
    cr_assert_null(srv);
    cr_assert_eq(strncmp(err, "TLS configuration: ", 19), 0, "%s", err);
    cr_assert_eq(clink_server_new_from_config(NULL, NULL, &srv, err, sizeof(err)), -CLINK_EINVAL);
}

Test(server, options_alone_build_a_node_and_stop_is_clean)
{
    struct clink_server_opts o = clink_server_opts_default;
    o.listen = "127.0.0.1:0";
    o.cert_file = pki.node_cert;
    o.key_file = pki.node_key;
    o.ca_file = pki.ca;
    o.ops = CLINK_SERVER_OFF;
    o.workers = 2;
    o.tool_methods = 1;
    char err[512] = "";
    struct clink_server *srv = NULL;
    cr_assert_eq(clink_server_new(&o, &srv, err, sizeof(err)), 0, "%s", err);
    start(srv);
    cr_assert_eq(clink_node_workers(clink_server_node(srv)), 2);
    cr_assert_null(clink_server_cluster(srv), "no peers: no cluster");
    char text[1024];
    cr_assert_gt(clink_server_describe(srv, text, sizeof(text)), 0);
    cr_assert_not_null(strstr(text, "2 workers, transport security REQUIRE_TLS"), "%s", text);
    struct client c = {0};
    cr_assert_eq(client_open(&c, clink_server_port(srv)), 0);
    struct clink_msg resp;
    cr_assert_eq(clink_call_sync(c.conn, CLINK_TOOL_ECHO, "hi", 2, ts_ms(5000), &resp), 0);
    clink_msg_free(&resp);

    clink_server_stop(srv);

    struct clink_node_stats s;
    clink_node_get_stats(clink_server_node(srv), &s);
    cr_assert_geq(s.requests_handled, 1);
    cr_assert_neq(clink_call_sync(c.conn, CLINK_TOOL_ECHO, "hi", 2, ts_ms(2000), &resp), 0, "the node is gone");
    struct clink_server_report rep;
    cr_assert_eq(clink_server_reload(srv, &rep), -CLINK_ESHUTDOWN);
    clink_server_stop(srv); /* once is enough; twice is harmless */
    client_close(&c);
    clink_server_free(srv);
}

/* ---- the produce stream (clink/methods.h), which clink-bench's stream scenarios call ---- */

struct produced {
    uint64_t got, msgs, bad;
    size_t last_len;
    atomic_int ended;
    int status;
};

static void produced_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct produced *p = user;
    for (size_t k = 0; k < len; k++) {
        p->bad += data[k] != (uint8_t)k;
    }
    p->got += len;
    p->msgs++;
    p->last_len = len;
}

static void produced_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)msg, (void)len;
    struct produced *p = user;
    p->status = status;
    atomic_store(&p->ended, 1);
}

static int produce(struct clink_conn *c, struct produced *p, uint64_t total, uint32_t msg)
{
    uint8_t req[CLINK_TOOL_PRODUCE_LEN];
    clink_tool_produce_req(req, total, msg);
    struct iovec iov = {.iov_base = req, .iov_len = sizeof(req)};
    struct clink_stream_open_opts o = {.method = CLINK_TOOL_PRODUCE,
                                       .iov = &iov,
                                       .iovcnt = 1,
                                       .end = 1,
                                       .timeout_ms = ts_ms(30000),
                                       .cbs = {.on_msg = produced_msg, .on_end = produced_end},
                                       .user = p};
    struct clink_stream *s;
    int ret = clink_stream_open(c, &o, &s);
    for (int i = 0; ret == 0 && i < 3000 && !atomic_load(&p->ended); i++) {
        usleep(10000);
    }
    return ret;
}

Test(server, the_produce_method_streams_what_was_asked_in_whole_messages)
{
    struct clink_server_opts o = clink_server_opts_default;
    o.listen = "127.0.0.1:0";
    o.cert_file = pki.node_cert;
    o.key_file = pki.node_key;
    o.ca_file = pki.ca;
    o.ops = CLINK_SERVER_OFF;
    o.workers = 1;
    o.tool_methods = 1;
    char err[512] = "";
    struct clink_server *srv = NULL;
    cr_assert_eq(clink_server_new(&o, &srv, err, sizeof(err)), 0, "%s", err);
    start(srv);
    struct client c = {0};
    cr_assert_eq(client_open(&c, clink_server_port(srv)), 0);

    /* 8 MiB and 100 bytes in 64 KiB messages: more than the stream window, and a short last message. */
    struct produced p = {0};
    cr_assert_eq(produce(c.conn, &p, (8u << 20) + 100, 65536), 0);
    cr_assert(atomic_load(&p.ended), "the stream did not end");
    cr_assert_eq(p.status, 0, "%s", clink_strerror(p.status));
    cr_assert_eq(p.got, (8u << 20) + 100);
    cr_assert_eq(p.msgs, 129);
    cr_assert_eq(p.last_len, 100);
    cr_assert_eq(p.bad, 0, "a byte differed");

    /* Nothing asked: the stream just ends. A message size of 0 fails it, with the reason. */
    struct produced none = {0}, bad = {0};
    cr_assert_eq(produce(c.conn, &none, 0, 65536), 0);
    cr_assert(atomic_load(&none.ended));
    cr_assert_eq(none.status, 0, "%s", clink_strerror(none.status));
    cr_assert_eq(none.got, 0);
    cr_assert_eq(produce(c.conn, &bad, 1000, 0), 0);
    cr_assert(atomic_load(&bad.ended));
    cr_assert_eq(bad.status, -CLINK_EREMOTE, "%s", clink_strerror(bad.status));

    client_close(&c);
    clink_server_free(srv);
}

static atomic_int cert_warnings;

static void count_cert_warnings(void *user, enum clink_log_level level, const char *module, uint64_t conn_id,
                                const char *fmt, va_list ap)
{
    (void)user, (void)module, (void)conn_id;
    char line[2048];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (level == CLINK_LOG_WARN && strstr(line, "own certificate CN=soon") != NULL &&
        strstr(line, "expires in 9 days") != NULL && strstr(line, "clink-certs node") != NULL) {
        atomic_fetch_add(&cert_warnings, 1);
    }
}

Test(server, weak_certificates_are_warned_about_at_start_and_at_each_reload)
{
    static const char *dns[] = {"localhost", NULL};
    static const char *ips[] = {"127.0.0.1", NULL};
    struct clink_cert_opts soon = {.common_name = "soon", .dns_names = dns, .ip_addrs = ips, .valid_for_s = 10 * 86400};
    char ca_key[512], cert[512], key[512], err[256];
    ts_pki_path(&pki, "ca-key.pem", ca_key, sizeof(ca_key));
    ts_pki_path(&pki, "soon.pem", cert, sizeof(cert));
    ts_pki_path(&pki, "soon-key.pem", key, sizeof(key));
    cr_assert_eq(clink_cert_make_node(&soon, pki.ca, ca_key, cert, key, 0, err, sizeof(err)), 0, "%s", err);
    write_file("w.cnf",
               "[server]\nssl_cert = soon.pem\nssl_key = soon-key.pem\nssl_ca = ca.pem\nport = 0\nworkers = 1\n"
               "ops = OFF\n");
    struct clink_server_opts o = {.log = count_cert_warnings};

    struct clink_server *srv = server_from("w.cnf", &o);
    start(srv);
    cr_assert_eq(atomic_load(&cert_warnings), 1, "once at start");
    struct clink_server_report rep;
    cr_assert_eq(clink_server_reload(srv, &rep), 0, "%s", rep.text);
    cr_assert_eq(atomic_load(&cert_warnings), 2, "once more at the reload");
    clink_server_free(srv);
}
