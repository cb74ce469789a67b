/*
 * Small server-rendered SVG charts for the ops page (chart.c): one chart per
 * metric, a polyline per series over the last 15 minutes, its axis maximum
 * labelled and the current value in words. No script, no outside resource:
 * inline SVG is part of the document, which the page's Content-Security-Policy
 * (default-src 'none'; style-src 'unsafe-inline') allows; colours come from
 * the page's <style>.
 */
#ifndef CLINK_OPS_CHART_H
#define CLINK_OPS_CHART_H

#include "ops/ops_int.h"
#include "ops/samples.h"

enum clink__unit {
    CLINK__UNIT_PER_S,   /* a count per second */
    CLINK__UNIT_BYTES_S, /* bytes per second */
    CLINK__UNIT_US,      /* a latency in microseconds */
};

struct clink__chart_line {
    const char *label; /* in the caption; "" for a chart of one line */
    enum clink__series series;
};

struct clink__chart {
    const char *id;    /* the <figure>'s id (HTML-escaped) */
    const char *title; /* "Calls/s" (escaped) */
    const char *note;  /* what exactly it measures, shown as the chart's tooltip (escaped) */
    enum clink__unit unit;
    const struct clink__chart_line *lines; /* up to 3, drawn in classes s0, s1, s2 */
    unsigned nlines;
    unsigned width;  /* pixels, a multiple of cols */
    unsigned height; /* pixels, the axis labels included */
    unsigned cols;   /* points per line: CLINK__SAMPLES / cols seconds each (a divisor of CLINK__SAMPLES) */
    int totals;      /* say each line's total over the window too (handshakes) */
};

/* The chart of history h (a ring of s, under its mutex) into b: a <figure> with an <svg> and its caption. */
void clink__chart_svg(struct clink__sbuf *b, const struct clink__samples *s, const struct clink__history *h,
                      const struct clink__chart *c);

/* A value in words with its unit: "1.2k/s", "3.4 MB/s", "180 µs"; "-" for NaN. */
void clink__chart_value(char *out, size_t cap, double v, enum clink__unit unit);

/* The CSS the charts use (the page puts it in its <style>). */
extern const char clink__chart_css[];

#endif
