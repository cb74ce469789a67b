/*
 * clink-admin: the cluster from one place (docs/admin.md), a thin main over
 * clink/admin.h: list the nodes an aggregator knows, and change, reload or
 * restart them through their ops endpoints.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clink/admin.h"
#include "clink/methods.h"

static const char usage[] =
    "Usage: clink-admin [options] list [-q] [-r leaf|aggregator]\n"
    "       clink-admin [options] update-config (--all | NODE...) --key KEY --value VALUE [--key K --value V]...\n"
    "       clink-admin [options] reload (--all | NODE...)\n"
    "       clink-admin [options] restart (--all | NODE...)\n"
    "       clink-admin [options] rotate-certs --ca DIR [--days N] [--trust FILE] (--all | NODE...)\n"
    "       clink-admin [options] replace-issuer --from DN --to DN (--all | NODE...)\n\n"
    "Administer a clink cluster through its nodes' HTTPS ops endpoints, as memsql-ops does: the nodes are\n"
    "the ones the aggregator at --host knows (itself and its [leaf]/[aggregator] peers). Each node is\n"
    "verified (its certificate must chain to --ca and name its address) and logs the administrator in by\n"
    "client certificate: an account with no password, REQUIRE SUBJECT naming --cert, and grant ALL.\n\n"
    "Commands:\n"
    "  list                 the nodes: name, role, address, ops port, up, transport security, certificate expiry\n"
    "    -q                 names only, one per line (for xargs); -r ROLE: only leaves or aggregators\n"
    "  update-config        set KEY = VALUE in each node's config file ([server], or the !include'd file that\n"
    "                       holds it), checked whole before it is written, the old file kept as FILE.bak, and\n"
    "                       applied: says per node applied, needs a restart, unchanged, or refused and why.\n"
    "                       Several pairs are one change, checked together (ssl_cert with its ssl_key)\n"
    "  reload               each node reads its certificates, keys, accounts and config again\n"
    "  restart              each node in turn stops gracefully and its supervisor starts it again; the next\n"
    "                       node waits until this one is back (a node without a supervisor says so)\n"
    "  rotate-certs         each node in turn makes a new key and a signing request for the identity it has;\n"
    "                       it is signed here with DIR/ca.pem and DIR/ca-key.pem (clink-certs ca), for that\n"
    "                       identity only; the node checks the pair, installs it (old files kept as .bak)\n"
    "                       and reloads. The key never leaves the node. --days N: validity (default 365);\n"
    "                       --trust FILE: the CAs the current certificates chain to, when another CA (a\n"
    "                       CA rollover, docs/admin.md) issued them\n"
    "  replace-issuer       accounts whose REQUIRE ISSUER is --from (as the account says it: /C=../CN=..)\n"
    "                       require --to instead: a CA rollover's step for the accounts\n\n"
    "Options (each also from the environment, CLINK_ADMIN_<NAME>, e.g. CLINK_ADMIN_CA):\n"
    "  --host HOST:PORT     the aggregator's ops endpoint (default 127.0.0.1:9001)\n"
    "  --ca FILE            the CA bundle the nodes' ops certificates chain to (required)\n"
    "  --cert FILE, --key FILE  the administrator's certificate and key\n"
    "  --user NAME          the account (default: admin); a password login reads CLINK_ADMIN_PASSWORD\n"
    "  --ssl-server-name N  the name every node's ops certificate carries, where they share one (default:\n"
    "                       each node's address)\n"
    "  --timeout-ms N       per request (default 10000); restart waits up to 60 s per node\n"
    "  --all                every node the aggregator knows, itself included\n"
    "  -h, --help           this text\n\n"
    "Exit status: 0 when every node did it, 1 when one refused or failed, 2 for bad usage.\n";

struct args {
    const char *host, *ca, *cert, *key, *user, *role, *ca_dir, *trust, *server_name, *from, *to;
    const char *cfg_keys[16], *cfg_values[16];
    size_t nkeys, nvalues;
    long days;
    unsigned timeout_ms;
    int all, quiet;
};

static const char *env_or(const char *v, const char *name, const char *dflt)
{
    const char *e = getenv(name);
    return v ? v : e && e[0] ? e : dflt;
}

static void fmt_expiry(int64_t t, char *out, size_t cap)
{
    if (t == 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    long days = (long)((t - (int64_t)time(NULL)) / 86400);
    snprintf(out, cap, "%04d-%02d-%02d (%ld days)", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, days);
}

static int list(const struct clink_admin_node *nodes, size_t n, const struct args *a)
{
    if (!a->quiet) {
        printf("%-16s %-11s %-22s %-6s %-4s %-12s %s\n", "NAME", "ROLE", "ADDRESS", "OPS", "UP", "TRANSPORT",
               "CERTIFICATE EXPIRES");
    }
    for (size_t i = 0; i < n; i++) {
        const struct clink_admin_node *x = &nodes[i];
        if (a->role && strcmp(a->role, x->role) != 0) {
            continue;
        }
        if (a->quiet) {
            printf("%s\n", x->name);
            continue;
        }
        char addr[300], exp[64], ops[8];
        snprintf(addr, sizeof(addr), strchr(x->host, ':') ? "[%s]:%u" : "%s:%u", x->host, x->port);
        snprintf(ops, sizeof(ops), x->ops_port ? "%u" : "-", x->ops_port);
        fmt_expiry(x->cert_not_after, exp, sizeof(exp));
        printf("%-16s %-11s %-22s %-6s %-4s %-12s %s%s\n", x->name, x->role, addr, ops, x->up ? "yes" : "no",
               x->secure_transport, exp, x->self ? "  (asked)" : "");
    }
    return 0;
}

/* The node's ops endpoint answers GET /cluster as a new process (another instance), within 60 s. */
static int wait_back(struct clink_admin *adm, const struct clink_admin_node *x, double *secs)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct clink_admin_node *now = NULL;
        size_t n = 0;
        char err[256];
        if (clink_admin_list(adm, x->host, x->ops_port, &now, &n, err, sizeof(err)) == 0 && n > 0 &&
            strcmp(now[0].instance, x->instance) != 0) {
            free(now);
            clock_gettime(CLOCK_MONOTONIC, &t);
            *secs = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
            return 0;
        }
        free(now);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 60) {
            return -1;
        }
        usleep(200000);
    }
}

/* One command on one node; prints its line. Returns 0 or 1. */
static int act(struct clink_admin *adm, const char *cmd, const struct clink_admin_node *x, const struct args *a)
{
    struct clink_admin_result r;
    int ret;
    if (strcmp(cmd, "update-config") == 0) {
        ret = clink_admin_set_configs(adm, x, a->nkeys, a->cfg_keys, a->cfg_values, &r);
    } else if (strcmp(cmd, "reload") == 0) {
        ret = clink_admin_reload(adm, x, &r);
    } else if (strcmp(cmd, "replace-issuer") == 0) {
        ret = clink_admin_replace_issuer(adm, x, a->from, a->to, &r);
    } else if (strcmp(cmd, "rotate-certs") == 0) {
        char ca[4096], key[4096];
        snprintf(ca, sizeof(ca), "%s/ca.pem", a->ca_dir);
        snprintf(key, sizeof(key), "%s/ca-key.pem", a->ca_dir);
        ret = clink_admin_rotate_cert(adm, x, ca, key, a->trust, (int64_t)a->days * 86400, &r);
        printf("%s: %s%s%s\n", x->name, ret == 0 ? "new certificate installed and applied" : "refused",
               r.message[0] ? ": " : "", r.message);
        return ret == 0 ? 0 : 1;
    } else {
        ret = clink_admin_restart(adm, x, &r);
    }
    const char *what = strcmp(r.outcome, "restart") == 0 ? "changed, needs a restart" : r.outcome;
    if (ret == 0 && strcmp(cmd, "restart") == 0) {
        double secs = 0;
        if (wait_back(adm, x, &secs) < 0) {
            printf("%s: restart asked, but it did not come back within 60 s\n", x->name);
            return 1;
        }
        printf("%s: restarted, back in %.1f s\n", x->name, secs);
        return 0;
    }
    printf("%s: %s%s%s%s%s\n", x->name, what, r.file[0] ? " in " : "", r.file, r.message[0] ? ": " : "", r.message);
    return ret == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    const char *timeout = NULL;
    const struct option lo[] = {{"host", 1, NULL, 'H'},
                                {"ca", 1, NULL, 'a'},
                                {"cert", 1, NULL, 'c'},
                                {"key", 1, NULL, 'k'},
                                {"user", 1, NULL, 'u'},
                                {"timeout-ms", 1, NULL, 't'},
                                {"all", 0, NULL, 'A'},
                                {"value", 1, NULL, 'V'},
                                {"config-key", 1, NULL, 'K'},
                                {"help", 0, NULL, 'h'},
                                {"ca-dir", 1, NULL, 'D'},
                                {"days", 1, NULL, 'd'},
                                {"trust", 1, NULL, 'T'},
                                {"ssl-server-name", 1, NULL, 'S'},
                                {"from", 1, NULL, 'f'},
                                {"to", 1, NULL, 'o'},
                                {NULL, 0, NULL, 0}};
    /* After the command, --key is update-config's key and --ca rotate-certs' CA folder (memsql-ops' spelling). */
    static char config_key[] = "--config-key", ca_dir[] = "--ca-dir";
    int ch, seen_cmd = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-') {
            seen_cmd = 1;
        } else if (seen_cmd && strcmp(argv[i], "--key") == 0) {
            argv[i] = config_key;
        } else if (seen_cmd && strcmp(argv[i], "--ca") == 0) {
            argv[i] = ca_dir;
        }
    }
    while ((ch = getopt_long(argc, argv, "hqr:", lo, NULL)) != -1) {
        switch (ch) {
        case 'H':
            a.host = optarg;
            break;
        case 'a':
            a.ca = optarg;
            break;
        case 'c':
            a.cert = optarg;
            break;
        case 'k':
            a.key = optarg;
            break;
        case 'u':
            a.user = optarg;
            break;
        case 't':
            timeout = optarg;
            break;
        case 'A':
            a.all = 1;
            break;
        case 'V':
            a.cfg_values[a.nvalues < 16 ? a.nvalues : 15] = optarg;
            a.nvalues++;
            break;
        case 'K':
            a.cfg_keys[a.nkeys < 16 ? a.nkeys : 15] = optarg;
            a.nkeys++;
            break;
        case 'q':
            a.quiet = 1;
            break;
        case 'r':
            a.role = optarg;
            break;
        case 'D':
            a.ca_dir = optarg;
            break;
        case 'T':
            a.trust = optarg;
            break;
        case 'S':
            a.server_name = optarg;
            break;
        case 'f':
            a.from = optarg;
            break;
        case 'o':
            a.to = optarg;
            break;
        case 'd':
            a.days = strtol(optarg, NULL, 10);
            a.days = a.days > 0 && a.days <= 3650 ? a.days : -1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs("Run 'clink-admin --help' for usage.\n", stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fputs("clink-admin: a command is needed: list, update-config, reload or restart\n"
              "Run 'clink-admin --help' for usage.\n",
              stderr);
        return 2;
    }
    const char *cmd = argv[optind++];
    int is_list = strcmp(cmd, "list") == 0, is_update = strcmp(cmd, "update-config") == 0;
    int is_rotate = strcmp(cmd, "rotate-certs") == 0, is_issuer = strcmp(cmd, "replace-issuer") == 0;
    if (is_issuer && (a.from == NULL || a.to == NULL)) {
        fprintf(stderr, "clink-admin: replace-issuer needs --from DN and --to DN\n");
        return 2;
    }
    if (!is_list && !is_update && !is_rotate && !is_issuer && strcmp(cmd, "reload") != 0 &&
        strcmp(cmd, "restart") != 0) {
        fprintf(
            stderr,
            "clink-admin: unknown command '%s' (list, update-config, reload, restart, rotate-certs, replace-issuer)\n",
            cmd);
        return 2;
    }
    if (is_rotate && (a.ca_dir == NULL || a.days < 0)) {
        fprintf(stderr, "clink-admin: rotate-certs needs --ca DIR (clink-certs ca's folder); --days is 1 to 3650\n");
        return 2;
    }
    if (a.role && strcmp(a.role, "leaf") != 0 && strcmp(a.role, "aggregator") != 0) {
        fprintf(stderr, "clink-admin: -r: expected leaf or aggregator, got '%s'\n", a.role);
        return 2;
    }
    if (!is_list && (a.all == (optind < argc))) {
        fprintf(stderr, "clink-admin: %s: name the nodes, or --all (not both)\n", cmd);
        return 2;
    }
    if (is_update && (a.nkeys == 0 || a.nkeys != a.nvalues || a.nkeys > 16)) {
        fprintf(stderr, "clink-admin: update-config needs --key KEY --value VALUE (1 to 16 pairs)\n");
        return 2;
    }
    char host[256];
    uint16_t port;
    const char *hp = env_or(a.host, "CLINK_ADMIN_HOST", "127.0.0.1:9001");
    if (clink_tool_hostport(hp, host, sizeof(host), &port) < 0 || port == 0) {
        fprintf(stderr, "clink-admin: --host: expected HOST:PORT, got '%s'\n", hp);
        return 2;
    }
    char *end = NULL;
    unsigned long tmo = timeout ? strtoul(timeout, &end, 10) : 0;
    if (timeout && (*end != '\0' || tmo == 0 || tmo > 600000)) {
        fprintf(stderr, "clink-admin: --timeout-ms: expected 1 to 600000, got '%s'\n", timeout);
        return 2;
    }
    struct clink_admin_opts ao = {.ca_file = env_or(a.ca, "CLINK_ADMIN_CA", NULL),
                                  .cert_file = env_or(a.cert, "CLINK_ADMIN_CERT", NULL),
                                  .key_file = env_or(a.key, "CLINK_ADMIN_KEY", NULL),
                                  .user = env_or(a.user, "CLINK_ADMIN_USER", "admin"),
                                  .password = getenv("CLINK_ADMIN_PASSWORD"),
                                  .server_name = env_or(a.server_name, "CLINK_ADMIN_SSL_SERVER_NAME", NULL),
                                  .timeout_ms = (uint32_t)tmo};
    if (ao.ca_file == NULL) {
        fprintf(stderr, "clink-admin: --ca FILE is needed (the CA the nodes' certificates chain to)\n");
        return 2;
    }
    if (ao.cert_file == NULL && ao.password == NULL) {
        fprintf(stderr, "clink-admin: --cert and --key are needed (or CLINK_ADMIN_PASSWORD for a password login)\n");
        return 2;
    }
    struct clink_admin *adm = NULL;
    char err[512];
    if (clink_admin_new(&ao, &adm, err, sizeof(err)) < 0) {
        fprintf(stderr, "clink-admin: %s\n", err);
        return 2;
    }
    struct clink_admin_node *nodes = NULL;
    size_t n = 0;
    int rc = 0, failed = 0;
    if (clink_admin_list(adm, host, port, &nodes, &n, err, sizeof(err)) < 0) {
        fprintf(stderr, "clink-admin: %s\n", err);
        rc = 1;
    } else if (is_list) {
        rc = list(nodes, n, &a);
    } else {
        for (int i = optind; i < argc; i++) { /* every name must be known before anything is changed */
            size_t k = 0;
            while (k < n && strcmp(nodes[k].name, argv[i]) != 0) {
                k++;
            }
            if (k == n) {
                fprintf(stderr, "clink-admin: no node '%s' (clink-admin list shows them)\n", argv[i]);
                rc = 1;
            }
        }
        /* The node asked goes last: a restart of the aggregator would cut the others' list short. */
        for (int pass = 0; rc == 0 && pass < 2; pass++) {
            for (size_t k = 0; k < n; k++) {
                int named = a.all;
                for (int i = optind; !named && i < argc; i++) {
                    named = strcmp(nodes[k].name, argv[i]) == 0;
                }
                if (named && nodes[k].self == pass) {
                    failed |= act(adm, cmd, &nodes[k], &a);
                }
            }
        }
        rc |= failed;
    }
    free(nodes);
    clink_admin_free(adm);
    return rc;
}
