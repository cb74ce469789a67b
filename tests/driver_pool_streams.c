/*
 * Streams through pools (clink_pool_stream_open/_send/_cancel) and the
 * stream fan-out (clink_cluster_fanout_stream_start) from many application
 * threads at once, as a plain program so that it runs under ThreadSanitizer
 * (Criterion's runner aborts under TSan). Exit 0 on success, 1 on failure.
 *
 * Four leaves (2 workers each) serve a server-streaming method (PRODUCE:
 * `total` bytes of the leaf's own pattern in `msg`-sized messages) and a
 * bidirectional echo; a client node with 2 workers holds the cluster. Four
 * application threads keep three pool streams each going at once, on pools
 * picked in turn: server-streaming ones, and bidirectional ones whose
 * messages the thread sends (clink_pool_stream_send, -CLINK_EAGAIN while
 * the stream waits for a connection); a quarter are cancelled from the
 * application thread mid-stream (some at once, maybe while they wait). A
 * fan-out thread starts stream fan-outs to every leaf meanwhile.
 *
 * Phase 1 runs undisturbed: every stream ends 0 or, where cancelled,
 * -CLINK_ECANCELED. Phase 2 (up to 3 rounds, until a stream was resent):
 * mid-way, leaf 0 shuts down with a drain (its GOAWAY crosses REQUESTs: the
 * pool opens those streams again, -CLINK_EGOAWAY unseen) and restarts on
 * its port. Phase 3: leaf 3 is removed from the cluster mid-way. Streams of
 * the disturbed leaf may fail (or be refused at the open) with what a lost
 * peer gives; every other stream must end as in phase 1.
 *
 * A disturbed leaf's stream may also end -CLINK_ECLOSED part-way (seen
 * about once in ten runs, on a drained or a removed leaf): the side that
 * drained closes its socket (shutdown SHUT_RDWR, transport/conn_close.c)
 * while the other still sends it credit, and the other side's send fails
 * (EPIPE) before it has read the rest of the stream and the close_notify.
 * That is the transport's, not the pool's; such endings are printed.
 *
 * Checked: every byte of every stream and fan-out part against its leaf's
 * pattern (a resend that mixed attempts cannot pass), each on_end exactly
 * once (pool streams, fan-outs, the leaves' streams), every stream ending 0
 * with all its bytes, and each pool's counters: streams_ok equal to the
 * endings 0 the application saw through it, nothing open, waiting or in
 * flight at the end. DRV_N: streams per thread per phase (default 20).
 *
 * The lifetime rule ("valid until on_end returns"): a job's pool stream is
 * used from its application thread only under the job's mutex while its
 * on_end has not run; on_end takes the same mutex.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/pool.h"
#include "clink/stream.h"
#include "tests/support/support.h"

#define M_PRODUCE 40 /* server-streaming: open = {u64 total, u32 msg} */
#define M_ECHO    41 /* bidirectional: every message comes back; the server ends when the opener has */

#define LEAVES        4
#define THREADS       4
#define LIVE          3 /* streams each thread has going at once */
#define SLOTS         2 /* a bidirectional stream's messages in flight */
#define FANOUTS       1024
#define FAN_PER_PHASE 16 /* at a steady pace */
#define FAN_BURST     48 /* at most, 2 ms apart, while a leaf is disturbed */
#define SRV_MAX       8192
#define MAXMSG        12

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

/* What leaf `leaf` streams for a PRODUCE opening of (total, msg). */
static uint64_t produce_seed(int leaf, uint64_t total, uint32_t msg)
{
    return (uint64_t)(leaf + 1) * 1000003ull + total * 31 + msg;
}

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

/* The leaf a phase disturbs (-1: none); its streams may fail. Read by the checks after the phase. */
static int disturbed = -1;
/* The fan-out thread stops; it bursts (a leaf is being disturbed); pool streams checked in this phase. */
static atomic_int fan_stop, storm, jobs_done;

/* ---- leaves (their workers) ---- */

#define INFLIGHT 4

/* One per stream a leaf accepted, never reused or freed: its ends are counted there. */
struct srv_stream {
    struct clink_stream *s;
    int leaf;
    uint64_t total, sent, seed;
    uint32_t msg;
    uint8_t *buf[INFLIGHT];
    struct iovec iov[INFLIGHT];
    int busy[INFLIGHT];
    int done;
    int status;
    atomic_int ends;
};
static struct srv_stream srv_streams[SRV_MAX];
static atomic_int srv_next, srv_ended;

static struct srv_stream *srv_new(int leaf)
{
    int i = atomic_fetch_add(&srv_next, 1);
    TS_REQUIRE(i < SRV_MAX, "more than %d server streams", SRV_MAX);
    srv_streams[i].leaf = leaf;
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
    p->status = status;
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
            p->done = 1; /* the stream ended: on_end follows */
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
    struct srv_stream *p = srv_new((int)(intptr_t)user);
    TS_REQUIRE(len == 12, "PRODUCE opening of %zu bytes", len);
    memcpy(&p->total, data, 8);
    memcpy(&p->msg, data + 8, 4);
    p->s = s;
    p->seed = produce_seed(p->leaf, p->total, p->msg);
    for (int k = 0; k < INFLIGHT; k++) {
        p->buf[k] = malloc(p->msg);
    }
    struct clink_stream_cbs cbs = {.on_sent = prod_sent, .on_end = srv_end};
    TS_REQUIRE(clink_stream_accept(s, &cbs, 0, p) == 0, "accept");
    produce_more(p);
}

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
    (void)data, (void)len;
    struct srv_stream *p = srv_new((int)(intptr_t)user);
    p->s = s;
    struct clink_stream_cbs cbs = {
        .on_msg = echo_msg, .on_peer_end = echo_peer_end, .on_sent = echo_sent, .on_end = srv_end};
    TS_REQUIRE(clink_stream_accept(s, &cbs, 0, p) == 0, "accept");
}

static struct clink_tls_ctx *tls;
static struct clink_node *leaves[LEAVES];
static uint16_t ports[LEAVES];

static void leaf_start(int i, uint16_t port)
{
    struct clink_node_opts o = {.workers = 2,
                                .tls = tls,
                                .handshake_timeout_ms = ts_ms(5000),
                                .log = getenv("DRV_LOG") ? clink_log_stderr : NULL,
                                .log_level = CLINK_LOG_INFO};
    TS_REQUIRE(clink_node_new(&o, &leaves[i]) == 0, "leaf %d", i);
    TS_REQUIRE(clink_node_register_stream(leaves[i], M_PRODUCE, on_produce, (void *)(intptr_t)i) == 0, "register");
    TS_REQUIRE(clink_node_register_stream(leaves[i], M_ECHO, on_echo, (void *)(intptr_t)i) == 0, "register");
    TS_REQUIRE(clink_node_listen(leaves[i], "127.0.0.1", port) == 0, "listen leaf %d on %u", i, port);
    TS_REQUIRE(clink_node_start(leaves[i]) == 0, "start leaf %d", i);
    ports[i] = clink_node_port(leaves[i]);
}

/* ---- the client's pool streams ---- */

static struct clink_cluster *cl;
static struct clink_pool *pools[LEAVES];
/* Endings 0 the application saw through each pool (jobs and fan-out parts): its streams_ok must match. */
static atomic_int app_ok[LEAVES];

enum { K_PRODUCE, K_BIDI };
enum { J_NEW, J_OPEN, J_DONE };

struct job {
    int kind, leaf, state, idx;
    uint64_t seed;
    pthread_mutex_t mu;
    struct clink_pool_stream *ps; /* under mu, and only while !ended */
    int ended;                    /* under mu: on_end has run */
    int status, refused;          /* refused: the open returned this, no callback */
    int null_stream;              /* on_end had no stream: it never got a connection */
    atomic_int ends;
    _Atomic uint64_t got; /* on the worker; read after on_end through mu */
    uint64_t msgs;
    int bad, peer_end, empty;
    uint64_t total;
    uint32_t msg;
    /* BIDI: messages sent from the application thread */
    int nmsg, next;
    uint32_t sizes[MAXMSG];
    uint64_t sent_off;
    uint8_t *sbuf[SLOTS];
    struct iovec siov[SLOTS];
    atomic_int sbusy[SLOTS];
    atomic_int sent_ok, sent_failed;
    /* cancel: at once (cancel_now), or PRODUCE once `got` reaches cancel_at, BIDI once `next` does */
    int cancel_now;
    uint64_t cancel_at;
    int cancel_sent;
};

static void j_msg(struct clink_stream *s, const uint8_t *data, size_t len, void *user)
{
    (void)s;
    struct job *j = user;
    uint64_t got = atomic_load_explicit(&j->got, memory_order_relaxed);
    if (len == 0) {
        j->empty++;
        return;
    }
    if (!ts_check(data, len, j->seed, got)) {
        j->bad = 1;
    }
    j->msgs++;
    atomic_store(&j->got, got + len);
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
    (void)msg, (void)len;
    struct job *j = user;
    atomic_fetch_add(&j->ends, 1);
    if (status == 0) {
        atomic_fetch_add(&app_ok[j->leaf], 1);
    }
    pthread_mutex_lock(&j->mu);
    j->status = status;
    j->null_stream = s == NULL;
    j->ended = 1;
    pthread_mutex_unlock(&j->mu);
}

struct app {
    int id;
    struct job *jobs;
    int njobs;
    uint64_t rng;
    int ok, canceled, failed, refused, cancels_sent, waited, sends_again, goaway_unsent;
    uint64_t bytes_in, bytes_out;
};

static void job_setup(struct app *a, struct job *j, int idx)
{
    uint64_t *st = &a->rng;
    j->idx = idx;
    j->leaf = (a->id + idx) % LEAVES;
    j->kind = rnd(st) % 2 ? K_BIDI : K_PRODUCE;
    pthread_mutex_init(&j->mu, NULL);
    if (j->kind == K_PRODUCE) {
        static const uint32_t msgs[] = {1000, 16368, 16369, 40000};
        j->msg = msgs[rnd(st) % 4];
        j->total = 16 * 1024 + rnd(st) % (192 * 1024);
        j->seed = produce_seed(j->leaf, j->total, j->msg);
    } else {
        j->seed = ((uint64_t)a->id << 32) ^ ((uint64_t)idx << 16) ^ rnd(st);
        j->nmsg = 2 + (int)(rnd(st) % (MAXMSG - 1));
        for (int i = 0; i < j->nmsg; i++) {
            j->sizes[i] = rnd(st) % 4 == 0 ? 16369 + rnd(st) % 20000 : 1 + rnd(st) % 3000;
            j->total += j->sizes[i];
        }
        for (int k = 0; k < SLOTS; k++) {
            j->sbuf[k] = malloc(40000);
        }
    }
    uint32_t r = rnd(st) % 8;
    if (r == 0) {
        j->cancel_now = 1;
    } else if (r <= 2) {
        j->cancel_at = j->kind == K_PRODUCE ? 1 + rnd(st) % j->total : 1 + rnd(st) % (uint64_t)(j->nmsg - 1);
    }
}

static int job_cancel(struct app *a, struct job *j)
{
    int ret = clink_pool_stream_cancel(j->ps);
    if (ret == -CLINK_EAGAIN) {
        return 0;
    }
    EXPECT(ret == 0, "cancel: %s", clink_strerror(ret));
    j->cancel_sent = 1;
    a->cancels_sent++;
    return 1;
}

static void job_open(struct app *a, struct job *j)
{
    uint8_t open[12];
    struct iovec iov = {.iov_base = open, .iov_len = sizeof(open)};
    struct clink_stream_open_opts o = {
        .timeout_ms = ts_ms(30000),
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
    int ret = clink_pool_stream_open(pools[j->leaf], &o, &j->ps);
    if (ret == 0 && j->cancel_now) {
        job_cancel(a, j);
    }
    pthread_mutex_unlock(&j->mu);
    if (ret < 0) {
        /* Only a disturbed leaf may refuse: its peer is down or removed. */
        EXPECT(j->leaf == disturbed && ret == -CLINK_EUNAVAIL, "thread %d stream %d to leaf %d: open: %s", a->id,
               j->idx, j->leaf, clink_strerror(ret));
        j->refused = ret;
        j->state = J_DONE;
        return;
    }
    j->state = J_OPEN;
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
    if (j->kind == K_BIDI && j->next < j->nmsg && !j->cancel_sent) {
        for (int k = 0; k < SLOTS && j->next < j->nmsg; k++) {
            if (atomic_load(&j->sbusy[k])) {
                continue;
            }
            uint32_t n = j->sizes[j->next];
            ts_fill(j->sbuf[k], n, j->seed, j->sent_off);
            j->siov[k] = (struct iovec){.iov_base = j->sbuf[k], .iov_len = n};
            atomic_store(&j->sbusy[k], 1);
            int ret = clink_pool_stream_send(j->ps, &j->siov[k], 1, j->next == j->nmsg - 1, (void *)(intptr_t)k);
            if (ret == -CLINK_EAGAIN) {
                a->sends_again++; /* waiting for a connection, or the worker's inbox is full */
                atomic_store(&j->sbusy[k], 0);
                break;
            }
            if (ret < 0) {
                /* The stream ended meanwhile (its on_end is on its way): only a disturbed leaf's may. */
                EXPECT(j->leaf == disturbed && ret == -CLINK_ECLOSED, "thread %d stream %d to leaf %d: send: %s", a->id,
                       j->idx, j->leaf, clink_strerror(ret));
                atomic_store(&j->sbusy[k], 0);
                j->next = j->nmsg;
                break;
            }
            j->sent_off += n;
            j->next++;
            did = 1;
        }
    }
    uint64_t progress = j->kind == K_PRODUCE ? atomic_load(&j->got) : (uint64_t)j->next;
    if (j->cancel_at > 0 && !j->cancel_sent && progress >= j->cancel_at) {
        did |= job_cancel(a, j);
    }
    pthread_mutex_unlock(&j->mu);
    return did;
}

/* The stream is over (on_end has run; mu orders what its callbacks wrote before it). */
static void job_check(struct app *a, struct job *j)
{
    const char *kind = j->kind == K_PRODUCE ? "produce" : "bidi";
    if (j->refused) {
        a->refused++;
        goto out;
    }
    pthread_mutex_lock(&j->mu);
    int status = j->status;
    pthread_mutex_unlock(&j->mu);
    uint64_t got = atomic_load(&j->got);
    EXPECT(atomic_load(&j->ends) == 1, "thread %d %s stream %d ended %d times", a->id, kind, j->idx,
           atomic_load(&j->ends));
    EXPECT(j->bad == 0, "thread %d %s stream %d (leaf %d): a byte differed", a->id, kind, j->idx, j->leaf);
    EXPECT(got <= j->total, "thread %d %s stream %d: %llu bytes of %llu", a->id, kind, j->idx, (unsigned long long)got,
           (unsigned long long)j->total);
    EXPECT(j->peer_end <= 1 && j->empty == 0, "thread %d %s stream %d: %d peer ends, %d empty messages", a->id, kind,
           j->idx, j->peer_end, j->empty);
    a->bytes_in += got;
    a->bytes_out += j->kind == K_BIDI ? j->sent_off : 0;
    a->waited += j->null_stream;
    if (status == 0) {
        a->ok++;
        EXPECT(got == j->total && j->peer_end == 1, "thread %d %s stream %d ended well with %llu bytes of %llu", a->id,
               kind, j->idx, (unsigned long long)got, (unsigned long long)j->total);
        if (j->kind == K_PRODUCE) {
            EXPECT(j->msgs == (j->total + j->msg - 1) / j->msg, "thread %d produce stream %d: %llu messages", a->id,
                   j->idx, (unsigned long long)j->msgs);
        } else {
            EXPECT(j->msgs == (uint64_t)j->nmsg && atomic_load(&j->sent_ok) == j->nmsg,
                   "thread %d bidi stream %d: %llu messages back, %d sent, of %d", a->id, j->idx,
                   (unsigned long long)j->msgs, atomic_load(&j->sent_ok), j->nmsg);
        }
    } else if (status == -CLINK_ECANCELED && j->cancel_sent) {
        a->canceled++;
    } else {
        /* A disturbed leaf's stream: the errors of a peer going away (never one the pool should have hidden). */
        a->failed++;
        printf("  thread %d %s stream %d to leaf %d ended %s after %llu bytes\n", a->id, kind, j->idx, j->leaf,
               clink_strerror(status), (unsigned long long)got);
        EXPECT(j->leaf == disturbed &&
                   (status == -CLINK_EGOAWAY || status == -CLINK_EUNAVAIL || status == -CLINK_ECLOSED ||
                    status == -CLINK_ESHUTDOWN || status == -CLINK_ETIMEDOUT),
               "thread %d %s stream %d to leaf %d: %s (cancel %s)", a->id, kind, j->idx, j->leaf,
               clink_strerror(status), j->cancel_sent ? "sent" : "not sent");
        /* Legitimate only once its 3 resends all met a going-away connection of the same leaf. */
        a->goaway_unsent += status == -CLINK_EGOAWAY && j->kind == K_PRODUCE && got == 0;
    }
out:
    for (int k = 0; k < SLOTS; k++) {
        free(j->sbuf[k]);
        j->sbuf[k] = NULL;
    }
    pthread_mutex_destroy(&j->mu);
}

static void *app_thread(void *p)
{
    struct app *a = p;
    struct job *live[LIVE] = {0};
    int opened = 0, done = 0;
    double deadline = now_s() + ts_ms(60000) / 1000.0;
    while (done < a->njobs) {
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
                job_open(a, j);
                did = 1;
            }
            if (j->state == J_OPEN) {
                did |= job_step(a, j);
            }
            if (j->state == J_DONE) {
                job_check(a, j);
                atomic_fetch_add(&jobs_done, 1);
                live[k] = NULL;
                done++;
                did = 1;
            }
        }
        if (!did) {
            usleep(200);
        }
        if (now_s() > deadline) {
            EXPECT(0, "thread %d: %d of %d streams done after 60 s", a->id, done, a->njobs);
            break; /* leaks the rest: the failure is reported */
        }
    }
    return NULL;
}

static void wait_count(atomic_int *v, int want, unsigned ms)
{
    for (unsigned i = 0; i < ms && atomic_load(v) < want; i++) {
        usleep(1000);
    }
}

/* ---- stream fan-outs ---- */

struct fan {
    uint64_t total;
    uint32_t msg;
    _Atomic uint64_t got[LEAVES];
    atomic_int bad, unknown;
    atomic_int ends;
    int status, n, leaf_of[LEAVES], res_status[LEAVES];
    size_t failed;
};
static struct fan fans[FANOUTS];
static atomic_int nfans, fans_ended;

static int leaf_of(const char *peer)
{
    int i = -1;
    return sscanf(peer, "leaf%d", &i) == 1 && i >= 0 && i < LEAVES ? i : -1;
}

static void fan_msg(size_t idx, const char *peer, const uint8_t *data, size_t len, void *user)
{
    (void)idx;
    struct fan *f = user;
    int leaf = leaf_of(peer);
    if (leaf < 0) {
        atomic_fetch_add(&f->unknown, 1);
        return;
    }
    /* One stream per peer, its messages in order on one worker: got[leaf] has one writer at a time. */
    uint64_t got = atomic_load(&f->got[leaf]);
    if (len == 0 || !ts_check(data, len, produce_seed(leaf, f->total, f->msg), got)) {
        atomic_fetch_add(&f->bad, 1);
    }
    atomic_store(&f->got[leaf], got + len);
}

static void fan_end(int status, size_t failed, const struct clink_fanout_result *results, size_t n, void *user)
{
    struct fan *f = user;
    f->status = status;
    f->failed = failed;
    f->n = (int)n;
    for (size_t i = 0; i < n && i < LEAVES; i++) {
        f->leaf_of[i] = leaf_of(results[i].peer);
        f->res_status[i] = results[i].status;
        if (results[i].status == 0 && f->leaf_of[i] >= 0) {
            atomic_fetch_add(&app_ok[f->leaf_of[i]], 1);
        }
    }
    atomic_fetch_add(&f->ends, 1);
    atomic_fetch_add(&fans_ended, 1);
}

/*
 * Fan-outs at a steady pace, FAN_PER_PHASE of them, and a burst every 2 ms
 * while `storm` is set (a leaf goes away meanwhile: REQUESTs cross its GOAWAY).
 */
static void *fan_thread(void *p)
{
    uint64_t rng = (uint64_t)(intptr_t)p;
    static const struct clink_fanout_stream_cbs cbs = {.on_msg = fan_msg, .on_end = fan_end};
    int steady = 0, bursts = 0;
    while (!atomic_load(&fan_stop)) {
        int i = atomic_load(&nfans), burst = atomic_load(&storm);
        if (i >= FANOUTS) {
            break;
        }
        if ((!burst && steady >= FAN_PER_PHASE) || (burst && bursts >= FAN_BURST)) {
            usleep(2000);
            continue;
        }
        steady += !burst;
        bursts += burst;
        struct fan *f = &fans[i];
        f->total = burst ? 1 + rnd(&rng) % (32 * 1024) : 8192 + rnd(&rng) % (128 * 1024); /* bursts: many, small */
        f->msg = rnd(&rng) % 2 ? 5000 : 16369;
        uint8_t open[12];
        memcpy(open, &f->total, 8);
        memcpy(open + 8, &f->msg, 4);
        atomic_store(&nfans, i + 1);
        int ret = clink_cluster_fanout_stream_start(cl, CLINK_ROLE_LEAF, NULL, M_PRODUCE, open, sizeof(open),
                                                    ts_ms(30000), &cbs, f);
        EXPECT(ret == 0, "fan-out %d: %s", i, clink_strerror(ret));
        if (ret < 0) {
            atomic_store(&f->ends, 1);
            atomic_fetch_add(&fans_ended, 1);
        }
        usleep(burst ? 2000 : 30000);
    }
    return NULL;
}

static void fan_check(int from, int to, int *ok, int *failed)
{
    for (int i = from; i < to; i++) {
        struct fan *f = &fans[i];
        EXPECT(atomic_load(&f->ends) == 1, "fan-out %d ended %d times", i, atomic_load(&f->ends));
        EXPECT(atomic_load(&f->bad) == 0 && atomic_load(&f->unknown) == 0, "fan-out %d: %d bad messages", i,
               atomic_load(&f->bad));
        int first_bad = -1;
        for (int k = 0; k < f->n && k < LEAVES; k++) {
            int leaf = f->leaf_of[k];
            EXPECT(leaf >= 0, "fan-out %d: result %d of an unknown peer", i, k);
            if (leaf < 0) {
                continue;
            }
            uint64_t got = atomic_load(&f->got[leaf]);
            if (f->res_status[k] == 0) {
                EXPECT(got == f->total, "fan-out %d: leaf %d ended well with %llu bytes of %llu", i, leaf,
                       (unsigned long long)got, (unsigned long long)f->total);
            } else {
                EXPECT(leaf == disturbed, "fan-out %d: leaf %d: %s", i, leaf, clink_strerror(f->res_status[k]));
                EXPECT(got <= f->total, "fan-out %d: leaf %d sent %llu bytes of %llu", i, leaf, (unsigned long long)got,
                       (unsigned long long)f->total);
                first_bad = first_bad < 0 ? k : first_bad;
                printf("  fan-out %d: leaf %d ended %s after %llu bytes\n", i, leaf, clink_strerror(f->res_status[k]),
                       (unsigned long long)got);
            }
        }
        EXPECT((f->status == 0) == (first_bad < 0), "fan-out %d: status %s but result %d failed", i,
               clink_strerror(f->status), first_bad);
        if (f->status != 0) {
            EXPECT(f->failed < (size_t)f->n && f->res_status[f->failed] == f->status,
                   "fan-out %d: failed index %zu of %d", i, f->failed, f->n);
        }
        *ok += f->status == 0;
        *failed += f->status != 0;
    }
}

/* ---- phases ---- */

static uint64_t resent_total(void)
{
    uint64_t r = 0;
    for (int i = 0; i < LEAVES; i++) {
        struct clink_pool_stats st;
        clink_pool_get_stats(pools[i], &st);
        r += st.streams_resent;
    }
    return r;
}

enum disturb { D_NONE, D_DRAIN, D_REMOVE };

/* Every pool of a peer still in the cluster has a connection (a restarted leaf's pool is back). */
static void wait_up(void)
{
    for (int i = 0; i < LEAVES; i++) {
        struct clink_pool_stats st;
        for (int k = 0; k < 2000; k++) {
            clink_pool_get_stats(pools[i], &st);
            if (st.conns_open > 0 && st.up) {
                break;
            }
            usleep(5000);
        }
        TS_REQUIRE(st.conns_open > 0 && st.up, "pool leaf%d not up", i);
    }
}

static void phase(const char *name, int njobs, uint64_t seed, enum disturb d)
{
    wait_up();
    double t0 = now_s();
    int fans_before = atomic_load(&nfans), srv_before = atomic_load(&srv_next);
    uint64_t resent_before = resent_total();
    disturbed = d == D_DRAIN ? 0 : d == D_REMOVE ? 3 : -1;
    pthread_t th[THREADS], fth;
    struct app apps[THREADS];
    for (int t = 0; t < THREADS; t++) {
        apps[t] = (struct app){.id = t,
                               .jobs = calloc((size_t)njobs, sizeof(struct job)),
                               .njobs = njobs,
                               .rng = seed * 1000 + (uint64_t)t};
        for (int i = 0; i < njobs; i++) {
            job_setup(&apps[t], &apps[t].jobs[i], i);
        }
    }
    atomic_store(&fan_stop, 0);
    atomic_store(&jobs_done, 0);
    pthread_create(&fth, NULL, fan_thread, (void *)(intptr_t)(seed * 77 + 1));
    for (int t = 0; t < THREADS; t++) {
        pthread_create(&th[t], NULL, app_thread, &apps[t]);
    }
    double td = 0;
    if (d != D_NONE) {
        wait_count(&jobs_done, THREADS * njobs / 3, ts_ms(30000)); /* mid-way: streams and fan-outs in flight */
        atomic_store(&storm, 1);
        usleep(20000);
        double t1 = now_s();
        if (d == D_DRAIN) {
            /* GOAWAY on every connection of leaf 0; streams in flight finish; then it comes back. */
            EXPECT(clink_node_shutdown(leaves[0], ts_ms(3000)) == 0, "shutdown");
            clink_node_free(leaves[0]);
            leaf_start(0, ports[0]);
        } else {
            EXPECT(clink_cluster_remove(cl, "leaf3") == 0, "remove");
        }
        td = now_s() - t1;
        usleep(20000);
        atomic_store(&storm, 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    atomic_store(&fan_stop, 1);
    pthread_join(fth, NULL);
    int fans_now = atomic_load(&nfans);
    wait_count(&fans_ended, fans_now, ts_ms(30000));
    usleep(50000); /* room for a second on_end, were there one */
    int ok = 0, canceled = 0, failed = 0, refused = 0, cancels = 0, waited = 0, again = 0, fok = 0, ffailed = 0;
    int goaway_unsent = 0;
    uint64_t in = 0, out = 0;
    for (int t = 0; t < THREADS; t++) {
        struct app *a = &apps[t];
        ok += a->ok;
        canceled += a->canceled;
        failed += a->failed;
        refused += a->refused;
        cancels += a->cancels_sent;
        waited += a->waited;
        again += a->sends_again;
        goaway_unsent += a->goaway_unsent;
        in += a->bytes_in;
        out += a->bytes_out;
        free(a->jobs);
    }
    fan_check(fans_before, fans_now, &fok, &ffailed);
    EXPECT(ok + canceled + failed + refused == THREADS * njobs, "%s: %d+%d+%d+%d of %d", name, ok, canceled, failed,
           refused, THREADS * njobs);
    printf("%s: %d pool streams (%d ok, %d cancelled of %d cancels, %d failed, %d refused at the open, %d ended "
           "without a connection, %d -CLINK_EGOAWAY with nothing received), %d sends told to wait, %.1f MiB in, %.1f "
           "MiB sent; %d fan-outs (%d ok, %d with a "
           "failed leaf); %d leaf streams; %llu resent; disturbance took %.2f s; %.1f s\n",
           name, THREADS * njobs, ok, canceled, cancels, failed, refused, waited, goaway_unsent, again,
           (double)in / (1 << 20), (double)out / (1 << 20), fans_now - fans_before, fok, ffailed,
           atomic_load(&srv_next) - srv_before, (unsigned long long)(resent_total() - resent_before), td, now_s() - t0);
}

/* Every pool's books once nothing is open: nothing open, waiting or in flight; its endings 0 as the application's. */
static void check_pools(void)
{
    for (int i = 0; i < LEAVES; i++) {
        struct clink_pool_stats st;
        clink_pool_get_stats(pools[i], &st);
        printf("pool leaf%d: %llu streams opened, %llu ok (application saw %d), %llu resent, %llu recycled; %u open, "
               "%u waiting, %u calls in flight; %llu handshakes, %llu reconnects\n",
               i, (unsigned long long)st.streams_opened, (unsigned long long)st.streams_ok, atomic_load(&app_ok[i]),
               (unsigned long long)st.streams_resent, (unsigned long long)st.streams_recycled, st.streams_open,
               st.streams_waiting, st.calls_in_flight, (unsigned long long)(st.handshakes_full + st.handshakes_resumed),
               (unsigned long long)st.reconnects);
        EXPECT(st.streams_open == 0 && st.streams_waiting == 0 && st.calls_in_flight == 0,
               "pool leaf%d: %u streams open, %u waiting, %u calls in flight after every on_end", i, st.streams_open,
               st.streams_waiting, st.calls_in_flight);
        EXPECT(st.streams_ok == (uint64_t)atomic_load(&app_ok[i]),
               "pool leaf%d: %llu streams ok, the application saw %d", i, (unsigned long long)st.streams_ok,
               atomic_load(&app_ok[i]));
        EXPECT(st.streams_recycled == 0, "pool leaf%d: %llu recycled", i, (unsigned long long)st.streams_recycled);
        EXPECT(st.streams_opened >= st.streams_ok, "pool leaf%d: opened %llu < ok %llu", i,
               (unsigned long long)st.streams_opened, (unsigned long long)st.streams_ok);
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *n = getenv("DRV_N");
    int njobs = n != NULL ? atoi(n) : 20;
    struct ts_pki pki;
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    for (int i = 0; i < LEAVES; i++) {
        leaf_start(i, 0);
    }
    struct clink_node_opts co = {.workers = 2,
                                 .tls = tls,
                                 .handshake_timeout_ms = ts_ms(5000),
                                 .stream_window = 256 * 1024,
                                 .conn_window = 1024 * 1024,
                                 .max_message = 128 * 1024,
                                 .log = getenv("DRV_LOG") ? clink_log_stderr : NULL,
                                 .log_level = CLINK_LOG_INFO};
    struct clink_node *agg = NULL;
    TS_REQUIRE(clink_node_new(&co, &agg) == 0, "client node");
    TS_REQUIRE(clink_node_start(agg) == 0, "client start");
    struct clink_cluster_opts clo = {.node = agg,
                                     .log = getenv("DRV_LOG") ? clink_log_stderr : NULL,
                                     .log_level = CLINK_LOG_INFO,
                                     .pool = {.min_conns = 1,
                                              .max_conns = 2,
                                              .max_calls_per_conn = 2, /* streams wait for room at times */
                                              .backoff_min_ms = 10,
                                              .backoff_max_ms = 50,
                                              .max_waiting = 100000,
                                              .recycle_grace_ms = ts_ms(5000)}};
    TS_REQUIRE(clink_cluster_new(&clo, &cl) == 0, "cluster");
    for (int i = 0; i < LEAVES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "leaf%d", i);
        struct clink_peer peer = {.name = name, .host = "127.0.0.1", .port = ports[i], .expected_name = "localhost"};
        TS_REQUIRE(clink_cluster_add(cl, &peer) == 0, "add %s", name);
        pools[i] = clink_cluster_pool(cl, name);
        TS_REQUIRE(pools[i] != NULL, "pool %s", name);
    }
    phase("steady", njobs, 1, D_NONE);
    uint64_t resent = 0;
    for (int round = 0; round < 3 && resent == 0; round++) {
        uint64_t before = resent_total();
        phase("leaf0 drained and back", njobs, 2 + (uint64_t)round, D_DRAIN);
        resent = resent_total() - before;
    }
    if (resent == 0) {
        printf("NOTE: no stream crossed leaf0's GOAWAY in 3 rounds (timing): the resend path did not run\n");
    }
    phase("leaf3 removed", njobs, 9, D_REMOVE);
    check_pools();

    for (int i = 0; i < LEAVES; i++) {
        clink_pool_release(pools[i]);
    }
    clink_cluster_free(cl);
    clink_node_free(agg);
    for (int i = 0; i < LEAVES; i++) {
        clink_node_free(leaves[i]);
    }
    /* Every stream a leaf accepted ended there exactly once (the freed ones included). */
    int accepted = atomic_load(&srv_next), bad_srv = 0;
    for (int i = 0; i < accepted; i++) {
        struct srv_stream *s = &srv_streams[i];
        EXPECT(atomic_load(&s->ends) == 1, "leaf %d stream %d ended %d times", s->leaf, i, atomic_load(&s->ends));
        bad_srv += s->status != 0 && s->status != -CLINK_ECANCELED;
    }
    printf("leaves: %d streams accepted, %d ended, %d otherwise than well or cancelled; %d resends seen\n", accepted,
           atomic_load(&srv_ended), bad_srv, (int)resent);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
    int f = atomic_load(&failures);
    printf("%s (%d failures)\n", f ? "FAILED" : "ok", f);
    return f ? 1 : 0;
}
