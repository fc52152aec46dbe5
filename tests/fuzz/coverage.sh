#!/usr/bin/env bash
# tests/fuzz/coverage.sh — line coverage of the kernel reached by the kept
# fuzz inputs (make fuzz-coverage; issue 17).
#
#   coverage.sh --dir D --build B T...
#
# D holds the coverage-instrumented replay binaries D/fuzz_T (clang
# -fprofile-instr-generate -fcoverage-mapping, tests/fuzz/replay.c as main).
# Each replays tests/fuzz/corpus/T, tests/fuzz/regressions/T and the
# generated seeds B/seeds/T once; the profiles are merged and llvm-cov prints
# line coverage per file of kernel/mm, kernel/boot and kernel/exec, also written as a
# Markdown table to D/coverage.md (the table docs/testing.md carries).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=
build=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) dir=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        -*) echo "usage: $0 --dir D --build B TARGET..." >&2; exit 2 ;;
        *) break ;;
    esac
done
[[ -n "$dir" && -n "$build" && $# -gt 0 ]] || {
    echo "usage: $0 --dir D --build B TARGET..." >&2
    exit 2
}
profdata=${LLVM_PROFDATA:-llvm-profdata-14}
cov=${LLVM_COV:-llvm-cov-14}

rm -rf "$dir/prof"
mkdir -p "$dir/prof"
objects=()
for t in "$@"; do
    bin="$dir/fuzz_$t"
    [[ -x "$bin" ]] || { echo "fuzz-coverage: $bin not built" >&2; exit 1; }
    # A failing input stops the run: the corpus and regressions must pass.
    out=$(LLVM_PROFILE_FILE="$dir/prof/$t.profraw" "$bin" "$here/corpus/$t" \
              "$here/regressions/$t" "$build/seeds/$t" 2>"$dir/prof/$t.log") || {
        echo "fuzz-coverage: $t failed; last lines of $dir/prof/$t.log:" >&2
        tail -n 20 "$dir/prof/$t.log" >&2
        exit 1
    }
    echo "fuzz-coverage: $t: $out"
    objects+=(-object "$bin")
done
"$profdata" merge -sparse "$dir"/prof/*.profraw -o "$dir/prof/merged.profdata"

# Per file: lines, missed lines, line coverage (llvm-cov's report columns).
report=$("$cov" report "${objects[@]:1}" -instr-profile="$dir/prof/merged.profdata" \
             "$root/kernel/mm" "$root/kernel/boot" "$root/kernel/exec")
echo "$report" | sed "s|$root/||"
{
    echo "| file | lines | missed | line coverage |"
    echo "|---|---:|---:|---:|"
    echo "$report" | awk -v root="$root/" '
        $1 ~ /\.(c|h)$/ && $8 > 0 {
            f = $1; sub(root, "", f)
            if (f !~ /^kernel\//) f = "kernel/" f
            # columns: regions missed cover functions missed cover lines missed cover ...
            printf "| %s | %s | %s | %s |\n", f, $8, $9, $10
        }
        $1 == "TOTAL" { printf "| total | %s | %s | %s |\n", $8, $9, $10 }'
} >"$dir/coverage.md"
echo "fuzz-coverage: table in $dir/coverage.md"
