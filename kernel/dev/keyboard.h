/* PS/2 keyboard on IRQ 1, scancode set 1 (the i8042 translates the
 * keyboard's set 2 for us), US layout. Key presses become bytes in the input
 * queue (dev/input.h): letters, digits and punctuation with Shift and Caps
 * Lock, Enter '\r', Backspace 0x08, Tab, Escape, Ctrl+letter as 0x01..0x1a,
 * arrows as ESC [ A..D. */
#pragma once

#include "lib/types.h"

/* Sets up the i8042 (translation and IRQ 1 on, output buffer drained),
 * registers the IRQ 1 handler and unmasks it. Returns false, changing
 * nothing, when no controller answers. Needs pic_init() first. */
bool keyboard_init(void);
/* Reads and handles every byte the controller holds (for polling with
 * interrupts off); safe to call at any time. */
void keyboard_poll(void);
