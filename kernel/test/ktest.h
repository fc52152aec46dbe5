/* In-kernel self-tests. A test is a function registered with KTEST(); they
 * run when the command line contains "ktest" (or "ktest=<substring>"). */
#pragma once

#include "lib/types.h"

struct ktest {
    const char *name;
    void (*fn)(void);
    const char *file; /* where it is defined: tests run in file, then line order */
    int line;
};

#define KTEST(tname)                                                            \
    static void ktest_fn_##tname(void);                                         \
    static const struct ktest ktest_desc_##tname                                \
        __attribute__((used, section(".ktests"), aligned(8))) = {               \
            #tname, ktest_fn_##tname, __FILE__, __LINE__};                      \
    static void ktest_fn_##tname(void)

/* Marks the running test failed, printing the failed condition's text and a
 * message (the test goes on). */
void ktest_fail_at(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* KT_ASSERT(cond[, fmt, ...]) ends the test when cond is false; KT_EXPECT
 * records the failure and goes on. The condition may contain any text. */
#define KT_ASSERT(cond, ...)                                                    \
    do { if (!(cond)) { ktest_fail_at(__FILE__, __LINE__, #cond, "" __VA_ARGS__); return; } } while (0)
#define KT_EXPECT(cond, ...)                                                    \
    do { if (!(cond)) ktest_fail_at(__FILE__, __LINE__, #cond, "" __VA_ARGS__); } while (0)

/* Runs fn(arg) and reports whether it raised CPU exception `vector`
 * (e.g. 14 for a page fault). The fault is caught, the handler does not
 * halt; *cr2 (if non-NULL) receives CR2 and *err the error code.
 * Returns true when exactly that vector was raised. */
bool ktest_expect_fault(void (*fn)(void *), void *arg, int vector, uint64_t *cr2, uint64_t *err);

/* Drops to ring 3 at rip with stack rsp (interrupts off; both must be mapped
 * with PAGE_USER) and catches the first exception the user code raises,
 * which is the only way back. Returns true when that was `vector`, raised in
 * ring 3; *err (if non-NULL) receives the error code. Uses TSS.RSP0. */
bool ktest_expect_user_fault(uint64_t rip, uint64_t rsp, int vector, uint64_t *err);

/* Runs fn(arg) with panics caught: a panic_at() inside it records
 * "file:line: message" and resumes here instead of halting (kprintf prints
 * "ktest: caught panic: ..."). Returns true when fn panicked and the message
 * contains want (any panic when want is NULL); false when fn returned. State
 * the panicking code left half-done stays so: use it only where the code
 * panics before changing anything (misuse checks). */
bool ktest_expect_panic(void (*fn)(void *), void *arg, const char *want);
/* Like ktest_expect_panic, but a CPU exception raised by fn (a page fault
 * where a clean misuse report was due) is caught too: it returns false and
 * ktest_last_panic() describes the exception. Not for fn that installs its
 * own exception handlers. */
bool ktest_expect_panic_not_fault(void (*fn)(void *), void *arg, const char *want);
/* The message of the panic caught by the latest ktest_expect_panic(). */
const char *ktest_last_panic(void);

/* Starts copying everything kprintf prints into a 4 KiB buffer (emptied
 * first; what does not fit is dropped). */
void ktest_capture_start(void);
/* Stops the copying; the text stays readable through ktest_captured(). */
void ktest_capture_stop(void);
/* What was printed between the last ktest_capture_start and stop, NUL-terminated. */
const char *ktest_captured(void);

/* Free frames now (frame_get_stats). */
uint64_t ktest_free_frames(void);
/* Takes free frames, largest runs first (1 GiB, 2 MiB, 64 KiB, then single
 * frames), until at most `leave` are free (0: until frame_alloc fails); each
 * run records itself in its own first frame, so this needs no memory of its
 * own. Returns the list's head (0 when nothing was taken); *taken counts the
 * frames. */
paddr_t ktest_grab_frames(uint64_t leave, uint64_t *taken);
/* Gives back every run of a ktest_grab_frames() list. */
void ktest_release_frames(paddr_t head);
/* The run after `run` in a ktest_grab_frames() list (0 at the end); *count
 * (if non-NULL) receives run's length in frames. */
paddr_t ktest_grab_next(paddr_t run, uint64_t *count);

/* Runs all tests whose name contains filter (NULL or "" = all), prints one
 * line per test and "ktest: N passed, N failed"; returns the failure count.
 * A test that leaves the heap with other live blocks or bytes in use than it
 * found fails ("blocks, bytes left behind"): tests must hold in any heap
 * state (the monitor's `ktest` runs them with its own blocks live). */
int ktest_run_all(const char *filter);
