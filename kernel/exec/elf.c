/* elf_parse and elf_segment_image (portable; elf.h has the rules). The file
 * is untrusted bytes: every field is copied out with memcpy (no alignment
 * assumed) and every sum is checked for wrapping before it is compared. */
#include "exec/elf.h"

#include "lib/elf64.h"
#include "lib/errno.h"
#include "lib/printf.h"
#include "lib/string.h"

int elf_fail(int err, char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        kvsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* A refusal of elf_parse: always -EINVAL. */
#define refuse(why, whylen, ...) elf_fail(-EINVAL, why, whylen, __VA_ARGS__)

/* Checks one non-empty PT_LOAD (program header i) and fills *s. */
static int check_segment(const struct elf64_phdr *p, unsigned i, uint64_t len,
                         struct elf_segment *s, char *why, size_t whylen)
{
    unsigned long long va = p->p_vaddr, off = p->p_offset, fsz = p->p_filesz, msz = p->p_memsz;
    if (fsz > msz)
        return refuse(why, whylen, "elf: segment %u: file size %llu > memory size %llu", i, fsz,
                      msz);
    if (off > len || fsz > len - off)
        return refuse(why, whylen,
                      "elf: segment %u: file bytes at 0x%llx (+%llu) outside the %llu-byte file",
                      i, off, fsz, (unsigned long long)len);
    if ((va & (PAGE_SIZE - 1)) != (off & (PAGE_SIZE - 1)))
        return refuse(why, whylen,
                      "elf: segment %u: address 0x%llx and file offset 0x%llx differ modulo 4096",
                      i, va, off);
    uint32_t f = p->p_flags;
    if (!(f & (PF_R | PF_W | PF_X)))
        return refuse(why, whylen, "elf: segment %u at 0x%llx has no access rights", i, va);
    if ((f & PF_W) && (f & PF_X))
        return refuse(why, whylen, "elf: segment %u at 0x%llx is writable and executable (W^X)",
                      i, va);
    if (va < VM_USER_MIN || va + msz < va || va + msz > ELF_SEGMENTS_END)
        return refuse(why, whylen,
                      "elf: segment %u: 0x%llx (+%llu bytes) outside [0x%llx, 0x%llx)", i, va, msz,
                      (unsigned long long)VM_USER_MIN, (unsigned long long)ELF_SEGMENTS_END);
    *s = (struct elf_segment){
        .vaddr = va, .memsz = msz, .offset = off, .filesz = fsz,
        .prot = VM_READ | (f & PF_W ? VM_WRITE : 0) | (f & PF_X ? VM_EXEC : 0),
    };
    return 0;
}

/* elf_parse's checks; info may hold part of the segments on a refusal. */
static int parse(const uint8_t *file, uint64_t len, struct elf_info *info, char *why,
                 size_t whylen)
{
    struct elf64_ehdr h;
    if (len < sizeof(h))
        return refuse(why, whylen, "elf: %llu bytes, shorter than the 64-byte ELF header",
                      (unsigned long long)len);
    memcpy(&h, file, sizeof(h));
    if (memcmp(h.e_ident, "\177ELF", 4) != 0)
        return refuse(why, whylen, "elf: no ELF magic (not an executable file)");
    if (h.e_ident[EI_CLASS] != ELFCLASS64)
        return refuse(why, whylen, "elf: class %u, not 64-bit", h.e_ident[EI_CLASS]);
    if (h.e_ident[EI_DATA] != ELFDATA2LSB)
        return refuse(why, whylen, "elf: data encoding %u, not little-endian", h.e_ident[EI_DATA]);
    if (h.e_ident[EI_VERSION] != EV_CURRENT || h.e_version != EV_CURRENT)
        return refuse(why, whylen, "elf: version %u/%u, not 1", h.e_ident[EI_VERSION],
                      h.e_version);
    if (h.e_machine != EM_X86_64)
        return refuse(why, whylen, "elf: machine %u, not x86_64 (62)", h.e_machine);
    if (h.e_type != ET_EXEC)
        return refuse(why, whylen, "elf: type %u, not a static executable (ET_EXEC)", h.e_type);
    if (h.e_phentsize != sizeof(struct elf64_phdr))
        return refuse(why, whylen, "elf: program header size %u, not 56", h.e_phentsize);
    if (h.e_phnum == 0 || h.e_phnum > ELF_MAX_PHDRS)
        return refuse(why, whylen, "elf: %u program headers (1..%d)", h.e_phnum, ELF_MAX_PHDRS);
    uint64_t phbytes = (uint64_t)h.e_phnum * sizeof(struct elf64_phdr);
    if (h.e_phoff > len || phbytes > len - h.e_phoff)
        return refuse(why, whylen, "elf: program headers at 0x%llx (+%llu) outside the %llu-byte file",
                      (unsigned long long)h.e_phoff, (unsigned long long)phbytes,
                      (unsigned long long)len);

    for (unsigned i = 0; i < h.e_phnum; i++) {
        struct elf64_phdr p;
        memcpy(&p, file + h.e_phoff + (uint64_t)i * sizeof(p), sizeof(p));
        if (p.p_type == PT_INTERP)
            return refuse(why, whylen, "elf: program header %u asks for an interpreter "
                          "(dynamically linked)", i);
        if (p.p_type == PT_TLS)
            return refuse(why, whylen, "elf: program header %u: thread-local storage is not "
                          "supported", i);
        if (p.p_type != PT_LOAD || p.p_memsz == 0)
            continue;
        if (info->nseg == ELF_MAX_SEGMENTS)
            return refuse(why, whylen, "elf: more than %d loadable segments", ELF_MAX_SEGMENTS);
        struct elf_segment *s = &info->seg[info->nseg];
        int err = check_segment(&p, i, len, s, why, whylen);
        if (err)
            return err;
        uint64_t lo = ALIGN_DOWN(s->vaddr, PAGE_SIZE), hi = ALIGN_UP(s->vaddr + s->memsz, PAGE_SIZE);
        for (unsigned j = 0; j < info->nseg; j++) {
            const struct elf_segment *o = &info->seg[j];
            uint64_t olo = ALIGN_DOWN(o->vaddr, PAGE_SIZE);
            uint64_t ohi = ALIGN_UP(o->vaddr + o->memsz, PAGE_SIZE);
            if (lo < ohi && olo < hi)
                return refuse(why, whylen,
                              "elf: segment %u at 0x%llx shares a page with the one at 0x%llx", i,
                              (unsigned long long)s->vaddr, (unsigned long long)o->vaddr);
        }
        info->nseg++;
    }
    if (info->nseg == 0)
        return refuse(why, whylen, "elf: no loadable segment");
    for (unsigned i = 0; i < info->nseg; i++) {
        const struct elf_segment *s = &info->seg[i];
        if ((s->prot & VM_EXEC) && h.e_entry >= s->vaddr && h.e_entry - s->vaddr < s->memsz) {
            info->entry = h.e_entry;
            return 0;
        }
    }
    return refuse(why, whylen, "elf: entry point 0x%llx is not in an executable segment",
                  (unsigned long long)h.e_entry);
}

int elf_parse(const void *data, uint64_t len, struct elf_info *info, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    memset(info, 0, sizeof(*info));
    int err = parse(data, len, info, why, whylen);
    if (err)
        memset(info, 0, sizeof(*info)); /* nothing half-checked survives a refusal */
    return err;
}

struct vm_image elf_segment_image(const void *data, const struct elf_info *info, unsigned i)
{
    const struct elf_segment *s = &info->seg[i];
    uint64_t head = s->offset & (PAGE_SIZE - 1);
    return (struct vm_image){(const uint8_t *)data + (s->offset - head), head + s->filesz};
}
