/*
 * A node's side of clink-admin rotate-certs: make a new key here and a
 * signing request for the identity the node has (the key never leaves the
 * node), then take the signed certificate, check it with the key and the
 * node's trust exactly as a reload would, put both files in place (the old
 * ones kept as .bak) and reload. One renewal at a time per process; each
 * server keeps its own pending key.
 */
#include "server/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Renewals of every server of the process, one at a time (each server keeps its own pending key). */
static pthread_mutex_t renew_mu = PTHREAD_MUTEX_INITIALIZER;

static void drop_pending(struct clink_server *srv)
{
    if (srv->renew_key != NULL) {
        OPENSSL_cleanse(srv->renew_key, strlen(srv->renew_key));
        free(srv->renew_key);
    }
    srv->renew_key = NULL;
}

void clink__server_renew_forget(struct clink_server *srv)
{
    pthread_mutex_lock(&renew_mu);
    drop_pending(srv);
    pthread_mutex_unlock(&renew_mu);
}

/* A PEM file of the node's, whole (they are small), or NULL. */
static char *read_text(const char *path)
{
    char *t = NULL;
    return clink__server_read_text(path, 1 << 16, &t, NULL) == 0 ? t : NULL;
}

int clink_server_renew_begin(struct clink_server *srv, char **csr_pem, char **cert_pem, char *err, size_t errlen)
{
    if (srv == NULL || csr_pem == NULL || cert_pem == NULL) {
        return -CLINK_EINVAL;
    }
    *csr_pem = *cert_pem = NULL;
    char cert_path[CLINK_CONFIG_PATH_MAX];
    pthread_mutex_lock(&srv->mu);
    snprintf(cert_path, sizeof(cert_path), "%s", srv->cfg->ssl_cert);
    pthread_mutex_unlock(&srv->mu);
    if (cert_path[0] == '\0') {
        snprintf(err, errlen, "this node has no certificate (ssl_cert) to renew");
        return -CLINK_EINVAL;
    }
    char *key = NULL;
    pthread_mutex_lock(&renew_mu);
    int ret = clink_cert_renew_request(cert_path, &key, csr_pem, err, errlen);
    if (ret == 0 && (*cert_pem = read_text(cert_path)) == NULL) {
        snprintf(err, errlen, "%s: %s", cert_path, strerror(errno));
        ret = -CLINK_ECONFIG;
    }
    if (ret == 0) {
        drop_pending(srv); /* a newer request replaces an unanswered one */
        srv->renew_key = key;
        key = NULL;
    } else {
        free(*csr_pem);
        *csr_pem = NULL;
    }
    pthread_mutex_unlock(&renew_mu);
    if (key != NULL) {
        OPENSSL_cleanse(key, strlen(key));
        free(key);
    }
    return ret;
}

/* A NUL-terminated text staged beside path (clink__server_stage_file). */
static int stage_file(const char *path, const char *data, mode_t mode, char *tmp, size_t cap, char *err, size_t errlen)
{
    return clink__server_stage_file(path, data, strlen(data), mode, tmp, cap, err, errlen);
}

/* The certificate is the pending key's, and the node would take the pair: a context built from the staged files. */
static int check(struct clink_server *srv, const char *cert_tmp, const char *key_tmp, const char *cert_pem, char *why,
                 size_t cap)
{
    BIO *cb = BIO_new_mem_buf(cert_pem, -1), *kb = BIO_new_mem_buf(srv->renew_key, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int match = x != NULL && k != NULL && X509_check_private_key(x, k) == 1;
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    if (!match) {
        snprintf(why, cap, "the certificate is not for the key this node made for it (ask for a new request)");
        return -CLINK_EINVAL;
    }
    struct clink_config *cfg = malloc(sizeof(*cfg));
    if (cfg == NULL) {
        return -CLINK_ENOMEM;
    }
    pthread_mutex_lock(&srv->mu);
    *cfg = *srv->cfg;
    pthread_mutex_unlock(&srv->mu);
    snprintf(cfg->ssl_cert, sizeof(cfg->ssl_cert), "%s", cert_tmp);
    snprintf(cfg->ssl_key, sizeof(cfg->ssl_key), "%s", key_tmp);
    struct clink_tls_ctx *tls = NULL;
    char err[400];
    int ret = clink__server_tls_checked(srv, cfg, &tls, 0, err, sizeof(err));
    clink_tls_ctx_free(tls);
    free(cfg);
    if (ret < 0) {
        snprintf(why, cap, "the node would not take it: %s", err);
    }
    return ret;
}

int clink_server_renew_install(struct clink_server *srv, const char *cert_pem, const char *who,
                               struct clink_server_report *rep, char *why, size_t cap)
{
    struct clink_server_report scratch;
    rep = rep ? rep : &scratch;
    memset(rep, 0, sizeof(*rep));
    if (srv == NULL || cert_pem == NULL) {
        snprintf(why, cap, "a server and a certificate are needed");
        return -CLINK_EINVAL;
    }
    if (clink_thread_is_worker()) {
        snprintf(why, cap, "clink_server_renew_install reloads the node: call it off a worker");
        return -CLINK_EWOULDBLOCK;
    }
    who = who ? who : "the application";
    char cert_path[CLINK_CONFIG_PATH_MAX], key_path[CLINK_CONFIG_PATH_MAX];
    char cert_tmp[CLINK_CONFIG_PATH_MAX + 8] = "", key_tmp[CLINK_CONFIG_PATH_MAX + 8] = "";
    char bak[CLINK_CONFIG_PATH_MAX + 8], err[400];
    pthread_mutex_lock(&srv->mu);
    snprintf(cert_path, sizeof(cert_path), "%s", srv->cfg->ssl_cert);
    snprintf(key_path, sizeof(key_path), "%s", srv->cfg->ssl_key);
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_lock(&renew_mu);
    int ret = -CLINK_EINVAL;
    if (srv->renew_key == NULL) {
        snprintf(why, cap, "no signing request is waiting for a certificate on this node");
    } else if (stage_file(key_path, srv->renew_key, 0600, key_tmp, sizeof(key_tmp), why, cap) < 0 ||
               stage_file(cert_path, cert_pem, 0644, cert_tmp, sizeof(cert_tmp), why, cap) < 0) {
        ret = -CLINK_ECONFIG;
    } else if ((ret = check(srv, cert_tmp, key_tmp, cert_pem, why, cap)) == 0) {
        /* The old pair stays beside the new one; both renames or, on failure, the old pair back. */
        char *old_cert = read_text(cert_path), *old_key = read_text(key_path);
        char t1[CLINK_CONFIG_PATH_MAX + 8], t2[CLINK_CONFIG_PATH_MAX + 8];
        ret = old_cert && old_key ? 0 : -CLINK_ECONFIG;
        if (ret == 0 && (snprintf(bak, sizeof(bak), "%.*s.bak", CLINK_CONFIG_PATH_MAX - 1, key_path) < 0 ||
                         stage_file(bak, old_key, 0600, t1, sizeof(t1), why, cap) < 0 || rename(t1, bak) != 0 ||
                         snprintf(bak, sizeof(bak), "%.*s.bak", CLINK_CONFIG_PATH_MAX - 1, cert_path) < 0 ||
                         stage_file(bak, old_cert, 0644, t2, sizeof(t2), why, cap) < 0 || rename(t2, bak) != 0)) {
            ret = -CLINK_ECONFIG;
        }
        if (ret == 0 && (rename(key_tmp, key_path) != 0 || rename(cert_tmp, cert_path) != 0)) {
            snprintf(why, cap, "cannot put the new pair in place: %s", strerror(errno));
            ret = -CLINK_ECONFIG;
        }
        if (ret == 0) {
            key_tmp[0] = cert_tmp[0] = '\0';
            if ((ret = clink_server_reload(srv, rep)) < 0) {
                snprintf(err, sizeof(err), "%.300s", rep->why);
                int back =
                    stage_file(key_path, old_key, 0600, t1, sizeof(t1), why, cap) == 0 && rename(t1, key_path) == 0 &&
                    stage_file(cert_path, old_cert, 0644, t2, sizeof(t2), why, cap) == 0 && rename(t2, cert_path) == 0;
                snprintf(why, cap, "the reload failed (%s); %s", err,
                         back ? "the old pair was put back" : "the old pair is in the .bak files");
            }
        }
        if (old_key != NULL) {
            OPENSSL_cleanse(old_key, strlen(old_key));
        }
        free(old_key);
        free(old_cert);
    }
    if (key_tmp[0]) {
        unlink(key_tmp);
    }
    if (cert_tmp[0]) {
        unlink(cert_tmp);
    }
    if (ret == 0) {
        drop_pending(srv);
    }
    pthread_mutex_unlock(&renew_mu);
    clink__server_log(srv, CLINK_LOG_WARN, "certificate renewal by %s: %s", who,
                      ret == 0 ? "installed and applied" : why);
    return ret;
}

/* POST /csr and POST /cert, as the ops endpoint calls them: a JSON object in *json. */
int clink__server_ops_renew(void *user, const char *cert_pem, const char *who, char **json)
{
    struct clink_server *srv = user;
    char err[600] = "";
    char *csr = NULL, *cur = NULL;
    int ret;
    size_t cap = 1 << 17;
    *json = malloc(cap);
    if (*json == NULL) {
        return -CLINK_ENOMEM;
    }
    if (cert_pem == NULL) {
        ret = clink_server_renew_begin(srv, &csr, &cur, err, sizeof(err));
        if (ret == 0) {
            clink__server_log(srv, CLINK_LOG_WARN, "certificate renewal by %s: a new key and signing request made",
                              who);
        }
    } else {
        struct clink_server_report rep;
        ret = clink_server_renew_install(srv, cert_pem, who, &rep, err, sizeof(err));
    }
    size_t n = (size_t)snprintf(*json, cap, "{\"outcome\":\"%s\"", ret == 0 ? "applied" : "refused");
    const char *names[] = {"csr", "cert", "why"}, *vals[] = {csr, cur, ret < 0 ? err : NULL};
    for (int i = 0; i < 3 && n + 16 < cap; i++) {
        if (vals[i] != NULL) {
            n += (size_t)snprintf(*json + n, cap - n, ",\"%s\":\"", names[i]);
            n += clink__server_json_str(*json + n, cap - n - 3, vals[i]);
            n += (size_t)snprintf(*json + n, cap - n, "\"");
        }
    }
    snprintf(*json + n, cap - n, "}");
    free(csr);
    free(cur);
    return ret;
}

int clink__server_ops_issuer(void *user, const char *from, const char *to, const char *who, char *json, size_t cap)
{
    struct clink_server *srv = user;
    char err[300] = "";
    unsigned changed = 0;
    int ret = clink_accounts_replace_issuer(srv->acc, from, to, &changed, err, sizeof(err));
    if (ret == 0) {
        clink__server_log(srv, CLINK_LOG_WARN, "accounts: REQUIRE ISSUER '%.200s' -> '%.200s' by %s: %u account(s)",
                          from, to, who, changed);
        snprintf(json, cap,
                 "{\"outcome\":\"ok\",\"changed\":%u,\"message\":\"%u account(s) now require the new issuer\"}",
                 changed, changed);
    } else {
        clink__server_log(srv, CLINK_LOG_WARN, "accounts: REQUIRE ISSUER change by %s refused: %s", who, err);
        char why[700];
        clink__server_json_str(why, sizeof(why), err);
        snprintf(json, cap, "{\"outcome\":\"refused\",\"why\":\"%s\"}", why);
    }
    return ret;
}
