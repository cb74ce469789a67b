/*
 * The HELLO payload and its login part (transport/frame.c), as the server
 * decodes the client's first frame: version range, max_frame, flags, then
 * u8 user_len | user | u8 method | u8 auth_len | auth.
 *
 * Properties: the decoder's verdict equals docs/protocol.md ("HELLO and
 * versions", "Login"), written out again below as an oracle; it reads
 * nothing past the payload (exact-size copy); what it accepts is in bounds
 * (a NUL-terminated printable user of at most 64 bytes, method 0-3, auth_len
 * the bytes left) and re-encodes to the same bytes; clink__hello_pick agrees
 * with the range arithmetic. Then the other direction: the same bytes read
 * as the fields of a HELLO a client would send, encoded, must decode back to
 * those fields (a client never sends what a server refuses).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "fuzz/fuzz.h"
#include "transport/frame.h"

static int spec_valid(const uint8_t *b, size_t n)
{
    if (n < 12 || n > 12 + 1 + 64 + 1 + 1 + 255) {
        return 0;
    }
    unsigned minv = (unsigned)(b[0] << 8 | b[1]), maxv = (unsigned)(b[2] << 8 | b[3]);
    uint32_t max_frame = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
    uint32_t flags = (uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11];
    if (minv == 0 || minv > maxv || max_frame < 4096 || (flags & ~1u) != 0) {
        return 0;
    }
    if (!(flags & 1u)) {
        return n == 12;
    }
    size_t rest = n - 12;
    if (rest < 1 || b[12] > 64 || rest < 1u + b[12] + 2u) {
        return 0;
    }
    size_t ulen = b[12];
    for (size_t i = 0; i < ulen; i++) {
        if (b[13 + i] < 0x20 || b[13 + i] == 0x7f) {
            return 0;
        }
    }
    return b[13 + ulen] <= 3 && rest == 1 + ulen + 2 + b[14 + ulen];
}

static void check_pick(const struct clink_hello *theirs, uint16_t omin, uint16_t omax)
{
    struct clink_hello ours = {.min_version = omin, .max_version = omax};
    int v = clink__hello_pick(&ours, theirs);
    unsigned lo = omin > theirs->min_version ? omin : theirs->min_version;
    unsigned hi = omax < theirs->max_version ? omax : theirs->max_version;
    if (lo <= hi) {
        FUZZ_CHECK(v == (int)hi, "pick %d, expected the highest common version %u", v, hi);
    } else {
        FUZZ_CHECK(v == -CLINK_EVERSION, "pick %d for disjoint ranges", v);
    }
}

/* The fields of a HELLO a client would send, from fuzz bytes (made valid), through encode and decode. */
static void check_encode(const uint8_t *data, size_t size)
{
    if (size < 16) {
        return;
    }
    struct clink_hello h = {0}, back;
    h.min_version = (uint16_t)(data[0] << 8 | data[1]);
    h.max_version = (uint16_t)(data[2] << 8 | data[3]);
    h.min_version = h.min_version ? h.min_version : 1;
    h.max_version = h.max_version >= h.min_version ? h.max_version : h.min_version;
    h.max_frame = ((uint32_t)data[4] << 24 | (uint32_t)data[5] << 16) | CLINK_MAX_FRAME_FLOOR;
    h.flags = data[6] & CLINK_HELLO_LOGIN;
    if (h.flags) {
        size_t ulen = data[7] % 65, alen = data[8];
        const uint8_t *src = data + 9, *end = data + size;
        for (size_t i = 0; i < ulen; i++) {
            uint8_t ch = src < end ? *src++ : 'u';
            h.user[i] = (char)(ch < 0x20 || ch == 0x7f ? '?' : ch); /* no control bytes, as clients check */
        }
        h.method = data[6] >> 1 & 3;
        h.auth_len = (uint8_t)alen;
        for (size_t i = 0; i < alen; i++) {
            h.auth[i] = src < end ? *src++ : 0;
        }
    }
    uint8_t wire[CLINK_HELLO_MAX];
    size_t n = clink__hello_encode(wire, &h);
    uint8_t *exact = fuzz_dup(wire, n);
    int ret = clink__hello_decode(exact, n, &back);
    free(exact);
    FUZZ_CHECK(ret == 0, "a HELLO we encode (%zu bytes, login %u) does not decode: %d", n, h.flags, ret);
    FUZZ_CHECK(back.min_version == h.min_version && back.max_version == h.max_version &&
                   back.max_frame == h.max_frame && back.flags == h.flags && strcmp(back.user, h.user) == 0 &&
                   back.method == h.method && back.auth_len == h.auth_len && memcmp(back.auth, h.auth, h.auth_len) == 0,
               "a HELLO does not decode to what was encoded");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = fuzz_dup(data, size);
    struct clink_hello h;
    int ret = clink__hello_decode(p, size, &h);
    int valid = spec_valid(p, size);
    FUZZ_CHECK(ret == 0 || ret == -CLINK_EPROTO, "hello_decode returned %d", ret);
    FUZZ_CHECK((ret == 0) == valid, "hello_decode says %d for %zu bytes, the protocol says %s", ret, size,
               valid ? "valid" : "invalid");
    if (ret == 0) {
        size_t ulen = strnlen(h.user, sizeof(h.user));
        FUZZ_CHECK(ulen <= 64 && ulen < sizeof(h.user), "user not NUL-terminated within 64 bytes");
        for (size_t i = 0; i < ulen; i++) {
            FUZZ_CHECK((uint8_t)h.user[i] >= 0x20 && h.user[i] != 0x7f, "control byte in user");
        }
        FUZZ_CHECK(h.method <= 3, "method %u", h.method);
        FUZZ_CHECK(h.min_version >= 1 && h.min_version <= h.max_version && h.max_frame >= CLINK_MAX_FRAME_FLOOR,
                   "range or max_frame out of bounds");
        if (!(h.flags & CLINK_HELLO_LOGIN)) {
            FUZZ_CHECK(size == CLINK_HELLO_LEN && ulen == 0 && h.auth_len == 0, "login fields without a login");
        } else {
            FUZZ_CHECK(size == CLINK_HELLO_LEN + 1 + ulen + 2 + h.auth_len, "login part does not fill the payload");
        }
        uint8_t again[CLINK_HELLO_MAX];
        size_t m = clink__hello_encode(again, &h);
        FUZZ_CHECK(m == size && memcmp(again, p, size) == 0, "HELLO of %zu bytes re-encodes to %zu other bytes", size,
                   m);
        check_pick(&h, 1, 1);
        check_pick(&h, 1, 3);
        check_pick(&h, 2, 0xffff);
    }
    free(p);
    check_encode(data, size);
    return 0;
}
