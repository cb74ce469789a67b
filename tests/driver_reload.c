/*
 * Reloads racing logins, as a plain program so that it runs under
 * ThreadSanitizer: two threads dial, log in and call the status method while
 * a third swaps the server's TLS context and a fourth changes the account the
 * dialers log in as (every version of it admits them). Every dial and call
 * must succeed. Exit 0 on success, 1 on failure.
 */
#include <openssl/pem.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/accounts.h"
#include "tests/support/support.h"

#define DIALS 40

static struct clink_node *srv, *cli;
static struct clink_accounts *acc;
static struct clink_tls_ctx *tls_a, *tls_b;
static char subject[256];
static atomic_int done_dialers, failed, dialed;

static void *dialer(void *arg)
{
    (void)arg;
    for (int i = 0; i < DIALS; i++) {
        struct clink_connect_opts o = {.host = "127.0.0.1",
                                       .port = clink_node_port(srv),
                                       .expected_name = "localhost",
                                       .user = "node",
                                       .timeout_ms = ts_ms(5000)};
        struct clink_conn *c;
        char err[256] = "";
        if (clink_connect_sync(cli, &o, &c, err, sizeof(err)) != 0) {
            fprintf(stderr, "FAIL: dial %d: %s\n", i, err);
            atomic_fetch_add(&failed, 1);
            continue;
        }
        struct clink_msg r;
        if (clink_call_sync(c, CLINK_METHOD_STATUS, NULL, 0, ts_ms(5000), &r) != 0) {
            fprintf(stderr, "FAIL: status call %d\n", i);
            atomic_fetch_add(&failed, 1);
        } else {
            clink_msg_free(&r);
        }
        clink_conn_close(c);
        atomic_fetch_add(&dialed, 1);
    }
    atomic_fetch_add(&done_dialers, 1);
    return NULL;
}

static void *reloader(void *arg)
{
    (void)arg;
    for (int i = 0; atomic_load(&done_dialers) < 2; i++) {
        if (clink_node_reload_tls(srv, i % 2 ? tls_a : tls_b) != 0) {
            atomic_fetch_add(&failed, 1);
        }
        usleep(1000);
    }
    return NULL;
}

static void *alterer(void *arg)
{
    (void)arg;
    char req[400];
    snprintf(req, sizeof(req), "SUBJECT '%s'", subject);
    for (int i = 0; atomic_load(&done_dialers) < 2; i++) {
        struct clink_account_spec s = {.user = "node", .require = i % 2 ? "X509" : req};
        char err[256];
        if (clink_accounts_alter(acc, &s, err, sizeof(err)) != 0) {
            fprintf(stderr, "FAIL: alter: %s\n", err);
            atomic_fetch_add(&failed, 1);
        }
        usleep(1000);
    }
    return NULL;
}

int main(void)
{
    struct ts_pki pki;
    ts_pki_make(&pki);
    tls_a = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    tls_b = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    FILE *f = fopen(pki.node_cert, "r");
    TS_REQUIRE(f != NULL, "open cert");
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    TS_REQUIRE(x != NULL, "read cert");
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    X509_free(x);

    char err[256] = "";
    TS_REQUIRE(clink_accounts_new(NULL, &acc) == 0, "accounts");
    struct clink_account_spec s = {.user = "node", .require = "X509"};
    TS_REQUIRE(clink_accounts_add(acc, &s, err, sizeof(err)) == 0, "add: %s", err);

    struct clink_node_opts o = {.workers = 2, .tls = tls_a, .accounts = acc, .handshake_timeout_ms = ts_ms(5000)};
    TS_REQUIRE(clink_node_new(&o, &srv) == 0, "node");
    TS_REQUIRE(clink_node_listen(srv, "127.0.0.1", 0) == 0, "listen");
    TS_REQUIRE(clink_node_start(srv) == 0, "start");
    cli = ts_client(tls_a, 2, 0);

    pthread_t th[4];
    pthread_create(&th[0], NULL, dialer, NULL);
    pthread_create(&th[1], NULL, dialer, NULL);
    pthread_create(&th[2], NULL, reloader, NULL);
    pthread_create(&th[3], NULL, alterer, NULL);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    struct clink_node_stats ns;
    clink_node_get_stats(srv, &ns);
    printf("reload driver: %d dials with logins, %llu TLS reloads, %llu logins ok, %llu denied\n", atomic_load(&dialed),
           (unsigned long long)ns.tls_reloads, (unsigned long long)ns.logins_ok, (unsigned long long)ns.logins_denied);
    int bad = atomic_load(&failed) != 0 || ns.logins_ok != 2 * DIALS || ns.logins_denied != 0 || ns.tls_reloads == 0;

    clink_node_free(cli);
    clink_node_free(srv);
    clink_accounts_free(acc);
    clink_tls_ctx_free(tls_a);
    clink_tls_ctx_free(tls_b);
    ts_pki_remove(&pki);
    printf("%s\n", bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
