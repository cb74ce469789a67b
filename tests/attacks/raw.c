#include "tests/attacks/raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clink/clink.h"
#include "tests/attacks/harness.h"

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}

uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void frame_hdr(uint8_t h[FRAME_HDR], uint8_t type, uint16_t method, uint32_t len, uint64_t id)
{
    h[0] = type;
    h[1] = 0;
    put_be16(h + 2, method);
    put_be32(h + 4, len);
    put_be32(h + 8, (uint32_t)(id >> 32));
    put_be32(h + 12, (uint32_t)id);
}

size_t hello_frame(uint8_t out[FRAME_HDR + 12])
{
    frame_hdr(out, FRAME_HELLO, 0, 12, 0);
    put_be16(out + 16, 1);
    put_be16(out + 18, 1);
    put_be32(out + 20, 4u << 20);
    put_be32(out + 24, 0);
    return FRAME_HDR + 12;
}

size_t echo_request(uint8_t out[FRAME_HDR + 16], uint64_t id)
{
    frame_hdr(out, FRAME_REQUEST, ECHO_METHOD, 16, id);
    for (int i = 0; i < 16; i++) {
        out[FRAME_HDR + i] = (uint8_t)(id * 31 + (uint64_t)i);
    }
    return FRAME_HDR + 16;
}

int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    /* Each send its own segment, at once: what the node sees is what we wrote, when we wrote it. */
    int one = 1;
    CLINK_IGNORE(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

ssize_t recv_some(int fd, void *buf, size_t n, double deadline)
{
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) {
            return R_TIMEOUT;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r == 0) {
            continue;
        }
        ssize_t got = recv(fd, buf, n, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        return got < 0 ? R_RESET : got;
    }
}

ssize_t recv_full(int fd, void *buf, size_t n, double deadline)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv_some(fd, (uint8_t *)buf + got, n - got, deadline);
        if (r <= 0) {
            return r;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int skip_greeting(int fd, double deadline)
{
    uint8_t h[5], rest[GREETING_MAX];
    if (recv_full(fd, h, 5, deadline) != 5) {
        return -1;
    }
    size_t len = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16;
    if (h[3] != 0 || h[4] != 10 || len < 1 || len + 4 > GREETING_MAX) {
        return -1;
    }
    return recv_full(fd, rest, len - 1, deadline) == (ssize_t)(len - 1) ? 0 : -1;
}

const char *wait_closed(int fd, double deadline)
{
    uint8_t junk[4096];
    for (;;) {
        ssize_t r = recv_some(fd, junk, sizeof(junk), deadline);
        if (r == 0) {
            return "EOF";
        }
        if (r == R_TIMEOUT) {
            return NULL;
        }
        if (r < 0) {
            return "reset";
        }
    }
}
