/*
 * What the server layer's files share (server.c, settings.c, reload.c,
 * defaults.c, tool_methods.c, open_files.c); nothing outside server/ sees it.
 */
#ifndef CLINK_SERVER_INT_H
#define CLINK_SERVER_INT_H

#include "clink/http.h"
#include "clink/mysql.h"
#include "clink/server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

struct clink_server {
    char *path;                 /* the config file; NULL: options alone */
    struct clink_server_opts o; /* with its strings copied (owned) and the defaults filled in */
    struct clink_config_peer *peers;
    struct clink_config *cfg;          /* what the node runs with: the file, the overrides applied */
    struct clink_ticket_keys *tickets; /* one object for the server's life: tickets outlive a reload */
    struct clink_accounts *acc;
    struct clink_node *node;
    struct clink_ops *ops;
    _Atomic(struct clink_cluster *) cluster; /* set once by start, read by handlers */
    struct clink_mysql_builtin_opts sql;
    struct clink_mysql_opts mysql;
    pthread_mutex_t mu; /* reloads: SIGHUP, POST /reload and ALTER INSTANCE RELOAD TLS may come at once */
    char name[128];
    char *renew_key; /* a renewal's new key (PEM) until its certificate comes; renew.c's lock; wiped */
    int started;
    atomic_int stopped; /* set once, under mu: a reload that finds it set does nothing */
};

/* defaults.c: the [server] keys' defaults (the config reader starts from them). */
void clink__config_defaults(struct clink_config *c);

/*
 * config.c: the [server] key a line's key stands for, as docs/config.md
 * names it ("ssl-cert", "loose_ssl_cert" and "SSL_CERT" are "ssl_cert";
 * "skip-ops" is "ops"). Returns 0, or -1 for a key clink does not know.
 */
int clink__config_key_of(const char *written, char *canon, size_t cap);
/* clink_config_load, reading the swaps' texts instead of their files (option_file.h: an edit, checked). */
struct clink__optfile_swap;
int clink__config_load_swapped(const char *path, const struct clink__optfile_swap *swaps, size_t nswaps,
                               struct clink_config *out, char *err, size_t errlen);

/*
 * settings.c: the effective settings, the file (or the defaults) with the
 * overrides applied, and the TLS contexts they describe. err gets the reason.
 */
int clink__server_settings(const struct clink_server *srv, struct clink_config *cfg, char *err, size_t errlen);
/* The same with files read from memory (clink__config_load_swapped): an edit checked before it is written. */
int clink__server_settings_swapped(const struct clink_server *srv, const struct clink__optfile_swap *swaps,
                                   size_t nswaps, struct clink_config *cfg, char *err, size_t errlen);
int clink__server_tls(const struct clink_server *srv, const struct clink_config *cfg, struct clink_tls_ctx **out,
                      char *err, size_t errlen);
/* The same, saying nothing of the certificates' weaknesses unless warn: a check before an edit is not a reload. */
int clink__server_tls_checked(const struct clink_server *srv, const struct clink_config *cfg,
                              struct clink_tls_ctx **out, int warn, char *err, size_t errlen);
int clink__server_https(const struct clink_server *srv, const struct clink_config *cfg, struct clink_tls_ctx **out,
                        char *err, size_t errlen);
/* A node started in plaintext with no certificate yet (require_secure_transport = PLAINTEXT). */
int clink__server_plain_start(const struct clink_config *cfg);
void clink__server_log(const struct clink_server *srv, enum clink_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* reload.c: ALTER INSTANCE RELOAD TLS and POST /reload, as the node and ops endpoint call them. */
int clink__server_sql_reload_tls(void *user, char *err, size_t errlen);
int clink__server_ops_reload(void *user, char *msg, size_t cap);

/*
 * reload.c: what a reload would find and build with the swaps' texts in
 * place of their files, without swapping anything: rep's changed and
 * restart bits, or status < 0 with why.
 */
int clink__server_check(struct clink_server *srv, const struct clink__optfile_swap *swaps, size_t nswaps,
                        struct clink_server_report *rep);

/* config_edit.c: POST /config and POST /restart, as the ops endpoint calls them. */
int clink__server_ops_config(void *user, size_t n, const char *const *keys, const char *const *values, const char *who,
                             char *json, size_t cap);
int clink__server_ops_restart(void *user, const char *who, char *msg, size_t cap);

/*
 * files.c: a file read whole (at most max - 1 bytes; -errno, -EFBIG), a
 * file's new contents staged beside it (tmp names the temporary file; the
 * caller renames it), and replaced whole (staged, renamed, the folder
 * synced). The stage and replace return 0, or -1 with why.
 */
int clink__server_read_text(const char *path, size_t max, char **out, size_t *len);
int clink__server_stage_file(const char *path, const char *data, size_t len, mode_t mode, char *tmp, size_t cap,
                             char *why, size_t whycap);
int clink__server_replace_file(const char *path, const char *data, size_t len, mode_t mode, char *why, size_t cap);

/*
 * config_edit.c: s as a JSON string's contents, cut to fit cap: quotes,
 * backslashes and control bytes escaped (the answers the server gives the
 * ops endpoint; the server does not link cJSON). Returns the length.
 */
size_t clink__server_json_str(char *out, size_t cap, const char *s);

/* renew.c: POST /csr (cert_pem NULL) and POST /cert; the pending key forgotten when the server goes. */
int clink__server_ops_renew(void *user, const char *cert_pem, const char *who, char **json);
void clink__server_renew_forget(struct clink_server *srv);
/* renew.c: POST /accounts/issuer (a CA rollover's accounts step). */
int clink__server_ops_issuer(void *user, const char *from, const char *to, const char *who, char *json, size_t cap);

/* tool_methods.c: register the methods of clink/methods.h. */
int clink__server_tool_methods(struct clink_server *srv);

#endif
