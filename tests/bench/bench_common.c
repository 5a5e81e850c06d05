/*
 * bench_common.c — histogram, clocks, /proc readings and the RESULT line
 * shared by the benchmark programs (see bench_common.h).
 */
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t bench_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- histogram ----------------------------------------------------------- */

static int bucket_of(uint64_t us)
{
    if (us < 64)
        return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int shift = msb - 5; /* us >> shift is in [32, 63] */
    int idx = 64 + (msb - 6) * 32 + (int)((us >> shift) - 32);
    return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

/* The middle of bucket idx, in microseconds. */
static double bucket_value_us(int idx)
{
    if (idx < 64)
        return idx;
    int msb = (idx - 64) / 32 + 6;
    int shift = msb - 5;
    uint64_t low = (uint64_t)(32 + (idx - 64) % 32) << shift;
    return (double)low + (double)((1ULL << shift) - 1) / 2.0;
}

void bench_hist_reset(bench_hist *h)
{
    memset(h, 0, sizeof(*h));
}

void bench_hist_add(bench_hist *h, int64_t latency_ns)
{
    uint64_t us = latency_ns > 0 ? (uint64_t)latency_ns / 1000 : 0;
    h->bucket[bucket_of(us)]++;
    h->count++;
    h->sum_us += (double)us;
    if (us > h->max_us)
        h->max_us = us;
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    for (int i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    dst->sum_us += src->sum_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

double bench_hist_quantile_ms(const bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            double v = bucket_value_us(i);
            return (v > (double)h->max_us ? (double)h->max_us : v) / 1000.0;
        }
    }
    return (double)h->max_us / 1000.0;
}

/* ---- /proc ---------------------------------------------------------------- */

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

double bench_proc_cpu_seconds(int pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (read_file(path, buf, sizeof(buf)) != 0)
        return -1;
    /* The command name may hold spaces: fields are counted after its ')'. */
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

long bench_proc_status_kb(int pid, const char *field)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if (read_file(path, buf, sizeof(buf)) != 0)
        return -1;
    size_t flen = strlen(field);
    for (const char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            return strtol(line + flen + 1, NULL, 10);
    }
    return -1;
}

int bench_proc_reset_peak(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/clear_refs", pid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, "5", 1);
    close(fd);
    return n == 1 ? 0 : -1;
}

void bench_proc_start(bench_proc *p, int pid)
{
    p->pid = pid;
    p->cpu_start = 0;
    if (pid <= 0)
        return;
    bench_proc_reset_peak(pid);
    p->cpu_start = bench_proc_cpu_seconds(pid);
}

void bench_proc_report(const bench_proc *p, const char *name, double wall_seconds, char *out,
                       size_t len)
{
    if (p->pid <= 0 || wall_seconds <= 0)
        return;
    double cpu = bench_proc_cpu_seconds(p->pid) - p->cpu_start;
    size_t used = strlen(out);
    if (used >= len)
        return;
    snprintf(out + used, len - used, " cpu_%s=%.3f hwm_%s_kb=%ld rss_%s_kb=%ld", name,
             cpu / wall_seconds, name, bench_proc_status_kb(p->pid, "VmHWM"), name,
             bench_proc_status_kb(p->pid, "VmRSS"));
}

double bench_self_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- RESULT ---------------------------------------------------------------- */

void bench_print_result(const char *mode, int concurrency, uint64_t txns, double seconds,
                        const bench_hist *h, uint64_t errors, const char *extra)
{
    printf("RESULT mode=%s conc=%d txn=%llu secs=%.2f tps=%.1f p50_ms=%.3f p99_ms=%.3f "
           "p999_ms=%.3f errors=%llu%s%s\n",
           mode, concurrency, (unsigned long long)txns, seconds,
           seconds > 0 ? (double)txns / seconds : 0.0, bench_hist_quantile_ms(h, 0.5),
           bench_hist_quantile_ms(h, 0.99), bench_hist_quantile_ms(h, 0.999),
           (unsigned long long)errors, extra && *extra ? " " : "", extra ? extra : "");
    fflush(stdout);
}

/* ---- helpers --------------------------------------------------------------- */

long bench_parse_long(const char *option, const char *value, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value ? value : "", &end, 10);
    if (value == NULL || *value == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "%s: '%s' is not a number in %ld..%ld\n", option, value ? value : "",
                min, max);
        exit(2);
    }
    return v;
}

void bench_die(const char *program, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}
