/*
 * The session variables of one MySQL-protocol connection, and the SET that
 * changes them: see mysql_session.h. Only what a SET changed is kept (a
 * variable at its default takes nothing), within the connection's bounds.
 */
#include "transport/mysql_session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clink/error.h"

void clink__session_clear(struct clink__mysql_session *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        free(s->v[i].name);
    }
    memset(s, 0, sizeof(*s));
}

static int find(const struct clink__mysql_session *s, const char *name)
{
    for (unsigned i = 0; i < s->n; i++) {
        if (strcasecmp(s->v[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int clink__session_get(const struct clink__mysql_session *s, const char *name, const char **value)
{
    int i = find(s, name);
    if (i < 0) {
        return 0;
    }
    *value = s->v[i].value;
    return 1;
}

static size_t cost(const char *name, const char *value)
{
    return strlen(name) + 1 + (value ? strlen(value) + 1 : 0);
}

static void unset(struct clink__mysql_session *s, int i)
{
    s->bytes -= cost(s->v[i].name, s->v[i].value);
    free(s->v[i].name);
    s->v[i] = s->v[--s->n];
}

static int put(struct clink__mysql_session *s, const char *name, const char *value)
{
    int i = find(s, name);
    if (i >= 0) {
        unset(s, i);
    }
    size_t nl = strlen(name) + 1, vl = value ? strlen(value) + 1 : 0;
    if (s->n == CLINK_MYSQL_SESSION_VARS || s->bytes + nl + vl > CLINK_MYSQL_SESSION_BYTES) {
        return -CLINK_ETOOMANY;
    }
    char *b = malloc(nl + vl);
    if (b == NULL) {
        return -CLINK_ENOMEM;
    }
    memcpy(b, name, nl);
    if (value) {
        memcpy(b + nl, value, vl);
    }
    s->v[s->n++] = (struct clink__session_var){.name = b, .value = value ? b + nl : NULL};
    s->bytes += nl + vl;
    return 0;
}

/* ---- SET ---- */

static int add(struct clink__set_item *items, unsigned cap, unsigned *n, const char *name, const char *value)
{
    if (*n == cap) {
        return -1;
    }
    struct clink__set_item *it = &items[(*n)++];
    memset(it, 0, sizeof(*it));
    snprintf(it->name, sizeof(it->name), "%s", name);
    if (value == NULL) {
        it->is_default = 1;
    } else {
        snprintf(it->value, sizeof(it->value), "%s", value);
    }
    return 0;
}

/* A character set's default collation, as MySQL 8.0 names it (for SET NAMES without COLLATE). */
static void default_collation(const char *cs, char *out, size_t cap)
{
    if (strcasecmp(cs, "utf8mb4") == 0) {
        snprintf(out, cap, "utf8mb4_0900_ai_ci");
    } else if (strcasecmp(cs, "latin1") == 0) {
        snprintf(out, cap, "latin1_swedish_ci");
    } else if (strcasecmp(cs, "binary") == 0) {
        snprintf(out, cap, "binary");
    } else {
        snprintf(out, cap, "%.*s_general_ci", CLINK_MYSQL_VAR_NAME_MAX - 11, cs);
    }
}

/* NAMES cs [COLLATE c] | NAMES DEFAULT: the client's three character sets and the connection's collation. */
static int set_names(struct clink__sql *s, struct clink__set_item *items, unsigned cap, unsigned *n)
{
    static const char *const sets[] = {"character_set_client", "character_set_connection", "character_set_results"};
    char cs[CLINK_MYSQL_VAR_NAME_MAX + 1], coll[CLINK_MYSQL_VAR_NAME_MAX + 1];
    int dflt = clink__sql_word(s, "DEFAULT");
    if (!dflt && clink__sql_quoted(s, cs, sizeof(cs)) < 0 && clink__sql_ident(s, cs, sizeof(cs)) < 0) {
        return -1;
    }
    if (!dflt && clink__sql_word(s, "COLLATE")) {
        if (clink__sql_quoted(s, coll, sizeof(coll)) < 0 && clink__sql_ident(s, coll, sizeof(coll)) < 0) {
            return -1;
        }
    } else if (!dflt) {
        default_collation(cs, coll, sizeof(coll));
    }
    for (size_t i = 0; i < 3; i++) {
        if (add(items, cap, n, sets[i], dflt ? NULL : cs) < 0) {
            return -1;
        }
    }
    return add(items, cap, n, "collation_connection", dflt ? NULL : coll);
}

/* [SESSION] TRANSACTION ISOLATION LEVEL ... | READ ONLY | READ WRITE [, ...]. session: it lasts (else: the next one).
 */
static int set_transaction(struct clink__sql *s, int session, struct clink__set_item *items, unsigned cap, unsigned *n)
{
    do {
        const char *name, *value;
        if (clink__sql_word(s, "ISOLATION")) {
            if (!clink__sql_word(s, "LEVEL")) {
                return -1;
            }
            name = "transaction_isolation";
            if (clink__sql_word(s, "SERIALIZABLE")) {
                value = "SERIALIZABLE";
            } else if (clink__sql_word(s, "REPEATABLE") && clink__sql_word(s, "READ")) {
                value = "REPEATABLE-READ";
            } else if (clink__sql_word(s, "READ") && clink__sql_word(s, "COMMITTED")) {
                value = "READ-COMMITTED";
            } else if (clink__sql_word(s, "UNCOMMITTED")) { /* READ was read above */
                value = "READ-UNCOMMITTED";
            } else {
                return -1;
            }
        } else if (clink__sql_word(s, "READ")) {
            name = "transaction_read_only";
            if (clink__sql_word(s, "ONLY")) {
                value = "1";
            } else if (clink__sql_word(s, "WRITE")) {
                value = "0";
            } else {
                return -1;
            }
        } else {
            return -1;
        }
        if (session && add(items, cap, n, name, value) < 0) {
            return -1;
        }
        clink__sql_skip_space(s);
    } while (s->p < s->end && *s->p == ',' && s->p++);
    return 0;
}

/* A value: DEFAULT, NULL, a quoted string, a number, or a word (ON, utf8mb4). */
static int set_value(struct clink__sql *s, struct clink__set_item *it)
{
    clink__sql_skip_space(s);
    if (clink__sql_word(s, "DEFAULT")) {
        it->is_default = 1;
        return 0;
    }
    if (clink__sql_word(s, "NULL")) {
        it->is_null = 1;
        return 0;
    }
    if (s->p < s->end && (*s->p == '\'' || *s->p == '"')) {
        return clink__sql_quoted(s, it->value, sizeof(it->value));
    }
    size_t n = 0;
    if (s->p < s->end && (*s->p == '-' || *s->p == '+')) {
        it->value[n++] = *s->p++;
    }
    while (s->p < s->end && (isalnum((unsigned char)*s->p) || *s->p == '_' || *s->p == '.')) {
        if (n + 1 >= sizeof(it->value)) {
            return -1;
        }
        it->value[n++] = *s->p++;
    }
    it->value[n] = '\0';
    return n > 0 && isalnum((unsigned char)it->value[n - 1]) ? 0 : -1;
}

int clink__set_parse(struct clink__sql *s, struct clink__set_item *items, unsigned cap)
{
    unsigned n = 0;
    do {
        int global = 0, session = 0;
        if (clink__sql_word(s, "GLOBAL") || clink__sql_word(s, "PERSIST") || clink__sql_word(s, "PERSIST_ONLY")) {
            global = 1;
        } else if (clink__sql_word(s, "SESSION") || clink__sql_word(s, "LOCAL")) {
            session = 1;
        }
        if (!global && !session && (clink__sql_word(s, "NAMES"))) {
            if (set_names(s, items, cap, &n) < 0) {
                return -1;
            }
        } else if (!global && !session &&
                   (clink__sql_word(s, "CHARSET") || (clink__sql_word(s, "CHARACTER") && clink__sql_word(s, "SET")))) {
            char cs[CLINK_MYSQL_VAR_NAME_MAX + 1];
            int dflt = clink__sql_word(s, "DEFAULT");
            if (!dflt && clink__sql_quoted(s, cs, sizeof(cs)) < 0 && clink__sql_ident(s, cs, sizeof(cs)) < 0) {
                return -1;
            }
            /* The connection's character set goes back to the database's (MySQL's SET CHARACTER SET). */
            if (add(items, cap, &n, "character_set_client", dflt ? NULL : cs) < 0 ||
                add(items, cap, &n, "character_set_results", dflt ? NULL : cs) < 0 ||
                add(items, cap, &n, "character_set_connection", NULL) < 0 ||
                add(items, cap, &n, "collation_connection", NULL) < 0) {
                return -1;
            }
        } else if (!global && clink__sql_word(s, "TRANSACTION")) {
            if (set_transaction(s, session, items, cap, &n) < 0) {
                return -1;
            }
            break; /* the transaction's characteristics are the whole statement */
        } else {
            if (!global && !session && s->p < s->end && *s->p == '@') {
                if (!clink__sql_word(s, "@@")) {
                    return -1; /* @name: a user variable */
                }
                if (clink__sql_word(s, "GLOBAL.") || clink__sql_word(s, "PERSIST.")) {
                    global = 1;
                } else {
                    CLINK_IGNORE(clink__sql_word(s, "SESSION.") || clink__sql_word(s, "LOCAL."));
                }
            }
            if (n == cap) {
                return -1;
            }
            struct clink__set_item *it = &items[n];
            memset(it, 0, sizeof(*it));
            it->global = global;
            if (clink__sql_ident(s, it->name, sizeof(it->name)) < 0) {
                return -1;
            }
            for (char *p = it->name; *p; p++) {
                *p = (char)tolower((unsigned char)*p);
            }
            if (!clink__sql_word(s, ":=") && !clink__sql_word(s, "=")) {
                return -1;
            }
            if (set_value(s, it) < 0) {
                return -1;
            }
            n++;
        }
        clink__sql_skip_space(s);
    } while (s->p < s->end && *s->p == ',' && s->p++);
    return clink__sql_at_end(s) ? (int)n : -1;
}

int clink__session_set(struct clink__mysql_session *s, const struct clink__set_item *items, unsigned n, char *msg,
                       size_t msgcap)
{
    char vals[CLINK_MYSQL_SET_ITEMS][CLINK_MYSQL_VAR_VALUE_MAX + 1];
    if (n > CLINK_MYSQL_SET_ITEMS) {
        snprintf(msg, msgcap, "clink reads at most %d assignments in one SET", CLINK_MYSQL_SET_ITEMS);
        return 1105;
    }
    /* All checked before any applies. */
    for (unsigned i = 0; i < n; i++) {
        const struct clink__set_item *it = &items[i];
        const struct clink__var *v = clink__var_find(it->name);
        int code = 0;
        if (it->global) {
            snprintf(msg, msgcap,
                     "Access denied; you need (at least one of) the SUPER or SYSTEM_VARIABLES_ADMIN privilege(s) for "
                     "this operation");
            return 1227;
        }
        if (it->is_default || it->is_null) {
            /* A read-only variable refuses these too; any other takes DEFAULT, and NULL where nullable. */
            code = v != NULL && v->kind <= CLINK_VAR_SESSION_RO ? clink__var_check(v, "", vals[i], sizeof(vals[i])) : 0;
            if (code == 0 && it->is_null && v != NULL && !v->nullable) {
                code = 1231;
            }
        } else {
            code = clink__var_check(v, it->value, vals[i], sizeof(vals[i]));
        }
        const char *name = v ? v->name : it->name;
        switch (code) {
        case 0:
            continue;
        case 1238:
            snprintf(msg, msgcap, "Variable '%s' is a read only variable", name);
            return code;
        case 1229:
            snprintf(msg, msgcap, "Variable '%s' is a GLOBAL variable and should be set with SET GLOBAL", name);
            return code;
        case 1621:
            snprintf(msg, msgcap, "SESSION variable '%s' is read-only. Use SET GLOBAL to assign the value", name);
            return code;
        default:
            snprintf(msg, msgcap, "Variable '%s' can't be set to the value of '%.64s'", name,
                     it->is_null ? "NULL" : it->value);
            return 1231;
        }
    }
    /* Within the bounds once applied? Counted on a copy of the sizes, so that a refusal changes nothing. */
    unsigned count = s->n;
    size_t bytes = s->bytes;
    for (unsigned i = 0; i < n; i++) {
        const struct clink__var *v = clink__var_find(items[i].name);
        const char *name = v ? v->name : items[i].name;
        int at = find(s, name);
        int earlier = 0;
        for (unsigned j = 0; j < i; j++) {
            const struct clink__var *w = clink__var_find(items[j].name);
            earlier |= strcmp(w ? w->name : items[j].name, name) == 0;
        }
        if (at >= 0 && !earlier) {
            count--;
            bytes -= cost(s->v[at].name, s->v[at].value);
        }
        if (!items[i].is_default && !earlier) {
            count++;
            bytes += cost(name, items[i].is_null ? NULL : vals[i]);
        } else if (!items[i].is_default) {
            bytes += cost(name, items[i].is_null ? NULL : vals[i]); /* counted twice: a safe overestimate */
        }
    }
    if (count > CLINK_MYSQL_SESSION_VARS || bytes > CLINK_MYSQL_SESSION_BYTES) {
        snprintf(msg, msgcap,
                 "clink keeps at most %d session variables in %d bytes per connection; this SET would pass that",
                 CLINK_MYSQL_SESSION_VARS, CLINK_MYSQL_SESSION_BYTES);
        return 1105;
    }
    for (unsigned i = 0; i < n; i++) {
        const struct clink__var *v = clink__var_find(items[i].name);
        const char *name = v ? v->name : items[i].name;
        if (items[i].is_default) {
            int at = find(s, name);
            if (at >= 0) {
                unset(s, at);
            }
        } else if (put(s, name, items[i].is_null ? NULL : vals[i]) < 0) {
            snprintf(msg, msgcap, "out of memory");
            return 1105;
        }
    }
    return 0;
}
