/*
 * An outside program that uses an installed clink (scripts/test-install.sh):
 * the headers are found, and it reaches every layer, so that a static link
 * needs every dependency the package declares (liburing and ck through a
 * node, inih through the config reader, libcrypt and OpenSSL through an
 * account's password, cJSON through the ops endpoint).
 */
#include <stdio.h>
#include <stdlib.h>

#include <clink/clink.h>

static int fail(const char *what, int ret)
{
    fprintf(stderr, "%s: %s\n", what, clink_strerror(ret));
    return 1;
}

int main(void)
{
    const char *msg = clink_strerror(-CLINK_EINVAL);
    if (msg == NULL) {
        fprintf(stderr, "clink_strerror returned NULL\n");
        return 1;
    }
    printf("clink_strerror(-%d): %s\n", CLINK_EINVAL, msg); /* what the install test checks first */

    /* The config reader (server layer, inih). The struct is large: not on the stack. */
    struct clink_config *cfg = calloc(1, sizeof(*cfg));
    char err[256] = "";
    int ret;
    if (cfg == NULL) {
        return fail("config", -CLINK_ENOMEM);
    }
    ret = clink_config_parse("[leaf leaf1]\nhost = 127.0.0.1\nport = 3307\n", "/", cfg, err, sizeof(err));
    free(cfg);
    if (ret < 0) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }

    /* Accounts in memory: a password is hashed (OpenSSL, libcrypt). */
    struct clink_accounts *acc = NULL;
    struct clink_account_spec spec = {.user = "app", .host = "127.0.0.1", .password = "secret"};
    if ((ret = clink_accounts_new(NULL, &acc)) < 0) {
        return fail("accounts", ret);
    }
    ret = clink_accounts_add(acc, &spec, err, sizeof(err));
    size_t accounts = clink_accounts_count(acc);
    clink_accounts_free(acc);
    if (ret < 0) {
        fprintf(stderr, "accounts: %s\n", err);
        return 1;
    }

    /* A node (transport: io_uring, ck) and a cluster on it (pool). */
    struct clink_node_opts o = clink_node_opts_default;
    o.workers = 1;
    o.allow_plaintext = 1;
    o.secure_transport = CLINK_SECURE_PLAINTEXT;
    struct clink_node *node = NULL;
    struct clink_cluster *cl = NULL;
    if ((ret = clink_node_new(&o, &node)) < 0 || (ret = clink_node_start(node)) < 0) {
        return fail("node", ret);
    }
    struct clink_cluster_opts co = {.node = node};
    if ((ret = clink_cluster_new(&co, &cl)) < 0) {
        return fail("cluster", ret);
    }
    clink_cluster_free(cl);
    clink_node_free(node);

    /* The ops endpoint (cJSON) needs certificates to run: linked here, not called. */
    int (*volatile render)(struct clink_ops *, const char *, char **, size_t *) = clink_ops_render;

    printf("config, %zu account, node and cluster ok; ops linked: %s\n", accounts, render != NULL ? "yes" : "no");
    return 0;
}
