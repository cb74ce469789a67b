/*
 * The default statement hook of the MySQL-protocol front door
 * (clink_mysql_builtin in clink/mysql.h): what the mysql client and drivers
 * send to connect and report status; the account statements are
 * mysql_accounts.c's. Statements are matched word by word (mysql_sql.c),
 * case-insensitively; anything else gets error 1064.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clink/mysql.h"
#include "clink/transport.h"
#include "transport/mysql_session.h"
#include "transport/mysql_sql.h"

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

/* SHOW [SESSION|GLOBAL] STATUS [LIKE 'pattern']: this connection's TLS, as MySQL names it. */
static int do_show_status(struct clink_mysql_stmt *st, struct clink__sql *s)
{
    char pat[128] = "%";
    if (clink__sql_word(s, "LIKE") && clink__sql_quoted(s, pat, sizeof(pat)) < 0) {
        return -1;
    }
    if (!clink__sql_at_end(s)) {
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
        if (clink__sql_like(pat, all[i][0])) {
            cells[2 * n] = all[i][0];
            cells[2 * n + 1] = all[i][1];
            n++;
        }
    }
    static const char *const names[2] = {"Variable_name", "Value"};
    return clink_mysql_rows(st, 2, names, n, cells) == 0 ? 0 : -1;
}

/* ALTER INSTANCE RELOAD TLS: through the embedding program (a node does not know its files). */
static int reload_tls(struct clink_mysql_stmt *st, const struct clink_mysql_builtin_opts *o)
{
    char err[256] = "";
    if (!clink__mysql_may_administer(st, "CONNECTION_ADMIN")) {
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
    struct clink__sql s = {.p = sql, .end = sql + len};
    int ret = -1;
    if (clink__sql_word(&s, "SHOW")) {
        struct clink__sql what = s;
        CLINK_IGNORE(clink__sql_word(&s, "SESSION") || clink__sql_word(&s, "GLOBAL"));
        if (clink__sql_word(&s, "STATUS")) {
            ret = do_show_status(st, &s);
        } else if ((s = what, clink__sql_word(&s, "GRANTS"))) {
            ret = clink__mysql_show_grants(st, &s);
        }
    } else if (clink__sql_word(&s, "CREATE")) {
        ret = clink__mysql_account_stmt(st, &s, "CREATE", o);
    } else if (clink__sql_word(&s, "DROP")) {
        ret = clink__mysql_account_stmt(st, &s, "DROP", o);
    } else if (clink__sql_word(&s, "GRANT")) {
        ret = clink__mysql_account_stmt(st, &s, "GRANT", o);
    } else if (clink__sql_word(&s, "REVOKE")) {
        ret = clink__mysql_account_stmt(st, &s, "REVOKE", o);
    } else if (clink__sql_word(&s, "FLUSH")) {
        ret = clink__mysql_flush(st, &s);
    } else if (clink__sql_word(&s, "ALTER")) {
        struct clink__sql rest = s;
        if (clink__sql_word(&s, "USER")) {
            ret = clink__mysql_account_stmt(st, &rest, "ALTER", o); /* it reads USER itself */
        } else if (clink__sql_word(&s, "INSTANCE") && clink__sql_word(&s, "RELOAD") && clink__sql_word(&s, "TLS") &&
                   clink__sql_at_end(&s)) {
            ret = reload_tls(st, o);
        }
    }
    /* What drivers send on connect (SELECT @@..., SET, SHOW VARIABLES...): the door's answers, else 1064. */
    if (ret < 0 && !clink__mysql_session_answer(st, sql, len)) {
        parse_error(st, sql, len);
    }
}
