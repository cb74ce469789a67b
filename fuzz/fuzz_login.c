/*
 * The login a client sends in its HELLO, decoded by clink__hello_decode and
 * checked by clink_accounts_check exactly as native.c's check_login() does,
 * against a fixed set of accounts (auth/accounts.c: host_score;
 * auth/passwords.c: the cleartext and scramble checks, unhex of the stored
 * verifiers; auth/require.c: the REQUIRE checks, dn_equals).
 *
 * Input: byte 0 is the connection (bit 0 TLS; bits 1-2 the client
 * certificate: none, CN=agg1 from CN=ca, CN=agg1 from CN=evil, CN=other;
 * bit 3 verified; bits 4-5 the cipher; bits 6-7 the client's address),
 * bytes 1-20 the scramble the server sent, the rest the HELLO payload.
 *
 * Property: the verdict equals the rules (docs/protocol.md "Login",
 * docs/config.md), written out again below as an oracle over the same
 * accounts: the best-matching account by host, then password by method (or,
 * without one, a verified certificate unless plaintext_no_password; a
 * scramble only with native_password), then REQUIRE; an accepted login names the account it matched, and a
 * refused one says why.
 */
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/accounts.h"
#include "fuzz/fuzz.h"
#include "transport/frame.h"

struct acct {
    const char *user, *host, *password;
    int ssl, x509;
    const char *subject, *issuer, *cipher;
    const char *require; /* the same, in the API's words */
    int native;          /* native_password: the verifier a scramble login needs */
    int plain_nopw;      /* plaintext_no_password: no password and no certificate needed */
};

static const struct acct accts[] = {
    {"", "127.0.0.1", NULL, 0, 0, NULL, NULL, NULL, "NONE", 0, 1},
    {"nopw", "%", NULL, 0, 0, NULL, NULL, NULL, "NONE", 0, 0},
    {"pw", "%", "secret", 0, 0, NULL, NULL, NULL, "NONE", 1, 0},
    {"pw", "127.0.0.1", "local", 1, 0, NULL, NULL, NULL, "SSL", 0, 0},
    {"root", "10.%", NULL, 1, 1, "/CN=agg1", "/CN=ca", NULL, "SUBJECT '/CN=agg1' AND ISSUER '/CN=ca'", 0, 0},
    {"x509", "%", NULL, 1, 1, NULL, NULL, NULL, "X509", 0, 0},
    {"cipher", "1%", "c", 1, 0, NULL, NULL, "TLS_AES_256_GCM_SHA384", "CIPHER 'TLS_AES_256_GCM_SHA384'", 1, 0},
};
#define NACCTS (sizeof(accts) / sizeof(accts[0]))

static const char *const hosts[] = {"127.0.0.1", "10.1.2.3", "::1", "192.168.1.1"};
static const char *const ciphers[] = {NULL, "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                      "TLS_CHACHA20_POLY1305_SHA256"};

/* The channel binding of the fuzzed TLS connection (a real one is the session's tls-exporter value). */
static const uint8_t binding[CLINK_BINDING_LEN] = "clink fuzz channel binding 32 b";
static struct clink_accounts *set;
static X509 *certs[4]; /* [0] none */

static X509 *cert(const char *cn, const char *issuer_cn)
{
    X509 *x = X509_new();
    X509_NAME *s = X509_NAME_new(), *i = X509_NAME_new();
    FUZZ_CHECK(x != NULL && s != NULL && i != NULL, "out of memory");
    X509_NAME_add_entry_by_txt(s, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(i, "CN", MBSTRING_ASC, (const unsigned char *)issuer_cn, -1, -1, 0);
    X509_set_subject_name(x, s);
    X509_set_issuer_name(x, i);
    X509_NAME_free(s);
    X509_NAME_free(i);
    return x;
}

static void setup(void)
{
    char err[256] = "";
    FUZZ_CHECK(clink_accounts_new(NULL, &set) == 0, "accounts_new");
    /* The rules, not the failed-login throttle (test_throttle's): no count ever makes a login here wait. */
    struct clink_login_throttle never = {.free_failures = UINT32_MAX};
    FUZZ_CHECK(clink_accounts_set_throttle(set, &never) == 0, "set_throttle");
    for (size_t i = 0; i < NACCTS; i++) {
        struct clink_account_spec s = {.user = accts[i].user,
                                       .host = accts[i].host,
                                       .password = accts[i].password,
                                       .require = accts[i].require,
                                       .native_password = accts[i].native ? "ON" : NULL,
                                       .plaintext_no_password = accts[i].plain_nopw ? "ON" : NULL};
        FUZZ_CHECK(clink_accounts_add(set, &s, err, sizeof(err)) == 0, "account %zu: %s", i, err);
    }
    certs[1] = cert("agg1", "ca");
    certs[2] = cert("agg1", "evil");
    certs[3] = cert("other", "ca");
}

/* MySQL host patterns, for the patterns above: -1 no match, else a score (a literal beats any pattern). */
static int host_match(const char *pat, const char *host)
{
    size_t n = strlen(pat);
    if (pat[n - 1] != '%') {
        return strcmp(pat, host) == 0 ? 1000 : -1;
    }
    return strncmp(pat, host, n - 1) == 0 ? (int)n - 1 : -1;
}

static int name_is(const X509_NAME *name, const char *cn)
{
    char buf[64];
    return strcmp(X509_NAME_oneline(name, buf, sizeof(buf)), cn) == 0;
}

/* The rules, from the account set above: the index of the account that lets this login in, or -1. */
static int spec_accepts(const struct clink_login *l)
{
    int best = -1, score = -1;
    for (size_t i = 0; i < NACCTS; i++) {
        int s = strcmp(accts[i].user, l->user) == 0 ? host_match(accts[i].host, l->host) : -1;
        if (s > score) {
            score = s;
            best = (int)i;
        }
    }
    if (best < 0) {
        return -1;
    }
    const struct acct *a = &accts[best];
    if (a->password == NULL && l->method != CLINK_LOGIN_NONE) {
        return -1;
    }
    /* No password: a verified client certificate is the proof, unless the account is plaintext_no_password. */
    if (a->password == NULL && !(l->peer_cert != NULL && l->peer_verified) && !a->plain_nopw) {
        return -1;
    }
    if (a->password != NULL) {
        size_t n = strlen(a->password);
        uint8_t answer[20], bound[20];
        FUZZ_CHECK(clink_login_scramble(a->password, l->scramble, answer) == 0, "login_scramble");
        FUZZ_CHECK(clink_login_scramble_bound(a->password, l->scramble, binding, bound) == 0, "login_scramble_bound");
        /*
         * No account here allows legacy_native_tls: the unbound answer is for
         * plaintext only; either scramble answer only for an account that
         * keeps the mysql_native_password verifier.
         */
        int ok = (l->method == CLINK_LOGIN_CLEARTEXT && l->tls && l->auth_len == n &&
                  memcmp(l->auth, a->password, n) == 0) ||
                 (l->method == CLINK_LOGIN_SCRAMBLE && a->native && !l->tls && l->auth_len == 20 &&
                  memcmp(l->auth, answer, 20) == 0) ||
                 (l->method == CLINK_LOGIN_SCRAMBLE_BOUND && a->native && l->tls && l->binding != NULL &&
                  l->auth_len == 20 && memcmp(l->auth, bound, 20) == 0);
        if (!ok) {
            return -1;
        }
    }
    if ((a->ssl && !l->tls) || (a->x509 && (l->peer_cert == NULL || !l->peer_verified)) ||
        (a->cipher != NULL && (l->cipher == NULL || strcmp(a->cipher, l->cipher) != 0)) ||
        (a->subject != NULL && !name_is(X509_get_subject_name(l->peer_cert), a->subject)) ||
        (a->issuer != NULL && !name_is(X509_get_issuer_name(l->peer_cert), a->issuer))) {
        return -1;
    }
    return best;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (set == NULL) {
        setup();
    }
    if (size < 1 + 20) {
        return 0;
    }
    uint8_t conn = data[0], scramble[20];
    memcpy(scramble, data + 1, 20);
    uint8_t *payload = fuzz_dup(data + 21, size - 21);
    struct clink_hello h;
    int ret = clink__hello_decode(payload, size - 21, &h);
    free(payload);
    if (ret < 0) {
        return 0; /* the connection is closed: fuzz_hello covers the decoder */
    }
    int tls = conn & 1;
    const X509 *peer = tls ? certs[conn >> 1 & 3] : NULL;
    struct clink_login l = {
        .user = h.user,
        .host = hosts[conn >> 6],
        .tls = tls,
        .cipher = tls ? ciphers[conn >> 4 & 3] : NULL,
        .peer_cert = peer,
        .peer_verified = peer != NULL && (conn & 8),
        .method = (enum clink_login_method)h.method,
        .auth = h.auth,
        .auth_len = h.auth_len,
        .scramble = scramble,
        .binding = tls ? binding : NULL,
    };
    char matched[160] = "", why[256] = "";
    ret = clink_accounts_check(set, &l, matched, sizeof(matched), why, sizeof(why));
    int want = spec_accepts(&l);
    FUZZ_CHECK(ret == 0 || ret == -CLINK_EACCESS, "accounts_check returned %d", ret);
    FUZZ_CHECK((ret == 0) == (want >= 0),
               "user '%s' from %s, method %u, %u auth bytes, tls %d: check says %d (%s), "
               "the rules say %s",
               l.user, l.host, h.method, h.auth_len, tls, ret, why, want >= 0 ? "accept" : "refuse");
    if (ret == 0) {
        char expect[160];
        snprintf(expect, sizeof(expect), "%s@%s", accts[want].user, accts[want].host);
        FUZZ_CHECK(strcmp(matched, expect) == 0, "matched %s, the rules say %s", matched, expect);
    } else {
        FUZZ_CHECK(why[0] != '\0', "a refusal without a reason");
    }
    return 0;
}
