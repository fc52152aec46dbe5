#!/usr/bin/env bash
# tests/qemu/test_proc_monitor.sh — the monitor's process commands (issue 16,
# part 6): ps, run, kill, vmmap pid <n>.
#
# Boots build/kernel.elf from a GRUB ISO (command line `monitor`) with 2 CPUs
# headless under TCG through tests/qemu/qemu_session.py and checks:
#   - `ps` before anything ran: its header and "0 processes";
#   - `run hello` prints the status line of what hello did: "exited with
#     status 0" when user/crt0.S ends main with a system call (exit_group),
#     "killed by SIGILL" (and the kernel's [proc] line) while it ends with ud2;
#   - `run echo one two three` passes the arguments (echo prints them) and
#     exits with status 0;
#   - `run nosuch` and `run &` answer with one clear line;
#   - `run spin &` returns at once with the pid; `ps` then shows spin alive
#     with one thread, resident pages and timer ticks growing; `as` lists its
#     space; `vmmap pid <pid>` and `vmmap <space id>` show the same regions
#     (the image at 0x400000 r-x, one rw- stack at the top of the user half) with
#     the process named; `kill <pid>` says it is gone, `ps` no longer lists
#     it, a second `kill` says "no such process", `vmmap pid` of it too;
#   - `run spin` in the foreground ends with Ctrl-C: "^C", then
#     "[run] pid N killed by SIGKILL", then the prompt;
#   - afterwards no process and no address space is left (`ps`, `as`);
#   - bad arguments (`kill x`, `kill 0`, `vmmap pid x`, `vmmap foo 1`) get one
#     error line each; `help` lists ps, run and kill.
# The spin and echo parts need user/spin.c and user/echo.c (the user world's
# programs); without them they are reported as not run (a NOTE line), never
# passed silently.
# Fails (exit 1) with the transcript on any mismatch or timeout; the
# transcript is kept in build/test/logs/proc-monitor.log either way.
#
# Environment: KERNEL (default build/kernel.elf), ACCEL (tcg).
set -euo pipefail

cd "$(dirname "$0")/../.."

PYTHONPATH=tests/qemu PYTHONDONTWRITEBYTECODE=1 exec python3 - <<'PYEOF'
import os
import re
import time
from qemu_session import PROMPT, plain, scenario

session = scenario("proc-monitor", "monitor", 150, mem="256M", smp=2, step=15)
raw, cmd, check, finish, send, wait_for = (
    session.raw, session.cmd, session.check, session.finish, session.send, session.wait_for)

wait_for(re.escape(PROMPT), 0, timeout=30, what="first prompt")
PS_ROW = re.compile(r"^\s+(\d+)\s+(\d+) (alive|zombie)\s+(\d+)\s+(\S+)\s+(\d+) KiB\s+(\d+) (\S+)\s*$", re.M)
PS_SUM = re.compile(r"^(\d+) processes; (\d+) threads \((\d+) runnable\), (\d+) switches, (\d+) preemptions", re.M)


def ps():
    out = cmd("ps")
    check(re.search(r"^\s+pid\s+ppid state\s+thr cpu\s+resident\s+ticks name", out, re.M),
          f"ps: no header: '{out.strip()}'")
    m = PS_SUM.search(out)
    check(m, f"ps: no summary line: '{out.strip()}'")
    rows = {int(r[0]): r for r in PS_ROW.findall(out)}
    check(not m or int(m.group(1)) == len(rows), f"ps: summary says {m and m.group(1)}, {len(rows)} rows")
    return out, rows, m


out, rows, summ = ps()
check(summ and summ.group(1) == "0" and not rows, f"ps before any program: '{out.strip()}'")
check(summ and int(summ.group(2)) >= 3, "ps: fewer than 3 threads (main and two idle threads)")

# ---- run hello: the status line says what hello did ----
crt0 = open("user/crt0.S").read()
exits = re.search(r"^\s*syscall\b", crt0, re.M) is not None  # main's return goes to exit_group
out = cmd("run hello", timeout=30)
m = re.search(r"^\[run\] pid (\d+) (exited with status \d+|killed by \S+)$", out, re.M)
check(m, f"run hello: no status line: '{out.strip()}'")
if m:
    if exits:
        check(m.group(2) == "exited with status 0", f"run hello: '{m.group(0)}', expected exit status 0")
    else:
        check(m.group(2) == "killed by SIGILL", f"run hello (crt0 ends with ud2): '{m.group(0)}'")
        check(re.search(rf"^\[proc\] pid {m.group(1)} \(hello\) .*killed \(SIGILL\)", out, re.M),
              f"run hello: no [proc] line for the ud2: '{out.strip()}'")
out, rows, summ = ps()
check(not rows, f"ps after run hello: a process is left: '{out.strip()}'")

# ---- run with arguments (user/echo.c prints them) ----
if os.path.exists("user/echo.c"):
    out = cmd("run echo one  two three", timeout=30)
    check(re.search(r"^one two three$", out, re.M) and
          re.search(r"^\[run\] pid \d+ exited with status 0$", out, re.M), f"run echo: '{out.strip()}'")
else:
    print("NOTE proc-monitor: user/echo.c is not in this tree: run with arguments not checked")

# ---- errors are one line ----
for line, expect in [("run nosuch", "run: no program 'nosuch'"),
                     ("run nosuch &", "run: no program 'nosuch'"),
                     ("run &", "which program"),
                     ("kill x", "not a process id"), ("kill 0", "not a process id"),
                     ("kill 4242", "no such process 4242"),
                     ("vmmap pid x", "not a process id"), ("vmmap pid 4242", "no such process 4242"),
                     ("vmmap foo 1", "usage"), ("vmmap 4242", "no address space 4242")]:
    out = cmd(line)
    check(len(out.strip().splitlines()) == 1 and expect in out, f"'{line}': '{out.strip()}'")

have_spin = os.path.exists("user/spin.c")
if not have_spin:
    print("NOTE proc-monitor: user/spin.c is not in this tree: the run spin &, ps, vmmap pid, kill "
          "and Ctrl-C checks did not run")
else:
    # ---- run spin & ----
    out = cmd("run spin &")
    m = re.search(r"^\[run\] pid (\d+) started in the background \(spin\)$", out, re.M)
    check(m, f"run spin &: '{out.strip()}'")
    spid = int(m.group(1)) if m else -1
    time.sleep(1)
    out, rows, summ = ps()
    r = rows.get(spid)
    check(r and r[1] == "0" and r[2] == "alive" and r[3] == "1" and r[7] == "spin",
          f"ps: spin (pid {spid}) not alive with 1 thread and parent 0: {r}")
    check(r and int(r[5]) > 0, f"ps: spin has no resident pages: {r}")
    t1 = int(r[6]) if r else 0
    time.sleep(1)
    out, rows, summ = ps()
    r = rows.get(spid)
    check(r and int(r[6]) > t1, f"ps: spin's ticks did not grow ({t1} then {r and r[6]}): not running?")
    check(summ and int(summ.group(4)) > 0, "ps: no switches counted")

    # ---- its space: as, vmmap pid <n>, vmmap <id> ----
    out = cmd("as")
    sp = re.search(r"^\s+(\d+) spin\s+(\d+)\s+(\d+)", out, re.M)
    check(sp, f"as: no space named spin: '{out.strip()}'")
    REG = re.compile(r"^\s+([0-9a-f]{16})-([0-9a-f]{16})\s+(\d+(?:\.\d)? \S+) ([r-][w-][x-]) (\S+)\s+(.*?)\s*(\d+)$", re.M)

    def regions(out, what):
        regs = REG.findall(out)
        tot = re.search(r"^\s+total: (\d+) regions, .*?, (\d+) pages resident", out, re.M)
        check(regs and tot and int(tot.group(1)) == len(regs), f"{what}: regions and total disagree: '{out.strip()}'")
        by = {int(x[0], 16): x for x in regs}
        img = by.get(0x400000)
        check(img and img[3] == "r-x" and img[4] == "image", f"{what}: no r-x image region at 0x400000: {img}")
        stack = [x for x in regs if x[4] == "stack"]
        check(len(stack) == 1 and int(stack[0][1], 16) >= 0x7fff00000000 and stack[0][3] == "rw-",
              f"{what}: the stack: {stack}")
        check(all(not ("w" in x[3] and "x" in x[3]) for x in regs), f"{what}: a writable and executable region")
        return [x[:5] for x in regs]

    out = cmd(f"vmmap pid {spid}")
    check(re.search(rf"^address space {sp.group(1) if sp else '?'} \(spin\), PML4 at 0x[0-9a-f]+, process {spid};",
                    out, re.M), f"vmmap pid {spid}: header: '{out.strip()}'")
    by_pid = regions(out, f"vmmap pid {spid}")
    if sp:
        out = cmd(f"vmmap {sp.group(1)}")
        check(re.search(rf"^address space {sp.group(1)} \(spin\), .*process {spid};", out, re.M),
              f"vmmap {sp.group(1)}: header: '{out.strip()}'")
        check(regions(out, f"vmmap {sp.group(1)}") == by_pid, "vmmap <id> and vmmap pid <n> disagree")

    # ---- kill ----
    out = cmd(f"kill {spid}")
    check(re.search(rf"^kill: pid {spid} killed \(SIGKILL\)$", out, re.M), f"kill {spid}: '{out.strip()}'")
    out, rows, summ = ps()
    check(spid not in rows, f"ps after kill: spin (pid {spid}) still listed: '{out.strip()}'")
    out = cmd(f"kill {spid}")
    check(f"kill: no such process {spid}" in out, f"second kill {spid}: '{out.strip()}'")
    out = cmd(f"vmmap pid {spid}")
    check(f"no such process {spid}" in out, f"vmmap pid {spid} after kill: '{out.strip()}'")

    # ---- run spin in the foreground, Ctrl-C ----
    start = raw.rfind(PROMPT)
    send(b"run spin\r")
    wait_for(re.escape(PROMPT + b"run spin") + rb"\r?\n", start, what="run spin echoed")
    time.sleep(1.5)
    check(raw.rfind(PROMPT) == start, "run spin (foreground) returned to the prompt by itself")
    send(b"\x03")
    m = wait_for(rb"\^C\r?\n\[run\] pid (\d+) killed by SIGKILL\r?\n" + re.escape(PROMPT), start,
                 what="Ctrl-C ends the foreground spin")
    out, rows, summ = ps()
    check(not rows, f"ps after Ctrl-C: '{out.strip()}'")

    # ---- two in the background, ps lists both, kill both ----
    pids = []
    for _ in range(2):
        out = cmd("run spin &")
        m = re.search(r"^\[run\] pid (\d+) started in the background", out, re.M)
        check(m, f"run spin & (again): '{out.strip()}'")
        if m:
            pids.append(int(m.group(1)))
    out, rows, summ = ps()
    check(sorted(rows) == sorted(pids), f"ps with two spins: rows {sorted(rows)}, expected {pids}")
    for p in pids:
        out = cmd(f"kill {p}")
        check(f"kill: pid {p} killed (SIGKILL)" in out, f"kill {p}: '{out.strip()}'")

# ---- nothing left ----
out, rows, summ = ps()
check(not rows and summ and summ.group(1) == "0", f"ps at the end: '{out.strip()}'")
out = cmd("as")
check(re.search(r"^address spaces: 0 live", out, re.M), f"as at the end: '{out.strip()}'")
out = cmd("help")
for name in ("ps", "run", "kill", "vmmap"):
    check(re.search(rf"^  {name}\b", out, re.M), f"help does not list {name}")
check(re.search(r"^  vmmap \[id \| pid <n>\]", out, re.M), "help: vmmap does not show both forms")

send(b"poweroff\r")
status = session.wait_exit(10, "poweroff")
check(status == 0, f"QEMU exit status after poweroff: {status} (expected 0)")
check(b"PANIC" not in raw, "a PANIC appeared in the transcript")

finish(not session.failures, f"{len(session.failures)} check(s) failed",
       note=f"{'' if have_spin else 'spin parts NOT run; '}{len(plain(raw).splitlines())} lines of transcript in {session.log}")
PYEOF
