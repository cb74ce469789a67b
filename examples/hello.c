/* The README's example: one node serves "hello", another calls it over verified TLS. */
#include <clink/clink.h>
#include <stdio.h>

static void hello(struct clink_req *req, void *user)
{
    (void)user;
    static char answer[] = "hello, aggregator";
    struct iovec iov = {.iov_base = answer, .iov_len = sizeof(answer) - 1};
    if (clink_req_respond(req, &iov, 1) < 0) {
        fprintf(stderr, "respond failed\n");
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s CERT KEY CA (e.g. made by clink-certs)\n", argv[0]);
        return 2;
    }
    struct clink_tls_opts to = {.cert_file = argv[1], .key_file = argv[2], .ca_file = argv[3]};
    struct clink_tls_ctx *tls;
    char err[256];
    if (clink_tls_ctx_new(&to, &tls, err, sizeof(err)) < 0) {
        fprintf(stderr, "TLS: %s\n", err);
        return 1;
    }

    /* A leaf: listens on an ephemeral loopback port and answers method 1. */
    struct clink_node *leaf, *agg;
    struct clink_node_opts lo = {.workers = 1, .tls = tls};
    if (clink_node_new(&lo, &leaf) < 0 || clink_node_register(leaf, 1, hello, NULL) < 0 ||
        clink_node_listen(leaf, "127.0.0.1", 0) < 0 || clink_node_start(leaf) < 0) {
        return 1;
    }

    /* An aggregator: dials the leaf, checking its certificate names "localhost". */
    struct clink_node_opts ao = {.workers = 1, .tls = tls};
    if (clink_node_new(&ao, &agg) < 0 || clink_node_start(agg) < 0) {
        return 1;
    }
    struct clink_connect_opts co = {.host = "127.0.0.1", .port = clink_node_port(leaf), .expected_name = "localhost"};
    struct clink_conn *conn;
    int ret = clink_connect_sync(agg, &co, &conn, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "connect: %s\n", err);
        return 1;
    }
    struct clink_msg resp;
    ret = clink_call_sync(conn, 1, "hi", 2, 1000 /* ms deadline */, &resp);
    if (ret == 0) {
        printf("%.*s\n", (int)resp.len, (char *)resp.data);
        clink_msg_free(&resp);
    } else {
        fprintf(stderr, "call: %s\n", clink_strerror(ret));
    }
    clink_conn_close(conn);
    clink_node_free(agg);
    clink_node_free(leaf);
    clink_tls_ctx_free(tls);
    return ret == 0 ? 0 : 1;
}
