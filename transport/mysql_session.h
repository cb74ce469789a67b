/*
 * The MySQL front door's own answers (docs/mysql.md, "Session variables"):
 * what drivers and ORMs send on connect, answered by the door when the
 * embedder's statement hook leaves a statement unanswered, and before
 * clink_mysql_builtin's 1064. Three parts:
 *   - the per-connection session variables a SET changed (mysql_session.c),
 *     bounded per connection;
 *   - the readers of SET and SELECT lists (mysql_session.c,
 *     mysql_select.c): pure, fuzzed by fuzz/fuzz_mysql.c;
 *   - the answers themselves on a statement (mysql_answers.c).
 */
#ifndef CLINK_TRANSPORT_MYSQL_SESSION_H
#define CLINK_TRANSPORT_MYSQL_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "clink/mysql.h"
#include "transport/mysql_sql.h"
#include "transport/mysql_vars.h"

/*
 * Bounds per connection on what SET may make the node keep: variables
 * changed from their defaults (those clink knows and those it does not),
 * and their names and values together, in bytes. One value is at most
 * CLINK_MYSQL_VAR_VALUE_MAX bytes. One SET has at most
 * CLINK_MYSQL_SET_ITEMS assignments (SET NAMES counts as 4).
 */
#define CLINK_MYSQL_SESSION_VARS  32
#define CLINK_MYSQL_SESSION_BYTES 4096
#define CLINK_MYSQL_SET_ITEMS     16
/* One SELECT list has at most this many items. */
#define CLINK_MYSQL_SELECT_ITEMS 32

struct clink__session_var {
    char *name;  /* lowercase; one allocation with the value */
    char *value; /* NULL: SQL NULL */
};

struct clink__mysql_session {
    unsigned n;
    size_t bytes;
    struct clink__session_var v[CLINK_MYSQL_SESSION_VARS];
    int multi_statements; /* COM_SET_OPTION: remembered; statements are still sent to the hook whole */
};

/* Forget every variable (COM_RESET_CONNECTION, the connection's end). */
void clink__session_clear(struct clink__mysql_session *s);
/* 1 if name was SET in this session, with [out] *value (NULL: SQL NULL); else 0. */
int clink__session_get(const struct clink__mysql_session *s, const char *name, const char **value);

/* One assignment of a SET, as read. */
struct clink__set_item {
    char name[CLINK_MYSQL_VAR_NAME_MAX + 1]; /* lowercase */
    char value[CLINK_MYSQL_VAR_VALUE_MAX + 1];
    int is_null, is_default, global;
};

/*
 * What follows SET: [SESSION|LOCAL|GLOBAL] name = value, @@[session.]name =
 * value, NAMES cs [COLLATE c], CHARACTER SET cs, [SESSION] TRANSACTION
 * ISOLATION LEVEL ... | READ ONLY | READ WRITE, comma-separated. Items into
 * items[cap]. Returns their count (0: a SET TRANSACTION for the next
 * transaction only, which changes nothing here), or -1: not a SET clink
 * reads (a user variable, too many items, a value too long).
 */
int clink__set_parse(struct clink__sql *s, struct clink__set_item *items, unsigned cap);

/*
 * Check the items of one SET against the variables (all or none apply, as
 * in MySQL) and apply them to s. Returns 0, or a MySQL error code with
 * [out] msg: 1227 (GLOBAL), 1231, 1238, 1229, 1621 (clink__var_check),
 * 1105 (past this connection's bounds).
 */
int clink__session_set(struct clink__mysql_session *s, const struct clink__set_item *items, unsigned n, char *msg,
                       size_t msgcap);

enum clink__select_kind {
    CLINK_SEL_VAR = 1, /* @@[session.|local.|global.]name */
    CLINK_SEL_FUNC,
    CLINK_SEL_NUMBER,
    CLINK_SEL_STRING,
    CLINK_SEL_NULL,
};

enum clink__select_func {
    CLINK_FN_VERSION = 1,
    CLINK_FN_DATABASE,     /* and SCHEMA() */
    CLINK_FN_USER,         /* and SESSION_USER(), SYSTEM_USER() */
    CLINK_FN_CURRENT_USER, /* CURRENT_USER[()] */
    CLINK_FN_CONNECTION_ID,
    CLINK_FN_NOW, /* and CURRENT_TIMESTAMP[()], SYSDATE() */
    CLINK_FN_LAST_INSERT_ID,
};

struct clink__select_item {
    enum clink__select_kind kind;
    enum clink__select_func func;
    char var[CLINK_MYSQL_VAR_NAME_MAX + 1];   /* CLINK_SEL_VAR: lowercase, without @@ and scope */
    char text[CLINK_MYSQL_VAR_VALUE_MAX + 1]; /* a literal's value */
    char name[251]; /* the column: the alias, else the text as written (a string: its value), cut at 250 */
};

/*
 * What follows SELECT: item [[AS] alias], ... [FROM DUAL] [LIMIT n[, m]]
 * with the items above. Items into items[cap]; [out] *limited set when
 * LIMIT 0 asks for no row. Returns their count, or -1.
 */
int clink__select_parse(struct clink__sql *s, struct clink__select_item *items, unsigned cap, int *limited);

/* mysql.c: this statement's connection's session, its id (the greeting's), the node's wait_timeout. */
struct clink__mysql_session *clink__mysql_session_of(struct clink_mysql_stmt *st);
uint32_t clink__mysql_conn_id(const struct clink_mysql_stmt *st);
uint32_t clink__mysql_wait_timeout(const struct clink_mysql_stmt *st);

/*
 * Answer st if it is one of the door's statements (SELECT of variables,
 * functions and literals; SET; SHOW VARIABLES; SHOW WARNINGS / ERRORS;
 * BEGIN, START TRANSACTION, COMMIT, ROLLBACK). Returns 1 if answered, 0 if
 * not one of them (st is then unanswered).
 */
int clink__mysql_session_answer(struct clink_mysql_stmt *st, const char *sql, size_t len);

#endif
