/* ThreadSanitizer test of lib/spinlock and the print lock (make tsan-test):
 * threads standing for CPUs (each its own host_cpu_index) update plain
 * shared data under plain, interrupt-saving and try-locked spinlocks, and
 * print concurrently through kprintf (whose sinks, the host log among them,
 * are plain data the print lock protects). TSan sees the ticket lock's
 * acquire/release atomics, so any access the locks do not order is reported
 * and fails the run; the counts are checked too. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "lib/printf.h"
#include "lib/spinlock.h"
#include "support.h"

#define CPUS   4
#define ROUNDS 5000
#define PRINTS 200

static struct spinlock plain = SPINLOCK_INIT("tsan-plain", LOCK_RANK_PAGING);
static struct spinlock irq = SPINLOCK_IRQ_INIT("tsan-irq", LOCK_RANK_PRINT);
static struct spinlock tried = SPINLOCK_INIT("tsan-try", LOCK_RANK_FRAME);

/* Each protected by the lock of the same name; deliberately plain variables
 * and a plain array, so that TSan checks the lock's ordering. */
static unsigned long plain_count;
static unsigned long irq_count;
static unsigned long tried_count, tried_refused[CPUS];
static unsigned history[CPUS * ROUNDS]; /* plain: which CPU got each turn */

static void *cpu_main(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    host_cpu_index = me;
    for (unsigned i = 0; i < ROUNDS; i++) {
        if (spin_trylock(&tried)) {
            tried_count++;
            sched_yield(); /* hold it a while: the others get refused */
            spin_unlock(&tried);
        } else {
            tried_refused[me]++; /* only this CPU writes its slot */
        }
        spin_lock(&plain);
        history[plain_count++] = me;
        /* nested in rank order: plain (paging) < irq (print) */
        spin_lock(&irq);
        irq_count++;
        spin_unlock(&irq);
        spin_unlock(&plain);
    }
    /* then only printing: nothing but the print lock orders the sinks' writes */
    for (unsigned i = 0; i < PRINTS; i++)
        kprintf("cpu %u: line %u\n", me, i);
    return NULL;
}

int main(void)
{
    pthread_t th[CPUS];
    for (unsigned k = 0; k < CPUS; k++)
        if (pthread_create(&th[k], NULL, cpu_main, (void *)(uintptr_t)k)) {
            fprintf(stderr, "tsan_spinlock: pthread_create failed\n");
            return 1;
        }
    for (unsigned k = 0; k < CPUS; k++)
        pthread_join(th[k], NULL);

    unsigned long per_cpu[CPUS] = {0}, refused = 0;
    for (unsigned long i = 0; i < plain_count; i++)
        per_cpu[history[i]]++;
    for (unsigned k = 0; k < CPUS; k++) {
        refused += tried_refused[k];
        if (per_cpu[k] != ROUNDS) {
            fprintf(stderr, "tsan_spinlock: CPU %u had %lu turns, not %u\n", k, per_cpu[k],
                    ROUNDS);
            return 1;
        }
    }
    if (plain_count != CPUS * ROUNDS || irq_count != CPUS * ROUNDS ||
        tried_count + refused != CPUS * ROUNDS) {
        fprintf(stderr, "tsan_spinlock: counts %lu %lu %lu+%lu, want %u each\n", plain_count,
                irq_count, tried_count, refused, CPUS * ROUNDS);
        return 1;
    }
    if (spin_is_locked(&plain) || spin_is_locked(&irq) || spin_is_locked(&tried) ||
        spin_is_locked(&print_lock)) {
        fprintf(stderr, "tsan_spinlock: a lock is still held\n");
        return 1;
    }
    if (!host_log_contains("cpu 3: line 199")) {
        fprintf(stderr, "tsan_spinlock: a kprintf line is missing\n");
        return 1;
    }
    printf("tsan_spinlock: %u CPUs x %u rounds, %lu trylocks refused: ok\n", CPUS, ROUNDS,
           refused);
    return 0;
}
