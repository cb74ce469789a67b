/*
 * clink's HTTPS port: one HTTP/1.1 request per connection, served by the
 * node's own workers (TLS over the same memory BIOs, io_uring for every
 * byte). clink/ops.h serves the operations endpoint on it; the transport
 * only parses the request and sends the answer it is given.
 */
#ifndef CLINK_HTTP_H
#define CLINK_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "clink/auth.h"
#include "clink/error.h"
#include "clink/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Requests on the HTTPS port reach its handler as this method. */
#define CLINK_METHOD_HTTP 0xFF01

/* One HTTP/1.1 request, parsed (transport/http.c). Strings are NUL-terminated copies. */
struct clink_http_request {
    char method[8];          /* "GET", "HEAD" or "POST" */
    char path[256];          /* the target up to '?', as sent (not percent-decoded): "/metrics" */
    char query[512];         /* after '?', "" if none */
    char host[256];          /* the Host header, "" if none */
    char authorization[512]; /* the Authorization header as sent, "" if none */
    char content_type[128];  /* "" if none */
    const uint8_t *body;     /* Content-Length bytes (NULL when 0); valid during the handler */
    size_t body_len;
};

/*
 * Listen for HTTPS on addr:port (0: ephemeral, see clink_node_https_port),
 * served by the node's workers like its own port: TLS with tls's server
 * certificate (a clink_tls_ctx_new_https context; the node takes a
 * reference), io_uring for every byte, one HTTP/1.1 request per connection,
 * the whole exchange within handshake_timeout_ms. Each request reaches fn on
 * a worker as a clink_req of method CLINK_METHOD_HTTP (clink_req_http gives
 * it parsed); answer it with clink_req_respond, from any thread, whose
 * payload is the whole HTTP response (status line, headers, body): it is
 * sent as is and the connection then closes. Malformed requests are answered
 * with their 4xx/5xx here and never reach fn. Thread: before start.
 * Returns 0, -CLINK_EINVAL (already listening, no tls or fn) or -errno.
 */
CLINK_API CLINK_MUST_USE int clink_node_listen_https(struct clink_node *node, const char *addr, uint16_t port,
                                                     struct clink_tls_ctx *tls, clink_handler_fn fn, void *user);

/* The bound HTTPS port after clink_node_listen_https, else 0. Thread: any. */
CLINK_API uint16_t clink_node_https_port(const struct clink_node *node);

/* Replace the HTTPS port's certificate: new connections use tls (the node takes a reference). Thread: any. */
CLINK_API CLINK_MUST_USE int clink_node_reload_https(struct clink_node *node, struct clink_tls_ctx *tls);

/* The reason phrase of an HTTP status ("Not Found"), "Unknown" for one it does not know. Thread: any. */
CLINK_API const char *clink_http_reason(int status);

/* The parsed HTTP request of a CLINK_METHOD_HTTP request (valid during the handler), else NULL. */
CLINK_API const struct clink_http_request *clink_req_http(const struct clink_req *req);

#ifdef __cplusplus
}
#endif
#endif
