/*
 * The opening rule: classification of a client's first bytes and the
 * client-side greeting check must never crash and must agree with each other
 * (a TLS record header is never taken for the plaintext magic).
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
    return 0;
}
