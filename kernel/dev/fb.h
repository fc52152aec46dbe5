/* Linear framebuffer drawing: pixels, rectangles, glyphs and scrolling over
 * a 16, 24 or 32 bpp RGB framebuffer described by its channel masks and
 * pitch (struct boot_framebuffer).
 *
 * A `struct fb` draws either straight into video memory or into a shadow
 * buffer in ordinary write-back RAM that fb_flush() copies to the screen.
 * With the shadow, nothing ever reads the write-combining video mapping
 * (reads from WC memory are uncached and slow on real hardware), and a
 * scroll is a memmove in RAM plus one sequential copy. Any memory can stand
 * in for video memory, which is how the self-tests exercise every pixel
 * format without a screen.
 *
 * Colours are passed around already encoded for the framebuffer (a "pixel
 * value", from fb_color); coordinates are pixels, clipped to the screen.
 * Locking: none; the console is the only user (single CPU). */
#pragma once

#include "boot/boot_info.h"
#include "lib/types.h"

struct fb {
    uint8_t *draw;            /* where drawing goes: shadow, or video itself */
    uint8_t *video;           /* the screen */
    uint32_t width, height;   /* pixels */
    uint32_t pitch;           /* bytes per row, of video and of the shadow */
    uint8_t bpp, bytes_pp;    /* 16/24/32 bits; 2/3/4 bytes per pixel */
    uint8_t red_size, red_shift, green_size, green_shift, blue_size, blue_shift;
    bool shadowed;            /* draw is a shadow buffer (draw != video) */
    uint32_t dirty_top, dirty_bottom; /* shadow rows [top, bottom) not on video yet */
};

/* Describes the framebuffer bf whose pixel (0,0) is at `pixels`, drawing
 * directly (no shadow). Returns NULL, or a one-line reason when bf is absent
 * or inconsistent (bpp not 16/24/32, pitch < width * bytes per pixel, a
 * channel of size 0 or > 16, or one that does not fit in bpp bits). */
const char *fb_setup(struct fb *fb, void *pixels, const struct boot_framebuffer *bf);
/* Bytes of one full frame (pitch * height): the size a shadow buffer needs. */
size_t fb_frame_bytes(const struct fb *fb);
/* From now on draws go to `shadow` (fb_frame_bytes bytes, any alignment),
 * whose content becomes the screen at the next fb_flush (all rows dirty). */
void fb_use_shadow(struct fb *fb, void *shadow);
/* Copies the shadow rows drawn since the last flush to video memory; a no-op
 * without a shadow. Writes video memory sequentially and never reads it. */
void fb_flush(struct fb *fb);

/* Pixel value of colour 0xRRGGBB: each 8-bit channel scaled to its size and
 * placed at its shift. */
uint32_t fb_color(const struct fb *fb, uint32_t rgb);
/* The inverse of fb_color: 0xRRGGBB of a pixel value (low bits replicated
 * for channels narrower than 8 bits, so white stays 0xffffff). */
uint32_t fb_rgb(const struct fb *fb, uint32_t pixel);

/* Sets one pixel; nothing outside the screen. */
void fb_put_pixel(struct fb *fb, uint32_t x, uint32_t y, uint32_t pixel);
/* The pixel value at (x, y) of the drawing buffer (the shadow when there is
 * one), 0 outside the screen. */
uint32_t fb_get_pixel(const struct fb *fb, uint32_t x, uint32_t y);
/* Fills the rectangle (clipped to the screen). */
void fb_fill_rect(struct fb *fb, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t pixel);
/* Inverts every colour bit of the rectangle (clipped); doing it twice
 * restores it. Used for the text cursor. */
void fb_invert_rect(struct fb *fb, uint32_t x, uint32_t y, uint32_t w, uint32_t h);
/* Draws a w x h 1-bit bitmap (rows of row_bytes bytes, MSB = leftmost pixel)
 * at (x, y): set bits in fg, clear bits in bg; clipped to the screen. */
void fb_draw_glyph(struct fb *fb, uint32_t x, uint32_t y, const uint8_t *bits, uint32_t w,
                   uint32_t h, uint32_t row_bytes, uint32_t fg, uint32_t bg);
/* Scrolls the full-width band of pixel rows [top, bottom) up by n rows (a
 * memmove of rows) and fills the n rows freed at its bottom with `pixel`.
 * n >= the band's height just fills it. */
void fb_scroll_up(struct fb *fb, uint32_t top, uint32_t bottom, uint32_t n, uint32_t pixel);

/* The boot framebuffer (boot_ctx.fb through mapper_framebuffer()), set up
 * once: with a shadow buffer taken from the frame allocator when memory
 * allows, drawing directly otherwise. NULL when there is no usable
 * framebuffer (the reason is logged). Call after heap_init(). */
struct fb *fb_screen_init(void);
/* The boot framebuffer once fb_screen_init succeeded, else NULL. */
struct fb *fb_screen(void);
