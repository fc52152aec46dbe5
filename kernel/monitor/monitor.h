/* The interactive kernel monitor: a `slayer> ` prompt on serial and screen,
 * a line editor fed by the keyboard and the serial port, and commands that
 * show the memory manager at work (docs/monitor.md). */
#pragma once

#include "lib/types.h"

/* Enables keyboard and serial receive interrupts (pic_init must have run),
 * turns interrupts on, and runs the prompt loop forever. No input line can
 * make it return or crash; only `panic`, `reboot` and `poweroff` end it. */
NORETURN void monitor_run(void);
/* Runs one command line (as typed after the prompt; modified in place) and
 * prints its output. Unknown commands and bad arguments print one error line. */
void monitor_execute(char *line);
