#!/usr/bin/env bash
# tools/qemu.sh — the one QEMU runner behind `make run`, `make debug` and the
# boot tests.
#
#   tools/qemu.sh --iso FILE [options] [-- extra QEMU arguments]
#
#   --iso FILE           ISO to boot from (required)
#   --firmware bios|uefi SeaBIOS (default) or OVMF; UEFI uses a read-only
#                        OVMF_CODE_4M.fd and a throwaway copy of OVMF_VARS_4M.fd
#   --accel tcg|kvm      default tcg (KVM does not work on the project machines)
#   --mem SIZE           guest RAM, QEMU syntax (default 256M); above 20G the
#                        RAM comes from a reserve=off backend, so a 256G guest
#                        needs no 256G of host memory
#   --cpu MODEL          default max (1 GiB pages, NX, SMEP/SMAP); qemu64 has
#                        no 1 GiB pages
#   --smp N              CPUs (default 1); above 1 under TCG, multi-threaded
#                        TCG (-accel tcg,thread=multi): one host thread per
#                        CPU, so the CPUs really run at the same time
#   --machine q35|pc     default q35
#   --vga std|none       display adapter: std (default, QEMU's VGA) or none,
#                        a machine without any display device or framebuffer
#   --interactive        serial on this terminal (-serial mon:stdio; Ctrl-A X
#                        quits, Ctrl-A C the monitor) and a window when $DISPLAY
#                        is set
#   --gdb                wait for gdb on :1234 before the first instruction
#   --serial-file F      headless: serial to file F, no window
#   --timeout SECS       kill QEMU after SECS seconds (exit status 124)
#   --dry-run            print the QEMU command instead of running it
#
# Always: -no-reboot and the isa-debug-exit device at port 0xf4, so a guest
# that writes V there ends QEMU with status (V << 1) | 1. The exit status of
# this script is QEMU's.
set -euo pipefail

OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}
die() {
    echo "qemu.sh: $*" >&2
    exit 2
}

iso='' firmware=bios accel=tcg mem=256M cpu=max smp=1 machine=q35 vga=std
interactive=0 gdb=0 serial_file='' timeout='' dry_run=0
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --iso)         iso=${2:?}; shift 2 ;;
        --firmware)    firmware=${2:?}; shift 2 ;;
        --accel)       accel=${2:?}; shift 2 ;;
        --mem)         mem=${2:?}; shift 2 ;;
        --cpu)         cpu=${2:?}; shift 2 ;;
        --smp)         smp=${2:?}; shift 2 ;;
        --machine)     machine=${2:?}; shift 2 ;;
        --vga)         vga=${2:?}; shift 2 ;;
        --interactive) interactive=1; shift ;;
        --gdb)         gdb=1; shift ;;
        --serial-file) serial_file=${2:?}; shift 2 ;;
        --timeout)     timeout=${2:?}; shift 2 ;;
        --debug-exit)  shift ;;  # always on; accepted for clarity
        --dry-run)     dry_run=1; shift ;;
        --)            shift; extra=("$@"); break ;;
        -h|--help)     usage ;;
        *)             die "unknown option '$1' (see --help)" ;;
    esac
done

[[ -n "$iso" ]] || die "--iso FILE is required"
[[ -f "$iso" ]] || die "$iso: no such file"
[[ $firmware == bios || $firmware == uefi ]] || die "--firmware must be bios or uefi"
[[ $accel == tcg || $accel == kvm ]] || die "--accel must be tcg or kvm"
[[ $machine == q35 || $machine == pc ]] || die "--machine must be q35 or pc"
[[ $vga == std || $vga == none ]] || die "--vga must be std or none"
[[ $smp =~ ^[1-9][0-9]*$ ]] || die "--smp must be a positive number"
[[ -z "$timeout" || $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout must be whole seconds"
if [[ $interactive -eq 1 && -n "$serial_file" ]]; then
    die "--interactive and --serial-file exclude each other"
fi

# Guest RAM in bytes, to decide whether it needs the reserve=off backend.
mem_bytes() {
    local n=${1%[KkMmGgTt]} unit=${1: -1}
    [[ $n =~ ^[0-9]+$ ]] || die "--mem: '$1' is not a size like 128M or 4G"
    case "$unit" in
        [Kk]) echo $((n << 10)) ;;
        [Mm]) echo $((n << 20)) ;;
        [Gg]) echo $((n << 30)) ;;
        [Tt]) echo $((n << 40)) ;;
        *)    echo $((n << 20)) ;;  # QEMU reads a bare number as MiB
    esac
}

accel_opt=$accel
[[ $accel != tcg || $smp -eq 1 ]] || accel_opt=tcg,thread=multi
# shellcheck disable=SC2054  # commas inside QEMU option values
args=(qemu-system-x86_64 -machine "$machine" -accel "$accel_opt" -cpu "$cpu"
      -smp "$smp" -m "$mem" -no-reboot
      -device isa-debug-exit,iobase=0xf4,iosize=0x04
      -cdrom "$iso" -boot d -vga "$vga")
if [[ $(mem_bytes "$mem") -gt $((20 << 30)) ]]; then
    args+=(-object "memory-backend-ram,id=m0,size=$mem,reserve=off"
           -machine memory-backend=m0)
fi

tmpdir=
# shellcheck disable=SC2317  # called by the trap
cleanup() { [[ -z "$tmpdir" ]] || rm -rf "$tmpdir"; }
trap cleanup EXIT
# A TERM (e.g. the boot matrix stopping a refused boot) still runs cleanup.
trap 'exit 143' TERM INT
if [[ $firmware == uefi ]]; then
    [[ -r "$OVMF_CODE" && -r "$OVMF_VARS" ]] ||
        die "OVMF not found ($OVMF_CODE, $OVMF_VARS); run tools/deps.sh"
    tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/slay-qemu.XXXXXX")
    cp "$OVMF_VARS" "$tmpdir/vars.fd"
    args+=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
           -drive "if=pflash,format=raw,unit=1,file=$tmpdir/vars.fd")
fi

if [[ $interactive -eq 1 ]]; then
    args+=(-serial mon:stdio)
    if [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]]; then
        :  # QEMU opens its default window
    else
        args+=(-display none)
    fi
elif [[ -n "$serial_file" ]]; then
    mkdir -p "$(dirname "$serial_file")"
    args+=(-serial "file:$serial_file" -display none -monitor none)
else
    args+=(-serial stdio -display none -monitor none)
fi

if [[ $gdb -eq 1 ]]; then
    args+=(-s -S)
    echo "qemu.sh: waiting for gdb on localhost:1234; from the repository root run:" >&2
    echo "qemu.sh:     gdb -x tools/gdbinit" >&2
fi

args+=("${extra[@]}")
if [[ -n "$timeout" ]]; then
    # --foreground keeps QEMU in the terminal's process group (Ctrl-C works);
    # -k: a QEMU that ignores SIGTERM is killed 5 s later.
    args=(timeout --foreground -k 5 "$timeout" "${args[@]}")
fi

if [[ $dry_run -eq 1 ]]; then
    printf '%q ' "${args[@]}"
    echo
    exit 0
fi

# Not exec: the EXIT trap must remove the OVMF variables copy afterwards.
status=0
"${args[@]}" || status=$?
exit "$status"
