/* The ELF64 layouts and constants (System V gABI, x86_64 psABI): facts,
 * written here once for the two readers of ELF files, lib/symbols.c (the
 * kernel's own symbol table) and exec/elf.c (programs). Portable. Files are
 * untrusted bytes: readers copy these structures out with memcpy. */
#pragma once

#include "lib/types.h"

struct elf64_ehdr {
    uint8_t e_ident[16];
    uint16_t e_type, e_machine;
    uint32_t e_version;
    uint64_t e_entry, e_phoff, e_shoff;
    uint32_t e_flags;
    uint16_t e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx;
};
_Static_assert(sizeof(struct elf64_ehdr) == 64, "ELF64 header layout");

struct elf64_phdr {
    uint32_t p_type, p_flags;
    uint64_t p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
};
_Static_assert(sizeof(struct elf64_phdr) == 56, "ELF64 program header layout");

struct elf64_shdr {
    uint32_t sh_name, sh_type;
    uint64_t sh_flags, sh_addr, sh_offset, sh_size;
    uint32_t sh_link, sh_info;
    uint64_t sh_addralign, sh_entsize;
};
_Static_assert(sizeof(struct elf64_shdr) == 64, "ELF64 section header layout");

struct elf64_sym {
    uint32_t st_name;
    uint8_t st_info, st_other;
    uint16_t st_shndx;
    uint64_t st_value, st_size;
};
_Static_assert(sizeof(struct elf64_sym) == 24, "ELF64 symbol layout");

#define EI_CLASS    4
#define EI_DATA     5
#define EI_VERSION  6
#define ELFCLASS64  2
#define ELFDATA2LSB 1
#define EV_CURRENT  1
#define ET_EXEC     2
#define EM_X86_64   62
#define PT_LOAD     1
#define PT_INTERP   3
#define PT_TLS      7
#define PF_X        1u
#define PF_W        2u
#define PF_R        4u
#define SHT_SYMTAB  2
#define SHT_STRTAB  3
#define SHN_UNDEF   0
#define STT_FUNC    2
#define ELF_ST_TYPE(i) ((i) & 0xf)
