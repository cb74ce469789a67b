/*
 * Frame and HELLO decoders: whatever the bytes, decoding must not crash, a
 * header that decodes must re-encode to the same bytes, and a length the
 * decoder accepted must respect max_frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "transport/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint32_t max_frame = 1u << 20;
    size_t off = 0;
    while (size - off >= CLINK_FRAME_HDR) {
        struct clink_frame_hdr h;
        int ret = clink__frame_decode(data + off, max_frame, &h);
        if (ret < 0) {
            if (ret != -CLINK_EPROTO && ret != -CLINK_EFRAMETOOBIG) {
                abort();
            }
            break;
        }
        if (h.length > max_frame) {
            abort();
        }
        uint8_t again[CLINK_FRAME_HDR];
        clink__frame_encode(again, &h);
        if (memcmp(again, data + off, CLINK_FRAME_HDR) != 0) {
            abort();
        }
        off += CLINK_FRAME_HDR;
        size_t avail = size - off;
        size_t n = h.length < avail ? h.length : avail;
        if (h.type == CLINK_FRAME_HELLO) {
            struct clink_hello hello;
            if (clink__hello_decode(data + off, n, &hello) == 0) {
                struct clink_hello ours = {.min_version = 1, .max_version = 1};
                int v = clink__hello_pick(&ours, &hello);
                if (v >= 0 && (v < hello.min_version || v > hello.max_version)) {
                    abort();
                }
            }
        }
        off += n;
    }
    return 0;
}
