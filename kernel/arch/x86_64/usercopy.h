/* Copies between the kernel and the user half of the address space (issue
 * 15). Every function checks the whole user range first and refuses a range
 * that leaves [0, USER_TOP) or wraps before touching anything (kernel-half
 * and non-canonical pointers included); the copy itself runs with SMAP's
 * window open (user_access_begin/end) around the accessing instructions
 * only, and every instruction that touches user memory has an exception-table
 * entry (extable.h), so a page fault the vm layer cannot resolve ends the
 * copy with -EFAULT instead of a kernel crash. The accessing instructions are
 * restartable where they fault (rep movsb, single byte loads): the fault
 * handler may map the page and resume them. Kernel only (arch). Any CPU,
 * never from an interrupt handler (a user fault may need to allocate). */
#pragma once

#include "lib/types.h"

#define USER_TOP 0x0000800000000000ULL /* first address above the user half */

/* True when [uaddr, uaddr + len) lies inside [0, USER_TOP) without wrapping
 * (len 0: uaddr <= USER_TOP). Never touches memory. */
bool user_range_ok(uint64_t uaddr, uint64_t len);
/* Copies len bytes from user address usrc to dst: 0, or -EFAULT when the
 * range is refused (dst untouched) or a page of it faults; then the bytes
 * before the faulting one are copied and the rest of dst is zeroed (no stale
 * kernel bytes survive a failed copy). */
int copy_from_user(void *dst, uint64_t usrc, uint64_t len);
/* Copies len bytes from src to user address udst: 0, or -EFAULT when the
 * range is refused (nothing written) or a page of it faults (then the user
 * bytes before the faulting one have been written). */
int copy_to_user(uint64_t udst, const void *src, uint64_t len);
/* Copies the NUL-terminated string at usrc into dst (max bytes of room):
 * its length without the NUL, dst NUL-terminated; -ERANGE when none of the
 * first max bytes is a NUL (max <= 0 included), -EFAULT when a byte before
 * the NUL faults or lies at or above USER_TOP. On an error dst holds the
 * empty string (when max > 0). Bytes past the NUL are never read. */
long strncpy_from_user(char *dst, uint64_t usrc, long max);
