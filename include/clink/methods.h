/*
 * The methods clink-node answers, which clink-bench and clink-status call:
 * an embedder's own node that answers CLINK_TOOL_ECHO and CLINK_TOOL_SINK
 * can be measured by clink-bench. The transport knows nothing of these ids;
 * they are a contract between programs, kept here so that no program
 * includes another's files.
 */
#ifndef CLINK_METHODS_H
#define CLINK_METHODS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CLINK_TOOL_ECHO 1 /* answers with the request payload */
/* 2 was a status method: every node now answers CLINK_METHOD_STATUS itself. */
#define CLINK_TOOL_SINK   3 /* answers with an empty payload (one-way streaming) */
#define CLINK_TOOL_POOLS  4 /* an aggregator's pools: clink_cluster_status_format (text) */
#define CLINK_TOOL_FANOUT 5 /* an aggregator's query: echo on every leaf; answers with the first leaf's reply */

/* Split "host:port" or "[v6]:port". Returns 0 or -1. host gets a NUL-terminated copy. */
static inline int clink_tool_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= cap) {
            return -1;
        }
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= cap) {
            return -1;
        }
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *endp;
    long p = strtol(colon + 1, &endp, 10);
    if (*endp != '\0' || p < 0 || p > 65535 || colon[1] == '\0') {
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

#endif
