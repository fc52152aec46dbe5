/* QEMU's isa-debug-exit device (iobase 0xf4): lets tests end the VM. */
#pragma once

#include "lib/types.h"

#define QEMU_EXIT_SUCCESS 0x10 /* QEMU exits with (0x10 << 1) | 1 = 33 */
#define QEMU_EXIT_FAILURE 0x11 /* exits with 35 */
#define QEMU_EXIT_PANIC   0x12 /* exits with 37 */
#define QEMU_EXIT_REFUSED 0x13 /* exits with 39: this machine cannot run the kernel
                                * (also used by the 32-bit entry in entry.S) */

/* Asks QEMU to exit with status (code << 1) | 1. Returns only when the
 * device is absent (real hardware, or QEMU without it). */
void qemu_exit(uint8_t code);
