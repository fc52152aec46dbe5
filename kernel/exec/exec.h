/* Programs from boot modules (kernel only): a module's file is parsed once
 * (exec/elf.h's rules) and its segment images kept for the kernel's life,
 * so that any number of spaces can map them. */
#pragma once

#include "boot/boot_info.h"
#include "exec/elf.h"

/* Parses boot module m (an entry of boot_ctx.modules) on first use and
 * returns its info and segment images, which live as long as the kernel: 0,
 * or -EINVAL with the parser's one-line reason in why (asked again, a
 * refused module is parsed again and refused again). */
int exec_module_parse(const struct boot_module *m, const struct elf_info **info,
                      const struct vm_image **images, char *why, size_t whylen);

/* Loads the module called `name` into vs with elf_load (see there: on
 * failure vs holds what it held before; the caller owns and destroys vs):
 * 0 with *start set, -ENOENT when there is no such module, or the parse's
 * or load's error, with the reason in why. */
int exec_module(struct vm_space *vs, const char *name, int argc, const char *const *argv,
                struct elf_start *start, char *why, size_t whylen);
