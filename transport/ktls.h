/*
 * kTLS key material: what the kernel needs to take over one direction of an
 * established TLS 1.3 connection's record layer. OpenSSL 3.0 over our BIO
 * enables no kTLS itself (it only offers TLS 1.3 transmit, and only to a
 * socket BIO), so clink
 * derives the traffic key and IV from the application traffic secret that
 * the key-log callback reported (RFC 8446 7.3), and packs them with the
 * record sequence number into the kernel's tls12_crypto_info_* struct for
 * setsockopt(SOL_TLS, TLS_TX or TLS_RX).
 *
 * The derivation and packing are pure functions; clink__ktls_install and
 * clink__ktls_rec_seq touch the socket. Secrets and the packed info are
 * wiped (clink__ktls_info_wipe) once installed or abandoned.
 */
#ifndef CLINK_TRANSPORT_KTLS_H
#define CLINK_TRANSPORT_KTLS_H

#include <linux/tls.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The TLS 1.3 suites clink offers, by IANA id: all three are kTLS ciphers on Linux >= 5.11. */
#define CLINK_TLS_AES_128_GCM_SHA256       0x1301
#define CLINK_TLS_AES_256_GCM_SHA384       0x1302
#define CLINK_TLS_CHACHA20_POLY1305_SHA256 0x1303

struct clink__ktls_info {
    union {
        struct tls_crypto_info base;
        struct tls12_crypto_info_aes_gcm_128 gcm128;
        struct tls12_crypto_info_aes_gcm_256 gcm256;
        struct tls12_crypto_info_chacha20_poly1305 chacha;
    } u;
    socklen_t len; /* the exact struct size for setsockopt (the kernel refuses any other) */
};

/*
 * HKDF-Expand-Label(secret, label, "", out_len) (RFC 8446 7.1) with the
 * suite's hash (SHA-256, or SHA-384 for AES-256-GCM). Returns 0, or
 * -CLINK_EINVAL (unknown suite, bad lengths), -CLINK_ETLS (OpenSSL failed).
 */
int clink__tls13_expand_label(uint16_t suite, const uint8_t *secret, size_t secret_len, const char *label, uint8_t *out,
                              size_t out_len);

/*
 * Fill *out for one direction: key and IV derived from the direction's
 * application traffic secret, and seq = records already protected under it
 * (TLS 1.3 starts each key at 0: NewSessionTickets sent or read after the
 * handshake count). Returns 0, or -CLINK_EINVAL / -CLINK_ETLS as above.
 */
int clink__ktls_info(uint16_t suite, const uint8_t *secret, size_t secret_len, uint64_t seq,
                     struct clink__ktls_info *out);

/* Wipe key material. */
void clink__ktls_info_wipe(struct clink__ktls_info *info);

#endif

/*
 * Hand one direction of a connected TCP socket to the kernel: the "tls" ULP
 * first (once per socket), then TLS_RX or TLS_TX. Returns 0, or -errno with
 * why (e.g. "the kernel has no tls module (ENOENT)"). Install RX before TX:
 * a socket whose RX could not be installed is untouched and stays in
 * user-space TLS. Thread: the socket's owner.
 */
int clink__ktls_install(int fd, int tx, const struct clink__ktls_info *info, int *ulp_done, char *why, size_t cap);

/* setsockopt, unless a test put a failing stand-in here (tests/test_ktls.c: the fallback paths). */
extern int (*clink__ktls_setsockopt)(int fd, int level, int name, const void *val, socklen_t len);

/* The kernel's record sequence number for one direction (getsockopt). Returns 0 or -errno. */
int clink__ktls_rec_seq(int fd, int tx, uint64_t *seq);
