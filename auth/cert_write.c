/*
 * A certificate and its key written to their two files: a new file, or an
 * overwritten one only when asked; never through a symbolic link, never a
 * FIFO or a device, never one file under two names, and never half a pair. Apart from the X.509 code because
 * these are file-system rules, not certificate rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>

#include "auth/cert_int.h"
#include "auth/errbuf.h"

/*
 * What is at a target path. An existing file is replaced only when asked,
 * and only a regular file: a symbolic link is never followed or replaced (a
 * link planted at the key's path would otherwise receive the new private
 * key), nor a FIFO, a device or a folder. 0, -EEXIST, -CLINK_EINVAL or -errno.
 */
static CLINK_MUST_USE int check_target(const char *path, int overwrite, struct stat *st, int *exists, char *err,
                                       size_t errlen)
{
    *exists = 0;
    if (lstat(path, st) != 0) {
        if (errno == ENOENT) {
            return 0;
        }
        int e = errno;
        clink__set_err(err, errlen, "%s: %s", path, clink_strerror(-e));
        return -e;
    }
    *exists = 1;
    if (!overwrite) {
        clink__set_err(err, errlen, "%s: %s", path, clink_strerror(-EEXIST));
        return -EEXIST;
    }
    if (!S_ISREG(st->st_mode)) {
        clink__set_err(err, errlen, "%s: not a regular file (%s): it is never written through or replaced", path,
                       S_ISLNK(st->st_mode) ? "a symbolic link" : "a FIFO, device or folder");
        return -CLINK_EINVAL;
    }
    return 0;
}

/* The folder of path, resolved, and its last name: two spellings of one file ("./x", "x") compare equal. */
static void canonical(const char *path, char *out, size_t cap)
{
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    snprintf(dir, sizeof(dir), "%.*s", slash != NULL ? (int)(slash - path) + 1 : 1, slash != NULL ? path : ".");
    if (realpath(dir, real) == NULL) {
        snprintf(real, sizeof(real), "%s", dir);
    }
    snprintf(out, cap, "%s/%s", real, base);
}

/*
 * One file's new contents, written to a temporary file made beside it
 * (O_CREAT | O_EXCL: nothing planted there is opened), synced, then renamed
 * over the target: a reader sees the old file or the new one, never a
 * mixture, and a link at the target is replaced, not followed.
 */
struct out_file {
    const char *path;
    char tmp[PATH_MAX];
    int has_tmp;   /* tmp exists */
    int installed; /* the new file is at path */
};

static CLINK_MUST_USE int write_tmp(struct out_file *f, BIO *pem, mode_t mode, char *err, size_t errlen)
{
    if (snprintf(f->tmp, sizeof(f->tmp), "%s.XXXXXX", f->path) >= (int)sizeof(f->tmp)) {
        clink__set_err(err, errlen, "%s: path too long", f->path);
        return -ENAMETOOLONG;
    }
    int fd = mkostemp(f->tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        clink__set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
        return -e;
    }
    f->has_tmp = 1;
    char *data = NULL;
    long len = BIO_get_mem_data(pem, &data);
    int e = fchmod(fd, mode) != 0 ? errno : 0;
    while (e == 0 && len > 0) {
        ssize_t n = write(fd, data, (size_t)len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            /* write() returning 0 for a regular file has no errno; treat it like a full disk. */
            e = n < 0 ? errno : ENOSPC;
            break;
        }
        data += n;
        len -= n;
    }
    if (e == 0 && fsync(fd) != 0) {
        e = errno;
    }
    /* close() is where NFS and quota errors surface; a silent failure there would leave a short file. */
    if (close(fd) != 0 && e == 0) {
        e = errno;
    }
    if (e != 0) {
        clink__set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
        return -e;
    }
    return 0;
}

/*
 * Put tmp at path unless something is there: renameat2's RENAME_NOREPLACE,
 * or, on file systems without it (9p, some NFS: EINVAL), a hard link, which
 * fails on an existing name just as atomically; where neither works (no hard
 * links), a check then a rename, which only a race can defeat.
 */
static int rename_noreplace(const char *tmp, const char *path)
{
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
        return -1;
    }
    if (link(tmp, path) == 0) {
        unlink(tmp);
        return 0;
    }
    if (errno == EEXIST) {
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(tmp, path);
}

static CLINK_MUST_USE int install(struct out_file *f, int overwrite, char *err, size_t errlen)
{
    /* Without overwrite, a file that appeared since the check is not replaced either. */
    int r = overwrite ? rename(f->tmp, f->path) : rename_noreplace(f->tmp, f->path);
    if (r != 0) {
        int e = errno;
        clink__set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
        return -e;
    }
    f->has_tmp = 0;
    f->installed = 1;
    return 0;
}

/* The folder's entry for path is durable (after a rename into it). */
static void sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof(dir), "%.*s", slash != NULL ? (int)(slash - path) + 1 : 1, slash != NULL ? path : ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        CLINK_IGNORE(fsync(fd) != 0); /* best effort: the files themselves are synced */
        close(fd);
    }
}

CLINK_MUST_USE int clink__cert_write_pair(BIO *cert_pem, BIO *key_pem, const char *cert_path, const char *key_path,
                                          int overwrite, char *err, size_t errlen)
{
    struct out_file key = {.path = key_path};
    struct out_file cert = {.path = cert_path};
    struct stat ks, cs;
    int kexists, cexists, ret;
    char kc[PATH_MAX + 1], cc[PATH_MAX + 1];

    if ((ret = check_target(key_path, overwrite, &ks, &kexists, err, errlen)) < 0 ||
        (ret = check_target(cert_path, overwrite, &cs, &cexists, err, errlen)) < 0) {
        return ret;
    }
    /* Two names for one file (a hard link, "./x" and "x"): the second rename would replace the key. */
    canonical(key_path, kc, sizeof(kc));
    canonical(cert_path, cc, sizeof(cc));
    if (strcmp(kc, cc) == 0 || (kexists && cexists && ks.st_dev == cs.st_dev && ks.st_ino == cs.st_ino)) {
        clink__set_err(err, errlen, "certificate path '%s' and key path '%s' are the same file", cert_path, key_path);
        return -CLINK_EINVAL;
    }
    if ((ret = write_tmp(&key, key_pem, 0600, err, errlen)) < 0 ||
        (ret = write_tmp(&cert, cert_pem, 0644, err, errlen)) < 0 ||
        (ret = install(&key, overwrite, err, errlen)) < 0 || (ret = install(&cert, overwrite, err, errlen)) < 0) {
        goto out;
    }
    sync_dir(key_path);
    sync_dir(cert_path);
out:
    if (key.has_tmp) {
        unlink(key.tmp);
    }
    if (cert.has_tmp) {
        unlink(cert.tmp);
    }
    /* Never leave half a pair: a new key without its certificate goes too. */
    if (ret < 0 && key.installed && !cert.installed) {
        unlink(key.path);
    }
    return ret;
}
