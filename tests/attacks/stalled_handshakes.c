/*
 * Handshakes begun and never finished: a few hung after their ClientHello
 * (slowloris), and a storm of thousands. The node must close each by its
 * handshake timeout and keep serving everyone else meanwhile.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/attacks/attacks.h"
#include "tests/attacks/peer.h"
#include "tests/attacks/raw.h"

/* A verified connection made now, with one echo: seconds it took, or -1 (err says why). */
static double newcomer(uint32_t timeout_ms, char *err, size_t errlen)
{
    double t0 = now_s();
    struct clink_conn *c = NULL;
    if (dial(cfg.port, timeout_ms, &c, err, errlen) != 0) {
        return -1;
    }
    int ret = echo_once(c, 7, timeout_ms, err, errlen);
    clink_conn_close(c);
    return ret == 0 ? now_s() - t0 : -1;
}

/* A ClientHello, then silence (slowloris), on several connections at once. */
#define SLOW_CONNS 8
enum verdict atk_slowloris(char *obs, size_t cap)
{
    struct tls_peer m[SLOW_CONNS];
    struct peer_opts o = {.cert = cfg.cert, .key = cfg.key};
    enum verdict v = V_OK;
    double t0 = now_s(), sent[SLOW_CONNS];
    int n = 0;
    for (; n < SLOW_CONNS; n++) {
        sent[n] = now_s();
        if (peer_prepare(&m[n], &o) < 0 || peer_connect(&m[n], cfg.port) < 0) {
            snprintf(obs, cap, "setup: %s", m[n].err);
            tls_peer_free(&m[n]);
            v = V_FAIL;
            goto out;
        }
        ERR_clear_error();
        CLINK_IGNORE(SSL_do_handshake(m[n].ssl));
        if (tls_peer_flush(&m[n]) < 0) {
            snprintf(obs, cap, "send: %s", m[n].err);
            n++;
            v = V_FAIL;
            goto out;
        }
    }
    /* While they hang: a new client is served at once (the silent ones hold no worker). */
    sleep_s(0.2);
    char err[256] = "";
    double nc = newcomer((uint32_t)(sc(1) * 1000), err, sizeof(err));
    if (nc < 0) {
        obs_add(obs, cap, "a new client during it failed: %s; ", err);
        v = V_FAIL;
    } else {
        obs_add(obs, cap, "a new client during it served in %.3f s; ", nc);
    }
    double tmin = 1e9, tmax = 0, deadline = t0 + cfg.hs_timeout_ms / 1000.0 + sc(2);
    int open = 0;
    for (int i = 0; i < n; i++) {
        /* Read what the node sent (its flight) without answering, until it hangs up. */
        uint8_t junk[4096];
        ssize_t r;
        while ((r = recv_some(m[i].fd, junk, sizeof(junk), deadline)) > 0) {
        }
        if (r == R_TIMEOUT) {
            open++;
            continue;
        }
        double t = now_s() - sent[i];
        tmin = t < tmin ? t : tmin;
        tmax = t > tmax ? t : tmax;
    }
    double tmo = cfg.hs_timeout_ms / 1000.0;
    if (open > 0) {
        obs_add(obs, cap, "%d of %d still open after %.2f s", open, n, now_s() - t0);
        v = V_FAIL;
    } else {
        obs_add(obs, cap, "%d hung handshakes closed after %.2f-%.2f s (handshake_timeout_ms %u)", n, tmin, tmax,
                cfg.hs_timeout_ms);
        if (tmin < tmo * 0.95 || tmax > tmo + sc(1)) {
            v = V_FAIL;
        }
    }
out:
    for (int i = 0; i < n; i++) {
        tls_peer_free(&m[i]);
    }
    return v;
}

/* One ClientHello, as bytes (a real one: the storm sends parts of it). */
static size_t client_hello(uint8_t *out, size_t cap)
{
    struct tls_peer m;
    struct peer_opts o = {0};
    size_t n = 0;
    if (peer_prepare(&m, &o) == 0) {
        ERR_clear_error();
        CLINK_IGNORE(SSL_do_handshake(m.ssl));
        uint8_t *p;
        n = tls_peer_pending(&m, &p);
        n = n < cap ? n : cap;
        memcpy(out, p, n);
    }
    tls_peer_free(&m);
    return n;
}

/*
 * The node's view of our sockets, from /proc/net/tcp: among its established
 * sockets whose peer port is marked in ours[], those with unread bytes
 * (queued for a handshake slot, or not accepted yet) and those without
 * (being read: in a handshake).
 */
static int node_sockets(const uint8_t *ours, unsigned *reading, unsigned *unread)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL) {
        return -1;
    }
    char line[512];
    *reading = *unread = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned laddr, lport, raddr, rport, st, txq, rxq;
        if (sscanf(line, " %*u: %8x:%4x %8x:%4x %2x %8x:%8x", &laddr, &lport, &raddr, &rport, &st, &txq, &rxq) != 7) {
            continue;
        }
        if (lport != cfg.port || st != 1 /* ESTABLISHED */ || !ours[rport]) {
            continue;
        }
        if (rxq > 0) {
            (*unread)++;
        } else {
            (*reading)++;
        }
    }
    fclose(f);
    return 0;
}

struct newcomer_run {
    pthread_t th;
    double delay; /* seconds to wait before dialling */
    double took;
    char err[256];
};

static void *newcomer_main(void *arg)
{
    struct newcomer_run *r = arg;
    sleep_s(r->delay);
    r->took = newcomer((uint32_t)((cfg.hs_timeout_ms / 1000.0 * 2 + sc(2)) * 1000), r->err, sizeof(r->err));
    return NULL;
}

/*
 * Thousands of connections that never finish a handshake: a partial
 * ClientHello, the first 3 bytes of a record header, or nothing at all.
 * Required: the node reads at most its handshake limit of them at once,
 * the bystander is unaffected, the node closes every one by its handshake
 * timeout, a client dialling 0.5 s into the storm is served, and so is one
 * afterwards, and so is a client dialling right behind the burst (it once
 * starved: admitted oldest first, it got a slot as its deadline ran out).
 */
enum verdict atk_storm(char *obs, size_t cap)
{
    unsigned n = cfg.storm;
    int *fds = malloc(n * sizeof(*fds));
    uint8_t *ours = calloc(65536, 1); /* peer ports of the storm's sockets that sent bytes */
    uint8_t ch[2048];
    size_t chlen = client_hello(ch, sizeof(ch));
    enum verdict v = V_FAIL;
    unsigned made = 0, connect_failed = 0;
    int first_err = 0;
    struct newcomer_run nr[2] = {{.delay = 0, .took = -1}, {.delay = 0.5, .took = -1}};
    int started[2] = {0, 0};
    if (fds == NULL || ours == NULL || chlen < 100) {
        snprintf(obs, cap, "setup failed");
        goto out;
    }
    double t0 = now_s();
    for (unsigned i = 0; i < n; i++) {
        int fd = tcp_connect(cfg.port);
        if (fd < 0) {
            connect_failed++;
            first_err = first_err ? first_err : -fd;
            continue;
        }
        fds[made++] = fd;
        /* The first ones all send bytes, so that every handshake slot is taken by a socket we can watch. */
        unsigned kind = i < 4 * cfg.hs_cap * cfg.workers ? i % 2 : i % 3;
        size_t len = kind == 0 ? 5 + (chlen - 5) / 2 : kind == 1 ? 3 : 0;
        if (len > 0 && send_all(fd, ch, len) == 0) {
            struct sockaddr_in a;
            socklen_t sl = sizeof(a);
            if (getsockname(fd, (struct sockaddr *)&a, &sl) == 0) {
                ours[ntohs(a.sin_port)] = 1;
            }
        }
    }
    double t_made = now_s() - t0;
    obs_add(obs, cap, "%u connections in %.2f s", made, t_made);
    if (connect_failed > 0) {
        obs_add(obs, cap, " (%u connects failed: %s)", connect_failed, strerror(first_err));
    }
    for (int i = 0; i < 2; i++) {
        started[i] = pthread_create(&nr[i].th, NULL, newcomer_main, &nr[i]) == 0;
    }
    /*
     * Looked at well before a quarter of the handshake timeout (0.5 s) has
     * passed since the first of them took their slots: from then on the
     * node evicts slow holders, and one evicted but not yet closed looked
     * like a 65th read (CI saw it once, at 0.51 s).
     */
    sleep_s(0.1);
    unsigned reading = 0, unread = 0;
    if (node_sockets(ours, &reading, &unread) < 0) {
        obs_add(obs, cap, "; cannot read /proc/net/tcp");
        goto out;
    }
    unsigned limit = cfg.hs_cap * cfg.workers;
    obs_add(obs, cap, "; at %.2f s the node reads %u of them (limit %u x %u workers), %u wait unread", now_s() - t0,
            reading, cfg.hs_cap, cfg.workers, unread);
    int held = reading <= limit && reading > 0 && unread > 0;
    /* Every one of them must be closed by the node's handshake timeout (the queued ones too). */
    double deadline = t0 + t_made + cfg.hs_timeout_ms / 1000.0 + sc(3);
    unsigned closed = 0;
    double last = 0;
    for (unsigned i = 0; i < made; i++) {
        const char *how = wait_closed(fds[i], deadline);
        if (how != NULL) {
            closed++;
            last = now_s() - t0;
        }
    }
    obs_add(obs, cap, "; the node closed %u/%u by %.2f s", closed, made, last);
    v = held && closed == made ? V_OK : V_FAIL;
out:
    for (int i = 0; i < 2; i++) {
        if (!started[i]) {
            continue;
        }
        pthread_join(nr[i].th, NULL);
        const char *when = i == 0 ? "right behind the burst" : "0.5 s into the storm";
        if (nr[i].took >= 0) {
            obs_add(obs, cap, "; a client dialling %s served in %.2f s", when, nr[i].took);
        } else {
            obs_add(obs, cap, "; a client dialling %s FAILED: %s", when, nr[i].err);
            if (i == 1) {
                v = V_FAIL;
            }
        }
    }
    for (unsigned i = 0; i < made; i++) {
        close(fds[i]);
    }
    if (v == V_OK) {
        char err[256] = "";
        double nc = newcomer((uint32_t)(sc(2) * 1000), err, sizeof(err));
        if (nc < 0) {
            obs_add(obs, cap, "; a client afterwards FAILED: %s", err);
            v = V_FAIL;
        } else {
            obs_add(obs, cap, "; a client afterwards served in %.3f s", nc);
        }
    }
    if (v == V_OK && started[0] && nr[0].took < 0) {
        /*
         * Waiting connections are admitted newest first and slot holders too
         * slow while others wait are cut off (transport/conn.c, hs_release,
         * clink__conn_hs_evict): a client right behind a burst must not
         * starve behind it. It once did.
         */
        obs_add(obs, cap, " (starved behind the queue)");
        v = V_FAIL;
    }
    free(fds);
    free(ours);
    return v;
}
