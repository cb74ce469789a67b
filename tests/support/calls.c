#include "tests/support/calls.h"

#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "transport/frame.h"

/* Criterion-like checks that work in plain drivers too, as in support.c. */
#define CHECK(cond, ...)         TS_REQUIRE((cond), "%s", #cond)
#define cr_assert_eq(a, b, ...)  CHECK((a) == (b))
#define cr_assert_leq(a, b, ...) CHECK((a) <= (b))

atomic_int ts_server_held;
atomic_int ts_hang_seen;
atomic_int ts_cb_count, ts_cb_status;

struct clink_connect_opts ts_dial(struct clink_node *srv, const char *name)
{
    struct clink_connect_opts o = {.host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = name};
    return o;
}

int ts_dial_mode(struct clink_node *cli, struct clink_node *srv, const char *name, enum clink_ssl_mode m,
                 struct clink_conn_status *st, char *err, size_t errlen)
{
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = name, .ssl_mode = m};
    struct clink_conn *c = NULL;
    int ret = clink_connect_sync(cli, &o, &c, err, errlen);
    if (ret == 0) {
        cr_assert_eq(clink_conn_get_status(c, st), 0);
        clink_conn_close(c);
    }
    return ret;
}

void ts_expect_echo_works(struct clink_tls_ctx *tls, struct clink_node *srv)
{
    struct clink_node *cli = ts_client(tls, 1, 0);
    struct clink_connect_opts o = ts_dial(srv, "localhost");
    struct clink_conn *c;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, NULL, 0), 0);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, TS_ECHO, "ok", 2, ts_ms(5000), &r), 0);
    clink_msg_free(&r);
    clink_conn_close(c);
    clink_node_free(cli);
}

void ts_raw_hello(struct tls_peer *r, uint16_t minv, uint16_t maxv)
{
    uint8_t b[CLINK_HELLO_MAX];
    struct clink_hello h = {.min_version = minv, .max_version = maxv, .max_frame = 1 << 20};
    size_t n = clink__hello_encode(b, &h);
    cr_assert_eq(ts_raw_frame(r, CLINK_FRAME_HELLO, 0, 0, b, (uint32_t)n, (uint32_t)n), 0);
}

int ts_wait_count(atomic_int *v, int want, unsigned ms)
{
    for (unsigned i = 0; i < ms / 5 && atomic_load(v) < want; i++) {
        usleep(5000);
    }
    return atomic_load(v);
}

/* ---- HOLD and RELEASE ---- */

struct held {
    struct clink_req *req;
    uint8_t payload[16];
    size_t len;
};
/* Per worker: RELEASE answers the requests its own worker holds. */
static _Thread_local struct held *held;
static _Thread_local size_t nheld, capheld;

static void hold(struct clink_req *req, void *user)
{
    (void)user;
    if (nheld == capheld) {
        capheld = capheld ? capheld * 2 : 1024;
        held = realloc(held, capheld * sizeof(*held));
    }
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    cr_assert_leq(n, sizeof(held[0].payload));
    held[nheld].req = req;
    held[nheld].len = n;
    memcpy(held[nheld].payload, p, n); /* the payload is only ours during the handler */
    nheld++;
    atomic_fetch_add(&ts_server_held, 1);
}

static void release(struct clink_req *req, void *user)
{
    (void)user;
    for (size_t i = 0; i < nheld; i++) {
        struct iovec iov = {.iov_base = held[i].payload, .iov_len = held[i].len};
        cr_assert_eq(clink_req_respond(held[i].req, &iov, 1), 0);
    }
    nheld = capheld = 0;
    free(held);
    held = NULL;
    cr_assert_eq(clink_req_respond(req, NULL, 0), 0);
}

static void release_reverse(struct clink_req *req, void *user)
{
    (void)user;
    while (nheld > 0) {
        struct held *h = &held[--nheld];
        struct iovec iov = {.iov_base = h->payload, .iov_len = h->len};
        cr_assert_eq(clink_req_respond(h->req, &iov, 1), 0);
    }
    capheld = 0;
    free(held);
    held = NULL;
    cr_assert_eq(clink_req_respond(req, NULL, 0), 0);
}

void ts_register_hold(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, TS_HOLD, hold, NULL), 0);
    cr_assert_eq(clink_node_register(n, TS_RELEASE, release, NULL), 0);
}

void ts_register_hold_reverse(struct clink_node *n)
{
    cr_assert_eq(clink_node_register(n, TS_HOLD, hold, NULL), 0);
    cr_assert_eq(clink_node_register(n, TS_RELEASE, release_reverse, NULL), 0);
}

/* ---- HANG ---- */

static void hang(struct clink_req *req, void *user)
{
    (void)user;
    (void)req; /* never answered: the test decides how the call ends */
    atomic_fetch_add(&ts_hang_seen, 1);
}

void ts_register_hang(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, TS_HANG, hang, NULL), 0);
}

void ts_count_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)call;
    (void)resp;
    (void)len;
    atomic_store(&ts_cb_status, status);
    atomic_fetch_add(&ts_cb_count, 1);
}
