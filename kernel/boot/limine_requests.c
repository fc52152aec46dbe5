/* The Limine requests themselves (kernel only). The linker script keeps
 * .limine_requests_start, .limine_requests and .limine_requests_end in that
 * order at the start of .data; Limine scans only between the two markers, so
 * the base-revision tag lives there too. Everything is volatile: the
 * bootloader writes these words before we run, behind the compiler's back. */
#include "boot/limine.h"


/* Where every request and the base-revision tag go (between the markers). */
#define LIMINE_REQUEST_AREA __attribute__((used, section(".limine_requests")))
/* The request variable <name>_request: its ID, then any fields beyond the
 * header (revision 0 and a NULL response unless given). */
#define LIMINE_REQUEST(name, request_id, ...)            \
    LIMINE_REQUEST_AREA static volatile struct           \
        limine_##name##_request name##_request = { .id = request_id, __VA_ARGS__ }

__attribute__((used, section(".limine_requests_start"), aligned(8))) static volatile uint64_t
    limine_requests_start[4] = { LIMINE_REQUESTS_START_MARKER_WORDS };

LIMINE_REQUEST_AREA static volatile uint64_t limine_base_revision[3] = {
    LIMINE_BASE_REVISION_MAGIC0, LIMINE_BASE_REVISION_MAGIC1, LIMINE_REQUESTED_BASE_REVISION
};

LIMINE_REQUEST(memmap, LIMINE_ID_MEMMAP);
LIMINE_REQUEST(hhdm, LIMINE_ID_HHDM);
LIMINE_REQUEST(framebuffer, LIMINE_ID_FRAMEBUFFER);
LIMINE_REQUEST(executable_file, LIMINE_ID_EXECUTABLE_FILE);
LIMINE_REQUEST(executable_address, LIMINE_ID_EXECUTABLE_ADDRESS);
LIMINE_REQUEST(rsdp, LIMINE_ID_RSDP);
LIMINE_REQUEST(firmware_type, LIMINE_ID_FIRMWARE_TYPE);
LIMINE_REQUEST(bootloader_info, LIMINE_ID_BOOTLOADER_INFO);
LIMINE_REQUEST(stack_size, LIMINE_ID_STACK_SIZE, .stack_size = KiB(64));
/* Revision 1: the bootloader refuses to boot unless 4-level paging is possible. */
LIMINE_REQUEST(paging_mode, LIMINE_ID_PAGING_MODE, .revision = 1,
               .mode = LIMINE_PAGING_MODE_X86_64_4LVL, .max_mode = LIMINE_PAGING_MODE_X86_64_4LVL,
               .min_mode = LIMINE_PAGING_MODE_X86_64_4LVL);
/* Every AP started and parked for smp_start_limine; x2APIC when the CPU has it. */
LIMINE_REQUEST(mp, LIMINE_ID_MP, .flags = LIMINE_MP_X2APIC);
/* The programs the configuration loads as modules (tools/mkiso-limine.sh). */
LIMINE_REQUEST(module, LIMINE_ID_MODULE);

__attribute__((used, section(".limine_requests_end"), aligned(8))) static volatile uint64_t
    limine_requests_end[2] = { LIMINE_REQUESTS_END_MARKER_WORDS };

const char *boot_limine_collect(struct boot_info *out)
{
    struct limine_answers a = {
        .base_revision_tag = {limine_base_revision[0], limine_base_revision[1],
                              limine_base_revision[2]},
        .requested_revision = LIMINE_REQUESTED_BASE_REVISION,
#define LIMINE_ANSWER(name) .name = name##_request.response,
        LIMINE_REQUESTS(LIMINE_ANSWER)
#undef LIMINE_ANSWER
    };
    return boot_from_limine(out, &a);
}
