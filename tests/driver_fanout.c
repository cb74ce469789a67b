/*
 * Fan-outs from handlers on several workers at once, with reloads under
 * way, as a plain program so that it runs under ThreadSanitizer: two leaves
 * and an aggregator built by the server layer from config files; 4 threads
 * call the aggregator's fan-out method (clink_cluster_fanout_start from the
 * handler, the answer from the last leaf's completion) and another calls
 * the blocking clink_cluster_fanout on the same cluster, while one more
 * reloads the aggregator again and again. Every call must come back with
 * its own payload. Exit 0 on success.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/methods.h"
#include "clink/server.h"
#include "tests/support/support.h"

#define THREADS 4
#define PER     (getenv("DRV_N") ? atoi(getenv("DRV_N")) : 400)

static struct ts_pki pki;
static struct clink_conn *conn;
static struct clink_server *agg;
static atomic_int ok, failed, wrong, done, reloads, blocking_ok;

static struct clink_server *server(const char *name, const char *extra)
{
    char path[512], err[512] = "";
    ts_pki_path(&pki, name, path, sizeof(path));
    FILE *f = fopen(path, "w");
    TS_REQUIRE(f != NULL, "%s", path);
    fprintf(f, "[server]\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem\nport = 0\nworkers = 2\n%s",
            extra);
    fclose(f);
    struct clink_server_opts o = {.tool_methods = 1, .ops = CLINK_SERVER_OFF};
    struct clink_server *srv = NULL;
    TS_REQUIRE(clink_server_new_from_config(path, &o, &srv, err, sizeof(err)) == 0, "%s", err);
    TS_REQUIRE(clink_server_start(srv, err, sizeof(err)) == 0, "%s", err);
    return srv;
}

static void *caller(void *arg)
{
    int id = *(int *)arg;
    for (int i = 0; i < PER; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "%d/%d", id, i);
        struct clink_msg r;
        if (clink_call_sync(conn, CLINK_TOOL_FANOUT, buf, (size_t)len, ts_ms(10000), &r) == 0) {
            int same = r.len == (size_t)len && memcmp(r.data, buf, r.len) == 0;
            atomic_fetch_add(same ? &ok : &wrong, 1);
            clink_msg_free(&r);
        } else {
            atomic_fetch_add(&failed, 1);
        }
    }
    return NULL;
}

/* The blocking fan-out from an application thread, on the cluster the handlers fan out through. */
static void *blocking(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER / 4; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "b/%d", i);
        struct clink_fanout_result *res = NULL;
        size_t n = 0;
        int ret = clink_cluster_fanout(clink_server_cluster(agg), CLINK_ROLE_LEAF, NULL, CLINK_TOOL_ECHO, buf,
                                       (size_t)len, ts_ms(10000), &res, &n);
        int same = ret == 0 && n == 2;
        for (size_t k = 0; same && k < n; k++) {
            same =
                res[k].status == 0 && res[k].msg.len == (size_t)len && memcmp(res[k].msg.data, buf, (size_t)len) == 0;
        }
        atomic_fetch_add(same ? &blocking_ok : &wrong, 1);
        clink_fanout_free(res, n);
    }
    return NULL;
}

static void *reloader(void *arg)
{
    (void)arg;
    while (!atomic_load(&done)) {
        struct clink_server_report rep;
        TS_REQUIRE(clink_server_reload(agg, &rep) == 0, "%s", rep.text);
        atomic_fetch_add(&reloads, 1);
        usleep(20000);
    }
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    ts_pki_make(&pki);
    struct clink_server *leaf1 = server("leaf1.cnf", ""), *leaf2 = server("leaf2.cnf", "");
    char peers[512];
    snprintf(peers, sizeof(peers),
             "[leaf leaf1]\nhost = 127.0.0.1\nport = %u\nssl_server_name = localhost\n"
             "[leaf leaf2]\nhost = 127.0.0.1\nport = %u\nssl_server_name = localhost\n",
             clink_server_port(leaf1), clink_server_port(leaf2));
    agg = server("agg.cnf", peers);
    struct clink_tls_ctx *tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    struct clink_node *client = ts_client(tls, 2, 0);
    struct clink_connect_opts co = {.host = "127.0.0.1", .port = clink_server_port(agg), .expected_name = "localhost"};
    TS_REQUIRE(clink_connect_sync(client, &co, &conn, NULL, 0) == 0, "connect to the aggregator");
    struct clink_msg r;
    for (int i = 0; i < 200 && clink_call_sync(conn, CLINK_TOOL_FANOUT, "up", 2, ts_ms(5000), &r) != 0; i++) {
        usleep(20000); /* the pools are still dialling */
    }
    clink_msg_free(&r);

    pthread_t th[THREADS], rt, bt;
    int ids[THREADS];
    pthread_create(&rt, NULL, reloader, NULL);
    pthread_create(&bt, NULL, blocking, NULL);
    for (int i = 0; i < THREADS; i++) {
        ids[i] = i;
        pthread_create(&th[i], NULL, caller, &ids[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_join(bt, NULL);
    atomic_store(&done, 1);
    pthread_join(rt, NULL);

    printf("driver_fanout: %d ok, %d failed, %d wrong, %d blocking fan-outs ok, %d reloads\n", atomic_load(&ok),
           atomic_load(&failed), atomic_load(&wrong), atomic_load(&blocking_ok), atomic_load(&reloads));
    clink_conn_close(conn);
    clink_node_free(client);
    clink_tls_ctx_free(tls);
    clink_server_free(agg);
    clink_server_free(leaf1);
    clink_server_free(leaf2);
    ts_pki_remove(&pki);
    return atomic_load(&ok) == THREADS * PER && atomic_load(&blocking_ok) == PER / 4 && atomic_load(&reloads) > 0 ? 0
                                                                                                                  : 1;
}
