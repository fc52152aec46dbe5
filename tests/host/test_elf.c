/* elf_parse and elf_segment_image: files built here, a good one and one per
 * rule broken, each refusal with its exact line. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "exec/elf.h"
#include "lib/errno.h"
#include "lib/string.h"

/* ELF64 layouts as the test writes them (independent of elf.c's own). */
struct ehdr {
    uint8_t ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};
struct phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

#define R 4u
#define W 2u
#define X 1u

static uint8_t file[0x8000];
static uint64_t flen;
static struct elf_info info;
static char why[160];

static struct ehdr *eh(void) { return (struct ehdr *)file; }
static struct phdr *ph(unsigned i) { return (struct phdr *)(file + 64 + i * 56); }

/* A file like user.ld makes: text R-X at 0x400000 (file 0x1000, 0x200
 * bytes), rodata R-- at 0x401000 (0x2000, 0x80), data+bss RW- at 0x402000
 * (0x3000, 0x58 in the file, 0x30e4 in memory), plus a PT_GNU_STACK. */
static void build_good(void)
{
    memset(file, 0, sizeof(file));
    struct ehdr h = {
        .ident = {0x7f, 'E', 'L', 'F', 2, 1, 1}, .type = 2, .machine = 62, .version = 1,
        .entry = 0x400010, .phoff = 64, .ehsize = 64, .phentsize = 56, .phnum = 4,
    };
    memcpy(file, &h, sizeof(h));
    *ph(0) = (struct phdr){1, R | X, 0x1000, 0x400000, 0x400000, 0x200, 0x200, 0x1000};
    *ph(1) = (struct phdr){1, R, 0x2000, 0x401000, 0x401000, 0x80, 0x80, 0x1000};
    *ph(2) = (struct phdr){1, R | W, 0x3000, 0x402000, 0x402000, 0x58, 0x30e4, 0x1000};
    *ph(3) = (struct phdr){0x6474e551, R | W, 0, 0, 0, 0, 0, 16}; /* PT_GNU_STACK */
    for (unsigned i = 0; i < 0x3058 - 0x1000; i++)
        file[0x1000 + i] = (uint8_t)(i * 13 + 5);
    flen = 0x3058;
}

static int parse(void)
{
    memset(&info, 0xa5, sizeof(info));
    return elf_parse(file, flen, &info, why, sizeof(why));
}

static void expect_refused(const char *want)
{
    cr_expect_eq(parse(), -EINVAL, "accepted; expected \"%s\"", want);
    cr_expect_str_eq(why, want);
    cr_expect_eq(info.nseg, 0, "a refused file leaves no segments");
}

TestSuite(elf, .init = build_good);

Test(elf, good_file_is_parsed)
{
    cr_assert_eq(parse(), 0, "%s", why);
    cr_expect_str_eq(why, "");
    cr_expect_eq(info.entry, 0x400010);
    cr_assert_eq(info.nseg, 3);
    cr_expect(info.seg[0].vaddr == 0x400000 && info.seg[0].memsz == 0x200 &&
              info.seg[0].offset == 0x1000 && info.seg[0].filesz == 0x200 &&
              info.seg[0].prot == (VM_READ | VM_EXEC));
    cr_expect(info.seg[1].prot == VM_READ);
    cr_expect(info.seg[2].vaddr == 0x402000 && info.seg[2].memsz == 0x30e4 &&
              info.seg[2].filesz == 0x58 && info.seg[2].prot == (VM_READ | VM_WRITE));
}

Test(elf, segment_images_start_on_the_page_and_end_at_the_file_bytes)
{
    /* data starts mid-page: 0x402100 at file offset 0x3100 */
    ph(2)->vaddr = 0x402100;
    ph(2)->offset = 0x3100;
    flen = 0x3158;
    cr_assert_eq(parse(), 0, "%s", why);
    struct vm_image img = elf_segment_image(file, &info, 2);
    cr_expect_eq(img.data, file + 0x3000, "the image starts with the segment's first page");
    cr_expect_eq(img.len, 0x158, "the image ends with the file bytes: bss reads as zero");
    img = elf_segment_image(file, &info, 0);
    cr_expect(img.data == file + 0x1000 && img.len == 0x200);
}

Test(elf, w_only_and_x_only_segments_get_read_too)
{
    ph(2)->flags = W;
    ph(0)->flags = X;
    cr_assert_eq(parse(), 0, "%s", why);
    cr_expect_eq(info.seg[0].prot, VM_READ | VM_EXEC);
    cr_expect_eq(info.seg[2].prot, VM_READ | VM_WRITE);
}

Test(elf, empty_load_segments_are_skipped)
{
    ph(3)->type = 1;
    ph(3)->memsz = 0;
    ph(3)->vaddr = 0x400000; /* would overlap text if it counted */
    cr_assert_eq(parse(), 0, "%s", why);
    cr_expect_eq(info.nseg, 3);
}

Test(elf, header_refusals)
{
    flen = 63;
    expect_refused("elf: 63 bytes, shorter than the 64-byte ELF header");
    build_good();
    file[3] = 'G';
    expect_refused("elf: no ELF magic (not an executable file)");
    build_good();
    file[4] = 1;
    expect_refused("elf: class 1, not 64-bit");
    build_good();
    file[5] = 2;
    expect_refused("elf: data encoding 2, not little-endian");
    build_good();
    file[6] = 0;
    expect_refused("elf: version 0/1, not 1");
    build_good();
    eh()->version = 2;
    expect_refused("elf: version 1/2, not 1");
    build_good();
    eh()->machine = 3;
    expect_refused("elf: machine 3, not x86_64 (62)");
    build_good();
    eh()->type = 3; /* ET_DYN: position-independent */
    expect_refused("elf: type 3, not a static executable (ET_EXEC)");
    build_good();
    eh()->phentsize = 32;
    expect_refused("elf: program header size 32, not 56");
    build_good();
    eh()->phnum = 0;
    expect_refused("elf: 0 program headers (1..64)");
    build_good();
    eh()->phnum = 65;
    expect_refused("elf: 65 program headers (1..64)");
    build_good();
    eh()->phoff = 0x3058 - 100;
    expect_refused("elf: program headers at 0x2ff4 (+224) outside the 12376-byte file");
    build_good();
    eh()->phoff = UINT64_MAX - 8;
    expect_refused("elf: program headers at 0xfffffffffffffff7 (+224) outside the 12376-byte file");
}

Test(elf, program_header_refusals)
{
    ph(3)->type = 3;
    expect_refused("elf: program header 3 asks for an interpreter (dynamically linked)");
    build_good();
    ph(3)->type = 7;
    expect_refused("elf: program header 3: thread-local storage is not supported");
    build_good();
    ph(2)->filesz = 0x30e5;
    expect_refused("elf: segment 2: file size 12517 > memory size 12516");
    build_good();
    ph(1)->offset = 0x3000;
    ph(1)->vaddr = 0x401000;
    ph(1)->filesz = 0x80;
    ph(1)->memsz = 0x80;
    expect_refused("elf: segment 1: file bytes at 0x3000 (+128) outside the 12376-byte file");
    build_good();
    ph(1)->offset = UINT64_MAX - 0x7f; /* the end wraps */
    ph(1)->vaddr = 0x401000 + (ph(1)->offset & 0xfff);
    expect_refused("elf: segment 1: file bytes at 0xffffffffffffff80 (+128) outside the "
                   "12376-byte file");
    build_good();
    ph(1)->vaddr = 0x401010;
    expect_refused("elf: segment 1: address 0x401010 and file offset 0x2000 differ modulo 4096");
    build_good();
    ph(1)->flags = 0;
    expect_refused("elf: segment 1 at 0x401000 has no access rights");
    build_good();
    ph(2)->flags = R | W | X;
    expect_refused("elf: segment 2 at 0x402000 is writable and executable (W^X)");
    build_good();
    ph(0)->flags = W | X;
    expect_refused("elf: segment 0 at 0x400000 is writable and executable (W^X)");
}

Test(elf, address_refusals)
{
    char want[160];
    ph(0)->vaddr = 0xf000; /* below VM_USER_MIN */
    eh()->entry = 0xf010;
    snprintf(want, sizeof(want), "elf: segment 0: 0xf000 (+512 bytes) outside [0x10000, 0x%llx)",
             (unsigned long long)ELF_SEGMENTS_END);
    expect_refused(want);
    build_good();
    ph(2)->vaddr = ELF_SEGMENTS_END - 0x1000;
    ph(2)->memsz = 0x1001; /* one byte into the stack's reach */
    snprintf(want, sizeof(want), "elf: segment 2: 0x%llx (+4097 bytes) outside [0x10000, 0x%llx)",
             (unsigned long long)(ELF_SEGMENTS_END - 0x1000), (unsigned long long)ELF_SEGMENTS_END);
    expect_refused(want);
    ph(2)->memsz = 0x1000; /* up to the limit exactly: fine */
    cr_expect_eq(parse(), 0, "%s", why);
    build_good();
    ph(2)->vaddr = 0xfffffffffffff000ULL;
    ph(2)->memsz = 0x2000; /* wraps */
    snprintf(want, sizeof(want),
             "elf: segment 2: 0xfffffffffffff000 (+8192 bytes) outside [0x10000, 0x%llx)",
             (unsigned long long)ELF_SEGMENTS_END);
    expect_refused(want);
    build_good();
    ph(2)->vaddr = 0xffff800000402000ULL; /* the kernel half */
    snprintf(want, sizeof(want),
             "elf: segment 2: 0xffff800000402000 (+12516 bytes) outside [0x10000, 0x%llx)",
             (unsigned long long)ELF_SEGMENTS_END);
    expect_refused(want);
}

Test(elf, overlap_count_and_entry_refusals)
{
    ph(1)->vaddr = 0x400000 + 0x200 - 0x200; /* rodata on the text's page */
    ph(1)->offset = 0x2000;
    expect_refused("elf: segment 1 at 0x400000 shares a page with the one at 0x400000");
    build_good();
    ph(2)->vaddr = 0x401000; /* data on the rodata's page */
    ph(2)->offset = 0x3000;
    expect_refused("elf: segment 2 at 0x401000 shares a page with the one at 0x401000");
    build_good();
    ph(0)->memsz = 0x1001; /* text's last byte on rodata's page */
    expect_refused("elf: segment 1 at 0x401000 shares a page with the one at 0x400000");

    /* nine loadable segments */
    build_good();
    eh()->phnum = 9;
    for (unsigned i = 0; i < 9; i++)
        *ph(i) = (struct phdr){1, R, 0x1000, 0x400000 + i * 0x1000, 0, 0x10, 0x10, 0x1000};
    ph(0)->flags = R | X;
    eh()->entry = 0x400000;
    expect_refused("elf: more than 8 loadable segments");
    eh()->phnum = 8;
    cr_expect_eq(parse(), 0, "%s", why);
    cr_expect_eq(info.nseg, 8);

    build_good();
    for (unsigned i = 0; i < 3; i++)
        ph(i)->memsz = 0;
    expect_refused("elf: no loadable segment");

    build_good();
    eh()->entry = 0x401000; /* rodata: not executable */
    expect_refused("elf: entry point 0x401000 is not in an executable segment");
    eh()->entry = 0x400200; /* one past the text */
    expect_refused("elf: entry point 0x400200 is not in an executable segment");
    eh()->entry = 0x4001ff;
    cr_expect_eq(parse(), 0, "%s", why);
}

Test(elf, why_may_be_null_or_short)
{
    file[0] = 0;
    cr_expect_eq(elf_parse(file, flen, &info, NULL, 0), -EINVAL);
    char small[10];
    cr_expect_eq(elf_parse(file, flen, &info, small, sizeof(small)), -EINVAL);
    cr_expect_str_eq(small, "elf: no E");
}

Test(elf, the_real_user_program_parses)
{
    /* build/user/hello.elf when make built it (the host tests run after it) */
    FILE *f = fopen("build/user/hello.elf", "rb");
    if (!f)
        cr_skip_test("build/user/hello.elf not built");
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    cr_assert_eq(elf_parse(buf, n, &info, why, sizeof(why)), 0, "%s", why);
    cr_expect_eq(info.nseg, 3);
    cr_expect_eq(info.seg[0].vaddr, 0x400000);
    cr_expect_eq(info.seg[0].prot, VM_READ | VM_EXEC);
    cr_expect_eq(info.seg[1].prot, VM_READ);
    cr_expect_eq(info.seg[2].prot, VM_READ | VM_WRITE);
    cr_expect_eq(info.entry, 0x400000);
}
