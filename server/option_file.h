/*
 * A MySQL option file (my.cnf, memsql.cnf) read the way mysqld reads it
 * (mysys/my_default.cc, the format my_print_defaults prints): [group]
 * lines, bare keys, key = value with quotes and escapes, # comments after a
 * value, !include and !includedir. The reader knows no keys: it hands each
 * one, with its group, file and own line, to a callback (server/config.c).
 */
#ifndef CLINK_SERVER_OPTION_FILE_H
#define CLINK_SERVER_OPTION_FILE_H

#include <stddef.h>

/* !include nesting deeper than this is refused (mysqld skips such a directive with a warning). */
#define CLINK__OPTFILE_MAX_DEPTH 10
/* A file larger than this is a mistake, not something to read into memory. */
#define CLINK__OPTFILE_MAX_SIZE (1 << 20)

struct clink__optfile_key {
    const char *file;    /* the file the key is in, as named ("config" for text) */
    int line;            /* the key's own line in that file, from 1 */
    const char *section; /* the group, as written between [ and ], trailing spaces removed */
    const char *key;     /* as written, spaces around it removed; never empty */
    const char *value;   /* quotes removed and escapes applied; NULL for a bare key (`skip-name-resolve`) */
};

/*
 * Called for every key of every group, in file order (an included file's
 * keys where its !include stands). Returns 0 to go on, or a negative
 * CLINK_E* with why in err ("key: reason"); the reader then stops and puts
 * "FILE:LINE: " in front.
 */
typedef int (*clink__optfile_cb)(void *user, const struct clink__optfile_key *k, char *err, size_t errlen);

/*
 * Read text (NUL-terminated) named name ("" = "config"), with a relative
 * !include or !includedir resolved against dir (absolute). Returns 0, or
 * -CLINK_ECONFIG with "FILE:LINE: reason" in err, or -CLINK_ENOMEM.
 */
int clink__optfile_read_text(const char *text, const char *name, const char *dir, clink__optfile_cb cb, void *user,
                             char *err, size_t errlen);

/* The same for a file, named path in messages; its includes are resolved against its own folder. */
int clink__optfile_read_file(const char *path, clink__optfile_cb cb, void *user, char *err, size_t errlen);

/* A file read from memory instead of from disk: path is its real path (realpath). */
struct clink__optfile_swap {
    const char *path;
    const char *text;
};

/*
 * The same, reading each swap's text in place of the file at its path,
 * wherever it is met (the file itself or an !include): how an edit is
 * checked whole before it is written.
 */
int clink__optfile_read_swapped(const char *path, const struct clink__optfile_swap *swaps, size_t nswaps,
                                clink__optfile_cb cb, void *user, char *err, size_t errlen);

#endif
