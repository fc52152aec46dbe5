/* In-kernel self-tests of dev/fb and dev/console on fake framebuffers in
 * heap memory: the colour encoders for 16/24/32 bpp and swapped channel
 * orders, pixels at the right bytes with a padded pitch, glyphs read back
 * from a shadow buffer, flushes, scrolling, and the console's escapes. The
 * real screen is never touched. */
#include "dev/console.h"
#include "dev/fb.h"
#include "dev/font.h"
#include "lib/string.h"
#include "mm/heap.h"
#include "test/ktest.h"

/* 32 bpp x8r8g8b8, 24 bpp r8g8b8, 16 bpp r5g6b5, 32 bpp x8b8g8r8. */
static const struct boot_framebuffer fmt32 = {true, 0, 13, 9, 13 * 4 + 12, 32, 8, 16, 8, 8, 8, 0};
static const struct boot_framebuffer fmt24 = {true, 0, 13, 9, 13 * 3 + 5, 24, 8, 16, 8, 8, 8, 0};
static const struct boot_framebuffer fmt16 = {true, 0, 13, 9, 13 * 2 + 6, 16, 5, 11, 6, 5, 5, 0};
static const struct boot_framebuffer fmt32bgr = {true, 0, 13, 9, 13 * 4, 32, 8, 0, 8, 8, 8, 16};

/* A fake framebuffer of format bf in a fresh heap block filled with 0xee. */
static uint8_t *fake_fb(struct fb *fb, const struct boot_framebuffer *bf)
{
    size_t bytes = (size_t)bf->pitch * bf->height;
    uint8_t *mem = kmalloc(bytes);
    if (!mem)
        return NULL;
    memset(mem, 0xee, bytes);
    if (fb_setup(fb, mem, bf) != NULL) {
        kfree(mem);
        return NULL;
    }
    return mem;
}

KTEST(fb_color_encodes_per_masks)
{
    struct fb fb;
    KT_ASSERT(fb_setup(&fb, (void *)16, &fmt32) == NULL);
    KT_EXPECT(fb_color(&fb, 0x123456) == 0x123456);
    KT_EXPECT(fb_color(&fb, 0xffffff) == 0xffffff);
    KT_ASSERT(fb_setup(&fb, (void *)16, &fmt24) == NULL);
    KT_EXPECT(fb_color(&fb, 0xff8001) == 0xff8001);
    KT_ASSERT(fb_setup(&fb, (void *)16, &fmt16) == NULL);
    KT_EXPECT(fb_color(&fb, 0xff0000) == 0xf800, "red %#x", fb_color(&fb, 0xff0000));
    KT_EXPECT(fb_color(&fb, 0x00ff00) == 0x07e0, "green %#x", fb_color(&fb, 0x00ff00));
    KT_EXPECT(fb_color(&fb, 0x0000ff) == 0x001f, "blue %#x", fb_color(&fb, 0x0000ff));
    KT_EXPECT(fb_color(&fb, 0x841008) == 0x8081); /* 0x84>>3, 0x10>>2, 0x08>>3 */
    KT_EXPECT(fb_rgb(&fb, 0xffff) == 0xffffff, "white %#x", fb_rgb(&fb, 0xffff));
    KT_EXPECT(fb_rgb(&fb, 0xf800) == 0xff0000);
    KT_ASSERT(fb_setup(&fb, (void *)16, &fmt32bgr) == NULL);
    KT_EXPECT(fb_color(&fb, 0x112233) == 0x332211);
    KT_EXPECT(fb_rgb(&fb, 0x332211) == 0x112233);
}

KTEST(fb_setup_rejects_bad_formats)
{
    struct fb fb;
    struct boot_framebuffer bf = fmt32;
    bf.bpp = 8;
    KT_EXPECT(fb_setup(&fb, (void *)16, &bf) != NULL);
    bf = fmt32;
    bf.pitch = 13 * 4 - 1;
    KT_EXPECT(fb_setup(&fb, (void *)16, &bf) != NULL);
    bf = fmt16;
    bf.red_shift = 12; /* 12 + 5 > 16 bits */
    KT_EXPECT(fb_setup(&fb, (void *)16, &bf) != NULL);
    bf = fmt32;
    bf.green_size = 0;
    KT_EXPECT(fb_setup(&fb, (void *)16, &bf) != NULL);
    bf = fmt32;
    bf.present = false;
    KT_EXPECT(fb_setup(&fb, (void *)16, &bf) != NULL);
}

/* Pixel (x, y) lands at byte y * pitch + x * bytes_pp, little-endian, and
 * nothing around it changes, for each format. */
KTEST(fb_pixels_land_at_pitch_and_bpp)
{
    const struct boot_framebuffer *fmts[] = {&fmt32, &fmt24, &fmt16, &fmt32bgr};
    for (size_t i = 0; i < ARRAY_SIZE(fmts); i++) {
        struct fb fb;
        uint8_t *mem = fake_fb(&fb, fmts[i]);
        KT_ASSERT(mem != NULL);
        uint32_t px = fb_color(&fb, 0x4080c0);
        fb_put_pixel(&fb, 5, 3, px);
        fb_put_pixel(&fb, 13, 3, px); /* off screen: ignored */
        fb_put_pixel(&fb, 0, 9, px);
        size_t at = 3 * (size_t)fb.pitch + 5 * fb.bytes_pp;
        uint32_t got = 0;
        for (unsigned b = 0; b < fb.bytes_pp; b++)
            got |= (uint32_t)mem[at + b] << (8 * b);
        KT_EXPECT(got == px, "bpp %u: %#x != %#x", fb.bpp, got, px);
        KT_EXPECT(fb_get_pixel(&fb, 5, 3) == px);
        size_t changed = 0;
        for (size_t k = 0; k < fb_frame_bytes(&fb); k++)
            changed += mem[k] != 0xee;
        KT_EXPECT(changed <= fb.bytes_pp, "bpp %u: %zu bytes changed", fb.bpp, changed);
        kfree(mem);
    }
}

/* A glyph drawn through a shadow buffer reads back from the shadow, reaches
 * video memory only at fb_flush, and then identically. */
KTEST(fb_glyph_reads_back_from_shadow)
{
    static const uint8_t bits[3 * 2] = {0xc0, 0x40, 0x12, 0x80, 0xff, 0xc0}; /* 10 x 3 */
    struct fb fb;
    uint8_t *video = fake_fb(&fb, &fmt24);
    KT_ASSERT(video != NULL);
    uint8_t *shadow = kmalloc(fb_frame_bytes(&fb));
    KT_ASSERT(shadow != NULL);
    fb_use_shadow(&fb, shadow);
    uint32_t fg = fb_color(&fb, 0xffffff), bg = fb_color(&fb, 0x000080);
    fb_fill_rect(&fb, 0, 0, fb.width, fb.height, bg);
    fb_draw_glyph(&fb, 2, 4, bits, 10, 3, 2, fg, bg);
    for (uint32_t y = 0; y < 3; y++)
        for (uint32_t x = 0; x < 10; x++) {
            bool set = bits[y * 2 + x / 8] & (0x80 >> (x % 8));
            KT_EXPECT(fb_get_pixel(&fb, 2 + x, 4 + y) == (set ? fg : bg), "pixel %u,%u", x, y);
        }
    KT_EXPECT(fb_get_pixel(&fb, 12, 4) == bg);
    KT_EXPECT(video[0] == 0xee, "video written before the flush");
    fb_flush(&fb);
    KT_EXPECT(memcmp(video, shadow, fb_frame_bytes(&fb)) == 0, "video != shadow after flush");
    KT_EXPECT(fb.dirty_top >= fb.dirty_bottom, "still dirty after the flush");
    fb_invert_rect(&fb, 2, 4, 10, 3);
    KT_EXPECT(fb_get_pixel(&fb, 2, 4) == (fg ^ fb_color(&fb, 0xffffff)));
    fb_invert_rect(&fb, 2, 4, 10, 3);
    KT_EXPECT(fb_get_pixel(&fb, 2, 4) == fg);
    kfree(shadow);
    kfree(video);
}

KTEST(fb_scroll_moves_rows)
{
    struct fb fb;
    uint8_t *mem = fake_fb(&fb, &fmt32);
    KT_ASSERT(mem != NULL);
    for (uint32_t y = 0; y < fb.height; y++)
        fb_fill_rect(&fb, 0, y, fb.width, 1, fb_color(&fb, 0x010101 * (y + 1)));
    uint32_t bg = fb_color(&fb, 0x00ff00);
    fb_scroll_up(&fb, 1, 8, 3, bg); /* band of rows 1..7, up by 3 */
    KT_EXPECT(fb_get_pixel(&fb, 0, 0) == fb_color(&fb, 0x010101), "row 0 is outside the band");
    for (uint32_t y = 1; y < 5; y++)
        KT_EXPECT(fb_get_pixel(&fb, 12, y) == fb_color(&fb, 0x010101 * (y + 4)), "row %u", y);
    for (uint32_t y = 5; y < 8; y++)
        KT_EXPECT(fb_get_pixel(&fb, 7, y) == bg, "row %u not cleared", y);
    KT_EXPECT(fb_get_pixel(&fb, 0, 8) == fb_color(&fb, 0x090909), "row 8 is outside the band");
    fb_scroll_up(&fb, 0, fb.height, 100, bg);
    KT_EXPECT(fb_get_pixel(&fb, 3, 0) == bg && fb_get_pixel(&fb, 3, 8) == bg);
    kfree(mem);
}

/* The console on a fake 32 bpp screen of 4 x 3 cells of the real font. */
struct fake_console {
    struct font font;
    struct fb fb;
    struct console con;
    uint8_t *mem;
};

static bool fake_console_open(struct fake_console *f)
{
    if (console_font_parse(&f->font) != NULL)
        return false;
    struct boot_framebuffer bf = fmt32;
    bf.width = 4 * f->font.width + 3; /* a right margin no cell covers */
    bf.height = 3 * f->font.height;
    bf.pitch = bf.width * 4;
    f->mem = fake_fb(&f->fb, &bf);
    return f->mem && console_open(&f->con, &f->fb, &f->font);
}

/* Counts the pixels of cell (cx, cy) equal to pixel value px. */
static uint32_t cell_count(struct fake_console *f, uint32_t cx, uint32_t cy, uint32_t px)
{
    uint32_t n = 0;
    for (uint32_t y = 0; y < f->font.height; y++)
        for (uint32_t x = 0; x < f->font.width; x++)
            n += fb_get_pixel(&f->fb, cx * f->font.width + x, cy * f->font.height + y) == px;
    return n;
}

KTEST(console_draws_colours_and_scrolls)
{
    struct fake_console f;
    KT_ASSERT(fake_console_open(&f));
    struct console *c = &f.con;
    uint32_t cell = f.font.width * f.font.height;
    uint32_t black = fb_color(&f.fb, 0), grey = fb_color(&f.fb, console_palette(7));
    uint32_t red = fb_color(&f.fb, console_palette(1));
    KT_EXPECT(c->cols == 4 && c->rows == 3);
    KT_EXPECT(cell_count(&f, 0, 0, black) == cell, "not cleared to black");

    const char *s = "\x1b[?25l\x1b[31mA\x1b[0mB";
    console_putn(c, s, strlen(s));
    uint32_t a_red = cell_count(&f, 0, 0, red);
    KT_EXPECT(a_red > 0 && a_red + cell_count(&f, 0, 0, black) == cell, "A not red on black");
    KT_EXPECT(cell_count(&f, 1, 0, grey) > 0, "B not in the default colour");
    KT_EXPECT(c->cx == 2 && c->cy == 0);

    /* \b \t \r, then wrap past the last column */
    s = "\b\b\tx\rCDEFG";
    console_putn(c, s, strlen(s));
    KT_EXPECT(c->cx == 1 && c->cy == 2, "cursor at %u,%u", c->cx, c->cy);
    KT_EXPECT(cell_count(&f, 0, 2, grey) > 0, "G not wrapped onto row 2");

    /* Scrolling twice: row 2 moves to row 0, the new bottom row is blank. */
    uint32_t g_lit = cell_count(&f, 0, 2, grey);
    s = "\n\n";
    console_putn(c, s, 2);
    KT_EXPECT(c->cy == 2);
    KT_EXPECT(cell_count(&f, 0, 0, grey) == g_lit, "G did not move up two rows");
    KT_EXPECT(cell_count(&f, 0, 2, black) == cell, "bottom row not blank");

    /* Bold brightens; a background colour fills the cell; ESC[K and ESC[2J clear. */
    s = "\x1b[1;32;44mZ";
    console_putn(c, s, strlen(s));
    uint32_t bgreen = fb_color(&f.fb, console_palette(10)), blue = fb_color(&f.fb, console_palette(4));
    KT_EXPECT(cell_count(&f, 0, 2, bgreen) + cell_count(&f, 0, 2, blue) == cell &&
              cell_count(&f, 0, 2, bgreen) > 0, "bold green on blue");
    s = "\x1b[0m\x1b[1;1H\x1b[K";
    console_putn(c, s, strlen(s));
    KT_EXPECT(cell_count(&f, 0, 0, black) == cell && cell_count(&f, 3, 0, black) == cell);
    s = "\x1b[2J\x1b[3;2HQ";
    console_putn(c, s, strlen(s));
    KT_EXPECT(cell_count(&f, 0, 2, black) == cell && cell_count(&f, 1, 2, grey) > 0);
    KT_EXPECT(cell_count(&f, 1, 0, black) == cell, "ESC[2J left pixels behind");

    /* Malformed input never escapes the screen. */
    s = "\x1b[99;99H\x1b[999A\x1b[999D\xff\xc3\x1b[12345678;;;;;;;;;;mW\xe2\x82";
    console_putn(c, s, strlen(s));
    KT_EXPECT(c->cx <= c->cols && c->cy < c->rows);
    kfree(f.mem);
}

KTEST(console_linked_font_is_valid)
{
    struct font font;
    const char *err = console_font_parse(&font);
    KT_ASSERT(err == NULL, "%s", err);
    KT_EXPECT(font.width >= 6 && font.height >= 8);
    KT_EXPECT(font.map['A'] != FONT_NO_GLYPH && font.map['?'] != FONT_NO_GLYPH);
    const uint8_t *a = font_glyph(&font, 'A');
    uint32_t lit = 0;
    for (uint32_t i = 0; i < font.glyph_bytes; i++)
        lit += a[i] != 0;
    KT_EXPECT(lit > 0, "the glyph of 'A' is empty");
}
