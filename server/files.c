/*
 * Writing the files a running node reads (its config, its key and
 * certificate) whole or not at all: a temporary file beside the target,
 * synced, then renamed over it; and reading one back. Shared by the config
 * editor (config_edit.c) and certificate renewal (renew.c).
 */
#include "server/server_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int clink__server_read_text(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }
    char *t = malloc(max);
    size_t n = t ? fread(t, 1, max - 1, f) : 0;
    int bad = t == NULL || ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        free(t);
        return t == NULL ? -ENOMEM : -EFBIG;
    }
    t[n] = '\0';
    *out = t;
    if (len != NULL) {
        *len = n;
    }
    return 0;
}

int clink__server_stage_file(const char *path, const char *data, size_t len, mode_t mode, char *tmp, size_t cap,
                             char *why, size_t whycap)
{
    if ((size_t)snprintf(tmp, cap, "%s.XXXXXX", path) >= cap) {
        snprintf(why, whycap, "%.300s: path too long", path);
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(why, whycap, "cannot write beside %.300s: %s", path, strerror(errno));
        return -1;
    }
    size_t off = 0;
    ssize_t w = 0;
    int ok = fchmod(fd, mode) == 0;
    while (ok && off < len && (w = write(fd, data + off, len - off)) > 0) {
        off += (size_t)w;
    }
    ok = ok && off == len && fsync(fd) == 0;
    int e = errno;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        snprintf(why, whycap, "cannot write beside %.300s: %s", path, strerror(e ? e : errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The rename is on disk once the folder is synced. */
static void fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash == NULL || slash == path ? 1 : (int)(slash - path),
             slash == NULL ? "." : path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int clink__server_replace_file(const char *path, const char *data, size_t len, mode_t mode, char *why, size_t cap)
{
    char tmp[PATH_MAX + 16];
    if (clink__server_stage_file(path, data, len, mode, tmp, sizeof(tmp), why, cap) < 0) {
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(why, cap, "cannot write %.300s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    fsync_dir_of(path);
    return 0;
}
