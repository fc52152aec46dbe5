/* boot_info_validate, boot_add_region and the name helpers. */
#include <criterion/criterion.h>

#include "boot/boot_info.h"
#include "lib/string.h"
#include "support.h"

static struct boot_info bi;

/* A boot_info that passes validation; each test breaks one thing. */
static void setup_good(void)
{
    memset(&bi, 0, sizeof(bi));
    bi.protocol = BOOT_PROTO_LIMINE;
    bi.memmap[0] = (struct mem_region){ 0x1000, 0x9e000, MEM_USABLE };
    bi.memmap[1] = (struct mem_region){ 0x100000, MiB(127), MEM_USABLE };
    bi.memmap[2] = (struct mem_region){ 0xfd000000, 0x400000, MEM_FRAMEBUFFER };
    bi.memmap_count = 3;
    bi.hhdm_offset = 0xffff800000000000ULL;
    bi.fb = (struct boot_framebuffer){ .present = true, .phys = 0xfd000000, .width = 1280,
                                       .height = 800, .pitch = 5120, .bpp = 32,
                                       .red_size = 8, .red_shift = 16, .green_size = 8,
                                       .green_shift = 8, .blue_size = 8, .blue_shift = 0 };
    bi.kernel_phys_base = 0x200000;
    bi.kernel_virt_base = 0xffffffff80200000ULL;
    bi.kernel_size = MiB(1);
}

TestSuite(boot_info, .init = setup_good);

static void expect_invalid(const char *want)
{
    const char *err = boot_info_validate(&bi);
    cr_assert_not_null(err, "expected \"%s\", got success", want);
    cr_expect_str_eq(err, want);
}

Test(boot_info, good_passes)
{
    cr_expect_null(boot_info_validate(&bi));
    bi.fb.present = false;
    bi.fb.width = 0; /* an absent framebuffer is not looked at */
    cr_expect_null(boot_info_validate(&bi));
}

Test(boot_info, empty_memmap)
{
    bi.memmap_count = 0;
    expect_invalid("boot info: memory map is empty");
}

Test(boot_info, memmap_count_beyond_array)
{
    bi.memmap_count = MEMMAP_MAX + 1;
    expect_invalid("boot info: memory map has 513 entries (> 512)");
}

Test(boot_info, zero_length_region)
{
    bi.memmap[2].length = 0;
    expect_invalid("boot info: memory map entry 2 length 0");
}

Test(boot_info, wrapping_region)
{
    bi.memmap[2] = (struct mem_region){ 0xfffffffffffff000ULL, 0x1000, MEM_RESERVED };
    expect_invalid("boot info: memory map entry 2 wraps around (base 0xfffffffffffff000 length "
                   "0x1000)");
}

Test(boot_info, too_little_usable_memory)
{
    bi.memmap[1].type = MEM_RESERVED;
    bi.memmap[0].length = KiB(508);
    expect_invalid("boot info: only 508 KiB of usable memory besides the kernel image "
                   "(need at least 512 KiB)");
    bi.memmap[0].type = MEM_BOOTLOADER_RECLAIMABLE; /* not usable until reclaimed */
    expect_invalid("boot info: only 0 KiB of usable memory besides the kernel image "
                   "(need at least 512 KiB)");
}

Test(boot_info, usable_memory_is_summed)
{
    bi.kernel_phys_base = 0x400000;
    bi.memmap[0] = (struct mem_region){ 0x100000, KiB(256), MEM_USABLE };
    bi.memmap[1] = (struct mem_region){ 0x200000, KiB(256), MEM_USABLE };
    cr_expect_null(boot_info_validate(&bi));
    bi.memmap[1].length = KiB(252);
    expect_invalid("boot info: only 508 KiB of usable memory besides the kernel image "
                   "(need at least 512 KiB)");
}

/* Multiboot2 maps call the loaded kernel usable: it does not count. */
Test(boot_info, kernel_image_is_not_spare_memory)
{
    /* kernel at [2 MiB, 3 MiB); usable [2 MiB - 511 KiB, 3 MiB) holds 511 KiB besides it */
    bi.memmap[0].type = MEM_RESERVED;
    bi.memmap[1] = (struct mem_region){ 0x200000 - KiB(511), MiB(1) + KiB(511), MEM_USABLE };
    expect_invalid("boot info: only 511 KiB of usable memory besides the kernel image "
                   "(need at least 512 KiB)");
    bi.memmap[1] = (struct mem_region){ 0x200000 - KiB(512), MiB(1) + KiB(512), MEM_USABLE };
    cr_expect_null(boot_info_validate(&bi));
    /* the same memory split around the image (Limine: executable, not usable) */
    bi.memmap[1] = (struct mem_region){ 0x200000 - KiB(256), KiB(256), MEM_USABLE };
    bi.memmap[2] = (struct mem_region){ 0x300000, KiB(256), MEM_USABLE };
    cr_expect_null(boot_info_validate(&bi));
}

Test(boot_info, hhdm_checks)
{
    bi.hhdm_offset = 0;
    expect_invalid("boot info: HHDM offset is 0");
    bi.hhdm_offset = 0xffff800000000010ULL;
    expect_invalid("boot info: HHDM offset 0xffff800000000010 not 4 KiB aligned");
    bi.hhdm_offset = 0x00007f0000000000ULL;
    expect_invalid("boot info: HHDM offset 0x7f0000000000 not in the higher half");
}

Test(boot_info, framebuffer_dimensions)
{
    bi.fb.width = 0;
    expect_invalid("boot info: framebuffer size 0x800 out of range (1..16384)");
    bi.fb.width = 16385;
    expect_invalid("boot info: framebuffer size 16385x800 out of range (1..16384)");
    bi.fb.width = 1280;
    bi.fb.height = 0;
    expect_invalid("boot info: framebuffer size 1280x0 out of range (1..16384)");
    bi.fb.width = 16384;
    bi.fb.height = 16384;
    bi.fb.pitch = 16384 * 4;
    cr_expect_null(boot_info_validate(&bi));
}

Test(boot_info, framebuffer_depth)
{
    bi.fb.bpp = 8;
    expect_invalid("boot info: framebuffer depth 8 bpp not 16, 24 or 32");
}

Test(boot_info, framebuffer_pitch)
{
    bi.fb.pitch = 5116;
    expect_invalid("boot info: framebuffer pitch 5116 < 5120 bytes per row");
    bi.fb.bpp = 24;
    bi.fb.pitch = 3840;
    cr_expect_null(boot_info_validate(&bi));
}

Test(boot_info, framebuffer_at_zero)
{
    bi.fb.phys = 0;
    expect_invalid("boot info: framebuffer at physical address 0");
}

Test(boot_info, framebuffer_wraps)
{
    bi.fb.phys = 0xffffffffffff0000ULL;
    expect_invalid("boot info: framebuffer 0xffffffffffff0000 + 4096000 bytes wraps around");
}

Test(boot_info, framebuffer_masks_outside_pixel)
{
    bi.fb.bpp = 16;
    bi.fb.pitch = 2560;
    expect_invalid("boot info: framebuffer colour masks (r 8@16 g 8@8 b 8@0) exceed 16 bpp");
    bi.fb.red_size = 5, bi.fb.red_shift = 11;
    bi.fb.green_size = 6, bi.fb.green_shift = 5;
    bi.fb.blue_size = 5, bi.fb.blue_shift = 0;
    cr_expect_null(boot_info_validate(&bi));
}

Test(boot_info, kernel_base)
{
    bi.kernel_virt_base = 0xffff900000000000ULL;
    expect_invalid("boot info: kernel virtual base 0xffff900000000000 below 0xffffffff80000000");
    bi.kernel_virt_base = 0xffffffff80200000ULL;
    bi.kernel_phys_base = 0x200100;
    expect_invalid("boot info: kernel physical base 0x200100 not 4 KiB aligned");
}

Test(boot_info, add_region)
{
    boot_add_region(&bi, 0x200000, 0x80000, MEM_KERNEL);
    cr_assert_eq(bi.memmap_count, 4);
    cr_expect(bi.memmap[3].base == 0x200000 && bi.memmap[3].length == 0x80000 &&
              bi.memmap[3].type == MEM_KERNEL);
    boot_add_region(&bi, 0x300000, 0, MEM_KERNEL);
    cr_expect_eq(bi.memmap_count, 4, "zero length is ignored");
    cr_expect_null(boot_info_validate(&bi));
}

Test(boot_info, add_region_to_full_map_panics)
{
    bi.memmap_count = MEMMAP_MAX;
    cr_expect(HOST_EXPECT_PANIC(boot_add_region(&bi, 0x200000, 0x1000, MEM_KERNEL)));
    cr_expect(strstr(host_panic_msg, "boot memory map full (512 entries)") != NULL, "%s",
              host_panic_msg);
    cr_expect_eq(bi.memmap_count, MEMMAP_MAX);
}

Test(boot_info, add_wrapping_region_panics)
{
    cr_expect(HOST_EXPECT_PANIC(boot_add_region(&bi, 0xfffffffffffff000ULL, 0x2000, MEM_KERNEL)));
    cr_expect(strstr(host_panic_msg, "wraps around") != NULL, "%s", host_panic_msg);
    cr_expect_eq(bi.memmap_count, 3);
}

Test(boot_info, names)
{
    cr_expect_str_eq(firmware_name(FW_UNKNOWN), "unknown");
    cr_expect_str_eq(firmware_name(FW_BIOS), "BIOS");
    cr_expect_str_eq(firmware_name(FW_UEFI32), "UEFI32");
    cr_expect_str_eq(firmware_name(FW_UEFI64), "UEFI64");
    cr_expect_str_eq(firmware_name((enum firmware_type)42), "unknown");

    cr_expect_str_eq(boot_protocol_name(BOOT_PROTO_NONE), "none");
    cr_expect_str_eq(boot_protocol_name(BOOT_PROTO_LIMINE), "Limine");
    cr_expect_str_eq(boot_protocol_name(BOOT_PROTO_MULTIBOOT2), "Multiboot2");
    cr_expect_str_eq(boot_protocol_name((enum boot_protocol)9), "none");
}
