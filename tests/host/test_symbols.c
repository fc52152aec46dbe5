/* lib/symbols: a synthetic ELF64 built in memory (with the host's <elf.h>,
 * an independent definition of the format), looked up through both the
 * whole-file (Limine) and the section-header (Multiboot2) paths, and
 * malformed variants that must be refused without reading out of bounds. */
#include <criterion/criterion.h>
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/symbols.h"

#define TEXT 0xffffffff80201000ULL

struct test_sym {
    const char *name;
    unsigned type;
    uint16_t shndx;
    uint64_t value, size;
};

/* The default symbol set, deliberately out of address order. */
static const struct test_sym default_syms[] = {
    {"beta", STT_FUNC, 1, TEXT + 0x100, 0x40},
    {"alpha", STT_FUNC, 1, TEXT + 0x000, 0x20},
    {"data_obj", STT_OBJECT, 2, TEXT + 0x20, 8},
    {"undef_fn", STT_FUNC, SHN_UNDEF, 0, 0},
    {"asm_label", STT_FUNC, 1, TEXT + 0x200, 0},
    {"main.c", STT_FILE, SHN_ABS, 0, 0},
    {"gamma", STT_FUNC, 1, TEXT + 0x300, 0x10},
};

/* Section indices in the built file. */
enum { S_NULL, S_TEXT, S_SYMTAB, S_STRTAB, S_SHSTRTAB, S_COUNT };

struct built {
    uint8_t *buf;
    size_t size;
    size_t shoff;
};

static Elf64_Shdr *shdr(struct built *b, int i) { return (Elf64_Shdr *)(b->buf + b->shoff) + i; }
static Elf64_Ehdr *ehdr(struct built *b) { return (Elf64_Ehdr *)b->buf; }
static Elf64_Sym *sym(struct built *b, int i)
{
    return (Elf64_Sym *)(b->buf + shdr(b, S_SYMTAB)->sh_offset) + i;
}

/* Lays out: ELF header | symtab | strtab | shstrtab | section headers. */
static struct built build_elf(const struct test_sym *syms, size_t n)
{
    static const char shstr[] = "\0.text\0.symtab\0.strtab\0.shstrtab";
    size_t strsz = 1;
    for (size_t i = 0; i < n; i++)
        strsz += strlen(syms[i].name) + 1;
    size_t symoff = sizeof(Elf64_Ehdr);
    size_t symsz = (n + 1) * sizeof(Elf64_Sym);
    size_t stroff = symoff + symsz;
    size_t shstroff = stroff + strsz;
    size_t shoff = (shstroff + sizeof(shstr) + 7) & ~(size_t)7;
    struct built b = {.size = shoff + S_COUNT * sizeof(Elf64_Shdr), .shoff = shoff};
    b.buf = calloc(1, b.size);
    cr_assert(b.buf);

    Elf64_Ehdr *eh = ehdr(&b);
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_ident[EI_VERSION] = EV_CURRENT;
    eh->e_type = ET_EXEC;
    eh->e_machine = EM_X86_64;
    eh->e_version = EV_CURRENT;
    eh->e_ehsize = sizeof(Elf64_Ehdr);
    eh->e_shoff = shoff;
    eh->e_shentsize = sizeof(Elf64_Shdr);
    eh->e_shnum = S_COUNT;
    eh->e_shstrndx = S_SHSTRTAB;

    char *strtab = (char *)b.buf + stroff;
    size_t name = 1;
    Elf64_Sym *st = (Elf64_Sym *)(b.buf + symoff);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(syms[i].name) + 1;
        memcpy(strtab + name, syms[i].name, len);
        st[i + 1] = (Elf64_Sym){.st_name = (Elf64_Word)name,
                                .st_info = ELF64_ST_INFO(STB_GLOBAL, syms[i].type),
                                .st_shndx = syms[i].shndx,
                                .st_value = syms[i].value,
                                .st_size = syms[i].size};
        name += len;
    }
    memcpy(b.buf + shstroff, shstr, sizeof(shstr));

    Elf64_Shdr *sh = (Elf64_Shdr *)(b.buf + shoff);
    sh[S_TEXT] = (Elf64_Shdr){.sh_name = 1, .sh_type = SHT_NOBITS, .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
                              .sh_addr = TEXT, .sh_size = 0x1000};
    sh[S_SYMTAB] = (Elf64_Shdr){.sh_name = 7, .sh_type = SHT_SYMTAB, .sh_offset = symoff,
                                .sh_size = symsz, .sh_link = S_STRTAB, .sh_info = 1,
                                .sh_addralign = 8, .sh_entsize = sizeof(Elf64_Sym)};
    sh[S_STRTAB] = (Elf64_Shdr){.sh_name = 15, .sh_type = SHT_STRTAB, .sh_offset = stroff,
                                .sh_size = strsz, .sh_addralign = 1};
    sh[S_SHSTRTAB] = (Elf64_Shdr){.sh_name = 23, .sh_type = SHT_STRTAB, .sh_offset = shstroff,
                                  .sh_size = sizeof(shstr), .sh_addralign = 1};
    return b;
}

static struct built build_default(void) { return build_elf(default_syms, sizeof(default_syms) / sizeof(default_syms[0])); }

static bool init_file(struct built *b)
{
    struct symbols_source s = {.elf_file = b->buf, .elf_file_size = b->size};
    return symbols_init(&s);
}

static void expect_lookup(uint64_t addr, const char *name, uint64_t off)
{
    uint64_t got = 12345;
    const char *n = symbols_lookup(addr, &got);
    if (!name) {
        cr_expect_null(n, "lookup(%#lx) gave %s", (unsigned long)addr, n ? n : "");
        return;
    }
    cr_assert_not_null(n, "lookup(%#lx) found nothing, expected %s", (unsigned long)addr, name);
    cr_expect_str_eq(n, name);
    cr_expect_eq(got, off, "lookup(%#lx): offset %#lx, expected %#lx", (unsigned long)addr,
                 (unsigned long)got, (unsigned long)off);
}

static void expect_default_table(void)
{
    cr_expect_eq(symbols_count(), 4);
    expect_lookup(TEXT - 1, NULL, 0);
    expect_lookup(TEXT, "alpha", 0);
    expect_lookup(TEXT + 0x1f, "alpha", 0x1f);
    expect_lookup(TEXT + 0x20, NULL, 0); /* only the object symbol lives there */
    expect_lookup(TEXT + 0x100, "beta", 0);
    expect_lookup(TEXT + 0x13f, "beta", 0x3f);
    expect_lookup(TEXT + 0x140, NULL, 0);
    expect_lookup(TEXT + 0x250, "asm_label", 0x50); /* size 0: up to the next symbol */
    expect_lookup(TEXT + 0x300, "gamma", 0);
    expect_lookup(TEXT + 0x310, NULL, 0);
    expect_lookup(0, NULL, 0);
    expect_lookup(UINT64_MAX, NULL, 0);
    cr_expect_null(symbols_lookup(TEXT + 0x20, NULL));
    cr_expect_str_eq(symbols_lookup(TEXT + 4, NULL), "alpha");
}

Test(symbols, whole_file_lookups)
{
    struct built b = build_default();
    cr_assert(init_file(&b));
    free(b.buf); /* the table is a copy: the file may go away */
    expect_default_table();
    uint64_t a = 0;
    cr_expect(symbols_find("gamma", &a));
    cr_expect_eq(a, TEXT + 0x300);
    cr_expect(!symbols_find("data_obj", &a));
    cr_expect(!symbols_find("undef_fn", &a));
}

Test(symbols, section_headers_path)
{
    struct built b = build_default();
    /* As GRUB hands them: non-allocated sections loaded somewhere, sh_addr =
     * their physical address; here "physical" = offset into buf. */
    for (int i = S_SYMTAB; i <= S_SHSTRTAB; i++)
        shdr(&b, i)->sh_addr = shdr(&b, i)->sh_offset;
    struct symbols_source s = {.shdrs = b.buf + b.shoff, .shnum = S_COUNT,
                             .shentsize = sizeof(Elf64_Shdr), .shstrndx = S_SHSTRTAB,
                             .sh_addr_to_virt = (uint64_t)(uintptr_t)b.buf};
    cr_assert(symbols_init(&s));
    expect_default_table();

    shdr(&b, S_STRTAB)->sh_addr = 0; /* not loaded */
    cr_expect(!symbols_init(&s));
    cr_expect_eq(symbols_count(), 0);
    shdr(&b, S_STRTAB)->sh_addr = UINT64_MAX - 4; /* wraps */
    cr_expect(!symbols_init(&s));
    s.shentsize = 8;
    cr_expect(!symbols_init(&s));
    free(b.buf);
}

Test(symbols, no_source)
{
    cr_expect(!symbols_init(NULL));
    struct symbols_source s = {0};
    cr_expect(!symbols_init(&s));
    cr_expect_eq(symbols_count(), 0);
    cr_expect_null(symbols_lookup(TEXT, NULL));
}

/* Builds the default file, lets `corrupt` damage it, expects a refusal that
 * empties the table. */
#define EXPECT_REFUSED(corrupt)                                                 \
    do {                                                                        \
        struct built b = build_default();                                       \
        cr_assert(init_file(&b));                                               \
        corrupt;                                                                \
        cr_expect(!init_file(&b), "accepted: %s", #corrupt);                    \
        cr_expect_eq(symbols_count(), 0);                                       \
        free(b.buf);                                                            \
    } while (0)

Test(symbols, malformed_headers)
{
    EXPECT_REFUSED(b.buf[0] = 0);
    EXPECT_REFUSED(ehdr(&b)->e_ident[EI_CLASS] = ELFCLASS32);
    EXPECT_REFUSED(ehdr(&b)->e_ident[EI_DATA] = ELFDATA2MSB);
    EXPECT_REFUSED(ehdr(&b)->e_shnum = 0);
    EXPECT_REFUSED(ehdr(&b)->e_shentsize = 32);
    EXPECT_REFUSED(ehdr(&b)->e_shoff = UINT64_MAX - 10);
    EXPECT_REFUSED(ehdr(&b)->e_shoff = b.size - 64);
    EXPECT_REFUSED(ehdr(&b)->e_shnum = 0xffff);
}

Test(symbols, malformed_sections)
{
    EXPECT_REFUSED(shdr(&b, S_SYMTAB)->sh_type = SHT_PROGBITS); /* no symbol table */
    EXPECT_REFUSED(shdr(&b, S_SYMTAB)->sh_link = S_COUNT);
    EXPECT_REFUSED(shdr(&b, S_SYMTAB)->sh_link = 0);
    EXPECT_REFUSED(shdr(&b, S_SYMTAB)->sh_link = S_TEXT); /* not a string table */
    EXPECT_REFUSED(shdr(&b, S_SYMTAB)->sh_offset = b.size - 8);
    EXPECT_REFUSED(shdr(&b, S_SYMTAB)->sh_offset = UINT64_MAX);
    EXPECT_REFUSED(shdr(&b, S_SYMTAB)->sh_size = UINT64_MAX - 3);
    EXPECT_REFUSED(shdr(&b, S_SYMTAB)->sh_entsize = 8);
    EXPECT_REFUSED(shdr(&b, S_STRTAB)->sh_size = b.size);
    EXPECT_REFUSED(shdr(&b, S_STRTAB)->sh_size = 0);
}

Test(symbols, malformed_names)
{
    /* a name offset past the string table */
    EXPECT_REFUSED(sym(&b, 1)->st_name = (Elf64_Word)shdr(&b, S_STRTAB)->sh_size);
    /* a string table whose last name is not terminated inside it */
    EXPECT_REFUSED(shdr(&b, S_STRTAB)->sh_size -= 1);
}

Test(symbols, every_truncation_refused)
{
    struct built b = build_default();
    for (size_t len = 0; len < b.size; len++) {
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(copy, b.buf, len);
        struct symbols_source s = {.elf_file = copy, .elf_file_size = len};
        cr_expect(!symbols_init(&s), "truncated to %zu bytes accepted", len);
        free(copy);
    }
    free(b.buf);
}

Test(symbols, random_corruption_never_crashes)
{
    struct built b = build_default();
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *copy = malloc(b.size);
        memcpy(copy, b.buf, b.size);
        int flips = 1 + iter % 4;
        for (int f = 0; f < flips; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            copy[x % b.size] = (uint8_t)(x >> 32);
        }
        struct symbols_source s = {.elf_file = copy, .elf_file_size = b.size};
        if (symbols_init(&s)) { /* whatever was accepted must be consistent */
            cr_assert_leq(symbols_count(), SYMBOLS_MAX);
            for (uint64_t a = TEXT; a < TEXT + 0x400; a += 0x10)
                (void)symbols_lookup(a, NULL);
        }
        free(copy);
    }
    free(b.buf);
}

Test(symbols, capacity_is_bounded)
{
    size_t n = SYMBOLS_MAX + 500;
    struct test_sym *syms = calloc(n, sizeof(*syms));
    char (*names)[16] = calloc(n, 16);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], 16, "f%zu", i);
        /* descending addresses: the kept ones must come out sorted */
        syms[i] = (struct test_sym){names[i], STT_FUNC, 1, TEXT + 0x10 * (n - i), 0x10};
    }
    struct built b = build_elf(syms, n);
    cr_assert(init_file(&b));
    cr_expect_eq(symbols_count(), SYMBOLS_MAX);
    /* f0 is the highest address and was kept; the last 500 were dropped */
    expect_lookup(TEXT + 0x10 * n + 3, "f0", 3);
    expect_lookup(TEXT + 0x10 * (n - 100) + 15, "f100", 15);
    cr_expect_null(symbols_lookup(TEXT + 0x10 * 1, NULL));
    free(b.buf);
    free(syms);
    free(names);
}
