/*
 * The MySQL front door's own answers to what drivers and ORMs send on
 * connect (mysql_session.h, docs/mysql.md "Session variables"): SELECT of
 * variables and session functions, SET, SHOW VARIABLES, SHOW WARNINGS,
 * and transaction statements as no-ops (clink has no transactions to
 * keep; an embedder with them answers these in its hook first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clink/mysql.h"
#include "transport/mysql_proto.h"
#include "transport/mysql_session.h"

/* A variable's value in this session into buf: 1 with [out] *out (NULL: SQL NULL), or 0 for a name not known. */
static int value_of(struct clink_mysql_stmt *st, const char *name, char *buf, size_t cap, const char **out)
{
    struct clink__mysql_session *ss = clink__mysql_session_of(st);
    const struct clink__var *v = clink__var_find(name);
    if (clink__session_get(ss, v ? v->name : name, out)) {
        return 1;
    }
    if (v == NULL) {
        return 0;
    }
    switch (v->dyn) {
    case CLINK_DYN_NONE:
        *out = v->value;
        return 1;
    case CLINK_DYN_VERSION:
        *out = CLINK_MYSQL_SERVER_VERSION;
        return 1;
    case CLINK_DYN_WAIT_TIMEOUT:
        snprintf(buf, cap, "%u", clink__mysql_wait_timeout(st));
        break;
    case CLINK_DYN_SYSTEM_TZ: {
        time_t now = time(NULL);
        struct tm tm;
        snprintf(buf, cap, "%s", localtime_r(&now, &tm) != NULL && tm.tm_zone != NULL ? tm.tm_zone : "UTC");
        break;
    }
    }
    *out = buf;
    return 1;
}

/* NOW() in the session's time_zone: SYSTEM is the node's local time, +hh:mm / -hh:mm an offset from UTC. */
static void now(struct clink_mysql_stmt *st, char *out, size_t cap)
{
    char buf[64];
    const char *tz = NULL;
    CLINK_IGNORE(value_of(st, "time_zone", buf, sizeof(buf), &tz));
    time_t t = time(NULL);
    struct tm tm;
    int hh, mm;
    char sign;
    if (tz != NULL && sscanf(tz, "%c%2d:%2d", &sign, &hh, &mm) == 3 && (sign == '+' || sign == '-')) {
        t += (sign == '-' ? -1 : 1) * (time_t)(hh * 3600 + mm * 60);
        gmtime_r(&t, &tm);
    } else if (tz != NULL && strcasecmp(tz, "SYSTEM") != 0) {
        gmtime_r(&t, &tm); /* a named zone: clink has no zone tables (MySQL would need them too); UTC */
    } else {
        localtime_r(&t, &tm);
    }
    strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static int unknown_var(struct clink_mysql_stmt *st, const char *name)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "Unknown system variable '%s'", name);
    return clink_mysql_error(st, 1193, "HY000", msg);
}

static int do_select(struct clink_mysql_stmt *st, struct clink__sql *s)
{
    enum { VALMAX = CLINK_MYSQL_VAR_VALUE_MAX + 1 };
    struct sel {
        struct clink__select_item items[CLINK_MYSQL_SELECT_ITEMS];
        char vals[CLINK_MYSQL_SELECT_ITEMS][VALMAX];
        const char *names[CLINK_MYSQL_SELECT_ITEMS], *cells[CLINK_MYSQL_SELECT_ITEMS];
    } *b = malloc(sizeof(*b));
    int limited, ret = -1;
    if (b == NULL) {
        return -1;
    }
    int n = clink__select_parse(s, b->items, CLINK_MYSQL_SELECT_ITEMS, &limited);
    for (int i = 0; i < n; i++) {
        struct clink__select_item *it = &b->items[i];
        char *v = b->vals[i];
        b->names[i] = it->name;
        b->cells[i] = v;
        switch (it->kind) {
        case CLINK_SEL_VAR:
            if (!value_of(st, it->var, v, VALMAX, &b->cells[i])) {
                ret = unknown_var(st, it->var);
                goto out;
            }
            break;
        case CLINK_SEL_NUMBER:
        case CLINK_SEL_STRING:
            b->cells[i] = it->text;
            break;
        case CLINK_SEL_NULL:
            b->cells[i] = NULL;
            break;
        case CLINK_SEL_FUNC:
            switch (it->func) {
            case CLINK_FN_VERSION:
                b->cells[i] = CLINK_MYSQL_SERVER_VERSION;
                break;
            case CLINK_FN_DATABASE:
                b->cells[i] = clink_mysql_db(st)[0] ? clink_mysql_db(st) : NULL;
                break;
            case CLINK_FN_USER:
                snprintf(v, VALMAX, "%s@%s", clink_mysql_user(st), clink_mysql_client_host(st));
                break;
            case CLINK_FN_CURRENT_USER:
                snprintf(v, VALMAX, "%s", clink_mysql_account(st)); /* the account matched */
                break;
            case CLINK_FN_CONNECTION_ID:
                snprintf(v, VALMAX, "%u", clink__mysql_conn_id(st));
                break;
            case CLINK_FN_NOW:
                now(st, v, VALMAX);
                break;
            case CLINK_FN_LAST_INSERT_ID:
                snprintf(v, VALMAX, "0");
                break;
            }
            break;
        }
    }
    if (n > 0) {
        ret = clink_mysql_rows(st, (unsigned)n, b->names, limited ? 0 : 1, b->cells) == 0 ? 0 : -1;
    }
out:
    free(b);
    return ret;
}

static int do_set(struct clink_mysql_stmt *st, struct clink__sql *s)
{
    struct clink__set_item items[CLINK_MYSQL_SET_ITEMS];
    int n = clink__set_parse(s, items, CLINK_MYSQL_SET_ITEMS);
    if (n < 0) {
        return -1;
    }
    char msg[300];
    int code = clink__session_set(clink__mysql_session_of(st), items, (unsigned)n, msg, sizeof(msg));
    if (code != 0) {
        return clink_mysql_error(st, (unsigned)code, code == 1231 || code == 1227 ? "42000" : "HY000", msg);
    }
    return clink_mysql_ok(st, 0, NULL);
}

struct row {
    const char *name, *value;
    char buf[CLINK_MYSQL_VAR_VALUE_MAX + 1];
};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct row *)a)->name, ((const struct row *)b)->name);
}

/* SHOW [SESSION|GLOBAL] VARIABLES [LIKE 'pattern']: the table's and those SET here, sorted by name. */
static int do_show_variables(struct clink_mysql_stmt *st, struct clink__sql *s)
{
    char pat[CLINK_MYSQL_VAR_VALUE_MAX + 1] = "%";
    if (clink__sql_word(s, "LIKE") && clink__sql_quoted(s, pat, sizeof(pat)) < 0) {
        return -1;
    }
    if (!clink__sql_at_end(s)) {
        return -1;
    }
    size_t nv;
    const struct clink__var *vars = clink__vars(&nv);
    struct clink__mysql_session *ss = clink__mysql_session_of(st);
    struct row *rows = malloc((nv + CLINK_MYSQL_SESSION_VARS) * sizeof(*rows));
    const char **cells = malloc(2 * (nv + CLINK_MYSQL_SESSION_VARS) * sizeof(*cells));
    int ret = -1;
    if (rows == NULL || cells == NULL) {
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < nv; i++) {
        rows[n].name = vars[i].name;
        CLINK_IGNORE(value_of(st, vars[i].name, rows[n].buf, sizeof(rows[n].buf), &rows[n].value));
        if (vars[i].kind == CLINK_VAR_BOOL && rows[n].value != NULL) {
            rows[n].value = strcmp(rows[n].value, "1") == 0 ? "ON" : "OFF"; /* SHOW VARIABLES' spelling */
        }
        n++;
    }
    for (unsigned i = 0; i < ss->n; i++) {
        if (clink__var_find(ss->v[i].name) == NULL) {
            rows[n].name = ss->v[i].name;
            rows[n].value = ss->v[i].value;
            n++;
        }
    }
    qsort(rows, n, sizeof(*rows), by_name);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (clink__sql_like(pat, rows[i].name)) {
            cells[2 * k] = rows[i].name;
            cells[2 * k + 1] = rows[i].value;
            k++;
        }
    }
    static const char *const names[2] = {"Variable_name", "Value"};
    ret = clink_mysql_rows(st, 2, names, (unsigned)k, cells) == 0 ? 0 : -1;
out:
    free(cells);
    free(rows);
    return ret;
}

/* SHOW WARNINGS / SHOW ERRORS [LIMIT ...]: clink's statements leave none. */
static int do_show_warnings(struct clink_mysql_stmt *st, struct clink__sql *s)
{
    if (clink__sql_word(s, "LIMIT")) {
        while (s->p < s->end && *s->p != ';') {
            s->p++; /* [offset,] count: nothing to cut from an empty list */
        }
    }
    if (!clink__sql_at_end(s)) {
        return -1;
    }
    static const char *const names[3] = {"Level", "Code", "Message"};
    return clink_mysql_rows(st, 3, names, 0, NULL) == 0 ? 0 : -1;
}

/* BEGIN [WORK], START TRANSACTION [READ ONLY | READ WRITE | WITH CONSISTENT SNAPSHOT], COMMIT, ROLLBACK [WORK]. */
static int do_transaction(struct clink_mysql_stmt *st, struct clink__sql *s, int start)
{
    if (start) {
        do {
            CLINK_IGNORE(
                (clink__sql_word(s, "READ") && (clink__sql_word(s, "ONLY") || clink__sql_word(s, "WRITE"))) ||
                (clink__sql_word(s, "WITH") && clink__sql_word(s, "CONSISTENT") && clink__sql_word(s, "SNAPSHOT")));
            clink__sql_skip_space(s);
        } while (s->p < s->end && *s->p == ',' && s->p++);
    } else {
        CLINK_IGNORE(clink__sql_word(s, "WORK"));
    }
    return clink__sql_at_end(s) ? clink_mysql_ok(st, 0, NULL) : -1;
}

int clink__mysql_session_answer(struct clink_mysql_stmt *st, const char *sql, size_t len)
{
    struct clink__sql s = {.p = sql, .end = sql + len};
    struct clink__sql rest;
    int ret = -1;
    if (clink__sql_word(&s, "SELECT")) {
        ret = do_select(st, &s);
    } else if (clink__sql_word(&s, "SET")) {
        ret = do_set(st, &s);
    } else if (clink__sql_word(&s, "SHOW")) {
        rest = s;
        CLINK_IGNORE(clink__sql_word(&s, "SESSION") || clink__sql_word(&s, "GLOBAL") || clink__sql_word(&s, "LOCAL"));
        if (clink__sql_word(&s, "VARIABLES")) {
            ret = do_show_variables(st, &s);
        } else if (s = rest, clink__sql_word(&s, "WARNINGS") || clink__sql_word(&s, "ERRORS")) {
            ret = do_show_warnings(st, &s);
        }
    } else if (clink__sql_word(&s, "BEGIN") || clink__sql_word(&s, "COMMIT") || clink__sql_word(&s, "ROLLBACK")) {
        ret = do_transaction(st, &s, 0);
    } else if (clink__sql_word(&s, "START") && clink__sql_word(&s, "TRANSACTION")) {
        ret = do_transaction(st, &s, 1);
    }
    return ret < 0 ? 0 : 1;
}
