/*
 * Buffers under pressure: a peer that never reads cannot grow our memory,
 * the node budget holds many of them, large answers both ways do not
 * deadlock, and a burst after an idle spell still arrives whole.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"
#include "transport/frame.h"

TestSuite(buffers, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f != NULL) {
        cr_assert_eq(fscanf(f, "%ld %ld", &pages, &rss), 2);
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

Test(buffers, peer_that_never_reads_cannot_grow_our_memory)
{
    struct clink_node_opts no = {.workers = 1, .tls = tls, .max_write_buffer = 256 * 1024};
    struct clink_node *srv;
    cr_assert_eq(clink_node_new(&no, &srv), 0);
    ts_register_echo(srv);
    cr_assert_eq(clink_node_listen(srv, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_start(srv), 0);
    struct tls_peer r;
    cr_assert_eq(ts_raw_tls(&r, clink_node_port(srv), &pki), 0);
    ts_raw_hello(&r, 1, 1);
    struct timeval tv = {.tv_sec = 1};
    setsockopt(r.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    long before = rss_kib();

    /* 64 MiB of PINGs, never reading a PONG: the server must stop reading long before. */
    enum { BATCH = 4096 };
    static uint8_t batch[BATCH * (CLINK_FRAME_HDR + CLINK_PING_LEN)];
    for (int i = 0; i < BATCH; i++) {
        struct clink_frame_hdr h = {.type = CLINK_FRAME_PING, .length = CLINK_PING_LEN, .id = (uint64_t)i + 1};
        clink__frame_encode(batch + i * (CLINK_FRAME_HDR + CLINK_PING_LEN), &h);
    }
    size_t sent = 0;
    while (sent < (64u << 20) && tls_peer_write(&r, batch, sizeof(batch)) == 0) {
        sent += sizeof(batch);
    }
    long grown = rss_kib() - before;

    cr_assert_lt(sent, 64u << 20, "the server kept reading: %zu bytes taken", sent);
    cr_assert_lt(grown, 24 * 1024, "memory grew by %ld KiB", grown);
    tls_peer_free(&r);
    ts_expect_echo_works(tls, srv);
    clink_node_free(srv);
}

/* Write PINGs without reading until the server stops taking them (the write blocks past its timeout). */
static size_t ping_until_blocked(struct tls_peer *r)
{
    enum { BATCH = 4096 };
    static uint8_t batch[BATCH * (CLINK_FRAME_HDR + CLINK_PING_LEN)];
    for (int i = 0; i < BATCH; i++) {
        struct clink_frame_hdr h = {.type = CLINK_FRAME_PING, .length = CLINK_PING_LEN, .id = (uint64_t)i + 1};
        clink__frame_encode(batch + i * (CLINK_FRAME_HDR + CLINK_PING_LEN), &h);
    }
    struct timeval tv = {.tv_usec = 300000};
    setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    size_t sent = 0;
    while (sent < (64u << 20) && tls_peer_write(r, batch, sizeof(batch)) == 0) {
        sent += sizeof(batch);
    }
    return sent;
}

/*
 * Six peers that never read, each allowed 4 MiB of answers by the
 * per-connection bound: the node-wide budget (2 MiB here) holds them all to
 * it together, a bystander's requests wait meanwhile, and once the hogs are
 * gone the bystander is served on the same connection.
 */
Test(buffers, the_node_budget_bounds_many_peers_that_never_read, .timeout = 60)
{
    struct clink_node_opts no = {.workers = 1, .tls = tls, .max_buffered = 2u << 20};
    struct clink_node *srv = ts_node_with(&no, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *by;
    cr_assert_eq(clink_connect_sync(cli, &o, &by, NULL, 0), 0);

    enum { HOGS = 6 };
    struct tls_peer r[HOGS];
    size_t sent[HOGS];
    for (int i = 0; i < HOGS; i++) {
        cr_assert_eq(ts_raw_tls(&r[i], clink_node_port(srv), &pki), 0);
        ts_raw_hello(&r[i], 1, 1);
        sent[i] = ping_until_blocked(&r[i]);
        cr_assert_lt(sent[i], 64u << 20, "hog %d: the server kept reading", i);
    }
    struct clink_node_stats st;
    clink_node_get_stats(srv, &st);
    /*
     * The budget counts buffer capacity, checked before each read: one read's
     * answers per connection may go past it, and a buffer may double once.
     * Without it the six would hold 6 x 4 MiB.
     */
    cr_assert_lt(st.buffered, 6u << 20, "the server buffers %llu bytes for peers that do not read",
                 (unsigned long long)st.buffered);
    cr_assert_geq(st.buffer_full, 1);
    /*
     * Meanwhile the bystander's requests wait (the worker reads no more
     * requests) and meet their deadline. Its first may still be answered:
     * a read armed before the budget ran out completes.
     */
    struct clink_msg m;
    int first = clink_call_sync(by, TS_ECHO, "wait", 4, 300, &m);
    if (first == 0) {
        clink_msg_free(&m);
    }
    cr_assert_eq(clink_call_sync(by, TS_ECHO, "wait", 4, 300, &m), -CLINK_ETIMEDOUT);

    for (int i = 0; i < HOGS; i++) {
        tls_peer_free(&r[i]);
    }
    /* Their buffers go with them: the same connection is served again. */
    int ret = -1;
    for (int i = 0; i < 50 && ret != 0; i++) {
        ret = clink_call_sync(by, TS_ECHO, "again", 5, ts_ms(2000), &m);
        if (ret == 0) {
            cr_assert_eq(m.len, 5);
            clink_msg_free(&m);
        }
    }
    cr_assert_eq(ret, 0, "after the hogs left: %s", clink_strerror(ret));
    /* The budget let go at 7/8; the hogs' last buffers go as each closing connection finishes (bounded by linger). */
    for (int i = 0; i < 500; i++) {
        clink_node_get_stats(srv, &st);
        if (st.buffered < (1u << 20)) {
            break;
        }
        usleep(10000);
    }
    cr_assert_lt(st.buffered, 1u << 20, "%llu bytes still buffered", (unsigned long long)st.buffered);
    clink_conn_close(by);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- large answers both ways must not deadlock on backpressure ---- */

static atomic_int big_ok, big_done;
static void big_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)call;
    if (status == 0 && len == (1u << 20) && resp[0] == 0xab && resp[len - 1] == 0xab) {
        atomic_fetch_add(&big_ok, 1);
    }
    atomic_fetch_add(&big_done, 1);
}

Test(buffers, many_one_mebibyte_calls_in_flight_complete)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    size_t n = 1u << 20;
    uint8_t *payload = malloc(n);
    memset(payload, 0xab, n);
    struct iovec iov = {.iov_base = payload, .iov_len = n};
    enum { N = 32 };
    struct clink_call calls[N];

    /* 32 MiB each way, eight times the write budget: both sides must keep reading. */
    for (int i = 0; i < N; i++) {
        calls[i] =
            (struct clink_call){.method = TS_ECHO, .iov = &iov, .iovcnt = 1, .cb = big_cb, .timeout_ms = ts_ms(20000)};
        cr_assert_eq(clink_call_start(c, &calls[i]), 0);
    }
    int done = ts_wait_count(&big_done, N, ts_ms(25000));

    cr_assert_eq(done, N);
    cr_assert_eq(atomic_load(&big_ok), N);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
    free(payload);
}

/* ---- idle connections keep small buffers; a burst after a quiet spell still arrives whole ---- */

static void idle_then_burst(struct clink_conn *c)
{
    size_t big = 3u << 20; /* several times the 64 KiB streaming read */
    uint8_t *payload = malloc(big);
    for (size_t i = 0; i < big; i++) {
        payload[i] = (uint8_t)(i * 131u);
    }
    for (int round = 0; round < 3; round++) {
        struct clink_msg r;
        for (int i = 0; i < 8; i++) { /* small calls: the connection turns idle (4 KiB reads) */
            cr_assert_eq(clink_call_sync(c, TS_ECHO, "tick", 4, ts_ms(5000), &r), 0);
            cr_assert_eq(r.len, 4);
            clink_msg_free(&r);
        }
        size_t n = round == 0 ? 4097 : round == 1 ? 65536 + 5 : big; /* just over, over, far over */
        cr_assert_eq(clink_call_sync(c, TS_ECHO, payload, n, ts_ms(10000), &r), 0);
        cr_assert_eq(r.len, n);
        cr_assert_arr_eq(r.data, payload, n);
        clink_msg_free(&r);
    }
    free(payload);
}

Test(buffers, burst_after_idle_arrives_whole_tls_and_plain)
{
    struct clink_node *srv = ts_node(tls, 1, 1, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 1, 1);
    for (int plain = 0; plain < 2; plain++) {
        struct clink_connect_opts o = ts_dial(srv, "localhost");
        o.mode = plain ? CLINK_MODE_PLAIN : CLINK_MODE_TLS;
        struct clink_conn *c;
        char err[256];
        cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
        idle_then_burst(c);
        clink_conn_close(c);
    }
    clink_node_free(cli);
    clink_node_free(srv);
}
