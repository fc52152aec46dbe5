#!/usr/bin/env bash
# tests/qemu/test_keyboard.sh — drives the kernel monitor through the PS/2
# keyboard.
#
# Boots build/kernel.elf from a GRUB ISO (empty command line: the monitor)
# headless under TCG through tests/qemu/qemu_session.py (serial on a pipe,
# read only: nothing is ever typed on serial; a QMP socket), waits for `slayer> `,
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

PYTHONPATH=tests/qemu PYTHONDONTWRITEBYTECODE=1 exec python3 - <<'PYEOF'
import os, re
from qemu_session import PROMPT, render, scenario

STEP = 10  # seconds for one echo or answer
# Serial is read only: nothing is ever typed on it.
session = scenario("keyboard", "", int(os.environ.get("KEYBOARD_TIMEOUT") or 60), mem="128M",
                   qmp=True, step=STEP, text=render)
raw, check, finish, qmp_call, wait_for = (
    session.raw, session.check, session.finish, session.qmp_call, session.wait_for)


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


def check_unknown(out, word):
    check(out.strip() == f"monitor: unknown command '{word}' (try 'help')",
          f"typed {word!r}: answer {out.strip()!r}")


# ---- boot to the prompt ----
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
session.pump(0.1)
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
status = session.wait_exit(STEP, "poweroff")
check(status == 0, f"QEMU exit status after poweroff: {status} (expected 0)")
check(b"PANIC" not in raw, "a PANIC appeared in the transcript")

finish(not session.failures, f"{len(session.failures)} check(s) failed")
PYEOF
