/*
 * Every default of a node, as values, in one place (include/clink/transport.h
 * documents each field; zero in a caller's options means "this value").
 * clink_node_opts_default is what a program copies and overrides;
 * clink__node_opts_resolve is the one function that turns a caller's zeros
 * into these values. Two defaults depend on the machine and are computed
 * when the node is made: workers (one per online CPU) and max_buffered (a
 * quarter of physical memory).
 */
#include <unistd.h>

#include "transport/node_int.h"

const struct clink_node_opts clink_node_opts_default = {
    .workers = 0,                    /* one per online CPU */
    .max_frame = 4u << 20,           /* 4 MiB */
    .handshake_timeout_ms = 10000,   /* opening, TLS and HELLO */
    .inbox_size = 8192,              /* hand-offs waiting for a worker */
    .max_write_buffer = 4u << 20,    /* per connection, before calls wait and reads pause */
    .max_handshakes_per_worker = 32, /* in progress at once; the rest wait unread */
    .max_buffered = 0,               /* a quarter of physical memory */
    .max_requests_per_conn = 4096,   /* the peer's requests in our handlers before reads pause */
    .max_connections = CLINK_DEFAULT_MAX_CONNECTIONS,
    .max_node_links = CLINK_DEFAULT_MAX_NODE_LINKS,
    .wait_timeout_s = CLINK_DEFAULT_WAIT_TIMEOUT_S,
    .tcp_keepalive_s = CLINK_DEFAULT_TCP_KEEPALIVE_S,
    .log_level = CLINK_LOG_WARN,
    .max_message = CLINK_DEFAULT_MAX_MESSAGE,     /* a message reassembled from chunks */
    .conn_window = CLINK_DEFAULT_CONN_WINDOW,     /* flow control, per connection */
    .stream_window = CLINK_DEFAULT_STREAM_WINDOW, /* ... per stream */
    .proto_max = CLINK_PROTO_MAX,
};

#define FILL(field)                                                                                                    \
    do {                                                                                                               \
        if (o->field == 0) {                                                                                           \
            o->field = clink_node_opts_default.field;                                                                  \
        }                                                                                                              \
    } while (0)

void clink__node_opts_resolve(struct clink_node_opts *o)
{
    if (o->workers == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        o->workers = c > 0 ? (unsigned)c : 1;
    }
    if (o->max_buffered == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        o->max_buffered = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize / 4 : (1ull << 30);
    }
    FILL(max_frame);
    FILL(handshake_timeout_ms);
    FILL(inbox_size);
    FILL(max_write_buffer);
    FILL(max_handshakes_per_worker);
    FILL(max_requests_per_conn);
    FILL(max_connections);
    FILL(max_node_links);
    FILL(wait_timeout_s);
    FILL(tcp_keepalive_s);
    FILL(log_level);
    FILL(max_message);
    FILL(conn_window);
    FILL(stream_window);
    FILL(proto_max);
}
