/* The kernel's function symbols, copied out of its ELF image (symbols.h).
 * Only the section headers, .symtab and its string table are read; all
 * structures are copied out with memcpy, so a file at any alignment works. */
#include "lib/symbols.h"

#include "lib/elf64.h"
#include "lib/printf.h"
#include "lib/string.h"

/* Largest symbol or string table believed when nothing bounds it (Multiboot2). */
#define SECTION_SIZE_MAX MiB(64)
#define HIGHER_HALF      0xffff800000000000ULL

struct symbol {
    uint64_t addr;
    uint32_t size; /* 0: unknown (assembly without .size) */
    uint32_t name; /* offset in names[] */
};

static struct symbol table[SYMBOLS_MAX];
static char names[SYMBOLS_NAMES_MAX];
static size_t nsyms;

/* Where section contents come from. */
struct elf_source {
    const uint8_t *file; /* whole file (Limine), or NULL */
    uint64_t file_size;
    uint64_t addr_to_virt; /* Multiboot2: contents at sh_addr + this */
};

/* Pointer to the sh_size bytes of a section, or NULL when they fall outside
 * the file (or, without a file, when the address arithmetic wraps). */
static const uint8_t *section_data(const struct elf_source *src, const struct elf64_shdr *sh)
{
    if (src->file) {
        if (sh->sh_offset > src->file_size || sh->sh_size > src->file_size - sh->sh_offset)
            return NULL;
        return src->file + sh->sh_offset;
    }
    if (sh->sh_addr == 0 || sh->sh_size > SECTION_SIZE_MAX)
        return NULL;
    uint64_t va = sh->sh_addr;
    if (va < HIGHER_HALF) { /* a physical load address */
        if (va > UINT64_MAX - src->addr_to_virt)
            return NULL;
        va += src->addr_to_virt;
    }
    if (va > UINT64_MAX - sh->sh_size)
        return NULL;
    return (const uint8_t *)(uintptr_t)va;
}

static void read_shdr(const uint8_t *shdrs, uint32_t shentsize, uint32_t idx, struct elf64_shdr *out)
{
    memcpy(out, shdrs + (uint64_t)idx * shentsize, sizeof(*out));
}

static bool sym_less(const struct symbol *a, const struct symbol *b)
{
    return a->addr < b->addr || (a->addr == b->addr && a->size < b->size);
}

/* Shell sort: no recursion, no extra memory, fast enough for a few thousand. */
static void sort_table(void)
{
    static const size_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < ARRAY_SIZE(gaps); g++) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < nsyms; i++) {
            struct symbol tmp = table[i];
            size_t j = i;
            while (j >= gap && sym_less(&tmp, &table[j - gap])) {
                table[j] = table[j - gap];
                j -= gap;
            }
            table[j] = tmp;
        }
    }
}

/* Reads the symbol table whose section headers are at shdrs (shnum entries
 * of shentsize bytes, already bounds-checked by the caller). */
static bool load_symtab(const struct elf_source *src, const uint8_t *shdrs, uint32_t shnum,
                        uint32_t shentsize)
{
    struct elf64_shdr symtab, strtab;
    uint32_t i;
    for (i = 0; i < shnum; i++) {
        read_shdr(shdrs, shentsize, i, &symtab);
        if (symtab.sh_type == SHT_SYMTAB)
            break;
    }
    if (i == shnum || symtab.sh_link == 0 || symtab.sh_link >= shnum)
        return false;
    read_shdr(shdrs, shentsize, symtab.sh_link, &strtab);
    if (strtab.sh_type != SHT_STRTAB || strtab.sh_size == 0)
        return false;
    uint64_t entsize = symtab.sh_entsize ? symtab.sh_entsize : sizeof(struct elf64_sym);
    if (entsize < sizeof(struct elf64_sym) || entsize > 4096)
        return false;

    const uint8_t *syms = section_data(src, &symtab);
    const char *strs = (const char *)section_data(src, &strtab);
    if (!syms || !strs)
        return false;

    uint64_t count = symtab.sh_size / entsize;
    size_t names_used = 0;
    bool truncated = false;
    for (uint64_t k = 1; k < count; k++) { /* entry 0 is the reserved null symbol */
        struct elf64_sym sym;
        memcpy(&sym, syms + k * entsize, sizeof(sym));
        if (ELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
            continue;
        if (sym.st_name >= strtab.sh_size)
            return false;
        size_t room = (size_t)(strtab.sh_size - sym.st_name);
        size_t len = strnlen(strs + sym.st_name, room);
        if (len == room) /* not NUL-terminated inside the table */
            return false;
        if (len == 0)
            continue;
        if (nsyms == SYMBOLS_MAX || len + 1 > sizeof(names) - names_used) {
            truncated = true;
            continue;
        }
        memcpy(names + names_used, strs + sym.st_name, len + 1);
        table[nsyms].addr = sym.st_value;
        table[nsyms].size = sym.st_size > UINT32_MAX ? UINT32_MAX : (uint32_t)sym.st_size;
        table[nsyms].name = (uint32_t)names_used;
        names_used += len + 1;
        nsyms++;
    }
    if (truncated)
        kprintf("[symbols] WARN: table full: kept %zu function symbols\n", nsyms);
    sort_table();
    return true;
}

static bool load_from_file(const uint8_t *file, uint64_t size)
{
    struct elf64_ehdr eh;
    if (size < sizeof(eh))
        return false;
    memcpy(&eh, file, sizeof(eh));
    if (eh.e_ident[0] != 0x7f || eh.e_ident[1] != 'E' || eh.e_ident[2] != 'L' || eh.e_ident[3] != 'F' ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return false;
    if (eh.e_shnum == 0 || eh.e_shentsize < sizeof(struct elf64_shdr))
        return false;
    uint64_t table_size = (uint64_t)eh.e_shnum * eh.e_shentsize;
    if (eh.e_shoff > size || table_size > size - eh.e_shoff)
        return false;
    struct elf_source src = {.file = file, .file_size = size};
    return load_symtab(&src, file + eh.e_shoff, eh.e_shnum, eh.e_shentsize);
}

static bool load_from_shdrs(const struct symbols_source *s)
{
    if (s->shnum == 0 || s->shnum > 65535 || s->shentsize < sizeof(struct elf64_shdr) ||
        s->shentsize > 4096)
        return false;
    struct elf_source src = {.file = NULL, .addr_to_virt = s->sh_addr_to_virt};
    return load_symtab(&src, s->shdrs, s->shnum, s->shentsize);
}

bool symbols_init(const struct symbols_source *s)
{
    nsyms = 0;
    if (!s)
        return false;
    bool ok;
    if (s->elf_file)
        ok = load_from_file(s->elf_file, s->elf_file_size);
    else if (s->shdrs)
        ok = load_from_shdrs(s);
    else
        ok = false;
    if (!ok)
        nsyms = 0;
    return ok;
}

const char *symbols_lookup(uint64_t addr, uint64_t *offset)
{
    /* The last symbol starting at or below addr. */
    size_t lo = 0, hi = nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (table[mid].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct symbol *sym = &table[lo - 1];
    uint64_t off = addr - sym->addr;
    if (sym->size ? off >= sym->size : (lo == nsyms || addr >= table[lo].addr))
        return NULL;
    if (offset)
        *offset = off;
    return names + sym->name;
}

bool symbols_find(const char *name, uint64_t *addr)
{
    for (size_t i = 0; i < nsyms; i++) {
        if (strcmp(names + table[i].name, name) == 0) {
            if (addr)
                *addr = table[i].addr;
            return true;
        }
    }
    return false;
}

size_t symbols_count(void)
{
    return nsyms;
}
