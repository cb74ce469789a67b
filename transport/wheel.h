/*
 * Per-worker call deadlines: a hashed timer wheel. A call starts and ends
 * with a list link and unlink instead of two heap operations; the price is
 * granularity: a deadline fires on the first loop turn whose clock read has
 * passed the end of its tick, so never early and at most one tick
 * (CLINK_WHEEL_TICK_NS) late, plus however long the loop was busy.
 *
 * A deadline is relative to the call's start, and the worker reads the clock
 * once per loop turn, not per call: a timer is added unstamped (it holds its
 * timeout), and the next clock read, which is later than the start, stamps
 * it. The worker stamps before it sleeps, so no timer waits unstamped.
 */
#ifndef CLINK_TRANSPORT_WHEEL_H
#define CLINK_TRANSPORT_WHEEL_H

#include <stdint.h>

#include "clink/transport.h"

#define CLINK_WHEEL_SHIFT   20 /* a tick is 2^20 ns: 1.048576 ms */
#define CLINK_WHEEL_TICK_NS (1ull << CLINK_WHEEL_SHIFT)
#define CLINK_WHEEL_SLOTS   1024 /* 1.07 s around; longer deadlines go round again */
#define CLINK_WHEEL_WORDS   (CLINK_WHEEL_SLOTS / 64)

struct clink__wheel {
    uint64_t cur;                                 /* the next tick to expire: all before it are done */
    uint64_t now;                                 /* the latest clock read it was given (ns) */
    struct clink__tlink unstamped;                /* added since the last stamp */
    uint64_t used[CLINK_WHEEL_WORDS];             /* a bit per slot that may hold a timer */
    struct clink__tlink slots[CLINK_WHEEL_SLOTS]; /* tick % slots: timers of that tick, or of later rounds */
};

void clink__wheel_init(struct clink__wheel *wh, uint64_t now_ns);

static inline int clink__wheel_armed(const struct clink__timer *t)
{
    return t->link.next != NULL;
}

/* Arm t to fire timeout_ns after now: after the next clink__wheel_stamp. t must not be armed. */
void clink__wheel_add(struct clink__wheel *wh, struct clink__timer *t, uint64_t timeout_ns);
/* Disarm t (no-op if it is not armed, or was handed out by clink__wheel_expire). */
void clink__wheel_del(struct clink__wheel *wh, struct clink__timer *t);

/* Give every unstamped timer its deadline from now_ns, a clock read taken after they were added. */
void clink__wheel_stamp(struct clink__wheel *wh, uint64_t now_ns);
static inline int clink__wheel_has_unstamped(const struct clink__wheel *wh)
{
    return wh->unstamped.next != &wh->unstamped;
}

/*
 * Move every timer whose deadline has passed at now_ns onto due (an
 * initialized list head, usually on the caller's stack). The caller pops
 * them one at a time (clink__wheel_pop) and fires each: a callback that
 * disarms another due timer takes it off due, so it does not fire.
 */
void clink__wheel_expire(struct clink__wheel *wh, uint64_t now_ns, struct clink__tlink *due);
struct clink__timer *clink__wheel_pop(struct clink__wheel *wh, struct clink__tlink *due);

/*
 * When the worker must next look: the end of the first tick whose slot holds
 * a timer; UINT64_MAX if none. A slot holding only later rounds' timers wakes
 * the worker once per round for nothing: calls waiting longer than 1.07 s
 * cost at most one wake-up per used slot per 1.07 s, against the heap's one
 * per deadline; cheaper than walking slot lists on every turn.
 */
uint64_t clink__wheel_next(const struct clink__wheel *wh);

static inline void clink__tlist_init(struct clink__tlink *h)
{
    h->next = h->prev = h;
}

#endif
