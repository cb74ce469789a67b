/*
 * The node's TLS policy under test: old versions, CBC and non-ECDHE suites,
 * a client certificate from another CA or none at all, each offered to the
 * TLS 1.3-only node and to the --tls12 node. Each must be refused with the
 * expected alert (and the TLS 1.2 control accepted).
 */
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "tests/attacks/attacks.h"
#include "tests/attacks/peer.h"

/*
 * A handshake the node must refuse with the alert `expect` (NULL: any
 * refusal), or accept when expect is "" (a control). Refusals of a client
 * certificate come after our side of a TLS 1.3 handshake has finished: the
 * node answers our HELLO with its alert instead of its own HELLO.
 */
static enum verdict handshake_case(uint16_t port, const struct peer_opts *o, const char *expect, char *obs, size_t cap)
{
    struct tls_peer m;
    double t0 = now_s(), deadline = t0 + sc(3);
    enum verdict v = V_FAIL;
    if (peer_prepare(&m, o) < 0 || peer_connect(&m, port) < 0) {
        snprintf(obs, cap, "setup: %s", m.err);
        goto out;
    }
    int hs = tls_peer_handshake(&m, deadline);
    if (hs == 0 && peer_hello(&m, deadline) == 0 && peer_echo(&m, 1, deadline) == 0) {
        obs_add(obs, cap, "ACCEPTED: %s %s", SSL_get_version(m.ssl), SSL_get_cipher_name(m.ssl));
        v = expect != NULL && expect[0] == '\0' ? V_OK : V_FAIL;
        goto out;
    }
    /* Whatever the node said before it closed: read it all (its alert may sit behind a failed send of ours). */
    char more[200] = "";
    double closed_at = m.closed ? now_s() - t0 : peer_wait_closed(&m, t0, deadline, more, sizeof(more));
    const char *when = hs == 0 ? "after the handshake" : "in the handshake";
    if (m.alert[0]) {
        obs_add(obs, cap, "refused %s: alert %s", when, m.alert);
    } else {
        obs_add(obs, cap, "refused %s, no alert (%s)", when, m.err);
    }
    if (closed_at < 0) {
        obs_add(obs, cap, "; %s", more);
        goto out;
    }
    obs_add(obs, cap, "; closed after %.2f s", closed_at);
    v = expect == NULL || (expect[0] != '\0' && strcmp(m.alert, expect) == 0) ? V_OK : V_FAIL;
out:
    tls_peer_free(&m);
    return v;
}

#define CBC_SUITES                                                                                                     \
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:"               \
    "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384:@SECLEVEL=0"
#define NON_ECDHE_SUITES                                                                                               \
    "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA256:DHE-RSA-AES128-GCM-SHA256:"                          \
    "DHE-RSA-CHACHA20-POLY1305:@SECLEVEL=0"

static enum verdict tls_old(uint16_t port, int version, char *obs, size_t cap)
{
    struct peer_opts o = {.min_version = version,
                          .max_version = version,
                          .ciphers = "DEFAULT:@SECLEVEL=0",
                          .cert = cfg.cert,
                          .key = cfg.key};
    return handshake_case(port, &o, "protocol version", obs, cap);
}

static enum verdict tls12_suites(uint16_t port, const char *suites, const char *expect, char *obs, size_t cap)
{
    struct peer_opts o = {.min_version = TLS1_2_VERSION,
                          .max_version = TLS1_2_VERSION,
                          .ciphers = suites,
                          .cert = cfg.cert,
                          .key = cfg.key};
    return handshake_case(port, &o, expect, obs, cap);
}

enum verdict atk_tls10(char *obs, size_t cap)
{
    return tls_old(cfg.port, TLS1_VERSION, obs, cap);
}

enum verdict atk_tls11(char *obs, size_t cap)
{
    return tls_old(cfg.port, TLS1_1_VERSION, obs, cap);
}

enum verdict atk_tls12_cbc(char *obs, size_t cap)
{
    return tls12_suites(cfg.port, CBC_SUITES, "protocol version", obs, cap);
}

enum verdict atk_tls12_non_ecdhe(char *obs, size_t cap)
{
    return tls12_suites(cfg.port, NON_ECDHE_SUITES, "protocol version", obs, cap);
}

enum verdict atk_other_ca(char *obs, size_t cap)
{
    struct peer_opts o = {.cert = cfg.other_cert, .key = cfg.other_key};
    return handshake_case(cfg.port, &o, NULL, obs, cap);
}

enum verdict atk_no_cert(char *obs, size_t cap)
{
    struct peer_opts o = {0};
    return handshake_case(cfg.port, &o, NULL, obs, cap);
}

enum verdict atk12_tls10(char *obs, size_t cap)
{
    return tls_old(cfg.tls12_port, TLS1_VERSION, obs, cap);
}

enum verdict atk12_tls11(char *obs, size_t cap)
{
    return tls_old(cfg.tls12_port, TLS1_1_VERSION, obs, cap);
}

enum verdict atk12_cbc(char *obs, size_t cap)
{
    return tls12_suites(cfg.tls12_port, CBC_SUITES, "handshake failure", obs, cap);
}

enum verdict atk12_non_ecdhe(char *obs, size_t cap)
{
    return tls12_suites(cfg.tls12_port, NON_ECDHE_SUITES, "handshake failure", obs, cap);
}

enum verdict atk12_control(char *obs, size_t cap)
{
    return tls12_suites(cfg.tls12_port, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256", "", obs, cap);
}
