/* The system variables of the MySQL front door: see mysql_vars.h. */
#include "transport/mysql_vars.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/*
 * MySQL 8.0's defaults with utf8mb4 (SHOW VARIABLES on a fresh 8.0 server),
 * except where the node has its own value: the version it announces,
 * wait_timeout, max_allowed_packet (the door's packet limit),
 * performance_schema (clink has none), license (clink states none).
 */
static const struct clink__var vars[] = {
    {"auto_increment_increment", "1", CLINK_VAR_NUMBER, 0, 0},
    {"auto_increment_offset", "1", CLINK_VAR_NUMBER, 0, 0},
    {"autocommit", "1", CLINK_VAR_BOOL, 0, 0},
    {"character_set_client", "utf8mb4", CLINK_VAR_NAME, 0, 0},
    {"character_set_connection", "utf8mb4", CLINK_VAR_NAME, 0, 0},
    {"character_set_database", "utf8mb4", CLINK_VAR_NAME, 0, 0},
    {"character_set_results", "utf8mb4", CLINK_VAR_NAME, 0, 1},
    {"character_set_server", "utf8mb4", CLINK_VAR_NAME, 0, 0},
    {"character_set_system", "utf8mb3", CLINK_VAR_READONLY, 0, 0},
    {"collation_connection", "utf8mb4_0900_ai_ci", CLINK_VAR_NAME, 0, 0},
    {"collation_database", "utf8mb4_0900_ai_ci", CLINK_VAR_NAME, 0, 0},
    {"collation_server", "utf8mb4_0900_ai_ci", CLINK_VAR_NAME, 0, 0},
    {"foreign_key_checks", "1", CLINK_VAR_BOOL, 0, 0},
    {"init_connect", "", CLINK_VAR_GLOBAL_ONLY, 0, 0},
    {"interactive_timeout", NULL, CLINK_VAR_NUMBER, CLINK_DYN_WAIT_TIMEOUT, 0},
    {"license", "none", CLINK_VAR_READONLY, 0, 0},
    {"lower_case_table_names", "0", CLINK_VAR_READONLY, 0, 0},
    {"max_allowed_packet", "1048576", CLINK_VAR_SESSION_RO, 0, 0},
    {"net_buffer_length", "16384", CLINK_VAR_SESSION_RO, 0, 0},
    {"net_read_timeout", "30", CLINK_VAR_NUMBER, 0, 0},
    {"net_write_timeout", "60", CLINK_VAR_NUMBER, 0, 0},
    {"performance_schema", "0", CLINK_VAR_READONLY, 0, 0},
    {"sql_auto_is_null", "0", CLINK_VAR_BOOL, 0, 0},
    {"sql_mode",
     "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
     "NO_ENGINE_SUBSTITUTION",
     CLINK_VAR_SQL_MODE, 0, 0},
    {"sql_select_limit", "18446744073709551615", CLINK_VAR_NUMBER, 0, 0},
    {"system_time_zone", NULL, CLINK_VAR_READONLY, CLINK_DYN_SYSTEM_TZ, 0},
    {"time_zone", "SYSTEM", CLINK_VAR_TEXT, 0, 0},
    {"transaction_isolation", "REPEATABLE-READ", CLINK_VAR_ISOLATION, 0, 0},
    {"transaction_read_only", "0", CLINK_VAR_BOOL, 0, 0},
    {"unique_checks", "1", CLINK_VAR_BOOL, 0, 0},
    {"version", NULL, CLINK_VAR_READONLY, CLINK_DYN_VERSION, 0},
    {"version_comment", "clink", CLINK_VAR_READONLY, 0, 0},
    {"wait_timeout", NULL, CLINK_VAR_NUMBER, CLINK_DYN_WAIT_TIMEOUT, 0},
};

const struct clink__var *clink__vars(size_t *n)
{
    *n = sizeof(vars) / sizeof(vars[0]);
    return vars;
}

const struct clink__var *clink__var_find(const char *name)
{
    /* MySQL 5.7's names, still what older drivers ask for. */
    if (strcasecmp(name, "tx_isolation") == 0) {
        name = "transaction_isolation";
    } else if (strcasecmp(name, "tx_read_only") == 0) {
        name = "transaction_read_only";
    }
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        if (strcasecmp(vars[i].name, name) == 0) {
            return &vars[i];
        }
    }
    return NULL;
}

static int only(const char *in, const char *chars)
{
    for (const char *p = in; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && strchr(chars, *p) == NULL) {
            return 0;
        }
    }
    return 1;
}

int clink__var_check(const struct clink__var *v, const char *in, char *out, size_t cap)
{
    static const char *const levels[] = {"READ-UNCOMMITTED", "READ-COMMITTED", "REPEATABLE-READ", "SERIALIZABLE"};
    static const char *const on[] = {"1", "ON", "TRUE"}, *const off[] = {"0", "OFF", "FALSE"};
    size_t len = strlen(in);
    if (len > CLINK_MYSQL_VAR_VALUE_MAX || cap <= len) {
        return 1231;
    }
    switch (v ? v->kind : CLINK_VAR_TEXT) {
    case CLINK_VAR_READONLY:
        return 1238;
    case CLINK_VAR_GLOBAL_ONLY:
        return 1229;
    case CLINK_VAR_SESSION_RO:
        return 1621;
    case CLINK_VAR_BOOL:
        for (size_t i = 0; i < 3; i++) {
            if (strcasecmp(in, on[i]) == 0 || strcasecmp(in, off[i]) == 0) {
                snprintf(out, cap, "%s", strcasecmp(in, on[i]) == 0 ? "1" : "0");
                return 0;
            }
        }
        return 1231;
    case CLINK_VAR_NUMBER:
        if (len == 0 || len > 20 || strspn(in, "0123456789") != len) {
            return 1231;
        }
        break;
    case CLINK_VAR_NAME:
        if (len == 0 || len > CLINK_MYSQL_VAR_NAME_MAX || !only(in, "_")) {
            return 1231;
        }
        for (size_t i = 0; i <= len; i++) {
            out[i] = (char)tolower((unsigned char)in[i]);
        }
        /* MySQL 8.0 says utf8mb3 for utf8 (and for its collations, utf8mb3_...). */
        if (strcmp(out, "utf8") == 0 || strncmp(out, "utf8_", 5) == 0) {
            char rest[CLINK_MYSQL_VAR_NAME_MAX + 1];
            snprintf(rest, sizeof(rest), "%s", out + 4);
            snprintf(out, cap, "utf8mb3%s", rest);
        }
        return strlen(out) <= CLINK_MYSQL_VAR_NAME_MAX ? 0 : 1231; /* as kept, it reads back the same */
    case CLINK_VAR_ISOLATION:
        for (size_t i = 0; i < 4; i++) {
            char digit[2] = {(char)('0' + i), '\0'};
            if (strcasecmp(in, levels[i]) == 0 || strcmp(in, digit) == 0) {
                snprintf(out, cap, "%s", levels[i]);
                return 0;
            }
        }
        return 1231;
    case CLINK_VAR_SQL_MODE:
        if (!only(in, "_,")) {
            return 1231;
        }
        for (size_t i = 0; i <= len; i++) {
            out[i] = (char)toupper((unsigned char)in[i]);
        }
        return 0;
    case CLINK_VAR_TEXT:
        for (const char *p = in; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                return 1231; /* a control character would shape what SHOW VARIABLES prints */
            }
        }
        break;
    }
    memcpy(out, in, len + 1);
    return 0;
}
