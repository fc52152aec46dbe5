/* In-kernel tests of the user copies (arch/x86_64/usercopy.h): copies that
 * work, ranges refused before any access (kernel half, kernel image, wrap,
 * across USER_TOP), faults mid-copy turned into -EFAULT by the exception
 * table, strncpy_from_user's limits, and SMAP's window closed afterwards.
 * The user pages are mapped in kernel_as with PAGE_USER (as test_protect.c
 * does) and unmapped again at the end. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/usercopy.h"
#include "lib/errno.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "test/ktest.h"

/* Two mapped user pages U0, U1 and an unmapped one after them (U2), away
 * from test_protect.c's pages; a third mapped page just below USER_TOP. */
#define U0   0x0000000050000000ULL
#define U1   (U0 + PAGE_SIZE)
#define U2   (U0 + 2 * PAGE_SIZE)
#define UTOP (USER_TOP - PAGE_SIZE)

struct upages {
    paddr_t f[3]; /* frames behind U0, U1, UTOP */
    uint64_t tables_before;
};

static const vaddr_t upage_va[3] = {U0, U1, UTOP};

static bool upages_map(struct upages *u)
{
    memset(u, 0, sizeof(*u));
    u->tables_before = paging_table_pages();
    for (int i = 0; i < 3; i++) {
        u->f[i] = frame_alloc_zeroed();
        if (!u->f[i] || paging_map(u->f[i], upage_va[i], PAGE_USER | PAGE_WRITABLE | PAGE_NX) != 0)
            return false;
    }
    return paging_translate(U2) == PAGING_NO_MAPPING;
}

static void upages_unmap(struct upages *u)
{
    for (int i = 0; i < 3; i++) {
        if (paging_translate(upage_va[i]) != PAGING_NO_MAPPING)
            paging_unmap(upage_va[i]);
        if (u->f[i])
            frame_free(u->f[i]);
    }
}

/* The kernel's view of user byte va (through the HHDM, no SMAP involved). */
static uint8_t *kview(const struct upages *u, vaddr_t va)
{
    int i = va >= UTOP ? 2 : va >= U1 ? 1 : 0;
    return (uint8_t *)PHYS2VIRT(u->f[i]) + (va - upage_va[i]);
}

static bool ac_clear(void)
{
    return !(read_rflags() & RFLAGS_AC);
}

static uint8_t kbuf[2 * PAGE_SIZE];
static uint8_t kimage_target[64] = {1, 2, 3};

KTEST(usercopy_range_check)
{
    KT_EXPECT(user_range_ok(0, 0));
    KT_EXPECT(user_range_ok(0, USER_TOP));
    KT_EXPECT(user_range_ok(USER_TOP, 0));
    KT_EXPECT(user_range_ok(USER_TOP - 1, 1));
    KT_EXPECT(!user_range_ok(USER_TOP - 1, 2));
    KT_EXPECT(!user_range_ok(USER_TOP, 1));
    KT_EXPECT(!user_range_ok(0xffff800000000000ULL, 0));
    KT_EXPECT(!user_range_ok(0x1000, ~0ULL));       /* wraps */
    KT_EXPECT(!user_range_ok(~0ULL - 15, 32));      /* wraps from the top */
    KT_EXPECT(!user_range_ok(0, USER_TOP + 1));
}

KTEST(usercopy_copies_that_work)
{
    struct upages u;
    bool ok = upages_map(&u);
    if (!ok) {
        upages_unmap(&u);
        KT_ASSERT(false, "cannot map the user pages");
    }
    for (unsigned i = 0; i < PAGE_SIZE; i++) {
        kview(&u, U0)[i] = (uint8_t)(i * 7 + 1);
        kview(&u, U1)[i] = (uint8_t)(i * 13 + 5);
    }
    static const uint64_t lens[] = {0, 1, 7, PAGE_SIZE};
    for (unsigned k = 0; k < ARRAY_SIZE(lens); k++) {
        uint64_t len = lens[k];
        vaddr_t at = U0 + PAGE_SIZE - (len / 2) - 1; /* 4096 bytes cross into U1 */
        memset(kbuf, 0xee, sizeof(kbuf));
        KT_EXPECT(copy_from_user(kbuf, at, len) == 0, "len %llu", (unsigned long long)len);
        bool same = true;
        for (uint64_t i = 0; i < len; i++)
            same &= kbuf[i] == *kview(&u, at + i);
        KT_EXPECT(same, "copy_from_user of %llu bytes differs", (unsigned long long)len);
        KT_EXPECT(kbuf[len] == 0xee, "copy_from_user wrote past %llu bytes", (unsigned long long)len);
        KT_EXPECT(ac_clear());

        for (uint64_t i = 0; i < len; i++)
            kbuf[i] = (uint8_t)(0x80 ^ i ^ k);
        uint8_t after = *kview(&u, at + len);
        KT_EXPECT(copy_to_user(at, kbuf, len) == 0, "len %llu", (unsigned long long)len);
        same = true;
        for (uint64_t i = 0; i < len; i++)
            same &= *kview(&u, at + i) == (uint8_t)(0x80 ^ i ^ k);
        KT_EXPECT(same, "copy_to_user of %llu bytes differs", (unsigned long long)len);
        KT_EXPECT(*kview(&u, at + len) == after, "copy_to_user wrote past %llu bytes",
                  (unsigned long long)len);
        KT_EXPECT(ac_clear());
    }
    upages_unmap(&u);
    KT_EXPECT(paging_table_pages() == u.tables_before, "page tables %llu, before %llu",
              (unsigned long long)paging_table_pages(), (unsigned long long)u.tables_before);
}

KTEST(usercopy_refused_and_faulting_ranges)
{
    struct upages u;
    bool ok = upages_map(&u);
    if (!ok) {
        upages_unmap(&u);
        KT_ASSERT(false, "cannot map the user pages");
    }
    memset(kview(&u, U0), 0x11, PAGE_SIZE);
    memset(kview(&u, U1), 0x22, PAGE_SIZE);
    memset(kview(&u, UTOP), 0x33, PAGE_SIZE);

    /* refused before any access: dst (or the kernel target) untouched */
    static const struct {
        uint64_t addr, len;
        const char *what;
    } bad[] = {
        {0xffff800000000000ULL, 16, "kernel half (HHDM base)"},
        {(uint64_t)(uintptr_t)kimage_target, 16, "kernel image"},
        {U0, ~0ULL - U0 + 17, "range that wraps"},
        {USER_TOP - 16, 32, "just below USER_TOP, crossing it"},
        {USER_TOP, 1, "USER_TOP itself"},
        {0x0000800000001000ULL, 8, "non-canonical"},
    };
    for (unsigned k = 0; k < ARRAY_SIZE(bad); k++) {
        memset(kbuf, 0xee, 64);
        KT_EXPECT(copy_from_user(kbuf, bad[k].addr, bad[k].len) == -EFAULT, "%s", bad[k].what);
        KT_EXPECT(kbuf[0] == 0xee && kbuf[63] == 0xee, "%s: dst written", bad[k].what);
        KT_EXPECT(ac_clear(), "%s", bad[k].what);
    }
    uint8_t image_before = kimage_target[0];
    memset(kbuf, 0x5a, 64);
    KT_EXPECT(copy_to_user((uint64_t)(uintptr_t)kimage_target, kbuf, 16) == -EFAULT);
    KT_EXPECT(kimage_target[0] == image_before && kimage_target[15] == 0,
              "copy_to_user wrote into the kernel image");
    KT_EXPECT(copy_to_user(0xffff800000000000ULL, kbuf, 16) == -EFAULT);
    KT_EXPECT(copy_to_user(USER_TOP - 8, kbuf, 16) == -EFAULT);
    KT_EXPECT(*kview(&u, USER_TOP - 8) == 0x33, "copy_to_user wrote below USER_TOP before refusing");
    KT_EXPECT(ac_clear());

    /* an unmapped page: a fault, turned into -EFAULT by the exception table */
    memset(kbuf, 0xee, 64);
    KT_EXPECT(copy_from_user(kbuf, U2, 16) == -EFAULT);
    bool zero = true;
    for (int i = 0; i < 16; i++)
        zero &= kbuf[i] == 0;
    KT_EXPECT(zero && kbuf[16] == 0xee, "dst after a fault on the first byte: not zeroed");
    KT_EXPECT(copy_to_user(U2, kbuf, 16) == -EFAULT);
    KT_EXPECT(ac_clear());

    /* first page mapped, second not: the bytes before the fault arrive, the
     * rest of dst is zeroed (usercopy.h's documented choice) */
    memset(kbuf, 0xee, 256);
    KT_EXPECT(copy_from_user(kbuf, U2 - 100, 200) == -EFAULT);
    bool prefix = true, rest = true;
    for (int i = 0; i < 100; i++)
        prefix &= kbuf[i] == 0x22;
    for (int i = 100; i < 200; i++)
        rest &= kbuf[i] == 0;
    KT_EXPECT(prefix, "the 100 mapped bytes did not arrive");
    KT_EXPECT(rest, "the 100 bytes past the fault are not zero");
    KT_EXPECT(kbuf[200] == 0xee, "wrote past the copy");
    KT_EXPECT(ac_clear());
    memset(kbuf, 0x77, 200);
    KT_EXPECT(copy_to_user(U2 - 100, kbuf, 200) == -EFAULT);
    KT_EXPECT(*kview(&u, U2 - 100) == 0x77 && *kview(&u, U2 - 1) == 0x77,
              "the mapped part of a faulting copy_to_user was not written");
    KT_EXPECT(*kview(&u, U2 - 101) == 0x22, "copy_to_user wrote before its start");
    KT_EXPECT(ac_clear());

    /* the page just below USER_TOP works up to its last byte */
    KT_EXPECT(copy_from_user(kbuf, USER_TOP - 16, 16) == 0 && kbuf[15] == 0x33);
    KT_EXPECT(ac_clear(), "AC set after the tests");

    upages_unmap(&u);
    KT_EXPECT(paging_table_pages() == u.tables_before, "page tables %llu, before %llu",
              (unsigned long long)paging_table_pages(), (unsigned long long)u.tables_before);
}

KTEST(usercopy_strncpy_from_user)
{
    struct upages u;
    bool ok = upages_map(&u);
    if (!ok) {
        upages_unmap(&u);
        KT_ASSERT(false, "cannot map the user pages");
    }
    char dst[32];
    memcpy(kview(&u, U0), "hello", 6);
    memset(dst, 'x', sizeof(dst));
    KT_EXPECT(strncpy_from_user(dst, U0, 32) == 5 && strcmp(dst, "hello") == 0, "'%s'", dst);
    KT_EXPECT(dst[6] == 'x', "read past the NUL into dst");
    /* exactly max: 5 characters and the NUL in 6 bytes */
    memset(dst, 'x', sizeof(dst));
    KT_EXPECT(strncpy_from_user(dst, U0, 6) == 5 && strcmp(dst, "hello") == 0);
    /* no NUL within max */
    memset(dst, 'x', sizeof(dst));
    KT_EXPECT(strncpy_from_user(dst, U0, 5) == -ERANGE);
    KT_EXPECT(dst[0] == 0, "dst not emptied on -ERANGE");
    KT_EXPECT(strncpy_from_user(dst, U0, 0) == -ERANGE);
    KT_EXPECT(strncpy_from_user(dst, U0 + 5, 1) == 0 && dst[0] == 0, "empty string");
    /* running into the unmapped page */
    memset(kview(&u, U1 + PAGE_SIZE - 8), 'y', 8);
    KT_EXPECT(strncpy_from_user(dst, U2 - 8, 32) == -EFAULT);
    KT_EXPECT(dst[0] == 0);
    KT_EXPECT(strncpy_from_user(dst, U2, 32) == -EFAULT);
    /* running into USER_TOP, and starting in the kernel half */
    memset(kview(&u, USER_TOP - 8), 'z', 8);
    KT_EXPECT(strncpy_from_user(dst, USER_TOP - 8, 32) == -EFAULT);
    KT_EXPECT(strncpy_from_user(dst, USER_TOP - 8, 8) == -ERANGE, "max reached before USER_TOP");
    kview(&u, USER_TOP - 1)[0] = 0;
    KT_EXPECT(strncpy_from_user(dst, USER_TOP - 8, 32) == 7 && strcmp(dst, "zzzzzzz") == 0);
    KT_EXPECT(strncpy_from_user(dst, (uint64_t)(uintptr_t)"kernel", 32) == -EFAULT);
    KT_EXPECT(strncpy_from_user(dst, 0xffff800000000000ULL, 32) == -EFAULT);
    KT_EXPECT(ac_clear(), "AC set after strncpy_from_user");
    upages_unmap(&u);
    KT_EXPECT(paging_table_pages() == u.tables_before);
}
