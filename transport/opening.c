#include "transport/opening.h"
#include "transport/mysql_proto.h"

#include <string.h>

#include "clink/error.h"

enum clink_opening_kind clink__opening_classify(const uint8_t *b, size_t n)
{
    if (n < CLINK_CLASSIFY_LEN) {
        return CLINK_OPENING_MORE;
    }
    /*
     * A TLS handshake record: content type 22, legacy record version 3.1 or
     * 3.3. A MySQL client's first packet can never start like this in
     * practice: as a MySQL header it would announce a ~66 KB login packet.
     */
    if (b[0] == 0x16 && b[1] == 0x03 && (b[2] == 0x01 || b[2] == 0x03)) {
        return CLINK_OPENING_TLS;
    }
    size_t m = n < CLINK_PLAIN_MAGIC_LEN ? n : CLINK_PLAIN_MAGIC_LEN;
    if (memcmp(b, CLINK_PLAIN_MAGIC, m) == 0) {
        return m == CLINK_PLAIN_MAGIC_LEN ? CLINK_OPENING_PLAIN : CLINK_OPENING_MORE;
    }
    return CLINK_OPENING_OTHER;
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

size_t clink__opening_greeting(uint8_t *out, size_t cap, uint32_t conn_id, const uint8_t scramble[20])
{
    static const char plugin[] = "caching_sha2_password";
    uint32_t caps = CLINK_MY_SERVER_CAPS; /* what transport/mysql.c handles, CLIENT_SSL included */
    uint8_t *p = out + 4;

    if (cap < 128) {
        return 0;
    }
    /* Protocol::HandshakeV10 */
    *p++ = 10;
    memcpy(p, CLINK_MYSQL_SERVER_VERSION, sizeof(CLINK_MYSQL_SERVER_VERSION));
    p += sizeof(CLINK_MYSQL_SERVER_VERSION);
    put_le32(p, conn_id);
    p += 4;
    memcpy(p, scramble, 8);
    p += 8;
    *p++ = 0;
    put_le16(p, (uint16_t)caps);
    p += 2;
    *p++ = 0xff;         /* utf8mb4_0900_ai_ci */
    put_le16(p, 0x0002); /* SERVER_STATUS_AUTOCOMMIT */
    p += 2;
    put_le16(p, (uint16_t)(caps >> 16));
    p += 2;
    *p++ = 21;
    memset(p, 0, 10);
    p += 10;
    memcpy(p, scramble + 8, 12);
    p += 12;
    *p++ = 0;
    memcpy(p, plugin, sizeof(plugin));
    p += sizeof(plugin);

    size_t payload = (size_t)(p - out) - 4;
    out[0] = (uint8_t)payload;
    out[1] = (uint8_t)(payload >> 8);
    out[2] = (uint8_t)(payload >> 16);
    out[3] = 0; /* sequence id */
    return (size_t)(p - out);
}

int clink__opening_greeting_len(const uint8_t hdr[5])
{
    size_t len = (size_t)hdr[0] | ((size_t)hdr[1] << 8) | ((size_t)hdr[2] << 16);
    if (hdr[3] != 0 || len < 1 || len + 4 > CLINK_GREETING_MAX || hdr[4] != 10) {
        return -CLINK_EPROTO;
    }
    return (int)len;
}

int clink__opening_greeting_scramble(const uint8_t *p, size_t n, uint8_t out[20])
{
    /* Protocol::HandshakeV10 after the protocol byte: version NUL | u32 id | 8 bytes | filler | u16 caps | charset
     * | u16 status | u16 caps | u8 auth len | 10 reserved | the other 12 bytes (of at least 13) */
    const uint8_t *nul = memchr(p, 0, n);
    if (nul == NULL) {
        return -CLINK_EPROTO;
    }
    size_t off = (size_t)(nul - p) + 1;
    if (n - off < 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + 12) {
        return -CLINK_EPROTO;
    }
    memcpy(out, p + off + 4, 8);
    if (p[off + 12] != 0 || p[off + 20] < 21) {
        return -CLINK_EPROTO; /* no filler byte, or auth data shorter than a 20-byte scramble + NUL */
    }
    memcpy(out + 8, p + off + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10, 12);
    return 0;
}

size_t clink__opening_mysql_refusal(uint8_t *out, size_t cap, uint8_t seq)
{
    static const char msg[] = "This clink node does not serve MySQL-protocol clients";
    uint8_t *p = out + 4;

    if (cap < 128) {
        return 0;
    }
    *p++ = 0xff;
    put_le16(p, 1105); /* ER_UNKNOWN_ERROR */
    p += 2;
    memcpy(p, "#HY000", 6);
    p += 6;
    memcpy(p, msg, sizeof(msg) - 1);
    p += sizeof(msg) - 1;
    size_t payload = (size_t)(p - out) - 4;
    out[0] = (uint8_t)payload;
    out[1] = (uint8_t)(payload >> 8);
    out[2] = (uint8_t)(payload >> 16);
    out[3] = seq;
    return (size_t)(p - out);
}
