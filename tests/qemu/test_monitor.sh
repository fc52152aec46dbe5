#!/usr/bin/env bash
# tests/qemu/test_monitor.sh — drives the kernel monitor through COM1.
#
# Boots build/kernel.elf from a GRUB ISO (command line `monitor`, so no
# self-tests run) headless under TCG through tests/qemu/qemu_session.py (COM1
# on QEMU's stdio), and types scripted commands into it, checking the answers:
#   - `mem` reports the same usable memory as the boot log's `mem:` line
#   - `alloc 100` then `free <addr>` brings `heap`'s in-use bytes back
#   - with blocks of every tier held (`alloc 5000`, 16, 200, 3000, 4096, 9000,
#     100K), `ktest` passes every self-test and `heap` shows the same live
#     blocks and bytes in use afterwards (nothing leaked); freeing the held
#     blocks brings the heap back to where it started
#   - `walk` of the kernel text start shows a present, read-only, executable leaf
#   - an unknown command, bad arguments and `free 0x1234` get one error line
#   - an over-long line and binary bytes do not crash it (the prompt returns)
#   - the other commands answer without a panic
#   - `poweroff` ends QEMU with status 0
# Fails (exit 1) with the whole transcript on any mismatch or timeout; the
# transcript is kept in build/test/logs/monitor.log either way.
#
# Environment: KERNEL (default build/kernel.elf), MONITOR_KTEST_TIMEOUT
# (seconds for `ktest`, default 90), MONITOR_TIMEOUT (seconds for the whole
# run, default MONITOR_KTEST_TIMEOUT + 20), ACCEL (tcg).
set -euo pipefail

cd "$(dirname "$0")/../.."

PYTHONPATH=tests/qemu PYTHONDONTWRITEBYTECODE=1 exec python3 - <<'PYEOF'
import os, re, time
from qemu_session import PROMPT, plain, scenario

KTEST_TIMEOUT = int(os.environ.get("MONITOR_KTEST_TIMEOUT") or 90)
session = scenario("monitor", "monitor",
                   int(os.environ.get("MONITOR_TIMEOUT") or KTEST_TIMEOUT + 20), mem="256M", step=8)
raw, cmd, check, finish, send, wait_for = (
    session.raw, session.cmd, session.check, session.finish, session.send, session.wait_for)


# ---- boot to the prompt ----
wait_for(re.escape(PROMPT), 0, timeout=15, what="first prompt")
boot = plain(raw)
m = re.search(r"mem: usable=(\d+)KiB", boot)
if not m:
    finish(False, "no 'mem: usable=' line in the boot log")
boot_usable = int(m.group(1))

# ---- mem agrees with the boot summary ----
out = cmd("mem")
m = re.search(r"usable\s+(\d+) KiB", out)
check(m and int(m.group(1)) == boot_usable,
      f"mem: usable {m.group(1) if m else '?'} KiB, boot log said {boot_usable} KiB")


def heap_field(pattern, what):
    """The number `pattern` captures in the output of `heap`."""
    m = re.search(pattern, cmd("heap"))
    if not m:
        finish(False, f"heap: no '{what}' line")
    return int(m.group(1))


def heap_in_use():
    return heap_field(r"in use\s+(\d+) bytes", "in use N bytes")


def heap_live():
    return heap_field(r"live blocks\s+(\d+)", "live blocks N")


# ---- alloc/free brings the heap back ----
before = heap_in_use()
before_live = heap_live()
out = cmd("alloc 100")
m = re.search(r"alloc: 100 bytes at (0x[0-9a-f]+)", out)
if not m:
    finish(False, "alloc 100: no address in the answer")
addr = m.group(1)
during = heap_in_use()
check(during >= before + 100, f"heap in use after alloc 100: {during}, before {before}")
out = cmd(f"free {addr}")
check("freed" in out, f"free {addr}: '{out.strip()}'")
after = heap_in_use()
check(after == before, f"heap in use after free: {after}, before alloc {before}")
out = cmd(f"free {addr}")
check("already free" in out, f"second free {addr}: '{out.strip()}'")

# ---- ktest from the monitor with blocks of every tier held (issue 11, 3c) ----
# The self-tests must pass in any heap state and leave nothing behind: hold a
# medium block (the 5000 bytes that once made the heap OOM test fail and leak
# a 9000-byte block), slab objects of a few classes, a 4 KiB-class object and
# a large block, run every self-test, then `heap` must show exactly the same
# live blocks and bytes in use as before `ktest`.
def heap_counts():
    out = cmd("heap")
    m = re.search(r"in use\s+(\d+) bytes", out)
    n = re.search(r"live blocks\s+(\d+)", out)
    if not m or not n:
        finish(False, f"heap: no 'in use' / 'live blocks' line: '{out.strip()}'")
    return int(m.group(1)), int(n.group(1))


held = []
for size in ["5000", "16", "200", "3000", "4096", "9000", "100K"]:
    out = cmd(f"alloc {size}")
    m = re.search(r"alloc: \d+ bytes at (0x[0-9a-f]+)", out)
    check(m, f"alloc {size}: '{out.strip()}'")
    if m:
        held.append(m.group(1))
before_ktest = heap_counts()
out = cmd("ktest", timeout=KTEST_TIMEOUT)
summary = re.search(r"ktest: (\d+) passed, (\d+) failed", out)
check(summary and summary.group(2) == "0" and int(summary.group(1)) > 0,
      "ktest from the monitor with blocks held: " +
      (summary.group(0) if summary else "no summary") + "; " +
      "; ".join(l for l in out.splitlines() if "[FAIL]" in l)[:2000])
after_ktest = heap_counts()
check(after_ktest == before_ktest,
      f"heap after ktest (in use, live blocks) {after_ktest}, before {before_ktest}: something leaked")
for a in held:
    out = cmd(f"free {a}")
    check("freed" in out, f"free {a} after ktest: '{out.strip()}'")
check(heap_counts() == (before, before_live),
      f"heap after freeing the held blocks {heap_counts()}, at the start {(before, before_live)}")

# ---- walk of kernel text: present, read-only, executable ----
out = cmd("walk 0xffffffff80200000")
leaf = [l for l in out.splitlines() if "page at" in l]
check(len(leaf) == 1 and " P RO " in leaf[0] and " NX" not in leaf[0],
      f"walk of kernel text: leaf line {leaf!r}")

# ---- errors are one line, never a crash ----
out = cmd("frobnicate now")
check(out.strip() == "monitor: unknown command 'frobnicate' (try 'help')",
      f"unknown command: '{out.strip()}'")
out = cmd("free 0x1234")
check(out.strip().startswith("free: ") and "not freed" in out and len(out.strip().splitlines()) == 1,
      f"free 0x1234: '{out.strip()}'")
for line, expect in [("walk", "usage"), ("walk nonsense", "not an address"),
                     ("alloc 0", "not a size"), ("alloc 12Q", "not a size"),
                     ("frames 0x1000 0", "count must be"), ("help nosuch", "no command"),
                     ("mem extra", "usage")]:
    out = cmd(line)
    check(expect in out and len(out.strip().splitlines()) == 1, f"'{line}': '{out.strip()}'")

# ---- an over-long line ----
start = raw.rfind(PROMPT)
send(b"x" * 300 + b"\r")
wait_for(rb"line too long.*?" + re.escape(PROMPT), start, what="prompt after a long line")

# ---- binary bytes: every byte value but CR/LF, then control/8-bit junk ----
start = len(raw)
junk = bytes(b for b in range(256) if b not in (10, 13))
junk += bytes((i * 37 + 11) % 256 for i in range(2000) if not 0x20 <= (i * 37 + 11) % 256 < 0x7f
              and (i * 37 + 11) % 256 not in (3, 10, 13))
send(junk + b"\r")
wait_for(re.escape(PROMPT), start, what="prompt after binary input")
time.sleep(0.3)
session.pump(0.1)

# ---- the other commands answer ----
out = cmd("version")
check("SlayerOS" in out and "monitor" in out, f"version: '{out.strip()}'")
out = cmd("help")
for name in ["help", "version", "mem", "memmap", "frames", "heap", "walk", "vmmap", "alloc",
             "free", "ktest", "bench", "panic", "reboot", "poweroff"]:
    check(re.search(rf"^  {name}\b", out, re.M), f"help does not list {name}")
out = cmd("memmap")
check("usable" in out, "memmap: no usable region")
out = cmd("frames")
check("consistent            yes" in out, f"frames: '{out.strip()}'")
out = cmd("frames 0 4")
check("used" in out, f"frames 0 4: '{out.strip()}'")
out = cmd("vmmap")
check(re.search(r"r-?x.*kernel text", out) or re.search(r" rxs. .*kernel text", out),
      f"vmmap: no executable kernel text range")
check("direct map" in out, "vmmap: no direct map range")
out = cmd("heap")
check("size classes" in out, "heap: no size classes")

# ---- poweroff ends QEMU ----
send(b"poweroff\r")
status = session.wait_exit(5, "poweroff")
check(status == 0, f"QEMU exit status after poweroff: {status} (expected 0)")
check(b"PANIC" not in raw, "a PANIC appeared in the transcript")

finish(not session.failures, f"{len(session.failures)} check(s) failed",
       note=f"{len(plain(raw).splitlines())} lines of transcript in {session.log}")
PYEOF
