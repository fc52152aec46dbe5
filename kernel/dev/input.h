/* One input queue for the whole kernel: the PS/2 keyboard and the serial
 * port both push bytes into it (from their interrupt handlers); the monitor
 * takes them out. Bytes are what a terminal sends: printable ASCII, '\r' or
 * '\n' for Enter, 0x08 or 0x7f for Backspace, ESC sequences for arrows. */
#pragma once

#include "lib/types.h"

#define INPUT_QUEUE_SIZE 512 /* bytes; a full queue drops new bytes */

/* Queues one byte; safe in interrupt context. Returns false (and counts the
 * byte as dropped) when the queue is full. */
bool input_push(uint8_t byte);
/* The next byte, blocking until one arrives. With interrupts enabled it
 * sleeps in hlt between interrupts; with interrupts disabled it polls the
 * keyboard and serial port instead, so it never deadlocks. */
int input_getc(void);
/* The next byte, or -1 when the queue is empty (never blocks). */
int input_trygetc(void);
/* Free room in the queue, in bytes. */
size_t input_space(void);
/* Registers fn to be called (interrupts off) whenever the consumer has taken
 * a byte and the queue is at most half full: a producer that stopped its
 * device because the queue was full (serial flow control) restarts it there.
 * One hook; NULL removes it. */
void input_set_space_hook(void (*fn)(void));
/* Bytes dropped because the queue was full. */
uint64_t input_dropped(void);
