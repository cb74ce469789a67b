/*
 * Per-worker deadlines: a binary min-heap of timers embedded in their owners
 * (connections, the worker). The worker sleeps in io_uring until the
 * earliest one. Call deadlines, one per call, sit in a wheel (wheel.h).
 */
#ifndef CLINK_TRANSPORT_TIMER_H
#define CLINK_TRANSPORT_TIMER_H

#include <stddef.h>
#include <stdint.h>

#define CLINK_TIMER_NONE ((size_t)-1)

/*
 * struct clink__timer is defined in clink/transport.h (calls embed one):
 * link, its place in a wheel list (calls only); deadline_ns; idx, the
 * position in the heap or CLINK_TIMER_NONE; kind, what the owner is, which
 * the worker dispatches on.
 */
#include "clink/transport.h"

struct clink__timers {
    struct clink__timer **heap;
    size_t len, cap;
};

uint64_t clink__now_ns(void);

static inline void clink__timer_init(struct clink__timer *t, int kind)
{
    t->link.next = t->link.prev = NULL;
    t->deadline_ns = 0;
    t->idx = CLINK_TIMER_NONE;
    t->kind = kind;
}

/* Arm (or re-arm) t. Returns 0 or -1 (out of memory). */
int clink__timers_add(struct clink__timers *h, struct clink__timer *t, uint64_t deadline_ns);
void clink__timers_del(struct clink__timers *h, struct clink__timer *t);
/* Earliest timer or NULL. */
static inline struct clink__timer *clink__timers_min(const struct clink__timers *h)
{
    return h->len ? h->heap[0] : NULL;
}
void clink__timers_free(struct clink__timers *h);

#endif
