/*
 * Session limits under concurrent logins, as a plain program so that it runs
 * under ThreadSanitizer: four threads keep up to three sessions each open
 * against a two-worker node with max_connections 8 and max_user_connections
 * 4 (the counts are taken and given back on both workers at once), a fifth
 * opens certificate links, and a watcher reads the node's counters
 * throughout. Client sessions never exceed 8 plus the administrator's one;
 * every refusal the dialers see is one the node counted; everything is
 * given back at the end. Exit 0 on success, 1 on failure.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "tests/support/support.h"

#define MAX_CONNECTIONS 8
#define MAX_PER_USER    4
#define ROUNDS          30
#define HELD            3

static struct clink_node *srv, *cli;
static atomic_int failed, refused, done;
static atomic_uint_fast64_t peak;

struct who {
    const char *user, *password;
};

static void fail(const char *what, int ret, const char *err)
{
    fprintf(stderr, "FAIL: %s: %d %s\n", what, ret, err);
    atomic_fetch_add(&failed, 1);
}

static void *dialer(void *arg)
{
    const struct who *w = arg;
    struct clink_conn *held[HELD] = {0};
    for (int i = 0; i < ROUNDS; i++) {
        int k = i % HELD;
        if (held[k] != NULL) {
            clink_conn_close(held[k]);
            held[k] = NULL;
        }
        struct clink_connect_opts o = {.host = "127.0.0.1",
                                       .port = clink_node_port(srv),
                                       .expected_name = "localhost",
                                       .user = w->user,
                                       .password = w->password,
                                       .timeout_ms = ts_ms(5000)};
        char err[256] = "";
        int ret = clink_connect_sync(cli, &o, &held[k], err, sizeof(err));
        if (ret == -CLINK_ETOOMANY) {
            atomic_fetch_add(&refused, 1);
            held[k] = NULL;
        } else if (ret != 0) {
            fail(w->user, ret, err);
            held[k] = NULL;
        }
    }
    for (int k = 0; k < HELD; k++) {
        if (held[k] != NULL) {
            clink_conn_close(held[k]);
        }
    }
    atomic_fetch_add(&done, 1);
    return NULL;
}

static void *watcher(void *arg)
{
    (void)arg;
    while (atomic_load(&done) < 5) {
        struct clink_node_stats s;
        clink_node_get_stats(srv, &s);
        if (s.client_sessions > atomic_load(&peak)) {
            atomic_store(&peak, s.client_sessions);
        }
        usleep(500);
    }
    return NULL;
}

int main(void)
{
    struct ts_pki pki;
    ts_pki_make(&pki);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_accounts *acc;
    char err[256] = "";
    struct clink_account_spec specs[] = {{.user = "app", .password = "apppw"},
                                         {.user = "other", .password = "otherpw"},
                                         {.user = "admin", .password = "adminpw", .grant = "ALL"},
                                         {.user = "root", .require = "X509"}};
    TS_REQUIRE(clink_accounts_new(NULL, &acc) == 0, "accounts");
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        TS_REQUIRE(clink_accounts_add(acc, &specs[i], err, sizeof(err)) == 0, "%s", err);
    }
    struct clink_node_opts o = {.workers = 2,
                                .tls = tls,
                                .accounts = acc,
                                .max_connections = MAX_CONNECTIONS,
                                .max_user_connections = MAX_PER_USER,
                                .handshake_timeout_ms = ts_ms(5000)};
    srv = ts_node_with(&o, NULL);
    cli = ts_client(tls, 2, 0);

    static struct who who[5] = {
        {"app", "apppw"}, {"app", "apppw"}, {"other", "otherpw"}, {"admin", "adminpw"}, {"root", NULL}};
    pthread_t t[6];
    for (int i = 0; i < 5; i++) {
        TS_REQUIRE(pthread_create(&t[i], NULL, dialer, (void *)&who[i]) == 0, "thread");
    }
    TS_REQUIRE(pthread_create(&t[5], NULL, watcher, NULL) == 0, "thread");
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
    }

    struct clink_node_stats s = {0};
    for (int i = 0; i < 500; i++) {
        clink_node_get_stats(srv, &s);
        if (s.client_sessions == 0 && s.node_links == 0) {
            break;
        }
        usleep(10000);
    }
    uint64_t counted = s.refused_max_connections + s.refused_max_user_connections + s.refused_max_node_links;
    int rc = 0;
    if (atomic_load(&failed) > 0) {
        rc = 1;
    }
    if (atomic_load(&peak) > MAX_CONNECTIONS + 1) {
        fprintf(stderr, "FAIL: %llu client sessions at once, more than %d + 1\n",
                (unsigned long long)atomic_load(&peak), MAX_CONNECTIONS);
        rc = 1;
    }
    if (counted != (uint64_t)atomic_load(&refused)) {
        fprintf(stderr, "FAIL: the dialers saw %d refusals, the node counted %llu\n", atomic_load(&refused),
                (unsigned long long)counted);
        rc = 1;
    }
    if (s.client_sessions != 0 || s.node_links != 0) {
        fprintf(stderr, "FAIL: %llu client sessions and %llu links still counted after every close\n",
                (unsigned long long)s.client_sessions, (unsigned long long)s.node_links);
        rc = 1;
    }
    printf("driver_limits: %d refused (%llu max_connections, %llu max_user_connections), peak %llu client "
           "sessions, %s\n",
           atomic_load(&refused), (unsigned long long)s.refused_max_connections,
           (unsigned long long)s.refused_max_user_connections, (unsigned long long)atomic_load(&peak),
           rc ? "FAILED" : "ok");
    clink_node_free(cli);
    clink_node_free(srv);
    clink_accounts_free(acc);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
    return rc;
}
