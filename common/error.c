#include "clink/error.h"

#include <string.h>

/*
 * The switch is over the enum type with no default, so -Wswitch (part of
 * -Wall, an error under -Werror) fails the build when a code lacks a message.
 */
static const char *clink_message(enum clink_err e)
{
    switch (e) {
    case CLINK_EFIRST_:
    case CLINK_ELAST_:
        return NULL;
#define CLINK_X_MSG(name, kind, msg)                                                                                   \
    case name:                                                                                                         \
        return msg;
        CLINK_ERRORS(CLINK_X_MSG)
#undef CLINK_X_MSG
    }
    return NULL;
}

static enum clink_err_kind clink_kind(enum clink_err e)
{
    switch (e) {
    case CLINK_EFIRST_:
    case CLINK_ELAST_:
        return CLINK_KIND_INTERNAL;
#define CLINK_X_KIND(name, kind, msg)                                                                                  \
    case name:                                                                                                         \
        return CLINK_KIND_##kind;
        CLINK_ERRORS(CLINK_X_KIND)
#undef CLINK_X_KIND
    }
    return CLINK_KIND_INTERNAL;
}

const char *clink_strerror(int err)
{
    if (err < 0) {
        err = -err;
    }
    if (err == 0) {
        return "success";
    }
    if (err > CLINK_EFIRST_ && err < CLINK_ELAST_) {
        return clink_message((enum clink_err)err);
    }
    if (err < CLINK_EFIRST_) {
        /* strerror's buffer is static per call on glibc for known codes. */
        return strerror(err);
    }
    return "unknown clink error";
}

enum clink_err_kind clink_err_kind_of(int err)
{
    if (err >= 0) {
        return CLINK_KIND_OK;
    }
    err = -err;
    if (err > CLINK_EFIRST_ && err < CLINK_ELAST_) {
        return clink_kind((enum clink_err)err);
    }
    return err < CLINK_EFIRST_ ? CLINK_KIND_IO : CLINK_KIND_INTERNAL;
}

const char *clink_err_kind_name(enum clink_err_kind kind)
{
    switch (kind) {
    case CLINK_KIND_OK:
        return "OK";
    case CLINK_KIND_IO:
        return "IO";
    case CLINK_KIND_CLOSED:
        return "CLOSED";
    case CLINK_KIND_AGAIN:
        return "AGAIN";
    case CLINK_KIND_PROTO:
        return "PROTO";
    case CLINK_KIND_TLS:
        return "TLS";
    case CLINK_KIND_AUTH:
        return "AUTH";
    case CLINK_KIND_REMOTE:
        return "REMOTE";
    case CLINK_KIND_USAGE:
        return "USAGE";
    case CLINK_KIND_INTERNAL:
        return "INTERNAL";
    }
    return "?";
}
