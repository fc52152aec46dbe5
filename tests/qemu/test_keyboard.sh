#!/usr/bin/env bash
# tests/qemu/test_keyboard.sh — drives the kernel monitor through the PS/2
# keyboard.
#
# Boots build/kernel.elf from a GRUB ISO (empty command line: the monitor)
# headless under TCG through tools/qemu.sh, serial on a pipe (read only:
# nothing is ever typed on serial) and a QMP socket, waits for `slayer> `,
# then presses keys with QMP `send-key` (held 5 ms; QEMU's default 100 ms
# would make the run take 20 s), one key at a time, each once the previous
# character's echo is on serial (the i8042 queue never overflows, whatever
# the load). About 190 key presses; ~3 s in all under TCG. Every line's echo, as displayed (backspaces applied),
# and the monitor's answer are checked:
#   - `version` + Enter answers `SlayerOS ...`
#   - left Shift: `Help` -> unknown command 'Help' (commands are lowercase)
#   - every unshifted key of the US layout (letters, digits, - = [ ] ; ' ` \
#     , . /), then every shifted one with right Shift, echo as themselves
#   - Caps Lock: on, `a` -> A, Shift+b -> b (Caps inverts Shift), `1` -> 1,
#     Shift+2 -> @ (letters only), off again, `c` -> c
#   - Backspace: `versiox` Backspace `n` + keypad Enter -> the version answer
#   - Ctrl-U (left Ctrl) erases the line, Ctrl-C (right Ctrl) cancels it
#   - the left arrow (ESC [ D) is swallowed: `ver` Left `sion` -> `version`;
#     Shift held down across Left (an extended key) still shifts the next
#     letter
#   - `version` at the end reports 0 input bytes dropped
#   - `poweroff` typed on the keyboard ends QEMU with status 0
# Fails (exit 1) with the whole transcript on any mismatch or timeout; the
# transcript is kept in build/test/logs/keyboard.log either way.
#
# Environment: KERNEL (default build/kernel.elf), KEYBOARD_TIMEOUT (seconds
# for the whole run, default 60), ACCEL (tcg).
set -euo pipefail

cd "$(dirname "$0")/../.."

KERNEL=${KERNEL:-build/kernel.elf}
OUT=${QEMU_OUT:-$(dirname "$KERNEL")/test}
ISO=$OUT/slayeros-keyboard.iso
LOG=$OUT/logs/keyboard.log
export KEYBOARD_TIMEOUT=${KEYBOARD_TIMEOUT:-60}
export ACCEL=${ACCEL:-tcg}
KEYBOARD_START=$(date +%s.%N)
export KEYBOARD_START

[[ -f "$KERNEL" ]] || { echo "keyboard: $KERNEL not found; run make first" >&2; exit 1; }
command -v python3 >/dev/null || { echo "keyboard: python3 not found" >&2; exit 1; }
mkdir -p "$(dirname "$LOG")"
tools/mkiso-grub.sh "$KERNEL" "$ISO" ""

exec python3 - "$ISO" "$LOG" <<'PYEOF'
import json, os, re, select, shutil, signal, socket, subprocess, sys, tempfile, time

iso, log_path = sys.argv[1], sys.argv[2]
total_timeout = int(os.environ["KEYBOARD_TIMEOUT"])
t0 = float(os.environ["KEYBOARD_START"])
PROMPT = b"slayer> "
ANSI = re.compile(rb"\x1b\[[0-9;=?]*[A-Za-z]")
STEP = 10  # seconds for one echo or answer

tmp = tempfile.mkdtemp(prefix="slay-keyboard.")
qmp_path = os.path.join(tmp, "qmp.sock")
qemu_err = open(os.path.join(tmp, "qemu.err"), "w+")
# Serial on stdio: stdout is our transcript; stdin a pipe we never write to
# (held open, so QEMU never sees EOF on it). Own session: on failure the
# whole group (tools/qemu.sh, timeout, QEMU) is killed by its id.
qemu = subprocess.Popen(
    ["tools/qemu.sh", "--iso", iso, "--accel", os.environ["ACCEL"], "--mem", "128M",
     "--timeout", str(total_timeout + 10), "--",
     "-qmp", f"unix:{qmp_path},server=on,wait=off"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=qemu_err, start_new_session=True)
out_fd = qemu.stdout.fileno()

raw = bytearray()
qmp = None
failures = []
eof = False


def render(b):
    """The text as a terminal shows it: no escape sequences, CRs or backspaced characters."""
    out = []
    for ch in ANSI.sub(b"", bytes(b)).replace(b"\r", b"").decode("latin-1"):
        if ch == "\b":
            if out and out[-1] != "\n":
                out.pop()
        else:
            out.append(ch)
    return "".join(out)


def finish(ok, why=""):
    signal.alarm(0)
    text = render(raw)
    with open(log_path, "w") as f:
        f.write(text)
    with open(log_path + ".raw", "wb") as f:
        f.write(raw)
    if qemu.poll() is None:
        try:
            os.killpg(qemu.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        qemu.wait()
    qemu_err.seek(0)
    err = qemu_err.read()
    shutil.rmtree(tmp, ignore_errors=True)
    if ok:
        print(f"PASS keyboard ({time.time() - t0:.1f}s)")
        sys.exit(0)
    print(f"FAIL keyboard: {why}")
    for f in failures:
        print(f"  - {f}")
    print("---- transcript")
    print(text)
    if err.strip():
        print("---- QEMU said")
        print(err)
    print("----")
    sys.exit(1)


signal.signal(signal.SIGALRM, lambda *_: finish(False, f"took longer than {total_timeout}s"))
signal.alarm(total_timeout)


def pump(timeout):
    """Reads what the guest sent on serial within timeout seconds; False on EOF."""
    global eof
    if eof:
        return False
    r, _, _ = select.select([out_fd], [], [], max(timeout, 0))
    if not r:
        return True
    data = os.read(out_fd, 65536)
    if not data:
        eof = True
        return False
    raw.extend(data)
    return True


def wait_for(pattern, start, timeout=STEP, what=None):
    """Waits until regex `pattern` (bytes) matches raw[start:]; returns the match."""
    rx = re.compile(pattern, re.S)
    end = time.monotonic() + timeout
    while True:
        m = rx.search(bytes(raw), start)
        if m:
            return m
        if b"PANIC" in raw[start:]:
            finish(False, f"kernel panic while waiting for {what or pattern!r}")
        if qemu.poll() is not None and eof:
            finish(False, f"QEMU exited (status {qemu.returncode}) while waiting for {what or pattern!r}")
        if time.monotonic() > end or not pump(end - time.monotonic()):
            if eof:
                continue  # re-check the exit above
            finish(False, f"no {what or pattern!r} within {timeout}s")


# ---- QMP ----
def qmp_connect():
    end = time.monotonic() + STEP
    while True:
        if qemu.poll() is not None:
            finish(False, f"QEMU exited early with status {qemu.returncode}")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(qmp_path)
            break
        except OSError:
            s.close()
            if time.monotonic() > end:
                finish(False, "QEMU's QMP socket never appeared")
            pump(0.05)
    s.settimeout(STEP)
    f = s.makefile("rw")
    json.loads(f.readline())  # the greeting
    return f


def qmp_call(cmd, **args):
    qmp.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
    qmp.flush()
    while True:
        try:
            line = qmp.readline()
        except OSError as e:
            finish(False, f"QMP {cmd}: {e}")
        if not line:
            finish(False, f"QMP: connection closed during {cmd}")
        reply = json.loads(line)
        if "error" in reply:
            finish(False, f"QMP {cmd}: {reply['error'].get('desc')}")
        if "return" in reply:
            return reply["return"]  # anything else is an event


# ---- keys: US layout, QEMU qcodes ----
QCODE = {c: c for c in "abcdefghijklmnopqrstuvwxyz0123456789"}
QCODE.update({"-": "minus", "=": "equal", "[": "bracket_left", "]": "bracket_right",
              ";": "semicolon", "'": "apostrophe", "`": "grave_accent", "\\": "backslash",
              ",": "comma", ".": "dot", "/": "slash", " ": "spc"})
SHIFTED = dict(zip(")!@#$%^&*(_+{}:\"~|<>?", "0123456789-=[];'`\\,./"))
SHIFTED.update({c.upper(): c for c in "abcdefghijklmnopqrstuvwxyz"})


def key(qcodes, echo=b""):
    """One send-key: qcodes pressed in order, released in reverse; echo, the
    bytes the monitor prints for it (waited for before the next key)."""
    return (qcodes if isinstance(qcodes, list) else [qcodes], echo)


def text(s, shift="shift"):
    """Keys that type s (US layout), with `shift` for the shifted characters."""
    keys = []
    for c in s:
        if c in QCODE:
            keys.append(key(QCODE[c], c.encode()))
        else:
            keys.append(key([shift, QCODE[SHIFTED[c]]], c.encode()))
    return keys


ENTER = key("ret")
CAPS = key("caps_lock")


def press(keys):
    for qcodes, echo in keys:
        start = len(raw)
        qmp_call("send-key", keys=[{"type": "qcode", "data": q} for q in qcodes],
                 **{"hold-time": 5})
        if echo:
            wait_for(re.escape(echo), start, what=f"echo {echo!r} of key {'+'.join(qcodes)}")


def line_cmd(keys, shown, enter=ENTER, what=None):
    """Types keys then Enter at the latest prompt; checks the line as displayed
    is `shown`; returns the answer (the text up to the next prompt)."""
    start = raw.rfind(PROMPT)
    press(keys)
    press([enter])
    m = wait_for(rb"\n(.*?)" + re.escape(PROMPT), start, what=f"answer to {what or shown!r}")
    echoed = render(raw[start:m.start()])
    check(echoed == PROMPT.decode() + shown, f"line shown as {echoed!r}, expected {PROMPT.decode() + shown!r}")
    return render(m.group(1))


def check(cond, what):
    if not cond:
        failures.append(what)


def check_unknown(out, word):
    check(out.strip() == f"monitor: unknown command '{word}' (try 'help')",
          f"typed {word!r}: answer {out.strip()!r}")


# ---- boot to the prompt ----
qmp = qmp_connect()
qmp_call("qmp_capabilities")
wait_for(re.escape(PROMPT), 0, timeout=30, what="first prompt")
boot = render(raw)
check("keyboard PS/2 on IRQ 1" in boot, "the monitor did not find the PS/2 keyboard")

# ---- plain letters and Enter ----
out = line_cmd(text("version"), "version")
check(out.startswith("SlayerOS ") and "bootloader:" in out, f"version: {out.strip()!r}")

# ---- Shift ----
out = line_cmd(text("Help"), "Help")
check_unknown(out, "Help")
unshifted = "abcdefghijklmnopqrstuvwxyz0123456789-=[];'`\\,./"
out = line_cmd(text(unshifted), unshifted, what="every unshifted key")
check_unknown(out, unshifted)
shifted = "ABCDEFGHIJKLMNOPQRSTUVWXYZ)!@#$%^&*(_+{}:\"~|<>?"
out = line_cmd(text(shifted, shift="shift_r"), shifted, what="every key with right Shift")
check_unknown(out, shifted)

# ---- Caps Lock: letters only, inverts Shift, toggles on press ----
keys = [CAPS, key("a", b"A"), key(["shift", "b"], b"b"), key("1", b"1"), key(["shift", "2"], b"@"),
        CAPS, key("c", b"c")]
out = line_cmd(keys, "Ab1@c", what="Caps Lock line")
check_unknown(out, "Ab1@c")

# ---- Backspace, keypad Enter ----
out = line_cmd(text("versiox") + [key("backspace", b"\b \b")] + text("n"), "version",
               enter=key("kp_enter"), what="versiox<BS>n")
check(out.startswith("SlayerOS "), f"versiox<BS>n: {out.strip()!r}")
check(b"versiox\b \bn" in raw, "Backspace was not echoed as '\\b \\b' after 'versiox'")

# ---- Ctrl-U erases the line; Ctrl-C (right Ctrl) cancels it ----
out = line_cmd(text("junk") + [key(["ctrl", "u"], b"\b \b" * 4)] + text("version"), "version",
               what="junk<C-u>version")
check(out.startswith("SlayerOS "), f"junk<C-u>version: {out.strip()!r}")
start = raw.rfind(PROMPT)
press(text("panic") + [key(["ctrl_r", "c"], b"^C")])
wait_for(re.escape(PROMPT), start + len(PROMPT), what="prompt after Ctrl-C")
check(b"PANIC" not in raw, "Ctrl-C did not cancel 'panic'")

# ---- arrow keys are swallowed (ESC [ D) ----
out = line_cmd(text("ver") + [key("left")] + text("sion"), "version", what="ver<Left>sion")
check(out.startswith("SlayerOS "), f"ver<Left>sion: {out.strip()!r}")

# ---- Shift held down across an extended key (Left) still shifts ----
def events(*evs):
    qmp_call("input-send-event", events=[
        {"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": q}}}
        for q, down in evs])


start = raw.rfind(PROMPT)
events(("shift", True), ("left", True), ("left", False))
pump(0.1)
events(("a", True), ("a", False))
wait_for(rb"A", start + len(PROMPT), what="echo 'A' of Shift+Left, a")
events(("shift", False))
out = line_cmd([key("b", b"b")], "Ab", what="Shift held over Left")
check_unknown(out, "Ab")

# ---- nothing dropped ----
out = line_cmd(text("version"), "version")
check(re.search(r"input:\s+0 bytes dropped", out), f"version: input bytes dropped: {out.strip()!r}")

# ---- poweroff on the keyboard ends QEMU ----
press(text("poweroff") + [ENTER])
end = time.monotonic() + STEP
while qemu.poll() is None and time.monotonic() < end:
    if not pump(0.1):
        time.sleep(0.05)
try:
    status = qemu.wait(timeout=max(end - time.monotonic(), 0.1))
except subprocess.TimeoutExpired:
    finish(False, f"QEMU still running {STEP}s after poweroff")
for _ in range(100):  # the rest of the transcript, until EOF
    if not pump(0.05):
        break
check(status == 0, f"QEMU exit status after poweroff: {status} (expected 0)")
check(b"PANIC" not in raw, "a PANIC appeared in the transcript")

finish(not failures, f"{len(failures)} check(s) failed")
PYEOF
