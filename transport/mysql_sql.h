/*
 * Internal to the MySQL front door's built-in statements: the word-by-word
 * reader they share (mysql_sql.c), and the statement files' entry points.
 * mysql_builtin.c dispatches; mysql_accounts.c answers the account
 * statements (CREATE/ALTER/DROP USER, GRANT, REVOKE, SHOW GRANTS, FLUSH
 * PRIVILEGES). Nothing outside transport/ includes this (the fuzz target
 * aside).
 */
#ifndef CLINK_TRANSPORT_MYSQL_SQL_H
#define CLINK_TRANSPORT_MYSQL_SQL_H

#include <stddef.h>

#include "clink/mysql.h"

/* A statement as words: a cursor over it, with whitespace and a trailing ';' ignored. */
struct clink__sql {
    const char *p, *end;
};

void clink__sql_skip_space(struct clink__sql *s);
/* 1 if nothing but whitespace and ';' is left (and drops them from the end). */
int clink__sql_at_end(struct clink__sql *s);
/* Consume word w (case-insensitive) if it is next and ends there: 1, else 0 and s unchanged. */
int clink__sql_word(struct clink__sql *s, const char *w);
/*
 * A quoted string ('...' or "...") or identifier (`...`) into out, read as
 * MySQL reads it: a doubled quote is one; in a string, \n \t \r \b \Z
 * and \0 are their control characters, \% and \_ keep their backslash
 * (LIKE patterns), and a backslash before anything else is that character.
 * A backticked identifier has no escapes. 0, or -1 (unterminated, too long
 * for cap, or a NUL in it: no name or value here holds one).
 */
int clink__sql_quoted(struct clink__sql *s, char *out, size_t cap);
/* An identifier ([A-Za-z0-9_$]+, or `quoted`) into out. 0, or -1. */
int clink__sql_ident(struct clink__sql *s, char *out, size_t cap);
/*
 * SQL LIKE: % any run, _ one character, \ escapes the next,
 * case-insensitive (MySQL's default collation). 1 if str matches pat. At
 * most strlen(pat) * strlen(str) steps, whatever the pattern.
 */
int clink__sql_like(const char *pat, const char *str);
/* 'user'@'host', `user`@`host`, user@host or 'user' (host %). 0, or -1. */
int clink__sql_account_name(struct clink__sql *s, char *user, size_t ucap, char *host, size_t hcap);
/*
 * What follows SHOW GRANTS: nothing, FOR CURRENT_USER[()] (1: the session's
 * own account), or FOR an account name (0: [out] user and host). -1: not
 * that statement.
 */
int clink__sql_show_grants_target(struct clink__sql *s, char *user, size_t ucap, char *host, size_t hcap);
/*
 * in as a single-quoted SQL string ('' around it, a quote and a backslash
 * escaped with a backslash, as MySQL writes strings in SHOW GRANTS), into
 * out. Returns the length, or 0 when it does not fit (out is then "").
 */
size_t clink__sql_quote(const char *in, char *out, size_t cap);

/* mysql_accounts.c. 1 if the session's account holds grant ALL; else 0, answered with 1227 naming privilege. */
int clink__mysql_may_administer(struct clink_mysql_stmt *st, const char *privilege);
/* Each returns -1 for a statement it does not parse (the caller answers 1064), else 0. */
int clink__mysql_account_stmt(struct clink_mysql_stmt *st, struct clink__sql *s, const char *verb,
                              const struct clink_mysql_builtin_opts *o);
int clink__mysql_show_grants(struct clink_mysql_stmt *st, struct clink__sql *s);
int clink__mysql_flush(struct clink_mysql_stmt *st, struct clink__sql *s);

#endif
