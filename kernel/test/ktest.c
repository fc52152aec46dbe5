/* The in-kernel test runner and the fault catcher for tests that expect a
 * CPU exception. */
#include "test/ktest.h"

#include "arch/x86_64/gdt.h"
#include "lib/panic_hook.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "lib/ubsan.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "test/ktest_catch.h"

extern const struct ktest __ktests_start[], __ktests_end[];

/* Saved by ktest_catch.S; the offsets are fixed there. */
struct ktest_catch_ctx {
    uint64_t rbx, rbp, r12, r13, r14, r15;
    uint64_t rsp, rip, rflags;
};
_Static_assert(__builtin_offsetof(struct ktest_catch_ctx, rsp) == 48, "ktest_catch.S layout");
_Static_assert(__builtin_offsetof(struct ktest_catch_ctx, rip) == 56, "ktest_catch.S layout");
_Static_assert(__builtin_offsetof(struct ktest_catch_ctx, rflags) == 64, "ktest_catch.S layout");

int ktest_catch_save(struct ktest_catch_ctx *ctx) __attribute__((returns_twice));
NORETURN void ktest_catch_restore(const struct ktest_catch_ctx *ctx);
NORETURN void ktest_enter_user(uint64_t rip, uint64_t rsp, uint64_t cs, uint64_t ss);

static struct ktest_catch_ctx catch_ctx;
static bool catch_armed;
static bool catch_user; /* ring-3 faults may be caught too */
static struct ktest_fault_info last_fault = {.vector = UINT64_MAX};

static bool panic_armed;
static char panic_message[256];

static const struct ktest *current;
static bool current_failed;

bool ktest_catch_fault(struct interrupt_frame *f, uint64_t cr2)
{
    if (!__atomic_load_n(&catch_armed, __ATOMIC_SEQ_CST) || ((f->cs & 3) && !catch_user))
        return false;
    __atomic_store_n(&catch_armed, false, __ATOMIC_SEQ_CST);
    last_fault = (struct ktest_fault_info){
        .vector = f->vector,
        .error_code = f->error_code,
        .cr2 = cr2,
        .rip = f->rip,
        .cs = f->cs,
        .frame = (uint64_t)(uintptr_t)f,
    };
    /* iretq pops RIP, CS, RFLAGS, RSP and SS; with the callee-saved
     * registers restored too, it returns from ktest_catch_save again. */
    f->rbx = catch_ctx.rbx;
    f->rbp = catch_ctx.rbp;
    f->r12 = catch_ctx.r12;
    f->r13 = catch_ctx.r13;
    f->r14 = catch_ctx.r14;
    f->r15 = catch_ctx.r15;
    f->rsp = catch_ctx.rsp;
    f->rip = catch_ctx.rip;
    f->rflags = catch_ctx.rflags;
    f->cs = GDT_KERNEL_CODE;
    f->ss = GDT_KERNEL_DATA;
    f->rax = 1;
    return true;
}

const struct ktest_fault_info *ktest_last_fault(void)
{
    return &last_fault;
}

bool ktest_expect_fault(void (*fn)(void *), void *arg, int vector, uint64_t *cr2, uint64_t *err)
{
    last_fault = (struct ktest_fault_info){.vector = UINT64_MAX};
    if (ktest_catch_save(&catch_ctx) == 0) {
        __atomic_store_n(&catch_armed, true, __ATOMIC_SEQ_CST);
        fn(arg);
        __atomic_store_n(&catch_armed, false, __ATOMIC_SEQ_CST);
        return false; /* no fault at all */
    }
    /* Resumed here by ktest_catch_fault(). */
    if (cr2)
        *cr2 = last_fault.cr2;
    if (err)
        *err = last_fault.error_code;
    return last_fault.vector == (uint64_t)vector;
}

bool ktest_expect_user_fault(uint64_t rip, uint64_t rsp, int vector, uint64_t *err)
{
    last_fault = (struct ktest_fault_info){.vector = UINT64_MAX};
    if (ktest_catch_save(&catch_ctx) == 0) {
        catch_user = true;
        __atomic_store_n(&catch_armed, true, __ATOMIC_SEQ_CST);
        ktest_enter_user(rip, rsp, GDT_USER_CODE | 3, GDT_USER_DATA | 3);
    }
    /* Resumed here, in ring 0, by ktest_catch_fault(). The return to ring 3
     * nulled DS and ES (their DPL is 0); give them the kernel's selector back. */
    catch_user = false;
    __asm__ volatile("movw %w0, %%ds; movw %w0, %%es" ::"r"((uint64_t)GDT_KERNEL_DATA));
    if (err)
        *err = last_fault.error_code;
    return last_fault.vector == (uint64_t)vector && (last_fault.cs & 3) == 3;
}

void panic_catch(const char *file, int line, const char *fmt, va_list ap)
{
    if (!__atomic_exchange_n(&panic_armed, false, __ATOMIC_SEQ_CST))
        return;
    int n = ksnprintf(panic_message, sizeof(panic_message), "%s:%d: ", file, line);
    if (n > 0 && (size_t)n < sizeof(panic_message))
        kvsnprintf(panic_message + n, sizeof(panic_message) - (size_t)n, fmt, ap);
    ktest_catch_restore(&catch_ctx);
}

/* ktest_expect_panic, and with catch_faults ktest_expect_panic_not_fault: a
 * CPU exception is caught too and counts as a failure. */
static bool expect_panic(void (*fn)(void *), void *arg, const char *want, bool catch_faults)
{
    panic_message[0] = 0;
    if (catch_faults)
        last_fault = (struct ktest_fault_info){.vector = UINT64_MAX};
    if (ktest_catch_save(&catch_ctx) == 0) {
        __atomic_store_n(&panic_armed, true, __ATOMIC_SEQ_CST);
        if (catch_faults)
            __atomic_store_n(&catch_armed, true, __ATOMIC_SEQ_CST);
        fn(arg);
        __atomic_store_n(&catch_armed, false, __ATOMIC_SEQ_CST);
        __atomic_store_n(&panic_armed, false, __ATOMIC_SEQ_CST);
        return false; /* neither */
    }
    /* Resumed here by panic_catch() or ktest_catch_fault(), which disarmed
     * itself; disarm the other one. */
    __atomic_store_n(&catch_armed, false, __ATOMIC_SEQ_CST);
    __atomic_store_n(&panic_armed, false, __ATOMIC_SEQ_CST);
    if (catch_faults && last_fault.vector != UINT64_MAX) {
        ksnprintf(panic_message, sizeof(panic_message),
                  "no panic: CPU exception %llu (error %#llx, cr2 %#llx) at rip %#llx",
                  (unsigned long long)last_fault.vector, (unsigned long long)last_fault.error_code,
                  (unsigned long long)last_fault.cr2, (unsigned long long)last_fault.rip);
        kprintf("ktest: caught instead of a panic: %s\n", panic_message);
        return false;
    }
    kprintf("ktest: caught panic: %s\n", panic_message);
    return !want || strstr(panic_message, want) != NULL;
}

bool ktest_expect_panic(void (*fn)(void *), void *arg, const char *want)
{
    return expect_panic(fn, arg, want, false);
}

bool ktest_expect_panic_not_fault(void (*fn)(void *), void *arg, const char *want)
{
    return expect_panic(fn, arg, want, true);
}

const char *ktest_last_panic(void)
{
    return panic_message;
}

static char captured[4096];
static size_t captured_len;

static void capture_sink(const char *s, size_t len)
{
    size_t room = sizeof(captured) - 1 - captured_len;
    len = MIN(len, room);
    memcpy(captured + captured_len, s, len);
    captured_len += len;
    captured[captured_len] = 0;
}

void ktest_capture_start(void)
{
    captured_len = 0;
    captured[0] = 0;
    kprintf_add_sink(capture_sink);
}

void ktest_capture_stop(void)
{
    kprintf_remove_sink(capture_sink);
}

const char *ktest_captured(void)
{
    return captured;
}

void ktest_fail_at(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    current_failed = true;
    kprintf("ktest: [FAIL] %s: %s:%d: '%s' ", current ? current->name : "(no test)", file, line,
            cond);
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
    kprintf("\n");
}

/* True when a comes before b: by file name, then by line. */
static bool ktest_before(const struct ktest *a, const struct ktest *b)
{
    int c = strcmp(a->file, b->file);
    return c < 0 || (c == 0 && a->line < b->line);
}

static struct heap_stats heap_before, heap_after; /* large: off the stack */

int ktest_run_all(const char *filter)
{
    int passed = 0, failed = 0;
    bool all = !filter || !filter[0];
    size_t total = (size_t)(__ktests_end - __ktests_start);
    /* a self-test run is strict wherever it was started: undefined
     * behaviour fails it (lib/ubsan.h) */
    bool was_strict = ubsan_set_strict(true);
    kprintf("ktest: %zu tests registered%s%s%s\n", total, all ? "" : ", running those matching \"",
            all ? "" : filter, all ? "" : "\"");
    /* The compiler may emit a file's tests in any order: sort them (insertion
     * sort into a fixed table; tests beyond it run unsorted, after). */
    static const struct ktest *order[512];
    size_t n = 0;
    for (const struct ktest *t = __ktests_start; t < __ktests_end && n < ARRAY_SIZE(order); t++) {
        size_t k = n++;
        while (k > 0 && ktest_before(t, order[k - 1])) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = t;
    }
    for (size_t idx = 0; idx < total; idx++) {
        const struct ktest *t = idx < n ? order[idx] : __ktests_start + idx;
        if (!t->name || !t->fn || (!all && !strstr(t->name, filter)))
            continue;
        current = t;
        current_failed = false;
        kprintf("ktest: [RUN ] %s\n", t->name);
        heap_get_stats(&heap_before);
        t->fn();
        heap_get_stats(&heap_after);
        /* every test gives back what it took, whatever the heap held before
         * (the monitor runs the tests with its own blocks live) */
        if (heap_after.live_blocks != heap_before.live_blocks ||
            heap_after.bytes_in_use != heap_before.bytes_in_use)
            ktest_fail_at(t->file, t->line, "no heap block leaked",
                          "%lld blocks, %lld bytes left behind",
                          (long long)(heap_after.live_blocks - heap_before.live_blocks),
                          (long long)(heap_after.bytes_in_use - heap_before.bytes_in_use));
        if (current_failed) {
            failed++;
        } else {
            passed++;
            kprintf("ktest: [ OK ] %s\n", t->name);
        }
    }
    current = NULL;
    ubsan_set_strict(was_strict);
    kprintf("ktest: %d passed, %d failed\n", passed, failed);
    return failed;
}

/* A run of frames taken by ktest_grab_frames(), recorded in its first frame. */
struct grab_run {
    paddr_t next; /* first frame of the run taken before, 0 at the end */
    uint64_t count;
};

uint64_t ktest_free_frames(void)
{
    struct frame_stats fs;
    frame_get_stats(&fs);
    return fs.free_frames;
}

paddr_t ktest_grab_frames(uint64_t leave, uint64_t *taken)
{
    static const struct {
        uint64_t frames, align;
    } sizes[] = {{GiB(1) / PAGE_SIZE, GiB(1)}, {MiB(2) / PAGE_SIZE, MiB(2)}, {16, KiB(64)}};
    paddr_t head = 0, p;
    *taken = 0;
    for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
        while (ktest_free_frames() >= leave + sizes[k].frames &&
               (p = frame_alloc_contig(sizes[k].frames, sizes[k].align)) != 0) {
            *(struct grab_run *)PHYS2VIRT(p) = (struct grab_run){head, sizes[k].frames};
            head = p;
            *taken += sizes[k].frames;
        }
    }
    while (ktest_free_frames() > leave && (p = frame_alloc()) != 0) {
        *(struct grab_run *)PHYS2VIRT(p) = (struct grab_run){head, 1};
        head = p;
        (*taken)++;
    }
    return head;
}

void ktest_release_frames(paddr_t head)
{
    while (head) {
        struct grab_run r = *(struct grab_run *)PHYS2VIRT(head);
        frame_free_contig(head, r.count);
        head = r.next;
    }
}

paddr_t ktest_grab_next(paddr_t run, uint64_t *count)
{
    const struct grab_run *r = PHYS2VIRT(run);
    if (count)
        *count = r->count;
    return r->next;
}
