/*
 * kTLS key material, without a kernel: RFC 8448 vectors, the packing of the
 * kernel's crypto-info structs, OpenSSL 3.0's own TLS 1.3 transmit
 * crypto-info as an oracle, and a record sealed with our key and sequence
 * number that a real OpenSSL peer must accept after the tickets went by.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/support.h"
#include "transport/conn_int.h"
#include "transport/ktls.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*s && n < cap) {
        if (*s == ' ') {
            s++;
            continue;
        }
        unsigned v;
        cr_assert_eq(sscanf(s, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

/* ---- RFC 8448 section 3 (simple 1-RTT handshake, TLS_AES_128_GCM_SHA256) ---- */

Test(ktls, rfc8448_application_traffic_keys)
{
    const struct {
        const char *secret, *key, *iv;
    } v[] = {
        {"a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43",
         "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56", "cf 78 2b 88 dd 83 54 9a ad f1 e9 84"},
        {"9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5",
         "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51", "5b 78 92 3d ee 08 57 90 33 e5 23 d9"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t secret[32], key[16], iv[12], got_key[16], got_iv[12];
        cr_assert_eq(unhex(v[i].secret, secret, sizeof(secret)), 32);
        unhex(v[i].key, key, sizeof(key));
        unhex(v[i].iv, iv, sizeof(iv));
        cr_assert_eq(clink__tls13_expand_label(CLINK_TLS_AES_128_GCM_SHA256, secret, 32, "key", got_key, 16), 0);
        cr_assert_eq(clink__tls13_expand_label(CLINK_TLS_AES_128_GCM_SHA256, secret, 32, "iv", got_iv, 12), 0);
        cr_assert_arr_eq(got_key, key, 16, "vector %zu key", i);
        cr_assert_arr_eq(got_iv, iv, 12, "vector %zu iv", i);

        /* The same, packed for the kernel: salt = iv[0..4], iv = iv[4..12], rec_seq big-endian. */
        struct clink__ktls_info info;
        cr_assert_eq(clink__ktls_info(CLINK_TLS_AES_128_GCM_SHA256, secret, 32, 0x0102030405060708ull, &info), 0);
        cr_assert_eq(info.len, sizeof(struct tls12_crypto_info_aes_gcm_128));
        cr_assert_eq(info.u.base.version, TLS_1_3_VERSION);
        cr_assert_eq(info.u.base.cipher_type, TLS_CIPHER_AES_GCM_128);
        cr_assert_arr_eq(info.u.gcm128.key, key, 16);
        cr_assert_arr_eq(info.u.gcm128.salt, iv, 4);
        cr_assert_arr_eq(info.u.gcm128.iv, iv + 4, 8);
        cr_assert_arr_eq(info.u.gcm128.rec_seq, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
        clink__ktls_info_wipe(&info);
        cr_assert_eq(info.len, 0);
    }
}

Test(ktls, packing_of_the_other_two_suites)
{
    uint8_t s48[48], s32[32], key[32], iv[12];
    memset(s48, 0x5a, sizeof(s48));
    memset(s32, 0xa5, sizeof(s32));
    struct clink__ktls_info info;

    /* AES-256-GCM: SHA-384 secret, 32-byte key, same salt/iv split. */
    cr_assert_eq(clink__ktls_info(CLINK_TLS_AES_256_GCM_SHA384, s48, 48, 2, &info), 0);
    cr_assert_eq(clink__tls13_expand_label(CLINK_TLS_AES_256_GCM_SHA384, s48, 48, "key", key, 32), 0);
    cr_assert_eq(clink__tls13_expand_label(CLINK_TLS_AES_256_GCM_SHA384, s48, 48, "iv", iv, 12), 0);
    cr_assert_eq(info.len, sizeof(struct tls12_crypto_info_aes_gcm_256));
    cr_assert_eq(info.u.base.cipher_type, TLS_CIPHER_AES_GCM_256);
    cr_assert_arr_eq(info.u.gcm256.key, key, 32);
    cr_assert_arr_eq(info.u.gcm256.salt, iv, 4);
    cr_assert_arr_eq(info.u.gcm256.iv, iv + 4, 8);
    cr_assert_arr_eq(info.u.gcm256.rec_seq, "\0\0\0\0\0\0\0\x02", 8);

    /* ChaCha20-Poly1305: SHA-256, 32-byte key, the whole 12-byte IV, no salt. */
    cr_assert_eq(clink__ktls_info(CLINK_TLS_CHACHA20_POLY1305_SHA256, s32, 32, 1, &info), 0);
    cr_assert_eq(clink__tls13_expand_label(CLINK_TLS_CHACHA20_POLY1305_SHA256, s32, 32, "key", key, 32), 0);
    cr_assert_eq(clink__tls13_expand_label(CLINK_TLS_CHACHA20_POLY1305_SHA256, s32, 32, "iv", iv, 12), 0);
    cr_assert_eq(info.len, sizeof(struct tls12_crypto_info_chacha20_poly1305));
    cr_assert_eq(info.u.base.cipher_type, TLS_CIPHER_CHACHA20_POLY1305);
    cr_assert_arr_eq(info.u.chacha.key, key, 32);
    cr_assert_arr_eq(info.u.chacha.iv, iv, 12);
    cr_assert_arr_eq(info.u.chacha.rec_seq, "\0\0\0\0\0\0\0\x01", 8);

    /* What is not a TLS 1.3 suite clink offers, or not a label, is refused. */
    cr_assert_eq(clink__ktls_info(0x1304, s32, 32, 0, &info), -CLINK_EINVAL);
    cr_assert_eq(clink__ktls_info(0xc02f, s32, 32, 0, &info), -CLINK_EINVAL);
    char long_label[260];
    memset(long_label, 'x', sizeof(long_label) - 1);
    long_label[sizeof(long_label) - 1] = '\0';
    cr_assert_eq(clink__tls13_expand_label(CLINK_TLS_AES_128_GCM_SHA256, s32, 32, long_label, key, 16), -CLINK_EINVAL);
    cr_assert_eq(clink__tls13_expand_label(CLINK_TLS_AES_128_GCM_SHA256, s32, 0, "key", key, 16), -CLINK_EINVAL);
}

/* ---- a client and a server SSL in this process, over memory BIOs ---- */

static struct ts_pki pki;

static void setup(void)
{
    ts_pki_make(&pki);
}

static void teardown(void)
{
    ts_pki_remove(&pki);
}

struct side {
    uint8_t secret[48]; /* this side's application traffic secret (write direction) */
    size_t secret_len;
    int app_out;      /* the write direction runs under application keys */
    uint64_t rec_out; /* records written under them */
    /* oracle: what OpenSSL handed to BIO_CTRL_SET_KTLS (TX), if it did */
    uint8_t offered[sizeof(((struct clink__ktls_info *)0)->u)];
    size_t offered_len;
};
static struct side server_side, client_side;

static int hex_nibble(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* The key log hands us each secret as hex, as clink's will (transport/tls.c). */
static void keylog(const SSL *ssl, const char *line)
{
    struct side *s = SSL_is_server(ssl) ? &server_side : &client_side;
    const char *want = SSL_is_server(ssl) ? "SERVER_TRAFFIC_SECRET_0 " : "CLIENT_TRAFFIC_SECRET_0 ";
    if (strncmp(line, want, strlen(want)) != 0) {
        return;
    }
    const char *hex = strrchr(line, ' ') + 1;
    s->secret_len = strlen(hex) / 2;
    for (size_t i = 0; i < s->secret_len; i++) {
        s->secret[i] = (uint8_t)(hex_nibble(hex[2 * i]) << 4 | hex_nibble(hex[2 * i + 1]));
    }
    s->app_out = 1;
    s->rec_out = 0;
}

/* Records are counted the way clink counts them: every header written once the direction is on application keys. */
static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)buf;
    (void)len;
    (void)arg;
    struct side *s = SSL_is_server(ssl) ? &server_side : &client_side;
    if (write_p && content_type == SSL3_RT_HEADER && s->app_out) {
        s->rec_out++;
    }
}

/*
 * A filter BIO in front of the server's write side that answers the kTLS
 * control call: the oracle. OpenSSL 3.0 keeps its number private (bio.h
 * lists it in a comment); HAProxy defines it the same way.
 */
#define OSSL_BIO_CTRL_SET_KTLS 72
static int oracle_write(BIO *b, const char *data, int len)
{
    return BIO_write(BIO_next(b), data, len);
}

static long oracle_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    if (cmd == OSSL_BIO_CTRL_SET_KTLS) {
        /*
         * OpenSSL's struct starts with the kernel's crypto info (a union of
         * the same structs as ours): keep it, and decline (stay in user space).
         */
        memcpy(server_side.offered, ptr, sizeof(server_side.offered));
        server_side.offered_len = sizeof(server_side.offered);
        return 0;
    }
    return BIO_ctrl(BIO_next(b), cmd, num, ptr);
}

struct pair {
    struct tls_peer s, c; /* in memory: the test moves their bytes */
    BIO_METHOD *oracle;
};

static void pair_open(struct pair *p, const char *suite)
{
    memset(&server_side, 0, sizeof(server_side));
    memset(&client_side, 0, sizeof(client_side));
    struct tls_peer_opts so = {
        .server = 1, .min_version = TLS1_3_VERSION, .ciphersuites = suite, .cert = pki.node_cert, .key = pki.node_key};
    struct tls_peer_opts co = {.min_version = TLS1_3_VERSION, .ciphersuites = suite, .ca = pki.ca, .host = "localhost"};
    cr_assert_eq(tls_peer_new(&p->s, &so, -1), 0, "%s", p->s.err);
    cr_assert_eq(tls_peer_new(&p->c, &co, -1), 0, "%s", p->c.err);
    SSL_CTX_set_keylog_callback(p->s.ctx, keylog);
    SSL_CTX_set_keylog_callback(p->c.ctx, keylog);
    SSL_set_options(p->s.ssl, SSL_OP_ENABLE_KTLS);
    SSL_set_num_tickets(p->s.ssl, 2); /* as clink's servers */
    p->oracle = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "oracle");
    BIO_meth_set_write(p->oracle, oracle_write);
    BIO_meth_set_ctrl(p->oracle, oracle_ctrl);
    BIO *f = BIO_new(p->oracle);
    BIO_set_init(f, 1);
    /* The server writes through the oracle into its memory BIO, which the oracle's chain now holds for the SSL. */
    BIO_up_ref(p->s.wb);
    BIO_push(f, p->s.wb);
    SSL_set0_wbio(p->s.ssl, f);
    SSL_set_msg_callback(p->s.ssl, msg_cb);
    SSL_set_msg_callback(p->c.ssl, msg_cb);
    cr_assert(tls_peer_handshake_pair(&p->c, &p->s) == 0, "handshake: %s", ERR_error_string(ERR_get_error(), NULL));
    /* The client reads the tickets (SSL_read returns nothing else). */
    char buf[16];
    cr_assert_leq(SSL_read(p->c.ssl, buf, sizeof(buf)), 0);
}

static void pair_close(struct pair *p)
{
    tls_peer_free(&p->s);
    tls_peer_free(&p->c);
    BIO_meth_free(p->oracle);
}

static const struct {
    const char *name;
    uint16_t id;
} suites[] = {
    {"TLS_AES_128_GCM_SHA256", CLINK_TLS_AES_128_GCM_SHA256},
    {"TLS_AES_256_GCM_SHA384", CLINK_TLS_AES_256_GCM_SHA384},
    {"TLS_CHACHA20_POLY1305_SHA256", CLINK_TLS_CHACHA20_POLY1305_SHA256},
};

Test(ktls, openssl_offers_the_same_transmit_crypto_info, .init = setup, .fini = teardown)
{
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        struct pair p;
        pair_open(&p, suites[i].name);
        cr_assert_gt(server_side.offered_len, 0, "%s: OpenSSL did not offer kTLS", suites[i].name);
        cr_assert_gt(server_side.secret_len, 0);
        /* OpenSSL switches kTLS on at the key change, before the tickets: sequence 0. */
        struct clink__ktls_info ours;
        cr_assert_eq(clink__ktls_info(suites[i].id, server_side.secret, server_side.secret_len, 0, &ours), 0);
        cr_assert_arr_eq(server_side.offered, &ours.u, ours.len, "%s: crypto info differs", suites[i].name);
        pair_close(&p);
    }
}

/* Seal one TLS 1.3 application-data record with the packed key material, as the kernel would. */
static size_t seal(const struct clink__ktls_info *k, const char *text, uint8_t *out)
{
    const EVP_CIPHER *c;
    const uint8_t *key, *seq;
    uint8_t nonce[12];
    switch (k->u.base.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
        c = EVP_aes_128_gcm();
        key = k->u.gcm128.key;
        memcpy(nonce, k->u.gcm128.salt, 4);
        memcpy(nonce + 4, k->u.gcm128.iv, 8);
        seq = k->u.gcm128.rec_seq;
        break;
    case TLS_CIPHER_AES_GCM_256:
        c = EVP_aes_256_gcm();
        key = k->u.gcm256.key;
        memcpy(nonce, k->u.gcm256.salt, 4);
        memcpy(nonce + 4, k->u.gcm256.iv, 8);
        seq = k->u.gcm256.rec_seq;
        break;
    default:
        c = EVP_chacha20_poly1305();
        key = k->u.chacha.key;
        memcpy(nonce, k->u.chacha.iv, 12);
        seq = k->u.chacha.rec_seq;
        break;
    }
    for (int i = 0; i < 8; i++) {
        nonce[4 + i] ^= seq[i];
    }
    size_t n = strlen(text);
    uint8_t inner[64];
    memcpy(inner, text, n);
    inner[n++] = SSL3_RT_APPLICATION_DATA; /* TLSInnerPlaintext: content, then its type */
    size_t len = n + 16;
    uint8_t hdr[5] = {SSL3_RT_APPLICATION_DATA, 3, 3, (uint8_t)(len >> 8), (uint8_t)len};
    memcpy(out, hdr, 5);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int outl = 0, fin = 0;
    cr_assert_eq(EVP_EncryptInit_ex(x, c, NULL, key, nonce), 1);
    cr_assert_eq(EVP_EncryptUpdate(x, NULL, &outl, hdr, 5), 1); /* additional data: the record header */
    cr_assert_eq(EVP_EncryptUpdate(x, out + 5, &outl, inner, (int)n), 1);
    cr_assert_eq(EVP_EncryptFinal_ex(x, out + 5 + outl, &fin), 1);
    cr_assert_eq(EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + n), 1);
    EVP_CIPHER_CTX_free(x);
    return 5 + len;
}

Test(ktls, a_record_sealed_with_our_key_and_count_is_accepted_after_the_tickets, .init = setup, .fini = teardown)
{
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        for (int wrong = 0; wrong < 2; wrong++) {
            struct pair p;
            pair_open(&p, suites[i].name);
            /* Two tickets went out under the server's application key: the kernel would continue at 2. */
            cr_assert_eq(server_side.rec_out, 2, "%s: %llu records", suites[i].name,
                         (unsigned long long)server_side.rec_out);
            struct clink__ktls_info k;
            uint64_t seq = server_side.rec_out + (uint64_t)wrong; /* wrong: one off, which must fail */
            cr_assert_eq(clink__ktls_info(suites[i].id, server_side.secret, server_side.secret_len, seq, &k), 0);
            uint8_t rec[128];
            size_t n = seal(&k, "from the kernel", rec);
            cr_assert_eq(BIO_write(p.c.rb, rec, (int)n), (int)n);
            char buf[64] = "";
            int got = SSL_read(p.c.ssl, buf, sizeof(buf) - 1);
            if (!wrong) {
                cr_assert_eq(got, 15, "%s: %s", suites[i].name, ERR_error_string(ERR_get_error(), NULL));
                cr_assert_arr_eq(buf, "from the kernel", 15);
            } else {
                cr_assert_leq(got, 0, "%s: a record under the wrong sequence number was accepted", suites[i].name);
                ERR_clear_error();
            }
            clink__ktls_info_wipe(&k);
            pair_close(&p);
        }
    }
}

/* ---- on a kernel with kTLS (../shared/ktls-vm/run): real sockets, both ends clink ---- */

static struct clink_tls_ctx *kt_tls;
static atomic_int server_closed_status = 1;

static struct clink_conn *_Atomic server_conn; /* the server's end of the last connection opened */

static void on_server_conn(struct clink_conn *conn, enum clink_conn_event ev, int status, void *user)
{
    (void)user;
    if (ev == CLINK_CONN_OPENED) {
        atomic_store(&server_conn, conn);
    }
    if (ev == CLINK_CONN_CLOSED) {
        atomic_store(&server_closed_status, status);
    }
}

static void kernel_setup(void)
{
    ts_pki_make(&pki);
    kt_tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
}

static void kernel_teardown(void)
{
    clink_tls_ctx_free(kt_tls);
    ts_pki_remove(&pki);
}

static struct clink_node *kt_node(enum clink_ktls_mode mode, int listen)
{
    struct clink_node_opts o = {.workers = 1, .tls = kt_tls, .ktls = mode, .on_conn = on_server_conn};
    struct clink_node *n = ts_node_with(&o, listen ? ts_register_echo : NULL);
    return n;
}

/* Skip unless this kernel has the tls ULP: these run in CI under ../shared/ktls-vm/run. */
static void need_ktls(struct clink_node *n)
{
    struct clink_features f;
    clink_node_features(n, &f);
    if (!f.ktls) {
        /* In CI these run in the kTLS VM with CLINK_EXPECT_KTLS=1: there a skip would hide a regression. */
        cr_assert(getenv("CLINK_EXPECT_KTLS") == NULL, "CLINK_EXPECT_KTLS is set but this kernel offers no kTLS");
        clink_node_free(n);
        cr_skip_test("no kTLS on this kernel (run under ../shared/ktls-vm/run)");
    }
}

/* A counter from /proc/net/tls_stat (the kernel's own count of software kTLS contexts), or -1. */
static long tls_stat(const char *name)
{
    FILE *f = fopen("/proc/net/tls_stat", "r");
    char key[64];
    long v, found = -1;
    while (f && fscanf(f, "%63s %ld", key, &v) == 2) {
        if (strcmp(key, name) == 0) {
            found = v;
        }
    }
    if (f) {
        fclose(f);
    }
    return found;
}

static struct clink_conn *kt_dial(struct clink_node *cli, struct clink_node *srv, enum clink_ktls_mode mode)
{
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost", .ktls = mode};
    struct clink_conn *c = NULL;
    char err[256] = "";
    int ret = clink_connect_sync(cli, &o, &c, err, sizeof(err));
    cr_assert_eq(ret, 0, "connect: %s (%s)", err, clink_strerror(ret));
    return c;
}

/* Echo sizes that cross record boundaries: 1 byte, one record, a record and a bit, many records. */
static void echo_sizes(struct clink_conn *c)
{
    static const size_t sizes[] = {1, 100, 16384 - 16, 16384, 16385, 100000, 1u << 20};
    uint8_t *buf = malloc(1u << 20);
    for (size_t i = 0; i < (1u << 20); i++) {
        buf[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        struct clink_msg r;
        int ret = clink_call_sync(c, TS_ECHO, buf, sizes[k], ts_ms(20000), &r);
        cr_assert_eq(ret, 0, "echo of %zu bytes: %s", sizes[k], clink_strerror(ret));
        cr_assert_eq(r.len, sizes[k]);
        cr_assert_arr_eq(r.data, buf, sizes[k], "echo of %zu bytes differs", sizes[k]);
        clink_msg_free(&r);
    }
    free(buf);
}

Test(ktls_kernel, both_ends_offload_and_carry_every_size, .init = kernel_setup, .fini = kernel_teardown, .timeout = 120)
{
    struct clink_node *srv = kt_node(CLINK_KTLS_REQUIRED, 1);
    need_ktls(srv);
    struct clink_node *cli = kt_node(CLINK_KTLS_REQUIRED, 0);
    long tx0 = tls_stat("TlsTxSw"), rx0 = tls_stat("TlsRxSw");
    struct clink_conn *c = kt_dial(cli, srv, CLINK_KTLS_DEFAULT);
    echo_sizes(c);
    /* The kernel says so too: one more software TX and RX context at each end. */
    cr_assert_geq(tls_stat("TlsTxSw"), tx0 + 2, "TlsTxSw %ld -> %ld", tx0, tls_stat("TlsTxSw"));
    cr_assert_geq(tls_stat("TlsRxSw"), rx0 + 2, "TlsRxSw %ld -> %ld", rx0, tls_stat("TlsRxSw"));
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.ktls_tx, CLINK_KTLS_ON, "%s", st.ktls_reason);
    cr_assert_eq(st.ktls_rx, CLINK_KTLS_ON, "%s", st.ktls_reason);
    /* The kernel's sequence numbers: every record since the keys were made, tickets included. */
    cr_assert_gt(st.records_out, 64, "%llu", (unsigned long long)st.records_out);
    cr_assert_gt(st.records_in, 64 + 2, "%llu", (unsigned long long)st.records_in);
    struct clink_node_stats ss, cs;
    clink_node_get_stats(srv, &ss);
    clink_node_get_stats(cli, &cs);
    cr_assert_eq(ss.ktls_offloaded, 1);
    cr_assert_eq(cs.ktls_offloaded, 1);
    cr_assert_eq(cs.ktls_fallbacks + ss.ktls_fallbacks, 0);
    /*
     * Idle memory: with both directions in the kernel neither end keeps
     * OpenSSL's connection state (the bench measures the bytes; this checks
     * the state is gone). Read after the last answer: the workers are idle.
     */
    cr_assert_null(c->tls, "the client kept its TLS state (and SSL)");
    cr_assert_null(atomic_load(&server_conn)->tls, "the server kept its TLS state (and SSL)");

    /* Orderly close under kTLS: close_notify goes out as an alert record, the server sees a clean end. */
    clink_conn_close(c);
    for (int i = 0; i < 500 && atomic_load(&server_closed_status) == 1; i++) {
        usleep(10000);
    }
    cr_assert_eq(atomic_load(&server_closed_status), 0, "server saw: %s",
                 clink_strerror(atomic_load(&server_closed_status)));
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(ktls_kernel, one_end_in_the_kernel_talks_to_one_in_openssl, .init = kernel_setup, .fini = kernel_teardown,
     .timeout = 120)
{
    /* The proof that keys and sequence numbers are right: the other end decrypts with OpenSSL itself. */
    for (int kernel_side = 0; kernel_side < 2; kernel_side++) {
        struct clink_node *srv = kt_node(kernel_side == 0 ? CLINK_KTLS_REQUIRED : CLINK_KTLS_DISABLED, 1);
        need_ktls(srv);
        struct clink_node *cli = kt_node(kernel_side == 1 ? CLINK_KTLS_REQUIRED : CLINK_KTLS_DISABLED, 0);
        struct clink_conn *c = kt_dial(cli, srv, CLINK_KTLS_DEFAULT);
        echo_sizes(c);
        struct clink_conn_status st, sst;
        cr_assert_eq(clink_conn_get_status(c, &st), 0);
        cr_assert_eq(st.ktls_tx, kernel_side == 1 ? CLINK_KTLS_ON : CLINK_KTLS_OFF);
        /*
         * The kernel's sequence numbers (getsockopt) against OpenSSL's count at
         * the other end: every record each way, tickets included, agrees. The
         * last answer arrived, so neither end has a record in flight.
         */
        struct clink_conn *sc = atomic_load(&server_conn);
        cr_assert_not_null(sc);
        cr_assert_eq(clink_conn_get_status(sc, &sst), 0);
        cr_assert_eq(st.records_out, sst.records_in, "client sent %llu records, server counts %llu",
                     (unsigned long long)st.records_out, (unsigned long long)sst.records_in);
        cr_assert_eq(st.records_in, sst.records_out, "server sent %llu records, client counts %llu",
                     (unsigned long long)sst.records_out, (unsigned long long)st.records_in);
        cr_assert_gt(st.records_out, 64);
        clink_conn_close(c);
        clink_node_free(cli);
        clink_node_free(srv);
    }
}

Test(ktls_kernel, tickets_read_before_the_switch_still_resume, .init = kernel_setup, .fini = kernel_teardown,
     .timeout = 120)
{
    struct clink_node *srv = kt_node(CLINK_KTLS_REQUIRED, 1);
    need_ktls(srv);
    struct clink_node *cli = kt_node(CLINK_KTLS_REQUIRED, 0);
    clink_conn_close(kt_dial(cli, srv, CLINK_KTLS_DEFAULT));
    struct clink_conn *c = NULL;
    for (int i = 0; i < 100; i++) { /* the tickets are filed as the first connection opens */
        c = kt_dial(cli, srv, CLINK_KTLS_DEFAULT);
        struct clink_conn_status st;
        cr_assert_eq(clink_conn_get_status(c, &st), 0);
        if (st.resumed) {
            cr_assert_eq(st.ktls_rx, CLINK_KTLS_ON, "%s", st.ktls_reason);
            break;
        }
        clink_conn_close(c);
        c = NULL;
        usleep(10000);
    }
    cr_assert_not_null(c, "no connection resumed");
    echo_sizes(c);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(ktls_kernel, required_fails_closed_where_the_kernel_has_no_ktls, .init = kernel_setup, .fini = kernel_teardown)
{
    struct clink_node *srv = kt_node(CLINK_KTLS_AUTO, 1);
    struct clink_features f;
    clink_node_features(srv, &f);
    if (f.ktls) {
        clink_node_free(srv);
        cr_skip_test("this kernel has kTLS: the refusal is tested where it has not");
    }
    struct clink_node *cli = kt_node(CLINK_KTLS_AUTO, 0);
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost", .ktls = CLINK_KTLS_REQUIRED};
    struct clink_conn *c = NULL;
    char err[256] = "";
    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), -CLINK_EKTLS);
    cr_assert(strstr(err, "no kTLS") != NULL, "%s", err);
    /* AUTO on the same host: user-space TLS, counted and said. */
    o.ktls = CLINK_KTLS_AUTO;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.ktls_rx, CLINK_KTLS_OFF);
    cr_assert(strstr(st.ktls_reason, "no kTLS") != NULL, "%s", st.ktls_reason);
    struct clink_node_stats cs;
    clink_node_get_stats(cli, &cs);
    cr_assert_geq(cs.ktls_fallbacks, 1);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/* The server speaks first, the moment the connection opens: the client's hand-over point must still hold. */
static uint8_t early_payload[1u << 20];
static struct clink_call early_call;
static struct iovec early_iov;
static atomic_int early_done = 0, early_status = 1;

static void early_cb(struct clink_call *call, int status, const uint8_t *resp, size_t len)
{
    (void)call;
    (void)resp;
    atomic_store(&early_status, status == 0 && len == sizeof(early_payload) ? 0 : (status ? status : -1));
    atomic_store(&early_done, 1);
}

static void call_on_open(struct clink_conn *conn, enum clink_conn_event ev, int status, void *user)
{
    (void)status;
    (void)user;
    if (ev == CLINK_CONN_OPENED) {
        early_iov = (struct iovec){.iov_base = early_payload, .iov_len = sizeof(early_payload)};
        early_call = (struct clink_call){
            .method = TS_ECHO, .iov = &early_iov, .iovcnt = 1, .cb = early_cb, .timeout_ms = ts_ms(20000)};
        if (clink_call_start(conn, &early_call) < 0) {
            atomic_store(&early_done, 1);
        }
    }
}

Test(ktls_kernel, a_server_that_sends_as_soon_as_it_opens, .init = kernel_setup, .fini = kernel_teardown,
     .timeout = 120)
{
    struct clink_node_opts so = {.workers = 1, .tls = kt_tls, .ktls = CLINK_KTLS_REQUIRED, .on_conn = call_on_open};
    struct clink_node *srv = ts_node_with(&so, ts_register_echo);
    need_ktls(srv);
    struct clink_node *cli = kt_node(CLINK_KTLS_REQUIRED, 1); /* answers echo: the server calls it */
    for (int i = 0; i < 5; i++) {
        atomic_store(&early_done, 0);
        struct clink_conn *c = kt_dial(cli, srv, CLINK_KTLS_DEFAULT);
        for (int k = 0; k < 2000 && !atomic_load(&early_done); k++) {
            usleep(1000);
        }
        cr_assert_eq(atomic_load(&early_status), 0, "the server's first call: %s",
                     clink_strerror(atomic_load(&early_status)));
        struct clink_conn_status st;
        cr_assert_eq(clink_conn_get_status(c, &st), 0);
        cr_assert_eq(st.ktls_rx, CLINK_KTLS_ON, "%s", st.ktls_reason);
        echo_sizes(c);
        clink_conn_close(c);
    }
    clink_node_free(cli);
    clink_node_free(srv);
}

/* ---- the fallback paths, through the setsockopt seam (the first two run anywhere) ---- */

static int fail_level = -1, fail_name = -1, fail_errno;
static int pass_through; /* 1: the steps that do not fail really happen (a kernel with kTLS) */

static int failing_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    if (level == fail_level && name == fail_name) {
        errno = fail_errno;
        return -1;
    }
    return pass_through ? setsockopt(fd, level, name, val, len) : 0;
}

static void seam(int level, int name, int err, int real)
{
    fail_level = level;
    fail_name = name;
    fail_errno = err;
    pass_through = real;
    clink__ktls_setsockopt = failing_setsockopt;
}

static void seam_off(void)
{
    clink__ktls_setsockopt = setsockopt;
}

/*
 * Both nodes believe the kernel offers kTLS (on this host it may not: the
 * seam fails before it matters), and keep the secrets as a node on such a
 * kernel does.
 */
static void pretend_ulp(struct clink_node *a, struct clink_node *b)
{
    struct clink_node *n[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        n[i]->ktls_ulp = 1;
        clink__tls_keep_secrets(clink_tls_ctx_server(n[i]->tls));
        clink__tls_keep_secrets(clink_tls_ctx_client(n[i]->tls));
    }
}

Test(ktls_fallback, no_tls_module_at_the_ulp_step, .init = kernel_setup, .fini = kernel_teardown)
{
    struct clink_node *srv = kt_node(CLINK_KTLS_DISABLED, 1);
    struct clink_node *cli = kt_node(CLINK_KTLS_AUTO, 0);
    pretend_ulp(srv, cli);
    seam(IPPROTO_TCP, TCP_ULP, ENOENT, 0);
    struct clink_conn *c = kt_dial(cli, srv, CLINK_KTLS_AUTO);
    echo_sizes(c); /* user-space TLS: no call fails */
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.ktls_rx, CLINK_KTLS_OFF);
    cr_assert_eq(st.ktls_tx, CLINK_KTLS_OFF);
    cr_assert(strstr(st.ktls_reason, "no tls module (ENOENT)") != NULL, "%s", st.ktls_reason);
    struct clink_node_stats cs;
    clink_node_get_stats(cli, &cs);
    cr_assert_eq(cs.ktls_fallbacks, 1);
    clink_conn_close(c);
    /* REQUIRED: refused, with the reason, before the application has the connection. */
    struct clink_connect_opts o = {
        .host = "127.0.0.1", .port = clink_node_port(srv), .expected_name = "localhost", .ktls = CLINK_KTLS_REQUIRED};
    char err[256] = "";
    c = NULL;
    cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), -CLINK_EKTLS);
    cr_assert_null(c);
    cr_assert(strstr(err, "ENOENT") != NULL, "%s", err);
    seam_off();
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(ktls_fallback, receive_side_refused, .init = kernel_setup, .fini = kernel_teardown)
{
    struct clink_node *srv = kt_node(CLINK_KTLS_DISABLED, 1);
    struct clink_node *cli = kt_node(CLINK_KTLS_AUTO, 0);
    pretend_ulp(srv, cli);
    seam(SOL_TLS, TLS_RX, EINVAL, 0); /* the ULP step "succeeds" without touching the socket */
    struct clink_conn *c = kt_dial(cli, srv, CLINK_KTLS_AUTO);
    echo_sizes(c);
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.ktls_rx, CLINK_KTLS_OFF);
    cr_assert_eq(st.ktls_tx, CLINK_KTLS_OFF, "no TX without RX");
    cr_assert(strstr(st.ktls_reason, "setsockopt(TLS_RX)") != NULL, "%s", st.ktls_reason);
    clink_conn_close(c);
    seam_off();
    clink_node_free(cli);
    clink_node_free(srv);
}

Test(ktls_fallback, send_side_refused_keeps_kernel_receive, .init = kernel_setup, .fini = kernel_teardown,
     .timeout = 120)
{
    /* The seam is the process's: the server's send side is refused too, so both ends run the mix. */
    struct clink_node *srv = kt_node(CLINK_KTLS_AUTO, 1);
    need_ktls(srv); /* the receive side must really be the kernel's */
    struct clink_node *cli = kt_node(CLINK_KTLS_AUTO, 0);
    seam(SOL_TLS, TLS_TX, EBUSY, 1);
    struct clink_conn *c = kt_dial(cli, srv, CLINK_KTLS_AUTO);
    echo_sizes(c); /* the mix: the kernel decrypts, OpenSSL encrypts */
    struct clink_conn_status st;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.ktls_rx, CLINK_KTLS_ON, "%s", st.ktls_reason);
    cr_assert_eq(st.ktls_tx, CLINK_KTLS_OFF);
    cr_assert(strstr(st.ktls_reason, "send side: setsockopt(TLS_TX)") != NULL, "%s", st.ktls_reason);
    struct clink_node_stats cs, ss;
    clink_node_get_stats(cli, &cs);
    clink_node_get_stats(srv, &ss);
    cr_assert_eq(cs.ktls_rx_only, 1);
    cr_assert_eq(ss.ktls_rx_only, 1);
    seam_off();
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/*
 * The server ends the connection (GOAWAY, then close_notify as a kTLS alert
 * record): the client sees an orderly end, no error.
 */
#define BYE 50
static void bye(struct clink_req *req, void *user)
{
    (void)user;
    struct clink_conn *conn = clink_req_conn(req);
    CLINK_IGNORE(clink_req_respond(req, NULL, 0));
    clink_conn_close(conn); /* on its worker: GOAWAY, then close_notify once drained */
}

static void reg_bye(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, BYE, bye, NULL), 0);
}

Test(ktls_kernel, the_server_ends_it_cleanly, .init = kernel_setup, .fini = kernel_teardown, .timeout = 120)
{
    struct clink_node_opts so = {.workers = 1, .tls = kt_tls, .ktls = CLINK_KTLS_REQUIRED};
    struct clink_node *srv = ts_node_with(&so, reg_bye);
    need_ktls(srv);
    struct clink_node *cli = kt_node(CLINK_KTLS_REQUIRED, 0);
    struct clink_conn *c = kt_dial(cli, srv, CLINK_KTLS_DEFAULT);
    struct clink_msg r;
    cr_assert_eq(clink_call_sync(c, BYE, NULL, 0, ts_ms(5000), &r), 0);
    clink_msg_free(&r);
    struct clink_conn_status st;
    for (int i = 0; i < 500; i++) {
        cr_assert_eq(clink_conn_get_status(c, &st), 0);
        if (!st.open) {
            break;
        }
        usleep(10000);
    }
    cr_assert_eq(st.open, 0);
    usleep(200000); /* the last records settle */
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.last_error, 0, "%s", st.last_error_text);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

/*
 * Session tickets after the switch: a server still in user-space TLS sends a
 * ticket long after the handshake, when the client's kernel already has the
 * receive side. The kernel hands it up as a handshake record; the client
 * skips it and the answer behind it arrives intact.
 */
#define LATE_TICKET 51
static void late_ticket(struct clink_req *req, void *user)
{
    (void)user;
    struct clink_conn *conn = clink_req_conn(req);
    /* On the server's worker: OpenSSL writes the ticket ahead of the answer's record. */
    cr_assert_eq(SSL_new_session_ticket(conn->tls->ssl), 1);
    static char after[] = "after";
    struct iovec v = {.iov_base = after, .iov_len = 5};
    CLINK_IGNORE(clink_req_respond(req, &v, 1));
}

static void reg_late_ticket(struct clink_node *n)
{
    ts_register_echo(n);
    cr_assert_eq(clink_node_register(n, LATE_TICKET, late_ticket, NULL), 0);
}

Test(ktls_kernel, a_ticket_after_the_switch_is_skipped, .init = kernel_setup, .fini = kernel_teardown, .timeout = 120)
{
    struct clink_node_opts so = {.workers = 1, .tls = kt_tls, .ktls = CLINK_KTLS_DISABLED, .on_conn = on_server_conn};
    struct clink_node *srv = ts_node_with(&so, reg_late_ticket);
    need_ktls(srv);
    struct clink_node *cli = kt_node(CLINK_KTLS_REQUIRED, 0);
    struct clink_conn *c = kt_dial(cli, srv, CLINK_KTLS_DEFAULT);
    for (int i = 0; i < 3; i++) {
        struct clink_msg r;
        cr_assert_eq(clink_call_sync(c, LATE_TICKET, NULL, 0, ts_ms(5000), &r), 0);
        cr_assert_eq(r.len, 5);
        cr_assert_arr_eq(r.data, "after", 5);
        clink_msg_free(&r);
    }
    echo_sizes(c);
    struct clink_conn_status st, sst;
    cr_assert_eq(clink_conn_get_status(c, &st), 0);
    cr_assert_eq(st.ktls_rx, CLINK_KTLS_ON, "%s", st.ktls_reason);
    cr_assert_eq(st.open, 1);
    /* The kernel counted the three ticket records like any other. */
    cr_assert_eq(clink_conn_get_status(atomic_load(&server_conn), &sst), 0);
    cr_assert_eq(st.records_in, sst.records_out, "server sent %llu records, client's kernel counts %llu",
                 (unsigned long long)sst.records_out, (unsigned long long)st.records_in);
    clink_conn_close(c);
    clink_node_free(cli);
    clink_node_free(srv);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A relay between client and server, in this process, that can flip one bit
 * of the next bytes it passes in one direction: a tampering network.
 */
struct relay {
    int lfd, port, target;
    atomic_int tamper; /* 1: the next client-to-server bytes, 2: the next server-to-client bytes */
    atomic_int stop;
    pthread_t th;
};

static int pass_on(int from, int to, struct relay *r, int dir)
{
    uint8_t buf[65536];
    ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0) {
        return -1;
    }
    int want = dir;
    if (atomic_compare_exchange_strong(&r->tamper, &want, 0)) {
        buf[n - 1] ^= 0x01; /* the sender writes whole records: the last byte is a record's tag */
    }
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w <= 0) {
            return -1;
        }
        off += w;
    }
    return 0;
}

static void *relay_run(void *arg)
{
    struct relay *r = arg;
    int a = accept(r->lfd, NULL, NULL);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->target)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (a >= 0 && connect(b, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        while (!atomic_load(&r->stop)) {
            struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
            if (poll(p, 2, 50) < 0) {
                break;
            }
            if ((p[0].revents && pass_on(a, b, r, 1) < 0) || (p[1].revents && pass_on(b, a, r, 2) < 0)) {
                break;
            }
        }
    }
    if (a >= 0) {
        close(a);
    }
    close(b);
    return NULL;
}

static void relay_start(struct relay *r, int target)
{
    memset(r, 0, sizeof(*r));
    r->target = target;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    cr_assert_eq(bind(r->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(r->lfd, 1), 0);
    cr_assert_eq(getsockname(r->lfd, (struct sockaddr *)&sa, &len), 0);
    r->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&r->th, NULL, relay_run, r), 0);
}

static void relay_stop(struct relay *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
    close(r->lfd);
}

Test(ktls_kernel, a_tampered_record_aborts_only_its_connection, .init = kernel_setup, .fini = kernel_teardown,
     .timeout = 120)
{
    struct clink_node *srv = kt_node(CLINK_KTLS_REQUIRED, 1);
    need_ktls(srv);
    struct clink_node *cli = kt_node(CLINK_KTLS_REQUIRED, 0);
    for (int dir = 1; dir <= 2; dir++) {
        struct relay r;
        relay_start(&r, clink_node_port(srv));
        struct clink_connect_opts o = {.host = "127.0.0.1", .port = (uint16_t)r.port, .expected_name = "localhost"};
        struct clink_conn *c = NULL;
        char err[256] = "";
        cr_assert_eq(clink_connect_sync(cli, &o, &c, err, sizeof(err)), 0, "%s", err);
        struct clink_msg m;
        cr_assert_eq(clink_call_sync(c, TS_ECHO, "before", 6, ts_ms(5000), &m), 0);
        clink_msg_free(&m);
        struct clink_conn_status st;
        cr_assert_eq(clink_conn_get_status(c, &st), 0);
        cr_assert_eq(st.ktls_rx, CLINK_KTLS_ON, "%s", st.ktls_reason);
        cr_assert_eq(st.ktls_tx, CLINK_KTLS_ON, "%s", st.ktls_reason);
        long bad0 = tls_stat("TlsDecryptError");
        atomic_store(&server_closed_status, 1);

        /* One bit flipped on the way: the call fails at once, not at its deadline. */
        atomic_store(&r.tamper, dir);
        double t0 = mono_s();
        int ret = clink_call_sync(c, TS_ECHO, "tampered", 8, ts_ms(10000), &m);
        double secs = mono_s() - t0;
        cr_assert_neq(ret, 0, "a tampered record was accepted");
        cr_assert_lt(secs, 5.0, "the call failed only after %.1f s", secs);
        cr_assert_gt(tls_stat("TlsDecryptError"), bad0, "the kernel saw no bad record");
        for (int i = 0; i < 500 && atomic_load(&server_closed_status) == 1; i++) {
            usleep(10000);
        }
        cr_assert_eq(atomic_load(&server_closed_status), dir == 1 ? -CLINK_ETLS : -CLINK_ECLOSED, "server: %s",
                     clink_strerror(atomic_load(&server_closed_status)));
        cr_assert_eq(clink_conn_get_status(c, &st), 0);
        cr_assert_eq(st.open, 0);
        /*
         * The end that got the bad record says so. The other sees the
         * connection end: the kernel refuses to send an alert after it.
         */
        const char *want = dir == 2 ? "failed authentication" : "without close_notify";
        cr_assert(strstr(st.last_error_text, want) != NULL, "client: %s", st.last_error_text);
        clink_conn_close(c);
        relay_stop(&r);

        /* The node goes on serving everyone else. */
        struct clink_conn *d = kt_dial(cli, srv, CLINK_KTLS_DEFAULT);
        echo_sizes(d);
        clink_conn_close(d);
    }
    clink_node_free(cli);
    clink_node_free(srv);
}
