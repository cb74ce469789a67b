/*
 * clink auth: certificates and trust.
 *
 * - struct clink_tls_ctx: a node's TLS identity (certificate chain and key),
 *   its trust anchors (CA bundle), and the TLS policy (versions, ciphers,
 *   client-certificate rule). One object serves both roles: it holds an
 *   OpenSSL server context and a client context built from the same files.
 *   Verification is on by default and cannot be turned off here.
 * - Certificate generation (clink_cert_make_*): a CA and node certificates
 *   that pass OpenSSL's strict X.509 checks, for tools, tests and demos.
 *
 * This module knows no sockets.
 */
#ifndef CLINK_AUTH_H
#define CLINK_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "clink/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */
struct clink_ticket_keys;

enum clink_tls_version {
    CLINK_TLS_DEFAULT = 0, /* TLS 1.3 only */
    CLINK_TLS_1_3,
    CLINK_TLS_1_2, /* allow TLS 1.2 and 1.3 */
};

/* Server side: must a connecting peer present a certificate? */
enum clink_client_cert {
    CLINK_CLIENT_CERT_DEFAULT = 0, /* = REQUIRED: node-to-node is mutual TLS */
    CLINK_CLIENT_CERT_REQUIRED,
    CLINK_CLIENT_CERT_OPTIONAL, /* verified if presented */
    CLINK_CLIENT_CERT_NONE,     /* not requested */
};

/* Zero means default for every field. Strings are copied; borrowed only during the call. */
struct clink_tls_opts {
    const char *cert_file; /* [in] PEM: this node's certificate, then intermediates. Required. */
    const char *key_file;  /* [in] PEM private key matching cert_file. Required. */
    const char *ca_file;   /* [in] PEM bundle of trusted CAs (several allowed, for rotation). Required. */
    enum clink_tls_version min_version;
    /* TLS 1.3 suites, OpenSSL syntax. NULL: the three kTLS-capable AEAD suites. */
    const char *ciphersuites;
    /* TLS 1.2 cipher list, only used when min_version is CLINK_TLS_1_2. NULL: ECDHE+AEAD only. */
    const char *cipher_list;
    enum clink_client_cert client_cert;
    /* [in] PEM CRL(s) of the CAs in ca_file; when set, every peer certificate is checked against them. */
    const char *crl_file;
    /* Lifetime of TLS 1.3 session tickets issued by the server, seconds. 0: 7200. */
    uint32_t ticket_lifetime_s;
    /*
     * [in] Keys that seal this context's session tickets (the context takes
     * a reference). NULL: keys of its own, in memory, rotated every
     * ticket_lifetime_s. Pass the same object to the contexts a reload
     * makes, so that tickets issued before a reload still resume.
     */
    struct clink_ticket_keys *ticket_keys;
    /*
     * 0 (default): key_file must belong to this process's user with no
     * access for group or others (0600), or to root with at most group read
     * (0640, a key shared through a group such as ssl-cert); anything else
     * is refused, naming the file, its owner and mode. 1: any owner and mode,
     * for containers that mount keys read-only with their own permissions.
     */
    int allow_open_key_file;
    /*
     * [in] clink_tls_ctx_new_https only: the CAs (the cluster's, usually)
     * that a client certificate is verified against, with crl_file. The
     * port then asks every client for one and never requires it; one that
     * verifies can log an operator in (clink_conn_peer_cert). NULL: no
     * client certificate is asked for.
     */
    const char *client_ca_file;
    /*
     * 0 (default): certificates are verified the way `openssl verify` does
     * at security level 2: chain, dates, CRLs, key sizes, signature
     * algorithms, and the keyUsage, extendedKeyUsage and names a
     * certificate states. A CA without keyUsage, a v1 certificate or a
     * certificate named by its CN only are accepted (clink_cert_lint says
     * what is weak about them). 1: RFC 5280's profile as well
     * (X509_V_FLAG_X509_STRICT): those are refused, for the own chain and
     * for peers.
     */
    int x509_strict;
};

extern CLINK_API const struct clink_tls_opts clink_tls_opts_default;

struct clink_tls_ctx;

/*
 * Build a TLS context from files. Fails closed: a missing, unreadable or
 * mismatched file, an unknown cipher, or a certificate that does not verify
 * against ca_file is an error, never a silent downgrade.
 * [out] *out on success; caller frees with clink_tls_ctx_free.
 * [out] err: NUL-terminated reason naming the file and cause (may be NULL).
 * Thread: any. Returns 0, -CLINK_EINVAL, -CLINK_ECONFIG or -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_tls_ctx_new(const struct clink_tls_opts *opts, struct clink_tls_ctx **out, char *err,
                                               size_t errlen);

/* Reference counting: a node holds a reference while it runs. Thread: any. */
CLINK_API void clink_tls_ctx_ref(struct clink_tls_ctx *ctx);
CLINK_API void clink_tls_ctx_free(struct clink_tls_ctx *ctx);

/* The OpenSSL contexts (borrowed, valid while ctx lives). Thread: any. */
CLINK_API struct ssl_ctx_st *clink_tls_ctx_server(const struct clink_tls_ctx *ctx);
CLINK_API struct ssl_ctx_st *clink_tls_ctx_client(const struct clink_tls_ctx *ctx);

/* ---- session ticket keys (TLS 1.3 resumption, server side) ---- */

/*
 * Keys that seal the session tickets a server issues, so that a client
 * reconnecting with one resumes (no certificate exchange, no signature) and
 * a server keeps no per-session state.
 *
 * file NULL: random keys in memory. The current key seals tickets for
 * rotate_s seconds (0: 7200, the default ticket lifetime), then becomes the previous key, which still
 * opens tickets (the client is sent a fresh one) for rotate_s more; rotate_s
 * should be at least the ticket lifetime. A restarted process has new keys:
 * nothing resumes across a restart.
 *
 * file: an operator's key file, the way nginx's ssl_session_ticket_key
 * works: 1 to 16 keys of 80 random bytes each (16-byte name, 32-byte HMAC
 * secret, 32-byte AES-256 key), e.g. `openssl rand 80 > ticket.key`. The
 * first key seals, every key opens: rotate by putting a new key first and
 * keeping the old one second until its tickets have expired. The file must
 * be mode 0600 (or stricter) and is shared by a group of nodes so that
 * sessions survive restarts. Trust: whoever holds the file can open every
 * ticket of the group and resume as any of its nodes, so clink still checks a
 * resumed peer's certificate (kept in the session) against the identity it
 * expects.
 *
 * Thread: any. Returns 0, -CLINK_ECONFIG (err names the file and reason),
 * -CLINK_ENOMEM, -CLINK_EINTERNAL (no random bytes).
 */
struct clink_ticket_keys;
CLINK_API CLINK_MUST_USE int clink_ticket_keys_new(const char *file, uint32_t rotate_s, struct clink_ticket_keys **out,
                                                   char *err, size_t errlen);
/* Read the file again (SIGHUP); on error the keys in use stay. Returns 0, -CLINK_ECONFIG, -CLINK_EINVAL (no file). */
CLINK_API CLINK_MUST_USE int clink_ticket_keys_reload(struct clink_ticket_keys *k, char *err, size_t errlen);
CLINK_API void clink_ticket_keys_ref(struct clink_ticket_keys *k);
CLINK_API void clink_ticket_keys_free(struct clink_ticket_keys *k);

struct clink_ticket_stats {
    uint64_t issued;  /* tickets sealed */
    uint64_t opened;  /* tickets opened with the current key */
    uint64_t renewed; /* opened with an older key (every resumption gets a fresh ticket sealed by the current key) */
    uint64_t unknown; /* sealed by a key we do not have (a full handshake followed) */
    unsigned keys;    /* keys held */
};
CLINK_API void clink_ticket_keys_stats(struct clink_ticket_keys *k, struct clink_ticket_stats *out);

/*
 * A server-only context for the node's HTTPS port (operations: browsers,
 * curl, Prometheus; clink_node_listen_https), from opts's cert_file (then
 * intermediates), key_file (its owner and mode checked as for
 * clink_tls_ctx_new, unless allow_open_key_file), ca_file, client_ca_file,
 * crl_file and x509_strict; the other fields are not used. The pair is checked to match and to be valid now; TLS 1.2
 * and 1.3 with AEAD ciphers only, ALPN "http/1.1" (a client offering only h2
 * gets no ALPN and speaks HTTP/1.1); a client certificate is asked for only
 * with client_ca_file (and crl_file). ca_file (optional, NULL: none) is the
 * bundle the certificate must verify against, for installers that want that
 * check too (an HTTPS certificate is often issued by another CA than the
 * cluster's); it is never trusted for clients. clink_tls_ctx_client is NULL.
 * Thread: any. Returns 0, -CLINK_EINVAL, -CLINK_ECONFIG (err names the file
 * and reason) or -CLINK_ENOMEM.
 */
CLINK_API CLINK_MUST_USE int clink_tls_ctx_new_https(const struct clink_tls_opts *opts, struct clink_tls_ctx **out,
                                                     char *err, size_t errlen);

/* One certificate a context holds, for expiry monitoring. */
enum clink_cert_kind {
    CLINK_CERT_OWN = 1,      /* the context's own (leaf) certificate */
    CLINK_CERT_INTERMEDIATE, /* sent with it */
    CLINK_CERT_CA,           /* a trust anchor from ca_file */
};
struct clink_cert_info {
    enum clink_cert_kind kind;
    char subject[256]; /* RFC 2253 */
    char issuer[256];
    char serial[64];               /* hex */
    int64_t not_before, not_after; /* unix seconds */
};

/*
 * The certificates ctx holds: its own, then the intermediates sent with it,
 * then every CA it trusts. Fills up to cap of out. Returns how many there
 * are (may exceed cap). Thread: any.
 */
CLINK_API size_t clink_tls_ctx_certs(const struct clink_tls_ctx *ctx, struct clink_cert_info *out, size_t cap);

/* What falls short of good practice in one certificate a context holds. */
struct clink_cert_warning {
    enum clink_cert_kind kind;
    char subject[256]; /* RFC 2253 */
    char text[768];    /* each deviation, "; "-separated, then the clink-certs command that makes a better one */
};

/*
 * What is weak about ctx's certificates (own, intermediates, trusted CAs),
 * one entry per certificate that has anything to say, none of which stops
 * it from working: a v1 certificate, a CA without
 * keyUsage, a node certificate without subjectAltName (its CN is its only
 * name), one that expires within 30 days of now (unix seconds), and, when
 * host (a DNS name or IP address this node is known by; NULL: not checked)
 * is given, an own CN-only certificate that does not name it: the sign of
 * one certificate shared by every node; and, on a trusted CA's entry, a CRL
 * of that CA (crl_file) whose nextUpdate is within 7 days or past (then
 * every certificate it covers is refused, this node's own included: see
 * clink_cert_crl_reissue). Fills up to cap of out; returns how many
 * there are (may exceed cap). A node logs them at start and on reload.
 * Thread: any.
 */
CLINK_API size_t clink_tls_ctx_lint(const struct clink_tls_ctx *ctx, const char *host, int64_t now,
                                    struct clink_cert_warning *out, size_t cap);

/* ALPN protocol id clink speaks, "clink/1". */
#define CLINK_ALPN "clink/1"

/* ---- certificate generation ---- */

enum clink_key_type {
    CLINK_KEY_DEFAULT = 0, /* ECDSA P-256 */
    CLINK_KEY_EC_P256,
    CLINK_KEY_RSA_2048,
};

/* Which TLS role a node certificate may play: its extendedKeyUsage (and keyUsage to match). */
enum clink_cert_usage {
    CLINK_CERT_USAGE_DEFAULT = 0, /* serverAuth + clientAuth: a node both accepts and dials */
    CLINK_CERT_USAGE_SERVER,      /* serverAuth only: peers refuse it as a client certificate */
    CLINK_CERT_USAGE_CLIENT,      /* clientAuth only: peers refuse it as a server certificate */
};

struct clink_cert_opts {
    const char *common_name;      /* [in] subject CN. Required. */
    const char *const *dns_names; /* [in] NULL-terminated list of DNS SANs, or NULL */
    const char *const *ip_addrs;  /* [in] NULL-terminated list of IPv4/IPv6 SANs, or NULL */
    enum clink_key_type key_type;
    int64_t not_before_offset_s; /* validity starts now + this (may be negative). 0: now - 60 s */
    int64_t valid_for_s;         /* length of validity from not_before. 0: 365 days */
    enum clink_cert_usage usage; /* node certificates only; must be 0 for a CA */
};

/*
 * Make a self-signed CA (basicConstraints CA:TRUE critical, keyCertSign,
 * cRLSign, SKI/AKI). Writes PEM files; the key file is created mode 0600 and
 * never overwrites an existing file unless overwrite is set.
 * Thread: any. Returns 0 or -CLINK_EINVAL / -CLINK_ECONFIG (with err) / -errno.
 */
CLINK_API CLINK_MUST_USE int clink_cert_make_ca(const struct clink_cert_opts *opts, const char *cert_path,
                                                const char *key_path, int overwrite, char *err, size_t errlen);

/*
 * Make an intermediate CA signed by the CA in parent_cert_path/parent_key_path
 * (a root or another intermediate that may still issue CAs): basicConstraints
 * CA:TRUE with pathlen 0 (it signs node certificates only), keyCertSign,
 * cRLSign, AKI = the parent's key id. cert_path holds the intermediate, then
 * the parent's intermediates (never the root), so that it can be passed as
 * ca_cert_path to clink_cert_make_node. Same file rules as clink_cert_make_ca.
 * Thread: any. Returns 0 or -CLINK_EINVAL / -CLINK_ECONFIG (a parent that is
 * not a CA or has pathlen 0) / -errno, with err.
 */
CLINK_API CLINK_MUST_USE int clink_cert_make_intermediate(const struct clink_cert_opts *opts,
                                                          const char *parent_cert_path, const char *parent_key_path,
                                                          const char *cert_path, const char *key_path, int overwrite,
                                                          char *err, size_t errlen);

/*
 * Make a node certificate signed by the CA in ca_cert_path/ca_key_path, with
 * the given SANs, usable as TLS server and client (opts->usage narrows it).
 * When that CA is an intermediate, cert_path holds the node certificate then
 * the intermediates from ca_cert_path (not the root): a peer that trusts only
 * the root verifies it. Same file rules as clink_cert_make_ca.
 */
CLINK_API CLINK_MUST_USE int clink_cert_make_node(const struct clink_cert_opts *opts, const char *ca_cert_path,
                                                  const char *ca_key_path, const char *cert_path, const char *key_path,
                                                  int overwrite, char *err, size_t errlen);

/*
 * Renewal without the key leaving the node (clink-admin rotate-certs),
 * step 1, on the node: a new key of the same kind as the certificate in
 * cert_path has (RSA stays RSA, else EC P-256), and a signing request for
 * that certificate's subject and subjectAltName. [out] *key_pem (wipe and
 * free it: OPENSSL_cleanse, free) and *csr_pem (free). Thread: any.
 * Returns 0 or negative with err.
 */
CLINK_API CLINK_MUST_USE int clink_cert_renew_request(const char *cert_path, char **key_pem, char **csr_pem, char *err,
                                                      size_t errlen);

/*
 * Step 2, where the CA's key is: sign csr_pem (which must be signed by its
 * own key) for exactly the identity of current_pem, the node's certificate
 * now, which must verify against trust_file (NULL: ca_cert_path; during a
 * CA rollover, a bundle with the old CA). The new certificate gets the
 * current one's whole subject, subjectAltName and TLS usage, valid for
 * valid_for_s (0: 365 days), followed by the CA's intermediates. A request
 * for another name is refused: renewal never widens an identity. [out]
 * *cert_pem (free). Thread: any. Returns 0, -CLINK_EINVAL,
 * -CLINK_EVERIFY (the current certificate is not the CA's) or others, with err.
 */
CLINK_API CLINK_MUST_USE int clink_cert_sign_renewal(const char *ca_cert_path, const char *ca_key_path,
                                                     const char *csr_pem, const char *current_pem,
                                                     const char *trust_file, int64_t valid_for_s, char **cert_pem,
                                                     char *err, size_t errlen);

/*
 * Write a CRL (PEM, version 2, with the CA's authority key identifier) that
 * revokes the certificates in the files listed in `revoked` (NULL-terminated,
 * may be NULL for an empty CRL), valid for valid_for_s (0: 30 days). Written
 * to a temporary file and renamed into place. Thread: any.
 * Returns 0 or -CLINK_EINVAL / -CLINK_ECONFIG / -CLINK_ENOMEM (with err).
 */
CLINK_API CLINK_MUST_USE int clink_cert_make_crl(const char *ca_cert_path, const char *ca_key_path,
                                                 const char *const *revoked, int64_t valid_for_s, const char *crl_path,
                                                 char *err, size_t errlen);

/* What a CA's CRL says once clink_cert_revoke or clink_cert_crl_reissue is done. */
struct clink_crl_info {
    char serial[64];     /* clink_cert_revoke: the serial revoked (hex, upper case) */
    char subject[256];   /* ... and its subject (RFC 2253), when it came from a certificate file */
    uint64_t number;     /* the CRL's number (RFC 5280 5.2.3): one more at every write */
    size_t revoked;      /* entries in the CRL */
    int64_t next_update; /* unix seconds: after this, peers that check it refuse every certificate of the CA */
};

/* Zero means default for every field. Strings are borrowed during the call. */
struct clink_revoke_opts {
    const char *cert_file;  /* [in] PEM certificate to revoke: it must be issued by the CA. Or: */
    const char *serial_hex; /* [in] its serial in hex ("0x" and ':' allowed): exactly one of the two */
    /*
     * [in] RFC 5280 5.3.1 reasonCode, by name: unspecified, keyCompromise,
     * CACompromise, affiliationChanged, superseded, cessationOfOperation,
     * privilegeWithdrawn, AACompromise. NULL: the entry carries no reason.
     */
    const char *reason;
    int64_t valid_for_s; /* the new CRL's validity (nextUpdate - now). 0: 30 days */
};

/*
 * Revoke a certificate of the CA in ca_dir (made by `clink-certs ca`:
 * ca_dir/ca.pem, ca_dir/ca-key.pem). The CRL at crl_path (NULL:
 * ca_dir/crl.pem) is the record of what is revoked: it is read if it exists
 * (it must be this CA's, signed by its key), its entries kept, the serial
 * added with the time now and the reason, its CRL number bumped, and the
 * whole re-signed with the CA key and written to a temporary file beside it,
 * synced and renamed into place, mode 0644. Concurrent calls on one CRL are
 * ordered by an flock on crl_path.lock. A certificate not issued by this CA
 * is refused (err names both issuers). Nodes see the change once the file is
 * their ssl_crl and they reload.
 * [out] info (may be NULL). Thread: any.
 * Returns 0 (revoked now), 1 (already revoked: the CRL is left as it is),
 * -CLINK_EINVAL (arguments, a bad serial or reason name), -CLINK_ECONFIG
 * (files), -CLINK_ENOMEM or -CLINK_EINTERNAL, with err.
 */
CLINK_API CLINK_MUST_USE int clink_cert_revoke(const char *ca_dir, const char *crl_path,
                                               const struct clink_revoke_opts *opts, struct clink_crl_info *info,
                                               char *err, size_t errlen);

/*
 * Re-issue the CRL of the CA in ca_dir as it is (same entries), with a new
 * number, lastUpdate now and nextUpdate now + valid_for_s (0: 30 days), the
 * same way clink_cert_revoke writes it; without a CRL at crl_path (NULL:
 * ca_dir/crl.pem), an empty one. A CRL expires: a node checking an expired
 * one refuses every certificate of its CA, its own included, so re-issue it
 * before next_update and reload the nodes. Thread: any. Returns 0 or as
 * clink_cert_revoke.
 */
CLINK_API CLINK_MUST_USE int clink_cert_crl_reissue(const char *ca_dir, const char *crl_path, int64_t valid_for_s,
                                                    struct clink_crl_info *info, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
