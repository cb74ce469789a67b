/*
 * clink-certs: make a CA, intermediate CAs and node certificates for clink
 * (tests, demos, small deployments), and install a node's HTTPS
 * certificate (ops-set-cert). Uses the public API only.
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clink/auth.h"
#include "clink/config.h"
#include "clink/error.h"
#include "clink_certs_crl.h"

#define PROG       "clink-certs"
#define EXIT_USAGE 2
#define DAY_S      ((int64_t)24 * 60 * 60)
/* Far enough for any real use, and days * DAY_S stays well inside the library's range. */
#define MAX_DAYS          36500
#define CA_DEFAULT_DAYS   3650
#define NODE_DEFAULT_DAYS 365
/* ops-set-cert: the names it installs in the base directory, and the largest files it reads. */
#define OPS_CERT_NAME "ops-cert.pem"
#define OPS_KEY_NAME  "ops-key.pem"
#define PEM_MAX       (1 << 20)
#define CONFIG_MAX    (1 << 20) /* clink_config_load reads no more */

static const char main_usage[] = "usage: " PROG " <command> [options]\n"
                                 "\n"
                                 "Make certificates for clink nodes (mutual TLS).\n"
                                 "\n"
                                 "commands:\n"
                                 "  ca     make a CA: DIR/ca.pem, DIR/ca-key.pem (self-signed, or an\n"
                                 "         intermediate signed by another CA with --parent)\n"
                                 "  node   make a node certificate and key: DIR/NAME.pem, DIR/NAME-key.pem\n"
                                 "  revoke add a certificate to its CA's CRL: DIR/crl.pem\n"
                                 "  crl    re-issue a CA's CRL with a new next update\n"
                                 "  ops-set-cert\n"
                                 "         install a certificate and key for a node's HTTPS operations\n"
                                 "         endpoint and point its config at them\n"
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

static const char ops_usage[] =
    "usage: " PROG " ops-set-cert --config FILE --cert PEM --key PEM [--ca PEM]\n"
    "\n"
    "Install a certificate and key for a node's HTTPS operations endpoint (docs/ops.md).\n"
    "Checks that the key matches the certificate, that the certificate is valid now and,\n"
    "with --ca, that it chains to that bundle. Then copies both into the config's base\n"
    "directory (its folder, or its basedir) as " OPS_CERT_NAME " and " OPS_KEY_NAME " (mode 0600), and sets\n"
    "ops_ssl_cert and ops_ssl_key in the config's [server] section, keeping every other\n"
    "line as it is. Each file is replaced whole (a temporary file renamed over it); if the\n"
    "edited config does not load, the previous files are put back. Nothing is changed when\n"
    "a check fails. Apply it without a restart: SIGHUP to clink-node, or POST /reload.\n"
    "\n"
    "  --config FILE  the node's config file (memsql.cnf style, docs/config.md)\n"
    "  --cert PEM     the certificate, then any intermediates\n"
    "  --key PEM      its private key\n"
    "  --ca PEM       also check that the certificate chains to this CA bundle (not copied:\n"
    "                 browsers and curl bring their own)\n"
    "  --help         show this help\n";

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

/* cmd: "" for the top level, else "ca ", "node " or "ops-set-cert "; the hint keeps the error itself on screen. */
int clink_certs_usage_error(const char *cmd, const char *fmt, ...)
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
int clink_certs_option_error(const char *cmd, int c, char *const *argv)
{
    const char *opt = argv[optind - 1];

    if (c == ':') {
        return clink_certs_usage_error(cmd, "option '%s' needs an argument", opt);
    }
    if (optopt != 0 && strncmp(opt, "--", 2) == 0) {
        /* glibc sets optopt for a known long option only when it was given an unwanted "=value". */
        return clink_certs_usage_error(cmd, "option '%s' does not take an argument", opt);
    }
    if (optopt != 0) {
        return clink_certs_usage_error(cmd, "unknown option '-%c'", optopt);
    }
    return clink_certs_usage_error(cmd, "unknown option '%s'", opt);
}

int clink_certs_parse_days(const char *s, int64_t *out)
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
            if (clink_certs_parse_days(optarg, &opts.valid_for_s) < 0) {
                return clink_certs_usage_error("ca ", "--days must be a whole number from 1 to %d, not '%s'", MAX_DAYS,
                                               optarg);
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
            return clink_certs_option_error("ca ", c, argv);
        }
    }
    if (optind < argc) {
        return clink_certs_usage_error("ca ", "unexpected argument '%s'", argv[optind]);
    }
    if (out == NULL) {
        return clink_certs_usage_error("ca ", "ca: --out DIR is required");
    }
    if (opts.common_name == NULL) {
        opts.common_name = parent != NULL ? "clink intermediate CA" : "clink CA";
    }
    if (opts.common_name[0] == '\0') {
        return clink_certs_usage_error("ca ", "--cn must not be empty");
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
                status = clink_certs_usage_error("node ", "--usage must be server, client or both, not '%s'", optarg);
                goto out;
            }
            break;
        case 'd':
            if (clink_certs_parse_days(optarg, &opts.valid_for_s) < 0) {
                status = clink_certs_usage_error("node ", "--days must be a whole number from 1 to %d, not '%s'",
                                                 MAX_DAYS, optarg);
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
            status = clink_certs_option_error("node ", c, argv);
            goto out;
        }
    }
    if (optind < argc) {
        status = clink_certs_usage_error("node ", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (ca_dir == NULL || out == NULL || name == NULL) {
        status = clink_certs_usage_error("node ", "node: --ca DIR, --out DIR and --name NAME are required");
        goto out;
    }
    if (!name_ok(name)) {
        status = clink_certs_usage_error("node ",
                                         "--name '%s' must be non-empty, not start with '.' and contain no '/'", name);
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

/* ---- ops-set-cert ---- */

/* Free a buffer that may have held a private key. */
static void wipe_free(char *p, size_t n)
{
    if (p != NULL) {
        explicit_bzero(p, n);
        free(p);
    }
}

/*
 * The whole of a regular file of less than max bytes, NUL-terminated.
 * [out] *out (caller frees with wipe_free(*out, *len + 1)) and *len. nofollow:
 * a symbolic link is refused (-ELOOP). Returns 0, -errno, -EFBIG, -EINVAL
 * (not a regular file).
 */
static CLINK_MUST_USE int read_all(const char *path, size_t max, int nofollow, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    char *buf = NULL;
    size_t n = 0;
    struct stat st;
    int ret = 0;

    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) != 0) {
        ret = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = -EINVAL;
        goto out;
    }
    if ((buf = malloc(max + 1)) == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    while (n < max) {
        ssize_t r = read(fd, buf + n, max - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            ret = -errno;
            goto out;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    if (n == max) {
        ret = -EFBIG;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    wipe_free(buf, max + 1);
    close(fd);
    return ret;
}

static const char *read_error(int rc)
{
    return rc == -EFBIG ? "too large" : rc == -EINVAL ? "not a regular file" : clink_strerror(rc);
}

/*
 * One file replaced whole: the new content goes to a temporary file in the
 * same directory, then rename(2) puts it in place. rename replaces a symbolic
 * link at dest itself and never writes through it, and mkstemp's O_EXCL
 * never opens one planted at the temporary name.
 */
struct staged {
    char dest[PATH_MAX];
    char tmp[PATH_MAX]; /* "" when there is none */
    char *old;          /* what dest held, for putting it back; NULL: dest did not exist */
    size_t old_len;
    struct stat old_st; /* its mode and owner */
    int renamed;
};

/*
 * Write data to a new temporary file next to dest (its name in tmp), with
 * mode and, when it differs from ours, owner's user and group (the node
 * reads these files, often as another user than the one installing them).
 * Returns 0 or -errno; on failure nothing is left behind.
 */
static CLINK_MUST_USE int write_temp(const char *dest, const char *data, size_t len, mode_t mode,
                                     const struct stat *owner, char *tmp)
{
    const char *slash = strrchr(dest, '/');
    int n = slash != NULL ? snprintf(tmp, PATH_MAX, "%.*s/.%s.XXXXXX", (int)(slash - dest), dest, slash + 1)
                          : snprintf(tmp, PATH_MAX, ".%s.XXXXXX", dest);
    struct stat st;
    size_t off = 0;
    int ret = 0;
    int fd;

    if (n < 0 || n >= PATH_MAX) {
        tmp[0] = '\0';
        return -ENAMETOOLONG;
    }
    /* mkstemp creates the file 0600: a key is never readable by others, not even for a moment. */
    if ((fd = mkstemp(tmp)) < 0) {
        ret = -errno;
        tmp[0] = '\0';
        return ret;
    }
    if (fchmod(fd, mode) != 0 || fstat(fd, &st) != 0) {
        ret = -errno;
        goto out;
    }
    if ((st.st_uid != owner->st_uid || st.st_gid != owner->st_gid) && fchown(fd, owner->st_uid, owner->st_gid) != 0) {
        ret = -errno;
        goto out;
    }
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            ret = -errno;
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        ret = -errno;
    }
out:
    if (close(fd) != 0 && ret == 0) {
        ret = -errno;
    }
    if (ret < 0) {
        unlink(tmp);
        tmp[0] = '\0';
    }
    return ret;
}

/* Put back what dest held before (or remove it if it was not there). Says so when that fails. */
static void put_back(struct staged *s)
{
    char tmp[PATH_MAX];
    int rc;

    if (s->tmp[0] != '\0') {
        unlink(s->tmp);
        s->tmp[0] = '\0';
    }
    if (!s->renamed) {
        return;
    }
    if (s->old == NULL) {
        if (unlink(s->dest) != 0) {
            msg("%s: cannot remove it: %s", s->dest, strerror(errno));
        }
        return;
    }
    if ((rc = write_temp(s->dest, s->old, s->old_len, s->old_st.st_mode & 07777, &s->old_st, tmp)) < 0 ||
        (rc = rename(tmp, s->dest) != 0 ? -errno : 0) < 0) {
        msg("%s: cannot put the previous version back: %s", s->dest, clink_strerror(rc));
        if (tmp[0] != '\0') {
            unlink(tmp);
        }
        return;
    }
    msg("%s: previous version put back", s->dest);
}

/*
 * dest for a file installed in the base directory, and what it holds now.
 * A symbolic link or anything but a regular file there is refused: the
 * operator put it there for a reason this tool cannot know.
 */
static CLINK_MUST_USE int prepare(struct staged *s, const char *dir, const char *name)
{
    struct stat st;
    int rc;

    if (join(s->dest, dir, name, "") < 0) {
        return -1;
    }
    if (lstat(s->dest, &st) != 0) {
        if (errno == ENOENT) {
            return 0;
        }
        msg("%s: %s", s->dest, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        msg("%s is a symbolic link: refusing to replace it (remove it first)", s->dest);
        return -1;
    }
    if ((rc = read_all(s->dest, PEM_MAX, 1, &s->old, &s->old_len)) < 0) {
        msg("%s: cannot read the file there now: %s", s->dest, read_error(rc));
        return -1;
    }
    s->old_st = st;
    return 0;
}

/* A file the config already uses for something else (the node's own key, say) is never overwritten. */
static int clashes(const struct clink_config *cfg, const char *dest)
{
    const char *const used[][2] = {
        {"ssl_cert", cfg->ssl_cert},
        {"ssl_key", cfg->ssl_key},
        {"ssl_ca", cfg->ssl_ca},
        {"ssl_crl", cfg->ssl_crl},
        {"accounts_file", cfg->accounts_file},
        {"ssl_session_ticket_key", cfg->ssl_session_ticket_key},
        {"the config file", cfg->path},
    };

    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        if (used[i][1][0] != '\0' && same_file(dest, used[i][1])) {
            msg("%s is the config's %s: refusing to overwrite it", dest, used[i][0]);
            return 1;
        }
    }
    return 0;
}

enum line_kind { LINE_OTHER, LINE_SECTION, LINE_OPS_CERT, LINE_OPS_KEY };

/*
 * A line as libinih reads it (ini.c: leading space skipped, ';' and '#'
 * comments, "[name]", a key up to '=' or ':'); keys as the config loader
 * matches them (case and '-' or '_' alike). *server: a [server] header.
 */
static enum line_kind classify(const char *p, size_t n, int *server)
{
    const char *end = p + n;
    const char *k;
    char key[32];
    size_t kn = 0;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    if (p == end || *p == ';' || *p == '#') {
        return LINE_OTHER;
    }
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        *server = close != NULL && close - p - 1 == 6 && strncasecmp(p + 1, "server", 6) == 0;
        return LINE_SECTION;
    }
    for (k = p; k < end && *k != '=' && *k != ':'; k++) {
    }
    if (k == end) {
        return LINE_OTHER;
    }
    while (k > p && (k[-1] == ' ' || k[-1] == '\t')) {
        k--;
    }
    if ((size_t)(k - p) >= sizeof(key)) {
        return LINE_OTHER;
    }
    for (; p < k; p++) {
        key[kn++] = *p == '-' ? '_' : (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    }
    key[kn] = '\0';
    return strcmp(key, "ops_ssl_cert") == 0  ? LINE_OPS_CERT
           : strcmp(key, "ops_ssl_key") == 0 ? LINE_OPS_KEY
                                             : LINE_OTHER;
}

struct text {
    char *p;
    size_t n, cap;
};

static void put(struct text *t, const char *s, size_t n)
{
    /* set_ops_keys sized the buffer for every line it adds. */
    if (t->n + n < t->cap) {
        memcpy(t->p + t->n, s, n);
        t->n += n;
        t->p[t->n] = '\0';
    }
}

static void puts_text(struct text *t, const char *s)
{
    put(t, s, strlen(s));
}

/*
 * The config text with ops_ssl_cert and ops_ssl_key set in [server]: a line
 * that sets either (in any [server] section) is replaced, keeping its line
 * ending; a key not there goes right after the first [server] header; no
 * [server] at all: one is added at the end. Every other byte is kept.
 * [out] *out (caller frees). Returns 0 or -ENOMEM.
 */
static CLINK_MUST_USE int set_ops_keys(const char *in, size_t len, char **out, size_t *out_len)
{
    static const char cert_line[] = "ops_ssl_cert = " OPS_CERT_NAME;
    static const char key_line[] = "ops_ssl_key = " OPS_KEY_NAME;
    struct text t = {.cap = len + 256};
    int has_server = 0, has_cert = 0, has_key = 0;
    int in_server = 0, added = 0;

    if ((t.p = malloc(t.cap)) == NULL) {
        return -ENOMEM;
    }
    t.p[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        in_server = 0;
        for (const char *p = in; p < in + len;) {
            const char *nl = memchr(p, '\n', (size_t)(in + len - p));
            size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(in + len - p);
            size_t body = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
            const char *eol = p + body; /* "\r\n", "\n" or "" */
            size_t eol_len = n - body + (nl != NULL);
            /* libinih skips a UTF-8 byte order mark before the first line. */
            size_t bom = p == in && body >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
            int server = 0;
            enum line_kind kind = classify(p + bom, body - bom, &server);

            if (kind == LINE_SECTION) {
                in_server = server;
                has_server |= server;
            }
            if (pass == 0) {
                has_cert |= in_server && kind == LINE_OPS_CERT;
                has_key |= in_server && kind == LINE_OPS_KEY;
            } else if (in_server && (kind == LINE_OPS_CERT || kind == LINE_OPS_KEY)) {
                puts_text(&t, kind == LINE_OPS_CERT ? cert_line : key_line);
                put(&t, eol, eol_len);
            } else if (kind == LINE_SECTION && server && !added) {
                const char *e = eol_len > 0 ? eol : "\n";
                size_t el = eol_len > 0 ? eol_len : 1;
                put(&t, p, body);
                put(&t, e, el);
                if (!has_cert) {
                    puts_text(&t, cert_line);
                    put(&t, e, el);
                }
                if (!has_key) {
                    puts_text(&t, key_line);
                    put(&t, e, el);
                }
                added = 1;
            } else {
                put(&t, p, n + (nl != NULL));
            }
            p += n + (nl != NULL);
        }
    }
    if (!has_server) {
        if (len > 0 && in[len - 1] != '\n') {
            puts_text(&t, "\n");
        }
        puts_text(&t, len > 0 ? "\n[server]\n" : "[server]\n");
        puts_text(&t, cert_line);
        puts_text(&t, "\n");
        puts_text(&t, key_line);
        puts_text(&t, "\n");
    }
    *out = t.p;
    *out_len = t.n;
    return 0;
}

static void fsync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    /* The renames survive a crash once the directory is on disk too; best effort (not every fs can). */
    snprintf(dir, sizeof(dir), "%.*s", slash != NULL && slash != path ? (int)(slash - path) : 1,
             slash != NULL ? path : ".");
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        if (fsync(fd) != 0) {
            msg("%s: fsync: %s", dir, strerror(errno));
        }
        close(fd);
    }
}

static void format_time(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL || strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
        snprintf(out, cap, "%lld", (long long)t);
    }
}

/* The listen address an operator can reach the HTTPS port on, for the hint printed at the end. */
static const char *ops_host(const struct clink_config *cfg)
{
    const char *h = cfg->bind_address;

    return h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 ? "HOST" : h;
}

static int cmd_ops_set_cert(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'F'}, {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},    {"ca", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    const char *cert = NULL;
    const char *key = NULL;
    const char *ca = NULL;
    struct clink_config *cfg = NULL;
    struct clink_tls_ctx *tls = NULL;
    struct clink_cert_info info;
    struct staged files[3]; /* certificate, key, config: put in place in this order */
    struct staged *conf = &files[2];
    char *real = NULL;
    char *cert_pem = NULL, *key_pem = NULL, *edited = NULL;
    size_t cert_len = 0, key_len = 0, edited_len = 0;
    struct stat conf_st;
    char err[512];
    char until[64];
    char port[16];
    int status = EXIT_FAILURE;
    int c;
    int rc;

    memset(files, 0, sizeof(files));
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'F':
            config = optarg;
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
        case 'h':
            fputs(ops_usage, stdout);
            return EXIT_SUCCESS;
        default:
            return clink_certs_option_error("ops-set-cert ", c, argv);
        }
    }
    if (optind < argc) {
        return clink_certs_usage_error("ops-set-cert ", "unexpected argument '%s'", argv[optind]);
    }
    if (config == NULL || cert == NULL || key == NULL) {
        return clink_certs_usage_error("ops-set-cert ",
                                       "ops-set-cert: --config FILE, --cert PEM and --key PEM are required");
    }

    /* Every check first: a failed one changes nothing. */
    /* The key given is copied to a new 0600 file: its own mode is not this check's business. */
    struct clink_tls_opts given = {.cert_file = cert, .key_file = key, .ca_file = ca, .allow_open_key_file = 1};
    if (clink_tls_ctx_new_https(&given, &tls, err, sizeof(err)) < 0) {
        msg("%s", err);
        msg("nothing was changed");
        goto out;
    }
    if (clink_tls_ctx_certs(tls, &info, 1) < 1) {
        info = (struct clink_cert_info){0};
    }
    if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
        msg("out of memory");
        goto out;
    }
    if (clink_config_load(config, cfg, err, sizeof(err)) < 0) {
        msg("%s", err);
        msg("nothing was changed (the config must load before it is edited)");
        goto out;
    }
    /* The file the loader read: a config reached through a symbolic link is edited where it lives. */
    if ((real = realpath(config, NULL)) == NULL || strlen(real) >= sizeof(conf->dest)) {
        msg("%s: %s", config, real == NULL ? strerror(errno) : "path too long");
        goto out;
    }
    snprintf(conf->dest, sizeof(conf->dest), "%s", real);
    if (stat(conf->dest, &conf_st) != 0) {
        msg("%s: %s", conf->dest, strerror(errno));
        goto out;
    }
    conf->old_st = conf_st;
    if ((rc = read_all(conf->dest, CONFIG_MAX, 0, &conf->old, &conf->old_len)) < 0) {
        msg("%s: cannot read: %s", conf->dest, read_error(rc));
        goto out;
    }
    if ((rc = read_all(cert, PEM_MAX, 0, &cert_pem, &cert_len)) < 0) {
        msg("%s: cannot read: %s", cert, read_error(rc));
        goto out;
    }
    if ((rc = read_all(key, PEM_MAX, 0, &key_pem, &key_len)) < 0) {
        msg("%s: cannot read: %s", key, read_error(rc));
        goto out;
    }
    if (prepare(&files[0], cfg->basedir, OPS_CERT_NAME) < 0 || prepare(&files[1], cfg->basedir, OPS_KEY_NAME) < 0 ||
        clashes(cfg, files[0].dest) || clashes(cfg, files[1].dest)) {
        msg("nothing was changed");
        goto out;
    }
    if (set_ops_keys(conf->old, conf->old_len, &edited, &edited_len) < 0) {
        msg("out of memory");
        goto out;
    }

    /* Everything written beside its destination before anything is replaced (a full disk fails here). */
    if ((rc = write_temp(files[0].dest, cert_pem, cert_len, 0644, &conf_st, files[0].tmp)) < 0 ||
        (rc = write_temp(files[1].dest, key_pem, key_len, 0600, &conf_st, files[1].tmp)) < 0) {
        msg("cannot write a file in %s: %s", cfg->basedir, clink_strerror(rc));
        msg("nothing was changed");
        goto undo;
    }
    if ((rc = write_temp(conf->dest, edited, edited_len, conf_st.st_mode & 07777, &conf_st, conf->tmp)) < 0) {
        msg("cannot write a file next to %s: %s", conf->dest, clink_strerror(rc));
        msg("nothing was changed");
        goto undo;
    }
    for (int i = 0; i < 3; i++) {
        if (rename(files[i].tmp, files[i].dest) != 0) {
            msg("%s: cannot replace it: %s", files[i].dest, strerror(errno));
            goto undo;
        }
        files[i].tmp[0] = '\0';
        files[i].renamed = 1;
    }
    fsync_dir(files[0].dest);
    fsync_dir(conf->dest);

    /* What the node will read on its next reload: the edited config, and the pair it now names. */
    if (clink_config_load(conf->dest, cfg, err, sizeof(err)) < 0) {
        msg("the edited config does not load: %s", err);
        goto undo;
    }
    if (strcmp(cfg->ops_ssl_cert, files[0].dest) != 0 || strcmp(cfg->ops_ssl_key, files[1].dest) != 0) {
        msg("the edited config names '%s' and '%s', not the installed files", cfg->ops_ssl_cert, cfg->ops_ssl_key);
        goto undo;
    }
    clink_tls_ctx_free(tls);
    tls = NULL;
    struct clink_tls_opts installed = {.cert_file = cfg->ops_ssl_cert,
                                       .key_file = cfg->ops_ssl_key,
                                       .ca_file = ca,
                                       .allow_open_key_file = !cfg->ssl_key_mode_check};
    if (clink_tls_ctx_new_https(&installed, &tls, err, sizeof(err)) < 0) {
        msg("the installed files do not check out (changed while copied?): %s", err);
        goto undo;
    }

    format_time(info.not_after, until, sizeof(until));
    printf("checked %s: key %s matches, valid until %s%s%s\n", cert, key, until, ca != NULL ? ", chains to " : "",
           ca != NULL ? ca : "");
    if (info.subject[0] != '\0') {
        printf("  subject %s, issuer %s\n", info.subject, info.issuer);
    }
    printf("wrote %s\nwrote %s (mode 0600)\n", files[0].dest, files[1].dest);
    printf("set ops_ssl_cert = " OPS_CERT_NAME " and ops_ssl_key = " OPS_KEY_NAME " in [server] of %s\n", conf->dest);
    if (!cfg->ops) {
        printf("note: this config says ops = OFF: the node serves no HTTPS endpoint until it says ON\n");
    }
    if (cfg->ops_port != 0) {
        snprintf(port, sizeof(port), "%u", cfg->ops_port);
    } else {
        snprintf(port, sizeof(port), "PORT");
    }
    printf("\nTo apply it without a restart, reload the node:\n"
           "  kill -HUP <pid of clink-node>\n"
           "or, as an account with grant ALL (CA: the one the certificate in use now chains to):\n"
           "  curl --cacert CA -u ADMIN -H 'Content-Type: application/json' -d '{}' https://%s:%s/reload\n",
           ops_host(cfg), port);
    status = EXIT_SUCCESS;
    goto out;
undo:
    for (int i = 2; i >= 0; i--) {
        put_back(&files[i]);
    }
out:
    for (int i = 0; i < 3; i++) {
        if (files[i].tmp[0] != '\0') {
            unlink(files[i].tmp);
        }
        wipe_free(files[i].old, files[i].old_len + 1);
    }
    wipe_free(edited, edited_len);
    wipe_free(key_pem, key_len + 1);
    wipe_free(cert_pem, cert_len + 1);
    free(real);
    free(cfg);
    clink_tls_ctx_free(tls);
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
    if (strcmp(cmd, "revoke") == 0) {
        return clink_certs_revoke(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "crl") == 0) {
        return clink_certs_crl(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "ops-set-cert") == 0) {
        return cmd_ops_set_cert(argc - 1, argv + 1);
    }
    return clink_certs_usage_error("", "unknown command '%s'", cmd);
}
