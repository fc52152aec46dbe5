# The whole QEMU boot matrix (issue 6; docs/testing.md, "The boot matrix").
#   make matrix   every cell of tests/qemu/run.sh (QEMU_MATRIX=full): each
#                 loader/firmware pair across RAM sizes, CPU models, CPU
#                 counts, machine types and with or without VGA, plus the
#                 expected refusals; ends with a table (cell, result,
#                 seconds). About 3 minutes under TCG on 2 cores with
#                 LIMINE_DIR set. `make qemu-test` (part of `make test`)
#                 runs only the cells marked `test`.

.PHONY: matrix
matrix: deps-check $(BUILD)/kernel.elf
	QEMU_MATRIX=full LIMINE_DIR="$(LIMINE_DIR)" KERNEL=$(BUILD)/kernel.elf tests/qemu/run.sh
