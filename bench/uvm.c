/* bench/uvm.c: the reference for kernel/bench/kbench_vm.c (issue 15, part 6):
 * the same user-address-space operations done by Linux on this host, in
 * wall time (ns). callgrind cannot follow a process into the Linux kernel,
 * where all of this work happens, so there are no instruction counts here.
 *
 *   R uvm u-zero-fault linux ns=..   one first write to an untouched page of
 *       a private anonymous mapping (madvise MADV_NOHUGEPAGE: 4 KiB pages,
 *       as in SlayerOS): a run writing V_PAGES fresh pages minus a second
 *       run over the same pages, per page
 *   R uvm u-cow-fault linux ns=..    the same in a fork()ed child, writing
 *       pages shared with the parent (a copy each)
 *   R uvm u-cow-reuse linux ns=..    the parent's write to those pages
 *       after the child copied them (the child still alive): reused in place
 *   R uvm u-space-16M linux ns=..    mmap 16 MiB, write each page, munmap
 *   R uvm u-fork-16M linux ns=..     fork() of this process with 16 MiB
 *       written (until fork returns in the parent)
 *   R uvm u-forkexit-16M linux ns=.. fork() to the parent's waitpid of the
 *       child, which _exits at once (its teardown included)
 * Every value is the median of RUNS repetitions. Modes: time, smoke (tiny,
 * for make bench-smoke); count prints nothing (nothing to count). */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define PAGE 4096ul

static unsigned v_pages = 256, big_pages = 4096, runs = 9;

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static char *map(size_t pages)
{
    char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail("mmap");
    madvise(p, pages * PAGE, MADV_NOHUGEPAGE);
    return p;
}

/* ns of one pass writing a byte to each of `pages` pages. */
static uint64_t touch(char *p, size_t pages)
{
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < pages; i++)
        ((volatile char *)p)[i * PAGE] = 0x5a;
    return now_ns() - t0;
}

/* Two passes: the first's extra ns per page. */
static double per_fault(char *p, size_t pages)
{
    uint64_t first = touch(p, pages), again = touch(p, pages);
    return first > again ? (double)(first - again) / (double)pages : 0;
}

static void zero_fault(void)
{
    double s[64];
    for (unsigned r = 0; r < runs; r++) {
        char *p = map(v_pages);
        s[r] = per_fault(p, v_pages);
        munmap(p, v_pages * PAGE);
    }
    result("uvm", "u-zero-fault", "linux", "ns=%.1f runs=%u", median(s, runs), runs);
}

static void cow_fault(void)
{
    double copy[64], reuse[64];
    char *p = map(v_pages);
    touch(p, v_pages);
    for (unsigned r = 0; r < runs; r++) {
        int res[2], go[2];
        if (pipe(res) || pipe(go))
            fail("pipe");
        pid_t pid = fork();
        if (pid < 0)
            fail("fork");
        if (pid == 0) { /* copies every page, reports, waits until the parent measured */
            close(go[1]);
            double v = per_fault(p, v_pages);
            char c;
            if (write(res[1], &v, sizeof(v)) != sizeof(v) || read(go[0], &c, 1) < 0)
                _exit(1);
            _exit(0);
        }
        if (read(res[0], &copy[r], sizeof(copy[r])) != sizeof(copy[r]))
            fail("read");
        reuse[r] = per_fault(p, v_pages);
        close(go[1]);
        int st;
        waitpid(pid, &st, 0);
        close(go[0]);
        close(res[0]);
        close(res[1]);
    }
    munmap(p, v_pages * PAGE);
    result("uvm", "u-cow-fault", "linux", "ns=%.1f runs=%u", median(copy, runs), runs);
    result("uvm", "u-cow-reuse", "linux", "ns=%.1f runs=%u", median(reuse, runs), runs);
}

static void whole(void)
{
    double s[64], fk[64], fe[64];
    for (unsigned r = 0; r < runs; r++) {
        uint64_t t0 = now_ns();
        char *p = map(big_pages);
        touch(p, big_pages);
        munmap(p, big_pages * PAGE);
        s[r] = (double)(now_ns() - t0);
    }
    result("uvm", "u-space-16M", "linux", "ns=%.0f runs=%u pages=%u", median(s, runs), runs, big_pages);
    char *p = map(big_pages);
    touch(p, big_pages);
    for (unsigned r = 0; r < runs; r++) {
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid < 0)
            fail("fork");
        if (pid == 0)
            _exit(0);
        uint64_t t1 = now_ns();
        int st;
        waitpid(pid, &st, 0);
        uint64_t t2 = now_ns();
        fk[r] = (double)(t1 - t0);
        fe[r] = (double)(t2 - t0);
    }
    munmap(p, big_pages * PAGE);
    result("uvm", "u-fork-16M", "linux", "ns=%.0f runs=%u pages=%u", median(fk, runs), runs, big_pages);
    result("uvm", "u-forkexit-16M", "linux", "ns=%.0f runs=%u pages=%u", median(fe, runs), runs,
           big_pages);
}

int main(int argc, char **argv)
{
    bench_parse_mode(argc, argv);
    if (bench_mode == MODE_COUNT || bench_mode == MODE_FRAG)
        return 0;
    if (bench_mode == MODE_SMOKE) {
        v_pages = 16;
        big_pages = 64;
        runs = 3;
    }
    zero_fault();
    cow_fault();
    whole();
    return 0;
}
