/* ELF64 executables: the checks that decide whether a file may be loaded
 * (elf_parse, portable: the host tests and the fuzzer run it too) and the
 * loader that maps one into a user address space (elf_load, kernel only).
 *
 * What a loadable file is (every rule elf_parse checks, in this order; the
 * first broken one is the refusal, one line starting "elf: "):
 *   - at least the 64-byte header; magic 7f 'E' 'L' 'F'; class 64-bit;
 *     little-endian; version 1 (both the ident byte and e_version);
 *     machine x86_64; type ET_EXEC (static, not position-independent);
 *   - program headers of 56 bytes, 1..ELF_MAX_PHDRS of them, wholly inside
 *     the file; no PT_INTERP (a dynamic program) and no PT_TLS;
 *   - every PT_LOAD with a memory size: file size <= memory size; its file
 *     bytes inside the file; address and file offset equal modulo 4096;
 *     some right (R, W or X); not both writable and executable (W^X); its
 *     pages (address rounded down, end rounded up) inside
 *     [VM_USER_MIN, ELF_SEGMENTS_END) without wrapping, sharing no page
 *     with another segment; at most ELF_MAX_SEGMENTS of them, at least one;
 *   - the entry point inside a segment that is executable.
 * A PT_LOAD with memory size 0 maps nothing and is skipped.
 *
 * How a segment is mapped (elf_load): one VMR_IMAGE region over its pages
 * with its own rights (R always when W or X), whose image is the file from
 * the segment's first page (offset rounded down) through its last file
 * byte: the page-fault handler copies a page from the image on first touch
 * and zero-fills past the image's end, so the bytes between p_filesz and
 * p_memsz (bss, also the rest of a page where the file bytes end mid-page)
 * read as zero. Below the stack: see ELF_STACK_TOP. */
#pragma once

#include "lib/types.h"
#include "mm/vm.h"

#define ELF_MAX_PHDRS    64 /* program headers a file may have */
#define ELF_MAX_SEGMENTS 8  /* non-empty PT_LOAD segments a file may have */

/* The initial stack: a VMR_STACK region ending at ELF_STACK_TOP, of
 * ELF_STACK_INITIAL bytes, that grows on faults down to ELF_STACK_TOP -
 * ELF_STACK_MAX, keeping VM_STACK_GAP free below. Segments must end below
 * all of that: ELF_SEGMENTS_END. */
#define ELF_STACK_TOP     0x7ffffff00000ULL
#define ELF_STACK_MAX     (8ULL << 20)
#define ELF_STACK_INITIAL (4 * PAGE_SIZE)
#define ELF_SEGMENTS_END  (ELF_STACK_TOP - ELF_STACK_MAX - VM_STACK_GAP)

/* The arguments a program may be given: count, and bytes of the strings
 * with their NULs (they and the pointer array fit in the initial stack). */
#define ELF_ARGV_MAX       32
#define ELF_ARGV_BYTES_MAX 4096

/* One loadable segment as the file gives it (checked). */
struct elf_segment {
    uint64_t vaddr, memsz;  /* where it goes and how many bytes it spans there */
    uint64_t offset, filesz; /* its bytes in the file (filesz <= memsz) */
    uint32_t prot;          /* VM_READ | VM_WRITE | VM_EXEC from p_flags (R added to W or X) */
};

/* What elf_parse found in a file it accepts. */
struct elf_info {
    uint64_t entry;
    unsigned nseg;                          /* 1..ELF_MAX_SEGMENTS */
    struct elf_segment seg[ELF_MAX_SEGMENTS]; /* in file order */
};

/* Writes a refusal's one-line reason (printf format) into why,
 * NUL-terminated and truncated to whylen (why may be NULL), and returns err:
 * how elf_parse and elf_load give their reasons. */
__attribute__((format(printf, 4, 5))) int elf_fail(int err, char *why, size_t whylen,
                                                  const char *fmt, ...);

/* Checks every rule above on the len bytes at data (read only, never past
 * len, any alignment). 0 with *info filled, or -EINVAL with *info zeroed
 * and the one-line reason in why (NUL-terminated, truncated to whylen; why
 * may be NULL). */
int elf_parse(const void *data, uint64_t len, struct elf_info *info, char *why, size_t whylen);

/* The image of segment i of a parsed file at data: the file from the
 * segment's first page through its last file byte (see above). */
struct vm_image elf_segment_image(const void *data, const struct elf_info *info, unsigned i);

/* What elf_load set up. */
struct elf_start {
    uint64_t entry; /* where the program starts (RIP) */
    uint64_t rsp;   /* its initial stack pointer: argc, argv[], NULL, envp NULL, AT_NULL */
};

/* Kernel only. Maps the file parsed into *info into vs, which must have
 * nothing mapped where the segments and the stack go: each segment as a
 * VMR_IMAGE region over images[i] (which the caller fills with
 * elf_segment_image and keeps alive as long as any space maps them: they
 * are not copied), the stack region, then argc (1..ELF_ARGV_MAX), the argv
 * strings and the pointers written on the stack (System V layout: RSP
 * 16-byte aligned at argc) with copy_to_user, vs loaded on this CPU for
 * that and the space loaded before restored. 0 with *start set, or -EINVAL
 * (bad arguments: too many, too long) / -ENOMEM / -EFAULT with the reason in
 * why; on failure every region it made is unmapped again and vs holds what
 * it held before (the caller still owns vs and destroys it). */
int elf_load(struct vm_space *vs, const struct elf_info *info, const struct vm_image *images,
             int argc, const char *const *argv, struct elf_start *start, char *why,
             size_t whylen);
