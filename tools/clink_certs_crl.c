/*
 * clink-certs revoke and clink-certs crl: a CA's revocation list, kept in
 * its directory beside ca.pem. Thin mains over clink_cert_revoke and
 * clink_cert_crl_reissue; apart from clink_certs.c, which makes the
 * certificates, because they edit what the CA has already said.
 *
 * Exit status: 0 success (also: already revoked), 1 failure, 2 usage error.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clink/auth.h"
#include "clink/error.h"
#include "clink_certs_crl.h"

#define PROG       "clink-certs"
#define EXIT_USAGE 2
#define DAY_S      ((int64_t)24 * 60 * 60)
#define MAX_DAYS   3650 /* a CRL is re-issued often; ten years is already more than any policy wants */
#define REASONS                                                                                                        \
    "unspecified, keyCompromise, CACompromise, affiliationChanged,\n"                                                  \
    "                  superseded, cessationOfOperation, privilegeWithdrawn, AACompromise"

static const char revoke_usage[] =
    "usage: " PROG " revoke --ca DIR (--cert FILE | --serial HEX) [--reason REASON]\n"
    "                           [--crl FILE] [--days N]\n"
    "\n"
    "Revoke a certificate of the CA in DIR (DIR/ca.pem + DIR/ca-key.pem): add it to the\n"
    "CA's CRL, keeping what the CRL already revokes, with a new CRL number, signed by\n"
    "the CA key, written beside and renamed into place (mode 0644). Then copy the CRL to\n"
    "every node's ssl_crl and reload them all (clink-admin reload --all, SIGHUP or\n"
    "POST /reload): new handshakes with the certificate are refused and established\n"
    "links that use it close gracefully.\n"
    "\n"
    "  --ca DIR         the CA directory made by '" PROG " ca'\n"
    "  --cert FILE      the certificate to revoke (it must be issued by this CA), or\n"
    "  --serial HEX     its serial number in hex (e.g. from openssl x509 -serial)\n"
    "  --reason REASON  " REASONS "\n"
    "                   (default: none recorded)\n"
    "  --crl FILE       the CRL to update (default: DIR/crl.pem; created if missing)\n"
    "  --days N         the new CRL is valid for N days, 1-3650 (default: 30)\n"
    "  --help           show this help\n";

static const char crl_usage[] =
    "usage: " PROG " crl --ca DIR [--days N] [--out FILE]\n"
    "\n"
    "Re-issue the CRL of the CA in DIR as it is: the same entries, a new CRL number, valid\n"
    "from now for N days (an empty CRL if there is none yet). A CRL expires: past its next\n"
    "update, nodes that check it refuse every certificate of the CA, their own included.\n"
    "Re-issue it before then, copy it to every node's ssl_crl and reload them.\n"
    "\n"
    "  --ca DIR    the CA directory made by '" PROG " ca'\n"
    "  --days N    valid for N days, 1-3650 (default: 30)\n"
    "  --out FILE  the CRL to re-issue (default: DIR/crl.pem)\n"
    "  --help      show this help\n";

static void print_info(const char *crl, const struct clink_crl_info *info)
{
    char when[32] = "-";
    time_t t = (time_t)info->next_update;
    struct tm tm;

    if (gmtime_r(&t, &tm) != NULL) {
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    }
    printf("%s: CRL number %llu, %zu revoked, next update %s\n", crl, (unsigned long long)info->number, info->revoked,
           when);
}

int clink_certs_revoke(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ca", required_argument, NULL, 'a'},     {"cert", required_argument, NULL, 'c'},
        {"serial", required_argument, NULL, 's'}, {"reason", required_argument, NULL, 'r'},
        {"crl", required_argument, NULL, 'l'},    {"days", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    struct clink_revoke_opts opts = {.cert_file = NULL};
    struct clink_crl_info info;
    const char *ca = NULL;
    const char *crl = NULL;
    char path[4096];
    char err[768];
    int c;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            ca = optarg;
            break;
        case 'c':
            opts.cert_file = optarg;
            break;
        case 's':
            opts.serial_hex = optarg;
            break;
        case 'r':
            opts.reason = optarg;
            break;
        case 'l':
            crl = optarg;
            break;
        case 'd':
            if (clink_certs_parse_days(optarg, &opts.valid_for_s) < 0 || opts.valid_for_s > MAX_DAYS * DAY_S) {
                return clink_certs_usage_error("revoke ", "--days must be a whole number from 1 to %d, not '%s'",
                                               MAX_DAYS, optarg);
            }
            break;
        case 'h':
            fputs(revoke_usage, stdout);
            return EXIT_SUCCESS;
        default:
            return clink_certs_option_error("revoke ", c, argv);
        }
    }
    if (optind < argc) {
        return clink_certs_usage_error("revoke ", "unexpected argument '%s'", argv[optind]);
    }
    if (ca == NULL) {
        return clink_certs_usage_error("revoke ", "revoke: --ca DIR is required");
    }
    if ((opts.cert_file == NULL) == (opts.serial_hex == NULL)) {
        return clink_certs_usage_error("revoke ", "revoke: give exactly one of --cert FILE and --serial HEX");
    }
    int rc = clink_cert_revoke(ca, crl, &opts, &info, err, sizeof(err));
    if (rc == -CLINK_EINVAL) {
        return clink_certs_usage_error("revoke ", "%s", err[0] ? err : clink_strerror(rc));
    }
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err[0] ? err : clink_strerror(rc));
        return EXIT_FAILURE;
    }
    snprintf(path, sizeof(path), "%s%s", crl != NULL ? crl : ca, crl != NULL ? "" : "/crl.pem");
    if (rc == 1) {
        printf("serial %s%s%s is already revoked; %s left as it is\n", info.serial, info.subject[0] ? " " : "",
               info.subject, path);
    } else {
        printf("revoked serial %s%s%s%s%s\n", info.serial, info.subject[0] ? " " : "", info.subject,
               opts.reason ? ", reason " : "", opts.reason ? opts.reason : "");
    }
    print_info(path, &info);
    if (rc == 0) {
        printf("next: copy %s to every node's ssl_crl and reload them all (clink-admin reload --all)\n", path);
    }
    return EXIT_SUCCESS;
}

int clink_certs_crl(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ca", required_argument, NULL, 'a'},
        {"days", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct clink_crl_info info;
    const char *ca = NULL;
    const char *out = NULL;
    int64_t valid_for_s = 0;
    char path[4096];
    char err[768];
    int c;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            ca = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'd':
            if (clink_certs_parse_days(optarg, &valid_for_s) < 0 || valid_for_s > MAX_DAYS * DAY_S) {
                return clink_certs_usage_error("crl ", "--days must be a whole number from 1 to %d, not '%s'", MAX_DAYS,
                                               optarg);
            }
            break;
        case 'h':
            fputs(crl_usage, stdout);
            return EXIT_SUCCESS;
        default:
            return clink_certs_option_error("crl ", c, argv);
        }
    }
    if (optind < argc) {
        return clink_certs_usage_error("crl ", "unexpected argument '%s'", argv[optind]);
    }
    if (ca == NULL) {
        return clink_certs_usage_error("crl ", "crl: --ca DIR is required");
    }
    int rc = clink_cert_crl_reissue(ca, out, valid_for_s, &info, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, PROG ": %s\n", err[0] ? err : clink_strerror(rc));
        return EXIT_FAILURE;
    }
    snprintf(path, sizeof(path), "%s%s", out != NULL ? out : ca, out != NULL ? "" : "/crl.pem");
    printf("wrote %s\n", path);
    print_info(path, &info);
    return EXIT_SUCCESS;
}
