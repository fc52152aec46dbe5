/* Anonymous memory: PROT_* and MAP_* are the kernel's (abi.h). mmap
 * returns MAP_FAILED, the others -1, with errno set on an error. */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <abi.h>

/* mmap: len bytes of demand-zero memory (MAP_PRIVATE | MAP_ANONYMOUS, fd -1). */
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
/* munmap / mprotect: effective on every CPU when they return. */
int munmap(void *addr, size_t len);
int mprotect(void *addr, size_t len, int prot);
