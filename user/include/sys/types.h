/* The basic types of the user library. */
#pragma once

#include <stddef.h>

typedef int pid_t;
typedef long ssize_t;
typedef long off_t;
