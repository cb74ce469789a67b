/*
 * clink config: a memsql.cnf or my.cnf, in MySQL's option file syntax
 * (bare keys, quotes, # comments after a value, !include, !includedir).
 *
 * Only the [server] section and the peer sections ([leaf NAME],
 * [aggregator NAME]) are read; other sections (a shared my.cnf may have
 * [client], [mysqld]...) are read for their syntax only. In [server], a
 * key with mysqld's loose- prefix, or one of a documented list of mysqld and
 * MemSQL keys clink does not use, is passed over with a warning; any other
 * unknown key is an error, and an ssl_ or require_ key is never passed
 * over. Every key is documented in docs/config.md. Relative paths are resolved against the base directory:
 * the config file's folder, unless `basedir` says otherwise. A bad file fails
 * closed with one message naming the file, line, key and reason: an unknown
 * key, a bad value or a missing file never degrades into a default.
 */
#ifndef CLINK_CONFIG_H
#define CLINK_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "clink/auth.h"
#include "clink/error.h"
#include "clink/ops.h"
#include "clink/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLINK_CONFIG_PATH_MAX  4096
#define CLINK_CONFIG_MAX_PEERS 256

/*
 * A peer this node calls, from a [leaf NAME] or [aggregator NAME] section:
 * the cluster's membership as MemSQL's ADD LEAF / ADD AGGREGATOR would
 * record it (clink_cluster_add takes the same facts).
 */
struct clink_config_peer {
    char name[64];
    int aggregator;            /* 0: [leaf NAME], 1: [aggregator NAME] */
    char host[64];             /* host = (required) */
    uint16_t port;             /* port = (required) */
    char ssl_server_name[256]; /* the identity its certificate must carry; "" = host */
    int ssl_mode;              /* a clink_ssl_mode value (transport.h); 0 = VERIFY_IDENTITY */
    char user[65];             /* account to log in as; "" = none */
    int ktls;                  /* ktls = auto | off | required: a clink_ktls_mode value; 0 = the node's */
};

struct clink_config {
    char path[CLINK_CONFIG_PATH_MAX];    /* the file read ("" when parsed from a string) */
    char basedir[CLINK_CONFIG_PATH_MAX]; /* absolute */
    /* TLS identity and trust: absolute paths, "" when not set */
    char ssl_cert[CLINK_CONFIG_PATH_MAX];
    char ssl_key[CLINK_CONFIG_PATH_MAX];
    char ssl_ca[CLINK_CONFIG_PATH_MAX];
    char ssl_crl[CLINK_CONFIG_PATH_MAX];
    char accounts_file[CLINK_CONFIG_PATH_MAX];          /* clink_accounts_load; "" when logins are not checked */
    char ssl_session_ticket_key[CLINK_CONFIG_PATH_MAX]; /* clink_ticket_keys_new; "" = keys in memory */
    enum clink_tls_version tls_version;                 /* tls_version = TLSv1.3 (default) | TLSv1.2,TLSv1.3 */
    char ssl_cipher[512];                               /* TLS 1.2 cipher list, "" = default */
    char tls_ciphersuites[512];                         /* TLS 1.3 suites, "" = default */
    enum clink_client_cert ssl_client_cert;
    int require_secure_transport; /* 1 (default): no plaintext connections at all (secure_transport REQUIRE_TLS) */
    /*
     * require_secure_transport as a clink_secure_transport value: ON =
     * REQUIRE_TLS (default), OFF = PREFER_TLS (both accepted, TLS dialled),
     * or a migration state by name: PLAINTEXT, ACCEPT_BOTH, PREFER_TLS, REQUIRE_TLS.
     */
    int secure_transport;
    char bind_address[64]; /* default 127.0.0.1 */
    uint16_t port;         /* default 3306 */
    /* clink's own keys */
    unsigned workers;              /* 0: one per CPU */
    uint32_t handshake_timeout_ms; /* 0: the transport default */
    uint32_t max_frame;            /* 0: the transport default */
    uint32_t max_message;          /* protocol 2: largest reassembled message; 0: the transport default */
    uint32_t conn_window;          /* protocol 2: receive window per connection; 0: the transport default */
    uint32_t stream_window;        /* ... per stream; 0: the transport default */
    uint32_t tcp_notsent_lowat;    /* TCP_NOTSENT_LOWAT on every socket; 0: the kernel's default */
    int zerocopy_send;             /* zerocopy_send = off | auto | on: a clink_zerocopy value; default off */
    int ktls;                      /* ktls = auto | off | required: a clink_ktls_mode value; default auto */
    int mysql;                     /* mysql = ON (default) | OFF: serve MySQL clients (with accounts_file) */
    /*
     * grant_creates_user = ON (default): a MySQL client's GRANT to an account
     * that does not exist makes it (MySQL 5.x, MemSQL); OFF: refused with
     * 1410 (MySQL 8). clink_mysql_builtin_opts.no_auto_create_user; live on reload.
     */
    int grant_creates_user;
    /* Session limits (clink_node_opts, docs/config.md); the defaults are the CLINK_DEFAULT_* values */
    uint32_t max_connections;      /* client sessions, one more for a grant-ALL account */
    uint32_t max_node_links;       /* logins by a verified certificate without a password */
    uint32_t max_user_connections; /* client sessions per account; 0: no limit */
    uint32_t wait_timeout;         /* seconds a client session may stay idle */
    uint32_t tcp_keepalive_idle;   /* seconds without traffic before TCP keepalive probes */
    char name[64]; /* name = agg1: the node's name on the ops page and in metrics; "" = host name:port */
    /* The HTTPS operations endpoint (clink/ops.h) */
    int ops;                                  /* ops = ON (default) | OFF */
    uint16_t ops_port;                        /* default 9001 (CLINK_OPS_DEFAULT_PORT); 0: any free port */
    char ops_ssl_cert[CLINK_CONFIG_PATH_MAX]; /* its certificate and key, "" = the node's ssl_cert/ssl_key */
    char ops_ssl_key[CLINK_CONFIG_PATH_MAX];
    /*
     * ssl_key_mode_check = ON (default): a private key file (ssl_key,
     * ops_ssl_key) must be 0600 and this user's, or root's and 0640 at most
     * (clink_tls_opts.allow_open_key_file); OFF for keys mounted read-only.
     */
    int ssl_key_mode_check;
    /*
     * ssl_x509_strict = OFF (default): certificates are verified as `openssl
     * verify` does (a CA without keyUsage, a v1 or CN-only certificate pass,
     * with a warning); ON: RFC 5280's profile too, and names only from
     * subjectAltName (clink_tls_opts.x509_strict).
     */
    int ssl_x509_strict;
    /*
     * The failed-login throttle (clink_login_throttle; 0: its default),
     * under MySQL's connection_control names: failures before a wait
     * (connection_control_failed_connections_threshold), the first wait and
     * the step each further failure adds (_min_connection_delay, ms), the
     * longest wait (_max_connection_delay, ms); and login_throttle_entries.
     */
    uint32_t login_free_failures, login_delay_step_ms, login_max_delay_ms, login_throttle_entries;
    /*
     * [out] What the node should say once at start (clink-node logs it):
     * the keys passed over, each once with FILE:LINE where first seen; ""
     * when none. Filled by clink_config_load and clink_config_parse.
     */
    char warnings[1024];
    /* the cluster: peers in file order */
    struct clink_config_peer peers[CLINK_CONFIG_MAX_PEERS];
    size_t npeers;
};

/*
 * Read path into out. [out] err: "FILE:LINE: key: reason" on failure (may be
 * NULL), FILE being the file the key is in (an included one's path) and
 * LINE the key's own line. A key given again takes the later value. An
 * !include or !includedir names a path relative to the including file's
 * folder; one that is missing, nested more than 10 deep or part of a cycle
 * is an error. [out] out->warnings: keys passed over. Checks that files named exist and are readable; whether they hold
 * a matching certificate and key is clink_tls_ctx_new's check. Thread: any. Returns 0, -CLINK_ECONFIG, -CLINK_EINVAL.
 */
CLINK_API CLINK_MUST_USE int clink_config_load(const char *path, struct clink_config *out, char *err, size_t errlen);

/*
 * The same from text, with relative paths (and !include) resolved against
 * dir (absolute); messages name the text "config".
 * For tests and fuzzing. Thread: any.
 */
CLINK_API CLINK_MUST_USE int clink_config_parse(const char *text, const char *dir, struct clink_config *out, char *err,
                                                size_t errlen);

/*
 * TLS options for clink_tls_ctx_new from a loaded config (pointers into cfg).
 * Returns 0, or -CLINK_ECONFIG when ssl_cert, ssl_key or ssl_ca is missing
 * (with the reason in err). Thread: any.
 */
CLINK_API CLINK_MUST_USE int clink_config_tls_opts(const struct clink_config *cfg, struct clink_tls_opts *out,
                                                   char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
