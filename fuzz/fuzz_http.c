/*
 * The HTTPS port's request parser (transport/http.c), on bytes as they come
 * from the network: the whole input is what a connection has received.
 *
 * Properties: it never reads past the input (an exact-size copy) and never
 * claims more than it was given; an accepted request has NUL-terminated
 * fields that fit, a method of GET/HEAD/POST, a path starting with '/' that
 * is what the request line says, a head within CLINK_HTTP_MAX_HEAD ending in
 * its blank line with CRLF line ends, no NUL, bare CR or obs-fold, and its
 * body the bytes just after the head, of at most CLINK_HTTP_MAX_BODY; a
 * refusal has a documented status, a reason phrase and a why. And the
 * verdict is monotone in the bytes received, which is what lets https.c call
 * the parser again after every read: a prefix that is refused is refused
 * with the same status whatever follows, a prefix that parses parses the
 * same whatever follows (pipelined bytes are ignored), so every prefix of
 * an accepted request shorter than it is "need more", and the request alone
 * (b[0..L)) parses as it did with the bytes after it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "fuzz/fuzz.h"
#include "transport/http.h"

struct verdict {
    int ret;
    int status;
    const char *why;
    struct clink_http_request req;
};

static void parse(const uint8_t *p, size_t n, struct verdict *v)
{
    v->status = 0;
    v->why = NULL;
    v->ret = clink__http_parse(p, n, &v->req, &v->status, &v->why);
}

static int fits(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* The head's line ends as RFC 9112 wants them: every CR before an LF, every LF after a CR, no line folded. */
static int clean_head(const uint8_t *p, size_t head)
{
    for (size_t i = 0; i < head; i++) {
        if (p[i] == '\0' || (p[i] == '\r' && (i + 1 == head || p[i + 1] != '\n')) ||
            (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) ||
            (p[i] == '\n' && i + 1 < head && (p[i + 1] == ' ' || p[i + 1] == '\t'))) {
            return 0;
        }
    }
    return 1;
}

/*
 * The same verdict, fields and all, for inputs at a and b: the body compared as an offset into its input. out is
 * zeroed first, and struct clink_http_request has no padding, so memcmp compares the fields.
 */
static int same(const struct verdict *x, const uint8_t *a, const struct verdict *y, const uint8_t *b)
{
    if (x->ret != y->ret) {
        return 0;
    }
    if (x->ret < 0) {
        return x->status == y->status;
    }
    if (x->ret == 0) {
        return 1;
    }
    struct clink_http_request rx = x->req, ry = y->req;
    if ((rx.body == NULL) != (ry.body == NULL) || (rx.body != NULL && rx.body - a != ry.body - b)) {
        return 0;
    }
    rx.body = ry.body = NULL;
    return memcmp(&rx, &ry, sizeof(rx)) == 0;
}

static void check(const uint8_t *p, size_t size, const struct verdict *v)
{
    const struct clink_http_request *r = &v->req;
    FUZZ_CHECK(v->ret == 0 || v->ret == -CLINK_EPROTO || (v->ret > 0 && (size_t)v->ret <= size),
               "returned %d for %zu bytes", v->ret, size);
    if (v->ret < 0) {
        int s = v->status;
        FUZZ_CHECK(s == 400 || s == 405 || s == 411 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505,
                   "refused with status %d", s);
        FUZZ_CHECK(strcmp(clink__http_reason(s), "Unknown") != 0, "no reason phrase for %d", s);
        FUZZ_CHECK(v->why != NULL && v->why[0] != '\0', "refused with %d and no why", s);
        return;
    }
    FUZZ_CHECK(v->status == 0 && v->why == NULL, "status or why set without a refusal");
    if (v->ret == 0) {
        /* Waiting for more only below the limits: the head unfinished under its limit, or the body under its. */
        FUZZ_CHECK(size < CLINK_HTTP_MAX_HEAD + 4 + CLINK_HTTP_MAX_BODY, "need more at %zu bytes", size);
        if (size >= CLINK_HTTP_MAX_HEAD) {
            int done = 0;
            for (size_t i = 3; i < CLINK_HTTP_MAX_HEAD && !done; i++) {
                done = memcmp(p + i - 3, "\r\n\r\n", 4) == 0;
            }
            FUZZ_CHECK(done, "need more at %zu bytes with no blank line in the first 16 KiB", size);
        }
        return;
    }
    size_t len = (size_t)v->ret, head = len - r->body_len;
    FUZZ_CHECK(fits(r->method, sizeof(r->method)) && fits(r->path, sizeof(r->path)) &&
                   fits(r->query, sizeof(r->query)) && fits(r->host, sizeof(r->host)) &&
                   fits(r->authorization, sizeof(r->authorization)) && fits(r->content_type, sizeof(r->content_type)),
               "a field not NUL-terminated");
    FUZZ_CHECK(strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0 || strcmp(r->method, "POST") == 0,
               "accepted method \"%s\"", r->method);
    FUZZ_CHECK(r->path[0] == '/', "path \"%s\"", r->path);
    size_t ml = strlen(r->method), pl = strlen(r->path), ql = strlen(r->query);
    FUZZ_CHECK(ml + 1 + pl + (ql > 0 ? 1 + ql : 0) < head && memcmp(p, r->method, ml) == 0 && p[ml] == ' ' &&
                   memcmp(p + ml + 1, r->path, pl) == 0 &&
                   (ql == 0 || (p[ml + 1 + pl] == '?' && memcmp(p + ml + 2 + pl, r->query, ql) == 0)),
               "method, path or query not as in the request line");
    FUZZ_CHECK(r->body_len <= CLINK_HTTP_MAX_BODY, "body of %zu bytes", r->body_len);
    FUZZ_CHECK((r->body_len == 0) == (r->body == NULL), "body %p with body_len %zu", (const void *)r->body,
               r->body_len);
    FUZZ_CHECK(r->body_len == 0 || (r->body == p + head && r->body + r->body_len == p + len),
               "body not the bytes after the head (return %d)", v->ret);
    FUZZ_CHECK(head >= 4 && head <= CLINK_HTTP_MAX_HEAD && memcmp(p + head - 4, "\r\n\r\n", 4) == 0,
               "a head of %zu bytes not ended by its blank line", head);
    FUZZ_CHECK(clean_head(p, head), "accepted a NUL, a bare CR or LF, or obs-fold in the head");
}

/* Whether the prefix p[0..k) ends at, or one byte before or after, a byte the parser decides on. */
static int turning_point(const uint8_t *p, size_t size, size_t k)
{
    for (size_t i = k > 0 ? k - 1 : 0; i <= k + 1 && i < size; i++) {
        uint8_t c = p[i];
        if (c == '\r' || c == '\n' || c == ' ' || c == ':' || c == '?' || c == '\t' || c == '\0') {
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = fuzz_dup(data, size);
    struct verdict all, v;
    parse(p, size, &all);
    check(p, size, &all);
    if (all.ret > 0) {
        uint8_t *alone = fuzz_dup(p, (size_t)all.ret);
        parse(alone, (size_t)all.ret, &v);
        FUZZ_CHECK(same(&v, alone, &all, p), "the request alone (%d bytes) parses as %d, or differently", all.ret,
                   v.ret);
        free(alone);
    }
    /*
     * The prefixes where the verdict can change: every one of a short input; of a longer one, 32 at an even
     * stride and the first 64 that end at or next to a byte the grammar turns on (line ends, the separators of
     * the request line and of a header); over 2 KiB, 8 and 16 (each parse of such an input scans kilobytes). Parsing
     * every prefix was quadratic: 2,048 parses of up to 2 KiB for a short input, thousands of up to 16 KiB for a long
     * one, milliseconds an input where the other targets run 20,000-30,000 inputs a second. A prefix parses in place:
     * reading past it would stay inside p, but the fuzzer also tries that prefix on its own.
     */
    size_t stride = size <= 256 ? 1 : size <= 2048 ? size / 32 : size / 8;
    unsigned turns = 0, max_turns = size <= 2048 ? 64 : 16;
    for (size_t k = 0; k < size; k++) {
        int pick = k % stride == 0;
        if (!pick && turns < max_turns && turning_point(p, size, k)) {
            pick = 1;
            turns++;
        }
        if (!pick) {
            continue;
        }
        parse(p, k, &v);
        check(p, k, &v);
        if (v.ret < 0) {
            FUZZ_CHECK(all.ret < 0 && all.status == v.status,
                       "refused %d at %zu bytes, but %d (status %d) at all %zu: a later byte changed the verdict",
                       v.status, k, all.ret, all.status, size);
        } else if (v.ret > 0) {
            FUZZ_CHECK(same(&v, p, &all, p), "parsed as %d at %zu bytes, differently at all %zu", v.ret, k, size);
        } else {
            FUZZ_CHECK(all.ret <= 0 || k < (size_t)all.ret, "need more at %zu bytes, a request of %d", k, all.ret);
        }
        if (all.ret > 0 && k < (size_t)all.ret) {
            FUZZ_CHECK(v.ret == 0, "a prefix of %zu bytes of a %d-byte request gave %d (status %d)", k, all.ret, v.ret,
                       v.status);
        }
    }
    free(p);
    return 0;
}
