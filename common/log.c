#include "common/log_int.h"

#include <stdio.h>
#include <time.h>

const char *clink_log_level_name(enum clink_log_level level)
{
    switch (level) {
    case CLINK_LOG_ERROR:
        return "error";
    case CLINK_LOG_WARN:
        return "warn";
    case CLINK_LOG_INFO:
        return "info";
    case CLINK_LOG_DEBUG:
        return "debug";
    }
    return "?";
}

void clink__log(const struct clink__logger *lg, enum clink_log_level level, const char *module, uint64_t conn_id,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lg->fn(lg->user, level, module, conn_id, fmt, ap);
    va_end(ap);
}

void clink_log_stderr(void *user, enum clink_log_level level, const char *module, uint64_t conn_id, const char *fmt,
                      va_list ap)
{
    (void)user;
    char line[1024];
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n < 0) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* One fprintf per line so concurrent workers do not interleave within a line. */
    if (conn_id != 0) {
        fprintf(stderr, "%lld.%03ld clink %s %s conn=%llu: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
                clink_log_level_name(level), module, (unsigned long long)conn_id, line);
    } else {
        fprintf(stderr, "%lld.%03ld clink %s %s: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
                clink_log_level_name(level), module, line);
    }
}
