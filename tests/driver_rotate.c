/*
 * Certificates rotated and the CA rolled over under load, with no failed
 * call (docs/admin.md, "Rotating certificates" and "Rolling the CA over"),
 * as a plain program so that it runs under ThreadSanitizer.
 *
 * Two leaves and an aggregator, each a clink_server from its own
 * memsql.cnf, every link verified (VERIFY_IDENTITY) both ways. Four threads
 * call both leaves through the aggregator's pools all along while:
 *   1. every node, one at a time, renews its certificate from CA 1
 *      (clink_server_renew_begin, clink_cert_sign_renewal,
 *      clink_server_renew_install: what clink-admin rotate-certs does);
 *   2. the CA rolls over: every node's ssl_ca becomes a bundle of CA 1 and
 *      CA 2 (clink_server_set_config, as clink-admin update-config), every
 *      node gets a certificate from CA 2 (trust: the bundle), then every
 *      node's ssl_ca becomes CA 2 alone.
 * Asserted: no call fails or comes back wrong; each step carried calls to
 * both leaves; each node then serves the new certificate (its serial, its
 * issuer); the last step closes the links made under CA 1 (GOAWAY: their
 * calls finish) and the pools replace them; after the rollover a client
 * that trusts only CA 1 is refused and one that trusts CA 2 gets in. Exit 0 on success, 1 on failure.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clink/methods.h"
#include "clink/pool.h"
#include "clink/server.h"

#define THREADS 4
#define NODES   3 /* agg, leaf1, leaf2 */
#define LOAD_MS 500

static const char *const name[NODES] = {"agg", "leaf1", "leaf2"};
static struct clink_server *srv[NODES];
static char dir[256];
static atomic_int stop, failed, calls[NODES];
static int bad;

static void check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int cond, const char *fmt, ...)
{
    if (cond) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    bad = 1;
}

static void path(char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s", dir, file);
}

static char *slurp(const char *file)
{
    char p[512];
    path(p, sizeof(p), file);
    FILE *f = fopen(p, "r");
    char *t = f ? calloc(1, 1 << 16) : NULL;
    if (t != NULL) {
        size_t n = fread(t, 1, (1 << 16) - 1, f);
        t[n] = '\0';
    }
    if (f != NULL) {
        fclose(f);
    }
    return t;
}

static void put(const char *file, const char *text)
{
    char p[512];
    path(p, sizeof(p), file);
    FILE *f = fopen(p, "w");
    check(f != NULL && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", file);
}

static void make_ca(const char *stem, const char *cn)
{
    char c[512], k[512], cf[64], kf[64], err[256];
    snprintf(cf, sizeof(cf), "%s.pem", stem);
    snprintf(kf, sizeof(kf), "%s-key.pem", stem);
    path(c, sizeof(c), cf);
    path(k, sizeof(k), kf);
    struct clink_cert_opts o = {.common_name = cn};
    check(clink_cert_make_ca(&o, c, k, 0, err, sizeof(err)) == 0, "make %s: %s", cn, err);
}

static void make_node(const char *n)
{
    char c[512], k[512], ca[512], cak[512], cf[64], kf[64], err[256];
    snprintf(cf, sizeof(cf), "%s.pem", n);
    snprintf(kf, sizeof(kf), "%s-key.pem", n);
    path(c, sizeof(c), cf);
    path(k, sizeof(k), kf);
    path(ca, sizeof(ca), "ca1.pem");
    path(cak, sizeof(cak), "ca1-key.pem");
    const char *dns[] = {"localhost", NULL}, *ips[] = {"127.0.0.1", NULL};
    struct clink_cert_opts o = {.common_name = n, .dns_names = dns, .ip_addrs = ips};
    check(clink_cert_make_node(&o, ca, cak, c, k, 0, err, sizeof(err)) == 0, "make %s: %s", n, err);
}

static void *caller(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    struct clink_cluster *cl = clink_server_cluster(srv[0]);
    for (unsigned i = 0; !atomic_load(&stop); i++) {
        int leaf = 1 + (int)((i + id) % 2);
        struct clink_pool *pool = clink_cluster_pool(cl, name[leaf]);
        char req[32], want[32];
        int n = snprintf(req, sizeof(req), "t%u-%u", id, i);
        memcpy(want, req, (size_t)n);
        struct clink_msg resp;
        int ret = pool ? clink_pool_call_sync(pool, CLINK_TOOL_ECHO, req, (size_t)n, 10000, &resp) : -CLINK_EUNAVAIL;
        if (ret != 0 || resp.len != (size_t)n || memcmp(resp.data, want, (size_t)n) != 0) {
            if (atomic_fetch_add(&failed, 1) < 5) {
                fprintf(stderr, "call to %s failed: %s\n", name[leaf], ret ? clink_strerror(ret) : "wrong answer");
            }
        } else {
            atomic_fetch_add(&calls[leaf], 1);
        }
        clink_msg_free(&resp);
        clink_pool_release(pool);
    }
    return NULL;
}

/* A step under load: it must carry calls to both leaves, and none may fail. */
static void step(const char *what)
{
    int before[NODES] = {atomic_load(&calls[1]), atomic_load(&calls[1]), atomic_load(&calls[2])};
    usleep(LOAD_MS * 1000);
    int f = atomic_load(&failed);
    printf("%-44s leaf1 +%d calls, leaf2 +%d calls, failed %d\n", what, atomic_load(&calls[1]) - before[1],
           atomic_load(&calls[2]) - before[2], f);
    check(atomic_load(&calls[1]) > before[1] && atomic_load(&calls[2]) > before[2], "%s: calls to both leaves", what);
    check(f == 0, "%s: %d failed calls", what, f);
}

/* The serial and issuer of the certificate node i serves now. */
static void serving(int i, char *serial, size_t scap, char *issuer, size_t icap)
{
    struct clink_tls_ctx *tls = clink_node_tls(clink_server_node(srv[i]), 0);
    struct clink_cert_info ci = {0};
    check(tls != NULL && clink_tls_ctx_certs(tls, &ci, 1) >= 1, "%s has a certificate", name[i]);
    clink_tls_ctx_free(tls);
    snprintf(serial, scap, "%s", ci.serial);
    snprintf(issuer, icap, "%s", ci.issuer);
}

/* What clink-admin rotate-certs does for node i, with the CA stem ("ca1") and the trust file. */
static void renew(int i, const char *ca_stem, const char *trust)
{
    char *csr = NULL, *cur = NULL, *signed_pem = NULL, err[512] = "", ca[512], cak[512], tr[512], f[64];
    char old_serial[64], new_serial[64], issuer[256];
    serving(i, old_serial, sizeof(old_serial), issuer, sizeof(issuer));
    snprintf(f, sizeof(f), "%s.pem", ca_stem);
    path(ca, sizeof(ca), f);
    snprintf(f, sizeof(f), "%s-key.pem", ca_stem);
    path(cak, sizeof(cak), f);
    path(tr, sizeof(tr), trust);
    check(clink_server_renew_begin(srv[i], &csr, &cur, err, sizeof(err)) == 0, "%s: begin: %s", name[i], err);
    check(csr && cur && clink_cert_sign_renewal(ca, cak, csr, cur, tr, 0, &signed_pem, err, sizeof(err)) == 0,
          "%s: sign: %s", name[i], err);
    struct clink_server_report rep;
    check(signed_pem && clink_server_renew_install(srv[i], signed_pem, "driver_rotate", &rep, err, sizeof(err)) == 0,
          "%s: install: %s", name[i], err);
    serving(i, new_serial, sizeof(new_serial), issuer, sizeof(issuer));
    check(strcmp(old_serial, new_serial) != 0, "%s serves its new certificate", name[i]);
    free(csr);
    free(cur);
    free(signed_pem);
}

static void set_all(const char *key, const char *value)
{
    for (int i = 0; i < NODES; i++) {
        struct clink_server_edit e = {0};
        check(clink_server_set_config(srv[i], key, value, "driver_rotate", &e) == 0 &&
                  e.outcome == CLINK_SERVER_EDIT_APPLIED,
              "%s: %s = %s: %s (%s)", name[i], key, value, clink_server_edit_outcome_name(e.outcome), e.why);
    }
}

/* A fresh client that trusts ca_file dials leaf1 and verifies it (VERIFY_IDENTITY): 0 or its error. */
static int dial_with(const char *ca_file)
{
    char ca[512], cert[512], key[512], err[256];
    path(ca, sizeof(ca), ca_file);
    path(cert, sizeof(cert), "agg.pem");
    path(key, sizeof(key), "agg-key.pem");
    struct clink_tls_opts to = clink_tls_opts_default;
    to.cert_file = cert;
    to.key_file = key;
    to.ca_file = ca;
    struct clink_tls_ctx *tls = NULL;
    struct clink_node *n = NULL;
    struct clink_node_opts no = clink_node_opts_default;
    no.workers = 1;
    int ret = clink_tls_ctx_new(&to, &tls, err, sizeof(err));
    if (ret == 0) {
        no.tls = tls;
        ret = clink_node_new(&no, &n);
    }
    ret = ret ? ret : clink_node_start(n);
    struct clink_conn *c = NULL;
    struct clink_connect_opts co = {.host = "127.0.0.1", .port = clink_server_port(srv[1]), .timeout_ms = 5000};
    ret = ret ? ret : clink_connect_sync(n, &co, &c, err, sizeof(err));
    clink_conn_close(c);
    if (n != NULL) {
        CLINK_IGNORE(clink_node_shutdown(n, 0));
        clink_node_free(n);
    }
    clink_tls_ctx_free(tls);
    return ret;
}

int main(void)
{
    const char *base = getenv("CLINK_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/driver_rotate.XXXXXX", base && base[0] ? base : "/tmp");
    mkdir(base && base[0] ? base : "/tmp", 0755);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    make_ca("ca1", "rotation CA 1");
    for (int i = 0; i < NODES; i++) {
        make_node(name[i]);
    }
    char cnf[2048], p[512];
    for (int i = NODES - 1; i >= 0; i--) {
        int n = snprintf(cnf, sizeof(cnf),
                         "[server]\nssl_cert = %s.pem\nssl_key = %s-key.pem\nssl_ca = ca1.pem\nport = 0\nworkers = 1\n"
                         "ops = OFF\n",
                         name[i], name[i]);
        for (int l = 1; i == 0 && l < NODES; l++) {
            n += snprintf(cnf + n, sizeof(cnf) - (size_t)n, "\n[leaf %s]\nhost = 127.0.0.1\nport = %u\n", name[l],
                          clink_server_port(srv[l]));
        }
        char f[64], err[512];
        snprintf(f, sizeof(f), "%s.cnf", name[i]);
        put(f, cnf);
        path(p, sizeof(p), f);
        struct clink_server_opts o = {.tool_methods = 1, .log = getenv("DRV_LOG") ? clink_log_stderr : NULL};
        if (clink_server_new_from_config(p, &o, &srv[i], err, sizeof(err)) != 0 ||
            clink_server_start(srv[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "FAIL: %s: %s\n", name[i], err);
            return 1;
        }
    }
    pthread_t th[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        pthread_create(&th[t], NULL, caller, (void *)(uintptr_t)t);
    }
    step("load, before anything");

    for (int i = 0; i < NODES && !bad; i++) {
        renew(i, "ca1", "ca1.pem");
        char what[64];
        snprintf(what, sizeof(what), "%s renewed from CA 1", name[i]);
        step(what);
    }

    /* The CA rollover: trust both, reissue from the new one, trust only the new one. */
    make_ca("ca2", "rotation CA 2");
    char *ca1 = slurp("ca1.pem"), *ca2 = slurp("ca2.pem");
    size_t n1 = ca1 ? strlen(ca1) : 0, n2 = ca2 ? strlen(ca2) : 0;
    char *bundle = malloc(n1 + n2 + 1);
    if (bundle != NULL && ca1 != NULL && ca2 != NULL) {
        memcpy(bundle, ca1, n1);
        memcpy(bundle + n1, ca2, n2 + 1);
        put("bundle.pem", bundle);
    }
    free(bundle);
    free(ca1);
    free(ca2);
    set_all("ssl_ca", "bundle.pem");
    step("every node trusts CA 1 and CA 2");
    for (int i = 0; i < NODES && !bad; i++) {
        renew(i, "ca2", "bundle.pem");
        char what[64], serial[64], issuer[256];
        serving(i, serial, sizeof(serial), issuer, sizeof(issuer));
        check(strstr(issuer, "rotation CA 2") != NULL, "%s's certificate is from CA 2 (%s)", name[i], issuer);
        snprintf(what, sizeof(what), "%s reissued from CA 2", name[i]);
        step(what);
    }
    set_all("ssl_ca", "ca2.pem");
    step("every node trusts CA 2 alone");
    /* The aggregator's links made under CA 1 were closed by that reload (GOAWAY) and replaced: all from CA 2 now. */
    size_t old_links = 1, links_now = 0;
    for (int w = 0; w < 100 && (old_links > 0 || links_now == 0); w++) {
        struct clink_conn_status *l = NULL;
        size_t nl = 0;
        old_links = links_now = 0;
        if (clink_node_links(clink_server_node(srv[0]), &l, &nl) == 0) {
            for (size_t k = 0; k < nl; k++) {
                if (!l[k].is_server && l[k].open) {
                    links_now++;
                    old_links += strstr(l[k].peer_issuer, "rotation CA 2") == NULL;
                }
            }
        }
        free(l);
        usleep(50 * 1000);
    }
    check(old_links == 0 && links_now > 0, "the aggregator's open links are all to CA 2 certificates (%zu of %zu not)",
          old_links, links_now);
    int r1 = dial_with("ca1.pem"), r2 = dial_with("ca2.pem");
    check(r1 != 0, "a client that trusts only CA 1 is refused (got %s)", clink_strerror(r1));
    check(r2 == 0, "a client that trusts CA 2 gets in (%s)", clink_strerror(r2));

    atomic_store(&stop, 1);
    for (unsigned t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    for (int i = 0; i < NODES; i++) {
        clink_server_free(srv[i]);
    }
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CLINK_IGNORE(system(cmd));
    printf("driver_rotate: %d calls to leaf1, %d to leaf2, %d failed: %s\n", atomic_load(&calls[1]),
           atomic_load(&calls[2]), atomic_load(&failed), bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
