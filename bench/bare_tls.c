/*
 * Bare OpenSSL handshake baseline (see bare_tls.h). The contexts copy
 * auth/tls_ctx.c build() with its defaults; keep the two in step.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench/bare_tls.h"
#include "clink/auth.h"

/* DEFAULT_SUITES in auth/tls_ctx.c */
#define SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

static const unsigned char alpn_wire[] = "\x07" CLINK_ALPN;

static __attribute__((format(printf, 3, 4))) void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_error();
    if (e != 0 && n >= 0 && (size_t)n < errlen) {
        char buf[160];
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err + n, errlen - (size_t)n, " (%s)", buf);
    }
    ERR_clear_error();
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, alpn_wire, sizeof(alpn_wire) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* clink refuses a ClientHello without ALPN here; the baseline pays the same lookup. */
static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
    (void)arg;
    const unsigned char *ext = NULL;
    size_t len = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &len) != 1) {
        *al = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static SSL_CTX *build(const struct bare_tls_files *f, int server, char *err, size_t errlen)
{
    const char *cert = server ? f->server_cert : f->client_cert;
    const char *key = server ? f->server_key : f->client_key;
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        seterr(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    const char *what = "cannot set TLS versions";
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_security_level(ctx, 2);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    what = "cannot set ciphersuites";
    if (SSL_CTX_set_ciphersuites(ctx, SUITES) != 1) {
        goto fail;
    }
    what = "cannot load certificate, key or CA";
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1 ||
        SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1) {
        goto fail;
    }
    X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
    what = "cannot set verification parameters";
    if (X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT) != 1 ||
        SSL_CTX_set_purpose(ctx, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER) != 1) {
        goto fail;
    }
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (server) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
        static const unsigned char sid_ctx[] = "clink/cc0"; /* clink's, for client_cert = default */
        SSL_CTX_set_timeout(ctx, 7200);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        what = "cannot set session id context or tickets";
        if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1 ||
            SSL_CTX_set_num_tickets(ctx, 2) != 1) {
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        what = "cannot set ALPN";
        if (SSL_CTX_set_alpn_protos(ctx, alpn_wire, sizeof(alpn_wire) - 1) != 0) { /* 0 is success here */
            goto fail;
        }
    }
    return ctx;
fail:
    seterr(err, errlen, "%s context: %s (cert %s, key %s, CA %s)", server ? "server" : "client", what, cert, key,
           f->ca);
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *bare_tls_ctx(const struct bare_tls_files *f, int server, char *err, size_t errlen)
{
    return build(f, server, err, errlen);
}

/* One SSL_do_handshake on one end: 0 (done or wants the peer), -1 on failure. */
static int step(SSL *ssl, int *done, const char *who, char *err, size_t errlen)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        *done = 1;
        return 0;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    seterr(err, errlen, "%s handshake failed: SSL_get_error %d, verify: %s", who, e,
           X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    return -1;
}

/*
 * One dial: both SSLs, a BIO pair, the handshake, the client taking in the
 * tickets, and both SSLs freed. With sess != NULL it offers *sess and
 * replaces it with the newest ticket received. *resumed: the client resumed.
 */
static int handshake(SSL_CTX *cctx, SSL_CTX *sctx, const char *name, SSL_SESSION **sess, int *resumed, char *err,
                     size_t errlen)
{
    SSL *c = SSL_new(cctx);
    SSL *s = SSL_new(sctx);
    BIO *cb = NULL;
    BIO *sb = NULL;
    int ret = -1;
    if (c == NULL || s == NULL || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1) {
        seterr(err, errlen, "SSL_new or BIO_new_bio_pair failed");
        goto out;
    }
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    /* Like clink for a DNS name: host check and SNI. */
    if (SSL_set1_host(c, name) != 1 ||
        SSL_ctrl(c, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)(uintptr_t)name) != 1) {
        seterr(err, errlen, "cannot set expected name %s", name);
        goto out;
    }
    if (sess != NULL && *sess != NULL && SSL_set_session(c, *sess) != 1) {
        seterr(err, errlen, "SSL_set_session failed");
        goto out;
    }
    int cdone = 0;
    int sdone = 0;
    for (int round = 0; round < 8 && !(cdone && sdone); round++) {
        if ((!cdone && step(c, &cdone, "client", err, errlen) < 0) ||
            (!sdone && step(s, &sdone, "server", err, errlen) < 0)) {
            goto out;
        }
    }
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(c, &p, &n);
    if (!cdone || !sdone || n != strlen(CLINK_ALPN) || memcmp(p, CLINK_ALPN, n) != 0) {
        seterr(err, errlen, "handshake did not finish with ALPN %s", CLINK_ALPN);
        goto out;
    }
    /* The server wrote its tickets after the client's Finished: one read takes them in and returns no data. */
    unsigned char byte;
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(c, &byte, 1, &got) == 1 || SSL_get_error(c, 0) != SSL_ERROR_WANT_READ) {
        seterr(err, errlen, "client read after the handshake: expected tickets only");
        goto out;
    }
    *resumed = SSL_session_reused(c);
    if (sess != NULL) {
        SSL_SESSION *fresh = SSL_get1_session(c);
        if (fresh == NULL || fresh == *sess) {
            SSL_SESSION_free(fresh);
            seterr(err, errlen, "no new session ticket received");
            goto out;
        }
        SSL_SESSION_free(*sess);
        *sess = fresh;
    }
    ret = 0;
out:
    /* As clink does (transport/tls.c): otherwise SSL_free marks the newest ticket non-resumable. */
    if (c != NULL && SSL_is_init_finished(c)) {
        SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    SSL_free(c);
    SSL_free(s); /* and with them the BIO pair, made only once both exist */
    return ret;
}

static double secs_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

int bare_tls_handshakes(const struct bare_tls_files *f, int resume, unsigned ms, struct bare_hs_result *out)
{
    memset(out, 0, sizeof(*out));
    ERR_clear_error();
    SSL_CTX *sctx = build(f, 1, out->err, sizeof(out->err));
    SSL_CTX *cctx = sctx ? build(f, 0, out->err, sizeof(out->err)) : NULL;
    SSL_SESSION *sess = NULL;
    int resumed = 0;
    int ret = -1;
    if (cctx == NULL || (resume && handshake(cctx, sctx, f->name, &sess, &resumed, out->err, sizeof(out->err)) < 0)) {
        goto out;
    }
    char err[sizeof(out->err)];
    struct timespec w0, c0, w1, c1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    do {
        int r = handshake(cctx, sctx, f->name, resume ? &sess : NULL, &resumed, err, sizeof(err));
        if (r == 0 && resume && !resumed) {
            snprintf(err, sizeof(err), "handshake was not resumed");
            r = -1;
        }
        if (r == 0) {
            out->ok++;
        } else if (out->failed++ == 0) {
            memcpy(out->err, err, sizeof(err));
        }
        clock_gettime(CLOCK_MONOTONIC, &w1);
    } while (secs_between(&w0, &w1) * 1e3 < (double)ms);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    out->secs = secs_between(&w0, &w1);
    out->cpu_s = secs_between(&c0, &c1);
    out->per_s = out->secs > 0 ? (double)out->ok / out->secs : 0;
    out->cpu_us_per_hs = out->ok ? out->cpu_s * 1e6 / (double)out->ok : 0;
    ret = out->ok > 0 ? 0 : -1;
out:
    SSL_SESSION_free(sess);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    ERR_clear_error();
    return ret;
}
