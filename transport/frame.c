#include "transport/frame.h"

#include "clink/error.h"

void clink__frame_encode(uint8_t out[CLINK_FRAME_HDR], const struct clink_frame_hdr *h)
{
    out[0] = h->type;
    out[1] = h->flags;
    clink__put_u16(out + 2, h->method);
    clink__put_u32(out + 4, h->length);
    clink__put_u64(out + 8, h->id);
}

int clink__frame_decode(const uint8_t in[CLINK_FRAME_HDR], uint32_t max_frame, struct clink_frame_hdr *h)
{
    h->type = in[0];
    h->flags = in[1];
    h->method = clink__get_u16(in + 2);
    h->length = clink__get_u32(in + 4);
    h->id = clink__get_u64(in + 8);

    /* Reserved bits must be zero so a later version can give them meaning. */
    if (h->flags != 0) {
        return -CLINK_EPROTO;
    }
    if (h->type != CLINK_FRAME_REQUEST && h->method != 0) {
        return -CLINK_EPROTO;
    }
    switch (h->type) {
    case CLINK_FRAME_HELLO:
        return h->length == CLINK_HELLO_LEN && h->id == 0 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_PING:
    case CLINK_FRAME_PONG:
        return h->length == CLINK_PING_LEN ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_GOAWAY:
        return h->length == CLINK_GOAWAY_LEN && h->id == 0 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_CANCEL:
        return h->length == 0 ? 0 : -CLINK_EPROTO;
    case CLINK_FRAME_ERROR:
        if (h->length < CLINK_ERROR_MIN) {
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

void clink__hello_encode(uint8_t out[CLINK_HELLO_LEN], const struct clink_hello *h)
{
    clink__put_u16(out, h->min_version);
    clink__put_u16(out + 2, h->max_version);
    clink__put_u32(out + 4, h->max_frame);
    clink__put_u32(out + 8, h->flags);
}

int clink__hello_decode(const uint8_t *in, size_t len, struct clink_hello *h)
{
    if (len != CLINK_HELLO_LEN) {
        return -CLINK_EPROTO;
    }
    h->min_version = clink__get_u16(in);
    h->max_version = clink__get_u16(in + 2);
    h->max_frame = clink__get_u32(in + 4);
    h->flags = clink__get_u32(in + 8);
    if (h->min_version == 0 || h->min_version > h->max_version || h->max_frame < CLINK_MAX_FRAME_FLOOR ||
        h->flags != 0) {
        return -CLINK_EPROTO;
    }
    return 0;
}

int clink__hello_pick(const struct clink_hello *ours, const struct clink_hello *theirs)
{
    uint16_t hi = ours->max_version < theirs->max_version ? ours->max_version : theirs->max_version;
    uint16_t lo = ours->min_version > theirs->min_version ? ours->min_version : theirs->min_version;
    return hi >= lo ? hi : -CLINK_EVERSION;
}
