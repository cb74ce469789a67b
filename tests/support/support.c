#include "tests/support/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "transport/frame.h"
#include "transport/opening.h"

/* Criterion-like checks that work in plain drivers too (extra message arguments are printed if given). */
#define CHECK(cond, ...)           TS_REQUIRE((cond), "%s", #cond)
#define cr_assert_eq(a, b, ...)    CHECK((a) == (b))
#define cr_assert_neq(a, b, ...)   CHECK((a) != (b))
#define cr_assert_geq(a, b, ...)   CHECK((a) >= (b))
#define cr_assert_gt(a, b, ...)    CHECK((a) > (b))
#define cr_assert_not_null(a, ...) CHECK((a) != NULL)

void ts_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: test helper failed: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

unsigned ts_scale(void)
{
    const char *s = getenv("CLINK_TEST_TIMEOUT_SCALE");
    int v = s ? atoi(s) : 1;
    return v > 0 ? (unsigned)v : 1;
}

unsigned ts_ms(unsigned ms)
{
    return ms * ts_scale();
}

static void path(char *dst, size_t cap, const char *dir, const char *name)
{
    snprintf(dst, cap, "%s/%s", dir, name);
}

void ts_pki_make(struct ts_pki *p)
{
    const char *base = getenv("CLINK_TEST_TMP");
    char tmpl[256];
    if (base != NULL) {
        mkdir(base, 0700);
    }
    snprintf(tmpl, sizeof(tmpl), "%s/clink-pki-XXXXXX", base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
    snprintf(p->dir, sizeof(p->dir), "%s", tmpl);
    char ca_key[300], oca_key[300];
    path(p->ca, sizeof(p->ca), p->dir, "ca.pem");
    path(ca_key, sizeof(ca_key), p->dir, "ca-key.pem");
    path(p->node_cert, sizeof(p->node_cert), p->dir, "node.pem");
    path(p->node_key, sizeof(p->node_key), p->dir, "node-key.pem");
    path(p->other_ca, sizeof(p->other_ca), p->dir, "other-ca.pem");
    path(oca_key, sizeof(oca_key), p->dir, "other-ca-key.pem");
    path(p->other_cert, sizeof(p->other_cert), p->dir, "other.pem");
    path(p->other_key, sizeof(p->other_key), p->dir, "other-key.pem");

    static const char *dns[] = {"localhost", NULL};
    static const char *ips[] = {"127.0.0.1", "::1", NULL};
    char err[256];
    struct clink_cert_opts ca = {.common_name = "clink test CA"};
    struct clink_cert_opts node = {.common_name = "localhost", .dns_names = dns, .ip_addrs = ips};
    cr_assert_eq(clink_cert_make_ca(&ca, p->ca, ca_key, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_cert_make_node(&node, p->ca, ca_key, p->node_cert, p->node_key, 0, err, sizeof(err)), 0, "%s",
                 err);
    struct clink_cert_opts oca = {.common_name = "some other CA"};
    cr_assert_eq(clink_cert_make_ca(&oca, p->other_ca, oca_key, 0, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clink_cert_make_node(&node, p->other_ca, oca_key, p->other_cert, p->other_key, 0, err, sizeof(err)), 0,
                 "%s", err);
}

static int rm_entry(const char *fpath, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(fpath);
}

void ts_pki_remove(struct ts_pki *p)
{
    if (p->dir[0] != '\0') {
        nftw(p->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    }
}

void ts_pki_path(const struct ts_pki *p, const char *name, char *dst, size_t cap)
{
    int n = snprintf(dst, cap, "%s/%s", p->dir, name);
    TS_REQUIRE(n > 0 && (size_t)n < cap, "path too long: %s/%s", p->dir, name);
}

void ts_pem_first_block(const char *src, const char *dst)
{
    FILE *in = fopen(src, "r");
    TS_REQUIRE(in != NULL, "%s: %s", src, strerror(errno));
    X509 *x = PEM_read_X509(in, NULL, NULL, NULL);
    fclose(in);
    TS_REQUIRE(x != NULL, "%s: no PEM certificate", src);
    FILE *out = fopen(dst, "w");
    TS_REQUIRE(out != NULL, "%s: %s", dst, strerror(errno));
    TS_REQUIRE(PEM_write_X509(out, x) == 1, "%s: cannot write", dst);
    TS_REQUIRE(fclose(out) == 0, "%s: %s", dst, strerror(errno));
    X509_free(x);
}

void ts_self_signed_leaf(const char *cert, const char *key, const char *cert_out)
{
    FILE *f = fopen(cert, "r");
    TS_REQUIRE(f != NULL, "%s: %s", cert, strerror(errno));
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(key, "r");
    TS_REQUIRE(f != NULL, "%s: %s", key, strerror(errno));
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    TS_REQUIRE(x != NULL && k != NULL, "%s / %s: no certificate or key", cert, key);
    /* An authority key id naming the old CA would make OpenSSL look for that CA instead of calling it self-signed. */
    int i = X509_get_ext_by_NID(x, NID_authority_key_identifier, -1);
    if (i >= 0) {
        X509_EXTENSION_free(X509_delete_ext(x, i));
    }
    TS_REQUIRE(X509_set_issuer_name(x, X509_get_subject_name(x)) == 1, "set issuer");
    TS_REQUIRE(X509_sign(x, k, EVP_sha256()) > 0, "sign");
    f = fopen(cert_out, "w");
    TS_REQUIRE(f != NULL, "%s: %s", cert_out, strerror(errno));
    TS_REQUIRE(PEM_write_X509(f, x) == 1, "%s: cannot write", cert_out);
    TS_REQUIRE(fclose(f) == 0, "%s: %s", cert_out, strerror(errno));
    EVP_PKEY_free(k);
    X509_free(x);
}

void ts_tls_serve_cert(struct clink_tls_ctx *tls, const char *cert, const char *key)
{
    SSL_CTX *ctx = clink_tls_ctx_server(tls);
    /* use_certificate_chain_file replaces the extra chain certificates too. */
    TS_REQUIRE(SSL_CTX_use_certificate_chain_file(ctx, cert) == 1, "%s: cannot load", cert);
    TS_REQUIRE(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1, "%s: cannot load", key);
    TS_REQUIRE(SSL_CTX_check_private_key(ctx) == 1, "%s does not match %s", key, cert);
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    ERR_clear_error();
}

struct clink_tls_ctx *ts_tls(const char *cert, const char *key, const char *ca)
{
    struct clink_tls_opts o = {.cert_file = cert, .key_file = key, .ca_file = ca};
    struct clink_tls_ctx *t = NULL;
    char err[512];
    int ret = clink_tls_ctx_new(&o, &t, err, sizeof(err));
    TS_REQUIRE(ret == 0, "clink_tls_ctx_new: %s", err);
    return t;
}

static void echo(struct clink_req *req, void *user)
{
    (void)user;
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

static void fail(struct clink_req *req, void *user)
{
    (void)user;
    CLINK_IGNORE(clink_req_fail(req, "nope"));
}

void ts_register_echo(struct clink_node *n)
{
    cr_assert_eq(clink_node_register(n, TS_ECHO, echo, NULL), 0);
    cr_assert_eq(clink_node_register(n, TS_FAIL, fail, NULL), 0);
}

static struct clink_node *start_node(const struct clink_node_opts *o, int listen, void (*reg)(struct clink_node *))
{
    struct clink_node *n = NULL;
    cr_assert_eq(clink_node_new(o, &n), 0);
    if (reg) {
        reg(n);
    }
    if (listen) {
        cr_assert_eq(clink_node_listen(n, "127.0.0.1", 0), 0);
        cr_assert_neq(clink_node_port(n), 0);
    }
    int ret = clink_node_start(n);
    cr_assert_eq(ret, 0, "start: %s", clink_strerror(ret));
    return n;
}

static struct clink_node *mk(struct clink_tls_ctx *tls, unsigned workers, int allow_plain, int listen,
                             void (*reg)(struct clink_node *))
{
    struct clink_node_opts o = {
        .workers = workers,
        .tls = tls,
        .allow_plaintext = allow_plain,
        .handshake_timeout_ms = ts_ms(5000),
        .log = getenv("CLINK_TEST_LOG") ? clink_log_stderr : NULL,
        .log_level = CLINK_LOG_DEBUG,
    };
    return start_node(&o, listen, reg);
}

struct clink_node *ts_node_with(const struct clink_node_opts *o, void (*reg)(struct clink_node *))
{
    struct clink_node_opts copy = *o;
    if (copy.handshake_timeout_ms == 0) {
        copy.handshake_timeout_ms = ts_ms(5000);
    }
    return start_node(&copy, 1, reg);
}

struct clink_node *ts_node(struct clink_tls_ctx *tls, unsigned workers, int allow_plain,
                           void (*reg)(struct clink_node *))
{
    return mk(tls, workers, allow_plain, 1, reg);
}

struct clink_node *ts_client(struct clink_tls_ctx *tls, unsigned workers, int allow_plain)
{
    return mk(tls, workers, allow_plain, 0, NULL);
}

int ts_tcp_connect(uint16_t port)
{
    /* A raw client writes with plain write(): a peer that hung up must not kill the test with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {.tv_sec = ts_ms(5000) / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    return fd;
}

int ts_read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r <= 0) {
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

void ts_skip_greeting(int fd)
{
    uint8_t h[5];
    cr_assert_eq(ts_read_full(fd, h, 5), 0, "no greeting");
    int len = clink__opening_greeting_len(h);
    cr_assert_gt(len, 0, "bad greeting");
    uint8_t rest[CLINK_GREETING_MAX];
    cr_assert_eq(ts_read_full(fd, rest, (size_t)len - 1), 0);
}

int ts_raw_tls(struct tls_peer *r, uint16_t port, const struct ts_pki *p)
{
    return ts_raw_tls_as(r, port, p->node_cert, p->node_key, p->ca);
}

int ts_raw_tls_as(struct tls_peer *r, uint16_t port, const char *cert, const char *key, const char *ca)
{
    struct ts_raw_opts o = {.cert = cert, .key = key, .ca = ca};
    return ts_raw_tls_with(r, port, &o);
}

/* As long as SO_RCVTIMEO on a raw client's socket (ts_tcp_connect): each call waits up to that. */
static double raw_deadline(void)
{
    return tls_peer_now() + ts_ms(5000) / 1000.0;
}

int ts_raw_tls_with(struct tls_peer *r, uint16_t port, const struct ts_raw_opts *o)
{
    static const unsigned char alpn[] = "\x07" CLINK_ALPN;
    struct tls_peer_opts to = {
        .min_version = o->max_version ? TLS1_2_VERSION : TLS1_3_VERSION,
        .max_version = o->max_version ? o->max_version : TLS1_3_VERSION,
        .cert = o->cert,
        .key = o->key,
        .ca = o->ca,
        .host = "localhost",
        .alpn = o->no_alpn ? NULL : alpn,
        .alpn_len = sizeof(alpn) - 1,
    };
    int fd = ts_tcp_connect(port);
    ts_skip_greeting(fd);
    TS_REQUIRE(tls_peer_new(r, &to, fd) == 0, "%s", r->err);
    return tls_peer_handshake(r, raw_deadline());
}

int ts_raw_read(struct tls_peer *r, void *buf, size_t n)
{
    size_t got = 0;
    tls_peer_read(r, buf, n, &got, raw_deadline());
    return (int)got;
}

int ts_raw_frame(struct tls_peer *r, uint8_t type, uint16_t method, uint64_t id, const void *p, uint32_t len,
                 uint32_t claimed_len)
{
    uint8_t h[CLINK_FRAME_HDR];
    struct clink_frame_hdr fh = {.type = type, .method = method, .length = claimed_len, .id = id};
    clink__frame_encode(h, &fh);
    if (tls_peer_write(r, h, sizeof(h)) < 0) {
        return -1;
    }
    return len ? tls_peer_write(r, p, len) : 0;
}

uint8_t ts_pattern(uint64_t seed, uint64_t i)
{
    uint64_t x = (seed + i / 8) * 0x9e3779b97f4a7c15ull;
    return (uint8_t)(x >> (8 * (i % 8)));
}

void ts_fill(uint8_t *p, size_t n, uint64_t seed, uint64_t off)
{
    for (size_t k = 0; k < n; k++) {
        p[k] = ts_pattern(seed, off + k);
    }
}

int ts_check(const uint8_t *p, size_t n, uint64_t seed, uint64_t off)
{
    for (size_t k = 0; k < n; k++) {
        if (p[k] != ts_pattern(seed, off + k)) {
            return 0;
        }
    }
    return 1;
}
