#!/usr/bin/env bash
# tools/deps.sh — make sure the Debian packages SlayerOS needs are installed.
#
#   tools/deps.sh           install whatever is missing (apt-get); a fast no-op
#                           when everything is already there
#   tools/deps.sh --check   only report: print the missing packages, exit 1 if
#                           any is missing, 0 otherwise
#
# The list covers the kernel build, ISO building (GRUB and xorriso), QEMU with
# SeaBIOS and OVMF, the host tests (Criterion, sanitizers via gcc), the
# allocator benchmarks (mimalloc, jemalloc; make bench-programs also runs
# sqlite3, xz, perl, sort, python3 and gcc), the libFuzzer targets (clang and
# its runtimes, llvm-14 for coverage reports), valgrind, gdb, bear, and PSF
# console fonts (Debian's fonts-terminus ships only a TTF; the Terminus .psf.gz
# files under /usr/share/consolefonts come from console-setup-linux).
set -euo pipefail

PACKAGES=(
    gcc make binutils                      # kernel and host builds
    qemu-system-x86 ovmf                   # run and test (SeaBIOS comes with QEMU)
    xorriso mtools                         # ISO images (grub-mkrescue needs both)
    grub-pc-bin grub-efi-amd64-bin grub-common
    libcriterion-dev                       # host unit tests
    libmimalloc-dev libjemalloc-dev        # allocator benchmarks
    valgrind gdb python3 bear
    clang libclang-rt-14-dev               # make fuzz: libFuzzer + ASan/UBSan runtimes (libclang_rt.fuzzer)
    console-setup-linux                    # PSF fonts in /usr/share/consolefonts
    llvm-14                                # make fuzz-coverage: llvm-profdata-14, llvm-cov-14
    sqlite3                                # make bench-programs: the sqlite3 program
    xz-utils                               # make bench-programs: the xz program
    perl                                   # make bench-programs: the perl program (its Digest::MD5 comes with it)
    coreutils                              # make bench-programs: sort
)

usage() {
    echo "usage: $0 [--check]" >&2
    exit 2
}

# Prints the packages of PACKAGES that dpkg does not list as installed.
missing_packages() {
    local pkg status
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [[ "$status" == installed ]] || echo "$pkg"
    done
}

check_only=0
case "${1:-}" in
    "") ;;
    --check) check_only=1 ;;
    *) usage ;;
esac
[[ $# -le 1 ]] || usage

if ! command -v dpkg-query >/dev/null; then
    echo "deps: dpkg-query not found: this script knows Debian and Ubuntu only;" \
         "install by hand: ${PACKAGES[*]}" >&2
    exit 1
fi

mapfile -t missing < <(missing_packages)
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $check_only -eq 1 ]]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: install them with tools/deps.sh (or: make deps)" >&2
    exit 1
fi

# Root runs apt-get directly; anyone else goes through sudo when there is one.
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then
        SUDO=(sudo)
    else
        echo "deps: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

apt_get() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q \
        -o Dpkg::Use-Pty=0 "$@"
}

lists_empty() {
    ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

echo "deps: installing ${missing[*]}"
if lists_empty; then
    apt_get update
fi
if ! apt_get install --no-install-recommends "${missing[@]}"; then
    # Stale package lists are the usual cause: refresh once and retry.
    echo "deps: install failed; running apt-get update and retrying" >&2
    apt_get update
    apt_get install --no-install-recommends "${missing[@]}"
fi

mapfile -t still_missing < <(missing_packages)
if [[ ${#still_missing[@]} -ne 0 ]]; then
    echo "deps: still missing after install: ${still_missing[*]}" >&2
    exit 1
fi
echo "deps: all packages installed"
