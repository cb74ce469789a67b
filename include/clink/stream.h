/*
 * clink streams: one call that carries a sequence of messages of any total
 * size, in either or both directions (client-streaming, server-streaming,
 * bidirectional), with credit-based flow control, on protocol version 2
 * (docs/protocol.md, "Streams").
 *
 * The side that opens a stream (clink_stream_open) sends a REQUEST to a
 * method registered with clink_node_register_stream; the handler there
 * accepts it (clink_stream_accept) and from then on both sides send
 * messages (clink_stream_send) and end their own direction (the `end`
 * argument of clink_stream_send, or clink_stream_end). A stream is over when
 * both directions have ended (status 0), or at the first error: the accepting
 * side failed it (clink_stream_fail: the opener gets -CLINK_EREMOTE and the
 * text), either side cancelled it (clink_stream_cancel), the opener's deadline
 * passed (-CLINK_ETIMEDOUT), the connection was lost (-CLINK_ECLOSED). Each
 * side then hears on_end exactly once, last; the stream is freed when on_end
 * returns.
 *
 * Flow control: a receiver grants each stream a window of bytes
 * (stream_window, default 4 MiB; only 256 KiB of it at a time while the
 * receiver's own calls wait on the connection, so that their answers do not
 * queue behind milliseconds of stream data) and the connection another one
 * shared by all (conn_window, default 16 MiB); a sender with no credit holds its messages
 * (clink's memory: nothing, they stay in the caller's buffers) until the
 * receiver's application has consumed bytes: when on_msg returns, or, with
 * CLINK_STREAM_MANUAL_CREDIT, when it calls clink_stream_consume. A slow
 * consumer therefore bounds the memory of both ends: the receiver holds at
 * most its connection window, and per stream at most stream_window +
 * max_message (a message larger than the stream window is let through by
 * giving back early what its partial holds beyond half the window); the
 * sender holds only the caller's own buffers.
 *
 * Messages: each clink_stream_send is one message to the peer's on_msg, whole
 * (reassembled from 16 KiB chunks: chunks of other calls and streams are
 * interleaved between them, so a small call never waits behind a large
 * message). A message may be at most the peer's max_message (4 MiB by
 * default); one larger than three quarters of the peer's stream window goes
 * with that window's credit a chunk at a time (docs/protocol.md, "Flow
 * control").
 *
 * Threads: every function may be called from any thread; on another thread
 * than the stream's worker it is handed to that worker (like
 * clink_call_start). Callbacks run on the stream's worker and must not block.
 */
#ifndef CLINK_STREAM_H
#define CLINK_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "clink/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

struct clink_stream;

struct clink_stream_cbs {
    /*
     * A whole message from the peer, valid during the callback. Its bytes go
     * back to the peer as credit when this returns (or, with
     * CLINK_STREAM_MANUAL_CREDIT, when the application calls
     * clink_stream_consume).
     */
    void (*on_msg)(struct clink_stream *s, const uint8_t *data, size_t len, void *user);
    /* The peer ended its direction: no on_msg follows. Optional. */
    void (*on_peer_end)(struct clink_stream *s, void *user);
    /*
     * One clink_stream_send's buffers are the caller's again: its message is
     * on its way (status 0), or it never left or not all of it (status < 0:
     * the stream ended first). On a user-space TLS link that is once clink
     * has copied it for OpenSSL; on plaintext and kTLS links, where it goes
     * from these buffers without that copy, once the kernel has let go of
     * them (copied or encrypted them during the send; or, zero-copy, after
     * the peer acknowledged them: clink_zerocopy). A send from another
     * thread that reaches the worker after the stream ended gets no on_sent:
     * once on_end has run, every buffer is the caller's again. Optional.
     */
    void (*on_sent)(struct clink_stream *s, void *tag, int status, void *user);
    /*
     * The stream is over (exactly once, last): 0 when both directions ended,
     * else -CLINK_EREMOTE (msg: the peer's text), -CLINK_ECANCELED,
     * -CLINK_ETIMEDOUT, -CLINK_ECLOSED, -CLINK_EGOAWAY (never reached the
     * peer's handler: safe to retry), -CLINK_ESHUTDOWN. The stream is freed
     * when this returns.
     */
    void (*on_end)(struct clink_stream *s, int status, const char *msg, size_t msg_len, void *user);
};

/* Flags of clink_stream_open and clink_stream_accept. */
#define CLINK_STREAM_MANUAL_CREDIT 1u /* credit returns only through clink_stream_consume */

struct clink_stream_open_opts {
    uint16_t method;         /* a method the peer registered with clink_node_register_stream */
    const struct iovec *iov; /* the opening message (may be empty); copied */
    unsigned iovcnt;
    /*
     * 1: the opener sends nothing after the opening message (a
     * server-streaming call): its direction ends with the REQUEST.
     */
    int end;
    uint32_t timeout_ms; /* deadline for the whole stream from the open; 0: none */
    unsigned flags;      /* CLINK_STREAM_* */
    struct clink_stream_cbs cbs;
    void *user;
};

/*
 * Open a stream on a connection that speaks protocol 2 (else
 * -CLINK_EVERSION). [out] *out: the stream, valid until its on_end returns.
 * Returns 0 (on_end will run exactly once), -CLINK_EINVAL, -CLINK_ECLOSED,
 * -CLINK_EGOAWAY, -CLINK_ESHUTDOWN, -CLINK_EFRAMETOOBIG (opening message
 * larger than the peer's max_message), -CLINK_ENOMEM, -CLINK_EAGAIN (the
 * worker's inbox is full). Thread: any.
 */
CLINK_API CLINK_MUST_USE int clink_stream_open(struct clink_conn *conn, const struct clink_stream_open_opts *o,
                                               struct clink_stream **out);

/*
 * Handler of a stream method: runs on the connection's worker with the
 * opening message (valid during the call). It must call clink_stream_accept
 * or clink_stream_fail on s before it returns.
 */
typedef void (*clink_stream_handler_fn)(struct clink_stream *s, const uint8_t *data, size_t len, void *user);

/* Register a stream method. Thread: before start. Returns 0, -CLINK_EINVAL (reserved or taken). */
CLINK_API CLINK_MUST_USE int clink_node_register_stream(struct clink_node *node, uint16_t method,
                                                        clink_stream_handler_fn fn, void *user);

/* Accept a stream in its handler: these callbacks and user from now on. Returns 0 or -CLINK_EINVAL. */
CLINK_API CLINK_MUST_USE int clink_stream_accept(struct clink_stream *s, const struct clink_stream_cbs *cbs,
                                                 unsigned flags, void *user);

/*
 * Send one message of at least one byte (the buffers are borrowed until
 * on_sent(tag); the iovec array is copied); end = 1 ends this side's
 * direction after it, or alone when the message is empty (just the end).
 * Returns 0 (on_sent follows, when iovcnt > 0), or -CLINK_EINVAL (this side
 * already ended, or an empty message without end), -CLINK_EFRAMETOOBIG
 * (larger than the peer accepts), -CLINK_ECLOSED (the stream is over),
 * -CLINK_ENOMEM, -CLINK_EAGAIN.
 * Thread: any.
 */
CLINK_API CLINK_MUST_USE int clink_stream_send(struct clink_stream *s, const struct iovec *iov, unsigned iovcnt,
                                               int end, void *tag);

/* End this side's direction without a message: clink_stream_send(s, NULL, 0, 1, NULL). */
CLINK_API CLINK_MUST_USE int clink_stream_end(struct clink_stream *s);

/* CLINK_STREAM_MANUAL_CREDIT: the application is done with n more bytes of received messages. Thread: any. */
CLINK_API CLINK_MUST_USE int clink_stream_consume(struct clink_stream *s, size_t n);

/*
 * End the stream now with -CLINK_ECANCELED on this side; the peer hears
 * -CLINK_ECANCELED too. Racy by nature like clink_call_cancel: a stream that
 * ended meanwhile ends as it did. Must be called before on_end has returned;
 * on_end never runs inside it. Thread: any.
 */
CLINK_API CLINK_MUST_USE int clink_stream_cancel(struct clink_stream *s);

/* Accepting side only: end the stream with an error; the opener gets -CLINK_EREMOTE and msg. Thread: any. */
CLINK_API CLINK_MUST_USE int clink_stream_fail(struct clink_stream *s, const char *msg);

/* The stream's connection (borrowed) and method. Thread: any, while the stream lives. */
CLINK_API struct clink_conn *clink_stream_conn(const struct clink_stream *s);
CLINK_API uint16_t clink_stream_method(const struct clink_stream *s);

#ifdef __cplusplus
}
#endif
#endif
