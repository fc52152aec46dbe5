/* The Limine boot protocol: our own definitions of the parts SlayerOS uses,
 * written from the protocol specification (limine-protocol's PROTOCOL.md,
 * base revisions 0-6). Layouts are fixed by the protocol and checked with
 * _Static_assert below.
 *
 * How the protocol works: the kernel image contains request structures
 * (an ID, a revision, a response pointer left NULL). The bootloader scans the
 * image between the start and end markers, and for every request it can honour
 * writes a pointer to a response (in bootloader-reclaimable memory, an HHDM
 * address unless noted) into the request. A response it cannot give stays NULL.
 *
 * boot_from_limine() (limine.c, portable) turns the responses into struct
 * boot_info; the request variables themselves live in limine_requests.c
 * (kernel only). */
#pragma once

#include "boot/boot_info.h"
#include "lib/types.h"

/* ---- base revision tag ------------------------------------------------------
 * Three words: two magic words and the requested revision. A bootloader that
 * supports the requested revision sets word [2] to 0; one that does not leaves
 * it alone and boots with some revision it does support. Bootloaders that
 * implement revision 3 or later always replace word [1] with the revision
 * they actually used (at least 3 when they refuse the one asked for); older
 * ones leave the magic there and do not say (Limine 8.x uses 2).
 *
 * What changes between revisions, for this kernel (x86_64):
 *   0    identity map of the low 4 GiB; the HHDM covers every map entry.
 *   1, 2 no identity map; the HHDM covers the first 4 GiB whatever their type,
 *        and above that every entry but reserved and bad memory. Revision 2
 *        makes the request delimiters binding. Page 0 is never usable.
 *   3    the HHDM covers only usable, bootloader-reclaimable, executable and
 *        module, and framebuffer entries: no 4 GiB of everything, no ACPI, no
 *        reserved or MMIO. The RSDP address is physical (in 3 only). Page 0
 *        may be usable.
 *   4    memory map type 8, reserved-mapped; ACPI reclaimable, ACPI NVS and
 *        reserved-mapped entries join the HHDM, and every ACPI table lies in
 *        one of them. The RSDP address is an HHDM pointer again.
 *   5    SMBIOS tables, EFI runtime memory and the EFI system table become
 *        reserved-mapped (their addresses are HHDM pointers again; physical in
 *        3 and 4). At entry every CR0/CR4/EFER bit beyond PE, ET, WP, PG,
 *        PAE, LME, LMA and NXE is clear, RFLAGS is 2, IDTR, TR and LDTR are
 *        null, the LAPIC is enabled with every LVT entry masked, IOMMUs off.
 *   6    changes only other architectures.
 * Responses, the memory map rules and the paging-mode request are otherwise
 * the same in every revision. */
#define LIMINE_BASE_REVISION_MAGIC0 0xf9562b2d5c95a6c8ULL
#define LIMINE_BASE_REVISION_MAGIC1 0x6a7b384944536bdcULL
/* The base revision SlayerOS asks for: the current one (Limine 11.x, 12.x). */
#define LIMINE_REQUESTED_BASE_REVISION 6
/* The newest revision whose rules this file knows; a bootloader claiming to
 * have used a newer one is refused (we cannot know what it changed). */
#define LIMINE_NEWEST_KNOWN_BASE_REVISION 6
/* What a bootloader that refused our revision without naming its own is
 * taken to use: it predates revision 3, and 0-2 differ in nothing this kernel
 * relies on (the HHDM covers the low 4 GiB and RSDP is an HHDM pointer). */
#define LIMINE_UNNAMED_FALLBACK_REVISION 2

/* ---- request area delimiters ---------------------------------------------- */
#define LIMINE_REQUESTS_START_MARKER_WORDS \
    0xf6b8f4b39de7d1aeULL, 0xfab91a6940fcb9cfULL, 0x785c6ed015d3e316ULL, 0x181e920a7852b9d9ULL
#define LIMINE_REQUESTS_END_MARKER_WORDS 0xadc0e0531bb10d03ULL, 0x9572709f31764c62ULL

/* ---- request IDs: two common words, then two per feature --------------------- */
#define LIMINE_ID_COMMON 0xc7b1dd30df4c8b88ULL, 0x0a82e883a194f07bULL
#define LIMINE_ID(a, b)  { LIMINE_ID_COMMON, a, b }
#define LIMINE_ID_MEMMAP             LIMINE_ID(0x67cf3d9d378a806fULL, 0xe304acdfc50c3c62ULL)
#define LIMINE_ID_HHDM               LIMINE_ID(0x48dcf1cb8ad2b852ULL, 0x63984e959a98244bULL)
#define LIMINE_ID_FRAMEBUFFER        LIMINE_ID(0x9d5827dcd881dd75ULL, 0xa3148604f6fab11bULL)
#define LIMINE_ID_EXECUTABLE_FILE    LIMINE_ID(0xad97e90e83f1ed67ULL, 0x31eb5d1c5ff23b69ULL)
#define LIMINE_ID_EXECUTABLE_ADDRESS LIMINE_ID(0x71ba76863cc55f63ULL, 0xb2644a48c516a487ULL)
#define LIMINE_ID_RSDP               LIMINE_ID(0xc5e77b6b397e7b43ULL, 0x27637845accdcf3cULL)
#define LIMINE_ID_FIRMWARE_TYPE      LIMINE_ID(0x8c2f75d90bef28a8ULL, 0x7045a4688eac00c3ULL)
#define LIMINE_ID_BOOTLOADER_INFO    LIMINE_ID(0xf55038d8e2a1202fULL, 0x279426fcf5f59740ULL)
#define LIMINE_ID_STACK_SIZE         LIMINE_ID(0x224ef0460a8e8926ULL, 0xe1cb0fc25f46ea3dULL)
#define LIMINE_ID_PAGING_MODE        LIMINE_ID(0x95c1a0edab0944cbULL, 0xa4e5cb3842f7488aULL)
#define LIMINE_ID_MP                 LIMINE_ID(0x95a67b819a1b857eULL, 0xa0b61b723b6a73e0ULL)
#define LIMINE_ID_MODULE             LIMINE_ID(0x3e7e279702be32afULL, 0xca1c4f3bd1280ceeULL)

/* Every request starts with these three members. */
#define LIMINE_REQUEST_HEADER(resp_type) \
    uint64_t id[4];                      \
    uint64_t revision;                   \
    resp_type *response
/* struct limine_<name>_request for a request that is only the header. */
#define LIMINE_PLAIN_REQUEST(name) \
    struct limine_##name##_request { LIMINE_REQUEST_HEADER(struct limine_##name##_response); }

/* Every request this kernel makes, by name: limine_requests.c defines
 * <name>_request for each, and struct limine_answers (below) has a field
 * <name> for its response, both from this one list. */
#define LIMINE_REQUESTS(X)                                                                   \
    X(memmap) X(hhdm) X(framebuffer) X(executable_file) X(executable_address) X(rsdp)       \
    X(firmware_type) X(bootloader_info) X(stack_size) X(paging_mode) X(mp) X(module)

/* ---- memory map ---------------------------------------------------------------
 * Entries are sorted by base; usable and bootloader-reclaimable entries are
 * 4 KiB aligned and overlap nothing; other types may be unaligned or overlap. */
#define LIMINE_MEMMAP_USABLE                 0
#define LIMINE_MEMMAP_RESERVED               1
#define LIMINE_MEMMAP_ACPI_RECLAIMABLE       2
#define LIMINE_MEMMAP_ACPI_NVS               3
#define LIMINE_MEMMAP_BAD_MEMORY             4
#define LIMINE_MEMMAP_BOOTLOADER_RECLAIMABLE 5
#define LIMINE_MEMMAP_EXECUTABLE_AND_MODULES 6
#define LIMINE_MEMMAP_FRAMEBUFFER            7
#define LIMINE_MEMMAP_RESERVED_MAPPED        8 /* base revision 4+: reserved, in the HHDM */

struct limine_memmap_entry {
    uint64_t base;
    uint64_t length;
    uint64_t type;
};

struct limine_memmap_response {
    uint64_t revision;
    uint64_t entry_count;
    struct limine_memmap_entry **entries; /* entry_count pointers */
};

LIMINE_PLAIN_REQUEST(memmap);

/* ---- higher-half direct map ---------------------------------------------------- */
struct limine_hhdm_response {
    uint64_t revision;
    uint64_t offset; /* virtual = physical + offset */
};

LIMINE_PLAIN_REQUEST(hhdm);

/* ---- framebuffer ----------------------------------------------------------------- */
#define LIMINE_FRAMEBUFFER_RGB 1 /* the only memory model defined */

struct limine_video_mode {
    uint64_t pitch;
    uint64_t width;
    uint64_t height;
    uint16_t bpp;
    uint8_t memory_model;
    uint8_t red_mask_size;
    uint8_t red_mask_shift;
    uint8_t green_mask_size;
    uint8_t green_mask_shift;
    uint8_t blue_mask_size;
    uint8_t blue_mask_shift;
};

struct limine_framebuffer {
    void *address; /* HHDM address of pixel (0,0) */
    uint64_t width;
    uint64_t height;
    uint64_t pitch; /* bytes per row */
    uint16_t bpp;
    uint8_t memory_model;
    uint8_t red_mask_size;
    uint8_t red_mask_shift;
    uint8_t green_mask_size;
    uint8_t green_mask_shift;
    uint8_t blue_mask_size;
    uint8_t blue_mask_shift;
    uint8_t unused[7];
    uint64_t edid_size;
    void *edid;
    /* response revision 1 and later */
    uint64_t mode_count;
    struct limine_video_mode **modes;
};

struct limine_framebuffer_response {
    uint64_t revision;
    uint64_t framebuffer_count;
    struct limine_framebuffer **framebuffers; /* framebuffer_count pointers */
};

LIMINE_PLAIN_REQUEST(framebuffer);

/* ---- files (the executable itself, modules) ------------------------------------ */
struct limine_uuid {
    uint32_t a;
    uint16_t b;
    uint16_t c;
    uint8_t d[8];
};

#define LIMINE_MEDIA_TYPE_GENERIC 0
#define LIMINE_MEDIA_TYPE_OPTICAL 1
#define LIMINE_MEDIA_TYPE_TFTP    2

struct limine_file {
    uint64_t revision;
    void *address;   /* HHDM address of the file's bytes, 4 KiB aligned */
    uint64_t size;
    char *path;      /* path within its volume, leading slash */
    char *cmdline;   /* the string the configuration gave with the file
                        (named `string` in newer specifications) */
    uint32_t media_type;
    uint32_t unused;
    uint32_t tftp_ip;
    uint32_t tftp_port;
    uint32_t partition_index; /* 1-based; 0 = unpartitioned or unknown */
    uint32_t mbr_disk_id;
    struct limine_uuid gpt_disk_uuid;
    struct limine_uuid gpt_part_uuid;
    struct limine_uuid part_uuid;
};

struct limine_executable_file_response {
    uint64_t revision;
    struct limine_file *executable_file;
};

LIMINE_PLAIN_REQUEST(executable_file);

/* ---- modules: the files the configuration lists (module_path) -------------------
 * Request revision 0 (revision 1 adds modules the executable names itself,
 * which SlayerOS does not use). The response is the same in every base
 * revision: module_count pointers to struct limine_file, each file's address
 * an HHDM pointer in memory the map calls executable-and-modules. */
struct limine_module_response {
    uint64_t revision;
    uint64_t module_count;
    struct limine_file **modules; /* module_count pointers */
};

LIMINE_PLAIN_REQUEST(module);

/* ---- where the executable was loaded ---------------------------------------------- */
struct limine_executable_address_response {
    uint64_t revision;
    uint64_t physical_base;
    uint64_t virtual_base;
};

LIMINE_PLAIN_REQUEST(executable_address);

/* ---- ACPI RSDP ---------------------------------------------------------------------
 * address: physical under base revision 3 only; an HHDM pointer under 0-2 and
 * 4+. Under revision 3 the RSDP is not in the bootloader's HHDM at all. */
struct limine_rsdp_response {
    uint64_t revision;
    void *address;
};

LIMINE_PLAIN_REQUEST(rsdp);

/* ---- firmware type ------------------------------------------------------------------ */
#define LIMINE_FIRMWARE_TYPE_X86BIOS 0
#define LIMINE_FIRMWARE_TYPE_UEFI32  1
#define LIMINE_FIRMWARE_TYPE_UEFI64  2
/* 3 is SBI (RISC-V) in newer specifications: FW_UNKNOWN here. */

struct limine_firmware_type_response {
    uint64_t revision;
    uint64_t firmware_type;
};

LIMINE_PLAIN_REQUEST(firmware_type);

/* ---- bootloader name and version ---------------------------------------------------- */
struct limine_bootloader_info_response {
    uint64_t revision;
    char *name;    /* NUL-terminated ASCII */
    char *version; /* NUL-terminated ASCII */
};

LIMINE_PLAIN_REQUEST(bootloader_info);

/* ---- stack size (for the BSP and, later, every AP) --------------------------------- */
struct limine_stack_size_response {
    uint64_t revision;
};

struct limine_stack_size_request {
    LIMINE_REQUEST_HEADER(struct limine_stack_size_response);
    uint64_t stack_size; /* bytes */
};

/* ---- paging mode (x86_64 values) ----------------------------------------------------- */
#define LIMINE_PAGING_MODE_X86_64_4LVL 0
#define LIMINE_PAGING_MODE_X86_64_5LVL 1

struct limine_paging_mode_response {
    uint64_t revision;
    uint64_t mode; /* the mode actually enabled */
};

struct limine_paging_mode_request {
    LIMINE_REQUEST_HEADER(struct limine_paging_mode_response);
    uint64_t mode;     /* preferred */
    /* request revision 1 and later */
    uint64_t max_mode;
    uint64_t min_mode;
};

/* ---- multiprocessor (x86_64 layout; "SMP" in Limine 8.x, same ID and layout) ----------
 * The bootloader starts every AP and parks it, on a stack and page tables of
 * its own in bootloader-reclaimable memory, polling its limine_mp_info's
 * goto_address. Writing goto_address (atomically, after extra_argument)
 * sends the AP there: it jumps with RDI = its limine_mp_info (an HHDM
 * pointer), interrupts off, on the bootloader's GDT and page tables. The BSP
 * is listed too; its goto_address is unused. */
#define LIMINE_MP_X2APIC 1 /* request flag: x2APIC when available; response flag: enabled */

struct limine_mp_info;
typedef void (*limine_goto_address)(struct limine_mp_info *);

struct limine_mp_info {
    uint32_t processor_id; /* ACPI processor UID (MADT) */
    uint32_t lapic_id;
    uint64_t reserved;
    limine_goto_address goto_address; /* written by the kernel to start the AP */
    uint64_t extra_argument;          /* free for the kernel */
};

struct limine_mp_response {
    uint64_t revision;
    uint32_t flags;        /* bit 0: x2APIC enabled */
    uint32_t bsp_lapic_id;
    uint64_t cpu_count;
    struct limine_mp_info **cpus; /* cpu_count pointers */
};

struct limine_mp_request {
    LIMINE_REQUEST_HEADER(struct limine_mp_response);
    uint64_t flags; /* bit 0: enable x2APIC if possible */
};

/* ---- layouts fixed by the protocol --------------------------------------------------- */
_Static_assert(sizeof(struct limine_memmap_entry) == 24, "limine memmap entry layout");
_Static_assert(sizeof(struct limine_memmap_response) == 24, "limine memmap response layout");
_Static_assert(sizeof(struct limine_memmap_request) == 48, "limine request header layout");
_Static_assert(offsetof(struct limine_memmap_request, response) == 40, "limine request header");
_Static_assert(sizeof(struct limine_hhdm_response) == 16, "limine hhdm response layout");
_Static_assert(offsetof(struct limine_framebuffer, bpp) == 32, "limine framebuffer layout");
_Static_assert(offsetof(struct limine_framebuffer, memory_model) == 34, "limine framebuffer layout");
_Static_assert(offsetof(struct limine_framebuffer, blue_mask_shift) == 40, "limine framebuffer layout");
_Static_assert(offsetof(struct limine_framebuffer, edid_size) == 48, "limine framebuffer layout");
_Static_assert(offsetof(struct limine_framebuffer, mode_count) == 64, "limine framebuffer layout");
_Static_assert(sizeof(struct limine_framebuffer) == 80, "limine framebuffer layout");
_Static_assert(sizeof(struct limine_video_mode) == 40, "limine video mode layout");
_Static_assert(sizeof(struct limine_framebuffer_response) == 24, "limine fb response layout");
_Static_assert(sizeof(struct limine_uuid) == 16, "limine uuid layout");
_Static_assert(offsetof(struct limine_file, cmdline) == 32, "limine file layout");
_Static_assert(offsetof(struct limine_file, gpt_disk_uuid) == 64, "limine file layout");
_Static_assert(sizeof(struct limine_file) == 112, "limine file layout");
_Static_assert(sizeof(struct limine_executable_file_response) == 16, "limine file response layout");
_Static_assert(sizeof(struct limine_module_response) == 24, "limine module response layout");
_Static_assert(sizeof(struct limine_module_request) == 48, "limine module request layout");
_Static_assert(sizeof(struct limine_executable_address_response) == 24, "limine address layout");
_Static_assert(sizeof(struct limine_rsdp_response) == 16, "limine rsdp response layout");
_Static_assert(sizeof(struct limine_firmware_type_response) == 16, "limine fw type layout");
_Static_assert(sizeof(struct limine_bootloader_info_response) == 24, "limine bl info layout");
_Static_assert(sizeof(struct limine_stack_size_request) == 56, "limine stack size request layout");
_Static_assert(sizeof(struct limine_paging_mode_request) == 72, "limine paging request layout");
_Static_assert(sizeof(struct limine_paging_mode_response) == 16, "limine paging response layout");
_Static_assert(offsetof(struct limine_mp_info, goto_address) == 16, "limine mp info layout");
_Static_assert(offsetof(struct limine_mp_info, extra_argument) == 24, "limine mp info layout");
_Static_assert(sizeof(struct limine_mp_info) == 32, "limine mp info layout");
_Static_assert(sizeof(struct limine_mp_response) == 32, "limine mp response layout");
_Static_assert(sizeof(struct limine_mp_request) == 56, "limine mp request layout");

/* ---- what the bootloader answered --------------------------------------------------- */

/* Everything boot_from_limine() needs: the base-revision tag as the bootloader
 * left it, the revision the kernel requested, and the response pointers exactly
 * as found in the requests (any may be NULL). Filled by boot_limine_collect()
 * in the kernel, or built by hand in host tests. */
struct limine_answers {
    uint64_t base_revision_tag[3];
    uint64_t requested_revision;
#define LIMINE_ANSWER_FIELD(name) const struct limine_##name##_response *name;
    LIMINE_REQUESTS(LIMINE_ANSWER_FIELD)
#undef LIMINE_ANSWER_FIELD
};

/* Validates the answers and fills *out from scratch (protocol, base revision
 * in force, asked, accepted and named, as the tag says; see above),
 * memory map converted to enum mem_type, HHDM offset, the first usable RGB
 * framebuffer, kernel file and command line, kernel physical/virtual base,
 * RSDP as a physical address, firmware type, bootloader name and version,
 * the CPU list of the MP response: see boot_cpus; a malformed list is not
 * fatal, it leaves cpus.count 0 and says why in cpus.note), the modules
 * (at most BOOT_MODULES_MAX, each file non-NULL with an address in the HHDM,
 * named by its string or else its path's last part: boot_module_name; the
 * rest of their checks is boot_info_validate's).
 * Memory map, HHDM and executable address are required; the rest is optional.
 * A revision other than the one asked for is accepted when its rules are
 * known (0..LIMINE_NEWEST_KNOWN_BASE_REVISION): every field is read by the
 * rules of the revision in force. kernel_size is left 0 for the caller.
 * Returns NULL on success, otherwise one line naming what is wrong (a static
 * string; *out is then incomplete). */
const char *boot_from_limine(struct boot_info *out, const struct limine_answers *a);

/* Writes into buf (NUL-terminated, truncated to size) and returns the line
 * that names the base revision in force and how the bootloader answered, e.g.
 * "limine: base revision 6 in force (asked 6)" or "limine: base revision 2
 * in force (asked 6: the bootloader supports less)". For a bi filled by
 * boot_from_limine(). */
const char *limine_revision_line(const struct boot_info *bi, char *buf, size_t size);

/* Starts the AP parked at handle (a boot_cpu's start_handle): writes arg to
 * its extra_argument, then entry to its goto_address (release), after which
 * the AP jumps to entry(handle). */
void limine_mp_goto(void *handle, limine_goto_address entry, uint64_t arg);

/* Kernel only (limine_requests.c): gathers the answers from our request
 * variables and runs boot_from_limine() on them. Same result convention. */
const char *boot_limine_collect(struct boot_info *out);
