/*
 * clink-node: run a clink node that serves the tool methods (echo, sink; every
 * node answers the status request itself) until SIGINT/SIGTERM, then shut
 * down gracefully. SIGHUP (or POST /reload on the ops port) reloads the TLS
 * credentials, the accounts file, the HTTPS certificate and the transport
 * security state (validated first; on any error the current ones stay in use).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clink/clink.h"
#include "clink/methods.h"
#include "tools/fanout.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: clink-node --config FILE [options]\n"
               "       clink-node --listen HOST:PORT --cert FILE --key FILE --ca FILE [options]\n"
               "\n"
               "Run a clink node that answers the echo, status and sink methods over verified TLS\n"
               "(mutual: clients must present a certificate signed by the CA). SIGHUP reloads the\n"
               "certificate, key, CA bundle, CRL, accounts and ticket key files; on any error the node keeps the\n"
               "ones in use and says why. SIGINT/SIGTERM shut it down gracefully. With [leaf NAME]\n"
               "sections in --config it is an aggregator: it keeps a pool to each peer and answers the\n"
               "fan-out method (method 5: the request to every leaf, the answer once all have answered).\n"
               "\n"
               "Options:\n"
               "  --config FILE        memsql.cnf-style file, [server] section (docs/config.md);\n"
               "                       the options below override it\n"
               "  --listen HOST:PORT   address to listen on (port 0: any; see --port-file)\n"
               "  --cert FILE          this node's certificate chain (PEM)\n"
               "  --key FILE           its private key (PEM)\n"
               "  --ca FILE            CA bundle that peers' certificates must chain to\n"
               "  --accounts FILE      accounts clients must log in as (docs/config.md; see clink-accounts);\n"
               "                       with accounts, MySQL clients are served on the same port (docs/mysql.md)\n"
               "  --no-mysql           refuse MySQL-protocol clients even with accounts\n"
               "  --workers N          worker threads (default: one per CPU)\n"
               "  --max-connections N  logged-in client sessions at once, one more for a grant-ALL account\n"
               "                       (config: max_connections, default 151; node links not counted)\n"
               "  --allow-plaintext    also accept native plaintext clients on the same port\n"
               "  --tls12              allow TLS 1.2 as well as 1.3\n"
               "  --ktls MODE          kernel TLS offload: auto (default: where the kernel can), off,\n"
               "                       required (a connection that cannot be offloaded fails)\n"
               "  --port-file FILE     write the bound port there once listening\n"
               "  --ops-port N         serve the HTTPS operations endpoint on this port (docs/ops.md;\n"
               "                       with --config: ops_port, default 9001; 0: any free port)\n"
               "  --ops-port-file FILE write the bound ops port there once listening\n"
               "  --no-ops             no operations endpoint\n"
               "  --name NAME          the node's name on the ops page and in metrics (config: name;\n"
               "                       default: host name:port)\n"
               "  --drain-ms N         how long shutdown lets calls finish (default 2000)\n"
               "  -v, --verbose        log connections (repeat for debug)\n"
               "  -h, --help           this text\n");
}

static int stop; /* set when the port file cannot be written */

static void echo(struct clink_req *req, void *user)
{
    (void)user;
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

/* An aggregator's pools, as text (clink-status --pools). */
static void pools(struct clink_req *req, void *user)
{
    /* Set once before the port file is written; freed only after the node's workers have stopped. */
    struct clink_cluster *cl = __atomic_load_n((struct clink_cluster **)user, __ATOMIC_ACQUIRE);
    static _Thread_local char text[16384];
    size_t n = cl ? clink_cluster_status_format(cl, text, sizeof(text)) : 0;
    if (cl == NULL) {
        n = (size_t)snprintf(text, sizeof(text), "No pools: this node has no [leaf] or [aggregator] peers\n");
    }
    struct iovec iov = {.iov_base = text, .iov_len = n};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

static void sink(struct clink_req *req, void *user)
{
    (void)user;
    CLINK_IGNORE(clink_req_respond(req, NULL, 0));
}

/* What the command line said, so that a reload applies the same overrides to the re-read file. */
struct settings {
    const char *config, *cert, *key, *ca;
    int tls12;
    struct clink_ticket_keys *tickets; /* one object for the node's life: tickets outlive a reload */
    const char *ticket_file;
    int ops; /* the ops endpoint runs: its certificate is reloaded too */
};

/* TLS context from the config file (if any) and the command line's overrides. */
static int make_tls(const struct settings *set, struct clink_config *cfg, struct clink_tls_ctx **out, char *err,
                    size_t errlen)
{
    struct clink_tls_opts to = {0};
    if (set->config != NULL &&
        (clink_config_load(set->config, cfg, err, errlen) < 0 || clink_config_tls_opts(cfg, &to, err, errlen) < 0)) {
        return -1;
    }
    to.cert_file = set->cert ? set->cert : to.cert_file;
    to.key_file = set->key ? set->key : to.key_file;
    to.ca_file = set->ca ? set->ca : to.ca_file;
    if (set->tls12) {
        to.min_version = CLINK_TLS_1_2;
    }
    to.ticket_keys = set->tickets;
    return clink_tls_ctx_new(&to, out, err, errlen) < 0 ? -1 : 0;
}

/* ALTER INSTANCE RELOAD TLS from a MySQL client (on a worker): the certificate, key and CA files again. */
struct sql_reload {
    struct clink_node *node;
    const struct settings *set;
};

static int sql_reload_tls(void *user, char *err, size_t errlen)
{
    const struct sql_reload *r = user;
    struct clink_config cfg; /* make_tls reads only what settings hold; cfg is its scratch */
    struct clink_tls_ctx *tls = NULL;
    if (r->node == NULL || make_tls(r->set, &cfg, &tls, err, errlen) < 0) {
        return -1;
    }
    int ret = clink_node_reload_tls(r->node, tls);
    clink_tls_ctx_free(tls);
    if (ret < 0) {
        snprintf(err, errlen, "%s", clink_strerror(ret));
        return -1;
    }
    fprintf(stderr, "clink-node: reload: TLS credentials replaced (ALTER INSTANCE RELOAD TLS)\n");
    return 0;
}

/* The HTTPS port's certificate: ops_ssl_cert/ops_ssl_key, else the node's own pair. */
static int make_https(const struct settings *set, const struct clink_config *cfg, struct clink_tls_ctx **out, char *err,
                      size_t errlen)
{
    const char *cert = cfg->ops_ssl_cert[0] ? cfg->ops_ssl_cert : set->cert ? set->cert : cfg->ssl_cert;
    const char *key = cfg->ops_ssl_key[0] ? cfg->ops_ssl_key : set->key ? set->key : cfg->ssl_key;
    if (cert[0] == '\0' || key[0] == '\0') {
        snprintf(err, errlen, "no certificate for the HTTPS port (ops_ssl_cert/ops_ssl_key, or ssl_cert/ssl_key)");
        return -1;
    }
    /*
     * Without a config file the check is on, as for the node's own key.
     * Client certificates are verified against the cluster's CAs and CRL:
     * an operator can log in by certificate (docs/ops.md).
     */
    const char *ca = set->ca ? set->ca : cfg->ssl_ca;
    const char *crl = cfg->ssl_crl;
    struct clink_tls_opts o = {.cert_file = cert,
                               .key_file = key,
                               .allow_open_key_file = set->config != NULL && !cfg->ssl_key_mode_check,
                               .client_ca_file = ca[0] ? ca : NULL,
                               .crl_file = crl[0] ? crl : NULL};
    return clink_tls_ctx_new_https(&o, out, err, errlen) < 0 ? -1 : 0;
}

struct reloader {
    pthread_mutex_t mu; /* SIGHUP and POST /reload may come at once */
    struct clink_node *node;
    const struct settings *set;
    struct clink_accounts *acc;
};

/* Append a line to a report. */
static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/*
 * SIGHUP and POST /reload: validate everything first; whatever fails keeps
 * what is in use. Returns 0 if everything reloaded, -1 if something was kept
 * (report says what and why, one clause per part).
 */
static int do_reload(struct reloader *r, char *report, size_t cap)
{
    static struct clink_config cfg; /* big: one, under mu */
    char err[512];
    int ret = 0;
    report[0] = '\0';
    pthread_mutex_lock(&r->mu);
    const struct settings *set = r->set;
    struct clink_tls_ctx *tls = NULL;
    if (make_tls(set, &cfg, &tls, err, sizeof(err)) < 0) {
        say(report, cap, "TLS: %s; keeping the credentials in use. ", err);
        ret = -1;
    } else {
        int e = clink_node_reload_tls(r->node, tls);
        clink_tls_ctx_free(tls);
        say(report, cap, "TLS credentials %s. ", e == 0 ? "replaced" : clink_strerror(e));
        ret = e == 0 ? ret : -1;
    }
    if (set->ops && (set->config == NULL || clink_config_load(set->config, &cfg, err, sizeof(err)) == 0)) {
        struct clink_tls_ctx *h = NULL;
        if (make_https(set, &cfg, &h, err, sizeof(err)) < 0) {
            say(report, cap, "HTTPS certificate: %s; keeping the one in use. ", err);
            ret = -1;
        } else {
            int e = clink_node_reload_https(r->node, h);
            clink_tls_ctx_free(h);
            say(report, cap, "HTTPS certificate %s. ", e == 0 ? "replaced" : clink_strerror(e));
            ret = e == 0 ? ret : -1;
        }
    }
    if (set->config != NULL && clink_config_load(set->config, &cfg, err, sizeof(err)) == 0 &&
        (enum clink_secure_transport)cfg.secure_transport != clink_node_secure_transport(r->node)) {
        int e = clink_node_set_secure_transport(r->node, (enum clink_secure_transport)cfg.secure_transport);
        say(report, cap, "require_secure_transport %s: %s. ",
            clink_secure_transport_name((enum clink_secure_transport)cfg.secure_transport),
            e == 0 ? "now in effect" : "refused (a TLS state needs ssl_cert, ssl_key and ssl_ca)");
        ret = e == 0 ? ret : -1;
    }
    if (set->ticket_file != NULL) {
        if (clink_ticket_keys_reload(set->tickets, err, sizeof(err)) < 0) {
            say(report, cap, "ticket keys: %s; keeping the keys in use. ", err);
            ret = -1;
        } else {
            say(report, cap, "Session ticket keys read from %s. ", set->ticket_file);
        }
    }
    if (r->acc != NULL) {
        if (clink_accounts_reload(r->acc, err, sizeof(err)) < 0) {
            say(report, cap, "accounts: %s; keeping the accounts in use. ", err);
            ret = -1;
        } else {
            say(report, cap, "%zu account(s).", clink_accounts_count(r->acc));
        }
    }
    pthread_mutex_unlock(&r->mu);
    return ret;
}

static int ops_reload(void *user, char *msg, size_t cap)
{
    int ret = do_reload(user, msg, cap);
    fprintf(stderr, "clink-node: reload (POST /reload): %s\n", msg);
    return ret;
}

static int write_port_file(const char *path, uint16_t port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
        fprintf(stderr, "clink-node: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static unsigned parse_uint(const char *opt, const char *v, unsigned max)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] == '\0' || x > max) {
        fprintf(stderr, "clink-node: %s: '%s' is not a number from 0 to %u\n", opt, v, max);
        exit(2);
    }
    return (unsigned)x;
}

/*
 * Every connection is a descriptor: under a low soft limit (1024 is common)
 * accept fails with EMFILE long before max_connections and max_node_links
 * are reached, and an administrator's login fails with the rest. Raise the
 * soft limit to the hard one (which only root may raise), and say when even
 * that is short of what the limits allow.
 */
static void open_files_limit(uint32_t max_connections, uint32_t max_node_links, unsigned workers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return;
    }
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            fprintf(stderr, "clink-node: open files limit raised from %llu to %llu (the hard limit)\n",
                    (unsigned long long)was, (unsigned long long)rl.rlim_cur);
        } else {
            fprintf(stderr, "clink-node: cannot raise the open files limit from %llu to %llu: %s\n",
                    (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = was;
        }
    }
    if (workers == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        workers = c > 0 ? (unsigned)c : 1;
    }
    /* Each worker holds a ring and an eventfd; listeners, the ops port and files read on reload take a few more. */
    uint64_t need = (uint64_t)max_connections + 1 + max_node_links + 2ull * workers + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        fprintf(stderr,
                "clink-node: warning: the open files limit (%llu) is below what max_connections (%u, and 1 for an "
                "administrator) and max_node_links (%u) may need (%llu): connections past it fail with EMFILE; "
                "raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower the limits\n",
                (unsigned long long)rl.rlim_cur, max_connections, max_node_links, (unsigned long long)need);
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"workers", required_argument, NULL, 'w'},
        {"allow-plaintext", no_argument, NULL, 'P'},
        {"no-mysql", no_argument, NULL, 'M'},
        {"tls12", no_argument, NULL, '2'},
        {"port-file", required_argument, NULL, 'f'},
        {"drain-ms", required_argument, NULL, 'd'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"config", required_argument, NULL, 'F'},
        {"accounts", required_argument, NULL, 'A'},
        {"ktls", required_argument, NULL, 'K'},
        {"ops-port", required_argument, NULL, 'O'},
        {"ops-port-file", required_argument, NULL, 'Q'},
        {"no-ops", no_argument, NULL, 'N'},
        {"name", required_argument, NULL, 'n'},
        {"max-connections", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    const char *listen = NULL, *cert = NULL, *key = NULL, *ca = NULL, *port_file = NULL;
    unsigned workers = 0, drain_ms = 2000;
    int allow_plain = 0, tls12 = 0, verbose = 0, ch, ktls = 0, no_mysql = 0;
    const char *config = NULL, *accounts_file = NULL, *ops_port_file = NULL;
    int ops_port = -1, no_ops = 0;
    const char *name = NULL;
    unsigned max_connections = 0;
    while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l':
            listen = optarg;
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            ca = optarg;
            break;
        case 'w':
            workers = parse_uint("--workers", optarg, 1024);
            break;
        case 'P':
            allow_plain = 1;
            break;
        case 'M':
            no_mysql = 1;
            break;
        case '2':
            tls12 = 1;
            break;
        case 'f':
            port_file = optarg;
            break;
        case 'd':
            drain_ms = parse_uint("--drain-ms", optarg, 3600000);
            break;
        case 'v':
            verbose++;
            break;
        case 'F':
            config = optarg;
            break;
        case 'A':
            accounts_file = optarg;
            break;
        case 'K':
            ktls = !strcmp(optarg, "auto")       ? CLINK_KTLS_AUTO
                   : !strcmp(optarg, "off")      ? CLINK_KTLS_DISABLED
                   : !strcmp(optarg, "required") ? CLINK_KTLS_REQUIRED
                                                 : -1;
            if (ktls < 0) {
                fprintf(stderr, "clink-node: --ktls: expected auto, off or required, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'O':
            ops_port = (int)parse_uint("--ops-port", optarg, 65535);
            break;
        case 'Q':
            ops_port_file = optarg;
            break;
        case 'N':
            no_ops = 1;
            break;
        case 'n':
            name = optarg;
            break;
        case 'C':
            max_connections = parse_uint("--max-connections", optarg, 1000000);
            if (max_connections == 0) {
                fprintf(stderr, "clink-node: --max-connections: at least 1\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    static struct clink_config cfg;
    char err[512];
    char host[128] = "";
    uint16_t port = 0;
    if (config != NULL) {
        /* Fail closed: a broken config never becomes a plaintext or half-configured node. */
        if (clink_config_load(config, &cfg, err, sizeof(err)) < 0) {
            fprintf(stderr, "clink-node: %s\n", err);
            return 1;
        }
        snprintf(host, sizeof(host), "%s", cfg.bind_address);
        port = cfg.port;
        allow_plain = allow_plain || !cfg.require_secure_transport;
        if (ops_port < 0 && cfg.ops) {
            ops_port = cfg.ops_port;
        }
        if (workers == 0) {
            workers = cfg.workers;
        }
        if (accounts_file == NULL && cfg.accounts_file[0]) {
            accounts_file = cfg.accounts_file;
        }
        if (ktls == 0) {
            ktls = cfg.ktls;
        }
        no_mysql = no_mysql || !cfg.mysql;
        if (max_connections == 0) {
            max_connections = cfg.max_connections;
        }
    }
    if (no_ops) {
        ops_port = -1;
    }
    /* A node that starts in plaintext (require_secure_transport = PLAINTEXT) may have no certificate yet. */
    int plain_start =
        config != NULL && cfg.secure_transport == CLINK_SECURE_PLAINTEXT && cert == NULL && cfg.ssl_cert[0] == '\0';
    if (optind != argc || (config == NULL && (listen == NULL || cert == NULL || key == NULL || ca == NULL))) {
        fprintf(stderr, "clink-node: --config, or --listen, --cert, --key and --ca, are required\n"
                        "Run 'clink-node --help' for usage.\n");
        return 2;
    }
    if (listen != NULL && clink_tool_hostport(listen, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "clink-node: --listen: expected HOST:PORT, got '%s'\n", listen);
        return 2;
    }
    open_files_limit(max_connections ? max_connections : CLINK_DEFAULT_MAX_CONNECTIONS,
                     cfg.max_node_links ? cfg.max_node_links : CLINK_DEFAULT_MAX_NODE_LINKS, workers);
    struct settings set = {.config = config, .cert = cert, .key = key, .ca = ca, .tls12 = tls12, .ops = ops_port >= 0};
    set.ticket_file = cfg.ssl_session_ticket_key[0] ? cfg.ssl_session_ticket_key : NULL;
    /* Every exit below goes through `out`, which frees what was made (rc 1 unless it ran and stopped well). */
    int rc = 1, ret;
    struct clink_tls_ctx *tls = NULL;
    struct clink_accounts *acc = NULL;
    struct clink_node *node = NULL;
    struct clink_tls_ctx *https_tls = NULL;
    struct clink_ops *ops = NULL;
    if (clink_ticket_keys_new(set.ticket_file, 0, &set.tickets, err, sizeof(err)) < 0) {
        fprintf(stderr, "clink-node: ssl_session_ticket_key: %s\n", err);
        goto out;
    }
    if (!plain_start && make_tls(&set, &cfg, &tls, err, sizeof(err)) < 0) {
        fprintf(stderr, "clink-node: TLS configuration: %s\n", err);
        goto out;
    }
    if (ops_port >= 0 && make_https(&set, &cfg, &https_tls, err, sizeof(err)) < 0) {
        if (!plain_start) {
            fprintf(stderr, "clink-node: ops endpoint: %s (ops = OFF or --no-ops runs without it)\n", err);
            goto out;
        }
        /* A plaintext node with no certificate yet: it runs, without the endpoint (a restart brings it). */
        fprintf(stderr, "clink-node: ops endpoint off: %s\n", err);
        ops_port = -1;
        set.ops = 0;
    }
    if (accounts_file != NULL && clink_accounts_load(accounts_file, &acc, err, sizeof(err)) < 0) {
        fprintf(stderr, "clink-node: accounts: %s\n", err);
        goto out;
    }
    struct clink_login_throttle throttle = {.free_failures = cfg.login_free_failures,
                                            .delay_step_ms = cfg.login_delay_step_ms,
                                            .max_delay_ms = cfg.login_max_delay_ms,
                                            .entries = cfg.login_throttle_entries};
    if (acc != NULL && clink_accounts_set_throttle(acc, &throttle) < 0) {
        fprintf(stderr, "clink-node: the failed-login throttle: out of memory\n");
        goto out;
    }
    static struct sql_reload sql_reload; /* its node is set once made */
    sql_reload.set = &set;
    struct clink_mysql_builtin_opts sql_opts = {.reload_tls = sql_reload_tls, .reload_user = &sql_reload};
    struct clink_mysql_opts mysql_opts = {.query = clink_mysql_builtin, .query_user = &sql_opts};
    struct clink_node_opts no = {
        .workers = workers,
        .tls = tls,
        /*
         * Plaintext is possible at all only where the file lets the transport-security state move (a
         * SIGHUP or POST /secure-transport may go down to ACCEPT_BOTH); the state says what is allowed now.
         */
        .allow_plaintext = allow_plain || config != NULL,
        .secure_transport = config != NULL ? (enum clink_secure_transport)cfg.secure_transport
                            : allow_plain  ? CLINK_SECURE_PREFER_TLS
                                           : CLINK_SECURE_REQUIRE_TLS,
        .handshake_timeout_ms = cfg.handshake_timeout_ms,
        .max_frame = cfg.max_frame,
        .max_connections = max_connections,
        .max_node_links = cfg.max_node_links,
        .max_user_connections = cfg.max_user_connections,
        .wait_timeout_s = cfg.wait_timeout,
        .tcp_keepalive_s = cfg.tcp_keepalive_idle,
        .ktls = (enum clink_ktls_mode)ktls,
        /* Warnings (refused logins and why) always; -v adds connections, -vv debug. */
        .log = clink_log_stderr,
        .log_level = verbose > 1 ? CLINK_LOG_DEBUG
                     : verbose   ? CLINK_LOG_INFO
                                 : CLINK_LOG_WARN,
        .accounts = acc,
        .mysql = acc != NULL && !no_mysql ? &mysql_opts : NULL,
    };
    if ((ret = clink_node_new(&no, &node)) < 0) {
        fprintf(stderr, "clink-node: %s\n", clink_strerror(ret));
        goto out;
    }
    sql_reload.node = node;
    static struct clink_cluster *cluster;
    static struct fanout_leaves *leaves;
    if (clink_node_register(node, CLINK_TOOL_ECHO, echo, NULL) < 0 ||
        clink_node_register(node, CLINK_TOOL_POOLS, pools, &cluster) < 0 ||
        clink_node_register(node, CLINK_TOOL_FANOUT, fanout_handler, &leaves) < 0 ||
        clink_node_register(node, CLINK_TOOL_SINK, sink, NULL) < 0) {
        fprintf(stderr, "clink-node: cannot register methods\n");
        goto out;
    }
    if ((ret = clink_node_listen(node, host, port)) < 0) {
        fprintf(stderr, "clink-node: listen on %s port %u: %s\n", host, port, clink_strerror(ret));
        goto out;
    }
    static struct reloader reloader = {.mu = PTHREAD_MUTEX_INITIALIZER};
    reloader.node = node;
    reloader.set = &set;
    reloader.acc = acc;
    char shown_name[64];
    if (name == NULL && cfg.name[0]) {
        name = cfg.name;
    }
    if (name == NULL) {
        char hn[48] = "localhost";
        CLINK_IGNORE(gethostname(hn, sizeof(hn) - 1) < 0);
        hn[sizeof(hn) - 1] = '\0';
        snprintf(shown_name, sizeof(shown_name), "%s:%u", hn, clink_node_port(node));
        name = shown_name;
    }
    if (ops_port >= 0) {
        struct clink_ops_opts oo = {.node = node,
                                    .addr = host,
                                    .port = (uint16_t)ops_port,
                                    .tls = https_tls,
                                    .accounts = acc,
                                    .reload = ops_reload,
                                    .reload_user = &reloader,
                                    .name = name,
                                    .log = clink_log_stderr,
                                    .log_level = verbose ? CLINK_LOG_INFO : CLINK_LOG_WARN};
        if ((ret = clink_ops_new(&oo, &ops)) < 0) {
            fprintf(stderr, "clink-node: ops endpoint on %s port %d: %s (set ops_port, or ops = OFF)\n", host, ops_port,
                    clink_strerror(ret));
            goto out;
        }
    }
    /* Block the stop signals before threads exist, then wait for them here: no handler races. */
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);
    if ((ret = clink_node_start(node)) < 0) {
        fprintf(stderr, "clink-node: start: %s\n", clink_strerror(ret));
        goto out;
    }
    rc = 0; /* running: a setup step below that fails stops it, with rc 1 */
    /* An aggregator: one pool per [leaf]/[aggregator] peer, kept warm from now on. */
    if (cfg.npeers > 0) {
        struct clink_cluster_opts clo = {
            .node = node, .log = clink_log_stderr, .log_level = verbose ? CLINK_LOG_INFO : CLINK_LOG_WARN};
        struct clink_cluster *cl = NULL;
        if ((ret = clink_cluster_new(&clo, &cl)) < 0) {
            fprintf(stderr, "clink-node: cluster: %s\n", clink_strerror(ret));
            stop = 1;
            rc = 1;
        }
        for (size_t i = 0; cl != NULL && i < cfg.npeers; i++) {
            const struct clink_config_peer *cp = &cfg.peers[i];
            struct clink_pool_opts peer_pool;
            struct clink_peer peer = {.name = cp->name,
                                      .role = cp->aggregator ? CLINK_ROLE_AGGREGATOR : CLINK_ROLE_LEAF,
                                      .host = cp->host,
                                      .port = cp->port,
                                      .expected_name = cp->ssl_server_name[0] ? cp->ssl_server_name : NULL,
                                      .ssl_mode = (enum clink_ssl_mode)cp->ssl_mode,
                                      .user = cp->user[0] ? cp->user : NULL,
                                      .pool = &peer_pool};
            peer_pool = (struct clink_pool_opts){.ktls = (enum clink_ktls_mode)cp->ktls}; /* 0 for the rest: defaults */
            if ((ret = clink_cluster_add(cl, &peer)) < 0) {
                fprintf(stderr, "clink-node: [%s %s]: %s\n", cp->aggregator ? "aggregator" : "leaf", cp->name,
                        clink_strerror(ret));
                stop = 1;
                rc = 1;
            }
        }
        struct fanout_leaves *lv = cl ? calloc(1, sizeof(*lv)) : NULL;
        for (size_t i = 0; lv != NULL && i < cfg.npeers && lv->n < FANOUT_MAX_LEAVES; i++) {
            struct clink_pool *p = cfg.peers[i].aggregator ? NULL : clink_cluster_pool(cl, cfg.peers[i].name);
            if (p != NULL) {
                snprintf(lv->names[lv->n], sizeof(lv->names[0]), "%s", cfg.peers[i].name);
                lv->pools[lv->n++] = p;
            }
        }
        __atomic_store_n(&cluster, cl, __ATOMIC_RELEASE);
        __atomic_store_n(&leaves, lv, __ATOMIC_RELEASE);
        clink_ops_set_cluster(ops, cl);
        fprintf(stderr, "clink-node: aggregator of %zu peer(s)\n", cfg.npeers);
    }
    if (ops != NULL && ops_port_file != NULL && write_port_file(ops_port_file, clink_node_https_port(node)) < 0) {
        stop = 1;
        rc = 1;
    }
    if (port_file != NULL && write_port_file(port_file, clink_node_port(node)) < 0) {
        stop = 1;
        rc = 1;
    }
    fprintf(stderr, "clink-node: listening on %s port %u, %u workers, transport security %s\n", host,
            clink_node_port(node), clink_node_workers(node),
            clink_secure_transport_name(clink_node_secure_transport(node)));
    if (ops != NULL) {
        fprintf(stderr, "clink-node: ops endpoint: https://%s:%u/ (/metrics, /status)\n", host,
                clink_node_https_port(node));
    }
    fprintf(stderr, "clink-node: %s\n",
            acc ? "clients log in as accounts" : "no accounts file: a verified certificate is all a client proves");
    int sig = 0;
    while (!stop) {
        if (sigwait(&stopset, &sig) != 0) {
            continue;
        }
        if (sig != SIGHUP) {
            break;
        }
        char report[2048];
        do_reload(&reloader, report, sizeof(report));
        fprintf(stderr, "clink-node: reload: %s (SIGHUP)\n", report);
    }
    struct clink_node_stats s;
    clink_node_get_stats(node, &s);
    CLINK_IGNORE(clink_node_shutdown(node, drain_ms));
    clink_ops_free(ops); /* after the workers stopped, before the node is freed (clink/ops.h) */
    ops = NULL;
    /* After the workers stopped (no handler can read it); its connections are closed already. */
    struct fanout_leaves *lv = __atomic_exchange_n(&leaves, NULL, __ATOMIC_ACQ_REL);
    for (size_t i = 0; lv != NULL && i < lv->n; i++) {
        clink_pool_release(lv->pools[i]);
    }
    free(lv);
    clink_cluster_free(__atomic_exchange_n(&cluster, NULL, __ATOMIC_ACQ_REL));
    fprintf(stderr, "clink-node: stopped: %llu connections accepted, %llu refused, %llu requests handled\n",
            (unsigned long long)s.conns_accepted, (unsigned long long)s.conns_refused,
            (unsigned long long)s.requests_handled);
out:
    if (ops != NULL) {
        CLINK_IGNORE(clink_node_shutdown(node, 0));
        clink_ops_free(ops);
    }
    clink_node_free(node);
    clink_tls_ctx_free(https_tls);
    clink_tls_ctx_free(tls);
    clink_accounts_free(acc);
    clink_ticket_keys_free(set.tickets);
    return rc;
}
