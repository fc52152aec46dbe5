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

# Decided when the rule runs, not when the Makefile is read: on a fresh
# machine deps-check installs console-setup-linux after parsing. The stamp
# rebuilds the font whenever FONT or FONT_DIR changes.
STAMP_font = $(FONT_SRC)
$(FONT_PSF): $(BUILD)/.stamp-font
	@test -f $(FONT_SRC) || { echo "font: $(FONT_SRC) not found; run tools/deps.sh" \
	    "(package console-setup-linux)" >&2; exit 1; }
	@mkdir -p $(dir $@)
	gzip -dc $(FONT_SRC) >$@.tmp
	mv $@.tmp $@

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
