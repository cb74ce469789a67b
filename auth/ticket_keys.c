/*
 * Session ticket keys for TLS 1.3 resumption, server side (include/clink/auth.h).
 *
 * A ticket is the session state sealed with AES-256-CBC + HMAC-SHA256 under
 * a named key (OpenSSL's ticket format; we only choose the keys). Keys are
 * either made in memory and rotated on a schedule (current issues, previous
 * still opens), or read from an operator's file shared by a node group, like
 * nginx's ssl_session_ticket_key.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/errbuf.h"
#include "auth/ticket_keys.h"
#include "clink/auth.h"

#define KEY_LEN  80 /* 16 name | 32 HMAC secret | 32 AES-256 key */
#define MAX_KEYS 16

struct key {
    unsigned char name[16];
    unsigned char hmac[32];
    unsigned char aes[32];
};

struct clink_ticket_keys {
    atomic_int refs;
    pthread_mutex_t mu;
    char *file;        /* NULL: in memory, rotated */
    uint32_t rotate_s; /* in memory: seconds a key issues tickets */
    time_t rotated_at;
    struct key keys[MAX_KEYS]; /* [0] issues tickets; all open them */
    int n;
    atomic_uint_fast64_t issued, opened, renewed, unknown;
};

static int ex_index = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The SSL_CTX holds a reference: it may outlive the clink_tls_ctx (connections keep theirs after a reload). */
static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    clink_ticket_keys_free(ptr);
}

static void init_once(void)
{
    ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
}

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* In memory: the current key moves to second place, the one there is wiped. Called with mu held. */
static int rotate(struct clink_ticket_keys *k)
{
    struct key fresh;
    if (RAND_priv_bytes((unsigned char *)&fresh, sizeof(fresh)) != 1) {
        return -CLINK_EINTERNAL;
    }
    OPENSSL_cleanse(&k->keys[1], sizeof(k->keys[1]));
    if (k->n > 0) {
        k->keys[1] = k->keys[0];
    }
    k->keys[0] = fresh;
    k->n = k->n > 0 ? 2 : 1;
    k->rotated_at = now_s();
    OPENSSL_cleanse(&fresh, sizeof(fresh));
    return 0;
}

static int read_keys(const char *file, struct key *out, int *n, char *err, size_t errlen)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        clink__set_err(err, errlen, "%s: %s", file, strerror(errno));
        return -CLINK_ECONFIG;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        clink__set_err(err, errlen, "%s: not a regular file", file);
        close(fd);
        return -CLINK_ECONFIG;
    }
    /* Whoever reads or replaces this file can open or forge every ticket of the group. */
    if (sb.st_uid != geteuid() && sb.st_uid != 0) {
        clink__set_err(err, errlen, "%s: owned by uid %u: ticket keys must belong to this user (uid %u) or root", file,
                       (unsigned)sb.st_uid, (unsigned)geteuid());
        close(fd);
        return -CLINK_ECONFIG;
    }
    if (sb.st_mode & 077) {
        clink__set_err(err, errlen, "%s: mode %03o: ticket keys must be readable by their owner only (chmod 600)", file,
                       (unsigned)(sb.st_mode & 0777));
        close(fd);
        return -CLINK_ECONFIG;
    }
    unsigned char buf[KEY_LEN * MAX_KEYS + 1];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(buf) && (r = read(fd, buf + got, sizeof(buf) - got)) > 0) {
        got += (size_t)r;
    }
    close(fd);
    int ret = 0;
    if (got == 0 || got % KEY_LEN != 0 || got > KEY_LEN * MAX_KEYS) {
        clink__set_err(err, errlen, "%s: %zu bytes: expected 1 to %d keys of %d bytes (e.g. openssl rand %d)", file,
                       got, MAX_KEYS, KEY_LEN, KEY_LEN);
        ret = -CLINK_ECONFIG;
    } else {
        *n = (int)(got / KEY_LEN);
        for (int i = 0; i < *n; i++) {
            memcpy(&out[i], buf + (size_t)i * KEY_LEN, KEY_LEN);
        }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return ret;
}

int clink_ticket_keys_new(const char *file, uint32_t rotate_s, struct clink_ticket_keys **out, char *err, size_t errlen)
{
    if (out == NULL) {
        return -CLINK_EINVAL;
    }
    pthread_once(&once, init_once);
    struct clink_ticket_keys *k = calloc(1, sizeof(*k));
    if (k == NULL || (file != NULL && (k->file = strdup(file)) == NULL)) {
        free(k);
        return -CLINK_ENOMEM;
    }
    atomic_init(&k->refs, 1);
    pthread_mutex_init(&k->mu, NULL);
    k->rotate_s = rotate_s ? rotate_s : 7200; /* the default ticket lifetime: a ticket opens for its whole life */
    int ret = file ? read_keys(file, k->keys, &k->n, err, errlen) : rotate(k);
    if (ret < 0) {
        clink_ticket_keys_free(k);
        return ret;
    }
    *out = k;
    return 0;
}

int clink_ticket_keys_reload(struct clink_ticket_keys *k, char *err, size_t errlen)
{
    if (k == NULL || k->file == NULL) {
        clink__set_err(err, errlen, "these ticket keys have no file");
        return -CLINK_EINVAL;
    }
    struct key fresh[MAX_KEYS];
    int n = 0;
    int ret = read_keys(k->file, fresh, &n, err, errlen);
    if (ret == 0) {
        pthread_mutex_lock(&k->mu);
        OPENSSL_cleanse(k->keys, sizeof(k->keys));
        memcpy(k->keys, fresh, sizeof(struct key) * (size_t)n);
        k->n = n;
        pthread_mutex_unlock(&k->mu);
    }
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return ret;
}

void clink_ticket_keys_ref(struct clink_ticket_keys *k)
{
    atomic_fetch_add(&k->refs, 1);
}

void clink_ticket_keys_free(struct clink_ticket_keys *k)
{
    if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1) {
        return;
    }
    OPENSSL_cleanse(k->keys, sizeof(k->keys));
    pthread_mutex_destroy(&k->mu);
    free(k->file);
    free(k);
}

void clink_ticket_keys_stats(struct clink_ticket_keys *k, struct clink_ticket_stats *out)
{
    out->issued = atomic_load(&k->issued);
    out->opened = atomic_load(&k->opened);
    out->renewed = atomic_load(&k->renewed);
    out->unknown = atomic_load(&k->unknown);
    pthread_mutex_lock(&k->mu);
    out->keys = (unsigned)k->n;
    pthread_mutex_unlock(&k->mu);
}

static int mac_init(EVP_MAC_CTX *hctx, unsigned char *hmac)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, hmac, 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)(uintptr_t) "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/*
 * OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb(3)):
 * enc 1: seal a new ticket under the current key; enc 0: find the key by
 * name and open (2: resume and send the client a fresh ticket; 1 would send
 * none), 0 = unknown key (full handshake), -1 error.
 */
int clink__ticket_keys_cb(SSL *ssl, unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX *cctx,
                          EVP_MAC_CTX *hctx, int enc)
{
    struct clink_ticket_keys *k = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index);
    if (k == NULL) {
        return -1;
    }
    int ret = -1;
    pthread_mutex_lock(&k->mu);
    if (k->file == NULL && now_s() - k->rotated_at >= (time_t)k->rotate_s && rotate(k) < 0) {
        goto out;
    }
    if (enc) {
        struct key *key = &k->keys[0];
        memcpy(name, key->name, 16);
        if (RAND_bytes(iv, 16) == 1 && EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key->aes, iv) == 1 &&
            mac_init(hctx, key->hmac) == 0) {
            atomic_fetch_add(&k->issued, 1);
            ret = 1;
        }
        goto out;
    }
    for (int i = 0; i < k->n; i++) {
        if (CRYPTO_memcmp(name, k->keys[i].name, 16) == 0) {
            if (mac_init(hctx, k->keys[i].hmac) == 0 &&
                EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->keys[i].aes, iv) == 1) {
                atomic_fetch_add(i == 0 ? &k->opened : &k->renewed, 1);
                /* Always 2 ("renew"): TLS 1.3 tickets are single use, so every resumption earns a fresh one. */
                ret = 2;
            }
            goto out;
        }
    }
    atomic_fetch_add(&k->unknown, 1);
    ret = 0;
out:
    pthread_mutex_unlock(&k->mu);
    return ret;
}

int clink__ticket_keys_attach(struct clink_ticket_keys *k, SSL_CTX *server)
{
    pthread_once(&once, init_once);
    if (ex_index < 0 || SSL_CTX_get_ex_data(server, ex_index) != NULL) {
        return -CLINK_EINTERNAL;
    }
    clink_ticket_keys_ref(k);
    if (SSL_CTX_set_ex_data(server, ex_index, k) != 1) {
        clink_ticket_keys_free(k);
        return -CLINK_EINTERNAL;
    }
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(server, clink__ticket_keys_cb) == 1 ? 0 : -CLINK_EINTERNAL;
}
