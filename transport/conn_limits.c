/*
 * Session limits (docs/config.md): how many logged-in client sessions the
 * node holds (max_connections, one more for a grant-ALL account), how many
 * per account (max_user_connections) and how many node links
 * (max_node_links). Counted once at login and given back once at close, on
 * whichever worker owns the connection: node-wide atomics, and a small
 * table under a mutex for the per-account counts. Nothing here runs per
 * call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/accounts.h"
#include "transport/conn_int.h"

/* Take one of `limit` slots of *count; with `extra`, one more beyond it. 1 if taken. */
static int take(_Atomic uint64_t *count, uint64_t limit, int extra)
{
    uint64_t had = atomic_fetch_add(count, 1);
    if (had < limit || (extra && had == limit)) {
        return 1;
    }
    atomic_fetch_sub(count, 1);
    return 0;
}

static struct clink__user_count *user_find(struct clink__limits *l, const char *account)
{
    for (size_t i = 0; i < l->nusers; i++) {
        if (strcmp(l->users[i].account, account) == 0) {
            return &l->users[i];
        }
    }
    return NULL;
}

/* One more session of this account, unless it holds `max` already (or no memory to count it). */
static int user_take(struct clink__limits *l, const char *account, uint32_t max)
{
    int ok = 0;
    pthread_mutex_lock(&l->mu);
    struct clink__user_count *u = user_find(l, account);
    if (u == NULL && l->nusers == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct clink__user_count *p = realloc(l->users, cap * sizeof(*p));
        if (p != NULL) {
            l->users = p;
            l->cap = cap;
        }
    }
    if (u == NULL && l->nusers < l->cap) {
        u = &l->users[l->nusers++];
        snprintf(u->account, sizeof(u->account), "%s", account);
        u->n = 0;
    }
    if (u != NULL && u->n < max) {
        u->n++;
        ok = 1;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

static void user_give(struct clink__limits *l, const char *account)
{
    pthread_mutex_lock(&l->mu);
    struct clink__user_count *u = user_find(l, account);
    if (u != NULL && --u->n == 0) {
        /* Accounts come and go: the table holds only those with sessions now. */
        *u = l->users[--l->nusers];
    }
    pthread_mutex_unlock(&l->mu);
}

static void refused(struct clink_conn *c, const char *what, uint64_t limit)
{
    if (clink__conn_refusal_log_ok(c)) {
        CLINK_CONN_LOG(c, CLINK_LOG_WARN, "%s: login as %s refused: %s (%llu) reached", clink__conn_peer(c),
                       c->cache.account[0] ? c->cache.account : "''", what, (unsigned long long)limit);
    }
}

enum clink__limit clink__conn_limits_admit(struct clink_conn *c, int link)
{
    struct clink_node *n = c->node;
    struct clink__limits *l = &n->limits;
    const struct clink_node_opts *o = &n->opts;
    if (link) {
        if (!take(&l->links, o->max_node_links, 0)) {
            STAT_ADD(c->w, refused_max_node_links, 1);
            refused(c, "max_node_links", o->max_node_links);
            return LIMIT_LINKS;
        }
        c->session = SESSION_LINK;
        return LIMIT_OK;
    }
    /*
     * The reserve is asked about only for the last slot: the accounts' mutex
     * is not taken by every login of a node far from its limit.
     */
    if (!take(&l->clients, o->max_connections, 0) &&
        !(clink_accounts_is_admin(n->accounts, c->cache.account) && take(&l->clients, o->max_connections, 1))) {
        STAT_ADD(c->w, refused_max_connections, 1);
        refused(c, "max_connections", o->max_connections);
        return LIMIT_CONNECTIONS;
    }
    /* Without accounts there is nobody to tell apart: every session would share the account ''. */
    int per_user = o->max_user_connections > 0 && n->accounts != NULL;
    if (per_user && !user_take(l, c->cache.account, o->max_user_connections)) {
        atomic_fetch_sub(&l->clients, 1);
        STAT_ADD(c->w, refused_max_user_connections, 1);
        refused(c, "max_user_connections", o->max_user_connections);
        return LIMIT_USER;
    }
    c->session = SESSION_CLIENT;
    c->user_counted = per_user;
    c->w->client_sessions++;
    clink__conn_idle_watch(c);
    return LIMIT_OK;
}

enum clink__limit clink__conn_limits_move(struct clink_conn *c, const char *account)
{
    struct clink__limits *l = &c->node->limits;
    if (c->user_counted && strcmp(c->cache.account, account) != 0) {
        /* The new account's slot first: refused, the session stays counted where it was until it closes. */
        if (!user_take(l, account, c->node->opts.max_user_connections)) {
            STAT_ADD(c->w, refused_max_user_connections, 1);
            if (clink__conn_refusal_log_ok(c)) {
                CLINK_CONN_LOG(c, CLINK_LOG_WARN,
                               "%s: change from %s to %s refused: max_user_connections (%llu) reached",
                               clink__conn_peer(c), c->cache.account, account,
                               (unsigned long long)c->node->opts.max_user_connections);
            }
            return LIMIT_USER;
        }
        user_give(l, c->cache.account);
    }
    snprintf(c->cache.account, sizeof(c->cache.account), "%s", account);
    return LIMIT_OK;
}

void clink__conn_limits_release(struct clink_conn *c)
{
    struct clink__limits *l = &c->node->limits;
    if (c->session == SESSION_LINK) {
        atomic_fetch_sub(&l->links, 1);
    } else if (c->session == SESSION_CLIENT) {
        atomic_fetch_sub(&l->clients, 1);
        c->w->client_sessions--;
        if (c->user_counted) {
            user_give(l, c->cache.account);
        }
    }
    c->session = SESSION_NONE;
    c->user_counted = 0;
}

void clink__limits_free(struct clink__limits *l)
{
    free(l->users);
    l->users = NULL;
    l->nusers = l->cap = 0;
    pthread_mutex_destroy(&l->mu);
}
