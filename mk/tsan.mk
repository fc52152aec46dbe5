# mk/tsan.mk — ThreadSanitizer tests (issue 13; tests/tsan/).
#
#   make tsan-test   build every tests/tsan/*.c as its own program and run each
#   make tsan-bins   build them only
#
# Each tests/tsan/<name>.c is a standalone program (its own main(): 0 on
# success, non-zero with a message otherwise) in which threads stand for CPUs
# (each sets host_cpu_index). It is linked with the portable kernel sources
# (HOST_SRC) and the host support layer (tests/host/support.c), all compiled
# with -fsanitize=thread (no ASan: the two do not mix). A program fails the
# run when it exits non-zero or TSan reports anything: halt_on_error makes the
# first report end the program with status 66. New files in tests/tsan/ are
# picked up by the wildcard. TSan's runtime (libtsan2) comes with gcc.

TSAN_CC ?= gcc
TSAN_DIR := $(BUILD)/tsan
TSAN_CFLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Wno-format-zero-length \
    -Ikernel -Itests/host -DSLAYER_HOST -fsanitize=thread -fno-omit-frame-pointer -MMD -MP
TSAN_SRC := $(wildcard tests/tsan/*.c)
TSAN_BINS := $(patsubst tests/tsan/%.c,$(TSAN_DIR)/%,$(TSAN_SRC))
# The kernel sources and the support layer are compiled once for every program.
TSAN_COMMON_OBJ := $(patsubst %.c,$(TSAN_DIR)/obj/%.o,$(HOST_SRC) tests/host/support.c)
TSAN_OPTIONS_RUN := halt_on_error=1 exitcode=66 second_deadlock_stack=1

$(TSAN_DIR)/obj/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	$(TSAN_CC) $(TSAN_CFLAGS) -c $< -o $@

$(TSAN_BINS): $(TSAN_DIR)/%: $(TSAN_DIR)/obj/tests/tsan/%.o $(TSAN_COMMON_OBJ)
	$(TSAN_CC) -fsanitize=thread $^ -o $@ -lpthread

.PHONY: tsan-test tsan-bins
tsan-bins: $(TSAN_BINS)

# Every program runs even when one fails; the summary names the failures.
tsan-test: deps-check $(TSAN_BINS)
	@fail=; for t in $(TSAN_BINS); do \
	    echo "== $$t"; \
	    TSAN_OPTIONS="$(TSAN_OPTIONS_RUN)" $$t || { echo "tsan: $$t FAILED (status $$?)"; fail="$$fail $$(basename $$t)"; }; \
	done; \
	if [ -n "$$fail" ]; then echo "tsan: failed:$$fail"; exit 1; fi; \
	echo "tsan: $(words $(TSAN_BINS)) programs, no race reported"

-include $(TSAN_COMMON_OBJ:.o=.d) $(patsubst %,$(TSAN_DIR)/obj/tests/tsan/%.d,$(notdir $(basename $(TSAN_SRC))))
