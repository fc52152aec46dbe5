/* Ring-3 excursions in a user address space (see uprog.h). */
#include "test/uprog.h"

#include "arch/x86_64/exceptions.h"
#include "arch/x86_64/smp.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "proc/sched.h"
#include "test/ktest.h"
#include "test/ktest_catch.h"

struct uparams uprog_params;
static const struct vm_image param_image = {(const uint8_t *)&uprog_params, sizeof(uprog_params)};

/* One image per program, so that the program region's image says which
 * program a space has mapped (test_vm_user.S has four). */
#define UPROG_PROGRAMS 8 /* programs of test_vm_user.S, with room */
static struct vm_image prog_images[UPROG_PROGRAMS];

static const struct vm_image *prog_image(const uint8_t *prog, const uint8_t *end)
{
    for (unsigned i = 0; i < UPROG_PROGRAMS; i++) {
        if (prog_images[i].data == prog)
            return &prog_images[i];
        if (!prog_images[i].data) {
            prog_images[i] = (struct vm_image){prog, (uint64_t)(end - prog)};
            return &prog_images[i];
        }
    }
    return NULL;
}

struct vm_space *uprog_space_new(const char *name)
{
    struct vm_space *vs;
    if (vm_space_create(name, &vs))
        return NULL;
    vaddr_t a = UPARAM_VA, s = USTACK_TOP - USTACK_PAGES * PAGE_SIZE;
    if (vm_map(vs, &a, PAGE_SIZE, VM_READ, VMR_IMAGE, &param_image, 0, 0, VM_MAP_FIXED) ||
        vm_map(vs, &s, USTACK_PAGES * PAGE_SIZE, VM_READ | VM_WRITE, VMR_STACK, NULL, 0,
               USTACK_TOP - 64 * PAGE_SIZE, VM_MAP_FIXED)) {
        vm_space_destroy(vs);
        return NULL;
    }
    return vs;
}

enum uprog_end uprog_run(struct vm_space *vs, const uint8_t *prog, const uint8_t *end,
                         struct uparams p, uint64_t *cr2)
{
    uprog_params = p;
    const struct vm_image *img = prog_image(prog, end);
    struct vm_region r;
    vaddr_t a = UPROG_VA;
    if (!img)
        return UPROG_OTHER;
    if ((!vm_region_at(vs, UPROG_VA, &r) || r.image != img) &&
        vm_map(vs, &a, PAGE_SIZE, VM_READ | VM_EXEC, VMR_IMAGE, img, 0, 0, VM_MAP_FIXED))
        return UPROG_OTHER;
    paddr_t pp = paging_translate_in(&vs->pt, UPARAM_VA);
    if (pp != PAGING_NO_MAPPING) /* shared after a fork: every run writes its own anyway */
        memcpy(PHYS2VIRT(pp), &uprog_params, sizeof(uprog_params));
    vm_activate(vs);
    bool exited = ktest_expect_user_fault(UPROG_VA, USTACK_TOP - 64, EXC_UD, NULL);
    vm_activate(NULL);
    const struct ktest_fault_info *f = ktest_last_fault();
    if (cr2)
        *cr2 = f->cr2;
    if (exited)
        return UPROG_EXIT;
    return f->vector == EXC_PF && (f->cs & 3) == 3 ? UPROG_KILLED : UPROG_OTHER;
}

/* Makes this CPU's heap caches, which the heap makes on a CPU's first
 * allocation and keeps (smp_run_on_all work). */
static void heap_touch(void *unused)
{
    (void)unused;
    kfree(kmalloc(16));
}

void uprog_baseline_take(struct uprog_baseline *b)
{
    /* so are the CPUs' heap caches (a process may end on any CPU) */
    smp_run_on_all(heap_touch, NULL);
    /* frameref's directory is made on the first share ever and kept: make
     * sure it exists, so that it is in the baseline */
    paddr_t f = frame_alloc();
    if (f && frameref_share(f) && frameref_put(f))
        ktest_fail_at(__FILE__, __LINE__, "frameref_put", "a put after one share took the owner's reference");
    if (f)
        frame_free(f);
    thread_reap_settled(); /* an ended thread's stack and struct are not a leak */
    struct vm_stats s;
    vm_get_stats(&s);
    heap_trim(); /* pages the heap keeps for later are not a leak */
    frame_drain_cpu_caches();
    b->free_frames = ktest_free_frames();
    b->tables = paging_table_pages();
    b->shared = s.shared_frames;
    b->ref_bytes = s.ref_bytes;
    b->spaces = s.spaces;
}

void uprog_baseline_expect(const struct uprog_baseline *b)
{
    thread_reap_settled();
    struct vm_stats s;
    vm_get_stats(&s);
    heap_trim();
    frame_drain_cpu_caches();
    KT_EXPECT(ktest_free_frames() == b->free_frames, "free frames %llu, were %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)b->free_frames);
    KT_EXPECT(paging_table_pages() == b->tables, "page tables %llu, were %llu",
              (unsigned long long)paging_table_pages(), (unsigned long long)b->tables);
    KT_EXPECT(s.shared_frames == b->shared, "shared frames %llu, were %llu",
              (unsigned long long)s.shared_frames, (unsigned long long)b->shared);
    KT_EXPECT(s.ref_bytes == b->ref_bytes, "reference-count bytes %llu, were %llu",
              (unsigned long long)s.ref_bytes, (unsigned long long)b->ref_bytes);
    KT_EXPECT(s.spaces == b->spaces, "spaces %llu, were %llu", (unsigned long long)s.spaces,
              (unsigned long long)b->spaces);
}

bool uprog_peek(struct vm_space *vs, vaddr_t va, void *dst, uint64_t n)
{
    uint8_t *d = dst;
    while (n) {
        paddr_t pa = paging_translate_in(&vs->pt, va);
        if (pa == PAGING_NO_MAPPING)
            return false;
        uint64_t chunk = MIN(n, PAGE_SIZE - (va & (PAGE_SIZE - 1)));
        memcpy(d, PHYS2VIRT(pa), chunk);
        d += chunk;
        va += chunk;
        n -= chunk;
    }
    return true;
}
