/*
 * Streams (clink/stream.h) from many application threads at once, as a
 * plain program so that it also runs under ThreadSanitizer (Criterion's
 * runner aborts under TSan). Exit 0 on success, 1 on failure.
 *
 * Two nodes with 2 workers each; the client grants small windows (256 KiB a
 * stream, 1 MiB the connection), so that credit runs out and comes back all
 * the time. In phase 1 four application threads share one connection; in
 * phase 2 they spread over four. Each thread keeps three streams going at
 * once and unary echo calls besides:
 * - server-streaming (the server produces `total` bytes in messages of one
 *   of several sizes, some chunked), half of them with
 *   CLINK_STREAM_MANUAL_CREDIT, consumed from the application thread
 *   (clink_stream_consume);
 * - bidirectional (the server echoes every message), the messages sent from
 *   the application thread (clink_stream_send posts to the worker), some
 *   above a chunk, half with manual credit;
 * - a quarter of both cancelled from the application thread mid-stream
 *   (server-streaming: after some bytes came; bidirectional: after some
 *   messages went, before the last, so the server's side is still open);
 * - unary calls of mixed sizes (some above 16 KiB: chunked).
 * Every byte is checked against its stream's pattern; every message must
 * arrive whole (no empty ones: none is sent, and a bare end is "no message,
 * just the end"); every stream must end exactly once on both sides (0, or
 * -CLINK_ECANCELED where it was cancelled); every call must complete once
 * with its own bytes.
 *
 * The application's side of the lifetime rule ("valid until on_end
 * returns"): each stream's calls from the application thread happen under
 * the stream's mutex and only while its on_end has not run; on_end takes the
 * same mutex. DRV_N: streams per thread per phase (default 10).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/stream.h"
#include "tests/support/support.h"

#define M_PRODUCE 40 /* server-streaming: open = {u64 total, u32 msg} */
#define M_ECHO    41 /* bidirectional: every message comes back; the server ends when the opener has */

#define THREADS    4
#define NCONN      4
#define LIVE       3 /* streams each thread has going at once */
#define SLOTS      2 /* a bidirectional stream's messages in flight */
#define UNARY_LIVE 4
#define UNARY_N    150 /* unary calls per thread per phase */
#define SRV_MAX    4096
#define CHUNK      16368  /* transport/frame.h: CLINK_CHUNK */
#define MSG_MAX    150000 /* a stream message: within 3/4 of the client's stream window (196,608 bytes) */

static atomic_int failures;
#define EXPECT(cond, ...)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fprintf(stderr, "\n");                                                                                     \
            atomic_fetch_add(&failures, 1);                                                                            \
        }                                                                                                              \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t rnd(uint64_t *st)
{
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*st >> 33);
}

/* ---- server side (runs on the server's workers) ---- */

#define INFLIGHT 4

/* One per stream the server accepted, never reused or freed before the end: its ends are counted there. */
struct srv_stream {
    struct clink_stream *s;
    uint64_t total, sent, seed;
    uint32_t msg;
    uint8_t *buf[INFLIGHT];
    struct iovec iov[INFLIGHT];
    int busy[INFLIGHT];
    int done;
    atomic_int ends;
};
static struct srv_stream srv_streams[SRV_MAX];
static atomic_int srv_next, srv_ended, srv_ok, srv_canceled, srv_other;

static struct srv_stream *srv_new(void)
{
    int i = atomic_fetch_add(&srv_next, 1);
    TS_REQUIRE(i < SRV_MAX, "more than %d server streams", SRV_MAX);
    return &srv_streams[i];
}

static void srv_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)msg, (void)len;
    struct srv_stream *p = user;
    for (int k = 0; k < INFLIGHT; k++) {
        free(p->buf[k]);
        p->buf[k] = NULL;
    }
    atomic_fetch_add(status == 0 ? &srv_ok : status == -CLINK_ECANCELED ? &srv_canceled : &srv_other, 1);
    atomic_fetch_add(&p->ends, 1);
    atomic_fetch_add(&srv_ended, 1);
}

static void produce_more(struct srv_stream *p)
{
    for (int k = 0; k < INFLIGHT && !p->done; k++) {
        if (p->busy[k]) {
            continue;
        }
        size_t n = p->total - p->sent < p->msg ? (size_t)(p->total - p->sent) : p->msg;
        ts_fill(p->buf[k], n, p->seed, p->sent);
        p->iov[k] = (struct iovec){.iov_base = p->buf[k], .iov_len = n};
        int end = p->sent + n >= p->total;
        p->busy[k] = 1;
        if (clink_stream_send(p->s, &p->iov[k], 1, end, (void *)(intptr_t)k) < 0) {
            p->busy[k] = 0;
            p->done = 1; /* the stream ended (cancelled): on_end follows */
            break;
        }
        p->sent += n;
        p->done = end;
    }
}

static void prod_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s;
    struct srv_stream *p = user;
    p->busy[(intptr_t)tag] = 0;
    if (status == 0) {
        produce_more(p);
    }
}

static void on_produce(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    struct srv_stream *p = srv_new();
    TS_REQUIRE(len == 12, "PRODUCE opening of %zu bytes", len);
    memcpy(&p->total, data, 8);
    memcpy(&p->msg, data + 8, 4);
    p->s = s;
    p->seed = p->total * 31 + p->msg;
    for (int k = 0; k < INFLIGHT; k++) {
        p->buf[k] = malloc(p->msg);
    }
    struct clink_stream_cbs cbs = {.on_sent = prod_sent, .on_end = srv_end};
    TS_REQUIRE(clink_stream_accept(s, &cbs, 0, p) == 0, "accept");
    produce_more(p);
}

/* Echo: each message is copied (valid only in on_msg) and sent back; the copy is freed by on_sent. */
static void echo_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s, (void)status, (void)user;
    free(tag);
}

static void echo_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    struct copy {
        struct iovec iov;
        uint8_t b[];
    } *c = malloc(sizeof(*c) + len);
    memcpy(c->b, data, len);
    c->iov = (struct iovec){.iov_base = c->b, .iov_len = len};
    if (clink_stream_send(s, &c->iov, 1, 0, c) < 0) {
        free(c);
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
    struct srv_stream *p = srv_new();
    p->s = s;
    struct clink_stream_cbs cbs = {
        .on_msg = echo_msg, .on_peer_end = echo_peer_end, .on_sent = echo_sent, .on_end = srv_end};
    TS_REQUIRE(clink_stream_accept(s, &cbs, 0, p) == 0, "accept");
}

static void reg(struct clink_node *n)
{
    ts_register_echo(n);
    TS_REQUIRE(clink_node_register_stream(n, M_PRODUCE, on_produce, NULL) == 0, "register");
    TS_REQUIRE(clink_node_register_stream(n, M_ECHO, on_echo, NULL) == 0, "register");
}

/* ---- client side ---- */

enum { K_PRODUCE, K_BIDI };
enum { J_NEW, J_OPEN, J_DONE };

struct job {
    int kind, manual, state, idx;
    struct clink_conn *conn;
    uint64_t seed;
    pthread_mutex_t mu;
    struct clink_stream *s; /* under mu, and only while !ended */
    int ended;              /* under mu: on_end has run */
    int status;
    atomic_int ends;
    /* what arrived (on the connection's worker; read by the application after on_end, through mu) */
    _Atomic uint64_t got;
    _Atomic uint64_t unconsumed; /* manual credit: delivered, not yet consumed */
    uint64_t msgs;
    int bad, peer_end, empty;
    /* PRODUCE */
    uint64_t total;
    uint32_t msg;
    /* BIDI: messages sent from the application thread */
    int nmsg, next;
    uint32_t sizes[16];
    uint64_t sent_off;
    uint8_t *sbuf[SLOTS];
    struct iovec siov[SLOTS];
    atomic_int sbusy[SLOTS];
    atomic_int sent_ok, sent_failed;
    /* cancel: PRODUCE once `got` reaches cancel_at, BIDI once `next` does (0: never) */
    uint64_t cancel_at;
    int cancel_sent;
};

static void j_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct job *j = user;
    uint64_t got = atomic_load_explicit(&j->got, memory_order_relaxed);
    if (len == 0) {
        j->empty++; /* none is sent: the peer's bare end came as a message */
        return;
    }
    if (!ts_check(data, len, j->seed, got)) {
        j->bad = 1;
    }
    j->msgs++;
    atomic_store(&j->got, got + len);
    if (j->manual) {
        atomic_fetch_add(&j->unconsumed, len);
    }
}

static void j_peer_end(struct clink_stream *s, void *user)
{
    (void)s;
    ((struct job *)user)->peer_end++;
}

static void j_sent(struct clink_stream *s, void *tag, int status, void *user)
{
    (void)s;
    struct job *j = user;
    atomic_fetch_add(status == 0 ? &j->sent_ok : &j->sent_failed, 1);
    atomic_store(&j->sbusy[(intptr_t)tag], 0);
}

static void j_end(struct clink_stream *s, int status, const char *msg, size_t len, void *user)
{
    (void)s, (void)msg, (void)len;
    struct job *j = user;
    atomic_fetch_add(&j->ends, 1);
    pthread_mutex_lock(&j->mu);
    j->status = status;
    j->ended = 1;
    pthread_mutex_unlock(&j->mu);
}

struct app {
    int id;
    struct clink_conn **conns;
    int nconn;
    struct job *jobs;
    int njobs;
    uint64_t rng;
    /* unary calls */
    struct ucall *calls;
    int ncalls;
    /* results */
    int streams_ok, streams_canceled, cancels_sent, consumes, empty;
    uint64_t bytes_in, bytes_out;
};

struct ucall {
    struct clink_call call;
    struct iovec iov;
    uint8_t *buf;
    size_t len;
    uint64_t seed;
    atomic_int completions;
    atomic_int ok;
};

static void ucall_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct ucall *u = (struct ucall *)call;
    atomic_store(&u->ok, status == 0 && len == u->len && ts_check(resp, len, u->seed, 0) ? 1 : -1);
    atomic_fetch_add(&u->completions, 1);
}

static void job_setup(struct app *a, struct job *j, int idx)
{
    uint64_t *st = &a->rng;
    j->idx = idx;
    j->conn = a->conns[(a->id + idx) % a->nconn];
    j->kind = rnd(st) % 2 ? K_BIDI : K_PRODUCE;
    j->manual = rnd(st) % 2;
    pthread_mutex_init(&j->mu, NULL);
    if (j->kind == K_PRODUCE) {
        static const uint32_t msgs[] = {1000, CHUNK, CHUNK + 1, 65536, MSG_MAX};
        j->msg = msgs[rnd(st) % 5];
        j->total = 64 * 1024 + rnd(st) % (1u << 20);
        j->seed = j->total * 31 + j->msg; /* what the server derives from the opening */
    } else {
        j->seed = ((uint64_t)a->id << 32) ^ ((uint64_t)idx << 16) ^ rnd(st);
        j->nmsg = 3 + (int)(rnd(st) % 12);
        for (int i = 0; i < j->nmsg; i++) {
            uint32_t r = rnd(st) % 100;
            j->sizes[i] = r < 50   ? 1 + rnd(st) % 4000
                          : r < 90 ? CHUNK + 1 + rnd(st) % 50000
                                   : MSG_MAX - rnd(st) % 50000;
            j->total += j->sizes[i];
        }
        for (int k = 0; k < SLOTS; k++) {
            j->sbuf[k] = malloc(MSG_MAX);
        }
    }
    if (rnd(st) % 4 == 0) {
        j->cancel_at = j->kind == K_PRODUCE ? 1 + rnd(st) % j->total : 1 + rnd(st) % (uint64_t)(j->nmsg - 1);
    }
}

/* Open the stream; 1 if it was (or failed for good), 0 to try again (the worker's inbox is full). */
static int job_open(struct app *a, struct job *j)
{
    (void)a;
    uint8_t open[12];
    struct iovec iov = {.iov_base = open, .iov_len = sizeof(open)};
    struct clink_stream_open_opts o = {
        .timeout_ms = ts_ms(60000),
        .flags = j->manual ? CLINK_STREAM_MANUAL_CREDIT : 0,
        .cbs = {.on_msg = j_msg, .on_peer_end = j_peer_end, .on_sent = j_sent, .on_end = j_end},
        .user = j,
    };
    if (j->kind == K_PRODUCE) {
        memcpy(open, &j->total, 8);
        memcpy(open + 8, &j->msg, 4);
        o.method = M_PRODUCE;
        o.iov = &iov;
        o.iovcnt = 1;
        o.end = 1;
    } else {
        o.method = M_ECHO;
    }
    pthread_mutex_lock(&j->mu);
    int ret = clink_stream_open(j->conn, &o, &j->s);
    pthread_mutex_unlock(&j->mu);
    if (ret == -CLINK_EAGAIN) {
        return 0;
    }
    EXPECT(ret == 0, "open: %s", clink_strerror(ret));
    j->state = ret == 0 ? J_OPEN : J_DONE;
    return 1;
}

/* One step of an open stream from its application thread; 1 if something was done. */
static int job_step(struct app *a, struct job *j)
{
    int did = 0;
    pthread_mutex_lock(&j->mu);
    if (j->ended) {
        pthread_mutex_unlock(&j->mu);
        j->state = J_DONE;
        return 1;
    }
    if (j->manual) {
        uint64_t n = atomic_exchange(&j->unconsumed, 0);
        if (n > 0) {
            int ret = clink_stream_consume(j->s, n);
            if (ret == -CLINK_EAGAIN) {
                atomic_fetch_add(&j->unconsumed, n);
            } else {
                EXPECT(ret == 0, "consume: %s", clink_strerror(ret));
                a->consumes++;
                did = 1;
            }
        }
    }
    if (j->kind == K_BIDI && j->next < j->nmsg && !j->cancel_sent) {
        for (int k = 0; k < SLOTS && j->next < j->nmsg; k++) {
            if (atomic_load(&j->sbusy[k])) {
                continue;
            }
            uint32_t n = j->sizes[j->next];
            ts_fill(j->sbuf[k], n, j->seed, j->sent_off);
            j->siov[k] = (struct iovec){.iov_base = j->sbuf[k], .iov_len = n};
            atomic_store(&j->sbusy[k], 1);
            int ret = clink_stream_send(j->s, &j->siov[k], 1, j->next == j->nmsg - 1, (void *)(intptr_t)k);
            if (ret == -CLINK_EAGAIN) {
                atomic_store(&j->sbusy[k], 0);
                break;
            }
            EXPECT(ret == 0, "send: %s", clink_strerror(ret));
            if (ret < 0) {
                atomic_store(&j->sbusy[k], 0);
            }
            j->sent_off += n;
            j->next++;
            did = 1;
        }
    }
    uint64_t progress = j->kind == K_PRODUCE ? atomic_load(&j->got) : (uint64_t)j->next;
    if (j->cancel_at > 0 && !j->cancel_sent && progress >= j->cancel_at) {
        int ret = clink_stream_cancel(j->s);
        if (ret != -CLINK_EAGAIN) {
            EXPECT(ret == 0, "cancel: %s", clink_strerror(ret));
            j->cancel_sent = 1;
            a->cancels_sent++;
            did = 1;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return did;
}

/* The stream is over (on_end has run; mu orders what its callbacks wrote before it). */
static void job_check(struct app *a, struct job *j)
{
    pthread_mutex_lock(&j->mu);
    int status = j->status;
    pthread_mutex_unlock(&j->mu);
    uint64_t got = atomic_load(&j->got);
    const char *kind = j->kind == K_PRODUCE ? "produce" : "bidi";
    EXPECT(atomic_load(&j->ends) == 1, "thread %d %s stream %d ended %d times", a->id, kind, j->idx,
           atomic_load(&j->ends));
    EXPECT(j->bad == 0, "thread %d %s stream %d: a byte differed", a->id, kind, j->idx);
    EXPECT(got <= j->total, "thread %d %s stream %d: %llu bytes of %llu", a->id, kind, j->idx, (unsigned long long)got,
           (unsigned long long)j->total);
    EXPECT(j->peer_end <= 1, "thread %d %s stream %d: the peer ended %d times", a->id, kind, j->idx, j->peer_end);
    EXPECT(j->empty == 0, "thread %d %s stream %d: %d empty messages (the peer's bare end delivered as one)", a->id,
           kind, j->idx, j->empty);
    a->empty += j->empty;
    a->bytes_in += got;
    a->bytes_out += j->kind == K_BIDI ? j->sent_off : 0;
    if (status == 0) {
        a->streams_ok++;
        EXPECT(got == j->total, "thread %d %s stream %d ended well with %llu bytes of %llu", a->id, kind, j->idx,
               (unsigned long long)got, (unsigned long long)j->total);
        EXPECT(j->peer_end == 1, "thread %d %s stream %d: no peer end", a->id, kind, j->idx);
        if (j->kind == K_PRODUCE) {
            EXPECT(j->msgs == (j->total + j->msg - 1) / j->msg, "thread %d produce stream %d: %llu messages", a->id,
                   j->idx, (unsigned long long)j->msgs);
        } else {
            EXPECT(j->msgs == (uint64_t)j->nmsg && atomic_load(&j->sent_ok) == j->nmsg,
                   "thread %d bidi stream %d: %llu messages back, %d sent, of %d", a->id, j->idx,
                   (unsigned long long)j->msgs, atomic_load(&j->sent_ok), j->nmsg);
        }
    } else {
        EXPECT(status == -CLINK_ECANCELED && j->cancel_sent, "thread %d %s stream %d: %s (cancel %s)", a->id, kind,
               j->idx, clink_strerror(status), j->cancel_sent ? "sent" : "not sent");
        a->streams_canceled += status == -CLINK_ECANCELED;
    }
    /* on_end has run: every buffer is ours again, whatever on_sent said. */
    for (int k = 0; k < SLOTS; k++) {
        free(j->sbuf[k]);
        j->sbuf[k] = NULL;
    }
}

/* Keep UNARY_LIVE calls going until all a->ncalls are started; 1 if something was done. */
static int unary_step(struct app *a, int *started, int *finished)
{
    int did = 0;
    for (int i = *finished; i < *started; i++) {
        struct ucall *u = &a->calls[i];
        if (u->buf != NULL && atomic_load(&u->completions) > 0) {
            free(u->buf);
            u->buf = NULL;
        }
    }
    while (*finished < *started && a->calls[*finished].buf == NULL) {
        (*finished)++;
        did = 1;
    }
    while (*started < a->ncalls && *started - *finished < UNARY_LIVE) {
        struct ucall *u = &a->calls[*started];
        if (u->buf == NULL) {
            uint32_t r = rnd(&a->rng) % 100;
            u->len = r < 80 ? 1 + rnd(&a->rng) % 2000 : r < 97 ? 16385 + rnd(&a->rng) % 64000 : 200000;
            u->seed = ((uint64_t)a->id << 40) ^ (uint64_t)*started;
            u->buf = malloc(u->len);
            ts_fill(u->buf, u->len, u->seed, 0);
            u->iov = (struct iovec){.iov_base = u->buf, .iov_len = u->len};
        }
        u->call = (struct clink_call){
            .method = TS_ECHO, .iov = &u->iov, .iovcnt = 1, .cb = ucall_cb, .timeout_ms = ts_ms(60000)};
        int ret = clink_call_start(a->conns[(a->id + *started) % a->nconn], &u->call);
        if (ret == -CLINK_EAGAIN) {
            break;
        }
        EXPECT(ret == 0, "call: %s", clink_strerror(ret));
        if (ret < 0) {
            atomic_store(&u->completions, 1);
            atomic_store(&u->ok, -1);
        }
        (*started)++;
        did = 1;
    }
    return did;
}

static void *app_thread(void *p)
{
    struct app *a = p;
    struct job *live[LIVE] = {0};
    int opened = 0, done = 0, ustarted = 0, ufinished = 0;
    double deadline = now_s() + ts_ms(90000) / 1000.0;
    while (done < a->njobs || ufinished < a->ncalls) {
        int did = 0;
        for (int k = 0; k < LIVE; k++) {
            if (live[k] == NULL && opened < a->njobs) {
                live[k] = &a->jobs[opened++];
            }
            struct job *j = live[k];
            if (j == NULL) {
                continue;
            }
            if (j->state == J_NEW) {
                did |= job_open(a, j);
            }
            if (j->state == J_OPEN) {
                did |= job_step(a, j);
            }
            if (j->state == J_DONE) {
                job_check(a, j);
                live[k] = NULL;
                done++;
                did = 1;
            }
        }
        did |= unary_step(a, &ustarted, &ufinished);
        if (!did) {
            usleep(200);
        }
        if (now_s() > deadline) {
            EXPECT(0, "thread %d: %d of %d streams, %d of %d calls done after 90 s", a->id, done, a->njobs, ufinished,
                   a->ncalls);
            break;
        }
    }
    return NULL;
}

static void wait_count(atomic_int *v, int want, unsigned ms)
{
    for (unsigned i = 0; i < ms / 5 && atomic_load(v) < want; i++) {
        usleep(5000);
    }
}

static void phase(const char *name, struct clink_conn **conns, int nconn, int njobs, uint64_t seed)
{
    double t0 = now_s();
    int srv_before = atomic_load(&srv_next), srv_ended_before = atomic_load(&srv_ended);
    int srv_ok_before = atomic_load(&srv_ok), srv_canceled_before = atomic_load(&srv_canceled);
    pthread_t th[THREADS];
    struct app apps[THREADS];
    for (int t = 0; t < THREADS; t++) {
        apps[t] = (struct app){.id = t,
                               .conns = conns,
                               .nconn = nconn,
                               .jobs = calloc((size_t)njobs, sizeof(struct job)),
                               .njobs = njobs,
                               .rng = seed * 1000 + (uint64_t)t,
                               .calls = calloc(UNARY_N, sizeof(struct ucall)),
                               .ncalls = UNARY_N};
        for (int i = 0; i < njobs; i++) {
            job_setup(&apps[t], &apps[t].jobs[i], i);
        }
        pthread_create(&th[t], NULL, app_thread, &apps[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    /* The server's side of every stream it accepted ends too (a cancel reaches it as CANCEL). */
    int accepted = atomic_load(&srv_next) - srv_before;
    wait_count(&srv_ended, srv_ended_before + accepted, ts_ms(10000));
    usleep(100000); /* room for a second on_end, were there one */
    int ok = 0, canceled = 0, cancels = 0, consumes = 0, empty = 0, calls_ok = 0, chunked = 0;
    uint64_t in = 0, out = 0;
    for (int t = 0; t < THREADS; t++) {
        struct app *a = &apps[t];
        ok += a->streams_ok;
        canceled += a->streams_canceled;
        cancels += a->cancels_sent;
        consumes += a->consumes;
        empty += a->empty;
        in += a->bytes_in;
        out += a->bytes_out;
        for (int i = 0; i < a->njobs; i++) {
            EXPECT(atomic_load(&a->jobs[i].ends) == 1, "%s: thread %d stream %d ended %d times", name, t, i,
                   atomic_load(&a->jobs[i].ends));
            pthread_mutex_destroy(&a->jobs[i].mu);
        }
        for (int i = 0; i < a->ncalls; i++) {
            struct ucall *u = &a->calls[i];
            EXPECT(atomic_load(&u->completions) == 1, "%s: thread %d call %d completed %d times", name, t, i,
                   atomic_load(&u->completions));
            EXPECT(atomic_load(&u->ok) == 1, "%s: thread %d call %d (%zu bytes) failed or differed", name, t, i,
                   u->len);
            calls_ok += atomic_load(&u->ok) == 1;
            chunked += u->len > CHUNK;
            free(u->buf);
        }
    }
    int srv_end_now = atomic_load(&srv_ended) - srv_ended_before;
    EXPECT(srv_end_now == accepted, "%s: the server accepted %d streams and ended %d", name, accepted, srv_end_now);
    for (int i = srv_before; i < srv_before + accepted; i++) {
        EXPECT(atomic_load(&srv_streams[i].ends) == 1, "%s: server stream %d ended %d times", name, i,
               atomic_load(&srv_streams[i].ends));
    }
    printf("%s: %d streams (%d ended well, %d cancelled of %d cancels sent), %d consumes, %.1f MiB in, %.1f MiB "
           "sent, %d empty messages; server: %d accepted, %d ended (%d well, %d cancelled); %d unary calls ok (%d "
           "chunked); %.1f s\n",
           name, THREADS * njobs, ok, canceled, cancels, consumes, (double)in / (1 << 20), (double)out / (1 << 20),
           empty, accepted, srv_end_now, atomic_load(&srv_ok) - srv_ok_before,
           atomic_load(&srv_canceled) - srv_canceled_before, calls_ok, chunked, now_s() - t0);
    EXPECT(ok + canceled == THREADS * njobs, "%s: %d ok and %d cancelled of %d", name, ok, canceled, THREADS * njobs);
    for (int t = 0; t < THREADS; t++) {
        free(apps[t].jobs);
        free(apps[t].calls);
    }
}

/*
 * plain: the same in plaintext, both ends sending zero-copy (their stream
 * data lent to the kernel until its notification, conn_gather.c).
 */
static void run(int plain, int njobs, struct clink_tls_ctx *tls)
{
    printf("-- %s\n", plain ? "plaintext, zero-copy sends" : "TLS");
    struct clink_node_opts so = {.workers = 2,
                                 .tls = plain ? NULL : tls,
                                 .allow_plaintext = plain,
                                 .zerocopy = plain ? CLINK_ZEROCOPY_ON : CLINK_ZEROCOPY_DEFAULT};
    struct clink_node *srv = ts_node_with(&so, reg);
    /* Small windows on the client: the server's streams run out of credit and wait for the consumers. */
    struct clink_node_opts co = {.workers = 2,
                                 .tls = plain ? NULL : tls,
                                 .allow_plaintext = plain,
                                 .zerocopy = so.zerocopy,
                                 .handshake_timeout_ms = ts_ms(5000),
                                 .stream_window = 256 * 1024,
                                 .conn_window = 1024 * 1024,
                                 .max_message = 512 * 1024};
    struct clink_node *cli = NULL;
    TS_REQUIRE(clink_node_new(&co, &cli) == 0, "client node");
    TS_REQUIRE(clink_node_start(cli) == 0, "client start");
    struct clink_connect_opts o = {.host = "127.0.0.1",
                                   .port = clink_node_port(srv),
                                   .expected_name = "localhost",
                                   .mode = plain ? CLINK_MODE_PLAIN : CLINK_MODE_TLS};
    struct clink_conn *conns[NCONN];
    for (int i = 0; i < NCONN; i++) {
        char err[256];
        TS_REQUIRE(clink_connect_sync(cli, &o, &conns[i], err, sizeof(err)) == 0, "connect: %s", err);
    }

    phase("one connection", conns, 1, njobs, 1);
    phase("four connections", conns, NCONN, njobs, 2);

    struct clink_node_stats cs, ss;
    clink_node_get_stats(cli, &cs);
    clink_node_get_stats(srv, &ss);
    printf("client: %llu streams opened, %llu ok, %llu failed; %llu chunks out, %llu in; %llu flow violations\n",
           (unsigned long long)cs.streams_opened, (unsigned long long)cs.streams_ok,
           (unsigned long long)cs.streams_failed, (unsigned long long)cs.chunks_out, (unsigned long long)cs.chunks_in,
           (unsigned long long)cs.flow_violations);
    printf("server: %llu streams accepted, %llu ok, %llu failed; %llu frames of ended streams dropped; %llu flow "
           "violations\n",
           (unsigned long long)ss.streams_accepted, (unsigned long long)ss.streams_ok,
           (unsigned long long)ss.streams_failed, (unsigned long long)ss.stream_frames_refused,
           (unsigned long long)ss.flow_violations);
    EXPECT(atomic_load(&srv_other) == 0, "%d server streams ended otherwise than well or cancelled",
           atomic_load(&srv_other));
    EXPECT(cs.flow_violations == 0 && ss.flow_violations == 0, "flow violations %llu and %llu",
           (unsigned long long)cs.flow_violations, (unsigned long long)ss.flow_violations);
    for (int i = 0; i < NCONN; i++) {
        struct clink_conn_status st;
        if (clink_conn_get_status(conns[i], &st) == 0) {
            EXPECT(st.open, "connection %d closed: %s", i, st.last_error_text);
        }
        clink_conn_close(conns[i]);
    }
    struct clink_features f;
    clink_node_features(srv, &f);
    if (plain) {
        EXPECT(ss.bytes_borrowed > 0 && (ss.zc_sends > 0 || !f.send_zc),
               "plaintext: %llu bytes lent, %llu zero-copy sends", (unsigned long long)ss.bytes_borrowed,
               (unsigned long long)ss.zc_sends);
    }
    clink_node_free(cli);
    clink_node_free(srv);
}

int main(void)
{
    const char *n = getenv("DRV_N");
    int njobs = n != NULL ? atoi(n) : 10;
    struct ts_pki pki;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    run(0, njobs, tls);
    run(1, njobs, tls);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
    int f = atomic_load(&failures);
    printf("%d passed, %d failed\n", f ? 0 : 1, f ? 1 : 0);
    return f ? 1 : 0;
}
