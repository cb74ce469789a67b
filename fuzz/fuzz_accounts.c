/*
 * MySQL's REQUIRE grammar and host patterns, from hostile text: whatever
 * clink_accounts_add accepts must check logins without crashing, and an
 * account that requires anything must refuse a plaintext login.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/accounts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[1024];
    if (size >= sizeof(text)) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    /* The first line (if any) is a host pattern; the rest the REQUIRE clause. */
    char *nl = strchr(text, '\n');
    const char *host = NULL, *require = text;
    if (nl != NULL) {
        *nl = '\0';
        host = text;
        require = nl + 1;
    }
    struct clink_accounts *acc;
    if (clink_accounts_new(NULL, &acc) != 0) {
        abort();
    }
    char err[256];
    struct clink_account_spec s = {.user = "u", .host = host, .require = require};
    if (clink_accounts_add(acc, &s, err, sizeof(err)) == 0) {
        char why[256];
        struct clink_login l = {.user = "u", .host = "10.1.2.3"};
        int plain = clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why));
        l.tls = 1;
        l.cipher = "TLS_AES_128_GCM_SHA256";
        int tls = clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why));
        /* Plaintext is never let in where TLS is not. */
        if (plain == 0 && tls != 0) {
            abort();
        }
    } else if (err[0] == '\0') {
        abort(); /* every refusal says why */
    }
    clink_accounts_free(acc);
    return 0;
}
