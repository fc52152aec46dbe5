/* Frame-pointer stack walking. A frame is [rbp] = caller's rbp,
 * [rbp + 8] = return address; every pointer is checked before it is read,
 * because backtraces are printed exactly when things have gone wrong. */
#include "lib/backtrace.h"

#include "lib/printf.h"
#include "lib/symbols.h"

#define HIGHER_HALF 0xffff800000000000ULL /* x86_64: the first canonical upper-half address */

extern char __kernel_start[], __kernel_end[];

/* Beyond the kernel image, whoever knows the page tables answers (mm registers
 * its walker); until then nothing outside the image counts as readable. */
static backtrace_readable_fn readable_fn;

void backtrace_set_readable(backtrace_readable_fn fn)
{
    readable_fn = fn;
}

bool backtrace_readable(uint64_t va)
{
    if (va >= (uint64_t)(uintptr_t)__kernel_start && va <= (uint64_t)(uintptr_t)__kernel_end - 8)
        return true;
    if (va < HIGHER_HALF || va > UINT64_MAX - 8) /* lower half or non-canonical */
        return false;
    backtrace_readable_fn fn = readable_fn;
    if (!fn || !fn(va))
        return false;
    return ((va + 7) & ~0xfffULL) == (va & ~0xfffULL) || fn(va + 7);
}

size_t backtrace_collect(uint64_t rbp, uint64_t *out, size_t max)
{
    size_t n = 0;
    if (max > BACKTRACE_MAX_FRAMES)
        max = BACKTRACE_MAX_FRAMES;
    while (n < max && rbp >= HIGHER_HALF && (rbp & 7) == 0 && backtrace_readable(rbp) &&
           backtrace_readable(rbp + 8)) {
        const uint64_t *frame = (const uint64_t *)(uintptr_t)rbp;
        uint64_t ret = frame[1];
        if (ret == 0)
            break;
        out[n++] = ret;
        uint64_t next = frame[0];
        if (next <= rbp)
            break;
        rbp = next;
    }
    return n;
}

static void print_frame(unsigned n, uint64_t addr, bool is_return)
{
    /* A return address may already lie in the next function (after a call
     * to a noreturn function): symbolize the call instruction's last byte. */
    uint64_t off = 0;
    const char *name = symbols_lookup(is_return ? addr - 1 : addr, &off);
    if (name)
        kprintf("  #%u 0x%016llx %s+%#llx\n", n, (unsigned long long)addr, name,
                (unsigned long long)(off + (is_return ? 1 : 0)));
    else
        kprintf("  #%u 0x%016llx ?\n", n, (unsigned long long)addr);
}

static void print_walk(unsigned first, uint64_t rbp)
{
    uint64_t frames[BACKTRACE_MAX_FRAMES];
    size_t count = backtrace_collect(rbp, frames, BACKTRACE_MAX_FRAMES);
    for (size_t i = 0; i < count; i++)
        print_frame(first + (unsigned)i, frames[i], true);
}

void backtrace_print_from(uint64_t rip, uint64_t rbp)
{
    kprintf("backtrace:\n");
    print_frame(0, rip, false);
    print_walk(1, rbp);
}

void backtrace_print_fault(uint64_t rip, uint64_t rsp, uint64_t rbp)
{
    kprintf("backtrace:\n");
    print_frame(0, rip, false);
    /* Stopped in a prologue, the function has no frame yet and RBP still
     * names its caller's: the return address sits at RSP (before push %rbp)
     * or RSP + 8 (right after it). */
    uint64_t off = 0, slot = 0;
    if (symbols_lookup(rip, &off) && (rsp & 7) == 0) {
        if (off == 0)
            slot = rsp;
        else if (off == 1 && backtrace_readable(rip - 1) && *(const uint8_t *)(uintptr_t)(rip - 1) == 0x55)
            slot = rsp + 8;
    }
    unsigned next = 1;
    if (slot && backtrace_readable(slot)) {
        uint64_t ret = *(const uint64_t *)(uintptr_t)slot;
        if (symbols_lookup(ret - 1, NULL))
            print_frame(next++, ret, true);
    }
    print_walk(next, rbp);
}

void backtrace_print_frames(uint64_t rbp)
{
    kprintf("backtrace:\n");
    print_walk(0, rbp);
}

void backtrace_print(void)
{
    backtrace_print_frames((uint64_t)(uintptr_t)__builtin_frame_address(0));
}
