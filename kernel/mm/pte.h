/* x86_64 page-table entry encoding (Intel SDM vol. 3 §4.5, AMD APM vol. 2 §5.3).
 * Only bit layout lives here; walking the tables is mm/paging.c's job.
 *
 * Every level (PML4, PDPT, PD, PT) holds 512 eight-byte entries. An entry is
 * either not present (bit 0 clear: the CPU ignores every other bit), a pointer
 * to the next table, or a leaf that maps a page: always in a PT (4 KiB), and
 * in a PD (2 MiB) or PDPT (1 GiB) when the PS bit is set.
 *
 * Permissions combine along the walk: a page is writable only if every level
 * says writable, user-accessible only if every level says user, and
 * non-executable if any level says NX. The memory type comes from the leaf
 * only: its PAT, PCD and PWT bits form a 3-bit index into the PAT MSR. The PAT
 * bit is bit 7 in a 4 KiB PTE but bit 12 in a 2 MiB / 1 GiB leaf, because bit 7
 * there is PS. */
#pragma once

#include "lib/types.h"

typedef uint64_t pte_t;

#define PTE_PRESENT   (1ULL << 0)  /* P: the entry is valid */
#define PTE_WRITABLE  (1ULL << 1)  /* R/W: writes allowed (CR0.WP makes it bind ring 0 too) */
#define PTE_USER      (1ULL << 2)  /* U/S: ring 3 may access */
#define PTE_PWT       (1ULL << 3)  /* page write-through: PAT index bit 0 */
#define PTE_PCD       (1ULL << 4)  /* page cache disable: PAT index bit 1 */
#define PTE_ACCESSED  (1ULL << 5)  /* A: set by the CPU on any access */
#define PTE_DIRTY     (1ULL << 6)  /* D: set by the CPU on a write (leaves only) */
#define PTE_PS        (1ULL << 7)  /* page size: leaf in a PD / PDPT entry */
#define PTE_PAT_4K    (1ULL << 7)  /* PAT index bit 2 in a PT entry */
#define PTE_GLOBAL    (1ULL << 8)  /* G: survives CR3 reloads when CR4.PGE is set (leaves) */
#define PTE_PAT_LARGE (1ULL << 12) /* PAT index bit 2 in a 2 MiB / 1 GiB leaf */
#define PTE_NX        (1ULL << 63) /* XD: no instruction fetch (needs EFER.NXE) */

/* Physical address bits 12..51 of a table pointer or a 4 KiB leaf; a 2 MiB leaf
 * uses 21..51 and a 1 GiB leaf 30..51 (the low bits there are PAT and reserved). */
#define PTE_ADDR_MASK    0x000ffffffffff000ULL
#define PTE_ADDR_MASK_2M 0x000fffffffe00000ULL
#define PTE_ADDR_MASK_1G 0x000fffffc0000000ULL

/* Attribute bits carried over when a large leaf is split into smaller ones:
 * everything but the address, PS and the PAT bit (which moves). Bits 9-11 and
 * 52-62 (software-available, protection keys) are kept as they are. */
#define PTE_SPLIT_KEEP   (~(PTE_ADDR_MASK | PTE_PS) | PTE_PAT_LARGE)

#define PT_ENTRIES 512

/* Software bits of a table pointer (a PML4E, or a PDPTE / PDE without PS):
 * bits 52-62 are ignored by the CPU there (Intel SDM vol. 3 tables 4-15, 4-17,
 * 4-20; "available" in the AMD APM). mm/paging.c keeps in them the number of
 * present entries of the table pointed to, so that unmapping a page knows in
 * O(1) when its table became empty. PTE_CNT_VALID says the count is kept: a
 * pointer the bootloader wrote has it clear until a scan learns the count.
 * Never set in leaves (there bits 59-62 are protection keys). */
#define PTE_CNT_SHIFT 52
#define PTE_CNT_ONE   (1ULL << PTE_CNT_SHIFT)
#define PTE_CNT_MASK  (0x3ffULL << PTE_CNT_SHIFT) /* 0..512 */
#define PTE_CNT_VALID (1ULL << 62)

/* Levels, counted the way the hardware names them: 4 = PML4 ... 1 = PT. */
enum pt_level { PT_LEVEL_PT = 1, PT_LEVEL_PD = 2, PT_LEVEL_PDPT = 3, PT_LEVEL_PML4 = 4 };

_Static_assert(sizeof(pte_t) == 8, "a page-table entry is 8 bytes");
_Static_assert(PT_ENTRIES * sizeof(pte_t) == PAGE_SIZE, "a page table fills one frame");
_Static_assert(PTE_PAT_4K == PTE_PS, "the 4 KiB PAT bit reuses the PS position");
_Static_assert((PTE_ADDR_MASK_2M & PTE_PAT_LARGE) == 0, "large PAT bit is below the 2M address");
_Static_assert((PTE_ADDR_MASK & (PTE_NX | 0xfffULL)) == 0, "address bits clear of flag bits");
_Static_assert((PTE_SPLIT_KEEP & PTE_ADDR_MASK) == PTE_PAT_LARGE, "split keeps no address bits");
_Static_assert(((PTE_CNT_MASK | PTE_CNT_VALID) & (PTE_ADDR_MASK | PTE_NX)) == 0,
               "the table count lies in the ignored bits 52-62");
_Static_assert((PTE_CNT_MASK >> PTE_CNT_SHIFT) >= PT_ENTRIES, "the count holds 0..512");

/* Bytes mapped by one entry at `level` (4 KiB at the PT, 2 MiB at the PD...). */
static inline uint64_t pt_level_size(int level)
{
    return 1ULL << (PAGE_SHIFT + 9 * (level - 1));
}

/* Index of `va` in the table at `level`. */
static inline unsigned pt_index(vaddr_t va, int level)
{
    return (unsigned)(va >> (PAGE_SHIFT + 9 * (level - 1))) & (PT_ENTRIES - 1);
}

static inline bool pte_present(pte_t e)
{
    return (e & PTE_PRESENT) != 0;
}

/* True when e (found at `level`) maps a page rather than pointing to a table. */
static inline bool pte_is_leaf(pte_t e, int level)
{
    return level == PT_LEVEL_PT || ((level == PT_LEVEL_PD || level == PT_LEVEL_PDPT) && (e & PTE_PS));
}

/* Physical address a present entry at `level` points to (table or page base). */
static inline paddr_t pte_addr(pte_t e, int level)
{
    if (level == PT_LEVEL_PD && (e & PTE_PS))
        return e & PTE_ADDR_MASK_2M;
    if (level == PT_LEVEL_PDPT && (e & PTE_PS))
        return e & PTE_ADDR_MASK_1G;
    return e & PTE_ADDR_MASK;
}

/* The PAT bit's position for a leaf at `level`. */
static inline pte_t pte_pat_bit(int level)
{
    return level == PT_LEVEL_PT ? PTE_PAT_4K : PTE_PAT_LARGE;
}

/* PWT/PCD/PAT bits that select PAT entry `index` (0..7) in a leaf at `level`. */
static inline pte_t pte_cache_bits(unsigned index, int level)
{
    return ((index & 1) ? PTE_PWT : 0) | ((index & 2) ? PTE_PCD : 0) |
           ((index & 4) ? pte_pat_bit(level) : 0);
}

/* The PAT index (0..7) a leaf at `level` selects. */
static inline unsigned pte_cache_index(pte_t e, int level)
{
    return ((e & PTE_PWT) ? 1u : 0u) | ((e & PTE_PCD) ? 2u : 0u) |
           ((e & pte_pat_bit(level)) ? 4u : 0u);
}

/* A leaf at `level` mapping `phys` with hardware bits `bits` (P, RW, US, G, NX;
 * not PWT/PCD) and PAT entry `cache_index`. */
static inline pte_t pte_make_leaf(paddr_t phys, pte_t bits, unsigned cache_index, int level)
{
    return (phys & PTE_ADDR_MASK) | bits | PTE_PRESENT | pte_cache_bits(cache_index, level) |
           (level == PT_LEVEL_PT ? 0 : PTE_PS);
}

/* An entry pointing to the table at `table` with permission bits `bits` (RW, US). */
static inline pte_t pte_make_table(paddr_t table, pte_t bits)
{
    return (table & PTE_ADDR_MASK) | (bits & (PTE_WRITABLE | PTE_USER)) | PTE_PRESENT;
}

/* Entry i (0..511) of the table that replaces the large leaf `e` found at
 * `level` (2 or 3): same attributes, address advanced by i pages of the next
 * level down, PAT bit moved from bit 12 to bit 7 when the children are 4 KiB. */
static inline pte_t pte_split_child(pte_t e, int level, unsigned i)
{
    int child = level - 1;
    paddr_t base = pte_addr(e, level) + (uint64_t)i * pt_level_size(child);
    pte_t attrs = e & PTE_SPLIT_KEEP & ~PTE_PAT_LARGE;
    if (e & PTE_PAT_LARGE)
        attrs |= pte_pat_bit(child);
    return base | attrs | (child == PT_LEVEL_PT ? 0 : PTE_PS);
}
