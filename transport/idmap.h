/*
 * Map from a call id (u64, never 0) to its call: open addressing with
 * linear probing and backward-shift deletion (no tombstones), so a
 * connection's long life of inserts and deletes never degrades lookups.
 */
#ifndef CLINK_TRANSPORT_IDMAP_H
#define CLINK_TRANSPORT_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct clink__idmap_slot {
    uint64_t key; /* 0: empty */
    void *val;
};

struct clink__idmap {
    struct clink__idmap_slot *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t count;
};

void clink__idmap_init(struct clink__idmap *m);
void clink__idmap_free(struct clink__idmap *m);
/* Returns 0 or -1 (out of memory). key must be non-zero and absent. */
int clink__idmap_put(struct clink__idmap *m, uint64_t key, void *val);
void *clink__idmap_get(const struct clink__idmap *m, uint64_t key);
/* Remove and return the value, or NULL. */
void *clink__idmap_del(struct clink__idmap *m, uint64_t key);

/* Iterate: for (size_t i = 0; i <= m->mask && m->slots; i++) if (m->slots[i].key) ... */

#endif
