# mk/screenshot.mk — `make screenshot`: boot the GRUB ISO headless, type a few
# monitor commands on serial, save the screen as build/screenshot.png
# (tools/screenshot.sh; docs/console.md). SCREENSHOT_COMMANDS and FIRMWARE
# choose what is typed and which firmware boots.

SCREENSHOT_COMMANDS ?= version;mem;heap

.PHONY: screenshot
screenshot: deps-check $(BUILD)/slayeros.iso
	tools/screenshot.sh --iso $(BUILD)/slayeros.iso --firmware $(FIRMWARE) --mem $(MEM) \
	    --commands "$(SCREENSHOT_COMMANDS)" --png $(BUILD)/screenshot.png
