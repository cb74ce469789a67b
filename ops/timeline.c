/*
 * The certificate expiry timeline on the ops page: one SVG time axis from
 * now to the farthest expiry (a year at most: a CA's ten years would squeeze
 * every node certificate against "now"), one row per certificate in use,
 * soonest first, a bar to its expiry, the warning window shaded and the
 * certificates inside it (or expired) marked. Certificates past the axis
 * end in an arrow at its right edge with their date.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/ops_int.h"

#define LABEL_W 330 /* the certificates' names */
#define PLOT_W  380
#define ROW_H   16
#define AXIS_H  22
#define YEAR    (365 * 86400LL)

/* Insertion sort by expiry: a few hundred certificates at most, and qsort has no context argument. */
static void by_expiry(const struct clink__ops_snapshot *s, size_t *order, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        size_t v = order[i], j = i;
        for (; j > 0 && s->certs[order[j - 1]].ci.not_after > s->certs[v].ci.not_after; j--) {
            order[j] = order[j - 1];
        }
        order[j] = v;
    }
}

static void date(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, cap, "%Y-%m-%d", &tm) == 0) {
        snprintf(out, cap, "?");
    }
}

/* At most max bytes of s, cut on a character boundary, with an ellipsis if cut. */
static void shorten(char *out, size_t cap, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max || max + 4 > cap) {
        snprintf(out, cap, "%s", s);
        return;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) {
        max--; /* not inside a UTF-8 sequence */
    }
    snprintf(out, cap, "%.*s\xe2\x80\xa6", (int)max, s);
}

const char clink__timeline_css[] =
    "svg.timeline{display:block;margin-bottom:1em}svg.timeline text{font:11px sans-serif}"
    ".tl-warn{fill:#fff1a8}.tl-bar{fill:#9cc3e6}.tl-expiring .tl-bar{fill:#f0b429}"
    ".tl-expired .tl-bar,.tl-expired .tl-mark{fill:#d64545}"
    ".tl-mark{fill:#1f6fb4}.tl-expiring .tl-mark{fill:#b7791f}"
    ".tl-expiring text,.tl-expired text{font-weight:bold}";

void clink__ops_timeline(const struct clink__ops_snapshot *s, struct clink__sbuf *b)
{
    size_t *order = malloc((s->ncerts ? s->ncerts : 1) * sizeof(*order));
    if (order == NULL) {
        b->err = 1;
        return;
    }
    size_t n = 0;
    int64_t far = 0;
    for (size_t i = 0; i < s->ncerts; i++) {
        if (s->certs[i].ci.not_after > 0) {
            order[n++] = i;
            far = s->certs[i].ci.not_after > far ? s->certs[i].ci.not_after : far;
        }
    }
    by_expiry(s, order, n);
    int64_t span = far - s->now;
    span = span < 86400 ? 86400 : span > YEAR ? YEAR : span;
    int64_t warn = (int64_t)s->warn_days * 86400;
    unsigned wx = (unsigned)(warn >= span ? PLOT_W : warn * PLOT_W / span);
    unsigned width = LABEL_W + PLOT_W + 90, height = AXIS_H + (unsigned)n * ROW_H + 4;
    char t[1024], d[32];

    clink__sb_printf(b,
                     "<svg class=\"timeline\" id=\"expiry-timeline\" xmlns=\"http://www.w3.org/2000/svg\" "
                     "width=\"%u\" height=\"%u\" viewBox=\"0 0 %u %u\" role=\"img\" "
                     "aria-label=\"certificate expiry timeline\">",
                     width, height, width, height);
    clink__sb_printf(b,
                     "<rect class=\"tl-warn\" x=\"%u\" y=\"%u\" width=\"%u\" height=\"%u\"><title>within %u days: "
                     "expiring soon</title></rect>",
                     LABEL_W, AXIS_H - 4, wx, height - AXIS_H + 4, s->warn_days);
    /* The axis: now, quarters, the end. */
    for (int q = 0; q <= 4; q++) {
        unsigned x = LABEL_W + (unsigned)(PLOT_W * q / 4);
        if (q == 0) {
            snprintf(d, sizeof(d), "now");
        } else {
            date(s->now + span * q / 4, d, sizeof(d));
        }
        clink__sb_printf(b,
                         "<line x1=\"%u\" y1=\"%u\" x2=\"%u\" y2=\"%u\" stroke=\"#ccc\"/>"
                         "<text x=\"%u\" y=\"12\" text-anchor=\"%s\">%s</text>",
                         x, AXIS_H - 6, x, height, x, q == 0 ? "start" : "middle", d);
    }
    for (size_t r = 0; r < n; r++) {
        const struct clink__ops_cert *c = &s->certs[order[r]];
        int64_t left = c->ci.not_after - s->now;
        const char *cls = left <= 0 ? " tl-expired" : left < warn ? " tl-expiring" : "";
        unsigned y = AXIS_H + (unsigned)r * ROW_H;
        unsigned bar = left <= 0 ? 0 : left >= span ? PLOT_W : (unsigned)(left * PLOT_W / span);
        date(c->ci.not_after, d, sizeof(d));
        clink__sb_printf(b, "<g class=\"tl-cert%s\"><title>", cls);
        snprintf(t, sizeof(t), "%s (%s%s%s, %s): expires %s", c->ci.subject, c->use, c->peer[0] ? " " : "", c->peer,
                 c->ci.kind == CLINK_CERT_CA             ? "ca"
                 : c->ci.kind == CLINK_CERT_INTERMEDIATE ? "intermediate"
                                                         : "own",
                 d);
        clink__sb_html(b, t);
        clink__sb_printf(b, "</title><text x=\"0\" y=\"%u\">", y + 11);
        char name[200];
        snprintf(t, sizeof(t), "%s %s%s%s", c->use, c->peer[0] ? c->peer : "", c->peer[0] ? " " : "", c->ci.subject);
        shorten(name, sizeof(name), t, 52);
        clink__sb_html(b, name);
        clink__sb_printf(b,
                         "</text><rect class=\"tl-bar\" x=\"%u\" y=\"%u\" width=\"%u\" height=\"6\"/>"
                         "<circle class=\"tl-mark\" cx=\"%u\" cy=\"%u\" r=\"4\"/>",
                         LABEL_W, y + 4, bar, LABEL_W + bar, y + 7);
        if (left <= 0) {
            snprintf(t, sizeof(t), "expired %s", d);
        } else if (left >= span && c->ci.not_after > s->now + span) {
            snprintf(t, sizeof(t), "\xe2\x86\x92 %s", d); /* past the axis */
        } else {
            snprintf(t, sizeof(t), "%lld d", (long long)(left / 86400));
        }
        clink__sb_printf(b, "<text x=\"%u\" y=\"%u\">", LABEL_W + bar + 7, y + 11);
        clink__sb_html(b, t);
        clink__sb_printf(b, "</text></g>");
    }
    clink__sb_printf(b, "</svg>\n");
    free(order);
}
