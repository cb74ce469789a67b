/* clink-bench: the table on stdout and one JSON object per result line (--json). */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "bench/bench.h"

void emit_json(const struct cfg *cfg, const struct result *r)
{
    if (cfg->jf == NULL) {
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "scenario", r->scenario);
    cJSON_AddStringToObject(o, "mode", r->mode);
    cJSON_AddNumberToObject(o, "msg_size", (double)r->msg);
    cJSON_AddNumberToObject(o, "concurrency", r->concurrency);
    cJSON_AddNumberToObject(o, "connections", r->connections);
    cJSON_AddNumberToObject(o, "workers", r->workers);
    cJSON_AddStringToObject(o, "placement", r->placement ? r->placement : "any");
    if (r->key_type) {
        cJSON_AddStringToObject(o, "key_type", r->key_type);
    }
    if (r->skipped[0]) {
        cJSON_AddStringToObject(o, "skipped", r->skipped);
    } else {
        cJSON_AddNumberToObject(o, "ops_per_s", round(r->ops));
        cJSON_AddNumberToObject(o, "bytes_per_s", round(r->bps));
        cJSON_AddNumberToObject(o, "p50_us", r->p50);
        cJSON_AddNumberToObject(o, "p99_us", r->p99);
        cJSON_AddNumberToObject(o, "p999_us", r->p999);
        cJSON_AddNumberToObject(o, "cpu_s", r->cpu_s);
        cJSON_AddNumberToObject(o, "cpu_client_s", r->cpu_client_s);
        cJSON_AddNumberToObject(o, "cpu_server_s", r->cpu_server_s);
        cJSON_AddNumberToObject(o, "seconds", r->secs);
        cJSON_AddNumberToObject(o, "issued", (double)r->issued);
        cJSON_AddNumberToObject(o, "ok", (double)r->ok);
        cJSON_AddNumberToObject(o, "failed", (double)r->failed);
        if (r->ok > 0) {
            cJSON_AddNumberToObject(o, "cpu_us_per_op", r->cpu_s / (double)r->ok * 1e6);
        }
        double gb = r->bps * r->secs / 1e9;
        if (gb > 0.01) {
            cJSON_AddNumberToObject(o, "cpu_s_per_gb_client", r->cpu_client_s / gb);
            cJSON_AddNumberToObject(o, "cpu_s_per_gb_server", r->cpu_server_s / gb);
        }
        if (strcmp(r->scenario, "storm") == 0) {
            cJSON_AddNumberToObject(o, "resumed_share", r->resumed_share);
        }
        if (strcmp(r->scenario, "scale") == 0) {
            cJSON_AddNumberToObject(o, "leaves", r->leaves);
            if (strcmp(r->mode, "fanout") == 0) {
                cJSON_AddNumberToObject(o, "leaf_calls_per_s", round(r->leaf_ops));
                cJSON_AddNumberToObject(o, "agg_heap_kib_per_leaf", r->heap_kib_client);
                cJSON_AddNumberToObject(o, "agg_rss_kib_per_leaf", r->kib_client);
            } else {
                cJSON_AddNumberToObject(o, "whole_ms", r->secs * 1e3);
                cJSON_AddNumberToObject(o, "handshakes_full", (double)r->hs_full);
                cJSON_AddNumberToObject(o, "handshakes_resumed", (double)r->hs_resumed);
                cJSON_AddNumberToObject(o, "resumed_share", r->resumed_share);
            }
        }
        if (r->bare_ratio > 0) {
            cJSON_AddNumberToObject(o, "vs_bare_loop", r->bare_ratio);
            cJSON_AddNumberToObject(o, "vs_bare_loop_per_cpu_s", r->bare_cpu_ratio);
        }
        if (r->baseline_ratio > 0) {
            cJSON_AddNumberToObject(o, "vs_bare_openssl", r->baseline_ratio);
        }
        if (r->sock_ratio > 0) {
            cJSON_AddNumberToObject(o, "vs_bare_openssl_sockets", r->sock_ratio);
        }
        if (strcmp(r->scenario, "stream") == 0) {
            cJSON_AddNumberToObject(o, "rss_peak_growth_kib_client", r->peak_kib_client);
            if (r->peak_kib_server >= 0) {
                cJSON_AddNumberToObject(o, "rss_peak_growth_kib_server", r->peak_kib_server);
            }
        }
        if (r->stream_bps > 0) {
            cJSON_AddNumberToObject(o, "stream_bytes_per_s", round(r->stream_bps));
        }
        if (r->p99_vs_idle > 0) {
            cJSON_AddNumberToObject(o, "p99_vs_idle", r->p99_vs_idle);
        }
        if (strcmp(r->scenario, "memory") == 0) {
            cJSON_AddNumberToObject(o, "rss_kib_per_conn_client", r->kib_client);
            cJSON_AddNumberToObject(o, "rss_kib_per_conn_server", r->kib_server);
            cJSON_AddNumberToObject(o, "heap_kib_per_conn_client", r->heap_kib_client);
        }
    }
    cJSON_AddStringToObject(o, "cipher", r->cipher[0] ? r->cipher : "-");
    cJSON_AddStringToObject(o, "tls_version", r->tls_version[0] ? r->tls_version : "-");
    cJSON_AddStringToObject(o, "kernel", cfg->kernel);
    cJSON_AddStringToObject(o, "cpu_model", cfg->cpu);
    cJSON_AddStringToObject(o, "build_type", cfg->build);
    char *s = cJSON_PrintUnformatted(o);
    fprintf(cfg->jf, "%s\n", s);
    fflush(cfg->jf);
    cJSON_free(s);
    cJSON_Delete(o);
}

#define ROW "%-10s %-12s %8s %5s %7s %-5s %11s %9s %8s %8s %9s %7s %8s %6s %6s %6s %6s  %s\n"

void print_header(void)
{
    printf("\n" ROW, "scenario", "mode", "size", "conns", "callers", "place", "ops/s", "MB/s", "p50 us", "p99 us",
           "p999 us", "cpu s", "vs", "/bare", "/b cpu", "/mem", "/sock", "");
}

static void num(char *buf, size_t cap, const char *fmt, double v, int show)
{
    if (show) {
        snprintf(buf, cap, fmt, v);
    } else {
        snprintf(buf, cap, "-");
    }
}

void print_row(const struct result *r, double vs, const char *vs_what)
{
    char size[16], conns[16], callers[16], ops[24], mbs[24], p50[16], p99[16], p999[16], cpu[16], ratio[24], bare[16],
        bare_cpu[16], mem[16], sock[16];
    num(size, sizeof(size), "%.0f", (double)r->msg, r->msg > 0);
    num(conns, sizeof(conns), "%.0f", r->connections, r->connections > 0);
    num(callers, sizeof(callers), "%.0f", r->concurrency, r->concurrency > 0);
    num(ops, sizeof(ops), "%.0f", r->ops, r->ops > 0);
    num(mbs, sizeof(mbs), "%.1f", r->bps / 1e6, r->bps > 0);
    num(p50, sizeof(p50), "%.1f", r->p50, r->p50 > 0);
    num(p99, sizeof(p99), "%.1f", r->p99, r->p99 > 0);
    num(p999, sizeof(p999), "%.1f", r->p999, r->p999 > 0);
    num(cpu, sizeof(cpu), "%.2f", r->cpu_s, r->cpu_s > 0);
    num(ratio, sizeof(ratio), "%.2fx", vs, vs > 0);
    num(bare, sizeof(bare), "%.2fx", r->bare_ratio, r->bare_ratio > 0);
    num(bare_cpu, sizeof(bare_cpu), "%.2fx", r->bare_cpu_ratio, r->bare_cpu_ratio > 0);
    num(mem, sizeof(mem), "%.2fx", r->baseline_ratio, r->baseline_ratio > 0);
    num(sock, sizeof(sock), "%.2fx", r->sock_ratio, r->sock_ratio > 0);
    char note[256];
    snprintf(note, sizeof(note), "%s%s%s%s", vs > 0 && vs_what ? "vs " : "", vs > 0 && vs_what ? vs_what : "",
             vs > 0 && vs_what && r->note[0] ? "; " : "", r->note);
    printf(ROW, r->scenario, r->mode, size, conns, callers, r->placement ? r->placement : "any", ops, mbs, p50, p99,
           p999, cpu, ratio, bare, bare_cpu, mem, sock, note);
    if (r->failed > 0 || r->ok + r->failed != r->issued) {
        printf("  !! %llu of %llu failed\n", (unsigned long long)r->failed, (unsigned long long)r->issued);
    }
}

void print_skipped(const struct result *r)
{
    printf("%-10s %-12s %8zu  skipped: %s\n", r->scenario, r->mode, r->msg, r->skipped);
}

int report_line(const struct cfg *cfg, const struct result *r, double vs, const char *vs_what)
{
    emit_json(cfg, r);
    if (r->skipped[0]) {
        print_skipped(r);
        return 1;
    }
    print_row(r, vs, vs_what);
    return r->failed > 0 || r->ok + r->failed != r->issued;
}
