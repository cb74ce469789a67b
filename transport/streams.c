/*
 * Streams on a native connection (protocol version 2, clink/stream.h): the
 * books of the streams we opened and those the peer opened, their messages
 * in (DATA, reassembled up to max_message) and out (through outq.c), the
 * credit each side grants, and their one ending each. Everything here runs on
 * the connection's worker; streams_api.c is what other threads call.
 */
#include <stdlib.h>
#include <string.h>

#include "transport/native.h"

static struct clink__idmap *books(struct clink_conn *c, int mine)
{
    return mine ? &c->nat->streams_mine : &c->nat->streams_theirs;
}

void clink__stream_put(struct clink_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1) {
        return;
    }
    struct clink_conn *c = s->conn;
    free(s->end_msg);
    free(s->rin.buf);
    free(s);
    clink__conn_put(c);
}

/* Onto its worker's list of ended streams, whose on_end the loop runs (clink__streams_run_ended). */
static void queue_ended(struct clink_stream *s)
{
    struct clink_worker *w = s->conn->w;
    s->next = NULL;
    if (w->streams_ended_tail != NULL) {
        w->streams_ended_tail->next = s;
    } else {
        w->streams_ended = s;
    }
    w->streams_ended_tail = s;
}

/*
 * The stream is over: out of the books, its queued messages and credit
 * given back, on_end queued for the loop (never inside the caller's own
 * clink_stream_cancel, nor in the middle of a frame's dispatch).
 */
void clink__stream_end(struct clink_stream *s, int status, const char *msg, size_t len)
{
    if (s->over) {
        return;
    }
    struct clink_conn *c = s->conn;
    s->over = 1;
    s->end_status = status;
    if (len > 0 && (s->end_msg = malloc(len)) != NULL) {
        memcpy(s->end_msg, msg, len);
        s->end_len = len;
    }
    clink__idmap_del(books(c, s->mine), s->id);
    clink__wheel_del(&c->w->wheel, &s->timer);
    clink__outq_drop_stream(c, s, status < 0 ? status : -CLINK_ECLOSED);
    /* What the peer sent that we will never consume: the connection's credit comes back. */
    uint64_t held = s->recv_held + s->rin.len;
    s->recv_held = 0;
    s->rin.len = 0;
    s->held_early = s->rin_early = 0;
    if (held > 0 && c->state <= CS_DRAINING) {
        clink__conn_give_credit(c, held);
    }
    STAT_ADD(c->w, streams_ok, status == 0 ? 1 : 0);
    STAT_ADD(c->w, streams_failed, status == 0 ? 0 : 1);
    queue_ended(s);       /* the books' reference goes with it */
    clink__mark_dirty(c); /* the loop runs the list on its next pass */
    clink__conn_maybe_drained(c);
}

void clink__streams_run_ended(struct clink_worker *w)
{
    struct clink_stream *s = w->streams_ended;
    w->streams_ended = w->streams_ended_tail = NULL;
    while (s != NULL) {
        struct clink_stream *next = s->next;
        if (s->lent > 0) {
            /* The kernel still reads some of its messages: on_end after they are handed back. */
            s->end_waits = 1;
            s = next;
            continue;
        }
        /* Messages that never left: their buffers are the caller's again, before the end is told. */
        struct clink__omsg *m;
        while ((m = s->src.head) != NULL) {
            s->src.head = m->next;
            if (m->has_tag && s->cbs.on_sent != NULL) {
                s->cbs.on_sent(s, m->tag, s->end_status < 0 ? s->end_status : -CLINK_ECLOSED, s->user);
            }
            free(m);
        }
        s->src.tail = NULL;
        if (s->cbs.on_end != NULL) {
            s->cbs.on_end(s, s->end_status, s->end_msg, s->end_len, s->user);
        }
        clink__stream_put(s);
        s = next;
    }
}

void clink__stream_lent_back(struct clink_stream *s)
{
    s->end_waits = 0;
    queue_ended(s); /* the loop runs the list on every pass */
}

static void check_done(struct clink_stream *s)
{
    if (s->local_end == 2 && s->peer_end && !s->over) {
        clink__stream_end(s, 0, NULL, 0);
    }
}

void clink__stream_sent(struct clink_stream *s, struct clink__omsg *m, int status)
{
    if (status < 0 || s->over) {
        /* Dropped: kept on the source's list (now off the scheduler) for the loop to hand back. */
        m->next = NULL;
        if (s->src.tail != NULL) {
            s->src.tail->next = m;
        } else {
            s->src.head = m;
        }
        s->src.tail = m;
        return;
    }
    if (m->last_flags & CLINK_FLAG_END) {
        s->local_end = 2; /* written */
    }
    if (m->has_tag && s->cbs.on_sent != NULL) {
        s->cbs.on_sent(s, m->tag, 0, s->user);
    }
    free(m);
    check_done(s);
}

/*
 * The most a stream may have coming at us (granted, not yet received) while
 * our calls share its connection. Those bytes sit in the kernel's queues
 * ahead of every answer: a 4 MiB window is milliseconds of them, and an
 * answer waits that long. Alone, a stream gets its whole window (fewer
 * credit round trips, and a stall of either worker does not empty the pipe).
 */
#define BUSY_WINDOW    ((uint64_t)256 * 1024)
#define BUSY_LINGER_NS (100ull * 1000000ull) /* a connection is busy this long after its last call */

static uint64_t grant_cap(const struct clink_conn *c)
{
    uint64_t w = c->nat->ours.stream_window;
    /* Our unary calls (clink__conn_calls_in_flight counts streams too) */
    int busy = c->nat->calls.count > 0 || c->w->now_ns - c->nat->last_call_ns < BUSY_LINGER_NS;
    return busy && w > BUSY_WINDOW ? BUSY_WINDOW : w;
}

/*
 * Give n bytes of the stream's window back, as CREDIT a quarter of the
 * window at a time; while the connection is busy with calls, only as much as
 * keeps what may still arrive within BUSY_WINDOW (the rest waits here, and
 * goes with the next grant once the connection is quiet). Every byte the
 * sender used comes back as it is consumed, so with the pipe empty the
 * ungranted bytes are the whole window: a grant always follows.
 */
static void stream_give_credit(struct clink_stream *s, uint64_t n)
{
    struct clink_conn *c = s->conn;
    if (s->peer_end) {
        return; /* nothing more will come on it */
    }
    s->recv_unannounced += n;
    uint64_t cap = grant_cap(c);
    uint64_t room = s->recv_allowed < cap ? cap - s->recv_allowed : 0;
    uint64_t g = s->recv_unannounced < room ? s->recv_unannounced : room;
    if (g > 0 && g >= cap / 4) {
        uint8_t b[CLINK_CREDIT_LEN];
        clink__put_u32(b, (uint32_t)g);
        if (clink__conn_emit_flags(c, CLINK_FRAME_CREDIT, s->mine ? CLINK_FLAG_OPENER : 0, s->id, b, sizeof(b)) == 0) {
            s->recv_allowed += g;
            s->recv_unannounced -= g;
        }
    }
}

/*
 * Give n consumed bytes back: to the connection at once, to the stream what
 * give_early did not give already. Early bytes count as consumed first, so
 * that while the application holds them the stream's window stays taken by
 * the rest of their message: its memory stays within stream_window +
 * max_message (docs/protocol.md, "Flow control").
 */
void clink__stream_consumed(struct clink_stream *s, uint64_t n)
{
    if (n > s->recv_held) {
        n = s->recv_held;
    }
    s->recv_held -= n;
    uint64_t early = n < s->held_early ? n : s->held_early;
    s->held_early -= early;
    struct clink_conn *c = s->conn;
    if (s->over || c->state > CS_DRAINING) {
        return;
    }
    clink__conn_give_credit(c, n);
    stream_give_credit(s, n - early);
}

/*
 * A message larger than the stream's window can only be gathered if its
 * partial bytes do not keep the window: what the partial holds beyond half
 * the window goes back to the stream now (not to the connection, whose
 * credit the sender took whole), so the sender, which takes a large
 * message's stream credit a chunk at a time (outq.c), always has at least a
 * quarter of the window to send more. Half leaves the other half for whole
 * messages queued behind.
 */
static void give_early(struct clink_stream *s)
{
    struct clink_conn *c = s->conn;
    uint64_t keep = c->nat->ours.stream_window / 2;
    uint64_t holds = s->rin.len - s->rin_early;
    if (holds > keep && c->state <= CS_DRAINING) {
        s->rin_early += holds - keep;
        stream_give_credit(s, holds - keep);
    }
}

/* A whole message to on_msg. The caller holds a reference: the callback may end the stream. */
static void deliver(struct clink_stream *s, const uint8_t *p, size_t n)
{
    s->recv_held += n;
    if (s->cbs.on_msg != NULL && !s->over) {
        s->cbs.on_msg(s, p, n, s->user);
    }
    if (!(s->flags & CLINK_STREAM_MANUAL_CREDIT)) {
        clink__stream_consumed(s, n);
    }
}

void clink__stream_on_data(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p)
{
    if (clink__conn_take_credit(c, h->length) < 0) {
        return;
    }
    /* OPENER: the sender opened it, so it is one of the peer's streams. */
    struct clink__idmap *m = books(c, !(h->flags & CLINK_FLAG_OPENER));
    struct clink_stream *s = m->count > 0 ? clink__idmap_get(m, h->id) : NULL;
    if (s == NULL || s->peer_end) {
        /* Late (the stream ended here) or hostile: dropped, counted, its credit given back. */
        STAT_ADD(c->w, stream_frames_refused, 1);
        clink__conn_give_credit(c, h->length);
        return;
    }
    if (h->length > s->recv_allowed) {
        STAT_ADD(c->w, flow_violations, 1);
        clink__conn_fail(c, -CLINK_EPROTO, "flow control: %u bytes on stream %llu past its window (%llu left)",
                         h->length, (unsigned long long)h->id, (unsigned long long)s->recv_allowed);
        return;
    }
    s->recv_allowed -= h->length;
    STAT_ADD(c->w, chunks_in, 1);
    /* A message has at least one byte: an empty DATA frame is only an END, with no message half gathered. */
    if (h->length == 0 && (!(h->flags & CLINK_FLAG_END) || s->rin.len > 0)) {
        clink__conn_fail(c, -CLINK_EPROTO, "empty DATA on stream %llu that ends no direction",
                         (unsigned long long)h->id);
        return;
    }
    atomic_fetch_add(&s->refs, 1);
    if (h->length == 0) {
        /* just the end */
    } else if (s->rin.len == 0 && !(h->flags & CLINK_FLAG_MORE)) {
        deliver(s, p, h->length); /* one chunk: straight from the receive buffer */
    } else {
        struct clink__partial *pm = &s->rin;
        if (pm->len + h->length > c->nat->ours.max_message) {
            clink__conn_fail(c, -CLINK_EPROTO, "stream %llu: message exceeds max_message %u", (unsigned long long)h->id,
                             c->nat->ours.max_message);
            clink__stream_put(s);
            return;
        }
        if (clink__partial_append(pm, p, h->length, c->nat->ours.max_message) < 0) {
            clink__conn_fail(c, -CLINK_ENOMEM, "out of memory");
            clink__stream_put(s);
            return;
        }
        give_early(s);
        if (!(h->flags & CLINK_FLAG_MORE)) {
            size_t n = pm->len;
            pm->len = 0;
            s->held_early += s->rin_early; /* consumption gives back only the rest */
            s->rin_early = 0;
            deliver(s, pm->buf, n);
            if (pm->cap > 16 * (size_t)CLINK_CHUNK) { /* a burst's buffer: not kept */
                free(pm->buf);
                pm->buf = NULL;
                pm->cap = 0;
            }
        }
    }
    if ((h->flags & CLINK_FLAG_END) && !s->over) {
        s->peer_end = 1;
        if (s->cbs.on_peer_end != NULL) {
            s->cbs.on_peer_end(s, s->user);
        }
        check_done(s);
    }
    clink__stream_put(s);
}

void clink__stream_on_credit(struct clink_conn *c, const struct clink_frame_hdr *h, uint32_t n)
{
    if (n == 0) {
        clink__conn_fail(c, -CLINK_EPROTO, "CREDIT of 0 bytes");
        return;
    }
    int64_t *credit = &c->nat->send_credit;
    if (h->id != 0) {
        struct clink__idmap *m = books(c, !(h->flags & CLINK_FLAG_OPENER));
        struct clink_stream *s = m->count > 0 ? clink__idmap_get(m, h->id) : NULL;
        if (s == NULL) {
            return; /* it ended here meanwhile */
        }
        credit = &s->send_credit;
    }
    if (*credit + (int64_t)n > (int64_t)CLINK_WINDOW_MAX) {
        STAT_ADD(c->w, flow_violations, 1);
        clink__conn_fail(c, -CLINK_EPROTO, "CREDIT of %u bytes takes a window past 2^31-1", n);
        return;
    }
    *credit += n;
    clink__outq_credit(c);
}

/* A REQUEST that opens a stream, whole: its handler accepts or fails it before it returns. */
int clink__stream_on_request(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p, size_t len)
{
    struct clink_handler *hd = &c->node->handlers[h->method];
    if (hd->stream_fn == NULL) {
        char msg[64];
        snprintf(msg, sizeof(msg), "no stream handler for method %u", h->method);
        clink__conn_emit_error(c, h->id, CLINK_ENOMETHOD, msg);
        return 0;
    }
    if (clink__idmap_get(&c->nat->streams_theirs, h->id) != NULL) {
        clink__conn_fail(c, -CLINK_EPROTO, "stream %llu opened twice", (unsigned long long)h->id);
        return -1;
    }
    struct clink_stream *s = calloc(1, sizeof(*s));
    if (s == NULL || clink__idmap_put(&c->nat->streams_theirs, h->id, s) < 0) {
        free(s);
        clink__conn_emit_error(c, h->id, CLINK_ENOMEM, "out of memory");
        return 0;
    }
    atomic_fetch_add(&c->refs, 1);
    atomic_init(&s->refs, 2); /* the books, and this dispatch */
    s->conn = c;
    s->id = h->id;
    s->method = h->method;
    s->src.id = h->id;
    s->src.stream = s;
    s->send_credit = c->nat->peer.stream_window;
    s->recv_allowed = c->nat->ours.stream_window;
    s->peer_end = (h->flags & CLINK_FLAG_END) != 0;
    clink__timer_init(&s->timer, TIMER_STREAM);
    STAT_ADD(c->w, streams_accepted, 1);
    hd->stream_fn(s, p, len, hd->user);
    if (!s->accepted && !s->over) {
        CLINK_CONN_LOG(c, CLINK_LOG_WARN, "stream handler of method %u neither accepted nor failed its stream",
                       h->method);
        clink__conn_emit_error(c, h->id, CLINK_EREMOTE, "stream not accepted");
        clink__stream_end(s, -CLINK_EREMOTE, NULL, 0);
    } else if (s->peer_end) {
        check_done(s);
    }
    clink__stream_put(s);
    return 0;
}

void clink__stream_on_error(struct clink_conn *c, struct clink_stream *s, int status, const uint8_t *msg, size_t n)
{
    (void)c;
    clink__stream_end(s, status, (const char *)msg, n);
}

void clink__stream_on_cancel(struct clink_conn *c, uint64_t id)
{
    struct clink_stream *s = c->nat->streams_theirs.count > 0 ? clink__idmap_get(&c->nat->streams_theirs, id) : NULL;
    if (s != NULL) {
        clink__stream_end(s, -CLINK_ECANCELED, "canceled by the peer", 20);
    }
}

void clink__stream_timer(struct clink__timer *t)
{
    struct clink_stream *s = (struct clink_stream *)((char *)t - offsetof(struct clink_stream, timer));
    struct clink_conn *c = s->conn;
    if (c->state <= CS_DRAINING) {
        CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_CANCEL, 0, s->id, NULL, 0, NULL, 0) < 0);
    }
    clink__stream_end(s, -CLINK_ETIMEDOUT, NULL, 0);
}

static void fail_map(struct clink_conn *c, struct clink__idmap *m, int err)
{
    /* Collect first: ending takes each out of the map being walked. */
    size_t n = m->count, k = 0;
    if (n == 0) {
        return;
    }
    struct clink_stream **all = malloc(n * sizeof(*all));
    if (all == NULL) {
        return; /* the connection's free gives them back (clink__streams_free) */
    }
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].key != 0) {
            all[k++] = m->slots[i].val;
        }
    }
    for (size_t i = 0; i < k; i++) {
        int e = err;
        /* Ours, above the last id the peer's GOAWAY named: it never saw the stream, so it is safe to open again. */
        if (all[i]->mine && err == -CLINK_ECLOSED && c->nat->goaway_recv && all[i]->id > c->nat->goaway_last) {
            e = -CLINK_EGOAWAY;
        }
        clink__stream_end(all[i], e, NULL, 0);
    }
    free(all);
}

void clink__streams_fail(struct clink_conn *c, int err)
{
    fail_map(c, &c->nat->streams_mine, err);
    fail_map(c, &c->nat->streams_theirs, err);
}

void clink__streams_free(struct clink_conn *c)
{
    clink__idmap_free(&c->nat->streams_mine);
    clink__idmap_free(&c->nat->streams_theirs);
}

/* ---- the operations, on the stream's worker (streams_api.c calls these there) ---- */

static size_t iov_total(const struct iovec *iov, unsigned n)
{
    size_t t = 0;
    for (unsigned i = 0; i < n; i++) {
        t += iov[i].iov_len;
    }
    return t;
}

/* Largest message the peer takes on a stream: its max_message (one larger than its stream window goes with that
 * window's credit a chunk at a time, outq.c). */
static size_t stream_msg_max(const struct clink_conn *c)
{
    return c->nat->peer.max_message;
}

static struct clink__omsg *new_msg(const struct iovec *iov, unsigned iovcnt, size_t len)
{
    /* The iovec array is copied with it: only the buffers stay borrowed. */
    struct clink__omsg *m = calloc(1, sizeof(*m) + iovcnt * sizeof(struct iovec));
    if (m == NULL) {
        return NULL;
    }
    struct iovec *v = (struct iovec *)(m + 1);
    if (iovcnt > 0) {
        memcpy(v, iov, iovcnt * sizeof(*v));
    }
    m->iov = v;
    m->iovcnt = iovcnt;
    m->left = m->total = len;
    return m;
}

int clink__stream_open_here(struct clink_stream *s, uint8_t *open, size_t len, int end, uint32_t timeout_ms)
{
    struct clink_conn *c = s->conn;
    if (c->state != CS_OPEN) {
        free(open);
        return c->w->stopping ? -CLINK_ESHUTDOWN : c->state == CS_DRAINING ? -CLINK_EGOAWAY : -CLINK_ECLOSED;
    }
    if (c->proto != &clink__proto_native || c->nat->version < 2 || !c->nat->settings_recv) {
        free(open);
        return -CLINK_EVERSION;
    }
    if (len > c->nat->peer.max_message) {
        free(open);
        return -CLINK_EFRAMETOOBIG;
    }
    struct iovec v = {.iov_base = open, .iov_len = len};
    struct clink__omsg *m = new_msg(&v, len > 0 ? 1 : 0, len);
    if (m == NULL || clink__idmap_put(&c->nat->streams_mine, s->id, s) < 0) {
        free(m);
        free(open);
        return -CLINK_ENOMEM;
    }
    m->owned = open;
    m->type = CLINK_FRAME_REQUEST;
    m->method = s->method;
    m->first_flags = CLINK_FLAG_STREAM;
    m->last_flags = end ? CLINK_FLAG_END : 0;
    m->credit = len > clink__chunk_max(c) ? len : 0; /* a one-frame REQUEST is not flow-controlled */
    s->src.id = s->id;
    s->src.stream = s;
    s->send_credit = c->nat->peer.stream_window;
    s->recv_allowed = c->nat->ours.stream_window;
    s->local_end = end ? 1 : 0;
    clink__timer_init(&s->timer, TIMER_STREAM);
    if (timeout_ms > 0) {
        clink__wheel_add(&c->w->wheel, &s->timer, (uint64_t)timeout_ms * 1000000ull);
    }
    STAT_ADD(c->w, streams_opened, 1);
    clink__outq_stream(c, s, m);
    return 0;
}

int clink__stream_send_here(struct clink_stream *s, const struct iovec *iov, unsigned iovcnt, int end, void *tag)
{
    struct clink_conn *c = s->conn;
    if (s->over) {
        return -CLINK_ECLOSED;
    }
    if (s->local_end || (!s->mine && !s->accepted)) {
        return -CLINK_EINVAL;
    }
    size_t len = iov_total(iov, iovcnt);
    if (len > stream_msg_max(c)) {
        return -CLINK_EFRAMETOOBIG;
    }
    if (len == 0 && !end) {
        return -CLINK_EINVAL; /* a message has at least one byte: an empty one could not be told from an end */
    }
    struct clink__omsg *m = new_msg(iov, iovcnt, len);
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    m->type = CLINK_FRAME_DATA;
    m->all_flags = s->mine ? CLINK_FLAG_OPENER : 0;
    m->last_flags = end ? CLINK_FLAG_END : 0;
    m->credit = len;
    m->tag = tag;
    m->has_tag = iovcnt > 0;
    if (end) {
        s->local_end = 1;
    }
    clink__outq_stream(c, s, m);
    return 0;
}

void clink__stream_cancel_here(struct clink_stream *s, const char *fail_msg)
{
    struct clink_conn *c = s->conn;
    if (s->over) {
        return;
    }
    if (c->state <= CS_DRAINING) {
        if (s->mine) {
            CLINK_IGNORE(clink__conn_emit(c, CLINK_FRAME_CANCEL, 0, s->id, NULL, 0, NULL, 0) < 0);
        } else if (fail_msg != NULL) {
            clink__conn_emit_error(c, s->id, CLINK_EREMOTE, fail_msg);
        } else {
            clink__conn_emit_error(c, s->id, CLINK_ECANCELED, "stream canceled");
        }
    }
    clink__stream_end(s, -CLINK_ECANCELED, NULL, 0);
}
