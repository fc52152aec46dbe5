/* In-kernel tests of the protections: each one performs the forbidden thing
 * and checks that the CPU or the kernel stops it (docs/security.md). */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/exceptions.h"
#include "lib/panic.h"
#include "lib/string.h"
#include "test/ktest.h"
#include "test/ktest_catch.h"

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
