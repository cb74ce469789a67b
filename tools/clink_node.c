/*
 * clink-node: a node built by the server layer (clink/server.h) answering the tool methods (clink/methods.h). What
 * belongs to the process is done here: the command line, signals (SIGHUP reloads), the open files limit, port files.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/clink.h"

static const char usage[] =
    "Usage: clink-node --config FILE [options]\n"
    "       clink-node --listen HOST:PORT --cert FILE --key FILE --ca FILE [options]\n\n"
    "Run a clink node that answers the echo, status, sink and (with [leaf NAME] peers in --config: an\n"
    "aggregator) fan-out methods over mutually verified TLS. SIGHUP reloads the files it read; on any\n"
    "error it keeps what is in use and says why. SIGINT/SIGTERM shut it down gracefully. Under a\n"
    "supervisor that sets CLINK_SUPERVISOR (contrib/), POST /restart stops it the same way and exits 75.\n\nOptions:\n"
    "  --config FILE        memsql.cnf-style file (docs/config.md); the options below override it\n"
    "  --listen HOST:PORT   address to listen on (port 0: any; see --port-file)\n"
    "  --cert FILE, --key FILE  this node's certificate chain and its private key (PEM)\n"
    "  --ca FILE            CA bundle that peers' certificates must chain to\n"
    "  --accounts FILE      accounts clients must log in as (clink-accounts); MySQL clients too (docs/mysql.md)\n"
    "  --no-mysql           refuse MySQL-protocol clients even with accounts\n"
    "  --workers N          worker threads (default: one per CPU)\n"
    "  --max-connections N  client sessions at once, one more for a grant-ALL account (default 151)\n"
    "  --allow-plaintext    also accept native plaintext clients on the same port\n"
    "  --tls12              allow TLS 1.2 as well as 1.3\n"
    "  --ktls MODE          kernel TLS offload: auto (default: where the kernel can), off, required\n"
    "  --port-file FILE     write the bound port there once listening (--ops-port-file FILE: the ops port)\n"
    "  --ops-port N         the HTTPS operations endpoint's port (docs/ops.md; 0: any; --config: 9001)\n"
    "  --no-ops             no operations endpoint\n"
    "  --name NAME          the node's name on the ops page and in metrics (default: host name:port)\n"
    "  --drain-ms N         how long shutdown lets calls finish (default 2000)\n"
    "  -v, --verbose        log connections (repeat for debug); -h, --help: this text\n";

static void say_lines(char *text) /* a server message, one line of ours per line */
{
    for (char *l = strtok(text, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        fprintf(stderr, "clink-node: %s\n", l);
    }
}

static void on_reload(void *user __attribute__((unused)), const char *source, const struct clink_server_report *rep)
{
    fprintf(stderr, "clink-node: reload: %s (%s)\n", rep->text, source);
}

/* POST /restart (clink-admin restart): stop as SIGTERM does, then exit 75, which the supervisor restarts on. */
#define EXIT_RESTART 75
static atomic_int restart_asked;

static int on_restart(void *user __attribute__((unused)), const char *who)
{
    fprintf(stderr, "clink-node: restart asked by %s\n", who);
    atomic_store(&restart_asked, 1);
    return kill(getpid(), SIGTERM) == 0 ? 0 : -1;
}

static int port_file(const char *path, uint16_t port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path ? path : "");
    FILE *f = path ? fopen(tmp, "w") : NULL;
    if (path && (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) < 0)) {
        fprintf(stderr, "clink-node: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct clink_server_opts o = {.tool_methods = 1, .log = clink_log_stderr, .on_reload = on_reload};
    const char *config = NULL, *pfile = NULL, *ofile = NULL, *ktls = NULL, *const modes[] = {"auto", "off", "required"};
    unsigned drain = 2000, ops_port = 65536, maxc = 0; /* ops_port past the maximum: not given */
    int tls12 = 0, no_mysql = 0, no_ops = 0, verbose = 0, k = 0, stop = 0, ch;
    /* clang-format off */
    const struct option lo[] = {
        {"config", 1, NULL, 'F'}, {"listen", 1, NULL, 'l'}, {"cert", 1, NULL, 'c'}, {"key", 1, NULL, 'k'},
        {"ca", 1, NULL, 'a'}, {"accounts", 1, NULL, 'A'}, {"no-mysql", 0, &no_mysql, 1}, {"workers", 1, NULL, 'w'},
        {"max-connections", 1, NULL, 'C'}, {"allow-plaintext", 0, &o.allow_plaintext, 1}, {"tls12", 0, &tls12, 1},
        {"ktls", 1, NULL, 'K'}, {"port-file", 1, NULL, 'f'}, {"ops-port", 1, NULL, 'O'}, {"no-ops", 0, &no_ops, 1},
        {"ops-port-file", 1, NULL, 'Q'}, {"name", 1, NULL, 'n'}, {"drain-ms", 1, NULL, 'd'},
        {"verbose", 0, NULL, 'v'}, {"help", 0, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char **strs[128] = {['F'] = &config, ['l'] = &o.listen, ['c'] = &o.cert_file, ['k'] = &o.key_file,
        ['a'] = &o.ca_file, ['A'] = &o.accounts_file, ['K'] = &ktls, ['f'] = &pfile, ['Q'] = &ofile, ['n'] = &o.name};
    unsigned *nums[128] = {['w'] = &o.workers, ['C'] = &maxc, ['O'] = &ops_port, ['d'] = &drain};
    const unsigned min[128] = {['C'] = 1}, max[128] = {['w'] = 1024, ['C'] = 1000000, ['O'] = 65535, ['d'] = 3600000};
    /* clang-format on */
    while ((ch = getopt_long(argc, argv, "vh", lo, &k)) != -1) {
        char *end = NULL;
        unsigned long x = (errno = 0, ch > 0 && ch < 128 && nums[ch] ? strtoul(optarg, &end, 10) : 0);
        if (ch == 'h' || ch == '?') {
            fputs(usage, ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 0 : 2;
        } else if (ch > 0 && ch < 128 && strs[ch] != NULL) {
            *strs[ch] = optarg;
        } else if (end != NULL && (errno != 0 || *end != '\0' || !optarg[0] || x < min[ch] || x > max[ch])) {
            fprintf(stderr, "clink-node: --%s: '%s' is not a number from %u to %u\n", lo[k].name, optarg, min[ch],
                    max[ch]);
            return 2;
        } else if (end != NULL) {
            *nums[ch] = (unsigned)x;
        }
        verbose += ch == 'v';
    }
    for (k = 0; ktls != NULL && k < 3 && strcmp(ktls, modes[k]) != 0; k++) {
    }
    if (optind != argc || (config == NULL && (!o.listen || !o.cert_file || !o.key_file || !o.ca_file)) || k == 3) {
        fprintf(stderr,
                k == 3 ? "clink-node: --ktls: expected auto, off or required, got '%s'\n"
                       : "clink-node: --config, or --listen, --cert, --key and --ca, are required\n"
                         "Run 'clink-node --help' for usage.\n",
                ktls);
        return 2;
    }
    o.ktls = ktls ? (enum clink_ktls_mode)(CLINK_KTLS_AUTO + k) : CLINK_KTLS_DEFAULT;
    o.max_connections = maxc;
    o.min_tls_version = tls12 ? CLINK_TLS_1_2 : 0;
    o.mysql = no_mysql ? CLINK_SERVER_OFF : CLINK_SERVER_DEFAULT;
    /* Without --config the endpoint runs only where --ops-port says. */
    o.ops = no_ops || (!config && ops_port > 65535) ? CLINK_SERVER_OFF : ops_port <= 65535 ? CLINK_SERVER_ON : 0;
    o.ops_port = ops_port > 65535 ? 0 : ops_port == 0 ? CLINK_SERVER_ANY_PORT : (int)ops_port;
    o.drain_ms = drain ? drain : 1; /* 0 is the default */
    o.log_level = verbose > 1 ? CLINK_LOG_DEBUG : verbose ? CLINK_LOG_INFO : CLINK_LOG_WARN;
    /* Only a supervisor can start it again (contrib/: systemd, clink-supervise); without one, POST /restart says so. */
    const char *sup = getenv("CLINK_SUPERVISOR");
    o.on_restart = sup && sup[0] ? on_restart : NULL;
    /* Block the stop signals before threads exist, then wait for them here: no handler races. */
    sigset_t sigs;
    sigemptyset(&sigs);
    for (const int *s = (const int[]){SIGINT, SIGTERM, SIGHUP, 0}; *s != 0; s++) {
        sigaddset(&sigs, *s);
    }
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct clink_server *srv = NULL;
    char msg[4096];
    if ((config ? clink_server_new_from_config(config, &o, &srv, msg, sizeof(msg))
                : clink_server_new(&o, &srv, msg, sizeof(msg))) < 0) {
        fprintf(stderr, "clink-node: %s\n", msg);
        return 1;
    }
    CLINK_IGNORE(clink_server_raise_open_files(srv, msg, sizeof(msg)));
    say_lines(msg);
    stop = clink_server_start(srv, msg, sizeof(msg)) < 0;
    say_lines(msg); /* why it failed, if it did */
    stop |= port_file(clink_server_ops_port(srv) ? ofile : NULL, clink_server_ops_port(srv)) < 0;
    stop |= port_file(pfile, clink_server_port(srv)) < 0;
    clink_server_describe(srv, msg, sizeof(msg));
    say_lines(msg);
    for (int sig = 0; !stop && sigwait(&sigs, &sig) == 0 && sig == SIGHUP;) {
        struct clink_server_report rep;
        CLINK_IGNORE(clink_server_reload(srv, &rep));
        on_reload(NULL, "SIGHUP", &rep);
    }
    clink_server_stop(srv);
    clink_server_describe(srv, msg, sizeof(msg));
    say_lines(msg);
    clink_server_free(srv);
    return stop ? 1 : atomic_load(&restart_asked) ? EXIT_RESTART : 0;
}
