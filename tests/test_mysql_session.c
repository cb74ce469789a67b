/*
 * The readers behind the MySQL door's own answers (issue 21), without a
 * connection: string literals as MySQL reads them, SET and its bounds per
 * connection, SELECT lists with aliases, and the variables' value checks.
 * The answers on real sockets are in test_mysql_sql.c.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "transport/mysql_session.h"
#include "transport/mysql_sql.h"
#include "transport/mysql_vars.h"

static struct clink__sql text(const char *s)
{
    return (struct clink__sql){.p = s, .end = s + strlen(s)};
}

Test(mysql_session, string_literals_read_as_mysql_reads_them)
{
    const char *in[] = {"'a\\nb'", "'\\t\\r\\b\\Z'", "'it''s'", "\"say \\\"hi\\\"\"", "'\\\\'", "'\\%\\_'",
                        "'\\q'",   "`a\\b`",         "`a``b`"};
    const char *want[] = {"a\nb", "\t\r\b\x1a", "it's", "say \"hi\"", "\\", "\\%\\_", "q", "a\\b", "a`b"};
    char out[64];

    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        struct clink__sql s = text(in[i]);
        cr_assert_eq(clink__sql_quoted(&s, out, sizeof(out)), 0, "%s", in[i]);
        cr_assert_str_eq(out, want[i], "%s", in[i]);
        cr_assert_eq(s.p, s.end, "%s: read to its end", in[i]);
    }
    const char *refused[] = {"'a\\0b'", "'open", "'ends in a backslash\\", "'\\"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct clink__sql s = text(refused[i]);
        cr_assert_eq(clink__sql_quoted(&s, out, sizeof(out)), -1, "%s", refused[i]);
    }
    struct clink__sql tight = text("'\\%'");
    cr_assert_eq(clink__sql_quoted(&tight, out, 2), -1, "\\% is two bytes: no room in 2 with the NUL");
}

Test(mysql_session, like_keeps_the_escape_of_a_literal)
{
    char pat[32];
    struct clink__sql s = text("'sql\\_mode'");

    cr_assert_eq(clink__sql_quoted(&s, pat, sizeof(pat)), 0);

    cr_assert(clink__sql_like(pat, "sql_mode"));
    cr_assert(!clink__sql_like(pat, "sqlxmode"), "\\_ is a literal underscore");
    cr_assert(clink__sql_like("%", ""));
    cr_assert(clink__sql_like("CHAR%", "character_set_client"), "case-insensitive");
}

Test(mysql_session, set_reads_every_form_drivers_send)
{
    struct clink__set_item it[CLINK_MYSQL_SET_ITEMS];
    struct clink__sql s = text("SET NAMES utf8mb4 COLLATE utf8mb4_general_ci, autocommit := ON, @@session.sql_mode = "
                               "'TRADITIONAL', SESSION time_zone='+00:00', @@wait_timeout=DEFAULT, "
                               "character_set_results = NULL, GLOBAL x = 1;");

    cr_assert(clink__sql_word(&s, "SET"));
    int n = clink__set_parse(&s, it, CLINK_MYSQL_SET_ITEMS);

    cr_assert_eq(n, 10);
    cr_assert_str_eq(it[0].name, "character_set_client");
    cr_assert_str_eq(it[2].value, "utf8mb4");
    cr_assert_str_eq(it[3].name, "collation_connection");
    cr_assert_str_eq(it[3].value, "utf8mb4_general_ci");
    cr_assert_str_eq(it[4].name, "autocommit");
    cr_assert_str_eq(it[4].value, "ON");
    cr_assert_str_eq(it[5].name, "sql_mode");
    cr_assert_str_eq(it[6].value, "+00:00");
    cr_assert(it[7].is_default);
    cr_assert(it[8].is_null);
    cr_assert(it[9].global && !it[8].global);
}

Test(mysql_session, set_transaction_lasts_only_with_session)
{
    struct clink__set_item it[4];
    struct clink__sql next = text("TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY");
    struct clink__sql session = text("SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED");

    cr_assert_eq(clink__set_parse(&next, it, 4), 0, "the next transaction only: nothing kept");
    cr_assert_eq(clink__set_parse(&session, it, 4), 1);
    cr_assert_str_eq(it[0].name, "transaction_isolation");
    cr_assert_str_eq(it[0].value, "READ-UNCOMMITTED");
}

Test(mysql_session, set_refuses_what_it_does_not_read)
{
    const char *bad[] = {"@user = 1",
                         "x",
                         "x = ",
                         "x = -",
                         "NAMES",
                         "x = 1 y",
                         "TRANSACTION ISOLATION LEVEL maybe",
                         "a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1,j=1,k=1,l=1,m=1,n=1,o=1,p=1,q=1"};
    struct clink__set_item it[CLINK_MYSQL_SET_ITEMS];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct clink__sql s = text(bad[i]);
        cr_assert_eq(clink__set_parse(&s, it, CLINK_MYSQL_SET_ITEMS), -1, "%s", bad[i]);
    }
}

Test(mysql_session, values_are_checked_and_kept_as_mysql_shows_them)
{
    char out[CLINK_MYSQL_VAR_VALUE_MAX + 1];

    cr_assert_eq(clink__var_check(clink__var_find("autocommit"), "off", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "0");
    cr_assert_eq(clink__var_check(clink__var_find("tx_isolation"), "2", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "REPEATABLE-READ");
    cr_assert_eq(clink__var_check(clink__var_find("character_set_client"), "UTF8", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "utf8mb3", "MySQL 8.0's name for utf8");
    cr_assert_eq(clink__var_check(clink__var_find("sql_mode"), "ansi_quotes,no_backslash_escapes", out, sizeof(out)),
                 0);
    cr_assert_str_eq(out, "ANSI_QUOTES,NO_BACKSLASH_ESCAPES");
    cr_assert_eq(clink__var_check(clink__var_find("sql_mode"), "x;y", out, sizeof(out)), 1231);
    cr_assert_eq(clink__var_check(clink__var_find("wait_timeout"), "-1", out, sizeof(out)), 1231);
    cr_assert_eq(clink__var_check(clink__var_find("version"), "9", out, sizeof(out)), 1238);
    cr_assert_eq(clink__var_check(clink__var_find("init_connect"), "", out, sizeof(out)), 1229);
    cr_assert_eq(clink__var_check(clink__var_find("max_allowed_packet"), "5", out, sizeof(out)), 1621);
    cr_assert_eq(clink__var_check(NULL, "bell\a", out, sizeof(out)), 1231, "no control characters in text");
    size_t n;
    const struct clink__var *v = clink__vars(&n);
    for (size_t i = 1; i < n; i++) {
        cr_assert_lt(strcmp(v[i - 1].name, v[i].name), 0, "the table is sorted: %s", v[i].name);
    }
}

Test(mysql_session, a_session_keeps_at_most_its_bounds_and_a_refused_set_changes_nothing)
{
    struct clink__mysql_session s = {0};
    struct clink__set_item it[2] = {{.name = "v"}, {.name = "w"}};
    char msg[256];
    const char *v;
    int code = 0;
    unsigned i;

    for (i = 0; i < 40 && code == 0; i++) {
        snprintf(it[0].name, sizeof(it[0].name), "v%u", i);
        snprintf(it[0].value, sizeof(it[0].value), "%u", i);
        code = clink__session_set(&s, it, 1, msg, sizeof(msg));
    }
    cr_assert_eq(code, 1105, "%s", msg);
    cr_assert_eq(i, CLINK_MYSQL_SESSION_VARS + 1);
    cr_assert_eq(s.n, CLINK_MYSQL_SESSION_VARS);
    clink__session_clear(&s);
    memset(it[0].value, 'x', CLINK_MYSQL_VAR_VALUE_MAX);
    it[0].value[CLINK_MYSQL_VAR_VALUE_MAX] = '\0';
    for (i = 0, code = 0; i < 40 && code == 0; i++) {
        snprintf(it[0].name, sizeof(it[0].name), "big%u", i);
        code = clink__session_set(&s, it, 1, msg, sizeof(msg));
    }
    cr_assert_eq(code, 1105);
    cr_assert_leq(s.bytes, CLINK_MYSQL_SESSION_BYTES);
    cr_assert_eq(s.n, 7, "7 values of 512 bytes fit in 4 KiB with their names, not 8");
    clink__session_clear(&s);

    struct clink__set_item pair[2] = {{.name = "autocommit", .value = "0"}, {.name = "version", .value = "1"}};
    code = clink__session_set(&s, pair, 2, msg, sizeof(msg));

    cr_assert_eq(code, 1238);
    cr_assert_eq(clink__session_get(&s, "autocommit", &v), 0, "all or none");
    cr_assert_eq(s.n, 0);
}

Test(mysql_session, select_lists_name_columns_by_text_or_alias)
{
    struct clink__select_item it[CLINK_MYSQL_SELECT_ITEMS];
    int limited;
    struct clink__sql s =
        text(" @@SESSION.auto_increment_increment AS auto_increment_increment, @@system_time_zone stz,"
             " version(), 'x' AS `y`, -1.5, CURRENT_USER, NOW(), null FROM DUAL LIMIT 1;");

    int n = clink__select_parse(&s, it, CLINK_MYSQL_SELECT_ITEMS, &limited);

    cr_assert_eq(n, 8);
    cr_assert_eq(limited, 0);
    cr_assert_str_eq(it[0].var, "auto_increment_increment");
    cr_assert_str_eq(it[0].name, "auto_increment_increment");
    cr_assert_str_eq(it[1].name, "stz");
    cr_assert_eq(it[2].kind, CLINK_SEL_FUNC);
    cr_assert_eq(it[2].func, CLINK_FN_VERSION);
    cr_assert_str_eq(it[2].name, "version()", "named as written");
    cr_assert_str_eq(it[3].name, "y");
    cr_assert_str_eq(it[4].text, "-1.5");
    cr_assert_eq(it[5].func, CLINK_FN_CURRENT_USER);
    cr_assert_eq(it[6].func, CLINK_FN_NOW);
    cr_assert_eq(it[7].kind, CLINK_SEL_NULL);
    struct clink__sql zero = text("1 LIMIT 0");
    cr_assert_eq(clink__select_parse(&zero, it, 4, &limited), 1);
    cr_assert_eq(limited, 1, "LIMIT 0: no row");
    const char *bad[] = {"", "@x", "1 FROM t", "VERSION(", "1,", "1a", "NOW() AS", "a", "1, 2, 3, 4, 5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct clink__sql b = text(bad[i]);
        cr_assert_eq(clink__select_parse(&b, it, 4, &limited), -1, "%s", bad[i]);
    }
}
