/*
 * MySQL's REQUIRE grammar and host patterns (auth/require.c: parse_require,
 * quoted; auth/accounts.c: valid_name, host_score), from hostile text given to
 * clink_accounts_add: the first line (if any) is the host pattern, the rest
 * the REQUIRE clause.
 *
 * The account has no password: TLS logins present a verified certificate,
 * and a literal host makes it plaintext_no_password (a pattern host cannot).
 *
 * Properties: every refusal says why; an account that requires anything
 * refuses a plaintext login it would let in over TLS; and what the API
 * accepts, the file holds (docs/config.md): the same add on a file-backed
 * set succeeds, the file loads back to an account that decides the same
 * logins, and loading and saving it again writes the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "clink/accounts.h"
#include "fuzz/fuzz.h"

struct verdicts {
    int plain, tls, tls_cipher;
};

/* The TLS logins present a verified certificate (the accounts have no password: it is their proof). */
static X509 *client_cert;

static struct verdicts logins(struct clink_accounts *acc)
{
    char why[256];
    struct verdicts v;
    if (client_cert == NULL) {
        client_cert = X509_new();
        FUZZ_CHECK(client_cert != NULL, "out of memory");
    }
    struct clink_login l = {.user = "u", .host = "10.1.2.3"};
    v.plain = clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why));
    l.tls = 1;
    l.peer_cert = client_cert;
    l.peer_verified = 1;
    v.tls = clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why));
    l.cipher = "TLS_AES_128_GCM_SHA256";
    v.tls_cipher = clink_accounts_check(acc, &l, NULL, 0, why, sizeof(why));
    return v;
}

/* The API accepted spec in memory: the same account through a file, and back. */
static void check_file(const struct clink_account_spec *s, struct verdicts mem)
{
    char path[300], err[512] = "";
    fuzz_path("accounts.cnf", path, sizeof(path));
    unlink(path);
    struct clink_accounts *acc, *back;
    FUZZ_CHECK(clink_accounts_new(path, &acc) == 0, "accounts_new");
    int ret = clink_accounts_add(acc, s, err, sizeof(err));
    FUZZ_CHECK(ret == 0, "accepted in memory, but the file cannot hold it: %d %s", ret, err);
    clink_accounts_free(acc);

    char *first = NULL, *second = NULL;
    FUZZ_CHECK(fuzz_read(path, &first) > 0, "no file after an add");
    ret = clink_accounts_load(path, &back, err, sizeof(err));
    FUZZ_CHECK(ret == 0 && clink_accounts_count(back) == 1, "the file written does not load: %d %s", ret, err);
    struct verdicts file = logins(back);
    FUZZ_CHECK(file.plain == mem.plain && file.tls == mem.tls && file.tls_cipher == mem.tls_cipher,
               "the account read back decides logins differently (%d %d %d, in memory %d %d %d)", file.plain, file.tls,
               file.tls_cipher, mem.plain, mem.tls, mem.tls_cipher);
    /* An alter that changes nothing reads the file and writes it again: the same bytes. */
    struct clink_account_spec same = {.user = s->user, .host = s->host};
    ret = clink_accounts_alter(back, &same, err, sizeof(err));
    FUZZ_CHECK(ret == 0, "the account read back cannot be saved again: %d %s", ret, err);
    FUZZ_CHECK(fuzz_read(path, &second) > 0 && strcmp(first, second) == 0,
               "loading and saving changed the file:\n%s---\n%s", first, second ? second : "(none)");
    clink_accounts_free(back);
    free(first);
    free(second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[1024];
    if (size >= sizeof(text)) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = strchr(text, '\n');
    const char *host = NULL, *require = text;
    if (nl != NULL) {
        *nl = '\0';
        host = text;
        require = nl + 1;
    }
    struct clink_accounts *acc;
    FUZZ_CHECK(clink_accounts_new(NULL, &acc) == 0, "accounts_new");
    char err[256] = "";
    /* A literal host may be plaintext_no_password: then the plaintext login is decided by REQUIRE alone. */
    int literal = host != NULL && strpbrk(host, "%_") == NULL;
    struct clink_account_spec s = {
        .user = "u", .host = host, .require = require, .plaintext_no_password = literal ? "ON" : NULL};
    int ret = clink_accounts_add(acc, &s, err, sizeof(err));
    if (ret == 0) {
        struct verdicts v = logins(acc);
        FUZZ_CHECK(v.plain != 0 || v.tls == 0, "plaintext let in where TLS is not");
        check_file(&s, v);
    } else {
        FUZZ_CHECK(ret == -CLINK_EINVAL && err[0] != '\0', "a refusal (%d) without a reason", ret);
    }
    clink_accounts_free(acc);
    return 0;
}
