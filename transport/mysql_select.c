/*
 * The SELECT lists the MySQL front door answers itself (mysql_session.h):
 * system variables, the session functions drivers call on connect, and
 * literals, each with an optional alias. Pure: mysql_answers.c gives the
 * values.
 */
#include "transport/mysql_session.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum clink__select_func fn;
    int bare; /* may come without () */
} funcs[] = {
    {"VERSION", CLINK_FN_VERSION, 0},
    {"DATABASE", CLINK_FN_DATABASE, 0},
    {"SCHEMA", CLINK_FN_DATABASE, 0},
    {"USER", CLINK_FN_USER, 0},
    {"SESSION_USER", CLINK_FN_USER, 0},
    {"SYSTEM_USER", CLINK_FN_USER, 0},
    {"CURRENT_USER", CLINK_FN_CURRENT_USER, 1},
    {"CONNECTION_ID", CLINK_FN_CONNECTION_ID, 0},
    {"NOW", CLINK_FN_NOW, 0},
    {"SYSDATE", CLINK_FN_NOW, 0},
    {"CURRENT_TIMESTAMP", CLINK_FN_NOW, 1},
    {"LOCALTIMESTAMP", CLINK_FN_NOW, 1},
    {"LAST_INSERT_ID", CLINK_FN_LAST_INSERT_ID, 0},
};

static int item(struct clink__sql *s, struct clink__select_item *it)
{
    clink__sql_skip_space(s);
    if (s->p >= s->end) {
        return -1;
    }
    if (s->p[0] == '@') {
        if (!clink__sql_word(s, "@@")) {
            return -1; /* @name: a user variable */
        }
        if (!clink__sql_word(s, "SESSION.") && !clink__sql_word(s, "LOCAL.")) {
            CLINK_IGNORE(clink__sql_word(s, "GLOBAL."));
        }
        if (s->p < s->end && isspace((unsigned char)*s->p)) {
            return -1;
        }
        if (clink__sql_ident(s, it->var, sizeof(it->var)) < 0) {
            return -1;
        }
        for (char *p = it->var; *p; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
        it->kind = CLINK_SEL_VAR;
        return 0;
    }
    if (s->p[0] == '\'' || s->p[0] == '"') {
        it->kind = CLINK_SEL_STRING;
        return clink__sql_quoted(s, it->text, sizeof(it->text));
    }
    if (isdigit((unsigned char)s->p[0]) || ((s->p[0] == '-' || s->p[0] == '+' || s->p[0] == '.') && s->p + 1 < s->end &&
                                            (isdigit((unsigned char)s->p[1]) || s->p[1] == '.'))) {
        size_t n = 0;
        int dot = 0, digits = 0;
        if (*s->p == '-' || *s->p == '+') {
            if (*s->p == '-') {
                it->text[n++] = '-';
            }
            s->p++;
        }
        while (s->p < s->end && (isdigit((unsigned char)*s->p) || (*s->p == '.' && !dot))) {
            if (n + 1 >= 66) { /* MySQL's DECIMAL has at most 65 digits */
                return -1;
            }
            dot |= *s->p == '.';
            digits += isdigit((unsigned char)*s->p) != 0;
            it->text[n++] = *s->p++;
        }
        it->text[n] = '\0';
        if (digits == 0 || (s->p < s->end && (isalpha((unsigned char)*s->p) || *s->p == '_'))) {
            return -1;
        }
        it->kind = CLINK_SEL_NUMBER;
        return 0;
    }
    if (clink__sql_word(s, "NULL")) {
        it->kind = CLINK_SEL_NULL;
        return 0;
    }
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++) {
        struct clink__sql save = *s;
        if (!clink__sql_word(s, funcs[i].name)) {
            continue;
        }
        struct clink__sql after = *s;
        if (clink__sql_word(s, "(") && clink__sql_word(s, ")")) {
            it->kind = CLINK_SEL_FUNC;
            it->func = funcs[i].fn;
            return 0;
        }
        *s = after;
        clink__sql_skip_space(s);
        if (funcs[i].bare && (s->p == s->end || *s->p != '(')) {
            *s = after;
            it->kind = CLINK_SEL_FUNC;
            it->func = funcs[i].fn;
            return 0;
        }
        *s = save;
    }
    return -1;
}

/* [AS] alias: an identifier or a quoted name; FROM and LIMIT end the list instead. */
static int alias(struct clink__sql *s, struct clink__select_item *it)
{
    struct clink__sql save = *s;
    int as = clink__sql_word(s, "AS");
    clink__sql_skip_space(s);
    if (!as && (clink__sql_word(s, "FROM") || clink__sql_word(s, "LIMIT"))) {
        *s = save;
        return 0;
    }
    if (s->p < s->end && (*s->p == '\'' || *s->p == '"' || *s->p == '`')) {
        return clink__sql_quoted(s, it->name, sizeof(it->name));
    }
    if (s->p < s->end && (isalnum((unsigned char)*s->p) || *s->p == '_' || *s->p == '$')) {
        return clink__sql_ident(s, it->name, sizeof(it->name));
    }
    return as ? -1 : 0;
}

int clink__select_parse(struct clink__sql *s, struct clink__select_item *items, unsigned cap, int *limited)
{
    unsigned n = 0;
    *limited = 0;
    do {
        if (n == cap) {
            return -1;
        }
        struct clink__select_item *it = &items[n];
        memset(it, 0, sizeof(*it));
        clink__sql_skip_space(s);
        const char *start = s->p;
        if (item(s, it) < 0) {
            return -1;
        }
        /* MySQL names the column by the expression as written; a string literal by its value. */
        const char *from = it->kind == CLINK_SEL_STRING ? it->text : start;
        size_t len = it->kind == CLINK_SEL_STRING ? strlen(it->text) : (size_t)(s->p - start);
        len = len < sizeof(it->name) ? len : sizeof(it->name) - 1;
        memcpy(it->name, from, len);
        it->name[len] = '\0';
        if (alias(s, it) < 0) {
            return -1;
        }
        n++;
        clink__sql_skip_space(s);
    } while (s->p < s->end && *s->p == ',' && s->p++);
    if (clink__sql_word(s, "FROM") && !clink__sql_word(s, "DUAL")) {
        return -1;
    }
    if (clink__sql_word(s, "LIMIT")) {
        clink__sql_skip_space(s);
        const char *d = s->p;
        int zero = 1;
        while (s->p < s->end && isdigit((unsigned char)*s->p)) {
            zero &= *s->p++ == '0';
        }
        if (s->p == d) {
            return -1;
        }
        *limited = zero;
        clink__sql_skip_space(s);
        if (s->p < s->end && *s->p == ',') { /* LIMIT offset, count: past the one row unless both are 0 */
            s->p++;
            clink__sql_skip_space(s);
            d = s->p;
            int zero2 = 1;
            while (s->p < s->end && isdigit((unsigned char)*s->p)) {
                zero2 &= *s->p++ == '0';
            }
            if (s->p == d) {
                return -1;
            }
            *limited = !(zero && !zero2);
        }
    }
    return clink__sql_at_end(s) ? (int)n : -1;
}
