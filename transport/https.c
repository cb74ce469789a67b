/*
 * The HTTPS port's protocol on a connection: one HTTP/1.1 request, parsed
 * (transport/http.c) and handed to the port's handler, whose answer is sent
 * as is before close_notify and close. Never a link, never kTLS.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/conn_int.h"
#include "transport/frame.h"
#include "transport/http.h"

#define HTTPS_ANSWER_NS (60000ull * 1000000ull) /* longest an HTTPS answer may take to leave, however it trickles */

struct clink__https {
    int taken;                      /* its request went to the handler */
    size_t scan, need;              /* bytes searched for the head's end; the request's length once known */
    struct clink_http_request *req; /* the request, parsed (allocated once it is complete) */
};

/* Answer an HTTP request that never reaches the handler (malformed, or no room), then close. */
static void http_refuse(struct clink_conn *c, int status, const char *why)
{
    char b[512];
    int n = snprintf(b, sizeof(b),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "%sConnection: close\r\n\r\n%s\n",
                     status, clink__http_reason(status), strlen(why) + 1,
                     status == 405 ? "Allow: GET, HEAD, POST\r\n" : "", why);
    CLINK_IGNORE(clink__bytes_append(clink__conn_out(c), b, (size_t)n) < 0);
    clink__conn_refuse(c, -CLINK_EPROTO, "HTTPS request refused: %d %s", status, why);
}

static void http_input(struct clink_conn *c, struct clink__bytes *buf)
{
    if (c->http->taken) {
        clink__bytes_consume(buf, clink__bytes_len(buf)); /* one request per connection: the rest is not read */
        return;
    }
    /*
     * Parse only when it can end differently: once the head is whole, or
     * past its size limit, or the body has all arrived. A client sending
     * its request in one-byte records must not make every record cost a
     * parse of everything before it.
     */
    const uint8_t *b = clink__bytes_data(buf);
    size_t len = clink__bytes_len(buf);
    if (c->http->need > 0 && len < c->http->need) {
        return;
    }
    const uint8_t *end = NULL;
    if (c->http->need == 0) {
        size_t from = c->http->scan > 3 ? c->http->scan - 3 : 0;
        end = from < len ? memmem(b + from, len - from, "\r\n\r\n", 4) : NULL;
        if (end == NULL && len < CLINK_HTTP_MAX_HEAD && c->http->scan > 0) {
            c->http->scan = len;
            return;
        }
        c->http->scan = len; /* the first bytes are parsed at once: garbage is refused early */
    }
    struct clink_http_request hr;
    int status = 0;
    const char *why = "";
    int n = clink__http_parse(b, len, &hr, &status, &why);
    if (n == 0) {
        if (end != NULL) {
            c->http->need = (size_t)(end - b) + 4 + hr.body_len; /* the head is whole: only its body is missing */
        }
        return;
    }
    if (n < 0) {
        http_refuse(c, status, why);
        return;
    }
    struct clink_req *r = NULL;
    if ((c->http->req = malloc(sizeof(*c->http->req))) == NULL || (r = clink__req_new(c)) == NULL) {
        http_refuse(c, 503, "out of memory");
        return;
    }
    *c->http->req = hr;
    c->http->taken = 1;
    clink__conn_hs_release(c); /* the handshake slot: the handler's time is not a handshake's */
    STAT_ADD(c->w, https_requests, 1);
    r->id = 1;
    r->method = CLINK_METHOD_HTTP;
    r->data = clink__bytes_data(buf);
    r->len = (size_t)n;
    clink__tls_status(c->tls, &c->cache); /* the cipher, for a login's REQUIRE CIPHER */
    c->node->https_fn(r, c->node->https_user);
    /* The request may carry credentials: the handler copied what it needs. */
    OPENSSL_cleanse(&hr, sizeof(hr));
    OPENSSL_cleanse(clink__bytes_data(buf), clink__bytes_len(buf));
    clink__bytes_consume(buf, clink__bytes_len(buf));
}

/* The handler's answer: the whole HTTP response, sent as is; then close_notify and close. */
static int http_answer(struct clink_req *req, uint8_t type, const struct iovec *iov, unsigned iovcnt, const void *extra,
                       size_t extra_len)
{
    (void)extra, (void)extra_len; /* an error frame's code: HTTP says 500 instead */
    struct clink_conn *c = req->conn;
    clink__req_free(req);
    if (c->state >= CS_CLOSING) {
        return -CLINK_ECLOSED;
    }
    if (type != CLINK_FRAME_RESPONSE) {
        http_refuse(c, 500, "the handler failed the request");
        return 0;
    }
    for (unsigned i = 0; i < iovcnt; i++) {
        if (clink__bytes_append(clink__conn_out(c), iov[i].iov_base, iov[i].iov_len) < 0) {
            clink__conn_fail(c, -CLINK_ENOMEM, "out of memory for an HTTPS response");
            return -CLINK_ENOMEM;
        }
    }
    c->linger_until = clink__now_ns() + HTTPS_ANSWER_NS;
    clink__conn_close_now(c, 0, 1);
    return 0;
}

const struct clink_http_request *clink_req_http(const struct clink_req *req)
{
    /* The method alone proves nothing: a native peer may send a request numbered CLINK_METHOD_HTTP. */
    return req != NULL && req->method == CLINK_METHOD_HTTP && req->conn != NULL &&
                   req->conn->proto == &clink__proto_https
               ? req->conn->http->req
               : NULL;
}

/* The HTTPS port's opening: TLS with the port's own certificate, or a plain-HTTP client told to use https. */
static void https_opening(struct clink_conn *c, enum clink_opening_kind kind)
{
    if (kind != CLINK_OPENING_TLS) {
        /* Plain HTTP (or anything else) on the HTTPS port: said in HTTP, never served. */
        http_refuse(c, 400, "this port speaks HTTPS only: use https://");
        return;
    }
    int ret = clink__conn_server_tls(c, &c->node->https_tls);
    if (ret < 0) {
        clink__conn_fail(c, ret, "TLS setup failed");
        return;
    }
    c->tls->other = 1; /* ALPN http/1.1 or none, not clink's */
    c->state = CS_HANDSHAKE;
    clink__conn_step_handshake(c);
}

static void https_opened(struct clink_conn *c)
{
    c->exact = 0; /* HTTP from here; never handed to the kernel */
}

/* A client that closes its side after its request still gets the answer. */
static int https_half_closed(struct clink_conn *c)
{
    return c->http->taken;
}

static int https_closing(struct clink_conn *c)
{
    (void)c;
    return 0; /* one request, no session: nothing to say goodbye with */
}

static void https_free(struct clink_conn *c)
{
    if (c->http != NULL) {
        if (c->http->req != NULL) {
            OPENSSL_cleanse(c->http->req, sizeof(*c->http->req)); /* its Authorization header */
            free(c->http->req);
        }
        free(c->http);
        c->http = NULL;
    }
}

int clink__https_start(struct clink_conn *c)
{
    c->proto = &clink__proto_https;
    c->http = calloc(1, sizeof(*c->http));
    return c->http != NULL ? 0 : -CLINK_ENOMEM;
}

const struct clink__proto clink__proto_https = {
    .name = "https",
    .link = 0,
    .app = 0,
    .deadline = "HTTPS request not read and answered",
    .opening = https_opening,
    .opened = https_opened,
    .input = http_input,
    .half_closed = https_half_closed,
    .closing = https_closing,
    .answer = http_answer,
    .free = https_free,
};
