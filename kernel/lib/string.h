/* The C string and memory functions the kernel needs (standard signatures).
 * On the host, libc provides them. */
#pragma once

#ifdef SLAYER_HOST
#include <string.h>
#else
#include "lib/types.h"

/* Copies n bytes; the ranges must not overlap. Returns dst. */
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
/* Copies n bytes; the ranges may overlap. Returns dst. */
void *memmove(void *dst, const void *src, size_t n);
/* Fills n bytes with (unsigned char)c. Returns dst. */
void *memset(void *dst, int c, size_t n);
/* Compares n bytes: <0, 0 or >0 like the standard function. */
int memcmp(const void *a, const void *b, size_t n);
/* Length of a NUL-terminated string. */
size_t strlen(const char *s);
/* Length of s, but at most max. */
size_t strnlen(const char *s, size_t max);
/* Compares two strings: <0, 0 or >0. */
int strcmp(const char *a, const char *b);
/* Compares at most n characters of two strings. */
int strncmp(const char *a, const char *b, size_t n);
/* First occurrence of needle in hay, or NULL. */
char *strstr(const char *hay, const char *needle);
/* First occurrence of c in s (the terminator included), or NULL. */
char *strchr(const char *s, int c);
#endif

/* Length of the leading run of bytes equal to (unsigned char)c in p[0, n):
 * n when every byte is c. On the host, tests/host/support.c provides it over
 * libc's memcmp (the heap's poison checks are most of a fuzz run's scans). */
size_t memspn(const void *p, int c, size_t n);

/* Copies src into dst (size bytes, always NUL-terminated when size > 0);
 * returns strlen(src) so truncation is detectable. Available on the host too. */
size_t kstrlcpy(char *dst, const char *src, size_t size);
