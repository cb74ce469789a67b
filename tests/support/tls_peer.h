/*
 * The one hand-made TLS peer of the tests: an OpenSSL end over memory BIOs,
 * so that every byte passes through the test's hands (it may be read,
 * flipped, cut or dropped before it reaches the other end). With a socket,
 * the calls below move the bytes to and from it, blocking until a deadline
 * (seconds on tls_peer_now's clock). Without one (fd -1), the test moves
 * them itself; tls_peer_handshake_pair joins two such peers.
 */
#ifndef CLINK_TESTS_TLS_PEER_H
#define CLINK_TESTS_TLS_PEER_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How a read from the socket ended when it got no bytes (0 is EOF). */
enum {
    TLS_PEER_TIMEOUT = -1, /* the deadline passed */
    TLS_PEER_RESET = -2,   /* reset, or another socket error */
};

struct tls_peer;

struct tls_peer_opts {
    int server;                   /* the accepting end */
    int min_version, max_version; /* e.g. TLS1_3_VERSION; 0: OpenSSL's default */
    const char *ciphers;          /* TLS 1.2 and older: OpenSSL cipher list; NULL: OpenSSL's default */
    const char *ciphersuites;     /* TLS 1.3; NULL: OpenSSL's default */
    const char *cert, *key;       /* NULL: present no certificate */
    const char *ca;               /* verify the other end against it; NULL: no verification */
    const char *host;             /* the name the other end's certificate must carry; NULL: any */
    const char *sni;              /* the server name to send; NULL: none */
    const unsigned char *alpn;    /* protocols to offer, in wire format; NULL: none */
    size_t alpn_len;
    /*
     * Run once before the first byte is read from the socket, to read what
     * the other end sends ahead of TLS (a clink node's greeting). 0, or -1
     * with p->err set. NULL: nothing comes first.
     */
    int (*preamble)(struct tls_peer *p, double deadline);
};

struct tls_peer {
    int fd; /* the socket, closed by tls_peer_free; -1: none */
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rb, *wb; /* bytes from the other end, and bytes OpenSSL wrote for it (both owned by ssl) */
    int (*preamble)(struct tls_peer *p, double deadline);
    int closed;         /* 0 open, 1 EOF, 2 reset: what tls_peer_pump last saw */
    char alert[64];     /* the last alert the other end sent ("" none) */
    int alert_fatal;    /* ... and whether it was fatal */
    int key_updates_in; /* TLS 1.3 KeyUpdate messages the other end sent */
    char err[256];      /* why the last call failed */
};

/* Seconds on a monotonic clock: the unit of every deadline here. */
double tls_peer_now(void);

/*
 * [out] p: a context and SSL object from o, over memory BIOs, in the
 * client or server state. Takes fd (-1: none): tls_peer_free closes it,
 * also when this fails. 0, or -1 with p->err; either way p is freeable.
 */
int tls_peer_new(struct tls_peer *p, const struct tls_peer_opts *o, int fd);
void tls_peer_free(struct tls_peer *p);

/* Run the handshake to its end. 0, or -1 with p->err (and p->alert if the other end sent one). */
int tls_peer_handshake(struct tls_peer *p, double deadline);
/* Two peers without sockets (a client and a server), their bytes moved between them. 0, or -1. */
int tls_peer_handshake_pair(struct tls_peer *client, struct tls_peer *server);

/* Write n plaintext bytes and send what OpenSSL made of them. 0, or -1 with p->err. */
int tls_peer_write(struct tls_peer *p, const void *buf, size_t n);
/*
 * Read exactly n plaintext bytes: 0; or -1 with p->err (p->alert, p->closed)
 * when the connection ends or the deadline passes first. [out] *got: the
 * bytes read either way (NULL: not wanted).
 */
int tls_peer_read(struct tls_peer *p, void *buf, size_t n, size_t *got, double deadline);

/* What OpenSSL wrote and nobody sent yet: [out] *out, borrowed until the next call on p. */
size_t tls_peer_pending(struct tls_peer *p, uint8_t **out);
/* Forget those bytes: they never reach the other end. */
void tls_peer_drop_pending(struct tls_peer *p);
/* Send them. 0, or -1 with p->err. */
int tls_peer_flush(struct tls_peer *p);
/* Bytes from the socket into OpenSSL: > 0, 0 EOF, TLS_PEER_TIMEOUT or TLS_PEER_RESET (p->closed set). */
ssize_t tls_peer_pump(struct tls_peer *p, double deadline);
/* p->err = what, then OpenSSL's first queued error (the queue is emptied). */
void tls_peer_ssl_err(struct tls_peer *p, const char *what);

#endif
