/* Symbolized stack traces by walking the frame-pointer (RBP) chain; the
 * kernel is built with -fno-omit-frame-pointer. */
#pragma once

#include "lib/types.h"

#define BACKTRACE_MAX_FRAMES 32

/* Follows the RBP chain from rbp, storing up to max return addresses in out;
 * returns how many. Stops at a NULL, misaligned, non-canonical, lower-half
 * or unreadable frame, at a frame not strictly above the previous one, at a
 * NULL return address, or after BACKTRACE_MAX_FRAMES. Never faults. */
size_t backtrace_collect(uint64_t rbp, uint64_t *out, size_t max);
/* Prints "  #0 <rip> func+0x1a", then one such line per frame found from rbp.
 * Return addresses are symbolized by the call instruction before them. */
void backtrace_print_from(uint64_t rip, uint64_t rbp);
/* Like backtrace_print_from for an interrupted context: when rip is at the
 * first or second byte of a function (no frame of its own yet), the return
 * address found at rsp is printed as frame #1. */
void backtrace_print_fault(uint64_t rip, uint64_t rsp, uint64_t rbp);
/* Prints one line per return address found walking from rbp, numbered from
 * #0: called with a function's own frame address, #0 is its caller. */
void backtrace_print_frames(uint64_t rbp);
/* Prints the caller's own backtrace (frames above backtrace_print). */
void backtrace_print(void);
/* True when the 8 bytes at va can be read without a fault: inside the kernel
 * image, or in the upper half where the registered check says both of the
 * pages they touch are readable. Conservative: false when unsure. */
bool backtrace_readable(uint64_t va);
/* A check that one byte at va (upper half, canonical) can be read without a
 * fault; must itself never fault. */
typedef bool (*backtrace_readable_fn)(uint64_t va);
/* Installs the check backtrace_readable uses outside the kernel image (main
 * registers mm's pagewalk_readable once paging is up); NULL: the image only. */
void backtrace_set_readable(backtrace_readable_fn fn);
