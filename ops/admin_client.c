/*
 * The client side of the ops endpoint (clink/admin.h): one HTTPS request
 * per connection, blocking with a deadline, the node verified by CA and
 * name, the administrator by client certificate (or password).
 */
#include "clink/admin.h"
#include "ops/ops_int.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ANSWER (1 << 20)

struct clink_admin {
    SSL_CTX *ctx;
    char server_name[256]; /* "" : each node's address */
    char *auth;            /* "Basic base64(user:password)", wiped at free */
    uint32_t timeout_ms;
};

static void ssl_err(char *err, size_t errlen, const char *what)
{
    char e[256];
    ERR_error_string_n(ERR_get_error(), e, sizeof(e));
    snprintf(err, errlen, "%s: %s", what, e);
    ERR_clear_error();
}

int clink_admin_new(const struct clink_admin_opts *o, struct clink_admin **out, char *err, size_t errlen)
{
    char scratch[8];
    err = err && errlen ? err : scratch;
    errlen = err == scratch ? sizeof(scratch) : errlen;
    err[0] = '\0';
    if (o == NULL || out == NULL || o->ca_file == NULL || o->user == NULL || strchr(o->user, ':') != NULL ||
        !o->cert_file != !o->key_file || strlen(o->user) > 64) {
        snprintf(err, errlen, "a CA file and an account name (no ':') are needed; a certificate goes with its key");
        return -CLINK_EINVAL;
    }
    struct clink_admin *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
        free(a);
        return -CLINK_ENOMEM;
    }
    a->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
    snprintf(a->server_name, sizeof(a->server_name), "%s", o->server_name ? o->server_name : "");
    SSL_CTX_set_min_proto_version(a->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(a->ctx, SSL_VERIFY_PEER, NULL);
    int ret = 0;
    if (SSL_CTX_load_verify_locations(a->ctx, o->ca_file, NULL) != 1) {
        ssl_err(err, errlen, o->ca_file);
        ret = -CLINK_ECONFIG;
    } else if (o->cert_file && (SSL_CTX_use_certificate_chain_file(a->ctx, o->cert_file) != 1 ||
                                SSL_CTX_use_PrivateKey_file(a->ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
                                SSL_CTX_check_private_key(a->ctx) != 1)) {
        ssl_err(err, errlen, o->cert_file);
        ret = -CLINK_ECONFIG;
    }
    /* HTTP Basic: "user:" with a certificate (the ops endpoint's certificate login), "user:password" otherwise. */
    char cred[200];
    unsigned char b64[280];
    int n = snprintf(cred, sizeof(cred), "%s:%s", o->user, o->password ? o->password : "");
    if (ret == 0 && (n < 0 || (size_t)n >= sizeof(cred))) {
        snprintf(err, errlen, "password too long");
        ret = -CLINK_EINVAL;
    }
    if (ret == 0) {
        EVP_EncodeBlock(b64, (const unsigned char *)cred, n);
        size_t len = strlen((char *)b64) + 7;
        if ((a->auth = malloc(len)) == NULL) {
            ret = -CLINK_ENOMEM;
        } else {
            snprintf(a->auth, len, "Basic %s", b64);
        }
    }
    OPENSSL_cleanse(cred, sizeof(cred));
    OPENSSL_cleanse(b64, sizeof(b64));
    if (ret < 0) {
        clink_admin_free(a);
        return ret;
    }
    *out = a;
    return 0;
}

struct clink_admin *clink__admin_anonymous(struct ssl_ctx_st *ctx, uint32_t timeout_ms)
{
    struct clink_admin *a = calloc(1, sizeof(*a));
    if (a == NULL || SSL_CTX_up_ref(ctx) != 1) {
        free(a);
        return NULL;
    }
    a->ctx = ctx;
    a->timeout_ms = timeout_ms;
    return a;
}

int clink__admin_get(struct clink_admin *a, const char *host, uint16_t port, const char *verify_name, const char *path,
                     int *status, char **body, char *err, size_t errlen)
{
    snprintf(a->server_name, sizeof(a->server_name), "%s", verify_name ? verify_name : "");
    return clink_admin_request(a, host, port, "GET", path, NULL, status, body, err, errlen);
}

void clink_admin_free(struct clink_admin *a)
{
    if (a == NULL) {
        return;
    }
    if (a->auth != NULL) {
        OPENSSL_cleanse(a->auth, strlen(a->auth));
        free(a->auth);
    }
    SSL_CTX_free(a->ctx);
    free(a);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd can do what SSL asked for, or the deadline. */
static int wait_io(int fd, int want_write, int64_t deadline)
{
    int left = (int)(deadline - now_ms());
    struct pollfd p = {.fd = fd, .events = want_write ? POLLOUT : POLLIN};
    return left > 0 && poll(&p, 1, left) == 1 ? 0 : -1;
}

static int dial(const char *host, uint16_t port, int64_t deadline, char *err, size_t errlen)
{
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res = NULL;
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g != 0) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(g));
        return -1;
    }
    int fd = -1, e = ETIMEDOUT;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        socklen_t sl = sizeof(e);
        if (r != 0 && (errno != EINPROGRESS || wait_io(fd, 1, deadline) < 0 ||
                       getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0 || e != 0)) {
            e = r != 0 && errno != EINPROGRESS ? errno : (e ? e : ETIMEDOUT);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s port %u: %s", host, port, strerror(e));
    }
    return fd;
}

/* Drive one SSL call to completion or the deadline: 1 done, 0 the peer closed, -1 failed. */
static int ssl_step(SSL *ssl, int fd, int r, int64_t deadline)
{
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return wait_io(fd, e == SSL_ERROR_WANT_WRITE, deadline) == 0 ? 2 : -1;
    }
    return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

static int request(struct clink_admin *a, const char *host, uint16_t port, const char *method, const char *path,
                   const char *json, int *status, char **body, char *err, size_t errlen);

/*
 * A node that closes while we write (it is restarting) must not kill the
 * program with SIGPIPE, and a library does not change the process's
 * signal handling: SIGPIPE is blocked in this thread for the request, and
 * one it raised is taken back before the mask is restored.
 */
int clink_admin_request(struct clink_admin *a, const char *host, uint16_t port, const char *method, const char *path,
                        const char *json, int *status, char **body, char *err, size_t errlen)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int ret = request(a, host, port, method, path, json, status, body, err, errlen);
    sigpending(&pending);
    if (!was_pending && sigismember(&pending, SIGPIPE)) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ret;
}

static int request(struct clink_admin *a, const char *host, uint16_t port, const char *method, const char *path,
                   const char *json, int *status, char **body, char *err, size_t errlen)
{
    char scratch[8];
    err = err && errlen ? err : scratch;
    errlen = err == scratch ? sizeof(scratch) : errlen;
    if (a == NULL || host == NULL || method == NULL || path == NULL || status == NULL || body == NULL) {
        snprintf(err, errlen, "bad arguments");
        return -CLINK_EINVAL;
    }
    *status = 0;
    *body = NULL;
    int64_t deadline = now_ms() + a->timeout_ms;
    int fd = dial(host, port, deadline, err, errlen);
    if (fd < 0) {
        return -CLINK_EUNAVAIL;
    }
    SSL *ssl = SSL_new(a->ctx);
    char *req = NULL, *ans = NULL;
    int ret = -CLINK_ETLS;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* The node's certificate must name the address asked for, as a peer's must (VERIFY_IDENTITY). */
    unsigned char ip[16];
    const char *name = a->server_name[0] ? a->server_name : host;
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
    if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) : X509_VERIFY_PARAM_set1_host(vp, name, 0)) != 1 ||
        (!is_ip &&
         SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)(uintptr_t)name) != 1)) {
        snprintf(err, errlen, "%s: not a host name or address", name);
        goto out;
    }
    int r;
    while ((r = SSL_connect(ssl)) != 1) {
        if (ssl_step(ssl, fd, r, deadline) != 2) {
            long v = SSL_get_verify_result(ssl);
            if (v != X509_V_OK) {
                snprintf(err, errlen, "%s port %u: certificate refused: %s", host, port,
                         X509_verify_cert_error_string(v));
            } else {
                ssl_err(err, errlen, "TLS handshake");
            }
            goto out;
        }
    }
    const char *auth = a->auth ? a->auth : "";
    size_t blen = json ? strlen(json) : 0, rlen = 512 + strlen(auth) + strlen(host) + strlen(path) + blen;
    if ((req = malloc(rlen)) == NULL) {
        ret = -CLINK_ENOMEM;
        goto out;
    }
    /* No Authorization header without credentials: an ops port takes one as a login to check. */
    int n = snprintf(req, rlen,
                     "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, host, auth[0] ? "Authorization: " : "", auth, auth[0] ? "\r\n" : "", blen,
                     json ? json : "");
    for (int off = 0; off < n;) {
        if ((r = SSL_write(ssl, req + off, n - off)) > 0) {
            off += r;
        } else if (ssl_step(ssl, fd, r, deadline) != 2) {
            snprintf(err, errlen, "%s port %u: the request could not be sent", host, port);
            goto out;
        }
    }
    size_t got = 0;
    if ((ans = malloc(MAX_ANSWER + 1)) == NULL) {
        ret = -CLINK_ENOMEM;
        goto out;
    }
    for (;;) {
        if (got == MAX_ANSWER) {
            snprintf(err, errlen, "%s port %u: answer larger than 1 MiB", host, port);
            goto out;
        }
        if ((r = SSL_read(ssl, ans + got, (int)(MAX_ANSWER - got))) > 0) {
            got += (size_t)r;
            continue;
        }
        int s = ssl_step(ssl, fd, r, deadline);
        if (s == 2) {
            continue;
        }
        break; /* closed (cleanly or not): the answer is what came; Connection: close ends it */
    }
    ans[got] = '\0';
    char *sep = strstr(ans, "\r\n\r\n");
    if (got < 12 || strncmp(ans, "HTTP/1.", 7) != 0 || sep == NULL) {
        snprintf(err, errlen, "%s port %u: no HTTP answer in time (is it an ops endpoint?)", host, port);
        ret = -CLINK_EPROTO;
        goto out;
    }
    *status = atoi(ans + 9);
    memmove(ans, sep + 4, got - (size_t)(sep + 4 - ans) + 1);
    *body = ans;
    ans = NULL;
    ret = 0;
out:
    if (req != NULL) {
        OPENSSL_cleanse(req, strlen(req));
        free(req);
    }
    free(ans);
    SSL_free(ssl);
    close(fd);
    return ret;
}

static void copy_str(char *dst, size_t cap, const cJSON *o, const char *name)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
    snprintf(dst, cap, "%s", v ? v : "");
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int clink_admin_list(struct clink_admin *a, const char *host, uint16_t port, struct clink_admin_node **nodes, size_t *n,
                     char *err, size_t errlen)
{
    if (nodes == NULL || n == NULL) {
        return -CLINK_EINVAL;
    }
    *nodes = NULL;
    *n = 0;
    int status;
    char *body = NULL;
    int ret = clink_admin_request(a, host, port, "GET", "/cluster", NULL, &status, &body, err, errlen);
    if (ret < 0) {
        return ret;
    }
    cJSON *root = status == 200 ? cJSON_Parse(body) : NULL;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (count < 1) {
        snprintf(err, errlen, "%s port %u: GET /cluster answered %d: %.200s", host, port, status, body ? body : "");
        ret = -CLINK_EPROTO;
    } else if ((*nodes = calloc((size_t)count, sizeof(**nodes))) == NULL) {
        ret = -CLINK_ENOMEM;
    } else {
        const cJSON *o;
        cJSON_ArrayForEach(o, arr)
        {
            struct clink_admin_node *x = &(*nodes)[(*n)++];
            copy_str(x->name, sizeof(x->name), o, "name");
            copy_str(x->role, sizeof(x->role), o, "role");
            x->self = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "self"));
            copy_str(x->host, sizeof(x->host), o, "host");
            if (x->self) {
                snprintf(x->host, sizeof(x->host), "%s", host);
            }
            x->port = (uint16_t)num(o, "port");
            x->ops_port = x->self ? port : (uint16_t)num(o, "ops_port");
            x->up = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "up"));
            copy_str(x->secure_transport, sizeof(x->secure_transport), o, "secure_transport");
            copy_str(x->instance, sizeof(x->instance), o, "instance");
            x->cert_not_after = (int64_t)num(o, "cert_not_after");
        }
    }
    cJSON_Delete(root);
    free(body);
    return ret;
}

/* POST path with json to node; fill r from the answer. */
static int post(struct clink_admin *a, const struct clink_admin_node *node, const char *path, const char *json,
                struct clink_admin_result *r)
{
    memset(r, 0, sizeof(*r));
    if (node == NULL || node->ops_port == 0) {
        snprintf(r->outcome, sizeof(r->outcome), "failed");
        snprintf(r->message, sizeof(r->message), "no ops endpoint known for this node (down, or it runs none)");
        return -CLINK_EINVAL;
    }
    char *body = NULL;
    int ret = clink_admin_request(a, node->host, node->ops_port, "POST", path, json, &r->http_status, &body, r->message,
                                  sizeof(r->message));
    if (ret < 0) {
        snprintf(r->outcome, sizeof(r->outcome), "failed");
        return ret;
    }
    cJSON *root = cJSON_Parse(body);
    if (cJSON_IsObject(root)) {
        copy_str(r->outcome, sizeof(r->outcome), root, "outcome");
        copy_str(r->file, sizeof(r->file), root, "file");
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "why"));
        const char *rel = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "reload"));
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "message"));
        snprintf(r->message, sizeof(r->message), "%s", why && why[0] ? why : rel && rel[0] ? rel : msg ? msg : "");
    } else {
        /* a refused login and the like answer in text */
        size_t k = strcspn(body, "\n");
        snprintf(r->message, sizeof(r->message), "%.*s", (int)k, body);
    }
    int ok = r->http_status >= 200 && r->http_status < 300;
    if (r->outcome[0] == '\0' || (!ok && strcmp(r->outcome, "refused") != 0)) {
        snprintf(r->outcome, sizeof(r->outcome), "%s", ok ? "ok" : "failed");
    }
    cJSON_Delete(root);
    free(body);
    return ok ? 0 : -CLINK_EREMOTE;
}

int clink_admin_set_configs(struct clink_admin *a, const struct clink_admin_node *node, size_t n,
                            const char *const *keys, const char *const *values, struct clink_admin_result *r)
{
    cJSON *o = cJSON_CreateObject(), *set = cJSON_AddArrayToObject(o, "set");
    for (size_t i = 0; set != NULL && i < n; i++) {
        cJSON *kv = cJSON_CreateObject();
        cJSON_AddStringToObject(kv, "key", keys[i] ? keys[i] : "");
        cJSON_AddStringToObject(kv, "value", values[i] ? values[i] : "");
        cJSON_AddItemToArray(set, kv);
    }
    char *json = set ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (json == NULL) {
        memset(r, 0, sizeof(*r));
        snprintf(r->outcome, sizeof(r->outcome), "failed");
        return -CLINK_ENOMEM;
    }
    int ret = post(a, node, "/config", json, r);
    cJSON_free(json);
    return ret;
}

int clink_admin_set_config(struct clink_admin *a, const struct clink_admin_node *node, const char *key,
                           const char *value, struct clink_admin_result *r)
{
    return clink_admin_set_configs(a, node, 1, &key, &value, r);
}

int clink_admin_reload(struct clink_admin *a, const struct clink_admin_node *node, struct clink_admin_result *r)
{
    return post(a, node, "/reload", "{}", r);
}

int clink_admin_restart(struct clink_admin *a, const struct clink_admin_node *node, struct clink_admin_result *r)
{
    return post(a, node, "/restart", "{}", r);
}

int clink_admin_rotate_cert(struct clink_admin *a, const struct clink_admin_node *node, const char *ca_cert,
                            const char *ca_key, const char *trust_file, int64_t valid_for_s,
                            struct clink_admin_result *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->outcome, sizeof(r->outcome), "failed");
    if (node == NULL || node->ops_port == 0) {
        snprintf(r->message, sizeof(r->message), "no ops endpoint known for this node (down, or it runs none)");
        return -CLINK_EINVAL;
    }
    char *body = NULL, *signed_pem = NULL;
    int ret = clink_admin_request(a, node->host, node->ops_port, "POST", "/csr", "{}", &r->http_status, &body,
                                  r->message, sizeof(r->message));
    if (ret < 0) {
        return ret;
    }
    cJSON *root = cJSON_Parse(body);
    const char *csr = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "csr"));
    const char *cur = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "cert"));
    const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "why"));
    if (r->http_status != 200 || csr == NULL || cur == NULL) {
        snprintf(r->message, sizeof(r->message), "no signing request: %.1000s",
                 why    ? why
                 : root ? ""
                        : strtok(body, "\n"));
        ret = -CLINK_EREMOTE;
    } else if ((ret = clink_cert_sign_renewal(ca_cert, ca_key, csr, cur, trust_file, valid_for_s, &signed_pem,
                                              r->message, sizeof(r->message))) < 0) {
        /* r->message says why the CA side refused */
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "cert", signed_pem);
        char *json = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        ret = json ? post(a, node, "/cert", json, r) : -CLINK_ENOMEM;
        cJSON_free(json);
    }
    free(signed_pem);
    cJSON_Delete(root);
    free(body);
    return ret;
}

int clink_admin_replace_issuer(struct clink_admin *a, const struct clink_admin_node *node, const char *from,
                               const char *to, struct clink_admin_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "from", from ? from : "");
    cJSON_AddStringToObject(o, "to", to ? to : "");
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (json == NULL) {
        memset(r, 0, sizeof(*r));
        snprintf(r->outcome, sizeof(r->outcome), "failed");
        return -CLINK_ENOMEM;
    }
    int ret = post(a, node, "/accounts/issuer", json, r);
    cJSON_free(json);
    return ret;
}
