/* COM1 serial port: the first output device, up before anything else. */
#pragma once

#include "lib/types.h"

/* Programs COM1 for 115200 baud 8N1 with FIFOs; returns false when no UART
 * answers (loopback test failed), in which case writes are dropped. */
bool serial_init(void);
/* Writes len bytes to COM1 ("\n" becomes "\r\n"); a kprintf sink. */
void serial_write(const char *s, size_t len);
/* Returns the next received byte, or -1 when none is waiting. */
int serial_read_nonblock(void);
