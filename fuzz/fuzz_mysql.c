/*
 * The MySQL-protocol front door's parsers (transport/mysql_proto.c): the
 * client's HandshakeResponse41 / SSL request and length-encoded integers.
 * Properties: no read past the input (an exact-size copy under ASan); a
 * parsed response has its auth data inside the packet and names that fit;
 * whatever lenenc_get reads, lenenc_put writes back to the same bytes when
 * it is the shortest form, and put-then-get round-trips every value.
 *
 * The same bytes, as statement text, go to the built-in statements' reader
 * (transport/mysql_sql.c): as what follows SHOW GRANTS, and as a string to
 * quote. Properties: no read past the text; an account name it reads comes
 * back the same from the quoted form SHOW GRANTS writes ('u'@'h'); any
 * string quoted by clink__sql_quote reads back as itself.
 */
#include "fuzz/fuzz.h"
#include "transport/mysql_proto.h"
#include "transport/mysql_sql.h"

/* SHOW GRANTS [FOR ...] on text, and the round trip of the names it reads through their quoted forms. */
static void sql_text(const uint8_t *p, size_t size)
{
    char user[80], host[80], quser[2 * sizeof(user) + 3], qhost[2 * sizeof(host) + 3];
    struct clink__sql s = {.p = (const char *)p, .end = (const char *)p + size};
    int target = clink__sql_show_grants_target(&s, user, sizeof(user), host, sizeof(host));
    FUZZ_CHECK(target >= -1 && target <= 1, "show_grants_target returned %d", target);
    FUZZ_CHECK(s.p >= (const char *)p && s.p <= s.end && s.end <= (const char *)p + size, "cursor outside the text");
    if (target == 0) {
        FUZZ_CHECK(strlen(user) < sizeof(user) && strlen(host) < sizeof(host), "a name does not fit");
        FUZZ_CHECK(clink__sql_quote(user, quser, sizeof(quser)) > 0 && clink__sql_quote(host, qhost, sizeof(qhost)) > 0,
                   "a name that fits its buffer does not fit twice its size quoted");
        char again[2 * sizeof(quser) + 8], u2[80], h2[80];
        int n = snprintf(again, sizeof(again), "FOR %s@%s", quser, qhost);
        struct clink__sql t = {.p = again, .end = again + n};
        FUZZ_CHECK(clink__sql_show_grants_target(&t, u2, sizeof(u2), h2, sizeof(h2)) == 0, "%s does not read back",
                   again);
        FUZZ_CHECK(strcmp(user, u2) == 0 && strcmp(host, h2) == 0, "%s read back as '%s'@'%s'", again, u2, h2);
    }
    /* Any text (up to a NUL) quoted, then read: itself. */
    char text[256], quoted[2 * sizeof(text) + 3], back[sizeof(text)];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, p, n);
    text[n] = '\0';
    size_t qn = clink__sql_quote(text, quoted, sizeof(quoted));
    FUZZ_CHECK(qn >= 2 && qn == strlen(quoted), "quote of %zu bytes gave %zu", strlen(text), qn);
    struct clink__sql q = {.p = quoted, .end = quoted + qn};
    FUZZ_CHECK(clink__sql_quoted(&q, back, sizeof(back)) == 0 && q.p == q.end && strcmp(back, text) == 0,
               "%s does not read back as itself", quoted);
    FUZZ_CHECK(clink__sql_quote(text, quoted, 2) == 0 && quoted[0] == '\0', "a quote that does not fit is not empty");
}

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
    sql_text(p, size);
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
