# libFuzzer targets (issue 6; tests/fuzz/). `make test` runs fuzz-smoke.
#   make fuzz          every target for FUZZ_SECONDS (default 180) each, from
#                      the kept corpus (tests/fuzz/corpus/<target>), the seeds
#                      and the regressions, in FUZZ_JOBS processes at once
#                      (default 1; libFuzzer -fork: one per core); new inputs
#                      go to build/fuzz/corpus/<target>; prints the executions
#                      per target and a summary line
#   make fuzz-merge    minimizes the kept corpus and build/fuzz/corpus into
#                      tests/fuzz/corpus/<target> (libFuzzer -merge=1)
#   make fuzz-smoke    replays tests/fuzz/regressions/, the kept corpus and the
#                      generated seeds, then fuzzes each target
#                      FUZZ_SMOKE_SECONDS (default 3)
#   make fuzz-coverage line coverage of kernel/mm, boot and exec reached by
#                      the kept corpus, regressions and seeds (llvm-cov)
#   make fuzz-bins     builds the targets and the seeds only
# Both runs stop with a non-zero status on the first crash and print the path
# of the crashing input (build/fuzz/crashes/<target>/). Replay one input with
# build/fuzz/fuzz_<target> <file>; keep a fixed crash as a regression file in
# tests/fuzz/regressions/<target>/.
#
# The targets are built by clang (libFuzzer, ASan, UBSan) from the same
# portable kernel sources as the host tests (HOST_SRC) plus their host support
# layer (tests/host/support.c). The seeds are written at build time by
# tests/fuzz/seedgen.c into build/fuzz/seeds/<target>.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 180
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_JOBS ?= 1
FUZZ_TARGETS := memmap multiboot2 limine frame paging heap acpi vm_region vm elf mapper

FUZZ_DIR := $(BUILD)/fuzz
FUZZ_CFLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Wno-format-zero-length \
    -Ikernel -Itests/host -Itests/fuzz -DSLAYER_HOST -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -fno-omit-frame-pointer -MMD -MP
# The kernel and support objects are built once (coverage instrumentation
# only; the libFuzzer runtime is linked into each target).
FUZZ_COMMON_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(HOST_SRC) tests/host/support.c \
    tests/fuzz/fuzz.c)
FUZZ_BINS := $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))
FUZZ_SEEDS := $(FUZZ_DIR)/seeds/.done
FUZZ_TARGET_OBJ := $(patsubst %,$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o,$(FUZZ_TARGETS))
# Objects are kept between builds (make would delete them as intermediates).
.SECONDARY: $(FUZZ_COMMON_OBJ) $(FUZZ_TARGET_OBJ)

# The allocators' sources without libFuzzer's comparison hooks (trace-cmp):
# their loops (bitmap and table walks, poison scans, the consistency checks)
# compare at every step, and a hook call per step was most of the allocator
# targets' time. They keep their edge counters, so the `cov` figure counts the
# same edges; the hooks only help the fuzzer guess values that input bytes
# are compared with directly, and here the harness decodes every value
# (sizes, addresses, counts) before the kernel sees it. Measured at equal
# time: the same cov, 1.5-2x the executions (docs/testing.md). The same for
# the allocator targets' harnesses (their models' loops and FUZZ_CHECKs), the
# host support layer and printf.c: it formats log lines and panic messages
# (every refused free), comparing format characters, never input bytes.
FUZZ_NO_CMP_SRC := kernel/lib/printf.c kernel/mm/frame.c kernel/mm/paging.c \
    kernel/mm/pagewalk.c kernel/mm/vm_region.c \
    kernel/mm/vm.c kernel/mm/frameref.c \
    $(wildcard kernel/mm/heap*.c) \
    $(patsubst %,tests/fuzz/fuzz_%.c,frame paging heap vm_region vm mapper) tests/host/support.c
$(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_NO_CMP_SRC)): FUZZ_SRC_FLAGS := -fno-sanitize-coverage=trace-cmp

$(FUZZ_DIR)/obj/%.o: %.c mk/fuzz.mk | deps-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SRC_FLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_COMMON_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $^ -o $@

# The seed generator is an ordinary host program (no fuzzer runtime).
$(FUZZ_DIR)/seedgen: tests/fuzz/seedgen.c $(shell find kernel -name '*.h') | deps-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -O1 -g -std=gnu11 -Wall -Wextra -Werror -Ikernel -DSLAYER_HOST $< -o $@

$(FUZZ_SEEDS): $(FUZZ_DIR)/seedgen
	rm -rf $(FUZZ_DIR)/seeds
	$(FUZZ_DIR)/seedgen $(FUZZ_DIR)/seeds
	@touch $@

# ---- coverage (make fuzz-coverage) ---------------------------------------------
# The same harnesses and kernel sources built by clang with source-based
# coverage, no sanitizers and no libFuzzer: tests/fuzz/replay.c runs every
# kept input once (tests/fuzz/coverage.sh), and llvm-cov reports the lines of
# kernel/mm, kernel/boot and kernel/exec they reach.
FUZZ_COV_DIR := $(BUILD)/fuzz-cov
FUZZ_COV_CFLAGS := -O0 -g -std=gnu11 -Wall -Wextra -Werror -Wno-format-zero-length \
    -Ikernel -Itests/host -Itests/fuzz -DSLAYER_HOST -fprofile-instr-generate \
    -fcoverage-mapping -MMD -MP
FUZZ_COV_COMMON_OBJ := $(patsubst %.c,$(FUZZ_COV_DIR)/obj/%.o,$(HOST_SRC) tests/host/support.c \
    tests/fuzz/fuzz.c tests/fuzz/replay.c)
FUZZ_COV_TARGET_OBJ := $(patsubst %,$(FUZZ_COV_DIR)/obj/tests/fuzz/fuzz_%.o,$(FUZZ_TARGETS))
FUZZ_COV_BINS := $(addprefix $(FUZZ_COV_DIR)/fuzz_,$(FUZZ_TARGETS))
.SECONDARY: $(FUZZ_COV_COMMON_OBJ) $(FUZZ_COV_TARGET_OBJ)

$(FUZZ_COV_DIR)/obj/%.o: %.c mk/fuzz.mk | deps-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_COV_CFLAGS) -c $< -o $@

$(FUZZ_COV_DIR)/fuzz_%: $(FUZZ_COV_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_COV_COMMON_OBJ)
	$(FUZZ_CC) $(FUZZ_COV_CFLAGS) $^ -o $@

.PHONY: fuzz-coverage
fuzz-coverage: $(FUZZ_COV_BINS) $(FUZZ_SEEDS)
	tests/fuzz/coverage.sh --dir $(FUZZ_COV_DIR) --build $(FUZZ_DIR) $(FUZZ_TARGETS)

.PHONY: fuzz fuzz-smoke fuzz-bins
fuzz-bins: $(FUZZ_BINS) $(FUZZ_SEEDS)

fuzz: deps-check fuzz-bins
	tests/fuzz/run.sh --dir $(FUZZ_DIR) --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz-smoke: fuzz-bins
	@tests/fuzz/run.sh --smoke --dir $(FUZZ_DIR) --seconds $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

.PHONY: fuzz-merge
fuzz-merge: fuzz-bins
	tests/fuzz/run.sh --merge --dir $(FUZZ_DIR) $(FUZZ_TARGETS)

-include $(FUZZ_COMMON_OBJ:.o=.d) $(FUZZ_TARGET_OBJ:.o=.d)
-include $(FUZZ_COV_COMMON_OBJ:.o=.d) $(FUZZ_COV_TARGET_OBJ:.o=.d)
