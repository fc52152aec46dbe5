/* Ring-3 excursions in a user address space (mm/vm.h): the small programs of
 * test_vm_user.S mapped into a space and run with ktest_expect_user_fault,
 * their page faults going through the real handler. Shared by the
 * address-space self-tests (test_vm.c), the monitor's demo spaces
 * (`vmdemo`) and the in-kernel bench (kbench_vm.c).
 *
 * Every space used here has three regions of its own: the program (an image
 * region, r-x, at UPROG_VA), its parameters (an image region, r--, one page
 * at UPARAM_VA, showing uprog_params) and a stack (USTACK_PAGES pages below
 * USTACK_TOP, growing down to 64 pages below it). Not reentrant: one
 * excursion at a time, on the calling CPU, which must not be in interrupt
 * context. */
#pragma once

#include "lib/types.h"
#include "mm/vm.h"

/* Where the excursions' pieces live in every space made by uprog_space_new. */
#define UPROG_VA 0x400000ULL  /* the program (image, r-x) */
#define UPARAM_VA 0x500000ULL /* its parameters (image, r--); test_vm_user.S knows it */
#define USTACK_TOP 0x7fff00000000ULL
#define USTACK_PAGES 4

/* The programs (test_vm_user.S): [prog, prog_end) each. */
extern const uint8_t uprog_touch[], uprog_touch_end[], uprog_read[], uprog_read_end[],
    uprog_exec[], uprog_exec_end[], uprog_stack[], uprog_stack_end[];

/* The parameter page the programs read (test_vm_user.S): touch writes the
 * byte `value` at base, base + stride, ... `count` times (count > 0); read
 * reads them; exec jumps to base; stack moves its stack down a page `count`
 * times. */
struct uparams {
    uint64_t base, count, stride, value;
};

/* The parameters of the current run, in the kernel image: the parameter
 * region's image. Its address is a kernel-half address ring 3 must not reach. */
extern struct uparams uprog_params;

/* How a run ended. */
enum uprog_end {
    UPROG_EXIT,   /* the program reached its ud2: a normal end */
    UPROG_KILLED, /* a ring-3 page fault the space could not resolve (reported) */
    UPROG_OTHER,  /* anything else: no program region could be mapped, another exception */
};

/* A space named `name` with the parameter and stack regions (the program
 * region comes with the first run): NULL when out of memory. */
struct vm_space *uprog_space_new(const char *name);

/* Runs program [prog, end) in vs with parameters p on this CPU, with vs
 * loaded for the run and kernel_as alone afterwards, interrupts off in ring
 * 3. *cr2 (if non-NULL) gets the last fault's address. The program region is
 * mapped anew only when it holds another program, and a resident parameter
 * page gets p written into its frame, so a run needs no new frame once the
 * same program has run (the out-of-memory test relies on that). */
enum uprog_end uprog_run(struct vm_space *vs, const uint8_t *prog, const uint8_t *end,
                         struct uparams p, uint64_t *cr2);

/* What the memory counts were when a test began: free frames, page tables,
 * copy-on-write shared frames, reference-count bytes, live spaces. */
struct uprog_baseline {
    uint64_t free_frames, tables, shared, ref_bytes, spaces;
};
/* Records the counts (frameref's directory made first, the heap's spare
 * pages and the CPUs' frame caches given back, so that none is a change). */
void uprog_baseline_take(struct uprog_baseline *b);
/* Fails the running test (KT_EXPECT) for every count not back where
 * uprog_baseline_take found it. */
void uprog_baseline_expect(const struct uprog_baseline *b);
/* Copies n bytes at user address va of vs into dst through its page tables,
 * page by page: false when a page of the range is not mapped. */
bool uprog_peek(struct vm_space *vs, vaddr_t va, void *dst, uint64_t n);
