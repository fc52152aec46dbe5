#!/usr/bin/env bash
# tests/make/test_settings.sh — every setting the README offers takes effect
# whatever was built before (issue 11): the ISO carries the CMDLINE of this
# make, not of the last one; a changed FONT relinks the kernel with that font;
# changed CFLAGS rebuild the kernel objects. Run by `make test` (build-test).
#
#   tests/make/test_settings.sh BUILD-DIR
#
# Works in BUILD-DIR (the caller's build folder) and leaves it as a plain
# `make` would: the last step rebuilds the ISO with the default settings.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: $0 BUILD-DIR}
mkdir -p "$build"
fails=0
mk() { make -j2 --no-print-directory BUILD="$build" "$@" >"$build/settings-test.log" 2>&1 ||
    { cat "$build/settings-test.log"; echo "settings: make $* failed"; exit 1; }; }
# grub_cmdline ISO: the kernel command line in the ISO's grub.cfg.
grub_cmdline() {
    xorriso -osirrox on -indev "$1" -extract /boot/grub/grub.cfg "$build/settings-grub.cfg" >/dev/null 2>&1
    sed -n 's/^ *multiboot2 \/boot\/slay.kernel *//p' "$build/settings-grub.cfg"
}
check() { # check WHAT GOT WANT
    if [[ "$2" == "$3" ]]; then echo "settings: $1: ok"
    else echo "settings: $1: got '$2', want '$3'"; fails=$((fails + 1)); fi
}
font_size() { # bytes of the font linked into the kernel
    local start end
    start=$(nm "$build/kernel.elf" | awk '$3 == "console_font_start" {print $1}')
    end=$(nm "$build/kernel.elf" | awk '$3 == "console_font_end" {print $1}')
    echo $((0x$end - 0x$start))
}

mk iso
check "iso after make" "$(grub_cmdline "$build/slayeros.iso")" ""
mk iso CMDLINE="ktest settings-marker"
check "iso after make CMDLINE=..." "$(grub_cmdline "$build/slayeros.iso")" "ktest settings-marker"
mk iso
check "iso after make again" "$(grub_cmdline "$build/slayeros.iso")" ""

default_font=$(font_size)
mk kernel FONT=Uni2-Terminus16
small_font=$(font_size)
mk kernel
check "FONT=Uni2-Terminus16 relinks a smaller font" \
    "$([[ $small_font -lt $default_font ]] && echo smaller || echo "$small_font >= $default_font")" smaller
check "the default font comes back" "$(font_size)" "$default_font"

stamp=$build/.stamp-kernel-flags
mk kernel CFLAGS="-O2 -g -DSETTINGS_TEST_MARKER"
check "CFLAGS reach the kernel objects" "$(grep -c SETTINGS_TEST_MARKER "$stamp")" 1
mk iso
check "default CFLAGS come back" "$(grep -c SETTINGS_TEST_MARKER "$stamp" || true)" 0

rm -f "$build/settings-test.log" "$build/settings-grub.cfg"
[[ $fails -eq 0 ]] || { echo "settings: $fails failed"; exit 1; }
echo "settings: all passed"
