/* In-kernel tests of the protections: each one performs the forbidden thing
 * and checks that the CPU or the kernel stops it (docs/security.md). */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/exceptions.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/mmu_ops.h"
#include "lib/backtrace.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/stack_protector.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mapper.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"
#include "test/ktest.h"
#include "test/ktest_catch.h"

extern char __text_start[], __text_end[], __rodata_start[];

/* ---- the panic catcher the misuse tests rely on ---- */
static int panic_depth_reached;

__attribute__((noinline)) static void panic_deep(void *arg)
{
    int depth = (int)(uintptr_t)arg;
    panic_depth_reached = depth;
    if (depth < 5)
        panic_deep((void *)(uintptr_t)(depth + 1));
    else if (depth == 5)
        panic("deliberate panic at depth %d", depth);
    __asm__ volatile("" ::: "memory"); /* no tail call */
}

__attribute__((noinline)) static void no_panic(void *arg) { (void)arg; }

KTEST(protect_panic_catcher_contract)
{
    volatile uint64_t sentinel = 0xfeedfacecafebeefULL;
    uint64_t if_before = read_rflags() & RFLAGS_IF;
    KT_EXPECT(!ktest_expect_panic(no_panic, NULL, NULL), "a function that returns was reported as a panic");
    KT_ASSERT(ktest_expect_panic(panic_deep, (void *)1, "deliberate panic at depth 5"),
              "message: %s", ktest_last_panic());
    KT_EXPECT(strstr(ktest_last_panic(), "test_protect.c:"), "no file:line in '%s'", ktest_last_panic());
    KT_EXPECT(panic_depth_reached == 5);
    KT_EXPECT(!ktest_expect_panic(panic_deep, (void *)1, "some other text"), "want text not checked");
    KT_EXPECT(sentinel == 0xfeedfacecafebeefULL);
    KT_EXPECT((read_rflags() & RFLAGS_IF) == if_before, "interrupt flag not restored");
}

/* ---- W^X, NX and the unmapped first page, over every kernel mapping ---- */
struct wx_census {
    uint64_t writable_exec;  /* leaves both writable and executable: must be 0 */
    uint64_t exec_outside;   /* executable leaves outside kernel text: must be 0 */
    uint64_t user;           /* leaves ring 3 may touch: must be 0 */
    uint64_t exec_bytes, leaves;
    vaddr_t first_bad;
};

static void wx_visit(void *ctx, const struct pagewalk_leaf *l)
{
    struct wx_census *c = ctx;
    c->leaves++;
    bool exec = !(l->flags & PAGE_NX), bad = false;
    if (exec && (l->flags & PAGE_WRITABLE))
        c->writable_exec++, bad = true;
    if (exec && (l->virt < (vaddr_t)__text_start || l->virt + l->size > (vaddr_t)__text_end))
        c->exec_outside++, bad = true;
    if (l->flags & PAGE_USER)
        c->user++, bad = true;
    if (exec)
        c->exec_bytes += l->size;
    if (bad && !c->first_bad) {
        c->first_bad = l->virt;
        kprintf("ktest: offending leaf %#llx -> %#llx size %#llx flags %#llx\n",
                (unsigned long long)l->virt, (unsigned long long)l->phys,
                (unsigned long long)l->size, (unsigned long long)l->flags);
    }
}

KTEST(protect_wx_every_kernel_page)
{
    struct wx_census c = {0};
    pagewalk_leaves(&kernel_as, wx_visit, &c);
    if (!arch_has_nx()) {
        /* every page is executable: only the ring-3 part can be checked */
        kprintf("ktest: (no NX on this CPU: W^X cannot hold; checking user access only)\n");
        KT_EXPECT(c.user == 0, "%llu user-accessible leaves", (unsigned long long)c.user);
        return;
    }
    KT_EXPECT(c.writable_exec == 0, "%llu writable+executable leaves, first at %#llx",
              (unsigned long long)c.writable_exec, (unsigned long long)c.first_bad);
    KT_EXPECT(c.exec_outside == 0, "%llu executable leaves outside kernel text, first at %#llx",
              (unsigned long long)c.exec_outside, (unsigned long long)c.first_bad);
    KT_EXPECT(c.user == 0, "%llu user-accessible leaves", (unsigned long long)c.user);
    /* the census saw the kernel: text is executable, and all of it */
    uint64_t text = ALIGN_UP((vaddr_t)__text_end, PAGE_SIZE) - (vaddr_t)__text_start;
    KT_EXPECT(c.exec_bytes == text, "executable bytes %llu, text %llu",
              (unsigned long long)c.exec_bytes, (unsigned long long)text);
    KT_EXPECT(c.leaves > 3, "only %llu leaves", (unsigned long long)c.leaves);
}

static void read_at(void *addr)
{
    uint64_t v;
    __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
}

static void write_at(void *addr)
{
    __asm__ volatile("movq $0x5a, (%0)" ::"r"(addr) : "memory");
}

/* Calls addr as a function (a RET byte has been placed there). */
static void call_at(void *addr)
{
    ((void (*)(void))addr)();
}

/* Expects fn(addr) to raise #PF at addr with exactly the error bits `want`
 * among present/write/user/fetch; names the case in a failure. */
static void expect_pf(const char *what, void (*fn)(void *), void *addr, uint64_t want)
{
    uint64_t cr2 = 0, err = 0;
    bool ok = ktest_expect_fault(fn, addr, EXC_PF, &cr2, &err);
    KT_EXPECT(ok, "%s at %p: no page fault (vector %lld)", what, addr,
              (long long)ktest_last_fault()->vector);
    if (!ok)
        return;
    KT_EXPECT(cr2 == (uint64_t)(uintptr_t)addr, "%s: CR2=%#llx, expected %p", what,
              (unsigned long long)cr2, addr);
    uint64_t mask = PF_ERR_PRESENT | PF_ERR_WRITE | PF_ERR_USER | PF_ERR_FETCH;
    KT_EXPECT((err & mask) == want, "%s: error code %#llx, expected %#llx", what,
              (unsigned long long)err, (unsigned long long)want);
}

KTEST(protect_null_page_unmapped)
{
    for (vaddr_t va = 0; va < KiB(64); va += PAGE_SIZE)
        KT_EXPECT(paging_translate(va) == PAGING_NO_MAPPING, "%#llx is mapped", (unsigned long long)va);
    expect_pf("read of NULL", read_at, NULL, 0);
    expect_pf("write near NULL", write_at, (void *)0x18, PF_ERR_WRITE);
    expect_pf("call through NULL", call_at, NULL, PF_ERR_FETCH);
}

static uint8_t data_code[64]; /* .bss */

KTEST(protect_nx_data_heap_stack_hhdm)
{
    if (!arch_has_nx()) {
        kprintf("ktest: (no NX on this CPU: nothing to test)\n");
        return;
    }
    const uint64_t exec_violation = PF_ERR_PRESENT | PF_ERR_FETCH;
    uint8_t stack_code[64];
    uint8_t *heap_code = kmalloc(64);
    KT_ASSERT(heap_code);
    paddr_t frame = frame_alloc();
    KT_ASSERT(frame);
    uint8_t *hhdm_code = PHYS2VIRT(frame);
    uint8_t *targets[] = {data_code, stack_code, heap_code, hhdm_code};
    const char *names[] = {".bss", "stack", "heap", "HHDM"};
    for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
        targets[i][0] = 0xc3; /* RET: would simply return if it ran */
        expect_pf(names[i], call_at, targets[i], exec_violation);
    }
    kfree(heap_code);
    frame_free(frame);
}

KTEST(protect_wp_text_and_rodata)
{
    static const char rodata_text[] = "read-only";
    KT_ASSERT(read_cr0() & CR0_WP, "CR0.WP is off");
    const uint64_t write_violation = PF_ERR_PRESENT | PF_ERR_WRITE;
    expect_pf("write to kernel text", write_at, (void *)(uintptr_t)ktest_run_all, write_violation);
    expect_pf("write to rodata", write_at, (void *)rodata_text, write_violation);
    KT_EXPECT(strcmp(rodata_text, "read-only") == 0);
    /* (the kernel's alias in the HHDM: paging_kernel_hhdm_alias_is_read_only) */
}

/* ---- guard pages below every stack the CPU may switch to ---- */
static void expect_guard(const char *what, uint64_t lo)
{
    KT_EXPECT(lo >= MAPPER_STACK_BASE && lo < MAPPER_STACK_END, "%s at %#llx is not a guarded stack",
              what, (unsigned long long)lo);
    KT_EXPECT(paging_translate(lo - PAGE_SIZE) == PAGING_NO_MAPPING, "%s: page below is mapped", what);
    KT_EXPECT(paging_translate(lo) != PAGING_NO_MAPPING, "%s: bottom page unmapped", what);
    expect_pf(what, write_at, (void *)(uintptr_t)(lo - 8), PF_ERR_WRITE);
}

KTEST(protect_guard_pages_below_ist_and_ring0_stacks)
{
    static const char *const names[IST_COUNT + 1] = {"", "IST1 (#DF) stack", "IST2 (NMI) stack",
                                                     "IST3 (#MC) stack"};
    for (unsigned ist = 1; ist <= IST_COUNT; ist++) {
        uint64_t lo, hi;
        KT_ASSERT(gdt_ist_range(ist, &lo, &hi));
        KT_EXPECT(hi - lo == IST_STACK_SIZE);
        expect_guard(names[ist], lo);
    }
    uint64_t rsp0 = gdt_kernel_stack();
    KT_ASSERT(rsp0, "TSS.RSP0 not set");
    /* the ring-0 entry stack: find its bottom (the first unmapped page below) */
    uint64_t lo = rsp0;
    while (paging_translate(lo - PAGE_SIZE) != PAGING_NO_MAPPING && rsp0 - lo < MiB(1))
        lo -= PAGE_SIZE;
    expect_guard("ring-0 entry stack", lo);
    /* and the stack this test runs on */
    uint64_t here = (uint64_t)(uintptr_t)__builtin_frame_address(0);
    lo = ALIGN_DOWN(here, PAGE_SIZE);
    while (paging_translate(lo - PAGE_SIZE) != PAGING_NO_MAPPING && here - lo < MiB(1))
        lo -= PAGE_SIZE;
    expect_guard("kernel stack", lo);
}

/* ---- SMEP, SMAP and UMIP, with a page ring 3 owns ---- */
#define USER_CODE_VA  0x0000000040000000ULL
#define USER_STACK_VA 0x0000000040001000ULL

struct user_pages {
    paddr_t code, stack;
};

/* Maps a user code page holding `code` and a user stack page below 1 GiB + 8 KiB. */
static bool user_pages_map(struct user_pages *u, const uint8_t *code, size_t len)
{
    u->code = frame_alloc_zeroed();
    u->stack = frame_alloc_zeroed();
    if (!u->code || !u->stack)
        return false;
    memcpy(PHYS2VIRT(u->code), code, len);
    return paging_map(u->code, USER_CODE_VA, PAGE_USER) == 0 &&
           paging_map(u->stack, USER_STACK_VA, PAGE_USER | PAGE_WRITABLE | PAGE_NX) == 0;
}

static void user_pages_unmap(struct user_pages *u)
{
    if (paging_translate(USER_CODE_VA) != PAGING_NO_MAPPING)
        paging_unmap(USER_CODE_VA);
    if (paging_translate(USER_STACK_VA) != PAGING_NO_MAPPING)
        paging_unmap(USER_STACK_VA);
    if (u->code)
        frame_free(u->code);
    if (u->stack)
        frame_free(u->stack);
}

static uint8_t user_read_byte;
static void read_byte_with_access(void *addr)
{
    user_access_begin();
    user_read_byte = *(volatile uint8_t *)addr;
    user_access_end();
}

KTEST(protect_smep_smap_user_pages)
{
    static const uint8_t ret_code[] = {0xc3};
    struct user_pages u = {0};
    uint64_t tables_before = paging_table_pages();
    KT_ASSERT(user_pages_map(&u, ret_code, sizeof(ret_code)), "cannot map the user pages");
    if (read_cr4() & CR4_SMEP)
        expect_pf("SMEP: kernel call into a user page", call_at, (void *)USER_CODE_VA,
                  PF_ERR_PRESENT | PF_ERR_FETCH);
    else
        kprintf("ktest: (no SMEP on this CPU)\n");
    if (cpu_smap_enabled()) {
        expect_pf("SMAP: kernel read of a user page", read_at, (void *)USER_CODE_VA, PF_ERR_PRESENT);
        expect_pf("SMAP: kernel write to a user page", write_at, (void *)USER_STACK_VA,
                  PF_ERR_PRESENT | PF_ERR_WRITE);
    } else {
        kprintf("ktest: (no SMAP on this CPU)\n");
    }
    /* inside a user-access window the same read works */
    user_read_byte = 0;
    KT_EXPECT(!ktest_expect_fault(read_byte_with_access, (void *)USER_CODE_VA, EXC_PF, NULL, NULL),
              "read inside user_access_begin/end faulted");
    KT_EXPECT(user_read_byte == 0xc3, "read %#x", user_read_byte);
    user_pages_unmap(&u);
    KT_EXPECT(paging_table_pages() == tables_before, "page tables %llu, before %llu",
              (unsigned long long)paging_table_pages(), (unsigned long long)tables_before);
}

KTEST(protect_umip_and_ring3)
{
    /* sgdt (%rsp); ud2 */
    static const uint8_t code[] = {0x0f, 0x01, 0x04, 0x24, 0x0f, 0x0b};
    struct user_pages u = {0};
    KT_ASSERT(user_pages_map(&u, code, sizeof(code)), "cannot map the user pages");
    uint64_t err = 99, user_rsp = USER_STACK_VA + PAGE_SIZE - 64;
    if (read_cr4() & CR4_UMIP) {
        KT_EXPECT(ktest_expect_user_fault(USER_CODE_VA, user_rsp, EXC_GP, &err),
                  "sgdt in ring 3: vector %lld, cs %#llx", (long long)ktest_last_fault()->vector,
                  (unsigned long long)ktest_last_fault()->cs);
        KT_EXPECT(err == 0, "error code %#llx", (unsigned long long)err);
        KT_EXPECT(ktest_last_fault()->rip == USER_CODE_VA, "RIP %#llx",
                  (unsigned long long)ktest_last_fault()->rip);
    } else {
        /* no UMIP: sgdt works in ring 3 and the ud2 after it ends the run */
        kprintf("ktest: (no UMIP on this CPU: checking the ring-3 round trip only)\n");
        KT_EXPECT(ktest_expect_user_fault(USER_CODE_VA, user_rsp, EXC_UD, &err), "vector %lld",
                  (long long)ktest_last_fault()->vector);
    }
    uint16_t ds;
    __asm__ volatile("movw %%ds, %0" : "=r"(ds));
    KT_EXPECT(ds == GDT_KERNEL_DATA, "DS=%#x after the round trip", ds);
    user_pages_unmap(&u);
}

KTEST(protect_ring3_cannot_touch_kernel_memory)
{
    /* movabs $target, %rax; movq (%rax), %rax; ud2 */
    uint8_t code[16] = {0x48, 0xb8};
    uint64_t target = (uint64_t)(uintptr_t)&data_code[8];
    memcpy(code + 2, &target, 8);
    memcpy(code + 10, (const uint8_t[]){0x48, 0x8b, 0x00, 0x0f, 0x0b}, 5);
    struct user_pages u = {0};
    KT_ASSERT(user_pages_map(&u, code, 15), "cannot map the user pages");
    uint64_t err = 0;
    KT_EXPECT(ktest_expect_user_fault(USER_CODE_VA, USER_STACK_VA + PAGE_SIZE - 64, EXC_PF, &err),
              "vector %lld", (long long)ktest_last_fault()->vector);
    KT_EXPECT((err & (PF_ERR_PRESENT | PF_ERR_USER | PF_ERR_WRITE)) == (PF_ERR_PRESENT | PF_ERR_USER),
              "error code %#llx", (unsigned long long)err);
    KT_EXPECT(ktest_last_fault()->cr2 == target, "CR2 %#llx", (unsigned long long)ktest_last_fault()->cr2);
    user_pages_unmap(&u);
}

/* ---- the stack protector ---- */
static int canary_offset = -1; /* where smash_own_canary found the canary, past its buffer */

/* Finds this frame's canary above its buffer and flips one byte of it, the
 * way an overflow would; returning then calls __stack_chk_fail. */
__attribute__((noinline)) static void smash_own_canary(void *arg)
{
    (void)arg;
    char buf[24];
    char *p = buf;
    __asm__ volatile("" : "+r"(p)); /* the compiler may not reason about p's bounds */
    memset(p, 'x', sizeof(buf));
    canary_offset = -1;
    for (int off = (int)sizeof(buf); off < (int)sizeof(buf) + 64; off++) {
        if (memcmp(p + off, &__stack_chk_guard, sizeof(__stack_chk_guard)) == 0) {
            canary_offset = off;
            p[off + 1] ^= 0x55; /* byte 0 is the zero byte; change the next one */
            break;
        }
    }
}

KTEST(protect_stack_canary)
{
    KT_EXPECT(__stack_chk_guard != 0 && (__stack_chk_guard & 0xff) == 0, "canary %#llx",
              (unsigned long long)__stack_chk_guard);
    KT_EXPECT(strcmp(stack_protector_source(), "built-in") != 0, "canary never seeded");
    KT_EXPECT(ktest_expect_panic(smash_own_canary, NULL, "stack smashing detected"),
              "no stack-protector panic (canary found at +%d): '%s'", canary_offset,
              ktest_last_panic());
    KT_EXPECT(canary_offset >= 24, "no canary above the buffer");
    KT_EXPECT(strstr(ktest_last_panic(), "smash_own_canary"), "panic does not name the function: '%s'",
              ktest_last_panic());
}
