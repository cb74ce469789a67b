/*
 * clink's native protocol on a connection: the state native.c (frames,
 * HELLO, login, GOAWAY), calls.c (our calls), outq.c (chunked messages and
 * their scheduler), reasm.c (chunked messages in) and streams.c share,
 * behind c->nat.
 */
#ifndef CLINK_TRANSPORT_NATIVE_H
#define CLINK_TRANSPORT_NATIVE_H

#include "clink/stream.h"
#include "transport/conn_int.h"
#include "transport/frame.h"
#include "transport/idmap.h"

/*
 * An outgoing message sent in chunks (outq.c): a large unary message, or
 * any message of a stream. Its bytes stay where they are (the caller's
 * buffers, or the copy an answer owns) until each chunk is written.
 */
struct clink__omsg {
    struct clink__omsg *next; /* its source's FIFO */
    uint8_t type;             /* REQUEST, RESPONSE or DATA */
    uint8_t all_flags;        /* on every chunk (OPENER) */
    uint8_t first_flags;      /* on its first chunk (STREAM) */
    uint8_t last_flags;       /* on its last chunk (END) */
    uint16_t method;
    const struct iovec *iov; /* what is left: iov[ii] from off */
    unsigned iovcnt, ii;
    size_t off, left, total;
    size_t credit;    /* flow-controlled bytes (0: one unchunked frame) */
    int begun;        /* its credit is taken, chunks may go */
    int per_chunk;    /* larger than its stream's window allows whole: stream credit a chunk at a time */
    size_t paid;      /* per_chunk: stream credit taken so far (written bytes and the next chunk's) */
    struct iovec own; /* the iovec of an owned copy */
    uint8_t *owned;   /* an answer's copy, freed once written; NULL: the caller's buffers */
    void *tag;        /* a stream message: on_sent's tag */
    int has_tag;      /* on_sent is owed */
    /*
     * A stream message sent from the caller's buffers (conn_gather.c): runs
     * of it the kernel has not let go of yet. Written or dropped meanwhile,
     * it is handed back (clink__stream_sent) when the last is let go.
     */
    struct clink__txhold hold;
    struct clink_stream *stream;
    int settle;     /* OMSG_WRITTEN or OMSG_DROPPED: handed back once hold.refs is 0 */
    int settle_err; /* ... with this status if dropped */
};
enum { OMSG_WRITTEN = 1, OMSG_DROPPED };

/* What sends chunks: one large unary message, or a stream's sending direction (its messages in order). */
struct clink__osrc {
    struct clink__osrc *next; /* in the ready ring or the credit wait list */
    uint64_t id;
    struct clink_stream *stream; /* a stream's direction, else NULL */
    struct clink__omsg *head, *tail;
    int where;        /* OSRC_IDLE, OSRC_READY, OSRC_WAITING */
    int blocked_conn; /* waiting: for the connection's credit (else its stream's) */
};
enum { OSRC_IDLE = 0, OSRC_READY, OSRC_WAITING };

/* A message coming in chunks (reasm.c); its buffer starts at this size. */
#define CLINK_REASM_FIRST ((size_t)65536)
struct clink__partial {
    uint8_t *buf;
    size_t len, cap;
    uint16_t method;
    uint8_t flags; /* its first chunk's (STREAM, END) */
};

struct clink_stream {
    struct clink_conn *conn;
    uint64_t id;
    uint16_t method;
    int mine;      /* we opened it */
    int accepted;  /* accepting side: its handler accepted it */
    int local_end; /* our direction's END is queued */
    int peer_end;  /* the peer's direction ended */
    int over;      /* ended: out of the books, on_end queued or run */
    int end_status;
    char *end_msg;
    size_t end_len;
    unsigned flags; /* CLINK_STREAM_* */
    struct clink_stream_cbs cbs;
    void *user;
    atomic_int refs; /* the connection's books + messages posted to its worker + on_end pending */
    struct clink__osrc src;
    int64_t send_credit; /* what the peer still lets us send on it */
    struct clink__partial rin;
    uint64_t recv_allowed;     /* what the peer may still send before more credit */
    uint64_t recv_unannounced; /* consumed, not yet granted back */
    uint64_t recv_held;        /* delivered, not yet consumed (manual credit) */
    uint64_t rin_early;        /* of rin.len: stream credit given back before delivery (see give_early) */
    uint64_t held_early;       /* of recv_held: the same, after delivery */
    struct clink__timer timer; /* the opener's deadline */
    struct clink_stream *next; /* the worker's list of ended streams */
    unsigned lent;             /* its messages whose runs the kernel still reads (outq.c) */
    int end_waits;             /* ended while lent: on_end waits for them */
};

struct clink__native {
    struct clink__idmap calls;                /* ours, in flight, by id */
    struct clink_call *pend_head, *pend_tail; /* waiting for write-buffer room */
    uint64_t last_peer_id;                    /* the highest request id the peer sent (our GOAWAY names it) */
    uint64_t last_call_ns;                    /* when we last sent a call on it (streams.c: a busy connection) */
    uint32_t peer_max_frame;
    uint16_t version;
    int goaway_sent, goaway_recv;
    uint64_t goaway_last; /* the peer's GOAWAY: the highest of our request ids it had seen */

    /* version 2: what the peer announced in SETTINGS (0 until then: chunked messages wait) */
    int settings_recv;
    struct clink_settings peer;
    struct clink_settings ours;
    /* sending (outq.c) */
    struct clink__osrc *ready_head, *ready_tail; /* round robin, a chunk per turn */
    struct clink__osrc *wait_head, *wait_tail;   /* waiting for credit, in order */
    int64_t send_credit;                         /* the peer's connection window left */
    unsigned conn_waiters;                       /* sources waiting for the connection's credit */
    size_t out_queued;                           /* bytes of chunked messages not yet written */
    /* receiving (reasm.c) */
    struct clink__idmap rin_req;  /* the peer's chunked requests, by its id */
    struct clink__idmap rin_resp; /* answers to our calls coming in chunks, by our id */
    uint64_t recv_allowed;        /* flow-controlled bytes the peer may still send */
    uint64_t recv_unannounced;    /* taken in and given back, not yet granted as CREDIT */
    uint64_t reasm_bytes;         /* bytes held in partial messages */
    /* streams.c */
    struct clink__idmap streams_mine;   /* by our call id */
    struct clink__idmap streams_theirs; /* by the peer's id */
};

/* A message above this goes in chunks (version 2): a chunk, or the peer's max_frame if smaller. */
static inline size_t clink__chunk_max(const struct clink_conn *c)
{
    return c->nat->peer_max_frame < CLINK_CHUNK ? c->nat->peer_max_frame : CLINK_CHUNK;
}

/* native.c */
/* A frame with version-2 flags and a small payload (CREDIT, SETTINGS). */
int clink__conn_emit_flags(struct clink_conn *c, uint8_t type, uint8_t flags, uint64_t id, const void *p, size_t n);

/* outq.c */
/* Queue a unary message larger than a chunk (answers: owned copy, requests: the call's buffers). */
int clink__outq_unary(struct clink_conn *c, uint8_t type, uint16_t method, uint64_t id, const struct iovec *iov,
                      unsigned iovcnt, uint8_t *owned, size_t len);
/* Append a message to a stream's direction. */
void clink__outq_stream(struct clink_conn *c, struct clink_stream *s, struct clink__omsg *m);
/* Write chunks while the send queue is short (flush, after each send). */
void clink__outq_pump(struct clink_conn *c);
/* Credit came (SETTINGS or CREDIT): start what waited for it. */
void clink__outq_credit(struct clink_conn *c);
/* Drop a unary message still queued (its call ended); returns 1 if some of it was written. */
int clink__outq_drop_unary(struct clink_conn *c, uint64_t id);
/* Drop a stream's queued messages (on_sent with err for each). */
void clink__outq_drop_stream(struct clink_conn *c, struct clink_stream *s, int err);
/* We send GOAWAY: our requests (and stream openings) queued with nothing written end with -CLINK_EGOAWAY. */
void clink__outq_goaway(struct clink_conn *c);
/* Free everything queued (the connection ends). */
void clink__outq_free(struct clink_conn *c);

/* reasm.c: a REQUEST/RESPONSE frame of version 2 that may be a chunk. Returns 1 if whole (deliver *msg, *len), 0 if
 * more is to come, -1 after failing the connection. */
int clink__reasm_take(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p,
                      struct clink__partial **whole);
void clink__reasm_done(struct clink_conn *c, struct clink__partial *pm); /* delivered: free, give credit back */
/* Append n bytes (len + n <= max, checked by the caller), growing the buffer. 0, or -1 out of memory. */
int clink__partial_append(struct clink__partial *pm, const uint8_t *p, size_t n, size_t max);
void clink__reasm_drop(struct clink_conn *c, struct clink__idmap *m, uint64_t id); /* CANCEL, call ended */
void clink__reasm_free(struct clink_conn *c);
/* Give n flow-controlled bytes back to the connection window (CREDIT once enough). */
void clink__conn_give_credit(struct clink_conn *c, uint64_t n);
/* Take n flow-controlled bytes in: 0, or -1 after failing the connection (the peer exceeded its credit). */
int clink__conn_take_credit(struct clink_conn *c, uint64_t n);

/* streams.c */
int clink__stream_on_request(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p, size_t len);
void clink__stream_on_data(struct clink_conn *c, const struct clink_frame_hdr *h, const uint8_t *p);
void clink__stream_on_credit(struct clink_conn *c, const struct clink_frame_hdr *h, uint32_t n);
void clink__stream_on_error(struct clink_conn *c, struct clink_stream *s, int status, const uint8_t *msg, size_t n);
void clink__stream_on_cancel(struct clink_conn *c, uint64_t id);
void clink__stream_sent(struct clink_stream *s, struct clink__omsg *m, int status); /* outq: a message is written */
/* An ended stream's last lent message is handed back: its on_end may run now (queued for the loop). */
void clink__stream_lent_back(struct clink_stream *s);
void clink__streams_fail(struct clink_conn *c, int err); /* the connection ends */
void clink__streams_free(struct clink_conn *c);
void clink__stream_end(struct clink_stream *s, int status, const char *msg, size_t len);
void clink__stream_put(struct clink_stream *s);
void clink__stream_consumed(struct clink_stream *s, uint64_t n);
int clink__stream_open_here(struct clink_stream *s, uint8_t *open, size_t len, int end, uint32_t timeout_ms);
int clink__stream_send_here(struct clink_stream *s, const struct iovec *iov, unsigned iovcnt, int end, void *tag);
void clink__stream_cancel_here(struct clink_stream *s, const char *fail_msg);

#endif
