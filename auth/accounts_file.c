/*
 * The accounts file (format in docs/config.md): read with libinih after a
 * line scan for what libinih would misread, written whole to a temporary
 * file that is read back before it is renamed over the old one, and locked
 * against other processes changing it. Apart from the store (accounts.c)
 * because libinih's limits and the rules for replacing a file are the
 * file's alone: the store asks only for a set read or a set saved.
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/accounts_int.h"
#include "auth/errbuf.h"

/* The file keeps the clause in short lines: the base requirement, then one key per name (see DN_MAX). */
static void write_require(FILE *f, const struct clink__require *r)
{
    fprintf(f, "require = %s\n", r->x509 ? "X509" : r->ssl ? "SSL" : "NONE");
    if (r->subject[0]) {
        fprintf(f, "require_subject = %s\n", r->subject);
    }
    if (r->issuer[0]) {
        fprintf(f, "require_issuer = %s\n", r->issuer);
    }
    if (r->cipher[0]) {
        fprintf(f, "require_cipher = %s\n", r->cipher);
    }
}

/*
 * A raw value of require_subject / _issuer / _cipher, as the file holds it:
 * what quoted() (require.c) would accept, so that it is written back the
 * same (a value starting with ';' after "= " would read back as a comment).
 */
static int raw_value(const char *v, char *out, size_t cap)
{
    size_t n = strlen(v);
    if (n == 0 || n >= cap) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == ';' || v[i] == '#') {
            return -1;
        }
    }
    memcpy(out, v, n + 1);
    return 0;
}

struct load_state {
    struct clink__account *v;
    size_t n, cap;
    char section[CLINK_USER_MAX + CLINK_HOST_MAX + 2];
    unsigned seen; /* keys seen in the current section */
    char err[384];
    int failed;
};

static int split_section(const char *sec, char *user, char *host)
{
    const char *at = strrchr(sec, '@');
    if (at == NULL || (size_t)(at - sec) > CLINK_USER_MAX) {
        return -1;
    }
    memcpy(user, sec, (size_t)(at - sec));
    user[at - sec] = '\0';
    snprintf(host, CLINK_HOST_MAX + 1, "%s", at + 1);
    return clink__valid_name(user, CLINK_USER_MAX, 0) && clink__valid_name(host, CLINK_HOST_MAX, 1) &&
                   strlen(at + 1) <= CLINK_HOST_MAX
               ? 0
               : -1;
}

static int load_fail(struct load_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int load_fail(struct load_state *st, const char *fmt, ...)
{
    if (!st->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->err, sizeof(st->err), fmt, ap);
        va_end(ap);
        st->failed = 1;
    }
    return 0;
}

static int on_key(void *arg, const char *section, const char *name, const char *value)
{
    struct load_state *st = arg;
    if (st->failed) {
        return 0;
    }
    if (st->n == 0 || strcmp(section, st->section) != 0) {
        char user[CLINK_USER_MAX + 1], host[CLINK_HOST_MAX + 1];
        if (section[0] == '\0' || split_section(section, user, host) < 0) {
            return load_fail(st, "[%s]: a section is one account, [user@host] (user and host printable, no quotes)",
                             section);
        }
        if (clink__account_find(st->v, st->n, user, host) != NULL) {
            return load_fail(st, "[%s]: account listed twice", section);
        }
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 8;
            struct clink__account *nv = realloc(st->v, cap * sizeof(*nv));
            if (nv == NULL) {
                return load_fail(st, "out of memory");
            }
            st->v = nv;
            st->cap = cap;
        }
        struct clink__account *a = &st->v[st->n++];
        memset(a, 0, sizeof(*a));
        memcpy(a->user, user, sizeof(user));
        memcpy(a->host, host, sizeof(host));
        snprintf(st->section, sizeof(st->section), "%s", section);
        st->seen = 0;
    }
    struct clink__account *a = &st->v[st->n - 1];
    static const char *const keys[] = {"require",
                                       "mysql_native_password",
                                       "caching_sha2_password",
                                       "require_subject",
                                       "require_issuer",
                                       "require_cipher",
                                       "grant",
                                       "legacy_native_tls",
                                       "native_password",
                                       "plaintext_no_password"};
    enum { NKEYS = sizeof(keys) / sizeof(keys[0]), K_NATIVE_PASSWORD = 8 };
    unsigned k = 0;
    while (k < NKEYS && strcmp(name, keys[k]) != 0) {
        k++;
    }
    if (k == NKEYS) {
        return load_fail(st,
                         "[%s] %s: unknown key (require, require_subject, require_issuer, require_cipher, "
                         "mysql_native_password, caching_sha2_password, grant, legacy_native_tls, native_password, "
                         "plaintext_no_password)",
                         section, name);
    }
    if (st->seen & (1u << k)) {
        return load_fail(st, "[%s] %s: given twice", section, name);
    }
    st->seen |= 1u << k;
    char why[200] = "";
    switch (k) {
    case 0: {
        /* Merged with require_* keys, which may come before or after it; a name given both ways is an error. */
        struct clink__require r;
        if (clink__parse_require(value, &r, why, sizeof(why)) < 0) {
            return load_fail(st, "[%s] require: %s", section, why);
        }
        if ((r.subject[0] && a->req.subject[0]) || (r.issuer[0] && a->req.issuer[0]) ||
            (r.cipher[0] && a->req.cipher[0])) {
            return load_fail(st, "[%s] require: a name also given by a require_* key", section);
        }
        a->req.ssl |= r.ssl;
        a->req.x509 |= r.x509;
        if (r.subject[0]) {
            memcpy(a->req.subject, r.subject, sizeof(r.subject));
        }
        if (r.issuer[0]) {
            memcpy(a->req.issuer, r.issuer, sizeof(r.issuer));
        }
        if (r.cipher[0]) {
            memcpy(a->req.cipher, r.cipher, sizeof(r.cipher));
        }
        break;
    }
    case 3:
    case 4:
    case 5: {
        char *dst = k == 3 ? a->req.subject : k == 4 ? a->req.issuer : a->req.cipher;
        size_t cap = k == 5 ? sizeof(a->req.cipher) : sizeof(a->req.subject);
        if (dst[0] != '\0') {
            return load_fail(st, "[%s] %s: also given in require", section, name);
        }
        if (raw_value(value, dst, cap) < 0) {
            return load_fail(st, "[%s] %s: 1 to %zu printable bytes, no ';' or '#'", section, name, cap - 1);
        }
        a->req.ssl = 1;
        a->req.x509 |= k != 5;
        break;
    }
    case 6:
        if (strcmp(value, "ALL") != 0) {
            return load_fail(st, "[%s] grant: ALL is the one privilege an account can hold", section);
        }
        a->admin = 1;
        break;
    case 7:
        if (strcmp(value, "ON") != 0 && strcmp(value, "OFF") != 0) {
            return load_fail(st, "[%s] legacy_native_tls: ON or OFF", section);
        }
        a->legacy_native_tls = strcmp(value, "ON") == 0;
        break;
    case 8:
        if (strcmp(value, "ON") != 0 && strcmp(value, "OFF") != 0) {
            return load_fail(st, "[%s] native_password: ON or OFF", section);
        }
        a->native_password = strcmp(value, "ON") == 0;
        if (!a->native_password && a->native[0]) {
            return load_fail(st,
                             "[%s] native_password = OFF, but a mysql_native_password verifier is kept: remove "
                             "one or the other",
                             section);
        }
        break;
    case 9:
        if (strcmp(value, "ON") != 0 && strcmp(value, "OFF") != 0) {
            return load_fail(st, "[%s] plaintext_no_password: ON or OFF", section);
        }
        a->plaintext_no_password = strcmp(value, "ON") == 0;
        if (a->plaintext_no_password && !clink__literal_host(a->host)) {
            return load_fail(st,
                             "[%s] plaintext_no_password: only for a literal host (an address or localhost, no %% "
                             "or _)",
                             section);
        }
        break;
    case 1:
        if (!clink__valid_native(value)) {
            return load_fail(st, "[%s] mysql_native_password: not a verifier (\"*\" and 40 hex digits)", section);
        }
        if ((st->seen & (1u << K_NATIVE_PASSWORD)) && !a->native_password) {
            return load_fail(st,
                             "[%s] native_password = OFF, but a mysql_native_password verifier is kept: remove "
                             "one or the other",
                             section);
        }
        snprintf(a->native, sizeof(a->native), "%s", value);
        a->native_password = 1; /* files written before the choice existed: the verifier's presence is the choice */
        break;
    default:
        if (!clink__valid_sha2(value)) {
            return load_fail(st, "[%s] caching_sha2_password: not a SHA-256 crypt verifier (\"$5$...\")", section);
        }
        snprintf(a->sha2, sizeof(a->sha2), "%s", value);
        break;
    }
    return 1;
}

int clink__accounts_read_file(const char *path, struct clink__account **v, size_t *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        clink__set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -CLINK_ECONFIG;
    }
    /*
     * Sections first, by line: libinih reports keys only, so a repeated
     * [user@host] would read as one account and a section with no keys would
     * vanish. Every section must hold `require` (the writer always writes it).
     */
    size_t sections = 0, line_no = 0;
    char prev[CLINK_USER_MAX + CLINK_HOST_MAX + 2] = "", buf[512];
    long pos = 0;
    while (fgets(buf, sizeof(buf), f) != NULL) {
        line_no++;
        long next = ftell(f);
        size_t got = next >= pos ? (size_t)(next - pos) : 0, blen = strlen(buf);
        pos = next;
        /* What libinih would read differently from what the file shows: refused, not guessed at. */
        const char *why = NULL;
        if (blen != got) {
            why = "a NUL byte: not a text file";
        } else if (blen - (blen > 0 && buf[blen - 1] == '\n') > INI_LINE_MAX) {
            why = "a line longer than 198 bytes (libinih's limit)";
        }
        if (why != NULL) {
            clink__set_err(err, errlen, "%s:%zu: %s", path, line_no, why);
            fclose(f);
            return -CLINK_ECONFIG;
        }
        const char *b = clink__skip_ws(buf);
        if (*b != '[') {
            continue;
        }
        const char *e = strchr(b, ']');
        int len = e ? (int)(e - b - 1) : 0;
        if (len > INI_SECTION_MAX) {
            clink__set_err(err, errlen, "%s:%zu: [%.*s]: user@host longer than %d bytes (libinih's limit)", path,
                           line_no, len, b + 1, INI_SECTION_MAX);
            fclose(f);
            return -CLINK_ECONFIG;
        }
        char name[sizeof(prev)];
        snprintf(name, sizeof(name), "%.*s", len, b + 1);
        /* Two [a@b] in a row read as one account; further apart, on_key finds them. */
        if (sections > 0 && strcmp(prev, name) == 0) {
            clink__set_err(err, errlen, "%s:%zu: [%s]: account listed twice", path, line_no, name);
            fclose(f);
            return -CLINK_ECONFIG;
        }
        memcpy(prev, name, sizeof(name));
        sections++;
    }
    rewind(f);
    struct load_state st = {0};
    int line = ini_parse_file(f, on_key, &st);
    fclose(f);
    if (line != 0 || st.failed) {
        if (line < 0) {
            clink__set_err(err, errlen, "%s: cannot read", path);
        } else {
            clink__set_err(err, errlen, "%s:%d: %s", path, line, st.failed ? st.err : "not INI syntax");
        }
        free(st.v);
        return -CLINK_ECONFIG;
    }
    if (sections != st.n) {
        clink__set_err(err, errlen,
                       "%s: %zu section(s) but %zu account(s): every [user@host] needs at least `require = ...`", path,
                       sections, st.n);
        free(st.v);
        return -CLINK_ECONFIG;
    }
    *v = st.v;
    *n = st.n;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Temporary file in the same folder, fsync, rename over the old one, fsync the folder. */
int clink__accounts_save(const char *path, const struct clink__account *v, size_t n, char *err, size_t errlen)
{
    if (path == NULL) {
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (m == NULL) {
        return -CLINK_ENOMEM;
    }
    fputs("# clink accounts (docs/config.md). Written by clink: changes made through the API replace this file.\n", m);
    for (size_t i = 0; i < n; i++) {
        fprintf(m, "\n[%s@%s]\n", v[i].user, v[i].host);
        write_require(m, &v[i].req);
        if (v[i].native[0]) {
            fprintf(m, "mysql_native_password = %s\n", v[i].native);
        }
        if (v[i].admin) {
            fprintf(m, "grant = ALL\n");
        }
        if (v[i].legacy_native_tls) {
            fprintf(m, "legacy_native_tls = ON\n");
        }
        if (v[i].native_password) {
            fprintf(m, "native_password = ON\n");
        }
        if (v[i].plaintext_no_password) {
            fprintf(m, "plaintext_no_password = ON\n");
        }
        if (v[i].sha2[0]) {
            fprintf(m, "caching_sha2_password = %s\n", v[i].sha2);
        }
    }
    if (fclose(m) != 0) {
        free(text);
        return -CLINK_ENOMEM;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    char *dir = strdup(path);
    int ret = 0, fd = -1;
    if (tmp == NULL || dir == NULL) {
        ret = -CLINK_ENOMEM;
        goto out;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        ret = -errno;
        clink__set_err(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(errno));
        goto out;
    }
    if (fchmod(fd, 0600) < 0 || (ret = write_all(fd, text, len)) < 0 || fsync(fd) < 0) {
        ret = ret < 0 ? ret : -errno;
        clink__set_err(err, errlen, "%s: cannot write: %s", tmp, strerror(-ret));
        goto out;
    }
    /* The file keeps its owner (a root-run clink-accounts must not leave a file the node cannot read). */
    struct stat old;
    if (stat(path, &old) == 0) {
        CLINK_IGNORE(fchown(fd, old.st_uid, old.st_gid) < 0); /* not permitted: we own it anyway */
    }
    if (close(fd) < 0) {
        fd = -1;
        ret = -errno;
        clink__set_err(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    /* Never install a file that would not load: read it back first. */
    struct clink__account *back = NULL;
    size_t nback = 0;
    char why[256];
    if (clink__accounts_read_file(tmp, &back, &nback, why, sizeof(why)) < 0 || nback != n) {
        free(back);
        clink__set_err(err, errlen, "%s: the file written does not read back (%s); nothing changed", path, why);
        ret = -CLINK_EINVAL;
        goto out;
    }
    OPENSSL_cleanse(back, nback * sizeof(*back));
    free(back);
    if (rename(tmp, path) < 0) {
        ret = -errno;
        clink__set_err(err, errlen, "%s: cannot replace: %s", path, strerror(errno));
        goto out;
    }
    tmp[0] = '\0';
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        CLINK_IGNORE(fsync(dfd) < 0); /* the rename is done; a folder that cannot sync loses nothing we can fix */
        close(dfd);
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp != NULL && tmp[0] != '\0') {
        unlink(tmp);
    }
    free(tmp);
    free(dir);
    free(text);
    return ret;
}

/* Other processes (clink-accounts next to a running node) change the same file: one at a time, by flock. */
int clink__accounts_lock_file(const char *path, char *err, size_t errlen)
{
    size_t n = strlen(path) + 6;
    char *lp = malloc(n);
    if (lp == NULL) {
        return -CLINK_ENOMEM;
    }
    snprintf(lp, n, "%s.lock", path);
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int ret = fd < 0 ? -errno : 0;
    while (ret == 0 && flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            ret = -errno;
        }
    }
    if (ret < 0) {
        clink__set_err(err, errlen, "%s: cannot lock: %s", lp, strerror(-ret));
        if (fd >= 0) {
            close(fd);
        }
        fd = ret;
    }
    free(lp);
    return fd;
}
