/*
 * Completion queues for application threads: a lock-free list of finished
 * operations (many producers, one consumer) plus an eventfd to poll.
 *
 * Why a list and not a ring (ck_ring, as the inboxes): a ring has a size,
 * and a worker that finds it full can neither wait nor drop the completion.
 * The operation's own struct is the node, so the list needs no room.
 * A Treiber stack's ABA problem comes from popping one node at a time; the
 * consumer here only ever takes the whole list (exchange with NULL), so it
 * does not arise.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clink/cq.h"

struct clink_cq {
    _Atomic(struct clink_cq_op *) head; /* pushed by producers, newest first */
    int efd;
    /* The consumer's own: taken from head, oldest first, not yet handed out. */
    struct clink_cq_op *ready, *ready_tail;
};

int clink_cq_new(struct clink_cq **out)
{
    if (out == NULL) {
        return -CLINK_EINVAL;
    }
    *out = NULL;
    struct clink_cq *cq = calloc(1, sizeof(*cq));
    if (cq == NULL) {
        return -CLINK_ENOMEM;
    }
    cq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (cq->efd < 0) {
        int err = -errno;
        free(cq);
        return err;
    }
    atomic_init(&cq->head, NULL);
    *out = cq;
    return 0;
}

void clink_cq_free(struct clink_cq *cq)
{
    if (cq != NULL) {
        close(cq->efd);
        free(cq);
    }
}

int clink_cq_fd(const struct clink_cq *cq)
{
    return cq ? cq->efd : -1;
}

static void signal_fd(struct clink_cq *cq)
{
    uint64_t one = 1;
    /* Fails only when the counter would overflow: then it is readable anyway. */
    CLINK_IGNORE(write(cq->efd, &one, sizeof(one)) < 0);
}

static void push(struct clink_cq *cq, struct clink_cq_op *op)
{
    struct clink_cq_op *old = atomic_load_explicit(&cq->head, memory_order_relaxed);
    do {
        op->priv.next = old;
    } while (!atomic_compare_exchange_weak_explicit(&cq->head, &old, op, memory_order_release, memory_order_relaxed));
    if (old == NULL) {
        signal_fd(cq); /* empty to non-empty: the consumer may be asleep */
    }
}

/* Returns 0, or -CLINK_ENOMEM with an empty resp. */
static int copy_msg(struct clink_cq_op *op, const uint8_t *p, size_t n)
{
    op->resp.data = n ? malloc(n) : NULL;
    op->resp.len = op->resp.data ? n : 0;
    if (op->resp.data == NULL) {
        return n ? -CLINK_ENOMEM : 0;
    }
    memcpy(op->resp.data, p, n);
    return 0;
}

static void call_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct clink_cq_op *op = call->user;
    op->status = status;
    if (copy_msg(op, resp, status == 0 || status == -CLINK_EREMOTE ? len : 0) < 0) {
        op->status = -CLINK_ENOMEM; /* as clink_call_sync: the answer came but cannot be handed over */
    }
    push(op->priv.cq, op);
}

void clink_cq_bind(struct clink_cq *cq, struct clink_cq_op *op, struct clink_call *call, void *tag)
{
    *op = (struct clink_cq_op){.tag = tag, .priv.cq = cq};
    call->cb = call_done;
    call->user = op;
}

static void connect_done(struct clink_conn *conn, int status, const char *reason, void *user)
{
    struct clink_cq_op *op = user;
    op->conn = conn;
    op->status = status;
    /* The reason is a courtesy: without memory for it, the status still says what happened. */
    CLINK_IGNORE(copy_msg(op, (const uint8_t *)reason, status < 0 && reason != NULL ? strlen(reason) + 1 : 0) < 0);
    push(op->priv.cq, op);
}

int clink_cq_connect(struct clink_node *node, const struct clink_connect_opts *opts, struct clink_cq *cq,
                     struct clink_cq_op *op, void *tag)
{
    if (cq == NULL || op == NULL) {
        return -CLINK_EINVAL;
    }
    *op = (struct clink_cq_op){.tag = tag, .priv.cq = cq};
    return clink_connect(node, opts, connect_done, op);
}

/* Move what producers pushed to the consumer's FIFO. */
static void take(struct clink_cq *cq)
{
    uint64_t v;
    /* Read the fd before the exchange: a push after the exchange then leaves it readable, never lost. */
    CLINK_IGNORE(read(cq->efd, &v, sizeof(v)) < 0);
    struct clink_cq_op *list = atomic_exchange_explicit(&cq->head, NULL, memory_order_acquire);
    struct clink_cq_op *fifo = NULL, *last = list;
    while (list != NULL) {
        struct clink_cq_op *next = list->priv.next;
        list->priv.next = fifo;
        fifo = list;
        list = next;
    }
    if (fifo == NULL) {
        return;
    }
    if (cq->ready_tail != NULL) {
        cq->ready_tail->priv.next = fifo;
    } else {
        cq->ready = fifo;
    }
    cq->ready_tail = last;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int clink_cq_next(struct clink_cq *cq, struct clink_cq_op **ops, unsigned max, int timeout_ms)
{
    if (cq == NULL || ops == NULL || max == 0) {
        return -CLINK_EINVAL;
    }
    if (timeout_ms != 0 && clink_thread_is_worker()) {
        return -CLINK_EWOULDBLOCK;
    }
    int64_t end = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    for (;;) {
        if (cq->ready == NULL) {
            take(cq);
        }
        unsigned n = 0;
        while (n < max && cq->ready != NULL) {
            struct clink_cq_op *op = cq->ready;
            cq->ready = op->priv.next;
            op->priv.next = NULL;
            ops[n++] = op;
        }
        if (cq->ready == NULL) {
            cq->ready_tail = NULL;
        } else {
            signal_fd(cq); /* some are left: keep the fd readable for a poll loop */
        }
        if (n > 0 || timeout_ms == 0) {
            return (int)n;
        }
        int wait = -1;
        if (timeout_ms > 0) {
            int64_t left = end - now_ms();
            if (left <= 0) {
                return 0;
            }
            wait = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd p = {.fd = cq->efd, .events = POLLIN};
        if (poll(&p, 1, wait) < 0 && errno != EINTR) {
            return -errno;
        }
    }
}
