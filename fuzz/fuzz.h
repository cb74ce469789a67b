/*
 * Shared by the fuzz targets, built both under libFuzzer and with replay.c
 * (the regression replay ctest runs): a check that says which property
 * broke, and a scratch directory for targets whose parser reads a file.
 */
#ifndef CLINK_FUZZ_FUZZ_H
#define CLINK_FUZZ_FUZZ_H

#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the parser, not an input check: a failure is a bug (abort, so libFuzzer keeps the input). */
#define FUZZ_CHECK(cond, ...)                                                                                          \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* An exact-size heap copy: ASan then reports a parser that reads even one byte past what it was given. */
static inline uint8_t *fuzz_dup(const void *p, size_t n)
{
    uint8_t *d = calloc(1, n ? n : 1); /* zeroed: gcc -O3 warns of reading an empty input's byte otherwise */
    if (d == NULL) {
        abort();
    }
    if (n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

static char fuzz_dir_path[256];

static inline void fuzz_dir_remove(void)
{
    DIR *d = opendir(fuzz_dir_path);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(p, sizeof(p), "%s/%s", fuzz_dir_path, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    rmdir(fuzz_dir_path);
}

/*
 * A private scratch directory, made on first use and removed at exit:
 * $CLINK_FUZZ_TMP, else /dev/shm (the accounts targets fsync every save),
 * else $TMPDIR or /tmp.
 */
static inline const char *fuzz_dir(void)
{
    if (fuzz_dir_path[0] != '\0') {
        return fuzz_dir_path;
    }
    const char *bases[] = {getenv("CLINK_FUZZ_TMP"), "/dev/shm", getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        if (bases[i] == NULL || bases[i][0] == '\0') {
            continue;
        }
        snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s/clink-fuzz-XXXXXX", bases[i]);
        if (mkdtemp(fuzz_dir_path) != NULL) {
            atexit(fuzz_dir_remove);
            return fuzz_dir_path;
        }
    }
    fprintf(stderr, "fuzz: cannot make a scratch directory\n");
    abort();
}

/* dst = the scratch directory + "/" + name. */
static inline void fuzz_path(const char *name, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s/%s", fuzz_dir(), name);
}

/* Replace path with exactly these bytes, created with mode. Aborts on failure (the harness, not the parser). */
static inline void fuzz_write(const char *path, const void *p, size_t n, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) < 0 || (n > 0 && write(fd, p, n) != (ssize_t)n) || close(fd) < 0) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
}

/* The whole file, NUL-terminated, in *out (free it); its length, or -1 when it cannot be read. */
static inline long fuzz_read(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    long n = -1;
    *out = NULL;
    if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (*out = malloc((size_t)n + 1)) != NULL && fread(*out, 1, (size_t)n, f) == (size_t)n) {
        (*out)[n] = '\0';
    } else {
        free(*out);
        *out = NULL;
        n = -1;
    }
    if (f != NULL) {
        fclose(f);
    }
    return n;
}

#endif
