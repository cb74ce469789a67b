/*
 * A TLS echo whose calls are started from completion callbacks on the
 * workers, so that between the two getppid() markers the only I/O is
 * io_uring's. tests/strace_echo.sh runs it under strace -f and checks that no
 * send/recv/read/write syscall happened in that window.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/support.h"

#define CHAINS 16
#define CALLS  20000

struct chain {
    struct clink_call call;
    struct clink_conn *conn;
    struct iovec iov;
    uint8_t payload[512];
};

static atomic_int done, bad, finished_chains;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void next(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    struct chain *c = (struct chain *)call;
    if (status != 0 || len != sizeof(c->payload) || memcmp(resp, c->payload, len) != 0) {
        atomic_fetch_add(&bad, 1);
    }
    if (atomic_fetch_add(&done, 1) + CHAINS < CALLS && status == 0) {
        c->payload[0]++;
        if (clink_call_start(c->conn, &c->call) == 0) {
            return;
        }
        atomic_fetch_add(&bad, 1);
    }
    pthread_mutex_lock(&mu);
    atomic_fetch_add(&finished_chains, 1);
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

int main(void)
{
    struct ts_pki pki;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_node *srv = ts_node(tls, 2, 0, ts_register_echo);
    struct clink_node *cli = ts_client(tls, 2, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost"};
    struct clink_conn *conns[2];
    for (int i = 0; i < 2; i++) {
        TS_REQUIRE(clink_connect_sync(cli, &o, &conns[i], NULL, 0) == 0, "connect");
    }
    static struct chain chains[CHAINS];
    for (int i = 0; i < CHAINS; i++) {
        struct chain *c = &chains[i];
        memset(c->payload, i, sizeof(c->payload));
        c->conn = conns[i % 2];
        c->iov = (struct iovec){.iov_base = c->payload, .iov_len = sizeof(c->payload)};
        c->call =
            (struct clink_call){.method = TS_ECHO, .iov = &c->iov, .iovcnt = 1, .cb = next, .timeout_ms = ts_ms(30000)};
    }

    /* Kick off from this thread (an eventfd wake-up each), then mark the start of the data phase. */
    for (int i = 0; i < CHAINS; i++) {
        TS_REQUIRE(clink_call_start(chains[i].conn, &chains[i].call) == 0, "start");
    }
    getppid();
    pthread_mutex_lock(&mu);
    while (atomic_load(&finished_chains) < CHAINS) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    getppid();

    printf("echo_chain: %d calls, %d bad\n", atomic_load(&done), atomic_load(&bad));
    for (int i = 0; i < 2; i++) {
        clink_conn_close(conns[i]);
    }
    clink_node_free(cli);
    clink_node_free(srv);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
    return atomic_load(&bad) == 0 && atomic_load(&done) >= CALLS ? 0 : 1;
}
