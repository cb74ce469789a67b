/*
 * The opening rule: classification of a client's first bytes and the
 * client-side greeting check must never crash and must agree with each other
 * (a TLS record header is never taken for the plaintext magic), and the
 * greeting's login challenge parses back to what the server put in it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/opening.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= CLINK_CLASSIFY_LEN) {
        enum clink_opening_kind k = clink__opening_classify(data, size);
        if (k == CLINK_OPENING_TLS && data[0] != 0x16) {
            abort();
        }
        if (k == CLINK_OPENING_PLAIN && (size < CLINK_PLAIN_MAGIC_LEN || memcmp(data, CLINK_PLAIN_MAGIC, 8) != 0)) {
            abort();
        }
    }
    if (size >= 5) {
        int len = clink__opening_greeting_len(data);
        if (len >= 0 && (len < 1 || len + 4 > CLINK_GREETING_MAX)) {
            abort();
        }
    }
    /* The greeting's scramble (the login challenge) from hostile bytes. */
    uint8_t scramble[20];
    if (size >= 1 && clink__opening_greeting_scramble(data + 1, size - 1, scramble) == 0 && size < 1 + 1 + 43) {
        abort(); /* shorter than a NUL-terminated version plus the fixed fields: must be refused */
    }
    /* A greeting we write parses back to the scramble it carries. */
    if (size >= 20) {
        uint8_t g[128], back[20];
        size_t n = clink__opening_greeting(g, sizeof(g), 7, data);
        if (n < 5 || clink__opening_greeting_scramble(g + 5, n - 5, back) != 0 || memcmp(back, data, 20) != 0) {
            abort();
        }
    }
    return 0;
}
