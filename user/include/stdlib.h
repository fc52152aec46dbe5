/* Memory, process end, numbers (user/lib). */
#pragma once

#include <stddef.h>

/* malloc: 16-byte aligned memory over mmap: small sizes from per-size-class
 * free lists, big ones (more than MALLOC_SMALL_MAX) in a mapping of their
 * own that free unmaps. NULL with errno ENOMEM when mmap fails. Thread-safe
 * (a spinlock). */
#define MALLOC_SMALL_MAX 4080
void *malloc(size_t size);
void free(void *p);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);

/* exit: ends the process with status code & 0xff (the same as _exit: no
 * buffered output to flush). abort: ends it with SIGKILL. */
__attribute__((noreturn)) void exit(int code);
__attribute__((noreturn)) void abort(void);

/* atoi / strtol / strtoul: C's, bases 2..36 or 0 (prefix 0x / 0); no
 * overflow detection (the value wraps). */
int atoi(const char *s);
long atol(const char *s);
long strtol(const char *s, char **end, int base);
unsigned long strtoul(const char *s, char **end, int base);

/* rand: a 31-bit pseudo-random number (xorshift, per process); srand seeds it. */
#define RAND_MAX 0x7fffffff
int rand(void);
void srand(unsigned seed);
/* rand64: 64 random bits from the same generator. */
unsigned long rand64(void);

int abs(int x);
long labs(long x);
