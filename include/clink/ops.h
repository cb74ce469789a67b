/*
 * clink ops: a node's operations endpoint over HTTPS (docs/ops.md), served
 * by the node's own workers on a second port (clink_node_listen_https):
 *
 *   GET  /                   a page for people: the node, its peers and links,
 *                            what is encrypted and how, certificates expiring soon,
 *                            and the last 15 minutes as charts (sampled once a
 *                            second by a thread of the endpoint's own)
 *   GET  /metrics            Prometheus text format (clink_* metrics)
 *   GET  /status             JSON: the node, its certificates, peers and every link
 *   POST /reload             reload certificates (and what the application's
 *                            reload callback reloads); answered with its outcome
 *   POST /secure-transport   body {"state": "PREFER_TLS"}: move the node's
 *                            transport security (clink_node_set_secure_transport)
 *   POST /config             body {"key": "ssl_ca", "value": "certs/ca.pem"}, or
 *                            {"set": [{"key": ..., "value": ...}, ...]}: change
 *                            settings of the node's config file as one change and
 *                            apply it (the application's config callback)
 *   POST /restart            restart the node's process (the application's
 *                            restart callback: where a supervisor restarts it)
 *   POST /csr, POST /cert    renew the node's certificate: a new key and a signing
 *                            request made on the node, then the signed certificate
 *                            installed (the application's renew callback)
 *   POST /accounts/issuer    body {"from": DN, "to": DN}: accounts that REQUIRE
 *                            ISSUER the old CA require the new one (a CA rollover)
 *   GET  /cluster            JSON: this node and, on an aggregator, every peer as
 *                            it knows them (name, role, address, ops port, up,
 *                            transport security, certificate expiry): what
 *                            clink-admin list shows and where it sends changes
 *
 * The GETs are open to whoever reaches the port (bind it where operators and
 * Prometheus are). A POST must log in with HTTP Basic as an account that
 * holds grant ALL (clink/accounts.h) and carry Content-Type
 * application/json, which no HTML form can send across sites (CSRF).
 * Requests are answered on one ops thread, never on a worker: gathering every
 * worker's links waits for them.
 */
#ifndef CLINK_OPS_H
#define CLINK_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "clink/accounts.h"
#include "clink/error.h"
#include "clink/log.h"
#include "clink/pool.h"
#include "clink/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLINK_OPS_DEFAULT_PORT 9001

struct clink_ops;

/*
 * The application's reload (POST /reload): rebuild and swap whatever it
 * reloads on SIGHUP. Writes what happened, in words, to msg. Returns 0 or
 * negative (msg says why; what was in use stays). Runs on the ops thread.
 */
typedef int (*clink_ops_reload_fn)(void *user, char *msg, size_t cap);

/*
 * The application's config editor (POST /config): set keys[i] to
 * values[i] (n of them, at least 1) in the node's config file as one
 * change, and apply it (clink_server_set_configs does all of it). Writes
 * the outcome as one JSON object to json (cap bytes): at least "outcome"
 * ("applied", "restart", "unchanged" or "refused") and, refused, "why".
 * who: the administrator, for the node's log. Returns 0, or negative when
 * refused. Runs on the ops thread.
 */
typedef int (*clink_ops_config_fn)(void *user, size_t n, const char *const *keys, const char *const *values,
                                   const char *who, char *json, size_t cap);

/*
 * The application's restart (POST /restart): returns 0 if the process will
 * stop and be started again (msg says how), negative if it cannot (msg says
 * why: no supervisor). The answer is sent before the node stops. Runs on
 * the ops thread.
 */
typedef int (*clink_ops_restart_fn)(void *user, const char *who, char *msg, size_t cap);

/*
 * The application's certificate renewal (clink-admin rotate-certs).
 * POST /csr (cert_pem NULL): make a new key and a signing request, and
 * write {"outcome", "csr", "cert" (the current certificate)}. POST /cert:
 * install cert_pem for that key and write {"outcome", "why"}. [out] *json
 * (malloc'd; ops frees it). Returns 0, or negative when refused.
 */
typedef int (*clink_ops_renew_fn)(void *user, const char *cert_pem, const char *who, char **json);

/*
 * The application's accounts edit for a CA rollover (POST /accounts/issuer,
 * body {"from": DN, "to": DN}: clink_accounts_replace_issuer on the node's
 * accounts). Writes {"outcome", "changed" or "why"} to json. Returns 0 or
 * negative (refused).
 */
typedef int (*clink_ops_issuer_fn)(void *user, const char *from, const char *to, const char *who, char *json,
                                   size_t cap);

/* Zero means default for every field. */
struct clink_ops_opts {
    struct clink_node *node;   /* [in] required; before clink_node_start (the port is the node's) */
    const char *addr;          /* [in] listen address; NULL: "127.0.0.1" */
    uint16_t port;             /* 0: ephemeral (see clink_node_https_port); the config's default is 9001 */
    struct clink_tls_ctx *tls; /* [in] HTTPS identity (clink_tls_ctx_new_https); required; the node takes a reference */
    struct clink_accounts *accounts; /* [in] who may POST (grant ALL); NULL: every POST is refused (403) */
    clink_ops_reload_fn reload;      /* optional: POST /reload (NULL: 501) */
    void *reload_user;
    clink_ops_config_fn config; /* optional: POST /config (NULL: 501) */
    void *config_user;
    clink_ops_restart_fn restart; /* optional: POST /restart (NULL: 501) */
    void *restart_user;
    clink_ops_renew_fn renew; /* optional: POST /csr and POST /cert (NULL: 501) */
    void *renew_user;
    clink_ops_issuer_fn issuer; /* optional: POST /accounts/issuer (NULL: 501) */
    void *issuer_user;
    const char *name;          /* [in] the node's name on the page and in metrics; NULL: "node" */
    unsigned expiry_warn_days; /* certificates closer to expiry are highlighted; 0: 30 */
    /* optional: refused POSTs (WARN, with the reason and the client) and changes made (INFO) */
    clink_log_fn log;
    void *log_user;
    enum clink_log_level log_level; /* 0: CLINK_LOG_WARN */
};

/*
 * Listen and start the ops thread. [out] *out; free with clink_ops_free
 * after clink_node_shutdown and before clink_node_free (requests still
 * queued hold the node's request objects). Returns 0, -CLINK_EINVAL,
 * -CLINK_ENOMEM or -errno (the port is taken).
 */
CLINK_API CLINK_MUST_USE int clink_ops_new(const struct clink_ops_opts *opts, struct clink_ops **out);

/*
 * The cluster whose pools to show and chart (set once it exists; NULL:
 * none). Once it returns, the sampler no longer reads the cluster it
 * replaced; the page still may until clink_ops_free, so free the cluster
 * after that. Thread: any but a worker (waits for a sample in progress).
 */
CLINK_API void clink_ops_set_cluster(struct clink_ops *ops, struct clink_cluster *cl);

/* Stop the ops thread (requests still queued get 503). Thread: any but a worker. */
CLINK_API void clink_ops_free(struct clink_ops *ops);

/*
 * The pages themselves, for tests and tools: [out] *out (caller frees with
 * free()) and *len. what: "metrics", "status" or "page". Returns 0,
 * -CLINK_EINVAL or -CLINK_ENOMEM. Thread: any but a worker.
 */
CLINK_API CLINK_MUST_USE int clink_ops_render(struct clink_ops *ops, const char *what, char **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
