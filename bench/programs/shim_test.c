/* The shim's contract (bench/programs/shim.c), checked through the exported
 * calls: run as LD_PRELOAD=libslayer-malloc.so shim_test (make
 * bench-programs-smoke). It refuses to run without the shim preloaded, since
 * glibc would pass most checks too. Exits 0 when every check holds; prints
 * each failure and exits 1 otherwise. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "shim_test:%d: FAILED: %s\n", __LINE__, #cond); \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* Blocks are filled with a pattern derived from their address and checked
 * before they are freed, so that two live blocks overlapping shows. */
static void fill(void *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        ((unsigned char *)p)[i] = (unsigned char)(seed * 131 + i * 7);
}
static int intact(const void *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)(seed * 131 + i * 7))
            return 0;
    return 1;
}

/* Sizes the compiler must not see (it warns on, or folds, impossible calls). */
static volatile size_t half_max = SIZE_MAX / 2, two33 = (size_t)1 << 33, near_max = SIZE_MAX - 4096;

static void test_basics(void)
{
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    free(a);
    free(b);
    CHECK(((uintptr_t)malloc(1) & 15) == 0);

    for (size_t n = 1; n < 300000; n = n * 3 + 1) {
        unsigned char *p = malloc(n);
        CHECK(p && malloc_usable_size(p) >= n && ((uintptr_t)p & 15) == 0);
        memset(p, 0xa5, n);
        free(p);
    }
    CHECK(malloc_usable_size(NULL) == 0);

    errno = 0;
    CHECK(calloc(half_max, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(two33, two33) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(NULL, half_max, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(near_max) == NULL && errno == ENOMEM);
    for (size_t n = 1; n < 200000; n = n * 5 + 3) {
        /* dirty memory first, so that a calloc reusing it must zero */
        unsigned char *d = malloc(n);
        memset(d, 0xff, n);
        free(d);
        unsigned char *z = calloc(n, 1);
        size_t nz = 0;
        for (size_t i = 0; i < n; i++)
            nz += z[i] != 0;
        CHECK(nz == 0);
        free(z);
    }
    unsigned char *z0 = calloc(0, 5);
    CHECK(z0 != NULL);
    free(z0);
}

static void test_aligned(void)
{
    for (size_t al = 1; al <= ((size_t)1 << 20); al <<= 1) {
        void *p = NULL;
        int r = posix_memalign(&p, al, 100);
        if (al < sizeof(void *)) {
            CHECK(r == EINVAL);
            continue;
        }
        CHECK(r == 0 && p && ((uintptr_t)p % al) == 0);
        fill(p, 100, 1);
        CHECK(intact(p, 100, 1));
        free(p);
        void *q = aligned_alloc(al, 3 * al);
        CHECK(q && ((uintptr_t)q % al) == 0 && malloc_usable_size(q) >= 3 * al);
        free(q);
        void *m = memalign(al, 1);
        CHECK(m && ((uintptr_t)m % al) == 0);
        free(m);
    }
    void *p = (void *)1;
    int saved = (errno = 1234);
    CHECK(posix_memalign(&p, 24, 8) == EINVAL && p == (void *)1);
    CHECK(posix_memalign(&p, 0, 8) == EINVAL);
    CHECK(posix_memalign(&p, 64, (size_t)1 << 62) == ENOMEM && p == (void *)1);
    CHECK(errno == saved);
    void *m = memalign(48, 10); /* glibc rounds the alignment up to 64 */
    CHECK(m && ((uintptr_t)m % 64) == 0);
    free(m);
    m = aligned_alloc(48, 10); /* glibc 2.36: the same as memalign */
    CHECK(m && ((uintptr_t)m % 64) == 0);
    free(m);
    long pg = sysconf(_SC_PAGESIZE);
    void *v = valloc(10), *pv = pvalloc(10);
    CHECK(v && ((uintptr_t)v % (uintptr_t)pg) == 0);
    CHECK(pv && ((uintptr_t)pv % (uintptr_t)pg) == 0 && malloc_usable_size(pv) >= (size_t)pg);
    free(v);
    free(pv);
}

static void test_realloc(void)
{
    /* growth through every tier and back down, bytes kept each time */
    size_t sizes[] = {1, 24, 100, 4000, 5000, 60000, 70000, 1 << 20, 3 << 20, 65536, 3000, 17, 1};
    size_t n = sizeof(sizes) / sizeof(sizes[0]);
    unsigned char *p = NULL;
    size_t have = 0;
    for (size_t i = 0; i < n; i++) {
        p = realloc(p, sizes[i]);
        CHECK(p != NULL);
        size_t keep = have < sizes[i] ? have : sizes[i];
        CHECK(intact(p, keep, 9));
        fill(p, sizes[i], 9);
        have = sizes[i];
    }
    errno = 0;
    CHECK(realloc(p, 0) == NULL); /* glibc: frees p */
    void *r = realloc(NULL, 0);    /* glibc: malloc(0) */
    CHECK(r != NULL);
    errno = 0;
    void *big = realloc(r, near_max);
    CHECK(big == NULL && errno == ENOMEM);
    free(big ? big : r); /* r is still valid after the failed realloc */
    void (*cf)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    CHECK(cf != NULL);
    if (cf)
        cf(malloc(10));
}

#define NTHREADS 32 /* more than CPU_MAX (16): some share the last index */
#define NSLOTS 256
static void *volatile handoff[NTHREADS][NSLOTS];

static void *thread_main(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    unsigned x = t * 2654435761u + 1;
    for (int it = 0; it < 4000; it++) {
        x = x * 1103515245u + 12345u;
        unsigned s = (x >> 8) % NSLOTS;
        /* free what a neighbour thread left in our row or theirs: cross-thread frees */
        unsigned row = (x >> 20) & 1 ? t : (t + 1) % NTHREADS;
        void *old = __atomic_exchange_n(&handoff[row][s], NULL, __ATOMIC_ACQ_REL);
        if (old) {
            size_t sz = *(size_t *)old;
            if (!intact((char *)old + sizeof(size_t), sz - sizeof(size_t), (unsigned)sz)) {
                fprintf(stderr, "shim_test: thread block damaged\n");
                abort();
            }
            free(old);
        }
        size_t sz = sizeof(size_t) + 8 + (x >> 4) % 3000;
        if ((x & 63) == 0)
            sz += 70000; /* some large blocks */
        char *p = malloc(sz);
        if (!p)
            abort();
        *(size_t *)p = sz;
        fill(p + sizeof(size_t), sz - sizeof(size_t), (unsigned)sz);
        void *prev = __atomic_exchange_n(&handoff[t][s], p, __ATOMIC_ACQ_REL);
        if (prev)
            free(prev);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[NTHREADS];
    for (unsigned round = 0; round < 2; round++) { /* second round reuses freed indices */
        for (unsigned t = 0; t < NTHREADS; t++)
            CHECK(pthread_create(&th[t], NULL, thread_main, (void *)(uintptr_t)t) == 0);
        for (unsigned t = 0; t < NTHREADS; t++)
            pthread_join(th[t], NULL);
    }
    for (unsigned t = 0; t < NTHREADS; t++)
        for (unsigned s = 0; s < NSLOTS; s++)
            free(handoff[t][s]);
}

static void *fork_worker(void *arg)
{
    volatile int *stop = arg;
    unsigned x = (unsigned)(uintptr_t)&x;
    while (!*stop) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        free(malloc(64 + (x & 1023)));
    }
    return NULL;
}

/* The child allocates and frees; exit status 0 when all went well. */
static int child_allocates(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        void *ps[1000];
        for (int i = 0; i < 1000; i++) {
            ps[i] = malloc((size_t)i * 37 + 1);
            if (!ps[i])
                _exit(2);
            fill(ps[i], (size_t)i * 37 + 1, (unsigned)i);
        }
        for (int i = 0; i < 1000; i++) {
            if (!intact(ps[i], (size_t)i * 37 + 1, (unsigned)i))
                _exit(3);
            free(ps[i]);
        }
        pthread_t t; /* threads work in the child too */
        volatile int stop = 1;
        if (pthread_create(&t, NULL, fork_worker, (void *)&stop) != 0)
            _exit(4);
        pthread_join(t, NULL);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void test_fork(void)
{
    void *keep = malloc(1000);
    CHECK(child_allocates() == 0); /* single-threaded parent */
    /* a parent whose other threads allocate while it forks */
    volatile int stop = 0;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, fork_worker, (void *)&stop);
    for (int i = 0; i < 5; i++)
        CHECK(child_allocates() == 0);
    stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    free(keep);
}

/* A double free must abort, with the heap's report on stderr (not stdout). */
static void test_double_free(void)
{
    int errpipe[2], outpipe[2];
    CHECK(pipe(errpipe) == 0 && pipe(outpipe) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(errpipe[1], 2);
        dup2(outpipe[1], 1);
        void *volatile p = malloc(40);
        free(p);
        free(p);
        _exit(0);
    }
    close(errpipe[1]);
    close(outpipe[1]);
    char err[2048] = {0}, out[256] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(err) - 1 && (r = read(errpipe[0], err + got, sizeof(err) - 1 - got)) > 0)
        got += (size_t)r;
    r = read(outpipe[0], out, sizeof(out) - 1);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK(strstr(err, "PANIC") && strstr(err, "heap: ") && strstr(err, "double free"));
    CHECK(r == 0);
    if (!strstr(err, "double free"))
        fprintf(stderr, "shim_test: the child's stderr: %s\n", err);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#define RUN(fn)                                                            \
    do {                                                                   \
        double t0_ = now();                                                \
        fn();                                                              \
        printf("shim_test: %-18s %.2f s\n", #fn, now() - t0_);            \
    } while (0)

int main(void)
{
    /* The shim must be the malloc in use. */
    Dl_info info;
    if (!dladdr((void *)(uintptr_t)&malloc, &info) || !info.dli_fname ||
        !strstr(info.dli_fname, "libslayer-malloc")) {
        fprintf(stderr, "shim_test: run me with LD_PRELOAD=libslayer-malloc.so\n");
        return 2;
    }
    RUN(test_basics);
    RUN(test_aligned);
    RUN(test_realloc);
    RUN(test_threads);
    RUN(test_fork);
    RUN(test_double_free);
    if (failures) {
        fprintf(stderr, "shim_test: %d check(s) failed\n", failures);
        return 1;
    }
    printf("shim_test: all checks passed\n");
    return 0;
}
