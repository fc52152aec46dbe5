/* Redzones (HEAP_REDZONES: on in SLAYER_DEBUG builds, heap.h).
 *
 * The public calls wrap the tiers: a block of n bytes is an inner block of
 * n + 32 bytes or more from a tier, and the caller's pointer is inner +
 * RZ_LEAD (16). Invariants while a block is live:
 *   - the 16 bytes before the caller's pointer hold n twice, each word
 *     encoding n and a check of it under a key derived from the address
 *     (rz_word), so a changed byte in either word is found, and which one,
 *     and a header copied from another block does not fit;
 *   - every byte from n to the inner block's end (at least RZ_TAIL = 16)
 *     holds RZ_BYTE.
 * They are checked (rz_check) after each tier's own misuse checks and before
 * anything changes, by kfree, krealloc, kmalloc_usable_size, heap_check and
 * heap_validate_ptr. Without HEAP_REDZONES this file compiles to nothing. */
#include "mm/heap_internal.h"

#if HEAP_REDZONES
#define RZ_SALT0 0x52ED20E5ull
#define RZ_SALT1 0xB10CC0DEull

/* One header word: the size in the upper 40 bits and a 24-bit check of it
 * and of the address below, XORed with a key from the address: any changed
 * byte makes the word invalid (but for a 2^-24 chance), and a copy of another
 * block's header does not fit this block. */
static inline uint64_t rz_word(uint64_t size, const void *user, uint64_t salt)
{
    uint64_t k = ((uintptr_t)user ^ salt) * 0x9E3779B97F4A7C15ull;
    k ^= k >> 29;
    uint64_t check = ((size ^ k) * 0xBF58476D1CE4E5B9ull) >> 40;
    return ((size << 24) | check) ^ k;
}

/* The size a header word holds, or UINT64_MAX when the word is not valid. */
static inline uint64_t rz_unword(uint64_t w, const void *user, uint64_t salt)
{
    uint64_t k = ((uintptr_t)user ^ salt) * 0x9E3779B97F4A7C15ull;
    k ^= k >> 29;
    uint64_t size = (w ^ k) >> 24;
    return rz_word(size, user, salt) == w ? size : UINT64_MAX;
}

void rz_arm(void *inner, size_t size, size_t cap)
{
    uint64_t *hdr = inner;
    char *user = USER(inner);
    hdr[0] = rz_word(size, user, RZ_SALT0);
    hdr[1] = rz_word(size, user, RZ_SALT1);
    memset(user + size, RZ_BYTE, cap - RZ_LEAD - size);
}

/* The byte of word w (8 bytes at offset `at` from the user pointer) nearest
 * to the block that differs from want, as an offset from the user pointer. */
static long rz_word_diff(uint64_t w, uint64_t want, long at)
{
    for (int b = 7; b >= 0; b--)
        if (((w ^ want) >> (8 * b)) & 0xff)
            return at + b;
    return 0;
}

bool rz_intact(const void *inner, size_t cap, const char *op, char *why, size_t len)
{
    const uint64_t *hdr = inner;
    const unsigned char *user = USER(inner);
    uint64_t max = cap - RZ_LEAD - RZ_TAIL;
    uint64_t s0 = rz_unword(hdr[0], user, RZ_SALT0), s1 = rz_unword(hdr[1], user, RZ_SALT1);
    if (s0 > max)
        s0 = UINT64_MAX;
    if (s1 > max)
        s1 = UINT64_MAX;
    if (s0 != s1 || s1 == UINT64_MAX) {
        uint64_t size = s1 != UINT64_MAX ? s1 : s0;
        long at;
        if (s0 != UINT64_MAX && s1 != UINT64_MAX) /* both valid, different: a copied header */
            at = -16;
        else if (s1 != UINT64_MAX) /* word 1 (bytes -8..-1) is right: word 0 was changed */
            at = rz_word_diff(hdr[0], rz_word(s1, user, RZ_SALT0), -16);
        else if (s0 != UINT64_MAX)
            at = rz_word_diff(hdr[1], rz_word(s0, user, RZ_SALT1), -8);
        else
            size = UINT64_MAX;
        if (size == UINT64_MAX || (s0 != UINT64_MAX && s1 != UINT64_MAX))
            ksnprintf(why, len,
                      "underflow before the start of block %p: bytes -16..-1 overwritten, size lost (%s)",
                      (const void *)user, op);
        else
            ksnprintf(why, len,
                      "underflow before the start of block %p (size %zu): byte at %ld modified (%s)",
                      (const void *)user, (size_t)size, at, op);
        return false;
    }
    for (size_t i = s1; i < cap - RZ_LEAD; i++) {
        if (user[i] != RZ_BYTE) {
            ksnprintf(why, len,
                      "overflow past the end of block %p (size %zu): byte at +%zu modified (%s)",
                      (const void *)user, (size_t)s1, i, op);
            return false;
        }
    }
    return true;
}

SLOW void rz_check_slow(const void *inner, size_t cap, const char *op)
{
    char why[200];
    if (!rz_intact(inner, cap, op, why, sizeof(why)))
        panic("heap: %s", why);
}

size_t rz_size(const void *inner)
{
    return (size_t)rz_unword(((const uint64_t *)inner)[1], USER(inner), RZ_SALT1);
}
#endif
