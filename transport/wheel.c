/*
 * The call deadline wheel (see wheel.h). Slot lists are circular with their
 * head in the wheel, so a timer unlinks itself without knowing its slot; a
 * slot's bit is cleared when its list empties, so an idle worker does not
 * wake for deadlines of calls that already ended.
 */
#include "transport/wheel.h"

#include <stddef.h>

#define MASK (CLINK_WHEEL_SLOTS - 1)

void clink__wheel_init(struct clink__wheel *wh, uint64_t now_ns)
{
    wh->cur = now_ns >> CLINK_WHEEL_SHIFT;
    wh->now = now_ns;
    clink__tlist_init(&wh->unstamped);
    for (size_t i = 0; i < CLINK_WHEEL_WORDS; i++) {
        wh->used[i] = 0;
    }
    for (size_t i = 0; i < CLINK_WHEEL_SLOTS; i++) {
        clink__tlist_init(&wh->slots[i]);
    }
}

static void link_tail(struct clink__tlink *h, struct clink__tlink *l)
{
    l->prev = h->prev;
    l->next = h;
    h->prev->next = l;
    h->prev = l;
}

/* Unlink l; if that emptied a slot, clear its bit. */
static void unlink_one(struct clink__wheel *wh, struct clink__tlink *l)
{
    struct clink__tlink *p = l->prev;
    p->next = l->next;
    l->next->prev = p;
    l->next = l->prev = NULL;
    uintptr_t off = (uintptr_t)p - (uintptr_t)wh->slots;
    if (p->next == p && off < sizeof(wh->slots)) {
        size_t i = off / sizeof(wh->slots[0]);
        wh->used[i / 64] &= ~(1ull << (i % 64));
    }
}

void clink__wheel_add(struct clink__wheel *wh, struct clink__timer *t, uint64_t timeout_ns)
{
    t->deadline_ns = timeout_ns; /* relative until stamped */
    link_tail(&wh->unstamped, &t->link);
}

void clink__wheel_del(struct clink__wheel *wh, struct clink__timer *t)
{
    if (t->link.next != NULL) {
        unlink_one(wh, &t->link);
    }
}

static void place(struct clink__wheel *wh, struct clink__timer *t)
{
    size_t i = (size_t)(t->deadline_ns >> CLINK_WHEEL_SHIFT) & MASK;
    link_tail(&wh->slots[i], &t->link);
    wh->used[i / 64] |= 1ull << (i % 64);
}

void clink__wheel_stamp(struct clink__wheel *wh, uint64_t now_ns)
{
    if (now_ns > wh->now) {
        wh->now = now_ns;
    }
    while (wh->unstamped.next != &wh->unstamped) {
        struct clink__timer *t = (struct clink__timer *)wh->unstamped.next;
        unlink_one(wh, &t->link);
        /* Its tick is at or after now's, and cur never passes now's tick: it lands ahead of the hand. */
        t->deadline_ns += wh->now;
        place(wh, t);
    }
}

/* Move the timers of tick `tick` (its slot also holds later rounds', which stay) to due. */
static void expire_tick(struct clink__wheel *wh, uint64_t tick, struct clink__tlink *due)
{
    size_t i = (size_t)tick & MASK;
    if (!(wh->used[i / 64] & (1ull << (i % 64)))) {
        return;
    }
    struct clink__tlink *h = &wh->slots[i];
    for (struct clink__tlink *l = h->next, *next; l != h; l = next) {
        next = l->next;
        if ((((struct clink__timer *)l)->deadline_ns >> CLINK_WHEEL_SHIFT) <= tick) {
            unlink_one(wh, l);
            link_tail(due, l);
        }
    }
}

static int empty(const struct clink__wheel *wh)
{
    for (size_t i = 0; i < CLINK_WHEEL_WORDS; i++) {
        if (wh->used[i] != 0) {
            return 0;
        }
    }
    return 1;
}

void clink__wheel_expire(struct clink__wheel *wh, uint64_t now_ns, struct clink__tlink *due)
{
    if (now_ns > wh->now) {
        wh->now = now_ns;
    }
    /* A tick is done once the clock has passed its end: every deadline in it is behind now. */
    uint64_t nowtick = wh->now >> CLINK_WHEEL_SHIFT;
    if (empty(wh)) {
        wh->cur = nowtick; /* an idle worker may sleep for hours: nothing to walk */
        return;
    }
    /*
     * Tick by tick, so that timers come out in deadline order even after a
     * turn longer than a round (the worker sleeps no longer than the first
     * used slot, so that is a busy turn, and rare).
     */
    for (; wh->cur < nowtick; wh->cur++) {
        expire_tick(wh, wh->cur, due);
    }
}

struct clink__timer *clink__wheel_pop(struct clink__wheel *wh, struct clink__tlink *due)
{
    (void)wh;
    struct clink__tlink *l = due->next;
    if (l == due) {
        return NULL;
    }
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->next = l->prev = NULL;
    return (struct clink__timer *)l;
}

uint64_t clink__wheel_next(const struct clink__wheel *wh)
{
    /* Slots from the hand onwards, in tick order: the first set bit is the earliest tick that may fire. */
    for (uint64_t k = 0; k < CLINK_WHEEL_SLOTS;) {
        size_t i = (size_t)(wh->cur + k) & MASK;
        uint64_t word = wh->used[i / 64] >> (i % 64);
        if (word != 0) {
            uint64_t tick = wh->cur + k + (uint64_t)__builtin_ctzll(word);
            return (tick + 1) << CLINK_WHEEL_SHIFT;
        }
        k += 64 - i % 64;
    }
    return UINT64_MAX;
}
