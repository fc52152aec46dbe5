/* PSF1/PSF2 font parsing. The formats (as documented with the Linux kbd
 * tools):
 *   PSF2: 32-byte little-endian header {magic 72 b5 4a 86, version 0,
 *         headersize, flags (bit 0: Unicode table), length (glyphs),
 *         charsize (bytes per glyph), height, width}, glyphs at headersize,
 *         then the table: per glyph, UTF-8 code points, 0xFE before each
 *         multi-code-point sequence, 0xFF to end the glyph's entry.
 *   PSF1: 4-byte header {36 04, mode (bit 0: 512 glyphs, bits 1-2: table),
 *         charsize = height}, 8 pixels wide; the table is the same idea in
 *         16-bit units with 0xFFFE and 0xFFFF. */
#include "dev/font.h"

#define PSF2_HEADER_SIZE 32
#define PSF2_HAS_TABLE   0x1
#define PSF1_MODE_512    0x1
#define PSF1_MODE_TABLE  0x6

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Records glyph `g` for code point cp unless cp already has one. */
static void map_cp(struct font *f, uint32_t cp, uint32_t g)
{
    if (cp < FONT_MAP_SIZE && f->map[cp] == FONT_NO_GLYPH)
        f->map[cp] = (uint16_t)g;
}

/* Decodes one UTF-8 code point at p[*i], p[0..end); advances *i. False when
 * the encoding is invalid or runs past end. */
static bool utf8_next(const uint8_t *p, size_t end, size_t *i, uint32_t *cp)
{
    uint8_t b = p[*i];
    int more;
    uint32_t v;
    if (b < 0x80) {
        more = 0, v = b;
    } else if (b >= 0xc2 && b <= 0xdf) {
        more = 1, v = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        more = 2, v = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        more = 3, v = b & 0x07;
    } else {
        return false;
    }
    if (end - *i <= (size_t)more)
        return false;
    for (int k = 1; k <= more; k++) {
        uint8_t c = p[*i + k];
        if ((c & 0xc0) != 0x80)
            return false;
        v = v << 6 | (c & 0x3f);
    }
    *i += 1 + (size_t)more;
    *cp = v;
    return true;
}

static const char *parse_psf2_table(struct font *f, const uint8_t *p, size_t i, size_t size)
{
    for (uint32_t g = 0; g < f->glyph_count; g++) {
        bool in_seq = false;
        for (;;) {
            if (i >= size)
                return "font: PSF2 unicode table truncated";
            if (p[i] == 0xff) {
                i++;
                break;
            }
            if (p[i] == 0xfe) {
                in_seq = true;
                i++;
                continue;
            }
            uint32_t cp;
            if (!utf8_next(p, size, &i, &cp))
                return "font: PSF2 unicode table has invalid UTF-8";
            if (!in_seq)
                map_cp(f, cp, g);
        }
    }
    return NULL;
}

static const char *parse_psf2(struct font *f, const uint8_t *p, size_t size)
{
    if (size < PSF2_HEADER_SIZE)
        return "font: PSF2 header truncated";
    uint32_t version = le32(p + 4), hdr = le32(p + 8), flags = le32(p + 12);
    uint32_t count = le32(p + 16), charsize = le32(p + 20);
    uint32_t height = le32(p + 24), width = le32(p + 28);
    if (version != 0)
        return "font: unknown PSF2 version";
    if (hdr < PSF2_HEADER_SIZE || hdr > size)
        return "font: bad PSF2 header size";
    if (width == 0 || width > FONT_MAX_WIDTH || height == 0 || height > FONT_MAX_HEIGHT)
        return "font: glyph width or height out of range";
    if (charsize != height * ((width + 7) / 8))
        return "font: glyph size does not match width and height";
    if (count == 0 || count >= FONT_NO_GLYPH)
        return "font: bad glyph count";
    uint64_t end = (uint64_t)hdr + (uint64_t)count * charsize;
    if (end > size)
        return "font: glyphs extend past the end of the file";
    f->version = 2;
    f->width = width;
    f->height = height;
    f->glyph_count = count;
    f->glyphs = p + hdr;
    if (flags & PSF2_HAS_TABLE)
        return parse_psf2_table(f, p, (size_t)end, size);
    return NULL;
}

static const char *parse_psf1(struct font *f, const uint8_t *p, size_t size)
{
    if (size < 4)
        return "font: PSF1 header truncated";
    uint8_t mode = p[2], height = p[3];
    if (height == 0 || height > FONT_MAX_HEIGHT)
        return "font: glyph width or height out of range";
    uint32_t count = (mode & PSF1_MODE_512) ? 512 : 256;
    size_t end = 4 + (size_t)count * height;
    if (end > size)
        return "font: glyphs extend past the end of the file";
    f->version = 1;
    f->width = 8;
    f->height = height;
    f->glyph_count = count;
    f->glyphs = p + 4;
    if (!(mode & PSF1_MODE_TABLE))
        return NULL;
    size_t i = end;
    for (uint32_t g = 0; g < count; g++) {
        bool in_seq = false;
        for (;;) {
            if (size - i < 2)
                return "font: PSF1 unicode table truncated";
            uint32_t v = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8;
            i += 2;
            if (v == 0xffff)
                break;
            if (v == 0xfffe)
                in_seq = true;
            else if (!in_seq)
                map_cp(f, v, g);
        }
    }
    return NULL;
}

const char *font_parse(struct font *f, const void *data, size_t size)
{
    const uint8_t *p = data;
    *f = (struct font){0};
    for (size_t cp = 0; cp < FONT_MAP_SIZE; cp++)
        f->map[cp] = FONT_NO_GLYPH;
    if (!p)
        return "font: no font data";
    const char *err;
    if (size >= 4 && le32(p) == 0x864ab572)
        err = parse_psf2(f, p, size);
    else if (size >= 2 && p[0] == 0x36 && p[1] == 0x04)
        err = parse_psf1(f, p, size);
    else
        return "font: not a PSF1 or PSF2 font (bad magic)";
    if (err)
        return err;
    f->row_bytes = (f->width + 7) / 8;
    f->glyph_bytes = f->row_bytes * f->height;

    bool has_map = false;
    for (size_t cp = 0; cp < FONT_MAP_SIZE && !has_map; cp++)
        has_map = f->map[cp] != FONT_NO_GLYPH;
    if (!has_map) /* no table (or one naming nothing below U+0100): glyph n is code n */
        for (uint32_t cp = 0; cp < FONT_MAP_SIZE && cp < f->glyph_count; cp++)
            f->map[cp] = (uint16_t)cp;
    f->fallback = f->map['?'] != FONT_NO_GLYPH ? f->map['?'] : 0;
    return NULL;
}

const uint8_t *font_glyph(const struct font *f, uint32_t cp)
{
    uint32_t g = cp < FONT_MAP_SIZE ? f->map[cp] : FONT_NO_GLYPH;
    if (g == FONT_NO_GLYPH)
        g = f->fallback;
    return f->glyphs + (size_t)g * f->glyph_bytes;
}
