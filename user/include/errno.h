/* errno: the E* values are the kernel's (kernel/uapi/abi.h). One errno per
 * process (threads share it): set by the POSIX-style wrappers on failure,
 * never cleared by a success. */
#pragma once

#include <abi.h>

extern int errno;
