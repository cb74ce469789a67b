/*
 * Frames a hostile or broken peer sends after the handshake (oversized,
 * of no known type, from another protocol version): the connection closes
 * or is refused in words, and the node goes on serving everyone else.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tests/support/calls.h"
#include "tests/support/fixture.h"
#include "tests/support/support.h"
#include "transport/frame.h"

TestSuite(frames, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);

Test(frames, oversized_frame_closes_only_that_connection)
{
    struct clink_node *srv = ts_node(tls, 2, 0, ts_register_echo);
    struct tls_peer r;
    cr_assert_eq(ts_raw_tls(&r, clink_node_port(srv), &pki), 0);
    ts_raw_hello(&r, 1, 1);
    uint8_t hdr[CLINK_FRAME_HDR + CLINK_HELLO_LEN];
    cr_assert_eq(ts_raw_read(&r, hdr, sizeof(hdr)), (int)sizeof(hdr), "no HELLO back");
    cr_assert_eq(hdr[0], CLINK_FRAME_HELLO);

    /* 4 MiB + 1 claimed: the server must refuse before reading the body. */
    cr_assert_eq(ts_raw_frame(&r, CLINK_FRAME_REQUEST, TS_ECHO, 1, NULL, 0, (4u << 20) + 1), 0);
    uint8_t rest[64];
    int n = ts_raw_read(&r, rest, sizeof(rest));

    cr_assert_eq(n, 0, "connection should be closed, read %d", n);
    struct clink_node_stats st;
    clink_node_get_stats(srv, &st);
    cr_assert_eq(st.protocol_errors, 1);
    ts_expect_echo_works(tls, srv);
    tls_peer_free(&r);
    clink_node_free(srv);
}

Test(frames, malformed_frame_type_closes_connection)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct tls_peer r;
    cr_assert_eq(ts_raw_tls(&r, clink_node_port(srv), &pki), 0);
    ts_raw_hello(&r, 1, 1);
    uint8_t hdr[CLINK_FRAME_HDR + CLINK_HELLO_LEN];
    cr_assert_eq(ts_raw_read(&r, hdr, sizeof(hdr)), (int)sizeof(hdr));

    cr_assert_eq(ts_raw_frame(&r, 99, 0, 1, NULL, 0, 0), 0);
    uint8_t rest[64];
    int n = ts_raw_read(&r, rest, sizeof(rest));

    cr_assert_eq(n, 0);
    ts_expect_echo_works(tls, srv);
    tls_peer_free(&r);
    clink_node_free(srv);
}

Test(frames, protocol_version_mismatch_is_refused_with_error_frame)
{
    struct clink_node *srv = ts_node(tls, 1, 0, ts_register_echo);
    struct tls_peer r;
    cr_assert_eq(ts_raw_tls(&r, clink_node_port(srv), &pki), 0);

    ts_raw_hello(&r, 7, 9);
    uint8_t b[CLINK_FRAME_HDR + 256];
    int n = ts_raw_read(&r, b, sizeof(b));

    cr_assert_gt(n, CLINK_FRAME_HDR + 4, "got %d bytes", n);
    struct clink_frame_hdr h;
    cr_assert_eq(clink__frame_decode(b, 1 << 20, 1, &h), 0);
    cr_assert_eq(h.type, CLINK_FRAME_ERROR);
    cr_assert_eq(h.id, 0);
    cr_assert_eq(clink__get_u32(b + CLINK_FRAME_HDR), CLINK_EVERSION);
    cr_assert(memmem(b, (size_t)n, "no common protocol version", 26) != NULL);
    tls_peer_free(&r);
    clink_node_free(srv);
}
