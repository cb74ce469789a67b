/*
 * Scripted attacks on running clink-node processes (issue 7), started by
 * tests/attacks.sh. While each attack runs, a bystander (a clink client
 * node, one verified TLS connection to the node under attack) makes echo
 * calls back to back with a short deadline. Every attack prints one line:
 * its name, what it observed, and the bystander's calls, failures and
 * latency during it. Exit 0 only if every attack saw its expected outcome
 * and no bystander call failed; 1 otherwise; 2 on bad usage.
 *
 * The attacks speak the wire protocol by hand (docs/protocol.md), not
 * through the library under test: raw sockets, and OpenSSL over memory BIOs
 * so that a record can be flipped or cut before it reaches the socket.
 */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "clink/clink.h"
#include "tests/attacks/attacks.h"
#include "tests/attacks/harness.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attacks --port P --cert F --key F --ca F --other-cert F --other-key F\n"
               "               [--tls12-port P] [--fd-port P --fd-pid PID --fd-log FILE]\n"
               "               [--handshake-timeout-ms N] [--workers N] [--storm N] [--only NAME] [--strict]\n"
               "Attacks the clink-node on --port (TLS 1.3 only, handshake_timeout_ms N), the one on --tls12-port\n"
               "(started with --tls12) and the one on --fd-port (started under a low fd limit, logging to\n"
               "--fd-log), each while a bystander client calls it. tests/attacks.sh runs it.\n"
               "--strict: a known failure (a node bug found and reported) fails the run too.\n");
}

static unsigned num(const char *s, unsigned max)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > max) {
        usage(stderr);
        exit(2);
    }
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"port", required_argument, NULL, 'p'},
        {"tls12-port", required_argument, NULL, '2'},
        {"fd-port", required_argument, NULL, 'f'},
        {"fd-pid", required_argument, NULL, 'F'},
        {"fd-log", required_argument, NULL, 'L'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"other-cert", required_argument, NULL, 'C'},
        {"other-key", required_argument, NULL, 'K'},
        {"handshake-timeout-ms", required_argument, NULL, 't'},
        {"workers", required_argument, NULL, 'w'},
        {"storm", required_argument, NULL, 's'},
        {"only", required_argument, NULL, 'o'},
        {"strict", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p':
            cfg.port = (uint16_t)num(optarg, 65535);
            break;
        case '2':
            cfg.tls12_port = (uint16_t)num(optarg, 65535);
            break;
        case 'f':
            cfg.fd_port = (uint16_t)num(optarg, 65535);
            break;
        case 'F':
            cfg.fd_pid = (int)num(optarg, 1u << 30);
            break;
        case 'L':
            cfg.fd_log = optarg;
            break;
        case 'c':
            cfg.cert = optarg;
            break;
        case 'k':
            cfg.key = optarg;
            break;
        case 'a':
            cfg.ca = optarg;
            break;
        case 'C':
            cfg.other_cert = optarg;
            break;
        case 'K':
            cfg.other_key = optarg;
            break;
        case 't':
            cfg.hs_timeout_ms = num(optarg, 3600000);
            break;
        case 'w':
            cfg.workers = num(optarg, 1024);
            break;
        case 's':
            cfg.storm = num(optarg, 60000);
            break;
        case 'o':
            cfg.only = optarg;
            break;
        case 'S':
            strict = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || cfg.port == 0 || !cfg.cert || !cfg.key || !cfg.ca || !cfg.other_cert || !cfg.other_key ||
        (cfg.fd_port && (!cfg.fd_pid || !cfg.fd_log))) {
        usage(stderr);
        return 2;
    }
    const char *s = getenv("CLINK_TEST_TIMEOUT_SCALE");
    cfg.scale = s && atoi(s) > 0 ? (unsigned)atoi(s) : 1;
    signal(SIGPIPE, SIG_IGN);

    /* The storm holds thousands of sockets at once. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < cfg.storm + 256) {
        rl.rlim_cur = cfg.storm + 256 > rl.rlim_max ? rl.rlim_max : cfg.storm + 256;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < cfg.storm + 256) {
            rl.rlim_max = rl.rlim_cur = cfg.storm + 256; /* root may raise the hard limit */
            if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                getrlimit(RLIMIT_NOFILE, &rl);
                cfg.storm = rl.rlim_cur > 512 ? (unsigned)rl.rlim_cur - 256 : 256;
                fprintf(stderr, "attacks: cannot raise RLIMIT_NOFILE; the storm makes %u connections\n", cfg.storm);
            }
        }
    }

    char err[512];
    struct clink_tls_opts to = {.cert_file = cfg.cert, .key_file = cfg.key, .ca_file = cfg.ca};
    struct clink_tls_ctx *tls = NULL;
    if (clink_tls_ctx_new(&to, &tls, err, sizeof(err)) < 0) {
        fprintf(stderr, "attacks: TLS: %s\n", err);
        return 1;
    }
    struct clink_node_opts no = {.workers = 1, .tls = tls};
    if (clink_node_new(&no, &client) < 0 || clink_node_start(client) < 0) {
        fprintf(stderr, "attacks: cannot start the client node\n");
        return 1;
    }
    printf("attacks: node on port %u (TLS 1.3 only, handshake_timeout_ms %u, %u workers); bystander deadline %u ms\n",
           cfg.port, cfg.hs_timeout_ms, cfg.workers, bystander_deadline_ms());
    fflush(stdout);
    double t_start = now_s();

    static struct bystander main_b;
    if (bystander_start(&main_b, "TLS 1.3", cfg.port) < 0) {
        return 1;
    }
    run(&main_b, "random bytes instead of a ClientHello", atk_random_bytes);
    run(&main_b, "a TLS record of random bytes", atk_random_record);
    run(&main_b, "slowloris: a ClientHello, then silence", atk_slowloris);
    run(&main_b, "connection storm: never-finished handshakes", atk_storm);
    run(&main_b, "tampered record: one ciphertext byte flipped", atk_flip);
    run(&main_b, "truncated record, then FIN", atk_cut_fin);
    run(&main_b, "truncated record, then the next record", atk_cut_next);
    run(&main_b, "record header claiming 65535 bytes", atk_huge_record);
    run(&main_b, "tampered Finished in the handshake", atk_finished);
    run(&main_b, "frame header claiming 4 GiB", atk_frame_4g);
    run(&main_b, "plaintext magic + HELLO to a TLS-only port", atk_plaintext);
    run(&main_b, "TLS 1.0 offered", atk_tls10);
    run(&main_b, "TLS 1.1 offered", atk_tls11);
    run(&main_b, "TLS 1.2, CBC suites only", atk_tls12_cbc);
    run(&main_b, "TLS 1.2, non-ECDHE suites only", atk_tls12_non_ecdhe);
    run(&main_b, "client certificate from another CA", atk_other_ca);
    run(&main_b, "no client certificate", atk_no_cert);
    run(&main_b, "TLS 1.3 KeyUpdate (update_requested)", atk_key_update);
    run(&main_b, "TLS 1.3 KeyUpdate flood", atk_key_update_flood);

    if (cfg.tls12_port != 0) {
        static struct bystander b12;
        if (bystander_start(&b12, "--tls12", cfg.tls12_port) == 0) {
            run(&b12, "TLS 1.0 offered", atk12_tls10);
            run(&b12, "TLS 1.1 offered", atk12_tls11);
            run(&b12, "TLS 1.2, CBC suites only", atk12_cbc);
            run(&b12, "TLS 1.2, non-ECDHE suites only", atk12_non_ecdhe);
            run(&b12, "TLS 1.2, ECDHE-AEAD (control)", atk12_control);
            run(&b12, "TLS 1.2 renegotiation from the client", atk12_renegotiate);
        } else {
            attacks_failed++;
        }
        bystander_stop(&b12);
    }
    if (cfg.fd_port != 0) {
        static struct bystander bfd;
        if (bystander_start(&bfd, "fd-limited", cfg.fd_port) == 0) {
            run(&bfd, "file-descriptor exhaustion", atk_fd_exhaustion);
        } else {
            attacks_failed++;
        }
        bystander_stop(&bfd);
    }
    bystander_stop(&main_b);

    clink_node_free(client);
    clink_tls_ctx_free(tls);
    unsigned long bf = atomic_load(&bystander_failures);
    printf("attacks: %d failed, %d known failures; bystander calls failed: %lu; %.1f s\n", attacks_failed,
           attacks_known, bf, now_s() - t_start);
    return attacks_failed == 0 && bf == 0 ? 0 : 1;
}
