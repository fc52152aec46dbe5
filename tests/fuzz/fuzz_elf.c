/* Fuzz target: elf_parse and elf_segment_image (kernel/exec/elf.c).
 *
 * The input is the file itself (raw bytes, copied into a heap buffer of its
 * exact size so that ASan sees any read past it). Checked against a
 * reference written here from the rules in exec/elf.h, reading the bytes on
 * its own: elf_parse accepts exactly what the reference accepts; an
 * accepted file's info lists every non-empty PT_LOAD in file order with its
 * fields and rights, every segment keeps every rule (file bytes inside the
 * file, filesz <= memsz, congruent, W^X, some right, pages inside
 * [VM_USER_MIN, ELF_SEGMENTS_END), no page shared), the entry lies in an
 * executable one, and each segment's image lies inside the file and ends
 * with its file bytes; a refusal is one "elf: " line with info zeroed. */
#include "fuzz.h"

#include "exec/elf.h"
#include "lib/errno.h"

static uint64_t rd(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The reference's view of one non-empty PT_LOAD. */
struct ref_seg {
    uint64_t va, msz, off, fsz;
    uint32_t flags;
};

static struct ref_seg rs[ELF_MAX_PHDRS];

/* exec/elf.h's rules, from the bytes; *n gets the non-empty PT_LOAD count. */
static bool ref_accepts(const uint8_t *f, uint64_t len, unsigned *n, uint64_t *entry)
{
    *n = 0;
    if (len < 64 || memcmp(f, "\177ELF", 4) != 0 || f[4] != 2 || f[5] != 1 || f[6] != 1)
        return false;
    if (rd(f + 20, 4) != 1 || rd(f + 18, 2) != 62 || rd(f + 16, 2) != 2 || rd(f + 54, 2) != 56)
        return false;
    uint64_t phnum = rd(f + 56, 2), phoff = rd(f + 32, 8);
    *entry = rd(f + 24, 8);
    if (phnum == 0 || phnum > ELF_MAX_PHDRS)
        return false;
    if ((unsigned __int128)phoff + phnum * 56 > len)
        return false;
    for (uint64_t i = 0; i < phnum; i++) {
        const uint8_t *p = f + phoff + i * 56;
        uint32_t type = (uint32_t)rd(p, 4);
        if (type == 3 || type == 7)
            return false;
        struct ref_seg s = {rd(p + 16, 8), rd(p + 40, 8), rd(p + 8, 8), rd(p + 32, 8),
                            (uint32_t)rd(p + 4, 4)};
        if (type != 1 || s.msz == 0)
            continue;
        if (*n == ELF_MAX_SEGMENTS)
            return false;
        if (s.fsz > s.msz || (unsigned __int128)s.off + s.fsz > len)
            return false;
        if (s.va % 4096 != s.off % 4096 || !(s.flags & 7) || (s.flags & 3) == 3)
            return false;
        if (s.va < VM_USER_MIN || (unsigned __int128)s.va + s.msz > ELF_SEGMENTS_END)
            return false;
        uint64_t lo = s.va / 4096, hi = (s.va + s.msz + 4095) / 4096;
        for (unsigned j = 0; j < *n; j++)
            if (lo < (rs[j].va + rs[j].msz + 4095) / 4096 && rs[j].va / 4096 < hi)
                return false;
        rs[(*n)++] = s;
    }
    if (*n == 0)
        return false;
    for (unsigned j = 0; j < *n; j++)
        if ((rs[j].flags & 1) && *entry >= rs[j].va && *entry - rs[j].va < rs[j].msz)
            return true;
    return false;
}

static bool all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *file = malloc(size ? size : 1);
    FUZZ_CHECK(file, "malloc");
    memcpy(file, data, size);
    struct elf_info info;
    char why[160];
    memset(&info, 0xa5, sizeof(info));
    int err = elf_parse(file, size, &info, why, sizeof(why));
    unsigned n;
    uint64_t entry = 0;
    bool want = ref_accepts(file, size, &n, &entry);
    FUZZ_CHECK((err == 0) == want, "elf_parse said %d \"%s\", the rules %s", err, why,
               want ? "accept" : "refuse");
    if (err) {
        FUZZ_CHECK(err == -EINVAL && strncmp(why, "elf: ", 5) == 0 && !strchr(why, '\n'),
                   "refusal %d \"%s\"", err, why);
        FUZZ_CHECK(all_zero(&info, sizeof(info)), "a refusal left info behind");
    } else {
        FUZZ_CHECK(why[0] == 0, "accepted with a reason \"%s\"", why);
        FUZZ_CHECK(info.nseg == n && info.entry == entry, "%u segments entry %#llx, want %u %#llx",
                   info.nseg, (unsigned long long)info.entry, n, (unsigned long long)entry);
        bool entry_exec = false;
        for (unsigned i = 0; i < n; i++) {
            const struct elf_segment *s = &info.seg[i];
            uint32_t prot = VM_READ | (rs[i].flags & 2 ? VM_WRITE : 0) |
                            (rs[i].flags & 1 ? VM_EXEC : 0);
            FUZZ_CHECK(s->vaddr == rs[i].va && s->memsz == rs[i].msz && s->offset == rs[i].off &&
                           s->filesz == rs[i].fsz && s->prot == prot,
                       "segment %u fields", i);
            /* the stated rules, on what the parser returned */
            FUZZ_CHECK(s->filesz <= s->memsz && s->offset <= size && s->filesz <= size - s->offset,
                       "segment %u file bytes", i);
            FUZZ_CHECK(s->vaddr % 4096 == s->offset % 4096, "segment %u congruence", i);
            FUZZ_CHECK(!((s->prot & VM_WRITE) && (s->prot & VM_EXEC)), "segment %u W^X", i);
            FUZZ_CHECK(s->vaddr >= VM_USER_MIN && s->vaddr + s->memsz > s->vaddr &&
                           s->vaddr + s->memsz <= ELF_SEGMENTS_END,
                       "segment %u range", i);
            for (unsigned j = 0; j < i; j++) {
                const struct elf_segment *o = &info.seg[j];
                FUZZ_CHECK(s->vaddr / 4096 >= (o->vaddr + o->memsz + 4095) / 4096 ||
                               o->vaddr / 4096 >= (s->vaddr + s->memsz + 4095) / 4096,
                           "segments %u and %u share a page", j, i);
            }
            entry_exec |= (s->prot & VM_EXEC) && info.entry >= s->vaddr &&
                          info.entry - s->vaddr < s->memsz;
            struct vm_image img = elf_segment_image(file, &info, i);
            FUZZ_CHECK(img.data >= file && img.data + img.len <= file + size &&
                           img.data + img.len == file + s->offset + s->filesz &&
                           (uint64_t)(img.data - file) % 4096 == 0 &&
                           file + s->offset - img.data < 4096,
                       "segment %u image", i);
        }
        FUZZ_CHECK(entry_exec, "entry not in an executable segment");
    }
    free(file);
    return 0;
}
