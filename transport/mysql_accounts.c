/*
 * The account statements of the built-in statement hook (docs/mysql.md):
 * CREATE/ALTER/DROP USER, GRANT and REVOKE change the node's accounts
 * (saved to their file before they take effect), SHOW GRANTS tells an
 * account as a GRANT statement, FLUSH PRIVILEGES reads the file again.
 * Only an account holding grant ALL may change accounts or see another's.
 */
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clink/accounts.h"
#include "clink/mysql.h"
#include "transport/mysql_sql.h"

int clink__mysql_may_administer(struct clink_mysql_stmt *st, const char *privilege)
{
    if (clink_accounts_is_admin(clink_mysql_accounts(st), clink_mysql_account(st))) {
        return 1;
    }
    char msg[200];
    snprintf(msg, sizeof(msg), "Access denied; you need (at least one of) the %s privilege(s) for this operation",
             privilege);
    CLINK_IGNORE(clink_mysql_error(st, 1227, "42000", msg));
    return 0;
}

/*
 * [IDENTIFIED [WITH plugin] BY 'password'] [REQUIRE ...] [WITH GRANT OPTION]:
 * the rest of an account statement. [out] *native: "ON" for WITH
 * mysql_native_password (the account keeps that verifier too), "OFF" for
 * WITH caching_sha2_password, NULL when no plugin is named.
 */
static int account_options(struct clink__sql *s, char *pw, size_t pwcap, int *has_pw, char *req, size_t reqcap,
                           int *grant_option, const char **native)
{
    *has_pw = 0;
    req[0] = '\0';
    *grant_option = 0;
    *native = NULL;
    if (clink__sql_word(s, "IDENTIFIED")) {
        if (clink__sql_word(s, "WITH")) {
            if (clink__sql_word(s, "mysql_native_password")) {
                *native = "ON";
            } else if (clink__sql_word(s, "caching_sha2_password")) {
                *native = "OFF";
            } else {
                return -1;
            }
        }
        if (!clink__sql_word(s, "BY") || clink__sql_quoted(s, pw, pwcap) < 0) {
            return -1;
        }
        *has_pw = 1;
    }
    clink__sql_at_end(s);
    /* WITH GRANT OPTION ends the statement when present: REQUIRE's clause is what lies before it. */
    static const char wgo[] = "WITH GRANT OPTION";
    const char *end = s->end;
    if ((size_t)(end - s->p) >= sizeof(wgo) && strncasecmp(end - (sizeof(wgo) - 1), wgo, sizeof(wgo) - 1) == 0 &&
        isspace((unsigned char)end[-(long)sizeof(wgo)])) {
        *grant_option = 1;
        s->end = end - (sizeof(wgo) - 1);
    }
    if (clink__sql_word(s, "REQUIRE")) {
        clink__sql_at_end(s);
        clink__sql_skip_space(s);
        size_t n = (size_t)(s->end - s->p);
        if (n == 0 || n >= reqcap) {
            return -1;
        }
        memcpy(req, s->p, n);
        req[n] = '\0';
        s->p = s->end;
        for (size_t i = 0; i + 10 <= n; i++) {
            if (strncasecmp(req + i, "IDENTIFIED", 10) == 0) {
                return -1; /* IDENTIFIED comes before REQUIRE; and its password must not be quoted in an error */
            }
        }
    }
    return clink__sql_at_end(s) ? 0 : -1;
}

/* The answer to an accounts change, in MySQL's words. */
static void account_result(struct clink_mysql_stmt *st, int ret, const char *op, const char *user, const char *host,
                           const char *err, const char *note)
{
    char msg[400];
    if (ret == 0) {
        CLINK_IGNORE(clink_mysql_ok(st, 0, note));
    } else if (ret == -EEXIST || ret == -ENOENT) {
        snprintf(msg, sizeof(msg), "Operation %s failed for '%s'@'%s'", op, user, host);
        CLINK_IGNORE(clink_mysql_error(st, 1396, "HY000", msg));
    } else if (ret == -CLINK_EINVAL) {
        snprintf(msg, sizeof(msg), "%s: %s", op, err);
        CLINK_IGNORE(clink_mysql_error(st, 1064, "42000", msg));
    } else {
        snprintf(msg, sizeof(msg), "%s: the accounts file could not be saved, nothing changed: %s", op, err);
        CLINK_IGNORE(clink_mysql_error(st, 1105, "HY000", msg));
    }
}

/* MySQL would make a password-less account anyone may use; here it stands on a certificate. Say so. */
static const char no_password_note[] =
    "Note: the account has no password: it logs in only with a verified client certificate";

/*
 * GRANT to an account that does not exist makes it, as MySQL 5.x and
 * MemSQL do: with the password IDENTIFIED BY gave, else none (then it logs
 * in only with a verified client certificate). [out] *note says so.
 */
static int grant_creates(struct clink_accounts *acc, struct clink_account_spec spec, char *err, size_t errlen,
                         const char **note)
{
    spec.password = spec.password ? spec.password : "";
    int ret = clink_accounts_add(acc, &spec, err, errlen);
    if (ret == -EEXIST) {
        /* Made meanwhile (another session, clink-accounts): then this GRANT changes it, as it would have. */
        spec.password = spec.password[0] ? spec.password : NULL;
        return clink_accounts_alter(acc, &spec, err, errlen);
    }
    if (ret == 0 && spec.password[0] == '\0') {
        *note = no_password_note;
    }
    return ret;
}

/* clink_mysql_builtin_opts.no_auto_create_user, which the embedding program may change while the node runs. */
static int no_auto_create_user(const struct clink_mysql_builtin_opts *o)
{
    return o != NULL && __atomic_load_n(&o->no_auto_create_user, __ATOMIC_RELAXED) != 0;
}

int clink__mysql_account_stmt(struct clink_mysql_stmt *st, struct clink__sql *s, const char *verb,
                              const struct clink_mysql_builtin_opts *o)
{
    struct clink_accounts *acc = clink_mysql_accounts(st);
    char user[CLINK_USER_MAX + 1], host[CLINK_HOST_MAX + 1], pw[CLINK_PASSWORD_MAX + 1] = "", req[512] = "",
                                                                                     err[256] = "";
    int has_pw = 0, grant_option = 0, if_exists = 0, ret = -1;
    int is_grant = strcmp(verb, "GRANT") == 0, is_revoke = strcmp(verb, "REVOKE") == 0;
    const char *grant = NULL, *op = verb, *native = NULL;
    if (is_grant || is_revoke) {
        if (clink__sql_word(s, "ALL")) {
            CLINK_IGNORE(clink__sql_word(s, "PRIVILEGES"));
            grant = is_grant ? "ALL" : "USAGE";
        } else if (is_grant && clink__sql_word(s, "USAGE")) {
            grant = NULL; /* the account's privileges stay as they are: only IDENTIFIED/REQUIRE change */
        } else {
            CLINK_IGNORE(clink_mysql_error(st, 1064, "42000",
                                           "clink grants ALL [PRIVILEGES] or USAGE, ON *.* (no per-table privileges)"));
            return 0;
        }
        if (!clink__sql_word(s, "ON") || !clink__sql_word(s, "*") || !clink__sql_word(s, ".") ||
            !clink__sql_word(s, "*") || !clink__sql_word(s, is_grant ? "TO" : "FROM")) {
            return -1;
        }
    } else {
        if (!clink__sql_word(s, "USER")) {
            return -1;
        }
        op = strcmp(verb, "CREATE") == 0 ? "CREATE USER" : strcmp(verb, "ALTER") == 0 ? "ALTER USER" : "DROP USER";
        if (strcmp(verb, "CREATE") == 0) {
            if_exists = clink__sql_word(s, "IF") && clink__sql_word(s, "NOT") && clink__sql_word(s, "EXISTS");
        } else {
            if_exists = clink__sql_word(s, "IF") && clink__sql_word(s, "EXISTS");
        }
    }
    if (clink__sql_account_name(s, user, sizeof(user), host, sizeof(host)) < 0 ||
        (strcmp(verb, "DROP") == 0 || is_revoke
             ? !clink__sql_at_end(s)
             : account_options(s, pw, sizeof(pw), &has_pw, req, sizeof(req), &grant_option, &native) < 0)) {
        OPENSSL_cleanse(pw, sizeof(pw));
        return -1;
    }
    if (!clink__mysql_may_administer(st, is_grant || is_revoke ? "GRANT OPTION" : "CREATE USER")) {
        OPENSSL_cleanse(pw, sizeof(pw));
        return 0;
    }
    struct clink_account_spec spec = {.user = user,
                                      .host = host,
                                      .password = has_pw ? pw : NULL,
                                      .require = req[0] ? req : NULL,
                                      .grant = grant,
                                      .native_password = native};
    const char *note = NULL;
    if (strcmp(verb, "CREATE") == 0) {
        if (spec.password == NULL) {
            spec.password = "";
        }
        ret = clink_accounts_add(acc, &spec, err, sizeof(err));
        if (ret == 0 && spec.password[0] == '\0') {
            note = no_password_note;
        }
        ret = ret == -EEXIST && if_exists ? 0 : ret;
    } else if (strcmp(verb, "DROP") == 0) {
        ret = clink_accounts_drop(acc, user, host, err, sizeof(err));
        ret = ret == -ENOENT && if_exists ? 0 : ret;
    } else {
        /* ALTER USER, GRANT, REVOKE. */
        ret = clink_accounts_alter(acc, &spec, err, sizeof(err));
        ret = ret == -ENOENT && if_exists ? 0 : ret;
        if (ret == -ENOENT && is_grant && no_auto_create_user(o)) {
            /* MySQL 8 (and 5.7's NO_AUTO_CREATE_USER): GRANT makes no account. */
            OPENSSL_cleanse(pw, sizeof(pw));
            CLINK_IGNORE(clink_mysql_error(st, 1410, "42000", "You are not allowed to create a user with GRANT"));
            return 0;
        }
        if (ret == -ENOENT && is_grant) {
            ret = grant_creates(acc, spec, err, sizeof(err), &note);
        }
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    account_result(st, ret, op, user, host, err, note);
    return 0;
}

/* The account as MySQL's SHOW GRANTS writes it: one GRANT statement that would make it again. */
static void grant_line(const struct clink_account_info *a, char *out, size_t cap)
{
    char qu[2 * CLINK_USER_MAX + 3], qh[2 * CLINK_HOST_MAX + 3], q[2 * CLINK_DN_MAX + 3];
    clink__sql_quote(a->user, qu, sizeof(qu));
    clink__sql_quote(a->host, qh, sizeof(qh));
    int n = snprintf(out, cap, "GRANT %s ON *.* TO %s@%s", a->grant_all ? "ALL PRIVILEGES" : "USAGE", qu, qh);
    const char *sep = " REQUIRE ";
    /* The base requirement only where no name implies it (SUBJECT and ISSUER imply X509, CIPHER implies SSL). */
    if (a->require_x509 && !a->subject[0] && !a->issuer[0]) {
        n += snprintf(out + n, cap - (size_t)n, "%sX509", sep);
        sep = " AND ";
    } else if (a->require_ssl && !a->require_x509 && !a->cipher[0]) {
        n += snprintf(out + n, cap - (size_t)n, "%sSSL", sep);
        sep = " AND ";
    }
    const char *const kinds[3] = {"ISSUER", "SUBJECT", "CIPHER"};
    const char *const names[3] = {a->issuer, a->subject, a->cipher};
    for (int i = 0; i < 3; i++) {
        if (names[i][0]) {
            clink__sql_quote(names[i], q, sizeof(q));
            n += snprintf(out + n, cap - (size_t)n, "%s%s %s", sep, kinds[i], q);
            sep = " AND ";
        }
    }
}

/*
 * SHOW GRANTS [FOR CURRENT_USER[()] | FOR 'u'@'h']: one row, the account as
 * a GRANT statement. A session may see its own account; another's needs
 * grant ALL, and is refused as MySQL 5.7 refuses it (1044: MySQL wants
 * SELECT on its mysql schema), before anything says whether it exists.
 */
int clink__mysql_show_grants(struct clink_mysql_stmt *st, struct clink__sql *s)
{
    /* As long as the session's account name (below): a name longer than an account's finds none (1141). */
    char user[CLINK_USER_MAX + CLINK_HOST_MAX + 2], host[CLINK_USER_MAX + CLINK_HOST_MAX + 2], msg[600];
    int self = clink__sql_show_grants_target(s, user, sizeof(user), host, sizeof(host));
    if (self < 0) {
        return -1;
    }
    /* The session's account, "user@host-pattern": the host never holds an '@', so it starts after the last one. */
    char me[CLINK_USER_MAX + CLINK_HOST_MAX + 2];
    snprintf(me, sizeof(me), "%s", clink_mysql_account(st));
    char *at = strrchr(me, '@');
    const char *my_host = at != NULL ? at + 1 : "%";
    if (at != NULL) {
        *at = '\0';
    }
    if (self) {
        snprintf(user, sizeof(user), "%s", me);
        snprintf(host, sizeof(host), "%s", my_host);
    } else if ((strcmp(user, me) != 0 || strcmp(host, my_host) != 0) &&
               !clink_accounts_is_admin(clink_mysql_accounts(st), clink_mysql_account(st))) {
        snprintf(msg, sizeof(msg), "Access denied for user '%s'@'%s' to database 'mysql'", clink_mysql_user(st),
                 clink_mysql_client_host(st));
        return clink_mysql_error(st, 1044, "42000", msg) == 0 ? 0 : -1;
    }
    struct clink_account_info a;
    struct clink_accounts *acc = clink_mysql_accounts(st);
    if (acc == NULL || clink_accounts_get(acc, user, host, &a) < 0) {
        snprintf(msg, sizeof(msg), "There is no such grant defined for user '%s' on host '%s'", user, host);
        return clink_mysql_error(st, 1141, "42000", msg) == 0 ? 0 : -1;
    }
    char name[sizeof(user) + sizeof(host) + 16], line[1400];
    snprintf(name, sizeof(name), "Grants for %s@%s", a.user, a.host);
    grant_line(&a, line, sizeof(line));
    const char *names[1] = {name}, *cells[1] = {line};
    return clink_mysql_rows(st, 1, names, 1, cells) == 0 ? 0 : -1;
}

/*
 * FLUSH [NO_WRITE_TO_BINLOG | LOCAL] PRIVILEGES: the node's accounts are
 * live already (every change is saved and swapped in at once), so what is
 * left to flush is a file edited behind the node's back (clink-accounts, an
 * editor): read it again, as SIGHUP does. A file that does not load changes
 * nothing, and the error says why.
 */
int clink__mysql_flush(struct clink_mysql_stmt *st, struct clink__sql *s)
{
    CLINK_IGNORE(clink__sql_word(s, "NO_WRITE_TO_BINLOG") || clink__sql_word(s, "LOCAL"));
    if (!clink__sql_word(s, "PRIVILEGES") || !clink__sql_at_end(s)) {
        return -1;
    }
    if (!clink__mysql_may_administer(st, "RELOAD")) {
        return 0;
    }
    char err[256] = "", msg[400];
    int ret = clink_accounts_reload(clink_mysql_accounts(st), err, sizeof(err));
    if (ret == -CLINK_EINVAL) {
        ret = 0; /* accounts kept in memory only: they are the ones in use */
    }
    if (ret < 0) {
        snprintf(msg, sizeof(msg), "FLUSH PRIVILEGES: the accounts file did not load; the accounts in use are kept: %s",
                 err);
        return clink_mysql_error(st, 1105, "HY000", msg) == 0 ? 0 : -1;
    }
    return clink_mysql_ok(st, 0, NULL) == 0 ? 0 : -1;
}
