/*
 * The config file (server/option_file.c: MySQL's option file syntax, with
 * !include and !includedir; server/config.c: the keys, tls_version, peers,
 * the keys passed over, path resolution) on arbitrary text, given both
 * ways a node can get it: clink_config_parse on the text, and
 * clink_config_load on a file holding the same bytes.
 *
 * Properties: every refusal says why and names a line; whatever is accepted
 * satisfies the invariants the node relies on (TLS version, max_frame and
 * timeout ranges, absolute paths, peers with a name, host and port, names
 * unique, enum values in range, every string NUL-terminated in its field,
 * every peer named by a section of the text as written); a key passed over
 * with a warning is never an ssl_ or require_ key; comment lines are inert
 * (the text without them gives the same verdict and config), however long;
 * the file and the text give the same verdict and the same config, except
 * that a file with a NUL byte is refused.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clink/config.h"
#include "fuzz/fuzz.h"

static int terminated(const char *s, size_t cap)
{
    return strnlen(s, cap) < cap;
}

/* Is there a [leaf NAME] (or [aggregator NAME]) section header for exactly this name in the text? */
static int section_in_text(const char *text, int aggregator, const char *name)
{
    const char *kw = aggregator ? "aggregator " : "leaf ";
    size_t kwlen = strlen(kw), len = strlen(name);
    for (const char *p = strchr(text, '['); p != NULL; p = strchr(p + 1, '[')) {
        if (strncasecmp(p + 1, kw, kwlen) != 0 || strncmp(p + 1 + kwlen, name, len) != 0) {
            continue;
        }
        /* mysqld drops the spaces before ']' */
        const char *q = p + 1 + kwlen + len;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\v' || *q == '\f') {
            q++;
        }
        if (*q == ']') {
            return 1;
        }
    }
    return 0;
}

/* The warning lists "KEY (FILE:LINE)" entries: none of them may be an ssl_ or require_ key, loose- or not. */
static void check_passed_over(const char *warnings)
{
    const char *p = strstr(warnings, "ignored: ");
    if (p == NULL) {
        FUZZ_CHECK(warnings[0] == '\0', "a warning of another shape: %s", warnings);
        return;
    }
    for (p += 9; *p != '\0';) {
        char key[64];
        size_t n = 0;
        for (; p[n] != '\0' && p[n] != ' ' && n < sizeof(key) - 1; n++) {
            key[n] = p[n] == '-' ? '_' : (char)(p[n] >= 'A' && p[n] <= 'Z' ? p[n] + 32 : p[n]);
        }
        key[n] = '\0';
        const char *k = strncmp(key, "loose_", 6) == 0 ? key + 6 : key;
        FUZZ_CHECK(strncmp(k, "ssl_", 4) != 0 && strncmp(k, "require_", 8) != 0, "%s passed over: %s", key, warnings);
        const char *next = strstr(p, "), ");
        if (next == NULL) {
            return;
        }
        p = next + 3;
    }
}

/* The text without its comment lines (first non-blank character ';' or '#'): the same config, or the same refusal. */
static char *without_comments(const char *text)
{
    char *out = malloc(strlen(text) + 1), *o = out;
    FUZZ_CHECK(out != NULL, "out of memory");
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
        const char *b = line;
        while (b < line + n && (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\v' || *b == '\f')) {
            b++;
        }
        if (b == line + n || (*b != ';' && *b != '#')) {
            memcpy(o, line, n);
            o += n;
        }
        line += n;
    }
    *o = '\0';
    return out;
}

static void check_accepted(const struct clink_config *c, const char *text)
{
    FUZZ_CHECK(c->tls_version == CLINK_TLS_1_3 || c->tls_version == CLINK_TLS_1_2, "tls_version %d",
               (int)c->tls_version);
    FUZZ_CHECK(c->max_frame == 0 || (c->max_frame >= 4096 && c->max_frame <= (64u << 20)), "max_frame %u",
               c->max_frame);
    FUZZ_CHECK(c->handshake_timeout_ms <= 3600000 && c->workers <= 1024, "timeout or workers out of range");
    FUZZ_CHECK(c->ktls >= 0 && c->ktls <= 3, "ktls %d", c->ktls);
    FUZZ_CHECK(c->ssl_client_cert == CLINK_CLIENT_CERT_REQUIRED || c->ssl_client_cert == CLINK_CLIENT_CERT_OPTIONAL ||
                   c->ssl_client_cert == CLINK_CLIENT_CERT_NONE,
               "ssl_client_cert %d", (int)c->ssl_client_cert);
    FUZZ_CHECK(c->basedir[0] == '/' && terminated(c->basedir, sizeof(c->basedir)), "basedir not absolute");
    const char *paths[] = {c->ssl_cert, c->ssl_key, c->ssl_ca, c->ssl_crl, c->accounts_file, c->ssl_session_ticket_key};
    for (size_t i = 0; i < 6; i++) {
        FUZZ_CHECK(terminated(paths[i], CLINK_CONFIG_PATH_MAX) && (paths[i][0] == '\0' || paths[i][0] == '/'),
                   "path %zu not absolute", i);
    }
    FUZZ_CHECK(terminated(c->ssl_cipher, sizeof(c->ssl_cipher)) &&
                   terminated(c->tls_ciphersuites, sizeof(c->tls_ciphersuites)) &&
                   terminated(c->bind_address, sizeof(c->bind_address)),
               "string not terminated");
    FUZZ_CHECK(c->npeers <= CLINK_CONFIG_MAX_PEERS, "%zu peers", c->npeers);
    for (size_t i = 0; i < c->npeers; i++) {
        const struct clink_config_peer *p = &c->peers[i];
        FUZZ_CHECK(terminated(p->name, sizeof(p->name)) && p->name[0] != '\0' && strchr(p->name, ' ') == NULL,
                   "peer %zu: bad name", i);
        FUZZ_CHECK(terminated(p->host, sizeof(p->host)) && p->host[0] != '\0' && p->port != 0,
                   "peer %s: no host or port", p->name);
        FUZZ_CHECK(terminated(p->ssl_server_name, sizeof(p->ssl_server_name)) && terminated(p->user, sizeof(p->user)),
                   "peer %s: string not terminated", p->name);
        FUZZ_CHECK(p->ssl_mode >= 0 && p->ssl_mode <= 5 && p->ktls >= 0 && p->ktls <= 3 &&
                       (p->aggregator == 0 || p->aggregator == 1),
                   "peer %s: enum out of range", p->name);
        for (size_t j = 0; j < i; j++) {
            FUZZ_CHECK(strcmp(c->peers[j].name, p->name) != 0, "peer %s listed twice", p->name);
        }
        FUZZ_CHECK(section_in_text(text, p->aggregator, p->name), "peer '%s' is named by no section of the text",
                   p->name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct clink_config parsed, loaded, bare;
    static char dir[PATH_MAX], file[PATH_MAX];
    if (dir[0] == '\0') {
        /* Files the seeds name, so that paths resolve and the accepting paths are reached. */
        const char *names[] = {"node.pem", "node-key.pem", "ca.pem", "crl.pem", "accounts.cnf", "tickets.key"};
        for (size_t i = 0; i < 6; i++) {
            fuzz_path(names[i], file, sizeof(file));
            fuzz_write(file, "", 0, 0600);
        }
        FUZZ_CHECK(realpath(fuzz_dir(), dir) != NULL, "realpath of the scratch directory");
        fuzz_path("memsql.cnf", file, sizeof(file));
    }
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    char err[512] = "", lerr[512] = "";
    /*
     * The file first: a text that names it (!include memsql.cnf, or
     * !includedir of the scratch folder) then reads the same bytes both ways.
     */
    fuzz_write(file, data, size, 0600);
    int ret = clink_config_parse(text, dir, &parsed, err, sizeof(err));
    FUZZ_CHECK(ret == 0 || ret == -CLINK_ECONFIG, "parse returned %d", ret);
    if (ret == 0) {
        check_accepted(&parsed, text);
        check_passed_over(parsed.warnings);
    } else {
        FUZZ_CHECK(err[0] != '\0', "a refusal without a reason");
    }
    char *stripped = without_comments(text), berr[512] = "";
    int bret = clink_config_parse(stripped, dir, &bare, berr, sizeof(berr));
    FUZZ_CHECK(bret == ret, "comments changed the verdict: %d (%s), without them %d (%s)", ret, err, bret, berr);
    /* the warnings name lines, which move */
    memset(bare.warnings, 0, sizeof(bare.warnings));
    struct clink_config *cmp = &loaded; /* scratch: parsed without its warnings */
    *cmp = parsed;
    memset(cmp->warnings, 0, sizeof(cmp->warnings));
    FUZZ_CHECK(ret != 0 || memcmp(&bare, cmp, sizeof(bare)) == 0, "comments changed the config");
    free(stripped);

    int lret = clink_config_load(file, &loaded, lerr, sizeof(lerr));
    if (memchr(data, 0, size) != NULL) {
        FUZZ_CHECK(lret == -CLINK_ECONFIG && lerr[0] != '\0', "a file with a NUL byte: load returned %d", lret);
    } else {
        FUZZ_CHECK(lret == ret, "load says %d (%s), parse of the same text %d (%s)", lret, lerr, ret, err);
        if (ret == 0) {
            /* the path and the file named in warnings differ ("config" for text); nothing else may */
            memset(loaded.path, 0, sizeof(loaded.path));
            memset(parsed.path, 0, sizeof(parsed.path));
            memset(loaded.warnings, 0, sizeof(loaded.warnings));
            memset(parsed.warnings, 0, sizeof(parsed.warnings));
            FUZZ_CHECK(memcmp(&loaded, &parsed, sizeof(parsed)) == 0, "load and parse of the same text differ");
        }
    }
    free(text);
    return 0;
}
