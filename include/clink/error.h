/*
 * clink error codes.
 *
 * Every fallible clink function returns an int: 0 (or a count) on success and
 * a negative value on failure. A failure is either -errno (so that an io_uring
 * completion's res passes through unchanged) or -CLINK_E* (values from 1000
 * up, beyond any errno). There is no global or thread-local error state.
 */
#ifndef CLINK_ERROR_H
#define CLINK_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CLINK_API      __attribute__((visibility("default")))
#define CLINK_MUST_USE __attribute__((warn_unused_result))
#else
#define CLINK_API
#define CLINK_MUST_USE
#endif

/*
 * Deliberately ignore the result of a CLINK_MUST_USE function. gcc rejects a
 * plain (void) cast under -Werror; say why at the call site.
 */
#define CLINK_IGNORE(x)                                                                                                \
    do {                                                                                                               \
        if ((x)) {                                                                                                     \
        }                                                                                                              \
    } while (0)

/* X(name, kind, message). Add a code here and it gets a message and a kind. */
#define CLINK_ERRORS(X)                                                                                                \
    X(CLINK_EINVAL, USAGE, "invalid argument")                                                                         \
    X(CLINK_ENOMEM, INTERNAL, "out of memory")                                                                         \
    X(CLINK_EAGAIN, AGAIN, "resource temporarily full, try again")                                                     \
    X(CLINK_ECLOSED, CLOSED, "connection closed")                                                                      \
    X(CLINK_ESHUTDOWN, CLOSED, "node is shutting down")                                                                \
    X(CLINK_EGOAWAY, CLOSED, "connection going away, call not started")                                                \
    X(CLINK_ETIMEDOUT, IO, "deadline expired")                                                                         \
    X(CLINK_ECANCELED, USAGE, "call canceled")                                                                         \
    X(CLINK_EPROTO, PROTO, "protocol violation by peer")                                                               \
    X(CLINK_EFRAMETOOBIG, PROTO, "frame larger than the negotiated maximum")                                           \
    X(CLINK_EVERSION, PROTO, "no protocol version in common with peer")                                                \
    X(CLINK_ENOMETHOD, REMOTE, "no handler for method on peer")                                                        \
    X(CLINK_EREMOTE, REMOTE, "handler on peer returned an error")                                                      \
    X(CLINK_ETLS, TLS, "TLS failure")                                                                                  \
    X(CLINK_EVERIFY, TLS, "peer certificate verification failed")                                                      \
    X(CLINK_EALPN, TLS, "peer does not speak the clink protocol (ALPN)")                                               \
    X(CLINK_EPLAINTEXT, AUTH, "plaintext refused by configuration")                                                    \
    X(CLINK_EACCESS, AUTH, "access denied")                                                                            \
    X(CLINK_EUNAVAIL, CLOSED, "peer unavailable")                                                                      \
    X(CLINK_ECONFIG, USAGE, "bad configuration")                                                                       \
    X(CLINK_ENOTSUP, USAGE, "not supported on this host")                                                              \
    X(CLINK_EHANDSHAKE_TIMEOUT, IO, "opening handshake timed out")                                                     \
    X(CLINK_EINTERNAL, INTERNAL, "internal error")                                                                     \
    X(CLINK_EKTLS, TLS, "kTLS offload required but not possible")                                                      \
    X(CLINK_ETOOMANY, AGAIN, "too many connections")                                                                   \
    X(CLINK_EWOULDBLOCK, USAGE,                                                                                        \
      "blocking call on a worker thread: use the asynchronous form (clink_call_start, clink_connect, "                 \
      "clink_pool_call_start, clink_cluster_fanout_start)")                                                            \
    X(CLINK_ERECYCLED, AGAIN, "connection recycled at its key-usage or age limit: stream ended, retry it")

enum clink_err {
    CLINK_EFIRST_ = 999,
#define CLINK_X_ENUM(name, kind, msg) name,
    CLINK_ERRORS(CLINK_X_ENUM)
#undef CLINK_X_ENUM
        CLINK_ELAST_
};

/* What a caller can branch on. */
enum clink_err_kind {
    CLINK_KIND_OK = 0,
    CLINK_KIND_IO,       /* system or network failure; -errno values are IO too */
    CLINK_KIND_CLOSED,   /* the connection or node is gone */
    CLINK_KIND_AGAIN,    /* a queue was full: retry later */
    CLINK_KIND_PROTO,    /* the peer broke the wire protocol */
    CLINK_KIND_TLS,      /* handshake, verification or record failure */
    CLINK_KIND_AUTH,     /* refused by policy */
    CLINK_KIND_REMOTE,   /* the peer's handler answered with an error */
    CLINK_KIND_USAGE,    /* the caller's mistake or configuration */
    CLINK_KIND_INTERNAL, /* a bug or resource exhaustion */
};

/*
 * Message for a return value: negative or positive CLINK_E* codes and errno
 * values are all accepted. Thread: any. Returns a static string.
 */
CLINK_API const char *clink_strerror(int err);

/* Category of a return value (0 and positive counts are CLINK_KIND_OK). Thread: any. */
CLINK_API enum clink_err_kind clink_err_kind_of(int err);

/* Name of a kind, e.g. "TLS". Thread: any. */
CLINK_API const char *clink_err_kind_name(enum clink_err_kind kind);

#ifdef __cplusplus
}
#endif
#endif
