#!/usr/bin/env bash
# tests/qemu/test_smp_monitor.sh — the monitor on four CPUs: `cpus` and a
# panic on an application processor.
#
# Boots build/kernel.elf from a GRUB ISO (command line `monitor`) with -smp 4
# under multi-threaded TCG through tests/qemu/qemu_session.py and checks:
#   - the boot log says `[smp] 4 of 4 CPUs online`;
#   - `cpus` lists CPU indices 0..3, each online, with distinct APIC IDs, and
#     after `alloc 100` and `free` of it, CPU 0's magazines hold an object;
#   - `panic 9` and `panic x` get one error line and the prompt returns;
#   - `panic 2` panics on CPU 2: the report says `PANIC at`, the line
#     `[smp] CPU 2 failed: 3 of 3 other CPUs stopped` follows (the BSP, which
#     was waiting for CPU 2, is among them), and nothing prints after
#     `halting.` (no CPU runs on).
# Fails (exit 1) with the transcript on any mismatch or timeout; the
# transcript is kept in build/test/logs/smp-monitor.log either way.
#
# Environment: KERNEL (default build/kernel.elf), ACCEL (tcg).
set -euo pipefail

cd "$(dirname "$0")/../.."

PYTHONPATH=tests/qemu PYTHONDONTWRITEBYTECODE=1 exec python3 - <<'PYEOF'
import re, time
from qemu_session import PROMPT, plain, scenario

session = scenario("smp-monitor", "monitor", 90, mem="256M", smp=4, step=15)
raw, cmd, check, finish, send, wait_for = (
    session.raw, session.cmd, session.check, session.finish, session.send, session.wait_for)

wait_for(re.escape(PROMPT), 0, timeout=40, what="first prompt")
boot = plain(raw)
check("[smp] 4 of 4 CPUs online" in boot, "no '[smp] 4 of 4 CPUs online' in the boot log")

# A block freed on CPU 0 waits in CPU 0's magazine: `cpus` must show it.
m = re.search(r"alloc: 100 bytes at (0x[0-9a-f]+)", cmd("alloc 100"))
check(m, "alloc 100: no address")
if m:
    cmd(f"free {m.group(1)}")
out = cmd("cpus")
rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+(online|offline)\b", out, re.M)
check([int(r[0]) for r in rows] == [0, 1, 2, 3], f"cpus: indices {[r[0] for r in rows]}, not 0..3")
check(all(r[2] == "online" for r in rows), "cpus: a CPU is not online")
check(len({r[1] for r in rows}) == len(rows), "cpus: APIC IDs are not distinct")
m = re.search(r"^\s*0\s+\d+\s+online\s+\d+\s+\d+\s+\d+\s+(\d+)\s+(\d+) \(", out, re.M)
check(m and int(m.group(2)) > 0, f"cpus: CPU 0's heap magazines hold nothing ({m.group(0) if m else out!r})")

for bad in ("panic 9", "panic x"):
    out = cmd(bad)
    check(re.search(r"^panic: .*not an online CPU", out, re.M), f"'{bad}': no error line")

start = len(raw)
send(b"panic 2\r")
m = wait_for(rb"PANIC at .*?halting\.", start, timeout=30, what="the panic report", panic_ok=True)
text = plain(raw[start:])
check("monitor: deliberate panic" in text, "the report does not carry the panic message")
check(re.search(r"\[smp\] CPU 2 failed: 3 of 3 other CPUs stopped", text),
      "no '[smp] CPU 2 failed: 3 of 3 other CPUs stopped' line")
deadline = time.monotonic() + 3  # anything after the halt would be another CPU still running
while time.monotonic() < deadline and session.pump(0.2):
    pass
tail = plain(raw[m.end():]).strip()
check(tail == "", f"output after 'halting.': {tail[:200]!r}")
finish(not session.failures, "checks failed" if session.failures else "")
PYEOF
