/*
 * clink-certs's revocation commands (clink_certs_crl.c), called by its main
 * with argv[0] the command's name. Each returns the exit status.
 */
#ifndef CLINK_TOOLS_CLINK_CERTS_CRL_H
#define CLINK_TOOLS_CLINK_CERTS_CRL_H

int clink_certs_revoke(int argc, char **argv); /* clink-certs revoke */
int clink_certs_crl(int argc, char **argv);    /* clink-certs crl */

#endif
