/*
 * Accounts and logins (include/clink/accounts.h): the set of accounts, which
 * logins read and changes replace whole (one writer at a time, the file saved
 * before the new set is swapped in), and the login check that picks the most
 * specific account for a user and host. The file (accounts_file.c), the
 * REQUIRE clause (require.c) and the password verifiers (passwords.c) are
 * each a format or a scheme of their own and live apart.
 */
#include "clink/accounts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/accounts_int.h"
#include "auth/errbuf.h"
#include "auth/throttle.h"

/* The public sizes say what the file holds: nothing is cut on the way out. */
_Static_assert(DN_MAX == CLINK_DN_MAX + 1 && CIPHER_MAX == CLINK_CIPHER_MAX + 1, "REQUIRE name sizes");

struct clink_accounts {
    pthread_mutex_t mu;  /* the account set (logins read it); held only to copy or swap */
    pthread_mutex_t wmu; /* one writer at a time in this process: change, save, reload */
    int refs;
    char *path;                       /* NULL: memory only */
    struct clink__throttle *throttle; /* every password login passes it (auth/throttle.h) */
    struct clink__account *v;
    size_t n;
};

/* ---- names ---- */

/* Printable, no quote, bracket, backslash or '@' in users (the file's [user@host] sections split at the last '@'). */
int clink__valid_name(const char *s, size_t max, int is_host)
{
    size_t n = strlen(s);
    if (n > max || (is_host && n == 0)) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '[' || ch == ']' || ch == '\'' || ch == '"' || ch == '\\' || ch == '#' ||
            ch == ';' || ch == '=' || (is_host && ch == '@')) {
            return 0;
        }
    }
    return 1;
}

/* 127.0.0.0/8 or ::1: what MySQL, resolving a client's address, calls localhost. */
static int is_loopback(const char *host)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1) {
        return a[0] == 127;
    }
    return inet_pton(AF_INET6, host, a) == 1 && memcmp(a, in6addr_loopback.s6_addr, 16) == 0;
}

/* MySQL host patterns: % any run, _ one character. Returns a specificity score, or -1 when it does not match. */
static int host_score(const char *pat, const char *host)
{
    if (strcasecmp(pat, "localhost") == 0) {
        /*
         * Hosts are matched as addresses, so 'admin'@'localhost' (the form
         * MySQL's documents use) would never match: it means the loopback
         * addresses, as specific as a literal address.
         */
        return is_loopback(host) ? host_score(host, host) : -1;
    }
    const char *p = pat, *h = host, *star_p = NULL, *star_h = NULL;
    while (*h != '\0') {
        if (*p == '%') {
            star_p = ++p;
            star_h = h;
        } else if (*p == '_' || *p == *h) {
            p++;
            h++;
        } else if (star_p != NULL) {
            p = star_p;
            h = ++star_h;
        } else {
            return -1;
        }
    }
    while (*p == '%') {
        p++;
    }
    if (*p != '\0') {
        return -1;
    }
    /* Most specific first, as MySQL sorts: a literal host beats any pattern, then more literal characters win. */
    int literal = 0, wild = 0;
    for (p = pat; *p; p++) {
        if (*p == '%' || *p == '_') {
            wild = 1;
        } else {
            literal++;
        }
    }
    return wild ? literal : 100000 + literal;
}

int clink__literal_host(const char *host)
{
    return strpbrk(host, "%_") == NULL;
}

struct clink__account *clink__account_find(struct clink__account *v, size_t n, const char *user, const char *host)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].user, user) == 0 && strcmp(v[i].host, host) == 0) {
            return &v[i];
        }
    }
    return NULL;
}

/* ---- API ---- */

static int make(const char *path, struct clink_accounts **out)
{
    struct clink_accounts *acc = calloc(1, sizeof(*acc));
    if (acc == NULL) {
        return -CLINK_ENOMEM;
    }
    if (path != NULL && (acc->path = strdup(path)) == NULL) {
        free(acc);
        return -CLINK_ENOMEM;
    }
    struct clink__throttle *t = clink__throttle_new(NULL);
    if (t == NULL) {
        free(acc->path);
        free(acc);
        return -CLINK_ENOMEM;
    }
    acc->throttle = t;
    pthread_mutex_init(&acc->mu, NULL);
    pthread_mutex_init(&acc->wmu, NULL);
    acc->refs = 1;
    *out = acc;
    return 0;
}

int clink_accounts_new(const char *path, struct clink_accounts **out)
{
    if (out == NULL) {
        return -CLINK_EINVAL;
    }
    return make(path, out);
}

int clink_accounts_load(const char *path, struct clink_accounts **out, char *err, size_t errlen)
{
    if (path == NULL || out == NULL) {
        clink__set_err(err, errlen, "no accounts file given");
        return -CLINK_EINVAL;
    }
    struct clink__account *v = NULL;
    size_t n = 0;
    int ret = clink__accounts_read_file(path, &v, &n, err, errlen);
    if (ret < 0) {
        return ret;
    }
    ret = make(path, out);
    if (ret < 0) {
        free(v);
        return ret;
    }
    (*out)->v = v;
    (*out)->n = n;
    return 0;
}

int clink_accounts_reload(struct clink_accounts *acc, char *err, size_t errlen)
{
    if (acc == NULL || acc->path == NULL) {
        clink__set_err(err, errlen, "these accounts have no file");
        return -CLINK_EINVAL;
    }
    /* Under the writer lock: a reload must not swap in a file older than a change this process just saved. */
    pthread_mutex_lock(&acc->wmu);
    struct clink__account *v = NULL;
    size_t n = 0;
    int ret = clink__accounts_read_file(acc->path, &v, &n, err, errlen);
    if (ret == 0) {
        pthread_mutex_lock(&acc->mu);
        struct clink__account *old = acc->v;
        size_t oldn = acc->n;
        acc->v = v;
        acc->n = n;
        pthread_mutex_unlock(&acc->mu);
        OPENSSL_cleanse(old, oldn * sizeof(*old));
        free(old);
    }
    pthread_mutex_unlock(&acc->wmu);
    return ret;
}

void clink_accounts_ref(struct clink_accounts *acc)
{
    pthread_mutex_lock(&acc->mu);
    acc->refs++;
    pthread_mutex_unlock(&acc->mu);
}

void clink_accounts_free(struct clink_accounts *acc)
{
    if (acc == NULL) {
        return;
    }
    pthread_mutex_lock(&acc->mu);
    int left = --acc->refs;
    pthread_mutex_unlock(&acc->mu);
    if (left > 0) {
        return;
    }
    pthread_mutex_destroy(&acc->mu);
    pthread_mutex_destroy(&acc->wmu);
    clink__throttle_free(acc->throttle);
    OPENSSL_cleanse(acc->v, acc->n * sizeof(*acc->v));
    free(acc->v);
    free(acc->path);
    free(acc);
}

size_t clink_accounts_count(struct clink_accounts *acc)
{
    pthread_mutex_lock(&acc->mu);
    size_t n = acc->n;
    pthread_mutex_unlock(&acc->mu);
    return n;
}

static int is_on(const char *v)
{
    return v != NULL && strcmp(v, "ON") == 0;
}

static int check_spec(const struct clink_account_spec *spec, const char **host, char *err, size_t errlen)
{
    if (spec == NULL || spec->user == NULL) {
        clink__set_err(err, errlen, "an account needs a user name");
        return -CLINK_EINVAL;
    }
    *host = spec->host ? spec->host : "%";
    if (!clink__valid_name(spec->user, CLINK_USER_MAX, 0)) {
        clink__set_err(err, errlen,
                       "user name '%.80s': at most %d printable bytes, no spaces, quotes, brackets or '#;=\\'",
                       spec->user, CLINK_USER_MAX);
        return -CLINK_EINVAL;
    }
    if (!clink__valid_name(*host, CLINK_HOST_MAX, 1)) {
        clink__set_err(err, errlen, "host '%.80s': an address or a pattern with %% and _, at most %d bytes", *host,
                       CLINK_HOST_MAX);
        return -CLINK_EINVAL;
    }
    if (spec->grant != NULL && strcmp(spec->grant, "ALL") != 0 && strcmp(spec->grant, "USAGE") != 0) {
        clink__set_err(err, errlen, "grant '%.40s': ALL or USAGE", spec->grant);
        return -CLINK_EINVAL;
    }
    const char *const onoff[] = {spec->legacy_native_tls, spec->native_password, spec->plaintext_no_password};
    const char *const onoff_name[] = {"legacy_native_tls", "native_password", "plaintext_no_password"};
    for (int i = 0; i < 3; i++) {
        if (onoff[i] != NULL && strcmp(onoff[i], "ON") != 0 && strcmp(onoff[i], "OFF") != 0) {
            clink__set_err(err, errlen, "%s '%.40s': ON or OFF", onoff_name[i], onoff[i]);
            return -CLINK_EINVAL;
        }
    }
    if (is_on(spec->legacy_native_tls) && spec->native_password != NULL && !is_on(spec->native_password)) {
        clink__set_err(err, errlen, "legacy_native_tls = ON needs native_password (its verifier)");
        return -CLINK_EINVAL;
    }
    if (is_on(spec->plaintext_no_password) && !clink__literal_host(*host)) {
        /* A pattern would open a password-less account to a whole network, not one known machine. */
        clink__set_err(err, errlen,
                       "'%s'@'%s': plaintext_no_password needs a literal host (an address or localhost, no %% or "
                       "_)",
                       spec->user, *host);
        return -CLINK_EINVAL;
    }
    if (strlen(spec->user) + 1 + strlen(*host) > INI_SECTION_MAX) {
        clink__set_err(err, errlen, "'%s'@'%s': user@host longer than %d bytes (the file's [user@host] section)",
                       spec->user, *host, INI_SECTION_MAX);
        return -CLINK_EINVAL;
    }
    return 0;
}

enum change_op { CH_ADD, CH_ALTER, CH_DROP };

/* What an alter sets (the rest of the account stays as it is). */
enum change_set {
    SET_REQ = 1u << 0,
    SET_PW = 1u << 1,
    SET_GRANT = 1u << 2,
    SET_LEGACY = 1u << 3,
    SET_NATIVE = 1u << 4,
    SET_PLAIN = 1u << 5,
    SET_ALL = (1u << 6) - 1,
};

/*
 * The parts of a that set names, onto found (an add sets all). The
 * mysql_native_password verifier is kept only while the account chooses to:
 * a verifier cannot be made without the password, and dropping the only
 * verifier an old file's account holds would leave it without a password.
 */
static int apply(struct clink__account *found, const struct clink__account *a, unsigned set, char *err, size_t errlen)
{
    struct clink__account was = *found;
    if (set & SET_REQ) {
        found->req = a->req;
    }
    if (set & SET_PW) {
        memcpy(found->native, a->native, sizeof(found->native));
        memcpy(found->sha2, a->sha2, sizeof(found->sha2));
    }
    if (set & SET_GRANT) {
        found->admin = a->admin;
    }
    if (set & SET_LEGACY) {
        found->legacy_native_tls = a->legacy_native_tls;
    }
    if (set & SET_NATIVE) {
        found->native_password = a->native_password;
    }
    if (set & SET_PLAIN) {
        found->plaintext_no_password = a->plaintext_no_password;
    }
    int ret = 0;
    if (!clink__keeps_native(found)) {
        found->native[0] = '\0';
    }
    if (!(set & SET_PW) && !clink__keeps_native(&was) && clink__keeps_native(found) && found->sha2[0]) {
        clink__set_err(err, errlen,
                       "'%s'@'%s': native_password (or legacy_native_tls) keeps a mysql_native_password verifier, "
                       "which is made from the password: give the password with it",
                       found->user, found->host);
        ret = -CLINK_EINVAL;
    } else if (!(set & SET_PW) && (was.native[0] || was.sha2[0]) && !found->native[0] && !found->sha2[0]) {
        clink__set_err(err, errlen,
                       "'%s'@'%s' holds only a mysql_native_password verifier: turning it off would leave the "
                       "account without a password; give a new password with it",
                       found->user, found->host);
        ret = -CLINK_EINVAL;
    }
    OPENSSL_cleanse(&was, sizeof(was));
    return ret;
}

/*
 * One change: under the writer lock (and the file's lock), start from the
 * file as it is now (another process may have changed it), apply, save,
 * then swap the new set in (the login lock only for the swap). A change that
 * cannot be saved is not made. begin_change takes the locks and reads the
 * set (with room for one more account); end_change saves it if ret is 0,
 * swaps it in, and lets go.
 */
struct pending_change {
    struct clink__account *v;
    size_t n;
    int lockfd;
};

static int begin_change(struct clink_accounts *acc, struct pending_change *pc, char *err, size_t errlen)
{
    *pc = (struct pending_change){.lockfd = -1};
    pthread_mutex_lock(&acc->wmu);
    int ret = 0;
    if (acc->path != NULL) {
        if ((pc->lockfd = clink__accounts_lock_file(acc->path, err, errlen)) < 0) {
            ret = pc->lockfd;
        } else if (access(acc->path, F_OK) == 0) {
            ret = clink__accounts_read_file(acc->path, &pc->v, &pc->n, err, errlen);
        } else if (errno != ENOENT) {
            clink__set_err(err, errlen, "%s: %s", acc->path, strerror(errno));
            ret = -errno;
        }
    } else {
        pthread_mutex_lock(&acc->mu);
        pc->v = malloc((acc->n + 1) * sizeof(*pc->v));
        if (pc->v != NULL && acc->n > 0) {
            memcpy(pc->v, acc->v, acc->n * sizeof(*pc->v));
        }
        pc->n = acc->n;
        pthread_mutex_unlock(&acc->mu);
        ret = pc->v == NULL ? -CLINK_ENOMEM : 0;
    }
    struct clink__account *grown = ret == 0 ? realloc(pc->v, (pc->n + 1) * sizeof(*pc->v)) : NULL;
    if (ret == 0 && grown == NULL) {
        ret = -CLINK_ENOMEM;
    } else if (ret == 0) {
        pc->v = grown;
    }
    return ret;
}

static int end_change(struct clink_accounts *acc, struct pending_change *pc, int ret, char *err, size_t errlen)
{
    if (ret == 0) {
        ret = clink__accounts_save(acc->path, pc->v, pc->n, err, errlen);
    }
    if (ret == 0) {
        pthread_mutex_lock(&acc->mu);
        struct clink__account *old = acc->v;
        size_t oldn = acc->n;
        acc->v = pc->v;
        acc->n = pc->n;
        pthread_mutex_unlock(&acc->mu);
        pc->v = old;
        pc->n = oldn;
    }
    if (pc->v != NULL) {
        OPENSSL_cleanse(pc->v, pc->n * sizeof(*pc->v));
        free(pc->v);
    }
    if (pc->lockfd >= 0) {
        close(pc->lockfd); /* releases the flock */
    }
    pthread_mutex_unlock(&acc->wmu);
    return ret;
}

static int change(struct clink_accounts *acc, enum change_op op, const struct clink__account *a, unsigned set,
                  char *err, size_t errlen)
{
    struct pending_change pc;
    int ret = begin_change(acc, &pc, err, errlen);
    struct clink__account *v = pc.v, *found = ret == 0 ? clink__account_find(v, pc.n, a->user, a->host) : NULL;
    if (ret == 0) {
        if (op == CH_ADD && found != NULL) {
            clink__set_err(err, errlen, "account '%s'@'%s' exists", a->user, a->host);
            ret = -EEXIST;
        } else if (op != CH_ADD && found == NULL) {
            clink__set_err(err, errlen, "no account '%s'@'%s'", a->user, a->host);
            ret = -ENOENT;
        } else if (op == CH_ADD) {
            v[pc.n] = *a;
            ret = apply(&v[pc.n], a, SET_ALL, err, errlen);
            pc.n++;
        } else if (op == CH_DROP) {
            memmove(found, found + 1, (size_t)(v + pc.n - found - 1) * sizeof(*v));
            pc.n--;
        } else {
            ret = apply(found, a, set, err, errlen);
        }
    }
    return end_change(acc, &pc, ret, err, errlen);
}

int clink_accounts_replace_issuer(struct clink_accounts *acc, const char *old_issuer, const char *new_issuer,
                                  unsigned *changed, char *err, size_t errlen)
{
    if (changed != NULL) {
        *changed = 0;
    }
    if (acc == NULL || old_issuer == NULL || new_issuer == NULL || old_issuer[0] == '\0' || new_issuer[0] == '\0') {
        clink__set_err(err, errlen, "the old and the new issuer are needed");
        return -CLINK_EINVAL;
    }
    /* The new name as REQUIRE ISSUER would take it: what the file can hold and a login compares. */
    struct clink__require probe = {0};
    char clause[DN_MAX + 32];
    if (snprintf(clause, sizeof(clause), "ISSUER '%s'", new_issuer) >= (int)sizeof(clause) ||
        strchr(new_issuer, '\'') || clink__parse_require(clause, &probe, err, errlen) < 0) {
        clink__set_err(err, errlen, "not an issuer name REQUIRE ISSUER can hold: %.100s", new_issuer);
        return -CLINK_EINVAL;
    }
    struct pending_change pc;
    int ret = begin_change(acc, &pc, err, errlen);
    unsigned n = 0;
    for (size_t i = 0; ret == 0 && i < pc.n; i++) {
        if (strcmp(pc.v[i].req.issuer, old_issuer) == 0) {
            snprintf(pc.v[i].req.issuer, sizeof(pc.v[i].req.issuer), "%s", probe.issuer);
            n++;
        }
    }
    if (changed != NULL) {
        *changed = n;
    }
    /* Nothing named the old issuer: nothing to write. */
    int r = end_change(acc, &pc, ret == 0 && n == 0 ? 1 : ret, err, errlen);
    return r == 1 ? 0 : r;
}

int clink_accounts_add(struct clink_accounts *acc, const struct clink_account_spec *spec, char *err, size_t errlen)
{
    const char *host;
    int ret = check_spec(spec, &host, err, errlen);
    if (ret < 0 || acc == NULL) {
        return ret < 0 ? ret : -CLINK_EINVAL;
    }
    struct clink__account a = {0};
    snprintf(a.user, sizeof(a.user), "%s", spec->user);
    snprintf(a.host, sizeof(a.host), "%s", host);
    a.admin = spec->grant != NULL && strcmp(spec->grant, "ALL") == 0;
    a.legacy_native_tls = is_on(spec->legacy_native_tls);
    a.native_password = is_on(spec->native_password) || a.legacy_native_tls; /* implied, and kept if legacy goes */
    a.plaintext_no_password = is_on(spec->plaintext_no_password);
    if ((ret = clink__parse_require(spec->require, &a.req, err, errlen)) == 0 &&
        (ret = clink__make_verifiers(spec->password, &a, err, errlen)) == 0) {
        ret = change(acc, CH_ADD, &a, SET_ALL, err, errlen);
    }
    OPENSSL_cleanse(&a, sizeof(a));
    return ret;
}

int clink_accounts_alter(struct clink_accounts *acc, const struct clink_account_spec *spec, char *err, size_t errlen)
{
    const char *host;
    int ret = check_spec(spec, &host, err, errlen);
    if (ret < 0 || acc == NULL) {
        return ret < 0 ? ret : -CLINK_EINVAL;
    }
    struct clink__account a = {0};
    snprintf(a.user, sizeof(a.user), "%s", spec->user);
    snprintf(a.host, sizeof(a.host), "%s", host);
    if ((spec->require == NULL || (ret = clink__parse_require(spec->require, &a.req, err, errlen)) == 0) &&
        (spec->password == NULL || (ret = clink__make_verifiers(spec->password, &a, err, errlen)) == 0)) {
        a.admin = spec->grant != NULL && strcmp(spec->grant, "ALL") == 0;
        a.legacy_native_tls = is_on(spec->legacy_native_tls);
        a.native_password = is_on(spec->native_password) || a.legacy_native_tls;
        a.plaintext_no_password = is_on(spec->plaintext_no_password);
        unsigned set = (spec->require ? SET_REQ : 0) | (spec->password ? SET_PW : 0) | (spec->grant ? SET_GRANT : 0) |
                       (spec->legacy_native_tls ? SET_LEGACY : 0) |
                       (spec->native_password || a.legacy_native_tls ? SET_NATIVE : 0) |
                       (spec->plaintext_no_password ? SET_PLAIN : 0);
        ret = change(acc, CH_ALTER, &a, set, err, errlen);
    }
    OPENSSL_cleanse(&a, sizeof(a));
    return ret;
}

int clink_accounts_drop(struct clink_accounts *acc, const char *user, const char *host, char *err, size_t errlen)
{
    if (acc == NULL || user == NULL) {
        return -CLINK_EINVAL;
    }
    struct clink__account a = {0};
    snprintf(a.user, sizeof(a.user), "%s", user);
    snprintf(a.host, sizeof(a.host), "%s", host ? host : "%");
    return change(acc, CH_DROP, &a, 0, err, errlen);
}

size_t clink_access_denied(const char *user, const char *host, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "Access denied for user '%s'@'%s'", user ? user : "", host ? host : "");
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap ? cap - 1 : 0;
}
/*
 * A cleartext login that fails before its password is hashed still costs a
 * hash, so that timing does not tell which user names exist.
 */
static void dummy_hash(const struct clink_login *l)
{
    if (l->method != CLINK_LOGIN_CLEARTEXT) {
        return;
    }
    static const struct clink__account none; /* no verifier: clink__check_cleartext hashes its fixed one */
    CLINK_IGNORE(clink__check_cleartext(&none, l->auth, l->auth_len) != 0);
}

/* The login against the accounts, once the throttle let it through. */
static int check_login(struct clink_accounts *acc, const struct clink_login *l, char *matched, size_t matched_len,
                       char *why, size_t whylen)
{
    struct clink__account a;
    int best = -1;
    pthread_mutex_lock(&acc->mu);
    for (size_t i = 0; i < acc->n; i++) {
        if (strcmp(acc->v[i].user, l->user) != 0) {
            continue;
        }
        int s = host_score(acc->v[i].host, l->host);
        if (s > best) {
            best = s;
            a = acc->v[i];
        }
    }
    pthread_mutex_unlock(&acc->mu);
    if (best < 0) {
        dummy_hash(l);
        clink__set_err(why, whylen, "no account matches '%s'@'%s'", l->user, l->host);
        return -CLINK_EACCESS;
    }
    int ret = -CLINK_EACCESS;
    int has_pw = a.native[0] || a.sha2[0];
    if (!has_pw && l->method != CLINK_LOGIN_NONE) {
        dummy_hash(l);
        clink__set_err(why, whylen, "'%s'@'%s' has no password but the login gave one", a.user, a.host);
    } else if (has_pw && l->method == CLINK_LOGIN_NONE) {
        clink__set_err(why, whylen, "'%s'@'%s' needs a password and the login gave none", a.user, a.host);
    } else if (!has_pw && !(l->peer_cert != NULL && l->peer_verified) && !a.plaintext_no_password) {
        /* No password: the certificate is the proof, on every path (TLS lets a client in without one). */
        clink__set_err(why, whylen,
                       "'%s'@'%s' has no password and the login has no verified client certificate (the account is "
                       "not plaintext_no_password)",
                       a.user, a.host);
    } else if (l->method == CLINK_LOGIN_CLEARTEXT && !l->tls) {
        dummy_hash(l); /* as long as any other failed cleartext login */
        clink__set_err(why, whylen, "a cleartext password outside TLS is never accepted");
    } else if (l->method == CLINK_LOGIN_CLEARTEXT && !clink__check_cleartext(&a, l->auth, l->auth_len)) {
        clink__set_err(why, whylen, "wrong password for '%s'@'%s'", a.user, a.host);
    } else if (l->method == CLINK_LOGIN_SCRAMBLE && l->tls && !a.legacy_native_tls) {
        /* Not bound to this TLS session: a server the client did not verify could have relayed it here. */
        clink__set_err(why, whylen,
                       "an unbound mysql_native_password answer inside TLS, and '%s'@'%s' does not allow "
                       "legacy_native_tls",
                       a.user, a.host);
    } else if (l->method == CLINK_LOGIN_SCRAMBLE_BOUND && (!l->tls || l->binding == NULL)) {
        clink__set_err(why, whylen, "a TLS-bound scramble answer without a TLS channel binding");
    } else if ((l->method == CLINK_LOGIN_SCRAMBLE || l->method == CLINK_LOGIN_SCRAMBLE_BOUND) && !a.native[0]) {
        clink__set_err(why, whylen,
                       "'%s'@'%s' keeps no mysql_native_password verifier (native_password is off): a scramble login "
                       "cannot be checked",
                       a.user, a.host);
    } else if (l->method == CLINK_LOGIN_SCRAMBLE &&
               !clink__check_scramble(&a, l->auth, l->auth_len, l->scramble, NULL)) {
        clink__set_err(why, whylen, "wrong password for '%s'@'%s'", a.user, a.host);
    } else if (l->method == CLINK_LOGIN_SCRAMBLE_BOUND &&
               !clink__check_scramble(&a, l->auth, l->auth_len, l->scramble, l->binding)) {
        clink__set_err(why, whylen, "wrong password for '%s'@'%s' (or a login relayed from another TLS session)",
                       a.user, a.host);
    } else {
        ret = clink__check_require(&a, l, why, whylen);
    }
    if (ret == 0 && matched != NULL && matched_len > 0) {
        snprintf(matched, matched_len, "%s@%s", a.user, a.host);
    }
    OPENSSL_cleanse(&a, sizeof(a));
    return ret;
}

int clink_accounts_check(struct clink_accounts *acc, const struct clink_login *l, char *matched, size_t matched_len,
                         char *why, size_t whylen)
{
    if (acc == NULL || l == NULL || l->user == NULL || l->host == NULL) {
        clink__set_err(why, whylen, "bad login arguments");
        return -CLINK_EACCESS;
    }
    if (l->method == CLINK_LOGIN_NONE) {
        return check_login(acc, l, matched, matched_len, why, whylen); /* a certificate cannot be guessed */
    }
    struct clink__throttle_ticket tk;
    if (clink__throttle_begin(acc->throttle, l->user, l->host, &tk) < 0) {
        clink__set_err(why, whylen, "too many failed logins as '%s'%s from %s: refused before any password check",
                       tk.user, tk.known ? "" : " or", tk.source);
        return -CLINK_EAGAIN;
    }
    int ret = check_login(acc, l, matched, matched_len, why, whylen);
    clink__throttle_end(acc->throttle, &tk, ret == 0);
    return ret;
}

int clink_accounts_set_throttle(struct clink_accounts *acc, const struct clink_login_throttle *opts)
{
    if (acc == NULL) {
        return -CLINK_EINVAL;
    }
    return clink__throttle_configure(acc->throttle, opts);
}

void clink_accounts_login_stats(struct clink_accounts *acc, struct clink_login_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (acc != NULL) {
        clink__throttle_stats(acc->throttle, out);
    }
}

int clink_accounts_legacy_native_tls(struct clink_accounts *acc, const char *user, const char *host)
{
    if (acc == NULL || user == NULL || host == NULL) {
        return 0;
    }
    int best = -1, legacy = 0;
    pthread_mutex_lock(&acc->mu);
    for (size_t i = 0; i < acc->n; i++) {
        int s = strcmp(acc->v[i].user, user) == 0 ? host_score(acc->v[i].host, host) : -1;
        if (s > best) {
            best = s;
            legacy = acc->v[i].legacy_native_tls;
        }
    }
    pthread_mutex_unlock(&acc->mu);
    return legacy;
}

int clink_accounts_is_admin(struct clink_accounts *acc, const char *matched)
{
    int admin = 0;
    if (acc == NULL || matched == NULL) {
        return 0;
    }
    pthread_mutex_lock(&acc->mu);
    for (size_t i = 0; i < acc->n && !admin; i++) {
        char name[CLINK_USER_MAX + CLINK_HOST_MAX + 2];
        snprintf(name, sizeof(name), "%s@%s", acc->v[i].user, acc->v[i].host);
        admin = acc->v[i].admin && strcmp(name, matched) == 0;
    }
    pthread_mutex_unlock(&acc->mu);
    return admin;
}

int clink_accounts_get(struct clink_accounts *acc, const char *user, const char *host, struct clink_account_info *out)
{
    if (acc == NULL || user == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&acc->mu);
    const struct clink__account *a = clink__account_find(acc->v, acc->n, user, host ? host : "%");
    if (a != NULL) {
        snprintf(out->user, sizeof(out->user), "%s", a->user);
        snprintf(out->host, sizeof(out->host), "%s", a->host);
        out->grant_all = a->admin;
        out->has_password = a->native[0] || a->sha2[0];
        out->require_ssl = a->req.ssl;
        out->require_x509 = a->req.x509;
        snprintf(out->subject, sizeof(out->subject), "%s", a->req.subject);
        snprintf(out->issuer, sizeof(out->issuer), "%s", a->req.issuer);
        snprintf(out->cipher, sizeof(out->cipher), "%s", a->req.cipher);
    }
    pthread_mutex_unlock(&acc->mu);
    return a != NULL ? 0 : -ENOENT;
}
