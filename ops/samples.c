/*
 * The ring of per-second samples behind the ops page's charts (samples.h):
 * fixed arrays, filled from the differences of cumulative counters, so that
 * a late tick, a counter that restarted (a peer removed and added again) or
 * a peer that came and went costs no memory and draws no spike.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "ops/samples.h"

int clink__samples_new(struct clink__samples **out)
{
    struct clink__samples *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -CLINK_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return 0;
}

void clink__samples_free(struct clink__samples *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < CLINK__SAMPLED_PEERS; i++) {
        free(s->peers[i]);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

double clink__latency_p99_us(const struct clink_latency *d)
{
    uint64_t total = 0;
    for (unsigned b = 0; b < CLINK_LATENCY_BUCKETS; b++) {
        total += d->count[b];
    }
    if (total == 0) {
        return NAN;
    }
    uint64_t rank = total - total / 100,
             seen = 0; /* ceil(0.99 * total): the call 99% of the others are not slower than */
    for (unsigned b = 0; b < CLINK_LATENCY_BUCKETS; b++) {
        seen += d->count[b];
        if (seen >= rank) {
            return (double)clink_latency_bucket_us(b + 1); /* the bucket's upper bound: never flatters */
        }
    }
    return (double)clink_latency_bucket_us(CLINK_LATENCY_BUCKETS);
}

void clink__samples_begin(struct clink__samples *s, uint64_t now_ns, int64_t now_unix)
{
    pthread_mutex_lock(&s->mu);
    s->step = 0;
    s->elapsed_s = 0;
    if (s->last_ns != 0 && now_ns > s->last_ns) {
        uint64_t elapsed = now_ns - s->last_ns;
        uint64_t k = (elapsed + 500000000u) / 1000000000u;
        s->step = k == 0 ? 1 : k > CLINK__SAMPLES ? CLINK__SAMPLES : (unsigned)k;
        /*
         * A tick taken early (a test's) writes what its short interval
         * counted as that second's value, not a rate that would count its
         * events several times over: a window's sum stays about its count.
         */
        s->elapsed_s = elapsed < 1000000000u ? 1.0 : (double)elapsed / 1e9;
        s->head = (s->head + s->step) % CLINK__SAMPLES;
    }
    s->last_ns = now_ns;
    s->last_unix = now_unix;
    s->peers_untracked = 0;
}

static uint64_t diff(uint64_t now, uint64_t before)
{
    return now >= before ? now - before : 0; /* a counter that restarted counts from zero: no negative rate */
}

static void record(struct clink__samples *s, struct clink__history *h, const struct clink__reading *r)
{
    h->seen = 1;
    if (!h->has_last || s->step == 0) {
        h->last = *r;
        h->has_last = 1;
        return;
    }
    const struct clink__reading *a = &h->last;
    double per_s = 1.0 / s->elapsed_s;
    float v[CLINK__S_COUNT];
    v[CLINK__S_CALLS] = (float)((double)diff(r->calls, a->calls) * per_s);
    v[CLINK__S_BYTES_IN] = (float)((double)diff(r->bytes_in, a->bytes_in) * per_s);
    v[CLINK__S_BYTES_OUT] = (float)((double)diff(r->bytes_out, a->bytes_out) * per_s);
    v[CLINK__S_HS_FULL] = (float)((double)diff(r->hs_full, a->hs_full) * per_s);
    v[CLINK__S_HS_RESUMED] = (float)((double)diff(r->hs_resumed, a->hs_resumed) * per_s);
    v[CLINK__S_HS_FAILED] = (float)((double)diff(r->hs_failed, a->hs_failed) * per_s);
    struct clink_latency d;
    for (unsigned b = 0; b < CLINK_LATENCY_BUCKETS; b++) {
        d.count[b] = diff(r->latency.count[b], a->latency.count[b]);
    }
    v[CLINK__S_P99] = (float)clink__latency_p99_us(&d);
    /* A late tick: the seconds it missed get the same rates (their average), so the x axis stays in seconds. */
    for (unsigned j = 0; j < s->step; j++) {
        unsigned at = (s->head + CLINK__SAMPLES - j) % CLINK__SAMPLES;
        for (int k = 0; k < CLINK__S_COUNT; k++) {
            h->v[k][at] = v[k];
        }
    }
    h->n = h->n + s->step > CLINK__SAMPLES ? CLINK__SAMPLES : h->n + s->step;
    h->last = *r;
}

void clink__samples_node(struct clink__samples *s, const struct clink__reading *r)
{
    record(s, &s->node, r);
}

static struct clink__history *find(const struct clink__samples *s, const char *name)
{
    for (size_t i = 0; i < CLINK__SAMPLED_PEERS; i++) {
        if (s->peers[i] != NULL && s->peers[i]->name[0] != '\0' && strcmp(s->peers[i]->name, name) == 0) {
            return s->peers[i];
        }
    }
    return NULL;
}

const struct clink__history *clink__samples_find(const struct clink__samples *s, const char *name)
{
    return find(s, name);
}

void clink__samples_peer(struct clink__samples *s, const char *name, const struct clink__reading *r)
{
    struct clink__history *h = find(s, name);
    for (size_t i = 0; h == NULL && i < CLINK__SAMPLED_PEERS; i++) {
        if (s->peers[i] == NULL) {
            s->peers[i] = calloc(1, sizeof(*s->peers[i]));
            if (s->peers[i] == NULL) {
                break; /* out of memory: this peer is not charted this time */
            }
        }
        if (s->peers[i]->name[0] == '\0') {
            h = s->peers[i];
            memset(h, 0, sizeof(*h));
            snprintf(h->name, sizeof(h->name), "%s", name);
        }
    }
    if (h == NULL) {
        s->peers_untracked++;
        return;
    }
    record(s, h, r);
}

void clink__samples_end(struct clink__samples *s)
{
    s->node.seen = 0;
    for (size_t i = 0; i < CLINK__SAMPLED_PEERS; i++) {
        struct clink__history *h = s->peers[i];
        if (h != NULL) {
            if (!h->seen) {
                h->name[0] = '\0'; /* gone from the cluster: the slot (and its memory) waits for another peer */
            }
            h->seen = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

size_t clink__samples_bytes(const struct clink__samples *s)
{
    size_t n = sizeof(*s);
    for (size_t i = 0; i < CLINK__SAMPLED_PEERS; i++) {
        n += s->peers[i] != NULL ? sizeof(*s->peers[i]) : 0;
    }
    return n;
}
