/* User copies under SMAP with exception-table fixups (usercopy.h).
 *
 * The copies are one `rep movsb` each: on a page fault the CPU leaves RCX,
 * RSI and RDI describing the bytes not yet moved, so the instruction can be
 * resumed after the fault handler maps the page, and when it cannot, the
 * fixup (extable.h) resumes after it with the remaining count in RCX. The
 * exception handler returns with iretq, which restores RFLAGS.AC as it was at
 * the fault (open); user_access_end closes it on every path. */
#include "arch/x86_64/usercopy.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/extable.h"
#include "lib/errno.h"
#include "lib/string.h"

bool user_range_ok(uint64_t uaddr, uint64_t len)
{
    return uaddr <= USER_TOP && len <= USER_TOP - uaddr;
}

/* rep movsb of *n bytes from *src to *dst, allowed to fault: returns the
 * bytes not moved (0 when all were), with *n, *src, *dst advanced. */
static inline uint64_t movsb_nofault(void *dst, const void *src, uint64_t n)
{
    uint32_t failed = 0;
    __asm__ volatile("1: rep movsb\n" EXTABLE_FAULT_TO_OP0
                     : "+r"(failed), "+D"(dst), "+S"(src), "+c"(n)
                     :
                     : "memory");
    return failed ? (n ? n : 1) : 0;
}

int copy_from_user(void *dst, uint64_t usrc, uint64_t len)
{
    if (!user_range_ok(usrc, len))
        return -EFAULT;
    if (len == 0)
        return 0;
    user_access_begin();
    uint64_t left = movsb_nofault(dst, (const void *)usrc, len);
    user_access_end();
    if (left) {
        memset((uint8_t *)dst + (len - left), 0, left);
        return -EFAULT;
    }
    return 0;
}

int copy_to_user(uint64_t udst, const void *src, uint64_t len)
{
    if (!user_range_ok(udst, len))
        return -EFAULT;
    if (len == 0)
        return 0;
    user_access_begin();
    uint64_t left = movsb_nofault((void *)udst, src, len);
    user_access_end();
    return left ? -EFAULT : 0;
}

/* Loads the byte at p into *out, allowed to fault: false when it did. */
static inline bool load_u8_nofault(uint64_t p, uint8_t *out)
{
    uint32_t failed = 0;
    uint8_t v;
    __asm__ volatile("1: movb (%2), %1\n" EXTABLE_FAULT_TO_OP0
                     : "+r"(failed), "=q"(v)
                     : "r"(p)
                     : "memory");
    *out = v;
    return !failed;
}

long strncpy_from_user(char *dst, uint64_t usrc, long max)
{
    if (max <= 0)
        return -ERANGE;
    if (usrc >= USER_TOP) {
        dst[0] = 0;
        return -EFAULT;
    }
    /* bytes readable before USER_TOP; a string that reaches it unterminated faults */
    uint64_t room = USER_TOP - usrc;
    uint64_t limit = (uint64_t)max < room ? (uint64_t)max : room;
    long ret = -ERANGE;
    user_access_begin();
    for (uint64_t i = 0; i < limit; i++) {
        uint8_t c;
        if (!load_u8_nofault(usrc + i, &c)) {
            ret = -EFAULT;
            break;
        }
        dst[i] = (char)c;
        if (c == 0) {
            ret = (long)i;
            break;
        }
    }
    user_access_end();
    if (ret == -ERANGE && limit < (uint64_t)max)
        ret = -EFAULT; /* ran into USER_TOP before max bytes */
    if (ret < 0)
        dst[0] = 0;
    return ret;
}
