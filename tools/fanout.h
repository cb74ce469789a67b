/*
 * clink-node's fan-out method (CLINK_TOOL_FANOUT): an aggregator's query.
 * The request goes to every leaf pool as an echo; once all have answered,
 * the caller gets the first leaf's reply, or an error naming the first leaf
 * that failed. The leaves' answers arrive on whichever worker owns their
 * connection, and the answer is given from there.
 */
#ifndef CLINK_TOOLS_FANOUT_H
#define CLINK_TOOLS_FANOUT_H

#include "clink/clink.h"

#define FANOUT_MAX_LEAVES 256

struct fanout_leaves {
    size_t n;
    struct clink_pool *pools[FANOUT_MAX_LEAVES];
    char names[FANOUT_MAX_LEAVES][64];
};

/* The handler; user: a struct fanout_leaves *const * (NULL until the cluster is up). */
void fanout_handler(struct clink_req *req, void *user);

#endif
