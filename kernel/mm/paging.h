/* Four-level x86_64 paging over an address space given as a parameter.
 *
 * Conventions:
 * - Every function that changes tables returns 0 or a negative PAGING_E* code
 *   (paging_strerror names it). A failed call leaks nothing: page tables it
 *   created are given back. Mapping over an existing mapping is -PAGING_EEXIST
 *   unless PAGING_REPLACE is passed.
 * - Page sizes are 4 KiB, 2 MiB and 1 GiB (1 GiB only when the CPU has it,
 *   else -PAGING_ENOTSUP). An operation on part of a large page first splits it
 *   into a table of smaller pages with identical attributes.
 * - The cache mode is an explicit argument whose value is the PAT index; the
 *   kernel programs the PAT (arch_pat_init) as 0 WB, 1 WT, 2 UC-, 3 UC, 4 WP,
 *   5 WC, 6 UC-, 7 UC. The seed's PAGE_WRITETHROUGH / PAGE_NOCACHE flags are
 *   accepted as another spelling of WT / UC- / UC (both: UC).
 * - Intermediate entries get PRESENT, plus WRITABLE / USER once some leaf
 *   below was mapped with them, and never NX: the leaf decides.
 * - TLB: after every change to an entry that was present, the address is
 *   invalidated (arch_invlpg) when the address space is the active one.
 * - Page tables that become empty are returned to the frame allocator, except
 *   in a borrowed address space (the bootloader's tables adopted by
 *   paging_init), whose tables are never freed.
 *
 * - TLB on other CPUs: every operation that changed or removed a present
 *   mapping shoots the range it invalidated down once, before it returns and
 *   before the page tables it detached go back to the frame allocator: for
 *   kernel_as on every other CPU (its kernel half is in every CR3), for any
 *   other address space on the CPUs that have it loaded (`cpus`). New
 *   mappings need none.
 *
 * Locking: each address space has a plain spinlock (as->lock, rank
 * LOCK_RANK_PAGING, docs/locking.md) held across every public operation on
 * it, readers (paging_query, paging_translate_in, the walks of
 * mm/pagewalk.h) included: a table may be freed under a lock-free reader. It
 * protects the tables, table_pages and the walk cache. A call may take the
 * frame lock inside it; it must not be made while holding a lock of a later
 * rank (heap, frame, tlb, print). The global table count is atomic. */
#pragma once

#include "lib/spinlock.h"
#include "lib/types.h"
#include "mm/pte.h"

/* Mapping flags: the hardware bits themselves (mm/pte.h). */
#define PAGE_PRESENT      PTE_PRESENT
#define PAGE_WRITABLE     PTE_WRITABLE
#define PAGE_USER         PTE_USER
#define PAGE_WRITETHROUGH PTE_PWT
#define PAGE_NOCACHE      PTE_PCD
#define PAGE_GLOBAL       PTE_GLOBAL
#define PAGE_NX           PTE_NX
/* Every flag a caller may pass; anything else is -PAGING_EINVAL. */
#define PAGE_FLAGS_ALLOWED                                                                     \
    (PAGE_PRESENT | PAGE_WRITABLE | PAGE_USER | PAGE_WRITETHROUGH | PAGE_NOCACHE | PAGE_GLOBAL | \
     PAGE_NX)

/* Memory types; the value is the PAT entry (see arch_pat_init). */
enum cache_mode {
    CACHE_WB = 0,      /* write-back: RAM */
    CACHE_WT = 1,      /* write-through */
    CACHE_UCMINUS = 2, /* uncached, MTRR may override to WC */
    CACHE_UC = 3,      /* strong uncacheable: MMIO registers */
    CACHE_WP = 4,      /* write-protect */
    CACHE_WC = 5,      /* write-combining: framebuffers */
};

#define PAGE_SIZE_4K PAGE_SIZE
#define PAGE_SIZE_2M MiB(2)
#define PAGE_SIZE_1G GiB(1)

/* opts for the map functions. */
#define PAGING_REPLACE 0x1u /* overwrite existing mappings instead of -PAGING_EEXIST */
#define PAGING_LARGE   0x2u /* ranges: use 2 MiB (and 1 GiB, if the CPU has it) pages where aligned */

/* Error codes, returned negated. */
enum {
    PAGING_OK = 0,
    PAGING_ENOMEM = 1,  /* no frame for a page table */
    PAGING_EEXIST = 2,  /* something is already mapped there */
    PAGING_EINVAL = 3,  /* unaligned, non-canonical, out-of-range or unknown argument */
    PAGING_ENOTSUP = 4, /* 1 GiB page on a CPU without them */
    PAGING_ENOENT = 5,  /* nothing mapped there */
};

/* What paging_translate returns for an unmapped address. */
#define PAGING_NO_MAPPING (~0ULL)

/* The one-entry walk cache of the 4 KiB fast paths (mm/paging.c): the PT that
 * maps the 2 MiB region ending at region_last, so a map or unmap there writes
 * one entry without a walk. Emptied (region_last = 0, which no region's last
 * byte equals) whenever any table of the address space is detached or a
 * large page in it is split: while not empty, `pt` is in the tree there. */
struct walk_cache {
    vaddr_t region_last; /* last byte of the cached 2 MiB region, or 0: empty */
    pte_t *pt;           /* that region's PT (through the HHDM) */
    pte_t *pde;          /* the PD entry pointing to it (keeps the PT's present count) */
    /* What the three levels above withhold: WRITABLE/USER not granted by all
     * of them, NX when one sets it. A leaf asking for one of these (for NX:
     * being executable) needs an entry above widened, so it misses. */
    pte_t upper_denies;
};

/* An address space: a PML4 and the page-table pages it owns. Every field
 * and every table below pml4 is protected by `lock` (pml4 is set by create
 * and cleared by destroy, which nobody may race with). */
struct addrspace {
    paddr_t pml4;         /* physical address of the top table */
    uint64_t table_pages; /* page-table pages allocated for it, the PML4 included */
    bool borrowed;        /* tables belong to the bootloader: never freed */
    bool kernel_half_fixed; /* paging_kernel_half_prepare ran: kernel-half PML4 entries fixed */
    bool user;            /* made by paging_as_create_user: its kernel half is kernel_as's
                           * (copied PML4 entries); it takes lower-half addresses only */
    uint32_t cpus;        /* atomic: bit i set while CPU i has it in CR3 (paging_activate);
                           * kernel_as is not tracked: every CR3 holds its kernel half */
    struct walk_cache wc; /* private to mm/paging.c */
    struct spinlock lock; /* plain, rank LOCK_RANK_PAGING */
};

/* The kernel's address space (all kernel work goes through it). */
extern struct addrspace kernel_as;

/* A translation, as paging_query reports it. */
struct paging_mapping {
    paddr_t phys;          /* physical address the queried virtual address maps to */
    uint64_t page_size;    /* 4 KiB, 2 MiB or 1 GiB */
    uint64_t flags;        /* effective PAGE_* bits: WRITABLE/USER if every level grants, NX if any */
    enum cache_mode cache; /* PAT index of the leaf */
    pte_t entry;           /* the raw leaf entry */
};

/* ---- the seed's interface, over kernel_as ------------------------------------- */

/* Adopts the active tables (CR3) as kernel_as, borrowed: they are never freed. */
void paging_init(void);
/* Maps one 4 KiB page in kernel_as; flags as for paging_map_in (cache from
 * PAGE_WRITETHROUGH/PAGE_NOCACHE). Returns 0 or -PAGING_E*. */
int paging_map(paddr_t phys, vaddr_t virt, uint64_t flags);
/* Unmaps the 4 KiB page at virt in kernel_as (splitting a large page around
 * it). Returns 0, -PAGING_ENOENT when nothing is mapped, -PAGING_ENOMEM when a split fails. */
int paging_unmap(vaddr_t virt);
/* Physical address virt maps to in kernel_as, or PAGING_NO_MAPPING. */
paddr_t paging_translate(vaddr_t virt);

/* ---- full forms ------------------------------------------------------------- */

/* Makes an empty address space (a zeroed PML4). Returns 0 or -PAGING_ENOMEM. */
int paging_as_create(struct addrspace *as);

/* The kernel half: PML4 slots 256..511, shared by every address space. */
#define PAGING_KERNEL_HALF 0xffff800000000000ULL
/* Gives every empty PML4 slot of [start, end) (kernel half, 512 GiB aligned)
 * a PDPT (supervisor, RW, X: leaves decide the rest) and marks `as`
 * kernel_half_fixed. From then on its kernel half's top-level entries never
 * change: unmapping never frees one of those PDPTs (a PML4 entry copied into
 * another address space stays valid), and a kernel-half mapping in a slot
 * that was not prepared is refused with -PAGING_EINVAL. Returns 0,
 * -PAGING_EINVAL (bad range) or -PAGING_ENOMEM (the PDPTs made so far stay;
 * paging_as_destroy frees them). */
int paging_kernel_half_prepare(struct addrspace *as, vaddr_t start, vaddr_t end);
/* The first address above the lower (user) half. */
#define PAGING_USER_TOP 0x0000800000000000ULL
/* Makes an address space for user memory: a PML4 whose kernel half is
 * kernel_as's (its PML4 entries copied; kernel_as's kernel half must be fixed,
 * so they stay valid for good) and whose lower half is empty. Every operation
 * on it refuses kernel-half addresses (-PAGING_EINVAL), so its own tables
 * never reach into the shared ones. Returns 0 or -PAGING_ENOMEM. */
int paging_as_create_user(struct addrspace *as);
/* Frees every page table of `as` (not the mapped frames); as->pml4 becomes 0.
 * For a user space only its lower half's tables. Must not be loaded on any
 * CPU; no-op for a borrowed one. */
void paging_as_destroy(struct addrspace *as);
/* Loads `as` into CR3 on this CPU and records that this CPU has it (and no
 * longer has the one it had): a change to a user space's present mappings
 * is shot down on exactly the CPUs that have it loaded. */
void paging_activate(struct addrspace *as);
/* True when `as` is the address space in CR3. */
bool paging_is_active(const struct addrspace *as);

/* Maps one page of `size` (4K/2M/1G) at virt -> phys, both aligned to size.
 * flags: PAGE_* (PRESENT implied); cm: cache mode; opts: PAGING_REPLACE.
 * Returns 0, -PAGING_EINVAL, -PAGING_ENOTSUP, -PAGING_EEXIST or -PAGING_ENOMEM
 * (then nothing changed). */
int paging_map_in(struct addrspace *as, paddr_t phys, vaddr_t virt, uint64_t size, uint64_t flags,
                  enum cache_mode cm, unsigned opts);
/* Maps [virt, virt+len) -> [phys, ...) (4 KiB aligned), with the largest pages
 * alignment allows when opts has PAGING_LARGE. Returns 0 or -PAGING_E*; on
 * failure the part already mapped by this call is unmapped again (with
 * PAGING_REPLACE, mappings it replaced are not restored). */
int paging_map_range(struct addrspace *as, paddr_t phys, vaddr_t virt, uint64_t len,
                     uint64_t flags, enum cache_mode cm, unsigned opts);
/* Unmaps one page of `size` at virt (aligned); a larger page around it is split.
 * Returns 0, -PAGING_ENOENT (nothing mapped), -PAGING_EINVAL or -PAGING_ENOMEM. */
int paging_unmap_in(struct addrspace *as, vaddr_t virt, uint64_t size);
/* Unmaps everything in [virt, virt+len) (4 KiB aligned; holes are fine), splitting
 * large pages that straddle the ends. Returns 0, -PAGING_EINVAL, or
 * -PAGING_ENOMEM (a split failed; then nothing was unmapped). */
int paging_unmap_range(struct addrspace *as, vaddr_t virt, uint64_t len);
/* Gives every page mapped in [virt, virt+len) new flags and cache mode (addresses
 * kept; holes skipped; straddling large pages split). Returns 0, -PAGING_EINVAL
 * or -PAGING_ENOMEM (a split failed; then no permission changed). */
int paging_protect(struct addrspace *as, vaddr_t virt, uint64_t len, uint64_t flags,
                   enum cache_mode cm);
/* Fills *out (if non-NULL) with the translation of virt; false when unmapped. */
bool paging_query(const struct addrspace *as, vaddr_t virt, struct paging_mapping *out);
/* Physical address virt maps to in `as`, or PAGING_NO_MAPPING. */
paddr_t paging_translate_in(const struct addrspace *as, vaddr_t virt);

/* Page-table pages in use by all address spaces together (borrowed tables not counted). */
uint64_t paging_table_pages(void);
/* Name of a paging error code (either sign): "ENOMEM", ...; "unknown" otherwise. */
const char *paging_strerror(int err);
/* Short name of a cache mode ("WB", "WC", ...). */
const char *paging_cache_name(enum cache_mode cm);
