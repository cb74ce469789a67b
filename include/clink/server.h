/*
 * clink server: a whole node from a memsql.cnf-style file (docs/config.md)
 * or from options, in one call (docs/server.md).
 *
 * A server builds, in order: the session ticket keys, the TLS identity and
 * trust (certificate, key, CA bundle, CRL), the accounts and their
 * failed-login throttle, the node (transport security, kTLS mode, workers,
 * session limits, the MySQL front door), its listening port, the HTTPS
 * operations endpoint, and, once started, the cluster of its [leaf] and
 * [aggregator] peers. clink_server_reload reads everything again, validates
 * all of it, then swaps what can change live and reports what needs a
 * restart. Handlers are registered on the server before it starts.
 *
 * What belongs to the process stays with the program: signals, daemonizing,
 * the open files limit (clink_server_raise_open_files is a helper it may
 * call), port files. The library never prints; it logs through opts.log.
 *
 * Threads: clink_server_new*, _register and _start from one thread, before
 * anything else; _reload from any thread but a worker (one at a time: it
 * takes a lock); _free from any thread but a worker. Accessors: any.
 */
#ifndef CLINK_SERVER_H
#define CLINK_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "clink/auth.h"
#include "clink/config.h"
#include "clink/error.h"
#include "clink/log.h"
#include "clink/ops.h"
#include "clink/pool.h"
#include "clink/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

struct clink_server;

/* An on/off setting whose zero is "the file's, else the default". */
enum clink_server_switch {
    CLINK_SERVER_DEFAULT = 0,
    CLINK_SERVER_ON,
    CLINK_SERVER_OFF,
};

/* ops_port's "any free port" (0 is "the file's"). */
#define CLINK_SERVER_ANY_PORT (-1)

/* What the server's own reloads (POST /reload, ALTER INSTANCE RELOAD TLS) report; see on_reload. */
struct clink_server_report;
typedef void (*clink_server_reload_fn)(void *user, const char *source, const struct clink_server_report *report);

/*
 * The program's restart (POST /restart, clink-admin restart): make the
 * process stop gracefully and be started again, as a supervisor does
 * (clink-node: under systemd or contrib/clink-supervise). Returns 0 if it
 * will, negative if it cannot. Called on the ops thread, after the answer
 * is sent: start the stop (clink_server_stop) from another thread.
 */
typedef int (*clink_server_restart_fn)(void *user, const char *who);

/*
 * Zero means "the config file's value, else the default" for every field
 * (clink_server_opts_default holds the defaults as values). With a config
 * file, a field set here overrides the file's key, at start and at every
 * reload. Strings are copied.
 */
struct clink_server_opts {
    const char *listen;          /* [in] "HOST:PORT" or "[v6]:PORT" (port 0: any); NULL: bind_address, port */
    const char *cert_file;       /* [in] ssl_cert: this node's certificate chain (PEM) */
    const char *key_file;        /* [in] ssl_key */
    const char *ca_file;         /* [in] ssl_ca: the CAs peers' certificates must chain to */
    const char *crl_file;        /* [in] ssl_crl */
    const char *accounts_file;   /* [in] accounts_file: who may log in (clink/accounts.h); none: no login check */
    const char *ticket_key_file; /* [in] ssl_session_ticket_key; none: keys in memory */
    enum clink_tls_version min_tls_version;       /* tls_version; CLINK_TLS_1_2 also allows TLS 1.2 */
    int allow_plaintext;                          /* 1: start at most PREFER_TLS (require_secure_transport = OFF) */
    enum clink_secure_transport secure_transport; /* require_secure_transport, as a state (wins over allow_plaintext) */
    enum clink_server_switch mysql;               /* mysql: MySQL clients on the node's port (with accounts) */
    enum clink_ktls_mode ktls;                    /* ktls */
    unsigned workers;                             /* workers; default: one per CPU */
    uint32_t max_connections;                     /* session limits, as clink_node_opts */
    enum clink_server_switch ops;                 /* ops: the HTTPS operations endpoint */
    int ops_port;                                 /* ops_port; CLINK_SERVER_ANY_PORT: any free port */
    const char *name;                             /* [in] name: on the ops page and in metrics */
    const struct clink_config_peer *peers;        /* [in] peers added to the file's [leaf]/[aggregator] ones */
    size_t npeers;
    /*
     * 1: answer the methods of clink/methods.h as clink-node does (echo,
     * sink, the aggregator's pools, and the fan-out: the request to every
     * leaf as an echo, answered with the first leaf's reply once all have
     * answered, without blocking a worker). 0: only the handlers registered.
     */
    int tool_methods;
    uint32_t drain_ms; /* how long clink_server_free lets calls finish; default 2000 */
    clink_log_fn log;  /* optional: the node's, the cluster's and the server's messages */
    void *log_user;
    enum clink_log_level log_level; /* default CLINK_LOG_WARN */
    /*
     * optional: told the outcome of the reloads the server starts itself:
     * POST /reload (on the ops thread) and ALTER INSTANCE RELOAD TLS (on the
     * MySQL client's worker: keep it short). Not called for clink_server_reload.
     */
    clink_server_reload_fn on_reload;
    void *on_reload_user;
    /* optional: POST /restart (NULL: the node answers that it cannot restart itself) */
    clink_server_restart_fn on_restart;
    void *on_restart_user;
};

/*
 * The defaults, as values (server/defaults.c; the config reader starts each
 * file from the same ones): copy, then override, for clink_server_new. With
 * a config file start from zero instead: every field set here would
 * override the file's key.
 */
extern CLINK_API const struct clink_server_opts clink_server_opts_default;

/*
 * Build a node from a config file ([server] and its [leaf NAME] and
 * [aggregator NAME] sections) with opts' overrides (opts may be NULL). The
 * node listens but does not run yet: register handlers, then
 * clink_server_start. [out] *out, free with clink_server_free. [out] err: why
 * it failed, in words (may be NULL). Fails closed: a bad file never becomes
 * a half-configured or plaintext node. Returns 0, -CLINK_ECONFIG,
 * -CLINK_EINVAL, -CLINK_ENOMEM or -errno (the port is taken).
 */
CLINK_API CLINK_MUST_USE int clink_server_new_from_config(const char *path, const struct clink_server_opts *opts,
                                                          struct clink_server **out, char *err, size_t errlen);

/* The same from options alone (cert_file, key_file and ca_file needed unless the node starts in plaintext). */
CLINK_API CLINK_MUST_USE int clink_server_new(const struct clink_server_opts *opts, struct clink_server **out,
                                              char *err, size_t errlen);

/* Register a handler (clink_node_register). Thread: before start. Returns 0 or -CLINK_EINVAL. */
CLINK_API CLINK_MUST_USE int clink_server_register(struct clink_server *srv, uint16_t method, clink_handler_fn fn,
                                                   void *user);

/*
 * Start the workers, then make the cluster of the configured peers (its
 * pools start dialling). Returns 0, or negative with err (the node keeps
 * running: free the server).
 */
CLINK_API CLINK_MUST_USE int clink_server_start(struct clink_server *srv, char *err, size_t errlen);

/* What a reload found and did: bits of enum clink_server_part. */
enum clink_server_part {
    CLINK_SERVER_TLS = 1 << 0,      /* certificate, key, CA, CRL, TLS version and ciphers */
    CLINK_SERVER_HTTPS = 1 << 1,    /* the ops endpoint's certificate */
    CLINK_SERVER_TICKETS = 1 << 2,  /* the session ticket key file's keys */
    CLINK_SERVER_ACCOUNTS = 1 << 3, /* the accounts file's accounts */
    CLINK_SERVER_THROTTLE = 1 << 4, /* the failed-login throttle */
    CLINK_SERVER_SECURITY = 1 << 5, /* require_secure_transport */
    CLINK_SERVER_LISTEN = 1 << 6,   /* bind_address, port */
    CLINK_SERVER_WORKERS = 1 << 7,  /* workers */
    CLINK_SERVER_OPS = 1 << 8,      /* ops, ops_port, name */
    CLINK_SERVER_PEERS = 1 << 9,    /* [leaf] and [aggregator] sections */
    CLINK_SERVER_LIMITS = 1 << 10,  /* session limits, timeouts, max_frame, ktls, mysql */
    CLINK_SERVER_FILES = 1 << 11,   /* which accounts or ticket key file is read */
    CLINK_SERVER_SQL = 1 << 12,     /* how the MySQL door answers statements: grant_creates_user */
};
#define CLINK_SERVER_PARTS 13

/* The name of one part, as a report spells it ("TLS", "listen", ...). */
CLINK_API const char *clink_server_part_name(enum clink_server_part part);

struct clink_server_report {
    int status;       /* 0: all read and applied; negative: nothing was swapped (why says what failed) */
    unsigned changed; /* parts whose settings differ from the ones the node runs with */
    unsigned applied; /* parts read again and swapped in live (credentials are re-read even if unchanged) */
    unsigned restart; /* parts that changed but apply only after a restart */
    char why[512];    /* status < 0: the first failure, e.g. "TLS: ...: key does not match" */
    char text[2048];  /* the whole outcome in sentences, for a log line */
};

/*
 * Read the config file again (with the same overrides), build everything
 * that can change live (TLS and HTTPS contexts, ticket keys, accounts) and
 * check it; if anything fails, nothing is swapped and report->why says
 * why. Otherwise swap it all, and report what changed, what was applied and
 * what needs a restart. Without a file, the files named in opts are read
 * again. Thread: any but a worker (there: -CLINK_EWOULDBLOCK at once).
 * Returns report->status.
 */
CLINK_API int clink_server_reload(struct clink_server *srv, struct clink_server_report *report);

/* What clink_server_set_config did. */
enum clink_server_edit_outcome {
    CLINK_SERVER_EDIT_REFUSED = 0, /* nothing was written: why says why */
    CLINK_SERVER_EDIT_UNCHANGED,   /* the file says so already: nothing was written */
    CLINK_SERVER_EDIT_APPLIED,     /* written, and the node runs with it now */
    CLINK_SERVER_EDIT_RESTART,     /* written; the node runs with it after a restart (reload.restart says what) */
};
CLINK_API const char *clink_server_edit_outcome_name(enum clink_server_edit_outcome o); /* "applied", ... */

struct clink_server_edit {
    enum clink_server_edit_outcome outcome;
    char key[64];                       /* the key as docs/config.md names it ("ssl-cert" is ssl_cert) */
    char file[CLINK_CONFIG_PATH_MAX];   /* the file edited */
    int line;                           /* the key's line in it now */
    char backup[CLINK_CONFIG_PATH_MAX]; /* the file as it was before (FILE.bak), "" when nothing was written */
    struct clink_server_report reload;  /* the check, then the reload that applied it */
    char why[512];                      /* REFUSED: why, in words */
};

/*
 * Set one [server] key of the node's config file, as memsql-ops
 * memsql-update-config does, and apply it. The line that holds the key's
 * effective value is rewritten (in an !include'd file if that is where it
 * is; its indentation, spelling and comment kept), else a line is added to
 * the config file's [server] section; every other line stays as it was.
 * The whole resulting configuration is read and built (certificates,
 * keys, accounts) before anything is written: a value the node would
 * refuse at its next start is refused now, and the file stays as it was.
 * Then the old file is kept as FILE.bak, the new one renamed into place,
 * and the node reloads (clink_server_reload): out->outcome says whether it
 * runs with the value now or after a restart (docs/config.md lists which
 * keys need one). value is as the node sees it (a relative path is
 * relative to the node's base directory). who (NULL: "the application")
 * is logged with the change, refused or made. Edits are serialized.
 * Thread: any but a worker (there: -CLINK_EWOULDBLOCK). Returns 0 (applied,
 * restart or unchanged) or negative (refused: -CLINK_EINVAL for a key clink
 * does not read or a node without a config file, -CLINK_ECONFIG and others).
 */
CLINK_API int clink_server_set_config(struct clink_server *srv, const char *key, const char *value, const char *who,
                                      struct clink_server_edit *out);

/*
 * The same for n keys at once (at most CLINK_SERVER_EDIT_MAX_KEYS), checked
 * and applied as one change: a certificate and its key, which neither
 * makes sense alone. out->file and line are the first key's; every file
 * edited keeps a .bak. A key given twice is refused.
 */
#define CLINK_SERVER_EDIT_MAX_KEYS 16
CLINK_API int clink_server_set_configs(struct clink_server *srv, size_t n, const char *const *keys,
                                       const char *const *values, const char *who, struct clink_server_edit *out);

/*
 * Certificate renewal with the key made on the node (clink-admin
 * rotate-certs; docs/admin.md). Begin: a new key (kept in memory, wiped
 * when used, replaced or at free) and a signing request for the identity
 * of the node's certificate (clink_cert_renew_request). [out] *csr_pem and
 * *cert_pem, the certificate file as it is now (free both). Returns 0 or
 * negative with err. Thread: any.
 */
CLINK_API CLINK_MUST_USE int clink_server_renew_begin(struct clink_server *srv, char **csr_pem, char **cert_pem,
                                                      char *err, size_t errlen);

/*
 * Install: cert_pem (the new certificate, then its intermediates) must be
 * for the key begin made, and the pair must be one the node takes (chain to
 * ssl_ca, dates, CRL: checked as a reload checks) before anything is
 * written. Then the key and certificate files (ssl_key, ssl_cert) are
 * replaced, the old ones kept as .bak, and the node reloads: new
 * handshakes use the new pair, links open now keep theirs. who is logged.
 * Thread: any but a worker. Returns 0, or negative with why (nothing
 * changed, or the old pair put back).
 */
CLINK_API CLINK_MUST_USE int clink_server_renew_install(struct clink_server *srv, const char *cert_pem, const char *who,
                                                        struct clink_server_report *report, char *why, size_t cap);

/*
 * Stop gracefully: the node stops accepting and lets calls in flight finish
 * for up to drain_ms, then the ops endpoint and the cluster close. Blocks.
 * Once is enough; the node's counters (clink_node_get_stats) stay readable
 * until free. Thread: any but a worker (there it logs and does nothing).
 */
CLINK_API void clink_server_stop(struct clink_server *srv);

/* Stop if still running, and free everything. NULL is ignored. Thread: any but a worker (there: logged, nothing). */
CLINK_API void clink_server_free(struct clink_server *srv);

/* Borrowed until clink_server_free. The cluster is NULL before start and when there are no peers. */
CLINK_API struct clink_node *clink_server_node(struct clink_server *srv);
CLINK_API struct clink_cluster *clink_server_cluster(struct clink_server *srv);
CLINK_API struct clink_ops *clink_server_ops(struct clink_server *srv);
CLINK_API struct clink_accounts *clink_server_accounts(struct clink_server *srv);
/* The node's bound port; the ops endpoint's (0 without one). */
CLINK_API uint16_t clink_server_port(const struct clink_server *srv);
CLINK_API uint16_t clink_server_ops_port(const struct clink_server *srv);

/*
 * What the server is, in a few lines for a program's log: where it
 * listens, its workers and transport security, the ops endpoint, accounts,
 * peers; once stopped, what it did (connections accepted and refused,
 * requests handled). Returns the length (truncated to cap - 1).
 */
CLINK_API size_t clink_server_describe(const struct clink_server *srv, char *buf, size_t cap);

/*
 * A helper for the program (the library never changes process limits
 * itself): raise the soft open files limit to the hard one, and check it
 * covers what the server's session limits may need. [out] msg: what was done
 * and any warning, one line each ("" when nothing to say). Returns 0, or -1
 * when the limit stays short of the need.
 */
CLINK_API int clink_server_raise_open_files(const struct clink_server *srv, char *msg, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
