/* What panic_at() and the fatal exception report share (lib/panic.c). */
#pragma once

#include "lib/types.h"

/* Called once, after a panic or fatal exception has been reported and before
 * the CPU halts. main.c defines it (in test mode: exit QEMU with a failure
 * code); the weak default does nothing. It must not panic. */
void panic_hook(void);
/* Marks the kernel as dying. Returns true for the first caller; false when a
 * panic or fatal report is already under way (print one line and halt). */
bool panic_begin(void);
/* True once panic_begin() has been called. */
bool panic_in_progress(void);
