/*
 * Streams: the entry points of clink/stream.h. On the stream's worker they
 * act at once (streams.c); from any other thread they are handed to that
 * worker as one inbox message each, which holds a reference to the stream.
 */
#include <stdlib.h>
#include <string.h>

#include "transport/native.h"

enum stream_op { SOP_OPEN = 1, SOP_SEND, SOP_CONSUME, SOP_CANCEL, SOP_FAIL };

struct msg_stream {
    struct clink__msg hdr;
    struct clink_stream *s;
    int op;
    uint8_t *open; /* SOP_OPEN: the opening message's copy */
    size_t len;    /* SOP_OPEN: its length; SOP_CONSUME: bytes */
    int end;
    uint32_t timeout_ms;
    void *tag;
    unsigned iovcnt;
    char text[256];     /* SOP_FAIL */
    struct iovec iov[]; /* SOP_SEND */
};

int clink_node_register_stream(struct clink_node *node, uint16_t method, clink_stream_handler_fn fn, void *user)
{
    if (node == NULL || fn == NULL || method > CLINK_METHOD_MAX_USER || atomic_load(&node->started)) {
        return -CLINK_EINVAL;
    }
    if (node->handlers[method].fn != NULL || node->handlers[method].stream_fn != NULL) {
        return -CLINK_EINVAL;
    }
    node->handlers[method].stream_fn = fn;
    node->handlers[method].user = user;
    return 0;
}

static int post(struct clink_stream *s, struct msg_stream *m)
{
    m->hdr.kind = MSG_STREAM;
    m->s = s;
    atomic_fetch_add(&s->refs, 1);
    int ret = clink__worker_post(s->conn->w, m);
    if (ret < 0) {
        atomic_fetch_sub(&s->refs, 1); /* the caller still holds it: this is never the last reference */
        free(m->open);
        free(m);
    }
    return ret;
}

static int on_worker(const struct clink_stream *s)
{
    return clink__current_worker == s->conn->w;
}

int clink_stream_open(struct clink_conn *conn, const struct clink_stream_open_opts *o, struct clink_stream **out)
{
    if (conn == NULL || o == NULL || out == NULL || o->cbs.on_end == NULL || (o->iovcnt > 0 && o->iov == NULL) ||
        o->method > CLINK_METHOD_MAX_USER) {
        return -CLINK_EINVAL;
    }
    *out = NULL;
    /* Set before the connection opened (the store of `open` publishes it): a version-1 peer is told at once. */
    if (atomic_load(&conn->open) && conn->cache.proto_version < 2) {
        return -CLINK_EVERSION;
    }
    size_t len = 0;
    for (unsigned i = 0; i < o->iovcnt; i++) {
        len += o->iov[i].iov_len;
    }
    uint8_t *copy = len > 0 ? malloc(len) : NULL;
    struct clink_stream *s = calloc(1, sizeof(*s));
    if ((len > 0 && copy == NULL) || s == NULL) {
        free(copy);
        free(s);
        return -CLINK_ENOMEM;
    }
    for (size_t i = 0, off = 0; i < o->iovcnt; i++) {
        memcpy(copy + off, o->iov[i].iov_base, o->iov[i].iov_len);
        off += o->iov[i].iov_len;
    }
    atomic_fetch_add(&conn->refs, 1); /* the stream holds its connection until it is freed */
    atomic_init(&s->refs, 1);         /* its life until on_end has run */
    s->conn = conn;
    s->mine = 1;
    s->method = o->method;
    s->flags = o->flags;
    s->cbs = o->cbs;
    s->user = o->user;
    s->id = atomic_fetch_add_explicit(&conn->next_call_id, 1, memory_order_relaxed);
    if (on_worker(s)) {
        int ret = clink__stream_open_here(s, copy, len, o->end, o->timeout_ms);
        if (ret < 0) {
            clink__stream_put(s);
            return ret;
        }
        *out = s;
        return 0;
    }
    if (!atomic_load(&conn->open)) {
        free(copy);
        int ret = atomic_load(&conn->node->stopping) ? -CLINK_ESHUTDOWN
                  : atomic_load(&conn->goaway)       ? -CLINK_EGOAWAY
                                                     : -CLINK_ECLOSED;
        clink__stream_put(s);
        return ret;
    }
    struct msg_stream *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        free(copy);
        clink__stream_put(s);
        return -CLINK_ENOMEM;
    }
    m->op = SOP_OPEN;
    m->open = copy;
    m->len = len;
    m->end = o->end;
    m->timeout_ms = o->timeout_ms;
    int ret = post(s, m);
    if (ret < 0) {
        clink__stream_put(s);
        return ret;
    }
    *out = s;
    return 0;
}

int clink_stream_accept(struct clink_stream *s, const struct clink_stream_cbs *cbs, unsigned flags, void *user)
{
    if (s == NULL || cbs == NULL || cbs->on_end == NULL || s->mine || s->accepted || s->over || !on_worker(s)) {
        return -CLINK_EINVAL;
    }
    s->cbs = *cbs;
    s->flags = flags;
    s->user = user;
    s->accepted = 1;
    return 0;
}

int clink_stream_send(struct clink_stream *s, const struct iovec *iov, unsigned iovcnt, int end, void *tag)
{
    if (s == NULL || (iovcnt > 0 && iov == NULL) || iovcnt > 1024) {
        return -CLINK_EINVAL;
    }
    if (on_worker(s)) {
        return clink__stream_send_here(s, iov, iovcnt, end, tag);
    }
    struct msg_stream *m = calloc(1, sizeof(*m) + iovcnt * sizeof(struct iovec));
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    m->op = SOP_SEND;
    if (iovcnt > 0) {
        memcpy(m->iov, iov, iovcnt * sizeof(*iov));
    }
    m->iovcnt = iovcnt;
    m->end = end;
    m->tag = tag;
    return post(s, m);
}

int clink_stream_end(struct clink_stream *s)
{
    return clink_stream_send(s, NULL, 0, 1, NULL);
}

int clink_stream_consume(struct clink_stream *s, size_t n)
{
    if (s == NULL) {
        return -CLINK_EINVAL;
    }
    if (on_worker(s)) {
        clink__stream_consumed(s, n);
        return 0;
    }
    struct msg_stream *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    m->op = SOP_CONSUME;
    m->len = n;
    return post(s, m);
}

static int stop(struct clink_stream *s, int op, const char *text)
{
    if (s == NULL || (op == SOP_FAIL && (s->mine || text == NULL))) {
        return -CLINK_EINVAL;
    }
    if (on_worker(s)) {
        clink__stream_cancel_here(s, text);
        return 0;
    }
    struct msg_stream *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    m->op = op;
    if (text != NULL) {
        snprintf(m->text, sizeof(m->text), "%s", text);
    }
    return post(s, m);
}

int clink_stream_cancel(struct clink_stream *s)
{
    return stop(s, SOP_CANCEL, NULL);
}

int clink_stream_fail(struct clink_stream *s, const char *msg)
{
    return stop(s, SOP_FAIL, msg);
}

struct clink_conn *clink_stream_conn(const struct clink_stream *s)
{
    return s != NULL ? s->conn : NULL;
}

uint16_t clink_stream_method(const struct clink_stream *s)
{
    return s != NULL ? s->method : 0;
}

/* MSG_STREAM on the stream's worker (worker.c); live 0: the worker is stopping, nothing may start. */
void clink__stream_msg(struct clink__msg *msg, int live)
{
    struct msg_stream *m = (struct msg_stream *)msg;
    struct clink_stream *s = m->s;
    switch (m->op) {
    case SOP_OPEN: {
        int ret = live ? clink__stream_open_here(s, m->open, m->len, m->end, m->timeout_ms) : -CLINK_ESHUTDOWN;
        if (!live) {
            free(m->open);
        }
        if (ret < 0) {
            /* Never sent: ECLOSED would mean "lost", which it was not (a pool may open it elsewhere). */
            s->over = 1;
            s->cbs.on_end(s, ret == -CLINK_ECLOSED ? -CLINK_EGOAWAY : ret, NULL, 0, s->user);
            clink__stream_put(s); /* its life: on_end has run */
        }
        break;
    }
    case SOP_SEND: {
        int ret = live ? clink__stream_send_here(s, m->iov, m->iovcnt, m->end, m->tag) : -CLINK_ESHUTDOWN;
        if (ret < 0 && m->iovcnt > 0 && s->cbs.on_sent != NULL && !s->over) {
            s->cbs.on_sent(s, m->tag, ret, s->user); /* the caller's buffers are its own again */
        }
        break;
    }
    case SOP_CONSUME:
        if (live) {
            clink__stream_consumed(s, m->len);
        }
        break;
    case SOP_CANCEL:
    case SOP_FAIL:
        if (live) {
            clink__stream_cancel_here(s, m->op == SOP_FAIL ? m->text : NULL);
        }
        break;
    }
    clink__stream_put(s);
    free(m);
}
