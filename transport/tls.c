#include "transport/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/tls_ctx.h"
#include "clink/accounts.h"
#include "clink/error.h"
#include "transport/ktls.h"

/* ---- the custom BIO: reads from t->in, writes to t->out ---- */

static BIO_METHOD *bio_method;
static int ex_index = -1;
static int epoch_index = -1; /* SSL_CTX ex_data: struct epoch */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    OPENSSL_free(ptr);
}

static int bio_read(BIO *b, char *dst, int len)
{
    struct clink__tls *t = BIO_get_data(b);
    size_t avail = clink__bytes_len(t->in);

    BIO_clear_retry_flags(b);
    if (avail == 0) {
        t->want = (size_t)len;
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = avail < (size_t)len ? avail : (size_t)len;
    memcpy(dst, clink__bytes_data(t->in), n);
    clink__bytes_consume(t->in, n);
    t->want = 0;
    return (int)n;
}

static int bio_write(BIO *b, const char *src, int len)
{
    struct clink__tls *t = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (clink__bytes_append(t->out, src, (size_t)len) < 0) {
        return -1;
    }
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Flush succeeds (the worker sends `out`); everything else, kTLS ctrls included, is unsupported. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void init_once(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "clink");
    if (m != NULL) {
        BIO_meth_set_read(m, bio_read);
        BIO_meth_set_write(m, bio_write);
        BIO_meth_set_ctrl(m, bio_ctrl);
        BIO_meth_set_create(m, bio_create);
    }
    bio_method = m;
    ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    epoch_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

/*
 * ---- trust epochs ----
 * A resumed session's peer chain was verified when the session was made; it
 * is verified again on resumption (check_resumed_identity) in case the trust
 * changed since: a reload revoked the peer or dropped its CA, or a
 * certificate lapsed. That repeat costs an X509_verify_cert at each end, a
 * large share of a resumed dial's CPU, and is only needed when something
 * changed. So every context gets a random epoch (a reload makes a new
 * context, so a new epoch), and a session whose chain was verified under it
 * carries a mark {epoch, until}: until = the earliest notAfter in the chain
 * and nextUpdate among the context's CRLs (a CRL without nextUpdate turns
 * the shortcut off). A server keeps the mark in the ticket's app data
 * (sealed by the ticket keys), a client in the same field of its own session
 * (it never leaves the process). Resuming under the same epoch
 * before `until` skips the repeat. (A resumed session's renewed ticket keeps
 * its parent's mark: after a reload, a line of resumptions keeps being
 * verified in full until a full handshake; slower, never looser.) The
 * context's store must not change after it is prepared. Whoever holds the ticket keys could forge
 * a mark, but could as well forge a session around any valid certificate,
 * which verifying again does not catch either: the ticket keys are the trust.
 */
struct epoch {
    uint8_t id[16];
    int64_t until; /* earliest CRL nextUpdate; INT64_MAX: no CRL */
};

static int64_t asn1_time(const ASN1_TIME *a)
{
    struct tm tm;
    if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1) {
        return 0; /* unreadable: treated as already past */
    }
    return (int64_t)timegm(&tm);
}

/* The context's epoch, made on first use. Contexts are prepared before any connection uses them. */
static struct epoch *ctx_epoch(SSL_CTX *ctx)
{
    struct epoch *e = SSL_CTX_get_ex_data(ctx, epoch_index);
    if (e != NULL || (e = OPENSSL_zalloc(sizeof(*e))) == NULL) {
        return e;
    }
    e->until = INT64_MAX;
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
        if (X509_OBJECT_get_type(o) == X509_LU_CRL) {
            int64_t next = asn1_time(X509_CRL_get0_nextUpdate(X509_OBJECT_get0_X509_CRL(o)));
            e->until = next < e->until ? next : e->until;
        }
    }
    if (RAND_bytes(e->id, sizeof(e->id)) != 1 || SSL_CTX_set_ex_data(ctx, epoch_index, e) != 1) {
        OPENSSL_free(e);
        return NULL;
    }
    return e;
}

/* A mark for a chain verified now under ctx's epoch. Returns 0, or -1 (no chain, no epoch). */
static int make_mark(SSL_CTX *ctx, STACK_OF(X509) * chain, struct clink__tls_mark *m)
{
    struct epoch *e = SSL_CTX_get_ex_data(ctx, epoch_index);
    if (e == NULL || chain == NULL || sk_X509_num(chain) == 0) {
        return -1;
    }
    memcpy(m->epoch, e->id, sizeof(m->epoch));
    m->until = e->until;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        int64_t na = asn1_time(X509_get0_notAfter(sk_X509_value(chain, i)));
        m->until = na < m->until ? na : m->until;
    }
    return 0;
}

static int mark_current(SSL_CTX *ctx, const struct clink__tls_mark *m)
{
    struct epoch *e = SSL_CTX_get_ex_data(ctx, epoch_index);
    return e != NULL && memcmp(m->epoch, e->id, sizeof(e->id)) == 0 && (int64_t)time(NULL) < m->until;
}

int clink__tls_mark_read(SSL_CTX *ctx, const void *data, size_t len, struct clink__tls_mark *out)
{
    if (data == NULL || len != sizeof(*out)) {
        return 0;
    }
    memcpy(out, data, sizeof(*out)); /* app data promises no alignment */
    return mark_current(ctx, out);
}

/* Server: a ticket for a chain verified in this handshake carries its mark. A resumed session's keeps its own. */
static int gen_ticket_cb(SSL *ssl, void *arg)
{
    (void)arg;
    struct clink__tls_mark m;
    if (!SSL_session_reused(ssl) && make_mark(SSL_get_SSL_CTX(ssl), SSL_get0_verified_chain(ssl), &m) == 0) {
        /* Without the mark (no memory) the ticket is still good: its resumption is verified in full. */
        CLINK_IGNORE(SSL_SESSION_set1_ticket_appdata(SSL_get0_session(ssl), &m, sizeof(m)) != 1);
    }
    return 1;
}

/* ---- record accounting ---- */

/*
 * Installed only where kTLS may take a connection over (clink__tls_keep_secrets):
 * OpenSSL formats every secret of every handshake as hex, a byte per
 * sprintf, for this callback (3% of a resumed dial's CPU); without kTLS
 * nobody needs them.
 */
static void keylog_cb(const SSL *ssl, const char *line)
{
    struct clink__tls *t = SSL_get_ex_data(ssl, ex_index);
    if (t == NULL) {
        return;
    }
    int client_dir = strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0;
    int server_dir = strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0;
    if (client_dir || server_dir) {
        int ours = t->is_server ? server_dir : client_dir;
        /*
         * The application traffic secret, kept (in binary) only until kTLS
         * takes the direction over or is given up: clink__tls_wipe_secrets.
         * OpenSSL wipes the line itself.
         */
        const char *hex = strrchr(line, ' ');
        size_t n = hex ? strlen(hex + 1) / 2 : 0;
        uint8_t *dst = ours ? t->secret_out : t->secret_in;
        if (n == 0 || n > sizeof(t->secret_out)) {
            return;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned v = 0;
            for (int k = 0; k < 2; k++) {
                char ch = hex[1 + 2 * i + (size_t)k];
                v = v << 4 | (unsigned)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
            }
            dst[i] = (uint8_t)v;
        }
        *(ours ? &t->secret_out_len : &t->secret_in_len) = n;
    }
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    struct clink__tls *t = arg;
    uint8_t type = content_type == SSL3_RT_HANDSHAKE && len > 0 ? ((const uint8_t *)buf)[0] : 0;
    if (type == SSL3_MT_KEY_UPDATE) {
        t->key_updated = 1; /* the traffic secrets the key log gave are stale now: no kTLS hand-over */
        return;
    }
    /*
     * TLS 1.3 (RFC 8446 7.2): each direction switches to its application
     * keys right after that side's Finished, and OpenSSL reports a message
     * after the record that carried it: the next record is the first under
     * the new keys. (The key log's lines used to mark the switch; checked
     * side by side, both counted the same records on every TLS 1.3
     * connection of the TLS, handshake, resume, kTLS, verify, revoke and
     * MySQL tests.) TLS 1.2 connections count none, as before.
     */
    if (type == SSL3_MT_FINISHED && SSL_version(ssl) == TLS1_3_VERSION) {
        if (write_p && !t->app_out) {
            t->app_out = 1;
            t->rec_out = 0;
        } else if (!write_p && !t->app_in) {
            t->app_in = 1;
            t->rec_in = 0;
        }
        return;
    }
    if (content_type != SSL3_RT_HEADER) {
        return;
    }
    if (write_p && t->app_out) {
        t->rec_out++;
    } else if (!write_p && t->app_in) {
        t->rec_in++;
    }
}

/* A ticket arrived (client): keep a copy under the identity it was issued to (returning 0: OpenSSL keeps its own). */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct clink__tls *t = SSL_get_ex_data(ssl, ex_index);
    if (t == NULL || t->sessions == NULL || t->is_server) {
        return 0;
    }
    /*
     * The cache gets a copy, not the session this SSL goes on using: the
     * copy goes to one connection on whichever worker dials next, and
     * OpenSSL writes to the original (not_resumable on a fatal alert) and
     * frees it here. Shared, the two workers would race on it (the soak
     * driver found it under TSan).
     */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (copy == NULL) {
        return 0; /* out of memory: the next dial makes a full handshake */
    }
    /*
     * The client keeps its mark where the server keeps its own: the ticket
     * app data field, which OpenSSL copies and frees with the session (a
     * client never sends it). Session ex_data would be shared, not copied,
     * when OpenSSL duplicates a session for the next ticket.
     */
    if (t->have_mark) {
        CLINK_IGNORE(SSL_SESSION_set1_ticket_appdata(copy, &t->mark, sizeof(t->mark)) != 1);
    }
    clink__sessions_put(t->sessions, t->sess_key, copy, t->sess_gen);
    return 0; /* we kept no reference to sess */
}

void clink__tls_prepare_ctx(SSL_CTX *ctx)
{
    pthread_once(&once, init_once);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    SSL_CTX_set_session_ticket_cb(ctx, gen_ticket_cb, NULL, NULL);
    CLINK_IGNORE(ctx_epoch(ctx) == NULL); /* without one, every resumption verifies again: slower, still safe */
}

void clink__tls_keep_secrets(SSL_CTX *ctx)
{
    pthread_once(&once, init_once);
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
}

void clink__tls_use_sessions(struct clink__tls *t, struct clink__sessions *sessions, const char *key, uint64_t gen)
{
    t->sessions = sessions;
    t->sess_gen = gen;
    snprintf(t->sess_key, sizeof(t->sess_key), "%s", key);
    SSL_SESSION *sess = clink__sessions_take(sessions, key);
    if (sess != NULL) {
        t->offered = SSL_set_session(t->ssl, sess) == 1;
        SSL_SESSION_free(sess); /* the SSL holds its own reference */
    }
}

/*
 * A resumed session skips the certificate exchange: the peer's certificate
 * is the one kept in the session. The ticket was filed under the name we
 * verified then, but whoever holds a group's ticket keys can resume it, so
 * the name is checked again against what this dial expects.
 */
static int check_resumed_identity(struct clink__tls *t)
{
    if (!SSL_session_reused(t->ssl)) {
        return 0;
    }
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (t->is_server && peer == NULL && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_FAIL_IF_NO_PEER_CERT)) {
        snprintf(t->err, sizeof(t->err),
                 "TLS handshake: resumed session has no client certificate, and this node requires one");
        return -CLINK_EVERIFY;
    }
    /*
     * The chain was verified when the session was made, against the trust
     * and CRLs of that day. A reload may since have revoked the peer or
     * dropped its CA: verify the kept certificate again, against the store
     * this connection's context has now, with the same flags (CRL, strict).
     */
    int verifies = t->is_server ? SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE : t->verify >= 1;
    SSL_CTX *ctx = SSL_get_SSL_CTX(t->ssl);
    struct clink__tls_mark m = {0};
    void *data = NULL;
    size_t len = 0;
    /* The server's, from inside its ticket; the client's, kept with its session. */
    int current = SSL_SESSION_get0_ticket_appdata(SSL_get0_session(t->ssl), &data, &len) == 1 &&
                  clink__tls_mark_read(ctx, data, len, &m);
    if (peer != NULL && verifies && current) {
        t->mark = m; /* verified under this very trust, and nothing in it has lapsed */
        t->have_mark = 1;
    } else if (peer != NULL && verifies) {
        X509_STORE_CTX *vc = X509_STORE_CTX_new();
        int ok = vc != NULL &&
                 X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(ctx), peer, SSL_get_peer_cert_chain(t->ssl)) == 1;
        if (ok) {
            X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(vc);
            X509_VERIFY_PARAM_set1(vp, SSL_get0_param(t->ssl));
            X509_STORE_CTX_set_default(vc, t->is_server ? "ssl_client" : "ssl_server");
            X509_VERIFY_PARAM_set1(vp, SSL_get0_param(t->ssl));
            ok = X509_verify_cert(vc) == 1;
            if (!ok) {
                int e = X509_STORE_CTX_get_error(vc);
                char subj[128] = "";
                X509 *bad = X509_STORE_CTX_get_current_cert(vc);
                X509_NAME_oneline(bad ? X509_get_subject_name(bad) : X509_get_subject_name(peer), subj,
                                  (int)sizeof(subj));
                snprintf(t->err, sizeof(t->err),
                         "TLS handshake: resumed session: certificate verify failed: %s (depth %d, %s)",
                         X509_verify_cert_error_string(e), X509_STORE_CTX_get_error_depth(vc), subj);
            } else {
                t->have_mark = make_mark(ctx, X509_STORE_CTX_get0_chain(vc), &t->mark) == 0;
            }
        } else {
            snprintf(t->err, sizeof(t->err), "TLS handshake: resumed session: cannot verify the certificate");
        }
        X509_STORE_CTX_free(vc);
        ERR_clear_error();
        if (!ok) {
            return -CLINK_EVERIFY;
        }
    }
    if (t->is_server || t->verify < 2) {
        return 0;
    }
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, t->expected, ip) == 1 || inet_pton(AF_INET6, t->expected, ip) == 1;
    int ok =
        peer != NULL && (is_ip ? X509_check_ip_asc(peer, t->expected, 0) == 1
                               : X509_check_host(peer, t->expected, 0,
                                                 X509_VERIFY_PARAM_get_hostflags(SSL_get0_param(t->ssl)), NULL) == 1);
    if (!ok) {
        snprintf(t->err, sizeof(t->err), "TLS handshake: resumed session's certificate does not match '%.150s'",
                 t->expected);
        return -CLINK_EVERIFY;
    }
    return 0;
}

/* ---- certificate verification ---- */

/*
 * OpenSSL's verify result says what is wrong but not with which certificate.
 * Record the first failure with its depth and subject; the result passed in
 * is returned unchanged, so verification itself is exactly OpenSSL's (or the
 * context's own callback decides: the HTTPS port's asks for a client
 * certificate without requiring a good one).
 */
static int verify_cb(int ok, X509_STORE_CTX *sctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(sctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct clink__tls *t = ssl != NULL ? SSL_get_ex_data(ssl, ex_index) : NULL;
    SSL_verify_cb own = ssl != NULL ? SSL_CTX_get_verify_callback(SSL_get_SSL_CTX(ssl)) : NULL;
    if (own != NULL) {
        ok = own(ok, sctx);
    }
    if (ok || t == NULL || t->verify_err != 0) {
        return ok;
    }
    t->verify_err = X509_STORE_CTX_get_error(sctx);
    t->verify_depth = X509_STORE_CTX_get_error_depth(sctx);
    X509 *x = X509_STORE_CTX_get_current_cert(sctx);
    if (x != NULL) {
        clink__name_rfc2253(X509_get_subject_name(x), t->verify_subject, sizeof(t->verify_subject));
    }
    if (t->verify_subject[0] == '\0') {
        snprintf(t->verify_subject, sizeof(t->verify_subject), "no subject");
    }
    if (t->verify_err == X509_V_ERR_HOSTNAME_MISMATCH || t->verify_err == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        /* The document's certificates have a CN and no SAN: no IP can match, but the CN can. */
        clink__cert_cn_only(x, t->verify_cn, sizeof(t->verify_cn));
        t->verify_cn_unused = (X509_VERIFY_PARAM_get_hostflags(SSL_get0_param(ssl)) &
                               X509_CHECK_FLAG_NEVER_CHECK_SUBJECT) != 0; /* ssl_x509_strict */
    }
    return ok;
}

/* The alerts a peer sends when it refuses our certificate (RFC 8446 6.2; OpenSSL's ssl_x509err2alert). */
static int is_certificate_alert(int reason)
{
    switch (reason - SSL_AD_REASON_OFFSET) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_CERTIFICATE_REQUIRED:
        return 1;
    default:
        return 0;
    }
}

/* ---- errors ---- */

static int fail(struct clink__tls *t, int code, const char *what)
{
    unsigned long e = ERR_get_error();
    int reason = ERR_GET_REASON(e);
    char ebuf[160] = "";
    if (e != 0) {
        ERR_error_string_n(e, ebuf, sizeof(ebuf));
    }
    /*
     * The verify result is kept even when we do not verify (ssl_mode
     * REQUIRED): only a verifying side may blame it, or any later failure of
     * an unverified connection would read as "certificate verify failed".
     */
    long v = SSL_get_verify_result(t->ssl);
    if (v != X509_V_OK && SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE) {
        if (t->verify_err == v && t->verify_cn[0] != '\0' && t->verify_cn_unused) {
            snprintf(t->err, sizeof(t->err),
                     "%s: certificate verify failed: %s (the certificate has no subjectAltName, and with "
                     "ssl_x509_strict = ON its CN is no name): make one with clink-certs node --dns, or set "
                     "ssl_mode = VERIFY_CA",
                     what, X509_verify_cert_error_string(v));
        } else if (t->verify_err == v && t->verify_cn[0] != '\0') {
            /* Made whole, then cut to t->err: a long CN may cut the end off; the start already names what to set. */
            char msg[512];
            snprintf(msg, sizeof(msg),
                     "%s: certificate verify failed: %s (the certificate has no subjectAltName; its one name is "
                     "CN %s): set ssl_server_name = %s, or ssl_mode = VERIFY_CA for a certificate every node shares",
                     what, X509_verify_cert_error_string(v), t->verify_cn, t->verify_cn);
            size_t len = strnlen(msg, sizeof(t->err) - 1);
            memcpy(t->err, msg, len);
            t->err[len] = '\0';
        } else if (t->verify_err == v) {
            snprintf(t->err, sizeof(t->err), "%s: certificate verify failed: %s (depth %d, %s)", what,
                     X509_verify_cert_error_string(v), t->verify_depth, t->verify_subject);
        } else {
            snprintf(t->err, sizeof(t->err), "%s: certificate verify failed: %s", what,
                     X509_verify_cert_error_string(v));
        }
        code = -CLINK_EVERIFY;
    } else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        snprintf(t->err, sizeof(t->err), "%s: the client sent no certificate, and this node requires one", what);
        code = -CLINK_EVERIFY;
    } else if (reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL || reason == SSL_R_NO_APPLICATION_PROTOCOL) {
        snprintf(t->err, sizeof(t->err), "%s: %s", what, ebuf);
        code = -CLINK_EALPN;
    } else if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED) {
        snprintf(t->err, sizeof(t->err), "%s: peer requires a certificate and we sent none", what);
        code = -CLINK_EVERIFY;
    } else if (is_certificate_alert(reason)) {
        snprintf(t->err, sizeof(t->err), "%s: peer rejected our certificate: %s", what,
                 SSL_alert_desc_string_long(reason - SSL_AD_REASON_OFFSET));
        code = -CLINK_EVERIFY;
    } else {
        snprintf(t->err, sizeof(t->err), "%s: %s", what, e ? ebuf : "unexpected end of stream");
    }
    ERR_clear_error();
    return code;
}

/* ---- API ---- */

int clink__tls_init(struct clink__tls *t, SSL_CTX *ctx, int is_server, const char *expected_name, int verify,
                    struct clink__bytes *in, struct clink__bytes *out)
{
    pthread_once(&once, init_once);
    memset(t, 0, sizeof(*t));
    t->in = in;
    t->out = out;
    t->is_server = is_server;
    if (bio_method == NULL) {
        return -CLINK_ENOMEM;
    }
    ERR_clear_error();
    t->ssl = SSL_new(ctx);
    BIO *bio = BIO_new(bio_method);
    if (t->ssl == NULL || bio == NULL) {
        BIO_free(bio);
        return -CLINK_ENOMEM;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_ex_data(t->ssl, ex_index, t);
    /* Same mode as the context (server: the client-certificate rule), plus the callback that names the certificate. */
    SSL_set_verify(t->ssl, SSL_get_verify_mode(t->ssl), verify_cb);
    SSL_set_msg_callback(t->ssl, msg_cb);
    SSL_set_msg_callback_arg(t->ssl, t);
    if (is_server) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    t->verify = verify;
    snprintf(t->expected, sizeof(t->expected), "%s", expected_name ? expected_name : "");
    if (verify == 0) {
        /* ssl_mode REQUIRED or PREFERRED: encrypted, server unverified (the caller chose it; never a default). */
        SSL_set_verify(t->ssl, SSL_VERIFY_NONE, verify_cb);
        return 0;
    }
    if (verify == 1) {
        return 0; /* VERIFY_CA: the context already verifies the chain */
    }
    unsigned char ip[16];
    int ok = expected_name != NULL && expected_name[0] != '\0';
    if (ok && (inet_pton(AF_INET, expected_name, ip) == 1 || inet_pton(AF_INET6, expected_name, ip) == 1)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), expected_name) == 1;
    } else if (ok) {
        /* SNI only for DNS names (RFC 6066 forbids IP literals). */
        ok = SSL_set1_host(t->ssl, expected_name) == 1 &&
             SSL_ctrl(t->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                      (void *)(uintptr_t)expected_name) == 1;
    }
    if (!ok) {
        clink__tls_free(t);
        return -CLINK_EINVAL;
    }
    return 0;
}

int clink__tls_serve_other(struct clink__tls *t, const char *sid_ctx)
{
    /*
     * Such clients (MySQL's) offer no ALPN and seldom a certificate: one is
     * checked if sent (and REQUIRE X509 at login insists on it). Their
     * sessions are kept apart from native ones, made under another
     * client-certificate rule (a session must never resume where the rule is
     * stricter).
     */
    t->other = 1;
    SSL_set_app_data(t->ssl, CLINK__SSL_OTHER);
    SSL_set_verify(t->ssl, SSL_VERIFY_PEER, SSL_get_verify_callback(t->ssl));
    return SSL_set_session_id_context(t->ssl, (const unsigned char *)sid_ctx, (unsigned)strlen(sid_ctx)) == 1
               ? 0
               : -CLINK_EINTERNAL;
}

int clink__tls_handshake(struct clink__tls *t)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        /* Both ends check: the server's ClientHello hook refuses no ALPN, this catches anything else. */
        const unsigned char *p = NULL;
        unsigned int n = 0;
        SSL_get0_alpn_selected(t->ssl, &p, &n);
        if (!t->other && (n != strlen(CLINK_ALPN) || memcmp(p, CLINK_ALPN, n) != 0)) {
            snprintf(t->err, sizeof(t->err), "TLS handshake: no ALPN %s agreed", CLINK_ALPN);
            return -CLINK_EALPN;
        }
        if (!t->is_server && !SSL_session_reused(t->ssl) && t->verify >= 1) {
            /* Verified in this handshake: the tickets that follow carry that (see trust epochs). */
            t->have_mark = make_mark(SSL_get_SSL_CTX(t->ssl), SSL_get0_verified_chain(t->ssl), &t->mark) == 0;
        }
        int ret = check_resumed_identity(t);
        return ret < 0 ? ret : 1;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        return 0;
    }
    return fail(t, -CLINK_ETLS, "TLS handshake");
}

int clink__tls_channel_binding(struct clink__tls *t, uint8_t *out)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    if (t == NULL || t->ssl == NULL || !SSL_is_init_finished(t->ssl)) {
        return -CLINK_ETLS;
    }
    if (SSL_version(t->ssl) < TLS1_3_VERSION && SSL_get_extms_support(t->ssl) != 1) {
        return -CLINK_ETLS;
    }
    ERR_clear_error();
    return SSL_export_keying_material(t->ssl, out, CLINK_BINDING_LEN, label, sizeof(label) - 1, NULL, 0, 0) == 1
               ? 0
               : -CLINK_ETLS;
}

int clink__tls_read(struct clink__tls *t, uint8_t *dst, size_t cap)
{
    size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(t->ssl, dst, cap, &n) == 1) {
        return (int)n;
    }
    int e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        t->orderly = 1;
        return -CLINK_ECLOSED;
    case SSL_ERROR_SYSCALL:
        /* errno 0 with SYSCALL is EOF (nginx, redis do the same); our BIO never ends, so this is unexpected. */
        snprintf(t->err, sizeof(t->err), "TLS read: unexpected end of stream");
        ERR_clear_error();
        return -CLINK_ETLS;
    default:
        return fail(t, -CLINK_ETLS, "TLS read");
    }
}

int clink__tls_write(struct clink__tls *t, const void *src, size_t n)
{
    size_t done = 0;
    ERR_clear_error();
    /* Our BIO accepts every byte, so SSL_write never stops half way. */
    if (n == 0 || SSL_write_ex(t->ssl, src, n, &done) == 1) {
        return 0;
    }
    return fail(t, -CLINK_ETLS, "TLS write");
}

void clink__tls_close_notify(struct clink__tls *t)
{
    ERR_clear_error();
    CLINK_IGNORE(SSL_shutdown(t->ssl) < 0); /* writes close_notify into out; the peer's arrives later or not */
    ERR_clear_error();
}

void clink__tls_status(const struct clink__tls *t, struct clink_conn_status *st)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    snprintf(st->tls_version, sizeof(st->tls_version), "%s", SSL_get_version(t->ssl));
    snprintf(st->cipher, sizeof(st->cipher), "%s", c ? SSL_CIPHER_get_name(c) : "");
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    snprintf(st->alpn, sizeof(st->alpn), "%.*s", (int)n, p ? (const char *)p : "");
    st->resumed = SSL_session_reused(t->ssl);
    st->records_in = t->rec_in;
    st->records_out = t->rec_out;
    X509 *own = SSL_get_certificate(t->ssl);
    if (own != NULL) {
        st->local_not_after = clink__asn1_unix(X509_get0_notAfter(own));
    }
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (peer != NULL) {
        clink__name_rfc2253(X509_get_subject_name(peer), st->peer_subject, sizeof(st->peer_subject));
        clink__name_rfc2253(X509_get_issuer_name(peer), st->peer_issuer, sizeof(st->peer_issuer));
        clink__cert_serial_hex(peer, st->peer_serial, sizeof(st->peer_serial));
        st->peer_not_after = clink__asn1_unix(X509_get0_notAfter(peer));
    }
}

void clink__tls_free(struct clink__tls *t)
{
    clink__tls_wipe_secrets(t);
    if (t->ssl == NULL) {
        return;
    }
    /*
     * OpenSSL marks the connection's session non-resumable when an SSL is
     * freed without being shut down. Our cache holds copies, which that does
     * not touch; this SSL's own session may still be duplicated for a later
     * ticket, so after a completed handshake say it was shut down: a TLS 1.3
     * ticket stays sound whatever ended the connection (a dead peer, a
     * failed ping, recycling; RFC 8446 keeps no rule like TLS 1.2's that a
     * fatal alert invalidates the session).
     */
    if (t->orderly || SSL_is_init_finished(t->ssl)) {
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    SSL_free(t->ssl);
    t->ssl = NULL;
}

/* ---- kTLS hand-over ---- */

int clink__tls_ktls_info(struct clink__tls *t, int tx, struct clink__ktls_info *out)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
    size_t len = tx ? t->secret_out_len : t->secret_in_len;
    if (c == NULL || len == 0 || t->key_updated || SSL_version(t->ssl) != TLS1_3_VERSION) {
        return -CLINK_EINVAL;
    }
    uint16_t suite = (uint16_t)(SSL_CIPHER_get_protocol_id(c) & 0xffff);
    return clink__ktls_info(suite, tx ? t->secret_out : t->secret_in, len, tx ? t->rec_out : t->rec_in, out);
}

int clink__tls_rx_idle(const struct clink__tls *t)
{
    return SSL_has_pending(t->ssl) == 0 && clink__bytes_len(t->in) == 0;
}

void clink__tls_drop_buffers(struct clink__tls *t)
{
    /* OpenSSL set up a read buffer for the next record when its last SSL_read wanted more; it is never used now. */
    CLINK_IGNORE(SSL_free_buffers(t->ssl) != 1);
}

void clink__tls_wipe_secrets(struct clink__tls *t)
{
    OPENSSL_cleanse(t->secret_in, sizeof(t->secret_in));
    OPENSSL_cleanse(t->secret_out, sizeof(t->secret_out));
    t->secret_in_len = t->secret_out_len = 0;
}
