/* Formatted output to the console (fd 1). Not buffered across calls: each
 * printf, puts or putchar is one write system call, so lines from several
 * processes do not interleave within one call's output.
 *
 * Conversions: %d %i %u %x %X %p %s %c %%, with the length modifiers l, ll,
 * z (and h, hh, accepted), flags '-', '0', '+' and ' ', a width and a precision (for
 * %s: at most that many bytes; for integers: at least that many digits),
 * either of them as '*'. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#define EOF (-1)

/* printf: formats into a buffer of its own (longer output is cut at
 * PRINTF_MAX bytes) and writes it to fd 1; the number of bytes written. */
#define PRINTF_MAX 1024
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
/* dprintf: printf to fd (1 or 2). */
int dprintf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vdprintf(int fd, const char *fmt, va_list ap);
/* snprintf / vsnprintf: C99's: at most size bytes stored, always
 * NUL-terminated when size > 0; the length the whole output would have. */
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
/* puts: s and a newline, one write; putchar: one byte. EOF on an error. */
int puts(const char *s);
int putchar(int c);
