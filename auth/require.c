/*
 * MySQL's REQUIRE clause: the grammar that clink_accounts_add/alter and the
 * file's `require = ...` key accept, and the check of a login's connection
 * against it. Apart from the store (accounts.c) because it is a small
 * language of its own, fed hostile text by fuzz/fuzz_accounts.c, and the
 * store needs only its parsed form.
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/accounts_int.h"
#include "auth/errbuf.h"

const char *clink__skip_ws(const char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    return s;
}

static int word_is(const char *s, const char *w, const char **end)
{
    size_t n = strlen(w);
    if (strncasecmp(s, w, n) != 0 || isalnum((unsigned char)s[n]) || s[n] == '_') {
        return 0;
    }
    *end = s + n;
    return 1;
}

/* A single-quoted string; '' and \' stand for a quote, \\ for a backslash. */
static const char *quoted(const char *s, char *out, size_t cap, const char *what, char *err, size_t errlen)
{
    s = clink__skip_ws(s);
    if (*s != '\'') {
        clink__set_err(err, errlen, "%s needs a quoted value", what);
        return NULL;
    }
    size_t n = 0;
    for (s++;; s++) {
        char ch = *s;
        if (ch == '\0') {
            clink__set_err(err, errlen, "unterminated quote after %s", what);
            return NULL;
        }
        if (ch == '\'' && s[1] == '\'') {
            s++;
        } else if (ch == '\\' && (s[1] == '\'' || s[1] == '\\')) {
            ch = *++s;
        } else if (ch == '\'') {
            break;
        }
        if ((unsigned char)ch < 0x20 || ch == 0x7f || ch == ';' || ch == '#') {
            clink__set_err(err, errlen, "%s value: control characters, ';' and '#' cannot be stored", what);
            return NULL;
        }
        if (n + 1 >= cap) {
            clink__set_err(err, errlen, "%s value longer than %zu bytes", what, cap - 1);
            return NULL;
        }
        out[n++] = ch;
    }
    out[n] = '\0';
    if (n == 0) {
        clink__set_err(err, errlen, "%s value is empty", what);
        return NULL;
    }
    /* The file holds it unquoted (write_require, accounts_file.c), and libinih strips the spaces around a value. */
    if (out[0] == ' ' || out[n - 1] == ' ') {
        clink__set_err(err, errlen, "%s value: a leading or trailing space cannot be stored", what);
        return NULL;
    }
    return s + 1;
}

/*
 * MySQL's grammar: REQUIRE NONE | tls_option [[AND] tls_option]..., where
 * tls_option is SSL, X509, ISSUER 'dn', SUBJECT 'dn' or CIPHER 'name', each
 * at most once. The leading REQUIRE is optional.
 */
int clink__parse_require(const char *text, struct clink__require *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    const char *s = clink__skip_ws(text ? text : "");
    const char *e;
    if (word_is(s, "REQUIRE", &e)) {
        s = clink__skip_ws(e);
    }
    if (*s == '\0' || (word_is(s, "NONE", &e) && *clink__skip_ws(e) == '\0')) {
        return 0;
    }
    int any = 0, ssl = 0, x509 = 0;
    while (*s != '\0') {
        if (any && word_is(s, "AND", &e)) {
            s = clink__skip_ws(e);
        }
        if (word_is(s, "SSL", &e) && !ssl) {
            s = e;
            ssl = 1;
        } else if (word_is(s, "X509", &e) && !x509) {
            s = e;
            x509 = 1;
        } else if (word_is(s, "ISSUER", &e) && r->issuer[0] == '\0') {
            s = quoted(e, r->issuer, sizeof(r->issuer), "ISSUER", err, errlen);
            x509 = 1;
        } else if (word_is(s, "SUBJECT", &e) && r->subject[0] == '\0') {
            s = quoted(e, r->subject, sizeof(r->subject), "SUBJECT", err, errlen);
            x509 = 1;
        } else if (word_is(s, "CIPHER", &e) && r->cipher[0] == '\0') {
            s = quoted(e, r->cipher, sizeof(r->cipher), "CIPHER", err, errlen);
        } else {
            clink__set_err(
                err, errlen,
                "REQUIRE: expected NONE, or SSL, X509, ISSUER '...', SUBJECT '...', CIPHER '...' (each at most "
                "once, optionally joined by AND) at \"%.40s\"",
                s);
            return -CLINK_EINVAL;
        }
        if (s == NULL) {
            return -CLINK_EINVAL;
        }
        s = clink__skip_ws(s);
        any = 1;
    }
    r->x509 = x509;
    r->ssl = 1; /* every option needs TLS */
    return 0;
}

/* The whole name, however long (a fixed buffer would cut it and let a longer name match a prefix). */
static int dn_equals(const X509_NAME *name, const char *want, char *shown, size_t cap)
{
    char *dn = name ? X509_NAME_oneline(name, NULL, 0) : NULL;
    int eq = dn != NULL && strcmp(dn, want) == 0;
    snprintf(shown, cap, "%s", dn ? dn : "");
    OPENSSL_free(dn);
    return eq;
}

int clink__check_require(const struct clink__account *a, const struct clink_login *l, char *why, size_t whylen)
{
    int ret = -CLINK_EACCESS;
    if (a->req.ssl && !l->tls) {
        clink__set_err(why, whylen, "'%s'@'%s' requires SSL and the connection is plaintext", a->user, a->host);
    } else if (a->req.x509 && (l->peer_cert == NULL || !l->peer_verified)) {
        clink__set_err(why, whylen, "'%s'@'%s' requires a verified client certificate and there is none", a->user,
                       a->host);
    } else if (a->req.cipher[0] && (l->cipher == NULL || strcmp(l->cipher, a->req.cipher) != 0)) {
        clink__set_err(why, whylen, "'%s'@'%s' requires cipher %s, the connection uses %s", a->user, a->host,
                       a->req.cipher, l->cipher ? l->cipher : "none");
    } else {
        char dn[256];
        ret = 0;
        if (a->req.subject[0]) {
            if (!dn_equals(X509_get_subject_name(l->peer_cert), a->req.subject, dn, sizeof(dn))) {
                clink__set_err(why, whylen, "'%s'@'%s' requires subject '%s', the certificate has '%s'", a->user,
                               a->host, a->req.subject, dn);
                ret = -CLINK_EACCESS;
            }
        }
        if (ret == 0 && a->req.issuer[0]) {
            if (!dn_equals(X509_get_issuer_name(l->peer_cert), a->req.issuer, dn, sizeof(dn))) {
                clink__set_err(why, whylen, "'%s'@'%s' requires issuer '%s', the certificate has '%s'", a->user,
                               a->host, a->req.issuer, dn);
                ret = -CLINK_EACCESS;
            }
        }
    }
    return ret;
}
