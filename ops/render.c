/*
 * The ops endpoint's three outputs from one snapshot (ops/ops_int.h):
 * Prometheus text exposition format 0.0.4, JSON (cJSON), and an HTML page
 * that needs no script and no outside resource (the page's CSP forbids both).
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clink/accounts.h"
#include "clink/auth.h"
#include "clink/http.h"
#include "clink/pool.h"
#include "clink/transport.h"
#include "clink/version.h"
#include "ops/ops_int.h"
#include "ops/samples.h"

/* ---- text buffer ---- */

void clink__sb_printf(struct clink__sbuf *b, const char *fmt, ...)
{
    if (b->err) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->err = 1;
            return;
        }
        if (b->p != NULL && (size_t)n < b->cap - b->n) {
            b->n += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + (size_t)n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->err = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

void clink__sb_html(struct clink__sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            clink__sb_printf(b, "&lt;");
            break;
        case '>':
            clink__sb_printf(b, "&gt;");
            break;
        case '&':
            clink__sb_printf(b, "&amp;");
            break;
        case '"':
            clink__sb_printf(b, "&quot;");
            break;
        case '\'':
            clink__sb_printf(b, "&#39;");
            break;
        default:
            clink__sb_printf(b, "%c", *s);
        }
    }
}

/* ---- shared facts ---- */

const char *clink__ops_link_mode(const struct clink_conn_status *st)
{
    if (st->mode == CLINK_MODE_PLAIN) {
        return "plain";
    }
    return st->ktls_tx == CLINK_KTLS_ON && st->ktls_rx == CLINK_KTLS_ON ? "ktls" : "tls";
}

static int live(const struct clink_conn_status *st)
{
    return !strcmp(st->state, "open") || !strcmp(st->state, "draining");
}

size_t clink__ops_plaintext_links(const struct clink__ops_snapshot *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nlinks; i++) {
        n += live(&s->links[i]) && s->links[i].mode == CLINK_MODE_PLAIN;
    }
    return n;
}

const char *clink__ops_link_role(const struct clink__ops_snapshot *s, const struct clink_conn_status *st)
{
    if (st->is_server) {
        return st->mysql ? "mysql" : "client";
    }
    for (size_t i = 0; i < s->npeers; i++) {
        if (st->label[0] && !strcmp(st->label, s->peers[i].name)) {
            return s->peers[i].role == CLINK_ROLE_AGGREGATOR ? "aggregator" : "leaf";
        }
    }
    return "dial";
}

static const char *cert_kind(enum clink_cert_kind k)
{
    switch (k) {
    case CLINK_CERT_OWN:
        return "own";
    case CLINK_CERT_INTERMEDIATE:
        return "intermediate";
    case CLINK_CERT_CA:
        return "ca";
    }
    return "unknown";
}

/* ---- Prometheus ---- */

/* A label value: backslash, double quote and newline escaped (exposition format). */
static void prom_label(struct clink__sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            clink__sb_printf(b, "\\%c", *s);
        } else if (*s == '\n') {
            clink__sb_printf(b, "\\n");
        } else {
            clink__sb_printf(b, "%c", *s);
        }
    }
}

static void family(struct clink__sbuf *b, const char *name, const char *type, const char *help)
{
    clink__sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct clink__sbuf *b, const char *name, const char *help, uint64_t v)
{
    family(b, name, "counter", help);
    clink__sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(struct clink__sbuf *b, const char *name, const char *help, double v)
{
    family(b, name, "gauge", help);
    clink__sb_printf(b, "%s %.17g\n", name, v);
}

int clink__ops_metrics(const struct clink__ops_snapshot *s, struct clink__sbuf *b)
{
    const struct clink_node_stats *st = &s->stats;
    family(b, "clink_info", "gauge", "The node: its name and clink version (always 1).");
    clink__sb_printf(b, "clink_info{node=\"");
    prom_label(b, s->name);
    clink__sb_printf(b, "\",version=\"%s\"} 1\n", CLINK_VERSION_STRING);

    family(b, "clink_secure_transport", "gauge", "Transport security state: 1 for the current one.");
    for (int k = CLINK_SECURE_PLAINTEXT; k <= CLINK_SECURE_REQUIRE_TLS; k++) {
        clink__sb_printf(b, "clink_secure_transport{state=\"%s\"} %d\n",
                         clink_secure_transport_name((enum clink_secure_transport)k), (int)s->secure == k);
    }
    gauge(b, "clink_plaintext_links", "Links (open or draining) still in plaintext: 0 before requiring TLS.",
          (double)clink__ops_plaintext_links(s));

    /* Connections by state, mode and direction: every combination, so that a series drops to 0, never vanishes. */
    static const char *states[] = {"opening", "open", "draining", "closing"};
    static const char *modes[] = {"plain", "tls", "ktls"};
    family(b, "clink_connections", "gauge", "Links now, by state, mode (plain, tls, ktls) and direction.");
    for (int d = 0; d < 2; d++) {
        for (size_t si = 0; si < sizeof(states) / sizeof(states[0]); si++) {
            for (size_t mi = 0; mi < sizeof(modes) / sizeof(modes[0]); mi++) {
                size_t n = 0;
                for (size_t i = 0; i < s->nlinks; i++) {
                    const struct clink_conn_status *l = &s->links[i];
                    n += l->is_server == (d == 0) && !strcmp(l->state, states[si]) &&
                         !strcmp(clink__ops_link_mode(l), modes[mi]);
                }
                clink__sb_printf(b, "clink_connections{direction=\"%s\",state=\"%s\",mode=\"%s\"} %zu\n",
                                 d == 0 ? "in" : "out", states[si], modes[mi], n);
            }
        }
    }
    counter(b, "clink_connections_accepted_total", "Connections accepted.", st->conns_accepted);
    counter(b, "clink_connections_dialed_total", "Connections dialled.", st->conns_dialed);
    counter(b, "clink_connections_refused_total", "Connections that failed before they opened.", st->conns_refused);

    family(b, "clink_handshakes_total", "counter", "TLS handshakes by result (full, resumed from a ticket, failed).");
    clink__sb_printf(b, "clink_handshakes_total{result=\"full\"} %llu\n",
                     (unsigned long long)(st->handshakes_ok - st->handshakes_resumed));
    clink__sb_printf(b, "clink_handshakes_total{result=\"resumed\"} %llu\n",
                     (unsigned long long)st->handshakes_resumed);
    clink__sb_printf(b, "clink_handshakes_total{result=\"failed\"} %llu\n", (unsigned long long)st->handshakes_failed);
    counter(b, "clink_handshakes_deferred_total", "Accepted connections that waited for a handshake slot.",
            st->handshakes_deferred);

    family(b, "clink_calls_total", "counter", "Calls this node made, by result (failures by reason).");
    const char *results[] = {"ok", "timeout", "remote", "canceled", "closed", "other"};
    uint64_t counts[] = {st->calls_ok,
                         st->calls_failed_timeout,
                         st->calls_failed_remote,
                         st->calls_failed_canceled,
                         st->calls_failed_closed,
                         st->calls_failed_other};
    for (int k = 0; k < 6; k++) {
        clink__sb_printf(b, "clink_calls_total{result=\"%s\"} %llu\n", results[k], (unsigned long long)counts[k]);
    }
    counter(b, "clink_calls_failed_total", "Calls this node made that failed, all reasons.", st->calls_failed);
    counter(b, "clink_calls_started_total", "Calls this node started.", st->calls_started);
    counter(b, "clink_requests_handled_total", "Peers' requests this node answered.", st->requests_handled);

    family(b, "clink_bytes_total", "counter", "Bytes on the wire.");
    clink__sb_printf(b, "clink_bytes_total{direction=\"in\"} %llu\n", (unsigned long long)st->bytes_in);
    clink__sb_printf(b, "clink_bytes_total{direction=\"out\"} %llu\n", (unsigned long long)st->bytes_out);

    family(b, "clink_stream_bytes_sent_total", "counter",
           "Chunk payload sent by how it left: copied into clink's buffers (user-space TLS, small chunks) or from "
           "the application's buffers (plaintext and kTLS links).");
    clink__sb_printf(b, "clink_stream_bytes_sent_total{path=\"copied\"} %llu\n", (unsigned long long)st->bytes_copied);
    clink__sb_printf(b, "clink_stream_bytes_sent_total{path=\"borrowed\"} %llu\n",
                     (unsigned long long)st->bytes_borrowed);
    counter(b, "clink_zerocopy_sends_total", "Zero-copy sends (zerocopy_send).", st->zc_sends);
    counter(b, "clink_zerocopy_copied_total",
            "Zero-copy sends the kernel copied after all (loopback; reported by kernels 6.2 and later).",
            st->zc_copied);
    family(b, "clink_streams_total", "counter", "Streams by how they ended here (each side counts its own).");
    clink__sb_printf(b, "clink_streams_total{result=\"ok\"} %llu\n", (unsigned long long)st->streams_ok);
    clink__sb_printf(b, "clink_streams_total{result=\"failed\"} %llu\n", (unsigned long long)st->streams_failed);
    counter(b, "clink_stream_flow_violations_total",
            "Peers closed for sending past the window they were given (a hostile or broken peer).",
            st->flow_violations);

    family(b, "clink_ktls_total", "counter",
           "TLS connections the kernel took over (both directions, receive only) or that stayed in user space.");
    clink__sb_printf(b, "clink_ktls_total{result=\"offloaded\"} %llu\n", (unsigned long long)st->ktls_offloaded);
    clink__sb_printf(b, "clink_ktls_total{result=\"rx_only\"} %llu\n", (unsigned long long)st->ktls_rx_only);
    clink__sb_printf(b, "clink_ktls_total{result=\"fallback\"} %llu\n", (unsigned long long)st->ktls_fallbacks);

    family(b, "clink_logins_total", "counter", "Account logins by result (MySQL clients included).");
    clink__sb_printf(b, "clink_logins_total{result=\"ok\"} %llu\n", (unsigned long long)st->logins_ok);
    clink__sb_printf(b, "clink_logins_total{result=\"denied\"} %llu\n", (unsigned long long)st->logins_denied);
    counter(b, "clink_logins_legacy_native_tls_total",
            "Logins that gave an unbound mysql_native_password answer inside TLS (accounts with legacy_native_tls: "
            "a server the client did not verify could have relayed it).",
            st->logins_legacy_native_tls);
    gauge(b, "clink_client_sessions", "Logged-in client sessions (native and MySQL), counted against max_connections.",
          (double)st->client_sessions);
    gauge(b, "clink_node_links", "Certificate-proven node links, counted against max_node_links.",
          (double)st->node_links);
    family(b, "clink_sessions_refused_total", "counter", "Logins refused by a session limit.");
    clink__sb_printf(b, "clink_sessions_refused_total{limit=\"max_connections\"} %llu\n",
                     (unsigned long long)st->refused_max_connections);
    clink__sb_printf(b, "clink_sessions_refused_total{limit=\"max_user_connections\"} %llu\n",
                     (unsigned long long)st->refused_max_user_connections);
    clink__sb_printf(b, "clink_sessions_refused_total{limit=\"max_node_links\"} %llu\n",
                     (unsigned long long)st->refused_max_node_links);
    counter(b, "clink_idle_closed_total", "Client sessions closed after wait_timeout idle.", st->idle_closed);
    counter(b, "clink_login_failures_total", "Password logins checked and refused, every door.", s->logins.failures);
    counter(b, "clink_logins_throttled_total",
            "Password logins refused before any check: their user name, source address or pair had failed too often.",
            s->logins.throttled);
    counter(b, "clink_login_throttle_overflow_total",
            "Logins counted on the throttle's shared entry because its table was full (a global limit).",
            s->logins.overflowed);
    gauge(b, "clink_login_throttle_tracked", "User names, sources and pairs the failed-login throttle tracks.",
          (double)s->logins.tracked);
    counter(b, "clink_mysql_queries_total", "Statements from MySQL-protocol clients.", st->mysql_queries);
    counter(b, "clink_tls_reloads_total", "Certificate reloads applied.", st->tls_reloads);
    family(b, "clink_links_closed_total", "counter",
           "Established TLS links closed gracefully by a TLS reload: the peer's certificate no longer verifies.");
    clink__sb_printf(b, "clink_links_closed_total{reason=\"revoked\"} %llu\n",
                     (unsigned long long)st->links_closed_revoked);
    clink__sb_printf(b, "clink_links_closed_total{reason=\"untrusted\"} %llu\n",
                     (unsigned long long)st->links_closed_untrusted);
    counter(b, "clink_protocol_errors_total", "Connections closed for a protocol error.", st->protocol_errors);
    counter(b, "clink_plaintext_fallbacks_total", "PREFERRED dials that went out in plaintext.",
            st->plaintext_fallbacks);
    gauge(b, "clink_buffered_bytes", "Bytes waiting in send buffers.", (double)st->buffered);
    counter(b, "clink_buffer_full_total", "Times a worker's send buffers reached its budget.", st->buffer_full);
    counter(b, "clink_inbox_full_total", "Hand-offs refused because a worker's inbox was full.", st->inbox_full);
    counter(b, "clink_https_requests_total", "Requests on this HTTPS port.", st->https_requests);
    counter(b, "clink_https_refused_total",
            "HTTPS connections that failed: TLS, a malformed request, a timeout, an answer cut short.",
            st->https_refused);

    /* Pools, one series per peer. */
    if (s->npeers > 0) {
        family(b, "clink_pool_up", "gauge", "The peer is reachable.");
        for (size_t i = 0; i < s->npeers; i++) {
            clink__sb_printf(b, "clink_pool_up{peer=\"");
            prom_label(b, s->peers[i].name);
            clink__sb_printf(b, "\",role=\"%s\"} %d\n",
                             s->peers[i].role == CLINK_ROLE_AGGREGATOR ? "aggregator" : "leaf", s->peers[i].stats.up);
        }
        family(b, "clink_pool_connections", "gauge", "A pool's connections by state.");
        for (size_t i = 0; i < s->npeers; i++) {
            const struct clink_pool_stats *p = &s->peers[i].stats;
            const char *names[] = {"open", "idle", "busy", "connecting"};
            unsigned v[] = {p->conns_open, p->conns_idle, p->conns_busy, p->conns_connecting};
            for (int k = 0; k < 4; k++) {
                clink__sb_printf(b, "clink_pool_connections{peer=\"");
                prom_label(b, s->peers[i].name);
                clink__sb_printf(b, "\",state=\"%s\"} %u\n", names[k], v[k]);
            }
        }
        family(b, "clink_pool_calls", "gauge", "A pool's calls in flight and waiting for a connection.");
        for (size_t i = 0; i < s->npeers; i++) {
            for (int k = 0; k < 2; k++) {
                clink__sb_printf(b, "clink_pool_calls{peer=\"");
                prom_label(b, s->peers[i].name);
                clink__sb_printf(b, "\",state=\"%s\"} %u\n", k ? "waiting" : "in_flight",
                                 k ? s->peers[i].stats.calls_waiting : s->peers[i].stats.calls_in_flight);
            }
        }
        family(b, "clink_pool_calls_total", "counter", "A pool's finished calls by result (failures by reason).");
        for (size_t i = 0; i < s->npeers; i++) {
            const struct clink_pool_stats *p = &s->peers[i].stats;
            const char *names[] = {"ok", "unavailable", "timeout", "closed", "remote", "other"};
            uint64_t v[] = {p->calls_ok,      p->failed_unavailable, p->failed_timeout,
                            p->failed_closed, p->failed_remote,      p->failed_other};
            for (int k = 0; k < 6; k++) {
                clink__sb_printf(b, "clink_pool_calls_total{peer=\"");
                prom_label(b, s->peers[i].name);
                clink__sb_printf(b, "\",result=\"%s\"} %llu\n", names[k], (unsigned long long)v[k]);
            }
        }
        family(b, "clink_pool_handshakes_total", "counter", "A pool's dials by result.");
        for (size_t i = 0; i < s->npeers; i++) {
            const struct clink_pool_stats *p = &s->peers[i].stats;
            const char *names[] = {"full", "resumed", "failed"};
            uint64_t v[] = {p->handshakes_full, p->handshakes_resumed, p->handshakes_failed};
            for (int k = 0; k < 3; k++) {
                clink__sb_printf(b, "clink_pool_handshakes_total{peer=\"");
                prom_label(b, s->peers[i].name);
                clink__sb_printf(b, "\",result=\"%s\"} %llu\n", names[k], (unsigned long long)v[k]);
            }
        }
        family(b, "clink_pool_events_total", "counter", "A pool's reconnects, recycles, retries and failed pings.");
        for (size_t i = 0; i < s->npeers; i++) {
            const struct clink_pool_stats *p = &s->peers[i].stats;
            const char *names[] = {"reconnect", "recycle", "retry", "ping_failed"};
            uint64_t v[] = {p->reconnects, p->recycles, p->retries, p->pings_failed};
            for (int k = 0; k < 4; k++) {
                clink__sb_printf(b, "clink_pool_events_total{peer=\"");
                prom_label(b, s->peers[i].name);
                clink__sb_printf(b, "\",event=\"%s\"} %llu\n", names[k], (unsigned long long)v[k]);
            }
        }
    }

    family(
        b, "clink_cert_expiry_seconds", "gauge",
        "Seconds until a certificate in use expires (negative: expired): the node's, the HTTPS port's, CAs, peers'.");
    for (size_t i = 0; i < s->ncerts; i++) {
        const struct clink__ops_cert *c = &s->certs[i];
        clink__sb_printf(b, "clink_cert_expiry_seconds{use=\"%s\",kind=\"%s\",subject=\"", c->use,
                         cert_kind(c->ci.kind));
        prom_label(b, c->ci.subject);
        clink__sb_printf(b, "\",serial=\"");
        prom_label(b, c->ci.serial);
        if (c->peer[0]) {
            clink__sb_printf(b, "\",peer=\"");
            prom_label(b, c->peer);
        }
        clink__sb_printf(b, "\"} %lld\n", (long long)(c->ci.not_after - s->now));
    }
    return b->err ? -CLINK_ENOMEM : 0;
}

/* ---- JSON ---- */

static void iso8601(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
        snprintf(out, cap, "%s", "");
        return;
    }
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void add_time(cJSON *o, const char *key, int64_t t)
{
    char when[32];
    iso8601(t, when, sizeof(when));
    if (t > 0) {
        cJSON_AddStringToObject(o, key, when);
    } else {
        cJSON_AddNullToObject(o, key);
    }
}

int clink__ops_json(const struct clink__ops_snapshot *s, struct clink__sbuf *out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *node = cJSON_AddObjectToObject(root, "node");
    cJSON_AddStringToObject(node, "name", s->name);
    cJSON_AddStringToObject(node, "version", CLINK_VERSION_STRING);
    cJSON_AddNumberToObject(node, "port", s->port);
    cJSON_AddNumberToObject(node, "https_port", s->https_port);
    cJSON_AddNumberToObject(node, "workers", s->workers);
    cJSON_AddStringToObject(node, "secure_transport", clink_secure_transport_name(s->secure));
    cJSON_AddNumberToObject(node, "plaintext_links", (double)clink__ops_plaintext_links(s));
    add_time(node, "time", s->now);
    cJSON *st = cJSON_AddObjectToObject(node, "stats");
    const struct clink_node_stats *ns = &s->stats;
#define NUM(f) cJSON_AddNumberToObject(st, #f, (double)ns->f)
    NUM(conns_accepted);
    NUM(conns_dialed);
    NUM(conns_open);
    NUM(conns_refused);
    NUM(handshakes_ok);
    NUM(handshakes_resumed);
    NUM(handshakes_failed);
    NUM(calls_started);
    NUM(calls_ok);
    NUM(calls_failed);
    NUM(requests_handled);
    NUM(bytes_in);
    NUM(bytes_out);
    NUM(ktls_offloaded);
    NUM(ktls_rx_only);
    NUM(ktls_fallbacks);
    NUM(logins_ok);
    NUM(logins_denied);
    NUM(logins_legacy_native_tls);
    NUM(client_sessions);
    NUM(node_links);
    NUM(idle_closed);
    cJSON_AddNumberToObject(st, "logins_throttled", (double)s->logins.throttled);
    cJSON_AddNumberToObject(st, "login_failures", (double)s->logins.failures);
    NUM(tls_reloads);
    NUM(https_requests);
    NUM(https_refused);
#undef NUM
    if (s->reload_at > 0) {
        cJSON *r = cJSON_AddObjectToObject(node, "last_reload");
        add_time(r, "at", s->reload_at);
        cJSON_AddBoolToObject(r, "ok", s->reload_ok);
        cJSON_AddStringToObject(r, "message", s->reload_msg);
    }

    cJSON *certs = cJSON_AddArrayToObject(root, "certificates");
    for (size_t i = 0; i < s->ncerts; i++) {
        const struct clink__ops_cert *c = &s->certs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "use", c->use);
        cJSON_AddStringToObject(o, "kind", cert_kind(c->ci.kind));
        cJSON_AddStringToObject(o, "subject", c->ci.subject);
        cJSON_AddStringToObject(o, "issuer", c->ci.issuer);
        cJSON_AddStringToObject(o, "serial", c->ci.serial);
        if (c->peer[0]) {
            cJSON_AddStringToObject(o, "peer", c->peer);
        }
        add_time(o, "not_after", c->ci.not_after);
        cJSON_AddNumberToObject(o, "expires_in_s", (double)(c->ci.not_after - s->now));
        cJSON_AddBoolToObject(o, "expiring_soon", c->ci.not_after - s->now < (int64_t)s->warn_days * 86400);
        cJSON_AddItemToArray(certs, o);
    }

    cJSON *peers = cJSON_AddArrayToObject(root, "peers");
    for (size_t i = 0; i < s->npeers; i++) {
        const struct clink_peer_info *p = &s->peers[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON_AddStringToObject(o, "role", p->role == CLINK_ROLE_AGGREGATOR ? "aggregator" : "leaf");
        cJSON_AddStringToObject(o, "host", p->host);
        cJSON_AddNumberToObject(o, "port", p->port);
        cJSON_AddBoolToObject(o, "up", p->stats.up);
        cJSON_AddNumberToObject(o, "conns_open", p->stats.conns_open);
        cJSON_AddNumberToObject(o, "calls_in_flight", p->stats.calls_in_flight);
        cJSON_AddNumberToObject(o, "calls_ok", (double)p->stats.calls_ok);
        cJSON_AddNumberToObject(o, "handshakes_full", (double)p->stats.handshakes_full);
        cJSON_AddNumberToObject(o, "handshakes_resumed", (double)p->stats.handshakes_resumed);
        cJSON_AddNumberToObject(o, "handshakes_failed", (double)p->stats.handshakes_failed);
        cJSON_AddItemToArray(peers, o);
    }

    cJSON *links = cJSON_AddArrayToObject(root, "links");
    for (size_t i = 0; i < s->nlinks; i++) {
        const struct clink_conn_status *l = &s->links[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)l->id);
        cJSON_AddStringToObject(o, "direction", l->is_server ? "in" : "out");
        cJSON_AddStringToObject(o, "peer", l->peer_addr);
        cJSON_AddStringToObject(o, "peer_name", l->label);
        cJSON_AddStringToObject(o, "role", clink__ops_link_role(s, l));
        cJSON_AddStringToObject(o, "state", l->state);
        cJSON_AddStringToObject(o, "mode", clink__ops_link_mode(l));
        cJSON_AddStringToObject(o, "tls_version", l->tls_version);
        cJSON_AddStringToObject(o, "cipher", l->cipher);
        cJSON_AddBoolToObject(o, "ktls_tx", l->ktls_tx == CLINK_KTLS_ON);
        cJSON_AddBoolToObject(o, "ktls_rx", l->ktls_rx == CLINK_KTLS_ON);
        cJSON_AddStringToObject(o, "ktls_reason", l->ktls_reason);
        cJSON_AddStringToObject(o, "send_path", clink_send_path_name(l->send_path));
        cJSON_AddBoolToObject(o, "resumed", l->resumed);
        cJSON_AddStringToObject(o, "verified", l->verified);
        cJSON_AddStringToObject(o, "peer_subject", l->peer_subject);
        add_time(o, "peer_cert_not_after", l->peer_not_after);
        add_time(o, "local_cert_not_after", l->local_not_after);
        cJSON_AddStringToObject(o, "account", l->account);
        cJSON_AddBoolToObject(o, "mysql", l->mysql);
        cJSON_AddNumberToObject(o, "bytes_in", (double)l->bytes_in);
        cJSON_AddNumberToObject(o, "bytes_out", (double)l->bytes_out);
        cJSON_AddNumberToObject(o, "calls_in_flight", l->calls_in_flight);
        cJSON_AddNumberToObject(o, "requests_in_flight", l->requests_in_flight);
        cJSON_AddItemToArray(links, o);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text == NULL) {
        return -CLINK_ENOMEM;
    }
    clink__sb_printf(out, "%s\n", text);
    cJSON_free(text);
    return out->err ? -CLINK_ENOMEM : 0;
}

/* ---- the page ---- */

static void td(struct clink__sbuf *b, const char *cls, const char *text)
{
    if (cls != NULL && cls[0]) {
        clink__sb_printf(b, "<td class=\"%s\">", cls);
    } else {
        clink__sb_printf(b, "<td>");
    }
    clink__sb_html(b, text);
    clink__sb_printf(b, "</td>");
}

static void when_left(int64_t not_after, int64_t now, char *out, size_t cap)
{
    char date[32];
    iso8601(not_after, date, sizeof(date));
    int64_t left = not_after - now;
    if (not_after <= 0) {
        snprintf(out, cap, "-");
    } else if (left < 0) {
        snprintf(out, cap, "%s (expired %lld days ago)", date, (long long)(-left / 86400));
    } else {
        snprintf(out, cap, "%s (in %lld days)", date, (long long)(left / 86400));
    }
}

static const char *expiry_class(const struct clink__ops_snapshot *s, int64_t not_after)
{
    if (not_after <= 0) {
        return "";
    }
    if (not_after <= s->now) {
        return "expired";
    }
    return not_after - s->now < (int64_t)s->warn_days * 86400 ? "expiring" : "";
}

/*
 * One row of the nodes table: what this node knows of a node of the
 * cluster, itself or a peer (from its pool). A row is filled first and
 * printed in one place, so that another source (a node's own ops port, once
 * an aggregator learns where each leaf's is) can fill more of it.
 */
struct node_row {
    const char *cls;  /* "self" or "peer" */
    const char *name; /* as configured; escaped when printed */
    const char *role;
    char address[80];
    int up;
    size_t links; /* open or draining, dialled by this node (its own: all of them) */
    char encryption[64];
    int plain; /* some links in plaintext: the cell is highlighted */
    uint64_t calls_ok;
    const char *peer; /* whose history draws the sparkline; NULL: this node's */
    char spark_id[32];
    const struct clink__peer_view *view; /* what the node's own ops port says of it; NULL: none */
};

/* The "Its own view" cell: a peer's transport security, plaintext links and certificate, as it says. */
static void view_cell(const struct clink__ops_snapshot *s, struct clink__sbuf *b, const struct clink__peer_view *v)
{
    char t[320], when[32];
    if (v == NULL) {
        td(b, NULL, "-");
        return;
    }
    if (!v->ok) {
        snprintf(t, sizeof(t), "not read: %s", v->why);
        td(b, "plain", t);
        return;
    }
    iso8601(v->cert_not_after, when, sizeof(when));
    long days = (long)((v->cert_not_after - s->now) / 86400);
    snprintf(t, sizeof(t), "%s, %lu plaintext link(s); certificate until %.10s (%ld days); ops port %u", v->secure,
             v->plaintext_links, v->cert_not_after ? when : "-", v->cert_not_after ? days : 0, v->ops_port);
    int warn = v->plaintext_links > 0 || strcmp(v->secure, "REQUIRE_TLS") != 0 ||
               (v->cert_not_after && days < (long)s->warn_days);
    td(b, warn ? "plain" : "", t);
}

static void node_row(const struct clink__ops_snapshot *s, struct clink__sbuf *b, const struct node_row *r)
{
    char t[64];
    clink__sb_printf(b, "<tr class=\"%s\">", r->cls);
    td(b, NULL, r->name);
    td(b, NULL, r->role);
    td(b, NULL, r->address);
    td(b, r->up ? "up" : "down", r->up ? "up" : "down");
    snprintf(t, sizeof(t), "%zu", r->links);
    td(b, NULL, t);
    td(b, r->plain ? "plain" : "", r->encryption);
    snprintf(t, sizeof(t), "%llu", (unsigned long long)r->calls_ok);
    td(b, NULL, t);
    view_cell(s, b, r->view);
    clink__sb_printf(b, "<td class=\"spark\">");
    clink__ops_sparkline(s, b, r->peer, r->spark_id);
    clink__sb_printf(b, "</td></tr>\n");
}

static int page(const struct clink__ops_snapshot *s, struct clink__sbuf *b);

int clink__ops_page(const struct clink__ops_snapshot *s, struct clink__sbuf *b)
{
    if (s->hist != NULL) {
        pthread_mutex_lock(&s->hist->mu); /* the sampler's ring: one tick is recorded whole or not at all */
    }
    int ret = page(s, b);
    if (s->hist != NULL) {
        pthread_mutex_unlock(&s->hist->mu);
    }
    return ret;
}

static int page(const struct clink__ops_snapshot *s, struct clink__sbuf *b)
{
    char t[512];
    size_t plain = clink__ops_plaintext_links(s);
    clink__sb_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                        "<meta name=\"viewport\" content=\"width=device-width\"><title>clink: ");
    clink__sb_html(b, s->name);
    clink__sb_printf(b, "</title><style>"
                        "body{font-family:sans-serif;margin:1.5em;color:#222}"
                        "table{border-collapse:collapse;margin-bottom:1.5em}"
                        "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;font-size:90%%}"
                        "th{background:#f0f0f0}.expiring{background:#fff1a8;font-weight:bold}"
                        ".expired{background:#f8b4b4;font-weight:bold}.plain{background:#fde2c8}"
                        ".down{color:#b00;font-weight:bold}.up{color:#070}");
    clink__sb_printf(b, "%s%s</style></head><body>\n<h1>clink node <span id=\"node-name\">", clink__chart_css,
                     clink__timeline_css);
    clink__sb_html(b, s->name);
    clink__sb_printf(b,
                     "</span></h1>\n<p id=\"summary\">clink %s, port %u, %u workers. Transport security: "
                     "<strong id=\"secure-transport\">%s</strong>. Plaintext links: "
                     "<strong id=\"plaintext-links\">%zu</strong>. Open links: %llu.</p>\n",
                     CLINK_VERSION_STRING, s->port, s->workers, clink_secure_transport_name(s->secure), plain,
                     (unsigned long long)s->stats.conns_open);
    if (s->reload_at > 0) {
        char when[32];
        iso8601(s->reload_at, when, sizeof(when));
        clink__sb_printf(b, "<p id=\"last-reload\">Last reload (%s): ", when);
        clink__sb_html(b, s->reload_ok ? "done. " : "FAILED: ");
        clink__sb_html(b, s->reload_msg);
        clink__sb_printf(b, "</p>\n");
    }

    clink__ops_node_charts(s, b);

    /* The cluster as this node sees it, in one view: itself and the peers it calls, a row each. */
    clink__sb_printf(b, "<h2>Nodes</h2>\n<table id=\"nodes\"><tr><th>Node</th><th>Role</th><th>Address</th>"
                        "<th>State</th><th>Links</th><th>Encryption</th><th>Calls ok</th>"
                        "<th>Its own view (its ops port, every 10 s)</th><th>Calls/s, 15 min</th></tr>\n");
    struct node_row self = {.cls = "self",
                            .name = s->name,
                            .role = "this node",
                            .up = 1,
                            .links = s->nlinks,
                            .calls_ok = s->stats.calls_ok,
                            .spark_id = "spark-node"};
    snprintf(self.address, sizeof(self.address), "port %u", s->port);
    snprintf(self.encryption, sizeof(self.encryption), "%s", clink_secure_transport_name(s->secure));
    node_row(s, b, &self);
    for (size_t i = 0; i < s->npeers; i++) {
        const struct clink_peer_info *p = &s->peers[i];
        struct node_row r = {.cls = "peer",
                             .name = p->name,
                             .role = p->role == CLINK_ROLE_AGGREGATOR ? "aggregator" : "leaf",
                             .up = p->stats.up,
                             .calls_ok = p->stats.calls_ok,
                             .peer = p->name};
        snprintf(r.address, sizeof(r.address), "%s:%u", p->host, p->port);
        for (size_t k = 0; k < s->nviews; k++) {
            r.view = strcmp(s->views[k].name, p->name) == 0 ? &s->views[k] : r.view;
        }
        snprintf(r.spark_id, sizeof(r.spark_id), "spark-peer-%zu", i);
        size_t tls = 0, ktls = 0;
        for (size_t k = 0; k < s->nlinks; k++) {
            const struct clink_conn_status *l = &s->links[k];
            if (!l->is_server && !strcmp(l->label, p->name) && live(l)) {
                r.links++;
                tls += l->mode != CLINK_MODE_PLAIN;
                ktls += !strcmp(clink__ops_link_mode(l), "ktls");
            }
        }
        if (r.links == 0) {
            snprintf(r.encryption, sizeof(r.encryption), "-");
        } else if (tls == r.links) {
            snprintf(r.encryption, sizeof(r.encryption), "TLS on all %zu (%zu kTLS)", r.links, ktls);
        } else {
            snprintf(r.encryption, sizeof(r.encryption), "%zu of %zu in PLAINTEXT", r.links - tls, r.links);
            r.plain = 1;
        }
        node_row(s, b, &r);
    }
    clink__sb_printf(b, "</table>\n");
    clink__ops_peer_charts(s, b);

    clink__sb_printf(b, "<h2>Links</h2>\n<table id=\"links\"><tr><th>Id</th><th>Direction</th><th>Peer</th>"
                        "<th>Role</th><th>State</th><th>Encryption</th><th>Cipher</th><th>kTLS</th>"
                        "<th>Resumed</th><th>Peer certificate</th><th>Our certificate expires</th>"
                        "<th>Bytes in/out</th><th>Calls in flight</th></tr>\n");
    for (size_t i = 0; i < s->nlinks; i++) {
        const struct clink_conn_status *l = &s->links[i];
        const char *mode = clink__ops_link_mode(l);
        clink__sb_printf(b, "<tr class=\"link %s\">", mode);
        snprintf(t, sizeof(t), "%llu", (unsigned long long)l->id);
        td(b, NULL, t);
        td(b, NULL, l->is_server ? "in" : "out");
        snprintf(t, sizeof(t), "%s%s%s", l->label, l->label[0] ? " " : "", l->peer_addr);
        td(b, NULL, t);
        td(b, NULL, clink__ops_link_role(s, l));
        td(b, NULL, l->state);
        if (l->mode == CLINK_MODE_PLAIN) {
            td(b, "plain", "PLAINTEXT");
        } else {
            snprintf(t, sizeof(t), "%s", l->tls_version[0] ? l->tls_version : "handshake");
            td(b, NULL, t);
        }
        td(b, NULL, l->cipher[0] ? l->cipher : "-");
        snprintf(t, sizeof(t), "tx %s, rx %s", l->ktls_tx == CLINK_KTLS_ON ? "on" : "off",
                 l->ktls_rx == CLINK_KTLS_ON ? "on" : "off");
        td(b, NULL, l->mode == CLINK_MODE_PLAIN ? "-" : t);
        td(b, NULL, l->mode == CLINK_MODE_PLAIN ? "-" : l->resumed ? "yes" : "no");
        char left[96];
        when_left(l->peer_not_after, s->now, left, sizeof(left));
        snprintf(t, sizeof(t), "%s%s%s", l->peer_subject[0] ? l->peer_subject : "-", l->peer_subject[0] ? ", " : "",
                 l->peer_subject[0] ? left : "");
        td(b, expiry_class(s, l->peer_not_after), t);
        when_left(l->local_not_after, s->now, left, sizeof(left));
        td(b, expiry_class(s, l->local_not_after), left);
        snprintf(t, sizeof(t), "%llu / %llu", (unsigned long long)l->bytes_in, (unsigned long long)l->bytes_out);
        td(b, NULL, t);
        snprintf(t, sizeof(t), "%u", l->calls_in_flight + l->requests_in_flight);
        td(b, NULL, t);
        clink__sb_printf(b, "</tr>\n");
    }
    clink__sb_printf(b, "</table>\n");

    clink__sb_printf(b, "<h2>Certificates</h2>\n");
    clink__ops_timeline(s, b);
    clink__sb_printf(b,
                     "<p>Highlighted: expiring within %u days, or expired.</p>\n"
                     "<table id=\"certificates\"><tr><th>Use</th><th>Kind</th><th>Subject</th><th>Issuer</th>"
                     "<th>Serial</th><th>Expires</th></tr>\n",
                     s->warn_days);
    for (size_t i = 0; i < s->ncerts; i++) {
        const struct clink__ops_cert *c = &s->certs[i];
        const char *cls = expiry_class(s, c->ci.not_after);
        clink__sb_printf(b, "<tr class=\"cert%s%s\">", cls[0] ? " " : "", cls);
        snprintf(t, sizeof(t), "%s%s%s", c->use, c->peer[0] ? " " : "", c->peer);
        td(b, NULL, t);
        td(b, NULL, cert_kind(c->ci.kind));
        td(b, NULL, c->ci.subject);
        td(b, NULL, c->ci.issuer);
        td(b, NULL, c->ci.serial);
        char left[96];
        when_left(c->ci.not_after, s->now, left, sizeof(left));
        td(b, cls, left);
        clink__sb_printf(b, "</tr>\n");
    }
    clink__sb_printf(b, "</table>\n<p>Machine-readable: <a href=\"/status\">/status</a> (JSON), "
                        "<a href=\"/metrics\">/metrics</a> (Prometheus).</p>\n</body></html>\n");
    return b->err ? -CLINK_ENOMEM : 0;
}
