/* The early log: everything kprintf printed before the screen existed, kept
 * so the console can show the whole boot log, not only what came after it. */
#pragma once

#include "lib/printf.h"

/* A kprintf sink that keeps the first LOGBUF_SIZE bytes of output. */
void logbuf_sink(const char *s, size_t len);
/* Feeds everything kept so far to `sink` (a note says when bytes were lost);
 * afterwards the buffer stops recording. */
void logbuf_replay(kprintf_sink_fn sink);
