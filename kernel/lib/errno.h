/* Error codes the kernel returns negated (-ENOMEM, ...): Linux's values, so
 * the system-call interface can pass them to programs unchanged. */
#pragma once
#define ENOENT 2
#define EBADF 9
#define ENOMEM 12
#define EFAULT 14
#define EEXIST 17
#define EINVAL 22
#define ERANGE 34
#define ENOSYS 38
