/*
 * Growable byte queue used for socket, TLS and frame buffers: bytes are
 * appended at tail and consumed from head. Internal to clink.
 */
#ifndef CLINK_COMMON_BYTES_H
#define CLINK_COMMON_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct clink__bytes {
    uint8_t *base;
    size_t head, tail, cap;
    /*
     * Optional: a running total of cap over a set of buffers (a worker's
     * connections: its memory budget), updated with relaxed atomics on the
     * rare grow, trim and free, never per byte.
     */
    size_t *acct;
};

static inline void clink__bytes_acct(const struct clink__bytes *b, size_t old_cap)
{
    if (b->acct != NULL && b->cap > old_cap) {
        __atomic_fetch_add(b->acct, b->cap - old_cap, __ATOMIC_RELAXED);
    } else if (b->acct != NULL && b->cap < old_cap) {
        __atomic_fetch_sub(b->acct, old_cap - b->cap, __ATOMIC_RELAXED);
    }
}

static inline size_t clink__bytes_len(const struct clink__bytes *b)
{
    return b->tail - b->head;
}

static inline uint8_t *clink__bytes_data(const struct clink__bytes *b)
{
    return b->base + b->head;
}

/* Make room for n more bytes at tail. Returns 0 or -1 (out of memory). */
static inline int clink__bytes_reserve(struct clink__bytes *b, size_t n)
{
    if (b->cap - b->tail >= n) {
        return 0;
    }
    /* Slide down first: cheap when the consumed prefix is most of the buffer. */
    if (b->head > 0) {
        size_t len = b->tail - b->head;
        memmove(b->base, b->base + b->head, len);
        b->head = 0;
        b->tail = len;
        if (b->cap - b->tail >= n) {
            return 0;
        }
    }
    size_t want = b->cap ? b->cap : n <= 512 ? 512 : 4096; /* small: an idle connection's read buffer */
    while (want - b->tail < n) {
        want *= 2;
    }
    uint8_t *p = realloc(b->base, want);
    if (p == NULL) {
        return -1;
    }
    b->base = p;
    size_t old = b->cap;
    b->cap = want;
    clink__bytes_acct(b, old);
    return 0;
}

static inline int clink__bytes_append(struct clink__bytes *b, const void *src, size_t n)
{
    if (clink__bytes_reserve(b, n) < 0) {
        return -1;
    }
    memcpy(b->base + b->tail, src, n);
    b->tail += n;
    return 0;
}

static inline void clink__bytes_consume(struct clink__bytes *b, size_t n)
{
    b->head += n;
    if (b->head == b->tail) {
        b->head = b->tail = 0;
    }
}

/* Drop a large idle buffer so an idle connection does not pin a burst's memory. */
static inline void clink__bytes_trim(struct clink__bytes *b, size_t keep)
{
    if (b->head == b->tail && b->cap > keep) {
        size_t old = b->cap;
        free(b->base);
        b->base = NULL;
        b->head = b->tail = b->cap = 0;
        clink__bytes_acct(b, old);
    }
}

static inline void clink__bytes_free(struct clink__bytes *b)
{
    size_t old = b->cap;
    free(b->base);
    b->base = NULL;
    b->head = b->tail = b->cap = 0;
    clink__bytes_acct(b, old);
}

#endif
