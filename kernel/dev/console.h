/* The text console: a grid of font cells drawn on a framebuffer (dev/fb.h)
 * with a PSF font (dev/font.h) linked in at build time (mk/font.mk).
 *
 * Understands UTF-8 (code points up to U+00FF through the font's Unicode
 * table, anything else as the font's '?'), \n (new line: column 0 of the next
 * row), \r, \b (cursor left, not erasing), \t (next multiple of 8), and these
 * ANSI escape sequences (others are parsed and ignored):
 *   ESC[...m   SGR: 0 reset, 1 bold (bright foreground), 22 normal,
 *              30-37 / 90-97 foreground, 39 default, 40-47 / 100-107
 *              background, 49 default
 *   ESC[nJ     erase in display (0 to end, 1 to cursor, 2 and 3 all)
 *   ESC[nK     erase in line (0 to end, 1 to cursor, 2 all)
 *   ESC[r;cH   cursor position (also f); ESC[nA/B/C/D relative moves;
 *   ESC[nG     column; ESC[?25l / ESC[?25h hide / show the cursor
 * The bottom line scrolls by moving pixel rows (fb_scroll_up), never by
 * redrawing text. Every console_putn ends with one fb_flush, so a log line
 * costs one copy of the rows it touched.
 * Locking: none (single CPU); a nested call (a fault while drawing) is
 * dropped rather than corrupting the state. */
#pragma once

#include "dev/fb.h"
#include "dev/font.h"
#include "lib/types.h"

#define CONSOLE_MAX_PARAMS 8
#define CONSOLE_DEFAULT_FG 7 /* light grey */
#define CONSOLE_DEFAULT_BG 0 /* black */

struct console {
    struct fb *fb;
    const struct font *font;
    uint32_t cols, rows;       /* text cells on the screen */
    uint32_t cx, cy;           /* cursor cell; cx == cols: wrap before the next glyph */
    uint8_t fg, bg;            /* palette indices 0..15 */
    bool bold;
    uint32_t fg_px, bg_px;     /* the effective colours, encoded for fb */
    bool cursor_on;            /* ESC[?25h / l */
    bool cursor_drawn;         /* the cursor cell is inverted right now */
    bool busy;
    /* escape-sequence parser */
    uint8_t esc_state;
    bool csi_private;
    uint32_t nparams;
    uint32_t params[CONSOLE_MAX_PARAMS];
    /* UTF-8 decoder */
    uint32_t utf8_cp;
    uint8_t utf8_left;
};

/* Sets c up over fb with font: clears the screen to the default background,
 * cursor at the top left. False (c unusable) when not even one cell fits. */
bool console_open(struct console *c, struct fb *fb, const struct font *font);
/* Interprets n bytes (text, controls, escapes) as described above, then
 * flushes the framebuffer. */
void console_putn(struct console *c, const char *s, size_t n);
/* 0xRRGGBB of palette entry i (0..15: the eight ANSI colours, then their
 * bright forms); 0 for anything else. */
uint32_t console_palette(unsigned i);

/* Parses the font linked into the kernel (mk/font.mk) into *f; NULL on
 * success, else the reason (see font_parse). */
const char *console_font_parse(struct font *f);

/* The boot console: the screen (fb_screen_init) with the linked-in font,
 * registered as a kprintf sink so every later line appears on screen as on
 * serial. Returns false, after one log line saying why ("[console] no
 * framebuffer: serial only"), when there is no usable framebuffer or font.
 * Call once, after heap_init(). */
bool console_init(void);
/* The kprintf sink: console_putn on the boot console (a no-op before
 * console_init succeeded). */
void console_write(const char *s, size_t len);
/* The boot console once console_init succeeded, else NULL. */
struct console *console_screen(void);
