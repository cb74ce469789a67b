/*
 * The open files limit, a helper the program calls (the library never
 * changes process limits behind its back). Every connection is a
 * descriptor: under a low soft limit (1024 is common) accept fails with
 * EMFILE long before max_connections and max_node_links are reached, and an
 * administrator's login fails with the rest. Raise the soft limit to the
 * hard one (which only root may raise), and say when even that is short of
 * what the limits allow.
 */
#include "server/server_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int clink_server_raise_open_files(const struct clink_server *srv, char *msg, size_t cap)
{
    if (srv == NULL || msg == NULL || cap == 0) {
        return -1;
    }
    msg[0] = '\0';
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return 0;
    }
    size_t n = 0;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            n += (size_t)snprintf(msg, cap, "open files limit raised from %llu to %llu (the hard limit)\n",
                                  (unsigned long long)was, (unsigned long long)rl.rlim_cur);
        } else {
            n += (size_t)snprintf(msg, cap, "cannot raise the open files limit from %llu to %llu: %s\n",
                                  (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = was;
        }
    }
    const struct clink_config *cfg = srv->cfg;
    unsigned workers = clink_node_workers(srv->node);
    /* Each worker holds a ring and an eventfd; listeners, the ops port and files read on reload take a few more. */
    uint64_t need = (uint64_t)cfg->max_connections + 1 + cfg->max_node_links + 2ull * workers + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        if (n < cap) {
            snprintf(msg + n, cap - n,
                     "warning: the open files limit (%llu) is below what max_connections (%u, and 1 for an "
                     "administrator) and max_node_links (%u) may need (%llu): connections past it fail with EMFILE; "
                     "raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower the limits\n",
                     (unsigned long long)rl.rlim_cur, cfg->max_connections, cfg->max_node_links,
                     (unsigned long long)need);
        }
        return -1;
    }
    return 0;
}
