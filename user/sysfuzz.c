/* sysfuzz: the system-call fuzzer of usertests (fuzzgen.h) as a long run.
 *
 *   sysfuzz [rounds [seed]]
 *
 * Each round forks a child that issues 10,000 random calls; the child may
 * die of its own calls (munmap of its stack, ...), which is fine. Rounds
 * run until `rounds` is reached (0 or none: forever, stopped with the
 * monitor's `kill`); every 10 rounds one line with the kernel's counts, so
 * a leak shows as a trend. Exits 0 unless fork or wait fails. */
#include <errno.h>
#include <slayer.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzzgen.h"

int main(int argc, char **argv)
{
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 0) : 0;
    unsigned seed = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 1;
    struct slayer_memstat start, now;
    memstat(&start);
    unsigned long killed = 0;
    for (unsigned long r = 0; rounds == 0 || r < rounds; r++) {
        int pid = fork();
        if (pid < 0) {
            printf("sysfuzz: fork: errno %d\n", errno);
            return 1;
        }
        if (pid == 0) {
            fuzz_calls(seed + (unsigned)r * 7919u, 10000);
            exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid) {
            printf("sysfuzz: waitpid: errno %d\n", errno);
            return 1;
        }
        killed += WIFSIGNALED(st);
        if ((r + 1) % 10 == 0 || r + 1 == rounds) {
            memstat(&now);
            printf("sysfuzz: %lu rounds, %lu calls, %lu children killed; free frames %lu "
                   "(%+ld), heap %lu (%+ld), procs %lu\n",
                   r + 1, now.syscalls - start.syscalls, killed, now.free_frames,
                   (long)(now.free_frames - start.free_frames), now.heap_bytes,
                   (long)(now.heap_bytes - start.heap_bytes), now.procs);
        }
    }
    return 0;
}
