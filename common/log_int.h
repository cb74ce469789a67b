/* Internal logging: check the level, then format through the user's hook. */
#ifndef CLINK_COMMON_LOG_INT_H
#define CLINK_COMMON_LOG_INT_H

#include "clink/log.h"

struct clink__logger {
    clink_log_fn fn;
    void *user;
    enum clink_log_level level;
};

void clink__log(const struct clink__logger *lg, enum clink_log_level level, const char *module, uint64_t conn_id,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define CLINK_LOG(lg, lvl, mod, id, ...)                                                                               \
    do {                                                                                                               \
        if ((lg)->fn != NULL && (lvl) <= (lg)->level) {                                                                \
            clink__log((lg), (lvl), (mod), (id), __VA_ARGS__);                                                         \
        }                                                                                                              \
    } while (0)

#endif
