/* memspn (lib/string.h), the kernel's word loop (the host's, over memcmp, has
 * the same cases: tests/host/test_string.c): the leading run at every start
 * alignment, around words and 4 KiB blocks, with c taken as unsigned char. */
#include "lib/string.h"
#include "lib/types.h"
#include "test/ktest.h"

#define LEN_MAX 10000

static unsigned char buf[LEN_MAX + 16];

KTEST(string_memspn_finds_the_first_other_byte)
{
    static const size_t lens[] = {0,  1,  7,    8,    9,    15,   16,     17,
                                  63, 64, 4095, 4096, 4097, 8193, LEN_MAX};
    static const int cs[] = {0x6b, 0, -1};
    for (size_t ci = 0; ci < ARRAY_SIZE(cs); ci++) {
        unsigned char c = (unsigned char)cs[ci];
        for (size_t start = 0; start < 8; start++)
            for (size_t li = 0; li < ARRAY_SIZE(lens); li++) {
                size_t len = lens[li];
                const size_t at[] = {len, 0, len / 2, len - 1, 7, 8, 4095, 4096, 4097};
                for (size_t k = 0; k < ARRAY_SIZE(at); k++) {
                    if (at[k] > len || (len && at[k] == len && k))
                        continue;
                    memset(buf, c, start + len + 1);
                    buf[start + len] = c ^ 1; /* past the range: not looked at */
                    if (at[k] < len)
                        buf[start + at[k]] = c ^ 0x80;
                    size_t got = memspn(buf + start, cs[ci], len);
                    KT_ASSERT(got == at[k], "c %#x, start %zu, len %zu: %zu, want %zu", c, start,
                              len, got, at[k]);
                }
            }
    }
}
