/* Self-tests of programs from boot modules (exec/exec.h, exec/elf.h): the
 * user program `hello` (user/hello.c, put on every ISO by the ISO builders)
 * is found among the boot modules, loaded into a fresh space, run in ring 3
 * until its ud2, and what it wrote is read back through the space's page
 * tables; malformed copies of its file are refused with their lines; every
 * count goes back to where it was. */
#include "arch/x86_64/exceptions.h"
#include "boot/boot_info.h"
#include "exec/elf.h"
#include "exec/exec.h"
#include "lib/errno.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "mm/vm.h"
#include "test/ktest.h"
#include "test/ktest_catch.h"
#include "test/uprog.h"
#include "../../user/hello.h"

/* The hello module, or NULL with the test failed. */
static const struct boot_module *hello_module(void)
{
    const struct boot_module *m = boot_find_module(&boot_ctx, "hello");
    if (!m)
        ktest_fail_at(__FILE__, __LINE__, "module hello",
                      "no boot module \"hello\" (%zu modules): the ISO builders put "
                      "build/user/*.elf on the ISO", boot_ctx.module_count);
    return m;
}

KTEST(exec_hello_runs_in_ring3)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    const struct boot_module *m = hello_module();
    if (!m)
        return;
    const struct elf_info *info;
    const struct vm_image *images;
    char why[160];
    KT_ASSERT(exec_module_parse(m, &info, &images, why, sizeof(why)) == 0, "%s", why);
    KT_ASSERT(info->nseg == 3, "hello has %u segments, user.ld makes 3", info->nseg);

    struct vm_space *vs;
    KT_ASSERT(vm_space_create("exec-hello", &vs) == 0);
    const char *argv[] = {"hello", "second"};
    struct elf_start st;
    int err = exec_module(vs, "hello", 2, argv, &st, why, sizeof(why));
    KT_EXPECT(err == 0, "exec_module: %d %s", err, why);
    if (!err) {
        KT_EXPECT(st.entry == info->entry && (st.rsp & 15) == 0, "entry %#llx rsp %#llx",
                  (unsigned long long)st.entry, (unsigned long long)st.rsp);
        vm_activate(vs);
        bool exited = ktest_expect_user_fault(st.entry, st.rsp, EXC_UD, NULL);
        vm_activate(NULL);
        const struct ktest_fault_info *f = ktest_last_fault();
        KT_EXPECT(exited, "hello ended with vector %llu at %#llx (cr2 %#llx), not its ud2",
                  (unsigned long long)f->vector, (unsigned long long)f->rip,
                  (unsigned long long)f->cr2);
        uint8_t op[2] = {0, 0};
        KT_EXPECT(uprog_peek(vs, f->rip, op, 2) && op[0] == 0x0f && op[1] == 0x0b,
                  "the #UD at %#llx is not a ud2", (unsigned long long)f->rip);

        /* the report at the start of the data segment */
        const struct elf_segment *text = NULL, *ro = NULL, *data = NULL;
        for (unsigned i = 0; i < info->nseg; i++) {
            const struct elf_segment *s = &info->seg[i];
            if (s->prot & VM_EXEC)
                text = s;
            else if (s->prot & VM_WRITE)
                data = s;
            else
                ro = s;
        }
        KT_ASSERT(text && ro && data, "hello lacks a text, rodata or data segment");
        struct hello_report r;
        KT_ASSERT(uprog_peek(vs, data->vaddr, &r, sizeof(r)), "the report's page is not mapped");
        KT_EXPECT(r.magic == HELLO_MAGIC_DONE, "magic %#lx: main did not finish", r.magic);
        KT_EXPECT(r.rodata_sum == HELLO_RODATA_SUM, "rodata sum %lu", r.rodata_sum);
        KT_EXPECT(r.data_ok == 1, ".data arrived without its initial values");
        KT_EXPECT(r.bss_zero == HELLO_BSS_BYTES, ".bss: %lu of %d bytes were zero", r.bss_zero,
                  HELLO_BSS_BYTES);
        KT_EXPECT(r.argc == 2 && r.argv_null == 1 && strcmp(r.arg0, "hello") == 0,
                  "argc %lu argv[argc] NULL %lu argv[0] \"%s\"", r.argc, r.argv_null, r.arg0);
        /* the pattern over every page of the .bss array, the first of which
         * holds the end of .data's file bytes */
        KT_EXPECT(r.bss_addr >= data->vaddr + data->filesz &&
                      r.bss_addr + HELLO_BSS_BYTES <= data->vaddr + data->memsz,
                  "the bss array at %#lx is outside the data segment", r.bss_addr);
        uint64_t bad = 0;
        for (uint64_t i = 0; i < HELLO_BSS_BYTES; i += 97) {
            uint8_t v;
            if (!uprog_peek(vs, r.bss_addr + i, &v, 1) || v != HELLO_PATTERN(i))
                bad++;
        }
        KT_EXPECT(bad == 0, "%llu sampled bss bytes lack the pattern", (unsigned long long)bad);

        /* the rights each segment's pages got (paging_query after the run) */
        struct paging_mapping pm;
        KT_EXPECT(paging_query(&vs->pt, text->vaddr, &pm) && (pm.flags & PAGE_USER) &&
                      !(pm.flags & PAGE_WRITABLE) && !(pm.flags & PAGE_NX),
                  "text page flags %#llx", (unsigned long long)pm.flags);
        KT_EXPECT(paging_query(&vs->pt, ro->vaddr, &pm) && (pm.flags & PAGE_USER) &&
                      !(pm.flags & PAGE_WRITABLE) && (pm.flags & PAGE_NX),
                  "rodata page flags %#llx", (unsigned long long)pm.flags);
        KT_EXPECT(paging_query(&vs->pt, data->vaddr, &pm) && (pm.flags & PAGE_USER) &&
                      (pm.flags & PAGE_WRITABLE) && (pm.flags & PAGE_NX),
                  "data page flags %#llx", (unsigned long long)pm.flags);
        KT_EXPECT(paging_query(&vs->pt, ALIGN_DOWN(st.rsp, PAGE_SIZE), &pm) &&
                      (pm.flags & PAGE_WRITABLE) && (pm.flags & PAGE_NX),
                  "stack page flags %#llx", (unsigned long long)pm.flags);
        KT_EXPECT(vm_check(vs));
        /* the module's own bytes are untouched: a second space sees .data as linked */
        uint64_t magic;
        memcpy(&magic, (const uint8_t *)PHYS2VIRT(m->phys) + data->offset, sizeof(magic));
        KT_EXPECT(magic == HELLO_MAGIC_START, "the run wrote into the module (%#llx)",
                  (unsigned long long)magic);
    }
    vm_space_destroy(vs);
    uprog_baseline_expect(&b);
}

/* A corrupted copy of hello refused with `want`: what corrupt() did to it. */
static void expect_refused(const uint8_t *file, uint64_t len, const char *want)
{
    struct elf_info info;
    char why[160];
    KT_EXPECT(elf_parse(file, len, &info, why, sizeof(why)) == -EINVAL && strcmp(why, want) == 0,
              "refusal \"%s\", expected \"%s\"", why, want);
}

KTEST(exec_malformed_copies_are_refused)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    const struct boot_module *m = hello_module();
    if (!m)
        return;
    const struct elf_info *info;
    const struct vm_image *images;
    char why[160], want[160];
    KT_ASSERT(exec_module_parse(m, &info, &images, why, sizeof(why)) == 0, "%s", why);
    uint8_t *copy = kmalloc(m->size);
    KT_ASSERT(copy);
    const uint8_t *orig = PHYS2VIRT(m->phys);
    uint64_t phoff;
    memcpy(&phoff, orig + 32, 8);

    memcpy(copy, orig, m->size);
    copy[1] = 'X';
    expect_refused(copy, m->size, "elf: no ELF magic (not an executable file)");

    memcpy(copy, orig, m->size);
    copy[18] = 3; /* e_machine: i386 */
    expect_refused(copy, m->size, "elf: machine 3, not x86_64 (62)");

    /* the first program header (text, R-X) made writable too */
    memcpy(copy, orig, m->size);
    copy[phoff + 4] |= 2;
    ksnprintf(want, sizeof(want), "elf: segment 0 at %#llx is writable and executable (W^X)",
              (unsigned long long)info->seg[0].vaddr);
    expect_refused(copy, m->size, want);

    /* the entry point moved into the data segment */
    memcpy(copy, orig, m->size);
    uint64_t entry = info->seg[2].vaddr;
    memcpy(copy + 24, &entry, 8);
    ksnprintf(want, sizeof(want), "elf: entry point %#llx is not in an executable segment",
              (unsigned long long)entry);
    expect_refused(copy, m->size, want);

    /* cut off where the text's bytes begin */
    memcpy(copy, orig, m->size);
    ksnprintf(want, sizeof(want), "elf: segment 0: file bytes at %#llx (+%llu) outside the "
              "%llu-byte file", (unsigned long long)info->seg[0].offset,
              (unsigned long long)info->seg[0].filesz, (unsigned long long)info->seg[0].offset);
    expect_refused(copy, info->seg[0].offset, want);

    /* a good file with too many arguments: refused before anything is mapped */
    struct vm_space *vs;
    KT_ASSERT(vm_space_create("exec-refused", &vs) == 0);
    const char *argv[ELF_ARGV_MAX + 1];
    for (int i = 0; i <= ELF_ARGV_MAX; i++)
        argv[i] = "x";
    struct elf_start st;
    KT_EXPECT(elf_load(vs, info, images, ELF_ARGV_MAX + 1, argv, &st, why, sizeof(why)) == -EINVAL &&
                  strcmp(why, "exec: 33 arguments (1..32)") == 0, "\"%s\"", why);
    KT_EXPECT(vs->regions.count == 0 && vs->resident == 0, "a refused load left %llu regions",
              (unsigned long long)vs->regions.count);
    KT_EXPECT(exec_module(vs, "no-such-program", 1, argv, &st, why, sizeof(why)) == -ENOENT &&
                  strcmp(why, "exec: no module named \"no-such-program\"") == 0, "\"%s\"", why);
    vm_space_destroy(vs);
    kfree(copy);
    uprog_baseline_expect(&b);
}
