/*
 * Server-rendered SVG line charts (chart.h). A chart draws cols points per
 * series, each the average of its CLINK__SAMPLES / cols seconds (the highest
 * for a latency: a spike must show), the newest at the right edge, under an
 * axis whose top is the next round number above the highest point; a
 * stretch with no value (no call finished, or before sampling began) breaks
 * the line rather than drawing a zero that did not happen. The caption's
 * "now" is the last second alone, so it may lie above the axis top.
 */
#include <math.h> /* isnan, NAN: macros, no libm */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ops/chart.h"

#define TOP    12 /* the axis maximum's label above the plot */
#define BOTTOM 12 /* the time labels below it */

const char clink__chart_css[] =
    ".charts{display:flex;flex-wrap:wrap;gap:.5em 1.2em;margin-bottom:1em}"
    "figure.chart{margin:0;font-size:80%}figure.chart figcaption{max-width:24em}.charts figcaption{min-height:2.6em}"
    "svg.chart{background:#fafafa;border:1px solid #ddd;display:block}"
    "svg.chart text{font:9px sans-serif;fill:#666}"
    "svg.chart polyline{fill:none;stroke-width:1.2}"
    ".s0{stroke:#1f6fb4}.s1{stroke:#2a9d3a}.s2{stroke:#c0392b}"
    ".k0{color:#1f6fb4}.k1{color:#2a9d3a}.k2{color:#c0392b}";

void clink__chart_value(char *out, size_t cap, double v, enum clink__unit unit)
{
    if (isnan(v)) {
        snprintf(out, cap, "-");
        return;
    }
    if (unit == CLINK__UNIT_US) {
        if (v < 1000) {
            snprintf(out, cap, "%.0f \xc2\xb5s", v);
        } else if (v < 1e6) {
            snprintf(out, cap, "%.*f ms", v < 1e4 ? 1 : 0, v / 1e3);
        } else {
            snprintf(out, cap, "%.1f s", v / 1e6);
        }
        return;
    }
    static const char *const pre[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) {
        v /= 1000;
        i++;
    }
    const char *suffix = unit == CLINK__UNIT_BYTES_S ? "B/s" : "/s";
    const char *sp = unit == CLINK__UNIT_BYTES_S ? " " : "";
    snprintf(out, cap, "%.*f%s%s%s", v < 10 && (i > 0 || v != (double)(uint64_t)v) ? 1 : 0, v, sp, pre[i], suffix);
}

/* The least of 1, 2, 5 times a power of ten that is >= v (and >= 1): the axis maximum. */
static double nice_max(double v)
{
    double p = 1;
    while (p * 10 <= v) {
        p *= 10;
    }
    for (int m = 1; m <= 10; m = m == 1 ? 2 : m == 2 ? 5 : 10) {
        if (m * p >= v) {
            return m * p;
        }
    }
    return 10 * p;
}

/* Column c's value (c = cols - 1: the newest seconds); NaN when none of its seconds has one. */
static double column(const struct clink__samples *s, const struct clink__history *h, enum clink__series series,
                     unsigned per, unsigned cols, unsigned c, int use_max)
{
    double sum = 0, max = NAN;
    unsigned n = 0;
    for (unsigned j = 0; j < per; j++) {
        unsigned age = (cols - 1 - c) * per + j;
        if (age >= h->n) {
            break;
        }
        double v = clink__samples_at(s, h, series, age);
        if (!isnan(v)) {
            sum += v;
            max = isnan(max) || v > max ? v : max;
            n++;
        }
    }
    return n == 0 ? NAN : use_max ? max : sum / n;
}

void clink__chart_svg(struct clink__sbuf *b, const struct clink__samples *s, const struct clink__history *h,
                      const struct clink__chart *c)
{
    unsigned cols = c->cols, per = CLINK__SAMPLES / cols, dx = c->width / cols;
    double vals[3][CLINK__SAMPLES];
    double top = 0;
    unsigned nl = c->nlines < 3 ? c->nlines : 3;
    for (unsigned l = 0; l < nl; l++) {
        for (unsigned k = 0; k < cols; k++) {
            vals[l][k] = column(s, h, c->lines[l].series, per, cols, k, c->unit == CLINK__UNIT_US);
            top = !isnan(vals[l][k]) && vals[l][k] > top ? vals[l][k] : top;
        }
    }
    double axis = nice_max(top);
    char t[64];

    clink__sb_printf(b, "<figure class=\"chart\" id=\"");
    clink__sb_html(b, c->id);
    clink__sb_printf(b, "\"><figcaption title=\"");
    clink__sb_html(b, c->note);
    clink__sb_printf(b, "\"><strong>");
    clink__sb_html(b, c->title);
    clink__sb_printf(b, "</strong>: ");
    if (h->n == 0) {
        clink__sb_printf(b, "<span class=\"now\">no samples yet</span>");
    } else {
        clink__sb_printf(b, "now <span class=\"now\">");
        for (unsigned l = 0; l < nl; l++) {
            double v = clink__samples_at(s, h, c->lines[l].series, 0);
            if (isnan(v) && c->unit == CLINK__UNIT_US) {
                snprintf(t, sizeof(t), "no call finished");
            } else {
                clink__chart_value(t, sizeof(t), v, c->unit);
            }
            clink__sb_printf(b, "%s", l ? ", " : "");
            if (c->lines[l].label[0]) {
                clink__sb_printf(b, "<span class=\"k%u\">", l);
                clink__sb_html(b, c->lines[l].label);
                clink__sb_printf(b, "</span> ");
            }
            clink__sb_html(b, t);
        }
        clink__sb_printf(b, "</span>");
    }
    if (c->totals && h->n > 0) {
        if (h->n < 120) {
            clink__sb_printf(b, "; last %u s:", h->n);
        } else {
            clink__sb_printf(b, "; last %u min:", h->n / 60);
        }
        for (unsigned l = 0; l < nl; l++) {
            double sum = 0;
            for (unsigned k = 0; k < h->n; k++) {
                double v = clink__samples_at(s, h, c->lines[l].series, k);
                sum += isnan(v) ? 0 : v;
            }
            clink__sb_printf(b, "%s %.0f ", l ? "," : "", sum);
            clink__sb_html(b, c->lines[l].label);
        }
    }
    clink__sb_printf(b, "</figcaption>\n");

    unsigned w = c->width, hgt = c->height, plot = hgt - TOP - BOTTOM;
    clink__sb_printf(b,
                     "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%u\" "
                     "viewBox=\"0 0 %u %u\" role=\"img\" aria-label=\"",
                     w, hgt, w, hgt);
    clink__sb_html(b, c->title);
    clink__sb_printf(b, ", last 15 minutes\">");
    clink__chart_value(t, sizeof(t), axis, c->unit);
    clink__sb_printf(b, "<text x=\"2\" y=\"9\" class=\"axis-max\">");
    clink__sb_html(b, t);
    clink__sb_printf(b,
                     "</text><line x1=\"0\" y1=\"%u\" x2=\"%u\" y2=\"%u\" stroke=\"#ccc\"/>"
                     "<text x=\"2\" y=\"%u\">-15 min</text><text x=\"%u\" y=\"%u\" text-anchor=\"end\">now</text>",
                     TOP, w, TOP, hgt - 2, w - 2, hgt - 2);
    for (unsigned l = 0; l < nl; l++) {
        unsigned run = 0, last_x = 0, last_y = 0; /* points in the open polyline */
        for (unsigned k = 0; k <= cols; k++) {
            double v = k < cols ? vals[l][k] : NAN;
            if (isnan(v)) {
                if (run == 1) {
                    clink__sb_printf(b, " %u,%u", last_x + 2, last_y); /* one point alone: a dash, not nothing */
                }
                clink__sb_printf(b, "%s", run ? "\"/>" : "");
                run = 0;
                continue;
            }
            last_x = k * dx + dx / 2;
            last_y = TOP + plot - (unsigned)(v / axis * plot + 0.5); /* v >= 0, v <= axis */
            if (run++ == 0) {
                clink__sb_printf(b, "<polyline class=\"s%u\" points=\"%u,%u", l, last_x, last_y);
            } else {
                clink__sb_printf(b, " %u,%u", last_x, last_y);
            }
        }
    }
    clink__sb_printf(b, "</svg></figure>\n");
}
