/* kprintf: formatted output to every registered sink (serial, screen). */
#pragma once

#include <stdarg.h>
#include "lib/types.h"

struct spinlock;

/* A sink receives already formatted bytes; it must not call kprintf. */
typedef void (*kprintf_sink_fn)(const char *s, size_t len);

/* Adds a sink (up to 4); every later kprintf reaches it. Returns false when full. */
bool kprintf_add_sink(kprintf_sink_fn sink);
/* Removes a sink previously added (no-op when absent). */
void kprintf_remove_sink(kprintf_sink_fn sink);

/* Formats like printf (%d %i %u %x %X %o %p %s %c %%, l/ll/z/h, width, '-', '0', '.prec')
 * and writes to all sinks. Returns the number of bytes produced. */
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* va_list form of kprintf. */
int kvprintf(const char *fmt, va_list ap);
/* The lock one kprintf call holds while it writes to the sinks (lib/printf.c;
 * interrupt-saving, rank LOCK_RANK_PRINT). Exposed for the panic path's tests. */
extern struct spinlock print_lock;
/* For the panic path only: this CPU takes print_lock for good (it never gives
 * it back), waiting a bounded time for a holder and then forcing the lock, so
 * the report prints even when another CPU stopped while printing; other CPUs'
 * kprintf then waits. Returns at once when this CPU holds it already. */
void kprintf_panic_lock(void);
/* Formats into buf (always NUL-terminated when size > 0); returns the length the
 * full output would have had, like C99 snprintf. */
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* va_list form of ksnprintf. */
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* Log lines carry a subsystem prefix: klog("mm", "frames: %zu free", n) prints
 * "[mm] frames: 5 free\n". kwarn/kerr add a coloured WARN/ERROR tag. */
#define klog(sub, fmt, ...)  kprintf("[" sub "] " fmt "\n", ##__VA_ARGS__)
#define kwarn(sub, fmt, ...) kprintf("\x1b[33m[" sub "] WARN:\x1b[0m " fmt "\n", ##__VA_ARGS__)
#define kerr(sub, fmt, ...)  kprintf("\x1b[31m[" sub "] ERROR:\x1b[0m " fmt "\n", ##__VA_ARGS__)
