/* The `usertests` boot (usertests_boot.h). The program itself (user/
 * usertests.c) proves each guarantee from ring 3 and exits 0 when all held;
 * this side adds what only the kernel can see: after every process ended
 * and was reaped, no frame, page table, heap byte, space, process or
 * thread is left over. */
#include "test/usertests_boot.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/syscall.h"
#include "boot/boot_info.h"
#include "exec/exec.h"
#include "lib/printf.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/heap.h"
#include "proc/proc.h"
#include "proc/sched.h"
#include "uapi/abi.h"

/* One line per count that moved (cached objects and pages kept for later
 * were given back before each reading: they are not a leak); the number of
 * them. */
static int compare(const struct proc_counts *a, const struct proc_counts *b)
{
    static const char *const names[] = {"free frames", "page tables", "heap bytes",
                                        "spaces",      "processes",   "threads",
                                        "heap pages",  "kernel page tables", "usable frames"};
    _Static_assert(sizeof(names) / sizeof(names[0]) * sizeof(uint64_t) == sizeof(struct proc_counts),
                   "a name for every count");
    const uint64_t *x = &a->free_frames, *y = &b->free_frames;
    int moved = 0;
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (x[i] != y[i]) {
            kprintf("usertests: boot: %s %llu after the run, %llu before\n", names[i],
                    (unsigned long long)y[i], (unsigned long long)x[i]);
            moved++;
        }
    }
    return moved;
}

static void heap_touch(void *unused)
{
    (void)unused;
    kfree(kmalloc(16));
}

int usertests_boot(const char *which)
{
    /* frameref's directory is made on the first share ever and kept: make
     * it now, so that it is in the baseline */
    paddr_t f = frame_alloc();
    if (f) {
        frameref_share(f);
        frameref_put(f);
        frame_free(f);
    }
    /* and each CPU's heap caches, made on its first allocation */
    smp_run_on_all(heap_touch, NULL);
    /* so are the parsed images of every program (exec.h): parse them all
     * first, whatever the suite will run */
    for (size_t i = 0; i < boot_ctx.module_count; i++) {
        const struct elf_info *info;
        const struct vm_image *images;
        char why[96];
        exec_module_parse(&boot_ctx.modules[i], &info, &images, why, sizeof(why));
    }
    struct proc_counts before, after;
    proc_settled_counts(&before);
    uint64_t calls0 = syscall_count(), t0 = rdtsc();
    const char *argv[2] = {"usertests", which};
    int argc = which && which[0] ? 2 : 1;
    char why[96] = "";
    int pid, status = -1;
    int err = proc_spawn("usertests", argc, argv, true, &pid, why, sizeof(why));
    if (err) {
        kprintf("usertests: boot: FAILED: cannot start the usertests module (error %d) %s\n", err,
                why);
        return 1;
    }
    err = proc_wait_kernel(pid, &status);
    uint64_t calls = syscall_count() - calls0, cycles = rdtsc() - t0;
    proc_settled_counts(&after);
    int moved = compare(&before, &after);
    bool ok = !err && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !moved;
    struct sched_stats ss;
    sched_get_stats(&ss);
    kprintf("usertests: boot: %s: pid %d %s %d, %llu system calls, %llu Mcycles, %llu switches, "
            "%s\n",
            ok ? "PASSED" : "FAILED", pid, WIFEXITED(status) ? "exit" : "killed by signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), (unsigned long long)calls,
            (unsigned long long)cycles / 1000000, (unsigned long long)ss.switches,
            moved ? "counts NOT back to the baseline" : "every count back to the baseline");
    return ok ? 0 : 1;
}
