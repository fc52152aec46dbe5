/* memspn's cases, one list for the ktest (kernel/test/test_string.c, the
 * kernel's word loop) and the host test (tests/host/test_string.c, the
 * host's memcmp version in tests/host/support.c): the leading run at every
 * start alignment, around words and the 4 KiB blocks the host compares at
 * once, with c's byte taken as unsigned char. */
#pragma once

#include "lib/printf.h"
#include "lib/string.h"
#include "lib/types.h"

#define MEMSPN_LEN_MAX 10000

/* Runs every case in buf (MEMSPN_LEN_MAX + 16 bytes): true when memspn gave
 * every answer, else false with the first wrong one described in why. */
static inline bool memspn_cases(unsigned char *buf, char *why, size_t size)
{
    static const size_t lens[] = {0,  1,  7,    8,    9,    15,   16,     17,
                                  63, 64, 4095, 4096, 4097, 8193, MEMSPN_LEN_MAX};
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
                    if (got != at[k]) {
                        ksnprintf(why, size, "c %#x, start %zu, len %zu: %zu, want %zu", c,
                                  start, len, got, at[k]);
                        return false;
                    }
                }
            }
    }
    return true;
}
