/*
 * The config parser on arbitrary text: it must not crash, and whatever it
 * accepts must satisfy the invariants the node relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    static struct clink_config c;
    char err[512];
    if (clink_config_parse(text, "/", &c, err, sizeof(err)) == 0) {
        if (c.tls_version != CLINK_TLS_1_3 && c.tls_version != CLINK_TLS_1_2) {
            abort();
        }
        if (c.max_frame != 0 && (c.max_frame < 4096 || c.max_frame > (64u << 20))) {
            abort();
        }
        if (c.basedir[0] != '/') {
            abort();
        }
    } else if (err[0] == '\0') {
        abort(); /* every refusal says why */
    }
    free(text);
    return 0;
}
