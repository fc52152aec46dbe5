/* Freestanding implementations of the standard memory and string functions.
 * GCC may emit calls to memcpy/memset/memmove/memcmp itself, so these names
 * must exist. Simple byte loops, with `rep movsq/stosq` for the bulk ones and
 * `rep movsb/stosb` for the tail: under QEMU TCG every iteration of a rep
 * string instruction is emulated on its own, so 8-byte elements cut the cost
 * of a large fill or copy eightfold (on hardware they cost the same). */
#include "lib/string.h"

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    void *ret = dst;
    size_t q = n / 8, b = n % 8;
    /* forward copy: element by element in order, so memmove may use it for
     * overlapping ranges with dst below src */
    __asm__ volatile("rep movsq" : "+D"(dst), "+S"(src), "+c"(q) : : "memory");
    __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(b) : : "memory");
    return ret;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d == s || n == 0)
        return dst;
    if (d < s || d >= s + n)
        return memcpy(dst, src, n);
    while (n--)
        d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *ret = dst;
    uint64_t v = (unsigned char)c * 0x0101010101010101ULL;
    size_t q = n / 8, b = n % 8;
    __asm__ volatile("rep stosq" : "+D"(dst), "+c"(q) : "a"(v) : "memory");
    __asm__ volatile("rep stosb" : "+D"(dst), "+c"(b) : "a"(v) : "memory");
    return ret;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t memspn(const void *p, int c, size_t n)
{
    const unsigned char *b = p;
    uint64_t word = (unsigned char)c * 0x0101010101010101ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* a word at a time while it matches */
        uint64_t w;
        __builtin_memcpy(&w, b + i, 8); /* one load (memcpy here is the rep movs above) */
        if (w != word)
            break;
    }
    while (i < n && b[i] == (unsigned char)c)
        i++;
    return i;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

size_t strnlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n])
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        if (!*a)
            return 0;
    }
    return 0;
}

char *strchr(const char *s, int c)
{
    for (;; s++) {
        if (*s == (char)c)
            return (char *)s;
        if (!*s)
            return NULL;
    }
}

char *strstr(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncmp(hay, needle, n) == 0)
            return (char *)hay;
    return n == 0 ? (char *)hay : NULL;
}
