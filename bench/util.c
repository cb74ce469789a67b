/* clink-bench: histogram, clocks, CPU and RSS readers, thread placement, host description. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"

/* ---- histogram ---- */

static unsigned bucket(uint64_t ns)
{
    if (ns < HIST_SUB) {
        return (unsigned)ns;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned shift = msb - 5; /* keep 6 significant bits: 32..63 */
    unsigned idx = (shift + 1) * HIST_SUB + (unsigned)((ns >> shift) - HIST_SUB);
    return idx < HIST_OCTAVES * HIST_SUB ? idx : HIST_OCTAVES * HIST_SUB - 1;
}

static uint64_t bucket_value(unsigned idx)
{
    if (idx < HIST_SUB) {
        return idx;
    }
    unsigned shift = idx / HIST_SUB - 1;
    return ((uint64_t)(idx % HIST_SUB) + HIST_SUB) << shift;
}

void hist_add(struct hist *h, uint64_t ns)
{
    h->n[bucket(ns)]++;
    h->count++;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < HIST_OCTAVES * HIST_SUB; i++) {
        dst->n[i] += src->n[i];
    }
    dst->count += src->count;
}

double hist_pct_us(const struct hist *h, double p)
{
    if (h->count == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)ceil(p * (double)h->count);
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_OCTAVES * HIST_SUB; i++) {
        seen += h->n[i];
        if (seen >= want) {
            return (double)bucket_value(i) / 1000.0;
        }
    }
    return 0;
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- CPU and memory of this process and of the measured ones ---- */

double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

double cpu_pids_s(const pid_t *pids, int npids)
{
    double s = 0;
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < npids; i++) {
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* Fields 14 and 15 (utime, stime) follow the parenthesised command name. */
        char *p = strrchr(buf, ')');
        unsigned long ut = 0, st = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
            s += (double)(ut + st) / (double)hz;
        }
    }
    return s;
}

long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), pid ? "/proc/%d/status" : "/proc/self/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return kib;
}

/* ---- thread placement ---- */

const char *placement_name(enum placement p)
{
    return p == PLACE_SPLIT ? "split" : p == PLACE_SAME ? "same" : "any";
}

/* Pin every thread of pid (0: this process) to set. New threads inherit their creator's mask. */
static int pin_all(pid_t pid, const cpu_set_t *set, char *why, size_t cap)
{
    char dir[64];
    snprintf(dir, sizeof(dir), pid ? "/proc/%d/task" : "/proc/self/task", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(why, cap, "%s: cannot list threads", dir);
        return -1;
    }
    int ret = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        pid_t tid = (pid_t)atoi(e->d_name);
        if (sched_setaffinity(tid, sizeof(*set), set) < 0 && ret == 0) {
            snprintf(why, cap, "cannot pin thread %d: %s", (int)tid, strerror(errno));
            ret = -1;
        }
    }
    closedir(d);
    return ret;
}

int place(struct cfg *cfg, enum placement p, char *why, size_t cap)
{
    static cpu_set_t all; /* the mask clink-bench started with */
    static int have_all;
    if (!have_all) {
        if (sched_getaffinity(0, sizeof(all), &all) < 0) {
            snprintf(why, cap, "sched_getaffinity: %s", strerror(errno));
            return -1;
        }
        have_all = 1;
        cfg->ncpus = CPU_COUNT(&all);
    }
    int first = -1, second = -1;
    for (int i = 0; i < CPU_SETSIZE && second < 0; i++) {
        if (CPU_ISSET(i, &all)) {
            *(first < 0 ? &first : &second) = i;
        }
    }
    cpu_set_t client = all, server = all;
    if (p == PLACE_SPLIT) {
        if (second < 0) {
            snprintf(why, cap, "one CPU: client and server cannot run apart");
            return -1;
        }
        CPU_ZERO(&client);
        CPU_SET(first, &client);
        CPU_ZERO(&server);
        CPU_SET(second, &server);
    } else if (p == PLACE_SAME) {
        CPU_ZERO(&client);
        CPU_SET(first, &client);
        server = client;
    }
    if (pin_all(0, &client, why, cap) < 0) {
        return -1;
    }
    for (int i = 0; i < cfg->npids; i++) {
        if (pin_all(cfg->pids[i], &server, why, cap) < 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- host ---- */

void host_info(struct cfg *cfg)
{
    struct utsname u;
    snprintf(cfg->kernel, sizeof(cfg->kernel), "%s", uname(&u) == 0 ? u.release : "?");
    snprintf(cfg->cpu, sizeof(cfg->cpu), "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 2;
                p[strcspn(p, "\n")] = '\0';
                snprintf(cfg->cpu, sizeof(cfg->cpu), "%s", p);
            }
            break;
        }
    }
    if (f) {
        fclose(f);
    }
}

int parse_list(const char *s, size_t *out, int max)
{
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    if (copy == NULL) {
        return -1;
    }
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        unsigned long v = strtoul(t, &end, 10);
        if (*end != '\0' || end == t || v > (16u << 20) || n == max) {
            free(copy);
            return -1;
        }
        out[n++] = v;
    }
    free(copy);
    return n;
}

void progress(const struct cfg *cfg, const char *fmt, ...)
{
    if (!cfg->tty) {
        return;
    }
    char line[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "  %-70s\r", line);
    fflush(stderr);
}
