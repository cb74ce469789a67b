/*
 * New keys asked for on an open connection: TLS 1.3 KeyUpdate (allowed, so
 * harmless), a flood of them, and TLS 1.2 renegotiation (refused).
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "tests/attacks/attacks.h"
#include "tests/attacks/peer.h"
#include "tests/attacks/raw.h"

/* Whether this kernel offers kernel TLS (then the node hands TLS 1.3 connections to it). */
static int ktls_here(void)
{
    char buf[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof(buf), f) == NULL) {
            buf[0] = '\0';
        }
        fclose(f);
    }
    for (char *t = strtok(buf, " \n"); t != NULL; t = strtok(NULL, " \n")) {
        if (strcmp(t, "tls") == 0) {
            return 1;
        }
    }
    return 0;
}

/* TLS 1.3 KeyUpdate: allowed by the protocol, so it must be harmless: the connection keeps working. */
enum verdict atk_key_update(char *obs, size_t cap)
{
    struct tls_peer m;
    struct peer_opts o = {.cert = cfg.cert, .key = cfg.key};
    double deadline = now_s() + sc(3);
    enum verdict v = V_FAIL;
    if (peer_open(&m, cfg.port, &o, deadline) < 0) {
        snprintf(obs, cap, "could not open a connection: %s", m.err);
        goto out;
    }
    int in0 = m.key_updates_in;
    for (uint64_t i = 0; i < 3; i++) {
        if (SSL_key_update(m.ssl, SSL_KEY_UPDATE_REQUESTED) != 1) {
            snprintf(obs, cap, "SSL_key_update failed");
            goto out;
        }
        if (peer_echo(&m, 10 + i, deadline) < 0) {
            obs_add(obs, cap, "after KeyUpdate %d the echo failed: %s%s%s", (int)i + 1, m.err,
                    m.alert[0] ? ", alert " : "", m.alert);
            /* Under kTLS the node aborts a connection on a KeyUpdate, by design (docs/ktls.md); not otherwise. */
            if (ktls_here()) {
                obs_add(obs, cap, " (this kernel has kTLS: the node closes such a connection by design)");
                v = V_OK;
            }
            goto out;
        }
    }
    obs_add(obs, cap,
            "harmless: 3 KeyUpdates (update_requested), each echo answered, the node updated its keys %d times",
            m.key_updates_in - in0);
    v = m.key_updates_in - in0 >= 3 ? V_OK : V_FAIL;
out:
    tls_peer_free(&m);
    return v;
}

/* Many KeyUpdates in a row, no data between them. OpenSSL caps this; either outcome must be clean. */
enum verdict atk_key_update_flood(char *obs, size_t cap)
{
    struct tls_peer m;
    struct peer_opts o = {.cert = cfg.cert, .key = cfg.key};
    double deadline = now_s() + sc(3);
    enum verdict v = V_FAIL;
    if (peer_open(&m, cfg.port, &o, deadline) < 0) {
        snprintf(obs, cap, "could not open a connection: %s", m.err);
        goto out;
    }
    int sent = 0;
    for (; sent < 200; sent++) {
        ERR_clear_error();
        if (SSL_key_update(m.ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 || SSL_do_handshake(m.ssl) != 1) {
            break;
        }
    }
    double t0 = now_s();
    if (tls_peer_flush(&m) < 0) {
        obs_add(obs, cap, "send: %s; ", m.err);
    }
    if (peer_echo(&m, 20, deadline) == 0) {
        obs_add(obs, cap, "harmless: %d KeyUpdates in a row, then the echo answered", sent);
        v = V_OK;
    } else if (m.closed || m.alert[0]) {
        obs_add(obs, cap, "%d KeyUpdates in a row: the node refused them (", sent);
        v = peer_wait_closed(&m, t0, deadline, obs, cap) >= 0 ? V_OK : V_FAIL;
        obs_add(obs, cap, ")");
    } else {
        obs_add(obs, cap, "%d KeyUpdates: no answer and no close: %s", sent, m.err);
    }
out:
    tls_peer_free(&m);
    return v;
}

/* Client-initiated TLS 1.2 renegotiation on an open connection. */
enum verdict atk12_renegotiate(char *obs, size_t cap)
{
    struct tls_peer m;
    struct peer_opts o = {.min_version = TLS1_2_VERSION,
                          .max_version = TLS1_2_VERSION,
                          .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
                          .cert = cfg.cert,
                          .key = cfg.key};
    double deadline = now_s() + sc(3);
    enum verdict v = V_FAIL;
    if (peer_open(&m, cfg.tls12_port, &o, deadline) < 0) {
        snprintf(obs, cap, "could not open a TLS 1.2 connection: %s", m.err);
        goto out;
    }
    if (SSL_get_secure_renegotiation_support(m.ssl)) {
        obs_add(obs, cap, "node offers secure renegotiation (RFC 5746); ");
    }
    ERR_clear_error();
    if (SSL_renegotiate(m.ssl) != 1) {
        snprintf(obs, cap, "SSL_renegotiate failed");
        goto out;
    }
    double t0 = now_s();
    ERR_clear_error();
    int r = SSL_do_handshake(m.ssl); /* our new ClientHello, under the current keys */
    if (tls_peer_flush(&m) < 0) {
        snprintf(obs, cap, "send: %s", m.err);
        goto out;
    }
    /* What the node answers: a ServerHello would be a renegotiation, an alert a refusal. */
    int renegotiated = 0;
    while (!m.closed && m.alert[0] == '\0') {
        ERR_clear_error();
        r = SSL_do_handshake(m.ssl);
        if (r == 1) {
            renegotiated = 1;
            break;
        }
        if (SSL_get_error(m.ssl, r) != SSL_ERROR_WANT_READ) {
            tls_peer_ssl_err(&m, "renegotiation");
            break;
        }
        if (tls_peer_flush(&m) < 0 || tls_peer_pump(&m, deadline) <= 0) {
            break;
        }
    }
    if (renegotiated) {
        obs_add(obs, cap, "ACCEPTED: the node renegotiated");
        goto out;
    }
    if (m.alert[0] == '\0') {
        obs_add(obs, cap, "no answer: %s%s", m.err, m.closed ? ", closed" : "");
        v = m.closed ? V_OK : V_FAIL;
        goto out;
    }
    obs_add(obs, cap, "refused: alert %s%s after %.3f s", m.alert, m.alert_fatal ? " (fatal)" : " (warning)",
            now_s() - t0);
    v = strcmp(m.alert, "no renegotiation") == 0 ? V_OK : V_FAIL;
    /*
     * Our OpenSSL gives up on a refused renegotiation (fatal on its side);
     * its alert is not sent, so what the node does next is its own choice.
     */
    tls_peer_drop_pending(&m);
    uint8_t junk[256];
    ssize_t k = m.closed ? 0 : recv_some(m.fd, junk, sizeof(junk), now_s() + 1.0);
    if (k == R_TIMEOUT) {
        obs_add(obs, cap, "; the node kept the connection open (harmless)");
    } else {
        obs_add(obs, cap, "; the node then %s after %.2f s",
                k == 0  ? "closed it"
                : k > 0 ? "sent more"
                        : "reset it",
                now_s() - t0);
    }
out:
    tls_peer_free(&m);
    return v;
}
