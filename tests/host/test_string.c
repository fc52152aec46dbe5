/* memspn (lib/string.h), the host's (tests/host/support.c), through the
 * cases it shares with the kernel's word loop (kernel/test/memspn_cases.h). */
#include <criterion/criterion.h>

#include "test/memspn_cases.h"

static unsigned char buf[MEMSPN_LEN_MAX + 16];

Test(string, memspn_finds_the_first_other_byte)
{
    char why[96];
    cr_assert(memspn_cases(buf, why, sizeof(why)), "%s", why);
}
