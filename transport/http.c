/*
 * HTTP/1.1 requests on the HTTPS port: see http.h. RFC 9112 (message
 * syntax) and RFC 9110 (semantics), the strict reading everywhere: the bytes
 * come straight from the network, and an operations endpoint loses nothing
 * by refusing what a browser, curl or Prometheus never sends.
 *
 * Accepted: "GET|HEAD|POST SP origin-form SP HTTP/1.0|HTTP/1.1 CRLF", header
 * lines "name: value" (the name a token, matched without case; the value
 * with its leading and trailing SP/HTAB trimmed), a blank line, then exactly
 * Content-Length bytes of body. Refused, with the status:
 *  400  a malformed request line or header line; an empty line first; a
 *       target not in origin-form ("*", "http://..."); a line not ended by
 *       CRLF (bare LF or bare CR: RFC 9112 section 2.2 lets a server take a
 *       bare LF, but a proxy in front may not, and agreeing on where a line
 *       ends is what stops request smuggling); obs-fold; a NUL or another
 *       control byte (HTAB aside) anywhere in the head; an HTTP/1.1 request
 *       with no Host (RFC 9112 section 3.2: MUST); a Host that is not a
 *       uri-host[:port]; two Host, Content-Length, Authorization or
 *       Content-Type lines (which one would the handler have checked?); a
 *       Content-Length that is not all digits (lists "5, 5" included);
 *       Transfer-Encoding with Content-Length (RFC 9112 section 6.3)
 *  405  a method RFC 9110 or 5789 defines other than GET/HEAD/POST (the
 *       caller's answer owes an "Allow: GET, HEAD, POST")
 *  411  POST without Content-Length
 *  413  Content-Length above CLINK_HTTP_MAX_BODY
 *  414  a path longer than out->path or a query longer than out->query
 *  431  a head (through its blank line) above CLINK_HTTP_MAX_HEAD, or a
 *       Host, Authorization or Content-Type longer than its field
 *  501  any other method token (case matters: "get" is one), and
 *       Transfer-Encoding (no chunked requests)
 *  505  a version other than HTTP/1.0 and HTTP/1.1 ("HTTP/2.0", "HTTP/0.9")
 *
 * Need more (0) versus refuse: the head is read as one scan, byte by byte,
 * that judges each byte as it arrives (a NUL, a target not starting with
 * '/'), each element as soon as its delimiter arrives (the method at its SP,
 * a header name at its colon) or as soon as it is too long for its field,
 * and what needs a whole line or the whole head at the line's end or the
 * head's. Running out of bytes in the middle is 0, never a verdict, so the
 * verdict on a prefix is the verdict on every longer input: a request that
 * arrives a byte at a time is never refused, and one that cannot become
 * valid is refused as early as its own element shows it (fuzz_http checks
 * both). A head still without its blank line at CLINK_HTTP_MAX_HEAD bytes
 * is 431, so an endless head is refused by its size, not by a timer.
 */
#include "transport/http.h"

#include <string.h>

#include "clink/error.h"

enum field { F_OTHER, F_HOST, F_AUTHORIZATION, F_CONTENT_TYPE, F_CONTENT_LENGTH, F_TRANSFER_ENCODING };

/* The scan's state across lines. */
struct scan {
    struct clink_http_request *out;
    int *status;
    const char **why;
    int minor;       /* HTTP/1.minor */
    unsigned seen;   /* 1 << enum field, for each field met */
    size_t body_len; /* Content-Length */
};

static int refuse(struct scan *s, int status, const char *why)
{
    *s->status = status;
    *s->why = why;
    return -CLINK_EPROTO;
}

/* RFC 9110 section 5.6.2: the bytes of a token (methods, header names). */
static int tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The bytes of a request target: visible ASCII (RFC 3986 is stricter, but browsers send '|', '^' and '"' raw). */
static int target_char(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

/* RFC 3986 uri-host and ":" port: reg-name or IP-literal characters. */
static int host_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~%!$&'()*+,;=:[]", c) != NULL);
}

/* p[0..n) is name, without case (name is lower case). */
static int name_is(const uint8_t *p, size_t n, const char *name)
{
    if (n != strlen(name)) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i] >= 'A' && p[i] <= 'Z' ? (uint8_t)(p[i] + ('a' - 'A')) : p[i];
        if (c != (uint8_t)name[i]) {
            return 0;
        }
    }
    return 1;
}

static void copy(char *dst, const uint8_t *p, size_t n)
{
    if (n > 0) {
        memcpy(dst, p, n);
    }
    dst[n] = '\0';
}

static int method(struct scan *s, const uint8_t *p, size_t n)
{
    static const char *const refused[] = {"PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"};
    copy(s->out->method, p, n);
    const char *m = s->out->method;
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "POST") == 0) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (strcmp(m, refused[i]) == 0) {
            return refuse(s, 405, "method not allowed");
        }
    }
    return refuse(s, 501, "method not implemented");
}

/*
 * The request line p[0..n), without its CRLF. partial: the line has not
 * ended yet, and running out of bytes is "need more" (0), not a verdict.
 */
static int request_line(struct scan *s, const uint8_t *p, size_t n, int partial)
{
    size_t i = 0;
    /* Every method we know fits out->method, so a longer token is one we do not implement, known at its 8th byte. */
    while (i < n && i < sizeof(s->out->method) && tchar(p[i])) {
        i++;
    }
    if (i == sizeof(s->out->method)) {
        return refuse(s, 501, "method not implemented");
    }
    if (i == n) {
        return partial ? 0 : refuse(s, 400, i == 0 ? "empty request line" : "request line without a target");
    }
    if (i == 0 || p[i] != ' ') {
        return refuse(s, 400, "malformed method");
    }
    int ret = method(s, p, i);
    if (ret < 0) {
        return ret;
    }
    i++;
    if (i == n) {
        return partial ? 0 : refuse(s, 400, "request line without a target");
    }
    /* Absolute-form is for proxies and asterisk-form for OPTIONS (RFC 9112 section 3.2): neither is ours. */
    if (p[i] != '/') {
        return refuse(s, 400, "request target not in origin-form");
    }
    size_t start = i;
    for (; i < n && p[i] != '?' && p[i] != ' '; i++) {
        if (!target_char(p[i])) {
            return refuse(s, 400, "bad byte in the request target");
        }
        if (i - start == sizeof(s->out->path) - 1) {
            return refuse(s, 414, "path too long");
        }
    }
    if (i == n) {
        return partial ? 0 : refuse(s, 400, "request line without a version");
    }
    copy(s->out->path, p + start, i - start);
    if (p[i] == '?') {
        start = ++i;
        for (; i < n && p[i] != ' '; i++) {
            if (!target_char(p[i])) {
                return refuse(s, 400, "bad byte in the request target");
            }
            if (i - start == sizeof(s->out->query) - 1) {
                return refuse(s, 414, "query too long");
            }
        }
        if (i == n) {
            return partial ? 0 : refuse(s, 400, "request line without a version");
        }
        copy(s->out->query, p + start, i - start);
    }
    i++;
    /* HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 section 2.3): a well-formed other version is 505. */
    static const char form[] = "HTTP/1.1";
    for (size_t k = 0; k < sizeof(form) - 1; k++, i++) {
        if (i == n) {
            return partial ? 0 : refuse(s, 400, "malformed HTTP version");
        }
        uint8_t c = p[i];
        if (k == 5 || k == 7) {
            if (c < '0' || c > '9') {
                return refuse(s, 400, "malformed HTTP version");
            }
            if ((k == 5 && c != '1') || (k == 7 && c > '1')) {
                return refuse(s, 505, "HTTP version not supported");
            }
            s->minor = c - '0';
        } else if (c != (uint8_t)form[k]) {
            return refuse(s, 400, "malformed HTTP version");
        }
    }
    return i == n ? 0 : refuse(s, 400, "bytes after the HTTP version");
}

static int content_length(struct scan *s, const uint8_t *p, size_t n)
{
    if (n == 0) {
        return refuse(s, 400, "empty Content-Length");
    }
    size_t v = 0;
    int big = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return refuse(s, 400, "Content-Length not a number");
        }
        /* v stays at most the limit before each step: no overflow, however many digits. */
        if (!big && (v = v * 10 + (size_t)(p[i] - '0')) > CLINK_HTTP_MAX_BODY) {
            big = 1;
        }
    }
    if (big) {
        return refuse(s, 413, "body larger than 64 KiB");
    }
    s->body_len = v;
    return 0;
}

/* A header line p[0..n), without its CRLF, and not empty if the line has ended; partial as for request_line. */
static int header_line(struct scan *s, const uint8_t *p, size_t n, int partial)
{
    if (n == 0) {
        return 0;
    }
    /* RFC 9112 section 5.2: a server MUST either reject obs-fold or replace it; a proxy may do the other. */
    if (p[0] == ' ' || p[0] == '\t') {
        return refuse(s, 400, "obsolete line folding");
    }
    size_t i = 0;
    while (i < n && tchar(p[i])) {
        i++;
    }
    if (i == n) {
        return partial ? 0 : refuse(s, 400, "header line without a colon");
    }
    /* Whitespace before the colon included: RFC 9112 section 5.1 says MUST reject (smuggling again). */
    if (i == 0 || p[i] != ':') {
        return refuse(s, 400, "malformed header name");
    }
    enum field f = name_is(p, i, "host")                ? F_HOST
                   : name_is(p, i, "authorization")     ? F_AUTHORIZATION
                   : name_is(p, i, "content-type")      ? F_CONTENT_TYPE
                   : name_is(p, i, "content-length")    ? F_CONTENT_LENGTH
                   : name_is(p, i, "transfer-encoding") ? F_TRANSFER_ENCODING
                                                        : F_OTHER;
    if (f != F_OTHER && f != F_TRANSFER_ENCODING && (s->seen & 1u << f)) {
        return refuse(s, 400,
                      f == F_HOST            ? "duplicate Host"
                      : f == F_AUTHORIZATION ? "duplicate Authorization"
                      : f == F_CONTENT_TYPE  ? "duplicate Content-Type"
                                             : "duplicate Content-Length");
    }
    if ((f == F_CONTENT_LENGTH && (s->seen & 1u << F_TRANSFER_ENCODING)) ||
        (f == F_TRANSFER_ENCODING && (s->seen & 1u << F_CONTENT_LENGTH))) {
        return refuse(s, 400, "Transfer-Encoding with Content-Length");
    }
    s->seen |= 1u << f;
    char *dst = f == F_HOST            ? s->out->host
                : f == F_AUTHORIZATION ? s->out->authorization
                : f == F_CONTENT_TYPE  ? s->out->content_type
                                       : NULL;
    size_t cap = f == F_HOST            ? sizeof(s->out->host)
                 : f == F_AUTHORIZATION ? sizeof(s->out->authorization)
                 : f == F_CONTENT_TYPE  ? sizeof(s->out->content_type)
                                        : 0;
    for (i++; i < n && (p[i] == ' ' || p[i] == '\t'); i++) {
    }
    size_t v = i, end = i; /* end: after the value's last byte that is not OWS, the trimmed value's end so far */
    for (; i < n; i++) {
        uint8_t c = p[i];
        /* field-vchar, obs-text, SP and HTAB (RFC 9110 section 5.5); CR, LF and NUL MUST be refused. */
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return refuse(s, 400, c == 0 ? "NUL in a header value" : "control character in a header value");
        }
        if (c != ' ' && c != '\t') {
            end = i + 1;
            /* The trimmed value can only grow: too long for its field now is too long for good. */
            if (dst != NULL && end - v >= cap) {
                return refuse(s, 431,
                              f == F_HOST            ? "Host header too long"
                              : f == F_AUTHORIZATION ? "Authorization header too long"
                                                     : "Content-Type header too long");
            }
        }
    }
    if (partial) {
        return 0;
    }
    if (f == F_CONTENT_LENGTH) {
        return content_length(s, p + v, end - v);
    }
    if (f == F_HOST) {
        for (size_t k = v; k < end; k++) {
            if (!host_char(p[k])) {
                return refuse(s, 400, "malformed Host");
            }
        }
    }
    if (dst != NULL) {
        copy(dst, p + v, end - v);
    }
    return 0;
}

/* A line of the head: the request line first, then header lines. */
static int line(struct scan *s, int first, const uint8_t *p, size_t n, int partial)
{
    return first ? request_line(s, p, n, partial) : header_line(s, p, n, partial);
}

_Static_assert(CLINK_HTTP_MAX_HEAD == 16384 && CLINK_HTTP_MAX_BODY == 65536, "the refusals name the limits");

int clink__http_parse(const uint8_t *b, size_t n, struct clink_http_request *out, int *status, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        return 0; /* b may be NULL */
    }
    struct scan s = {.out = out, .status = status, .why = why};
    /* The blank line is looked for only within the limit, so a larger n never changes the verdict on the head. */
    size_t lim = n < CLINK_HTTP_MAX_HEAD ? n : CLINK_HTTP_MAX_HEAD;
    size_t off = 0, head = 0;
    int ret;
    for (int first = 1; head == 0; first = 0) {
        const uint8_t *lf = off < lim ? memchr(b + off, '\n', lim - off) : NULL;
        if (lf == NULL) {
            size_t len = lim - off;
            if (len > 0 && b[lim - 1] == '\r') {
                len--; /* perhaps the CR of a CRLF cut in two */
            }
            if ((ret = line(&s, first, b + off, len, 1)) < 0) {
                return ret;
            }
            return n >= CLINK_HTTP_MAX_HEAD ? refuse(&s, 431, "request head larger than 16 KiB") : 0;
        }
        size_t end = (size_t)(lf - b);
        int crlf = end > off && b[end - 1] == '\r';
        size_t len = end - off - (size_t)crlf;
        /* The line's bytes are judged before its ending, as they were while the line was still arriving. */
        if (first || len > 0) {
            if ((ret = line(&s, first, b + off, len, 0)) < 0) {
                return ret;
            }
        }
        if (!crlf) {
            return refuse(&s, 400, "line not ended by CRLF");
        }
        if (!first && len == 0) {
            head = end + 1;
        }
        off = end + 1;
    }
    if (s.minor == 1 && !(s.seen & 1u << F_HOST)) {
        return refuse(&s, 400, "HTTP/1.1 request without Host");
    }
    if (s.seen & 1u << F_TRANSFER_ENCODING) {
        return refuse(&s, 501, "Transfer-Encoding not supported: send Content-Length");
    }
    if (!(s.seen & 1u << F_CONTENT_LENGTH) && strcmp(out->method, "POST") == 0) {
        return refuse(&s, 411, "POST without Content-Length");
    }
    if (n - head < s.body_len) {
        out->body_len = s.body_len; /* the head is whole: the caller need not parse again before the body is in */
        return 0;
    }
    out->body = s.body_len > 0 ? b + head : NULL;
    out->body_len = s.body_len;
    return (int)(head + s.body_len);
}

const char *clink__http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

const char *clink_http_reason(int status)
{
    return clink__http_reason(status);
}
