/* The kernel's own UBSan runtime: the __ubsan_handle_* functions that code
 * compiled with -fsanitize=undefined (DEBUG=1, mk/debug.mk) calls when a
 * check fails. Each prints one report and then continues or panics (the
 * policy is in lib/ubsan.h). This file itself is built without the
 * sanitizer: a check failing inside a handler would recurse.
 *
 * The data the compiler passes (GCC's and compiler-rt's shared ABI): a
 * static record per check site starting with its source location, type
 * descriptors {kind, info, name}, and values as pointer-sized "handles"
 * that hold an integer of up to 64 bits zero-extended, or point at a wider
 * one. Each source location reports once (first_report). */
#include "lib/ubsan.h"

#include "lib/backtrace.h"
#include "lib/cmdline.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/string.h"

struct ubsan_location {
    const char *file;
    uint32_t line;
    uint32_t column;
};
_Static_assert(sizeof(struct ubsan_location) == 16, "ubsan ABI: source location");

/* kind 0: integer, info = log2(bits) << 1 | signed; kind 1: float, info =
 * bits; 0xffff: anything else. name is the type as the compiler spells it. */
enum { UBSAN_TYPE_INT = 0, UBSAN_TYPE_FLOAT = 1 };
struct ubsan_type {
    uint16_t kind;
    uint16_t info;
    char name[];
};

typedef uintptr_t ubsan_value; /* see the file comment */

struct ubsan_overflow_data {
    struct ubsan_location loc;
    const struct ubsan_type *type;
};

struct ubsan_shift_data {
    struct ubsan_location loc;
    const struct ubsan_type *lhs_type;
    const struct ubsan_type *rhs_type;
};

struct ubsan_bounds_data {
    struct ubsan_location loc;
    const struct ubsan_type *array_type;
    const struct ubsan_type *index_type;
};

/* type_check_kind indexes type_check_verbs; alignment is 1 << log_alignment
 * (0 when only null and object size were checked). */
struct ubsan_type_mismatch_data {
    struct ubsan_location loc;
    const struct ubsan_type *type;
    uint8_t log_alignment;
    uint8_t type_check_kind;
};
_Static_assert(__builtin_offsetof(struct ubsan_type_mismatch_data, log_alignment) == 24,
               "ubsan ABI: type mismatch");

struct ubsan_location_data {
    struct ubsan_location loc;
};

struct ubsan_vla_data {
    struct ubsan_location loc;
    const struct ubsan_type *type;
};

struct ubsan_invalid_value_data {
    struct ubsan_location loc;
    const struct ubsan_type *type;
};

struct ubsan_nonnull_arg_data {
    struct ubsan_location loc;
    struct ubsan_location attr_loc;
    int arg_index;
};

struct ubsan_nonnull_return_data {
    struct ubsan_location attr_loc;
};

/* kind 0: ctz, 1: clz. */
struct ubsan_invalid_builtin_data {
    struct ubsan_location loc;
    uint8_t kind;
};

static const char *const type_check_verbs[] = {
    "load of",
    "store to",
    "reference binding to",
    "member access within",
    "member call on",
    "constructor call on",
    "downcast of",
    "downcast of",
    "upcast of",
    "cast to virtual base of",
    "_Nonnull binding to",
    "dynamic operation on",
};

static bool reporting; /* a report is being printed: a nested one is dropped */
static bool expecting; /* between ubsan_expect_begin and ubsan_expect_end */
static unsigned long reports, unexpected, expected;

void ubsan_expect_begin(void)
{
    expecting = true;
    expected = 0;
}

unsigned long ubsan_expect_end(void)
{
    expecting = false;
    return expected;
}

unsigned long ubsan_report_count(void)
{
    return reports;
}

unsigned long ubsan_unexpected_count(void)
{
    return unexpected;
}

/* ---- values ---- */
static unsigned type_bits(const struct ubsan_type *t)
{
    return t->kind == UBSAN_TYPE_INT ? 1u << (t->info >> 1) : t->info;
}

static bool type_signed(const struct ubsan_type *t)
{
    return t->kind == UBSAN_TYPE_INT && (t->info & 1);
}

/* The low 64 bits of an integer value, sign-extended from its width. */
static int64_t value_s64(const struct ubsan_type *t, ubsan_value v)
{
    unsigned bits = type_bits(t);
    if (bits > 64)
        return *(const int64_t *)v; /* little-endian: the low half first */
    unsigned extra = 64 - bits;
    return (int64_t)((uint64_t)v << extra) >> extra;
}

static uint64_t value_u64(const struct ubsan_type *t, ubsan_value v)
{
    return type_bits(t) > 64 ? *(const uint64_t *)v : (uint64_t)v;
}

static bool value_negative(const struct ubsan_type *t, ubsan_value v)
{
    if (!type_signed(t))
        return false;
    if (type_bits(t) > 64)
        return ((const int64_t *)v)[1] < 0;
    return value_s64(t, v) < 0;
}

/* Formats an integer as the source would print it; wider than 64 bits and
 * not representable in 64, as hex. Floats and unknown kinds by type only. */
static const char *value_str(char *buf, size_t size, const struct ubsan_type *t, ubsan_value v)
{
    if (t->kind != UBSAN_TYPE_INT) {
        ksnprintf(buf, size, "<%s value>", t->name);
    } else if (type_bits(t) > 64) {
        const uint64_t *w = (const uint64_t *)v;
        bool fits = type_signed(t) ? w[1] == (uint64_t)((int64_t)w[0] >> 63) : w[1] == 0;
        if (fits && type_signed(t))
            ksnprintf(buf, size, "%lld", (long long)w[0]);
        else if (fits)
            ksnprintf(buf, size, "%llu", (unsigned long long)w[0]);
        else
            ksnprintf(buf, size, "0x%016llx%016llx", (unsigned long long)w[1],
                      (unsigned long long)w[0]);
    } else if (type_signed(t)) {
        ksnprintf(buf, size, "%lld", (long long)value_s64(t, v));
    } else {
        ksnprintf(buf, size, "%llu", (unsigned long long)value_u64(t, v));
    }
    return buf;
}

/* ---- the report ---- */
/* Strict mode (lib/ubsan.h), decided once from the command line main hands
 * to ubsan_configure; off until then. */
static bool strict_mode;

void ubsan_configure(const char *cmdline)
{
    char val[16];
    strict_mode = cmdline_get(cmdline, "ktest", NULL, 0) ||
                  cmdline_get(cmdline, "bench", NULL, 0) ||
                  (cmdline_get(cmdline, "ubsan", val, sizeof(val)) && strcmp(val, "panic") == 0);
}

bool ubsan_set_strict(bool on)
{
    bool was = strict_mode;
    strict_mode = on;
    return was;
}

/* Locations already reported. A location is compared by value: the compiler
 * emits one record per copy of a check, and unrolling or inlining copies
 * checks. When the table is full, further locations are reported each time. */
#define SEEN_MAX 128
static struct ubsan_location seen[SEEN_MAX];
static size_t seen_count;

static bool same_file(const char *a, const char *b)
{
    if (a == b)
        return true;
    if (!a || !b)
        return false;
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* Records loc; false when it was reported before. */
static bool first_report(const struct ubsan_location *loc)
{
    for (size_t i = 0; i < seen_count; i++)
        if (seen[i].line == loc->line && seen[i].column == loc->column &&
            same_file(seen[i].file, loc->file))
            return false;
    if (seen_count < SEEN_MAX)
        seen[seen_count++] = *loc;
    return true;
}

/* Claims the report (false when loc already reported, or when a report is
 * under way: undefined behaviour in the printing code is counted, not
 * printed) and prints its header. */
static bool report_begin(const struct ubsan_location *loc, const char *kind)
{
    if (__atomic_exchange_n(&reporting, true, __ATOMIC_SEQ_CST)) {
        reports++;
        unexpected++;
        return false;
    }
    if (!first_report(loc)) {
        __atomic_store_n(&reporting, false, __ATOMIC_SEQ_CST);
        return false;
    }
    kprintf("UBSAN: %s at %s:%u:%u\n", kind, loc->file ? loc->file : "<unknown>", loc->line,
            loc->column);
    return true;
}

/* Prints the backtrace from the handler's frame (#0 is the code that
 * failed the check), counts the report, and continues or panics. */
static void report_end(const struct ubsan_location *loc, const char *kind, uint64_t frame,
                       bool fatal)
{
    backtrace_print_frames(frame);
    reports++;
    if (expecting)
        expected++;
    else
        unexpected++;
    bool strict = !expecting && strict_mode;
    __atomic_store_n(&reporting, false, __ATOMIC_SEQ_CST);
    const char *file = loc->file ? loc->file : "<unknown>";
    if (fatal)
        panic_at(file, (int)loc->line, "UBSAN: %s (execution cannot continue)", kind);
    if (strict)
        panic_at(file, (int)loc->line, "UBSAN: %s (strict mode: every report is fatal)", kind);
}

#define FRAME() ((uint64_t)(uintptr_t)__builtin_frame_address(0))

/* ---- the handlers: one line of details each ---- */
static void overflow(struct ubsan_overflow_data *d, ubsan_value lhs, ubsan_value rhs, char op,
                     uint64_t frame)
{
    bool sig = type_signed(d->type);
    const char *kind = sig ? "signed-integer-overflow" : "unsigned-integer-overflow";
    if (!report_begin(&d->loc, kind))
        return;
    char a[48], b[48];
    kprintf("  %s integer overflow: %s %c %s cannot be represented in type %s\n",
            sig ? "signed" : "unsigned", value_str(a, sizeof(a), d->type, lhs), op,
            value_str(b, sizeof(b), d->type, rhs), d->type->name);
    report_end(&d->loc, kind, frame, false);
}

/* Called when a + b overflows its type. */
void __ubsan_handle_add_overflow(struct ubsan_overflow_data *d, ubsan_value lhs, ubsan_value rhs)
{
    overflow(d, lhs, rhs, '+', FRAME());
}

/* Called when a - b overflows its type. */
void __ubsan_handle_sub_overflow(struct ubsan_overflow_data *d, ubsan_value lhs, ubsan_value rhs)
{
    overflow(d, lhs, rhs, '-', FRAME());
}

/* Called when a * b overflows its type. */
void __ubsan_handle_mul_overflow(struct ubsan_overflow_data *d, ubsan_value lhs, ubsan_value rhs)
{
    overflow(d, lhs, rhs, '*', FRAME());
}

/* Called when -a overflows (a is the type's minimum). */
void __ubsan_handle_negate_overflow(struct ubsan_overflow_data *d, ubsan_value old)
{
    const char *kind = "signed-integer-overflow";
    if (!report_begin(&d->loc, kind))
        return;
    char a[48];
    kprintf("  negation of %s cannot be represented in type %s\n",
            value_str(a, sizeof(a), d->type, old), d->type->name);
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called for a / b or a % b with b == 0, or the type's minimum by -1. */
void __ubsan_handle_divrem_overflow(struct ubsan_overflow_data *d, ubsan_value lhs, ubsan_value rhs)
{
    bool by_minus_one = type_signed(d->type) && value_s64(d->type, rhs) == -1;
    const char *kind = by_minus_one ? "signed-integer-overflow" : "integer-divide-by-zero";
    if (!report_begin(&d->loc, kind))
        return;
    char a[48];
    if (by_minus_one)
        kprintf("  division of %s by -1 cannot be represented in type %s\n",
                value_str(a, sizeof(a), d->type, lhs), d->type->name);
    else
        kprintf("  division by zero in type %s\n", d->type->name);
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called for a << b or a >> b with b negative or at least a's width, or a
 * left shift of a negative value or one that loses set bits. */
void __ubsan_handle_shift_out_of_bounds(struct ubsan_shift_data *d, ubsan_value lhs,
                                        ubsan_value rhs)
{
    const char *kind = "shift-out-of-bounds";
    if (!report_begin(&d->loc, kind))
        return;
    char a[48], b[48];
    value_str(a, sizeof(a), d->lhs_type, lhs);
    value_str(b, sizeof(b), d->rhs_type, rhs);
    if (value_negative(d->rhs_type, rhs))
        kprintf("  shift exponent %s is negative\n", b);
    else if (value_u64(d->rhs_type, rhs) >= type_bits(d->lhs_type))
        kprintf("  shift exponent %s is too large for %u-bit type %s\n", b, type_bits(d->lhs_type),
                d->lhs_type->name);
    else if (value_negative(d->lhs_type, lhs))
        kprintf("  left shift of negative value %s\n", a);
    else
        kprintf("  left shift of %s by %s places cannot be represented in type %s\n", a, b,
                d->lhs_type->name);
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called when an array is indexed outside its declared bounds. */
void __ubsan_handle_out_of_bounds(struct ubsan_bounds_data *d, ubsan_value index)
{
    const char *kind = "array-index-out-of-bounds";
    if (!report_begin(&d->loc, kind))
        return;
    char a[48];
    kprintf("  index %s out of bounds for type %s\n", value_str(a, sizeof(a), d->index_type, index),
            d->array_type->name);
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called when an access goes through a null or misaligned pointer, or one
 * with less room behind it than the type needs. */
void __ubsan_handle_type_mismatch_v1(struct ubsan_type_mismatch_data *d, ubsan_value ptr)
{
    uint64_t align = d->log_alignment < 64 ? 1ULL << d->log_alignment : 0;
    const char *verb = d->type_check_kind < ARRAY_SIZE(type_check_verbs)
                           ? type_check_verbs[d->type_check_kind]
                           : "access to";
    const char *kind = !ptr                  ? "null-pointer-use"
                       : (ptr & (align - 1)) ? "misaligned-access"
                                             : "object-size-mismatch";
    if (!report_begin(&d->loc, kind))
        return;
    if (!ptr)
        kprintf("  %s null pointer of type %s\n", verb, d->type->name);
    else if (ptr & (align - 1))
        kprintf("  %s misaligned address %p for type %s which requires %llu byte alignment\n", verb,
                (void *)ptr, d->type->name, (unsigned long long)align);
    else
        kprintf("  %s address %p with insufficient space for an object of type %s\n", verb,
                (void *)ptr, d->type->name);
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called when a pointer computation wraps around the address space (or
 * offsets a null pointer). */
void __ubsan_handle_pointer_overflow(struct ubsan_location_data *d, ubsan_value base,
                                     ubsan_value result)
{
    const char *kind = "pointer-overflow";
    if (!report_begin(&d->loc, kind))
        return;
    if (!base && !result)
        kprintf("  applying zero offset to null pointer\n");
    else if (!base)
        kprintf("  applying non-zero offset %p to null pointer\n", (void *)result);
    else if (!result)
        kprintf("  applying non-zero offset to non-null pointer %p produced null pointer\n",
                (void *)base);
    else
        kprintf("  pointer index expression with base %p overflowed to %p\n", (void *)base,
                (void *)result);
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called when a bool holds neither 0 nor 1 (or an enum an invalid value). */
void __ubsan_handle_load_invalid_value(struct ubsan_invalid_value_data *d, ubsan_value val)
{
    const char *kind = "invalid-value-load";
    if (!report_begin(&d->loc, kind))
        return;
    char a[48];
    kprintf("  load of value %s, which is not a valid value for type %s\n",
            value_str(a, sizeof(a), d->type, val), d->type->name);
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called when a variable-length array's bound is zero or negative. */
void __ubsan_handle_vla_bound_not_positive(struct ubsan_vla_data *d, ubsan_value bound)
{
    const char *kind = "vla-bound-not-positive";
    if (!report_begin(&d->loc, kind))
        return;
    char a[48];
    kprintf("  variable length array bound evaluates to non-positive value %s\n",
            value_str(a, sizeof(a), d->type, bound));
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called when NULL is passed for a parameter declared nonnull. */
void __ubsan_handle_nonnull_arg(struct ubsan_nonnull_arg_data *d)
{
    const char *kind = "nonnull-argument";
    if (!report_begin(&d->loc, kind))
        return;
    kprintf("  null pointer passed as argument %d, which is declared to never be null\n",
            d->arg_index);
    if (d->attr_loc.file)
        kprintf("  (nonnull attribute at %s:%u:%u)\n", d->attr_loc.file, d->attr_loc.line,
                d->attr_loc.column);
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called when a function declared returns_nonnull returns NULL; loc is the
 * return statement. */
void __ubsan_handle_nonnull_return_v1(struct ubsan_nonnull_return_data *d,
                                      struct ubsan_location *loc)
{
    const char *kind = "nonnull-return";
    if (!report_begin(loc, kind))
        return;
    kprintf("  null pointer returned from function declared to never return null\n");
    if (d->attr_loc.file)
        kprintf("  (returns_nonnull attribute at %s:%u:%u)\n", d->attr_loc.file, d->attr_loc.line,
                d->attr_loc.column);
    report_end(loc, kind, FRAME(), false);
}

/* Called when __builtin_ctz or __builtin_clz is given 0. */
void __ubsan_handle_invalid_builtin(struct ubsan_invalid_builtin_data *d)
{
    const char *kind = "invalid-builtin-use";
    if (!report_begin(&d->loc, kind))
        return;
    kprintf("  passing zero to %s(), which is not a valid argument\n",
            d->kind == 0 ? "ctz" : "clz");
    report_end(&d->loc, kind, FRAME(), false);
}

/* Called when __builtin_unreachable() is reached. Never returns. */
NORETURN void __ubsan_handle_builtin_unreachable(struct ubsan_location_data *d)
{
    const char *kind = "unreachable";
    if (report_begin(&d->loc, kind)) {
        kprintf("  execution reached an unreachable program point\n");
        report_end(&d->loc, kind, FRAME(), true);
    }
    panic_at(d->loc.file ? d->loc.file : "<unknown>", (int)d->loc.line,
             "UBSAN: %s (execution cannot continue)", kind);
}

/* Called when a value-returning function ends without a return. Never returns. */
NORETURN void __ubsan_handle_missing_return(struct ubsan_location_data *d)
{
    const char *kind = "missing-return";
    if (report_begin(&d->loc, kind)) {
        kprintf("  execution reached the end of a value-returning function without returning "
                "a value\n");
        report_end(&d->loc, kind, FRAME(), true);
    }
    panic_at(d->loc.file ? d->loc.file : "<unknown>", (int)d->loc.line,
             "UBSAN: %s (execution cannot continue)", kind);
}
