/*
 * Regression replay: runs a fuzz target's LLVMFuzzerTestOneInput once on
 * every file named, or on every file in every directory named (sorted; names
 * starting with '.' are skipped, so an empty directory can hold a .gitkeep),
 * without libFuzzer, so any compiler builds it. Each input is an exact-size
 * heap copy, as libFuzzer gives it: ASan sees a read one byte past its end.
 * ctest runs each target this way over fuzz/corpus/<name> and
 * fuzz/regressions/<name>, under the build's sanitizers.
 *
 * Usage: replay_<name> DIR|FILE...   Exit 0, or 1 when a path cannot be read
 * or nothing was replayed; a failed property aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (nb == NULL) {
                free(buf);
            }
            buf = nb;
        }
    }
    int bad = buf == NULL || ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        free(buf);
        return -1;
    }
    uint8_t *exact = fuzz_dup(buf, len);
    free(buf);
    /* Named before it runs: a sanitizer report or a failed property then follows the name of its input. */
    printf("replay: %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int visible(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

int main(int argc, char **argv)
{
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (!S_ISDIR(sb.st_mode)) {
            if (run_file(argv[i]) < 0) {
                return 1;
            }
            n++;
            continue;
        }
        struct dirent **list;
        int m = scandir(argv[i], &list, visible, alphasort);
        if (m < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int failed = 0;
        for (int k = 0; k < m; k++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], list[k]->d_name);
            if (!failed && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
                failed = run_file(path) < 0;
                n++;
            }
            free(list[k]);
        }
        free(list);
        if (failed) {
            return 1;
        }
    }
    printf("replay: %zu inputs, every property held\n", n);
    if (n == 0) {
        fprintf(stderr, "replay: no inputs (usage: %s DIR|FILE...)\n", argc > 0 ? argv[0] : "replay");
        return 1;
    }
    return 0;
}
