/* The attacks main.c runs, by family (one file each); each returns its verdict and describes what it saw. */
#ifndef CLINK_TESTS_ATTACKS_ATTACKS_H
#define CLINK_TESTS_ATTACKS_ATTACKS_H

#include <stddef.h>

#include "tests/attacks/harness.h"

/* opening.c: what arrives instead of a TLS handshake. */
enum verdict atk_random_bytes(char *obs, size_t cap);
enum verdict atk_random_record(char *obs, size_t cap);
enum verdict atk_plaintext(char *obs, size_t cap);

/* stalled_handshakes.c: handshakes begun and never finished. */
enum verdict atk_slowloris(char *obs, size_t cap);
enum verdict atk_storm(char *obs, size_t cap);

/* tamper.c: records and frames tampered with. */
enum verdict atk_flip(char *obs, size_t cap);
enum verdict atk_cut_fin(char *obs, size_t cap);
enum verdict atk_cut_next(char *obs, size_t cap);
enum verdict atk_huge_record(char *obs, size_t cap);
enum verdict atk_finished(char *obs, size_t cap);
enum verdict atk_frame_4g(char *obs, size_t cap);

/* policy.c: versions, suites and client certificates the node must refuse (atk12_: the --tls12 node). */
enum verdict atk_tls10(char *obs, size_t cap);
enum verdict atk_tls11(char *obs, size_t cap);
enum verdict atk_tls12_cbc(char *obs, size_t cap);
enum verdict atk_tls12_non_ecdhe(char *obs, size_t cap);
enum verdict atk_other_ca(char *obs, size_t cap);
enum verdict atk_no_cert(char *obs, size_t cap);
enum verdict atk12_tls10(char *obs, size_t cap);
enum verdict atk12_tls11(char *obs, size_t cap);
enum verdict atk12_cbc(char *obs, size_t cap);
enum verdict atk12_non_ecdhe(char *obs, size_t cap);
enum verdict atk12_control(char *obs, size_t cap);

/* rekey.c: new keys asked for on an open connection. */
enum verdict atk_key_update(char *obs, size_t cap);
enum verdict atk_key_update_flood(char *obs, size_t cap);
enum verdict atk12_renegotiate(char *obs, size_t cap);

/* fd_exhaustion.c: the node with a low fd limit runs out of descriptors. */
enum verdict atk_fd_exhaustion(char *obs, size_t cap);

#endif
