/*
 * Listening: the node's own port (clink_node_listen) and the HTTPS port
 * (clink_node_listen_https), both bound before start, and the ports the
 * kernel gave them. Worker 0 takes the sockets over at start (node.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "transport/node_int.h"

/* A listening socket on addr:port; *bound gets the port (for port 0: the one the kernel chose). */
static int bind_listener(const char *addr, uint16_t port, int *fd_out, uint16_t *bound)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        sl = sizeof(*a4);
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        sl = sizeof(*a6);
    } else {
        return -CLINK_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    CLINK_IGNORE(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        *bound = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    }
    *fd_out = fd;
    return 0;
}

int clink_node_listen(struct clink_node *node, const char *addr, uint16_t port)
{
    if (node == NULL || addr == NULL || atomic_load(&node->started) || node->listen_fd >= 0) {
        return -CLINK_EINVAL;
    }
    return bind_listener(addr, port, &node->listen_fd, &node->port);
}

int clink_node_listen_https(struct clink_node *node, const char *addr, uint16_t port, struct clink_tls_ctx *tls,
                            clink_handler_fn fn, void *user)
{
    if (node == NULL || addr == NULL || tls == NULL || fn == NULL || atomic_load(&node->started) ||
        node->https_fd >= 0) {
        return -CLINK_EINVAL;
    }
    int ret = bind_listener(addr, port, &node->https_fd, &node->https_port);
    if (ret < 0) {
        return ret;
    }
    clink_tls_ctx_ref(tls);
    node->https_tls = tls;
    node->https_fn = fn;
    node->https_user = user;
    return 0;
}

uint16_t clink_node_https_port(const struct clink_node *node)
{
    return node ? node->https_port : 0;
}

uint16_t clink_node_port(const struct clink_node *node)
{
    return node ? node->port : 0;
}
