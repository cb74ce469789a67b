/*
 * One key of the config file changed from outside (clink_server_set_config,
 * which POST /config and clink-admin update-config reach): found where its
 * effective value is, the line rewritten and nothing else, the whole
 * resulting configuration read and built before anything is written, the
 * old file kept beside it, the new one put in place with a rename, then a
 * reload applies it or says it waits for a restart.
 */
#include "server/option_file.h"
#include "server/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct where {
    const char *canon;   /* the key looked for */
    char file[PATH_MAX]; /* the last [server] line that sets it: its file (real path) and line */
    int line;
};

/* Later values win (as in mysqld), so the last line met is the one that counts. */
static int locate(void *user, const struct clink__optfile_key *k, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct where *w = user;
    char canon[64];
    if (strcasecmp(k->section, "server") == 0 && clink__config_key_of(k->key, canon, sizeof(canon)) == 0 &&
        strcmp(canon, w->canon) == 0 && realpath(k->file, w->file) != NULL) {
        w->line = k->line;
    }
    return 0;
}

/* The value as the option file reader will read it back: quoted when it has to be. */
static int format_value(const char *v, char *out, size_t cap)
{
    size_t n = strlen(v), o = 0;
    int quote = n == 0 || v[0] == ' ' || v[n - 1] == ' ' || v[0] == '\t' || v[n - 1] == '\t';
    for (const char *p = v; *p; p++) {
        quote |= *p == '#' || *p == '"' || *p == '\'' || *p == '\\';
    }
    if (quote && o < cap) {
        out[o++] = '"';
    }
    for (const char *p = v; *p && o + 3 < cap; p++) {
        if (quote && (*p == '"' || *p == '\\')) {
            out[o++] = '\\';
        }
        out[o++] = *p;
    }
    if (quote && o < cap) {
        out[o++] = '"';
    }
    if (o >= cap) {
        return -1;
    }
    out[o] = '\0';
    return 0;
}

struct text {
    char *p;
    size_t n, cap;
};

static int put(struct text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        size_t cap = (t->n + n + 1) * 2;
        char *g = realloc(t->p, cap);
        if (g == NULL) {
            return -1;
        }
        t->p = g;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = '\0';
    return 0;
}

/* Where a '#' comment starts on a line, outside quotes (the reader's rule), else NULL. */
static const char *comment_of(const char *p, const char *end)
{
    char q = 0;
    for (int esc = 0; p < end; p++) {
        if ((*p == '\'' || *p == '"') && !esc) {
            q = q == 0 ? *p : (q == *p ? 0 : q);
        }
        if (q == 0 && *p == '#') {
            return p;
        }
        esc = *p == '\\' && !esc;
    }
    return NULL;
}

/* The new line for a line that set the key: its indentation, its key as written, its comment kept. */
static int rewrite_line(struct text *t, const char *b, const char *e, const char *canon, const char *value)
{
    const char *k = b;
    while (k < e && (*k == ' ' || *k == '\t')) {
        k++;
    }
    const char *hash = comment_of(k, e), *stop = hash ? hash : e;
    const char *eq = memchr(k, '=', (size_t)(stop - k));
    const char *ke = eq ? eq : stop;
    while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) {
        ke--;
    }
    /* "ssl-cert" stays "ssl-cert"; "skip-ops" (which takes no value) becomes the key itself. */
    char written[64], canon2[64];
    snprintf(written, sizeof(written), "%.*s", (int)(ke - k), k);
    const char *bare = written;
    if (strncasecmp(bare, "loose-", 6) == 0 || strncasecmp(bare, "loose_", 6) == 0) {
        bare += 6;
    }
    if (clink__config_key_of(bare, canon2, sizeof(canon2)) != 0 || strlen(bare) != strlen(canon)) {
        bare = canon;
    }
    /* The spaces before the comment as they were: comments lined up in a column stay so. */
    const char *gap = hash;
    while (gap != NULL && gap > k && (gap[-1] == ' ' || gap[-1] == '\t')) {
        gap--;
    }
    char line[CLINK_CONFIG_PATH_MAX + 128];
    int n = snprintf(line, sizeof(line), "%.*s%s = %s%.*s%.*s", (int)(k - b), b, bare, value,
                     hash ? (int)(hash - gap) : 0, hash ? gap : "", hash ? (int)(e - hash) : 0, hash ? hash : "");
    return n < 0 || (size_t)n >= sizeof(line) ? -1 : put(t, line, (size_t)n);
}

/*
 * The file's text with the key set: line `line` rewritten, or (line 0) a
 * new line after the last key of the file's last [server] section, or a
 * new [server] section at the end. Returns the new line's number, or -1.
 */
static int edited(const char *old, int line, const char *canon, const char *value, struct text *t)
{
    int at = 0, server_end = 0, n = 0, in_server = 0;
    if (line == 0) {
        /* the line after which the key goes: the last key line (or the header) of the last [server] */
        for (const char *p = old; *p;) {
            const char *e = strchr(p, '\n');
            e = e ? e : p + strlen(p);
            n++;
            const char *q = p;
            while (q < e && (*q == ' ' || *q == '\t')) {
                q++;
            }
            if (*q == '[') {
                const char *c = memchr(q, ']', (size_t)(e - q));
                in_server = c != NULL && c - q - 1 == 6 && strncasecmp(q + 1, "server", 6) == 0;
                server_end = in_server ? n : server_end;
            } else if (in_server && q < e && *q != '#' && *q != ';' && *q != '!') {
                server_end = n;
            }
            p = *e ? e + 1 : e;
        }
    }
    n = 0;
    const char *p = old;
    while (*p) {
        const char *e = strchr(p, '\n');
        e = e ? e : p + strlen(p);
        n++;
        if (n == line) {
            if (rewrite_line(t, p, e, canon, value) < 0) {
                return -1;
            }
            at = n;
        } else if (put(t, p, (size_t)(e - p)) < 0) {
            return -1;
        }
        if (*e || n == server_end) {
            put(t, "\n", 1);
        }
        if (line == 0 && n == server_end) {
            char l[CLINK_CONFIG_PATH_MAX + 128];
            int k = snprintf(l, sizeof(l), "%s = %s\n", canon, value);
            if (k < 0 || (size_t)k >= sizeof(l) || put(t, l, (size_t)k) < 0) {
                return -1;
            }
            at = n + 1;
            n++;
        }
        p = *e ? e + 1 : e;
    }
    if (at == 0) {
        char l[CLINK_CONFIG_PATH_MAX + 128];
        int k =
            snprintf(l, sizeof(l), "%s[server]\n%s = %s\n", t->n && t->p[t->n - 1] != '\n' ? "\n" : "", canon, value);
        if (k < 0 || (size_t)k >= sizeof(l) || put(t, l, (size_t)k) < 0) {
            return -1;
        }
        at = n + 2;
    }
    return t->p == NULL && put(t, "", 0) < 0 ? -1 : at;
}

/* out refused, and why (cut to fit: a reason names files, which may be long). Returns ret. */
static int refuse(struct clink_server_edit *out, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct clink_server_edit *out, int ret, const char *fmt, ...)
{
    out->outcome = CLINK_SERVER_EDIT_REFUSED;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof(out->why), fmt, ap);
    va_end(ap);
    return ret;
}

/* Edits one at a time: each reads the file the last one wrote. */
static pthread_mutex_t edit_mu = PTHREAD_MUTEX_INITIALIZER;

/* A file an edit changes: as it is on disk, and as it will be. */
struct edited_file {
    char path[PATH_MAX]; /* real path */
    char *old;
    size_t oldlen;
    mode_t mode;
    struct text now;
    int written; /* renamed into place (put back if a later step fails) */
};

struct edit {
    struct edited_file f[CLINK_SERVER_EDIT_MAX_KEYS + 1];
    size_t nf;
    struct clink__optfile_swap swaps[CLINK_SERVER_EDIT_MAX_KEYS + 1];
};

static size_t swaps_of(struct edit *ed)
{
    for (size_t i = 0; i < ed->nf; i++) {
        ed->swaps[i] = (struct clink__optfile_swap){.path = ed->f[i].path, .text = ed->f[i].now.p};
    }
    return ed->nf;
}

/* The entry for path, read from disk the first time. NULL with why on failure. */
static struct edited_file *file_of(struct edit *ed, const char *path, char *why, size_t cap)
{
    for (size_t i = 0; i < ed->nf; i++) {
        if (strcmp(ed->f[i].path, path) == 0) {
            return &ed->f[i];
        }
    }
    struct edited_file *f = &ed->f[ed->nf];
    struct stat sb;
    int r = clink__server_read_text(path, CLINK__OPTFILE_MAX_SIZE, &f->old, &f->oldlen);
    if (r < 0 || stat(path, &sb) != 0 || put(&f->now, f->old, f->oldlen) < 0) {
        snprintf(why, cap, "%.300s: %s", path, strerror(r < 0 ? -r : errno ? errno : ENOMEM));
        free(f->old);
        free(f->now.p);
        memset(f, 0, sizeof(*f));
        return NULL;
    }
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->mode = sb.st_mode & 07777;
    ed->nf++;
    return f;
}

/* Set one key in the texts being edited; its file and line go to out when it is the first key. */
static int edit_key(struct clink_server *srv, struct edit *ed, const char *canon, const char *value, int first,
                    struct clink_server_edit *out)
{
    struct where w = {.canon = canon};
    char err[512], fv[CLINK_CONFIG_PATH_MAX + 8];
    size_t ns = swaps_of(ed);
    if (clink__optfile_read_swapped(srv->path, ed->swaps, ns, locate, &w, err, sizeof(err)) < 0) {
        return refuse(out, -CLINK_ECONFIG, "the config file cannot be read as it is: %s", err);
    }
    if (w.line == 0 && realpath(srv->path, w.file) == NULL) {
        return refuse(out, -CLINK_ECONFIG, "%s: %s", srv->path, strerror(errno));
    }
    if (format_value(value, fv, sizeof(fv)) < 0) {
        return refuse(out, -CLINK_EINVAL, "%s: value too long", canon);
    }
    struct edited_file *f = file_of(ed, w.file, err, sizeof(err));
    if (f == NULL) {
        return refuse(out, -CLINK_ECONFIG, "%s", err);
    }
    struct text t = {0};
    int line = edited(f->now.p ? f->now.p : "", w.line, canon, fv, &t);
    if (line < 0) {
        free(t.p);
        return refuse(out, -CLINK_ENOMEM, "out of memory");
    }
    free(f->now.p);
    f->now = t;
    if (first) {
        snprintf(out->file, sizeof(out->file), "%s", f->path);
        out->line = line;
    }
    return 0;
}

/* Each changed file back as it was, where it was already replaced. */
static void put_back(struct edit *ed)
{
    char err[256];
    for (size_t i = 0; i < ed->nf; i++) {
        if (ed->f[i].written) {
            CLINK_IGNORE(clink__server_replace_file(ed->f[i].path, ed->f[i].old, ed->f[i].oldlen, ed->f[i].mode, err,
                                                    sizeof(err)));
        }
    }
}

static int changed(const struct edited_file *f)
{
    return f->now.n != f->oldlen || memcmp(f->now.p ? f->now.p : "", f->old, f->oldlen) != 0;
}

static int set_locked(struct clink_server *srv, size_t n, char (*canon)[64], const char *const *values,
                      struct clink_server_edit *out)
{
    struct edit *ed = calloc(1, sizeof(*ed));
    if (ed == NULL) {
        return refuse(out, -CLINK_ENOMEM, "out of memory");
    }
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        ret = edit_key(srv, ed, canon[i], values[i], i == 0, out);
    }
    int any = 0;
    for (size_t i = 0; i < ed->nf; i++) {
        any |= changed(&ed->f[i]);
    }
    struct clink_server_report *chk = &out->reload;
    char err[512];
    if (ret < 0) {
        /* refused above */
    } else if (!any) {
        out->outcome = CLINK_SERVER_EDIT_UNCHANGED;
    } else if ((ret = clink__server_check(srv, ed->swaps, swaps_of(ed), chk)) < 0) {
        refuse(out, ret, "the new setting is refused, nothing was written: %s", chk->why);
    } else {
        unsigned restart = chk->restart;
        for (size_t i = 0; i < ed->nf && ret == 0; i++) {
            struct edited_file *f = &ed->f[i];
            char bak[PATH_MAX + 8];
            if (!changed(f)) {
                continue;
            }
            snprintf(bak, sizeof(bak), "%.*s.bak", PATH_MAX - 1, f->path);
            if (clink__server_replace_file(bak, f->old, f->oldlen, f->mode, err, sizeof(err)) < 0 ||
                clink__server_replace_file(f->path, f->now.p, f->now.n, f->mode, err, sizeof(err)) < 0) {
                ret = refuse(out, -CLINK_ECONFIG, "%s; nothing was changed", err);
            }
            f->written = ret == 0;
            if (ret == 0 && out->backup[0] == '\0') {
                snprintf(out->backup, sizeof(out->backup), "%.*s", (int)sizeof(out->backup) - 1, bak);
            }
        }
        if (ret < 0) {
            put_back(ed);
            out->backup[0] = '\0';
        } else if ((ret = clink_server_reload(srv, chk)) < 0) {
            /* Checked a moment ago; a file it names changed since. Nothing is left half done: the old files return. */
            char why[sizeof(chk->why)];
            snprintf(why, sizeof(why), "%s", chk->why);
            put_back(ed);
            refuse(out, ret, "applying it failed (%s); the files were put back as they were", why);
        } else {
            out->outcome = restart ? CLINK_SERVER_EDIT_RESTART : CLINK_SERVER_EDIT_APPLIED;
        }
    }
    for (size_t i = 0; i < ed->nf; i++) {
        free(ed->f[i].old);
        free(ed->f[i].now.p);
    }
    free(ed);
    return ret;
}

static const char *outcome_name(enum clink_server_edit_outcome o)
{
    return o == CLINK_SERVER_EDIT_APPLIED     ? "applied"
           : o == CLINK_SERVER_EDIT_RESTART   ? "needs a restart"
           : o == CLINK_SERVER_EDIT_UNCHANGED ? "unchanged"
                                              : "refused";
}

const char *clink_server_edit_outcome_name(enum clink_server_edit_outcome o)
{
    return outcome_name(o);
}

int clink_server_set_configs(struct clink_server *srv, size_t n, const char *const *keys, const char *const *values,
                             const char *who, struct clink_server_edit *out)
{
    if (out == NULL) {
        return -CLINK_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    who = who ? who : "the application";
    if (srv == NULL || keys == NULL || values == NULL || n == 0 || n > CLINK_SERVER_EDIT_MAX_KEYS) {
        return refuse(out, -CLINK_EINVAL, "a server and 1 to %d keys with their values are needed",
                      CLINK_SERVER_EDIT_MAX_KEYS);
    }
    if (clink_thread_is_worker()) {
        return refuse(out, -CLINK_EWOULDBLOCK, "clink_server_set_config reloads the node: call it off a worker");
    }
    if (srv->path == NULL) {
        return refuse(out, -CLINK_EINVAL, "this node was built from options, not a config file: nothing to edit");
    }
    char canon[CLINK_SERVER_EDIT_MAX_KEYS][64];
    char said[1024] = "";
    for (size_t i = 0; i < n; i++) {
        const char *key = keys[i], *value = values[i];
        if (key == NULL || value == NULL) {
            return refuse(out, -CLINK_EINVAL, "a key without a value");
        }
        if (clink__config_key_of(key, canon[i], sizeof(canon[i])) < 0 || strncasecmp(key, "skip", 4) == 0 ||
            strncasecmp(key, "disable", 7) == 0 || strncasecmp(key, "enable", 6) == 0) {
            return refuse(out, -CLINK_EINVAL, "%s: not a [server] key clink reads (see docs/config.md)", key);
        }
        if (strpbrk(value, "\n\r") != NULL) {
            return refuse(out, -CLINK_EINVAL, "%s: a value is one line", key);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(canon[k], canon[i]) == 0) {
                return refuse(out, -CLINK_EINVAL, "%s: given twice", canon[i]);
            }
        }
        size_t l = strlen(said);
        if (l + 300 < sizeof(said)) {
            snprintf(said + l, 300, "%s%.63s = %.200s", i ? ", " : "", canon[i], value);
        }
    }
    snprintf(out->key, sizeof(out->key), "%s", canon[0]);
    pthread_mutex_lock(&edit_mu);
    int ret = set_locked(srv, n, canon, values, out);
    pthread_mutex_unlock(&edit_mu);
    if (ret < 0) {
        clink__server_log(srv, CLINK_LOG_WARN, "config: %s by %s refused: %s", said, who, out->why);
    } else {
        clink__server_log(srv, CLINK_LOG_WARN, "config: %s by %s in %s:%d: %s", said, who, out->file, out->line,
                          outcome_name(out->outcome));
    }
    return ret;
}

int clink_server_set_config(struct clink_server *srv, const char *key, const char *value, const char *who,
                            struct clink_server_edit *out)
{
    return clink_server_set_configs(srv, 1, &key, &value, who, out);
}

size_t clink__server_json_str(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o < cap ? o : cap - 1] = '\0';
    return o;
}

int clink__server_ops_config(void *user, size_t n, const char *const *keys, const char *const *values, const char *who,
                             char *json, size_t cap)
{
    struct clink_server *srv = user;
    struct clink_server_edit *e = malloc(sizeof(*e));
    if (e == NULL) {
        snprintf(json, cap, "{\"outcome\":\"refused\",\"why\":\"out of memory\"}");
        return -CLINK_ENOMEM;
    }
    int ret = clink_server_set_configs(srv, n, keys, values, who, e);
    static const char *const names[] = {"refused", "unchanged", "applied", "restart"};
    char k[160], f[1024], why[1200], text[2400];
    clink__server_json_str(k, sizeof(k), e->key[0] ? e->key : keys[0]);
    clink__server_json_str(f, sizeof(f), e->file);
    clink__server_json_str(why, sizeof(why), e->why);
    clink__server_json_str(text, sizeof(text), e->reload.text);
    snprintf(json, cap,
             "{\"outcome\":\"%s\",\"key\":\"%s\",\"file\":\"%s\",\"line\":%d,\"why\":\"%s\",\"reload\":\"%s\"}",
             names[e->outcome], k, f, e->line, why, text);
    free(e);
    return ret;
}

int clink__server_ops_restart(void *user, const char *who, char *msg, size_t cap)
{
    struct clink_server *srv = user;
    int ret = srv->o.on_restart(srv->o.on_restart_user, who);
    snprintf(msg, cap, "%s", ret == 0 ? "restarting" : "the program refused to restart");
    return ret;
}
