/*
 * HTTP/1.1 requests on a node's HTTPS port (clink_node_listen_https): the
 * framing and parsing of what a browser, curl or Prometheus sends, as pure
 * functions with no I/O, so that every byte from the network goes through
 * code fuzzed on its own (fuzz/fuzz_http.c).
 *
 * Only what an operations endpoint needs: one request per connection
 * (responses say "Connection: close"), GET/HEAD/POST, a body only with
 * Content-Length (no chunked requests), the head at most
 * CLINK_HTTP_MAX_HEAD bytes and the body at most CLINK_HTTP_MAX_BODY.
 * Anything else is refused with the status a server owes it (400, 405, 411,
 * 413, 414, 431, 501, 505) before anything is allocated.
 */
#ifndef CLINK_TRANSPORT_HTTP_H
#define CLINK_TRANSPORT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "clink/http.h"
#include "clink/transport.h"

#define CLINK_HTTP_MAX_HEAD (16u << 10)
#define CLINK_HTTP_MAX_BODY (64u << 10)

/*
 * Parse the request at the start of b[0..n). Returns:
 *  > 0  the request is complete: its length in bytes (head and body); *out
 *       is filled (strings NUL-terminated copies, body points into b);
 *    0  not complete yet: read more (n is below the limits); once the head
 *       is whole (it ends at the first CRLFCRLF), out->body_len already
 *       says how long the body will be, so a caller need not parse again
 *       before all of it has arrived;
 *  < 0  -CLINK_EPROTO: refuse it; *status is the HTTP status to answer
 *       (400, 405, 411, 413, 414, 431, 501 or 505) and *why says why, in words.
 * Never reads past b[n-1]; b need not be NUL-terminated.
 */
int clink__http_parse(const uint8_t *b, size_t n, struct clink_http_request *out, int *status, const char **why);

/* The reason phrase of an HTTP status ("Not Found"); "Unknown" for codes it does not know. */
const char *clink__http_reason(int status);

#endif
