/* elf_load (kernel only: it writes the stack with copy_to_user) and the
 * per-module image cache. Compiled to nothing for the host. */
#ifndef SLAYER_HOST
#include "arch/x86_64/usercopy.h"
#include "exec/elf.h"
#include "exec/exec.h"
#include "lib/errno.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "lib/string.h"
#include "mm/mm.h"

/* The words below the strings: argc, argv[0..argc-1], NULL, envp's NULL,
 * the auxiliary vector's AT_NULL pair. */
#define START_WORDS(argc) ((uint64_t)(argc) + 5)

/* Writes argc, the strings and the pointer block below ELF_STACK_TOP into
 * the loaded space; *rsp gets the address of argc. */
static int write_args(int argc, const char *const *argv, uint64_t *rsp)
{
    uint64_t words[START_WORDS(ELF_ARGV_MAX)];
    uint64_t at = ELF_STACK_TOP;
    /* strings from the top down, argv[0] highest */
    for (int i = 0; i < argc; i++) {
        uint64_t n = strlen(argv[i]) + 1;
        at -= n;
        int err = copy_to_user(at, argv[i], n);
        if (err)
            return err;
        words[1 + i] = at;
    }
    words[0] = (uint64_t)argc;
    words[1 + argc] = 0; /* argv[argc] */
    words[2 + argc] = 0; /* envp: empty */
    words[3 + argc] = 0; /* AT_NULL */
    words[4 + argc] = 0;
    at = ALIGN_DOWN(at - START_WORDS(argc) * 8, 16);
    *rsp = at;
    return copy_to_user(at, words, START_WORDS(argc) * 8);
}

int elf_load(struct vm_space *vs, const struct elf_info *info, const struct vm_image *images,
             int argc, const char *const *argv, struct elf_start *start, char *why,
             size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    if (argc < 1 || argc > ELF_ARGV_MAX)
        return elf_fail(-EINVAL, why, whylen, "exec: %d arguments (1..%d)", argc, ELF_ARGV_MAX);
    uint64_t bytes = 0;
    for (int i = 0; i < argc; i++)
        bytes += argv[i] ? strnlen(argv[i], ELF_ARGV_BYTES_MAX) + 1 : ELF_ARGV_BYTES_MAX + 1;
    if (bytes > ELF_ARGV_BYTES_MAX)
        return elf_fail(-EINVAL, why, whylen,
                        "exec: arguments take more than %d bytes (or one is NULL)",
                        ELF_ARGV_BYTES_MAX);

    unsigned mapped = 0;
    int err = 0;
    for (; mapped < info->nseg; mapped++) {
        const struct elf_segment *s = &info->seg[mapped];
        vaddr_t lo = ALIGN_DOWN(s->vaddr, PAGE_SIZE);
        uint64_t len = ALIGN_UP(s->vaddr + s->memsz, PAGE_SIZE) - lo;
        err = vm_map(vs, &lo, len, s->prot, VMR_IMAGE, &images[mapped], 0, 0, VM_MAP_FIXED);
        if (err) {
            elf_fail(err, why, whylen, "exec: mapping segment %u at 0x%llx: error %d", mapped,
                     (unsigned long long)s->vaddr, err);
            goto undo;
        }
    }
    vaddr_t stack = ELF_STACK_TOP - ELF_STACK_INITIAL;
    err = vm_map(vs, &stack, ELF_STACK_INITIAL, VM_READ | VM_WRITE, VMR_STACK, NULL, 0,
                 ELF_STACK_TOP - ELF_STACK_MAX, VM_MAP_FIXED);
    if (err) {
        elf_fail(err, why, whylen, "exec: mapping the stack: error %d", err);
        goto undo;
    }
    struct vm_space *before = vm_current();
    vm_activate(vs);
    err = write_args(argc, argv, &start->rsp);
    vm_activate(before);
    if (err) {
        elf_fail(err, why, whylen, "exec: writing the arguments on the stack: error %d", err);
        vm_unmap(vs, stack, ELF_STACK_INITIAL);
        goto undo;
    }
    start->entry = info->entry;
    return 0;
undo:
    while (mapped--) {
        const struct elf_segment *s = &info->seg[mapped];
        vaddr_t lo = ALIGN_DOWN(s->vaddr, PAGE_SIZE);
        vm_unmap(vs, lo, ALIGN_UP(s->vaddr + s->memsz, PAGE_SIZE) - lo);
    }
    return err;
}

/* ---- boot modules as programs --------------------------------------------------------- */

/* What a module's file gave, parsed once: modules never go away, so neither
 * do these, and every space that maps a module's segments shares its images. */
struct module_cache {
    bool ready;
    struct elf_info info;
    struct vm_image images[ELF_MAX_SEGMENTS];
};

static struct module_cache cache[BOOT_MODULES_MAX];
static struct spinlock cache_lock = SPINLOCK_INIT("exec-cache", LOCK_RANK_NONE);

int exec_module_parse(const struct boot_module *m, const struct elf_info **info,
                      const struct vm_image **images, char *why, size_t whylen)
{
    size_t i = (size_t)(m - boot_ctx.modules);
    if (m < boot_ctx.modules || i >= boot_ctx.module_count)
        return elf_fail(-EINVAL, why, whylen, "exec: not a boot module");
    struct module_cache *c = &cache[i];
    const void *data = PHYS2VIRT(m->phys);
    int err = 0;
    spin_lock(&cache_lock);
    if (!c->ready) {
        err = elf_parse(data, m->size, &c->info, why, whylen);
        if (!err) {
            for (unsigned s = 0; s < c->info.nseg; s++)
                c->images[s] = elf_segment_image(data, &c->info, s);
            c->ready = true;
        }
    }
    spin_unlock(&cache_lock);
    if (err)
        return err;
    *info = &c->info;
    *images = c->images;
    return 0;
}

int exec_module(struct vm_space *vs, const char *name, int argc, const char *const *argv,
                struct elf_start *start, char *why, size_t whylen)
{
    const struct boot_module *m = boot_find_module(&boot_ctx, name);
    if (!m)
        return elf_fail(-ENOENT, why, whylen, "exec: no module named \"%s\"", name);
    const struct elf_info *info;
    const struct vm_image *images;
    int err = exec_module_parse(m, &info, &images, why, whylen);
    if (err)
        return err;
    return elf_load(vs, info, images, argc, argv, start, why, whylen);
}
#endif /* !SLAYER_HOST */
