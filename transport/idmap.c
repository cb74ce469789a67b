#include "transport/idmap.h"

#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t mask)
{
    /* Ids are sequential: mix them so neighbours do not cluster (fmix64 from MurmurHash3). */
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & mask;
}

void clink__idmap_init(struct clink__idmap *m)
{
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

void clink__idmap_free(struct clink__idmap *m)
{
    free(m->slots);
    clink__idmap_init(m);
}

static int grow(struct clink__idmap *m)
{
    size_t cap = m->slots ? (m->mask + 1) * 2 : 64;
    struct clink__idmap_slot *s = calloc(cap, sizeof(*s));
    if (s == NULL) {
        return -1;
    }
    struct clink__idmap old = *m;
    m->slots = s;
    m->mask = cap - 1;
    m->count = 0;
    for (size_t i = 0; old.slots && i <= old.mask; i++) {
        if (old.slots[i].key != 0) {
            size_t j = slot_of(old.slots[i].key, m->mask);
            while (m->slots[j].key != 0) {
                j = (j + 1) & m->mask;
            }
            m->slots[j] = old.slots[i];
            m->count++;
        }
    }
    free(old.slots);
    return 0;
}

int clink__idmap_put(struct clink__idmap *m, uint64_t key, void *val)
{
    /* Keep the load under 1/2 so probes stay short. */
    if (m->slots == NULL || (m->count + 1) * 2 > m->mask + 1) {
        if (grow(m) < 0) {
            return -1;
        }
    }
    size_t i = slot_of(key, m->mask);
    while (m->slots[i].key != 0) {
        i = (i + 1) & m->mask;
    }
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->count++;
    return 0;
}

void *clink__idmap_get(const struct clink__idmap *m, uint64_t key)
{
    if (m->slots == NULL) {
        return NULL;
    }
    for (size_t i = slot_of(key, m->mask);; i = (i + 1) & m->mask) {
        if (m->slots[i].key == key) {
            return m->slots[i].val;
        }
        if (m->slots[i].key == 0) {
            return NULL;
        }
    }
}

void *clink__idmap_del(struct clink__idmap *m, uint64_t key)
{
    if (m->slots == NULL) {
        return NULL;
    }
    size_t i = slot_of(key, m->mask);
    while (m->slots[i].key != key) {
        if (m->slots[i].key == 0) {
            return NULL;
        }
        i = (i + 1) & m->mask;
    }
    void *val = m->slots[i].val;
    /* Backward-shift: move later members of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & m->mask; m->slots[j].key != 0; j = (j + 1) & m->mask) {
        size_t home = slot_of(m->slots[j].key, m->mask);
        /* j may fill the hole if its home is not in (hole, j] cyclically. */
        int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].key = 0;
    m->slots[hole].val = NULL;
    m->count--;
    return val;
}
