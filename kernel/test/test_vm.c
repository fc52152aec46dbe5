/* Self-tests of user address spaces (mm/vm.h) with ring-3 excursions: the
 * programs of test_vm_user.S run in a space built here, their page faults
 * go through the real handler (arch/x86_64/exceptions.c -> vm_fault), and
 * each test checks what the space, the frame allocator and the reference
 * counts hold afterwards, back to their baselines at the end. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/exceptions.h"
#include "arch/x86_64/extable.h"
#include "arch/x86_64/idt.h"
#include "arch/x86_64/mmu_ops.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/syscall.h"
#include "arch/x86_64/usercopy.h"
#include "lib/errno.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "mm/vm.h"
#include "test/ktest.h"
#include "test/ktest_catch.h"
#include "test/uprog.h"

/* Programs only these tests run (test_vm_user.S). */
extern const uint8_t uprog_gs[], uprog_gs_end[], uprog_syscall[], uprog_syscall_end[];

/* The byte at user address va of vs as the kernel sees it through the page
 * tables, or -1 when no page is mapped there. */
static int peek(struct vm_space *vs, vaddr_t va)
{
    uint8_t v;
    return uprog_peek(vs, va, &v, 1) ? v : -1;
}

#define TOUCH(b, n, s, v) ((struct uparams){(b), (n), (s), (v)})

/* ---- demand-zero --------------------------------------------------------------------- */

KTEST(vm_demand_zero_sparse)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("demand-zero");
    KT_ASSERT(vs, "no space");
    vaddr_t data = 0x40000000;
    KT_ASSERT(vm_map(vs, &data, MiB(64), VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == 0);
    uint64_t res0 = vs->resident, tables0 = vs->pt.table_pages;
    frame_drain_cpu_caches();
    uint64_t free0 = ktest_free_frames();
    /* one byte every MiB: 64 pages in 32 different 2 MiB regions */
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data, 64, MiB(1), 0x5a), NULL) == UPROG_EXIT,
              "the touching program did not exit normally");
    uint64_t prog_pages = 2; /* the program and the parameter page, filled on their first touch */
    KT_EXPECT(vs->resident == res0 + 64 + prog_pages, "resident %llu, expected %llu",
              (unsigned long long)vs->resident, (unsigned long long)(res0 + 64 + prog_pages));
    KT_EXPECT(vs->zero_faults >= 64, "zero faults %llu", (unsigned long long)vs->zero_faults);
    uint64_t new_tables = vs->pt.table_pages - tables0;
    /* one PT per touched 2 MiB region, one PD for the GiB (the program's
     * tables too: at most 1 PDPT, 1 PD, 1 PT more) */
    KT_EXPECT(new_tables >= 33 && new_tables <= 36, "%llu new page tables",
              (unsigned long long)new_tables);
    frame_drain_cpu_caches();
    uint64_t used = free0 - ktest_free_frames();
    KT_EXPECT(used == 64 + prog_pages + new_tables, "%llu frames used for 64 touched pages",
              (unsigned long long)used);
    /* the touched bytes hold the value, the page's others are zero, and an
     * untouched page is not mapped at all */
    KT_EXPECT(peek(vs, data + MiB(5)) == 0x5a && peek(vs, data + MiB(5) + 1) == 0);
    KT_EXPECT(peek(vs, data + MiB(5) + PAGE_SIZE) == -1, "an untouched page is mapped");
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- copy-on-write ------------------------------------------------------------------- */

KTEST(vm_cow_fork)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *parent = uprog_space_new("cow-parent"), *child = NULL;
    KT_ASSERT(parent, "no space");
    vaddr_t data = 0x40000000;
    KT_ASSERT(vm_map(parent, &data, 4 * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0,
                     VM_MAP_FIXED) == 0);
    KT_ASSERT(uprog_run(parent, uprog_touch, uprog_touch_end, TOUCH(data, 4, PAGE_SIZE, 0xaa), NULL) ==
              UPROG_EXIT);
    paddr_t pf[4];
    for (int i = 0; i < 4; i++)
        pf[i] = paging_translate_in(&parent->pt, data + i * PAGE_SIZE);
    uint64_t res = parent->resident;
    struct vm_stats s0;
    vm_get_stats(&s0);
    KT_ASSERT(vm_fork(parent, "cow-child", &child) == 0, "fork failed");
    struct vm_stats s1;
    vm_get_stats(&s1);
    /* every resident page is shared: the four data pages, the stack's and
     * the program's and parameter page */
    KT_EXPECT(s1.shared_frames == s0.shared_frames + res, "shared frames %llu -> %llu, resident %llu",
              (unsigned long long)s0.shared_frames, (unsigned long long)s1.shared_frames,
              (unsigned long long)res);
    KT_EXPECT(child->resident == res);
    for (int i = 0; i < 4; i++) {
        KT_EXPECT(paging_translate_in(&child->pt, data + i * PAGE_SIZE) == pf[i], "page %d not shared", i);
        KT_EXPECT(frameref_extra(pf[i]) == 1, "page %d: %u extra references", i, frameref_extra(pf[i]));
    }
    struct paging_mapping m;
    KT_EXPECT(paging_query(&parent->pt, data, &m) && !(m.flags & PAGE_WRITABLE),
              "the parent's shared page is writable");
    KT_EXPECT(vm_check(parent) && vm_check(child));

    /* the child writes page 0: its own copy; the parent's stays 0xaa */
    KT_EXPECT(uprog_run(child, uprog_touch, uprog_touch_end, TOUCH(data, 1, PAGE_SIZE, 0xbb), NULL) == UPROG_EXIT);
    KT_EXPECT(peek(child, data) == 0xbb && peek(parent, data) == 0xaa, "child %d parent %d",
              peek(child, data), peek(parent, data));
    KT_EXPECT(paging_translate_in(&child->pt, data) != pf[0], "the child wrote the shared frame");
    KT_EXPECT(child->cow_copies >= 1);
    KT_EXPECT(frameref_extra(pf[0]) == 0, "page 0 still shared after the child's copy");
    /* the parent writes page 1: a copy too (the child still shares it) */
    KT_EXPECT(uprog_run(parent, uprog_touch, uprog_touch_end, TOUCH(data + PAGE_SIZE, 1, PAGE_SIZE, 0xcc), NULL) ==
              UPROG_EXIT);
    KT_EXPECT(peek(parent, data + PAGE_SIZE) == 0xcc && peek(child, data + PAGE_SIZE) == 0xaa);
    KT_EXPECT(paging_translate_in(&child->pt, data + PAGE_SIZE) == pf[1],
              "the child's page 1 moved");
    /* parent's page 0: the child left it, so the write reuses the frame */
    uint64_t copies = parent->cow_copies, reuses = parent->cow_reuses;
    KT_EXPECT(uprog_run(parent, uprog_touch, uprog_touch_end, TOUCH(data, 1, PAGE_SIZE, 0xdd), NULL) == UPROG_EXIT);
    KT_EXPECT(parent->cow_reuses == reuses + 1 && parent->cow_copies == copies + 0,
              "reuses %llu copies %llu", (unsigned long long)parent->cow_reuses,
              (unsigned long long)parent->cow_copies);
    KT_EXPECT(paging_translate_in(&parent->pt, data) == pf[0], "the last sharer's write copied");
    KT_EXPECT(vm_check(parent) && vm_check(child));

    /* the child goes: the parent is the last owner of pages 2 and 3 */
    vm_space_destroy(child);
    KT_EXPECT(frameref_extra(pf[2]) == 0 && frameref_extra(pf[3]) == 0);
    KT_EXPECT(uprog_run(parent, uprog_touch, uprog_touch_end, TOUCH(data + 2 * PAGE_SIZE, 2, PAGE_SIZE, 0xee),
                  NULL) == UPROG_EXIT);
    KT_EXPECT(paging_translate_in(&parent->pt, data + 3 * PAGE_SIZE) == pf[3] &&
              peek(parent, data + 3 * PAGE_SIZE) == 0xee);
    KT_EXPECT(vm_check(parent));
    vm_space_destroy(parent);
    uprog_baseline_expect(&b);
}

/* ---- protection ---------------------------------------------------------------------- */

KTEST(vm_protect_takes_effect)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("protect");
    KT_ASSERT(vs, "no space");
    vaddr_t data = 0x40000000;
    KT_ASSERT(vm_map(vs, &data, 2 * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0,
                     VM_MAP_FIXED) == 0);
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data, 2, PAGE_SIZE, 0x11), NULL) == UPROG_EXIT);
    /* read-only: a write is refused and reported; the space and the kernel go on */
    KT_ASSERT(vm_protect(vs, data, PAGE_SIZE, VM_READ) == 0);
    uint64_t cr2 = 0;
    ktest_capture_start();
    enum uprog_end e = uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data + 8, 1, 1, 0x22), &cr2);
    ktest_capture_stop();
    KT_EXPECT(e == UPROG_KILLED && cr2 == data + 8, "run %d cr2 %#llx", e, (unsigned long long)cr2);
    const char *t = ktest_captured();
    KT_EXPECT(strstr(t, "page fault at 0x40000008 (write, protection)") &&
                  strstr(t, "region [0x40000000, 0x40001000) r--") &&
                  strstr(t, "access not allowed") && strstr(t, "rip 0x40"),
              "report: %s", t);
    KT_EXPECT(peek(vs, data) == 0x11 && peek(vs, data + 8) == 0, "the refused write changed the page");
    /* the other page kept its rights: the region was split */
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data + PAGE_SIZE, 1, 1, 0x33), NULL) == UPROG_EXIT);
    /* writable again: the data is still there and the write goes through */
    KT_ASSERT(vm_protect(vs, data, PAGE_SIZE, VM_READ | VM_WRITE) == 0);
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data + 8, 1, 1, 0x44), NULL) == UPROG_EXIT);
    KT_EXPECT(peek(vs, data) == 0x11 && peek(vs, data + 8) == 0x44);
    /* no rights: even a read is refused, and the contents stay */
    KT_ASSERT(vm_protect(vs, data, 2 * PAGE_SIZE, 0) == 0);
    KT_EXPECT(uprog_run(vs, uprog_read, uprog_read_end, TOUCH(data, 1, 1, 0), &cr2) == UPROG_KILLED);
    KT_ASSERT(vm_protect(vs, data, 2 * PAGE_SIZE, VM_READ) == 0);
    KT_EXPECT(uprog_run(vs, uprog_read, uprog_read_end, TOUCH(data, 2, PAGE_SIZE, 0), NULL) == UPROG_EXIT);
    KT_EXPECT(peek(vs, data + 8) == 0x44);
    /* a part of the range without a region: -ENOENT, nothing changed */
    KT_EXPECT(vm_protect(vs, data, 3 * PAGE_SIZE, VM_READ | VM_WRITE) == -ENOENT);
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data, 1, 1, 0x55), NULL) == UPROG_KILLED,
              "a refused protect changed the rights");
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* The code page for the execute tests: `ud2`, then zeros. */
static const uint8_t ud2_code[] = {0x0f, 0x0b};
static const struct vm_image ud2_image = {ud2_code, sizeof(ud2_code)};

KTEST(vm_nx_refused_until_protect_allows)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("nx");
    KT_ASSERT(vs, "no space");
    vaddr_t code = 0x40000000;
    KT_ASSERT(vm_map(vs, &code, PAGE_SIZE, VM_READ | VM_WRITE, VMR_IMAGE, &ud2_image, 0, 0,
                     VM_MAP_FIXED) == 0);
    uint64_t cr2 = 0;
    ktest_capture_start();
    enum uprog_end e = uprog_run(vs, uprog_exec, uprog_exec_end, TOUCH(code, 0, 0, 0), &cr2);
    ktest_capture_stop();
    KT_EXPECT(e == UPROG_KILLED && cr2 == code, "run %d cr2 %#llx", e, (unsigned long long)cr2);
    KT_EXPECT(strstr(ktest_captured(), "(execute,"), "report: %s", ktest_captured());
    KT_ASSERT(vm_protect(vs, code, PAGE_SIZE, VM_READ | VM_EXEC) == 0);
    KT_EXPECT(uprog_run(vs, uprog_exec, uprog_exec_end, TOUCH(code, 0, 0, 0), NULL) == UPROG_EXIT,
              "execute after protect(r-x) did not run the ud2 there");
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- unmap ----------------------------------------------------------------------------- */

KTEST(vm_munmap_unmaps)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("munmap");
    KT_ASSERT(vs, "no space");
    vaddr_t data = 0x40000000;
    KT_ASSERT(vm_map(vs, &data, 8 * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0,
                     VM_MAP_FIXED) == 0);
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data, 8, PAGE_SIZE, 1), NULL) == UPROG_EXIT);
    uint64_t res = vs->resident;
    frame_drain_cpu_caches();
    uint64_t free0 = ktest_free_frames();
    /* the middle: the region splits in two, the pages go back */
    KT_ASSERT(vm_unmap(vs, data + 2 * PAGE_SIZE, 3 * PAGE_SIZE) == 0);
    KT_EXPECT(vs->resident == res - 3);
    frame_drain_cpu_caches();
    KT_EXPECT(ktest_free_frames() == free0 + 3, "%llu frames back, expected 3",
              (unsigned long long)(ktest_free_frames() - free0));
    uint64_t cr2 = 0;
    ktest_capture_start();
    enum uprog_end e = uprog_run(vs, uprog_read, uprog_read_end, TOUCH(data + 3 * PAGE_SIZE, 1, 1, 0), &cr2);
    ktest_capture_stop();
    KT_EXPECT(e == UPROG_KILLED && cr2 == data + 3 * PAGE_SIZE);
    KT_EXPECT(strstr(ktest_captured(), "no region"), "report: %s", ktest_captured());
    /* both sides still work */
    KT_EXPECT(uprog_run(vs, uprog_read, uprog_read_end, TOUCH(data, 2, PAGE_SIZE, 0), NULL) == UPROG_EXIT);
    KT_EXPECT(uprog_run(vs, uprog_read, uprog_read_end, TOUCH(data + 5 * PAGE_SIZE, 3, PAGE_SIZE, 0), NULL) ==
              UPROG_EXIT);
    struct vm_region r;
    KT_EXPECT(vm_region_at(vs, data, &r) && r.end == data + 2 * PAGE_SIZE);
    KT_EXPECT(vm_region_at(vs, data + 5 * PAGE_SIZE, &r) && r.start == data + 5 * PAGE_SIZE);
    /* a fresh map there starts from zeros */
    vaddr_t again = data + 2 * PAGE_SIZE;
    KT_ASSERT(vm_map(vs, &again, 3 * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == 0);
    KT_EXPECT(uprog_run(vs, uprog_read, uprog_read_end, TOUCH(again, 3, PAGE_SIZE, 0), NULL) == UPROG_EXIT);
    KT_EXPECT(peek(vs, again) == 0);
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- stacks ---------------------------------------------------------------------------- */

KTEST(vm_stack_grows_to_guard_gap)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("stack");
    KT_ASSERT(vs, "no space");
    /* the stack: 4 pages below USTACK_TOP, floor 64 pages below it; the
     * program starts at USTACK_TOP - 64 and moves down a page per step */
    KT_EXPECT(uprog_run(vs, uprog_stack, uprog_stack_end, TOUCH(0, 40, 0, 0), NULL) == UPROG_EXIT,
              "a stack growing by 40 pages was refused");
    struct vm_region r;
    /* step i writes at USTACK_TOP - 64 - i pages: in page USTACK_TOP - (i + 1) pages */
    KT_EXPECT(vm_region_at(vs, USTACK_TOP - PAGE_SIZE, &r) && r.start == USTACK_TOP - 41 * PAGE_SIZE,
              "stack starts at %#llx", (unsigned long long)r.start);
    /* past the floor: into the guard gap, killed */
    uint64_t cr2 = 0;
    ktest_capture_start();
    enum uprog_end e = uprog_run(vs, uprog_stack, uprog_stack_end, TOUCH(0, 70, 0, 0), &cr2);
    ktest_capture_stop();
    /* steps 1..63 reach the floor; step 64 is the first page below it */
    KT_EXPECT(e == UPROG_KILLED && cr2 == USTACK_TOP - 64 - 64 * PAGE_SIZE, "run %d cr2 %#llx", e,
              (unsigned long long)cr2);
    KT_EXPECT(strstr(ktest_captured(), "stack guard gap"), "report: %s", ktest_captured());
    KT_EXPECT(vm_region_at(vs, USTACK_TOP - PAGE_SIZE, &r) && r.start == USTACK_TOP - 64 * PAGE_SIZE,
              "stack starts at %#llx after reaching its floor", (unsigned long long)r.start);
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);

    /* another region between the floor and the stack: growth keeps
     * VM_STACK_GAP free above it (pages from USTACK_TOP - 14 pages down are refused) */
    vs = uprog_space_new("stack-gap");
    KT_ASSERT(vs, "no space");
    vaddr_t below = USTACK_TOP - 31 * PAGE_SIZE;
    KT_ASSERT(vm_map(vs, &below, PAGE_SIZE, VM_READ, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == 0);
    KT_EXPECT(uprog_run(vs, uprog_stack, uprog_stack_end, TOUCH(0, 13, 0, 0), NULL) == UPROG_EXIT,
              "growth that keeps the gap was refused");
    KT_EXPECT(uprog_run(vs, uprog_stack, uprog_stack_end, TOUCH(0, 20, 0, 0), &cr2) == UPROG_KILLED &&
                  cr2 == USTACK_TOP - 64 - 14 * PAGE_SIZE,
              "the stack grew into the gap above another region (cr2 %#llx)", (unsigned long long)cr2);
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- the kernel half ------------------------------------------------------------------- */

KTEST(vm_user_cannot_touch_kernel)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("kernel-half");
    KT_ASSERT(vs, "no space");
    const vaddr_t targets[] = {(vaddr_t)&uprog_params, (vaddr_t)PHYS2VIRT(0x100000), (vaddr_t)ud2_code};
    for (unsigned i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        uint64_t cr2 = 0;
        ktest_capture_start();
        enum uprog_end e = uprog_run(vs, uprog_read, uprog_read_end, TOUCH(targets[i], 1, 1, 0), &cr2);
        ktest_capture_stop();
        KT_EXPECT(e == UPROG_KILLED && cr2 == targets[i], "ring 3 read kernel address %#llx",
                  (unsigned long long)targets[i]);
        char want[64];
        ksnprintf(want, sizeof(want), "page fault at 0x%llx (read, protection), no region",
                  (unsigned long long)targets[i]);
        KT_EXPECT(strstr(ktest_captured(), want), "report: %s", ktest_captured());
        KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(targets[i], 1, 1, 0), &cr2) == UPROG_KILLED,
                  "ring 3 wrote kernel address %#llx", (unsigned long long)targets[i]);
    }
    /* executing kernel code from ring 3: refused */
    KT_EXPECT(uprog_run(vs, uprog_exec, uprog_exec_end, TOUCH((vaddr_t)ud2_code, 0, 0, 0), NULL) == UPROG_KILLED);
    /* and the address space refuses to map there at all */
    vaddr_t k = PAGING_KERNEL_HALF;
    KT_EXPECT(vm_map(vs, &k, PAGE_SIZE, VM_READ, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == -EINVAL);
    paddr_t f = frame_alloc_zeroed();
    KT_ASSERT(f);
    KT_EXPECT(paging_map_in(&vs->pt, f, PAGING_KERNEL_HALF, PAGE_SIZE, PAGE_USER, CACHE_WB, 0) ==
              -PAGING_EINVAL);
    frame_free(f);
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- SMP: a space loaded on another CPU ------------------------------------------------ */

enum remote_op { REMOTE_LOAD, REMOTE_WRITE, REMOTE_UNLOAD };
struct remote {
    enum remote_op op;
    struct vm_space *vs;
    vaddr_t va;
    bool ok;
};

/* On the other CPU: load the space, write a user word through the kernel's
 * user-access window (a fault there is resolved by the space or fails the
 * write), or go back to kernel_as. */
static void remote_fn(void *arg)
{
    struct remote *r = arg;
    switch (r->op) {
    case REMOTE_LOAD:
        vm_activate(r->vs);
        r->ok = true;
        break;
    case REMOTE_WRITE:
        user_access_begin();
        r->ok = write_u64_nofault((volatile void *)r->va, 0x1234);
        user_access_end();
        break;
    case REMOTE_UNLOAD:
        vm_activate(NULL);
        r->ok = true;
        break;
    }
}

KTEST(vm_shootdown_where_loaded)
{
    if (smp_cpu_count() < 2) {
        kprintf("ktest: (one CPU: no other CPU to load the space on)\n");
        return;
    }
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("shootdown");
    KT_ASSERT(vs, "no space");
    vaddr_t data = 0x40000000;
    KT_ASSERT(vm_map(vs, &data, PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == 0);
    struct remote r = {.op = REMOTE_LOAD, .vs = vs, .va = data};
    smp_call_on(1, remote_fn, &r);
    KT_EXPECT(vs->pt.cpus == 2u, "CPUs with the space loaded: %#x", vs->pt.cpus);
    /* CPU 1 writes: the first touch is resolved from its kernel-mode fault,
     * and its TLB now holds a writable entry */
    r.op = REMOTE_WRITE;
    smp_call_on(1, remote_fn, &r);
    KT_EXPECT(r.ok && peek(vs, data) == 0x34, "CPU 1's write to a fresh page failed");
    uint64_t n0, p0, f0, n1, p1, f1;
    arch_tlb_stats(&n0, &p0, &f0);
    KT_ASSERT(vm_protect(vs, data, PAGE_SIZE, VM_READ) == 0);
    arch_tlb_stats(&n1, &p1, &f1);
    KT_EXPECT(n1 == n0 + 1, "%llu shootdowns for a protect of a space loaded on CPU 1",
              (unsigned long long)(n1 - n0));
    /* the stale writable entry is gone: CPU 1's write now faults */
    r.op = REMOTE_WRITE;
    smp_call_on(1, remote_fn, &r);
    KT_EXPECT(!r.ok, "CPU 1 wrote through a stale TLB entry after the protect");
    r.op = REMOTE_UNLOAD;
    smp_call_on(1, remote_fn, &r);
    KT_EXPECT(vs->pt.cpus == 0, "CPUs with the space loaded: %#x", vs->pt.cpus);
    /* loaded nowhere: a change sends no IPI */
    arch_tlb_stats(&n0, &p0, &f0);
    KT_ASSERT(vm_protect(vs, data, PAGE_SIZE, VM_READ | VM_WRITE) == 0);
    KT_ASSERT(vm_unmap(vs, data, PAGE_SIZE) == 0);
    arch_tlb_stats(&n1, &p1, &f1);
    KT_EXPECT(n1 == n0, "%llu shootdowns for a space loaded nowhere", (unsigned long long)(n1 - n0));
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- user copies against a space -------------------------------------------------------- */

KTEST(vm_user_copies)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("usercopy");
    KT_ASSERT(vs, "no space");
    vaddr_t rw = 0x40000000, ro = 0x40100000;
    KT_ASSERT(vm_map(vs, &rw, 2 * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == 0);
    static const char text[] = "hello from the kernel";
    static const struct vm_image text_image = {(const uint8_t *)text, sizeof(text)};
    KT_ASSERT(vm_map(vs, &ro, PAGE_SIZE, VM_READ, VMR_IMAGE, &text_image, 0, 0, VM_MAP_FIXED) == 0);
    vm_activate(vs);
    /* into untouched pages: the kernel's own faults fill them (demand-zero) */
    char buf[64] = {0}, scratch[16];
    uint64_t res = vs->resident;
    int to = copy_to_user(rw + PAGE_SIZE - 5, text, 10); /* across the page boundary */
    int from = copy_from_user(buf, rw + PAGE_SIZE - 5, 10);
    /* from an image page, and a string */
    char s[32], s5[5];
    long n = strncpy_from_user(s, ro, sizeof(s));
    long small = strncpy_from_user(s5, ro, sizeof(s5));
    /* refused: a read-only region, no region, the kernel half, past the top */
    int w_ro = copy_to_user(ro, text, 1);
    int r_none = copy_from_user(scratch, 0x50000000, 1);
    int r_kernel = copy_from_user(scratch, (uint64_t)(uintptr_t)&uprog_params, 8);
    int r_top = copy_from_user(scratch, VM_USER_MAX + PAGE_SIZE - 4, 8);
    /* half in a region, half not: -EFAULT */
    int r_half = copy_from_user(scratch, rw + 2 * PAGE_SIZE - 4, 8);
    vm_activate(NULL);
    KT_EXPECT(to == 0 && from == 0 && memcmp(buf, text, 10) == 0, "to %d from %d", to, from);
    /* the two pages copy_to_user wrote, and the image page strncpy_from_user read */
    KT_EXPECT(vs->resident == res + 3, "the copies filled %llu pages, expected 3",
              (unsigned long long)(vs->resident - res));
    KT_EXPECT(n == (long)strlen(text) && strcmp(s, text) == 0, "strncpy_from_user %ld '%s'", n, s);
    KT_EXPECT(small == -ERANGE, "a string longer than the room: %ld", small);
    KT_EXPECT(w_ro == -EFAULT, "write to a read-only region: %d", w_ro);
    KT_EXPECT(r_none == -EFAULT, "read where no region is: %d", r_none);
    KT_EXPECT(r_kernel == -EFAULT, "read of a kernel address: %d", r_kernel);
    KT_EXPECT(r_top == -EFAULT, "read past the user top: %d", r_top);
    KT_EXPECT(r_half == -EFAULT, "read running out of the region: %d", r_half);
    KT_EXPECT(peek(vs, ro) == 'h', "the refused write changed the read-only page");
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- out of memory ---------------------------------------------------------------------- */

KTEST(vm_out_of_memory)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("oom"), *child = NULL;
    KT_ASSERT(vs, "no space");
    vaddr_t data = 0x40000000;
    KT_ASSERT(vm_map(vs, &data, MiB(1), VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == 0);
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data, 4, PAGE_SIZE, 7), NULL) == UPROG_EXIT);
    uint64_t res = vs->resident;
    uint64_t taken = 0;
    paddr_t held = ktest_grab_frames(0, &taken); /* every free frame */
    KT_ASSERT(held, "could not take the free frames");
    /* a first touch with no frame left: the program is killed, nothing leaks */
    uint64_t cr2 = 0;
    ktest_capture_start();
    enum uprog_end e = uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data + MiB(1) / 2, 1, 1, 7), &cr2);
    ktest_capture_stop();
    KT_EXPECT(e == UPROG_KILLED && cr2 == data + MiB(1) / 2, "run %d cr2 %#llx", e, (unsigned long long)cr2);
    KT_EXPECT(strstr(ktest_captured(), "out of memory"), "report: %s", ktest_captured());
    /* a write to a shared page that needs a copy: refused too */
    ktest_release_frames(held);
    KT_ASSERT(vm_fork(vs, "oom-child", &child) == 0, "fork failed");
    held = ktest_grab_frames(0, &taken);
    KT_ASSERT(held, "could not take the free frames");
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data, 1, 1, 9), NULL) == UPROG_KILLED,
              "a copy-on-write copy without memory was not refused");
    KT_EXPECT(peek(vs, data) == 7 && peek(child, data) == 7, "a refused copy changed the data");
    /* a fork with no memory: -ENOMEM and the source as it was */
    struct vm_space *none = NULL;
    KT_EXPECT(vm_fork(vs, "oom-none", &none) == -ENOMEM && none == NULL);
    KT_EXPECT(vs->resident == res, "resident %llu, was %llu", (unsigned long long)vs->resident,
              (unsigned long long)res);
    ktest_release_frames(held);
    KT_EXPECT(vm_check(vs) && vm_check(child));
    KT_EXPECT(uprog_run(vs, uprog_touch, uprog_touch_end, TOUCH(data, 1, 1, 9), NULL) == UPROG_EXIT);
    KT_EXPECT(peek(vs, data) == 9 && peek(child, data) == 7);
    vm_space_destroy(child);
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- every CPU at once ------------------------------------------------------------------ */

#define STORM_SHARED 32 /* pages every CPU writes */
#define STORM_OWN    16 /* pages each CPU writes alone */

struct storm {
    struct vm_space *vs;
    vaddr_t shared, own;
    unsigned failures; /* atomic: copies that failed */
};

/* On each CPU: load the space and write into every shared page and into
 * its own ones, through the user-copy path: first touches (and, in a fork,
 * copy-on-write faults) race with the other CPUs' on the same pages. */
static void storm_fn(void *arg)
{
    struct storm *s = arg;
    unsigned me = cpu_index();
    vm_activate(s->vs);
    for (unsigned round = 0; round < 2; round++) {
        for (unsigned i = 0; i < STORM_SHARED; i++) {
            uint8_t v = (uint8_t)(me + 1);
            if (copy_to_user(s->shared + i * PAGE_SIZE + me * 8, &v, 1))
                __atomic_fetch_add(&s->failures, 1, __ATOMIC_RELAXED);
        }
        for (unsigned i = 0; i < STORM_OWN; i++) {
            uint8_t v = (uint8_t)(0x80 | me);
            if (copy_to_user(s->own + (me * STORM_OWN + i) * PAGE_SIZE, &v, 1))
                __atomic_fetch_add(&s->failures, 1, __ATOMIC_RELAXED);
        }
    }
    vm_activate(NULL);
}

KTEST(vm_faults_on_every_cpu_at_once)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    unsigned n = smp_cpu_count();
    struct vm_space *vs = uprog_space_new("storm"), *child = NULL;
    KT_ASSERT(vs, "no space");
    struct storm s = {.vs = vs, .shared = 0x40000000, .own = 0x50000000};
    KT_ASSERT(vm_map(vs, &s.shared, STORM_SHARED * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0,
                     VM_MAP_FIXED) == 0);
    KT_ASSERT(vm_map(vs, &s.own, CPU_MAX * STORM_OWN * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL,
                     0, 0, VM_MAP_FIXED) == 0);
    uint64_t res0 = vs->resident;
    smp_run_on_all(storm_fn, &s);
    KT_EXPECT(s.failures == 0, "%u copies failed", s.failures);
    /* each page filled once, whoever came first */
    KT_EXPECT(vs->resident == res0 + STORM_SHARED + n * STORM_OWN, "resident %llu, expected %llu",
              (unsigned long long)vs->resident,
              (unsigned long long)(res0 + STORM_SHARED + n * STORM_OWN));
    for (unsigned c = 0; c < n; c++)
        KT_EXPECT(peek(vs, s.shared + 5 * PAGE_SIZE + c * 8) == (int)(c + 1) &&
                      peek(vs, s.own + (c * STORM_OWN + 3) * PAGE_SIZE) == (int)(0x80 | c),
                  "CPU %u's bytes are missing", c);
    KT_EXPECT(vs->pt.cpus == 0, "CPUs still holding the space: %#x", vs->pt.cpus);
    KT_EXPECT(vm_check(vs));

    /* a fork, and every CPU writes into the child's shared pages at once:
     * copy-on-write faults race; each page is copied once */
    KT_ASSERT(vm_fork(vs, "storm-child", &child) == 0, "fork failed");
    s.vs = child;
    s.failures = 0;
    smp_run_on_all(storm_fn, &s);
    KT_EXPECT(s.failures == 0, "%u copies failed in the child", s.failures);
    KT_EXPECT(child->cow_copies + child->cow_reuses == STORM_SHARED + n * STORM_OWN,
              "copy-on-write faults %llu + %llu, expected %llu", (unsigned long long)child->cow_copies,
              (unsigned long long)child->cow_reuses, (unsigned long long)(STORM_SHARED + n * STORM_OWN));
    KT_EXPECT(peek(vs, s.shared) == 1 && peek(child, s.shared) == 1, "parent %d child %d",
              peek(vs, s.shared), peek(child, s.shared));
    KT_EXPECT(vm_check(vs) && vm_check(child));
    vm_space_destroy(child);
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- ring 3's GS ------------------------------------------------------------------------- */

KTEST(vm_user_gs_does_not_reach_the_kernel)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("gs");
    KT_ASSERT(vs, "no space");
    vaddr_t data = 0x40000000;
    KT_ASSERT(vm_map(vs, &data, PAGE_SIZE, VM_READ, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == 0);
    unsigned me = cpu_index();
    /* a page fault (resolved: first touch) and the ud2, both with GS base 0 */
    KT_EXPECT(uprog_run(vs, uprog_gs, uprog_gs_end, TOUCH(data, 0, 0, 0), NULL) == UPROG_EXIT,
              "the run with ring 3's GS did not end at its ud2");
    KT_EXPECT(cpu_index() == me && this_cpu()->self == this_cpu(), "the kernel's GS is wrong after the run");
    KT_EXPECT(vs->resident >= 3, "the first touch with ring 3's GS was not resolved");
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* ---- system calls ------------------------------------------------------------------------ */

/* The 64-bit word at user address va of vs, through its page tables. */
static uint64_t peek64(struct vm_space *vs, vaddr_t va)
{
    uint64_t v;
    return uprog_peek(vs, va, &v, sizeof(v)) ? v : ~0ULL;
}

struct cpu_run {
    struct vm_space *vs;
    vaddr_t out;
    enum uprog_end end;
    unsigned cpu;
};

static void run_syscall_on(void *arg)
{
    struct cpu_run *r = arg;
    r->cpu = cpu_index();
    r->end = uprog_run(r->vs, uprog_syscall, uprog_syscall_end,
                 TOUCH(r->out, 0x50000000, 0, (uint64_t)(uintptr_t)&uprog_params), NULL);
}

KTEST(vm_syscalls_from_ring3)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct vm_space *vs = uprog_space_new("syscall");
    KT_ASSERT(vs, "no space");
    vaddr_t out = 0x40000000;
    KT_ASSERT(vm_map(vs, &out, PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) == 0);
    uint64_t calls = syscall_count();
    ktest_capture_start();
    enum uprog_end e = uprog_run(vs, uprog_syscall, uprog_syscall_end,
                         TOUCH(out, 0x50000000, 0, (uint64_t)(uintptr_t)&uprog_params), NULL);
    ktest_capture_stop();
    KT_ASSERT(e == UPROG_EXIT, "the program did not reach its ud2 (%d)", e);
    KT_EXPECT(syscall_count() == calls + 5, "%llu system calls", (unsigned long long)(syscall_count() - calls));
    KT_EXPECT(strstr(ktest_captured(), "hello, ring 3"), "output: %s", ktest_captured());
    KT_EXPECT(peek64(vs, out + 0) == 13, "write returned %lld", (long long)peek64(vs, out));
    KT_EXPECT((int64_t)peek64(vs, out + 8) == -EFAULT, "write from an unmapped address: %lld",
              (long long)peek64(vs, out + 8));
    KT_EXPECT((int64_t)peek64(vs, out + 16) == -EFAULT, "write from a kernel address: %lld",
              (long long)peek64(vs, out + 16));
    KT_EXPECT((int64_t)peek64(vs, out + 24) == -ENOSYS, "unknown number: %lld",
              (long long)peek64(vs, out + 24));
    KT_EXPECT(peek64(vs, out + 32) == 0, "getpid: %lld", (long long)peek64(vs, out + 32));
    static const uint64_t kept[] = {0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666,
                                    0x7777, 0x8888, 0x9999, 0xaaaa, 0xbbbb};
    for (unsigned i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        KT_EXPECT(peek64(vs, out + 40 + 8 * i) == kept[i], "register %u: %#llx, was %#llx", i,
                  (unsigned long long)peek64(vs, out + 40 + 8 * i), (unsigned long long)kept[i]);
    KT_EXPECT(peek64(vs, out + 128) == USTACK_TOP - 64, "RSP after the calls %#llx",
              (unsigned long long)peek64(vs, out + 128));
    KT_EXPECT((peek64(vs, out + 136) & (RFLAGS_IF | RFLAGS_AC | RFLAGS_DF)) == 0,
              "RFLAGS after the calls %#llx (ring 3 started with IF, AC and DF clear)",
              (unsigned long long)peek64(vs, out + 136));
    /* the same on every other CPU (each has its own MSRs and entry stack) */
    for (unsigned c = 1; c < smp_cpu_count(); c++) {
        struct cpu_run cr = {.vs = vs, .out = out};
        smp_call_on(c, run_syscall_on, &cr);
        KT_EXPECT(cr.end == UPROG_EXIT && cr.cpu == c, "CPU %u: run %d on CPU %u", c, cr.end, cr.cpu);
        KT_EXPECT(peek64(vs, out + 0) == 13 && (int64_t)peek64(vs, out + 24) == -ENOSYS &&
                      peek64(vs, out + 40) == 0x1111,
                  "CPU %u: results %lld %lld %#llx", c, (long long)peek64(vs, out),
                  (long long)peek64(vs, out + 24), (unsigned long long)peek64(vs, out + 40));
    }
    KT_EXPECT(vm_check(vs));
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}
