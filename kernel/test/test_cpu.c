/* In-kernel tests of the CPU setup (GDT, IDT, IST stacks, protections, PAT),
 * the exception path and its fault catcher, symbols, backtraces and kprintf
 * formatting. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/exceptions.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/idt.h"
#include "arch/x86_64/mmu_ops.h"
#include "lib/backtrace.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "lib/symbols.h"
#include "test/ktest.h"
#include "test/ktest_catch.h"

struct descriptor_pointer {
    uint16_t limit;
    uint64_t base;
} PACKED;

/* ---- CPU state set up at boot ---- */
KTEST(cpu_gdt_and_tss_loaded)
{
    uint16_t cs, ss, tr;
    struct descriptor_pointer gdtr;
    __asm__ volatile("movw %%cs, %0; movw %%ss, %1; str %2; sgdt %3"
                     : "=r"(cs), "=r"(ss), "=r"(tr), "=m"(gdtr));
    KT_EXPECT(cs == GDT_KERNEL_CODE, "CS=%#x", cs);
    KT_EXPECT(ss == GDT_KERNEL_DATA, "SS=%#x", ss);
    KT_EXPECT(tr == GDT_TSS, "TR=%#x", tr);
    KT_EXPECT(gdtr.limit == 7 * 8 - 1, "GDT limit %u", gdtr.limit);
    KT_EXPECT(gdtr.base >= 0xffffffff80000000ULL, "GDT at %#llx", (unsigned long long)gdtr.base);
}

KTEST(cpu_idt_loaded)
{
    struct descriptor_pointer idtr;
    __asm__ volatile("sidt %0" : "=m"(idtr));
    KT_ASSERT(idtr.limit == IDT_VECTORS * sizeof(struct idt_gate) - 1, "IDT limit %u", idtr.limit);
    const struct idt_gate *idt = (const struct idt_gate *)(uintptr_t)idtr.base;
    KT_EXPECT(idt[EXC_DF].ist == IST_DOUBLE_FAULT);
    KT_EXPECT(idt[EXC_NMI].ist == IST_NMI);
    KT_EXPECT(idt[EXC_MC].ist == IST_MACHINE_CHECK);
    KT_EXPECT(idt[EXC_PF].ist == 0, "#PF on IST%u", idt[EXC_PF].ist);
    KT_EXPECT(idt[EXC_GP].ist == 0);
    for (unsigned v = 0; v < IDT_VECTORS; v++) {
        KT_ASSERT(idt[v].type_attr == 0x8E && idt[v].selector == GDT_KERNEL_CODE, "gate %u", v);
        uint64_t target = idt[v].offset_low | ((uint64_t)idt[v].offset_mid << 16) |
                          ((uint64_t)idt[v].offset_high << 32);
        KT_ASSERT(target >= 0xffffffff80000000ULL, "gate %u -> %#llx", v, (unsigned long long)target);
    }
}

/* The TSS the CPU uses, found from TR and the GDT as the CPU finds it. */
static const struct tss *cpu_tss(void)
{
    struct descriptor_pointer gdtr;
    uint16_t tr;
    __asm__ volatile("sgdt %0; str %1" : "=m"(gdtr), "=r"(tr));
    const uint64_t *desc = (const uint64_t *)(uintptr_t)(gdtr.base + (tr & ~7u));
    uint64_t base = ((desc[0] >> 16) & 0xffffff) | (((desc[0] >> 56) & 0xff) << 24) |
                    ((desc[1] & 0xffffffffULL) << 32);
    return (const struct tss *)(uintptr_t)base;
}

KTEST(cpu_ist_stacks_one_per_vector_and_disjoint)
{
    struct descriptor_pointer idtr;
    __asm__ volatile("sidt %0" : "=m"(idtr));
    const struct idt_gate *idt = (const struct idt_gate *)(uintptr_t)idtr.base;
    const struct tss *tss = cpu_tss();
    /* No IST slot serves two vectors: a second delivery on it would restart
     * at its top and overwrite the first frame. */
    int owner[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    for (unsigned v = 0; v < IDT_VECTORS; v++) {
        unsigned ist = idt[v].ist & 7;
        if (!ist)
            continue;
        KT_EXPECT(owner[ist] < 0, "IST%u serves vector %d and vector %u", ist, owner[ist], v);
        owner[ist] = (int)v;
    }
    /* NMI, #MC and #DF each have one, on stacks that are disjoint and guarded. */
    static const uint8_t vectors[] = {EXC_DF, EXC_NMI, EXC_MC};
    uint64_t lo[3], hi[3];
    for (unsigned i = 0; i < 3; i++) {
        unsigned ist = idt[vectors[i]].ist & 7;
        KT_ASSERT(ist >= 1 && ist <= IST_COUNT, "vector %u has IST%u", vectors[i], ist);
        hi[i] = tss->ist[ist - 1];
        uint64_t glo, ghi;
        KT_ASSERT(gdt_ist_range(ist, &glo, &ghi));
        KT_EXPECT(ghi == hi[i], "IST%u: TSS has top %#llx, gdt_ist_range %#llx", ist,
                  (unsigned long long)hi[i], (unsigned long long)ghi);
        lo[i] = hi[i] - IST_STACK_SIZE;
        KT_EXPECT(glo == lo[i] && (hi[i] & 15) == 0, "IST%u: [%#llx, %#llx)", ist,
                  (unsigned long long)glo, (unsigned long long)ghi);
        for (uint64_t p = lo[i]; p < hi[i]; p += PAGE_SIZE)
            KT_EXPECT(backtrace_readable(p), "IST%u page %#llx unmapped", ist, (unsigned long long)p);
        KT_EXPECT(!backtrace_readable(lo[i] - PAGE_SIZE), "IST%u: no guard page below %#llx", ist,
                  (unsigned long long)lo[i]);
    }
    for (unsigned i = 0; i < 3; i++)
        for (unsigned j = i + 1; j < 3; j++)
            KT_EXPECT(hi[i] <= lo[j] || hi[j] <= lo[i], "vectors %u and %u share stack [%#llx, %#llx)",
                      vectors[i], vectors[j], (unsigned long long)lo[i], (unsigned long long)hi[i]);
}

KTEST(cpu_protections_enabled)
{
    KT_EXPECT(read_cr0() & CR0_WP, "CR0.WP clear");
    if (arch_has_nx())
        KT_EXPECT(rdmsr(MSR_EFER) & EFER_NXE, "EFER.NXE clear on a CPU with NX");
    if (cpuid(0, 0).eax >= 7) {
        struct cpuid_regs r = cpuid(7, 0);
        if (r.ebx & CPUID_7_EBX_SMEP)
            KT_EXPECT(read_cr4() & CR4_SMEP, "SMEP available but off");
        if (r.ebx & CPUID_7_EBX_SMAP)
            KT_EXPECT((read_cr4() & CR4_SMAP) && cpu_smap_enabled(), "SMAP available but off");
        if (r.ecx & CPUID_7_ECX_UMIP)
            KT_EXPECT(read_cr4() & CR4_UMIP, "UMIP available but off");
    }
    KT_EXPECT(!!(read_cr4() & CR4_SMAP) == cpu_smap_enabled());
}

KTEST(cpu_pat_layout)
{
    arch_pat_init(); /* idempotent: the mapper calls it too */
    uint64_t pat = rdmsr(MSR_PAT);
    KT_EXPECT(pat == 0x0007010500070406ULL, "PAT=%#llx", (unsigned long long)pat);
}

KTEST(cpu_feature_queries)
{
    unsigned bits = arch_phys_addr_bits();
    KT_EXPECT(bits >= 32 && bits <= 52, "MAXPHYADDR %u", bits);
    uint64_t t0 = arch_rdtsc(), t1 = arch_rdtsc();
    KT_EXPECT(t1 > t0, "TSC %llu then %llu", (unsigned long long)t0, (unsigned long long)t1);
    KT_EXPECT((arch_read_cr3() & 0xfff) == 0);
}

/* ---- exceptions caught by ktest_expect_fault ---- */
static void read_at(void *addr)
{
    uint64_t v;
    __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
}

static void write_at(void *addr)
{
    __asm__ volatile("movq $0x5a, (%0)" ::"r"(addr) : "memory");
}

__attribute__((noinline)) static void do_ud2(void *arg) { (void)arg; __asm__ volatile("ud2"); }
__attribute__((noinline)) static void do_int3(void *arg) { (void)arg; __asm__ volatile("int3"); }
__attribute__((noinline)) static void do_nothing(void *arg) { (void)arg; }

__attribute__((noinline)) static void do_divide_by_zero(void *arg)
{
    (void)arg;
    __asm__ volatile("xorl %%edx, %%edx\n\t"
                     "movl $1, %%eax\n\t"
                     "xorl %%ecx, %%ecx\n\t"
                     "divl %%ecx" ::: "rax", "rcx", "rdx", "cc");
}

/* A canonical higher-half address that no page table maps. */
static uint64_t unmapped_address(void)
{
    static const uint64_t candidates[] = {0xffffff0000000000ULL, 0xfffffe8000000000ULL,
                                          0xffffc00000000000ULL, 0xffffffff7f000000ULL};
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++)
        if (!backtrace_readable(candidates[i]))
            return candidates[i];
    return 0;
}

KTEST(cpu_fault_gp_noncanonical)
{
    uint64_t err = 99;
    bool ok = ktest_expect_fault(read_at, (void *)0x0000800000000000ULL, EXC_GP, NULL, &err);
    KT_EXPECT(ok, "got vector %lld", (long long)ktest_last_fault()->vector);
    KT_EXPECT(err == 0, "error code %#llx", (unsigned long long)err);
}

KTEST(cpu_fault_pf_read_not_present)
{
    uint64_t addr = unmapped_address();
    KT_ASSERT(addr, "every candidate address is mapped");
    uint64_t cr2 = 0, err = 0;
    bool ok = ktest_expect_fault(read_at, (void *)addr, EXC_PF, &cr2, &err);
    KT_ASSERT(ok, "got vector %lld", (long long)ktest_last_fault()->vector);
    KT_EXPECT(cr2 == addr, "CR2=%#llx, expected %#llx", (unsigned long long)cr2, (unsigned long long)addr);
    KT_EXPECT(!(err & (PF_ERR_PRESENT | PF_ERR_WRITE | PF_ERR_USER | PF_ERR_FETCH)), "error %#llx",
              (unsigned long long)err);
}

KTEST(cpu_fault_pf_write_not_present)
{
    uint64_t addr = unmapped_address() + 0x18;
    uint64_t cr2 = 0, err = 0;
    KT_ASSERT(ktest_expect_fault(write_at, (void *)addr, EXC_PF, &cr2, &err));
    KT_EXPECT(cr2 == addr, "CR2=%#llx", (unsigned long long)cr2);
    KT_EXPECT((err & (PF_ERR_PRESENT | PF_ERR_WRITE | PF_ERR_USER)) == PF_ERR_WRITE, "error %#llx",
              (unsigned long long)err);
}

KTEST(cpu_fault_pf_and_gp_run_on_the_faulting_stack)
{
    /* Neither #PF nor #GP has an IST: each frame lands just below this one. */
    uint64_t here = (uint64_t)(uintptr_t)__builtin_frame_address(0);
    KT_ASSERT(ktest_expect_fault(read_at, (void *)unmapped_address(), EXC_PF, NULL, NULL));
    uint64_t frame = ktest_last_fault()->frame;
    KT_EXPECT(frame < here && here - frame < KiB(4), "#PF frame %#llx, test frame %#llx",
              (unsigned long long)frame, (unsigned long long)here);
    KT_ASSERT(ktest_expect_fault(read_at, (void *)0x8000000000000000ULL, EXC_GP, NULL, NULL));
    frame = ktest_last_fault()->frame;
    KT_EXPECT(frame < here && here - frame < KiB(4), "#GP frame %#llx, test frame %#llx",
              (unsigned long long)frame, (unsigned long long)here);
}

/* ---- nested exceptions: the inner one must not overwrite the outer frame ---- */
/* pf_probe(addr): one load from addr. The #PF handler below resumes a fault
 * of its load at pf_probe_resume, so the probe simply returns. */
extern const char pf_probe_load[], pf_probe_resume[];
void pf_probe(const void *addr);
__asm__(".pushsection .text\n"
        ".type pf_probe, @function\n"
        "pf_probe:\n"
        "pf_probe_load:\n"
        "    movq (%rdi), %rax\n"
        "pf_probe_resume:\n"
        "    ret\n"
        ".size pf_probe, . - pf_probe\n"
        ".popsection");

/* Everything the nested handlers record is static: on a shared IST stack the
 * inner handler's frames land on the outer one's, locals included. */
static struct interrupt_frame nest_outer_copy;
static volatile uint64_t nest_outer_frame, nest_inner_frame, nest_inner_vector, nest_inner_addr;
static volatile int nest_depth;

static void nest_reset(void)
{
    nest_outer_frame = nest_inner_frame = nest_inner_addr = 0;
    nest_inner_vector = UINT64_MAX;
    nest_depth = 0;
}

/* Called by the outer handler after the inner exception has come and gone. */
static void nest_check_outer(const struct interrupt_frame *f, const char *outer, const char *inner)
{
    if (memcmp(f, &nest_outer_copy, sizeof(*f)) != 0)
        panic("%s frame at %p overwritten by the nested %s (frame at %#llx): vector %llu RIP %#llx "
              "RSP %#llx, was vector %llu RIP %#llx RSP %#llx",
              outer, (const void *)f, inner, (unsigned long long)nest_inner_frame,
              (unsigned long long)f->vector, (unsigned long long)f->rip, (unsigned long long)f->rsp,
              (unsigned long long)nest_outer_copy.vector, (unsigned long long)nest_outer_copy.rip,
              (unsigned long long)nest_outer_copy.rsp);
}

static void nest_record_inner(struct interrupt_frame *f)
{
    nest_inner_frame = (uint64_t)(uintptr_t)f;
    nest_inner_vector = f->vector;
}

/* #MC handler: raises an NMI (int $2 goes through the NMI gate, IST and
 * all) while it runs, then checks its own frame. */
static void nest_mc_outer(struct interrupt_frame *f)
{
    nest_outer_frame = (uint64_t)(uintptr_t)f;
    nest_outer_copy = *f;
    __asm__ volatile("int $2" ::: "memory");
    nest_check_outer(f, "#MC", "NMI");
}

static void raise_mc(void *arg)
{
    (void)arg;
    __asm__ volatile("int $18" ::: "memory");
}

KTEST(cpu_nmi_inside_machine_check_keeps_its_frame)
{
    nest_reset();
    idt_set_handler(EXC_MC, nest_mc_outer);
    idt_set_handler(EXC_NMI, nest_record_inner);
    bool overwritten = ktest_expect_panic(raise_mc, NULL, NULL);
    idt_set_handler(EXC_NMI, NULL);
    idt_set_handler(EXC_MC, NULL);
    KT_EXPECT(!overwritten, "%s", ktest_last_panic());
    KT_ASSERT(nest_inner_vector == EXC_NMI, "the NMI handler saw vector %lld", (long long)nest_inner_vector);
    uint64_t mc_lo, mc_hi, nmi_lo, nmi_hi;
    KT_ASSERT(gdt_ist_range(IST_MACHINE_CHECK, &mc_lo, &mc_hi) && gdt_ist_range(IST_NMI, &nmi_lo, &nmi_hi));
    KT_EXPECT(nest_outer_frame >= mc_lo && nest_outer_frame < mc_hi, "#MC frame %#llx not on its IST",
              (unsigned long long)nest_outer_frame);
    KT_EXPECT(nest_inner_frame >= nmi_lo && nest_inner_frame < nmi_hi, "NMI frame %#llx not on its IST",
              (unsigned long long)nest_inner_frame);
}

/* #PF handler for pf_probe faults: the first one probes a second unmapped
 * address from inside the handler, the nested one only records itself. Any
 * other #PF gets the default handling. */
static void nest_pf_handler(struct interrupt_frame *f)
{
    if (f->rip != (uint64_t)(uintptr_t)pf_probe_load) {
        exception_handle(f);
        return;
    }
    if (++nest_depth == 1) {
        nest_outer_frame = (uint64_t)(uintptr_t)f;
        nest_outer_copy = *f;
        pf_probe((const void *)(uintptr_t)nest_inner_addr);
        nest_check_outer(f, "outer #PF", "#PF");
    } else {
        nest_record_inner(f);
    }
    f->rip = (uint64_t)(uintptr_t)pf_probe_resume;
    nest_depth--;
}

static void probe_unmapped(void *addr)
{
    pf_probe(addr);
}

KTEST(cpu_pf_inside_pf_handler_keeps_outer_frame)
{
    uint64_t addr = unmapped_address();
    KT_ASSERT(addr, "every candidate address is mapped");
    nest_reset();
    nest_inner_addr = addr + 0x40;
    idt_set_handler(EXC_PF, nest_pf_handler);
    bool overwritten = ktest_expect_panic(probe_unmapped, (void *)(uintptr_t)addr, NULL);
    idt_set_handler(EXC_PF, NULL);
    KT_EXPECT(!overwritten, "%s", ktest_last_panic());
    KT_EXPECT(nest_inner_vector == EXC_PF, "the nested handler saw vector %lld", (long long)nest_inner_vector);
    /* the nested frame sits below the outer one, on the same stack */
    KT_EXPECT(nest_inner_frame && nest_inner_frame < nest_outer_frame &&
                  nest_outer_frame - nest_inner_frame < KiB(4),
              "outer frame %#llx, nested frame %#llx", (unsigned long long)nest_outer_frame,
              (unsigned long long)nest_inner_frame);
    /* and the probe resumed normally afterwards */
    KT_EXPECT(nest_depth == 0, "depth %d", nest_depth);
}

/* Recurses until the stack runs into the unmapped page below it. */
static uint64_t overflow_floor;
__attribute__((noinline)) static void overflow_stack(void *arg)
{
    volatile uint8_t pad[256];
    pad[0] = 1;
    if ((uint64_t)(uintptr_t)pad > overflow_floor)
        overflow_stack(arg);
    pad[255] = 2; /* work after the call: no tail call, every level keeps its frame */
}

KTEST(cpu_stack_guard_hit_is_caught)
{
    /* Find the guard: the first unmapped page below this stack (within 1 MiB). */
    uint64_t rsp = (uint64_t)(uintptr_t)__builtin_frame_address(0);
    uint64_t page = ALIGN_DOWN(rsp, PAGE_SIZE), guard = 0;
    for (uint64_t p = page - PAGE_SIZE; p + MiB(1) > page; p -= PAGE_SIZE) {
        if (!backtrace_readable(p)) {
            guard = p;
            break;
        }
    }
    if (!guard) {
        kprintf("ktest: (this stack has no guard page within 1 MiB: nothing to test)\n");
        return;
    }
    overflow_floor = guard - PAGE_SIZE; /* never reached: the guard faults first */
    /* #PF has no IST: the CPU cannot push the #PF frame into the guard page
     * either, and the #PF becomes a #DF, on the #DF's own stack, which names
     * the overflow before the catch. */
    uint64_t cr2 = 0, err = 99, lo, hi;
    ktest_capture_start();
    bool caught = ktest_expect_fault(overflow_stack, NULL, EXC_DF, &cr2, &err);
    ktest_capture_stop();
    KT_ASSERT(caught, "got vector %lld", (long long)ktest_last_fault()->vector);
    KT_EXPECT(cr2 >= guard && cr2 < guard + PAGE_SIZE, "CR2=%#llx, guard page %#llx",
              (unsigned long long)cr2, (unsigned long long)guard);
    KT_EXPECT(err == 0, "error %#llx", (unsigned long long)err);
    KT_ASSERT(gdt_ist_range(IST_DOUBLE_FAULT, &lo, &hi));
    KT_EXPECT(ktest_last_fault()->frame >= lo && ktest_last_fault()->frame < hi, "#DF frame %#llx not on IST1",
              (unsigned long long)ktest_last_fault()->frame);
    char want[64];
    ksnprintf(want, sizeof(want), "guard page at 0x%016llx", (unsigned long long)guard);
    KT_EXPECT(strstr(ktest_captured(), "kernel stack overflow") && strstr(ktest_captured(), want),
              "log: %s", ktest_captured());
    /* the diagnosis: a fault in the guard near RSP, nothing else */
    KT_EXPECT(exception_stack_guard_hit(guard + PAGE_SIZE, guard + PAGE_SIZE - 8) == guard);
    KT_EXPECT(exception_stack_guard_hit(guard + 16, guard + 8) == guard);
    KT_EXPECT(exception_stack_guard_hit(rsp + MiB(1), guard + 8) == 0, "RSP far away");
    KT_EXPECT(exception_stack_guard_hit(guard + PAGE_SIZE, guard + PAGE_SIZE) == 0, "a mapped page");
    KT_EXPECT(exception_stack_guard_hit(unmapped_address(), unmapped_address()) == 0, "not a stack");
}

KTEST(cpu_fault_ud)
{
    KT_EXPECT(ktest_expect_fault(do_ud2, NULL, EXC_UD, NULL, NULL));
    uint64_t off;
    const char *name = symbols_lookup(ktest_last_fault()->rip, &off);
    KT_EXPECT(name && strcmp(name, "do_ud2") == 0, "fault RIP in %s", name ? name : "?");
}

KTEST(cpu_fault_divide_error)
{
    KT_EXPECT(ktest_expect_fault(do_divide_by_zero, NULL, EXC_DE, NULL, NULL), "got vector %lld",
              (long long)ktest_last_fault()->vector);
}

KTEST(cpu_breakpoint)
{
    /* Caught: #BP is a trap, reported with RIP after the int3. */
    KT_EXPECT(ktest_expect_fault(do_int3, NULL, EXC_BP, NULL, NULL));
    /* Not caught: logged, and execution continues after the int3. */
    unsigned long before = exception_breakpoint_count();
    ktest_capture_start();
    do_int3(NULL);
    ktest_capture_stop();
    KT_EXPECT(exception_breakpoint_count() == before + 1);
    KT_EXPECT(strstr(ktest_captured(), "breakpoint") && strstr(ktest_captured(), "do_int3"), "log: %s", ktest_captured());
}

KTEST(cpu_fault_catcher_contract)
{
    /* no fault: false, and nothing recorded */
    KT_EXPECT(!ktest_expect_fault(do_nothing, NULL, EXC_PF, NULL, NULL));
    KT_EXPECT(ktest_last_fault()->vector == UINT64_MAX);
    /* a different fault than expected: caught, but false */
    KT_EXPECT(!ktest_expect_fault(do_ud2, NULL, EXC_PF, NULL, NULL));
    KT_EXPECT(ktest_last_fault()->vector == EXC_UD);
    /* locals and callee-saved state survive many catches in a row */
    volatile uint64_t sentinel = 0x1234567890abcdefULL;
    int caught = 0;
    for (int i = 0; i < 50; i++)
        caught += ktest_expect_fault(i % 2 ? do_ud2 : do_divide_by_zero, NULL, i % 2 ? EXC_UD : EXC_DE,
                                     NULL, NULL);
    KT_EXPECT(caught == 50, "caught %d of 50", caught);
    KT_EXPECT(sentinel == 0x1234567890abcdefULL);
}

/* ---- interrupt vectors beyond the exceptions ---- */
static volatile uint64_t seen_vector;
static void record_vector(struct interrupt_frame *f) { seen_vector = f->vector; }

KTEST(cpu_interrupt_handlers)
{
    ktest_capture_start();
    __asm__ volatile("int $201");
    ktest_capture_stop();
    KT_EXPECT(strstr(ktest_captured(), "unexpected interrupt 201"), "log: %s", ktest_captured());

    seen_vector = 0;
    idt_set_handler(200, record_vector);
    __asm__ volatile("int $200");
    idt_set_handler(200, NULL);
    KT_EXPECT(seen_vector == 200, "handler saw %llu", (unsigned long long)seen_vector);
    KT_EXPECT(strcmp(exception_name(EXC_PF), "#PF page fault") == 0);
}

/* ---- symbols and backtraces ---- */
KTEST(lib_symbols_resolve_kernel_functions)
{
    KT_ASSERT(symbols_count() > 0, "no symbols loaded");
    uint64_t off = 1;
    const char *name = symbols_lookup((uint64_t)(uintptr_t)ktest_run_all, &off);
    KT_EXPECT(name && strcmp(name, "ktest_run_all") == 0, "got %s", name ? name : "NULL");
    KT_EXPECT(off == 0);
    name = symbols_lookup((uint64_t)(uintptr_t)kprintf + 5, &off);
    KT_EXPECT(name && strcmp(name, "kprintf") == 0 && off == 5);
    uint64_t addr = 0;
    KT_EXPECT(symbols_find("idt_init", &addr) && addr == (uint64_t)(uintptr_t)idt_init);
    KT_EXPECT(symbols_lookup(0x1000, NULL) == NULL);
}

static size_t collected;
static uint64_t trace[BACKTRACE_MAX_FRAMES];

__attribute__((noinline)) static void bt_level2(void)
{
    collected = backtrace_collect((uint64_t)(uintptr_t)__builtin_frame_address(0), trace,
                                  BACKTRACE_MAX_FRAMES);
    __asm__ volatile("" ::: "memory"); /* keep the call above from becoming a tail call */
}

__attribute__((noinline)) static void bt_level1(void)
{
    bt_level2();
    __asm__ volatile("" ::: "memory");
}

KTEST(lib_backtrace_walks_frames)
{
    bt_level1();
    KT_ASSERT(collected >= 3, "only %zu frames", collected);
    const char *want[] = {"bt_level1", "ktest_fn_lib_backtrace_walks_frames", "ktest_run_all"};
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        const char *name = symbols_lookup(trace[i] - 1, NULL);
        KT_EXPECT(name && strcmp(name, want[i]) == 0, "frame %zu: %s, expected %s", i,
                  name ? name : "?", want[i]);
    }
    KT_EXPECT(backtrace_collect(0, trace, 4) == 0);
    KT_EXPECT(backtrace_collect(0x1000, trace, 4) == 0);
    KT_EXPECT(backtrace_collect(0xffffffff80000003ULL, trace, 4) == 0);
    KT_EXPECT(!backtrace_readable(0x0000800000000000ULL));
    KT_EXPECT(backtrace_readable((uint64_t)(uintptr_t)&collected));
}

/* ---- kprintf formatting ---- */
#define EXPECT_FMT(want, ...)                                                   \
    do {                                                                        \
        char buf_[96];                                                          \
        const char *want_ = (want); /* no '%' may reach KT_EXPECT's #cond */    \
        int n_ = ksnprintf(buf_, sizeof(buf_), __VA_ARGS__);                    \
        KT_EXPECT(strcmp(buf_, want_) == 0 && n_ == (int)strlen(want_),         \
                  "%s gave \"%s\" (%d)", #__VA_ARGS__, buf_, n_);               \
    } while (0)

KTEST(lib_ksnprintf_formats)
{
    EXPECT_FMT("-42 42", "%d %i", -42, 42);
    EXPECT_FMT("beef BEEF 0xbeef", "%x %X %#x", 0xbeefu, 0xbeefu, 0xbeefu);
    EXPECT_FMT("0xffffffff80200000", "%p", (void *)0xffffffff80200000ULL);
    EXPECT_FMT("hello", "%s", "hello");
    EXPECT_FMT("12345", "%zu", (size_t)12345);
    EXPECT_FMT("-9223372036854775808", "%lld", (long long)(-9223372036854775807LL - 1));
    EXPECT_FMT("18446744073709551615", "%llu", 18446744073709551615ULL);
    EXPECT_FMT("4294967295", "%u", 4294967295u);
    EXPECT_FMT("00042", "%05d", 42);
    EXPECT_FMT("-0042", "%05d", -42);
    EXPECT_FMT("ab   |", "%-5s|", "ab");
    EXPECT_FMT("   ab|", "%5s|", "ab");
    EXPECT_FMT("abc", "%.3s", "abcdef");
    EXPECT_FMT("42  |", "%-4d|", 42);
    EXPECT_FMT("17", "%o", 15u);
    EXPECT_FMT("x%y", "%c%%%c", 'x', 'y');
    EXPECT_FMT("0000beef", "%08llx", 0xbeefULL);
    const char *volatile null_string = NULL;
    EXPECT_FMT("(null)", "%s", null_string);

    char small[4];
    int full = ksnprintf(small, sizeof(small), "hello");
    KT_EXPECT(full == 5 && strcmp(small, "hel") == 0, "truncation gave \"%s\" (%d)", small, full);
    int measured = ksnprintf(NULL, 0, "%d", 12345);
    KT_EXPECT(measured == 5, "measured %d", measured);
}
