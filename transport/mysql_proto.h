/*
 * The MySQL client/server protocol's packets, as the front door reads and
 * writes them (docs/mysql.md): pure functions, no I/O, so that every byte a
 * MySQL client sends goes through code that can be fuzzed on its own
 * (fuzz/fuzz_mysql.c).
 *
 * A packet is a 3-byte little-endian payload length, a 1-byte sequence id,
 * then the payload. The front door accepts packets up to
 * CLINK_MYSQL_MAX_PACKET bytes: a client's statements and logins are small,
 * and a larger length is refused before anything is allocated.
 */
#ifndef CLINK_TRANSPORT_MYSQL_PROTO_H
#define CLINK_TRANSPORT_MYSQL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define CLINK_MYSQL_HDR              4
#define CLINK_MYSQL_MAX_PACKET       (1u << 20)
#define CLINK_MYSQL_MAX_LOGIN_PACKET (16u << 10) /* before the login: a handshake response with its attributes */

/* What the greeting announces, and @@version and VERSION() answer. */
#define CLINK_MYSQL_SERVER_VERSION "8.0.0-clink-0.1.0"

/* Capability flags (MySQL's CLIENT_*). */
#define CLINK_MY_LONG_PASSWORD      0x00000001u
#define CLINK_MY_FOUND_ROWS         0x00000002u
#define CLINK_MY_LONG_FLAG          0x00000004u
#define CLINK_MY_CONNECT_WITH_DB    0x00000008u
#define CLINK_MY_PROTOCOL_41        0x00000200u
#define CLINK_MY_SSL                0x00000800u
#define CLINK_MY_TRANSACTIONS       0x00002000u
#define CLINK_MY_SECURE_CONNECTION  0x00008000u
#define CLINK_MY_MULTI_RESULTS      0x00020000u
#define CLINK_MY_PLUGIN_AUTH        0x00080000u
#define CLINK_MY_CONNECT_ATTRS      0x00100000u
#define CLINK_MY_PLUGIN_AUTH_LENENC 0x00200000u

/* What the server offers in its greeting (transport/opening.c writes it). */
#define CLINK_MY_SERVER_CAPS                                                                                           \
    (CLINK_MY_LONG_PASSWORD | CLINK_MY_FOUND_ROWS | CLINK_MY_LONG_FLAG | CLINK_MY_CONNECT_WITH_DB |                    \
     CLINK_MY_PROTOCOL_41 | CLINK_MY_SSL | CLINK_MY_TRANSACTIONS | CLINK_MY_SECURE_CONNECTION |                        \
     CLINK_MY_MULTI_RESULTS | CLINK_MY_PLUGIN_AUTH | CLINK_MY_CONNECT_ATTRS | CLINK_MY_PLUGIN_AUTH_LENENC)

#define CLINK_MY_STATUS_AUTOCOMMIT 0x0002u

/* Commands. */
#define CLINK_MY_COM_QUIT             0x01
#define CLINK_MY_COM_INIT_DB          0x02
#define CLINK_MY_COM_QUERY            0x03
#define CLINK_MY_COM_FIELD_LIST       0x04
#define CLINK_MY_COM_STATISTICS       0x09
#define CLINK_MY_COM_PING             0x0e
#define CLINK_MY_COM_CHANGE_USER      0x11
#define CLINK_MY_COM_SET_OPTION       0x1b
#define CLINK_MY_COM_RESET_CONNECTION 0x1f

/* The client's first answer: an SSLRequest (only its first 32 bytes) or a HandshakeResponse41. */
struct clink__mysql_response {
    uint32_t caps, max_packet;
    uint8_t charset;
    int ssl_request; /* the 32-byte SSLRequest: TLS starts next */
    char user[65];
    const uint8_t *auth; /* into the payload */
    size_t auth_len;
    char db[65];
    char plugin[64]; /* "" when the client sent none */
};

/*
 * Parse the client's answer to the greeting. Returns 0, or -CLINK_EPROTO for
 * anything malformed, truncated, too long (a user over 64 bytes, a database
 * name over 64) or without CLIENT_PROTOCOL_41.
 */
int clink__mysql_parse_response(const uint8_t *p, size_t n, struct clink__mysql_response *r);

/*
 * COM_CHANGE_USER's payload (the command byte first): the user, the auth
 * response (one length byte with CLIENT_SECURE_CONNECTION in caps, else up
 * to a NUL), the database, then, when the packet goes on, the character set
 * (2 bytes), the plugin name (CLIENT_PLUGIN_AUTH) and the connection
 * attributes (CLIENT_CONNECT_ATTRS). caps: the connection's, from its
 * handshake response. [out] r: user, auth (into p), auth_len, db, charset,
 * plugin ("" when none), caps. Returns 0, or -CLINK_EPROTO for anything
 * malformed or truncated, or names too long (as
 * clink__mysql_parse_response); bytes after the attributes are passed over.
 */
int clink__mysql_parse_change_user(const uint8_t *p, size_t n, uint32_t caps, struct clink__mysql_response *r);

/* COM_SET_OPTION's payload (the command byte first): 0 multi-statements on, 1 off; -1 malformed or unknown. */
int clink__mysql_set_option(const uint8_t *p, size_t n);

/*
 * COM_FIELD_LIST's table name (the command byte first; the name ends at a
 * NUL or the packet) into out, cut at 64 bytes, control characters as '?'
 * (it goes into an error message). Returns its length.
 */
size_t clink__mysql_field_list_table(const uint8_t *p, size_t n, char *out, size_t cap);

/* A length-encoded integer: writes 1, 3, 4 or 9 bytes; returns how many. */
size_t clink__mysql_lenenc_put(uint8_t *out, uint64_t v);

/* Reads one from p[0..n). Returns bytes used, or 0 when truncated or invalid (0xfb, 0xff). */
size_t clink__mysql_lenenc_get(const uint8_t *p, size_t n, uint64_t *v);

/* Payload writers: each returns the payload length written to out (cap is checked; 0: too small). */
size_t clink__mysql_ok(uint8_t *out, size_t cap, uint64_t affected, uint16_t status, const char *info);
size_t clink__mysql_err(uint8_t *out, size_t cap, uint16_t code, const char *sqlstate, const char *msg);
size_t clink__mysql_eof(uint8_t *out, size_t cap, uint16_t status);
/* A text-protocol column definition (type VAR_STRING, utf8mb4) named name. */
size_t clink__mysql_coldef(uint8_t *out, size_t cap, const char *name);
/* A text-protocol row: n cells, NULL for SQL NULL. */
size_t clink__mysql_row(uint8_t *out, size_t cap, const char *const *cells, unsigned n);

#endif
