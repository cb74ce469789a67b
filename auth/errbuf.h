/*
 * Internal to auth/: the error text a call writes into its caller's buffer
 * (char *err, size_t errlen), for the auth code that reports errors this way
 * from more than one file.
 */
#ifndef CLINK_AUTH_ERRBUF_H
#define CLINK_AUTH_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static inline void clink__set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void clink__set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

#endif
