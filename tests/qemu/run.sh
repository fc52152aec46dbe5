#!/usr/bin/env bash
# tests/qemu/run.sh — the QEMU boot matrix behind `make qemu-test` (a slice)
# and `make matrix` (all of it).
#
#   tests/qemu/run.sh [NAME-PATTERN...]
#
# Builds test ISOs of the kernel (GRUB always, Limine when LIMINE_DIR is set;
# one pair per command line, normally `ktest`), boots every cell of the table
# below one after the other, headless under TCG, with a timeout, serial to
# <QEMU_OUT>/logs/<cell>.log, and ends with a table: cell, result, seconds.
#
# A `pass` cell passes when all of these hold:
#   - QEMU exits with 33 (the guest wrote 0x10 to isa-debug-exit: every
#     self-test passed) and the log has `ktest: N passed, 0 failed`; a
#     `usertests` cell instead has `usertests: boot: PASSED` (the usertests
#     program exited 0 and every kernel count came back: test/usertests_boot.c);
#   - the kernel's usable memory (`mem: usable=`) is at most the guest RAM,
#     and the RAM it does not manage is at most the kernel image, the frame
#     allocator's bitmap, the boot modules (the user programs, which stay
#     where the loader put them) and the firmware's allowance below (ram_check);
#   - with `vga none`: the kernel said `framebuffer: none` and
#     `no framebuffer: serial only`;
#   - Limine cells: the kernel logged `limine: base revision N in force`
#     (the table's note says which N);
#   - every CPU came up: the log has `[smp] N of N CPUs online` with N the
#     cell's smp column (1 included: no phantom CPU either), capped at
#     CPU_MAX (16: the 18-CPU cells expect 16 of 16, the rest left out). With smp > 1,
#     tools/qemu.sh runs multi-threaded TCG, so the CPUs really run at once.
# The in-kernel test memmap_agrees_with_bootloader_map (in every `ktest` run)
# checks the other half: usable memory equals the bootloader's map exactly,
# after the trims the kernel documents.
#
# A `refuse:<why>` cell passes when the machine is one SlayerOS (or its
# loader or firmware) cannot run on and the expected line appears: the
# kernel's own refusals end QEMU with their exit status, the others are
# stopped as soon as their line is in the log (refusals below).
#
# Environment:
#   LIMINE_DIR     Limine binary release with its host tool built; empty or
#                  unset skips the Limine cells (and says so)
#   QEMU_MATRIX    `full` runs every cell (make matrix); otherwise only the
#                  cells of set `test` (make qemu-test)
#   QEMU_TIMEOUT   seconds per boot before it counts as hung (default 60;
#                  256 GiB cells get 4x, cells with more than 4 CPUs 3x)
#   ACCEL          tcg (default) or kvm
#   KERNEL         the ELF to test (default build/kernel.elf)
#   QEMU_OUT       where ISOs and logs go (default: test/ next to KERNEL)
# NAME-PATTERN arguments (shell globs, e.g. 'grub-uefi-*') run only the
# matching cells, from the whole table.
set -euo pipefail

cd "$(dirname "$0")/../.."

KERNEL=${KERNEL:-build/kernel.elf}
LIMINE_DIR=${LIMINE_DIR:-}
QEMU_MATRIX=${QEMU_MATRIX:-default}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-60}
ACCEL=${ACCEL:-tcg}
OUT=${QEMU_OUT:-$(dirname "$KERNEL")/test}
LOGS=$OUT/logs

# The matrix. A cell's name is made from its columns (cell_name): loader,
# firmware, RAM, then what differs from q35 / max / 1 CPU / std VGA / ktest.
# set: `test` cells run in make qemu-test and make matrix, `matrix` cells only
# in make matrix. cmdline: `-` is `ktest`. 3584M is 3.5 GiB: both machine
# types split it around the PCI hole (q35: 2 GiB low; pc: 3 GiB low).
#
# Every loader/firmware pair sees every RAM size (32M 128M 1G 3584M 8G 256G),
# both CPU models, 1, 2, 4 and 8 CPUs, both machine types and both VGA settings;
# plus the risky pairs (qemu64 with 256G, pc with 3.5G, OVMF with 32M, no
# VGA with each loader), the smallest RAM that works, and the refusals.
# set    loader firmware mem    machine cpu         smp vga  expect            cmdline
MATRIX="
test     grub   bios     128M   q35     max         1   std  pass              -
test     grub   uefi     128M   q35     max         1   std  pass              -
test     grub   bios     4G     q35     max         1   std  pass              -
test     grub   uefi     4G     q35     max         1   std  pass              -
test     grub   bios     1G     q35     qemu64      1   std  pass              -
test     grub   bios     256M   q35     max         1   none pass              -
test     grub   bios     128M   q35     qemu64,-lm  1   std  refuse:nolm       -
test     limine bios     128M   q35     max         1   std  pass              -
test     limine bios     4G     q35     max         1   std  pass              -
test     limine uefi     4G     q35     max         1   std  pass              -
test     grub   bios     256M   q35     max         2   std  pass              -
test     grub   bios     512M   q35     max         4   std  pass              -
test     grub   uefi     256M   q35     max         4   std  pass              -
test     limine bios     256M   q35     max         2   std  pass              -
test     limine bios     512M   q35     max         4   std  pass              -
test     grub   bios     256M   q35     max         1   std  pass              usertests
test     grub   uefi     256M   q35     max         4   std  pass              usertests
test     limine bios     256M   q35     max         4   std  pass              usertests
test     limine uefi     256M   q35     max         1   std  pass              usertests

matrix   grub   bios     32M    pc      qemu64      1   std  pass              -
matrix   grub   bios     128M   q35     max         4   std  pass              -
matrix   grub   bios     1G     q35     max         1   none pass              -
matrix   grub   bios     3584M  pc      max         1   std  pass              -
matrix   grub   bios     3584M  q35     qemu64      4   std  pass              -
matrix   grub   bios     8G     q35     qemu64      1   std  pass              -
matrix   grub   bios     256G   q35     qemu64      1   std  pass              -
matrix   grub   bios     256G   pc      max         4   std  pass              -
matrix   grub   bios     9M     q35     max         1   std  pass              -
matrix   grub   bios     5M     q35     max         1   std  pass              ktest=memmap
matrix   grub   bios     4M     q35     max         1   std  refuse:grub-oom   -
matrix   grub   bios     128M   pc      pentium3    1   std  refuse:nolm       -
matrix   grub   bios     128M   q35     486         1   std  refuse:nopae      -
matrix   grub   bios     1G     q35     max         8   std  pass              -
matrix   grub   bios     1G     q35     max         18  std  pass              -

matrix   grub   uefi     32M    q35     max         1   std  refuse:ovmf-ram   -
matrix   grub   uefi     64M    q35     max         1   std  pass              -
matrix   grub   uefi     128M   pc      qemu64      1   none pass              -
matrix   grub   uefi     1G     q35     max         4   std  pass              -
matrix   grub   uefi     3584M  pc      max         1   std  pass              -
matrix   grub   uefi     8G     q35     qemu64      1   std  pass              -
matrix   grub   uefi     256G   q35     max         1   std  pass              -
matrix   grub   uefi     128M   q35     max         2   std  pass              -
matrix   grub   uefi     1G     pc      max         8   std  pass              -

matrix   limine bios     32M    q35     max         1   std  pass              -
matrix   limine bios     128M   pc      qemu64      4   std  pass              -
matrix   limine bios     1G     pc      max         1   none pass              -
matrix   limine bios     3584M  q35     qemu64      1   std  pass              -
matrix   limine bios     8G     pc      max         1   std  pass              -
matrix   limine bios     256G   q35     qemu64      1   std  pass              -
matrix   limine bios     3M     q35     max         1   std  refuse:limine-oom -
matrix   limine bios     128M   q35     qemu64,-lm  1   std  refuse:limine-nolm -
matrix   limine bios     1G     q35     max         8   std  pass              -
matrix   limine bios     1G     q35     max         18  std  pass              -

matrix   limine uefi     32M    q35     max         1   std  refuse:ovmf-ram   -
matrix   limine uefi     64M    q35     max         1   std  refuse:limine-oom -
matrix   limine uefi     128M   q35     max         1   none pass              -
matrix   limine uefi     1G     pc      qemu64      4   std  pass              -
matrix   limine uefi     3584M  pc      max         1   std  pass              -
matrix   limine uefi     8G     q35     qemu64      1   std  pass              -
matrix   limine uefi     256G   q35     max         4   std  pass              -
matrix   limine uefi     512M   q35     max         2   std  pass              -
matrix   limine uefi     1G     q35     qemu64      8   std  pass              -
"

# Expected refusals: <why> -> "exit status|line (extended regex)|what it means".
# An exit status `-` means the refusing party halts or waits for a key, so the
# boot is stopped once the line is there.
declare -A REFUSAL=(
    [nolm]="39|boot: FATAL: this CPU has no x86_64 long mode|kernel: no long mode, refused in the 32-bit entry"
    [nopae]="39|boot: FATAL: this CPU has no PAE|kernel: no PAE (so no long mode), refused in the 32-bit entry"
    [grub-oom]="-|error: out of memory|GRUB cannot load the kernel in this little RAM"
    [ovmf-ram]="-|X64 Exception Type|OVMF itself crashes in this little RAM"
    [limine-oom]="-|PANIC: High memory allocator: Out of memory|Limine runs out of memory"
    [limine-nolm]="-|This CPU does not support 64-bit mode|Limine refuses a CPU without long mode"
)

# RAM a firmware keeps for itself, beyond the kernel image and the frame
# bitmap, in KiB: measured on QEMU 7.2 across the matrix (it does not grow
# with RAM) and rounded up. SeaBIOS keeps 520-524 KiB: the 384 KiB legacy
# hole, its EBDA page, 132 KiB under the top of low RAM. OVMF keeps 6.4-6.6
# MiB: runtime code and data, ACPI tables and NVS, a little more with 4 CPUs.
# Limine's own memory is bootloader-reclaimable and given back to the kernel.
declare -A RAM_ALLOWANCE=([bios]=640 [uefi]=7168)
# CPUs the kernel manages at most (CPU_MAX, kernel/arch/x86_64/cpu_local.h).
CPU_MAX=16

die() {
    echo "qemu: $*" >&2
    exit 1
}

# Does cell NAME match the patterns given on the command line?
selected() {
    local name=$1 pattern
    [[ ${#patterns[@]} -eq 0 ]] && return 0
    for pattern in "${patterns[@]}"; do
        # shellcheck disable=SC2053  # glob match on purpose
        [[ $name == $pattern ]] && return 0
    done
    return 1
}

# The cell's name from its columns.
cell_name() {
    local loader=$1 firmware=$2 mem=$3 machine=$4 cpu=$5 smp=$6 vga=$7 cmdline=$8 n
    n="$loader-$firmware-$mem"
    [[ $machine == q35 ]] || n+="-$machine"
    [[ $cpu == max ]] || n+="-${cpu//,/}"
    [[ $smp == 1 ]] || n+="-smp$smp"
    [[ $vga == std ]] || n+="-novga"
    [[ $cmdline == - ]] || n+="-${cmdline//[^A-Za-z0-9]/_}"
    echo "$n"
}

# Serial logs hold firmware escape sequences; show them as plain text, with a
# final newline.
# shellcheck disable=SC1003  # '$a\' is sed's "append newline if missing"
plain() {
    sed -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e 's/\r//g' -e '$a\' "$@" | tr -d '\000'
}

# The number in the part matching ERE2 of the last line matching ERE1 on
# stdin; empty when there is none. (Whole input read: no early exit that
# pipefail would count as a failure.)
last_number() {
    grep -oE "$1" | tail -n 1 | grep -oE "$2" | grep -oE '[0-9]+' || true
}

# Explains a QEMU exit status for a failed boot.
explain_status() {
    case "$1" in
        33)  echo "exit 33 but no 'ktest: N passed, 0 failed' line" ;;
        35)  echo "exit 35: self-tests failed" ;;
        37)  echo "exit 37: kernel panic" ;;
        39)  echo "exit 39: the kernel refused the CPU" ;;
        124) echo "timed out after ${timeout}s" ;;
        0)   echo "exit 0: guest reset or shut down (triple fault?)" ;;
        *)   echo "exit $1" ;;
    esac
}

# Guest RAM in KiB, from a QEMU size (a bare number is MiB).
mem_kib() {
    local n=${1%[KkMmGgTt]} unit=${1: -1}
    case "$unit" in
        [Kk]) echo "$n" ;;
        [Mm]) echo $((n << 10)) ;;
        [Gg]) echo $((n << 20)) ;;
        [Tt]) echo $((n << 30)) ;;
        *)    echo $((n << 10)) ;;
    esac
}

# Sets `iso` to the ISO for LOADER with command line CMDLINE, built once per run.
declare -A ISOS=()
iso_for() {
    local loader=$1 cmdline=$2 key
    key="$loader ${cmdline}"
    if [[ -z "${ISOS[$key]:-}" ]]; then
        if [[ $cmdline == ktest ]]; then
            iso=$OUT/slayeros-$loader-ktest.iso
        else
            iso=$OUT/slayeros-$loader-${cmdline//[^A-Za-z0-9]/_}.iso
        fi
        [[ $loader == grub ]] && iso=${iso/slayeros-grub-/slayeros-}
        if [[ $loader == grub ]]; then
            tools/mkiso-grub.sh "$KERNEL" "$iso" "$cmdline"
        else
            tools/mkiso-limine.sh "$KERNEL" "$iso" "$LIMINE_DIR" "$cmdline"
        fi
        ISOS[$key]=$iso
    fi
    iso=${ISOS[$key]}
}

# Compares the kernel's usable memory with the guest RAM (see the top).
# Prints a short note; returns 1 with the reason when it does not hold.
# TEXT is the plain log.
ram_check() {
    local text=$1 firmware=$2 mem=$3 ram usable kernel bitmap modules allowance missing
    ram=$(mem_kib "$mem")
    usable=$(last_number 'mem: usable=[0-9]+KiB' 'usable=[0-9]+' <<<"$text")
    kernel=$(last_number 'kernel: phys=.* size=[0-9]+KiB' 'size=[0-9]+' <<<"$text")
    bitmap=$(last_number 'mem: usable=.* bitmap=[0-9]+KiB' 'bitmap=[0-9]+' <<<"$text")
    modules=$(last_number 'boot modules: [0-9]+, [0-9]+KiB' '[0-9]+KiB' <<<"$text")
    if [[ -z "$usable" || -z "$kernel" || -z "$bitmap" || -z "$modules" ]]; then
        echo "no 'mem: usable=' / 'kernel: size=' / 'bitmap=' / 'boot modules:' line in the log"
        return 1
    fi
    allowance=${RAM_ALLOWANCE[$firmware]}
    missing=$((ram - usable - kernel - bitmap - modules))
    if [[ $usable -gt $ram ]]; then
        echo "usable ${usable} KiB > guest RAM ${ram} KiB"
        return 1
    fi
    if [[ $missing -gt $allowance ]]; then
        echo "firmware kept ${missing} KiB of ${ram} KiB (allowance ${allowance} KiB)"
        return 1
    fi
    echo "usable ${usable}K, firmware kept ${missing}K"
}

# Boots one cell; sets `status` (QEMU's exit status, or `stopped` when a
# refusal's line appeared and the boot was ended).
boot() {
    local iso=$1 firmware=$2 mem=$3 machine=$4 cpu=$5 smp=$6 vga=$7 log=$8 stop_on=$9 pid
    local args=(--iso "$iso" --firmware "$firmware" --mem "$mem" --cpu "$cpu" --smp "$smp"
                --machine "$machine" --vga "$vga" --accel "$ACCEL" --serial-file "$log"
                --timeout "$timeout")
    status=0
    if [[ -z "$stop_on" ]]; then
        tools/qemu.sh "${args[@]}" </dev/null || status=$?
        return 0
    fi
    # In a session of its own, so that QEMU, timeout and qemu.sh stop together.
    setsid tools/qemu.sh "${args[@]}" </dev/null &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [[ -f "$log" ]] && grep -qE "$stop_on" <<<"$(plain "$log")"; then
            sleep 0.3 # the rest of the line
            kill -TERM -- "-$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            status=stopped
            return 0
        fi
        sleep 0.2
    done
    wait "$pid" || status=$?
}

patterns=("$@")
[[ -f "$KERNEL" ]] || die "$KERNEL not found; run make first"
mkdir -p "$LOGS"
[[ -n "$LIMINE_DIR" ]] || echo "qemu: Limine cells skipped: LIMINE_DIR is not set (see README)"

passed=0 failed=0 total_start=$(date +%s.%N)
failures=() summary=()
while read -r set loader firmware mem machine cpu smp vga expect cmdline; do
    [[ -n "$set" ]] || continue
    name=$(cell_name "$loader" "$firmware" "$mem" "$machine" "$cpu" "$smp" "$vga" "$cmdline")
    if [[ ${#patterns[@]} -gt 0 ]]; then
        selected "$name" || continue
    elif [[ $set != test && $QEMU_MATRIX != full ]]; then
        continue
    fi
    [[ $loader == grub || -n "$LIMINE_DIR" ]] || continue
    [[ $cmdline != - ]] || cmdline=ktest
    iso_for "$loader" "$cmdline"

    timeout=$QEMU_TIMEOUT
    [[ $(mem_kib "$mem") -lt $((64 << 20)) ]] || timeout=$((QEMU_TIMEOUT * 4))
    # 8 vCPUs under OVMF took 54-56 s, 18 under SeaBIOS 75-85 s on a shared 2-core host.
    [[ $smp -le 4 ]] || timeout=$((QEMU_TIMEOUT * 3))
    want_status=33 want_line='ktest: [0-9]+ passed, 0 failed' meaning='' stop_on=''
    if [[ $cmdline == usertests* ]]; then
        want_line='usertests: boot: PASSED'
        timeout=$((timeout * 3)) # every user program of the suite, under TCG
    fi
    if [[ $expect == refuse:* ]]; then
        spec=${REFUSAL[${expect#refuse:}]:?unknown refusal $expect}
        want_status=${spec%%|*}
        spec=${spec#*|}
        want_line=${spec%%|*}
        meaning=${spec#*|}
        [[ $want_status != - ]] || stop_on=$want_line
    fi

    cpus=$((smp > CPU_MAX ? CPU_MAX : smp)) # the kernel's cap (cpu_local.h)
    log=$LOGS/$name.log
    rm -f "$log"
    start=$(date +%s.%N)
    boot "$iso" "$firmware" "$mem" "$machine" "$cpu" "$smp" "$vga" "$log" "$stop_on"
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

    why='' note='' text=''
    [[ ! -f "$log" ]] || text=$(plain "$log")
    if [[ $status != "${want_status/-/stopped}" ]]; then
        why=$(explain_status "$status")
        [[ $status != stopped ]] || why="stopped on the refusal line"
        [[ $expect == pass ]] || why+=", expected ${want_status/-/the line}"
    elif ! grep -qE "$want_line" <<<"$text"; then
        why="no line matching '$want_line'"
    elif [[ $expect == pass ]]; then
        if [[ $cmdline == usertests* ]]; then
            note="usertests: $(grep -oE 'usertests: [0-9]+ passed, [0-9]+ failed' <<<"$text" |
                tail -n 1 | grep -oE '[0-9]+ passed')"
        else
            note="$(last_number 'ktest: [0-9]+ passed, 0 failed' 'ktest: [0-9]+' <<<"$text") passed"
        fi
        if ! ram=$(ram_check "$text" "$firmware" "$mem"); then
            why=$ram
        elif [[ $vga == none ]] && ! { grep -q 'framebuffer: none' <<<"$text" &&
                grep -q 'no framebuffer: serial only' <<<"$text"; }; then
            why="no VGA, but the kernel did not say 'framebuffer: none' / 'no framebuffer: serial only'"
        elif [[ $loader == limine ]] &&
                ! rev=$(grep -oE 'limine: base revision [0-9]+ in force' <<<"$text"); then
            why="the kernel did not log the Limine base revision in force"
        elif ! grep -qE "\[smp\] $cpus of $cpus CPUs online" <<<"$text"; then
            said=$(grep -oE '\[smp\] [0-9]+ of [0-9]+ CPUs online' <<<"$text" | tail -n 1)
            why="expected '[smp] $cpus of $cpus CPUs online', the kernel said '${said:-nothing}'"
        else
            note+="; $ram"
            [[ $loader != limine ]] || note+="; ${rev#limine: }"
            [[ $smp == 1 ]] || note+="; $cpus CPUs"
        fi
    else
        note="refused as expected: $meaning"
    fi

    if [[ -z "$why" ]]; then
        echo "PASS $name (${secs}s, $note)"
        passed=$((passed + 1))
        summary+=("$(printf '%-36s %-6s %7s  %s' "$name" PASS "$secs" "$note")")
    else
        echo "FAIL $name (${secs}s, $why) (see $log)"
        echo "---- last 40 lines of $log"
        tail -n 40 <<<"$text"
        echo "----"
        failed=$((failed + 1))
        failures+=("$name")
        summary+=("$(printf '%-36s %-6s %7s  %s' "$name" FAIL "$secs" "$why")")
    fi
done <<<"$MATRIX"

total=$(awk -v a="$total_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
[[ $((passed + failed)) -gt 0 ]] || die "no cell matched: ${patterns[*]}"
echo
printf '%-36s %-6s %7s  %s\n' cell result seconds notes
printf '%s\n' "${summary[@]}"
echo
[[ $failed -eq 0 ]] || echo "qemu: failed: ${failures[*]}"
echo "qemu: boot matrix took ${total}s"
echo "qemu: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
