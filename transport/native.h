/*
 * clink's native protocol on a connection: the state native.c (frames,
 * HELLO, login, GOAWAY) and calls.c (our calls) share, behind c->nat.
 */
#ifndef CLINK_TRANSPORT_NATIVE_H
#define CLINK_TRANSPORT_NATIVE_H

#include "transport/conn_int.h"
#include "transport/idmap.h"

struct clink__native {
    struct clink__idmap calls;                /* ours, in flight, by id */
    struct clink_call *pend_head, *pend_tail; /* waiting for write-buffer room */
    uint64_t last_peer_id;                    /* the highest request id the peer sent (our GOAWAY names it) */
    uint32_t peer_max_frame;
    uint16_t version;
    int goaway_sent, goaway_recv;
    uint64_t goaway_last; /* the peer's GOAWAY: the highest of our request ids it had seen */
};

#endif
