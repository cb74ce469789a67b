/*
 * The failed-login throttle (auth/throttle.h). Two fixed tables under one
 * mutex: counts per user and per source, and the pairs that have logged in
 * before (each with its own count). Logins are not the data path: one
 * short critical section before and one after a password check.
 */
#include "auth/throttle.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX (2 + CLINK_USER_MAX + 1 + 48)

struct entry {
    char key[KEY_MAX]; /* "u" user, "s" source, or user "\n" source in the pairs' table */
    uint64_t hash;
    uint32_t failures;
    int32_t hnext;        /* hash chain, or the free list */
    int32_t newer, older; /* recency list */
    uint64_t wait_until;  /* no password checked before (ns, CLOCK_MONOTONIC) */
    uint64_t touched;
};

struct table {
    struct entry *e;
    uint32_t cap;
    int32_t *heads;
    uint32_t mask;
    int32_t free_list;
    int32_t newest, oldest;
    uint32_t used;
};

struct clink__throttle {
    pthread_mutex_t mu;
    struct clink_login_throttle o;
    uint64_t seed;
    struct table counts, pairs;
    struct entry overflow; /* shared by whoever found no room in counts */
    struct clink_login_stats st;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* FNV-1a with a secret start: names come from the network, and chains must not be made long on purpose. */
/*
 * Time since then, never negative. The clock is read under the mutex, so
 * stamps only grow; this guards the forgetting rules anyway, since an
 * unsigned difference that wrapped would make a fresh count look forgotten.
 */
static uint64_t since(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

static uint64_t hash_key(const struct clink__throttle *t, const char *k)
{
    uint64_t h = 1469598103934665603ull ^ t->seed;
    for (; *k; k++) {
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static int table_init(struct table *tb, uint32_t cap)
{
    uint32_t nh = 16;
    while (nh < 2 * cap) {
        nh <<= 1;
    }
    tb->e = calloc(cap, sizeof(*tb->e));
    tb->heads = malloc(nh * sizeof(*tb->heads));
    if (tb->e == NULL || tb->heads == NULL) {
        return -CLINK_ENOMEM;
    }
    tb->cap = cap;
    tb->mask = nh - 1;
    for (uint32_t i = 0; i < nh; i++) {
        tb->heads[i] = -1;
    }
    for (uint32_t i = 0; i < cap; i++) {
        tb->e[i].hnext = i + 1 < cap ? (int32_t)i + 1 : -1;
    }
    tb->free_list = 0;
    tb->newest = tb->oldest = -1;
    return 0;
}

static void table_free(struct table *tb)
{
    free(tb->e);
    free(tb->heads);
}

static void unlink_recency(struct table *tb, int32_t i)
{
    struct entry *x = &tb->e[i];
    if (x->newer >= 0) {
        tb->e[x->newer].older = x->older;
    } else {
        tb->newest = x->older;
    }
    if (x->older >= 0) {
        tb->e[x->older].newer = x->newer;
    } else {
        tb->oldest = x->newer;
    }
}

static void push_newest(struct table *tb, int32_t i)
{
    tb->e[i].newer = -1;
    tb->e[i].older = tb->newest;
    if (tb->newest >= 0) {
        tb->e[tb->newest].newer = i;
    }
    tb->newest = i;
    if (tb->oldest < 0) {
        tb->oldest = i;
    }
}

static void touch(struct table *tb, int32_t i, uint64_t now)
{
    tb->e[i].touched = now;
    if (tb->newest != i) {
        unlink_recency(tb, i);
        push_newest(tb, i);
    }
}

static struct entry *find(struct table *tb, const char *key, uint64_t h)
{
    for (int32_t i = tb->heads[h & tb->mask]; i >= 0; i = tb->e[i].hnext) {
        if (tb->e[i].hash == h && strcmp(tb->e[i].key, key) == 0) {
            return &tb->e[i];
        }
    }
    return NULL;
}

static void unhash(struct table *tb, int32_t i)
{
    int32_t *p = &tb->heads[tb->e[i].hash & tb->mask];
    while (*p != i) {
        p = &tb->e[*p].hnext;
    }
    *p = tb->e[i].hnext;
}

/*
 * A new entry for key: a free one, else the one left alone longest if it
 * may go (any pair may; a count only once forgotten), else NULL.
 */
static struct entry *insert(struct table *tb, const char *key, uint64_t h, uint64_t now, uint64_t forget_ns)
{
    int32_t i = tb->free_list;
    if (i >= 0) {
        tb->free_list = tb->e[i].hnext;
        tb->used++;
    } else {
        i = tb->oldest;
        if (i < 0 || (forget_ns != 0 && since(now, tb->e[i].touched) < forget_ns)) {
            return NULL;
        }
        unhash(tb, i);
        unlink_recency(tb, i);
    }
    struct entry *x = &tb->e[i];
    memset(x, 0, sizeof(*x));
    snprintf(x->key, sizeof(x->key), "%s", key);
    x->hash = h;
    x->hnext = tb->heads[h & tb->mask];
    tb->heads[h & tb->mask] = i;
    push_newest(tb, i);
    x->touched = now;
    return x;
}

static struct clink_login_throttle with_defaults(const struct clink_login_throttle *opts)
{
    struct clink_login_throttle o = opts ? *opts : (struct clink_login_throttle){0};
    o.free_failures = o.free_failures ? o.free_failures : 10;
    o.delay_step_ms = o.delay_step_ms ? o.delay_step_ms : 100;
    o.max_delay_ms = o.max_delay_ms ? o.max_delay_ms : 10000;
    o.forget_s = o.forget_s ? o.forget_s : 600;
    o.entries = o.entries ? o.entries : 4096;
    o.entries = o.entries < 16 ? 16 : o.entries > (1u << 24) ? 1u << 24 : o.entries;
    return o;
}

int clink__throttle_configure(struct clink__throttle *t, const struct clink_login_throttle *opts)
{
    struct clink_login_throttle o = with_defaults(opts);
    struct table counts = {0}, pairs = {0};
    if (table_init(&counts, o.entries) < 0 || table_init(&pairs, o.entries / 4 < 16 ? 16 : o.entries / 4) < 0) {
        table_free(&counts);
        table_free(&pairs);
        return -CLINK_ENOMEM;
    }
    pthread_mutex_lock(&t->mu);
    struct table old_counts = t->counts, old_pairs = t->pairs;
    t->o = o;
    t->counts = counts;
    t->pairs = pairs;
    memset(&t->overflow, 0, sizeof(t->overflow));
    pthread_mutex_unlock(&t->mu);
    table_free(&old_counts);
    table_free(&old_pairs);
    return 0;
}

struct clink__throttle *clink__throttle_new(const struct clink_login_throttle *opts)
{
    struct clink__throttle *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    if (RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1 || clink__throttle_configure(t, opts) < 0) {
        clink__throttle_free(t);
        return NULL;
    }
    return t;
}

void clink__throttle_free(struct clink__throttle *t)
{
    if (t == NULL) {
        return;
    }
    pthread_mutex_destroy(&t->mu);
    table_free(&t->counts);
    table_free(&t->pairs);
    free(t);
}

/* The source as counted: an IPv4 address whole, an IPv6 one by its /64 (one host holds a whole /64). */
static void source_of(const char *host, char *out, size_t cap)
{
    unsigned char a[16];
    if (strchr(host, ':') != NULL && inet_pton(AF_INET6, host, a) == 1) {
        memset(a + 8, 0, 8);
        if (inet_ntop(AF_INET6, a, out, (socklen_t)cap) != NULL) {
            return;
        }
    }
    snprintf(out, cap, "%.47s", host);
}

static int waiting(const struct entry *x, uint64_t now)
{
    return x->wait_until > now;
}

static void charge(struct clink__throttle *t, struct entry *x, uint64_t now)
{
    x->failures++;
    if (x->failures > t->o.free_failures) {
        uint64_t ms = (uint64_t)t->o.delay_step_ms * (x->failures - t->o.free_failures);
        x->wait_until = now + (ms > t->o.max_delay_ms ? t->o.max_delay_ms : ms) * 1000000ull;
    }
}

/* Take back one charge: its failure, and the wait it set unless a later failure has set another since. */
static void refund(struct entry *x, uint64_t before, uint64_t after)
{
    x->failures -= x->failures > 0;
    if (x->wait_until == after) {
        x->wait_until = before;
    }
}

static void touch_count(struct clink__throttle *t, struct entry *x, uint64_t now)
{
    if (x == &t->overflow) {
        x->touched = now;
    } else {
        touch(&t->counts, (int32_t)(x - t->counts.e), now);
    }
}

/*
 * The count for key, touched: its entry (started over if forgotten), or the
 * shared overflow entry. Touched here, before the next lookup, so that the
 * user's entry cannot be the oldest one the source's insert takes.
 */
static struct entry *count_for(struct clink__throttle *t, const char *key, uint64_t now)
{
    uint64_t h = hash_key(t, key);
    uint64_t forget_ns = (uint64_t)t->o.forget_s * 1000000000ull;
    struct entry *x = find(&t->counts, key, h);
    if (x != NULL && since(now, x->touched) >= forget_ns && !waiting(x, now)) {
        x->failures = 0;
    }
    if (x == NULL) {
        x = insert(&t->counts, key, h, now, forget_ns);
    }
    if (x == NULL) {
        t->st.overflowed++;
        x = &t->overflow;
    }
    touch_count(t, x, now);
    return x;
}

int clink__throttle_begin(struct clink__throttle *t, const char *user, const char *host,
                          struct clink__throttle_ticket *tk)
{
    memset(tk, 0, sizeof(*tk));
    snprintf(tk->user, sizeof(tk->user), "%.*s", CLINK_USER_MAX, user);
    source_of(host, tk->source, sizeof(tk->source));
    char key[KEY_MAX];
    int ret = 0;
    pthread_mutex_lock(&t->mu);
    uint64_t now = now_ns(); /* under the mutex: a stamp read before it could be older than one written since */
    snprintf(key, sizeof(key), "%s\n%s", tk->user, tk->source);
    struct entry *pair = find(&t->pairs, key, hash_key(t, key));
    if (pair != NULL) {
        touch(&t->pairs, (int32_t)(pair - t->pairs.e), now);
        tk->known = 1;
        if (waiting(pair, now)) {
            ret = -CLINK_EAGAIN;
        } else {
            charge(t, pair, now);
        }
    } else {
        snprintf(key, sizeof(key), "u%s", tk->user);
        struct entry *u = count_for(t, key, now);
        snprintf(key, sizeof(key), "s%s", tk->source);
        struct entry *s = count_for(t, key, now);
        tk->overflowed[0] = u == &t->overflow;
        tk->overflowed[1] = s == &t->overflow;
        if (waiting(u, now) || waiting(s, now)) {
            ret = -CLINK_EAGAIN;
        } else {
            tk->wait_before[0] = u->wait_until;
            tk->wait_before[1] = s->wait_until;
            charge(t, u, now);
            if (s != u) {
                charge(t, s, now);
            }
            tk->wait_after[0] = u->wait_until;
            tk->wait_after[1] = s->wait_until;
        }
    }
    t->st.throttled += ret < 0;
    pthread_mutex_unlock(&t->mu);
    return ret;
}

void clink__throttle_end(struct clink__throttle *t, const struct clink__throttle_ticket *tk, int ok)
{
    char key[KEY_MAX];
    pthread_mutex_lock(&t->mu);
    uint64_t now = now_ns();
    if (!ok) {
        t->st.failures++;
        pthread_mutex_unlock(&t->mu);
        return;
    }
    snprintf(key, sizeof(key), "%s\n%s", tk->user, tk->source);
    uint64_t h = hash_key(t, key);
    struct entry *pair = find(&t->pairs, key, h);
    if (pair == NULL) {
        pair = insert(&t->pairs, key, h, now, 0); /* the pair left alone longest makes room */
    }
    if (pair != NULL) {
        pair->failures = 0;
        pair->wait_until = 0;
    }
    if (!tk->known) {
        /* Only this login's own charge comes back: a success must not hand a guesser a fresh allowance. */
        snprintf(key, sizeof(key), "u%s", tk->user);
        struct entry *u = tk->overflowed[0] ? &t->overflow : find(&t->counts, key, hash_key(t, key));
        snprintf(key, sizeof(key), "s%s", tk->source);
        struct entry *s = tk->overflowed[1] ? &t->overflow : find(&t->counts, key, hash_key(t, key));
        /* An entry gone since (forgotten, its slot taken) has nothing left to give back. */
        if (u != NULL) {
            refund(u, tk->wait_before[0], tk->wait_after[0]);
        }
        if (s != NULL && s != u) {
            refund(s, tk->wait_before[1], tk->wait_after[1]);
        }
    }
    pthread_mutex_unlock(&t->mu);
}

void clink__throttle_stats(struct clink__throttle *t, struct clink_login_stats *out)
{
    pthread_mutex_lock(&t->mu);
    *out = t->st;
    out->tracked = t->counts.used + t->pairs.used;
    pthread_mutex_unlock(&t->mu);
}
