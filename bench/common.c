/* bench/bench.h: timing, distributions, latency percentiles, result lines. */
#include "bench.h"

#include <stdarg.h>

enum bench_mode bench_mode = MODE_TIME;
uint64_t tsc_overhead;

void bench_parse_mode(int argc, char **argv)
{
    const char *m = argc > 1 ? argv[1] : "time";
    if (!strcmp(m, "time"))
        bench_mode = MODE_TIME;
    else if (!strcmp(m, "count"))
        bench_mode = MODE_COUNT;
    else if (!strcmp(m, "frag"))
        bench_mode = MODE_FRAG;
    else if (!strcmp(m, "smoke"))
        bench_mode = MODE_SMOKE;
    else {
        fprintf(stderr, "usage: %s time|count|frag|smoke\n", argv[0]);
        exit(2);
    }
    tsc_calibrate();
    if (bench_mode == MODE_TIME) { /* let the CPU leave its idle clock before measuring */
        uint64_t end = now_ns() + 300000000ull;
        while (now_ns() < end)
            ;
    }
}

size_t size_pareto(uint64_t *s, size_t max)
{
    uint64_t r = rng_next(s);
    unsigned e = (unsigned)__builtin_ctzll(r | (1ull << 40));
    while (e > 0 && (32ul << e) > max)
        e--;
    size_t lo = 16ul << e, hi = MIN_SZ(32ul << e, max);
    return lo + (size_t)rng_below(s, hi - lo + 1);
}

size_t size_mixed(uint64_t *s)
{
    uint64_t r = rng_below(s, 100);
    if (r < 90)
        return size_pareto(s, 1024);
    if (r < 98)
        return 1024 + (size_t)rng_below(s, 7 * 1024 + 1);
    return 8192 + (size_t)rng_below(s, 56 * 1024 + 1);
}

void lat_init(struct lat *l, size_t cap)
{
    l->v = malloc(cap * sizeof(*l->v));
    l->n = 0;
    l->cap = l->v ? cap : 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

void lat_format(struct lat *l, char *buf, size_t size)
{
    if (!l->n) {
        snprintf(buf, size, " p50=0 p99=0 p999=0 max=0");
        return;
    }
    qsort(l->v, l->n, sizeof(*l->v), cmp_u32);
#define PCT(q) ((uint64_t)l->v[(size_t)((double)(l->n - 1) * (q))])
#define NET(x) ((x) > tsc_overhead ? (x) - tsc_overhead : 0)
    snprintf(buf, size, " p50=%llu p99=%llu p999=%llu max=%llu", (unsigned long long)NET(PCT(0.5)),
             (unsigned long long)NET(PCT(0.99)), (unsigned long long)NET(PCT(0.999)),
             (unsigned long long)NET((uint64_t)l->v[l->n - 1]));
#undef PCT
#undef NET
}

void lat_free(struct lat *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

void tsc_calibrate(void)
{
    enum { N = 4001 };
    static uint32_t v[N];
    for (int i = 0; i < N; i++) {
        uint64_t t0 = tsc();
        uint64_t t1 = tsc();
        v[i] = (uint32_t)(t1 - t0);
    }
    qsort(v, N, sizeof(v[0]), cmp_u32);
    tsc_overhead = v[N / 2];
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_dbl);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void count_begin(void)
{
    if (bench_mode == MODE_COUNT) {
        CALLGRIND_ZERO_STATS;
        CALLGRIND_START_INSTRUMENTATION;
    }
}

void count_end(const char *workload, const char *alloc)
{
    if (bench_mode == MODE_COUNT) {
        char name[160];
        snprintf(name, sizeof(name), "%s/%s", workload, alloc);
        CALLGRIND_STOP_INSTRUMENTATION;
        CALLGRIND_DUMP_STATS_AT(name);
    }
}

void result(const char *group, const char *workload, const char *alloc, const char *fmt, ...)
{
    va_list ap;
    printf("R %s %s %s ", group, workload, alloc);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* The value of "<key>: N kB" in /proc/self/status, in bytes. */
static uint64_t status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t v = 0;
    size_t kl = strlen(key);
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, kl) && line[kl] == ':')
            v = strtoull(line + kl + 1, NULL, 10) * 1024;
    fclose(f);
    return v;
}

uint64_t rss_peak(void)
{
    return status_kb("VmHWM");
}

uint64_t rss_now(void)
{
    return status_kb("VmRSS");
}

bool rss_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

void arena_prefault(void *base, uint64_t size)
{
    volatile char *b = base;
    for (uint64_t off = 0; off < size; off += 4096)
        b[off] = 0;
}
