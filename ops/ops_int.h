/*
 * Internals of the ops endpoint: a snapshot of what a node knows about
 * itself, taken once per request (ops.c), and the three ways it is written
 * out (render.c): Prometheus text, JSON, and an HTML page. The renderers
 * are pure: a snapshot in, text out.
 */
#ifndef CLINK_OPS_OPS_INT_H
#define CLINK_OPS_OPS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "clink/accounts.h"
#include "clink/admin.h"
#include "clink/ops.h"

struct clink__samples;
struct clink__sampler;
struct clink__peer_view;

/* A certificate in use and where it is used. */
struct clink__ops_cert {
    struct clink_cert_info ci;
    const char *use; /* "node", "https" or "peer" */
    char peer[64];   /* peer certificates: the link's peer address */
    int inbound;     /* ... of a link that connected to us (its address is hidden from anonymous readers) */
};

struct clink__ops_snapshot {
    char name[64];
    int64_t now; /* unix seconds */
    uint16_t port, https_port;
    unsigned workers;
    enum clink_secure_transport secure;
    unsigned warn_days;
    struct clink_node_stats stats;
    struct clink_login_stats logins; /* the accounts' failed-login throttle; zero without accounts */
    struct clink_conn_status *links;
    size_t nlinks;
    struct clink_peer_info *peers;
    size_t npeers;
    struct clink__ops_cert *certs;
    size_t ncerts;
    struct clink__samples *hist;    /* the charts' ring (samples.h), NULL: none; the page locks it while drawing */
    struct clink__peer_view *views; /* each peer as its own ops port says (peer_view.c); NULL on a leaf */
    size_t nviews;
    /* the last reload asked for over HTTPS */
    int64_t reload_at; /* 0: none yet */
    int reload_ok;
    char reload_msg[512];
};

/* A growable text buffer; a failed allocation sticks (err) and later writes are dropped. */
struct clink__sbuf {
    char *p;
    size_t n, cap;
    int err;
};
void clink__sb_printf(struct clink__sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void clink__sb_html(struct clink__sbuf *b, const char *s); /* s escaped for HTML text and attributes */

/* Links counted as "plaintext links left" (open or draining, in plaintext). */
size_t clink__ops_plaintext_links(const struct clink__ops_snapshot *s);
/* "plain", "tls" or "ktls" (the kernel has both directions). */
const char *clink__ops_link_mode(const struct clink_conn_status *st);
/* The role of a link: the peer's role for our dials labelled with a peer name, "client" or "mysql" for accepted. */
const char *clink__ops_link_role(const struct clink__ops_snapshot *s, const struct clink_conn_status *st);

/*
 * admin.c: the answers to clink-admin's requests, as JSON in out; each
 * returns the HTTP status. POST /restart answers before the restart
 * callback runs (the node stops right after): can is whether there is one.
 */
int clink__ops_config(clink_ops_config_fn fn, void *user, const uint8_t *body, size_t len, const char *who,
                      struct clink__sbuf *out);
int clink__ops_restart_answer(int can, const char *msg, struct clink__sbuf *out);
/* POST /accounts/issuer (body {"from": DN, "to": DN}). */
int clink__ops_issuer(clink_ops_issuer_fn fn, void *user, const uint8_t *body, size_t len, const char *who,
                      struct clink__sbuf *out);
/* POST /csr (csr = 1, no body needed) and POST /cert (body {"cert": PEM}). */
int clink__ops_renew(clink_ops_renew_fn fn, void *user, int csr, const uint8_t *body, size_t len, const char *who,
                     struct clink__sbuf *out);
/* "Node HTTPS port: N" in a node's CLINK_METHOD_STATUS answer (transport/native.c), else 0. */
unsigned clink__ops_port_of_status(const struct clink_msg *m);
int clink__ops_cluster(struct clink_node *node, struct clink_cluster *cl, const char *name, const char *instance,
                       struct clink__sbuf *out);

/*
 * admin_client.c: a client of other nodes' ops ports with no login, over
 * ctx (a node's own client context: its CAs, its certificate), each node
 * verified by the name asked. For GET /status. Free with clink_admin_free.
 */
struct clink_admin *clink__admin_anonymous(struct ssl_ctx_st *ctx, uint32_t timeout_ms);

/* A GET with no login, the node verified by verify_name (admin_client.c). */
int clink__admin_get(struct clink_admin *a, const char *host, uint16_t port, const char *verify_name, const char *path,
                     int *status, char **body, char *err, size_t errlen);

/* peer_view.c: each peer as its own ops port tells it (an aggregator's page), refreshed every 10 s. */
#define CLINK__PEER_VIEWS 256
struct clink__peer_view {
    char name[64];
    int64_t at;    /* when asked (unix seconds) */
    int ok;        /* its /status was read: the facts below hold */
    char why[160]; /* else why not */
    uint16_t ops_port;
    char secure[16];
    unsigned long plaintext_links;
    int64_t cert_not_after; /* its own certificate's; 0: none */
};
struct clink__peer_views;
struct clink__peer_views *clink__peer_views_start(struct clink_node *node);
void clink__peer_views_set_cluster(struct clink__peer_views *pv, struct clink_cluster *cl);
size_t clink__peer_views_copy(struct clink__peer_views *pv, struct clink__peer_view *out, size_t cap);
void clink__peer_views_stop(struct clink__peer_views *pv);

int clink__ops_metrics(const struct clink__ops_snapshot *s, struct clink__sbuf *out);
int clink__ops_json(const struct clink__ops_snapshot *s, struct clink__sbuf *out);
int clink__ops_page(const struct clink__ops_snapshot *s, struct clink__sbuf *out);

/*
 * The page's pictures (render_charts.c, timeline.c), with s->hist locked by
 * the caller: the node's charts over 15 minutes, each peer's, a calls/s
 * sparkline for one row of the nodes table (peer NULL: this node), and the
 * certificate expiry timeline, with the CSS they need.
 */
void clink__ops_node_charts(const struct clink__ops_snapshot *s, struct clink__sbuf *b);
void clink__ops_peer_charts(const struct clink__ops_snapshot *s, struct clink__sbuf *b);
void clink__ops_sparkline(const struct clink__ops_snapshot *s, struct clink__sbuf *b, const char *peer, const char *id);
void clink__ops_timeline(const struct clink__ops_snapshot *s, struct clink__sbuf *b);
extern const char clink__chart_css[];
extern const char clink__timeline_css[];

/* ops.c: the endpoint's sampler, so that a test can tick it (clink__sampler_tick) instead of waiting. */
struct clink__sampler *clink__ops_sampler(struct clink_ops *ops);

#endif
