/* monitor/parse: word splitting, numbers, sizes, overflow. */
#include <criterion/criterion.h>

#include "monitor/parse.h"

Test(monitor_parse, split_words)
{
    char line[] = "  walk\t0xffff  extra ";
    char *argv[4];
    cr_assert_eq(parse_split(line, argv, 4), 3);
    cr_expect_str_eq(argv[0], "walk");
    cr_expect_str_eq(argv[1], "0xffff");
    cr_expect_str_eq(argv[2], "extra");

    char empty[] = " \t ";
    cr_expect_eq(parse_split(empty, argv, 4), 0);

    char many[] = "a b c d e";
    cr_expect_eq(parse_split(many, argv, 4), -1);
    cr_expect_str_eq(argv[3], "d");
}

Test(monitor_parse, u64_decimal_and_hex)
{
    uint64_t v = 7;
    cr_expect(parse_u64("0", &v) && v == 0);
    cr_expect(parse_u64("12345", &v) && v == 12345);
    cr_expect(parse_u64("0x1F", &v) && v == 0x1f);
    cr_expect(parse_u64("0XffffFFFF80200000", &v) && v == 0xffffffff80200000ULL);
    cr_expect(parse_u64("0xffff_8000_0000_0000", &v) && v == 0xffff800000000000ULL);
    cr_expect(parse_u64("18446744073709551615", &v) && v == UINT64_MAX);
    cr_expect(parse_u64("0xffffffffffffffff", &v) && v == UINT64_MAX);
}

Test(monitor_parse, u64_rejects)
{
    uint64_t v = 42;
    const char *bad[] = {"", "x", "0x", "12a", "-1", "+1", " 1", "1 ", "0x1g", "_1", "1_",
                         "1__2", "18446744073709551616", "0x10000000000000000", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect(!parse_u64(bad[i], &v), "accepted '%s'", bad[i]);
    cr_expect_eq(v, 42, "failed parses leave *out alone");
    cr_expect(!parse_u64(NULL, &v));
}

Test(monitor_parse, sizes)
{
    uint64_t v;
    cr_expect(parse_size("100", &v) && v == 100);
    cr_expect(parse_size("4K", &v) && v == 4096);
    cr_expect(parse_size("4kb", &v) && v == 4096);
    cr_expect(parse_size("2MiB", &v) && v == 2u << 20);
    cr_expect(parse_size("0x10M", &v) && v == 16u << 20);
    cr_expect(parse_size("1G", &v) && v == 1ULL << 30);
    cr_expect(parse_size("3T", &v) && v == 3ULL << 40);
    cr_expect(!parse_size("4Q", &v));
    cr_expect(!parse_size("4KK", &v));
    cr_expect(!parse_size("K", &v));
    cr_expect(!parse_size("16777216T", &v)); /* 2^24 TiB = 2^64: overflow */
    cr_expect(parse_size("16777215T", &v) && v == 16777215ULL << 40);
}
