#!/usr/bin/env bash
# tests/qemu/test_vm_monitor.sh — the monitor's user-address-space commands
# (issue 15, part 5): vmdemo, as, vmmap <id>, vmdemo free.
#
# Boots build/kernel.elf from a GRUB ISO (command line `monitor`) headless
# under TCG through tests/qemu/qemu_session.py and checks:
#   - `as` lists no space before the demo;
#   - `vmdemo` makes a space and its fork (ring-3 runs touch, read and grow
#     the stack in the first; the fork writes 4 shared pages: 4 copies);
#   - `as` lists both with 6 regions each, the resident counts vmdemo
#     reported, the fork's 4 copy-on-write copies, no CPU with them loaded,
#     and frames shared copy-on-write;
#   - `vmmap <id>` prints the regions in address order with their rights,
#     kinds, image offsets / stack floor and resident pages (16 written data
#     pages, 2 read-only pages read, the image page, the stack grown to 9
#     pages, 8 of them written), and a total equal to the space's resident count;
#   - a second `vmdemo`, `vmmap` of a missing id or of a non-number, and a
#     bad `vmdemo` argument each get one error line;
#   - `vmdemo free` destroys both: free frames, page tables and the number of
#     spaces are back to what they were before `vmdemo`; `as` lists none;
#   - `vmmap` without an argument still prints the kernel's ranges.
# Fails (exit 1) with the transcript on any mismatch or timeout; the
# transcript is kept in build/test/logs/vm-monitor.log either way.
#
# Environment: KERNEL (default build/kernel.elf), ACCEL (tcg).
set -euo pipefail

cd "$(dirname "$0")/../.."

PYTHONPATH=tests/qemu PYTHONDONTWRITEBYTECODE=1 exec python3 - <<'PYEOF'
import re
from qemu_session import PROMPT, plain, scenario

session = scenario("vm-monitor", "monitor", 90, mem="256M", step=8)
raw, cmd, check, finish, send, wait_for = (
    session.raw, session.cmd, session.check, session.finish, session.send, session.wait_for)

wait_for(re.escape(PROMPT), 0, timeout=15, what="first prompt")

out = cmd("as")
check(re.search(r"^address spaces: 0 live", out, re.M), f"as before vmdemo: '{out.strip()}'")

# ---- vmdemo ----
out = cmd("vmdemo")
m1 = re.search(r"vmdemo: space (\d+) 'demo': (\d+) pages resident \((\d+) filled with zeros, (\d+) from images\)", out)
m2 = re.search(r"vmdemo: space (\d+) 'demo-fork', its fork: (\d+) pages resident, (\d+) copied on write", out)
if not m1 or not m2:
    finish(False, f"vmdemo: '{out.strip()}'")
pid, pres, pzero = int(m1.group(1)), int(m1.group(2)), int(m1.group(3))
cid, cres, ccopies = int(m2.group(1)), int(m2.group(2)), int(m2.group(3))
# 16 data pages written, 2 read-only pages read, 8 stack pages grown into
check(pzero == 26, f"vmdemo: {pzero} pages filled with zeros, expected 26")
check(ccopies == 4, f"vmdemo: the fork copied {ccopies} pages, expected 4")
check(cres == pres, f"vmdemo: the fork has {cres} pages resident, the parent {pres}")

# ---- as ----
out = cmd("as")
m = re.search(r"^address spaces: (\d+) live; (\d+) faults, (\d+) resolved; (\d+) frames shared", out, re.M)
check(m and int(m.group(1)) == 2, f"as: not 2 spaces live: '{out.strip()}'")
check(m and int(m.group(4)) > 0, "as: no frame shared copy-on-write after the fork")
check(m and int(m.group(3)) <= int(m.group(2)), "as: more faults resolved than taken")
rows = {int(r[0]): r for r in re.findall(
    r"^\s+(\d+) (\S+)\s+(\d+)\s+(\d+)\s+(\d+) (\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", out, re.M)}
check(set(rows) == {pid, cid}, f"as: rows for spaces {sorted(rows)}, expected {pid} and {cid}")
if pid in rows and cid in rows:
    p, c = rows[pid], rows[cid]
    check(p[1] == "demo" and c[1] == "demo-fork", f"as: names {p[1]}, {c[1]}")
    check(p[2] == "6" and c[2] == "6", f"as: regions {p[2]}, {c[2]}, expected 6 each")
    check(int(p[3]) == pres and int(c[3]) == cres, f"as: resident {p[3]}, {c[3]}; vmdemo said {pres}, {cres}")
    check(int(p[4]) >= 4 and int(c[4]) >= 4, f"as: page-table pages {p[4]}, {c[4]}")
    check(p[5] == "-" and c[5] == "-", f"as: CPUs with a demo space loaded: {p[5]}, {c[5]}")
    check(int(p[6]) == 26, f"as: parent's zero fills {p[6]}")
    check(int(c[8]) == 4 and int(p[8]) == 0, f"as: cow copies parent {p[8]}, fork {c[8]}")


# ---- vmmap <id> ----
def vmmap(i):
    out = cmd(f"vmmap {i}")
    check(re.search(rf"^address space {i} \(demo(-fork)?\), PML4 at 0x[0-9a-f]+", out, re.M),
          f"vmmap {i}: no header: '{out.strip()}'")
    regs = re.findall(r"^\s+([0-9a-f]{16})-([0-9a-f]{16})\s+(\d+(?:\.\d)? \S+) ([r-][w-][x-]) (\S+)\s+(.*?)\s*(\d+)$",
                      out, re.M)
    tot = re.search(r"^\s+total: (\d+) regions, .*?, (\d+) pages resident", out, re.M)
    return out, regs, tot


for i, res in ((pid, pres), (cid, cres)):
    out, regs, tot = vmmap(i)
    check(len(regs) == 6, f"vmmap {i}: {len(regs)} region lines, expected 6: '{out.strip()}'")
    starts = [int(r[0], 16) for r in regs]
    check(starts == sorted(starts), f"vmmap {i}: regions not in address order")
    check(all(int(r[0], 16) < int(r[1], 16) for r in regs), f"vmmap {i}: an empty or reversed range")
    check(tot and int(tot.group(1)) == 6 and int(tot.group(2)) == res,
          f"vmmap {i}: total {tot.group(0) if tot else None}, expected 6 regions and {res} pages resident")
    check(tot and sum(int(r[6]) for r in regs) == int(tot.group(2)), f"vmmap {i}: the rows do not add up to the total")
    by_start = {int(r[0], 16): r for r in regs}
    want = {
        0x400000: ("r-x", "image", "+0x0"),
        0x500000: ("r--", "image", "+0x0"),
        0x40000000: ("rw-", "anon", "", "16"),
        0x40100000: ("r--", "anon", "", "2"),
        0x40200000: ("r--", "image", "+0x0", "1"),
    }
    for va, w in want.items():
        r = by_start.get(va)
        check(r and r[3] == w[0] and r[4] == w[1] and r[5] == w[2] and (len(w) < 4 or r[6] == w[3]),
              f"vmmap {i}: region at {va:#x}: {r}, expected {w}")
    stack = [r for r in regs if r[4] == "stack"]
    check(len(stack) == 1 and stack[0][1] == "00007fff00000000" and stack[0][3] == "rw-" and
          stack[0][5] == "floor 0x7ffefffc0000" and stack[0][6] == "8" and
          int(stack[0][0], 16) == 0x7fff00000000 - 9 * 4096,
          f"vmmap {i}: the stack (4 pages grown to 9, 8 of them written; floor 64 pages down): {stack}")

# ---- errors are one line ----
for line, expect in [("vmdemo", "exist already"), ("vmmap 99999", "no address space 99999"),
                     ("vmmap x", "not an address-space id"), ("vmdemo now", "the only argument"),
                     ("vmmap 1 2", "usage")]:
    out = cmd(line)
    check(len(out.strip().splitlines()) == 1 and expect in out, f"'{line}': '{out.strip()}'")

# ---- vmdemo free: counts back ----
out = cmd("vmdemo free")
m = re.search(r"vmdemo: spaces (\d+) and (\d+) destroyed; free frames (\d+) \(before vmdemo (\d+)\), "
              r"page tables (\d+) \(before (\d+)\), spaces (\d+) \(before (\d+)\)", out)
if not m:
    finish(False, f"vmdemo free: '{out.strip()}'")
check(int(m.group(1)) == pid and int(m.group(2)) == cid, f"vmdemo free: destroyed {m.group(1)}, {m.group(2)}")
check(m.group(3) == m.group(4), f"vmdemo free: free frames {m.group(3)}, before vmdemo {m.group(4)}")
check(m.group(5) == m.group(6), f"vmdemo free: page tables {m.group(5)}, before vmdemo {m.group(6)}")
check(m.group(7) == m.group(8) == "0", f"vmdemo free: spaces {m.group(7)}, before vmdemo {m.group(8)}")
out = cmd("as")
check(re.search(r"^address spaces: 0 live; \d+ faults, \d+ resolved; 0 frames shared", out, re.M),
      f"as after vmdemo free: '{out.strip()}'")
out = cmd(f"vmmap {pid}")
check(f"no address space {pid}" in out, f"vmmap {pid} after vmdemo free: '{out.strip()}'")
out = cmd("vmdemo free")
check("no demo spaces" in out, f"second vmdemo free: '{out.strip()}'")
out = cmd("vmmap")
check("direct map" in out and "kernel text" in out, "vmmap without an id: no kernel ranges")
out = cmd("help")
for name in ("as", "vmdemo", "vmmap"):
    check(re.search(rf"^  {name}\b", out, re.M), f"help does not list {name}")

# a second demo after the first was freed works the same
out = cmd("vmdemo")
check("copied on write" in out, f"vmdemo again: '{out.strip()}'")
out = cmd("vmdemo free")
m = re.search(r"free frames (\d+) \(before vmdemo (\d+)\)", out)
check(m and m.group(1) == m.group(2), f"second vmdemo free: '{out.strip()}'")

send(b"poweroff\r")
status = session.wait_exit(5, "poweroff")
check(status == 0, f"QEMU exit status after poweroff: {status} (expected 0)")
check(b"PANIC" not in raw, "a PANIC appeared in the transcript")

finish(not session.failures, f"{len(session.failures)} check(s) failed",
       note=f"{len(plain(raw).splitlines())} lines of transcript in {session.log}")
PYEOF
