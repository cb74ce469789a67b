/*
 * Internal to auth/: the failed-login throttle every password login passes
 * (clink_accounts_check, whichever door the login came through), after
 * MySQL's connection_control: a few failures cost nothing, each one past
 * them adds a step to the wait before the next password is even looked at.
 *
 * A login is charged before its password is checked (so that a hundred
 * logins in flight at once cannot all slip past the count) and refunded
 * when it succeeds. Who is charged:
 *  - a source that has logged in to this user before (a "known pair"):
 *    that pair alone, so a stranger's guesses cannot lock it out;
 *  - anyone else: the user name (whether or not an account has it: no
 *    oracle for which names exist) and the source address (an IPv6 source
 *    by its /64), so neither rotating addresses nor rotating names escape.
 * Memory is a fixed table; when every entry is in use the newcomers share
 * one overflow entry (a global limit) instead of anyone's count being
 * forgotten. An entry left alone for forget_s starts over.
 */
#ifndef CLINK_AUTH_THROTTLE_H
#define CLINK_AUTH_THROTTLE_H

#include <stdint.h>

#include "clink/accounts.h"

struct clink__throttle;

/* A throttle with opts (NULL or zero fields: defaults). NULL when out of memory. */
struct clink__throttle *clink__throttle_new(const struct clink_login_throttle *opts);
void clink__throttle_free(struct clink__throttle *t);
/* New options, and a fresh start: 0 or -CLINK_ENOMEM (the old ones stay). Safe while logins run. */
int clink__throttle_configure(struct clink__throttle *t, const struct clink_login_throttle *opts);

/* What a login was charged, to refund on success. */
struct clink__throttle_ticket {
    char user[CLINK_USER_MAX + 1];
    char source[48];
    int known;
    int overflowed[2]; /* the user's, the source's count was the shared overflow entry */
    /* The user's and the source's waits before this login's charge, and after it: a refund restores the first. */
    uint64_t wait_before[2], wait_after[2];
};

/*
 * Before a password is checked: 0 (charged; call clink__throttle_end), or
 * -CLINK_EAGAIN when the user, the source or the pair must wait (nothing
 * charged, nothing to end).
 */
int clink__throttle_begin(struct clink__throttle *t, const char *user, const char *host,
                          struct clink__throttle_ticket *tk);
/* After the check: ok refunds the charge and remembers the pair. */
void clink__throttle_end(struct clink__throttle *t, const struct clink__throttle_ticket *tk, int ok);

void clink__throttle_stats(struct clink__throttle *t, struct clink_login_stats *out);

#endif
