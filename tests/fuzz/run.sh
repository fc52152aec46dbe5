#!/usr/bin/env bash
# tests/fuzz/run.sh — runs the libFuzzer targets built by mk/fuzz.mk.
#
#   run.sh --dir D --seconds N [--jobs J] T...
#                                            fuzz each target T for N seconds
#                                            with its corpus in D/corpus/T,
#                                            starting from the kept corpus
#                                            (tests/fuzz/corpus/T), the seeds
#                                            and the regressions; with J > 1,
#                                            J processes at once (libFuzzer's
#                                            -fork=J), one per core
#   run.sh --smoke --dir D --seconds N T...  replay tests/fuzz/regressions/T,
#                                            tests/fuzz/corpus/T and D/seeds/T
#                                            once each, then fuzz N seconds
#                                            from those (a fresh scratch
#                                            corpus, not D/corpus)
#   run.sh --merge --dir D T...              minimize the kept corpus: the
#                                            inputs of tests/fuzz/corpus/T and
#                                            D/corpus/T that add coverage
#                                            (libFuzzer -merge=1, smallest
#                                            first) replace tests/fuzz/corpus/T
#
# Prints one line per target with its executions (libFuzzer's final stats) and
# a summary line. Exits 1 on the first crash, leak, timeout or failed check,
# printing the crashing input's path and the end of libFuzzer's output.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
smoke=0
merge=0
dir=
seconds=
jobs=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=1; shift ;;
        --merge) merge=1; shift ;;
        --dir) dir=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --) shift; break ;;
        -*) echo "usage: $0 [--smoke|--merge] --dir D --seconds N [--jobs J] TARGET..." >&2; exit 2 ;;
        *) break ;;
    esac
done
[[ $merge -eq 1 && -z "$seconds" ]] && seconds=0
[[ -n "$dir" && -n "$seconds" && $# -gt 0 ]] || {
    echo "usage: $0 [--smoke|--merge] --dir D --seconds N [--jobs J] TARGET..." >&2
    exit 2
}

# Leaks are findings too; symbolized reports name the kernel source line.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Options every run shares: a hang of more than 25 s is a finding.
common=(-timeout=25 -print_final_stats=1)
# Fuzzing (not merging): inputs that run fast get more mutations than slow
# ones (libFuzzer's entropic schedule scaled by execution time). A few inputs
# that map gigabytes with 4 KiB pages or carve hundreds of slabs cost a
# hundred ordinary ones, and unscaled they are mutated as often as the
# others. At equal time the targets reach the same edges and features with
# 1.5x (heap) to 3.6x (paging) the executions (docs/testing.md).
schedule=(-entropic_scale_per_exec_time=1)

mode=$([[ $smoke -eq 1 ]] && echo smoke || echo fuzz)

# The longest input target $1 is given: the FUZZ_MAX_LEN its harness defines
# (the bytes it reads; the allocator targets bound their operations so that
# inputs do not grow past what they use), else 64 KiB.
max_len() {
    local n
    n=$(sed -n 's/^#define FUZZ_MAX_LEN \([0-9]*\).*/\1/p' "$here/fuzz_$1.c")
    echo "-max_len=${n:-65536}"
}

if [[ $merge -eq 1 ]]; then
    for t in "$@"; do
        bin="$dir/fuzz_$t"
        kept="$here/corpus/$t"
        [[ -x "$bin" ]] || { echo "fuzz-merge: $bin not built" >&2; exit 1; }
        new="$dir/merge/$t"
        rm -rf "$new"
        mkdir -p "$new" "$kept" "$dir/logs"
        before=$(find "$kept" -type f | wc -l)
        "$bin" "${common[@]}" "$(max_len "$t")" -merge=1 -use_counters=0 "$new" "$kept" "$dir/corpus/$t" \
            >"$dir/logs/$t.merge.log" 2>&1 || {
            echo "fuzz-merge: $t failed; last lines of $dir/logs/$t.merge.log:" >&2
            tail -n 20 "$dir/logs/$t.merge.log" >&2
            exit 1
        }
        rm -rf "$kept"
        mv "$new" "$kept"
        printf 'fuzz-merge: %-10s %4d -> %4d inputs, %s KiB (tests/fuzz/corpus/%s)\n' "$t" \
            "$before" "$(find "$kept" -type f | wc -l)" "$(du -sk --apparent-size "$kept" | cut -f1)" "$t"
    done
    exit 0
fi
logs="$dir/logs"
mkdir -p "$logs"
total=0
start=$(date +%s)

# Prints the crash report of target $1 from log $2 and exits 1.
crashed() {
    local t=$1 log=$2 unit
    unit=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "fuzz-$mode: $t FAILED; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    if [[ -n "$unit" ]]; then
        echo "fuzz-$mode: $t: crashing input: $unit" >&2
        echo "fuzz-$mode: replay with: $dir/fuzz_$t $unit" >&2
    fi
    exit 1
}

for t in "$@"; do
    bin="$dir/fuzz_$t"
    seeds="$dir/seeds/$t"
    regs="$here/regressions/$t"
    crashes="$dir/crashes/$t"
    log="$logs/$t.$mode.log"
    [[ -x "$bin" ]] || { echo "fuzz-$mode: $bin not built" >&2; exit 1; }
    mkdir -p "$crashes" "$seeds"
    kept="$here/corpus/$t"
    inputs=("$seeds")
    [[ -d "$kept" ]] && inputs+=("$kept")
    [[ -d "$regs" ]] && inputs+=("$regs")

    replayed=0
    if [[ $smoke -eq 1 ]]; then
        # Every regression and seed once, by name: a failure names its file.
        mapfile -t files < <(find "${inputs[@]}" -type f | sort)
        if [[ ${#files[@]} -gt 0 ]]; then
            if ! "$bin" "${common[@]}" "$(max_len "$t")" -artifact_prefix="$crashes/" "${files[@]}" \
                    >"$logs/$t.replay.log" 2>&1; then
                failing=$(sed -n 's/^Running: //p' "$logs/$t.replay.log" | tail -n 1)
                echo "fuzz-smoke: $t: input $failing fails" >&2
                crashed "$t" "$logs/$t.replay.log"
            fi
            replayed=${#files[@]}
        fi
        corpus="$dir/smoke-corpus/$t"
        rm -rf "$corpus"
    else
        corpus="$dir/corpus/$t"
    fi
    mkdir -p "$corpus"

    fork=()
    [[ $smoke -eq 0 && $jobs -gt 1 ]] && fork=(-fork="$jobs")
    if ! "$bin" "${common[@]}" "$(max_len "$t")" "${schedule[@]}" "${fork[@]}" -max_total_time="$seconds" \
            -artifact_prefix="$crashes/" "$corpus" "${inputs[@]}" >"$log" 2>&1; then
        crashed "$t" "$log"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    # -fork: the parent's progress lines count every process's executions
    [[ -n "$runs" ]] || runs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -n 1)
    [[ -n "$runs" ]] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    [[ -n "$runs" ]] || { echo "fuzz-$mode: $t: no run count in $log" >&2; exit 1; }
    cov=$(sed -n 's/.*\(cov: [0-9]*\).*/\1/p' "$log" | tail -n 1)
    units=$(find "$corpus" -type f | wc -l)
    extra=
    [[ $smoke -eq 1 ]] && extra=", $replayed inputs replayed"
    [[ ${#fork[@]} -gt 0 ]] && extra=", $jobs processes (-fork: cov counts differently)"
    printf 'fuzz-%s: %-10s %10s executions in %ss, %s, corpus %s%s\n' \
        "$mode" "$t" "$runs" "$seconds" "${cov:-cov: ?}" "$units" "$extra"
    total=$((total + runs))
done
echo "fuzz-$mode: $# targets, $total executions, no failures ($(( $(date +%s) - start ))s)"
if [[ $smoke -eq 0 ]]; then
    echo "fuzz: new inputs are in $dir/corpus/<target>; 'make fuzz-merge' minimizes them into" \
        "tests/fuzz/corpus/<target> (commit what changed)"
fi
