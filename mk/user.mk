# mk/user.mk — the user programs (user/): static ELF64 executables linked at
# 0x400000 by user/user.ld, built with the kernel's compiler for ring 3, one
# per user/<name>.c plus user/crt0.S: $(BUILD)/user/<name>.elf.
#
# General registers only (-mgeneral-regs-only): the kernel does not enable
# SSE state for user programs yet, and a stray SSE instruction would raise
# #UD, which is how a program ends for now (no system calls yet). No libc:
# -ffreestanding, and -fno-tree-loop-distribute-patterns so that GCC does not
# turn loops into memset/memcpy calls that nothing provides.
#
# The ISO builders put $(BUILD)/user/*.elf on every ISO as boot modules
# (tools/mkiso-grub.sh, tools/mkiso-limine.sh: the programs next to the
# kernel they are given), so building the kernel builds them too.

USER_PROGS := $(patsubst user/%.c,%,$(wildcard user/*.c))
USER_ELFS  := $(patsubst %,$(BUILD)/user/%.elf,$(USER_PROGS))
USER_CFLAGS := -O2 -std=gnu11 -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
    -mgeneral-regs-only -fno-builtin -fno-tree-loop-distribute-patterns \
    -fno-asynchronous-unwind-tables -Wall -Wextra -Werror -Iuser -MMD -MP
USER_LDFLAGS := -nostdlib -static -no-pie -z max-page-size=0x1000 -z noexecstack \
    --build-id=none -T user/user.ld

STAMP_user-flags = $(CC) $(USER_CFLAGS) $(LD) $(USER_LDFLAGS)

.PHONY: user
user: $(USER_ELFS)
kernel: $(USER_ELFS)
# The ISO builders take the programs from beside the kernel they are given.
$(BUILD)/kernel.elf: | $(USER_ELFS)

$(BUILD)/user/obj/%.o: user/%.c $(BUILD)/.stamp-user-flags
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -c $< -o $@

$(BUILD)/user/obj/%.o: user/%.S $(BUILD)/.stamp-user-flags
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -c $< -o $@

$(BUILD)/user/%.elf: $(BUILD)/user/obj/%.o $(BUILD)/user/obj/crt0.o user/user.ld
	$(LD) $(USER_LDFLAGS) $(BUILD)/user/obj/crt0.o $< -o $@

-include $(wildcard $(BUILD)/user/obj/*.d)
