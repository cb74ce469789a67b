/*
 * The ops endpoint (clink/ops.h): requests arrive on a worker (the node's
 * HTTPS port), are copied onto a bounded queue and answered by one ops
 * thread, which may wait for every worker while it gathers links; a worker
 * never waits for anything.
 */
#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clink/accounts.h"
#include "clink/auth.h"
#include "clink/http.h"
#include "clink/ops.h"
#include "clink/pool.h"
#include "clink/transport.h"
#include "ops/ops_int.h"
#include "ops/samples.h"

#define MAX_QUEUED 64 /* requests waiting for the ops thread; more get 503 at once */
#define MAX_READS  48 /* of which GETs: anonymous readers cannot crowd out an administrator's POST */
#define MAX_CERTS  256

struct job {
    struct job *next;
    struct clink_req *req;
    int head_only;                  /* HEAD: headers only, whatever the answer */
    struct clink_http_request http; /* authorization wiped after use */
    uint8_t *body;
    char client[64]; /* the client's address, without the port */
    char cipher[64];
    X509 *cert; /* the client's certificate, if it verified against the node's CAs */
};

struct clink_ops {
    struct clink_node *node;
    _Atomic(struct clink_cluster *) cluster;
    struct clink_accounts *accounts;
    clink_ops_reload_fn reload;
    void *reload_user;
    clink_ops_config_fn config;
    void *config_user;
    clink_ops_restart_fn restart;
    void *restart_user;
    clink_ops_renew_fn renew;
    void *renew_user;
    clink_ops_issuer_fn issuer;
    void *issuer_user;
    char name[64];
    char instance[17]; /* random, per process start: how clink-admin restart sees the node come back */
    unsigned warn_days;
    clink_log_fn log;
    void *log_user;
    enum clink_log_level log_level;
    struct clink__sampler *sampler; /* the page's charts: its own thread, a tick a second (samples.h) */
    /* each peer as its own ops port says: its own thread, started with the first cluster (peer_view.c) */
    struct clink__peer_views *views;
    pthread_mutex_t views_mu; /* starting it */

    pthread_t thread;
    int started;
    pthread_mutex_t mu; /* the queue and the last reload's outcome */
    pthread_cond_t cv;
    struct job *head, *tail;
    unsigned queued;
    int stop;
    int64_t reload_at;
    int reload_ok;
    char reload_msg[512];
};

/* ---- the log ---- */

static void olog(struct clink_ops *ops, enum clink_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void olog(struct clink_ops *ops, enum clink_log_level lvl, const char *fmt, ...)
{
    if (ops->log == NULL || lvl > ops->log_level) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    ops->log(ops->log_user, lvl, "ops", 0, fmt, ap);
    va_end(ap);
}

/* ---- responses ---- */

/*
 * One response, whole: the headers every page gets (no caching, no
 * sniffing, no framing, no script, HSTS) then the body (not for HEAD).
 */
static void respond(struct clink_req *req, int head_only, int status, const char *type, const char *extra_headers,
                    const char *body, size_t len)
{
    char hdr[1024];
    int n =
        snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
                 "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\n"
                 "Referrer-Policy: no-referrer\r\n"
                 "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'\r\n"
                 "Strict-Transport-Security: max-age=31536000\r\n%s\r\n",
                 status, clink_http_reason(status), type, len, extra_headers ? extra_headers : "");
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = (size_t)n},
                           {.iov_base = (void *)(uintptr_t)body, .iov_len = head_only ? 0 : len}};
    CLINK_IGNORE(clink_req_respond(req, iov, 2));
}

/* A HEAD request gets the headers of the answer a GET would get, never a body (RFC 9110 9.3.2). */
static void respond_text(struct clink_req *req, int head_only, int status, const char *extra_headers, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));
static void respond_text(struct clink_req *req, int head_only, int status, const char *extra_headers, const char *fmt,
                         ...)
{
    char body[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    respond(req, head_only, status, "text/plain; charset=utf-8", extra_headers, body,
            n < 0                      ? 0
            : (size_t)n < sizeof(body) ? (size_t)n
                                       : sizeof(body) - 1);
}

/* ---- snapshot ---- */

static void add_ctx_certs(struct clink__ops_snapshot *s, struct clink_tls_ctx *ctx, const char *use)
{
    if (ctx == NULL) {
        return;
    }
    struct clink_cert_info ci[32];
    size_t n = clink_tls_ctx_certs(ctx, ci, 32);
    for (size_t i = 0; i < n && i < 32 && s->ncerts < MAX_CERTS; i++) {
        s->certs[s->ncerts].ci = ci[i];
        s->certs[s->ncerts].use = use;
        s->ncerts++;
    }
    clink_tls_ctx_free(ctx);
}

static int snapshot(struct clink_ops *ops, struct clink__ops_snapshot *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", ops->name);
    s->now = (int64_t)time(NULL);
    s->port = clink_node_port(ops->node);
    s->https_port = clink_node_https_port(ops->node);
    s->workers = clink_node_workers(ops->node);
    s->secure = clink_node_secure_transport(ops->node);
    s->warn_days = ops->warn_days;
    s->hist = clink__sampler_samples(ops->sampler);
    pthread_mutex_lock(&ops->views_mu);
    if (ops->views != NULL && (s->views = calloc(CLINK__PEER_VIEWS, sizeof(*s->views))) != NULL) {
        s->nviews = clink__peer_views_copy(ops->views, s->views, CLINK__PEER_VIEWS);
    }
    pthread_mutex_unlock(&ops->views_mu);
    clink_node_get_stats(ops->node, &s->stats);
    clink_accounts_login_stats(ops->accounts, &s->logins);
    int ret = clink_node_links(ops->node, &s->links, &s->nlinks);
    if (ret < 0) {
        return ret;
    }
    struct clink_cluster *cl = atomic_load(&ops->cluster);
    if (cl != NULL) {
        size_t n = clink_cluster_peers(cl, NULL, 0);
        s->peers = calloc(n ? n : 1, sizeof(*s->peers));
        if (s->peers == NULL) {
            return -CLINK_ENOMEM;
        }
        s->npeers = clink_cluster_peers(cl, s->peers, n);
        s->npeers = s->npeers < n ? s->npeers : n;
    }
    s->certs = calloc(MAX_CERTS, sizeof(*s->certs));
    if (s->certs == NULL) {
        return -CLINK_ENOMEM;
    }
    add_ctx_certs(s, clink_node_tls(ops->node, 0), "node");
    add_ctx_certs(s, clink_node_tls(ops->node, 1), "https");
    /* Peers' certificates, once each (the same certificate on several links is one row). */
    for (size_t i = 0; i < s->nlinks && s->ncerts < MAX_CERTS; i++) {
        const struct clink_conn_status *l = &s->links[i];
        if (l->peer_subject[0] == '\0') {
            continue;
        }
        int seen = 0;
        for (size_t k = 0; k < s->ncerts && !seen; k++) {
            const struct clink__ops_cert *c = &s->certs[k];
            seen = !strcmp(c->use, "peer") && !strcmp(c->ci.subject, l->peer_subject) &&
                   !strcmp(c->ci.serial, l->peer_serial);
        }
        if (seen) {
            continue;
        }
        struct clink__ops_cert *c = &s->certs[s->ncerts++];
        c->use = "peer";
        c->ci.kind = CLINK_CERT_OWN;
        snprintf(c->ci.subject, sizeof(c->ci.subject), "%s", l->peer_subject);
        snprintf(c->ci.issuer, sizeof(c->ci.issuer), "%s", l->peer_issuer);
        snprintf(c->ci.serial, sizeof(c->ci.serial), "%s", l->peer_serial);
        c->ci.not_after = l->peer_not_after;
        snprintf(c->peer, sizeof(c->peer), "%s", l->label[0] ? l->label : l->peer_addr);
        c->inbound = l->is_server;
    }
    pthread_mutex_lock(&ops->mu);
    s->reload_at = ops->reload_at;
    s->reload_ok = ops->reload_ok;
    snprintf(s->reload_msg, sizeof(s->reload_msg), "%s", ops->reload_msg);
    pthread_mutex_unlock(&ops->mu);
    return 0;
}

static void snapshot_free(struct clink__ops_snapshot *s)
{
    free(s->views);
    free(s->links);
    free(s->peers);
    free(s->certs);
}

/*
 * What an anonymous reader of the port does not see: who is logged in and
 * from where. Inbound links lose their account, address and client
 * certificate (the certificate list keeps its subject and expiry, without
 * the address); links this node dialled (its cluster, from its own config)
 * keep theirs.
 */
static void redact(struct clink__ops_snapshot *s)
{
    for (size_t i = 0; i < s->ncerts; i++) {
        if (s->certs[i].inbound) {
            snprintf(s->certs[i].peer, sizeof(s->certs[i].peer), "-"); /* the subject stays: its expiry matters */
        }
    }
    for (size_t i = 0; i < s->nlinks; i++) {
        struct clink_conn_status *l = &s->links[i];
        if (l->is_server) {
            l->account[0] = '\0';
            snprintf(l->peer_addr, sizeof(l->peer_addr), "-");
            l->peer_subject[0] = l->peer_issuer[0] = l->peer_serial[0] = '\0';
        }
    }
}

static int render(struct clink_ops *ops, const char *what, int full, char **out, size_t *len)
{
    int (*fn)(const struct clink__ops_snapshot *, struct clink__sbuf *) = !strcmp(what, "metrics")  ? clink__ops_metrics
                                                                          : !strcmp(what, "status") ? clink__ops_json
                                                                          : !strcmp(what, "page")   ? clink__ops_page
                                                                                                    : NULL;
    if (fn == NULL) {
        return -CLINK_EINVAL;
    }
    struct clink__ops_snapshot s;
    struct clink__sbuf b = {0};
    int ret = snapshot(ops, &s);
    if (ret == 0 && !full) {
        redact(&s);
    }
    if (ret == 0) {
        ret = fn(&s, &b);
    }
    snapshot_free(&s);
    if (ret < 0) {
        free(b.p);
        return ret;
    }
    *out = b.p;
    *len = b.n;
    return 0;
}

int clink_ops_render(struct clink_ops *ops, const char *what, char **out, size_t *len)
{
    if (ops == NULL || what == NULL || out == NULL || len == NULL) {
        return -CLINK_EINVAL;
    }
    return render(ops, what, 1, out, len);
}

/* ---- who may change things ---- */

/*
 * HTTP Basic as an account with grant ALL: "user:password", or "user:" with
 * a client certificate that the account's REQUIRE accepts (a login nothing
 * can guess, so no throttle can lock it out). Every login passes the
 * accounts' failed-login throttle, whose refusals are 429. Returns 0, or the
 * status to answer (401: no or wrong credentials, 403: not an
 * administrator, 429: too many failures); the decoded password is wiped here.
 */
static int authorize(struct clink_ops *ops, struct job *j, char *who, size_t whocap)
{
    const char *a = j->http.authorization;
    if (strncasecmp(a, "Basic ", 6) != 0) {
        return 401;
    }
    a += 6;
    while (*a == ' ') {
        a++;
    }
    size_t n = strlen(a);
    unsigned char dec[400];
    if (n == 0 || n % 4 != 0 || n / 4 * 3 >= sizeof(dec)) {
        return 401;
    }
    int m = EVP_DecodeBlock(dec, (const unsigned char *)a, (int)n);
    if (m < 0) {
        return 401;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
    m -= (n >= 1 && a[n - 1] == '=') + (n >= 2 && a[n - 2] == '=');
    dec[m] = '\0';
    char *colon = memchr(dec, ':', (size_t)m);
    int status = 401;
    if (colon != NULL && ops->accounts != NULL && memchr(dec, '\0', (size_t)m) == NULL) {
        *colon = '\0';
        const char *user = (const char *)dec, *pass = colon + 1;
        struct clink_login login = {.user = user,
                                    .host = j->client,
                                    .tls = 1,
                                    .cipher = j->cipher,
                                    .peer_cert = j->cert,
                                    .peer_verified = j->cert != NULL,
                                    .method = pass[0] ? CLINK_LOGIN_CLEARTEXT : CLINK_LOGIN_NONE,
                                    .auth = (const uint8_t *)pass,
                                    .auth_len = strlen(pass)};
        char matched[200], why[256];
        why[0] = '\0';
        int ret = clink_accounts_check(ops->accounts, &login, matched, sizeof(matched), why, sizeof(why));
        if (ret == 0) {
            status = clink_accounts_is_admin(ops->accounts, matched) ? 0 : 403;
            snprintf(why, sizeof(why), "%s", status == 403 ? "the account does not hold grant ALL" : "");
        } else if (ret == -CLINK_EAGAIN) {
            status = 429;
        }
        /* The name comes from the network and is shown (reload message, refusals): printable and short. */
        char shown[65];
        size_t k = 0;
        for (; k + 1 < sizeof(shown) && user[k] != '\0'; k++) {
            shown[k] = user[k] >= 0x20 && user[k] < 0x7f && user[k] != '\'' ? user[k] : '?';
        }
        shown[k] = '\0';
        char subject[160] = "";
        if (j->cert != NULL && pass[0] == '\0') {
            /* A certificate login: who it is, as its certificate says (RFC 2253, printable). */
            X509_NAME_oneline(X509_get_subject_name(j->cert), subject, sizeof(subject));
            for (char *c = subject; *c; c++) {
                *c = *c >= 0x20 && *c < 0x7f ? *c : '?';
            }
        }
        snprintf(who, whocap, "'%s'@'%.63s'%s%.100s", shown, j->client, subject[0] ? " certificate " : "", subject);
        if (status != 0) {
            olog(ops, CLINK_LOG_WARN, "%s %s by %s refused (%d): %s", j->http.method, j->http.path, who, status, why);
        }
    } else {
        olog(ops, CLINK_LOG_WARN, "%s %s from %s refused (401): %s", j->http.method, j->http.path, j->client,
             ops->accounts == NULL ? "this node has no accounts" : "no or malformed Basic credentials");
    }
    OPENSSL_cleanse(dec, sizeof(dec));
    return status;
}

/* The "state" of a {"state": "..."} body: a JSON object whose "state" member is one of the four names. */
static int body_state(const struct job *j, enum clink_secure_transport *out)
{
    static const char *names[] = {"PLAINTEXT", "ACCEPT_BOTH", "PREFER_TLS", "REQUIRE_TLS"};
    cJSON *root = j->body ? cJSON_ParseWithLength((const char *)j->body, j->http.body_len) : NULL;
    const char *v = cJSON_IsObject(root) ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "state")) : NULL;
    int ret = -1;
    for (int i = 0; v != NULL && i < 4; i++) {
        if (strcmp(v, names[i]) == 0) {
            *out = (enum clink_secure_transport)(CLINK_SECURE_PLAINTEXT + i);
            ret = 0;
        }
    }
    cJSON_Delete(root);
    return ret;
}

/* 1 if the query string (a=b&c=d) holds param ("full=1") as one whole parameter. */
static int query_has(const char *query, const char *param)
{
    size_t n = strlen(param);
    for (const char *q = query; q != NULL; q = strchr(q, '&') ? strchr(q, '&') + 1 : NULL) {
        if (strncmp(q, param, n) == 0 && (q[n] == '\0' || q[n] == '&')) {
            return 1;
        }
    }
    return 0;
}

/* The answer to a refused login (status from authorize()); 0 when there was none to give. */
static int answer_refused_login(struct clink_req *req, int head_only, int status, const char *who)
{
    if (status == 429) {
        /* The wait grows with each failure (up to the throttle's longest); a second is where it starts. */
        respond_text(req, head_only, 429, "Retry-After: 1\r\n",
                     "too many failed logins: wait and try again (each failure makes the wait longer), or log in "
                     "with a client certificate\n");
    } else if (status == 401) {
        respond_text(req, head_only, 401, "WWW-Authenticate: Basic realm=\"clink ops\", charset=\"UTF-8\"\r\n",
                     "log in as an account with grant ALL\n");
    } else if (status == 403) {
        respond_text(req, head_only, 403, NULL, "%s does not hold grant ALL\n", who);
    }
    return status != 0;
}

/* POST /config and POST /restart (admin.c builds the answers). */
static void admin_action(struct clink_ops *ops, struct job *j, int restart, const char *who)
{
    struct clink__sbuf b = {0};
    int status = restart ? clink__ops_restart_answer(ops->restart != NULL,
                                                     ops->restart ? "stopping; the supervisor starts it again"
                                                                  : "this node cannot restart itself (no supervisor): "
                                                                    "restart it where it runs",
                                                     &b)
                         : clink__ops_config(ops->config, ops->config_user, j->body, j->http.body_len, who, &b);
    respond(j->req, 0, b.err ? 500 : status, "application/json", NULL, b.p ? b.p : "", b.p ? b.n : 0);
    free(b.p);
    if (restart && ops->restart != NULL) {
        /* Answered first: the node stops right after, and its drain lets the answer go out. */
        char msg[256] = "";
        olog(ops, CLINK_LOG_WARN, "restart asked by %s", who);
        if (ops->restart(ops->restart_user, who, msg, sizeof(msg)) < 0) {
            olog(ops, CLINK_LOG_WARN, "restart asked by %s failed: %s", who, msg);
        }
    }
}

static void post(struct clink_ops *ops, struct job *j)
{
    struct clink_req *req = j->req;
    int is_reload = !strcmp(j->http.path, "/reload"), is_config = !strcmp(j->http.path, "/config");
    int is_restart = !strcmp(j->http.path, "/restart");
    int is_renew = !strcmp(j->http.path, "/csr") || !strcmp(j->http.path, "/cert");
    int is_issuer = !strcmp(j->http.path, "/accounts/issuer");
    if (!is_reload && !is_config && !is_restart && !is_renew && !is_issuer &&
        strcmp(j->http.path, "/secure-transport") != 0) {
        respond_text(req, 0, 404, NULL,
                     "no such action: POST /reload, /secure-transport, /config, /restart, /csr, /cert or "
                     "/accounts/issuer\n");
        return;
    }
    if (strncasecmp(j->http.content_type, "application/json", 16) != 0) {
        respond_text(req, 0, 415, NULL, "POST bodies are application/json (no HTML form can send it across sites)\n");
        return;
    }
    char who[320] = "";
    int status = authorize(ops, j, who, sizeof(who));
    if (answer_refused_login(req, 0, status, who)) {
        return;
    }
    if (is_issuer) {
        struct clink__sbuf b = {0};
        int answer = clink__ops_issuer(ops->issuer, ops->issuer_user, j->body, j->http.body_len, who, &b);
        respond(req, 0, b.err ? 500 : answer, "application/json", NULL, b.p ? b.p : "", b.p ? b.n : 0);
        free(b.p);
        return;
    }
    if (is_renew) {
        struct clink__sbuf b = {0};
        int answer = clink__ops_renew(ops->renew, ops->renew_user, !strcmp(j->http.path, "/csr"), j->body,
                                      j->http.body_len, who, &b);
        respond(req, 0, b.err ? 500 : answer, "application/json", NULL, b.p ? b.p : "", b.p ? b.n : 0);
        free(b.p);
        return;
    }
    if (is_config || is_restart) {
        admin_action(ops, j, is_restart, who);
        return;
    }
    char msg[300];
    if (is_reload) {
        if (ops->reload == NULL) {
            respond_text(req, 0, 501, NULL, "this node has no reload action\n");
            return;
        }
        msg[0] = '\0';
        int ret = ops->reload(ops->reload_user, msg, sizeof(msg));
        pthread_mutex_lock(&ops->mu);
        ops->reload_at = (int64_t)time(NULL);
        ops->reload_ok = ret == 0;
        snprintf(ops->reload_msg, sizeof(ops->reload_msg), "%.300s (by %.200s)", msg, who);
        pthread_mutex_unlock(&ops->mu);
        /* What the reload did, in words (also kept in /status: node.last_reload). */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", ret == 0);
        cJSON_AddStringToObject(o, "message", msg);
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        respond_text(req, 0, ret == 0 ? 200 : 500, NULL, "%s\n", text ? text : "{}");
        cJSON_free(text);
        return;
    }
    enum clink_secure_transport st;
    if (body_state(j, &st) < 0) {
        respond_text(req, 0, 400, NULL,
                     "expected {\"state\": \"PLAINTEXT\" | \"ACCEPT_BOTH\" | \"PREFER_TLS\" | \"REQUIRE_TLS\"}\n");
        return;
    }
    int ret = clink_node_set_secure_transport(ops->node, st);
    if (ret < 0) {
        respond_text(req, 0, 409, NULL, "{\"ok\":false,\"message\":\"%s\"}\n",
                     ret == -CLINK_EINVAL
                         ? "this node cannot take that state (no TLS identity, or plaintext not allowed)"
                         : clink_strerror(ret));
        return;
    }
    olog(ops, CLINK_LOG_INFO, "transport security set to %s by %s", clink_secure_transport_name(st), who);
    respond_text(req, 0, 200, NULL, "{\"ok\":true,\"secure_transport\":\"%s\"}\n", clink_secure_transport_name(st));
}

static void serve(struct clink_ops *ops, struct job *j)
{
    struct clink_req *req = j->req;
    const char *m = j->http.method, *path = j->http.path;
    if (!strcmp(m, "POST")) {
        post(ops, j);
        return;
    }
    if (!strcmp(path, "/cluster")) {
        /* Names and addresses from this node's own config, as /status always shows them. */
        struct clink__sbuf b = {0};
        int status = clink__ops_cluster(ops->node, atomic_load(&ops->cluster), ops->name, ops->instance, &b);
        respond(req, j->head_only, b.err ? 500 : status, "application/json", NULL, b.p ? b.p : "", b.p ? b.n : 0);
        free(b.p);
        return;
    }
    const char *what = !strcmp(path, "/")          ? "page"
                       : !strcmp(path, "/metrics") ? "metrics"
                       : !strcmp(path, "/status")  ? "status"
                                                   : NULL;
    if (what == NULL) {
        respond_text(req, j->head_only, 404, NULL, "not found: try /, /metrics, /status or /cluster\n");
        return;
    }
    /*
     * Who is logged in, and from where, is for administrators: /status and
     * the page show it to a reader who logs in (sending credentials, or
     * asking with ?full=1, which prompts a browser), and hide it otherwise.
     * /metrics names no client.
     */
    int full = 0;
    if (strcmp(what, "metrics") != 0 && (j->http.authorization[0] != '\0' || query_has(j->http.query, "full=1"))) {
        char who[320] = "";
        if (answer_refused_login(req, j->head_only, authorize(ops, j, who, sizeof(who)), who)) {
            return;
        }
        full = 1;
    }
    char *body = NULL;
    size_t len = 0;
    int ret = render(ops, what, full, &body, &len);
    if (ret < 0) {
        respond_text(req, j->head_only, 503, NULL, "cannot gather the node's state: %s\n", clink_strerror(ret));
        return;
    }
    const char *type = !strcmp(what, "page")      ? "text/html; charset=utf-8"
                       : !strcmp(what, "metrics") ? "text/plain; version=0.0.4; charset=utf-8"
                                                  : "application/json";
    respond(req, !strcmp(m, "HEAD"), 200, type, NULL, body, len);
    free(body);
}

static void job_free(struct job *j)
{
    X509_free(j->cert);
    OPENSSL_cleanse(j->http.authorization, sizeof(j->http.authorization));
    if (j->body != NULL) {
        OPENSSL_cleanse(j->body, j->http.body_len);
        free(j->body);
    }
    free(j);
}

static void *ops_thread(void *arg)
{
    struct clink_ops *ops = arg;
    pthread_mutex_lock(&ops->mu);
    for (;;) {
        while (ops->head == NULL && !ops->stop) {
            pthread_cond_wait(&ops->cv, &ops->mu);
        }
        struct job *j = ops->head;
        if (j == NULL) {
            break;
        }
        ops->head = j->next;
        if (ops->head == NULL) {
            ops->tail = NULL;
        }
        ops->queued--;
        int stop = ops->stop;
        pthread_mutex_unlock(&ops->mu);
        if (stop) {
            respond_text(j->req, j->head_only, 503, NULL, "the node is stopping\n");
        } else {
            serve(ops, j);
        }
        job_free(j);
        pthread_mutex_lock(&ops->mu);
    }
    pthread_mutex_unlock(&ops->mu);
    return NULL;
}

/* On a worker: copy what the ops thread needs and queue it; never wait. */
static void on_http(struct clink_req *req, void *user)
{
    struct clink_ops *ops = user;
    const struct clink_http_request *h = clink_req_http(req);
    struct job *j = h ? calloc(1, sizeof(*j)) : NULL;
    if (j == NULL) {
        respond_text(req, 0, 503, NULL, "out of memory\n");
        return;
    }
    j->req = req;
    j->head_only = !strcmp(h->method, "HEAD");
    j->http = *h;
    if (h->body_len > 0 && (j->body = malloc(h->body_len)) != NULL) {
        memcpy(j->body, h->body, h->body_len);
    }
    j->http.body = NULL;
    if (h->body_len > 0 && j->body == NULL) {
        job_free(j);
        respond_text(req, 0, 503, NULL, "out of memory\n");
        return;
    }
    struct clink_conn_status st;
    if (clink_conn_get_status(clink_req_conn(req), &st) == 0) {
        /* "1.2.3.4:5678" or "[::1]:5678": the address without its port, as accounts' host patterns want it. */
        const char *a = st.peer_addr;
        const char *end = a[0] == '[' ? strchr(a, ']') : strrchr(a, ':');
        size_t n = end ? (size_t)(end - a) : strlen(a);
        if (a[0] == '[') {
            a++;
            n = n > 0 ? n - 1 : 0;
        }
        if (n > 7 && strncasecmp(a, "::ffff:", 7) == 0 && memchr(a + 7, '.', n - 7) != NULL) {
            a += 7; /* an IPv4 client of a dual-stack port: accounts name it 127.0.0.1, not ::ffff:127.0.0.1 */
            n -= 7;
        }
        snprintf(j->client, sizeof(j->client), "%.*s", (int)n, a);
        snprintf(j->cipher, sizeof(j->cipher), "%s", st.cipher);
    }
    j->cert = clink_conn_peer_cert(clink_req_conn(req));
    pthread_mutex_lock(&ops->mu);
    int full = ops->queued >= (strcmp(h->method, "POST") == 0 ? MAX_QUEUED : MAX_READS) || ops->stop;
    if (!full) {
        if (ops->tail) {
            ops->tail->next = j;
        } else {
            ops->head = j;
        }
        ops->tail = j;
        ops->queued++;
        pthread_cond_signal(&ops->cv);
    }
    pthread_mutex_unlock(&ops->mu);
    if (full) {
        int head_only = j->head_only;
        job_free(j);
        respond_text(req, head_only, 503, "Retry-After: 1\r\n", "busy: too many requests waiting\n");
    }
}

int clink_ops_new(const struct clink_ops_opts *o, struct clink_ops **out)
{
    if (o == NULL || out == NULL || o->node == NULL || o->tls == NULL) {
        return -CLINK_EINVAL;
    }
    struct clink_ops *ops = calloc(1, sizeof(*ops));
    if (ops == NULL) {
        return -CLINK_ENOMEM;
    }
    ops->node = o->node;
    atomic_init(&ops->cluster, NULL);
    ops->accounts = o->accounts;
    if (ops->accounts) {
        clink_accounts_ref(ops->accounts);
    }
    ops->reload = o->reload;
    ops->reload_user = o->reload_user;
    ops->config = o->config;
    ops->config_user = o->config_user;
    ops->restart = o->restart;
    ops->restart_user = o->restart_user;
    ops->renew = o->renew;
    ops->renew_user = o->renew_user;
    ops->issuer = o->issuer;
    ops->issuer_user = o->issuer_user;
    snprintf(ops->name, sizeof(ops->name), "%s", o->name ? o->name : "node");
    unsigned char rnd[8] = {0};
    CLINK_IGNORE(RAND_bytes(rnd, sizeof(rnd)));
    for (int i = 0; i < 8; i++) {
        snprintf(ops->instance + 2 * i, 3, "%02x", rnd[i]);
    }
    ops->warn_days = o->expiry_warn_days ? o->expiry_warn_days : 30;
    ops->log = o->log;
    ops->log_user = o->log_user;
    ops->log_level = o->log_level ? o->log_level : CLINK_LOG_WARN;

    pthread_mutex_init(&ops->mu, NULL);
    pthread_mutex_init(&ops->views_mu, NULL);
    pthread_cond_init(&ops->cv, NULL);
    int ret = clink__sampler_new(ops->node, &ops->sampler);
    if (ret < 0) {
        clink_ops_free(ops);
        return ret;
    }
    /* The thread first: once the port is the node's, ops must live as long as the node (no undoing it). */
    ret = -pthread_create(&ops->thread, NULL, ops_thread, ops);
    ops->started = ret == 0;
    if (ret == 0) {
        ret = clink_node_listen_https(o->node, o->addr ? o->addr : "127.0.0.1", o->port, o->tls, on_http, ops);
    }
    if (ret < 0) {
        clink_ops_free(ops);
        return ret;
    }
    *out = ops;
    return 0;
}

void clink_ops_set_cluster(struct clink_ops *ops, struct clink_cluster *cl)
{
    if (ops != NULL) {
        atomic_store(&ops->cluster, cl);
        clink__sampler_set_cluster(ops->sampler, cl);
        pthread_mutex_lock(&ops->views_mu);
        if (ops->views == NULL && cl != NULL) {
            ops->views = clink__peer_views_start(ops->node); /* NULL (no memory): the page goes without */
        }
        clink__peer_views_set_cluster(ops->views, cl);
        pthread_mutex_unlock(&ops->views_mu);
    }
}

struct clink__sampler *clink__ops_sampler(struct clink_ops *ops)
{
    return ops->sampler;
}

void clink_ops_free(struct clink_ops *ops)
{
    if (ops == NULL) {
        return;
    }
    pthread_mutex_lock(&ops->mu);
    ops->stop = 1;
    pthread_cond_broadcast(&ops->cv);
    pthread_mutex_unlock(&ops->mu);
    if (ops->started) {
        pthread_join(ops->thread, NULL);
    }
    clink__sampler_free(ops->sampler);
    clink__peer_views_stop(ops->views);
    clink_accounts_free(ops->accounts);
    pthread_mutex_destroy(&ops->views_mu);
    pthread_mutex_destroy(&ops->mu);
    pthread_cond_destroy(&ops->cv);
    free(ops);
}
