#include "transport/timer.h"

#include <stdlib.h>
#include <time.h>

uint64_t clink__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void place(struct clink__timers *h, size_t i, struct clink__timer *t)
{
    h->heap[i] = t;
    t->idx = i;
}

static void sift_up(struct clink__timers *h, size_t i)
{
    struct clink__timer *t = h->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->heap[p]->deadline_ns <= t->deadline_ns) {
            break;
        }
        place(h, i, h->heap[p]);
        i = p;
    }
    place(h, i, t);
}

static void sift_down(struct clink__timers *h, size_t i)
{
    struct clink__timer *t = h->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len) {
            break;
        }
        if (c + 1 < h->len && h->heap[c + 1]->deadline_ns < h->heap[c]->deadline_ns) {
            c++;
        }
        if (h->heap[c]->deadline_ns >= t->deadline_ns) {
            break;
        }
        place(h, i, h->heap[c]);
        i = c;
    }
    place(h, i, t);
}

int clink__timers_add(struct clink__timers *h, struct clink__timer *t, uint64_t deadline_ns)
{
    if (t->idx != CLINK_TIMER_NONE) {
        clink__timers_del(h, t);
    }
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        struct clink__timer **p = realloc(h->heap, cap * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        h->heap = p;
        h->cap = cap;
    }
    t->deadline_ns = deadline_ns;
    place(h, h->len++, t);
    sift_up(h, t->idx);
    return 0;
}

void clink__timers_del(struct clink__timers *h, struct clink__timer *t)
{
    size_t i = t->idx;
    if (i == CLINK_TIMER_NONE) {
        return;
    }
    t->idx = CLINK_TIMER_NONE;
    struct clink__timer *last = h->heap[--h->len];
    if (i == h->len) {
        return;
    }
    place(h, i, last);
    sift_down(h, i);
    sift_up(h, last->idx);
}

void clink__timers_free(struct clink__timers *h)
{
    free(h->heap);
    h->heap = NULL;
    h->len = h->cap = 0;
}
