/* Portable helpers for the monitor's command lines (host-tested in
 * tests/host/test_monitor_parse.c): splitting into words and reading numbers. */
#pragma once

#include "lib/types.h"

/* Splits `line` in place at spaces and tabs into at most max words (pointers
 * into line, NUL-terminated); returns the word count, or -1 when there are
 * more than max words (argv then holds the first max). */
int parse_split(char *line, char **argv, int max);
/* Reads a whole unsigned number: decimal, or hex with a 0x/0X prefix;
 * '_' may separate digits ("0xffff_8000_0000_0000"). True and *out set on
 * success; false (and *out untouched) for an empty string, a stray
 * character, or a value above 2^64 - 1. */
bool parse_u64(const char *s, uint64_t *out);
/* Like parse_u64, plus an optional binary suffix K, M, G or T (either case,
 * an optional trailing 'B' or "iB": "4K", "2MiB"); false on overflow. */
bool parse_size(const char *s, uint64_t *out);
