/* Fuzz target: building the kernel's address space (mapper_build,
 * kernel/mm/mapper.c) from a memory map and a kernel layout.
 *
 * Input: u8 flags (bit 0: sanitize the map first, as the kernel does; bit 1:
 * a framebuffer; bit 2: the HHDM offset from the input rather than the
 * lowest one; bit 3: the kernel's physical base unaligned), u8 phys_bits for
 * the sanitizer, u16 kernel offset in pages above -2 GiB, u8 text, rodata
 * and data lengths in pages, u8 layout quirks (gaps, a misplaced base,
 * sections out of order), u32 kernel physical page, u64 HHDM offset, u64
 * framebuffer address, u32 its size, then up to MAX_IN map entries of { u32
 * base, u32 length, u8 type } (types 0..8, others unknown) in units of
 * 4 KiB, 2 MiB or 1 GiB (bits 6-7 of the type byte), so that large pages
 * appear. An unsanitized map is the caller's mistake (mapper.h): there the
 * call may refuse (-EINVAL, -EEXIST) leaving nothing behind, or must have
 * built exactly what the map says.
 *
 * Checked, with a reference written here from mapper.h: the layout refused
 * (-EINVAL) exactly when a rule says so (sections not page-aligned or out of
 * order, text empty or below the kernel's base, the kernel base below the
 * stack window's end, an unaligned physical base, an HHDM offset unaligned or
 * outside the upper half's HHDM area, a map not sanitized, the HHDM reaching
 * MAPPER_HHDM_LIMIT, a framebuffer too large for its window); a refusal
 * leaves every frame and table count as before. A success maps exactly (a
 * walk with pagewalk_leaves, runs merged) the kernel's text R-X, rodata R--
 * and data RW- at their link addresses over kernel_phys, the HHDM (virt =
 * hhdm_offset + phys) over every usable, bootloader-reclaimable, ACPI and
 * kernel range (write-back; the kernel's read-only) and framebuffer range
 * (write-combining), nothing for reserved, bad, reserved-mapped or unknown
 * ranges, and the framebuffer at MAPPER_FB_BASE plus its offset within 1 GiB
 * (write-combining); no page is writable and executable, none is user or
 * global; the result's HHDM size and bytes, framebuffer address and table
 * count agree; destroying the space gives every frame back. */
#include "fuzz.h"

#include "mm/frame.h"
#include "mm/mapper.h"
#include "mm/memmap.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"

#define ARENA MiB(64) /* room for the tables of 48 ranges of up to 255 GiB */
#define PHYS_LIMIT (1ULL << 46) /* host_phys_bits: paging refuses anything above */
#define MAX_IN 48
#define MAX_RUNS 4096
#define KERNEL_TOP 0xffffffff80000000ULL /* the -2 GiB area the kernel links at */

static bool arena_ready;

struct run {
    vaddr_t va;
    uint64_t len;
    paddr_t pa;
    uint64_t flags; /* PAGE_WRITABLE | PAGE_USER | PAGE_NX | PAGE_GLOBAL */
    unsigned cm;
};

static struct run want[MAX_RUNS], got[MAX_RUNS];
static size_t nwant, ngot;

/* Appends a run to a list, merged with the last one when it continues it. */
static void add_run(struct run *list, size_t *n, vaddr_t va, uint64_t len, paddr_t pa,
                    uint64_t flags, unsigned cm)
{
    if (len == 0)
        return;
    if (*n) {
        struct run *l = &list[*n - 1];
        if (l->va + l->len == va && l->pa + l->len == pa && l->flags == flags && l->cm == cm) {
            l->len += len;
            return;
        }
    }
    FUZZ_CHECK(*n < MAX_RUNS, "too many runs");
    list[(*n)++] = (struct run){va, len, pa, flags, cm};
}

static void got_leaf(void *ctx, const struct pagewalk_leaf *l)
{
    (void)ctx;
    FUZZ_CHECK(!((l->flags & PAGE_WRITABLE) && !(l->flags & PAGE_NX)),
               "%#llx is writable and executable", (unsigned long long)l->virt);
    add_run(got, &ngot, l->virt, l->size, l->phys, l->flags, l->cache);
}

static int cmp_run(const void *a, const void *b)
{
    const struct run *x = a, *y = b;
    return x->va < y->va ? -1 : x->va > y->va;
}

/* Sorts want[] by address and merges what continues, as the walk reports. */
static void normalize_want(void)
{
    qsort(want, nwant, sizeof(want[0]), cmp_run);
    size_t n = 0;
    for (size_t i = 0; i < nwant; i++) {
        struct run r = want[i];
        add_run(want, &n, r.va, r.len, r.pa, r.flags, r.cm);
    }
    nwant = n;
}

/* The HHDM's treatment of a map type (mapper.h): mapped, and how. */
static bool ref_hhdm(uint32_t type, uint64_t *flags, unsigned *cm)
{
    *flags = PAGE_WRITABLE | PAGE_NX;
    *cm = CACHE_WB;
    switch (type) {
    case MEM_KERNEL: *flags = PAGE_NX; return true;
    case MEM_USABLE:
    case MEM_BOOTLOADER_RECLAIMABLE:
    case MEM_ACPI_RECLAIMABLE:
    case MEM_ACPI_NVS: return true;
    case MEM_FRAMEBUFFER: *cm = CACHE_WC; return true;
    default: return false;
    }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    if (!arena_ready) { /* one arena for the whole run: frame_init resets the allocator */
        host_arena_init(ARENA);
        arena_ready = true;
    }
    fuzz_log_reset();
    struct mem_region arena_map[] = {{0, MiB(1), MEM_RESERVED},
                                     {MiB(1), ARENA - MiB(1), MEM_USABLE}};
    frame_init(arena_map, 2);

    /* ---- decode ---- */
    uint8_t flags = fuzz_u8(&in), bits = fuzz_u8(&in);
    uint16_t koff = fuzz_u16(&in);
    uint8_t ntext = fuzz_u8(&in), nro = fuzz_u8(&in), ndata = fuzz_u8(&in), gap = fuzz_u8(&in);
    uint32_t kphys_pages = fuzz_u32(&in);
    uint64_t hhdm_in = fuzz_u64(&in), fb_phys = fuzz_u64(&in) & ((1ULL << 46) - 1);
    uint32_t fb_size = fuzz_u32(&in);
    struct mapper_layout l = {0};
    l.kernel_virt = KERNEL_TOP + (uint64_t)koff * PAGE_SIZE;
    if (gap & 0x80) /* now and then a layout in the wrong place or order */
        l.kernel_virt = (gap & 0x40) ? MAPPER_STACK_BASE : l.kernel_virt + (gap & 0xf);
    l.kernel_phys = (uint64_t)kphys_pages * PAGE_SIZE + ((flags & 8) ? 0x10 : 0);
    l.text_start = l.kernel_virt + (uint64_t)(gap & 3) * PAGE_SIZE;
    l.text_end = l.text_start + (uint64_t)ntext * PAGE_SIZE;
    l.rodata_start = l.text_end + (uint64_t)((gap >> 2) & 1) * PAGE_SIZE;
    l.rodata_end = l.rodata_start + (uint64_t)nro * PAGE_SIZE;
    l.data_start = l.rodata_end;
    l.data_end = l.data_start + (uint64_t)ndata * PAGE_SIZE;
    if ((gap & 0x30) == 0x30) /* rodata before text's end */
        l.rodata_start -= PAGE_SIZE;
    l.hhdm_offset = (flags & 4) ? hhdm_in : 0xffff800000000000ULL;
    static struct mem_region raw[MAX_IN], map[MEMMAP_MAX];
    size_t nraw = 0;
    while (!fuzz_done(&in) && nraw < MAX_IN) {
        uint64_t base = fuzz_u32(&in), len = fuzz_u32(&in);
        uint8_t t = fuzz_u8(&in);
        static const uint64_t unit[] = {PAGE_SIZE, MiB(2), GiB(1), PAGE_SIZE};
        static const uint64_t len_mask[] = {0xffffff, 0xffff, 0xff, 0xffffff};
        uint64_t u = unit[t >> 6];
        len &= len_mask[t >> 6];
        /* An HHDM offset off 2 MiB maps with 4 KiB pages only: at most 64 MiB
         * a range then, or one input would take seconds. */
        if (l.hhdm_offset % MiB(2) && len * u > MiB(64))
            len = MiB(64) / u;
        raw[nraw++] = (struct mem_region){base * u % PHYS_LIMIT, len * u,
                                          (t & 0x3f) > 8 ? 0x77 : (uint32_t)(t & 0x3f)};
        if ((t >> 6) == 3) /* an odd size, for the unsanitized map */
            raw[nraw - 1].length += 0x123;
    }
    size_t nmap = nraw;
    if (flags & 1)
        nmap = memmap_sanitize(raw, nraw, map, MEMMAP_MAX, bits);
    else
        memcpy(map, raw, nraw * sizeof(raw[0]));
    l.map = map;
    l.map_count = nmap;
    if (flags & 2) {
        l.fb_phys = fb_phys;
        l.fb_size = fb_size ? fb_size : 1;
    }

    /* ---- the reference ---- */
    bool inval = false;
    vaddr_t b[] = {l.text_start, l.text_end, l.rodata_start, l.rodata_end, l.data_start,
                   l.data_end};
    for (size_t k = 0; k < ARRAY_SIZE(b); k++)
        if (b[k] % PAGE_SIZE || (k && b[k] < b[k - 1]))
            inval = true;
    if (l.text_start < l.kernel_virt || l.kernel_virt < MAPPER_STACK_END ||
        l.text_end <= l.text_start || l.kernel_phys % PAGE_SIZE || l.hhdm_offset % PAGE_SIZE ||
        l.hhdm_offset < 0xffff800000000000ULL || l.hhdm_offset >= MAPPER_HHDM_LIMIT)
        inval = true;
    if (l.kernel_phys + (l.data_end - l.kernel_virt) > PHYS_LIMIT)
        inval = true;
    bool inval_layout = inval; /* refused before anything is built */
    bool sanitized = flags & 1;
    nwant = 0;
    uint64_t hhdm_bytes = 0, hhdm_end = 0;
    /* At most this many table pages: per range, a PT per 2 MiB and a PD per
     * 1 GiB it touches, a PDPT, plus the kernel's and the windows'. An HHDM
     * offset not congruent to the physical addresses modulo 2 MiB takes 4 KiB
     * pages throughout, so a large map may truly run out of frames: -ENOMEM
     * is a fair answer only when this bound is above the free frames. */
    uint64_t tables_max = 16;
    for (size_t k = 0; k < nmap && !inval; k++) {
        uint64_t f;
        unsigned cm;
        const struct mem_region *m = &map[k];
        if (!ref_hhdm(m->type, &f, &cm) || m->length == 0)
            continue;
        uint64_t end = m->base + m->length;
        if (end < m->base || end > PHYS_LIMIT || l.hhdm_offset + end > MAPPER_HHDM_LIMIT ||
            l.hhdm_offset + end < end)
            inval = true;
        add_run(want, &nwant, l.hhdm_offset + m->base, m->length, m->base, f, cm);
        tables_max += (m->length >> 21) + (m->length >> 30) + 5;
        hhdm_bytes += m->length;
        hhdm_end = end;
    }
    vaddr_t fb_va = 0;
    if (l.fb_size && !inval) {
        paddr_t base = ALIGN_DOWN(l.fb_phys, PAGE_SIZE);
        paddr_t end = ALIGN_UP(l.fb_phys + l.fb_size, PAGE_SIZE);
        vaddr_t va = MAPPER_FB_BASE + (base & (GiB(1) - 1));
        if (end - base > MAPPER_STACK_BASE - va || end > PHYS_LIMIT)
            inval = true;
        add_run(want, &nwant, va, end - base, base, PAGE_WRITABLE | PAGE_NX, CACHE_WC);
        tables_max += ((end - base) >> 21) + ((end - base) >> 30) + 5;
        fb_va = va + (l.fb_phys - base);
    }
    paddr_t kp = l.kernel_phys;
    add_run(want, &nwant, l.text_start, l.text_end - l.text_start,
            kp + (l.text_start - l.kernel_virt), 0, CACHE_WB);
    add_run(want, &nwant, l.rodata_start, l.rodata_end - l.rodata_start,
            kp + (l.rodata_start - l.kernel_virt), PAGE_NX, CACHE_WB);
    add_run(want, &nwant, l.data_start, l.data_end - l.data_start,
            kp + (l.data_start - l.kernel_virt), PAGE_WRITABLE | PAGE_NX, CACHE_WB);

    /* ---- the call ---- */
    uint64_t frames0 = fuzz_free_frames(), tables0 = paging_table_pages();
    struct addrspace as;
    struct mapper_result r = {0};
    int err = mapper_build(&as, &l, &r);
    if (err == -PAGING_ENOMEM && !inval_layout) {
        FUZZ_CHECK(tables_max > frames0, "mapper_build: ENOMEM with %llu frames free, at most "
                   "%llu tables needed", (unsigned long long)frames0,
                   (unsigned long long)tables_max);
        inval = true; /* a refusal: nothing may be left */
    } else if (inval_layout || (sanitized && inval))
        FUZZ_CHECK(err == -PAGING_EINVAL, "mapper_build of a bad layout: %d", err);
    else if (!sanitized && (err || inval)) /* what mapper_build may notice of a bad map */
        FUZZ_CHECK(err == -PAGING_EINVAL || err == -PAGING_EEXIST, "unsanitized map: %d", err);
    if (inval || (!sanitized && err)) {
        FUZZ_CHECK(fuzz_free_frames() == frames0 && paging_table_pages() == tables0,
                   "a refusal left %llu frames free (%llu before), %llu tables (%llu)",
                   (unsigned long long)fuzz_free_frames(), (unsigned long long)frames0,
                   (unsigned long long)paging_table_pages(), (unsigned long long)tables0);
        return 0;
    }
    FUZZ_CHECK(err == 0, "mapper_build: %d (%s)", err, paging_strerror(err));
    FUZZ_CHECK(r.hhdm_size == hhdm_end && r.hhdm_mapped == hhdm_bytes && r.fb_virt == fb_va &&
                   r.table_pages == as.table_pages,
               "result: hhdm %#llx/%#llx bytes (want %#llx/%#llx), fb %#llx (want %#llx), "
               "%llu tables (the space has %llu)", (unsigned long long)r.hhdm_size,
               (unsigned long long)r.hhdm_mapped, (unsigned long long)hhdm_end,
               (unsigned long long)hhdm_bytes, (unsigned long long)r.fb_virt,
               (unsigned long long)fb_va, (unsigned long long)r.table_pages,
               (unsigned long long)as.table_pages);
    normalize_want();
    ngot = 0;
    pagewalk_leaves(&as, got_leaf, NULL);
    for (size_t i = 0; i < MAX(nwant, ngot); i++) {
        const struct run *w = i < nwant ? &want[i] : NULL, *g = i < ngot ? &got[i] : NULL;
        FUZZ_CHECK(w && g && w->va == g->va && w->len == g->len && w->pa == g->pa &&
                       w->flags == g->flags && w->cm == g->cm,
                   "run %zu: want %#llx+%#llx -> %#llx flags %#llx cache %u; mapped %#llx+%#llx "
                   "-> %#llx flags %#llx cache %u", i, w ? (unsigned long long)w->va : 0,
                   w ? (unsigned long long)w->len : 0, w ? (unsigned long long)w->pa : 0,
                   w ? (unsigned long long)w->flags : 0, w ? w->cm : 0,
                   g ? (unsigned long long)g->va : 0, g ? (unsigned long long)g->len : 0,
                   g ? (unsigned long long)g->pa : 0, g ? (unsigned long long)g->flags : 0,
                   g ? g->cm : 0);
    }
    paging_as_destroy(&as);
    FUZZ_CHECK(fuzz_free_frames() == frames0 && paging_table_pages() == tables0,
               "destroy: %llu frames free (%llu before), %llu tables (%llu)",
               (unsigned long long)fuzz_free_frames(), (unsigned long long)frames0,
               (unsigned long long)paging_table_pages(), (unsigned long long)tables0);
    return 0;
}
