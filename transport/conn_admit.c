/*
 * Handshake admission (storm control, docs/protocol.md): a worker runs at
 * most max_handshakes_per_worker handshakes at once per port (the node's,
 * the HTTPS port's); the others wait unread, and a holder too slow while
 * others wait is cut off.
 */
#include "transport/conn_int.h"

/*
 * Handshake slots (storm control, docs/protocol.md). Connections past the
 * per-worker limit wait unread, newest first: after a flood, the slot that
 * frees goes to whoever came last (most likely a real client behind it),
 * not to the oldest of the flood.
 */
static uint64_t hs_slot_time(const struct clink_node *n)
{
    return (uint64_t)n->opts.handshake_timeout_ms * 1000000ull / 4;
}

/* Which port's slots a connection takes: the HTTPS port's own, so that its storms spare the cluster's logins. */
static int port_of(const struct clink_conn *c)
{
    return c->proto == &clink__proto_https;
}

static void hs_take_slot(struct clink_conn *c)
{
    c->w->adm[port_of(c)].handshaking++;
    c->hs_counted = 1;
    c->hs_slot_ns = clink__now_ns();
}

static void hs_wait_push(struct clink_worker *w, struct clink_conn *c)
{
    struct clink_conn **head = &w->adm[port_of(c)].wait_head;
    atomic_fetch_add(&c->refs, 1);
    c->hs_prev = NULL;
    c->hs_next = *head;
    if (*head != NULL) {
        (*head)->hs_prev = c;
    }
    *head = c;
    c->hs_waiting = 1;
    if (w->hs_evict_timer.idx == CLINK_TIMER_NONE) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->hs_evict_timer, clink__now_ns() + hs_slot_time(w->node) / 2));
    }
}

static void hs_wait_unlink(struct clink_worker *w, struct clink_conn *c)
{
    if (c->hs_prev != NULL) {
        c->hs_prev->hs_next = c->hs_next;
    } else {
        w->adm[port_of(c)].wait_head = c->hs_next;
    }
    if (c->hs_next != NULL) {
        c->hs_next->hs_prev = c->hs_prev;
    }
    c->hs_next = c->hs_prev = NULL;
    c->hs_waiting = 0;
}

/* An accepted connection takes a handshake slot and starts reading, or waits unread for one. */
void clink__conn_admit(struct clink_conn *c)
{
    struct clink_worker *w = c->w;
    if (w->adm[port_of(c)].handshaking >= c->node->opts.max_handshakes_per_worker) {
        /* Storm control: read nothing from it until a handshake slot frees (its deadline still runs). */
        hs_wait_push(w, c);
        STAT_ADD(w, handshakes_deferred, 1);
        return;
    }
    hs_take_slot(c);
    clink__conn_arm_recv(c);
}

/* A server connection left its handshake (opened or failed): its slot goes to the newest one waiting. */
void clink__conn_hs_release(struct clink_conn *c)
{
    struct clink_worker *w = c->w;
    if (c->hs_waiting) {
        /* Closed while waiting (its deadline passed): it leaves the list now, not when its turn would come. */
        hs_wait_unlink(w, c);
        clink__conn_put(c);
        return;
    }
    if (!c->hs_counted) {
        return;
    }
    c->hs_counted = 0;
    int p = port_of(c);
    w->adm[p].handshaking--;
    while (w->adm[p].wait_head != NULL && w->adm[p].handshaking < c->node->opts.max_handshakes_per_worker) {
        struct clink_conn *n = w->adm[p].wait_head;
        hs_wait_unlink(w, n);
        hs_take_slot(n);
        clink__conn_arm_recv(n);
        clink__conn_put(n);
    }
}

/*
 * A slot holder that has not finished within a quarter of the handshake
 * timeout while others wait is cut off: a flood of connections that never
 * finish must not keep the slots until their own deadlines, or whoever
 * comes after them waits as long and times out too.
 */
void clink__conn_hs_evict(struct clink_worker *w)
{
    if (w->adm[0].wait_head == NULL && w->adm[1].wait_head == NULL) {
        return;
    }
    uint64_t now = clink__now_ns(), slot = hs_slot_time(w->node);
    /* Per port, one slot per connection waiting, oldest holder first: a slow holder nobody waits for stays. */
    for (int p = 0; p < 2; p++) {
        while (w->adm[p].wait_head != NULL) {
            struct clink_conn *oldest = NULL;
            for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
                /* (a holder admitted during this pass has hs_slot_ns > now: never expired) */
                if (c->hs_counted && port_of(c) == p && c->state < CS_CLOSING && c->hs_slot_ns + slot < now &&
                    (oldest == NULL || c->hs_slot_ns < oldest->hs_slot_ns)) {
                    oldest = c;
                }
            }
            if (oldest == NULL) {
                break;
            }
            /* close_now releases its slot to the newest waiting connection */
            clink__conn_fail(oldest, -CLINK_EHANDSHAKE_TIMEOUT,
                             "no complete opening handshake within %llu ms of its turn, while others waited",
                             (unsigned long long)(slot / 1000000));
        }
    }
    if (w->adm[0].wait_head != NULL || w->adm[1].wait_head != NULL) {
        CLINK_IGNORE(clink__timers_add(&w->timers, &w->hs_evict_timer, now + slot / 2));
    }
}
