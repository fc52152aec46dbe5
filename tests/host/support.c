/* Host stand-ins for the kernel's panic, log sinks and CPU operations. */
#include "support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/x86_64/mmu_ops.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "mm/vm.h"

char host_panic_msg[1024];
jmp_buf *host_panic_jmp;
char host_log[65536];
size_t host_log_len;
bool host_cpu_1g_pages = true;
unsigned host_phys_bits = 46;
unsigned long host_invlpg_count;
__thread unsigned host_cpu_index;

static void *arena_base;
static uint64_t arena_size;

static void host_sink(const char *s, size_t len)
{
    if (getenv("HOST_LOG_ECHO"))
        fwrite(s, 1, len, stderr);
    size_t room = sizeof(host_log) - 1 - host_log_len;
    if (len > room) { /* keep the newest output: drop the oldest half */
        memmove(host_log, host_log + sizeof(host_log) / 2, host_log_len - sizeof(host_log) / 2);
        host_log_len -= sizeof(host_log) / 2;
        room = sizeof(host_log) - 1 - host_log_len;
        if (len > room)
            len = room;
    }
    memcpy(host_log + host_log_len, s, len);
    host_log_len += len;
    host_log[host_log_len] = 0;
}

__attribute__((constructor)) static void host_support_init(void)
{
    kprintf_add_sink(host_sink);
}

void host_log_clear(void)
{
    host_log_len = 0;
    host_log[0] = 0;
}

bool host_log_contains(const char *s)
{
    return strstr(host_log, s) != NULL;
}

void panic_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(host_panic_msg, sizeof(host_panic_msg), "PANIC at %s:%d: ", file, line);
    va_start(ap, fmt);
    kvsnprintf(host_panic_msg + n, sizeof(host_panic_msg) - (size_t)n, fmt, ap);
    va_end(ap);
    if (host_panic_jmp)
        longjmp(*host_panic_jmp, 1);
    fprintf(stderr, "%s\n", host_panic_msg);
    abort();
}

/* lib/string.h's memspn (the kernel's is in lib/string.c, which the host
 * does not build): below 256 bytes a word at a time, else a block at a time
 * by libc's memcmp of the block with itself one byte on (all equal to its
 * first byte), which ASan checks per range; the kernel's word loop, checked
 * per word, was most of the heap fuzz target's time. */
size_t memspn(const void *p, int c, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    if (n < 256) { /* a call of memcmp costs more than a few words */
        uint64_t word = (unsigned char)c * 0x0101010101010101ULL, w;
        while (i + 8 <= n && (memcpy(&w, b + i, 8), w == word))
            i += 8;
    }
    while (i < n && b[i] == (unsigned char)c) {
        size_t k = MIN(n - i, 4096);
        if (memcmp(b + i, b + i + 1, k - 1) != 0)
            break;
        i += k;
    }
    while (i < n && b[i] == (unsigned char)c)
        i++;
    return i;
}

void *host_arena_init(uint64_t size)
{
    host_arena_free();
    arena_base = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (arena_base == MAP_FAILED) {
        perror("host_arena_init: mmap");
        abort();
    }
    arena_size = size;
    hhdm_offset = (uint64_t)(uintptr_t)arena_base;
    hhdm_size = size;
    return arena_base;
}

void host_arena_free(void)
{
    if (arena_base)
        munmap(arena_base, arena_size);
    arena_base = NULL;
    arena_size = 0;
}

/* CPU operations: nothing to do on the host except count (atomically:
 * threads stand for CPUs in the ThreadSanitizer tests). */
void (*host_invlpg_hook)(vaddr_t va);
void (*host_cr3_hook)(paddr_t pml4);
void arch_invlpg(vaddr_t va)
{
    __atomic_fetch_add(&host_invlpg_count, 1, __ATOMIC_RELAXED);
    if (host_invlpg_hook)
        host_invlpg_hook(va);
}
/* The shootdown stand-in: records the call (count and last range), then runs
 * the test's hook, if any. */
unsigned long host_shootdown_count;
vaddr_t host_shootdown_start, host_shootdown_end;
bool host_shootdown_global;
void (*host_shootdown_hook)(vaddr_t start, vaddr_t end, bool global);
uint32_t host_shootdown_cpus;
void arch_tlb_shootdown(vaddr_t start, vaddr_t end, bool global)
{
    arch_tlb_shootdown_cpus(~0u, start, end, global);
}
void arch_tlb_shootdown_cpus(uint32_t cpus, vaddr_t start, vaddr_t end, bool global)
{
    __atomic_store_n(&host_shootdown_cpus, cpus, __ATOMIC_RELAXED);
    __atomic_fetch_add(&host_shootdown_count, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&host_shootdown_start, start, __ATOMIC_RELAXED);
    __atomic_store_n(&host_shootdown_end, end, __ATOMIC_RELAXED);
    __atomic_store_n(&host_shootdown_global, global, __ATOMIC_RELAXED);
    if (host_shootdown_hook)
        host_shootdown_hook(start, end, global);
}
void arch_tlb_stats(uint64_t *count, uint64_t *pages, uint64_t *full)
{
    *count = __atomic_load_n(&host_shootdown_count, __ATOMIC_RELAXED);
    *pages = *full = 0;
}
static paddr_t host_cr3;
paddr_t arch_read_cr3(void) { return host_cr3; }
/* The TLB model: a CR3 load drops what is not global, a full flush drops all. */
unsigned long host_tlb_global_entries;
void arch_write_cr3(paddr_t pml4)
{
    host_cr3 = pml4;
    if (host_cr3_hook)
        host_cr3_hook(pml4);
}
void arch_flush_tlb_all(void) { host_tlb_global_entries = 0; }
unsigned arch_phys_addr_bits(void) { return host_phys_bits; }
bool arch_has_1g_pages(void) { return host_cpu_1g_pages; }
bool arch_has_nx(void) { return true; }
void arch_pat_init(void) {}
uint64_t arch_rdtsc(void) { return __builtin_ia32_rdtsc(); }

bool host_would_fault(struct vm_space *vs, uint64_t va, uint32_t access)
{
    struct paging_mapping m;
    if (!paging_query(&vs->pt, va, &m) || !(m.flags & PAGE_USER))
        return true;
    if (access == VM_WRITE && !(m.flags & PAGE_WRITABLE))
        return true;
    return access == VM_EXEC && (m.flags & PAGE_NX);
}
