#include "transport/frame.h"

#include <string.h>

#include "clink/accounts.h"
#include "clink/error.h"

void clink__frame_encode(uint8_t out[CLINK_FRAME_HDR], const struct clink_frame_hdr *h)
{
    out[0] = h->type;
    out[1] = h->flags;
    clink__put_u16(out + 2, h->method);
    clink__put_u32(out + 4, h->length);
    clink__put_u64(out + 8, h->id);
}

/* Which version-2 flags each type may carry (SETTINGS, CREDIT without an id: none). */
static uint8_t flags_allowed(uint8_t type, uint64_t id)
{
    switch (type) {
    case CLINK_FRAME_REQUEST:
        return CLINK_FLAG_MORE | CLINK_FLAG_END | CLINK_FLAG_STREAM;
    case CLINK_FRAME_RESPONSE:
        return CLINK_FLAG_MORE;
    case CLINK_FRAME_DATA:
        return CLINK_FLAG_MORE | CLINK_FLAG_END | CLINK_FLAG_OPENER;
    case CLINK_FRAME_CREDIT:
        return id != 0 ? CLINK_FLAG_OPENER : 0;
    default:
        return 0;
    }
}

int clink__frame_decode(const uint8_t in[CLINK_FRAME_HDR], uint32_t max_frame, unsigned version,
                        struct clink_frame_hdr *h)
{
    h->type = in[0];
    h->flags = in[1];
    h->method = clink__get_u16(in + 2);
    h->length = clink__get_u32(in + 4);
    h->id = clink__get_u64(in + 8);

    /* Reserved bits must be zero so a later version can give them meaning (version 1: all of them). */
    uint8_t allowed = version >= 2 ? flags_allowed(h->type, h->id) : 0;
    if ((h->flags & (uint8_t)~allowed) != 0) {
        return -CLINK_EPROTO;
    }
    /* END ends a direction with its last chunk; STREAM opens one with its first (native.c checks which came). */
    if ((h->flags & CLINK_FLAG_END) && (h->flags & CLINK_FLAG_MORE)) {
        return -CLINK_EPROTO;
    }
    if (h->type != CLINK_FRAME_REQUEST && h->method != 0) {
        return -CLINK_EPROTO;
    }
    if (version < 2 && h->type > CLINK_FRAME_CANCEL) {
        return -CLINK_EPROTO;
    }
    switch (h->type) {
    case CLINK_FRAME_HELLO:
        return h->length >= CLINK_HELLO_LEN && h->length <= CLINK_HELLO_MAX && h->id == 0 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_PING:
    case CLINK_FRAME_PONG:
        return h->length == CLINK_PING_LEN ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_GOAWAY:
        return h->length == CLINK_GOAWAY_LEN && h->id == 0 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_CANCEL:
        return h->length == 0 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_SETTINGS:
        return h->length == CLINK_SETTINGS_LEN && h->id == 0 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_CREDIT:
        return h->length == CLINK_CREDIT_LEN ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_ERROR:
        if (h->length < CLINK_ERROR_MIN) {
            return -CLINK_EPROTO;
        }
        return h->length > max_frame ? -CLINK_EFRAMETOOBIG : 0;
    case CLINK_FRAME_DATA:
        if (h->id == 0) {
            return -CLINK_EPROTO;
        }
        return h->length > max_frame ? -CLINK_EFRAMETOOBIG : 0;
    case CLINK_FRAME_REQUEST:
    case CLINK_FRAME_RESPONSE:
        return h->length > max_frame ? -CLINK_EFRAMETOOBIG : 0;
    default:
        return -CLINK_EPROTO;
    }
}

void clink__settings_encode(uint8_t out[CLINK_SETTINGS_LEN], const struct clink_settings *s)
{
    clink__put_u32(out, s->max_message);
    clink__put_u32(out + 4, s->conn_window);
    clink__put_u32(out + 8, s->stream_window);
}

int clink__settings_decode(const uint8_t in[CLINK_SETTINGS_LEN], struct clink_settings *s)
{
    s->max_message = clink__get_u32(in);
    s->conn_window = clink__get_u32(in + 4);
    s->stream_window = clink__get_u32(in + 8);
    if (s->max_message < CLINK_CHUNK || s->conn_window > CLINK_WINDOW_MAX || s->stream_window > CLINK_WINDOW_MAX ||
        s->stream_window < 4 * CLINK_CHUNK) {
        return -CLINK_EPROTO;
    }
    /* Any message max_message allows must fit the part of the window a receiver may hold back (a quarter). */
    if ((uint64_t)s->max_message > (uint64_t)s->conn_window / 4 * 3) {
        return -CLINK_EPROTO;
    }
    return 0;
}

size_t clink__hello_encode(uint8_t out[CLINK_HELLO_MAX], const struct clink_hello *h)
{
    clink__put_u16(out, h->min_version);
    clink__put_u16(out + 2, h->max_version);
    clink__put_u32(out + 4, h->max_frame);
    clink__put_u32(out + 8, h->flags);
    if (!(h->flags & CLINK_HELLO_LOGIN)) {
        return CLINK_HELLO_LEN;
    }
    size_t ulen = strnlen(h->user, 64);
    uint8_t *p = out + CLINK_HELLO_LEN;
    *p++ = (uint8_t)ulen;
    memcpy(p, h->user, ulen);
    p += ulen;
    *p++ = h->method;
    *p++ = h->auth_len;
    memcpy(p, h->auth, h->auth_len);
    p += h->auth_len;
    return (size_t)(p - out);
}

int clink__hello_decode(const uint8_t *in, size_t len, struct clink_hello *h)
{
    memset(h, 0, sizeof(*h));
    if (len < CLINK_HELLO_LEN || len > CLINK_HELLO_MAX) {
        return -CLINK_EPROTO;
    }
    h->min_version = clink__get_u16(in);
    h->max_version = clink__get_u16(in + 2);
    h->max_frame = clink__get_u32(in + 4);
    h->flags = clink__get_u32(in + 8);
    if (h->min_version == 0 || h->min_version > h->max_version || h->max_frame < CLINK_MAX_FRAME_FLOOR ||
        (h->flags & ~CLINK_HELLO_LOGIN) != 0) {
        return -CLINK_EPROTO;
    }
    const uint8_t *p = in + CLINK_HELLO_LEN, *end = in + len;
    if (!(h->flags & CLINK_HELLO_LOGIN)) {
        return p == end ? 0 : -CLINK_EPROTO;
    }
    /* Login part: every length is checked against what is left before it is used. */
    if (end - p < 1 || p[0] > 64 || end - p < 1 + p[0] + 2) {
        return -CLINK_EPROTO;
    }
    size_t ulen = *p++;
    for (size_t i = 0; i < ulen; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            return -CLINK_EPROTO;
        }
    }
    memcpy(h->user, p, ulen);
    h->user[ulen] = '\0';
    p += ulen;
    h->method = *p++;
    h->auth_len = *p++;
    if (h->method > CLINK_LOGIN_SCRAMBLE_BOUND || end - p != h->auth_len) {
        return -CLINK_EPROTO;
    }
    memcpy(h->auth, p, h->auth_len);
    return 0;
}

int clink__hello_pick(const struct clink_hello *ours, const struct clink_hello *theirs)
{
    uint16_t hi = ours->max_version < theirs->max_version ? ours->max_version : theirs->max_version;
    uint16_t lo = ours->min_version > theirs->min_version ? ours->min_version : theirs->min_version;
    return hi >= lo ? hi : -CLINK_EVERSION;
}
