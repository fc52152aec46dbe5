/* font_parse: synthetic PSF2 and PSF1 fonts built here, the Unicode table,
 * and malformed headers, sizes and tables that must be refused; plus every
 * truncation of a valid font, and the real console font when it is on this
 * machine. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev/font.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* A PSF2 font of `count` 10x4 glyphs; glyph g's bytes are all g + 1. With a
 * table, glyph g stands for 'A' + g, glyph 1 also for U+00E9 (é, two UTF-8
 * bytes) and for the sequence "e" + U+0301. Returns the size. */
static size_t make_psf2(uint8_t *buf, uint32_t count, bool table)
{
    const uint32_t w = 10, h = 4, charsize = 2 * h;
    memset(buf, 0, 32);
    put32(buf, 0x864ab572);
    put32(buf + 4, 0);
    put32(buf + 8, 32);
    put32(buf + 12, table ? 1 : 0);
    put32(buf + 16, count);
    put32(buf + 20, charsize);
    put32(buf + 24, h);
    put32(buf + 28, w);
    size_t n = 32;
    for (uint32_t g = 0; g < count; g++)
        for (uint32_t i = 0; i < charsize; i++)
            buf[n++] = (uint8_t)(g + 1);
    if (table) {
        for (uint32_t g = 0; g < count; g++) {
            buf[n++] = (uint8_t)('A' + g);
            if (g == 1) {
                buf[n++] = 0xc3, buf[n++] = 0xa9;                      /* é */
                buf[n++] = 0xfe, buf[n++] = 'e', buf[n++] = 0xcc, buf[n++] = 0x81; /* e + U+0301 */
            }
            buf[n++] = 0xff;
        }
    }
    return n;
}

Test(font, psf2_with_table)
{
    uint8_t buf[512];
    size_t n = make_psf2(buf, 4, true);
    struct font f;
    cr_assert_null(font_parse(&f, buf, n));
    cr_expect_eq(f.version, 2);
    cr_expect_eq(f.width, 10);
    cr_expect_eq(f.height, 4);
    cr_expect_eq(f.row_bytes, 2);
    cr_expect_eq(f.glyph_bytes, 8);
    cr_expect_eq(f.glyph_count, 4);
    cr_expect_eq(font_glyph(&f, 'A')[0], 1);
    cr_expect_eq(font_glyph(&f, 'B')[7], 2);
    cr_expect_eq(font_glyph(&f, 'D')[0], 4);
    cr_expect_eq(font_glyph(&f, 0xe9)[0], 2, "U+00E9 maps to glyph 1");
    cr_expect_eq(f.map['e'], FONT_NO_GLYPH, "a sequence's first code point is not a mapping");
    /* No '?' in this font: unmapped code points fall back to glyph 0. */
    cr_expect_eq(font_glyph(&f, 'z')[0], 1);
    cr_expect_eq(font_glyph(&f, 0x20ac)[0], 1);
}

Test(font, psf2_without_table_is_identity)
{
    uint8_t buf[8192];
    size_t n = make_psf2(buf, 256, false);
    struct font f;
    cr_assert_null(font_parse(&f, buf, n));
    cr_expect_eq(font_glyph(&f, 'A')[0], (uint8_t)('A' + 1));
    cr_expect_eq(font_glyph(&f, '?')[0], (uint8_t)('?' + 1));
    cr_expect_eq(f.fallback, '?');
    cr_expect_eq(font_glyph(&f, 0x1234)[0], (uint8_t)('?' + 1));
}

Test(font, psf2_bad_headers)
{
    uint8_t buf[512], bad[512];
    size_t n = make_psf2(buf, 4, true);
    struct font f;
    struct { size_t off; uint32_t val; } cases[] = {
        {0, 0x864ab573},  /* magic */
        {4, 1},           /* version */
        {8, 31},          /* header size below 32 */
        {8, 100000},      /* header size past the end */
        {16, 0},          /* no glyphs */
        {16, 0x10000000}, /* glyphs past the end (and count * charsize large) */
        {16, 5},          /* one glyph more than there is room for before the table's bytes run out */
        {20, 7},          /* charsize != height * row bytes */
        {24, 0},          /* height 0 */
        {24, 65},         /* height too large */
        {28, 0},          /* width 0 */
        {28, 33},         /* width too large */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(bad, buf, n);
        put32(bad + cases[i].off, cases[i].val);
        cr_expect_not_null(font_parse(&f, bad, n), "case %zu (offset %zu = %u) accepted", i,
                           cases[i].off, cases[i].val);
    }
    cr_expect_not_null(font_parse(&f, NULL, 0));
    cr_expect_not_null(font_parse(&f, buf, 3));
}

Test(font, psf2_bad_tables)
{
    uint8_t buf[512];
    size_t n = make_psf2(buf, 4, true);
    size_t table = 32 + 4 * 8;
    struct font f;
    /* Missing the last terminator. */
    cr_expect_not_null(font_parse(&f, buf, n - 1));
    /* Invalid UTF-8: a lone continuation byte, an overlong lead, a cut sequence. */
    uint8_t bad[512];
    uint8_t junk[] = {0x80, 0xc0, 0xf8};
    for (size_t i = 0; i < sizeof(junk); i++) {
        memcpy(bad, buf, n);
        bad[table] = junk[i];
        cr_expect_not_null(font_parse(&f, bad, n), "byte %#x accepted", junk[i]);
    }
    memcpy(bad, buf, n);
    bad[table] = 0xe2; /* three-byte lead followed by 0xff */
    cr_expect_not_null(font_parse(&f, bad, n));
}

/* Every prefix of a valid font is refused or parsed without reading past
 * its end (ASan would catch a read beyond the copy). */
Test(font, every_truncation_is_safe)
{
    uint8_t buf[512];
    size_t n = make_psf2(buf, 4, true);
    struct font f;
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        cr_expect_not_null(font_parse(&f, copy, len), "prefix of %zu bytes accepted", len);
        free(copy);
    }
}

Test(font, psf1_with_table)
{
    uint8_t buf[4 + 512 * 6 + 4096];
    size_t n = 0;
    buf[n++] = 0x36, buf[n++] = 0x04, buf[n++] = 0x03, buf[n++] = 6; /* 512 glyphs + table */
    for (uint32_t g = 0; g < 512; g++)
        for (int i = 0; i < 6; i++)
            buf[n++] = (uint8_t)g;
    for (uint32_t g = 0; g < 512; g++) {
        uint32_t cp = g == 300 ? 'x' : (g < 256 && g != 'x' ? g : 0x2500 + g);
        buf[n++] = (uint8_t)cp, buf[n++] = (uint8_t)(cp >> 8);
        if (g == 5)
            buf[n++] = 0xfe, buf[n++] = 0xff, buf[n++] = 'q', buf[n++] = 0; /* sequence: no mapping */
        buf[n++] = 0xff, buf[n++] = 0xff;
    }
    struct font f;
    cr_assert_null(font_parse(&f, buf, n));
    cr_expect_eq(f.version, 1);
    cr_expect_eq(f.width, 8);
    cr_expect_eq(f.height, 6);
    cr_expect_eq(f.glyph_count, 512);
    cr_expect_eq(f.map['x'], 300);
    cr_expect_eq(f.map['q'], 'q');
    cr_expect_eq(font_glyph(&f, 'A')[0], 'A');
    cr_expect_not_null(font_parse(&f, buf, n - 1), "truncated PSF1 table accepted");
    cr_expect_not_null(font_parse(&f, buf, 4 + 511 * 6), "truncated PSF1 glyphs accepted");
    buf[3] = 0;
    cr_expect_not_null(font_parse(&f, buf, n), "PSF1 height 0 accepted");
}

/* The font the kernel links (mk/font.mk): `make host-test` builds it and
 * names it in SLAYER_FONT; run by hand without it, the test looks in build/. */
Test(font, build_font_parses)
{
    const char *path = getenv("SLAYER_FONT");
    FILE *fp = fopen(path ? path : "build/font/font.psf", "rb");
    if (!fp && !path)
        cr_skip_test("build/font/font.psf not built (make host-test builds it)");
    cr_assert_not_null(fp, "cannot open %s", path);
    static uint8_t data[1 << 20];
    size_t n = fread(data, 1, sizeof(data), fp);
    fclose(fp);
    struct font f;
    const char *err = font_parse(&f, data, n);
    cr_assert_null(err, "%s", err);
    cr_expect_neq(f.map['A'], FONT_NO_GLYPH);
    cr_expect_neq(f.map['~'], FONT_NO_GLYPH);
    cr_expect_neq(f.map['?'], FONT_NO_GLYPH);
}
