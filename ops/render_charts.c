/*
 * The ops page's charts (ops_int.h): which series each chart draws, what it
 * says it measures, and where it goes: four charts for the node, four
 * smaller ones for each peer of an aggregator, and a calls/s sparkline on
 * each row of the nodes table. The drawing is chart.c's, the data the
 * sampler's ring (samples.h), locked by the page while it draws.
 */
#include <stdio.h>

#include "ops/chart.h"

static const struct clink__chart_line calls[] = {{"", CLINK__S_CALLS}};
static const struct clink__chart_line bytes[] = {{"in", CLINK__S_BYTES_IN}, {"out", CLINK__S_BYTES_OUT}};
static const struct clink__chart_line p99[] = {{"", CLINK__S_P99}};
static const struct clink__chart_line handshakes[] = {
    {"full", CLINK__S_HS_FULL}, {"resumed", CLINK__S_HS_RESUMED}, {"failed", CLINK__S_HS_FAILED}};

/* The four charts of one history, at a size; ids are prefix-calls, prefix-bytes, prefix-p99, prefix-handshakes. */
static void four(struct clink__sbuf *b, const struct clink__samples *s, const struct clink__history *h,
                 const char *prefix, int peer, unsigned width, unsigned height, unsigned cols)
{
    char id[80];
    struct clink__chart c = {.width = width, .height = height, .cols = cols};

    snprintf(id, sizeof(id), "%s-calls", prefix);
    c.id = id;
    c.title = "Calls/s";
    c.note = peer ? "calls through this peer's pool that finished in each second, ok or failed"
                  : "calls this node made (its pools' included) that finished in each second, ok or failed; "
                    "pings not counted";
    c.unit = CLINK__UNIT_PER_S;
    c.lines = calls;
    c.nlines = 1;
    c.totals = 0;
    clink__chart_svg(b, s, h, &c);

    snprintf(id, sizeof(id), "%s-bytes", prefix);
    c.title = peer ? "Payload bytes/s" : "Bytes/s";
    c.note = peer ? "request (out) and answer (in) payloads of this pool's answered calls, per second; frames and "
                    "TLS not counted"
                  : "bytes on the wire per second, every link of this node (TLS and frame headers included)";
    c.unit = CLINK__UNIT_BYTES_S;
    c.lines = bytes;
    c.nlines = 2;
    clink__chart_svg(b, s, h, &c);

    snprintf(id, sizeof(id), "%s-p99", prefix);
    c.title = peer ? "Call p99 through the pool" : "Call p99 (calls this node made)";
    c.note = peer ? "99th percentile latency of the calls through this pool that finished in each second, from "
                    "clink_pool_call_start to the answer: waiting for a connection and retries included; a "
                    "histogram bucket's upper bound (at most 25% high)"
                  : "99th percentile latency of the calls this node made that finished in each second, from "
                    "clink_call_start to the answer on one connection; a histogram bucket's upper bound (at most "
                    "25% high)";
    c.unit = CLINK__UNIT_US;
    c.lines = p99;
    c.nlines = 1;
    clink__chart_svg(b, s, h, &c);

    snprintf(id, sizeof(id), "%s-handshakes", prefix);
    c.title = "Handshakes/s";
    c.note = peer ? "this pool's dials per second: full TLS handshakes, resumed from a ticket, failed"
                  : "TLS handshakes per second, both roles (accepted and dialled): full, resumed from a ticket, "
                    "failed";
    c.unit = CLINK__UNIT_PER_S;
    c.lines = handshakes;
    c.nlines = 3;
    c.totals = 1;
    clink__chart_svg(b, s, h, &c);
}

void clink__ops_node_charts(const struct clink__ops_snapshot *s, struct clink__sbuf *b)
{
    if (s->hist == NULL) {
        return;
    }
    clink__sb_printf(b, "<h2>The last 15 minutes</h2>\n<div class=\"charts\" id=\"node-charts\">\n");
    four(b, s->hist, &s->hist->node, "chart-node", 0, 300, 96, 300);
    clink__sb_printf(b, "</div>\n");
}

void clink__ops_peer_charts(const struct clink__ops_snapshot *s, struct clink__sbuf *b)
{
    if (s->hist == NULL || s->npeers == 0) {
        return;
    }
    clink__sb_printf(b, "<h2>Peers, the last 15 minutes</h2>\n");
    if (s->hist->peers_untracked > 0) {
        clink__sb_printf(b, "<p>%zu more peers than the %d charted have no charts.</p>\n", s->hist->peers_untracked,
                         CLINK__SAMPLED_PEERS);
    }
    for (size_t i = 0; i < s->npeers; i++) {
        const struct clink__history *h = clink__samples_find(s->hist, s->peers[i].name);
        if (h == NULL) {
            continue; /* added since the last tick */
        }
        char prefix[40];
        snprintf(prefix, sizeof(prefix), "chart-peer-%zu", i);
        clink__sb_printf(b, "<h3 class=\"peer-charts\">");
        clink__sb_html(b, s->peers[i].name);
        clink__sb_printf(b, " <small class=\"%s\">%s</small></h3>\n<div class=\"charts\" id=\"%s\">\n",
                         s->peers[i].stats.up ? "up" : "down", s->peers[i].stats.up ? "up" : "down", prefix);
        four(b, s->hist, h, prefix, 1, 180, 80, 90);
        clink__sb_printf(b, "</div>\n");
    }
}

void clink__ops_sparkline(const struct clink__ops_snapshot *s, struct clink__sbuf *b, const char *peer, const char *id)
{
    const struct clink__history *h = s->hist == NULL ? NULL
                                     : peer == NULL  ? &s->hist->node
                                                     : clink__samples_find(s->hist, peer);
    if (h == NULL) {
        clink__sb_printf(b, "-");
        return;
    }
    struct clink__chart c = {.id = id,
                             .title = "Calls/s",
                             .note = peer ? "calls through this peer's pool that finished in each second"
                                          : "calls this node made that finished in each second",
                             .unit = CLINK__UNIT_PER_S,
                             .lines = calls,
                             .nlines = 1,
                             .width = 120,
                             .height = 48,
                             .cols = 60};
    clink__chart_svg(b, s->hist, h, &c);
}
