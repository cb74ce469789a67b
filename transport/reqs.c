/*
 * The peer's requests on a connection (a clink_req each, from a free list
 * per worker), the handlers' answers from any thread, and the requests a
 * closed connection leaves behind (orphans, answered into the void).
 */
#include <stdlib.h>
#include <string.h>

#include "transport/conn_int.h"
#include "transport/frame.h"

struct clink_req *clink__req_new(struct clink_conn *c)
{
    struct clink_worker *w = c->w;
    struct clink_req *r = w->free_reqs;
    if (r != NULL) {
        w->free_reqs = r->next;
    } else if ((r = malloc(sizeof(*r))) == NULL) {
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    r->w = w;
    r->conn = c;
    r->next = c->reqs;
    if (c->reqs) {
        c->reqs->prev = r;
    }
    c->reqs = r;
    c->nreqs++;
    return r;
}

void clink__req_free(struct clink_req *r)
{
    struct clink_conn *c = r->conn;
    /* A live request is on its connection's list; an orphan on its worker's. */
    struct clink_req **head = c != NULL ? &c->reqs : &r->w->orphans;
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        *head = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    if (c != NULL) {
        c->nreqs--;
    }
    r->next = r->w->free_reqs;
    r->w->free_reqs = r;
}

/*
 * The connection is gone but its handlers still hold requests: they become
 * the worker's orphans, answered into the void (-CLINK_ECLOSED) or freed
 * with the node.
 */
void clink__conn_orphan_reqs(struct clink_conn *c)
{
    struct clink_req *last = NULL;
    for (struct clink_req *r = c->reqs; r != NULL; r = r->next) {
        r->conn = NULL;
        last = r;
    }
    if (last != NULL) {
        last->next = c->w->orphans;
        if (c->w->orphans) {
            c->w->orphans->prev = last;
        }
        c->w->orphans = c->reqs;
    }
    c->reqs = NULL;
    c->nreqs = 0;
}

const uint8_t *clink_req_data(const struct clink_req *req, size_t *len)
{
    *len = req->len;
    return req->data;
}

uint16_t clink_req_method(const struct clink_req *req)
{
    return req->method;
}

struct clink_conn *clink_req_conn(const struct clink_req *req)
{
    return req->conn;
}

/* On the request's worker: its connection's protocol answers (frames, or the HTTP response). */
static int answer(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt, const void *extra,
                  size_t extra_len)
{
    struct clink_conn *c = req->conn;
    if (c == NULL || c->proto->answer == NULL) {
        clink__req_free(req); /* an orphan: its connection is gone, the answer goes nowhere */
        return -CLINK_ECLOSED;
    }
    return c->proto->answer(req, type, iov, iovcnt, extra, extra_len);
}

/*
 * Answered on another thread (an aggregator's handler that waits for its
 * leaves' answers, which arrive on other workers): copy the answer and let
 * the request's worker send it. The req stays untouched here: only its
 * worker reads or frees it. On an error the req was not handed over.
 */
static int answer_elsewhere(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt,
                            const void *extra, size_t extra_len)
{
    size_t len = 0;
    for (unsigned i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    struct clink__msg_respond *m = malloc(sizeof(*m) + len);
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    *m = (struct clink__msg_respond){.hdr = {.kind = MSG_RESPOND}, .req = req, .type = type, .len = len};
    if (extra_len > 0) {
        memcpy(m->extra, extra, extra_len);
    }
    m->extra_len = extra_len;
    len = 0;
    for (unsigned i = 0; i < iovcnt; i++) {
        memcpy(m->data + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    int ret = clink__worker_post(req->w, m);
    if (ret < 0) {
        free(m);
    }
    return ret;
}

void clink__conn_respond_msg(struct clink__msg_respond *m, int live)
{
    if (live) {
        struct iovec iov = {.iov_base = m->data, .iov_len = m->len};
        CLINK_IGNORE(answer(m->req, m->type, &iov, 1, m->extra_len ? m->extra : NULL, m->extra_len) < 0);
    }
    free(m); /* not live: the worker is gone, and its requests go with the node */
}

static int answer_any(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt, const void *extra,
                      size_t extra_len)
{
    if (clink__current_worker == req->w) {
        return answer(req, type, iov, iovcnt, extra, extra_len);
    }
    return answer_elsewhere(req, type, iov, iovcnt, extra, extra_len);
}

int clink_req_respond(struct clink_req *req, const struct iovec *iov, unsigned iovcnt)
{
    if (req == NULL || (iovcnt > 0 && iov == NULL)) {
        return -CLINK_EINVAL;
    }
    return answer_any(req, CLINK_FRAME_RESPONSE, iov, iovcnt, NULL, 0);
}

int clink_req_fail(struct clink_req *req, const char *msg)
{
    if (req == NULL) {
        return -CLINK_EINVAL;
    }
    uint8_t b[4];
    clink__put_u32(b, CLINK_EREMOTE);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)(msg ? msg : ""), .iov_len = msg ? strlen(msg) : 0};
    if (iov.iov_len > 1024) {
        iov.iov_len = 1024;
    }
    return answer_any(req, CLINK_FRAME_ERROR, &iov, 1, b, sizeof(b));
}
