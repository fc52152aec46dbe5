/* Declarations for code in entry.S. */
#pragma once

#include "lib/types.h"

/* Switches to the stack ending at `top` and calls fn(arg) there; never returns.
 * The old stack is abandoned (the boot stack is not freed). */
NORETURN void arch_switch_stack(vaddr_t top, NORETURN void (*fn)(void *), void *arg);

/* The boot stack in .bss that both entry paths start on. */
extern char boot_stack_bottom[], boot_stack_top[];
