/* The compiler's stack protector (-fstack-protector-strong with a global
 * guard): every function with an array or an address-taken local keeps a copy
 * of __stack_chk_guard below its return address and checks it on return. */
#pragma once

#include "lib/types.h"

/* Where the canary came from: "RDSEED", "RDRAND" or "TSC". */
const char *stack_protector_source(void);

/* Seeds the canary from RDSEED, else RDRAND, else the TSC, with its low byte
 * zero (string copies stop there). Call once, first thing in kernel_main: a
 * function that is on the stack across this call and returns later would see
 * the canary change; kernel_main never returns. */
void stack_protector_init(void);

/* The canary every protected frame holds. */
extern uintptr_t __stack_chk_guard;
