/* The early log buffer (lib/logbuf.h). */
#include "lib/logbuf.h"

#include "lib/string.h"

#define LOGBUF_SIZE 32768

static char buf[LOGBUF_SIZE];
static size_t used;
static size_t lost;
static bool closed;

void logbuf_sink(const char *s, size_t len)
{
    if (closed)
        return;
    size_t n = MIN(len, LOGBUF_SIZE - used);
    memcpy(buf + used, s, n);
    used += n;
    lost += len - n;
}

void logbuf_replay(kprintf_sink_fn sink)
{
    closed = true;
    sink(buf, used);
    if (lost) {
        char note[64];
        int n = ksnprintf(note, sizeof(note), "\n[log] %zu early bytes not kept\n", lost);
        sink(note, (size_t)n);
    }
}
