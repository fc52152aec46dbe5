"""tests/qemu/qemu_session.py — one scripted QEMU session: boot, serial, QMP, transcript.

The scripted QEMU scenarios (tests/qemu/test_monitor.sh, test_keyboard.sh and
tools/screenshot.sh behind test_screen.sh) import this module and keep only
their scenario. scenario() builds the GRUB ISO of $KERNEL for a test and
boots it; a Session:
  - boots an ISO headless through tools/qemu.sh (the one QEMU command line),
    with COM1 on QEMU's stdio: what the scenario writes is typed on serial,
    what the guest prints is appended to `raw`, the transcript, byte for byte;
  - with qmp=True, also opens a QMP socket and negotiates capabilities;
  - runs in a session of its own (QEMU, tools/qemu.sh and timeout share a
    process group), so finish() can stop all of them by that one id;
  - guarantees to end: a SIGALRM after `timeout` seconds fails the run, and
    tools/qemu.sh kills QEMU itself a little later should this process die.
Every wait fails the run at once when the kernel panics or QEMU exits, with
what was awaited in the message. finish() writes the transcript (plain text
and raw), stops QEMU and reports PASS or FAIL with every failed check.

The scenario scripts run from the repository root (tools/qemu.sh is relative).
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PROMPT = b"slayer> "
ANSI = re.compile(rb"\x1b\[[0-9;=?]*[A-Za-z]")


def plain(b):
    """The transcript as text: no escape sequences, no CRs."""
    return ANSI.sub(b"", bytes(b)).replace(b"\r", b"").decode("latin-1")


def render(b):
    """The transcript as a terminal shows it: plain() with backspaced characters erased."""
    out = []
    for ch in plain(b):
        if ch == "\b":
            if out and out[-1] != "\n":
                out.pop()
        else:
            out.append(ch)
    return "".join(out)


def verdict(name, ok, why, note, failures, text, qemu_err):
    """The scenario tests' verdict: one PASS line, or FAIL with the failed
    checks, the whole transcript and what QEMU said; exits 0 or 1."""
    if ok:
        print(f"PASS {name} ({note})")
        sys.exit(0)
    print(f"FAIL {name}: {why}")
    for f in failures:
        print(f"  - {f}")
    print("---- transcript")
    print(text)
    if qemu_err.strip():
        print("---- QEMU said")
        print(qemu_err)
    print("----")
    sys.exit(1)


def scenario(name, cmdline, timeout, **session_args):
    """Builds a GRUB ISO of $KERNEL (default build/kernel.elf) with kernel
    command line `cmdline` in $QEMU_OUT (default <dir of KERNEL>/test) and
    boots it: a Session named `name` under $ACCEL (default tcg), its
    transcript kept in <out>/logs/<name>.log (and .log.raw), its clock
    started before the ISO is built. Exits 1 when the kernel is missing."""
    t0 = time.time()
    kernel = os.environ.get("KERNEL") or "build/kernel.elf"
    out = os.environ.get("QEMU_OUT") or os.path.join(os.path.dirname(kernel) or ".", "test")
    if not os.path.isfile(kernel):
        print(f"{name}: {kernel} not found; run make first", file=sys.stderr)
        sys.exit(1)
    iso, log = f"{out}/slayeros-{name}.iso", f"{out}/logs/{name}.log"
    os.makedirs(os.path.dirname(log), exist_ok=True)
    if subprocess.run(["tools/mkiso-grub.sh", kernel, iso, cmdline]).returncode != 0:
        sys.exit(1)
    return Session(name, iso, timeout, accel=os.environ.get("ACCEL") or "tcg", log=log,
                   raw_log=log + ".raw", t0=t0, **session_args)


class Session:
    """A booted QEMU and its serial transcript (see the module comment)."""

    def __init__(self, name, iso, timeout, *, mem="256M", firmware="bios", accel="tcg", smp=1,
                 qmp=False, step=10, log=None, raw_log=None, text=plain, t0=None,
                 qemu_timeout=None, report=verdict):
        """Starts QEMU and arms the whole-run alarm; with qmp, returns once QMP
        answers. `step` is the default wait in seconds; `log` receives
        text(raw), `raw_log` raw, when the session finishes."""
        self.name, self.step, self.text, self.report = name, step, text, report
        self.log, self.raw_log = log, raw_log
        self.t0 = time.time() if t0 is None else t0
        self.raw = bytearray()
        self.failures = []
        self.eof = False
        self.qmp = None
        self.tmp = tempfile.mkdtemp(prefix=f"slay-{name}.")
        self.qemu_err = open(os.path.join(self.tmp, "qemu.err"), "w+")
        qmp_path = os.path.join(self.tmp, "qmp.sock")
        extra = ["-qmp", f"unix:{qmp_path},server=on,wait=off"] if qmp else []
        # stdin: a pipe held open (QEMU never sees EOF on serial) that send() writes.
        self.qemu = subprocess.Popen(
            ["tools/qemu.sh", "--iso", iso, "--firmware", firmware, "--accel", accel,
             "--mem", mem, "--smp", str(smp), "--timeout", str(qemu_timeout or timeout + 10), "--", *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.qemu_err,
            start_new_session=True)
        self.out_fd = self.qemu.stdout.fileno()
        signal.signal(signal.SIGALRM, lambda *_: self.finish(False, f"took longer than {timeout}s"))
        signal.alarm(timeout)
        if qmp:
            self.qmp = self._qmp_connect(qmp_path)
            self.qmp_call("qmp_capabilities")

    # ---- serial ----
    def pump(self, timeout):
        """Appends what the guest sent on serial within timeout seconds to raw; False on EOF."""
        if self.eof:
            return False
        r, _, _ = select.select([self.out_fd], [], [], max(timeout, 0))
        if not r:
            return True
        data = os.read(self.out_fd, 65536)
        if not data:
            self.eof = True
            return False
        self.raw.extend(data)
        return True

    def wait_for(self, pattern, start=0, timeout=None, what=None, required=True, panic_ok=False):
        """The first match of regex `pattern` (bytes, DOTALL) in raw[start:],
        waiting up to timeout (default step) seconds. When it does not come
        (a panic unless panic_ok, QEMU gone, time up) the run fails, or, with
        required=False, None is returned."""
        timeout = self.step if timeout is None else timeout
        what = what or pattern
        rx = re.compile(pattern, re.S)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(bytes(self.raw), start)
            if m:
                return m
            if not required and (self.eof or time.monotonic() > end):
                return None
            if not panic_ok and b"PANIC" in self.raw[start:]:
                self.finish(False, f"kernel panic while waiting for {what!r}")
            if self.eof:
                try:
                    status = self.qemu.wait(timeout=self.step)
                except subprocess.TimeoutExpired:
                    status = "none yet"
                self.finish(False, f"QEMU exited (status {status}) while waiting for {what!r}")
            if time.monotonic() > end:
                self.finish(False, f"no {what!r} within {timeout}s")
            self.pump(end - time.monotonic())

    def send(self, data):
        """Types bytes on serial."""
        self.qemu.stdin.write(data)
        self.qemu.stdin.flush()

    def cmd(self, line, timeout=None):
        """Types line + CR on serial after the latest prompt; returns the
        command's output (plain text), once the next prompt is there."""
        start = self.raw.rfind(PROMPT)
        self.send(line.encode() + b"\r")
        m = self.wait_for(re.escape(PROMPT + line.encode()) + rb"\r?\n(.*?)" + re.escape(PROMPT),
                          start, timeout, what=f"answer to '{line}'")
        return plain(m.group(1))

    # ---- QMP ----
    def _qmp_connect(self, path):
        end = time.monotonic() + self.step
        while True:
            if self.qemu.poll() is not None:
                self.finish(False, f"QEMU exited early with status {self.qemu.returncode}")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > end:
                    self.finish(False, "QEMU's QMP socket never appeared")
                self.pump(0.05)
        s.settimeout(self.step)
        f = s.makefile("rw")
        json.loads(f.readline())  # the greeting
        return f

    def qmp_call(self, cmd, **args):
        """Runs QMP command `cmd` and returns its answer; an error fails the
        run. `quit` may close the connection before answering (None)."""
        self.qmp.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        self.qmp.flush()
        while True:
            try:
                line = self.qmp.readline()
            except OSError as e:
                self.finish(False, f"QMP {cmd}: {e}")
            if not line:
                if cmd == "quit":
                    return None
                self.finish(False, f"QMP: connection closed during {cmd}")
            reply = json.loads(line)
            if "error" in reply:
                self.finish(False, f"QMP {cmd}: {reply['error'].get('desc')}")
            if "return" in reply:
                return reply["return"]  # anything else is an event

    # ---- the end ----
    def wait_exit(self, timeout, after):
        """QEMU's exit status once it ends by itself within timeout seconds
        (`after` names what should end it), with the rest of the transcript
        read; the run fails if QEMU is still running then."""
        end = time.monotonic() + timeout
        while self.qemu.poll() is None and time.monotonic() < end:
            if not self.pump(0.1):
                time.sleep(0.05)
        try:
            status = self.qemu.wait(timeout=max(end - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self.finish(False, f"QEMU still running {timeout}s after {after}")
        for _ in range(100):  # the rest of the transcript, until EOF
            if not self.pump(0.05):
                break
        return status

    def check(self, cond, what):
        """Records `what` as a failed check when cond is false; the run goes on."""
        if not cond:
            self.failures.append(what)

    def finish(self, ok, why="", note=None):
        """Ends the run: keeps the transcript, stops QEMU and everything it
        started, reports (default: verdict; note defaults to the seconds
        since t0). Does not return."""
        signal.alarm(0)
        text = self.text(self.raw)
        if self.log:
            with open(self.log, "w") as f:
                f.write(text)
        if self.raw_log:
            with open(self.raw_log, "wb") as f:  # byte for byte, for debugging the line editor
                f.write(self.raw)
        if self.qemu.poll() is None:
            try:
                os.killpg(self.qemu.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.qemu.wait()
        self.qemu_err.seek(0)
        err = self.qemu_err.read()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if note is None:
            note = f"{time.time() - self.t0:.1f}s"
        self.report(self.name, ok, why, note, self.failures, text, err)
        sys.exit(0 if ok else 1)
