/* COM1 receive interrupts (IRQ 4): received bytes go to the input queue. */
#pragma once

#include "lib/types.h"

/* Switches COM1 to a 1-byte receive trigger, drains what is waiting into the
 * input queue, registers the IRQ 4 handler, enables the UART's
 * received-data interrupt and unmasks IRQ 4. Returns false, changing nothing,
 * when no UART answers. Needs pic_init() and serial_init() first. */
bool serial_enable_rx_irq(void);
