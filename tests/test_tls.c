/*
 * transport/tls.c on its own: a client and a server clink__tls talking
 * through memory (bytes in, bytes out), no sockets and no io_uring, so every
 * step of the state machine is seen and every byte can be held back or
 * changed on the way. The contexts are real clink ones (mutual TLS,
 * clink/1 ALPN) made from the test certificates.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "common/bytes.h"
#include "tests/support/support.h"
#include "transport/sessions.h"
#include "transport/tls.h"

static struct ts_pki pki;
static struct clink_tls_ctx *tls;   /* node.pem, trusting ca.pem */
static struct clink_tls_ctx *other; /* other.pem, trusting other-ca.pem */

static void setup(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
    other = ts_tls(pki.other_cert, pki.other_key, pki.other_ca);
}

static void teardown(void)
{
    clink_tls_ctx_free(other);
    clink_tls_ctx_free(tls);
    ts_pki_remove(&pki);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 30);

/* The two ends of one connection and the four byte queues between them. */
struct pair {
    struct clink__tls cli, srv;
    struct clink__bytes c_in, c_out, s_in, s_out;
    int cli_hs, srv_hs; /* last handshake result: 1 done, 0 more input, < 0 error */
};

/* verify: 0 encryption only, 1 chain, 2 chain and name (as clink__tls_init). */
static void pair_init(struct pair *p, struct clink_tls_ctx *server, struct clink_tls_ctx *client, const char *name,
                      int verify)
{
    memset(p, 0, sizeof(*p));
    /* As a node does with its contexts: the key-log, ticket and epoch hooks. */
    clink__tls_prepare_ctx(clink_tls_ctx_server(server));
    clink__tls_prepare_ctx(clink_tls_ctx_client(client));
    cr_assert_eq(clink__tls_init(&p->srv, clink_tls_ctx_server(server), 1, NULL, 0, &p->s_in, &p->s_out), 0);
    cr_assert_eq(clink__tls_init(&p->cli, clink_tls_ctx_client(client), 0, name, verify, &p->c_in, &p->c_out), 0);
}

static void pair_free(struct pair *p)
{
    clink__tls_free(&p->cli);
    clink__tls_free(&p->srv);
    clink__bytes_free(&p->c_in);
    clink__bytes_free(&p->c_out);
    clink__bytes_free(&p->s_in);
    clink__bytes_free(&p->s_out);
}

/* Everything one end wrote reaches the other. */
static void move(struct clink__bytes *from, struct clink__bytes *to)
{
    cr_assert_eq(clink__bytes_append(to, clink__bytes_data(from), clink__bytes_len(from)), 0);
    clink__bytes_consume(from, clink__bytes_len(from));
}

/* Step both ends, carrying the bytes across, until each is done or has failed. */
static void handshake(struct pair *p)
{
    for (int round = 0; round < 20; round++) {
        if (p->cli_hs == 0) {
            p->cli_hs = clink__tls_handshake(&p->cli);
        }
        move(&p->c_out, &p->s_in);
        if (p->srv_hs == 0) {
            p->srv_hs = clink__tls_handshake(&p->srv);
        }
        move(&p->s_out, &p->c_in);
        if (p->cli_hs != 0 && p->srv_hs != 0) {
            return;
        }
    }
}

/* Read what the other end sent until n bytes arrived (or an error); returns the bytes or the error. */
static int read_all(struct clink__tls *t, uint8_t *dst, size_t n)
{
    size_t got = 0;
    while (got < n) {
        int r = clink__tls_read(t, dst + got, n - got);
        if (r <= 0) {
            return r < 0 ? r : (int)got;
        }
        got += (size_t)r;
    }
    return (int)got;
}

Test(tls, a_full_handshake_verifies_both_ends)
{
    struct pair p;
    pair_init(&p, tls, tls, "localhost", 2);

    handshake(&p);

    cr_assert_eq(p.cli_hs, 1, "client: %s", p.cli.err);
    cr_assert_eq(p.srv_hs, 1, "server: %s", p.srv.err);
    cr_assert_eq(SSL_get_verify_result(p.cli.ssl), X509_V_OK);
    cr_assert_eq(SSL_get_verify_result(p.srv.ssl), X509_V_OK);
    struct clink_conn_status cs = {0}, ss = {0};
    clink__tls_status(&p.cli, &cs);
    clink__tls_status(&p.srv, &ss);
    cr_assert_str_eq(cs.tls_version, "TLSv1.3");
    cr_assert_str_eq(cs.alpn, "clink/1");
    cr_assert_str_eq(ss.alpn, "clink/1");
    cr_assert_str_eq(cs.cipher, ss.cipher);
    cr_assert_str_eq(cs.peer_subject, "CN=localhost");
    cr_assert_str_eq(cs.peer_issuer, "CN=clink test CA");
    cr_assert_str_eq(ss.peer_subject, "CN=localhost", "the server verified the client's certificate");
    cr_assert_eq(cs.resumed, 0);
    cr_assert_eq(p.cli.have_mark, 1, "the client marks the chain it verified for the tickets to come");
    cr_assert_eq(p.cli.app_in + p.cli.app_out + p.srv.app_in + p.srv.app_out, 4, "both directions on app keys");
    cr_assert_eq(p.srv.rec_out, 2, "the server's two NewSessionTickets, under its application key");
    cr_assert_eq(p.cli.rec_out, 0, "the client's Finished went under its handshake key");
    cr_assert_gt(clink__bytes_len(&p.c_in), 0, "the tickets wait for the client's first read");
    cr_assert_eq(clink__bytes_len(&p.s_in), 0);
    pair_free(&p);
}

Test(tls, the_handshake_asks_for_one_record_at_a_time)
{
    struct pair p;
    pair_init(&p, tls, tls, "localhost", 2);
    cr_assert_eq(clink__tls_handshake(&p.cli), 0);
    const uint8_t *hello = clink__bytes_data(&p.c_out);
    size_t body = (size_t)hello[3] << 8 | hello[4];

    int before = clink__tls_handshake(&p.srv);
    size_t want_header = p.srv.want;
    cr_assert_eq(clink__bytes_append(&p.s_in, hello, 5), 0);
    int after_header = clink__tls_handshake(&p.srv);
    size_t want_body = p.srv.want;

    cr_assert_eq(before, 0, "no input: more needed");
    cr_assert_eq(want_header, 5, "a record header first");
    cr_assert_eq(hello[0], 22, "a handshake record");
    cr_assert_eq(clink__bytes_len(&p.c_out), 5 + body, "the ClientHello is one record");
    cr_assert_eq(after_header, 0);
    cr_assert_eq(want_body, body, "then exactly the record's body, never past it");
    cr_assert_eq(clink__bytes_len(&p.s_out), 0, "nothing written before the ClientHello is whole");
    pair_free(&p);
}

Test(tls, application_data_flows_both_ways_in_records_of_at_most_16_KiB)
{
    struct pair p;
    pair_init(&p, tls, tls, "localhost", 2);
    handshake(&p);
    cr_assert_eq(p.cli_hs + p.srv_hs, 2);
    enum { BIG = 100000 }; /* seven records: six full ones of 16 KiB and a tail */
    uint8_t *big = malloc(BIG), *got = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) {
        big[i] = (uint8_t)(i * 131u + 7);
    }
    uint8_t small[16];

    cr_assert_eq(clink__tls_write(&p.cli, "ping", 4), 0);
    move(&p.c_out, &p.s_in);
    int n_srv = clink__tls_read(&p.srv, small, sizeof(small));
    cr_assert_eq(clink__tls_write(&p.srv, big, BIG), 0);
    uint64_t srv_records = p.srv.rec_out;
    size_t wire = clink__bytes_len(&p.s_out);
    /* Delivered a little at a time: the reader says "more" between pieces and never loses a byte. */
    size_t have = 0;
    while (clink__bytes_len(&p.s_out) > 0) {
        size_t step = clink__bytes_len(&p.s_out) < 1000 ? clink__bytes_len(&p.s_out) : 1000;
        cr_assert_eq(clink__bytes_append(&p.c_in, clink__bytes_data(&p.s_out), step), 0);
        clink__bytes_consume(&p.s_out, step);
        int r;
        while ((r = clink__tls_read(&p.cli, got + have, BIG - have)) > 0) {
            have += (size_t)r;
        }
        cr_assert_eq(r, 0, "client read: %s", p.cli.err);
    }

    cr_assert_eq(n_srv, 4);
    cr_assert_arr_eq(small, "ping", 4);
    cr_assert_eq(srv_records, 2 + 7, "two tickets, then 100,000 bytes in seven records");
    cr_assert_eq(wire, (size_t)BIG + 7 * (5 + 1 + 16), "each record adds a header, its type and a tag: %zu", wire);
    cr_assert_eq(have, BIG);
    cr_assert_arr_eq(got, big, BIG);
    cr_assert_eq(p.cli.rec_in, 2 + 7, "the client read the tickets and the seven records");
    free(big);
    free(got);
    pair_free(&p);
}

Test(tls, a_wrong_server_name_fails_verification)
{
    struct pair p;
    pair_init(&p, tls, tls, "leaf-7.example", 2);

    handshake(&p);

    cr_assert_eq(p.cli_hs, -CLINK_EVERIFY, "%s", p.cli.err);
    cr_assert_str_eq(p.cli.err, "TLS handshake: certificate verify failed: hostname mismatch (depth 0, CN=localhost)");
    cr_assert_eq(SSL_get_verify_result(p.cli.ssl), X509_V_ERR_HOSTNAME_MISMATCH);
    cr_assert_eq(p.srv_hs, -CLINK_EVERIFY, "the client's alert: %s", p.srv.err);
    cr_assert_str_eq(p.srv.err, "TLS handshake: peer rejected our certificate: bad certificate");
    pair_free(&p);
}

Test(tls, verify_ca_ignores_the_name)
{
    struct pair p;
    pair_init(&p, tls, tls, "leaf-7.example", 1);

    handshake(&p);

    cr_assert_eq(p.cli_hs, 1, "%s", p.cli.err);
    cr_assert_eq(p.srv_hs, 1, "%s", p.srv.err);
    pair_free(&p);
}

Test(tls, a_server_certificate_from_another_ca_fails_verification)
{
    struct pair p;
    pair_init(&p, other, tls, "localhost", 2);

    handshake(&p);

    cr_assert_eq(p.cli_hs, -CLINK_EVERIFY, "%s", p.cli.err);
    cr_assert_str_eq(p.cli.err,
                     "TLS handshake: certificate verify failed: self-signed certificate in certificate chain "
                     "(depth 1, CN=some other CA)");
    cr_assert_eq(SSL_get_verify_result(p.cli.ssl), X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN);
    cr_assert_eq(p.srv_hs, -CLINK_EVERIFY, "%s", p.srv.err);
    cr_assert_str_eq(p.srv.err, "TLS handshake: peer rejected our certificate: unknown CA");
    pair_free(&p);
}

Test(tls, a_client_certificate_from_another_ca_fails_verification)
{
    struct pair p;
    /* The client checks nothing (encryption only), so it gets as far as showing its certificate. */
    pair_init(&p, tls, other, "localhost", 0);

    handshake(&p);

    cr_assert_eq(p.srv_hs, -CLINK_EVERIFY, "%s", p.srv.err);
    cr_assert_str_eq(p.srv.err,
                     "TLS handshake: certificate verify failed: self-signed certificate in certificate chain "
                     "(depth 1, CN=some other CA)");
    cr_assert_eq(p.cli_hs, 1, "TLS 1.3: the client is done before the server has seen its certificate");
    uint8_t b[16];
    int r = clink__tls_read(&p.cli, b, sizeof(b));
    cr_assert_eq(r, -CLINK_EVERIFY, "the server's alert: %s", p.cli.err);
    cr_assert_str_eq(p.cli.err, "TLS read: peer rejected our certificate: unknown CA");
    pair_free(&p);
}

Test(tls, a_tampered_record_fails_to_decrypt)
{
    struct pair p;
    pair_init(&p, tls, tls, "localhost", 2);
    handshake(&p);
    cr_assert_eq(p.cli_hs + p.srv_hs, 2);
    cr_assert_eq(clink__tls_write(&p.cli, "secret", 6), 0);
    cr_assert_eq(clink__bytes_len(&p.c_out), 5 + 6 + 1 + 16, "one record: header, text, type, tag");
    uint8_t b[16];

    clink__bytes_data(&p.c_out)[5 + 2] ^= 0x04; /* one bit of the ciphertext */
    move(&p.c_out, &p.s_in);
    int r = clink__tls_read(&p.srv, b, sizeof(b));

    cr_assert_eq(r, -CLINK_ETLS, "%s", p.srv.err);
    cr_assert_str_eq(p.srv.err, "TLS read: error:0A000119:SSL routines::decryption failed or bad record mac");
    cr_assert_eq(p.srv.orderly, 0);
    cr_assert_gt(clink__bytes_len(&p.s_out), 0, "the server tells the client (bad_record_mac)");
    move(&p.s_out, &p.c_in);
    int c = clink__tls_read(&p.cli, b, sizeof(b));
    cr_assert_eq(c, -CLINK_ETLS, "%s", p.cli.err);
    cr_assert_str_eq(p.cli.err, "TLS read: error:0A0003FC:SSL routines::sslv3 alert bad record mac");
    pair_free(&p);
}

Test(tls, close_notify_is_seen_as_an_orderly_end)
{
    struct pair p;
    pair_init(&p, tls, tls, "localhost", 2);
    handshake(&p);
    cr_assert_eq(p.cli_hs + p.srv_hs, 2);
    cr_assert_eq(clink__tls_write(&p.cli, "last", 4), 0);
    uint8_t b[16];

    clink__tls_close_notify(&p.cli);
    move(&p.c_out, &p.s_in);
    int data = clink__tls_read(&p.srv, b, sizeof(b));
    int end = clink__tls_read(&p.srv, b, sizeof(b));
    clink__tls_close_notify(&p.srv);
    move(&p.s_out, &p.c_in);
    int cli_end = read_all(&p.cli, b, sizeof(b));

    cr_assert_eq(data, 4, "what came before close_notify is delivered");
    cr_assert_arr_eq(b, "last", 4);
    cr_assert_eq(end, -CLINK_ECLOSED, "%s", p.srv.err);
    cr_assert_eq(p.srv.orderly, 1);
    cr_assert_eq(cli_end, -CLINK_ECLOSED, "%s", p.cli.err);
    cr_assert_eq(p.cli.orderly, 1);
    cr_assert_eq(clink__tls_write(&p.cli, "more", 4), -CLINK_ETLS, "nothing is sent after close_notify");
    pair_free(&p);
}

/* ---- resumption: the client keeps its tickets in a clink__sessions under a key ---- */

/* A full handshake whose tickets the client files under key; the client reads them in (they follow the handshake). */
static void first_dial(struct clink__sessions *s, const char *key)
{
    struct pair p;
    pair_init(&p, tls, tls, "localhost", 2);
    clink__tls_use_sessions(&p.cli, s, key, clink__sessions_gen(s));
    handshake(&p);
    cr_assert_eq(p.cli_hs + p.srv_hs, 2);
    uint8_t b[16];
    cr_assert_eq(clink__tls_read(&p.cli, b, sizeof(b)), 0, "%s", p.cli.err);
    cr_assert_eq(p.cli.offered, 0);
    pair_free(&p);
}

Test(tls, a_ticket_resumes_once_without_the_certificate_exchange)
{
    struct clink__sessions s;
    clink__sessions_init(&s);
    first_dial(&s, "k");
    size_t kept = clink__sessions_count(&s, "k");
    struct pair p;
    pair_init(&p, tls, tls, "localhost", 2);

    clink__tls_use_sessions(&p.cli, &s, "k", clink__sessions_gen(&s));
    size_t left = clink__sessions_count(&s, "k");
    handshake(&p);

    cr_assert_eq(kept, 2, "OpenSSL sends two tickets after a full handshake");
    cr_assert_eq(p.cli.offered, 1);
    cr_assert_eq(left, 1, "a ticket is used once");
    cr_assert_eq(p.cli_hs, 1, "%s", p.cli.err);
    cr_assert_eq(p.srv_hs, 1, "%s", p.srv.err);
    struct clink_conn_status cs = {0}, ss = {0};
    clink__tls_status(&p.cli, &cs);
    clink__tls_status(&p.srv, &ss);
    cr_assert_eq(cs.resumed, 1);
    cr_assert_eq(ss.resumed, 1);
    cr_assert_str_eq(cs.peer_subject, "CN=localhost", "the peer's certificate comes from the session");
    cr_assert_eq(p.cli.have_mark, 1, "verified under this trust epoch: not verified again");
    pair_free(&p);
    clink__sessions_free(&s);
}

Test(tls, a_ticket_offered_for_another_name_is_refused)
{
    struct clink__sessions s;
    clink__sessions_init(&s);
    first_dial(&s, "k");
    struct pair p;
    pair_init(&p, tls, tls, "leaf-7.example", 2);

    /* Filed under the wrong key on purpose: a resumed session must still prove the expected name. */
    clink__tls_use_sessions(&p.cli, &s, "k", clink__sessions_gen(&s));
    handshake(&p);

    cr_assert_eq(p.cli.offered, 1);
    cr_assert_eq(p.cli_hs, -CLINK_EVERIFY, "%s", p.cli.err);
    cr_assert_str_eq(p.cli.err, "TLS handshake: resumed session's certificate does not match 'leaf-7.example'");
    pair_free(&p);
    clink__sessions_free(&s);
}

Test(tls, a_client_that_offers_no_alpn_is_refused)
{
    /* A stock client: trusts our CA, shows our certificate, offers no ALPN. */
    SSL_CTX *stock = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(stock);
    cr_assert_eq(SSL_CTX_load_verify_locations(stock, pki.ca, NULL), 1);
    cr_assert_eq(SSL_CTX_use_certificate_chain_file(stock, pki.node_cert), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey_file(stock, pki.node_key, SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_verify(stock, SSL_VERIFY_PEER, NULL);
    struct pair p;
    memset(&p, 0, sizeof(p));
    clink__tls_prepare_ctx(clink_tls_ctx_server(tls));
    cr_assert_eq(clink__tls_init(&p.srv, clink_tls_ctx_server(tls), 1, NULL, 0, &p.s_in, &p.s_out), 0);
    cr_assert_eq(clink__tls_init(&p.cli, stock, 0, "localhost", 2, &p.c_in, &p.c_out), 0);

    handshake(&p);

    /* The ClientHello hook (auth/tls_ctx.c) refuses it, which OpenSSL reports as a failed callback. */
    cr_assert_eq(p.srv_hs, -CLINK_ETLS, "%s", p.srv.err);
    cr_assert_str_eq(p.srv.err, "TLS handshake: error:0A0000EA:SSL routines::callback failed");
    cr_assert_eq(p.cli_hs, -CLINK_EALPN, "the server's alert: %s", p.cli.err);
    cr_assert_str_eq(p.cli.err, "TLS handshake: error:0A000460:SSL routines::tlsv1 alert no application protocol");
    pair_free(&p);
    SSL_CTX_free(stock);
}
