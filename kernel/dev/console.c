/* The text console (see console.h). */
#include "dev/console.h"
#include "lib/logbuf.h"

#include "lib/printf.h"

enum { ESC_NONE, ESC_SEEN, ESC_CSI };

/* The classic VGA text palette: ANSI colours 0-7, then their bright forms. */
static const uint32_t palette[16] = {
    0x000000, 0xaa0000, 0x00aa00, 0xaa5500, 0x0000aa, 0xaa00aa, 0x00aaaa, 0xaaaaaa,
    0x555555, 0xff5555, 0x55ff55, 0xffff55, 0x5555ff, 0xff55ff, 0x55ffff, 0xffffff,
};

uint32_t console_palette(unsigned i)
{
    return i < 16 ? palette[i] : 0;
}

static void update_colours(struct console *c)
{
    uint8_t fg = c->bold && c->fg < 8 ? c->fg + 8 : c->fg;
    c->fg_px = fb_color(c->fb, palette[fg]);
    c->bg_px = fb_color(c->fb, palette[c->bg]);
}

/* Fills the cells [x0, x1) of row y with the background. */
static void clear_cells(struct console *c, uint32_t y, uint32_t x0, uint32_t x1)
{
    uint32_t fw = c->font->width, fh = c->font->height;
    if (x1 > x0)
        fb_fill_rect(c->fb, x0 * fw, y * fh, (x1 - x0) * fw, fh, c->bg_px);
}

/* Fills the whole rows [y0, y1) with the background (including the right
 * margin that no cell covers). */
static void clear_rows(struct console *c, uint32_t y0, uint32_t y1)
{
    uint32_t fh = c->font->height;
    if (y1 > y0)
        fb_fill_rect(c->fb, 0, y0 * fh, c->fb->width, (y1 - y0) * fh, c->bg_px);
}

static void toggle_cursor(struct console *c)
{
    uint32_t fw = c->font->width, fh = c->font->height;
    uint32_t x = MIN(c->cx, c->cols - 1);
    fb_invert_rect(c->fb, x * fw, c->cy * fh, fw, fh);
    c->cursor_drawn = !c->cursor_drawn;
}

static void newline(struct console *c)
{
    c->cx = 0;
    if (c->cy + 1 < c->rows) {
        c->cy++;
        return;
    }
    fb_scroll_up(c->fb, 0, c->rows * c->font->height, c->font->height, c->bg_px);
}

static void put_glyph(struct console *c, uint32_t cp)
{
    if (c->cx >= c->cols)
        newline(c);
    const struct font *f = c->font;
    fb_draw_glyph(c->fb, c->cx * f->width, c->cy * f->height, font_glyph(f, cp), f->width,
                  f->height, f->row_bytes, c->fg_px, c->bg_px);
    c->cx++;
}

static uint32_t param(const struct console *c, uint32_t i, uint32_t dflt)
{
    return i < c->nparams && c->params[i] ? c->params[i] : dflt;
}

static void sgr(struct console *c)
{
    uint32_t n = c->nparams ? c->nparams : 1; /* ESC[m is ESC[0m */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = i < c->nparams ? c->params[i] : 0;
        if (p == 0) {
            c->fg = CONSOLE_DEFAULT_FG, c->bg = CONSOLE_DEFAULT_BG, c->bold = false;
        } else if (p == 1) {
            c->bold = true;
        } else if (p == 22) {
            c->bold = false;
        } else if (p >= 30 && p <= 37) {
            c->fg = (uint8_t)(p - 30);
        } else if (p == 39) {
            c->fg = CONSOLE_DEFAULT_FG;
        } else if (p >= 40 && p <= 47) {
            c->bg = (uint8_t)(p - 40);
        } else if (p == 49) {
            c->bg = CONSOLE_DEFAULT_BG;
        } else if (p >= 90 && p <= 97) {
            c->fg = (uint8_t)(p - 90 + 8);
        } else if (p >= 100 && p <= 107) {
            c->bg = (uint8_t)(p - 100 + 8);
        } /* anything else (underline, 256 colours, ...) is ignored */
    }
    update_colours(c);
}

static void csi_final(struct console *c, char final)
{
    uint32_t n = param(c, 0, 1);
    uint32_t last_col = c->cols - 1;
    switch (final) {
    case 'm':
        sgr(c);
        break;
    case 'J': {
        uint32_t mode = param(c, 0, 0);
        uint32_t x = MIN(c->cx, c->cols);
        if (mode == 0) {
            clear_cells(c, c->cy, x, c->cols);
            clear_rows(c, c->cy + 1, c->rows);
        } else if (mode == 1) {
            clear_rows(c, 0, c->cy);
            clear_cells(c, c->cy, 0, MIN(x + 1, c->cols));
        } else {
            clear_rows(c, 0, c->rows);
        }
        break;
    }
    case 'K': {
        uint32_t mode = param(c, 0, 0);
        uint32_t x = MIN(c->cx, c->cols);
        if (mode == 0)
            clear_cells(c, c->cy, x, c->cols);
        else if (mode == 1)
            clear_cells(c, c->cy, 0, MIN(x + 1, c->cols));
        else
            clear_cells(c, c->cy, 0, c->cols);
        break;
    }
    case 'H':
    case 'f':
        c->cy = MIN(param(c, 0, 1), c->rows) - 1;
        c->cx = MIN(param(c, 1, 1), c->cols) - 1;
        break;
    case 'A':
        c->cy = c->cy > n ? c->cy - n : 0;
        break;
    case 'B':
        c->cy = MIN(c->cy + n, c->rows - 1);
        break;
    case 'C':
        c->cx = MIN(MIN(c->cx, last_col) + n, last_col);
        break;
    case 'D':
        c->cx = MIN(c->cx, last_col);
        c->cx = c->cx > n ? c->cx - n : 0;
        break;
    case 'G':
        c->cx = MIN(n, c->cols) - 1;
        break;
    case 'h':
    case 'l':
        if (c->csi_private && param(c, 0, 0) == 25)
            c->cursor_on = final == 'h';
        break;
    default:
        break;
    }
}

/* One byte inside ESC [ ... ; returns when the sequence is over. */
static void csi_byte(struct console *c, char ch)
{
    if (ch >= '0' && ch <= '9') {
        if (c->nparams == 0)
            c->nparams = 1;
        uint32_t *p = &c->params[c->nparams - 1];
        if (*p < 10000)
            *p = *p * 10 + (uint32_t)(ch - '0');
    } else if (ch == ';') {
        if (c->nparams == 0)
            c->nparams = 1;
        if (c->nparams < CONSOLE_MAX_PARAMS)
            c->params[c->nparams++] = 0;
    } else if (ch == '?' && c->nparams == 0) {
        c->csi_private = true;
    } else if (ch >= 0x40 && ch <= 0x7e) {
        csi_final(c, ch);
        c->esc_state = ESC_NONE;
    } else if (ch < 0x20 || ch > 0x7e) {
        c->esc_state = ESC_NONE; /* malformed: drop the sequence */
    } /* intermediate bytes 0x20-0x2f: ignored */
}

static void control(struct console *c, char ch)
{
    switch (ch) {
    case '\n':
        newline(c);
        break;
    case '\r':
        c->cx = 0;
        break;
    case '\b':
        if (c->cx > 0)
            c->cx--;
        break;
    case '\t':
        c->cx = MIN((c->cx / 8 + 1) * 8, c->cols);
        break;
    case '\x1b':
        c->esc_state = ESC_SEEN;
        break;
    default: /* BEL and the other C0 controls draw nothing */
        break;
    }
}

/* One byte of text: ASCII, or part of a UTF-8 sequence. */
static void text_byte(struct console *c, uint8_t b)
{
    if (b < 0x80) {
        if (c->utf8_left) { /* a sequence cut short */
            c->utf8_left = 0;
            put_glyph(c, 0xfffd);
        }
        put_glyph(c, b);
    } else if ((b & 0xc0) == 0x80) {
        if (!c->utf8_left) {
            put_glyph(c, 0xfffd);
            return;
        }
        c->utf8_cp = c->utf8_cp << 6 | (b & 0x3f);
        if (--c->utf8_left == 0)
            put_glyph(c, c->utf8_cp);
    } else {
        if (c->utf8_left)
            put_glyph(c, 0xfffd);
        if (b >= 0xc2 && b <= 0xdf)
            c->utf8_left = 1, c->utf8_cp = b & 0x1f;
        else if (b >= 0xe0 && b <= 0xef)
            c->utf8_left = 2, c->utf8_cp = b & 0x0f;
        else if (b >= 0xf0 && b <= 0xf4)
            c->utf8_left = 3, c->utf8_cp = b & 0x07;
        else
            c->utf8_left = 0, put_glyph(c, 0xfffd);
    }
}

bool console_open(struct console *c, struct fb *fb, const struct font *font)
{
    *c = (struct console){.fb = fb, .font = font};
    c->cols = fb->width / font->width;
    c->rows = fb->height / font->height;
    if (c->cols == 0 || c->rows == 0)
        return false;
    c->fg = CONSOLE_DEFAULT_FG;
    c->bg = CONSOLE_DEFAULT_BG;
    c->cursor_on = true;
    update_colours(c);
    fb_fill_rect(fb, 0, 0, fb->width, fb->height, c->bg_px);
    fb_flush(fb);
    return true;
}

void console_putn(struct console *c, const char *s, size_t n)
{
    if (c->busy)
        return;
    c->busy = true;
    if (c->cursor_drawn)
        toggle_cursor(c);
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (c->esc_state == ESC_CSI) {
            csi_byte(c, ch);
        } else if (c->esc_state == ESC_SEEN) {
            c->esc_state = ch == '[' ? ESC_CSI : ESC_NONE;
            c->csi_private = false;
            c->nparams = 0;
            for (uint32_t k = 0; k < CONSOLE_MAX_PARAMS; k++)
                c->params[k] = 0;
        } else if ((uint8_t)ch < 0x20 || ch == 0x7f) {
            control(c, ch);
        } else {
            text_byte(c, (uint8_t)ch);
        }
    }
    if (c->cursor_on)
        toggle_cursor(c);
    fb_flush(c->fb);
    c->busy = false;
}

/* ---- the boot console ----------------------------------------------------- */

/* The PSF font blob, linked in by mk/font.mk. */
extern const uint8_t console_font_start[], console_font_end[];

static struct font boot_font;
static struct console boot_console;
static bool boot_console_ready;

const char *console_font_parse(struct font *f)
{
    return font_parse(f, console_font_start, (size_t)(console_font_end - console_font_start));
}

bool console_init(void)
{
    if (boot_console_ready)
        return true;
    struct fb *fb = fb_screen_init();
    if (!fb) {
        klog("console", "no framebuffer: serial only");
        return false;
    }
    const char *err = console_font_parse(&boot_font);
    if (err) {
        kwarn("console", "%s: serial only", err);
        return false;
    }
    if (!console_open(&boot_console, fb, &boot_font)) {
        kwarn("console", "screen smaller than one %ux%u cell: serial only", boot_font.width,
              boot_font.height);
        return false;
    }
    boot_console_ready = true;
    logbuf_replay(console_write); /* the boot log so far, then everything new */
    kprintf_remove_sink(logbuf_sink);
    if (!kprintf_add_sink(console_write)) {
        boot_console_ready = false;
        kwarn("console", "no free kprintf sink: serial only");
        return false;
    }
    klog("console", "%ux%u text cells, font %ux%u (PSF%u, %u glyphs)", boot_console.cols,
         boot_console.rows, boot_font.width, boot_font.height, boot_font.version,
         boot_font.glyph_count);
    return true;
}

void console_write(const char *s, size_t len)
{
    if (boot_console_ready)
        console_putn(&boot_console, s, len);
}

struct console *console_screen(void)
{
    return boot_console_ready ? &boot_console : NULL;
}
