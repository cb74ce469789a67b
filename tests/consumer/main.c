/* Smoke test for an installed clink: headers found, library links and runs. */
#include <stdio.h>

#include <clink/auth.h>
#include <clink/error.h>

int main(void)
{
    const char *msg = clink_strerror(-1000 - 1);
    if (msg == NULL) {
        fprintf(stderr, "clink_strerror returned NULL\n");
        return 1;
    }
    printf("clink_strerror(-1001): %s\n", msg);
    return 0;
}
