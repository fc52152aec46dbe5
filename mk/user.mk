# mk/user.mk — the user programs (user/): static ELF64 executables linked at
# 0x400000 by user/user.ld, built with the kernel's compiler for ring 3, one
# per user/<name>.c: $(BUILD)/user/<name>.elf = user/crt0.S + the program +
# the project's libc ($(BUILD)/user/libc.a, from user/lib/*.c; headers in
# user/include, constants from kernel/uapi/abi.h).
#
# Programs may use x87 and SSE: the kernel saves their state on every switch
# (proc/sched.c; usertests' fpu_switch checks it). Freestanding, with no host
# header in reach (-nostdinc; only the compiler's own stddef.h, stdint.h,
# stdarg.h, stdbool.h): <stdio.h> is user/include/stdio.h or nothing.
# -fno-builtin and -fno-tree-loop-distribute-patterns keep GCC from turning
# the libc's own loops into calls to themselves. Every function and object
# in a section of its own, and the link drops what nothing uses
# (--gc-sections): a program carries only the libc it calls (each program is
# a boot module, kept in memory for the kernel's life).
#
# The ISO builders put $(BUILD)/user/*.elf on every ISO as boot modules
# (tools/mkiso-grub.sh, tools/mkiso-limine.sh: the programs next to the
# kernel they are given), named by file name: user/foo.c runs as "foo".
#
# `make ulib-test`: the portable part of the libc (string.c, printf.c,
# malloc.c, stdlib.c) compiled for the host, every symbol renamed ulib_*
# (objcopy --prefix-symbols, so it cannot clash with the host's libc), and
# checked by user/tests/ulib_test.c against the host's libc, with a fake
# mmap/munmap/write the test provides under the prefixed names.

USER_PROGS := $(patsubst user/%.c,%,$(wildcard user/*.c))
USER_ELFS  := $(patsubst %,$(BUILD)/user/%.elf,$(USER_PROGS))
ULIB_SRC   := $(wildcard user/lib/*.c)
ULIB_OBJ   := $(patsubst user/%.c,$(BUILD)/user/obj/%.o,$(ULIB_SRC))
# The compiler's own header folder is asked for when a recipe runs (the shell's
# $(...)), not while make reads this file: on a fresh machine the compiler is
# installed by deps-check, after the Makefile was read.
USER_INC   := -nostdinc -isystem $$($(CC) -print-file-name=include) -Iuser/include \
    -Ikernel/uapi -Iuser
USER_CFLAGS := -O2 -std=gnu11 -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
    -fno-builtin -fno-tree-loop-distribute-patterns \
    -fno-asynchronous-unwind-tables -ffunction-sections -fdata-sections -Wall -Wextra -Werror \
    $(USER_INC) -MMD -MP
USER_LDFLAGS := -nostdlib -static -no-pie -z max-page-size=0x1000 -z noexecstack \
    --build-id=none --gc-sections -T user/user.ld

STAMP_user-flags = $(CC) $(USER_CFLAGS) $(LD) $(USER_LDFLAGS)

.PHONY: user ulib-test
user: $(USER_ELFS)
kernel: $(USER_ELFS)
# The ISO builders take the programs from beside the kernel they are given.
$(BUILD)/kernel.elf: | $(USER_ELFS)

# Kept between runs (make would delete them as intermediates of the .elf).
.PRECIOUS: $(BUILD)/user/obj/%.o $(BUILD)/.stamp-user-flags $(BUILD)/.stamp-ulib-host-flags

$(BUILD)/user/obj/%.o: user/%.c $(BUILD)/.stamp-user-flags
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -c $< -o $@

$(BUILD)/user/obj/%.o: user/%.S $(BUILD)/.stamp-user-flags
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) -c $< -o $@

$(BUILD)/user/libc.a: $(ULIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/user/%.elf: $(BUILD)/user/obj/%.o $(BUILD)/user/obj/crt0.o $(BUILD)/user/libc.a user/user.ld
	$(LD) $(USER_LDFLAGS) $(BUILD)/user/obj/crt0.o $< $(BUILD)/user/libc.a -o $@

# ---- the host test of the libc ----------------------------------------------
ULIB_HOST_SRC := user/lib/string.c user/lib/printf.c user/lib/malloc.c user/lib/stdlib.c
ULIB_HOST_CFLAGS := -O1 -g -std=gnu11 -ffreestanding -fno-builtin -fno-stack-protector \
    -fno-tree-loop-distribute-patterns -Wall -Wextra -Werror $(USER_INC)
STAMP_ulib-host-flags = $(HOSTCC) $(ULIB_HOST_CFLAGS)

$(BUILD)/host/ulib/ulib.o: $(ULIB_HOST_SRC) $(wildcard user/include/*.h user/include/sys/*.h) \
    kernel/uapi/abi.h $(BUILD)/.stamp-ulib-host-flags
	@mkdir -p $(dir $@)
	$(HOSTCC) $(ULIB_HOST_CFLAGS) -c user/lib/string.c -o $(dir $@)string.o
	$(HOSTCC) $(ULIB_HOST_CFLAGS) -c user/lib/printf.c -o $(dir $@)printf.o
	$(HOSTCC) $(ULIB_HOST_CFLAGS) -c user/lib/malloc.c -o $(dir $@)malloc.o
	$(HOSTCC) $(ULIB_HOST_CFLAGS) -c user/lib/stdlib.c -o $(dir $@)stdlib.o
	$(LD) -r $(addprefix $(dir $@),string.o printf.o malloc.o stdlib.o) -o $@.tmp
	objcopy --prefix-symbols=ulib_ $@.tmp $@
	@rm -f $@.tmp

$(BUILD)/host/ulib/ulib_test: user/tests/ulib_test.c $(BUILD)/host/ulib/ulib.o | deps-check
	$(HOSTCC) $(HOSTCFLAGS) -std=gnu11 -Wall -Wextra -Werror -fsanitize=address,undefined \
	    -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Wno-format-truncation \
	    user/tests/ulib_test.c $(BUILD)/host/ulib/ulib.o -o $@

ulib-test: $(BUILD)/host/ulib/ulib_test
	ASAN_OPTIONS=detect_leaks=1 $<

-include $(wildcard $(BUILD)/user/obj/*.d $(BUILD)/user/obj/lib/*.d)
