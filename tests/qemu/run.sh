#!/usr/bin/env bash
# tests/qemu/run.sh — the QEMU boot matrix behind `make qemu-test`.
#
#   tests/qemu/run.sh [NAME-PATTERN...]
#
# Builds test ISOs of build/kernel.elf with the command line `ktest` (GRUB
# always, Limine when LIMINE_DIR is set), boots every configuration below one
# after the other, headless under TCG, with a timeout, serial to
# build/test/logs/<name>.log. A configuration passes when QEMU exits with 33
# (the guest wrote 0x10 to the isa-debug-exit port: all self-tests passed)
# and the log has a line `ktest: N passed, 0 failed`.
#
# Environment:
#   LIMINE_DIR     Limine binary release with its host tool built; empty or
#                  unset skips the Limine boots
#   QEMU_MATRIX    `full` adds the slower and wider configurations (32 MiB,
#                  256 GiB, i440fx, 4 CPUs, Limine at 4 GiB)
#   QEMU_TIMEOUT   seconds per boot before it counts as hung (default 60)
#   ACCEL          tcg (default) or kvm
#   KERNEL         the ELF to test (default build/kernel.elf)
#   QEMU_OUT       where ISOs and logs go (default: test/ next to KERNEL)
# NAME-PATTERN arguments (shell globs, e.g. 'grub-uefi-*') run only the
# matching configurations.
set -euo pipefail

cd "$(dirname "$0")/../.."

KERNEL=${KERNEL:-build/kernel.elf}
LIMINE_DIR=${LIMINE_DIR:-}
QEMU_MATRIX=${QEMU_MATRIX:-default}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-60}
ACCEL=${ACCEL:-tcg}
OUT=${QEMU_OUT:-$(dirname "$KERNEL")/test}
LOGS=$OUT/logs
GRUB_ISO=$OUT/slayeros-ktest.iso
LIMINE_ISO=$OUT/slayeros-limine-ktest.iso

# name               loader  firmware  memory  cpu     smp  machine
DEFAULT_MATRIX="
grub-bios-128M       grub    bios      128M    max     1    q35
grub-uefi-128M       grub    uefi      128M    max     1    q35
grub-bios-4G         grub    bios      4G      max     1    q35
grub-uefi-4G         grub    uefi      4G      max     1    q35
grub-bios-qemu64-1G  grub    bios      1G      qemu64  1    q35
limine-bios-128M     limine  bios      128M    max     1    q35
limine-bios-4G       limine  bios      4G      max     1    q35
limine-uefi-4G       limine  uefi      4G      max     1    q35
"
FULL_MATRIX="
grub-bios-32M        grub    bios      32M     max     1    q35
grub-bios-pc-3G      grub    bios      3G      max     1    pc
grub-bios-smp4-512M  grub    bios      512M    max     4    q35
grub-bios-256G       grub    bios      256G    max     1    q35
grub-uefi-qemu64-8G  grub    uefi      8G      qemu64  1    q35
limine-uefi-128M     limine  uefi      128M    max     1    q35
limine-bios-qemu64-64G limine bios     64G     qemu64  1    q35
"

die() {
    echo "qemu: $*" >&2
    exit 1
}

# Does configuration NAME match the patterns given on the command line?
selected() {
    local name=$1 pattern
    [[ ${#patterns[@]} -eq 0 ]] && return 0
    for pattern in "${patterns[@]}"; do
        # shellcheck disable=SC2053  # glob match on purpose
        [[ $name == $pattern ]] && return 0
    done
    return 1
}

# Serial logs hold firmware escape sequences; show them as plain text, with a
# final newline.
# shellcheck disable=SC1003  # '$a\' is sed's "append newline if missing"
plain() {
    sed -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e 's/\r//g' -e '$a\' "$@"
}

# Explains a QEMU exit status for a failed boot.
explain_status() {
    case "$1" in
        33)  echo "exit 33 but no 'ktest: N passed, 0 failed' line" ;;
        35)  echo "exit 35: self-tests failed" ;;
        37)  echo "exit 37: kernel panic" ;;
        124) echo "timed out after ${QEMU_TIMEOUT}s" ;;
        0)   echo "exit 0: guest reset or shut down (triple fault?)" ;;
        *)   echo "exit $1" ;;
    esac
}

patterns=("$@")
[[ -f "$KERNEL" ]] || die "$KERNEL not found; run make first"
mkdir -p "$LOGS"

tools/mkiso-grub.sh "$KERNEL" "$GRUB_ISO" "ktest"
if [[ -n "$LIMINE_DIR" ]]; then
    tools/mkiso-limine.sh "$KERNEL" "$LIMINE_ISO" "$LIMINE_DIR" "ktest"
else
    echo "qemu: Limine boots skipped: LIMINE_DIR is not set (see README)"
fi

matrix=$DEFAULT_MATRIX
[[ $QEMU_MATRIX != full ]] || matrix+=$FULL_MATRIX

passed=0 failed=0 total_start=$(date +%s.%N)
failures=()
while read -r name loader firmware mem cpu smp machine; do
    [[ -n "$name" ]] || continue
    selected "$name" || continue
    if [[ $loader == limine ]]; then
        [[ -n "$LIMINE_DIR" ]] || continue
        iso=$LIMINE_ISO
    else
        iso=$GRUB_ISO
    fi

    log=$LOGS/$name.log
    rm -f "$log"
    start=$(date +%s.%N)
    status=0
    tools/qemu.sh --iso "$iso" --firmware "$firmware" --mem "$mem" --cpu "$cpu" \
        --smp "$smp" --machine "$machine" --accel "$ACCEL" \
        --serial-file "$log" --timeout "$QEMU_TIMEOUT" </dev/null || status=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

    if [[ $status -eq 33 ]] && plain "$log" | grep -qE 'ktest: [0-9]+ passed, 0 failed'; then
        counts=$(plain "$log" | grep -oE 'ktest: [0-9]+ passed, 0 failed' | tail -n 1)
        echo "PASS $name (${secs}s, ${counts#ktest: })"
        passed=$((passed + 1))
    else
        echo "FAIL $name (${secs}s, $(explain_status "$status")) (see $log)"
        echo "---- last 40 lines of $log"
        if [[ -f "$log" ]]; then plain "$log" | tail -n 40; fi
        echo "----"
        failed=$((failed + 1))
        failures+=("$name")
    fi
done <<<"$matrix"

total=$(awk -v a="$total_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
[[ $((passed + failed)) -gt 0 ]] || die "no configuration matched: ${patterns[*]}"
[[ $failed -eq 0 ]] || echo "qemu: failed: ${failures[*]}"
echo "qemu: boot matrix took ${total}s"
echo "qemu: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
