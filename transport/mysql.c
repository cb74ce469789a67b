/*
 * The MySQL-protocol front door on a node's port (clink/mysql.h,
 * docs/mysql.md): the connection phase after the greeting (SSL request,
 * login with mysql_native_password or caching_sha2_password) and the command
 * phase: clink__proto_mysql. It runs on the connection's worker, fed by the
 * connection core (conn_io.c) with the client's plaintext bytes (before TLS)
 * or OpenSSL's decrypted ones.
 */
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/accounts.h"
#include "clink/mysql.h"
#include "transport/conn_int.h"
#include "transport/mysql_proto.h"
#include "transport/mysql_session.h"

enum my_state {
    MY_RESPONSE = 1, /* the client's answer to the greeting (or its SSL request) */
    MY_SWITCHED,     /* the answer to our AuthSwitchRequest (mysql_native_password) */
    MY_FULL_AUTH,    /* caching_sha2_password: the password itself, inside TLS */
    MY_COMMAND,
    MY_DONE, /* closing: nothing more is read */
};

struct clink__mysql {
    enum my_state state;
    uint8_t seq; /* of the next packet we send */
    uint32_t caps;
    char user[65];
    char host[64];
    char db[65];
    int gave_password;
    /*
     * COM_CHANGE_USER is being authenticated: the session is logged in (as
     * cache.account) until it succeeds; a failure closes the connection.
     */
    int changing;
    int cannot_switch; /* a native answer inside TLS from a client without CLIENT_PLUGIN_AUTH (the `mysql` package) */
    struct clink__mysql_session sess; /* what SET changed (mysql_session.c) */
};

struct clink_mysql_stmt {
    struct clink_conn *c;
    int answered;
};

static const char native[] = "mysql_native_password";
static const char sha2[] = "caching_sha2_password";

/* One packet out, with its header; payloads of at most CLINK_MYSQL_MAX_PACKET. */
static int send_packet(struct clink_conn *c, const uint8_t *p, size_t n)
{
    struct clink__bytes *out = clink__conn_out(c);
    if (n >= 0xffffff || clink__bytes_reserve(out, CLINK_MYSQL_HDR + n) < 0) {
        return -CLINK_ENOMEM;
    }
    uint8_t *h = out->base + out->tail;
    h[0] = (uint8_t)n;
    h[1] = (uint8_t)(n >> 8);
    h[2] = (uint8_t)(n >> 16);
    h[3] = c->my->seq++;
    memcpy(h + CLINK_MYSQL_HDR, p, n);
    out->tail += CLINK_MYSQL_HDR + n;
    clink__mark_dirty(c);
    return 0;
}

/* The status flags of OK and EOF: autocommit as this session has it. */
static uint16_t status_flags(struct clink_conn *c)
{
    const char *v = NULL;
    int off = c->my != NULL && clink__session_get(&c->my->sess, "autocommit", &v) && v != NULL && strcmp(v, "0") == 0;
    return off ? 0 : CLINK_MY_STATUS_AUTOCOMMIT;
}

static void send_ok(struct clink_conn *c, uint64_t affected, const char *info)
{
    uint8_t b[600];
    char cut[512];
    snprintf(cut, sizeof(cut), "%s", info ? info : ""); /* a longer info is cut, never an empty packet */
    size_t n = clink__mysql_ok(b, sizeof(b), affected, status_flags(c), cut);
    CLINK_IGNORE(send_packet(c, b, n) < 0);
}

static void send_err(struct clink_conn *c, uint16_t code, const char *state, const char *msg)
{
    uint8_t b[600];
    size_t n = clink__mysql_err(b, sizeof(b), code, state, msg);
    CLINK_IGNORE(send_packet(c, b, n) < 0);
}

/* A refusal: the error goes out, then the connection closes (the client reads the error first). */
static void refuse(struct clink_conn *c, uint16_t code, const char *state, const char *msg, int err, const char *why)
{
    send_err(c, code, state, msg);
    c->my->state = MY_DONE;
    clink__conn_refuse(c, err, "MySQL client: %s (%s)", msg, why);
}

/* The SSL request: server TLS for a MySQL client, its ClientHello next. */
static int start_tls(struct clink_conn *c)
{
    int ret = clink__conn_server_tls(c, &c->node->tls);
    if (ret == 0) {
        ret = clink__tls_serve_other(c->tls, "clink-mysql");
    }
    if (ret < 0) {
        return ret;
    }
    c->mode = CLINK_MODE_TLS;
    c->state = CS_HANDSHAKE; /* the ClientHello follows the SSL request: on_input steps the handshake */
    c->want = 5;
    return 0;
}

void clink__mysql_start(struct clink_conn *c)
{
    c->proto = &clink__proto_mysql;
    c->my = calloc(1, sizeof(*c->my));
    if (c->my == NULL) {
        clink__conn_refuse(c, -CLINK_ENOMEM, "out of memory");
        return;
    }
    c->my->state = MY_RESPONSE;
    c->my->seq = 1; /* the greeting was 0 */
    clink__conn_peer_host(c, c->my->host, sizeof(c->my->host));
}

static void mysql_free(struct clink_conn *c)
{
    if (c->my != NULL) {
        clink__session_clear(&c->my->sess);
    }
    free(c->my);
    c->my = NULL;
}

static void denied(struct clink_conn *c, const char *why)
{
    char msg[200], base[160];
    char shown[sizeof(c->my->user)];
    clink__conn_shown_name(c->my->user, shown, sizeof(shown));
    clink_access_denied(shown, c->my->host, base, sizeof(base));
    snprintf(msg, sizeof(msg), "%s (using password: %s)", base, c->my->gave_password ? "YES" : "NO");
    STAT_ADD(c->w, logins_denied, 1);
    const char *hint = c->my->cannot_switch ? "; the client has no CLIENT_PLUGIN_AUTH, so it cannot be switched to "
                                              "caching_sha2_password: legacy_native_tls = ON on the account would "
                                              "accept its mysql_native_password answer inside TLS"
                                            : "";
    if (clink__conn_refusal_log_ok(c)) {
        CLINK_CONN_LOG(c, CLINK_LOG_WARN, "%s: MySQL client%s: %s (%s%s)", clink__conn_peer(c),
                       c->my->changing ? " (COM_CHANGE_USER)" : "", msg, why, hint);
    }
    refuse(c, 1045, "28000", msg, -CLINK_EACCESS, why);
}

/* Count the session against the node's limits (conn_limits.c); refused in MySQL's own words. 1 if admitted. */
static int admitted(struct clink_conn *c)
{
    char msg[200];
    switch (clink__conn_limits_admit(c, 0)) {
    case LIMIT_OK:
        return 1;
    case LIMIT_USER:
        /* ER_TOO_MANY_USER_CONNECTIONS, with the user name as MySQL gives it */
        snprintf(msg, sizeof(msg), "User %s already has more than 'max_user_connections' active connections",
                 c->my->user);
        refuse(c, 1203, "42000", msg, -CLINK_ETOOMANY, "max_user_connections reached");
        return 0;
    case LIMIT_CONNECTIONS:
    case LIMIT_LINKS:
        break;
    }
    refuse(c, 1040, "08004", "Too many connections", -CLINK_ETOOMANY,
           "max_connections reached"); /* ER_CON_COUNT_ERROR */
    return 0;
}

/*
 * What this connection shows a login: its TLS state and client certificate.
 * Before a kTLS hand-off from the SSL; after it (a COM_CHANGE_USER on a
 * connection the kernel encrypts) from what was kept: the cipher in the
 * status, the certificate as DER (a client certificate that was sent had to
 * verify, and a TLS reload that no longer trusts it closes the connection:
 * conn_recheck.c). [out] *owned: a certificate to free after the check.
 */
static void login_facts(struct clink_conn *c, struct clink_login *l, X509 **owned)
{
    *owned = NULL;
    l->user = c->my->user;
    l->host = c->my->host;
    l->tls = c->has_tls;
    l->scramble = c->scramble;
    if (!c->has_tls) {
        return;
    }
    if (c->tls != NULL) {
        const X509 *cert = SSL_get0_peer_certificate(c->tls->ssl);
        l->cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(c->tls->ssl));
        l->peer_cert = cert;
        l->peer_verified = cert != NULL && SSL_get_verify_result(c->tls->ssl) == X509_V_OK;
        return;
    }
    l->cipher = c->cache.cipher[0] ? c->cache.cipher : NULL;
    if (c->peer_der != NULL && c->peer_der_len > 0) {
        const uint8_t *p = c->peer_der;
        *owned = d2i_X509(NULL, &p, (long)c->peer_der_len); /* the leaf comes first */
        l->peer_cert = *owned;
        l->peer_verified = *owned != NULL;
    }
}

/*
 * A COM_CHANGE_USER passed the account check as `matched`: the session's
 * max_user_connections slot moves to that account, or the change is refused
 * in MySQL's words and the connection closes, as after any failed change.
 * 1 if moved.
 */
static int moved(struct clink_conn *c, const char *matched)
{
    if (clink__conn_limits_move(c, matched) == LIMIT_OK) {
        return 1;
    }
    char msg[200];
    snprintf(msg, sizeof(msg), "User %s already has more than 'max_user_connections' active connections", c->my->user);
    refuse(c, 1203, "42000", msg, -CLINK_ETOOMANY, "COM_CHANGE_USER: max_user_connections reached");
    return 0;
}

/* Check a login against the node's accounts; on success the client gets OK and the command phase starts. */
static void login(struct clink_conn *c, enum clink_login_method method, const uint8_t *auth, size_t len)
{
    struct clink_login l = {.method = method, .auth = auth, .auth_len = len};
    X509 *owned;
    login_facts(c, &l, &owned);
    char why[256] = "", matched[sizeof(c->cache.account)] = "";
    /* An account without a password and a client without a verified certificate: the accounts' rule refuses it. */
    int ret = clink_accounts_check(c->node->accounts, &l, matched, sizeof(matched), why, sizeof(why));
    X509_free(owned);
    if (ret < 0) {
        denied(c, why);
        return;
    }
    STAT_ADD(c->w, logins_ok, 1); /* the account check passed, as on the native port, whatever the limits say */
    int changed = c->my->changing;
    if (changed) {
        if (!moved(c, matched)) {
            return;
        }
    } else {
        snprintf(c->cache.account, sizeof(c->cache.account), "%s", matched);
        if (!admitted(c)) {
            return;
        }
    }
    STAT_ADD(c->w, mysql_logins, 1);
    if (method == CLINK_LOGIN_SCRAMBLE && c->has_tls) {
        clink__conn_legacy_login(c); /* an account with legacy_native_tls: counted and logged */
    }
    c->my->state = MY_COMMAND;
    c->my->changing = 0;
    c->my->cannot_switch = 0;
    if (changed) {
        /* A new session on the same connection, as MySQL makes it: the variables back to their defaults. */
        clink__session_clear(&c->my->sess);
        send_ok(c, 0, NULL);
        CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: MySQL client changed user to %s (COM_CHANGE_USER)", clink__conn_peer(c),
                       c->cache.account);
        return;
    }
    send_ok(c, 0, NULL);
    c->cache.mysql = 1;
    clink__conn_became_open(c); /* counted as open; not announced to on_conn (statements, not calls) */
    CLINK_CONN_LOG(c, CLINK_LOG_INFO, "%s: MySQL client logged in as %s (%s)", clink__conn_peer(c), c->cache.account,
                   c->has_tls ? SSL_get_version(c->tls->ssl) : "plaintext");
}

/* AuthSwitchRequest: answer with this plugin (name with its NUL), for the same scramble. */
static void auth_switch(struct clink_conn *c, const char *plugin, size_t plugin_size)
{
    uint8_t b[64];
    size_t n = 0;
    b[n++] = 0xfe;
    memcpy(b + n, plugin, plugin_size);
    n += plugin_size;
    memcpy(b + n, c->scramble, CLINK_SCRAMBLE_LEN);
    n += CLINK_SCRAMBLE_LEN;
    b[n++] = 0;
    c->my->state = MY_SWITCHED;
    CLINK_IGNORE(send_packet(c, b, n) < 0);
}

/*
 * caching_sha2_password with no cache of its fast hash: always the full
 * authentication, which inside TLS is the password itself (checked against
 * the account's SHA-256 crypt verifier).
 */
static void full_auth(struct clink_conn *c)
{
    static const uint8_t perform_full_authentication[2] = {0x01, 0x04};
    c->my->state = MY_FULL_AUTH;
    CLINK_IGNORE(send_packet(c, perform_full_authentication, sizeof(perform_full_authentication)) < 0);
}

/*
 * The login a handshake response or a COM_CHANGE_USER asks for (user, auth
 * response, database, plugin in r): the same rules for both, on this
 * connection's transport.
 */
static void authenticate(struct clink_conn *c, const struct clink__mysql_response *r)
{
    snprintf(c->my->user, sizeof(c->my->user), "%s", r->user);
    snprintf(c->my->db, sizeof(c->my->db), "%s", r->db);
    c->my->gave_password = r->auth_len > 0;
    if (!c->has_tls && (!c->node->opts.allow_plaintext || atomic_load(&c->node->secure) == CLINK_SECURE_REQUIRE_TLS)) {
        /* require_secure_transport: MySQL's own words, before any password is looked at. */
        refuse(c, 3159, "HY000",
               "Connections using insecure transport are prohibited while --require_secure_transport=ON.",
               -CLINK_EPLAINTEXT, "plaintext login refused: TLS is required on this node");
        STAT_ADD(c->w, logins_denied, 1);
        return;
    }
    if (r->auth_len == 0) {
        login(c, CLINK_LOGIN_NONE, NULL, 0);
        return;
    }
    /*
     * No plugin named (a client without CLIENT_PLUGIN_AUTH, such as the
     * `mysql` Node package, or a COM_CHANGE_USER without one): a 20-byte
     * answer is mysql_native_password's, as MySQL takes it. Such a client
     * cannot be sent an AuthSwitchRequest for caching_sha2_password.
     */
    int native_answer = r->auth_len == CLINK_SCRAMBLE_LEN && (strcmp(r->plugin, native) == 0 || r->plugin[0] == '\0');
    int cannot_switch = !(r->caps & CLINK_MY_PLUGIN_AUTH);
    if (native_answer && (!c->has_tls || cannot_switch ||
                          clink_accounts_legacy_native_tls(c->node->accounts, c->my->user, c->my->host))) {
        /*
         * In plaintext, the one proof that keeps the password off the wire.
         * Inside TLS only for an account that opted in (legacy_native_tls):
         * the answer is not bound to this session, and a server the client
         * did not verify could have relayed it here (docs/SECURITY.md). A
         * client that cannot switch plugins is checked too, so that it gets
         * Access denied, and the log the account option that would let it in.
         */
        c->my->cannot_switch = c->has_tls && cannot_switch;
        login(c, CLINK_LOGIN_SCRAMBLE, r->auth, r->auth_len);
        return;
    }
    if (c->has_tls && strcmp(r->plugin, sha2) == 0) {
        full_auth(c);
    } else if (c->has_tls) {
        /* Another plugin (mysql_native_password, sha256_password, dialog...): caching_sha2_password's full exchange. */
        auth_switch(c, sha2, sizeof(sha2));
    } else {
        /* Plaintext: only mysql_native_password's scramble answer (the password never crosses the wire). */
        auth_switch(c, native, sizeof(native));
    }
}

static void on_response(struct clink_conn *c, const uint8_t *p, size_t n)
{
    struct clink__mysql_response r;
    if (clink__mysql_parse_response(p, n, &r) < 0) {
        refuse(c, 1043, "08S01", "Bad handshake", -CLINK_EPROTO, "malformed handshake response");
        return;
    }
    c->my->caps = r.caps;
    if (r.ssl_request) {
        if (c->has_tls) {
            refuse(c, 1043, "08S01", "Bad handshake", -CLINK_EPROTO, "a second SSL request");
            return;
        }
        if (atomic_load(&c->node->secure) == CLINK_SECURE_PLAINTEXT) {
            refuse(c, 1043, "08S01", "Bad handshake", -CLINK_EPLAINTEXT,
                   "SSL requested, but this node accepts plaintext only (PLAINTEXT)");
            return;
        }
        int ret = start_tls(c); /* the client's ClientHello follows at once */
        if (ret == -CLINK_EPLAINTEXT) {
            refuse(c, 1043, "08S01", "Bad handshake", -CLINK_EPROTO,
                   "SSL requested, but this node has no TLS identity");
            return;
        }
        if (ret < 0) {
            clink__conn_refuse(c, ret, "MySQL client: TLS setup failed");
        }
        return;
    }
    authenticate(c, &r);
}

static void on_switched(struct clink_conn *c, const uint8_t *p, size_t n)
{
    if (n == 0) {
        login(c, CLINK_LOGIN_NONE, NULL, 0);
        return;
    }
    if (c->has_tls) {
        /*
         * Switched to caching_sha2_password: whatever its answer (32 bytes,
         * or 20 from a client that still answers as mysql_native_password),
         * the password itself follows inside TLS. A 20-byte answer is never
         * checked as an unbound scramble here: that is what a relay sends.
         */
        full_auth(c);
        return;
    }
    login(c, CLINK_LOGIN_SCRAMBLE, p, n); /* plaintext: switched to mysql_native_password */
}

static void on_full_auth(struct clink_conn *c, uint8_t *p, size_t n)
{
    /* The password, NUL-terminated; only ever inside TLS (we never ask for it otherwise). */
    size_t len = n > 0 && p[n - 1] == 0 ? n - 1 : n;
    if (!c->has_tls || len > CLINK_PASSWORD_MAX) {
        denied(c, !c->has_tls ? "cleartext password outside TLS" : "password too long");
    } else {
        login(c, CLINK_LOGIN_CLEARTEXT, p, len);
    }
    OPENSSL_cleanse(p, n);
}

/* ---- statements ---- */

int clink_mysql_ok(struct clink_mysql_stmt *st, uint64_t affected_rows, const char *info)
{
    if (st == NULL || st->answered) {
        return -CLINK_EINVAL;
    }
    st->answered = 1;
    send_ok(st->c, affected_rows, info);
    return 0;
}

int clink_mysql_error(struct clink_mysql_stmt *st, unsigned code, const char *sqlstate, const char *msg)
{
    if (st == NULL || st->answered || sqlstate == NULL || strlen(sqlstate) != 5 || msg == NULL || code > 0xffff) {
        return -CLINK_EINVAL;
    }
    st->answered = 1;
    send_err(st->c, (uint16_t)code, sqlstate, msg);
    return 0;
}

int clink_mysql_rows(struct clink_mysql_stmt *st, unsigned ncols, const char *const *names, unsigned nrows,
                     const char *const *cells)
{
    if (st == NULL || st->answered || ncols == 0 || ncols > 4096 || names == NULL || (nrows > 0 && cells == NULL)) {
        return -CLINK_EINVAL;
    }
    for (unsigned k = 0; k < ncols; k++) {
        if (names[k] != NULL && strlen(names[k]) > 250) {
            return -CLINK_EINVAL; /* a column name is at most 250 bytes here */
        }
    }
    struct clink_conn *c = st->c;
    size_t cap = 64 * 1024;
    for (unsigned r = 0; r < nrows; r++) {
        size_t need = 0;
        for (unsigned k = 0; k < ncols; k++) {
            const char *v = cells[(size_t)r * ncols + k];
            need += v ? 9 + strlen(v) : 1;
        }
        if (need > CLINK_MYSQL_MAX_PACKET) {
            return -CLINK_EFRAMETOOBIG;
        }
        cap = need > cap ? need : cap;
    }
    uint8_t *b = malloc(cap);
    if (b == NULL) {
        return -CLINK_ENOMEM;
    }
    st->answered = 1;
    size_t n = clink__mysql_lenenc_put(b, ncols);
    CLINK_IGNORE(send_packet(c, b, n) < 0);
    for (unsigned k = 0; k < ncols; k++) {
        n = clink__mysql_coldef(b, cap, names[k] ? names[k] : "");
        CLINK_IGNORE(send_packet(c, b, n) < 0);
    }
    n = clink__mysql_eof(b, cap, status_flags(c));
    CLINK_IGNORE(send_packet(c, b, n) < 0);
    for (unsigned r = 0; r < nrows; r++) {
        n = clink__mysql_row(b, cap, cells + (size_t)r * ncols, ncols);
        CLINK_IGNORE(send_packet(c, b, n) < 0);
    }
    n = clink__mysql_eof(b, cap, status_flags(c));
    CLINK_IGNORE(send_packet(c, b, n) < 0);
    free(b);
    return 0;
}

const char *clink_mysql_user(const struct clink_mysql_stmt *st)
{
    return st->c->my->user;
}

const char *clink_mysql_client_host(const struct clink_mysql_stmt *st)
{
    return st->c->my->host;
}

const char *clink_mysql_account(const struct clink_mysql_stmt *st)
{
    return st->c->cache.account;
}

const char *clink_mysql_db(const struct clink_mysql_stmt *st)
{
    return st->c->my->db;
}

struct clink_conn *clink_mysql_conn(const struct clink_mysql_stmt *st)
{
    return st->c;
}

struct clink_node *clink_mysql_node(const struct clink_mysql_stmt *st)
{
    return st->c->node;
}

struct clink_accounts *clink_mysql_accounts(const struct clink_mysql_stmt *st)
{
    return st->c->node->accounts;
}

struct clink__mysql_session *clink__mysql_session_of(struct clink_mysql_stmt *st)
{
    return &st->c->my->sess;
}

uint32_t clink__mysql_conn_id(const struct clink_mysql_stmt *st)
{
    return (uint32_t)st->c->id; /* as the greeting gave it */
}

uint32_t clink__mysql_wait_timeout(const struct clink_mysql_stmt *st)
{
    return st->c->node->opts.wait_timeout_s;
}

/* COM_SET_OPTION: multi-statements on (0) or off (1), answered with EOF as MySQL does; anything else 1047. */
static void set_option(struct clink_conn *c, const uint8_t *p, size_t n)
{
    int on = clink__mysql_set_option(p, n);
    if (on < 0) {
        send_err(c, 1047, "08S01", "Unknown command");
        return;
    }
    c->my->sess.multi_statements = on == 0;
    uint8_t b[8];
    size_t k = clink__mysql_eof(b, sizeof(b), status_flags(c));
    CLINK_IGNORE(send_packet(c, b, k) < 0);
}

/*
 * COM_FIELD_LIST (deprecated in MySQL 8.0; the mysql client's table-name
 * completion sends it): clink's door has no tables to list, so the answer
 * is MySQL's for a table that is not there.
 */
static void field_list(struct clink_conn *c, const uint8_t *p, size_t n)
{
    char table[65], msg[200];
    if (c->my->db[0] == '\0') {
        send_err(c, 1046, "3D000", "No database selected");
        return;
    }
    clink__mysql_field_list_table(p, n, table, sizeof(table));
    snprintf(msg, sizeof(msg), "Table '%s.%s' doesn't exist", c->my->db, table);
    for (char *q = msg; *q; q++) {
        if ((unsigned char)*q < 0x20 || *q == 0x7f) {
            *q = '?'; /* a client's bytes (the database name too) do not shape the message */
        }
    }
    send_err(c, 1146, "42S02", msg);
}

/*
 * COM_CHANGE_USER: a whole login again on this connection, as the first one
 * (authenticate), through the login throttle and the account's REQUIRE
 * against this connection's TLS state. On success the session is the new
 * account's (its max_user_connections slot moved, the variables reset, the
 * database set); on failure MySQL's error, then the connection closes: a
 * failed change is a failed login (docs/mysql.md says how MySQL differs).
 */
static void change_user(struct clink_conn *c, uint8_t *p, size_t n)
{
    struct clink__mysql_response r;
    if (clink__mysql_parse_change_user(p, n, c->my->caps, &r) < 0) {
        refuse(c, 1047, "08S01", "Unknown command", -CLINK_EPROTO, "malformed COM_CHANGE_USER");
    } else {
        c->my->changing = 1;
        authenticate(c, &r);
    }
    OPENSSL_cleanse(p, n); /* its auth response is a password proof */
}

static void on_command(struct clink_conn *c, uint8_t *p, size_t n)
{
    if (n == 0) {
        send_err(c, 1047, "08S01", "Unknown command");
        return;
    }
    switch (p[0]) {
    case CLINK_MY_COM_QUIT:
        c->my->state = MY_DONE;
        clink__conn_close_orderly(c);
        return;
    case CLINK_MY_COM_PING:
        send_ok(c, 0, NULL);
        return;
    case CLINK_MY_COM_INIT_DB:
        if (n - 1 >= sizeof(c->my->db) || memchr(p + 1, 0, n - 1) != NULL) {
            send_err(c, 1102, "42000", "Incorrect database name");
            return;
        }
        memcpy(c->my->db, p + 1, n - 1);
        c->my->db[n - 1] = '\0';
        send_ok(c, 0, NULL);
        return;
    case CLINK_MY_COM_STATISTICS: {
        struct clink_node_stats s;
        clink_node_get_stats(c->node, &s);
        /* MySQL's own line (the mysql client's status command parses its Uptime), then clink's. */
        char b[300];
        uint64_t up = (clink__now_ns() - c->node->start_ns) / 1000000000ull;
        int k = snprintf(b, sizeof(b),
                         "Uptime: %llu  Threads: %llu  Questions: %llu  Slow queries: 0  Opens: 0  Open tables: 0  "
                         "Queries per second avg: %.3f  Logins: %llu  Refused: %llu",
                         (unsigned long long)up, (unsigned long long)s.conns_open, (unsigned long long)s.mysql_queries,
                         up ? (double)s.mysql_queries / (double)up : 0.0, (unsigned long long)s.logins_ok,
                         (unsigned long long)s.conns_refused);
        CLINK_IGNORE(send_packet(c, (const uint8_t *)b, (size_t)k) < 0);
        return;
    }
    case CLINK_MY_COM_QUERY: {
        STAT_ADD(c->w, mysql_queries, 1);
        struct clink_mysql_stmt st = {.c = c};
        const struct clink_mysql_opts *mo = c->node->opts.mysql;
        clink_mysql_query_fn fn = mo->query ? mo->query : clink_mysql_builtin;
        fn(&st, (const char *)p + 1, n - 1, mo->query_user);
        if (!st.answered) {
            /* Left to the door: what drivers send on connect (mysql_answers.c). */
            CLINK_IGNORE(clink__mysql_session_answer(&st, (const char *)p + 1, n - 1));
        }
        if (!st.answered) {
            send_err(c, 1105, "HY000", "the statement hook gave no answer");
        }
        OPENSSL_cleanse(p, n); /* a statement may carry a password (IDENTIFIED BY): leave no copy behind */
        return;
    }
    case CLINK_MY_COM_RESET_CONNECTION:
        /* The session's variables back to their defaults; the login and the database stay, as in MySQL. */
        clink__session_clear(&c->my->sess);
        send_ok(c, 0, NULL);
        return;
    case CLINK_MY_COM_SET_OPTION:
        set_option(c, p, n);
        return;
    case CLINK_MY_COM_FIELD_LIST:
        field_list(c, p, n);
        return;
    case CLINK_MY_COM_CHANGE_USER:
        change_user(c, p, n);
        return;
    default:
        send_err(c, 1047, "08S01", "Unknown command");
        return;
    }
}

static void mysql_input(struct clink_conn *c, struct clink__bytes *buf)
{
    while (c->my != NULL && c->my->state != MY_DONE && c->state < CS_CLOSING &&
           clink__bytes_len(buf) >= CLINK_MYSQL_HDR) {
        uint8_t *h = clink__bytes_data(buf);
        size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16;
        /* Before the login a client sends a few hundred bytes: it may not make us hold a mebibyte per slot. */
        size_t max = c->my->state == MY_COMMAND ? CLINK_MYSQL_MAX_PACKET : CLINK_MYSQL_MAX_LOGIN_PACKET;
        if (len > max) {
            c->my->seq = (uint8_t)(h[3] + 1);
            refuse(c, 1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes", -CLINK_EFRAMETOOBIG,
                   "packet too large");
            return;
        }
        if (clink__bytes_len(buf) < CLINK_MYSQL_HDR + len) {
            break;
        }
        uint8_t *p = h + CLINK_MYSQL_HDR;
        c->my->seq = (uint8_t)(h[3] + 1);
        /* Each state's handler may change the connection (TLS starts, it closes): consume first. */
        enum my_state s = c->my->state;
        switch (s) {
        case MY_RESPONSE:
            on_response(c, p, len);
            break;
        case MY_SWITCHED:
            on_switched(c, p, len);
            break;
        case MY_FULL_AUTH:
            on_full_auth(c, p, len);
            break;
        case MY_COMMAND:
            c->my->seq = 1; /* a command starts a new sequence: the client's packet was 0 */
            on_command(c, p, len);
            break;
        case MY_DONE:
            break;
        }
        if (s != MY_COMMAND) {
            OPENSSL_cleanse(h, CLINK_MYSQL_HDR + len); /* login packets may carry a password (any plugin's) */
        }
        clink__bytes_consume(buf, CLINK_MYSQL_HDR + len);
        if (c->my != NULL && s == MY_RESPONSE && c->has_tls && c->state == CS_HANDSHAKE) {
            return; /* the SSL request: what follows is the TLS handshake, read by the connection core */
        }
    }
}

/*
 * The node stops or drains, or the session was idle past wait_timeout: a
 * logged-in client hears it in its own protocol (ERR 1053, or 4031), not as
 * a clink GOAWAY, and the connection closes at once: it has no calls in
 * flight to drain.
 */
static int mysql_closing(struct clink_conn *c)
{
    if (c->my != NULL && (c->my->state == MY_COMMAND || c->my->changing)) {
        c->my->seq = 0;
        if (c->idle_closing) {
            /* ER_CLIENT_INTERACTION_TIMEOUT, as MySQL 8.0.24 and later tell a client idle past wait_timeout */
            send_err(c, 4031, "HY000",
                     "The client was disconnected by the server because of inactivity. See wait_timeout and "
                     "interactive_timeout for configuring this behavior.");
        } else {
            send_err(c, 1053, "08S01", "Server shutdown in progress");
        }
        c->my->state = MY_DONE;
    }
    return 0;
}

/* TLS is done (after the SSL request): its packets come decrypted, read as they come (no kTLS until logged in). */
static void mysql_opened(struct clink_conn *c)
{
    c->exact = 0;
    c->want = 5;
}

static int mysql_half_closed(struct clink_conn *c)
{
    (void)c;
    return 0; /* a client that stops sending is gone: nothing is owed */
}

const struct clink__proto clink__proto_mysql = {
    .name = "mysql",
    .link = 1,
    .app = 0,
    .deadline = "no complete opening handshake",
    .opened = mysql_opened,
    .input = mysql_input,
    .half_closed = mysql_half_closed,
    .closing = mysql_closing,
    .free = mysql_free,
};
