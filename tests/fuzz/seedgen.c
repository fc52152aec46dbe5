/* Seed generator for the fuzz targets: `seedgen DIR` writes DIR/<target>/<name>
 * files in each target's input layout (described at the top of
 * tests/fuzz/fuzz_<target>.c): memory maps as QEMU's SeaBIOS, OVMF and q35
 * machines report them, Multiboot2 information blocks as GRUB builds them
 * on BIOS and UEFI, Limine responses as Limine gives them, memory images
 * holding an ACPI RSDP, RSDT/XSDT and MADT, and short operation sequences for
 * the allocators and paging. Run at build time by mk/fuzz.mk; nothing here
 * is a pasted binary. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "boot/boot_info.h"
#include "boot/limine.h"
#include "boot/multiboot2.h"

/* ---- a growing little-endian byte buffer ------------------------------------- */

struct buf {
    uint8_t d[65536];
    size_t n;
    size_t origin; /* pad8 aligns relative to this offset (a Multiboot2 block's start) */
};

static void put(struct buf *b, uint64_t v, unsigned size)
{
    if (b->n + size > sizeof(b->d)) {
        fprintf(stderr, "seedgen: seed too large\n");
        exit(1);
    }
    for (unsigned i = 0; i < size; i++)
        b->d[b->n++] = (uint8_t)(v >> (8 * i));
}
static void u8(struct buf *b, uint64_t v) { put(b, v, 1); }
static void u16(struct buf *b, uint64_t v) { put(b, v, 2); }
static void u32(struct buf *b, uint64_t v) { put(b, v, 4); }
static void u64(struct buf *b, uint64_t v) { put(b, v, 8); }
static void bytes(struct buf *b, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        u8(b, ((const uint8_t *)p)[i]);
}
static void pad8(struct buf *b)
{
    while ((b->n - b->origin) % 8)
        u8(b, 0);
}

static const char *outdir;

static void write_seed(const char *target, const char *name, const struct buf *b)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", outdir, target);
    if (mkdir(path, 0755) && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->d, 1, b->n, f) != b->n || fclose(f)) {
        perror(path);
        exit(1);
    }
}

/* ---- machines: memory maps as the firmware reports them ------------------------- */

struct machine {
    const char *name;
    size_t n;
    struct mem_region r[40];
};

#define E(b, l, t) {(b), (l), (t)}
static const struct machine machines[] = {
    {"seabios-128m", 6, {E(0, 0x9fc00, MEM_USABLE), E(0x9fc00, 0x400, MEM_RESERVED),
                         E(0xf0000, 0x10000, MEM_RESERVED), E(0x100000, 0x7ee0000, MEM_USABLE),
                         E(0x7fe0000, 0x20000, MEM_RESERVED), E(0xfffc0000, 0x40000, MEM_RESERVED)}},
    {"seabios-4g", 7, {E(0, 0x9fc00, MEM_USABLE), E(0x9fc00, 0x400, MEM_RESERVED),
                       E(0xf0000, 0x10000, MEM_RESERVED), E(0x100000, 0xbfee0000, MEM_USABLE),
                       E(0xbffe0000, 0x20000, MEM_RESERVED), E(0xfffc0000, 0x40000, MEM_RESERVED),
                       E(0x100000000, 0x40000000, MEM_USABLE)}},
    {"q35-4g", 8, {E(0, 0x9fc00, MEM_USABLE), E(0x9fc00, 0x400, MEM_RESERVED),
                   E(0xf0000, 0x10000, MEM_RESERVED), E(0x100000, 0x7ff00000, MEM_USABLE),
                   E(0xb0000000, 0x10000000, MEM_RESERVED), E(0xfed1c000, 0x4000, MEM_RESERVED),
                   E(0x100000000, 0x80000000, MEM_USABLE),
                   E(0xfd00000000, 0x300000000, MEM_RESERVED)}},
    /* OVMF: boot-services memory (bootloader reclaimable), ACPI tables and NVS,
     * the GOP framebuffer, the kernel as Limine reports it, overlapping runs */
    {"ovmf-256m", 16, {E(0, 0xa0000, MEM_USABLE), E(0x100000, 0x700000, MEM_USABLE),
                       E(0x800000, 0x8000, MEM_ACPI_NVS), E(0x808000, 0x8000, MEM_USABLE),
                       E(0x810000, 0xf0000, MEM_ACPI_NVS), E(0x900000, 0x3000000, MEM_USABLE),
                       E(0x3900000, 0x200000, MEM_KERNEL),
                       E(0x3b00000, 0x1000000, MEM_BOOTLOADER_RECLAIMABLE),
                       E(0x4b00000, 0xa000000, MEM_USABLE), E(0xeb00000, 0x20000, MEM_ACPI_RECLAIMABLE),
                       E(0xeb20000, 0x400000, MEM_BOOTLOADER_RECLAIMABLE),
                       E(0xef20000, 0x80000, MEM_ACPI_NVS), E(0xefa0000, 0x1060000, MEM_USABLE),
                       E(0x80000000, 0x300000, MEM_FRAMEBUFFER), E(0xffc00000, 0x400000, MEM_RESERVED),
                       E(0x8000000, 0x1234, MEM_BAD)}},
    {"odd-edges", 6, {E(0x0, 0x1, MEM_USABLE), E(0x1001, 0xfffff, MEM_USABLE),
                      E(0x50000, 0x3000, MEM_ACPI_RECLAIMABLE), E(0x8ffff, 0x10, 0x1234),
                      E(0x200800, 0x3ff800, MEM_BOOTLOADER_RECLAIMABLE),
                      E(0xfffffffffffff000, 0x2000, MEM_RESERVED)}},
};

static void seeds_memmap(void)
{
    for (size_t m = 0; m < sizeof(machines) / sizeof(machines[0]); m++) {
        const struct machine *mc = &machines[m];
        static const unsigned bits[] = {46, 36, 0};
        for (int v = 0; v < 3; v++) {
            struct buf b = {.n = 0};
            u8(&b, bits[v]);
            u8(&b, v == 2 ? 3 : 0); /* v 2: an output of 4 entries */
            for (size_t i = 0; i < mc->n; i++) {
                u64(&b, mc->r[i].base);
                u64(&b, mc->r[i].length);
                u8(&b, mc->r[i].type < 8 ? mc->r[i].type : 200);
            }
            char name[64];
            snprintf(name, sizeof(name), "%s-%d", mc->name, v);
            write_seed("memmap", name, &b);
        }
    }
}

/* ---- the mapper: a machine's map and a kernel layout, in fuzz_mapper.c's layout ---- */

static void seeds_mapper(void)
{
    for (size_t m = 0; m < sizeof(machines) / sizeof(machines[0]); m++) {
        const struct machine *mc = &machines[m];
        /* v0: sanitized with a framebuffer; v1: sanitized, none; v2: the map
         * as given (unsanitized); v3: an unaligned kernel base */
        static const uint8_t flags[] = {3, 1, 2, 9};
        for (int v = 0; v < 4; v++) {
            struct buf b = {.n = 0};
            u8(&b, flags[v]);
            u8(&b, 46);
            u16(&b, 0x200);             /* the kernel at -2 GiB + 2 MiB */
            u8(&b, 96), u8(&b, 40), u8(&b, 120); /* text, rodata, data pages */
            u8(&b, v == 1 ? 4 : 0);     /* v1: a page between text and rodata */
            u32(&b, 0x200);             /* at physical 2 MiB */
            u64(&b, 0), u64(&b, 0x80000000), u32(&b, 1024 * 768 * 4);
            for (size_t i = 0; i < mc->n; i++) {
                const struct mem_region *r = &mc->r[i];
                unsigned unit = (r->base | r->length) % 0x40000000 == 0 ? 2
                              : (r->base | r->length) % 0x200000 == 0   ? 1
                                                                         : 0;
                static const uint64_t size[] = {0x1000, 0x200000, 0x40000000};
                u32(&b, r->base / size[unit]);
                u32(&b, r->length / size[unit]);
                u8(&b, (unit << 6) | (r->type <= 8 ? r->type : 0x3f));
            }
            char name[64];
            snprintf(name, sizeof(name), "%s-%d", mc->name, v);
            write_seed("mapper", name, &b);
        }
    }
}

/* ---- frame allocator: a machine's map, then operations ----------------------------- */

enum { F_ALLOC, F_ZEROED, F_BURST, F_CONTIG, F_FREE, F_FREE_N, F_RECLAIM, F_BAD_FREE, F_CHECK,
       F_IS_USED };

static void frame_map(struct buf *b, const struct machine *mc)
{
    u8(b, 46);
    u8(b, mc->n - 1);
    for (size_t i = 0; i < mc->n; i++) {
        const struct mem_region *r = &mc->r[i];
        uint8_t type = r->type < 8 ? r->type : 8;
        bool odd = (r->base | r->length) & 0xfff;
        u8(b, 0x80 | type | (odd ? 0x30 : 0));
        u32(b, r->base >> 12);
        u32(b, r->length >> 12);
        u16(b, odd ? ((r->base & 0xfff) | ((r->length & 0xfff) << 4)) : 0);
    }
}

/* The opcode of operation `type` run as CPU slot `cpu` (opcode / 10 % 4 in
 * fuzz_frame.c) whose bits under `mask` equal `bits`. */
static uint8_t fop(unsigned type, unsigned cpu, uint8_t mask, uint8_t bits)
{
    for (unsigned v = 0; v < 256; v++)
        if (v % 10 == type && v / 10 % 4 == cpu && (v & mask) == bits)
            return (uint8_t)v;
    fprintf(stderr, "seedgen: no frame opcode for %u on CPU %u\n", type, cpu);
    exit(1);
}

/* Several CPUs on a 2 MiB machine: frames taken on one CPU and freed on
 * others (caches filling and overflowing), taken again until the bitmap is
 * empty (a refill drains every cache), contiguous runs and frames below a
 * limit that only a drain makes free, an explicit drain. */
static void seeds_frame_cpus(void)
{
    struct buf b = {.n = 0};
    u8(&b, 46);
    u8(&b, 1);
    u8(&b, 1), u32(&b, 0), u32(&b, 0x100), u16(&b, 0);
    u8(&b, 0), u32(&b, 0x100), u32(&b, 0x200), u16(&b, 0);
    u8(&b, fop(F_BURST, 1, 0, 0)), u16(&b, 400);
    for (int i = 0; i < 120; i++) /* freed on CPUs 2, 3 (index 15) and 0: caches overflow */
        u8(&b, fop(F_FREE, (i % 3 + 2) % 4, 0x80, 0)), u16(&b, i * 7);
    u8(&b, fop(F_CHECK, 2, 0x80, 0));
    u8(&b, fop(F_BURST, 0, 0, 0)), u16(&b, 300);  /* to exhaustion: drains the caches */
    u8(&b, fop(F_FREE_N, 3, 0, 0)), u8(&b, 40);
    u8(&b, fop(F_CONTIG, 1, 0x80, 0)), u16(&b, 16), u8(&b, 0); /* needs the cached frames */
    u8(&b, fop(F_FREE_N, 2, 0, 0)), u8(&b, 40);
    u8(&b, fop(F_ALLOC, 1, 0x80, 0x80)), u32(&b, 0x100); /* below 1 MiB: a drain first */
    u8(&b, fop(F_ZEROED, 3, 0, 0));
    u8(&b, fop(F_FREE_N, 0, 0, 0)), u8(&b, 255);
    u8(&b, fop(F_CHECK, 1, 0x80, 0x80));
    u8(&b, fop(F_CHECK, 0, 0x80, 0));
    write_seed("frame", "cpus-2m", &b);
}

static void seeds_frame(void)
{
    for (size_t m = 0; m < sizeof(machines) / sizeof(machines[0]); m++) {
        struct buf b = {.n = 0};
        frame_map(&b, &machines[m]);
        u8(&b, F_CHECK);
        u8(&b, F_BURST), u16(&b, 1500);
        u8(&b, F_CONTIG), u16(&b, 16), u8(&b, 4);   /* 64 KiB aligned slab */
        u8(&b, F_CONTIG), u16(&b, 512), u8(&b, 9);  /* a 2 MiB page */
        u8(&b, F_FREE), u16(&b, 7);
        u8(&b, F_BAD_FREE), u32(&b, 0), u8(&b, 0);  /* frame 0 */
        u8(&b, F_BAD_FREE | 0x80), u32(&b, 0x200), u8(&b, 8); /* unaligned */
        u8(&b, F_RECLAIM);
        u8(&b, F_ZEROED);
        u8(&b, F_IS_USED), u32(&b, 0x9f);
        u8(&b, F_FREE_N), u8(&b, 200);
        u8(&b, F_CHECK);
        write_seed("frame", machines[m].name, &b);
    }
    /* a 2 MiB machine exhausted, then contiguous runs over the holes */
    struct buf b = {.n = 0};
    u8(&b, 46);
    u8(&b, 1);
    u8(&b, 1), u32(&b, 0), u32(&b, 0x100), u16(&b, 0);
    u8(&b, 0), u32(&b, 0x100), u32(&b, 0x200), u16(&b, 0);
    for (int i = 0; i < 3; i++)
        u8(&b, F_BURST), u16(&b, 300);
    u8(&b, F_ALLOC);
    for (int i = 0; i < 40; i++)
        u8(&b, F_FREE), u16(&b, i * 37);
    u8(&b, F_CONTIG), u16(&b, 2), u8(&b, 1);
    u8(&b, F_CONTIG), u16(&b, 1), u8(&b, 0);
    u8(&b, F_CHECK);
    write_seed("frame", "exhaust-2m", &b);
    seeds_frame_cpus();
}

/* ---- paging: operation sequences ------------------------------------------------------ */

enum { P_MAP4K, P_MAP2M, P_MAP1G, P_RANGE, P_UNMAP, P_UNMAP_RANGE, P_PROTECT, P_HOG, P_QUERY };
#define FW 0x01  /* flags byte: writable */
#define FU 0x02
#define FG 0x10
#define FNX 0x20

static void pop(struct buf *b, uint8_t op, uint8_t reg, uint32_t off, uint32_t arg, uint8_t fl,
                uint8_t cmo)
{
    u8(b, op), u8(b, reg), u32(b, off), u32(b, arg), u8(b, fl), u8(b, cmo);
}

static void seeds_paging(void)
{
    struct buf b = {.n = 0};
    u8(&b, 3); /* 1 GiB pages, active */
    pop(&b, P_MAP4K, 0, 7, 0x1234, FW | FNX, 0);
    pop(&b, P_MAP2M, 0, 512, 0x400, FW | FNX, 5);          /* WC */
    pop(&b, P_MAP1G, 0, 0x40000, 0x80000, FW, 0);
    pop(&b, P_UNMAP, 0, 0x40000 + 5, 0, 0, 0);              /* 4 KiB out of the 1 GiB page */
    pop(&b, P_PROTECT, 0, 512 + 3, 2, FNX, 1);              /* split a 2 MiB page */
    pop(&b, P_MAP4K, 0, 7, 0x999, FW | FU, 8);              /* REPLACE */
    pop(&b, P_RANGE, 0, 0x80000, 4096, FW | FNX, 0x10);     /* LARGE */
    pop(&b, P_RANGE | 0x40, 0, 0x100000, 600000, FW | FG | FNX, 0x10 | 8);
    pop(&b, P_QUERY | 0x80, 0, 0, 4096, 0, 0);
    pop(&b, P_MAP4K, 3, 0xfffff, 0x77, FG, 0);              /* the top page */
    pop(&b, P_MAP4K, 1, 0xfffff, 0x78, FW, 0);              /* the lower half's last page */
    pop(&b, P_RANGE, 1, 0xffff0, 64, FW, 0);                /* crosses into the hole: EINVAL */
    pop(&b, P_HOG, 0, 0, 0, 0, 3);
    pop(&b, P_RANGE | 0x40, 2, 0x3000, 300000, FW, 0x10 | 8);
    pop(&b, P_MAP2M, 2, 0x600, 0x800, FW, 0);
    pop(&b, P_HOG, 0, 0, 0, 1, 0);
    pop(&b, P_UNMAP_RANGE, 0, 0, 0x200000, 0, 0);
    pop(&b, P_QUERY | 0x80, 0, 0, 16, 0, 0);
    write_seed("paging", "mixed", &b);

    struct buf c = {.n = 0};
    u8(&c, 0); /* no 1 GiB pages, not active */
    pop(&c, P_MAP1G, 0, 0, 0x40000, FW, 0);                 /* ENOTSUP */
    pop(&c, P_RANGE | 0x40, 0, 0x40000, 300000, FW, 0x10);
    for (uint32_t i = 0; i < 64; i++)
        pop(&c, P_MAP4K, 0, 0x200 * i, i, FW | FNX, 0);      /* one PT each */
    for (uint32_t i = 0; i < 64; i += 2)
        pop(&c, P_UNMAP, 0, 0x200 * i, 0, 0, 0);
    pop(&c, P_PROTECT, 0, 0, 0x200 * 64, FW, 2);
    pop(&c, P_QUERY | 0x80, 0, 0, 0, 0, 0);
    write_seed("paging", "many-tables", &c);
}

/* ---- heap: operation sequences --------------------------------------------------------- */

static void hop(struct buf *b, uint8_t op, uint8_t tier, uint8_t slot, uint32_t size, uint8_t extra)
{
    u8(b, op | (uint8_t)(tier << 5)), u8(b, slot), u32(b, size), u8(b, extra);
}

/* The CPU slot (opcode bits 3-4 in fuzz_heap.c) of a heap operation. */
#define HCPU(c) ((uint8_t)((c) << 3))
/* The check opcode's burst: n objects of size index si (fuzz_heap.c's
 * table), freed on CPU slot `to` (or every CPU in turn, H_EVERY), backwards
 * with H_BACK. */
#define H_EVERY 0x40
#define H_BACK 0x80
static void hburst(struct buf *b, unsigned cpu, unsigned n, unsigned si, unsigned to,
                   uint8_t flags)
{
    hop(b, 7 | HCPU(cpu), 0, 0, (n - 1) | si << 9, (uint8_t)(4 | to << 3 | flags));
}

/* Several CPUs: blocks allocated on one CPU and freed on the others, bursts
 * of one class that overflow magazines into the depot and the slabs, a
 * drain of every CPU's magazines, a trim, and the end's frees across CPUs. */
static void seeds_heap_cpus(void)
{
    for (int mem = 0; mem < 2; mem++) {
        struct buf b = {.n = 0};
        u8(&b, mem * 3); /* 4 and 48 MiB */
        for (uint8_t s = 0; s < 96; s++) /* 96 objects of 4000 bytes on CPU 1 */
            hop(&b, 0 | HCPU(1), 0, s, 3999, 0);
        for (uint8_t s = 0; s < 96; s += 2) /* half freed on CPU 2, a quarter on 3 */
            hop(&b, 5 | HCPU(s % 4 ? 3 : 2), 0, s, 0, 0);
        hop(&b, 7, 0, 0, 0, 0);
        hburst(&b, 0, 300, 15, 1, 0);            /* 4096 B on CPU 0, freed on CPU 1 */
        hburst(&b, 2, 512, 0, 3, H_BACK);        /* 16 B: more than two magazines */
        hburst(&b, 3, 200, 8, 0, H_EVERY);       /* 512 B, freed on every CPU */
        hop(&b, 7 | HCPU(1), 0, 0, 0, 2);        /* drain every CPU's magazines */
        for (uint8_t s = 100; s < 140; s++)      /* small blocks on CPU 3 */
            hop(&b, 0 | HCPU(3), 0, s, (uint32_t)s * 24u, 0);
        hop(&b, 6 | HCPU(2), 0, 101, 0, 0);     /* validate a remote block */
        hop(&b, 7 | HCPU(2), 0, 0, 0, 3);        /* drain, then trim */
        hburst(&b, 1, 64, 13, 2, H_EVERY | H_BACK);
        char name[32];
        snprintf(name, sizeof(name), "cpus-%d", mem);
        write_seed("heap", name, &b);
    }
}

static void seeds_heap(void)
{
    for (int mem = 0; mem < 4; mem++) {
        struct buf b = {.n = 0};
        u8(&b, mem);
        for (uint8_t s = 0; s < 64; s++)                     /* every small class */
            hop(&b, 0, 0, s, s * 16u, 0);
        for (uint8_t s = 64; s < 96; s++)
            hop(&b, 0, 1, s, s * 2000u, 0);                   /* medium */
        hop(&b, 0, 2, 100, 100000, 0);                        /* large */
        hop(&b, 2, 0, 101, 500, 4);                           /* kcalloc */
        hop(&b, 3, 1, 64, 40000, 0);                          /* krealloc medium -> medium */
        hop(&b, 3, 0, 3, 3000, 0);                            /* small -> medium */
        hop(&b, 3, 2, 100, 300000, 0);                        /* large grows */
        hop(&b, 4, 0, 102, 100, 12);                          /* aligned 4 KiB */
        hop(&b, 4, 1, 103, 5000, 21);                         /* aligned 2 MiB */
        hop(&b, 4, 0, 104, 64, 0x85);                         /* bad alignment */
        hop(&b, 6, 0, 5, 0, 2);                               /* validate interior */
        hop(&b, 6, 0, 5, 0, 0);                               /* validate start */
        hop(&b, 7, 0, 0, 0, 0);
        for (uint8_t s = 0; s < 96; s += 3)
            hop(&b, 5, 0, s, 0, 0);
        hop(&b, 7, 0, 0, 0, 1);                               /* trim */
        hop(&b, 0, 3, 110, 9, 0);                             /* HEAP_MAX_ALLOC + 1 */
        hop(&b, 0, 2, 111, 4000000, 0);
        char name[32];
        snprintf(name, sizeof(name), "tiers-%d", mem);
        write_seed("heap", name, &b);
    }
    seeds_heap_cpus();
}

/* ---- vm_region: operation sequences ----------------------------------------------------- */

/* op (bits 0-3 the operation, bits 4-7 the spares: 0x20 offers two), page a,
 * b (length or second page), c (prot bits 0-2, kind bits 3-4, image bit 5,
 * offset delta / stack floor bits 6-7): tests/fuzz/fuzz_vm_region.c. */
enum { V_INS = 0, V_REM = 3, V_PROT = 5, V_GROW = 7, V_GAP = 8, V_LOOK = 9, V_BAD = 10, V_BACK = 11 };
#define V_TWO 0x20
#define V_ANON (0u << 3)
#define V_IMAGE (1u << 3)
#define V_STACK (2u << 3)

static void vop(struct buf *b, uint8_t op, uint8_t a, uint8_t len, uint8_t c)
{
    u8(b, op), u8(b, a), u8(b, len), u8(b, c);
}

static void seeds_vm_region(void)
{
    /* A program's layout: text and data from one image, a heap, a stack
     * with room to grow; then mprotect, munmap and growth. */
    struct buf b = {.n = 0};
    vop(&b, V_INS | V_TWO, 16, 8, 5 | V_IMAGE);            /* text r-x */
    vop(&b, V_INS | V_TWO, 24, 4, 3 | V_IMAGE);            /* data rw- (offsets continue) */
    vop(&b, V_INS | V_TWO, 28, 4, 3 | V_IMAGE);            /* merges with data */
    vop(&b, V_INS | V_TWO, 40, 16, 3 | V_ANON);            /* heap */
    vop(&b, V_INS | V_TWO, 56, 8, 3 | V_ANON);             /* merges with the heap */
    vop(&b, V_INS | V_TWO, 200, 16, 3 | V_STACK | 0xc0);   /* stack, floor 24 pages down */
    vop(&b, V_PROT | V_TWO, 44, 4, 1);                     /* split the heap in three */
    vop(&b, V_PROT | V_TWO, 44, 4, 3);                     /* and back to one */
    vop(&b, V_PROT | V_TWO, 24, 8, 5);                     /* data made r-x: joins text? offsets continue */
    vop(&b, V_REM | V_TWO, 48, 4, 0);                      /* a hole in the heap */
    vop(&b, V_GROW, 200, 8, 0);
    vop(&b, V_GROW, 195, 20, 0);                           /* below the floor */
    vop(&b, V_GAP, 0, 4, 0xff);
    vop(&b, V_GAP, 40, 8, 0xff);
    vop(&b, V_LOOK, 33, 0, 7);
    vop(&b, V_LOOK, 60, 0, 200);
    vop(&b, V_BACK, 0, 0, 0);
    vop(&b, V_REM | V_TWO, 0, 63, 0);
    write_seed("vm_region", "layout", &b);

    /* Refusals: overlaps, holes, bad attributes, no spares. */
    struct buf c = {.n = 0};
    vop(&c, V_INS | V_TWO, 10, 10, 3);
    vop(&c, V_INS | V_TWO, 15, 10, 3);                     /* -EEXIST */
    vop(&c, V_INS, 30, 5, 1);                              /* no spare: -ENOMEM */
    vop(&c, V_INS, 20, 5, 3);                              /* no spare, but merges */
    vop(&c, V_REM, 12, 2, 0);                              /* straddled, no spare */
    vop(&c, V_PROT | 0x10, 12, 2, 1);                      /* needs two, has one */
    vop(&c, V_PROT | V_TWO, 5, 10, 1);                     /* a hole: -ENOENT */
    for (uint8_t k = 0; k < 4; k++)
        vop(&c, V_BAD | V_TWO, 40, (uint8_t)(4 | (k << 6)), 3);
    vop(&c, V_GROW, 10, 2, 0);                             /* not a stack */
    write_seed("vm_region", "refusals", &c);

    /* Many small regions of alternating protection, then one protect over
     * all of them (merges everything), then removal of every other page. */
    struct buf d = {.n = 0};
    for (uint8_t p = 0; p < 128; p++)
        vop(&d, V_INS | V_TWO, (uint8_t)(2 * p), 2, (uint8_t)(1 + (p & 1)));
    vop(&d, V_PROT | V_TWO, 0, 63, 7);
    vop(&d, V_PROT | V_TWO, 63, 63, 7);
    vop(&d, V_PROT | V_TWO, 126, 63, 7);
    for (uint8_t p = 0; p < 128; p += 2)
        vop(&d, V_REM | V_TWO, (uint8_t)(2 * p + 1), 1, 0);
    vop(&d, V_GAP, 0, 2, 0xff);
    vop(&d, V_BACK, 0, 0, 0);
    write_seed("vm_region", "many", &d);

    /* Image regions that touch: they merge only when the image and its
     * offsets continue (one more page of offset, the other image: no). */
    struct buf e = {.n = 0};
    vop(&e, V_INS | V_TWO, 10, 4, 3 | V_IMAGE);            /* image 0 from page 10 */
    vop(&e, V_INS | V_TWO, 14, 4, 3 | V_IMAGE);            /* from page 14: merges */
    vop(&e, V_INS | V_TWO, 18, 4, 3 | V_IMAGE | 0x40);     /* from page 19: apart */
    vop(&e, V_INS | V_TWO, 22, 4, 3 | V_IMAGE | 0x20);     /* image 1: apart */
    vop(&e, V_INS | V_TWO, 6, 4, 3 | V_IMAGE);             /* from page 6: merges below */
    vop(&e, V_PROT | V_TWO, 12, 8, 1);                     /* across three: splits two */
    vop(&e, V_PROT | V_TWO, 12, 8, 3);                     /* merges back where offsets go on */
    vop(&e, V_BACK, 0, 0, 0);
    write_seed("vm_region", "images", &e);
}

/* ---- Multiboot2: information blocks as GRUB builds them ----------------------------- */

static size_t tag_begin(struct buf *b, uint32_t type)
{
    size_t at = b->n;
    u32(b, type);
    u32(b, 0); /* size, patched by tag_end */
    return at;
}

static void tag_end(struct buf *b, size_t at)
{
    uint32_t size = (uint32_t)(b->n - at);
    memcpy(b->d + at + 4, &size, 4);
    pad8(b);
}

/* What a multiboot2 seed gets wrong on purpose (MB2_OK: nothing): each one a
 * refusal of multiboot2.c the fuzzer starts next to. */
enum mb2_bad {
    MB2_OK,
    MB2_BAD_CMDLINE_LONG,   /* 300 bytes */
    MB2_BAD_MMAP_MANY,      /* MB2_MEMMAP_MAX + 1 entries */
    MB2_BAD_MOD_SHORT,      /* a module tag without a name */
    MB2_BAD_MOD_UNTERM,     /* a name without its NUL */
    MB2_BAD_MOD_BACKWARDS,  /* mod_end before mod_start */
    MB2_BAD_MOD_NONAME,     /* an empty name */
    MB2_BAD_MOD_NOT_USABLE, /* in the framebuffer, not in usable memory */
};

/* A GRUB-like information block for machine mc, with `mods` modules (hello,
 * then numbered copies) and the mistake `bad`. */
static void mb2_block(struct buf *b, const struct machine *mc, bool uefi, bool fb, unsigned mods,
                      enum mb2_bad bad)
{
    u8(b, 0);                      /* mode: right magic, aligned */
    u64(b, 0xffff800000000000ULL); /* phys_to_virt */
    size_t start = b->origin = b->n;
    u32(b, 0), u32(b, 0);          /* total_size (patched), reserved */
    size_t t = tag_begin(b, MB2_TAG_CMDLINE);
    if (bad == MB2_BAD_CMDLINE_LONG) {
        for (int i = 0; i < 300; i++)
            u8(b, 'a' + i % 26);
        u8(b, 0);
    } else {
        bytes(b, "ktest console=serial", 21);
    }
    tag_end(b, t);
    t = tag_begin(b, MB2_TAG_BOOTLOADER_NAME);
    bytes(b, "GRUB 2.06-13+deb12u1", 21);
    tag_end(b, t);
    t = tag_begin(b, MB2_TAG_BASIC_MEMINFO);
    u32(b, 639), u32(b, 130048);
    tag_end(b, t);
    t = tag_begin(b, MB2_TAG_MMAP);
    u32(b, 24), u32(b, 0);
    for (size_t i = 0; i < mc->n; i++) {
        static const uint32_t to_mb2[] = {1, 2, 3, 4, 5, 1, 2, 2};
        u64(b, mc->r[i].base), u64(b, mc->r[i].length);
        u32(b, mc->r[i].type < 8 ? to_mb2[mc->r[i].type] : 2), u32(b, 0);
    }
    for (unsigned i = mc->n; bad == MB2_BAD_MMAP_MANY && i <= MB2_MEMMAP_MAX; i++)
        u64(b, 0x100000000ULL + i * 0x10000ULL), u64(b, 0x1000), u32(b, 2), u32(b, 0);
    tag_end(b, t);
    if (fb) {
        t = tag_begin(b, MB2_TAG_FRAMEBUFFER);
        u64(b, 0xfd000000), u32(b, 4096), u32(b, 1024), u32(b, 768);
        u8(b, 32), u8(b, MB2_FRAMEBUFFER_TYPE_RGB), u16(b, 0);
        u8(b, 16), u8(b, 8), u8(b, 8), u8(b, 8), u8(b, 0), u8(b, 8);
        tag_end(b, t);
    }
    t = tag_begin(b, MB2_TAG_ELF_SECTIONS);
    u32(b, 4), u32(b, 64), u32(b, 3);
    for (int i = 0; i < 4; i++) {
        u32(b, i ? 1 + 6 * i : 0), u32(b, i == 3 ? 3 : i ? 1 : 0);
        u64(b, i == 1 ? 6 : 0), u64(b, i ? 0x200000 + 0x10000 * i : 0), u64(b, 0x1000 * i);
        u64(b, i ? 0x1000 : 0), u32(b, 0), u32(b, 0), u64(b, 16), u64(b, 0);
    }
    tag_end(b, t);
    t = tag_begin(b, uefi ? MB2_TAG_ACPI_NEW : MB2_TAG_ACPI_OLD);
    bytes(b, "RSD PTR ", 8);
    u8(b, 0x42), bytes(b, "BOCHS ", 6), u8(b, uefi ? 2 : 0), u32(b, 0x7fe14b5);
    if (uefi)
        u32(b, 36), u64(b, 0x7fe15a1), u8(b, 0x5a), u8(b, 0), u8(b, 0), u8(b, 0);
    tag_end(b, t);
    if (uefi) {
        t = tag_begin(b, MB2_TAG_EFI64);
        u64(b, 0x7f9ee018);
        tag_end(b, t);
        t = tag_begin(b, MB2_TAG_EFI_BS);
        tag_end(b, t);
    }
    t = tag_begin(b, MB2_TAG_LOAD_BASE_ADDR);
    u32(b, 0x200000);
    tag_end(b, t);
    for (unsigned i = 0; i < mods; i++) { /* user programs, as the ISO builder loads them */
        uint32_t at = 0x400000 + i * 0x8000;
        t = tag_begin(b, MB2_TAG_MODULE);
        if (bad == MB2_BAD_MOD_NOT_USABLE && i == mods - 1)
            at = 0xfd000000;
        u32(b, at), u32(b, bad == MB2_BAD_MOD_BACKWARDS && i == mods - 1 ? at - 1 : at + 0x30e4);
        char name[16];
        int n = snprintf(name, sizeof(name), i ? "hello%u" : "hello", i);
        if (bad == MB2_BAD_MOD_NONAME && i == mods - 1)
            u8(b, 0);
        else if (bad == MB2_BAD_MOD_UNTERM && i == mods - 1)
            bytes(b, name, (size_t)n);
        else if (bad != MB2_BAD_MOD_SHORT || i != mods - 1)
            bytes(b, name, (size_t)n + 1);
        tag_end(b, t);
    }
    t = tag_begin(b, MB2_TAG_END);
    tag_end(b, t);
    uint32_t total = (uint32_t)(b->n - start);
    memcpy(b->d + start, &total, 4);
}

static void seeds_multiboot2(void)
{
    static const struct {
        const char *name;
        int machine;
        bool uefi, fb;
        unsigned mods;
        enum mb2_bad bad;
    } v[] = {
        {"grub-bios-128m", 0, false, false, 1, MB2_OK},
        {"grub-bios-4g-fb", 1, false, true, 1, MB2_OK},
        {"grub-uefi-q35", 2, true, true, 1, MB2_OK},
        {"grub-uefi-ovmf", 3, true, true, 1, MB2_OK},
        {"grub-bios-6-modules", 0, false, false, 6, MB2_OK},
        {"grub-bios-17-modules", 0, false, false, BOOT_MODULES_MAX + 1, MB2_OK},
        {"grub-bios-long-cmdline", 0, false, false, 1, MB2_BAD_CMDLINE_LONG},
        {"grub-bios-mmap-too-many", 0, false, false, 1, MB2_BAD_MMAP_MANY},
        {"grub-bios-module-short", 0, false, false, 2, MB2_BAD_MOD_SHORT},
        {"grub-bios-module-unterminated", 0, false, false, 2, MB2_BAD_MOD_UNTERM},
        {"grub-bios-module-backwards", 0, false, false, 2, MB2_BAD_MOD_BACKWARDS},
        {"grub-bios-module-noname", 0, false, false, 2, MB2_BAD_MOD_NONAME},
        {"grub-uefi-module-in-fb", 3, true, true, 2, MB2_BAD_MOD_NOT_USABLE},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct buf b = {.n = 0};
        mb2_block(&b, &machines[v[i].machine], v[i].uefi, v[i].fb, v[i].mods, v[i].bad);
        write_seed("multiboot2", v[i].name, &b);
    }
}

/* ---- Limine: responses, in fuzz_limine.c's decode() layout ----------------------------- */

static void str16(struct buf *b, const char *s)
{
    u16(b, strlen(s));
    bytes(b, s, strlen(s));
}

/* The kernel asks for revision `asked`; the bootloader uses `revision`
 * (granted when equal), naming it from revision 3 on, as Limine does. */
static void limine_answers(struct buf *b, const struct machine *mc, unsigned asked,
                           unsigned revision, bool fb, unsigned firmware)
{
    uint64_t hhdm = 0xffff800000000000ULL;
    u8(b, 0xff);                     /* every response */
    u8(b, 1 | 2);                    /* paging mode, stack size */
    u8(b, revision >= 3 ? revision : 0); /* loaded revision named from revision 3 */
    u8(b, revision == asked ? 0 : asked); /* word 2: 0 = granted, else left alone */
    u8(b, asked);                    /* requested */
    u16(b, mc->n), u8(b, 0);         /* memmap */
    for (size_t i = 0; i < mc->n; i++) {
        u64(b, mc->r[i].base), u64(b, mc->r[i].length);
        u8(b, mc->r[i].type < 9 ? mc->r[i].type : LIMINE_MEMMAP_RESERVED);
    }
    u64(b, hhdm);
    u8(b, fb ? 2 : 0), u8(b, 0);     /* framebuffers: an indexed one, then RGB */
    for (int i = 0; fb && i < 2; i++) {
        u8(b, 0);
        u64(b, hhdm + 0x80000000), u64(b, 1280), u64(b, 800), u64(b, 5120);
        u16(b, i ? 32 : 8), u8(b, i ? LIMINE_FRAMEBUFFER_RGB : 0);
        u8(b, 8), u8(b, 16), u8(b, 8), u8(b, 8), u8(b, 8), u8(b, 0);
    }
    u8(b, 2), u64(b, 0xffff800003a00000ULL), u64(b, 0x180000);   /* kernel file + cmdline */
    str16(b, "ktest loglevel=3");
    u64(b, 0x3900000), u64(b, 0xffffffff80000000ULL);            /* executable address */
    u64(b, revision == 3 ? 0xeb01000 : hhdm + 0xeb01000);        /* RSDP: physical in 3 only */
    u8(b, firmware);                                              /* LIMINE_FIRMWARE_TYPE_* */
    u8(b, 3), str16(b, "Limine"), str16(b, revision >= 6 ? "12.3.3" : "8.2.0");
    u8(b, 0);                                                     /* 4-level paging */
}

/* A CPU list for the MP response (flag 16, after the modules): `count`
 * CPUs with APIC IDs ids[i] (or 0, 1, 2, ... without ids), ACPI UIDs from
 * 0, the entry at null_at (if below count) NULL. */
struct mp_seed {
    const char *name;
    uint32_t flags, bsp;
    uint64_t count;
    bool huge_count, null_array;
    unsigned null_at;
    const uint32_t *ids;
};

static void limine_mp(struct buf *b, const struct mp_seed *s)
{
    b->d[1] |= 16;
    u32(b, s->flags), u32(b, s->bsp);
    u8(b, (s->huge_count ? 1 : 0) | (s->null_array ? 2 : 0));
    if (s->huge_count)
        u64(b, s->count);
    else
        u16(b, s->count);
    u64(b, 0xffffffff80123000ULL); /* what the kernel passes: its struct cpu */
    for (unsigned i = 0; !s->null_array && !s->huge_count && i < s->count; i++) {
        if (i == s->null_at) {
            u8(b, 0xff);
            continue;
        }
        u8(b, 0), u32(b, i), u32(b, s->ids ? s->ids[i] : i);
    }
}

/* Limine's MP answers: QEMU with 2 and 4 CPUs (BSP first), 18 (more than
 * CPU_MAX: the BSP listed last keeps its slot), x2APIC with sparse IDs, and
 * the malformed lists the kernel must refuse (no CPUs, a NULL array, a NULL
 * entry, no BSP, a duplicate APIC ID, a corrupted count). */
static void seeds_limine_mp(void)
{
    static const uint32_t bsp_last[18] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                          13, 14, 15, 16, 17, 0};
    static const uint32_t sparse[4] = {0x100, 0, 0x2, 0x10001};
    static const uint32_t no_bsp[3] = {1, 2, 3};
    static const uint32_t twice[4] = {0, 1, 2, 1};
    static const struct mp_seed v[] = {
        {"limine-bios-r6-smp2", 0, 0, 2, false, false, ~0u, NULL},
        {"limine-uefi-r6-smp4", 0, 0, 4, false, false, ~0u, NULL},
        {"limine-bios-r6-smp18-bsp-last", 0, 0, 18, false, false, ~0u, bsp_last},
        {"limine-uefi-r6-x2apic-sparse", LIMINE_MP_X2APIC, 0x100, 4, false, false, ~0u, sparse},
        {"limine-bios-r6-mp-none", 0, 0, 0, false, false, ~0u, NULL},
        {"limine-bios-r6-mp-null-array", 0, 0, 4, false, true, ~0u, NULL},
        {"limine-bios-r6-mp-null-cpu", 0, 0, 4, false, false, 2, NULL},
        {"limine-bios-r6-mp-no-bsp", 0, 0, 3, false, false, ~0u, no_bsp},
        {"limine-bios-r6-mp-twice", 0, 0, 4, false, false, ~0u, twice},
        {"limine-bios-r6-mp-count-4g", 0, 0, 1ULL << 32, true, false, ~0u, NULL}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct buf b = {.n = 0};
        limine_answers(&b, &machines[i % 2 ? 3 : 1], 6, 6, true,
                       i % 2 ? LIMINE_FIRMWARE_TYPE_UEFI64 : LIMINE_FIRMWARE_TYPE_X86BIOS);
        limine_mp(&b, &v[i]);
        write_seed("limine", v[i].name, &b);
    }
}

static void seeds_limine(void)
{
    static const struct {
        const char *name;
        int machine;
        unsigned asked, rev;
        bool fb, uefi;
    } v[] = {{"limine-bios-128m-r2", 0, 2, 2, false, false},
             {"limine-bios-4g-r3", 1, 3, 3, true, false},
             {"limine-uefi-ovmf-r3", 3, 3, 3, true, true},
             {"limine-uefi-q35-r2", 2, 2, 2, true, true},
             {"limine-bios-128m-r6", 0, 6, 6, false, false},     /* 12.x grants 6 */
             {"limine-uefi-ovmf-r6", 3, 6, 6, true, true},
             {"limine-bios-4g-r6-by-8x", 1, 6, 2, true, false},  /* 8.2.0: unnamed 2 */
             {"limine-uefi-q35-r6-by-r4", 2, 6, 4, true, true}}; /* refused, names 4 */
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct buf b = {.n = 0};
        limine_answers(&b, &machines[v[i].machine], v[i].asked, v[i].rev, v[i].fb,
                       v[i].uefi ? LIMINE_FIRMWARE_TYPE_UEFI64 : LIMINE_FIRMWARE_TYPE_X86BIOS);
        write_seed("limine", v[i].name, &b);
    }
    /* 32-bit UEFI firmware starting the 64-bit kernel (Limine supports it). */
    struct buf b32 = {.n = 0};
    limine_answers(&b32, &machines[3], 6, 6, true, LIMINE_FIRMWARE_TYPE_UEFI32);
    write_seed("limine", "limine-uefi32-ovmf-r6", &b32);
    /* With two modules (flag 8, after everything else): one named by its
     * string, one by its path, right after the kernel file. */
    struct buf b = {.n = 0};
    limine_answers(&b, &machines[1], 6, 6, true, LIMINE_FIRMWARE_TYPE_X86BIOS);
    b.d[1] |= 8;
    u8(&b, 2), u8(&b, 0);
    u8(&b, 2 | 4), u64(&b, 0xffff800003b80000ULL), u64(&b, 0x30e4);
    str16(&b, "hello"), str16(&b, "/boot/hello.elf");
    u8(&b, 4), u64(&b, 0xffff800003b84000ULL), u64(&b, 0x1000);
    str16(&b, "/boot/other.elf");
    b.d[1] |= 32, u64(&b, 0x180000); /* kernel size, as the kernel sets it */
    write_seed("limine", "limine-bios-4g-r6-modules", &b);
    seeds_limine_mp();
}

/* ---- ACPI: an RSDP and tables in a memory image, in fuzz_acpi.c's layout ------------- */

static void patch(struct buf *b, size_t at, uint64_t v, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        b->d[at + i] = (uint8_t)(v >> (8 * i));
}

/* The checksum byte at sum_at makes the bytes [at, at + len) sum to 0. */
static void acpi_checksum(struct buf *b, size_t at, size_t len, size_t sum_at)
{
    uint8_t s = 0;
    b->d[sum_at] = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + b->d[at + i]);
    b->d[sum_at] = (uint8_t)-s;
}

/* A table header (length and checksum filled by sdt_end). */
static size_t sdt_begin(struct buf *b, const char *sig)
{
    size_t at = b->n;
    bytes(b, sig, 4);
    u32(b, 0);
    u8(b, 1);
    u8(b, 0);
    bytes(b, "SLAYER", 6);
    bytes(b, "SEEDTABL", 8);
    u32(b, 1);
    bytes(b, "SEED", 4);
    u32(b, 1);
    return at;
}

/* Closes the table begun at `at`; returns its physical address. */
static uint32_t sdt_end(struct buf *b, size_t at)
{
    patch(b, at + 4, b->n - at, 4);
    acpi_checksum(b, at, b->n - at, at + 9);
    return (uint32_t)(at - b->origin);
}

struct acpi_seed {
    const char *name;
    uint8_t mode;     /* fuzz_acpi.c's mode byte (bit 0: the RSDP as a copy) */
    uint8_t revision; /* RSDP revision: 0 (RSDT only) or 2 (XSDT too) */
    unsigned cpus;
    bool x2apic;      /* type-9 entries instead of type 0 */
    bool override;    /* a type-5 LAPIC address override */
    bool hotplug;     /* CPUs from the third on online-capable, the last disabled */
};

static void acpi_image(struct buf *b, const struct acpi_seed *v)
{
    u8(b, v->mode);
    u32(b, 0); /* the RSDP's address, patched below */
    b->origin = b->n;
    size_t facp = sdt_begin(b, "FACP");
    for (int i = 0; i < 100; i++)
        u8(b, 0);
    uint32_t facp_phys = sdt_end(b, facp);
    size_t madt = sdt_begin(b, "APIC");
    u32(b, 0xfee00000);
    u32(b, 1); /* PCAT_COMPAT */
    for (unsigned i = 0; i < v->cpus; i++) {
        uint32_t flags = !v->hotplug || i < 2 ? 1 : i + 1 == v->cpus ? 0 : 2;
        if (v->x2apic) {
            u8(b, 9), u8(b, 16), u16(b, 0), u32(b, 0x100 + i), u32(b, flags), u32(b, i);
        } else {
            u8(b, 0), u8(b, 8), u8(b, i), u8(b, i), u32(b, flags);
        }
    }
    u8(b, 1), u8(b, 12), u8(b, 0), u8(b, 0), u32(b, 0xfec00000), u32(b, 0); /* I/O APIC */
    u8(b, 2), u8(b, 10), u8(b, 0), u8(b, 0), u32(b, 2), u16(b, 0);          /* IRQ0 -> GSI 2 */
    u8(b, 4), u8(b, 6), u8(b, 0xff), u16(b, 0), u8(b, 1);                   /* NMI on LINT1 */
    if (v->override)
        u8(b, 5), u8(b, 12), u16(b, 0), u64(b, 0xfee00000);
    uint32_t madt_phys = sdt_end(b, madt);
    size_t rsdt = sdt_begin(b, "RSDT");
    u32(b, facp_phys);
    u32(b, madt_phys);
    uint32_t rsdt_phys = sdt_end(b, rsdt), xsdt_phys = 0;
    if (v->revision >= 2) {
        size_t xsdt = sdt_begin(b, "XSDT");
        u64(b, facp_phys);
        u64(b, madt_phys);
        xsdt_phys = sdt_end(b, xsdt);
    }
    while ((b->n - b->origin) % 16)
        u8(b, 0);
    size_t rsdp = b->n;
    bytes(b, "RSD PTR ", 8);
    u8(b, 0);
    bytes(b, "SLAYER", 6);
    u8(b, v->revision);
    u32(b, rsdt_phys);
    acpi_checksum(b, rsdp, 20, rsdp + 8);
    if (v->revision >= 2) {
        u32(b, 36);
        u64(b, xsdt_phys);
        u8(b, 0);
        u8(b, 0), u8(b, 0), u8(b, 0);
        acpi_checksum(b, rsdp, 36, rsdp + 32);
    }
    patch(b, 1, rsdp - b->origin, 4);
}

static void seeds_acpi(void)
{
    static const struct acpi_seed v[] = {
        {"seabios-smp1", 0, 0, 1, false, false, false},
        {"seabios-smp4", 0, 0, 4, false, false, false},
        {"ovmf-smp4-xsdt", 0, 2, 4, false, false, false},
        {"grub-copy-smp8", 1, 2, 8, false, true, false},
        {"x2apic-smp20", 0, 2, 20, true, true, false},
        {"hotplug-smp6", 1, 0, 6, false, false, true},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        struct buf b = {.n = 0};
        acpi_image(&b, &v[i]);
        write_seed("acpi", v[i].name, &b);
    }
}

/* ---- vm: address-space operation sequences ----------------------------------------------- */

/* op (bits 0-3 the operation, bits 4-5 the space slot), page a, b (length
 * - 1 in bits 0-3, FIXED bit 4, stack floor distance bits 5-7), c (prot bits
 * 0-2, image bit 3, image page offset bits 4-7): tests/fuzz/fuzz_vm.c. */
enum { M_ANON = 0, M_IMAGE = 1, M_STACK = 2, M_UNMAP = 3, M_PROT = 4, M_READ = 5, M_WRITE = 6,
       M_EXEC = 7, M_FORK = 8, M_DESTROY = 9, M_CREATE = 10, M_HOG = 11, M_CHECK = 14 };
#define M_FIXED 0x10
#define M_SLOT(s) ((uint8_t)((s) << 4))

static void seeds_vm(void)
{
    /* A program: text and data from an image, a heap, a stack with room to
     * grow; touched, forked, written on both sides, protected, unmapped. */
    struct buf b = {.n = 0};
    vop(&b, M_IMAGE, 0, 3 | M_FIXED, 5);                 /* text r-x, image 0 */
    vop(&b, M_IMAGE, 4, 1 | M_FIXED, 3 | 0x40);          /* data rw-, image page 4 (past its end) */
    vop(&b, M_ANON, 8, 7 | M_FIXED, 3);                  /* heap */
    vop(&b, M_STACK, 60, 3 | M_FIXED | 0x60, 3);         /* stack, floor 24 pages down */
    vop(&b, M_EXEC, 1, 0, 0);
    vop(&b, M_READ, 3, 125, 0);
    vop(&b, M_WRITE, 4, 0, 0);
    for (uint8_t p = 8; p < 16; p++)
        vop(&b, M_WRITE, p, 0, 0);
    vop(&b, M_WRITE, 58, 0, 0);                          /* grows the stack */
    vop(&b, M_READ, 40, 0, 0);                           /* the stack's floor area */
    vop(&b, M_READ, 30, 0, 0);                           /* the guard gap */
    vop(&b, M_FORK, 0, 0, 0);
    vop(&b, M_WRITE | M_SLOT(1), 9, 0, 0);               /* child copies */
    vop(&b, M_WRITE, 10, 0, 0);                          /* parent copies */
    vop(&b, M_FORK | M_SLOT(1), 0, 0, 0);                /* a fork of the fork */
    vop(&b, M_READ | M_SLOT(2), 9, 0, 0);
    vop(&b, M_PROT, 8, 3, 1);                            /* part of the heap read-only */
    vop(&b, M_WRITE, 9, 0, 0);                           /* refused */
    vop(&b, M_PROT, 8, 7, 3);
    vop(&b, M_PROT, 10, 1, 0);                           /* PROT_NONE */
    vop(&b, M_READ, 10, 0, 0);
    vop(&b, M_DESTROY | M_SLOT(1), 0, 0, 0);
    vop(&b, M_WRITE, 11, 0, 0);                          /* reuse or copy */
    vop(&b, M_UNMAP, 9, 1, 0);
    vop(&b, M_CHECK, 0, 0, 0);
    write_seed("vm", "program", &b);

    /* Out of memory: frames held back, then faults, a fork, a map. */
    struct buf c = {.n = 0};
    vop(&c, M_ANON, 0, 15 | M_FIXED, 3);
    for (uint8_t p = 0; p < 8; p++)
        vop(&c, M_WRITE, p, 0, 0);
    vop(&c, M_STACK, 40, 1 | M_FIXED | 0x40, 3);
    vop(&c, M_HOG, 0, 0, 2);
    vop(&c, M_WRITE, 9, 0, 0);
    vop(&c, M_WRITE, 38, 0, 0);
    vop(&c, M_FORK, 0, 0, 0);
    vop(&c, M_IMAGE, 20, 2, 1 | 0x08);
    vop(&c, M_HOG, 0, 0, 0x80);
    vop(&c, M_FORK, 0, 0, 0);
    vop(&c, M_HOG, 0, 0, 1);
    vop(&c, M_WRITE | M_SLOT(1), 2, 0, 0);
    vop(&c, M_HOG, 0, 0, 0x80);
    vop(&c, M_CHECK, 0, 0, 0);
    write_seed("vm", "oom", &c);

    /* Copy-on-write of pages that hold image bytes in every checked word:
     * a copy must be the whole page, a sole owner's write reuses it. */
    struct buf d = {.n = 0};
    vop(&d, M_IMAGE, 0, 3 | M_FIXED, 3);                 /* rw-, image 0 pages 0-3 */
    vop(&d, M_READ, 1, 1, 0);
    vop(&d, M_READ, 2, 0, 0);
    vop(&d, M_FORK, 0, 0, 0);
    vop(&d, M_WRITE | M_SLOT(1), 1, 0, 0);               /* child copies */
    vop(&d, M_WRITE, 2, 0, 0);                           /* parent copies */
    vop(&d, M_WRITE, 1, 0, 0);                           /* parent alone: reuses */
    vop(&d, M_READ | M_SLOT(1), 2, 2, 0);
    vop(&d, M_CHECK, 0, 0, 0);
    write_seed("vm", "cow-image", &d);
}

/* ---- elf: executables like user.ld makes, and near misses ---------------------------------- */

/* One program header. */
static void elf_phdr(struct buf *b, uint32_t type, uint32_t flags, uint64_t off, uint64_t va,
                     uint64_t fsz, uint64_t msz)
{
    u32(b, type), u32(b, flags), u64(b, off), u64(b, va), u64(b, va), u64(b, fsz), u64(b, msz);
    u64(b, 0x1000);
}

/* An ELF64 x86_64 ET_EXEC: header, nph program headers from the caller,
 * then file bytes up to `len` (a pattern). Variant v: 0 text/rodata/data
 * like user.ld (+ PT_GNU_STACK), 1 text holding the headers and a bss-only segment,
 * 2 a data segment starting mid-page, 3 eight segments. */
static void elf_file(struct buf *b, int v)
{
    static const unsigned nph[] = {4, 2, 3, 8};
    bytes(b, "\177ELF\2\1\1", 7);
    for (int i = 7; i < 16; i++)
        u8(b, 0);
    u16(b, 2), u16(b, 62), u32(b, 1);
    u64(b, v == 1 ? 0x10000 : 0x400000); /* entry */
    u64(b, 64), u64(b, 0), u32(b, 0);
    u16(b, 64), u16(b, 56), u16(b, nph[v]), u16(b, 64), u16(b, 0), u16(b, 0);
    uint64_t end = 0;
    switch (v) {
    case 0:
        elf_phdr(b, 1, 5, 0x1000, 0x400000, 0x144, 0x144);
        elf_phdr(b, 1, 4, 0x2000, 0x401000, 0x60, 0x60);
        elf_phdr(b, 1, 6, 0x3000, 0x402000, 0x80, 0x30e4);
        elf_phdr(b, 0x6474e551, 6, 0, 0, 0, 0);
        end = 0x3080;
        break;
    case 1:
        elf_phdr(b, 1, 5, 0x0, 0x10000, 0x200, 0x200); /* headers inside the text */
        elf_phdr(b, 1, 6, 0x200, 0x20200, 0, 0x100000); /* bss only, 1 MiB */
        end = 0x200;
        break;
    case 2:
        elf_phdr(b, 1, 5, 0x1000, 0x400000, 0x800, 0x800);
        elf_phdr(b, 1, 6, 0x1900, 0x401900, 0x10, 0x2000);
        elf_phdr(b, 4, 4, 0x1000, 0, 0x20, 0x20); /* PT_NOTE: ignored */
        end = 0x1910;
        break;
    default:
        for (unsigned i = 0; i < 8; i++)
            elf_phdr(b, 1, i ? 4 : 5, 0x1000, 0x400000 + i * 0x1000, 0x10, 0x10);
        end = 0x1010;
        break;
    }
    for (uint64_t i = b->n; i < end; i++)
        u8(b, (uint8_t)(i * 7));
}

static void seeds_elf(void)
{
    static const char *names[] = {"user-ld", "bss-only", "mid-page", "eight"};
    for (int v = 0; v < 4; v++) {
        struct buf b = {.n = 0};
        elf_file(&b, v);
        write_seed("elf", names[v], &b);
    }
    /* near misses: W^X broken, entry in data, a page shared, cut short */
    struct buf b = {.n = 0};
    elf_file(&b, 0);
    patch(&b, 64 + 4, 7, 4);
    write_seed("elf", "wx", &b);
    b.n = 0;
    elf_file(&b, 0);
    patch(&b, 24, 0x402000, 8);
    write_seed("elf", "entry-in-data", &b);
    b.n = 0;
    elf_file(&b, 0);
    patch(&b, 64 + 56 + 16, 0x400000, 8); /* rodata on text's page */
    patch(&b, 64 + 56 + 8, 0x1000, 8);
    write_seed("elf", "shared-page", &b);
    b.n = 0;
    elf_file(&b, 0);
    b.n = 0x1100;
    write_seed("elf", "cut", &b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) && errno != EEXIST) {
        perror(outdir);
        return 1;
    }
    seeds_memmap();
    seeds_mapper();
    seeds_frame();
    seeds_paging();
    seeds_heap();
    seeds_vm_region();
    seeds_vm();
    seeds_multiboot2();
    seeds_limine();
    seeds_acpi();
    seeds_elf();
    return 0;
}
