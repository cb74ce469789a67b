/*
 * clink-bench memory scenario: what an idle connection costs. Open N
 * connections to the first target, make one call on each (tickets arrive,
 * buffers are touched as in real use), let them go idle, and divide the
 * growth of resident memory by N: on this side (this process) and on the
 * server's (the first --measure-pid, which must be the first target's).
 * It runs before the other scenarios, while both processes are fresh: RSS
 * growth does not see heap memory freed earlier and reused. On this side
 * malloc_trim runs before both readings (RSS is then what the connections
 * hold, not what glibc caches from their handshakes), and the heap in use
 * (mallinfo2) is reported too. The leaf's RSS is read as it is.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "clink/methods.h"

#define IN_FLIGHT 64

struct opener {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight, ok, failed;
    struct clink_conn **conns;
    char err[256];
};

struct dial {
    struct opener *o;
    unsigned idx;
};

static void on_open(struct clink_conn *conn, int status, const char *reason, void *user)
{
    struct dial *d = user;
    struct opener *o = d->o;
    pthread_mutex_lock(&o->mu);
    if (status == 0) {
        o->conns[d->idx] = conn;
        o->ok++;
    } else {
        if (o->failed++ == 0) {
            snprintf(o->err, sizeof(o->err), "%s", reason ? reason : clink_strerror(status));
        }
    }
    o->inflight--;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

int run_memory(struct cfg *cfg, enum clink_conn_mode mode, enum clink_ktls_mode ktls, struct result *res)
{
    unsigned n = cfg->idle_conns;
    pid_t server = cfg->npids > 0 ? cfg->pids[0] : 0;
    struct opener o = {.conns = calloc(n, sizeof(struct clink_conn *))};
    struct dial *dials = calloc(n, sizeof(*dials));
    res->connections = n;
    res->concurrency = IN_FLIGHT;
    if (o.conns == NULL || dials == NULL) {
        free(o.conns);
        free(dials);
        snprintf(res->skipped, sizeof(res->skipped), "out of memory");
        return -1;
    }
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    usleep(200000);
    malloc_trim(0); /* what earlier lines freed goes back to the kernel: this end's RSS growth is this mode's */
    struct mallinfo2 m0 = mallinfo2();
    long c0 = rss_kib(0), s0 = server ? rss_kib(server) : -1;
    uint64_t t0 = now_ns();
    struct clink_connect_opts co = {.host = cfg->hosts[0],
                                    .port = cfg->ports[0],
                                    .expected_name = cfg->name,
                                    .mode = mode,
                                    .ktls = ktls,
                                    .user = mode == CLINK_MODE_PLAIN && cfg->plain_user ? cfg->plain_user : cfg->user};
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_lock(&o.mu);
        while (o.inflight >= IN_FLIGHT) {
            pthread_cond_wait(&o.cv, &o.mu);
        }
        int stop = o.failed > 0;
        if (!stop) {
            o.inflight++;
        }
        pthread_mutex_unlock(&o.mu);
        if (stop) {
            break;
        }
        dials[i] = (struct dial){.o = &o, .idx = i};
        if (clink_connect(cfg->node, &co, on_open, &dials[i]) < 0) {
            pthread_mutex_lock(&o.mu);
            o.inflight--;
            o.failed++;
            snprintf(o.err, sizeof(o.err), "clink_connect refused");
            pthread_mutex_unlock(&o.mu);
            break;
        }
        if (i % 256 == 0) {
            progress(cfg, "memory %s: %u of %u connections", mode == CLINK_MODE_PLAIN ? "plain" : "tls", i, n);
        }
    }
    pthread_mutex_lock(&o.mu);
    while (o.inflight > 0) {
        pthread_cond_wait(&o.cv, &o.mu);
    }
    pthread_mutex_unlock(&o.mu);
    res->secs = (double)(now_ns() - t0) / 1e9;
    /* One small call on each: the connection has been used, as a pooled one has. */
    uint8_t ping[64] = {0};
    for (unsigned i = 0; i < n; i++) {
        struct clink_msg m;
        if (o.conns[i] && clink_call_sync(o.conns[i], CLINK_TOOL_ECHO, ping, sizeof(ping), 10000, &m) == 0) {
            clink_msg_free(&m);
        } else if (o.conns[i]) {
            o.failed++;
            snprintf(o.err, sizeof(o.err), "a call on an idle connection failed");
        }
    }
    usleep(500000); /* idle: buffers of the last burst given back */
    /* What the idle connections hold, not what glibc keeps cached from their handshakes (this end only). */
    malloc_trim(0);
    struct mallinfo2 m1 = mallinfo2();
    long c1 = rss_kib(0), s1 = server ? rss_kib(server) : -1;
    res->issued = n;
    res->ok = o.ok;
    res->failed = n - o.ok;
    res->ops = (double)o.ok / res->secs;
    if (o.failed > 0 || o.ok < n) {
        snprintf(res->skipped, sizeof(res->skipped), "%u of %u connections opened: %s", o.ok, n, o.err);
    } else {
        res->kib_client = (double)(c1 - c0) / n;
        /* RSS misses memory freed earlier and reused now; the heap in use does not. */
        res->heap_kib_client = ((double)m1.uordblks - (double)m0.uordblks) / 1024 / n;
        res->kib_server = s0 >= 0 && s1 >= 0 ? (double)(s1 - s0) / n : 0;
        if (s0 >= 0 && s1 >= 0) {
            snprintf(res->note, sizeof(res->note),
                     "RSS per idle connection: %.1f KiB here (heap %.1f), %.1f KiB at the leaf", res->kib_client,
                     res->heap_kib_client, res->kib_server);
        } else {
            snprintf(res->note, sizeof(res->note), "RSS per idle connection: %.1f KiB here (leaf not measured)",
                     res->kib_client);
        }
    }
    struct clink_node_stats st0;
    clink_node_get_stats(cfg->node, &st0);
    for (unsigned i = 0; i < n; i++) {
        if (o.conns[i]) {
            clink_conn_close(o.conns[i]);
        }
    }
    /* Closing is asynchronous: wait until they are gone, so that the next measurement starts from a quiet heap. */
    struct clink_node_stats st;
    uint64_t end = now_ns() + 5000000000ull;
    do {
        usleep(10000);
        clink_node_get_stats(cfg->node, &st);
    } while (st.conns_open + o.ok > st0.conns_open && now_ns() < end);
    free(o.conns);
    free(dials);
    pthread_cond_destroy(&o.cv);
    pthread_mutex_destroy(&o.mu);
    return o.ok == n ? 0 : -1;
}
