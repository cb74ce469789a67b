/*
 * The MySQL option file syntax, line by line as mysys/my_default.cc
 * (search_default_file_with_ext) reads it; docs/config.md, "The file
 * format", says where clink is stricter and why.
 */
#include "server/option_file.h"

#include "clink/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct reader {
    clink__optfile_cb cb;
    void *user;
    char *err;
    size_t errlen;
    /* the files being read, outermost first (realpath): an !include of one of them is a cycle */
    const char *open[CLINK__OPTFILE_MAX_DEPTH + 1];
    int depth;
    /* files read from memory instead (an edit checked before it is written) */
    const struct clink__optfile_swap *swaps;
    size_t nswaps;
};

static int fail(struct reader *r, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct reader *r, const char *file, int line, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(r->err, r->errlen, "%s:%d: %s", file, line, why);
    return -CLINK_ECONFIG;
}

static int is_space(char c)
{
    return isspace((unsigned char)c) != 0;
}

/* A '#' outside quotes ends the line (remove_end_comment: a backslash inside quotes protects a quote). */
static void cut_comment(char *p)
{
    char quote = 0;
    int escape = 0;
    for (; *p != '\0'; p++) {
        if ((*p == '\'' || *p == '"') && !escape) {
            quote = quote == 0 ? *p : (quote == *p ? 0 : quote);
        }
        if (quote == 0 && *p == '#') {
            *p = '\0';
            return;
        }
        escape = quote != 0 && *p == '\\' && !escape;
    }
}

/* In place: the quotes around a value removed, then MySQL's escapes (an unknown one keeps its backslash). */
static void unquote(char *v)
{
    size_t n = strlen(v);
    char *s = v, *end = v + n;
    if (n > 1 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        s++;
        end--;
    }
    char *o = v;
    for (; s < end; s++) {
        if (*s == '\\' && s + 1 < end) {
            static const char from[] = "ntrbs\"'\\", to[] = "\n\t\r\b \"'\\";
            const char *hit = strchr(from, s[1]);
            if (hit != NULL) {
                *o++ = to[hit - from];
                s++;
                continue;
            }
        }
        *o++ = *s;
    }
    *o = '\0';
}

static char *trim(char *b, char *e)
{
    while (b < e && is_space(*b)) {
        b++;
    }
    while (e > b && is_space(e[-1])) {
        e--;
    }
    *e = '\0';
    return b;
}

static int read_file_at(struct reader *r, const char *path, const char *written, const char *from, int from_line);
static int read_text_at(struct reader *r, const char *text, const char *name, const char *dir);

static int join(char *out, size_t cap, const char *dir, const char *p)
{
    int n = p[0] == '/' ? snprintf(out, cap, "%s", p) : snprintf(out, cap, "%s/%s", dir, p);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* !includedir: every *.cnf in the folder, in name order (my_dir sorts), each read as an !include. */
static int include_dir(struct reader *r, const char *dirpath, const char *file, int line)
{
    DIR *d = opendir(dirpath);
    if (d == NULL) {
        return fail(r, file, line, "!includedir %s: %s", dirpath, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int ret = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *dot = strrchr(e->d_name, '.');
        if (dot == NULL || strcmp(dot, ".cnf") != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof(*names));
            if (grown == NULL) {
                ret = -CLINK_ENOMEM;
                goto out;
            }
            names = grown;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            ret = -CLINK_ENOMEM;
            goto out;
        }
        n++;
    }
    if (n > 0) {
        qsort(names, n, sizeof(*names), by_name);
    }
    for (size_t i = 0; i < n && ret == 0; i++) {
        char path[PATH_MAX];
        struct stat sb;
        if (join(path, sizeof(path), dirpath, names[i]) < 0) {
            ret = fail(r, file, line, "!includedir %s: path too long", dirpath);
        } else if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            ret = read_file_at(r, path, path, file, line);
        }
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    closedir(d);
    return ret;
}

static int directive(struct reader *r, char *p, const char *file, int line, const char *dir)
{
    int isdir = strncmp(p, "!includedir", 11) == 0 && (is_space(p[11]) || p[11] == '\0');
    int isfile = !isdir && strncmp(p, "!include", 8) == 0 && (is_space(p[8]) || p[8] == '\0');
    if (!isdir && !isfile) {
        return fail(r, file, line, "unknown directive (only !include FILE and !includedir DIR)");
    }
    char *arg = trim(p + (isdir ? 11 : 8), p + strlen(p));
    if (arg[0] == '\0') {
        return fail(r, file, line, "%s needs a path", isdir ? "!includedir" : "!include");
    }
    if (r->depth > CLINK__OPTFILE_MAX_DEPTH) {
        return fail(r, file, line, "%s %s: includes nested deeper than %d", isdir ? "!includedir" : "!include", arg,
                    CLINK__OPTFILE_MAX_DEPTH);
    }
    /* Relative to the including file's folder, not the process's working directory (docs/config.md). */
    char path[PATH_MAX];
    if (join(path, sizeof(path), dir, arg) < 0) {
        return fail(r, file, line, "%s: path too long", arg);
    }
    return isdir ? include_dir(r, path, file, line) : read_file_at(r, path, arg, file, line);
}

static int read_text_at(struct reader *r, const char *text, const char *name, const char *dir)
{
    char *copy = strdup(text);
    if (copy == NULL) {
        return -CLINK_ENOMEM;
    }
    char section[256] = "";
    int have_section = 0, ret = 0, line = 0;
    for (char *p = copy, *next; p != NULL && ret == 0; p = next) {
        line++;
        next = strchr(p, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        while (is_space(*p)) {
            p++;
        }
        if (*p == '\0' || *p == '#' || *p == ';') {
            continue;
        }
        if (*p == '!') {
            ret = directive(r, p, name, line, dir);
            continue;
        }
        if (*p == '[') {
            char *close = strchr(p, ']');
            if (close == NULL) {
                ret = fail(r, name, line, "'[' without ']' (expected [section])");
                continue;
            }
            /* mysqld ignores what follows ']'; clink allows only a comment there. */
            char *rest = close + 1;
            while (is_space(*rest)) {
                rest++;
            }
            if (*rest != '\0' && *rest != '#' && *rest != ';') {
                ret = fail(r, name, line, "text after [section]");
                continue;
            }
            char *s = trim(p + 1, close);
            if (strlen(s) >= sizeof(section)) {
                ret = fail(r, name, line, "section name longer than %zu bytes", sizeof(section) - 1);
                continue;
            }
            snprintf(section, sizeof(section), "%s", s);
            have_section = 1;
            continue;
        }
        if (!have_section) {
            ret = fail(r, name, line, "a key before any [section]");
            continue;
        }
        cut_comment(p);
        char *eq = strchr(p, '=');
        char *key = trim(p, eq != NULL ? eq : p + strlen(p));
        char *value = NULL;
        if (eq != NULL) {
            value = trim(eq + 1, eq + 1 + strlen(eq + 1));
            unquote(value);
        }
        if (key[0] == '\0') {
            ret = fail(r, name, line, "a value without a key (expected key = value)");
            continue;
        }
        struct clink__optfile_key k = {.file = name, .line = line, .section = section, .key = key, .value = value};
        char why[512] = "";
        if ((ret = r->cb(r->user, &k, why, sizeof(why))) < 0) {
            snprintf(r->err, r->errlen, "%s:%d: %s", name, line, why);
        }
    }
    free(copy);
    return ret;
}

/* from/from_line: the !include that names path, as written (NULL for the file clink was given). */
static int read_file_at(struct reader *r, const char *path, const char *written, const char *from, int from_line)
{
    char *abs = realpath(path, NULL), *text = NULL;
    FILE *f = NULL;
    int ret = -CLINK_ECONFIG;
    if (abs == NULL) {
        if (from == NULL) {
            snprintf(r->err, r->errlen, "%s: cannot open config file: %s", path, strerror(errno));
            return -CLINK_ECONFIG;
        }
        return fail(r, from, from_line, "!include %s: %s", written, strerror(errno));
    }
    for (int i = 0; i < r->depth; i++) {
        if (strcmp(r->open[i], abs) == 0) {
            ret = fail(r, from, from_line, "!include %s: a cycle (the file is already being read)", written);
            goto out;
        }
    }
    const char *swapped = NULL;
    for (size_t i = 0; i < r->nswaps; i++) {
        swapped = swapped == NULL && strcmp(abs, r->swaps[i].path) == 0 ? r->swaps[i].text : swapped;
    }
    if (swapped != NULL) {
        char *slash = strrchr(abs, '/');
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%.*s", slash == abs ? 1 : (int)(slash - abs), abs);
        r->open[r->depth++] = abs;
        ret = read_text_at(r, swapped, path, dir);
        r->depth--;
        goto out;
    }
    /* A FIFO would block the node at start (in open), a device (/dev/zero) never end. */
    struct stat sb;
    if (stat(abs, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (from != NULL) {
            ret = fail(r, from, from_line, "!include %s: not a regular file", written);
        } else {
            snprintf(r->err, r->errlen, "%s: not a regular file", path);
        }
        goto out;
    }
    if ((f = fopen(abs, "r")) == NULL) {
        if (from != NULL) {
            ret = fail(r, from, from_line, "!include %s: %s", written, strerror(errno));
        } else {
            snprintf(r->err, r->errlen, "%s: cannot open config file: %s", path, strerror(errno));
        }
        goto out;
    }
    if ((text = malloc(CLINK__OPTFILE_MAX_SIZE)) == NULL) {
        ret = -CLINK_ENOMEM;
        goto out;
    }
    size_t len = fread(text, 1, CLINK__OPTFILE_MAX_SIZE - 1, f);
    if (ferror(f) || !feof(f)) {
        snprintf(r->err, r->errlen, "%s: cannot read config file (larger than 1 MiB, or an I/O error)", path);
        goto out;
    }
    text[len] = '\0';
    if (memchr(text, '\0', len) != NULL) {
        snprintf(r->err, r->errlen, "%s: not a text file (NUL byte)", path);
        goto out;
    }
    char *slash = strrchr(abs, '/');
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%.*s", slash == abs ? 1 : (int)(slash - abs), abs);
    r->open[r->depth++] = abs;
    ret = read_text_at(r, text, path, dir);
    r->depth--;
out:
    if (f != NULL) {
        fclose(f);
    }
    free(text);
    free(abs);
    return ret;
}

static int start(struct reader *r, clink__optfile_cb cb, void *user, char *err, size_t errlen)
{
    if (cb == NULL || err == NULL || errlen == 0) {
        return -CLINK_EINVAL;
    }
    *r = (struct reader){.cb = cb, .user = user, .err = err, .errlen = errlen};
    err[0] = '\0';
    return 0;
}

int clink__optfile_read_text(const char *text, const char *name, const char *dir, clink__optfile_cb cb, void *user,
                             char *err, size_t errlen)
{
    struct reader r;
    int ret = start(&r, cb, user, err, errlen);
    if (ret < 0 || text == NULL || dir == NULL) {
        return ret < 0 ? ret : -CLINK_EINVAL;
    }
    /* The text counts as the outermost file (its nesting level), one no !include can name. */
    r.open[r.depth++] = "";
    return read_text_at(&r, text, name[0] ? name : "config", dir);
}

int clink__optfile_read_file(const char *path, clink__optfile_cb cb, void *user, char *err, size_t errlen)
{
    return clink__optfile_read_swapped(path, NULL, 0, cb, user, err, errlen);
}

int clink__optfile_read_swapped(const char *path, const struct clink__optfile_swap *swaps, size_t nswaps,
                                clink__optfile_cb cb, void *user, char *err, size_t errlen)
{
    struct reader r;
    int ret = start(&r, cb, user, err, errlen);
    if (ret < 0 || path == NULL) {
        return ret < 0 ? ret : -CLINK_EINVAL;
    }
    r.swaps = swaps;
    r.nswaps = nswaps;
    return read_file_at(&r, path, path, NULL, 0);
}
