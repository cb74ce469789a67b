/*
 * Stream messages larger than the receiver's stream window (docs/protocol.md,
 * "Flow control"): with 256 KiB windows at both ends, 1 and 3 MiB messages
 * arrive whole and byte-exact in both directions, a consumer that holds what
 * it got still stops the sender, several streams of such messages share a
 * connection without deadlock, the receiver's max_message still bounds a
 * message, a chunked opening message leaves the stream's window whole, and a
 * peer that sends past the credit it was granted (whole
 * messages, or one large message gathered with early credit) is refused and
 * counted.
 */
#include <criterion/criterion.h>
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

TestSuite(stream_credit, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 120);

#define WINDOW    (256u * 1024u)
#define M_PRODUCE 50 /* open = {u64 seed, u32 count, u32 size}: count messages of size bytes, then the end */
#define M_SINK    51 /* open = u64 seed, then anything: checks each message; answers {msgs, bytes, bad} at the end */
#define M_HOLD    52 /* manual credit, never consumed */

/* ---- server side ---- */

static atomic_int srv_written; /* M_PRODUCE messages written whole (on_sent 0) */

struct producer {
    struct clink_stream *s;
    uint64_t seed, off;
    uint32_t count, size, queued;
};

/* Two messages in flight: the second waits in clink for credit, the caller's buffers with it. */
static void produce_more(struct producer *p);

static void prod_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s;
    free(tag);
    if (status == 0) {
        atomic_fetch_add(&srv_written, 1);
        produce_more(user);
    }
}

static void produce_more(struct producer *p)
{
    while (p->queued < p->count && p->queued < (uint32_t)atomic_load(&srv_written) + 2) {
        struct {
            struct iovec iov;
            uint8_t b[];
        } *m = malloc(sizeof(*m) + p->size);
        ts_fill(m->b, p->size, p->seed, p->off);
        m->iov = (struct iovec){.iov_base = m->b, .iov_len = p->size};
        p->queued++;
        int ret = clink_stream_send(p->s, &m->iov, 1, p->queued == p->count, m);
        if (ret < 0) {
            /* The opener hears why (a message above its max_message: -CLINK_EFRAMETOOBIG). */
            free(m);
            p->queued = p->count;
            CLINK_IGNORE(clink_stream_fail(p->s, clink_strerror(ret)) < 0);
            return;
        }
        p->off += p->size;
    }
}

static void srv_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)status, (void)msg, (void)len;
    free(user);
}

static void on_produce(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    cr_assert_eq(len, 16);
    struct producer *p = calloc(1, sizeof(*p));
    memcpy(&p->seed, data, 8);
    memcpy(&p->count, data + 8, 4);
    memcpy(&p->size, data + 12, 4);
    p->s = s;
    struct clink_stream_cbs cbs = {.on_sent = prod_sent, .on_end = srv_end};
    cr_assert_eq(clink_stream_accept(s, &cbs, 0, p), 0);
    produce_more(p);
}

struct sink {
    uint64_t seed, off;
    uint64_t answer[3]; /* msgs, bytes, bad */
    struct iovec iov;
};

static void sink_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct sink *k = user;
    k->answer[2] |= !ts_check(data, len, k->seed, k->off);
    k->off += len;
    k->answer[0]++;
    k->answer[1] += len;
}

static void sink_peer_end(struct clink_stream *s, void *user)
{
    struct sink *k = user;
    k->iov = (struct iovec){.iov_base = k->answer, .iov_len = sizeof(k->answer)};
    CLINK_IGNORE(clink_stream_send(s, &k->iov, 1, 1, NULL) < 0);
}

static void on_sink(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    cr_assert_geq(len, 8);
    struct sink *k = calloc(1, sizeof(*k));
    memcpy(&k->seed, data, 8);
    struct clink_stream_cbs cbs = {.on_msg = sink_msg, .on_peer_end = sink_peer_end, .on_end = srv_end};
    cr_assert_eq(clink_stream_accept(s, &cbs, 0, k), 0);
}

static void on_hold(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)data, (void)len, (void)user;
    struct clink_stream_cbs cbs = {.on_end = srv_end}; /* user NULL: nothing to free */
    cr_assert_eq(clink_stream_accept(s, &cbs, CLINK_STREAM_MANUAL_CREDIT, NULL), 0);
}

static void register_streams(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register_stream(n, M_PRODUCE, on_produce, NULL), 0);
    cr_assert_eq(clink_node_register_stream(n, M_SINK, on_sink, NULL), 0);
    cr_assert_eq(clink_node_register_stream(n, M_HOLD, on_hold, NULL), 0);
}

/* A node whose peers get a 256 KiB stream window from it (client or server). */
static struct clink_node *node(unsigned workers)
{
    struct clink_node_opts o = clink_node_opts_default;
    o.workers = workers;
    o.tls = tls;
    o.stream_window = WINDOW;
    return ts_node_with(&o, register_streams);
}

static struct clink_conn *dial(struct clink_node *cli, struct clink_node *srv)
{
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c = NULL;
    char err[256];
    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
    return c;
}

/* ---- client side ---- */

struct reader {
    uint64_t seed, got, msgs;
    uint32_t size;
    int bad; /* a byte differed, or a message was not whole */
    atomic_uint_fast64_t seen;
    atomic_int ended;
    int status;
    char why[128];
    uint64_t answer[3]; /* a sink's */
    int answered;
};

static void rd_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct reader *r = user;
    if (len == sizeof(r->answer) && r->size == 0) {
        memcpy(r->answer, data, len);
        r->answered = 1;
        return;
    }
    r->bad |= len != r->size || !ts_check(data, len, r->seed, r->got);
    r->got += len;
    r->msgs++;
    atomic_store(&r->seen, r->msgs);
}

static void rd_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s;
    struct reader *r = user;
    r->status = status;
    snprintf(r->why, sizeof(r->why), "%.*s", (int)len, msg != NULL ? msg : "");
    atomic_store(&r->ended, 1);
}

static int wait_ended(struct reader *r, unsigned ms)
{
    for (unsigned i = 0; i < ms / 5 && !atomic_load(&r->ended); i++) {
        usleep(5000);
    }
    return atomic_load(&r->ended);
}

static struct clink_stream *open_produce(struct clink_conn *c, struct reader *r, uint64_t seed, uint32_t count,
                                         uint32_t size, unsigned flags)
{
    uint8_t open[16];
    memcpy(open, &seed, 8);
    memcpy(open + 8, &count, 4);
    memcpy(open + 12, &size, 4);
    struct iovec iov = {.iov_base = open, .iov_len = sizeof(open)};
    r->seed = seed;
    r->size = size;
    struct clink_stream_open_opts o = {.method = M_PRODUCE,
                                       .iov = &iov,
                                       .iovcnt = 1,
                                       .end = 1,
                                       .timeout_ms = ts_ms(60000),
                                       .flags = flags,
                                       .cbs = {.on_msg = rd_msg, .on_end = rd_end},
                                       .user = r};
    struct clink_stream *s = NULL;
    cr_assert_eq(clink_stream_open(c, &o, &s), 0);
    return s;
}

/* Client-streaming to M_SINK: count messages of size bytes, from buffers kept until the caller frees *bufs. */
static void send_to_sink(struct clink_conn *c, struct reader *r, uint64_t seed, size_t open_len, uint32_t count,
                         uint32_t size, uint8_t **buf, struct iovec *iovs)
{
    uint8_t *open = calloc(1, open_len);
    memcpy(open, &seed, 8);
    struct iovec oiov = {.iov_base = open, .iov_len = open_len};
    struct clink_stream_open_opts o = {.method = M_SINK,
                                       .iov = &oiov,
                                       .iovcnt = 1,
                                       .timeout_ms = ts_ms(60000),
                                       .cbs = {.on_msg = rd_msg, .on_end = rd_end},
                                       .user = r};
    struct clink_stream *s = NULL;
    cr_assert_eq(clink_stream_open(c, &o, &s), 0);
    free(open); /* the opening message is copied */
    *buf = malloc((size_t)count * size);
    ts_fill(*buf, (size_t)count * size, seed, 0);
    for (uint32_t i = 0; i < count; i++) {
        iovs[i] = (struct iovec){.iov_base = *buf + (size_t)i * size, .iov_len = size};
        cr_assert_eq(clink_stream_send(s, &iovs[i], 1, i + 1 == count, NULL), 0, "message %u of %u bytes", i, size);
    }
}

static void expect_sink_answer(struct reader *r, uint32_t count, uint32_t size)
{
    cr_assert(wait_ended(r, ts_ms(60000)), "the stream of %u x %u bytes did not end", count, size);
    cr_assert_eq(r->status, 0, "%s", clink_strerror(r->status));
    cr_assert(r->answered, "no answer from the sink");
    cr_assert_eq(r->answer[0], count, "the sink got %llu messages", (unsigned long long)r->answer[0]);
    cr_assert_eq(r->answer[1], (uint64_t)count * size, "the sink got %llu bytes", (unsigned long long)r->answer[1]);
    cr_assert_eq(r->answer[2], 0, "the sink saw a byte differ");
}

static void expect_produced(struct reader *r, uint32_t count, uint32_t size)
{
    cr_assert(wait_ended(r, ts_ms(60000)), "the stream of %u x %u bytes did not end (%llu came)", count, size,
              (unsigned long long)r->msgs);
    cr_assert_eq(r->status, 0, "%s", clink_strerror(r->status));
    cr_assert_eq(r->msgs, count, "%llu messages of %u bytes", (unsigned long long)r->msgs, size);
    cr_assert_eq(r->got, (uint64_t)count * size);
    cr_assert_eq(r->bad, 0, "a message was not whole or a byte differed");
}

Test(stream_credit, messages_of_1_and_3_mib_cross_a_256_kib_window_server_to_client)
{
    struct clink_node *srv = node(1), *cli = node(1);
    struct clink_conn *c = dial(cli, srv);
    static const uint32_t sizes[] = {1u << 20, 3u << 20};

    for (int i = 0; i < 2; i++) {
        struct reader r = {0};
        open_produce(c, &r, 11 + (uint64_t)i, 3, sizes[i], 0);
        expect_produced(&r, 3, sizes[i]);
    }

    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(stream_credit, messages_of_1_and_3_mib_cross_a_256_kib_window_client_to_server)
{
    struct clink_node *srv = node(1), *cli = node(1);
    struct clink_conn *c = dial(cli, srv);
    static const uint32_t sizes[] = {1u << 20, 3u << 20};

    for (int i = 0; i < 2; i++) {
        struct reader r = {0};
        uint8_t *buf;
        struct iovec iovs[3];
        send_to_sink(c, &r, 21 + (uint64_t)i, 8, 3, sizes[i], &buf, iovs);
        expect_sink_answer(&r, 3, sizes[i]);
        free(buf);
    }

    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(stream_credit, a_consumer_holding_a_large_message_stops_the_sender)
{
    struct clink_node *srv = node(1), *cli = node(1);
    struct clink_conn *c = dial(cli, srv);
    struct reader r = {0};

    struct clink_stream *s = open_produce(c, &r, 31, 8, 1u << 20, CLINK_STREAM_MANUAL_CREDIT);
    for (unsigned i = 0; i < ts_ms(30000) / 10 && atomic_load(&r.seen) == 0; i++) {
        usleep(10000);
    }
    usleep(ts_ms(500) * 1000);

    /* The first message came whole (its partial gave credit back early); the held rest of it keeps half the window,
     * so the second cannot be gathered: the sender still has it, and everything after it. */
    cr_assert_eq(atomic_load(&r.seen), 1, "%llu messages came while the first was held",
                 (unsigned long long)atomic_load(&r.seen));
    cr_assert_eq(atomic_load(&srv_written), 1, "the sender wrote %d messages whole", atomic_load(&srv_written));
    for (int i = 0; i < 20000 && !atomic_load(&r.ended); i++) {
        CLINK_IGNORE(clink_stream_consume(s, 256 * 1024) < 0);
        usleep(1000);
    }
    expect_produced(&r, 8, 1u << 20);
    cr_assert_eq(atomic_load(&srv_written), 8);

    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(stream_credit, large_messages_of_several_streams_share_a_connection)
{
    struct clink_node *srv = node(2), *cli = node(2);
    struct clink_conn *c = dial(cli, srv);
    enum { NP = 4, NS = 3 };
    const uint32_t n = getenv("KTLS_VM") != NULL ? 2 : 4; /* the kTLS VM's emulated CPU is slow */
    static const uint32_t psizes[NP] = {300 * 1024, 700 * 1024 + 1, (1u << 20) + 7, (2u << 20) - 3};
    struct reader pr[NP] = {0}, sr[NS] = {0};
    uint8_t *bufs[NS];
    struct iovec iovs[NS][4];

    for (int i = 0; i < NP; i++) {
        open_produce(c, &pr[i], 41 + (uint64_t)i, n, psizes[i], 0);
    }
    for (int i = 0; i < NS; i++) {
        send_to_sink(c, &sr[i], 51 + (uint64_t)i, 8, n, (3u << 19) + (uint32_t)i, &bufs[i], iovs[i]);
    }

    for (int i = 0; i < NP; i++) {
        expect_produced(&pr[i], n, psizes[i]);
    }
    for (int i = 0; i < NS; i++) {
        expect_sink_answer(&sr[i], n, (3u << 19) + (uint32_t)i);
        free(bufs[i]);
    }

    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(stream_credit, a_stream_message_stays_within_the_receivers_max_message)
{
    struct clink_node *srv = node(1);
    struct clink_node_opts o = clink_node_opts_default;
    o.workers = 1;
    o.tls = tls;
    o.stream_window = WINDOW;
    o.max_message = 1u << 20;
    struct clink_node *cli = ts_node_with(&o, register_streams);
    struct clink_conn *c = dial(cli, srv);
    struct reader r = {0}, r2 = {0};

    open_produce(c, &r, 71, 2, 1u << 20, 0);
    expect_produced(&r, 2, 1u << 20); /* exactly max_message, four times the window: it goes */
    open_produce(c, &r2, 72, 1, (1u << 20) + 1, 0);

    cr_assert(wait_ended(&r2, ts_ms(30000)));
    cr_assert_eq(r2.status, -CLINK_EREMOTE, "%s", clink_strerror(r2.status));
    cr_assert_str_eq(r2.why, clink_strerror(-CLINK_EFRAMETOOBIG));
    cr_assert_eq(r2.msgs, 0);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(stream_credit, a_chunked_opening_message_leaves_the_stream_window_whole)
{
    struct clink_node *srv = node(1), *cli = node(1);
    struct clink_conn *c = dial(cli, srv);
    struct reader r = {0};
    uint8_t *buf;
    struct iovec iovs[4];

    /* 200 KiB to open, then 4 messages of 150 KiB: each takes its credit whole, which a window that had lost the
     * opening message (56 KiB left) would never give. */
    send_to_sink(c, &r, 61, 200 * 1024, 4, 150 * 1024, &buf, iovs);

    expect_sink_answer(&r, 4, 150 * 1024);
    free(buf);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- a peer past its credit ---- */

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

/* A raw client at version 2 that opened stream 1 on M_HOLD (the server holds every byte it gets on it). */
static void raw_hold(struct tls_peer *r, struct clink_node *srv)
{
    cr_assert_eq(ts_raw_tls(r, clink_node_port(srv), &pki), 0);
    ts_raw_hello(r, 1, 2);
    uint8_t b[CLINK_FRAME_HDR + CLINK_HELLO_LEN + CLINK_FRAME_HDR + CLINK_SETTINGS_LEN];
    cr_assert_eq(ts_raw_read(r, b, sizeof(b)), (int)sizeof(b));
    struct clink_settings s = {.max_message = 4u << 20, .conn_window = 16u << 20, .stream_window = 1u << 20};
    uint8_t sb[CLINK_SETTINGS_LEN];
    clink__settings_encode(sb, &s);
    raw_frame(r, CLINK_FRAME_SETTINGS, 0, 0, 0, sb, sizeof(sb));
    raw_frame(r, CLINK_FRAME_REQUEST, CLINK_FLAG_STREAM, M_HOLD, 1, "x", 1);
}

static int closed(struct tls_peer *r)
{
    uint8_t junk[4096];
    for (int i = 0; i < 64; i++) {
        if (ts_raw_read(r, junk, sizeof(junk)) <= 0) {
            return 1;
        }
    }
    return 0;
}

/* The connection still answers a call (its id after whatever else the server sent first: CREDIT). */
static void expect_alive(struct tls_peer *r, uint64_t id)
{
    raw_frame(r, CLINK_FRAME_REQUEST, 0, TS_ECHO, id, "ping", 4);
    uint8_t ans[CLINK_FRAME_HDR + 4];
    cr_assert_eq(ts_raw_read(r, ans, sizeof(ans)), (int)sizeof(ans), "the connection died");
    cr_assert_eq(ans[0], CLINK_FRAME_RESPONSE);
}

Test(stream_credit, a_peer_past_its_stream_credit_is_refused_and_counted)
{
    struct clink_node *srv = node(1);
    static uint8_t chunk[WINDOW];
    memset(chunk, 'x', sizeof(chunk));
    struct clink_node_stats st;
    struct tls_peer r;

    /* 1. Whole messages, held: exactly the window is taken, one byte more is refused. */
    raw_hold(&r, srv);
    for (uint32_t off = 0; off < WINDOW; off += CLINK_CHUNK) {
        uint32_t n = WINDOW - off < CLINK_CHUNK ? WINDOW - off : CLINK_CHUNK;
        raw_frame(&r, CLINK_FRAME_DATA, CLINK_FLAG_OPENER, 0, 1, chunk, n);
    }
    expect_alive(&r, 3);
    raw_frame(&r, CLINK_FRAME_DATA, CLINK_FLAG_OPENER, 0, 1, chunk, 1);
    cr_assert(closed(&r), "a byte past the stream window was taken");
    clink_node_get_stats(srv, &st);
    cr_assert_eq(st.flow_violations, 1);
    tls_peer_free(&r);

    /* 2. One message larger than the window: its partial gives back what it holds beyond half the window (CREDIT
     * once a quarter of the window has come back), though nothing is consumed; a frame past that is refused. */
    raw_hold(&r, srv);
    for (uint32_t off = 0; off < WINDOW; off += CLINK_CHUNK) {
        uint32_t n = WINDOW - off < CLINK_CHUNK ? WINDOW - off : CLINK_CHUNK;
        raw_frame(&r, CLINK_FRAME_DATA, CLINK_FLAG_OPENER | CLINK_FLAG_MORE, 0, 1, chunk, n);
    }
    uint8_t credit[CLINK_FRAME_HDR + CLINK_CREDIT_LEN];
    cr_assert_eq(ts_raw_read(&r, credit, sizeof(credit)), (int)sizeof(credit),
                 "no early credit for a large partial message");
    struct clink_frame_hdr h;
    cr_assert_eq(clink__frame_decode(credit, 1u << 20, 2, &h), 0);
    cr_assert_eq(h.type, CLINK_FRAME_CREDIT);
    cr_assert_eq(h.id, 1);
    uint32_t granted = clink__get_u32(credit + CLINK_FRAME_HDR);
    cr_assert(granted >= WINDOW / 4 && granted <= WINDOW / 2, "early credit of %u bytes", granted);
    expect_alive(&r, 3); /* and no other CREDIT before its answer: the rest is less than a quarter */
    raw_frame(&r, CLINK_FRAME_DATA, CLINK_FLAG_OPENER | CLINK_FLAG_MORE, 0, 1, chunk, granted + 1);
    cr_assert(closed(&r), "a frame past the early credit was taken");
    clink_node_get_stats(srv, &st);
    cr_assert_eq(st.flow_violations, 2);
    tls_peer_free(&r);

    ts_expect_echo_works(tls, srv);
    clink_node_free(srv);
}
