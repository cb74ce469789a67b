/*
 * clink frame codec: pure functions, no I/O (fuzzed in fuzz/).
 *
 * Every frame is a 16-byte header then `length` payload bytes, big-endian:
 *   u8 type | u8 flags | u16 method | u32 length | u64 id
 * flags are 0 in version 1; version 2 gives them meaning (CLINK_FLAG_*) and
 * adds SETTINGS, DATA and CREDIT (chunked messages and streams).
 * See docs/protocol.md for each type's meaning and payload.
 */
#ifndef CLINK_TRANSPORT_FRAME_H
#define CLINK_TRANSPORT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define CLINK_FRAME_HDR 16
#define CLINK_HELLO_LEN 12 /* without the login part */
/* HELLO flags: the client's HELLO carries a login (u8 ulen, user, u8 method, u8 alen, auth). */
#define CLINK_HELLO_LOGIN 1u
#define CLINK_HELLO_MAX   (CLINK_HELLO_LEN + 1 + 64 + 1 + 1 + 255)
#define CLINK_PING_LEN    8
#define CLINK_GOAWAY_LEN  8
#define CLINK_ERROR_MIN   4

enum clink_frame_type {
    CLINK_FRAME_HELLO = 1,
    CLINK_FRAME_REQUEST = 2,
    CLINK_FRAME_RESPONSE = 3,
    CLINK_FRAME_ERROR = 4,
    CLINK_FRAME_PING = 5,
    CLINK_FRAME_PONG = 6,
    CLINK_FRAME_GOAWAY = 7,
    CLINK_FRAME_CANCEL = 8,
    /* version 2 */
    CLINK_FRAME_SETTINGS = 9, /* id 0: u32 max_message, u32 conn_window, u32 stream_window */
    CLINK_FRAME_DATA = 10,    /* a stream's message chunk */
    CLINK_FRAME_CREDIT = 11,  /* u32 bytes granted, to a stream (id) or the connection (id 0) */
};

/*
 * Version 2 flags. MORE: more chunks of this message follow (same type and
 * id). END: the sender's direction of the stream ends with this message.
 * STREAM: this REQUEST opens a stream. OPENER: the frame's sender opened the
 * stream it names (stream ids are the opener's call ids, so both sides'
 * streams can share a number).
 */
#define CLINK_FLAG_MORE   0x01u
#define CLINK_FLAG_END    0x02u
#define CLINK_FLAG_STREAM 0x04u
#define CLINK_FLAG_OPENER 0x08u

#define CLINK_SETTINGS_LEN 12
#define CLINK_CREDIT_LEN   4
/* Payload per chunk: with its header, one full TLS record (16384 bytes of plaintext). */
#define CLINK_CHUNK 16368u
/* Largest window a peer may grant (as HTTP/2: 2^31 - 1); more is a protocol error. */
#define CLINK_WINDOW_MAX 0x7fffffffu

struct clink_frame_hdr {
    uint8_t type;
    uint8_t flags;
    uint16_t method;
    uint32_t length;
    uint64_t id;
};

struct clink_hello {
    uint16_t min_version, max_version;
    uint32_t max_frame;
    uint32_t flags;
    /* login part (flags & CLINK_HELLO_LOGIN): who, and the proof (a secret: wipe it after use) */
    char user[65];
    uint8_t method; /* enum clink_login_method */
    uint8_t auth_len;
    uint8_t auth[255];
};

void clink__frame_encode(uint8_t out[CLINK_FRAME_HDR], const struct clink_frame_hdr *h);

/*
 * Decode and validate a header against max_frame (the largest payload we
 * accept) and the protocol version in force (1 before the HELLO exchange
 * ends). Returns 0, -CLINK_EPROTO (unknown type, reserved bits, a payload
 * length the type does not allow) or -CLINK_EFRAMETOOBIG.
 */
int clink__frame_decode(const uint8_t in[CLINK_FRAME_HDR], uint32_t max_frame, unsigned version,
                        struct clink_frame_hdr *h);

struct clink_settings {
    uint32_t max_message;   /* largest reassembled message the sender of SETTINGS accepts */
    uint32_t conn_window;   /* bytes of chunked messages and stream data it takes in, per connection */
    uint32_t stream_window; /* ... per stream */
};
void clink__settings_encode(uint8_t out[CLINK_SETTINGS_LEN], const struct clink_settings *s);
/* Returns 0 or -CLINK_EPROTO (a value below its floor or above CLINK_WINDOW_MAX, a window below max_message). */
int clink__settings_decode(const uint8_t in[CLINK_SETTINGS_LEN], struct clink_settings *s);

/* Writes CLINK_HELLO_LEN bytes, plus the login part when flags has CLINK_HELLO_LOGIN. Returns the length. */
size_t clink__hello_encode(uint8_t out[CLINK_HELLO_MAX], const struct clink_hello *h);
/*
 * Returns 0 or -CLINK_EPROTO (min > max, max_frame below the protocol floor,
 * unknown flags, a login part that is malformed or does not fill the payload
 * exactly, a user name with control bytes or NUL, an unknown method).
 */
int clink__hello_decode(const uint8_t *in, size_t len, struct clink_hello *h);

/* Highest version in both ranges, or -CLINK_EVERSION. */
int clink__hello_pick(const struct clink_hello *ours, const struct clink_hello *theirs);

static inline void clink__put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void clink__put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void clink__put_u64(uint8_t *p, uint64_t v)
{
    clink__put_u32(p, (uint32_t)(v >> 32));
    clink__put_u32(p + 4, (uint32_t)v);
}
static inline uint16_t clink__get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t clink__get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t clink__get_u64(const uint8_t *p)
{
    return ((uint64_t)clink__get_u32(p) << 32) | clink__get_u32(p + 4);
}

/* No peer may announce a max frame below this: room for any control frame and an error message. */
#define CLINK_MAX_FRAME_FLOOR 4096

#endif
