/* Signals: SIGKILL is the only one a program sends; SIGSEGV, SIGILL, SIGFPE
 * are why the kernel ended a process (abi.h). */
#pragma once

#include <sys/types.h>
#include <abi.h>

/* kill: kill(pid, SIGKILL) ends that process; -1 with errno (ESRCH, EINVAL). */
int kill(pid_t pid, int sig);
