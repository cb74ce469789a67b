/*
 * An outside program's aggregator (consumer_aggregator CONFIG), on the installed clink only: a node from a
 * memsql.cnf-style file with [leaf NAME] sections. Its method 100 asks every leaf (method 1) from the handler, without
 * blocking the worker, and answers "N: reply ..." once all have answered. It asks itself once, prints, and exits.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include <clink/clink.h>

static void done(const struct clink_fanout_result *r, size_t n, void *req)
{
    char text[1024];
    int len = snprintf(text, sizeof(text), "%zu:", n);
    for (size_t i = 0; i < n && len < (int)sizeof(text); i++) {
        len += snprintf(text + len, sizeof(text) - (size_t)len, " %.*s", r[i].status ? 6 : (int)r[i].msg.len,
                        r[i].status ? "FAILED" : (const char *)r[i].msg.data);
    }
    struct iovec iov = {.iov_base = text, .iov_len = strlen(text)};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1)); /* from any thread: handed to the request's worker */
}

static void query(struct clink_req *req, void *srv)
{
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    if (clink_cluster_fanout_start(clink_server_cluster(srv), CLINK_ROLE_LEAF, NULL, 1, p, n, 5000, done, req) < 0) {
        CLINK_IGNORE(clink_req_fail(req, "fan-out refused"));
    }
}

int main(int argc, char **argv)
{
    struct clink_server *srv = NULL;
    char err[512] = "", answer[1024] = "";
    if (argc < 2 || clink_server_new_from_config(argv[1], NULL, &srv, err, sizeof(err)) < 0 ||
        clink_server_register(srv, 100, query, srv) < 0 || clink_server_start(srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "consumer_aggregator: %s\n", argc < 2 ? "usage: consumer_aggregator CONFIG" : err);
        clink_server_free(srv);
        return 1;
    }
    struct clink_connect_opts co = {.host = "127.0.0.1", .port = clink_server_port(srv), .expected_name = "localhost"};
    struct clink_conn *c = NULL;
    struct clink_msg m = {0};
    int ok = 0; /* the pools may still be dialling: a few tries */
    for (int i = 0; i < 100 && !ok && clink_connect_sync(clink_server_node(srv), &co, &c, err, sizeof(err)) == 0; i++) {
        ok = clink_call_sync(c, 100, "hi", 2, 5000, &m) == 0 &&
             snprintf(answer, sizeof(answer), "%.*s", (int)m.len, (const char *)m.data) > 0 &&
             !strstr(answer, "FAILED");
        clink_msg_free(&m);
        clink_conn_close(c);
    }
    printf("%s\n", answer);
    clink_server_free(srv);
    return ok ? 0 : 1;
}
