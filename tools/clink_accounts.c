/*
 * clink-accounts: add, change and drop the accounts a node's clients log in
 * as. The file (docs/config.md) is written through the library, so it holds
 * verifiers only and is replaced atomically; a running clink-node picks the
 * change up on SIGHUP.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clink/clink.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: clink-accounts --file FILE add   USER[@HOST] [--require REQ] [--password-stdin] [--grant G]\n"
            "                                               [--native-password ON|OFF] [--legacy-native-tls ON|OFF]\n"
            "                                               [--plaintext-no-password ON|OFF]\n"
            "       clink-accounts --file FILE alter USER[@HOST] [--require REQ] [--password-stdin | --no-password]\n"
            "                                               [--grant G] [--native-password ON|OFF]\n"
            "                                               [--legacy-native-tls ON|OFF] [--plaintext-no-password "
            "ON|OFF]\n"
            "       clink-accounts --file FILE drop  USER[@HOST]\n"
            "\n"
            "Manage the accounts file that clink-node's clients log in against. HOST is an address or\n"
            "a pattern with %% and _ (default %%, any host). The file keeps password verifiers only\n"
            "(a salted SHA-256 crypt; mysql_native_password's only with --native-password ON), mode\n"
            "0600, replaced atomically; send the node SIGHUP to load it. An account without a password\n"
            "logs in only with a verified client certificate (unless --plaintext-no-password ON).\n"
            "\n"
            "Options:\n"
            "  --file FILE        the accounts file (created by the first add)\n"
            "  --require REQ      MySQL's REQUIRE clause: NONE, SSL, X509, or SUBJECT '...' [AND]\n"
            "                     ISSUER '...' [AND] CIPHER '...' (names as /C=../O=../CN=..).\n"
            "                     add: default NONE\n"
            "  --password-stdin   read the password from the first line of standard input\n"
            "  --no-password      alter: remove the password (log in by verified certificate only)\n"
            "  --grant G          ALL: may manage accounts and reload TLS from a MySQL client\n"
            "                     (GRANT, CREATE USER...: the first such account is made here);\n"
            "                     USAGE: may not (add: the default)\n"
            "  --legacy-native-tls ON|OFF\n"
            "                     ON: accept a MySQL client's mysql_native_password answer inside TLS,\n"
            "                     for old clients without caching_sha2_password. That answer is not\n"
            "                     bound to the TLS session: a server the client did not verify can\n"
            "                     relay it (docs/SECURITY.md). ON implies --native-password ON. add: OFF\n"
            "  --native-password ON|OFF\n"
            "                     ON: also keep mysql_native_password's verifier, the unsalted\n"
            "                     SHA1(SHA1(password)): equal passwords show as equal strings, and a\n"
            "                     reader of the file can test guesses fast. Only scramble logins need\n"
            "                     it: plaintext, native clients that do not verify the server by name,\n"
            "                     --legacy-native-tls. alter: turning it ON needs --password-stdin;\n"
            "                     OFF drops the verifier. add: OFF\n"
            "  --plaintext-no-password ON|OFF\n"
            "                     ON: an account without a password logs in without a verified client\n"
            "                     certificate too (plaintext, or TLS without one): anyone who can\n"
            "                     connect from HOST is this account. Only for a literal HOST (an\n"
            "                     address or localhost): a bench's plaintext baseline, a plaintext\n"
            "                     cluster during a migration. add: OFF\n"
            "  -h, --help         this text\n"
            "\n"
            "Exit status: 0 done, 1 refused (the reason is printed), 2 usage error.\n"
            "Example: clink-accounts --file accounts.cnf add root --require \"SUBJECT '/CN=agg1'\"\n"
            "         clink-accounts --file accounts.cnf add admin@localhost --require SSL --password-stdin "
            "--grant ALL\n");
}

static int read_password(char *buf, size_t cap)
{
    if (fgets(buf, (int)cap, stdin) == NULL) {
        return -1;
    }
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n') {
        buf[--n] = '\0';
    } else if (n == cap - 1) {
        return -1; /* longer than the limit: refuse rather than cut */
    }
    if (n > 0 && buf[n - 1] == '\r') {
        buf[--n] = '\0';
    }
    return n > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"file", required_argument, NULL, 'f'},
        {"require", required_argument, NULL, 'r'},
        {"password-stdin", no_argument, NULL, 'p'},
        {"no-password", no_argument, NULL, 'n'},
        {"grant", required_argument, NULL, 'g'},
        {"legacy-native-tls", required_argument, NULL, 'L'},
        {"native-password", required_argument, NULL, 'N'},
        {"plaintext-no-password", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *require = NULL, *grant = NULL, *legacy = NULL, *native = NULL, *plain_nopw = NULL;
    int pw_stdin = 0, no_pw = 0, ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'f':
            file = optarg;
            break;
        case 'r':
            require = optarg;
            break;
        case 'g':
            grant = optarg;
            break;
        case 'L':
            legacy = optarg;
            break;
        case 'N':
            native = optarg;
            break;
        case 'P':
            plain_nopw = optarg;
            break;
        case 'p':
            pw_stdin = 1;
            break;
        case 'n':
            no_pw = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (file == NULL || argc - optind != 2 || (pw_stdin && no_pw)) {
        fprintf(stderr, "clink-accounts: --file, a command (add, alter, drop) and USER[@HOST] are needed\n"
                        "Run 'clink-accounts --help' for usage.\n");
        return 2;
    }
    const char *cmd = argv[optind];
    int add = strcmp(cmd, "add") == 0, alter = strcmp(cmd, "alter") == 0, drop = strcmp(cmd, "drop") == 0;
    if (!add && !alter && !drop) {
        fprintf(stderr, "clink-accounts: unknown command '%s' (add, alter, drop)\n", cmd);
        return 2;
    }
    if ((drop && (require || pw_stdin || no_pw || grant || legacy || native || plain_nopw)) || (add && no_pw)) {
        fprintf(stderr, "clink-accounts: %s takes no %s\n", cmd,
                require      ? "--require"
                : grant      ? "--grant"
                : legacy     ? "--legacy-native-tls"
                : native     ? "--native-password"
                : plain_nopw ? "--plaintext-no-password"
                             : "password option");
        return 2;
    }
    char who[CLINK_USER_MAX + CLINK_HOST_MAX + 2];
    if (strlen(argv[optind + 1]) >= sizeof(who)) {
        fprintf(stderr, "clink-accounts: '%s' is too long\n", argv[optind + 1]);
        return 2;
    }
    snprintf(who, sizeof(who), "%s", argv[optind + 1]);
    char *at = strrchr(who, '@');
    const char *host = NULL;
    if (at != NULL) {
        *at = '\0';
        host = at + 1;
    }

    char err[512] = "";
    struct clink_accounts *acc = NULL;
    int ret;
    if (access(file, F_OK) == 0) {
        ret = clink_accounts_load(file, &acc, err, sizeof(err));
    } else if (add && errno == ENOENT) {
        ret = clink_accounts_new(file, &acc);
    } else {
        snprintf(err, sizeof(err), "%s: %s", file, strerror(errno));
        ret = -1;
    }
    if (ret < 0) {
        fprintf(stderr, "clink-accounts: %s\n", err[0] ? err : clink_strerror(ret));
        return 1;
    }
    char pw[CLINK_PASSWORD_MAX + 2] = "";
    if (pw_stdin && read_password(pw, sizeof(pw)) < 0) {
        fprintf(stderr, "clink-accounts: no password (1 to %d bytes) on the first line of standard input\n",
                CLINK_PASSWORD_MAX);
        clink_accounts_free(acc);
        return 1;
    }
    struct clink_account_spec spec = {
        .user = who,
        .host = host,
        .password = pw_stdin ? pw
                    : no_pw  ? ""
                             : NULL,
        .require = require,
        .grant = grant,
        .legacy_native_tls = legacy,
        .native_password = native,
        .plaintext_no_password = plain_nopw,
    };
    if (add) {
        ret = clink_accounts_add(acc, &spec, err, sizeof(err));
    } else if (alter) {
        ret = clink_accounts_alter(acc, &spec, err, sizeof(err));
    } else {
        ret = clink_accounts_drop(acc, who, host, err, sizeof(err));
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    clink_accounts_free(acc);
    if (ret < 0) {
        fprintf(stderr, "clink-accounts: %s: %s\n", cmd, err[0] ? err : clink_strerror(ret));
        return 1;
    }
    printf("clink-accounts: %s '%s'@'%s' in %s\n",
           add     ? "added"
           : alter ? "changed"
                   : "dropped",
           who, host ? host : "%", file);
    /* What an account without a password now means (issue 17): said where it is made, not found out at a login. */
    if ((add && !pw_stdin) || no_pw) {
        if (plain_nopw != NULL && strcmp(plain_nopw, "ON") == 0) {
            fprintf(stderr,
                    "clink-accounts: warning: '%s'@'%s' has no password and plaintext_no_password = ON: any "
                    "client that connects from %s logs in as it, with no password and no certificate\n",
                    who, host, host);
        } else {
            fprintf(stderr,
                    "clink-accounts: note: '%s'@'%s' has no password: it logs in only with a verified client "
                    "certificate%s (--require X509 or SUBJECT '...' says whose)\n",
                    who, host ? host : "%", alter ? ", unless it is plaintext_no_password" : "");
        }
    }
    return 0;
}
