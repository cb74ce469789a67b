/*
 * The system variables the MySQL front door answers for (docs/mysql.md,
 * "Session variables"): their names, MySQL 8.0's values with utf8mb4
 * defaults (or the node's own, where it has one), which a session may SET,
 * and how a value SET is checked and written. Pure: no connection, so that
 * fuzz/fuzz_mysql.c runs every check on hostile text.
 */
#ifndef CLINK_TRANSPORT_MYSQL_VARS_H
#define CLINK_TRANSPORT_MYSQL_VARS_H

#include <stddef.h>

/* What a SET may do with a variable, and how its value reads. */
enum clink__var_kind {
    CLINK_VAR_READONLY = 1, /* 1238: a read only variable */
    CLINK_VAR_GLOBAL_ONLY,  /* 1229: only SET GLOBAL (which clink refuses) */
    CLINK_VAR_SESSION_RO,   /* 1621: read-only in a session (max_allowed_packet) */
    CLINK_VAR_BOOL,         /* 0/1, ON/OFF, TRUE/FALSE: kept as "0" or "1", shown ON/OFF by SHOW VARIABLES */
    CLINK_VAR_NUMBER,       /* decimal digits */
    CLINK_VAR_NAME,         /* a character set or collation name: [A-Za-z0-9_], kept lowercased */
    CLINK_VAR_ISOLATION,    /* READ-UNCOMMITTED, READ-COMMITTED, REPEATABLE-READ, SERIALIZABLE (or 0-3) */
    CLINK_VAR_SQL_MODE,     /* comma-separated mode names, kept uppercased */
    CLINK_VAR_TEXT,         /* printable text (time_zone; any variable clink does not know) */
};

/* Values the node computes (NULL value in the table). */
enum clink__var_dyn {
    CLINK_DYN_NONE = 0,
    CLINK_DYN_VERSION,      /* the version the greeting announced */
    CLINK_DYN_WAIT_TIMEOUT, /* the node's wait_timeout_s */
    CLINK_DYN_SYSTEM_TZ,    /* the node's time zone abbreviation (localtime's tm_zone) */
};

struct clink__var {
    const char *name; /* lowercase, without @@ */
    const char *value;
    enum clink__var_kind kind;
    enum clink__var_dyn dyn;
    int nullable; /* SET to NULL allowed (character_set_results) */
};

/* A SET value is at most this long, once read (docs/mysql.md, "Bounds"). */
#define CLINK_MYSQL_VAR_VALUE_MAX 512
/* A variable name (MySQL's are at most 64). */
#define CLINK_MYSQL_VAR_NAME_MAX 64

/* The variables, sorted by name; *n their count. */
const struct clink__var *clink__vars(size_t *n);

/* The variable called name (case-insensitive; tx_isolation and tx_read_only are their transaction_ names); NULL. */
const struct clink__var *clink__var_find(const char *name);

/*
 * A value for SET: in (NUL-terminated, as read: a quoted string's text, a
 * number or a word) checked for v (NULL: a variable clink does not know,
 * kept as text) and written as it will read back into out (cap at least
 * CLINK_MYSQL_VAR_VALUE_MAX + 1). Returns 0, or the MySQL error: 1238,
 * 1229, 1621 (the kinds above) or 1231 (a value the variable cannot take).
 */
int clink__var_check(const struct clink__var *v, const char *in, char *out, size_t cap);

#endif
