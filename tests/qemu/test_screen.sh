#!/usr/bin/env bash
# tests/qemu/test_screen.sh — the screen shows the log as text.
#
# Boots build/kernel.elf (GRUB, SeaBIOS, no command line: the monitor) headless,
# takes a QEMU screendump once the prompt is on serial (tools/screenshot.sh),
# and checks it against the serial transcript: every line from the console's
# own `[console] ...` line down to the prompt is rendered here with the
# kernel's font (build/font/font.psf) and compared pixel for pixel (lit or
# background) with its text row on the screen; the rows below the prompt
# must be blank. A blank, garbled (wrong pitch or bpp) or misplaced screen
# fails. Run by `make qemu-test`; takes a few seconds.
set -euo pipefail

cd "$(dirname "$0")/../.."

KERNEL=${KERNEL:-build/kernel.elf}
OUT=${QEMU_OUT:-$(dirname "$KERNEL")/test}/screen
FONT_FILE=$(dirname "$KERNEL")/font/font.psf
[[ -f "$KERNEL" ]] || { echo "test_screen: $KERNEL not found; run make first" >&2; exit 1; }
[[ -f "$FONT_FILE" ]] || { echo "test_screen: $FONT_FILE not found; run make first" >&2; exit 1; }
mkdir -p "$OUT"

start=$(date +%s.%N)
tools/mkiso-grub.sh "$KERNEL" "$OUT/screen.iso" ""
tools/screenshot.sh --iso "$OUT/screen.iso" --mem 128M --timeout 20 \
    --ppm "$OUT/screen.ppm" --png "$OUT/screen.png" --serial "$OUT/serial.log" >/dev/null

python3 - "$OUT/screen.ppm" "$OUT/serial.log" "$FONT_FILE" <<'PY'
import re, struct, sys

ppm_path, serial_path, font_path = sys.argv[1:4]

def fail(msg):
    print(f"FAIL screen: {msg} (see {ppm_path.replace('.ppm', '.png')}, {serial_path})")
    sys.exit(1)

# --- the screendump
data = open(ppm_path, "rb").read()
m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
if not m:
    fail("screendump is not a P6 PPM")
W, H = int(m.group(1)), int(m.group(2))
pix = data[m.end():]
if len(pix) < W * H * 3:
    fail("screendump truncated")
def lit(x, y):
    i = (y * W + x) * 3
    return pix[i] | pix[i + 1] | pix[i + 2] != 0

# --- the font (PSF2, or PSF1), ASCII through its Unicode table
font = open(font_path, "rb").read()
if font[:4] == b"\x72\xb5\x4a\x86":
    hdr, flags, count, csize, fh, fw = struct.unpack_from("<6I", font, 8)
    glyphs, table = hdr, hdr + count * csize
else:
    fw, fh, csize = 8, font[3], font[3]
    count, glyphs, flags = (512 if font[2] & 1 else 256), 4, 0
    table = None
gmap = {}
if flags & 1:
    i = table
    for g in range(count):
        seq = False
        while font[i] != 0xFF:
            if font[i] == 0xFE:
                seq, i = True, i + 1
                continue
            n = 1 if font[i] < 0x80 else 2 if font[i] < 0xE0 else 3 if font[i] < 0xF0 else 4
            ch = font[i:i + n].decode("utf-8", "replace")
            if not seq and len(ch) == 1:
                gmap.setdefault(ord(ch), g)
            i += n
        i += 1
rb = (fw + 7) // 8
def glyph_bit(ch, x, y):
    g = gmap.get(ord(ch), ord(ch) if not gmap and ord(ch) < count else gmap.get(ord("?"), 0))
    return font[glyphs + g * csize + y * rb + x // 8] & (0x80 >> (x % 8)) != 0

# --- the transcript, from the console's first line to the prompt
text = open(serial_path, "rb").read().decode("utf-8", "replace")
text = re.sub(r"\x1b\[[0-9;=?]*[A-Za-z]", "", text).replace("\r", "")
lines = text.split("\n")
first = next((i for i, l in enumerate(lines) if l.startswith("[console] ")), None)
if first is None:
    fail("no '[console] ' line on serial: the console did not start")
m = re.search(r"(\d+)x(\d+) text cells, font (\d+)x(\d+)", lines[first])
cols, rows = int(m.group(1)), int(m.group(2))
if (int(m.group(3)), int(m.group(4))) != (fw, fh):
    fail(f"kernel font {m.group(3)}x{m.group(4)} is not {font_path} ({fw}x{fh})")
if cols != W // fw or rows != H // fh:
    fail(f"{cols}x{rows} cells do not fit a {W}x{H} screendump")
prompt = next((i for i in range(first, len(lines)) if lines[i].startswith("slayer> ")), None)
if prompt is None:
    fail("no monitor prompt after the console line")
# The console replays the whole kernel log (lib/logbuf.c): the screen holds
# the kernel's output from its first line (a blank row: the banner begins
# with a newline) down to the prompt, long lines wrapped, scrolled so that
# the prompt row is the last one when it does not all fit.
kstart = next((i for i, l in enumerate(lines) if l.startswith("[kernel] SlayerOS")), None)
if kstart is None or kstart > first:
    fail("no '[kernel] SlayerOS' banner before the console line")
screen_rows = [""]
for l in lines[kstart:prompt]:
    screen_rows += [l[i:i + cols] for i in range(0, max(len(l), 1), cols)]
if len(screen_rows) + 1 > rows:
    screen_rows = screen_rows[len(screen_rows) + 1 - rows:]
expected = screen_rows
first, prompt = 0, len(expected)  # row numbers on the screen from here on
bad_rows = []
for row, line in enumerate(expected):
    if len(line) > cols:
        fail(f"line {row} longer than {cols} columns: test needs updating")
    wrong = total = 0
    for x in range(W):
        c = x // fw
        for y in range(fh):
            want = c < len(line) and glyph_bit(line[c], x % fw, y)
            got = lit(x, row * fh + y)
            total += 1
            wrong += want != got
    if wrong > total // 200:
        bad_rows.append(f"row {row} ({wrong} of {total} pixels wrong: {line[:40]!r})")
if bad_rows:
    fail("text rows differ from the transcript: " + "; ".join(bad_rows[:5]))
# The prompt row holds the prompt (and the cursor); everything below is blank.
if not any(lit(x, prompt_y) for x in range(8 * fw) for prompt_y in
           range((prompt - first) * fh, (prompt - first + 1) * fh)):
    fail("the prompt row is blank")
below = (prompt - first + 1) * fh
if any(lit(x, y) for y in range(below, H) for x in range(0, W, 3)):
    fail("pixels lit below the prompt row")
print(f"screen: {len(expected)} text rows match the transcript ({cols}x{rows} cells, "
      f"font {fw}x{fh}, {W}x{H})")
PY
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "PASS screen (${secs}s)"
