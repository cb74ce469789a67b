/*
 * Calls that end without an answer: the peer dies, the deadline passes,
 * the caller cancels. Each completes exactly once, with its own status.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"
#include "transport/timer.h"

TestSuite(call_endings, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

Test(call_endings, peer_killed_mid_call_fails_the_call)
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct clink_node *srv = ts_node(tls, 1, 0, ts_register_hang);
        uint16_t port = clink_node_port(srv);
        CLINK_IGNORE(write(pfd[1], &port, sizeof(port)) < 0);
        while (atomic_load(&ts_hang_seen) == 0) {
            usleep(1000);
        }
        CLINK_IGNORE(write(pfd[1], "x", 1) < 0);
        pause();
        _exit(0);
    }
    uint16_t port;
    cr_assert_eq(read(pfd[0], &port, sizeof(port)), (ssize_t)sizeof(port));
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = port, .expected_name = "localhost"};
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call call = {.method = TS_HANG, .cb = ts_count_cb};
    cr_assert_eq(clink_call_start(c, &call), 0);
    char x;
    cr_assert_eq(read(pfd[0], &x, 1), 1);

    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int n = ts_wait_count(&ts_cb_count, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    int st = atomic_load(&ts_cb_status);
    cr_assert_eq(st, -CLINK_ECLOSED, "FIN or RST, one error: %s", clink_strerror(st));
    struct clink_call again = {.method = TS_ECHO, .cb = ts_count_cb};
    cr_assert_eq(clink_call_start(c, &again), -CLINK_ECLOSED);
    clink_conn_close(c);
    clink_node_free(cli);
}

Test(call_endings, deadline_expires)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_hang);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;

    uint64_t t0 = clink__now_ns();
    int ret = clink_call_sync(c, TS_HANG, "x", 1, 200, &r);
    uint64_t ms = (clink__now_ns() - t0) / 1000000;

    cr_assert_eq(ret, -CLINK_ETIMEDOUT);
    cr_assert_geq(ms, 200);
    cr_assert_lt(ms, ts_ms(2000));
    /* The connection is still good after a deadline. */
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "y", 1, ts_ms(5000), &r), 0);
    clink_msg_free(&r);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(call_endings, cancel_completes_call_once)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_hang);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call call = {.method = TS_HANG, .cb = ts_count_cb};
    cr_assert_eq(clink_call_start(c, &call), 0);
    cr_assert_eq(ts_wait_count(&ts_hang_seen, 1, ts_ms(3000)), 1);

    cr_assert_eq(clink_call_cancel(&call), 0);
    int n = ts_wait_count(&ts_cb_count, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    cr_assert_eq(atomic_load(&ts_cb_status), -CLINK_ECANCELED);
    usleep(50000);
    cr_assert_eq(atomic_load(&ts_cb_count), 1);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* Set around clink_call_cancel on the worker: the callback must not see it set. */
static atomic_int in_cancel, cb_inside_cancel, cancel_ret = 1;
static struct clink_call own_call;
static struct clink_conn *_Atomic own_conn;

static void own_call_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    if (atomic_load(&in_cancel)) {
        atomic_store(&cb_inside_cancel, 1);
    }
    ts_count_cb(call, status, resp, len);
}

static void start_and_cancel_on_worker(struct clink_conn *conn, int status, const char *reason, void *user)
{
    (void)reason;
    (void)user;
    atomic_store(&own_conn, conn);
    if (status != 0) {
        atomic_store(&cancel_ret, status);
        return;
    }
    own_call = (struct clink_call){.method = TS_HANG, .cb = own_call_cb};
    if (clink_call_start(conn, &own_call) != 0) {
        atomic_store(&cancel_ret, -CLINK_EINTERNAL);
        return;
    }
    atomic_store(&in_cancel, 1);
    atomic_store(&cancel_ret, clink_call_cancel(&own_call));
    atomic_store(&in_cancel, 0);
}

Test(call_endings, cancel_on_the_owning_worker_completes_from_the_loop)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_hang);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");

    cr_assert_eq(clink_connect(cli, &o, start_and_cancel_on_worker, NULL), 0);
    int n = ts_wait_count(&ts_cb_count, 1, ts_ms(3000));

    cr_assert_eq(atomic_load(&cancel_ret), 0, "%s", clink_strerror(atomic_load(&cancel_ret)));
    cr_assert_eq(n, 1);
    cr_assert_eq(atomic_load(&ts_cb_status), -CLINK_ECANCELED);
    cr_assert_eq(atomic_load(&cb_inside_cancel), 0, "the callback ran inside clink_call_cancel");
    usleep(50000);
    cr_assert_eq(atomic_load(&ts_cb_count), 1, "once");
    clink_conn_close(atomic_load(&own_conn));
    clink_node_free(cli);
    clink_node_free(srv);
}

/*
 * A one-connection TCP relay in front of a node: forwards both ways until
 * told to reset, then closes the client's side with SO_LINGER 0 (an RST).
 */
struct relay {
    int lfd;
    uint16_t port, target;
    atomic_int reset;
    pthread_t th;
};

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    int a = accept(r->lfd, NULL, NULL);
    int b = ts_tcp_connect(r->target);
    char buf[16384];
    while (a >= 0 && b >= 0 && !atomic_load(&r->reset)) {
        struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        if (poll(p, 2, 10) <= 0) {
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = read(p[i].fd, buf, sizeof(buf));
                if (n <= 0 || write(p[1 - i].fd, buf, (size_t)n) != n) {
                    goto out;
                }
            }
        }
    }
out:
    if (a >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        CLINK_IGNORE(setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0);
        close(a);
    }
    if (b >= 0) {
        close(b);
    }
    return NULL;
}

static void relay_start(struct relay *r, uint16_t target)
{
    r->target = target;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(r->lfd, 1), 0);
    socklen_t sl = sizeof(sa);
    cr_assert_eq(getsockname(r->lfd, (struct sockaddr *)&sa, &sl), 0);
    r->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&r->th, NULL, relay_main, r), 0);
}

Test(call_endings, peer_reset_fails_calls_with_eclosed_and_keeps_the_errno_in_the_text)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_hang);
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct relay r = {.lfd = -1};
    relay_start(&r, clink_node_port(srv));
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = r.port, .expected_name = "localhost"};
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_call call = {.method = TS_HANG, .cb = ts_count_cb};
    cr_assert_eq(clink_call_start(c, &call), 0);
    cr_assert_eq(ts_wait_count(&ts_hang_seen, 1, ts_ms(3000)), 1);

    atomic_store(&r.reset, 1);
    pthread_join(r.th, NULL);
    int n = ts_wait_count(&ts_cb_count, 1, ts_ms(3000));

    cr_assert_eq(n, 1);
    int st = atomic_load(&ts_cb_status);
    cr_assert_eq(st, -CLINK_ECLOSED, "a reset is a lost connection: %s", clink_strerror(st));
    cr_assert_eq(clink_err_kind_of(st), CLINK_KIND_CLOSED);
    struct clink_conn_status cs;
    cr_assert_eq(clink_conn_get_status(c, &cs), 0);
    cr_assert_eq(cs.last_error, -CLINK_ECLOSED);
    cr_assert_not_null(strstr(cs.last_error_text, strerror(ECONNRESET)), "errno in the text: %s", cs.last_error_text);
    close(r.lfd);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}
