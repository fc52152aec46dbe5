/* Shared by every fuzz target: the failure report, the free-frame count. */
#include "fuzz.h"

#include <stdarg.h>

#include "mm/frame.h"

uint64_t fuzz_free_frames(void)
{
    struct frame_stats s;
    frame_get_stats(&s);
    return s.free_frames;
}

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz check failed at %s:%d: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    size_t tail = host_log_len > 2048 ? host_log_len - 2048 : 0;
    fprintf(stderr, "\n-- kernel log (tail) --\n%s\n", host_log + tail);
    abort();
}
