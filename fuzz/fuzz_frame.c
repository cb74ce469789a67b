/*
 * The frame header decoder (transport/frame.c), on a stream of frames read
 * the way native.c's input reads them: header, then `length` payload
 * bytes, until a header is refused or the bytes run out.
 *
 * Input: the first byte picks the receiver's max_frame (byte % 3: the
 * protocol floor, 1 MiB, 4 MiB) and the protocol version in force
 * (byte / 3 % 2: version 1, then 2; so seeds starting 0-2 are version 1,
 * 3-5 version 2); the frames follow.
 *
 * Properties: the decoder's verdict equals the rules of docs/protocol.md
 * (section 3) and of version 2 (frame.h: flags, SETTINGS, DATA, CREDIT),
 * written out again below as an independent oracle; a header it accepts
 * re-encodes to the same 16 bytes; an accepted length is within max_frame
 * and what the type allows, which is what native.c's handlers rely on (an
 * ERROR's u32 code, a PING's 8 bytes echoed, a HELLO that fits struct
 * clink_hello, SETTINGS' 12 bytes, CREDIT's 4, a DATA frame's stream id); a
 * HELLO payload decodes without reading past its length (exact-size copies)
 * and, when it decodes, re-encodes to itself; a SETTINGS payload's verdict
 * equals its bounds (written out again below), and accepted values
 * re-encode to its 12 bytes. fuzz_hello.c works on HELLO payloads alone.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "fuzz/fuzz.h"
#include "transport/frame.h"

/*
 * docs/protocol.md, "Frames", and version 2: 0, -CLINK_EPROTO or -CLINK_EFRAMETOOBIG, from the raw bytes.
 * Any broken rule is EPROTO, even when the length is also above max_frame.
 */
static int spec_verdict(const uint8_t *b, uint32_t max_frame, unsigned version)
{
    uint8_t type = b[0], flags = b[1];
    uint16_t method = (uint16_t)(b[2] << 8 | b[3]);
    uint32_t len = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
    int id_zero = 1;
    for (int i = 8; i < 16; i++) {
        id_zero &= b[i] == 0;
    }
    const uint8_t more = 0x01, end = 0x02, stream = 0x04, opener = 0x08;
    uint8_t may = 0; /* the flags this type may carry in version 2 */
    int ok;          /* the type's own rules: known in this version, its id and length */
    int bounded = 0; /* length limited by max_frame */
    switch (type) {
    case 1: /* HELLO */
        ok = id_zero && len >= 12 && len <= 12 + 1 + 64 + 1 + 1 + 255;
        break;
    case 2: /* REQUEST */
        may = more | end | stream;
        ok = bounded = 1;
        break;
    case 3: /* RESPONSE */
        may = more;
        ok = bounded = 1;
        break;
    case 4: /* ERROR: its u32 code */
        ok = len >= 4;
        bounded = 1;
        break;
    case 5: /* PING */
    case 6: /* PONG */
        ok = len == 8;
        break;
    case 7: /* GOAWAY */
        ok = id_zero && len == 8;
        break;
    case 8: /* CANCEL */
        ok = len == 0;
        break;
    case 9: /* SETTINGS, version 2 */
        ok = version >= 2 && id_zero && len == 12;
        break;
    case 10: /* DATA, version 2: a stream's */
        may = more | end | opener;
        ok = version >= 2 && !id_zero;
        bounded = 1;
        break;
    case 11: /* CREDIT, version 2: OPENER names a stream, so not the connection (id 0) */
        may = id_zero ? 0 : opener;
        ok = version >= 2 && len == 4;
        break;
    default:
        ok = 0;
        break;
    }
    if (version < 2) {
        may = 0;
    }
    if ((flags & ~may) != 0 || ((flags & end) && (flags & more)) || (type != 2 && method != 0) || !ok) {
        return -CLINK_EPROTO;
    }
    return bounded && len > max_frame ? -CLINK_EFRAMETOOBIG : 0;
}

/* Version 2's SETTINGS payload: 0 or -CLINK_EPROTO, from the raw bytes. */
static int spec_settings(const uint8_t *b)
{
    uint32_t v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    }
    uint32_t max_message = v[0], conn_window = v[1], stream_window = v[2];
    /* A message of one chunk's payload at least; a stream window of four chunks; windows as HTTP/2's; and
     * max_message within the three quarters of the connection window a receiver may not hold back. */
    int ok = max_message >= 16368 && stream_window >= 4 * 16368 && conn_window <= 0x7fffffffu &&
             stream_window <= 0x7fffffffu && max_message <= conn_window / 4 * 3;
    return ok ? 0 : -CLINK_EPROTO;
}

static void check_settings(const uint8_t *payload)
{
    uint8_t *p = fuzz_dup(payload, CLINK_SETTINGS_LEN);
    struct clink_settings s;
    int ret = clink__settings_decode(p, &s);
    int want = spec_settings(p);
    FUZZ_CHECK(ret == want, "settings_decode says %d, the protocol says %d", ret, want);
    if (ret == 0) {
        uint8_t again[CLINK_SETTINGS_LEN];
        clink__settings_encode(again, &s);
        FUZZ_CHECK(memcmp(again, p, CLINK_SETTINGS_LEN) == 0, "SETTINGS does not re-encode to its bytes");
        FUZZ_CHECK(s.max_message >= CLINK_CHUNK && s.stream_window >= 4 * CLINK_CHUNK, "SETTINGS below a floor");
        FUZZ_CHECK(s.conn_window <= CLINK_WINDOW_MAX && s.stream_window <= CLINK_WINDOW_MAX,
                   "SETTINGS window above 2^31-1");
        FUZZ_CHECK((uint64_t)s.max_message <= (uint64_t)s.conn_window / 4 * 3,
                   "max_message %u above three quarters of conn_window %u", s.max_message, s.conn_window);
    }
    free(p);
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
    /* The first byte picks the receiver's max_frame (the protocol floor, 1 MiB, or the node default) and the version.
     */
    static const uint32_t maxes[] = {CLINK_MAX_FRAME_FLOOR, 1u << 20, 4u << 20};
    if (size < 1) {
        return 0;
    }
    const uint32_t max_frame = maxes[data[0] % 3];
    const unsigned version = data[0] / 3 % 2 + 1;
    size_t off = 1;
    while (size - off >= CLINK_FRAME_HDR) {
        uint8_t *hdr = fuzz_dup(data + off, CLINK_FRAME_HDR);
        struct clink_frame_hdr h;
        int ret = clink__frame_decode(hdr, max_frame, version, &h);
        int want = spec_verdict(hdr, max_frame, version);
        FUZZ_CHECK(ret == want,
                   "frame_decode says %d, the protocol says %d (version %u, type %u, flags 0x%x, length %u, id %llu)",
                   ret, want, version, h.type, h.flags, h.length, (unsigned long long)h.id);
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
        FUZZ_CHECK(version >= 2 || (h.flags == 0 && h.type <= CLINK_FRAME_CANCEL),
                   "version 1 accepted type %u with flags 0x%x", h.type, h.flags);
        FUZZ_CHECK(h.type != CLINK_FRAME_SETTINGS || (h.length == CLINK_SETTINGS_LEN && h.id == 0),
                   "SETTINGS of %u bytes, id %llu", h.length, (unsigned long long)h.id);
        FUZZ_CHECK(h.type != CLINK_FRAME_CREDIT || h.length == CLINK_CREDIT_LEN, "CREDIT of %u bytes", h.length);
        FUZZ_CHECK(h.type != CLINK_FRAME_DATA || h.id != 0, "DATA without a stream id");
        FUZZ_CHECK(!(h.flags & CLINK_FLAG_END) || !(h.flags & CLINK_FLAG_MORE), "END with MORE");
        off += CLINK_FRAME_HDR;
        if (size - off < h.length) {
            break; /* dispatch() waits for the rest */
        }
        if (h.type == CLINK_FRAME_HELLO) {
            check_hello(data + off, h.length);
        } else if (h.type == CLINK_FRAME_SETTINGS) {
            check_settings(data + off);
        }
        off += h.length;
    }
    return 0;
}
