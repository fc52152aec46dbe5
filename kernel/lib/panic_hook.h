/* What panic_at() and the fatal exception report share (lib/panic.c). */
#pragma once

#include <stdarg.h>

#include "lib/types.h"

/* Called once, after a panic or fatal exception has been reported and before
 * the CPU halts. main.c defines it (in test mode: exit QEMU with a failure
 * code); the weak default does nothing. It must not panic. */
void panic_hook(void);
/* Called first by panic_at(). When a test has armed a panic catch
 * (ktest_expect_panic), it records the message and resumes the test: it does
 * not return. Otherwise it returns and the panic goes on. The weak default
 * (no test runner linked) just returns. */
void panic_catch(const char *file, int line, const char *fmt, va_list ap);
/* Marks the kernel as dying. Returns true for the first caller; false when a
 * panic or fatal report is already under way (print one line and halt). */
bool panic_begin(void);
/* True once panic_begin() has been called. */
bool panic_in_progress(void);
/* Called by the CPU that won panic_begin(), before its report: stops every
 * other CPU (arch/x86_64/exceptions.c: an NMI each, then waits a bounded
 * time for them to halt) and says how many stopped. The weak default (host
 * builds) does nothing. Must not panic. */
void panic_stop_other_cpus(void);
