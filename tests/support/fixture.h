/*
 * The fixture most transport suites share: a fresh PKI (ts_pki_make) and a
 * TLS context from its node certificate, made before each test and removed
 * after it:
 *
 *     TestSuite(calls, .init = ts_fixture_init, .fini = ts_fixture_fini, .timeout = 60);
 *
 * A suite that needs more makes it in its own init, after ts_fixture_init.
 */
#ifndef CLINK_TESTS_SUPPORT_FIXTURE_H
#define CLINK_TESTS_SUPPORT_FIXTURE_H

#include "tests/support/support.h"

extern struct ts_pki pki;
extern struct clink_tls_ctx *tls;

void ts_fixture_init(void);
void ts_fixture_fini(void);

#endif
