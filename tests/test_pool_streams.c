/*
 * Streams through pools (clink_pool_stream_open) and the stream fan-out
 * (clink_cluster_fanout_stream_start) over real connections: a pool stream
 * with every byte checked; one opened while its connection is going away
 * (the peer's GOAWAY crosses it) opened again on the other connection and
 * complete; one the application had sent on is not, and ends
 * -CLINK_EGOAWAY; a stream left on a connection recycled at its record limit
 * ends -CLINK_ERECYCLED after the grace; a fan-out from 4 leaves with every
 * byte checked per leaf, and its one deadline when a leaf hangs.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/pool.h"
#include "clink/stream.h"
#include "pool/pool_int.h" /* the slots: which connection a stream will be opened on */
#include "tests/support/fixture.h"
#include "tests/support/support.h"

TestSuite(pool_streams, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 120);

#define M_PRODUCE 40 /* server-streaming: open = {u64 total, u32 msg}; sends total bytes in msg-sized messages */
#define M_HOLD    41 /* open = {u32 count, u32 close}: sends count 16-byte messages, then holds the stream open */

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- leaves ---- */

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

static atomic_int srv_ended, srv_canceled;

static void produce_more(struct producer *p)
{
    for (int k = 0; k < INFLIGHT && !p->done; k++) {
        if (p->busy[k]) {
            continue;
        }
        size_t n = p->total - p->sent < p->msg ? (size_t)(p->total - p->sent) : p->msg;
        ts_fill(p->buf[k], n, p->seed, p->sent);
        p->iov[k] = (struct iovec){.iov_base = p->buf[k], .iov_len = n};
        p->busy[k] = 1;
        int end = p->sent + n >= p->total;
        if (clink_stream_send(p->s, &p->iov[k], n > 0 ? 1 : 0, end, (void *)(intptr_t)k) < 0) {
            p->busy[k] = 0;
            p->done = 1;
            break;
        }
        if (n == 0) {
            p->busy[k] = 0;
        }
        p->sent += n;
        p->done = end;
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

static void prod_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)msg, (void)len;
    struct producer *p = user;
    if (status == -CLINK_ECANCELED) {
        atomic_fetch_add(&srv_canceled, 1);
    }
    atomic_fetch_add(&srv_ended, 1);
    for (int k = 0; k < INFLIGHT; k++) {
        free(p->buf[k]);
    }
    free(p);
}

/* Registered with the leaf's number as user: each leaf streams its own bytes. */
static void on_produce(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    cr_assert_eq(len, 12);
    struct producer *p = calloc(1, sizeof(*p));
    memcpy(&p->total, data, 8);
    memcpy(&p->msg, data + 8, 4);
    p->s = s;
    p->seed = (uint64_t)(intptr_t)user * 1000003ull + p->total;
    for (int k = 0; k < INFLIGHT; k++) {
        p->buf[k] = malloc(p->msg);
    }
    struct clink_stream_cbs cbs = {.on_sent = prod_sent, .on_end = prod_end};
    cr_assert_eq(clink_stream_accept(s, &cbs, 0, p), 0);
    produce_more(p);
}

/* A hung leaf: accepts its streams and never sends. */
static void hang_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)msg, (void)len, (void)user;
    if (status == -CLINK_ECANCELED) {
        atomic_fetch_add(&srv_canceled, 1);
    }
    atomic_fetch_add(&srv_ended, 1);
}

static void on_hang(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)data, (void)len, (void)user;
    struct clink_stream_cbs cbs = {.on_end = hang_end};
    cr_assert_eq(clink_stream_accept(s, &cbs, 0, NULL), 0);
}

struct hold {
    uint32_t count, close, sent;
    uint8_t b[16];
    struct iovec iov;
};

static void hold_send(struct clink_stream *s, struct hold *h)
{
    h->iov = (struct iovec){.iov_base = h->b, .iov_len = sizeof(h->b)};
    if (clink_stream_send(s, &h->iov, 1, 0, NULL) < 0) {
        h->count = h->sent; /* over */
    }
}

static void hold_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)tag;
    struct hold *h = user;
    if (status < 0) {
        return;
    }
    if (++h->sent < h->count) {
        hold_send(s, h);
    } else if (h->close) {
        /* Its message is in the connection's send path: the GOAWAY follows it on the wire. */
        clink_conn_close(clink_stream_conn(s));
    }
}

static void hold_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)msg, (void)len;
    if (status == -CLINK_ECANCELED) {
        atomic_fetch_add(&srv_canceled, 1);
    }
    atomic_fetch_add(&srv_ended, 1);
    free(user);
}

static void on_hold(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    cr_assert_eq(len, 8);
    struct hold *h = calloc(1, sizeof(*h));
    memcpy(&h->count, data, 4);
    memcpy(&h->close, data + 4, 4);
    struct clink_stream_cbs cbs = {.on_sent = hold_sent, .on_end = hold_end};
    cr_assert_eq(clink_stream_accept(s, &cbs, 0, h), 0);
    if (h->count > 0) {
        hold_send(s, h);
    }
}

static struct clink_node *leaf(int k, int hang)
{
    struct clink_node_opts o = {.workers = 1, .tls = tls, .handshake_timeout_ms = ts_ms(5000)};
    struct clink_node *n;
    cr_assert_eq(clink_node_new(&o, &n), 0);
    ts_register_echo(n);
    cr_assert_eq(clink_node_register_stream(n, M_PRODUCE, hang ? on_hang : on_produce, (void *)(intptr_t)k), 0);
    cr_assert_eq(clink_node_register_stream(n, M_HOLD, on_hold, NULL), 0);
    cr_assert_eq(clink_node_listen(n, "127.0.0.1", 0), 0);
    cr_assert_eq(clink_node_start(n), 0);
    return n;
}

static struct clink_cluster *cluster(struct clink_node *agg, const struct clink_pool_opts *po)
{
    struct clink_cluster_opts o = {.node = agg};
    if (po != NULL) {
        o.pool = *po;
    }
    struct clink_cluster *cl;
    cr_assert_eq(clink_cluster_new(&o, &cl), 0);
    return cl;
}

static void add_leaf(struct clink_cluster *cl, const char *name, struct clink_node *n)
{
    struct clink_peer p = {.name = name, .host = "127.0.0.1", .port = clink_node_port(n), .expected_name = "localhost"};
    cr_assert_eq(clink_cluster_add(cl, &p), 0);
}

static int wait_open(struct clink_pool *p, unsigned n)
{
    uint64_t end = ms_now() + ts_ms(5000);
    struct clink_pool_stats s;
    do {
        clink_pool_get_stats(p, &s);
        if (s.conns_open == n && s.conns_connecting == 0) {
            return 1;
        }
        usleep(5000);
    } while (ms_now() < end);
    return 0;
}

/* ---- the application's side of a pool stream ---- */

struct reader {
    uint64_t got, seed;
    int bad, sent;
    struct clink_conn *conn; /* of the stream its messages came on */
    atomic_int ends;
    int status;
    char msg[128];
};

static void rd_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    struct reader *r = user;
    r->bad |= !ts_check(data, len, r->seed, r->got);
    r->got += len;
    r->conn = clink_stream_conn(s);
}

static void rd_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s, (void)tag, (void)status;
    ((struct reader *)user)->sent++;
}

static void rd_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s;
    struct reader *r = user;
    r->status = status;
    snprintf(r->msg, sizeof(r->msg), "%.*s", (int)len, msg ? msg : "");
    atomic_fetch_add(&r->ends, 1);
}

static int wait_ended(struct reader *r, unsigned ms)
{
    uint64_t end = ms_now() + ts_ms(ms);
    while (!atomic_load(&r->ends) && ms_now() < end) {
        usleep(2000);
    }
    return atomic_load(&r->ends);
}

static struct clink_stream_open_opts produce_opts(uint8_t open[12], uint64_t total, uint32_t msg, struct reader *r)
{
    memcpy(open, &total, 8);
    memcpy(open + 8, &msg, 4);
    static struct iovec iov;
    iov = (struct iovec){.iov_base = open, .iov_len = 12};
    return (struct clink_stream_open_opts){
        .method = M_PRODUCE,
        .iov = &iov,
        .iovcnt = 1,
        .end = 1,
        .timeout_ms = ts_ms(20000),
        .cbs = {.on_msg = rd_msg, .on_sent = rd_sent, .on_end = rd_end},
        .user = r,
    };
}

Test(pool_streams, a_pool_stream_streams_every_byte)
{
    struct clink_node *lf = leaf(1, 0);
    struct clink_node *agg = ts_client(tls, 1, 0);
    struct clink_cluster *cl = cluster(agg, NULL);
    add_leaf(cl, "leaf1", lf);
    struct clink_pool *p = clink_cluster_pool(cl, "leaf1");
    uint64_t total = 5u << 20;
    struct reader r = {.seed = 1 * 1000003ull + total};
    uint8_t open[12];
    struct clink_stream_open_opts o = produce_opts(open, total, 100000, &r);

    /* Before the pool has a connection: the stream waits for one. */
    struct clink_pool_stream *ps = NULL;
    int ret = clink_pool_stream_open(p, &o, &ps);

    cr_assert_eq(ret, 0, "%s", clink_strerror(ret));
    cr_assert_neq(ps, NULL);
    cr_assert(wait_ended(&r, 20000));
    cr_assert_eq(r.status, 0, "%s %s", clink_strerror(r.status), r.msg);
    cr_assert_eq(r.got, total);
    cr_assert_eq(r.bad, 0, "every byte as the leaf sent it");
    usleep(50000);
    cr_assert_eq(atomic_load(&r.ends), 1, "on_end once");
    struct clink_pool_stats st;
    clink_pool_get_stats(p, &st);
    cr_assert_eq(st.streams_opened, 1);
    cr_assert_eq(st.streams_ok, 1);
    cr_assert_eq(st.streams_resent, 0);
    cr_assert_eq(st.streams_open + st.streams_waiting + st.calls_in_flight, 0);

    clink_pool_release(p);
    clink_cluster_free(cl);
    clink_node_free(agg);
    clink_node_free(lf);
}

Test(pool_streams, bad_arguments_and_a_removed_peer_are_refused_at_once)
{
    struct clink_node *lf = leaf(1, 0);
    struct clink_node *agg = ts_client(tls, 1, 0);
    struct clink_cluster *cl = cluster(agg, NULL);
    add_leaf(cl, "leaf1", lf);
    struct clink_pool *p = clink_cluster_pool(cl, "leaf1");
    struct reader r = {0};
    uint8_t open[12];
    struct clink_stream_open_opts o = produce_opts(open, 10, 10, &r);
    struct clink_stream_open_opts no_end = o;
    no_end.cbs.on_end = NULL;
    struct clink_pool_stream *ps = (void *)1;

    cr_assert_eq(clink_pool_stream_open(NULL, &o, &ps), -CLINK_EINVAL);
    cr_assert_eq(ps, NULL);
    cr_assert_eq(clink_pool_stream_open(p, &no_end, &ps), -CLINK_EINVAL);
    cr_assert_eq(clink_pool_stream_send(NULL, NULL, 0, 1, NULL), -CLINK_EINVAL);
    cr_assert_eq(clink_pool_stream_cancel(NULL), -CLINK_EINVAL);
    cr_assert_eq(clink_cluster_remove(cl, "leaf1"), 0);
    cr_assert_eq(clink_pool_stream_open(p, &o, &ps), -CLINK_EUNAVAIL);
    usleep(50000);

    cr_assert_eq(atomic_load(&r.ends), 0, "no callback after a refusal");
    clink_pool_release(p);
    clink_cluster_free(cl);
    clink_node_free(agg);
    clink_node_free(lf);
}

/* ---- a connection going away under a stream being opened ---- */

/*
 * The client's only worker is held inside an on_msg of a stream on the
 * pool's first connection (opened directly, so the pool does not count it)
 * while the leaf, right after that message, sends GOAWAY on it. A pool
 * stream opened meanwhile is handed to the held worker for that connection:
 * when the worker goes on, the connection is draining (or the leaf refuses
 * the REQUEST with GOAWAY) and the stream ends -CLINK_EGOAWAY underneath.
 */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, open;
    atomic_int ended;
};

static void gate_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s, (void)data, (void)len;
    struct gate *g = user;
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

static void gate_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)status, (void)msg, (void)len;
    atomic_store(&((struct gate *)user)->ended, 1);
}

struct crossing {
    struct clink_node *lf, *agg;
    struct clink_cluster *cl;
    struct clink_pool *p;
    struct clink_conn *first;
    struct clink_stream *held;
    struct gate g;
};

/* Two connections open; the worker held, with the leaf's GOAWAY on the first one on its way. */
static void hold_worker(struct crossing *x)
{
    x->lf = leaf(1, 0);
    x->agg = ts_client(tls, 1, 0);
    struct clink_pool_opts po = {.min_conns = 2, .max_conns = 2};
    x->cl = cluster(x->agg, &po);
    add_leaf(x->cl, "leaf1", x->lf);
    x->p = clink_cluster_pool(x->cl, "leaf1");
    cr_assert(wait_open(x->p, 2));
    x->first = atomic_load(&x->p->slots[0].conn);
    cr_assert_neq(x->first, NULL);
    pthread_mutex_init(&x->g.mu, NULL);
    pthread_cond_init(&x->g.cv, NULL);
    uint32_t open[2] = {1, 1}; /* one message, then GOAWAY */
    struct iovec iov = {.iov_base = open, .iov_len = sizeof(open)};
    struct clink_stream_open_opts o = {.method = M_HOLD,
                                       .iov = &iov,
                                       .iovcnt = 1,
                                       .end = 1,
                                       .cbs = {.on_msg = gate_msg, .on_end = gate_end},
                                       .user = &x->g};
    cr_assert_eq(clink_stream_open(x->first, &o, &x->held), 0);
    pthread_mutex_lock(&x->g.mu);
    while (!x->g.entered) {
        pthread_cond_wait(&x->g.cv, &x->g.mu);
    }
    pthread_mutex_unlock(&x->g.mu);
}

static void release_worker(struct crossing *x)
{
    usleep(100 * 1000); /* the GOAWAY reaches the client's socket */
    pthread_mutex_lock(&x->g.mu);
    x->g.open = 1;
    pthread_cond_broadcast(&x->g.cv);
    pthread_mutex_unlock(&x->g.mu);
}

static void crossing_free(struct crossing *x)
{
    CLINK_IGNORE(clink_stream_cancel(x->held) < 0); /* the draining connection can now close */
    uint64_t end = ms_now() + ts_ms(5000);
    while (!atomic_load(&x->g.ended) && ms_now() < end) {
        usleep(2000);
    }
    cr_assert(atomic_load(&x->g.ended));
    clink_pool_release(x->p);
    clink_cluster_free(x->cl);
    clink_node_free(x->agg);
    clink_node_free(x->lf);
    pthread_mutex_destroy(&x->g.mu);
    pthread_cond_destroy(&x->g.cv);
}

Test(pool_streams, a_stream_opened_as_its_connection_goes_away_is_resent_on_the_other)
{
    struct crossing x = {0};
    hold_worker(&x);
    uint64_t total = 1u << 20;
    struct reader r = {.seed = 1 * 1000003ull + total};
    uint8_t open[12];
    struct clink_stream_open_opts o = produce_opts(open, total, 50000, &r);

    int ret = clink_pool_stream_open(x.p, &o, NULL);
    release_worker(&x);

    cr_assert_eq(ret, 0, "%s", clink_strerror(ret));
    cr_assert(wait_ended(&r, 20000));
    cr_assert_eq(r.status, 0, "%s %s", clink_strerror(r.status), r.msg);
    cr_assert_eq(r.got, total);
    cr_assert_eq(r.bad, 0);
    cr_assert_neq(r.conn, x.first, "it came on the other connection");
    struct clink_pool_stats st;
    clink_pool_get_stats(x.p, &st);
    cr_assert_eq(st.streams_resent, 1, "opened again once, unseen by the application");
    cr_assert_eq(st.streams_ok, 1);
    usleep(50000);
    cr_assert_eq(atomic_load(&r.ends), 1, "on_end once");
    crossing_free(&x);
}

Test(pool_streams, a_stream_the_application_sent_on_is_not_resent)
{
    struct crossing x = {0};
    hold_worker(&x);
    struct reader r = {0};
    uint8_t open[12];
    struct clink_stream_open_opts o = produce_opts(open, 100, 100, &r);
    o.end = 0; /* the application sends more */
    static uint8_t more[32];
    struct iovec iov = {.iov_base = more, .iov_len = sizeof(more)};
    struct clink_pool_stream *ps = NULL;

    int ret = clink_pool_stream_open(x.p, &o, &ps);
    cr_assert_eq(ret, 0, "%s", clink_strerror(ret));
    int sret = clink_pool_stream_send(ps, &iov, 1, 1, NULL);
    release_worker(&x);

    cr_assert_eq(sret, 0, "%s", clink_strerror(sret));
    cr_assert(wait_ended(&r, 20000));
    cr_assert_eq(r.status, -CLINK_EGOAWAY, "ends with the error as it is: %s", clink_strerror(r.status));
    cr_assert_eq(r.got, 0);
    struct clink_pool_stats st;
    clink_pool_get_stats(x.p, &st);
    cr_assert_eq(st.streams_resent, 0, "something was sent: never opened again");
    usleep(50000);
    cr_assert_eq(atomic_load(&r.ends), 1, "on_end once");
    cr_log_info("on_sent of the message sent before the end: %d", r.sent);
    crossing_free(&x);
}

/* ---- recycling ---- */

Test(pool_streams, a_stream_left_on_a_recycled_connection_ends_recycled_after_the_grace)
{
    struct clink_node *lf = leaf(1, 0);
    struct clink_node *agg = ts_client(tls, 1, 0);
    struct clink_pool_opts po = {.min_conns = 1, .max_conns = 2, .recycle_records = 300, .recycle_grace_ms = 300};
    struct clink_cluster *cl = cluster(agg, &po);
    add_leaf(cl, "leaf1", lf);
    struct clink_pool *p = clink_cluster_pool(cl, "leaf1");
    cr_assert(wait_open(p, 1));
    struct reader r = {0};
    uint32_t open[2] = {1, 0}; /* one message, then held open */
    struct iovec iov = {.iov_base = open, .iov_len = sizeof(open)};
    struct clink_stream_open_opts o = {
        .method = M_HOLD, .iov = &iov, .iovcnt = 1, .end = 1, .cbs = {.on_end = rd_end}, .user = &r};
    atomic_store(&srv_canceled, 0);
    uint64_t t0 = ms_now();

    cr_assert_eq(clink_pool_stream_open(p, &o, NULL), 0);
    /* Records on its connection (one at a time, calls share it with the stream) until the pool recycles it. */
    struct clink_pool_stats st;
    uint64_t until = ms_now() + ts_ms(10000);
    do {
        struct clink_msg m;
        cr_assert_eq(clink_pool_call_sync(p, TS_ECHO, "ping", 4, ts_ms(5000), &m), 0);
        clink_msg_free(&m);
        clink_pool_get_stats(p, &st);
    } while (st.recycles == 0 && ms_now() < until);
    cr_assert_geq(st.recycles, 1);
    cr_assert(wait_ended(&r, 5000));

    cr_assert_eq(r.status, -CLINK_ERECYCLED, "%s", clink_strerror(r.status));
    cr_assert_eq(clink_err_kind_of(r.status), CLINK_KIND_AGAIN, "stated as retryable");
    cr_assert_geq(ms_now() - t0, 300, "not before the grace");
    cr_assert(strstr(r.msg, "recycled") != NULL, "%s", r.msg);
    clink_pool_get_stats(p, &st);
    cr_assert_eq(st.streams_recycled, 1);
    uint64_t end = ms_now() + ts_ms(3000);
    while (atomic_load(&srv_canceled) < 1 && ms_now() < end) {
        usleep(2000);
    }
    cr_assert_eq(atomic_load(&srv_canceled), 1, "the leaf's side was cancelled too");
    /* Opened again, as the error says, it works on the fresh connection. */
    uint64_t total = 100000;
    struct reader r2 = {.seed = 1 * 1000003ull + total};
    uint8_t popen[12];
    struct clink_stream_open_opts o2 = produce_opts(popen, total, 10000, &r2);
    cr_assert_eq(clink_pool_stream_open(p, &o2, NULL), 0);
    cr_assert(wait_ended(&r2, 10000));
    cr_assert_eq(r2.status, 0, "%s", clink_strerror(r2.status));
    cr_assert_eq(r2.got, total);
    cr_assert_eq(r2.bad, 0);

    clink_pool_release(p);
    clink_cluster_free(cl);
    clink_node_free(agg);
    clink_node_free(lf);
}

Test(pool_streams, a_stream_left_open_when_its_peer_is_removed_ends_after_the_grace)
{
    struct clink_node *lf = leaf(1, 0);
    struct clink_node *agg = ts_client(tls, 1, 0);
    struct clink_pool_opts po = {.recycle_grace_ms = 300};
    struct clink_cluster *cl = cluster(agg, &po);
    add_leaf(cl, "leaf1", lf);
    struct clink_pool *p = clink_cluster_pool(cl, "leaf1");
    cr_assert(wait_open(p, 1));
    struct reader r = {0};
    uint32_t open[2] = {1, 0}; /* one message, then held open: no deadline, no end */
    struct iovec iov = {.iov_base = open, .iov_len = sizeof(open)};
    struct clink_stream_open_opts o = {
        .method = M_HOLD, .iov = &iov, .iovcnt = 1, .end = 1, .cbs = {.on_end = rd_end}, .user = &r};
    cr_assert_eq(clink_pool_stream_open(p, &o, NULL), 0);
    usleep(100 * 1000);
    uint64_t t0 = ms_now();

    cr_assert_eq(clink_cluster_remove(cl, "leaf1"), 0);
    cr_assert(wait_ended(&r, 5000));

    cr_assert_eq(r.status, -CLINK_EUNAVAIL, "%s", clink_strerror(r.status));
    cr_assert_geq(ms_now() - t0, 300, "not before the grace");
    cr_assert(strstr(r.msg, "removed") != NULL, "%s", r.msg);
    clink_pool_release(p);
    clink_cluster_free(cl); /* does not wait for a stream that never ends */
    clink_node_free(agg);
    clink_node_free(lf);
}

/* ---- fan-out ---- */

#define LEAVES 4

struct gather {
    uint64_t got[LEAVES], seed[LEAVES];
    int bad[LEAVES];
    atomic_int ends;
    int status;
    size_t failed, n;
    int statuses[LEAVES];
    char peers[LEAVES][64];
    uint64_t end_ms;
};

static void g_msg(size_t idx, const char *peer, const uint8_t *data, size_t len, void *user)
{
    struct gather *g = user;
    cr_assert_lt(idx, LEAVES);
    cr_assert_eq(peer[4] - '0', (int)idx, "peer %s at %zu", peer, idx);
    g->bad[idx] |= !ts_check(data, len, g->seed[idx], g->got[idx]);
    g->got[idx] += len;
}

static void g_end(int status, size_t failed, const struct clink_fanout_result *results, size_t n, void *user)
{
    struct gather *g = user;
    g->status = status;
    g->failed = failed;
    g->n = n;
    for (size_t i = 0; i < n && i < LEAVES; i++) {
        g->statuses[i] = results[i].status;
        snprintf(g->peers[i], sizeof(g->peers[i]), "%s", results[i].peer);
    }
    g->end_ms = ms_now();
    atomic_fetch_add(&g->ends, 1);
}

static void fanout_run(int hang_last, uint32_t timeout_ms, uint64_t total, struct gather *g)
{
    struct clink_node *lf[LEAVES];
    struct clink_node *agg = ts_client(tls, 2, 0);
    struct clink_cluster *cl = cluster(agg, NULL);
    for (int k = 0; k < LEAVES; k++) {
        char name[16];
        snprintf(name, sizeof(name), "leaf%d", k);
        lf[k] = leaf(k, hang_last && k == LEAVES - 1);
        add_leaf(cl, name, lf[k]);
        g->seed[k] = (uint64_t)k * 1000003ull + total;
    }
    /* Connections first: the deadline is for the streams, not for handshakes under a sanitizer. */
    for (int k = 0; k < LEAVES; k++) {
        char name[16];
        snprintf(name, sizeof(name), "leaf%d", k);
        struct clink_pool *p = clink_cluster_pool(cl, name);
        cr_assert(wait_open(p, 1), "%s", name);
        clink_pool_release(p);
    }
    uint8_t open[12];
    uint32_t msg = 30000;
    memcpy(open, &total, 8);
    memcpy(open + 8, &msg, 4);
    struct clink_fanout_stream_cbs cbs = {.on_msg = g_msg, .on_end = g_end};
    uint64_t t0 = ms_now();

    int ret = clink_cluster_fanout_stream_start(cl, CLINK_ROLE_LEAF, NULL, M_PRODUCE, open, sizeof(open), timeout_ms,
                                                &cbs, g);

    cr_assert_eq(ret, 0, "%s", clink_strerror(ret));
    uint64_t end = ms_now() + ts_ms(30000);
    while (!atomic_load(&g->ends) && ms_now() < end) {
        usleep(2000);
    }
    cr_assert_eq(atomic_load(&g->ends), 1);
    g->end_ms -= t0;
    usleep(50000);
    cr_assert_eq(atomic_load(&g->ends), 1, "on_end once");
    clink_cluster_free(cl);
    clink_node_free(agg);
    for (int k = 0; k < LEAVES; k++) {
        clink_node_free(lf[k]);
    }
}

Test(pool_streams, a_fanout_streams_every_byte_from_four_leaves)
{
    struct gather g = {0};
    uint64_t total = 2u << 20;

    fanout_run(0, ts_ms(20000), total, &g);

    cr_assert_eq(g.status, 0, "%s", clink_strerror(g.status));
    cr_assert_eq(g.n, LEAVES);
    cr_assert_eq(g.failed, LEAVES, "n when none failed");
    for (int k = 0; k < LEAVES; k++) {
        cr_assert_eq(g.statuses[k], 0, "leaf%d: %s", k, clink_strerror(g.statuses[k]));
        cr_assert_eq(g.got[k], total, "leaf%d: %llu bytes", k, (unsigned long long)g.got[k]);
        cr_assert_eq(g.bad[k], 0, "leaf%d: every byte its own", k);
    }
}

Test(pool_streams, a_fanout_with_a_hung_leaf_ends_at_its_one_deadline)
{
    struct gather g = {0};
    uint64_t total = 1u << 20;
    atomic_store(&srv_canceled, 0);

    uint32_t deadline = ts_ms(2000);

    fanout_run(1, deadline, total, &g);

    cr_assert_eq(g.status, -CLINK_ETIMEDOUT, "%s", clink_strerror(g.status));
    cr_assert_eq(g.failed, LEAVES - 1, "the hung leaf is named");
    cr_assert_str_eq(g.peers[LEAVES - 1], "leaf3");
    cr_assert_eq(g.statuses[LEAVES - 1], -CLINK_ETIMEDOUT);
    for (int k = 0; k < LEAVES - 1; k++) {
        cr_assert_eq(g.statuses[k], 0, "leaf%d: %s", k, clink_strerror(g.statuses[k]));
        cr_assert_eq(g.got[k], total, "leaf%d", k);
        cr_assert_eq(g.bad[k], 0, "leaf%d", k);
    }
    cr_assert_eq(g.got[LEAVES - 1], 0);
    cr_assert_geq(g.end_ms, deadline, "not before the deadline");
    cr_assert_lt(g.end_ms, deadline + ts_ms(2000), "at the deadline: %llu ms", (unsigned long long)g.end_ms);
}
