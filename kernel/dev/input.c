/* The input ring buffer. Producers: the keyboard and serial interrupt
 * handlers; consumers: the monitor and programs' read() on any CPU. */
#include "dev/input.h"

#include "arch/x86_64/cpu.h"
#include "dev/keyboard.h"
#include "dev/serial.h"
#include "lib/spinlock.h"
#include "proc/sched.h"

_Static_assert((INPUT_QUEUE_SIZE & (INPUT_QUEUE_SIZE - 1)) == 0, "queue size is a power of two");

/* input_lock (interrupt-saving, unranked: taken in the handlers, and
 * nothing but the space hook runs under it) protects everything below. */
static struct spinlock input_lock = SPINLOCK_IRQ_INIT("input", LOCK_RANK_NONE);
static uint8_t queue[INPUT_QUEUE_SIZE];
static uint32_t head, tail; /* head: next write; tail: next read; free-running */
static uint64_t dropped;
static void (*space_hook)(void);

/* After a byte was taken (input_lock held): let a paused producer go on. */
static void taken(void)
{
    if (space_hook && head - tail <= INPUT_QUEUE_SIZE / 2)
        space_hook();
}

bool input_push(uint8_t byte)
{
    spin_lock(&input_lock);
    bool ok = head - tail < INPUT_QUEUE_SIZE;
    if (ok)
        queue[head++ % INPUT_QUEUE_SIZE] = byte;
    else
        dropped++;
    spin_unlock(&input_lock);
    return ok;
}

int input_trygetc(void)
{
    spin_lock(&input_lock);
    int c = -1;
    if (head != tail) {
        c = queue[tail++ % INPUT_QUEUE_SIZE];
        taken();
    }
    spin_unlock(&input_lock);
    return c;
}

int input_getc(void)
{
    if (!(read_rflags() & RFLAGS_IF)) {
        /* No interrupts will fill the queue: fetch from the devices ourselves. */
        for (;;) {
            int c = input_trygetc();
            if (c >= 0)
                return c;
            keyboard_poll();
            c = serial_read_nonblock();
            if (c >= 0)
                return c;
            cpu_pause();
        }
    }
    for (;;) {
        cpu_cli();
        int c = input_trygetc(); /* leaves interrupts off: they were off when it locked */
        if (c >= 0) {
            cpu_sti();
            return c;
        }
        /* Other threads run meanwhile; with none, sti takes effect after
         * the next instruction: an interrupt arriving between the check
         * above and hlt still wakes the hlt. */
        sched_idle_wait();
    }
}

size_t input_space(void)
{
    spin_lock(&input_lock);
    size_t n = INPUT_QUEUE_SIZE - (head - tail);
    spin_unlock(&input_lock);
    return n;
}

void input_set_space_hook(void (*fn)(void))
{
    spin_lock(&input_lock);
    space_hook = fn;
    spin_unlock(&input_lock);
}

uint64_t input_dropped(void)
{
    return dropped;
}
