/* The local APIC (arch/x86_64/lapic.c). */
#pragma once

/* On the kernel's own page tables: when the local APIC is enabled, makes
 * LINT0 ExtINT again (and unmasks an NMI LINT1) so the 8259 PICs' IRQs reach
 * the CPU (Limine base revision 5+ leaves every LVT entry masked). Returns a
 * line saying what it did, NULL when there is no enabled local APIC. */
const char *lapic_restore_virtual_wire(void);
