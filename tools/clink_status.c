/*
 * clink-status: connect to a node and print the connection's status from
 * both ends: ours (cipher, TLS version, kTLS, resumed, peer certificate)
 * and the server's view of us (the node's built-in status request), with
 * the account we logged in as.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clink/clink.h"
#include "clink/methods.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: clink-status --host HOST --port PORT --ssl-cert FILE --ssl-key FILE --ssl-ca FILE [options]\n"
               "\n"
               "Open a TLS connection to a clink node and print its status the way the mysql client's\n"
               "`status` does, one \"Name: value\" per line: our end first, then the server's view.\n"
               "\n"
               "Options (named like the mysql client's; the short forms in brackets also work):\n"
               "  --host HOST          node address, IPv4/IPv6 literal or localhost\n"
               "  --port PORT          node port [--connect HOST:PORT sets both]\n"
               "  --ssl-mode MODE      DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY (default)\n"
               "  --ssl-server-name N  name the server certificate must carry when it differs from --host [--name]\n"
               "  --ssl-cert/--ssl-key FILE  our client certificate and key [--cert/--key]\n"
               "  --ssl-ca FILE        CA bundle the server's certificate must chain to [--ca]\n"
               "  --ssl-crl FILE       CRL(s) of those CAs: a revoked server certificate is refused\n"
               "  --user NAME          log in as this account (default: none, the anonymous user)\n"
               "  --password PW        its password (visible to ps: prefer the CLINK_PWD environment variable)\n"
               "  --plaintext          same as --ssl-mode DISABLED (only if the node allows it)\n"
               "  --pools              also print the node's pools to its peers (an aggregator's leaves)\n"
               "  --timeout-ms N       connect and call deadline (default 5000)\n"
               "  -h, --help           this text\n"
               "\n"
               "Exit status: 0 connected, 1 could not connect or verify, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'C'},  {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},     {"ssl-mode", required_argument, NULL, 'm'},
        {"name", required_argument, NULL, 'n'},     {"ssl-server-name", required_argument, NULL, 'n'},
        {"cert", required_argument, NULL, 'c'},     {"ssl-cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},      {"ssl-key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},       {"ssl-ca", required_argument, NULL, 'a'},
        {"plaintext", no_argument, NULL, 'P'},      {"timeout-ms", required_argument, NULL, 't'},
        {"ssl-crl", required_argument, NULL, 'r'},  {"user", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
        {"pools", no_argument, NULL, 'o'},          {NULL, 0, NULL, 0},
    };
    const char *target = NULL, *name = NULL, *cert = NULL, *key = NULL, *ca = NULL, *crl = NULL, *user = NULL;
    const char *password = getenv("CLINK_PWD");
    int plain = 0, show_pools = 0, ch;
    const char *host_opt = NULL, *port_opt = NULL;
    enum clink_ssl_mode mode = CLINK_SSL_DEFAULT;
    static const char *const modes[] = {"", "DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"};
    unsigned timeout = 5000;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'C':
            target = optarg;
            break;
        case 'H':
            host_opt = optarg;
            break;
        case 'p':
            port_opt = optarg;
            break;
        case 'm':
            mode = CLINK_SSL_DEFAULT;
            for (int i = 1; i < 6; i++) {
                if (strcasecmp(optarg, modes[i]) == 0) {
                    mode = (enum clink_ssl_mode)i;
                }
            }
            if (mode == CLINK_SSL_DEFAULT) {
                fprintf(stderr,
                        "clink-status: --ssl-mode: '%s' is not one of DISABLED, PREFERRED, REQUIRED, "
                        "VERIFY_CA, VERIFY_IDENTITY\n",
                        optarg);
                return 2;
            }
            break;
        case 'n':
            name = optarg;
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
        case 'P':
            plain = 1;
            break;
        case 'r':
            crl = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'w':
            password = optarg;
            break;
        case 'o':
            show_pools = 1;
            break;
        case 't':
            timeout = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (mode == CLINK_SSL_DISABLED) {
        plain = 1;
    }
    char joined[200];
    if (target == NULL && host_opt != NULL && port_opt != NULL) {
        snprintf(joined, sizeof(joined), strchr(host_opt, ':') ? "[%s]:%s" : "%s:%s", host_opt, port_opt);
        target = joined;
    }
    if (optind != argc || target == NULL || (!plain && (cert == NULL || key == NULL || ca == NULL)) || timeout == 0) {
        fprintf(stderr, "clink-status: --host and --port, and (unless --ssl-mode DISABLED) --ssl-cert, --ssl-key "
                        "and --ssl-ca are required\n"
                        "Run 'clink-status --help' for usage.\n");
        return 2;
    }
    char host[128];
    uint16_t port;
    if (clink_tool_hostport(target, host, sizeof(host), &port) < 0 || port == 0) {
        fprintf(stderr, "clink-status: expected a host and a port from 1 to 65535, got '%s'\n", target);
        return 2;
    }
    struct clink_tls_ctx *tls = NULL;
    char err[512];
    if (!plain) {
        struct clink_tls_opts to = {.cert_file = cert, .key_file = key, .ca_file = ca, .crl_file = crl};
        if (clink_tls_ctx_new(&to, &tls, err, sizeof(err)) < 0) {
            fprintf(stderr, "clink-status: TLS configuration: %s\n", err);
            return 1;
        }
    }
    struct clink_node_opts no = {.workers = 1, .tls = tls, .allow_plaintext = plain, .handshake_timeout_ms = timeout};
    struct clink_node *node = NULL;
    int ret = clink_node_new(&no, &node);
    if (ret == 0) {
        ret = clink_node_start(node);
    }
    if (ret < 0) {
        fprintf(stderr, "clink-status: %s\n", clink_strerror(ret));
        return 1;
    }
    struct clink_connect_opts co = {.host = host,
                                    .port = port,
                                    .expected_name = name,
                                    .mode = plain ? CLINK_MODE_PLAIN : CLINK_MODE_TLS,
                                    .ssl_mode = plain ? CLINK_SSL_DEFAULT : mode,
                                    .timeout_ms = timeout,
                                    .user = user,
                                    .password = password};
    struct clink_conn *conn = NULL;
    int rc = 1;
    ret = clink_connect_sync(node, &co, &conn, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "clink-status: cannot connect to %s: %s\n", target, err);
        goto out;
    }
    struct clink_msg remote;
    ret = clink_call_sync(conn, CLINK_METHOD_STATUS, NULL, 0, timeout, &remote);
    struct clink_conn_status st;
    if (clink_conn_get_status(conn, &st) == 0) {
        char text[4096];
        clink_conn_status_format(&st, text, sizeof(text));
        printf("# this end\n%s", text);
    }
    if (ret == 0) {
        printf("# server's view\n%.*s", (int)remote.len, (const char *)remote.data);
        clink_msg_free(&remote);
        rc = 0;
        if (show_pools) {
            ret = clink_call_sync(conn, CLINK_TOOL_POOLS, NULL, 0, timeout, &remote);
            if (ret == 0) {
                printf("# pools\n%.*s", (int)remote.len, (const char *)remote.data);
                clink_msg_free(&remote);
            } else {
                fprintf(stderr, "clink-status: pools: %s\n", clink_strerror(ret));
                rc = 1;
            }
        }
    } else {
        fprintf(stderr, "clink-status: status call failed: %s\n", clink_strerror(ret));
    }
    clink_conn_close(conn);
out:
    clink_node_free(node);
    clink_tls_ctx_free(tls);
    return rc;
}
