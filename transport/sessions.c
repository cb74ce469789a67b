#include "transport/sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct clink__session_peer {
    char key[CLINK_SESSION_KEY_MAX];
    SSL_SESSION *s[CLINK_SESSIONS_PER_PEER]; /* oldest first */
    int n;
};

void clink__sessions_init(struct clink__sessions *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
}

static void clear_locked(struct clink__sessions *s)
{
    for (size_t i = 0; i < s->npeers; i++) {
        for (int j = 0; j < s->peers[i].n; j++) {
            SSL_SESSION_free(s->peers[i].s[j]);
        }
        s->peers[i].n = 0;
    }
}

void clink__sessions_clear(struct clink__sessions *s)
{
    pthread_mutex_lock(&s->mu);
    s->gen++;
    clear_locked(s);
    pthread_mutex_unlock(&s->mu);
}

void clink__sessions_free(struct clink__sessions *s)
{
    clear_locked(s);
    free(s->peers);
    pthread_mutex_destroy(&s->mu);
}

static struct clink__session_peer *find(struct clink__sessions *s, const char *key, int create)
{
    for (size_t i = 0; i < s->npeers; i++) {
        if (strcmp(s->peers[i].key, key) == 0) {
            return &s->peers[i];
        }
    }
    if (!create) {
        return NULL;
    }
    if (s->npeers == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct clink__session_peer *np = realloc(s->peers, cap * sizeof(*np));
        if (np == NULL) {
            return NULL;
        }
        s->peers = np;
        s->cap = cap;
    }
    struct clink__session_peer *p = &s->peers[s->npeers++];
    memset(p, 0, sizeof(*p));
    snprintf(p->key, sizeof(p->key), "%s", key);
    return p;
}

static int usable(SSL_SESSION *sess)
{
    time_t now = time(NULL);
    return SSL_SESSION_is_resumable(sess) && (time_t)SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess) > now;
}

uint64_t clink__sessions_gen(struct clink__sessions *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t g = s->gen;
    pthread_mutex_unlock(&s->mu);
    return g;
}

void clink__sessions_put(struct clink__sessions *s, const char *key, SSL_SESSION *sess, uint64_t gen)
{
    pthread_mutex_lock(&s->mu);
    struct clink__session_peer *p = gen == s->gen ? find(s, key, 1) : NULL;
    if (p == NULL) {
        s->dropped++;
        pthread_mutex_unlock(&s->mu);
        SSL_SESSION_free(sess);
        return;
    }
    if (p->n == CLINK_SESSIONS_PER_PEER) {
        SSL_SESSION_free(p->s[0]);
        memmove(&p->s[0], &p->s[1], sizeof(p->s[0]) * (CLINK_SESSIONS_PER_PEER - 1));
        p->n--;
        s->dropped++;
    }
    p->s[p->n++] = sess;
    s->stored++;
    pthread_mutex_unlock(&s->mu);
}

SSL_SESSION *clink__sessions_take(struct clink__sessions *s, const char *key)
{
    SSL_SESSION *out = NULL;
    pthread_mutex_lock(&s->mu);
    struct clink__session_peer *p = find(s, key, 0);
    /* Newest first: it expires last. Each ticket leaves the cache when handed out: single use. */
    while (p != NULL && p->n > 0 && out == NULL) {
        SSL_SESSION *cand = p->s[--p->n];
        if (usable(cand)) {
            out = cand;
            s->taken++;
        } else {
            SSL_SESSION_free(cand);
            s->dropped++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

size_t clink__sessions_count(struct clink__sessions *s, const char *key)
{
    pthread_mutex_lock(&s->mu);
    struct clink__session_peer *p = find(s, key, 0);
    size_t n = p ? (size_t)p->n : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}
