# mk/debug.mk — what the debug configuration (DEBUG=1) adds to the kernel
# build: the undefined-behaviour sanitizer, reported by the kernel's own
# runtime (kernel/lib/ubsan.c; docs/debugging-build.md).
#
#   make debug-kernel   the DEBUG=1 kernel, in build/debug (or BUILD=...)
#   make debug-test     that kernel's self-tests booted in DEBUG_TEST_CONFIGS
#
# The checks: every -fsanitize=undefined check that means something in C on
# a freestanding kernel. Not vptr and return (C++ only), not enum (GCC 12
# checks enum loads in C++ only), not the float ones (the kernel has no
# floating point), not bounds-strict (it would flag trailing [1] arrays).
UBSAN_CHECK_LIST := shift integer-divide-by-zero unreachable vla-bound null \
    signed-integer-overflow bounds alignment object-size bool pointer-overflow \
    nonnull-attribute returns-nonnull-attribute builtin
debug_comma := ,
UBSAN_CHECKS := $(subst $(eval) ,$(debug_comma),$(strip $(UBSAN_CHECK_LIST)))

ifeq ($(DEBUG),1)
# Recoverable: the compiler calls the plain handlers, which return, so the
# runtime decides what a report does (continue, or panic in a test boot:
# lib/ubsan.h). Only unreachable stays fatal, as it must.
# SLAYER_UBSAN tells the code (lib/ubsan.h UBSAN_ENABLED) that it is checked.
KERNEL_CFLAGS += -fsanitize=$(UBSAN_CHECKS) -fsanitize-recover=undefined -DSLAYER_UBSAN=1
# The runtime is not instrumented: a failed check inside a handler would
# call the handler again.
$(BUILD)/kernel/lib/ubsan.c.o: KERNEL_CFLAGS += -fno-sanitize=all
endif

# The debug kernel's own folder: build/debug, or BUILD when given on the
# command line (make BUILD=/tmp/x debug-test builds and boots /tmp/x).
DEBUG_BUILD := $(if $(filter command line,$(origin BUILD)),$(BUILD),build/debug)
# A quick slice of the boot matrix (tests/qemu/run.sh names), one per
# firmware, at 128 MiB: the sanitized kernel is ~3x slower under TCG and the
# tests that walk all memory (frames, OOM) scale with it, so a 4 GiB cell
# alone would take most of the time budget of make test. The whole matrix:
# make debug-test DEBUG_TEST_CONFIGS='*' (patterns are run.sh's globs; a
# pattern selects from every cell, not only the make-test slice).
DEBUG_TEST_CONFIGS ?= grub-bios-128M grub-uefi-128M

.PHONY: debug-kernel debug-test
debug-kernel:
	$(MAKE) --no-print-directory DEBUG=1 BUILD=$(DEBUG_BUILD) $(DEBUG_BUILD)/kernel.elf

debug-test: deps-check debug-kernel
	LIMINE_DIR="$(LIMINE_DIR)" KERNEL=$(DEBUG_BUILD)/kernel.elf tests/qemu/run.sh \
	    $(foreach c,$(DEBUG_TEST_CONFIGS),'$(c)')
