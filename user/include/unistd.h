/* POSIX-style calls: -1 with errno set on an error (the raw sys_* calls in
 * slayer.h return -errno instead). */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <abi.h>

#define STDIN_FILENO  0
#define STDOUT_FILENO 1
#define STDERR_FILENO 2

/* read: bytes typed at the console (fd 0), blocking until at least one. */
ssize_t read(int fd, void *buf, size_t len);
/* write: all of buf to the console and serial port (fd 1 or 2). */
ssize_t write(int fd, const void *buf, size_t len);
/* fork: the child's pid in the parent, 0 in the child, -1 on error. */
pid_t fork(void);
/* execve: runs boot module `name` in place of this program; returns only on error. */
int execve(const char *name, char *const argv[], char *const envp[]);
/* execv: execve with an empty environment. */
int execv(const char *name, char *const argv[]);
/* getpid / getppid: this process's id and its parent's (0: started by the kernel). */
pid_t getpid(void);
pid_t getppid(void);
/* _exit: ends the process (every thread) with status code & 0xff. */
__attribute__((noreturn)) void _exit(int code);
/* sleep / usleep: wait at least that long without using the CPU; 0 or -1. */
unsigned sleep(unsigned seconds);
int usleep(unsigned long usec);
