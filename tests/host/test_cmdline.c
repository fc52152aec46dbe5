/* cmdline_get: words, key=value, prefixes that must not match. */
#include <criterion/criterion.h>

#include "lib/cmdline.h"

Test(cmdline, words_and_values)
{
    char v[16];
    cr_expect(cmdline_get("ktest quiet", "ktest", v, sizeof(v)));
    cr_expect_str_eq(v, "");
    cr_expect(cmdline_get("a=1 ktest=heap b", "ktest", v, sizeof(v)));
    cr_expect_str_eq(v, "heap");
    cr_expect(!cmdline_get("ktests ktes xktest", "ktest", v, sizeof(v)));
    cr_expect_str_eq(v, "");
    cr_expect(!cmdline_get("", "ktest", v, sizeof(v)));
    cr_expect(cmdline_get("  spaced   ktest=x  ", "ktest", NULL, 0));
}

Test(cmdline, truncates_long_values)
{
    char v[4];
    cr_expect(cmdline_get("k=abcdefgh", "k", v, sizeof(v)));
    cr_expect_str_eq(v, "abc");
}
