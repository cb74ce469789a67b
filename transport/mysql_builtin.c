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
#include "transport/mysql_sql.h"

#define VERSION         "8.0.0-clink-0.1.0"
#define VERSION_COMMENT "clink"

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
static const char *variable(struct clink__sql *s)
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
        struct clink__sql save = *s;
        if (clink__sql_word(s, vars[i][0])) {
            return vars[i][1];
        }
        *s = save;
    }
    return NULL;
}

/* SELECT item[, item]... [LIMIT n]: the few expressions clients ask on connect. */
static int do_select(struct clink_mysql_stmt *st, struct clink__sql *s)
{
    enum { MAXCOLS = 8 };
    const char *names[MAXCOLS], *cells[MAXCOLS];
    char namebuf[MAXCOLS][64], valbuf[MAXCOLS][200];
    unsigned n = 0;
    do {
        if (n == MAXCOLS) {
            return -1;
        }
        clink__sql_skip_space(s);
        const char *start = s->p;
        const char *var = NULL;
        int is_string = 0;
        if (s->p < s->end && s->p[0] == '@' && (var = variable(s)) != NULL) {
            cells[n] = var;
        } else if (clink__sql_word(s, "DATABASE") && clink__sql_word(s, "(") && clink__sql_word(s, ")")) {
            const char *db = clink_mysql_db(st);
            cells[n] = db[0] ? db : NULL;
        } else if (clink__sql_word(s, "CURRENT_USER") && clink__sql_word(s, "(") && clink__sql_word(s, ")")) {
            snprintf(valbuf[n], sizeof(valbuf[n]), "%s", clink_mysql_account(st)); /* the account matched */
            cells[n] = valbuf[n];
        } else if ((clink__sql_word(s, "USER") || clink__sql_word(s, "SESSION_USER")) && clink__sql_word(s, "(") &&
                   clink__sql_word(s, ")")) {
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
        } else if (clink__sql_quoted(s, valbuf[n], sizeof(valbuf[n])) == 0) {
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
        clink__sql_skip_space(s);
    } while (s->p < s->end && *s->p == ',' && s->p++);
    if (clink__sql_word(s, "LIMIT")) {
        clink__sql_skip_space(s);
        while (s->p < s->end && isdigit((unsigned char)*s->p)) {
            s->p++;
        }
    }
    if (!clink__sql_at_end(s)) {
        return -1;
    }
    return clink_mysql_rows(st, n, names, 1, cells) == 0 ? 0 : -1;
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
    if (clink__sql_word(&s, "SELECT")) {
        ret = do_select(st, &s);
    } else if (clink__sql_word(&s, "SHOW")) {
        CLINK_IGNORE(clink__sql_word(&s, "SESSION") || clink__sql_word(&s, "GLOBAL"));
        if (clink__sql_word(&s, "STATUS")) {
            ret = do_show_status(st, &s);
        } else if (clink__sql_word(&s, "GRANTS")) {
            ret = clink__mysql_show_grants(st, &s);
        }
    } else if (clink__sql_word(&s, "SET")) {
        /* What drivers send on connect: accepted, changes nothing (text is utf8mb4, every statement commits). */
        if (clink__sql_word(&s, "NAMES") ||
            (clink__sql_word(&s, "AUTOCOMMIT") && clink__sql_word(&s, "=") &&
             (clink__sql_word(&s, "1") || clink__sql_word(&s, "0")) && clink__sql_at_end(&s))) {
            ret = clink_mysql_ok(st, 0, NULL);
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
    if (ret < 0) {
        parse_error(st, sql, len);
    }
}
