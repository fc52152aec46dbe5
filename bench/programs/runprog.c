/* runprog: runs one program and reports its cost (bench/programs/run.py).
 *
 *   runprog RESULT PRELOAD PROGRAM [ARGS...]
 *
 * Forks, sets LD_PRELOAD=PRELOAD in the child ("-": leaves LD_PRELOAD unset),
 * execs PROGRAM (found on PATH) with stdin, stdout and stderr inherited,
 * waits for it with wait4 and writes "wall_s cpu_s maxrss_kib" to RESULT;
 * exits with the program's status (128 + signal when killed).
 *
 * Why a program of its own: Linux keeps a process's peak RSS across exec,
 * and a child forked from the Python runner starts out as big as the runner
 * (some 20 MiB), which would floor every figure. Forked from this small
 * program, the child's peak is its own. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: runprog RESULT PRELOAD PROGRAM [ARGS...]\n");
        return 2;
    }
    unsetenv("LD_PRELOAD");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("runprog: fork");
        return 2;
    }
    if (pid == 0) {
        if (argv[2][0] != '-' || argv[2][1] != 0)
            setenv("LD_PRELOAD", argv[2], 1);
        execvp(argv[3], argv + 3);
        perror("runprog: exec");
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("runprog: wait4");
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    fprintf(f, "%.6f %.6f %ld\n", wall, cpu, ru.ru_maxrss);
    fclose(f);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
