/*
 * Handlers, callbacks and waits shared by the transport suites (calls,
 * call_endings, close, frames, buffers, ...). Each Criterion test runs in its
 * own process, so the counters here start at zero in every test.
 */
#ifndef CLINK_TESTS_SUPPORT_CALLS_H
#define CLINK_TESTS_SUPPORT_CALLS_H

#include <stdatomic.h>
#include <stdint.h>

#include "clink/transport.h"
#include "tests/support/support.h"

/* Dial options for srv on loopback, verifying the peer as `name`. */
struct clink_connect_opts ts_dial(struct clink_node *srv, const char *name);

/* Dial srv with ssl mode m; on success, *st is the connection's status and the connection is closed. */
int ts_dial_mode(struct clink_node *cli, struct clink_node *srv, const char *name, enum clink_ssl_mode m,
                 struct clink_conn_status *st, char *err, size_t errlen);

/* A fresh client (with tls) still gets an echo from srv: whatever a test did to srv hurt no one else. */
void ts_expect_echo_works(struct clink_tls_ctx *tls, struct clink_node *srv);

/* Send a HELLO frame offering protocol versions minv..maxv. */
void ts_raw_hello(struct tls_peer *r, uint16_t minv, uint16_t maxv);

/* Poll *v every 5 ms until it reaches want or ms pass; returns its last value. */
int ts_wait_count(atomic_int *v, int want, unsigned ms);

/*
 * HOLD keeps each request unanswered; RELEASE answers every held one (with
 * its own payload), then itself. The server's held count is ts_server_held.
 */
#define TS_HOLD    10
#define TS_RELEASE 11
extern atomic_int ts_server_held;
/* Echo, HOLD, and RELEASE answering in arrival order. */
void ts_register_hold(struct clink_node *n);
/* HOLD, and RELEASE answering the newest held request first (no echo). */
void ts_register_hold_reverse(struct clink_node *n);

/* HANG never answers: the test decides how the call ends. ts_hang_seen counts its requests. */
#define TS_HANG 20
extern atomic_int ts_hang_seen;
/* Echo and HANG. */
void ts_register_hang(struct clink_node *n);

/* A call callback that counts completions (ts_cb_count) and keeps the last status (ts_cb_status). */
extern atomic_int ts_cb_count, ts_cb_status;
void ts_count_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len);

#endif
