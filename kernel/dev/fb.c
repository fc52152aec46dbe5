/* Framebuffer drawing (see fb.h). Pixels are stored little-endian in
 * bytes_pp bytes; x86 allows the unaligned 16/32-bit accesses this implies. */
#include "dev/fb.h"

#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/mapper.h"
#include "mm/mm.h"

/* Forward copy in 8-byte words, 4 per iteration; safe for overlapping ranges
 * when dst < src (every word is read before anything overwrites it). Kept
 * out of GCC's memcpy-idiom recognition: the kernel's memcpy is `rep movsb`,
 * which QEMU's TCG runs a byte at a time, and this is the hot path of every
 * scroll and flush. */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void copy_forward(uint8_t *dst, const uint8_t *src, size_t n)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;
    size_t words = n / 8;
    size_t i = 0;
    for (; i + 4 <= words; i += 4) {
        uint64_t a = s[i], b = s[i + 1], c = s[i + 2], e = s[i + 3];
        d[i] = a, d[i + 1] = b, d[i + 2] = c, d[i + 3] = e;
    }
    for (; i < words; i++)
        d[i] = s[i];
    for (size_t k = words * 8; k < n; k++)
        dst[k] = src[k];
}

static inline void px_store(uint8_t *p, uint8_t bytes_pp, uint32_t v)
{
    if (bytes_pp == 4) {
        *(uint32_t *)p = v;
    } else if (bytes_pp == 2) {
        *(uint16_t *)p = (uint16_t)v;
    } else {
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
    }
}

static inline uint32_t px_load(const uint8_t *p, uint8_t bytes_pp)
{
    if (bytes_pp == 4)
        return *(const uint32_t *)p;
    if (bytes_pp == 2)
        return *(const uint16_t *)p;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static inline uint8_t *px_addr(const struct fb *fb, uint32_t x, uint32_t y)
{
    return fb->draw + (size_t)y * fb->pitch + (size_t)x * fb->bytes_pp;
}

static void mark_dirty(struct fb *fb, uint32_t top, uint32_t bottom)
{
    if (!fb->shadowed)
        return;
    if (top < fb->dirty_top)
        fb->dirty_top = top;
    if (bottom > fb->dirty_bottom)
        fb->dirty_bottom = bottom;
}

/* Clips the rectangle to the screen; false when nothing is left. */
static bool clip(const struct fb *fb, uint32_t x, uint32_t y, uint32_t *w, uint32_t *h)
{
    if (x >= fb->width || y >= fb->height || *w == 0 || *h == 0)
        return false;
    *w = MIN(*w, fb->width - x);
    *h = MIN(*h, fb->height - y);
    return true;
}

static bool channel_ok(uint8_t size, uint8_t shift, uint16_t bpp)
{
    return size >= 1 && size <= 16 && (uint32_t)shift + size <= bpp;
}

const char *fb_setup(struct fb *fb, void *pixels, const struct boot_framebuffer *bf)
{
    *fb = (struct fb){0};
    if (!bf->present || !pixels)
        return "fb: no framebuffer";
    if (bf->bpp != 16 && bf->bpp != 24 && bf->bpp != 32)
        return "fb: unsupported bits per pixel (need 16, 24 or 32)";
    if (bf->width == 0 || bf->height == 0 || (uint64_t)bf->pitch < (uint64_t)bf->width * (bf->bpp / 8))
        return "fb: bad size or pitch";
    if (!channel_ok(bf->red_size, bf->red_shift, bf->bpp) ||
        !channel_ok(bf->green_size, bf->green_shift, bf->bpp) ||
        !channel_ok(bf->blue_size, bf->blue_shift, bf->bpp))
        return "fb: bad colour channel masks";
    fb->draw = fb->video = pixels;
    fb->width = bf->width;
    fb->height = bf->height;
    fb->pitch = bf->pitch;
    fb->bpp = (uint8_t)bf->bpp;
    fb->bytes_pp = (uint8_t)(bf->bpp / 8);
    fb->red_size = bf->red_size, fb->red_shift = bf->red_shift;
    fb->green_size = bf->green_size, fb->green_shift = bf->green_shift;
    fb->blue_size = bf->blue_size, fb->blue_shift = bf->blue_shift;
    fb->dirty_top = fb->height;
    return NULL;
}

size_t fb_frame_bytes(const struct fb *fb)
{
    return (size_t)fb->pitch * fb->height;
}

void fb_use_shadow(struct fb *fb, void *shadow)
{
    fb->draw = shadow;
    fb->shadowed = true;
    fb->dirty_top = 0;
    fb->dirty_bottom = fb->height;
}

void fb_flush(struct fb *fb)
{
    if (!fb->shadowed || fb->dirty_top >= fb->dirty_bottom)
        return;
    size_t off = (size_t)fb->dirty_top * fb->pitch;
    size_t len = (size_t)(fb->dirty_bottom - fb->dirty_top) * fb->pitch;
    copy_forward(fb->video + off, fb->draw + off, len);
    fb->dirty_top = fb->height;
    fb->dirty_bottom = 0;
}

static uint32_t channel_encode(uint32_t v8, uint8_t size, uint8_t shift)
{
    uint32_t v = size <= 8 ? v8 >> (8 - size) : v8 << (size - 8);
    return v << shift;
}

static uint32_t channel_decode(uint32_t pixel, uint8_t size, uint8_t shift)
{
    uint32_t c = (pixel >> shift) & ((1u << size) - 1);
    if (size >= 8)
        return c >> (size - 8);
    uint32_t v = 0; /* replicate the bits downwards: 5-bit 31 -> 255 */
    for (int pos = 8 - size;; pos -= size) {
        v |= pos >= 0 ? c << pos : c >> -pos;
        if (pos <= 0)
            break;
    }
    return v & 0xff;
}

uint32_t fb_color(const struct fb *fb, uint32_t rgb)
{
    return channel_encode((rgb >> 16) & 0xff, fb->red_size, fb->red_shift) |
           channel_encode((rgb >> 8) & 0xff, fb->green_size, fb->green_shift) |
           channel_encode(rgb & 0xff, fb->blue_size, fb->blue_shift);
}

uint32_t fb_rgb(const struct fb *fb, uint32_t pixel)
{
    return channel_decode(pixel, fb->red_size, fb->red_shift) << 16 |
           channel_decode(pixel, fb->green_size, fb->green_shift) << 8 |
           channel_decode(pixel, fb->blue_size, fb->blue_shift);
}

void fb_put_pixel(struct fb *fb, uint32_t x, uint32_t y, uint32_t pixel)
{
    if (x >= fb->width || y >= fb->height)
        return;
    px_store(px_addr(fb, x, y), fb->bytes_pp, pixel);
    mark_dirty(fb, y, y + 1);
}

uint32_t fb_get_pixel(const struct fb *fb, uint32_t x, uint32_t y)
{
    if (x >= fb->width || y >= fb->height)
        return 0;
    return px_load(px_addr(fb, x, y), fb->bytes_pp);
}

void fb_fill_rect(struct fb *fb, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t pixel)
{
    if (!clip(fb, x, y, &w, &h))
        return;
    for (uint32_t r = 0; r < h; r++) {
        uint8_t *p = px_addr(fb, x, y + r);
        if (fb->bytes_pp == 4) {
            uint32_t *q = (uint32_t *)p;
            for (uint32_t c = 0; c < w; c++)
                q[c] = pixel;
        } else {
            for (uint32_t c = 0; c < w; c++, p += fb->bytes_pp)
                px_store(p, fb->bytes_pp, pixel);
        }
    }
    mark_dirty(fb, y, y + h);
}

static uint32_t colour_mask(const struct fb *fb)
{
    return ((1u << fb->red_size) - 1) << fb->red_shift |
           ((1u << fb->green_size) - 1) << fb->green_shift |
           ((1u << fb->blue_size) - 1) << fb->blue_shift;
}

void fb_invert_rect(struct fb *fb, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
    if (!clip(fb, x, y, &w, &h))
        return;
    uint32_t mask = colour_mask(fb);
    for (uint32_t r = 0; r < h; r++) {
        uint8_t *p = px_addr(fb, x, y + r);
        for (uint32_t c = 0; c < w; c++, p += fb->bytes_pp)
            px_store(p, fb->bytes_pp, px_load(p, fb->bytes_pp) ^ mask);
    }
    mark_dirty(fb, y, y + h);
}

void fb_draw_glyph(struct fb *fb, uint32_t x, uint32_t y, const uint8_t *bits, uint32_t w,
                   uint32_t h, uint32_t row_bytes, uint32_t fg, uint32_t bg)
{
    uint32_t cw = w, ch = h;
    if (!clip(fb, x, y, &cw, &ch))
        return;
    for (uint32_t r = 0; r < ch; r++, bits += row_bytes) {
        uint8_t *p = px_addr(fb, x, y + r);
        if (fb->bytes_pp == 4) {
            uint32_t *q = (uint32_t *)p;
            for (uint32_t c = 0; c < cw; c++)
                q[c] = (bits[c >> 3] & (0x80 >> (c & 7))) ? fg : bg;
        } else {
            for (uint32_t c = 0; c < cw; c++, p += fb->bytes_pp)
                px_store(p, fb->bytes_pp, (bits[c >> 3] & (0x80 >> (c & 7))) ? fg : bg);
        }
    }
    mark_dirty(fb, y, y + ch);
}

void fb_scroll_up(struct fb *fb, uint32_t top, uint32_t bottom, uint32_t n, uint32_t pixel)
{
    bottom = MIN(bottom, fb->height);
    if (top >= bottom || n == 0)
        return;
    uint32_t band = bottom - top;
    if (n >= band) {
        fb_fill_rect(fb, 0, top, fb->width, band, pixel);
        return;
    }
    copy_forward(fb->draw + (size_t)top * fb->pitch, fb->draw + (size_t)(top + n) * fb->pitch,
                 (size_t)(band - n) * fb->pitch);
    fb_fill_rect(fb, 0, bottom - n, fb->width, n, pixel);
    mark_dirty(fb, top, bottom);
}

/* ---- the boot framebuffer ------------------------------------------------ */

static struct fb screen;
static bool screen_ready;

struct fb *fb_screen_init(void)
{
    if (screen_ready)
        return &screen;
    const struct boot_framebuffer *bf = &boot_ctx.fb;
    if (!bf->present)
        return NULL;
    void *video = mapper_framebuffer();
    if (!video) {
        kwarn("fb", "the framebuffer is not mapped");
        return NULL;
    }
    const char *err = fb_setup(&screen, video, bf);
    if (err) {
        kwarn("fb", "%s", err);
        return NULL;
    }
    /* The shadow: contiguous frames through the HHDM (write-back), unless
     * that would take more than a quarter of the free memory. */
    size_t pages = ALIGN_UP(fb_frame_bytes(&screen), PAGE_SIZE) / PAGE_SIZE;
    struct frame_stats fs;
    frame_get_stats(&fs);
    paddr_t shadow = pages <= fs.free_frames / 4 ? frame_alloc_contig(pages, PAGE_SIZE) : 0;
    if (shadow)
        fb_use_shadow(&screen, PHYS2VIRT(shadow));
    klog("fb", "%ux%u %ubpp pitch=%u (r%u@%u g%u@%u b%u@%u), %s %zuKiB", screen.width,
         screen.height, screen.bpp, screen.pitch, screen.red_size, screen.red_shift,
         screen.green_size, screen.green_shift, screen.blue_size, screen.blue_shift,
         shadow ? "shadow buffer in RAM:" : "no shadow buffer (memory short), drawing direct:",
         pages * 4);
    screen_ready = true;
    return &screen;
}

struct fb *fb_screen(void)
{
    return screen_ready ? &screen : NULL;
}
