/* In-kernel tests of the UBSan runtime (lib/ubsan.c): each performs one kind
 * of undefined behaviour on purpose, captures the report kprintf prints and
 * checks its kind, file:line and values. They only do something in a kernel
 * built with the sanitizer (DEBUG=1); otherwise one test says so. */
#include "lib/printf.h"
#include "lib/string.h"
#include "lib/ubsan.h"
#include "test/ktest.h"

#if !UBSAN_ENABLED

KTEST(ubsan_not_in_this_build)
{
    kprintf("ktest: (kernel built without -fsanitize=undefined: nothing to test; "
            "make debug-test runs these)\n");
}

#else

#include "arch/x86_64/exceptions.h"
#include "lib/panic.h"

/* The line of the statement that misbehaved last: UB(stmt) records it. */
static volatile int ub_line;
#define UB(stmt)                                                                                   \
    do {                                                                                           \
        ub_line = __LINE__;                                                                        \
        stmt;                                                                                      \
    } while (0)

/* Runs fn(arg) with reports expected and kprintf ktest_captured(); returns how many
 * reports it printed. */
static unsigned long run_expecting(void (*fn)(void *), void *arg)
{
    ktest_capture_start();
    ubsan_expect_begin();
    fn(arg);
    unsigned long n = ubsan_expect_end();
    ktest_capture_stop();
    return n;
}

/* True when the capture holds "UBSAN: <kind> at <this file>:<ub_line>:". */
static bool has_header(const char *kind)
{
    char want[128];
    ksnprintf(want, sizeof(want), "UBSAN: %s at %s:%d:", kind, __FILE__, ub_line);
    return strstr(ktest_captured(), want) != NULL;
}

static bool has(const char *text)
{
    return strstr(ktest_captured(), text) != NULL;
}

/* Values the compiler cannot see through. */
static volatile int int_max = 2147483647, int_min = -2147483647 - 1, zero = 0, minus_one = -1;
static volatile int64_t i64_min = -9223372036854775807LL - 1, i64_big = 4611686018427387904LL;
static volatile uint64_t one_u64 = 1;
static volatile int exponent_70 = 70, index_9 = 9;
static volatile int sink_int;
static volatile int64_t sink_i64;
static volatile uint64_t sink_u64;

/* Unexpected reports this file made on purpose (the strict-mode test). */
static unsigned long deliberate_unexpected;

/* True when the backtrace's frame #0 is in function fn (or its .cold part). */
static bool frame0_in(const char *fn)
{
    static const char prefix[] = "backtrace:\n  #0 0x";
    const char *f0 = strstr(ktest_captured(), prefix);
    if (!f0)
        return false;
    f0 += sizeof(prefix) - 1;
    const char *eol = strchr(f0, '\n');
    const char *name = strstr(f0, fn);
    size_t len = strlen(fn);
    return name && (!eol || name < eol) && name[-1] == ' ' &&
           (name[len] == '+' || strncmp(name + len, ".cold+", 6) == 0);
}

KTEST(ubsan_no_unexpected_report)
{
    /* Every report from boot and earlier tests: in ktest mode one after the
     * command line is known would have panicked, so this catches those made
     * before it (early boot), whichever order the tests run in. */
    KT_EXPECT(ubsan_unexpected_count() == deliberate_unexpected,
              "%lu unexpected reports (see the UBSAN: lines above)",
              ubsan_unexpected_count() - deliberate_unexpected);
}

/* ---- shifts ---- */
__attribute__((noinline)) static void shift_too_far(void *arg)
{
    (void)arg;
    UB(sink_u64 = one_u64 << exponent_70);
}

__attribute__((noinline)) static void shift_negative_exponent(void *arg)
{
    (void)arg;
    UB(sink_int = 1 << minus_one);
}

__attribute__((noinline)) static void shift_negative_value(void *arg)
{
    (void)arg;
    UB(sink_int = minus_one << 3);
}

KTEST(ubsan_shift_out_of_bounds)
{
    KT_EXPECT(run_expecting(shift_too_far, NULL) == 1);
    KT_EXPECT(has_header("shift-out-of-bounds"), "report: %s", ktest_captured());
    KT_EXPECT(has("  shift exponent 70 is too large for 64-bit type 'long unsigned int'\n"),
              "report: %s", ktest_captured());
    /* the backtrace starts in the function that shifted */
    KT_EXPECT(frame0_in("shift_too_far"), "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(shift_negative_exponent, NULL) == 1);
    KT_EXPECT(has_header("shift-out-of-bounds") && has("  shift exponent -1 is negative\n"),
              "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(shift_negative_value, NULL) == 1);
    KT_EXPECT(has_header("shift-out-of-bounds") && has("  left shift of negative value -1\n"),
              "report: %s", ktest_captured());
}

/* ---- signed arithmetic ---- */
__attribute__((noinline)) static void add_overflow(void *arg)
{
    (void)arg;
    UB(sink_int = int_max + 1);
}

__attribute__((noinline)) static void sub_overflow(void *arg)
{
    (void)arg;
    UB(sink_i64 = i64_min - 1);
}

__attribute__((noinline)) static void mul_overflow(void *arg)
{
    (void)arg;
    UB(sink_i64 = i64_big * 2);
}

__attribute__((noinline)) static void negate_overflow(void *arg)
{
    (void)arg;
    UB(sink_int = -int_min);
}

KTEST(ubsan_signed_overflow)
{
    KT_EXPECT(run_expecting(add_overflow, NULL) == 1);
    KT_EXPECT(has_header("signed-integer-overflow"), "report: %s", ktest_captured());
    KT_EXPECT(
        has("  signed integer overflow: 2147483647 + 1 cannot be represented in type 'int'\n"),
        "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(sub_overflow, NULL) == 1);
    KT_EXPECT(has_header("signed-integer-overflow") &&
                  has("  signed integer overflow: -9223372036854775808 - 1 cannot be represented "
                      "in type 'long int'\n"),
              "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(mul_overflow, NULL) == 1);
    KT_EXPECT(has_header("signed-integer-overflow") &&
                  has("  signed integer overflow: 4611686018427387904 * 2 cannot be represented "
                      "in type 'long int'\n"),
              "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(negate_overflow, NULL) == 1);
    KT_EXPECT(has_header("signed-integer-overflow") &&
                  has("  negation of -2147483648 cannot be represented in type 'int'\n"),
              "report: %s", ktest_captured());
}

/* ---- division: reported, then the CPU raises #DE as it would anyway ---- */
__attribute__((noinline)) static void divide_by_zero(void *arg)
{
    (void)arg;
    UB(sink_int = int_max / zero);
}

KTEST(ubsan_divide_by_zero)
{
    ktest_capture_start();
    ubsan_expect_begin();
    bool faulted = ktest_expect_fault(divide_by_zero, NULL, EXC_DE, NULL, NULL);
    unsigned long n = ubsan_expect_end();
    ktest_capture_stop();
    KT_EXPECT(faulted, "no #DE after the report");
    KT_EXPECT(n == 1, "%lu reports", n);
    KT_EXPECT(has_header("integer-divide-by-zero") && has("  division by zero in type 'int'\n"),
              "report: %s", ktest_captured());
}

/* ---- array bounds ---- */
struct two_arrays {
    int a[8];
    int after[4]; /* the out-of-bounds read lands here, inside the object */
};
static struct two_arrays arrays;

__attribute__((noinline)) static void index_out_of_bounds(void *arg)
{
    (void)arg;
    UB(sink_int = arrays.a[index_9]);
}

KTEST(ubsan_array_index_out_of_bounds)
{
    KT_EXPECT(run_expecting(index_out_of_bounds, NULL) == 1);
    KT_EXPECT(has_header("array-index-out-of-bounds"), "report: %s", ktest_captured());
    KT_EXPECT(has("  index 9 out of bounds for type 'int [8]'\n"), "report: %s", ktest_captured());
    KT_EXPECT(frame0_in("index_out_of_bounds"), "report: %s", ktest_captured());
}

/* ---- alignment ---- */
static uint64_t words[4] __attribute__((aligned(8)));

__attribute__((noinline)) static void misaligned_load(void *arg)
{
    const uint64_t *p = arg;
    UB(sink_u64 = *p);
}

__attribute__((noinline)) static void misaligned_store(void *arg)
{
    uint32_t *p = arg;
    UB(*p = 7);
}

KTEST(ubsan_misaligned_access)
{
    char want[160];
    void *p = (char *)words + 1;
    KT_EXPECT(run_expecting(misaligned_load, p) == 1);
    KT_EXPECT(has_header("misaligned-access"), "report: %s", ktest_captured());
    ksnprintf(want, sizeof(want),
              "  load of misaligned address %p for type 'const uint64_t' which requires 8 byte "
              "alignment\n",
              p);
    KT_EXPECT(has(want), "want: %s report: %s", want, ktest_captured());

    p = (char *)words + 6;
    KT_EXPECT(run_expecting(misaligned_store, p) == 1);
    ksnprintf(want, sizeof(want),
              "  store to misaligned address %p for type 'uint32_t' which requires 4 byte "
              "alignment\n",
              p);
    KT_EXPECT(has_header("misaligned-access") && has(want), "want: %s report: %s", want, ktest_captured());
}

/* ---- null: reported, then the unmapped page 0 faults ---- */
static int *volatile null_int;

__attribute__((noinline)) static void null_load(void *arg)
{
    (void)arg;
    UB(sink_int = *null_int);
}

KTEST(ubsan_null_pointer_load)
{
    ktest_capture_start();
    ubsan_expect_begin();
    bool faulted = ktest_expect_fault(null_load, NULL, EXC_PF, NULL, NULL);
    unsigned long n = ubsan_expect_end();
    ktest_capture_stop();
    KT_EXPECT(faulted, "no #PF after the report");
    KT_EXPECT(n == 1, "%lu reports", n);
    KT_EXPECT(has_header("null-pointer-use") && has("  load of null pointer of type 'int'\n"),
              "report: %s", ktest_captured());
}

/* ---- the rest of the checks, one each ---- */
static volatile uint8_t five = 5;

__attribute__((noinline)) static void invalid_bool(void *arg)
{
    (void)arg;
    bool b;
    memcpy(&b, (const void *)&five, 1);
    volatile bool *vb = &b;
    UB(sink_int = *vb ? 1 : 2);
}

static char *volatile high_pointer = (char *)0xfffffffffffffff0ULL;
static volatile size_t offset_32 = 32;

__attribute__((noinline)) static void pointer_overflow(void *arg)
{
    (void)arg;
    UB(sink_u64 = (uint64_t)(uintptr_t)(high_pointer + offset_32));
}

__attribute__((noinline)) static void vla_bound_zero(void *arg)
{
    (void)arg;
    ub_line = __LINE__ + 1;
    char vla[zero];
    sink_int = (int)sizeof(vla);
}

__attribute__((noinline)) static void ctz_of_zero(void *arg)
{
    (void)arg;
    UB(sink_int = __builtin_ctz((unsigned)zero));
}

/* Never dereferences s: the check is at the call, and this survives it. */
__attribute__((noinline, nonnull(1))) static int pointer_low_bits(const char *s)
{
    return (int)((uintptr_t)s & 0xff);
}

static const char *volatile null_string;

__attribute__((noinline)) static void nonnull_argument(void *arg)
{
    (void)arg;
    UB(sink_int = pointer_low_bits(null_string));
}

__attribute__((noinline, returns_nonnull)) static const char *never_null(void)
{
    ub_line = __LINE__ + 1;
    return null_string;
}

__attribute__((noinline)) static void nonnull_return(void *arg)
{
    (void)arg;
    sink_u64 = (uint64_t)(uintptr_t)never_null();
}

KTEST(ubsan_other_checks)
{
    char want[160];
    KT_EXPECT(run_expecting(invalid_bool, NULL) == 1);
    KT_EXPECT(has_header("invalid-value-load") &&
                  has("  load of value 5, which is not a valid value for type '_Bool'\n"),
              "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(pointer_overflow, NULL) == 1);
    ksnprintf(want, sizeof(want), "  pointer index expression with base %p overflowed to %p\n",
              (void *)0xfffffffffffffff0ULL, (void *)0x10);
    KT_EXPECT(has_header("pointer-overflow") && has(want), "want: %s report: %s", want, ktest_captured());

    KT_EXPECT(run_expecting(vla_bound_zero, NULL) == 1);
    KT_EXPECT(has_header("vla-bound-not-positive") &&
                  has("  variable length array bound evaluates to non-positive value 0\n"),
              "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(ctz_of_zero, NULL) == 1);
    KT_EXPECT(has_header("invalid-builtin-use") &&
                  has("  passing zero to ctz(), which is not a valid argument\n"),
              "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(nonnull_argument, NULL) == 1);
    KT_EXPECT(has_header("nonnull-argument") &&
                  has("  null pointer passed as argument 1, which is declared to never be null\n"),
              "report: %s", ktest_captured());

    KT_EXPECT(run_expecting(nonnull_return, NULL) == 1);
    KT_EXPECT(has_header("nonnull-return") &&
                  has("  null pointer returned from function declared to never return null\n"),
              "report: %s", ktest_captured());
}

/* ---- one report per source location ---- */
__attribute__((noinline)) static void overflow_three_times(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        UB(sink_int = int_max + (i + 1));
    }
}

KTEST(ubsan_reports_each_location_once)
{
    unsigned long before = ubsan_report_count();
    KT_EXPECT(run_expecting(overflow_three_times, NULL) == 1);
    KT_EXPECT(ubsan_report_count() == before + 1);
    KT_EXPECT(has("2147483647 + 1 cannot") && !has("2147483647 + 2"), "report: %s", ktest_captured());
    KT_EXPECT(run_expecting(overflow_three_times, NULL) == 0, "a second run reported again");
}

/* ---- what stops the kernel ---- */
__attribute__((noinline)) static void reach_unreachable(void *arg)
{
    (void)arg;
    if (zero == 0) {
        UB(__builtin_unreachable());
    }
}

KTEST(ubsan_unreachable_panics)
{
    ktest_capture_start();
    ubsan_expect_begin();
    bool panicked = ktest_expect_panic(reach_unreachable, NULL, "UBSAN: unreachable");
    unsigned long n = ubsan_expect_end();
    ktest_capture_stop();
    KT_EXPECT(panicked, "panic: '%s'", ktest_last_panic());
    KT_EXPECT(n == 1, "%lu reports", n);
    KT_EXPECT(has_header("unreachable") &&
                  has("  execution reached an unreachable program point\n"),
              "report: %s", ktest_captured());
    char where[96];
    ksnprintf(where, sizeof(where), "%s:%d: UBSAN: unreachable", __FILE__, ub_line);
    KT_EXPECT(strstr(ktest_last_panic(), where), "panic: '%s'", ktest_last_panic());
}

__attribute__((noinline)) static void unexpected_overflow(void *arg)
{
    (void)arg;
    UB(sink_int = int_min - 1);
}

KTEST(ubsan_unexpected_report_fails_a_test_boot)
{
    /* ktest mode is strict: an undeliberate report panics, so QEMU exits
     * with the panic status and the boot fails. */
    unsigned long before = ubsan_unexpected_count();
    ktest_capture_start();
    bool panicked =
        ktest_expect_panic(unexpected_overflow, NULL, "(strict mode: every report is fatal)");
    ktest_capture_stop();
    KT_EXPECT(panicked, "panic: '%s'", ktest_last_panic());
    KT_EXPECT(ubsan_unexpected_count() == before + 1);
    deliberate_unexpected += ubsan_unexpected_count() - before;
    KT_EXPECT(has_header("signed-integer-overflow") &&
                  has("  signed integer overflow: -2147483648 - 1 cannot be represented in type "
                      "'int'\n"),
              "report: %s", ktest_captured());
}

#endif /* UBSAN_ENABLED */
