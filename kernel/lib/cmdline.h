/* Kernel command-line parsing: space-separated words, `key` or `key=value`. */
#pragma once

#include "lib/types.h"

/* True when cmdline contains the word `key` (alone or as `key=...`). When it
 * has a value and val is non-NULL, copies it (NUL-terminated, truncated to
 * val_size) into val; otherwise val becomes "". */
bool cmdline_get(const char *cmdline, const char *key, char *val, size_t val_size);
