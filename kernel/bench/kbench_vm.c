/* kbench's user-address-space rows (issue 15, part 6): what the page-fault
 * handler and the whole-space operations of mm/vm.h cost, end to end, with
 * the programs of test_vm_user.S run in ring 3 by test/uprog.h.
 *
 *   kbench: v-zero-fault ...   one demand-zero fault: a ring-3 write to an
 *       untouched anonymous page (exception entry, vm_fault: a zeroed frame
 *       mapped, page tables made when the page is the first of its 2 MiB;
 *       iretq and the retried write)
 *   kbench: v-cow-fault ...    one copy-on-write fault: a ring-3 write, in
 *       a fork, to a page shared with its parent (a frame copied)
 *   kbench: v-cow-reuse ...    the parent's write to such a page after the
 *       fork copied it: no one shares it any more, the frame is made
 *       writable in place
 *   kbench: v-space-16M ...    vm_space_create, a 16 MiB anonymous region,
 *       a ring-3 run writing each of its 4096 pages, vm_space_destroy
 *   kbench: v-fork-16M ...     vm_fork of a space with 16 MiB resident
 *   kbench: v-forkfree-16M ... vm_space_destroy of that fork (every page
 *       still shared)
 *
 * Each line reads `ops=<runs> cyc=<mean> p50=<median> min=.. max=..` over
 * runs. A fault row's sample is one run of a program writing V_PAGES fresh
 * pages minus a second run writing the same pages again (resident, no
 * fault), divided by V_PAGES: the ring-3 entry and exit, the CR3 loads and
 * the program's own loop cancel out; what is left is the fault. The
 * whole-space rows time the operation itself (v-space-16M: all of it, the
 * 4096 faults included). Under `-icount shift=0` the TSC counts
 * instructions, so these are instruction counts. */
#include "lib/printf.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "mm/vm.h"
#include "test/uprog.h"

#define V_DATA 0x40000000ULL
#define V_PAGES 256     /* pages per fault sample */
#define V_RUNS 9        /* samples per fault row */
#define V_BIG_PAGES 4096 /* 16 MiB */
#define V_BIG_RUNS 5    /* samples per whole-space row */

static inline uint64_t vtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

static bool failed;

/* Cycles of one run of uprog_touch writing `pages` pages from base. */
static uint64_t touch(struct vm_space *vs, vaddr_t base, uint64_t pages)
{
    uint64_t t0 = vtsc();
    enum uprog_end e = uprog_run(vs, uprog_touch, uprog_touch_end,
                                 (struct uparams){base, pages, PAGE_SIZE, 0x5a}, NULL);
    uint64_t t1 = vtsc();
    if (e != UPROG_EXIT)
        failed = true;
    return t1 - t0;
}

/* Two runs over the same pages: the first's extra cycles per page. */
static uint64_t per_fault(struct vm_space *vs, vaddr_t base, uint64_t pages)
{
    uint64_t first = touch(vs, base, pages), again = touch(vs, base, pages);
    return first > again ? (first - again) / pages : 0;
}

/* Prints the row of n samples (sorted here). */
static void row(const char *name, uint64_t *s, unsigned n)
{
    if (failed) {
        kprintf("kbench: %s failed (a ring-3 run did not exit normally, or no memory)\n", name);
        failed = false;
        return;
    }
    uint64_t sum = 0;
    for (unsigned i = 1; i < n; i++) /* insertion sort: a handful of samples */
        for (unsigned j = i; j > 0 && s[j - 1] > s[j]; j--) {
            uint64_t t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    for (unsigned i = 0; i < n; i++)
        sum += s[i];
    kprintf("kbench: %s ops=%u cyc=%llu p50=%llu min=%llu max=%llu\n", name, n,
            (unsigned long long)(sum / n), (unsigned long long)s[n / 2], (unsigned long long)s[0],
            (unsigned long long)s[n - 1]);
}

/* A space whose program, parameter and stack pages are resident already, so
 * that the timed runs fault only where they are meant to. */
static struct vm_space *space_warm(const char *name)
{
    struct vm_space *vs = uprog_space_new(name);
    if (vs)
        touch(vs, USTACK_TOP - PAGE_SIZE, 1);
    else
        failed = true;
    return vs;
}

static bool map_data(struct vm_space *vs, uint64_t pages)
{
    vaddr_t a = V_DATA;
    if (vm_map(vs, &a, pages * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED)) {
        failed = true;
        return false;
    }
    return true;
}

static void zero_faults(void)
{
    uint64_t s[V_RUNS] = {0};
    struct vm_space *vs = space_warm("bench-zero");
    for (unsigned r = 0; vs && r < V_RUNS && !failed; r++) {
        if (!map_data(vs, V_PAGES))
            break;
        s[r] = per_fault(vs, V_DATA, V_PAGES);
        vm_unmap(vs, V_DATA, V_PAGES * PAGE_SIZE);
    }
    if (vs)
        vm_space_destroy(vs);
    row("v-zero-fault", s, V_RUNS);
}

static void cow_faults(void)
{
    uint64_t copy[V_RUNS] = {0}, reuse[V_RUNS] = {0};
    struct vm_space *vs = space_warm("bench-cow");
    if (vs && map_data(vs, V_PAGES))
        touch(vs, V_DATA, V_PAGES);
    for (unsigned r = 0; vs && r < V_RUNS && !failed; r++) {
        struct vm_space *child;
        if (vm_fork(vs, "bench-cow-child", &child)) {
            failed = true;
            break;
        }
        copy[r] = per_fault(child, V_DATA, V_PAGES);  /* the child copies every page */
        reuse[r] = per_fault(vs, V_DATA, V_PAGES);    /* the parent is the last sharer */
        vm_space_destroy(child);
    }
    if (vs)
        vm_space_destroy(vs);
    bool f = failed;
    row("v-cow-fault", copy, V_RUNS);
    failed = f;
    row("v-cow-reuse", reuse, V_RUNS);
}

static void whole_spaces(void)
{
    uint64_t s[V_BIG_RUNS] = {0}, fork[V_BIG_RUNS] = {0}, forkfree[V_BIG_RUNS] = {0};
    for (unsigned r = 0; r < V_BIG_RUNS && !failed; r++) {
        uint64_t t0 = vtsc();
        struct vm_space *vs = uprog_space_new("bench-16M");
        if (!vs || !map_data(vs, V_BIG_PAGES)) {
            failed = true;
            if (vs)
                vm_space_destroy(vs);
            break;
        }
        touch(vs, V_DATA, V_BIG_PAGES);
        vm_space_destroy(vs);
        s[r] = vtsc() - t0;
    }
    row("v-space-16M", s, V_BIG_RUNS);

    struct vm_space *vs = space_warm("bench-fork");
    if (vs && map_data(vs, V_BIG_PAGES))
        touch(vs, V_DATA, V_BIG_PAGES);
    for (unsigned r = 0; vs && r < V_BIG_RUNS && !failed; r++) {
        struct vm_space *child;
        uint64_t t0 = vtsc();
        int err = vm_fork(vs, "bench-fork-child", &child);
        uint64_t t1 = vtsc();
        if (err) {
            failed = true;
            break;
        }
        vm_space_destroy(child);
        uint64_t t2 = vtsc();
        fork[r] = t1 - t0;
        forkfree[r] = t2 - t1;
    }
    if (vs)
        vm_space_destroy(vs);
    bool f = failed;
    row("v-fork-16M", fork, V_BIG_RUNS);
    failed = f;
    row("v-forkfree-16M", forkfree, V_BIG_RUNS);
}

/* Runs the vm rows (kbench_run calls it); every space it makes is destroyed
 * again. */
void kbench_vm(void)
{
    failed = false;
    zero_faults();
    cow_faults();
    whole_spaces();
}
