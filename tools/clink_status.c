/*
 * clink-status: connect to a node and print the connection's status from
 * both ends: ours (cipher, TLS version, kTLS, resumed, peer certificate)
 * and the server's view of us (its STATUS method).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/clink.h"
#include "tools/methods.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: clink-status --connect HOST:PORT --cert FILE --key FILE --ca FILE [options]\n"
               "\n"
               "Open a verified TLS connection to a clink node and print its status as\n"
               "\"key: value\" lines: our side first, then the server's view of the same connection.\n"
               "\n"
               "Options:\n"
               "  --connect HOST:PORT  node to reach\n"
               "  --name NAME          name the server certificate must carry (default: HOST)\n"
               "  --cert/--key FILE    our client certificate and key\n"
               "  --ca FILE            CA bundle the server's certificate must chain to\n"
               "  --plaintext          connect without TLS (only if both nodes allow it)\n"
               "  --timeout-ms N       connect and call deadline (default 5000)\n"
               "  -h, --help           this text\n"
               "\n"
               "Exit status: 0 connected, 1 could not connect or verify, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'C'},
        {"name", required_argument, NULL, 'n'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"plaintext", no_argument, NULL, 'P'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *target = NULL, *name = NULL, *cert = NULL, *key = NULL, *ca = NULL;
    int plain = 0, ch;
    unsigned timeout = 5000;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'C':
            target = optarg;
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
    if (optind != argc || target == NULL || (!plain && (cert == NULL || key == NULL || ca == NULL)) || timeout == 0) {
        fprintf(stderr, "clink-status: --connect and (unless --plaintext) --cert, --key and --ca are required\n"
                        "Run 'clink-status --help' for usage.\n");
        return 2;
    }
    char host[128];
    uint16_t port;
    if (clink_tool_hostport(target, host, sizeof(host), &port) < 0 || port == 0) {
        fprintf(stderr, "clink-status: --connect: expected HOST:PORT, got '%s'\n", target);
        return 2;
    }
    struct clink_tls_ctx *tls = NULL;
    char err[512];
    if (!plain) {
        struct clink_tls_opts to = {.cert_file = cert, .key_file = key, .ca_file = ca};
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
                                    .timeout_ms = timeout};
    struct clink_conn *conn = NULL;
    int rc = 1;
    ret = clink_connect_sync(node, &co, &conn, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "clink-status: cannot connect to %s: %s\n", target, err);
        goto out;
    }
    struct clink_msg remote;
    ret = clink_call_sync(conn, CLINK_TOOL_STATUS, NULL, 0, timeout, &remote);
    struct clink_conn_status st;
    if (clink_conn_status(conn, &st) == 0) {
        char text[4096];
        clink_conn_status_format(&st, text, sizeof(text));
        printf("# this end\n%s", text);
    }
    if (ret == 0) {
        printf("# server's view\n%.*s", (int)remote.len, (const char *)remote.data);
        clink_msg_free(&remote);
        rc = 0;
    } else {
        fprintf(stderr, "clink-status: status call failed: %s\n", clink_strerror(ret));
    }
    clink_conn_close(conn);
out:
    clink_node_free(node);
    clink_tls_ctx_free(tls);
    return rc;
}
