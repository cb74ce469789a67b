/*
 * Internal to auth/: what the accounts files share. The store (accounts.c)
 * holds the set and answers logins; accounts_file.c reads and writes the
 * file; require.c parses and checks the REQUIRE clause; passwords.c makes and
 * checks the password verifiers. Nothing outside auth/ includes this (tests
 * and fuzz targets aside).
 */
#ifndef CLINK_AUTH_ACCOUNTS_INT_H
#define CLINK_AUTH_ACCOUNTS_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "clink/accounts.h"

#define NATIVE_LEN 41 /* "*" + 40 hex digits */
#define SHA2_MAX   128
/*
 * libinih (as Debian builds it) reads a line of at most 198 bytes before its
 * newline and keeps 49 bytes of a section name. A longer line it cuts in two,
 * the rest read as a line of its own (a comment could hide a key), and a
 * longer [user@host] it cuts silently. clink__accounts_read_file refuses
 * both before libinih sees the file, and the API refuses an account that
 * would not fit: every value the file holds is kept short enough to read
 * back ("require_subject = " + 180).
 */
#define INI_LINE_MAX    198
#define INI_SECTION_MAX 49
#define DN_MAX          181
#define CIPHER_MAX      64

struct clink__require {
    int ssl, x509;
    char issuer[DN_MAX];
    char subject[DN_MAX];
    char cipher[CIPHER_MAX];
};

struct clink__account {
    char user[CLINK_USER_MAX + 1];
    char host[CLINK_HOST_MAX + 1];
    char native[NATIVE_LEN + 1]; /* mysql_native_password verifier, "" if none (kept only with native_password) */
    char sha2[SHA2_MAX];         /* caching_sha2_password verifier ($5$ SHA-256 crypt), "" if none */
    struct clink__require req;
    int admin;             /* grant = ALL: may manage accounts and reload TLS (MySQL's ALL PRIVILEGES ON *.*) */
    int legacy_native_tls; /* an unbound mysql_native_password answer is accepted inside TLS (old MySQL clients) */
    int native_password;   /* keep the mysql_native_password verifier (scramble logins); legacy_native_tls implies it */
    int plaintext_no_password; /* no password, and still no verified client certificate needed (literal host only) */
};

/* 1 if a keeps its mysql_native_password verifier: chosen, or implied by legacy_native_tls. */
static inline int clink__keeps_native(const struct clink__account *a)
{
    return a->native_password || a->legacy_native_tls;
}

/* ---- accounts.c ---- */

/* A user (is_host 0) or host name the file's [user@host] sections can hold: 1 if so. */
int clink__valid_name(const char *s, size_t max, int is_host);
/* 1 if host is one address or 'localhost', no pattern (% or _): plaintext_no_password's condition. */
int clink__literal_host(const char *host);
/* The account user@host in v[0..n), or NULL. */
struct clink__account *clink__account_find(struct clink__account *v, size_t n, const char *user, const char *host);

/* ---- require.c ---- */

/* s past any white space. */
const char *clink__skip_ws(const char *s);
/* A REQUIRE clause (NULL or "" is NONE) into r. 0, or -CLINK_EINVAL with the reason in err. */
CLINK_MUST_USE int clink__parse_require(const char *text, struct clink__require *r, char *err, size_t errlen);
/*
 * The login's connection against a's REQUIRE clause, once its password has
 * passed. 0, or -CLINK_EACCESS with the reason in why.
 */
CLINK_MUST_USE int clink__check_require(const struct clink__account *a, const struct clink_login *l, char *why,
                                        size_t whylen);

/* ---- passwords.c ---- */

/* 1 if v is a stored mysql_native_password verifier ("*" and 40 hex digits). */
int clink__valid_native(const char *v);
/* 1 if v is a stored caching_sha2_password verifier ($5$ SHA-256 crypt). */
int clink__valid_sha2(const char *v);
/*
 * Both verifiers of password into a (none for NULL or ""); the store drops
 * the mysql_native_password one unless the account keeps it, which it may
 * learn only under its lock. 0, or a negative CLINK_E* with the reason in err.
 */
CLINK_MUST_USE int clink__make_verifiers(const char *password, struct clink__account *a, char *err, size_t errlen);
/* SHA-256 crypts run by cleartext checks (tests count them: each check runs one). */
extern _Atomic unsigned long clink__sha2_crypts;
/* 1 if the cleartext password pw[0..len) matches a's verifiers. Always one SHA-256 crypt. */
int clink__check_cleartext(const struct clink__account *a, const uint8_t *pw, size_t len);
/* 1 if the 20-byte mysql_native_password answer ans proves a's password for scramble (bound to binding if not NULL). */
int clink__check_scramble(const struct clink__account *a, const uint8_t *ans, size_t len, const uint8_t *scramble,
                          const uint8_t *binding);

/* ---- accounts_file.c ---- */

/* The accounts in the file at path, into *v (caller frees) and *n. 0, or -CLINK_ECONFIG with the reason in err. */
CLINK_MUST_USE int clink__accounts_read_file(const char *path, struct clink__account **v, size_t *n, char *err,
                                             size_t errlen);
/* v[0..n) written over the file at path (nothing for a NULL path). 0, or a negative CLINK_E* or -errno. */
CLINK_MUST_USE int clink__accounts_save(const char *path, const struct clink__account *v, size_t n, char *err,
                                        size_t errlen);
/* The lock on the file at path (flock on path.lock), held until the returned fd is closed; or a negative CLINK_E*. */
CLINK_MUST_USE int clink__accounts_lock_file(const char *path, char *err, size_t errlen);

#endif
