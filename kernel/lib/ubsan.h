/* The kernel's UBSan runtime (lib/ubsan.c): what the rest of the kernel may
 * ask of it. The __ubsan_handle_* entry points themselves are called only by
 * code the compiler instrumented (DEBUG=1 builds, mk/debug.mk).
 *
 * Policy: every report is printed once per source location ("UBSAN: <kind>
 * at file:line:col", the details, a backtrace). Reports of recoverable kinds
 * then continue, except in strict mode, where they panic; strict mode is on
 * when the command line has `ktest`, `bench` or `ubsan=panic`, so undefined
 * behaviour fails a test boot. Unrecoverable kinds (unreachable code reached,
 * a value-returning function fell off its end) always panic. */
#pragma once

#include "lib/types.h"

/* True when this kernel was compiled with -fsanitize=undefined (mk/debug.mk
 * defines SLAYER_UBSAN); false in a normal build, whose handlers never run. */
#ifdef SLAYER_UBSAN
#define UBSAN_ENABLED 1
#else
#define UBSAN_ENABLED 0
#endif

/* Sets strict mode from the kernel command line (see above); until it is
 * called, strict mode is off. Reads cmdline only during the call. */
void ubsan_configure(const char *cmdline);
/* Turns strict mode on or off (the self-test runner turns it on while it runs,
 * also when started from the monitor); returns what it was. */
bool ubsan_set_strict(bool on);
/* Starts a stretch in which reports are deliberate (self-tests): they are
 * printed as usual but are neither counted as unexpected nor made fatal by
 * strict mode. Unrecoverable kinds still panic. Not nestable. */
void ubsan_expect_begin(void);
/* Ends that stretch; returns how many reports were printed during it. */
unsigned long ubsan_expect_end(void);
/* Reports printed since boot, deliberate ones included. */
unsigned long ubsan_report_count(void);
/* Reports printed since boot outside ubsan_expect_begin/end. */
unsigned long ubsan_unexpected_count(void);
