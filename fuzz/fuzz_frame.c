/*
 * The frame header decoder (transport/frame.c), on a stream of frames read
 * the way native.c's input reads them: header, then `length` payload
 * bytes, until a header is refused or the bytes run out.
 *
 * Properties: the decoder's verdict equals the rules of docs/protocol.md
 * (section 3, written out again below as an independent oracle); a header it
 * accepts re-encodes to the same 16 bytes; an accepted length is within
 * max_frame and what the type allows, which is what native.c's handlers rely
 * on (an ERROR's u32 code, a PING's 8 bytes echoed, a HELLO that fits
 * struct clink_hello); a HELLO payload decodes without reading past its
 * length (exact-size copies) and, when it decodes, re-encodes to itself.
 * fuzz_hello.c works on HELLO payloads alone.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "fuzz/fuzz.h"
#include "transport/frame.h"

/* docs/protocol.md, "Frames": 0, -CLINK_EPROTO or -CLINK_EFRAMETOOBIG, from the raw bytes. */
static int spec_verdict(const uint8_t *b, uint32_t max_frame)
{
    uint8_t type = b[0], flags = b[1];
    uint16_t method = (uint16_t)(b[2] << 8 | b[3]);
    uint32_t len = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
    int id_zero = 1;
    for (int i = 8; i < 16; i++) {
        id_zero &= b[i] == 0;
    }
    if (flags != 0 || (type != CLINK_FRAME_REQUEST && method != 0)) {
        return -CLINK_EPROTO;
    }
    switch (type) {
    case CLINK_FRAME_HELLO:
        return id_zero && len >= 12 && len <= 12 + 1 + 64 + 1 + 1 + 255 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_PING:
    case CLINK_FRAME_PONG:
        return len == 8 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_GOAWAY:
        return id_zero && len == 8 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_CANCEL:
        return len == 0 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_ERROR:
        return len < 4 ? -CLINK_EPROTO : len > max_frame ? -CLINK_EFRAMETOOBIG : 0;
    case CLINK_FRAME_REQUEST:
    case CLINK_FRAME_RESPONSE:
        return len > max_frame ? -CLINK_EFRAMETOOBIG : 0;
    default:
        return -CLINK_EPROTO;
    }
}

static void check_hello(const uint8_t *payload, size_t n)
{
    uint8_t *p = fuzz_dup(payload, n);
    struct clink_hello h;
    int ret = clink__hello_decode(p, n, &h);
    FUZZ_CHECK(ret == 0 || ret == -CLINK_EPROTO, "hello_decode returned %d", ret);
    if (ret == 0) {
        uint8_t again[CLINK_HELLO_MAX];
        size_t m = clink__hello_encode(again, &h);
        FUZZ_CHECK(m == n && memcmp(again, p, n) == 0, "HELLO of %zu bytes re-encodes to %zu other bytes", n, m);
    }
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the receiver's max_frame: the protocol floor, 1 MiB, or the node default. */
    static const uint32_t maxes[] = {CLINK_MAX_FRAME_FLOOR, 1u << 20, 4u << 20};
    if (size < 1) {
        return 0;
    }
    const uint32_t max_frame = maxes[data[0] % 3];
    size_t off = 1;
    while (size - off >= CLINK_FRAME_HDR) {
        uint8_t *hdr = fuzz_dup(data + off, CLINK_FRAME_HDR);
        struct clink_frame_hdr h;
        int ret = clink__frame_decode(hdr, max_frame, 1, &h);
        int want = spec_verdict(hdr, max_frame);
        FUZZ_CHECK(ret == want, "frame_decode says %d, the protocol says %d (type %u, length %u)", ret, want, h.type,
                   h.length);
        /* Decoded fields are the header's bytes even when refused: native.c's message names type and length. */
        uint8_t again[CLINK_FRAME_HDR];
        clink__frame_encode(again, &h);
        FUZZ_CHECK(memcmp(again, hdr, CLINK_FRAME_HDR) == 0, "header does not re-encode to its bytes");
        free(hdr);
        if (ret < 0) {
            break;
        }
        FUZZ_CHECK(h.length <= max_frame, "accepted length %u above max_frame %u", h.length, max_frame);
        FUZZ_CHECK(h.type != CLINK_FRAME_ERROR || h.length >= CLINK_ERROR_MIN, "ERROR without its code");
        FUZZ_CHECK((h.type != CLINK_FRAME_PING && h.type != CLINK_FRAME_PONG) || h.length == CLINK_PING_LEN,
                   "PING/PONG of %u bytes", h.length);
        FUZZ_CHECK(h.type != CLINK_FRAME_HELLO || (h.length >= CLINK_HELLO_LEN && h.length <= CLINK_HELLO_MAX),
                   "HELLO of %u bytes", h.length);
        off += CLINK_FRAME_HDR;
        if (size - off < h.length) {
            break; /* dispatch() waits for the rest */
        }
        if (h.type == CLINK_FRAME_HELLO) {
            check_hello(data + off, h.length);
        }
        off += h.length;
    }
    return 0;
}
