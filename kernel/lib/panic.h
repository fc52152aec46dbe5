/* panic and kassert: stop the kernel with file, line, message and backtrace. */
#pragma once

#include "lib/types.h"

/* Prints "PANIC at file:line: message", a symbolized backtrace, and halts forever.
 * (Host builds provide their own panic_at that lets tests observe the message.) */
NORETURN void panic_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define panic(...) panic_at(__FILE__, __LINE__, __VA_ARGS__)

/* Prints the CPU's control registers as one line of a panic report, after
 * the caller's registers. The arch layer defines it (arch/x86_64/exceptions.c),
 * so lib/ never reads CR3 itself; the weak default (host builds) prints
 * nothing. Must not panic. */
void panic_print_cpu_state(void);
/* kassert(cond, fmt, ...): panics with the condition text and message when cond is false. */
#define kassert(cond, ...)                                                        \
    do {                                                                          \
        if (__builtin_expect(!(cond), 0))                                         \
            panic_at(__FILE__, __LINE__, "assertion '" #cond "' failed: " __VA_ARGS__); \
    } while (0)
