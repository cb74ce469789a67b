/*
 * A worker: one thread, one io_uring, one inbox. The loop waits in io_uring
 * until a completion, a wake-up or the earliest deadline, then handles every
 * completion in the batch, the inbox, expired timers, and finally flushes
 * each connection that has something to send (one send per connection per
 * iteration, so many small frames share one syscall-free send).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "transport/conn_int.h"

_Thread_local struct clink_worker *clink__current_worker;

int clink_thread_is_worker(void)
{
    return clink__current_worker != NULL;
}

#define CQ_ENTRIES_FACTOR 8
#define SQ_ENTRIES        1024
#define ACCEPT_BACKOFF_NS (100ull * 1000000ull)
#define DRAIN_LINGER_NS   (500ull * 1000000ull) /* after the drain deadline, for close_notify to leave */

struct io_uring_sqe *clink__sqe(struct clink_worker *w)
{
    struct io_uring_sqe *sqe;
    /* SQ full: push what is queued to the kernel and take a fresh slot (retry through EINTR/EBUSY). */
    for (unsigned tries = 0; (sqe = io_uring_get_sqe(&w->ring)) == NULL; tries++) {
        int ret = io_uring_submit(&w->ring);
        if (ret < 0 && tries > 100000) {
            CLINK_LOG(&w->node->log, CLINK_LOG_ERROR, "transport", 0, "worker %u: cannot submit: %s", w->idx,
                      clink_strerror(ret));
            abort(); /* no way to continue without an SQE: every caller owns an operation it must start */
        }
        if (ret < 0) {
            sched_yield();
        }
    }
    return sqe;
}

static void *tag(void *p, enum clink__op op)
{
    return (void *)((uintptr_t)p | (uintptr_t)op);
}

static int ring_setup(struct clink_worker *w)
{
    struct io_uring_params p;
    /*
     * Prefer SINGLE_ISSUER|DEFER_TASKRUN (completion work runs only when this
     * thread enters the ring: no IPIs, better batching); older kernels refuse
     * with EINVAL, then COOP_TASKRUN, then nothing.
     */
    const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        memset(&p, 0, sizeof(p));
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = SQ_ENTRIES * CQ_ENTRIES_FACTOR;
        ret = io_uring_queue_init_params(SQ_ENTRIES, &w->ring, &p);
        if (ret == 0) {
            w->feat.single_issuer = (tries[i] & IORING_SETUP_SINGLE_ISSUER) != 0;
            w->feat.defer_taskrun = (tries[i] & IORING_SETUP_DEFER_TASKRUN) != 0;
            break;
        }
        if (ret != -EINVAL) {
            return ret;
        }
    }
    if (ret < 0) {
        return ret;
    }
    w->ring_fd = w->ring.ring_fd;
    w->feat.ext_arg = (p.features & IORING_FEAT_EXT_ARG) != 0;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&w->ring);
    if (probe != NULL) {
        w->feat.msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
        w->feat.send_zc = io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
        io_uring_free_probe(probe);
    }
    w->feat.ktls = w->node->ktls_ulp;
    w->zc_ok = w->feat.send_zc;
    w->zc_report = 1;
    if (!w->feat.ext_arg) {
        /* Our deadlines wait with EXT_ARG timeouts (5.11+); older kernels are not supported. */
        io_uring_queue_exit(&w->ring);
        return -CLINK_ENOTSUP;
    }
    return 0;
}

static void arm_eventfd(struct clink_worker *w)
{
    struct io_uring_sqe *sqe = clink__sqe(w);
    io_uring_prep_read(sqe, w->efd, &w->efd_val, sizeof(w->efd_val), 0);
    io_uring_sqe_set_data(sqe, tag(w, OP_EVENTFD));
}

static void arm_accept(struct clink_worker *w)
{
    if (w->listen_fd >= 0 && !w->accept_armed) {
        struct io_uring_sqe *sqe = clink__sqe(w);
        io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data(sqe, tag(w, OP_ACCEPT));
        w->accept_armed = 1;
    }
    if (w->https_fd >= 0 && !w->https_armed) {
        struct io_uring_sqe *sqe = clink__sqe(w);
        io_uring_prep_multishot_accept(sqe, w->https_fd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data(sqe, tag(w, OP_ACCEPT_HTTPS));
        w->https_armed = 1;
    }
}

/* ---- wake-ups and the inbox ---- */

static void wake(struct clink_worker *w)
{
    /* Only a sleeping worker needs waking, and only once until it wakes. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load(&w->sleeping) || atomic_exchange(&w->wake_pending, 1)) {
        return;
    }
    struct clink_worker *self = clink__current_worker;
    if (self != NULL && self != w && self->feat.msg_ring) {
        /* Worker to worker: a CQE on the target's ring instead of an eventfd write. */
        struct io_uring_sqe *sqe = clink__sqe(self);
        io_uring_prep_msg_ring(sqe, w->ring_fd, 0, (uint64_t)(uintptr_t)tag(w, OP_MSG_WAKE), 0);
        io_uring_sqe_set_data(sqe, tag(w, OP_MSG_SENT));
        /* Submit now: the target should not wait for the end of our loop pass. */
        if (io_uring_submit(&self->ring) >= 0) {
            return;
        }
    }
    uint64_t one = 1;
    CLINK_IGNORE(write(w->efd, &one, sizeof(one)) < 0); /* an eventfd write only fails on overflow: then it is awake */
}

/*
 * ck_ring_enqueue_commit_mpmc, with a yield: producers commit in ticket
 * order, and ck spins until the one before has committed. With more
 * posting threads than CPUs, a producer preempted between reserve and
 * commit made the others spin through their whole time slices (measured by
 * tests/driver_migration.c on 2 CPUs: about 2 messages per 20 ms while six
 * threads posted to one worker). Spin briefly, then give the CPU away.
 */
static void commit(ck_ring_t *ring, unsigned ticket)
{
    for (unsigned spins = 0; ck_pr_load_uint(&ring->p_tail) != ticket; spins++) {
        if (spins < 64) {
            ck_pr_stall();
        } else {
            sched_yield();
        }
    }
    ck_pr_fence_store();
    ck_pr_store_uint(&ring->p_tail, ticket + 1);
}

int clink__worker_post(struct clink_worker *w, void *msg)
{
    /* producers/exited: once the worker has exited, nothing enters its inbox unseen. */
    atomic_fetch_add(&w->producers, 1);
    if (atomic_load(&w->exited)) {
        atomic_fetch_sub(&w->producers, 1);
        return -CLINK_ESHUTDOWN;
    }
    /*
     * Reserve, write, commit (ck's multi-producer protocol, as in
     * ck_ring_enqueue_mpsc) so TSan can be told about the slot write before
     * the commit makes it visible: ck's inline atomics are invisible to TSan.
     */
    unsigned ticket;
    void **slot = ck_ring_enqueue_reserve_mpmc(&w->inbox, w->inbox_buf, &ticket);
    bool ok = slot != NULL;
    if (ok) {
        *slot = msg;
        CLINK_TSAN_RELEASE(slot);
        commit(&w->inbox, ticket);
        wake(w);
    }
    atomic_fetch_sub(&w->producers, 1);
    if (!ok) {
        STAT_ADD_SHARED(w, inbox_full, 1);
        return -CLINK_EAGAIN;
    }
    return 0;
}

static void sync_done(struct clink__msg_sync *m)
{
    pthread_mutex_lock(&m->mu);
    m->done = 1;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

int clink__worker_run_sync(struct clink_worker *w, void (*fn)(struct clink_worker *, void *), void *arg)
{
    if (clink__current_worker != NULL) {
        return -CLINK_EWOULDBLOCK; /* a worker waiting on a worker can deadlock: never block one */
    }
    struct clink__msg_sync m = {.hdr.kind = MSG_SYNC, .fn = fn, .arg = arg};
    pthread_mutex_init(&m.mu, NULL);
    pthread_cond_init(&m.cv, NULL);
    int ret = clink__worker_post(w, &m);
    if (ret == 0) {
        pthread_mutex_lock(&m.mu);
        while (!m.done) {
            pthread_cond_wait(&m.cv, &m.mu);
        }
        pthread_mutex_unlock(&m.mu);
    }
    pthread_cond_destroy(&m.cv);
    pthread_mutex_destroy(&m.mu);
    return ret;
}

static void begin_stop(struct clink_worker *w, uint32_t drain_ms)
{
    if (w->stopping) {
        return;
    }
    w->stopping = 1;
    clink__timers_del(&w->timers, &w->accept_timer);
    if (w->accept_armed) {
        struct io_uring_sqe *sqe = clink__sqe(w);
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)tag(w, OP_ACCEPT), 0);
        io_uring_sqe_set_data(sqe, tag(w, OP_CANCEL));
    }
    if (w->https_armed) {
        struct io_uring_sqe *sqe = clink__sqe(w);
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)tag(w, OP_ACCEPT_HTTPS), 0);
        io_uring_sqe_set_data(sqe, tag(w, OP_CANCEL));
    }
    for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
        clink__conn_begin_close(c, 0);
    }
    if (w->nconns > 0) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->drain_timer, clink__now_ns() + (uint64_t)drain_ms * 1000000ull));
    }
}

/* `live`: 0 during the final drain after the loop, when nothing may start. */
static void handle_msg(struct clink_worker *w, struct clink__msg *m, int live)
{
    if ((uintptr_t)m & CLINK_MSG_CALL_TAG) {
        /* A call travels as its own tagged pointer: no allocation per call. */
        struct clink_call *call = (struct clink_call *)((uintptr_t)m & ~(uintptr_t)CLINK_MSG_CALL_TAG);
        struct clink_conn *c = call->priv.conn;
        if (live) {
            CLINK_IGNORE(clink__conn_start_call(c, call, 0) < 0); /* errors went to the callback */
        } else {
            clink__call_finish(w, call, -CLINK_ESHUTDOWN, NULL, 0);
        }
        clink__conn_put(c);
        return;
    }
    switch (m->kind) {
    case MSG_CANCEL: {
        struct clink__msg_cancel *cm = (struct clink__msg_cancel *)m;
        if (live) {
            clink__conn_cancel_call(cm->conn, cm->id, 0); /* from the loop: not inside anyone's cancel */
        }
        clink__conn_put(cm->conn);
        free(cm);
        break;
    }
    case MSG_CONNECT: {
        struct clink__msg_connect *cm = (struct clink__msg_connect *)m;
        if (live && !w->stopping) {
            clink__conn_dial(w, cm);
        } else {
            cm->cb(NULL, -CLINK_ESHUTDOWN, clink_strerror(-CLINK_ESHUTDOWN), cm->user);
        }
        OPENSSL_cleanse(cm->password, sizeof(cm->password));
        free(cm);
        break;
    }
    case MSG_ADOPT: {
        struct clink__msg_adopt *am = (struct clink__msg_adopt *)m;
        if (live && !w->stopping) {
            clink__conn_adopt(w, am->fd, am->https);
        } else {
            close(am->fd);
        }
        free(am);
        break;
    }
    case MSG_SYNC: {
        struct clink__msg_sync *sm = (struct clink__msg_sync *)m;
        sm->fn(w, sm->arg);
        sync_done(sm);
        break;
    }
    case MSG_STOP:
        begin_stop(w, ((struct clink__msg_stop *)m)->drain_ms);
        break;
    case MSG_CLOSE: {
        struct clink_conn *c = ((struct clink__msg_close *)m)->conn;
        if (live) {
            clink__conn_begin_close(c, 0);
        }
        clink__conn_put(c);
        break;
    }
    case MSG_RESPOND:
        clink__conn_respond_msg((struct clink__msg_respond *)m, live);
        break;
    case MSG_STREAM:
        clink__stream_msg(m, live);
        break;
    case MSG_RECHECK:
        atomic_store(&w->recheck_posted, 0); /* before the check: a later change posts again */
        if (live) {
            clink__conn_recheck_worker(w);
        }
        break;
    }
}

static void drain_inbox(struct clink_worker *w, int live)
{
    void *p;
    /* A non-zero size means the slot at c_head is committed: acquire it before ck reads it. */
    while (ck_ring_size(&w->inbox) > 0) {
        CLINK_TSAN_ACQUIRE(&w->inbox_buf[w->inbox.c_head & w->inbox.mask]);
        if (!ck_ring_dequeue_mpsc(&w->inbox, w->inbox_buf, &p)) {
            break;
        }
        handle_msg(w, p, live);
    }
}

/* ---- completions ---- */

static void on_accept(struct clink_worker *w, struct io_uring_cqe *cqe, int https)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        *(https ? &w->https_armed : &w->accept_armed) = 0;
        if (!w->stopping && cqe->res >= 0) {
            arm_accept(w);
        } else if (!w->stopping && cqe->res != -ECANCELED) {
            /* EMFILE and friends: retry later instead of spinning on the same failure. */
            CLINK_IGNORE(clink__timers_add(&w->timers, &w->accept_timer, clink__now_ns() + ACCEPT_BACKOFF_NS));
        }
    }
    if (cqe->res < 0) {
        /* Said once when it starts and once when it ends: a node out of fds retries 10 times a second. */
        if (cqe->res != -ECANCELED && w->accept_failing_since == 0) {
            w->accept_failing_since = clink__now_ns();
            w->accept_failures = 0;
            CLINK_LOG(&w->node->log, CLINK_LOG_WARN, "transport", 0,
                      "accept: %s; retrying every %llu ms (existing connections are not affected)",
                      clink_strerror(cqe->res), (unsigned long long)(ACCEPT_BACKOFF_NS / 1000000));
        }
        w->accept_failures++;
        return;
    }
    if (w->accept_failing_since != 0) {
        CLINK_LOG(&w->node->log, CLINK_LOG_WARN, "transport", 0, "accept works again after %llu ms (%u failures)",
                  (unsigned long long)((clink__now_ns() - w->accept_failing_since) / 1000000), w->accept_failures);
        w->accept_failing_since = 0;
    }
    int fd = cqe->res;
    if (w->stopping) {
        close(fd);
        return;
    }
    if (!https) {
        STAT_ADD(w, conns_accepted, 1);
    }
    struct clink_node *n = w->node;
    struct clink_worker *target = &n->workers[w->rr++ % n->nworkers];
    if (target == w) {
        clink__conn_adopt(w, fd, https);
        return;
    }
    struct clink__msg_adopt *m = malloc(sizeof(*m));
    if (m != NULL) {
        m->hdr.kind = MSG_ADOPT;
        m->fd = fd;
        m->https = https;
        if (clink__worker_post(target, m) == 0) {
            return;
        }
        free(m);
    }
    /* Refuse rather than queue without bound: the peer sees a reset and retries elsewhere. */
    CLINK_LOG(&n->log, CLINK_LOG_WARN, "transport", 0, "worker %u inbox full: refusing a connection", target->idx);
    close(fd);
}

static void handle_cqe(struct clink_worker *w, struct io_uring_cqe *cqe)
{
    uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
    int op = (int)(ud & CLINK_OP_MASK);
    void *ptr = (void *)(ud & ~(uintptr_t)CLINK_OP_MASK);

    switch (op) {
    case OP_RECV:
    case OP_SEND:
    case OP_CONNECT:
    case OP_SHUTDOWN:
    case OP_CLOSE:
    case OP_RECVMSG:
    case OP_SENDMSG:
        clink__conn_complete(w, ptr, op, cqe->res);
        break;
    case OP_SEND_ZC:
        clink__conn_zc_complete(w, ptr, cqe->res, cqe->flags);
        break;
    case OP_ACCEPT:
    case OP_ACCEPT_HTTPS:
        on_accept(w, cqe, op == OP_ACCEPT_HTTPS);
        break;
    case OP_EVENTFD:
        atomic_store(&w->wake_pending, 0);
        if (cqe->res >= 0 || cqe->res == -EINTR) {
            arm_eventfd(w);
        }
        drain_inbox(w, 1);
        break;
    case OP_MSG_WAKE:
        atomic_store(&w->wake_pending, 0);
        drain_inbox(w, 1);
        break;
    case OP_MSG_SENT:
        if (cqe->res < 0) {
            /* The target's CQ was full or the kernel refused: fall back to its eventfd. */
            struct clink_worker *target = ptr;
            uint64_t one = 1;
            CLINK_IGNORE(write(target->efd, &one, sizeof(one)) < 0);
        }
        break;
    case OP_CANCEL:
        break;
    default:
        break;
    }
}

static void fire_timers(struct clink_worker *w)
{
    uint64_t now = w->now_ns;
    struct clink__tlink due;
    clink__tlist_init(&due);
    clink__wheel_expire(&w->wheel, now, &due);
    struct clink__timer *t;
    /* A call's callback may end other due calls (its connection failing): they leave `due` and do not fire. */
    while ((t = clink__wheel_pop(&w->wheel, &due)) != NULL) {
        clink__conn_timer(w, t);
    }
    while ((t = clink__timers_min(&w->timers)) != NULL && t->deadline_ns <= now) {
        clink__timers_del(&w->timers, t);
        if (t->kind == TIMER_ACCEPT) {
            if (!w->stopping) {
                arm_accept(w); /* whichever listener is not armed */
            }
        } else if (t->kind == TIMER_HS_EVICT) {
            clink__conn_hs_evict(w);
        } else if (t->kind == TIMER_BUDGET) {
            clink__conn_budget_tick(w);
        } else if (t->kind == TIMER_IDLE) {
            clink__conn_idle_sweep(w);
        } else if (t->kind == TIMER_DRAIN) {
            /*
             * Stage 0: calls still in flight fail with ESHUTDOWN; connections
             * already closing get a short linger to send close_notify. Stage 1:
             * whatever is still there (a peer that stopped reading) is cut off.
             */
            for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
                clink__conn_begin_close(c, w->drain_stage == 0 ? -CLINK_ESHUTDOWN : -CLINK_ECLOSED);
            }
            if (w->drain_stage++ == 0 && w->nconns > 0) {
                CLINK_IGNORE(clink__timers_add(&w->timers, &w->drain_timer, now + DRAIN_LINGER_NS));
            }
        } else {
            clink__conn_timer(w, t);
        }
    }
}

static void flush_dirty(struct clink_worker *w)
{
    while (w->dirty != NULL) {
        struct clink_conn *c = w->dirty;
        w->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        clink__conn_flush(c);
    }
}

void clink__mark_dirty(struct clink_conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        c->dirty_next = c->w->dirty;
        c->w->dirty = c;
    }
}

static void loop(struct clink_worker *w)
{
    w->now_ns = clink__now_ns();
    while (!(w->stopping && w->nconns == 0 && !w->accept_armed && !w->https_armed && w->canceled == NULL)) {
        struct __kernel_timespec ts, *tsp = NULL;
        struct clink__timer *t = clink__timers_min(&w->timers);
        uint64_t wake = clink__wheel_next(&w->wheel);
        if (t != NULL && t->deadline_ns < wake) {
            wake = t->deadline_ns;
        }
        if (wake != UINT64_MAX) {
            /* From the turn's clock read: the wait ends no earlier than asked, never sooner. */
            uint64_t d = wake > w->now_ns ? wake - w->now_ns : 0;
            ts.tv_sec = (long long)(d / 1000000000ull);
            ts.tv_nsec = (long long)(d % 1000000000ull);
            tsp = &ts;
        }
        /* Announce sleep, then look once more: a producer either sees `sleeping` or we see its message. */
        atomic_store(&w->sleeping, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (ck_ring_size(&w->inbox) > 0 || w->canceled != NULL) {
            ts.tv_sec = 0;
            ts.tv_nsec = 0;
            tsp = &ts;
        }
        struct io_uring_cqe *cqe;
        int ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, tsp, NULL);
        atomic_store(&w->sleeping, 0);
        w->now_ns = clink__now_ns(); /* one read for every call this pass starts or ends (their latency) */
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            CLINK_LOG(&w->node->log, CLINK_LOG_ERROR, "transport", 0, "worker %u: io_uring wait: %s", w->idx,
                      clink_strerror(ret));
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe)
        {
            handle_cqe(w, cqe);
            seen++;
        }
        io_uring_cq_advance(&w->ring, seen);
        drain_inbox(w, 1);
        if (atomic_load_explicit(&w->node->tls_gen, memory_order_relaxed) != w->tls_gen) {
            clink__conn_recheck_worker(w); /* a reload whose MSG_RECHECK found the inbox full */
        }
        /*
         * The pass's second clock read, after every call it started (they
         * are stamped from it, so no deadline starts before its call did),
         * for what fires, the calls that end from here on, and how long to
         * sleep.
         */
        w->now_ns = clink__now_ns();
        clink__wheel_stamp(&w->wheel, w->now_ns);
        fire_timers(w);
        if (w->canceled != NULL) { /* a call test, not a call: the loop runs it on every pass */
            clink__worker_run_canceled(w);
        }
        if (w->streams_ended != NULL) {
            clink__streams_run_ended(w);
        }
        flush_dirty(w);
        if (clink__wheel_has_unstamped(&w->wheel)) {
            /* Calls started by what fired or flushed (after the read): stamp them before sleeping. */
            w->now_ns = clink__now_ns();
            clink__wheel_stamp(&w->wheel, w->now_ns);
        }
    }
}

static void *worker_main(void *arg)
{
    struct clink_worker *w = arg;
    struct clink_node *n = w->node;
    char name[16];
    snprintf(name, sizeof(name), "clink-w%u", w->idx);
    pthread_setname_np(pthread_self(), name);
    clink__current_worker = w;
    /*
     * Process-directed signals belong to the application's threads: a SIGTERM
     * handled here would set the application's flag on the wrong thread and
     * leave its main thread asleep.
     */
    sigset_t async;
    sigemptyset(&async);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGCHLD};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaddset(&async, sigs[i]);
    }
    pthread_sigmask(SIG_BLOCK, &async, NULL);

    /* The ring is created here: with SINGLE_ISSUER it belongs to the thread that made it. */
    int ret = ring_setup(w);
    if (ret < 0) {
        CLINK_LOG(&n->log, CLINK_LOG_ERROR, "transport", 0, "worker %u: io_uring setup: %s", w->idx,
                  clink_strerror(ret));
        n->start_err = ret; /* written before the barrier, read after it */
        atomic_store(&w->exited, 1);
        pthread_barrier_wait(&n->ready);
        return NULL;
    }
    clink__wheel_init(&w->wheel, clink__now_ns());
    arm_eventfd(w);
    arm_accept(w);
    pthread_barrier_wait(&n->ready);
    if (n->start_err < 0) {
        io_uring_queue_exit(&w->ring);
        atomic_store(&w->exited, 1);
        return NULL;
    }

    loop(w);
    /* Connections still waiting for a handshake slot were closed with the rest: drop the queue's references. */
    for (int p = 0; p < 2; p++) {
        while (w->adm[p].wait_head != NULL) {
            struct clink_conn *c = w->adm[p].wait_head;
            w->adm[p].wait_head = c->hs_next;
            clink__conn_put(c);
        }
    }

    /*
     * Final drain: wait out producers that passed the exited check, then
     * answer what they left. Callbacks run here wake other workers through
     * their eventfds: our ring takes no more submissions.
     */
    /* Streams that ended with the last connections: their on_end runs here if no pass was left to run it. */
    if (w->streams_ended != NULL) {
        clink__streams_run_ended(w);
    }
    clink__current_worker = NULL;
    atomic_store(&w->exited, 1);
    while (atomic_load(&w->producers) > 0) {
        sched_yield();
    }
    drain_inbox(w, 0);
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    if (w->https_fd >= 0) {
        close(w->https_fd);
        w->https_fd = -1;
    }
    io_uring_queue_exit(&w->ring);
    return NULL;
}

int clink__worker_start(struct clink_worker *w)
{
    return -pthread_create(&w->thread, NULL, worker_main, w);
}
