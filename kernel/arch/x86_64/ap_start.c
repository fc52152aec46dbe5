/* INIT-SIPI-SIPI through the real-mode trampoline (ap_start.h,
 * trampoline.S). The trampoline page and the temporary page tables are
 * taken once and kept: later starts (and a CPU started again some day)
 * reuse them. State here belongs to the BSP while it starts CPUs (one at a
 * time, boot only): no lock. The data block in the trampoline page is
 * shared with the AP being started: the BSP writes it before the INIT and
 * reads TD_CLAIM/TD_TAKEN; the AP claims it (compare-exchange on TD_CLAIM)
 * and marks it taken once it has read every field. */
#include "arch/x86_64/ap_start.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/smp.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/paging.h"

_Static_assert(__builtin_offsetof(struct ap_tramp_data, gdtr_limit) == TD_GDTR, "TD_GDTR");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, pm32_off) == TD_PM32, "TD_PM32");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, lm64_off) == TD_LM64, "TD_LM64");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, tmp_cr3) == TD_TMP_CR3, "TD_TMP_CR3");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, claim) == TD_CLAIM, "TD_CLAIM");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, efer) == TD_EFER, "TD_EFER");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, pat) == TD_PAT, "TD_PAT");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, cr0) == TD_CR0, "TD_CR0");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, cr4) == TD_CR4, "TD_CR4");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, kernel_cr3) == TD_KERNEL_CR3, "TD_KCR3");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, stack) == TD_STACK, "TD_STACK");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, cpu) == TD_CPU, "TD_CPU");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, entry) == TD_ENTRY, "TD_ENTRY");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, stub) == TD_STUB, "TD_STUB");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, taken) == TD_TAKEN, "TD_TAKEN");
_Static_assert(__builtin_offsetof(struct ap_tramp_data, wrong_id) == TD_WRONG_ID, "TD_WRONG_ID");
_Static_assert(sizeof(struct ap_tramp_data) == TD_SIZE, "TD_SIZE");
_Static_assert(TRAMP_DATA + TD_SIZE <= PAGE_SIZE, "the data block fits the page");

extern const char trampoline_start[], trampoline_end[];
extern const uint32_t tramp_pm32_offset, tramp_lm64_offset;
extern char ap_entry64[];

#define LOW_LIMIT    MiB(1) /* a SIPI vector names a page below 1 MiB */
#define TABLE_LIMIT  GiB(4) /* a CR3 loaded in 32-bit mode */
#define PTE_P_RW     0x3ULL
#define INIT_WAIT_US 10000 /* after INIT, before the first SIPI */
#define SIPI_WAIT_US 200   /* after each SIPI */
#define TAKEN_WAIT_US 100000 /* a claimed block must be taken within this */

/* GDT descriptors: flat 32-bit code, flat data, 64-bit code (all ring 0). */
#define DESC_CODE32 0x00cf9a000000ffffULL
#define DESC_DATA   0x00cf92000000ffffULL
#define DESC_CODE64 0x00af9a000000ffffULL

static paddr_t tramp_page;     /* below 1 MiB: the code and the data block */
static paddr_t tables[4];      /* PML4, PDPT, PD, PT of the temporary tables, below 4 GiB */
static struct acpi_cpus given; /* the list of the last ap_start_all */
static bool given_set;

const char *ap_start_reserve(void)
{
    if (tramp_page)
        return NULL;
    paddr_t page = frame_alloc_below(LOW_LIMIT);
    if (!page)
        return "ap_start: no free frame below 1 MiB for the AP trampoline";
    paddr_t t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = frame_alloc_below(TABLE_LIMIT);
        if (!t[i]) {
            while (i--)
                frame_free(t[i]);
            frame_free(page);
            return "ap_start: no free frames below 4 GiB for the AP page tables";
        }
    }
    memcpy(tables, t, sizeof(tables));
    memset(PHYS2VIRT(page), 0, PAGE_SIZE); /* no stale block until tramp_setup fills it */
    tramp_page = page;
    return NULL;
}

paddr_t ap_start_trampoline_page(void)
{
    return tramp_page;
}

static inline struct ap_tramp_data *tramp_data(void)
{
    return (struct ap_tramp_data *)((char *)PHYS2VIRT(tramp_page) + TRAMP_DATA);
}

/* Temporary tables: the trampoline page identity-mapped (4 KiB, executable),
 * kernel_as's kernel half (PML4 entries 256..511, fixed once the kernel's
 * tables exist) shared, nothing else. */
static void build_tables(void)
{
    uint64_t *pml4 = PHYS2VIRT(tables[0]), *pdpt = PHYS2VIRT(tables[1]);
    uint64_t *pd = PHYS2VIRT(tables[2]), *pt = PHYS2VIRT(tables[3]);
    memset(pml4, 0, PAGE_SIZE);
    memset(pdpt, 0, PAGE_SIZE);
    memset(pd, 0, PAGE_SIZE);
    memset(pt, 0, PAGE_SIZE);
    const uint64_t *kernel = PHYS2VIRT(kernel_as.pml4);
    for (int i = 256; i < 512; i++)
        pml4[i] = kernel[i];
    pml4[0] = tables[1] | PTE_P_RW; /* tramp_page < 1 MiB: index 0 at the top three levels */
    pdpt[0] = tables[2] | PTE_P_RW;
    pd[0] = tables[3] | PTE_P_RW;
    pt[tramp_page >> PAGE_SHIFT] = tramp_page | PTE_P_RW;
}

/* The code, and every field of the block that is the same for all APs. */
static void tramp_setup(void)
{
    size_t code = (size_t)(trampoline_end - trampoline_start);
    kassert(code <= TRAMP_DATA, "trampoline code is %zu bytes", code);
    memcpy(PHYS2VIRT(tramp_page), trampoline_start, code);
    build_tables();
    struct ap_tramp_data *d = tramp_data();
    memset(d, 0, sizeof(*d));
    d->gdt[1] = DESC_CODE32;
    d->gdt[2] = DESC_DATA;
    d->gdt[3] = DESC_CODE64;
    d->gdtr_limit = sizeof(d->gdt) - 1;
    d->gdtr_base = (uint32_t)(tramp_page + TRAMP_DATA + TD_GDT);
    d->pm32_off = (uint32_t)tramp_page + tramp_pm32_offset;
    d->pm32_sel = TRAMP_SEL_CODE32;
    d->lm64_off = (uint32_t)tramp_page + tramp_lm64_offset;
    d->lm64_sel = TRAMP_SEL_CODE64;
    d->tmp_cr3 = (uint32_t)tables[0];
    d->claim = TD_WITHDRAWN;
    /* The BSP's own state, so the AP matches it: EFER (LME, NXE, SCE as
     * set; LMA is the CPU's to set), PAT, CR0 and CR4 (the trampoline
     * enters long mode with PAE alone and loads this CR4 in the higher half). */
    d->efer = rdmsr(MSR_EFER) & ~EFER_LMA;
    d->pat = rdmsr(MSR_PAT);
    d->cr0 = read_cr0();
    d->cr4 = read_cr4();
    d->kernel_cr3 = kernel_as.pml4;
    d->entry = (uint64_t)(uintptr_t)smp_ap_enter;
    d->stub = (uint64_t)(uintptr_t)ap_entry64;
}

static uint32_t claim_state(const struct ap_tramp_data *d)
{
    return __atomic_load_n(&d->claim, __ATOMIC_ACQUIRE);
}

/* Takes the block back from an AP that has not claimed it; true when it
 * did (the AP, should it wake, halts), false when the AP claimed it first. */
static bool withdraw(struct ap_tramp_data *d, uint32_t apic_id)
{
    uint32_t want = apic_id;
    return __atomic_compare_exchange_n(&d->claim, &want, TD_WITHDRAWN, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}

/* INIT, SIPI, SIPI for one AP whose block c is prepared. Returns 1 when it
 * came online, 0 when it did not (block withdrawn or taken: reusable), -1
 * when it claimed the block but never took it (the block may still be read:
 * no other AP may use it). */
static int start_one(struct cpu *c, uint32_t apic_id, uint64_t timeout_us)
{
    struct ap_tramp_data *d = tramp_data();
    uint8_t vector = (uint8_t)(tramp_page >> PAGE_SHIFT);
    d->stack = c->stack_top;
    d->cpu = (uint64_t)(uintptr_t)c;
    d->taken = 0;
    d->wrong_id = 0;
    __atomic_store_n(&d->claim, apic_id, __ATOMIC_RELEASE); /* the block is ready */

    lapic_send_ipi(apic_id, LAPIC_ICR_INIT | LAPIC_ICR_ASSERT);
    delay_us(INIT_WAIT_US);
    lapic_send_ipi(apic_id, LAPIC_ICR_STARTUP | LAPIC_ICR_ASSERT | vector);
    delay_us(SIPI_WAIT_US);
    if (claim_state(d) == apic_id) { /* not running yet: the second SIPI */
        lapic_send_ipi(apic_id, LAPIC_ICR_STARTUP | LAPIC_ICR_ASSERT | vector);
        delay_us(SIPI_WAIT_US);
    }
    if (smp_cpu_wait_online(c, timeout_us))
        return 1;
    if (withdraw(d, apic_id))
        return 0;
    uint64_t waited = 0;
    while (!__atomic_load_n(&d->taken, __ATOMIC_ACQUIRE) && waited < TAKEN_WAIT_US) {
        delay_us(100);
        waited += 100;
    }
    return __atomic_load_n(&d->taken, __ATOMIC_ACQUIRE) ? 0 : -1;
}

const struct acpi_cpus *ap_start_cpus(void)
{
    return given_set ? &given : NULL;
}

/* The trampoline is copied and its block filled at most once per boot
 * (the BSP's state does not change after boot). */
static bool tramp_ready;

enum ap_start_result ap_start_cpu(uint32_t apic_id, uint64_t timeout_us, const char **why)
{
    static char line[128];
    *why = NULL;
    if (apic_id == lapic_id())
        return AP_START_SELF;
    if (!lapic_x2apic() && apic_id >= 0xff) {
        /* An 8-bit destination: 0xff is the broadcast, higher IDs would be
         * cut to another CPU's. Never send those an INIT. */
        klog("smp", "APIC id %u cannot be addressed in xAPIC mode: left out", apic_id);
        return AP_START_LEFT_OUT;
    }
    if (!tramp_ready) {
        *why = ap_start_reserve();
        if (*why)
            return AP_START_STOP;
        if (!tsc_per_us())
            pit_calibrate_tsc();
        tramp_setup();
        tramp_ready = true;
    }
    struct cpu *c = smp_cpu_prepare(apic_id);
    if (!c) {
        ksnprintf(line, sizeof(line),
                  "ap_start: no per-CPU block for APIC id %u (out of memory or CPU_MAX)", apic_id);
        *why = line;
        return AP_START_STOP;
    }
    int r = start_one(c, apic_id, timeout_us);
    if (r > 0)
        return AP_START_ONLINE;
    klog("smp", "CPU %u (APIC id %u) did not start: left out", c->local.index, apic_id);
    if (r == 0)
        return AP_START_LEFT_OUT;
    ksnprintf(line, sizeof(line),
              "ap_start: APIC id %u took the trampoline and stopped: no more CPUs started",
              apic_id);
    *why = line;
    return AP_START_STOP;
}

const char *ap_start_all(const struct acpi_cpus *cpus, unsigned *started)
{
    *started = 0;
    given = *cpus;
    given_set = true;
    for (uint32_t k = 0; k < cpus->count; k++) {
        const char *why;
        enum ap_start_result r = ap_start_cpu(cpus->apic_id[k], AP_START_TIMEOUT_US, &why);
        if (r == AP_START_ONLINE)
            (*started)++;
        if (r == AP_START_STOP)
            return why;
    }
    return NULL;
}
