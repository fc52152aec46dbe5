/* printf and friends (stdio.h): one formatter, vsnprintf, writing into a
 * bounded buffer; printf formats into a stack buffer and issues one write.
 * Output past the buffer is counted but not stored, as C99 says. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdint.h>

struct out {
    char *buf;
    size_t size; /* bytes buf holds, the terminating NUL included */
    size_t len;  /* bytes produced so far (may exceed size) */
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void pad(struct out *o, char c, int n)
{
    for (; n > 0; n--)
        put(o, c);
}

/* One integer: digits of v in base (upper: A-F), the sign character (0:
 * none) or prefix, padded to width by spaces (left or right, '-') or zeros
 * (after the sign). */
static void put_int(struct out *o, unsigned long long v, char sign, unsigned base, bool upper,
                    const char *prefix, int width, int prec, bool left, bool zero)
{
    char digits[24];
    int n = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        digits[n++] = set[v % base];
        v /= base;
    } while (v);
    if (prec == 0 && n == 1 && digits[0] == '0')
        n = 0; /* C: a zero with precision 0 prints no digit */
    int zeros = prec > n ? prec - n : 0;
    int plen = (int)strlen(prefix) + (sign ? 1 : 0);
    int body = plen + zeros + n;
    if (zero && !left && prec < 0 && width > body) {
        zeros += width - body; /* zero padding goes between the sign and the digits */
        body = width;
    }
    if (!left)
        pad(o, ' ', width - body);
    if (sign)
        put(o, sign);
    for (const char *p = prefix; *p; p++)
        put(o, *p);
    pad(o, '0', zeros);
    while (n)
        put(o, digits[--n]);
    if (left)
        pad(o, ' ', width - body);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = {buf, size, 0};
    while (*fmt) {
        if (*fmt != '%') {
            put(&o, *fmt++);
            continue;
        }
        fmt++;
        bool left = false, zero = false;
        char plus = 0; /* '+' or ' ': what a non-negative signed number gets */
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                zero = true;
            else if (*fmt == '+')
                plus = '+';
            else if (*fmt == ' ')
                plus = plus ? plus : ' ';
            else
                break;
        }
        int width = 0;
        if (*fmt == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                left = true;
                width = -width;
            }
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                width = width * 10 + (*fmt++ - '0');
        }
        int prec = -1;
        if (*fmt == '.') {
            fmt++;
            prec = 0;
            if (*fmt == '*') {
                prec = va_arg(ap, int);
                if (prec < 0)
                    prec = -1;
                fmt++;
            } else {
                while (*fmt >= '0' && *fmt <= '9')
                    prec = prec * 10 + (*fmt++ - '0');
            }
        }
        int lng = 0; /* 0 int, 1 long, 2 long long, -1 short, -2 char */
        for (;; fmt++) {
            if (*fmt == 'l')
                lng++;
            else if (*fmt == 'z')
                lng = 1;
            else if (*fmt == 'h')
                lng--;
            else
                break;
        }
        char c = *fmt;
        if (!c)
            break;
        fmt++;
        switch (c) {
        case 'd':
        case 'i': {
            long long v = lng >= 2   ? va_arg(ap, long long)
                          : lng == 1 ? va_arg(ap, long)
                                     : va_arg(ap, int);
            if (lng == -1)
                v = (short)v;
            else if (lng <= -2)
                v = (signed char)v;
            unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            put_int(&o, u, v < 0 ? '-' : plus, 10, false, "", width, prec, left, zero);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v = lng >= 2   ? va_arg(ap, unsigned long long)
                                   : lng == 1 ? va_arg(ap, unsigned long)
                                              : va_arg(ap, unsigned);
            if (lng == -1)
                v = (unsigned short)v;
            else if (lng <= -2)
                v = (unsigned char)v;
            put_int(&o, v, 0, c == 'u' ? 10 : 16, c == 'X', "", width, prec, left, zero);
            break;
        }
        case 'p': {
            uintptr_t v = (uintptr_t)va_arg(ap, void *);
            put_int(&o, v, 0, 16, false, "0x", width, prec, left, zero);
            break;
        }
        case 'c': {
            char ch = (char)va_arg(ap, int);
            if (!left)
                pad(&o, ' ', width - 1);
            put(&o, ch);
            if (left)
                pad(&o, ' ', width - 1);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int n = (int)(prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s));
            if (!left)
                pad(&o, ' ', width - n);
            for (int i = 0; i < n; i++)
                put(&o, s[i]);
            if (left)
                pad(&o, ' ', width - n);
            break;
        }
        case '%':
            put(&o, '%');
            break;
        default: /* unknown: printed as it was written */
            put(&o, '%');
            put(&o, c);
            break;
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = 0;
    return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int vdprintf(int fd, const char *fmt, va_list ap)
{
    char buf[PRINTF_MAX];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n > (int)sizeof(buf) - 1)
        n = (int)sizeof(buf) - 1;
    return write(fd, buf, (size_t)n) < 0 ? -1 : n;
}

int dprintf(int fd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vdprintf(fd, fmt, ap);
    va_end(ap);
    return n;
}

int vprintf(const char *fmt, va_list ap)
{
    return vdprintf(STDOUT_FILENO, fmt, ap);
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vdprintf(STDOUT_FILENO, fmt, ap);
    va_end(ap);
    return n;
}

int puts(const char *s)
{
    char buf[PRINTF_MAX];
    int n = snprintf(buf, sizeof(buf), "%s\n", s);
    if (n > (int)sizeof(buf) - 1) { /* long: the string, then the newline */
        if (write(STDOUT_FILENO, s, strlen(s)) < 0)
            return EOF;
        return write(STDOUT_FILENO, "\n", 1) < 0 ? EOF : 1;
    }
    return write(STDOUT_FILENO, buf, (size_t)n) < 0 ? EOF : n;
}

int putchar(int c)
{
    char ch = (char)c;
    return write(STDOUT_FILENO, &ch, 1) < 0 ? EOF : (unsigned char)c;
}
