/* The system-call fuzzer's generator, shared by usertests (its fuzz test)
 * and sysfuzz (a long run from the monitor): random call numbers (mostly
 * SlayerOS's own calls, else anything in 0..0x1100, else any 64 bits) with
 * random arguments (0, small numbers, page-aligned user addresses in a
 * scratch mapping, in the caller's own image or stack, or anywhere, kernel
 * addresses, negatives, any 64 bits).
 *
 * What would hurt other processes or never return is left out or defused:
 * exit, exit_group, fork, kill and thread_create are never issued; read
 * from fd 0 only into a kernel address (it fails before waiting for
 * input), nanosleep only with arguments that fail or sleep 1 us, writes to
 * the console only from kernel addresses (no output), wait4 with WNOHANG.
 * What a call may do to the caller itself (munmap its stack, mprotect its
 * code, exec a module) is allowed: the caller may die of it. */
#pragma once

#include <slayer.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#ifdef FUZZ_TRACE
#include <stdio.h>
#include <unistd.h>
#endif

#define FUZZ_PAGE          4096ul
#define FUZZ_KERNEL_TEXT   0xffffffff80000000ul
#define FUZZ_KERNEL_HALF   0xffff800000000000ul
#define FUZZ_NONCANONICAL  0x8000000000000000ul
#define FUZZ_STACK_TOP     0x7ffffff00000ul /* kernel/exec/elf.h: ELF_STACK_TOP */
#define FUZZ_SCRATCH_PAGES 16

static unsigned long *fuzz_scratch;

/* One random argument. */
static long fuzz_arg(void)
{
    switch (rand64() % 10) {
    case 0: return 0;
    case 1: return (long)(rand64() % 16);
    case 2: return (long)(rand64() % 0x100000);
    case 3: return (long)((unsigned long)fuzz_scratch + rand64() % FUZZ_SCRATCH_PAGES * FUZZ_PAGE);
    case 4: return (long)(rand64() % (0x800000000000ul / FUZZ_PAGE) * FUZZ_PAGE);
    case 5: return (long)(FUZZ_KERNEL_HALF + (rand64() % (1ul << 40) & ~(FUZZ_PAGE - 1)));
    case 6: return (long)(FUZZ_KERNEL_TEXT + rand64() % (1ul << 30));
    case 7: return -(long)(rand64() % 4096);
    case 8: /* now and then a page of the caller itself: its image or its stack */
        if (rand64() % 16)
            return (long)(rand64() % (0x800000000000ul / FUZZ_PAGE) * FUZZ_PAGE);
        return (long)(rand64() % 2 ? 0x400000ul + rand64() % 16 * FUZZ_PAGE
                                   : FUZZ_STACK_TOP - (1 + rand64() % 8) * FUZZ_PAGE);
    default: return (long)rand64();
    }
}

/* n names call (the kernel might look at the low 32 bits only). */
static bool fuzz_is(unsigned long n, long call)
{
    return n == (unsigned long)call || (unsigned)n == (unsigned)call;
}

/* Issues `calls` random system calls from a generator seeded with seed;
 * returns when done (if the caller survived them). */
static void fuzz_calls(unsigned seed, unsigned long calls)
{
    srand(seed);
    void *m = mmap(NULL, FUZZ_SCRATCH_PAGES * FUZZ_PAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fuzz_scratch = m == MAP_FAILED ? NULL : m;
    static const long known[] = {SYS_READ,   SYS_WRITE,       SYS_MMAP,      SYS_MPROTECT,
                                 SYS_MUNMAP, SYS_SCHED_YIELD, SYS_NANOSLEEP, SYS_GETPID,
                                 SYS_EXECVE, SYS_WAIT4,       SYS_GETPPID,   SYS_MEMSTAT,
                                 SYS_GETTID, SYS_CPU};
    static const struct timespec short_ts = {0, 1000};
    for (unsigned long done = 0; done < calls;) {
        unsigned long n, pick = rand64() % 8;
        if (pick < 5)
            n = (unsigned long)known[rand64() % (sizeof(known) / sizeof(known[0]))];
        else if (pick < 7)
            n = rand64() % 0x1101;
        else
            n = rand64();
        if (fuzz_is(n, SYS_EXIT) || fuzz_is(n, SYS_EXIT_GROUP) || fuzz_is(n, SYS_FORK) ||
            fuzz_is(n, SYS_KILL) || fuzz_is(n, SYS_THREAD_CREATE) || fuzz_is(n, 56 /* clone */) ||
            fuzz_is(n, 58 /* vfork */))
            continue;
        long a[6];
        for (int i = 0; i < 6; i++)
            a[i] = fuzz_arg();
        if (fuzz_is(n, SYS_READ) && (int)a[0] == 0)
            a[1] = (long)FUZZ_KERNEL_TEXT; /* never waits for input */
        if (fuzz_is(n, SYS_WRITE) && ((int)a[0] == 1 || (int)a[0] == 2))
            a[1] = (long)(FUZZ_KERNEL_HALF + (unsigned long)a[1] % FUZZ_PAGE); /* no output */
        if (fuzz_is(n, SYS_NANOSLEEP)) {
            /* never a user page: its contents could be any length of time */
            const long choice[] = {0, (long)FUZZ_KERNEL_TEXT, (long)&short_ts,
                                   (long)FUZZ_NONCANONICAL};
            a[0] = choice[rand64() % 4];
        }
        if (fuzz_is(n, SYS_WAIT4))
            a[2] |= WNOHANG;
#ifdef FUZZ_TRACE /* a local debugging aid: every call before it is made */
        dprintf(2, "fuzz %d: %lx(%lx, %lx, %lx, %lx, %lx, %lx)\n", getpid(), n, a[0], a[1], a[2],
                a[3], a[4], a[5]);
#endif
        syscall6((long)n, a[0], a[1], a[2], a[3], a[4], a[5]);
        done++;
    }
}
