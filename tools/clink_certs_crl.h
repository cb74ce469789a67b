/*
 * clink-certs's revocation commands (clink_certs_crl.c), called by its main
 * with argv[0] the command's name. Each returns the exit status.
 */
#ifndef CLINK_TOOLS_CLINK_CERTS_CRL_H
#define CLINK_TOOLS_CLINK_CERTS_CRL_H

#include <stdint.h>

/*
 * Shared by clink-certs's files (clink_certs.c): a usage error with the
 * hint to run "clink-certs CMD--help" (cmd: "" or "revoke " with its space;
 * returns 2), getopt_long's refusal of an option in words, and --days N
 * (1 to 3650) as seconds (0, or negative).
 */
int clink_certs_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int clink_certs_option_error(const char *cmd, int c, char *const *argv);
int clink_certs_parse_days(const char *s, int64_t *out);

int clink_certs_revoke(int argc, char **argv); /* clink-certs revoke */
int clink_certs_crl(int argc, char **argv);    /* clink-certs crl */

#endif
