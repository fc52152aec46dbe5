/* Waiting for children: W* and the status encoding are the kernel's (abi.h). */
#pragma once

#include <sys/types.h>
#include <abi.h>

/* wait4: a child's pid once it ended (status stored when non-NULL), 0 with
 * WNOHANG when none ended yet, -1 with errno (ECHILD: no such child). */
pid_t wait4(pid_t pid, int *status, int options, void *rusage);
/* waitpid / wait: wait4 without rusage; wait is waitpid(-1, status, 0). */
pid_t waitpid(pid_t pid, int *status, int options);
pid_t wait(int *status);
