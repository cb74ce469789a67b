/*
 * The trust mark in a session's ticket app data (transport/tls.c, "trust
 * epochs": clink__tls_mark_read, which check_resumed_identity uses to skip
 * verifying a resumed peer's chain again). A server's mark comes back to it
 * inside a ticket a client presents; a client's is kept with its session.
 *
 * At first use, a real mutual-TLS handshake between two clink__tls ends (a
 * CA and a node certificate made in the scratch directory) gives genuine
 * marks: the one the server's ticket carries (its app data) and the
 * client's. Each input then presents bytes to the reader: byte 0 picks whose
 * mark and whether the bytes sit at an odd address, the rest is XORed over
 * that mark (its length is the bytes presented).
 *
 * Properties: the reader accepts exactly a mark of the right size whose
 * epoch is the context's and whose `until` is still ahead, at any alignment,
 * and gives back exactly those bytes; a mark is current under at most one
 * context (each has an epoch of its own), and under the other context only
 * with its epoch. Unmodified marks are accepted (the genuine path).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clink/auth.h"
#include "common/bytes.h"
#include "fuzz/fuzz.h"
#include "transport/tls.h"

static struct clink_tls_ctx *pki[2]; /* [0] the server's node, [1] the client's (same certificate) */
static SSL_CTX *ctxs[2];             /* [0] the server context, [1] the client context */
static uint8_t genuine[2][sizeof(struct clink__tls_mark)];
static SSL_CTX *stranger; /* a context prepared like the others: an epoch of its own */

static void move(struct clink__bytes *from, struct clink__bytes *to)
{
    FUZZ_CHECK(clink__bytes_append(to, clink__bytes_data(from), clink__bytes_len(from)) == 0, "out of memory");
    clink__bytes_consume(from, clink__bytes_len(from));
}

static void setup(void)
{
    char ca[300], ca_key[300], cert[300], key[300], err[256] = "";
    fuzz_path("ca.pem", ca, sizeof(ca));
    fuzz_path("ca-key.pem", ca_key, sizeof(ca_key));
    fuzz_path("node.pem", cert, sizeof(cert));
    fuzz_path("node-key.pem", key, sizeof(key));
    const char *dns[] = {"localhost", NULL};
    struct clink_cert_opts cao = {.common_name = "fuzz ca"}, no = {.common_name = "node", .dns_names = dns};
    FUZZ_CHECK(clink_cert_make_ca(&cao, ca, ca_key, 1, err, sizeof(err)) == 0, "CA: %s", err);
    FUZZ_CHECK(clink_cert_make_node(&no, ca, ca_key, cert, key, 1, err, sizeof(err)) == 0, "node: %s", err);
    struct clink_tls_opts o = {.cert_file = cert, .key_file = key, .ca_file = ca};
    for (int i = 0; i < 2; i++) {
        FUZZ_CHECK(clink_tls_ctx_new(&o, &pki[i], err, sizeof(err)) == 0, "TLS context: %s", err);
    }
    ctxs[0] = clink_tls_ctx_server(pki[0]);
    ctxs[1] = clink_tls_ctx_client(pki[1]);
    clink__tls_prepare_ctx(ctxs[0]); /* as a node does with its contexts: hooks, and an epoch each */
    clink__tls_prepare_ctx(ctxs[1]);

    static struct clink__bytes s_in, s_out, c_in, c_out;
    static struct clink__tls srv, cli;
    FUZZ_CHECK(clink__tls_init(&srv, ctxs[0], 1, NULL, 0, &s_in, &s_out) == 0, "server init");
    FUZZ_CHECK(clink__tls_init(&cli, ctxs[1], 0, "localhost", 2, &c_in, &c_out) == 0, "client init");
    int sdone = 0, cdone = 0;
    for (int round = 0; round < 20 && !(sdone && cdone); round++) {
        if (!cdone) {
            cdone = clink__tls_handshake(&cli);
            FUZZ_CHECK(cdone >= 0, "client handshake: %s", cli.err);
        }
        move(&c_out, &s_in);
        if (!sdone) {
            sdone = clink__tls_handshake(&srv);
            FUZZ_CHECK(sdone >= 0, "server handshake: %s", srv.err);
        }
        move(&s_out, &c_in);
    }
    FUZZ_CHECK(sdone && cdone, "the handshake did not complete");
    void *data = NULL;
    size_t len = 0;
    FUZZ_CHECK(SSL_SESSION_get0_ticket_appdata(SSL_get0_session(srv.ssl), &data, &len) == 1 &&
                   len == sizeof(genuine[0]),
               "the server's ticket carries no mark");
    memcpy(genuine[0], data, len);
    FUZZ_CHECK(cli.have_mark, "the client made no mark for the chain it verified");
    memcpy(genuine[1], &cli.mark, sizeof(cli.mark));

    stranger = SSL_CTX_new(TLS_method());
    FUZZ_CHECK(stranger != NULL, "SSL_CTX_new");
    clink__tls_prepare_ctx(stranger);
    for (int i = 0; i < 2; i++) {
        struct clink__tls_mark m;
        FUZZ_CHECK(clink__tls_mark_read(ctxs[i], genuine[i], sizeof(genuine[i]), &m) == 1,
                   "a genuine mark is not current");
        FUZZ_CHECK(clink__tls_mark_read(ctxs[1 - i], genuine[i], sizeof(genuine[i]), &m) == 0,
                   "a mark is current under the other context");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (stranger == NULL) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    int who = data[0] & 1, odd = data[0] >> 1 & 1;
    size_t n = size - 1;
    uint8_t *buf = malloc(n + 1);
    FUZZ_CHECK(buf != NULL, "out of memory");
    uint8_t *p = buf + odd;
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)((i < sizeof(genuine[who]) ? genuine[who][i] : 0) ^ data[1 + i]);
    }
    struct clink__tls_mark m, want;
    memcpy(&want, genuine[who], sizeof(want));
    int expect = 0;
    if (n == sizeof(want)) {
        struct clink__tls_mark given;
        memcpy(&given, p, sizeof(given));
        expect = memcmp(given.epoch, want.epoch, sizeof(want.epoch)) == 0 && (int64_t)time(NULL) < given.until;
    }
    int got = clink__tls_mark_read(ctxs[who], p, n, &m);
    FUZZ_CHECK(got == expect, "%zu bytes: read says %d, expected %d", n, got, expect);
    if (got) {
        FUZZ_CHECK(memcmp(&m, p, sizeof(m)) == 0, "the mark read is not the bytes given");
    }
    /*
     * Under the other context only with that context's epoch; and under at most one of the three (the stranger's
     * epoch is unknown here, but libFuzzer learns it from the comparison within a minute: epochs are no secret
     * from code in the process, only unique per context).
     */
    int other = clink__tls_mark_read(ctxs[1 - who], p, n, &m);
    FUZZ_CHECK(other == 0 || memcmp(p, genuine[1 - who], 16) == 0,
               "a mark current under a context whose epoch it does not carry");
    FUZZ_CHECK(got + other + clink__tls_mark_read(stranger, p, n, &m) <= 1, "a mark current under two contexts");
    free(buf);
    return 0;
}
