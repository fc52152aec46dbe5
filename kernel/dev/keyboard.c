/* PS/2 keyboard driver: the i8042 controller and scancode set 1. */
#include "dev/keyboard.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/pic.h"
#include "dev/input.h"

#define KBD_DATA   0x60
#define KBD_STATUS 0x64 /* read: status; write: controller command */
#define STATUS_OUT_FULL 0x01 /* a byte waits at KBD_DATA */
#define STATUS_IN_FULL  0x02 /* the controller has not taken our last byte */
#define STATUS_AUX      0x20 /* the waiting byte is from the mouse port */

#define CMD_READ_CONFIG  0x20
#define CMD_WRITE_CONFIG 0x60
#define CONFIG_IRQ1        0x01
#define CONFIG_TRANSLATION 0x40

#define SC_RELEASE  0x80
#define SC_EXTENDED 0xe0
enum { SC_LCTRL = 0x1d, SC_LSHIFT = 0x2a, SC_RSHIFT = 0x36, SC_CAPSLOCK = 0x3a };
enum { SC_UP = 0x48, SC_LEFT = 0x4b, SC_RIGHT = 0x4d, SC_DOWN = 0x50 };

/* Set 1 make codes 0x00..0x39 to ASCII, without and with Shift (0: no byte). */
static const char keymap[0x3a] = {
    [0x01] = 0x1b, '1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '-', '=', '\b',
    [0x0f] = '\t', 'q', 'w', 'e', 'r', 't', 'y', 'u', 'i', 'o', 'p', '[', ']', '\r',
    [0x1e] = 'a', 's', 'd', 'f', 'g', 'h', 'j', 'k', 'l', ';', '\'', '`',
    [0x2b] = '\\', 'z', 'x', 'c', 'v', 'b', 'n', 'm', ',', '.', '/',
    [0x37] = '*', [0x39] = ' ',
};
static const char keymap_shift[0x3a] = {
    [0x01] = 0x1b, '!', '@', '#', '$', '%', '^', '&', '*', '(', ')', '_', '+', '\b',
    [0x0f] = '\t', 'Q', 'W', 'E', 'R', 'T', 'Y', 'U', 'I', 'O', 'P', '{', '}', '\r',
    [0x1e] = 'A', 'S', 'D', 'F', 'G', 'H', 'J', 'K', 'L', ':', '"', '~',
    [0x2b] = '|', 'Z', 'X', 'C', 'V', 'B', 'N', 'M', '<', '>', '?',
    [0x37] = '*', [0x39] = ' ',
};

/* Locking: touched only by the IRQ 1 handler or with interrupts off. */
static bool shift_l, shift_r, ctrl, caps_lock, extended;
static bool present;

static bool wait_input_empty(void)
{
    for (int i = 0; i < 100000; i++) {
        if (!(inb(KBD_STATUS) & STATUS_IN_FULL))
            return true;
        cpu_pause();
    }
    return false;
}

static int read_data_timeout(void)
{
    for (int i = 0; i < 100000; i++) {
        if (inb(KBD_STATUS) & STATUS_OUT_FULL)
            return inb(KBD_DATA);
        cpu_pause();
    }
    return -1;
}

static void push_str(const char *s)
{
    while (*s)
        input_push((uint8_t)*s++);
}

/* One byte from the keyboard, in scancode set 1. */
static void handle_scancode(uint8_t sc)
{
    if (sc == SC_EXTENDED) {
        extended = true;
        return;
    }
    bool release = sc & SC_RELEASE;
    uint8_t code = sc & (uint8_t)~SC_RELEASE;
    if (extended) {
        extended = false;
        if (code == SC_LCTRL) /* right Ctrl */
            ctrl = !release;
        else if (!release && code == 0x1c) /* keypad Enter */
            input_push('\r');
        else if (!release && code == SC_UP)
            push_str("\x1b[A");
        else if (!release && code == SC_DOWN)
            push_str("\x1b[B");
        else if (!release && code == SC_RIGHT)
            push_str("\x1b[C");
        else if (!release && code == SC_LEFT)
            push_str("\x1b[D");
        return; /* fake shifts (0x2a/0xaa around extended keys) end here too */
    }
    switch (code) {
    case SC_LSHIFT: shift_l = !release; return;
    case SC_RSHIFT: shift_r = !release; return;
    case SC_LCTRL: ctrl = !release; return;
    case SC_CAPSLOCK:
        if (!release)
            caps_lock = !caps_lock;
        return;
    default: break;
    }
    if (release || code >= sizeof(keymap))
        return;
    bool shift = shift_l || shift_r;
    char c = shift ? keymap_shift[code] : keymap[code];
    if (!c)
        return;
    char lower = keymap[code];
    if (lower >= 'a' && lower <= 'z') {
        if (ctrl) {
            input_push((uint8_t)(lower - 'a' + 1));
            return;
        }
        if (caps_lock) /* Caps Lock inverts Shift, for letters only */
            c = shift ? lower : keymap_shift[code];
    }
    input_push((uint8_t)c);
}

void keyboard_poll(void)
{
    if (!present)
        return;
    uint64_t flags = cpu_irq_save();
    for (int i = 0; i < 64; i++) {
        uint8_t st = inb(KBD_STATUS);
        if (!(st & STATUS_OUT_FULL))
            break;
        uint8_t b = inb(KBD_DATA);
        if (!(st & STATUS_AUX))
            handle_scancode(b);
    }
    cpu_irq_restore(flags);
}

static void keyboard_irq(void)
{
    keyboard_poll();
}

bool keyboard_init(void)
{
    if (inb(KBD_STATUS) == 0xff) /* floating bus: no controller */
        return false;
    uint64_t flags = cpu_irq_save();
    for (int i = 0; i < 64 && (inb(KBD_STATUS) & STATUS_OUT_FULL); i++)
        (void)inb(KBD_DATA);
    bool ok = wait_input_empty();
    if (ok) {
        outb(KBD_STATUS, CMD_READ_CONFIG);
        int cfg = read_data_timeout();
        ok = cfg >= 0 && wait_input_empty();
        if (ok) {
            outb(KBD_STATUS, CMD_WRITE_CONFIG);
            ok = wait_input_empty();
            if (ok)
                outb(KBD_DATA, (uint8_t)(cfg | CONFIG_IRQ1 | CONFIG_TRANSLATION));
        }
    }
    if (ok) {
        present = true;
        pic_set_handler(IRQ_KEYBOARD, keyboard_irq);
        pic_unmask(IRQ_KEYBOARD);
    }
    cpu_irq_restore(flags);
    return ok;
}
