/*
 * The failed-login throttle under ThreadSanitizer (a plain program:
 * Criterion's runner aborts under TSan). Eight threads log in at once to one
 * account set, as the workers of a node do: guesses from rotating sources,
 * a known source's right password, reconfiguration in the middle, stats read
 * from another thread. The count must hold: a guess that slipped past it
 * (charged after the check instead of before) shows as more than 11
 * checked guesses. Exit 0 on success, 1 on failure.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clink/accounts.h"

#define THREADS 8
#define GUESSES 200

static struct clink_accounts *acc;
static atomic_uint checked;
static atomic_int known_refused;

static int login(const char *user, const char *host, const char *pw)
{
    struct clink_login l = {.user = user,
                            .host = host,
                            .tls = 1,
                            .method = CLINK_LOGIN_CLEARTEXT,
                            .auth = (const uint8_t *)pw,
                            .auth_len = strlen(pw)};
    char why[256];
    return clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why));
}

static void *guesser(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    char src[32];
    for (unsigned i = 0; i < GUESSES; i++) {
        snprintf(src, sizeof(src), "10.%u.%u.%u", id, i / 200, i % 200 + 1);
        if (login("app", src, "wrong") == -CLINK_EACCESS) {
            atomic_fetch_add(&checked, 1);
        }
        if (i % 50 == 0) {
            /* The known source is never made to wait by strangers. */
            atomic_fetch_add(&known_refused, login("app", "192.0.2.1", "right") != 0);
        }
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    struct clink_login_stats st;
    for (int i = 0; i < 200; i++) {
        clink_accounts_login_stats(acc, &st);
    }
    return NULL;
}

int main(void)
{
    char err[256];
    struct clink_account_spec app = {.user = "app", .password = "right"};
    if (clink_accounts_new(NULL, &acc) != 0 || clink_accounts_add(acc, &app, err, sizeof(err)) != 0) {
        fprintf(stderr, "FAIL: setup: %s\n", err);
        return 1;
    }
    struct clink_login_throttle slow = {.delay_step_ms = 60000};
    if (clink_accounts_set_throttle(acc, &slow) != 0 || login("app", "192.0.2.1", "right") != 0) {
        fprintf(stderr, "FAIL: the known source's first login\n");
        return 1;
    }
    pthread_t th[THREADS + 1];
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_create(&th[i], NULL, guesser, (void *)(uintptr_t)(i + 1));
    }
    pthread_create(&th[THREADS], NULL, reader, NULL);
    for (unsigned i = 0; i <= THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    int fails = 0;
    if (atomic_load(&checked) > 11) {
        fprintf(stderr, "FAIL: %u of %d concurrent guesses checked (at most 11)\n", atomic_load(&checked),
                THREADS * GUESSES);
        fails++;
    }
    if (atomic_load(&known_refused) != 0) {
        fprintf(stderr, "FAIL: the known source was refused %d times\n", atomic_load(&known_refused));
        fails++;
    }
    /* Reconfigured while nobody logs in: a fresh count. */
    if (clink_accounts_set_throttle(acc, NULL) != 0 || login("app", "10.99.0.1", "wrong") != -CLINK_EACCESS) {
        fprintf(stderr, "FAIL: a new throttle did not start over\n");
        fails++;
    }
    clink_accounts_free(acc);
    printf("driver_throttle: %u of %d guesses checked, %s\n", atomic_load(&checked), THREADS * GUESSES,
           fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}
