#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "clink/error.h"

Test(error, every_code_has_message_and_kind)
{
    for (int e = CLINK_EFIRST_ + 1; e < CLINK_ELAST_; e++) {
        const char *m = clink_strerror(-e);

        cr_assert_not_null(m, "code %d has no message", e);
        cr_assert_str_neq(m, "unknown clink error");
        cr_assert_neq(clink_err_kind_of(-e), CLINK_KIND_OK);
    }
}

Test(error, errno_passes_through)
{
    cr_assert_str_eq(clink_strerror(-ECONNRESET), strerror(ECONNRESET));
    cr_assert_eq(clink_err_kind_of(-ECONNRESET), CLINK_KIND_IO);
    cr_assert_eq(clink_err_kind_of(0), CLINK_KIND_OK);
    cr_assert_eq(clink_err_kind_of(5), CLINK_KIND_OK);
}

Test(error, kinds_are_specific)
{
    cr_assert_eq(clink_err_kind_of(-CLINK_EVERIFY), CLINK_KIND_TLS);
    cr_assert_eq(clink_err_kind_of(-CLINK_ECLOSED), CLINK_KIND_CLOSED);
    cr_assert_eq(clink_err_kind_of(-CLINK_EFRAMETOOBIG), CLINK_KIND_PROTO);
    cr_assert_str_eq(clink_err_kind_name(CLINK_KIND_TLS), "TLS");
    cr_assert_str_eq(clink_strerror(-99999), "unknown clink error");
}
