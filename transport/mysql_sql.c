/*
 * The word-by-word reader of the built-in statements (mysql_sql.h): words,
 * quoted strings and account names, matched case-insensitively, and the
 * quoting of strings the statements write back (SHOW GRANTS). Apart from
 * the statements because fuzz/fuzz_mysql.c feeds it hostile text on its own.
 */
#include "transport/mysql_sql.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void clink__sql_skip_space(struct clink__sql *s)
{
    while (s->p < s->end && isspace((unsigned char)*s->p)) {
        s->p++;
    }
}

int clink__sql_at_end(struct clink__sql *s)
{
    clink__sql_skip_space(s);
    while (s->end > s->p && (isspace((unsigned char)s->end[-1]) || s->end[-1] == ';')) {
        s->end--;
    }
    return s->p == s->end;
}

int clink__sql_word(struct clink__sql *s, const char *w)
{
    clink__sql_skip_space(s);
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

/* One backslash escape as MySQL reads it in a string literal; sets *keep when the backslash itself stays. */
static char unescape(char ch, int *keep)
{
    *keep = 0;
    switch (ch) {
    case '0':
        return '\0';
    case 'b':
        return '\b';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'Z':
        return 0x1a; /* Ctrl-Z, for Windows' end of file */
    case '%':
    case '_':
        *keep = 1; /* so that a LIKE pattern still sees the escape (MySQL keeps it in any string) */
        return ch;
    default:
        return ch; /* \' \" \\ and any other character: itself */
    }
}

int clink__sql_quoted(struct clink__sql *s, char *out, size_t cap)
{
    clink__sql_skip_space(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"' && *s->p != '`')) {
        return -1;
    }
    char q = *s->p++;
    size_t n = 0;
    while (s->p < s->end) {
        char ch = *s->p++;
        int keep = 0;
        if (ch == '\\' && q != '`') { /* an identifier in backticks has no escapes, only a doubled backtick */
            if (s->p >= s->end) {
                return -1;
            }
            ch = unescape(*s->p++, &keep);
            if (ch == '\0') {
                return -1; /* a NUL has no place in the names and values read here */
            }
        } else if (ch == q) {
            if (s->p < s->end && *s->p == q) {
                s->p++;
            } else {
                out[n] = '\0';
                return 0;
            }
        }
        if (n + 1 + (size_t)keep >= cap) {
            return -1;
        }
        if (keep) {
            out[n++] = '\\';
        }
        out[n++] = ch;
    }
    return -1;
}

int clink__sql_ident(struct clink__sql *s, char *out, size_t cap)
{
    clink__sql_skip_space(s);
    if (s->p < s->end && *s->p == '`') {
        return clink__sql_quoted(s, out, cap) == 0 && out[0] != '\0' ? 0 : -1;
    }
    size_t n = 0;
    while (s->p < s->end && (isalnum((unsigned char)*s->p) || *s->p == '_' || *s->p == '$')) {
        if (n + 1 >= cap) {
            return -1;
        }
        out[n++] = *s->p++;
    }
    out[n] = '\0';
    return n > 0 ? 0 : -1;
}

/*
 * Iterative, with one backtrack point (the last %): at most pattern length
 * times string length steps. A recursive matcher is exponential in the
 * number of %, and the pattern comes from any logged-in client.
 */
int clink__sql_like(const char *pat, const char *str)
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

int clink__sql_account_name(struct clink__sql *s, char *user, size_t ucap, char *host, size_t hcap)
{
    clink__sql_skip_space(s);
    if (clink__sql_quoted(s, user, ucap) < 0) {
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
        if (clink__sql_quoted(s, host, hcap) < 0) {
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

int clink__sql_show_grants_target(struct clink__sql *s, char *user, size_t ucap, char *host, size_t hcap)
{
    if (clink__sql_at_end(s)) {
        return 1;
    }
    if (!clink__sql_word(s, "FOR")) {
        return -1;
    }
    struct clink__sql save = *s;
    if (clink__sql_word(s, "CURRENT_USER")) {
        struct clink__sql paren = *s;
        if (!(clink__sql_word(s, "(") && clink__sql_word(s, ")"))) {
            *s = paren;
        }
        if (clink__sql_at_end(s)) {
            return 1;
        }
        *s = save; /* a user named current_user_x, or current_user@host: an account name */
    }
    if (clink__sql_account_name(s, user, ucap, host, hcap) < 0 || !clink__sql_at_end(s)) {
        return -1;
    }
    return 0;
}

size_t clink__sql_quote(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    if (cap < 3) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return 0;
    }
    out[n++] = '\'';
    for (const char *p = in; *p != '\0'; p++) {
        int esc = *p == '\'' || *p == '\\';
        if (n + (size_t)esc + 1 + 2 > cap) { /* room for this character, the closing quote and the NUL */
            out[0] = '\0';
            return 0;
        }
        if (esc) {
            out[n++] = '\\';
        }
        out[n++] = *p;
    }
    out[n++] = '\'';
    out[n] = '\0';
    return n;
}
