/* memspn (lib/string.h), the host's (tests/host/support.c; the kernel's word
 * loop has the same cases as a ktest, kernel/test/test_string.c): the leading
 * run at every start alignment, around words and the 4 KiB blocks it
 * compares at once, with c's byte taken as unsigned char. */
#include <criterion/criterion.h>
#include <string.h>

#include "lib/string.h"

#define LEN_MAX 10000

static unsigned char buf[LEN_MAX + 16];

Test(string, memspn_finds_the_first_other_byte)
{
    static const size_t lens[] = {0,  1,  7,    8,    9,    15,   16,     17,
                                  63, 64, 4095, 4096, 4097, 8193, LEN_MAX};
    static const int cs[] = {0x6b, 0, -1};
    for (size_t ci = 0; ci < sizeof(cs) / sizeof(cs[0]); ci++) {
        unsigned char c = (unsigned char)cs[ci];
        for (size_t start = 0; start < 8; start++)
            for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
                size_t len = lens[li];
                const size_t at[] = {len, 0, len / 2, len - 1, 7, 8, 4095, 4096, 4097};
                for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
                    if (at[k] > len || (len && at[k] == len && k))
                        continue;
                    memset(buf, c, start + len + 1);
                    buf[start + len] = c ^ 1; /* past the range: not looked at */
                    if (at[k] < len)
                        buf[start + at[k]] = c ^ 0x80;
                    cr_assert_eq(memspn(buf + start, cs[ci], len), at[k],
                                 "c %#x, start %zu, len %zu: want %zu", c, start, len, at[k]);
                }
            }
    }
}
