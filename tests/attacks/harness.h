/*
 * What every attack shares: the settings from the command line, a clock,
 * the client node that dials the nodes under attack, and the bystander: one
 * verified connection to the node under attack making echo calls back to
 * back, whose calls, failures and latency each attack's line reports.
 */
#ifndef CLINK_TESTS_ATTACKS_HARNESS_H
#define CLINK_TESTS_ATTACKS_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "clink/clink.h"

struct settings {
    uint16_t port, tls12_port, fd_port;
    int fd_pid;
    const char *fd_log;
    const char *cert, *key, *ca, *other_cert, *other_key;
    unsigned hs_timeout_ms; /* the node's handshake_timeout_ms (attacks.sh sets it short) */
    unsigned workers;       /* the node's workers */
    unsigned hs_cap;        /* its max_handshakes_per_worker (clink-node: the library default) */
    unsigned storm;
    unsigned scale; /* $CLINK_TEST_TIMEOUT_SCALE: sanitizers are slower */
    const char *only;
};
extern struct settings cfg;
extern int strict; /* --strict: a known failure fails the run too */

extern struct clink_node *client;         /* dials for the bystanders and the newcomers */
extern int attacks_failed, attacks_known; /* attacks whose expected outcome did not happen */
extern atomic_ulong bystander_failures;   /* bystander calls that failed, over the whole run */

double now_s(void);
void sleep_s(double s);
/* Seconds, scaled for sanitizer builds. */
double sc(double s);

/* A verified connection to the node on port, through the client node. */
int dial(uint16_t port, uint32_t timeout_ms, struct clink_conn **out, char *err, size_t errlen);
/* One echo call over conn, its payload checked. */
int echo_once(struct clink_conn *conn, uint64_t n, uint32_t deadline_ms, char *err, size_t errlen);

struct bystander {
    const char *node;
    uint16_t port;
    struct clink_conn *conn;
    pthread_t thread;
    int running;
    atomic_int stop;
    atomic_ulong seq; /* calls finished */
    pthread_mutex_t mu;
    uint32_t *lat_us; /* successful calls of the window */
    size_t n, cap;
    unsigned long calls, failed; /* in the window */
    char first_error[200];
};

uint32_t bystander_deadline_ms(void);
int bystander_start(struct bystander *b, const char *node, uint16_t port);
void bystander_stop(struct bystander *b);

enum verdict {
    V_FAIL = 0,
    V_OK = 1,
    V_KNOWN = 2, /* a node bug we found and reported: printed as such, see --strict */
};

/* An attack: what it observed goes into obs (cap bytes). */
typedef enum verdict (*attack_fn)(char *obs, size_t cap);

/* Run fn while b calls its node, unless --only leaves it out, and print its line. */
void run(struct bystander *b, const char *name, attack_fn fn);

/* Append to an observation. */
void obs_add(char *obs, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
