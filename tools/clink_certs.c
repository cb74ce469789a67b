/*
 * clink-certs: make a CA, intermediate CAs and node certificates for clink
 * (tests, demos, small deployments). Uses the public API only.
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clink/auth.h"
#include "clink/error.h"

#define PROG       "clink-certs"
#define EXIT_USAGE 2
#define DAY_S      ((int64_t)24 * 60 * 60)
/* Far enough for any real use, and days * DAY_S stays well inside the library's range. */
#define MAX_DAYS          36500
#define CA_DEFAULT_DAYS   3650
#define NODE_DEFAULT_DAYS 365

static const char main_usage[] = "usage: " PROG " <command> [options]\n"
                                 "\n"
                                 "Make certificates for clink nodes (mutual TLS).\n"
                                 "\n"
                                 "commands:\n"
                                 "  ca     make a CA: DIR/ca.pem, DIR/ca-key.pem (self-signed, or an\n"
                                 "         intermediate signed by another CA with --parent)\n"
                                 "  node   make a node certificate and key: DIR/NAME.pem, DIR/NAME-key.pem\n"
                                 "\n"
                                 "Run '" PROG " <command> --help' for the command's options.\n";

static const char ca_usage[] = "usage: " PROG " ca --out DIR [--parent DIR] [--cn NAME] [--days N] [--rsa] [--force]\n"
                               "\n"
                               "Make a CA: DIR/ca.pem and DIR/ca-key.pem (mode 0600). Self-signed (a root),\n"
                               "or with --parent an intermediate CA.\n"
                               "\n"
                               "  --out DIR     output directory, created if missing\n"
                               "  --parent DIR  sign with the CA in DIR/ca.pem + DIR/ca-key.pem: an intermediate\n"
                               "                CA (pathlen 0: it signs node certificates only). Its ca.pem holds\n"
                               "                it and the parent's intermediates; node certificates made with\n"
                               "                'node --ca' on it carry that chain, so peers need only the root.\n"
                               "  --cn NAME     subject common name (default: \"clink CA\", with --parent\n"
                               "                \"clink intermediate CA\")\n"
                               "  --days N      validity in days, 1-36500 (default: 3650)\n"
                               "  --rsa         RSA 2048 key instead of ECDSA P-256\n"
                               "  --force       overwrite existing files\n"
                               "  --help        show this help\n";

static const char node_usage[] =
    "usage: " PROG " node --ca DIR --out DIR --name NAME [--dns NAME]... [--ip ADDR]...\n"
    "                         [--usage server|client|both] [--days N] [--rsa] [--force]\n"
    "\n"
    "Make a node certificate signed by the CA in DIR/ca.pem + DIR/ca-key.pem, valid as\n"
    "TLS server and client: DIR/NAME.pem and DIR/NAME-key.pem (mode 0600). When that\n"
    "CA is an intermediate, NAME.pem holds the certificate, then the intermediates.\n"
    "\n"
    "  --ca DIR     directory holding ca.pem and ca-key.pem\n"
    "  --out DIR    output directory, created if missing\n"
    "  --name NAME  subject common name and file name\n"
    "  --dns NAME   DNS subjectAltName (repeatable)\n"
    "  --ip ADDR    IPv4 or IPv6 subjectAltName (repeatable)\n"
    "               without --dns and --ip: DNS:NAME, plus IP:127.0.0.1 for \"localhost\"\n"
    "  --usage U    server: TLS server only, client: TLS client only, both (default);\n"
    "               peers refuse the certificate in the role it lacks\n"
    "  --days N     validity in days, 1-36500 (default: 365)\n"
    "  --rsa        RSA 2048 key instead of ECDSA P-256\n"
    "  --force      overwrite existing files\n"
    "  --help       show this help\n";

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void msg(const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* cmd: "" for the top level, else "ca " or "node "; the hint keeps the error itself on screen. */
static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun '" PROG " %s--help' for usage.\n", cmd);
    return EXIT_USAGE;
}

/* The last element of argv that getopt_long looked at, for "unknown option" messages. */
static int option_error(const char *cmd, int c, char *const *argv)
{
    const char *opt = argv[optind - 1];

    if (c == ':') {
        return usage_error(cmd, "option '%s' needs an argument", opt);
    }
    if (optopt != 0 && strncmp(opt, "--", 2) == 0) {
        /* glibc sets optopt for a known long option only when it was given an unwanted "=value". */
        return usage_error(cmd, "option '%s' does not take an argument", opt);
    }
    if (optopt != 0) {
        return usage_error(cmd, "unknown option '-%c'", optopt);
    }
    return usage_error(cmd, "unknown option '%s'", opt);
}

static CLINK_MUST_USE int parse_days(const char *s, int64_t *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > MAX_DAYS) {
        return -CLINK_EINVAL;
    }
    *out = (int64_t)v * DAY_S;
    return 0;
}

/* mkdir -p: the output directory may be several levels deep and not there yet. */
static CLINK_MUST_USE int make_dir(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    struct stat st;

    if (len == 0 || len >= sizeof(buf)) {
        return -ENAMETOOLONG;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') {
            continue;
        }
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            return -errno;
        }
        buf[i] = path[i];
    }
    if (stat(path, &st) != 0) {
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        return -ENOTDIR;
    }
    return 0;
}

static CLINK_MUST_USE int join(char *out, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(out, PATH_MAX, "%s/%s%s", dir, name, suffix);

    if (n < 0 || n >= PATH_MAX) {
        msg("path too long: %s/%s%s", dir, name, suffix);
        return -ENAMETOOLONG;
    }
    return 0;
}

static int report_failure(int rc, const char *err)
{
    msg("%s", err[0] != '\0' ? err : clink_strerror(rc));
    if (rc == -EEXIST) {
        fputs(PROG ": use --force to overwrite\n", stderr);
    }
    return EXIT_FAILURE;
}

/* --force must not let the new files clobber the CA that signs them (a node named "ca", --parent = --out). */
static int same_file(const char *a, const char *b)
{
    struct stat sa;
    struct stat sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int clobbers(const char *cert, const char *key, const char *ca_cert, const char *ca_key)
{
    return same_file(cert, ca_cert) || same_file(cert, ca_key) || same_file(key, ca_cert) || same_file(key, ca_key);
}

static int cmd_ca(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'}, {"parent", required_argument, NULL, 'p'},
        {"cn", required_argument, NULL, 'c'},  {"days", required_argument, NULL, 'd'},
        {"rsa", no_argument, NULL, 'r'},       {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
    };
    struct clink_cert_opts opts = {.common_name = NULL, .valid_for_s = CA_DEFAULT_DAYS * DAY_S};
    const char *out = NULL;
    const char *parent = NULL;
    int force = 0;
    char cert_path[PATH_MAX];
    char key_path[PATH_MAX];
    char parent_cert[PATH_MAX];
    char parent_key[PATH_MAX];
    char err[512];
    int c;
    int rc;

    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'p':
            parent = optarg;
            break;
        case 'c':
            opts.common_name = optarg;
            break;
        case 'd':
            if (parse_days(optarg, &opts.valid_for_s) < 0) {
                return usage_error("ca ", "--days must be a whole number from 1 to %d, not '%s'", MAX_DAYS, optarg);
            }
            break;
        case 'r':
            opts.key_type = CLINK_KEY_RSA_2048;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            fputs(ca_usage, stdout);
            return EXIT_SUCCESS;
        default:
            return option_error("ca ", c, argv);
        }
    }
    if (optind < argc) {
        return usage_error("ca ", "unexpected argument '%s'", argv[optind]);
    }
    if (out == NULL) {
        return usage_error("ca ", "ca: --out DIR is required");
    }
    if (opts.common_name == NULL) {
        opts.common_name = parent != NULL ? "clink intermediate CA" : "clink CA";
    }
    if (opts.common_name[0] == '\0') {
        return usage_error("ca ", "--cn must not be empty");
    }
    if ((rc = make_dir(out)) < 0) {
        msg("%s: cannot create directory: %s", out, clink_strerror(rc));
        return EXIT_FAILURE;
    }
    if (join(cert_path, out, "ca", ".pem") < 0 || join(key_path, out, "ca-key", ".pem") < 0) {
        return EXIT_FAILURE;
    }
    if (parent != NULL) {
        if (join(parent_cert, parent, "ca", ".pem") < 0 || join(parent_key, parent, "ca-key", ".pem") < 0) {
            return EXIT_FAILURE;
        }
        if (clobbers(cert_path, key_path, parent_cert, parent_key)) {
            msg("--out '%s' would overwrite the parent CA in %s", out, parent);
            return EXIT_FAILURE;
        }
        rc = clink_cert_make_intermediate(&opts, parent_cert, parent_key, cert_path, key_path, force, err, sizeof(err));
    } else {
        rc = clink_cert_make_ca(&opts, cert_path, key_path, force, err, sizeof(err));
    }
    if (rc < 0) {
        return report_failure(rc, err);
    }
    printf("wrote %s\nwrote %s\n", cert_path, key_path);
    return EXIT_SUCCESS;
}

/* NAME becomes part of a file name in --out, so it must stay inside that directory. */
static int name_ok(const char *name)
{
    return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

static int cmd_node(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ca", required_argument, NULL, 'a'},
        {"out", required_argument, NULL, 'o'},
        {"name", required_argument, NULL, 'n'},
        {"dns", required_argument, NULL, 'D'},
        {"ip", required_argument, NULL, 'I'},
        {"usage", required_argument, NULL, 'u'},
        {"days", required_argument, NULL, 'd'},
        {"rsa", no_argument, NULL, 'r'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const localhost_ips[] = {"127.0.0.1", NULL};
    struct clink_cert_opts opts = {.valid_for_s = NODE_DEFAULT_DAYS * DAY_S};
    const char *ca_dir = NULL;
    const char *out = NULL;
    const char *name = NULL;
    const char *default_dns[2] = {NULL, NULL};
    /* Each --dns/--ip consumes at least one argv element, so argc bounds both lists. */
    const char **dns = calloc((size_t)argc + 1, sizeof(*dns));
    const char **ips = calloc((size_t)argc + 1, sizeof(*ips));
    size_t ndns = 0;
    size_t nips = 0;
    int force = 0;
    char ca_cert_path[PATH_MAX];
    char ca_key_path[PATH_MAX];
    char cert_path[PATH_MAX];
    char key_path[PATH_MAX];
    char err[512];
    int status = EXIT_FAILURE;
    int c;
    int rc;

    if (dns == NULL || ips == NULL) {
        msg("out of memory");
        goto out;
    }
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            ca_dir = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'D':
            dns[ndns++] = optarg;
            break;
        case 'I':
            ips[nips++] = optarg;
            break;
        case 'u':
            if (strcmp(optarg, "server") == 0) {
                opts.usage = CLINK_CERT_USAGE_SERVER;
            } else if (strcmp(optarg, "client") == 0) {
                opts.usage = CLINK_CERT_USAGE_CLIENT;
            } else if (strcmp(optarg, "both") == 0) {
                opts.usage = CLINK_CERT_USAGE_DEFAULT;
            } else {
                status = usage_error("node ", "--usage must be server, client or both, not '%s'", optarg);
                goto out;
            }
            break;
        case 'd':
            if (parse_days(optarg, &opts.valid_for_s) < 0) {
                status = usage_error("node ", "--days must be a whole number from 1 to %d, not '%s'", MAX_DAYS, optarg);
                goto out;
            }
            break;
        case 'r':
            opts.key_type = CLINK_KEY_RSA_2048;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            fputs(node_usage, stdout);
            status = EXIT_SUCCESS;
            goto out;
        default:
            status = option_error("node ", c, argv);
            goto out;
        }
    }
    if (optind < argc) {
        status = usage_error("node ", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (ca_dir == NULL || out == NULL || name == NULL) {
        status = usage_error("node ", "node: --ca DIR, --out DIR and --name NAME are required");
        goto out;
    }
    if (!name_ok(name)) {
        status = usage_error("node ", "--name '%s' must be non-empty, not start with '.' and contain no '/'", name);
        goto out;
    }
    opts.common_name = name;
    if (ndns == 0 && nips == 0) {
        default_dns[0] = name;
        opts.dns_names = default_dns;
        opts.ip_addrs = strcmp(name, "localhost") == 0 ? localhost_ips : NULL;
    } else {
        opts.dns_names = dns;
        opts.ip_addrs = ips;
    }
    if (join(ca_cert_path, ca_dir, "ca", ".pem") < 0 || join(ca_key_path, ca_dir, "ca-key", ".pem") < 0) {
        goto out;
    }
    if ((rc = make_dir(out)) < 0) {
        msg("%s: cannot create directory: %s", out, clink_strerror(rc));
        goto out;
    }
    if (join(cert_path, out, name, ".pem") < 0 || join(key_path, out, name, "-key.pem") < 0) {
        goto out;
    }
    if (clobbers(cert_path, key_path, ca_cert_path, ca_key_path)) {
        msg("--name '%s' would overwrite the CA in %s", name, ca_dir);
        goto out;
    }
    rc = clink_cert_make_node(&opts, ca_cert_path, ca_key_path, cert_path, key_path, force, err, sizeof(err));
    if (rc < 0) {
        status = report_failure(rc, err);
        goto out;
    }
    printf("wrote %s\nwrote %s\n", cert_path, key_path);
    status = EXIT_SUCCESS;
out:
    free(ips);
    free(dns);
    return status;
}

int main(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2) {
        fputs(main_usage, stderr);
        return EXIT_USAGE;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(main_usage, stdout);
        return EXIT_SUCCESS;
    }
    /* getopt_long then sees the subcommand as argv[0]; its own messages are off so ours carry the prefix. */
    opterr = 0;
    if (strcmp(cmd, "ca") == 0) {
        return cmd_ca(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "node") == 0) {
        return cmd_node(argc - 1, argv + 1);
    }
    return usage_error("", "unknown command '%s'", cmd);
}
