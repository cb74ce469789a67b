/*
 * The accounts file (auth/accounts_file.c: read_file's section scan,
 * libinih's callback on_key, split_section, raw_value; auth/passwords.c: the
 * verifier checks; auth/require.c: parse_require on `require = ...`), read
 * from a file holding the input, as clink_accounts_load and a node's reload
 * read it.
 *
 * Properties: every refusal says why; reload agrees with load; and a file
 * that loads can be written back: adding an account saves the set (save()
 * reads what it wrote back before it replaces the file), and loading and
 * saving that file again writes the same bytes (load and save are inverse).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clink/accounts.h"
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[300], err[512] = "";
    fuzz_path("accounts.cnf", path, sizeof(path));
    fuzz_write(path, data, size, 0600);
    struct clink_accounts *acc = NULL;
    int ret = clink_accounts_load(path, &acc, err, sizeof(err));
    if (ret < 0) {
        FUZZ_CHECK(ret == -CLINK_ECONFIG && err[0] != '\0', "a refusal (%d) without a reason", ret);
        return 0;
    }
    size_t n = clink_accounts_count(acc);
    ret = clink_accounts_reload(acc, err, sizeof(err));
    FUZZ_CHECK(ret == 0 && clink_accounts_count(acc) == n, "reload of the same file: %d %s", ret, err);

    /* One more account (no password: no crypt per input) makes the set save itself. */
    struct clink_account_spec extra = {.user = "zz-fuzz", .host = "%"};
    ret = clink_accounts_add(acc, &extra, err, sizeof(err));
    if (ret == -EEXIST) {
        clink_accounts_free(acc);
        return 0;
    }
    FUZZ_CHECK(ret == 0, "a file that loads cannot be saved with one more account: %d %s", ret, err);
    FUZZ_CHECK(clink_accounts_count(acc) == n + 1, "%zu accounts after adding one to %zu", clink_accounts_count(acc),
               n);
    char *first = NULL, *second = NULL;
    FUZZ_CHECK(fuzz_read(path, &first) > 0, "no file after a save");
    ret = clink_accounts_alter(acc, &extra, err, sizeof(err)); /* changes nothing: read, then write again */
    FUZZ_CHECK(ret == 0, "the file saved cannot be saved again: %d %s", ret, err);
    FUZZ_CHECK(fuzz_read(path, &second) > 0 && strcmp(first, second) == 0,
               "loading and saving changed the file:\n%s---\n%s", first, second ? second : "(none)");
    clink_accounts_free(acc);
    free(first);
    free(second);
    return 0;
}
