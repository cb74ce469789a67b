/*
 * clink's MySQL-protocol front door (docs/mysql.md). A node whose options
 * point `mysql` at a struct clink_mysql_opts also serves standard MySQL clients and drivers on its port,
 * beside clink's native clients: the server greeting (protocol 10,
 * CLIENT_SSL), the SSL request and TLS handshake through the node's own TLS
 * context, then a login against the node's accounts (mysql_native_password,
 * or caching_sha2_password's full authentication inside TLS), then the
 * command phase. Each statement (COM_QUERY) goes to a hook that the
 * embedding database replaces; clink_mysql_builtin is the default and
 * answers what the mysql client and drivers need to connect, report status
 * and manage accounts.
 *
 * The door answers by itself what drivers and ORMs send on connect (SELECT
 * of @@variables and VERSION(), DATABASE(), USER(), CONNECTION_ID(),
 * NOW()...; SET of session variables, remembered per connection; SHOW
 * VARIABLES; SHOW WARNINGS; BEGIN, COMMIT, ROLLBACK as no-ops), and
 * COM_PING, COM_STATISTICS, COM_INIT_DB, COM_RESET_CONNECTION,
 * COM_SET_OPTION, COM_FIELD_LIST (docs/mysql.md, "Session variables"), and
 * COM_CHANGE_USER: a whole login again on the same connection, by the first
 * login's rules (a failure closes the connection). The
 * hook comes first: a statement it answers is its own; one it returns from
 * without answering goes to the door's answers, and one the door does not
 * know either gets error 1105.
 *
 * Threads: a hook runs on the connection's worker and answers before it
 * returns, at most once, with one of clink_mysql_ok/error/rows (or not at
 * all, above).
 */
#ifndef CLINK_MYSQL_H
#define CLINK_MYSQL_H

#include <stddef.h>
#include <stdint.h>

#include "clink/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct clink_accounts;
struct clink_conn;
struct clink_node;
struct clink_mysql_stmt; /* one statement of one MySQL-protocol connection, until it is answered */

typedef void (*clink_mysql_query_fn)(struct clink_mysql_stmt *st, const char *sql, size_t len, void *user);

/* The MySQL front door of a node (clink_node_opts.mysql). */
struct clink_mysql_opts {
    clink_mysql_query_fn query; /* each statement; NULL: clink_mysql_builtin */
    void *query_user;           /* its last argument (clink_mysql_builtin: a struct clink_mysql_builtin_opts) */
};

/* Answer with an OK packet. info: shown by the client (NULL: none). Returns 0 or -CLINK_EINVAL (answered already). */
CLINK_API CLINK_MUST_USE int clink_mysql_ok(struct clink_mysql_stmt *st, uint64_t affected_rows, const char *info);

/* Answer with MySQL error code (e.g. 1064), its SQLSTATE (5 characters, e.g. "42000") and a message. */
CLINK_API CLINK_MUST_USE int clink_mysql_error(struct clink_mysql_stmt *st, unsigned code, const char *sqlstate,
                                               const char *msg);

/*
 * Answer with a result set of text columns: names[ncols], cells[nrows *
 * ncols] row by row, NULL for SQL NULL. Returns 0, -CLINK_EINVAL, or
 * -CLINK_EFRAMETOOBIG (a row over the packet limit).
 */
CLINK_API CLINK_MUST_USE int clink_mysql_rows(struct clink_mysql_stmt *st, unsigned ncols, const char *const *names,
                                              unsigned nrows, const char *const *cells);

/* Who and where: "user" as the client logged in, the account it matched ("user@host-pattern"), the current database
 * ("" for none), the connection (for clink_conn_status) and its node. Valid during the hook. */
CLINK_API const char *clink_mysql_user(const struct clink_mysql_stmt *st);
CLINK_API const char *clink_mysql_client_host(const struct clink_mysql_stmt *st);
CLINK_API const char *clink_mysql_account(const struct clink_mysql_stmt *st);
CLINK_API const char *clink_mysql_db(const struct clink_mysql_stmt *st);
CLINK_API struct clink_conn *clink_mysql_conn(const struct clink_mysql_stmt *st);
CLINK_API struct clink_node *clink_mysql_node(const struct clink_mysql_stmt *st);
/* The node's accounts (a hook that manages accounts, as clink_mysql_builtin's CREATE USER does); NULL if none. */
CLINK_API struct clink_accounts *clink_mysql_accounts(const struct clink_mysql_stmt *st);

/* What the built-in statements need from the embedding program (all optional). */
struct clink_mysql_builtin_opts {
    /* ALTER INSTANCE RELOAD TLS: reload the node's certificate, key and CA files; 0 or negative with err. */
    int (*reload_tls)(void *user, char *err, size_t errlen);
    void *reload_user;
    /*
     * 0 (default): GRANT to an account that does not exist makes it, as
     * MySQL 5.x and MemSQL do (with IDENTIFIED BY's password, else none: it
     * then logs in only with a verified client certificate). 1: refused
     * with 1410, as MySQL 8 does (5.7's sql_mode NO_AUTO_CREATE_USER); the
     * config's grant_creates_user = OFF. Read with a relaxed atomic load at
     * each GRANT, so the program may change it while the node runs, with
     * __atomic_store_n (clink_server does at a reload).
     */
    int no_auto_create_user;
};

/*
 * The default statement hook (user: a struct clink_mysql_builtin_opts or
 * NULL). It answers, case-insensitively:
 *   SHOW [SESSION|GLOBAL] STATUS [LIKE 'pattern']: Ssl_cipher, Ssl_version,
 *     Ssl_session_reused, Ssl_ktls (this connection's kTLS state);
 *   CREATE/ALTER/DROP USER, GRANT ALL|USAGE ON *.* (which makes a missing
 *     account unless opts->no_auto_create_user), REVOKE ALL ON *.*, FLUSH
 *     PRIVILEGES (the accounts file read again): only by an account with
 *     grant ALL (else 1227);
 *   SHOW GRANTS [FOR CURRENT_USER | FOR 'u'@'h']: the account as a GRANT
 *     statement (another account's: grant ALL, else 1044);
 *   ALTER INSTANCE RELOAD TLS (with opts->reload_tls);
 * then the door's own answers (SELECT @@..., SET, SHOW VARIABLES, above),
 * and anything else with error 1064 (ER_PARSE_ERROR) naming the statement.
 * A hook that calls it for the statements it does not know gets the same.
 */
CLINK_API void clink_mysql_builtin(struct clink_mysql_stmt *st, const char *sql, size_t len, void *user);

#ifdef __cplusplus
}
#endif
#endif
