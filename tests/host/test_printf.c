/* kprintf/ksnprintf: every conversion, modifier and flag against expected text. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>

#include "lib/printf.h"
#include "lib/string.h"
#include "support.h"

#define CHECK(expect, ...)                                                   \
    do {                                                                     \
        char b_[128];                                                        \
        int n_ = ksnprintf(b_, sizeof(b_), __VA_ARGS__);                     \
        cr_expect_str_eq(b_, expect);                                        \
        cr_expect_eq(n_, (int)strlen(expect), "length of \"%s\"", expect);   \
    } while (0)

Test(printf, integers)
{
    CHECK("42 -42 0", "%d %i %d", 42, -42, 0);
    CHECK("2147483647 -2147483648", "%d %d", INT_MAX, INT_MIN);
    CHECK("4294967295", "%u", UINT_MAX);
    CHECK("ff FF 0", "%x %X %x", 255, 255, 0);
    CHECK("17", "%o", 15);
    CHECK("-9223372036854775808", "%lld", LLONG_MIN);
    CHECK("18446744073709551615", "%llu", ULLONG_MAX);
    CHECK("ffffffffffffffff", "%lx", ULONG_MAX);
    CHECK("12345678901", "%zu", (size_t)12345678901ULL);
    CHECK("-1", "%hhd", 255);
    CHECK("65535", "%hu", 65535);
}

Test(printf, width_and_padding)
{
    CHECK("00042", "%05d", 42);
    CHECK("-0042", "%05d", -42);
    CHECK("   42", "%5d", 42);
    CHECK("42   |", "%-5d|", 42);
    CHECK("0x00ff", "%#06x", 255);
    CHECK("00000000deadbeef", "%016llx", 0xdeadbeefULL);
    CHECK("  007", "%5.3d", 7);
    CHECK("+5", "%+d", 5);
    CHECK("   ab", "%*s", 5, "ab");
}

/* Every combination of flags, width and precision for the integer conversions
 * against the C library's snprintf, values at the edges included. %#.0o of 0
 * once read tmp[-1] (ASan: stack-buffer-underflow) and %#.3o added a second
 * leading zero. */
Test(printf, integer_flags_against_libc)
{
    static const char *flags[] = {"", "#", "-", "0", "+", " ", "#0", "#-", "+0", "-+"};
    static const char *widths[] = {"", "1", "6"};
    static const char *precs[] = {"", ".0", ".1", ".3", ".8"};
    static const char convs[] = "dioxXu";
    static const unsigned long long values[] = {0, 1, 7, 8, 9, 0x7f, 255, 0x10000, 0x7fffffffULL,
                                                0xffffffffULL};
    for (size_t f = 0; f < ARRAY_SIZE(flags); f++)
        for (size_t w = 0; w < ARRAY_SIZE(widths); w++)
            for (size_t p = 0; p < ARRAY_SIZE(precs); p++)
                for (size_t c = 0; c < sizeof(convs) - 1; c++)
                    for (size_t v = 0; v < ARRAY_SIZE(values); v++) {
                        char fmt[32], want[64], got[64];
                        snprintf(fmt, sizeof(fmt), "%%%s%s%s%c", flags[f], widths[w], precs[p],
                                 convs[c]);
                        unsigned int x = (unsigned int)values[v];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                        int nw = snprintf(want, sizeof(want), fmt, x);
                        int ng = ksnprintf(got, sizeof(got), fmt, x);
#pragma GCC diagnostic pop
                        cr_expect_str_eq(got, want, "format \"%s\" of %u", fmt, x);
                        cr_expect_eq(ng, nw, "length of format \"%s\" of %u", fmt, x);
                    }
    CHECK("0", "%#.0o", 0);
    CHECK("010", "%#.3o", 8);
}

Test(printf, strings_chars_pointers)
{
    CHECK("hello", "%s", "hello");
    const char *volatile nul = NULL;
    CHECK("(null)", "%s", nul);
    CHECK("hel", "%.3s", "hello");
    CHECK("ab   |", "%-5s|", "ab");
    CHECK("x", "%c", 'x');
    CHECK("100%", "%d%%", 100);
    CHECK("0x1000", "%p", (void *)0x1000);
    CHECK("0xffffffff80200000", "%p", (void *)0xffffffff80200000ULL);
}

Test(printf, truncation_reports_full_length)
{
    char b[8];
    int n = ksnprintf(b, sizeof(b), "%s", "0123456789");
    cr_expect_eq(n, 10);
    cr_expect_str_eq(b, "0123456");
    cr_expect_eq(ksnprintf(NULL, 0, "%d", 12345), 5);
}

Test(printf, kprintf_reaches_sinks_with_prefix)
{
    host_log_clear();
    klog("mm", "free=%uKiB", 1024u);
    cr_expect(host_log_contains("[mm] free=1024KiB\n"), "log: %s", host_log);
    host_log_clear();
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    int n = kprintf("%s!", big); /* longer than the staging buffer */
    cr_expect_eq(n, 600);
    cr_expect_eq(host_log_len, 600u);
    cr_expect_eq(host_log[599], '!');
}
