/* memspn (lib/string.h), the kernel's word loop, through the cases it
 * shares with the host's version (test/memspn_cases.h). */
#include "test/ktest.h"
#include "test/memspn_cases.h"

static unsigned char buf[MEMSPN_LEN_MAX + 16];

KTEST(string_memspn_finds_the_first_other_byte)
{
    char why[96];
    KT_ASSERT(memspn_cases(buf, why, sizeof(why)), "%s", why);
}
