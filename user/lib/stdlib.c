/* The portable part of stdlib.h: numbers from strings, a random generator,
 * and errno's storage. */
#include <stdlib.h>
#include <errno.h>
#include <stdbool.h>

int errno;

static int digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return 99;
}

/* The magnitude of the number at s (sign in *neg), C's rules for base,
 * leading blanks and prefixes; *end past the last digit used (s when none). */
static unsigned long parse(const char *s, char **end, int base, bool *neg)
{
    const char *p = s;
    while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
        p++;
    *neg = false;
    if (*p == '+' || *p == '-')
        *neg = *p++ == '-';
    if ((base == 0 || base == 16) && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
        digit(p[2]) < 16) {
        p += 2;
        base = 16;
    } else if (base == 0) {
        base = p[0] == '0' ? 8 : 10;
    }
    unsigned long v = 0;
    const char *first = p;
    if (base >= 2 && base <= 36)
        for (; digit(*p) < base; p++)
            v = v * (unsigned long)base + (unsigned long)digit(*p);
    if (end)
        *end = (char *)(p == first ? s : p);
    return v;
}

unsigned long strtoul(const char *s, char **end, int base)
{
    bool neg;
    unsigned long v = parse(s, end, base, &neg);
    return neg ? 0ul - v : v;
}

long strtol(const char *s, char **end, int base)
{
    bool neg;
    unsigned long v = parse(s, end, base, &neg);
    return neg ? (long)(0ul - v) : (long)v;
}

long atol(const char *s)
{
    return strtol(s, NULL, 10);
}

int atoi(const char *s)
{
    return (int)strtol(s, NULL, 10);
}

int abs(int x)
{
    return x < 0 ? -x : x;
}

long labs(long x)
{
    return x < 0 ? -x : x;
}

/* xorshift64*: never zero once seeded non-zero. */
static unsigned long rand_state = 0x9e3779b97f4a7c15ul;

unsigned long rand64(void)
{
    unsigned long x = rand_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rand_state = x;
    return x * 0x2545f4914f6cdd1dul;
}

int rand(void)
{
    return (int)(rand64() >> 33);
}

void srand(unsigned seed)
{
    rand_state = 0x9e3779b97f4a7c15ul ^ ((unsigned long)seed * 0xbf58476d1ce4e5b9ul);
    if (!rand_state)
        rand_state = 1;
}
