/* Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c).
 *
 * Every target is the kernel's own portable sources (HOST_SRC) plus the host
 * support layer (tests/host/support.c: panic_at, the log sink, the HHDM
 * arena), driven by one fuzz_*.c file. A panic inside the kernel aborts (a
 * finding) unless the target expects it with HOST_EXPECT_PANIC.
 *
 * Inputs are read through struct fuzz_in: every read past the end yields
 * zeros, so each byte string is a valid input and the seeds written by
 * seedgen.c use the same readers' layout (little-endian, no padding). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* A function without coverage instrumentation (no edge counters, no
 * comparison hooks): for the harness's own loops over bytes, slots or
 * bitmaps, where a hook per iteration costs more than the work and guides
 * nothing. Never for kernel code or for a harness branch that picks what to
 * do next. */
#define FUZZ_NOCOV __attribute__((no_sanitize("coverage"), noinline))

/* A cursor over the fuzzer's bytes. */
struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

/* Fails the run: prints the check and where it was, then aborts (libFuzzer
 * saves the input as crash-<sha1>). The kernel's log tail helps the reader. */
#define FUZZ_CHECK(cond, ...)                                                            \
    do {                                                                                 \
        if (__builtin_expect(!(cond), 0))                                                \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                           \
    } while (0)

/* Prints "fuzz check failed" with the condition and message, then aborts. */
__attribute__((noreturn, format(printf, 4, 5))) void fuzz_fail(const char *file, int line,
                                                              const char *cond,
                                                              const char *fmt, ...);

/* Free frames now, every CPU's cache included (frame_get_stats). */
uint64_t fuzz_free_frames(void);

/* True when no byte is left. */
static inline bool fuzz_done(const struct fuzz_in *in)
{
    return in->n == 0;
}

/* The next `size` bytes as a little-endian number (missing bytes read as 0).
 * Without coverage hooks: every read of every target goes through it, and
 * the comparisons of its loop guide nothing. */
static FUZZ_NOCOV uint64_t fuzz_bytes(struct fuzz_in *in, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        if (in->n) {
            v |= (uint64_t)*in->p << (8 * i);
            in->p++;
            in->n--;
        }
    }
    return v;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in) { return (uint8_t)fuzz_bytes(in, 1); }
static inline uint16_t fuzz_u16(struct fuzz_in *in) { return (uint16_t)fuzz_bytes(in, 2); }
static inline uint32_t fuzz_u32(struct fuzz_in *in) { return (uint32_t)fuzz_bytes(in, 4); }
static inline uint64_t fuzz_u64(struct fuzz_in *in) { return fuzz_bytes(in, 8); }

/* Copies the next `len` bytes into dst (zeros past the end of the input). */
static inline void fuzz_copy(struct fuzz_in *in, void *dst, size_t len)
{
    size_t k = len < in->n ? len : in->n;
    memcpy(dst, in->p, k);
    memset((uint8_t *)dst + k, 0, len - k);
    in->p += k;
    in->n -= k;
}

/* Quiets the kernel's log for a run: clears the captured lines (support.c
 * keeps the newest 64 KiB, so a long run never grows it). */
static inline void fuzz_log_reset(void)
{
    host_log_clear();
}
