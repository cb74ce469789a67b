/*
 * clink accounts: who may log in, and what a login must prove.
 *
 * An account is 'user'@'host' (MySQL's naming: host is the client's address
 * or a pattern with % and _), an optional password kept only as verifiers
 * (never the password), and a TLS requirement in MySQL's grammar:
 *
 *     REQUIRE NONE | tls_option [[AND] tls_option]...
 *     tls_option: SSL | X509 | ISSUER 'dn' | SUBJECT 'dn' | CIPHER 'name'
 *
 * where a dn is written the way MySQL prints it (OpenSSL's one-line form,
 * "/C=US/O=Acme/CN=agg1"). Node-to-node logins normally prove themselves by
 * certificate (REQUIRE SUBJECT / X509, no password: no hashing per
 * connection). An account without a password accepts only a login with a
 * verified client certificate, on every path (native and MySQL clients,
 * plaintext and TLS), unless it is marked plaintext_no_password. A login
 * that fails anything is refused with exactly
 * "Access denied for user 'NAME'@'HOST'"; why goes only to the server's log.
 *
 * Accounts live in a file (format in docs/config.md). Changes through this
 * API are written back atomically (temporary file, fsync, read back, rename,
 * fsync of the folder) before they take effect: a change that cannot be
 * saved is not made. A change starts from the file as it is, under an
 * exclusive flock on FILE.lock, so writers in other processes lose nothing.
 * Every function is thread-safe: writers take a writer lock; logins take the
 * set's lock only to copy the account they match, and hash outside it.
 *
 * This module knows no sockets.
 */
#ifndef CLINK_ACCOUNTS_H
#define CLINK_ACCOUNTS_H

#include <stddef.h>
#include <stdint.h>

#include "clink/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct clink_accounts;
struct x509_st; /* OpenSSL's X509 */

#define CLINK_USER_MAX     64  /* bytes of a user name */
#define CLINK_HOST_MAX     64  /* bytes of a host pattern */
#define CLINK_PASSWORD_MAX 255 /* bytes of a password */
#define CLINK_SCRAMBLE_LEN 20  /* the server's login challenge */
#define CLINK_BINDING_LEN  32  /* a TLS session's channel binding (RFC 9266 tls-exporter) */

/*
 * Load the accounts file at path (it must exist; an empty file is no
 * accounts). [out] *out; free with clink_accounts_free. [out] err names the
 * file, line and reason on failure. Returns 0, -CLINK_ECONFIG, -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_accounts_load(const char *path, struct clink_accounts **out, char *err,
                                                 size_t errlen);

/*
 * An empty set of accounts. path: where changes are saved (created on the
 * first change), or NULL for accounts kept in memory only.
 */
CLINK_API CLINK_MUST_USE int clink_accounts_new(const char *path, struct clink_accounts **out);

/*
 * Read the file again. On any error the accounts in use stay as they were
 * and err says why. Returns 0, -CLINK_ECONFIG, -CLINK_EINVAL (no file).
 */
CLINK_API CLINK_MUST_USE int clink_accounts_reload(struct clink_accounts *acc, char *err, size_t errlen);

/* Reference counting: a node holds a reference while it runs. */
CLINK_API void clink_accounts_ref(struct clink_accounts *acc);
CLINK_API void clink_accounts_free(struct clink_accounts *acc);

/* What an account is (for add and alter). Strings are borrowed during the call. */
struct clink_account_spec {
    const char *user; /* [in] required; printable, at most CLINK_USER_MAX bytes, "" is the anonymous user */
    const char *host; /* [in] address or pattern (% and _); NULL: "%". user@host: at most 49 bytes (the file) */
    /*
     * [in] NULL or "": no password (then the account stands on a verified
     * client certificate, see plaintext_no_password). Only its verifiers are
     * kept: the salted caching_sha2_password one always, mysql_native_password's
     * only with native_password.
     */
    const char *password;
    const char *require; /* [in] "NONE", "SSL", "X509", "SUBJECT '...' AND ISSUER '...'"...; NULL: NONE */
    /*
     * [in] "ALL": the account may manage accounts and reload TLS through the
     * MySQL front door (MySQL's GRANT ALL PRIVILEGES ON *.*); "USAGE": it may
     * not. NULL: USAGE for add, unchanged for alter. The file's `grant = ALL`.
     */
    const char *grant;
    /*
     * [in] "ON": a MySQL client's mysql_native_password answer is accepted
     * inside TLS, where it is not bound to the TLS session: a server the
     * client did not verify could relay it (docs/SECURITY.md). For old
     * clients that cannot do caching_sha2_password. "OFF" or NULL: off for
     * add, unchanged for alter. The file's `legacy_native_tls = ON`.
     */
    const char *legacy_native_tls;
    /*
     * [in] "ON": also keep the password's mysql_native_password verifier,
     * the unsalted SHA1(SHA1(password)) (equal passwords give equal strings,
     * and a reader of the file can test guesses at speed). Only a scramble
     * login needs it: CLINK_LOGIN_SCRAMBLE (plaintext, or legacy_native_tls)
     * and CLINK_LOGIN_SCRAMBLE_BOUND (a native client that does not verify
     * the server by name). "OFF" or NULL: off for add, unchanged for alter;
     * legacy_native_tls = ON implies it. The verifier is made from a
     * password: turning it on for an account that has one needs the password
     * given again (alter refuses without it); turning it off drops the
     * verifier. The file's `native_password = ON`.
     */
    const char *native_password;
    /*
     * [in] "ON": an account without a password accepts a login without a
     * verified client certificate (plaintext, or TLS without one). Only for
     * a literal host (an address or 'localhost', no % or _): the bench's
     * plaintext baseline, a plaintext cluster during a migration. "OFF" or
     * NULL: off for add, unchanged for alter. Without it an account with no
     * password stands only on a verified client certificate. The file's
     * `plaintext_no_password = ON`.
     */
    const char *plaintext_no_password;
};

/* Add an account. Returns 0, -EEXIST, -CLINK_EINVAL (err says which part), or the save's error. */
CLINK_API CLINK_MUST_USE int clink_accounts_add(struct clink_accounts *acc, const struct clink_account_spec *spec,
                                                char *err, size_t errlen);

/*
 * Change an existing account: a non-NULL password replaces the verifiers
 * ("" removes the password), a non-NULL require replaces the requirement.
 * Returns 0, -ENOENT, -CLINK_EINVAL, or the save's error.
 */
CLINK_API CLINK_MUST_USE int clink_accounts_alter(struct clink_accounts *acc, const struct clink_account_spec *spec,
                                                  char *err, size_t errlen);

/* Drop 'user'@'host' (host NULL: "%"). Returns 0, -ENOENT, or the save's error. */
CLINK_API CLINK_MUST_USE int clink_accounts_drop(struct clink_accounts *acc, const char *user, const char *host,
                                                 char *err, size_t errlen);

/*
 * A CA rollover's step for the accounts: every account whose REQUIRE
 * ISSUER is exactly old_issuer ("/C=US/O=Example/CN=cluster CA", as
 * REQUIRE ISSUER writes it) now requires new_issuer; one save, one swap.
 * [out] *changed (may be NULL): how many. Returns 0 (also when none named
 * it: nothing is written), -CLINK_EINVAL, or the save's error.
 */
CLINK_API CLINK_MUST_USE int clink_accounts_replace_issuer(struct clink_accounts *acc, const char *old_issuer,
                                                           const char *new_issuer, unsigned *changed, char *err,
                                                           size_t errlen);

/* Bytes of a certificate name in REQUIRE SUBJECT / ISSUER, and of a cipher name in REQUIRE CIPHER. */
#define CLINK_DN_MAX     180
#define CLINK_CIPHER_MAX 63

/* What an account is, without its verifiers: what SHOW GRANTS tells (clink_accounts_get). */
struct clink_account_info {
    char user[CLINK_USER_MAX + 1];
    char host[CLINK_HOST_MAX + 1];
    int grant_all;                     /* grant = ALL */
    int has_password;                  /* it holds a password verifier (else it stands on a certificate) */
    int require_ssl;                   /* REQUIRE SSL or anything stricter: a TLS connection */
    int require_x509;                  /* REQUIRE X509, SUBJECT or ISSUER: a verified client certificate */
    char subject[CLINK_DN_MAX + 1];    /* REQUIRE SUBJECT, "" if none */
    char issuer[CLINK_DN_MAX + 1];     /* REQUIRE ISSUER, "" if none */
    char cipher[CLINK_CIPHER_MAX + 1]; /* REQUIRE CIPHER, "" if none */
};

/*
 * The account 'user'@'host' exactly as named (host NULL: "%"; no pattern
 * matching: the account, not the one a login would pick). [out] *out.
 * Returns 0, -ENOENT, -CLINK_EINVAL. Thread: any.
 */
CLINK_API CLINK_MUST_USE int clink_accounts_get(struct clink_accounts *acc, const char *user, const char *host,
                                                struct clink_account_info *out);

/* 1 if the account `matched` names ("user@host-pattern", as clink_accounts_check gives it) holds grant ALL. */
CLINK_API int clink_accounts_is_admin(struct clink_accounts *acc, const char *matched);

/* Number of accounts. */
CLINK_API size_t clink_accounts_count(struct clink_accounts *acc);

/* How a login proves its password. */
enum clink_login_method {
    CLINK_LOGIN_NONE = 0,  /* no password */
    CLINK_LOGIN_CLEARTEXT, /* the password itself: only inside TLS */
    /*
     * mysql_native_password's answer to the server's 20-byte scramble. Not
     * bound to a TLS session: accepted in plaintext, and inside TLS only for
     * an account with legacy_native_tls (a relay could have forwarded it).
     * Like SCRAMBLE_BOUND, only for an account with native_password.
     */
    CLINK_LOGIN_SCRAMBLE,
    /*
     * The same answer with this TLS session's channel binding mixed in
     * (clink_login_scramble_bound): worthless on any other session, so a
     * server that relays it gains nothing. Only inside TLS.
     */
    CLINK_LOGIN_SCRAMBLE_BOUND,
};

/* The facts of one login, as the transport saw them. */
struct clink_login {
    const char *user;                /* [in] as the client sent it */
    const char *host;                /* [in] the client's address, e.g. "127.0.0.1" */
    int tls;                         /* [in] the connection is TLS */
    const char *cipher;              /* [in] TLS cipher name, or NULL */
    const struct x509_st *peer_cert; /* [in] the client's certificate, NULL if none */
    int peer_verified;               /* [in] its chain verified against our CAs */
    enum clink_login_method method;
    const uint8_t *auth; /* [in] password or scramble answer */
    size_t auth_len;
    const uint8_t *scramble; /* [in] the CLINK_SCRAMBLE_LEN bytes this server sent (SCRAMBLE, SCRAMBLE_BOUND) */
    /* [in] this TLS session's CLINK_BINDING_LEN-byte channel binding (SCRAMBLE_BOUND), NULL if it has none */
    const uint8_t *binding;
};

/*
 * Check a login. 0: accepted, [out] matched gets "user@host-pattern" of the
 * account (may be NULL). -CLINK_EACCESS: refused, [out] why says why for the
 * server's log (never for the client). -CLINK_EAGAIN: refused by the
 * failed-login throttle before the password was looked at (a door may say
 * "try later"; it tells nothing about the account). An account without a
 * password needs peer_cert verified (peer_verified) unless it is
 * plaintext_no_password; a scramble login needs the account's
 * mysql_native_password verifier (native_password). Cleartext logins against a
 * caching_sha2_password verifier cost one SHA-256 crypt (5000 rounds).
 */
CLINK_API CLINK_MUST_USE int clink_accounts_check(struct clink_accounts *acc, const struct clink_login *login,
                                                  char *matched, size_t matched_len, char *why, size_t whylen);

/*
 * 1 if the account user@host logs in as (the most specific match) accepts an
 * unbound mysql_native_password answer inside TLS (legacy_native_tls), else
 * 0. The MySQL front door asks before it switches a client to
 * caching_sha2_password.
 */
CLINK_API int clink_accounts_legacy_native_tls(struct clink_accounts *acc, const char *user, const char *host);

/*
 * The failed-login throttle, which every password login passes whichever
 * door it came through (native, MySQL, ops), after MySQL's
 * connection_control: free_failures failures cost nothing; each one past
 * them makes the next password check wait delay_step_ms longer, up to
 * max_delay_ms. A login made while it must wait is refused at once, its
 * password not looked at (clink_accounts_check returns -CLINK_EAGAIN).
 * Counted per user name (whether or not an account has it) and per source
 * address; a source that has logged in to a user before counts on its own,
 * so a stranger's guesses cannot lock it out. Logins by certificate alone
 * (no password) are not throttled: nothing in them can be guessed. Zero
 * fields: the defaults. docs/SECURITY.md gives the rates they make.
 */
struct clink_login_throttle {
    uint32_t free_failures; /* per user, source or known pair, before any wait; 0: 10 */
    uint32_t delay_step_ms; /* added to the wait by each failure past them; 0: 100 */
    uint32_t max_delay_ms;  /* the longest wait; 0: 10000 */
    uint32_t forget_s;      /* a user or source left alone this long starts over; 0: 600 */
    /*
     * Users, sources and pairs tracked (about 150 bytes each); 0: 4096.
     * When all are in use, newcomers share one count (a global limit)
     * rather than anyone's count being forgotten.
     */
    uint32_t entries;
};

/* Replace the throttle (and forget what it counted). Returns 0, -CLINK_EINVAL, -CLINK_ENOMEM. */
CLINK_API CLINK_MUST_USE int clink_accounts_set_throttle(struct clink_accounts *acc,
                                                         const struct clink_login_throttle *opts);

/* What the throttle has seen since it was made. */
struct clink_login_stats {
    uint64_t failures;   /* password logins checked and refused */
    uint64_t throttled;  /* password logins refused unchecked: their user, source or pair had to wait */
    uint64_t overflowed; /* logins counted on the shared entry because the table was full */
    uint64_t tracked;    /* users, sources and pairs tracked now */
};
CLINK_API void clink_accounts_login_stats(struct clink_accounts *acc, struct clink_login_stats *out);

/* The refusal a client gets, exactly "Access denied for user 'NAME'@'HOST'". Returns its length. */
CLINK_API size_t clink_access_denied(const char *user, const char *host, char *buf, size_t cap);

/*
 * A login's scramble answer (mysql_native_password):
 * SHA1(password) XOR SHA1(scramble || SHA1(SHA1(password))). [out] out, 20 bytes.
 */
CLINK_API CLINK_MUST_USE int clink_login_scramble(const char *password, const uint8_t scramble[CLINK_SCRAMBLE_LEN],
                                                  uint8_t out[20]);

/*
 * A login's scramble answer bound to a TLS session (CLINK_LOGIN_SCRAMBLE_BOUND):
 * SHA1(password) XOR SHA1(scramble || binding || SHA1(SHA1(password))), where
 * binding is the session's RFC 9266 tls-exporter value. [out] out, 20 bytes.
 */
CLINK_API CLINK_MUST_USE int clink_login_scramble_bound(const char *password,
                                                        const uint8_t scramble[CLINK_SCRAMBLE_LEN],
                                                        const uint8_t binding[CLINK_BINDING_LEN], uint8_t out[20]);

#ifdef __cplusplus
}
#endif
#endif
