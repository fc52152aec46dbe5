/* Monitor commands about user address spaces (mm/vm.h): `as` lists them,
 * `vmmap <id>` shows one space's regions (`vmmap pid <n>`: a process's), `vmdemo [free]` makes (and
 * destroys) two demo spaces, a space and its fork, for them to show.
 *
 * vm_for_each_space runs its callback under the space list's lock (rank
 * none: the callback may take no lock), so `as` first collects the ids and
 * then looks each space up and asks it for its regions (vm_for_each_region,
 * under the space's own lock; that callback only copies). A process's space
 * may be destroyed on another CPU at any time (its process exits or execs),
 * so it is read only inside monitor_with_proc_space (cmd_proc.c), which
 * keeps it alive; every other space the monitor can see is the demo's (a
 * test's lives only while the test command runs), made and destroyed on
 * this same CPU by monitor commands, so none disappears while a command
 * uses it. */
#include "arch/x86_64/cpu.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/heap.h"
#include "mm/paging.h"
#include "mm/vm.h"
#include "monitor/commands.h"
#include "monitor/parse.h"
#include "test/ktest.h"
#include "test/uprog.h"
#include "uapi/abi.h"

#define AS_MAX_LIST 64       /* spaces `as` lists */
#define AS_MAX_REGIONS 256   /* regions `vmmap <id>` prints */

/* ---- helpers ----------------------------------------------------------------------------- */

struct id_list {
    uint32_t id[AS_MAX_LIST];
    unsigned n, more;
};

/* Runs under the list lock: copies the fixed id, nothing else. */
static void collect_id(void *ctx, struct vm_space *vs)
{
    struct id_list *l = ctx;
    if (l->n < AS_MAX_LIST)
        l->id[l->n++] = vs->id;
    else
        l->more++;
}

/* One region as vm_for_each_region showed it. */
struct region_row {
    vaddr_t start, end;
    uint32_t prot;
    enum vm_kind kind;
    uint64_t image_off;
    vaddr_t floor;
    uint64_t resident;
};

struct region_list {
    struct region_row *rows; /* NULL: count only */
    unsigned n, cap;
    uint64_t count, resident, bytes;
};

/* Runs under vs->lock: copies, takes no lock. */
static void collect_region(void *ctx, const struct vm_region *r, uint64_t resident)
{
    struct region_list *l = ctx;
    l->count++;
    l->resident += resident;
    l->bytes += r->end - r->start;
    if (l->rows && l->n < l->cap)
        l->rows[l->n++] = (struct region_row){r->start, r->end, r->prot, r->kind,
                                              r->image_off, r->grow_floor, resident};
}

static const char *kind_name(enum vm_kind k)
{
    switch (k) {
    case VMR_ANON:
        return "anon";
    case VMR_IMAGE:
        return "image";
    case VMR_STACK:
        return "stack";
    }
    return "?";
}

/* "0,1" for a CPU mask, "-" for none. */
static const char *cpus_str(char *buf, size_t size, uint32_t mask)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < 32 && n < size; i++)
        if (mask & (1u << i))
            n += (size_t)ksnprintf(buf + n, size - n, "%s%u", n ? "," : "", i);
    if (!n)
        ksnprintf(buf, size, "-");
    return buf;
}

/* ---- as ---------------------------------------------------------------------------------- */

/* One row of `as`, copied while the space is sure to live. */
struct as_row {
    uint32_t id; /* 0: the space was gone */
    char name[24];
    struct region_list rl;
    uint64_t resident, tables, zero, image, cow_copies, cow_reuses;
    uint32_t cpus;
};

/* Copies vs's counts (a snapshot: they may move while its programs run). */
static void as_collect(struct vm_space *vs, void *ctx)
{
    struct as_row *r = ctx;
    r->id = vs->id;
    kstrlcpy(r->name, vs->name, sizeof(r->name));
    vm_for_each_region(vs, collect_region, &r->rl);
    r->resident = __atomic_load_n(&vs->resident, __ATOMIC_RELAXED);
    r->tables = __atomic_load_n(&vs->pt.table_pages, __ATOMIC_RELAXED);
    r->cpus = __atomic_load_n(&vs->pt.cpus, __ATOMIC_RELAXED);
    r->zero = __atomic_load_n(&vs->zero_faults, __ATOMIC_RELAXED);
    r->image = __atomic_load_n(&vs->image_faults, __ATOMIC_RELAXED);
    r->cow_copies = __atomic_load_n(&vs->cow_copies, __ATOMIC_RELAXED);
    r->cow_reuses = __atomic_load_n(&vs->cow_reuses, __ATOMIC_RELAXED);
}

void cmd_as(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static struct id_list ids;
    ids = (struct id_list){0};
    vm_for_each_space(collect_id, &ids);
    struct vm_stats st;
    vm_get_stats(&st);
    char refs[24];
    kprintf("address spaces: %llu live; %llu faults, %llu resolved; %llu frames shared "
            "copy-on-write (reference counts %s)\n",
            (unsigned long long)st.spaces, (unsigned long long)st.faults,
            (unsigned long long)st.resolved, (unsigned long long)st.shared_frames,
            monitor_size_str(refs, sizeof(refs), st.ref_bytes));
    if (!ids.n)
        return;
    kprintf("  %4s %-23s %7s %8s %6s %-7s %7s %6s %8s %9s\n", "id", "name", "regions", "resident",
            "tables", "cpus", "zero", "image", "cow-copy", "cow-reuse");
    for (unsigned i = 0; i < ids.n; i++) {
        struct as_row r = {0};
        /* a process's space is read while proc_lock keeps it alive
         * (cmd_proc.c); any other is the monitor's own (vmdemo) */
        if (monitor_with_proc_space(0, ids.id[i], as_collect, &r, NULL) == -ESRCH) {
            struct vm_space *vs = vm_space_by_id(ids.id[i]);
            if (vs)
                as_collect(vs, &r);
        }
        if (!r.id)
            continue; /* gone meanwhile */
        char cpus[24];
        kprintf("  %4u %-23s %7llu %8llu %6llu %-7s %7llu %6llu %8llu %9llu\n", r.id, r.name,
                (unsigned long long)r.rl.count, (unsigned long long)r.resident,
                (unsigned long long)r.tables, cpus_str(cpus, sizeof(cpus), r.cpus),
                (unsigned long long)r.zero, (unsigned long long)r.image,
                (unsigned long long)r.cow_copies, (unsigned long long)r.cow_reuses);
    }
    if (ids.more)
        kprintf("  ... and %u more\n", ids.more);
}

/* ---- vmmap <id>, vmmap pid <n> ----------------------------------------------------------- */

/* What vmmap prints of one space, copied while the space is sure to live. */
struct vmmap_snap {
    uint32_t id;
    char name[24];
    paddr_t pml4;
    struct region_list rl;
};

static struct region_row vmmap_rows[AS_MAX_REGIONS];

/* Copies the space's name, tables' root and regions (takes vs->lock only). */
static void vmmap_collect(struct vm_space *vs, void *ctx)
{
    struct vmmap_snap *s = ctx;
    s->id = vs->id;
    kstrlcpy(s->name, vs->name, sizeof(s->name));
    s->pml4 = vs->pt.pml4;
    s->rl = (struct region_list){.rows = vmmap_rows, .cap = AS_MAX_REGIONS};
    vm_for_each_region(vs, collect_region, &s->rl);
}

static void vmmap_print(const struct vmmap_snap *s, int pid)
{
    char owner[32] = "";
    if (pid)
        ksnprintf(owner, sizeof(owner), ", process %d", pid);
    kprintf("address space %u (%s), PML4 at %#llx%s; rights r/w/x:\n", s->id, s->name,
            (unsigned long long)s->pml4, owner);
    kprintf("  %-33s %10s %-3s %-5s %-22s %s\n", "virtual range", "size", "rwx", "kind",
            "image offset / floor", "resident");
    const struct region_list *rl = &s->rl;
    for (unsigned i = 0; i < rl->n; i++) {
        const struct region_row *r = &rl->rows[i];
        char size[24], extra[32] = "";
        if (r->kind == VMR_IMAGE)
            ksnprintf(extra, sizeof(extra), "+0x%llx", (unsigned long long)r->image_off);
        else if (r->kind == VMR_STACK && r->floor)
            ksnprintf(extra, sizeof(extra), "floor %#llx", (unsigned long long)r->floor);
        kprintf("  %016llx-%016llx %10s %c%c%c %-5s %-22s %llu\n", (unsigned long long)r->start,
                (unsigned long long)r->end, monitor_size_str(size, sizeof(size), r->end - r->start),
                (r->prot & VM_READ) ? 'r' : '-', (r->prot & VM_WRITE) ? 'w' : '-',
                (r->prot & VM_EXEC) ? 'x' : '-', kind_name(r->kind), extra,
                (unsigned long long)r->resident);
    }
    if (rl->count > rl->n)
        kprintf("  ... %llu more regions not shown\n", (unsigned long long)(rl->count - rl->n));
    char total[24];
    kprintf("  total: %llu regions, %s, %llu pages resident\n", (unsigned long long)rl->count,
            monitor_size_str(total, sizeof(total), rl->bytes), (unsigned long long)rl->resident);
}

int monitor_vmmap_of_proc(int pid)
{
    static struct vmmap_snap s;
    int err = monitor_with_proc_space(pid, 0, vmmap_collect, &s, NULL);
    if (!err)
        vmmap_print(&s, pid);
    return err;
}

void cmd_vmmap_space(const char *arg)
{
    uint64_t id;
    if (!parse_u64(arg, &id)) {
        monitor_error("vmmap", "'%s' is not an address-space id", arg);
        return;
    }
    static struct vmmap_snap s;
    int owner = 0;
    /* a process's space: read while proc_lock keeps it alive (cmd_proc.c) */
    int err = id && id <= UINT32_MAX ?
                  monitor_with_proc_space(0, (uint32_t)id, vmmap_collect, &s, &owner) : -ESRCH;
    if (err == -ESRCH) {
        /* no process's: the monitor's own (vmdemo), made and destroyed by
         * monitor commands on this CPU, so alive while this command runs */
        struct vm_space *vs = id && id <= UINT32_MAX ? vm_space_by_id((uint32_t)id) : NULL;
        if (vs) {
            vmmap_collect(vs, &s);
            err = 0;
        }
    }
    if (err) {
        monitor_error("vmmap", "no address space %llu (see 'as')", (unsigned long long)id);
        return;
    }
    vmmap_print(&s, owner);
}

/* ---- vmdemo [free] ----------------------------------------------------------------------- */

/* The demo's pieces: a writable data region (some pages touched), a
 * read-only one (some read), an image region (read), the stack grown. */
#define DEMO_DATA 0x40000000ULL
#define DEMO_DATA_PAGES 64
#define DEMO_RO 0x40100000ULL
#define DEMO_RO_PAGES 8
#define DEMO_IMAGE 0x40200000ULL

static const char demo_text[] = "SlayerOS demo image region\n";
static const struct vm_image demo_image = {(const uint8_t *)demo_text, sizeof(demo_text)};

static struct {
    uint32_t parent, child; /* 0: no demo */
    uint64_t free_frames, tables, spaces; /* before the demo */
} demo;

/* The counts vmdemo compares: heap pages kept for later and frames in the
 * per-CPU caches are given back first, so they do not count. */
static void settle(uint64_t *free_frames, uint64_t *tables, uint64_t *spaces)
{
    struct vm_stats s;
    vm_get_stats(&s);
    heap_trim();
    frame_drain_cpu_caches();
    *free_frames = ktest_free_frames();
    *tables = paging_table_pages();
    *spaces = s.spaces;
}

static void demo_free(void)
{
    if (!demo.parent) {
        kprintf("vmdemo: no demo spaces (make them with 'vmdemo')\n");
        return;
    }
    struct vm_space *c = vm_space_by_id(demo.child), *p = vm_space_by_id(demo.parent);
    if (c)
        vm_space_destroy(c);
    if (p)
        vm_space_destroy(p);
    uint64_t f, t, s;
    settle(&f, &t, &s);
    kprintf("vmdemo: spaces %u and %u destroyed; free frames %llu (before vmdemo %llu), page "
            "tables %llu (before %llu), spaces %llu (before %llu)\n",
            demo.parent, demo.child, (unsigned long long)f, (unsigned long long)demo.free_frames,
            (unsigned long long)t, (unsigned long long)demo.tables, (unsigned long long)s,
            (unsigned long long)demo.spaces);
    demo.parent = demo.child = 0;
}

/* Runs one program in vs; false (and says so) unless it exited normally. */
static bool demo_run(struct vm_space *vs, const uint8_t *prog, const uint8_t *end, struct uparams p)
{
    uint64_t flags = cpu_irq_save();
    enum uprog_end e = uprog_run(vs, prog, end, p, NULL);
    cpu_irq_restore(flags);
    if (e != UPROG_EXIT)
        kprintf("vmdemo: a ring-3 run in space %u ended abnormally (%d)\n", vs->id, (int)e);
    return e == UPROG_EXIT;
}

static void demo_make(void)
{
    if (demo.parent) {
        kprintf("vmdemo: spaces %u and %u exist already ('vmdemo free' destroys them)\n",
                demo.parent, demo.child);
        return;
    }
    /* frameref's directory is made on the first share ever and kept: make
     * it now, so that it is not counted as the demo's */
    paddr_t f = frame_alloc();
    if (f) {
        if (frameref_share(f))
            frameref_put(f);
        frame_free(f);
    }
    settle(&demo.free_frames, &demo.tables, &demo.spaces);
    struct vm_space *vs = uprog_space_new("demo"), *child = NULL;
    vaddr_t data = DEMO_DATA, ro = DEMO_RO, img = DEMO_IMAGE;
    if (!vs || vm_map(vs, &data, DEMO_DATA_PAGES * PAGE_SIZE, VM_READ | VM_WRITE, VMR_ANON, NULL, 0, 0,
                      VM_MAP_FIXED) ||
        vm_map(vs, &ro, DEMO_RO_PAGES * PAGE_SIZE, VM_READ, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED) ||
        vm_map(vs, &img, PAGE_SIZE, VM_READ, VMR_IMAGE, &demo_image, 0, 0, VM_MAP_FIXED)) {
        kprintf("vmdemo: out of memory\n");
        if (vs)
            vm_space_destroy(vs);
        return;
    }
    /* every 4th data page written, 2 read-only pages and the image page
     * read, the stack grown by 8 pages */
    bool ok = demo_run(vs, uprog_touch, uprog_touch_end,
                       (struct uparams){DEMO_DATA, DEMO_DATA_PAGES / 4, 4 * PAGE_SIZE, 0xd0}) &&
              demo_run(vs, uprog_read, uprog_read_end, (struct uparams){DEMO_RO, 2, PAGE_SIZE, 0}) &&
              demo_run(vs, uprog_read, uprog_read_end, (struct uparams){DEMO_IMAGE, 1, 1, 0}) &&
              demo_run(vs, uprog_stack, uprog_stack_end, (struct uparams){0, 8, 0, 0});
    /* the fork writes 4 of the shared data pages: copies */
    if (ok && vm_fork(vs, "demo-fork", &child)) {
        kprintf("vmdemo: fork: out of memory\n");
        ok = false;
    }
    ok = ok && demo_run(child, uprog_touch, uprog_touch_end,
                        (struct uparams){DEMO_DATA, 4, 4 * PAGE_SIZE, 0xf0});
    if (!ok) {
        if (child)
            vm_space_destroy(child);
        vm_space_destroy(vs);
        return;
    }
    demo.parent = vs->id;
    demo.child = child->id;
    kprintf("vmdemo: space %u '%s': %llu pages resident (%llu filled with zeros, %llu from images)\n",
            vs->id, vs->name, (unsigned long long)vs->resident, (unsigned long long)vs->zero_faults,
            (unsigned long long)vs->image_faults);
    kprintf("vmdemo: space %u '%s', its fork: %llu pages resident, %llu copied on write\n", child->id,
            child->name, (unsigned long long)child->resident, (unsigned long long)child->cow_copies);
}

void cmd_vmdemo(int argc, char **argv)
{
    if (argc == 1) {
        demo_make();
        return;
    }
    if (strcmp(argv[1], "free") == 0) {
        demo_free();
        return;
    }
    monitor_error("vmdemo", "'%s': the only argument is 'free'", argv[1]);
}
