/* kstrlcpy: bounded string copy, portable (kernel and host). */
#include "lib/string.h"

size_t kstrlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);
    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = 0;
    }
    return len;
}
