# Benchmarks (issue 5; docs/performance.md). Not part of `make test`.
#   make bench        host benches + callgrind counts + the in-kernel bench under
#                     TCG at 128 MiB, 4 GiB and 256 GiB; prints the tables and
#                     writes docs/performance.md (about 10 minutes on 2 cores)
#   make bench-smoke  every bench binary once on tiny sizes (seconds)
# The host binaries build the kernel's own mm/ sources (HOST_SRC) with -O2,
# without sanitizers, with HEAP_POISON=0. jemalloc replaces malloc when linked
# (Debian builds it without a prefix), so every heap allocator gets a binary
# of its own: build/bench/heap-<allocator>.

BENCH_DIR := $(BUILD)/bench
BENCH_CFLAGS := -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wno-format-zero-length \
    -fno-omit-frame-pointer -Ikernel -Itests/host -Ibench -DSLAYER_HOST -DHEAP_POISON=0
BENCH_COMMON := bench/common.c bench/bench.h
BENCH_KERNEL_DEPS := $(HOST_SRC) tests/host/support.c $(shell find kernel -name '*.h')
BENCH_HEAPS := slayer naive glibc mimalloc jemalloc
# bench/threads.c: the heaps that may be called from several threads at once.
BENCH_THREAD_HEAPS := slayer glibc mimalloc jemalloc
BENCH_BINS := $(addprefix $(BENCH_DIR)/heap-,$(BENCH_HEAPS)) $(BENCH_DIR)/mm \
    $(addprefix $(BENCH_DIR)/threads-,$(BENCH_THREAD_HEAPS)) $(BENCH_DIR)/uvm $(BENCH_DIR)/uproc

heap_libs_slayer :=
heap_libs_naive :=
heap_libs_glibc :=
heap_libs_mimalloc := -lmimalloc
heap_libs_jemalloc := -ljemalloc
heap_srcs_slayer := $(HOST_SRC) tests/host/support.c
heap_srcs_naive := $(HOST_SRC) tests/host/support.c bench/naive_heap.c

$(BENCH_DIR)/heap-%: bench/heap.c bench/alloc_%.c bench/naive_heap.c bench/naive_heap.h $(BENCH_COMMON) $(BENCH_KERNEL_DEPS) | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) $(BENCH_CFLAGS) '-DHEAP_ADAPTER="alloc_$*.c"' bench/heap.c bench/common.c \
	    $(heap_srcs_$*) -o $@ $(heap_libs_$*)

$(BENCH_DIR)/threads-%: bench/threads.c bench/alloc_%.c $(BENCH_COMMON) $(BENCH_KERNEL_DEPS) | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) $(BENCH_CFLAGS) '-DHEAP_ADAPTER="alloc_$*.c"' bench/threads.c bench/common.c \
	    $(heap_srcs_$*) -o $@ $(heap_libs_$*) -lpthread

$(BENCH_DIR)/mm: bench/mm.c bench/frame_peers.c bench/frame_peers.h $(BENCH_COMMON) $(BENCH_KERNEL_DEPS) | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) $(BENCH_CFLAGS) bench/mm.c bench/frame_peers.c bench/common.c $(HOST_SRC) \
	    tests/host/support.c -o $@

# Linux's page faults, mmap and fork: the reference for kernel/bench/kbench_vm.c.
$(BENCH_DIR)/uvm: bench/uvm.c $(BENCH_COMMON) | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) $(BENCH_CFLAGS) bench/uvm.c bench/common.c -o $@

# Linux's getpid, fork, exec and yield: the reference for kernel/bench/kbench_proc.c.
# Static, so that the exec it times loads no dynamic linker.
$(BENCH_DIR)/uproc: bench/uproc.c $(BENCH_COMMON) | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) $(BENCH_CFLAGS) -static bench/uproc.c bench/common.c -o $@

# The kernel for the in-kernel bench: the same sources built into their own
# folder with HEAP_POISON=0 (a recursive make with BUILD pointing there), on
# an ISO whose command line is `bench`.
KBENCH_BUILD := $(BENCH_DIR)/kbuild
.PHONY: bench bench-bins bench-smoke bench-kernel FORCE
bench-kernel:
	$(MAKE) --no-print-directory BUILD=$(KBENCH_BUILD) \
	    CFLAGS="$(CFLAGS) -DHEAP_POISON=0" $(KBENCH_BUILD)/kernel.elf
	tools/mkiso-grub.sh $(KBENCH_BUILD)/kernel.elf $(BENCH_DIR)/bench.iso "bench"

bench-bins: $(BENCH_BINS)

bench: deps-check bench-bins bench-kernel
	python3 bench/run.py --dir $(BENCH_DIR) --iso $(BENCH_DIR)/bench.iso --out docs/performance.md

bench-smoke: bench-bins
	@for b in $(BENCH_BINS); do $$b smoke >/dev/null || { echo "bench-smoke: $$b failed"; exit 1; }; done
	@for b in $(BENCH_HEAPS); do $(BENCH_DIR)/heap-$$b frag >/dev/null || exit 1; done
	@echo "bench-smoke: $(words $(BENCH_BINS)) binaries ran"

# ---- make bench-programs (bench/programs/): real programs over the heap ----------
#   make bench-programs        python3, sqlite3, xz, gcc, larson, ... with glibc,
#                              SlayerOS (LD_PRELOAD of libslayer-malloc.so),
#                              mimalloc and jemalloc; outputs checked against
#                              glibc's; writes docs/performance.md's section
#   make bench-programs-smoke  the shim's test, then one tiny run of each program
#                              with each allocator, outputs checked (no timing)
# The shim: the kernel heap (HOST_SRC) built position-independent with
# HEAP_POISON=0 and every misuse check on; only the malloc family exported.
# initial-exec TLS: a preloaded library's thread-locals live in static TLS,
# and the general-dynamic model's __tls_get_addr may itself call malloc.
SHIM_CFLAGS := -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wno-format-zero-length \
    -fPIC -fvisibility=hidden -ftls-model=initial-exec -fno-semantic-interposition \
    -ffunction-sections -fdata-sections -flto=auto \
    -Ikernel -Itests/host -DSLAYER_HOST -DHEAP_POISON=0
SHIM_SO := $(BENCH_DIR)/libslayer-malloc.so
PROGRAMS_BINS := $(SHIM_SO) $(BENCH_DIR)/larson $(BENCH_DIR)/shim_test $(BENCH_DIR)/runprog

$(SHIM_SO): bench/programs/shim.c $(BENCH_KERNEL_DEPS) mk/bench.mk | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) $(SHIM_CFLAGS) -shared -Wl,-Bsymbolic -Wl,--gc-sections -Wl,-z,now \
	    bench/programs/shim.c $(HOST_SRC) tests/host/support.c -o $@ -lpthread

$(BENCH_DIR)/larson: bench/programs/larson.c | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) -O2 -g -std=gnu11 -Wall -Wextra -Werror bench/programs/larson.c -o $@ -lpthread

$(BENCH_DIR)/runprog: bench/programs/runprog.c | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) -O2 -g -std=gnu11 -Wall -Wextra -Werror bench/programs/runprog.c -o $@

$(BENCH_DIR)/shim_test: bench/programs/shim_test.c | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) -O2 -g -std=gnu11 -Wall -Wextra -Werror -fno-builtin bench/programs/shim_test.c -o $@ -lpthread

.PHONY: bench-programs bench-programs-smoke bench-programs-bins
bench-programs-bins: $(PROGRAMS_BINS)

bench-programs: deps-check bench-programs-bins
	python3 bench/programs/run.py --dir $(BENCH_DIR) --out docs/performance.md

bench-programs-smoke: deps-check bench-programs-bins
	LD_PRELOAD=$(abspath $(SHIM_SO)) $(BENCH_DIR)/shim_test
	python3 bench/programs/run.py --dir $(BENCH_DIR) --smoke
