/* PC Screen Font parser (PSF2, and PSF1 for the 8-pixel-wide fonts Debian
 * still ships in that format). Portable: no allocation, no kernel services,
 * so the host tests run it on synthetic and malformed fonts.
 *
 * The console font is linked in at build time (mk/font.mk) as a binary blob;
 * nothing here trusts it: every size and offset is checked before use. */
#pragma once

#include "lib/types.h"

#define FONT_MAX_WIDTH   32   /* pixels; wider glyphs are refused */
#define FONT_MAX_HEIGHT  64
#define FONT_MAP_SIZE    256  /* code points U+0000..U+00FF are mapped */
#define FONT_NO_GLYPH    0xffffu

struct font {
    uint32_t width, height;     /* glyph size in pixels */
    uint32_t row_bytes;         /* bytes per glyph row: (width + 7) / 8 */
    uint32_t glyph_bytes;       /* bytes per glyph: row_bytes * height */
    uint32_t glyph_count;
    const uint8_t *glyphs;      /* glyph_count * glyph_bytes bytes, inside the blob */
    uint16_t fallback;          /* glyph for unmapped code points ('?' if mapped) */
    /* Glyph index of code points 0..255 (FONT_NO_GLYPH when the font's
     * Unicode table does not name one); identity when the font has no table. */
    uint16_t map[FONT_MAP_SIZE];
    uint8_t version;            /* 1 or 2 */
};

/* Parses the PSF1 or PSF2 font in data[0..size) into *f, which then points
 * into data (data must outlive f). Checks the magic, header size, glyph size
 * against width and height, the glyph count, that glyphs and Unicode table
 * lie inside the blob, and the table's encoding. Returns NULL on success, or
 * a one-line reason (f is then unusable). */
const char *font_parse(struct font *f, const void *data, size_t size);

/* The bitmap of code point cp (rows of row_bytes bytes, most significant bit
 * = leftmost pixel); the fallback glyph for anything unmapped. Never NULL for a
 * font that font_parse accepted. */
const uint8_t *font_glyph(const struct font *f, uint32_t cp);
