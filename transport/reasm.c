/*
 * Chunked messages in (protocol version 2): a REQUEST or RESPONSE whose
 * first frame says MORE is gathered here, per id, up to our max_message, and
 * handed on whole. Its bytes count against the connection window we granted
 * and go back to the peer as credit once it is delivered (or dropped), so
 * all partial messages together never hold more than that window: a peer
 * that sends past it is refused.
 */
#include <stdlib.h>
#include <string.h>

#include "transport/native.h"

int clink__conn_take_credit(struct clink_conn *c, uint64_t n)
{
    struct clink__native *nat = c->nat;
    if (n > nat->recv_allowed) {
        STAT_ADD(c->w, flow_violations, 1);
        clink__conn_fail(c, -CLINK_EPROTO, "flow control: %llu bytes past the connection window (%llu left)",
                         (unsigned long long)n, (unsigned long long)nat->recv_allowed);
        return -1;
    }
    nat->recv_allowed -= n;
    return 0;
}

void clink__conn_give_credit(struct clink_conn *c, uint64_t n)
{
    struct clink__native *nat = c->nat;
    nat->recv_unannounced += n;
    /* A quarter of the window at a time: few CREDIT frames, and the sender never waits on a small remainder. */
    if (nat->recv_unannounced >= nat->ours.conn_window / 4 && c->state <= CS_DRAINING) {
        uint8_t b[CLINK_CREDIT_LEN];
        clink__put_u32(b, (uint32_t)nat->recv_unannounced);
        if (clink__conn_emit(c, CLINK_FRAME_CREDIT, 0, 0, NULL, 0, b, sizeof(b)) == 0) {
            nat->recv_allowed += nat->recv_unannounced;
            nat->recv_unannounced = 0;
        }
    }
}

int clink__partial_append(struct clink__partial *pm, const uint8_t *p, size_t n, size_t max)
{
    if (pm->len + n > pm->cap) {
        /* 64 KiB first: the common large message (5 chunks) fits without a realloc. */
        size_t cap = pm->cap ? pm->cap * 2 : CLINK_REASM_FIRST;
        while (cap < pm->len + n) {
            cap *= 2;
        }
        if (cap > max) {
            cap = max; /* the caller checked that len + n fits max */
        }
        uint8_t *nb = realloc(pm->buf, cap);
        if (nb == NULL) {
            return -1;
        }
        pm->buf = nb;
        pm->cap = cap;
    }
    memcpy(pm->buf + pm->len, p, n);
    pm->len += n;
    return 0;
}

static void partial_free(struct clink_conn *c, struct clink__partial *pm)
{
    c->nat->reasm_bytes -= pm->len;
    free(pm->buf);
    free(pm);
}

int clink__reasm_take(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p,
                      struct clink__partial **whole)
{
    struct clink__native *nat = c->nat;
    struct clink__idmap *map = h->type == CLINK_FRAME_REQUEST ? &nat->rin_req : &nat->rin_resp;
    struct clink__partial *pm = map->count > 0 ? clink__idmap_get(map, h->id) : NULL;
    if (pm == NULL && !(h->flags & CLINK_FLAG_MORE)) {
        return 2; /* one frame: no copy, no credit */
    }
    if (h->length == 0) {
        /* Chunks are never empty (an empty message is one frame): this one would only hold the window. */
        clink__conn_fail(c, -CLINK_EPROTO, "empty chunk of message %llu", (unsigned long long)h->id);
        return -1;
    }
    if (pm != NULL && (h->flags & CLINK_FLAG_STREAM)) {
        clink__conn_fail(c, -CLINK_EPROTO, "STREAM flag on a continuation of message %llu", (unsigned long long)h->id);
        return -1;
    }
    if (clink__conn_take_credit(c, h->length) < 0) {
        return -1;
    }
    size_t have = pm != NULL ? pm->len : 0;
    if (have + h->length > nat->ours.max_message) {
        clink__conn_fail(c, -CLINK_EPROTO, "message %llu exceeds max_message %u", (unsigned long long)h->id,
                         nat->ours.max_message);
        return -1;
    }
    if (pm == NULL) {
        if ((pm = calloc(1, sizeof(*pm))) == NULL || clink__idmap_put(map, h->id, pm) < 0) {
            free(pm);
            clink__conn_fail(c, -CLINK_ENOMEM, "out of memory");
            return -1;
        }
        pm->method = h->method;
        pm->flags = h->flags & (CLINK_FLAG_STREAM | CLINK_FLAG_END);
    }
    if (clink__partial_append(pm, p, h->length, nat->ours.max_message) < 0) {
        clink__idmap_del(map, h->id);
        partial_free(c, pm);
        clink__conn_fail(c, -CLINK_ENOMEM, "out of memory");
        return -1;
    }
    nat->reasm_bytes += h->length;
    if (h->flags & CLINK_FLAG_MORE) {
        return 0;
    }
    pm->flags |= h->flags & CLINK_FLAG_END;
    clink__idmap_del(map, h->id);
    *whole = pm;
    return 1;
}

void clink__reasm_done(struct clink_conn *c, struct clink__partial *pm)
{
    size_t n = pm->len;
    partial_free(c, pm);
    if (c->state <= CS_DRAINING) {
        clink__conn_give_credit(c, n);
    }
}

void clink__reasm_drop(struct clink_conn *c, struct clink__idmap *m, uint64_t id)
{
    struct clink__partial *pm = m->count > 0 ? clink__idmap_del(m, id) : NULL;
    if (pm != NULL) {
        clink__reasm_done(c, pm);
    }
}

static void free_map(struct clink_conn *c, struct clink__idmap *m)
{
    for (size_t i = 0; m->slots != NULL && i <= m->mask; i++) {
        if (m->slots[i].key != 0) {
            partial_free(c, m->slots[i].val);
        }
    }
    clink__idmap_free(m);
}

void clink__reasm_free(struct clink_conn *c)
{
    free_map(c, &c->nat->rin_req);
    free_map(c, &c->nat->rin_resp);
}
