# SlayerOS — top-level Makefile.
#   make            build/kernel.elf and build/slayeros.iso (GRUB, BIOS+UEFI)
#   make run        boot the GRUB ISO in QEMU (FIRMWARE=bios|uefi, BOOT=grub|limine, ACCEL=tcg|kvm, SMP=n)
#   make test       host tests, then the QEMU boot matrix
#   make debug      boot paused, waiting for gdb (tools/gdbinit connects)
# With LIMINE_DIR=<Limine binary release, host tool built> also build/slayeros-limine.iso.

# ---- user-overridable -------------------------------------------------------
CC        := $(if $(filter default,$(origin CC)),gcc,$(CC))
HOSTCC    ?= gcc
LD        ?= ld
CFLAGS    ?= -O2 -g
HOSTCFLAGS ?= -O1 -g
LIMINE_DIR ?=
ACCEL     ?= tcg
FIRMWARE  ?= bios
BOOT      ?= grub
MEM       ?= 256M
SMP       ?= 2
CMDLINE   ?=
# DEBUG=1: the debug configuration (-DSLAYER_DEBUG=1, plus what mk/debug.mk
# adds: UBSan, heap redzones), built in build/debug unless BUILD says otherwise.
DEBUG     ?= 0

BUILD := $(if $(filter 1,$(DEBUG)),build/debug,build)
.DEFAULT_GOAL := all

# ---- kernel -----------------------------------------------------------------
KERNEL_CFLAGS := $(CFLAGS) -std=gnu11 -ffreestanding -fno-pic -fno-pie -mcmodel=kernel \
    -mno-red-zone -mno-sse -mno-sse2 -mno-mmx -mno-80387 -fno-omit-frame-pointer \
    -mno-omit-leaf-frame-pointer -fstack-protector-strong -mstack-protector-guard=global -fno-builtin -fno-strict-aliasing \
    -Wall -Wextra -Werror -Wno-format-zero-length -Ikernel -MMD -MP \
    $(if $(filter 1,$(DEBUG)),-DSLAYER_DEBUG=1)
KERNEL_ASFLAGS := -Ikernel -MMD -MP
KERNEL_LDFLAGS := -nostdlib -static -z max-page-size=0x1000 -z noexecstack \
    -T kernel/arch/x86_64/linker.ld

# libgcc supplies helpers GCC may call (e.g. __popcountdi2); it is freestanding.
# Asked for when linking, not when the Makefile is read: on a fresh machine
# the compiler is installed by deps-check, after parsing.
LIBGCC = $$($(CC) -print-libgcc-file-name)

KERNEL_C   := $(shell find kernel -name '*.c' | sort)
KERNEL_S   := $(shell find kernel -name '*.S' | sort)
KERNEL_OBJ := $(patsubst %,$(BUILD)/%.o,$(KERNEL_C) $(KERNEL_S))

# The portable part: compiled unchanged for the host (tests, fuzzers, benches).
# Files that only make sense on the CPU itself are listed here; PORTABLE_EXTRA
# names the files in those folders that are portable after all.
PORTABLE_EXTRA := kernel/dev/font.c kernel/monitor/parse.c
KERNEL_ONLY := $(filter-out $(PORTABLE_EXTRA),$(wildcard kernel/main.c kernel/arch/x86_64/*.c \
    kernel/dev/*.c kernel/monitor/*.c kernel/test/*.c kernel/bench/*.c kernel/proc/*.c \
    kernel/lib/string.c kernel/lib/panic.c kernel/lib/backtrace.c \
    kernel/lib/ubsan.c kernel/lib/stack_protector.c \
    kernel/boot/limine_requests.c kernel/mm/mapper_kernel.c))
HOST_SRC := $(filter-out $(KERNEL_ONLY),$(KERNEL_C))
HOST_TEST_SRC := $(wildcard tests/host/*.c)

# Feature rules live in mk/*.mk (font, screenshot, bench), one file each; they
# may add objects to KERNEL_OBJ (e.g. the console font) before the link rule.
include $(wildcard mk/*.mk)

.PHONY: all kernel iso limine-iso run debug test build-test host-test qemu-test clean compile_commands.json deps deps-check
all: kernel iso $(if $(LIMINE_DIR),limine-iso)

kernel: $(BUILD)/kernel.elf
iso: $(BUILD)/slayeros.iso
limine-iso: $(BUILD)/slayeros-limine.iso

# Settings stamps: $(BUILD)/.stamp-NAME holds the value of STAMP_NAME and is
# rewritten only when that value changes, so whatever depends on it is rebuilt
# exactly when the user changes the variables behind it (CFLAGS, CMDLINE,
# LIMINE_DIR, FONT, ...), whatever was built before. Every build step also
# waits for deps-check (order-only): on a fresh machine the packages it
# installs must be there before the first compiler or tool runs.
.PHONY: FORCE
.SECONDARY: $(BUILD)/.stamp-kernel-flags
$(BUILD)/.stamp-%: FORCE | deps-check
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(subst ','\'',$(STAMP_$*))' >$@.new
	@cmp -s $@.new $@ && rm -f $@.new || mv -f $@.new $@

# Kernel objects depend on the flags they were built with: changing CFLAGS,
# DEBUG or the compiler rebuilds them.
STAMP_kernel-flags = $(CC) $(KERNEL_CFLAGS) $(KERNEL_ASFLAGS)
KERNEL_FLAGS_STAMP := $(BUILD)/.stamp-kernel-flags
# The ISOs depend on the command line they carry, and the Limine ISO on which
# Limine release built it (its path and the checksum of its BIOS stage).
STAMP_grub-iso = $(CMDLINE)
STAMP_limine-iso = $(CMDLINE)|$(LIMINE_DIR)|$(shell cksum <'$(LIMINE_DIR)/limine-bios.sys' 2>/dev/null)

$(BUILD)/%.c.o: %.c $(KERNEL_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(KERNEL_CFLAGS) -c $< -o $@

$(BUILD)/%.S.o: %.S $(KERNEL_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(KERNEL_ASFLAGS) -c $< -o $@

$(BUILD)/kernel.elf: $(KERNEL_OBJ) kernel/arch/x86_64/linker.ld
	$(LD) $(KERNEL_LDFLAGS) $(KERNEL_OBJ) $(LIBGCC) -o $@

# Every user program (mk/user.mk) goes on the ISOs as a boot module.
$(BUILD)/slayeros.iso: $(BUILD)/kernel.elf $(USER_ELFS) tools/mkiso-grub.sh $(BUILD)/.stamp-grub-iso
	tools/mkiso-grub.sh $< $@ "$(CMDLINE)" $(USER_ELFS)

$(BUILD)/slayeros-limine.iso: $(BUILD)/kernel.elf $(USER_ELFS) tools/mkiso-limine.sh $(BUILD)/.stamp-limine-iso
	@test -n "$(LIMINE_DIR)" || { echo "limine-iso: set LIMINE_DIR to a Limine binary release"; exit 1; }
	tools/mkiso-limine.sh $< $@ "$(LIMINE_DIR)" "$(CMDLINE)" $(USER_ELFS)

# ---- running ------------------------------------------------------------------
RUN_ISO = $(if $(filter limine,$(BOOT)),$(BUILD)/slayeros-limine.iso,$(BUILD)/slayeros.iso)

run: deps-check $(RUN_ISO)
	tools/qemu.sh --iso $(RUN_ISO) --firmware $(FIRMWARE) --accel $(ACCEL) --mem $(MEM) --smp $(SMP) --interactive

debug: deps-check $(RUN_ISO)
	tools/qemu.sh --iso $(RUN_ISO) --firmware $(FIRMWARE) --accel tcg --mem $(MEM) --smp $(SMP) --interactive --gdb

# ---- tests --------------------------------------------------------------------
HOST_FLAGS := $(HOSTCFLAGS) -std=gnu11 -Wall -Wextra -Werror -Ikernel -Itests/host \
    -DSLAYER_HOST -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -fno-omit-frame-pointer -Wno-format-zero-length

$(BUILD)/host/tests: $(HOST_TEST_SRC) $(HOST_SRC) $(wildcard tests/host/*.h) $(shell find kernel -name '*.h') | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) $(HOST_FLAGS) $(HOST_TEST_SRC) $(HOST_SRC) -o $@ -lcriterion

# SLAYER_FONT: the font the kernel links (mk/font.mk), which a host test parses.
host-test: deps-check $(BUILD)/host/tests $(FONT_OBJ)
	SLAYER_FONT=$(BUILD)/font/font.psf ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(BUILD)/host/tests --jobs 2

# The boot matrix, then every other QEMU scenario (tests/qemu/test_*.sh).
qemu-test: deps-check $(BUILD)/kernel.elf $(USER_ELFS)
	LIMINE_DIR="$(LIMINE_DIR)" KERNEL=$(BUILD)/kernel.elf tests/qemu/run.sh
	@for t in $(wildcard tests/qemu/test_*.sh); do echo "== $$t"; KERNEL=$(BUILD)/kernel.elf $$t || exit 1; done

# Every setting the README offers takes effect whatever was built before.
build-test: deps-check
	tests/make/test_settings.sh $(BUILD)

test: deps-check build-test host-test ulib-test host-test-debug tsan-test fuzz-smoke qemu-test debug-test bench-smoke bench-programs-smoke

# Installs missing Debian packages (a fast no-op when all are there), so that
# `make test` and `make run` work on a fresh machine; `make deps` is the same,
# `tools/deps.sh --check` only reports.
deps-check:
	@tools/deps.sh

deps:
	tools/deps.sh

# ---- tooling ------------------------------------------------------------------
compile_commands.json:
	$(MAKE) clean
	bear -- $(MAKE) kernel $(BUILD)/host/tests

clean:
	rm -rf $(BUILD)

-include $(KERNEL_OBJ:.o=.d)
