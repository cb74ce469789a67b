/*
 * Calls: the entry points that start, ping and cancel a call on a connection
 * from any thread (posting to the owning worker when called from elsewhere),
 * and clink_call_sync, which waits for the answer.
 */
#include <stdlib.h>
#include <string.h>

#include "transport/conn_int.h"

static int start(struct clink_conn *conn, struct clink_call *call, int ping)
{
    if (conn == NULL || call == NULL || call->cb == NULL || (call->iovcnt > 0 && call->iov == NULL)) {
        return -CLINK_EINVAL;
    }
    if (!ping && call->method > CLINK_METHOD_MAX_USER && call->method != CLINK_METHOD_STATUS) {
        return -CLINK_EINVAL;
    }
    call->priv.conn = conn;
    call->priv.ping = ping;
    call->priv.next = NULL;
    call->priv.state = 0;
    /* Timed from here (its latency): on a worker, with the clock its loop read when it woke (worker.c). */
    struct clink_worker *cw = clink__current_worker;
    /* The latency histograms count the application's calls: not pings, nor clink's own methods (status). */
    call->priv.start_ns = ping || call->method > CLINK_METHOD_MAX_USER ? 0 : cw != NULL ? cw->now_ns : clink__now_ns();
    call->priv.id = atomic_fetch_add_explicit(&conn->next_call_id, 1, memory_order_relaxed);
    if (clink__current_worker == conn->w) {
        return clink__conn_start_call(conn, call, 1);
    }
    if (!atomic_load(&conn->open)) {
        return atomic_load(&conn->node->stopping) ? -CLINK_ESHUTDOWN
               : atomic_load(&conn->goaway)       ? -CLINK_EGOAWAY
                                                  : -CLINK_ECLOSED;
    }
    atomic_fetch_add(&conn->refs, 1); /* held by the message until the worker takes it */
    int ret = clink__worker_post(conn->w, (void *)((uintptr_t)call | CLINK_MSG_CALL_TAG));
    if (ret < 0) {
        clink__conn_put(conn);
    }
    return ret;
}

int clink_call_start(struct clink_conn *conn, struct clink_call *call)
{
    return start(conn, call, 0);
}

int clink_conn_ping(struct clink_conn *conn, struct clink_call *call)
{
    return start(conn, call, 1);
}

int clink_call_cancel(struct clink_call *call)
{
    if (call == NULL || call->priv.conn == NULL) {
        return -CLINK_EINVAL;
    }
    struct clink_conn *conn = call->priv.conn;
    if (clink__current_worker == conn->w) {
        clink__conn_cancel_call(conn, call->priv.id, 1);
        return 0;
    }
    struct clink__msg_cancel *m = malloc(sizeof(*m));
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    m->hdr.kind = MSG_CANCEL;
    m->conn = conn;
    m->id = call->priv.id;
    atomic_fetch_add(&conn->refs, 1);
    int ret = clink__worker_post(conn->w, m);
    if (ret < 0) {
        clink__conn_put(conn);
        free(m);
    }
    return ret;
}

void clink_msg_free(struct clink_msg *msg)
{
    if (msg != NULL) {
        free(msg->data);
        msg->data = NULL;
        msg->len = 0;
    }
}

struct sync_call {
    struct clink_call call;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    struct clink_msg resp;
};

static void sync_call_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct sync_call *sc = (struct sync_call *)call;
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL) {
            status = -CLINK_ENOMEM;
        } else {
            memcpy(copy, resp, len);
        }
    }
    pthread_mutex_lock(&sc->mu);
    sc->status = status;
    sc->resp.data = copy;
    sc->resp.len = copy ? len : 0;
    sc->done = 1;
    pthread_cond_signal(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
}

int clink_call_sync(struct clink_conn *conn, uint16_t method, const void *req, size_t len, uint32_t timeout_ms,
                    struct clink_msg *resp)
{
    if (resp != NULL) {
        resp->data = NULL;
        resp->len = 0;
    }
    if (clink__current_worker != NULL) {
        /* It would wait for a completion only a worker delivers: if this one, never. */
        if (conn != NULL) {
            CLINK_LOG(&conn->node->log, CLINK_LOG_WARN, "transport", conn->id,
                      "clink_call_sync called on a worker thread: refused, use clink_call_start");
        }
        return -CLINK_EWOULDBLOCK;
    }
    if (resp == NULL || (len > 0 && req == NULL)) {
        return -CLINK_EINVAL;
    }
    struct iovec iov = {.iov_base = (void *)(uintptr_t)req, .iov_len = len};
    struct sync_call sc = {
        .call = {.method = method, .iov = &iov, .iovcnt = len ? 1 : 0, .timeout_ms = timeout_ms, .cb = sync_call_cb},
    };
    pthread_mutex_init(&sc.mu, NULL);
    pthread_cond_init(&sc.cv, NULL);
    int ret = clink_call_start(conn, &sc.call);
    if (ret == 0) {
        pthread_mutex_lock(&sc.mu);
        while (!sc.done) {
            pthread_cond_wait(&sc.cv, &sc.mu);
        }
        pthread_mutex_unlock(&sc.mu);
        ret = sc.status;
        *resp = sc.resp;
    }
    pthread_cond_destroy(&sc.cv);
    pthread_mutex_destroy(&sc.mu);
    return ret;
}
