/* The IDT: all 256 vectors lead through isr.S into interrupt_dispatch(). */
#pragma once

#include "lib/types.h"

/* What isr.S saves, lowest address first: the general-purpose registers, the
 * vector and error code (0 when the CPU pushes none), then the frame the CPU
 * pushed. Handlers may modify it; iretq restores from it. */
struct interrupt_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector;
    uint64_t error_code;
    /* pushed by the CPU */
    uint64_t rip, cs, rflags, rsp, ss;
};
_Static_assert(sizeof(struct interrupt_frame) == 22 * 8, "interrupt frame layout");
_Static_assert(__builtin_offsetof(struct interrupt_frame, vector) == 15 * 8, "isr.S pushes 15 GPRs");
_Static_assert(__builtin_offsetof(struct interrupt_frame, rip) == 17 * 8, "CPU frame after vector/error");

typedef void (*interrupt_handler_fn)(struct interrupt_frame *f);

/* One IDT gate (Intel SDM vol. 3, 6.14.1). */
struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;       /* bits 0..2: IST slot, 0 = stay on the current stack */
    uint8_t type_attr; /* P, DPL, type (0xE interrupt gate, 0xF trap gate) */
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} PACKED;
_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");

#define IDT_VECTORS 256
#define IDT_FIRST_IRQ_VECTOR 32

/* Fills all 256 gates (interrupt gates, DPL 0; #DF on IST1, NMI on IST2,
 * #MC on IST3, every other vector, #PF included, on the interrupted stack)
 * and loads the IDT. Needs gdt_init() first. */
void idt_init(void);
/* Loads the one IDT (filled by idt_init) on the running CPU: every CPU
 * shares it. For the APs. */
void idt_load(void);
/* Routes `vector` to h (NULL restores the default: the fatal report for
 * exceptions, "unexpected interrupt N" for the rest). A handler for an
 * exception vector runs instead of the report. */
void idt_set_handler(uint8_t vector, interrupt_handler_fn h);
/* Called by isr.S with the saved frame, interrupts off; returns into iretq. */
void interrupt_dispatch(struct interrupt_frame *f);
