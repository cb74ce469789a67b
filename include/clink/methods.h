/*
 * The methods clink-node answers, which clink-bench and clink-status call:
 * an embedder's own node that answers CLINK_TOOL_ECHO and CLINK_TOOL_SINK
 * (and, for the stream scenarios, the stream method CLINK_TOOL_PRODUCE) can
 * be measured by clink-bench. The transport knows nothing of these ids;
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
/*
 * A stream method (clink/stream.h), server-streaming: the opening message
 * (CLINK_TOOL_PRODUCE_LEN bytes, clink_tool_produce_req) asks for `total`
 * bytes in messages of `msg` bytes (the last one shorter if msg does not
 * divide total); byte k of every message is (uint8_t)k. The node keeps a few
 * messages in flight as credit allows and ends its direction after the last.
 * The stream fails (clink_stream_fail, with the reason) on a bad request: a
 * wrong length, msg 0 or past CLINK_DEFAULT_MAX_MESSAGE, or a msg larger than
 * the opener accepts (its max_message, three quarters of its stream window).
 */
#define CLINK_TOOL_PRODUCE     6
#define CLINK_TOOL_PRODUCE_LEN 12

/* [out] out: the opening message of CLINK_TOOL_PRODUCE (big-endian total, then msg). */
static inline void clink_tool_produce_req(uint8_t out[CLINK_TOOL_PRODUCE_LEN], uint64_t total, uint32_t msg)
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(total >> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++) {
        out[8 + i] = (uint8_t)(msg >> (24 - 8 * i));
    }
}

/* Read an opening message of CLINK_TOOL_PRODUCE. Returns 0, or -1 if it has the wrong length. */
static inline int clink_tool_produce_parse(const uint8_t *p, size_t len, uint64_t *total, uint32_t *msg)
{
    if (len != CLINK_TOOL_PRODUCE_LEN) {
        return -1;
    }
    *total = 0;
    *msg = 0;
    for (int i = 0; i < 8; i++) {
        *total = *total << 8 | p[i];
    }
    for (int i = 0; i < 4; i++) {
        *msg = *msg << 8 | p[8 + i];
    }
    return 0;
}

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
