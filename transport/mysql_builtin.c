/*
 * The default statement hook of the MySQL-protocol front door
 * (clink_mysql_builtin in clink/mysql.h): what the mysql client and drivers
 * send to connect and report status. Statements are matched word by word,
 * case-insensitively; anything else gets error 1064.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <openssl/crypto.h>

#include "clink/accounts.h"
#include "clink/mysql.h"
#include "clink/transport.h"

#define VERSION         "8.0.0-clink-0.1.0"
#define VERSION_COMMENT "clink"

/* A statement as words: a cursor over it, with whitespace and a trailing ';' ignored. */
struct sql {
    const char *p, *end;
};

static void skip_space(struct sql *s)
{
    while (s->p < s->end && isspace((unsigned char)*s->p)) {
        s->p++;
    }
}

static int at_end(struct sql *s)
{
    skip_space(s);
    while (s->end > s->p && (isspace((unsigned char)s->end[-1]) || s->end[-1] == ';')) {
        s->end--;
    }
    return s->p == s->end;
}

/* Consume word w (case-insensitive) if it is next and ends there. */
static int word(struct sql *s, const char *w)
{
    skip_space(s);
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || strncasecmp(s->p, w, n) != 0) {
        return 0;
    }
    const char *after = s->p + n;
    if (after < s->end && (isalnum((unsigned char)*after) || *after == '_') && (isalnum((unsigned char)w[n - 1]))) {
        return 0;
    }
    s->p = after;
    return 1;
}

/* A quoted string ('...' or "..."; '' or \' inside) into out. Returns 0 or -1. */
static int quoted(struct sql *s, char *out, size_t cap)
{
    skip_space(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"' && *s->p != '`')) {
        return -1;
    }
    char q = *s->p++;
    size_t n = 0;
    while (s->p < s->end) {
        char ch = *s->p++;
        if (ch == '\\' && s->p < s->end) {
            ch = *s->p++;
        } else if (ch == q) {
            if (s->p < s->end && *s->p == q) {
                s->p++;
            } else {
                out[n] = '\0';
                return 0;
            }
        }
        if (n + 1 >= cap) {
            return -1;
        }
        out[n++] = ch;
    }
    return -1;
}

/* SQL LIKE: % any run, _ one character, case-insensitive (MySQL's default collation). */
/*
 * Iterative, with one backtrack point (the last %): at most pattern length
 * times string length steps. A recursive matcher is exponential in the
 * number of %, and the pattern comes from any logged-in client.
 */
static int like(const char *pat, const char *str)
{
    const char *star = NULL, *retry = NULL;
    while (*str != '\0') {
        if (*pat == '%') {
            while (*pat == '%') {
                pat++;
            }
            star = pat;
            retry = str;
            continue;
        }
        int esc = *pat == '\\' && pat[1] != '\0';
        char pc = esc ? pat[1] : *pat;
        if (pc != '\0' && ((!esc && pc == '_') || tolower((unsigned char)pc) == tolower((unsigned char)*str))) {
            pat += esc ? 2 : 1;
            str++;
        } else if (star != NULL) {
            pat = star;
            str = ++retry;
        } else {
            return 0;
        }
    }
    while (*pat == '%') {
        pat++;
    }
    return *pat == '\0';
}

static void parse_error(struct clink_mysql_stmt *st, const char *sql, size_t len)
{
    /* Never echo a password back (IDENTIFIED BY '...'): the text stops before it. */
    for (size_t i = 0; i + 10 <= len; i++) {
        if (strncasecmp(sql + i, "IDENTIFIED", 10) == 0) {
            len = i;
            break;
        }
    }
    char msg[300];
    snprintf(msg, sizeof(msg),
             "You have an error in your SQL syntax, or this statement is not one clink answers: near '%.*s'",
             (int)(len > 80 ? 80 : len), sql);
    CLINK_IGNORE(clink_mysql_error(st, 1064, "42000", msg));
}

/*
 * The session variables clients read on connect (the mysql client's status
 * command, drivers' handshakes), with the values clink behaves by.
 */
static const char *variable(struct sql *s)
{
    static const char *const vars[][2] = {
        {"@@version_comment", VERSION_COMMENT},
        {"@@version", VERSION},
        {"@@character_set_client", "utf8mb4"},
        {"@@character_set_connection", "utf8mb4"},
        {"@@character_set_results", "utf8mb4"},
        {"@@character_set_server", "utf8mb4"},
        {"@@character_set_database", "utf8mb4"},
        {"@@collation_connection", "utf8mb4_0900_ai_ci"},
        {"@@collation_server", "utf8mb4_0900_ai_ci"},
        {"@@max_allowed_packet", "1048576"},
        {"@@autocommit", "1"},
        {"@@session.autocommit", "1"},
        {"@@sql_mode", ""},
        {"@@lower_case_table_names", "0"},
        {"@@transaction_isolation", "READ-COMMITTED"},
        {"@@session.transaction_isolation", "READ-COMMITTED"},
        {"@@session.transaction_read_only", "0"},
        {"@@time_zone", "SYSTEM"},
        {"@@system_time_zone", "UTC"},
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        struct sql save = *s;
        if (word(s, vars[i][0])) {
            return vars[i][1];
        }
        *s = save;
    }
    return NULL;
}

/* SELECT item[, item]... [LIMIT n]: the few expressions clients ask on connect. */
static int do_select(struct clink_mysql_stmt *st, struct sql *s)
{
    enum { MAXCOLS = 8 };
    const char *names[MAXCOLS], *cells[MAXCOLS];
    char namebuf[MAXCOLS][64], valbuf[MAXCOLS][200];
    unsigned n = 0;
    do {
        if (n == MAXCOLS) {
            return -1;
        }
        skip_space(s);
        const char *start = s->p;
        const char *var = NULL;
        int is_string = 0;
        if (s->p < s->end && s->p[0] == '@' && (var = variable(s)) != NULL) {
            cells[n] = var;
        } else if (word(s, "DATABASE") && word(s, "(") && word(s, ")")) {
            const char *db = clink_mysql_db(st);
            cells[n] = db[0] ? db : NULL;
        } else if (word(s, "CURRENT_USER") && word(s, "(") && word(s, ")")) {
            snprintf(valbuf[n], sizeof(valbuf[n]), "%s", clink_mysql_account(st)); /* the account matched */
            cells[n] = valbuf[n];
        } else if ((word(s, "USER") || word(s, "SESSION_USER")) && word(s, "(") && word(s, ")")) {
            snprintf(valbuf[n], sizeof(valbuf[n]), "%s@%s", clink_mysql_user(st), clink_mysql_client_host(st));
            cells[n] = valbuf[n];
        } else if (s->p < s->end && (isdigit((unsigned char)*s->p) || *s->p == '-')) {
            const char *q = s->p + 1;
            while (q < s->end && isdigit((unsigned char)*q)) {
                q++;
            }
            if (q - s->p >= (long)sizeof(valbuf[n])) {
                return -1;
            }
            snprintf(valbuf[n], sizeof(valbuf[n]), "%.*s", (int)(q - s->p), s->p);
            s->p = q;
            cells[n] = valbuf[n];
        } else if (quoted(s, valbuf[n], sizeof(valbuf[n])) == 0) {
            cells[n] = valbuf[n];
            is_string = 1;
        } else {
            return -1;
        }
        /* The column is named as written (as MySQL does without AS); a string literal by its text. */
        snprintf(namebuf[n], sizeof(namebuf[n]), "%.*s", is_string ? (int)strlen(valbuf[n]) : (int)(s->p - start),
                 is_string ? valbuf[n] : start);
        names[n] = namebuf[n];
        n++;
        skip_space(s);
    } while (s->p < s->end && *s->p == ',' && s->p++);
    if (word(s, "LIMIT")) {
        skip_space(s);
        while (s->p < s->end && isdigit((unsigned char)*s->p)) {
            s->p++;
        }
    }
    if (!at_end(s)) {
        return -1;
    }
    return clink_mysql_rows(st, n, names, 1, cells) == 0 ? 0 : -1;
}

/* SHOW [SESSION|GLOBAL] STATUS [LIKE 'pattern']: this connection's TLS, as MySQL names it. */
static int do_show_status(struct clink_mysql_stmt *st, struct sql *s)
{
    char pat[128] = "%";
    if (word(s, "LIKE") && quoted(s, pat, sizeof(pat)) < 0) {
        return -1;
    }
    if (!at_end(s)) {
        return -1;
    }
    struct clink_conn_status cs;
    if (clink_conn_get_status(clink_mysql_conn(st), &cs) < 0) {
        return -1;
    }
    char ktls[160];
    snprintf(ktls, sizeof(ktls), "%s", cs.ktls_tx == CLINK_KTLS_ON && cs.ktls_rx == CLINK_KTLS_ON ? "ON" : "OFF");
    if (strcmp(ktls, "OFF") == 0 && cs.ktls_reason[0]) {
        snprintf(ktls, sizeof(ktls), "OFF (%s)", cs.ktls_reason);
    }
    const char *all[][2] = {
        {"Ssl_cipher", cs.cipher},
        {"Ssl_version", cs.tls_version},
        {"Ssl_session_reused", cs.resumed ? "ON" : "OFF"},
        {"Ssl_ktls", ktls},
    };
    const char *cells[2 * 4];
    unsigned n = 0;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (like(pat, all[i][0])) {
            cells[2 * n] = all[i][0];
            cells[2 * n + 1] = all[i][1];
            n++;
        }
    }
    static const char *const names[2] = {"Variable_name", "Value"};
    return clink_mysql_rows(st, 2, names, n, cells) == 0 ? 0 : -1;
}

/* 'user'@'host', `user`@`host`, user@host or 'user' (host %). */
static int account_name(struct sql *s, char *user, size_t ucap, char *host, size_t hcap)
{
    skip_space(s);
    if (quoted(s, user, ucap) < 0) {
        size_t n = 0;
        while (s->p < s->end && (isalnum((unsigned char)*s->p) || strchr("_$.-", *s->p) != NULL) && n + 1 < ucap) {
            user[n++] = *s->p++;
        }
        user[n] = '\0';
        if (n == 0) {
            return -1;
        }
    }
    snprintf(host, hcap, "%%");
    if (s->p < s->end && *s->p == '@') {
        s->p++;
        if (quoted(s, host, hcap) < 0) {
            size_t n = 0;
            while (s->p < s->end && (isalnum((unsigned char)*s->p) || strchr("_.%:-", *s->p) != NULL) && n + 1 < hcap) {
                host[n++] = *s->p++;
            }
            host[n] = '\0';
            if (n == 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* Of the account the session logged in as: grant = ALL (clink_accounts_is_admin). */
static int may_administer(struct clink_mysql_stmt *st, const char *privilege)
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
static int account_options(struct sql *s, char *pw, size_t pwcap, int *has_pw, char *req, size_t reqcap,
                           int *grant_option, const char **native)
{
    *has_pw = 0;
    req[0] = '\0';
    *grant_option = 0;
    *native = NULL;
    if (word(s, "IDENTIFIED")) {
        if (word(s, "WITH")) {
            if (word(s, "mysql_native_password")) {
                *native = "ON";
            } else if (word(s, "caching_sha2_password")) {
                *native = "OFF";
            } else {
                return -1;
            }
        }
        if (!word(s, "BY") || quoted(s, pw, pwcap) < 0) {
            return -1;
        }
        *has_pw = 1;
    }
    at_end(s);
    /* WITH GRANT OPTION ends the statement when present: REQUIRE's clause is what lies before it. */
    static const char wgo[] = "WITH GRANT OPTION";
    const char *end = s->end;
    if ((size_t)(end - s->p) >= sizeof(wgo) && strncasecmp(end - (sizeof(wgo) - 1), wgo, sizeof(wgo) - 1) == 0 &&
        isspace((unsigned char)end[-(long)sizeof(wgo)])) {
        *grant_option = 1;
        s->end = end - (sizeof(wgo) - 1);
    }
    if (word(s, "REQUIRE")) {
        at_end(s);
        skip_space(s);
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
    return at_end(s) ? 0 : -1;
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

/*
 * CREATE USER, ALTER USER, DROP USER, GRANT ALL|USAGE ON *.* TO, REVOKE ALL
 * ON *.* FROM: the node's accounts, saved to its file like any API change
 * before they take effect. Only an account holding grant ALL may.
 * Returns -1 for a statement it does not parse (the caller says 1064).
 */
static int do_account(struct clink_mysql_stmt *st, struct sql *s, const char *verb)
{
    struct clink_accounts *acc = clink_mysql_accounts(st);
    char user[CLINK_USER_MAX + 1], host[CLINK_HOST_MAX + 1], pw[CLINK_PASSWORD_MAX + 1] = "", req[512] = "",
                                                                                     err[256] = "";
    int has_pw = 0, grant_option = 0, if_exists = 0, ret = -1;
    const char *grant = NULL, *op = verb, *native = NULL;
    if (strcmp(verb, "GRANT") == 0 || strcmp(verb, "REVOKE") == 0) {
        if (word(s, "ALL")) {
            CLINK_IGNORE(word(s, "PRIVILEGES"));
            grant = strcmp(verb, "GRANT") == 0 ? "ALL" : "USAGE";
        } else if (strcmp(verb, "GRANT") == 0 && word(s, "USAGE")) {
            grant = NULL; /* the account's privileges stay as they are: only IDENTIFIED/REQUIRE change */
        } else {
            CLINK_IGNORE(clink_mysql_error(st, 1064, "42000",
                                           "clink grants ALL [PRIVILEGES] or USAGE, ON *.* (no per-table privileges)"));
            return 0;
        }
        if (!word(s, "ON") || !word(s, "*") || !word(s, ".") || !word(s, "*") ||
            !word(s, strcmp(verb, "GRANT") == 0 ? "TO" : "FROM")) {
            return -1;
        }
    } else {
        if (!word(s, "USER")) {
            return -1;
        }
        op = strcmp(verb, "CREATE") == 0 ? "CREATE USER" : strcmp(verb, "ALTER") == 0 ? "ALTER USER" : "DROP USER";
        if (strcmp(verb, "CREATE") == 0) {
            if_exists = word(s, "IF") && word(s, "NOT") && word(s, "EXISTS");
        } else {
            if_exists = word(s, "IF") && word(s, "EXISTS");
        }
    }
    if (account_name(s, user, sizeof(user), host, sizeof(host)) < 0 ||
        (strcmp(verb, "DROP") == 0 || strcmp(verb, "REVOKE") == 0
             ? !at_end(s)
             : account_options(s, pw, sizeof(pw), &has_pw, req, sizeof(req), &grant_option, &native) < 0)) {
        OPENSSL_cleanse(pw, sizeof(pw));
        return -1;
    }
    if (!may_administer(st,
                        strcmp(verb, "GRANT") == 0 || strcmp(verb, "REVOKE") == 0 ? "GRANT OPTION" : "CREATE USER")) {
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
            /* MySQL would make a password-less account anyone may use; here it stands on a certificate. Say so. */
            note = "Note: the account has no password: it logs in only with a verified client certificate";
        }
        ret = ret == -EEXIST && if_exists ? 0 : ret;
    } else if (strcmp(verb, "DROP") == 0) {
        ret = clink_accounts_drop(acc, user, host, err, sizeof(err));
        ret = ret == -ENOENT && if_exists ? 0 : ret;
    } else {
        /* ALTER USER, GRANT (MySQL 8: no account is made by GRANT), REVOKE. */
        ret = clink_accounts_alter(acc, &spec, err, sizeof(err));
        ret = ret == -ENOENT && if_exists ? 0 : ret;
        if (ret == -ENOENT && strcmp(verb, "GRANT") == 0) {
            OPENSSL_cleanse(pw, sizeof(pw));
            CLINK_IGNORE(clink_mysql_error(st, 1410, "42000", "You are not allowed to create a user with GRANT"));
            return 0;
        }
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    account_result(st, ret, op, user, host, err, note);
    return 0;
}

/* ALTER INSTANCE RELOAD TLS: through the embedding program (a node does not know its files). */
static int reload_tls(struct clink_mysql_stmt *st, const struct clink_mysql_builtin_opts *o)
{
    char err[256] = "";
    if (!may_administer(st, "CONNECTION_ADMIN")) {
        return 0;
    }
    if (o == NULL || o->reload_tls == NULL) {
        return clink_mysql_error(st, 1105, "HY000", "ALTER INSTANCE RELOAD TLS: this program cannot reload TLS");
    }
    if (o->reload_tls(o->reload_user, err, sizeof(err)) < 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "Failed to set up SSL because of the following SSL library error: %s", err);
        return clink_mysql_error(st, 3888, "HY000", msg);
    }
    return clink_mysql_ok(st, 0, NULL);
}

void clink_mysql_builtin(struct clink_mysql_stmt *st, const char *sql, size_t len, void *user)
{
    const struct clink_mysql_builtin_opts *o = user;
    struct sql s = {.p = sql, .end = sql + len};
    int ret = -1;
    if (word(&s, "SELECT")) {
        ret = do_select(st, &s);
    } else if (word(&s, "SHOW")) {
        CLINK_IGNORE(word(&s, "SESSION") || word(&s, "GLOBAL"));
        if (word(&s, "STATUS")) {
            ret = do_show_status(st, &s);
        }
    } else if (word(&s, "SET")) {
        /* What drivers send on connect: accepted, changes nothing (text is utf8mb4, every statement commits). */
        if (word(&s, "NAMES") ||
            (word(&s, "AUTOCOMMIT") && word(&s, "=") && (word(&s, "1") || word(&s, "0")) && at_end(&s))) {
            ret = clink_mysql_ok(st, 0, NULL);
        }
    } else if (word(&s, "CREATE")) {
        ret = do_account(st, &s, "CREATE");
    } else if (word(&s, "DROP")) {
        ret = do_account(st, &s, "DROP");
    } else if (word(&s, "GRANT")) {
        ret = do_account(st, &s, "GRANT");
    } else if (word(&s, "REVOKE")) {
        ret = do_account(st, &s, "REVOKE");
    } else if (word(&s, "ALTER")) {
        struct sql rest = s;
        if (word(&s, "USER")) {
            ret = do_account(st, &rest, "ALTER"); /* it reads USER itself */
        } else if (word(&s, "INSTANCE") && word(&s, "RELOAD") && word(&s, "TLS") && at_end(&s)) {
            ret = reload_tls(st, o);
        }
    }
    if (ret < 0) {
        parse_error(st, sql, len);
    }
}
