/* Word splitting and number parsing, with every overflow checked. */
#include "monitor/parse.h"

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

int parse_split(char *line, char **argv, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (is_space(*p))
            *p++ = '\0';
        if (!*p)
            return n;
        if (n == max)
            return -1;
        argv[n++] = p;
        while (*p && !is_space(*p))
            p++;
    }
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return 99;
}

/* Parses digits from *sp until a character that is not one (or '_'); leaves
 * *sp there. False for no digits or overflow. */
static bool parse_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    uint64_t v = 0;
    int digits = 0;
    bool last_sep = false;
    for (;; s++) {
        if (*s == '_' && digits > 0 && !last_sep) {
            last_sep = true;
            continue;
        }
        unsigned d = (unsigned)digit_value(*s);
        if (d >= base)
            break;
        if (v > (UINT64_MAX - d) / base)
            return false;
        v = v * base + d;
        digits++;
        last_sep = false;
    }
    if (digits == 0 || last_sep)
        return false;
    *sp = s;
    *out = v;
    return true;
}

bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v;
    if (!s || !parse_digits(&s, &v) || *s)
        return false;
    *out = v;
    return true;
}

bool parse_size(const char *s, uint64_t *out)
{
    uint64_t v;
    if (!s || !parse_digits(&s, &v))
        return false;
    unsigned shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    case '\0': *out = v; return true;
    default: return false;
    }
    s++;
    if (s[0] == 'i' && s[1] == 'B')
        s += 2;
    else if (s[0] == 'B' || s[0] == 'b')
        s++;
    if (*s || v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}
