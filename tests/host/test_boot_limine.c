/* boot_from_limine: synthetic Limine responses, good and malformed; each
 * malformed answer must produce its exact error line. */
#include <criterion/criterion.h>

#include "boot/boot_info.h"
#include "boot/limine.h"
#include "lib/string.h"

#define HHDM 0xffff800000000000ULL
#define KVIRT 0xffffffff80200000ULL
#define KPHYS 0x7a00000ULL

static struct limine_memmap_entry ents[MEMMAP_MAX + 1];
static struct limine_memmap_entry *entp[MEMMAP_MAX + 1];
static struct limine_memmap_response mm;
static struct limine_hhdm_response hh;
static struct limine_framebuffer fbs[2];
static struct limine_framebuffer *fbp[2];
static struct limine_framebuffer_response fbr;
static char cmdline[BOOT_CMDLINE_MAX + 8];
static char path[] = "/boot/slay.kernel";
static uint8_t elf[4096];
static struct limine_file kf;
static struct limine_executable_file_response kfr;
static struct limine_executable_address_response ka;
static struct limine_rsdp_response rsdp;
static struct limine_firmware_type_response fw;
static char bl_name[] = "Limine", bl_version[] = "8.2.0";
static struct limine_bootloader_info_response bl;
static struct limine_paging_mode_response pm;
static struct limine_stack_size_response ss;
static struct limine_mp_info cpu_info[40];
static struct limine_mp_info *cpu_infop[40];
static struct limine_mp_response mp;
static struct limine_answers a;
static struct boot_info bi;

static const struct limine_memmap_entry good_map[] = {
    { 0x1000, 0x9e000, LIMINE_MEMMAP_USABLE },
    { 0x9f000, 0x1000, LIMINE_MEMMAP_RESERVED },
    { 0xe0000, 0x20000, LIMINE_MEMMAP_RESERVED },
    { 0x100000, 0x7ee0000, LIMINE_MEMMAP_USABLE },
    { 0x7fe0000, 0x10000, LIMINE_MEMMAP_ACPI_RECLAIMABLE },
    { 0x7ff0000, 0x10000, LIMINE_MEMMAP_ACPI_NVS },
    { 0x8000000, 0x1000, LIMINE_MEMMAP_BAD_MEMORY },
    { 0x8001000, 0x100000, LIMINE_MEMMAP_BOOTLOADER_RECLAIMABLE },
    { 0x8101000, 0x200000, LIMINE_MEMMAP_EXECUTABLE_AND_MODULES },
    { 0xfd000000, 0x400000, LIMINE_MEMMAP_FRAMEBUFFER },
    { 0xfee00000, 0x1000, LIMINE_MEMMAP_RESERVED_MAPPED },
    { 0xfffc0000, 0x40000, 99 },
};
static const uint32_t good_types[] = {
    MEM_USABLE,       MEM_RESERVED,         MEM_RESERVED, MEM_USABLE,
    MEM_ACPI_RECLAIMABLE, MEM_ACPI_NVS,     MEM_BAD,      MEM_BOOTLOADER_RECLAIMABLE,
    MEM_KERNEL,       MEM_FRAMEBUFFER,      MEM_RESERVED_MAPPED, MEM_RESERVED,
};

static void set_map(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ents[i] = i < ARRAY_SIZE(good_map)
                      ? good_map[i]
                      : (struct limine_memmap_entry){ GiB(8) + i * 0x1000, 0x1000,
                                                      LIMINE_MEMMAP_RESERVED };
        entp[i] = &ents[i];
    }
    mm = (struct limine_memmap_response){ 0, n, entp };
}

/* n CPUs with APIC IDs 0, 2, 4, ... (processor IDs 0, 1, 2, ...), the
 * BSP the one at index bsp; xAPIC. */
static void set_cpus(size_t n, size_t bsp)
{
    memset(cpu_info, 0, sizeof(cpu_info));
    for (size_t i = 0; i < n; i++) {
        cpu_info[i].processor_id = (uint32_t)i;
        cpu_info[i].lapic_id = (uint32_t)(2 * i);
        cpu_infop[i] = &cpu_info[i];
    }
    mp = (struct limine_mp_response){ 0, 0, (uint32_t)(2 * bsp), n, cpu_infop };
}

/* A complete, valid set of answers as Limine 8.2.0 would give them. */
static void setup_good(void)
{
    memset(&bi, 0xa5, sizeof(bi)); /* boot_from_limine must overwrite everything */
    set_map(ARRAY_SIZE(good_map));
    hh = (struct limine_hhdm_response){ 0, HHDM };

    memset(fbs, 0, sizeof(fbs));
    fbs[0].address = (void *)(uintptr_t)(HHDM + 0xb8000);
    fbs[0].width = 80;
    fbs[0].height = 25;
    fbs[0].pitch = 160;
    fbs[0].bpp = 16;
    fbs[0].memory_model = 2; /* not RGB: must be skipped */
    fbs[1].address = (void *)(uintptr_t)(HHDM + 0xfd000000);
    fbs[1].width = 1280;
    fbs[1].height = 800;
    fbs[1].pitch = 5120;
    fbs[1].bpp = 32;
    fbs[1].memory_model = LIMINE_FRAMEBUFFER_RGB;
    fbs[1].red_mask_size = 8;
    fbs[1].red_mask_shift = 16;
    fbs[1].green_mask_size = 8;
    fbs[1].green_mask_shift = 8;
    fbs[1].blue_mask_size = 8;
    fbs[1].blue_mask_shift = 0;
    fbp[0] = &fbs[0];
    fbp[1] = &fbs[1];
    fbr = (struct limine_framebuffer_response){ 1, 2, fbp };

    strcpy(cmdline, "ktest=heap quiet");
    memset(&kf, 0, sizeof(kf));
    kf.address = elf;
    kf.size = sizeof(elf);
    kf.path = path;
    kf.cmdline = cmdline;
    kfr = (struct limine_executable_file_response){ 0, &kf };
    ka = (struct limine_executable_address_response){ 0, KPHYS, KVIRT };
    rsdp = (struct limine_rsdp_response){ 0, (void *)(uintptr_t)(HHDM + 0xf52e0) };
    fw = (struct limine_firmware_type_response){ 0, LIMINE_FIRMWARE_TYPE_UEFI64 };
    bl = (struct limine_bootloader_info_response){ 0, bl_name, bl_version };
    pm = (struct limine_paging_mode_response){ 0, LIMINE_PAGING_MODE_X86_64_4LVL };
    ss = (struct limine_stack_size_response){ 0 };
    set_cpus(4, 0);

    a = (struct limine_answers){
        .base_revision_tag = { LIMINE_BASE_REVISION_MAGIC0, LIMINE_BASE_REVISION_MAGIC1, 0 },
        .requested_revision = 2,
        .memmap = &mm,
        .hhdm = &hh,
        .framebuffer = &fbr,
        .executable_file = &kfr,
        .executable_address = &ka,
        .rsdp = &rsdp,
        .firmware_type = &fw,
        .bootloader_info = &bl,
        .stack_size = &ss,
        .paging_mode = &pm,
        .mp = &mp,
    };
}

TestSuite(boot_limine, .init = setup_good);

static void expect_error(const char *want)
{
    const char *err = boot_from_limine(&bi, &a);
    cr_assert_not_null(err, "expected \"%s\", got success", want);
    cr_expect_str_eq(err, want);
}

static void expect_ok(void)
{
    const char *err = boot_from_limine(&bi, &a);
    cr_assert_null(err, "unexpected error: %s", err);
}

Test(boot_limine, good_answers_convert_every_field)
{
    expect_ok();
    cr_expect_eq(bi.protocol, BOOT_PROTO_LIMINE);
    cr_expect_eq(bi.base_revision, 2);
    cr_expect_eq(bi.hhdm_offset, HHDM);
    cr_assert_eq(bi.memmap_count, ARRAY_SIZE(good_map));
    for (size_t i = 0; i < ARRAY_SIZE(good_map); i++) {
        cr_expect_eq(bi.memmap[i].base, good_map[i].base, "entry %zu base", i);
        cr_expect_eq(bi.memmap[i].length, good_map[i].length, "entry %zu length", i);
        cr_expect_eq(bi.memmap[i].type, good_types[i], "entry %zu type", i);
    }
    cr_expect(bi.fb.present);
    cr_expect_eq(bi.fb.phys, 0xfd000000);
    cr_expect_eq(bi.fb.width, 1280);
    cr_expect_eq(bi.fb.height, 800);
    cr_expect_eq(bi.fb.pitch, 5120);
    cr_expect_eq(bi.fb.bpp, 32);
    cr_expect(bi.fb.red_size == 8 && bi.fb.red_shift == 16);
    cr_expect(bi.fb.green_size == 8 && bi.fb.green_shift == 8);
    cr_expect(bi.fb.blue_size == 8 && bi.fb.blue_shift == 0);
    cr_expect_eq(bi.symbols.elf_file, elf);
    cr_expect_eq(bi.symbols.elf_file_size, sizeof(elf));
    cr_expect_null(bi.symbols.shdrs);
    cr_expect_str_eq(bi.cmdline, "ktest=heap quiet");
    cr_expect_eq(bi.kernel_phys_base, KPHYS);
    cr_expect_eq(bi.kernel_virt_base, KVIRT);
    cr_expect_eq(bi.kernel_size, 0, "kernel_size is the caller's");
    cr_expect_eq(bi.rsdp, 0xf52e0, "revision 2: RSDP converted from HHDM to physical");
    cr_expect(!bi.rsdp_is_copy);
    cr_expect_eq(bi.firmware, FW_UEFI64);
    cr_expect_str_eq(bi.bootloader_name, "Limine");
    cr_expect_str_eq(bi.bootloader_version, "8.2.0");

    bi.kernel_size = MiB(2);
    cr_expect_null(boot_info_validate(&bi));
}

Test(boot_limine, optional_answers_may_be_missing)
{
    a.framebuffer = NULL;
    a.executable_file = NULL;
    a.rsdp = NULL;
    a.firmware_type = NULL;
    a.bootloader_info = NULL;
    a.stack_size = NULL;
    a.paging_mode = NULL;
    expect_ok();
    cr_expect(!bi.fb.present);
    cr_expect_null(bi.symbols.elf_file);
    cr_expect_str_eq(bi.cmdline, "");
    cr_expect_eq(bi.rsdp, 0);
    cr_expect_eq(bi.firmware, FW_UNKNOWN);
    cr_expect_str_eq(bi.bootloader_name, "unknown");
    cr_expect_str_eq(bi.bootloader_version, "");
}

/* ---- base revision ----------------------------------------------------------
 * The tag as each kind of bootloader leaves it when the kernel asks for 6:
 *   12.x (supports 6):        { MAGIC0, 6, 0 }
 *   9.x-11.x (supports 3..5): { MAGIC0, N, 6 }   refused, names what it used
 *   8.x (supports 0..2):      { MAGIC0, MAGIC1, 6 } refused, names nothing */

static void tag(uint64_t w1, uint64_t w2)
{
    a.requested_revision = 6;
    a.base_revision_tag[1] = w1;
    a.base_revision_tag[2] = w2;
}

static const char *revision_line(void)
{
    static char line[160];
    return limine_revision_line(&bi, line, sizeof(line));
}

Test(boot_limine, revision6_granted_and_named)
{
    tag(6, 0);
    rsdp.address = (void *)(uintptr_t)(HHDM + 0xf52e0);
    expect_ok();
    cr_expect_eq(bi.base_revision, 6);
    cr_expect_eq(bi.base_revision_asked, 6);
    cr_expect(bi.base_revision_accepted && bi.base_revision_named);
    cr_expect_eq(bi.rsdp, 0xf52e0, "revision 6: RSDP is an HHDM pointer, made physical");
    cr_expect_str_eq(revision_line(), "limine: base revision 6 in force (asked 6)");
}

Test(boot_limine, revision6_refused_by_pre_revision3_bootloader_falls_back_to_2)
{
    tag(LIMINE_BASE_REVISION_MAGIC1, 6); /* Limine 8.2.0: both words left alone */
    expect_ok();
    cr_expect_eq(bi.base_revision, 2);
    cr_expect(!bi.base_revision_accepted && !bi.base_revision_named);
    cr_expect_eq(bi.rsdp, 0xf52e0, "revision 2: RSDP is an HHDM pointer");
    cr_expect_str_eq(revision_line(),
                     "limine: base revision 2 in force (asked 6: the bootloader supports less; "
                     "it does not name its revision, 0-2 read alike here)");
}

Test(boot_limine, unnamed_refusal_of_a_low_revision_assumes_one_less)
{
    tag(LIMINE_BASE_REVISION_MAGIC1, 2);
    a.requested_revision = 2;
    expect_ok();
    cr_expect_eq(bi.base_revision, 1);
    tag(LIMINE_BASE_REVISION_MAGIC1, 0);
    a.base_revision_tag[2] = 1;
    a.requested_revision = 1;
    expect_ok();
    cr_expect_eq(bi.base_revision, 0);
}

Test(boot_limine, revision6_refused_by_revision4_bootloader)
{
    tag(4, 6);
    rsdp.address = (void *)(uintptr_t)(HHDM + 0xf52e0);
    expect_ok();
    cr_expect_eq(bi.base_revision, 4);
    cr_expect(!bi.base_revision_accepted && bi.base_revision_named);
    cr_expect_eq(bi.rsdp, 0xf52e0, "revision 4: RSDP is an HHDM pointer again");
    cr_expect_str_eq(revision_line(),
                     "limine: base revision 4 in force (asked 6: the bootloader supports less)");
}

Test(boot_limine, revision3_rsdp_is_physical)
{
    tag(3, 6);
    rsdp.address = (void *)(uintptr_t)0xf52e0;
    expect_ok();
    cr_expect_eq(bi.base_revision, 3);
    cr_expect_eq(bi.rsdp, 0xf52e0);
}

Test(boot_limine, rsdp_is_an_hhdm_pointer_in_every_revision_but_3)
{
    static const uint64_t revs[] = { 0, 1, 2, 4, 5, 6 };
    for (size_t i = 0; i < ARRAY_SIZE(revs); i++) {
        setup_good();
        tag(revs[i], revs[i] == 6 ? 0 : 6);
        rsdp.address = (void *)(uintptr_t)0xf52e0; /* a physical address: wrong here */
        expect_error("limine: RSDP address 0xf52e0 below the HHDM");
        rsdp.address = (void *)(uintptr_t)(HHDM + 0xf52e0);
        expect_ok();
        cr_expect_eq(bi.base_revision, revs[i]);
        cr_expect_eq(bi.rsdp, 0xf52e0, "revision %llu", (unsigned long long)revs[i]);
    }
}

Test(boot_limine, granted_but_another_revision_named)
{
    tag(5, 0); /* inconsistent: word 1 says what was used, and is believed */
    expect_ok();
    cr_expect_eq(bi.base_revision, 5);
    cr_expect_str_eq(revision_line(),
                     "limine: base revision 5 in force (asked 6: granted, yet the bootloader "
                     "names another)");
}

Test(boot_limine, granted_without_a_name)
{
    tag(LIMINE_BASE_REVISION_MAGIC1, 0);
    expect_ok();
    cr_expect_eq(bi.base_revision, 6);
    cr_expect_str_eq(revision_line(),
                     "limine: base revision 6 in force (asked 6; the bootloader did not name "
                     "the revision used)");
}

Test(boot_limine, too_new_revision_refused)
{
    tag(7, 6);
    expect_error("limine: the bootloader used base revision 7, newer than the 6 this kernel "
                 "knows");
    tag(0x1234, 0);
    expect_error("limine: the bootloader used base revision 4660, newer than the 6 this kernel "
                 "knows");
}

Test(boot_limine, corrupted_base_revision_tag)
{
    a.base_revision_tag[0] = 0x1234;
    expect_error("limine: base revision tag corrupted (word 0 = 0x1234)");
    setup_good();
    tag(6, 5); /* word 2 is either 0 or what we wrote */
    expect_error("limine: base revision tag corrupted (word 2 = 0x5, asked 6)");
}

Test(boot_limine, kernel_asks_for_the_current_revision)
{
    cr_expect_eq(LIMINE_REQUESTED_BASE_REVISION, 6);
    cr_expect_eq(LIMINE_NEWEST_KNOWN_BASE_REVISION, 6);
}

Test(boot_limine, rsdp_below_hhdm)
{
    rsdp.address = (void *)(uintptr_t)0xf52e0;
    expect_error("limine: RSDP address 0xf52e0 below the HHDM");
}

Test(boot_limine, no_answers)
{
    cr_expect_str_eq(boot_from_limine(&bi, NULL), "limine: no answers");
}

/* ---- memory map ------------------------------------------------------------- */

Test(boot_limine, missing_memmap)
{
    a.memmap = NULL;
    expect_error("limine: no memory map response");
}

Test(boot_limine, empty_memmap)
{
    mm.entry_count = 0;
    expect_error("limine: memory map is empty");
}

Test(boot_limine, too_many_entries)
{
    set_map(MEMMAP_MAX + 1);
    expect_error("limine: too many memory map entries (513 > 512)");
}

Test(boot_limine, exactly_max_entries)
{
    set_map(MEMMAP_MAX);
    expect_ok();
    cr_expect_eq(bi.memmap_count, MEMMAP_MAX);
    cr_expect_eq(bi.memmap[511].base, GiB(8) + 511 * 0x1000);
}

Test(boot_limine, null_entry_array)
{
    mm.entries = NULL;
    expect_error("limine: memory map entry array is NULL");
}

Test(boot_limine, null_entry)
{
    entp[5] = NULL;
    expect_error("limine: memory map entry 5 is NULL");
}

Test(boot_limine, zero_length_entry)
{
    ents[3].length = 0;
    expect_error("limine: memory map entry 3 length 0");
}

Test(boot_limine, wrapping_entry)
{
    ents[11].base = 0xfffffffffffff000ULL;
    ents[11].length = 0x2000;
    expect_error("limine: memory map entry 11 wraps around (base 0xfffffffffffff000 length 0x2000)");
}

/* ---- HHDM -------------------------------------------------------------------- */

Test(boot_limine, missing_hhdm)
{
    a.hhdm = NULL;
    expect_error("limine: no HHDM response");
}

Test(boot_limine, zero_hhdm)
{
    hh.offset = 0;
    expect_error("limine: HHDM offset is 0");
}

Test(boot_limine, unaligned_hhdm)
{
    hh.offset = HHDM + 0x800;
    expect_error("limine: HHDM offset 0xffff800000000800 not 4 KiB aligned");
}

Test(boot_limine, lower_half_hhdm)
{
    hh.offset = 0x100000000000ULL;
    expect_error("limine: HHDM offset 0x100000000000 not in the higher half");
}

/* ---- executable address and file -------------------------------------------- */

Test(boot_limine, missing_executable_address)
{
    a.executable_address = NULL;
    expect_error("limine: no executable address response");
}

Test(boot_limine, unaligned_kernel_base)
{
    ka.physical_base = KPHYS + 0x10;
    expect_error("limine: kernel physical base 0x7a00010 not 4 KiB aligned");
}

Test(boot_limine, low_kernel_virtual_base_fails_validation)
{
    ka.virtual_base = 0x200000;
    expect_ok();
    cr_expect_str_eq(boot_info_validate(&bi),
                     "boot info: kernel virtual base 0x200000 below 0xffffffff80000000");
}

Test(boot_limine, executable_file_response_without_file)
{
    kfr.executable_file = NULL;
    expect_error("limine: executable file response without a file");
}

Test(boot_limine, cmdline_limits)
{
    memset(cmdline, 'x', BOOT_CMDLINE_MAX - 1);
    cmdline[BOOT_CMDLINE_MAX - 1] = 0;
    expect_ok();
    cr_expect_eq(strlen(bi.cmdline), BOOT_CMDLINE_MAX - 1);

    cmdline[BOOT_CMDLINE_MAX - 1] = 'y';
    cmdline[BOOT_CMDLINE_MAX] = 0;
    expect_error("limine: command line longer than 255 bytes");
}

Test(boot_limine, file_without_cmdline)
{
    kf.cmdline = NULL;
    expect_ok();
    cr_expect_str_eq(bi.cmdline, "");
}

/* ---- framebuffer -------------------------------------------------------------- */

Test(boot_limine, no_framebuffers)
{
    fbr.framebuffer_count = 0;
    expect_ok();
    cr_expect(!bi.fb.present);
}

Test(boot_limine, only_non_rgb_framebuffer)
{
    fbr.framebuffer_count = 1;
    expect_ok();
    cr_expect(!bi.fb.present);
}

Test(boot_limine, unsupported_depth_is_skipped)
{
    fbs[1].bpp = 8;
    expect_ok();
    cr_expect(!bi.fb.present);
}

Test(boot_limine, null_framebuffer_array)
{
    fbr.framebuffers = NULL;
    expect_error("limine: framebuffer array is NULL");
}

Test(boot_limine, null_framebuffer)
{
    fbp[1] = NULL;
    expect_error("limine: framebuffer 1 is NULL");
}

Test(boot_limine, framebuffer_below_hhdm)
{
    fbs[1].address = (void *)(uintptr_t)0xfd000000;
    expect_error("limine: framebuffer 1 address 0xfd000000 below the HHDM");
}

Test(boot_limine, framebuffer_geometry_beyond_32_bits)
{
    fbs[1].width = 1ULL << 32;
    expect_error("limine: framebuffer 1 geometry 4294967296x800 pitch 5120 out of range");
}

Test(boot_limine, absurd_framebuffer_fails_validation)
{
    fbs[1].width = 100000;
    expect_ok();
    cr_expect_str_eq(boot_info_validate(&bi),
                     "boot info: framebuffer size 100000x800 out of range (1..16384)");
}

/* ---- firmware, bootloader, paging ---------------------------------------------- */

Test(boot_limine, firmware_types)
{
    static const struct { uint64_t in; enum firmware_type out; } cases[] = {
        { LIMINE_FIRMWARE_TYPE_X86BIOS, FW_BIOS },
        { LIMINE_FIRMWARE_TYPE_UEFI32, FW_UEFI32 },
        { LIMINE_FIRMWARE_TYPE_UEFI64, FW_UEFI64 },
        { 3, FW_UNKNOWN }, /* SBI in newer specifications */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        fw.firmware_type = cases[i].in;
        expect_ok();
        cr_expect_eq(bi.firmware, cases[i].out, "firmware_type %llu",
                     (unsigned long long)cases[i].in);
    }
}

Test(boot_limine, long_bootloader_name_is_truncated)
{
    static char long_name[200];
    memset(long_name, 'L', sizeof(long_name) - 1);
    bl.name = long_name;
    bl.version = NULL;
    expect_ok();
    cr_expect_eq(strlen(bi.bootloader_name), BOOT_NAME_MAX - 1);
    cr_expect_str_eq(bi.bootloader_version, "");
}

Test(boot_limine, five_level_paging_refused)
{
    pm.mode = LIMINE_PAGING_MODE_X86_64_5LVL;
    expect_error("limine: paging mode 1 enabled, only 4-level paging is supported");
}

/* ---- the MP response: the CPUs to start ---- */

static void expect_one_cpu(const char *note)
{
    expect_ok(); /* never fatal: one CPU always works */
    cr_expect_eq(bi.cpus.count, 0);
    cr_expect_eq(bi.cpus.all_count, 0, "nothing to park from a list not trusted");
    cr_expect_str_eq(bi.cpus.note, note);
}

Test(boot_limine, mp_lists_every_cpu_with_its_handle)
{
    mp.flags = LIMINE_MP_X2APIC;
    mp.bsp_lapic_id = 2;
    expect_ok();
    cr_assert_eq(bi.cpus.count, 4);
    cr_expect_eq(bi.cpus.reported, 4);
    cr_expect_eq(bi.cpus.bsp_lapic_id, 2);
    cr_expect(bi.cpus.x2apic);
    cr_expect_str_eq(bi.cpus.note, "");
    cr_expect_eq(bi.cpus.all_handles, (void *const *)cpu_infop);
    cr_expect_eq(bi.cpus.all_count, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_expect_eq(bi.cpus.cpu[i].lapic_id, 2 * i);
        cr_expect_eq(bi.cpus.cpu[i].processor_id, i);
        cr_expect_eq(bi.cpus.cpu[i].start_handle, &cpu_info[i]);
    }
}

Test(boot_limine, mp_missing_means_one_cpu_silently)
{
    a.mp = NULL;
    expect_one_cpu("");
    cr_expect_eq(bi.cpus.reported, 0);
}

Test(boot_limine, mp_with_no_cpus)
{
    mp.cpu_count = 0;
    expect_one_cpu("limine: MP response lists no CPUs; running on the bootstrap CPU only");
}

Test(boot_limine, mp_with_absurd_cpu_count)
{
    mp.cpu_count = 1ULL << 40;
    expect_one_cpu("limine: MP response claims 1099511627776 CPUs; running on the bootstrap "
                   "CPU only");
}

Test(boot_limine, mp_with_null_cpu_array)
{
    mp.cpus = NULL;
    expect_one_cpu("limine: MP response CPU array is NULL; running on the bootstrap CPU only");
}

Test(boot_limine, mp_with_null_cpu)
{
    cpu_infop[2] = NULL;
    expect_one_cpu("limine: MP response CPU 2 is NULL; running on the bootstrap CPU only");
}

Test(boot_limine, mp_without_the_bsp)
{
    mp.bsp_lapic_id = 7;
    expect_one_cpu("limine: MP response does not list the BSP (APIC ID 7); running on the "
                   "bootstrap CPU only");
}

Test(boot_limine, mp_with_a_repeated_apic_id)
{
    cpu_info[3].lapic_id = 2;
    expect_one_cpu("limine: MP response lists APIC ID 2 twice; running on the bootstrap CPU "
                   "only");
}

Test(boot_limine, mp_with_more_than_cpu_max_cpus_is_capped_keeping_the_bsp)
{
    set_cpus(40, 30); /* the BSP beyond the first CPU_MAX entries */
    expect_ok();
    cr_assert_eq(bi.cpus.count, CPU_MAX);
    cr_expect_eq(bi.cpus.reported, 40);
    for (size_t i = 0; i < CPU_MAX - 1; i++)
        cr_expect_eq(bi.cpus.cpu[i].lapic_id, 2 * i, "AP %zu kept in order", i);
    cr_expect_eq(bi.cpus.cpu[CPU_MAX - 1].lapic_id, 60, "the BSP kept");
    cr_expect_str_eq(bi.cpus.note, "limine: 40 CPUs reported, CPU_MAX is 16: using 16 of them "
                                   "(the BSP and the first 15 others)");
    /* The kernel parks the 24 it does not start: it gets all 40. */
    cr_expect_eq(bi.cpus.all_handles, (void *const *)cpu_infop);
    cr_expect_eq(bi.cpus.all_count, 40);
}

Test(boot_limine, mp_with_exactly_cpu_max_cpus_is_not_capped)
{
    set_cpus(CPU_MAX, 0);
    expect_ok();
    cr_expect_eq(bi.cpus.count, CPU_MAX);
    cr_expect_str_eq(bi.cpus.note, "");
}

Test(boot_limine, mp_goto_writes_the_argument_then_the_address)
{
    limine_mp_goto(&cpu_info[1], (limine_goto_address)(uintptr_t)0xffffffff80201234ULL,
                   0xffff800000042000ULL);
    cr_expect_eq((uintptr_t)cpu_info[1].goto_address, 0xffffffff80201234ULL);
    cr_expect_eq(cpu_info[1].extra_argument, 0xffff800000042000ULL);
    cr_expect_null(cpu_info[0].goto_address, "the neighbours untouched");
    cr_expect_null(cpu_info[2].goto_address);
}

/* ---- modules ------------------------------------------------------------------------ */

/* Modules inside the executable-and-modules entry of good_map (0x8101000 +
 * 2 MiB); kernel_size is set so that boot_info_validate can run. */
static struct limine_file mods[BOOT_MODULES_MAX + 1];
static struct limine_file *modp[BOOT_MODULES_MAX + 1];
static struct limine_module_response modr;
static char mod_path0[] = "/boot/hello.elf", mod_str0[] = "hello";
static char mod_path1[] = "/boot/other.elf", mod_str1[] = "";

static void set_modules(size_t n)
{
    memset(mods, 0, sizeof(mods));
    for (size_t i = 0; i < n; i++) {
        mods[i].address = (void *)(uintptr_t)(HHDM + 0x8101000 + i * 0x4000);
        mods[i].size = 0x2345;
        mods[i].path = i ? mod_path1 : mod_path0;
        mods[i].cmdline = i ? mod_str1 : mod_str0;
        modp[i] = &mods[i];
    }
    modr = (struct limine_module_response){ 0, n, modp };
    a.module = &modr;
}

/* boot_from_limine, then boot_info_validate as main.c runs them. */
static const char *convert_and_validate(void)
{
    const char *err = boot_from_limine(&bi, &a);
    if (err)
        return err;
    bi.kernel_size = 0x200000;
    return boot_info_validate(&bi);
}

Test(boot_limine, modules_are_converted_with_physical_addresses_and_names)
{
    set_modules(2);
    cr_assert_null(convert_and_validate());
    cr_assert_eq(bi.module_count, 2);
    cr_expect_eq(bi.modules[0].phys, 0x8101000);
    cr_expect_eq(bi.modules[0].size, 0x2345);
    cr_expect_str_eq(bi.modules[0].name, "hello", "the string names the module");
    cr_expect_eq(bi.modules[1].phys, 0x8105000);
    cr_expect_str_eq(bi.modules[1].name, "other.elf", "no string: the path's last part");
    cr_expect_eq(boot_find_module(&bi, "other.elf"), &bi.modules[1]);
    cr_expect_null(boot_find_module(&bi, "hello.elf"));
}

Test(boot_limine, no_module_response_means_no_modules)
{
    a.module = NULL;
    expect_ok();
    cr_expect_eq(bi.module_count, 0);
    set_modules(0);
    expect_ok();
    cr_expect_eq(bi.module_count, 0);
}

Test(boot_limine, malformed_module_answers_are_refused)
{
    set_modules(BOOT_MODULES_MAX + 1);
    expect_error("limine: 17 modules, at most 16 are supported");
    set_modules(1);
    modr.modules = NULL;
    expect_error("limine: module array is NULL");
    set_modules(2);
    modp[1] = NULL;
    expect_error("limine: module 1 is NULL");
    set_modules(1);
    mods[0].address = (void *)0x8101000;
    expect_error("limine: module 0 address 0x8101000 below the HHDM");
    set_modules(2);
    mods[1].path = mod_str1; /* no string, no path */
    expect_error("limine: module 1 name empty, longer than 63 bytes or not printable ASCII");
    static char long_name[BOOT_MODULE_NAME_MAX + 1];
    memset(long_name, 'x', BOOT_MODULE_NAME_MAX);
    mods[1].cmdline = long_name;
    expect_error("limine: module 1 name empty, longer than 63 bytes or not printable ASCII");
    long_name[BOOT_MODULE_NAME_MAX - 1] = 0; /* 63 bytes: fits */
    expect_ok();
    cr_expect_str_eq(bi.modules[1].name, long_name);
    static char tab_name[] = "a\tb", high_name[] = "caf\xe9";
    mods[1].cmdline = tab_name;
    expect_error("limine: module 1 name empty, longer than 63 bytes or not printable ASCII");
    mods[1].cmdline = high_name;
    expect_error("limine: module 1 name empty, longer than 63 bytes or not printable ASCII");
}

Test(boot_limine, module_placement_is_validated)
{
    set_modules(2);
    mods[1].size = 0;
    cr_expect_str_eq(convert_and_validate(), "boot info: module 1 \"other.elf\" is empty");
    set_modules(2);
    mods[1].address = (void *)(uintptr_t)(HHDM + 0x8105010);
    cr_expect_str_eq(convert_and_validate(),
                     "boot info: module 1 \"other.elf\" at 0x8105010 not 4 KiB aligned");
    set_modules(1);
    mods[0].size = 0x200000; /* the whole executable-and-modules entry: fine */
    cr_expect_null(convert_and_validate());
    mods[0].size = 0x200001; /* one byte (a page) more */
    cr_expect_str_eq(convert_and_validate(), "boot info: module 0 \"hello\" at 0x8101000 + "
                                             "2097153 bytes is not in kernel/module memory of the map");
    set_modules(1);
    mods[0].address = (void *)(uintptr_t)(HHDM + 0x100000); /* usable memory */
    cr_expect_str_eq(convert_and_validate(), "boot info: module 0 \"hello\" at 0x100000 + 9029 "
                                             "bytes is not in kernel/module memory of the map");
    set_modules(1); /* no HHDM pointer wraps: a broken boot_info directly */
    cr_assert_null(convert_and_validate());
    bi.modules[0].phys = 0xfffffffffffff000ULL;
    bi.modules[0].size = 0x2000;
    cr_expect_str_eq(boot_info_validate(&bi), "boot info: module 0 \"hello\" 0xfffffffffffff000 + "
                                              "8192 bytes wraps around");
    bi.modules[0].phys = 0x8101000;
    bi.modules[0].name[0] = 0;
    cr_expect_str_eq(boot_info_validate(&bi), "boot info: module 0 has no name");
    bi.modules[0].name[0] = 0x1b; /* an escape sequence would reach the console */
    cr_expect_str_eq(boot_info_validate(&bi),
                     "boot info: module 0 name has byte 0x1b, not printable ASCII");
    bi.modules[0].name[0] = 'h';
    bi.module_count = BOOT_MODULES_MAX + 1;
    cr_expect_str_eq(boot_info_validate(&bi), "boot info: 17 modules (> 16)");
    set_modules(2);
    mods[1].address = mods[0].address;
    cr_expect_str_eq(convert_and_validate(),
                     "boot info: module 1 \"other.elf\" overlaps module 0 \"hello\"");
    set_modules(2);
    mods[1].address = (void *)(uintptr_t)(HHDM + 0x8103000); /* shares module 0's last page */
    cr_expect_str_eq(convert_and_validate(),
                     "boot info: module 1 \"other.elf\" overlaps module 0 \"hello\"");
    set_modules(2);
    mods[1].cmdline = mod_str0;
    cr_expect_str_eq(convert_and_validate(),
                     "boot info: modules 0 and 1 are both named \"hello\"");
    /* the kernel image inside the same entry: a module on it is refused */
    set_modules(1);
    ka.physical_base = 0x8101000 + 0x100000;
    mods[0].address = (void *)(uintptr_t)(HHDM + 0x8101000 + 0x1ff000);
    mods[0].size = 0x1000;
    cr_expect_str_eq(convert_and_validate(), "boot info: module 0 \"hello\" at 0x8300000 + 4096 "
                                             "bytes overlaps the kernel image");
}
