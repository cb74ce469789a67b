/*
 * The settings a server runs with: the config file (or the defaults) with
 * the program's overrides applied, read the same way at start and at every
 * reload; and the TLS contexts they describe.
 */
#include "server/server_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clink/methods.h"

void clink__server_log(const struct clink_server *srv, enum clink_log_level lvl, const char *fmt, ...)
{
    if (srv->o.log == NULL || lvl > srv->o.log_level) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    srv->o.log(srv->o.log_user, lvl, "server", 0, fmt, ap);
    va_end(ap);
}

static int set_path(char *dst, const char *src, const char *key, char *err, size_t errlen)
{
    if (src == NULL) {
        return 0;
    }
    if (strlen(src) >= CLINK_CONFIG_PATH_MAX) {
        snprintf(err, errlen, "%s: path too long", key);
        return -CLINK_EINVAL;
    }
    snprintf(dst, CLINK_CONFIG_PATH_MAX, "%s", src);
    return 0;
}

/* What the program set wins over the file, at start and at every reload alike. */
static int overrides(const struct clink_server_opts *o, const struct clink_config_peer *peers, struct clink_config *c,
                     char *err, size_t errlen)
{
    if (o->listen != NULL && clink_tool_hostport(o->listen, c->bind_address, sizeof(c->bind_address), &c->port) < 0) {
        snprintf(err, errlen, "listen: expected HOST:PORT, got '%s'", o->listen);
        return -CLINK_EINVAL;
    }
    int ret;
    if ((ret = set_path(c->ssl_cert, o->cert_file, "ssl_cert", err, errlen)) < 0 ||
        (ret = set_path(c->ssl_key, o->key_file, "ssl_key", err, errlen)) < 0 ||
        (ret = set_path(c->ssl_ca, o->ca_file, "ssl_ca", err, errlen)) < 0 ||
        (ret = set_path(c->ssl_crl, o->crl_file, "ssl_crl", err, errlen)) < 0 ||
        (ret = set_path(c->accounts_file, o->accounts_file, "accounts_file", err, errlen)) < 0 ||
        (ret = set_path(c->ssl_session_ticket_key, o->ticket_key_file, "ssl_session_ticket_key", err, errlen)) < 0) {
        return ret;
    }
    if (o->min_tls_version != 0) {
        c->tls_version = o->min_tls_version;
    }
    if (o->allow_plaintext && c->secure_transport == CLINK_SECURE_REQUIRE_TLS) {
        c->secure_transport = CLINK_SECURE_PREFER_TLS;
        c->require_secure_transport = 0;
    }
    if (o->secure_transport != CLINK_SECURE_DEFAULT) {
        c->secure_transport = o->secure_transport;
        c->require_secure_transport = o->secure_transport == CLINK_SECURE_REQUIRE_TLS;
    }
    if (o->mysql != CLINK_SERVER_DEFAULT) {
        c->mysql = o->mysql == CLINK_SERVER_ON;
    }
    if (o->ktls != CLINK_KTLS_DEFAULT) {
        c->ktls = o->ktls;
    }
    if (o->workers != 0) {
        c->workers = o->workers;
    }
    if (o->max_connections != 0) {
        c->max_connections = o->max_connections;
    }
    if (o->ops != CLINK_SERVER_DEFAULT) {
        c->ops = o->ops == CLINK_SERVER_ON;
    }
    if (o->ops_port != 0) {
        c->ops_port = o->ops_port == CLINK_SERVER_ANY_PORT ? 0 : (uint16_t)o->ops_port;
    }
    if (o->name != NULL) {
        snprintf(c->name, sizeof(c->name), "%s", o->name);
    }
    if (c->npeers + o->npeers > CLINK_CONFIG_MAX_PEERS) {
        snprintf(err, errlen, "peers: more than %d", CLINK_CONFIG_MAX_PEERS);
        return -CLINK_EINVAL;
    }
    for (size_t i = 0; i < o->npeers; i++) {
        c->peers[c->npeers++] = peers[i];
    }
    return 0;
}

int clink__server_settings(const struct clink_server *srv, struct clink_config *cfg, char *err, size_t errlen)
{
    return clink__server_settings_swapped(srv, NULL, 0, cfg, err, errlen);
}

int clink__server_settings_swapped(const struct clink_server *srv, const struct clink__optfile_swap *swaps,
                                   size_t nswaps, struct clink_config *cfg, char *err, size_t errlen)
{
    int ret;
    if (srv->path != NULL) {
        if ((ret = clink__config_load_swapped(srv->path, swaps, nswaps, cfg, err, errlen)) < 0) {
            return ret;
        }
        /* Once per read of the file (start, each reload): keys a shared memsql.cnf holds for mysqld or MemSQL. */
        if (cfg->warnings[0] != '\0') {
            clink__server_log(srv, CLINK_LOG_WARN, "%s: %s", srv->path, cfg->warnings);
        }
    } else {
        clink__config_defaults(cfg);
    }
    return overrides(&srv->o, srv->peers, cfg, err, errlen);
}

int clink__server_plain_start(const struct clink_config *cfg)
{
    return cfg->secure_transport == CLINK_SECURE_PLAINTEXT && cfg->ssl_cert[0] == '\0';
}

/*
 * clink accepts the certificates `openssl verify` accepts; say once, each
 * time the node's context is made (start, reload), what in them is weak and
 * how to make better ones. The own certificate is checked against the
 * address the node listens on, when it is one: a certificate that does not
 * name it is most likely the one every node shares.
 */
static void warn_certs(const struct clink_server *srv, const struct clink_config *cfg, const struct clink_tls_ctx *tls)
{
    const char *b = cfg->bind_address;
    int wildcard = b[0] == '\0' || strcmp(b, "0.0.0.0") == 0 || strcmp(b, "::") == 0 || strcmp(b, "*") == 0;
    struct clink_cert_warning w[16];
    size_t n = clink_tls_ctx_lint(tls, wildcard ? NULL : b, (int64_t)time(NULL), w, 16);
    for (size_t i = 0; i < n && i < 16; i++) {
        clink__server_log(srv, CLINK_LOG_WARN, "%s certificate %s: %s",
                          w[i].kind == CLINK_CERT_OWN  ? "own"
                          : w[i].kind == CLINK_CERT_CA ? "CA"
                                                       : "intermediate",
                          w[i].subject, w[i].text);
    }
    if (n > 16) {
        clink__server_log(srv, CLINK_LOG_WARN, "%zu more certificate warnings not shown", n - 16);
    }
}

int clink__server_tls_checked(const struct clink_server *srv, const struct clink_config *cfg,
                              struct clink_tls_ctx **out, int warn, char *err, size_t errlen)
{
    struct clink_tls_opts to;
    int ret = clink_config_tls_opts(cfg, &to, err, errlen);
    if (ret < 0) {
        return ret;
    }
    to.ticket_keys = srv->tickets;
    if ((ret = clink_tls_ctx_new(&to, out, err, errlen)) == 0 && warn) {
        warn_certs(srv, cfg, *out);
    }
    return ret;
}

int clink__server_tls(const struct clink_server *srv, const struct clink_config *cfg, struct clink_tls_ctx **out,
                      char *err, size_t errlen)
{
    return clink__server_tls_checked(srv, cfg, out, 1, err, errlen);
}

/* The HTTPS port's certificate: ops_ssl_cert/ops_ssl_key, else the node's own pair. */
int clink__server_https(const struct clink_server *srv, const struct clink_config *cfg, struct clink_tls_ctx **out,
                        char *err, size_t errlen)
{
    (void)srv;
    const char *cert = cfg->ops_ssl_cert[0] ? cfg->ops_ssl_cert : cfg->ssl_cert;
    const char *key = cfg->ops_ssl_key[0] ? cfg->ops_ssl_key : cfg->ssl_key;
    if (cert[0] == '\0' || key[0] == '\0') {
        snprintf(err, errlen, "no certificate for the HTTPS port (ops_ssl_cert/ops_ssl_key, or ssl_cert/ssl_key)");
        return -CLINK_ECONFIG;
    }
    /*
     * Client certificates are verified against the cluster's CAs and CRL:
     * an operator can log in by certificate (docs/ops.md).
     */
    struct clink_tls_opts o = {.cert_file = cert,
                               .key_file = key,
                               .allow_open_key_file = !cfg->ssl_key_mode_check,
                               .x509_strict = cfg->ssl_x509_strict,
                               .client_ca_file = cfg->ssl_ca[0] ? cfg->ssl_ca : NULL,
                               .crl_file = cfg->ssl_crl[0] ? cfg->ssl_crl : NULL};
    return clink_tls_ctx_new_https(&o, out, err, errlen);
}
