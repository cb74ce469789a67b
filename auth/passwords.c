/*
 * Password verifiers: mysql_native_password (SHA-1 of SHA-1, OpenSSL) and
 * caching_sha2_password (SHA-256 crypt, libxcrypt), made from a password and
 * checked against a cleartext or a scramble login. Apart from the store
 * (accounts.c) because this is where passwords and the hashes that stand
 * for them are handled, wiped and compared in constant time; the store
 * keeps only the verifiers.
 */
#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "auth/accounts_int.h"
#include "auth/errbuf.h"

static void native_stage2(const char *password, size_t len, uint8_t stage2[20])
{
    uint8_t stage1[20];
    SHA1((const unsigned char *)password, len, stage1);
    SHA1(stage1, sizeof(stage1), stage2);
    OPENSSL_cleanse(stage1, sizeof(stage1));
}

static void hex_upper(const uint8_t *b, size_t n, char *out)
{
    static const char d[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = s[2 * i + (size_t)k];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
            if (d < 0) {
                return -1;
            }
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return s[2 * n] == '\0' ? 0 : -1;
}

int clink__valid_native(const char *v)
{
    uint8_t b[20];
    return v[0] == '*' && unhex(v + 1, b, sizeof(b)) == 0;
}

int clink__valid_sha2(const char *v)
{
    return strncmp(v, "$5$", 3) == 0 && strlen(v) < SHA2_MAX && strchr(v + 3, '$') != NULL;
}

int clink__make_verifiers(const char *password, struct clink__account *a, char *err, size_t errlen)
{
    a->native[0] = a->sha2[0] = '\0';
    if (password == NULL || password[0] == '\0') {
        return 0;
    }
    size_t len = strlen(password);
    if (len > CLINK_PASSWORD_MAX) {
        clink__set_err(err, errlen, "password longer than %d bytes", CLINK_PASSWORD_MAX);
        return -CLINK_EINVAL;
    }
    uint8_t stage2[20];
    native_stage2(password, len, stage2);
    a->native[0] = '*';
    hex_upper(stage2, sizeof(stage2), a->native + 1);

    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd == NULL) {
        return -CLINK_ENOMEM;
    }
    int ret = 0;
    /* NULL random bytes: libxcrypt reads the OS's random source itself. */
    if (crypt_gensalt_rn("$5$", 5000, NULL, 0, setting, sizeof(setting)) == NULL ||
        crypt_rn(password, setting, cd, sizeof(*cd)) == NULL || cd->output[0] == '*' ||
        strlen(cd->output) >= sizeof(a->sha2)) {
        clink__set_err(err, errlen, "SHA-256 crypt failed: %s", strerror(errno));
        ret = -CLINK_EINTERNAL;
    } else {
        memcpy(a->sha2, cd->output, strlen(cd->output) + 1);
    }
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return ret;
}

_Atomic unsigned long clink__sha2_crypts;

/*
 * Every cleartext check costs one SHA-256 crypt, whatever the account holds:
 * against its caching_sha2_password verifier, or against a fixed one when it
 * has only mysql_native_password's (then checked too). A failed login then
 * takes as long for either kind of account (0.1 ms against 2-3 ms told them
 * apart), and as long as one for a name that does not exist.
 */
int clink__check_cleartext(const struct clink__account *a, const uint8_t *pw, size_t len)
{
    static const char dummy[] = "$5$rounds=5000$clinkclinkclink$";
    int too_long = len > CLINK_PASSWORD_MAX;
    if (too_long) {
        len = CLINK_PASSWORD_MAX; /* hashed all the same, and refused below */
    }
    char buf[CLINK_PASSWORD_MAX + 1];
    if (len > 0) {
        memcpy(buf, pw, len);
    }
    buf[len] = '\0';
    int ok = 0;
    const char *setting = a->sha2[0] ? a->sha2 : dummy;
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd != NULL) {
        atomic_fetch_add_explicit(&clink__sha2_crypts, 1, memory_order_relaxed);
        if (crypt_rn(buf, setting, cd, sizeof(*cd)) != NULL && strlen(cd->output) == strlen(setting)) {
            ok = a->sha2[0] && CRYPTO_memcmp(cd->output, setting, strlen(setting)) == 0;
        }
        OPENSSL_cleanse(cd, sizeof(*cd));
        free(cd);
    }
    if (too_long || len == 0 || memchr(buf, 0, len) != NULL) {
        ok = 0; /* too long, empty, or an embedded NUL that would make the crypt see a shorter password */
    } else if (!a->sha2[0] && a->native[0]) {
        uint8_t mine[20], want[20];
        native_stage2(buf, len, mine);
        ok = unhex(a->native + 1, want, sizeof(want)) == 0 && CRYPTO_memcmp(mine, want, sizeof(want)) == 0;
        OPENSSL_cleanse(mine, sizeof(mine));
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return ok;
}

/*
 * The mask mysql_native_password XORs over SHA1(pw): SHA1(scramble || stage2),
 * or, bound to a TLS session, SHA1(scramble || binding || stage2): a relay
 * that forwards the answer into another session meets another binding, and
 * the answer proves nothing there.
 */
static void scramble_mask(const uint8_t *scramble, const uint8_t *binding, const uint8_t stage2[20], uint8_t mask[20])
{
    uint8_t in[CLINK_SCRAMBLE_LEN + CLINK_BINDING_LEN + 20];
    size_t n = 0;
    memcpy(in, scramble, CLINK_SCRAMBLE_LEN);
    n += CLINK_SCRAMBLE_LEN;
    if (binding != NULL) {
        memcpy(in + n, binding, CLINK_BINDING_LEN);
        n += CLINK_BINDING_LEN;
    }
    memcpy(in + n, stage2, 20);
    n += 20;
    SHA1(in, n, mask);
    OPENSSL_cleanse(in, sizeof(in));
}

static int scramble_answer(const char *password, const uint8_t *scramble, const uint8_t *binding, uint8_t out[20])
{
    if (password == NULL || scramble == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    uint8_t stage1[20], stage2[20], mask[20];
    SHA1((const unsigned char *)password, strlen(password), stage1);
    SHA1(stage1, sizeof(stage1), stage2);
    scramble_mask(scramble, binding, stage2, mask);
    for (int i = 0; i < 20; i++) {
        out[i] = stage1[i] ^ mask[i];
    }
    OPENSSL_cleanse(stage1, sizeof(stage1));
    OPENSSL_cleanse(stage2, sizeof(stage2));
    OPENSSL_cleanse(mask, sizeof(mask));
    return 0;
}

int clink_login_scramble(const char *password, const uint8_t scramble[CLINK_SCRAMBLE_LEN], uint8_t out[20])
{
    return scramble_answer(password, scramble, NULL, out);
}

int clink_login_scramble_bound(const char *password, const uint8_t scramble[CLINK_SCRAMBLE_LEN],
                               const uint8_t binding[CLINK_BINDING_LEN], uint8_t out[20])
{
    return binding == NULL ? -CLINK_EINVAL : scramble_answer(password, scramble, binding, out);
}

/*
 * mysql_native_password: answer = SHA1(pw) ^ mask, so SHA1(answer ^ mask) ==
 * stage2, the stored verifier (binding: NULL for the unbound answer).
 */
int clink__check_scramble(const struct clink__account *a, const uint8_t *ans, size_t len, const uint8_t *scramble,
                          const uint8_t *binding)
{
    uint8_t stage2[20], mask[20], stage1[20], again[20];
    if (len != 20 || scramble == NULL || !a->native[0] || unhex(a->native + 1, stage2, sizeof(stage2)) != 0) {
        return 0;
    }
    scramble_mask(scramble, binding, stage2, mask);
    for (int i = 0; i < 20; i++) {
        stage1[i] = ans[i] ^ mask[i];
    }
    SHA1(stage1, sizeof(stage1), again);
    int ok = CRYPTO_memcmp(again, stage2, sizeof(stage2)) == 0;
    OPENSSL_cleanse(stage1, sizeof(stage1));
    OPENSSL_cleanse(mask, sizeof(mask));
    OPENSSL_cleanse(again, sizeof(again));
    return ok;
}
