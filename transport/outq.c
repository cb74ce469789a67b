/*
 * Chunked messages out (protocol version 2): a message larger than one chunk
 * (16,368 payload bytes: with its header, one full TLS record), and every
 * message of a stream, waits here instead of being copied whole into the
 * send buffer. A round robin writes one chunk of each ready source per turn,
 * and only while the connection's send queue is short (PUMP_LOW), so that a
 * small call started meanwhile goes out behind at most that much: no call
 * waits behind a large message.
 *
 * Flow control: a message that is chunked, and every stream message, takes
 * its whole size from the peer's connection credit before its first chunk
 * goes; one that does not fit waits in order. Taking it whole means the
 * receiver can always complete what it has begun to reassemble, so partly
 * received messages never hold the window against one another. A stream
 * message takes its stream's credit whole as well when it is at most 3/4 of
 * the peer's stream window, and a chunk at a time when larger (reserve()),
 * so that a small stream window (which keeps the socket queues short for
 * the calls beside a stream) does not cap the size of a message.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "transport/native.h"

/* Bytes queued for the socket (staged, encrypted, in flight) below which more chunks are written. */
#define PUMP_LOW (128u * 1024u)

/* The payload of m's next chunk (write_chunk's size). */
static size_t next_chunk(const struct clink_conn *c, const struct clink__omsg *m)
{
    return m->left < clink__chunk_max(c) ? m->left : clink__chunk_max(c);
}

/*
 * Stream credit m still needs before its next chunk: all of it for a message
 * the peer's stream window takes whole, else (per_chunk) what the next chunk
 * adds to what is paid.
 */
static size_t stream_need(const struct clink_conn *c, const struct clink__omsg *m)
{
    if (!m->per_chunk) {
        return m->begun ? 0 : m->credit;
    }
    size_t upto = m->total - m->left + next_chunk(c, m);
    return upto > m->paid ? upto - m->paid : 0;
}

/*
 * Take m's credit: 1 (its next chunk may go), 0 (its stream's credit is
 * short), -1 (the connection's is, or no SETTINGS yet). The connection's is
 * taken whole before the first chunk, so a begun message can always be
 * finished at that level (max_message is at most 3/4 of conn_window). A
 * stream's is taken whole too when the message is at most 3/4 of the peer's
 * stream window; a larger one takes it a chunk at a time, which the
 * receiver can grant because it gives back what a partial message holds
 * beyond half its window (streams.c, give_early).
 */
static int reserve(struct clink_conn *c, struct clink__osrc *src, struct clink__omsg *m)
{
    struct clink__native *nat = c->nat;
    if (m->credit == 0) {
        m->begun = 1;
        return 1;
    }
    /* A stream's window covers its DATA: the opening REQUEST is the connection's only, as its receiver counts it. */
    struct clink_stream *st = m->type == CLINK_FRAME_DATA ? src->stream : NULL;
    if (!m->begun) {
        if (!nat->settings_recv || nat->send_credit < (int64_t)m->credit) {
            return -1;
        }
        m->per_chunk = st != NULL && m->credit > nat->peer.stream_window / 4 * 3;
    }
    size_t need = st != NULL ? stream_need(c, m) : 0;
    if (need > 0 && st->send_credit < (int64_t)need) {
        return 0;
    }
    if (!m->begun) {
        nat->send_credit -= (int64_t)m->credit;
        m->begun = 1;
    }
    if (need > 0) {
        st->send_credit -= (int64_t)need;
        m->paid += need;
    }
    return 1;
}

static void push(struct clink__osrc **head, struct clink__osrc **tail, struct clink__osrc *s)
{
    s->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = s;
    } else {
        *head = s;
    }
    *tail = s;
}

static void unlink_from(struct clink__osrc **head, struct clink__osrc **tail, struct clink__osrc *s)
{
    struct clink__osrc *prev = NULL;
    for (struct clink__osrc *it = *head; it != NULL; prev = it, it = it->next) {
        if (it == s) {
            if (prev != NULL) {
                prev->next = s->next;
            } else {
                *head = s->next;
            }
            if (*tail == s) {
                *tail = prev;
            }
            s->next = NULL;
            return;
        }
    }
}

static void set_blocked(struct clink__native *nat, struct clink__osrc *s, int conn)
{
    if (s->blocked_conn != conn) {
        nat->conn_waiters += conn ? 1u : (unsigned)-1;
        s->blocked_conn = conn;
    }
}

static void unlink_src(struct clink__native *nat, struct clink__osrc *s)
{
    if (s->where == OSRC_READY) {
        unlink_from(&nat->ready_head, &nat->ready_tail, s);
    } else if (s->where == OSRC_WAITING) {
        unlink_from(&nat->wait_head, &nat->wait_tail, s);
        set_blocked(nat, s, 0);
    }
    s->where = OSRC_IDLE;
}

/* Place a source by its head message: ready, waiting for credit, or idle (nothing to send). */
static void place(struct clink_conn *c, struct clink__osrc *s)
{
    struct clink__native *nat = c->nat;
    if (s->head == NULL) {
        s->where = OSRC_IDLE;
        return;
    }
    /* Behind others that wait for the connection's credit, a message that needs some waits too: in order. */
    int r = nat->conn_waiters > 0 && s->head->credit > 0 && !s->head->begun ? -1 : reserve(c, s, s->head);
    if (r == 1) {
        push(&nat->ready_head, &nat->ready_tail, s);
        s->where = OSRC_READY;
        clink__mark_dirty(c);
    } else {
        push(&nat->wait_head, &nat->wait_tail, s);
        s->where = OSRC_WAITING;
        set_blocked(nat, s, r < 0);
    }
}

static void append(struct clink_conn *c, struct clink__osrc *s, struct clink__omsg *m)
{
    m->next = NULL;
    if (s->tail != NULL) {
        s->tail->next = m;
    } else {
        s->head = m;
    }
    s->tail = m;
    c->nat->out_queued += m->total;
    if (s->where == OSRC_IDLE) {
        place(c, s);
    }
}

int clink__outq_unary(struct clink_conn *c, uint8_t type, uint16_t method, uint64_t id, const struct iovec *iov,
                      unsigned iovcnt, uint8_t *owned, size_t len)
{
    /* One allocation: the source and its one message. */
    struct unary {
        struct clink__osrc src;
        struct clink__omsg msg;
    } *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return -CLINK_ENOMEM;
    }
    u->src.id = id;
    struct clink__omsg *m = &u->msg;
    m->type = type;
    m->method = method;
    if (owned != NULL) {
        m->owned = owned;
        m->own = (struct iovec){.iov_base = owned, .iov_len = len};
        m->iov = &m->own;
        m->iovcnt = 1;
    } else {
        m->iov = iov;
        m->iovcnt = iovcnt;
    }
    m->left = m->total = m->credit = len;
    append(c, &u->src, m);
    return 0;
}

void clink__outq_stream(struct clink_conn *c, struct clink_stream *s, struct clink__omsg *m)
{
    append(c, &s->src, m);
}

/* Chunks smaller than this are copied even where they could be borrowed: a run costs more than the copy. */
#define BORROW_MIN 4096

/* The kernel has let go of the last run of a message (conn_gather.c): hand it back if it is done with. */
static void msg_released(struct clink__txhold *h)
{
    struct clink__omsg *m = (struct clink__omsg *)((char *)h - offsetof(struct clink__omsg, hold));
    struct clink_stream *s = m->stream;
    s->lent--;
    if (m->settle != 0) {
        clink__stream_sent(s, m, m->settle == OMSG_WRITTEN ? 0 : m->settle_err);
    }
    if (s->lent == 0 && s->end_waits) {
        clink__stream_lent_back(s);
    }
}

/* The chunk's n payload bytes, from m's cursor: borrowed runs where they can be, else copied into out. */
static int chunk_payload(struct clink_conn *c, struct clink__osrc *src, struct clink__omsg *m, size_t n, int borrow)
{
    struct clink__bytes *out = clink__conn_out(c);
    while (n > 0) {
        const struct iovec *v = &m->iov[m->ii];
        size_t k = v->iov_len - m->off;
        if (k > n) {
            k = n;
        }
        const uint8_t *p = (const uint8_t *)v->iov_base + m->off;
        if (borrow && k > 0) {
            if (m->hold.refs == 0) {
                m->hold.release = msg_released;
                m->stream = src->stream;
                src->stream->lent++;
            }
            if (clink__conn_borrow(c, p, k, &m->hold) < 0) {
                return -1;
            }
        } else {
            memcpy(out->base + out->tail, p, k);
            out->tail += k;
            STAT_ADD(c->w, bytes_copied, k);
        }
        n -= k;
        m->off += k;
        if (m->off == v->iov_len) {
            m->ii++;
            m->off = 0;
        }
    }
    return 0;
}

/* Write the next chunk of src's head message. Returns 1 if that finished it, 0 if more is left, -1 on ENOMEM. */
static int write_chunk(struct clink_conn *c, struct clink__osrc *src)
{
    struct clink__omsg *m = src->head;
    size_t n = m->left < clink__chunk_max(c) ? m->left : clink__chunk_max(c);
    uint8_t flags = m->all_flags;
    if (m->left == m->total) {
        flags |= m->first_flags;
    }
    flags |= n < m->left ? CLINK_FLAG_MORE : m->last_flags;
    struct clink__bytes *out = clink__conn_out(c);
    int borrow = src->stream != NULL && m->owned == NULL && n >= BORROW_MIN && clink__conn_can_borrow(c);
    if (clink__bytes_reserve(out, CLINK_FRAME_HDR + (borrow ? 0 : n)) < 0) {
        return -1;
    }
    struct clink_frame_hdr h = {
        .type = m->type, .flags = flags, .method = m->method, .length = (uint32_t)n, .id = src->id};
    clink__frame_encode(out->base + out->tail, &h);
    out->tail += CLINK_FRAME_HDR;
    if (chunk_payload(c, src, m, n, borrow) < 0) {
        return -1;
    }
    m->left -= n;
    c->nat->out_queued -= n;
    c->frames_out++;
    STAT_ADD(c->w, chunks_out, 1);
    return m->left == 0;
}

/* src's head message is written: off the source, which is placed again before anyone hears of it. */
static void finish_msg(struct clink_conn *c, struct clink__osrc *src)
{
    struct clink__omsg *m = src->head;
    src->head = m->next;
    if (src->head == NULL) {
        src->tail = NULL;
    }
    if (src->stream == NULL) {
        free(m->owned);
        free(src); /* the unary block: source and message */
        return;
    }
    free(m->owned);
    m->owned = NULL;
    place(c, src);
    if (m->hold.refs > 0) {
        m->settle = OMSG_WRITTEN; /* handed back when the kernel lets go of its runs (msg_released) */
        return;
    }
    clink__stream_sent(src->stream, m, 0);
}

void clink__outq_pump(struct clink_conn *c)
{
    struct clink__native *nat = c->nat;
    if (nat == NULL) {
        return;
    }
    while (nat->ready_head != NULL && c->state <= CS_DRAINING && clink__conn_queued(c) < PUMP_LOW) {
        struct clink__osrc *src = nat->ready_head;
        nat->ready_head = src->next;
        if (nat->ready_head == NULL) {
            nat->ready_tail = NULL;
        }
        src->next = NULL;
        src->where = OSRC_IDLE;
        int done = write_chunk(c, src);
        if (done < 0) {
            push(&nat->ready_head, &nat->ready_tail, src);
            src->where = OSRC_READY;
            clink__conn_fail(c, -CLINK_ENOMEM, "out of memory");
            return;
        }
        clink__mark_dirty(c);
        if (done) {
            finish_msg(c, src);
        } else {
            place(c, src); /* one chunk per turn: the next source's turn (per_chunk: once its credit is there) */
        }
    }
}

void clink__outq_credit(struct clink_conn *c)
{
    struct clink__native *nat = c->nat;
    struct clink__osrc *prev = NULL, *s = nat->wait_head;
    while (s != NULL) {
        struct clink__osrc *next = s->next;
        int r = reserve(c, s, s->head);
        if (r < 0) {
            set_blocked(nat, s, 1);
            break; /* the connection's credit is short: whoever waited longest goes first */
        }
        if (r == 1) {
            if (prev != NULL) {
                prev->next = next;
            } else {
                nat->wait_head = next;
            }
            if (nat->wait_tail == s) {
                nat->wait_tail = prev;
            }
            set_blocked(nat, s, 0);
            push(&nat->ready_head, &nat->ready_tail, s);
            s->where = OSRC_READY;
            clink__mark_dirty(c);
        } else {
            set_blocked(nat, s, 0);
            prev = s; /* its stream's credit: others may go */
        }
        s = next;
    }
}

/* A begun message that will not be finished gives back the credit its unsent part took. */
static void unreserve(struct clink_conn *c, struct clink__omsg *m)
{
    if (m->begun && m->credit > 0) {
        c->nat->send_credit += (int64_t)m->left;
    }
    c->nat->out_queued -= m->left;
}

int clink__outq_drop_unary(struct clink_conn *c, uint64_t id)
{
    struct clink__native *nat = c->nat;
    struct clink__osrc *lists[2] = {nat->ready_head, nat->wait_head};
    for (int i = 0; i < 2; i++) {
        for (struct clink__osrc *s = lists[i]; s != NULL; s = s->next) {
            if (s->stream == NULL && s->id == id && s->head->type == CLINK_FRAME_REQUEST) {
                int written = s->head->left < s->head->total;
                unlink_src(nat, s);
                unreserve(c, s->head);
                free(s->head->owned);
                free(s);
                return written;
            }
        }
    }
    return 0;
}

void clink__outq_drop_stream(struct clink_conn *c, struct clink_stream *s, int err)
{
    unlink_src(c->nat, &s->src);
    struct clink__omsg *m = s->src.head;
    s->src.head = s->src.tail = NULL; /* clink__stream_sent keeps each on this list again, for the loop */
    while (m != NULL) {
        struct clink__omsg *next = m->next;
        unreserve(c, m);
        free(m->owned);
        m->owned = NULL;
        if (m->hold.refs > 0) {
            m->settle = OMSG_DROPPED; /* its first chunks are with the kernel: handed back when it lets go */
            m->settle_err = err;
        } else {
            clink__stream_sent(s, m, err);
        }
        m = next;
    }
}

void clink__outq_goaway(struct clink_conn *c)
{
    struct clink__native *nat = c->nat;
    /* Collect first: ending a call or stream takes its source off the lists being walked. */
    uint64_t ids[64];
    struct clink_stream *streams[64];
    size_t n = 0;
    struct clink__osrc *lists[2] = {nat->ready_head, nat->wait_head};
    for (int i = 0; i < 2; i++) {
        for (struct clink__osrc *s = lists[i]; s != NULL && n < 64; s = s->next) {
            struct clink__omsg *m = s->head;
            if (m != NULL && m->type == CLINK_FRAME_REQUEST && m->left == m->total) {
                ids[n] = s->id;
                streams[n++] = s->stream;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (streams[i] != NULL) {
            clink__stream_end(streams[i], -CLINK_EGOAWAY, NULL, 0);
            continue;
        }
        struct clink_call *call = clink__idmap_get(&nat->calls, ids[i]);
        if (call != NULL) {
            clink__conn_detach_call(c, call); /* drops its queued request */
            clink__call_finish(c->w, call, -CLINK_EGOAWAY, NULL, 0);
        }
    }
}

void clink__outq_free(struct clink_conn *c)
{
    struct clink__native *nat = c->nat;
    struct clink__osrc *lists[2] = {nat->ready_head, nat->wait_head};
    nat->ready_head = nat->ready_tail = nat->wait_head = nat->wait_tail = NULL;
    nat->conn_waiters = 0;
    for (int i = 0; i < 2; i++) {
        struct clink__osrc *s = lists[i];
        while (s != NULL) {
            struct clink__osrc *next = s->next;
            s->where = OSRC_IDLE;
            s->blocked_conn = 0;
            if (s->stream == NULL) {
                free(s->head->owned);
                free(s);
            }
            s = next; /* a stream's messages go back to it when it fails (clink__streams_fail) */
        }
    }
}
