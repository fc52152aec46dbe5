/* struct timespec is the kernel's (abi.h). */
#pragma once

#include <abi.h>

/* nanosleep: 0 after at least *req; -1 with errno (EINVAL, EFAULT). rem is ignored. */
int nanosleep(const struct timespec *req, struct timespec *rem);
