/*
 * What a pool and a cluster report: per-pool counters (clink_pool_stats), the
 * member list (clink_cluster_peers) and the human-readable status text
 * (clink_cluster_status_format).
 */
#include "pool/pool_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

void clink_pool_get_stats(struct clink_pool *p, struct clink_pool_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < p->o.max_conns; i++) {
        struct slot *s = &p->slots[i];
        int st = atomic_load(&s->state);
        int inflight = atomic_load(&s->inflight);
        out->calls_in_flight += (unsigned)(inflight > 0 ? inflight : 0);
        if (st == SLOT_OPEN) {
            out->conns_open++;
            if (inflight > 0) {
                out->conns_busy++;
            } else {
                out->conns_idle++;
            }
        } else if (st == SLOT_CONNECTING) {
            out->conns_connecting++;
        }
    }
    out->calls_waiting = atomic_load(&p->nwait);
    out->calls_started = atomic_load(&p->calls_started);
    out->calls_ok = atomic_load(&p->calls_ok);
    out->failed_unavailable = atomic_load(&p->f_unavail);
    out->failed_timeout = atomic_load(&p->f_timeout);
    out->failed_closed = atomic_load(&p->f_closed);
    out->failed_remote = atomic_load(&p->f_remote);
    out->failed_other = atomic_load(&p->f_other);
    out->handshakes_full = atomic_load(&p->hs_full);
    out->handshakes_resumed = atomic_load(&p->hs_resumed);
    out->handshakes_failed = atomic_load(&p->hs_failed);
    out->reconnects = atomic_load(&p->reconnects);
    out->recycles = atomic_load(&p->recycles);
    out->retries = atomic_load(&p->retries);
    out->pings_failed = atomic_load(&p->pings_failed);
    out->streams_opened = atomic_load(&p->streams_opened);
    out->streams_ok = atomic_load(&p->streams_ok);
    out->streams_resent = atomic_load(&p->streams_resent);
    out->streams_recycled = atomic_load(&p->streams_recycled);
    out->streams_open = atomic_load(&p->streams_open);
    out->streams_waiting = atomic_load(&p->streams_waiting);
    out->up = !atomic_load(&p->down) && !atomic_load(&p->removed);
}

size_t clink_cluster_peers(struct clink_cluster *cl, struct clink_peer_info *out, size_t cap)
{
    if (cl == NULL) {
        return 0;
    }
    pthread_mutex_lock(&cl->mu);
    size_t n = 0;
    for (size_t i = 0; i < cl->npools; i++) {
        struct clink_pool *p = cl->pools[i];
        if (atomic_load(&p->removed)) {
            continue;
        }
        if (n < cap) {
            struct clink_peer_info *pi = &out[n];
            memset(pi, 0, sizeof(*pi));
            snprintf(pi->name, sizeof(pi->name), "%s", p->name);
            pi->role = p->role;
            snprintf(pi->host, sizeof(pi->host), "%s", p->host);
            pi->port = p->co.port;
            snprintf(pi->expected_name, sizeof(pi->expected_name), "%s", p->expected);
            clink_pool_get_stats(p, &pi->stats);
        }
        n++;
    }
    pthread_mutex_unlock(&cl->mu);
    return n;
}

size_t clink_cluster_status_format(struct clink_cluster *cl, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0) {
        return 0;
    }
    buf[0] = '\0';
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < cl->npools; i++) {
        struct clink_pool *p = cl->pools[i];
        struct clink_pool_stats s;
        clink_pool_get_stats(p, &s);
        int m = snprintf(buf + n, cap - n,
                         "Pool %s: %s %s:%u, %s\n"
                         "  Connections: %u open (%u idle, %u busy), %u connecting\n"
                         "  Calls: %u in flight, %u waiting, %llu started, %llu ok\n"
                         "  Calls failed: %llu unavailable, %llu timeout, %llu closed, %llu remote, %llu other\n"
                         "  Handshakes: %llu full, %llu resumed, %llu failed\n"
                         "  Reconnects: %llu, recycles: %llu, retries: %llu, failed pings: %llu\n",
                         p->name, p->role == CLINK_ROLE_AGGREGATOR ? "aggregator" : "leaf", p->host, p->co.port,
                         atomic_load(&p->removed) ? "removed"
                         : s.up                   ? "up"
                                                  : "down",
                         s.conns_open, s.conns_idle, s.conns_busy, s.conns_connecting, s.calls_in_flight,
                         s.calls_waiting, (unsigned long long)s.calls_started, (unsigned long long)s.calls_ok,
                         (unsigned long long)s.failed_unavailable, (unsigned long long)s.failed_timeout,
                         (unsigned long long)s.failed_closed, (unsigned long long)s.failed_remote,
                         (unsigned long long)s.failed_other, (unsigned long long)s.handshakes_full,
                         (unsigned long long)s.handshakes_resumed, (unsigned long long)s.handshakes_failed,
                         (unsigned long long)s.reconnects, (unsigned long long)s.recycles,
                         (unsigned long long)s.retries, (unsigned long long)s.pings_failed);
        if (m < 0 || (size_t)m >= cap - n) {
            n = cap - 1;
            break;
        }
        n += (size_t)m;
    }
    pthread_mutex_unlock(&cl->mu);
    return n;
}
