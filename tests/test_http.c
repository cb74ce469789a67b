/*
 * The HTTPS port's request parser (transport/http.c): what it accepts and
 * the fields it fills, the status of each refusal, and "need more" (0) at
 * every cut of a valid request. Each input is parsed from an exact-size heap
 * copy, so ASan sees a read one byte past it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "transport/http.h"

static uint8_t *copy_;

static void release(void)
{
    free(copy_);
    copy_ = NULL;
}

TestSuite(http, .fini = release, .timeout = 30);

struct parsed {
    int ret;
    int status;
    const char *why;
    struct clink_http_request req;
    const uint8_t *b; /* the exact-size copy parsed, valid until the next parse */
};

/* status and why start as values the parser never writes, so a test sees whether it wrote them. */
static struct parsed parse_n(const void *s, size_t n)
{
    release();
    copy_ = malloc(n ? n : 1);
    cr_assert_not_null(copy_);
    memcpy(copy_, s, n);
    struct parsed p = {.status = -1, .why = NULL, .b = copy_};
    p.ret = clink__http_parse(copy_, n, &p.req, &p.status, &p.why);
    return p;
}

static struct parsed parse(const char *s)
{
    return parse_n(s, strlen(s));
}

static void assert_refused(const char *s, int status)
{
    struct parsed p = parse(s);

    cr_assert_eq(p.ret, -CLINK_EPROTO, "%s: returned %d, not a refusal", s, p.ret);
    cr_assert_eq(p.status, status, "%s: status %d, expected %d (%s)", s, p.status, status, p.why);
    cr_assert(p.why != NULL && p.why[0] != '\0', "%s: no why", s);
}

static void assert_need_more(const char *s)
{
    struct parsed p = parse(s);

    cr_assert_eq(p.ret, 0, "%s: returned %d (status %d, %s), not need more", s, p.ret, p.status, p.why ? p.why : "");
    cr_assert_eq(p.status, -1);
    cr_assert_null(p.why);
}

/* A request with a header line of its own, for the header rules. */
static void assert_header_refused(const char *line, int status)
{
    char b[1024];
    snprintf(b, sizeof(b), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n", line);
    assert_refused(b, status);
}

static struct parsed parse_header(const char *line)
{
    char b[2048];
    snprintf(b, sizeof(b), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n", line);
    return parse(b);
}

static const char curl_get[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9443\r\nUser-Agent: curl/7.88.1\r\n"
                               "Accept: */*\r\n\r\n";
static const char post_reload[] = "POST /reload?dry=1 HTTP/1.1\r\nHost: localhost:9443\r\n"
                                  "Authorization: Basic b3BzOnMzY3JldA==\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 15\r\n\r\n{\"what\":\"all\"}\n";

Test(http, curl_get_metrics)
{
    struct parsed p = parse(curl_get);

    cr_assert_eq(p.ret, (int)strlen(curl_get));
    cr_assert_str_eq(p.req.method, "GET");
    cr_assert_str_eq(p.req.path, "/metrics");
    cr_assert_str_eq(p.req.query, "");
    cr_assert_str_eq(p.req.host, "127.0.0.1:9443");
    cr_assert_str_eq(p.req.authorization, "");
    cr_assert_str_eq(p.req.content_type, "");
    cr_assert_null(p.req.body);
    cr_assert_eq(p.req.body_len, 0);
    cr_assert_eq(p.status, -1, "status written on success");
    cr_assert_null(p.why, "why written on success");
}

Test(http, post_with_basic_auth_and_body)
{
    struct parsed p = parse(post_reload);

    cr_assert_eq(p.ret, (int)strlen(post_reload));
    cr_assert_str_eq(p.req.method, "POST");
    cr_assert_str_eq(p.req.path, "/reload");
    cr_assert_str_eq(p.req.query, "dry=1");
    cr_assert_str_eq(p.req.host, "localhost:9443");
    cr_assert_str_eq(p.req.authorization, "Basic b3BzOnMzY3JldA==");
    cr_assert_str_eq(p.req.content_type, "application/json");
    cr_assert_eq(p.req.body_len, 15);
    cr_assert_eq(p.req.body, p.b + strlen(post_reload) - 15, "body not inside the input");
    cr_assert_eq(memcmp(p.req.body, "{\"what\":\"all\"}\n", 15), 0);
}

Test(http, chromium_get_root)
{
    const char *s = "GET / HTTP/1.1\r\nHost: ops.example.com:9443\r\nConnection: keep-alive\r\n"
                    "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
                    "sec-ch-ua-mobile: ?0\r\nsec-ch-ua-platform: \"Linux\"\r\nUpgrade-Insecure-Requests: 1\r\n"
                    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                    "Chrome/124.0.0.0 Safari/537.36\r\n"
                    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
                    "Sec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-User: ?1\r\n"
                    "Sec-Fetch-Dest: document\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
                    "Accept-Language: en-US,en;q=0.9\r\nCookie: a=b; c=\xc3\xa9\r\n\r\n";

    struct parsed p = parse(s);

    cr_assert_eq(p.ret, (int)strlen(s));
    cr_assert_str_eq(p.req.path, "/");
    cr_assert_str_eq(p.req.host, "ops.example.com:9443");
}

Test(http, head_and_http10_without_host)
{
    const char *s = "HEAD /status?format=json HTTP/1.0\r\nUser-Agent: x\r\n\r\n";

    struct parsed p = parse(s);

    cr_assert_eq(p.ret, (int)strlen(s));
    cr_assert_str_eq(p.req.method, "HEAD");
    cr_assert_str_eq(p.req.path, "/status");
    cr_assert_str_eq(p.req.query, "format=json");
    cr_assert_str_eq(p.req.host, "");
}

Test(http, http11_needs_host)
{
    assert_refused("GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\n\r\n", 400);
}

Test(http, empty_host_is_allowed)
{
    struct parsed p = parse("GET / HTTP/1.1\r\nHost:\r\n\r\n");

    cr_assert_eq(p.ret, 25);
    cr_assert_str_eq(p.req.host, "");
}

Test(http, query_split_at_the_first_question_mark)
{
    struct parsed p = parse("GET /a/b?x=1?y&z HTTP/1.1\r\nHost: a\r\n\r\n");

    cr_assert_gt(p.ret, 0);
    cr_assert_str_eq(p.req.path, "/a/b");
    cr_assert_str_eq(p.req.query, "x=1?y&z");

    p = parse("GET /? HTTP/1.1\r\nHost: a\r\n\r\n");

    cr_assert_gt(p.ret, 0);
    cr_assert_str_eq(p.req.path, "/");
    cr_assert_str_eq(p.req.query, "");

    p = parse("GET /%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n");

    cr_assert_gt(p.ret, 0);
    cr_assert_str_eq(p.req.path, "/%2e%2e/x", "the path is as sent, not percent-decoded");
}

Test(http, header_names_without_case_and_values_trimmed)
{
    const char *s = "POST / HTTP/1.1\r\nhOsT: \t example.org \t\r\nAUTHORIZATION:Bearer  t\r\n"
                    "content-TYPE:   text/plain; charset=utf-8\r\ncontent-length: 3 \r\nX-Empty:\r\n\r\nabcdef";

    struct parsed p = parse(s);

    cr_assert_eq(p.ret, (int)strlen(s) - 3, "the bytes after the body are not the request's");
    cr_assert_str_eq(p.req.host, "example.org");
    cr_assert_str_eq(p.req.authorization, "Bearer  t", "inner spaces are the value's");
    cr_assert_str_eq(p.req.content_type, "text/plain; charset=utf-8");
    cr_assert_eq(p.req.body_len, 3);
    cr_assert_eq(memcmp(p.req.body, "abc", 3), 0);
}

Test(http, pipelined_bytes_are_ignored)
{
    char b[512];
    snprintf(b, sizeof(b), "%s%s", curl_get, "GET /second HTTP/1.1\r\nHost: a\r\n\r\n");

    struct parsed p = parse(b);

    cr_assert_eq(p.ret, (int)strlen(curl_get));
    cr_assert_str_eq(p.req.path, "/metrics");

    snprintf(b, sizeof(b), "%s%s", post_reload, "\x01garbage");

    p = parse(b);

    cr_assert_eq(p.ret, (int)strlen(post_reload));
    cr_assert_eq(p.req.body_len, 15);
}

Test(http, every_cut_of_a_valid_request_needs_more)
{
    const char *valid[] = {curl_get, post_reload, "HEAD / HTTP/1.0\r\n\r\n",
                           "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"};
    for (size_t v = 0; v < sizeof(valid) / sizeof(valid[0]); v++) {
        size_t n = strlen(valid[v]);
        for (size_t k = 0; k < n; k++) {
            struct parsed p = parse_n(valid[v], k);

            cr_assert_eq(p.ret, 0, "request %zu cut at %zu of %zu: %d (status %d, %s)", v, k, n, p.ret, p.status,
                         p.why ? p.why : "");
            cr_assert_eq(p.status, -1);
        }
        struct parsed p = parse_n(valid[v], n);

        cr_assert_eq(p.ret, (int)n, "request %zu whole", v);
    }
}

Test(http, empty_input_needs_more)
{
    int status = -1;
    const char *why = NULL;
    struct clink_http_request r;

    cr_assert_eq(clink__http_parse(NULL, 0, &r, &status, &why), 0);
    cr_assert_eq(status, -1);
    assert_need_more("");
}

Test(http, methods)
{
    assert_refused("PUT / HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    assert_refused("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    assert_refused("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    assert_refused("PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    assert_refused("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    assert_refused("TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    assert_refused("FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    assert_refused("get / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    assert_refused("PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
    assert_refused("G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

Test(http, methods_are_judged_at_their_space)
{
    assert_refused("PUT ", 405);
    assert_refused("FOO ", 501);
    assert_refused("GETTING_", 501); /* 8 bytes of token: longer than any method we know */
    assert_need_more("GET");
    assert_need_more("POST");
}

Test(http, versions)
{
    assert_refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    assert_refused("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    assert_refused("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    assert_refused("GET / HTTP/3", 505);
    assert_refused("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    assert_refused("GET / HTTP/11\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET / HTTQ", 400);
    assert_refused("GET /\r\n\r\n", 400);
    assert_refused("GET / \r\n\r\n", 400);
    assert_need_more("GET / HTTP/1.");
}

Test(http, targets)
{
    assert_refused("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET / a HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET /?a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET h", 400); /* known at its first byte */
}

Test(http, path_and_query_lengths)
{
    char b[2048], path[400], query[700];
    memset(path, 'p', sizeof(path));
    memset(query, 'q', sizeof(query));

    snprintf(b, sizeof(b), "GET /%.*s HTTP/1.1\r\nHost: a\r\n\r\n", 254, path);
    struct parsed p = parse(b);
    cr_assert_gt(p.ret, 0, "a path of 255 bytes fits");
    cr_assert_eq(strlen(p.req.path), 255);

    snprintf(b, sizeof(b), "GET /%.*s HTTP/1.1\r\nHost: a\r\n\r\n", 255, path);
    assert_refused(b, 414);
    snprintf(b, sizeof(b), "GET /%.*s", 255, path);
    assert_refused(b, 414); /* refused before the line ends */
    snprintf(b, sizeof(b), "GET /%.*s", 254, path);
    assert_need_more(b);

    snprintf(b, sizeof(b), "GET /?%.*s HTTP/1.1\r\nHost: a\r\n\r\n", 511, query);
    p = parse(b);
    cr_assert_gt(p.ret, 0, "a query of 511 bytes fits");
    cr_assert_eq(strlen(p.req.query), 511);

    snprintf(b, sizeof(b), "GET /?%.*s HTTP/1.1\r\nHost: a\r\n\r\n", 512, query);
    assert_refused(b, 414);
}

Test(http, header_syntax)
{
    assert_header_refused(" X-Folded: b", 400);
    assert_header_refused("\tX-Folded: b", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  c\r\n\r\n", 400);
    assert_header_refused("X-Bad Name: b", 400);
    assert_header_refused("Host : b", 400);
    assert_header_refused("X\x01Y: b", 400);
    assert_header_refused(": b", 400);
    assert_header_refused("No colon here", 400);
    assert_header_refused("NoColon", 400);
    assert_header_refused("X-\xc3\xa9: b", 400);

    struct parsed p = parse("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n");

    cr_assert_str_eq(p.why, "obsolete line folding", "folding is named as such, not as a bad name");
}

Test(http, header_value_bytes)
{
    assert_header_refused("X: a\x01z", 400);
    assert_header_refused("X: a\x1bz", 400);
    assert_header_refused("X: a\x7fz", 400);
    assert_header_refused("X: a\rz", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n", 400);

    struct parsed p = parse_header("X: a\tb \xff\xfe");

    cr_assert_gt(p.ret, 0, "HTAB and obs-text are a value's bytes");
}

Test(http, nul_anywhere_in_the_head)
{
    const char *heads[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n",
        "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n",          "GET\0/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\0\r\nHost: a\r\n\r\n",          "GET / HTTP/1.1\r\nHost: a\0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\0\r\n\r\n"};
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        size_t n = strlen(heads[i]);
        n += 1 + strlen(heads[i] + n + 1);

        struct parsed p = parse_n(heads[i], n);

        cr_assert_eq(p.ret, -CLINK_EPROTO, "head %zu", i);
        cr_assert_eq(p.status, 400, "head %zu", i);
    }
}

Test(http, a_nul_in_the_body_is_the_body)
{
    const char s[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\0b";

    struct parsed p = parse_n(s, sizeof(s) - 1);

    cr_assert_eq(p.ret, (int)sizeof(s) - 1);
    cr_assert_eq(p.req.body_len, 3);
    cr_assert_eq(p.req.body[1], 0);
}

Test(http, line_ends)
{
    assert_refused("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400);
    assert_refused("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_refused("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_need_more("GET / HTTP/1.1\r");
    assert_need_more("GET / HTTP/1.1\r\nHost: a\r\n\r");
}

Test(http, captured_values_that_do_not_fit)
{
    char v[600], line[700];
    memset(v, 'h', sizeof(v));
    struct {
        const char *name;
        size_t cap;
    } f[] = {{"Host", 256}, {"Authorization", 512}, {"Content-Type", 128}};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        snprintf(line, sizeof(line), "GET / HTTP/1.0\r\n%s: %.*s  \r\n\r\n", f[i].name, (int)f[i].cap - 1, v);
        struct parsed p = parse(line);
        cr_assert_gt(p.ret, 0, "%s of %zu bytes fits", f[i].name, f[i].cap - 1);
        const char *got = i == 0 ? p.req.host : i == 1 ? p.req.authorization : p.req.content_type;
        cr_assert_eq(strlen(got), f[i].cap - 1);

        snprintf(line, sizeof(line), "GET / HTTP/1.0\r\n%s: %.*s\r\n\r\n", f[i].name, (int)f[i].cap, v);
        assert_refused(line, 431);

        /* Known before the line ends. */
        snprintf(line, sizeof(line), "GET / HTTP/1.1\r\nX: y\r\n%s: %.*s", f[i].name, (int)f[i].cap, v);
        assert_refused(line, 431);
    }
}

Test(http, duplicates)
{
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n", 400);

    struct parsed p = parse("GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\n\r\n");

    cr_assert_gt(p.ret, 0, "other headers may repeat");
}

Test(http, host_syntax)
{
    assert_refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400);

    struct parsed p = parse("GET / HTTP/1.1\r\nHost: [::1]:9443\r\n\r\n");

    cr_assert_gt(p.ret, 0);
    cr_assert_str_eq(p.req.host, "[::1]:9443");
}

Test(http, content_length_values)
{
    const char *bad[] = {"", "12a", "-1", "+5", "1 2", "0x10", "5, 5", "1.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char b[256];
        snprintf(b, sizeof(b), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", bad[i]);
        assert_refused(b, 400);
    }
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n", 413);
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551617\r\n\r\n", 413);
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999999999\r\n\r\n", 413);

    struct parsed p = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0007\r\n\r\n1234567");

    cr_assert_eq(p.req.body_len, 7);
}

Test(http, the_largest_body)
{
    const char *head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n";
    size_t hl = strlen(head), n = hl + CLINK_HTTP_MAX_BODY;
    char *b = malloc(n);
    cr_assert_not_null(b);
    memcpy(b, head, hl);
    memset(b + hl, 'x', CLINK_HTTP_MAX_BODY);

    struct parsed whole = parse_n(b, n);
    int whole_ret = whole.ret;
    size_t body_len = whole.req.body_len;
    struct parsed cut = parse_n(b, n - 1);
    free(b);

    cr_assert_eq(whole_ret, (int)n);
    cr_assert_eq(body_len, CLINK_HTTP_MAX_BODY);
    cr_assert_eq(cut.ret, 0);
}

Test(http, transfer_encoding)
{
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: gzip\r\n\r\n", 501);
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", 400);
    assert_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 400);
}

Test(http, post_needs_content_length)
{
    assert_refused("POST /reload HTTP/1.1\r\nHost: a\r\n\r\n", 411);
    assert_refused("POST /reload HTTP/1.0\r\n\r\nbody", 411);

    struct parsed p = parse("POST /reload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");

    cr_assert_gt(p.ret, 0);
    cr_assert_null(p.req.body);
    cr_assert_eq(p.req.body_len, 0);
}

Test(http, a_body_arrives_after_its_head)
{
    assert_need_more("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n");
    assert_need_more("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabc");

    struct parsed p = parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab");

    cr_assert_eq(p.req.body_len, 2, "a GET's body is read, so the framing holds");
}

/* A request whose head is exactly `size` bytes (a padding header makes up the size). */
static char *head_of(size_t size, size_t *n)
{
    const char *start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
    char *b = malloc(size);
    cr_assert_not_null(b);
    size_t sl = strlen(start);
    memcpy(b, start, sl);
    memset(b + sl, 'p', size - sl - 4);
    memcpy(b + size - 4, "\r\n\r\n", 4);
    *n = size;
    return b;
}

Test(http, head_size_limit)
{
    size_t n;
    char *b = head_of(CLINK_HTTP_MAX_HEAD, &n);
    struct parsed p = parse_n(b, n);
    free(b);
    cr_assert_eq(p.ret, (int)CLINK_HTTP_MAX_HEAD, "a head of exactly the limit");

    b = head_of(CLINK_HTTP_MAX_HEAD + 1, &n);
    p = parse_n(b, n);
    cr_assert_eq(p.ret, -CLINK_EPROTO);
    cr_assert_eq(p.status, 431);
    p = parse_n(b, CLINK_HTTP_MAX_HEAD);
    cr_assert_eq(p.status, 431, "refused as soon as the head cannot fit");
    p = parse_n(b, CLINK_HTTP_MAX_HEAD - 1);
    cr_assert_eq(p.ret, 0);
    free(b);
}

Test(http, endless_head)
{
    /* Valid header lines "X:aaa" one after another, never the blank line: refused by size alone. */
    size_t n = CLINK_HTTP_MAX_HEAD + 100;
    char *b = malloc(n);
    cr_assert_not_null(b);
    const char *start = "GET / HTTP/1.1\r\nHost: a\r\n";
    size_t sl = strlen(start);
    memcpy(b, start, sl);
    for (size_t i = sl; i < n; i++) {
        b[i] = "X:aaa\r\n"[(i - sl) % 7];
    }

    struct parsed p = parse_n(b, CLINK_HTTP_MAX_HEAD);
    int at_limit = p.status;
    p = parse_n(b, n);
    int beyond = p.status;
    p = parse_n(b, CLINK_HTTP_MAX_HEAD - 1);
    int below = p.ret;
    free(b);

    cr_assert_eq(at_limit, 431);
    cr_assert_eq(beyond, 431);
    cr_assert_eq(below, 0);
}

Test(http, refusals_do_not_wait_for_the_line_end)
{
    assert_refused("GET * ", 400);
    assert_refused("GET /\x01", 400);
    assert_refused("GET / HTTP/1.1\r\n ", 400);
    assert_refused("GET / HTTP/1.1\r\nX Y", 400);
    assert_refused("GET / HTTP/1.1\r\nX: \x02", 400);
    assert_refused("GET / HTTP/1.1\r\nHost: a\r\nHost:", 400);
    assert_refused("GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding:", 400);
    assert_need_more("GET / HTTP/1.1\r\nHost: a\r\nX: y");
}

Test(http, reason_phrases)
{
    struct {
        int status;
        const char *reason;
    } r[] = {{200, "OK"},
             {204, "No Content"},
             {301, "Moved Permanently"},
             {302, "Found"},
             {303, "See Other"},
             {400, "Bad Request"},
             {401, "Unauthorized"},
             {403, "Forbidden"},
             {404, "Not Found"},
             {405, "Method Not Allowed"},
             {411, "Length Required"},
             {413, "Content Too Large"},
             {414, "URI Too Long"},
             {429, "Too Many Requests"},
             {431, "Request Header Fields Too Large"},
             {500, "Internal Server Error"},
             {501, "Not Implemented"},
             {503, "Service Unavailable"},
             {505, "HTTP Version Not Supported"}};
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        cr_assert_str_eq(clink__http_reason(r[i].status), r[i].reason);
    }
    cr_assert_str_eq(clink__http_reason(418), "Unknown");
    cr_assert_str_eq(clink__http_reason(0), "Unknown");
    cr_assert_str_eq(clink__http_reason(-1), "Unknown");
}
