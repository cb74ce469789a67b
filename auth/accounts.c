/*
 * Accounts and logins (include/clink/accounts.h, file format in
 * docs/config.md). libinih reads the file; libxcrypt makes and checks the
 * SHA-256 crypt verifier; OpenSSL gives SHA-1 and constant-time compares.
 */
#include "clink/accounts.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libgen.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define NATIVE_LEN 41 /* "*" + 40 hex digits */
#define SHA2_MAX   128
/*
 * libinih (as Debian builds it) reads a line of at most 198 bytes before its
 * newline and keeps 49 bytes of a section name. A longer line it cuts in two,
 * the rest read as a line of its own (a comment could hide a key), and a
 * longer [user@host] it cuts silently. read_file refuses both before libinih
 * sees the file, and the API refuses an account that would not fit: every
 * value the file holds is kept short enough to read back
 * ("require_subject = " + 180).
 */
#define INI_LINE_MAX    198
#define INI_SECTION_MAX 49
#define DN_MAX          181
#define CIPHER_MAX      64

struct require {
    int ssl, x509;
    char issuer[DN_MAX];
    char subject[DN_MAX];
    char cipher[CIPHER_MAX];
};

struct account {
    char user[CLINK_USER_MAX + 1];
    char host[CLINK_HOST_MAX + 1];
    char native[NATIVE_LEN + 1]; /* mysql_native_password verifier, "" if none */
    char sha2[SHA2_MAX];         /* caching_sha2_password verifier ($5$ SHA-256 crypt), "" if none */
    struct require req;
    int admin; /* grant = ALL: may manage accounts and reload TLS (MySQL's ALL PRIVILEGES ON *.*) */
};

struct clink_accounts {
    pthread_mutex_t mu;  /* the account set (logins read it); held only to copy or swap */
    pthread_mutex_t wmu; /* one writer at a time in this process: change, save, reload */
    int refs;
    char *path; /* NULL: memory only */
    struct account *v;
    size_t n;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- names ---- */

/* Printable, no quote, bracket, backslash or '@' in users (the file's [user@host] sections split at the last '@'). */
static int valid_name(const char *s, size_t max, int is_host)
{
    size_t n = strlen(s);
    if (n > max || (is_host && n == 0)) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch == 0x7f || ch == '[' || ch == ']' || ch == '\'' || ch == '"' || ch == '\\' || ch == '#' ||
            ch == ';' || ch == '=' || (is_host && ch == '@')) {
            return 0;
        }
    }
    return 1;
}

/* MySQL host patterns: % any run, _ one character. Returns a specificity score, or -1 when it does not match. */
static int host_score(const char *pat, const char *host)
{
    const char *p = pat, *h = host, *star_p = NULL, *star_h = NULL;
    while (*h != '\0') {
        if (*p == '%') {
            star_p = ++p;
            star_h = h;
        } else if (*p == '_' || *p == *h) {
            p++;
            h++;
        } else if (star_p != NULL) {
            p = star_p;
            h = ++star_h;
        } else {
            return -1;
        }
    }
    while (*p == '%') {
        p++;
    }
    if (*p != '\0') {
        return -1;
    }
    /* Most specific first, as MySQL sorts: a literal host beats any pattern, then more literal characters win. */
    int literal = 0, wild = 0;
    for (p = pat; *p; p++) {
        if (*p == '%' || *p == '_') {
            wild = 1;
        } else {
            literal++;
        }
    }
    return wild ? literal : 100000 + literal;
}

/* ---- REQUIRE grammar ---- */

static const char *skip_ws(const char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    return s;
}

static int word_is(const char *s, const char *w, const char **end)
{
    size_t n = strlen(w);
    if (strncasecmp(s, w, n) != 0 || isalnum((unsigned char)s[n]) || s[n] == '_') {
        return 0;
    }
    *end = s + n;
    return 1;
}

/* A single-quoted string; '' and \' stand for a quote, \\ for a backslash. */
static const char *quoted(const char *s, char *out, size_t cap, const char *what, char *err, size_t errlen)
{
    s = skip_ws(s);
    if (*s != '\'') {
        set_err(err, errlen, "%s needs a quoted value", what);
        return NULL;
    }
    size_t n = 0;
    for (s++;; s++) {
        char ch = *s;
        if (ch == '\0') {
            set_err(err, errlen, "unterminated quote after %s", what);
            return NULL;
        }
        if (ch == '\'' && s[1] == '\'') {
            s++;
        } else if (ch == '\\' && (s[1] == '\'' || s[1] == '\\')) {
            ch = *++s;
        } else if (ch == '\'') {
            break;
        }
        if ((unsigned char)ch < 0x20 || ch == 0x7f || ch == ';' || ch == '#') {
            set_err(err, errlen, "%s value: control characters, ';' and '#' cannot be stored", what);
            return NULL;
        }
        if (n + 1 >= cap) {
            set_err(err, errlen, "%s value longer than %zu bytes", what, cap - 1);
            return NULL;
        }
        out[n++] = ch;
    }
    out[n] = '\0';
    if (n == 0) {
        set_err(err, errlen, "%s value is empty", what);
        return NULL;
    }
    /* The file holds it unquoted (write_require), and libinih strips the spaces around a value. */
    if (out[0] == ' ' || out[n - 1] == ' ') {
        set_err(err, errlen, "%s value: a leading or trailing space cannot be stored", what);
        return NULL;
    }
    return s + 1;
}

/*
 * MySQL's grammar: REQUIRE NONE | tls_option [[AND] tls_option]..., where
 * tls_option is SSL, X509, ISSUER 'dn', SUBJECT 'dn' or CIPHER 'name', each
 * at most once. The leading REQUIRE is optional.
 */
static int parse_require(const char *text, struct require *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    const char *s = skip_ws(text ? text : "");
    const char *e;
    if (word_is(s, "REQUIRE", &e)) {
        s = skip_ws(e);
    }
    if (*s == '\0' || (word_is(s, "NONE", &e) && *skip_ws(e) == '\0')) {
        return 0;
    }
    int any = 0, ssl = 0, x509 = 0;
    while (*s != '\0') {
        if (any && word_is(s, "AND", &e)) {
            s = skip_ws(e);
        }
        if (word_is(s, "SSL", &e) && !ssl) {
            s = e;
            ssl = 1;
        } else if (word_is(s, "X509", &e) && !x509) {
            s = e;
            x509 = 1;
        } else if (word_is(s, "ISSUER", &e) && r->issuer[0] == '\0') {
            s = quoted(e, r->issuer, sizeof(r->issuer), "ISSUER", err, errlen);
            x509 = 1;
        } else if (word_is(s, "SUBJECT", &e) && r->subject[0] == '\0') {
            s = quoted(e, r->subject, sizeof(r->subject), "SUBJECT", err, errlen);
            x509 = 1;
        } else if (word_is(s, "CIPHER", &e) && r->cipher[0] == '\0') {
            s = quoted(e, r->cipher, sizeof(r->cipher), "CIPHER", err, errlen);
        } else {
            set_err(err, errlen,
                    "REQUIRE: expected NONE, or SSL, X509, ISSUER '...', SUBJECT '...', CIPHER '...' (each at most "
                    "once, optionally joined by AND) at \"%.40s\"",
                    s);
            return -CLINK_EINVAL;
        }
        if (s == NULL) {
            return -CLINK_EINVAL;
        }
        s = skip_ws(s);
        any = 1;
    }
    r->x509 = x509;
    r->ssl = 1; /* every option needs TLS */
    return 0;
}

/* The file keeps the clause in short lines: the base requirement, then one key per name (see DN_MAX). */
static void write_require(FILE *f, const struct require *r)
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
 * what quoted() would accept, so that it is written back the same (a value
 * starting with ';' after "= " would read back as a comment).
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

/* ---- verifiers ---- */

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

static int valid_native(const char *v)
{
    uint8_t b[20];
    return v[0] == '*' && unhex(v + 1, b, sizeof(b)) == 0;
}

static int valid_sha2(const char *v)
{
    return strncmp(v, "$5$", 3) == 0 && strlen(v) < SHA2_MAX && strchr(v + 3, '$') != NULL;
}

static int make_verifiers(const char *password, struct account *a, char *err, size_t errlen)
{
    a->native[0] = a->sha2[0] = '\0';
    if (password == NULL || password[0] == '\0') {
        return 0;
    }
    size_t len = strlen(password);
    if (len > CLINK_PASSWORD_MAX) {
        set_err(err, errlen, "password longer than %d bytes", CLINK_PASSWORD_MAX);
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
        set_err(err, errlen, "SHA-256 crypt failed: %s", strerror(errno));
        ret = -CLINK_EINTERNAL;
    } else {
        memcpy(a->sha2, cd->output, strlen(cd->output) + 1);
    }
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return ret;
}

static int check_cleartext(const struct account *a, const uint8_t *pw, size_t len)
{
    if (len == 0 || len > CLINK_PASSWORD_MAX) {
        return 0;
    }
    char buf[CLINK_PASSWORD_MAX + 1];
    memcpy(buf, pw, len);
    buf[len] = '\0';
    int ok = 0;
    if (memchr(pw, 0, len) != NULL) {
        ok = 0; /* an embedded NUL would make the crypt see a shorter password */
    } else if (a->sha2[0]) {
        struct crypt_data *cd = calloc(1, sizeof(*cd));
        if (cd != NULL) {
            if (crypt_rn(buf, a->sha2, cd, sizeof(*cd)) != NULL && strlen(cd->output) == strlen(a->sha2)) {
                ok = CRYPTO_memcmp(cd->output, a->sha2, strlen(a->sha2)) == 0;
            }
            OPENSSL_cleanse(cd, sizeof(*cd));
            free(cd);
        }
    } else if (a->native[0]) {
        uint8_t mine[20], want[20];
        native_stage2(buf, len, mine);
        ok = unhex(a->native + 1, want, sizeof(want)) == 0 && CRYPTO_memcmp(mine, want, sizeof(want)) == 0;
        OPENSSL_cleanse(mine, sizeof(mine));
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return ok;
}

int clink_login_scramble(const char *password, const uint8_t scramble[CLINK_SCRAMBLE_LEN], uint8_t out[20])
{
    if (password == NULL || scramble == NULL || out == NULL) {
        return -CLINK_EINVAL;
    }
    uint8_t stage1[20], stage2[20], mix[20];
    SHA1((const unsigned char *)password, strlen(password), stage1);
    SHA1(stage1, sizeof(stage1), stage2);
    uint8_t in[CLINK_SCRAMBLE_LEN + 20];
    memcpy(in, scramble, CLINK_SCRAMBLE_LEN);
    memcpy(in + CLINK_SCRAMBLE_LEN, stage2, 20);
    SHA1(in, sizeof(in), mix);
    for (int i = 0; i < 20; i++) {
        out[i] = stage1[i] ^ mix[i];
    }
    OPENSSL_cleanse(stage1, sizeof(stage1));
    OPENSSL_cleanse(stage2, sizeof(stage2));
    OPENSSL_cleanse(in, sizeof(in));
    return 0;
}

/* mysql_native_password: answer = SHA1(pw) ^ SHA1(scramble || stage2); SHA1(answer ^ SHA1(scramble || stage2)) ==
 * stage2. */
static int check_scramble(const struct account *a, const uint8_t *ans, size_t len, const uint8_t *scramble)
{
    uint8_t stage2[20], in[CLINK_SCRAMBLE_LEN + 20], mix[20], stage1[20], again[20];
    if (len != 20 || scramble == NULL || !a->native[0] || unhex(a->native + 1, stage2, sizeof(stage2)) != 0) {
        return 0;
    }
    memcpy(in, scramble, CLINK_SCRAMBLE_LEN);
    memcpy(in + CLINK_SCRAMBLE_LEN, stage2, 20);
    SHA1(in, sizeof(in), mix);
    for (int i = 0; i < 20; i++) {
        stage1[i] = ans[i] ^ mix[i];
    }
    SHA1(stage1, sizeof(stage1), again);
    int ok = CRYPTO_memcmp(again, stage2, sizeof(stage2)) == 0;
    OPENSSL_cleanse(stage1, sizeof(stage1));
    return ok;
}

/* ---- the file ---- */

struct load_state {
    struct account *v;
    size_t n, cap;
    char section[CLINK_USER_MAX + CLINK_HOST_MAX + 2];
    unsigned seen; /* keys seen in the current section */
    char err[384];
    int failed;
};

static struct account *find(struct account *v, size_t n, const char *user, const char *host)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].user, user) == 0 && strcmp(v[i].host, host) == 0) {
            return &v[i];
        }
    }
    return NULL;
}

static int split_section(const char *sec, char *user, char *host)
{
    const char *at = strrchr(sec, '@');
    if (at == NULL || (size_t)(at - sec) > CLINK_USER_MAX) {
        return -1;
    }
    memcpy(user, sec, (size_t)(at - sec));
    user[at - sec] = '\0';
    snprintf(host, CLINK_HOST_MAX + 1, "%s", at + 1);
    return valid_name(user, CLINK_USER_MAX, 0) && valid_name(host, CLINK_HOST_MAX, 1) &&
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
        if (find(st->v, st->n, user, host) != NULL) {
            return load_fail(st, "[%s]: account listed twice", section);
        }
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 8;
            struct account *nv = realloc(st->v, cap * sizeof(*nv));
            if (nv == NULL) {
                return load_fail(st, "out of memory");
            }
            st->v = nv;
            st->cap = cap;
        }
        struct account *a = &st->v[st->n++];
        memset(a, 0, sizeof(*a));
        memcpy(a->user, user, sizeof(user));
        memcpy(a->host, host, sizeof(host));
        snprintf(st->section, sizeof(st->section), "%s", section);
        st->seen = 0;
    }
    struct account *a = &st->v[st->n - 1];
    static const char *const keys[] = {"require",
                                       "mysql_native_password",
                                       "caching_sha2_password",
                                       "require_subject",
                                       "require_issuer",
                                       "require_cipher",
                                       "grant"};
    unsigned k = 0;
    while (k < 7 && strcmp(name, keys[k]) != 0) {
        k++;
    }
    if (k == 7) {
        return load_fail(st,
                         "[%s] %s: unknown key (require, require_subject, require_issuer, require_cipher, "
                         "mysql_native_password, caching_sha2_password, grant)",
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
        struct require r;
        if (parse_require(value, &r, why, sizeof(why)) < 0) {
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
    case 1:
        if (!valid_native(value)) {
            return load_fail(st, "[%s] mysql_native_password: not a verifier (\"*\" and 40 hex digits)", section);
        }
        snprintf(a->native, sizeof(a->native), "%s", value);
        break;
    default:
        if (!valid_sha2(value)) {
            return load_fail(st, "[%s] caching_sha2_password: not a SHA-256 crypt verifier (\"$5$...\")", section);
        }
        snprintf(a->sha2, sizeof(a->sha2), "%s", value);
        break;
    }
    return 1;
}

static int read_file(const char *path, struct account **v, size_t *n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
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
            set_err(err, errlen, "%s:%zu: %s", path, line_no, why);
            fclose(f);
            return -CLINK_ECONFIG;
        }
        const char *b = skip_ws(buf);
        if (*b != '[') {
            continue;
        }
        const char *e = strchr(b, ']');
        int len = e ? (int)(e - b - 1) : 0;
        if (len > INI_SECTION_MAX) {
            set_err(err, errlen, "%s:%zu: [%.*s]: user@host longer than %d bytes (libinih's limit)", path, line_no, len,
                    b + 1, INI_SECTION_MAX);
            fclose(f);
            return -CLINK_ECONFIG;
        }
        char name[sizeof(prev)];
        snprintf(name, sizeof(name), "%.*s", len, b + 1);
        /* Two [a@b] in a row read as one account; further apart, on_key finds them. */
        if (sections > 0 && strcmp(prev, name) == 0) {
            set_err(err, errlen, "%s:%zu: [%s]: account listed twice", path, line_no, name);
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
            set_err(err, errlen, "%s: cannot read", path);
        } else {
            set_err(err, errlen, "%s:%d: %s", path, line, st.failed ? st.err : "not INI syntax");
        }
        free(st.v);
        return -CLINK_ECONFIG;
    }
    if (sections != st.n) {
        set_err(err, errlen, "%s: %zu section(s) but %zu account(s): every [user@host] needs at least `require = ...`",
                path, sections, st.n);
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
static int save(const char *path, const struct account *v, size_t n, char *err, size_t errlen)
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
        set_err(err, errlen, "%s: cannot create a temporary file: %s", path, strerror(errno));
        goto out;
    }
    if (fchmod(fd, 0600) < 0 || (ret = write_all(fd, text, len)) < 0 || fsync(fd) < 0) {
        ret = ret < 0 ? ret : -errno;
        set_err(err, errlen, "%s: cannot write: %s", tmp, strerror(-ret));
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
        set_err(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    /* Never install a file that would not load: read it back first. */
    struct account *back = NULL;
    size_t nback = 0;
    char why[256];
    if (read_file(tmp, &back, &nback, why, sizeof(why)) < 0 || nback != n) {
        free(back);
        set_err(err, errlen, "%s: the file written does not read back (%s); nothing changed", path, why);
        ret = -CLINK_EINVAL;
        goto out;
    }
    OPENSSL_cleanse(back, nback * sizeof(*back));
    free(back);
    if (rename(tmp, path) < 0) {
        ret = -errno;
        set_err(err, errlen, "%s: cannot replace: %s", path, strerror(errno));
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

/* ---- API ---- */

static int make(const char *path, struct clink_accounts **out)
{
    struct clink_accounts *acc = calloc(1, sizeof(*acc));
    if (acc == NULL) {
        return -CLINK_ENOMEM;
    }
    if (path != NULL && (acc->path = strdup(path)) == NULL) {
        free(acc);
        return -CLINK_ENOMEM;
    }
    pthread_mutex_init(&acc->mu, NULL);
    pthread_mutex_init(&acc->wmu, NULL);
    acc->refs = 1;
    *out = acc;
    return 0;
}

int clink_accounts_new(const char *path, struct clink_accounts **out)
{
    if (out == NULL) {
        return -CLINK_EINVAL;
    }
    return make(path, out);
}

int clink_accounts_load(const char *path, struct clink_accounts **out, char *err, size_t errlen)
{
    if (path == NULL || out == NULL) {
        set_err(err, errlen, "no accounts file given");
        return -CLINK_EINVAL;
    }
    struct account *v = NULL;
    size_t n = 0;
    int ret = read_file(path, &v, &n, err, errlen);
    if (ret < 0) {
        return ret;
    }
    ret = make(path, out);
    if (ret < 0) {
        free(v);
        return ret;
    }
    (*out)->v = v;
    (*out)->n = n;
    return 0;
}

int clink_accounts_reload(struct clink_accounts *acc, char *err, size_t errlen)
{
    if (acc == NULL || acc->path == NULL) {
        set_err(err, errlen, "these accounts have no file");
        return -CLINK_EINVAL;
    }
    /* Under the writer lock: a reload must not swap in a file older than a change this process just saved. */
    pthread_mutex_lock(&acc->wmu);
    struct account *v = NULL;
    size_t n = 0;
    int ret = read_file(acc->path, &v, &n, err, errlen);
    if (ret == 0) {
        pthread_mutex_lock(&acc->mu);
        struct account *old = acc->v;
        size_t oldn = acc->n;
        acc->v = v;
        acc->n = n;
        pthread_mutex_unlock(&acc->mu);
        OPENSSL_cleanse(old, oldn * sizeof(*old));
        free(old);
    }
    pthread_mutex_unlock(&acc->wmu);
    return ret;
}

void clink_accounts_ref(struct clink_accounts *acc)
{
    pthread_mutex_lock(&acc->mu);
    acc->refs++;
    pthread_mutex_unlock(&acc->mu);
}

void clink_accounts_free(struct clink_accounts *acc)
{
    if (acc == NULL) {
        return;
    }
    pthread_mutex_lock(&acc->mu);
    int left = --acc->refs;
    pthread_mutex_unlock(&acc->mu);
    if (left > 0) {
        return;
    }
    pthread_mutex_destroy(&acc->mu);
    pthread_mutex_destroy(&acc->wmu);
    OPENSSL_cleanse(acc->v, acc->n * sizeof(*acc->v));
    free(acc->v);
    free(acc->path);
    free(acc);
}

size_t clink_accounts_count(struct clink_accounts *acc)
{
    pthread_mutex_lock(&acc->mu);
    size_t n = acc->n;
    pthread_mutex_unlock(&acc->mu);
    return n;
}

static int check_spec(const struct clink_account_spec *spec, const char **host, char *err, size_t errlen)
{
    if (spec == NULL || spec->user == NULL) {
        set_err(err, errlen, "an account needs a user name");
        return -CLINK_EINVAL;
    }
    *host = spec->host ? spec->host : "%";
    if (!valid_name(spec->user, CLINK_USER_MAX, 0)) {
        set_err(err, errlen, "user name '%.80s': at most %d printable bytes, no spaces, quotes, brackets or '#;=\\'",
                spec->user, CLINK_USER_MAX);
        return -CLINK_EINVAL;
    }
    if (!valid_name(*host, CLINK_HOST_MAX, 1)) {
        set_err(err, errlen, "host '%.80s': an address or a pattern with %% and _, at most %d bytes", *host,
                CLINK_HOST_MAX);
        return -CLINK_EINVAL;
    }
    if (spec->grant != NULL && strcmp(spec->grant, "ALL") != 0 && strcmp(spec->grant, "USAGE") != 0) {
        set_err(err, errlen, "grant '%.40s': ALL or USAGE", spec->grant);
        return -CLINK_EINVAL;
    }
    if (strlen(spec->user) + 1 + strlen(*host) > INI_SECTION_MAX) {
        set_err(err, errlen, "'%s'@'%s': user@host longer than %d bytes (the file's [user@host] section)", spec->user,
                *host, INI_SECTION_MAX);
        return -CLINK_EINVAL;
    }
    return 0;
}

/* Other processes (clink-accounts next to a running node) change the same file: one at a time, by flock. */
static int lock_file(const char *path, char *err, size_t errlen)
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
        set_err(err, errlen, "%s: cannot lock: %s", lp, strerror(-ret));
        if (fd >= 0) {
            close(fd);
        }
        fd = ret;
    }
    free(lp);
    return fd;
}

enum change_op { CH_ADD, CH_ALTER, CH_DROP };

/*
 * One change: under the writer lock (and the file's lock), start from the
 * file as it is now (another process may have changed it), apply, save,
 * then swap the new set in (the login lock only for the swap). A change that
 * cannot be saved is not made.
 */
static int change(struct clink_accounts *acc, enum change_op op, const struct account *a, int set_req, int set_pw,
                  int set_grant, char *err, size_t errlen)
{
    pthread_mutex_lock(&acc->wmu);
    int lockfd = -1, ret = 0;
    struct account *v = NULL;
    size_t n = 0;
    if (acc->path != NULL) {
        if ((lockfd = lock_file(acc->path, err, errlen)) < 0) {
            pthread_mutex_unlock(&acc->wmu);
            return lockfd;
        }
        if (access(acc->path, F_OK) == 0) {
            ret = read_file(acc->path, &v, &n, err, errlen);
        } else if (errno != ENOENT) {
            set_err(err, errlen, "%s: %s", acc->path, strerror(errno));
            ret = -errno;
        }
    } else {
        pthread_mutex_lock(&acc->mu);
        v = malloc((acc->n + 1) * sizeof(*v));
        if (v != NULL && acc->n > 0) {
            memcpy(v, acc->v, acc->n * sizeof(*v));
        }
        n = acc->n;
        pthread_mutex_unlock(&acc->mu);
        ret = v == NULL ? -CLINK_ENOMEM : 0;
    }
    struct account *grown = ret == 0 ? realloc(v, (n + 1) * sizeof(*v)) : NULL;
    if (ret == 0 && grown == NULL) {
        ret = -CLINK_ENOMEM;
    } else if (ret == 0) {
        v = grown;
    }
    struct account *found = ret == 0 ? find(v, n, a->user, a->host) : NULL;
    if (ret == 0) {
        if (op == CH_ADD && found != NULL) {
            set_err(err, errlen, "account '%s'@'%s' exists", a->user, a->host);
            ret = -EEXIST;
        } else if (op != CH_ADD && found == NULL) {
            set_err(err, errlen, "no account '%s'@'%s'", a->user, a->host);
            ret = -ENOENT;
        } else if (op == CH_ADD) {
            v[n++] = *a;
        } else if (op == CH_DROP) {
            memmove(found, found + 1, (size_t)(v + n - found - 1) * sizeof(*v));
            n--;
        } else {
            if (set_req) {
                found->req = a->req;
            }
            if (set_pw) {
                memcpy(found->native, a->native, sizeof(found->native));
                memcpy(found->sha2, a->sha2, sizeof(found->sha2));
            }
            if (set_grant) {
                found->admin = a->admin;
            }
        }
    }
    if (ret == 0) {
        ret = save(acc->path, v, n, err, errlen);
    }
    if (ret == 0) {
        pthread_mutex_lock(&acc->mu);
        struct account *old = acc->v;
        size_t oldn = acc->n;
        acc->v = v;
        acc->n = n;
        pthread_mutex_unlock(&acc->mu);
        v = old;
        n = oldn;
    }
    if (v != NULL) {
        OPENSSL_cleanse(v, n * sizeof(*v));
        free(v);
    }
    if (lockfd >= 0) {
        close(lockfd); /* releases the flock */
    }
    pthread_mutex_unlock(&acc->wmu);
    return ret;
}

int clink_accounts_add(struct clink_accounts *acc, const struct clink_account_spec *spec, char *err, size_t errlen)
{
    const char *host;
    int ret = check_spec(spec, &host, err, errlen);
    if (ret < 0 || acc == NULL) {
        return ret < 0 ? ret : -CLINK_EINVAL;
    }
    struct account a = {0};
    snprintf(a.user, sizeof(a.user), "%s", spec->user);
    snprintf(a.host, sizeof(a.host), "%s", host);
    a.admin = spec->grant != NULL && strcmp(spec->grant, "ALL") == 0;
    if ((ret = parse_require(spec->require, &a.req, err, errlen)) == 0 &&
        (ret = make_verifiers(spec->password, &a, err, errlen)) == 0) {
        ret = change(acc, CH_ADD, &a, 1, 1, 1, err, errlen);
    }
    OPENSSL_cleanse(&a, sizeof(a));
    return ret;
}

int clink_accounts_alter(struct clink_accounts *acc, const struct clink_account_spec *spec, char *err, size_t errlen)
{
    const char *host;
    int ret = check_spec(spec, &host, err, errlen);
    if (ret < 0 || acc == NULL) {
        return ret < 0 ? ret : -CLINK_EINVAL;
    }
    struct account a = {0};
    snprintf(a.user, sizeof(a.user), "%s", spec->user);
    snprintf(a.host, sizeof(a.host), "%s", host);
    if ((spec->require == NULL || (ret = parse_require(spec->require, &a.req, err, errlen)) == 0) &&
        (spec->password == NULL || (ret = make_verifiers(spec->password, &a, err, errlen)) == 0)) {
        a.admin = spec->grant != NULL && strcmp(spec->grant, "ALL") == 0;
        ret =
            change(acc, CH_ALTER, &a, spec->require != NULL, spec->password != NULL, spec->grant != NULL, err, errlen);
    }
    OPENSSL_cleanse(&a, sizeof(a));
    return ret;
}

int clink_accounts_drop(struct clink_accounts *acc, const char *user, const char *host, char *err, size_t errlen)
{
    if (acc == NULL || user == NULL) {
        return -CLINK_EINVAL;
    }
    struct account a = {0};
    snprintf(a.user, sizeof(a.user), "%s", user);
    snprintf(a.host, sizeof(a.host), "%s", host ? host : "%");
    return change(acc, CH_DROP, &a, 0, 0, 0, err, errlen);
}

size_t clink_access_denied(const char *user, const char *host, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "Access denied for user '%s'@'%s'", user ? user : "", host ? host : "");
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap ? cap - 1 : 0;
}

/* The whole name, however long (a fixed buffer would cut it and let a longer name match a prefix). */
static int dn_equals(const X509_NAME *name, const char *want, char *shown, size_t cap)
{
    char *dn = name ? X509_NAME_oneline(name, NULL, 0) : NULL;
    int eq = dn != NULL && strcmp(dn, want) == 0;
    snprintf(shown, cap, "%s", dn ? dn : "");
    OPENSSL_free(dn);
    return eq;
}

/*
 * A cleartext login that fails before its password is hashed still costs a
 * hash, so that timing does not tell which user names exist.
 */
static void dummy_hash(const struct clink_login *l)
{
    if (l->method != CLINK_LOGIN_CLEARTEXT) {
        return;
    }
    struct account fake = {0};
    snprintf(fake.sha2, sizeof(fake.sha2), "%s", "$5$rounds=5000$clinkclinkclink$");
    CLINK_IGNORE(check_cleartext(&fake, l->auth, l->auth_len) != 0);
}

int clink_accounts_check(struct clink_accounts *acc, const struct clink_login *l, char *matched, size_t matched_len,
                         char *why, size_t whylen)
{
    if (acc == NULL || l == NULL || l->user == NULL || l->host == NULL) {
        set_err(why, whylen, "bad login arguments");
        return -CLINK_EACCESS;
    }
    struct account a;
    int best = -1;
    pthread_mutex_lock(&acc->mu);
    for (size_t i = 0; i < acc->n; i++) {
        if (strcmp(acc->v[i].user, l->user) != 0) {
            continue;
        }
        int s = host_score(acc->v[i].host, l->host);
        if (s > best) {
            best = s;
            a = acc->v[i];
        }
    }
    pthread_mutex_unlock(&acc->mu);
    if (best < 0) {
        dummy_hash(l);
        set_err(why, whylen, "no account matches '%s'@'%s'", l->user, l->host);
        return -CLINK_EACCESS;
    }
    int ret = -CLINK_EACCESS;
    int has_pw = a.native[0] || a.sha2[0];
    if (!has_pw && l->method != CLINK_LOGIN_NONE) {
        dummy_hash(l);
        set_err(why, whylen, "'%s'@'%s' has no password but the login gave one", a.user, a.host);
    } else if (has_pw && l->method == CLINK_LOGIN_NONE) {
        set_err(why, whylen, "'%s'@'%s' needs a password and the login gave none", a.user, a.host);
    } else if (l->method == CLINK_LOGIN_CLEARTEXT && !l->tls) {
        set_err(why, whylen, "a cleartext password outside TLS is never accepted");
    } else if (l->method == CLINK_LOGIN_CLEARTEXT && !check_cleartext(&a, l->auth, l->auth_len)) {
        set_err(why, whylen, "wrong password for '%s'@'%s'", a.user, a.host);
    } else if (l->method == CLINK_LOGIN_SCRAMBLE && !a.native[0]) {
        set_err(why, whylen, "'%s'@'%s' has no mysql_native_password verifier for a scramble login", a.user, a.host);
    } else if (l->method == CLINK_LOGIN_SCRAMBLE && !check_scramble(&a, l->auth, l->auth_len, l->scramble)) {
        set_err(why, whylen, "wrong password for '%s'@'%s'", a.user, a.host);
    } else if (a.req.ssl && !l->tls) {
        set_err(why, whylen, "'%s'@'%s' requires SSL and the connection is plaintext", a.user, a.host);
    } else if (a.req.x509 && (l->peer_cert == NULL || !l->peer_verified)) {
        set_err(why, whylen, "'%s'@'%s' requires a verified client certificate and there is none", a.user, a.host);
    } else if (a.req.cipher[0] && (l->cipher == NULL || strcmp(l->cipher, a.req.cipher) != 0)) {
        set_err(why, whylen, "'%s'@'%s' requires cipher %s, the connection uses %s", a.user, a.host, a.req.cipher,
                l->cipher ? l->cipher : "none");
    } else {
        char dn[256];
        ret = 0;
        if (a.req.subject[0]) {
            if (!dn_equals(X509_get_subject_name(l->peer_cert), a.req.subject, dn, sizeof(dn))) {
                set_err(why, whylen, "'%s'@'%s' requires subject '%s', the certificate has '%s'", a.user, a.host,
                        a.req.subject, dn);
                ret = -CLINK_EACCESS;
            }
        }
        if (ret == 0 && a.req.issuer[0]) {
            if (!dn_equals(X509_get_issuer_name(l->peer_cert), a.req.issuer, dn, sizeof(dn))) {
                set_err(why, whylen, "'%s'@'%s' requires issuer '%s', the certificate has '%s'", a.user, a.host,
                        a.req.issuer, dn);
                ret = -CLINK_EACCESS;
            }
        }
    }
    if (ret == 0 && matched != NULL && matched_len > 0) {
        snprintf(matched, matched_len, "%s@%s", a.user, a.host);
    }
    OPENSSL_cleanse(&a, sizeof(a));
    return ret;
}

int clink_accounts_is_admin(struct clink_accounts *acc, const char *matched)
{
    int admin = 0;
    if (acc == NULL || matched == NULL) {
        return 0;
    }
    pthread_mutex_lock(&acc->mu);
    for (size_t i = 0; i < acc->n && !admin; i++) {
        char name[CLINK_USER_MAX + CLINK_HOST_MAX + 2];
        snprintf(name, sizeof(name), "%s@%s", acc->v[i].user, acc->v[i].host);
        admin = acc->v[i].admin && strcmp(name, matched) == 0;
    }
    pthread_mutex_unlock(&acc->mu);
    return admin;
}
