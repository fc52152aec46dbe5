/* hello: the first user program. It computes things the kernel's tests can
 * check afterwards through the space's page tables (kernel/test/test_exec.c):
 * it sums an array from .rodata, checks that .data came with its initial
 * values and that .bss came zeroed (bytes counted), writes a pattern over
 * .bss (several pages, the first one shared with the end of .data), copies
 * argv[0], and records all of it in `report`, the first object of .data.
 * Then it returns: crt0 ends it with exit_group (as a process, status 0);
 * in the self-test's ring-3 run, which has no process, exit_group answers
 * -ENOSYS and the ud2 after it ends the run. */
#include "hello.h"

__attribute__((section(".data.first"))) struct hello_report report = {
    .magic = HELLO_MAGIC_START,
};

/* The first 16 primes: they sum to HELLO_RODATA_SUM. */
static const unsigned primes[16] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53};

/* Initialized data: must arrive with these values (not static: the compiler
 * may not fold the reads of data nothing in this file writes). */
unsigned countdown[8] = {8, 7, 6, 5, 4, 3, 2, 1};

/* Must arrive zeroed; spans several pages. */
unsigned char scratch[HELLO_BSS_BYTES];

int main(int argc, char **argv, char **envp)
{
    (void)envp;
    unsigned long sum = 0;
    for (unsigned i = 0; i < 16; i++)
        sum += primes[i];
    report.rodata_sum = sum;

    unsigned long ok = 1;
    for (unsigned i = 0; i < 8; i++)
        ok &= countdown[i] == 8 - i;
    report.data_ok = ok;

    unsigned long zeros = 0;
    for (unsigned long i = 0; i < HELLO_BSS_BYTES; i++)
        zeros += scratch[i] == 0;
    report.bss_zero = zeros;
    for (unsigned long i = 0; i < HELLO_BSS_BYTES; i++)
        scratch[i] = HELLO_PATTERN(i);
    report.bss_addr = (unsigned long)scratch;

    report.argc = (unsigned long)argc;
    const char *a = argc > 0 && argv[0] ? argv[0] : "";
    unsigned i = 0;
    for (; i + 1 < sizeof(report.arg0) && a[i]; i++)
        report.arg0[i] = a[i];
    report.arg0[i] = 0;
    report.argv_null = argv[argc] == 0;

    report.magic = HELLO_MAGIC_DONE;
    return 0;
}
