/* The protocol-independent half of boot information: the kernel's copy,
 * its validation, and names for the enums. Portable. */
#include "boot/boot_info.h"

#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/string.h"

#define HIGHER_HALF_START  0xffff800000000000ULL
#define KERNEL_SPACE_START 0xffffffff80000000ULL
#define FB_MAX_DIMENSION   16384u

struct boot_info boot_ctx;

/* The one buffer behind boot_error: a boot error line is printed and the boot
 * stops, so no two are ever needed at once. */
static char boot_err[160];

const char *boot_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvsnprintf(boot_err, sizeof(boot_err), fmt, ap);
    va_end(ap);
    return boot_err;
}

/* The least usable memory the kernel accepts besides its own image. Bringing
 * the kernel up takes about 190 KiB of it (measured by cutting the map with
 * GRUB's cutmem: the frame bitmap, ~14 page-table pages, the 64 KiB stack and
 * its guard, the first heap pages); the rest leaves the heap and the monitor
 * some room. With less, init would run out of frames halfway. */
#define MIN_USABLE_KIB 512

/* Bytes of [base, base + len) inside [kb, ke). */
static uint64_t overlap_bytes(paddr_t base, uint64_t len, paddr_t kb, paddr_t ke)
{
    paddr_t lo = MAX(base, kb), hi = MIN(base + len, ke);
    return hi > lo ? hi - lo : 0;
}

static const char *validate_memmap(const struct boot_info *bi)
{
    uint64_t usable = 0;
    /* Multiboot2 maps call the loaded image usable; it is not spare memory. */
    paddr_t kb = bi->kernel_phys_base;
    paddr_t ke = kb + bi->kernel_size < kb ? UINT64_MAX : kb + bi->kernel_size;

    if (bi->memmap_count == 0)
        return "boot info: memory map is empty";
    if (bi->memmap_count > MEMMAP_MAX)
        return boot_error("boot info: memory map has %zu entries (> %d)", bi->memmap_count,
                          MEMMAP_MAX);
    for (size_t i = 0; i < bi->memmap_count; i++) {
        const struct mem_region *r = &bi->memmap[i];
        const char *err = boot_check_region("boot info", i, r->base, r->length);
        if (err)
            return err;
        if (r->type == MEM_USABLE) {
            uint64_t spare = r->length - overlap_bytes(r->base, r->length, kb, ke);
            usable = usable + spare < usable ? UINT64_MAX : usable + spare;
        }
    }
    if (usable < KiB(MIN_USABLE_KIB))
        return boot_error("boot info: only %llu KiB of usable memory besides the kernel image "
                          "(need at least %d KiB)",
                          (unsigned long long)(usable / 1024), MIN_USABLE_KIB);
    return NULL;
}

const char *boot_check_region(const char *who, size_t i, paddr_t base, uint64_t length)
{
    if (length == 0)
        return boot_error("%s: memory map entry %zu length 0", who, i);
    if (base + length < base)
        return boot_error("%s: memory map entry %zu wraps around (base 0x%llx length 0x%llx)", who,
                          i, (unsigned long long)base, (unsigned long long)length);
    return NULL;
}

const char *boot_check_hhdm(const char *who, uint64_t offset)
{
    if (offset == 0)
        return boot_error("%s: HHDM offset is 0", who);
    if (!IS_ALIGNED(offset, PAGE_SIZE))
        return boot_error("%s: HHDM offset 0x%llx not 4 KiB aligned", who,
                          (unsigned long long)offset);
    if (offset < HIGHER_HALF_START)
        return boot_error("%s: HHDM offset 0x%llx not in the higher half", who,
                          (unsigned long long)offset);
    return NULL;
}

/* A colour channel must lie inside the pixel. */
static bool channel_fits(uint8_t size, uint8_t shift, uint16_t bpp)
{
    return (unsigned)size + shift <= bpp;
}

static const char *validate_framebuffer(const struct boot_framebuffer *fb)
{
    if (!fb->present)
        return NULL;
    if (fb->width == 0 || fb->width > FB_MAX_DIMENSION || fb->height == 0 ||
        fb->height > FB_MAX_DIMENSION)
        return boot_error("boot info: framebuffer size %ux%u out of range (1..%u)", fb->width,
                          fb->height, FB_MAX_DIMENSION);
    if (fb->bpp != 16 && fb->bpp != 24 && fb->bpp != 32)
        return boot_error("boot info: framebuffer depth %u bpp not 16, 24 or 32", fb->bpp);
    uint64_t row = (uint64_t)fb->width * fb->bpp / 8;
    if (fb->pitch < row)
        return boot_error("boot info: framebuffer pitch %u < %llu bytes per row", fb->pitch,
                          (unsigned long long)row);
    if (fb->phys == 0)
        return "boot info: framebuffer at physical address 0";
    uint64_t bytes = (uint64_t)fb->pitch * fb->height;
    if (fb->phys + bytes < fb->phys)
        return boot_error("boot info: framebuffer 0x%llx + %llu bytes wraps around",
                          (unsigned long long)fb->phys, (unsigned long long)bytes);
    if (!channel_fits(fb->red_size, fb->red_shift, fb->bpp) ||
        !channel_fits(fb->green_size, fb->green_shift, fb->bpp) ||
        !channel_fits(fb->blue_size, fb->blue_shift, fb->bpp))
        return boot_error(
            "boot info: framebuffer colour masks (r %u@%u g %u@%u b %u@%u) exceed %u bpp",
            fb->red_size, fb->red_shift, fb->green_size, fb->green_shift, fb->blue_size,
            fb->blue_shift, fb->bpp);
    return NULL;
}

bool boot_range_in_map(const struct boot_info *bi, paddr_t base, uint64_t len, uint32_t type_mask)
{
    if (len == 0 || base + len < base)
        return false;
    paddr_t at = base, end = base + len;
    /* Each pass moves `at` to the end of an entry that holds it: at most
     * memmap_count passes make progress. */
    for (size_t pass = 0; pass <= bi->memmap_count && at < end; pass++) {
        paddr_t next = at;
        for (size_t i = 0; i < bi->memmap_count; i++) {
            const struct mem_region *r = &bi->memmap[i];
            if (r->type < 32 && (type_mask & (1u << r->type)) && r->base <= at &&
                at - r->base < r->length)
                next = MAX(next, r->base + r->length);
        }
        if (next == at)
            return false;
        at = next;
    }
    return at >= end;
}

/* A byte a module name may hold: printable ASCII (boot_info.h). */
static bool name_byte_ok(char c)
{
    return c >= 0x20 && c <= 0x7e;
}

bool boot_module_name(char *dst, const char *string, const char *path)
{
    const char *s = string && string[0] ? string : path ? path : "";
    if (s == path) { /* the part after the last '/' */
        const char *last = s;
        for (size_t i = 0; i < 4096 && s[i]; i++)
            if (s[i] == '/')
                last = s + i + 1;
        s = last;
    }
    size_t i = 0;
    bool printable = true;
    for (; i + 1 < BOOT_MODULE_NAME_MAX && i < 4096 && s[i]; i++) {
        dst[i] = s[i];
        printable &= name_byte_ok(s[i]);
    }
    dst[i] = 0;
    return i > 0 && s[i] == 0 && printable;
}

const struct boot_module *boot_find_module(const struct boot_info *bi, const char *name)
{
    for (size_t i = 0; i < bi->module_count && i < BOOT_MODULES_MAX; i++)
        if (strcmp(bi->modules[i].name, name) == 0)
            return &bi->modules[i];
    return NULL;
}

/* [base, base + size) page-rounded outward; false when it wraps. */
static bool page_span(paddr_t base, uint64_t size, paddr_t *lo, paddr_t *hi)
{
    *lo = ALIGN_DOWN(base, PAGE_SIZE);
    if (base + size < base || base + size > UINT64_MAX - PAGE_SIZE)
        return false;
    *hi = ALIGN_UP(base + size, PAGE_SIZE);
    return true;
}

static const char *validate_modules(const struct boot_info *bi)
{
    if (bi->module_count > BOOT_MODULES_MAX)
        return boot_error("boot info: %zu modules (> %d)", bi->module_count, BOOT_MODULES_MAX);
    paddr_t kb, ke;
    if (!page_span(bi->kernel_phys_base, bi->kernel_size, &kb, &ke))
        ke = UINT64_MAX; /* not for this check to judge: up to the top */
    for (size_t i = 0; i < bi->module_count; i++) {
        const struct boot_module *m = &bi->modules[i];
        unsigned long long base = m->phys, size = m->size;
        paddr_t lo, hi;
        if (m->name[0] == 0 || strnlen(m->name, BOOT_MODULE_NAME_MAX) >= BOOT_MODULE_NAME_MAX)
            return boot_error("boot info: module %zu has no name", i);
        for (const char *c = m->name; *c; c++)
            if (!name_byte_ok(*c))
                return boot_error("boot info: module %zu name has byte 0x%02x, not printable "
                                  "ASCII", i, (unsigned)(uint8_t)*c);
        if (m->size == 0)
            return boot_error("boot info: module %zu \"%s\" is empty", i, m->name);
        if (!IS_ALIGNED(m->phys, PAGE_SIZE))
            return boot_error("boot info: module %zu \"%s\" at 0x%llx not 4 KiB aligned", i,
                              m->name, base);
        if (!page_span(m->phys, m->size, &lo, &hi))
            return boot_error("boot info: module %zu \"%s\" 0x%llx + %llu bytes wraps around", i,
                              m->name, base, size);
        if (!boot_range_in_map(bi, lo, hi - lo, 1u << MEM_KERNEL))
            return boot_error("boot info: module %zu \"%s\" at 0x%llx + %llu bytes is not in "
                              "kernel/module memory of the map", i, m->name, base, size);
        if (lo < ke && kb < hi)
            return boot_error("boot info: module %zu \"%s\" at 0x%llx + %llu bytes overlaps "
                              "the kernel image", i, m->name, base, size);
        for (size_t j = 0; j < i; j++) {
            const struct boot_module *o = &bi->modules[j];
            paddr_t olo = 0, ohi = 0;
            page_span(o->phys, o->size, &olo, &ohi); /* checked when j was */
            if (lo < ohi && olo < hi)
                return boot_error("boot info: module %zu \"%s\" overlaps module %zu \"%s\"", i,
                                  m->name, j, o->name);
            if (strcmp(m->name, o->name) == 0)
                return boot_error("boot info: modules %zu and %zu are both named \"%s\"", j, i,
                                  m->name);
        }
    }
    return NULL;
}

const char *boot_info_validate(const struct boot_info *bi)
{
    const char *err;

    if ((err = validate_memmap(bi)))
        return err;
    if ((err = boot_check_hhdm("boot info", bi->hhdm_offset)))
        return err;
    if ((err = validate_framebuffer(&bi->fb)))
        return err;
    if (bi->kernel_virt_base < KERNEL_SPACE_START)
        return boot_error("boot info: kernel virtual base 0x%llx below 0x%llx",
                          (unsigned long long)bi->kernel_virt_base,
                          (unsigned long long)KERNEL_SPACE_START);
    if (!IS_ALIGNED(bi->kernel_phys_base, PAGE_SIZE))
        return boot_error("boot info: kernel physical base 0x%llx not 4 KiB aligned",
                          (unsigned long long)bi->kernel_phys_base);
    if ((err = validate_modules(bi)))
        return err;
    return NULL;
}

void boot_add_region(struct boot_info *bi, paddr_t base, uint64_t len, uint32_t type)
{
    if (len == 0)
        return;
    kassert(base + len > base, "region 0x%llx + 0x%llx wraps around", (unsigned long long)base,
            (unsigned long long)len);
    kassert(bi->memmap_count < MEMMAP_MAX, "boot memory map full (%d entries)", MEMMAP_MAX);
    bi->memmap[bi->memmap_count++] = (struct mem_region){ base, len, type };
}

const char *firmware_name(enum firmware_type fw)
{
    switch (fw) {
    case FW_BIOS: return "BIOS";
    case FW_UEFI32: return "UEFI32";
    case FW_UEFI64: return "UEFI64";
    default: return "unknown";
    }
}

const char *boot_protocol_name(enum boot_protocol p)
{
    switch (p) {
    case BOOT_PROTO_LIMINE: return "Limine";
    case BOOT_PROTO_MULTIBOOT2: return "Multiboot2";
    default: return "none";
    }
}
