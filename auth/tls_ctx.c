/*
 * TLS contexts for a node: one server SSL_CTX and one client SSL_CTX built
 * from the same certificate, key, CA bundle and policy. Everything fails
 * closed: a context is either fully verified and configured or not built.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/ticket_keys.h"
#include "auth/tls_ctx.h"
#include "clink/auth.h"

#define DEFAULT_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define DEFAULT_TLS12_CIPHERS                                                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                         \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

const struct clink_tls_opts clink_tls_opts_default = {0};

struct clink_tls_ctx {
    atomic_int refs;
    SSL_CTX *server;
    SSL_CTX *client;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && n >= 0 && (size_t)n < errlen) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(err + n, errlen - (size_t)n, " (%s)", buf);
    }
}

static const unsigned char alpn_wire[] = "\x07" CLINK_ALPN;

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    (void)arg;
    unsigned char *sel = NULL;
    if (SSL_get_app_data(ssl) == CLINK__SSL_OTHER) {
        return SSL_TLSEXT_ERR_NOACK; /* another protocol's ALPN (if any) is not ours to judge */
    }
    if (SSL_select_next_proto(&sel, outlen, alpn_wire, sizeof(alpn_wire) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        /* A client that does not offer clink/1 is not a clink node: refuse the handshake. */
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/*
 * OpenSSL calls the ALPN callback only when the client offers ALPN at all; a
 * client that offers none would get through. Refuse it at ClientHello time,
 * with the no_application_protocol alert (RFC 7301, section 3.2).
 */
char clink__ssl_other_marker[] = "other"; /* only its address matters */

static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
    (void)arg;
    if (SSL_get_app_data(ssl) == CLINK__SSL_OTHER) {
        return SSL_CLIENT_HELLO_SUCCESS; /* another protocol (the transport's MySQL door): no ALPN to expect */
    }
    const unsigned char *ext = NULL;
    size_t len = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &len) != 1) {
        *al = SSL_AD_NO_APPLICATION_PROTOCOL;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

/*
 * A private key readable by others is as good as published. The rule is
 * PostgreSQL's for its server key: owned by this process's user with no
 * access for group or others, or owned by root with at most group read (a
 * key shared through a group such as ssl-cert). stat follows links: a
 * container's mounted secret is judged by the file itself. 0, or
 * -CLINK_ECONFIG with the file, owner, mode and the fix in err.
 */
static int check_key_file(const char *path, int allow_open, char *err, size_t errlen)
{
    struct stat st;
    if (allow_open) {
        return 0;
    }
    if (stat(path, &st) != 0) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        return -CLINK_ECONFIG;
    }
    uid_t me = geteuid();
    int ok = (st.st_uid == me && (st.st_mode & 077) == 0) || (st.st_uid == 0 && (st.st_mode & 037) == 0);
    if (!ok) {
        seterr(err, errlen,
               "%s: private key owned by uid %u with mode %04o: it must belong to this user (uid %u) with mode 0600, "
               "or to root with mode 0640 or stricter (chmod 600 %s; where keys are mounted read-only, "
               "ssl_key_mode_check = OFF)",
               path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)me, path);
        return -CLINK_ECONFIG;
    }
    return 0;
}

/* Load every CRL in the file; a file with none is a mistake, not "nothing revoked". */
static int load_crls(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
    BIO *in = BIO_new_file(path, "r");
    if (in == NULL) {
        seterr(err, errlen, "%s: cannot open CRL file", path);
        return -CLINK_ECONFIG;
    }
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    X509_CRL *crl;
    while ((crl = PEM_read_bio_X509_CRL(in, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
        if (ok != 1) {
            BIO_free(in);
            seterr(err, errlen, "%s: cannot use CRL", path);
            return -CLINK_ECONFIG;
        }
        n++;
    }
    BIO_free(in);
    ERR_clear_error(); /* the loop ends on "no start line" */
    if (n == 0) {
        seterr(err, errlen, "%s: no PEM CRL in file", path);
        return -CLINK_ECONFIG;
    }
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_CRL_CHECK);
    return 0;
}

/* The node's own certificate must verify against its own CA bundle, now: catches wrong CA, expiry. */
static int check_own_chain(SSL_CTX *ctx, const char *cert_file, int strict, char *err, size_t errlen)
{
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    STACK_OF(X509) *chain = NULL;
    int ret = -CLINK_ECONFIG;
    X509_STORE_CTX *sctx = X509_STORE_CTX_new();

    if (sctx == NULL || SSL_CTX_get0_chain_certs(ctx, &chain) != 1) {
        seterr(err, errlen, "%s: cannot check certificate chain", cert_file);
        goto out;
    }
    if (X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), leaf, chain) != 1) {
        seterr(err, errlen, "%s: cannot check certificate chain", cert_file);
        goto out;
    }
    /*
     * As peers will check it (strict only when asked), and against the CRLs
     * when they are loaded: a revoked own certificate fails at start too.
     */
    unsigned long flags = X509_VERIFY_PARAM_get_flags(SSL_CTX_get0_param(ctx));
    X509_STORE_CTX_set_flags(sctx, strict ? flags | X509_V_FLAG_X509_STRICT : flags);
    if (X509_verify_cert(sctx) != 1) {
        int v = X509_STORE_CTX_get_error(sctx);
        ERR_clear_error();
        seterr(err, errlen, "%s: certificate does not verify against ssl_ca: %s", cert_file,
               X509_verify_cert_error_string(v));
        goto out;
    }
    ret = 0;
out:
    X509_STORE_CTX_free(sctx);
    return ret;
}

static int build(const struct clink_tls_opts *o, int server, SSL_CTX **out, char *err, size_t errlen)
{
    int ret = -CLINK_ECONFIG;
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

    if (ctx == NULL) {
        seterr(err, errlen, "SSL_CTX_new failed");
        return -CLINK_ENOMEM;
    }
    int minv = o->min_version == CLINK_TLS_1_2 ? TLS1_2_VERSION : TLS1_3_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, minv) != 1 || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        seterr(err, errlen, "cannot set TLS versions");
        goto out;
    }
    /*
     * No compression, no renegotiation, no kTLS by OpenSSL (clink installs
     * kTLS itself: over memory BIOs OpenSSL 3.0 cannot, see docs/ktls.md).
     */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
    /* Level 2: at least 112-bit security (RSA >= 2048, no SHA-1 signatures). */
    SSL_CTX_set_security_level(ctx, 2);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

    const char *suites = o->ciphersuites ? o->ciphersuites : DEFAULT_SUITES;
    if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
        seterr(err, errlen, "tls_ciphersuites: unknown TLS 1.3 ciphersuite in '%s'", suites);
        goto out;
    }
    const char *list = o->cipher_list ? o->cipher_list : DEFAULT_TLS12_CIPHERS;
    if (o->min_version == CLINK_TLS_1_2 && SSL_CTX_set_cipher_list(ctx, list) != 1) {
        seterr(err, errlen, "ssl_cipher: no known TLS 1.2 cipher in '%s'", list);
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1) {
        seterr(err, errlen, "%s: cannot load certificate", o->cert_file);
        goto out;
    }
    if (check_key_file(o->key_file, o->allow_open_key_file, err, errlen) < 0) {
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            seterr(err, errlen, "%s: key does not match certificate %s", o->key_file, o->cert_file);
        } else {
            seterr(err, errlen, "%s: cannot load private key", o->key_file);
        }
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        seterr(err, errlen, "%s: key does not match certificate %s", o->key_file, o->cert_file);
        goto out;
    }
    if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
        seterr(err, errlen, "%s: cannot load CA bundle", o->ca_file);
        goto out;
    }
    if (o->crl_file != NULL && (ret = load_crls(ctx, o->crl_file, err, errlen)) < 0) {
        goto out;
    }
    X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);
    /*
     * By default what `openssl verify` accepts at level 2: a CA without
     * keyUsage or a v1 leaf (what plain `openssl req -x509` and `openssl x509
     * -req` make) verifies; a keyUsage or extendedKeyUsage that is stated
     * still has to allow the role (the purpose check below). Strict adds RFC
     * 5280's profile checks, for clusters whose certificates all pass them.
     */
    if (o->x509_strict) {
        X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT);
    }
    if ((ret = check_own_chain(ctx, o->cert_file, o->x509_strict, err, errlen)) < 0) {
        goto out;
    }
    ret = -CLINK_ECONFIG;

    /* Strict is RFC 6125 too: a certificate's name is in its subjectAltName, never its CN. */
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                            (o->x509_strict ? X509_CHECK_FLAG_NEVER_CHECK_SUBJECT : 0));
    /* A server checks its clients' certificates for client use and vice versa. */
    if (SSL_CTX_set_purpose(ctx, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER) != 1) {
        seterr(err, errlen, "cannot set certificate purpose");
        goto out;
    }

    if (server) {
        int mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        if (o->client_cert == CLINK_CLIENT_CERT_OPTIONAL) {
            mode = SSL_VERIFY_PEER;
        } else if (o->client_cert == CLINK_CLIENT_CERT_NONE) {
            mode = SSL_VERIFY_NONE;
        }
        SSL_CTX_set_verify(ctx, mode, NULL);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
        /* Needed for resumption when client certificates are verified (SSL_CTX_set_session_id_context(3)). */
        /*
         * The client-certificate rule is part of the session's context: a
         * session made while certificates were optional never resumes where
         * they are required (OpenSSL does not re-check that on resumption).
         */
        unsigned char sid_ctx[16];
        int sid_len = snprintf((char *)sid_ctx, sizeof(sid_ctx), "clink/cc%d", (int)o->client_cert);
        if (SSL_CTX_set_session_id_context(ctx, sid_ctx, (unsigned)sid_len) != 1) {
            seterr(err, errlen, "cannot set session id context");
            goto out;
        }
        SSL_CTX_set_timeout(ctx, o->ticket_lifetime_s ? o->ticket_lifetime_s : 7200);
        /* Stateless: resumption comes from tickets only, so a server's memory does not grow with its clients. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        if (SSL_CTX_set_num_tickets(ctx, 2) != 1) {
            seterr(err, errlen, "cannot set ticket count");
            goto out;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_alpn_protos(ctx, alpn_wire, sizeof(alpn_wire) - 1) != 0) {
            seterr(err, errlen, "cannot set ALPN");
            goto out;
        }
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    }
    *out = ctx;
    ctx = NULL;
    ret = 0;
out:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return ret;
}

int clink_tls_ctx_new(const struct clink_tls_opts *opts, struct clink_tls_ctx **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (opts == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    if (opts->cert_file == NULL || opts->key_file == NULL || opts->ca_file == NULL) {
        seterr(err, errlen, "cert_file, key_file and ca_file are all required");
        return -CLINK_EINVAL;
    }
    if (opts->min_version > CLINK_TLS_1_2 || opts->client_cert > CLINK_CLIENT_CERT_NONE) {
        seterr(err, errlen, "unknown TLS version or client_cert value");
        return -CLINK_EINVAL;
    }
    ERR_clear_error();
    struct clink_tls_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -CLINK_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    int ret = build(opts, 1, &c->server, err, errlen);
    if (ret == 0) {
        ret = build(opts, 0, &c->client, err, errlen);
    }
    if (ret == 0) {
        /* Tickets sealed by our keys, not OpenSSL's per-context ones: they can rotate, be shared and outlive a reload.
         */
        struct clink_ticket_keys *k = opts->ticket_keys;
        if (k == NULL) {
            ret =
                clink_ticket_keys_new(NULL, opts->ticket_lifetime_s ? opts->ticket_lifetime_s : 7200, &k, err, errlen);
        } else {
            clink_ticket_keys_ref(k);
        }
        if (ret == 0) {
            ret = clink__ticket_keys_attach(k, c->server);
            if (ret < 0) {
                seterr(err, errlen, "cannot install session ticket keys");
            }
            clink_ticket_keys_free(k);
        }
    }
    if (ret < 0) {
        clink_tls_ctx_free(c);
        return ret;
    }
    *out = c;
    return 0;
}

void clink_tls_ctx_ref(struct clink_tls_ctx *ctx)
{
    atomic_fetch_add(&ctx->refs, 1);
}

void clink_tls_ctx_free(struct clink_tls_ctx *ctx)
{
    if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1) {
        return;
    }
    SSL_CTX_free(ctx->server);
    SSL_CTX_free(ctx->client);
    free(ctx);
}

struct ssl_ctx_st *clink_tls_ctx_server(const struct clink_tls_ctx *ctx)
{
    return ctx->server;
}

struct ssl_ctx_st *clink_tls_ctx_client(const struct clink_tls_ctx *ctx)
{
    return ctx->client;
}

void clink__name_rfc2253(const X509_NAME *name, char *dst, size_t cap)
{
    BIO *m = BIO_new(BIO_s_mem());
    dst[0] = '\0';
    if (m == NULL) {
        return;
    }
    if (X509_NAME_print_ex(m, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(m, dst, (int)cap - 1);
        dst[n > 0 ? n : 0] = '\0';
    }
    BIO_free(m);
}

/* ---- the HTTPS port's context ---- */

static const unsigned char alpn_http[] = "\x08http/1.1";

static int alpn_select_http(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                            unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, alpn_http, sizeof(alpn_http) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK; /* a browser offering h2 only still gets HTTP/1.1, without ALPN */
    }
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The handshake goes on whatever the client's certificate is; SSL_get_verify_result keeps the verdict. */
static int verify_keep_going(int preverify_ok, X509_STORE_CTX *x)
{
    (void)preverify_ok;
    (void)x;
    return 1;
}

int64_t clink__asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return 0;
    }
    return (int64_t)timegm(&tm);
}

/*
 * The HTTPS certificate against ca_file, in a context of its own: that
 * bundle (often a company web CA) vouches for this port to browsers and
 * must never be trusted for client certificates.
 */
static int check_https_chain(const char *cert_file, const char *ca_file, int x509_strict, char *err, size_t errlen)
{
    SSL_CTX *tmp = SSL_CTX_new(TLS_server_method());
    if (tmp == NULL) {
        return -CLINK_ENOMEM;
    }
    int ret = -CLINK_ECONFIG;
    if (SSL_CTX_use_certificate_chain_file(tmp, cert_file) != 1) {
        seterr(err, errlen, "%s: cannot load certificate", cert_file);
    } else if (SSL_CTX_load_verify_locations(tmp, ca_file, NULL) != 1) {
        seterr(err, errlen, "%s: cannot load CA bundle", ca_file);
    } else {
        ret = check_own_chain(tmp, cert_file, x509_strict, err, errlen);
    }
    SSL_CTX_free(tmp);
    return ret;
}

int clink_tls_ctx_new_https(const struct clink_tls_opts *opts, struct clink_tls_ctx **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    const char *cert_file = opts != NULL ? opts->cert_file : NULL;
    const char *key_file = opts != NULL ? opts->key_file : NULL;
    const char *ca_file = opts != NULL ? opts->ca_file : NULL;
    if (cert_file == NULL || key_file == NULL || out == NULL) {
        seterr(err, errlen, "an HTTPS certificate and key are both required");
        return -CLINK_EINVAL;
    }
    ERR_clear_error();
    int ret = -CLINK_ECONFIG;
    struct clink_tls_ctx *c = calloc(1, sizeof(*c));
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (c == NULL || ctx == NULL) {
        free(c);
        SSL_CTX_free(ctx);
        return -CLINK_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    /* Browsers and Prometheus speak TLS 1.2 or 1.3; only forward-secret AEAD suites either way. */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, DEFAULT_TLS12_CIPHERS) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, DEFAULT_SUITES) != 1) {
        seterr(err, errlen, "cannot set the HTTPS TLS versions and ciphers");
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_security_level(ctx, 2);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        seterr(err, errlen, "%s: cannot load certificate", cert_file);
        goto out;
    }
    if (check_key_file(key_file, opts->allow_open_key_file, err, errlen) < 0) {
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH || ERR_GET_REASON(e) == SSL_R_PRIVATE_KEY_MISMATCH ||
            SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            seterr(err, errlen, "%s: key does not match certificate %s", key_file, cert_file);
        } else {
            seterr(err, errlen, "%s: cannot load private key", key_file);
        }
        goto out;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        seterr(err, errlen, "%s: certificate has expired", cert_file);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
        seterr(err, errlen, "%s: certificate is not valid yet", cert_file);
        goto out;
    }
    if (ca_file != NULL && (ret = check_https_chain(cert_file, ca_file, opts->x509_strict, err, errlen)) < 0) {
        goto out;
    }
    ret = -CLINK_ECONFIG;
    if (opts->client_ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, opts->client_ca_file, NULL) != 1) {
            seterr(err, errlen, "%s: cannot load CA bundle", opts->client_ca_file);
            goto out;
        }
        if (opts->crl_file != NULL && (ret = load_crls(ctx, opts->crl_file, err, errlen)) < 0) {
            goto out;
        }
        ret = -CLINK_ECONFIG;
        if (opts->x509_strict) { /* an operator's certificate is held to the same profile as a node's */
            X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_X509_STRICT);
        }
        /*
         * A client certificate is asked for, never required: a browser has
         * none. One that verifies can log an operator in (an account
         * REQUIRE SUBJECT ... with grant ALL, no password to guess or lock
         * out); one that does not is simply not used. Who may do what is
         * the application's check, not TLS's.
         */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_keep_going);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_http, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_num_tickets(ctx, 0) != 1) { /* one request per connection: nothing to resume */
        seterr(err, errlen, "cannot set ticket count");
        goto out;
    }
    c->server = ctx;
    ctx = NULL;
    *out = c;
    c = NULL;
    ret = 0;
out:
    SSL_CTX_free(ctx);
    free(c);
    ERR_clear_error();
    return ret;
}

static void cert_info(X509 *x, enum clink_cert_kind kind, struct clink_cert_info *ci)
{
    memset(ci, 0, sizeof(*ci));
    ci->kind = kind;
    clink__name_rfc2253(X509_get_subject_name(x), ci->subject, sizeof(ci->subject));
    clink__name_rfc2253(X509_get_issuer_name(x), ci->issuer, sizeof(ci->issuer));
    clink__cert_serial_hex(x, ci->serial, sizeof(ci->serial));
    ci->not_before = clink__asn1_unix(X509_get0_notBefore(x));
    ci->not_after = clink__asn1_unix(X509_get0_notAfter(x));
}

void clink__cert_serial_hex(const X509 *x, char *dst, size_t cap)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(dst, cap, "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
}

size_t clink_tls_ctx_certs(const struct clink_tls_ctx *ctx, struct clink_cert_info *out, size_t cap)
{
    if (ctx == NULL) {
        return 0;
    }
    SSL_CTX *s = ctx->server;
    size_t n = 0;
    X509 *leaf = SSL_CTX_get0_certificate(s);
    if (leaf != NULL) {
        if (n < cap) {
            cert_info(leaf, CLINK_CERT_OWN, &out[n]);
        }
        n++;
    }
    STACK_OF(X509) *chain = NULL;
    if (SSL_CTX_get0_chain_certs(s, &chain) == 1 && chain != NULL) {
        for (int i = 0; i < sk_X509_num(chain); i++) {
            if (n < cap) {
                cert_info(sk_X509_value(chain, i), CLINK_CERT_INTERMEDIATE, &out[n]);
            }
            n++;
        }
    }
    X509_STORE *store = SSL_CTX_get_cert_store(s);
    STACK_OF(X509) *cas = store ? X509_STORE_get1_all_certs(store) : NULL;
    for (int i = 0; cas != NULL && i < sk_X509_num(cas); i++) {
        if (n < cap) {
            cert_info(sk_X509_value(cas, i), CLINK_CERT_CA, &out[n]);
        }
        n++;
    }
    sk_X509_pop_free(cas, X509_free);
    ERR_clear_error();
    return n;
}
