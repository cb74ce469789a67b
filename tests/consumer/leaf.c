/*
 * An outside program's leaf, on the installed clink only: a node from a
 * memsql.cnf-style file that answers method 1 with what it was sent, until
 * SIGINT or SIGTERM. Prints its port once it listens.
 *
 *   consumer_leaf CONFIG
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include <clink/clink.h>

static void echo(struct clink_req *req, void *user)
{
    (void)user;
    size_t n;
    const uint8_t *p = clink_req_data(req, &n);
    struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
    CLINK_IGNORE(clink_req_respond(req, &iov, 1));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: consumer_leaf CONFIG\n");
        return 2;
    }
    sigset_t stop; /* blocked before any thread exists, then waited for */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    struct clink_server *srv = NULL;
    char err[512] = "";
    if (clink_server_new_from_config(argv[1], NULL, &srv, err, sizeof(err)) < 0 ||
        clink_server_register(srv, 1, echo, NULL) < 0 || clink_server_start(srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "consumer_leaf: %s\n", err);
        clink_server_free(srv);
        return 1;
    }
    printf("%u\n", clink_server_port(srv));
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    clink_server_free(srv);
    return 0;
}
