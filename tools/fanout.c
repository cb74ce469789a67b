/* clink-node's fan-out method; see fanout.h. */
#include "tools/fanout.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/methods.h"

struct fan;

struct fan_part {
    struct clink_pool_call pc;
    struct iovec iov;
    struct fan *fan;
    size_t idx;
};

struct fan {
    struct clink_req *req;
    const struct fanout_leaves *lv;
    atomic_size_t left;
    atomic_int failed; /* the first part to fail sets it and writes why */
    char why[192];
    uint8_t *first; /* leaf 0's reply: the answer */
    size_t first_len;
    uint8_t *payload;
    struct fan_part parts[];
};

/* The last part in answers (from its own worker: clink_req_respond hands the answer over) and frees. */
static void fan_finish(struct fan *f)
{
    struct iovec iov = {.iov_base = f->first, .iov_len = f->first_len};
    int failed = atomic_load(&f->failed), ret = -CLINK_EAGAIN;
    for (int tries = 0; ret == -CLINK_EAGAIN && tries < 10000; tries++) {
        ret = failed ? clink_req_fail(f->req, f->why) : clink_req_respond(f->req, &iov, 1);
        if (ret == -CLINK_EAGAIN) {
            usleep(100); /* the request's worker has a full inbox: it drains in microseconds */
        }
    }
    if (ret == -CLINK_EAGAIN) {
        fprintf(stderr, "clink-node: fan-out: could not hand the answer over; the caller will time out\n");
    }
    free(f->first);
    free(f->payload);
    free(f);
}

static void part_failed(struct fan *f, size_t idx, int status)
{
    int none = 0;
    if (atomic_compare_exchange_strong(&f->failed, &none, 1)) {
        snprintf(f->why, sizeof(f->why), "leaf %s: %s", f->lv->names[idx], clink_strerror(status));
    }
}

static void part_done(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct fan_part *p = (struct fan_part *)call;
    struct fan *f = p->fan;
    if (status < 0) {
        part_failed(f, p->idx, status);
    } else if (p->idx == 0 && len > 0) {
        if ((f->first = malloc(len)) == NULL) {
            part_failed(f, p->idx, -CLINK_ENOMEM);
        } else {
            memcpy(f->first, resp, len);
            f->first_len = len;
        }
    }
    if (atomic_fetch_sub(&f->left, 1) == 1) {
        fan_finish(f);
    }
}

void fanout_handler(struct clink_req *req, void *user)
{
    const struct fanout_leaves *lv = __atomic_load_n((struct fanout_leaves *const *)user, __ATOMIC_ACQUIRE);
    if (lv == NULL || lv->n == 0) {
        CLINK_IGNORE(clink_req_fail(req, "this node has no leaves"));
        return;
    }
    size_t len;
    const uint8_t *data = clink_req_data(req, &len);
    struct fan *f = calloc(1, sizeof(*f) + lv->n * sizeof(f->parts[0]));
    uint8_t *payload = malloc(len ? len : 1); /* the request's bytes are ours only during this handler */
    if (f == NULL || payload == NULL) {
        free(f);
        free(payload);
        CLINK_IGNORE(clink_req_fail(req, "out of memory"));
        return;
    }
    memcpy(payload, data, len);
    f->req = req;
    f->lv = lv;
    f->payload = payload;
    atomic_init(&f->left, lv->n + 1); /* + 1: this handler's own hold until every part is started */
    for (size_t i = 0; i < lv->n; i++) {
        struct fan_part *p = &f->parts[i];
        p->fan = f;
        p->idx = i;
        p->iov = (struct iovec){.iov_base = payload, .iov_len = len};
        p->pc.call = (struct clink_call){
            .method = CLINK_TOOL_ECHO, .iov = &p->iov, .iovcnt = 1, .timeout_ms = 10000, .cb = part_done};
        int ret = clink_pool_call_start(lv->pools[i], &p->pc);
        if (ret < 0) { /* the callback will not run: account for the part here */
            part_failed(f, i, ret);
            atomic_fetch_sub(&f->left, 1);
        }
    }
    if (atomic_fetch_sub(&f->left, 1) == 1) {
        fan_finish(f);
    }
}
