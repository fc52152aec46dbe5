/* Shared pieces of the host benchmarks (bench/): timing, a PRNG, size
 * distributions, per-operation latency samples and the result line format.
 *
 * Every benchmark binary prints one line per measurement on stdout:
 *   R <group> <workload> <allocator> key=value key=value ...
 * bench/run.py collects those lines from all binaries (and from the callgrind
 * runs) and builds the tables of docs/performance.md.
 *
 * Modes (argv[1]):
 *   time   medians of several repetitions (ns/op) and rdtsc percentiles
 *   count  small op counts, for valgrind --tool=callgrind: each measured loop
 *          is bracketed by CALLGRIND_START/STOP_INSTRUMENTATION and a
 *          CALLGRIND_DUMP_STATS_AT("<workload>/<allocator>") so run.py reads
 *          instructions per op from the dump; run.py passes
 *          --toggle-collect='bop_*' so only the bop_* operation wrappers (and
 *          what they call) are counted, not the harness around them.
 *   frag   (heap binaries) fragmentation run of workload 2
 *   smoke  tiny sizes, for `make bench-smoke`. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <valgrind/callgrind.h>
#include <x86intrin.h>

#define BOP __attribute__((noinline)) /* an operation wrapper: counted by callgrind */
#define MIN_SZ(a, b) ((a) < (b) ? (a) : (b))
#define MAX_U64(a, b) ((a) > (b) ? (a) : (b))

enum bench_mode { MODE_TIME, MODE_COUNT, MODE_FRAG, MODE_SMOKE };
extern enum bench_mode bench_mode;

/* Parses argv[1] into bench_mode (exits with a usage line when unknown). */
void bench_parse_mode(int argc, char **argv);

/* Wall clock in nanoseconds (CLOCK_MONOTONIC). */
static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Time stamp counter, ordered after earlier instructions (lfence; rdtsc). */
static inline uint64_t tsc(void)
{
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
}

/* xorshift64*: fast, deterministic, good enough for workload shapes. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, n). */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

/* Pareto-like size in [16, max]: most requests small, a heavy tail (about
 * 1/x^1.2 beyond the minimum), computed without floating point. */
size_t size_pareto(uint64_t *s, size_t max);
/* The mixed distribution up to 64 KiB: 90% Pareto up to 1 KiB, 8% uniform
 * 1..8 KiB, 2% uniform 8..64 KiB. */
size_t size_mixed(uint64_t *s);

/* Per-operation cycle samples and their percentiles. */
struct lat {
    uint32_t *v;
    size_t n, cap;
};
/* Makes room for `cap` samples. */
void lat_init(struct lat *l, size_t cap);
/* Records one sample (dropped when full). */
static inline void lat_add(struct lat *l, uint64_t cycles)
{
    if (l->n < l->cap)
        l->v[l->n++] = cycles > UINT32_MAX ? UINT32_MAX : (uint32_t)cycles;
}
/* Prints " p50=.. p99=.. p999=.. max=.." (cycles, the rdtsc cost subtracted)
 * into buf; sorts the samples. */
void lat_format(struct lat *l, char *buf, size_t size);
/* Frees the samples. */
void lat_free(struct lat *l);
/* Median cycles of an empty rdtsc pair, subtracted from every sample. */
extern uint64_t tsc_overhead;
/* Measures tsc_overhead. */
void tsc_calibrate(void);

/* Median of v[0..n) (sorts v). */
double median(double *v, size_t n);

/* Brackets a measured loop in count mode; no-ops otherwise. The dump name is
 * "<workload>/<alloc>". */
void count_begin(void);
/* Ends the loop started by count_begin and dumps the counts under a name. */
void count_end(const char *workload, const char *alloc);

/* Prints one result line: "R <group> <workload> <alloc> <fmt...>". */
void result(const char *group, const char *workload, const char *alloc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Peak resident set since the last rss_reset, in bytes (VmHWM). */
uint64_t rss_peak(void);
/* Current resident set in bytes (VmRSS). */
uint64_t rss_now(void);
/* Resets the kernel's peak-RSS mark (writes 5 to /proc/self/clear_refs);
 * false when that is not allowed. */
bool rss_reset(void);

/* Writes one byte per 4 KiB page of [base, base + size): the host arena that
 * stands for RAM is made resident before measuring, as a kernel's RAM is, so
 * that Linux's first-touch page faults are not counted as allocator work
 * (time mode only: instruction counts and held pages do not see them). */
void arena_prefault(void *base, uint64_t size);
