/*
 * What arrives where a ClientHello belongs: random bytes, a TLS record of
 * random bytes, the native plaintext opening on a TLS-only port. Raw
 * sockets: the node must refuse and close promptly.
 */
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clink/clink.h"
#include "tests/attacks/attacks.h"
#include "tests/attacks/raw.h"

/* Random bytes where a ClientHello belongs: the opening rule takes them for a MySQL client and refuses. */
enum verdict atk_random_bytes(char *obs, size_t cap)
{
    uint8_t junk[64];
    RAND_bytes(junk, sizeof(junk));
    junk[0] = (uint8_t)(junk[0] == 0x16 || junk[0] == 'C' ? 0x42 : junk[0]); /* not TLS, not the magic */
    int fd = tcp_connect(cfg.port);
    if (fd < 0) {
        snprintf(obs, cap, "connect: %s", strerror(-fd));
        return V_FAIL;
    }
    double t0 = now_s(), deadline = t0 + sc(2);
    enum verdict v = V_FAIL;
    if (send_all(fd, junk, sizeof(junk)) < 0 || skip_greeting(fd, deadline) < 0) {
        snprintf(obs, cap, "no greeting");
        goto out;
    }
    uint8_t h[7];
    ssize_t r = recv_full(fd, h, sizeof(h), deadline);
    if (r == (ssize_t)sizeof(h) && h[4] == 0xff) {
        obs_add(obs, cap, "MySQL ERR %u, ", (unsigned)(h[5] | h[6] << 8));
    }
    const char *how = r < 0 && r != R_TIMEOUT ? "reset" : r == 0 ? "EOF" : wait_closed(fd, deadline);
    double t = now_s() - t0;
    if (how == NULL) {
        obs_add(obs, cap, "still open after %.2f s", t);
        goto out;
    }
    obs_add(obs, cap, "closed (%s) after %.2f s", how, t);
    /* Promptly: well before the handshake timeout would have closed it. */
    v = t < cfg.hs_timeout_ms / 2000.0 ? V_OK : V_FAIL;
out:
    close(fd);
    return v;
}

/* A TLS record header, then a body of random bytes: OpenSSL must reject it, and the node close. */
enum verdict atk_random_record(char *obs, size_t cap)
{
    uint8_t rec[5 + 200] = {0x16, 0x03, 0x01, 0x00, 200};
    RAND_bytes(rec + 5, 200);
    rec[5] = 1; /* a ClientHello, of nonsense */
    int fd = tcp_connect(cfg.port);
    if (fd < 0) {
        snprintf(obs, cap, "connect: %s", strerror(-fd));
        return V_FAIL;
    }
    double t0 = now_s(), deadline = t0 + sc(2);
    enum verdict v = V_FAIL;
    if (send_all(fd, rec, sizeof(rec)) < 0 || skip_greeting(fd, deadline) < 0) {
        snprintf(obs, cap, "no greeting");
        goto out;
    }
    uint8_t a[7];
    ssize_t r = recv_full(fd, a, sizeof(a), deadline);
    if (r == (ssize_t)sizeof(a) && a[0] == 0x15) {
        obs_add(obs, cap, "alert: %s, ", SSL_alert_desc_string_long(a[6]));
    }
    const char *how = r < 0 && r != R_TIMEOUT ? "reset" : r == 0 ? "EOF" : wait_closed(fd, deadline);
    double t = now_s() - t0;
    if (how == NULL) {
        obs_add(obs, cap, "still open after %.2f s", t);
        goto out;
    }
    obs_add(obs, cap, "closed (%s) after %.2f s", how, t);
    v = t < cfg.hs_timeout_ms / 2000.0 ? V_OK : V_FAIL;
out:
    close(fd);
    return v;
}

/* The native plaintext opening (magic + HELLO) to a port that allows TLS only. */
enum verdict atk_plaintext(char *obs, size_t cap)
{
    int fd = tcp_connect(cfg.port);
    if (fd < 0) {
        snprintf(obs, cap, "connect: %s", strerror(-fd));
        return V_FAIL;
    }
    uint8_t b[8 + FRAME_HDR + 12];
    memcpy(b, PLAIN_MAGIC, 8);
    size_t n = 8 + hello_frame(b + 8);
    double t0 = now_s(), deadline = t0 + sc(2);
    enum verdict v = V_FAIL;
    uint8_t h[FRAME_HDR], p[256];
    if (send_all(fd, b, n) < 0 || skip_greeting(fd, deadline) < 0) {
        snprintf(obs, cap, "no greeting");
        goto out;
    }
    if (recv_full(fd, h, sizeof(h), deadline) != sizeof(h)) {
        obs_add(obs, cap, "no frame; ");
    } else {
        uint32_t len = get_be32(h + 4);
        size_t k = len < sizeof(p) ? len : sizeof(p);
        if (h[0] == FRAME_ERROR && len >= 4 && recv_full(fd, p, k, deadline) == (ssize_t)k) {
            int code = (int)get_be32(p);
            obs_add(obs, cap, "refused: ERROR frame %s '%.*s', ", clink_strerror(-code), (int)(k - 4),
                    (const char *)p + 4);
            v = code == CLINK_EPLAINTEXT ? V_OK : V_FAIL;
        } else {
            obs_add(obs, cap, "frame type %u; ", h[0]);
        }
    }
    const char *how = wait_closed(fd, deadline);
    if (how == NULL) {
        obs_add(obs, cap, "still open after %.2f s", now_s() - t0);
        v = V_FAIL;
    } else {
        obs_add(obs, cap, "closed (%s) after %.2f s", how, now_s() - t0);
    }
out:
    close(fd);
    return v;
}
