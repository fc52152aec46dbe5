/* The input ring buffer. One consumer (the monitor), producers in interrupt
 * handlers on the same CPU: the consumer disables interrupts around its read,
 * so head and tail never change under it. */
#include "dev/input.h"

#include "arch/x86_64/cpu.h"
#include "dev/keyboard.h"
#include "dev/serial.h"
#include "proc/sched.h"

_Static_assert((INPUT_QUEUE_SIZE & (INPUT_QUEUE_SIZE - 1)) == 0, "queue size is a power of two");

/* Locking: interrupts off (single CPU) protects everything below. */
static uint8_t queue[INPUT_QUEUE_SIZE];
static uint32_t head, tail; /* head: next write; tail: next read; free-running */
static uint64_t dropped;
static void (*space_hook)(void);

/* After a byte was taken (interrupts off): let a paused producer go on. */
static void taken(void)
{
    if (space_hook && head - tail <= INPUT_QUEUE_SIZE / 2)
        space_hook();
}

bool input_push(uint8_t byte)
{
    uint64_t flags = cpu_irq_save();
    bool ok = head - tail < INPUT_QUEUE_SIZE;
    if (ok)
        queue[head++ % INPUT_QUEUE_SIZE] = byte;
    else
        dropped++;
    cpu_irq_restore(flags);
    return ok;
}

int input_trygetc(void)
{
    uint64_t flags = cpu_irq_save();
    int c = -1;
    if (head != tail) {
        c = queue[tail++ % INPUT_QUEUE_SIZE];
        taken();
    }
    cpu_irq_restore(flags);
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
        if (head != tail) {
            int c = queue[tail++ % INPUT_QUEUE_SIZE];
            taken();
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
    uint64_t flags = cpu_irq_save();
    size_t n = INPUT_QUEUE_SIZE - (head - tail);
    cpu_irq_restore(flags);
    return n;
}

void input_set_space_hook(void (*fn)(void))
{
    uint64_t flags = cpu_irq_save();
    space_hook = fn;
    cpu_irq_restore(flags);
}

uint64_t input_dropped(void)
{
    return dropped;
}
