/*
 * A certificate and its key written to their two files: a new file, or an
 * overwritten one only when asked; never a FIFO or a device, never one file
 * under two names, and never half a pair. Apart from the X.509 code because
 * these are file-system rules, not certificate rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>

#include "auth/cert_int.h"
#include "auth/errbuf.h"

struct out_file {
    const char *path;
    int fd;
    int written; /* opened for writing by this call: its old contents, if any, are gone */
};

static CLINK_MUST_USE int open_out(struct out_file *f, mode_t mode, int overwrite, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO at the path fails (ENXIO) or is refused below instead of blocking; files ignore it. */
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | (overwrite ? O_TRUNC : O_EXCL);
    struct stat st;
    int e;

    f->fd = open(f->path, flags, mode);
    if (f->fd < 0 || fstat(f->fd, &st) != 0) {
        e = errno;
        clink__set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
        return -e;
    }
    /* Overwriting /dev/null or the like would chmod it to 0600 and, on failure, unlink it. */
    if (!S_ISREG(st.st_mode)) {
        clink__set_err(err, errlen, "%s: not a regular file", f->path);
        return -CLINK_EINVAL;
    }
    f->written = 1;
    return 0;
}

static CLINK_MUST_USE int write_out(struct out_file *f, BIO *pem, char *err, size_t errlen)
{
    char *data = NULL;
    long len = BIO_get_mem_data(pem, &data);
    int fd = f->fd;

    while (len > 0) {
        ssize_t n = write(fd, data, (size_t)len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            /* write() returning 0 for a regular file has no errno; treat it like a full disk. */
            int e = n < 0 ? errno : ENOSPC;

            clink__set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
            return -e;
        }
        data += n;
        len -= n;
    }
    f->fd = -1;
    /* close() is where NFS and quota errors surface; a silent failure there would leave a short file. */
    if (close(fd) != 0) {
        int e = errno;

        clink__set_err(err, errlen, "%s: %s", f->path, clink_strerror(-e));
        return -e;
    }
    return 0;
}

/*
 * Two names for one file (a hard link, "./x" and "x") would interleave key
 * and certificate in it; with overwrite it has been truncated already.
 */
static CLINK_MUST_USE int check_distinct(const struct out_file *key, const struct out_file *cert, char *err,
                                         size_t errlen)
{
    struct stat a;
    struct stat b;

    if (fstat(key->fd, &a) != 0 || fstat(cert->fd, &b) != 0) {
        int e = errno;

        clink__set_err(err, errlen, "%s: %s", key->path, clink_strerror(-e));
        return -e;
    }
    if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        clink__set_err(err, errlen, "certificate path '%s' and key path '%s' are the same file", cert->path, key->path);
        return -CLINK_EINVAL;
    }
    return 0;
}

CLINK_MUST_USE int clink__cert_write_pair(BIO *cert_pem, BIO *key_pem, const char *cert_path, const char *key_path,
                                          int overwrite, char *err, size_t errlen)
{
    struct out_file key = {.path = key_path, .fd = -1};
    struct out_file cert = {.path = cert_path, .fd = -1};
    int ret;

    if ((ret = open_out(&key, 0600, overwrite, err, errlen)) < 0) {
        goto out;
    }
    /* O_CREAT's mode only applies to a new file; an overwritten key file may have been readable by others. */
    if (overwrite && fchmod(key.fd, 0600) != 0) {
        ret = -errno;
        clink__set_err(err, errlen, "%s: chmod: %s", key.path, clink_strerror(ret));
        goto out;
    }
    if ((ret = open_out(&cert, 0644, overwrite, err, errlen)) < 0) {
        goto out;
    }
    if ((ret = check_distinct(&key, &cert, err, errlen)) < 0) {
        goto out;
    }
    if ((ret = write_out(&key, key_pem, err, errlen)) < 0) {
        goto out;
    }
    ret = write_out(&cert, cert_pem, err, errlen);
out:
    if (key.fd >= 0) {
        close(key.fd);
    }
    if (cert.fd >= 0) {
        close(cert.fd);
    }
    /* Never leave half a pair: a failure removes every file this call created or truncated. */
    if (ret < 0 && cert.written) {
        unlink(cert.path);
    }
    if (ret < 0 && key.written) {
        unlink(key.path);
    }
    return ret;
}
