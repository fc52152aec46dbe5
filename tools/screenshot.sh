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
# How: QEMU (through tools/qemu.sh) gets serial on stdio — its input a FIFO
# that this script writes to, its output the transcript — and a QMP socket.
# Once the kernel's `[kernel] ready:` line and the monitor prompt (when there
# is a monitor) are on serial, QMP's `screendump` writes the PPM and `quit`
# ends QEMU; tools/ppm2png.py converts. Exit status 0 on success.
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

die() {
    echo "screenshot: $*" >&2
    if [[ -f "$serial" ]]; then
        echo "---- last 20 lines of $serial" >&2
        plain "$serial" | tail -n 20 >&2
    fi
    exit 1
}

# The transcript as plain text (no escape sequences, no CRs).
plain() {
    sed -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e 's/\r//g' "$@"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/slay-shot.XXXXXX")
qemu_pid=
cleanup() {
    if [[ -n "$qemu_pid" ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$(dirname "$ppm")" "$(dirname "$serial")"
rm -f "$ppm" "$serial"
mkfifo "$tmp/serial-in"
exec 3<>"$tmp/serial-in" # held open read-write: QEMU's stdin never sees EOF
sock=$tmp/qmp.sock
tools/qemu.sh --iso "$iso" --firmware "$firmware" --mem "$mem" --timeout "$timeout" \
    -- -qmp "unix:$sock,server=on,wait=off" <"$tmp/serial-in" >"$serial" 2>"$tmp/qemu.err" &
qemu_pid=$!
deadline=$((SECONDS + timeout))

# Waits until the transcript holds at least $2 matches of the fixed string $1;
# false when QEMU ended or the time ran out (or after $3 seconds when given).
wait_for() {
    local what=$1 count=$2 limit=$deadline
    [[ -z "${3:-}" ]] || limit=$((SECONDS + $3 < deadline ? SECONDS + $3 : deadline))
    while ((SECONDS < limit)); do
        if [[ -f "$serial" ]] && (( $(plain "$serial" | grep -oF -- "$what" | wc -l) >= count )); then
            return 0
        fi
        kill -0 "$qemu_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

wait_for "[kernel] ready:" 1 || die "no '[kernel] ready:' line on serial$(cat "$tmp/qemu.err" 2>/dev/null | sed 's/^/ /')"
prompts=0
if wait_for "slayer> " 1 10; then
    prompts=1
    IFS=';' read -r -a cmds <<<"$commands"
    for cmd in "${cmds[@]}"; do
        cmd=$(echo "$cmd" | sed -e 's/^ *//' -e 's/ *$//')
        [[ -n "$cmd" ]] || continue
        printf '%s\r' "$cmd" >&3
        prompts=$((prompts + 1))
        wait_for "slayer> " "$prompts" || die "no prompt after '$cmd'"
    done
elif [[ -n "$commands" ]]; then
    die "no monitor prompt: cannot type '$commands'"
fi
# Serial is written before the screen (sink order): give the console a moment.
sleep 0.3

python3 - "$sock" "$(realpath -m "$ppm")" <<'PY' || die "QMP screendump failed"
import json, socket, sys
sock_path, ppm = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sock_path)
f = s.makefile("rw")
json.loads(f.readline())  # the greeting
def call(cmd, **args):
    f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            if cmd == "quit":
                return None
            raise SystemExit(f"QMP: connection closed during {cmd}")
        reply = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"QMP {cmd}: {reply['error'].get('desc')}")
        if "return" in reply:
            return reply["return"]
call("qmp_capabilities")
call("screendump", filename=ppm)
call("quit")
PY
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
[[ -s "$ppm" ]] || die "QEMU wrote no $ppm"
if [[ -n "$png" ]]; then
    python3 tools/ppm2png.py "$ppm" "$png"
    echo "screenshot: $png ($(head -c 20 "$ppm" | sed -n 2p | tr -d '\n') pixels), serial in $serial"
else
    echo "screenshot: $ppm, serial in $serial"
fi
