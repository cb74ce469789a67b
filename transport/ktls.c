#include "transport/ktls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdio.h>
#include <string.h>

#include "clink/error.h"

static const char *suite_digest(uint16_t suite)
{
    switch (suite) {
    case CLINK_TLS_AES_128_GCM_SHA256:
    case CLINK_TLS_CHACHA20_POLY1305_SHA256:
        return "SHA256";
    case CLINK_TLS_AES_256_GCM_SHA384:
        return "SHA384";
    default:
        return NULL;
    }
}

int clink__tls13_expand_label(uint16_t suite, const uint8_t *secret, size_t secret_len, const char *label, uint8_t *out,
                              size_t out_len)
{
    const char *md = suite_digest(suite);
    size_t llen = strlen(label);
    /* HkdfLabel: uint16 length, opaque label<7..255> = "tls13 " + label, opaque context<0..255> = "". */
    uint8_t info[2 + 1 + 255 + 1];
    if (md == NULL || secret_len == 0 || out_len == 0 || out_len > 0xffff || 6 + llen > 255) {
        return -CLINK_EINVAL;
    }
    size_t n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + llen);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, llen);
    n += llen;
    info[n++] = 0;

    int ret = -CLINK_ETLS;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx != NULL) {
        int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
            OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)md, 0),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)secret, secret_len),
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
            OSSL_PARAM_construct_end(),
        };
        if (EVP_KDF_derive(kctx, out, out_len, params) == 1) {
            ret = 0;
        }
    }
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return ret;
}

int clink__ktls_info(uint16_t suite, const uint8_t *secret, size_t secret_len, uint64_t seq,
                     struct clink__ktls_info *out)
{
    uint8_t key[32], iv[12], rec_seq[8];
    size_t key_len = suite == CLINK_TLS_AES_128_GCM_SHA256 ? 16 : 32;
    memset(out, 0, sizeof(*out));
    int ret = clink__tls13_expand_label(suite, secret, secret_len, "key", key, key_len);
    if (ret == 0) {
        ret = clink__tls13_expand_label(suite, secret, secret_len, "iv", iv, sizeof(iv));
    }
    if (ret < 0) {
        OPENSSL_cleanse(key, sizeof(key));
        return ret;
    }
    for (int i = 0; i < 8; i++) {
        rec_seq[i] = (uint8_t)(seq >> (56 - 8 * i)); /* big-endian, as on the wire */
    }
    /*
     * TLS 1.3 nonce = IV xor padded seq. The kernel's GCM structs split the
     * 12-byte IV into a 4-byte salt and 8 bytes; ChaCha20's takes all 12.
     */
    out->u.base.version = TLS_1_3_VERSION;
    switch (suite) {
    case CLINK_TLS_AES_128_GCM_SHA256:
        out->u.base.cipher_type = TLS_CIPHER_AES_GCM_128;
        memcpy(out->u.gcm128.key, key, 16);
        memcpy(out->u.gcm128.salt, iv, 4);
        memcpy(out->u.gcm128.iv, iv + 4, 8);
        memcpy(out->u.gcm128.rec_seq, rec_seq, 8);
        out->len = sizeof(out->u.gcm128);
        break;
    case CLINK_TLS_AES_256_GCM_SHA384:
        out->u.base.cipher_type = TLS_CIPHER_AES_GCM_256;
        memcpy(out->u.gcm256.key, key, 32);
        memcpy(out->u.gcm256.salt, iv, 4);
        memcpy(out->u.gcm256.iv, iv + 4, 8);
        memcpy(out->u.gcm256.rec_seq, rec_seq, 8);
        out->len = sizeof(out->u.gcm256);
        break;
    default: /* CHACHA20_POLY1305 (anything else failed in the derivation) */
        out->u.base.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
        memcpy(out->u.chacha.key, key, 32);
        memcpy(out->u.chacha.iv, iv, 12);
        memcpy(out->u.chacha.rec_seq, rec_seq, 8);
        out->len = sizeof(out->u.chacha);
        break;
    }
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(iv, sizeof(iv));
    return 0;
}

void clink__ktls_info_wipe(struct clink__ktls_info *info)
{
    OPENSSL_cleanse(info, sizeof(*info));
}

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/* The test seam: tests put a function here that fails on purpose (ENOENT, EINVAL, EBUSY) at one step. */
int (*clink__ktls_setsockopt)(int fd, int level, int name, const void *val, socklen_t len) = setsockopt;

int clink__ktls_install(int fd, int tx, const struct clink__ktls_info *info, int *ulp_done, char *why, size_t cap)
{
    if (!*ulp_done) {
        if (clink__ktls_setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) < 0) {
            int e = errno;
            snprintf(why, cap, "%s", e == ENOENT ? "the kernel has no tls module (ENOENT)" : strerror(e));
            return -e;
        }
        *ulp_done = 1;
    }
    if (clink__ktls_setsockopt(fd, SOL_TLS, tx ? TLS_TX : TLS_RX, &info->u, info->len) < 0) {
        int e = errno;
        snprintf(why, cap, "setsockopt(TLS_%s): %s", tx ? "TX" : "RX", strerror(e));
        return -e;
    }
    return 0;
}

int clink__ktls_rec_seq(int fd, int tx, uint64_t *seq)
{
    /* The kernel answers the bare header, then wants the cipher's exact struct size. */
    struct clink__ktls_info info;
    socklen_t len = sizeof(info.u.base);
    if (getsockopt(fd, SOL_TLS, tx ? TLS_TX : TLS_RX, &info.u, &len) < 0) {
        return -errno;
    }
    len = info.u.base.cipher_type == TLS_CIPHER_AES_GCM_128   ? sizeof(info.u.gcm128)
          : info.u.base.cipher_type == TLS_CIPHER_AES_GCM_256 ? sizeof(info.u.gcm256)
                                                              : sizeof(info.u.chacha);
    if (getsockopt(fd, SOL_TLS, tx ? TLS_TX : TLS_RX, &info.u, &len) < 0) {
        return -errno;
    }
    const unsigned char *rs = info.u.base.cipher_type == TLS_CIPHER_AES_GCM_128   ? info.u.gcm128.rec_seq
                              : info.u.base.cipher_type == TLS_CIPHER_AES_GCM_256 ? info.u.gcm256.rec_seq
                                                                                  : info.u.chacha.rec_seq;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | rs[i];
    }
    *seq = v;
    clink__ktls_info_wipe(&info);
    return 0;
}
