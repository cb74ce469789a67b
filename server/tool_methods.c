/*
 * The methods of clink/methods.h, as clink-node answers them (opts.
 * tool_methods): echo, sink, an aggregator's pools as text, the
 * aggregator's query: the request to every leaf as an echo, answered with
 * the first leaf's reply once all have answered (or an error naming the
 * first leaf that failed), and the produce stream. The fan-out never blocks
 * the worker: the handler starts it and returns, and the answer goes from its
 * completion. The producer sends from on_sent: it never waits either.
 */
#include "server/server_int.h"

#include <stdio.h>
#include <unistd.h>

#include "clink/methods.h"
#include "clink/stream.h"

#define FANOUT_TIMEOUT_MS 10000
/*
 * Messages the producer has handed to its stream and not had back (on_sent):
 * the next ones wait queued while one goes out, so the connection never runs
 * dry. Credit decides when they leave; queued, they cost nothing but their
 * bookkeeping: every message is sent from the producer's one buffer.
 */
#define PRODUCE_INFLIGHT 4

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

/* One CLINK_TOOL_PRODUCE stream: what is left to send, and the one buffer every message is sent from. */
struct producer {
    struct clink_stream *s;
    uint64_t left;
    unsigned busy;           /* sends not yet given back by on_sent */
    int done;                /* the last message (or the end) was sent, or the stream failed */
    struct iovec full, last; /* borrowed by the sends until on_sent: a whole message, and the short last one */
    uint8_t buf[];
};

static void produce_more(struct producer *p)
{
    while (!p->done && p->busy < PRODUCE_INFLIGHT) {
        struct iovec *iov = p->left < p->full.iov_len ? &p->last : &p->full;
        iov->iov_len = p->left < p->full.iov_len ? (size_t)p->left : p->full.iov_len;
        int ret = clink_stream_send(p->s, iov, iov->iov_len > 0, iov->iov_len == p->left, NULL);
        if (ret < 0) {
            p->done = 1;
            /* The stream ends (and on_end frees p) after this returns; one already over ignores it. */
            CLINK_IGNORE(clink_stream_fail(p->s, clink_strerror(ret)));
            return;
        }
        p->left -= iov->iov_len;
        p->busy += iov->iov_len > 0;
        p->done = p->left == 0;
    }
}

static void produce_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s, (void)tag;
    struct producer *p = user;
    p->busy--;
    if (status == 0) {
        produce_more(p);
    }
}

static void produce_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)status, (void)msg, (void)len;
    free(user);
}

static void produce(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    uint64_t total;
    uint32_t msg;
    if (clink_tool_produce_parse(data, len, &total, &msg) < 0 || msg == 0 || msg > CLINK_DEFAULT_MAX_MESSAGE) {
        CLINK_IGNORE(clink_stream_fail(s, "produce: expected 12 bytes: total, then a message size of 1 to 4 MiB"));
        return;
    }
    struct producer *p = malloc(sizeof(*p) + msg);
    if (p == NULL) {
        CLINK_IGNORE(clink_stream_fail(s, "produce: out of memory"));
        return;
    }
    *p = (struct producer){.s = s, .left = total};
    p->full = (struct iovec){.iov_base = p->buf, .iov_len = msg};
    p->last = (struct iovec){.iov_base = p->buf, .iov_len = 0};
    for (uint32_t k = 0; k < msg; k++) {
        p->buf[k] = (uint8_t)k;
    }
    struct clink_stream_cbs cbs = {.on_sent = produce_sent, .on_end = produce_end};
    if (clink_stream_accept(s, &cbs, 0, p) < 0) {
        free(p);
        CLINK_IGNORE(clink_stream_fail(s, "produce: cannot accept"));
        return;
    }
    produce_more(p);
}

int clink__server_tool_methods(struct clink_server *srv)
{
    int ret;
    if ((ret = clink_node_register(srv->node, CLINK_TOOL_ECHO, echo, NULL)) < 0 ||
        (ret = clink_node_register_stream(srv->node, CLINK_TOOL_PRODUCE, produce, NULL)) < 0 ||
        (ret = clink_node_register(srv->node, CLINK_TOOL_POOLS, pools, srv)) < 0 ||
        (ret = clink_node_register(srv->node, CLINK_TOOL_FANOUT, fanout, srv)) < 0 ||
        (ret = clink_node_register(srv->node, CLINK_TOOL_SINK, sink, NULL)) < 0) {
        return ret;
    }
    return 0;
}
