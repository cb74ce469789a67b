/*
 * A TLS reload may take trust away: a CRL that now revokes a peer, a CA
 * dropped from ssl_ca. New handshakes see the new context; the links
 * already open were verified under the old one. Each worker checks the
 * peers of the links it owns against the new context's store, with its
 * flags (CRL, strict) and security level, and closes with GOAWAY those that
 * no longer verify, so their calls in flight finish. The name is not
 * checked again: it was checked against what the dial expected, which a
 * reload does not change.
 *
 * The worker learns of the change through the node's tls_gen (bumped under
 * tls_mu with the swap) and a MSG_RECHECK wake-up. A connection whose SSL
 * was made under an older generation and opens after its worker's pass is
 * checked as it opens (clink__conn_recheck_opening).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "auth/tls_ctx.h"
#include "transport/conn_int.h"

#define PEER_LOST SIZE_MAX /* peer_der_len: the peer was verified but its certificate could not be kept */

/* The peer was verified when the link opened: a dialled link with verification, or a client certificate. */
static int was_verified(const struct clink_conn *c)
{
    return c->has_tls && (c->is_server || c->verify >= 1);
}

void clink__conn_keep_peer(struct clink_conn *c)
{
    if (c->tls == NULL || c->peer_der != NULL || !was_verified(c)) {
        return;
    }
    SSL *ssl = c->tls->ssl;
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    if (leaf == NULL) {
        return;
    }
    /*
     * DER, not the X509 objects: a parsed certificate costs several times
     * its encoding, and a kTLS link may live for days without a reload. A
     * client's chain as sent starts with the leaf, a server's does not.
     */
    size_t len = 0;
    int first = chain != NULL && sk_X509_num(chain) > 0 && X509_cmp(sk_X509_value(chain, 0), leaf) == 0;
    int n = i2d_X509(leaf, NULL);
    len += n > 0 ? (size_t)n : 0;
    for (int i = first; chain != NULL && i < sk_X509_num(chain); i++) {
        n = i2d_X509(sk_X509_value(chain, i), NULL);
        len += n > 0 ? (size_t)n : 0;
    }
    uint8_t *buf = len > 0 ? malloc(len) : NULL;
    if (buf == NULL) {
        /* Without it a reload cannot check this link: it is treated as not verifying (fail closed). */
        c->peer_der_len = PEER_LOST;
        return;
    }
    uint8_t *p = buf;
    CLINK_IGNORE(i2d_X509(leaf, &p) < 0);
    for (int i = first; chain != NULL && i < sk_X509_num(chain); i++) {
        CLINK_IGNORE(i2d_X509(sk_X509_value(chain, i), &p) < 0);
    }
    c->peer_der = buf;
    c->peer_der_len = (size_t)(p - buf);
}

/* The peer's certificate and the untrusted certificates that came with it, owned by the caller. 0, or -1. */
static int peer_chain(const struct clink_conn *c, X509 **leaf, STACK_OF(X509) * *chain)
{
    *leaf = NULL;
    *chain = sk_X509_new_null();
    if (*chain == NULL) {
        return -1;
    }
    if (c->tls != NULL) {
        STACK_OF(X509) *sent = SSL_get_peer_cert_chain(c->tls->ssl);
        for (int i = 0; sent != NULL && i < sk_X509_num(sent); i++) {
            X509 *x = sk_X509_value(sent, i);
            if (sk_X509_push(*chain, x) <= 0) {
                return -1;
            }
            X509_up_ref(x);
        }
        *leaf = SSL_get1_peer_certificate(c->tls->ssl);
        return 0;
    }
    if (c->peer_der == NULL) {
        return 0; /* no certificate (an optional client certificate not sent), or PEER_LOST */
    }
    const uint8_t *p = c->peer_der, *end = c->peer_der + c->peer_der_len;
    while (p < end) {
        X509 *x = d2i_X509(NULL, &p, (long)(end - p));
        if (x == NULL) {
            return -1;
        }
        if (*leaf == NULL) {
            *leaf = x;
        } else if (sk_X509_push(*chain, x) <= 0) {
            X509_free(x);
            return -1;
        }
    }
    return 0;
}

/*
 * Verify c's peer against sc, as the handshake did (OpenSSL's ssl_verify_cert_chain: the purpose of the peer's
 * role, the context's parameters and security level) but without the name. 1 verifies, 0 does not (why says
 * so), -1: no peer certificate to check.
 */
static int verify_peer(const struct clink_conn *c, SSL_CTX *sc, int *verr, char *why, size_t cap)
{
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    X509_STORE_CTX *vc = NULL;
    int ret = 0;
    *verr = X509_V_OK;
    if (peer_chain(c, &leaf, &chain) < 0) {
        snprintf(why, cap, "cannot read the peer's certificate again");
        goto out;
    }
    if (leaf == NULL) {
        /* A verified peer with nothing kept (no memory at the kTLS hand-off) cannot be vouched for: fail closed. */
        ret = c->peer_der_len == PEER_LOST ? 0 : -1;
        snprintf(why, cap, "the peer's certificate was not kept");
        goto out;
    }
    /*
     * Our own intermediates as well: a resumed session (tickets carry the
     * peer's certificate, not its chain) has none, and peers of one cluster
     * usually share them. Untrusted certificates only help build a path; the
     * anchor must still be in the store.
     */
    STACK_OF(X509) *own = NULL;
    if (SSL_CTX_get0_chain_certs(sc, &own) == 1) {
        for (int i = 0; own != NULL && i < sk_X509_num(own); i++) {
            X509 *x = sk_X509_value(own, i);
            if (sk_X509_push(chain, x) > 0) {
                X509_up_ref(x);
            }
        }
    }
    vc = X509_STORE_CTX_new();
    if (vc == NULL || X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(sc), leaf, chain) != 1) {
        snprintf(why, cap, "cannot verify the peer's certificate (out of memory)");
        goto out;
    }
    X509_STORE_CTX_set_default(vc, c->is_server ? "ssl_client" : "ssl_server");
    X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(vc);
    X509_VERIFY_PARAM_set1(vp, SSL_CTX_get0_param(sc)); /* CRL and strict flags, depth; no host: the context has none */
    X509_VERIFY_PARAM_set_auth_level(vp, SSL_CTX_get_security_level(sc));
    if (X509_verify_cert(vc) == 1) {
        ret = 1;
        goto out;
    }
    *verr = X509_STORE_CTX_get_error(vc);
    char subj[128] = "";
    X509 *bad = X509_STORE_CTX_get_current_cert(vc);
    clink__name_rfc2253(X509_get_subject_name(bad != NULL ? bad : leaf), subj, sizeof(subj));
    snprintf(why, cap, "%s (depth %d, %s)",
             *verr == X509_V_ERR_CERT_REVOKED ? "peer certificate revoked" : X509_verify_cert_error_string(*verr),
             X509_STORE_CTX_get_error_depth(vc), subj);
out:
    X509_STORE_CTX_free(vc);
    sk_X509_pop_free(chain, X509_free);
    X509_free(leaf);
    ERR_clear_error();
    return ret;
}

/* The node's TLS context now (a reference), and its generation, read together. */
static struct clink_tls_ctx *current_trust(struct clink_node *n, uint64_t *gen)
{
    pthread_mutex_lock(&n->tls_mu);
    struct clink_tls_ctx *t = n->tls;
    if (t != NULL) {
        clink_tls_ctx_ref(t);
    }
    *gen = atomic_load(&n->tls_gen);
    pthread_mutex_unlock(&n->tls_mu);
    return t;
}

static SSL_CTX *ssl_ctx_for(const struct clink_conn *c, struct clink_tls_ctx *t)
{
    return c->is_server ? clink_tls_ctx_server(t) : clink_tls_ctx_client(t);
}

static int checked(const struct clink_conn *c)
{
    return c->proto->link && was_verified(c) && (c->tls != NULL || c->peer_der != NULL || c->peer_der_len == PEER_LOST);
}

void clink__conn_recheck_worker(struct clink_worker *w)
{
    struct clink_node *n = w->node;
    if (atomic_load_explicit(&n->tls_gen, memory_order_acquire) == w->tls_gen) {
        return; /* nothing changed since the last pass: the loop asks on every turn, this is its cost */
    }
    uint64_t gen;
    struct clink_tls_ctx *t = current_trust(n, &gen);
    w->tls_gen = gen;
    if (t == NULL) {
        return;
    }
    unsigned closed = 0, kept = 0;
    for (struct clink_conn *c = w->conns; c != NULL; c = c->next) {
        /* Those still opening are checked as they open; DRAINING ones are on their way out already. */
        if (c->state != CS_OPEN || !checked(c)) {
            continue;
        }
        c->tls_gen = gen;
        char why[256];
        int verr;
        int ok = verify_peer(c, ssl_ctx_for(c, t), &verr, why, sizeof(why));
        if (ok != 0) {
            kept += ok == 1;
            continue;
        }
        if (verr == X509_V_ERR_CERT_REVOKED) {
            STAT_ADD(w, links_closed_revoked, 1);
        } else {
            STAT_ADD(w, links_closed_untrusted, 1);
        }
        /* Once per link, at WARN: a security event the operator asked for with the reload. */
        CLINK_CONN_LOG(c, CLINK_LOG_WARN, "%s: %s after the TLS reload: link closed gracefully (GOAWAY)",
                       clink__conn_peer(c), why);
        if (c->cache.last_error_text[0] == '\0') {
            snprintf(c->cache.last_error_text, sizeof(c->cache.last_error_text), "closed by a TLS reload: %.200s", why);
        }
        clink__conn_begin_close(c, 0);
        closed++;
    }
    if (closed > 0) {
        CLINK_LOG(&n->log, CLINK_LOG_INFO, "transport", 0,
                  "worker %u: TLS reload: %u link(s) closed (peer no longer verifies), %u checked and kept", w->idx,
                  closed, kept);
    }
    clink_tls_ctx_free(t);
}

int clink__conn_recheck_opening(struct clink_conn *c)
{
    if (!checked(c) || c->tls_gen == atomic_load_explicit(&c->node->tls_gen, memory_order_acquire)) {
        return 0;
    }
    uint64_t gen;
    struct clink_tls_ctx *t = current_trust(c->node, &gen);
    if (t == NULL) {
        return 0;
    }
    c->tls_gen = gen;
    char why[256];
    int verr;
    int ok = verify_peer(c, ssl_ctx_for(c, t), &verr, why, sizeof(why));
    clink_tls_ctx_free(t);
    if (ok != 0) {
        return 0;
    }
    clink__conn_fail(c, -CLINK_EVERIFY, "TLS: %s under the trust reloaded during the handshake", why);
    return -1;
}
