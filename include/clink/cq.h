/*
 * clink completion queue: how an application thread waits for many calls.
 *
 * Completion callbacks run on workers. An application thread that wants the
 * results on its own thread binds each operation to a queue (clink_cq_bind
 * for a call, clink_cq_connect for a dial) and later takes the finished
 * operations in batches: blocking in clink_cq_next, or polling the queue's
 * eventfd (clink_cq_fd) in its own poll/epoll loop. One thread drains many
 * calls in flight, with no mutex, condition variable or thread per call
 * (liburing's completion ring and gRPC's CompletionQueue are the models).
 *
 * How: the operation's own struct is the queue's node. A finished operation
 * is pushed onto a lock-free list with one compare-and-swap (any number of
 * producers: workers, a pool's manager thread); the consumer takes the whole
 * list with one atomic exchange and hands it out in completion order. So a
 * push never waits and never allocates, and the queue is never full: a
 * worker can neither block nor drop a completion. The eventfd is written
 * only when the list goes from empty to non-empty, so a batch costs one
 * write and one read. The response is copied once, into op->resp: a
 * callback's payload lives only during the callback.
 *
 * Thread: the queue has one consumer (clink_cq_next: one thread at a time);
 * everything else is any thread.
 */
#ifndef CLINK_CQ_H
#define CLINK_CQ_H

#include "clink/error.h"
#include "clink/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

struct clink_cq;

/*
 * One operation whose completion goes to a queue. Caller-owned: embed it
 * next to its clink_call (or clink_pool_call); both are borrowed from the
 * start of the operation until clink_cq_next returns this op.
 */
struct clink_cq_op {
    void *tag;  /* [in] the caller's, returned as is */
    int status; /* [out] the operation's status: as clink_call_cb's, or clink_connect_cb's */
    /*
     * [out] a call: the response (status 0) or the peer's error text
     * (-CLINK_EREMOTE); a dial that failed: the reason in words. Caller
     * frees with clink_msg_free.
     */
    struct clink_msg resp;
    struct clink_conn
        *conn; /* [out] clink_cq_connect with status 0: the new connection (close with clink_conn_close) */
    /* private */
    struct {
        struct clink_cq *cq;
        struct clink_cq_op *next;
    } priv;
};

/* Create a queue. [out] *out; free with clink_cq_free. Thread: any. Returns 0, -CLINK_EINVAL, -CLINK_ENOMEM or -errno.
 */
CLINK_API CLINK_MUST_USE int clink_cq_new(struct clink_cq **out);

/*
 * Free a queue. Every operation bound to it must have been taken by
 * clink_cq_next (one still in flight would complete into freed memory).
 * Thread: the consumer.
 */
CLINK_API void clink_cq_free(struct clink_cq *cq);

/*
 * The queue's eventfd, for poll/epoll (POLLIN): readable while completions
 * wait, and now and then once more after they were taken (a wake-up may find
 * nothing: call clink_cq_next with timeout 0). Owned by the queue: do not
 * read or close it. Thread: any.
 */
CLINK_API int clink_cq_fd(const struct clink_cq *cq);

/*
 * Route a call's completion to cq: sets call->cb and call->user (leave them
 * alone afterwards) and op's tag; then start the call as usual
 * (clink_call_start, clink_conn_ping, or clink_pool_call_start with
 * &pc->call). If the start returns an error, nothing is queued. Thread: any.
 */
CLINK_API void clink_cq_bind(struct clink_cq *cq, struct clink_cq_op *op, struct clink_call *call, void *tag);

/*
 * Dial (as clink_connect) with the completion going to cq: op->conn and
 * op->status, op->resp the reason on failure. Thread: any, after start.
 * Returns 0 (op will be queued) or negative (it will not).
 */
CLINK_API CLINK_MUST_USE int clink_cq_connect(struct clink_node *node, const struct clink_connect_opts *opts,
                                              struct clink_cq *cq, struct clink_cq_op *op, void *tag);

/*
 * Take up to max finished operations, oldest first, into ops[]. Waits up to
 * timeout_ms for the first one (0: do not wait; -1: no limit). Returns how
 * many (0 when the time ran out), -CLINK_EINVAL, or -CLINK_EWOULDBLOCK when
 * asked to wait on a worker thread (a worker must not block: poll with 0).
 * Thread: the consumer (one thread at a time).
 */
CLINK_API CLINK_MUST_USE int clink_cq_next(struct clink_cq *cq, struct clink_cq_op **ops, unsigned max, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
