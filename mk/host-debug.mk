# mk/host-debug.mk — the host tests of the debug configuration: the same
# Criterion suites as `make host-test`, built with -DSLAYER_DEBUG=1 so that
# the portable kernel code takes its debug paths (heap redzones: HEAP_REDZONES;
# frame poisoning: MM_POISON), under ASan and UBSan like the default binary.
#
#   make host-test-debug   build $(BUILD)/host-debug/tests and run it

HOST_DEBUG_BIN := $(BUILD)/host-debug/tests

$(HOST_DEBUG_BIN): $(HOST_TEST_SRC) $(HOST_SRC) $(wildcard tests/host/*.h) $(shell find kernel -name '*.h') | deps-check
	@mkdir -p $(dir $@)
	$(HOSTCC) $(HOST_FLAGS) -DSLAYER_DEBUG=1 $(HOST_TEST_SRC) $(HOST_SRC) -o $@ -lcriterion

.PHONY: host-test-debug
host-test-debug: deps-check $(HOST_DEBUG_BIN) $(FONT_OBJ)
	SLAYER_FONT=$(BUILD)/font/font.psf ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(HOST_DEBUG_BIN) --jobs 2
