/* Host-test support: what the kernel provides at boot, simulated on the host.
 * - panic_at() records the message and longjmps to HOST_EXPECT_PANIC's point
 *   (or aborts when no panic is expected).
 * - kprintf output is captured in host_log (and echoed when HOST_LOG_ECHO=1).
 * - "Physical memory" is an arena: host_arena_init() maps one and sets
 *   hhdm_offset so that PHYS2VIRT(p) points into it.
 * - arch_* CPU operations are harmless stand-ins; arch_has_1g_pages follows
 *   host_cpu_1g_pages and arch_phys_addr_bits follows host_phys_bits. */
#pragma once

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern char host_panic_msg[1024];
extern jmp_buf *host_panic_jmp;
extern char host_log[65536];
extern size_t host_log_len;
extern bool host_cpu_1g_pages;
extern unsigned host_phys_bits;
extern unsigned long host_invlpg_count;
/* arch_tlb_shootdown calls: how many, and the last one's [start, end) and
 * global flag; host_shootdown_hook (if set) runs inside each call. */
extern unsigned long host_shootdown_count;
extern uint64_t host_shootdown_start, host_shootdown_end;
extern bool host_shootdown_global;
/* The CPU set of the last call (~0u: every other CPU, arch_tlb_shootdown). */
extern uint32_t host_shootdown_cpus;
extern void (*host_shootdown_hook)(uint64_t start, uint64_t end, bool global);
/* Global TLB entries the host's TLB model holds (a test sets it to stand for
 * the bootloader's; only arch_flush_tlb_all clears it, as on the CPU). */
extern unsigned long host_tlb_global_entries;
/* Called (if set) by every arch_invlpg with its address and by every
 * arch_write_cr3 with the new root: a test's own TLB model follows them. */
extern void (*host_invlpg_hook)(uint64_t va);
extern void (*host_cr3_hook)(uint64_t pml4);

struct vm_space;
/* The CPU's answer for a ring-3 access (VM_READ, VM_WRITE or VM_EXEC) at
 * va in vs: true when it would fault, read from vs's page tables (present,
 * user, writable, NX), as the host tests and fuzzers of mm/vm.c need it,
 * having no CPU to fault. */
bool host_would_fault(struct vm_space *vs, uint64_t va, uint32_t access);

/* Clears the captured log. */
void host_log_clear(void);
/* True when the captured log contains s. */
bool host_log_contains(const char *s);

/* Maps an arena of `size` bytes standing for physical [0, size) and points
 * hhdm_offset at it. Lazily backed (MAP_NORESERVE), so 256 GiB is fine if
 * sparsely touched. Returns the arena base. */
void *host_arena_init(uint64_t size);
/* Unmaps the arena. */
void host_arena_free(void);

/* Runs `stmt` and evaluates to true when it panicked (message in host_panic_msg). */
#define HOST_EXPECT_PANIC(stmt)                                                   \
    ({                                                                            \
        jmp_buf host_jb_;                                                         \
        bool host_panicked_ = false;                                              \
        host_panic_msg[0] = 0;                                                    \
        host_panic_jmp = &host_jb_;                                               \
        if (setjmp(host_jb_) == 0) {                                              \
            stmt;                                                                 \
        } else {                                                                  \
            host_panicked_ = true;                                                \
        }                                                                         \
        host_panic_jmp = NULL;                                                    \
        host_panicked_;                                                           \
    })
