/*
 * Stats: clink_node_get_stats sums the per-worker counters, which workers bump
 * without atomics on the hot path and other threads read relaxed.
 */
#include <string.h>

#include "transport/node_int.h"

void clink_node_get_stats(const struct clink_node *node, struct clink_node_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < node->nworkers; i++) {
        const struct clink__stats *s = &node->workers[i].stats;
#define SUM(f) out->f += atomic_load_explicit(&s->f, memory_order_relaxed)
        SUM(conns_accepted);
        SUM(conns_dialed);
        SUM(conns_open);
        SUM(conns_refused);
        SUM(handshakes_ok);
        SUM(handshakes_failed);
        SUM(calls_started);
        SUM(calls_ok);
        SUM(calls_failed);
        SUM(requests_handled);
        SUM(bytes_in);
        SUM(bytes_out);
        SUM(bytes_copied);
        SUM(bytes_borrowed);
        SUM(zc_sends);
        SUM(zc_copied);
        SUM(inbox_full);
        SUM(protocol_errors);
        SUM(plaintext_fallbacks);
        SUM(logins_ok);
        SUM(logins_denied);
        SUM(logins_legacy_native_tls);
        SUM(tls_reloads);
        SUM(handshakes_resumed);
        SUM(handshakes_deferred);
        SUM(ktls_offloaded);
        SUM(ktls_rx_only);
        SUM(ktls_fallbacks);
        SUM(buffer_full);
        SUM(mysql_logins);
        SUM(mysql_queries);
        SUM(https_requests);
        SUM(https_refused);
        SUM(calls_failed_timeout);
        SUM(calls_failed_remote);
        SUM(calls_failed_canceled);
        SUM(calls_failed_closed);
        SUM(calls_failed_other);
        SUM(refused_max_connections);
        SUM(refused_max_user_connections);
        SUM(refused_max_node_links);
        SUM(idle_closed);
        SUM(links_closed_revoked);
        SUM(links_closed_untrusted);
        SUM(streams_opened);
        SUM(streams_accepted);
        SUM(streams_ok);
        SUM(streams_failed);
        SUM(stream_frames_refused);
        SUM(flow_violations);
        SUM(chunks_out);
        SUM(chunks_in);
        out->buffered += __atomic_load_n(&node->workers[i].buffered, __ATOMIC_RELAXED);
#undef SUM
    }
    out->client_sessions = atomic_load_explicit(&node->limits.clients, memory_order_relaxed);
    out->node_links = atomic_load_explicit(&node->limits.links, memory_order_relaxed);
}
