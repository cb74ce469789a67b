/*
 * clink logging hook. The library never prints: it calls the function set in
 * the node options, after checking the level, so a disabled level costs no
 * formatting.
 */
#ifndef CLINK_LOG_H
#define CLINK_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include "clink/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum clink_log_level {
    CLINK_LOG_ERROR = 1,
    CLINK_LOG_WARN,
    CLINK_LOG_INFO,
    CLINK_LOG_DEBUG,
};

/*
 * module: "transport", "tls", ...; conn_id: 0 when not about a connection.
 * Called on whichever thread logs (usually a worker): must be thread-safe and
 * must not call back into clink.
 */
typedef void (*clink_log_fn)(void *user, enum clink_log_level level, const char *module, uint64_t conn_id,
                             const char *fmt, va_list ap);

/* A ready-made hook that writes one line per message to stderr. */
CLINK_API void clink_log_stderr(void *user, enum clink_log_level level, const char *module, uint64_t conn_id,
                                const char *fmt, va_list ap);

CLINK_API const char *clink_log_level_name(enum clink_log_level level);

#ifdef __cplusplus
}
#endif
#endif
