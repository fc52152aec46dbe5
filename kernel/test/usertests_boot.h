/* The `usertests` boot (kernel/test/usertests_boot.c): the command line
 * `usertests` (or `usertests=<test>`) runs boot module "usertests" as the
 * first process and judges the run, like `ktest` judges the self-tests. */
#pragma once

/* Runs the usertests program (argv[1] = which, when not empty), waits for
 * it, and checks that the kernel's counts (free frames, page tables, heap
 * bytes, spaces, processes, threads) are back where they were before it
 * started. Prints one verdict line; 0 when the program exited 0 and every
 * count is back, else 1. */
int usertests_boot(const char *which);
