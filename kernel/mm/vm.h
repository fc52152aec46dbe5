/* User address spaces: the lower half of the virtual address space, one per
 * program, over the kernel half every space shares (docs/memory.md, "User
 * address spaces").
 *
 * A struct vm_space is a user page-table tree (paging_as_create_user: the
 * kernel half is kernel_as's), a set of regions (mm/vm_region.h: what may be
 * mapped where, with which rights and what fills it) and the counts that
 * say what it holds. Pages are not mapped when a region is made: the first
 * access faults and vm_fault fills the page (demand-zero, or a copy of the
 * region's image). vm_fork makes a copy-on-write child: both spaces map the
 * same frames read-only, counted by mm/frameref.h; the first write in either
 * gets a private copy, or, from the last sharer, the frame itself back
 * writable. A VMR_STACK region grows down on a fault below it, to its floor,
 * keeping VM_STACK_GAP free below it (the guard gap).
 *
 * Locking: vs->lock (plain, rank LOCK_RANK_VM, the outermost mm lock) is held
 * across every public operation on a space, the fault handler's included; it
 * protects the region set, the counts and every change of the space's page
 * tables (paging's own lock, taken inside, protects the tables from paging's
 * readers). The list of spaces has its own lock (vm_list_lock, rank none,
 * taken alone). A space loaded on other CPUs gets its changes shot down
 * there (mm/paging.h, addrspace.cpus). Never used from interrupt handlers;
 * the page-fault handler runs in the context it interrupted. */
#pragma once
#include "lib/list.h"
#include "lib/spinlock.h"
#include "lib/types.h"
#include "mm/paging.h"
#include "mm/vm_region.h"

/* The lowest and the first address above what a user space may map: page 0
 * and the rest of the first 64 KiB stay unmapped (NULL and small offsets
 * from it fault), and the last page below the canonical hole stays too. */
#define VM_USER_MIN 0x10000ULL
#define VM_USER_MAX (PAGING_USER_TOP - PAGE_SIZE)
/* Pages a stack keeps free below it when it grows: growth stops this far
 * above the region below (vm_map itself places regions anywhere). */
#define VM_STACK_GAP (16 * PAGE_SIZE)

/* vm_map flags (besides the region kind). */
#define VM_MAP_FIXED 0x1u /* at *addr exactly, replacing what was mapped there */

struct vm_space {
    struct addrspace pt;      /* its page tables (lower half; kernel half shared) */
    struct vm_regions regions; /* lock */
    struct spinlock lock;     /* plain, rank LOCK_RANK_VM: see above */
    uint64_t resident;        /* lock: user pages mapped (shared ones included) */
    uint64_t zero_faults;     /* lock: pages filled with zeros on first touch */
    uint64_t image_faults;    /* lock: pages filled from an image on first touch */
    uint64_t cow_copies;      /* lock: write faults that copied a shared page */
    uint64_t cow_reuses;      /* lock: write faults on a page no one shares any more: made writable */
    uint32_t id;              /* fixed: 1, 2, ... in creation order */
    char name[24];            /* fixed: for reports and the monitor */
    struct list_node link;    /* vm_list_lock: the list of every space */
};

/* What the whole vm layer has done (monitor `as`, tests). */
struct vm_stats {
    uint64_t spaces;        /* spaces alive */
    uint64_t faults;        /* vm_fault calls */
    uint64_t resolved;      /* of them, resolved */
    uint64_t shared_frames; /* frames shared copy-on-write now (mm/frameref.h) */
    uint64_t ref_bytes;     /* bytes the reference counts take now */
};

/* The outcome of vm_fault. */
enum vm_fault_result {
    VM_FAULT_RESOLVED = 0, /* the access can be retried */
    VM_FAULT_NOREGION,     /* no region there (nor a stack to grow) */
    VM_FAULT_GUARD,        /* below a stack, past its floor or into its guard gap */
    VM_FAULT_ACCESS,       /* the region forbids that access (write to read-only, execute of NX) */
    VM_FAULT_OOM,          /* no frame or page table: nothing changed */
};

/* Makes an empty space named `name` (truncated to fit): 0 and *out, or
 * -ENOMEM with nothing allocated. */
int vm_space_create(const char *name, struct vm_space **out);
/* Unmaps everything, gives every frame (its share of a shared one) and page
 * table back, and frees the space. It must not be loaded on any CPU. */
void vm_space_destroy(struct vm_space *vs);

/* Makes a region of `len` bytes (page multiple) with rights `prot` (VM_READ,
 * VM_WRITE, VM_EXEC) and kind `kind`; VMR_IMAGE takes `image` and the image
 * offset of its first byte `off`; VMR_STACK grows down to `stack_floor`
 * (page aligned, below the region; 0: it does not grow). Without
 * VM_MAP_FIXED at the lowest free address (from *addr up, when *addr is not
 * 0), else exactly at *addr, replacing what was there. No page is mapped
 * yet. Returns 0 with *addr set, -EINVAL (unaligned, empty, outside
 * [VM_USER_MIN, VM_USER_MAX), bad prot or kind), -ENOMEM (no room or no
 * memory: nothing changed). */
int vm_map(struct vm_space *vs, vaddr_t *addr, uint64_t len, uint32_t prot, enum vm_kind kind,
           const struct vm_image *image, uint64_t off, vaddr_t stack_floor, unsigned flags);
/* Removes [addr, addr+len) (holes fine): its pages are unmapped, their frames
 * (or shares) given back, regions split. 0, -EINVAL or -ENOMEM (a split's
 * node could not be allocated: nothing changed). */
int vm_unmap(struct vm_space *vs, vaddr_t addr, uint64_t len);
/* Gives [addr, addr+len) the rights `prot`; mapped pages change at once on
 * every CPU (a shared page stays read-only until its copy-on-write fault).
 * 0, -EINVAL, -ENOENT (part of the range has no region: nothing changed) or
 * -ENOMEM (nothing changed). */
int vm_protect(struct vm_space *vs, vaddr_t addr, uint64_t len, uint32_t prot);
/* A copy-on-write copy of `src` named `name`: the same regions; every
 * resident page is shared read-only by both (or copied now, when its count
 * is full). 0 and *out, or -ENOMEM with nothing allocated and src's regions,
 * contents and frames unchanged (its writable pages may stay read-only until
 * their next write, whose fault makes them writable again without a copy). */
int vm_fork(struct vm_space *src, const char *name, struct vm_space **out);

/* Resolves a fault at `addr` in vs: `access` is the one VM_READ, VM_WRITE or
 * VM_EXEC that faulted. Fills a page on first touch, copies (or reclaims) a
 * shared page on a write, grows a stack; a page already mapped with that
 * right (another CPU filled it, or this CPU's TLB entry was stale) is
 * resolved as it is. Only whole-page changes; a fault it cannot resolve
 * changes nothing. */
enum vm_fault_result vm_fault(struct vm_space *vs, vaddr_t addr, uint32_t access);
/* Name of a vm_fault result ("no region", ...). */
const char *vm_fault_name(enum vm_fault_result r);

/* Loads vs on this CPU (NULL: back to kernel_as alone) and makes it the
 * space vm_current() answers here. */
void vm_activate(struct vm_space *vs);
/* The space loaded on this CPU, or NULL. */
struct vm_space *vm_current(void);

/* The region containing addr in vs, copied to *out (under the lock): true,
 * or false when none does. */
bool vm_region_at(struct vm_space *vs, vaddr_t addr, struct vm_region *out);
/* Calls fn for every region of vs in address order with its resident page
 * count, under vs->lock (fn must not call back into vs). */
void vm_for_each_region(struct vm_space *vs,
                        void (*fn)(void *ctx, const struct vm_region *r, uint64_t resident),
                        void *ctx);
/* Calls fn for every live space, under the list lock (rank none: fn must
 * take no lock, so it may read a space's fields only as a snapshot, or
 * collect ids for vm_space_by_id). */
void vm_for_each_space(void (*fn)(void *ctx, struct vm_space *vs), void *ctx);
/* The space with that id, or NULL (the monitor; it must stay alive while used). */
struct vm_space *vm_space_by_id(uint32_t id);
/* Fills *out. */
void vm_get_stats(struct vm_stats *out);
/* Checks vs: its regions (vmr_check), every mapped page inside a region, with
 * no more rights than the region's, the resident count equal to the pages
 * mapped. True when all hold; prints the first broken one. */
bool vm_check(struct vm_space *vs);
