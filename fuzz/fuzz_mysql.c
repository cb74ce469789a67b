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
 *
 * And to the door's own answers (mysql_session.c, mysql_select.c,
 * mysql_vars.c): as a SET, applied to a session, and as a SELECT list.
 * Properties: a session never holds more than its bounds, counts its bytes
 * exactly, and a refused SET changes nothing; what SET applied reads back
 * as the value check wrote it, and a value as kept passes its check again
 * unchanged; SELECT items are NUL-terminated and within their sizes; the
 * LIKE matcher ends. The same bytes as COM_SET_OPTION and COM_FIELD_LIST.
 *
 * And as a COM_CHANGE_USER (clink__mysql_parse_change_user): the first 4
 * bytes are the connection's capability flags (little-endian), the rest the
 * packet. Properties: no read past it; the auth response inside it; names
 * that fit; the plugin only with CLIENT_PLUGIN_AUTH; what it read, written
 * out again as a client writes it, reads back the same.
 */
#include "fuzz/fuzz.h"
#include "transport/mysql_proto.h"
#include "transport/mysql_session.h"
#include "transport/mysql_sql.h"
#include "transport/mysql_vars.h"

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

static size_t session_bytes(const struct clink__mysql_session *s)
{
    size_t b = 0;
    for (unsigned i = 0; i < s->n; i++) {
        b += strlen(s->v[i].name) + 1 + (s->v[i].value ? strlen(s->v[i].value) + 1 : 0);
    }
    return b;
}

/* The text as SET statements (twice, on one session, so that the second changes what the first kept). */
static void set_text(const uint8_t *p, size_t size)
{
    struct clink__mysql_session ss = {0};
    struct clink__set_item items[CLINK_MYSQL_SET_ITEMS];
    char msg[300];
    for (int round = 0; round < 2; round++) {
        struct clink__sql s = {.p = (const char *)p, .end = (const char *)p + size};
        CLINK_IGNORE(clink__sql_word(&s, "SET"));
        int n = clink__set_parse(&s, items, CLINK_MYSQL_SET_ITEMS);
        FUZZ_CHECK(n >= -1 && n <= CLINK_MYSQL_SET_ITEMS, "set_parse returned %d", n);
        if (n <= 0) {
            break;
        }
        unsigned before_n = ss.n;
        size_t before_bytes = ss.bytes;
        int code = clink__session_set(&ss, items, (unsigned)n, msg, sizeof(msg));
        FUZZ_CHECK(ss.n <= CLINK_MYSQL_SESSION_VARS && ss.bytes <= CLINK_MYSQL_SESSION_BYTES, "%u variables, %zu bytes",
                   ss.n, ss.bytes);
        FUZZ_CHECK(ss.bytes == session_bytes(&ss), "counted %zu bytes, holds %zu", ss.bytes, session_bytes(&ss));
        if (code != 0) {
            FUZZ_CHECK(code == 1105 || code == 1227 || code == 1229 || code == 1231 || code == 1238 || code == 1621,
                       "SET answered %d", code);
            FUZZ_CHECK(ss.n == before_n && ss.bytes == before_bytes, "a refused SET (%d) changed the session", code);
            continue;
        }
        for (int i = 0; i < n; i++) {
            const struct clink__var *v = clink__var_find(items[i].name);
            const char *name = v ? v->name : items[i].name, *got = NULL;
            int later = 0;
            for (int j = i + 1; j < n; j++) {
                const struct clink__var *w = clink__var_find(items[j].name);
                later |= strcmp(w ? w->name : items[j].name, name) == 0;
            }
            if (later) {
                continue; /* a later assignment in the same SET wins */
            }
            int kept = clink__session_get(&ss, name, &got);
            FUZZ_CHECK(kept == !items[i].is_default, "%s: kept %d", name, kept);
            if (kept && got != NULL) {
                char again[CLINK_MYSQL_VAR_VALUE_MAX + 1];
                FUZZ_CHECK(clink__var_check(v, got, again, sizeof(again)) == 0 && strcmp(again, got) == 0,
                           "%s = '%s' as kept does not pass its check unchanged", name, got);
            }
        }
    }
    clink__session_clear(&ss);
}

/* The text as a SELECT list, a LIKE pattern, and a value for every variable. */
static void select_text(const uint8_t *p, size_t size)
{
    static struct clink__select_item items[CLINK_MYSQL_SELECT_ITEMS];
    int limited;
    struct clink__sql s = {.p = (const char *)p, .end = (const char *)p + size};
    CLINK_IGNORE(clink__sql_word(&s, "SELECT"));
    int n = clink__select_parse(&s, items, CLINK_MYSQL_SELECT_ITEMS, &limited);
    FUZZ_CHECK(n >= -1 && n <= CLINK_MYSQL_SELECT_ITEMS, "select_parse returned %d", n);
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(memchr(items[i].name, 0, sizeof(items[i].name)) && memchr(items[i].text, 0, sizeof(items[i].text)) &&
                       memchr(items[i].var, 0, sizeof(items[i].var)),
                   "item %d not NUL-terminated", i);
        FUZZ_CHECK(items[i].kind >= CLINK_SEL_VAR && items[i].kind <= CLINK_SEL_NULL, "item %d of kind %d", i,
                   items[i].kind);
    }
    char text[CLINK_MYSQL_VAR_VALUE_MAX + 64], out[CLINK_MYSQL_VAR_VALUE_MAX + 1], again[sizeof(out)];
    size_t k = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, p, k);
    text[k] = '\0';
    FUZZ_CHECK(clink__sql_like("%", text), "LIKE '%%' does not match '%s'", text);
    CLINK_IGNORE(clink__sql_like(text, text) || clink__sql_like(text, "character_set_client"));
    size_t nv;
    const struct clink__var *vars = clink__vars(&nv);
    for (size_t i = 0; i <= nv; i++) {
        const struct clink__var *v = i < nv ? &vars[i] : NULL;
        if (clink__var_check(v, text, out, sizeof(out)) == 0) {
            FUZZ_CHECK(strlen(out) <= CLINK_MYSQL_VAR_VALUE_MAX, "a value of %zu bytes kept", strlen(out));
            FUZZ_CHECK(clink__var_check(v, out, again, sizeof(again)) == 0 && strcmp(out, again) == 0,
                       "%s: '%s' kept as '%s', then '%s'", v ? v->name : "(unknown)", text, out, again);
        }
    }
    int opt = clink__mysql_set_option(p, size);
    FUZZ_CHECK(opt == -1 || (size == 3 && opt == p[1] && opt <= 1), "COM_SET_OPTION read as %d", opt);
    char table[65];
    size_t tl = clink__mysql_field_list_table(p, size, table, sizeof(table));
    FUZZ_CHECK(tl <= 64 && strlen(table) == tl, "COM_FIELD_LIST table of %zu bytes", tl);
}

/* A COM_CHANGE_USER as a client writes it from r (no attributes). Returns its length (out holds 600 bytes). */
static size_t change_user_write(const struct clink__mysql_response *r, uint8_t *out)
{
    size_t n = 0;
    out[n++] = CLINK_MY_COM_CHANGE_USER;
    memcpy(out + n, r->user, strlen(r->user) + 1);
    n += strlen(r->user) + 1;
    if (r->caps & CLINK_MY_SECURE_CONNECTION) {
        out[n++] = (uint8_t)r->auth_len;
        memcpy(out + n, r->auth, r->auth_len);
        n += r->auth_len;
    } else {
        memcpy(out + n, r->auth, r->auth_len);
        n += r->auth_len;
        out[n++] = 0;
    }
    memcpy(out + n, r->db, strlen(r->db) + 1);
    n += strlen(r->db) + 1;
    out[n++] = r->charset;
    out[n++] = 0;
    if (r->caps & CLINK_MY_PLUGIN_AUTH) {
        memcpy(out + n, r->plugin, strlen(r->plugin) + 1);
        n += strlen(r->plugin) + 1;
    }
    return n;
}

static void change_user(const uint8_t *p, size_t size)
{
    if (size < 4) {
        return;
    }
    uint32_t caps = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    const uint8_t *q = p + 4;
    size_t n = size - 4;
    struct clink__mysql_response r, again;
    if (clink__mysql_parse_change_user(q, n, caps, &r) != 0) {
        return;
    }
    FUZZ_CHECK(n > 0 && q[0] == CLINK_MY_COM_CHANGE_USER && r.caps == caps, "accepted without its command byte");
    FUZZ_CHECK(r.auth >= q + 1 && r.auth + r.auth_len <= q + n, "auth data outside the packet");
    FUZZ_CHECK(r.auth_len <= 255, "an auth response of %zu bytes", r.auth_len);
    FUZZ_CHECK(strlen(r.user) < sizeof(r.user) && strlen(r.db) < sizeof(r.db) && strlen(r.plugin) < sizeof(r.plugin),
               "a name does not fit");
    for (const char *u = r.user; *u; u++) {
        FUZZ_CHECK((unsigned char)*u >= 0x20 && *u != 0x7f, "a control character in the user name");
    }
    FUZZ_CHECK(r.plugin[0] == '\0' || (caps & CLINK_MY_PLUGIN_AUTH), "a plugin without CLIENT_PLUGIN_AUTH");
    FUZZ_CHECK((caps & CLINK_MY_SECURE_CONNECTION) || memchr(r.auth, 0, r.auth_len) == NULL,
               "a NUL inside a NUL-terminated auth response");
    uint8_t out[600];
    size_t k = change_user_write(&r, out);
    uint8_t *w = fuzz_dup(out, k);
    FUZZ_CHECK(clink__mysql_parse_change_user(w, k, caps, &again) == 0, "written again, it does not parse");
    FUZZ_CHECK(strcmp(r.user, again.user) == 0 && strcmp(r.db, again.db) == 0 && strcmp(r.plugin, again.plugin) == 0 &&
                   r.charset == again.charset && r.auth_len == again.auth_len &&
                   memcmp(r.auth, again.auth, r.auth_len) == 0,
               "written again, it reads back otherwise");
    free(w);
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
    change_user(p, size);
    sql_text(p, size);
    set_text(p, size);
    select_text(p, size);
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
