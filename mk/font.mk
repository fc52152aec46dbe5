# mk/font.mk — the console font, taken at build time from Debian's
# console-setup-linux package (installed by tools/deps.sh) and linked into the
# kernel as a read-only binary blob: console_font_start .. console_font_end
# (kernel/dev/console.c). Nothing of the font is pasted into the source.
#
#   FONT      font name under FONT_DIR, without .psf.gz (default
#             Uni2-Terminus18x10: PSF2, 10x18 pixels, 512 glyphs with a
#             Unicode table; the 8-pixel-wide ones such as Uni2-Terminus16
#             are PSF1, which the parser reads too)
#   FONT_DIR  default /usr/share/consolefonts

FONT     ?= Uni2-Terminus18x10
FONT_DIR ?= /usr/share/consolefonts
FONT_SRC := $(FONT_DIR)/$(FONT).psf.gz
FONT_PSF := $(BUILD)/font/$(FONT).psf
FONT_OBJ := $(BUILD)/font/font.o

# A missing font gets a message instead of make's "no rule to make target".
$(FONT_PSF): $(if $(wildcard $(FONT_SRC)),$(FONT_SRC),font-missing)
	@mkdir -p $(dir $@)
	gzip -dc $< >$@.tmp
	mv $@.tmp $@

.PHONY: font-missing
font-missing:
	@echo "font: $(FONT_SRC) not found; run tools/deps.sh (package console-setup-linux)" >&2
	@exit 1

# objcopy names the symbols after its input file: copy to a fixed name first,
# so that the symbols do not depend on FONT.
$(FONT_OBJ): $(FONT_PSF)
	cp $< $(BUILD)/font/font.psf
	cd $(BUILD)/font && objcopy -I binary -O elf64-x86-64 -B i386:x86-64 \
	    --rename-section .data=.rodata,alloc,load,readonly,data,contents \
	    --redefine-sym _binary_font_psf_start=console_font_start \
	    --redefine-sym _binary_font_psf_end=console_font_end \
	    --strip-symbol _binary_font_psf_size \
	    font.psf font.o

KERNEL_OBJ += $(FONT_OBJ)
