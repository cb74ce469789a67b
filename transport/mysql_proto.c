/* MySQL protocol packets: see mysql_proto.h. */
#include "transport/mysql_proto.h"

#include <string.h>

#include "clink/error.h"

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A NUL-terminated string at p[0..n) into out (cap includes the NUL). at_end: the packet's end may end it. */
static int cstr(const uint8_t *p, size_t n, size_t *off, char *out, size_t cap, int at_end)
{
    const uint8_t *z = memchr(p + *off, 0, n - *off);
    size_t len = z ? (size_t)(z - (p + *off)) : n - *off;
    if ((z == NULL && !at_end) || len >= cap) {
        return -CLINK_EPROTO;
    }
    memcpy(out, p + *off, len);
    out[len] = '\0';
    *off += len + (z != NULL);
    return 0;
}

int clink__mysql_parse_response(const uint8_t *p, size_t n, struct clink__mysql_response *r)
{
    memset(r, 0, sizeof(*r));
    if (n < 32) {
        return -CLINK_EPROTO;
    }
    r->caps = le32(p);
    r->max_packet = le32(p + 4);
    r->charset = p[8];
    if (!(r->caps & CLINK_MY_PROTOCOL_41)) {
        return -CLINK_EPROTO; /* the pre-4.1 format: no client from this century sends it */
    }
    if (n == 32) {
        if (!(r->caps & CLINK_MY_SSL)) {
            return -CLINK_EPROTO;
        }
        r->ssl_request = 1;
        return 0;
    }
    size_t off = 32;
    if (cstr(p, n, &off, r->user, sizeof(r->user), 0) < 0) {
        return -CLINK_EPROTO;
    }
    for (const char *u = r->user; *u; u++) {
        if ((unsigned char)*u < 0x20 || *u == 0x7f) {
            return -CLINK_EPROTO; /* a control character in a name would shape log lines and messages */
        }
    }
    uint64_t alen;
    if (r->caps & CLINK_MY_PLUGIN_AUTH_LENENC) {
        size_t used = clink__mysql_lenenc_get(p + off, n - off, &alen);
        if (used == 0) {
            return -CLINK_EPROTO;
        }
        off += used;
    } else if (r->caps & CLINK_MY_SECURE_CONNECTION) {
        if (off >= n) {
            return -CLINK_EPROTO;
        }
        alen = p[off++];
    } else {
        const uint8_t *z = memchr(p + off, 0, n - off);
        if (z == NULL) {
            return -CLINK_EPROTO;
        }
        alen = (uint64_t)(z - (p + off));
    }
    if (alen > n - off || alen > 255) {
        return -CLINK_EPROTO;
    }
    r->auth = p + off;
    r->auth_len = (size_t)alen;
    off += (size_t)alen;
    if (!(r->caps & (CLINK_MY_PLUGIN_AUTH_LENENC | CLINK_MY_SECURE_CONNECTION))) {
        off++; /* its NUL */
    }
    if ((r->caps & CLINK_MY_CONNECT_WITH_DB) && off < n) {
        if (cstr(p, n, &off, r->db, sizeof(r->db), 1) < 0) {
            return -CLINK_EPROTO;
        }
    }
    if ((r->caps & CLINK_MY_PLUGIN_AUTH) && off < n) {
        if (cstr(p, n, &off, r->plugin, sizeof(r->plugin), 1) < 0) {
            return -CLINK_EPROTO;
        }
    }
    if ((r->caps & CLINK_MY_CONNECT_ATTRS) && off < n) {
        uint64_t total;
        size_t used = clink__mysql_lenenc_get(p + off, n - off, &total);
        if (used == 0 || total > n - off - used) {
            return -CLINK_EPROTO;
        }
        off += used + (size_t)total; /* key/value pairs we do not use */
    }
    return off <= n ? 0 : -CLINK_EPROTO;
}

int clink__mysql_parse_change_user(const uint8_t *p, size_t n, uint32_t caps, struct clink__mysql_response *r)
{
    memset(r, 0, sizeof(*r));
    r->caps = caps;
    if (n < 1 || p[0] != CLINK_MY_COM_CHANGE_USER) {
        return -CLINK_EPROTO;
    }
    size_t off = 1;
    if (cstr(p, n, &off, r->user, sizeof(r->user), 0) < 0) {
        return -CLINK_EPROTO;
    }
    for (const char *u = r->user; *u; u++) {
        if ((unsigned char)*u < 0x20 || *u == 0x7f) {
            return -CLINK_EPROTO; /* as at the first login: a control character would shape log lines */
        }
    }
    size_t alen;
    if (caps & CLINK_MY_SECURE_CONNECTION) {
        /* One length byte, whatever PLUGIN_AUTH_LENENC says (MySQL's parse_com_change_user_packet). */
        if (off >= n) {
            return -CLINK_EPROTO;
        }
        alen = p[off++];
        if (alen > n - off) {
            return -CLINK_EPROTO;
        }
        r->auth = p + off;
        off += alen;
    } else {
        const uint8_t *z = memchr(p + off, 0, n - off);
        if (z == NULL) {
            return -CLINK_EPROTO;
        }
        alen = (size_t)(z - (p + off));
        if (alen > 255) {
            return -CLINK_EPROTO; /* as at the first login: no plugin's answer is longer */
        }
        r->auth = p + off;
        off += alen + 1;
    }
    r->auth_len = alen;
    /* The database, NUL-terminated; MySQL's own client ends the packet without it when it sends nothing after. */
    if (off < n && cstr(p, n, &off, r->db, sizeof(r->db), 1) < 0) {
        return -CLINK_EPROTO;
    }
    if (n - off >= 2) {
        r->charset = p[off]; /* two bytes, as MySQL reads them only when both are there */
        off += 2;
    } else {
        off = n;
    }
    if ((caps & CLINK_MY_PLUGIN_AUTH) && off < n && cstr(p, n, &off, r->plugin, sizeof(r->plugin), 1) < 0) {
        return -CLINK_EPROTO;
    }
    if ((caps & CLINK_MY_CONNECT_ATTRS) && off < n) {
        uint64_t total;
        size_t used = clink__mysql_lenenc_get(p + off, n - off, &total);
        if (used == 0 || total > n - off - used) {
            return -CLINK_EPROTO;
        }
        off += used + (size_t)total; /* key/value pairs we do not use */
    }
    return off <= n ? 0 : -CLINK_EPROTO; /* bytes after them are passed over, as at the first login */
}

size_t clink__mysql_lenenc_put(uint8_t *out, uint64_t v)
{
    if (v < 251) {
        out[0] = (uint8_t)v;
        return 1;
    }
    size_t n = v < (1u << 16) ? 2 : v < (1u << 24) ? 3 : 8;
    out[0] = n == 2 ? 0xfc : n == 3 ? 0xfd : 0xfe;
    for (size_t i = 0; i < n; i++) {
        out[1 + i] = (uint8_t)(v >> (8 * i));
    }
    return 1 + n;
}

size_t clink__mysql_lenenc_get(const uint8_t *p, size_t n, uint64_t *v)
{
    if (n == 0 || p[0] == 0xfb || p[0] == 0xff) {
        return 0;
    }
    if (p[0] < 0xfb) {
        *v = p[0];
        return 1;
    }
    size_t len = p[0] == 0xfc ? 2 : p[0] == 0xfd ? 3 : 8;
    if (n < 1 + len) {
        return 0;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        x |= (uint64_t)p[1 + i] << (8 * i);
    }
    *v = x;
    return 1 + len;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

size_t clink__mysql_ok(uint8_t *out, size_t cap, uint64_t affected, uint16_t status, const char *info)
{
    size_t il = info ? strlen(info) : 0;
    if (cap < 1 + 9 + 9 + 4 + 9 + il) {
        return 0;
    }
    size_t n = 0;
    out[n++] = 0x00;
    n += clink__mysql_lenenc_put(out + n, affected);
    n += clink__mysql_lenenc_put(out + n, 0); /* last insert id */
    put16(out + n, status);
    put16(out + n + 2, 0); /* warnings */
    n += 4;
    if (il == 0) {
        return n;
    }
    /*
     * Length-encoded, as MySQL's server writes it (net_send_ok) and clients
     * read it: libmariadb read the first byte of a bare string as its length.
     */
    n += clink__mysql_lenenc_put(out + n, il);
    memcpy(out + n, info, il);
    return n + il;
}

size_t clink__mysql_err(uint8_t *out, size_t cap, uint16_t code, const char *sqlstate, const char *msg)
{
    size_t ml = strlen(msg);
    if (ml > 512) {
        ml = 512;
    }
    if (cap < 9 + ml || strlen(sqlstate) != 5) {
        return 0;
    }
    out[0] = 0xff;
    put16(out + 1, code);
    out[3] = '#';
    memcpy(out + 4, sqlstate, 5);
    memcpy(out + 9, msg, ml);
    return 9 + ml;
}

size_t clink__mysql_eof(uint8_t *out, size_t cap, uint16_t status)
{
    if (cap < 5) {
        return 0;
    }
    out[0] = 0xfe;
    put16(out + 1, 0); /* warnings */
    put16(out + 3, status);
    return 5;
}

static size_t lenenc_str(uint8_t *out, const char *s, size_t len)
{
    size_t n = clink__mysql_lenenc_put(out, len);
    memcpy(out + n, s, len);
    return n + len;
}

size_t clink__mysql_coldef(uint8_t *out, size_t cap, const char *name)
{
    size_t nl = strlen(name);
    if (nl > 250 || cap < 64 + 2 * nl) {
        return 0;
    }
    size_t n = 0;
    n += lenenc_str(out + n, "def", 3); /* catalog */
    n += lenenc_str(out + n, "", 0);    /* schema */
    n += lenenc_str(out + n, "", 0);    /* table */
    n += lenenc_str(out + n, "", 0);    /* org_table */
    n += lenenc_str(out + n, name, nl);
    n += lenenc_str(out + n, name, nl); /* org_name */
    out[n++] = 0x0c;                    /* length of the fixed fields */
    put16(out + n, 255);                /* utf8mb4_0900_ai_ci */
    out[n + 2] = 0x00;                  /* column length: 1024 */
    out[n + 3] = 0x04;
    out[n + 4] = 0;
    out[n + 5] = 0;
    out[n + 6] = 0xfd; /* MYSQL_TYPE_VAR_STRING */
    put16(out + n + 7, 0);
    out[n + 9] = 0; /* decimals */
    out[n + 10] = 0;
    out[n + 11] = 0;
    return n + 12;
}

size_t clink__mysql_row(uint8_t *out, size_t cap, const char *const *cells, unsigned ncells)
{
    size_t need = 0;
    for (unsigned i = 0; i < ncells; i++) {
        need += cells[i] ? 9 + strlen(cells[i]) : 1;
    }
    if (cap < need) {
        return 0;
    }
    size_t n = 0;
    for (unsigned i = 0; i < ncells; i++) {
        if (cells[i] == NULL) {
            out[n++] = 0xfb;
        } else {
            n += lenenc_str(out + n, cells[i], strlen(cells[i]));
        }
    }
    return n;
}

int clink__mysql_set_option(const uint8_t *p, size_t n)
{
    if (n != 3 || p[2] != 0 || p[1] > 1) {
        return -1;
    }
    return p[1];
}

size_t clink__mysql_field_list_table(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 1; i < n && p[i] != 0 && k < 64 && k + 1 < cap; i++) {
        out[k++] = p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i];
    }
    if (cap > 0) {
        out[k] = '\0';
    }
    return k;
}
