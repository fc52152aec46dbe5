/* Kernel command-line parsing (portable). */
#include "lib/cmdline.h"

#include "lib/string.h"

bool cmdline_get(const char *cmdline, const char *key, char *val, size_t val_size)
{
    size_t klen = strlen(key);
    const char *p = cmdline;
    while (p && *p) {
        while (*p == ' ')
            p++;
        const char *end = p;
        while (*end && *end != ' ')
            end++;
        size_t wlen = (size_t)(end - p);
        if (wlen >= klen && strncmp(p, key, klen) == 0 && (wlen == klen || p[klen] == '=')) {
            if (val && val_size) {
                size_t vlen = wlen > klen ? wlen - klen - 1 : 0;
                if (vlen >= val_size)
                    vlen = val_size - 1;
                memcpy(val, p + klen + 1, vlen);
                val[vlen] = 0;
            }
            return true;
        }
        p = end;
    }
    if (val && val_size)
        val[0] = 0;
    return false;
}
