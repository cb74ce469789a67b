/*
 * clink admin: the cluster administered from one place, as memsql-ops does
 * (docs/admin.md). A client of the nodes' ops endpoints (clink/ops.h): it
 * asks an aggregator for the cluster (GET /cluster), then sends each node
 * its change over HTTPS, verifying the node's certificate (CA and name) and
 * logging in with a client certificate: an account with no password,
 * REQUIRE SUBJECT naming the certificate, and grant ALL. What clink-admin
 * does, a program does with these calls.
 *
 * Blocking calls with a timeout on every step; for tools and operators'
 * scripts, not for a node's workers. A node closing under a request (it
 * is restarting) is an error, never a SIGPIPE. Thread: any; one struct clink_admin
 * may serve several threads (it holds only settings and an SSL_CTX).
 */
#ifndef CLINK_ADMIN_H
#define CLINK_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "clink/auth.h"
#include "clink/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct clink_admin;

struct clink_admin_opts {
    const char *ca_file;   /* [in] required: the CA bundle the nodes' ops certificates chain to */
    const char *cert_file; /* [in] the administrator's certificate (PEM); with key_file */
    const char *key_file;  /* [in] its private key */
    const char *user;      /* [in] required: the account (grant ALL) */
    const char *password;  /* [in] optional: a password login instead of a certificate (copied, wiped at free) */
    uint32_t timeout_ms;   /* connect, send and answer, per request; 0: 10000 */
    /*
     * [in] The name every node's ops certificate must carry, where one
     * certificate is shared by every node (MemSQL's document makes one, with
     * no subjectAltName); NULL: each node's own address, as asked.
     */
    const char *server_name;
};

/* Returns 0, -CLINK_EINVAL or -CLINK_ECONFIG (err says: unreadable file, key does not match). */
CLINK_API CLINK_MUST_USE int clink_admin_new(const struct clink_admin_opts *opts, struct clink_admin **out, char *err,
                                             size_t errlen);
CLINK_API void clink_admin_free(struct clink_admin *a);

/* A node as the aggregator asked knows it (GET /cluster). */
struct clink_admin_node {
    char name[64];
    char role[16];             /* "aggregator" or "leaf" */
    int self;                  /* the node that was asked */
    char host[256];            /* its address (the one asked, for self) */
    uint16_t port;             /* its cluster port */
    uint16_t ops_port;         /* its ops endpoint; 0: none known (down, or it runs none) */
    int up;                    /* its pool has a link, or the last dial worked */
    char secure_transport[16]; /* self: its state (REQUIRE_TLS...); a peer: "TLS", "kTLS", "plaintext" or "none" */
    int64_t cert_not_after;    /* its certificate's expiry, unix seconds; 0: unknown */
    char instance[17];         /* self: random per process start (a restart changes it); "" for peers */
};

/*
 * The cluster as the node at host:ops_port knows it: itself first, then
 * its peers. [out] *nodes (free with free()) and *n. Returns 0, or negative
 * with err (cannot connect, certificate refused, not an ops endpoint).
 */
CLINK_API CLINK_MUST_USE int clink_admin_list(struct clink_admin *a, const char *host, uint16_t ops_port,
                                              struct clink_admin_node **nodes, size_t *n, char *err, size_t errlen);

/* What a node answered. */
struct clink_admin_result {
    int http_status;    /* 0: no answer (message says why) */
    char outcome[16];   /* config: "applied", "restart", "unchanged" or "refused"; others: "ok" or "failed" */
    char file[512];     /* config: the file edited */
    char message[1536]; /* in words: why refused, what the reload did */
};

/*
 * POST /config: set one [server] key in the node's config file; the node
 * checks the whole result, writes it (keeping the old as FILE.bak) and
 * reloads (clink_server_set_config). Returns 0 when the node made or kept
 * the change (outcome applied, restart or unchanged), negative otherwise.
 */
CLINK_API int clink_admin_set_config(struct clink_admin *a, const struct clink_admin_node *node, const char *key,
                                     const char *value, struct clink_admin_result *r);

/* The same for n keys as one change, checked and applied together (a certificate and its key). */
CLINK_API int clink_admin_set_configs(struct clink_admin *a, const struct clink_admin_node *node, size_t n,
                                      const char *const *keys, const char *const *values, struct clink_admin_result *r);

/* POST /reload: the node reads its files again (clink_server_reload). Returns 0 or negative. */
CLINK_API int clink_admin_reload(struct clink_admin *a, const struct clink_admin_node *node,
                                 struct clink_admin_result *r);

/*
 * POST /restart: the node stops gracefully and its supervisor starts it
 * again; a node with none says so (outcome failed). Returns 0 or negative.
 */
CLINK_API int clink_admin_restart(struct clink_admin *a, const struct clink_admin_node *node,
                                  struct clink_admin_result *r);

/*
 * Renew one node's certificate without its key leaving the node: the node
 * makes a new key and a signing request (POST /csr); the request is signed
 * here with the CA in ca_cert/ca_key for exactly the identity of the
 * node's current certificate, which must verify against trust_file (NULL:
 * ca_cert; during a CA rollover, the bundle with the old CA)
 * (clink_cert_sign_renewal); the node checks and installs it and reloads
 * (POST /cert). valid_for_s 0: 365 days. Returns 0, or negative with
 * r->message (nothing changed on the node).
 */
CLINK_API int clink_admin_rotate_cert(struct clink_admin *a, const struct clink_admin_node *node, const char *ca_cert,
                                      const char *ca_key, const char *trust_file, int64_t valid_for_s,
                                      struct clink_admin_result *r);

/*
 * POST /accounts/issuer: on the node, every account whose REQUIRE ISSUER is
 * exactly from now requires to (a CA rollover's accounts step:
 * clink_accounts_replace_issuer). Returns 0 (r->message says how many) or
 * negative.
 */
CLINK_API int clink_admin_replace_issuer(struct clink_admin *a, const struct clink_admin_node *node, const char *from,
                                         const char *to, struct clink_admin_result *r);

/*
 * Any request: method "GET" or "POST" (json body, may be NULL), path
 * "/status". [out] *status and *body (free with free(); NUL-terminated).
 * Returns 0 once an answer came, negative with err otherwise.
 */
CLINK_API CLINK_MUST_USE int clink_admin_request(struct clink_admin *a, const char *host, uint16_t ops_port,
                                                 const char *method, const char *path, const char *json, int *status,
                                                 char **body, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
