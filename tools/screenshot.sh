#!/usr/bin/env bash
# tools/screenshot.sh — boot the kernel headless, optionally type monitor
# commands on its serial line, and save what the screen shows (the command
# behind `make screenshot`; tests/qemu/test_screen.sh uses it too).
#
#   tools/screenshot.sh [options]
#
#   --iso FILE            ISO to boot (default build/slayeros.iso)
#   --firmware bios|uefi  default bios
#   --mem SIZE            guest RAM (default 256M)
#   --commands "a;b"      monitor commands, typed on serial one at a time, each
#                         once the prompt (`slayer> `) is back (default: none)
#   --ppm FILE            the raw screendump (default build/screenshot.ppm)
#   --png FILE            the PNG made from it (default build/screenshot.png;
#                         an empty name skips the conversion)
#   --serial FILE         serial transcript (default build/screenshot-serial.log)
#   --timeout SECS        give up after SECS seconds (default 30)
#
# How: a session of tests/qemu/qemu_session.py boots QEMU (through
# tools/qemu.sh) with serial on pipes — what it types, and the transcript —
# and a QMP socket. Once the kernel's `[kernel] ready:` line and the monitor
# prompt (when there is a monitor) are on serial, QMP's `screendump` writes
# the PPM and `quit` ends QEMU; tools/ppm2png.py converts. Exit status 0 on
# success; on failure the reason and the transcript's last 20 lines.
set -euo pipefail

cd "$(dirname "$0")/.."

iso=build/slayeros.iso firmware=bios mem=256M commands='' timeout=30
ppm=build/screenshot.ppm png=build/screenshot.png serial=build/screenshot-serial.log
while [[ $# -gt 0 ]]; do
    case "$1" in
        --iso)      iso=${2:?}; shift 2 ;;
        --firmware) firmware=${2:?}; shift 2 ;;
        --mem)      mem=${2:?}; shift 2 ;;
        --commands) commands=$2; shift 2 ;;
        --ppm)      ppm=${2:?}; shift 2 ;;
        --png)      png=$2; shift 2 ;;
        --serial)   serial=${2:?}; shift 2 ;;
        --timeout)  timeout=${2:?}; shift 2 ;;
        -h|--help)  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
        *)          echo "screenshot: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ -f "$iso" ]] || { echo "screenshot: $iso not found; run make first" >&2; exit 1; }

mkdir -p "$(dirname "$ppm")" "$(dirname "$serial")"
rm -f "$ppm" "$serial"
PYTHONPATH=tests/qemu PYTHONDONTWRITEBYTECODE=1 \
    python3 - "$iso" "$firmware" "$mem" "$timeout" "$commands" "$ppm" "$serial" <<'PY'
import os, re, sys, time
from qemu_session import PROMPT, Session

iso, firmware, mem, timeout, commands, ppm, serial = sys.argv[1:8]


def report(name, ok, why, note, failures, text, qemu_err):
    """Silent on success; on failure the reason, what QEMU said and the
    transcript's last 20 lines, on stderr."""
    if not ok:
        qemu_said = "".join(" " + line for line in qemu_err.splitlines())
        print(f"screenshot: {why}{qemu_said}", file=sys.stderr)
        print(f"---- last 20 lines of {serial}", file=sys.stderr)
        print("\n".join(text.splitlines()[-20:]), file=sys.stderr)


session = Session("shot", iso, int(timeout), mem=mem, firmware=firmware, qmp=True,
                  qemu_timeout=int(timeout), raw_log=serial, report=report)
session.wait_for(re.escape(b"[kernel] ready:"), timeout=int(timeout), what="[kernel] ready: line")
commands = [c.strip() for c in commands.split(";") if c.strip()]
if session.wait_for(re.escape(PROMPT), timeout=10, required=False):
    for cmd in commands:
        start = session.raw.rfind(PROMPT) + len(PROMPT)
        session.send(cmd.encode() + b"\r")
        session.wait_for(re.escape(PROMPT), start, timeout=int(timeout), what=f"prompt after {cmd}")
elif commands:
    session.finish(False, f"no monitor prompt: cannot type '{';'.join(commands)}'")
# Serial is written before the screen (sink order): give the console a moment.
time.sleep(0.3)
session.pump(0)
session.qmp_call("screendump", filename=os.path.realpath(ppm))
session.qmp_call("quit")
session.wait_exit(10, "QMP quit")
session.finish(os.path.exists(ppm) and os.path.getsize(ppm) > 0, f"QEMU wrote no {ppm}")
PY
if [[ -n "$png" ]]; then
    python3 tools/ppm2png.py "$ppm" "$png"
    echo "screenshot: $png ($(head -c 20 "$ppm" | sed -n 2p | tr -d '\n') pixels), serial in $serial"
else
    echo "screenshot: $ppm, serial in $serial"
fi
