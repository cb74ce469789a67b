/*
 * Streams (clink/stream.h) over real TLS connections: server-, client- and
 * bidirectional streaming with every byte checked, a consumer that stops
 * taking data (credit bounds both ends), cancel, deadline and peer death
 * mid-stream, 100 streams interleaved with 10,000 unary calls of every size
 * on one connection, a version-1 peer, and a hostile peer that breaks the
 * flow-control rules.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/stream.h"
#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"
#include "transport/frame.h"

TestSuite(streams, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 120);

#define M_PRODUCE 40 /* server-streaming: open = {u64 total, u32 msg}; sends total bytes in msg-sized messages */
#define M_ECHO    41 /* bidirectional: every message comes back; ends when the opener has */
#define M_SINK    42 /* client-streaming: counts and checks bytes; when the opener ends, answers with one message */
#define M_REFUSE  43 /* fails every stream */
#define M_HOLD    44 /* unary: the request waits (held_req) until the test answers it */

/* Sizes: the kTLS VM emulates its CPU (slow): a sixteenth there, where only correctness is checked. */
static uint64_t big(uint64_t n)
{
    return getenv("KTLS_VM") != NULL ? n / 16 : n;
}

/* ---- server side ---- */

#define INFLIGHT 4

struct producer {
    struct clink_stream *s;
    uint64_t total, sent, seed;
    uint32_t msg;
    uint8_t *buf[INFLIGHT];
    struct iovec iov[INFLIGHT];
    int busy[INFLIGHT];
    int done;
};
static atomic_int srv_ended, srv_end_status, srv_canceled, srv_busy_at_end;
static _Atomic(struct clink_stream *) srv_stream; /* the last stream on_produce accepted */
static atomic_int rd_stall_ms;                    /* the reader's first message holds its worker this long */
static _Atomic uint64_t srv_sent_bytes;

static void produce_more(struct producer *p)
{
    for (int k = 0; k < INFLIGHT && !p->done; k++) {
        if (p->busy[k]) {
            continue;
        }
        if (p->sent >= p->total) {
            p->done = 1;
            CLINK_IGNORE(clink_stream_end(p->s) < 0);
            break;
        }
        size_t n = p->total - p->sent < p->msg ? (size_t)(p->total - p->sent) : p->msg;
        ts_fill(p->buf[k], n, p->seed, p->sent);
        p->iov[k] = (struct iovec){.iov_base = p->buf[k], .iov_len = n};
        p->busy[k] = 1;
        int end = p->sent + n >= p->total;
        if (clink_stream_send(p->s, &p->iov[k], 1, end, (void *)(intptr_t)k) < 0) {
            p->busy[k] = 0;
            p->done = 1;
            break;
        }
        p->sent += n;
        atomic_fetch_add(&srv_sent_bytes, n);
        if (end) {
            p->done = 1;
        }
    }
}

static void prod_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s;
    struct producer *p = user;
    p->busy[(intptr_t)tag] = 0;
    if (status == 0) {
        produce_more(p);
    }
}

static void srv_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)msg, (void)len;
    atomic_store(&srv_end_status, status);
    if (status == -CLINK_ECANCELED) {
        atomic_fetch_add(&srv_canceled, 1);
    }
    atomic_fetch_add(&srv_ended, 1);
    struct producer *p = user;
    if (p != NULL && p->msg > 0) {
        for (int k = 0; k < INFLIGHT; k++) {
            /* Every message is handed back (on_sent) before on_end: the buffer is the producer's to free. */
            if (p->busy[k]) {
                atomic_fetch_add(&srv_busy_at_end, 1);
            }
            free(p->buf[k]);
        }
    }
    free(user);
}

static void on_produce(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    struct producer *p = calloc(1, sizeof(*p));
    cr_assert(len == 12);
    memcpy(&p->total, data, 8);
    memcpy(&p->msg, data + 8, 4);
    p->s = s;
    p->seed = clink_stream_method(s) * 1000003ull + p->total;
    for (int k = 0; k < INFLIGHT; k++) {
        p->buf[k] = malloc(p->msg);
    }
    struct clink_stream_cbs cbs = {.on_sent = prod_sent, .on_end = srv_end};
    cr_assert_eq(clink_stream_accept(s, &cbs, 0, p), 0);
    atomic_store(&srv_stream, s);
    produce_more(p);
}

/* Echo: each message is copied and sent back (a copy: the received one is valid only in on_msg). */
static void echo_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s, (void)status, (void)user;
    free(tag);
}

static void echo_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    struct {
        struct iovec iov;
        uint8_t b[];
    } *copy = malloc(sizeof(*copy) + len);
    memcpy(copy->b, data, len);
    copy->iov = (struct iovec){.iov_base = copy->b, .iov_len = len};
    if (clink_stream_send(s, &copy->iov, 1, 0, copy) < 0) {
        free(copy);
    }
}

static void echo_peer_end(struct clink_stream *s, void *user)
{
    (void)user;
    CLINK_IGNORE(clink_stream_end(s) < 0);
}

static void on_echo(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)data, (void)len, (void)user;
    struct clink_stream_cbs cbs = {
        .on_msg = echo_msg, .on_peer_end = echo_peer_end, .on_sent = echo_sent, .on_end = srv_end};
    cr_assert_eq(clink_stream_accept(s, &cbs, 0, NULL), 0);
}

struct sink {
    uint64_t got, seed;
    int bad;
    uint64_t answer[2];
    struct iovec iov;
};

static void sink_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct sink *k = user;
    if (!ts_check(data, len, k->seed, k->got)) {
        k->bad = 1;
    }
    k->got += len;
}

static void sink_peer_end(struct clink_stream *s, void *user)
{
    struct sink *k = user;
    k->answer[0] = k->got;
    k->answer[1] = (uint64_t)k->bad;
    k->iov = (struct iovec){.iov_base = k->answer, .iov_len = sizeof(k->answer)};
    CLINK_IGNORE(clink_stream_send(s, &k->iov, 1, 1, NULL) < 0);
}

static void on_sink(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    struct sink *k = calloc(1, sizeof(*k));
    cr_assert(len == 8);
    memcpy(&k->seed, data, 8);
    struct clink_stream_cbs cbs = {.on_msg = sink_msg, .on_peer_end = sink_peer_end, .on_end = srv_end};
    cr_assert_eq(clink_stream_accept(s, &cbs, 0, k), 0);
}

static void on_refuse(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)data, (void)len, (void)user;
    cr_assert_eq(clink_stream_fail(s, "no such table"), 0);
}

static _Atomic(struct clink_req *) held_req;
static atomic_int held_done; /* M_HOLD's call: 1 answered, -1 failed */

static void on_hold(struct clink_req *req, void *user)
{
    (void)user;
    atomic_store(&held_req, req);
}

static void register_streams(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, M_HOLD, on_hold, NULL), 0);
    cr_assert_eq(clink_node_register_stream(n, M_PRODUCE, on_produce, NULL), 0);
    cr_assert_eq(clink_node_register_stream(n, M_ECHO, on_echo, NULL), 0);
    cr_assert_eq(clink_node_register_stream(n, M_SINK, on_sink, NULL), 0);
    cr_assert_eq(clink_node_register_stream(n, M_REFUSE, on_refuse, NULL), 0);
}

static void reset_counts(void)
{
    atomic_store(&srv_ended, 0);
    atomic_store(&srv_end_status, 1);
    atomic_store(&srv_canceled, 0);
    atomic_store(&srv_busy_at_end, 0);
    atomic_store(&srv_sent_bytes, 0);
    atomic_store(&srv_stream, NULL);
    atomic_store(&rd_stall_ms, 0);
}

/* ---- client side ---- */

struct reader {
    uint64_t got, seed, msgs;
    int bad, peer_end, manual;
    atomic_int ended;
    int status;
    char msg[128];
    pthread_mutex_t mu;
};

static void rd_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct reader *r = user;
    if (r->msgs == 0 && atomic_load(&rd_stall_ms) > 0) {
        usleep((useconds_t)atomic_load(&rd_stall_ms) * 1000u); /* a stalled reader: the sender's socket fills */
    }
    if (!ts_check(data, len, r->seed, r->got)) {
        r->bad = 1;
    }
    r->got += len;
    r->msgs++;
}

static void rd_peer_end(struct clink_stream *s, void *user)
{
    (void)s;
    ((struct reader *)user)->peer_end = 1;
}

static void rd_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s;
    struct reader *r = user;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%.*s", (int)len, msg ? msg : "");
    atomic_store(&r->ended, 1);
}

static int wait_ended(struct reader *r, unsigned ms)
{
    for (unsigned i = 0; i < ms / 5 && !atomic_load(&r->ended); i++) {
        usleep(5000);
    }
    return atomic_load(&r->ended);
}

static struct clink_conn *dial(struct clink_node *cli, struct clink_node *srv)
{
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c = NULL;
    char err[256];
    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
    return c;
}

static int open_produce(struct clink_conn *c, struct reader *r, uint64_t total, uint32_t msg, unsigned flags,
                        uint32_t timeout_ms, struct clink_stream **s)
{
    uint8_t open[12];
    memcpy(open, &total, 8);
    memcpy(open + 8, &msg, 4);
    struct iovec iov = {.iov_base = open, .iov_len = sizeof(open)};
    r->seed = M_PRODUCE * 1000003ull + total;
    struct clink_stream_open_opts o = {
        .method = M_PRODUCE,
        .iov = &iov,
        .iovcnt = 1,
        .end = 1,
        .timeout_ms = timeout_ms,
        .flags = flags,
        .cbs = {.on_msg = rd_msg, .on_peer_end = rd_peer_end, .on_end = rd_end},
        .user = r,
    };
    return clink_stream_open(c, &o, s);
}

Test(streams, server_streaming_moves_64_mib_with_every_byte_checked)
{
    reset_counts();
    struct clink_node *srv = ts_node(tls, 1, 0, register_streams);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = dial(cli, srv);
    struct reader r = {0};
    struct clink_stream *s;
    uint64_t total = big(64ull << 20);
    cr_assert_eq(open_produce(c, &r, total, 65536, 0, ts_ms(60000), &s), 0);
    cr_assert(wait_ended(&r, ts_ms(60000)), "stream did not end");
    cr_assert_eq(r.status, 0, "status %s (%s)", clink_strerror(r.status), r.msg);
    cr_assert_eq(r.got, total);
    cr_assert_eq(r.msgs, total / 65536, "each message arrives whole: %llu", (unsigned long long)r.msgs);
    cr_assert_eq(r.bad, 0, "a byte differed");
    cr_assert(r.peer_end);
    cr_assert_eq(ts_wait_count(&srv_ended, 1, ts_ms(5000)), 1);
    cr_assert_eq(atomic_load(&srv_end_status), 0);
    struct clink_node_stats st;
    clink_node_get_stats(cli, &st);
    cr_assert_eq(st.streams_opened, 1);
    cr_assert_eq(st.streams_ok, 1);
    cr_assert_geq(st.chunks_in, total / CLINK_CHUNK);
    struct clink_conn_status cs;
    cr_assert_eq(clink_conn_get_status(c, &cs), 0);
    if (getenv("CLINK_EXPECT_KTLS") != NULL) { /* the kTLS VM: the kernel carried the stream */
        cr_assert_eq(cs.ktls_tx, CLINK_KTLS_ON, "%s", cs.ktls_reason);
        cr_assert_eq(cs.ktls_rx, CLINK_KTLS_ON, "%s", cs.ktls_reason);
    }
    /* The kernel encrypts with kTLS: stream data then goes from the producer's buffers, as in plaintext. */
    cr_assert_eq(cs.send_path, cs.ktls_tx == CLINK_KTLS_ON ? CLINK_SEND_GATHER : CLINK_SEND_COPY);
    clink_node_get_stats(srv, &st);
    if (cs.ktls_tx == CLINK_KTLS_ON) {
        cr_assert_geq(st.bytes_borrowed, total - total / 1024);
    } else {
        cr_assert_eq(st.bytes_borrowed, 0);
    }
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/*
 * On plaintext links stream data goes from the producer's buffers, without
 * clink's copy: gathered (the kernel copies during the send) or zero-copy
 * (the kernel sends from the pages and says when it let go). The producer
 * refills a buffer as soon as on_sent hands it back, so a buffer handed
 * back before the kernel was done with it shows as a wrong byte.
 */
static void plaintext_stream(enum clink_zerocopy zc, enum clink_send_path want)
{
    reset_counts();
    struct clink_node_opts so = {.workers = 1, .allow_plaintext = 1, .zerocopy = zc};
    struct clink_node *srv = ts_node_with(&so, register_streams);
    struct clink_node *cli = ts_client(NULL, 1, 1);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    o.mode = CLINK_MODE_PLAIN;
    struct clink_conn *c = NULL;
    char err[256];
    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
    struct reader r = {0};
    struct clink_stream *s;
    uint64_t total = big(32ull << 20);
    cr_assert_eq(open_produce(c, &r, total, 65536, 0, ts_ms(60000), &s), 0);
    cr_assert(wait_ended(&r, ts_ms(60000)), "stream did not end");
    cr_assert_eq(r.status, 0, "status %s (%s)", clink_strerror(r.status), r.msg);
    cr_assert_eq(r.got, total);
    cr_assert_eq(r.bad, 0, "a byte differed: a buffer was handed back while the kernel still read it");
    cr_assert_eq(ts_wait_count(&srv_ended, 1, ts_ms(5000)), 1);
    cr_assert_eq(atomic_load(&srv_busy_at_end), 0, "on_end came before on_sent");
    struct clink_node_stats st;
    clink_node_get_stats(srv, &st);
    /* All but the small last chunk of each message (64 of 65536 bytes: cheaper copied) */
    cr_assert_geq(st.bytes_borrowed, total - total / 1024, "sent from the producer's buffers: %llu of %llu",
                  (unsigned long long)st.bytes_borrowed, (unsigned long long)total);
    cr_assert_lt(st.bytes_copied, total / 16, "copied: %llu", (unsigned long long)st.bytes_copied);
    if (want == CLINK_SEND_ZEROCOPY) {
        cr_assert_gt(st.zc_sends, 0);
    } else {
        cr_assert_eq(st.zc_sends, 0);
    }
    struct clink_conn_status *links;
    size_t n;
    cr_assert_eq(clink_node_links(srv, &links, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(links[0].send_path, want, "send path %s", clink_send_path_name(links[0].send_path));
    char text[2048];
    clink_conn_status_format(&links[0], text, sizeof(text));
    cr_assert(strstr(text, clink_send_path_name(want)) != NULL, "%s", text);
    free(links);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(streams, plaintext_streams_are_gathered_from_the_callers_buffers)
{
    plaintext_stream(CLINK_ZEROCOPY_DEFAULT, CLINK_SEND_GATHER);
    plaintext_stream(CLINK_ZEROCOPY_AUTO, CLINK_SEND_GATHER); /* loopback: AUTO gathers */
}

Test(streams, plaintext_streams_go_zero_copy_where_asked)
{
    struct clink_node *probe = ts_client(NULL, 1, 1);
    struct clink_features f;
    clink_node_features(probe, &f);
    clink_node_free(probe);
    plaintext_stream(CLINK_ZEROCOPY_ON, f.send_zc ? CLINK_SEND_ZEROCOPY : CLINK_SEND_GATHER);
}

/*
 * A stream that ends while the kernel still reads its data (a plaintext
 * sender whose socket is full because the reader stalled): its messages
 * come back only once the kernel let go of them, and on_end after them.
 */
Test(streams, a_stream_canceled_while_the_kernel_reads_its_data_hands_it_back_first)
{
    reset_counts();
    struct clink_node *srv = ts_node(NULL, 1, 1, register_streams);
    /* A reader with a large window: the sender fills its socket, not the window. */
    struct clink_node_opts co = {
        .workers = 1, .allow_plaintext = 1, .conn_window = 128u << 20, .stream_window = 64u << 20};
    struct clink_node *cli = ts_node_with(&co, NULL);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    o.mode = CLINK_MODE_PLAIN;
    struct clink_conn *c = NULL;
    char err[256];
    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
    atomic_store(&rd_stall_ms, (int)ts_ms(2000));
    struct reader r = {0};
    struct clink_stream *s;
    /* Until the producer is stuck: its sends stopped moving (the stalled reader's socket is full). */
    cr_assert_eq(open_produce(c, &r, 1ull << 40, 256u << 10, 0, 0, &s), 0);
    struct clink_node_stats st = {0};
    uint64_t last = UINT64_MAX;
    for (int i = 0, still = 0; i < 2000 && still < 4; i++) {
        usleep(50000);
        clink_node_get_stats(srv, &st);
        still = st.bytes_out == last && st.bytes_borrowed > 0 ? still + 1 : 0;
        last = st.bytes_out;
    }
    cr_assert_gt(st.bytes_borrowed, 0, "the producer never sent");
    cr_assert_eq(clink_stream_cancel(atomic_load(&srv_stream)), 0);
    cr_assert_eq(ts_wait_count(&srv_ended, 1, ts_ms(10000)), 1, "the canceled stream never ended");
    cr_assert_eq(atomic_load(&srv_busy_at_end), 0, "on_end came before on_sent");
    cr_assert_eq(atomic_load(&srv_end_status), -CLINK_ECANCELED);
    cr_assert(wait_ended(&r, ts_ms(10000)));
    cr_assert_eq(r.status, -CLINK_ECANCELED, "%s", clink_strerror(r.status));
    cr_assert_eq(r.bad, 0, "a byte differed");
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* r->got once it has not moved for 300 ms (scaled). */
static uint64_t settled(struct reader *r)
{
    uint64_t last = UINT64_MAX, got;
    for (int still = 0; still < 6; usleep(ts_ms(50) * 1000)) {
        pthread_mutex_lock(&r->mu);
        got = r->got;
        pthread_mutex_unlock(&r->mu);
        still = got == last ? still + 1 : 0;
        last = got;
    }
    return last;
}

static void held_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)call, (void)resp, (void)len;
    atomic_store(&held_done, status == 0 ? 1 : -1);
}

/*
 * While our calls wait on a connection, a stream on it is granted only what
 * keeps 256 KiB coming (those bytes queue ahead of the answers); alone, its
 * whole window. A consumer that gives back the 4 MiB it got while a call is
 * out lets 256 KiB more come; once the calls are done, the whole window.
 */
Test(streams, grants_shrink_while_calls_wait_on_the_connection)
{
    reset_counts();
    atomic_store(&held_req, NULL);
    atomic_store(&held_done, 0);
    struct clink_node *srv = ts_node(tls, 1, 0, register_streams);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = dial(cli, srv);
    struct reader r = {0};
    pthread_mutex_init(&r.mu, NULL);
    struct clink_stream *s;
    cr_assert_eq(open_produce(c, &r, 1ull << 40, 65536, CLINK_STREAM_MANUAL_CREDIT, 0, &s), 0);
    uint64_t w = 4u << 20; /* the default stream window */
    uint64_t got1 = settled(&r);
    cr_assert_eq(got1, w, "the first window: %llu", (unsigned long long)got1);
    struct clink_call call = {.method = M_HOLD, .cb = held_cb, .timeout_ms = ts_ms(30000)};
    cr_assert_eq(clink_call_start(c, &call), 0);
    for (int i = 0; i < 1000 && atomic_load(&held_req) == NULL; i++) {
        usleep(2000);
    }
    cr_assert_neq(atomic_load(&held_req), NULL);
    cr_assert_eq(clink_stream_consume(s, got1), 0);
    uint64_t got2 = settled(&r);
    cr_assert_eq(got2 - got1, 256u << 10, "a call is waiting: %llu more bytes came, not 256 KiB",
                 (unsigned long long)(got2 - got1));
    cr_assert_eq(clink_req_respond(atomic_load(&held_req), NULL, 0), 0);
    cr_assert_eq(ts_wait_count(&held_done, 1, ts_ms(5000)), 1, "the held call did not complete");
    usleep(150000); /* past the 100 ms a connection stays busy after its last call */
    cr_assert_eq(clink_stream_consume(s, got2 - got1), 0);
    uint64_t got3 = settled(&r);
    cr_assert_eq(got3 - got2, w, "no calls: the whole window again, not %llu", (unsigned long long)(got3 - got2));
    cr_assert_eq(r.bad, 0);
    cr_assert_eq(clink_stream_cancel(s), 0);
    cr_assert(wait_ended(&r, ts_ms(5000)));
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(streams, messages_of_every_size_keep_their_boundaries)
{
    reset_counts();
    struct clink_node *srv = ts_node(tls, 1, 0, register_streams);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = dial(cli, srv);
    /* 1 byte, a chunk less one, a chunk, a chunk plus one, and 3 MiB (the largest a 4 MiB window takes). */
    static const uint32_t sizes[] = {1, CLINK_CHUNK - 1, CLINK_CHUNK, CLINK_CHUNK + 1, 3u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct reader r = {0};
        struct clink_stream *s;
        uint64_t total = (uint64_t)sizes[i] * 3 + sizes[i] / 2 + 1; /* the last of 4 messages is short */
        cr_assert_eq(open_produce(c, &r, total, sizes[i], 0, ts_ms(30000), &s), 0);
        cr_assert(wait_ended(&r, ts_ms(30000)));
        cr_assert_eq(r.status, 0, "size %u: %s", sizes[i], clink_strerror(r.status));
        cr_assert_eq(r.got, total, "size %u", sizes[i]);
        cr_assert_eq(r.msgs, 4, "size %u: %llu messages", sizes[i], (unsigned long long)r.msgs);
        cr_assert_eq(r.bad, 0);
    }
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* Client-streaming from an application thread: 32 MiB in 256 KiB messages, 4 in flight, then the sink's answer. */
struct sender {
    struct clink_stream *s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int free_slots;
    int failed;
};

static void snd_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s, (void)tag;
    struct sender *x = user;
    pthread_mutex_lock(&x->mu);
    x->free_slots++;
    if (status != 0) {
        x->failed = 1;
    }
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

struct sink_reader {
    struct sender snd;
    uint64_t answer[2];
    int got_answer;
    atomic_int ended;
    int status;
};

static void sr_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct sink_reader *r = user;
    if (len == sizeof(r->answer)) {
        memcpy(r->answer, data, len);
        r->got_answer = 1;
    }
}

static void sr_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    snd_sent(s, tag, status, &((struct sink_reader *)user)->snd);
}

static void sr_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)msg, (void)len;
    struct sink_reader *r = user;
    r->status = status;
    atomic_store(&r->ended, 1);
}

Test(streams, client_streaming_from_an_application_thread)
{
    reset_counts();
    struct clink_node *srv = ts_node(tls, 1, 0, register_streams);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = dial(cli, srv);
    struct sink_reader r = {.snd = {.free_slots = 4}};
    pthread_mutex_init(&r.snd.mu, NULL);
    pthread_cond_init(&r.snd.cv, NULL);
    uint64_t seed = 77;
    struct iovec oiov = {.iov_base = &seed, .iov_len = 8};
    struct clink_stream_open_opts o = {.method = M_SINK,
                                       .iov = &oiov,
                                       .iovcnt = 1,
                                       .timeout_ms = ts_ms(60000),
                                       .cbs = {.on_msg = sr_msg, .on_sent = sr_sent, .on_end = sr_end},
                                       .user = &r};
    struct clink_stream *s;
    cr_assert_eq(clink_stream_open(c, &o, &s), 0);
    const size_t msg = 256 * 1024, total = big(32u << 20);
    uint8_t *bufs[4];
    struct iovec iovs[4];
    for (int k = 0; k < 4; k++) {
        bufs[k] = malloc(msg);
    }
    size_t off = 0;
    int slot = 0;
    while (off < total) {
        pthread_mutex_lock(&r.snd.mu);
        while (r.snd.free_slots == 0) {
            pthread_cond_wait(&r.snd.cv, &r.snd.mu);
        }
        r.snd.free_slots--;
        pthread_mutex_unlock(&r.snd.mu);
        /* Slots are reused in turn: with 4 free slots at most, slot k's last send has completed. */
        ts_fill(bufs[slot], msg, seed, off);
        iovs[slot] = (struct iovec){.iov_base = bufs[slot], .iov_len = msg};
        cr_assert_eq(clink_stream_send(s, &iovs[slot], 1, off + msg >= total, NULL), 0);
        off += msg;
        slot = (slot + 1) % 4;
    }
    for (int i = 0; i < 6000 && !atomic_load(&r.ended); i++) {
        usleep(10000);
    }
    cr_assert(atomic_load(&r.ended));
    cr_assert_eq(r.status, 0, "%s", clink_strerror(r.status));
    cr_assert(r.got_answer);
    cr_assert_eq(r.answer[0], total, "the sink counted %llu", (unsigned long long)r.answer[0]);
    cr_assert_eq(r.answer[1], 0, "the sink saw a byte differ");
    cr_assert_eq(r.snd.failed, 0);
    for (int k = 0; k < 4; k++) {
        free(bufs[k]);
    }
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(streams, a_consumer_that_stops_bounds_both_ends_then_resumes)
{
    reset_counts();
    struct clink_node *srv = ts_node(tls, 1, 0, register_streams);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = dial(cli, srv);
    struct reader r = {0};
    struct clink_stream *s;
    uint64_t total = big(64ull << 20) > (12u << 20) ? big(64ull << 20) : (12u << 20);
    cr_assert_eq(open_produce(c, &r, total, 65536, CLINK_STREAM_MANUAL_CREDIT, 0, &s), 0);
    /* Nothing consumed: exactly the stream window (4 MiB, 64 messages) comes, however slow the machine. */
    uint64_t got = 0;
    for (unsigned i = 0; i < ts_ms(30000) / 10 && got < CLINK_DEFAULT_STREAM_WINDOW; i++) {
        usleep(10000);
        got = __atomic_load_n(&r.got, __ATOMIC_RELAXED);
    }
    cr_assert_eq(got, CLINK_DEFAULT_STREAM_WINDOW, "received %llu, not the window", (unsigned long long)got);
    usleep(ts_ms(300) * 1000);
    got = __atomic_load_n(&r.got, __ATOMIC_RELAXED);
    cr_assert_eq(got, CLINK_DEFAULT_STREAM_WINDOW, "%llu bytes came past the window", (unsigned long long)got);
    /* The producer could hand clink only the window plus its own 4 messages in flight: the rest waited in it. */
    uint64_t sent = atomic_load(&srv_sent_bytes);
    cr_assert_leq(sent, CLINK_DEFAULT_STREAM_WINDOW + INFLIGHT * 65536ull, "the producer ran ahead: %llu",
                  (unsigned long long)sent);
    /* Consume, and it flows to the end. */
    while (!atomic_load(&r.ended)) {
        CLINK_IGNORE(clink_stream_consume(s, 1u << 20) < 0);
        usleep(2000);
    }
    cr_assert_eq(r.status, 0, "%s", clink_strerror(r.status));
    cr_assert_eq(r.got, total);
    cr_assert_eq(r.bad, 0);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* Nodes and a connection: TLS, or plaintext (where stream data is lent to the kernel, not copied). */
static struct clink_conn *pair(int plain, struct clink_node **srv, struct clink_node **cli)
{
    if (!plain) {
        *srv = ts_node(tls, 1, 0, register_streams);
        *cli = ts_client(tls, 1, 0);
        return dial(*cli, *srv);
    }
    *srv = ts_node(NULL, 1, 1, register_streams);
    *cli = ts_client(NULL, 1, 1);
    struct clink_connect_opts o = ts_dial(*srv, "localhost");
    o.mode = CLINK_MODE_PLAIN;
    struct clink_conn *c = NULL;
    char err[256];
    cr_assert_eq(clink_connect_sync(*cli, &o, &c, err, sizeof(err)), 0, "%s", err);
    return c;
}

static void cancel_mid_stream(int plain)
{
    reset_counts();
    struct clink_node *srv, *cli;
    struct clink_conn *c = pair(plain, &srv, &cli);
    struct reader r = {0};
    struct clink_stream *s;
    cr_assert_eq(open_produce(c, &r, 1ull << 40, 65536, CLINK_STREAM_MANUAL_CREDIT, 0, &s), 0);
    for (int i = 0; i < 1000 && r.got == 0; i++) {
        usleep(2000);
    }
    cr_assert_gt(r.got, 0);
    cr_assert_eq(clink_stream_cancel(s), 0);
    cr_assert(wait_ended(&r, ts_ms(5000)));
    cr_assert_eq(r.status, -CLINK_ECANCELED);
    cr_assert_eq(ts_wait_count(&srv_canceled, 1, ts_ms(5000)), 1, "the server's side was not canceled");
    cr_assert_eq(atomic_load(&srv_busy_at_end), 0, "on_end came before on_sent");
    /* The connection carries on, and its window came back: another stream moves 16 MiB on it. */
    struct reader r2 = {0};
    cr_assert_eq(open_produce(c, &r2, 16u << 20, 65536, 0, ts_ms(30000), &s), 0);
    cr_assert(wait_ended(&r2, ts_ms(30000)));
    cr_assert_eq(r2.status, 0, "%s", clink_strerror(r2.status));
    cr_assert_eq(r2.got, 16u << 20); /* more than the 16 MiB window: it all came back */
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(streams, cancel_mid_stream_ends_both_sides)
{
    cancel_mid_stream(0);
    cancel_mid_stream(1);
}

Test(streams, deadline_mid_stream)
{
    reset_counts();
    struct clink_node *srv = ts_node(tls, 1, 0, register_streams);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = dial(cli, srv);
    struct reader r = {0};
    struct clink_stream *s;
    cr_assert_eq(open_produce(c, &r, 1ull << 40, 65536, CLINK_STREAM_MANUAL_CREDIT, 300, &s), 0);
    cr_assert(wait_ended(&r, ts_ms(5000)));
    cr_assert_eq(r.status, -CLINK_ETIMEDOUT);
    cr_assert_eq(ts_wait_count(&srv_canceled, 1, ts_ms(5000)), 1);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

static void peer_death_mid_stream(int plain)
{
    reset_counts();
    struct clink_node *srv, *cli;
    struct clink_conn *c = pair(plain, &srv, &cli);
    struct reader r = {0};
    struct clink_stream *s;
    cr_assert_eq(open_produce(c, &r, 1ull << 40, 65536, CLINK_STREAM_MANUAL_CREDIT, 0, &s), 0);
    for (int i = 0; i < 1000 && r.got == 0; i++) {
        usleep(2000);
    }
    clink_node_free(srv); /* drain 0: the stream is cut */
    cr_assert_eq(atomic_load(&srv_ended), 1, "the dying node did not end its stream");
    cr_assert_eq(atomic_load(&srv_busy_at_end), 0, "on_end came before on_sent");
    cr_assert(wait_ended(&r, ts_ms(5000)));
    cr_assert(r.status == -CLINK_ECLOSED || r.status == -CLINK_ESHUTDOWN, "status %s", clink_strerror(r.status));
    clink_conn_close(c);
    clink_node_free(cli);
}

Test(streams, peer_death_mid_stream)
{
    peer_death_mid_stream(0);
    peer_death_mid_stream(1);
}

Test(streams, a_failed_stream_says_why_and_unknown_methods_are_refused)
{
    reset_counts();
    struct clink_node *srv = ts_node(tls, 1, 0, register_streams);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = dial(cli, srv);
    struct reader r = {0};
    struct clink_stream *s;
    struct clink_stream_open_opts o = {.method = M_REFUSE, .end = 1, .cbs = {.on_end = rd_end}, .user = &r};
    cr_assert_eq(clink_stream_open(c, &o, &s), 0);
    cr_assert(wait_ended(&r, ts_ms(5000)));
    cr_assert_eq(r.status, -CLINK_EREMOTE);
    cr_assert_str_eq(r.msg, "no such table");
    struct reader r2 = {0};
    o.method = TS_ECHO; /* a unary method: no stream handler */
    o.user = &r2;
    cr_assert_eq(clink_stream_open(c, &o, &s), 0);
    cr_assert(wait_ended(&r2, ts_ms(5000)));
    cr_assert_eq(r2.status, -CLINK_ENOMETHOD, "%s", clink_strerror(r2.status));
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- 100 streams and 10,000 unary calls on one connection ---- */

#define NSTREAMS 100
#define NCALLS   10000

struct ucall {
    struct clink_call call;
    struct iovec iov;
    uint8_t *buf;
    size_t len;
    uint64_t seed;
};
static atomic_int calls_ok, calls_bad, calls_done;

static void ucall_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct ucall *u = (struct ucall *)call;
    if (status == 0 && len == u->len && ts_check(resp, len, u->seed, 0)) {
        atomic_fetch_add(&calls_ok, 1);
    } else {
        atomic_fetch_add(&calls_bad, 1);
    }
    atomic_fetch_add(&calls_done, 1);
}

Test(streams, one_hundred_streams_and_ten_thousand_calls_share_a_connection)
{
    reset_counts();
    atomic_store(&calls_ok, 0);
    atomic_store(&calls_bad, 0);
    atomic_store(&calls_done, 0);
    struct clink_node *srv = ts_node(tls, 2, 0, register_streams);
    struct clink_node *cli = ts_client(tls, 2, 0);
    struct clink_conn *c = dial(cli, srv);
    struct reader *rs = calloc(NSTREAMS, sizeof(*rs));
    for (int i = 0; i < NSTREAMS; i++) {
        struct clink_stream *s;
        uint64_t total = big(1u << 20) + (uint64_t)i * big(4099); /* 1 MiB and a bit, each its own pattern */
        cr_assert_eq(open_produce(c, &rs[i], total, 16384 + (uint32_t)i * 97, 0, ts_ms(60000), &s), 0);
    }
    struct ucall *us = calloc(NCALLS, sizeof(*us));
    unsigned seed = 12345;
    for (int i = 0; i < NCALLS; i++) {
        struct ucall *u = &us[i];
        /* Mostly small, some a few chunks, a few up to 1 MiB. */
        seed = seed * 1103515245u + 12345u;
        unsigned pick = (seed >> 16) % 100;
        u->len = pick < 90   ? 1 + (seed >> 8) % 512
                 : pick < 99 ? 16000 + (seed >> 4) % big(60000) /* around the chunk size, or a few chunks */
                             : big(1u << 20);
        u->seed = (uint64_t)i * 7919;
        u->buf = malloc(u->len);
        ts_fill(u->buf, u->len, u->seed, 0);
        u->iov = (struct iovec){.iov_base = u->buf, .iov_len = u->len};
        u->call = (struct clink_call){
            .method = TS_ECHO, .iov = &u->iov, .iovcnt = 1, .cb = ucall_cb, .timeout_ms = ts_ms(60000)};
        int ret;
        while ((ret = clink_call_start(c, &u->call)) == -CLINK_EAGAIN) {
            usleep(100);
        }
        cr_assert_eq(ret, 0, "call %d: %s", i, clink_strerror(ret));
    }
    cr_assert_eq(ts_wait_count(&calls_done, NCALLS, ts_ms(60000)), NCALLS);
    cr_assert_eq(atomic_load(&calls_ok), NCALLS, "%d calls failed or differed", atomic_load(&calls_bad));
    for (int i = 0; i < NSTREAMS; i++) {
        cr_assert(wait_ended(&rs[i], ts_ms(60000)), "stream %d did not end", i);
        cr_assert_eq(rs[i].status, 0, "stream %d: %s", i, clink_strerror(rs[i].status));
        cr_assert_eq(rs[i].got, big(1u << 20) + (uint64_t)i * big(4099), "stream %d", i);
        cr_assert_eq(rs[i].bad, 0, "stream %d: a byte differed", i);
    }
    for (int i = 0; i < NCALLS; i++) {
        free(us[i].buf);
    }
    free(us);
    free(rs);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- a version-1 peer ---- */

Test(streams, a_version_1_peer_still_carries_calls_and_refuses_streams_clearly)
{
    struct clink_node_opts o = clink_node_opts_default;
    o.workers = 1;
    o.tls = tls;
    o.proto_max = 1;
    struct clink_node *srv = ts_node_with(&o, register_streams);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = dial(cli, srv);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.proto_version, 1);
    size_t n = 1u << 20;
    uint8_t *b = malloc(n);
    ts_fill(b, n, 5, 0);
    struct clink_msg resp;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, b, n, ts_ms(10000), &resp), 0);
    cr_assert_eq(resp.len, n);
    cr_assert(ts_check(resp.data, n, 5, 0));
    clink_msg_free(&resp);
    free(b);
    struct reader r = {0};
    struct clink_stream *s;
    cr_assert_eq(open_produce(c, &r, 100, 10, 0, 0, &s), -CLINK_EVERSION);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- a hostile peer ---- */

static void raw_frame(struct tls_peer *r, uint8_t type, uint8_t flags, uint16_t method, uint64_t id, const void *p,
                      uint32_t len)
{
    uint8_t h[CLINK_FRAME_HDR];
    struct clink_frame_hdr fh = {.type = type, .flags = flags, .method = method, .length = len, .id = id};
    clink__frame_encode(h, &fh);
    cr_assert_eq(tls_peer_write(r, h, sizeof(h)), 0);
    if (len > 0) {
        cr_assert_eq(tls_peer_write(r, p, len), 0);
    }
}

/* A raw client that spoke HELLO (version 2) and read the server's HELLO and SETTINGS. */
static void raw_v2(struct tls_peer *r, struct clink_node *srv, int send_settings, uint32_t conn_window)
{
    cr_assert_eq(ts_raw_tls(r, clink_node_port(srv), &pki), 0);
    ts_raw_hello(r, 1, 2);
    uint8_t b[CLINK_FRAME_HDR + CLINK_HELLO_LEN + CLINK_FRAME_HDR + CLINK_SETTINGS_LEN];
    cr_assert_eq(ts_raw_read(r, b, sizeof(b)), (int)sizeof(b));
    cr_assert_eq(b[0], CLINK_FRAME_HELLO);
    cr_assert_eq(b[CLINK_FRAME_HDR + CLINK_HELLO_LEN], CLINK_FRAME_SETTINGS);
    if (send_settings) {
        struct clink_settings s = {.max_message = 1u << 20, .conn_window = conn_window, .stream_window = 1u << 20};
        uint8_t sb[CLINK_SETTINGS_LEN];
        clink__settings_encode(sb, &s);
        raw_frame(r, CLINK_FRAME_SETTINGS, 0, 0, 0, sb, sizeof(sb));
    }
}

static int closed(struct tls_peer *r)
{
    uint8_t junk[4096];
    int n;
    for (int i = 0; i < 64; i++) {
        if ((n = ts_raw_read(r, junk, sizeof(junk))) <= 0) {
            return 1;
        }
    }
    return 0;
}

Test(streams, hostile_peers_are_refused_and_counted)
{
    struct clink_node *srv = ts_node(tls, 1, 0, register_streams);
    struct clink_node_stats st;
    uint8_t chunk[CLINK_CHUNK];
    memset(chunk, 'x', sizeof(chunk));

    /* 1. A frame before SETTINGS. */
    struct tls_peer r;
    raw_v2(&r, srv, 0, 0);
    raw_frame(&r, CLINK_FRAME_REQUEST, 0, TS_ECHO, 1, "a", 1);
    cr_assert(closed(&r), "a request before SETTINGS was taken");
    tls_peer_free(&r);

    /* 2. DATA of streams that do not exist: dropped and counted, the connection lives. */
    raw_v2(&r, srv, 1, 1u << 24);
    for (uint64_t id = 1; id <= 50; id++) {
        raw_frame(&r, CLINK_FRAME_DATA, CLINK_FLAG_OPENER, 0, id, chunk, 1000);
    }
    raw_frame(&r, CLINK_FRAME_REQUEST, 0, TS_ECHO, 99, "ping", 4);
    uint8_t ans[CLINK_FRAME_HDR + 4];
    cr_assert_eq(ts_raw_read(&r, ans, sizeof(ans)), (int)sizeof(ans), "the connection died");
    cr_assert_eq(ans[0], CLINK_FRAME_RESPONSE);
    clink_node_get_stats(srv, &st);
    cr_assert_eq(st.stream_frames_refused, 50);
    tls_peer_free(&r);

    /* 3. A chunked message past the connection window it was granted (16 MiB): closed, counted. */
    raw_v2(&r, srv, 1, 1u << 24);
    uint64_t sent = 0;
    int died = 0;
    for (int i = 0; i < 2000 && !died; i++) {
        /* Each a new chunked request that never ends: all of it held against the window. */
        uint8_t h[CLINK_FRAME_HDR];
        struct clink_frame_hdr fh = {.type = CLINK_FRAME_REQUEST,
                                     .flags = CLINK_FLAG_MORE,
                                     .method = TS_ECHO,
                                     .length = CLINK_CHUNK,
                                     .id = 1000 + (uint64_t)i};
        clink__frame_encode(h, &fh);
        died = tls_peer_write(&r, h, sizeof(h)) < 0 || tls_peer_write(&r, chunk, sizeof(chunk)) < 0;
        sent += CLINK_CHUNK;
    }
    cr_assert(died || closed(&r), "sending %llu bytes past the window was allowed", (unsigned long long)sent);
    clink_node_get_stats(srv, &st);
    cr_assert_eq(st.flow_violations, 1);
    tls_peer_free(&r);

    /* 4. Absurd credit (the window past 2^31 - 1). */
    raw_v2(&r, srv, 1, 1u << 24);
    uint8_t cr[4] = {0x7f, 0xff, 0xff, 0xff};
    raw_frame(&r, CLINK_FRAME_CREDIT, 0, 0, 0, cr, 4);
    cr_assert(closed(&r), "absurd credit was taken");
    clink_node_get_stats(srv, &st);
    cr_assert_eq(st.flow_violations, 2);
    tls_peer_free(&r);

    /* 5. SETTINGS out of bounds (a window smaller than a message it allows). */
    raw_v2(&r, srv, 0, 0);
    struct clink_settings bad = {.max_message = 1u << 20, .conn_window = 1u << 20, .stream_window = 1u << 20};
    uint8_t sb[CLINK_SETTINGS_LEN];
    clink__settings_encode(sb, &bad);
    raw_frame(&r, CLINK_FRAME_SETTINGS, 0, 0, 0, sb, sizeof(sb));
    cr_assert(closed(&r), "bad SETTINGS were taken");
    tls_peer_free(&r);

    ts_expect_echo_works(tls, srv);
    clink_node_free(srv);
}
