/*
 * The opening rule (transport/opening.c): the server classifying a client's
 * first bytes, and the native client reading the server's greeting.
 *
 * Properties, with the same reads conn_opening.c makes (exact-size copies, so a read
 * past what was received is an ASan report):
 * - classify, at each length the server can have read (5 to 8 bytes), says
 *   TLS exactly for a record header 16 03 01/03, PLAIN exactly for the whole
 *   magic, MORE only for a proper prefix of the magic, and never changes its
 *   mind as more bytes arrive;
 * - the client's greeting check accepts exactly a sequence-0 packet of
 *   protocol 10 of at most CLINK_GREETING_MAX bytes, and the scramble is
 *   read only from a payload that holds the version, its NUL and the fixed
 *   fields (as client_greeting() hands it over: the payload after byte 1);
 * - what the server writes (the greeting, the MySQL refusal) parses back:
 *   the greeting passes the client's check and yields its scramble.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/error.h"
#include "fuzz/fuzz.h"
#include "transport/opening.h"

static enum clink_opening_kind spec_kind(const uint8_t *b, size_t n)
{
    static const uint8_t magic[CLINK_PLAIN_MAGIC_LEN] = {'C', 'L', 'N', 'K', 0, 1, '\r', '\n'};
    if (b[0] == 0x16 && b[1] == 0x03 && (b[2] == 0x01 || b[2] == 0x03)) {
        return CLINK_OPENING_TLS;
    }
    size_t m = n < CLINK_PLAIN_MAGIC_LEN ? n : CLINK_PLAIN_MAGIC_LEN;
    if (memcmp(b, magic, m) != 0) {
        return CLINK_OPENING_OTHER;
    }
    return m == CLINK_PLAIN_MAGIC_LEN ? CLINK_OPENING_PLAIN : CLINK_OPENING_MORE;
}

static void check_classify(const uint8_t *data, size_t size)
{
    enum clink_opening_kind first = CLINK_OPENING_MORE;
    for (size_t n = CLINK_CLASSIFY_LEN; n <= CLINK_PLAIN_MAGIC_LEN && n <= size; n++) {
        uint8_t *b = fuzz_dup(data, n);
        enum clink_opening_kind k = clink__opening_classify(b, n);
        free(b);
        FUZZ_CHECK(k == spec_kind(data, n), "classify of %zu bytes says %d, the rule says %d", n, (int)k,
                   (int)spec_kind(data, n));
        FUZZ_CHECK(first == CLINK_OPENING_MORE || k == first, "classify changed from %d to %d at %zu bytes", (int)first,
                   (int)k, n);
        first = k;
        if (k != CLINK_OPENING_MORE) {
            break; /* the server stops reading here */
        }
    }
}

/* The native client, as client_greeting() reads: 5 bytes, then the rest of the packet. */
static void check_greeting(const uint8_t *data, size_t size)
{
    if (size < 5) {
        return;
    }
    uint8_t *hdr = fuzz_dup(data, 5);
    int len = clink__opening_greeting_len(hdr);
    free(hdr);
    size_t plen = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16;
    int want = data[3] == 0 && data[4] == 10 && plen >= 1 && plen + 4 <= CLINK_GREETING_MAX;
    FUZZ_CHECK((len >= 0) == want, "greeting_len %d for length %zu, sequence %u, protocol %u", len, plen, data[3],
               data[4]);
    if (len < 0) {
        FUZZ_CHECK(len == -CLINK_EPROTO, "greeting_len returned %d", len);
        return;
    }
    FUZZ_CHECK((size_t)len == plen, "greeting_len %d, header says %zu", len, plen);
    size_t rest = (size_t)len - 1;
    if (size - 5 < rest) {
        return; /* the client waits for the rest */
    }
    uint8_t *p = fuzz_dup(data + 5, rest);
    uint8_t scramble[20];
    int ret = clink__opening_greeting_scramble(p, rest, scramble);
    FUZZ_CHECK(ret == 0 || ret == -CLINK_EPROTO, "greeting_scramble returned %d", ret);
    if (ret == 0) {
        const uint8_t *nul = memchr(p, 0, rest);
        FUZZ_CHECK(nul != NULL, "a scramble from a greeting without a NUL-terminated version");
        size_t off = (size_t)(nul - p) + 1;
        FUZZ_CHECK(rest - off >= 43, "a scramble from %zu bytes after the version: fewer than the fixed fields",
                   rest - off);
        FUZZ_CHECK(memcmp(scramble, p + off + 4, 8) == 0 && memcmp(scramble + 8, p + off + 31, 12) == 0,
                   "scramble not taken from its two places in the packet");
    }
    free(p);
}

/* What the server sends, from fuzz bytes: it must parse back. */
static void check_writers(const uint8_t *data, size_t size)
{
    if (size < 24) {
        return;
    }
    uint8_t g[128], back[20];
    uint32_t conn_id = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
    size_t n = clink__opening_greeting(g, sizeof(g), conn_id, data);
    FUZZ_CHECK(n > 5 && n <= sizeof(g), "greeting of %zu bytes", n);
    FUZZ_CHECK(clink__opening_greeting_len(g) == (int)(n - 4), "our greeting fails the client's check");
    uint8_t *p = fuzz_dup(g + 5, n - 5);
    FUZZ_CHECK(clink__opening_greeting_scramble(p, n - 5, back) == 0 && memcmp(back, data, 20) == 0,
               "our greeting does not carry its scramble");
    free(p);
    /* A MySQL client's first packet never classifies as TLS or as the magic. */
    FUZZ_CHECK(clink__opening_classify(g, n) == CLINK_OPENING_OTHER, "our greeting classifies as a native client");

    uint8_t r[128];
    size_t rn = clink__opening_mysql_refusal(r, sizeof(r), data[0]);
    size_t rlen = (size_t)r[0] | (size_t)r[1] << 8 | (size_t)r[2] << 16;
    FUZZ_CHECK(rn > 4 && rn <= sizeof(r) && rlen == rn - 4 && r[3] == data[0] && r[4] == 0xff,
               "refusal packet header does not match its %zu bytes", rn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_classify(data, size);
    check_greeting(data, size);
    check_writers(data, size);
    return 0;
}
