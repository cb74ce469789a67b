/*
 * The config file's [server] and peer sections (docs/config.md).
 * option_file.c reads the MySQL option file syntax; this file knows the
 * keys, their values and what they mean, and which keys of a shared
 * my.cnf or memsql.cnf it may pass over.
 */
#include "clink/config.h"
#include "server/option_file.h"
#include "server/server_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_IGNORED 32

struct parse_state {
    struct clink_config *cfg;
    char err[512];
    int failed;
    char raw_basedir[CLINK_CONFIG_PATH_MAX];
    char raw_paths[6][CLINK_CONFIG_PATH_MAX];    /* cert, key, ca, crl, accounts, ticket keys as written */
    char raw_ops[2][CLINK_CONFIG_PATH_MAX];      /* ops_ssl_cert, ops_ssl_key as written */
    char path_at[8][CLINK_CONFIG_PATH_MAX + 16]; /* the 8 paths' FILE:LINE, for a file checked once all is read */
    /* keys passed over (loose- or in not_used), each once, with where it was first seen */
    char ignored[MAX_IGNORED][64];
    char ignored_at[MAX_IGNORED][96];
    unsigned nignored, more_ignored;
};

enum key_id {
    K_BASEDIR,
    K_SSL_CERT,
    K_SSL_KEY,
    K_SSL_CA,
    K_SSL_CRL,
    K_ACCOUNTS_FILE,
    K_SSL_SESSION_TICKET_KEY,
    K_TLS_VERSION,
    K_SSL_CIPHER,
    K_TLS_CIPHERSUITES,
    K_SSL_CLIENT_CERT,
    K_REQUIRE_SECURE_TRANSPORT,
    K_BIND_ADDRESS,
    K_PORT,
    K_WORKERS,
    K_HANDSHAKE_TIMEOUT_MS,
    K_MAX_FRAME,
    K_MAX_MESSAGE,
    K_CONN_WINDOW,
    K_STREAM_WINDOW,
    K_TCP_NOTSENT_LOWAT,
    K_ZEROCOPY_SEND,
    K_KTLS,
    K_MYSQL,
    K_OPS,
    K_OPS_PORT,
    K_OPS_SSL_CERT,
    K_OPS_SSL_KEY,
    K_NAME,
    K_SSL_KEY_MODE_CHECK,
    K_SSL_X509_STRICT,
    K_MAX_CONNECTIONS,
    K_MAX_NODE_LINKS,
    K_MAX_USER_CONNECTIONS,
    K_WAIT_TIMEOUT,
    K_TCP_KEEPALIVE_IDLE,
    K_CC_THRESHOLD,
    K_CC_MIN_DELAY,
    K_CC_MAX_DELAY,
    K_LOGIN_THROTTLE_ENTRIES,
    K_GRANT_CREATES_USER,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "basedir",
    "ssl_cert",
    "ssl_key",
    "ssl_ca",
    "ssl_crl",
    "accounts_file",
    "ssl_session_ticket_key",
    "tls_version",
    "ssl_cipher",
    "tls_ciphersuites",
    "ssl_client_cert",
    "require_secure_transport",
    "bind_address",
    "port",
    "workers",
    "handshake_timeout_ms",
    "max_frame",
    "max_message",
    "conn_window",
    "stream_window",
    "tcp_notsent_lowat",
    "zerocopy_send",
    "ktls",
    "mysql",
    "ops",
    "ops_port",
    "ops_ssl_cert",
    "ops_ssl_key",
    "name",
    "ssl_key_mode_check",
    "ssl_x509_strict",
    "max_connections",
    "max_node_links",
    "max_user_connections",
    "wait_timeout",
    "tcp_keepalive_idle",
    /* MySQL's connection_control names, so a my.cnf that sets them keeps its meaning (docs/config.md) */
    "connection_control_failed_connections_threshold",
    "connection_control_min_connection_delay",
    "connection_control_max_connection_delay",
    "login_throttle_entries",
    "grant_creates_user",
};

static int fail(struct parse_state *st, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct parse_state *st, const char *key, const char *fmt, ...)
{
    if (!st->failed) {
        char why[384];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        /* option_file.c puts "FILE:LINE: " in front: the key's own line. */
        snprintf(st->err, sizeof(st->err), "%s: %s", key, why);
        st->failed = 1;
    }
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes")) {
        *out = 1;
        return 0;
    }
    if (!strcasecmp(v, "off") || !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no")) {
        *out = 0;
        return 0;
    }
    return -1;
}

static int parse_uint(const char *v, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (v[0] == '\0' || v[0] == '-' || *end != '\0' || errno != 0 || x > max) {
        return -1;
    }
    *out = x;
    return 0;
}

static int copy(struct parse_state *st, const char *key, char *dst, size_t cap, const char *v)
{
    if (strlen(v) >= cap) {
        return fail(st, key, "value longer than %zu characters", cap - 1);
    }
    memcpy(dst, v, strlen(v) + 1);
    return 1;
}

/* ktls = auto | off | required: the values of enum clink_ktls_mode (transport.h). */
static int parse_ktls(struct parse_state *st, const char *key, const char *where, const char *v, int *out)
{
    static const char *const names[] = {"", "auto", "off", "required"};
    for (int i = 1; i < 4; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            *out = i;
            return 1;
        }
    }
    return fail(st, key, "%s'%s' is not one of auto, off, required", where, v);
}

static int tls_version(struct parse_state *st, const char *v)
{
    /* MySQL's syntax: a comma-separated list of allowed versions. */
    int v12 = 0, v13 = 0;
    char buf[128];
    if (strlen(v) >= sizeof(buf)) {
        return fail(st, "tls_version", "value too long");
    }
    memcpy(buf, v, strlen(v) + 1);
    char *save = NULL;
    for (char *t = strtok_r(buf, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        if (!strcasecmp(t, "TLSv1.3")) {
            v13 = 1;
        } else if (!strcasecmp(t, "TLSv1.2")) {
            v12 = 1;
        } else if (!strcasecmp(t, "TLSv1") || !strcasecmp(t, "TLSv1.1")) {
            return fail(st, "tls_version", "'%s' is not supported (insecure); use TLSv1.3 or TLSv1.2,TLSv1.3", t);
        } else {
            return fail(st, "tls_version", "unknown TLS version '%s' (known: TLSv1.2, TLSv1.3)", t);
        }
    }
    if (!v13) {
        return fail(st, "tls_version", "TLSv1.3 must be allowed (TLSv1.3, or TLSv1.2,TLSv1.3)");
    }
    st->cfg->tls_version = v12 ? CLINK_TLS_1_2 : CLINK_TLS_1_3;
    return 1;
}

/* [leaf NAME] / [aggregator NAME]: one peer of the cluster. */
static int on_peer_key(struct parse_state *st, int aggregator, const char *pname, const char *key, const char *value)
{
    struct clink_config *c = st->cfg;
    struct clink_config_peer *p = NULL;
    for (size_t i = 0; i < c->npeers; i++) {
        if (strcmp(c->peers[i].name, pname) == 0) {
            p = &c->peers[i];
        }
    }
    if (p == NULL) {
        if (pname[0] == '\0' || strlen(pname) >= sizeof(p->name) || strchr(pname, ' ') != NULL) {
            return fail(st, key, "[%s %s]: a peer needs a name of 1 to 63 characters without spaces",
                        aggregator ? "aggregator" : "leaf", pname);
        }
        if (c->npeers == CLINK_CONFIG_MAX_PEERS) {
            return fail(st, key, "more than %d peers", CLINK_CONFIG_MAX_PEERS);
        }
        p = &c->peers[c->npeers++];
        memset(p, 0, sizeof(*p));
        snprintf(p->name, sizeof(p->name), "%s", pname);
        p->aggregator = aggregator;
    } else if (p->aggregator != aggregator) {
        return fail(st, key, "'%s' is both a leaf and an aggregator", pname);
    }
    if (value == NULL) {
        return fail(st, key, "[%s]: needs a value (key = value)", pname);
    }
    unsigned long x;
    if (strcmp(key, "host") == 0) {
        return copy(st, key, p->host, sizeof(p->host), value);
    }
    if (strcmp(key, "port") == 0) {
        if (parse_uint(value, 65535, &x) < 0 || x == 0) {
            return fail(st, key, "[%s]: '%s' is not a port number (1-65535)", pname, value);
        }
        p->port = (uint16_t)x;
        return 1;
    }
    if (strcmp(key, "ssl_server_name") == 0) {
        return copy(st, key, p->ssl_server_name, sizeof(p->ssl_server_name), value);
    }
    if (strcmp(key, "user") == 0) {
        return copy(st, key, p->user, sizeof(p->user), value);
    }
    if (strcmp(key, "ssl_mode") == 0) {
        /* The values of enum clink_ssl_mode, in the mysql client's words. */
        static const char *const modes[] = {"", "DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"};
        for (int i = 1; i < 6; i++) {
            if (strcasecmp(value, modes[i]) == 0) {
                p->ssl_mode = i;
                return 1;
            }
        }
        return fail(st, key, "[%s]: '%s' is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY",
                    pname, value);
    }
    if (strcmp(key, "ktls") == 0) {
        char where[80];
        snprintf(where, sizeof(where), "[%.63s]: ", pname);
        return parse_ktls(st, key, where, value, &p->ktls);
    }
    return fail(st, key, "[%s]: unknown key (host, port, ssl_server_name, ssl_mode, user, ktls)", pname);
}

/*
 * Keys of mysqld's and MemSQL's [server] that a shared memsql.cnf or my.cnf
 * holds and clink has no use for: passed over with one warning, where any
 * other unknown key stops the node (a typo must not drop a setting). Each
 * was checked to carry no security meaning for clink; none starts with ssl_
 * or require_ (those are never passed over). docs/config.md lists them.
 */
static const char *const not_used[] = {
    /* mysqld */
    "skip_name_resolve",
    "skip_external_locking",
    "skip_host_cache",
    "datadir",
    "socket",
    "pid_file",
    "log_error",
    "default_storage_engine",
    "character_set_server",
    "collation_server",
    "max_allowed_packet",
    "core_file",
    "lc_messages_dir",
    "lc_messages",
    "tmpdir",
    "user",
    "server_id",
    "symbolic_links",
    "lock_wait_timeout",
    "explicit_defaults_for_timestamp",
    "open_files_limit",
    "back_log",
    "thread_cache_size",
    "table_open_cache",
    "general_log",
    "general_log_file",
    "slow_query_log",
    "slow_query_log_file",
    "log_bin",
    "sql_mode",
    /* MemSQL */
    "master_aggregator",
    "redundancy_level",
    "plancachedir",
    "tracelogsdir",
    "auditlogsdir",
    "default_partitions_per_leaf",
    "maximum_memory",
    "maximum_table_memory",
    "snapshot_trigger_size",
    "snapshots_to_keep",
    "transaction_buffer",
    "durability",
    "minimum_core_count",
    "minimum_memory_mb",
    "reported_hostname",
    "log_file_size_partitions",
    "log_file_size_ref_dbs",
    "leaf_failure_detection",
};

static int never_ignored(const char *key)
{
    return strncmp(key, "ssl_", 4) == 0 || strncmp(key, "require_", 8) == 0;
}

/* A key passed over: remembered once, with where it was first seen, for cfg->warnings (finish). */
static int ignore(struct parse_state *st, const char *written, const char *key, const struct clink__optfile_key *k)
{
    for (unsigned i = 0; i < st->nignored; i++) {
        if (strcmp(st->ignored[i], key) == 0) {
            return 1;
        }
    }
    if (st->nignored == MAX_IGNORED) {
        st->more_ignored++;
        return 1;
    }
    snprintf(st->ignored[st->nignored], sizeof(st->ignored[0]), "%s", key);
    /* the file's own name keeps the line short; an included file's folder rarely matters to find it */
    const char *slash = strrchr(k->file, '/');
    snprintf(st->ignored_at[st->nignored], sizeof(st->ignored_at[0]), "%.40s (%.40s:%d)", written,
             slash ? slash + 1 : k->file, k->line);
    st->nignored++;
    return 1;
}

static int key_id(const char *key)
{
    for (int i = 0; i < K_COUNT; i++) {
        if (strcmp(key, key_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* The ON/OFF keys: a bare one is ON, and mysqld's skip-/disable-/enable- prefixes apply. */
static int is_switch(int id)
{
    return id == K_MYSQL || id == K_OPS || id == K_SSL_KEY_MODE_CHECK || id == K_REQUIRE_SECURE_TRANSPORT ||
           id == K_GRANT_CREATES_USER;
}

static int parse_key(struct parse_state *st, const struct clink__optfile_key *k)
{
    struct clink_config *c = st->cfg;
    const char *section = k->section, *name = k->key, *value = k->value;
    int is_leaf = strncasecmp(section, "leaf ", 5) == 0, is_agg = strncasecmp(section, "aggregator ", 11) == 0;
    if (!is_leaf && !is_agg && strcasecmp(section, "server") != 0) {
        return 1; /* other programs' groups: read for their syntax only */
    }
    /* my.cnf accepts ssl-cert and ssl_cert alike. */
    char key[64];
    size_t n = strlen(name);
    if (n >= sizeof(key)) {
        return fail(st, name, "unknown key");
    }
    for (size_t i = 0; i <= n; i++) {
        key[i] = name[i] == '-' ? '_' : (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    }
    if (is_leaf || is_agg) {
        return on_peer_key(st, is_agg, section + (is_leaf ? 5 : 11), key, value);
    }
    /* mysqld's loose- prefix: the key if known, else passed over with a warning rather than an error. */
    int loose = strncmp(key, "loose_", 6) == 0;
    const char *bare = loose ? key + 6 : key;
    int id = key_id(bare);
    /* mysqld's skip-, disable- and enable- before a switch (skip-ops): OFF, OFF and ON, with no value. */
    static const struct {
        const char *prefix, *value;
    } switch_prefixes[] = {{"skip_", "OFF"}, {"disable_", "OFF"}, {"enable_", "ON"}};
    const char *implied = NULL;
    for (size_t i = 0; id < 0 && i < sizeof(switch_prefixes) / sizeof(switch_prefixes[0]); i++) {
        size_t plen = strlen(switch_prefixes[i].prefix);
        int sid = strncmp(bare, switch_prefixes[i].prefix, plen) == 0 ? key_id(bare + plen) : -1;
        if (sid >= 0 && is_switch(sid)) {
            id = sid;
            implied = switch_prefixes[i].value;
        }
    }
    if (implied != NULL) {
        if (value != NULL) {
            return fail(st, name, "takes no value (mysqld's skip-, disable- or enable- before %s)", key_names[id]);
        }
        value = implied;
    }
    if (id < 0) {
        if (never_ignored(bare)) {
            return fail(st, name, "unknown key (an ssl_ or require_ key is never passed over, even with loose-)");
        }
        for (size_t i = 0; !loose && i < sizeof(not_used) / sizeof(not_used[0]); i++) {
            if (strcmp(bare, not_used[i]) == 0) {
                return ignore(st, name, bare, k);
            }
        }
        return loose ? ignore(st, name, key, k) : fail(st, name, "unknown key (see docs/config.md)");
    }
    if (value == NULL) {
        /* A bare key is mysqld's --key: ON for a switch, a missing value for anything else. */
        value = is_switch(id) ? "ON" : NULL;
        if (value == NULL) {
            return fail(st, key_names[id], "needs a value (key = value)");
        }
    }
    /* A key given again (in the file or an included one) takes the later value, as in mysqld. */
    snprintf(key, sizeof(key), "%s", key_names[id]); /* messages name it without loose- */
    unsigned long x;
    int b;
    switch ((enum key_id)id) {
    case K_BASEDIR:
        return copy(st, key, st->raw_basedir, sizeof(st->raw_basedir), value);
    case K_SSL_CERT:
    case K_SSL_KEY:
    case K_SSL_CA:
    case K_SSL_CRL:
    case K_ACCOUNTS_FILE:
    case K_SSL_SESSION_TICKET_KEY:
        if (value[0] == '\0') {
            return fail(st, key, "empty path");
        }
        snprintf(st->path_at[id - K_SSL_CERT], sizeof(st->path_at[0]), "%s:%d", k->file, k->line);
        return copy(st, key, st->raw_paths[id - K_SSL_CERT], sizeof(st->raw_paths[0]), value);
    case K_TLS_VERSION:
        return tls_version(st, value);
    case K_SSL_CIPHER:
        return copy(st, key, c->ssl_cipher, sizeof(c->ssl_cipher), value);
    case K_TLS_CIPHERSUITES:
        return copy(st, key, c->tls_ciphersuites, sizeof(c->tls_ciphersuites), value);
    case K_SSL_CLIENT_CERT:
        if (!strcasecmp(value, "required")) {
            c->ssl_client_cert = CLINK_CLIENT_CERT_REQUIRED;
        } else if (!strcasecmp(value, "optional")) {
            c->ssl_client_cert = CLINK_CLIENT_CERT_OPTIONAL;
        } else if (!strcasecmp(value, "none")) {
            c->ssl_client_cert = CLINK_CLIENT_CERT_NONE;
        } else {
            return fail(st, key, "'%s' is not one of none, optional, required", value);
        }
        return 1;
    case K_REQUIRE_SECURE_TRANSPORT: {
        /* MySQL's ON and OFF, and the states a cluster moves through from plaintext to TLS (docs/config.md). */
        static const char *const states[] = {"PLAINTEXT", "ACCEPT_BOTH", "PREFER_TLS", "REQUIRE_TLS"};
        if (parse_bool(value, &b) == 0) {
            c->secure_transport = b ? CLINK_SECURE_REQUIRE_TLS : CLINK_SECURE_PREFER_TLS;
        } else {
            c->secure_transport = 0;
            for (int i = 0; i < 4; i++) {
                if (!strcasecmp(value, states[i])) {
                    c->secure_transport = CLINK_SECURE_PLAINTEXT + i;
                }
            }
            if (c->secure_transport == 0) {
                return fail(st, key, "'%s' is not ON, OFF, PLAINTEXT, ACCEPT_BOTH, PREFER_TLS or REQUIRE_TLS", value);
            }
        }
        c->require_secure_transport = c->secure_transport == CLINK_SECURE_REQUIRE_TLS;
        return 1;
    }
    case K_BIND_ADDRESS:
        return copy(st, key, c->bind_address, sizeof(c->bind_address), value);
    case K_PORT:
        if (parse_uint(value, 65535, &x) < 0) {
            return fail(st, key, "'%s' is not a port number (0-65535)", value);
        }
        c->port = (uint16_t)x;
        return 1;
    case K_WORKERS:
        if (parse_uint(value, 1024, &x) < 0) {
            return fail(st, key, "'%s' is not a number from 0 (one per CPU) to 1024", value);
        }
        c->workers = (unsigned)x;
        return 1;
    case K_HANDSHAKE_TIMEOUT_MS:
        if (parse_uint(value, 3600000, &x) < 0 || x == 0) {
            return fail(st, key, "'%s' is not a number of milliseconds from 1 to 3600000", value);
        }
        c->handshake_timeout_ms = (uint32_t)x;
        return 1;
    case K_MAX_FRAME:
        if (parse_uint(value, 64u << 20, &x) < 0 || x < 4096) {
            return fail(st, key, "'%s' is not a size in bytes from 4096 to 67108864", value);
        }
        c->max_frame = (uint32_t)x;
        return 1;
    case K_MAX_MESSAGE:
        if (parse_uint(value, 1u << 30, &x) < 0 || x < 16368) {
            return fail(st, key, "'%s' is not a size in bytes from 16368 to 1073741824", value);
        }
        c->max_message = (uint32_t)x;
        return 1;
    case K_CONN_WINDOW:
    case K_STREAM_WINDOW:
        if (parse_uint(value, 0x7fffffffu, &x) < 0 || x < 65472) {
            return fail(st, key, "'%s' is not a size in bytes from 65472 to 2147483647", value);
        }
        *(id == K_CONN_WINDOW ? &c->conn_window : &c->stream_window) = (uint32_t)x;
        return 1;
    case K_TCP_NOTSENT_LOWAT:
        if (parse_uint(value, 1u << 30, &x) < 0) {
            return fail(st, key, "'%s' is not a size in bytes from 0 to 1073741824", value);
        }
        c->tcp_notsent_lowat = (uint32_t)x;
        return 1;
    case K_ZEROCOPY_SEND: {
        /* The values of enum clink_zerocopy (transport.h), in its order. */
        static const char *const names[] = {"", "off", "auto", "on"};
        for (int i = 1; i < 4; i++) {
            if (strcasecmp(value, names[i]) == 0) {
                c->zerocopy_send = i;
                return 1;
            }
        }
        return fail(st, key, "'%s' is not one of off, auto, on", value);
    }
    case K_KTLS:
        return parse_ktls(st, key, "", value, &c->ktls);
    case K_MAX_CONNECTIONS:
        if (parse_uint(value, 1000000, &x) < 0 || x == 0) {
            return fail(st, key, "'%s' is not a number of connections from 1 to 1000000", value);
        }
        c->max_connections = (uint32_t)x;
        return 1;
    case K_MAX_NODE_LINKS:
        if (parse_uint(value, 1000000, &x) < 0 || x == 0) {
            return fail(st, key, "'%s' is not a number of links from 1 to 1000000", value);
        }
        c->max_node_links = (uint32_t)x;
        return 1;
    case K_MAX_USER_CONNECTIONS:
        if (parse_uint(value, 1000000, &x) < 0) {
            return fail(st, key, "'%s' is not a number of connections from 0 (no limit) to 1000000", value);
        }
        c->max_user_connections = (uint32_t)x;
        return 1;
    case K_WAIT_TIMEOUT:
        if (parse_uint(value, 31536000, &x) < 0 || x == 0) {
            return fail(st, key, "'%s' is not a number of seconds from 1 to 31536000", value);
        }
        c->wait_timeout = (uint32_t)x;
        return 1;
    case K_TCP_KEEPALIVE_IDLE:
        if (parse_uint(value, 32767, &x) < 0 || x == 0) {
            return fail(st, key, "'%s' is not a number of seconds from 1 to 32767", value);
        }
        c->tcp_keepalive_idle = (uint32_t)x;
        return 1;
    case K_MYSQL:
        if (parse_bool(value, &b) < 0) {
            return fail(st, key, "'%s' is not ON or OFF", value);
        }
        c->mysql = b;
        return 1;
    case K_OPS:
        if (parse_bool(value, &b) < 0) {
            return fail(st, key, "'%s' is not ON or OFF", value);
        }
        c->ops = b;
        return 1;
    case K_GRANT_CREATES_USER:
        if (parse_bool(value, &b) < 0) {
            return fail(st, key, "'%s' is not ON or OFF", value);
        }
        c->grant_creates_user = b;
        return 1;
    case K_CC_THRESHOLD:
        /* MySQL turns its plugin off with 0; clink has no off switch, and says so rather than guessing. */
        if (parse_uint(value, 1000000, &x) < 0 || x == 0) {
            return fail(
                st, key,
                "'%s': failures before logins are delayed, 1 to 1000000 (clink's throttle cannot be turned off)",
                value);
        }
        c->login_free_failures = (uint32_t)x;
        return 1;
    case K_CC_MIN_DELAY:
        if (parse_uint(value, 3600000, &x) < 0 || x == 0) {
            return fail(st, key, "'%s' is not a number of milliseconds from 1 to 3600000", value);
        }
        c->login_delay_step_ms = (uint32_t)x;
        return 1;
    case K_CC_MAX_DELAY:
        if (parse_uint(value, 86400000, &x) < 0 || x == 0) {
            return fail(st, key, "'%s' is not a number of milliseconds from 1 to 86400000", value);
        }
        c->login_max_delay_ms = (uint32_t)x;
        return 1;
    case K_LOGIN_THROTTLE_ENTRIES:
        if (parse_uint(value, 1u << 24, &x) < 0 || x < 16) {
            return fail(st, key, "'%s' is not a number from 16 to 16777216", value);
        }
        c->login_throttle_entries = (uint32_t)x;
        return 1;
    case K_SSL_KEY_MODE_CHECK:
        if (parse_bool(value, &b) < 0) {
            return fail(st, key, "'%s' is not ON or OFF", value);
        }
        c->ssl_key_mode_check = b;
        return 1;
    case K_SSL_X509_STRICT:
        if (parse_bool(value, &b) < 0) {
            return fail(st, key, "'%s' is not ON or OFF", value);
        }
        c->ssl_x509_strict = b;
        return 1;
    case K_OPS_PORT:
        if (parse_uint(value, 65535, &x) < 0) {
            return fail(st, key, "'%s' is not a port number (0-65535)", value);
        }
        c->ops_port = (uint16_t)x;
        return 1;
    case K_OPS_SSL_CERT:
    case K_OPS_SSL_KEY:
        if (value[0] == '\0') {
            return fail(st, key, "empty path");
        }
        snprintf(st->path_at[6 + id - K_OPS_SSL_CERT], sizeof(st->path_at[0]), "%s:%d", k->file, k->line);
        return copy(st, key, st->raw_ops[id - K_OPS_SSL_CERT], sizeof(st->raw_ops[0]), value);
    case K_NAME:
        for (const char *q = value; *q; q++) {
            if (*q < 0x21 || *q > 0x7e) {
                return fail(st, key, "'%s': printable characters without spaces only", value);
            }
        }
        return copy(st, key, c->name, sizeof(c->name), value);
    case K_COUNT:
        break;
    }
    return fail(st, key, "unknown key");
}

static int resolve(const char *base, const char *p, char *out, size_t cap)
{
    int n = p[0] == '/' ? snprintf(out, cap, "%s", p) : snprintf(out, cap, "%s/%s", base, p);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int finish(struct parse_state *st, const char *dir, char *err, size_t errlen)
{
    struct clink_config *c = st->cfg;
    const char *where = c->path[0] ? c->path : "config";
    if (st->raw_basedir[0]) {
        if (resolve(dir, st->raw_basedir, c->basedir, sizeof(c->basedir)) < 0) {
            snprintf(err, errlen, "%s: basedir: path too long", where);
            return -CLINK_ECONFIG;
        }
    } else if (snprintf(c->basedir, sizeof(c->basedir), "%s", dir) >= (int)sizeof(c->basedir)) {
        snprintf(err, errlen, "%s: path too long", where);
        return -CLINK_ECONFIG;
    }
    for (size_t i = 0; i < c->npeers; i++) {
        if (c->peers[i].host[0] == '\0' || c->peers[i].port == 0) {
            snprintf(err, errlen, "%s: [%s %s]: host and port are required", where,
                     c->peers[i].aggregator ? "aggregator" : "leaf", c->peers[i].name);
            return -CLINK_ECONFIG;
        }
    }
    /* The connection window must always free room for the largest message (docs/protocol.md, "Flow control"). */
    uint64_t msg = c->max_message ? c->max_message : CLINK_DEFAULT_MAX_MESSAGE;
    uint64_t win = c->conn_window ? c->conn_window : CLINK_DEFAULT_CONN_WINDOW;
    if (msg > win / 4 * 3) {
        snprintf(err, errlen, "%s: max_message %llu is more than three quarters of conn_window %llu", where,
                 (unsigned long long)msg, (unsigned long long)win);
        return -CLINK_ECONFIG;
    }
    if (!st->raw_ops[0][0] != !st->raw_ops[1][0]) {
        snprintf(err, errlen, "%s: ops_ssl_cert and ops_ssl_key go together (neither: the node's own pair)", where);
        return -CLINK_ECONFIG;
    }
    char *dst[8] = {c->ssl_cert,     c->ssl_key,    c->ssl_ca, c->ssl_crl, c->accounts_file, c->ssl_session_ticket_key,
                    c->ops_ssl_cert, c->ops_ssl_key};
    for (int i = 0; i < 8; i++) {
        const char *key = key_names[i < 6 ? K_SSL_CERT + i : K_OPS_SSL_CERT + (i - 6)];
        const char *raw = i < 6 ? st->raw_paths[i] : st->raw_ops[i - 6];
        if (raw[0] == '\0') {
            continue;
        }
        if (resolve(c->basedir, raw, dst[i], CLINK_CONFIG_PATH_MAX) < 0) {
            snprintf(err, errlen, "%s: %s: path too long", st->path_at[i], key);
            return -CLINK_ECONFIG;
        }
        if (access(dst[i], R_OK) != 0) {
            snprintf(err, errlen, "%s: %s: cannot read %s: %s", st->path_at[i], key, dst[i], strerror(errno));
            return -CLINK_ECONFIG;
        }
    }
    return 0;
}

static int on_key(void *user, const struct clink__optfile_key *k, char *err, size_t errlen)
{
    struct parse_state *st = user;
    if (parse_key(st, k) == 0 || st->failed) {
        snprintf(err, errlen, "%s", st->err);
        return -CLINK_ECONFIG;
    }
    return 0;
}

/* One line of warnings: every key passed over, once, with where it was first seen. */
static void warnings(const struct parse_state *st, struct clink_config *c)
{
    size_t len = 0, cap = sizeof(c->warnings);
    c->warnings[0] = '\0';
    for (unsigned i = 0; i < st->nignored && len < cap; i++) {
        int n = snprintf(c->warnings + len, cap - len, "%s%s",
                         i ? ", " : "keys clink does not use, ignored: ", st->ignored_at[i]);
        len += n > 0 ? (size_t)n : 0;
    }
    if (st->more_ignored > 0 && len < cap) {
        snprintf(c->warnings + len, cap - len, " and %u more", st->more_ignored);
    }
}

int clink__config_key_of(const char *written, char *canon, size_t cap)
{
    char key[64];
    size_t n = strlen(written);
    if (n >= sizeof(key)) {
        return -1;
    }
    for (size_t i = 0; i <= n; i++) {
        key[i] =
            written[i] == '-' ? '_' : (char)(written[i] >= 'A' && written[i] <= 'Z' ? written[i] + 32 : written[i]);
    }
    const char *bare = strncmp(key, "loose_", 6) == 0 ? key + 6 : key;
    int id = key_id(bare);
    static const char *const prefixes[] = {"skip_", "disable_", "enable_"};
    for (size_t i = 0; id < 0 && i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t plen = strlen(prefixes[i]);
        int sid = strncmp(bare, prefixes[i], plen) == 0 ? key_id(bare + plen) : -1;
        id = sid >= 0 && is_switch(sid) ? sid : -1;
    }
    if (id < 0 || (size_t)snprintf(canon, cap, "%s", key_names[id]) >= cap) {
        return -1;
    }
    return 0;
}

/*
 * file: the file to read, or NULL to read text (relative paths against dir);
 * swaps: files read from memory instead (option_file.h).
 */
static int run(const char *text, const char *file, const char *dir, const struct clink__optfile_swap *swaps,
               size_t nswaps, struct clink_config *out, char *err, size_t errlen)
{
    char scratch[8];
    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    if (out == NULL || (file == NULL && (dir == NULL || dir[0] != '/'))) {
        snprintf(err, errlen, "config: a directory (absolute) is needed to resolve paths");
        return -CLINK_EINVAL;
    }
    struct parse_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return -CLINK_ENOMEM;
    }
    clink__config_defaults(out); /* server/defaults.c */
    snprintf(out->path, sizeof(out->path), "%s", file ? file : "");
    st->cfg = out;
    char filedir[CLINK_CONFIG_PATH_MAX];
    int ret;
    if (file != NULL) {
        /* Relative paths resolve against the file's folder, made absolute. */
        char *abs = realpath(file, NULL);
        if (abs == NULL) {
            snprintf(err, errlen, "%s: cannot open config file: %s", file, strerror(errno));
            free(st);
            return -CLINK_ECONFIG;
        }
        char *slash = strrchr(abs, '/');
        snprintf(filedir, sizeof(filedir), "%.*s", slash == abs ? 1 : (int)(slash - abs), abs);
        free(abs);
        dir = filedir;
        ret = clink__optfile_read_swapped(file, swaps, nswaps, on_key, st, err, errlen);
    } else {
        ret = clink__optfile_read_text(text, "", dir, on_key, st, err, errlen);
    }
    if (ret == 0) {
        ret = finish(st, dir, err, errlen);
    }
    if (ret == 0) {
        warnings(st, out);
    }
    free(st);
    return ret;
}

int clink_config_parse(const char *text, const char *dir, struct clink_config *out, char *err, size_t errlen)
{
    if (text == NULL) {
        return -CLINK_EINVAL;
    }
    return run(text, NULL, dir, NULL, 0, out, err, errlen);
}

int clink_config_load(const char *path, struct clink_config *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (path == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    return run(NULL, path, NULL, NULL, 0, out, err, errlen);
}

int clink__config_load_swapped(const char *path, const struct clink__optfile_swap *swaps, size_t nswaps,
                               struct clink_config *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (path == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    return run(NULL, path, NULL, swaps, nswaps, out, err, errlen);
}

int clink_config_tls_opts(const struct clink_config *cfg, struct clink_tls_opts *out, char *err, size_t errlen)
{
    if (cfg == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    const char *missing = !cfg->ssl_cert[0]  ? "ssl_cert"
                          : !cfg->ssl_key[0] ? "ssl_key"
                          : !cfg->ssl_ca[0]  ? "ssl_ca"
                                             : NULL;
    if (missing != NULL) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "%s: %s is not set (ssl_cert, ssl_key and ssl_ca are all needed for TLS)",
                     cfg->path[0] ? cfg->path : "config", missing);
        }
        return -CLINK_ECONFIG;
    }
    *out = (struct clink_tls_opts){
        .cert_file = cfg->ssl_cert,
        .key_file = cfg->ssl_key,
        .ca_file = cfg->ssl_ca,
        .min_version = cfg->tls_version,
        .ciphersuites = cfg->tls_ciphersuites[0] ? cfg->tls_ciphersuites : NULL,
        .cipher_list = cfg->ssl_cipher[0] ? cfg->ssl_cipher : NULL,
        .client_cert = cfg->ssl_client_cert,
        .crl_file = cfg->ssl_crl[0] ? cfg->ssl_crl : NULL,
        .allow_open_key_file = !cfg->ssl_key_mode_check,
        .x509_strict = cfg->ssl_x509_strict,
    };
    return 0;
}
