/* Kernel function symbols, for backtraces: copied once from the kernel's own
 * ELF symbol table into kernel-owned storage, then looked up by address.
 * Portable: the host tests build it with -DSLAYER_HOST. */
#pragma once

#include "lib/types.h"

/* Where the kernel's own ELF symbols can be read: what each boot path found
 * (boot/ fills it in struct boot_info). Valid only until the frame allocator
 * starts: symbols_init() copies what it needs. */
struct symbols_source {
    /* Limine: the whole kernel ELF file, mapped (virtual address). */
    const void *elf_file;
    uint64_t elf_file_size;
    /* Multiboot2: the ELF section headers (virtual address of a copy) and the
     * offset to add to a section's sh_addr (physical) to reach it. */
    const void *shdrs;
    uint32_t shnum, shentsize, shstrndx;
    uint64_t sh_addr_to_virt;
};

#define SYMBOLS_MAX       4096     /* function symbols kept */
#define SYMBOLS_NAMES_MAX KiB(64)  /* bytes of names kept, NULs included */

/* Replaces the table with the FUNC symbols found through s: the whole ELF
 * file (s->elf_file, Limine) or else the section headers (s->shdrs,
 * Multiboot2; section contents at sh_addr + sh_addr_to_virt). Every offset
 * and size is checked against its container; a malformed or missing table
 * leaves the table empty and returns false. Symbols beyond the capacity are
 * dropped (with a warning) and the call still succeeds. Reads s only during
 * the call. */
bool symbols_init(const struct symbols_source *s);
/* Name of the function containing addr, and (if offset is non-NULL) addr's
 * distance from its start; NULL when no known function contains addr. */
const char *symbols_lookup(uint64_t addr, uint64_t *offset);
/* Address of the function called name; false when unknown. */
bool symbols_find(const char *name, uint64_t *addr);
/* Number of function symbols held. */
size_t symbols_count(void);
