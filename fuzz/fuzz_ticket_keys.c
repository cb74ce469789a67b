/*
 * The session ticket key file (auth/ticket_keys.c: read_keys, through
 * clink_ticket_keys_new and _reload) and the key lookup by the 16-byte name
 * a client's ticket carries (clink__ticket_keys_cb).
 *
 * Input: bytes 0-1 give the length of the first file, which follows; the
 * rest is the file a reload then reads. Both are written mode 0600.
 *
 * Properties: a file is accepted exactly when it holds 1 to 16 keys of 80
 * bytes, every refusal says why, and a refused reload keeps the keys in use;
 * with the keys accepted, a ticket sealed by the callback carries the first
 * key's name, every key's name opens (the first match wins: "opened" for
 * the first key, "renewed" for others), a name that is no key's is unknown,
 * and what was sealed under a name opens under it (cipher and HMAC keys).
 */
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ticket_keys.h"
#include "clink/auth.h"
#include "fuzz/fuzz.h"

#define KEY_LEN 80

static int valid_len(size_t n)
{
    return n >= KEY_LEN && n <= 16 * KEY_LEN && n % KEY_LEN == 0;
}

/* What the callback must answer for this name, from the file's bytes: 2 (the index in *idx) or 0. */
static int spec_lookup(const uint8_t *file, size_t n, const uint8_t name[16], size_t *idx)
{
    for (size_t i = 0; i < n / KEY_LEN; i++) {
        if (memcmp(file + i * KEY_LEN, name, 16) == 0) {
            *idx = i;
            return 2;
        }
    }
    return 0;
}

struct sealed {
    uint8_t iv[16], ct[32], mac[32];
    int ctlen;
    size_t maclen;
};

static EVP_MAC *hmac;

/*
 * One call of the callback (enc 1 seals, 0 opens name). Sealing puts 16 bytes through the contexts it set up; opening
 * with same (the name belongs to the key that sealed s) checks that they come back.
 */
static int call(SSL *ssl, uint8_t name[16], struct sealed *s, int enc, int same)
{
    static const uint8_t msg[16] = "clink ticket....";
    EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
    EVP_MAC_CTX *hctx = EVP_MAC_CTX_new(hmac);
    FUZZ_CHECK(cctx != NULL && hctx != NULL, "out of memory");
    int ret = clink__ticket_keys_cb(ssl, name, s->iv, cctx, hctx, enc);
    if (ret > 0 && (enc || same)) {
        uint8_t out[48], mac[32];
        int n = 0, fin = 0;
        size_t maclen = 0;
        const uint8_t *in = enc ? msg : s->ct;
        int inlen = enc ? (int)sizeof(msg) : s->ctlen;
        int ok =
            enc ? EVP_EncryptUpdate(cctx, out, &n, in, inlen) == 1 && EVP_EncryptFinal_ex(cctx, out + n, &fin) == 1
                : EVP_DecryptUpdate(cctx, out, &n, in, inlen) == 1 && EVP_DecryptFinal_ex(cctx, out + n, &fin) == 1;
        /* As in a ticket: the HMAC covers the ciphertext. */
        const uint8_t *ct = enc ? out : s->ct;
        size_t ctlen = enc ? (size_t)(n + fin) : (size_t)s->ctlen;
        ok = ok && EVP_MAC_init(hctx, NULL, 0, NULL) == 1 && EVP_MAC_update(hctx, ct, ctlen) == 1 &&
             EVP_MAC_final(hctx, mac, &maclen, sizeof(mac)) == 1;
        FUZZ_CHECK(ok, "the contexts the callback set up do not work (enc %d)", enc);
        if (enc) {
            memcpy(s->ct, out, (size_t)(n + fin));
            s->ctlen = n + fin;
            memcpy(s->mac, mac, maclen);
            s->maclen = maclen;
        } else {
            FUZZ_CHECK(n + fin == (int)sizeof(msg) && memcmp(out, msg, sizeof(msg)) == 0,
                       "a ticket does not open under the name it was sealed with");
            FUZZ_CHECK(maclen == s->maclen && memcmp(mac, s->mac, maclen) == 0, "HMAC key differs from the sealer's");
        }
    }
    EVP_CIPHER_CTX_free(cctx);
    EVP_MAC_CTX_free(hctx);
    return ret;
}

static void check_keys(struct clink_ticket_keys *k, const uint8_t *file, size_t n, const uint8_t *probe)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    FUZZ_CHECK(ctx != NULL, "SSL_CTX_new");
    FUZZ_CHECK(clink__ticket_keys_attach(k, ctx) == 0, "attach");
    SSL *ssl = SSL_new(ctx);
    FUZZ_CHECK(ssl != NULL, "SSL_new");

    struct sealed s;
    uint8_t name[16];
    FUZZ_CHECK(call(ssl, name, &s, 1, 0) == 1 && memcmp(name, file, 16) == 0, "a ticket not sealed by the first key");
    struct clink_ticket_stats before, after;
    for (size_t i = 0; i < n / KEY_LEN; i++) {
        memcpy(name, file + i * KEY_LEN, 16);
        size_t idx = 0;
        FUZZ_CHECK(spec_lookup(file, n, name, &idx) == 2, "oracle");
        clink_ticket_keys_stats(k, &before);
        struct sealed t = s;
        int ret = call(ssl, name, &t, 0, idx == 0); /* a later key with the first one's name is shadowed by it */
        clink_ticket_keys_stats(k, &after);
        FUZZ_CHECK(ret == 2, "key %zu's name does not open: %d", i, ret);
        FUZZ_CHECK(idx == 0 ? after.opened == before.opened + 1 : after.renewed == before.renewed + 1,
                   "key %zu opened as key %zu: counted as the wrong kind", i, idx);
    }
    if (probe != NULL) {
        memcpy(name, probe, 16);
        size_t idx = 0;
        int want = spec_lookup(file, n, name, &idx);
        struct sealed t = s;
        int ret = call(ssl, name, &t, 0, want == 2 && idx == 0);
        FUZZ_CHECK(ret == want, "a ticket named by the client: callback %d, the file says %d", ret, want);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx); /* drops its reference to k */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (hmac == NULL && (hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL) {
        abort();
    }
    if (size < 2) {
        return 0;
    }
    size_t n1 = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 1);
    const uint8_t *f1 = data + 2, *f2 = f1 + n1;
    size_t n2 = size - 2 - n1;
    char path[300], err[256] = "";
    fuzz_path("tickets.key", path, sizeof(path));
    fuzz_write(path, f1, n1, 0600);

    struct clink_ticket_keys *k = NULL;
    int ret = clink_ticket_keys_new(path, 0, &k, err, sizeof(err));
    FUZZ_CHECK((ret == 0) == valid_len(n1), "a file of %zu bytes: %d (%s)", n1, ret, err);
    if (ret < 0) {
        FUZZ_CHECK(ret == -CLINK_ECONFIG && err[0] != '\0', "a refusal (%d) without a reason", ret);
        return 0;
    }
    struct clink_ticket_stats st;
    clink_ticket_keys_stats(k, &st);
    FUZZ_CHECK(st.keys == n1 / KEY_LEN, "%u keys from %zu bytes", st.keys, n1);
    check_keys(k, f1, n1, n2 >= 16 ? f2 : NULL);

    fuzz_write(path, f2, n2, 0600);
    err[0] = '\0';
    ret = clink_ticket_keys_reload(k, err, sizeof(err));
    FUZZ_CHECK((ret == 0) == valid_len(n2), "a reload of %zu bytes: %d (%s)", n2, ret, err);
    clink_ticket_keys_stats(k, &st);
    if (ret == 0) {
        FUZZ_CHECK(st.keys == n2 / KEY_LEN, "%u keys after a reload of %zu bytes", st.keys, n2);
        check_keys(k, f2, n2, f1);
    } else {
        FUZZ_CHECK(ret == -CLINK_ECONFIG && err[0] != '\0', "a refused reload (%d) without a reason", ret);
        FUZZ_CHECK(st.keys == n1 / KEY_LEN, "a refused reload changed the keys");
        check_keys(k, f1, n1, NULL);
    }
    clink_ticket_keys_free(k);
    return 0;
}
