/*
 * Session limits over real connections (issue 17, item 4): max_connections
 * with the administrator's reserved slot, max_user_connections, node links
 * (certificate logins, pools) outside max_connections with their own
 * budget, wait_timeout closing idle client sessions but neither node links
 * nor pools nor a session with a call in flight, and TCP keepalive on both
 * ends' sockets. The server runs two workers: the counts are node-wide.
 */
#include <criterion/criterion.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "clink/mysql.h"
#include "clink/pool.h"
#include "clink/transport.h"
#include "tests/support/support.h"
#include "transport/conn_int.h"
#include "transport/mysql_proto.h"
#include "transport/opening.h"

#define SLOW 3 /* a method whose answer the test gives later */

static struct ts_pki pki;
static struct clink_tls_ctx *tls;
static struct clink_accounts *acc;

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    /*
     * app and other log in with passwords (client sessions), admin holds grant ALL, root is a node's certificate.
     * native_password: the MySQL clients here log in in plaintext, with the scramble answer.
     */
    struct clink_account_spec s[] = {{.user = "app", .password = "apppw", .native_password = "ON"},
                                     {.user = "other", .password = "otherpw", .native_password = "ON"},
                                     {.user = "admin", .password = "adminpw", .grant = "ALL", .native_password = "ON"},
                                     {.user = "root", .require = "X509"}};
    char err[256] = "";
    cr_assert_eq(clink_accounts_new(NULL, &acc), 0);
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        cr_assert_eq(clink_accounts_add(acc, &s[i], err, sizeof(err)), 0, "%s", err);
    }
}

static void teardown(void)
{
    clink_accounts_free(acc);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 90);

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static _Atomic(struct clink_req *) held; /* the SLOW request, answered by the test */

static void slow(struct clink_req *req, void *user)
{
    (void)user;
    atomic_store(&held, req);
}

static void reg(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, SLOW, slow, NULL), 0);
}

/* The server: two workers, the accounts, MySQL clients served (in plaintext too), the limits from o. */
static struct clink_node *server(struct clink_node_opts o)
{
    static const struct clink_mysql_opts mysql = {0};
    o.workers = 2;
    o.tls = tls;
    o.accounts = acc;
    o.allow_plaintext = 1;
    o.mysql = &mysql;
    o.handshake_timeout_ms = ts_ms(5000);
    return ts_node_with(&o, reg);
}

static int dial(struct clink_node *cli, struct clink_node *srv, const char *user, const char *pw,
                struct clink_conn **out, char *err)
{
    struct clink_connect_opts co = {.host = "127.0.0.1",
                                    .port = clink_node_port(srv),
                                    .expected_name = "localhost",
                                    .user = user,
                                    .password = pw,
                                    .timeout_ms = ts_ms(5000)};
    err[0] = '\0';
    return clink_connect_sync(cli, &co, out, err, 256);
}

static struct clink_conn *must_dial(struct clink_node *cli, struct clink_node *srv, const char *user, const char *pw)
{
    struct clink_conn *c = NULL;
    char err[256];
    int ret = dial(cli, srv, user, pw, &c, err);
    cr_assert_eq(ret, 0, "%s: %d %s", user, ret, err);
    return c;
}

static int echo(struct clink_conn *c)
{
    struct clink_msg r;
    int ret = clink_call_sync(c, TS_ECHO, "hi", 2, ts_ms(5000), &r);
    if (ret == 0) {
        clink_msg_free(&r);
    }
    return ret;
}

static struct clink_node_stats stats(struct clink_node *n)
{
    struct clink_node_stats s;
    clink_node_get_stats(n, &s);
    return s;
}

/* Wait until the server counts `clients` client sessions and `links` node links. */
static int wait_counts(struct clink_node *n, uint64_t clients, uint64_t links)
{
    uint64_t end = ms_now() + ts_ms(5000);
    for (;;) {
        struct clink_node_stats s = stats(n);
        if (s.client_sessions == clients && s.node_links == links) {
            return 1;
        }
        if (ms_now() > end) {
            return 0;
        }
        usleep(10000);
    }
}

/* ---- a MySQL client on a raw socket: plaintext, mysql_native_password ---- */

static void my_send(int fd, uint8_t seq, const uint8_t *p, size_t n)
{
    uint8_t h[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), seq};
    cr_assert_eq(write(fd, h, 4), 4);
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
}

/* One packet's payload; its length, or -1 when the connection ended. */
static int my_recv(int fd, uint8_t *p, size_t cap)
{
    uint8_t h[4];
    if (ts_read_full(fd, h, 4) < 0) {
        return -1;
    }
    size_t n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16;
    cr_assert_leq(n, cap);
    return ts_read_full(fd, p, n) < 0 ? -1 : (int)n;
}

/* An ERR packet's code and message, or code 0 for an OK packet. */
struct my_reply {
    int code;
    char msg[256];
};

static struct my_reply my_parse(const uint8_t *p, int n)
{
    struct my_reply r = {.code = -1};
    if (n > 0 && p[0] == 0x00) {
        r.code = 0;
    } else if (n >= 9 && p[0] == 0xff) {
        r.code = p[1] | p[2] << 8;
        snprintf(r.msg, sizeof(r.msg), "%.*s", n - 9, (const char *)p + 9); /* after '#' and the SQLSTATE */
    }
    return r;
}

/* Log in as user; [out] *fd the connection (logged in or refused and closing). */
static struct my_reply mysql_login(uint16_t port, const char *user, const char *pw, int *fd)
{
    *fd = ts_tcp_connect(port);
    uint8_t g[CLINK_GREETING_MAX], scramble[20], ans[20];
    cr_assert_eq(ts_read_full(*fd, g, 5), 0, "no greeting");
    int gn = clink__opening_greeting_len(g);
    cr_assert(gn > 0 && (size_t)gn + 4 <= CLINK_GREETING_MAX);
    cr_assert_eq(ts_read_full(*fd, g + 5, (size_t)gn - 1), 0);
    cr_assert_eq(clink__opening_greeting_scramble(g + 5, (size_t)gn - 1, scramble), 0);
    cr_assert_eq(clink_login_scramble(pw, scramble, ans), 0);

    uint8_t b[256] = {0};
    uint32_t caps = CLINK_MY_PROTOCOL_41 | CLINK_MY_SECURE_CONNECTION | CLINK_MY_PLUGIN_AUTH | CLINK_MY_LONG_PASSWORD;
    b[0] = (uint8_t)caps, b[1] = (uint8_t)(caps >> 8), b[2] = (uint8_t)(caps >> 16), b[3] = (uint8_t)(caps >> 24);
    b[6] = 0x01; /* max packet 64 KiB */
    b[8] = 45;   /* utf8mb4 */
    size_t n = 32, ul = strlen(user);
    memcpy(b + n, user, ul + 1);
    n += ul + 1;
    b[n++] = 20;
    memcpy(b + n, ans, 20);
    n += 20;
    memcpy(b + n, "mysql_native_password", 22);
    n += 22;
    my_send(*fd, 1, b, n);
    uint8_t r[512];
    return my_parse(r, my_recv(*fd, r, sizeof(r)));
}

/* ---- max_connections ---- */

Test(limits, max_connections_refuses_an_account_and_keeps_a_slot_for_the_administrator)
{
    struct clink_node *srv = server((struct clink_node_opts){.max_connections = 3});
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *app[3], *adm, *c = NULL;
    char err[256];

    for (int i = 0; i < 3; i++) {
        app[i] = must_dial(cli, srv, "app", "apppw");
    }
    int ret = dial(cli, srv, "app", "apppw", &c, err);
    int ret_other = dial(cli, srv, "other", "otherpw", &c, err);
    int fd;
    struct my_reply my = mysql_login(clink_node_port(srv), "other", "otherpw", &fd);
    close(fd);

    cr_assert_eq(ret, -CLINK_ETOOMANY, "a fourth session of app: %d", ret);
    cr_assert_eq(ret_other, -CLINK_ETOOMANY, "another account's: %d", ret_other);
    cr_assert_str_eq(err, "peer refused: Too many connections");
    cr_assert_eq(my.code, 1040, "the MySQL door: %d %s", my.code, my.msg);
    cr_assert_str_eq(my.msg, "Too many connections");

    /* The administrator gets the slot kept for grant ALL, natively or through the MySQL door, but only one. */
    adm = must_dial(cli, srv, "admin", "adminpw");
    cr_assert_eq(echo(adm), 0);
    cr_assert_eq(dial(cli, srv, "admin", "adminpw", &c, err), -CLINK_ETOOMANY, "a second reserved slot");
    cr_assert(wait_counts(srv, 4, 0));
    clink_conn_close(adm);
    cr_assert(wait_counts(srv, 3, 0), "the administrator's slot was given back");
    my = mysql_login(clink_node_port(srv), "admin", "adminpw", &fd);
    cr_assert_eq(my.code, 0, "the administrator through the MySQL door: %d %s", my.code, my.msg);
    close(fd);
    struct clink_node_stats s = stats(srv);
    cr_assert_eq(s.refused_max_connections, 4);

    /* A session that closes gives its slot back: app gets in again. */
    cr_assert(wait_counts(srv, 3, 0));
    clink_conn_close(app[0]);
    cr_assert(wait_counts(srv, 2, 0));
    app[0] = must_dial(cli, srv, "app", "apppw");
    cr_assert_eq(echo(app[0]), 0);
    for (int i = 0; i < 3; i++) {
        clink_conn_close(app[i]);
    }
    cr_assert(wait_counts(srv, 0, 0), "every slot given back once");
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- max_user_connections ---- */

Test(limits, max_user_connections_refuses_that_account_only)
{
    struct clink_node *srv = server((struct clink_node_opts){.max_user_connections = 2});
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *c = NULL;
    char err[256];

    struct clink_conn *a1 = must_dial(cli, srv, "app", "apppw");
    int fd1;
    struct my_reply my1 = mysql_login(clink_node_port(srv), "app", "apppw", &fd1); /* MySQL sessions count too */
    int ret = dial(cli, srv, "app", "apppw", &c, err);
    int fd2;
    struct my_reply my2 = mysql_login(clink_node_port(srv), "app", "apppw", &fd2);
    close(fd2);

    cr_assert_eq(my1.code, 0, "%d %s", my1.code, my1.msg);
    cr_assert_eq(ret, -CLINK_ETOOMANY, "a third session of app: %d %s", ret, err);
    cr_assert_str_eq(err, "peer refused: User app@% already has more than 'max_user_connections' active connections");
    cr_assert_eq(my2.code, 1203, "%d %s", my2.code, my2.msg);
    cr_assert_str_eq(my2.msg, "User app already has more than 'max_user_connections' active connections");
    /* Other accounts and the administrator are not held back by app's sessions. */
    struct clink_conn *o1 = must_dial(cli, srv, "other", "otherpw");
    struct clink_conn *o2 = must_dial(cli, srv, "other", "otherpw");
    struct clink_conn *adm = must_dial(cli, srv, "admin", "adminpw");
    cr_assert_eq(echo(o2), 0);
    cr_assert_eq(echo(adm), 0);
    cr_assert_eq(stats(srv).refused_max_user_connections, 2);

    /* app's MySQL session ends: app may open another. */
    close(fd1);
    cr_assert(wait_counts(srv, 4, 0));
    struct clink_conn *a2 = must_dial(cli, srv, "app", "apppw");
    cr_assert_eq(echo(a2), 0);
    struct clink_conn *all[] = {a1, a2, o1, o2, adm};
    for (size_t i = 0; i < 5; i++) {
        clink_conn_close(all[i]);
    }
    cr_assert(wait_counts(srv, 0, 0));
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- node links ---- */

static int pool_open(struct clink_pool *p, unsigned n)
{
    uint64_t end = ms_now() + ts_ms(5000);
    struct clink_pool_stats s;
    do {
        clink_pool_get_stats(p, &s);
        if (s.conns_open == n) {
            return 1;
        }
        usleep(10000);
    } while (ms_now() < end);
    return 0;
}

static struct clink_cluster *pool_to(struct clink_node *agg, struct clink_node *srv, unsigned n,
                                     struct clink_pool **pool)
{
    struct clink_cluster_opts o = {.node = agg, .pool = {.min_conns = n, .max_conns = n}};
    struct clink_cluster *cl;
    cr_assert_eq(clink_cluster_new(&o, &cl), 0);
    struct clink_peer p = {.name = "leaf",
                           .host = "127.0.0.1",
                           .port = clink_node_port(srv),
                           .expected_name = "localhost",
                           .user = "root"};
    cr_assert_eq(clink_cluster_add(cl, &p), 0);
    *pool = clink_cluster_pool(cl, "leaf");
    cr_assert_not_null(*pool);
    return cl;
}

Test(limits, certificate_links_have_their_own_budget_outside_max_connections)
{
    struct clink_node *srv = server((struct clink_node_opts){.max_connections = 2, .max_node_links = 8});
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_conn *links[4], *app[2], *c = NULL;
    char err[256];

    /* Client sessions fill max_connections... */
    for (int i = 0; i < 2; i++) {
        app[i] = must_dial(cli, srv, "app", "apppw");
    }
    cr_assert_eq(dial(cli, srv, "app", "apppw", &c, err), -CLINK_ETOOMANY);
    /* ...and more node links than max_connections still open: root by its certificate, and a pool's. */
    for (int i = 0; i < 4; i++) {
        links[i] = must_dial(cli, srv, "root", NULL);
    }
    struct clink_node *agg = ts_client(tls, 1, 0);
    struct clink_pool *pool;
    struct clink_cluster *cl = pool_to(agg, srv, 4, &pool);

    cr_assert(pool_open(pool, 4), "the pool did not get its 4 links");
    cr_assert(wait_counts(srv, 2, 8));
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(echo(links[i]), 0);
    }
    struct clink_msg r;
    cr_assert_eq(clink_pool_call_sync(pool, TS_ECHO, "hi", 2, ts_ms(5000), &r), 0);
    clink_msg_free(&r);
    /* Links have a budget too: the ninth is refused, and a client session does not take its place. */
    int ret = dial(cli, srv, "root", NULL, &c, err);
    cr_assert_eq(ret, -CLINK_ETOOMANY, "a ninth link: %d %s", ret, err);
    cr_assert_str_eq(err, "peer refused: Too many node links");
    struct clink_node_stats s = stats(srv);
    cr_assert_eq(s.refused_max_node_links, 1);
    cr_assert_eq(s.refused_max_connections, 1);

    clink_pool_release(pool);
    clink_cluster_free(cl);
    clink_node_free(agg);
    for (int i = 0; i < 4; i++) {
        clink_conn_close(links[i]);
    }
    for (int i = 0; i < 2; i++) {
        clink_conn_close(app[i]);
    }
    cr_assert(wait_counts(srv, 0, 0));
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- wait_timeout ---- */

struct slow_call {
    struct clink_conn *c;
    int ret;
};

static void *call_slow(void *arg)
{
    struct slow_call *sc = arg;
    struct clink_msg r;
    sc->ret = clink_call_sync(sc->c, SLOW, "x", 1, ts_ms(30000), &r);
    if (sc->ret == 0) {
        clink_msg_free(&r);
    }
    return NULL;
}

static int wait_closed(struct clink_conn *c, unsigned ms)
{
    uint64_t end = ms_now() + ms;
    while (clink_conn_is_open(c)) {
        if (ms_now() > end) {
            return 0;
        }
        usleep(10000);
    }
    return 1;
}

Test(limits, wait_timeout_closes_idle_client_sessions_not_node_links_nor_pools)
{
    struct clink_node *srv = server((struct clink_node_opts){.wait_timeout_s = 1});
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_node *agg = ts_client(tls, 1, 0);
    struct clink_pool *pool;
    /* Pings every 30 s: what keeps the pool's links is the exemption, not their traffic. */
    struct clink_cluster_opts co = {.node = agg, .pool = {.min_conns = 2, .max_conns = 2, .ping_interval_ms = 30000}};
    struct clink_cluster *cl;
    cr_assert_eq(clink_cluster_new(&co, &cl), 0);
    struct clink_peer p = {.name = "leaf",
                           .host = "127.0.0.1",
                           .port = clink_node_port(srv),
                           .expected_name = "localhost",
                           .user = "root"};
    cr_assert_eq(clink_cluster_add(cl, &p), 0);
    pool = clink_cluster_pool(cl, "leaf");
    cr_assert_not_null(pool);
    cr_assert(pool_open(pool, 2));
    uint64_t t0 = ms_now();
    struct clink_conn *idle = must_dial(cli, srv, "app", "apppw");
    struct clink_conn *busy = must_dial(cli, srv, "other", "otherpw");
    struct clink_conn *link = must_dial(cli, srv, "root", NULL);
    int fd;
    struct my_reply my = mysql_login(clink_node_port(srv), "app", "apppw", &fd);
    cr_assert_eq(my.code, 0, "%d %s", my.code, my.msg);
    /* busy has a call in flight for three times wait_timeout: waiting on the node is not idleness. */
    struct slow_call sc = {.c = busy};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, call_slow, &sc), 0);
    uint64_t t_call = ms_now();

    int idle_closed = wait_closed(idle, ts_ms(5000));
    uint64_t after = ms_now() - t0;
    uint8_t b[512];
    struct my_reply told = my_parse(b, my_recv(fd, b, sizeof(b)));
    int eof = my_recv(fd, b, sizeof(b));
    close(fd);
    while (ms_now() - t_call < 3000) {
        usleep(10000);
    }
    int busy_open = clink_conn_is_open(busy);
    struct clink_req *req = atomic_load(&held);
    cr_assert_not_null(req, "the slow call never reached its handler");
    char ok[] = "ok";
    struct iovec iov = {.iov_base = ok, .iov_len = 2};
    cr_assert_eq(clink_req_respond(req, &iov, 1), 0);
    pthread_join(t, NULL);

    cr_assert(idle_closed, "an idle client session was not closed");
    cr_assert_geq(after, 1000, "closed after %llu ms, before wait_timeout", (unsigned long long)after);
    cr_assert_eq(told.code, 4031, "the MySQL client was told %d %s", told.code, told.msg);
    cr_assert(strstr(told.msg, "wait_timeout") != NULL, "%s", told.msg);
    cr_assert_eq(eof, -1, "the MySQL session stayed open");
    cr_assert(busy_open, "a session with a call in flight was closed as idle");
    cr_assert_eq(sc.ret, 0, "the slow call: %d", sc.ret);
    /* Three wait_timeouts without a byte: the node link and the pool's links are still there. */
    cr_assert(clink_conn_is_open(link));
    cr_assert_eq(echo(link), 0);
    struct clink_pool_stats ps;
    clink_pool_get_stats(pool, &ps);
    cr_assert_eq(ps.conns_open, 2);
    cr_assert_eq(ps.reconnects, 0, "the pool lost links and redialled");
    struct clink_msg r;
    cr_assert_eq(clink_pool_call_sync(pool, TS_ECHO, "hi", 2, ts_ms(5000), &r), 0);
    clink_msg_free(&r);
    cr_assert_eq(stats(srv).idle_closed, 2);
    /* Once its call is answered, busy is idle too. */
    cr_assert(wait_closed(busy, ts_ms(5000)), "busy was not closed once idle");

    clink_pool_release(pool);
    clink_cluster_free(cl);
    clink_node_free(agg);
    clink_conn_close(idle);
    clink_conn_close(busy);
    clink_conn_close(link);
    cr_assert(wait_counts(srv, 0, 0));
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- TCP keepalive ---- */

struct keepalive {
    int on, idle, intvl, cnt;
};

static struct keepalive read_keepalive(int fd)
{
    struct keepalive k = {-1, -1, -1, -1};
    socklen_t l = sizeof(int);
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &k.on, &l), 0);
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &k.idle, &l), 0);
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &k.intvl, &l), 0);
    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &k.cnt, &l), 0);
    return k;
}

static pthread_mutex_t accepted_mu = PTHREAD_MUTEX_INITIALIZER;
static struct keepalive accepted;
static int accepted_seen;

/* Runs on the accepted connection's worker, while its socket is open. */
static void on_conn(struct clink_conn *c, enum clink_conn_event ev, int status, void *user)
{
    (void)status, (void)user;
    if (ev == CLINK_CONN_OPENED) {
        struct keepalive k = read_keepalive(c->fd);
        pthread_mutex_lock(&accepted_mu);
        accepted = k;
        accepted_seen = 1;
        pthread_mutex_unlock(&accepted_mu);
    }
}

Test(limits, keepalive_is_set_on_accepted_and_dialled_sockets)
{
    struct clink_node *srv = server((struct clink_node_opts){.tcp_keepalive_s = 7, .on_conn = on_conn});
    struct clink_node_opts co = {.workers = 1, .tls = tls, .tcp_keepalive_s = 45};
    struct clink_node *cli;
    cr_assert_eq(clink_node_new(&co, &cli), 0);
    cr_assert_eq(clink_node_start(cli), 0);
    struct clink_node *dflt = ts_client(tls, 1, 0);

    struct clink_conn *c = must_dial(cli, srv, "root", NULL);
    struct clink_conn *d = must_dial(dflt, srv, "root", NULL);
    struct keepalive dialled = read_keepalive(c->fd), by_default = read_keepalive(d->fd);
    uint64_t end = ms_now() + ts_ms(5000);
    int seen = 0;
    struct keepalive acc_k = {0};
    while (!seen && ms_now() < end) {
        pthread_mutex_lock(&accepted_mu);
        seen = accepted_seen;
        acc_k = accepted;
        pthread_mutex_unlock(&accepted_mu);
        usleep(5000);
    }

    cr_assert(seen, "on_conn never saw the accepted connection");
    cr_assert_neq(acc_k.on, 0, "SO_KEEPALIVE off on the accepted socket");
    cr_assert_eq(acc_k.idle, 7);
    cr_assert_eq(acc_k.intvl, 7, "probes no further apart than tcp_keepalive_s");
    cr_assert_eq(acc_k.cnt, 6);
    cr_assert_neq(dialled.on, 0, "SO_KEEPALIVE off on the dialled socket");
    cr_assert_eq(dialled.idle, 45);
    cr_assert_eq(dialled.intvl, 10);
    cr_assert_eq(dialled.cnt, 6);
    cr_assert_neq(by_default.on, 0);
    cr_assert_eq(by_default.idle, CLINK_DEFAULT_TCP_KEEPALIVE_S);

    clink_conn_close(c);
    clink_conn_close(d);
    clink_node_free(dflt);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(limits, out_of_range_options_are_refused)
{
    struct clink_node *n = NULL;
    struct clink_node_opts o = {.tls = tls, .wait_timeout_s = 31536001};
    cr_assert_eq(clink_node_new(&o, &n), -CLINK_EINVAL);
    o = (struct clink_node_opts){.tls = tls, .tcp_keepalive_s = 32768};
    cr_assert_eq(clink_node_new(&o, &n), -CLINK_EINVAL);
}

/* Issue 18: the defaults are values in one place, not zeros read in several files. */
Test(limits, the_default_options_hold_the_values)
{
    const struct clink_node_opts *d = &clink_node_opts_default;
    cr_assert_eq(d->max_frame, 4u << 20);
    cr_assert_eq(d->handshake_timeout_ms, 10000);
    cr_assert_eq(d->max_write_buffer, 4u << 20);
    cr_assert_eq(d->max_handshakes_per_worker, 32);
    cr_assert_eq(d->max_requests_per_conn, 4096);
    /* The numbers the docs quote (config.md, SECURITY.md), not the macros the values come from. */
    cr_assert_eq(d->max_connections, 151);
    cr_assert_eq(d->max_node_links, 16384);
    cr_assert_eq(d->wait_timeout_s, 28800);
    cr_assert_eq(d->tcp_keepalive_s, 60);
    cr_assert_eq(d->log_level, CLINK_LOG_WARN);
    cr_assert_eq(clink_pool_opts_default.max_conns, 4);
    cr_assert_eq(clink_pool_opts_default.recycle_records, 1ull << 23);
    /* A copy with a few fields changed makes a node, as the header says. */
    struct clink_node_opts o = clink_node_opts_default;
    o.tls = tls;
    o.workers = 1;
    struct clink_node *n = NULL;
    cr_assert_eq(clink_node_new(&o, &n), 0);
    clink_node_free(n);
}
