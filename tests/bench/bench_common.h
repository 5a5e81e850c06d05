/*
 * bench_common.h — what every benchmark program of tests/bench/ shares: a
 * latency histogram, clocks, the CPU time and memory of a watched process
 * (read from /proc), and the one RESULT line each program prints for run.sh.
 *
 * RESULT line: "RESULT key=value key=value ...", one per measured point, so
 * run.sh can pick the fields it needs with a plain sed.
 */
#ifndef DTMQ_BENCH_COMMON_H
#define DTMQ_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- clocks ---------------------------------------------------------- */

/* Monotonic time in nanoseconds. */
int64_t bench_now_ns(void);
/* Wall-clock time in milliseconds since the epoch. */
int64_t bench_wall_ms(void);

/* ---- latency histogram ------------------------------------------------ */

/* Log-linear buckets over microseconds: exact below 64 us, then 32 buckets
 * per power of two (about 3 % resolution), up to about 2^40 us. */
#define BENCH_HIST_BUCKETS (64 + 35 * 32)

typedef struct bench_hist {
    uint64_t bucket[BENCH_HIST_BUCKETS];
    uint64_t count;
    uint64_t max_us;
    double sum_us;
} bench_hist;

void bench_hist_reset(bench_hist *h);
void bench_hist_add(bench_hist *h, int64_t latency_ns);
/* Adds every sample of src to dst. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);
/* The q-quantile (0 < q <= 1) in milliseconds, 0 when empty. */
double bench_hist_quantile_ms(const bench_hist *h, double q);

/* ---- a watched process (/proc/PID) -------------------------------------- */

typedef struct bench_proc {
    int pid;          /* 0: nothing watched */
    double cpu_start; /* utime+stime in seconds at bench_proc_start */
} bench_proc;

/* utime+stime of pid in seconds, -1 when unreadable. */
double bench_proc_cpu_seconds(int pid);
/* A field of /proc/PID/status in kB ("VmHWM", "VmRSS"), -1 when unreadable. */
long bench_proc_status_kb(int pid, const char *field);
/* Resets the peak RSS (VmHWM) of pid to its current RSS (clear_refs 5); best
 * effort: returns -1 when the kernel refuses. */
int bench_proc_reset_peak(int pid);
/* Starts a measurement window: resets the peak and notes the CPU time. */
void bench_proc_start(bench_proc *p, int pid);
/* Appends " cpu_NAME=<cores> hwm_NAME_kb=<peak> rss_NAME_kb=<now>" for the
 * window (cores = CPU seconds / wall seconds) to out; nothing when pid is 0. */
void bench_proc_report(const bench_proc *p, const char *name, double wall_seconds, char *out,
                       size_t len);

/* CPU seconds (user+system) this process has used so far. */
double bench_self_cpu_seconds(void);

/* ---- the RESULT line ------------------------------------------------- */

/* Prints "RESULT mode=.. conc=.. txn=.. secs=.. tps=.. p50_ms=.. p99_ms=..
 * p999_ms=.. errors=.. <extra>" on stdout and flushes. */
void bench_print_result(const char *mode, int concurrency, uint64_t txns, double seconds,
                        const bench_hist *h, uint64_t errors, const char *extra);

/* ---- small helpers ------------------------------------------------------ */

/* Parses a decimal option value within [min, max]; exits 2 naming the option
 * otherwise. */
long bench_parse_long(const char *option, const char *value, long min, long max);
/* Exits 2 after printing "PROGRAM: message" on stderr. */
void bench_die(const char *program, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
