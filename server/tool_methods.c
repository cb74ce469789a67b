/*
 * The methods of clink/methods.h, as clink-node answers them (opts.
 * tool_methods): echo, sink, an aggregator's pools as text, and the
 * aggregator's query: the request to every leaf as an echo, answered with
 * the first leaf's reply once all have answered (or an error naming the
 * first leaf that failed). The fan-out never blocks the worker: the
 * handler starts it and returns, and the answer goes from its completion.
 */
#include "server/server_int.h"

#include <stdio.h>
#include <unistd.h>

#include "clink/methods.h"

#define FANOUT_TIMEOUT_MS 10000

static void echo(struct clink_req *req, void *user)
{
    (void)user;
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

static void sink(struct clink_req *req, void *user)
{
    (void)user;
    CLINK_IGNORE(clink_req_respond(req, NULL, 0));
}

static void pools(struct clink_req *req, void *user)
{
    struct clink_cluster *cl = clink_server_cluster(user);
    static _Thread_local char text[16384];
    size_t n = cl ? clink_cluster_status_format(cl, text, sizeof(text)) : 0;
    if (cl == NULL) {
        n = (size_t)snprintf(text, sizeof(text), "No pools: this node has no [leaf] or [aggregator] peers\n");
    }
    struct iovec iov = {.iov_base = text, .iov_len = n};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

/* Runs on the last leaf's worker (or the cluster's manager): the answer is handed to the request's worker. */
static void fanout_done(const struct clink_fanout_result *r, size_t n, void *user)
{
    struct clink_req *req = user;
    char why[192] = "";
    for (size_t i = 0; i < n && why[0] == '\0'; i++) {
        if (r[i].status < 0) {
            snprintf(why, sizeof(why), "leaf %s: %s", r[i].peer, clink_strerror(r[i].status));
        }
    }
    if (n == 0) {
        snprintf(why, sizeof(why), "this node has no leaves");
    }
    struct iovec iov = {.iov_base = n ? r[0].msg.data : NULL, .iov_len = n ? r[0].msg.len : 0};
    int ret = -CLINK_EAGAIN;
    for (int tries = 0; ret == -CLINK_EAGAIN && tries < 10000; tries++) {
        ret = why[0] ? clink_req_fail(req, why) : clink_req_respond(req, &iov, 1);
        if (ret == -CLINK_EAGAIN) {
            usleep(100); /* the request's worker has a full inbox: it drains in microseconds */
        }
    }
}

static void fanout(struct clink_req *req, void *user)
{
    struct clink_cluster *cl = clink_server_cluster(user);
    if (cl == NULL) {
        CLINK_IGNORE(clink_req_fail(req, "this node has no leaves"));
        return;
    }
    size_t len;
    const uint8_t *data = clink_req_data(req, &len);
    int ret = clink_cluster_fanout_start(cl, CLINK_ROLE_LEAF, NULL, CLINK_TOOL_ECHO, data, len, FANOUT_TIMEOUT_MS,
                                         fanout_done, req);
    if (ret < 0) {
        CLINK_IGNORE(clink_req_fail(req, clink_strerror(ret)));
    }
}

int clink__server_tool_methods(struct clink_server *srv)
{
    int ret;
    if ((ret = clink_node_register(srv->node, CLINK_TOOL_ECHO, echo, NULL)) < 0 ||
        (ret = clink_node_register(srv->node, CLINK_TOOL_POOLS, pools, srv)) < 0 ||
        (ret = clink_node_register(srv->node, CLINK_TOOL_FANOUT, fanout, srv)) < 0 ||
        (ret = clink_node_register(srv->node, CLINK_TOOL_SINK, sink, NULL)) < 0) {
        return ret;
    }
    return 0;
}
