/* The shared suite fixture (tests/support/fixture.h). */
#include "tests/support/fixture.h"

struct ts_pki pki;
struct clink_tls_ctx *tls;

void ts_fixture_init(void)
{
    ts_pki_make(&pki);
    tls = ts_tls(pki.node_cert, pki.node_key, pki.ca);
}

void ts_fixture_fini(void)
{
    clink_tls_ctx_free(tls);
    tls = NULL;
    ts_pki_remove(&pki);
}
