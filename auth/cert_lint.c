/*
 * What is weak about the certificates a context holds. clink accepts what
 * `openssl verify` accepts (unless ssl_x509_strict), because operators bring
 * certificates made with plain openssl commands, the way MySQL's and
 * MemSQL's documents make them. This file says, once per certificate, what
 * in them falls short of good practice and which clink-certs command makes a
 * better one; it never refuses anything.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/tls_ctx.h"
#include "clink/auth.h"

#define SOON_S (30 * 86400)
/* A CRL is re-issued more often than a certificate: a week's notice is the usual cadence's slack. */
#define CRL_SOON_S (7 * 86400)
#define CRL_FIX    "re-issue it with clink-certs crl --ca DIR --days N, copy it to every node's ssl_crl and reload them"
#define NODE_FIX   "clink-certs node --ca DIR --out DIR --name NAME --dns NAME (a DNS name per node)"
#define CA_FIX     "clink-certs ca --out DIR (keyUsage keyCertSign, cRLSign)"

/* A DNS or IP subjectAltName: without one, the CN is the only name. */
static int has_san_name(const X509 *x)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0;
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        int type = sk_GENERAL_NAME_value(names, i)->type;
        found |= type == GEN_DNS || type == GEN_IPADD;
    }
    GENERAL_NAMES_free(names);
    return found;
}

int clink__cert_cn_only(const X509 *x, char *cn, size_t cap)
{
    if (cap > 0) {
        cn[0] = '\0';
    }
    if (x == NULL || has_san_name(x)) {
        return 0;
    }
    X509_NAME *subj = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    ASN1_STRING *s = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)) : NULL;
    unsigned char *utf8 = NULL;
    int n = s != NULL ? ASN1_STRING_to_UTF8(&utf8, s) : -1;
    if (n > 0 && cap > 0) {
        snprintf(cn, cap, "%.*s", n, (const char *)utf8);
    }
    OPENSSL_free(utf8);
    return n > 0;
}

struct sink {
    struct clink_cert_warning *out;
    size_t cap, n;
};

/* One line per certificate: what deviates, "; "-separated, then the command that makes a better one. */
struct line {
    char text[sizeof(((struct clink_cert_warning *)0)->text)];
    size_t len;
};

static void note(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct line *l, const char *fmt, ...)
{
    if (l->len + 2 >= sizeof(l->text)) {
        return;
    }
    if (l->len > 0) {
        l->text[l->len++] = ';';
        l->text[l->len++] = ' ';
        l->text[l->len] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->text + l->len, sizeof(l->text) - l->len, fmt, ap);
    va_end(ap);
    l->len = n < 0 ? l->len : l->len + (size_t)n < sizeof(l->text) ? l->len + (size_t)n : sizeof(l->text) - 1;
}

static void add(struct sink *s, X509 *x, enum clink_cert_kind kind, struct line *l)
{
    if (s->n < s->cap) {
        struct clink_cert_warning *w = &s->out[s->n];
        memset(w, 0, sizeof(*w));
        w->kind = kind;
        clink__name_rfc2253(X509_get_subject_name(x), w->subject, sizeof(w->subject));
        memcpy(w->text, l->text, sizeof(w->text));
    }
    s->n++;
}

/* Does the certificate name host (a DNS name or an IP address), by SAN or, failing those, by CN? */
static int names_host(X509 *x, const char *host)
{
    unsigned char ip[16];
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
        return X509_check_ip_asc(x, host, 0) == 1;
    }
    return X509_check_host(x, host, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
}

/*
 * The CRLs in store that this CA issued and that lapse within CRL_SOON_S (or
 * have): past nextUpdate, OpenSSL refuses every certificate the CRL covers
 * (X509_V_ERR_CRL_HAS_EXPIRED), this node's own included.
 */
static void lint_crls(struct line *l, X509 *ca, X509_STORE *store, int64_t now)
{
    STACK_OF(X509_OBJECT) *objs = store != NULL ? X509_STORE_get0_objects(store) : NULL;
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509_OBJECT *o = sk_X509_OBJECT_value(objs, i);
        X509_CRL *crl = X509_OBJECT_get_type(o) == X509_LU_CRL ? X509_OBJECT_get0_X509_CRL(o) : NULL;
        if (crl == NULL || X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0 ||
            X509_CRL_get0_nextUpdate(crl) == NULL) {
            continue;
        }
        int64_t next = clink__asn1_unix(X509_CRL_get0_nextUpdate(crl));
        if (next <= now) {
            note(l, "its CRL (ssl_crl) expired %lld days ago: peers checking it refuse every certificate it covers; %s",
                 (long long)((now - next) / 86400), CRL_FIX);
        } else if (next - now < CRL_SOON_S) {
            note(l,
                 "its CRL (ssl_crl) expires in %lld days, %lld hours: then peers checking it refuse every certificate "
                 "it covers; %s",
                 (long long)((next - now) / 86400), (long long)((next - now) % 86400 / 3600), CRL_FIX);
        }
    }
}

static void lint_one(struct sink *s, X509 *x, enum clink_cert_kind kind, const char *host, int64_t now,
                     X509_STORE *store)
{
    int is_ca = kind != CLINK_CERT_OWN;
    struct line l = {.len = 0};
    l.text[0] = '\0';
    if (X509_get_version(x) != X509_VERSION_3) {
        note(&l, "X.509 v%ld certificate, with no extensions (RFC 5280 wants v3)", X509_get_version(x) + 1);
    } else if (is_ca && (X509_get_extension_flags(x) & EXFLAG_KUSAGE) == 0) {
        note(&l, "CA certificate without keyUsage (ssl_x509_strict = ON refuses it)");
    }
    char cn[128];
    int cn_only = !is_ca && clink__cert_cn_only(x, cn, sizeof(cn));
    if (cn_only) {
        note(&l,
             "no subjectAltName: the CN '%s' is its only name, so peers that dial it by IP or another name must set "
             "ssl_server_name = %s or ssl_mode = VERIFY_CA",
             cn, cn);
    }
    /*
     * Only for a CN-only certificate: one with SANs that leave out the
     * address it listens on is most likely a per-node certificate dialled by
     * its DNS name, not a shared one.
     */
    if (cn_only && host != NULL && host[0] != '\0' && !names_host(x, host)) {
        note(&l,
             "does not name this node (%s): if one certificate is shared by every node, each node's key can "
             "impersonate any other",
             host);
    }
    int64_t until = clink__asn1_unix(X509_get0_notAfter(x));
    if (until > now && until - now < SOON_S) {
        note(&l, "expires in %lld days", (long long)((until - now) / 86400));
    }
    if (l.len > 0) {
        note(&l, "make a better one with %s", is_ca ? CA_FIX : NODE_FIX);
    }
    if (kind == CLINK_CERT_CA) {
        lint_crls(&l, x, store, now);
    }
    if (l.len > 0) {
        add(s, x, kind, &l);
    }
}

size_t clink_tls_ctx_lint(const struct clink_tls_ctx *ctx, const char *host, int64_t now,
                          struct clink_cert_warning *out, size_t cap)
{
    struct sink s = {out, cap, 0};
    SSL_CTX *sc = ctx != NULL ? clink_tls_ctx_server(ctx) : NULL;
    if (sc == NULL) {
        return 0;
    }
    X509 *leaf = SSL_CTX_get0_certificate(sc);
    if (leaf != NULL) {
        lint_one(&s, leaf, CLINK_CERT_OWN, host, now, NULL);
    }
    STACK_OF(X509) *chain = NULL;
    if (SSL_CTX_get0_chain_certs(sc, &chain) == 1 && chain != NULL) {
        for (int i = 0; i < sk_X509_num(chain); i++) {
            lint_one(&s, sk_X509_value(chain, i), CLINK_CERT_INTERMEDIATE, NULL, now, NULL);
        }
    }
    X509_STORE *store = SSL_CTX_get_cert_store(sc);
    STACK_OF(X509) *cas = store ? X509_STORE_get1_all_certs(store) : NULL;
    for (int i = 0; cas != NULL && i < sk_X509_num(cas); i++) {
        lint_one(&s, sk_X509_value(cas, i), CLINK_CERT_CA, NULL, now, store);
    }
    sk_X509_pop_free(cas, X509_free);
    ERR_clear_error();
    return s.n;
}
