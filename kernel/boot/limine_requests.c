/* The Limine requests themselves (kernel only). The linker script keeps
 * .limine_requests_start, .limine_requests and .limine_requests_end in that
 * order at the start of .data; Limine scans only between the two markers, so
 * the base-revision tag lives there too. Everything is volatile: the
 * bootloader writes these words before we run, behind the compiler's back. */
#include "boot/limine.h"

#define LIMINE_REQUEST __attribute__((used, section(".limine_requests"))) static volatile

__attribute__((used, section(".limine_requests_start"), aligned(8))) static volatile uint64_t
    limine_requests_start[4] = { LIMINE_REQUESTS_START_MARKER_WORDS };

LIMINE_REQUEST uint64_t limine_base_revision[3] = {
    LIMINE_BASE_REVISION_MAGIC0, LIMINE_BASE_REVISION_MAGIC1, LIMINE_REQUESTED_BASE_REVISION
};

LIMINE_REQUEST struct limine_memmap_request memmap_request = { .id = LIMINE_ID_MEMMAP };
LIMINE_REQUEST struct limine_hhdm_request hhdm_request = { .id = LIMINE_ID_HHDM };
LIMINE_REQUEST struct limine_framebuffer_request framebuffer_request = {
    .id = LIMINE_ID_FRAMEBUFFER
};
LIMINE_REQUEST struct limine_executable_file_request executable_file_request = {
    .id = LIMINE_ID_EXECUTABLE_FILE
};
LIMINE_REQUEST struct limine_executable_address_request executable_address_request = {
    .id = LIMINE_ID_EXECUTABLE_ADDRESS
};
LIMINE_REQUEST struct limine_rsdp_request rsdp_request = { .id = LIMINE_ID_RSDP };
LIMINE_REQUEST struct limine_firmware_type_request firmware_type_request = {
    .id = LIMINE_ID_FIRMWARE_TYPE
};
LIMINE_REQUEST struct limine_bootloader_info_request bootloader_info_request = {
    .id = LIMINE_ID_BOOTLOADER_INFO
};
LIMINE_REQUEST struct limine_stack_size_request stack_size_request = {
    .id = LIMINE_ID_STACK_SIZE,
    .stack_size = KiB(64),
};
/* Revision 1: the bootloader refuses to boot unless 4-level paging is possible. */
LIMINE_REQUEST struct limine_paging_mode_request paging_mode_request = {
    .id = LIMINE_ID_PAGING_MODE,
    .revision = 1,
    .mode = LIMINE_PAGING_MODE_X86_64_4LVL,
    .max_mode = LIMINE_PAGING_MODE_X86_64_4LVL,
    .min_mode = LIMINE_PAGING_MODE_X86_64_4LVL,
};

__attribute__((used, section(".limine_requests_end"), aligned(8))) static volatile uint64_t
    limine_requests_end[2] = { LIMINE_REQUESTS_END_MARKER_WORDS };

const char *boot_limine_collect(struct boot_info *out)
{
    struct limine_answers a = {
        .base_revision_tag = { limine_base_revision[0], limine_base_revision[1],
                               limine_base_revision[2] },
        .requested_revision = LIMINE_REQUESTED_BASE_REVISION,
        .memmap = memmap_request.response,
        .hhdm = hhdm_request.response,
        .framebuffer = framebuffer_request.response,
        .executable_file = executable_file_request.response,
        .executable_address = executable_address_request.response,
        .rsdp = rsdp_request.response,
        .firmware_type = firmware_type_request.response,
        .bootloader_info = bootloader_info_request.response,
        .stack_size = stack_size_request.response,
        .paging_mode = paging_mode_request.response,
    };
    return boot_from_limine(out, &a);
}
