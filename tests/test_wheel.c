/*
 * The call deadline wheel on a clock the test drives: timers fire in tick
 * order, never before their deadline, at most one tick after it, exactly
 * once; cancelled ones never fire; the sleep it asks for is never later than
 * the earliest deadline.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "transport/wheel.h"

#define MS   1000000ull
#define TICK CLINK_WHEEL_TICK_NS

static struct clink__wheel *new_wheel(uint64_t now)
{
    struct clink__wheel *wh = malloc(sizeof(*wh));
    cr_assert_not_null(wh);
    clink__wheel_init(wh, now);
    return wh;
}

static void arm(struct clink__wheel *wh, struct clink__timer *t, uint64_t timeout_ns)
{
    t->link.next = t->link.prev = NULL;
    t->kind = 0;
    clink__wheel_add(wh, t, timeout_ns);
}

/* Expire at now; every due timer records now as its firing time (kind counts firings). */
static unsigned expire_at(struct clink__wheel *wh, uint64_t now, uint64_t *fired_at, struct clink__timer *base,
                          uint64_t *last_tick)
{
    struct clink__tlink due;
    clink__tlist_init(&due);
    clink__wheel_expire(wh, now, &due);
    unsigned n = 0;
    struct clink__timer *t;
    while ((t = clink__wheel_pop(wh, &due)) != NULL) {
        uint64_t tick = t->deadline_ns >> CLINK_WHEEL_SHIFT;
        cr_assert_geq(tick, *last_tick, "fired out of tick order");
        *last_tick = tick;
        fired_at[t - base] = now;
        t->kind++;
        n++;
    }
    return n;
}

Test(wheel, fires_in_order_never_early_at_most_one_tick_late)
{
    uint64_t t0 = 5000 * MS + 12345;
    struct clink__wheel *wh = new_wheel(t0);
    enum { N = 2000 };
    struct clink__timer *ts = calloc(N, sizeof(*ts));
    uint64_t *fired = calloc(N, sizeof(*fired));
    srand(7);
    for (int i = 0; i < N; i++) {
        arm(wh, &ts[i], 1 + (uint64_t)rand() % (300 * MS));
    }

    clink__wheel_stamp(wh, t0);
    uint64_t last_tick = 0, step = 37 * 1000; /* 37 us: the test's loop turn */
    unsigned total = 0;
    for (uint64_t now = t0; now < t0 + 400 * MS; now += step) {
        total += expire_at(wh, now, fired, ts, &last_tick);
    }

    cr_assert_eq(total, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ts[i].kind, 1, "timer %d fired %d times", i, ts[i].kind);
        cr_assert_geq(fired[i], ts[i].deadline_ns, "timer %d fired early", i);
        cr_assert_leq(fired[i] - ts[i].deadline_ns, TICK + step, "timer %d fired %llu ns late", i,
                      (unsigned long long)(fired[i] - ts[i].deadline_ns));
        cr_assert(!clink__wheel_armed(&ts[i]));
    }
    cr_assert_eq(clink__wheel_next(wh), UINT64_MAX);
    free(fired);
    free(ts);
    free(wh);
}

Test(wheel, deadline_counts_from_the_stamp_not_the_add)
{
    uint64_t t0 = 1000 * MS;
    struct clink__wheel *wh = new_wheel(t0);
    struct clink__timer t;
    uint64_t fired[1] = {0}, last = 0;
    arm(wh, &t, 10 * MS);

    /* Added at t0, but the first clock read after the add is t0 + 50 ms: the deadline is from that read. */
    cr_assert_eq(expire_at(wh, t0 + 50 * MS, fired, &t, &last), 0, "an unstamped timer fired");
    clink__wheel_stamp(wh, t0 + 50 * MS);

    cr_assert_eq(t.deadline_ns, t0 + 60 * MS);
    cr_assert_eq(expire_at(wh, t0 + 60 * MS - 1, fired, &t, &last), 0);
    cr_assert_eq(expire_at(wh, t0 + 60 * MS + TICK, fired, &t, &last), 1);
    free(wh);
}

Test(wheel, cancelled_timers_never_fire)
{
    uint64_t t0 = 77 * MS;
    struct clink__wheel *wh = new_wheel(t0);
    uint64_t fired[3] = {0}, last = 0;
    struct clink__timer *all = calloc(3, sizeof(*all));
    arm(wh, &all[0], 5 * MS);
    arm(wh, &all[1], 5 * MS);
    arm(wh, &all[2], 5 * MS);
    clink__wheel_stamp(wh, t0);

    clink__wheel_del(wh, &all[1]);
    clink__wheel_del(wh, &all[1]); /* twice: a no-op */

    cr_assert(!clink__wheel_armed(&all[1]));
    cr_assert_eq(expire_at(wh, t0 + 20 * MS, fired, all, &last), 2);
    cr_assert_eq(all[0].kind, 1);
    cr_assert_eq(all[1].kind, 0);
    cr_assert_eq(all[2].kind, 1);
    free(all);
    free(wh);
}

Test(wheel, a_due_timer_cancelled_by_an_earlier_one_does_not_fire)
{
    uint64_t t0 = 3 * MS;
    struct clink__wheel *wh = new_wheel(t0);
    struct clink__timer t[2];
    arm(wh, &t[0], 2 * MS);
    arm(wh, &t[1], 2 * MS);
    clink__wheel_stamp(wh, t0);
    struct clink__tlink due;
    clink__tlist_init(&due);

    clink__wheel_expire(wh, t0 + 10 * MS, &due);
    struct clink__timer *first = clink__wheel_pop(wh, &due);
    clink__wheel_del(wh, first == &t[0] ? &t[1] : &t[0]); /* what a connection failing in a callback does */

    cr_assert_not_null(first);
    cr_assert_null(clink__wheel_pop(wh, &due));
    cr_assert_eq(clink__wheel_next(wh), UINT64_MAX);
    free(wh);
}

Test(wheel, many_timers_over_several_rounds)
{
    uint64_t t0 = 123456789;
    struct clink__wheel *wh = new_wheel(t0);
    enum { N = 100000 };
    struct clink__timer *ts = calloc(N, sizeof(*ts));
    uint64_t *fired = calloc(N, sizeof(*fired));
    srand(11);
    for (int i = 0; i < N; i++) {
        arm(wh, &ts[i], 1 + (uint64_t)rand() % (5000 * MS)); /* up to ~5 rounds of the wheel */
    }
    clink__wheel_stamp(wh, t0);
    for (int i = 0; i < N; i += 3) {
        clink__wheel_del(wh, &ts[i]);
    }

    uint64_t last = 0, now = t0;
    unsigned total = 0;
    while (now < t0 + 5200 * MS) {
        /* Sleep as the worker would: until the wheel's next wake-up, or a long turn. */
        uint64_t next = clink__wheel_next(wh);
        cr_assert_gt(next, now);
        now = next == UINT64_MAX ? now + 100 * MS : next;
        total += expire_at(wh, now, fired, ts, &last);
    }

    cr_assert_eq(total, N - (N + 2) / 3);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(ts[i].kind, i % 3 == 0 ? 0 : 1, "timer %d fired %d times", i, ts[i].kind);
        if (i % 3 != 0) {
            cr_assert_geq(fired[i], ts[i].deadline_ns, "timer %d fired early", i);
            cr_assert_leq(fired[i] - ts[i].deadline_ns, TICK, "timer %d fired late", i);
        }
    }
    free(fired);
    free(ts);
    free(wh);
}

Test(wheel, a_long_sleep_fires_everything_due_once)
{
    uint64_t t0 = 9 * MS;
    struct clink__wheel *wh = new_wheel(t0);
    enum { N = 3000 };
    struct clink__timer *ts = calloc(N, sizeof(*ts));
    uint64_t *fired = calloc(N, sizeof(*fired));
    for (int i = 0; i < N; i++) {
        arm(wh, &ts[i], (uint64_t)(i + 1) * MS); /* 1 ms .. 3 s */
    }
    clink__wheel_stamp(wh, t0);
    uint64_t last = 0;

    /* 2 s later in one step (more than a round): everything due fires, the rest waits. */
    unsigned n = expire_at(wh, t0 + 2000 * MS, fired, ts, &last);

    for (int i = 0; i < N; i++) {
        int due = ts[i].deadline_ns < ((t0 + 2000 * MS) >> CLINK_WHEEL_SHIFT << CLINK_WHEEL_SHIFT);
        cr_assert_eq(ts[i].kind, due, "timer %d", i);
        if (!due) {
            cr_assert_geq(ts[i].deadline_ns, t0 + 2000 * MS - TICK);
        }
    }
    cr_assert_gt(n, 1900);
    last = 0;
    cr_assert_eq(n + expire_at(wh, t0 + 4000 * MS, fired, ts, &last), N);
    free(fired);
    free(ts);
    free(wh);
}

Test(wheel, next_wakeup_is_never_after_the_earliest_deadline)
{
    uint64_t t0 = 40 * MS + 5;
    struct clink__wheel *wh = new_wheel(t0);
    struct clink__timer a, b;
    cr_assert_eq(clink__wheel_next(wh), UINT64_MAX);
    arm(wh, &a, 30 * MS);
    arm(wh, &b, 3 * MS);
    clink__wheel_stamp(wh, t0);

    uint64_t next = clink__wheel_next(wh);

    cr_assert_geq(next, b.deadline_ns);
    cr_assert_leq(next, b.deadline_ns + TICK);
    clink__wheel_del(wh, &b);
    next = clink__wheel_next(wh);
    cr_assert_geq(next, a.deadline_ns);
    cr_assert_leq(next, a.deadline_ns + TICK);
    clink__wheel_del(wh, &a);
    cr_assert_eq(clink__wheel_next(wh), UINT64_MAX, "an emptied slot must not wake the worker");
    free(wh);
}
