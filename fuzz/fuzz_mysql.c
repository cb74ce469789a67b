/*
 * The MySQL-protocol front door's parsers (transport/mysql_proto.c): the
 * client's HandshakeResponse41 / SSL request and length-encoded integers.
 * Properties: no read past the input (an exact-size copy under ASan); a
 * parsed response has its auth data inside the packet and names that fit;
 * whatever lenenc_get reads, lenenc_put writes back to the same bytes when
 * it is the shortest form, and put-then-get round-trips every value.
 */
#include "fuzz/fuzz.h"
#include "transport/mysql_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = fuzz_dup(data, size);
    struct clink__mysql_response r;
    if (clink__mysql_parse_response(p, size, &r) == 0) {
        FUZZ_CHECK(r.caps & CLINK_MY_PROTOCOL_41, "accepted without CLIENT_PROTOCOL_41");
        FUZZ_CHECK(!r.ssl_request || size == 32, "an SSL request of %zu bytes", size);
        if (!r.ssl_request) {
            FUZZ_CHECK(r.auth >= p + 32 && r.auth + r.auth_len <= p + size, "auth data outside the packet");
            FUZZ_CHECK(strlen(r.user) < sizeof(r.user) && strlen(r.db) < sizeof(r.db) &&
                           strlen(r.plugin) < sizeof(r.plugin),
                       "a name does not fit");
        }
    }
    uint64_t v;
    size_t used = clink__mysql_lenenc_get(p, size, &v);
    FUZZ_CHECK(used <= size && used <= 9, "lenenc_get used %zu of %zu bytes", used, size);
    if (used > 0) {
        uint8_t back[9];
        size_t n = clink__mysql_lenenc_put(back, v);
        uint64_t w;
        FUZZ_CHECK(clink__mysql_lenenc_get(back, n, &w) == n && w == v, "put/get of %llu does not round-trip",
                   (unsigned long long)v);
        FUZZ_CHECK(n <= used, "the shortest form of %llu is longer (%zu) than what was read (%zu)",
                   (unsigned long long)v, n, used);
        if (n == used) {
            FUZZ_CHECK(memcmp(back, p, n) == 0, "the shortest form of %llu differs from its input",
                       (unsigned long long)v);
        }
    }
    free(p);
    return 0;
}
